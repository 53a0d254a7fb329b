# SPDX-License-Identifier: GPL-2.0-or-later
"""The command line: help, version, every refused option and URL (a
one-line error naming it, exit 1, nothing mounted), Redis checks done before
mounting (auth, evicting maxmemory-policy, unreachable), and mounting through
mount(8) with fstab words."""

import filecmp
import os
import re
import shutil
import subprocess
import time

import pytest

import util
from util import SLOW, assert_refused, is_mounted, mounted, run_sessfs

pytestmark = util.fuse_test_marker()


def test_help():
    res = run_sessfs(["--help"])
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "REDIS_URL" in out and "MOUNTPOINT" in out
    for opt in ("mode=", "prefix=", "layout=", "ttl=", "ttl_from=",
                "max_size=", "redis_timeout=", "state_dir=",
                "password_file=", "host_id=", "allow_evicting_redis",
                "allow_other"):
        assert opt in out, "--help does not mention %s" % opt
    assert run_sessfs(["-h"]).stdout == res.stdout


def test_version():
    res = run_sessfs(["--version"])
    assert res.returncode == 0, res.stderr
    assert re.search(r"\bsessfs \d+\.\d+\.\d+", res.stdout), res.stdout
    assert run_sessfs(["-V"]).stdout == res.stdout


BAD_OPTIONS = [
    pytest.param("mode=bogus", ["bogus"], id="mode=bogus"),
    pytest.param("layout=xml", ["xml"], id="layout=xml"),
    pytest.param("prefix=a{b", ["a{b"], id="prefix-brace-open"),
    pytest.param("prefix=a}b", ["a}b"], id="prefix-brace-close"),
    pytest.param("ttl=0", ["ttl", "0"], id="ttl=0"),
    pytest.param("ttl=-5", ["ttl", "-5"], id="ttl=-5"),
    pytest.param("ttl=1.5", ["ttl", "1.5"], id="ttl=1.5"),
    pytest.param("ttl=abc", ["ttl", "abc"], id="ttl=abc"),
    pytest.param("ttl_from=header", ["header"], id="ttl_from=header"),
    pytest.param("cache=lru", ["cache", "lru"], id="cache=lru"),
    pytest.param("max_size=lots", ["max_size", "lots"], id="max_size=lots"),
    pytest.param("max_size=0", ["max_size"], id="max_size=0"),
    pytest.param("redis_timeout=0", ["redis_timeout"], id="redis_timeout=0"),
    pytest.param("redis_timeout=x", ["redis_timeout", "x"],
                 id="redis_timeout=x"),
    pytest.param("state_dir=relative/dir", ["relative/dir"],
                 id="state_dir-relative"),
    pytest.param("no_such_option", ["no_such_option"], id="unknown-option"),
    pytest.param("password_file=/nonexistent/pw", ["/nonexistent/pw"],
                 id="password_file-missing"),
]


@pytest.mark.parametrize("opt,words", BAD_OPTIONS)
def test_bad_option(opt, words, redis, redis_server, sessdir):
    res = run_sessfs([redis_server.url(), str(sessdir), "-f", "-o", opt])
    assert_refused(res, sessdir, *words)


def test_bad_option_without_foreground(redis, redis_server, sessdir):
    """Without -f the error comes before detaching: exit 1, one line."""
    res = run_sessfs([redis_server.url(), str(sessdir), "-o", "ttl=never"])
    assert_refused(res, sessdir, "never")


BAD_URLS = [
    pytest.param("http://127.0.0.1:6379", "http", id="scheme-http"),
    pytest.param("redis://127.0.0.1:70000", "70000", id="port-too-big"),
    pytest.param("redis://127.0.0.1:65x", "65x", id="port-not-number"),
    pytest.param("redis://127.0.0.1:6379/abc", "abc", id="db-not-number"),
    pytest.param("redis://", None, id="no-host"),
    pytest.param("unix://relative.sock", "relative.sock", id="unix-relative"),
    pytest.param("unix:///tmp/r.sock?db=x", "x", id="unix-db-not-number"),
    pytest.param("garbage", None, id="no-scheme"),
    pytest.param("redis://:hunter2@127.0.0.1:99999", "99999",
                 id="password-not-echoed"),
]


