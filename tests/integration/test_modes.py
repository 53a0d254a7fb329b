# SPDX-License-Identifier: GPL-2.0-or-later
"""The migration modes (DESIGN.md, "Modes", "Remount") with the real PHP
and Flask-Session apps, and the lower dir full or read-only.

Each app runs on sessfs in every mode, over a directory that already holds
sessions the same app made on plain files: old users come back, new users
log in and count, some log out.  Then sessfs is unmounted with the app
still running (idle): in files, dual-write and redis-first the plain files
must be exactly what the mount showed (names, bytes, owner, mode, mtime;
no temp or hidden file); in redis-only the lower dir is untouched.  The
app then changes, adds and deletes sessions on the plain files, and a
redis-first mount on the same state_dir must show exactly those files,
Redis included: nothing stale, nothing resurrected.

The lower dir full (a 256 KiB tmpfs) and read-only (from the start: the
tmpfs superblock remounted ro through a second, uncovered mount of it):
files and dual-write refuse the write with ENOSPC / EROFS and keep the old
file; redis-first and redis-only take it (Redis is authoritative), and
redis-first repairs the lower dir once it can.

cachelib's count file (host-local, never in Redis) is left underneath as
the mount showed it, like any other file.
"""

import errno
import os

import pytest

import util
from util import (errno_of, flask_file, php_read, php_sid, php_write,
                  read_file, write_file)
from modeutil import (LOWER_CURRENT, MODES, PREFIX, WRITES_REDIS, ModeMount,
                      check_errnos, diff_snapshots, fill,
                      is_tombstone, mode_params, redis_sessions,
                      remount_tmpfs, sessions_only, snapshot, stray,
                      tmpfs_lower)

pytestmark = util.fuse_test_marker()

# SESSION_FILE_THRESHOLD=0, the runbook's setting (and the example app's
# default): every save is still a mkstemp temp renamed over the session,
# but no count file, which every gunicorn worker rewrites when it boots,
# possibly after the app answers its first request (that file has its
# own test below).
ENV = {"php": {}, "flask": {"SESSION_FILE_THRESHOLD": "0"}}


def login(app, user):
    c = app.client()
    assert c.get("/login?user=" + user) == "ok user=" + user
    return c


def file_of(kind, client):
    return "sess_" + php_sid(client) if kind == "php" else flask_file(client)


def check_same(want, got, what):
    d = diff_snapshots(want, got)
    assert not d, "%s:\n  %s" % (what, "\n  ".join(d[:20]))


