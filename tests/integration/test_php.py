# SPDX-License-Identifier: GPL-2.0-or-later
"""Real PHP (files handler, strict mode, `php -S` with 8 workers, as
www-data) on sessfs, mounted over a directory that already holds sessions
PHP made before the mount."""

import errno
import os
import time

import pytest

import util
from util import (app_on_mount, big_blob, errno_of, in_parallel, meta,
                  php_sid, set_times, sha256_hex, value_key)

pytestmark = util.fuse_test_marker()

P = "sessfs:"
NS = 10**9


def sess(client):
    return "sess_" + php_sid(client)


@pytest.fixture
def seeded(sessdir, make_app):
    """alice (count 0) and bob (count 2), made by real PHP on the plain
    directory; PHP stopped again."""
    app = make_app("php", sessdir)
    alice, bob = app.client(), app.client()
    assert alice.get("/login?user=alice") == "ok user=alice"
    assert bob.get("/login?user=bob") == "ok user=bob"
    bob.get("/incr")
    assert bob.get("/incr") == "count=2"
    app.stop()
    assert os.path.exists(sessdir / sess(alice))
    return alice, bob


@pytest.fixture
def php(seeded, redis, redis_server, sessdir, checker, make_app):
    with app_on_mount("php", redis_server, sessdir, checker, make_app) \
            as (m, app):
        for c in seeded:
            c.base = app.base
        yield m, app


def test_old_sessions_still_logged_in(seeded, php, redis):
    m, app = php
    alice, bob = seeded
    assert alice.get("/whoami") == "user=alice count=0"
    assert bob.get("/whoami") == "user=bob count=2"
    assert bob.get("/incr") == "count=3"
    assert bob.get("/whoami") == "user=bob count=3"
    assert b"count|i:3;" in redis.get(value_key(P, sess(bob)))
    assert os.stat(m.path(sess(bob))).st_uid == util.WWW_UID


def test_login_incr_logout(php, redis):
    m, app = php
    carol = app.client()
    assert carol.get("/whoami") == "anonymous"
    anon_sid = php_sid(carol)
    assert carol.get("/login?user=carol") == "ok user=carol"
    # session_regenerate_id(true): new id, the old file deleted.
    assert php_sid(carol) != anon_sid
    assert errno_of(os.stat, m.path("sess_" + anon_sid)) == errno.ENOENT
    for i in range(1, 4):
        assert carol.get("/incr") == "count=%d" % i
    assert carol.get("/whoami") == "user=carol count=3"
    name = sess(carol)
    assert redis.get(value_key(P, name)) == \
        b'user|s:5:"carol";count|i:3;'
    replay = carol.clone()
    assert carol.get("/logout") == "bye"
    assert carol.get("/whoami") == "anonymous"
    assert replay.get("/whoami") == "anonymous"
    assert errno_of(os.stat, m.path(name)) == errno.ENOENT
    assert redis.exists(value_key(P, name)) == 0
    assert meta(redis, P, name).get("del") == "1"


def test_logout_of_old_session_stays_a_logout(seeded, redis, redis_server,
                                             sessdir, checker, make_app):
    alice, bob = seeded
    name = sess(bob)
    with app_on_mount("php", redis_server, sessdir, checker, make_app) \
            as (m, app):
        bob.base = alice.base = app.base
        replay = bob.clone()
        assert bob.get("/logout") == "bye"
        assert replay.get("/whoami") == "anonymous"
        assert name not in os.listdir(m.mnt)
        assert name in m.lower_names()  # the legacy file is still below
        assert alice.get("/whoami") == "user=alice count=0"
    # Remounted, restarted: still logged out.
    with app_on_mount("php", redis_server, sessdir, checker, make_app) \
            as (m, app):
        replay.base = alice.base = app.base
        assert replay.get("/whoami") == "anonymous"
        assert errno_of(os.stat, m.path(name)) == errno.ENOENT
        assert alice.get("/whoami") == "user=alice count=0"


def test_parallel_incr_of_one_session(php):
    """flock through the mount serialises PHP's requests: exactly 20."""
    m, app = php
    c = app.client()
    c.get("/login?user=par")
    got = in_parallel(lambda _: c.get("/incr"), range(20))
    assert sorted(got, key=lambda s: int(s.split("=")[1])) == \
        ["count=%d" % i for i in range(1, 21)]
    assert c.get("/whoami") == "user=par count=20"


def test_50_concurrent_clients(php, redis):
    m, app = php

    def user(i):
        c = app.client()
        name = "u%02d" % i
        assert c.get("/login?user=" + name) == "ok user=" + name
        for n in range(1, 4):
            assert c.get("/incr") == "count=%d" % n
        assert c.get("/whoami") == "user=%s count=3" % name
        return sess(c)

    names = in_parallel(user, range(50))
    assert len(set(names)) == 50
    listed = set(os.listdir(m.mnt))
    for n in names:
        assert n in listed
        assert redis.get(value_key(P, n)).endswith(b"count|i:3;")


def test_big_session(php, redis):
    """A session over 128 KiB round-trips intact (one pwrite of it)."""
    m, app = php
    c = app.client()
    c.get("/login?user=big")
    want = sha256_hex(big_blob(200))
    assert c.get("/big?kb=200") == want
    assert c.get("/bigcheck") == want
    st = os.stat(m.path(sess(c)))
    assert st.st_size > 200 * 1024
    assert len(redis.get(value_key(P, sess(c)))) == st.st_size
    assert c.get("/incr") == "count=1"
    assert c.get("/bigcheck") == want


