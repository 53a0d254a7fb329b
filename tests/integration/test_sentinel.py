# SPDX-License-Identifier: GPL-2.0-or-later
"""Sentinel (redis-sentinel://) and durability=replica, with real parts: a
master and two replicas (appendonly, appendfsync always, a password) and
three redis-sentinels with their own password, every one on a free
loopback port, made afresh for each test (a failover changes who is who)
and stopped by PID at its end, also when it fails.

The mount resolves the master through the sentinels; a SENTINEL FAILOVER
and a kill -9 of the master are served through without a remount, with a
history check of PHP-style writes and deletes (every acknowledged one
logged, then read back after the failovers) and the time from the
promotion to the next served request printed; with every sentinel down
no write goes to a demoted master (EIO), and service resumes when they
return; a READONLY reply makes the daemon ask again; a wrong master name
is a one-line error at mount; durability=replica with no replica fails
the write with EIO within its timeout.  No password reaches argv,
/proc/mounts, the log or status."""

import contextlib
import errno
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

import modeutil
import util
from util import (LIVE, RedisServer, mounted, php_read, php_write,
                  run_sessfs, wait_for)

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(shutil.which("redis-sentinel") is None,
                       reason="no redis-sentinel"),
]

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
MASTER = "mymaster"
PASSWORD = "sentinel-test-master-pw"
SENTINEL_PASSWORD = "sentinel-test-own-pw"
PREFIX = "sessfs:"
# What the daemon logs around a failover or an outage.
FAILOVER_LOG = (modeutil.OUTAGE_LOG +
                r"|failover|not the master|sentinel|not confirmed by")


class Sentinel:
    """One redis-sentinel on a free loopback port, its config (which it
    rewrites) and log in 'root'."""

    def __init__(self, root, tls=None):
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        self.logfile = self.dir / "sentinel.log"
        self.sock = self.dir / "sentinel.sock"
        self.tls = tls
        self.port = None
        self.proc = None

    def __repr__(self):
        return "<Sentinel port=%s>" % self.port

    def write_conf(self, master_port, port=None):
        self.port = port or util.free_port()
        if self.tls is None:
            ports = ["port %d" % self.port]
        else:
            # TLS only, to us and to the servers; our own client uses
            # the unix socket.
            ports = ["port 0", "tls-port %d" % self.port,
                     "tls-cert-file %s" % self.tls.server,
                     "tls-key-file %s" % self.tls.server_key,
                     "tls-ca-cert-file %s" % self.tls.ca,
                     "tls-auth-clients no", "tls-replication yes"]
        self.conf.write_text("\n".join(ports + [
            "unixsocket %s" % self.sock,
            "unixsocketperm 700",
            "bind 127.0.0.1",
            "dir %s" % self.dir,
            "logfile %s" % self.logfile,
            "daemonize no",
            "requirepass %s" % SENTINEL_PASSWORD,
            # How the sentinels reach each other, and the master set.
            "sentinel sentinel-pass %s" % SENTINEL_PASSWORD,
            "sentinel monitor %s 127.0.0.1 %d 2" % (MASTER, master_port),
            "sentinel auth-pass %s %s" % (MASTER, PASSWORD),
            # Quick tests: 1 s to call a master down, 5 s per failover.
            "sentinel down-after-milliseconds %s 1000" % MASTER,
            "sentinel failover-timeout %s 5000" % MASTER,
            "sentinel parallel-syncs %s 2" % MASTER,
        ]) + "\n")

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-sentinel", str(self.conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        LIVE.add(self)
        wait_for(self.ping, 10, "redis-sentinel to answer", check=self._died)
        return self

    def _died(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-sentinel exited with %d"
                                 % self.proc.returncode)

    def client(self):
        import redis
        return redis.Redis(unix_socket_path=str(self.sock),
                           password=SENTINEL_PASSWORD, socket_timeout=5,
                           decode_responses=True)

    def ping(self):
        try:
            return self.client().ping()
        except Exception:
            return False

    def master_addr(self):
        a = self.client().execute_command(
            "SENTINEL", "get-master-addr-by-name", MASTER)
        return (a[0], int(a[1])) if a else None

    def stop(self):
        if self.proc is not None:
            util.stop_process(self.proc, group=True)
        LIVE.remove(self)

    def abort(self, why):
        self.stop()

    def dump_log(self, limit=40):
        with contextlib.suppress(FileNotFoundError):
            lines = self.logfile.read_text(errors="replace").splitlines()
            print("----- sentinel log %s -----" % self.logfile)
            print("\n".join(lines[-limit:]))


