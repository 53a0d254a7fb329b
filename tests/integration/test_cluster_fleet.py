# SPDX-License-Identifier: GPL-2.0-or-later
"""The fleet commands on a Redis Cluster (util.RedisCluster): two mounts of
one prefix on the cluster, stepped files -> dual-write -> (copy, verify
--mount per host) -> redis-first by `sessfs-migrate mode --fleet`, `status --fleet` naming both, and a
fleet rollback to files that keeps the mounts (--no-unmount).  The fleet's
keys share the '{sessfs}' hash tag (one slot, one master): the steps work
whichever master that is.  test_cluster.py has the apps, the history
checks and the other migrate commands."""

import contextlib

import pytest

import util
from util import wait_for
from test_fleet import all_in, fleet, fleet_status, mount_host
from test_online import MIGRATE, migrate

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not MIGRATE.exists(), reason="%s not built" % MIGRATE),
]


def test_fleet_steps_on_cluster(request, tmp, checker):
    with util.own_redis_cluster(request) as c, contextlib.ExitStack() as st:
        url = c.url()
        hosts = [mount_host(st, url, tmp, checker, "web%d" % (i + 1))
                 for i in range(2)]
        wait_for(lambda: sorted(fleet_status(url)[1]) == ["web1", "web2"],
                 20, "every host's heartbeat", interval=0.2)
        for h in hosts:
            util.write_file(h.sessdir / ("sess_" + h.name), b"n|i:1;")
        for mode in ("dual-write", "redis-first"):
            if mode == "redis-first":
                # Each host copies and verifies its own files first.
                for h in hosts:
                    migrate("copy", "--no-progress", "--host-id", h.name,
                            h.sessdir, url)
                    out = h.on("verify").stdout
                    assert "0 differences" in out, out
            p = fleet(url, "mode", mode)
            for h in hosts:
                assert "%s: %s after" % (h.name, mode) in p.stdout, p.stdout
                assert h.on.status()["mode"] == mode
            assert all_in(url, hosts, mode)
        out = fleet(url, "status").stdout
        assert "web1" in out and "web2" in out, out
        # Each host's session went to Redis in dual-write.
        for h in hosts:
            key = "sessfs:sess_" + h.name
            assert c.cluster_client().get(key) == b"n|i:1;", key
        fleet(url, "rollback", "--no-unmount")
        wait_for(lambda: all_in(url, hosts, "files"), 20,
                 "every host in files")
        for h in hosts:
            assert h.on.status()["mode"] == "files"