GC_ENV = {"SESS_GC_PROBABILITY": "1", "SESS_GC_DIVISOR": "1",
          "SESS_GC_MAXLIFETIME": "1440"}


def test_php_gc_deletes_only_expired(seeded, redis, redis_server, sessdir,
                                     checker, make_app):
    """PHP's own GC (every request) lists the dir through the mount and
    unlinks sessions whose mtime is older than gc_maxlifetime."""
    alice, bob = seeded
    with app_on_mount("php", redis_server, sessdir, checker, make_app,
                      env=GC_ENV) as (m, app):
        users = [app.client() for _ in range(4)]
        for i, c in enumerate(users):
            assert c.get("/login?user=g%d" % i) == "ok user=g%d" % i
        old = time.time_ns() - 7200 * NS
        for c in users[:2]:
            set_times(redis, P, sess(c), old, old)
            assert os.stat(m.path(sess(c))).st_mtime_ns == old
        alice.base = bob.base = app.base
        # Any request runs the GC.
        assert users[3].get("/whoami") == "user=g3 count=0"
        for c in users[:2]:
            assert errno_of(os.stat, m.path(sess(c))) == errno.ENOENT
            assert meta(redis, P, sess(c)).get("del") == "1"
            assert c.get("/whoami") == "anonymous"
        for i, c in enumerate(users[2:], 2):
            assert c.get("/whoami") == "user=g%d count=0" % i
        assert alice.get("/whoami") == "user=alice count=0"
        assert bob.get("/whoami") == "user=bob count=2"


def test_sessionclean_find_cmin(php, redis):
    """Debian's phpsessionclean: find -cmin +N -delete, as root, through the
    mount.  ctime decides, not mtime."""
    m, app = php
    users = [app.client() for _ in range(3)]
    for i, c in enumerate(users):
        c.get("/login?user=f%d" % i)
    now = time.time_ns()
    old = now - 7200 * NS
    set_times(redis, P, sess(users[0]), old, old)      # expired
    set_times(redis, P, sess(users[1]), old, now)      # chmod'ed lately
    res = util.run(["find", str(m.mnt), "-name", "sess_*", "-type", "f",
                    "-cmin", "+24", "-delete"])
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert errno_of(os.stat, m.path(sess(users[0]))) == errno.ENOENT
    assert users[0].get("/whoami") == "anonymous"
    assert users[1].get("/whoami") == "user=f1 count=0"
    assert users[2].get("/whoami") == "user=f2 count=0"


def test_phpredis_layout_then_native_handler(redis, redis_server, sessdir,
                                             checker, make_app):
    """layout=phpredis: what PHP's files handler writes through the mount
    is what phpredis's native handler reads (the end state of the
    migration), and what that handler writes is read through the mount."""
    with app_on_mount("php", redis_server, sessdir, checker, make_app,
                      opts=["layout=phpredis"]) as (m, app):
        alice = app.client()
        alice.get("/login?user=alice")
        assert alice.get("/incr") == "count=1"
        sid = php_sid(alice)
        assert redis.get(b"PHPREDIS_SESSION:" + sid.encode()) == \
            b'user|s:5:"alice";count|i:1;'
        assert os.listdir(m.mnt) == ["sess_" + sid]
        # Only sess_<sid> names exist in this layout.
        assert errno_of(os.open, m.path("0123456789abcdef0123456789abcdef"),
                        os.O_CREAT | os.O_WRONLY, 0o600) == errno.EINVAL
    native = make_app("php", sessdir, env={
        "SESS_HANDLER": "redis",
        "SESS_DIR": "tcp://127.0.0.1:%d" % redis_server.port})
    alice.base = native.base
    assert alice.get("/whoami") == "user=alice count=1"
    assert alice.get("/incr") == "count=2"
    native.stop()
    with app_on_mount("php", redis_server, sessdir, checker, make_app,
                      opts=["layout=phpredis"]) as (m, app):
        alice.base = app.base
        assert alice.get("/whoami") == "user=alice count=2"
        assert os.stat(m.path("sess_" + sid)).st_size == \
            len(b'user|s:5:"alice";count|i:2;')


def test_two_hosts_share_sessions(redis, redis_server, sessdir, tmp, checker,
                                  make_app):
    """Two web servers, each with its own sessfs on its own directory, one
    Redis prefix (two hosts behind a load balancer): a session made on one
    is used on the other, and a logout on one is a logout on both."""
    other = util.make_sessdir(tmp, "host2")
    with app_on_mount("php", redis_server, sessdir, checker, make_app,
                      opts=["host_id=web1"]) as (m1, web1), \
            app_on_mount("php", redis_server, other, checker, make_app,
                         opts=["host_id=web2"]) as (m2, web2):
        c = web1.client()
        assert c.get("/login?user=roaming") == "ok user=roaming"
        for i in range(1, 11):
            c.base = (web1, web2)[i % 2].base
            assert c.get("/incr") == "count=%d" % i
        c.base = web1.base
        assert c.get("/whoami") == "user=roaming count=10"
        c.base = web2.base
        assert c.get("/logout") == "bye"
        c.base = web1.base
        assert c.get("/whoami") == "anonymous"
