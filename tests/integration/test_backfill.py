# SPDX-License-Identifier: GPL-2.0-or-later
"""The online backfill (sessfs-migrate copy --mount) and shadow reads
(-o shadow=PERCENT) against real mounts and a real redis-server.

- A history check: two mounts of one prefix (two hosts, each with its own
  lower dir) in dual-write, PHP-like clients (util.php_read/php_write, one
  client per mount, each session sticky to one host as behind a load
  balancer) read, rewrite, create and delete sessions while both daemons
  backfill at a rate limit; then verify --mount and redis-first.  Every
  read must return the last acknowledged write; at the end, through both
  mounts and in Redis: no acknowledged write lost, no delete undone, every
  live session in Redis.  Some sessions start in both lower dirs (a user
  who moved between hosts): the other host's older copy must not come
  back over a newer write or a delete.
- kill -9 of the daemon mid-backfill; a new daemon over the dead mount
  resumes from the saved cursor and completes; nothing regressed.
- Shadow reads count a planted difference and a session missing in Redis,
  and nothing else under load.

Bounded for CI: a few hundred sessions, rate limits of a few hundred per
second, about 10-15 s per test on the 2-core VM.
"""

import errno
import json
import os
import random
import threading
import time

import pytest

import util
from modeutil import ModeMount
from util import BUILD_DIR, php_read, php_write, wait_for

MIGRATE = BUILD_DIR / "migrate" / "sessfs-migrate"
PREFIX = "sessfs:"
DAY_NS = 24 * 3600 * 10**9

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not MIGRATE.exists(), reason="%s not built" % MIGRATE),
]


migrate = util.migrate


class Host:
    """One host: its lower dir, its ModeMount (state and control dirs) and
    what its client acknowledged, name -> bytes (None: deleted)."""

    def __init__(self, tmp, redis_server, checker, tag):
        root = tmp / tag
        root.mkdir()
        self.tag = tag
        self.sessdir = util.make_sessdir(root)
        self.mm = ModeMount(root, redis_server, checker)
        self.model = {}
        self.lock = threading.Lock()
        self.errors = []
        self.ops = 0

    def opts(self, *extra):
        return ["host_id=host-%s" % self.tag] + list(extra)

    def migrate(self, cmd, *args, rc=0):
        return migrate(cmd, *args, "--mount", self.sessdir, "--ctl-dir",
                       self.mm.ctl_dir, rc=rc)

    def backfill(self):
        return self.mm.status()["backfill"]


