#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/redis_cost.py: what one app request costs Redis, sessfs against
the native session handlers (issue 14; bench/README.md, "redis_cost.py").

One throwaway redis-server; four targets, each driven with the same
request mix, a counter (/incr: read the session, increment, save) for N
requests spread over C users with a session each:

  php/sessfs    examples/php/index.php (php -S, PHP's `files` handler) on
                a sessfs mount (redis-only, default options)
  php/native    the same app with phpredis's `redis` session handler
                (save_path tcp://127.0.0.1:PORT) on the same server
  flask/sessfs  examples/flask/app.py (gunicorn, Flask-Session's
                `filesystem` backend, cachelib) on a sessfs mount
  flask/native  the same app with Flask-Session's `redis` backend

Each phase starts with CONFIG RESETSTAT and ends with INFO commandstats.
Redis 7 counts a command run by a script (EVAL, EVALSHA) or by EXEC under
its own cmdstat too, and the script's or EXEC's usec already include it
(bench/README.md shows the check), so the plain sum counts those twice.
A second, shorter pass of the same requests runs under MONITOR, which
tags a script's commands with "lua" and shows a transaction's commands
between the MULTI and EXEC of their client: from it, for each command,
the share of its calls that ran inside a script or transaction.  The
figure per request is the sum over commands of usec x (1 - that share):
each top-level call once, a script's or transaction's inner commands
inside it only.  MONITOR is off while the time is measured (it slows
every command).  Also shown: redis-server's CPU time (utime + stime from
/proc) per request, which includes the network and event loop; coarse
(clock ticks) but not a model.

Run as root (FUSE mounts, www-data apps) after a build:

    SESSFS_BUILD_DIR=$PWD/build-dev bench/redis_cost.py [--requests 2000]
        [--users 8] [--rounds 3] [--monitor-requests 200] [--json FILE]
        [--baseline OTHER_BUILD_DIR]
    bench/redis_cost.py --smoke     one short round: every figure measured

--baseline adds php/sessfs-base and flask/sessfs-base: the same on the
sessfs of another build (e.g. main's), measured in the same run.

A measurement, never a test: nothing passes or fails on time.  With
--smoke it exits non-zero when a phase failed or measured nothing.
Everything started here is stopped by its PID, every mount unmounted,
also on failure.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent
                       / "tests" / "integration"))
import util  # noqa: E402  (the tests' mounts, apps and redis-server)

TARGETS = ["php/sessfs-base", "php/sessfs", "php/native",
           "flask/sessfs-base", "flask/sessfs", "flask/native"]
BASELINE = None  # --baseline: the build dir of the -base targets
TICK = os.sysconf("SC_CLK_TCK")
# Commands whose cmdstat is per subcommand ("client|tracking").
CONTAINERS = {"client", "config", "script", "object", "cluster", "command",
              "acl", "memory", "function", "latency", "xinfo", "module",
              "slowlog", "debug"}
# What this script itself sends (over the unix socket, which neither the
# apps nor sessfs use): never part of a request's cost.
OWN = {"config|resetstat", "info", "echo", "monitor"}
MON_LINE = re.compile(r'^\S+ \[\d+ (\S+)\] "([^"]*)"(?: "([^"]*)")?')


def cmd_name(first, second):
    name = first.lower()
    if name in CONTAINERS and second:
        name += "|" + second.lower()
    return name


def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def commandstats(r):
    """{command: (calls, usec)} from INFO commandstats, ours left out."""
    out = {}
    for k, v in r.info("commandstats").items():
        name = k[len("cmdstat_"):]
        if name not in OWN:
            out[name] = (int(v["calls"]), int(v["usec"]))
    return out


