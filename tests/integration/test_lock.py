# SPDX-License-Identifier: GPL-2.0-or-later
"""flock() on a session file across hosts (fs/lock.h, DESIGN.md "Session
locks"): two mounts of one prefix on separate dirs are two hosts.  The
waiting side runs in a child process (LOCKER below: ctypes' flock, which
does not retry EINTR as Python's fcntl.flock does), so that a lock that
never comes fails the test by timeout instead of hanging it."""

import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest

import util
from util import (PYTHON, SLOW, app_on_mount, in_parallel, mounted,
                  wait_for)

pytestmark = util.fuse_test_marker()

LEASE = 2.0  # seconds: -o lock_lease of these mounts

# argv: path, op ("ex", "ex-nb", "hold"); prints "ok SECONDS",
# "err ERRNO SECONDS" or, for hold, "held" and then waits for stdin's end.
LOCKER = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGUSR1, lambda *a: None)
path, op = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
print("open", flush=True)
t = time.monotonic()
how = {"ex": 2, "ex-nb": 2 | 4, "hold": 2}[op]
r = libc.flock(fd, how)
dt = time.monotonic() - t
if r != 0:
    print("err %d %.3f" % (ctypes.get_errno(), dt), flush=True)
    sys.exit(0)
print("held" if op == "hold" else "ok %.3f" % dt, flush=True)
if op == "hold":
    sys.stdin.read()
"""


def locker(path, op):
    """A LOCKER child on 'path'; returns the Popen once its file is open."""
    p = subprocess.Popen([PYTHON, "-c", LOCKER, str(path), op],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "open"
    return p


def outcome(p, timeout):
    """The LOCKER's result line ('ok', seconds) or ('err', errno,
    seconds)."""
    # Not communicate(): it reads the pipe's fd, past what locker()'s
    # readline() already buffered, and a lock granted at once sends
    # "ok" in the same read as "open" (seen as an empty result).
    p.stdin.close()
    p.wait(timeout=timeout * SLOW)
    words = p.stdout.read().split()
    if words[0] == "ok":
        return "ok", float(words[1])
    return "err", int(words[1]), float(words[2])


def held(p):
    assert p.stdout.readline().strip() == "held"
    return p


def try_ex(path):
    """flock(LOCK_EX | LOCK_NB) on a new open of 'path': True if taken
    (then released), False on EWOULDBLOCK."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def two_hosts(tmp, redis_server, checker, mode="redis-only"):
    other = util.make_sessdir(tmp, "host2")
    first = util.make_sessdir(tmp, "host1")
    opts = ["lock_lease=%g" % LEASE, "mode=" + mode]
    with mounted(redis_server.url(), first, checker,
                 opts=opts + ["host_id=h1"]) as a, \
            mounted(redis_server.url(), other, checker,
                    opts=opts + ["host_id=h2"]) as b:
        yield a, b


