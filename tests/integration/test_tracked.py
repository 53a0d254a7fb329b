# SPDX-License-Identifier: GPL-2.0-or-later
"""Tracked lookups (-o cache=tracking, fs/tracked.c, backend/track.c): in
redis-only, a name this host has read or written is answered from memory
(LOOKUP, GETATTR, OPEN of a closed session) while Redis reports no change
through CLIENT TRACKING; a change by anyone else (another host, redis-cli,
an expiry, FLUSHALL) is seen at the next call.  Real redis-server, two real
mounts standing for two hosts."""

import contextlib
import os
import re
import threading
import time

import pytest

import util
from util import read_file, wait_for, write_file
from modeutil import ModeMount, PREFIX

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not util.SESSFS.exists(),
                       reason="%s not built" % util.SESSFS),
]

NAME = "sess_tracked0123456789abcdefghij"
MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"


def script_calls(r):
    """Store calls Redis has run so far: a read is a transaction (EXEC),
    a write a script (EVALSHA, or EVAL)."""
    st = r.info("commandstats")
    return sum(st.get(k, {}).get("calls", 0)
               for k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_exec"))


def host(tmp, redis_server, checker, tag, cache="tracking"):
    d = tmp / tag
    d.mkdir()
    sessdir = util.make_sessdir(d)
    mm = ModeMount(d, redis_server, checker)
    extra = ["host_id=%s" % tag]
    if cache:
        extra.append("cache=%s" % cache)
    return mm, sessdir, extra


def wait_up(mm):
    return wait_for(lambda: mm.status()["cache"].get("up"), 10,
                    "the tracker to subscribe", interval=0.02)


@contextlib.contextmanager
def one_host(tmp, redis_server, checker):
    """Host a: a tracking mount, subscribed.  Yields (ModeMount, Mount)."""
    mm, sessdir, extra = host(tmp, redis_server, checker, "a")
    with mm.mounted(sessdir, "redis-only", extra) as m:
        wait_up(mm)
        yield mm, m


@contextlib.contextmanager
def two_hosts(tmp, redis_server, checker):
    """Hosts a and b: two tracking mounts on one Redis prefix, both
    subscribed.  Yields (ModeMount a, Mount a, ModeMount b, Mount b)."""
    mma, da, xa = host(tmp, redis_server, checker, "a")
    mmb, db, xb = host(tmp, redis_server, checker, "b")
    with mma.mounted(da, "redis-only", xa) as a, \
            mmb.mounted(db, "redis-only", xb) as b:
        wait_up(mma)
        wait_up(mmb)
        yield mma, a, mmb, b


def heard(mm):
    """Invalidations the host of 'mm' has heard of so far."""
    return mm.status()["cache"]["invalidations"]


def served(mm, before, read, want, prev):
    """What a tracking host serves right after another client changed a
    name: 'want', or (DESIGN.md, "Tracked lookups": nothing orders Redis's
    reply to the writer and its message to us) 'prev' until the
    invalidation reaches it, and 'want' at once after that, never anything
    else.  'before' is heard(mm) before the change.  True when the read
    was stale."""
    got = read()
    if got == want:
        return False
    assert got == prev, (got, want, prev)
    wait_for(lambda: heard(mm) > before, 5, "the invalidation to arrive")
    assert read() == want
    return True


@pytest.mark.parametrize("cache", ["tracking", "off"])
def test_known_names_cost_no_store_call(cache, redis, redis_server, tmp,
                                        checker):
    mm, sessdir, extra = host(tmp, redis_server, checker, "a", cache)
    with mm.mounted(sessdir, "redis-only", extra) as m:
        if cache == "tracking":
            wait_up(mm)
        p = m.path(NAME)
        write_file(p, b"v1")
        assert read_file(p) == b"v1"
        before = script_calls(redis)
        for _ in range(20):
            assert os.stat(p).st_size == 2
            assert read_file(p) == b"v1"
        calls = script_calls(redis) - before
        st = mm.status()
        human = util.run([str(MIGRATE), "status", "--mount", str(m.mnt),
                          "--ctl-dir", str(mm.ctl_dir)]).stdout
    cache_line = [ln for ln in human.splitlines() if ln.startswith("cache:")]
    if cache == "tracking":
        assert re.match(r"cache: +tracking, up, \d+ hits", cache_line[0]), \
            human
        assert calls == 0, "%d store calls for names already known" % calls
        assert st["cache"]["hits"] >= 40
    else:
        assert calls >= 40  # every LOOKUP and OPEN asks Redis
        assert st["cache"] == {"kind": "off"}
        assert cache_line == ["cache:       off (every lookup asks redis)"]


def test_another_host_sees_every_change_at_once(redis, redis_server, tmp,
                                                checker):
    """Host a writes, host b reads right after, 300 times: b serves a's
    write, or (DESIGN.md, "Tracked lookups": nothing orders Redis's reply
    to a and its message to b) the value before it until the message
    arrives, never anything else; once b has heard of the change it
    serves a's write, at once.  Most reads see the write at once (on an
    idle machine all of them; a loaded one lets a few through)."""
    stale = 0
    with two_hosts(tmp, redis_server, checker) as (mma, a, mmb, b):
        pb = b.path(NAME)
        write_file(a.path(NAME), b"0")
        for i in range(300):
            # b knows the name (and its bytes) now...
            assert read_file(pb) == str(i).encode()
            assert os.stat(pb).st_size == len(str(i))
            n = heard(mmb)
            # ...and a changes it.
            write_file(a.path(NAME), str(i + 1).encode(),
                       flags=os.O_RDWR | os.O_TRUNC)
            stale += served(mmb, n, lambda: read_file(pb),
                            str(i + 1).encode(), str(i).encode())
        assert read_file(pb) == b"300"
        n = heard(mmb)
        os.unlink(a.path(NAME))
        served(mmb, n, lambda: os.path.exists(pb), False, True)
        hits = mmb.status()["cache"]["hits"]
        inval = mmb.status()["cache"]["invalidations"]
    assert hits > 0 and inval >= 300
    print("stale reads right after a's write: %d of 300" % stale)
    assert stale < 30, stale


def test_a_new_open_sees_the_other_hosts_change_while_one_is_open(
        redis, redis_server, tmp, checker):
    """Close-to-open while this host still has the file open (or its
    RELEASE has not arrived yet): the open handle keeps reading, a new open
    gets what another host stored, or ENOENT once it deleted the name."""
    with two_hosts(tmp, redis_server, checker) as (mma, a, mmb, b):
        pa, pb = a.path(NAME), b.path(NAME)
        write_file(pa, b"one")
        held = os.open(pb, os.O_RDONLY)
        try:
            assert os.pread(held, 100, 0) == b"one"
            n = mmb.status()["cache"]["invalidations"]
            write_file(pa, b"two!", flags=os.O_RDWR | os.O_TRUNC)
            wait_for(lambda: mmb.status()["cache"]["invalidations"] > n, 5,
                     "b to hear of the change")
            assert read_file(pb) == b"two!"
            assert os.stat(pb).st_size == 4
            n = mmb.status()["cache"]["invalidations"]
            os.unlink(pa)
            wait_for(lambda: mmb.status()["cache"]["invalidations"] > n, 5,
                     "b to hear of the unlink")
            assert not os.path.exists(pb)
            assert os.pread(held, 100, 0) == b"two!"  # as an unlinked file
        finally:
            os.close(held)
        write_file(pb, b"new", flags=os.O_RDWR | os.O_CREAT | os.O_EXCL)
        assert read_file(pa) == b"new"


def test_metadata_changes_reach_the_other_host(redis, redis_server, tmp,
                                              checker):
    """utime and chmod on one host (a meta-only store write: PHP's
    lazy_write touch, cachelib's chmod) reach a host that has the name in
    memory (served()); the writer's own view needs no round trip."""
    with two_hosts(tmp, redis_server, checker) as (mma, a, mmb, b):
        pa, pb = a.path(NAME), b.path(NAME)
        write_file(pa, b"meta")
        assert os.stat(pb).st_mode & 0o777 == 0o600
        for i in range(1, 51):
            t = 1_700_000_000 + i
            before = os.stat(pb)
            n = heard(mmb)
            os.utime(pa, (t, t))
            served(mmb, n, lambda: os.stat(pb).st_mtime, t, before.st_mtime)
            mode = 0o640 if i % 2 else 0o600
            n = heard(mmb)
            os.chmod(pa, mode)
            served(mmb, n, lambda: os.stat(pb).st_mode & 0o777, mode,
                   before.st_mode & 0o777)
        before = script_calls(redis)
        assert os.stat(pa).st_mtime == 1_700_000_050
        assert script_calls(redis) == before


def test_changes_made_in_redis_are_seen(redis, redis_server, tmp, checker):
    """redis-cli-like changes (a SET, a DEL, FLUSHALL, an expiry) reach a
    host that has the name in memory (served())."""
    key = util.value_key(PREFIX, NAME)
    with one_host(tmp, redis_server, checker) as (mm, m):
        p = m.path(NAME)
        write_file(p, b"mine")
        assert read_file(p) == b"mine"
        n = heard(mm)
        redis.set(key, b"theirs!")
        served(mm, n, lambda: read_file(p), b"theirs!", b"mine")
        assert os.stat(p).st_size == 7
        n = heard(mm)
        redis.delete(key, util.meta_key(PREFIX, NAME))
        served(mm, n, lambda: os.path.exists(p), False, True)
        write_file(p, b"again")
        assert read_file(p) == b"again"
        n = heard(mm)
        redis.flushall()
        served(mm, n, lambda: os.path.exists(p), False, True)
        write_file(p, b"short-lived")
        assert read_file(p) == b"short-lived"
        redis.pexpire(key, 200)
        wait_for(lambda: not os.path.exists(p), 5, "the expiry to be seen")


def test_lost_tracking_is_never_trusted(redis, redis_server, tmp, checker):
    """Killing the tracker's connection, or the data connections, makes
    the daemon forget what it knew: a change made meanwhile is seen."""
    key = util.value_key(PREFIX, NAME)
    with one_host(tmp, redis_server, checker) as (mm, m):
        p = m.path(NAME)
        write_file(p, b"one")
        assert read_file(p) == b"one"
        # The tracker's connection goes: until it is back, nothing is
        # trusted, and a change made while it was away is seen.
        redis.client_kill_filter(_type="pubsub")
        redis.set(key, b"two")
        assert read_file(p) == b"two"
        wait_up(mm)
        assert read_file(p) == b"two"
        # The data connections go (their tracking with them), then a
        # change is made that no one is told about.
        for c in redis.client_list():
            if c.get("flags") != "P" and int(c["id"]) != redis.client_id():
                redis.client_kill_filter(_id=c["id"])
        redis.execute_command("CLIENT", "TRACKING", "OFF")
        redis.set(key, b"three")
        wait_for(lambda: read_file(p) == b"three", 1,
                 "the change to be seen once the connections were gone",
                 interval=0.01)


def test_silent_redis_is_trusted_for_at_most_1_5_s(redis, redis_server, tmp,
                                                    checker):
    """Redis stopped (as a partition would look): known names are answered
    at first (nothing can change in a stopped Redis), but not once the
    tracker has heard nothing for 1.5 s; then calls wait for Redis."""
    mm, sessdir, extra = host(tmp, redis_server, checker, "a")
    checker.register_output(r"redis|timed? ?out|unreachable|answers again")
    with mm.mounted(sessdir, "redis-only", extra) as m:
        wait_up(mm)
        p, q = m.path(NAME), m.path(NAME + "q")
        write_file(p, b"kept")
        write_file(q, b"q")
        assert read_file(p) == b"kept" and read_file(q) == b"q"
        # A change to q makes the tracker hear from Redis just now.
        n = mm.status()["cache"]["invalidations"]
        redis.set(util.value_key(PREFIX, NAME + "q"), b"changed")
        wait_for(lambda: mm.status()["cache"]["invalidations"] > n, 5,
                 "the invalidation of q")
        redis_server.sigstop()
        try:
            t0 = time.monotonic()
            assert read_file(p) == b"kept"  # a hit: no round trip
            assert time.monotonic() - t0 < 1.0
            time.sleep(2.0)  # past the 1.5 s the tracker may stay silent
            late = Reader(p)
            late.start()
            late.join(0.5)
            assert late.is_alive(), "a known name answered after 2 s of " \
                "silence from Redis"
        finally:
            redis_server.sigcont()
        late.join(30)
        assert late.result == b"kept", late.error


class Reader(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.result = self.error = None

    def run(self):
        try:
            self.result = read_file(self.path)
        except OSError as e:
            self.error = e


def test_refused_tracking_means_no_cache(redis, redis_server, tmp, checker):
    """A Redis user without CLIENT: the mount works, and asks Redis."""
    redis.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*",
                          "+@all", "-client")
    try:
        mm, sessdir, extra = host(tmp, redis_server, checker, "a")
        url = "redis://app:pw@127.0.0.1:%d" % redis_server.port
        checker.register_output(r"refused client tracking")
        with mm.mounted(sessdir, "redis-only", extra, url=url) as m:
            p = m.path(NAME)
            write_file(p, b"v")

            def refused():
                # A read asks Redis on a connection that tries tracking:
                # the write may have come before the tracker subscribed.
                read_file(p)
                return mm.status()["cache"].get("refused")
            wait_for(refused, 10, "tracking to be refused")
            before = script_calls(redis)
            for _ in range(5):
                assert read_file(p) == b"v"
            assert script_calls(redis) - before >= 5  # one per read
    finally:
        redis.execute_command("ACL", "DELUSER", "app")


def test_only_redis_only_is_cached(redis, redis_server, tmp, checker):
    """In redis-first (and before), every lookup asks the stores."""
    mm, sessdir, extra = host(tmp, redis_server, checker, "a")
    with mm.mounted(sessdir, "redis-first", extra) as m:
        wait_up(mm)
        p = m.path(NAME)
        write_file(p, b"v")
        before = script_calls(redis)
        for _ in range(5):
            assert read_file(p) == b"v"
        assert script_calls(redis) - before >= 5  # one per read
        assert mm.status()["cache"]["hits"] == 0


@pytest.mark.parametrize("kind", ["php", "flask"])
def test_a_session_roaming_between_two_hosts(kind, redis, redis_server, tmp,
                                             checker, make_app):
    """Two web servers with their own tracking mounts, one Redis prefix:
    a client sent to either at random never loses a count or a logout,
    though each host answers what it knows from memory."""
    env = {"SESSION_FILE_THRESHOLD": "0"} if kind == "flask" else None
    d1 = util.make_sessdir(tmp, "web1")
    d2 = util.make_sessdir(tmp, "web2")
    with util.app_on_mount(kind, redis_server, d1, checker, make_app, env,
                           opts=["host_id=web1", "cache=tracking"]) \
            as (m1, web1), \
            util.app_on_mount(kind, redis_server, d2, checker, make_app, env,
                              opts=["host_id=web2", "cache=tracking"]) \
            as (m2, web2):
        c = web1.client()
        assert c.get("/login?user=roaming") == "ok user=roaming"
        hosts = (web1, web2)
        for i in range(1, 41):
            # Mostly the same host a few times in a row, then the other:
            # both hosts keep what they read, and must drop it.
            c.base = hosts[(i // 3) % 2].base
            assert c.get("/incr") == "count=%d" % i
        c.base = web2.base
        assert c.get("/logout") == "bye"
        c.base = web1.base
        assert c.get("/whoami") == "anonymous"
        c.base = web2.base
        assert c.get("/whoami") == "anonymous"
