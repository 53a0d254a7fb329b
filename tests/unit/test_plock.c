/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fs/plock.c: fcntl byte ranges, owners, splits and conflicts. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>

#include "plock.h"
#include "testutil.h"

#define A   1 /* owners */
#define B   2
#define INO 7

/* The piece of 'owner' on INO that holds byte 'at', or NULL. */
static const struct fs_plock *at(const struct fs_plock *l, uint64_t owner,
				 int64_t at)
{
	for (; l; l = l->next)
		if (l->owner == owner && l->ino == INO && l->start <= at &&
		    l->end >= at)
			return l;
	return NULL;
}

static void test_range(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int64_t s, e;

	fl.l_start = 10;
	fl.l_len = 5;
	CHECK(fs_plock_range(&fl, &s, &e) == 0 && s == 10 && e == 14);
	fl.l_len = 0; /* to the end */
	CHECK(fs_plock_range(&fl, &s, &e) == 0 && s == 10 && e == INT64_MAX);
	fl.l_start = INT64_MAX - 1;
	fl.l_len = INT64_MAX; /* past the largest offset: to the end */
	CHECK(fs_plock_range(&fl, &s, &e) == 0 && e == INT64_MAX);
	fl.l_len = -1;
	CHECK(fs_plock_range(&fl, &s, &e) == -EINVAL);
	fl.l_start = -1;
	fl.l_len = 1;
	CHECK(fs_plock_range(&fl, &s, &e) == -EINVAL);
}

static void test_set_split_conflict(void)
{
	struct fs_plock *l = NULL;
	const struct fs_plock *c;
	uint64_t n = 0;

	CHECK(fs_plock_set(&l, &n, A, INO, 100, F_WRLCK, 0, 9) == 0);
	CHECK(n == 1);
	/* Own locks never conflict; another owner's overlap does. */
	CHECK(!fs_plock_conflict(l, A, true, 0, 9));
	c = fs_plock_conflict(l, B, false, 9, 20);
	CHECK(c && c->pid == 100 && c->start == 0 && c->end == 9 && c->ex);
	CHECK(!fs_plock_conflict(l, B, true, 10, 20));
	/* A read lock inside the write lock: three pieces, 3..4 shared. */
	CHECK(fs_plock_set(&l, &n, A, INO, 100, F_RDLCK, 3, 4) == 0);
	CHECK(n == 3);
	CHECK(at(l, A, 2) && at(l, A, 2)->ex && at(l, A, 2)->end == 2);
	CHECK(at(l, A, 3) && !at(l, A, 3)->ex && at(l, A, 4) == at(l, A, 3));
	CHECK(at(l, A, 5) && at(l, A, 5)->ex && at(l, A, 5)->start == 5);
	CHECK(!fs_plock_conflict(l, B, false, 3, 4));
	CHECK(fs_plock_conflict(l, B, true, 3, 4));
	/* An unlock across pieces trims both ends and drops the middle. */
	CHECK(fs_plock_set(&l, &n, A, INO, 0, F_UNLCK, 2, 6) == 0);
	CHECK(n == 2);
	CHECK(at(l, A, 1) && at(l, A, 1)->end == 1);
	CHECK(!at(l, A, 2) && !at(l, A, 4) && !at(l, A, 6));
	CHECK(at(l, A, 7) && at(l, A, 7)->start == 7 && at(l, A, 7)->end == 9);
	/* Another inode of the same owner is apart. */
	CHECK(fs_plock_set(&l, &n, A, INO + 1, 100, F_WRLCK, 0, INT64_MAX) ==
	      0);
	CHECK(fs_plock_set(&l, &n, A, INO, 0, F_UNLCK, 0, INT64_MAX) == 0);
	CHECK(n == 1 && !at(l, A, 1) && fs_plock_holds(l, A));
	/* To the end: conflicts far out. */
	CHECK(fs_plock_set(&l, &n, B, INO, 200, F_RDLCK, 50, INT64_MAX) == 0);
	CHECK(fs_plock_conflict(l, A, true, INT64_MAX - 1, INT64_MAX));
	CHECK(!fs_plock_conflict(l, A, false, 1000, 2000));
	/* A close drops one owner's locks on one inode only. */
	CHECK(!fs_plock_drop(&l, &n, A, INO));
	CHECK(fs_plock_drop(&l, &n, A, INO + 1));
	CHECK(n == 1 && !fs_plock_holds(l, A) && fs_plock_holds(l, B));
	CHECK(fs_plock_drop(&l, &n, B, INO));
	CHECK(n == 0 && !l);
	fs_plock_free(l);
}

int main(void)
{
	test_range();
	test_set_split_conflict();
	return test_exit();
}