@pytest.mark.parametrize("mode", mode_params())
@pytest.mark.parametrize("kind", ["php", "flask"])
def test_app_in_mode_then_plain_files_then_remount(
        kind, mode, redis, redis_server, sessdir, tmp, checker, make_app):
    """Old sessions, logins, counting and logouts through the mount in
    'mode'; the plain files after the unmount; changes made on them;
    a redis-first remount of them."""
    mm = ModeMount(tmp, redis_server, checker)
    env = ENV[kind]

    # Sessions the app made on the plain directory.
    seed = make_app(kind, sessdir, env)
    alice, bob, eve = (login(seed, u) for u in ("alice", "bob", "eve"))
    assert bob.get("/incr") == "count=1"
    seed.stop()
    before = snapshot(sessdir)
    assert file_of(kind, bob) in before

    with mm.mounted(sessdir, mode) as m:
        app = make_app(kind, sessdir, env)
        for c in (alice, bob, eve):
            c.base = app.base
        assert alice.get("/whoami") == "user=alice count=0"
        assert bob.get("/incr") == "count=2"
        carol = login(app, "carol")
        for i in range(1, 4):
            assert carol.get("/incr") == "count=%d" % i
        dave = login(app, "dave")
        dave_file = file_of(kind, dave)
        assert dave.get("/logout") == "bye"
        eve_file = file_of(kind, eve)
        assert eve.get("/logout") == "bye"
        assert eve.get("/whoami") == "anonymous"
        for gone in (dave_file, eve_file):
            if kind == "php":  # Flask re-creates the name, anonymous
                assert errno_of(os.stat, m.path(gone)) == errno.ENOENT

        view = snapshot(m.mnt)
        assert not stray(view), stray(view)
        st = view[file_of(kind, carol)]
        assert (st[1], st[2], st[3]) == (util.WWW_UID, util.WWW_GID, 0o600)
        in_redis = redis_sessions(redis)
        if mode == "files":
            # Redis untouched, every change journaled for it.
            assert in_redis == {}
            assert mm.status()["journal"] > 0
        else:
            mm.wait_repaired(what="nothing to repair with Redis up")
            in_redis = redis_sessions(redis)
            sessions = {n: v[0] for n, v in sessions_only(view).items()}
            wrong = [n for n, v in in_redis.items() if sessions.get(n) != v]
            assert not wrong, "in Redis, not as the mount shows: %s" % wrong
            for c in (bob, carol):
                assert file_of(kind, c) in in_redis
            if mode != "dual-write":  # every name read was copied up
                assert set(in_redis) == set(sessions)
            if kind == "php":
                assert is_tombstone(redis, dave_file)
                assert is_tombstone(redis, eve_file)
        # Unmounted with the app still running, idle.

    lower = snapshot(sessdir)
    assert not stray(lower), stray(lower)
    if mode not in LOWER_CURRENT:
        check_same(before, lower, "redis-only wrote the lower dir")
        return
    check_same(view, lower, "plain files after the unmount differ from "
               "what the mount showed")

    # The app on the plain files: it sees what the mount wrote, and
    # changes one session, adds one and deletes one underneath.
    assert carol.get("/whoami") == "user=carol count=3"
    assert carol.get("/incr") == "count=4"
    frank = login(app, "frank")
    bob_file = file_of(kind, bob)
    assert bob_file in lower
    assert bob.get("/logout") == "bye"
    after = snapshot(sessdir)
    assert bob_file not in after
    changed = file_of(kind, carol)
    added = file_of(kind, frank)
    assert after[changed][0] != lower[changed][0]

    with mm.mounted(sessdir, "redis-first") as m:
        # Redis was repaired from the plain files before the mount served.
        in_redis = redis_sessions(redis)
        assert in_redis.get(changed) == after[changed][0], \
            "stale value of a session changed underneath"
        assert in_redis.get(added) == after[added][0]
        assert bob_file not in in_redis, "a deleted session came back"
        assert util.meta(redis, PREFIX, changed)["mt"] == \
            str(after[changed][4])
        view2 = snapshot(m.mnt)
        check_same(after, view2, "the remount does not show the files "
                   "underneath")
        sessions = {n: v[0] for n, v in sessions_only(view2).items()}
        assert redis_sessions(redis) == sessions
        for gone in (bob_file, dave_file, eve_file):
            if gone not in sessions:
                assert errno_of(os.stat, m.path(gone)) == errno.ENOENT
        assert carol.get("/whoami") == "user=carol count=4"
        assert frank.get("/whoami") == "user=frank count=0"
        assert alice.get("/whoami") == "user=alice count=0"
        assert bob.get("/whoami") == "anonymous"
        assert carol.get("/incr") == "count=5"
        view3 = snapshot(m.mnt)
    check_same(view3, snapshot(sessdir), "plain files after the redis-first "
               "unmount")


# ----------------------------------------------------------------- lower dir

SESS = "sess_full0123456789abcdefghij"
GONE = "sess_gone0123456789abcdefghij"
NEW = "sess_brandnew0123456789abcdefg"
OLD = b'user|s:3:"old";count|i:1;'
# What the daemon may log about a full or read-only lower dir.
LOWER_LOG = r"no space left on device|read-only file system"

# files and dual-write promise ENOSPC / EROFS; the daemon answers EIO
# (fs/ops.c store_err() turns every store error but ENOENT, EEXIST, EFBIG
# and ENOMEM into EIO, and logs it as "cannot write '...' in redis").
def lower_mode_params():
    return [pytest.param(m, id=m)
            for m in MODES]


