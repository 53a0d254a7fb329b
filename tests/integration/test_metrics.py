# SPDX-License-Identifier: GPL-2.0-or-later
"""Prometheus metrics (fs/metrics.h): a mount with -o metrics_addr on a free
loopback port, scraped over HTTP while plain file I/O drives it; the text
checked by `promtool check metrics`; counters that move with the traffic;
a Redis outage (SIGSTOP past redis_timeout) in the errors and the breaker;
the mode gauge following `sessfs-migrate mode`; the same text through the
control socket and `sessfs-migrate status --metrics`; 404, 405 and 400
answers; every family listed in the README; bad metrics_addr values refused at mount with one line; the alert
rules (promtool check rules, promtool test rules) and every metric name
the alerts and the Grafana dashboard use present in a real scrape."""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

import util
from modeutil import OUTAGE_LOG, ModeMount
from util import SLOW, RedisServer, mounted, read_file, wait_for, write_file

pytestmark = util.fuse_test_marker()

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
CONTRIB = util.SRC_DIR / "contrib"
ALERTS = CONTRIB / "prometheus" / "alerts.yml"
ALERTS_TEST = CONTRIB / "prometheus" / "alerts_test.yml"
DASHBOARD = CONTRIB / "grafana" / "sessfs.json"
# Names PromQL uses that are not metrics of ours.
PROMQL_WORDS = {"up"}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def promtool():
    """promtool comes with Debian's prometheus (scripts/setup.sh installs
    it): a missing one fails the test rather than skipping it."""
    path = shutil.which("promtool")
    assert path, "promtool is missing: install prometheus (scripts/setup.sh deps)"
    return path


