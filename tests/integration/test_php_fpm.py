# SPDX-License-Identifier: GPL-2.0-or-later
"""The production PHP stack on sessfs, in every migration mode: Debian's
php-fpm8.2 (the pool as www-data) behind nginx, session.save_path the
mount (util.FpmApp), and Debian's cron job /usr/lib/php/sessionclean, run
unchanged as root (util.sessionclean()), removing expired sessions through
the mount and keeping the live ones.

sessionclean (1) touches every sess_* file a php-fpm process has open
(through /proc/PID/fd), then (2) runs `find SAVE_PATH -name 'sess_*' -type
f -cmin +GC_MAXLIFETIME/60 -delete`: ctime decides, not mtime.  No call
sets a ctime, so the session dir is on a small ext4 image where the
sessions the stack made on the plain files before the mount are
back-dated with debugfs (modeutil.Ext4Lower): that is how an expired
session looks in files and dual-write mode, and as a legacy session in
redis-first and redis-only.  In those two modes sessions made through the
mount are back-dated in their meta key too.

One back-dated session is open in a request while sessionclean runs (the
route /hold keeps it open): step (1) must reach it through the mount,
renew its ctime and so keep it, and the request's count must be stored.
"""

import errno
import os
import shutil
import threading
import time

import pytest

import util
from util import errno_of, in_parallel, php_sid
from modeutil import (LOWER_CURRENT, PREFIX, WRITES_REDIS, ModeMount,
                      check_deleted, diff_snapshots, ext4_lower,
                      mode_params, redis_sessions, snapshot, stray)

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not (os.path.exists(util.PHP_FPM)
                            and os.path.exists(util.NGINX)
                            and os.path.exists(util.SESSIONCLEAN)
                            and shutil.which("mkfs.ext4")
                            and shutil.which("debugfs")),
                       reason="needs php8.2-fpm, nginx, php-common's "
                       "sessionclean and e2fsprogs (scripts/setup.sh deps)"),
    pytest.mark.skipif(not os.path.exists("/dev/loop-control"),
                       reason="needs loop devices (the ext4 lower dir)"),
]

# Debian's php.ini: session.gc_maxlifetime = 1440, so sessionclean deletes
# what has a ctime over 24 minutes old.
AGED_S = 2 * 3600
# The modes where Redis is authoritative: a stat shows the meta key's
# ctime, which the test can back-date.
REDIS_AUTH = ("redis-first", "redis-only")


def sess(client):
    return "sess_" + php_sid(client)


def login(app, user):
    c = app.client()
    assert c.get("/login?user=" + user) == "ok user=" + user
    return c


def check_same(want, got, what):
    d = diff_snapshots(want, got)
    assert not d, "%s:\n  %s" % (what, "\n  ".join(d[:20]))


def opened_by(pids, path):
    """True when one of 'pids' has 'path' open."""
    for pid in pids:
        fds = "/proc/%d/fd" % pid
        try:
            names = os.listdir(fds)
        except OSError:
            continue
        for fd in names:
            try:
                if os.readlink(os.path.join(fds, fd)) == str(path):
                    return True
            except OSError:
                continue
    return False


