#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/index_ab.py: what the names index costs Redis per PHP write
(docs/DESIGN.md, "Names index"), as an A/B of two sessfs binaries.

    bench/index_ab.py BINARY_A BINARY_B [WRITES=20000] [NAMES=1000] [BATCH=500]

Run as root (FUSE mounts) on an idle-ish machine.  For each binary: a
throwaway redis-server on 127.0.0.1 (a free port; stopped at the end)
holding 100 000 members in the names index (as an older sessfs left
them), a mount in redis-only on a temporary directory, NAMES sess_* files
created, CONFIG RESETSTAT.  Then WRITES rewrites per mount (open with
O_TRUNC, one write, close: one put script each), the two mounts
alternating in batches of BATCH, so that other load on the machine hits
both alike.  Prints per binary: INFO commandstats' evalsha calls and
usec_per_call, redis-server's CPU time (utime + stime from /proc) per
write, which index commands ran, and the index's size."""
import os
import socket
import subprocess
import sys
import tempfile
import time

import redis

INDEX = "sessfs:{sessfs}:names"
MEMBERS = 100000
TICK = os.sysconf("SC_CLK_TCK")
BODY = b'user|s:5:"alice";count|i:%d;' + b"x" * 200


def cpu_s(pid):
    """utime + stime of 'pid' in seconds."""
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, what, timeout=10):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(0.05)


def pinged(r):
    try:
        return r.ping()
    except redis.ConnectionError:
        return False


def start(side, nnames):
    """redis-server, the index's members, the mount and its files."""
    port = free_port()
    tmp = side["tmp"] = tempfile.mkdtemp(prefix="idxab-", dir="/tmp")
    side["mnt"] = os.path.join(tmp, "mnt")
    for d in ("mnt", "state", "ctl"):
        os.mkdir(os.path.join(tmp, d))
    side["srv"] = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL)
    r = side["r"] = redis.Redis(port=port)
    wait_for(lambda: pinged(r), "redis-server")
    expiry = int(time.time() * 1000) + 86400 * 1000
    p = r.pipeline(transaction=False)
    for i in range(MEMBERS):
        p.zadd(INDEX, {"sessfs:sess_pre%06d" % i: expiry})
        if i % 5000 == 4999:
            p.execute()
    p.execute()
    side["daemon"] = subprocess.Popen(
        [side["bin"], "redis://127.0.0.1:%d/0" % port, side["mnt"], "-f",
         "-o", "mode=redis-only,state_dir=%s/state,ctl_dir=%s/ctl"
         % (tmp, tmp)],
        stdout=subprocess.DEVNULL, stderr=open(tmp + "/sessfs.log", "w"))
    wait_for(lambda: os.path.ismount(side["mnt"]), "the mount")
    side["names"] = [os.path.join(side["mnt"], "sess_%026d" % i)
                     for i in range(nnames)]
    for n in side["names"]:
        write(n, 0)
    r.config_resetstat()
    side["cpu"] = 0.0


def write(path, i):
    """PHP's files handler rewriting a session: one put script."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, BODY % i)
    finally:
        os.close(fd)


def stop(side):
    if side.get("daemon"):
        subprocess.run(["fusermount3", "-u", "-z", side["mnt"]])
        side["daemon"].wait(10)
    if side.get("srv"):
        side["srv"].terminate()
        side["srv"].wait(10)
    if side.get("tmp"):
        subprocess.run(["rm", "-rf", side["tmp"]])


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    writes = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    nnames = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 500
    sides = [{"bin": b} for b in sys.argv[1:3]]
    try:
        for side in sides:
            start(side, nnames)
        for first in range(0, writes, batch):
            for side in sides:
                c0 = cpu_s(side["srv"].pid)
                for i in range(first, min(writes, first + batch)):
                    write(side["names"][i % nnames], i)
                side["cpu"] += cpu_s(side["srv"].pid) - c0
        for side in sides:
            st = side["r"].info("commandstats")
            ev = st.get("cmdstat_evalsha", {})
            index = {k[8:]: v["calls"] for k, v in st.items()
                     if k[8:] in ("time", "zadd", "zremrangebyscore",
                                  "zrem")}
            print("%s: evalsha calls=%d usec_per_call=%.2f; redis-server "
                  "CPU %.1f us/write; index commands %s; index members %d"
                  % (side["bin"], ev.get("calls", 0),
                     ev.get("usec_per_call", 0), side["cpu"] * 1e6 / writes,
                     index, side["r"].zcard(INDEX)))
    finally:
        for side in sides:
            stop(side)


if __name__ == "__main__":
    main()
