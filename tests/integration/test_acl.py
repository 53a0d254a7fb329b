# SPDX-License-Identifier: GPL-2.0-or-later
"""A least-privilege Redis user (README, "A Redis user for sessfs"): the
ACL SETUSER line is read from README.md (and must be the same in
docs/RUNBOOK.md), so the docs cannot drift from what is tested.  Under
that user a mount works in every mode, with and without cache=tracking
(writes, reads, renames, unlinks, chmod, listings, cachelib's count and
names index, mode changes with their probes and fleet markers), and
sessfs-migrate analyze, copy, verify, export and status work; keys
outside the prefix stay out of reach; a user missing one command gets
one line naming it (once, not per request); the eviction check names
INFO and CONFIG GET.  A password given in the URL reaches neither argv
(of sessfs or sessfs-migrate), /proc/mounts, the log nor status."""

import json
import os
import pickle
import re
import shlex
import subprocess

import pytest
import redis as redis_py

import util
from modeutil import ModeMount
from util import (CACHELIB_COUNT, errno_name, php_read, php_write,
                  read_file, wait_for, write_file)

pytestmark = util.fuse_test_marker()

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
ADMIN_PASSWORD = "acl-admin-pw"
PASSWORD = "acl-s3cret-user-pw"
USER = "sessfs"
PREFIX = "app1:"
MODES = ("files", "dual-write", "redis-first", "redis-only")
# A cachelib entry (md5 hex): its writes keep the names index.
CACHELIB_NAME = "0123456789abcdef0123456789abcdef"
DENIED = r"the redis user may not run"


def doc_line(path):
    """The one 'ACL SETUSER' line of an indented code block of 'path'."""
    lines = [line.strip() for line in open(path)
             if line.startswith("    ") and "ACL SETUSER" in line]
    assert len(lines) == 1, "%s: ACL SETUSER lines %s" % (path, lines)
    return lines[0]


ACL_LINE = doc_line(util.SRC_DIR / "README.md")


def test_docs_agree():
    assert doc_line(util.SRC_DIR / "docs" / "RUNBOOK.md") == ACL_LINE
    words = ACL_LINE.split()
    assert words[:4] == ["ACL", "SETUSER", USER, "reset"]
    assert "~%s*" % PREFIX in words and ">PASSWORD" in words
    # Only the prefix, one channel, no category, nothing for all keys.
    assert [w for w in words if w[0] in "~%&"] == [
        "~%s*" % PREFIX, "&__redis__:invalidate"]
    assert not [w for w in words if w.startswith(("+@", "allkeys",
                                                  "allchannels", "allcom"))]


def acl_tokens(drop=()):
    words = shlex.split(ACL_LINE)
    for d in drop:
        assert d in words, "%s is not in the documented line" % d
    return [">" + PASSWORD if w == ">PASSWORD" else w
            for w in words if w not in drop]


@pytest.fixture(scope="module")
def acl_server():
    with util.own_redis_server("a", password=ADMIN_PASSWORD) as server:
        yield server


@pytest.fixture
def admin(acl_server, request):
    """The admin's client (default user, unix socket); the documented user
    set up afresh."""
    r = acl_server.client()
    r.flushall()
    r.execute_command(*acl_tokens())
    yield r
    r.execute_command("ACL", "DELUSER", USER)
    if util.test_failed(request):
        acl_server.dump_log()


def set_user(admin, drop):
    admin.execute_command(*acl_tokens(drop))


@pytest.fixture
def pwfile(tmp):
    p = tmp / "redis.password"
    p.write_text(PASSWORD + "\n")
    p.chmod(0o600)
    return p


def user_url(server, password=None, db=0):
    auth = "%s:%s" % (USER, password) if password else USER
    return "redis://%s@127.0.0.1:%d/%d" % (auth, server.port, db)


def user_client(server):
    return redis_py.Redis(host="127.0.0.1", port=server.port, username=USER,
                          password=PASSWORD, socket_timeout=10)


migrate = util.migrate


