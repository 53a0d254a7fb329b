# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs-migrate's online commands (mode, status, export --mount, verify
--mount) against a real mount's control socket, with the real PHP and
Flask apps of examples/ under continuous load: every simulated user logs
in, then keeps counting (/incr) and reading (/whoami), and every reply is
checked.  Mode changes back and forth must fail no request, and at the end
every user's session must hold exactly the count the user made.

The Load class here is shared with test_rollback.py.
"""

import json
import os
import re
import socket
import threading
import time

import pytest

import util
from util import BUILD_DIR, SLOW, wait_for

MIGRATE = BUILD_DIR / "migrate" / "sessfs-migrate"
PREFIX = "sessfs:"  # the mount's default

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not MIGRATE.exists(), reason="%s not built" % MIGRATE),
    pytest.mark.skipif(not util.SESSFS.exists(),
                       reason="%s not built" % util.SESSFS),
]


# ----------------------------------------------------------------- helpers

# The online commands wait for the daemon: twice the default deadline.
def migrate(*args, rc=0, timeout=120):
    return util.migrate(*args, rc=rc, timeout=timeout)


class Online:
    """The online commands of sessfs-migrate on one mount."""

    def __init__(self, mnt, ctl_dir):
        self.mnt = str(mnt)
        self.ctl_dir = str(ctl_dir)

    def __call__(self, cmd, *args, rc=0, timeout=120):
        return migrate(cmd, *args, "--mount", self.mnt, "--ctl-dir",
                       self.ctl_dir, rc=rc, timeout=timeout)

    def mode(self, to, *extra, rc=0):
        return self("mode", to, *extra, rc=rc)

    def status(self):
        return json.loads(self("status", "--json").stdout)


class User:
    """One simulated user of one app, with what its session must hold."""

    def __init__(self, app, name):
        self.app = app
        self.name = name
        self.client = app.client()
        self.count = None  # None: not logged in yet

    def __repr__(self):
        return "%s/%s" % (self.app.kind, self.name)


class Load:
    """Simulated users on real apps, one thread each: log in once, then
    /incr (the reply must be the next count) with a /whoami check every
    few requests.  Every request is counted per phase; any reply that is
    not the expected one is an error (with its phase).  stop() and start()
    again continue with the same users (their cookies and counts)."""

    WHOAMI_EVERY = 4

    def __init__(self, apps, users_per_app=6, tag="u"):
        self.users = [User(app, "%s%s%d" % (app.kind, tag, i))
                      for app in apps for i in range(users_per_app)]
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = []
        self.phase_name = "start"
        self.phases = []  # [name, start time, end time, requests, errors]
        self.threads = []
        self.stopping = threading.Event()
        self.phase(self.phase_name)

    # -- phases

    def phase(self, name):
        """Starts counting a new phase; the previous one ends now."""
        now = time.monotonic()
        with self.lock:
            if self.phases:
                self.phases[-1][2] = now
            self.phases.append([name, now, None, 0, 0])
            self.phase_name = name

    def _count(self, error=None):
        with self.lock:
            self.requests += 1
            self.phases[-1][3] += 1
            if error is not None:
                self.phases[-1][4] += 1
                self.errors.append("[%s] %s" % (self.phase_name, error))

    def wait_requests(self, n, timeout=60):
        """Waits until 'n' more requests were answered."""
        with self.lock:
            goal = self.requests + n
        wait_for(lambda: self.requests >= goal, timeout,
                 "%d more requests of the load" % n)

    def table(self):
        """The phases as printable lines."""
        lines = ["%-34s %8s %8s %6s" % ("phase", "seconds", "requests",
                                        "errors")]
        for name, t0, t1, req, err in self.phases:
            lines.append("%-34s %8.2f %8d %6d" % (
                name, (t1 or time.monotonic()) - t0, req, err))
        return "\n".join(lines)

    # -- the users

    def _get(self, user, path, want):
        """One request; True when the reply was 'want'."""
        try:
            status, body = user.client.get(path, expect=None, timeout=30)
        except Exception as e:  # connection refused, timeout
            self._count("%r GET %s: %s" % (user, path, e))
            return False
        if status != 200 or body != want:
            self._count("%r GET %s: %d %r, expected %r"
                        % (user, path, status, body[:200], want))
            return False
        self._count()
        return True

    def _resync(self, user):
        """After an error the count is unknown: read it back."""
        try:
            status, body = user.client.get("/whoami", expect=None)
            m = re.fullmatch(r"user=\S+ count=(\d+)", body)
            user.count = int(m.group(1)) if status == 200 and m else None
        except Exception:
            user.count = None

    def _run(self, user):
        n = 0
        while not self.stopping.is_set():
            if user.count is None:
                if self._get(user, "/login?user=" + user.name,
                             "ok user=" + user.name):
                    user.count = 0
                continue
            n += 1
            if n % self.WHOAMI_EVERY == 0:
                if not self._get(user, "/whoami", "user=%s count=%d"
                                 % (user.name, user.count)):
                    self._resync(user)
                continue
            if self._get(user, "/incr", "count=%d" % (user.count + 1)):
                user.count += 1
            else:
                self._resync(user)

    def start(self):
        self.stopping.clear()
        self.threads = [threading.Thread(target=self._run, args=(u,),
                                         daemon=True) for u in self.users]
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60 * SLOW)
            assert not t.is_alive(), "a load thread hangs"
        self.threads = []
        self.phase("stopped")

    def check_sessions(self):
        """Asks every user's app who the user is: (checked, lost users)."""
        lost = []
        for u in self.users:
            want = ("user=%s count=%d" % (u.name, u.count)
                    if u.count is not None else None)
            status, body = u.client.get("/whoami", expect=None)
            if status != 200 or body != want:
                lost.append("%r: %d %r, expected %r" % (u, status, body, want))
        return len(self.users), lost


