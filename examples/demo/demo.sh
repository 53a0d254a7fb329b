#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# sessfs demo: the whole migration of two unchanged web apps' sessions from
# files to Redis, a rollback drill back to files and forward again, while
# simulated users keep logging in, counting and reading their sessions.
#
#   1. a throwaway redis-server on a free loopback port (no persistence);
#   2. the PHP app (examples/php/index.php, `files` handler, under `php -S`
#      with workers) and the Flask app (examples/flask/app.py, Flask-Session
#      `filesystem`, under gunicorn), both as www-data, each with its own
#      session directory (0700 www-data);
#   3. the load (examples/demo/loadgen.py): four users per app log in and
#      keep counting (/incr) and reading (/whoami); every reply is checked;
#   4. sessfs-migrate copy: the existing session files into Redis;
#   5. sessfs mounted over both directories in mode dual-write (every write
#      goes to the files, then to Redis), apps and users still running;
#      sessfs-migrate verify --mount: both stores agree;
#   6. mode redis-first (Redis authoritative, the files kept current), then
#      redis-only (Redis alone): sessfs-migrate mode;
#   7. rollback drill: sessfs-migrate rollback (redis-first, export, verify,
#      files, unmount) -- plain session files again, users still counting;
#   8. forward again: mount dual-write, copy, verify, redis-first,
#      redis-only;
#   9. the users stop; every user's session is checked once more; one table
#      per phase (duration, requests, errors, sessions checked and lost)
#      and the line `TOTAL requests=N errors=N lost=N`;
#  10. the apps stop, sessfs is unmounted, Redis stops.
#
# Run as root after `./scripts/setup.sh build` (or `./scripts/setup.sh
# demo`, which does both).  Environment:
#   SESSFS=PATH            the daemon to run (default: sessfs on PATH)
#   SESSFS_MIGRATE=PATH    the tool (default: sessfs-migrate on PATH)
#   SESSFS_DEMO_KEEP=1     keep the work directory (logs, session dirs)
#
# Everything it starts is stopped by PID, and every mount is removed, when
# it ends, fails or is interrupted (Ctrl-C).  Exit status: 0 when no
# request failed, no session was lost and every check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SESSFS=${SESSFS:-$(command -v sessfs || true)}
MIGRATE=${SESSFS_MIGRATE:-$(command -v sessfs-migrate || true)}
PYTHON=/usr/bin/python3
APP_USER=www-data
USERS_PER_APP=4
PHASE_REQUESTS=300 # requests of the load between two steps

WORK=
REDIS_PID=
REDIS_PORT=
PHP_PID=
FLASK_PID=
LOAD_PID=
declare -A MOUNT_PID=() # mountpoint -> sessfs daemon PID
passed=0
failed=0

# --- output -------------------------------------------------------------

step_no=0
step()
{
	step_no=$((step_no + 1))
	printf '\n=== step %d: %s\n' "$step_no" "$*"
}

info()
{
	printf '    %s\n' "$*"
}

