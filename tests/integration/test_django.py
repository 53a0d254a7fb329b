# SPDX-License-Identifier: GPL-2.0-or-later
"""Real Django (Debian's python3-django, the file session backend, under
gunicorn -w 4 as www-data: examples/django) on sessfs, in every migration
mode, over a directory that already holds sessions the same app made on
plain files; and `manage.py clearsessions` (as www-data, as its cron job
would run) removing the expired sessions through the mount and keeping
the live ones.

A Django file session expires SESSION_COOKIE_AGE after its file's mtime
(CLIENTS.md, section 3): clearsessions lists the dir, reads and stats
every sessionid* file and unlinks the expired ones.  The test makes the
app's age 1 hour and back-dates one legacy file (on the plain dir, before
the mount) and one session made through the mount (utime through the
mount) by 2 hours; live sessions must be neither deleted nor rewritten.
"""

import errno
import os
import time

import pytest

import util
from util import errno_of
from modeutil import (LOWER_CURRENT, PREFIX, WRITES_REDIS, ModeMount,
                      check_deleted, diff_snapshots, mode_params,
                      redis_sessions, snapshot, stray)

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(util.run([util.PYTHON, "-c", "import django"])
                       .returncode != 0,
                       reason="needs python3-django (scripts/setup.sh deps)"),
]

ENV = {"SESSION_COOKIE_AGE": "3600"}
AGED_S = 2 * 3600
REDIS_AUTH = ("redis-first", "redis-only")


def dj(client):
    """The session file of 'client': SESSION_COOKIE_NAME + key."""
    return "sessionid" + client.cookies()["sessionid"]


def login(app, user):
    c = app.client()
    assert c.get("/login?user=" + user) == "ok user=" + user
    return c


def check_same(want, got, what):
    d = diff_snapshots(want, got)
    assert not d, "%s:\n  %s" % (what, "\n  ".join(d[:20]))


def temps(names):
    """Django's mkstemp temps, sessionid<key>_out_XXXXXXXX."""
    return [n for n in names if "_out_" in n]


@pytest.mark.parametrize("mode", mode_params())
def test_django_in_mode_and_clearsessions(mode, redis, redis_server, sessdir,
                                          tmp, checker, make_app):
    mm = ModeMount(tmp, redis_server, checker)
    seed = make_app("django", sessdir, ENV)
    alice, bob, old1 = (login(seed, u) for u in ("alice", "bob", "old1"))
    assert alice.get("/incr") == "count=1"
    seed.stop()
    old = time.time() - AGED_S
    os.utime(sessdir / dj(old1), (old, old))
    before = snapshot(sessdir)

    with mm.mounted(sessdir, mode) as m:
        app = make_app("django", sessdir, ENV)
        for c in (alice, bob, old1):
            c.base = app.base
        assert alice.get("/whoami") == "user=alice count=1"
        assert alice.get("/incr") == "count=2"
        carol = login(app, "carol")
        for i in range(1, 4):
            assert carol.get("/incr") == "count=%d" % i
        dave = login(app, "dave")
        dave_file = dj(dave)
        assert dave.get("/logout") == "bye"
        assert errno_of(os.stat, m.path(dave_file)) == errno.ENOENT
        # erin's session made through the mount, back-dated through it.
        erin = login(app, "erin")
        os.utime(m.path(dj(erin)), (old, old))
        assert int(os.stat(m.path(dj(erin))).st_mtime) == int(old)
        st = os.stat(m.path(dj(carol)))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
            (util.WWW_UID, util.WWW_GID, 0o600)
        expired, live = [old1, erin], [alice, bob, carol]
        kept_before = snapshot(m.mnt, [dj(c) for c in live])

        res = app.manage("clearsessions")
        assert res.returncode == 0 and res.stdout == "" and \
            res.stderr == "", (res.returncode, res.stdout, res.stderr)

        listed = check_deleted(m, mm, redis, mode, [dj(c) for c in expired],
                               also=[dave_file])
        # Live sessions neither deleted nor rewritten (bytes, mtime).
        check_same(kept_before, snapshot(m.mnt, [dj(c) for c in live]),
                   "clearsessions changed live sessions")
        assert not temps(listed), temps(listed)

        # What the users see.
        assert alice.get("/whoami") == "user=alice count=2"
        assert bob.get("/whoami") == "user=bob count=0"
        assert carol.get("/whoami") == "user=carol count=3"
        for c in expired + [dave]:
            assert c.get("/whoami") == "anonymous"
        assert carol.get("/incr") == "count=4"
        view = snapshot(m.mnt)
        assert not stray(view) and not temps(view), view.keys()
        if mode in WRITES_REDIS:
            mm.wait_repaired(what="nothing to repair with Redis up")
            in_redis = redis_sessions(redis)
            wrong = [n for n, v in in_redis.items()
                     if n not in view or view[n][0] != v]
            assert not wrong, "in Redis, not as the mount shows: %s" % wrong
            # Written through the mount (dual-write copies nothing up).
            written = [alice, carol]
            for c in live if mode in REDIS_AUTH else written:
                assert dj(c) in in_redis, dj(c)
        app.stop()

    got = snapshot(sessdir)
    assert not stray(got) and not temps(got), got.keys()
    if mode in LOWER_CURRENT:
        check_same(view, got, "plain files after the unmount differ from "
                   "what the mount showed")
    else:
        check_same(before, got, "redis-only wrote the lower dir")


def test_django_big_session_and_parallel_users(redis, redis_server, sessdir,
                                                checker, make_app):
    """A session over 128 KiB round-trips intact (one write of the temp,
    a rename over the session); 20 users at once each keep their own
    count (Django has no locking: one session per user)."""
    with util.app_on_mount("django", redis_server, sessdir, checker,
                           make_app, env=ENV) as (m, app):
        c = login(app, "big")
        want = util.sha256_hex(util.big_blob(200))
        assert c.get("/big?kb=200") == want
        assert c.get("/bigcheck") == want
        st = os.stat(m.path(dj(c)))
        assert st.st_size > 128 * 1024
        assert len(redis.get(util.value_key(PREFIX, dj(c)))) == st.st_size
        assert c.get("/incr") == "count=1"
        assert c.get("/bigcheck") == want

        def user(i):
            u = login(app, "u%02d" % i)
            for n in range(1, 4):
                assert u.get("/incr") == "count=%d" % n
            assert u.get("/whoami") == "user=u%02d count=3" % i
            return dj(u)

        names = util.in_parallel(user, range(20))
        assert len(set(names)) == 20
        listed = os.listdir(m.mnt)
        assert set(names) <= set(listed)
        assert not temps(listed), temps(listed)