@contextlib.contextmanager
def ended(*procs):
    """Kills what is still running of 'procs' at the end."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


def test_flock_excludes_the_other_host(redis, redis_server, tmp, checker):
    """A flock on host a keeps host b out (and another open on a), until
    it is released; the lock key is in the session's slot and goes with
    the lock."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        (a.path("sess_x")).write_bytes(b"x")
        fd = os.open(a.path("sess_x"), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        key = "sessfs:{sessfs:sess_x}:lk"
        assert redis.get(key).startswith(b"h1:")
        assert 0 < redis.pttl(key) <= LEASE * 1000
        assert not try_ex(b.path("sess_x"))
        assert not try_ex(a.path("sess_x"))
        assert try_ex(b.path("sess_y"))  # another name is free
        fcntl.flock(fd, fcntl.LOCK_UN)
        wait_for(lambda: try_ex(b.path("sess_x")), 5, "b to take the lock")
        os.close(fd)
        wait_for(lambda: redis.get(key) is None, 5, "the lock key to go")


def test_blocking_waiter_across_hosts(redis_server, tmp, checker):
    """A blocking LOCK_EX on b waits while a holds, and gets the lock once
    a's holder closes its file."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        h = held(locker(a.path("sess_w"), "hold"))
        w = locker(b.path("sess_w"), "ex")
        with ended(h, w):
            with pytest.raises(subprocess.TimeoutExpired):
                w.wait(0.5)
            h.stdin.close()  # the holder exits: its close unlocks
            res = outcome(w, 10)
            assert res[0] == "ok" and res[1] >= 0.5, res


def test_holder_killed_releases_at_once(redis_server, tmp, checker):
    """kill -9 of the holding process: the kernel's close unlocks, and the
    other host gets the lock well within the lease."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        h = held(locker(a.path("sess_k"), "hold"))
        w = locker(b.path("sess_k"), "ex")
        with ended(h, w):
            with pytest.raises(subprocess.TimeoutExpired):
                w.wait(0.3)
            t = time.monotonic()
            h.kill()
            res = outcome(w, 10)
            waited = time.monotonic() - t
            print("process kill -9 -> lock on the other host after %.3f s"
                  % waited)
            assert res[0] == "ok"
            assert waited < LEASE, waited


def test_daemon_killed_lock_expires_with_lease(redis, redis_server, tmp,
                                               checker):
    """kill -9 of host a's daemon while a process there holds the lock:
    nobody releases it, and host b gets it once the lease ran out."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        h = held(locker(a.path("sess_d"), "hold"))
        w = locker(b.path("sess_d"), "ex")
        with ended(h, w):
            with pytest.raises(subprocess.TimeoutExpired):
                w.wait(0.3)
            t = time.monotonic()
            a.kill9()
            res = outcome(w, 10 + 2 * LEASE)
            waited = time.monotonic() - t
            print("daemon kill -9 -> lock on the other host after %.3f s "
                  "(lease %.1f s)" % (waited, LEASE))
            assert res[0] == "ok"
            assert waited < LEASE + 2, waited
            h.kill()


@pytest.mark.parametrize("where", ["other-host", "same-host"])
def test_waiter_interrupted_by_a_signal(where, redis_server, tmp, checker):
    """A signal to a process waiting in flock(LOCK_EX) ends the wait with
    EINTR (FUSE INTERRUPT); the lock still works afterwards."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        h = held(locker(a.path("sess_i"), "hold"))
        wm = b if where == "other-host" else a
        w = locker(wm.path("sess_i"), "ex")
        with ended(h, w):
            with pytest.raises(subprocess.TimeoutExpired):
                w.wait(0.3)
            w.send_signal(signal.SIGUSR1)
            res = outcome(w, 10)
            assert res[0] == "err" and res[1] == errno.EINTR, res
            assert not try_ex(wm.path("sess_i"))
            h.stdin.close()
            h.wait(10)
            wait_for(lambda: try_ex(wm.path("sess_i")), 5,
                     "the lock after the holder left")


# argv: path, stop file: flock(LOCK_EX), 1 ms, unlock, again, until the
# stop file exists; prints the cycles done.
CHURNER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
print("open", flush=True)
n = 0
while not os.path.exists(sys.argv[2]):
    fcntl.flock(fd, fcntl.LOCK_EX)
    time.sleep(0.001)
    fcntl.flock(fd, fcntl.LOCK_UN)
    n += 1
print(n, flush=True)
"""


def test_busy_host_lets_the_other_in(redis_server, tmp, checker):
    """Three processes on host a keep the lock busy, always one of them
    waiting (handed on locally, without Redis); a waiter on host b still
    gets the lock (the want key makes a yield), and a's processes go on
    afterwards."""
    stop = tmp / "stop"
    with two_hosts(tmp, redis_server, checker) as (a, b):
        churn = []
        try:
            for _ in range(3):
                p = subprocess.Popen([PYTHON, "-c", CHURNER,
                                      str(a.path("sess_busy")), str(stop)],
                                     stdout=subprocess.PIPE, text=True)
                churn.append(p)
                assert p.stdout.readline().strip() == "open"
            waits = []
            for _ in range(3):
                w = locker(b.path("sess_busy"), "ex")
                with ended(w):
                    res = outcome(w, 10)
                assert res[0] == "ok", res
                waits.append(res[1])
            print("waits on b beside a busy host a: %s s"
                  % ", ".join("%.3f" % x for x in waits))
            assert max(waits) < 2, waits
        finally:
            stop.touch()
            cycles = [int(p.communicate(timeout=10 * SLOW)[0])
                      for p in churn]
        assert min(cycles) > 0, cycles


def test_shared_locks(redis_server, tmp, checker):
    """LOCK_SH: shared between processes of a host, exclusive against the
    other host (DESIGN.md: one Redis lock per host)."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        fd1 = os.open(a.path("sess_s"), os.O_RDWR | os.O_CREAT, 0o600)
        fd2 = os.open(a.path("sess_s"), os.O_RDWR)
        try:
            fcntl.flock(fd1, fcntl.LOCK_SH)
            fcntl.flock(fd2, fcntl.LOCK_SH | fcntl.LOCK_NB)
            assert not try_ex(a.path("sess_s"))
            assert not try_ex(b.path("sess_s"))
            fcntl.flock(fd1, fcntl.LOCK_UN)
            assert not try_ex(b.path("sess_s"))
            # A conversion to LOCK_EX: fd1 holds nothing now, fd2 shares.
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd1, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd1)
            os.close(fd2)
        wait_for(lambda: try_ex(b.path("sess_s")), 5, "b to take the lock")


