# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs-migrate backup, restore and cleanup against a real redis-server
(conftest.py: one per module on a free loopback port, flushed before each
test).

Sessions are put into Redis by `sessfs-migrate copy` from real-format
files (layout v1, docs/DESIGN.md "Data in Redis"), plus tombstones and a
value without meta key written directly, as the mount and phpredis's own
handler leave them.  backup -> FLUSHALL -> restore must give every key
back: the same bytes, the same meta hash, the TTL within two seconds.
"""

import hashlib
import json
import os
import pickle
import struct
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_py

import util
from util import BUILD_DIR, SLOW

MIGRATE = BUILD_DIR / "migrate" / "sessfs-migrate"
PREFIX = "app1:"
TTL = 32 * 24 * 3600
DAY_NS = 24 * 3600 * 10**9
INDEX = PREFIX + "{sessfs}:names"

pytestmark = pytest.mark.skipif(not MIGRATE.exists(),
                                reason="%s not built" % MIGRATE)


def run(*args, rc=None, timeout=60):
    p = subprocess.run([str(MIGRATE)] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout * SLOW)
    p.out = p.stdout.decode()
    p.err = p.stderr.decode()
    if rc is not None:
        assert p.returncode == rc, "exit %d, not %d\nstdout: %s\nstderr: %s" % (
            p.returncode, rc, p.out, p.err)
    return p


def backup(url, path, *opts, rc=0):
    p = run("backup", "--json", "--prefix", PREFIX, *opts, url, path, rc=rc)
    return json.loads(p.out) if rc == 0 else p


def restore(path, url, *opts, rc=0):
    p = run("restore", "--json", *opts, path, url, rc=rc)
    return json.loads(p.out) if rc == 0 else p


def vkey(name, prefix=PREFIX):
    return prefix + name


def mkey(name, prefix=PREFIX):
    return "%s{%s}:m" % (prefix, vkey(name, prefix))


def write(d, name, data, mtime_ns=None):
    p = Path(d) / name
    p.write_bytes(data)
    p.chmod(0o600)
    if mtime_ns is not None:
        os.utime(p, ns=(mtime_ns, mtime_ns))
    return p


def cachelib_name(sid):
    return hashlib.md5(("session:" + sid).encode()).hexdigest()


def cachelib_bytes(expiry):
    return struct.pack("I", expiry) + pickle.dumps({"_permanent": True},
                                                   protocol=5)


def tombstone(redis, name, mtime_ns, ttl_ms=TTL * 1000):
    redis.hset(mkey(name), mapping={
        "v": 1, "mt": mtime_ns, "ct": mtime_ns, "uid": 0, "gid": 0,
        "mode": 0o600, "wv": 3, "host": "other-host", "del": 1,
        "hs": "%020d" % mtime_ns})
    redis.pexpire(mkey(name), ttl_ms)


def snapshot(redis):
    """Every key under the prefix: type, bytes or hash or zset, PTTL."""
    out = {}
    for k in redis.scan_iter(match=PREFIX + "*", count=1000):
        t = redis.type(k).decode()
        if t == "string":
            v = redis.get(k)
        elif t == "hash":
            v = redis.hgetall(k)
        else:
            v = sorted(redis.zrange(k, 0, -1))
        out[k.decode()] = (t, v, redis.pttl(k))
    return out


def assert_same(before, after, slack_ms=2000):
    assert sorted(before) == sorted(after)
    for k, (t, v, pttl) in before.items():
        t2, v2, pttl2 = after[k]
        assert (t, v) == (t2, v2), k
        if pttl < 0:
            assert pttl2 == pttl, k
        else:
            assert abs(pttl - pttl2) < slack_ms * SLOW, (k, pttl, pttl2)


@pytest.fixture
def sdir(tmp):
    d = tmp / "sessions"
    d.mkdir()
    return d


def seed(sdir, redis, url, n=20):
    """PHP, cachelib and Django sessions copied in, two tombstones and a
    value without meta key (phpredis's own handler)."""
    t = time.time_ns()
    for i in range(n):
        write(sdir, "sess_p%03d" % i, b'user|s:1:"%d";\x00bin\xff' % i,
              mtime_ns=t - i * 60 * 10**9)
    write(sdir, cachelib_name("c1"), cachelib_bytes(int(time.time()) + 3600))
    write(sdir, "sessionid" + "k" * 32, b'{"_auth_user_id":"1"}')
    s = json.loads(run("copy", "--no-progress", "--prefix", PREFIX, sdir, url,
                       rc=0).out)
    assert s["copied"] == n + 2
    tombstone(redis, "sess_gone", t - DAY_NS)
    tombstone(redis, "sess_gone2", t)
    redis.set(vkey("sess_nometa"), b"native", px=600 * 1000)
    # Another prefix: never in the backup.
    redis.set("other:sess_x", b"x", px=600 * 1000)


# ------------------------------------------------------------------ usage

def test_help_and_usage():
    for cmd in ("backup", "restore", "cleanup"):
        p = run(cmd, "--help", rc=0)
        assert p.out.startswith("usage: sessfs-migrate " + cmd)
        assert "--prefix" in p.out and "--tls-ca" in p.out
        assert "--password-file" in p.out
        assert cmd in run("--help", rc=0).out
    assert "--replace" in run("restore", "--help").out
    assert "--to-prefix" in run("restore", "--help").out
    assert "--force" in run("backup", "--help").out
    p = run("cleanup", "/tmp", "redis://x", rc=2)
    assert p.err.startswith("error: cleanup needs --older-than")
    for age in ("7x", "d", "-1d", "7dd"):
        p = run("cleanup", "--older-than", age, "/tmp", "redis://x", rc=2)
        assert "invalid --older-than" in p.err
    run("backup", "redis://x", rc=2)
    run("restore", "/nonexistent.sfbk", "redis://x", rc=2)


# ------------------------------------------------------- backup + restore

def test_round_trip(sdir, tmp, redis, redis_server):
    url = redis_server.url()
    seed(sdir, redis, url)
    before = snapshot(redis)
    assert INDEX in before  # the cachelib entry's index
    f = tmp / "app1.sfbk"
    b = backup(url, f)
    assert (b["records"], b["values"], b["tombstones"]) == (25, 23, 2)
    assert os.stat(f).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp)) == ["app1.sfbk", "sessions"]
    redis.flushall()
    r = restore(f, url)
    assert (r["records"], r["restored"], r["tombstones"], r["skipped_expired"],
            r["skipped_newer"], r["errors"]) == (25, 23, 2, 0, 0, 0)
    assert r["complete"] is True
    assert_same(before, snapshot(redis))
    assert not redis.exists("other:sess_x")
    # Again: everything is there already, nothing is written.
    r = restore(f, url, "--prefix", PREFIX)
    assert (r["restored"], r["tombstones"], r["skipped_newer"]) == (0, 0, 25)
    assert_same(before, snapshot(redis))


