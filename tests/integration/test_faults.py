# SPDX-License-Identifier: GPL-2.0-or-later
"""The fault matrix (issue 18): every fault below in every mode that
writes Redis, under one load, with the safety claims of DESIGN.md checked
per cell and one table printed at the end (kept in README.md, "Fault
matrix").

The load (Traffic): three PHP-style writers, each rewriting its own
session with a counter (open, flock, ftruncate, pwrite, close: a write is
acknowledged when close() returned 0), a reader per session (open, flock,
fstat, pread: a read older than the last acknowledged write before it
began is stale), and a deleter (create a session, unlink it: an unlink
that returned 0 is a delete that must stay done).

Per cell: the load runs, the fault is applied and taken away, then the
test waits until every writer had an acknowledged write again and, where
the mode writes Redis, the repair journal is empty ("recovery": seconds
from the fault's end).  Then:

- acknowledged writes lost: a session whose value (through the mount) is
  below the writer's last acknowledged counter, summed over the sessions;
- deletes undone: a name deleted with success that the mount, Redis (a
  value key) or a current lower dir holds again;
- stale reads: as above;
- errors: the errno of every failed call, which must be one DESIGN.md
  promises for that fault and mode (EXPECTED_ERRORS);
- Redis and a current lower dir hold what the mount shows.

No fault may lose an acknowledged write, undo a delete or show a stale
read, except Redis without persistence restarted empty in redis-only:
Redis was the only copy, and the design promises nothing there (the
runbook asks for appendfsync always); its cell reports what was lost.

Faults: Redis kill -9 and restart with appendfsync always and without
persistence; Redis stopped (SIGSTOP) for 1.5 x redis_timeout; Redis at
maxmemory with noeviction; connections cut mid-pipeline by a proxy the
test controls (util.CutProxy: the request reaches Redis, its reply reaches
nobody); the daemon kill -9 and restart; the lower dir full (a small
tmpfs) and read-only; a burst of renames and unlinks on the same names
from eight processes.

The table is printed by the last test (test_zz_table), to the terminal
even when pytest captures output, and written to $SESSFS_FAULT_TABLE when
set.  Bounded: each cell runs its fault for 1.5 s (FAULT_S); the module
takes about 70 s on 2 cores beside other builds (plain build and
ASan alike).
"""

import collections
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import util
from util import SLOW, php_read, php_write, wait_for, write_file
from modeutil import (LOWER_CURRENT, OUTAGE_LOG, PREFIX, WRITES_REDIS,
                      ModeMount, fill, remount_tmpfs,
                      tmpfs_lower)

pytestmark = util.fuse_test_marker()

TIMEOUT = 1  # redis_timeout of the mounts here, seconds
MODES = ("dual-write", "redis-first", "redis-only")
FAULTS = ("redis-kill9-aof", "redis-kill9-nopersist", "redis-paused",
          "redis-maxmemory", "cut-mid-pipeline", "daemon-kill9",
          "lower-full", "lower-read-only", "rename-unlink-burst")
FAULT_S = 1.5  # how long a timed fault lasts: past redis_timeout
LOWER_LOG = r"no space left on device|read-only file system"
# files never asks Redis: only the faults of the daemon and the lower dir
# mean something there.
FILES_FAULTS = ("daemon-kill9", "lower-full", "lower-read-only",
                "rename-unlink-burst")
CELLS = [(f, m) for f in FAULTS
         for m in (("files",) if f in FILES_FAULTS else ()) + MODES]
WRITERS = 3

# The errors a client may see, per fault and mode (DESIGN.md): where
# Redis is not authoritative (dual-write) or this host's own sessions
# fall back to the lower dir (redis-first) a Redis outage is invisible;
# in redis-only it is EIO after redis_timeout.  Redis out of memory
# answers, and refuses: ENOSPC where Redis is written synchronously as
# the authoritative store.  A full or read-only lower dir fails the calls
# of the modes whose lower dir is authoritative (dual-write), with ENOSPC
# or EROFS; the daemon answers EIO for a failed write there (test_modes.py
# says why), which the matrix reports as it is.  A dead daemon's mount
# answers ENOTCONN until the restart; a call in flight at the kill gets
# ECONNABORTED (the kernel's answer to requests of a connection that
# died under them: DESIGN.md, "Crash restart").  In the burst, a rename or unlink
# of a name another process removed first is ENOENT.
_OUTAGE = {"dual-write": set(), "redis-first": {"EIO"},
           "redis-only": {"EIO"}}
