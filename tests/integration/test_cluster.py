# SPDX-License-Identifier: GPL-2.0-or-later
"""Redis Cluster (redis-cluster://), with real parts: three masters with a
replica each (util.RedisCluster: real redis-servers on free loopback
ports, joined by `redis-cli --cluster create`, node timeout 500 ms),
real mounts, real PHP (php -S, the files handler) and Flask-Session
(filesystem backend) apps.

- The apps through a mount in each mode: their sessions land on several
  masters (in files mode: none in Redis), the value key and the meta key
  of each in one slot.  cache=tracking on two hosts: each hears of the
  other's changes on every master.
- A history check while 2000 slots move (`redis-cli --cluster reshard`)
  under load: no error reaches the writers or the apps, none is logged
  (a reshard is routine), no acknowledged write is lost, no read is
  stale, no delete comes back.  The same while a master is killed (kill
  -9) and its replica promoted: no error reaches anyone, the shards that
  stayed up lose nothing, and with durability=replica nothing at all
  (docs/DESIGN.md, "Durability": every write waits for a replica, and
  Redis promotes the replica with the most data); the default
  (asynchronous replication) promises no more for the killed shard.
  Each prints one line of figures (requests, errors, lost, stale,
  resurrected; the reshard's time; kill -> promotion -> first request
  served on the promoted replica).
- Every sessfs-migrate command on the cluster (analyze, copy, verify
  with planted differences, export, backup, restore, cleanup; on a
  mount: the backfill copy --mount, verify --mount, mode, rollback).
- A redis-cluster:// URL to a server without cluster mode, or to a
  cluster with uncovered slots: a one-line error at mount and from
  sessfs-migrate.

test_harness checks util.RedisCluster itself, with redis-py's cluster
client."""

import hashlib
import json
import os
import time

import pytest

import modeutil
import util
from util import (SESSFS, key_slot, meta_key, migrate, mounted,
                  php_read, php_write, value_key, wait_for)

PREFIX = "sessfs:"
# What the daemon may log while a master is killed or slots move.
CLUSTER_LOG = (modeutil.OUTAGE_LOG +
               r"|cluster|moved|\bask\b|slot|tryagain|clusterdown|failover")


# Every mount here chooses its cache: the run's (SESSFS_TEST_CACHE), off
# by default.
CACHE = util.TEST_CACHE or "off"

pytestmark = util.fuse_test_marker()


@pytest.fixture(scope="module")
def shared_cluster():
    """One cluster for the tests that move no slot and kill no node."""
    with util.own_redis_cluster() as c:
        yield c


@pytest.fixture
def cluster(shared_cluster, request):
    """The module's cluster, emptied, every slot served."""
    shared_cluster.wait_ok()
    shared_cluster.flushall()
    yield shared_cluster
    if util.test_failed(request):
        shared_cluster.dump_logs()


def cluster_opts(ctl=None, durability=None):
    # redis_timeout 8 s: a failover (about 1.5 s) and a slot's move are
    # waited out inside a call, not surfaced.
    opts = ["allow_other", "redis_timeout=8", "cache=%s" % CACHE]
    if ctl is not None:
        opts.append("ctl_dir=%s" % ctl)
    if durability is not None:
        opts.append("durability=%s" % durability)
    return opts


def where(c, key, clients=None):
    """(slot, port of the master holding 'key'): the master found by
    asking each one what it holds in that slot (GETKEYSINSLOT answers
    from the node's own keys, never MOVED), not by the slot map.
    'clients': {port: client} of the masters, made once by the caller."""
    if clients is None:
        clients = {m.port: m.client() for m in c.masters()}
    slot = key_slot(key)
    holders = [port for port, r in clients.items()
               if key in r.execute_command("CLUSTER", "GETKEYSINSLOT",
                                           slot, 100000)]
    assert len(holders) == 1, "%r on masters %s" % (key, holders)
    return slot, holders[0]


def check_placement(c, names):
    """Every name's value and meta key are on one master, in one slot;
    returns the set of masters (ports) holding them."""
    clients = {m.port: m.client() for m in c.masters()}
    ports = set()
    for name in names:
        vslot, vport = where(c, value_key(PREFIX, name), clients)
        mslot, mport = where(c, meta_key(PREFIX, name), clients)
        assert (vslot, vport) == (mslot, mport), name
        ports.add(vport)
    return ports


