# SPDX-License-Identifier: GPL-2.0-or-later
"""Redis outages in every migration mode (DESIGN.md, "Modes", "Inside the
daemon": circuit breaker, fencing), with real PHP and Flask-Session apps
under load.

Redis is paused (SIGSTOP: calls hang until redis_timeout) or killed
(kill -9: connections refused; restarted from its AOF on the same port)
while simulated users keep counting through the apps and a PHP-style
writer (open, flock, ftruncate, pwrite, close) and reader hammer one more
session:

- files: Redis plays no part: no error at all;
- dual-write: keeps serving from the lower dir with no error; Redis
  catches up (the repair journal empties, Redis equals the lower dir);
- redis-first: the sessions this host wrote keep working from the lower
  dir with no error; another host's session (written straight to Redis,
  layout v1) fails with EIO after redis_timeout, not before; Redis
  catches up afterwards;
- redis-only: calls fail while Redis is away, with EIO and nothing else;
  once it is back, no acknowledged write is lost, no read goes back in
  time, every user is still logged in.

Then: calls waiting for Redis wait side by side (not one redis_timeout
after the other), the breaker trips again at a second outage, and
Flask-Session's habit of saving an empty session after a read that failed
does not destroy the stored session (failed-read fencing).
"""

import errno
import os
import threading
import time
import uuid

import pytest

import util
from util import SLOW, read_file, wait_for, write_file
from modeutil import (OUTAGE_LOG, PREFIX, ModeMount, cachelib_session,
                      flask_client, flask_sid_file, is_tombstone, mode_params,
                      redis_sessions, sessions_only, snapshot,
                      write_as_other_host)
from test_online import Load
from util import Op, php_read, php_write
from test_resilience import aof_server as _aof_server

pytestmark = util.fuse_test_marker()

# test_resilience.py's redis-server of a test's own (killed, restarted).
aof_server = _aof_server

TIMEOUT = 2  # redis_timeout of the mounts here, seconds
HOST = "web1"  # this mount's host id
OTHER_HOST = "web2"
FLASK_ENV = {"SESSION_FILE_THRESHOLD": "0"}
# What the apps log when a session call fails (redis-only outage).
PHP_FAIL_LOG = (r"Input/output error|Failed to (read|write|open) session data|"
                r"session_start\(\)|session_write_close\(\)|Write failed")
FLASK_FAIL_LOG = (r"Exception raised while handling cache file|Traceback|"
                  r"Errno 5\]|Input/output error")
OUTAGE_PHASES = ("paused", "killed", "back")


class Stalled(AssertionError):
    """The clients made no progress during an outage."""


class Queued(AssertionError):
    """Calls waiting for Redis waited one after the other."""


class BreakerFlaps(AssertionError):
    """The breaker did not stay open during a second outage."""


class PhasedLoad(Load):
    """test_online.Load, which also notes for every failed request the
    phases it started and ended in, and those of the user's request
    before it: in redis-only a request that failed during the outage may
    leave the user's count unknown (PHP answers 200 even when it could
    not write the session), so the next one may fail too."""

    PHASES = ("start", "paused", "killed", "back", "caught up", "stopped")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.tls = threading.local()
        # ((started in, ended in), the user's previous request's, message)
        self.failed = []

    def _get(self, user, path, want):
        self.tls.prev = getattr(user, "span", None)
        self.tls.start = self.phase_name
        try:
            return super()._get(user, path, want)
        finally:
            user.span = (self.tls.start, self.phase_name)

    def _count(self, error=None):
        if error is not None:
            self.failed.append(((self.tls.start, self.phase_name),
                                self.tls.prev, error))
        super()._count(error)

    def phase_requests(self):
        """Requests answered in the current phase."""
        with self.lock:
            return self.phases[-1][3]

    @classmethod
    def overlaps_outage(cls, span):
        """Whether a request that ran over 'span' (started in, ended in)
        was in flight while Redis was away."""
        if span is None:
            return False
        i = cls.PHASES.index
        return i(span[0]) <= i("back") and i(span[1]) >= i("paused")

    def failed_outside_outage(self):
        return [f for f in self.failed
                if not self.overlaps_outage(f[0])
                and not self.overlaps_outage(f[1])]