def check_load(load):
    """Prints the phase table; no error, no lost session."""
    checked, lost = load.check_sessions()
    print(load.table())
    print("sessions checked=%d lost=%d" % (checked, len(lost)))
    assert not load.errors, "failed requests:\n  " + "\n  ".join(
        load.errors[:30])
    assert not lost, "lost sessions:\n  " + "\n  ".join(lost)
    assert all(u.count and u.count > 0 for u in load.users), \
        "a user never counted: %r" % load.users


@pytest.fixture
def ctl_dir(tmp):
    """The mounts' control sockets: under the test's tmp dir, not in
    /run/sessfs."""
    return tmp / "ctl"


def mount_opts(ctl_dir, mode):
    return ["allow_other", "mode=%s" % mode, "ctl_dir=%s" % ctl_dir]


def fnv1a64(path):
    h = 0xcbf29ce484222325
    for b in os.path.realpath(path).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


# ----------------------------------------------------------------- tests

# Requests of the load between two steps.
PHASE_REQUESTS = 200

# The walk of test_modes_back_and_forth_under_load: every step the design
# allows, in both directions, with what each guard asks for done first.
PLAN = [
    ("mode", "dual-write"),
    ("copy",),
    ("verify",),
    ("mode", "redis-first"),
    ("mode", "redis-only"),
    ("mode", "redis-first"),
    ("export",),
    ("mode", "dual-write"),
    ("mode", "files"),
    ("mode", "dual-write"),
    ("verify",),
    ("mode", "redis-first"),
    ("mode", "redis-only"),
]


def test_modes_back_and_forth_under_load(redis, redis_server, sessdir,
                                         checker, make_app, ctl_dir):
    """Users of a PHP and a Flask app log in on plain files; sessfs is
    mounted over the directory in mode files, then walked through every
    mode and back while the users keep counting: no request fails at any
    switch, and every user's count is intact at the end."""
    php = make_app("php", sessdir)
    flask = make_app("flask", sessdir)
    load = Load([php, flask])
    load.phase("plain files (not mounted)")
    load.start()
    try:
        load.wait_requests(60)
        with util.mounted(redis_server.url(), sessdir, checker,
                          opts=mount_opts(ctl_dir, "files")) as m:
            on = Online(m.mnt, ctl_dir)
            load.phase("mounted: files")
            load.wait_requests(PHASE_REQUESTS)
            for step in PLAN:
                if step[0] == "mode":
                    out = on.mode(step[1]).stdout
                    assert "-> %s" % step[1] in out, out
                    assert on.status()["mode"] == step[1]
                elif step[0] == "copy":
                    # Offline copy reads the files under the mount while
                    # dual-write keeps both stores current.
                    migrate("copy", "--no-progress", sessdir,
                            redis_server.url())
                elif step[0] == "verify":
                    out = on("verify").stdout
                    assert "0 differences" in out, out
                elif step[0] == "export":
                    out = on("export").stdout
                    assert "0 errors" in out, out
                load.phase(" ".join(step))
                load.wait_requests(PHASE_REQUESTS)
            load.stop()
            check_load(load)
            st = on.status()
            assert st["mode"] == "redis-only"
            assert st["journal"] == 0 and st["fenced"] == 0
            php.stop()
            flask.stop()
    finally:
        load.stopping.set()


