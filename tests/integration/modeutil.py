# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers of the migration-mode tests (test_modes.py, test_modes_outage.py,
test_php_fpm.py, test_django.py), on top of util.py: a sessfs mount in a
given mode with its own state and control dirs, the mount's status over
its control socket (repair journal depth, Redis up), snapshots of a
directory (names, bytes, owner, mode, mtime) to compare what the mount
showed with the plain files left underneath, the sessions in Redis as
redis-py sees them, a session written straight to Redis as another host
would (layout v1, backend/layout.h), a small tmpfs as the lower dir (full,
read-only), and a small ext4 image as the lower dir (back-dated ctimes).

Nothing here sleeps to synchronise: waits go through util.wait_for().
"""

import contextlib
import errno
import json
import os
import pickle
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

import util
from util import SLOW, wait_for

PREFIX = "sessfs:"  # the mount's default prefix
MODES = ("files", "dual-write", "redis-first", "redis-only")
# Modes whose lower dir is current: an unmount leaves the files the mount
# showed (DESIGN.md, Modes, last column; one host).
LOWER_CURRENT = ("files", "dual-write", "redis-first")
# Modes that write Redis with every change (files only journals).
WRITES_REDIS = ("dual-write", "redis-first", "redis-only")

# What the daemon may log about a Redis outage (and the fence of a name
# whose read failed); nothing else.
OUTAGE_LOG = (r"redis|connect|reset|refused|timed? ?out|EOF|broken pipe|"
              r"input/output|unavailable|retry|reconnect|fenc")

# Names that must never be left in a lower dir: our atomic-write temps,
# cachelib's mkstemp temps, libfuse's hidden files, any dot file.
STRAY = re.compile(r"^\.|^tmp[a-z0-9_]{8}\.__wz_cache$|\.sessfs-tmp\.")


def mode_params(modes=MODES):
    """pytest.param per mode, with the mode as its id."""
    return [pytest.param(m, id=m) for m in modes]


# ----------------------------------------------------------------- mounts

class ModeMount:
    """Where a test's mounts keep their state: one state_dir and one
    ctl_dir under the test's tmp dir, shared by every mount of the test
    (a remount finds the journal and manifest of the previous one)."""

    def __init__(self, tmp, redis_server, checker):
        self.tmp = Path(tmp)
        self.redis_server = redis_server
        self.checker = checker
        self.state_dir = self.tmp / "state"
        self.ctl_dir = self.tmp / "ctl"
        self.state_dir.mkdir(exist_ok=True)

    def opts(self, mode, extra=()):
        return ["allow_other", "mode=%s" % mode,
                "ctl_dir=%s" % self.ctl_dir] + list(extra)

    @contextlib.contextmanager
    def mounted(self, sessdir, mode, extra=(), url=None, lower_fd=None):
        """util.mounted() of sessfs in 'mode' on 'sessdir'.  Also waits
        for sessfs to be the top mount there: util.mounted() waits for
        os.path.ismount(), which a sessdir that is itself a mount point
        (tmpfs_lower()) satisfies before sessfs has mounted."""
        with util.mounted(url or self.redis_server.url(), sessdir,
                          self.checker, opts=self.opts(mode, extra),
                          state_dir=self.state_dir, lower_fd=lower_fd) as m:
            def died():
                if m.proc.poll() is not None:
                    raise AssertionError("sessfs exited with %d"
                                         % m.proc.returncode)
            wait_for(lambda: is_sessfs_top(sessdir), 10,
                     "sessfs on top of %s" % sessdir, check=died)
            yield m

    # -- the control socket

    def sock(self):
        socks = sorted(self.ctl_dir.glob("*.sock"))
        assert len(socks) == 1, "control sockets in %s: %s" % (self.ctl_dir,
                                                               socks)
        return socks[0]

    def ctl(self, cmd, timeout=10, **args):
        """One request on the control socket; the reply as a dict."""
        req = dict(args, cmd=cmd)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout * SLOW)
            s.connect(str(self.sock()))
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def status(self):
        st = self.ctl("status")
        assert st.get("ok"), st
        return st

    def wait_repaired(self, timeout=15, what="the repair journal to empty"):
        """Waits until Redis is up for the mount and its repair journal is
        empty; returns the status."""
        def done():
            st = self.status()
            return st if st["redis_up"] and st["journal"] == 0 else None
        return wait_for(done, timeout, what, interval=0.05)

    def wait_redis_down(self, timeout=15):
        return wait_for(lambda: not self.status()["redis_up"], timeout,
                        "the mount to see Redis down", interval=0.02)


def is_sessfs_top(path):
    line = util.mount_line(path)
    return line is not None and line.split()[2] == "fuse.sessfs"


# ----------------------------------------------------------------- views

def snapshot(path, names=None):
    """name -> (bytes, uid, gid, mode bits, mtime_ns) of every entry of
    the directory 'path' (or only 'names')."""
    snap = {}
    for name in sorted(os.listdir(path) if names is None else names):
        p = os.path.join(path, name)
        st = os.stat(p, follow_symlinks=False)
        snap[name] = (util.read_file(p), st.st_uid, st.st_gid,
                      st.st_mode & 0o7777, st.st_mtime_ns)
    return snap


def stray(names):
    return sorted(n for n in names if STRAY.search(n))


def is_local(name):
    """Host-local names (temps, cachelib's count file): never in Redis."""
    return (name.endswith(".__wz_cache") or ".tmp" in name
            or name == util.CACHELIB_COUNT)


def sessions_only(snap):
    return {n: v for n, v in snap.items() if not is_local(n)}


def diff_snapshots(want, got):
    """Human-readable differences between two snapshot() results."""
    out = []
    fields = ("bytes", "uid", "gid", "mode", "mtime_ns")
    for n in sorted(set(want) | set(got)):
        if n not in got:
            out.append("%s: missing" % n)
        elif n not in want:
            out.append("%s: unexpected" % n)
        else:
            for f, a, b in zip(fields, want[n], got[n]):
                if a != b:
                    if f == "bytes":
                        a, b = a[:60], b[:60]
                    out.append("%s: %s %r != %r" % (n, f, a, b))
    return out


def redis_sessions(r, prefix=PREFIX):
    """name -> value of every session value key under 'prefix' (meta keys
    and markers hold '{' and are left out)."""
    out = {}
    for k in r.scan_iter(match=prefix.encode() + b"*", count=1000):
        if b"{" in k:
            continue
        v = r.get(k)
        if v is not None:
            out[k[len(prefix):].decode()] = v
    return out


def is_tombstone(r, name, prefix=PREFIX):
    return (r.exists(util.value_key(prefix, name)) == 0
            and util.meta(r, prefix, name).get("del") == "1")


def check_deleted(m, mm, redis, mode, gone, also=()):
    """The names 'gone' were deleted through the mount 'm' (ModeMount
    'mm'): no longer listed, stat says ENOENT; every one of them and of
    'also' is a tombstone in Redis where the mode writes Redis, or the
    journal holds them for Redis (files)."""
    listed = os.listdir(m.mnt)
    for name in gone:
        assert name not in listed, "%s: not deleted" % name
        assert util.errno_of(os.stat, m.path(name)) == errno.ENOENT, name
    if mode in WRITES_REDIS:
        for name in list(gone) + list(also):
            assert is_tombstone(redis, name), name
    else:
        assert mm.status()["journal"] > 0
    return listed


def write_as_other_host(r, name, data, host="web-other", uid=util.WWW_UID,
                        gid=util.WWW_GID, mode=0o600, mtime_ns=None,
                        ttl_s=86400, prefix=PREFIX):
    """Stores 'name' straight in Redis as another host's sessfs would, in
    layout v1: the value key and a meta hash naming 'host' as the last
    writer (backend/layout.h)."""
    now = time.time_ns()
    mt = now if mtime_ns is None else mtime_ns
    vk, mk = util.value_key(prefix, name), util.meta_key(prefix, name)
    p = r.pipeline(transaction=True)
    p.set(vk, data, ex=ttl_s)
    p.delete(mk)
    p.hset(mk, mapping={"v": "1", "mt": str(mt), "ct": str(mt),
                        "uid": str(uid), "gid": str(gid),
                        "mode": str(mode), "wv": "1", "host": host,
                        "hs": "%020d" % now})
    p.expire(mk, ttl_s + 32 * 24 * 3600)
    p.execute()


def cachelib_session(data, lifetime_s=31 * 24 * 3600):
    """The bytes Flask-Session 0.3.2 (cachelib 0.9) writes for the session
    dict 'data': 4-byte native expiry + pickle protocol 5."""
    return (struct.pack("I", int(time.time()) + lifetime_s)
            + pickle.dumps(dict(data), protocol=5))


def flask_sid_file(sid):
    import hashlib
    return hashlib.md5(("session:" + sid).encode()).hexdigest()


def flask_client(app, sid):
    """A util.Client of 'app' whose Flask-Session cookie is 'sid' (0.3.2
    uses the cookie value as the sid, unsigned)."""
    import http.cookiejar
    c = app.client()
    c.jar.set_cookie(http.cookiejar.Cookie(
        0, "session", sid, None, False, "127.0.0.1", False, False, "/",
        True, False, None, False, None, None, {}))
    return c


# ----------------------------------------------------------------- lower dirs

def _mount(*args):
    r = util.run(["mount"] + [str(a) for a in args])
    assert r.returncode == 0, "mount %s: %s" % (" ".join(map(str, args)),
                                                 r.stderr)


def _umount(path):
    if util.is_mounted(path):
        subprocess.run(["umount", "-l", str(path)], stderr=subprocess.DEVNULL,
                       timeout=30)


@contextlib.contextmanager
def tmpfs_lower(tmp, size="256k"):
    """A small tmpfs holding the session dir (www-data, 0700).  Yields
    (view, sessdir): 'sessdir' is a plain directory on the tmpfs for sessfs
    to mount over (not a mount point itself, so util.mounted() can tell
    when sessfs is there and gone), 'view' the same directory through a
    bind of the tmpfs that sessfs does not cover, for the test to look at,
    fill, or remount the tmpfs read-only or writable through
    (remount_tmpfs).  Everything is unmounted at the end."""
    tmp = Path(tmp)
    fsroot, viewroot = tmp / "lowerfs", tmp / "lowerview"
    fsroot.mkdir()
    viewroot.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=%s,mode=0755" % size,
               "sessfs-test", fsroot)
        sessdir = util.make_sessdir(fsroot)
        _mount("--bind", fsroot, viewroot)
        yield viewroot / sessdir.name, sessdir
    finally:
        if util.is_mounted(fsroot / "sessions"):
            util.unmount_all(fsroot / "sessions")
        _umount(viewroot)
        _umount(fsroot)


