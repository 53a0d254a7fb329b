# SPDX-License-Identifier: GPL-2.0-or-later
"""The drill's load: locust users of the translate app (and a few of the
PHP app), every answer checked against what that user's session must hold.

Run headless by examples/demo/demo.sh (Debian's python3-locust):

    DRILL_CONTROL=DIR DRILL_TRANSLATE_URL=http://127.0.0.1:P \\
    [DRILL_PHP_URL=http://127.0.0.1:Q DRILL_PHP_USERS=4] \\
        locust -f examples/translate/locustfile.py --headless \\
        -u USERS -r SPAWN_RATE --only-summary

USERS counts the PHP users too (a fixed number, DRILL_PHP_USERS, default
4 when DRILL_PHP_URL is set); the rest are TranslateUsers.  Besides them,
DRILL_IDLE (default 0) idle sessions: each logs in to the translate app
once at the start and is read back only at the end, as the many sessions
of a real site that nobody touches during the migration: only a backfill
brings them into Redis, and each must still be there after redis-only.

TranslateUser (the plan's scenario): logs in once (POST /login, a user name
of its own and a language), then by weight GET / x3, POST /translate x1,
POST /set_language x1, 1-3 s think time.  It keeps what its session must
hold (user, language, the history of its translations) and checks every
answer against it: a 200 answer with another user, language or history, or
a 401 (nobody logged in), is a lost session; it then logs in again.
PhpUser (examples/php/index.php): /login?user=NAME, then /incr x3 (must
answer the next count), /whoami x1 (its name and count), same think time.
Anything else (an HTTP error, a timeout, a refused connection, a wrong
translation) is an error.  Every error and loss goes to DIR/errors.log.

The drill steers it through the control directory DIR, as it steered the
old demo's load generator:
  DIR/phase    one line, the current phase (replaced atomically); the
               load counts from then on under that name; "stop" ends it
  DIR/status   written every 0.1 s: {"phase", "requests", "errors", "lost",
               "ready", "users", "idle"} (ready: users logged in; idle:
               idle sessions made)
At "stop" each user checks its session once more, and so is each idle
session (phase "final check"),
then locust quits and DIR/report gets the table: per phase its seconds,
requests, req/s, p50/p95/p99 response time (ms), errors and sessions lost
(users whose session was found lost in that phase); then the plan's
thresholds over the whole run (p95 < 500 ms, errors < 1 %, >= 100 req/s)
as pass/fail; then
  TOTAL requests=N errors=N lost=N p95_ms=N req_per_s=N
(req_per_s: all requests over the seconds of all phases).  Locust's exit
status: 0 only when no request failed and no session was lost (the
thresholds do not decide it).
"""

import itertools
import json
import os
import random
import time

import gevent
import gevent.pool
from locust import FastHttpUser, between, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.exception import StopUser

from words import LANGUAGES, translate_text

CONTROL = os.environ.get("DRILL_CONTROL", "")
TRANSLATE_URL = os.environ.get("DRILL_TRANSLATE_URL", "")
PHP_URL = os.environ.get("DRILL_PHP_URL", "")
PHP_USERS = int(os.environ.get("DRILL_PHP_USERS", "4")) if PHP_URL else 0
IDLE = int(os.environ.get("DRILL_IDLE", "0"))
HISTORY_MAX = 20  # as examples/translate/app.py keeps
FINAL_CHECK_TIMEOUT = 60  # seconds for every user to check its session

# The plan's thresholds.
MAX_P95_MS = 500
MAX_ERROR_RATE = 0.01
MIN_REQ_PER_S = 100

SAMPLE_WORDS = ("hello", "world", "good", "morning", "cat", "dog", "house",
                "water", "bread", "thank", "yes", "no", "red", "book",
                "friend", "session", "sessfs")


class SessionLost(Exception):
    """A 200 answer that contradicts what the user's session holds."""


class Phase:
    def __init__(self, name):
        self.name = name
        self.start = time.monotonic()
        self.end = None
        self.times = []  # response times, ms
        self.errors = 0
        self.lost = set()  # user labels

    def seconds(self):
        return (self.end or time.monotonic()) - self.start


