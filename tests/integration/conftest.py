# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures of the integration tests (see util.py for the helpers).

    redis_server   module scope: one redis-server per test module
    redis          function scope: a client of it, database flushed first;
                   the server log is printed when the test fails
    redis_cluster  function scope: a util.RedisCluster of 3 masters with a
                   replica each, settled (every slot served); its node
                   logs are printed when the test fails
    tmp            a short tmp dir under /tmp, removed afterwards (any mount
                   left under it fails the test)
    checker        the per-test daemon log, scanned for error/warning lines
                   unless registered with checker.register_output()
    sessdir        an empty session dir, www-data 0700
    mount          sessfs (-o allow_other) mounted on sessdir
    make_app       factory of real PHP (php -S, php-fpm behind nginx),
                   Flask and Django servers on a session dir;
                   their logs are checked for warnings too

Run: SESSFS_BUILD_DIR=build /usr/bin/python3 -m pytest -v tests/integration
"""

import os
import shutil
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import util  # noqa: E402
from util import LIVE, SLOW, OutputChecker  # noqa: E402

# A test taking longer is hung: the watchdog aborts what it started (kills
# the daemon, so that blocked FUSE calls fail) and the test fails.
TEST_TIMEOUT = 150


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


_failed = util.test_failed


def _passed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.passed


def pytest_sessionfinish(session, exitstatus):
    LIVE.abort_all("end of the test session")


@pytest.fixture(autouse=True)
def watchdog(request):
    def fire():
        print("\nwatchdog: %s still running after %ds, aborting"
              % (request.node.nodeid, TEST_TIMEOUT * SLOW), file=sys.stderr)
        LIVE.abort_all("watchdog")
    t = threading.Timer(TEST_TIMEOUT * SLOW, fire)
    t.daemon = True
    t.start()
    yield
    t.cancel()


@pytest.fixture(scope="module")
def redis_server():
    with util.own_redis_server("r") as server:
        yield server


@pytest.fixture
def redis(redis_server, request):
    if redis_server.proc.poll() is not None:  # a test killed it
        redis_server.restart()
    r = redis_server.client()
    r.config_set("maxmemory-policy", "noeviction")
    r.flushall()
    yield r
    if _failed(request):
        redis_server.dump_log()


@pytest.fixture
def redis_cluster(request):
    # Function scope: a reshard or a failover changes who serves what.
    with util.own_redis_cluster(request) as cluster:
        yield cluster


@pytest.fixture
def tmp(request):
    d = util.short_tmpdir("t")
    yield d
    left = [line.split()[1] for line in open("/proc/self/mounts")
            if line.split()[1].startswith(str(d))]
    for mp in reversed(left):
        util.unmount_all(mp)
    # Files created as www-data or left read-only: rmtree as root copes.
    shutil.rmtree(d, ignore_errors=True)
    assert not left, "mounts left behind: %s" % left


@pytest.fixture
def checker(tmp, request):
    c = OutputChecker(tmp / "sessfs.log")
    yield c
    if _failed(request):
        c.dump()
    elif _passed(request):
        c.check()


@pytest.fixture
def sessdir(tmp):
    return util.make_sessdir(tmp)


@pytest.fixture
def mount(redis, redis_server, sessdir, checker):
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=["allow_other"]) as m:
        yield m


@pytest.fixture
def make_app(tmp, request):
    """make_app(kind, sessdir, env=None) -> a started util.WebApp (kind
    "php", "flask", "django") or util.FpmApp ("php-fpm"); stopped at the
    end of the test at the latest (call .stop() earlier to stop it before
    an unmount)."""
    apps = []

    def make(kind, sessdir, env=None, start=True):
        app = util.make_web_app(kind, sessdir, tmp, env)
        apps.append(app)
        if start:
            app.start()
        return app

    yield make
    for app in apps:
        app.stop()
    for app in apps:
        if _failed(request):
            app.checker.dump(80)
        elif _passed(request):
            app.checker.check()

