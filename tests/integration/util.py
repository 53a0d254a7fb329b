# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers of the integration tests, modelled on libfuse's and sshfs's
test/util.py: real redis-servers, real sessfs mounts, real PHP and Flask apps.

Everything a helper starts is registered in LIVE and stopped by its owner
(context manager or fixture), also when a test fails; the per-test watchdog
in conftest.py aborts whatever is still live when a test hangs, so that a
blocked FUSE call fails instead of hanging the run.  Nothing here sleeps to
synchronise: wait_for() polls a condition with a deadline.
"""

import contextlib
import copy
import errno
import http.cookiejar
import os
import pickle
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

SRC_DIR = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("SESSFS_BUILD_DIR", SRC_DIR / "build"))
SESSFS = BUILD_DIR / "fs" / "sessfs"
MIGRATE = BUILD_DIR / "migrate" / "sessfs-migrate"
EXAMPLES = SRC_DIR / "examples"
PYTHON = "/usr/bin/python3"  # Debian's: it has flask, flask_session, redis

_www = pwd.getpwnam("www-data")
WWW_UID, WWW_GID = _www.pw_uid, _www.pw_gid

WITH_VALGRIND = os.environ.get("TEST_WITH_VALGRIND", "") not in ("", "0")
# SESSFS_TEST_CACHE=tracking: every mount that does not choose its own
# cache= gets -o cache=tracking (the suite's second run, scripts/setup.sh).
TEST_CACHE = os.environ.get("SESSFS_TEST_CACHE", "")
# valgrind makes the daemon 20-50 times slower: stretch every deadline.
SLOW = 10 if WITH_VALGRIND else 1

CACHELIB_COUNT = "2029240f6d1128be89ddc32729463129"


def fuse_test_marker():
    """pytestmark of every module that mounts: skip without FUSE."""
    why = None
    if not os.path.exists("/dev/fuse"):
        why = "no /dev/fuse"
    elif shutil.which("fusermount3") is None:
        why = "no fusermount3"
    elif os.geteuid() != 0:
        why = "needs root (mounts, www-data clients)"
    return pytest.mark.skipif(why is not None, reason=why or "")


class LiveSet:
    """What is running right now, for the watchdog and the final sweep."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, item):
        with self.lock:
            self.items.append(item)

    def remove(self, item):
        with self.lock:
            if item in self.items:
                self.items.remove(item)

    def abort_all(self, why):
        with self.lock:
            items = list(reversed(self.items))
        for item in items:
            try:
                item.abort(why)
            except Exception as e:  # keep aborting the others
                print("abort of %r failed: %s" % (item, e), file=sys.stderr)


LIVE = LiveSet()