def test_redis_down_locks_stay_on_the_host(redis_server, tmp, checker):
    """redis-first with Redis down (the breaker open): a flock does not
    wait for Redis, and still excludes the processes of the host."""
    from modeutil import OUTAGE_LOG, ModeMount
    checker.register_output(OUTAGE_LOG)
    mm = ModeMount(tmp, redis_server, checker)
    sessdir = util.make_sessdir(tmp, "down")
    with mm.mounted(sessdir, "redis-first", ["redis_timeout=2"]):
        path = os.path.join(sessdir, "sess_down")
        util.write_file(path, b"x")
        redis_server.sigstop()
        try:
            # This host wrote it last: read from underneath, and the
            # failed Redis call opens the breaker.
            os.stat(path)
            mm.wait_redis_down()
            fd = os.open(path, os.O_RDWR)
            t = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            took = time.monotonic() - t
            assert not try_ex(path)
            os.close(fd)
            assert try_ex(path)
        finally:
            redis_server.sigcont()
        util.wait_for(lambda: mm.status()["redis_up"], 15, "redis up")
    assert took < 1.0, "a flock waited %.1f s for Redis" % took


def test_files_mode_locks_stay_on_the_host(redis, redis_server, tmp,
                                           checker):
    """In files mode the lower file is the truth and each host's lock is
    its own (DESIGN.md): no Redis key, another host is not excluded."""
    with two_hosts(tmp, redis_server, checker, mode="files") as (a, b):
        (a.path("sess_f")).write_bytes(b"f")
        (b.path("sess_f")).write_bytes(b"f")
        fd = os.open(a.path("sess_f"), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert not try_ex(a.path("sess_f"))
        assert try_ex(b.path("sess_f"))
        assert redis.keys("*:lk") == []
        os.close(fd)


# fcntl (POSIX) locks.  argv: path.  A process that holds its file open
# and runs one command a line from stdin: "nb|wait|get r|w|u START LEN"
# (F_SETLK, F_SETLKW, F_GETLK through ctypes: no EINTR retry); prints "ok",
# "err ERRNO" or, for get, "lk TYPE START LEN PID" (TYPE r, w or u).
FCNTLER = r"""
import ctypes, fcntl, os, signal, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGUSR1, lambda *a: None)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
print("open %d" % os.getpid(), flush=True)
T = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}
N = {v: k for k, v in T.items()}
CMD = {"nb": fcntl.F_SETLK, "wait": fcntl.F_SETLKW, "get": fcntl.F_GETLK}
for line in sys.stdin:
    op, t, start, length = line.split()
    buf = ctypes.create_string_buffer(
        struct.pack("hhqqi4x", T[t], os.SEEK_SET, int(start), int(length), 0))
    if libc.fcntl(fd, CMD[op], buf) != 0:
        print("err %d" % ctypes.get_errno(), flush=True)
    elif op == "get":
        lt, _, st, ln, pid = struct.unpack("hhqqi4x", buf.raw[:32])
        print("lk %s %d %d %d" % (N[lt], st, ln, pid), flush=True)
    else:
        print("ok", flush=True)
"""


class Fcntler:
    """A FCNTLER child on 'path' (its pid in .pid)."""

    def __init__(self, path):
        self.p = subprocess.Popen([PYTHON, "-c", FCNTLER, str(path)],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        words = self.p.stdout.readline().split()
        assert words[0] == "open", words
        self.pid = int(words[1])

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def answer(self, timeout=10):
        """The next reply line, or None when none came within 'timeout'
        (for a wait that must go on)."""
        ready, _, _ = select.select([self.p.stdout], [], [], timeout * SLOW)
        return self.p.stdout.readline().strip() if ready else None

    def run(self, line):
        self.send(line)
        got = self.answer()
        assert got is not None, "no answer to %r" % line
        return got


def lk(fd, kind, start=0, length=0, nb=True):
    """fcntl.lockf on 'fd' (F_SETLK with 'nb', else F_SETLKW): 'kind' is
    LOCK_EX, LOCK_SH or LOCK_UN; True if done, False on EAGAIN/EACCES."""
    try:
        nb = fcntl.LOCK_NB if nb and kind != fcntl.LOCK_UN else 0
        fcntl.lockf(fd, kind | nb, length, start)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def blocking(seconds, fn, *args, **kw):
    """fn(*args, **kw), a call that may block, in a thread of its own:
    TimeoutError after 'seconds' (scaled by SLOW) instead of hanging the
    test.  No SIGALRM: under pytest-xdist a test need not run in the main
    thread, the only one Python lets set a signal handler."""
    res = {}

    def run():
        try:
            res["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the test below
            res["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds * SLOW)
    if t.is_alive():
        raise TimeoutError("still blocked after %g s" % seconds)
    if "error" in res:
        raise res["error"]
    return res["value"]


def getlk(fd, kind, start=0, length=0):
    """F_GETLK on 'fd': (type, start, len, pid) of the lock in the way."""
    buf = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)
    lt, _, st, ln, pid = struct.unpack(
        "hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, buf))
    return lt, st, ln, pid


EAGAIN = "err %d" % errno.EAGAIN


def test_fcntl_ranges_on_one_host(redis_server, tmp, checker):
    """fcntl locks between two processes of a host: byte ranges, per
    process, F_GETLK with the holder's pid, a split by a partial unlock,
    any close of the file drops the process's locks, F_SETLKW waits for
    the range only."""
    sessdir = util.make_sessdir(tmp, "one")
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["lock_lease=%g" % LEASE, "mode=redis-only"]) as m:
        path = m.path("sess_r")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        c = Fcntler(path)
        with ended(c.p):
            assert lk(fd, fcntl.LOCK_EX, 0, 10)
            assert lk(fd, fcntl.LOCK_SH, 5, 3)  # own lock: a conversion
            assert c.run("nb w 10 10") == "ok"
            assert c.run("nb w 9 2") == EAGAIN
            assert c.run("nb r 5 1") == "ok"  # 5 is shared now
            assert c.run("get w 0 1") == "lk w 0 5 %d" % os.getpid()
            assert c.run("get w 30 0") == "lk u 30 0 0"
            assert getlk(fd, fcntl.F_WRLCK, 12, 1) == (
                fcntl.F_WRLCK, 10, 10, c.pid)
            # Unlocking 2..3 splits 0..4: 2 is free, 1 and 4 are not.
            assert lk(fd, fcntl.LOCK_UN, 2, 2)
            assert c.run("nb w 2 2") == "ok"
            assert c.run("nb w 1 1") == EAGAIN
            assert c.run("nb w 4 1") == EAGAIN
            # F_SETLKW on 40..59 waits for 50, not for the others.
            assert lk(fd, fcntl.LOCK_EX, 50, 1)
            c.send("wait w 40 20")
            assert c.answer(0.5) is None
            assert lk(fd, fcntl.LOCK_UN, 50, 1)
            assert c.answer() == "ok"
            # A close of another descriptor of the file drops them all.
            os.close(os.open(path, os.O_RDONLY))
            assert c.run("nb w 0 10") == "ok"
            assert not lk(fd, fcntl.LOCK_SH, 0, 1)
            c.p.stdin.close()
            c.p.wait(10)
            # F_SETLKW: the child's exit freed it all.
            assert blocking(10, lk, fd, fcntl.LOCK_EX, nb=False)
        os.close(fd)


def test_fcntl_excludes_the_other_host(redis, redis_server, tmp, checker):
    """An fcntl lock on host a keeps host b out of the whole file (any
    range); F_GETLK on b answers a write lock of another host (pid 0); a
    waiter on b gets the lock when a unlocks; flock and fcntl locks share
    one Redis lock per host."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        ca = Fcntler(a.path("sess_p"))
        cb = Fcntler(b.path("sess_p"))
        with ended(ca.p, cb.p):
            assert ca.run("nb w 0 1") == "ok"
            key = "sessfs:{sessfs:sess_p}:lk"
            assert redis.get(key).startswith(b"h1:")
            fd = os.open(b.path("sess_p"), os.O_RDWR)
            try:
                assert not lk(fd, fcntl.LOCK_SH, 100, 1)
                assert getlk(fd, fcntl.F_RDLCK, 100, 1) == (
                    fcntl.F_WRLCK, 0, 0, 0)
                assert not try_ex(b.path("sess_p"))  # a flock too
            finally:
                os.close(fd)
            cb.send("wait w 500 1")
            assert cb.answer(0.5) is None
            assert ca.run("nb u 0 0") == "ok"
            assert cb.answer() == "ok"
            assert redis.get(key).startswith(b"h2:")
            assert not try_ex(a.path("sess_p"))  # b's fcntl keeps a out
            assert ca.run("nb r 0 0") == EAGAIN
            # lockf(F_SETLKW) on a waits for b's holder to exit.
            fd = os.open(a.path("sess_p"), os.O_RDWR)
            try:
                t = time.monotonic()
                threading.Timer(0.3, cb.p.stdin.close).start()
                assert blocking(10, lk, fd, fcntl.LOCK_EX, 0, 1, nb=False)
                assert time.monotonic() - t >= 0.3
            finally:
                os.close(fd)


def test_fcntl_holder_killed_and_waiter_interrupted(redis_server, tmp,
                                                     checker):
    """A waiter in F_SETLKW on host b, and one on host a, get EINTR from
    a signal; kill -9 of the holder on a (its exit closes the file: FLUSH
    drops its locks) lets the next waiter on b in well within the
    lease."""
    with two_hosts(tmp, redis_server, checker) as (a, b):
        ca = Fcntler(a.path("sess_q"))
        ca2 = Fcntler(a.path("sess_q"))
        cb = Fcntler(b.path("sess_q"))
        with ended(ca.p, ca2.p, cb.p):
            assert ca.run("nb w 0 0") == "ok"
            ca2.send("wait r 10 1")
            assert ca2.answer(0.3) is None
            ca2.p.send_signal(signal.SIGUSR1)
            assert ca2.answer() == "err %d" % errno.EINTR
            ca2.p.stdin.close()
            cb.send("wait w 0 0")
            assert cb.answer(0.3) is None
            cb.p.send_signal(signal.SIGUSR1)
            assert cb.answer() == "err %d" % errno.EINTR
            cb.send("wait w 0 0")
            assert cb.answer(0.3) is None
            t = time.monotonic()
            ca.p.kill()
            assert cb.answer() == "ok"
            waited = time.monotonic() - t
            print("fcntl: process kill -9 -> lock on the other host after "
                  "%.3f s" % waited)
            assert waited < LEASE, waited


@pytest.mark.parametrize("kind", ["php", "php-fpm"])
def test_php_increments_across_two_hosts(kind, redis_server, tmp, checker,
                                         make_app):
    """The issue's measurement: 40 parallel /incr of one session, 20 on
    each of two hosts running PHP (php -S, and php-fpm behind nginx): the
    count ends at exactly 40."""
    other = util.make_sessdir(tmp, "host2")
    first = util.make_sessdir(tmp, "host1")
    opts = ["lock_lease=%g" % LEASE]
    with app_on_mount(kind, redis_server, first, checker, make_app,
                      opts=opts + ["host_id=web1"]) as (m1, web1), \
            app_on_mount(kind, redis_server, other, checker, make_app,
                         opts=opts + ["host_id=web2"]) as (m2, web2):
        c = web1.client()
        assert c.get("/login?user=racer") == "ok user=racer"

        def incr(i):
            cl = c.clone((web1, web2)[i % 2].base)
            t = time.monotonic()
            got = cl.get("/incr_checked")
            return got, time.monotonic() - t

        t = time.monotonic()
        res = in_parallel(incr, range(40))
        total = time.monotonic() - t
        assert all(r[0].startswith("count=") for r in res), res
        counts = sorted(int(r[0][6:]) for r in res)
        waits = sorted(r[1] for r in res)
        print("%s: 40 increments on 2 hosts in %.2f s; request times: "
              "median %.3f s, max %.3f s" % (kind, total, waits[20],
                                             waits[-1]))
        assert counts == list(range(1, 41))
        assert c.get("/whoami") == "user=racer count=40"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__] + sys.argv[1:]))
