#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Benchmark of `sessfs-migrate backup` and `restore` (not a test): loads N
# sessions of MIN-MAX bytes in layout v1 (value key, meta hash, TTLs) into
# a throwaway redis-server with redis-cli --pipe, then, on that server:
#   - redis-cli --pipe of the same writes into an emptied server: the
#     baseline, what Redis ingests with no checks and no file;
#   - sessfs-migrate backup of the prefix into a file;
#   - sessfs-migrate restore of that file into an emptied server (the
#     whole file checked first, then one restore script per session);
# and prints sessions/s, seconds, the ratio to the redis-cli --pipe rate,
# the CPU time redis-server spent per session, the peak RSS of
# sessfs-migrate (/usr/bin/time -v, "Maximum resident set size") and the
# file's size.  The median of RUNS runs.
#
# Usage: bench/backup_bench.sh                    (N=100000 RUNS=3, 1-4 KiB)
#        N=1000000 MIN=100 MAX=300 RUNS=1 bench/backup_bench.sh
# The binary is $SESSFS_BUILD_DIR/migrate/sessfs-migrate (default: build/
# in the source tree); build it with buildtype=release or debugoptimized,
# not with sanitizers.
set -euo pipefail

N=${N:-100000}
RUNS=${RUNS:-3}
MIN=${MIN:-1024}
MAX=${MAX:-4096}
TTL=2764800 # 32 days, the default ttl
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SESSFS_BUILD_DIR:-$src/build}
migrate=$build/migrate/sessfs-migrate

for tool in redis-server redis-cli python3 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "backup_bench: $tool is missing" >&2; exit 2; }
done
[ -x "$migrate" ] || { echo "backup_bench: $migrate is missing: build first" >&2; exit 2; }

work=$(mktemp -d /tmp/backupbench.XXXXXX)
redis_pid=
cleanup() {
	# Only the server this script started, by its pid.
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

echo "making $N sessions of $MIN-$MAX bytes (layout v1 writes) ..."
python3 - "$work" "$N" "$TTL" "$MIN" "$MAX" <<'EOF'
import random, sys
work, n, ttl, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(1)
alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789;:|\"{}"


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


with open(work + "/layout.txt", "wb") as layout:
    for i in range(n):
        name = "sess_%026d" % i
        size = rnd.randint(lo, hi)
        data = bytes(rnd.choice(alphabet) for _ in range(64)) * (size // 64 + 1)
        data = data[:size]
        # What a put stores (store.c's put script), as plain commands.
        k = "sessfs:" + name
        m = "sessfs:{" + k + "}:m"
        mt = 1700000000123456789 + i
        layout.write(cmd("SET", k, data, "PX", ttl * 1000))
        layout.write(cmd("HSET", m, "v", 1, "mt", mt, "ct", mt, "uid", 33,
                         "gid", 33, "mode", 384, "host", "web1-3f2a9c1d",
                         "hs", "%020d" % mt, "wv", 1))
        layout.write(cmd("PEXPIRE", m, ttl * 2000))
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	--maxmemory-policy noeviction --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
url=redis://127.0.0.1:$port/0
for _ in $(seq 100); do
	redis-cli -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.05
done
rcli() { redis-cli -p "$port" "$@"; }
now() { date +%s.%N; }
# CPU seconds redis-server has used (user + system): the server's share of
# the work, less disturbed by other load on the machine than wall time.
redis_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$redis_pid/stat"; }
delta() { python3 -c "print($2 - $1)"; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# Peak RSS in KiB from a /usr/bin/time -v report.
peak_kib() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }

pipe_load() {
	rcli --pipe <"$work/layout.txt" >"$work/pipe.log"
	grep -q "errors: 0, replies: $((3 * N))" "$work/pipe.log" ||
		{ cat "$work/pipe.log" >&2; exit 1; }
}

pipe_times=() backup_times=() restore_times=() backup_rss=() restore_rss=()
pipe_cpu=() backup_cpu=() restore_cpu=()
for _ in $(seq "$RUNS"); do
	rcli flushall sync >/dev/null
	c0=$(redis_cpu)
	t0=$(now)
	pipe_load
	t1=$(now)
	pipe_cpu+=("$(delta "$c0" "$(redis_cpu)")")
	pipe_times+=("$(delta "$t0" "$t1")")

	rm -f "$work/b.sfbk"
	c0=$(redis_cpu)
	out=$(/usr/bin/time -v -o "$work/time.txt" \
		"$migrate" backup --json "$url" "$work/b.sfbk")
	backup_cpu+=("$(delta "$c0" "$(redis_cpu)")")
	records=$(json_field records <<<"$out")
	[ "$records" -eq "$N" ] || { echo "backup_bench: backed up $records of $N" >&2; exit 1; }
	backup_times+=("$(json_field seconds <<<"$out")")
	backup_rss+=("$(peak_kib "$work/time.txt")")

	rcli flushall sync >/dev/null
	c0=$(redis_cpu)
	out=$(/usr/bin/time -v -o "$work/time.txt" \
		"$migrate" restore --json "$work/b.sfbk" "$url")
	restore_cpu+=("$(delta "$c0" "$(redis_cpu)")")
	restored=$(json_field restored <<<"$out")
	[ "$restored" -eq "$N" ] || { echo "backup_bench: restored $restored of $N" >&2; exit 1; }
	# The restore's own clock starts after the check of the whole file:
	# the wall time of the process, from /usr/bin/time, includes it.
	restore_times+=("$(python3 - "$work/time.txt" <<'EOF'
import sys
for line in open(sys.argv[1]):
    if "Elapsed (wall clock)" in line:
        parts = line.rsplit(" ", 1)[1].strip().split(":")
        print(sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts))))
EOF
)")
	restore_rss+=("$(peak_kib "$work/time.txt")")
done
size=$(stat -c %s "$work/b.sfbk")

python3 - "$N" "$MIN" "$MAX" "$size" "${pipe_times[*]}" "${backup_times[*]}" \
	"${restore_times[*]}" "${backup_rss[*]}" "${restore_rss[*]}" \
	"${pipe_cpu[*]}" "${backup_cpu[*]}" "${restore_cpu[*]}" <<'EOF'
import statistics, sys
n, lo, hi, size = (int(a) for a in sys.argv[1:5])
pipe, backup, restore, brss, rrss, pcpu, bcpu, rcpu = (
    statistics.median(map(float, a.split())) for a in sys.argv[5:13])
print()
print("%d sessions of %d-%d bytes, median of %d run(s); file %.1f MB"
      % (n, lo, hi, len(sys.argv[5].split()), size / 1e6))
print("%-32s %12s %10s %8s %14s %12s" % ("", "sessions/s", "seconds",
                                         "ratio", "redis us/sess",
                                         "peak RSS MB"))
for label, secs, cpu, rss in (
        ("redis-cli --pipe (layout v1)", pipe, pcpu, None),
        ("sessfs-migrate backup", backup, bcpu, brss),
        ("sessfs-migrate restore", restore, rcpu, rrss)):
    print("%-32s %12.0f %10.2f %8.2f %14.1f %12s"
          % (label, n / secs, secs, pipe / secs, cpu / n * 1e6,
             "%.1f" % (rss / 1024) if rss else ""))
EOF