def wait_for(cond, timeout=10.0, what="condition", interval=0.01, check=None):
    """Polls 'cond' until it returns a true value (returned) or 'timeout'
    seconds pass (AssertionError naming 'what').  'check' runs before each
    poll and may raise to give up early (e.g. the daemon died)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        if check is not None:
            check()
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout * SLOW, what))
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmpdir(tag="t"):
    """A fresh directory directly under /tmp (unix socket paths must stay
    under 108 bytes), traversable by www-data."""
    d = Path(tempfile.mkdtemp(prefix="sfs-%s-" % tag, dir="/tmp"))
    d.chmod(0o755)
    return d


def make_sessdir(parent, name="sessions", owner=(WWW_UID, WWW_GID),
                 mode=0o700):
    """The web app's session directory, as on Debian for a custom path:
    owned by www-data, mode 0700."""
    d = Path(parent) / name
    d.mkdir()
    os.chown(d, *owner)
    d.chmod(mode)
    return d


def is_mounted(path):
    """True when /proc/self/mounts has an entry on 'path' (os.path.ismount
    fails with ENOTCONN on a dead FUSE mount; this does not)."""
    p = os.path.realpath(path).encode()
    with open("/proc/self/mounts", "rb") as f:
        for line in f:
            fields = line.split()
            mp = fields[1].replace(b"\\040", b" ")
            if mp == p:
                return True
    return False


def mount_line(path):
    """The /proc/self/mounts line of the topmost mount on 'path', or None."""
    p = os.path.realpath(path)
    found = None
    with open("/proc/self/mounts") as f:
        for line in f:
            if line.split()[1] == p:
                found = line
    return found


def fusermount_u(path, lazy=True):
    cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [str(path)]
    return subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)


def sessfs_u(path):
    """sessfs -u: every sessfs layer on 'path' and the bind under
    /run/sessfs that a dead daemon leaves (fusermount3 would leave it)."""
    return subprocess.run([str(SESSFS), "-u", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=30)


def end_daemons(path, procs, log):
    """The cleanup of a test that starts sessfs itself: every layer on
    'path' removed, every daemon of 'procs' still running killed, 'log'
    closed."""
    unmount_all(path)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log.close()


def unmount_all(path):
    """Removes every mount on 'path' (a failed test may leave a dead one)."""
    if SESSFS.exists():
        sessfs_u(path)
    for _ in range(8):
        if not is_mounted(path):
            return
        r = fusermount_u(path)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(path)],
                           stderr=subprocess.DEVNULL, timeout=30)


def stop_process(proc, group=True, timeout=5):
    """Ends 'proc' (started by us with start_new_session=True): SIGTERM to
    its process group, wait, then SIGKILL."""
    if proc.poll() is not None:
        return proc.returncode
    kill = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        kill(proc.pid, signal.SIGCONT)
        kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout * SLOW)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            kill(proc.pid, signal.SIGKILL)
        return proc.wait(30)


class OutputChecker:
    """Collects a process's output in a file and, at the end of the test,
    fails on lines that look like errors unless registered as expected
    (libfuse's OutputChecker)."""

    DEFAULT_BAD = re.compile(
        r"error|warning|sanitizer|traceback|leak|==\d+==|segfault|abort",
        re.I)
    NOTE = "# sessfs-test: "  # our own annotation lines, never checked

    def __init__(self, path, bad=None, what="daemon"):
        self.path = Path(path)
        self.path.touch()
        self.bad = bad or self.DEFAULT_BAD
        self.what = what
        self.expected = []
        self.reproducers = []

    def register_output(self, pattern, flags=re.I):
        """Lines matching 'pattern' (a regex) are expected, not failures."""
        self.expected.append(re.compile(pattern, flags))

    def note(self, text):
        with open(self.path, "a") as f:
            f.write(self.NOTE + text + "\n")

    def text(self):
        return self.path.read_text(errors="replace")

    def bad_lines(self):
        bad = []
        for line in self.text().splitlines():
            if line.startswith(self.NOTE) or not self.bad.search(line):
                continue
            if any(p.search(line) for p in self.expected):
                continue
            bad.append(line)
        return bad

    def check(self):
        bad = self.bad_lines()
        if bad:
            raise AssertionError(
                "unexpected lines in the %s log %s:\n  %s\nreproduce with:\n"
                "  %s" % (self.what, self.path, "\n  ".join(bad[:30]),
                          "\n  ".join(self.reproducers) or "(no command)"))

    def dump(self, limit=200):
        lines = self.text().splitlines()
        print("----- %s log %s (last %d lines) -----"
              % (self.what, self.path, limit))
        print("\n".join(lines[-limit:]))


# --------------------------------------------------------------- redis

class TlsCerts:
    """Certificates for a TLS redis-server, made with the openssl command
    in 'root' (hiredis's test.sh does the same): a CA, a server certificate
    for 127.0.0.1 and localhost signed by it, the same server expired a day
    ago (expired()), a client certificate signed by it, and a second CA
    that signed nothing of these (a wrong tls_ca).  EC P-256 keys: a few
    ms each, so every test module can make its own."""

    def __init__(self, root):
        self.dir = Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        d = self.dir
        self.ca, self.ca_key = d / "ca.crt", d / "ca.key"
        self.other_ca, self.other_ca_key = d / "other-ca.crt", d / "other.key"
        self.server, self.server_key = d / "server.crt", d / "server.key"
        self.client, self.client_key = d / "client.crt", d / "client.key"
        self.server_expired = d / "server-expired.crt"
        self._make()

    @staticmethod
    def _openssl(*args):
        subprocess.run(["openssl"] + [str(a) for a in args], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)

    def _key(self, path):
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-out", path)
        path.chmod(0o600)

    def _ca(self, cert, key, cn):
        self._key(key)
        self._openssl("req", "-x509", "-new", "-key", key, "-sha256",
                      "-days", "2", "-subj", "/CN=%s" % cn, "-out", cert)

    def _signed(self, cert, key, cn, ext, days=2):
        """A certificate for 'key' (made unless it exists) signed by the
        CA; 'days' -1 makes one that expired a day ago."""
        csr = cert.with_suffix(".csr")
        extfile = cert.with_suffix(".ext")
        extfile.write_text(ext + "\n")
        if not key.exists():
            self._key(key)
        self._openssl("req", "-new", "-key", key, "-subj", "/CN=%s" % cn,
                      "-out", csr)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                      self.ca_key, "-CAcreateserial", "-days", str(days),
                      "-sha256", "-extfile", extfile, "-out", cert)

    def _make(self):
        self._ca(self.ca, self.ca_key, "sessfs test CA")
        self._ca(self.other_ca, self.other_ca_key, "sessfs other CA")
        server_ext = ("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                      "extendedKeyUsage=serverAuth")
        self._signed(self.server, self.server_key, "localhost", server_ext)
        self._signed(self.server_expired, self.server_key, "localhost",
                     server_ext, days=-1)
        self._signed(self.client, self.client_key, "sessfs client",
                     "extendedKeyUsage=clientAuth")

    def expired(self):
        """The same certificates, but a server that shows the expired one."""
        other = copy.copy(self)
        other.server = self.server_expired
        return other

    def mount_opts(self, client_cert=True):
        """The mount's tls_* options for these certificates."""
        opts = ["tls_ca=%s" % self.ca]
        if client_cert:
            opts += ["tls_cert=%s" % self.client,
                     "tls_key=%s" % self.client_key]
        return opts

    def migrate_args(self, client_cert=True):
        """sessfs-migrate's --tls-* options for these certificates."""
        args = ["--tls-ca", str(self.ca)]
        if client_cert:
            args += ["--tls-cert", str(self.client),
                     "--tls-key", str(self.client_key)]
        return args


@contextlib.contextmanager
def own_redis_server(letter, **kw):
    """A started RedisServer (RedisServer's keywords) in a short temp dir
    of its own, stopped by its pid and removed afterwards, also when the
    test fails: the body of every server fixture."""
    root = short_tmpdir(letter)
    server = RedisServer(root / "redis", **kw)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_failed(request):
    """Whether the test of a fixture's 'request' failed in its setup or
    call (conftest records the reports): fixtures dump logs then."""
    node = request.node
    return any(getattr(node, "rep_" + w, None) is not None
               and getattr(node, "rep_" + w).failed
               for w in ("setup", "call"))


class RedisServer:
    """A redis-server on a free loopback port and a unix socket, config,
    data and log in a short tmp dir.  With 'aof' it runs appendonly with
    appendfsync always, so a kill -9 loses nothing acknowledged and
    restart() brings the same data back on the same port.  With 'tls' (a
    TlsCerts) the port speaks only TLS (port 0, tls-port) and url() is a
    rediss:// URL; 'auth_clients' is tls-auth-clients (yes: mutual TLS).
    The unix socket stays plain: the tests' own client uses it."""

    def __init__(self, root, aof=False, password=None, extra=(), tls=None,
                 auth_clients="yes"):
        self.dir = Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.aof = aof
        self.password = password
        self.extra = list(extra)
        self.tls = tls
        self.auth_clients = auth_clients
        self.port = None
        self.sock = self.dir / "redis.sock"
        self.conf = self.dir / "redis.conf"
        self.logfile = self.dir / "redis.log"
        self.proc = None

    def __repr__(self):
        return "<RedisServer port=%s>" % self.port

    def _write_conf(self):
        if self.tls is None:
            ports = ["port %d" % self.port]
        else:
            ports = ["port 0", "tls-port %d" % self.port,
                     "tls-cert-file %s" % self.tls.server,
                     "tls-key-file %s" % self.tls.server_key,
                     "tls-ca-cert-file %s" % self.tls.ca,
                     "tls-auth-clients %s" % self.auth_clients]
        lines = ports + [
            "bind 127.0.0.1",
            "unixsocket %s" % self.sock,
            "unixsocketperm 700",
            "dir %s" % self.dir,
            "logfile %s" % self.logfile,
            "daemonize no",
            'save ""',
            "appendonly %s" % ("yes" if self.aof else "no"),
            "appendfsync always",
            "maxmemory-policy noeviction",
        ]
        if self.password is not None:
            lines.append("requirepass %s" % self.password)
        self.conf.write_text("\n".join(lines + self.extra) + "\n")

    def start(self):
        for attempt in range(5):
            if self.port is None or attempt:
                self.port = free_port()
            self._write_conf()
            self._spawn()
            try:
                self.wait_ready()
                return self
            except AssertionError:
                stop_process(self.proc, group=True)
                LIVE.remove(self)
                if attempt == 4:
                    self.dump_log()
                    raise

    def _spawn(self):
        self.proc = subprocess.Popen(
            ["redis-server", str(self.conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        LIVE.add(self)

    def _died(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited with %d"
                                 % self.proc.returncode)

    def wait_ready(self, timeout=10):
        wait_for(self.ping, timeout, "redis-server to answer PING",
                 check=self._died)

    def client(self, **kw):
        import redis
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(unix_socket_path=str(self.sock),
                           password=self.password, **kw)

    def ping(self):
        try:
            return self.client(socket_timeout=1).ping()
        except Exception:
            return False

    def url(self, db=0, password=None, host="127.0.0.1"):
        auth = ":%s@" % password if password else ""
        scheme = "redis" if self.tls is None else "rediss"
        return "%s://%s%s:%d/%d" % (scheme, auth, host, self.port, db)

    def unix_url(self, db=0):
        return "unix://%s?db=%d" % (self.sock, db)

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def sigcont(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)
        LIVE.remove(self)

    def restart(self):
        """Starts it again on the same port with the same data."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        self._spawn()
        self.wait_ready()

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, group=True)
        LIVE.remove(self)

    def abort(self, why):
        # A stopped Redis is what makes FUSE calls block: let them go on.
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)

    def dump_log(self, limit=60):
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        print("----- redis-server log %s (last %d lines) -----"
              % (self.logfile, limit))
        print("\n".join(lines[-limit:]))


def crc16_xmodem(data):
    """CRC16-CCITT (XMODEM), Redis Cluster's key hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The cluster slot of 'key' (str or bytes), hash tags included."""
    if isinstance(key, str):
        key = key.encode()
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16_xmodem(key) % 16384


class ClusterNode(RedisServer):
    """A RedisServer with its cluster bus on a free port of its own
    ("cluster-port"): the default, port + 10000, is past 65535 for a
    fifth of the ports free_port() gives (Linux's ephemeral range,
    32768-60999), and may be taken."""

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf, "a") as f:
            f.write("cluster-port %d\n" % free_port())


class RedisCluster:
    """A Redis Cluster of 'masters' masters with 'replicas' replicas each,
    every node a RedisServer (its own port, unix socket, dir and log),
    made by `redis-cli --cluster create`.  The node timeout is short
    (NODE_TIMEOUT_MS) so that a killed master's replica is promoted in
    about a second; replicas may always take over (validity factor 0).
    No persistence, as RedisServer, unless 'aof'.  Every process is ours
    and stopped by its pid (stop(), also when a test fails)."""

    NODE_TIMEOUT_MS = 500

    def __init__(self, root, masters=3, replicas=1, aof=False, extra=()):
        self.root = Path(root)
        self.n_masters = masters
        self.n_replicas = replicas
        conf = ["cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout %d" % self.NODE_TIMEOUT_MS,
                "cluster-replica-validity-factor 0",
                "cluster-require-full-coverage yes",
                "repl-diskless-sync-delay 0"] + list(extra)
        self.servers = [ClusterNode(self.root / ("n%d" % i), aof=aof,
                                    extra=conf)
                        for i in range(masters * (1 + replicas))]
        self.dead = []

    def __repr__(self):
        return "<RedisCluster %s>" % ",".join(str(s.port)
                                              for s in self.servers)

    def create(self, timeout=60):
        """Starts every node and joins them (the first 'masters' nodes
        become the masters); returns once every node says cluster_state:ok
        with all 16384 slots covered and every replica is in sync."""
        for s in self.servers:
            s.start()
        p = run(["redis-cli", "--cluster", "create"]
                + ["127.0.0.1:%d" % s.port for s in self.servers]
                + ["--cluster-replicas", str(self.n_replicas),
                   "--cluster-yes"], timeout=timeout * SLOW)
        assert p.returncode == 0, ("redis-cli --cluster create: exit %d\n%s%s"
                                   % (p.returncode, p.stdout, p.stderr))
        self.wait_ok(timeout)
        return self

    def live(self):
        return [s for s in self.servers if s not in self.dead]

    def url(self, scheme="redis-cluster", nodes=None):
        """"redis-cluster://127.0.0.1:P1,127.0.0.1:P2,..." of 'nodes'
        (default: every live node)."""
        nodes = self.live() if nodes is None else nodes
        return "%s://%s" % (scheme, ",".join("127.0.0.1:%d" % s.port
                                             for s in nodes))

    @staticmethod
    def role(server):
        return server.client(socket_timeout=2).execute_command(
            "ROLE")[0].decode()

    @staticmethod
    def node_id(server):
        return server.client().execute_command("CLUSTER", "MYID").decode()

    def masters(self):
        """The live nodes that say they are masters, in creation order."""
        out = []
        for s in self.live():
            with contextlib.suppress(Exception):
                if self.role(s) == "master":
                    out.append(s)
        return out

    def replicas_of(self, master):
        """The live nodes replicating 'master'."""
        out = []
        for s in self.live():
            with contextlib.suppress(Exception):
                info = s.client(socket_timeout=2).info("replication")
                if (info.get("role") == "slave"
                        and info.get("master_port") == master.port):
                    out.append(s)
        return out

    def slot_map(self):
        """[the master serving slot i (None: no one) for i in 0..16383],
        as the first live node that answers CLUSTER SLOTS sees it."""
        for s in self.live():
            with contextlib.suppress(Exception):
                ranges = s.client(socket_timeout=2).execute_command(
                    "CLUSTER", "SLOTS")
                out = [None] * 16384
                for lo, hi, m, *_ in ranges:
                    out[lo:hi + 1] = [self.by_port(int(m[1]))] * (hi - lo + 1)
                return out
        raise AssertionError("no node of %r answers CLUSTER SLOTS" % self)

    def slot_owner(self, slot):
        """The live master serving 'slot' (CLUSTER SLOTS of a live node)."""
        owner = self.slot_map()[slot]
        if owner is None:
            raise AssertionError("no node serves slot %d" % slot)
        return owner

    def by_port(self, port):
        return next(s for s in self.servers if s.port == port)

    def client_for(self, key, **kw):
        """A plain redis client of the master that serves 'key' now (its
        unix socket): for looking at one key without cluster routing."""
        return self.slot_owner(key_slot(key)).client(**kw)

    def cluster_client(self, **kw):
        """redis.cluster.RedisCluster (python3-redis >= 4.1) on the live
        nodes: follows MOVED/ASK for tests that write through it."""
        import redis.cluster
        kw.setdefault("socket_timeout", 10)
        nodes = [redis.cluster.ClusterNode("127.0.0.1", s.port)
                 for s in self.live()]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kw)

    def keys(self, pattern="*"):
        """Every key of every master (SCAN on each), as a set of bytes."""
        out = set()
        for m in self.masters():
            out.update(m.client().scan_iter(match=pattern, count=1000))
        return out

    def flushall(self):
        for m in self.masters():
            m.client().flushall()

    def _node_ok(self, s):
        info = s.client(socket_timeout=2).execute_command("CLUSTER", "INFO")
        info = dict(line.split(":", 1) for line in
                    info.decode().split("\r\n") if ":" in line)
        return (info.get("cluster_state") == "ok"
                and info.get("cluster_slots_assigned") == "16384"
                and info.get("cluster_slots_ok") == "16384"
                and int(info.get("cluster_known_nodes", 0))
                == len(self.servers))

    def healthy(self):
        """Every live node: state ok, all slots assigned and ok; the
        masters as many as made, each with its replicas linked; no slot
        migrating or importing."""
        try:
            if not all(self._node_ok(s) for s in self.live()):
                return False
            masters = self.masters()
            if len(masters) != self.n_masters:
                return False
            want = self.n_replicas if not self.dead else 0
            for m in masters:
                info = m.client(socket_timeout=2).info("replication")
                if info.get("connected_slaves", 0) < want:
                    return False
            for s in self.live():
                if s in masters:
                    continue
                info = s.client(socket_timeout=2).info("replication")
                if info.get("master_link_status") != "up":
                    return False
            for m in masters:
                nodes = m.client(socket_timeout=2).execute_command(
                    "CLUSTER", "NODES").decode()
                if "->-" in nodes or "-<-" in nodes:
                    return False
            return True
        except Exception:
            return False

    def wait_ok(self, timeout=60):
        wait_for(self.healthy, timeout, "%r to settle" % self, interval=0.1)

    def reshard(self, n_slots, src, dst, timeout=120, wait=True):
        """Moves 'n_slots' slots from master 'src' to master 'dst' (either
        RedisServer or index into masters()) with `redis-cli --cluster
        reshard` (MIGRATE in batches; the keys move with their slot).
        With wait=False returns the running Popen (the caller waits for
        it and calls wait_ok()); else waits and checks its exit status."""
        masters = self.masters()
        src = masters[src] if isinstance(src, int) else src
        dst = masters[dst] if isinstance(dst, int) else dst
        cmd = ["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % src.port,
               "--cluster-from", self.node_id(src),
               "--cluster-to", self.node_id(dst),
               "--cluster-slots", str(n_slots), "--cluster-yes",
               "--cluster-pipeline", "100"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        if not wait:
            return proc
        return self.finish_reshard(proc, timeout)

    def finish_reshard(self, proc, timeout=120):
        try:
            out, _ = proc.communicate(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            raise
        assert proc.returncode == 0, ("redis-cli --cluster reshard: exit "
                                      "%d\n%s" % (proc.returncode,
                                                  out[-3000:]))
        self.wait_ok()
        return out

    def move_slot(self, slot, dst, between=None):
        """Moves 'slot' to master 'dst' by hand, one key at a time, as
        redis-cli does but with the timing ours: CLUSTER SETSLOT IMPORTING
        on 'dst', MIGRATING on the owner, MIGRATE of each key (never
        REPLACE: a key on both sides is an error), then SETSLOT NODE on
        'dst', the old owner and the other masters.  between(key) runs
        after each key's move: the slot is half moved then (ASK for a
        moved key, TRYAGAIN for one command on keys of both sides)."""
        src = self.slot_owner(slot)
        assert src is not dst, "slot %d is on %r already" % (slot, dst)
        did = self.node_id(dst)
        s, d = src.client(), dst.client()
        d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                          self.node_id(src))
        s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", did)
        while True:
            keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1)
            if not keys:
                break
            s.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0,
                              int(10000 * SLOW), "KEYS", keys[0])
            if between is not None:
                between(keys[0])
        rest = [m for m in self.masters() if m not in (src, dst)]
        for m in [dst, src] + rest:
            m.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                       did)

    def error_counts(self, *kinds):
        """{kind: how many replies of that error (ASK, MOVED, TRYAGAIN...)
        the live nodes have sent so far} (INFO errorstats)."""
        out = dict.fromkeys(kinds, 0)
        for s in self.live():
            for k, v in s.client().info("errorstats").items():
                kind = k[len("errorstat_"):]
                if kind in out:
                    if isinstance(v, dict):
                        v = v["count"]
                    else:
                        v = int(str(v).split("=")[1])
                    out[kind] += int(v)
        return out

    def kill_master(self, i, timeout=30):
        """kill -9 of masters()[i] (by its pid); waits until one of its
        replicas says it is master and every live node serves all slots
        again.  Returns (killed, promoted, t_kill, t_promoted): the
        monotonic times of the kill and of the first ROLE master seen."""
        old = self.masters()[i]
        reps = self.replicas_of(old)
        assert reps, "%r has no replica to promote" % old
        t_kill = time.monotonic()
        old.kill9()
        self.dead.append(old)

        def promoted():
            for s in reps:
                with contextlib.suppress(Exception):
                    if self.role(s) == "master":
                        return s, time.monotonic()
            return None
        new, t_promoted = wait_for(promoted, timeout,
                                   "a replica of %r to be promoted" % old,
                                   interval=0.005)
        wait_for(lambda: all(self._ok_quiet(s) for s in self.live()),
                 timeout, "the cluster to serve every slot after the kill",
                 interval=0.05)
        return old, new, t_kill, t_promoted

    def _ok_quiet(self, s):
        try:
            info = s.client(socket_timeout=2).execute_command(
                "CLUSTER", "INFO").decode()
            return ("cluster_state:ok" in info
                    and "cluster_slots_ok:16384" in info)
        except Exception:
            return False

    def stop(self):
        for s in self.servers:
            s.stop()

    def dump_logs(self, limit=20):
        for s in self.servers:
            s.dump_log(limit)