def session_names(c):
    """The names of the sessions (value keys) of PREFIX on the cluster."""
    out = set()
    for k in c.keys(PREFIX + "*"):
        k = k.decode()
        if "{" not in k:
            out.add(k[len(PREFIX):])
    return out


# -------------------------------------------------------------- harness

def test_harness(redis_cluster):
    """util.RedisCluster as the other tests use it: three masters with a
    replica each; key_slot() is Redis's; client_for() and slot_owner()
    name the master that holds a key, before and after a reshard moves
    its slot; kill_master() promotes that master's replica, which has
    every key the master acknowledged to it."""
    c = redis_cluster
    masters = c.masters()
    assert len(masters) == 3 and len(c.url().split(",")) == 6
    assert all(len(c.replicas_of(m)) == 1 for m in masters)
    cc = c.cluster_client()
    names = ["sess_k%03d" % i for i in range(300)]
    for n in names:
        cc.set(value_key(PREFIX, n), n)
        cc.hset(meta_key(PREFIX, n), "mt", 1)
    for n in names[:20]:
        k = value_key(PREFIX, n)
        assert masters[0].client().execute_command(
            "CLUSTER", "KEYSLOT", k) == key_slot(k)
        assert c.client_for(k).get(k) == n.encode()
    assert len(check_placement(c, names)) == 3

    def slots(m):
        return sum(hi - lo + 1 for lo, hi, node, *_ in
                   m.client().execute_command("CLUSTER", "SLOTS")
                   if int(node[1]) == m.port)
    before = slots(masters[1])
    moving = shard_names(c, masters[0], names)
    c.reshard(300, masters[0], masters[1])
    assert slots(masters[1]) == before + 300
    moved = moving & shard_names(c, masters[1], names)
    assert moved and len(check_placement(c, names)) == 3
    for n in moved:
        assert where(c, value_key(PREFIX, n))[1] == masters[1].port

    for m in c.masters():
        assert m.client().execute_command("WAIT", 1, 5000) == 1
    victim = c.masters()[2]
    replica = c.replicas_of(victim)[0]
    killed, new, t_kill, t_prom = c.kill_master(2)
    assert (killed, new) == (victim, replica) and t_prom > t_kill
    print("\nharness: kill -9 -> promotion %.2f s" % (t_prom - t_kill))
    assert victim.proc.poll() is not None and victim not in c.masters()
    c.wait_ok()
    assert len(check_placement(c, names)) == 3
    assert all(cc.get(value_key(PREFIX, n)) == n.encode() for n in names)


# ------------------------------------------------------------ real apps

@pytest.mark.parametrize("mode", modeutil.mode_params())
def test_apps_on_cluster(cluster, sessdir, checker, make_app, mode):
    """PHP and Flask users log in and count through a mount on the
    cluster: every count is right.  In every mode but files (where the
    sessions stay files) the sessions are spread over the masters, each
    session's two keys in one slot on one master."""
    opts = cluster_opts() + ["mode=%s" % mode]
    with mounted(cluster.url(), sessdir, checker, opts=opts):
        php = make_app("php", sessdir)
        flask = make_app("flask", sessdir, {"SESSION_FILE_THRESHOLD": "0"})
        users = [(app, app.client(), "%s%d" % (app.kind, i))
                 for app in (php, flask) for i in range(6)]

        def session(u):
            app, c, name = u
            assert c.get("/login?user=" + name) == "ok user=" + name
            for n in range(1, 4):
                got = c.get("/incr")
                assert got == "count=%d" % n, (name, n, got)
            got = c.get("/whoami")
            assert got == "user=%s count=3" % name, (name, got)
        util.in_parallel(session, users, 4)
        php.stop()
        flask.stop()
        names = session_names(cluster)
        want = {"sess_" + util.php_sid(c) for app, c, _ in users
                if app is php}
        want |= {util.flask_file(c) for app, c, _ in users if app is flask}
        if mode == "files":
            assert names == set()
            assert want <= set(os.listdir(sessdir))
            return
        assert want <= names, want - names
        ports = check_placement(cluster, want)
        print("\n%s: %d sessions on masters %s" % (mode, len(want),
                                                    sorted(ports)))
        assert len(ports) >= 2


