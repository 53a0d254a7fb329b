# SPDX-License-Identifier: GPL-2.0-or-later
"""Legacy files: sessions that were in the directory before sessfs was
mounted over it.  They are served with exact bytes and metadata and copied
up to Redis once; expired ones (cachelib header, or mtime + ttl) are never
served, and are removed from the lower dir when found; a tombstone in Redis
(a logout) wins over a lower file."""

import errno
import os
import stat
import time

import pytest

import util
from util import (WWW_GID, WWW_UID, cachelib_bytes, errno_of, meta, meta_key,
                  mounted, read_file, value_key, write_file)

pytestmark = util.fuse_test_marker()

P = "sessfs:"
NS = 10**9
DAY = 86400


def seed(d, name, data, mode=0o600, owner=(WWW_UID, WWW_GID), age_s=600,
         mtime_ns=None):
    """A legacy file in the lower dir, 'age_s' seconds old."""
    p = os.path.join(d, name)
    write_file(p, data, mode)
    os.chown(p, *owner)
    os.chmod(p, mode)
    if mtime_ns is None:
        mtime_ns = time.time_ns() - age_s * NS + 123456789 % NS
    os.utime(p, ns=(mtime_ns, mtime_ns))
    return os.stat(p)


def tombstone(r, name, mtime_ns=None):
    """The meta key another host's logout leaves: value gone, del=1."""
    now = time.time_ns() if mtime_ns is None else mtime_ns
    r.hset(meta_key(P, name), mapping={
        "v": "1", "mt": str(now), "ct": str(now), "uid": str(WWW_UID),
        "gid": str(WWW_GID), "mode": "384", "wv": "2", "host": "other-host",
        "hs": "%020d" % 2, "del": "1"})
    r.pexpire(meta_key(P, name), 3600 * 1000)


LEGACY = {
    "sess_legacy0abcdefghijklmnop": (b'user|s:5:"alice";count|i:7;', 0o600),
    "sess_empty0abcdefghijklmnopq": (b"", 0o600),
    "sessionid" + "k" * 32: (b"eyJ1IjoxfQ:1xXUK1:sig", 0o644),
    "0123456789abcdef0123456789abcdef":
        (cachelib_bytes(int(time.time()) + 3600), 0o600),
    "sess_binary0abcdefghijklmnop": (os.urandom(200000), 0o640),
}


def test_lower_files_served_exactly(redis, redis_server, sessdir, checker):
    lower = {n: seed(sessdir, n, d, mode) for n, (d, mode) in LEGACY.items()}
    seed(sessdir, "sess_root0", b"r|i:1;", owner=(0, 0))
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["allow_other"]) as m:
        assert sorted(os.listdir(m.mnt)) == sorted(list(LEGACY) +
                                                   ["sess_root0"])
        for name, (data, mode) in LEGACY.items():
            st, lo = os.stat(m.path(name)), lower[name]
            assert st.st_size == len(data), name
            assert stat.S_IMODE(st.st_mode) == mode, name
            assert (st.st_uid, st.st_gid) == (WWW_UID, WWW_GID), name
            assert st.st_mtime_ns == lo.st_mtime_ns, name
            assert st.st_ctime_ns == lo.st_ctime_ns, name
            assert util.as_www(read_file, m.path(name)) == data, name
        assert os.stat(m.path("sess_root0")).st_uid == 0
        # Copied up, with the lower file's metadata.
        for name, (data, mode) in LEGACY.items():
            assert redis.get(value_key(P, name)) == data, name
            md = meta(redis, P, name)
            assert int(md["mt"]) == lower[name].st_mtime_ns, name
            assert int(md["mode"]) == mode
            assert (int(md["uid"]), int(md["gid"])) == (WWW_UID, WWW_GID)
    # redis-only never touches the lower files.
    for name, (data, mode) in LEGACY.items():
        assert read_file(sessdir / name) == data


def test_copied_up_once(redis, redis_server, sessdir, checker):
    name = "sess_once0abcdefghijklmnopq"
    seed(sessdir, name, b"v|i:1;")
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert read_file(m.path(name)) == b"v|i:1;"
        wv = meta(redis, P, name)["wv"]
        for _ in range(5):
            assert read_file(m.path(name)) == b"v|i:1;"
            os.stat(m.path(name))
            os.listdir(m.mnt)
        assert meta(redis, P, name)["wv"] == wv
        # The lower file changes behind the mount: Redis is authoritative
        # now, the change is not picked up.
        fd = os.open(name, os.O_WRONLY | os.O_TRUNC, dir_fd=m.lower_fd)
        os.write(fd, b"changed|i:99;")
        os.close(fd)
        assert read_file(m.path(name)) == b"v|i:1;"
        assert os.stat(m.path(name)).st_size == 6
        # A write through the mount goes to Redis only.
        fd = os.open(m.path(name), os.O_RDWR)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"v|i:2;", 0)
        os.close(fd)
        assert redis.get(value_key(P, name)) == b"v|i:2;"
    assert read_file(sessdir / name) == b"changed|i:99;"
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert read_file(m.path(name)) == b"v|i:2;"
        assert os.listdir(m.mnt) == [name]


