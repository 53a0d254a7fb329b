# SPDX-License-Identifier: GPL-2.0-or-later
"""The example apps on a plain session directory, without sessfs: the
baseline the mounted runs (test_php.py, test_flask.py) are compared with.
A failure here is a bug of the app or of the fixtures, not of the daemon."""

import concurrent.futures
import os

import pytest

import util
from util import big_blob, sha256_hex


@pytest.mark.parametrize("kind", ["php", "flask", "django", "php-fpm"])
def test_cycle(kind, tmp, sessdir, make_app):
    app = make_app(kind, sessdir)
    assert os.listdir(sessdir) == []  # /health probes make no sessions
    c = app.client()
    assert c.get("/whoami") == "anonymous"
    assert c.get("/login?user=alice") == "ok user=alice"
    assert c.get("/incr") == "count=1"
    assert c.get("/incr") == "count=2"
    assert c.get("/whoami") == "user=alice count=2"
    old = c.clone()
    assert c.get("/logout") == "bye"
    assert c.get("/whoami") == "anonymous"
    assert old.get("/whoami") == "anonymous"
    for name in os.listdir(sessdir):
        st = os.stat(sessdir / name)
        assert (st.st_uid, st.st_gid) == (util.WWW_UID, util.WWW_GID)
        assert st.st_mode & 0o777 == 0o600


@pytest.mark.parametrize("kind", ["php", "flask", "django", "php-fpm"])
def test_big(kind, sessdir, make_app):
    c = make_app(kind, sessdir).client()
    want = sha256_hex(big_blob(150))
    assert c.get("/big?kb=150") == want
    assert c.get("/bigcheck") == want


def test_php_parallel_incr(sessdir, make_app):
    """flock serialises PHP's requests on one session: exactly 20."""
    app = make_app("php", sessdir)
    c = app.client()
    c.get("/login?user=p")
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        got = sorted(ex.map(lambda _: c.get("/incr"), range(20)))
    assert got == sorted("count=%d" % i for i in range(1, 21))
    assert c.get("/whoami") == "user=p count=20"
