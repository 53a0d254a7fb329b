# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs example: a tiny Flask app using Flask-Session's `filesystem` backend
(cachelib's FileSystemCache), unchanged.  Mount sessfs over its session
directory and the sessions live in Redis.  The integration tests
(tests/integration/test_flask.py) run it; the demo runs the translate app
(examples/translate/), on the same backend.

Run it (Debian's python3, which has flask and flask_session):

    SESS_DIR=/var/lib/sessions SECRET_KEY=change-me \\
        gunicorn -w 4 -b 127.0.0.1:8081 --chdir examples/flask app:app

Environment:
  SESS_DIR                SESSION_FILE_DIR, the directory sessfs mounts over
                          (required)
  SECRET_KEY              Flask's secret key (a fixed development key if unset)
  SESSION_FILE_THRESHOLD  cachelib's prune threshold; default 0 = never prune
                          and keep no count file.  The sessfs runbook asks for
                          0 when several hosts share one Redis prefix: with a
                          threshold, each host would prune the others'
                          sessions.  Flask-Session's own default is 500.
  SESS_REDIS              a redis:// URL: Flask-Session's own `redis` backend
                          there instead of the filesystem one (SESS_DIR is
                          then ignored); bench/redis_cost.py compares the
                          two

Routes (plain-text bodies), the same as examples/php/index.php:
  /login?user=NAME  user=NAME, count=0            -> "ok user=NAME"
                    (Flask-Session 0.3.2 cannot regenerate the session id)
  /incr             count += 1                    -> "count=N"
  /whoami           -> "user=NAME count=N", or "anonymous"
  /logout           session.clear(): Flask-Session deletes the file -> "bye"
  /big?kb=N         stores N KiB of deterministic data in the session
                    -> sha256 of that data (hex)
  /bigcheck         -> sha256 of the stored data, or "none"
  /health           -> "ok" (touches no session)

The N KiB of /big are the hex SHA-256 digests of "sessfs-big-0",
"sessfs-big-1", ... concatenated (16 digests per KiB), as in the PHP app.
"""

import hashlib
import os

from flask import Flask, request, session
from flask.sessions import SessionInterface
from flask_session import Session


def big_blob(kb):
    return "".join(hashlib.sha256(b"sessfs-big-%d" % i).hexdigest()
                   for i in range(kb * 16))


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ.get("SECRET_KEY", "sessfs-example-not-secret"))
if os.environ.get("SESS_REDIS"):
    import redis
    app.config.update(SESSION_TYPE="redis",
                      SESSION_REDIS=redis.from_url(os.environ["SESS_REDIS"]))
else:
    app.config.update(
        SESSION_TYPE="filesystem",
        SESSION_FILE_DIR=os.environ["SESS_DIR"],
        SESSION_FILE_THRESHOLD=int(os.environ.get("SESSION_FILE_THRESHOLD",
                                                  "0")),
    )
Session(app)


class HealthWithoutSession(SessionInterface):
    """Flask-Session 0.3.2 saves a new session ({'_permanent': True}) for
    every request without a cookie, so each health probe would leave a
    session file behind.  /health gets Flask's null session, never saved."""

    def __init__(self, inner):
        self.inner = inner

    def open_session(self, app, request):
        if request.path == "/health":
            return self.make_null_session(app)
        return self.inner.open_session(app, request)

    def save_session(self, app, session, response):
        return self.inner.save_session(app, session, response)


app.session_interface = HealthWithoutSession(app.session_interface)


def text(body, status=200):
    return body, status, {"Content-Type": "text/plain"}


@app.route("/health")
def health():
    return text("ok")


@app.route("/login")
def login():
    user = request.args.get("user", "")
    session.clear()
    session["user"] = user
    session["count"] = 0
    return text("ok user=%s" % user)


@app.route("/incr")
def incr():
    session["count"] = session.get("count", 0) + 1
    return text("count=%d" % session["count"])


@app.route("/whoami")
def whoami():
    if "user" in session:
        return text("user=%s count=%d" % (session["user"], session["count"]))
    return text("anonymous")


@app.route("/logout")
def logout():
    session.clear()
    return text("bye")


@app.route("/big")
def big():
    blob = big_blob(max(0, int(request.args.get("kb", "0"))))
    session["big"] = blob
    return text(sha256(blob))


@app.route("/bigcheck")
def bigcheck():
    return text(sha256(session["big"]) if "big" in session else "none")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8081")))
