# SPDX-License-Identifier: GPL-2.0-or-later
"""cachelib's count file through sessfs (issue 12).  Flask-Session's
filesystem backend (cachelib FileSystemCache) prunes by the count it keeps
in `__wz_cache_count` and trusts it; through sessfs that count must be the
number of cachelib entries a listing shows at that moment, so that a real
Flask app under gunicorn prunes exactly as it does on one plain directory:
when sessions expire in Redis, when expired legacy files are hidden, and
when several hosts share one prefix (the fleet's directory, as one shared
plain directory would be).  Each figure is compared with the same run on a
plain directory.  The only sleeps wait out the session lifetime under
test.  Only cachelib's entries are in the names index that counts them:
PHP's and Django's writes never touch it."""

import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import pytest

import util
from modeutil import (OUTAGE_LOG, PREFIX, ModeMount, cachelib_session,
                      flask_sid_file, mode_params, write_as_other_host)

pytestmark = util.fuse_test_marker()

THRESHOLD = 10
LIFETIME = 2  # s: PERMANENT_SESSION_LIFETIME of the app under test
LONG = 3600
MODES = ("dual-write", "redis-first", "redis-only")


def env(lifetime):
    return {"SESSION_FILE_THRESHOLD": str(THRESHOLD),
            "SESSION_LIFETIME": str(lifetime)}


@pytest.fixture
def flask_app(tmp, make_app):
    """flask_app(sessdir, lifetime, workers=1) -> the example Flask app
    (gunicorn, Flask-Session filesystem backend, threshold THRESHOLD) with
    its session lifetime taken from SESSION_LIFETIME, started."""
    appdir = Path(tmp) / "app-flask"  # where util.WebApp looks first
    if not appdir.exists():
        shutil.copytree(util.EXAMPLES / "flask", appdir)
        with open(appdir / "app.py", "a") as f:
            f.write('\napp.config["PERMANENT_SESSION_LIFETIME"] = '
                    'int(os.environ["SESSION_LIFETIME"])\n')
        for p in [appdir] + list(appdir.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)

    def make(sessdir, lifetime, workers=1):
        app = make_app("flask", sessdir, env(lifetime), start=False)
        app.workers = workers
        return app.start()
    return make


def is_entry(name):
    """What cachelib's _list_dir() counts."""
    return name != util.CACHELIB_COUNT and not name.endswith(".__wz_cache")


def entries(d):
    return sorted(n for n in os.listdir(d) if is_entry(n))


def count_file(d):
    """The count cachelib reads: 4-byte expiry 0, then a pickled int."""
    data = util.read_file(os.path.join(d, util.CACHELIB_COUNT))
    assert data[:4] == b"\0\0\0\0", data
    return pickle.loads(data[4:])


def login(client, user):
    assert client.get("/login?user=%s" % user) == "ok user=%s" % user


def user_file(client):
    return flask_sid_file(client.cookies()["session"])


def wait_out(written_at):
    """Waits until every cachelib header written at 'written_at' (s) or
    before has expired: cachelib's headers are whole seconds, expired once
    below time()."""
    time.sleep(max(0.0, int(written_at) + LIFETIME + 1.05 - time.time()))


def expire_then_login(app):
    """The issue's scenario: 12 users log in, their sessions expire, then 8
    new users log in.  Returns how many of the 8 are still logged in."""
    for i in range(12):
        login(app.client(), "old%d" % i)
    wait_out(time.time())
    new = [app.client() for _ in range(8)]
    for i, c in enumerate(new):
        login(c, "new%d" % i)
    return sum(c.get("/whoami").startswith("user=new") for c in new)


def test_plain_dir_reference(tmp, flask_app):
    d = util.make_sessdir(tmp, "plain")
    app = flask_app(d, LIFETIME)
    alive = expire_then_login(app)
    app.stop()
    print("\nexpired, plain dir: %d of 8 logged in" % alive)
    assert alive == 8


@pytest.mark.parametrize("mode", mode_params(MODES))
def test_sessions_expiring_in_redis(mode, tmp, redis, redis_server, sessdir,
                                    checker, flask_app):
    """On the current code before issue 12: 0 of 8 logged in (redis-first,
    redis-only)."""
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, mode):
        app = flask_app(sessdir, LIFETIME)
        alive = expire_then_login(app)
        app.stop()
        listed, count = entries(sessdir), count_file(sessdir)
    print("\nexpired in redis, %s: %d of 8 logged in" % (mode, alive))
    assert alive == 8, "%d of 8 new users logged in" % alive
    assert count == len(listed) == 8
    # The writes dropped the expired members of the names index.
    assert redis.zcard(PREFIX + "{sessfs}:names") == 8