def seed(path, data, mtime_ns, dir_fd=None):
    """A session file in a lower dir: 'path' a name in 'dir_fd' (a lower
    dir under its mount) or a path (not mounted)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600,
                 dir_fd=dir_fd)
    try:
        os.write(fd, data)
        os.fchown(fd, util.WWW_UID, util.WWW_GID)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


def serving_status(host):
    """The status once the (new) daemon answers on its socket."""
    def get():
        try:
            return host.mm.status()
        except OSError:
            return None
    return wait_for(get, 20, "the daemon of %s to answer" % host.tag)


def client(host, m, names, stop, seed_no):
    """A PHP-like client on one mount: reads must give the last
    acknowledged write (or ENOENT after a delete), then rewrites, deletes
    or creates; every acknowledged result goes into host.model."""
    rnd = random.Random(seed_no)
    created = 0
    while not stop.is_set():
        name = rnd.choice(names)
        with host.lock:
            want = host.model.get(name)
        try:
            if want is None:
                if rnd.random() < 0.5:
                    continue
                data = b"new|%s|%d;" % (name.encode(), host.ops)
                php_write(m.path(name), data)
                with host.lock:
                    host.model[name] = data
            else:
                got = php_read(m.path(name))
                if got != want:
                    host.errors.append("stale read of %s: %r, not %r"
                                       % (name, got[:40], want[:40]))
                r = rnd.random()
                if r < 0.1:
                    os.unlink(m.path(name))
                    with host.lock:
                        host.model[name] = None
                elif r < 0.8:
                    data = b"v|%s|%d;" % (name.encode(), host.ops)
                    php_write(m.path(name), data)
                    with host.lock:
                        host.model[name] = data
            if rnd.random() < 0.05:
                new = "sess_%snew%d" % (host.tag, created)
                created += 1
                data = b"fresh|%d;" % created
                php_write(m.path(new), data)
                with host.lock:
                    host.model[new] = data
                names.append(new)
            host.ops += 1
        except OSError as e:
            host.errors.append("%s on %s: %s" % (type(e).__name__, name, e))


def wait_done(host, timeout=60):
    return wait_for(lambda: host.backfill()["state"] == "done" and
                    host.backfill(), timeout,
                    "the backfill of %s to finish" % host.tag, interval=0.1)


def test_backfill_history_two_mounts(tmp, redis, redis_server, checker):
    """Two hosts in dual-write backfill under PHP-like traffic; then verify
    and redis-first: no write lost, no delete undone, no stale read, every
    live session in Redis."""
    a = Host(tmp, redis_server, checker, "a")
    b = Host(tmp, redis_server, checker, "b")
    now = time.time_ns()
    old = now - 600 * 10**9
    for h in (a, b):
        for i in range(250):
            name = "sess_%s%03d" % (h.tag, i)
            data = b"seed|%s;" % name.encode()
            seed(h.sessdir / name, data, old + i)
            h.model[name] = data
        # Expired (older than the 32-day default ttl): never copied.
        for i in range(5):
            seed(h.sessdir / ("sess_%sexp%d" % (h.tag, i)), b"gone;",
                 now - 40 * DAY_NS)
    # In both lower dirs (a user who moved from b to a): a owns them now.
    shared = ["sess_s%03d" % i for i in range(40)]
    for name in shared:
        data = b"moved|%s;" % name.encode()
        seed(a.sessdir / name, data, old)
        seed(b.sessdir / name, data, old)
        a.model[name] = data
    stop = threading.Event()
    with a.mm.mounted(a.sessdir, "dual-write", a.opts()) as ma, \
            b.mm.mounted(b.sessdir, "dual-write", b.opts()) as mb:
        # Before any backfill: a rewrites five shared sessions and
        # deletes five; b's older copies must not come back.
        for name in shared[:5]:
            data = b"rewritten-on-a|%s;" % name.encode()
            php_write(ma.path(name), data)
            a.model[name] = data
        for name in shared[5:10]:
            os.unlink(ma.path(name))
            a.model[name] = None
        # The client leaves the deleted ones deleted (b finds tombstones).
        threads = [
            threading.Thread(target=client, args=(
                a, ma, sorted(n for n in a.model if n not in shared[5:10]),
                stop, 1)),
            threading.Thread(target=client, args=(
                b, mb, sorted(n for n in b.model), stop, 2)),
        ]
        for t in threads:
            t.start()
        try:
            # Slow enough to overlap with the traffic for about 2 s.
            ops0 = {h: h.ops for h in (a, b)}
            t0 = time.monotonic()
            for h in (a, b):
                h.migrate("copy", "--rate", "150", "--no-wait")
            wait_for(lambda: a.backfill()["done"] > 20, 20,
                     "the backfill to start")
            st = a.mm.status()["backfill"]
            # The rate limit: never ahead of 150 names per second since
            # the start (a slow machine only falls behind it).
            assert st["done"] <= 150 * (time.monotonic() - t0) + 1, st
            # The whole dir is listed: 290 names, less what a's client
            # deleted before the listing began (a slow build lists later).
            assert st["state"] == "running" and 250 <= st["total"] <= 290, st
            assert st["eta_seconds"] is not None and st["per_second"] > 0, st
            # Pause and resume under traffic; the rate goes up.
            a.migrate("copy", "--pause")
            assert a.backfill()["state"] == "paused"
            done = a.backfill()["done"]
            time.sleep(0.3)  # what is being checked is that nothing moves
            assert a.backfill()["done"] == done
            a.migrate("copy", "--resume", "--rate", "400", "--no-wait")
            # The client follows a running copy to its end.
            p = b.migrate("copy", "--rate", "400", "--json")
            assert json.loads(p.stdout)["state"] == "done"
            for h in (a, b):
                st = wait_done(h)
                assert st["errors"] == 0 and st["skipped"] == 0, st
                assert st["expired"] == 5, st
                assert st["done"] == st["total"], st
            # The shared sessions: a's writes and deletes win over b's
            # older copies (COPYUP refused them as older or deleted).
            st = b.backfill()
            # (More when a's client deleted other shared ones meanwhile.)
            assert st["existing"] >= 5 and st["tombstone"] >= 5, st
            # The clients worked while the copies ran.
            for h in (a, b):
                assert h.ops - ops0[h] >= 10, (h.tag, h.ops - ops0[h])
            text = a.migrate("status").stdout
            assert "backfill:    done" in text, text
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        for h in (a, b):
            assert not h.errors, h.errors[:5]
        # verify --mount: each host's files agree with Redis; what the
        # other host wrote or deleted last (missing, older or the deleted
        # version here) is that host's business (fs/export.c,
        # other_hosts), so both verify clean and redis-first needs no
        # --force.
        for h in (a, b):
            p = h.migrate("verify", "--json", rc=None)
            assert p.returncode == 0, p.stdout + p.stderr
            assert json.loads(p.stdout)["diff"] == [], p.stdout
        for h in (a, b):
            h.migrate("mode", "redis-first")
        # Through both mounts and in Redis: the last acknowledged state.
        for h in (a, b):
            for name, want in h.model.items():
                key = util.value_key(PREFIX, name)
                for m in (ma, mb):
                    if want is None:
                        assert util.errno_of(php_read_plain, m.path(name)) \
                            == errno.ENOENT, (m, name)
                    else:
                        assert util.read_file(m.path(name)) == want, (m, name)
                assert redis.get(key) == want, name
        for h in (a, b):
            for i in range(5):
                assert not redis.exists(
                    util.value_key(PREFIX, "sess_%sexp%d" % (h.tag, i)))


def php_read_plain(path):
    with open(path, "rb") as f:
        return f.read()


def saved_run(host):
    """The backfill's cursor file in the state dir (fs/backfill.h)."""
    path = next(host.mm.state_dir.glob("*.backfill"), None)
    return json.loads(path.read_text()) if path else {"counts": {"done": 0}}