@contextlib.contextmanager
def own_redis_cluster(request=None, **kw):
    """A created RedisCluster (RedisCluster's keywords) in a short temp dir
    of its own; every node stopped by its pid and the dir removed
    afterwards, also when the test (or the creation) fails; the node logs
    printed when 'request''s test failed."""
    root = short_tmpdir("rc")
    cluster = RedisCluster(root, **kw)
    created = False
    try:
        cluster.create()
        created = True
        yield cluster
    finally:
        if not created or (request is not None and test_failed(request)):
            cluster.dump_logs()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


class HostileProxy:
    """A TCP proxy on loopback in front of a redis-server that passes
    every byte through until 'garbage' is set: then the next request on
    each connection is answered with those bytes instead (the server never
    sees it) and later ones with nothing, so the client waits on what the
    garbage began; with 'close' set the connection is dropped after the
    garbage.  A broken or hostile server whose replies the test controls.
    stop() closes everything."""

    def __init__(self, port):
        self.port = free_port()
        self.to = port
        self.garbage = None
        self.close = False
        self.answered = 0
        self._lock = threading.Lock()
        self._socks = []
        self._lsock = socket.create_server(("127.0.0.1", self.port))
        LIVE.add(self)
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)

    def set(self, garbage, close=False):
        """Answers every request from now on with 'garbage' (bytes; None:
        pass through again)."""
        with self._lock:
            self.garbage = garbage
            self.close = close

    def _accept(self):
        while True:
            try:
                c, _ = self._lsock.accept()
                s = socket.create_connection(("127.0.0.1", self.to))
            except OSError:
                return
            with self._lock:
                self._socks += [c, s]
            threading.Thread(target=self._up, args=(c, s),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(s, c),
                             daemon=True).start()

    def _up(self, c, s):
        """Client -> server, or the garbage back to the client."""
        sent = False
        with contextlib.suppress(OSError):
            while True:
                data = c.recv(65536)
                if not data:
                    break
                with self._lock:
                    garbage, close = self.garbage, self.close
                if garbage is None:
                    s.sendall(data)
                    sent = False
                    continue
                if sent:
                    continue
                # Counted first: the client may act on the garbage (and
                # the test look at the count) before this thread runs on.
                with self._lock:
                    self.answered += 1
                c.sendall(garbage)
                sent = True
                if close:
                    break
        self._close(c, s)

    def _down(self, s, c):
        with contextlib.suppress(OSError):
            while True:
                data = s.recv(65536)
                if not data:
                    break
                c.sendall(data)
        self._close(c, s)

    @staticmethod
    def _close(*socks):
        for x in socks:
            with contextlib.suppress(OSError):
                x.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                x.close()

    def stop(self):
        with contextlib.suppress(OSError):
            self._lsock.close()
        with self._lock:
            socks, self._socks = self._socks, []
        self._close(*socks)
        LIVE.remove(self)

    def abort(self, why):
        self.stop()