EXPECTED_ERRORS = {
    "redis-kill9-aof": _OUTAGE,
    # Redis restarted empty forgot the names: in redis-only an open or
    # unlink of one the kernel had just looked up finds nothing (ENOENT;
    # met under TSan, where the window is wider).
    "redis-kill9-nopersist": {**_OUTAGE, "redis-only": {"EIO", "ENOENT"}},
    "redis-paused": _OUTAGE,
    "redis-maxmemory": {"dual-write": set(), "redis-first": {"ENOSPC"},
                        "redis-only": {"ENOSPC"}},
    "cut-mid-pipeline": {"dual-write": set(), "redis-first": set(),
                         "redis-only": set()},
    "daemon-kill9": {m: {"ENOTCONN", "ECONNABORTED"}
                     for m in ("files",) + MODES},
    "lower-full": {"files": {"ENOSPC", "EIO"},
                   "dual-write": {"ENOSPC", "EIO"}, "redis-first": set(),
                   "redis-only": set()},
    "lower-read-only": {"files": {"EROFS", "EIO"},
                        "dual-write": {"EROFS", "EIO"},
                        "redis-first": set(), "redis-only": set()},
    "rename-unlink-burst": {m: {"ENOENT"} for m in ("files",) + MODES},
}
# In redis-first a Redis outage fails only the names this host did not
# write last (a new name may be another host's): the deleter's creates,
# after redis_timeout; the writers and readers of this host's sessions
# see no error.
OWN_NAMES_CLEAN = {(f, "redis-first") for f in
                   ("redis-kill9-aof", "redis-kill9-nopersist",
                    "redis-paused")}
# Where the design promises nothing about what Redis held.
MAY_LOSE = {("redis-kill9-nopersist", "redis-only")}

RESULTS = {}  # (fault, mode) -> row dict, for test_zz_table


# ----------------------------------------------------------------- load

class Traffic:
    """The load of a cell (module docstring), on its own threads."""

    def __init__(self, mnt):
        self.mnt = Path(mnt)
        self.names = ["sess_fault%d" % i for i in range(WRITERS)]
        self.acked = {n: 0 for n in self.names}
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = collections.Counter()
        self.own_errors = collections.Counter()  # writers and readers
        self.stale = []
        self.deleted = []
        self.mark = None  # monotonic time the fault ended
        self.first_ok = {}  # writer -> end of its first ack after mark
        self.stopping = threading.Event()
        self.threads = []

    def _count(self, err=None, own=True):
        with self.lock:
            self.requests += 1
            if err is not None:
                self.errors[util.errno_name(err.errno)] += 1
                if own:
                    self.own_errors[util.errno_name(err.errno)] += 1

    def _write(self, name):
        path = self.mnt / name
        while not self.stopping.is_set():
            n = self.acked[name] + 1
            t0 = time.monotonic()
            try:
                php_write(path, b"n|i:%d;" % n)
            except OSError as e:
                self._count(e)
                time.sleep(0.01)
                continue
            self._count()
            self.acked[name] = n
            mark = self.mark
            if mark is not None and t0 >= mark and name not in self.first_ok:
                self.first_ok[name] = time.monotonic()
            time.sleep(0.002)

    def _read(self, name):
        path = self.mnt / name
        while not self.stopping.is_set():
            floor = self.acked[name]
            try:
                got = value_of(php_read(path))
            except OSError as e:
                self._count(e)
                time.sleep(0.01)
                continue
            self._count()
            if got < floor:
                self.stale.append((name, got, floor))
            time.sleep(0.002)

    def _delete(self):
        k = 0
        while not self.stopping.is_set():
            k += 1
            name = "sess_gone%d" % k
            try:
                write_file(self.mnt / name, b"gone|i:%d;" % k)
                self._count()
                os.unlink(self.mnt / name)
                self._count()
                self.deleted.append(name)
            except OSError as e:
                self._count(e, own=False)
                time.sleep(0.01)
            time.sleep(0.005)

    def start(self):
        for n in self.names:
            php_write(self.mnt / n, b"n|i:0;")
        targets = ([(self._write, (n,)) for n in self.names]
                   + [(self._read, (n,)) for n in self.names]
                   + [(self._delete, ())])
        self.threads = [threading.Thread(target=f, args=a, daemon=True)
                        for f, a in targets]
        for t in self.threads:
            t.start()

    def progress(self, n=3, timeout=30):
        """Every writer acknowledges 'n' more writes."""
        goal = {k: v + n for k, v in self.acked.items()}
        wait_for(lambda: all(self.acked[k] >= goal[k] for k in goal),
                 timeout * SLOW, "%d more acknowledged writes each" % n)

    def fault_ended(self):
        self.mark = time.monotonic()

    def recovered(self, timeout=60):
        """Seconds from the fault's end until every writer had an
        acknowledged write that started after it."""
        wait_for(lambda: len(self.first_ok) == len(self.names),
                 timeout * SLOW, "every writer acknowledged again")
        return max(self.first_ok.values()) - self.mark

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60 * SLOW)
            assert not t.is_alive(), "a client of the load hangs"


