# SPDX-License-Identifier: GPL-2.0-or-later
"""systemd supervision (Type=notify), tested for real without systemd: the
test binds the unix datagram socket systemd would, passes it in
$NOTIFY_SOCKET (a path, and an abstract '@' name) with $WATCHDOG_USEC, and
checks what the daemon sends: READY=1 only once the mount answers (at
its arrival the mount is in mountinfo and a stat of it is served by
sessfs), STATUS= with the mode, again after `sessfs-migrate mode`,
WATCHDOG=1 every half interval, also while Redis is stopped (SIGSTOP) and
requests wait for it, and STOPPING=1 at the unmount.  Also: the unit's
ExecStop= unmounts a live daemon's mount but never a dead layer, and the
units in systemd/ pass `systemd-analyze verify` (as scripts/setup.sh
checks them)."""

import contextlib
import errno
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time

import pytest

import util
from modeutil import ModeMount
from test_cli import daemon_pids, helper_env, wait_daemons_gone
from util import SLOW, wait_for

pytestmark = util.fuse_test_marker()

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
# The daemon feeds it every 0.5 s.  WatchdogSec must be above twice
# redis_timeout (0.3 s here): while Redis is down, each busy thread
# replies within redis_timeout, and a check wants a reply since the last.
WATCHDOG_USEC = 1000000


def mount_dev(path):
    """st_dev of the top sessfs mount on 'path' from mountinfo, or None."""
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == str(path) and fields[sep + 1] == "fuse.sessfs":
                major, minor = fields[2].split(":")
                best = os.makedev(int(major), int(minor))
    return best


class NotifyListener:
    """systemd's side of sd_notify: a datagram socket and a thread that
    keeps every message with its arrival time.  On READY=1 it also notes
    whether the mount was in mountinfo and a stat of the mountpoint was
    served by sessfs right then."""

    def __init__(self, tmp, mnt, abstract=False):
        self.mnt = str(mnt)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "sessfs-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp / "notify.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.lock = threading.Lock()
        self.messages = []  # (time.monotonic(), {key: value})
        self.ready_seen = None  # (in mountinfo, stat served by sessfs)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1)
                          for line in data.decode().splitlines() if line)
            if fields.get("READY") == "1" and self.ready_seen is None:
                dev = mount_dev(self.mnt)
                served = False
                with contextlib.suppress(OSError):
                    served = dev is not None and os.stat(self.mnt).st_dev == dev
                self.ready_seen = (dev is not None, served)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()

    def with_key(self, key, since=0.0):
        with self.lock:
            return [(t, m) for t, m in self.messages
                    if key in m and t >= since]

    def wait_key(self, key, value=None, timeout=10, since=0.0):
        def found():
            for t, m in self.with_key(key, since):
                if value is None or m[key] == value:
                    return m
            return None
        return wait_for(found, timeout * SLOW,
                        "%s=%s from the daemon" % (key, value or "*"),
                        interval=0.01)


