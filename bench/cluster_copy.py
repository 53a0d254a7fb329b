#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/cluster_copy.py: `sessfs-migrate copy` into a Redis Cluster beside
the same copy into one redis-server, measured in the same run.

N PHP-sized sessions (1-2 KiB) in a directory; each run copies them into
an emptied single redis-server and into an emptied cluster of three
masters without replicas (util.RedisCluster, the tests' helper), the
order alternating between runs, then checks that every session is there
(DBSIZE over the masters: a value and a meta key each).  The cluster's
copy pipelines go per node (backend/cluster.c cuts each pipeline by key
slot and sends each node its part in one write).  Prints sessions/s of
each and their ratio.  A measurement, not a test: on one machine the
three masters share its cores with the copy itself.

Run as root from the source tree, after a build (debugoptimized or
release, not sanitizers):

    SESSFS_BUILD_DIR=$PWD/build-dev bench/cluster_copy.py [--sessions 20000]
        [--runs 3] [--jobs N]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent
                       / "tests" / "integration"))
import util  # noqa: E402  (the tests' redis-server and cluster)

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"


def copy(src, url, jobs):
    args = [str(MIGRATE), "copy", "--no-progress"]
    if jobs:
        args += ["--jobs", str(jobs)]
    t0 = time.monotonic()
    p = subprocess.run(args + [str(src), url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, check=False)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("copy to %s: %s" % (url, p.stderr))
    return json.loads(p.stdout), secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    root = util.short_tmpdir("cc")
    src = util.make_sessdir(root, "src")
    for i in range(args.sessions):
        (src / ("sess_c%07d" % i)).write_bytes(
            b"s|i:%d;" % i + b"x" * (1024 + i % 1024))
    srv = util.RedisServer(root / "redis").start()
    rates = {"single": [], "cluster": []}
    try:
        with util.own_redis_cluster(replicas=0) as c:
            targets = {"single": (srv.url(), [srv.client()]),
                       "cluster": (c.url(),
                                   [m.client() for m in c.masters()])}
            for run in range(args.runs):
                order = ["single", "cluster"]
                if run % 2:
                    order.reverse()
                for what in order:
                    url, clients = targets[what]
                    for cl in clients:
                        cl.flushall()
                    out, secs = copy(src, url, args.jobs)
                    keys = sum(cl.dbsize() for cl in clients)
                    if keys != 2 * args.sessions:
                        raise SystemExit("%s: %d keys, want %d (%s)"
                                         % (what, keys, 2 * args.sessions,
                                            out))
                    rates[what].append(args.sessions / secs)
    finally:
        srv.stop()
    print("sessions %d, runs %d, jobs %s"
          % (args.sessions, args.runs, args.jobs or "default"))
    for what in ("single", "cluster"):
        r = sorted(rates[what])
        print("%-28s median %8.0f sessions/s  (runs: %s)"
              % ("copy into " + ("one redis-server" if what == "single"
                                 else "a 3-master cluster"),
                 r[len(r) // 2], ", ".join("%.0f" % x for x in rates[what])))
    s = sorted(rates["single"])[len(rates["single"]) // 2]
    k = sorted(rates["cluster"])[len(rates["cluster"]) // 2]
    print("cluster / single: %.2f" % (k / s))


if __name__ == "__main__":
    main()