def value_key(prefix, name):
    """Layout v1, plain: the value key of file 'name'."""
    return (prefix + name).encode()


def meta_key(prefix, name):
    """Layout v1, plain: the meta key, prefix + "{" + value key + "}:m"."""
    return ("%s{%s%s}:m" % (prefix, prefix, name)).encode()


def meta(r, prefix, name):
    """The meta hash of 'name' as a str -> str dict ({} if none)."""
    h = r.hgetall(meta_key(prefix, name))
    return {k.decode(): v.decode() for k, v in h.items()}


def set_times(r, prefix, name, mtime_ns=None, ctime_ns=None):
    """Seeds mtime/ctime of a stored session (utimensat cannot set ctime)."""
    fields = {}
    if mtime_ns is not None:
        fields["mt"] = str(int(mtime_ns))
    if ctime_ns is not None:
        fields["ct"] = str(int(ctime_ns))
    assert r.exists(meta_key(prefix, name)), "no meta key for %r" % name
    r.hset(meta_key(prefix, name), mapping=fields)


class CutProxy:
    """A TCP proxy to a redis-server on loopback that passes every byte
    through until armed with arm(n): then, n times, a request chunk
    holding one of 'triggers' (e.g. b"EVALSHA") is passed on to the
    server and the client's connection dropped at once; the server's end
    closes when its reply comes back, so the command ran and its reply
    reaches nobody (a connection cut mid-pipeline).  test_faults.py's
    cut-mid-pipeline fault; test_sentinel.py has a WAIT-only variant."""

    def __init__(self, port, triggers):
        self.port = free_port()
        self.to = port
        self.triggers = tuple(triggers)
        self.lock = threading.Lock()
        self.armed = 0
        self.cuts = 0
        self.lsock = socket.create_server(("127.0.0.1", self.port))
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, n):
        with self.lock:
            self.armed = n

    def _take(self, data):
        with self.lock:
            if self.armed > 0 and any(t in data for t in self.triggers):
                self.armed -= 1
                self.cuts += 1
                return True
        return False

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.to))
            except OSError:
                c.close()
                continue
            self.socks += [c, s]
            for a, b, up in ((c, s, True), (s, c, False)):
                threading.Thread(target=self._pipe, args=(a, b, up),
                                 daemon=True).start()

    def _pipe(self, a, b, upstream):
        while True:
            try:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
            except OSError:
                break
            if upstream and self._take(data):
                with contextlib.suppress(OSError):
                    a.shutdown(socket.SHUT_RDWR)
                return
        for x in (a, b):
            with contextlib.suppress(OSError):
                x.close()

    def close(self):
        self.lsock.close()
        for x in self.socks:
            with contextlib.suppress(OSError):
                x.close()


class HoldProxy:
    """A TCP proxy to a redis-server on loopback that passes every byte
    through until armed with hold(marker): then the next request chunk
    holding 'marker' is kept back, not sent, and the client's connection
    dropped at once, while the server's end of that connection stays open
    (so whatever the client set up on it, a WATCH, stays).  release()
    sends the kept chunk on that old connection, later: a request that
    Redis gets after its client gave up and moved on, as a TCP segment
    retransmitted late or a paused server would deliver it.  The
    stale-retry tests (test_stale_write.py)."""

    def __init__(self, port):
        self.port = free_port()
        self.to = port
        self.lock = threading.Lock()
        self.marker = None
        self.held = None  # (server socket, bytes)
        self.socks = []
        self.lsock = socket.create_server(("127.0.0.1", self.port))
        LIVE.add(self)
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)

    def hold(self, marker):
        with self.lock:
            self.marker = marker

    def holding(self):
        with self.lock:
            return self.held is not None

    def release(self):
        """Sends the kept chunk on its old connection; returns Redis's
        reply to it (bytes, what arrived within a second)."""
        with self.lock:
            s, data = self.held
            self.held = None
        s.settimeout(1)
        s.sendall(data)
        out = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.to))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, s]
            threading.Thread(target=self._up, args=(c, s),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(s, c),
                             daemon=True).start()

    def _up(self, c, s):
        with contextlib.suppress(OSError):
            while True:
                data = c.recv(65536)
                if not data:
                    break
                with self.lock:
                    keep = self.marker is not None and self.marker in data
                    if keep:
                        self.marker = None
                        self.held = (s, data)
                if keep:
                    # The client sees its connection die; the server's
                    # end stays open for release().
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                    return
                s.sendall(data)
        with contextlib.suppress(OSError):
            c.close()
        with self.lock:
            if self.held is None or self.held[0] is not s:
                with contextlib.suppress(OSError):
                    s.close()

    def _down(self, s, c):
        with contextlib.suppress(OSError):
            while True:
                with self.lock:
                    if self.held is not None and self.held[0] is s:
                        return  # release() reads this connection now
                s.settimeout(0.1)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                c.sendall(data)
        with contextlib.suppress(OSError):
            c.close()

    def stop(self):
        with contextlib.suppress(OSError):
            self.lsock.close()
        with self.lock:
            socks, self.socks = self.socks, []
            if self.held is not None:
                socks.append(self.held[0])
        for x in socks:
            with contextlib.suppress(OSError):
                x.close()
        LIVE.remove(self)

    def abort(self, why):
        self.stop()


# Every mount heartbeats into its prefix's fleet keys (DESIGN.md, "Fleet").
FLEET_KEY = re.compile(r"\{sessfs\}:fleet:")