def scrape(port, path="/metrics", method="GET"):
    """One HTTP request; (status, headers dict, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def metrics(port):
    status, headers, body = scrape(port)
    assert status == 200, (status, body)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return body


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def value(text, series):
    s = samples(text)
    assert series in s, "no series %s in the scrape" % series
    return s[series]


def ops(text, store, op):
    return value(text, 'sessfs_store_operation_duration_seconds_count'
                 '{store="%s",op="%s"}' % (store, op))


def families(text):
    return {line.split()[2] for line in text.splitlines()
            if line.startswith("# TYPE ")}


def names_in(text):
    """Every metric name of ours (sessfs_*, process_*) and 'up' in 'text'."""
    return set(re.findall(r'\b(?:sessfs_[a-z0-9_]+|process_[a-z_]+|up)\b',
                          text))


def check_promtool(text):
    p = subprocess.run([promtool(), "check", "metrics"], input=text,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout


migrate = util.migrate


def test_scrape(redis, redis_server, tmp, sessdir, checker):
    """Counters move with plain file I/O, by exactly the number of calls;
    promtool finds the text clean; the control socket and sessfs-migrate
    serve the same families; other paths, methods and garbage get 404,
    405 and 400; every name the alerts and the dashboard use exists."""
    port = util.free_port()
    mm = ModeMount(tmp, redis_server, checker)
    # A legacy session, in the directory before the mount.
    (sessdir / "sess_legacy").write_bytes(b"l|i:0;")
    with mm.mounted(sessdir, "redis-only",
                    extra=["metrics_addr=127.0.0.1:%d" % port]) as m:
        assert read_file(m.path("sess_legacy")) == b"l|i:0;"
        text = metrics(port)
        assert value(text, "sessfs_copyups_total") == 1
        assert ops(text, "lower", "legacy_read") >= 1
        assert ops(text, "redis", "copyup") == 1
        n = 5
        for i in range(n):
            write_file(m.path("sess_m%d" % i), b"a|i:0;")
        before = metrics(port)
        # Rewrites of existing sessions: one put each (PHP's write).
        for i in range(n):
            with open(m.path("sess_m%d" % i), "r+b") as f:
                f.write(b"b|i:%d;" % i)
        for i in range(n):
            assert read_file(m.path("sess_m%d" % i)) == b"b|i:%d;" % i
        os.unlink(m.path("sess_m0"))
        os.unlink(m.path("sess_m1"))
        after = metrics(port)

        check_promtool(after)
        assert ops(after, "redis", "put") - ops(before, "redis", "put") == n
        assert ops(after, "redis", "delete") - \
            ops(before, "redis", "delete") == 2
        # Reads ask Redis, or with cache=tracking may be answered here.
        def reads(t):
            return ops(t, "redis", "get") + \
                value(t, "sessfs_tracking_hits_total")
        assert reads(after) > reads(before)
        assert value(after, "sessfs_requests_total") > \
            value(before, "sessfs_requests_total")
        assert value(after, "sessfs_requests_failed_total") == 0
        assert value(after, 'sessfs_mode{mode="redis-only"}') == 1
        assert value(after, 'sessfs_mode{mode="files"}') == 0
        assert value(after, "sessfs_redis_up") == 1
        assert value(after, "sessfs_journal_names") == 0
        assert value(after, "process_resident_memory_bytes") > 1 << 20
        # A histogram's buckets are cumulative and end at _count.
        s = samples(after)
        buckets = [v for k, v in s.items() if k.startswith(
            'sessfs_store_operation_duration_seconds_bucket{store="redis",'
            'op="put",')]
        assert len(buckets) == 16 and buckets == sorted(buckets)
        assert buckets[-1] == ops(after, "redis", "put")

        # The control socket and sessfs-migrate give the same text (the
        # same series; the values move with the scrapes themselves).
        reply = mm.ctl("metrics")
        assert reply["ok"], reply
        assert set(samples(reply["text"])) == set(s)
        check_promtool(reply["text"])
        p = migrate("status", "--mount", m.mnt, "--ctl-dir", mm.ctl_dir,
                    "--metrics")
        assert set(samples(p.stdout)) == set(s)

        # Only GET /metrics.
        assert scrape(port, "/")[0] == 404
        assert scrape(port, "/metricsx")[0] == 404
        assert scrape(port, "/metrics?name[]=up")[0] == 200
        status, headers, _ = scrape(port, "/metrics", "POST")
        assert status == 405 and headers["Allow"] == "GET"
        status, headers, body = scrape(port, "/metrics", "HEAD")
        assert status == 405 and headers["Allow"] == "GET" and body == ""
        with socket.create_connection(("127.0.0.1", port), 10) as c:
            c.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 405 ")
            assert answer.endswith(b"\r\n\r\n"), answer
        with socket.create_connection(("127.0.0.1", port), 10) as c:
            c.sendall(b"HELLO\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 400 ")
        # More idle connections than the server keeps do not stop it.
        idle = [socket.create_connection(("127.0.0.1", port), 10)
                for _ in range(12)]
        try:
            c = idle[-1]
            c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            for c in idle[:8]:
                c.close()
            c = idle[-1]
            c.settimeout(10 * SLOW)
            assert c.recv(100).startswith(b"HTTP/1.0 200 ")
        finally:
            for c in idle:
                c.close()

        # The README lists every family.
        readme = (util.SRC_DIR / "README.md").read_text()
        missing = sorted(f for f in families(after) if "`%s`" % f not in readme)
        assert not missing, "not in README.md: %s" % missing

        # What the alerts and the dashboard use, a real scrape has.
        have = {re.sub(r"\{.*", "", k) for k in s} | {"up"}
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        used = set().union(*(names_in(e) for e in exprs))
        used |= names_in(open(ALERTS).read())
        assert used - PROMQL_WORDS, "no metric names found"
        assert not used - have, "not in a scrape: %s" % sorted(used - have)


def test_outage_and_modes(tmp, sessdir, checker):
    """Redis stopped past redis_timeout: in dual-write the write Redis
    missed shows as a timeout error of the redis store, the breaker opens
    (sessfs_redis_up 0) and closes again after SIGCONT, and the journal
    is repaired; in redis-first a write of this host's own name falls
    back to the lower dir; the mode gauge follows sessfs-migrate mode."""
    checker.register_output(OUTAGE_LOG)
    root = util.short_tmpdir("met")
    server = RedisServer(root / "redis")
    port = util.free_port()
    try:
        server.start()
        mm = ModeMount(tmp, server, checker)
        with mm.mounted(sessdir, "dual-write",
                        extra=["metrics_addr=:%d" % port,
                               "redis_timeout=1"]) as m:
            assert value(metrics(port),
                         'sessfs_mode{mode="dual-write"}') == 1
            migrate("mode", "files", "--mount", m.mnt, "--ctl-dir",
                    mm.ctl_dir)
            text = metrics(port)
            assert value(text, 'sessfs_mode{mode="files"}') == 1
            assert value(text, 'sessfs_mode{mode="dual-write"}') == 0
            migrate("mode", "dual-write", "--mount", m.mnt, "--ctl-dir",
                    mm.ctl_dir)
            assert value(metrics(port),
                         'sessfs_mode{mode="dual-write"}') == 1
            write_file(m.path("sess_o"), b"o|i:0;")
            mm.wait_repaired()
            before = metrics(port)
            server.sigstop()
            try:
                # dual-write: the lower dir takes the write, Redis times
                # out behind it and the name is journaled.
                write_file(m.path("sess_o"), b"o|i:1;")
                during = wait_for(
                    lambda: (lambda t: t if value(t, "sessfs_redis_up") == 0
                             else None)(metrics(port)),
                    10, "sessfs_redis_up 0")
            finally:
                server.sigcont()
            assert value(during, "sessfs_redis_breaker_opened_total") > \
                value(before, "sessfs_redis_breaker_opened_total")
            kind = 'sessfs_store_errors_total{store="redis",kind="timeout"}'
            assert value(during, kind) > value(before, kind)
            assert value(during, "sessfs_journal_names") >= 1
            check_promtool(during)
            wait_for(lambda: value(metrics(port), "sessfs_redis_up") == 1,
                     15, "sessfs_redis_up 1 again")
            mm.wait_repaired()
            after = metrics(port)
            assert value(after, 'sessfs_repairs_total{store="redis"}') >= 1
            assert value(after, "sessfs_journal_names") == 0

            migrate("verify", "--mount", m.mnt, "--ctl-dir", mm.ctl_dir)
            migrate("mode", "redis-first", "--mount", m.mnt, "--ctl-dir",
                    mm.ctl_dir)
            write_file(m.path("sess_o"), b"o|i:2;")
            before = metrics(port)
            assert value(before, 'sessfs_mode{mode="redis-first"}') == 1
            server.sigstop()
            try:
                write_file(m.path("sess_o"), b"o|i:3;")
            finally:
                server.sigcont()
            text = metrics(port)
            put = 'sessfs_fallbacks_total{op="put"}'
            assert value(text, put) > value(before, put)
            mm.wait_repaired()
            assert read_file(m.path("sess_o")) == b"o|i:3;"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("form, host", [
    pytest.param("localhost:%d", "127.0.0.1", id="localhost"),
    pytest.param("[::1]:%d", "::1", id="ipv6",
                 marks=pytest.mark.skipif(not ipv6_loopback(),
                                          reason="no IPv6 loopback")),
])
def test_metrics_addr_forms(redis, redis_server, sessdir, checker, form,
                            host):
    """localhost and a bracketed IPv6 address are loopback."""
    port = util.free_port()
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["metrics_addr=" + form % port]):
        c = http.client.HTTPConnection(host, port, timeout=10 * SLOW)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            assert r.status == 200
            assert "sessfs_build_info{" in r.read().decode()
        finally:
            c.close()


@pytest.mark.parametrize("addr, words", [
    pytest.param("example.com:9464", "IP address or localhost", id="name"),
    pytest.param("127.0.0.1:0", "port 1-65535", id="port0"),
    pytest.param("127.0.0.1:70000", "port 1-65535", id="port-big"),
    pytest.param("127.0.0.1", "port 1-65535", id="no-port"),
    pytest.param("::1:9464", "brackets", id="v6-bare"),
    pytest.param("[::1:9464", "brackets", id="v6-open"),
    pytest.param("300.1.1.1:9464", "IP address", id="bad-ip"),
])
def test_bad_metrics_addr(tmp, sessdir, addr, words):
    """A bad metrics_addr fails the mount with one line naming it."""
    r = util.run_sessfs(["redis://127.0.0.1:1", str(sessdir), "-f", "-o",
                         "metrics_addr=" + addr + ",state_dir=%s" % tmp])
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "invalid metrics_addr '%s'" % addr in lines[0], lines[0]
    assert words in lines[0], lines[0]
    assert not util.is_mounted(sessdir)


def test_metrics_port_in_use(redis, redis_server, tmp, sessdir, checker):
    """A port someone else listens on fails the mount with one line; a
    second sessfs on a mounted mountpoint is refused for the mountpoint,
    not for the first one's port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = util.run_sessfs([redis_server.url(), str(sessdir), "-f", "-o",
                             "metrics_addr=127.0.0.1:%d,state_dir=%s,"
                             "ctl_dir=%s" % (port, tmp, tmp / "ctl")])
    assert r.returncode != 0
    assert r.stderr.strip() == ("sessfs: cannot listen on metrics_addr "
                                "'127.0.0.1:%d': Address already in use"
                                % port), r.stderr
    assert not util.is_mounted(sessdir)

    port = util.free_port()
    opt = "metrics_addr=127.0.0.1:%d" % port
    with mounted(redis_server.url(), sessdir, checker, opts=[opt]) as m:
        r = util.run_sessfs([redis_server.url(), str(sessdir), "-f", "-o",
                             opt + ",state_dir=%s,ctl_dir=%s"
                             % (tmp, tmp / "ctl")])
        assert r.returncode != 0
        assert "another sessfs still runs" in r.stderr, r.stderr
        assert "metrics_addr" not in r.stderr, r.stderr
        assert value(metrics(port), "sessfs_redis_up") == 1
        assert m.proc.poll() is None


def test_alert_rules():
    """promtool checks the rules and runs their unit tests."""
    for args in (["check", "rules", str(ALERTS)],
                 ["test", "rules", str(ALERTS_TEST)]):
        p = subprocess.run([promtool()] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60,
                           cwd=ALERTS.parent)
        assert p.returncode == 0, p.stdout
        assert "SUCCESS" in p.stdout, p.stdout
