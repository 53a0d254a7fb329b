# SPDX-License-Identifier: GPL-2.0-or-later
"""Crash restart (DESIGN.md, "Crash restart"): kill -9 of the daemon leaves
the mountpoint answering ENOTCONN, never the lower files; sessfs started
again on the same mountpoint mounts a second layer over the dead one,
reaching the lower dir through its private bind under /run/sessfs, with
every session intact; `sessfs --status` counts the layers; `sessfs -u` (or
fusermount3 -u of the top layer) leaves the plain files and no layer.

Every test runs twice: in the test's own mount namespace, and in a new one
where '/' was made rshared and /run is a tmpfs of its own, as on a systemd
host (there a bind that is not private would show the FUSE mount instead
of the lower files).  The namespace is held by a `sleep` started with
`unshare -m`; commands enter it with nsenter, checks run in a forked child
that setns()es into it; killing the holder (after the daemons) takes every
mount of the namespace with it.  In the test's own namespace sessfs keeps
its private self-bind of /run/sessfs, by design (like /run/netns).

The tests need `sessfs -u` and `sessfs --status` and skip while `sessfs
--help` does not mention --status.
"""

import contextlib
import ctypes
import errno
import os
import shlex
import signal
import subprocess

import pytest

import util
from util import LIVE, SLOW, errno_of, read_file, wait_for, write_file

P = "sessfs:"
CLONE_NEWNS = 0x00020000