def keys_of(r, prefix=""):
    """The keys under 'prefix', but for the fleet's heartbeat keys."""
    return sorted(k.decode(errors="replace")
                  for k in r.scan_iter(match=prefix.encode() + b"*",
                                       count=1000)
                  if not FLEET_KEY.search(k.decode(errors="replace")))


# --------------------------------------------------------------- sessfs

def sessfs_binary():
    if not SESSFS.exists():
        pytest.fail("%s is missing: build first (meson setup build && "
                    "ninja -C build), or set SESSFS_BUILD_DIR" % SESSFS)
    return SESSFS


def base_cmdline():
    if WITH_VALGRIND:
        return ["valgrind", "-q", "--error-exitcode=99"]
    return []


def sessfs_cmd(url, mnt, opts=(), foreground=True, extra=()):
    cmd = base_cmdline() + [str(sessfs_binary()), url, str(mnt)]
    if foreground:
        cmd.append("-f")
    if TEST_CACHE and not any(o.startswith("cache=") for o in opts):
        opts = list(opts) + ["cache=" + TEST_CACHE]
    if opts:
        cmd += ["-o", ",".join(opts)]
    return cmd + list(extra)


def run_sessfs(args, timeout=20, env=None):
    """Runs sessfs with 'args' to completion (for failing command lines)."""
    return subprocess.run(base_cmdline() + [str(sessfs_binary())] + args,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          timeout=timeout * SLOW, env=env)