def test_refused_transitions_and_force(redis, redis_server, sessdir, checker,
                                       ctl_dir):
    """Each step that could serve stale data is refused with its reason
    and what to run; --force skips the guard; the mode is unchanged after
    a refusal."""
    util.write_file(sessdir / "sess_a", b"a|i:1;")
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=mount_opts(ctl_dir, "files")) as m:
        on = Online(m.mnt, ctl_dir)

        def refused(to, reason):
            p = on.mode(to, rc=1)
            assert reason in p.stderr, p.stderr
            assert p.stderr.startswith("error: cannot change mode from "), \
                p.stderr
            assert p.stdout == ""

        for to in ("redis-first", "redis-only"):
            refused(to, "from files, go through dual-write: run "
                    "'sessfs-migrate mode dual-write --mount %s'" % m.mnt)
        assert on.status()["mode"] == "files"
        on.mode("dual-write")
        refused("redis-first", "no copy + verify of this host's files has "
                "completed since the "
                "last files period")
        # A legacy file Redis does not have yet: verify says so (exit 1),
        # until a copy brings it (read underneath the live mount).
        p = on("verify", rc=1)
        assert "'sess_a': missing in redis" in p.stdout, p.stdout
        migrate("copy", sessdir, redis_server.url(), "--no-progress")
        on("verify")
        on.mode("redis-first")
        on.mode("redis-only")
        for to in ("dual-write", "files"):
            refused(to, "in redis-only the sessions are only in redis: run "
                    "'sessfs-migrate mode redis-first --mount %s' and "
                    "'sessfs-migrate export --mount %s' first"
                    % (m.mnt, m.mnt))
        on.mode("redis-first")
        for to in ("dual-write", "files"):
            refused(to, "the files underneath are not known to be current: "
                    "run 'sessfs-migrate export --mount %s' first" % m.mnt)
        assert not on.status()["lower_current"]
        on("export")
        assert on.status()["lower_current"]
        on.mode("dual-write")
        on.mode("files")

        # --json: the daemon's refusal as it is, exit 1.
        p = on.mode("redis-only", "--json", rc=1)
        reply = json.loads(p.stdout)
        assert reply["ok"] is False
        assert "go through dual-write" in reply["error"]

        # --force skips the guard, and says so.
        p = on.mode("redis-first", "--force")
        assert "files -> redis-first" in p.stdout and "forced" in p.stdout
        reply = json.loads(on.mode("files", "--force", "--json").stdout)
        assert reply == {"ok": True, "from": "redis-first", "mode": "files",
                         "forced": True, "seconds": reply["seconds"]}
        assert "already in mode files" in on.mode("files").stdout

        # export --mount where the files are authoritative: refused here.
        p = on("export", rc=1)
        assert "is in mode files" in p.stderr, p.stderr
        assert util.read_file(m.path("sess_a")) == b"a|i:1;"


def test_status_fields(redis, redis_server, sessdir, checker, ctl_dir):
    """status: human lines and --json (the daemon's fields, plus healthy,
    problems and the socket path)."""
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=mount_opts(ctl_dir, "dual-write")) as m:
        on = Online(m.mnt, ctl_dir)
        for i in range(20):
            util.write_file(m.path("sess_%d" % i), b"n|i:%d;" % i)
        st = on.status()
        for key in ("protocol", "version", "mode", "mountpoint", "redis",
                    "prefix", "host_id", "redis_up", "journal",
                    "journal_corrupt", "fenced", "recent", "lower_current",
                    "layers", "dead_layers", "healthy", "problems",
                    "socket"):
            assert key in st, key
        assert st["ok"] is True and st["protocol"] == 1
        assert st["mode"] == "dual-write"
        assert st["mountpoint"] == str(m.mnt)
        assert st["prefix"] == PREFIX
        assert st["redis_up"] is True and st["journal"] == 0
        assert st["recent"]["ops"] >= 20 and st["recent"]["errors"] == 0
        assert st["layers"] == 1 and st["dead_layers"] == 0
        assert st["healthy"] is True and st["problems"] == []
        assert os.path.exists(st["socket"])
        assert os.stat(st["socket"]).st_mode & 0o777 == 0o600

        out = on("status").stdout
        assert re.search(r"^mode: +dual-write$", out, re.M), out
        assert re.search(r"^health: +ok$", out, re.M), out
        assert re.search(r"^layers: +1 sessfs mounts, 0 dead$", out, re.M)
        assert re.search(r"^recent ops: +\d+, 0 errors", out, re.M), out


