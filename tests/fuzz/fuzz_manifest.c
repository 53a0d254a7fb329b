/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the unmount manifest parser (be_manifest_parse(),
 * backend/journal.c), on what a crash, a full disk or a hand edit may
 * leave in the state dir.  It is all or nothing: a manifest that parses
 * gives entries with a name that is a file name (no '/', not empty).
 * When the first byte is odd, the harness appends the end line with the
 * right count and CRC, so that mutations of the entries get checked.
 */
#include <errno.h>

#include "fuzz.h"
#include "journal.h"

static int entry(const struct be_manifest_entry *e, void *arg)
{
	size_t *n = arg;

	FUZZ_CHECK(e->name[0] && !strchr(e->name, '/'));
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t written = 0;
	size_t n = 0, lines = 0, len, i;
	char *buf;
	int ret;

	if (!size)
		return 0;
	buf = malloc(size + 64);
	FUZZ_CHECK(buf);
	memcpy(buf, data + 1, size - 1);
	len = size - 1;
	if (data[0] & 1) {
		for (i = 0; i < len; i++)
			lines += buf[i] == '\n';
		len += (size_t)snprintf(buf + len, 64, "end %zu %08x\n",
					lines ? lines - 1 : 0,
					(unsigned int)fuzz_crc32(buf, len));
	}
	buf[len] = '\0';
	size = len;
	ret = be_manifest_parse(buf, size, &written, entry, &n);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	if (ret)
		FUZZ_CHECK(n == 0);
	free(buf);
	return 0;
}