@pytest.fixture
def notify(tmp, sessdir, monkeypatch):
    """A listener on a socket file; the daemons started meanwhile get it."""
    lst = NotifyListener(tmp, sessdir)
    monkeypatch.setenv("NOTIFY_SOCKET", lst.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    yield lst
    lst.close()


def watchdogs_during(lst, seconds):
    """WATCHDOG=1 messages that arrive in the next 'seconds'."""
    t0 = time.monotonic()
    time.sleep(seconds)  # a span to count in, not a synchronisation
    return len(lst.with_key("WATCHDOG", since=t0))


def test_ready_status_watchdog_stopping(redis, redis_server, tmp, sessdir,
                                        checker, notify):
    mm = ModeMount(tmp, redis_server, checker)
    # Requests wait for the stopped Redis below and fail after 0.3 s.
    checker.register_output(r"redis|fenc|timed out|unreachable")
    with mm.mounted(sessdir, "redis-only", extra=["redis_timeout=0.3"]) as m:
        ready = notify.wait_key("READY", "1")
        assert notify.ready_seen == (True, True), (
            "READY=1 came before the mount answered (in mountinfo, stat "
            "served): %s" % (notify.ready_seen,))
        # Nothing said ready before it was: READY=1 is the first message.
        first = notify.with_key("READY")[0][0]
        assert not [m for t, m in notify.messages if t < first]
        assert ready["STATUS"] == "mode redis-only", ready

        # The mode at run time: STATUS= follows.
        t0 = time.monotonic()
        res = subprocess.run([str(MIGRATE), "mode", "redis-first", "--mount",
                              str(sessdir), "--ctl-dir", str(mm.ctl_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=60 * SLOW)
        assert res.returncode == 0, res.stdout
        notify.wait_key("STATUS", "mode redis-first", since=t0)

        # The watchdog, every half interval: 0.5 s.
        assert watchdogs_during(notify, 1.6) >= 2

        # Redis stopped: requests wait for it and fail, far more of them
        # than the daemon has threads (16), so that a self-stat waits
        # behind them for seconds; the watchdog is still fed (an outage is
        # the circuit breaker's, a restart would not help).
        redis_server.sigstop()
        try:
            ops = [util.Op(lambda i=i: util.errno_of(
                os.stat, m.path("sess_w%025d" % i))) for i in range(160)]
            for op in ops:
                op.start()
            n = watchdogs_during(notify, 2.1)
            busy = sum(op.took is None for op in ops)
        finally:
            redis_server.sigcont()
        for op in ops:
            op.join(30 * SLOW)
        assert busy > 16, "the requests did not keep every thread busy"
        assert n >= 3, "only %d WATCHDOG=1 in 2 s with Redis stopped" % n
        mm.wait_repaired()
        t_unmount = time.monotonic()
    stopping = notify.with_key("STOPPING", since=t_unmount)
    assert stopping and stopping[0][1]["STOPPING"] == "1"


def test_abstract_socket(redis, redis_server, tmp, sessdir, checker,
                         monkeypatch):
    lst = NotifyListener(tmp, sessdir, abstract=True)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", lst.address)
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        with util.mounted(redis_server.url(), sessdir, checker,
                          opts=["mode=dual-write"]):
            msg = lst.wait_key("READY", "1")
            assert msg["STATUS"] == "mode dual-write"
            assert lst.ready_seen == (True, True)
            time.sleep(0.3)  # a span to count in
            assert not lst.with_key("WATCHDOG"), "a watchdog nobody asked for"
    finally:
        lst.close()
    assert lst.with_key("STOPPING")


def test_detached_through_mount_helper(redis, redis_server, tmp, sessdir,
                                       notify):
    """Without -f (mount -t fuse.sessfs runs /sbin/mount.fuse3, which
    runs sessfs) the daemon forks: READY=1 names its pid in MAINPID=, for
    a unit with NotifyAccess=all."""
    try:
        res = util.run(["/sbin/mount.fuse3", redis_server.url(), str(sessdir),
                        "-o", "rw,mode=redis-only,state_dir=%s" % (tmp / "st"),
                        "-t", "fuse.sessfs"], env=helper_env(), timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr
        msg = notify.wait_key("READY", "1")
        assert notify.ready_seen == (True, True), notify.ready_seen
        assert [int(msg["MAINPID"])] == daemon_pids(sessdir), msg
        assert notify.with_key("STATUS")
    finally:
        util.unmount_all(sessdir)
    wait_daemons_gone(sessdir)
    notify.wait_key("STOPPING", "1")


def test_without_systemd(redis, redis_server, sessdir, checker, monkeypatch):
    """No $NOTIFY_SOCKET: nothing is sent, nothing is logged about it."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with util.mounted(redis_server.url(), sessdir, checker) as m:
        util.write_file(m.path("sess_" + "n" * 26), b"x|i:1;")
    assert "systemd" not in checker.text()


def exec_stop(mnt):
    """The unit's ExecStop= as argv for 'mnt', as systemd runs it: "$$" is
    a literal "$", %f the mountpoint."""
    unit = (util.SRC_DIR / "systemd" / "sessfs@.service").read_text()
    line = [x for x in unit.splitlines() if x.startswith("ExecStop=")]
    assert len(line) == 1, line
    argv = shlex.split(line[0][len("ExecStop="):])
    return [a.replace("$$", "$").replace("%f", str(mnt)) for a in argv]


def test_exec_stop_only_while_the_daemon_lives(redis, redis_server, sessdir,
                                               checker, monkeypatch):
    """ExecStop= unmounts while $MAINPID is set (systemd sets it while the
    main process lives) and leaves a dead layer alone after a crash
    (systemd runs ExecStop= then too, without $MAINPID): unmounting it
    would show the stale files underneath until the restart."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "MAINPID"}
    with util.mounted(redis_server.url(), sessdir, checker) as m:
        util.write_file(m.path("sess_" + "e" * 26), b"e|i:1;")
        m.kill9()
        assert util.errno_of(os.listdir, sessdir) == errno.ENOTCONN
        res = subprocess.run(exec_stop(sessdir), env=env, timeout=30,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        assert res.returncode == 0, res.stdout
        assert util.errno_of(os.listdir, sessdir) == errno.ENOTCONN, \
            "ExecStop= removed the dead layer"

    cmd = util.sessfs_cmd(redis_server.url(), sessdir)
    log = open(checker.path, "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        util.wait_for_mount(proc, sessdir)
        res = subprocess.run(exec_stop(sessdir),
                             env=dict(env, MAINPID=str(proc.pid)), timeout=30,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        assert res.returncode == 0, res.stdout
        assert proc.wait(10 * SLOW) == 0
        assert not util.is_mounted(sessdir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        util.unmount_all(sessdir)
        log.close()


def test_unit_conditions_pass_on_a_dead_layer():
    """A Condition or Assert on the mountpoint would see ENOTCONN on a dead
    layer (stat and access fail) and skip the restart that repairs it."""
    unit = (util.SRC_DIR / "systemd" / "sessfs@.service").read_text()
    bad = [x for x in unit.splitlines()
           if re.match(r"(Condition|Assert)\w*=.*%f", x)]
    assert not bad, bad


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="no systemd-analyze")
@pytest.mark.skipif(not os.access("/usr/local/bin/sessfs", os.X_OK),
                    reason="sessfs is not installed (the unit's ExecStart=)")
def test_units_verify():
    """The same check as scripts/setup.sh (check_units)."""
    res = subprocess.run(
        ["bash", "-c", "source scripts/setup.sh && check_units"],
        cwd=util.SRC_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120)
    assert res.returncode == 0, res.stdout
