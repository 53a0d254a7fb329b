<?php
// SPDX-License-Identifier: GPL-2.0-or-later
//
// Router script of the phpredis target of bench/run: examples/php/index.php
// with phpredis's native session handler instead of the files handler.
// index.php sets session.save_handler=files itself, which would override
// `-d session.save_handler=redis`; PHP refuses session ini changes while a
// session is active, so this script starts the session first (with the
// handler and save_path from -d) and index.php's ini_set() calls and its
// second session_start() become no-ops.  bench/run passes
// -d error_reporting so that those refusals are not logged per request.
//
// Only for the session routes the benchmark uses (/login, /incr, /whoami);
// /health would start a session here too.

if (!session_start()) {
	http_response_code(500);
	echo "session_start failed\n";
	exit;
}
require __DIR__ . '/../../examples/php/index.php';
