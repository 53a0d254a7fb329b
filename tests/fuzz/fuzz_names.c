/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the file name rules and the name <-> key mapping
 * (backend/layout.c) with the names PHP, Flask-Session/cachelib and
 * Django make, and hostile ones, in both layouts.  The first byte picks
 * the layout and the prefix, the rest is the name.  A session name must
 * map to a key that maps back to it (and its meta key back to it too); an
 * invalid name holds nothing the rules forbid; a key of any bytes SCAN may
 * return maps to a session name or to nothing.
 */
#include "fuzz.h"
#include "layout.h"

static const char *const prefixes[] = { "",
					"app1:", "PHPREDIS_SESSION:", "sess:" };

static bool forbidden(const char *name)
{
	return strpbrk(name, "{}/\n") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct be_keyspace ks = { 0 };
	enum be_name_kind kind;
	char *name, *key, *mkey, *back, *back2;
	bool is_meta;

	if (!size)
		return 0;
	ks.layout = data[0] & 1 ? BE_LAYOUT_PHPREDIS : BE_LAYOUT_PLAIN;
	ks.prefix = prefixes[(data[0] >> 1) % 4];
	name = fuzz_str(data + 1, size - 1);
	kind = be_name_classify(&ks, name);
	if (kind != BE_NAME_INVALID) {
		FUZZ_CHECK(name[0] && strlen(name) <= BE_NAME_MAX);
		FUZZ_CHECK(!forbidden(name));
		FUZZ_CHECK(strcmp(name, ".") && strcmp(name, ".."));
	}
	if (be_name_is_cachelib_entry(name))
		FUZZ_CHECK(kind == BE_NAME_SESSION || ks.layout);
	if (kind == BE_NAME_SESSION) {
		key = be_key_value(&ks, name);
		FUZZ_CHECK(key);
		back = be_key_to_name(&ks, key, strlen(key), &is_meta);
		FUZZ_CHECK(back && !strcmp(back, name) && !is_meta);
		mkey = be_key_meta(&ks, key);
		FUZZ_CHECK(mkey);
		back2 = be_key_to_name(&ks, mkey, strlen(mkey), &is_meta);
		FUZZ_CHECK(back2 && !strcmp(back2, name) && is_meta);
		/* The meta key's hash tag puts it in its value key's slot. */
		FUZZ_CHECK(be_key_slot(key, strlen(key)) ==
			   be_key_slot(mkey, strlen(mkey)));
		free(back2);
		free(mkey);
		free(back);
		free(key);
	}
	/* The same bytes as a key SCAN returned (NUL allowed). */
	back = be_key_to_name(&ks, (const char *)data + 1, size - 1, &is_meta);
	if (back)
		FUZZ_CHECK(be_name_classify(&ks, back) == BE_NAME_SESSION);
	free(back);
	free(name);
	return 0;
}
