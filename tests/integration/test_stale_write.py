# SPDX-License-Identifier: GPL-2.0-or-later
"""The stale-retry rule of the write path (backend/store.h, docs/DESIGN.md,
"Writes without Lua"): a write whose request reaches Redis late, after its
client gave up on the connection and wrote again, never overwrites a newer
write and never undoes a delete.

A util.HoldProxy between the mount and a real redis-server keeps back the
request chunk that carries one write's bytes and drops the daemon's
connection; the daemon writes again on a new connection (acknowledged),
then the test writes newer bytes or deletes the file, and only then the
kept chunk is delivered on its old connection, whatever it set up there
(the WATCH of a plain write) still in place.  Redis must leave the newer
state alone.  Runs for both write paths: the plain transaction of the
default options and the put script (cache=tracking keeps the scripts).
"""

import os
import time

import pytest

import util
from util import wait_for, write_file

pytestmark = util.fuse_test_marker()

PREFIX = "sessfs:"
NAME = "sess_stalewrite0123456789abcdef"


def _body(tag):
    return b'user|s:5:"alice";tag|s:%d:"%s";' % (len(tag), tag.encode())


@pytest.fixture(params=["plain", "script"])
def held_mount(request, redis, redis_server, sessdir, checker):
    proxy = util.HoldProxy(redis_server.port)
    opts = ["allow_other", "redis_timeout=5", "host_id=web1"]
    if request.param == "script":
        opts.append("cache=tracking")
    # The daemon meets a dropped connection: a reconnect is logged.
    try:
        with util.mounted(proxy.url(), sessdir, checker, opts=opts) as m:
            yield m, proxy, redis
    finally:
        proxy.stop()


def _write_held(m, proxy, tag):
    """Writes _body(tag) with its first request held back by the proxy;
    the daemon's retry on a new connection is acknowledged."""
    proxy.hold(_body(tag))
    write_file(m.path(NAME), _body(tag), flags=os.O_RDWR | os.O_TRUNC)
    assert proxy.holding(), "the write never carried its bytes to Redis"


def test_late_older_write_does_not_overwrite_a_newer_one(held_mount):
    m, proxy, r = held_mount
    write_file(m.path(NAME), _body("v1"))
    _write_held(m, proxy, "v2")
    assert r.get(util.value_key(PREFIX, NAME)) == _body("v2")
    write_file(m.path(NAME), _body("v3"), flags=os.O_RDWR | os.O_TRUNC)
    wv = int(util.meta(r, PREFIX, NAME)["wv"])
    # The kept v2 request runs now, on its old connection.
    proxy.release()
    time.sleep(0.2)
    assert r.get(util.value_key(PREFIX, NAME)) == _body("v3"), \
        "a late retry of an older write overwrote the newer one"
    assert int(util.meta(r, PREFIX, NAME)["wv"]) == wv
    with open(m.path(NAME), "rb") as f:
        assert f.read() == _body("v3")


def test_late_older_write_does_not_undo_a_delete(held_mount):
    m, proxy, r = held_mount
    write_file(m.path(NAME), _body("v1"))
    _write_held(m, proxy, "v2")
    os.unlink(m.path(NAME))
    assert not r.exists(util.value_key(PREFIX, NAME))
    proxy.release()
    time.sleep(0.2)
    assert not r.exists(util.value_key(PREFIX, NAME)), \
        "a late retry of an older write brought a deleted session back"
    assert util.meta(r, PREFIX, NAME).get("del") == "1"
    wait_for(lambda: not os.path.exists(m.path(NAME)), 5,
             "the file to stay deleted")


def test_late_write_alone_still_lands_once(held_mount):
    """Nothing newer came: the kept request may run (it holds the same
    bytes as the acknowledged retry) and changes nothing visible."""
    m, proxy, r = held_mount
    write_file(m.path(NAME), _body("v1"))
    _write_held(m, proxy, "v2")
    proxy.release()
    time.sleep(0.2)
    assert r.get(util.value_key(PREFIX, NAME)) == _body("v2")
    with open(m.path(NAME), "rb") as f:
        assert f.read() == _body("v2")
