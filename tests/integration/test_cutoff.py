# SPDX-License-Identifier: GPL-2.0-or-later
"""-o legacy_reads_until=DATE, the end of legacy reads (the migration
plan's deprecation of file reads): before DATE a session only in the
lower dir is served, listed and copied up; from DATE on, in redis-first
and redis-only, it is neither read, listed nor copied up, and stays
underneath untouched (in files and dual-write the lower dir is the store:
nothing changes); a listing still removes expired files underneath.
`status` (the control socket's and sessfs-migrate's)
shows the cutoff and whether it has passed.  A cutoff that passes while
mounted takes effect at once.  Bad dates are refused in one line."""

import datetime
import errno
import os
import subprocess
import time

import pytest

import util
from modeutil import ModeMount
from util import (SLOW, WWW_GID, WWW_UID, assert_refused, errno_of, read_file,
                  run_sessfs, value_key, wait_for, write_file)

pytestmark = util.fuse_test_marker()

P = "sessfs:"
MIGRATE = util.BUILD_DIR / "migrate" / "sessfs-migrate"
PAST, PAST_ISO = "2020-01-01", "2020-01-01T00:00:00Z"
FUTURE, FUTURE_ISO = "2099-12-31T23:30+01:00", "2099-12-31T22:30:00Z"


def seed(d, name, data, age_s=600):
    """A legacy session in the lower dir, 'age_s' old, www-data's."""
    p = os.path.join(d, name)
    write_file(p, data)
    os.chown(p, WWW_UID, WWW_GID)
    t = time.time_ns() - age_s * 10**9
    os.utime(p, ns=(t, t))


def migrate_status(mm, sessdir):
    res = subprocess.run([str(MIGRATE), "status", "--mount", str(sessdir),
                          "--ctl-dir", str(mm.ctl_dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=30 * SLOW)
    assert res.returncode == 0, res.stdout
    return [line for line in res.stdout.splitlines()
            if line.startswith("legacy:")]


@pytest.mark.parametrize("mode", ["redis-first", "redis-only", "dual-write"])
@pytest.mark.parametrize("when", ["past", "future"])
def test_cutoff(when, mode, redis, redis_server, tmp, sessdir, checker):
    name, data = "sess_cutoff0abcdefghijklmnop", b'user|s:5:"alice";'
    seed(sessdir, name, data)
    # Past the default ttl (32 days): hidden, and removed when listed.
    old = "sess_cutoffexpired0123456789"
    seed(sessdir, old, b"old|i:1;", age_s=40 * 86400)
    until, iso = (PAST, PAST_ISO) if when == "past" else (FUTURE, FUTURE_ISO)
    ended = when == "past" and mode != "dual-write"
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, mode, extra=["legacy_reads_until=" + until]) as m:
        assert mm.status()["legacy"] == {
            "until": iso, "passed": when == "past",
            "reads": mode != "dual-write" and not ended}
        listed = name in os.listdir(sessdir)
        got = errno_of(read_file, m.path(name)) or read_file(m.path(name))
        if ended:
            assert got == errno.ENOENT and not listed
            assert redis.exists(value_key(P, name)) == 0, "copied up"
            # The live one stays underneath, the expired one went (the
            # listing's housekeeping goes on past the cutoff).
            assert name in m.lower_names(), "removed underneath"
            assert old not in m.lower_names(), "expired, kept underneath"
            line = migrate_status(mm, sessdir)
            assert line and "ENDED at " + iso in line[0], line
            # A new session of that name is made, not the old one read.
            util.as_www(write_file, m.path(name), b"new|i:1;")
            assert read_file(m.path(name)) == b"new|i:1;"
        else:
            assert got == data and listed
            if mode != "dual-write":
                assert redis.get(value_key(P, name)) == data, "no copy-up"
                line = migrate_status(mm, sessdir)
                assert line and "until " + iso in line[0], line


def test_cutoff_passes_while_mounted(redis, redis_server, tmp, sessdir,
                                     checker):
    """A cutoff 2 s ahead: a session read before it stays (Redis has it),
    one first asked for after it is absent, and nothing is copied up."""
    a, b = "sess_" + "a" * 26, "sess_" + "b" * 26
    seed(sessdir, a, b"a|i:1;")
    seed(sessdir, b, b"b|i:2;")
    cutoff = datetime.datetime.now(datetime.timezone.utc).replace(
        microsecond=0) + datetime.timedelta(seconds=2)
    until = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, "redis-only",
                    extra=["legacy_reads_until=" + until]) as m:
        assert read_file(m.path(a)) == b"a|i:1;"
        assert sorted(n for n in os.listdir(sessdir)
                      if n.startswith("sess_")) == [a, b]
        wait_for(lambda: mm.status()["legacy"]["passed"], 10 * SLOW,
                 "the cutoff to pass", interval=0.1)
        assert errno_of(read_file, m.path(b)) == errno.ENOENT
        assert [n for n in os.listdir(sessdir) if n.startswith("sess_")] \
            == [a]
        assert read_file(m.path(a)) == b"a|i:1;"
        assert redis.exists(value_key(P, b)) == 0
    assert "legacy reads have ended" in checker.text()


BAD_DATES = ["tomorrow", "2027-13-01", "2027-02-30", "2027-1-5",
             "2027-01-15T25:00", "2027-01-15T10", "2027-01-15x",
             "2027-01-15T10:00+5", "1969-12-31", ""]


@pytest.mark.parametrize("date", [pytest.param(d, id=d or "empty")
                                  for d in BAD_DATES])
def test_bad_date(date, redis, redis_server, sessdir):
    res = run_sessfs([redis_server.url(), str(sessdir), "-f", "-o",
                      "legacy_reads_until=" + date])
    assert_refused(res, sessdir, "legacy_reads_until", "'%s'" % date)
