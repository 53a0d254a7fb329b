# SPDX-License-Identifier: GPL-2.0-or-later
"""The fleet (issue 15): two and three mounts of one prefix, each a "host"
with its own files underneath, host id, state and control dirs, each under
a real app (PHP or Flask) with users counting; the whole migration and a
rollback driven by `sessfs-migrate mode/rollback --fleet` alone (copy and
verify stay per host: each host's verify of its own files is the guard),
with no failed request and no session lost; a host that is down blocks a
step with a clear message and catches up when it returns; a local
`mode --mount` is an override, shown as such, until the next fleet step.
"""

import contextlib
import json
import os
import signal
import subprocess

import pytest

import util
from util import wait_for
from test_online import MIGRATE, Load, Online, check_load, migrate

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not MIGRATE.exists(), reason="%s not built" % MIGRATE),
    pytest.mark.skipif(not util.SESSFS.exists(),
                       reason="%s not built" % util.SESSFS),
]

# Requests of the load between two steps.
PHASE_REQUESTS = 120


class Host:
    """One mount of the fleet: its name (the host id), the session dir its
    app uses, its control dir and the util.Mount."""

    def __init__(self, name, sessdir, ctl_dir, mount):
        self.name = name
        self.sessdir = sessdir
        self.ctl_dir = ctl_dir
        self.m = mount
        self.on = Online(mount.mnt, ctl_dir)


def fleet(url, *args, rc=0, timeout=180):
    return migrate(*args, "--fleet", url, rc=rc, timeout=timeout)


def fleet_status(url):
    p = fleet(url, "status", "--json", rc=None)
    assert p.returncode in (0, 1), p.stderr
    st = json.loads(p.stdout)
    return st, {h["host"]: h for h in st["hosts"]}


def mount_host(stack, url, tmp, checker, name, mode="files"):
    """Mounts host 'name' (its session dir made once, its state dir
    util.mounted's, by dir name, and its control dir), in 'stack'."""
    d = tmp / name
    if not d.exists():
        d = util.make_sessdir(tmp, name)
    ctl = tmp / ("ctl-" + name)
    m = stack.enter_context(util.mounted(
        url, d, checker, opts=["allow_other", "mode=" + mode,
                               "ctl_dir=%s" % ctl, "host_id=" + name]))
    return Host(name, d, ctl, m)


def live_heartbeats(url, hosts):
    return all(h.name in by and by[h.name]["live"] and
               not by[h.name]["unmounted"]
               for by in [fleet_status(url)[1]] for h in hosts)


@contextlib.contextmanager
def fleet_of(redis_server, tmp, checker, n, mode="files"):
    """'n' mounts of the default prefix in 'mode', hosts web1..webN, each
    with its own lower dir, state dir and control dir; yields the Hosts
    once every one heartbeats."""
    url = redis_server.url()
    with contextlib.ExitStack() as stack:
        hosts = [mount_host(stack, url, tmp, checker, "web%d" % (i + 1),
                            mode) for i in range(n)]
        wait_for(lambda: sorted(fleet_status(url)[1]) ==
                 [h.name for h in hosts], 20, "every host's heartbeat",
                 interval=0.2)
        yield hosts


def all_in(url, hosts, mode):
    st, by = fleet_status(url)
    return all(by[h.name]["mode"] == mode and by[h.name]["live"]
               for h in hosts)


def step(url, hosts, load, mode, *extra):
    """A fleet step that must go: every host reports 'mode' after it."""
    p = fleet(url, "mode", mode, *extra)
    for h in hosts:
        assert "%s: %s after" % (h.name, mode) in p.stdout, p.stdout
        assert h.on.status()["mode"] == mode
    assert all_in(url, hosts, mode)
    load.phase("fleet: " + mode)
    load.wait_requests(PHASE_REQUESTS)
    return p


