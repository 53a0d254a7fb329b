# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad input against a real mount: each gets a clear error and loses
nothing (issue 18).  What other modules test already is not repeated
here: names with '{', '}' or a newline (EINVAL, test_posix.py
test_invalid_names_einval), 255-byte names (test_posix.py
test_long_names), values over max_size (EFBIG, test_commit.py
test_write_past_max_size, test_posix.py test_max_size_option).  Here:
names too long, with '/' or NUL, not UTF-8; keys in Redis no file name
maps to; corrupt cachelib headers; malformed control requests; and a
Redis whose replies are garbage (util.HostileProxy), which must not
crash the daemon nor cost it memory.  The parsers behind these are also
fuzzed (tests/fuzz/)."""

import contextlib
import errno
import json
import os
import re
import socket
import threading
import time

import pytest

import util
from modeutil import PREFIX, ModeMount
from util import SLOW, errno_of, read_file, value_key, write_file

pytestmark = util.fuse_test_marker()


def vkey(name):
    return value_key(PREFIX, name)


@pytest.fixture
def mm(tmp, redis_server, checker):
    return ModeMount(tmp, redis_server, checker)


def redis_names(redis):
    return sorted(k for k in redis.keys(PREFIX.encode() + b"*")
                  if b"{" not in k)


# ------------------------------------------------------------------ names

def test_name_too_long(mount, redis):
    """256 bytes: ENAMETOOLONG for create and rename onto it; nothing in
    Redis, the source of the rename still there."""
    long = mount.path("s" * 256)
    assert errno_of(os.open, long, os.O_CREAT | os.O_WRONLY, 0o600) \
        == errno.ENAMETOOLONG
    src = mount.path("sess_src")
    write_file(src, b"kept")
    assert errno_of(os.rename, src, long) == errno.ENAMETOOLONG
    assert read_file(src) == b"kept"
    assert redis_names(redis) == [vkey("sess_src")]


def test_name_with_slash_or_nul(mount, redis):
    """'/' is the kernel's separator: "sess_a/b" looks for a directory
    sess_a, there is none (ENOENT), and a session file is no directory
    (ENOTDIR).  A NUL cannot cross the system call (Python refuses it
    before, C's string ends there)."""
    assert errno_of(os.open, mount.path("sess_a/b"),
                    os.O_CREAT | os.O_WRONLY, 0o600) == errno.ENOENT
    write_file(mount.path("sess_a"), b"a")
    assert errno_of(os.open, mount.path("sess_a/b"),
                    os.O_CREAT | os.O_WRONLY, 0o600) == errno.ENOTDIR
    with pytest.raises(ValueError):
        os.open(mount.path("sess_b\0c"), os.O_CREAT | os.O_WRONLY, 0o600)
    assert redis_names(redis) == [vkey("sess_a")]
    assert read_file(mount.path("sess_a")) == b"a"


def test_non_utf8_name(mount, redis):
    """A name is bytes: one that is not UTF-8 is a session like any other,
    the same bytes in the file name and the key."""
    name = b"sess_\xff\xfe\xc3("
    path = os.fsencode(str(mount.mnt)) + b"/" + name
    write_file(path, b"data")
    assert read_file(path) == b"data"
    assert name in os.listdir(os.fsencode(str(mount.mnt)))
    assert redis.get(PREFIX.encode() + name) == b"data"
    os.unlink(path)
    assert redis.get(PREFIX.encode() + name) is None


def test_hostile_keys_in_redis(mm, redis, sessdir):
    """Keys another client put under the prefix that no file name maps to
    (NUL, '/', a newline, a lone '{', over 255 bytes): not listed, no
    error; the sessions beside them are."""
    bad = [b"sess_nul\0x", b"sess_a/b", b"sess_nl\nx", b"sess_{x",
           b"s" * 300]
    for k in bad:
        redis.set(PREFIX.encode() + k, b"junk")
    with mm.mounted(sessdir, "redis-only") as m:
        write_file(m.path("sess_good"), b"good")
        assert os.listdir(m.mnt) == ["sess_good"]
        assert read_file(m.path("sess_good")) == b"good"
    for k in bad:
        assert redis.get(PREFIX.encode() + k) == b"junk"


# --------------------------------------------------------- cachelib headers

CACHELIB_NAME = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("data", [
    pytest.param(b"\x01\x02\x03", id="short"),
    pytest.param(b"\x10\x20\x30\x40\x00not a pickle", id="no-marker"),
    pytest.param(b"", id="empty"),
])
def test_corrupt_cachelib_header(data, redis, redis_server, sessdir,
                                 checker):
    """A cachelib-named file whose header cannot be read keeps its bytes
    and gets the mount's sliding TTL (ttl=3600) instead of one from the
    header."""
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=["allow_other", "ttl=3600"]) as m:
        write_file(m.path(CACHELIB_NAME), data)
        assert read_file(m.path(CACHELIB_NAME)) == data
        assert redis.get(vkey(CACHELIB_NAME)) == data
        pttl = redis.pttl(vkey(CACHELIB_NAME))
        assert 3000 * 1000 < pttl <= 3600 * 1000, pttl