class Drill:
    """The run's phases and counts; one per locust process."""

    def __init__(self):
        self.phases = [Phase(self.read_phase() or "start")]
        self.ready = set()
        self.users = 0  # expected in all, from the runner
        self.stopping = False
        self.checked = set()  # users done with the final check
        self.idle = []  # (label, client, language) of the idle sessions
        self.errlog = None

    def read_phase(self):
        try:
            with open(os.path.join(CONTROL, "phase")) as f:
                return f.readline().strip()
        except FileNotFoundError:
            return None

    @property
    def phase(self):
        return self.phases[-1]

    def next_phase(self, name):
        self.phase.end = time.monotonic()
        self.phases.append(Phase(name))

    def note(self, label, what):
        if self.errlog is None:
            self.errlog = open(os.path.join(CONTROL, "errors.log"), "a",
                               buffering=1)
        self.errlog.write("[%s] %s: %s\n" % (self.phase.name, label, what))

    def record(self, label, ms, exception):
        p = self.phase
        p.times.append(ms)
        if isinstance(exception, SessionLost):
            p.lost.add(label)
            self.note(label, "session lost: %s" % exception)
        elif exception is not None:
            p.errors += 1
            self.note(label, "error: %s" % exception)

    def status(self):
        return {"phase": self.phase.name,
                "requests": sum(len(p.times) for p in self.phases),
                "errors": sum(p.errors for p in self.phases),
                "lost": len(set().union(*(p.lost for p in self.phases))),
                "ready": len(self.ready), "users": self.users,
                "idle": len(self.idle)}


