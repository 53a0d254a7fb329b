# SPDX-License-Identifier: GPL-2.0-or-later
"""The migration drill (issue 17): the translate app, its locust load and
examples/demo/demo.sh, which `./scripts/setup.sh demo` runs.

- The translate app answers its routes on a sessfs mount.
- The load's checks can fail: session files deleted under the load are
  lost sessions, and locust exits 1 (no mount needed for that).
- The drill itself, profile baseline with 2 s phases, against the daemon
  and the tool of SESSFS_BUILD_DIR: exit 0, every phase in the table with
  requests and no error or loss, the backfill copied the idle sessions,
  nothing left behind.
- The drill interrupted (SIGINT, as Ctrl-C) once the mounts are up: exit
  130, every mount, process and file it made gone.

Cost: about 90 s on 2 idle cores (the drill ~60 s, its interruption
~15 s, the lost-session check ~15 s).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

import util
from util import EXAMPLES, PYTHON, SLOW, stop_process, wait_for

pytestmark = util.fuse_test_marker()

DEMO = EXAMPLES / "demo" / "demo.sh"
MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
LOCUST = shutil.which("locust") or "/usr/bin/locust"

# Every phase of the drill, in order (the table's first column).
PHASES = ["ramp-up", "files", "dual-write", "backfill", "verify",
          "redis-first", "redis-only", "rollback", "files (again)",
          "dual-write (again)", "backfill (again)", "verify (again)",
          "redis-first (again)", "redis-only (again)", "final check"]
TOTAL = re.compile(r"^TOTAL requests=(\d+) errors=(\d+) lost=(\d+) "
                   r"p95_ms=(\d+) req_per_s=([\d.]+)$", re.M)


def test_translate_app_on_a_mount(sessdir, mount, make_app):
    app = make_app("translate", sessdir)
    c = app.client()
    assert json.loads(c.get("/")) == {"user": None, "language": None,
                                      "history": []}
    status, body = c.post("/translate", {"input_text": "hello",
                                         "source_lang": "en",
                                         "target_lang": "de"}, expect=None)
    assert status == 401, body
    got = json.loads(c.post("/login", {"user": "ada", "language": "fr"}))
    assert got == {"user": "ada", "language": "fr", "history": []}
    got = json.loads(c.post("/translate", {"input_text": "Good morning Ada",
                                           "source_lang": "en",
                                           "target_lang": "es"}))
    entry = {"source_lang": "en", "target_lang": "es",
             "input_text": "Good morning Ada",
             "translation": "bueno mañana ada"}
    assert got == {"user": "ada", "language": "fr",
                   "translation": "bueno mañana ada", "history": [entry]}
    assert json.loads(c.post("/set_language", {"language": "de"})) == \
        {"user": "ada", "language": "de"}
    status, body = c.post("/set_language", {"language": "xx"}, expect=None)
    assert status == 400, body
    # A second user does not see the first one's session.
    d = app.client()
    d.post("/login", {"user": "bob", "language": "en"})
    assert json.loads(c.get("/")) == {"user": "ada", "language": "de",
                                      "history": [entry]}
    assert json.loads(d.get("/"))["user"] == "bob"


class Proc:
    """A process group we started, for the watchdog (util.LIVE): 'sig'
    ends it (the drill gets SIGTERM: its trap unmounts and stops all it
    started; a SIGKILL would leave its mounts behind)."""

    def __init__(self, proc, sig=signal.SIGKILL):
        self.proc = proc
        self.sig = sig

    def abort(self, why):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, self.sig)


class Lines:
    """The output of a process, read by a thread: the lines so far."""

    def __init__(self, stream):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(stream,),
                                       daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def text(self):
        return "\n".join(self.lines)


def set_phase(control, name):
    (control / "phase.tmp").write_text(name + "\n")
    os.replace(control / "phase.tmp", control / "phase")


def status(control):
    try:
        return json.loads((control / "status").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def test_load_counts_deleted_sessions_as_lost(tmp, make_app):
    """The checks are real: the files of every session deleted under the
    load, each user finds its session gone; the idle sessions too at the
    end.  Locust exits 1 and the report counts them."""
    sessdir = util.make_sessdir(tmp)
    app = make_app("translate", sessdir)
    control = tmp / "control"
    control.mkdir()
    set_phase(control, "before")
    env = dict(os.environ, DRILL_CONTROL=str(control),
               DRILL_TRANSLATE_URL=app.base, DRILL_IDLE="3")
    log = open(tmp / "locust.log", "w")
    proc = subprocess.Popen(
        [PYTHON, LOCUST, "-f", "locustfile.py", "--headless", "-u", "6",
         "-r", "6", "--only-summary"], cwd=EXAMPLES / "translate", env=env,
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    live = Proc(proc)
    util.LIVE.add(live)
    try:
        wait_for(lambda: status(control).get("ready") == 9, 60,
                 "6 users and 3 idle sessions to log in",
                 check=lambda: proc.poll() is None or pytest.fail(
                     "locust exited: %s" % (tmp / "locust.log").read_text()))
        set_phase(control, "deleted")
        for f in sessdir.iterdir():
            f.unlink()
        wait_for(lambda: status(control).get("lost", 0) >= 1, 30,
                 "a user to find its session lost")
        set_phase(control, "stop")
        rc = proc.wait(90 * SLOW)
    finally:
        stop_process(proc)
        util.LIVE.remove(live)
    report = (control / "report").read_text()
    print(report)
    assert rc == 1, report
    total = TOTAL.search(report)
    assert total, report
    # The 3 idle sessions are lost too, found at the final check.
    assert int(total.group(3)) >= 4, report
    assert "session lost" in (control / "errors.log").read_text()
    row = [ln for ln in report.splitlines() if ln.startswith("deleted ")]
    assert row and int(row[0].split()[-1]) >= 1, report


def run_demo(args, env_extra=None):
    env = dict(os.environ, SESSFS=str(util.sessfs_binary()),
               SESSFS_MIGRATE=str(MIGRATE))
    env.pop("SESSFS_DEMO_KEEP", None)
    env.update(env_extra or {})
    proc = subprocess.Popen(["bash", str(DEMO)] + args, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    live = Proc(proc, signal.SIGTERM)
    util.LIVE.add(live)
    return proc, live, Lines(proc.stdout)


def pids_in(out, pattern):
    return [int(p) for p in re.findall(pattern, out)]


def assert_all_gone(out):
    """The work directory, its mounts and every process the demo started
    (by the PIDs it printed) are gone."""
    m = re.search(r"^    (/tmp/sessfs-demo\.\w+): ", out, re.M)
    assert m, out
    work = m.group(1)
    assert not os.path.exists(work), "%s remains" % work
    with open("/proc/self/mountinfo") as f:
        assert work not in f.read()
    pids = (pids_in(out, r"redis-server pid (\d+)")
            + pids_in(out, r"app:app as www-data, pid (\d+)")
            + pids_in(out, r"index\.php \(4 workers\) as www-data, pid (\d+)")
            + pids_in(out, r"mounted \(daemon pid (\d+)\)"))
    assert len(pids) >= 3, out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # Nothing runs in the work directory (locust and the apps' workers
    # did).
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                assert not os.readlink(d / "cwd").startswith(work), \
                    "pid %s still runs in %s" % (d.name, work)


def test_drill_baseline_short():
    proc, live, out = run_demo(["--phase-seconds", "2"])
    try:
        rc = proc.wait(600 * SLOW)
    finally:
        stop_process(proc, timeout=60)  # the drill cleans up
        util.LIVE.remove(live)
        out.thread.join(10)
    text = out.text()
    print(text)
    assert rc == 0, text
    total = TOTAL.search(text)
    assert total, text
    requests, errors, lost = (int(total.group(i)) for i in (1, 2, 3))
    assert requests > 0 and errors == 0 and lost == 0
    # One row per phase, in order, each with requests, no error, no loss.
    rows = {}
    for line in text.splitlines():
        for name in PHASES:
            if line.startswith(name + " ") and \
                    re.fullmatch(r"[\d. ]+", line[len(name):]):
                rows[name] = line[len(name):].split()
    assert list(rows) == PHASES, text
    for name, cols in rows.items():
        secs, reqs, _rate, _p50, _p95, _p99, errs, gone = cols
        assert int(reqs) > 0 and int(errs) == 0 and int(gone) == 0, \
            (name, cols)
        # At least --phase-seconds, as locust saw the phase file change
        # (polled every 0.1 s, at the start as at the end).
        if name != "final check" and name != "ramp-up":
            assert float(secs) >= 1.8, (name, cols)
    assert "sessions: 50 users and 50 idle sessions, 100 checked at the " \
        "end, 0 lost" in text
    # The first backfill had the idle sessions to copy (their files were
    # made before the mount, and nobody wrote them since).
    copied = [int(n) for n in re.findall(r"^    copied (\d+),", text, re.M)]
    assert len(copied) == 4, text  # php and translate, twice
    assert copied[1] >= 50, text
    for word in ("p95 < 500 ms", "errors < 1 %", ">= 100 req/s"):
        assert re.search(re.escape(word) + r" +(pass|FAIL) ", text), word
    assert "0 failed" in text
    assert_all_gone(text)


def test_drill_interrupted_cleans_up():
    """SIGINT (Ctrl-C) once both mounts are up: exit 130, all gone."""
    proc, live, out = run_demo(["--phase-seconds", "5"])
    try:
        wait_for(lambda: out.text().count("mounted (daemon pid") == 2, 120,
                 "the drill to mount both session dirs",
                 check=lambda: proc.poll() is None or pytest.fail(
                     "the drill ended early:\n" + out.text()))
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(120 * SLOW)
    finally:
        stop_process(proc, timeout=60)  # the drill cleans up
        util.LIVE.remove(live)
        out.thread.join(10)
    text = out.text()
    print(text)
    assert rc == 130, text
    assert "=== cleanup" in text
    assert_all_gone(text)