def seed_lower(d, name, data):
    util.write_file(os.path.join(d, name), data)
    os.chown(os.path.join(d, name), util.WWW_UID, util.WWW_GID)


@pytest.mark.parametrize("mode", lower_mode_params())
def test_lower_dir_full(mode, redis, redis_server, tmp, checker):
    """A full lower dir (256 KiB tmpfs): files and dual-write fail the
    write with ENOSPC at the pwrite and keep the old file, in Redis too;
    redis-first and redis-only take it (Redis is authoritative) and
    redis-first repairs the lower dir once there is space again.  No temp
    is left behind; once there is space, writes work in every mode."""
    checker.register_output(LOWER_LOG)
    mm = ModeMount(tmp, redis_server, checker)
    new = b'user|s:3:"new";count|i:2;' + b"x" * 20000
    lower_first = mode in ("files", "dual-write")
    with tmpfs_lower(tmp, "256k") as (view, sessdir):
        seed_lower(view, SESS, OLD)
        with mm.mounted(sessdir, mode) as m:
            path = m.path(SESS)
            assert php_read(path) == OLD
            fill(view.parent)
            err = errno_of(php_write, path, new)
            err_new = errno_of(write_file, m.path(NEW), new)
            if lower_first:
                assert err is not None, "a write to a full lower dir worked"
                assert err_new is not None
                assert php_read(path) == OLD
                assert read_file(view / SESS) == OLD
                # The create may have worked (an empty file needs no
                # space); its write did not.
                if os.path.exists(view / NEW):
                    assert read_file(m.path(NEW)) == b""
                if mode == "dual-write":
                    assert redis.get(util.value_key(PREFIX, SESS)) in \
                        (None, OLD)
            else:
                assert err is None, util.errno_name(err)
                assert err_new is None, util.errno_name(err_new)
                assert php_read(path) == new
                assert read_file(m.path(NEW)) == new
                assert redis.get(util.value_key(PREFIX, SESS)) == new
                assert read_file(view / SESS) == OLD
            assert not stray(os.listdir(view)), stray(os.listdir(view))
            os.unlink(view.parent / "filler")
            if mode == "redis-first":
                mm.wait_repaired(what="the lower dir to be repaired")
                assert read_file(view / SESS) == new
                assert read_file(view / NEW) == new
            # Space again: writes work in every mode.
            php_write(path, new + b"2")
            assert php_read(path) == new + b"2"
            view_m = snapshot(m.mnt)
            if mode in WRITES_REDIS:
                assert redis.get(util.value_key(PREFIX, SESS)) == new + b"2"
        lower = snapshot(view)
        assert not stray(lower), stray(lower)
        if mode in LOWER_CURRENT:
            check_same(view_m, lower, "plain files after the unmount")
        else:
            assert lower == {SESS: lower[SESS]} and lower[SESS][0] == OLD
    want = errno.ENOSPC if lower_first else None
    check_errnos([("pwrite of a session", err, want),
                  ("write of a new session", err_new, want)])