DRILL = Drill()


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def percentile(sorted_ms, q):
    """The nearest-rank percentile q (0-100) of a sorted list; 0 if empty."""
    if not sorted_ms:
        return 0.0
    k = max(0, min(len(sorted_ms) - 1,
                   int(-(-q * len(sorted_ms) // 100)) - 1))
    return sorted_ms[k]


def report(drill):
    """The table, the thresholds and the TOTAL line; (text, exit status)."""
    out = []
    head = "%-26s %7s %8s %7s %7s %7s %7s %6s %5s"
    row = "%-26s %7.1f %8d %7.1f %7.0f %7.0f %7.0f %6d %5d"
    out.append(head % ("phase", "seconds", "requests", "req/s", "p50_ms",
                       "p95_ms", "p99_ms", "errors", "lost"))
    every, seconds, errors, lost = [], 0.0, 0, set()
    for p in drill.phases:
        if p.name == "start" and not p.times:
            continue
        t = sorted(p.times)
        secs = p.seconds()
        out.append(row % (p.name[:26], secs, len(t),
                          len(t) / secs if secs > 0 else 0.0,
                          percentile(t, 50), percentile(t, 95),
                          percentile(t, 99), p.errors, len(p.lost)))
        every += t
        seconds += secs
        errors += p.errors
        lost |= p.lost
    every.sort()
    requests = len(every)
    p95 = percentile(every, 95)
    rate = requests / seconds if seconds > 0 else 0.0
    err_rate = errors / requests if requests else 1.0
    offered = drill.users / 2.0  # mean think time 2 s

    def verdict(ok):
        return "pass" if ok else "FAIL"

    out.append("")
    out.append("thresholds (the plan's), over the whole run:")
    out.append("  p95 < %d ms      %-4s (p95 %.0f ms)"
               % (MAX_P95_MS, verdict(p95 < MAX_P95_MS), p95))
    out.append("  errors < %.0f %%     %-4s (%d of %d, %.2f %%)"
               % (MAX_ERROR_RATE * 100, verdict(err_rate < MAX_ERROR_RATE),
                  errors, requests, err_rate * 100))
    out.append("  >= %d req/s     %-4s (%.1f req/s; %d users with 1-3 s "
               "think time offer about %.0f)"
               % (MIN_REQ_PER_S, verdict(rate >= MIN_REQ_PER_S), rate,
                  drill.users, offered))
    out.append("sessions: %d users and %d idle sessions, %d checked at "
               "the end, %d lost" % (drill.users, len(drill.idle),
                                     len(drill.checked), len(lost)))
    out.append("TOTAL requests=%d errors=%d lost=%d p95_ms=%.0f "
               "req_per_s=%.1f" % (requests, errors, len(lost), p95, rate))
    return "\n".join(out) + "\n", 0 if errors == 0 and not lost else 1


def follow(environment):
    """Follows DIR/phase, writes DIR/status; at "stop" waits for every
    user's final check, writes DIR/report and quits locust."""
    status = os.path.join(CONTROL, "status")
    deadline = None
    while True:
        name = DRILL.read_phase()
        if name == "stop" and not DRILL.stopping:
            DRILL.stopping = True
            DRILL.next_phase("final check")
            deadline = time.monotonic() + FINAL_CHECK_TIMEOUT
        elif name and name != "stop" and name != DRILL.phase.name \
                and not DRILL.stopping:
            DRILL.next_phase(name)
        write_atomic(status, json.dumps(DRILL.status()))
        if DRILL.stopping and (len(DRILL.checked) >= DRILL.users
                               or time.monotonic() > deadline):
            break
        gevent.sleep(0.1)
    check_idle()
    DRILL.phase.end = time.monotonic()
    # A user that never checked (still not logged in, or stuck): lost.
    idle = {label for label, _, _ in DRILL.idle}
    for label in DRILL.ready - DRILL.checked - idle:
        DRILL.phase.lost.add(label)
        DRILL.note(label, "session lost: no final check")
    text, rc = report(DRILL)
    write_atomic(os.path.join(CONTROL, "report"), text)
    # Locust would exit 1 on any failure it counted (a lost session is one
    # for it too): the drill's verdict decides.
    environment.process_exit_code = rc
    environment.runner.quit()


# Idle sessions are made and checked IDLE_PARALLEL at a time: one by one,
# 500 of them took minutes behind the spike's users on a loaded machine.
IDLE_PARALLEL = 20


def make_idle(environment):
    """The idle sessions: one login each, nothing more until the end."""
    def login(i):
        label = "idle%04d" % (i + 1)
        # One try, as DrillUser: geventhttpclient's default (3) would
        # send a login again after a lost answer, unseen.
        client = FastHttpSession(environment, TRANSLATE_URL, user=None,
                                 max_retries=1, network_timeout=30.0,
                                 connection_timeout=30.0)
        language = LANGUAGES[i % len(LANGUAGES)]
        with client.post("/login", name="idle /login", catch_response=True,
                         context={"user": label},
                         json={"user": label, "language": language}) as r:
            want = {"user": label, "language": language, "history": []}
            if r.status_code != 200 or not r.text or r.json() != want:
                r.failure("HTTP %d %r" % (r.status_code, (r.text or "")[:120]))
                return
        DRILL.ready.add(label)
        DRILL.idle.append((label, client, language))

    gevent.pool.Pool(IDLE_PARALLEL).map(login, range(IDLE))


def check_idle():
    """The final check of every idle session: still what its login made."""
    def check(idle):
        label, client, language = idle
        with client.get("/", name="idle /", catch_response=True,
                        context={"user": label}) as r:
            want = {"user": label, "language": language, "history": []}
            if r.status_code != 200:
                r.failure("HTTP %d %r" % (r.status_code, (r.text or "")[:120]))
                return
            try:
                got = r.json()
            except ValueError:
                got = r.text[:120]
            if got != want:
                lost(r, "GET / answered %r, expected %r" % (got, want))
                return
        DRILL.checked.add(label)

    gevent.pool.Pool(IDLE_PARALLEL).map(check, list(DRILL.idle))


@events.init.add_listener
def on_init(environment, **_kw):
    if not CONTROL or not TRANSLATE_URL:
        raise SystemExit("locustfile: DRILL_CONTROL and DRILL_TRANSLATE_URL "
                         "must be set")
    DRILL.users = environment.parsed_options.num_users
    gevent.spawn(follow, environment)
    gevent.spawn(make_idle, environment)


@events.request.add_listener
def on_request(response_time, exception, context, **_kw):
    DRILL.record(context.get("user", "?"), response_time, exception)


class DrillUser(FastHttpUser):
    abstract = True
    wait_time = between(1, 3)
    # One try per request (geventhttpclient counts the first as a
    # "retry"): a POST tried again could apply twice.
    max_retries = 1
    network_timeout = 30.0
    connection_timeout = 30.0
    _serial = itertools.count(1)

    def __init__(self, environment):
        super().__init__(environment)
        self.label = "%s%04d" % (self.kind, next(self._serial))
        self.logged_in = False

    def context(self):
        return {"user": self.label}

    def final_check_once(self):
        """At "stop": one check of the session, then the user stops."""
        if not DRILL.stopping:
            return
        if self.logged_in:
            self.check()
        DRILL.checked.add(self.label)
        raise StopUser()

    def on_start(self):
        self.login()


def lost(resp, why):
    resp.failure(SessionLost(why))


class TranslateUser(DrillUser):
    host = TRANSLATE_URL
    kind = "tr"

    def login(self):
        self.language = random.choice(LANGUAGES)
        self.history = []
        with self.client.post("/login", name="/login", catch_response=True,
                              json={"user": self.label,
                                    "language": self.language}) as r:
            if not self.answer_ok(r):
                self.logged_in = False
                return
            got = r.json()
            if (got.get("user"), got.get("language"), got.get("history")) \
                    != (self.label, self.language, []):
                r.failure("POST /login answered %r" % (got,))
                self.logged_in = False
                return
        self.logged_in = True
        DRILL.ready.add(self.label)

    def answer_ok(self, r):
        """A 200 with a JSON object, else the failure is reported (a 401
        is a lost session) and the user logs in again."""
        if r.status_code == 200:
            try:
                if isinstance(r.json(), dict):
                    return True
            except ValueError:
                pass
            r.failure("not a JSON object: %r" % (r.text or "")[:120])
        elif r.status_code == 401:
            lost(r, "401 (nobody logged in)")
        else:
            r.failure("HTTP %d %r" % (r.status_code, (r.text or "")[:120]))
        self.logged_in = False
        return False

    def want(self):
        return {"user": self.label, "language": self.language,
                "history": self.history}

    def check(self):
        """GET /: the whole session must be what this user holds."""
        with self.client.get("/", name="/", catch_response=True) as r:
            if not self.answer_ok(r):
                return
            got = r.json()
            if got != self.want():
                lost(r, "GET / answered user=%r language=%r and %d history "
                     "entries, expected user=%r language=%r and %d"
                     % (got.get("user"), got.get("language"),
                        len(got.get("history") or []), self.label,
                        self.language, len(self.history)))
                self.logged_in = False

    @task(3)
    def index(self):
        self.final_check_once()
        if not self.logged_in:
            return self.login()
        self.check()

    @task(1)
    def translate(self):
        self.final_check_once()
        if not self.logged_in:
            return self.login()
        src, dst = random.sample(LANGUAGES, 2)
        words = random.choices(SAMPLE_WORDS, k=random.randint(1, 4))
        text = " ".join(words)
        entry = {"source_lang": src, "target_lang": dst, "input_text": text,
                 "translation": translate_text(text, src, dst)}
        with self.client.post("/translate", name="/translate",
                              catch_response=True,
                              json={k: entry[k] for k in
                                    ("input_text", "source_lang",
                                     "target_lang")}) as r:
            if not self.answer_ok(r):
                return
            got = r.json()
            history = (self.history + [entry])[-HISTORY_MAX:]
            if got.get("translation") != entry["translation"]:
                r.failure("POST /translate %r %s->%s answered %r, expected "
                          "%r" % (text, src, dst, got.get("translation"),
                                  entry["translation"]))
                self.logged_in = False
            elif got != dict(self.want(), history=history,
                             translation=entry["translation"]):
                lost(r, "POST /translate answered user=%r language=%r and "
                     "%d history entries, expected user=%r language=%r and "
                     "%d" % (got.get("user"), got.get("language"),
                             len(got.get("history") or []), self.label,
                             self.language, len(history)))
                self.logged_in = False
            else:
                self.history = history

    @task(1)
    def set_language(self):
        self.final_check_once()
        if not self.logged_in:
            return self.login()
        language = random.choice(LANGUAGES)
        with self.client.post("/set_language", name="/set_language",
                              catch_response=True,
                              json={"language": language}) as r:
            if not self.answer_ok(r):
                return
            got = r.json()
            if got != {"user": self.label, "language": language}:
                lost(r, "POST /set_language answered %r, expected user=%r"
                     % (got, self.label))
                self.logged_in = False
            else:
                self.language = language


class PhpUser(DrillUser):
    """The PHP app beside the translate app: counts and reads its count."""
    host = PHP_URL
    kind = "php"
    fixed_count = PHP_USERS
    abstract = not PHP_USERS  # no PHP app: no PhpUser

    def login(self):
        self.count = None
        with self.client.get("/login?user=" + self.label, name="php /login",
                             catch_response=True) as r:
            if r.status_code != 200 or r.text != "ok user=" + self.label:
                r.failure("HTTP %d %r" % (r.status_code, (r.text or "")[:120]))
                self.logged_in = False
                return
        self.count = 0
        self.logged_in = True
        DRILL.ready.add(self.label)

    def check(self):
        want = "user=%s count=%d" % (self.label, self.count)
        with self.client.get("/whoami", name="php /whoami",
                             catch_response=True) as r:
            if r.status_code != 200:
                r.failure("HTTP %d %r" % (r.status_code, (r.text or "")[:120]))
                self.logged_in = False
            elif r.text != want:
                lost(r, "GET /whoami answered %r, expected %r"
                     % (r.text[:120], want))
                self.logged_in = False

    @task(1)
    def whoami(self):
        self.final_check_once()
        if not self.logged_in:
            return self.login()
        self.check()

    @task(3)
    def incr(self):
        self.final_check_once()
        if not self.logged_in:
            return self.login()
        want = "count=%d" % (self.count + 1)
        with self.client.get("/incr", name="php /incr",
                             catch_response=True) as r:
            if r.status_code != 200:
                r.failure("HTTP %d %r" % (r.status_code, (r.text or "")[:120]))
                self.logged_in = False
            elif r.text != want:
                lost(r, "GET /incr answered %r, expected %r"
                     % (r.text[:120], want))
                self.logged_in = False
            else:
                self.count += 1