def test_tracking_two_hosts(cluster, tmp, checker):
    """cache=tracking on two mounts of the cluster (hosts a and b), with
    names on every master: b has read each name, a rewrites it, and b
    serves a's write at once, or (DESIGN.md, "Tracked lookups") the value
    before until it hears the invalidation, then a's write: b's tracking
    is subscribed on every master, not only one; the same after the
    slots of five names moved to another master."""
    mounts = []
    for tag in ("a", "b"):
        d = tmp / tag
        d.mkdir()
        mounts.append((modeutil.ModeMount(d, None, checker),
                       util.make_sessdir(d),
                       ["host_id=%s" % tag, "cache=tracking",
                        "redis_timeout=8"]))
    (mma, da, xa), (mmb, db, xb) = mounts
    url = cluster.url()
    with mma.mounted(da, "redis-only", xa, url=url) as a, \
            mmb.mounted(db, "redis-only", xb, url=url) as b:
        wait_for(lambda: mmb.status()["cache"].get("up"), 10,
                 "b's tracker to subscribe")
        names = ["sess_tr%02d" % i for i in range(30)]
        for n in names:
            util.write_file(a.path(n), b"0")
        for n in names:
            # The second read is b's cache's.
            assert util.read_file(b.path(n)) == b"0"
            assert util.read_file(b.path(n)) == b"0"
        assert len(check_placement(cluster, names)) == 3
        late = 0

        def round_(i):
            nonlocal late
            for n in names:
                before = mmb.status()["cache"]["invalidations"]
                util.write_file(a.path(n), b"%d" % i)
                got = util.read_file(b.path(n))
                if got == b"%d" % i:
                    continue
                assert got == b"%d" % (i - 1), (n, i, got)
                wait_for(lambda: mmb.status()["cache"]["invalidations"]
                         > before, 5, "b to hear of %s's change" % n)
                assert util.read_file(b.path(n)) == b"%d" % i, n
                late += 1
        for i in range(1, 4):
            round_(i)
        # Slots move under b's cache: the names b tracked on one master
        # are served by another now; a's next writes must still reach b.
        src, dst = cluster.masters()[:2]
        moved = sorted(shard_names(cluster, src, names))[:5]
        assert moved
        for slot in {key_slot(value_key(PREFIX, n)) for n in moved}:
            cluster.move_slot(slot, dst)
        assert shard_names(cluster, dst, moved) == set(moved)
        for i in range(4, 6):
            round_(i)
        st = mmb.status()["cache"]
        print("\ntracking on a cluster: %d of %d reads before the "
              "invalidation arrived (%d names' slots moved after round 3); "
              "b's cache %s" % (late, 5 * len(names), len(moved),
                                json.dumps(st)))
        # b did cache, and heard of every change (one per name and round
        # at least), on every master.
        assert st["hits"] >= len(names), st
        assert st["invalidations"] >= 5 * len(names), st


# ------------------------------------------------------- history checks

def status(ctl, mnt):
    """sessfs-migrate status --json of the mount on 'mnt'."""
    return json.loads(migrate("status", "--mount", mnt, "--ctl-dir", ctl,
                              "--json").stdout)


def shard_names(c, master, names):
    """The names of 'names' whose value key 'master' serves now."""
    owner = c.slot_map()
    return {n for n in names
            if owner[key_slot(value_key(PREFIX, n))] is master}


def figures(what, h, load, extra):
    """One table line of a history check, for the closing note.  lost:
    acknowledged writes the final read-back does not find, and the apps'
    acknowledged increments missing from a later count; stale: a
    writer's read older than its last acknowledged write, and the apps'
    /whoami below their last acknowledged count; resurrected: a deleted
    session back with an older value, seen by a read or at the end."""
    lost, resurrected = h.final
    return ("\n%s: requests %d (mount %d, apps %d), errors %d (%d, %d), "
            "lost %d (%d, %d), stale %d (%d, %d), resurrected %d (%d, %d), "
            "lost app sessions %d; %s"
            % (what, len(h.acks) + len(h.errors) + load.requests,
               len(h.acks) + len(h.errors), load.requests,
               len(h.errors) + load.errors, len(h.errors), load.errors,
               lost + load.lost, lost, load.lost,
               h.lost_seen + load.stale, h.lost_seen, load.stale,
               h.resurrected_seen + resurrected, h.resurrected_seen,
               resurrected, load.lost_sessions, extra))