def test_verify_and_export_online(redis, redis_server, sessdir, checker,
                                  ctl_dir):
    """verify --mount lists what differs between Redis and the files
    underneath (exit 1); export --mount brings the files up to Redis."""
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=mount_opts(ctl_dir, "redis-only")) as m:
        on = Online(m.mnt, ctl_dir)
        for i in range(5):
            util.write_file(m.path("sess_%d" % i), b"v|i:%d;" % i)
        os.unlink(m.path("sess_4"))
        on.mode("redis-first")
        p = on("verify", rc=1)
        for i in range(4):
            assert "'sess_%d': missing underneath" % i in p.stdout, p.stdout
        assert "4 differences" in p.stdout
        reply = json.loads(on("verify", "--json", rc=1).stdout)
        # sess_4 is checked too: deleted in Redis, absent underneath.
        assert reply["differences"] == 4 and reply["checked"] == 5
        assert sorted(d["name"] for d in reply["diff"]) == \
            ["sess_%d" % i for i in range(4)]

        reply = json.loads(on("export", "--json").stdout)
        assert (reply["ok"], reply["names"], reply["written"],
                reply["errors"]) == (True, 5, 4, 0)
        assert "0 differences" in on("verify").stdout
        assert sorted(n for n in m.lower_names()
                      if n.startswith("sess_")) == \
            ["sess_%d" % i for i in range(4)]

        # A file changed underneath behind the daemon's back is found.
        fd = os.open("sess_1", os.O_WRONLY | os.O_TRUNC, dir_fd=m.lower_fd)
        os.write(fd, b"changed")
        os.close(fd)
        p = on("verify", rc=1)
        assert "'sess_1': bytes differ" in p.stdout, p.stdout
        on("export")
        on("verify")


def test_errors_name_what_to_run(redis, redis_server, sessdir, checker,
                                 ctl_dir, tmp):
    """Usage errors exit 2; an unreachable daemon exits 1 with what to do."""
    p = migrate("mode", "redis-first", rc=2)
    assert "mode needs --mount MOUNTPOINT" in p.stderr
    p = migrate("mode", "sideways", "--mount", sessdir, rc=2)
    assert "invalid mode 'sideways'" in p.stderr
    p = migrate("status", "--mount", sessdir, "extra", rc=2)
    p = migrate("export", "--mount", sessdir, "--prefix", "x:", rc=2)
    assert "takes no URL, DIR or key options" in p.stderr
    p = migrate("rollback", rc=2)
    p = migrate("status", "--mount", sessdir, rc=1)
    assert "is not a sessfs mount" in p.stderr and "findmnt" in p.stderr
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=mount_opts(ctl_dir, "files")) as m:
        p = migrate("status", "--mount", m.mnt, "--ctl-dir", tmp / "elsewhere",
                    rc=1)
        assert "no control socket for '%s'" % m.mnt in p.stderr
        assert "--ctl-dir" in p.stderr
        # The offline export never writes under a live mount.
        p = migrate("export", redis_server.url(), m.mnt, rc=2)
        assert "export --mount %s" % m.mnt in p.stderr, p.stderr


def test_socket_named_by_fnv1a(redis, redis_server, sessdir, checker,
                               ctl_dir):
    """The socket is <ctl_dir>/<FNV-1a 64 of the mountpoint>.sock."""
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=mount_opts(ctl_dir, "files")):
        assert sorted(os.listdir(ctl_dir)) == [fnv1a64(sessdir) + ".sock"]


def raw_request(ctl_dir, req):
    """One request on the only socket in 'ctl_dir', without the CLI."""
    (name,) = os.listdir(ctl_dir)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.path.join(ctl_dir, name))
        f = s.makefile("rw")
        f.write(json.dumps(req) + "\n")
        f.flush()
        return json.loads(f.readline())


def test_daemon_export_keeps_authoritative_files(redis, redis_server, sessdir,
                                                 checker, ctl_dir):
    """{"cmd": "export"} in mode files must not regress a file."""
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=mount_opts(ctl_dir, "dual-write")) as m:
        util.write_file(m.path("sess_a"), b"old")
        Online(m.mnt, ctl_dir).mode("files")
        util.write_file(m.path("sess_a"), b"newer",
                        flags=os.O_RDWR | os.O_TRUNC)
        reply = raw_request(ctl_dir, {"cmd": "export"})
        data = util.read_file(m.path("sess_a"))
        assert data == b"newer", "after %r: %r" % (reply, data)
