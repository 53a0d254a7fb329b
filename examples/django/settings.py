# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs example: a tiny Django project using Django's own file session
backend (`django.contrib.sessions.backends.file`), unchanged.  Mount sessfs
over its session directory and the sessions live in Redis.  The
integration tests (tests/integration/test_django.py) run it.

Run it (Debian's python3, which has django and gunicorn), from this
directory:

    SESS_DIR=/var/lib/sessions SECRET_KEY=change-me \\
        gunicorn -w 4 -b 127.0.0.1:8082 wsgi:application

and remove the expired sessions (cron, as the app's user):

    SESS_DIR=/var/lib/sessions python3 manage.py clearsessions

Environment:
  SESS_DIR            SESSION_FILE_PATH, the directory sessfs mounts over
                      (required)
  SECRET_KEY          Django's secret key (a fixed development key if unset)
  SESSION_COOKIE_AGE  seconds; a session expires that long after its file's
                      mtime (Django's default: 1209600, two weeks)

Routes (plain-text bodies), the same as examples/php/index.php:
  /login?user=NAME  new session key (cycle_key(), as django.contrib.auth's
                    login() does), user=NAME, count=0   -> "ok user=NAME"
  /incr             count += 1                          -> "count=N"
  /whoami           -> "user=NAME count=N", or "anonymous"
  /logout           session.flush(): the file is deleted -> "bye"
  /big?kb=N         stores N KiB of deterministic data in the session
                    -> sha256 of that data (hex)
  /bigcheck         -> sha256 of the stored data, or "none"
  /health           -> "ok" (touches no session)

Django logs warnings and errors (a session deleted during a request, a
500) to stderr, the server's log.
"""

import os

SECRET_KEY = os.environ.get("SECRET_KEY", "sessfs-example-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True

# django.contrib.sessions provides the middleware and `clearsessions`; the
# file backend needs no database.
INSTALLED_APPS = ["django.contrib.sessions"]
DATABASES = {}
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
ROOT_URLCONF = "urls"

SESSION_ENGINE = "django.contrib.sessions.backends.file"
SESSION_FILE_PATH = os.environ["SESS_DIR"]
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", "1209600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler",
                            "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