def _wired():
    """Why to skip, or None when sessfs has -u and --status."""
    if not util.SESSFS.exists():
        return "%s is not built" % util.SESSFS
    r = subprocess.run([str(util.SESSFS), "--help"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    if "--status" not in r.stdout:
        return "sessfs has no --status / -u yet (fs/mountpt.c not wired)"
    return None


_WHY = _wired()
pytestmark = [util.fuse_test_marker(),
              pytest.mark.skipif(_WHY is not None, reason=_WHY or "")]


def mount_id(mnt):
    """The id sessfs gives a mountpoint: FNV-1a 64 of its absolute path."""
    h = 0xcbf29ce484222325
    for b in os.path.realpath(mnt).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def run_dir(mnt):
    return "/run/sessfs/" + mount_id(mnt)


def unescape(field):
    """mountinfo's \\ooo escapes (space, tab, newline, backslash)."""
    out, i = bytearray(), 0
    while i < len(field):
        if field[i:i + 1] == b"\\" and field[i + 1:i + 4].isdigit():
            out.append(int(field[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


def mountinfo_at(path):
    """(fstype, optional fields) of each mount on 'path', bottom first, from
    /proc/self/mountinfo (of whatever namespace runs this)."""
    p = os.path.realpath(path).encode()  # lstat errors are ignored
    res = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b"-")
            if unescape(fields[4]) == p:
                res.append((fields[sep + 1].decode(),
                            b" ".join(fields[6:sep]).decode()))
    return res


# --------------------------------------------------------------- namespaces

def _setns(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNS) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns: %s" % os.strerror(e))
    finally:
        os.close(fd)


def _call_in(pid, fn, *args):
    """fn(*args) in a forked child inside the mount namespace of 'pid';
    returns its result or raises its exception (like util.run_as)."""
    return util.call_in_child(lambda: _setns(pid), fn, *args)


class HostNs:
    """The test's own mount namespace."""

    name = "host"
    prefix = []

    def call(self, fn, *args):
        return fn(*args)

    def stop(self):
        pass


class SharedNs:
    """A new mount namespace with '/' rshared and /run a tmpfs, held by a
    sleep; as on a host where systemd made every mount shared."""

    name = "rshared"

    def __init__(self):
        script = ("mount -t tmpfs -o mode=755,size=4m sessfs-test-run /run"
                  " && mount --make-rshared / && echo ready"
                  " && exec sleep 100000")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, text=True)
        LIVE.add(self)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            pytest.fail("cannot make the rshared namespace: %r" % line)
        self.prefix = ["nsenter", "-t", str(self.proc.pid), "-m", "--"]

    def call(self, fn, *args):
        return _call_in(self.proc.pid, fn, *args)

    def stop(self):
        util.stop_process(self.proc, group=True, timeout=5)
        self.proc.stdout.close()
        LIVE.remove(self)

    def abort(self, why):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(params=["host", "rshared"])
def ns(request):
    n = HostNs() if request.param == "host" else SharedNs()
    yield n
    n.stop()


# --------------------------------------------------------------- daemons

class Daemon:
    """One sessfs process in 'ns', output appended to the checker's log."""

    def __init__(self, ns, url, mnt, checker, opts):
        self.ns = ns
        self.mnt = str(mnt)
        self.cmd = util.sessfs_cmd(url, mnt, opts)
        checker.reproducers.append(shlex.join(ns.prefix + self.cmd))
        checker.note("start: " + shlex.join(ns.prefix + self.cmd))
        with open(checker.path, "ab") as log:
            # nsenter execs sessfs in its own process: proc.pid is sessfs.
            self.proc = subprocess.Popen(
                ns.prefix + self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        LIVE.add(self)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("sessfs exited with %d"
                                 % self.proc.returncode)

    def wait_serving(self):
        wait_for(lambda: self.ns.call(serving, self.mnt), 20,
                 "sessfs to serve %s" % self.mnt, interval=0.05,
                 check=self.check_alive)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10 * SLOW)

    def wait(self, timeout=10):
        return self.proc.wait(timeout * SLOW)

    def abort(self, why):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self):
        if self.proc.poll() is None:
            self.abort("end of test")
            self.proc.wait(30)
        LIVE.remove(self)


def serving(mnt):
    """True once a live sessfs answers on 'mnt' (stat works, and it is a
    fuse.sessfs mount, not the plain dir)."""
    try:
        os.stat(mnt)
    except OSError:
        return False
    layers = mountinfo_at(mnt)
    return bool(layers) and layers[-1][0] == "fuse.sessfs"


def _force_clean(mnt, rdir):
    """Last resort after a failure: detach whatever is left."""
    for path in (mnt, rdir + "/lower"):
        for _ in range(16):
            if not mountinfo_at(path):
                break
            subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL,
                           timeout=30)
    for d in (rdir + "/lower", rdir):
        with contextlib.suppress(OSError):
            os.rmdir(d)


@pytest.fixture
def scene(ns, redis, redis_server, sessdir, checker):
    """start(): a new sessfs on sessdir in 'ns' (mode=redis-only,
    allow_other).  Afterwards every daemon is killed and every layer and
    the bind removed, also when the test failed."""
    state = checker.path.parent / "state"
    state.mkdir()
    opts = ["mode=redis-only", "allow_other", "state_dir=%s" % state]
    daemons = []

    def start():
        d = Daemon(ns, redis_server.url(), sessdir, checker, opts)
        daemons.append(d)
        return d

    yield start
    for d in daemons:
        d.stop()
    r = sessfs(ns, "-u", sessdir)
    if r.returncode != 0 or ns.call(mountinfo_at, str(sessdir)):
        ns.call(_force_clean, str(sessdir), run_dir(sessdir))
    assert r.returncode == 0, r.stderr


def sessfs(ns, *args):
    return util.run(ns.prefix + [str(util.sessfs_binary())]
                    + [str(a) for a in args])


def status(ns, mnt):
    """`sessfs --status` as a dict: layers, top, covered, bind."""
    r = sessfs(ns, "--status", mnt)
    assert r.returncode == 0, r.stderr
    st = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    st["layers"] = int(st["layers"])
    st["covered"] = int(st["covered"])
    return st


# --------------------------------------------------------------- checks

def dead_view(mnt, names):
    """What the application sees on a dead mount: errno per access."""
    res = {"stat": errno_of(os.stat, mnt),
           "listdir": errno_of(os.listdir, mnt)}
    for n in names:
        res["open " + n] = errno_of(read_file, os.path.join(mnt, n))
        res["create " + n] = errno_of(write_file, os.path.join(mnt, n + "x"),
                                      b"x")
    return res


def plain_view(mnt):
    """Names and bytes of the files on 'mnt' (plain dir, no layer)."""
    return {n: read_file(os.path.join(mnt, n)) for n in os.listdir(mnt)}


def served_files(mnt, names):
    return {n: read_file(os.path.join(mnt, n)) for n in names}


def write_sessions(mnt, sessions):
    for n, data in sessions.items():
        write_file(os.path.join(mnt, n), data)


def bind_state(bind):
    """(mounts on the bind, its optional fields, names it shows)."""
    info = mountinfo_at(bind)
    names = sorted(os.listdir(bind)) if info else None
    return len(info), info[-1][1] if info else "", names


def run_dir_exists(mnt):
    return os.path.exists(run_dir(mnt))


SESSIONS = {"sess_%02d" % i: b"user|s:%d;" % i + b"x" * (i * 37)
            for i in range(8)}


def seed_lower(sessdir):
    """A legacy file in the lower dir: visible only when no layer is."""
    write_file(sessdir / "sess_stale", b"STALE-LOWER")
    return plain_view(sessdir)


def crash(ns, d, mnt):
    d.kill9()
    view = ns.call(dead_view, str(mnt), list(SESSIONS)[:2] + ["sess_stale"])
    assert set(view.values()) == {errno.ENOTCONN}, view
    st = status(ns, mnt)
    assert (st["layers"], st["top"], st["covered"]) == (1, "dead", 0), st
    assert st["bind"] == run_dir(mnt) + "/lower", st


def restart(ns, start, mnt, redis):
    d = start()
    d.wait_serving()
    assert ns.call(served_files, str(mnt), list(SESSIONS)) == SESSIONS
    # The restarted daemon reads and writes Redis as before.
    ns.call(write_sessions, str(mnt), {"sess_new": b"after restart"})
    assert redis.get(util.value_key(P, "sess_new")) == b"after restart"
    st = status(ns, mnt)
    assert (st["layers"], st["top"], st["covered"]) == (2, "alive", 1), st
    nbind, optional, names = ns.call(bind_state, run_dir(mnt) + "/lower")
    assert nbind == 1 and "shared:" not in optional, optional
    assert "sess_stale" in names and "sess_new" not in names, names
    return d


def check_plain(ns, mnt, lower):
    assert ns.call(plain_view, str(mnt)) == lower
    st = status(ns, mnt)
    assert (st["layers"], st["top"], st["bind"]) == (0, "none", "none"), st
    assert not ns.call(run_dir_exists, str(mnt))


# --------------------------------------------------------------- tests

def test_kill9_restart_then_unmount(ns, scene, sessdir, redis, checker):
    """kill -9 -> ENOTCONN; restart -> 2 layers, sessions intact;
    sessfs -u -> plain files, no layer, no bind."""
    lower = seed_lower(sessdir)
    a = scene()
    a.wait_serving()
    ns.call(write_sessions, str(sessdir), SESSIONS)
    st = status(ns, sessdir)
    assert (st["layers"], st["top"]) == (1, "alive"), st

    crash(ns, a, sessdir)
    b = restart(ns, scene, sessdir, redis)

    r = sessfs(ns, "-u", sessdir)
    assert r.returncode == 0, r.stderr
    assert b.wait() == 0
    check_plain(ns, sessdir, lower)
    # The sessions stay in Redis for the next mount.
    assert redis.get(util.value_key(P, "sess_03")) == SESSIONS["sess_03"]


def test_fusermount_of_top_leaves_plain_files(ns, scene, sessdir, redis):
    """fusermount3 -u of the restarted layer: that daemon removes the dead
    layer below and the bind itself, so no dead layer shows."""
    lower = seed_lower(sessdir)
    a = scene()
    a.wait_serving()
    ns.call(write_sessions, str(sessdir), SESSIONS)
    crash(ns, a, sessdir)
    b = restart(ns, scene, sessdir, redis)

    r = util.run(ns.prefix + ["fusermount3", "-u", str(sessdir)])
    assert r.returncode == 0, r.stderr
    assert b.wait() == 0
    check_plain(ns, sessdir, lower)


def refused_start(ns, redis_server, sessdir, tmp):
    """Runs one more sessfs on sessdir to completion (it must refuse)."""
    state = tmp / "state-refused"
    state.mkdir(exist_ok=True)
    return util.run(ns.prefix + util.sessfs_cmd(
        redis_server.url(), sessdir,
        ["mode=redis-only", "state_dir=%s" % state]))


def test_second_daemon_refused_while_one_runs(ns, scene, sessdir, redis,
                                              redis_server, tmp):
    """A second sessfs on a live mount is refused and changes nothing."""
    seed_lower(sessdir)
    a = scene()
    a.wait_serving()
    ns.call(write_sessions, str(sessdir), SESSIONS)
    r = refused_start(ns, redis_server, sessdir, tmp)
    assert r.returncode != 0
    assert "another sessfs still runs" in r.stderr, r.stderr
    a.check_alive()
    assert ns.call(served_files, str(sessdir), list(SESSIONS)) == SESSIONS
    assert status(ns, sessdir)["layers"] == 1


def test_dead_layer_without_bind_is_refused(ns, scene, sessdir, redis,
                                            redis_server, tmp):
    """Without the bind the lower dir cannot be reached unexposed: sessfs
    refuses and the mountpoint keeps answering ENOTCONN."""
    lower = seed_lower(sessdir)
    a = scene()
    a.wait_serving()
    crash(ns, a, sessdir)
    r = util.run(ns.prefix + ["umount", "-l", run_dir(sessdir) + "/lower"])
    assert r.returncode == 0, r.stderr
    r = refused_start(ns, redis_server, sessdir, tmp)
    assert r.returncode != 0
    assert "no bind" in r.stderr, r.stderr
    view = ns.call(dead_view, str(sessdir), ["sess_stale"])
    assert set(view.values()) == {errno.ENOTCONN}, view

    r = sessfs(ns, "-u", sessdir)
    assert r.returncode == 0, r.stderr
    check_plain(ns, sessdir, lower)