# cmdline NAME ARGS...: prints a command as it would be typed (NAME for
# the program, which may run from a build directory).
cmdline()
{
	printf '    $ %s' "$1"
	shift
	[[ $# -gt 0 ]] && printf ' %q' "$@"
	printf '\n'
}

# mig ARGS...: prints and runs sessfs-migrate, its output indented.
mig()
{
	cmdline sessfs-migrate "$@"
	"$MIGRATE" "$@" 2>&1 | sed 's/^/      /'
	return "${PIPESTATUS[0]}"
}

ok()
{
	passed=$((passed + 1))
	printf '    [ok]   %s\n' "$*"
}

bad()
{
	failed=$((failed + 1))
	printf '    [FAIL] %s\n' "$*"
}

# check DESCRIPTION GOT WANT: one check, counted.
check()
{
	if [[ $2 == "$3" ]]; then
		ok "$1: '$2'"
	else
		bad "$1: got '$2', expected '$3'"
	fi
}

die()
{
	printf '\ndemo: %s\n' "$*" >&2
	exit 1
}

# --- cleanup --------------------------------------------------------------

is_mounted()
{
	findmnt -rn --mountpoint "$1" >/dev/null 2>&1
}

is_sessfs()
{
	findmnt -rn -o FSTYPE --mountpoint "$1" 2>/dev/null | grep -qx fuse.sessfs
}

# stop_pid PID [GROUP]: SIGTERM, up to 5 s, then SIGKILL.  With GROUP=1 the
# signals go to PID's process group (the servers run in their own session,
# PID is its leader), so PHP's and gunicorn's workers stop too.
stop_pid()
{
	local pid=$1 target=$1 i
	[[ ${2:-0} -eq 1 ]] && target=-$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM -- "$target" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		info "pid $pid did not stop on SIGTERM: SIGKILL"
		kill -KILL -- "$target" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

dump_logs()
{
	local f
	[[ -n $WORK && -d $WORK/logs ]] || return 0
	for f in "$WORK"/logs/*.log; do
		[[ -s $f ]] || continue
		printf '\n--- last lines of %s\n' "$f"
		tail -n 30 "$f"
	done
}

# True when the daemon has -u (every layer, and its bind under /run/sessfs):
# a usage line "sessfs -u", not the mention of 'fusermount3 -u'.
sessfs_has_u()
{
	"$SESSFS" --help 2>&1 | grep -Eq '(^|[[:space:]/])sessfs -u |^[[:space:]]+-u[ ,]'
}

# unmount_layers DIR: every sessfs layer on DIR, lazily.
unmount_layers()
{
	local i
	if sessfs_has_u; then
		"$SESSFS" -u "$1" >/dev/null && return 0
	fi
	for ((i = 0; i < 16; i++)); do
		is_sessfs "$1" || return 0
		fusermount3 -u -z "$1" || return 1
	done
}

cleanup()
{
	local rc=$? mnt
	trap - EXIT INT TERM
	set +e
	[[ $rc -ne 0 ]] && dump_logs
	if [[ ${#MOUNT_PID[@]} -gt 0 || -n $LOAD_PID ]]; then
		printf '\n=== cleanup\n'
	fi
	# The load first, then the apps: they must not see the directories
	# underneath.
	[[ -n $LOAD_PID ]] && stop_pid "$LOAD_PID"
	[[ -n $PHP_PID ]] && stop_pid "$PHP_PID" 1
	[[ -n $FLASK_PID ]] && stop_pid "$FLASK_PID" 1
	for mnt in "${!MOUNT_PID[@]}"; do
		if is_sessfs "$mnt"; then
			info "unmounting $mnt"
			unmount_layers "$mnt"
		fi
		stop_pid "${MOUNT_PID[$mnt]}"
		# A daemon that had to be killed leaves its bind: -u removes it.
		sessfs_has_u && "$SESSFS" -u "$mnt" >/dev/null 2>&1
	done
	[[ -n $REDIS_PID ]] && stop_pid "$REDIS_PID"
	if [[ -n $WORK && -d $WORK ]]; then
		if findmnt -rn -o TARGET | grep -qF "$WORK"; then
			printf 'demo: a mount under %s remains: not removing it\n' "$WORK" >&2
			rc=1
		elif [[ ${SESSFS_DEMO_KEEP:-0} == 1 ]]; then
			printf 'demo: kept %s\n' "$WORK"
		else
			rm -rf -- "$WORK"
		fi
	fi
	exit "$rc"
}

# --- helpers --------------------------------------------------------------

free_port()
{
	"$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

rcli()
{
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

redis_url()
{
	printf 'redis://127.0.0.1:%s/0' "$REDIS_PORT"
}

# wait_until SECONDS PID DESCRIPTION COMMAND...: polls COMMAND every 0.1 s;
# fails at once if PID (the process that should bring it about) died.
wait_until()
{
	local secs=$1 pid=$2 what=$3 i
	shift 3
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || die "$what: the process (pid $pid) died"
		sleep 0.1
	done
	die "$what: not ready after ${secs}s"
}

session_dir()
{
	printf '%s/sessions-%s' "$WORK" "$1"
}

prefix()
{
	printf 'demo-%s:' "$1"
}

list_dir()
{
	local dir=$1 line
	while IFS= read -r line; do
		info "  $line"
	done < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%M %u %6s  %f\n' | sort -k4)
}

# --- the load ----------------------------------------------------------------

# phase NAME: the load counts from now on under NAME.
phase()
{
	printf '%s\n' "$1" >"$WORK/load/phase.tmp"
	mv "$WORK/load/phase.tmp" "$WORK/load/phase"
}

load_status()
{
	"$PYTHON" -c 'import json, sys
st = json.load(open(sys.argv[1]))
print(st[sys.argv[2]])' "$WORK/load/status" "$1" 2>/dev/null || echo 0
}

load_ready()
{
	[[ $(load_status ready) -ge $((2 * USERS_PER_APP)) ]]
}

# load_wait N: until the users made N more requests (or they all logged in
# for N=ready).
load_wait()
{
	local goal i
	if [[ $1 == ready ]]; then
		wait_until 30 "$LOAD_PID" "the users' logins" load_ready
		return
	fi
	goal=$(($(load_status requests) + $1))
	for ((i = 0; i < 600; i++)); do
		[[ $(load_status requests) -ge $goal ]] && return 0
		kill -0 "$LOAD_PID" 2>/dev/null || die "the load generator died"
		sleep 0.1
	done
	die "the load made no progress for 60 s (see $WORK/logs/load.log)"
}

load_line()
{
	info "load: $(load_status requests) requests so far, $(load_status errors) errors"
}

# --- the demo -------------------------------------------------------------

preflight()
{
	step "preflight"
	[[ $(id -u) -eq 0 ]] || die "run me as root (mounts, www-data servers)"
	[[ -n $SESSFS && -x $SESSFS ]] ||
		die "no sessfs daemon: run ./scripts/setup.sh build first, or set SESSFS=path"
	[[ -n $MIGRATE && -x $MIGRATE ]] ||
		die "no sessfs-migrate: run ./scripts/setup.sh build first, or set SESSFS_MIGRATE=path"
	local c
	for c in redis-server redis-cli php gunicorn curl fusermount3 findmnt setpriv setsid "$PYTHON"; do
		command -v "$c" >/dev/null || die "'$c' is missing: run ./scripts/setup.sh deps"
	done
	[[ -e /dev/fuse ]] || die "/dev/fuse is missing (no FUSE in this kernel or container)"
	id -u "$APP_USER" >/dev/null 2>&1 || die "user $APP_USER does not exist"
	info "daemon: $SESSFS ($("$SESSFS" -V 2>/dev/null | head -n 1 || echo '?'))"
	info "tool:   $MIGRATE ($("$MIGRATE" --version))"
	info "redis:  $(redis-server --version)"
	info "php:    $(php -r 'echo PHP_VERSION;'), $(gunicorn --version 2>&1 | tr -d '()')"
}

make_workdir()
{
	step "work directory"
	WORK=$(mktemp -d /tmp/sessfs-demo.XXXXXX)
	# www-data must traverse it to reach its session dirs and the apps.
	chmod 0755 "$WORK"
	mkdir -m 0700 "$WORK/redis" "$WORK/load"
	mkdir -m 0755 "$WORK/logs" "$WORK/app-php" "$WORK/app-flask"
	# Copies of the apps: the clone may live where www-data cannot read
	# (/root/...).
	cp "$ROOT/examples/php/index.php" "$WORK/app-php/"
	cp "$ROOT/examples/flask/app.py" "$WORK/app-flask/"
	local app
	for app in php flask; do
		install -d -m 0700 -o "$APP_USER" -g "$APP_USER" "$(session_dir "$app")"
	done
	info "$WORK: redis/, sessions-php/ and sessions-flask/ (0700 $APP_USER), logs/, load/"
}

start_redis()
{
	step "start a throwaway redis-server on loopback"
	REDIS_PORT=$(free_port)
	# No persistence, never evicting (sessfs refuses an evicting policy).
	cat >"$WORK/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
daemonize no
dir $WORK/redis
logfile $WORK/logs/redis.log
maxmemory-policy noeviction
EOF
	cmdline redis-server "$WORK/redis/redis.conf" --save '' --appendonly no
	# setsid: its own session, so that a Ctrl-C reaches only this script,
	# which then stops everything in order.
	setsid redis-server "$WORK/redis/redis.conf" --save '' --appendonly no &
	REDIS_PID=$!
	wait_until 10 "$REDIS_PID" "redis-server" rcli ping
	info "redis-server pid $REDIS_PID listening on 127.0.0.1:$REDIS_PORT"
}

# start_app php|flask: the app as www-data in its own session (so the
# whole process group stops together), environment cleared.
start_app()
{
	local app=$1 port
	port=$(free_port)
	local env=(env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/nonexistent
		"SESS_DIR=$(session_dir "$app")")
	local as=(setpriv --reuid="$APP_USER" --regid="$APP_USER" --init-groups)
	if [[ $app == php ]]; then
		PHP_PORT=$port
		(
			cd "$WORK/app-php"
			exec setsid "${as[@]}" "${env[@]}" PHP_CLI_SERVER_WORKERS=4 \
				php -S "127.0.0.1:$port" index.php
		) >"$WORK/logs/php.log" 2>&1 &
		PHP_PID=$!
		info "php -S 127.0.0.1:$port index.php (4 workers) as $APP_USER, pid $PHP_PID"
	else
		FLASK_PORT=$port
		(
			cd "$WORK/app-flask"
			exec setsid "${as[@]}" "${env[@]}" SECRET_KEY=sessfs-demo \
				gunicorn -w 2 -b "127.0.0.1:$port" app:app
		) >"$WORK/logs/flask.log" 2>&1 &
		FLASK_PID=$!
		info "gunicorn -w 2 -b 127.0.0.1:$port app:app as $APP_USER, pid $FLASK_PID"
	fi
	wait_until 20 "$!" "$app app" curl -sf --max-time 2 "http://127.0.0.1:$port/health"
}

start_apps()
{
	step "start the two unchanged apps as $APP_USER"
	start_app php
	start_app flask
}

start_load()
{
	step "users log in and keep counting: plain session files"
	phase "plain files"
	cmdline loadgen.py --control "$WORK/load" --users "$USERS_PER_APP" \
		"php=http://127.0.0.1:$PHP_PORT" "flask=http://127.0.0.1:$FLASK_PORT"
	setsid "$PYTHON" "$ROOT/examples/demo/loadgen.py" --control "$WORK/load" \
		--users "$USERS_PER_APP" "php=http://127.0.0.1:$PHP_PORT" \
		"flask=http://127.0.0.1:$FLASK_PORT" \
		>"$WORK/load/report" 2>"$WORK/logs/load.log" &
	LOAD_PID=$!
	info "(each user: /login once, then /incr, every fourth request /whoami;"
	info " every reply is checked; errors go to logs/load.log)"
	load_wait ready
	load_wait "$PHASE_REQUESTS"
	load_line
	local app
	for app in php flask; do
		info "$(session_dir "$app"):"
		list_dir "$(session_dir "$app")"
	done
}

copy_all()
{
	local app dir log rc
	for app in php flask; do
		dir=$(session_dir "$app")
		log=$WORK/logs/copy-$app.log
		cmdline sessfs-migrate copy "$dir" "$(redis_url)" --prefix "$(prefix "$app")"
		rc=0
		"$MIGRATE" copy --no-progress "$dir" "$(redis_url)" \
			--prefix "$(prefix "$app")" >>"$log" 2>&1 || rc=$?
		check "copy of $dir: exit status" "$rc" 0
		info "$("$PYTHON" -c 'import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print("copied %(copied)d, already in Redis %(skipped_existing)d, deleted there %(skipped_tombstone)d, errors %(errors)d" % s)' "$log")"
	done
}

copy_first()
{
	step "copy the existing session files into Redis (offline, before mounting)"
	phase "copy"
	info "(a copy never overwrites a newer value or a deleted session in"
	info " Redis; its JSON summary goes to logs/copy-*.log here)"
	copy_all
	load_wait "$PHASE_REQUESTS"
	load_line
}

mount_one()
{
	local app=$1 mode=$2 dir pid opts
	dir=$(session_dir "$app")
	opts="mode=$mode,prefix=$(prefix "$app"),allow_other,state_dir=$WORK/state-$app"
	cmdline sessfs "$(redis_url)" "$dir" -f -o "$opts"
	setsid "$SESSFS" "$(redis_url)" "$dir" -f -o "$opts" \
		>>"$WORK/logs/sessfs-$app.log" 2>&1 &
	pid=$!
	MOUNT_PID[$dir]=$pid
	wait_until 10 "$pid" "sessfs on $dir" is_sessfs "$dir"
	info "mounted (daemon pid $pid)"
}

mount_all()
{
	local mode=$1 app
	for app in php flask; do
		mount_one "$app" "$mode"
	done
}

verify_all()
{
	local app rc
	for app in php flask; do
		rc=0
		mig verify --mount "$(session_dir "$app")" || rc=$?
		check "verify --mount $(session_dir "$app"): exit status" "$rc" 0
	done
}

mode_all()
{
	local mode=$1 app rc
	for app in php flask; do
		rc=0
		mig mode "$mode" --mount "$(session_dir "$app")" || rc=$?
		check "mode $mode on $(session_dir "$app"): exit status" "$rc" 0
	done
}

# in_phase NAME: the load's next phase, PHASE_REQUESTS requests long.
in_phase()
{
	phase "$1"
	load_wait "$PHASE_REQUESTS"
	load_line
}

dual_write()
{
	step "mount sessfs in mode dual-write, apps and users still running"
	info "(dual-write: the files stay authoritative; every write goes to the"
	info " files, then to Redis; -f keeps the daemon in the foreground so the"
	info " demo holds its pid and log)"
	phase "mount dual-write"
	mount_all dual-write
	in_phase "dual-write"

	step "verify: Redis and the files underneath agree (through the daemon)"
	phase "verify"
	verify_all
	in_phase "dual-write, verified"
}

redis_modes()
{
	step "mode redis-first: Redis authoritative, the files kept current"
	phase "mode redis-first"
	mode_all redis-first
	in_phase "redis-first"

	step "mode redis-only: the sessions live in Redis alone"
	phase "mode redis-only"
	mode_all redis-only
	in_phase "redis-only"
}

show_redis()
{
	local app key
	step "the sessions in Redis, and the mount's status"
	for app in php flask; do
		# Keys holding '{' are meta keys (and sessfs's markers).
		info "$(rcli --scan --pattern "$(prefix "$app")*" | grep -vc '{') value keys and $(rcli --scan --pattern "$(prefix "$app"){*}:m" | wc -l) meta keys under $(prefix "$app")"
	done
	key=$(rcli --scan --pattern "$(prefix php)sess_*" | head -n 1)
	if [[ -n $key ]]; then
		cmdline redis-cli GET "$key"
		rcli GET "$key" | sed 's/^/      /'
		cmdline redis-cli HGETALL "$(prefix php){$key}:m"
		rcli HGETALL "$(prefix php){$key}:m" | paste - - | sed 's/^/      /'
	fi
	mig status --mount "$(session_dir php)" || bad "status of $(session_dir php)"
}

rollback_all()
{
	local app dir pid rc
	step "rollback drill: back to plain files, apps and users still running"
	info "(redis-first, export Redis -> files, verify, files, unmount every"
	info " layer; each step with its duration)"
	phase "rollback drill"
	for app in php flask; do
		dir=$(session_dir "$app")
		rc=0
		mig rollback --mount "$dir" --sessfs "$SESSFS" || rc=$?
		check "rollback of $dir: exit status" "$rc" 0
		pid=${MOUNT_PID[$dir]}
		rc=0
		wait "$pid" || rc=$?
		unset "MOUNT_PID[$dir]"
		check "sessfs on $dir: daemon exit status" "$rc" 0
		is_mounted "$dir" && bad "$dir: still mounted"
	done
	in_phase "plain files again"
	for app in php flask; do
		dir=$(session_dir "$app")
		info "$dir (no mount: the plain files):"
		list_dir "$dir"
		check "$dir: session files owned by $APP_USER, 0600" \
			"$(find "$dir" -mindepth 1 ! -user "$APP_USER" -o -mindepth 1 ! -perm 0600 | wc -l)" 0
	done
}

forward_again()
{
	step "forward again: dual-write, copy, verify, redis-first, redis-only"
	info "(copy catches up Redis with the files the apps wrote while"
	info " unmounted; the daemon replays its own journal)"
	phase "mount dual-write (again)"
	mount_all dual-write
	in_phase "dual-write (again)"
	phase "copy + verify (again)"
	copy_all
	verify_all
	phase "mode redis-first (again)"
	mode_all redis-first
	in_phase "redis-first (again)"
	phase "mode redis-only (again)"
	mode_all redis-only
	in_phase "redis-only (again)"
}

stop_load()
{
	local rc=0
	step "the users stop; every user's session is checked once more"
	phase stop
	wait "$LOAD_PID" || rc=$?
	LOAD_PID=
	LOAD_RC=$rc
	if [[ -s $WORK/logs/load.log ]]; then
		info "errors reported by the load (logs/load.log):"
		head -n 20 "$WORK/logs/load.log" | sed 's/^/      /'
	fi
}

stop_all()
{
	local app dir pid rc
	step "stop the apps, then unmount, then stop redis"
	stop_pid "$PHP_PID" 1
	PHP_PID=
	stop_pid "$FLASK_PID" 1
	FLASK_PID=
	for app in php flask; do
		dir=$(session_dir "$app")
		pid=${MOUNT_PID[$dir]}
		if sessfs_has_u; then
			cmdline sessfs -u "$dir"
			"$SESSFS" -u "$dir" | sed 's/^/      /'
		else
			cmdline fusermount3 -u "$dir"
			fusermount3 -u "$dir"
		fi
		rc=0
		wait "$pid" || rc=$?
		unset "MOUNT_PID[$dir]"
		check "sessfs on $dir: daemon exit status" "$rc" 0
	done
	stop_pid "$REDIS_PID"
	REDIS_PID=
	info "(the sessions were in Redis: a real migration would keep it"
	info " running, or roll back first)"
}

main()
{
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	preflight
	make_workdir
	start_redis
	start_apps
	start_load
	copy_first
	dual_write
	redis_modes
	show_redis
	rollback_all
	forward_again
	stop_load
	stop_all
	printf '\n=== summary: %d checks passed, %d failed\n\n' "$passed" "$failed"
	cat "$WORK/load/report"
	[[ $failed -eq 0 && $LOAD_RC -eq 0 ]]
}

main "$@"