class SentinelSet:
    """A master, two replicas and three sentinels that know each other."""

    def __init__(self, root, tls=None):
        self.root = root
        # A replica that needs a full resync after a failover gets it at
        # once, not after the default 5 s wait for others (durability=
        # replica writes wait for it).
        auth = ["masterauth %s" % PASSWORD, "repl-diskless-sync-delay 0"]
        if tls is not None:
            auth.append("tls-replication yes")
        kw = dict(aof=True, password=PASSWORD, tls=tls, auth_clients="no")
        self.servers = [RedisServer(root / "m", extra=auth, **kw)]
        self.servers[0].start()
        for i in (1, 2):
            s = RedisServer(root / ("r%d" % i),
                            extra=auth + ["replicaof 127.0.0.1 %d"
                                          % self.servers[0].port], **kw)
            self.servers.append(s.start())
        self.sentinels = [Sentinel(root / ("s%d" % i), tls)
                          for i in range(3)]
        for s in self.sentinels:
            s.write_conf(self.servers[0].port)
            s.start()
        self.wait_settled()

    def url(self, master=MASTER, scheme="redis-sentinel", password=None):
        auth = ":%s@" % password if password else ""
        hosts = ",".join("127.0.0.1:%d" % s.port for s in self.sentinels)
        return "%s://%s%s/%s/0" % (scheme, auth, hosts, master)

    def by_port(self, port):
        return next(s for s in self.servers if s.port == port)

    def master(self):
        """The server the sentinels name (asked of the first that answers)."""
        for s in self.sentinels:
            with contextlib.suppress(Exception):
                return self.by_port(s.master_addr()[1])
        raise AssertionError("no sentinel answered")

    def replicas_linked(self, master):
        info = master.client().info("replication")
        return sum(1 for k, v in info.items() if k.startswith("slave")
                   and isinstance(v, dict) and v.get("state") == "online")

    def wait_settled(self, timeout=30):
        """Every sentinel names the same master, sees both replicas and
        the two other sentinels; both replicas are online."""
        def settled():
            try:
                addrs = {s.master_addr() for s in self.sentinels}
                if len(addrs) != 1:
                    return False
                m = self.by_port(addrs.pop()[1])
                if m.client().execute_command("ROLE")[0] != b"master":
                    return False
                if self.replicas_linked(m) != 2:
                    return False
                for s in self.sentinels:
                    c = s.client()
                    if len(c.execute_command("SENTINEL", "sentinels",
                                             MASTER)) != 2:
                        return False
                    reps = c.execute_command("SENTINEL", "replicas", MASTER)
                    if sum(1 for r in reps if "s_down" not in
                           dict(zip(r[::2], r[1::2]))["flags"]) != 2:
                        return False
                return True
            except Exception:
                return False
        wait_for(settled, timeout, "the sentinel set to settle",
                 interval=0.1)

    def wait_settled_after_kill(self, killed, timeout=30):
        """Every sentinel names the same live master, which says so, and
        sees the one live replica."""
        def settled():
            try:
                addrs = {s.master_addr() for s in self.sentinels}
                if len(addrs) != 1:
                    return False
                m = self.by_port(addrs.pop()[1])
                return (m is not killed and
                        m.client().execute_command("ROLE")[0] == b"master"
                        and self.replicas_linked(m) == 1)
            except Exception:
                return False
        wait_for(settled, timeout, "the sentinels to agree after kill -9",
                 interval=0.1)

    def failover(self):
        """SENTINEL FAILOVER; returns (old, new, promotion time): when
        the new master first answered ROLE master."""
        old = self.master()
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER",
                                                   MASTER)
        return old, self.wait_promoted(old)

    def wait_promoted(self, old, timeout=30):
        """Waits until a server other than 'old' says it is master; returns
        it and the monotonic time that was first seen."""
        def promoted():
            for s in self.servers:
                if s is old or s.proc.poll() is not None:
                    continue
                with contextlib.suppress(Exception):
                    if s.client(socket_timeout=1).execute_command(
                            "ROLE")[0] == b"master":
                        return s, time.monotonic()
            return None
        return wait_for(promoted, timeout, "a replica to be promoted",
                        interval=0.005)

    def stop(self):
        for s in self.sentinels + self.servers:
            s.stop()

    def dump_logs(self):
        for s in self.servers:
            s.dump_log(20)
        for s in self.sentinels:
            s.dump_log(20)