def copy_and_verify(url, hosts, load):
    """Per host: copy its own files (as its host id), verify its own."""
    for h in hosts:
        migrate("copy", "--no-progress", "--host-id", h.name, h.sessdir, url)
    for h in hosts:
        out = h.on("verify").stdout
        assert "0 differences" in out, out
    load.phase("copy + verify per host")
    load.wait_requests(PHASE_REQUESTS)


@pytest.mark.parametrize("n", [pytest.param(2, id="2-hosts"),
                               pytest.param(3, id="3-hosts")])
def test_fleet_drill_under_load(redis, redis_server, tmp, checker, make_app,
                                n):
    """files -> dual-write -> redis-first -> redis-only, a fleet rollback
    to files that keeps the mounts (--no-unmount), and forward again to redis-only, every switch a fleet
    command, PHP and Flask users counting on every host throughout: no
    failed request, no session lost."""
    url = redis_server.url()
    kinds = ("php", "flask", "php")
    with fleet_of(redis_server, tmp, checker, n) as hosts:
        apps = [make_app(kinds[i], h.sessdir) for i, h in enumerate(hosts)]
        load = Load(apps, users_per_app=4)
        try:
            load.phase("files")
            load.start()
            load.wait_requests(PHASE_REQUESTS)

            # Straight to redis-first: every host's own guard refuses.
            p = fleet(url, "mode", "redis-first", "--timeout", "2", rc=1)
            for h in hosts:
                assert ("host '%s' cannot take redis-first: from dual-write "
                        "to redis-first: no copy + verify of this host's "
                        "files" % h.name) in p.stderr, p.stderr
            assert all_in(url, hosts, "files")

            step(url, hosts, load, "dual-write")
            copy_and_verify(url, hosts, load)
            step(url, hosts, load, "redis-first")
            step(url, hosts, load, "redis-only")

            p = fleet(url, "rollback", "--no-unmount")
            print(p.stdout)
            for h in hosts:
                assert "%s: files after" % h.name in p.stdout, p.stdout
            assert all_in(url, hosts, "files")
            for h in hosts:
                assert h.on.status()["lower_current"]
            load.phase("fleet: rollback to files")
            load.wait_requests(PHASE_REQUESTS)

            step(url, hosts, load, "dual-write")
            for h in hosts:
                assert "0 differences" in h.on("verify").stdout
            step(url, hosts, load, "redis-first")
            step(url, hosts, load, "redis-only")
            load.stop()
            check_load(load)
            out = fleet(url, "status").stdout
            print(out)
            for h in hosts:
                assert h.name in out
            st, by = fleet_status(url)
            assert st["ok"] and st["desired"] == "redis-only"
            assert all(by[h.name]["note"] == "" and
                       by[h.name]["health"] == "ok" and
                       by[h.name]["journal"] == 0 for h in hosts), by
            for app in apps:
                app.stop()
        finally:
            load.stopping.set()