def value_of(data):
    """The counter of a session the load wrote; 0 for an empty one (a
    read that found no session: PHP's open creates it)."""
    if data == b"":
        return 0
    assert data.startswith(b"n|i:") and data.endswith(b";"), data
    return int(data[4:-1])


# ----------------------------------------------------------------- faults

class Burst:
    """Eight processes renaming temps onto, and unlinking, the same four
    session names (Django's save: a temp, then rename onto the name; and
    clearsessions' unlink) for 'seconds'.  Each process reports its
    errnos as JSON."""

    CHILD = r"""
import errno, json, os, sys, time
d, tag, until = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
errs, ops, i = {}, 0, 0
while time.monotonic() < until:
    i += 1
    name = os.path.join(d, "sess_burst%d" % (i % 4))
    tmp = name + ".tmp%s_%d" % (tag, i)
    try:
        ops += 1
        if i % 3 == 0:
            os.unlink(name)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"b|s:%d:\"%s\";" % (len(tag), tag.encode()))
            os.close(fd)
            ops += 1
            os.rename(tmp, name)
    except OSError as e:
        k = errno.errorcode.get(e.errno, str(e.errno))
        errs[k] = errs.get(k, 0) + 1
        try:
            os.unlink(tmp)
        except OSError:
            pass
print(json.dumps({"ops": ops, "errors": errs}))
"""

    def __init__(self, mnt, seconds, n=8):
        self.procs = [subprocess.Popen(
            [sys.executable, "-c", self.CHILD, str(mnt), "p%d" % i,
             str(seconds)], stdout=subprocess.PIPE, text=True,
            start_new_session=True) for i in range(n)]

    def join(self, traffic):
        for p in self.procs:
            out, _ = p.communicate(timeout=60 * SLOW)
            assert p.returncode == 0, out
            rep = json.loads(out)
            with traffic.lock:
                traffic.requests += rep["ops"]
                traffic.errors.update(rep["errors"])


def fill_redis(r):
    """Redis at maxmemory with noeviction: the limit set just above what
    it uses, then filled with keys of the test's own until it refuses."""
    import redis as redis_py
    used = r.info("memory")["used_memory"]
    r.config_set("maxmemory", used + 256 * 1024)
    blob = b"\xa5" * 16384
    for i in range(10000):
        try:
            r.set("filler:%d" % i, blob)
        except redis_py.ResponseError as e:
            assert "OOM" in str(e), e
            return
    raise AssertionError("Redis never refused a write at maxmemory")


def empty_redis(r):
    r.config_set("maxmemory", 0)
    for k in r.scan_iter(match="filler:*", count=1000):
        r.delete(k)


# ----------------------------------------------------------------- cells

@pytest.fixture(scope="module")
def servers():
    """A redis-server with appendfsync always and one without any
    persistence, each of this module's own (killed, restarted)."""
    with util.own_redis_server("f", aof=True) as aof, \
            util.own_redis_server("g", aof=False) as plain:
        yield {"aof": aof, "plain": plain}


