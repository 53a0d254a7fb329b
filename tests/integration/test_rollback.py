# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs-migrate rollback --mount: back to plain session files from any
mode, with the real PHP and Flask apps running (DESIGN.md, "Rollback").

From redis-only the files left underneath must be exactly what the mount
showed last: the same names, bytes, owner, mode and mtime.  Under load no
request may fail and every user's session must be intact afterwards, on
the plain files.  The rollback of 100 000 sessions is timed and printed
(the target is under 60 s; only 300 s is asserted, timings are not
tests).

The mounts here are ended by the rollback itself, so they do not use
util.mounted() (which unmounts on exit): rollback_mount() below unmounts
only what is left, and then wants the daemon to have exited with 0.
"""

import contextlib
import errno
import json
import os
import random
import shlex
import subprocess
import sys
import threading
import time

import pytest

import util
from util import LIVE, SLOW, wait_for
from test_online import MIGRATE, Load, check_load, migrate

PREFIX = "sessfs:"
DAY_NS = 24 * 3600 * 10**9

# The 100 000-session rollback may take longer than conftest.py's 150 s
# per test on a slow machine: this module's watchdog allows 300 s more.
TEST_TIMEOUT = 450

ROLLBACK_SESSIONS = int(os.environ.get(
    "SESSFS_ROLLBACK_SESSIONS", "2000" if util.WITH_VALGRIND else "100000"))

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not MIGRATE.exists(), reason="%s not built" % MIGRATE),
    pytest.mark.skipif(not util.SESSFS.exists(),
                       reason="%s not built" % util.SESSFS),
]


@pytest.fixture(autouse=True)
def watchdog(request):
    """conftest.py's watchdog with this module's longer deadline."""
    def fire():
        print("\nwatchdog: %s still running after %ds, aborting"
              % (request.node.nodeid, TEST_TIMEOUT * SLOW), file=sys.stderr)
        LIVE.abort_all("watchdog")
    t = threading.Timer(TEST_TIMEOUT * SLOW, fire)
    t.daemon = True
    t.start()
    yield
    t.cancel()


@pytest.fixture
def ctl_dir(tmp):
    return tmp / "ctl"


@contextlib.contextmanager
def rollback_mount(url, mnt, checker, mode, ctl_dir, opts=()):
    """sessfs on 'mnt' in 'mode' (daemon output into the checker's log),
    for a test that unmounts it with rollback.  On exit whatever is still
    mounted is unmounted, and the daemon must exit with 0."""
    state = checker.path.parent / "state"
    state.mkdir(exist_ok=True)
    opts = ["allow_other", "mode=%s" % mode, "ctl_dir=%s" % ctl_dir,
            "state_dir=%s" % state] + list(opts)
    cmd = util.sessfs_cmd(url, mnt, opts)
    checker.reproducers.append(shlex.join(cmd))
    checker.note("mount: " + shlex.join(cmd))
    lower_fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    log = open(checker.path, "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    m = util.Mount(proc, mnt, lower_fd, cmd, checker)
    LIVE.add(m)
    try:
        try:
            util.wait_for_mount(proc, mnt)
            yield m
        except BaseException:
            util._cleanup_failed(m)
            raise
        if util.is_mounted(mnt):
            util.fusermount_u(mnt)
        try:
            rc = proc.wait(30 * SLOW)
        except subprocess.TimeoutExpired:
            util._cleanup_failed(m)
            raise AssertionError("sessfs did not exit after the unmount")
        assert rc == 0, "sessfs exited with %d after the unmount" % rc
        assert not util.is_mounted(mnt), "still mounted"
    finally:
        LIVE.remove(m)
        os.close(lower_fd)
        log.close()


def rollback(m, ctl_dir, *args, rc=0, timeout=400):
    return migrate("rollback", "--mount", m.mnt, "--ctl-dir", ctl_dir,
                   "--sessfs", util.SESSFS, *args, rc=rc, timeout=timeout)


def is_local(name):
    """Host-local names (temps, cachelib's count file) are not sessions."""
    return (name.endswith(".__wz_cache") or ".tmp" in name
            or name == util.CACHELIB_COUNT)


def snapshot(path):
    """name -> (bytes, uid, gid, mode, mtime_ns) of the sessions in 'path'."""
    snap = {}
    for name in sorted(os.listdir(path)):
        if is_local(name):
            continue
        p = os.path.join(path, name)
        st = os.stat(p, follow_symlinks=False)
        snap[name] = (util.read_file(p), st.st_uid, st.st_gid,
                      st.st_mode & 0o7777, st.st_mtime_ns)
    return snap


def step_names(out):
    """The step names of a rollback's human output, in order."""
    return [line.split()[1] for line in out.splitlines()
            if line.startswith("  ") and line.split()[0].rstrip(".").isdigit()]


class Leaver:
    """A user who logs in before the mount and out while it is mounted."""

    def __init__(self, app, name):
        self.name = name
        self.client = app.client()
        self.client.get("/login?user=" + name)
        assert self.client.get("/incr") == "count=1"

    def logout(self):
        assert self.client.get("/logout") == "bye"
        assert self.client.get("/whoami") == "anonymous"


# ----------------------------------------------------------------- tests

def test_rollback_from_redis_only_leaves_what_the_mount_showed(
        redis, redis_server, sessdir, checker, make_app, ctl_dir):
    """Users log in on plain files; sessfs is mounted in redis-only under
    load; some users log out, some stay idle (their sessions are legacy
    files underneath, never copied up).  With the apps running and idle,
    the mount is rolled back: the plain files are byte for byte, owner,
    mode and mtime what the mount showed.  Then the users keep counting
    on the plain files: no session is lost."""
    php = make_app("php", sessdir)
    flask = make_app("flask", sessdir)
    load = Load([php, flask], users_per_app=4)
    idle = Load([php, flask], users_per_app=2, tag="idle")
    leavers = [Leaver(app, "%sleaver%d" % (app.kind, i))
               for app in (php, flask) for i in range(2)]
    load.phase("plain files")
    load.start()
    idle.start()
    try:
        load.wait_requests(100)
        idle.wait_requests(20)
        idle.stop()
        with rollback_mount(redis_server.url(), sessdir, checker,
                            "redis-only", ctl_dir) as m:
            load.phase("redis-only")
            load.wait_requests(300)
            for lv in leavers:
                lv.logout()
            load.wait_requests(100)
            load.stop()
            shown = snapshot(m.mnt)
            assert len(shown) >= len(load.users) + len(idle.users)

            p = rollback(m, ctl_dir)
            print(p.stdout)
            assert step_names(p.stdout) == ["mode", "export", "verify",
                                            "mode", "unmount"], p.stdout
            assert "redis-only -> redis-first" in p.stdout
            assert "0 differences" in p.stdout
            assert "holds plain session files again" in p.stdout
            assert not util.is_mounted(sessdir)
            left = snapshot(sessdir)
            assert sorted(left) == sorted(shown)
            for name in shown:
                assert left[name] == shown[name], name

            load.phase("plain files after the rollback")
            load.start()
            load.wait_requests(200)
            load.stop()
        check_load(load)
        checked, lost = idle.check_sessions()
        assert not lost, lost
        for lv in leavers:
            assert lv.client.get("/whoami") == "anonymous"
    finally:
        load.stopping.set()
        idle.stopping.set()


def test_rollback_under_load(redis, redis_server, sessdir, checker, make_app,
                             ctl_dir):
    """The whole rollback from redis-only while PHP and Flask users keep
    counting: no request fails, no session is lost, and they go on on the
    plain files."""
    php = make_app("php", sessdir)
    flask = make_app("flask", sessdir)
    load = Load([php, flask])
    load.phase("plain files")
    load.start()
    try:
        load.wait_requests(100)
        with rollback_mount(redis_server.url(), sessdir, checker,
                            "redis-only", ctl_dir) as m:
            load.phase("redis-only")
            load.wait_requests(300)
            load.phase("rollback")
            p = rollback(m, ctl_dir, "--json")
            out = json.loads(p.stdout)
            assert out["ok"] is True and out["from"] == "redis-only"
            assert [s["step"] for s in out["steps"]] == [
                "mode", "export", "verify", "mode", "unmount"]
            assert all(s["ok"] for s in out["steps"])
            for s in out["steps"]:
                print("%-8s %8.3f s  %s" % (s["step"], s["seconds"],
                                            s["detail"]))
            load.phase("plain files after the rollback")
            load.wait_requests(300)
            load.stop()
        check_load(load)
    finally:
        load.stopping.set()


@pytest.mark.parametrize("mode,steps", [
    pytest.param("files", ["unmount"], id="files"),
    pytest.param("dual-write", ["mode", "unmount"], id="dual-write"),
    pytest.param("redis-first", ["export", "verify", "mode", "unmount"],
                 id="redis-first"),
])
def test_rollback_from_each_mode(redis, redis_server, sessdir, checker,
                                 ctl_dir, mode, steps):
    """From files, dual-write and redis-first: only the steps that mode
    needs, and the sessions written through the mount are plain files."""
    with rollback_mount(redis_server.url(), sessdir, checker, mode,
                        ctl_dir) as m:
        for i in range(10):
            util.as_www(util.write_file, m.path("sess_%d" % i),
                        b"n|i:%d;" % i)
        util.as_www(os.unlink, m.path("sess_9"))
        shown = snapshot(m.mnt)
        p = rollback(m, ctl_dir)
        assert step_names(p.stdout) == steps, p.stdout
    left = snapshot(sessdir)
    assert left == shown
    assert sorted(left) == ["sess_%d" % i for i in range(9)]
    assert all(v[1:4] == (util.WWW_UID, util.WWW_GID, 0o600)
               for v in left.values())


@pytest.mark.parametrize("mode", ["redis-first", "redis-only"])
def test_rollback_leaves_no_expired_legacy_file(redis, redis_server, sessdir,
                                                checker, ctl_dir, mode):
    """Expired legacy files (a cachelib header in the past, a PHP file
    older than ttl=) are hidden by the mount; nothing lists or opens them
    here, yet the plain directory the rollback leaves is what the mount
    shows, without them (DESIGN.md, "Expired legacy files")."""
    now = int(time.time())
    expired = {"0123456789abcdef0123456789abcde0": util.cachelib_bytes(now - 60),
               "sess_old0abcdefghijklmnopqr": b"o|i:1;"}
    live = {"0123456789abcdef0123456789abcde1": util.cachelib_bytes(now + 3600),
            "sess_new0abcdefghijklmnopqr": b"n|i:1;"}
    for name, data in list(expired.items()) + list(live.items()):
        p = os.path.join(sessdir, name)
        util.write_file(p, data)
        os.chown(p, util.WWW_UID, util.WWW_GID)
    os.utime(os.path.join(sessdir, "sess_old0abcdefghijklmnopqr"),
             (now - 7200, now - 7200))
    with rollback_mount(redis_server.url(), sessdir, checker, mode, ctl_dir,
                        opts=["ttl=3600"]) as m:
        for name, data in live.items():
            assert util.read_file(m.path(name)) == data
        rollback(m, ctl_dir)
    left = snapshot(sessdir)
    assert sorted(left) == sorted(live)
    assert all(left[n][0] == live[n] for n in live)


def test_rollback_stops_in_a_safe_mode(redis, redis_server, sessdir, checker,
                                       ctl_dir):
    """--no-unmount stops in files, still mounted; a second rollback
    finishes the job; with Redis unreachable the first step fails and the
    mount stays in redis-only, saying so."""
    with rollback_mount(redis_server.url(), sessdir, checker, "redis-only",
                        ctl_dir, opts=["redis_timeout=1"]) as m:
        util.write_file(m.path("sess_a"), b"a|i:1;")
        redis_server.sigstop()
        checker.register_output(r"mode redis-first is not stable|"
                                r"redis (probe|answers)|fence|redis is down")
        try:
            p = rollback(m, ctl_dir, rc=1)
        finally:
            redis_server.sigcont()
        assert "FAILED" in p.stdout, p.stdout
        assert "rollback stopped: '%s' stays in mode redis-only" % m.mnt \
            in p.stderr, p.stderr
        assert "run 'sessfs-migrate rollback --mount %s' again" % m.mnt \
            in p.stderr
        st = json.loads(migrate("status", "--json", "--mount", m.mnt,
                                "--ctl-dir", ctl_dir, rc=None).stdout)
        assert st["mode"] == "redis-only"

        p = rollback(m, ctl_dir, "--no-unmount")
        assert step_names(p.stdout) == ["mode", "export", "verify", "mode"]
        assert util.is_mounted(sessdir)
        assert "is in mode files, still mounted" in p.stdout
        p = rollback(m, ctl_dir)
        assert step_names(p.stdout) == ["unmount"]
        assert not util.is_mounted(sessdir)
    assert util.read_file(sessdir / "sess_a") == b"a|i:1;"


def test_remount_after_rollback_under_load(redis, redis_server, sessdir,
                                           checker, make_app, ctl_dir):
    """Rolled back under load, the apps go on on plain files; mounted
    again in dual-write (idle apps), Redis must have been reconciled with
    every file changed while unmounted (DESIGN.md, "Remount")."""
    php = make_app("php", sessdir)
    flask = make_app("flask", sessdir)
    load = Load([php, flask])
    load.start()
    try:
        load.wait_requests(100)
        with rollback_mount(redis_server.url(), sessdir, checker,
                            "redis-only", ctl_dir) as m:
            load.wait_requests(300)
            rollback(m, ctl_dir, "--wait", "0")
            load.wait_requests(200)
            load.stop()
        with rollback_mount(redis_server.url(), sessdir, checker,
                            "dual-write", ctl_dir) as m:
            # What the manifest says changed is repaired in the background.
            wait_for(lambda: json.loads(migrate(
                "status", "--json", "--mount", m.mnt, "--ctl-dir",
                ctl_dir).stdout)["journal"] == 0, 10, "an empty journal")
            p = migrate("verify", "--mount", m.mnt, "--ctl-dir", ctl_dir,
                        rc=None)
            check_load(load)
            php.stop()
            flask.stop()
            assert p.returncode == 0, p.stdout
    finally:
        load.stopping.set()


def write_sessions(r, n, uid, gid):
    """n sessions in Redis, layout v1 (plain), as a mount writes them:
    value key with the bytes, meta key with v, mt, ct, uid, gid, mode, wv,
    host and hs; value TTL = the remaining life, meta TTL = that + ttl.
    Returns name -> (bytes, mtime_ns)."""
    ttl_ms = 32 * 24 * 3600 * 1000
    now = time.time_ns()
    sessions = {}
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        name = "sess_%032x" % random.getrandbits(128)
        data = b'user|s:%d:"user%d";count|i:%d;' % (
            len(str(i)) + 4, i, i % 97)
        mtime = now - random.randrange(0, DAY_NS)
        vkey = (PREFIX + name).encode()
        mkey = ("%s{%s%s}:m" % (PREFIX, PREFIX, name)).encode()
        life = ttl_ms - (now - mtime) // 10**6
        pipe.set(vkey, data, px=life)
        pipe.hset(mkey, mapping={
            "v": 1, "mt": mtime, "ct": mtime, "uid": uid, "gid": gid,
            "mode": 0o600, "wv": 1, "host": "rollback-test",
            "hs": "%020d" % (mtime + 1)})
        pipe.pexpire(mkey, life + ttl_ms)
        sessions[name] = (data, mtime)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    return sessions


def test_rollback_of_many_sessions(redis, redis_server, sessdir, checker,
                                   ctl_dir):
    """100 000 sessions (SESSFS_ROLLBACK_SESSIONS) written into Redis
    directly, mounted redis-only over an empty directory, rolled back:
    every session becomes its file.  The duration is printed; the target
    is under 60 s, only under 300 s is asserted."""
    n = ROLLBACK_SESSIONS
    sessions = write_sessions(redis, n, util.WWW_UID, util.WWW_GID)
    with rollback_mount(redis_server.url(), sessdir, checker, "redis-only",
                        ctl_dir) as m:
        t0 = time.monotonic()
        p = rollback(m, ctl_dir, "--json")
        took = time.monotonic() - t0
        out = json.loads(p.stdout)
    steps = {s["step"]: s for s in out["steps"]}
    print("\nrollback of %d sessions: %.1f s (export %.1f s, verify %.1f s); "
          "reproduce: SESSFS_ROLLBACK_SESSIONS=%d %s -m pytest -s %s -k "
          "many_sessions" % (n, took, steps["export"]["seconds"],
                             steps["verify"]["seconds"], n, sys.executable,
                             __file__))
    assert out["ok"] is True
    assert steps["export"]["reply"]["written"] == n
    assert steps["verify"]["reply"]["differences"] == 0
    assert took < 300, "rollback of %d sessions took %.0f s" % (n, took)
    names = [x for x in os.listdir(sessdir) if not is_local(x)]
    assert len(names) == n
    for name in random.sample(sorted(sessions), min(n, 200)):
        st = os.stat(sessdir / name)
        assert util.read_file(sessdir / name) == sessions[name][0]
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
            (util.WWW_UID, util.WWW_GID, 0o600)
        assert st.st_mtime_ns == sessions[name][1]


def test_offline_export(redis, redis_server, tmp):
    """export URL DIR: the exact bytes, mtime from the meta key, owner and
    mode; expired sessions skipped; a deleted session's file removed; a
    newer file kept; files Redis does not know left alone; a symlink
    refused; run again, nothing changes."""
    d = util.make_sessdir(tmp, "out")
    sessions = write_sessions(redis, 50, util.WWW_UID, util.WWW_GID)
    names = sorted(sessions)
    now = time.time_ns()
    # A session the mount deleted (a tombstone) with a stale file here.
    gone = names.pop()
    redis.delete((PREFIX + gone).encode())
    redis.hset(("%s{%s%s}:m" % (PREFIX, PREFIX, gone)).encode(), "del", 1)
    util.write_file(d / gone, b"stale")
    os.utime(d / gone, ns=(sessions[gone][1] - DAY_NS,) * 2)
    # Expired by --ttl (two days old, ttl one day).
    old = names.pop()
    redis.hset(("%s{%s%s}:m" % (PREFIX, PREFIX, old)).encode(), "mt",
               now - 2 * DAY_NS)
    # Newer here than in Redis: the app wrote it after.
    newer = names.pop()
    util.write_file(d / newer, b"newer")
    # Written by phpredis's own handler: no meta key.
    redis.set((PREFIX + "sess_native").encode(), b"native|i:1;")
    util.write_file(d / "sess_unknown", b"legacy")
    os.chmod(d / "sess_unknown", 0o640)
    # Another user's mode and owner are kept as stored.
    redis.hset(("%s{%s%s}:m" % (PREFIX, PREFIX, names[0])).encode(),
               mapping={"uid": 0, "gid": 0, "mode": 0o640})

    p = migrate("export", "--no-progress", "--json", "--ttl", "86400",
                redis_server.url(), d)
    out = json.loads(p.stdout)
    assert (out["complete"], out["written"], out["deleted"], out["expired"],
            out["kept_newer"], out["errors"]) == \
        (True, len(names) + 1, 1, 1, 1, 0), out
    assert "keeping '%s'" % newer in p.stderr
    for name in names:
        st = os.stat(d / name)
        assert util.read_file(d / name) == sessions[name][0]
        assert st.st_mtime_ns == sessions[name][1]
        want = (0, 0, 0o640) if name == names[0] else \
            (util.WWW_UID, util.WWW_GID, 0o600)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == want, name
    assert not os.path.exists(d / gone)
    assert not os.path.exists(d / old)
    assert util.read_file(d / newer) == b"newer"
    assert util.read_file(d / "sess_native") == b"native|i:1;"
    st = os.stat(d / "sess_native")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
        (util.WWW_UID, util.WWW_GID, 0o600)
    assert util.read_file(d / "sess_unknown") == b"legacy"
    assert not [n for n in os.listdir(d) if n.startswith(".sessfs-tmp")]

    out = json.loads(migrate("export", "--no-progress", "--json", "--ttl",
                             "86400", redis_server.url(), d).stdout)
    assert (out["written"], out["deleted"], out["unchanged"]) == \
        (0, 0, len(names) + 2)

    os.unlink(d / names[1])
    os.symlink("/etc/passwd", d / names[1])
    p = migrate("export", "--no-progress", redis_server.url(), d, rc=1)
    assert "refusing to write '%s'" % names[1] in p.stderr
    assert "1 refused" in p.stdout
    assert os.readlink(d / names[1]) == "/etc/passwd"


def test_rollback_after_crash_restart(redis, redis_server, sessdir, checker,
                                      ctl_dir):
    """kill -9 of a redis-only daemon, sessfs started again over the dead
    layer (two layers now), then rollback: the plain files hold every
    session, written before and after the crash, and no layer is left."""
    state = checker.path.parent / "state"
    state.mkdir(exist_ok=True)
    opts = ["allow_other", "mode=redis-only", "ctl_dir=%s" % ctl_dir,
            "state_dir=%s" % state]
    cmd = util.sessfs_cmd(redis_server.url(), sessdir, opts)
    checker.reproducers.append(shlex.join(cmd))
    log = open(checker.path, "ab")
    procs = []
    try:
        first = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT,
                                 start_new_session=True)
        procs.append(first)
        util.wait_for_mount(first, sessdir)
        util.write_file(sessdir / "sess_before", b"before|i:1;")
        first.kill()
        first.wait(10)
        with pytest.raises(OSError) as err:
            os.stat(sessdir / "sess_before")
        assert err.value.errno == errno.ENOTCONN

        second = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT,
                                  start_new_session=True)
        procs.append(second)

        def serving():
            try:
                return util.read_file(sessdir / "sess_before")
            except OSError:
                return None
        wait_for(serving, 10 * SLOW, "the restarted daemon")
        util.write_file(sessdir / "sess_after", b"after|i:2;")
        st = subprocess.run([str(util.SESSFS), "--status", str(sessdir)],
                            stdout=subprocess.PIPE, text=True, timeout=30)
        assert "layers: 2" in st.stdout, st.stdout

        m = util.Mount(second, sessdir, -1, cmd, checker)
        p = rollback(m, ctl_dir)
        print(p.stdout)
        assert not util.is_mounted(sessdir), p.stdout
        assert util.read_file(sessdir / "sess_before") == b"before|i:1;"
        assert util.read_file(sessdir / "sess_after") == b"after|i:2;"
        assert second.wait(30 * SLOW) == 0
    finally:
        util.end_daemons(sessdir, procs, log)


def test_temp_written_before_rollback_renamed_after(
        redis, redis_server, sessdir, checker, ctl_dir):
    """cachelib writes its temp, then renames it by path.  A temp written
    in redis-only (kept in daemon memory) whose rename comes after the
    rollback's unmount must be found in the plain directory, or that save
    is lost (rename fails with ENOENT, cachelib only logs it)."""
    tmp_name = "tmpab12cd34.__wz_cache"
    with rollback_mount(redis_server.url(), sessdir, checker, "redis-only",
                        ctl_dir) as m:
        util.write_file(m.path(tmp_name), b"\0\0\0\0\x80\x05K\x03.")
        assert redis.keys("*%s*" % tmp_name) == []
        rollback(m, ctl_dir)
        assert not util.is_mounted(sessdir)
    os.replace(sessdir / tmp_name, sessdir / "0123456789abcdef0123456789abcdef")
    assert util.read_file(sessdir / "0123456789abcdef0123456789abcdef") == \
        b"\0\0\0\0\x80\x05K\x03."