def test_down_host_blocks_then_catches_up(redis, redis_server, tmp, checker,
                                          make_app):
    """web2's daemon stopped (SIGSTOP: no heartbeat, no answer): a fleet
    step refuses naming it; with --allow-down web1 goes alone; web2, let go
    again, follows.  A `mode --mount` on web1 is then an override until the
    next fleet step."""
    url = redis_server.url()
    with fleet_of(redis_server, tmp, checker, 2) as (web1, web2):
        php = make_app("php", web1.sessdir)
        load = Load([php], users_per_app=4)
        stopped = False
        try:
            load.start()
            load.wait_requests(PHASE_REQUESTS)
            os.kill(web2.m.proc.pid, signal.SIGSTOP)
            stopped = True
            wait_for(lambda: not fleet_status(url)[1]["web2"]["live"], 20,
                     "web2's heartbeat to expire", interval=0.2)
            out = fleet(url, "status", rc=1).stdout
            assert "silent" in out, out

            p = fleet(url, "mode", "dual-write", rc=1)
            assert "host 'web2' is down: no heartbeat for" in p.stderr, \
                p.stderr
            assert "--allow-down" in p.stderr
            assert web1.on.status()["mode"] == "files"

            p = fleet(url, "mode", "dual-write", "--allow-down")
            assert "web2: down" in p.stdout and \
                "web1: dual-write after" in p.stdout, p.stdout
            load.phase("web1 in dual-write, web2 down")
            load.wait_requests(PHASE_REQUESTS)

            os.kill(web2.m.proc.pid, signal.SIGCONT)
            stopped = False
            wait_for(lambda: all_in(url, (web1, web2), "dual-write"), 20,
                     "web2 to catch up", interval=0.2)
            assert web2.on.status()["mode"] == "dual-write"

            # A local change is an override, shown as such.
            web1.on.mode("files")
            wait_for(lambda: fleet_status(url)[1]["web1"]["note"] ==
                     "override", 10, "web1's override", interval=0.2)
            assert web1.on.status()["mode"] == "files"
            assert "override" in fleet(url, "status", rc=1).stdout
            out = web1.on("status").stdout
            assert "fleet:       desired dual-write" in out and \
                "OVERRIDDEN here" in out, out
            # The next fleet step is followed again.
            fleet(url, "mode", "dual-write")
            assert web1.on.status()["mode"] == "dual-write"
            load.stop()
            check_load(load)
            php.stop()
        finally:
            if stopped:
                os.kill(web2.m.proc.pid, signal.SIGCONT)
            load.stopping.set()


def test_fleet_rollback_resumes(redis, redis_server, tmp, checker):
    """Two hosts in redis-only, sessions written through each: with web2
    stopped the rollback refuses; with --allow-down web1 goes back to
    files and exports every session of the prefix into its own dir; web2,
    let go, follows the request that stayed in Redis, exporting too; the
    rollback run again finds every host in files."""
    url = redis_server.url()
    with fleet_of(redis_server, tmp, checker, 2, "redis-only") as hosts:
        web1, web2 = hosts
        names = []
        for i, h in enumerate(hosts):
            for j in range(3):
                name = "sess_%s_%d" % (h.name, j)
                util.write_file(h.m.path(name), b"n|i:%d;" % (10 * i + j))
                names.append(name)
        assert not [n for n in web1.m.lower_names() if n.startswith("sess_")]
        stopped = False
        try:
            os.kill(web2.m.proc.pid, signal.SIGSTOP)
            stopped = True
            wait_for(lambda: not fleet_status(url)[1]["web2"]["live"], 20,
                     "web2's heartbeat to expire", interval=0.2)
            p = fleet(url, "rollback", "--no-unmount", rc=1)
            assert "host 'web2' is down" in p.stderr, p.stderr
            p = fleet(url, "rollback", "--no-unmount", "--allow-down")
            assert "web1: files after" in p.stdout, p.stdout
            assert web1.on.status()["mode"] == "files"
            assert [n for n in web1.m.lower_names()
                    if n.startswith("sess_")] == sorted(names)
            st, by = fleet_status(url)
            assert st["desired"] == "files" and st["rollback"]
            assert by["web2"]["note"] == "silent"

            os.kill(web2.m.proc.pid, signal.SIGCONT)
            stopped = False
            wait_for(lambda: all_in(url, hosts, "files"), 30,
                     "web2 to follow the rollback", interval=0.2)
            p = fleet(url, "rollback", "--no-unmount")
            for h in hosts:
                assert "%s: files after" % h.name in p.stdout, p.stdout
                assert [n for n in h.m.lower_names()
                        if n.startswith("sess_")] == sorted(names)
                assert util.read_file(h.m.path("sess_web2_1")) == \
                    b"n|i:11;"
        finally:
            if stopped:
                os.kill(web2.m.proc.pid, signal.SIGCONT)


