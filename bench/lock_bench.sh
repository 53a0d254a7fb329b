#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Benchmark of flock() between processes of one host (not a test): runs
# flock_bench (bench/flock_bench.c) on one session file, side by side
#   - on a plain directory (the kernel's flock, no FUSE);
#   - through BASE's sessfs, if BASE is set (a build without lock
#     forwarding: the kernel's host-local flock on a FUSE file);
#   - through this build's sessfs in redis-only (FLOCK reaches the
#     daemon, which holds the Redis lock of the name for the host);
# for each loop (lock, section, php; fcntl, fcntl-php with a fcntl lock)
# and process count (1, 4), SECS seconds each, and prints cycles/s and
# the mean time of a cycle.  A
# throwaway redis-server on a free loopback port; the mounts and the
# server are stopped by pid at the end.  Run as root (mounts).
#
# Usage: bench/lock_bench.sh
#        BASE=/tmp/build-main SECS=3 bench/lock_bench.sh
# The binaries are $SESSFS_BUILD_DIR/fs/sessfs (default: build/ in the
# source tree) and BASE/fs/sessfs; build without sanitizers.
set -euo pipefail

SECS=${SECS:-2}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SESSFS_BUILD_DIR:-$src/build}
base=${BASE:-}

for tool in redis-server redis-cli cc fusermount3; do
	command -v "$tool" >/dev/null || { echo "lock_bench: $tool is missing" >&2; exit 2; }
done
[ -x "$build/fs/sessfs" ] || { echo "lock_bench: $build/fs/sessfs is missing: build first" >&2; exit 2; }

work=$(mktemp -d /tmp/lockbench.XXXXXX)
redis_pid=
pids=()
mnts=()
cleanup() {
	# Only what this script started: its mounts, daemons and server.
	for m in "${mnts[@]}"; do fusermount3 -u -z "$m" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

cc -O2 -o "$work/flock_bench" "$src/bench/flock_bench.c"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	--maxmemory-policy noeviction --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

# mount NAME SESSFS: sessfs in redis-only on $work/NAME (its own prefix).
mount_sessfs() {
	local dir=$work/$1
	mkdir -p "$dir" "$work/state-$1" "$work/ctl-$1"
	"$2" "redis://127.0.0.1:$port/0" "$dir" -f -o "mode=redis-only,prefix=$1:,state_dir=$work/state-$1,ctl_dir=$work/ctl-$1" \
		>"$work/$1.log" 2>&1 &
	pids+=("$!")
	mnts+=("$dir")
	until grep -q " $dir fuse" /proc/mounts; do sleep 0.05; done
}

mkdir -p "$work/plain"
targets=(plain)
if [ -n "$base" ]; then
	mount_sessfs base "$base/fs/sessfs"
	targets+=(base)
fi
mount_sessfs new "$build/fs/sessfs"
targets+=(new)

printf '%-8s %-8s %5s %10s %10s\n' where loop procs cycles/s mean_us
for loop in lock section php fcntl fcntl-php; do
	for procs in 1 4; do
		for t in "${targets[@]}"; do
			read -r _ _ rate mean < <("$work/flock_bench" "$work/$t/sess_bench" "$loop" "$procs" "$SECS")
			printf '%-8s %-8s %5d %10d %10.1f\n' "$t" "$loop" "$procs" "$rate" "$mean"
		done
	done
done