def test_backfill_resumes_after_kill9(tmp, redis, redis_server, checker):
    """kill -9 mid-backfill; the new daemon over the dead mount resumes
    from the cursor, completes, and nothing written meanwhile regressed."""
    h = Host(tmp, redis_server, checker, "k")
    old = time.time_ns() - 600 * 10**9
    names = ["sess_k%04d" % i for i in range(600)]
    for i, name in enumerate(names):
        seed(h.sessdir / name, b"seed|%d;" % i, old + i)
    lower_fd = os.open(h.sessdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with h.mm.mounted(h.sessdir, "dual-write", h.opts()) as m1:
            h.migrate("copy", "--rate", "300", "--no-wait")
            # The cursor is saved once a second: kill after a save.
            wait_for(lambda: 150 <= saved_run(h)["counts"]["done"] < 500,
                     30, "a cursor saved past 150 names", interval=0.05)
            # Writes through the mount before the crash: some copied
            # already, some not yet; and a delete.
            php_write(m1.path(names[10]), b"before-crash|10;")
            php_write(m1.path(names[500]), b"before-crash|500;")
            os.unlink(m1.path(names[501]))
            m1.kill9()
            saved = saved_run(h)
            assert saved["state"] == "running" and saved["cursor"], saved
            assert 0 < saved["counts"]["done"] < 600, saved
            with h.mm.mounted(h.sessdir, "dual-write", h.opts(),
                              lower_fd=lower_fd) as m2:
                serving_status(h)
                st = wait_done(h)
                assert st["resumed"] and st["errors"] == 0, st
                # The deleted name is not listed again (599), or it
                # vanished (600) when the crash came after its turn.
                assert st["done"] == st["total"] in (599, 600), st
                # The names done after the last save are done again and
                # found present, as is what was written through the mount.
                assert st["copied"] + st["existing"] + st["vanished"] == \
                    st["done"], st
                assert st["copied"] <= 598, st
                php_write(m2.path(names[11]), b"after-restart|11;")
                p = h.migrate("verify", "--json")
                assert json.loads(p.stdout)["differences"] == 0, p.stdout
    finally:
        os.close(lower_fd)
    for i, name in enumerate(names):
        want = {10: b"before-crash|10;", 500: b"before-crash|500;",
                501: None, 11: b"after-restart|11;"}.get(i, b"seed|%d;" % i)
        assert redis.get(util.value_key(PREFIX, name)) == want, name


def test_shadow_reads(tmp, redis, redis_server, checker):
    """shadow=100: a planted difference and a session missing in Redis are
    counted (after the re-check), nothing else under load."""
    h = Host(tmp, redis_server, checker, "s")
    checker.register_output(r"shadow read of 'sess_(planted|legacy)'")
    with h.mm.mounted(h.sessdir, "dual-write", h.opts("shadow=100")) as m:
        names = ["sess_s%02d" % i for i in range(20)]
        for name in names:
            php_write(m.path(name), b"v|0;")
        stop = threading.Event()
        errors = []

        def load(k):
            i = 0
            while not stop.is_set():
                name = names[(i + k) % len(names)]
                try:
                    php_read(m.path(name))
                    php_write(m.path(name), b"v|%d|%d;" % (k, i))
                except OSError as e:
                    errors.append(e)
                i += 1
        threads = [threading.Thread(target=load, args=(k,))
                   for k in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: h.mm.status()["shadow"]["compared"] >= 400,
                     30, "400 shadow reads")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors[:3]
        sh = h.mm.status()["shadow"]
        assert sh["differ"] == 0 and sh["missing"] == 0, sh
        assert sh["errors"] == 0 and sh["consistency"] == 1.0, sh
        # Planted: Redis holds other bytes than the file underneath.
        php_write(m.path("sess_planted"), b"right;")
        redis.set(util.value_key(PREFIX, "sess_planted"), b"wrong;",
                  keepttl=True)
        # Read without flock: a flock that takes the session's Redis lock
        # reads the session again (fs_flock_refresh), a second shadow
        # read of the same name; one read here is one comparison.
        assert util.read_file(m.path("sess_planted")) == b"right;"
        # A file only underneath (never copied): missing in Redis.
        seed("sess_legacy", b"legacy;", time.time_ns(), dir_fd=m.lower_fd)
        assert util.read_file(m.path("sess_legacy")) == b"legacy;"
        sh = h.mm.status()["shadow"]
        assert (sh["differ"], sh["missing"]) == (1, 1), sh
        assert 0.99 < sh["consistency"] < 1.0, sh
        metrics = h.migrate("status", "--metrics").stdout
        assert 'sessfs_shadow_reads_total{result="differ"} 1' in metrics
        assert 'sessfs_shadow_reads_total{result="missing"} 1' in metrics
        assert "shadow:      100 % of dual-write reads" in \
            h.migrate("status").stdout
