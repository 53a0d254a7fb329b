# SPDX-License-Identifier: GPL-2.0-or-later
"""rediss-cluster://: a TLS-only cluster node (port 0, tls-port,
tls-cluster yes, mutual TLS, a password) serving every slot, mounted
through rediss-cluster:// with the mount's tls_* options: CLUSTER SLOTS
over TLS names the TLS port, the link to the node verifies it by its
address, and sessions go in and come back.  The same through
sessfs-migrate copy and verify.  Certificates and password as
test_tls.py's."""

import pytest

import util
from util import wait_for
from test_tls import MIGRATE, PASSWORD, certs, pwfile  # noqa: F401

pytestmark = util.fuse_test_marker()


@pytest.fixture
def tls_node(certs):  # noqa: F811
    extra = ["cluster-enabled yes", "cluster-config-file nodes.conf",
             "cluster-port %d" % util.free_port(), "tls-cluster yes",
             "tls-replication yes"]
    with util.own_redis_server("k", password=PASSWORD, tls=certs,
                               auth_clients="yes", extra=extra) as node:
        r = node.client()
        r.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_for(lambda: b"cluster_state:ok" in
                 r.execute_command("CLUSTER", "INFO"), 10,
                 "the node to serve every slot")
        yield node


def test_mount_over_rediss_cluster(certs, tls_node, pwfile,  # noqa: F811
                                   sessdir, checker, tmp):
    url = "rediss-cluster://127.0.0.1:%d" % tls_node.port
    opts = certs.mount_opts(True) + ["password_file=%s" % pwfile,
                                     "allow_other", "cache=off"]
    r = tls_node.client()
    with util.mounted(url, sessdir, checker, opts=opts) as m:
        util.write_file(m.path("sess_tls1"), b"a|i:1;")
        assert util.read_file(m.path("sess_tls1")) == b"a|i:1;"
        assert r.get("sessfs:sess_tls1") == b"a|i:1;"
        assert "sess_tls1" in [p.name for p in m.mnt.iterdir()]
    # sessfs-migrate over the same URL: copy and verify a directory.
    src = util.make_sessdir(tmp, "src")
    util.write_file(src / "sess_tls2", b"b|i:2;")
    args = certs.migrate_args(True) + ["--password-file", str(pwfile)]
    util.migrate("copy", "--no-progress", *args, src, url)
    p = util.migrate("verify", "--no-progress", *args, src, url)
    assert "1 same" in p.stdout and "0 different" in p.stdout, p.stdout
    assert r.get("sessfs:sess_tls2") == b"b|i:2;"
