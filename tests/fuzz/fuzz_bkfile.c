/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the backup file's item decoders (backend/bkfile.c) as `restore`
 * reads a file: the len field first, then the item, its CRC, then the
 * header, record or trailer in it.  Every item that decodes must encode
 * again to the same bytes.  So that mutations get past the checksum,
 * the harness sets the CRC of every item right when the first byte is
 * odd (the decoders' CRC check is fuzzed with the other half).
 */
#include <stdbool.h>

#include "bkfile.h"
#include "fuzz.h"

static void check_item(const unsigned char *item, size_t len)
{
	struct be_bk_header h;
	struct be_bk_record r;
	struct be_bk_trailer t;
	unsigned char *buf;
	size_t n;

	if (be_bk_header_decode(item, len, &h) == 0) {
		buf = malloc(len);
		FUZZ_CHECK(buf);
		n = be_bk_header_encode(&h, buf, len);
		FUZZ_CHECK(n == len && !memcmp(buf, item, len));
		free(buf);
	}
	if (be_bk_record_decode(item, len, &r) == 0) {
		n = be_bk_record_size(&r);
		FUZZ_CHECK(n == len);
		buf = malloc(n);
		FUZZ_CHECK(buf);
		FUZZ_CHECK(be_bk_record_encode(&r, buf) == n);
		FUZZ_CHECK(!memcmp(buf, item, len));
		free(buf);
	}
	if (be_bk_trailer_decode(item, len, &t) == 0) {
		unsigned char out[BE_BK_TRAILER_LEN];

		FUZZ_CHECK(len == BE_BK_TRAILER_LEN);
		FUZZ_CHECK(be_bk_trailer_encode(&t, out) == len);
		FUZZ_CHECK(!memcmp(out, item, len));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 1, len;
	unsigned char *item;
	bool fix_crc;
	uint32_t crc;

	if (!size)
		return 0;
	fix_crc = data[0] & 1;
	/* The file: magic, then items, each starting with its len. */
	if (size - off >= BE_BK_MAGIC_LEN &&
	    !memcmp(data + off, BE_BK_MAGIC, BE_BK_MAGIC_LEN))
		off += BE_BK_MAGIC_LEN;
	while (size - off >= BE_BK_ITEM_HEAD_LEN) {
		if (be_bk_item_len(data + off, &len))
			break;
		FUZZ_CHECK(len >= BE_BK_ITEM_HEAD_LEN && len <= BE_BK_ITEM_MAX);
		if (len > size - off)
			break;
		/* Its own copy, so ASan sees a read past the item. */
		item = malloc(len);
		FUZZ_CHECK(item);
		memcpy(item, data + off, len);
		if (fix_crc) {
			crc = be_bk_crc32c(0, item, len - 4);
			item[len - 4] = (unsigned char)crc;
			item[len - 3] = (unsigned char)(crc >> 8);
			item[len - 2] = (unsigned char)(crc >> 16);
			item[len - 1] = (unsigned char)(crc >> 24);
			FUZZ_CHECK(be_bk_item_check(item, len) >= 0);
		}
		check_item(item, len);
		free(item);
		off += len;
	}
	return 0;
}