class Writer:
    """A PHP-style writer of one session (open, flock, ftruncate, one
    pwrite, close) and a reader of it (open, flock, fstat, pread), each on
    its own thread.  A write is acknowledged when close() returned; a read
    must never return less than what was acknowledged before it began.
    Failures are kept with the phase of the load they started in."""

    def __init__(self, path, load):
        self.path = path
        self.load = load
        self.acked = 0
        self.writes = 0
        self.errors = []  # (phase started in, phase ended in, op, errno)
        self.problems = []
        self.stopping = threading.Event()
        self.threads = []

    def _write(self):
        i = self.acked
        while not self.stopping.is_set():
            i += 1
            phase = self.load.phase_name
            try:
                php_write(self.path, b"n|i:%d;" % i)
                self.acked = i
                self.writes += 1
            except OSError as e:
                self.errors.append((phase, self.load.phase_name, "write",
                                    e.errno))

    def _read(self):
        while not self.stopping.is_set():
            floor, phase = self.acked, self.load.phase_name
            try:
                d = php_read(self.path)
            except OSError as e:
                self.errors.append((phase, self.load.phase_name, "read",
                                    e.errno))
                continue
            if not (d.startswith(b"n|i:") and d.endswith(b";")):
                self.problems.append("[%s] read %r" % (phase, d))
            elif int(d[4:-1]) < floor:
                self.problems.append("[%s] stale read %r after the ack of "
                                     "%d" % (phase, d, floor))

    def start(self):
        php_write(self.path, b"n|i:0;")
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._write, self._read)]
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60 * SLOW)
            assert not t.is_alive(), "the writer or reader hangs"

    def answered(self, phase):
        return self.writes + len([e for e in self.errors if e[1] == phase])


def wait_progress(load, writer, mode, n=6):
    """The clients keep going: 'n' more requests answered and 'n' more
    acknowledged writes; in redis-only during an outage, where every call
    fails after redis_timeout, at least one more answer each."""
    try:
        if mode == "redis-only" and load.phase_name in OUTAGE_PHASES:
            phase = load.phase_name
            base = writer.answered(phase)
            wait_for(lambda: load.phase_requests() >= 1
                     and writer.answered(phase) > base, 60,
                     "an answer to the clients during the outage")
        else:
            load.wait_requests(n, timeout=30)
            goal = writer.writes + n
            wait_for(lambda: writer.writes >= goal, 30,
                     "%d more acknowledged writes" % n)
    except AssertionError as e:
        raise Stalled("[%s] %s" % (load.phase_name, e))


def timed_op(fn, *args):
    op = Op(lambda: fn(*args))
    op.start()
    return op


def check_other_host_eio(m, name):
    """A read of another host's session while Redis is away: EIO, after
    redis_timeout and not before."""
    op = timed_op(read_file, m.path(name))
    op.join(TIMEOUT * 10 * SLOW)
    assert not op.is_alive(), "a read of another host's session hangs"
    assert isinstance(op.error, OSError) and op.error.errno == errno.EIO, \
        "another host's session, Redis away: %r, %r" % (op.error, op.result)
    assert op.took >= TIMEOUT - 0.1, \
        "EIO after %.2fs, before redis_timeout=%ds" % (op.took, TIMEOUT)
    assert op.took <= TIMEOUT + 1.5 * SLOW, \
        "EIO only after %.2fs (redis_timeout=%ds)" % (op.took, TIMEOUT)


def outage_opts():
    return ["redis_timeout=%d" % TIMEOUT, "host_id=" + HOST]


