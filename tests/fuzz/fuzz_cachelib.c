/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the reading of cachelib's expiry header and the TTL math built
 * on it (backend/layout.c), on file contents Flask-Session writes and on
 * corrupt ones.  The first byte picks the name (a cachelib entry or not,
 * the count file) and the policy; the next 8 the mtime; the rest is the
 * data.  The TTL must never overflow (UBSan), and a header that is read
 * must be the one the TTL follows.
 */
#include "fuzz.h"
#include "layout.h"

static const char *const names[] = {
	"0123456789abcdef0123456789abcdef", /* md5 hex: cachelib */
	"sess_abc", /* PHP */
	BE_CACHELIB_COUNT_NAME, "sessionid1234", /* Django's prefix */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct be_ttl_policy p = { .ttl_s = BE_DEFAULT_TTL };
	const char *name;
	int64_t mtime_ms, now_ms = 1700000000000LL, left;
	uint32_t expiry;

	if (size < 9)
		return 0;
	name = names[data[0] % 4];
	p.ignore_cachelib = data[0] & 4;
	if (data[0] & 8)
		p.ttl_s = 1;
	memcpy(&mtime_ms, data + 1, sizeof(mtime_ms));
	/* The mount's mtimes are ns since the epoch in an int64. */
	mtime_ms /= 1000000;
	data += 9;
	size -= 9;
	left = be_ttl_remaining_ms(&p, name, data, size, mtime_ms, now_ms);
	if (be_ttl_from_header(&p, name, data, size)) {
		FUZZ_CHECK(be_cachelib_expiry(data, size, &expiry) == 0);
		FUZZ_CHECK(expiry == 0 ||
			   left == (int64_t)expiry * 1000 - now_ms);
	} else if (!p.ignore_cachelib && be_name_is_cachelib(name) &&
		   be_cachelib_expiry(data, size, &expiry) == 0 && expiry) {
		FUZZ_CHECK(!"a valid header with an expiry is not followed");
	}
	(void)be_tombstone_ttl_ms(&p, mtime_ms, now_ms);
	return 0;
}
