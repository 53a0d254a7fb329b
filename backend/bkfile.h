/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sessfs backup file (sessfs-migrate backup / restore), format 1: a
 * pure codec, no I/O.  Every function is thread-safe; nothing here keeps
 * state between calls but a struct be_bk_sum the caller owns.
 *
 * A file is the 8-byte magic BE_BK_MAGIC, then items.  Every item is
 *
 *     u32 len      bytes of the whole item, this field and the CRC included
 *     u8  kind     BE_BK_HEADER, BE_BK_RECORD or BE_BK_TRAILER
 *     ...          the kind's fields
 *     u32 crc      CRC-32C (Castagnoli) of every byte before it in the item
 *
 * All integers are little-endian.  The first item is the header, the last
 * the trailer, and nothing follows the trailer; records lie between.
 *
 *   header:  u32 version (BE_BK_VERSION), i64 created (ms since the epoch),
 *            u8 layout (enum be_layout), u64 count (records in the file),
 *            u16 prefix length, the prefix's bytes
 *   record:  u8 type (BE_BK_VALUE or BE_BK_TOMBSTONE), u8 flags
 *            (BE_BK_HAS_META), u16 name length, i64 value expiry, i64 meta
 *            expiry (ms since the epoch, 0: the key has no TTL or is
 *            absent), u32 meta pairs, u32 value length, the name's bytes,
 *            each meta pair as u32 field length, u32 value length, field
 *            bytes, value bytes, then the value's bytes
 *   trailer: u64 count, u64 record bytes (the sum of the records' 'len'),
 *            32 bytes of file digest
 *
 * The file digest (be_bk_file_digest()) is SHA-256 of the magic, the
 * header item, the SHA-256 of every record item in order, and the trailer
 * item up to its digest: every byte of the file but the digest and the
 * trailer's CRC is covered, and the writer can fix the header's count
 * after the records are written.  A record holds the meta hash as Redis
 * held it, field by field: the restore writes the same hash back.
 */
#ifndef BACKEND_BKFILE_H
#define BACKEND_BKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define BE_BK_MAGIC	 "SESSFSBK"
#define BE_BK_MAGIC_LEN	 8
#define BE_BK_VERSION	 1
#define BE_BK_DIGEST_LEN 32 /* SHA-256 */
#define BE_BK_PREFIX_MAX 1024 /* longest prefix a header may hold */
#define BE_BK_META_MAX	 64 /* most meta pairs a record may hold */
#define BE_BK_FIELD_MAX	 4096 /* longest meta field or value */
#define BE_BK_VALUE_MAX	 (64 * 1024 * 1024) /* the mount's limit */
/* No item is longer: a value, its meta and the fixed fields. */
#define BE_BK_ITEM_MAX                           \
	((size_t)BE_BK_VALUE_MAX + BE_NAME_MAX + \
	 BE_BK_META_MAX * (8 + 2 * BE_BK_FIELD_MAX) + 64)
#define BE_BK_ITEM_HEAD_LEN 4 /* the len field: read it first */

enum be_bk_kind {
	BE_BK_HEADER = 'H',
	BE_BK_RECORD = 'R',
	BE_BK_TRAILER = 'E',
};

enum be_bk_type {
	BE_BK_VALUE = 'V', /* a value key, with its meta key if any */
	BE_BK_TOMBSTONE = 'T', /* a meta key without a value */
};

enum be_bk_flags {
	BE_BK_HAS_META = (1 << 0),
};

/** The header's fields; zero-initialisable. */
struct be_bk_header {
	uint32_t version;
	int64_t created_ms;
	enum be_layout layout;
	uint64_t count;
	const char *prefix; /* borrowed: 'prefix_len' bytes, not terminated */
	size_t prefix_len;
};

/** One meta pair; the bytes are borrowed. */
struct be_bk_pair {
	const char *field;
	size_t field_len;
	const char *value;
	size_t value_len;
};

/**
 * One session: a value (with or without meta) or a tombstone.  Every
 * pointer is borrowed: from the caller when encoding, from the item when
 * decoding.
 */
struct be_bk_record {
	enum be_bk_type type;
	unsigned int flags; /* enum be_bk_flags */
	const char *name; /* 'name_len' bytes, not terminated */
	size_t name_len;
	int64_t value_expire_ms; /* 0: no TTL; always 0 in a tombstone */
	int64_t meta_expire_ms; /* 0: no TTL or no meta key */
	size_t nmeta;
	struct be_bk_pair meta[BE_BK_META_MAX];
	const char *value; /* 'value_len' bytes; NULL allowed when 0 */
	size_t value_len;
};

/** The trailer's fields. */
struct be_bk_trailer {
	uint64_t count;
	uint64_t record_bytes;
	unsigned char digest[BE_BK_DIGEST_LEN];
};

/**
 * CRC-32C of 'len' bytes of 'buf', continuing 'crc' (0 to start).  Check
 * value: be_bk_crc32c(0, "123456789", 9) == 0xe3069283.
 */
uint32_t be_bk_crc32c(uint32_t crc, const void *buf, size_t len);

/**
 * Reads the len field at the start of an item ('head', BE_BK_ITEM_HEAD_LEN
 * bytes) into '*len'.  0, or -EINVAL when it is shorter than the smallest
 * item or longer than BE_BK_ITEM_MAX (a corrupt file: do not allocate it).
 */
int be_bk_item_len(const unsigned char *head, size_t *len);

/**
 * Checks the CRC of the item 'item' of 'len' bytes (its len field
 * included, which must say 'len') and returns its kind, or -EINVAL.
 */
int be_bk_item_check(const unsigned char *item, size_t len);

/**
 * Encodes 'h' as a header item into 'buf' of 'size' bytes.  Returns the
 * item's length, or 0 when 'size' is too small or the prefix is longer
 * than BE_BK_PREFIX_MAX.  The length depends only on the prefix, so a
 * writer can encode it again with the final count in the same place.
 */
size_t be_bk_header_encode(const struct be_bk_header *h, unsigned char *buf,
			   size_t size);

/**
 * Decodes the header item 'item' of 'len' bytes (CRC checked) into 'h',
 * whose prefix then points into 'item'.  0, or -EINVAL for a bad CRC, a
 * bad length, another kind, an unknown layout, or a version other than
 * BE_BK_VERSION (-ENOTSUP).
 */
int be_bk_header_decode(const unsigned char *item, size_t len,
			struct be_bk_header *h);

/**
 * The item length of 'r' encoded, or 0 when a field is over its limit
 * (name over BE_NAME_MAX, more than BE_BK_META_MAX pairs, a field over
 * BE_BK_FIELD_MAX, a value over BE_BK_VALUE_MAX).
 */
size_t be_bk_record_size(const struct be_bk_record *r);

/**
 * Encodes 'r' into 'buf', which holds be_bk_record_size(r) bytes (not 0).
 * Returns that size.
 */
size_t be_bk_record_encode(const struct be_bk_record *r, unsigned char *buf);

/**
 * Decodes the record item 'item' of 'len' bytes (CRC checked) into 'r',
 * whose pointers then point into 'item'.  0, or -EINVAL for a bad CRC, a
 * length that disagrees with the fields, another kind, an unknown type or
 * flag, a field over its limit, a tombstone with a value or without meta.
 */
int be_bk_record_decode(const unsigned char *item, size_t len,
			struct be_bk_record *r);

/** Encodes 't' into 'buf' (BE_BK_TRAILER_LEN bytes); returns the length. */
size_t be_bk_trailer_encode(const struct be_bk_trailer *t, unsigned char *buf);
#define BE_BK_TRAILER_LEN (4 + 1 + 8 + 8 + BE_BK_DIGEST_LEN + 4)

/**
 * Decodes the trailer item 'item' of 'len' bytes (CRC checked) into 't'.
 * 0 or -EINVAL.
 */
int be_bk_trailer_decode(const unsigned char *item, size_t len,
			 struct be_bk_trailer *t);

/** A running SHA-256 over the record items; see be_bk_sum_new(). */
struct be_bk_sum;

/** A new running SHA-256, or NULL (ENOMEM). */
struct be_bk_sum *be_bk_sum_new(void);
/** Adds 'len' bytes of 'buf'. */
void be_bk_sum_update(struct be_bk_sum *s, const void *buf, size_t len);
/** Writes the SHA-256 of what was added into 'out'; 's' is then spent. */
void be_bk_sum_final(struct be_bk_sum *s, unsigned char out[BE_BK_DIGEST_LEN]);
/** Frees 's'; NULL allowed. */
void be_bk_sum_free(struct be_bk_sum *s);

/**
 * The file digest: SHA-256 of BE_BK_MAGIC, the header item 'header' of
 * 'header_len' bytes, 'records_sha' (the be_bk_sum of every record item)
 * and the first BE_BK_TRAILER_LEN - BE_BK_DIGEST_LEN - 4 bytes of the
 * trailer item 'trailer' (its len, kind, count and record bytes).  0, or
 * -ENOMEM.
 */
int be_bk_file_digest(const unsigned char *header, size_t header_len,
		      const unsigned char records_sha[BE_BK_DIGEST_LEN],
		      const unsigned char *trailer,
		      unsigned char out[BE_BK_DIGEST_LEN]);

#endif /* BACKEND_BKFILE_H */
