#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/stale.py: how often a host reads a session older than one another
host has already acknowledged (docs/DESIGN.md, "Tracked lookups").

Two sessfs mounts on one throwaway redis-server stand for hosts a and b.
For each of N sessions a writer on a rewrites the file with a counter
(open O_TRUNC, write, close) and a reader on b reads it in a loop; a read
is stale when it returns less than the counter a had acknowledged before
the read began.  Prints, for each cache setting, the acknowledged writes,
the reads and the stale reads, median over the rounds; and the stale reads
against what a had acknowledged at least --lag-ms before the read began
(a user's next request reaching b takes at least a network round trip
after a's response).  A measurement, not a test: the count is a rate that
depends on the machine's load.

Run as root from the source tree, after a build:

    SESSFS_BUILD_DIR=$PWD/build bench/stale.py [--seconds 3] [--sessions 4]
        [--rounds 3] [--cache off,tracking] [--lag-ms 1]
"""

import argparse
import bisect
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent
                       / "tests" / "integration"))
import util  # noqa: E402  (the tests' mounts and redis-server)

NAME = "sess_stale%02d0123456789abcdefghij"


def one_round(srv, root, cache, seconds, sessions, lag):
    da = util.make_sessdir(root, "a-%s" % cache)
    db = util.make_sessdir(root, "b-%s" % cache)
    log = util.OutputChecker(root / ("sessfs-%s.log" % cache))
    opts = ["allow_other", "cache=%s" % cache]
    names = [NAME % k for k in range(sessions)]
    acked = {n: 0 for n in names}
    times = {n: [] for n in names}  # when a acknowledged 1, 2, ...
    reads, stale, stale_lag = [0], [0], [0]
    stop = threading.Event()
    with util.mounted(srv.url(), da, log,
                      opts=opts + ["host_id=a",
                                   "state_dir=%s" % (root / "st-a")],
                      state_dir=None) as a, \
            util.mounted(srv.url(), db, log,
                         opts=opts + ["host_id=b",
                                      "state_dir=%s" % (root / "st-b")],
                         state_dir=None) as b:
        time.sleep(0.5)  # the trackers subscribe
        for n in names:
            util.write_file(a.path(n), b"0")

        def writer(n):
            i = 0
            while not stop.is_set():
                i += 1
                util.write_file(a.path(n), b"%d" % i,
                                flags=os.O_RDWR | os.O_TRUNC)
                times[n].append(time.monotonic())
                acked[n] = i

        def reader(n):
            while not stop.is_set():
                floor = acked[n]
                t0 = time.monotonic()
                got = int(util.read_file(b.path(n)))
                reads[0] += 1
                if got < floor:
                    stale[0] += 1
                    # Counter values acknowledged by t0 - lag.
                    if got < bisect.bisect_right(times[n], t0 - lag):
                        stale_lag[0] += 1

        threads = [threading.Thread(target=f, args=(n,))
                   for n in names for f in (writer, reader)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(60)
    return sum(acked.values()), reads[0], stale[0], stale_lag[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default="off,tracking")
    ap.add_argument("--lag-ms", type=float, default=1.0)
    args = ap.parse_args()
    root = util.short_tmpdir("stale")
    for d in ("st-a", "st-b"):
        (root / d).mkdir()
    srv = util.RedisServer(root / "redis").start()
    try:
        res = {c: [] for c in args.cache.split(",")}
        for r in range(args.rounds):
            rdir = root / ("r%d" % r)
            rdir.mkdir()
            for c in res:
                res[c].append(one_round(srv, rdir, c, args.seconds,
                                        args.sessions, args.lag_ms / 1000))
        print("cache      writes acked   reads on b   stale reads  "
              "stale, %g ms lag  (median of %d rounds of %.0f s, %d "
              "sessions)" % (args.lag_ms, args.rounds, args.seconds,
                             args.sessions))
        for c, rows in res.items():
            w, rd, st, sl = (statistics.median(x) for x in zip(*rows))
            print("%-9s %13d %12d %13d %17d   all rounds: %s, %s"
                  % (c, w, rd, st, sl, [x[2] for x in rows],
                     [x[3] for x in rows]))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
