/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every libFuzzer target in tests/fuzz/ shares: the entry point's
 * prototype and small helpers to turn the fuzzer's bytes into the inputs
 * a parser takes.  A target checks properties with FUZZ_CHECK(), which
 * aborts, so that libFuzzer reports the input as a crash.
 */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the failed condition: libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/* A NUL-terminated copy of 'size' bytes of 'data' (new; aborts on ENOMEM). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * CRC-32 (IEEE, as zlib's crc32()) of 'len' bytes of 'buf': the checksum
 * of the journal's records and the manifest, so that a harness can set
 * it right and let mutations past it.  Bitwise, slow, small.
 */
static inline uint32_t fuzz_crc32(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = 0xFFFFFFFFU;
	int k;

	while (len--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xEDB88320U : c >> 1;
	}
	return c ^ 0xFFFFFFFFU;
}

#endif /* TESTS_FUZZ_H */
