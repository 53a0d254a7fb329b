# SPDX-License-Identifier: GPL-2.0-or-later
"""The trimmer (fs/trim.c): after a walk of the whole directory (Debian's
phpsessionclean), the daemon does not keep an inode per session: once
they are idle it makes the kernel forget them, beyond the most recently
used FS_TRIM_KEEP, and frees them.  Files kept open stay usable, and the
trimmed names are served as before."""

import os

import pytest

import util
from util import read_file, wait_for, write_file
from modeutil import ModeMount

TRIM_KEEP = 1024  # fs/trim.h
N = 3000

pytestmark = [
    util.fuse_test_marker(),
    pytest.mark.skipif(not util.SESSFS.exists(),
                       reason="%s not built" % util.SESSFS),
]


@pytest.mark.parametrize("mode", ["redis-only", "dual-write"])
def test_walk_then_idle_inodes_are_freed(mode, redis_server, tmp, sessdir,
                                         checker):
    mm = ModeMount(tmp, redis_server, checker)
    with mm.mounted(sessdir, mode) as m:
        names = ["sess_trim%05d0123456789abcdef" % i for i in range(N)]
        for n in names:
            write_file(m.path(n), n.encode())
        held = os.open(m.path(names[0]), os.O_RDWR)
        try:
            # The walk: every name looked up and stat'ed, as find does.
            listed = set(os.listdir(m.mnt))
            assert set(names) <= listed
            for n in names:
                assert os.stat(m.path(n)).st_size == len(n)
            # More than it keeps, so there is something to free; the
            # trimmer may already have freed the first ones walked if the
            # walk took over a second (it did, once, under ASan; under
            # ThreadSanitizer 1277 of 3000 were left).
            assert mm.status()["inodes"] > TRIM_KEEP + 16

            wait_for(lambda: mm.status()["inodes"] <= TRIM_KEEP + 16, 30,
                     "the idle inodes to be freed", interval=0.2)
            # The open file was left alone and still works.
            assert os.fstat(held).st_size == len(names[0])
            os.lseek(held, 0, os.SEEK_SET)
            assert os.read(held, 100) == names[0].encode()
            os.ftruncate(held, 0)
            os.pwrite(held, b"rewritten", 0)
        finally:
            os.close(held)
        assert read_file(m.path(names[0])) == b"rewritten"
        # Trimmed names are looked up afresh, with their bytes.
        for n in names[1:200] + names[-10:]:
            assert read_file(m.path(n)) == n.encode()
        assert sorted(os.listdir(m.mnt)) == sorted(listed)