@pytest.mark.parametrize("outage", ["paused", "killed"])
@pytest.mark.parametrize("mode", mode_params())
def test_redis_outage_under_load(mode, outage, aof_server, tmp, sessdir,
                                 checker, make_app):
    """One outage of Redis, paused (SIGSTOP) or killed (kill -9, then
    restarted from its AOF), in the middle of the load."""
    checker.register_output(OUTAGE_LOG)
    r = aof_server.client()
    mm = ModeMount(tmp, aof_server, checker)
    other = "sess_otherhost0123456789abcdef"
    other_data = b'user|s:6:"remote";count|i:7;'
    with mm.mounted(sessdir, mode, outage_opts()) as m:
        apps = [make_app("php", sessdir),
                make_app("flask", sessdir, FLASK_ENV)]
        if mode == "redis-only":
            apps[0].checker.register_output(PHP_FAIL_LOG)
            apps[1].checker.register_output(FLASK_FAIL_LOG)
        if mode in ("redis-first", "redis-only"):
            write_as_other_host(r, other, other_data, host=OTHER_HOST)
        load = PhasedLoad(apps, users_per_app=3)
        writer = Writer(m.path("sess_writer0123456789abcdefgh"), load)
        load.start()
        writer.start()
        try:
            wait_for(lambda: all(u.count for u in load.users), 30,
                     "every user logged in and counting")
            wait_progress(load, writer, mode)

            load.phase(outage)
            checker.note("redis " + outage)
            if outage == "paused":
                aof_server.sigstop()
            else:
                aof_server.kill9()
            try:
                if mode != "files":  # files never asks Redis
                    mm.wait_redis_down(TIMEOUT * 5)
                wait_progress(load, writer, mode)
                if mode == "redis-first":
                    check_other_host_eio(m, other)
                wait_progress(load, writer, mode)
            finally:
                if outage == "paused":
                    aof_server.sigcont()
                else:
                    aof_server.restart()
            checker.note("redis back")
            load.phase("back")
            if mode != "files":
                mm.wait_repaired(30)
            load.phase("caught up")
            wait_progress(load, writer, mode)
            wait_progress(load, writer, mode)
        finally:
            writer.stop()
            load.stop()

        print(load.table())
        # No acknowledged write lost, no read back in time.
        assert not writer.problems, writer.problems[:5]
        final = php_read(writer.path)
        assert int(final[4:-1]) >= writer.acked, (final, writer.acked)
        if mode == "redis-only":
            # Failures only while Redis was away (or the request right
            # after one of those, see PhasedLoad), and only EIO.
            late = load.failed_outside_outage()
            assert not late, late[:5]
            assert not [e for e in writer.errors
                        if not load.overlaps_outage(e[:2])], \
                writer.errors[:5]
            assert {e[3] for e in writer.errors} <= {errno.EIO}, \
                writer.errors[:5]
        else:
            assert not load.errors, load.errors[:10]
            assert not writer.errors, writer.errors[:10]
        checked, lost = load.check_sessions()
        assert not lost, lost

        # Redis caught up with the lower dir; the other host's session is
        # still there, as it was written.
        view = sessions_only(snapshot(m.mnt))
        lower = sessions_only(snapshot("/proc/self/fd/%d" % m.lower_fd))
        in_redis = redis_sessions(r)
        if mode == "files":
            assert in_redis == {}
            assert mm.status()["journal"] > 0
            return
        mm.wait_repaired()
        if mode == "dual-write":
            assert in_redis == {n: v[0] for n, v in lower.items()}
            return
        assert in_redis.pop(other) == other_data
        assert view.pop(other)[0] == other_data
        assert util.meta(r, PREFIX, other)["host"] == OTHER_HOST
        assert in_redis == {n: v[0] for n, v in view.items()}
        if mode == "redis-first":
            assert in_redis == {n: v[0] for n, v in lower.items()}


# ----------------------------------------------------------------- waiting

@pytest.mark.parametrize("mode", mode_params(("redis-first",
                                               "redis-only")))
def test_calls_waiting_for_redis_wait_side_by_side(mode, aof_server, tmp,
                                                   sessdir, checker):
    """Four users of other hosts' sessions look them up at once while
    Redis is paused: each gets EIO after redis_timeout, not one
    redis_timeout after the other.  In redis-first this host's own
    sessions keep answering meanwhile."""
    checker.register_output(OUTAGE_LOG)
    r = aof_server.client()
    mm = ModeMount(tmp, aof_server, checker)
    others = ["sess_other%d0123456789abcdefghi" % i for i in range(5)]
    mine = ["sess_mine%d0123456789abcdefghij" % i for i in range(2)]
    with mm.mounted(sessdir, mode, outage_opts()) as m:
        # libfuse 3.14 drops the flag; the daemon sets it (fs/kio.c).
        assert mm.status()["parallel_lookups"] is True
        for n in others:
            write_as_other_host(r, n, b"other|i:1;", host=OTHER_HOST)
        for n in mine:
            write_file(m.path(n), b"mine|i:1;")
        aof_server.sigstop()
        try:
            assert util.errno_of(os.stat, m.path(others[0])) == errno.EIO
            mm.wait_redis_down()
            ops = [timed_op(os.stat, m.path(n)) for n in others[1:]]
            if mode == "redis-first":
                ops += [timed_op(read_file, m.path(n)) for n in mine]
            for op in ops:
                op.join(TIMEOUT * 10 * SLOW)
            assert not any(op.is_alive() for op in ops), "calls hang"
        finally:
            aof_server.sigcont()
        took = ["%.1f" % op.took for op in ops]
        for op in ops[:len(others) - 1]:
            assert isinstance(op.error, OSError) and \
                op.error.errno == errno.EIO, op.error
            assert op.took >= TIMEOUT - 0.1, took
        for op in ops[len(others) - 1:]:
            assert op.error is None and op.result == b"mine|i:1;", op.error
        mm.wait_repaired()
        slow = [t for t, op in zip(took, ops)
                if op.took > (TIMEOUT if op.error else 0) + 1.0 * SLOW]
        if slow:
            raise Queued("seconds taken by the calls started together "
                         "(redis_timeout=%d): %s" % (TIMEOUT, took))


# ----------------------------------------------------------------- breaker

