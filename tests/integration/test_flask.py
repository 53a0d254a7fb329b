# SPDX-License-Identifier: GPL-2.0-or-later
"""Real Flask-Session 0.3.2 (cachelib 0.9 FileSystemCache, gunicorn -w 4,
as www-data) on sessfs, mounted over a directory that already holds
sessions Flask made before the mount.  Flask-Session's default threshold
(500) is used, so the count file and mkstemp temps are exercised."""

import os
import re
import threading

import pytest

import util
from util import (app_on_mount, big_blob, flask_file, in_parallel, meta,
                  sha256_hex, value_key)

pytestmark = util.fuse_test_marker()

P = "sessfs:"
ENV = {"SESSION_FILE_THRESHOLD": "500"}
TEMP = re.compile(r"^tmp[a-z0-9_]{8}\.__wz_cache$")


@pytest.fixture
def seeded(sessdir, make_app):
    app = make_app("flask", sessdir, ENV)
    alice, bob = app.client(), app.client()
    assert alice.get("/login?user=alice") == "ok user=alice"
    assert bob.get("/login?user=bob") == "ok user=bob"
    bob.get("/incr")
    assert bob.get("/incr") == "count=2"
    app.stop()
    assert os.path.exists(sessdir / flask_file(alice))
    assert os.path.exists(sessdir / util.CACHELIB_COUNT)
    return alice, bob


@pytest.fixture
def flask(seeded, redis, redis_server, sessdir, checker, make_app):
    with app_on_mount("flask", redis_server, sessdir, checker, make_app,
                      env=ENV) as (m, app):
        for c in seeded:
            c.base = app.base
        yield m, app


def no_temps_left(mnt):
    """No cachelib temp stays listed.  A gunicorn worker still booting
    writes the count file (temp, rename) while the test's requests run,
    so a temp may be in flight at the first listing: it must be gone
    within a few seconds, not be there forever."""
    util.wait_for(lambda: not [n for n in os.listdir(mnt) if TEMP.match(n)],
                  5, "no cachelib temp listed in %s" % mnt, interval=0.05)


def no_local_names_in_redis(redis):
    keys = util.keys_of(redis)
    bad = [k for k in keys if util.CACHELIB_COUNT in k or "__wz_cache" in k]
    assert not bad, bad


def test_old_sessions_still_logged_in(seeded, flask, redis):
    m, app = flask
    alice, bob = seeded
    assert alice.get("/whoami") == "user=alice count=0"
    assert bob.get("/whoami") == "user=bob count=2"
    assert bob.get("/incr") == "count=3"
    assert bob.get("/whoami") == "user=bob count=3"
    v = redis.get(value_key(P, flask_file(bob)))
    assert v is not None and b"bob" in v
    st = os.stat(m.path(flask_file(bob)))
    assert st.st_uid == util.WWW_UID and st.st_mode & 0o777 == 0o600
    no_local_names_in_redis(redis)


def test_login_incr_logout(flask, redis):
    m, app = flask
    carol = app.client()
    assert carol.get("/login?user=carol") == "ok user=carol"
    for i in range(1, 4):
        assert carol.get("/incr") == "count=%d" % i
    assert carol.get("/whoami") == "user=carol count=3"
    name = flask_file(carol)
    assert name in os.listdir(m.mnt)
    replay = carol.clone()
    assert carol.get("/logout") == "bye"
    assert carol.get("/whoami") == "anonymous"
    # The dead cookie re-creates a file of the same name, {'_permanent':
    # True}: still logged out.
    assert replay.get("/whoami") == "anonymous"
    assert replay.get("/whoami") == "anonymous"
    assert b"carol" not in (redis.get(value_key(P, name)) or b"")
    no_local_names_in_redis(redis)
    no_temps_left(m.mnt)


def test_logout_of_old_session_stays_a_logout(seeded, redis, redis_server,
                                             sessdir, checker, make_app):
    alice, bob = seeded
    name = flask_file(bob)
    with app_on_mount("flask", redis_server, sessdir, checker, make_app,
                      env=ENV) as (m, app):
        bob.base = alice.base = app.base
        replay = bob.clone()
        assert bob.get("/logout") == "bye"
        assert name not in os.listdir(m.mnt)
        assert meta(redis, P, name).get("del") == "1"
        assert replay.get("/whoami") == "anonymous"
        assert alice.get("/whoami") == "user=alice count=0"
    with app_on_mount("flask", redis_server, sessdir, checker, make_app,
                      env=ENV) as (m, app):
        replay.base = alice.base = app.base
        assert replay.get("/whoami") == "anonymous"
        assert alice.get("/whoami") == "user=alice count=0"


def test_50_concurrent_clients(flask, redis):
    m, app = flask

    def user(i):
        c = app.client()
        name = "u%02d" % i
        assert c.get("/login?user=" + name) == "ok user=" + name
        for n in range(1, 4):
            assert c.get("/incr") == "count=%d" % n
        assert c.get("/whoami") == "user=%s count=3" % name
        return flask_file(c)

    names = in_parallel(user, range(50))
    assert len(set(names)) == 50
    listed = os.listdir(m.mnt)
    assert set(names) <= set(listed)
    no_temps_left(m.mnt)
    no_local_names_in_redis(redis)


def test_parallel_requests_never_log_out(flask):
    """Flask-Session has no locking (last writer wins), but every save is a
    rename over the file: a concurrent read must never miss the file, or
    the user would be logged out (and the empty session saved over it)."""
    m, app = flask
    c = app.client()
    c.get("/login?user=busy")
    stop = threading.Event()
    seen = []

    def watcher():
        w = c.clone()
        while not stop.is_set():
            seen.append(w.get("/whoami"))
    watchers = [threading.Thread(target=watcher) for _ in range(3)]
    for t in watchers:
        t.start()
    try:
        got = in_parallel(lambda _: c.get("/incr"), range(40), workers=20)
    finally:
        stop.set()
        for t in watchers:
            t.join(60)
    assert all(g.startswith("count=") for g in got)
    bad = [s for s in seen if not s.startswith("user=busy ")]
    assert not bad, bad[:5]
    final = c.get("/whoami")
    assert re.fullmatch(r"user=busy count=(\d+)", final), final
    assert 1 <= int(final.split("=")[2]) <= 40


def test_big_session(flask, redis):
    m, app = flask
    c = app.client()
    c.get("/login?user=big")
    want = sha256_hex(big_blob(200))
    assert c.get("/big?kb=200") == want
    assert c.get("/bigcheck") == want
    assert os.stat(m.path(flask_file(c))).st_size > 200 * 1024
    assert c.get("/incr") == "count=1"
    assert c.get("/bigcheck") == want


def test_threshold_zero_keeps_no_count_file(redis, redis_server, sessdir,
                                            checker, make_app):
    """The runbook's SESSION_FILE_THRESHOLD=0 (the app's default)."""
    with app_on_mount("flask", redis_server, sessdir, checker, make_app) \
            as (m, app):
        c = app.client()
        assert c.get("/login?user=zero") == "ok user=zero"
        assert c.get("/incr") == "count=1"
        assert os.listdir(m.mnt) == [flask_file(c)]
        assert redis.get(value_key(P, flask_file(c)))[4:5] == b"\x80"