class Mount:
    """A running sessfs, as yielded by mounted()."""

    def __init__(self, proc, mnt, lower_fd, cmd, checker):
        self.proc = proc
        self.mnt = Path(mnt)
        self.lower_fd = lower_fd
        self.cmd = cmd
        self.checker = checker
        self.killed = False
        # Set by a test whose daemon unmounts itself (a fleet rollback):
        # mounted() then only waits for it to exit 0, with nothing mounted.
        self.self_unmount = False

    def __repr__(self):
        return "<Mount %s pid=%d>" % (self.mnt, self.proc.pid)

    def path(self, name):
        return self.mnt / name

    def lower_names(self):
        """Names in the lower dir (through the fd opened before mounting)."""
        return sorted(os.listdir(self.lower_fd))

    def kill9(self):
        """kill -9 of the daemon; mounted() then only cleans up."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(10)

    def abort(self, why):
        self.checker.note("aborted: %s" % why)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        unmount_all(self.mnt)


def wait_for_mount(proc, mnt, timeout=10):
    def died():
        if proc.poll() is not None:
            raise AssertionError("sessfs exited with %d before mounting"
                                 % proc.returncode)
    wait_for(lambda: os.path.ismount(mnt), timeout, "the mount on %s" % mnt,
             check=died)


def holders(path):
    """Processes with a file, cwd or root under 'path' (what keeps a lazily
    unmounted FUSE connection alive): a list of 'pid comm: file'."""
    prefix = os.path.realpath(path) + "/"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        links = []
        with contextlib.suppress(OSError):
            fds = os.listdir("/proc/%s/fd" % pid)
            links = ["fd/" + fd for fd in fds] + ["cwd", "root"]
        for link in links:
            with contextlib.suppress(OSError):
                target = os.readlink("/proc/%s/%s" % (pid, link))
                if (target + "/").startswith(prefix):
                    with open("/proc/%s/comm" % pid) as f:
                        comm = f.read().strip()
                    found.append("%s %s: %s" % (pid, comm, target))
    return found


def other_ns_copies(path):
    """Processes of other mount namespaces that have a copy of the mount on
    'path' ('pid comm' per namespace).  A process that unshares its mount
    namespace (unshare -m, sessfs-migrate's offline mode) copies every mount
    there is; while it lives, a lazy unmount here cannot end the FUSE
    connection, and the daemon rightly waits."""
    p = os.path.realpath(path)
    own = os.readlink("/proc/self/ns/mnt")
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = os.readlink("/proc/%s/ns/mnt" % pid)
            if ns == own or ns in seen:
                continue
            with open("/proc/%s/mountinfo" % pid) as f:
                if any(line.split()[4] == p for line in f):
                    with open("/proc/%s/comm" % pid) as f:
                        seen[ns] = "%s %s" % (pid, f.read().strip())
        except (OSError, IndexError):
            continue
    return list(seen.values())


def diagnose_hang(m):
    """Prints why a daemon did not exit: who still holds files of the
    mount, and the daemon's thread stacks."""
    print("sessfs pid %d did not exit; holders of %s: %s; other mount "
          "namespaces with a copy: %s"
          % (m.proc.pid, m.mnt, holders(m.mnt) or "none",
             other_ns_copies(m.mnt) or "none"))
    if shutil.which("gdb"):
        res = subprocess.run(["gdb", "-batch", "-p", str(m.proc.pid), "-ex",
                              "thread apply all bt"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=60)
        print(res.stdout[-20000:])


def _cleanup_failed(m):
    """Failure path: unmount, terminate, wait(1), kill."""
    fusermount_u(m.mnt)
    if m.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(m.proc.pid, signal.SIGTERM)
        try:
            m.proc.wait(1 * SLOW)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(m.proc.pid, signal.SIGKILL)
            m.proc.wait(30)
    unmount_all(m.mnt)


@contextlib.contextmanager
def mounted(url, mnt, checker, opts=(), state_dir=None, lower_fd=None):
    """Mounts sessfs on 'mnt' (which is also the lower dir: the daemon opens
    it before mounting), daemon output appended to 'checker''s log.  Yields
    a Mount.  On a clean exit: fusermount3 -u -z, and the daemon must exit
    0.  On any failure: the same unmount, terminate, wait, kill.  Over a
    dead mount (a crash restart, where 'mnt' answers ENOTCONN) pass
    'lower_fd', a descriptor of the lower dir opened before (Mount keeps a
    dup of it)."""
    mnt = Path(mnt)
    opts = list(opts)
    if state_dir is None and not any(o.startswith("state_dir=") for o in opts):
        state_dir = checker.path.parent / ("state-%s" % mnt.name)
        state_dir.mkdir(exist_ok=True)
    if state_dir is not None:
        opts.append("state_dir=%s" % state_dir)
    cmd = sessfs_cmd(url, mnt, opts)
    if TEST_CACHE and not any(o.startswith("cache=") for o in opts):
        # A test's restricted Redis user may not be allowed to track.
        checker.register_output(r"refused client tracking")
    checker.reproducers.append(shlex.join(cmd))
    checker.note("mount: " + shlex.join(cmd))
    if lower_fd is None:
        lower_fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    else:
        lower_fd = os.dup(lower_fd)
    log = open(checker.path, "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    m = Mount(proc, mnt, lower_fd, cmd, checker)
    LIVE.add(m)
    try:
        try:
            wait_for_mount(proc, mnt)
            yield m
        except BaseException:
            _cleanup_failed(m)
            raise
        if m.killed:
            # The test killed the daemon: the dead layer and its bind.
            r = sessfs_u(mnt)
            assert r.returncode == 0, r.stdout
            assert not is_mounted(mnt), "still mounted after sessfs -u"
            return
        if m.self_unmount:
            try:
                rc = proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                diagnose_hang(m)
                _cleanup_failed(m)
                raise AssertionError("sessfs did not exit after unmounting "
                                     "itself")
            assert rc == 0, "sessfs exited with %d after unmounting " \
                "itself" % rc
            assert not is_mounted(mnt), "still mounted: %s" % mnt
            return
        r = fusermount_u(mnt)
        if r.returncode != 0:
            _cleanup_failed(m)
            raise AssertionError("fusermount3 -u -z failed: %s" % r.stdout)
        try:
            rc = proc.wait(10 * SLOW)
        except subprocess.TimeoutExpired:
            # Not the daemon's fault if another mount namespace holds a copy
            # of the mount: wait (bounded) for those processes to end.
            copies = other_ns_copies(mnt)
            if copies:
                checker.note("other mount namespaces hold the mount: %s"
                             % copies)
                with contextlib.suppress(AssertionError):
                    wait_for(lambda: not other_ns_copies(mnt), 120,
                             "other namespaces to drop the mount",
                             interval=0.5)
            try:
                rc = proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                diagnose_hang(m)
                _cleanup_failed(m)
                raise AssertionError(
                    "sessfs did not exit after the unmount; other mount "
                    "namespaces with a copy of it: %s"
                    % (other_ns_copies(mnt) or "none"))
        assert rc == 0, "sessfs exited with %d after the unmount" % rc
        assert not is_mounted(mnt), "still mounted after the unmount"
    finally:
        LIVE.remove(m)
        os.close(lower_fd)
        log.close()


# --------------------------------------------------------------- as another user

def call_in_child(setup, fn, *args):
    """Runs setup() then fn(*args) in a forked child and returns the
    result; an exception in the child (pickled) is raised here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            setup()
            res = ("ok", fn(*args))
        except BaseException as e:  # reported to the parent
            res = ("err", e)
        try:
            data = pickle.dumps(res)
        except Exception as e:
            data = pickle.dumps(("err", RuntimeError(repr(e))))
        with os.fdopen(w, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, val = pickle.loads(data)
    if kind == "err":
        raise val
    return val


def run_as(uid, gid, fn, *args, umask=0o077):
    """Runs fn(*args) in a forked child with uid/gid (no supplementary
    groups) and returns its result; an exception in the child (pickled) is
    raised here."""
    def setup():
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        os.umask(umask)
    return call_in_child(setup, fn, *args)


def as_www(fn, *args, **kw):
    return run_as(WWW_UID, WWW_GID, fn, *args, **kw)


def write_file(path, data, mode=0o600, flags=os.O_RDWR | os.O_CREAT):
    fd = os.open(path, flags, mode)
    try:
        assert os.write(fd, data) == len(data)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def assert_refused(res, mnt, *words):
    """Exit 1, one stderr line starting 'sessfs:' that names each of
    'words', nothing mounted on 'mnt'."""
    err = res.stderr.strip()
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert len(err.splitlines()) == 1, "not one line: %r" % res.stderr
    assert err.startswith("sessfs: "), err
    for w in words:
        assert w in err, "%r does not name %r" % (err, w)
    assert not is_mounted(mnt)
    return err


def php_read(path):
    """PHP's session read: open, flock, fstat, pread of exactly st_size."""
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        if len(data) != size:
            raise AssertionError("read %d of %d bytes" % (len(data), size))
        return data
    finally:
        os.close(fd)


def php_write(path, data):
    """PHP's session write: open, flock, ftruncate(0), one pwrite, close."""
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        n = os.pwrite(fd, data, 0)
        if n != len(data):
            raise OSError(errno.EIO, "short write %d" % n)
    finally:
        os.close(fd)


class Op(threading.Thread):
    """Runs fn() once on its own thread, keeping result, error and time."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = self.error = None
        self.took = None

    def run(self):
        t0 = time.monotonic()
        try:
            self.result = self.fn()
        except BaseException as e:
            self.error = e
        self.took = time.monotonic() - t0


def errno_of(fn, *args):
    """The errno 'fn(*args)' fails with, or None if it succeeds."""
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return None


def cachelib_bytes(expiry, payload=b"\x80\x05\x95\x00\x00\x00\x00\x00\x00"
                   b"\x00\x00}\x94."):
    """A cachelib file: 4-byte little-endian expiry + a pickle."""
    return int(expiry).to_bytes(4, "little") + payload


# --------------------------------------------------------------- web apps

def big_blob(kb):
    """What /big?kb=N stores, as both example apps make it."""
    import hashlib
    return "".join(hashlib.sha256(b"sessfs-big-%d" % i).hexdigest()
                   for i in range(kb * 16))


def sha256_hex(text):
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


class WebApp:
    """A real session client behind a real HTTP server, run as www-data:
    'php' is `php -S` with PHP_CLI_SERVER_WORKERS=8 and the files handler,
    'flask' is gunicorn -w 4 with Flask-Session's filesystem backend,
    'translate' the same with the drill's translate app (JSON routes),
    'django' is gunicorn -w 4 with Django's file session backend.  The
    app is copied from examples/ into a dir www-data can read.  (PHP-FPM
    behind nginx is FpmApp.)"""

    PHP_BAD = re.compile(r"PHP (Warning|Notice|Fatal|Parse|Deprecated)|"
                         r"Warning:|Fatal error|Notice:")
    FLASK_BAD = re.compile(r"Exception raised|Traceback|\[ERROR\]|"
                           r"\[CRITICAL\]|WARNING|Error")

    def __init__(self, kind, sessdir, root, env=None, workers=None):
        assert kind in ("php", "flask", "translate", "django", "php-fpm")
        self.kind = kind
        self.sessdir = Path(sessdir)
        self.root = Path(root)
        self.env = dict(env or {})
        self.workers = workers or (8 if kind == "php" else 4)
        self.port = None
        self.proc = None
        self.appdir = self.root / ("app-%s" % kind)
        n = 0
        while True:
            logpath = self.root / ("%s-%d.log" % (kind, n))
            if not logpath.exists():
                break
            n += 1
        self.checker = OutputChecker(
            logpath, self.PHP_BAD if kind == "php" else self.FLASK_BAD,
            what=kind)
        if kind in ("flask", "translate", "django"):
            # stop() sends SIGTERM to the whole process group: a worker
            # that gets it before its master's own TERM is reported so,
            # and one still busy after --graceful-timeout on a loaded
            # machine is killed (9; CI met it in a teardown).  A request
            # a killed worker dropped fails its test on its own.
            self.checker.register_output(
                r"\[WARNING\] Worker with pid \d+ was terminated due to "
                r"signal (9|15)$")

    def __repr__(self):
        return "<WebApp %s port=%s>" % (self.kind, self.port)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def _cmd(self):
        if self.kind == "php":
            return ["php", "-S", "127.0.0.1:%d" % self.port,
                    str(self.appdir / "index.php")]
        return [PYTHON, "-m", "gunicorn", "-w", str(self.workers),
                "-b", "127.0.0.1:%d" % self.port, "--chdir", str(self.appdir),
                "--graceful-timeout", "5",
                "wsgi:application" if self.kind == "django" else "app:app"]

    def _install(self):
        """The app, copied from examples/ into a dir www-data can read."""
        if not self.appdir.exists():
            shutil.copytree(EXAMPLES / self.kind.split("-")[0], self.appdir,
                            ignore=shutil.ignore_patterns("__pycache__"))
            for p in [self.appdir] + list(self.appdir.rglob("*")):
                p.chmod(0o755 if p.is_dir() else 0o644)

    def _env(self):
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": "/var/www",
            "LANG": "C.UTF-8",
            "SESS_DIR": str(self.sessdir),
            "PHP_CLI_SERVER_WORKERS": str(self.workers),
            "SECRET_KEY": "sessfs-test",
        }
        if self.kind == "django":
            env["DJANGO_SETTINGS_MODULE"] = "settings"
        env.update(self.env)
        return env

    def manage(self, *args, timeout=60):
        """`manage.py ARGS` of the Django app, run as www-data (as its
        cron job would) with the app's environment; the result of run(),
        its output also appended to the app's log (checked)."""
        assert self.kind == "django"
        self._install()
        cmd = [PYTHON, str(self.appdir / "manage.py")] + list(args)
        self.checker.note("run: " + shlex.join(cmd))
        res = run(cmd, cwd=self.appdir, env=self._env(), user=WWW_UID,
                  group=WWW_GID, extra_groups=[], timeout=timeout * SLOW)
        with open(self.checker.path, "a") as f:
            f.write(res.stdout + res.stderr)
        return res

    def start(self):
        self._install()
        env = self._env()
        for attempt in range(3):
            self.port = free_port()
            cmd = self._cmd()
            self.checker.note("start: " + shlex.join(cmd))
            self.checker.reproducers.append(shlex.join(cmd))
            log = open(self.checker.path, "ab")
            self.proc = subprocess.Popen(
                cmd, cwd=self.appdir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                user=WWW_UID, group=WWW_GID, extra_groups=[])
            log.close()
            LIVE.add(self)
            try:
                wait_for(self._healthy, 30, "%s to answer /health" % self.kind,
                         interval=0.05, check=self._died)
                return self
            except AssertionError:
                self.stop()
                if attempt == 2:
                    self.checker.dump()
                    raise

    def _died(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s server exited with %d"
                                 % (self.kind, self.proc.returncode))

    def _healthy(self):
        try:
            with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                return r.status == 200 and r.read() == b"ok"
        except (OSError, urllib.error.URLError):
            return False

    def stop(self):
        if self.proc is not None:
            # gunicorn's master stops its workers itself (a SIGTERM to the
            # whole group makes it log warnings); php -S workers outlive a
            # master that got SIGTERM, so they get theirs directly.
            stop_process(self.proc, group=self.kind == "php", timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        LIVE.remove(self)

    def abort(self, why):
        self.checker.note("aborted: %s" % why)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def client(self):
        return Client(self.base)

    @contextlib.contextmanager
    def running(self):
        self.start()
        try:
            yield self
        finally:
            self.stop()


PHP_FPM = "/usr/sbin/php-fpm8.2"
NGINX = "/usr/sbin/nginx"
SESSIONCLEAN = "/usr/lib/php/sessionclean"
# A route of the FPM stack only, for tests: /hold?flag=PATH opens the
# session (flock held), counts, and keeps it open while PATH exists (at
# most 20 s); answers "count=N".
HOLD_PHP = r"""<?php
ini_set('session.use_strict_mode', '1');
header('Content-Type: text/plain');
if (!session_start()) {
	http_response_code(500);
	exit;
}
$_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
$flag = (string)($_GET['flag'] ?? '');
$t0 = microtime(true);
while ($flag !== '' && file_exists($flag) && microtime(true) - $t0 < 20) {
	usleep(10000);
	clearstatcache();
}
echo "count=" . $_SESSION['count'];
"""


class FpmApp(WebApp):
    """The production PHP stack: Debian's php-fpm8.2 (master as root, the
    pool as www-data, static 8 children, listening on a unix socket) behind
    nginx (master as root, workers as www-data, on a free loopback port),
    serving examples/php/index.php for every path.  Both run in the
    foreground with their own config, pid and temp files under the test's
    tmp dir.  php.ini is Debian's production php-fpm php.ini plus
    session.save_path = the session dir (PHP's own GC off, as Debian has
    it: sessionclean() runs Debian's cron job) and error_log = the
    stack's log, which php-fpm's and nginx's error logs share (checked)."""

    BAD = re.compile(WebApp.PHP_BAD.pattern + r"|\b(WARNING|ERROR|ALERT)\b|"
                     r"\[(warn|error|crit|alert|emerg)\]")

    def __init__(self, sessdir, root, env=None, workers=8):
        super().__init__("php-fpm", sessdir, root, env, workers)
        # One run dir per stack (the log's number): two hosts in one test
        # each run their own php-fpm and nginx.
        n = self.checker.path.stem.rsplit("-", 1)[1]
        self.run_dir = self.root / ("fpm-run" if n == "0" else "fpm-run-" + n)
        self.checker.bad = self.BAD
        self.checker.what = "php-fpm/nginx"
        self.ini = self.run_dir / "php.ini"
        self.nginx = None

    def _configure(self):
        self._install()
        (self.appdir / "hold.php").write_text(HOLD_PHP)
        (self.appdir / "hold.php").chmod(0o644)
        rd = self.run_dir
        rd.mkdir(exist_ok=True)
        rd.chmod(0o755)
        log = self.checker.path
        os.chown(log, WWW_UID, WWW_GID)  # PHP's error_log, as www-data
        ini = Path("/etc/php/8.2/fpm/php.ini").read_text()
        extra = {"session.save_path": '"%s"' % self.sessdir,
                 "error_log": str(log)}
        extra.update(self.env)  # more php.ini settings
        self.ini.write_text(ini + "\n; sessfs test\n" + "".join(
            "%s = %s\n" % kv for kv in extra.items()))
        self.sock = rd / "fpm.sock"
        (rd / "php-fpm.conf").write_text(
            "[global]\npid = %s\nerror_log = %s\ndaemonize = no\n"
            "log_level = notice\n\n"
            "[www]\nuser = www-data\ngroup = www-data\nlisten = %s\n"
            "listen.owner = www-data\nlisten.group = www-data\n"
            "listen.mode = 0660\npm = static\npm.max_children = %d\n"
            "catch_workers_output = yes\n"
            % (rd / "fpm.pid", log, self.sock, self.workers))
        for d in ("nginx", "nginx/tmp"):
            (rd / d).mkdir(exist_ok=True)
        fcgi = ("include /etc/nginx/fastcgi_params;\n"
                "            fastcgi_pass unix:%s;\n" % self.sock)
        (rd / "nginx" / "nginx.conf").write_text("""\
user www-data;
worker_processes 2;
pid %(rd)s/nginx/nginx.pid;
error_log %(log)s warn;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %(rd)s/nginx/tmp/body;
    fastcgi_temp_path %(rd)s/nginx/tmp/fastcgi;
    proxy_temp_path %(rd)s/nginx/tmp/proxy;
    uwsgi_temp_path %(rd)s/nginx/tmp/uwsgi;
    scgi_temp_path %(rd)s/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location = /hold {
            %(fcgi)s            fastcgi_param SCRIPT_FILENAME %(app)s/hold.php;
        }
        location / {
            %(fcgi)s            fastcgi_param SCRIPT_FILENAME %(app)s/index.php;
        }
    }
}
""" % {"rd": rd, "log": log, "port": self.port, "fcgi": fcgi,
       "app": self.appdir})

    def _spawn(self, cmd):
        self.checker.note("start: " + shlex.join(cmd))
        self.checker.reproducers.append(shlex.join(cmd))
        with open(self.checker.path, "ab") as log:
            return subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                     "LANG": "C.UTF-8"})

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            self._configure()
            rd = self.run_dir
            # A restart: nothing of the last run may pass for this one.
            self.nginx = None
            with contextlib.suppress(FileNotFoundError):
                self.sock.unlink()
            self.proc = self._spawn([PHP_FPM, "-F", "-O", "-c", str(self.ini),
                                     "-y", str(rd / "php-fpm.conf")])
            LIVE.add(self)
            try:
                wait_for(self.sock.exists, 30, "php-fpm's socket",
                         check=self._died)
                self.nginx = self._spawn(
                    [NGINX, "-p", str(rd / "nginx"), "-e",
                     str(self.checker.path), "-c",
                     str(rd / "nginx" / "nginx.conf"), "-g", "daemon off;"])
                wait_for(self._healthy, 30, "nginx + php-fpm to answer "
                         "/health", interval=0.05, check=self._died)
                return self
            except AssertionError:
                self.stop()
                if attempt == 2:
                    self.checker.dump()
                    raise

    def _died(self):
        for name, p in (("php-fpm", self.proc), ("nginx", self.nginx)):
            if p is not None and p.poll() is not None:
                raise AssertionError("%s exited with %d"
                                     % (name, p.returncode))

    def pids(self):
        """The php-fpm processes of this stack (master and pool: the
        master's process group)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open("/proc/%s/stat" % pid) as f:
                    # pid (comm) state ppid pgrp ...; comm may hold spaces
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid:
                    found.append(int(pid))
        return found

    def stop(self):
        # The masters stop their workers themselves: SIGQUIT to nginx's
        # (graceful), SIGTERM to php-fpm's; then whatever is left of
        # either group is killed.
        for p, sig in ((self.nginx, signal.SIGQUIT),
                       (self.proc, signal.SIGTERM)):
            if p is None:
                continue
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, sig)
                try:
                    p.wait(10 * SLOW)
                except subprocess.TimeoutExpired:
                    pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
        LIVE.remove(self)

    def abort(self, why):
        self.checker.note("aborted: %s" % why)
        for p in (self.nginx, self.proc):
            if p is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)


def make_web_app(kind, sessdir, root, env=None):
    """A WebApp of 'kind' ("php", "flask", "translate", "django") or, for
    "php-fpm", an FpmApp (its 'env' are php.ini settings)."""
    if kind == "php-fpm":
        return FpmApp(sessdir, root, env)
    return WebApp(kind, sessdir, root, env)


def sessionclean(ini, checker=None):
    """Debian's /usr/lib/php/sessionclean (php-common's cron job), run
    unchanged, as root, against the session dir of the php.ini 'ini': in a
    private mount namespace, 'ini' is bind-mounted over every
    /etc/php/*/*/php.ini there is (the script reads the session settings
    of each SAPI from its php.ini), so that it cleans that dir only, and
    not the system's /var/lib/php/sessions.  Returns run()'s result."""
    inis = sorted(str(p) for p in Path("/etc/php").glob("*/*/php.ini"))
    assert inis, "no /etc/php/*/*/php.ini: is php-common installed?"
    script = ('ini=$1; shift; for f; do mount --bind "$ini" "$f" || exit 99;'
              ' done; exec %s' % SESSIONCLEAN)
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-ec", script,
           "sh", str(ini)] + inis
    if checker is not None:
        checker.note("run: " + shlex.join(cmd))
    return run(cmd, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                         "LANG": "C.UTF-8"})


class Client:
    """One simulated user: urllib with its own cookie jar."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path, expect=200, timeout=30):
        """GET 'path'; returns the body (str).  Fails unless the status is
        'expect' (None: return (status, body))."""
        try:
            with self.opener.open(self.base + path,
                                  timeout=timeout * SLOW) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode(errors="replace")
        if expect is None:
            return status, body
        assert status == expect, "GET %s: %d %r" % (path, status, body[:300])
        return body

    def post(self, path, data, expect=200, timeout=30):
        """POST the form 'data' (a dict) to 'path'; like get()."""
        body = urllib.parse.urlencode(data).encode()
        try:
            with self.opener.open(self.base + path, data=body,
                                  timeout=timeout * SLOW) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        if expect is None:
            return status, text
        assert status == expect, "POST %s: %d %r" % (path, status, text[:300])
        return text

    def cookies(self):
        return {c.name: c.value for c in self.jar}

    def clone(self, base=None):
        """A new user holding the same cookies (to replay them later)."""
        c = Client(base or self.base)
        for cookie in self.jar:
            c.jar.set_cookie(cookie)
        return c


def php_sid(client):
    return client.cookies()["PHPSESSID"]


def flask_file(client):
    """The cachelib file name of the Flask session of 'client'."""
    import hashlib
    sid = client.cookies()["session"]
    return hashlib.md5(("session:" + sid).encode()).hexdigest()


def errno_name(e):
    return errno.errorcode.get(e, str(e))


def run(cmd, **kw):
    """subprocess.run with output captured as text and a deadline."""
    kw.setdefault("timeout", 60 * SLOW)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def migrate(*args, rc=0, timeout=60):
    """Runs sessfs-migrate with 'args' (str() of each); checks its exit
    status against 'rc' unless that is None."""
    p = run([str(MIGRATE)] + [str(a) for a in args], timeout=timeout * SLOW)
    if rc is not None:
        assert p.returncode == rc, (
            "sessfs-migrate %s: exit %d, not %d\nstdout: %s\nstderr: %s"
            % (" ".join(map(str, args)), p.returncode, rc, p.stdout,
               p.stderr))
    return p


@contextlib.contextmanager
def app_on_mount(kind, redis_server, sessdir, checker, make_app, env=None,
                 opts=()):
    """sessfs on 'sessdir' and a real 'kind' app on top; the app is stopped
    before the unmount.  Yields (Mount, WebApp)."""
    with mounted(redis_server.url(), sessdir, checker,
                 opts=["allow_other"] + list(opts)) as m:
        app = make_app(kind, sessdir, env)
        try:
            yield m, app
        finally:
            app.stop()


# ------------------------------------------------------------ histories

def seq_of(value):
    """The sequence number History wrote into 'value' (0: empty)."""
    return int(value.split(b"|")[1]) if value else 0


class History:
    """PHP-style writers over 'n' sessions of 'mnt' and a delete now and
    then: every acknowledged operation is logged with its sequence number,
    every failed one marks its name uncertain until the next acknowledged
    one (a failed write "may be stored").  Before each operation a writer
    reads its name back: a value older than its last acknowledged write is
    a stale read (lost_seen), an older value where it last deleted the
    name a resurrected delete (resurrected_seen).  check() reads the
    whole history back from Redis at the end.  Used through Sentinel
    failovers (test_sentinel) and cluster reshards and failovers
    (test_cluster)."""

    def __init__(self, mnt, n=24, writers=4, prefix="sessfs:"):
        self.mnt = Path(mnt)
        self.prefix = prefix
        self.names = ["sess_h%03d" % i for i in range(n)]
        self.lock = threading.Lock()
        self.acked = {}  # name -> (seq, "w" or "d")
        self.uncertain = set()
        self.acks = []  # monotonic times of acknowledged ops
        self.ack_names = []  # their names, in the same order
        self.errors = []
        self.lost_seen = 0
        self.lost_at = []
        self.resurrected_seen = 0
        self.stop = threading.Event()
        self.seq = 0
        self.threads = [threading.Thread(target=self.run, args=(k, writers),
                                         daemon=True)
                        for k in range(writers)]

    def start(self):
        for t in self.threads:
            t.start()

    def _read_back(self, name, path, before):
        if not before or name in self.uncertain:
            return
        t = time.monotonic()
        if before[1] == "w":
            if seq_of(php_read(path)) < before[0]:
                with self.lock:
                    self.lost_seen += 1
                    self.lost_at.append(t)
        else:
            # PHP's read of a deleted session creates it empty.
            seq = seq_of(php_read(path))
            if 0 < seq < before[0]:
                with self.lock:
                    self.resurrected_seen += 1

    def run(self, k, writers):
        mine = self.names[k::writers]
        i = 0
        while not self.stop.is_set():
            name = mine[i % len(mine)]
            i += 1
            with self.lock:
                self.seq += 1
                seq = self.seq
                before = self.acked.get(name)
            path = self.mnt / name
            delete = seq % 7 == 0
            try:
                self._read_back(name, path, before)
                if delete:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                else:
                    php_write(path, b"s|%d" % seq)
            except OSError as e:
                with self.lock:
                    self.errors.append((time.monotonic(), e.errno))
                    self.uncertain.add(name)
                continue
            with self.lock:
                self.acked[name] = (seq, "d" if delete else "w")
                self.uncertain.discard(name)
                self.acks.append(time.monotonic())
                self.ack_names.append(name)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30 * SLOW)

    def first_ack_after(self, t, names=None):
        """The time of the first operation acknowledged at or after 't'
        (of one of 'names' if given), or None."""
        with self.lock:
            return next((a for a, n in zip(self.acks, self.ack_names)
                         if a >= t and (names is None or n in names)), None)

    def check(self, r):
        """Reads every name back from Redis ('r', a client that reaches
        every name's key): (lost writes, resurrected deletes) among the
        certain names."""
        lost = resurrected = 0
        for name, (seq, op) in self.acked.items():
            if name in self.uncertain:
                continue
            v = r.get(value_key(self.prefix, name))
            if op == "w" and (v is None or seq_of(v) < seq):
                lost += 1
            if op == "d" and v is not None and seq_of(v) < seq:
                resurrected += 1
        return lost, resurrected