@pytest.mark.parametrize("outage", ["paused", "killed"])
@pytest.mark.parametrize("mode", mode_params(("dual-write", "redis-first")))
def test_breaker_trips_again_at_the_next_outage(mode, outage, aof_server,
                                                tmp, sessdir, checker):
    """Two outages of Redis, one after the other.  In each, once the
    breaker has tripped, this host's writes go to the lower dir at once
    (journaled) and the mount says Redis is down until it is back; after
    each, Redis catches up."""
    checker.register_output(OUTAGE_LOG)
    r = aof_server.client()
    mm = ModeMount(tmp, aof_server, checker)
    name = "sess_breaker0123456789abcdefgh"
    with mm.mounted(sessdir, mode, ["redis_timeout=1",
                                    "host_id=" + HOST]) as m:
        php_write(m.path(name), b"n|i:0;")
        n = 0
        for round in (1, 2):
            checker.note("outage %d" % round)
            if outage == "paused":
                aof_server.sigstop()
            else:
                aof_server.kill9()
            why = None
            try:
                n += 1
                php_write(m.path(name), b"n|i:%d;" % n)  # trips it
                try:
                    wait_for(lambda: not mm.status()["redis_up"], 3,
                             "the breaker to open", interval=0.005)
                except AssertionError as e:
                    why = str(e)
                times = []
                while why is None and len(times) < 5:
                    n += 1
                    t0 = time.monotonic()
                    php_write(m.path(name), b"n|i:%d;" % n)
                    times.append(time.monotonic() - t0)
                    assert php_read(m.path(name)) == b"n|i:%d;" % n
                    if mm.status()["redis_up"]:
                        why = "the breaker closed, Redis still away"
                    elif times[-1] > 0.5 * SLOW:
                        why = "a write took %.2fs" % times[-1]
            finally:
                if outage == "paused":
                    aof_server.sigcont()
                else:
                    aof_server.restart()
            mm.wait_repaired()
            assert r.get(util.value_key(PREFIX, name)) == b"n|i:%d;" % n
            if why:
                why = "outage %d: %s" % (round, why)
                raise (AssertionError if round == 1 else BreakerFlaps)(why)


# ----------------------------------------------------------------- fencing

@pytest.mark.parametrize("back", [
    pytest.param("after-request", id="redis-back-after-the-request"),
    pytest.param("after-failed-read", id="redis-back-after-the-failed-read")])
@pytest.mark.parametrize("mode", mode_params(("redis-first", "redis-only")))
def test_failed_flask_read_does_not_destroy_session(
        mode, back, aof_server, tmp, sessdir, checker, make_app):
    """Another host's Flask session; Redis paused; the user's request
    fails to read it (cachelib logs it, the user looks logged out) and
    Flask-Session saves an empty session under the same name.  Redis
    comes back after that request, or while it still runs, right after
    the failed read.  Either way the stored session must survive."""
    checker.register_output(OUTAGE_LOG)
    r = aof_server.client()
    mm = ModeMount(tmp, aof_server, checker)
    with mm.mounted(sessdir, mode, ["redis_timeout=1", "host_id=" + HOST]):
        app = make_app("flask", sessdir, FLASK_ENV)
        app.checker.register_output(FLASK_FAIL_LOG)
        # The crafted bytes are what Flask-Session reads back.
        ctrl = str(uuid.uuid4())
        write_as_other_host(r, flask_sid_file(ctrl), cachelib_session(
            {"_permanent": True, "user": "ctrl", "count": 3}))
        assert flask_client(app, ctrl).get("/whoami") == "user=ctrl count=3"

        sid = str(uuid.uuid4())
        name = flask_sid_file(sid)
        data = cachelib_session({"_permanent": True, "user": "remote",
                                 "count": 7})
        write_as_other_host(r, name, data, host=OTHER_HOST)
        user = flask_client(app, sid)
        aof_server.sigstop()
        try:
            req = timed_op(user.get, "/whoami", None)
            if back == "after-failed-read":
                wait_for(lambda: "fencing '%s'" % name in checker.text(),
                         10, "the failed read (the fence in the log)")
                assert req.is_alive(), "the request ended with the read"
            else:
                req.join(30 * SLOW)
                assert not req.is_alive()
        finally:
            aof_server.sigcont()
        req.join(30 * SLOW)
        assert not req.is_alive()
        assert req.error is None, req.error
        # The read failed: the user looked logged out for that request.
        assert req.result == (200, "anonymous"), req.result
        mm.wait_repaired()
        assert r.get(util.value_key(PREFIX, name)) == data, \
            "the stored session was replaced"
        assert not is_tombstone(r, name)
        assert user.get("/whoami") == "user=remote count=7"
        assert user.get("/incr") == "count=8"