def fleet_logins(apps, n=16):
    """'n' users log in, alternately on each app; returns their clients."""
    users = []
    for i in range(n):
        c = apps[i % len(apps)].client()
        login(c, "u%d" % i)
        users.append(c)
    return users


def test_two_mounts_one_prefix(tmp, redis, redis_server, checker, flask_app):
    """Two hosts (two mounts of one prefix, each with its own Flask app)
    prune the fleet's directory as two apps on one plain directory do."""
    plain = util.make_sessdir(tmp, "plain")
    pa, pb = flask_app(plain, LONG), flask_app(plain, LONG)
    want = {user_file(c) for c in fleet_logins([pa, pb])} & set(
        entries(plain))
    pa.stop()
    pb.stop()
    assert len(want) == THRESHOLD + 1  # cachelib leaves threshold + 1

    da, db = util.make_sessdir(tmp, "host-a"), util.make_sessdir(tmp, "host-b")
    (Path(tmp) / "a").mkdir()
    (Path(tmp) / "b").mkdir()
    mma = ModeMount(Path(tmp) / "a", redis_server, checker)
    mmb = ModeMount(Path(tmp) / "b", redis_server, checker)
    with mma.mounted(da, "redis-only", ["host_id=host-a"]), \
            mmb.mounted(db, "redis-only", ["host_id=host-b"]):
        a, b = flask_app(da, LONG), flask_app(db, LONG)
        users = fleet_logins([a, b])
        a.stop()
        b.stop()
        files = {user_file(c) for c in users}
        listed, listed_b = entries(da), entries(db)
        counts = count_file(da), count_file(db)
    alive = len(files & set(listed))
    print("\ntwo hosts: %d of 16 logged in (plain dir, two apps: %d)"
          % (alive, len(want)))
    assert alive == len(want), listed
    assert listed == listed_b
    assert counts == (len(listed), len(listed))


def seed_expired(d, n=12):
    """'n' cachelib sessions that expired a minute ago, as a Flask app
    left them on the plain directory before the mount."""
    names = []
    for i in range(n):
        name = flask_sid_file("expired-%d" % i)
        data = (struct.pack("I", int(time.time()) - 60)
                + pickle.dumps({"_permanent": True, "user": "gone%d" % i},
                               protocol=5))
        p = os.path.join(d, name)
        util.write_file(p, data)
        os.chown(p, util.WWW_UID, util.WWW_GID)
        names.append(name)
    return names


def new_logins(app, n=8):
    new = [app.client() for _ in range(n)]
    for i, c in enumerate(new):
        login(c, "new%d" % i)
    return sum(c.get("/whoami").startswith("user=new") for c in new)


def test_expired_legacy_plain_reference(tmp, flask_app):
    d = util.make_sessdir(tmp, "plain")
    seed_expired(d)
    app = flask_app(d, LONG)  # counts the 12 at its start
    alive = new_logins(app)
    app.stop()
    print("\nexpired legacy, plain dir: %d of 8 logged in" % alive)
    assert alive == 8
    assert len(entries(d)) == 8


@pytest.mark.parametrize("mode", mode_params(MODES))
def test_expired_legacy_files_at_mount(mode, tmp, redis, redis_server,
                                       sessdir, checker, flask_app):
    """The app started on the plain directory (it counted the 12 expired
    files), then sessfs is mounted under it.  The expired legacy files
    are gone from the listing and, in the Redis modes where the mount
    hides them, from the lower dir too: an unmount leaves what the mount
    showed.  On the current code before issue 12: 0 of 8 logged in
    (redis-first, redis-only)."""
    expired = seed_expired(sessdir)
    app = flask_app(sessdir, LONG)
    assert count_file(sessdir) == 12
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, mode) as m:
        # dual-write shows the lower dir as it is; the Redis modes hide
        # the expired files, and cachelib's first read must say so.
        first = count_file(sessdir)
        assert first == (12 if mode == "dual-write" else 0)
        alive = new_logins(app)
        app.stop()
        listed, count = entries(sessdir), count_file(sessdir)
        lower = m.lower_names()
    print("\nexpired legacy, %s: %d of 8 logged in" % (mode, alive))
    assert alive == 8, "%d of 8 new users logged in" % alive
    assert count == len(listed) == 8
    assert not set(expired) & set(listed)
    assert not set(expired) & set(lower)


