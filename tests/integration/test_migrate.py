# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs-migrate analyze, copy and verify on directories of real-format
sessions (PHP files, cachelib files with their expiry header and a protocol
5 pickle, Django files) against a real redis-server (conftest.py: one per
module on a free loopback port, flushed before each test).

What is checked against Redis is layout v1 (docs/DESIGN.md, "Data in
Redis"): value key = prefix + name with the exact bytes, meta key = prefix
+ "{" + value key + "}:m" with mt/ct (ns), uid, gid, mode, a value TTL of
the remaining life and a meta TTL of that + ttl.
"""

import hashlib
import json
import os
import pickle
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_py

import util
from util import BUILD_DIR, SLOW, WWW_GID, WWW_UID

MIGRATE = BUILD_DIR / "migrate" / "sessfs-migrate"
PREFIX = "sessfs:"
TTL = 32 * 24 * 3600
DAY_NS = 24 * 3600 * 10**9

pytestmark = pytest.mark.skipif(not MIGRATE.exists(),
                                reason="%s not built" % MIGRATE)


# ----------------------------------------------------------------- helpers

def run(*args, rc=None, timeout=120):
    """Runs sessfs-migrate; checks its exit status when 'rc' is given."""
    p = subprocess.run([str(MIGRATE)] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout * SLOW)
    p.out = p.stdout.decode()
    p.err = p.stderr.decode()
    if rc is not None:
        assert p.returncode == rc, "exit %d, not %d\nstdout: %s\nstderr: %s" % (
            p.returncode, rc, p.out, p.err)
    return p


def copy(d, url, *opts, rc=0):
    """copy with its JSON summary parsed; stderr kept in ["stderr"]."""
    p = run("copy", "--no-progress", *opts, d, url, rc=rc)
    summary = json.loads(p.out)
    summary["stderr"] = p.err
    return summary


def verify(d, url, *opts, rc=0):
    p = run("verify", "--no-progress", "--json", *opts, d, url, rc=rc)
    return json.loads(p.out)


def analyze(d, *args, rc=0):
    return json.loads(run("analyze", "--json", d, *args, rc=rc).out)


def now_ns():
    return time.time_ns()


def write(d, name, data, mtime_ns=None, owner=None, mode=0o600):
    p = Path(d) / name
    p.write_bytes(data)
    p.chmod(mode)
    if owner:
        os.chown(p, *owner)
    if mtime_ns is not None:
        os.utime(p, ns=(mtime_ns, mtime_ns))
    return p


def php(d, sid, body=None, **kw):
    body = body if body is not None else 'user|s:5:"alice";count|i:1;'
    return write(d, "sess_" + sid, body.encode(), **kw)


def cachelib_name(sid):
    return hashlib.md5(("session:" + sid).encode()).hexdigest()


def cachelib(d, sid, expiry, session=None, **kw):
    data = struct.pack("I", expiry) + pickle.dumps(
        session if session is not None else {"_permanent": True},
        protocol=5)
    return write(d, cachelib_name(sid), data, **kw)


def django(d, key, **kw):
    body = b'{"_auth_user_id":"1"}'  # the JSON the signer wraps
    return write(d, "sessionid" + key, body, **kw)


def vkey(name):
    return PREFIX + name


def mkey(name):
    return PREFIX + "{" + vkey(name) + "}:m"


def meta(redis, name):
    return {k.decode(): v.decode()
            for k, v in redis.hgetall(mkey(name)).items()}


def tombstone(redis, name, mtime_ns):
    """A deleted session as the mount leaves it: no value, a meta key with
    del=1 and the last mtime."""
    redis.hset(mkey(name), mapping={
        "v": 1, "mt": mtime_ns, "ct": mtime_ns, "uid": 0, "gid": 0,
        "mode": 0o600, "wv": 3, "host": "other-host", "del": 1,
        "hs": "%020d" % mtime_ns})
    redis.pexpire(mkey(name), TTL * 1000)


@pytest.fixture
def sdir(tmp):
    d = tmp / "sessions"
    d.mkdir()
    return d


def mixed_dir(d):
    """One of each kind, plus expired ones and host-local files."""
    t = now_ns()
    php(d, "a1", owner=(WWW_UID, WWW_GID), mtime_ns=t - 3600 * 10**9)
    php(d, "a2", mtime_ns=t - DAY_NS)
    php(d, "gone", mtime_ns=t - 40 * DAY_NS)  # past mtime + 32 days
    cachelib(d, "c1", int(time.time()) + 3600)
    cachelib(d, "c2", 0)  # never expires: the default ttl applies
    cachelib(d, "cx", int(time.time()) - 60)  # its header says expired
    django(d, "k" * 32)
    write(d, "notes.txt", b"other app")
    write(d, util.CACHELIB_COUNT, b"\0\0\0\0" + pickle.dumps(1, protocol=5))
    write(d, "tmpabc_1234.__wz_cache", b"partial")
    write(d, "sessionid" + "k" * 32 + "_out_abcdefgh", b"partial")
    write(d, ".sessfs-tmp.0123456789abcdef", b"the mount's own temp")


# ------------------------------------------------------------------- usage

def test_help_and_usage_errors():
    assert "analyze" in run("--help", rc=0).out
    for cmd in ("analyze", "copy", "verify"):
        p = run(cmd, "--help", rc=0)
        assert p.out.startswith("usage: sessfs-migrate " + cmd)
        assert "--prefix" in p.out and "--max-size" in p.out
        assert run("help", cmd, rc=0).out == p.out
    p = run("frobnicate", rc=2)
    assert p.err.strip() == (
        "error: unknown command 'frobnicate'; see 'sessfs-migrate --help'")
    run(rc=2)
    for args in (["copy", "/tmp"],
                 ["copy", "--ttl", "0", "/tmp", "redis://x"],
                 ["copy", "--layout", "odd", "/tmp", "redis://x"],
                 ["copy", "--prefix", "a{b", "/tmp", "redis://x"],
                 ["copy", "--max-size", "-1", "/tmp", "redis://x"],
                 ["copy", "--ttl-from", "header", "/tmp", "redis://x"],
                 ["verify", "--sample", "0", "/tmp", "redis://x"],
                 ["analyze", "--bogus", "/tmp"]):
        p = run(*args, rc=2)
        assert p.err.startswith("error: ") or "unrecognized" in p.err, p.err
        assert p.out == ""


def test_unusable_dir_and_redis(sdir, redis_server):
    p = run("analyze", sdir / "missing", rc=2)
    assert p.err.strip() == ("error: cannot open '%s': No such file or directory"
                             % (sdir / "missing"))
    php(sdir, "x")
    p = run("copy", sdir, "redis://127.0.0.1:%d" % util.free_port(), rc=1)
    assert "cannot connect to 'redis://127.0.0.1:" in p.err
    assert len(p.err.strip().splitlines()) == 1


def test_evicting_policy_refused(sdir, redis, redis_server):
    php(sdir, "x")
    redis.config_set("maxmemory-policy", "allkeys-lru")
    p = run("copy", sdir, redis_server.url(), rc=1)
    assert "allkeys-lru" in p.err
    assert redis.dbsize() == 0
    s = copy(sdir, redis_server.url(), "--allow-evicting-redis")
    assert s["copied"] == 1


def test_password_file(sdir, tmp, redis, redis_server):
    php(sdir, "x")
    pwfile = tmp / "redis.password"
    pwfile.write_text("s3cret\n")
    redis.config_set("requirepass", "s3cret")
    try:
        p = run("copy", "--no-progress", sdir, redis_server.url(), rc=1)
        assert "cannot connect to 'redis://127.0.0.1:" in p.err
        s = copy(sdir, redis_server.url(), "--password-file", pwfile)
        assert s["copied"] == 1
        verify(sdir, redis_server.url(), "--password-file", pwfile)
    finally:
        authed = redis_py.Redis(unix_socket_path=str(redis_server.sock),
                                password="s3cret")
        authed.config_set("requirepass", "")


# ----------------------------------------------------------------- analyze

def test_analyze_counts(sdir):
    mixed_dir(sdir)
    a = analyze(sdir)
    assert a["entries"] == 12
    assert a["kinds"] == {"php": 3, "cachelib": 3, "django": 1, "other": 1,
                          "invalid": 0, "local": 4}
    assert a["sessions"] == 8
    assert a["live"] == 6 and a["expired"] == 2
    assert all(v == 0 for v in a["refused"].values())
    assert sum(b["count"] for b in a["sizes"]) == 8
    assert a["sizes"][1] == {"range": "1-1K", "max": 1024, "count": 8}
    mt = os.stat(sdir / "sess_gone").st_mtime
    assert a["mtime"]["oldest"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(mt))
    assert 6 * 400 < a["redis_memory_estimate"] < 6 * 1500
    assert a["copy_estimate"] == {"measured": False,
                                  "reason": "no Redis URL given"}
    assert a["read_underneath_mount"] is False


def test_analyze_table_and_estimate(sdir, redis, redis_server):
    mixed_dir(sdir)
    p = run("analyze", sdir, rc=0)
    assert "sessions       8  (php 3, cachelib 3, django 1, other 1)" in p.out
    assert "copy time      not estimated: no Redis URL given" in p.out
    tombstone(redis, "sess_old", now_ns())
    a = analyze(sdir, redis_server.url())
    assert a["redis"] == {"policy_ok": True, "values": 0, "tombstones": 1}
    est = a["copy_estimate"]
    assert est["measured"] is True and est["sample"] == 6
    assert est["rate"] > 0 and est["seconds"] > 0
    # Nothing was written by analyze.
    assert redis.dbsize() == 1


def test_analyze_memory_estimate_close(sdir, redis, redis_server):
    for i in range(3000):
        php(sdir, "m%05d" % i, "x" * (100 + i % 3000))
    est = analyze(sdir)["redis_memory_estimate"]
    before = redis.info("memory")["used_memory"]
    copy(sdir, redis_server.url())
    used = redis.info("memory")["used_memory"] - before
    assert 0.7 * used < est < 1.3 * used, (est, used)


# ----------------------------------------------------------- copy + verify

def test_copy_then_verify(sdir, redis, redis_server):
    mixed_dir(sdir)
    s = copy(sdir, redis_server.url())
    assert (s["copied"], s["skipped_expired"], s["skipped_local"],
            s["invalid"], s["errors"]) == (6, 2, 4, 0, 0)
    assert s["complete"] is True and s["entries"] == 12
    # Value and meta keys of the six live sessions and the names index
    # (backend/store.h), nothing else; the index holds cachelib's two
    # entries only (DESIGN.md, "Names index").
    assert redis.dbsize() == 13
    assert sorted(redis.zrange("sessfs:{sessfs}:names", 0, -1)) == sorted(
        [vkey(cachelib_name(s)).encode() for s in ("c1", "c2")])
    now_ms = time.time() * 1000
    for name in ("sess_a1", "sess_a2", cachelib_name("c1"),
                 cachelib_name("c2"), "sessionid" + "k" * 32, "notes.txt"):
        st = os.stat(sdir / name)
        assert redis.get(vkey(name)) == (sdir / name).read_bytes()
        m = meta(redis, name)
        assert m["v"] == "1" and m["wv"] == "1" and "del" not in m
        assert int(m["mt"]) == st.st_mtime_ns
        assert int(m["ct"]) == st.st_ctime_ns
        assert (int(m["uid"]), int(m["gid"])) == (st.st_uid, st.st_gid)
        assert int(m["mode"]) == st.st_mode & 0o7777
        if name == cachelib_name("c1"):
            expect = (int.from_bytes((sdir / name).read_bytes()[:4],
                                     "little") * 1000 - now_ms)
        else:
            expect = st.st_mtime_ns / 1e6 + TTL * 1000 - now_ms
        pttl = redis.pttl(vkey(name))
        assert abs(pttl - expect) < 5000 * SLOW, name
        assert abs(redis.pttl(mkey(name)) - (pttl + TTL * 1000)) < 5000 * SLOW
    assert meta(redis, "sess_a1")["uid"] == str(WWW_UID)
    for name in ("sess_gone", cachelib_name("cx"), util.CACHELIB_COUNT,
                 "tmpabc_1234.__wz_cache"):
        assert not redis.exists(vkey(name))
    v = verify(sdir, redis_server.url())
    assert (v["checked"], v["same"], v["different"], v["errors"]) == (
        6, 6, 0, 0)
    assert v["differences"] == []


def test_copy_is_idempotent(sdir, redis, redis_server):
    mixed_dir(sdir)
    copy(sdir, redis_server.url())
    before = {k: redis.dump(k) for k in redis.keys("*")}
    s = copy(sdir, redis_server.url())
    assert (s["copied"], s["skipped_existing"]) == (0, 6)
    assert "6 sessions already present in Redis" in s["stderr"]
    after = {k: redis.dump(k) for k in redis.keys("*")}
    assert after == before


def test_options_prefix_ttl_layout(sdir, redis, redis_server):
    t = now_ns()
    php(sdir, "p1", mtime_ns=t - 3 * 3600 * 10**9)
    cachelib(sdir, "c1", int(time.time()) + 7200)
    write(sdir, "notes.txt", b"x")
    # A shorter ttl expires the 3-hour-old PHP session; ttl-from none
    # gives the cachelib file mtime + ttl.
    s = copy(sdir, redis_server.url(), "--prefix", "app1:", "--ttl", "3600",
             "--ttl-from", "none")
    assert (s["copied"], s["skipped_expired"]) == (2, 1)
    assert redis.pttl("app1:notes.txt") > 3500 * 1000
    assert redis.pttl("app1:" + cachelib_name("c1")) <= 3600 * 1000
    assert redis.exists("app1:{app1:notes.txt}:m")
    redis.flushall()
    # phpredis: sess_<sid> is stored as PHPREDIS_SESSION:<sid>; any other
    # name is refused, as the mount refuses it.
    s = copy(sdir, redis_server.url(), "--layout", "phpredis", rc=1)
    assert (s["copied"], s["invalid"]) == (1, 2)
    assert redis.get("PHPREDIS_SESSION:p1") == (sdir / "sess_p1").read_bytes()
    assert redis.exists("PHPREDIS_SESSION:{PHPREDIS_SESSION:p1}:m")
    assert "refusing 'notes.txt': not a PHP session name" in s["stderr"]
    verify(sdir, redis_server.url(), "--layout", "phpredis")


# ------------------------------------------- never undo a logout or a write

def test_tombstone_not_overwritten(sdir, redis, redis_server):
    t = now_ns() - 3600 * 10**9
    php(sdir, "loggedout", mtime_ns=t)
    php(sdir, "deleted_before", "new session", mtime_ns=t)
    php(sdir, "other")
    # Logged out through a mount since the file was written (same mtime
    # or later): the copy must not bring the session back.
    tombstone(redis, "sess_loggedout", t)
    # Deleted before the file was written: a new session under an old name.
    tombstone(redis, "sess_deleted_before", t - 10**9)
    s = copy(sdir, redis_server.url())
    assert (s["copied"], s["skipped_tombstone"]) == (2, 1)
    assert "1 sessions deleted in Redis since (tombstones)" in s["stderr"]
    assert not redis.exists(vkey("sess_loggedout"))
    assert meta(redis, "sess_loggedout")["del"] == "1"
    assert redis.get(vkey("sess_deleted_before")) == b"new session"
    v = verify(sdir, redis_server.url())
    assert (v["redis_deleted"], v["same"], v["different"]) == (1, 2, 0)


def test_newer_redis_value_not_regressed(sdir, redis, redis_server):
    t = now_ns() - 3600 * 10**9
    php(sdir, "newer", "old bytes", mtime_ns=t)
    php(sdir, "older", "new bytes", mtime_ns=t)
    copy(sdir, redis_server.url())
    # Another host wrote sess_newer after the file; sess_older's Redis
    # copy predates the file.
    redis.set(vkey("sess_newer"), b"written later", keepttl=True)
    redis.hset(mkey("sess_newer"), "mt", t + 10**9)
    redis.set(vkey("sess_older"), b"stale", keepttl=True)
    redis.hset(mkey("sess_older"), "mt", t - 10**9)
    s = copy(sdir, redis_server.url())
    assert (s["copied"], s["skipped_existing"]) == (1, 1)
    assert redis.get(vkey("sess_newer")) == b"written later"
    assert redis.get(vkey("sess_older")) == b"new bytes"
    v = verify(sdir, redis_server.url())
    assert (v["redis_newer"], v["same"], v["different"]) == (1, 1, 0)


def test_resume_after_kill9(sdir, redis, redis_server):
    n = 30000
    t = now_ns() - 3600 * 10**9
    for i in range(n):
        php(sdir, "r%06d" % i, "v%06d" % i, mtime_ns=t + i)
    # Newer writes of some sessions already in Redis (another host).
    newer = ["sess_r%06d" % i for i in range(0, n, 1000)]
    for name in newer:
        redis.set(vkey(name), b"newer")
        redis.hset(mkey(name), mapping={"v": 1, "mt": now_ns(), "ct": 0,
                                        "uid": 0, "gid": 0, "mode": 384,
                                        "wv": 7})
    proc = subprocess.Popen([str(MIGRATE), "copy", "--no-progress", "--jobs",
                             "1", str(sdir), redis_server.url()],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        util.wait_for(lambda: redis.dbsize() > 2 * len(newer) + n // 5, 60,
                      "the copy to be under way", interval=0.001)
        assert proc.poll() is None, "the copy ended before it was killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    partial = redis.dbsize()
    assert partial < 2 * n, "the copy was not killed midway"
    s = copy(sdir, redis_server.url())
    assert s["copied"] + s["skipped_existing"] == n
    assert s["skipped_existing"] >= len(newer) and s["copied"] > 0
    # PHP's names are never in the names index: no index key.
    assert redis.dbsize() == 2 * n
    for name in newer:
        assert redis.get(vkey(name)) == b"newer"
        assert meta(redis, name)["wv"] == "7"
    # Every session was written exactly once: its write version is 1.
    for i in range(1, n, 997):
        name = "sess_r%06d" % i
        assert redis.get(vkey(name)) == b"v%06d" % i
        assert meta(redis, name)["wv"] == "1"
    v = verify(sdir, redis_server.url())
    assert (v["same"], v["redis_newer"], v["different"]) == (
        n - len(newer), len(newer), 0)


def test_copy_races_the_app(sdir, redis, redis_server):
    """A copy while the app writes and deletes the same sessions in Redis
    (another host, layout v1, each change one transaction as the mount's
    scripts make it): whatever the app did, before, during or after the
    copy's check of a name, stays done; the copy overwrites no value the
    app wrote and brings back no session it deleted.  test_store.c races
    the copy's transaction deterministically (between its check and its
    write); this is the same against the real command, by load."""
    n = 20000
    t = now_ns() - 3600 * 10**9
    for i in range(n):
        php(sdir, "q%05d" % i, "copy %05d" % i, mtime_ns=t + i)
    app = redis_server.client()
    done = {}  # name -> "write" or "delete", in the order the app did it

    def act(name, kind):
        mt = now_ns()
        fields = {"v": 1, "mt": mt, "ct": mt, "uid": 0, "gid": 0,
                  "mode": 384, "host": "app-host", "hs": "%020d" % mt,
                  "wv": 9}
        pipe = app.pipeline(transaction=True)
        if kind == "write":
            pipe.set(vkey(name), b"app", px=TTL * 1000)
        else:
            pipe.delete(vkey(name))
            fields["del"] = 1
        pipe.hset(mkey(name), mapping=fields)
        pipe.pexpire(mkey(name), 2 * TTL * 1000)
        pipe.execute()
        done[name] = kind

    proc = subprocess.Popen([str(MIGRATE), "copy", "--no-progress",
                             str(sdir), redis_server.url()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The walk's order is unknown: the app takes every 7th name,
        # wrapping around, so its changes spread over the copy.
        i = 0
        while proc.poll() is None:
            name = "sess_q%05d" % ((i * 7) % n)
            if name not in done:
                act(name, "write" if i % 2 else "delete")
            i += 1
        during = len(done)
        out, err = proc.communicate(timeout=120 * SLOW)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    s = json.loads(out)
    assert s["copied"] + s["skipped_existing"] + s["skipped_tombstone"] == n
    assert during > 0, "the app changed nothing while the copy ran"
    for name, kind in done.items():
        if kind == "write":
            assert redis.get(vkey(name)) == b"app", name
        else:
            assert not redis.exists(vkey(name)), name
            assert meta(redis, name)["del"] == "1", name
    # Every other name is the copy's, written once.
    for i in range(0, n, 97):
        name = "sess_q%05d" % i
        if name not in done:
            assert redis.get(vkey(name)) == b"copy %05d" % i, name
            assert meta(redis, name)["wv"] == "1", name


# ---------------------------------------------------------------- bad input

def test_bad_input(sdir, redis, redis_server):
    t = now_ns()
    php(sdir, "good")
    php(sdir, "empty", "")
    bad_header = write(sdir, cachelib_name("bad"), b"garbage!", mtime_ns=t)
    write(sdir, "sess_big", b"x" * 2000)
    os.symlink("/etc/shadow", sdir / "sess_shadow")
    (sdir / "sess_dir").mkdir()
    php(sdir, "dir_inside", "not copied")
    for name in ("sess_{brace", "sess_brace}", "sess_new\nline"):
        write(sdir, name, b"x")
    os.mkfifo(sdir / "sess_fifo")
    url = redis_server.url()

    a = analyze(sdir, "--max-size", "1000", rc=1)
    assert a["refused"] == {"invalid_name": 3, "symlink": 1, "directory": 1,
                            "special": 1, "too_large": 1, "unstable": 0,
                            "read_error": 0}
    assert sorted(a["examples"]["invalid_name"]) == [
        "sess_brace}", "sess_new\\nline", "sess_{brace"]
    assert a["empty"] == 1 and a["bad_cachelib_header"] == 1

    s = copy(sdir, url, "--max-size", "1000", rc=1)
    assert (s["copied"], s["invalid"], s["errors"]) == (4, 7, 0)
    assert s["bad_cachelib_header"] == 1
    assert s["refused"] == {"invalid_name": 3, "symlink": 1, "directory": 1,
                            "special": 1, "too_large": 1}
    err = s["stderr"]
    for line in (
            "error: refusing 'sess_shadow': a symbolic link (never followed)",
            "error: refusing 'sess_dir': a subdirectory (sessions are flat files)",
            "error: refusing 'sess_fifo': not a regular file",
            "error: refusing 'sess_big': 2000 bytes, over --max-size 1000",
            "error: refusing 'sess_{brace': invalid name (holds '{', '}' or a newline)",
            "error: refusing 'sess_new\\nline': invalid name (holds '{', '}' or a newline)",
            "warning: '%s': no valid cachelib expiry header, its TTL comes from its mtime"
            % bad_header.name):
        assert line in err.splitlines(), line
    # The good ones are there, with exact bytes; the bad ones are not.
    assert redis.get(vkey("sess_good")) == (sdir / "sess_good").read_bytes()
    assert redis.get(vkey("sess_empty")) == b""
    assert redis.get(vkey(bad_header.name)) == b"garbage!"
    expect = t / 1e6 + TTL * 1000 - time.time() * 1000
    assert abs(redis.pttl(vkey(bad_header.name)) - expect) < 5000 * SLOW
    names = {k.decode() for k in redis.keys(PREFIX + "*") if b"{" not in k}
    assert names == {vkey(n) for n in ("sess_good", "sess_empty",
                                       bad_header.name, "sess_dir_inside")}
    shadow = open("/etc/shadow", "rb").read()
    assert all(redis.get(k) != shadow for k in redis.keys("*")
               if redis.type(k) == b"string")
    v = verify(sdir, url, "--max-size", "1000")
    assert (v["same"], v["refused"], v["different"]) == (4, 7, 0)


# ------------------------------------------------------------------- verify

def test_verify_reports_differences(sdir, redis, redis_server):
    for i in range(5):
        php(sdir, "v%d" % i, "data %d" % i)
    url = redis_server.url()
    copy(sdir, url)
    redis.set(vkey("sess_v1"), b"tampered", keepttl=True)
    redis.delete(vkey("sess_v2"), mkey("sess_v2"))
    redis.hset(mkey("sess_v3"), "mode", 0o644)
    redis.pexpire(vkey("sess_v4"), 60 * 1000)
    v = verify(sdir, url, rc=1)
    assert (v["checked"], v["same"], v["different"]) == (5, 1, 4)
    diffs = {d["name"]: d["difference"] for d in v["differences"]}
    assert diffs["sess_v1"] == "value differs (8 bytes in Redis, 6 in the file)"
    assert diffs["sess_v2"] == "missing in Redis"
    assert diffs["sess_v3"] == "mode 0644 in Redis, 0600 in the file"
    assert diffs["sess_v4"].startswith("TTL 59 s in Redis") or \
        diffs["sess_v4"].startswith("TTL 60 s in Redis")
    # The table form lists the same, one line each.
    p = run("verify", "--no-progress", sdir, url, rc=1)
    assert "'sess_v2': missing in Redis" in p.out.splitlines()
    assert "4 different" in p.out
    # A rewritten file is compared with its new bytes: copy brings it over.
    php(sdir, "v1", "rewritten")
    redis.delete(vkey("sess_v2"))
    copy(sdir, url)
    v = verify(sdir, url, rc=1)
    assert {d["name"] for d in v["differences"]} == {"sess_v3", "sess_v4"}


def test_verify_sample(sdir, redis, redis_server):
    for i in range(400):
        php(sdir, "s%03d" % i)
    copy(sdir, redis_server.url())
    v = verify(sdir, redis_server.url(), "--sample", "10")
    assert v["checked"] + v["not_sampled"] == 400
    assert 5 < v["checked"] < 120 and v["different"] == 0


# ----------------------------------------------------------- mounted dirs

@util.fuse_test_marker()
@pytest.mark.skipif(not util.SESSFS.exists(), reason="sessfs not built")
def test_mounted_dir_read_underneath(sessdir, mount, redis, redis_server):
    """A sessfs mount over the directory: root reads the files underneath
    in a private mount namespace; anyone else gets a clear refusal."""
    for i in range(3):
        fd = os.open("sess_low%d" % i, os.O_WRONLY | os.O_CREAT, 0o600,
                     dir_fd=mount.lower_fd)
        os.write(fd, b"x")
        os.close(fd)
    a = analyze(sessdir)
    assert a["read_underneath_mount"] is True
    assert a["kinds"]["php"] == 3
    assert util.is_mounted(sessdir), "the mount must stay for everyone else"

    def as_www():
        p = subprocess.run([str(MIGRATE), "analyze", str(sessdir)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.returncode, p.stderr.decode()
    rc, err = util.run_as(WWW_UID, WWW_GID, as_www)
    assert rc == 2
    assert "is a sessfs mount" in err and "run as root, or unmount it first" in err
    # A dead mount (daemon killed) answers ENOTCONN; underneath is intact.
    mount.kill9()
    a = analyze(sessdir)
    assert a["read_underneath_mount"] is True and a["kinds"]["php"] == 3