class Ext4Lower:
    """A session dir on a small ext4 image (loop mount), for what tmpfs
    cannot do: back-date a file's ctime (no system call sets ctime;
    debugfs edits the unmounted image).  'sessdir' (www-data, 0700) is a
    plain directory on it for sessfs to mount over; 'view' the same
    directory through a bind of the file system that sessfs does not
    cover, for the test to look at."""

    def __init__(self, tmp, size_mb=16):
        tmp = Path(tmp)
        self.img = tmp / "lower.ext4"
        self.fsroot = tmp / "lowerfs"
        self.viewroot = tmp / "lowerview"
        self.fsroot.mkdir()
        self.viewroot.mkdir()
        with open(self.img, "wb") as f:
            f.truncate(size_mb << 20)
        r = util.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal",
                      str(self.img)])
        assert r.returncode == 0, r.stderr
        self._mount()
        self.sessdir = util.make_sessdir(self.fsroot)
        self.view = self.viewroot / self.sessdir.name

    def _mount(self):
        _mount("-o", "loop", self.img, self.fsroot)
        _mount("--bind", self.fsroot, self.viewroot)

    def _umount(self):
        for d in (self.viewroot, self.fsroot):
            if util.is_mounted(d):
                r = util.run(["umount", str(d)])
                assert r.returncode == 0, "umount %s: %s" % (d, r.stderr)

    def set_times(self, times):
        """times: name -> (mtime_s or None, ctime_s or None), whole
        seconds since the epoch, written into the inodes of the files of
        the session dir with debugfs while the image is unmounted.  Only
        while sessfs is not mounted on it."""
        assert not util.is_mounted(self.sessdir), "sessfs is mounted"
        self._umount()
        cmds = []
        for name, (mt, ct) in times.items():
            path = "/%s/%s" % (self.sessdir.name, name)
            if mt is not None:
                cmds.append("set_inode_field %s mtime @%d" % (path, mt))
            if ct is not None:
                cmds.append("set_inode_field %s ctime @%d" % (path, ct))
        cmdfile = self.img.with_suffix(".debugfs")
        cmdfile.write_text("\n".join(cmds) + "\n")
        r = util.run(["debugfs", "-w", "-f", str(cmdfile), str(self.img)])
        assert r.returncode == 0, r.stderr
        bad = [line for line in r.stderr.splitlines()
               if not line.startswith("debugfs ")]
        assert not bad, "debugfs: %s" % bad
        self._mount()

    def close(self):
        if util.is_mounted(self.sessdir):
            util.unmount_all(self.sessdir)
        _umount(self.viewroot)
        _umount(self.fsroot)