@pytest.mark.parametrize("mode", lower_mode_params())
def test_lower_dir_read_only(mode, redis, redis_server, tmp, checker):
    """A lower dir read-only from the start: files and dual-write fail
    writes, creates and unlinks with EROFS and change nothing, in Redis
    neither; redis-first and redis-only take them, and redis-first repairs
    the lower dir once it is writable again."""
    checker.register_output(LOWER_LOG)
    mm = ModeMount(tmp, redis_server, checker)
    new = b'user|s:3:"new";count|i:2;'
    lower_first = mode in ("files", "dual-write")
    with tmpfs_lower(tmp, "1m") as (view, sessdir):
        seed_lower(view, SESS, OLD)
        seed_lower(view, GONE, b"gone|i:1;")
        remount_tmpfs(view, ro=True)
        with mm.mounted(sessdir, mode) as m:
            path = m.path(SESS)
            assert php_read(path) == OLD
            assert read_file(m.path(GONE)) == b"gone|i:1;"
            err = errno_of(php_write, path, new)
            err_new = errno_of(write_file, m.path(NEW), new)
            err_rm = errno_of(os.unlink, m.path(GONE))
            if lower_first:
                for e in (err, err_new, err_rm):
                    assert e is not None, "a change of a read-only lower " \
                        "dir worked"
                assert php_read(path) == OLD
                assert read_file(m.path(GONE)) == b"gone|i:1;"
                assert errno_of(os.stat, m.path(NEW)) == errno.ENOENT
                assert redis_sessions(redis) == {}
            else:
                for e in (err, err_new, err_rm):
                    assert e is None, util.errno_name(e)
                assert php_read(path) == new
                assert read_file(m.path(NEW)) == new
                assert errno_of(os.stat, m.path(GONE)) == errno.ENOENT
                assert redis.get(util.value_key(PREFIX, SESS)) == new
                assert is_tombstone(redis, GONE)
            assert sorted(os.listdir(view)) == sorted([SESS, GONE])
            assert read_file(view / SESS) == OLD
            remount_tmpfs(view, ro=False)
            if mode == "redis-first":
                mm.wait_repaired(what="the lower dir to be repaired")
                assert read_file(view / SESS) == new
                assert read_file(view / NEW) == new
                assert not os.path.exists(view / GONE)
            # Writable again: writes work in every mode.
            php_write(path, new + b"2")
            assert php_read(path) == new + b"2"
            view_m = snapshot(m.mnt)
        lower = snapshot(view)
        assert not stray(lower), stray(lower)
        if mode in LOWER_CURRENT:
            check_same(view_m, lower, "plain files after the unmount")
        else:
            assert sorted(lower) == sorted([SESS, GONE])
            assert lower[SESS][0] == OLD
    want = errno.EROFS if lower_first else None
    check_errnos([("pwrite of a session", err, want),
                  ("create of a new session", err_new, want),
                  ("unlink of a session", err_rm, want)])


# ----------------------------------------------------------------- count file

def cachelib_as_www(cache_dir, keys):
    """cachelib 0.9's FileSystemCache, as Flask-Session uses it, run as
    www-data: its start (recount, count file rewritten), then a set() per
    key (mkstemp temp, write, rename, chmod; the count file rewritten for
    a new key).  Returns what get() then reads."""
    def run():
        from cachelib import FileSystemCache
        cache = FileSystemCache(str(cache_dir), threshold=500,
                                default_timeout=0)
        for k in keys:
            assert cache.set("session:" + k, {"user": k}), k
        return [cache.get("session:" + k) for k in keys]
    return util.as_www(run)


@pytest.mark.parametrize("mode", [
    pytest.param("files", id="files"),
    pytest.param("dual-write", id="dual-write"),
    pytest.param("redis-first", id="redis-first")])
def test_cachelib_count_file_left_as_shown(mode, redis, redis_server,
                                           sessdir, tmp, checker):
    """cachelib's count file is host-local (never in Redis).  Over a dir
    where cachelib already keeps one, the mount lists it, and the unmount
    leaves it as the mount showed it, like every other file."""
    mm = ModeMount(tmp, redis_server, checker)
    assert cachelib_as_www(sessdir, ["s0"]) == [{"user": "s0"}]
    count = util.CACHELIB_COUNT
    before = read_file(sessdir / count)
    problems = []
    with mm.mounted(sessdir, mode) as m:
        if count not in os.listdir(m.mnt):
            problems.append("the count file is not listed (stat: %s)"
                            % (errno_of(os.stat, m.path(count)) or "ok"))
        got = cachelib_as_www(m.mnt, ["s1", "s2"])
        assert got == [{"user": "s1"}, {"user": "s2"}]
        view = snapshot(m.mnt, sorted(set(os.listdir(m.mnt)) | {count}))
        assert view[count][0] != before  # the count went up
        assert not [k for k in util.keys_of(redis) if count in k]
    lower = snapshot(sessdir)
    d = diff_snapshots(view, lower)
    if d:
        problems.append("left underneath, not as shown: " + "; ".join(d))
    assert not problems, problems