def test_sessions_written_before_the_index(tmp, redis, redis_server,
                                           sessdir, checker):
    """Sessions stored by a sessfs without the names index (or written
    straight to Redis) are counted too: the first census adds them."""
    names = [flask_sid_file("before-%d" % i) for i in range(5)]
    for n in names:
        write_as_other_host(redis, n, cachelib_session({"user": n}))
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, "redis-only"):
        # cachelib writes the count file at its start (here: a stale 0)
        util.write_file(os.path.join(sessdir, util.CACHELIB_COUNT),
                        b"\0\0\0\0" + pickle.dumps(0, protocol=5))
        assert entries(sessdir) == sorted(names)
        assert count_file(sessdir) == 5
    assert redis.zcard(PREFIX + "{sessfs}:names") == 5


def stat_until_hit(mm, path, hits, what):
    """Stats 'path' until the mount counts a cache hit above 'hits' (5 s
    at most); returns the new count."""
    def hit():
        os.stat(path)
        return mm.status()["cache"]["hits"] > hits
    util.wait_for(hit, 5, what)
    return mm.status()["cache"]["hits"]


def test_count_reads_keep_tracked_lookups(tmp, redis, redis_server, checker):
    """With cache=tracking, reading the count makes Redis track the names
    index for this host, so every other host's write reports it changed.
    That key holds no session: it must not drop what this host tracks."""
    da, db = util.make_sessdir(tmp, "host-a"), util.make_sessdir(tmp, "host-b")
    for h in ("a", "b"):
        (Path(tmp) / h).mkdir()
    mma = ModeMount(Path(tmp) / "a", redis_server, checker)
    mmb = ModeMount(Path(tmp) / "b", redis_server, checker)
    x = flask_sid_file("x")
    with mma.mounted(da, "redis-only", ["host_id=host-a"]), \
            mmb.mounted(db, "redis-only", ["host_id=host-b",
                                             "cache=tracking"]):
        util.write_file(os.path.join(db, x), cachelib_session({"u": "x"}))
        os.stat(os.path.join(db, x))
        util.write_file(os.path.join(db, util.CACHELIB_COUNT),
                        b"\0\0\0\0" + pickle.dumps(0, protocol=5))
        assert count_file(db) == 1  # ZCOUNT: the index is tracked now
        before = mmb.status()["cache"]
        # A hit needs the tracker quiet: it heard from Redis within the
        # last 1.5 s (track.h), which a loaded machine may delay.
        hits = stat_until_hit(mmb, os.path.join(db, x), before["hits"],
                              "x is not answered from memory")
        # Another host's write changes the index: an invalidation for it.
        util.write_file(os.path.join(da, flask_sid_file("y")),
                        cachelib_session({"u": "y"}))
        util.wait_for(lambda: mmb.status()["cache"]["invalidations"]
                      > before["invalidations"], 5,
                      "host b to hear of the index's change")
        # Strict here: a miss would fetch x again and track it anew, so a
        # retry could hide a lost entry.  The tracker just heard from
        # Redis (the invalidation), so it is quiet.
        os.stat(os.path.join(db, x))
        assert mmb.status()["cache"]["hits"] > hits, "tracked entries lost"
        assert count_file(db) == 2


def test_count_read_while_redis_is_down(tmp, redis, redis_server, sessdir,
                                        checker):
    """Once the circuit breaker has Redis down, reading the count never
    waits for Redis (cachelib reads it on every save): the file stays as
    it was, and tells the truth again once Redis is back."""
    checker.register_output(OUTAGE_LOG)
    mm = ModeMount(tmp, redis_server, checker)
    name = flask_sid_file("down")
    with mm.mounted(sessdir, "redis-first", ["redis_timeout=2"]):
        util.write_file(os.path.join(sessdir, util.CACHELIB_COUNT),
                        b"\0\0\0\0" + pickle.dumps(0, protocol=5))
        util.write_file(os.path.join(sessdir, name),
                        cachelib_session({"u": "down"}))
        assert count_file(sessdir) == 1
        redis_server.sigstop()
        try:
            # This host wrote it last: read from underneath, and the
            # failed Redis call opens the breaker.
            os.stat(os.path.join(sessdir, name))
            mm.wait_redis_down()
            t0 = time.monotonic()
            assert count_file(sessdir) == 1
            took = time.monotonic() - t0
        finally:
            redis_server.sigcont()
        util.wait_for(lambda: mm.status()["redis_up"], 15, "redis up")
        assert count_file(sessdir) == 1
    assert took < 1.0, "a count read waited %.1f s for Redis" % took