def daemon_lines(checker):
    """What the daemon wrote (not the test's notes: its command line)."""
    return "\n".join(line for line in checker.text().splitlines()
                     if not line.startswith(checker.NOTE))


def denials(checker):
    return [line for line in daemon_lines(checker).splitlines()
            if DENIED in line]


def mount_opts(pwfile, cache="off", extra=()):
    return ["prefix=" + PREFIX, "password_file=%s" % pwfile,
            "cache=" + cache] + list(extra)


# ------------------------------------------------------ the documented user

def exercise(m, mode, admin):
    """Everything an app does to its sessions, through the mount."""
    a, b = m.path("sess_a"), m.path("sess_b")
    php_write(a, b"a|i:1;")
    assert php_read(a) == b"a|i:1;"
    php_write(a, b"a|i:2;")
    # cachelib's save: its count file, a temp renamed onto an entry; the
    # count read through the names index (ZCOUNT) in the Redis modes.
    count = m.path(CACHELIB_COUNT)
    write_file(count, b"\0\0\0\0" + pickle.dumps(0, protocol=5))
    tmpf = m.path("tmpabcd1234.__wz_cache")
    write_file(tmpf, b"\x00\x00\x00\x00\x80payload")
    os.rename(tmpf, m.path(CACHELIB_NAME))
    os.chmod(m.path(CACHELIB_NAME), 0o600)
    assert read_file(m.path(CACHELIB_NAME)) == b"\x00\x00\x00\x00\x80payload"
    assert pickle.loads(read_file(count)[4:]) == 1
    write_file(b, b"b|i:1;")
    os.chmod(b, 0o640)
    os.utime(b, (1_700_000_000, 1_700_000_000))
    os.unlink(b)
    assert not os.path.exists(b)
    names = set(os.listdir(m.mnt))
    assert {"sess_a", CACHELIB_NAME} <= names and "sess_b" not in names
    if mode != "files":
        assert admin.get(PREFIX + "sess_a") == b"a|i:2;"
        assert admin.exists("%s{%ssess_b}:m" % (PREFIX, PREFIX))
    if mode in ("redis-first", "redis-only"):
        assert admin.zcard(PREFIX + "{sessfs}:names") == 1
        # Another host's write is read through the mount.
        admin.set(PREFIX + "sess_c", b"c|i:3;")
        assert php_read(m.path("sess_c")) == b"c|i:3;"


@pytest.mark.parametrize("cache", ["off", "tracking"])
@pytest.mark.parametrize("mode", MODES)
def test_mount_every_mode(mode, cache, acl_server, admin, pwfile, tmp,
                          sessdir, checker):
    """The documented line is enough in every mode: no NOPERM, no
    warning at all (the checker fails the test on any)."""
    mm = ModeMount(tmp, acl_server, checker)
    with mm.mounted(sessdir, mode, mount_opts(pwfile, cache),
                    url=user_url(acl_server)) as m:
        if cache == "tracking":
            wait_for(lambda: mm.status()["cache"].get("up"), 10,
                     "the tracker to subscribe")
        exercise(m, mode, admin)
        st = mm.status()
        assert st["redis_up"] and st["recent"]["errors"] == 0, st
        if cache == "tracking":
            assert not st["cache"].get("refused"), st["cache"]
    assert not denials(checker)