@pytest.mark.parametrize("url,word", BAD_URLS)
def test_bad_url(url, word, sessdir):
    res = run_sessfs([url, str(sessdir), "-f"])
    err = assert_refused(res, sessdir)
    assert "url" in err.lower(), err
    if word is not None:
        assert word in err, err
    assert "hunter2" not in err, err


def test_missing_arguments(sessdir):
    assert_refused(run_sessfs([]), sessdir)
    assert_refused(run_sessfs(["redis://127.0.0.1"]), sessdir)


def test_extra_argument(redis, redis_server, sessdir):
    res = run_sessfs([redis_server.url(), str(sessdir), "surplus", "-f"])
    assert_refused(res, sessdir, "surplus")


def test_unreachable_redis(sessdir):
    port = util.free_port()  # nothing listens there
    url = "redis://127.0.0.1:%d" % port
    t0 = time.monotonic()
    res = run_sessfs([url, str(sessdir), "-f", "-o", "redis_timeout=2"])
    assert_refused(res, sessdir, str(port))
    assert time.monotonic() - t0 < 10 * SLOW


def test_unreachable_unix_socket(tmp, sessdir):
    sock = tmp / "nothing.sock"
    res = run_sessfs(["unix://%s" % sock, str(sessdir), "-f"])
    assert_refused(res, sessdir, str(sock))


def test_hung_redis_times_out(redis, redis_server, sessdir):
    """A Redis that accepts but never answers: refused after redis_timeout,
    not a hang."""
    redis_server.sigstop()
    try:
        t0 = time.monotonic()
        res = run_sessfs([redis_server.url(), str(sessdir), "-f",
                          "-o", "redis_timeout=1"], timeout=30)
        took = time.monotonic() - t0
    finally:
        redis_server.sigcont()
    assert_refused(res, sessdir)
    assert took < 8 * SLOW, "took %.1fs with redis_timeout=1" % took


def test_mountpoint_not_a_directory(redis, redis_server, tmp):
    f = tmp / "plainfile"
    f.write_bytes(b"x")
    res = run_sessfs([redis_server.url(), str(f), "-f"])
    assert_refused(res, f, str(f))
    assert "directory" in res.stderr


def test_mountpoint_missing(redis, redis_server, tmp):
    missing = tmp / "missing"
    res = run_sessfs([redis_server.url(), str(missing), "-f"])
    assert_refused(res, tmp, str(missing))
    assert not missing.exists()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl",
                                    "allkeys-random", "volatile-lfu"])
def test_evicting_policy_refused(policy, redis, redis_server, sessdir):
    redis.config_set("maxmemory-policy", policy)
    res = run_sessfs([redis_server.url(), str(sessdir), "-f"])
    assert_refused(res, sessdir, policy)


def test_evicting_policy_allowed(redis, redis_server, sessdir, checker):
    redis.config_set("maxmemory-policy", "allkeys-lru")
    checker.register_output(r"allkeys-lru|evict")
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["allow_evicting_redis"]) as m:
        util.write_file(m.path("sess_evict"), b"a|i:1;")
        assert redis.get(util.value_key("sessfs:", "sess_evict")) == b"a|i:1;"


def test_noeviction_accepted(redis, redis_server, sessdir, checker):
    redis.config_set("maxmemory-policy", "noeviction")
    with mounted(redis_server.url(), sessdir, checker) as m:
        assert os.listdir(m.mnt) == []


@pytest.fixture
def auth_server():
    with util.own_redis_server("a", password="s3cret-pw0rd") as server:
        yield server


def _mounts_text():
    with open("/proc/self/mounts") as f:
        return f.read()


def test_password_file(auth_server, tmp, sessdir, checker):
    pw = tmp / "pw"
    pw.write_text("s3cret-pw0rd\n")
    pw.chmod(0o600)
    r = auth_server.client()
    with mounted(auth_server.url(), sessdir, checker,
                 opts=["password_file=%s" % pw]) as m:
        util.write_file(m.path("sess_pw"), b"x|i:1;")
        assert r.get(b"sessfs:sess_pw") == b"x|i:1;"
        line = util.mount_line(sessdir)
        assert line is not None and "fuse.sessfs" in line, line
        assert "127.0.0.1:%d" % auth_server.port in line, line
        assert "s3cret" not in _mounts_text()
        assert b"s3cret" not in open("/proc/%d/cmdline" % m.proc.pid,
                                     "rb").read()