def php_and_django_traffic(d):
    """What PHP's files handler and Django's file backend do to their
    session files: create, rewrite, chmod, touch, and delete; Django
    writes a mkstemp temp and renames it onto the name.  Returns the names
    left."""
    php = ["sess_%026d" % i for i in range(3)]
    for n in php:
        p = os.path.join(d, n)
        util.write_file(p, b"user|s:5:\"alice\";")
        util.write_file(p, b"user|s:3:\"bob\";",
                        flags=os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        os.chmod(p, 0o600)
        os.utime(p)
    os.unlink(os.path.join(d, php.pop()))
    django = ["sessionid" + ("%032d" % i).replace("0", "k") for i in range(3)]
    for n in django:
        tmp = os.path.join(d, n + "_out_abc123xy")
        util.write_file(tmp, b'{"_auth_user_id":"1"}')
        os.rename(tmp, os.path.join(d, n))
        os.utime(os.path.join(d, n))
    os.unlink(os.path.join(d, django.pop()))
    return php + django


def test_only_cachelib_entries_are_indexed(tmp, redis, redis_server, sessdir,
                                           checker):
    """The names index exists for cachelib's count only: PHP's sess_* and
    Django's sessionid* writes, chmods, touches and deletes never touch it
    (not even creating the key), cachelib's entries (md5 by default, any
    hashlib hexdigest) are in it, and the count counts only them: in a
    directory shared with another app, that app's files are not cachelib's
    entries (DESIGN.md, "Names index")."""
    index = PREFIX + "{sessfs}:names"
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, "redis-only"):
        left = php_and_django_traffic(sessdir)
        for n in left:
            assert redis.exists(PREFIX + n), n
        assert not redis.exists(index), redis.zrange(index, 0, -1)

        util.write_file(os.path.join(sessdir, util.CACHELIB_COUNT),
                        b"\0\0\0\0" + pickle.dumps(0, protocol=5))
        assert count_file(sessdir) == 0
        assert not redis.exists(index)
        md5 = flask_sid_file("indexed")
        sha1 = "0123456789abcdef0123456789abcdef01234567"
        for n in (md5, sha1):
            util.write_file(os.path.join(sessdir, n),
                            cachelib_session({"u": n}))
        os.chmod(os.path.join(sessdir, md5), 0o600)
        assert sorted(redis.zrange(index, 0, -1)) == sorted(
            [(PREFIX + md5).encode(), (PREFIX + sha1).encode()])
        assert count_file(sessdir) == 2
        os.unlink(os.path.join(sessdir, sha1))
        assert redis.zrange(index, 0, -1) == [(PREFIX + md5).encode()]
        assert count_file(sessdir) == 1
        assert sorted(os.listdir(sessdir)) == sorted(
            left + [md5, util.CACHELIB_COUNT])


def test_phpredis_layout_keeps_no_index(tmp, redis, redis_server, sessdir,
                                        checker):
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, "redis-only", ["layout=phpredis"]):
        names = ["sess_abc%d" % i for i in range(3)]
        for n in names:
            p = os.path.join(sessdir, n)
            util.write_file(p, b"user|s:5:\"alice\";")
            os.utime(p)
        os.unlink(os.path.join(sessdir, names[0]))
        assert redis.exists("PHPREDIS_SESSION:abc1")
    assert not redis.exists("PHPREDIS_SESSION:{sessfs}:names")


def test_index_of_an_older_sessfs(tmp, redis, redis_server, sessdir, checker):
    """An older sessfs indexed every name.  Its members for PHP and Django
    names would be counted until they expire (up to 'ttl'), and new
    writes never refresh or remove them: the first census drops them."""
    index = PREFIX + "{sessfs}:names"
    future = int(time.time() * 1000) + 86400 * 1000
    cl = flask_sid_file("older")
    others = ["sess_older", "sessionid" + "k" * 32]
    for n in [cl] + others:
        write_as_other_host(redis, n, cachelib_session({"u": n}))
        redis.zadd(index, {PREFIX + n: future})
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, "redis-only"):
        util.write_file(os.path.join(sessdir, util.CACHELIB_COUNT),
                        b"\0\0\0\0" + pickle.dumps(3, protocol=5))
        assert count_file(sessdir) == 1
        # A delete of a name that is not indexed leaves the index alone.
        os.unlink(os.path.join(sessdir, others[0]))
    assert redis.zrange(index, 0, -1) == [(PREFIX + cl).encode()]