@pytest.fixture
def sset(request):
    root = util.short_tmpdir("sen")
    ss = None
    try:
        ss = SentinelSet(root)
        yield ss
    finally:
        if ss is not None:
            failed = any(getattr(request.node, "rep_" + w, None) is not None
                         and getattr(request.node, "rep_" + w).failed
                         for w in ("setup", "call"))
            if failed:
                ss.dump_logs()
            ss.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tls_sset(request):
    root = util.short_tmpdir("sent")
    ss = None
    try:
        certs = util.TlsCerts(root / "certs")
        ss = SentinelSet(root, tls=certs)
        ss.certs = certs
        yield ss
    finally:
        if ss is not None:
            if any(getattr(request.node, "rep_" + w, None) is not None
                   and getattr(request.node, "rep_" + w).failed
                   for w in ("setup", "call")):
                ss.dump_logs()
            ss.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pwfiles(tmp):
    master = tmp / "master.pw"
    master.write_text(PASSWORD + "\n")
    sentinel = tmp / "sentinel.pw"
    sentinel.write_text(SENTINEL_PASSWORD + "\n")
    for p in (master, sentinel):
        p.chmod(0o600)
    return ["password_file=%s" % master,
            "sentinel_password_file=%s" % sentinel]


def daemon_lines(checker):
    return "\n".join(line for line in checker.text().splitlines()
                     if not line.startswith(checker.NOTE))


