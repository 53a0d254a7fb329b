/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of backend/mountinfo.h: parsing mountinfo lines (optional fields,
 * escapes, malformed lines) and reading this process's own table.
 */
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"
#include "testutil.h"

static void test_parse(void)
{
	struct be_mi_entry e;
	char line[512];

	strcpy(line,
	       "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue");
	CHECK(be_mi_parse_line(line, &e));
	CHECK(e.id == 36 && e.parent == 35 && e.major == 98 && e.minor == 0);
	CHECK(strcmp(e.root, "/mnt1") == 0 && strcmp(e.mnt, "/mnt2") == 0);
	CHECK(strcmp(e.opts, "rw,noatime") == 0);
	CHECK(strcmp(e.fstype, "ext3") == 0);

	/* No optional field, several, and escapes in the paths. */
	strcpy(line,
	       "120 29 0:57 / /var/lib/my\\040sessions rw,nosuid - fuse.sessfs sessfs rw");
	CHECK(be_mi_parse_line(line, &e));
	CHECK(strcmp(e.mnt, "/var/lib/my sessions") == 0);
	CHECK(strcmp(e.fstype, "fuse.sessfs") == 0);
	strcpy(line,
	       "7 1 0:5 /a\\134b /x\\011y\\012z rw shared:2 master:3 propagate_from:4 - tmpfs tmpfs rw");
	CHECK(be_mi_parse_line(line, &e));
	CHECK(strcmp(e.root, "/a\\b") == 0 && strcmp(e.mnt, "/x\ty\nz") == 0);
	CHECK(strcmp(e.fstype, "tmpfs") == 0);
	/* Not an escape: kept as written. */
	strcpy(line, "7 1 0:5 / /p\\9x rw - tmpfs tmpfs rw");
	CHECK(be_mi_parse_line(line, &e) && strcmp(e.mnt, "/p\\9x") == 0);

	/* Malformed: too few fields, no "-", no fstype, bad numbers. */
	strcpy(line, "36 35 98:0 /mnt1 /mnt2");
	CHECK(!be_mi_parse_line(line, &e));
	strcpy(line, "36 35 98:0 /mnt1 /mnt2 rw master:1 ext3 /dev/root rw");
	CHECK(!be_mi_parse_line(line, &e));
	strcpy(line, "36 35 98:0 /mnt1 /mnt2 rw -");
	CHECK(!be_mi_parse_line(line, &e));
	strcpy(line, "x 35 98:0 / / rw - ext3 /dev/root rw");
	CHECK(!be_mi_parse_line(line, &e));
	strcpy(line, "36 35 98 / / rw - ext3 /dev/root rw");
	CHECK(!be_mi_parse_line(line, &e));
	strcpy(line, "");
	CHECK(!be_mi_parse_line(line, &e));
}

static void test_read(void)
{
	struct be_mi_table t;
	size_t i;
	int root = 0;

	CHECK(be_mi_read(&t) == 0);
	CHECK(t.n > 0);
	for (i = 0; i < t.n; i++)
		root += strcmp(t.e[i].mnt, "/") == 0;
	CHECK(root >= 1);
	be_mi_free(&t);
	CHECK(t.e == NULL && t.buf == NULL && t.n == 0);
}

int main(void)
{
	test_parse();
	test_read();
	return test_exit();
}
