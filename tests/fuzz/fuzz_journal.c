/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the repair journal's loader (be_journal_open(),
 * backend/journal.c) on a log a crash or a bad disk may leave: torn
 * lines, bad checksums, bad fields.  The fuzzer's bytes are the log; the
 * journal is opened on a file in a private temp dir (the loader reads a
 * file and rewrites it when corrupt).  Whatever was read, the journal
 * must then be consistent: opening it again finds it clean, with the same
 * names and stores.  When the first byte is odd, the harness sets the
 * CRC of every line that has one right, so that mutations of the fields
 * get past it.
 */
#include <limits.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"
#include "journal.h"

static char path[PATH_MAX];

struct seen {
	struct be_journal *other;
	size_t n;
};

static int same_in_other(const char *name, unsigned int stores, void *arg)
{
	struct seen *s = arg;

	FUZZ_CHECK(stores && be_journal_get(s->other, name) == stores);
	s->n++;
	return 0;
}

static char dir[PATH_MAX - 16];

static void remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

static void make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/fuzz_journal.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	atexit(remove_dir);
}

/* Sets the CRC at the end of every line of 'buf' that has room for one. */
static void fix_crcs(char *buf, size_t len)
{
	char *p = buf, *end = buf + len, *nl, hex[9];

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		if (nl - p >= 10 && nl[-9] == ' ') {
			snprintf(hex, sizeof(hex), "%08x",
				 (unsigned int)fuzz_crc32(p, (size_t)(nl - p) -
								     9));
			memcpy(nl - 8, hex, 8);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct be_journal *j, *again;
	struct seen seen = { 0 };
	bool corrupt, corrupt2;
	char err[512], *buf;
	int fd;

	if (!size)
		return 0;
	if (!path[0])
		make_dir();
	buf = fuzz_str(data + 1, size - 1);
	size--;
	if (data[0] & 1)
		fix_crcs(buf, size);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, buf, size) == (ssize_t)size);
	close(fd);
	free(buf);
	j = be_journal_open(path, 1000, &corrupt, err, sizeof(err));
	FUZZ_CHECK(j);
	again = be_journal_open(path, 1000, &corrupt2, err, sizeof(err));
	FUZZ_CHECK(again);
	FUZZ_CHECK(!corrupt2);
	seen.other = again;
	FUZZ_CHECK(be_journal_foreach(j, same_in_other, &seen) == 0);
	FUZZ_CHECK(seen.n == be_journal_count(j));
	FUZZ_CHECK(be_journal_count(again) == be_journal_count(j));
	be_journal_free(again);
	be_journal_free(j);
	return 0;
}
