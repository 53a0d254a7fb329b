#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/backfill.py: the rate of the online backfill (sessfs-migrate copy
--mount) with and without live traffic, and what the backfill costs the
traffic.

One sessfs mount in dual-write on a throwaway redis-server over a lower
dir seeded with N session files (PHP-sized, 200 bytes).  Three phases:
the load alone (PHP-like clients, util.php_read then util.php_write on
their own sessions, --clients threads), the backfill alone (no limit),
and the backfill again (--restart, after a FLUSHALL: every name copied
again) under the same load.  Prints sessions per
second of each backfill and the load's operations per second with and
without it.  A measurement, not a test.

Run as root from the source tree, after a build:

    SESSFS_BUILD_DIR=$PWD/build-dev bench/backfill.py [--sessions 20000]
        [--clients 4] [--seconds 5]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent
                       / "tests" / "integration"))
import util  # noqa: E402  (the tests' mounts and redis-server)

MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"


def migrate(*args):
    p = subprocess.run([str(MIGRATE)] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, check=False)
    if p.returncode != 0:
        raise SystemExit("sessfs-migrate %s: %s" % (" ".join(args),
                                                    p.stderr))
    return p.stdout


def load(m, k, stop, ops):
    names = ["sess_load%d_%02d" % (k, i) for i in range(20)]
    i = 0
    for n in names:
        util.php_write(m.path(n), b"x" * 200)
    while not stop.is_set():
        n = names[i % len(names)]
        util.php_read(m.path(n))
        util.php_write(m.path(n), b"%d|" % i + b"x" * 190)
        ops[k] += 2
        i += 1


def with_load(m, clients, fn):
    """Runs fn() under the load; returns (fn's result, load ops/s)."""
    stop = threading.Event()
    ops = [0] * clients
    ts = [threading.Thread(target=load, args=(m, k, stop, ops))
          for k in range(clients)]
    for t in ts:
        t.start()
    time.sleep(0.5)  # the clients have their sessions
    t0, o0 = time.monotonic(), sum(ops)
    res = fn()
    secs = time.monotonic() - t0
    n = sum(ops) - o0
    stop.set()
    for t in ts:
        t.join()
    return res, n / secs


def backfill(mnt, ctl, *extra):
    t0 = time.monotonic()
    out = json.loads(migrate("copy", "--mount", mnt, "--ctl-dir", ctl,
                             "--json", *extra))
    secs = time.monotonic() - t0
    assert out["state"] == "done" and out["errors"] == 0, out
    return out, out["done"] / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    root = util.short_tmpdir("bf")
    srv = util.RedisServer(root / "redis").start()
    try:
        sessdir = util.make_sessdir(root)
        old = time.time_ns() - 600 * 10**9
        for i in range(args.sessions):
            p = sessdir / ("sess_seed%07d" % i)
            p.write_bytes(b"s|%d;" % i + b"y" * 190)
            os.utime(p, ns=(old, old))
        log = util.OutputChecker(root / "sessfs.log")
        ctl = root / "ctl"
        with util.mounted(srv.url(), sessdir, log,
                          opts=["allow_other", "mode=dual-write",
                                "ctl_dir=%s" % ctl]) as m:
            _, base = with_load(m, args.clients,
                                lambda: time.sleep(args.seconds))
            out, alone = backfill(sessdir, ctl)
            copied = out["copied"]
            # Redis empty again: the second run copies every name too.
            srv.client().flushall()
            (out2, loaded), during = with_load(
                m, args.clients, lambda: backfill(sessdir, ctl, "--restart"))
        print("sessions %d (copied %d), load %d PHP-like clients"
              % (args.sessions, copied, args.clients))
        print("load alone:           %8.0f ops/s" % base)
        print("backfill alone:       %8.0f sessions/s (copied)" % alone)
        print("backfill under load:  %8.0f sessions/s (copied %d), "
              "load %8.0f ops/s meanwhile" % (loaded, out2["copied"], during))
    finally:
        srv.stop()
        util.unmount_all(root / "sessions")


if __name__ == "__main__":
    main()