class Monitor:
    """redis-cli MONITOR on the unix socket into a file, for one pass."""

    def __init__(self, srv, path):
        self.srv = srv
        self.path = path
        self.proc = None

    def __enter__(self):
        self.out = open(self.path, "w")
        self.proc = subprocess.Popen(
            ["redis-cli", "-s", str(self.srv.sock), "MONITOR"],
            stdout=self.out, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        r = self.srv.client()
        # MONITOR is on once it shows a command sent after it.
        util.wait_for(lambda: self._saw(r, "redis_cost_start"), 10,
                      "MONITOR to start")
        return self

    def _saw(self, r, tag):
        r.echo(tag)
        self.out.flush()
        time.sleep(0.05)
        return tag in Path(self.path).read_text()

    def __exit__(self, *exc):
        r = self.srv.client()
        util.wait_for(lambda: self._saw(r, "redis_cost_end"), 10,
                      "MONITOR to catch up")
        util.stop_process(self.proc, group=False)
        self.out.close()

    def counts(self):
        """{command: [top-level calls, calls inside a script or EXEC]}
        between the two markers, our own unix-socket client left out."""
        top, inner = {}, {}
        in_multi = set()
        on = False
        for line in Path(self.path).read_text().splitlines():
            if "redis_cost_start" in line:
                on = True
                continue
            if "redis_cost_end" in line:
                break
            m = MON_LINE.match(line)
            if not on or not m:
                continue
            client, first, second = m.groups()
            if client.startswith("unix:"):
                continue
            name = cmd_name(first, second)
            if client == "lua":
                inner[name] = inner.get(name, 0) + 1
            elif name == "multi":
                in_multi.add(client)
                top[name] = top.get(name, 0) + 1
            elif name in ("exec", "discard"):
                in_multi.discard(client)
                top[name] = top.get(name, 0) + 1
            elif client in in_multi:
                inner[name] = inner.get(name, 0) + 1
            else:
                top[name] = top.get(name, 0) + 1
        return {n: [top.get(n, 0), inner.get(n, 0)]
                for n in set(top) | set(inner)}


class Target:
    """One app on one session store, its users logged in."""

    def __init__(self, name, srv, root, users):
        self.name = name
        self.app_kind, self.store = name.split("/")
        self.srv = srv
        self.root = root
        self.users = users
        self.clients = []

    def run(self, fn):
        """fn(self) with the app up (and the mount, for sessfs)."""
        tag = self.name.replace("/", "-")
        sessdir = util.make_sessdir(self.root, tag)
        env = {}
        if self.store == "native" and self.app_kind == "php":
            env = {"SESS_HANDLER": "redis",
                   "SESS_DIR": "tcp://127.0.0.1:%d" % self.srv.port}
        elif self.store == "native":
            env = {"SESS_REDIS": "redis://127.0.0.1:%d/0" % self.srv.port}
        if self.store.startswith("sessfs"):
            log = util.OutputChecker(self.root / ("sessfs-%s.log" % tag))
            ours = util.SESSFS
            if self.store == "sessfs-base":
                util.SESSFS = Path(BASELINE) / "fs" / "sessfs"
            try:
                with util.mounted(self.srv.url(), sessdir, log,
                                  opts=["allow_other", "mode=redis-only"]):
                    util.SESSFS = ours
                    self._with_app(sessdir, env, fn)
            finally:
                util.SESSFS = ours
            log.check()
        else:
            self._with_app(sessdir, env, fn)

    def _with_app(self, sessdir, env, fn):
        app = util.make_web_app(self.app_kind, sessdir, self.root, env)
        with app.running():
            self.clients = [app.client() for _ in range(self.users)]
            for i, c in enumerate(self.clients):
                c.get("/login?user=u%d" % i)
                c.get("/incr")  # the session exists, as in steady state
            fn(self)
        app.checker.check()

    def requests(self, n):
        """n /incr requests, round robin over the users, one at a time;
        checks each answer against the counter it must hold."""
        for i in range(n):
            c = self.clients[i % len(self.clients)]
            want = c.count = getattr(c, "count", 1) + 1
            body = c.get("/incr")
            assert body == "count=%d" % want, (self.name, body, want)


def measure(t, n, nmon, rounds, mon_path):
    """Per round: {usec: {cmd: (calls, usec)}, cpu_ticks}, and the
    MONITOR counts of one pass of nmon requests."""
    res = {"rounds": [], "monitor": None, "n": n, "nmon": nmon}

    def phases(t):
        r = t.srv.client()
        t.requests(min(n, 4 * t.users))  # warm: workers, connections
        for _ in range(rounds):
            r.config_resetstat()
            c0 = cpu_ticks(t.srv.proc.pid)
            t.requests(n)
            c1 = cpu_ticks(t.srv.proc.pid)
            res["rounds"].append({"stats": commandstats(r),
                                  "cpu_ticks": c1 - c0})
        with Monitor(t.srv, mon_path) as m:
            t.requests(nmon)
        res["monitor"] = m.counts()

    t.run(phases)
    return res


def summarize(res):
    """The figures per request of one target (medians over rounds)."""
    n, mon = res["n"], res["monitor"]
    share = {c: (i / (tp + i) if tp + i else 0.0)
             for c, (tp, i) in mon.items()}
    per_round = []
    for rd in res["rounds"]:
        tot = sum(u * (1 - share.get(c, 0.0))
                  for c, (calls, u) in rd["stats"].items())
        plain = sum(u for _, u in rd["stats"].values())
        per_round.append((tot / n, plain / n,
                          rd["cpu_ticks"] * 1e6 / TICK / n))
    us, plain, cpu = (statistics.median(x) for x in zip(*per_round))
    nmon = res["nmon"]
    top = sum(tp for tp, _ in mon.values()) / nmon
    inner = sum(i for _, i in mon.values()) / nmon
    # Per command: calls per request from the MONITOR pass, usec per call
    # from the timed rounds (summed).
    cmds = {}
    for c in set(mon) | {c for rd in res["rounds"] for c in rd["stats"]}:
        calls = sum(rd["stats"].get(c, (0, 0))[0] for rd in res["rounds"])
        usec = sum(rd["stats"].get(c, (0, 0))[1] for rd in res["rounds"])
        tp, i = mon.get(c, (0, 0))
        cmds[c] = {"top_per_req": tp / nmon, "inner_per_req": i / nmon,
                   "usec_per_call": usec / calls if calls else 0.0,
                   "us_per_req_outer": usec * (1 - share.get(c, 0.0))
                   / (n * len(res["rounds"]))}
    return {"us_per_req": us, "us_per_req_min": min(x[0] for x in per_round),
            "us_per_req_plain_sum": plain,
            "cpu_us_per_req": cpu, "calls_per_req": top,
            "inner_per_req": inner, "rounds_us": [x[0] for x in per_round],
            "commands": cmds}


def print_table(summ):
    print("\nRedis cost per request (/incr: read, increment, save); "
          "median of rounds")
    print("%-17s %9s %8s %10s %10s %9s %11s   %s" % (
        "target", "us/req", "min", "calls/req", "inner/req", "cpu us",
        "plain sum", "rounds us/req"))
    for name in TARGETS:
        if name not in summ:
            continue
        s = summ[name]
        print("%-17s %9.2f %8.2f %10.2f %10.2f %9.1f %11.2f   %s" % (
            name, s["us_per_req"], s["us_per_req_min"], s["calls_per_req"],
            s["inner_per_req"],
            s["cpu_us_per_req"], s["us_per_req_plain_sum"],
            " ".join("%.2f" % x for x in s["rounds_us"])))
    print("ratio to native (us/req, min, calls/req, cpu):")
    for name in TARGETS:
        app = name.split("/")[0]
        a, b = summ.get(name), summ.get(app + "/native")
        if "sessfs" in name and a and b and b["us_per_req"] > 0:
            print("%-17s %8.2fx %7.2fx %9.2fx %21.2fx" % (
                name, a["us_per_req"] / b["us_per_req"],
                a["us_per_req_min"] / max(b["us_per_req_min"], 1e-9),
                a["calls_per_req"] / max(b["calls_per_req"], 1e-9),
                a["cpu_us_per_req"] / max(b["cpu_us_per_req"], 1e-9)))
    for name in TARGETS:
        if name not in summ:
            continue
        print("\n%s, per command:" % name)
        print("  %-22s %9s %9s %10s %9s" % ("command", "calls/req",
                                            "inner/req", "usec/call",
                                            "us/req"))
        rows = sorted(summ[name]["commands"].items(),
                      key=lambda kv: -kv[1]["us_per_req_outer"])
        for c, v in rows:
            if v["top_per_req"] == 0 and v["inner_per_req"] == 0 and \
                    v["us_per_req_outer"] < 0.005:
                continue
            print("  %-22s %9.2f %9.2f %10.2f %9.2f" % (
                c, v["top_per_req"], v["inner_per_req"],
                v["usec_per_call"], v["us_per_req_outer"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--monitor-requests", type=int, default=200)
    ap.add_argument("--targets",
                    help="comma-separated, of: %s" % ", ".join(TARGETS))
    ap.add_argument("--baseline", help="another build dir: its sessfs "
                    "runs the -base targets")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--smoke", action="store_true",
                    help="one short round (a few seconds per target)")
    args = ap.parse_args()
    global BASELINE
    BASELINE = args.baseline
    if not args.targets:
        args.targets = ",".join(t for t in TARGETS
                                if args.baseline or "-base" not in t)
    if args.smoke:
        args.requests, args.rounds, args.monitor_requests = 24, 1, 12
        args.users = 4
    root = util.short_tmpdir("rcost")
    srv = util.RedisServer(root / "redis").start()
    summ, raw, problems = {}, {}, []
    try:
        for name in args.targets.split(","):
            t = Target(name, srv, root, args.users)
            srv.client().flushall()
            raw[name] = measure(t, args.requests, args.monitor_requests,
                                args.rounds, root / ("monitor-%s.txt"
                                                     % name.replace("/", "-")))
            summ[name] = summarize(raw[name])
            if summ[name]["us_per_req"] <= 0 or \
                    summ[name]["calls_per_req"] <= 0:
                problems.append("%s: nothing measured" % name)
        print_table(summ)
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"summary": summ, "raw": raw}, indent=1, sort_keys=True))
    finally:
        srv.stop()
    if problems:
        print("\nPROBLEMS: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