def test_migrate_and_mode_changes(acl_server, admin, pwfile, tmp, sessdir,
                                  checker):
    """sessfs-migrate analyze, copy, verify and export under the user,
    then a mount taken from dual-write to redis-only (verify --mount,
    mode, export --mount, status: the fleet markers and probes).  In
    database 1: SELECT is granted too."""
    url, auth = user_url(acl_server, db=1), ["--password-file", pwfile,
                                             "--prefix", PREFIX]
    admin = acl_server.client(db=1)
    for i in range(5):
        write_file(sessdir / ("sess_m%d" % i), b"m|i:%d;" % i)
    p = migrate("analyze", "--json", *auth, sessdir, url)
    assert json.loads(p.stdout)["sessions"] == 5, p.stdout
    assert not p.stderr.strip(), p.stderr
    scripts = admin.info("commandstats").get("cmdstat_evalsha", {})
    p = migrate("copy", "--no-progress", *auth, sessdir, url)
    assert json.loads(p.stdout)["copied"] == 5, p.stdout
    # The documented user may run the copy's transactions: no script.
    stats = admin.info("commandstats")
    assert stats["cmdstat_exec"]["calls"] >= 1, stats
    assert stats.get("cmdstat_evalsha", {}) == scripts, stats
    migrate("verify", "--no-progress", *auth, sessdir, url)
    out = tmp / "export"
    out.mkdir()
    migrate("export", "--no-progress", *auth, url, out)
    assert sorted(os.listdir(out)) == ["sess_m%d" % i for i in range(5)]

    mm = ModeMount(tmp, acl_server, checker)
    online = ["--mount", sessdir, "--ctl-dir", mm.ctl_dir]
    with mm.mounted(sessdir, "dual-write", mount_opts(pwfile, "tracking"),
                    url=url) as m:
        php_write(m.path("sess_m0"), b"m|i:10;")
        migrate("verify", *online)
        migrate("mode", "redis-first", *online)
        assert admin.exists(PREFIX + "{sessfs}:verified")
        php_write(m.path("sess_m1"), b"m|i:11;")
        migrate("export", *online)
        migrate("mode", "redis-only", *online)
        p = migrate("status", "--json", *online)
        st = json.loads(p.stdout)
        assert st["mode"] == "redis-only", st
        assert admin.get(PREFIX + "sess_m1") == b"m|i:11;"
    assert not denials(checker)


def test_keys_outside_prefix(acl_server, admin):
    """The user reaches its prefix only: no other key, channel, database
    or admin command."""
    admin.set("other:x", b"secret")
    u = user_client(acl_server)
    u.set(PREFIX + "mine", b"1")
    assert u.get(PREFIX + "mine") == b"1"
    refused = [
        lambda: u.get("other:x"),
        lambda: u.set("other:y", b"1"),
        lambda: u.delete("other:x"),
        lambda: u.eval("return redis.call('GET', KEYS[1])", 1, "other:x"),
        lambda: u.eval("return redis.call('GET', 'other:x')", 0),
        lambda: u.execute_command("PUBLISH", "chan", "x"),
        lambda: u.execute_command("FLUSHALL"),
        lambda: u.execute_command("KEYS", "*"),
        lambda: u.execute_command("CONFIG", "GET", "requirepass"),
        lambda: u.execute_command("SCRIPT", "FLUSH"),
        lambda: u.execute_command("CLIENT", "KILL", "TYPE", "normal"),
    ]
    for i, fn in enumerate(refused):
        with pytest.raises(redis_py.exceptions.ResponseError) as e:
            fn()
        # redis-py turns NOPERM into NoPermissionError.
        assert isinstance(e.value, redis_py.exceptions.NoPermissionError) \
            or "can't" in str(e.value), (i, e.value)
    assert admin.get("other:x") == b"secret"
    assert not admin.exists("other:y")


def test_mount_outside_prefix(acl_server, admin, pwfile, tmp, sessdir,
                              checker):
    """A mount whose prefix the user may not touch: writes fail, and the
    log says why, once."""
    checker.register_output(DENIED)
    checker.register_output(r"cannot|fenc|refused|error")
    mm = ModeMount(tmp, acl_server, checker)
    opts = ["prefix=app2:", "password_file=%s" % pwfile, "cache=off"]
    with mm.mounted(sessdir, "redis-only", opts,
                    url=user_url(acl_server)) as m:
        for i in range(3):
            with pytest.raises(OSError):
                write_file(m.path("sess_x%d" % i), b"x")
    lines = denials(checker)
    assert lines and all("keys" in line for line in lines), lines
    assert len(lines) == len(set(re.sub(r".*may not run (\S+).*", r"\1", x)
                                 for x in lines)), lines
    assert not admin.keys("app2:*")


# ------------------------------------------------- a permission missing

