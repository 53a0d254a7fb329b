#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The demo's load: simulated users of the example apps, one thread each.

Each user logs in once (/login?user=NAME), then keeps counting (/incr must
answer the next count) and every fourth request asks /whoami, which must
answer its own name and count: a wrong answer means the session was lost.
Every reply is checked; anything else (an HTTP error, a timeout, a wrong
count) is an error, printed to stderr at once.

The demo steers it through a control directory:
  DIR/phase    one line, the name of the current phase (the demo replaces
               it atomically); "stop" ends the run
  DIR/status   written here every 0.1 s: {"phase", "requests", "errors",
               "ready"} (ready: users logged in), for the demo's waits

At "stop" the users stop, every user's session is checked once more
("final check"), and one table goes to stdout: per phase its duration,
requests, errors, and the users whose session was checked (a /whoami
answered as expected) and lost; then the line
  TOTAL requests=N errors=N lost=N
Exit status 0 only when no request failed and no session was lost.

Usage: loadgen.py --control DIR --users N APP=URL...
  e.g. loadgen.py --control /tmp/x --users 4 php=http://127.0.0.1:8080
"""

import argparse
import http.cookiejar
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request

THINK = 0.02  # seconds between two requests of one user
WHOAMI_EVERY = 4


class Phase:
    def __init__(self, name):
        self.name = name
        self.start = time.monotonic()
        self.end = None
        self.requests = 0
        self.errors = 0
        self.checked = set()
        self.lost = set()


class Run:
    def __init__(self, control):
        self.control = control
        self.lock = threading.Lock()
        self.phases = [Phase(self._read_phase() or "start")]
        self.stopping = threading.Event()
        self.ready = 0

    def _read_phase(self):
        try:
            with open(os.path.join(self.control, "phase")) as f:
                return f.readline().strip()
        except FileNotFoundError:
            return None

    @property
    def phase(self):
        return self.phases[-1]

    def follow(self):
        """Follows the phase file and writes the status file."""
        status = os.path.join(self.control, "status")
        while True:
            name = self._read_phase()
            with self.lock:
                if name and name != self.phase.name and name != "stop":
                    self.phase.end = time.monotonic()
                    self.phases.append(Phase(name))
                st = {"phase": self.phase.name,
                      "requests": sum(p.requests for p in self.phases),
                      "errors": sum(p.errors for p in self.phases),
                      "ready": self.ready}
            with open(status + ".tmp", "w") as f:
                json.dump(st, f)
            os.replace(status + ".tmp", status)
            if name == "stop":
                self.stopping.set()
                return
            time.sleep(0.1)

    def count(self, user, error=None, checked=None):
        with self.lock:
            p = self.phase
            p.requests += 1
            if error is not None:
                p.errors += 1
            if checked is True:
                p.checked.add(user.label)
            elif checked is False:
                p.lost.add(user.label)
            phase = p.name
        if error is not None:
            print("loadgen: [%s] %s: %s" % (phase, user.label, error),
                  file=sys.stderr, flush=True)


class User:
    def __init__(self, app, base, name):
        self.label = "%s/%s" % (app, name)
        self.base = base
        self.name = name
        self.count = None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path):
        """(status, body); status 0 when there was no HTTP answer."""
        try:
            with self.opener.open(self.base + path, timeout=30) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except Exception as e:  # refused, reset, timeout
            return 0, str(e)

    def whoami_wants(self):
        return "user=%s count=%d" % (self.name, self.count)

    def resync(self):
        """After an error the count is unknown: read it back."""
        status, body = self.get("/whoami")
        m = re.fullmatch(r"user=(\S+) count=(\d+)", body)
        if status == 200 and m and m.group(1) == self.name:
            self.count = int(m.group(2))
        else:
            self.count = None  # logs in again

    def step(self, run, n):
        if self.count is None:
            want = "ok user=" + self.name
            status, body = self.get("/login?user=" + self.name)
            if status == 200 and body == want:
                self.count = 0
                with run.lock:
                    run.ready += 1
                run.count(self)
            else:
                run.count(self, "GET /login: %d %r" % (status, body[:120]))
            return
        if n % WHOAMI_EVERY == 0:
            want = self.whoami_wants()
            status, body = self.get("/whoami")
            if status == 200 and body == want:
                run.count(self, checked=True)
            elif status == 200:
                run.count(self, "GET /whoami: %r, expected %r (session lost)"
                          % (body[:120], want), checked=False)
                self.resync()
            else:
                run.count(self, "GET /whoami: %d %r" % (status, body[:120]))
                self.resync()
            return
        want = "count=%d" % (self.count + 1)
        status, body = self.get("/incr")
        if status == 200 and body == want:
            self.count += 1
            run.count(self)
        else:
            run.count(self, "GET /incr: %d %r, expected %r"
                      % (status, body[:120], want))
            self.resync()

    def loop(self, run):
        n = 0
        while not run.stopping.is_set():
            n += 1
            self.step(run, n)
            time.sleep(THINK)


def final_check(run, users):
    """Every user once more, after the load stopped."""
    with run.lock:
        run.phase.end = time.monotonic()
        run.phases.append(Phase("final check"))
    for u in users:
        if u.count is None:
            run.count(u, "never logged in", checked=False)
            continue
        want = u.whoami_wants()
        status, body = u.get("/whoami")
        if status == 200 and body == want:
            run.count(u, checked=True)
        else:
            run.count(u, "GET /whoami: %d %r, expected %r (session lost)"
                      % (status, body[:120], want), checked=False)
    run.phase.end = time.monotonic()


def report(run, users):
    lost = set()
    print("%-34s %8s %9s %7s %8s %5s" % ("phase", "seconds", "requests",
                                         "errors", "checked", "lost"))
    for p in run.phases:
        if p.name == "start" and not p.requests:
            continue
        print("%-34s %8.1f %9d %7d %8d %5d" % (
            p.name[:34], (p.end or time.monotonic()) - p.start, p.requests,
            p.errors, len(p.checked), len(p.lost)))
        lost |= p.lost
    requests = sum(p.requests for p in run.phases)
    errors = sum(p.errors for p in run.phases)
    print("sessions: %d users, %d checked at the end, %d lost"
          % (len(users), len(run.phase.checked), len(lost)))
    print("TOTAL requests=%d errors=%d lost=%d" % (requests, errors,
                                                   len(lost)))
    return 0 if errors == 0 and not lost else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--control", required=True)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("apps", nargs="+", metavar="APP=URL")
    args = ap.parse_args()
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace",
             "heidi", "ivan", "judy"]
    users = []
    for spec in args.apps:
        app, _, base = spec.partition("=")
        for i in range(args.users):
            name = names[i % len(names)] + ("" if i < len(names) else str(i))
            users.append(User(app, base, name))
    run = Run(args.control)
    threads = [threading.Thread(target=u.loop, args=(run,), daemon=True)
               for u in users]
    for t in threads:
        t.start()
    run.follow()
    for t in threads:
        t.join(60)
    final_check(run, users)
    return report(run, users)


if __name__ == "__main__":
    sys.exit(main())
