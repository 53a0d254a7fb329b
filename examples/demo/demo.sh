#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# sessfs demo: two unchanged web apps keep their users logged in while
# sessfs is mounted over their session directories, and from then on the
# sessions live in Redis.
#
#   1. a throwaway redis-server on a free loopback port (no persistence);
#   2. the PHP app (examples/php/index.php, `files` handler, under `php -S`
#      with workers) and the Flask app (examples/flask/app.py, Flask-Session
#      `filesystem`, under gunicorn), both as www-data, each with its own
#      session directory (0700 www-data);
#   3. users log in and count: real session files appear;
#   4. sessfs is mounted over both directories (mode=redis-only) while the
#      apps keep running;
#   5. the same users are still logged in and keep counting, new users log
#      in, one user per app logs out; the sessions are shown in Redis;
#   6. the apps stop, sessfs is unmounted, Redis stops.
#
# Run as root after `./scripts/setup.sh build` (or `./scripts/setup.sh
# demo`, which does both).  Environment:
#   SESSFS=PATH            the daemon to run (default: sessfs on PATH)
#   SESSFS_DEMO_KEEP=1     keep the work directory (logs, lower dirs)
#
# Everything it starts is stopped by PID, and every mount is removed, when
# it ends, fails or is interrupted.  Exit status: 0 when every check
# passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SESSFS=${SESSFS:-$(command -v sessfs || true)}
PYTHON=/usr/bin/python3
APP_USER=www-data

WORK=
REDIS_PID=
REDIS_PORT=
PHP_PID=
FLASK_PID=
declare -A MOUNT_PID=() # mountpoint -> sessfs daemon PID
declare -A ANSWER=()    # "app user" -> last whoami answer
declare -A FILE=()      # "app user" -> session file name before logout
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

# Prints a command as it would be typed.
cmdline()
{
	printf '    $'
	printf ' %q' "$@"
	printf '\n'
}

