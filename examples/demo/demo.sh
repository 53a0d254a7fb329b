#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# sessfs demo, the migration drill: the whole migration of two unchanged
# web apps' sessions from files to Redis, a rollback drill back to files
# and forward again, under a locust load whose every answer is checked.
#
#   1. a throwaway redis-server on a free loopback port (no persistence);
#   2. the translate app (examples/translate/app.py: Flask-Session
#      `filesystem` under gunicorn) and, beside it, the PHP app
#      (examples/php/index.php, `files` handler, under `php -S` with
#      workers), both as www-data, each with its own session directory
#      (0700 www-data);
#   3. the load (examples/translate/locustfile.py, headless locust): the
#      profile's users log in and browse, translate and switch language
#      (1-3 s think time), four of them count on the PHP app; every answer
#      is checked against what the user's session must hold;
#   4. the phases, each at least --phase-seconds long under the load:
#      plain session files; sessfs mounted over both directories in mode
#      dual-write; backfill (sessfs-migrate copy --mount: the daemon copies
#      the session files into Redis under the load); verify (sessfs-migrate verify --mount); redis-first;
#      redis-only; a rollback drill (sessfs-migrate rollback: back to plain
#      files, unmounted); plain files again; forward again (dual-write,
#      backfill + verify, redis-first, redis-only);
#   5. the users stop and check their session once more; one table: per
#      phase its seconds, requests, req/s, p50/p95/p99 response time,
#      errors and sessions lost; the plan's thresholds (p95 < 500 ms,
#      errors < 1 %, >= 100 req/s) as pass/fail; and the line
#        TOTAL requests=N errors=N lost=N p95_ms=N req_per_s=N
#   6. the apps stop, sessfs is unmounted, Redis stops.
#
# Usage: demo.sh [--profile baseline|stress|spike] [--phase-seconds N]
#   baseline  50 users, 10 a second ramp (the default)
#   stress   200 users, 20 a second
#   spike    500 users, 250 a second (a fast ramp)
#   --phase-seconds N  each phase's length under the load (default 10)
# Run as root after `./scripts/setup.sh build` (or `./scripts/setup.sh
# demo [ARGS]`, which does both).  Environment:
#   SESSFS=PATH            the daemon to run (default: sessfs on PATH)
#   SESSFS_MIGRATE=PATH    the tool (default: sessfs-migrate on PATH)
#   SESSFS_DEMO_KEEP=1     keep the work directory (logs, session dirs)
#
# Everything it starts is stopped by PID, and every mount is removed, when
# it ends, fails or is interrupted (Ctrl-C).  Exit status: 0 when no
# request failed, no session was lost and every check passed; the
# thresholds are reported, they do not decide it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SESSFS=${SESSFS:-$(command -v sessfs || true)}
MIGRATE=${SESSFS_MIGRATE:-$(command -v sessfs-migrate || true)}
PYTHON=/usr/bin/python3
APP_USER=www-data
PHP_USERS=4 # of the profile's users, the ones on the PHP app
PROFILE=baseline
PHASE_SECONDS=10
CHECK_ONLY=0
USERS=      # the profile's: users in all, spawned per second
SPAWN_RATE=
IDLE=       # idle sessions: as many as users (only a backfill moves them)