def test_verify_leaves_other_hosts_sessions(redis, redis_server, tmp,
                                            checker):
    """In dual-write each host's files hold its own writes: a session
    written through web2 is missing or older in web1's files, and web1's
    verify does not count it; a file in web1's files of the same mtime
    with other bytes, or newer, still is a difference."""
    with fleet_of(redis_server, tmp, checker, 2, "dual-write") as hosts:
        web1, web2 = hosts
        util.write_file(web2.m.path("sess_b"), b"b|i:2;")
        util.write_file(web2.m.path("sess_c"), b"c|i:3;")
        assert "0 differences" in web1.on("verify").stdout
        mt = os.stat(web2.m.path("sess_b")).st_mtime_ns
        for name, data, t in (("sess_b", b"b|i:9;", mt),
                              ("sess_c", b"c|i:3;", mt - 10**9)):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600,
                         dir_fd=web1.m.lower_fd)
            os.write(fd, data)
            os.close(fd)
            os.utime(name, ns=(t, t), dir_fd=web1.m.lower_fd)
        p = web1.on("verify", rc=1)
        assert "'sess_b': bytes differ" in p.stdout, p.stdout
        assert "sess_c" not in p.stdout and "1 differences" in p.stdout, \
            p.stdout
        t = os.stat(web2.m.path("sess_c")).st_mtime_ns + 10**9
        os.utime("sess_c", ns=(t, t), dir_fd=web1.m.lower_fd)
        p = web1.on("verify", rc=1)
        assert "'sess_c': mtime differs" in p.stdout, p.stdout


def test_fleet_rollback_unmounts_under_load(redis, redis_server, tmp, checker,
                                            make_app):
    """Two hosts in redis-only under PHP and Flask load: the fleet rollback
    takes each to files, exports, and each daemon unmounts itself and exits
    0; every mountpoint is then a plain directory the apps go on with, no
    failed request, no session lost; the status keeps each host's last word
    "unmounted"; the rollback run again has nothing to do.  Mounted again,
    the hosts stay mounted (that rollback is done) and go forward."""
    url = redis_server.url()
    with fleet_of(redis_server, tmp, checker, 2) as hosts:
        apps = [make_app("php", hosts[0].sessdir),
                make_app("flask", hosts[1].sessdir)]
        load = Load(apps, users_per_app=4)
        try:
            load.phase("files")
            load.start()
            load.wait_requests(PHASE_REQUESTS)
            step(url, hosts, load, "dual-write")
            copy_and_verify(url, hosts, load)
            step(url, hosts, load, "redis-first")
            step(url, hosts, load, "redis-only")

            for h in hosts:
                h.m.self_unmount = True
            load.phase("fleet: rollback + unmount")
            p = fleet(url, "rollback")
            print(p.stdout)
            for h in hosts:
                assert "%s: files, unmounted after" % h.name in p.stdout, \
                    p.stdout
                assert h.m.proc.wait(30 * util.SLOW) == 0
                assert not util.is_mounted(h.sessdir)
            load.phase("plain files after the fleet rollback")
            load.wait_requests(PHASE_REQUESTS)
            # Every session is current in the plain files alone.
            load.stop()
            checked, lost = load.check_sessions()
            assert checked and not lost, lost
            load.phase("plain files, checked")
            load.start()

            st, by = fleet_status(url)
            assert st["ok"] and st["unmount"] and st["desired"] == "files"
            for h in hosts:
                assert by[h.name]["note"] == "unmounted", by
                assert by[h.name]["unmounted_request"] == st["request"]
            out = fleet(url, "status").stdout
            assert out.count("unmounted") >= 2, out
            p = fleet(url, "rollback")
            assert "every host (2) is unmounted already" in p.stdout, \
                p.stdout

            with contextlib.ExitStack() as stack:
                again = [mount_host(stack, url, tmp, checker, h.name)
                         for h in hosts]
                wait_for(lambda: live_heartbeats(url, again), 20,
                         "the hosts mounted again to heartbeat",
                         interval=0.2)
                # A heartbeat comes after the follower's first look at
                # the rollback request: it stays mounted.
                for h in again:
                    assert util.is_mounted(h.sessdir)
                    assert h.on.status()["mode"] == "files"
                load.phase("mounted again")
                load.wait_requests(PHASE_REQUESTS)
                step(url, again, load, "dual-write")
                load.stop()
            check_load(load)
            for app in apps:
                app.stop()
        finally:
            load.stopping.set()