def test_password_in_url_not_shown(auth_server, sessdir, checker):
    url = auth_server.url(password="s3cret-pw0rd")
    with mounted(url, sessdir, checker) as m:
        util.write_file(m.path("sess_pw"), b"x|i:2;")
        assert auth_server.client().get(b"sessfs:sess_pw") == b"x|i:2;"
        assert "s3cret" not in _mounts_text()


def test_acl_user_in_url(auth_server, sessdir, checker):
    r = auth_server.client()
    r.execute_command("ACL", "SETUSER", "webapp", "on", ">webapp-pw",
                      "~sessfs:*", "+@all")
    url = "redis://webapp:webapp-pw@127.0.0.1:%d" % auth_server.port
    with mounted(url, sessdir, checker) as m:
        util.write_file(m.path("sess_acl"), b"a|i:3;")
        assert r.get(b"sessfs:sess_acl") == b"a|i:3;"
        line = util.mount_line(sessdir)
        assert "webapp-pw" not in line, line


@pytest.mark.parametrize("how", ["none", "wrong-file", "wrong-url"])
def test_bad_password_refused(how, auth_server, tmp, sessdir):
    url = auth_server.url()
    args = []
    if how == "wrong-file":
        (tmp / "pw").write_text("not-the-password\n")
        args = ["-o", "password_file=%s" % (tmp / "pw")]
    elif how == "wrong-url":
        url = auth_server.url(password="not-the-password")
    res = run_sessfs([url, str(sessdir), "-f"] + args)
    err = assert_refused(res, sessdir)
    assert re.search(r"auth|password|WRONGPASS", err, re.I), err
    assert "not-the-password" not in err


def test_unix_socket_url_and_db(redis, redis_server, sessdir, checker):
    with mounted(redis_server.unix_url(db=3), sessdir, checker) as m:
        util.write_file(m.path("sess_db3"), b"d|i:3;")
        assert redis_server.client(db=3).get(b"sessfs:sess_db3") == b"d|i:3;"
        assert redis.get(b"sessfs:sess_db3") is None


@pytest.mark.parametrize("opt", ["redis_timeout=0.5", "ttl=60", "max_size=1",
                                 "ttl_from=none", "ttl_from=cachelib",
                                 "layout=plain", "mode=redis-only",
                                 "host_id=web-1", "debug", "cache=off",
                                 "cache=tracking"])
def test_good_option_mounts(opt, redis, redis_server, sessdir, checker):
    checker.register_output(r"^sessfs: debug: ")  # -o debug traces requests
    with mounted(redis_server.url(), sessdir, checker, opts=[opt]) as m:
        assert os.listdir(m.mnt) == []


def test_fstab_words_ignored(redis, redis_server, sessdir, checker):
    opts = ["_netdev", "noauto", "auto", "defaults", "user", "nouser",
            "users", "allow_other", "prefix=fstab:"]
    with mounted(redis_server.url(), sessdir, checker, opts=opts) as m:
        util.write_file(m.path("sess_f"), b"f|i:1;")
        assert redis.get(b"fstab:sess_f") == b"f|i:1;"


def test_detaches_after_mounting(redis, redis_server, sessdir, tmp):
    """Without -f: exit 0 once the mount is up; the daemon ends itself at
    unmount."""
    cmd = util.sessfs_cmd(redis_server.url(), sessdir,
                          ["state_dir=%s" % (tmp / "state")],
                          foreground=False)
    try:
        # Output to a file, not a pipe: the detached daemon (and valgrind's
        # own descriptor) may keep a pipe open after the parent exited.
        with open(tmp / "detach.log", "w+") as out:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT,
                                timeout=30 * SLOW).returncode
            out.seek(0)
            assert rc == 0, out.read()
        assert is_mounted(sessdir), "not mounted when sessfs returned"
        util.write_file(sessdir / "sess_d", b"d|i:1;")
        assert redis.get(b"sessfs:sess_d") == b"d|i:1;"
        pids = daemon_pids(sessdir)
        assert len(pids) == 1, pids
    finally:
        util.unmount_all(sessdir)
    wait_daemons_gone(sessdir)


