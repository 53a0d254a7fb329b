# SPDX-License-Identifier: GPL-2.0-or-later
"""TLS (rediss://): a TLS-only redis-server (port 0, tls-port) with
certificates this module makes with openssl, requiring client
certificates and a password.  A mount over mutual TLS serves PHP-style
writes and reads that land in Redis and survives its connections being
killed; no password reaches argv, /proc/mounts, the log or status; a wrong
CA, a wrong server name, a missing client certificate and an expired
server certificate are each refused with a one-line error naming the
reason; cache=tracking gets its
invalidations over TLS; sessfs-migrate analyze, copy, verify and export
take the same URLs and --tls-* options."""

import json
import os
import shutil
import subprocess

import pytest

import modeutil
import util
from modeutil import ModeMount
from util import (RedisServer, TlsCerts, mounted, php_read,
                  php_write, run_sessfs, wait_for)

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(shutil.which("openssl") is None,
                       reason="no openssl command"),
]

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
PASSWORD = "tls-s3cret-pw"
PREFIX = "sessfs:"


@pytest.fixture(scope="module")
def certs():
    root = util.short_tmpdir("c")
    try:
        yield TlsCerts(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_server(certs):
    with util.own_redis_server("s", password=PASSWORD, tls=certs,
                               auth_clients="yes") as server:
        yield server


@pytest.fixture
def tls_redis(tls_server, request):
    """A plain client of the TLS server (its unix socket), flushed."""
    r = tls_server.client()
    r.flushall()
    yield r
    if util.test_failed(request):
        tls_server.dump_log()


@pytest.fixture
def pwfile(tmp):
    p = tmp / "redis.password"
    p.write_text(PASSWORD + "\n")
    p.chmod(0o600)
    return p


def tls_opts(certs, pwfile, client_cert=True):
    return certs.mount_opts(client_cert) + ["password_file=%s" % pwfile]


def daemon_lines(checker):
    """What the daemon wrote (not the test's own notes: the command)."""
    return "\n".join(line for line in checker.text().splitlines()
                     if not line.startswith(checker.NOTE))


def assert_refused(res, mnt, *words):
    """util.assert_refused(), and the password is not in the message."""
    err = util.assert_refused(res, mnt, *words)
    assert PASSWORD not in err
    return err
    return err


def test_mtls_mount(certs, tls_server, tls_redis, pwfile, sessdir, checker):
    """PHP's session cycle over mutual TLS: the bytes land in Redis, and
    a reconnect after every connection was killed serves again.  The
    password is nowhere to be seen."""
    names = ["sess_tls%02d" % i for i in range(20)]
    opts = tls_opts(certs, pwfile) + ["allow_other"]
    with mounted(tls_server.url(), sessdir, checker, opts=opts) as m:
        for i, name in enumerate(names):
            util.as_www(php_write, str(m.path(name)), b"n|i:%d;" % i)
        for i, name in enumerate(names):
            assert util.as_www(php_read, str(m.path(name))) == b"n|i:%d;" % i
            assert tls_redis.get(util.value_key(PREFIX, name)) == \
                b"n|i:%d;" % i
        tls_redis.set(util.value_key(PREFIX, names[0]), b"n|s:5:\"other\";")
        assert util.as_www(php_read, str(m.path(names[0]))) == \
            b"n|s:5:\"other\";"
        # Every data connection of the daemon goes; the next calls
        # reconnect (resuming their TLS sessions: test_tls.c checks that).
        tls_redis.execute_command("CLIENT", "KILL", "TYPE", "normal",
                                  "SKIPME", "yes")
        util.as_www(php_write, str(m.path(names[1])), b"after|b:1;")
        assert tls_redis.get(util.value_key(PREFIX, names[1])) == b"after|b:1;"
        assert util.as_www(php_read, str(m.path(names[2]))) == b"n|i:2;"
        assert sorted(os.listdir(m.mnt)) == names

        line = util.mount_line(sessdir)
        assert "rediss://127.0.0.1:%d/0" % tls_server.port in line, line
        with open("/proc/self/mounts") as f:
            assert PASSWORD not in f.read()
        with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
            assert PASSWORD.encode() not in f.read()
    assert PASSWORD not in daemon_lines(checker)


def test_redis_restart(certs, tls_server, tls_redis, pwfile, sessdir,
                       checker):
    """A TLS Redis killed and started again: the daemon's calls in
    between wait, then go on over new TLS connections."""
    checker.register_output(modeutil.OUTAGE_LOG)
    opts = tls_opts(certs, pwfile) + ["redis_timeout=10"]
    with mounted(tls_server.url(), sessdir, checker, opts=opts) as m:
        php_write(m.path("sess_before"), b"b|i:1;")
        tls_server.kill9()
        writer = util.Op(lambda: php_write(m.path("sess_during"), b"d|i:2;"))
        writer.start()
        tls_server.restart()
        writer.join(30 * util.SLOW)
        assert writer.error is None, writer.error
        r = tls_server.client()
        assert r.get(b"sessfs:sess_during") == b"d|i:2;"
        php_write(m.path("sess_after"), b"a|i:3;")
        assert r.get(b"sessfs:sess_after") == b"a|i:3;"


def test_password_in_url_not_shown(certs, tls_server, tls_redis, sessdir,
                                   checker, tmp):
    ctl = tmp / "ctl"
    url = tls_server.url(password=PASSWORD)
    opts = certs.mount_opts() + ["ctl_dir=%s" % ctl]
    with mounted(url, sessdir, checker, opts=opts) as m:
        util.write_file(m.path("sess_url"), b"u|i:1;")
        assert tls_redis.get(b"sessfs:sess_url") == b"u|i:1;"
        p = subprocess.run([str(MIGRATE), "status", "--mount", str(sessdir),
                            "--ctl-dir", str(ctl)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        assert "rediss://127.0.0.1:%d" % tls_server.port in p.stdout, p.stdout
        assert PASSWORD not in p.stdout
        with open("/proc/self/mounts") as f:
            assert PASSWORD not in f.read()
        # Given in the URL, it is starred in argv once parsed (valgrind's
        # own argv is not the daemon's).
        if not util.WITH_VALGRIND:
            with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
                cmdline = f.read()
            assert PASSWORD.encode() not in cmdline
            assert b"rediss://:%s@" % (b"*" * len(PASSWORD)) in cmdline
    assert PASSWORD not in daemon_lines(checker)


REFUSALS = [
    pytest.param(lambda c: ["tls_ca=%s" % c.other_ca, "tls_cert=%s" % c.client,
                            "tls_key=%s" % c.client_key],
                 ["not trusted", "unknown CA"], id="wrong-ca"),
    pytest.param(lambda c: c.mount_opts() + ["tls_server_name=other"],
                 ["does not match", "'other'"], id="wrong-name"),
    pytest.param(lambda c: c.mount_opts(client_cert=False),
                 ["requires a client certificate"], id="no-client-cert"),
    pytest.param(lambda c: [], ["not trusted", "unknown CA"],
                 id="system-trust-store"),
]


def test_expired_server_certificate(certs, pwfile, sessdir, tmp):
    server = RedisServer(tmp / "expired", tls=certs.expired(),
                         password=PASSWORD)
    try:
        server.start()
        res = run_sessfs([server.url(), str(sessdir), "-f", "-o",
                          ",".join(tls_opts(certs, pwfile))])
    finally:
        server.stop()
    assert_refused(res, sessdir, "server certificate expired")


@pytest.mark.parametrize("opts,words", REFUSALS)
def test_refused_with_reason(opts, words, certs, tls_server, tls_redis,
                             pwfile, sessdir):
    res = run_sessfs([tls_server.url(), str(sessdir), "-f", "-o",
                      ",".join(opts(certs) + ["password_file=%s" % pwfile])])
    err = assert_refused(res, sessdir, "rediss://127.0.0.1:%d"
                         % tls_server.port, *words)
    assert "cannot connect" in err, err


BAD_OPTIONS = [
    pytest.param("redis", lambda c: ["tls_ca=%s" % c.ca],
                 ["tls_ca needs a rediss:// URL"], id="tls-on-plain-url"),
    pytest.param("rediss", lambda c: ["tls_cert=%s" % c.client],
                 ["tls_cert needs tls_key"], id="cert-without-key"),
    pytest.param("rediss", lambda c: ["tls_ca=/nonexistent/ca.crt"],
                 ["/nonexistent/ca.crt", "No such file"], id="missing-ca"),
    pytest.param("rediss", lambda c: ["tls_cert=%s" % c.client,
                                      "tls_key=%s" % c.server_key],
                 ["private key", "server.key"],
                 id="key-mismatch"),
]


@pytest.mark.parametrize("scheme,opts,words", BAD_OPTIONS)
def test_bad_tls_option(scheme, opts, words, certs, tls_server, sessdir):
    url = "%s://127.0.0.1:%d" % (scheme, tls_server.port)
    res = run_sessfs([url, str(sessdir), "-f", "-o", ",".join(opts(certs))])
    assert_refused(res, sessdir, *words)


def test_help_mentions_tls():
    res = run_sessfs(["--help"])
    for word in ("rediss://", "tls_ca=", "tls_cert=", "tls_key=",
                 "tls_server_name="):
        assert word in res.stdout, word


def test_tracking_over_tls(certs, tls_server, tls_redis, pwfile, tmp,
                           checker):
    """cache=tracking: the tracker's connection is TLS too, and another
    client's change reaches the mount through it."""
    sessdir = util.make_sessdir(tmp)
    mm = ModeMount(tmp, tls_server, checker)
    extra = tls_opts(certs, pwfile) + ["cache=tracking"]
    name = "sess_tracked_tls"
    key = util.value_key(PREFIX, name)
    with mm.mounted(sessdir, "redis-only", extra) as m:
        wait_for(lambda: mm.status()["cache"].get("up"), 10,
                 "the tracker to subscribe", interval=0.02)
        util.as_www(php_write, str(m.path(name)), b"v|i:1;")
        assert util.as_www(php_read, str(m.path(name))) == b"v|i:1;"
        hits = mm.status()["cache"]["hits"]
        assert util.as_www(php_read, str(m.path(name))) == b"v|i:1;"
        assert mm.status()["cache"]["hits"] > hits
        inval = mm.status()["cache"]["invalidations"]
        tls_redis.set(key, b"v|i:2;")
        wait_for(lambda: mm.status()["cache"]["invalidations"] > inval, 10,
                 "the invalidation over TLS", interval=0.02)
        assert util.as_www(php_read, str(m.path(name))) == b"v|i:2;"


# ------------------------------------------------------------ sessfs-migrate

migrate = util.migrate


@pytest.mark.skipif(not MIGRATE.exists(), reason="sessfs-migrate not built")
def test_migrate_over_tls(certs, tls_server, tls_redis, pwfile, tmp):
    """analyze, copy, verify and export over rediss://, also with the
    host name 'localhost' (the certificate's DNS name)."""
    src = tmp / "src"
    src.mkdir()
    for i in range(30):
        (src / ("sess_m%02d" % i)).write_bytes(b"m|i:%d;" % i)
    tls = certs.migrate_args() + ["--password-file", pwfile]
    url = tls_server.url()

    p = migrate("analyze", src, url, *tls)
    assert "live" in p.stdout
    p = migrate("copy", "--no-progress", src, url, *tls)
    assert json.loads(p.stdout)["copied"] == 30
    assert tls_redis.get(b"sessfs:sess_m07") == b"m|i:7;"
    migrate("verify", src, tls_server.url(host="localhost"), *tls)

    dst = tmp / "dst"
    dst.mkdir()
    migrate("export", url, dst, *tls)
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src))
    assert (dst / "sess_m29").read_bytes() == b"m|i:29;"


@pytest.mark.skipif(not MIGRATE.exists(), reason="sessfs-migrate not built")
@pytest.mark.parametrize("args,words", [
    pytest.param(lambda c: ["--tls-ca", c.other_ca, "--tls-cert", c.client,
                            "--tls-key", c.client_key],
                 ["unknown CA"], id="wrong-ca"),
    pytest.param(lambda c: c.migrate_args() + ["--tls-server-name", "other"],
                 ["does not match the name 'other'"], id="wrong-name"),
    pytest.param(lambda c: c.migrate_args(client_cert=False),
                 ["requires a client certificate"], id="no-client-cert"),
    pytest.param(lambda c: ["--tls-cert", c.client],
                 ["--tls-cert needs --tls-key"], id="cert-without-key"),
])
def test_migrate_refused(args, words, certs, tls_server, tls_redis, pwfile,
                         tmp):
    src = tmp / "src"
    src.mkdir()
    p = migrate("analyze", src, tls_server.url(), *args(certs),
                "--password-file", pwfile, rc=1)
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    assert PASSWORD not in err


@pytest.mark.skipif(not MIGRATE.exists(), reason="sessfs-migrate not built")
def test_migrate_tls_option_on_plain_url(certs, tmp):
    src = tmp / "src"
    src.mkdir()
    p = migrate("copy", "--no-progress", src, "redis://127.0.0.1:1",
                "--tls-ca", certs.ca, rc=1)
    assert "--tls-ca needs a rediss:// URL" in p.stderr


@pytest.mark.skipif(not MIGRATE.exists(), reason="sessfs-migrate not built")
def test_migrate_help_mentions_tls():
    assert "rediss://" in migrate("--help").stdout
    for cmd in ("analyze", "copy", "verify", "export"):
        out = migrate(cmd, "--help").stdout
        for opt in ("--tls-ca", "--tls-cert", "--tls-key",
                    "--tls-server-name"):
            assert opt in out, (cmd, opt)