WORK=
REDIS_PID=
REDIS_PORT=
PHP_PID=
PHP_PORT=
FLASK_PID=
TRANSLATE_PORT=
LOAD_PID=
LOAD_RC=1
PHASE_START=0 # when the current phase began (now_us)
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
	# Interrupted (Ctrl-C, SIGTERM): no logs, the user knows why.
	[[ $rc -ne 0 && $rc -ne 130 && $rc -ne 143 ]] && dump_logs
	if [[ ${#MOUNT_PID[@]} -gt 0 || -n $LOAD_PID ]]; then
		printf '\n=== cleanup\n'
	fi
	# The load first (locust stops on SIGTERM), then the apps: they must
	# not see the directories underneath.
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
	local secs=$1 pid=$2 what=$3 end=$((SECONDS + $1))
	shift 3
	# A deadline, not a count of polls: a poll may take long on a loaded
	# machine.
	while ((SECONDS < end)); do
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

# --- the load ----------------------------------------------------------------

# phase NAME: the load counts from now on under NAME (the locustfile
# follows load/phase).
phase()
{
	printf '%s\n' "$1" >"$WORK/load/phase.tmp"
	mv "$WORK/load/phase.tmp" "$WORK/load/phase"
	PHASE_START=$(now_us)
}

# now_us: microseconds since the epoch.
now_us()
{
	local t=$EPOCHREALTIME
	printf '%s\n' "${t/[.,]/}"
}

load_status()
{
	"$PYTHON" -c 'import json, sys
st = json.load(open(sys.argv[1]))
print(st[sys.argv[2]])' "$WORK/load/status" "$1" 2>/dev/null || echo 0
}

load_ready()
{
	[[ $(load_status ready) -ge $((USERS + IDLE)) ]]
}

load_line()
{
	info "load: $(load_status requests) requests so far, $(load_status errors) errors, $(load_status lost) sessions lost"
}

# hold: the load goes on until the current phase is PHASE_SECONDS old
# (a step that took longer is not stretched).
hold()
{
	local left
	left=$((PHASE_START + PHASE_SECONDS * 1000000 - $(now_us)))
	if [[ $left -gt 0 ]]; then
		left=$(printf '%d.%06d' $((left / 1000000)) $((left % 1000000)))
		info "(the load goes on for ${left%????}s)"
		sleep "$left"
	fi
	kill -0 "$LOAD_PID" 2>/dev/null || die "the load (locust) died: see logs/locust.log"
	load_line
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
	for c in redis-server redis-cli php gunicorn locust curl fusermount3 findmnt setpriv setsid "$PYTHON"; do
		command -v "$c" >/dev/null || die "'$c' is missing: run ./scripts/setup.sh deps"
	done
	[[ -e /dev/fuse ]] || die "/dev/fuse is missing (no FUSE in this kernel or container)"
	id -u "$APP_USER" >/dev/null 2>&1 || die "user $APP_USER does not exist"
	info "daemon: $SESSFS ($("$SESSFS" -V 2>/dev/null | head -n 1 || echo '?'))"
	info "tool:   $MIGRATE ($("$MIGRATE" --version))"
	info "redis:  $(redis-server --version)"
	info "php:    $(php -r 'echo PHP_VERSION;'), $(gunicorn --version 2>&1 | tr -d '()')"
	info "load:   locust $(dpkg-query -W -f='${Version}' python3-locust 2>/dev/null || echo '?'), profile $PROFILE: $USERS users ($PHP_USERS on the PHP app), $SPAWN_RATE spawned a second, phases of ${PHASE_SECONDS}s"
}

make_workdir()
{
	step "work directory"
	WORK=$(mktemp -d /tmp/sessfs-demo.XXXXXX)
	# www-data must traverse it to reach its session dirs and the apps.
	chmod 0755 "$WORK"
	mkdir -m 0700 "$WORK/redis" "$WORK/load"
	mkdir -m 0755 "$WORK/logs" "$WORK/app-php" "$WORK/app-translate"
	# Copies of the apps: the clone may live where www-data cannot read
	# (/root/...).
	cp "$ROOT/examples/php/index.php" "$WORK/app-php/"
	cp "$ROOT/examples/translate/app.py" "$ROOT/examples/translate/words.py" \
		"$ROOT/examples/translate/locustfile.py" "$WORK/app-translate/"
	local app
	for app in php translate; do
		install -d -m 0700 -o "$APP_USER" -g "$APP_USER" "$(session_dir "$app")"
	done
	info "$WORK: redis/, sessions-php/ and sessions-translate/ (0700 $APP_USER), logs/, load/"
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

# start_app php|translate: the app as www-data in its own session (so the
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
		# gthread workers: a request waiting on the mount holds a
		# thread, not a whole worker.
		TRANSLATE_PORT=$port
		(
			cd "$WORK/app-translate"
			exec setsid "${as[@]}" "${env[@]}" SECRET_KEY=sessfs-demo \
				gunicorn -w 4 -k gthread --threads 4 -b "127.0.0.1:$port" app:app
		) >"$WORK/logs/translate.log" 2>&1 &
		FLASK_PID=$!
		info "gunicorn -w 4 -k gthread --threads 4 -b 127.0.0.1:$port app:app as $APP_USER, pid $FLASK_PID"
	fi
	wait_until 20 "$!" "$app app" curl -sf --max-time 2 "http://127.0.0.1:$port/health"
}

start_apps()
{
	step "start the two unchanged apps as $APP_USER"
	start_app translate
	start_app php
}

start_load()
{
	step "the users log in: plain session files"
	phase "ramp-up"
	local env=(DRILL_CONTROL="$WORK/load"
		DRILL_TRANSLATE_URL="http://127.0.0.1:$TRANSLATE_PORT"
		DRILL_PHP_URL="http://127.0.0.1:$PHP_PORT" DRILL_PHP_USERS="$PHP_USERS"
		DRILL_IDLE="$IDLE")
	local cmd=(locust -f locustfile.py --headless -u "$USERS" -r "$SPAWN_RATE"
		--only-summary)
	cmdline env "${env[@]}" "${cmd[@]}"
	# As root, from the copy of the app (the locustfile imports its word
	# table); its own output goes to logs/locust.log, the checks' errors
	# to load/errors.log.
	(
		cd "$WORK/app-translate"
		exec setsid env "${env[@]}" "$PYTHON" "$(command -v locust)" \
			"${cmd[@]:1}"
	) >"$WORK/logs/locust.log" 2>&1 &
	LOAD_PID=$!
	info "(each translate user: POST /login, then GET / x3, POST /translate"
	info " x1, POST /set_language x1 by weight; each PHP user: /login, then"
	info " /incr x3, /whoami x1; 1-3 s think time; every answer checked;"
	info " and $IDLE idle sessions, logged in now and read back at the end)"
	wait_until $((USERS / SPAWN_RATE + 180)) "$LOAD_PID" "the users' logins" load_ready
	load_line

	phase "files"
	hold
	local app
	for app in php translate; do
		info "$(session_dir "$app"): $(find "$(session_dir "$app")" -mindepth 1 -maxdepth 1 | wc -l) session files"
	done
}

# backfill_all: Redis gets every session file it does not hold yet (nor a
# newer value, nor a delete of), copied by the mounted daemon itself under
# the live load (`sessfs-migrate copy --mount DIR`, the online backfill:
# each name under its lock, never over a newer value or a tombstone).  The
# command follows the copy to its end.
backfill_all()
{
	local app dir log rc
	for app in php translate; do
		dir=$(session_dir "$app")
		log=$WORK/logs/copy-$app.log
		cmdline sessfs-migrate copy --mount "$dir"
		rc=0
		"$MIGRATE" copy --mount "$dir" --json >>"$log" 2>&1 || rc=$?
		check "copy --mount $dir: exit status" "$rc" 0
		info "$("$PYTHON" -c 'import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
secs = max((s["finished_ns"] - s["started_ns"]) / 1e9, 1e-9)
print("copied %d, already in Redis %d, deleted there %d, expired %d, errors %d; %d names in %.2f s, %.0f a second" % (s["copied"], s["existing"], s["tombstone"], s["expired"], s["errors"], s["total"], secs, s["total"] / secs))' "$log")"
	done
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

verify_all()
{
	local app rc
	for app in php translate; do
		rc=0
		mig verify --mount "$(session_dir "$app")" || rc=$?
		check "verify --mount $(session_dir "$app"): exit status" "$rc" 0
	done
}

mode_all()
{
	local mode=$1 app rc
	for app in php translate; do
		rc=0
		mig mode "$mode" --mount "$(session_dir "$app")" || rc=$?
		check "mode $mode on $(session_dir "$app"): exit status" "$rc" 0
	done
}

mount_all()
{
	local mode=$1 app
	for app in php translate; do
		mount_one "$app" "$mode"
	done
}

# forward [AGAIN]: files -> dual-write -> backfill -> verify ->
# redis-first -> redis-only, one phase each.
forward()
{
	local again=${1:+ (again)}
	step "mount sessfs in mode dual-write$again, apps and users still running"
	info "(dual-write: the files stay authoritative; every write goes to the"
	info " files, then to Redis)"
	phase "dual-write$again"
	mount_all dual-write
	hold

	step "backfill$again: the session files into Redis"
	info "(never over a newer value or a deleted session in Redis; the JSON"
	info " summaries go to logs/copy-*.log)"
	phase "backfill$again"
	backfill_all
	hold

	step "verify$again: Redis and the files underneath agree (through the daemon)"
	phase "verify$again"
	verify_all
	hold

	step "mode redis-first$again: Redis authoritative, the files kept current"
	phase "redis-first$again"
	mode_all redis-first
	hold

	step "mode redis-only$again: the sessions live in Redis alone"
	phase "redis-only$again"
	mode_all redis-only
	hold
}

show_redis()
{
	local app
	for app in php translate; do
		# Keys holding '{' are meta keys (and sessfs's markers).
		info "$(rcli --scan --pattern "$(prefix "$app")*" | grep -vc '{') value keys and $(rcli --scan --pattern "$(prefix "$app"){*}:m" | wc -l) meta keys under $(prefix "$app")"
	done
}

rollback_all()
{
	local app dir pid rc
	step "rollback drill: back to plain files, apps and users still running"
	info "(redis-first, export Redis -> files, verify, files, unmount every"
	info " layer; each step with its duration)"
	phase "rollback"
	for app in php translate; do
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
	hold

	step "plain session files again"
	phase "files (again)"
	for app in php translate; do
		dir=$(session_dir "$app")
		check "$dir: session files owned by $APP_USER, 0600" \
			"$(find "$dir" -mindepth 1 ! -user "$APP_USER" -o -mindepth 1 ! -perm 0600 | wc -l)" 0
	done
	hold
}

stop_load()
{
	step "the users stop; each checks its session once more"
	phase stop
	LOAD_RC=0
	wait "$LOAD_PID" || LOAD_RC=$?
	LOAD_PID=
	if [[ -s $WORK/load/errors.log ]]; then
		info "errors and lost sessions ($(wc -l <"$WORK/load/errors.log") lines of load/errors.log):"
		head -n 20 "$WORK/load/errors.log" | sed 's/^/      /'
	fi
	[[ -s $WORK/load/report ]] || bad "the load wrote no report (see logs/locust.log)"
}

stop_all()
{
	local app dir pid rc
	step "stop the apps, then unmount, then stop redis"
	stop_pid "$PHP_PID" 1
	PHP_PID=
	stop_pid "$FLASK_PID" 1
	FLASK_PID=
	for app in php translate; do
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

usage()
{
	cat <<USAGE
usage: demo.sh [--profile baseline|stress|spike] [--phase-seconds N]

The migration drill: files, dual-write, backfill, verify, redis-first,
redis-only, a rollback drill and forward again, under a locust load.
  --profile baseline   50 users, 10 spawned a second (the default)
  --profile stress    200 users, 20 a second
  --profile spike     500 users, 250 a second (a fast ramp)
  --phase-seconds N   each phase's length under the load (default 10)
USAGE
}

parse_args()
{
	while [[ $# -gt 0 ]]; do
		case $1 in
		--profile)
			[[ $# -ge 2 ]] || die "--profile needs a value"
			PROFILE=$2
			shift 2
			;;
		--phase-seconds)
			[[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] ||
				die "--phase-seconds needs a whole number of seconds > 0"
			PHASE_SECONDS=$2
			shift 2
			;;
		-h | --help)
			usage
			exit 0
			;;
		--check-args) # setup.sh: only check the arguments
			CHECK_ONLY=1
			shift
			;;
		*)
			usage >&2
			exit 2
			;;
		esac
	done
	case $PROFILE in
	baseline) USERS=50 SPAWN_RATE=10 ;;
	stress) USERS=200 SPAWN_RATE=20 ;;
	spike) USERS=500 SPAWN_RATE=250 ;;
	*) die "unknown profile '$PROFILE' (baseline, stress or spike)" ;;
	esac
	IDLE=$USERS
	[[ $CHECK_ONLY -eq 0 ]] || exit 0
}

main()
{
	parse_args "$@"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	preflight
	make_workdir
	start_redis
	start_apps
	start_load
	forward
	show_redis
	rollback_all
	forward again
	show_redis
	stop_load
	stop_all
	printf '\n=== summary: %d checks passed, %d failed\n\n' "$passed" "$failed"
	if [[ -s $WORK/load/report ]]; then
		printf 'profile %s: %d users (%d on the PHP app), phases of %ds\n' \
			"$PROFILE" "$USERS" "$PHP_USERS" "$PHASE_SECONDS"
		cat "$WORK/load/report"
	fi
	[[ $failed -eq 0 && $LOAD_RC -eq 0 ]]
}

main "$@"
