# SPDX-License-Identifier: GPL-2.0-or-later
"""kill -9 of the daemon under load, then the restart (DESIGN.md, "Crash
restart"): during the gap the clients get errors (ENOTCONN), never a stale
file from the lower dir; afterwards every session is intact, and a later
unmount leaves plain files, not a dead layer."""

import errno
import os
import shlex
import subprocess
import threading
import time

import util
from util import SLOW, wait_for

pytestmark = util.fuse_test_marker()


class Writer(threading.Thread):
    """Rewrites its own session with a counter, PHP-style (truncate, one
    pwrite), and reads it back; records what it saw."""

    def __init__(self, mnt, name):
        super().__init__(daemon=True)
        self.path = os.path.join(mnt, name)
        self.acked = 0      # last value whose write returned 0
        self.stale = []     # reads older than an acknowledged write
        self.errors = set()
        self.stop = threading.Event()

    def run(self):
        n = self.acked
        while not self.stop.is_set():
            try:
                data = util.read_file(self.path)
                seen = int(data.split(b"|i:")[1].rstrip(b";"))
                if seen < self.acked:
                    self.stale.append((seen, self.acked))
                fd = os.open(self.path, os.O_RDWR)
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, b"n|i:%d;" % (n + 1), 0)
                finally:
                    os.close(fd)
                n += 1
                self.acked = n
            except OSError as e:
                self.errors.add(errno.errorcode.get(e.errno, e.errno))
                n = self.acked


def test_kill9_under_load_then_restart(redis, redis_server, sessdir, checker,
                                       tmp):
    for i in range(4):
        # Legacy files underneath: what a stale read would show.
        util.write_file(sessdir / ("sess_load%d" % i), b"n|i:0;")
    opts = ["allow_other", "mode=redis-only", "state_dir=%s" % (tmp / "st"),
            "ctl_dir=%s" % (tmp / "ctl")]
    cmd = util.sessfs_cmd(redis_server.url(), sessdir, opts)
    checker.reproducers.append(shlex.join(cmd))
    log = open(checker.path, "ab")
    procs, writers = [], []
    try:
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        util.wait_for_mount(procs[0], sessdir)
        writers = [Writer(sessdir, "sess_load%d" % i) for i in range(4)]
        for w in writers:
            w.start()
        wait_for(lambda: all(w.acked >= 20 for w in writers), 20 * SLOW,
                 "writes before the crash")
        procs[0].kill()
        procs[0].wait(10)
        wait_for(lambda: all("ENOTCONN" in w.errors for w in writers),
                 10 * SLOW, "every client seeing the dead mount")
        before = [w.acked for w in writers]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        wait_for(lambda: all(w.acked >= b + 20
                             for w, b in zip(writers, before)),
                 20 * SLOW, "writes after the restart")
        for w in writers:
            w.stop.set()
            w.join(10)
            assert not w.stale, w.stale
            assert util.read_file(w.path) == b"n|i:%d;" % w.acked
        r = util.sessfs_u(sessdir)
        assert r.returncode == 0, r.stdout
        assert procs[1].wait(30 * SLOW) == 0
        assert not util.is_mounted(sessdir)
        # redis-only: the plain files underneath are the legacy ones.
        assert util.read_file(sessdir / "sess_load0") == b"n|i:0;"
    finally:
        for w in writers:
            w.stop.set()
        util.end_daemons(sessdir, procs, log)


def test_unmount_waits_for_a_quiet_moment(redis, redis_server, sessdir,
                                          checker, tmp):
    """sessfs -u tries a plain unmount first (a lazy one could land between
    the two path lookups of a rename, which then fails with EXDEV): while
    a file is open on the mount it waits; when the file closes within the
    patience (2 s) the unmount happens then; a file kept open longer gets
    the lazy unmount, and the fd still works."""
    opts = ["mode=files", "state_dir=%s" % (tmp / "st"),
            "ctl_dir=%s" % (tmp / "ctl")]
    cmd = util.sessfs_cmd(redis_server.url(), sessdir, opts)
    checker.reproducers.append(shlex.join(cmd))
    log = open(checker.path, "ab")
    procs = []
    try:
        for keep_open in (0.5, 5.0):
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            procs.append(proc)
            util.wait_for_mount(proc, sessdir)
            path = sessdir / "sess_quiet"
            util.write_file(path, b"q|i:1;")
            fd = os.open(path, os.O_RDONLY)
            unmount = subprocess.Popen(
                [str(util.SESSFS), "-u", str(sessdir)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                if keep_open < 2:
                    # Busy: not detached while the fd is open...
                    time.sleep(keep_open)
                    assert util.is_mounted(sessdir)
                    assert unmount.poll() is None
                    os.close(fd)
                    fd = None
                    # ...then unmounted for good, not lazily.
                    assert unmount.wait(10 * SLOW) == 0
                else:
                    # Busy past the patience: lazily detached; the open
                    # file is finished through the daemon.
                    assert unmount.wait(10 * SLOW) == 0
                    assert not util.is_mounted(sessdir)
                    assert os.pread(fd, 100, 0) == b"q|i:1;"
                    os.close(fd)
                    fd = None
            finally:
                if fd is not None:
                    os.close(fd)
                if unmount.poll() is None:
                    unmount.kill()
                    unmount.wait(10)
            assert proc.wait(30 * SLOW) == 0
            assert not util.is_mounted(sessdir)
            assert util.read_file(path) == b"q|i:1;"
    finally:
        util.end_daemons(sessdir, procs, log)
