# SPDX-License-Identifier: GPL-2.0-or-later
"""The example apps on a plain session directory, without sessfs: the
baseline the mounted runs (test_php.py, test_flask.py, test_php_fpm.py,
test_django.py) are compared with, their expiry jobs included.  A failure
here is a bug of the app or of the fixtures, not of the daemon."""

import concurrent.futures
import os
import time

import pytest

import util
from util import big_blob, sha256_hex


@pytest.mark.parametrize("kind", ["php", "flask", "django", "php-fpm"])
def test_cycle(kind, tmp, sessdir, make_app):
    app = make_app(kind, sessdir)
    assert os.listdir(sessdir) == []  # /health probes make no sessions
    c = app.client()
    assert c.get("/whoami") == "anonymous"
    assert c.get("/login?user=alice") == "ok user=alice"
    assert c.get("/incr") == "count=1"
    assert c.get("/incr") == "count=2"
    assert c.get("/whoami") == "user=alice count=2"
    old = c.clone()
    assert c.get("/logout") == "bye"
    assert c.get("/whoami") == "anonymous"
    assert old.get("/whoami") == "anonymous"
    for name in os.listdir(sessdir):
        st = os.stat(sessdir / name)
        assert (st.st_uid, st.st_gid) == (util.WWW_UID, util.WWW_GID)
        assert st.st_mode & 0o777 == 0o600


@pytest.mark.parametrize("kind", ["php", "flask", "django", "php-fpm"])
def test_big(kind, sessdir, make_app):
    c = make_app(kind, sessdir).client()
    want = sha256_hex(big_blob(150))
    assert c.get("/big?kb=150") == want
    assert c.get("/bigcheck") == want


def test_php_parallel_incr(sessdir, make_app):
    """flock serialises PHP's requests on one session: exactly 20."""
    app = make_app("php", sessdir)
    c = app.client()
    c.get("/login?user=p")
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        got = sorted(ex.map(lambda _: c.get("/incr"), range(20)))
    assert got == sorted("count=%d" % i for i in range(1, 21))
    assert c.get("/whoami") == "user=p count=20"


def test_django_clearsessions(sessdir, make_app):
    """manage.py clearsessions deletes what is older than
    SESSION_COOKIE_AGE by mtime and keeps the rest."""
    app = make_app("django", sessdir, {"SESSION_COOKIE_AGE": "3600"})
    old, live = app.client(), app.client()
    assert old.get("/login?user=old") == "ok user=old"
    assert live.get("/login?user=live") == "ok user=live"
    name = "sessionid" + old.cookies()["sessionid"]
    t = time.time() - 7200
    os.utime(sessdir / name, (t, t))
    res = app.manage("clearsessions")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert os.listdir(sessdir) == ["sessionid" + live.cookies()["sessionid"]]
    assert live.get("/whoami") == "user=live count=0"
    assert old.get("/whoami") == "anonymous"


@pytest.mark.skipif(not (os.path.exists(util.SESSIONCLEAN)
                         and os.path.exists(util.PHP_FPM)
                         and os.path.exists("/dev/loop-control")),
                    reason="needs php8.2-fpm, sessionclean, loop devices")
def test_sessionclean(tmp, make_app):
    """Debian's sessionclean, as util.sessionclean() runs it, deletes the
    sess_* files whose ctime is older than gc_maxlifetime (1440 s) in the
    save_path of the php.ini it is given, and only those."""
    from modeutil import ext4_lower
    with ext4_lower(tmp) as lower:
        app = make_app("php-fpm", lower.sessdir)
        old, live = app.client(), app.client()
        assert old.get("/login?user=old") == "ok user=old"
        assert live.get("/login?user=live") == "ok user=live"
        app.stop()
        t = int(time.time()) - 7200
        lower.set_times({"sess_" + old.cookies()["PHPSESSID"]: (None, t)})
        app.start()
        old.base = live.base = app.base
        res = util.sessionclean(app.ini)
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert os.listdir(lower.sessdir) == \
            ["sess_" + live.cookies()["PHPSESSID"]]
        assert live.get("/whoami") == "user=live count=0"
        assert old.get("/whoami") == "anonymous"
        app.stop()