MISSING = [
    pytest.param("+evalsha", "EVALSHA", "evalsha", id="evalsha"),
    pytest.param("+hset", "HSET", "can't run", id="hset-in-script"),
    pytest.param("+scan", "SCAN", "scan", id="scan"),
]


@pytest.mark.parametrize("drop,names,reason", MISSING)
def test_missing_command_named_once(drop, names, reason, acl_server, admin,
                                    pwfile, tmp, sessdir, checker):
    set_user(admin, [drop])
    checker.register_output(DENIED)
    checker.register_output(r"cannot|fenc|error")
    mm = ModeMount(tmp, acl_server, checker)
    with mm.mounted(sessdir, "redis-only", mount_opts(pwfile),
                    url=user_url(acl_server)) as m:
        errs = set()
        for i in range(4):
            try:
                write_file(m.path("sess_n%d" % i), b"n")
                os.listdir(m.mnt)
            except OSError as e:
                errs.add(errno_name(e))
        assert errs, "nothing failed without %s" % drop
    # The fleet's heartbeat (HSET of the hosts hash) needs HSET too: a
    # feature of its own, named on a line of its own, once.
    fleet = [x for x in denials(checker) if "the fleet's" in x]
    assert len(fleet) <= 1 and (not fleet or names == "HSET"), fleet
    lines = [x for x in denials(checker) if x not in fleet]
    assert len(lines) == 1, lines
    assert names in lines[0] and reason in lines[0], lines[0]
    assert "NOPERM" in lines[0] or "can't run" in lines[0], lines[0]


def test_missing_multi_degrades(acl_server, admin, pwfile, tmp, sessdir,
                                checker):
    """Without MULTI reads run as a script: everything works, one
    warning names MULTI."""
    set_user(admin, ["+multi"])
    checker.register_output(DENIED + r" MULTI")
    mm = ModeMount(tmp, acl_server, checker)
    with mm.mounted(sessdir, "redis-only", mount_opts(pwfile),
                    url=user_url(acl_server)) as m:
        for i in range(3):
            php_write(m.path("sess_t%d" % i), b"t|i:%d;" % i)
            assert php_read(m.path("sess_t%d" % i)) == b"t|i:%d;" % i
    lines = denials(checker)
    assert len(lines) == 1 and "MULTI" in lines[0], lines


def test_missing_tracking_named(acl_server, admin, pwfile, tmp, sessdir,
                                checker):
    set_user(admin, ["+client|tracking"])
    checker.register_output(r"refused client tracking")
    mm = ModeMount(tmp, acl_server, checker)
    with mm.mounted(sessdir, "redis-only", mount_opts(pwfile, "tracking"),
                    url=user_url(acl_server)) as m:
        php_write(m.path("sess_r"), b"r|i:1;")

        # A connection asks for tracking when it connects after the
        # tracker subscribed: keep reading until one has.
        def refused():
            assert php_read(m.path("sess_r")) == b"r|i:1;"
            return mm.status()["cache"].get("refused")
        wait_for(refused, 10, "tracking to be refused", interval=0.05)
    assert "client|tracking" in daemon_lines(checker)