def start_load(sessdir, make_app, h):
    """The writers of 'h' and two clients of each app (PHP, Flask) on
    'sessdir', once they have been served; all stopped if they are not
    (their threads would go on against whatever is left)."""
    php = make_app("php", sessdir)
    flask = make_app("flask", sessdir, {"SESSION_FILE_THRESHOLD": "0"})
    load = util.AppLoad({"p": (php, "/incr_checked"),
                         "f": (flask, "/incr")})
    h.start()
    load.start()
    try:
        wait_for(lambda: len(h.acks) > 100 and len(load.acks) > 20, 30,
                 "the first requests")
    except BaseException:
        stop_load(h, load, php, flask)
        raise
    return php, flask, load


def stop_load(h, load, php, flask):
    h.finish()
    load.finish()
    php.stop()
    flask.stop()


def test_reshard_under_load(redis_cluster, sessdir, checker, make_app):
    """2000 slots move from the first master to the second while PHP-style
    writers (through the mount) and the real apps run: nothing fails,
    nothing acknowledged is lost or read stale, no delete comes back."""
    c = redis_cluster
    with mounted(c.url(), sessdir, checker, opts=cluster_opts()):
        h = util.History(sessdir, n=200, writers=4, prefix=PREFIX)
        php, flask, load = start_load(sessdir, make_app, h)
        try:
            src, dst = c.masters()[:2]
            moving = shard_names(c, src, h.names)
            t0 = time.monotonic()
            n0 = len(h.acks)
            proc = c.reshard(2000, src, dst, wait=False)
            c.finish_reshard(proc)
            took = time.monotonic() - t0
            during = len(h.acks) - n0
            moved = moving & shard_names(c, dst, h.names)
            n = len(h.acks)
            wait_for(lambda: len(h.acks) > n + 100, 30,
                     "writes after the reshard")
        finally:
            stop_load(h, load, php, flask)
        h.final = h.check(c.cluster_client())
        print(figures("reshard 2000 slots", h, load,
                      "reshard %.1f s, %d mount ops during it, %d of %d "
                      "names moved" % (took, during, len(moved),
                                       len(h.names))))
        # The check could fail: names did move, under writes.
        assert moved and during > 0
        assert h.errors == [] and load.errors == 0, h.errors[:5]
        assert h.lost_seen == 0 and h.final == (0, 0)
        assert h.resurrected_seen == 0
        assert load.lost == 0 and load.stale == 0
        assert load.lost_sessions == 0


def test_slots_moved_key_by_key(cluster, sessdir, checker):
    """The slots of six sessions move by hand, one key at a time, while
    PHP-style writers run: each session is written right after the
    first of its two keys moved (its value and meta key on two nodes:
    TRYAGAIN, ASK) and that write must succeed with the slot's move,
    as must every writer's; nothing is lost, stale or resurrected, and
    nothing is logged."""
    c = cluster
    with mounted(c.url(), sessdir, checker, opts=cluster_opts()) as m:
        h = util.History(sessdir, n=60, writers=4, prefix=PREFIX)
        h.start()
        try:
            wait_for(lambda: len(h.acks) > 100, 30, "the first writes")
            src, dst = c.masters()[:2]
            owner = c.slot_map()
            hand, slots = [], set()
            i = 0
            while len(hand) < 6:
                name = "sess_hand%04d" % i
                i += 1
                slot = key_slot(value_key(PREFIX, name))
                if owner[slot] is src and slot not in slots:
                    hand.append(name)
                    slots.add(slot)
            for name in hand:
                php_write(m.path(name), b"hand|0")
            before = c.error_counts("ASK", "TRYAGAIN", "MOVED")
            ops = []
            for k, name in enumerate(hand):
                def between(key, name=name, k=k):
                    if len(ops) == k:  # after the first key only
                        ops.append(util.Op(lambda: php_write(
                            m.path(name), b"hand|%d" % (k + 1))))
                        ops[-1].start()
                        # Let the write meet the half-moved slot.
                        time.sleep(0.3)
                c.move_slot(key_slot(value_key(PREFIX, name)), dst, between)
            for op in ops:
                op.join(30 * util.SLOW)
            after = c.error_counts("ASK", "TRYAGAIN", "MOVED")
            n = len(h.acks)
            wait_for(lambda: len(h.acks) > n + 100, 30,
                     "writes after the moves")
        finally:
            h.finish()
        h.final = h.check(c.cluster_client())
        seen = {k: after[k] - before[k] for k in after}
        print("\nslots moved key by key: %d mount ops, errors %d, lost %d, "
              "stale %d, resurrected %d; replies during the moves %s; "
              "the writes into half-moved slots took %s s"
              % (len(h.acks) + len(h.errors), len(h.errors), h.final[0],
                 h.lost_seen, h.resurrected_seen + h.final[1],
                 json.dumps(seen),
                 [round(op.took, 2) for op in ops if op.took is not None]))
        assert len(ops) == len(hand)
        for op in ops:
            assert not op.is_alive() and op.error is None, op.error
        assert seen["ASK"] + seen["TRYAGAIN"] > 0, seen
        for k, name in enumerate(hand):
            assert php_read(m.path(name)) == b"hand|%d" % (k + 1), name
        assert len(check_placement(c, hand)) == 1
        assert h.errors == [], h.errors[:5]
        assert h.lost_seen == 0 and h.final == (0, 0)
        assert h.resurrected_seen == 0


