/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the meta hash parser (be_meta_parse(), backend/layout.c) on the
 * field/value list an HGETALL returns.  The fuzzer's bytes are split at
 * each '\n' into the strings (so a value may hold NUL and any other
 * byte).  What parses must hold what the header promises.
 */
#include <errno.h>

#include "fuzz.h"
#include "layout.h"

#define MAX_FIELDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *fields[MAX_FIELDS];
	size_t lens[MAX_FIELDS], n = 0;
	const uint8_t *p = data, *end = data + size, *nl;
	struct be_meta m;
	int ret;

	while (p <= end && n < MAX_FIELDS) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		fields[n] = (const char *)p;
		lens[n++] = (size_t)(nl - p);
		p = nl + 1;
	}
	memset(&m, 0xa5, sizeof(m));
	ret = be_meta_parse(&m, n, fields, lens);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL);
	if (ret == 0) {
		FUZZ_CHECK(n % 2 == 0);
		FUZZ_CHECK(m.mode <= 07777);
		FUZZ_CHECK(memchr(m.host, '\0', sizeof(m.host)));
		FUZZ_CHECK(m.version >= 0);
	}
	return 0;
}