def test_copy_up_ttl_is_remaining_life(redis, redis_server, sessdir,
                                       checker):
    """Copy-up does not extend a session's life: TTL = mtime + ttl - now."""
    name = "sess_ttl0abcdefghijklmnopqr"
    seed(sessdir, name, b"t|i:1;", age_s=1800)
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["ttl=3600"]) as m:
        assert read_file(m.path(name)) == b"t|i:1;"
        pttl = redis.pttl(value_key(P, name))
        assert 1700 * 1000 < pttl <= 1801 * 1000, pttl


def test_php_write_to_legacy_session(redis, redis_server, sessdir, checker):
    """PHP's first request after the mount: open(O_RDWR|O_CREAT), flock,
    read, ftruncate(0), pwrite."""
    import fcntl
    name = "sess_phpw0abcdefghijklmnopq"
    seed(sessdir, name, b'user|s:3:"bob";count|i:1;')

    def php_incr(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            assert st.st_uid == WWW_UID  # PHP's owner check
            data = os.pread(fd, st.st_size, 0)
            assert len(data) == st.st_size
            new = data.replace(b"count|i:1;", b"count|i:2;")
            os.ftruncate(fd, 0)
            assert os.pwrite(fd, new, 0) == len(new)
        finally:
            os.close(fd)
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["allow_other"]) as m:
        util.as_www(php_incr, str(m.path(name)))
        assert read_file(m.path(name)) == b'user|s:3:"bob";count|i:2;'
        assert redis.get(value_key(P, name)) == b'user|s:3:"bob";count|i:2;'
        assert os.listdir(m.mnt) == [name]


def test_o_excl_on_lower_name(redis, redis_server, sessdir, checker):
    name = "sessionid" + "x" * 32
    seed(sessdir, name, b"lower")
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert errno_of(os.open, m.path(name),
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600) \
            == errno.EEXIST
        assert read_file(m.path(name)) == b"lower"


# (name, data, age in seconds, mount options, served?)
EXPIRY_CASES = [
    pytest.param("0123456789abcdef0123456789abcde0",
                 lambda now: cachelib_bytes(now - 60), 60, [], False,
                 id="cachelib-header-expired"),
    pytest.param("0123456789abcdef0123456789abcde1",
                 lambda now: cachelib_bytes(now - 60), 60, ["ttl_from=none"],
                 True, id="cachelib-header-expired-ttl_from=none"),
    pytest.param("0123456789abcdef0123456789abcde2",
                 lambda now: cachelib_bytes(now + 3600), 40 * DAY, [], True,
                 id="cachelib-header-valid-mtime-old"),
    pytest.param("0123456789abcdef0123456789abcde3",
                 lambda now: cachelib_bytes(0), 7200, ["ttl=3600"], False,
                 id="cachelib-header-0-mtime-past-ttl"),
    pytest.param("0123456789abcdef0123456789abcde4",
                 lambda now: cachelib_bytes(0), 600, ["ttl=3600"], True,
                 id="cachelib-header-0-mtime-fresh"),
    pytest.param("sess_old0abcdefghijklmnopqr", lambda now: b"o|i:1;",
                 7200, ["ttl=3600"], False, id="php-mtime-past-ttl"),
    pytest.param("sess_fresh0abcdefghijklmnop", lambda now: b"f|i:1;",
                 1800, ["ttl=3600"], True, id="php-mtime-within-ttl"),
    pytest.param("sess_month0abcdefghijklmnop", lambda now: b"m|i:1;",
                 33 * DAY, [], False, id="php-33-days-default-ttl"),
    pytest.param("sess_month1abcdefghijklmnop", lambda now: b"m|i:1;",
                 31 * DAY, [], True, id="php-31-days-default-ttl"),
]


@pytest.mark.parametrize("name,make,age,opts,served", EXPIRY_CASES)
def test_expiry(name, make, age, opts, served, redis, redis_server, sessdir,
                checker):
    data = make(int(time.time()))
    seed(sessdir, name, data, age_s=age)
    with mounted(redis_server.url(), sessdir, checker, opts=opts) as m:
        if served:
            assert read_file(m.path(name)) == data
            assert redis.get(value_key(P, name)) == data
        else:
            assert errno_of(os.stat, m.path(name)) == errno.ENOENT
            assert errno_of(os.open, m.path(name), os.O_RDONLY) \
                == errno.ENOENT
            assert redis.exists(value_key(P, name)) == 0
    if served:
        assert read_file(sessdir / name) == data
    else:
        # Hidden by the mount, so gone underneath too (DESIGN.md,
        # "Expired legacy files"): an unmount shows what the mount showed.
        assert not os.path.exists(sessdir / name)