def test_down_host_unmounts_when_it_returns(redis, redis_server, tmp,
                                            checker):
    """web2 stopped during the fleet rollback: with --allow-down web1 rolls
    back and unmounts, and the command says what to run on web2; web2, let
    go, follows the request that stayed, exports and unmounts itself too."""
    url = redis_server.url()
    with fleet_of(redis_server, tmp, checker, 2, "dual-write") as hosts:
        web1, web2 = hosts
        for h in hosts:
            util.write_file(h.m.path("sess_" + h.name), b"n|i:1;")
            h.m.self_unmount = True
        stopped = False
        try:
            os.kill(web2.m.proc.pid, signal.SIGSTOP)
            stopped = True
            wait_for(lambda: not fleet_status(url)[1]["web2"]["live"], 20,
                     "web2's heartbeat to expire", interval=0.2)
            p = fleet(url, "rollback", "--allow-down")
            assert "web1: files, unmounted after" in p.stdout, p.stdout
            assert ("web2: down (silent for" in p.stdout and
                    "rollback --mount %s' there" % web2.sessdir
                    in p.stdout), p.stdout
            assert web1.m.proc.wait(30 * util.SLOW) == 0
            assert not util.is_mounted(web1.sessdir)
            assert util.read_file(web1.sessdir / "sess_web1") == b"n|i:1;"
            # (Nothing here may look up web2's path while it is stopped.)

            os.kill(web2.m.proc.pid, signal.SIGCONT)
            stopped = False
            assert web2.m.proc.wait(30 * util.SLOW) == 0
            assert not util.is_mounted(web2.sessdir)
            assert util.read_file(web2.sessdir / "sess_web2") == b"n|i:1;"
            st, by = fleet_status(url)
            assert st["ok"], st
            assert [by[h.name]["note"] for h in hosts] == ["unmounted"] * 2
            p = fleet(url, "rollback")
            assert "every host (2) is unmounted already" in p.stdout, \
                p.stdout
        finally:
            if stopped:
                os.kill(web2.m.proc.pid, signal.SIGCONT)


def test_killed_host_unmounts_after_its_restart(redis, redis_server, tmp,
                                                checker):
    """Two hosts in redis-only, web2 killed (-9: its dead layer stays)
    when the fleet rollback runs: web1 exports and unmounts; web2's daemon
    started again mounts over the dead layer in redis-only, sees the
    request, exports, goes to files, removes both layers and exits 0,
    leaving every session in its plain files."""
    url = redis_server.url()
    with fleet_of(redis_server, tmp, checker, 2, "redis-only") as hosts:
        web1, web2 = hosts
        for h in hosts:
            util.write_file(h.m.path("sess_" + h.name), b"n|i:1;")
        web1.m.self_unmount = True
        web2.m.kill9()
        wait_for(lambda: not fleet_status(url)[1]["web2"]["live"], 20,
                 "web2's heartbeat to expire", interval=0.2)
        p = fleet(url, "rollback", "--allow-down")
        assert "web1: files, unmounted after" in p.stdout, p.stdout
        assert web1.m.proc.wait(30 * util.SLOW) == 0
        # Not through util.mounted: the daemon may be gone before any
        # wait for its mount could see it.
        log = open(checker.path, "ab")
        restart = subprocess.Popen(web2.m.cmd, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            assert restart.wait(30 * util.SLOW) == 0
        finally:
            if restart.poll() is None:
                restart.kill()
                restart.wait(10)
            log.close()
        assert not util.is_mounted(web2.sessdir)
        for h in hosts:
            for name in ("sess_web1", "sess_web2"):
                assert util.read_file(h.sessdir / name) == b"n|i:1;"
        st, by = fleet_status(url)
        assert st["ok"] and by["web2"]["note"] == "unmounted", by