@pytest.mark.parametrize("durability", ["none", "replica"])
def test_failover_under_load(sessdir, checker, make_app, request,
                             durability):
    """kill -9 of a master under load; its replica is promoted: no error
    reaches the apps or the writers, and the time from the kill and from
    the promotion to the first operation served again on that shard is
    printed.  With durability=replica (two replicas per master here, so
    that the promoted one still has a replica to confirm to) nothing
    acknowledged is lost or stale and no delete comes back; the default
    promises that only for the shards that stayed up."""
    checker.register_output(CLUSTER_LOG)
    replicas = 2 if durability == "replica" else 1
    ctl = sessdir.parent / "ctl"
    with util.own_redis_cluster(request, replicas=replicas) as c:
        opts = cluster_opts(ctl, durability=durability)
        with mounted(c.url(), sessdir, checker, opts=opts):
            h = util.History(sessdir, n=60, writers=4, prefix=PREFIX)
            php, flask, load = start_load(sessdir, make_app, h)
            try:
                victim = c.masters()[0]
                on_victim = shard_names(c, victim, h.names)
                _, new, t_kill, t_prom = c.kill_master(0)
                wait_for(lambda: h.first_ack_after(t_prom, on_victim), 30,
                         "an operation served on the promoted replica")
                served = h.first_ack_after(t_prom, on_victim)
                n = len(h.acks)
                wait_for(lambda: len(h.acks) > n + 100, 30,
                         "writes after the failover")
            finally:
                stop_load(h, load, php, flask)
            h.final = h.check(c.cluster_client())
            st = status(ctl, sessdir)["durability"]
            others = set(h.names) - on_victim
            lost_others = sum(
                1 for name in others if name not in h.uncertain
                and h.acked.get(name, (0, "d"))[1] == "w"
                and util.seq_of(c.cluster_client().get(
                    value_key(PREFIX, name))) < h.acked[name][0])
        print(figures("failover durability=%s, %d replica(s) per master"
                      % (durability, replicas), h, load,
                      "kill -> promotion %.2f s, promotion -> served "
                      "%.2f s, kill -> served %.2f s (%d names on the "
                      "killed master); status durability %s"
                      % (t_prom - t_kill, served - t_prom, served - t_kill,
                         len(on_victim), json.dumps(st))))
        assert on_victim and served
        assert h.errors == [] and load.errors == 0, h.errors[:5]
        assert served - t_kill < 10
        assert lost_others == 0
        if durability == "replica":
            # The writes did wait for a replica, and every one got it.
            assert st["confirmed"] > 0 and st["unconfirmed"] == 0, st
            assert h.lost_seen == 0 and h.final == (0, 0)
            assert h.resurrected_seen == 0
            assert load.lost == 0 and load.stale == 0
            assert load.lost_sessions == 0


# ------------------------------------------------------ migrate commands