class AppLoad:
    """Clients of real apps during failovers, each with its own session:
    log in, then /incr (PHP: /incr_checked, which answers only once the
    session is stored) and a read-only /whoami, in turn.  An increment
    answered 200 is acknowledged: a later count below it is a lost write;
    a /whoami count below the last acknowledged one a stale read;
    "anonymous" after a login a lost session.  A failed increment may be
    stored (the next count may skip one)."""

    def __init__(self, apps, per_app=2):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.acks = []
        self.errors = 0
        self.lost = self.stale = self.lost_sessions = self.requests = 0
        self.threads = [threading.Thread(target=self.run,
                                         args=(app, path, "%s%d" % (k, i)),
                                         daemon=True)
                        for k, (app, path) in apps.items()
                        for i in range(per_app)]

    def start(self):
        for t in self.threads:
            t.start()

    def get(self, c, path):
        try:
            status, body = c.get(path, expect=None, timeout=15)
        except OSError:
            status, body = 0, ""
        with self.lock:
            self.requests += 1
            if status != 200:
                self.errors += 1
        return body if status == 200 else None

    def run(self, app, incr, user):
        c = app.client()
        while self.get(c, "/login?user=" + user) != "ok user=" + user:
            if self.stop.wait(0.1):
                return
        last = 0
        while not self.stop.is_set():
            body = self.get(c, incr)
            if body is not None:
                n = int(body.split("=")[1])
                with self.lock:
                    self.lost += max(0, last + 1 - n)
                    self.acks.append(time.monotonic())
                last = max(last, n)
            body = self.get(c, "/whoami")
            if body == "anonymous":
                with self.lock:
                    self.lost_sessions += 1
                return
            if body is not None and int(body.split("count=")[1]) < last:
                with self.lock:
                    self.stale += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60 * SLOW)

    def first_ack_after(self, t):
        with self.lock:
            return next((a for a in self.acks if a >= t), None)


def in_parallel(fn, args, workers=None):
    """fn(arg) for every arg on its own thread; returns the results, or
    raises the first exception (after all finished)."""
    import concurrent.futures
    args = list(args)
    with concurrent.futures.ThreadPoolExecutor(workers or len(args)) as ex:
        futs = [ex.submit(fn, a) for a in args]
        return [f.result() for f in futs]