def test_eviction_check_without_info(acl_server, admin, pwfile, tmp,
                                     sessdir, checker):
    """No INFO (and no CONFIG GET): refused, naming both and the option;
    with -o allow_evicting_redis, a warning naming them."""
    set_user(admin, ["+info"])
    res = util.run_sessfs([user_url(acl_server), str(sessdir), "-f", "-o",
                           ",".join(mount_opts(pwfile))])
    err = util.assert_refused(res, sessdir, "CONFIG GET", "INFO", "NOPERM",
                              "allow_evicting_redis")
    assert PASSWORD not in err
    checker.register_output(r"CONFIG GET or INFO \(NOPERM\)")
    mm = ModeMount(tmp, acl_server, checker)
    opts = mount_opts(pwfile, extra=["allow_evicting_redis"])
    with mm.mounted(sessdir, "redis-only", opts,
                    url=user_url(acl_server)) as m:
        php_write(m.path("sess_e"), b"e|i:1;")
    assert "CONFIG GET or INFO (NOPERM)" in daemon_lines(checker)
    # sessfs-migrate: the same, with its own option's name.
    p = migrate("copy", "--no-progress", "--password-file", pwfile,
                "--prefix", PREFIX, sessdir, user_url(acl_server), rc=1)
    assert "INFO" in p.stderr and "--allow-evicting-redis" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_migrate_missing_command(acl_server, admin, pwfile, sdir_files):
    set_user(admin, ["+script|load"])
    p = migrate("copy", "--no-progress", "--password-file", pwfile,
                "--prefix", PREFIX, sdir_files, user_url(acl_server), rc=1)
    assert "SCRIPT LOAD" in p.stderr and "NOPERM" in p.stderr, p.stderr
    assert len([x for x in p.stderr.splitlines() if DENIED in x]) == 1


@pytest.fixture
def sdir_files(tmp):
    d = tmp / "plain"
    d.mkdir()
    for i in range(3):
        write_file(d / ("sess_p%d" % i), b"p|i:%d;" % i)
    return d


# ------------------------------------------------------------- secrets

def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


def test_password_in_url_not_shown(acl_server, admin, tmp, sessdir,
                                   checker, sdir_files):
    """A password in the URL: starred in argv once parsed, never in
    /proc/mounts, the log, `sessfs --status` or `sessfs-migrate status`
    (human and JSON).  The same for sessfs-migrate's argv and output."""
    url = user_url(acl_server, PASSWORD)
    stars = b"%s:%s@" % (USER.encode(), b"*" * len(PASSWORD))
    mm = ModeMount(tmp, acl_server, checker)
    with mm.mounted(sessdir, "redis-only",
                    ["prefix=" + PREFIX, "cache=tracking"], url=url) as m:
        php_write(m.path("sess_s"), b"s|i:1;")
        assert admin.get(PREFIX + "sess_s") == b"s|i:1;"
        if not util.WITH_VALGRIND:  # valgrind's argv is not the daemon's
            line = cmdline(m.proc.pid)
            assert PASSWORD.encode() not in line and stars in line, line
        with open("/proc/self/mounts") as f:
            mounts = f.read()
        assert PASSWORD not in mounts
        assert "redis://%s@127.0.0.1:%d/0" % (USER, acl_server.port) in \
            util.mount_line(sessdir)
        online = ["--mount", sessdir, "--ctl-dir", mm.ctl_dir]
        for extra in ([], ["--json"]):
            p = migrate("status", *extra, *online)
            assert "%s@127.0.0.1:%d" % (USER, acl_server.port) in p.stdout
            assert PASSWORD not in p.stdout + p.stderr
        assert PASSWORD not in json.dumps(mm.status())
        res = util.run_sessfs(["--status", str(sessdir)])
        assert PASSWORD not in res.stdout + res.stderr
    assert PASSWORD not in daemon_lines(checker)

    # sessfs-migrate, held in its first call by a stopped Redis: its
    # argv shows stars while it runs.
    acl_server.sigstop()
    try:
        proc = subprocess.Popen(
            [str(MIGRATE), "copy", "--no-progress", "--prefix", PREFIX,
             str(sdir_files), url], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: stars in cmdline(proc.pid), 10,
                     "sessfs-migrate to star its argv")
            assert PASSWORD.encode() not in cmdline(proc.pid)
        finally:
            acl_server.sigcont()
        out, err = proc.communicate(timeout=60 * util.SLOW)
    finally:
        acl_server.sigcont()
    assert proc.returncode == 0, err
    assert json.loads(out)["copied"] == 3
    assert PASSWORD not in out + err
    # A refused password is not repeated either.
    p = migrate("verify", "--no-progress", sdir_files,
                user_url(acl_server, "wrong-" + PASSWORD), rc=None)
    assert p.returncode != 0 and "WRONGPASS" in p.stderr, p.stderr
    assert PASSWORD not in p.stdout + p.stderr