# Prints a command as it would be typed, then runs it.
show()
{
	cmdline "$@"
	"$@"
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

cleanup()
{
	local rc=$? mnt
	trap - EXIT INT TERM
	set +e
	[[ $rc -ne 0 ]] && dump_logs
	if [[ ${#MOUNT_PID[@]} -gt 0 ]]; then
		printf '\n=== cleanup\n'
	fi
	# The apps first: they must not see the directories underneath.
	[[ -n $PHP_PID ]] && stop_pid "$PHP_PID" 1
	[[ -n $FLASK_PID ]] && stop_pid "$FLASK_PID" 1
	for mnt in "${!MOUNT_PID[@]}"; do
		if is_mounted "$mnt"; then
			info "unmounting $mnt"
			fusermount3 -u -z "$mnt"
		fi
		stop_pid "${MOUNT_PID[$mnt]}"
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

# http APP PATH JAR: the body of GET PATH on APP (php|flask) with the
# cookie jar JAR, or "HTTP <code>" when the status is not 200.
http()
{
	local port body code
	case $1 in
	php) port=$PHP_PORT ;;
	flask) port=$FLASK_PORT ;;
	esac
	body=$(mktemp "$WORK/body.XXXXXX")
	code=$(curl -sS --max-time 20 -o "$body" -w '%{http_code}' \
		-b "$3" -c "$3" "http://127.0.0.1:$port$2") || code=000
	if [[ $code == 200 ]]; then
		cat "$body"
	else
		printf 'HTTP %s' "$code"
	fi
	rm -f "$body"
}

jar()
{
	printf '%s/jars/%s-%s' "$WORK" "$1" "$2"
}

# The session cookie's value in a cookie jar (PHP: PHPSESSID, Flask:
# session), HttpOnly lines included.
cookie()
{
	local name=PHPSESSID
	[[ $1 == flask ]] && name=session
	awk -v n="$name" -F '\t' '$6 == n { v = $7 } END { print v }' "$(jar "$1" "$2")"
}

# The session file name the app uses for a user's cookie: PHP's
# sess_<id>; Flask-Session 0.3.2's md5("session:" + id) (cachelib).  After
# a logout, the name the user had before it.
session_file()
{
	local sid
	if [[ -n ${FILE["$1 $2"]:-} ]]; then
		printf '%s' "${FILE["$1 $2"]}"
		return 0
	fi
	sid=$(cookie "$1" "$2")
	[[ -n $sid ]] || return 0
	if [[ $1 == php ]]; then
		printf 'sess_%s' "$sid"
	else
		printf 'session:%s' "$sid" | md5sum | cut -d' ' -f1
	fi
}

session_dir()
{
	printf '%s/sessions-%s' "$WORK" "$1"
}

prefix()
{
	printf 'demo-%s:' "$1"
}

# user APP USER ROUTE EXPECTED: one request as USER, checked.
user_req()
{
	local got
	got=$(http "$1" "$3" "$(jar "$1" "$2")")
	[[ $3 == /whoami ]] && ANSWER["$1 $2"]=$got
	check "$1 $2 GET $3" "$got" "$4"
}

# --- the demo -------------------------------------------------------------

preflight()
{
	step "preflight"
	[[ $(id -u) -eq 0 ]] || die "run me as root (mounts, www-data servers)"
	[[ -n $SESSFS && -x $SESSFS ]] ||
		die "no sessfs daemon: run ./scripts/setup.sh build first, or set SESSFS=path"
	local c
	for c in redis-server redis-cli php gunicorn curl fusermount3 findmnt setpriv setsid md5sum "$PYTHON"; do
		command -v "$c" >/dev/null || die "'$c' is missing: run ./scripts/setup.sh deps"
	done
	[[ -e /dev/fuse ]] || die "/dev/fuse is missing (no FUSE in this kernel or container)"
	id -u "$APP_USER" >/dev/null 2>&1 || die "user $APP_USER does not exist"
	info "daemon: $SESSFS ($("$SESSFS" -V 2>/dev/null | head -n 1 || echo '?'))"
	info "redis:  $(redis-server --version)"
	info "php:    $(php -r 'echo PHP_VERSION;'), $(gunicorn --version 2>&1 | tr -d '()')"
}

make_workdir()
{
	step "work directory"
	WORK=$(mktemp -d /tmp/sessfs-demo.XXXXXX)
	# www-data must traverse it to reach its session dirs and the apps.
	chmod 0755 "$WORK"
	mkdir -m 0700 "$WORK/redis" "$WORK/jars"
	mkdir -m 0755 "$WORK/logs" "$WORK/app-php" "$WORK/app-flask"
	# Copies of the apps: the clone may live where www-data cannot read
	# (/root/...).
	cp "$ROOT/examples/php/index.php" "$WORK/app-php/"
	cp "$ROOT/examples/flask/app.py" "$WORK/app-flask/"
	local app
	for app in php flask; do
		install -d -m 0700 -o "$APP_USER" -g "$APP_USER" "$(session_dir "$app")"
	done
	info "$WORK: redis/ (config, log), sessions-php/ and sessions-flask/ (0700 $APP_USER), logs/"
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

list_dir()
{
	local dir=$1 line
	while IFS= read -r line; do
		info "  $line"
	done < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%M %u %6s  %f\n' | sort -k4)
}

login_before()
{
	local app user
	step "log users in before sessfs is mounted: plain session files"
	for app in php flask; do
		for user in $(users_of "$app"); do
			: >"$(jar "$app" "$user")"
			user_req "$app" "$user" "/login?user=$user" "ok user=$user"
			user_req "$app" "$user" /incr count=1
			user_req "$app" "$user" /incr count=2
			user_req "$app" "$user" /whoami "user=$user count=2"
		done
	done
	for app in php flask; do
		info "$(session_dir "$app"):"
		list_dir "$(session_dir "$app")"
		for user in $(users_of "$app"); do
			local f
			f=$(session_dir "$app")/$(session_file "$app" "$user")
			if [[ -f $f ]]; then
				check "$app $user: file owner and mode" "$(stat -c '%U %a' "$f")" "$APP_USER 600"
			else
				bad "$app $user: no session file $f"
			fi
		done
	done
}

users_of()
{
	if [[ $1 == php ]]; then
		echo alice bob
	else
		echo carol dave
	fi
}

mount_one()
{
	local app=$1 dir pid
	dir=$(session_dir "$app")
	local cmd=("$SESSFS" "redis://127.0.0.1:$REDIS_PORT" "$dir" -f
		-o "mode=redis-only,prefix=$(prefix "$app"),allow_other,state_dir=$WORK/state-$app")
	cmdline "${cmd[@]}"
	setsid "${cmd[@]}" >"$WORK/logs/sessfs-$app.log" 2>&1 &
	pid=$!
	MOUNT_PID[$dir]=$pid
	wait_until 10 "$pid" "sessfs on $dir" is_sessfs "$dir"
	info "mounted (daemon pid $pid): $(findmnt -rn -o SOURCE,TARGET,FSTYPE,OPTIONS --mountpoint "$dir")"
}

is_sessfs()
{
	[[ $(findmnt -rn -o FSTYPE --mountpoint "$1") == fuse.sessfs ]]
}

mount_all()
{
	step "mount sessfs over both session directories, apps still running"
	info "(-f keeps the daemon in the foreground so the demo holds its pid and"
	info " log; without -f it detaches once mounted; state_dir keeps its state"
	info " in the work dir instead of /var/lib/sessfs)"
	mount_one php
	mount_one flask
}

after_mount()
{
	local app user
	step "through the mount: the same users are still logged in and keep counting"
	for app in php flask; do
		for user in $(users_of "$app"); do
			user_req "$app" "$user" /whoami "user=$user count=2"
			user_req "$app" "$user" /incr count=3
			user_req "$app" "$user" /whoami "user=$user count=3"
		done
	done

	step "new users log in while mounted"
	for app in php flask; do
		user=$(new_user_of "$app")
		: >"$(jar "$app" "$user")"
		user_req "$app" "$user" "/login?user=$user" "ok user=$user"
		user_req "$app" "$user" /incr count=1
		user_req "$app" "$user" /whoami "user=$user count=1"
	done

	step "the session files as the apps see them now (the mount)"
	for app in php flask; do
		info "$(session_dir "$app"):"
		list_dir "$(session_dir "$app")"
	done
}

new_user_of()
{
	if [[ $1 == php ]]; then
		echo erin
	else
		echo frank
	fi
}

show_redis()
{
	local app user key meta val
	step "the sessions are in Redis"
	for app in php flask; do
		cmdline redis-cli -p "$REDIS_PORT" --scan --pattern "$(prefix "$app")*"
		rcli --scan --pattern "$(prefix "$app")*" | sort | sed 's/^/      /'
	done
	info "(P:NAME holds a file's bytes, P:{P:NAME}:m its metadata; a meta key"
	info " alone is a tombstone, a deleted session: at erin's login PHP's"
	info " session_regenerate_id deleted the id it had just made)"
	for app in php flask; do
		for user in $(users_of "$app") $(new_user_of "$app"); do
			key=$(prefix "$app")$(session_file "$app" "$user")
			val=$(rcli --no-raw GET "$key")
			if [[ $val == *"$user"* ]]; then
				ok "$app $user: GET $key holds the session"
			else
				bad "$app $user: GET $key gives $val"
			fi
		done
	done
	user=alice
	key=$(prefix php)$(session_file php "$user")
	meta="$(prefix php){$key}:m"
	cmdline redis-cli -p "$REDIS_PORT" GET "$key"
	rcli GET "$key" | sed 's/^/      /'
	check "php $user: value" "$(rcli GET "$key")" "user|s:5:\"$user\";count|i:3;"
	cmdline redis-cli -p "$REDIS_PORT" HGETALL "$meta"
	rcli HGETALL "$meta" | paste - - | sed 's/^/      /'
	key=$(prefix flask)$(session_file flask carol)
	cmdline redis-cli -p "$REDIS_PORT" --no-raw GET "$key"
	rcli --no-raw GET "$key" | sed 's/^/      /'
	info "(4-byte cachelib expiry header, then the pickled session)"
}

logout_one()
{
	local app=$1 user=$2 key meta
	FILE["$app $user"]=$(session_file "$app" "$user")
	key=$(prefix "$app")${FILE["$app $user"]}
	meta="$(prefix "$app"){$key}:m"
	user_req "$app" "$user" /logout bye
	check "$app $user: value key after logout (EXISTS)" "$(rcli EXISTS "$key")" 0
	check "$app $user: meta key kept as a tombstone (EXISTS)" "$(rcli EXISTS "$meta")" 1
	# The lower dir still holds this user's file from before the mount:
	# the tombstone keeps it from coming back.
	user_req "$app" "$user" /whoami anonymous
}

logouts()
{
	step "one user per app logs out: the session is deleted, never read back from the old file"
	logout_one php bob
	logout_one flask dave
}

table()
{
	local app user key ttl size
	step "summary"
	printf '    %-6s %-6s %-26s %-44s %6s %8s\n' app user "answer (/whoami)" "redis key" bytes "ttl (s)"
	for app in php flask; do
		for user in $(users_of "$app") $(new_user_of "$app"); do
			key=$(prefix "$app")$(session_file "$app" "$user")
			size=$(rcli STRLEN "$key")
			ttl=$(rcli TTL "$key")
			printf '    %-6s %-6s %-26s %-44s %6s %8s\n' "$app" "$user" \
				"${ANSWER["$app $user"]:-}" "${key:0:44}" "$size" "$ttl"
		done
	done
	info "(ttl -2: no such key, the user logged out; PHP's ttl is sessfs's"
	info " sliding ttl=, 32 days by default; Flask's comes from the expiry"
	info " header cachelib writes, Flask's 31-day session lifetime)"
}

unmount_all()
{
	local app dir pid rc
	step "stop the apps, then unmount"
	info "(in redis-only mode Redis alone is current: stop the apps before"
	info " unmounting, or they would see the old files underneath)"
	stop_pid "$PHP_PID" 1
	PHP_PID=
	stop_pid "$FLASK_PID" 1
	FLASK_PID=
	info "apps stopped"
	for app in php flask; do
		dir=$(session_dir "$app")
		pid=${MOUNT_PID[$dir]}
		show fusermount3 -u "$dir"
		rc=0
		wait "$pid" || rc=$?
		unset "MOUNT_PID[$dir]"
		check "sessfs on $dir: daemon exit status" "$rc" 0
		is_mounted "$dir" && bad "$dir: still mounted"
	done

	step "the directories underneath were left as they were (redis-only)"
	for app in php flask; do
		info "$(session_dir "$app"):"
		list_dir "$(session_dir "$app")"
	done
	local f
	f=$(session_dir php)/$(session_file php alice)
	check "php alice: the file underneath still has the pre-mount count" \
		"$(cat "$f")" 'user|s:5:"alice";count|i:2;'
	info "going back to files needs an export of Redis into the directory"
	info "(sessfs-migrate export; not built yet)"
}

stop_redis()
{
	step "stop redis-server"
	stop_pid "$REDIS_PID"
	REDIS_PID=
	info "stopped"
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
	login_before
	mount_all
	after_mount
	show_redis
	logouts
	table
	unmount_all
	stop_redis
	printf '\n%d passed, %d failed\n' "$passed" "$failed"
	[[ $failed -eq 0 ]]
}

main "$@"
