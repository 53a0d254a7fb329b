<?php
// SPDX-License-Identifier: GPL-2.0-or-later
//
// sessfs example: a tiny PHP session app using PHP's own `files` session
// handler, unchanged.  Mount sessfs over its session directory and the
// sessions live in Redis; unmount (after an export) and they are files again.
// The demo and the integration tests (tests/integration/test_php.py) run it.
//
// Run it with PHP's built-in server, this file as the router script:
//
//   SESS_DIR=/var/lib/sessions PHP_CLI_SERVER_WORKERS=8 \
//       php -S 127.0.0.1:8080 examples/php/index.php
//
// Environment (each optional; php.ini or -d flags work as well):
//   SESS_DIR             session.save_path (the directory sessfs mounts over)
//   SESS_HANDLER         session.save_handler: files (default), or redis for
//                        phpredis's native handler, the end state after a
//                        migration with sessfs -o layout=phpredis; SESS_DIR
//                        is then phpredis's save path (tcp://127.0.0.1:6379)
//   SESS_GC_PROBABILITY  session.gc_probability (Debian's default is 0: cron
//                        runs /usr/lib/php/sessionclean instead)
//   SESS_GC_DIVISOR      session.gc_divisor
//   SESS_GC_MAXLIFETIME  session.gc_maxlifetime, seconds
//
// Routes (plain-text bodies):
//   /login?user=NAME  new session id (session_regenerate_id(true)), user=NAME,
//                     count=0                        -> "ok user=NAME"
//   /incr             count += 1                     -> "count=N"
//   /whoami           -> "user=NAME count=N", or "anonymous"
//   /logout           session_destroy()              -> "bye"
//   /big?kb=N         stores N KiB of deterministic data in the session
//                     -> sha256 of that data (hex)
//   /bigcheck         -> sha256 of the stored data, or "none"
//   /health           -> "ok" (touches no session)
//
// The N KiB of /big are the hex SHA-256 digests of "sessfs-big-0",
// "sessfs-big-1", ... concatenated (16 digests per KiB): examples/flask/app.py
// makes the same bytes, so a test can compute the expected digest itself.

ini_set('session.save_handler', getenv('SESS_HANDLER') ?: 'files');
// Strict mode: an unknown session id (e.g. the cookie of a destroyed
// session) is never adopted; PHP makes a new one.
ini_set('session.use_strict_mode', '1');
ini_set('session.use_only_cookies', '1');
foreach ([
	'SESS_DIR' => 'session.save_path',
	'SESS_GC_PROBABILITY' => 'session.gc_probability',
	'SESS_GC_DIVISOR' => 'session.gc_divisor',
	'SESS_GC_MAXLIFETIME' => 'session.gc_maxlifetime',
] as $env => $ini) {
	$v = getenv($env);
	if ($v !== false && $v !== '')
		ini_set($ini, $v);
}

header('Content-Type: text/plain');

function start_session(): void
{
	if (!session_start()) {
		// The warnings went to the server log; the client sees a 500.
		http_response_code(500);
		echo "session_start failed\n";
		exit;
	}
}

function big_blob(int $kb): string
{
	$parts = [];
	for ($i = 0; $i < $kb * 16; $i++)
		$parts[] = hash('sha256', "sessfs-big-$i");
	return implode('', $parts);
}

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);

switch ($path) {
case '/health':
	echo "ok";
	break;

case '/login':
	$user = (string)($_GET['user'] ?? '');
	start_session();
	// A new id at login (no session fixation); true deletes the old file.
	session_regenerate_id(true);
	$_SESSION = ['user' => $user, 'count' => 0];
	echo "ok user=$user";
	break;

case '/incr':
	start_session();
	$_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
	echo "count=" . $_SESSION['count'];
	break;

case '/incr_checked':
	// As /incr, but the count is reported only once the session is
	// stored: PHP writes a session after the reply otherwise, so a failed
	// write could not change a 200 (tests/integration/test_sentinel.py).
	start_session();
	$_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
	$n = $_SESSION['count'];
	if (!session_write_close()) {
		http_response_code(500);
		echo "session_write_close failed\n";
		break;
	}
	echo "count=$n";
	break;

case '/whoami':
	start_session();
	if (isset($_SESSION['user']))
		echo "user={$_SESSION['user']} count={$_SESSION['count']}";
	else
		echo "anonymous";
	break;

case '/logout':
	start_session();
	session_destroy();
	echo "bye";
	break;

case '/big':
	$kb = max(0, (int)($_GET['kb'] ?? 0));
	start_session();
	$_SESSION['big'] = big_blob($kb);
	echo hash('sha256', $_SESSION['big']);
	break;

case '/bigcheck':
	start_session();
	echo isset($_SESSION['big']) ? hash('sha256', $_SESSION['big']) : "none";
	break;

default:
	http_response_code(404);
	echo "not found";
}