def test_migrate_commands(cluster, tmp):
    """analyze, copy, verify, export, backup, restore and cleanup take a
    redis-cluster:// URL: copy spreads the sessions over the masters,
    verify finds exactly the planted differences, export writes what the
    cluster holds, a restore into the emptied cluster gives back every
    key, cleanup removes only what the cluster holds the same."""
    url = cluster.url()
    src = util.make_sessdir(tmp, "src")
    old_ns = time.time_ns() - 10 * 24 * 3600 * 10**9
    data = {}
    for i in range(30):
        data["sess_c%02d" % i] = b'user|s:2:"u%d";' % i
    for i in range(5):
        data["sessionid" + "%032d" % i] = b'{"_auth_user_id":"%d"}' % i
    for i in range(5):
        sid = hashlib.md5(b"session:cl%d" % i).hexdigest()
        data[sid] = util.cachelib_bytes(int(time.time()) + 3600)
    for name, body in data.items():
        p = src / name
        p.write_bytes(body)
        p.chmod(0o600)
        os.chown(p, util.WWW_UID, util.WWW_GID)
        os.utime(p, ns=(old_ns, old_ns))

    a = json.loads(migrate("analyze", "--json", src, url).stdout)
    assert a["kinds"] == dict(a["kinds"], php=30, cachelib=5, django=5), a
    s = json.loads(migrate("copy", "--no-progress", src, url).stdout)
    assert s["copied"] == len(data), s
    assert session_names(cluster) == set(data)
    assert len(check_placement(cluster, data)) == 3
    v = json.loads(migrate("verify", "--no-progress", "--json", src,
                           url).stdout)
    assert (v["checked"], v["different"]) == (len(data), 0), v

    # Planted: other bytes, a missing session, another mode, a TTL.
    cc = cluster.cluster_client()
    cc.set(value_key(PREFIX, "sess_c01"), b"tampered", keepttl=True)
    cc.delete(value_key(PREFIX, "sess_c02"))
    cc.delete(meta_key(PREFIX, "sess_c02"))
    cc.hset(meta_key(PREFIX, "sess_c03"), "mode", 0o644)
    cc.pexpire(value_key(PREFIX, "sess_c04"), 60 * 1000)
    p = migrate("verify", "--no-progress", "--json", src, url, rc=1)
    v = json.loads(p.stdout)
    diffs = {d["name"]: d["difference"] for d in v["differences"]}
    assert sorted(diffs) == ["sess_c01", "sess_c02", "sess_c03",
                             "sess_c04"], diffs
    assert diffs["sess_c02"] == "missing in Redis"
    assert diffs["sess_c01"].startswith("value differs")

    out = util.make_sessdir(tmp, "out")
    migrate("export", url, out)
    got = {n: (out / n).read_bytes() for n in os.listdir(out)}
    want = dict(data, sess_c01=b"tampered")
    del want["sess_c02"]
    assert got == want

    def snapshot():
        """Every key: its value (a string's bytes, a hash's fields, a
        sorted set's members) and whether it has a TTL."""
        out = {}
        for k in cluster.keys(PREFIX + "*"):
            t = cc.type(k)
            v = (cc.get(k) if t == b"string" else cc.hgetall(k)
                 if t == b"hash" else sorted(cc.zrange(k, 0, -1)))
            out[k] = (t, v, cc.pttl(k) > 0)
        return out
    before = snapshot()
    bk = tmp / "cluster.sfbk"
    b = json.loads(migrate("backup", "--json", url, bk).stdout)
    assert b["values"] == len(data) - 1, b
    cluster.flushall()
    assert cluster.keys() == set()
    r = json.loads(migrate("restore", "--json", bk, url).stdout)
    assert (r["restored"], r["errors"]) == (len(data) - 1, 0), r
    assert snapshot() == before

    # cleanup: never the tampered or the missing one.
    p = migrate("cleanup", src, url, "--older-than", "7d")
    would = {line.split("'")[1] for line in p.stdout.splitlines()
             if line.startswith("would remove '")}
    untouched = set(data) - {"sess_c01", "sess_c02", "sess_c03", "sess_c04"}
    assert untouched <= would and not {"sess_c01", "sess_c02"} & would
    migrate("cleanup", src, url, "--older-than", "7d", "--yes")
    left = set(os.listdir(src))
    assert {"sess_c01", "sess_c02"} <= left and not untouched & left


