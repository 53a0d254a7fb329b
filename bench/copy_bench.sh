#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Benchmark of `sessfs-migrate copy` (not a test): makes N PHP sessions of
# 1-4 KiB, then loads them into a throwaway redis-server, each way on an
# emptied server:
#   - redis-cli --pipe of plain `SET key value EX ttl` from a prepared
#     file: the limit of what Redis can ingest (no file reading, no meta);
#   - redis-cli --pipe of layout v1's writes without any check (SET of the
#     value, HSET + PEXPIRE of the meta key): the ceiling of the layout;
#   - sessfs-migrate copy (value + meta keys, batched COPYUP transactions);
#   - with BASE=path/to/sessfs-migrate, that binary's copy too (an older
#     build: before/after in one run, against the same baselines);
#   - the plan's estimate of 10 ms per session;
# and prints sessions/s, seconds, the ratio to redis-cli --pipe and the
# redis-server CPU time per session, with analyze's estimate of the copy
# time next to the measured one.  The target is at least 0.4 of the
# redis-cli --pipe rate (issue 14; layout v1's own writes cap it at ~0.55).
#
# Usage: bench/copy_bench.sh            (N=100000 RUNS=3 by default)
#        N=20000 RUNS=1 JOBS=2 bench/copy_bench.sh
#        BASE=/tmp/old/sessfs-migrate bench/copy_bench.sh
# The binary is $SESSFS_BUILD_DIR/migrate/sessfs-migrate (default: build/
# in the source tree); build it with buildtype=release or debugoptimized,
# not with sanitizers.
set -euo pipefail

N=${N:-100000}
RUNS=${RUNS:-3}
JOBS=${JOBS:-}
BASE=${BASE:-}
TTL=2764800 # 32 days, the default ttl
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SESSFS_BUILD_DIR:-$src/build}
migrate=$build/migrate/sessfs-migrate

for tool in redis-server redis-cli python3; do
	command -v "$tool" >/dev/null || { echo "copy_bench: $tool is missing" >&2; exit 2; }
done
[ -x "$migrate" ] || { echo "copy_bench: $migrate is missing: build first" >&2; exit 2; }
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "copy_bench: BASE $BASE is not executable" >&2; exit 2; }