@contextlib.contextmanager
def ext4_lower(tmp, size_mb=16):
    """Yields an Ext4Lower; everything unmounted at the end."""
    lower = None
    try:
        lower = Ext4Lower(tmp, size_mb)
        yield lower
    finally:
        if lower is not None:
            lower.close()
        else:
            _umount(Path(tmp) / "lowerview")
            _umount(Path(tmp) / "lowerfs")


def remount_tmpfs(view, ro):
    """Makes the tmpfs behind 'view' (from tmpfs_lower()) read-only or
    writable: a remount of its superblock, which every mount of it shares,
    the daemon's own bind of the lower dir included.  The kernel refuses
    a read-only remount (EBUSY) while any file of it is open for writing:
    the daemon's write of a lower file (a temp, then renameat) lasts
    microseconds, so the remount is tried again until it lands."""
    args = ("-o", "remount,%s" % ("ro" if ro else "rw"), Path(view).parent)
    deadline = time.monotonic() + 10 * SLOW
    while True:
        r = util.run(["mount"] + [str(a) for a in args])
        if r.returncode == 0:
            return
        if "busy" not in r.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    assert r.returncode == 0, "mount %s: %s" % (" ".join(map(str, args)),
                                                 r.stderr)


class WrongErrno(AssertionError):
    """A call failed as it should, but with another errno than promised:
    raised last, after every other check, so that an xfail(raises=...) of
    it cannot hide any other failure."""


def check_errnos(got):
    """'got': [(what, errno or None, wanted errno or None)].  Raises
    WrongErrno naming every mismatch."""
    bad = ["%s: %s, not %s" % (what, util.errno_name(e) if e else "success",
                               util.errno_name(w) if w else "success")
           for what, e, w in got if e != w]
    if bad:
        raise WrongErrno("; ".join(bad))


def fill(dirpath, name="filler"):
    """Writes 'name' in 'dirpath' until the file system is full (ENOSPC);
    returns its size."""
    chunk = b"\xa5" * 4096
    fd = os.open(os.path.join(dirpath, name), os.O_WRONLY | os.O_CREAT, 0o600)
    n = 0
    try:
        while True:
            try:
                w = os.write(fd, chunk)
            except OSError as e:
                assert e.errno == 28, e  # ENOSPC
                break
            n += w
            if w < len(chunk):
                break
    finally:
        os.close(fd)
    return n