def test_online_copy_verify_mode(cluster, sessdir, checker, tmp):
    """The online commands on a cluster mount: the backfill (copy
    --mount) brings the files underneath to every master, verify
    --mount finds no difference, and the mount moves on to redis-only
    and serves the sessions from the cluster."""
    want = {"sess_on%02d" % i: b"on|%d" % i for i in range(40)}
    now = time.time_ns()
    for name, body in want.items():
        p = sessdir / name
        p.write_bytes(body)
        p.chmod(0o600)
        os.chown(p, util.WWW_UID, util.WWW_GID)
        os.utime(p, ns=(now, now))
    ctl = tmp / "ctl"
    opts = cluster_opts(ctl) + ["mode=dual-write"]
    with mounted(cluster.url(), sessdir, checker, opts=opts) as m:
        def online(*args, rc=0):
            return migrate(*args, "--mount", sessdir, "--ctl-dir", ctl,
                           rc=rc)
        st = json.loads(online("copy", "--json").stdout)
        assert st["state"] == "done", st
        assert st["done"] == st["total"] == len(want), st
        assert st["errors"] == 0, st
        assert session_names(cluster) == set(want)
        assert len(check_placement(cluster, want)) == 3
        online("verify")
        online("mode", "redis-only")
        assert status(ctl, sessdir)["mode"] == "redis-only"
        for name, body in want.items():
            assert php_read(m.path(name)) == body
            assert cluster.client_for(value_key(PREFIX, name)).get(
                value_key(PREFIX, name)) == body


def test_rollback(cluster, sessdir, checker, tmp):
    """A redis-only mount on the cluster rolled back to plain files: the
    files underneath hold every session the mount showed."""
    ctl = tmp / "ctl"
    opts = cluster_opts(ctl) + ["mode=redis-only"]
    with mounted(cluster.url(), sessdir, checker, opts=opts) as m:
        want = {"sess_rb%02d" % i: b"rb|%d" % i for i in range(40)}
        for name, body in want.items():
            util.as_www(php_write, str(m.path(name)), body)
        assert len(check_placement(cluster, want)) == 3
        for name, body in want.items():
            assert php_read(m.path(name)) == body
        m.self_unmount = True
        p = migrate("rollback", "--mount", sessdir, "--ctl-dir", ctl,
                    "--sessfs", SESSFS, timeout=300)
        assert "0 differences" in p.stdout, p.stdout
    assert not util.is_mounted(sessdir)
    got = {n: (sessdir / n).read_bytes() for n in os.listdir(sessdir)
           if n.startswith("sess_")}
    assert got == want


# ------------------------------------------------------------ bad input

def test_not_a_cluster(redis, redis_server, sessdir):
    """A redis-cluster:// URL to a server without cluster mode: one line
    at mount and from sessfs-migrate, naming the cluster."""
    addr = "127.0.0.1:%d" % redis_server.port
    url = "redis-cluster://" + addr
    err = util.assert_refused(util.run_sessfs([url, str(sessdir)]), sessdir,
                              addr, "cluster")
    assert "bad scheme" not in err
    p = migrate("verify", sessdir, url, rc=None)
    assert p.returncode != 0, p.stdout
    assert addr in p.stderr and "cluster" in p.stderr, p.stderr
    assert "bad scheme" not in p.stderr


def test_uncovered_slots(request, sessdir):
    """A cluster whose slots 0-99 no node serves: one line at mount and
    from sessfs-migrate, naming the slots."""
    with util.own_redis_cluster(request, replicas=0) as c:
        for s in c.servers:
            s.client().execute_command("CLUSTER", "DELSLOTSRANGE", 0, 99)
        wait_for(lambda: not any(c._ok_quiet(s) for s in c.servers), 10,
                 "every node to call the cluster down")
        err = util.assert_refused(util.run_sessfs([c.url(), str(sessdir)]),
                                  sessdir, "slot")
        assert "bad scheme" not in err
        p = migrate("verify", sessdir, c.url(), rc=None)
        assert p.returncode != 0, p.stdout
        assert "slot" in p.stderr and "bad scheme" not in p.stderr
