/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the pure parts of fs/shadow.h: parsing -o shadow=PERCENT and
 * the sampling of reads (exactly PERCENT of every 100 consecutive reads,
 * wherever the count starts).
 */
#include <errno.h>
#include <stdint.h>

#include "shadow.h"
#include "testutil.h"

static void test_parse(void)
{
	static const char *const bad[] = {
		"",   "-1", "101", "+5", " 5",
		"5 ", "5%", "1.5", "x",	 "99999999999999999999"
	};
	unsigned int p = 7;
	size_t i;

	CHECK(fs_shadow_parse("0", &p) == 0 && p == 0);
	CHECK(fs_shadow_parse("1", &p) == 0 && p == 1);
	CHECK(fs_shadow_parse("100", &p) == 0 && p == 100);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		p = 7;
		CHECK(fs_shadow_parse(bad[i], &p) == -EINVAL && p == 7);
	}
}

/* Sampled reads among 'n' consecutive ones from 'from'. */
static unsigned int sampled(uint64_t from, unsigned int n, unsigned int pct)
{
	unsigned int k = 0, i;

	for (i = 0; i < n; i++)
		k += fs_shadow_sample(from + i, pct);
	return k;
}

static void test_sample(void)
{
	static const uint64_t starts[] = { 0, 1, 37, 1000003,
					   UINT64_MAX / 200 };
	unsigned int pct;
	size_t s;

	for (pct = 0; pct <= 100; pct++)
		for (s = 0; s < sizeof(starts) / sizeof(*starts); s++)
			CHECK(sampled(starts[s] * 100, 100, pct) == pct);
	/* Spread: 50 % takes every other read, 1 % one read in 100. */
	CHECK(sampled(0, 2, 50) == 1 && sampled(2, 2, 50) == 1);
	CHECK(sampled(0, 99, 1) == 0 && fs_shadow_sample(99, 1));
	CHECK(!fs_shadow_sample(5, 0) && fs_shadow_sample(5, 100));
}

int main(void)
{
	test_parse();
	test_sample();
	return test_exit();
}