def fresh(server):
    if server.proc.poll() is not None:
        server.restart()
    r = server.client()
    r.config_set("maxmemory", 0)
    r.config_set("maxmemory-policy", "noeviction")
    r.flushall()
    return r


def lower_values(view, names):
    out = {}
    for n in names:
        try:
            out[n] = util.read_file(view / n)
        except FileNotFoundError:
            out[n] = None
    return out


def restart_daemon(m, checker, load):
    """kill -9 of the daemon of 'm' under the load, then sessfs started
    again on the same mountpoint (the restart path, DESIGN.md "Crash
    restart"); returns its process.  m.killed makes util.mounted() end
    with sessfs -u, which removes both layers."""
    m.killed = True
    m.proc.kill()
    m.proc.wait(10)
    wait_for(lambda: load.errors["ENOTCONN"] > 0, 10 * SLOW,
             "clients seeing the dead mount")
    time.sleep(FAULT_S / 2)
    with open(checker.path, "ab") as log:
        return subprocess.Popen(m.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_fault(fault, m, checker, server, r, view, load, proxy):
    """Applies 'fault' and takes it away; returns the restarted daemon's
    process for daemon-kill9, else None."""
    if fault == "daemon-kill9":
        return restart_daemon(m, checker, load)
    if fault in ("redis-kill9-aof", "redis-kill9-nopersist"):
        server.kill9()
        time.sleep(FAULT_S)
        server.restart()
    elif fault == "redis-paused":
        server.sigstop()
        try:
            time.sleep(FAULT_S * TIMEOUT)
        finally:
            server.sigcont()
    elif fault == "redis-maxmemory":
        fill_redis(r)
        try:
            time.sleep(FAULT_S)
        finally:
            empty_redis(r)
    elif fault == "cut-mid-pipeline":
        proxy.arm(10)
        wait_for(lambda: proxy.armed == 0, 30 * SLOW, "10 cuts")
    elif fault == "lower-full":
        fill(view.parent)
        try:
            time.sleep(FAULT_S)
        finally:
            os.unlink(view.parent / "filler")
    elif fault == "lower-read-only":
        remount_tmpfs(view, ro=True)
        try:
            time.sleep(FAULT_S)
        finally:
            remount_tmpfs(view, ro=False)
    elif fault == "rename-unlink-burst":
        Burst(m.mnt, FAULT_S).join(load)
    else:
        raise AssertionError(fault)
    return None


@pytest.mark.parametrize("fault,mode", [
    pytest.param(f, m, id="%s-%s" % (f, m)) for f, m in CELLS])
def test_fault(fault, mode, servers, tmp, checker):
    server = servers["plain" if fault == "redis-kill9-nopersist"
                     else "aof"]
    r = fresh(server)
    checker.register_output(OUTAGE_LOG)
    checker.register_output(LOWER_LOG)
    checker.register_output(r"out of memory|OOM|no space")
    mm = ModeMount(tmp, server, checker)
    proxy = url = None
    if fault == "cut-mid-pipeline":
        proxy = util.CutProxy(server.port, (b"EVALSHA", b"EXEC"))
        url = "redis://127.0.0.1:%d/0" % proxy.port
    opts = ["redis_timeout=%d" % TIMEOUT, "host_id=web1"]
    restarted = None
    row = {"fault": fault, "mode": mode}
    try:
        with tmpfs_lower(tmp, "2m") as (view, sessdir):
            with mm.mounted(sessdir, mode, opts, url=url) as m:
                load = Traffic(m.mnt)
                load.start()
                try:
                    load.progress()
                    restarted = run_fault(fault, m, checker, server, r,
                                          view, load, proxy)
                    load.fault_ended()
                    took = load.recovered()
                    if mode in WRITES_REDIS:  # files journals for good
                        mm.wait_repaired(60)
                        took = max(took, time.monotonic() - load.mark)
                    load.progress()
                finally:
                    load.stop()
                row.update(check_cell(fault, mode, m, r, view, load))
                row["requests"] = load.requests
                row["errors"] = dict(load.errors)
                row["own_errors"] = dict(load.own_errors)
                row["recovery_s"] = took
                RESULTS[(fault, mode)] = row
        if restarted is not None:
            assert restarted.wait(30 * SLOW) == 0, \
                "the restarted sessfs exited with %d" % restarted.returncode
    finally:
        if restarted is not None and restarted.poll() is None:
            restarted.kill()
            restarted.wait(30)
        if proxy is not None:
            proxy.close()
        if fault == "redis-maxmemory":
            empty_redis(r)

    allowed = EXPECTED_ERRORS[fault][mode]
    assert set(row["errors"]) <= allowed, \
        "%s/%s: errors %s, promised only %s" % (fault, mode, row["errors"],
                                                 sorted(allowed) or "none")
    if (fault, mode) in OWN_NAMES_CLEAN:
        assert not row["own_errors"], \
            "%s/%s: this host's own sessions failed: %s" % (
                fault, mode, row["own_errors"])
    if (fault, mode) not in MAY_LOSE:
        assert row["lost"] == 0, row
        assert row["undone"] == 0, row
        assert row["stale"] == 0, row
        assert not row["diverged"], row


def check_cell(fault, mode, m, r, view, load):
    """What the mount, Redis and the lower dir hold once the load
    stopped (the module docstring's columns)."""
    lost, diverged = 0, []
    for name in load.names:
        got = value_of(util.read_file(m.path(name)))
        lost += max(0, load.acked[name] - got)
        data = b"n|i:%d;" % got
        if mode in WRITES_REDIS:
            in_redis = r.get(util.value_key(PREFIX, name))
            if in_redis != data:
                diverged.append("%s: redis %r, mount %r" % (name, in_redis,
                                                            data))
        if mode in LOWER_CURRENT:
            low = lower_values(view, [name])[name]
            if low != data:
                diverged.append("%s: lower %r, mount %r" % (name, low, data))
    undone = 0
    listed = set(os.listdir(m.mnt))
    lower = set(os.listdir(view)) if mode in LOWER_CURRENT else set()
    for name in load.deleted:
        if (name in listed or os.path.exists(m.path(name))
                or name in lower
                or r.exists(util.value_key(PREFIX, name))):
            undone += 1
    if fault == "rename-unlink-burst":
        # Whatever the burst left is whole and the same everywhere.
        for i in range(4):
            name = "sess_burst%d" % i
            try:
                data = util.read_file(m.path(name))
            except FileNotFoundError:
                data = None
            if data is not None and not data.startswith(b"b|s:"):
                diverged.append("%s: torn %r" % (name, data))
            if mode in WRITES_REDIS and r.get(
                    util.value_key(PREFIX, name)) != data:
                diverged.append("%s: redis differs from the mount" % name)
            if mode in LOWER_CURRENT and \
                    lower_values(view, [name])[name] != data:
                diverged.append("%s: lower differs from the mount" % name)
    return {"lost": lost, "undone": undone, "stale": len(load.stale),
            "diverged": diverged, "deleted": len(load.deleted)}


# ----------------------------------------------------------------- table

def table(results):
    lines = ["| fault | mode | requests | errors (errno: count) | "
             "acked writes lost | deletes undone | stale reads | "
             "recovery s |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for fault, mode in CELLS:
        row = results.get((fault, mode))
        if row is None:
            lines.append("| %s | %s | not run | | | | | |" % (fault, mode))
            continue
        errs = ", ".join("%s: %d" % kv for kv in
                         sorted(row["errors"].items())) or "none"
        lines.append("| %s | %s | %d | %s | %d | %d | %d | %.1f |" % (
            fault, mode, row["requests"], errs, row["lost"],
            row["undone"], row["stale"], row["recovery_s"]))
    return "\n".join(lines)


def test_zz_table(capsys):
    """Prints the matrix of the cells that ran (and writes it to
    $SESSFS_FAULT_TABLE); fails if none did."""
    assert RESULTS, "no cell of the fault matrix ran"
    text = table(RESULTS)
    out = os.environ.get("SESSFS_FAULT_TABLE")
    if out:
        Path(out).write_text(text + "\n")
    with capsys.disabled():
        print("\nfault matrix (redis_timeout=%ds, %d writers, fault %.1f s):"
              % (TIMEOUT, WRITERS, FAULT_S))
        print(text)