def test_cachelib_header_far_future(redis, redis_server, sessdir, checker):
    """The largest expiry a header can hold (2106): a TTL that long, no
    overflow; the bytes kept."""
    data = util.cachelib_bytes(0xFFFFFFFF)
    with util.mounted(redis_server.url(), sessdir, checker,
                      opts=["allow_other"]) as m:
        write_file(m.path(CACHELIB_NAME), data)
        assert read_file(m.path(CACHELIB_NAME)) == data
        pttl = redis.pttl(vkey(CACHELIB_NAME))
        want = 0xFFFFFFFF * 1000 - int(time.time() * 1000)
        assert abs(pttl - want) < 600 * 1000, (pttl, want)


# ------------------------------------------------------- control requests

def ctl_lines(sock, data, until_closed=False, timeout=10):
    """Sends 'data' on a new connection to the control socket and reads
    until every line sent got its reply (or with 'until_closed', until
    the daemon closes it): the replies."""
    want = data.count(b"\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout * SLOW)
        s.connect(str(sock))
        buf = b""
        try:
            s.sendall(data)
            while until_closed or buf.count(b"\n") < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            # Closed with our bytes unread: the reset says so.
            if not until_closed:
                raise
    return [json.loads(line) for line in buf.splitlines()]


BAD_REQUESTS = [
    (b"not json", "bad request: "),
    (b"[1, 2]", "bad request: not a JSON object"),
    (b'"status"', "bad request: "),
    (b"{}", 'bad request: no "cmd"'),
    (b'{"cmd": 5}', 'bad request: no "cmd"'),
    (b'{"cmd": "frobnicate"}', "unknown command 'frobnicate'"),
    (b'{"cmd": "mode"}', "invalid mode ''"),
    (b'{"cmd": "mode", "mode": 7}', "invalid mode ''"),
    (b'{"cmd": "mode", "mode": "files\\u0000x"}', "bad request: "),
    (b'{"cmd": "mode", "mode": "redis-only!"}', "invalid mode 'redis-only!'"),
    (b"\xff\xfe{", "bad request: "),
    (b'{"cmd": "status"', "bad request: "),
]


def test_malformed_control_requests(mm, redis, sessdir):
    """Every malformed request, all on one connection: one error reply
    each, in order, the connection kept; then a line longer than the
    limit (64 KiB) drops that client only; the mode never changed and a
    session written before is intact."""
    with mm.mounted(sessdir, "redis-only") as m:
        write_file(m.path("sess_keep"), b"keep")
        data = b"".join(req + b"\n" for req, _ in BAD_REQUESTS)
        replies = ctl_lines(mm.sock(), data + b'{"cmd": "status"}\n')
        assert len(replies) == len(BAD_REQUESTS) + 1, replies
        for (req, why), rep in zip(BAD_REQUESTS, replies):
            assert rep["ok"] is False, (req, rep)
            assert rep["error"].startswith(why), (req, rep)
        assert replies[-1]["ok"] is True
        assert replies[-1]["mode"] == "redis-only"
        # No newline within the limit: the daemon hangs up.
        assert ctl_lines(mm.sock(), b"{" + b" " * 70000,
                         until_closed=True) == []
        st = mm.status()
        assert st["mode"] == "redis-only"
        assert read_file(m.path("sess_keep")) == b"keep"


# ------------------------------------------------------ hostile Redis replies

GARBAGE = [
    # hiredis 0.14 alone would calloc 16 GB for this header.
    pytest.param(b"*2147483647\r\n", False, None, id="huge-array"),
    pytest.param(b"*1048577\r\n", False, None, id="array-over-limit"),
    # 1 TiB announced: hiredis would buffer it all until redis_timeout
    # (the calls failed with ETIMEDOUT); refused at the header as a
    # protocol error (backend/resp.h, BE_RESP_MAX_BULK).
    pytest.param(b"$1099511627776\r\n" + b"x" * 4096, False,
                 r"unreachable \(Protocol error\)", id="huge-bulk"),
    pytest.param(b"$-7\r\n", False, None, id="negative-bulk"),
    pytest.param(b"?what\r\n", False, None, id="bad-type"),
    pytest.param(b":12x\r\n", False, None, id="bad-integer"),
    pytest.param(b"+OK\r\n", False, None, id="wrong-type"),
    pytest.param(b"*3\r\n:1\r\n", True, None, id="cut-short"),
    pytest.param(bytes(range(256)), True, None, id="binary"),
]


# What a store call that failed gives the client (fs/ops.c store_err()).
FAILED = (errno.EIO, errno.ETIMEDOUT, errno.EPROTO)


def vm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    raise AssertionError("no VmSize for %d" % pid)


class VmPeakSampler(threading.Thread):
    """The largest VmSize of 'pid' seen until stop(), read every 10 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.kib = vm_kib(pid)
        self._done = threading.Event()
        self.start()

    def run(self):
        while not self._done.wait(0.01):
            with contextlib.suppress(OSError, AssertionError):
                self.kib = max(self.kib, vm_kib(self.pid))

    def stop(self):
        self._done.set()
        self.join()


@pytest.mark.parametrize("garbage,close,said", GARBAGE)
def test_hostile_redis_replies(garbage, close, said, mm, redis, redis_server,
                               sessdir, checker):
    """The mount talks to Redis through a proxy that, once set, answers
    every request with 'garbage' (and with 'close' hangs up).  Writes
    then fail with a clear errno (a read may still be served from the
    mount's cache, with the right bytes), the daemon stays up, says
    'said' (a pattern; None: anything) and its address space does not
    grow by gigabytes; once the proxy passes through again, the session
    written before is intact and writes work."""
    checker.register_output(r"protocol error|redis|reply|timed? ?out|"
                            r"connection|unexpected|EPROTO|input/output|fenc")
    proxy = util.HostileProxy(redis_server.port)
    try:
        with mm.mounted(sessdir, "redis-only", url=proxy.url(),
                        extra=["redis_timeout=1"]) as m:
            write_file(m.path("sess_before"), b"before")
            vm0 = vm_kib(m.proc.pid)
            proxy.set(garbage, close)
            # The daemon's address space, sampled while the calls wait
            # (up to redis_timeout) for the rest of a reply.
            peak = VmPeakSampler(m.proc.pid)
            try:
                try:
                    assert read_file(m.path("sess_before")) == b"before"
                except OSError as e:
                    assert e.errno in FAILED, e
                e2 = errno_of(write_file, m.path("sess_new"), b"new")
            finally:
                peak.stop()
            assert e2 in FAILED, e2
            assert proxy.answered > 0
            if said:
                assert re.search(said, checker.text()), \
                    "the daemon did not say %r" % said
            assert m.proc.poll() is None, "sessfs died"
            assert peak.kib < vm0 + 1024 * 1024, \
                "the daemon's address space grew from %d to %d KiB" \
                % (vm0, peak.kib)
            proxy.set(None)
            util.wait_for(lambda: errno_of(read_file, m.path("sess_before"))
                          is None, 15 * SLOW, "reads through the proxy again")
            assert read_file(m.path("sess_before")) == b"before"
            write_file(m.path("sess_after"), b"after")
        assert redis.get(vkey("sess_before")) == b"before"
        assert redis.get(vkey("sess_after")) == b"after"
    finally:
        proxy.stop()