def test_existing_file_and_force(sdir, tmp, redis, redis_server):
    url = redis_server.url()
    seed(sdir, redis, url, n=2)
    f = tmp / "b.sfbk"
    f.write_bytes(b"precious")
    p = backup(url, f, rc=2)
    assert p.err.strip() == ("error: '%s' exists: not replaced; pass --force "
                             "to replace it" % f)
    assert f.read_bytes() == b"precious"
    redis.hset(PREFIX + "notasession", "a", "b")  # another app's key
    p = run("backup", "--json", "--prefix", PREFIX, "--force", url, f, rc=0)
    b = json.loads(p.out)
    assert (b["records"], b["skipped"]) == (7, 1)
    assert p.err.startswith("warning: skipping 'notasession': its value key "
                            "is no string (WRONGTYPE")
    assert f.read_bytes().startswith(b"SESSFSBK")
    assert sorted(os.listdir(tmp)) == ["b.sfbk", "sessions"]


def test_corrupt_or_truncated_file_refused(sdir, tmp, redis, redis_server):
    url = redis_server.url()
    seed(sdir, redis, url, n=3)
    f = tmp / "good.sfbk"
    backup(url, f)
    good = f.read_bytes()
    redis.flushall()
    redis.set("canary", b"1")
    bad = tmp / "bad.sfbk"
    size = len(good)
    # A spread over the header, the records and the trailer (the unit test
    # flips every bit of a record).
    positions = sorted(set(list(range(0, 60, 4)) + [size - 1]
                           + list(range(size - 60, size, 5))
                           + list(range(60, size - 60, size // 25))))
    for pos in positions:
        data = bytearray(good)
        data[pos] ^= 0x20
        bad.write_bytes(bytes(data))
        p = restore(bad, url, rc=2)
        assert p.out == ""
        lines = p.err.strip().splitlines()
        assert len(lines) == 1, (pos, p.err)
        assert lines[0].startswith("error: refusing '%s': " % bad), lines
        assert lines[0].endswith("; nothing was restored"), lines
    for cut in list(range(0, size, size // 15)) + [size - 1]:
        bad.write_bytes(good[:cut])
        p = restore(bad, url, rc=2)
        assert len(p.err.strip().splitlines()) == 1, (cut, p.err)
        assert "refusing" in p.err and "nothing was restored" in p.err
    bad.write_bytes(good + b"\0")
    p = restore(bad, url, rc=2)
    assert "data after the trailer" in p.err
    bad.write_bytes(good[:size - 60])
    assert "truncated" in restore(bad, url, rc=2).err
    # Redis was never written.
    assert redis.keys("*") == [b"canary"]


def test_newer_kept_unless_replace(sdir, tmp, redis, redis_server):
    url = redis_server.url()
    seed(sdir, redis, url, n=3)
    f = tmp / "b.sfbk"
    backup(url, f)
    t = time.time_ns()
    # Newer in Redis since the backup: a write, a logout (tombstone).
    redis.set(vkey("sess_p000"), b"newer", keepttl=True)
    redis.hset(mkey("sess_p000"), "mt", t + 10**9)
    redis.delete(vkey("sess_p001"))
    redis.hset(mkey("sess_p001"), mapping={"del": 1, "mt": t + 10**9})
    # Older in Redis than in the backup: restored.
    redis.set(vkey("sess_p002"), b"older", keepttl=True)
    redis.hset(mkey("sess_p002"), "mt", t - 10 * DAY_NS)
    r = restore(f, url)
    assert (r["restored"], r["tombstones"], r["skipped_newer"]) == (1, 0, 7)
    assert redis.get(vkey("sess_p000")) == b"newer"
    assert not redis.exists(vkey("sess_p001"))
    assert redis.get(vkey("sess_p002")).startswith(b'user|s:1:"2"')
    r = restore(f, url, "--replace")
    assert (r["restored"], r["tombstones"], r["skipped_newer"]) == (6, 2, 0)
    assert redis.get(vkey("sess_p000")).startswith(b'user|s:1:"0"')
    assert redis.get(vkey("sess_p001")).startswith(b'user|s:1:"1"')
    assert "del" not in {k.decode() for k in redis.hgetall(mkey("sess_p001"))}


def test_expired_since_backup_skipped(tmp, redis, redis_server):
    url = redis_server.url()
    t = time.time_ns()
    redis.set(vkey("sess_short"), b"soon gone", px=1200)
    redis.hset(mkey("sess_short"), mapping={"v": 1, "mt": t, "ct": t})
    redis.pexpire(mkey("sess_short"), 600 * 1000)
    redis.set(vkey("sess_long"), b"stays", px=600 * 1000)
    tombstone(redis, "sess_tomb", t, ttl_ms=1200)
    f = tmp / "b.sfbk"
    assert backup(url, f)["records"] == 3
    util.wait_for(lambda: not redis.exists(vkey("sess_short"))
                  and not redis.exists(mkey("sess_tomb")),
                  what="the short TTLs to run out")
    redis.flushall()
    r = restore(f, url)
    assert (r["restored"], r["tombstones"], r["skipped_expired"]) == (1, 0, 2)
    assert redis.keys(PREFIX + "*") == [vkey("sess_long").encode()]


def test_other_prefix(sdir, tmp, redis, redis_server):
    url = redis_server.url()
    seed(sdir, redis, url, n=2)
    f = tmp / "b.sfbk"
    backup(url, f)
    before = snapshot(redis)
    redis.flushall()
    p = restore(f, url, "--prefix", "app2:", rc=2)
    assert p.err.strip() == (
        "error: '%s' holds the sessions of prefix 'app1:', not 'app2:': "
        "pass --prefix 'app1:', and --to-prefix 'app2:' to restore them "
        "under another prefix" % f)
    assert redis.dbsize() == 0
    r = restore(f, url, "--to-prefix", "app2:")
    assert r["prefix"] == "app2:" and r["restored"] == 5
    for k, (t, v, _) in before.items():
        if t == "string":
            assert redis.get(k.replace(PREFIX, "app2:", 1)) == v
    assert redis.keys(PREFIX + "*") == []


def test_password_and_unix_url(sdir, tmp, redis, redis_server):
    seed(sdir, redis, redis_server.url(), n=2)
    before = snapshot(redis)
    f = tmp / "b.sfbk"
    pwfile = tmp / "pw"
    pwfile.write_text("s3cret\n")
    redis.config_set("requirepass", "s3cret")
    try:
        run("backup", "--prefix", PREFIX, redis_server.url(), f, rc=1)
        assert not f.exists()
        backup(redis_server.unix_url(), f, "--password-file", pwfile)
        authed = redis_py.Redis(unix_socket_path=str(redis_server.sock),
                                password="s3cret")
        authed.flushall()
        restore(f, redis_server.url(), "--password-file", pwfile)
        assert_same(before, snapshot(authed))
    finally:
        redis_py.Redis(unix_socket_path=str(redis_server.sock),
                       password="s3cret").config_set("requirepass", "")


# ---------------------------------------------------------------- cleanup

def cleanup(d, url, *opts, rc=0):
    p = run("cleanup", "--prefix", PREFIX, *opts, d, url, rc=rc)
    return p


def test_cleanup_removes_exactly_the_redundant_files(sdir, redis,
                                                     redis_server):
    url = redis_server.url()
    t = time.time_ns()
    old = t - 10 * DAY_NS
    same = ["sess_same", cachelib_name("same"), "sessionid" + "s" * 32]
    for n in same:
        data = (cachelib_bytes(int(time.time()) + 3600)
                if n == cachelib_name("same") else b"same " + n.encode())
        write(sdir, n, data, mtime_ns=old)
    write(sdir, "sess_newer", b"old bytes", mtime_ns=old)
    write(sdir, "sess_older", b"file is newer", mtime_ns=old)
    write(sdir, "sess_samemt", b"file bytes", mtime_ns=old)
    write(sdir, "sess_deleted", b"logged out", mtime_ns=old)
    write(sdir, "sess_lacks", b"not in redis", mtime_ns=old)
    write(sdir, "sess_recent", b"young", mtime_ns=t - 3600 * 10**9)
    write(sdir, "tmpabc_1234.__wz_cache", b"temp", mtime_ns=old)
    (sdir / "sub").mkdir()
    os.symlink("/etc/passwd", sdir / "sess_link")
    run("copy", "--no-progress", "--prefix", PREFIX, sdir, url)
    redis.delete(vkey("sess_lacks"), mkey("sess_lacks"))
    redis.set(vkey("sess_newer"), b"new bytes", keepttl=True)
    redis.hset(mkey("sess_newer"), "mt", old + 10**9)
    redis.hset(mkey("sess_older"), "mt", old - 10**9)
    redis.set(vkey("sess_samemt"), b"other bytes", keepttl=True)
    redis.delete(vkey("sess_deleted"))
    redis.hset(mkey("sess_deleted"), mapping={"del": 1, "mt": old})
    removable = sorted(same + ["sess_newer", "sess_deleted"])
    names = sorted(os.listdir(sdir))

    p = cleanup(sdir, url, "--older-than", "7d", rc=0)
    assert sorted(os.listdir(sdir)) == names  # dry run
    would = sorted(line.split("'")[1] for line in p.out.splitlines()
                   if line.startswith("would remove '"))
    assert would == removable
    assert "(dry run: pass --yes to remove)" in p.out
    # The recent file goes with a shorter age only.
    p = cleanup(sdir, url, "--older-than", "30m", "--json")
    assert json.loads(p.out)["removed"] == len(removable) + 1

    p = cleanup(sdir, url, "--older-than", "7d", "--yes", "--json")
    s = json.loads(p.out)
    assert (s["dry_run"], s["removed"], s["removed_deleted"], s["kept_absent"],
            s["kept_older"], s["kept_recent"], s["errors"]) == (
        False, 5, 1, 1, 2, 1, 0)
    assert sorted(os.listdir(sdir)) == sorted(set(names) - set(removable))
    # Redis is untouched by a cleanup.
    assert redis.get(vkey("sess_newer")) == b"new bytes"
    # Nothing left to do.
    p = cleanup(sdir, url, "--older-than", "7d", "--yes", "--json")
    assert json.loads(p.out)["removed"] == 0


pytestmark_fuse = util.fuse_test_marker()


@pytestmark_fuse
def test_cleanup_refuses_a_mount(mount, sessdir, redis_server):
    p = run("cleanup", "--older-than", "1d", "--yes", sessdir,
            redis_server.url(), rc=2)
    assert p.err.startswith("error: '%s' is a sessfs mount" % sessdir)
    assert len(p.err.strip().splitlines()) == 1
    # Its lower dir, reached through the daemon's bind, is refused too.
    st = os.fstat(mount.lower_fd)
    binds = [b for b in Path("/run/sessfs").glob("*/lower")
             if (b.stat().st_dev, b.stat().st_ino) == (st.st_dev, st.st_ino)]
    assert len(binds) == 1
    p = run("cleanup", "--older-than", "1d", "--yes", binds[0],
            redis_server.url(), rc=2)
    assert p.err.startswith("error: '%s' is the lower dir of a live sessfs "
                            "mount" % binds[0]), p.err


def test_least_privilege_user(sdir, tmp, redis, redis_server):
    """backup, restore and cleanup with the README's ACL user: no command
    they send is refused."""
    line = [ln.strip() for ln in open(util.SRC_DIR / "README.md")
            if ln.startswith("    ") and "ACL SETUSER" in ln]
    assert len(line) == 1 and "~%s*" % PREFIX in line[0].split()
    words = [">s3cret" if w == ">PASSWORD" else w for w in line[0].split()]
    seed(sdir, redis, redis_server.url(), n=3)
    redis.delete("other:sess_x")  # the user may not read it anyway
    before = snapshot(redis)
    pw = tmp / "pw"
    pw.write_text("s3cret\n")
    redis.execute_command(*words)
    user = words[2]
    url = "redis://%s@127.0.0.1:%d/0" % (user, redis_server.port)
    try:
        f = tmp / "b.sfbk"
        p = run("backup", "--prefix", PREFIX, "--password-file", pw, url, f,
                rc=0)
        assert p.err == ""
        redis.flushall()
        p = run("restore", "--password-file", pw, f, url, rc=0)
        assert p.err == ""
        assert_same(before, snapshot(redis))
        p = cleanup(sdir, url, "--older-than", "0s", "--yes",
                    "--password-file", pw)
        assert p.err == "" and "removed 5 of 5 entries" in p.out, p.out
    finally:
        redis.execute_command("ACL", "DELUSER", user)