def test_expired_not_listed(redis, redis_server, sessdir, checker):
    now = int(time.time())
    seed(sessdir, "0123456789abcdef0123456789abcdef",
         cachelib_bytes(now - 60), age_s=60)
    seed(sessdir, "sess_old0abcdefghijklmnopqr", b"o|i:1;", age_s=7200)
    seed(sessdir, "sess_new0abcdefghijklmnopqr", b"n|i:1;", age_s=60)
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["ttl=3600"]) as m:
        assert os.listdir(m.mnt) == ["sess_new0abcdefghijklmnopqr"]
        res = util.run(["find", str(m.mnt), "-name", "sess_*", "-type", "f"])
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert res.stdout.split() == [str(m.path("sess_new0abcdefghijklmnopqr"))]


def test_tombstone_beats_lower_file(redis, redis_server, sessdir, checker):
    name = "sess_tomb0abcdefghijklmnopq"
    seed(sessdir, name, b'user|s:5:"alice";')
    tombstone(redis, name)
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert errno_of(os.stat, m.path(name)) == errno.ENOENT
        assert errno_of(os.open, m.path(name), os.O_RDONLY) == errno.ENOENT
        assert name not in os.listdir(m.mnt)
        assert redis.exists(value_key(P, name)) == 0
        assert meta(redis, P, name)["del"] == "1"


def test_unlink_of_lower_only_file_stays(redis, redis_server, sessdir,
                                         checker):
    """A logout (unlink) of a session that only the lower dir held: gone
    through the mount, also after a remount, though the lower file stays."""
    name = "sess_bye0abcdefghijklmnopqr"
    seed(sessdir, name, b'user|s:5:"alice";')
    with mounted(redis_server.url(), sessdir, checker) as m:
        os.unlink(m.path(name))
        assert errno_of(os.stat, m.path(name)) == errno.ENOENT
        assert name not in os.listdir(m.mnt)
        assert meta(redis, P, name).get("del") == "1"
        assert name in m.lower_names()
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert errno_of(os.stat, m.path(name)) == errno.ENOENT
        assert name not in os.listdir(m.mnt)


def test_unlink_unread_lower_file(redis, redis_server, sessdir, checker):
    """The unlink is the very first access (PHP GC, find -delete)."""
    name = "sess_gc0abcdefghijklmnopqrs"
    seed(sessdir, name, b"g|i:1;")
    with mounted(redis_server.url(), sessdir, checker) as m:
        res = util.run(["find", str(m.mnt), "-name", "sess_gc*", "-delete"])
        assert res.returncode == 0, res.stderr
        assert errno_of(os.stat, m.path(name)) == errno.ENOENT
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert os.listdir(m.mnt) == []


def test_recreated_name_does_not_resurrect_lower(redis, redis_server, sessdir,
                                                 checker):
    """After a logout, a new open(O_CREAT) of the same name (PHP without
    strict mode, Flask replaying a dead cookie) gives an empty file, never
    the lower bytes."""
    name = "sess_again0abcdefghijklmnop"
    seed(sessdir, name, b'user|s:5:"alice";')
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert read_file(m.path(name)) == b'user|s:5:"alice";'
        os.unlink(m.path(name))
        fd = os.open(m.path(name), os.O_RDWR | os.O_CREAT, 0o600)
        assert os.fstat(fd).st_size == 0
        assert os.pread(fd, 100, 0) == b""
        os.close(fd)
        assert redis.get(value_key(P, name)) == b""
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert read_file(m.path(name)) == b""


def test_lower_symlink_and_subdir_not_followed(redis, redis_server, sessdir,
                                               checker):
    """Bad input in the lower dir: a symlink is never followed (its target
    is never served), a subdirectory does not break the mount."""
    os.symlink("/etc/passwd", sessdir / "sess_evil0abcdefghijklmnop")
    os.mkdir(sessdir / "subdir")
    seed(sessdir, "sess_good0abcdefghijklmnop", b"g|i:1;")
    checker.register_output(r"sess_evil|subdir|symlink|regular")
    passwd = read_file("/etc/passwd")
    with mounted(redis_server.url(), sessdir, checker) as m:
        try:
            got = read_file(m.path("sess_evil0abcdefghijklmnop"))
        except OSError:
            got = None
        assert got != passwd
        assert redis.get(value_key(P, "sess_evil0abcdefghijklmnop")) in \
            (None, b"")
        assert read_file(m.path("sess_good0abcdefghijklmnop")) == b"g|i:1;"
        assert "sess_good0abcdefghijklmnop" in os.listdir(m.mnt)