@pytest.mark.parametrize("mode", mode_params())
def test_fpm_nginx_and_sessionclean(mode, redis, redis_server, tmp, checker,
                                    make_app):
    mm = ModeMount(tmp, redis_server, checker)
    with ext4_lower(tmp) as lower:
        # Sessions the stack made on the plain files.
        seed = make_app("php-fpm", lower.sessdir)
        alice, bob, old1, held = (login(seed, u)
                                  for u in ("alice", "bob", "old1", "held"))
        assert alice.get("/incr") == "count=1"
        assert held.get("/incr") == "count=1"
        seed.stop()
        old = int(time.time()) - AGED_S
        # old1 and held expired; bob changed long ago, but its ctime is
        # fresh: sessionclean keeps it.
        lower.set_times({sess(old1): (old, old), sess(held): (old, old),
                         sess(bob): (old, None)})
        before = snapshot(lower.view)
        assert os.stat(lower.view / sess(old1)).st_ctime < old + 60

        with mm.mounted(lower.sessdir, mode) as m:
            app = make_app("php-fpm", lower.sessdir)
            for c in (alice, bob, old1, held):
                c.base = app.base
            # The back-dated times show through the mount.
            st = os.stat(m.path(sess(old1)))
            assert int(st.st_ctime) == old and int(st.st_mtime) == old
            st = os.stat(m.path(sess(bob)))
            assert int(st.st_mtime) == old and st.st_ctime > old + 3600
            # Old sessions still logged in, new ones count, one logs out.
            assert alice.get("/whoami") == "user=alice count=1"
            assert alice.get("/incr") == "count=2"
            carol = login(app, "carol")
            got = in_parallel(lambda _: carol.get("/incr"), range(10))
            assert sorted(got, key=lambda s: int(s.split("=")[1])) == \
                ["count=%d" % i for i in range(1, 11)], "flock lost updates"
            dave = login(app, "dave")
            dave_file = sess(dave)
            assert dave.get("/logout") == "bye"
            assert errno_of(os.stat, m.path(dave_file)) == errno.ENOENT
            st = os.stat(m.path(sess(carol)))
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
                (util.WWW_UID, util.WWW_GID, 0o600)
            expired, live = [old1], [alice, bob, carol, held]
            if mode in REDIS_AUTH:
                erin, frank = login(app, "erin"), login(app, "frank")
                now = time.time_ns()
                util.set_times(redis, PREFIX, sess(erin), old * 10**9,
                               old * 10**9)
                util.set_times(redis, PREFIX, sess(frank), old * 10**9, now)
                assert int(os.stat(m.path(sess(erin))).st_ctime) == old
                expired.append(erin)
                live.append(frank)

            # 'held' (back-dated) is open in a request while the cron job
            # runs.
            flag = tmp / "hold.flag"
            flag.write_text("")
            reply = []
            t = threading.Thread(target=lambda: reply.append(
                held.get("/hold?flag=%s" % flag)))
            t.start()
            try:
                util.wait_for(lambda: opened_by(app.pids(),
                                                m.path(sess(held))),
                              10, "php-fpm to open %s" % sess(held))
                res = util.sessionclean(app.ini, checker)
            finally:
                flag.unlink()
                t.join(30)
            assert res.returncode == 0 and res.stdout == "" and \
                res.stderr == "", (res.returncode, res.stdout, res.stderr)
            assert reply == ["count=2"], reply

            listed = check_deleted(m, mm, redis, mode,
                                   [sess(c) for c in expired],
                                   also=[dave_file])
            for c in live:
                assert sess(c) in listed, "%s: deleted" % sess(c)

            # What the users see.
            assert alice.get("/whoami") == "user=alice count=2"
            assert bob.get("/whoami") == "user=bob count=0"
            assert carol.get("/whoami") == "user=carol count=10"
            assert held.get("/whoami") == "user=held count=2"
            assert dave.get("/whoami") == "anonymous"
            for c in expired:
                assert c.get("/whoami") == "anonymous"
            if mode in REDIS_AUTH:
                assert frank.get("/whoami") == "user=frank count=0"
            view = snapshot(m.mnt)
            assert not stray(view), stray(view)
            if mode in WRITES_REDIS:
                mm.wait_repaired(what="nothing to repair with Redis up")
                in_redis = redis_sessions(redis)
                wrong = [n for n, v in in_redis.items()
                         if n not in view or view[n][0] != v]
                assert not wrong, "in Redis, not as the mount shows: %s" \
                    % wrong
                # Written through the mount (dual-write copies nothing up).
                written = [alice, carol, held]
                for c in live if mode in REDIS_AUTH else written:
                    assert sess(c) in in_redis, sess(c)
            app.stop()

        got = snapshot(lower.view)
        assert not stray(got), stray(got)
        if mode in LOWER_CURRENT:
            check_same(view, got, "plain files after the unmount differ "
                       "from what the mount showed")
        else:
            check_same(before, got, "redis-only wrote the lower dir")