work=$(mktemp -d /tmp/copybench.XXXXXX)
redis_pid=
cleanup() {
	# Only the server this script started, by its pid.
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

echo "making $N sessions of 1-4 KiB in $work/sessions ..."
python3 - "$work" "$N" "$TTL" <<'EOF'
import os, random, sys
work, n, ttl = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = os.path.join(work, "sessions")
os.mkdir(d)
rnd = random.Random(1)
alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789;:|\"{}"


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


with open(os.path.join(work, "pipe.txt"), "wb") as pipe, \
        open(os.path.join(work, "layout.txt"), "wb") as layout:
    for i in range(n):
        name = "sess_%026d" % i
        size = rnd.randint(1024, 4096)
        data = bytes(rnd.choice(alphabet) for _ in range(64)) * (size // 64)
        data += b"x" * (size - len(data))
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        pipe.write(cmd("SET", "pipe:" + name, data, "EX", ttl))
        # What a put stores (store.c's put script), as plain commands.
        k = "sessfs:" + name
        m = "sessfs:{" + k + "}:m"
        mt = 1700000000123456789 + i
        layout.write(cmd("SET", k, data, "PX", int(ttl) * 1000))
        layout.write(cmd("HSET", m, "v", 1, "mt", mt, "ct", mt, "uid", 33,
                         "gid", 33, "mode", 384, "host", "web1-3f2a9c1d",
                         "hs", "%020d" % mt, "wv", 1))
        layout.write(cmd("PEXPIRE", m, int(ttl) * 2000))
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
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

estimate=$("$migrate" analyze --json "$work/sessions" "$url" |
	python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["copy_estimate"]["seconds"])')

# One copy into an emptied server by the binary $1: appends its seconds
# and the server's CPU seconds to the arrays named $2 and $3.
copy_run() {
	local out copied c0 c1
	local -n times=$2 cpu=$3
	rcli flushall sync >/dev/null
	c0=$(redis_cpu)
	out=$("$1" copy --no-progress ${JOBS:+--jobs "$JOBS"} "$work/sessions" "$url")
	c1=$(redis_cpu)
	copied=$(json_field copied <<<"$out")
	[ "$copied" -eq "$N" ] || { echo "copy_bench: $1 copied $copied of $N" >&2; exit 1; }
	times+=("$(json_field seconds <<<"$out")")
	cpu+=("$(python3 -c "print($c1 - $c0)")")
}

copy_times=() pipe_times=() layout_times=() base_times=()
copy_cpu=() pipe_cpu=() layout_cpu=() base_cpu=()
for _ in $(seq "$RUNS"); do
	copy_run "$migrate" copy_times copy_cpu
	[ -z "$BASE" ] || copy_run "$BASE" base_times base_cpu

	rcli flushall sync >/dev/null
	c0=$(redis_cpu)
	t0=$(now)
	rcli --pipe <"$work/pipe.txt" >"$work/pipe.log"
	t1=$(now)
	c1=$(redis_cpu)
	grep -q "errors: 0, replies: $N" "$work/pipe.log" ||
		{ cat "$work/pipe.log" >&2; exit 1; }
	pipe_times+=("$(python3 -c "print($t1 - $t0)")")
	pipe_cpu+=("$(python3 -c "print($c1 - $c0)")")

	rcli flushall sync >/dev/null
	c0=$(redis_cpu)
	t0=$(now)
	rcli --pipe <"$work/layout.txt" >"$work/pipe.log"
	t1=$(now)
	c1=$(redis_cpu)
	grep -q "errors: 0, replies: $((3 * N))" "$work/pipe.log" ||
		{ cat "$work/pipe.log" >&2; exit 1; }
	layout_times+=("$(python3 -c "print($t1 - $t0)")")
	layout_cpu+=("$(python3 -c "print($c1 - $c0)")")
done

python3 - "$N" "$estimate" "${JOBS:-default}" "${pipe_times[*]}" \
	"${pipe_cpu[*]}" "${layout_times[*]}" "${layout_cpu[*]}" \
	"${copy_times[*]}" "${copy_cpu[*]}" "${base_times[*]}" \
	"${base_cpu[*]}" <<'EOF'
import statistics, sys
n, estimate, jobs = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
pipe, pipe_cpu, layout, layout_cpu, copy, copy_cpu = (
    statistics.median(map(float, a.split())) for a in sys.argv[4:10])
plan = n * 0.010
us = lambda cpu: "%.1f" % (cpu / n * 1e6)
rows = [("redis-cli --pipe (SET EX)", pipe, us(pipe_cpu)),
        ("layout v1 writes, no check", layout, us(layout_cpu)),
        ("sessfs-migrate copy", copy, us(copy_cpu))]
if sys.argv[10]:
    base, base_cpu = (statistics.median(map(float, a.split()))
                      for a in sys.argv[10:12])
    rows.append(("sessfs-migrate copy (BASE)", base, us(base_cpu)))
rows.append(("plan: 10 ms/session", plan, ""))
print()
print("%d sessions of 1-4 KiB, median of %d run(s), copy --jobs %s"
      % (n, len(sys.argv[4].split()), jobs))
print("%-28s %12s %10s %8s %14s" % ("", "sessions/s", "seconds", "ratio",
                                    "redis us/sess"))
for label, secs, cpu in rows:
    print("%-28s %12.0f %10.2f %8.2f %14s"
          % (label, n / secs, secs, pipe / secs, cpu))
print("analyze's estimate of the copy: %.2f s (measured %.2f s)"
      % (estimate, copy))
target = "met" if pipe / copy >= 0.4 else "NOT met"
print("target (copy >= 0.4 x redis-cli --pipe rate): %s" % target)
EOF