def status(ctl, mnt):
    p = subprocess.run([str(MIGRATE), "status", "--mount", str(mnt),
                        "--ctl-dir", str(ctl), "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    return json.loads(p.stdout)


def status_text(ctl, mnt):
    return subprocess.run([str(MIGRATE), "status", "--mount", str(mnt),
                           "--ctl-dir", str(ctl)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=30).stdout


def test_mount_resolves_master(sset, pwfiles, sessdir, checker, tmp):
    """The mount finds the master through the sentinels (the first one
    dead: it costs at most its timeout), PHP's cycle lands there and is
    replicated; neither password is in argv, /proc/mounts, the log or
    status, which names the master and the durability level."""
    ctl = tmp / "ctl"
    dead = util.free_port()
    hosts = ",".join(["127.0.0.1:%d" % dead] +
                     ["127.0.0.1:%d" % s.port for s in sset.sentinels])
    url = "redis-sentinel://:%s@%s/%s/0" % (PASSWORD, hosts, MASTER)
    opts = pwfiles[1:] + ["ctl_dir=%s" % ctl, "allow_other"]
    with mounted(url, sessdir, checker, opts=opts) as m:
        for i in range(10):
            util.as_www(php_write, str(m.path("sess_r%d" % i)), b"i|i:%d;" % i)
        for i in range(10):
            assert util.as_www(php_read, str(m.path("sess_r%d" % i))) == \
                b"i|i:%d;" % i
        master = sset.master()
        assert master is sset.servers[0]
        assert master.client().get(b"sessfs:sess_r3") == b"i|i:3;"
        master.client().execute_command("WAIT", 2, 5000)
        for r in sset.servers[1:]:
            assert r.client().get(b"sessfs:sess_r3") == b"i|i:3;"

        st = status(ctl, sessdir)
        assert st["sentinel"]["master"] == "127.0.0.1:%d" % master.port
        assert st["sentinel"]["master_name"] == MASTER
        assert st["durability"] == {"level": "none"}
        text = status_text(ctl, sessdir)
        assert "durability:  none" in text, text
        assert "master 'mymaster' at 127.0.0.1:%d" % master.port in text
        line = util.mount_line(sessdir)
        assert "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d" % (
            dead, sset.sentinels[0].port) in line, line
        with open("/proc/self/mounts") as f:
            mounts = f.read()
        with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
            cmdline = f.read()
        for pw in (PASSWORD, SENTINEL_PASSWORD):
            assert pw not in mounts and pw not in text
            if not util.WITH_VALGRIND:
                assert pw.encode() not in cmdline
    for pw in (PASSWORD, SENTINEL_PASSWORD):
        assert pw not in daemon_lines(checker)


@pytest.mark.parametrize("durability", ["none", "replica"])
def test_failovers_history(sset, pwfiles, sessdir, checker, tmp, durability):
    """Writers and readers run through a SENTINEL FAILOVER and then a
    kill -9 of the new master, on one mount: service resumes after each
    without a remount; the acknowledged history is read back (lost
    writes seen by the writers' own re-reads and at the end, resurrected
    deletes) and the time from each promotion to the next served request
    is printed.  With durability=replica nothing acknowledged may be
    lost.  The sentinels may fail over once more on their own
    (down-after-milliseconds 1000 on a busy machine): the history is
    read from the master they name in the end."""
    checker.register_output(FAILOVER_LOG)
    ctl = tmp / "ctl"
    opts = pwfiles + ["redis_timeout=8", "ctl_dir=%s" % ctl,
                      "durability=%s" % durability]
    with mounted(sset.url(), sessdir, checker, opts=opts) as m:
        h = util.History(m.mnt)
        h.start()
        wait_for(lambda: len(h.acks) > 200, 20, "the first writes")

        old, (new, promoted) = sset.failover()
        wait_for(lambda: h.first_ack_after(promoted), 20,
                 "a request served after the promotion")
        rec1 = h.first_ack_after(promoted) - promoted
        sset.wait_settled()
        n = len(h.acks)
        wait_for(lambda: len(h.acks) > n + 200, 20, "writes on the new one")

        killed = new
        killed.kill9()
        k_at = time.monotonic()
        _, promoted2 = sset.wait_promoted(killed)
        wait_for(lambda: h.first_ack_after(promoted2), 20,
                 "a request served after the second promotion")
        rec2 = h.first_ack_after(promoted2) - promoted2
        n = len(h.acks)
        wait_for(lambda: len(h.acks) > n + 200, 30, "writes after kill -9")
        h.finish()

        # On a loaded machine, down-after-milliseconds 1000 may make the
        # sentinels fail over once more (a new master briefly slow to
        # answer): the history is read back from whichever master they
        # name in the end, and the daemon must name it too.
        sset.wait_settled_after_kill(killed)
        final = sset.master()
        wait_for(lambda: status(ctl, sessdir)["sentinel"]["master"] ==
                 "127.0.0.1:%d" % final.port, 10,
                 "the daemon to name the final master")
        lost, resurrected = h.check(final.client())
        st = status(ctl, sessdir)
        print("\nsentinel history (durability=%s): %d acknowledged ops, "
              "%d failed (EIO); acknowledged writes lost: %d seen by the "
              "writer's next read (at %s s after the first promotion, "
              "the second at %.1f s), %d at the end; resurrected deletes "
              "%d; promotion -> next served request: SENTINEL FAILOVER "
              "%.3f s, kill -9 %.3f s (kill -> promotion %.3f s); "
              "failovers seen %d; status durability %s"
              % (durability, len(h.acks), len(h.errors), h.lost_seen,
                 [round(t - promoted, 2) for t in h.lost_at][:10],
                 promoted2 - promoted, lost, resurrected, rec1, rec2,
                 promoted2 - k_at, st["sentinel"]["failovers"],
                 json.dumps(st["durability"])))
        assert st["sentinel"]["failovers"] >= 2
        if durability == "replica":
            assert h.lost_seen == 0 and lost == 0 and resurrected == 0
            assert st["durability"]["replicas"] == 1
            assert st["durability"]["confirmed"] > 0
        # Every failed call is an I/O error, never anything else.
        assert {e for _, e in h.errors} <= {errno.EIO}, h.errors[:5]
        assert rec1 < 10 and rec2 < 30
        # Sessions are served from the new master: a fresh write lands.
        php_write(m.path("sess_after"), b"a|1")
        assert final.client().get(b"sessfs:sess_after") == b"a|1"


@pytest.mark.parametrize("durability", ["none", "replica"])
def test_failovers_under_real_apps(sset, pwfiles, sessdir, checker, tmp,
                                   make_app, durability):
    """PHP (php -S) and Flask-Session (gunicorn) on one Sentinel mount,
    two clients each, through a SENTINEL FAILOVER and a kill -9 of the
    new master: lost acknowledged increments, stale reads, lost sessions
    and the time from each promotion to the next acknowledged request are
    printed; with durability=replica none may be lost or stale."""
    checker.register_output(FAILOVER_LOG)
    opts = pwfiles + ["allow_other", "redis_timeout=8",
                      "durability=%s" % durability]
    with mounted(sset.url(), sessdir, checker, opts=opts):
        php = make_app("php", sessdir)
        flask = make_app("flask", sessdir,
                         {"SESSION_FILE_THRESHOLD": "0"})
        load = util.AppLoad({"p": (php, "/incr_checked"),
                             "f": (flask, "/incr")})
        try:
            load.start()
            wait_for(lambda: len(load.acks) > 40, 30, "the first requests")
            old, (new, promoted) = sset.failover()
            wait_for(lambda: load.first_ack_after(promoted), 30,
                     "a request served after the promotion")
            rec1 = load.first_ack_after(promoted) - promoted
            sset.wait_settled()
            n = len(load.acks)
            wait_for(lambda: len(load.acks) > n + 40, 30,
                     "requests on the new master")
            new.kill9()
            _, promoted2 = sset.wait_promoted(new)
            wait_for(lambda: load.first_ack_after(promoted2), 30,
                     "a request served after the second promotion")
            rec2 = load.first_ack_after(promoted2) - promoted2
            n = len(load.acks)
            wait_for(lambda: len(load.acks) > n + 40, 30,
                     "requests after kill -9")
        finally:
            load.finish()
            php.stop()
            flask.stop()
        print("\nreal apps through failovers (durability=%s): %d requests, "
              "%d failed; acknowledged increments lost %d, stale reads %d, "
              "lost sessions %d; promotion -> next acknowledged request: "
              "SENTINEL FAILOVER %.3f s, kill -9 %.3f s"
              % (durability, load.requests, load.errors, load.lost,
                 load.stale, load.lost_sessions, rec1, rec2))
        if durability == "replica":
            assert load.lost == 0 and load.stale == 0
            assert load.lost_sessions == 0
        assert rec1 < 10 and rec2 < 30


def test_failover_drops_tracked_cache(sset, pwfiles, sessdir, checker, tmp):
    """cache=tracking across a SENTINEL FAILOVER: what was cached from the
    old master is not believed afterwards, and the tracker subscribes on
    the new master, so a change another client makes there is seen at
    once."""
    checker.register_output(FAILOVER_LOG)
    ctl = tmp / "ctl"
    opts = pwfiles + ["cache=tracking", "ctl_dir=%s" % ctl]
    names = ["sess_c%d" % i for i in range(8)]
    with mounted(sset.url(), sessdir, checker, opts=opts) as m:
        for i, name in enumerate(names):
            php_write(m.path(name), b"c|%d" % i)
        for i, name in enumerate(names):
            assert php_read(m.path(name)) == b"c|%d" % i
        wait_for(lambda: status(ctl, sessdir)["cache"]["up"], 10,
                 "the tracker to be up")
        hits = status(ctl, sessdir)["cache"]["hits"]
        for name in names:
            os.stat(m.path(name))
        assert status(ctl, sessdir)["cache"]["hits"] > hits

        old, (new, _) = sset.failover()
        wait_for(lambda: status(ctl, sessdir)["sentinel"]["master"] ==
                 "127.0.0.1:%d" % new.port, 10, "the daemon to see it")
        wait_for(lambda: status(ctl, sessdir)["cache"]["up"], 10,
                 "the tracker on the new master")
        # Changed on the new master before the mount read it there: the
        # entry cached from the old master is not believed.
        new.client().set(util.value_key(PREFIX, names[0]), b"y|0")
        assert util.read_file(m.path(names[0])) == b"y|0"
        php_write(m.path(names[0]), b"c|0")
        # The tracker's connection is on the new master now.
        clients = new.client().execute_command("CLIENT", "LIST")
        assert b"cmd=subscribe" in clients or b"sub=1" in clients, clients
        # Read once there (tracked on the new master), then changed
        # behind the mount's back: the change is seen, never the old bytes.
        for i, name in enumerate(names):
            assert php_read(m.path(name)) == b"c|%d" % i
        r = new.client()
        for i, name in enumerate(names):
            r.set(util.value_key(PREFIX, name), b"x|%d" % i)
        for i, name in enumerate(names):
            wait_for(lambda: util.read_file(m.path(name)) == b"x|%d" % i, 5,
                     "the change of %s to be seen" % name)
        assert status(ctl, sessdir)["sentinel"]["failovers"] == 1


def hand_over(ss, old, new):
    """Makes 'new' the master and the other servers its replicas, by
    hand (the sentinels are down)."""
    new.client().execute_command("REPLICAOF", "NO", "ONE")
    for s in ss.servers:
        if s is not new:
            s.client().execute_command("REPLICAOF", "127.0.0.1", new.port)


def restart_sentinels(ss, master):
    """Starts the sentinels again, on their ports, monitoring 'master'."""
    for s in ss.sentinels:
        s.write_conf(master.port, port=s.port)
        s.start()


def test_all_sentinels_down(sset, pwfiles, sessdir, checker, tmp):
    """Every sentinel down: the mount goes on with the master it knows
    while ROLE says master (also over new connections); once that master
    is demoted by hand, writes fail cleanly with EIO and none reaches it
    or the unknown new master; acknowledged sessions are all there; when
    the sentinels return, naming the new master, service resumes without
    a remount."""
    checker.register_output(FAILOVER_LOG)
    opts = pwfiles + ["redis_timeout=2"]
    with mounted(sset.url(), sessdir, checker, opts=opts) as m:
        for i in range(20):
            php_write(m.path("sess_d%02d" % i), b"v|%d" % i)
        old = sset.servers[0]
        for s in sset.sentinels:
            s.stop()
        # New connections too: the last master, ROLE checked.
        old.client().execute_command("CLIENT", "KILL", "TYPE", "normal",
                                     "SKIPME", "yes")
        php_write(m.path("sess_d00"), b"v|100")
        assert old.client().get(b"sessfs:sess_d00") == b"v|100"
        old.client().execute_command("WAIT", 2, 5000)

        new = sset.servers[1]
        hand_over(sset, old, new)
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            php_write(m.path("sess_d01"), b"v|101")
        took = time.monotonic() - t0
        assert e.value.errno == errno.EIO
        assert took < 6 * util.SLOW, took
        for s in sset.servers:
            assert s.client().get(b"sessfs:sess_d01") == b"v|1"
        assert util.errno_of(php_write, m.path("sess_new"), b"n") == \
            errno.EIO

        restart_sentinels(sset, new)
        wait_for(lambda: util.errno_of(php_write, m.path("sess_d02"),
                                       b"v|102") is None,
                 20, "writes to resume", interval=0.2)
        assert new.client().get(b"sessfs:sess_d02") == b"v|102"
        for i in range(3, 20):
            assert php_read(m.path("sess_d%02d" % i)) == b"v|%d" % i
        assert php_read(m.path("sess_d00")) == b"v|100"
        assert not os.path.exists(m.path("sess_new"))


def role_calls(server):
    stats = server.client().info("commandstats")
    return stats.get("cmdstat_role", {}).get("calls", 0)


def test_readonly_resolves_again(sset, pwfiles, sessdir, checker):
    """A write that meets READONLY (the master demoted under an open
    connection, no sentinel to tell) is not failed with EROFS: the daemon
    asks the sentinels again within the call's budget, and the write
    lands on the new master once they name it."""
    checker.register_output(FAILOVER_LOG)
    opts = pwfiles + ["redis_timeout=15"]
    with mounted(sset.url(), sessdir, checker, opts=opts) as m:
        php_write(m.path("sess_ro"), b"v|1")
        old, new = sset.servers[0], sset.servers[2]
        for s in sset.sentinels:
            s.stop()
        calls = role_calls(old)
        hand_over(sset, old, new)
        # In a child process: a fork (starting the sentinels) waits for a
        # thread of ours that is inside a FUSE write.
        writer = subprocess.Popen(
            [util.PYTHON, "-c", "import sys; sys.path.insert(0, %r); "
             "import util; util.php_write(%r, b'v|2')"
             % (os.path.dirname(__file__), str(m.path("sess_ro")))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # It keeps asking (READONLY, then ROLE says slave) ...
            wait_for(lambda: role_calls(old) >= calls + 3, 10,
                     "the daemon to try the demoted master again")
            assert writer.poll() is None, writer.communicate()[0]
            # ... until the sentinels name the new master.
            restart_sentinels(sset, new)
            out = writer.communicate(timeout=20 * util.SLOW)[0]
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        assert writer.returncode == 0, out
        assert new.client().get(b"sessfs:sess_ro") == b"v|2"
        assert old.client().get(b"sessfs:sess_ro") == b"v|2"  # replicated


@pytest.mark.skipif(shutil.which("openssl") is None,
                    reason="no openssl command")
def test_tls_sentinels(tls_sset, pwfiles, sessdir, checker, tmp):
    """rediss-sentinel://: sentinels and servers that speak only TLS;
    each is verified by the address it is reached at (the certificate
    names 127.0.0.1).  PHP's cycle lands on the master and goes on after
    a SENTINEL FAILOVER; a wrong CA is refused at mount with the reason,
    naming the sentinels."""
    checker.register_output(FAILOVER_LOG)
    ss = tls_sset
    url = ss.url(scheme="rediss-sentinel")
    opts = pwfiles + ["tls_ca=%s" % ss.certs.ca, "redis_timeout=8"]
    with mounted(url, sessdir, checker, opts=opts) as m:
        for i in range(5):
            php_write(m.path("sess_t%d" % i), b"t|%d" % i)
        assert ss.master().client().get(b"sessfs:sess_t3") == b"t|3"
        old, (new, _) = ss.failover()
        wait_for(lambda: util.errno_of(php_write, m.path("sess_t0"),
                                       b"t|10") is None, 20,
                 "writes on the new master", interval=0.1)
        wait_for(lambda: new.client().get(b"sessfs:sess_t0") == b"t|10", 10,
                 "the write on the new master")
        for i in range(1, 5):
            assert php_read(m.path("sess_t%d" % i)) == b"t|%d" % i
    res = run_sessfs([url, str(sessdir), "-f", "-o", ",".join(
        pwfiles + ["tls_ca=%s" % ss.certs.other_ca])])
    util.assert_refused(res, sessdir, "no sentinel answered",
                        "not trusted")


def test_silent_sentinel(sset, pwfiles, sessdir, checker):
    """A first sentinel that takes the connection and never answers (a
    hung host) costs a connect its timeout (0.5 s), not the call's."""
    import socket
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        hosts = ",".join(["127.0.0.1:%d" % silent.getsockname()[1]] +
                         ["127.0.0.1:%d" % s.port for s in sset.sentinels])
        url = "redis-sentinel://%s/%s/0" % (hosts, MASTER)
        t0 = time.monotonic()
        with mounted(url, sessdir, checker,
                     opts=pwfiles + ["redis_timeout=10"]) as m:
            took = time.monotonic() - t0
            php_write(m.path("sess_s"), b"s|1")
            assert sset.master().client().get(b"sessfs:sess_s") == b"s|1"
        assert took < 5 * util.SLOW, took


def test_wrong_master_name(sset, pwfiles, sessdir):
    res = run_sessfs([sset.url(master="nosuch"), str(sessdir), "-f",
                      "-o", ",".join(pwfiles)])
    err = util.assert_refused(res, sessdir, "no sentinel knows master",
                              "'nosuch'")
    assert PASSWORD not in err and SENTINEL_PASSWORD not in err


def test_sentinel_password_refused(sset, pwfiles, sessdir):
    """Sentinels that want their password and did not get it: refused at
    mount, naming the reason."""
    res = run_sessfs([sset.url(), str(sessdir), "-f", "-o", pwfiles[0]])
    util.assert_refused(res, sessdir, "no sentinel answered", "NOAUTH")


def test_durability_without_replicas(redis, redis_server, sessdir, checker,
                                     tmp):
    """durability=replica on a master with no replica: the write fails
    with EIO within the WAIT (half of redis_timeout), Redis is not marked
    down for it, and status counts it; the master holds the bytes (not
    confirmed, may be stored)."""
    checker.register_output(r"not confirmed by 1 replica|"
                            r"cannot create 'sess_w' in redis")
    ctl = tmp / "ctl"
    opts = ["durability=replica", "redis_timeout=2", "ctl_dir=%s" % ctl]
    with mounted(redis_server.url(), sessdir, checker, opts=opts) as m:
        t0 = time.monotonic()
        assert util.errno_of(php_write, m.path("sess_w"), b"w|1") == \
            errno.EIO
        took = time.monotonic() - t0
        assert 0.9 < took < 3 * util.SLOW, took
        # The create failed first: the master holds the empty file.
        assert redis.get(b"sessfs:sess_w") == b""
        st = status(ctl, sessdir)
        assert st["redis_up"]
        d = st["durability"]
        assert d["level"] == "replica" and d["replicas"] == 1
        assert d["timeout_ms"] == 1000
        assert d["replicas_seen"] == 0 and d["unconfirmed"] >= 1
        text = status_text(ctl, sessdir)
        assert "durability:  replica:1" in text, text
        assert "last write confirmed by 0 replicas" in text, text
    assert "not confirmed by 1 replica within 1000 ms" in checker.text()


class CuttingProxy:
    """A TCP proxy to a redis-server on loopback that, once armed, passes
    the next request holding a WAIT on to the server and drops the
    client's connection; the server's is closed once its first reply
    comes back (the write ran), which then reaches nobody.  Every other
    byte passes through."""

    def __init__(self, port):
        import socket
        self.port = util.free_port()
        self.to = port
        self.armed = False
        self.cuts = 0
        self.lsock = socket.create_server(("127.0.0.1", self.port))
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.to))
            self.socks += [c, s]
            threading.Thread(target=self._pipe, args=(c, s, True),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, False),
                             daemon=True).start()

    def _pipe(self, a, b, upstream):
        import socket
        while True:
            try:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
            except OSError:
                break
            if upstream and self.armed and b"WAIT" in data:
                self.armed = False
                self.cuts += 1
                # The client's end goes now; the server's stays until
                # its first reply (the write's) fails to reach the
                # client, which closes both in the other direction.
                a.shutdown(socket.SHUT_RDWR)
                return
        for x in (a, b):
            try:
                x.close()
            except OSError:
                pass

    def close(self):
        self.lsock.close()
        for x in self.socks:
            try:
                x.close()
            except OSError:
                pass


def test_durable_write_retried_after_a_cut(redis, redis_server, sessdir,
                                           checker, tmp):
    """durability=replica, one replica, which stops acknowledging
    (SIGSTOP).  A write, then a delete, reaches the master, and its
    connection drops before the replies: the retry on a new connection
    finds its own write in place and writes nothing.  Its WAIT must still
    count the first attempt's write: the call fails with EIO, not
    confirmed, instead of being acknowledged (a failover would lose it).
    Redis 7.0 gives a connection the master's whole offset after any
    command (measured: a fresh connection's WAIT confirms at once, one
    after a GET waits); store.c's wait_again() covers a server where only
    the connection's own writes count."""
    checker.register_output(r"not confirmed by 1 replica|reset|EOF|"
                            r"connection|cannot write|cannot delete")
    with util.own_redis_server(
            "rp", extra=["replicaof 127.0.0.1 %d" % redis_server.port]) \
            as replica:
        util.wait_for(lambda: replica.client().info("replication")
                      .get("master_link_status") == "up",
                      10, "the replica to sync")
        proxy = CuttingProxy(redis_server.port)
        try:
            url = "redis://127.0.0.1:%d/0" % proxy.port
            opts = ["durability=replica", "redis_timeout=4"]
            with mounted(url, sessdir, checker, opts=opts) as m:
                path = m.path("sess_d")
                php_write(path, b"d|i:1;")
                replica.sigstop()
                try:
                    proxy.armed = True
                    err = util.errno_of(php_write, path, b"d|i:2;")
                finally:
                    replica.sigcont()
                assert proxy.cuts == 1, "the proxy cut nothing"
                assert err == errno.EIO, err
                # Not confirmed, may be stored: the master has it.
                assert redis.get(b"sessfs:sess_d") == b"d|i:2;"
                # The same for a delete, whose retry finds the name
                # deleted already.
                util.wait_for(lambda: replica.client().get(
                    b"sessfs:sess_d") == b"d|i:2;", 10, "the replica")
                replica.sigstop()
                try:
                    proxy.armed = True
                    err = util.errno_of(os.unlink, path)
                finally:
                    replica.sigcont()
                assert proxy.cuts == 2, "the proxy cut nothing"
                assert err == errno.EIO, err
        finally:
            proxy.close()


def test_bad_options(redis_server, sset, tmp, sessdir):
    bad = [
        ([redis_server.url(), str(sessdir), "-o", "durability=replica:0"],
         ["invalid durability 'replica:0'"]),
        ([redis_server.url(), str(sessdir), "-o", "durability=all"],
         ["invalid durability 'all'"]),
        ([redis_server.url(), str(sessdir), "-o",
          "sentinel_password_file=/nonexistent"],
         ["sentinel_password_file needs a redis-sentinel://"]),
        (["redis-sentinel://127.0.0.1:1", str(sessdir)],
         ["missing master name"]),
    ]
    for args, words in bad:
        util.assert_refused(run_sessfs(args), sessdir, *words)


def test_migrate_commands(sset, pwfiles, tmp):
    """analyze, copy, verify and export take the Sentinel URL and
    --sentinel-password-file, and reach the master."""
    src = util.make_sessdir(tmp, "src")
    for i in range(5):
        (src / ("sess_m%d" % i)).write_bytes(b"m|%d" % i)
    pw = ["--password-file", pwfiles[0].split("=", 1)[1],
          "--sentinel-password-file", pwfiles[1].split("=", 1)[1]]
    out = util.make_sessdir(tmp, "out")

    def run(*args):
        return subprocess.run([str(MIGRATE)] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=60)
    url = sset.url()
    for args in (["copy", str(src), url], ["verify", str(src), url],
                 ["analyze", str(src), url],
                 ["export", url, str(out)]):
        p = run(*(args + pw))
        assert p.returncode == 0, (args, p.stdout)
        assert PASSWORD not in p.stdout and SENTINEL_PASSWORD not in p.stdout
    assert sset.master().client().get(b"sessfs:sess_m3") == b"m|3"
    assert (out / "sess_m3").read_bytes() == b"m|3"
    p = run("verify", str(src), sset.url(master="nosuch"), *pw)
    assert p.returncode != 0 and "no sentinel knows master 'nosuch'" in \
        p.stdout, p.stdout