def daemon_pids(mnt):
    """PIDs of sessfs processes whose command line names 'mnt'."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
        except OSError:
            continue
        if any(a == b"sessfs" or a.endswith(b"/sessfs") for a in argv) and \
                str(mnt).encode() in argv:
            pids.append(int(d))
    return pids


def wait_daemons_gone(mnt):
    """A detached daemon must exit by itself after the unmount; if it does
    not, end it (by its PID) and fail."""
    try:
        util.wait_for(lambda: not daemon_pids(mnt), 10,
                      "the detached sessfs to exit after the unmount")
    except AssertionError:
        for pid in daemon_pids(mnt):
            os.kill(pid, 9)
        raise


MOUNT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# The PATH mount(8) gives its helpers (seen in /proc/PID/environ).
MOUNT_STD_PATH = "/usr/local/sbin:/usr/local/bin:" + MOUNT_PATH


def helper_env():
    """/sbin/mount.fuse3 runs 'sessfs' from PATH: the build dir first."""
    env = dict(os.environ)
    env["PATH"] = "%s:%s" % (util.SESSFS.parent, MOUNT_PATH)
    return env


def mount_via(cmd, sessdir, redis, prefix):
    """Mounts with 'cmd' (mount(8) or its helper), checks the mount, the
    owner of a file made by www-data, that the daemon detached, and that it
    ends by itself at the unmount."""
    try:
        res = util.run(cmd, env=helper_env(), timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr
        line = util.mount_line(sessdir)
        assert line is not None and line.split()[2] == "fuse.sessfs", line
        assert "_netdev" not in line and "noauto" not in line, line
        util.as_www(util.write_file, sessdir / "sess_m", b"m|i:1;")
        assert redis.get(prefix.encode() + b"sess_m") == b"m|i:1;"
        assert os.stat(sessdir / "sess_m").st_uid == util.WWW_UID
        assert len(daemon_pids(sessdir)) == 1
    finally:
        util.unmount_all(sessdir)
    wait_daemons_gone(sessdir)


def test_mount_fuse3_helper(redis, redis_server, sessdir, tmp):
    """What mount -t fuse.sessfs runs: /sbin/mount.fuse3 SOURCE MNT -o
    rw,OPTS -t fuse.sessfs, with fstab words the helper or sessfs drop."""
    opts = "rw,_netdev,noauto,nofail,defaults,allow_other,prefix=mnt:," \
        "state_dir=%s" % (tmp / "state")
    mount_via(["/sbin/mount.fuse3", redis_server.url(), str(sessdir), "-o",
               opts, "-t", "fuse.sessfs"], sessdir, redis, "mnt:")


def test_mount_t_fuse_sessfs(redis, redis_server, sessdir, tmp):
    """mount(8) itself.  It resets PATH for its helpers, so this needs the
    binary under test installed in the standard PATH: scripts/setup.sh
    installs the build it tests, byte for byte."""
    found = shutil.which("sessfs", path=MOUNT_STD_PATH)
    if not found or not filecmp.cmp(found, util.SESSFS, shallow=False):
        pytest.skip("mount(8) runs sessfs from %s, where the binary under "
                    "test is not installed" % MOUNT_STD_PATH)
    opts = "_netdev,noauto,allow_other,prefix=mnt:,state_dir=%s" % (
        tmp / "state")
    mount_via(["mount", "-t", "fuse.sessfs", redis_server.url(),
               str(sessdir), "-o", opts], sessdir, redis, "mnt:")


def test_mount_helper_bad_option_fails(redis, redis_server, sessdir):
    try:
        res = util.run(["/sbin/mount.fuse3", redis_server.url(), str(sessdir),
                        "-o", "rw,_netdev,ttl=soon", "-t", "fuse.sessfs"],
                       env=helper_env(), timeout=30)
        assert res.returncode != 0
        assert "soon" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not is_mounted(sessdir)
    finally:
        util.unmount_all(sessdir)
