/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listing a prefix (be_store_list()): SCAN of every key under it, on
 * every master of a cluster, each name reported once, a tombstone only
 * once the whole scan is done.  On a cluster also the count of cachelib
 * entries (be_store_count_scan()), which has no names index there.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "acl.h"
#include "conn.h"
#include "store.h"
#include "store_i.h"
#include "util.h"

#define SCAN_COUNT "1000"

/*
 * The names seen by one listing: an open-addressing hash table of pointers
 * into an arena of records "<flags><name>\0", so that a million names cost
 * about two pointers and their own bytes each.
 */
#define SEEN_VALUE	   (1 << 0)
#define SEEN_META	   (1 << 1)
#define ARENA_CHUNK_SIZE   (256 * 1024)
#define NAME_SET_MIN_SLOTS 1024

struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	size_t size;
	char data[];
};

struct name_set {
	char **slots; /* NULL, or a name in the arena; its flags precede it */
	size_t nslots; /* a power of two */
	size_t count;
	struct arena_chunk *chunks;
};

static void name_set_release(struct name_set *set)
{
	struct arena_chunk *ch, *next;

	for (ch = set->chunks; ch; ch = next) {
		next = ch->next;
		free(ch);
	}
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

static char *arena_alloc(struct name_set *set, size_t size)
{
	struct arena_chunk *ch = set->chunks;
	size_t chunk_size;

	if (!ch || ch->size - ch->used < size) {
		chunk_size = size > ARENA_CHUNK_SIZE ? size : ARENA_CHUNK_SIZE;
		ch = malloc(sizeof(*ch) + chunk_size);
		if (!ch)
			return NULL;
		ch->next = set->chunks;
		ch->used = 0;
		ch->size = chunk_size;
		set->chunks = ch;
	}
	ch->used += size;
	return ch->data + ch->used - size;
}

static size_t name_set_find(char **slots, size_t nslots, const char *name)
{
	size_t i = (size_t)be_fnv1a64(name) & (nslots - 1);

	while (slots[i] && strcmp(slots[i], name) != 0)
		i = (i + 1) & (nslots - 1);
	return i;
}

static int name_set_grow(struct name_set *set)
{
	size_t nslots = set->nslots ? set->nslots * 2 : NAME_SET_MIN_SLOTS;
	char **slots = calloc(nslots, sizeof(*slots));
	size_t i;

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < set->nslots; i++)
		if (set->slots[i])
			slots[name_set_find(slots, nslots, set->slots[i])] =
				set->slots[i];
	free(set->slots);
	set->slots = slots;
	set->nslots = nslots;
	return 0;
}

/*
 * Returns the flags of 'name' in 'set', adding it with no flags when it is
 * new.  NULL on ENOMEM.
 */
static char *name_set_add(struct name_set *set, const char *name)
{
	size_t len = strlen(name);
	size_t i;
	char *rec;

	if ((set->count + 1) * 4 > set->nslots * 3 && name_set_grow(set))
		return NULL;
	i = name_set_find(set->slots, set->nslots, name);
	if (set->slots[i])
		return set->slots[i] - 1;
	rec = arena_alloc(set, len + 2);
	if (!rec)
		return NULL;
	rec[0] = 0;
	memcpy(rec + 1, name, len + 1);
	set->slots[i] = rec + 1;
	set->count++;
	return rec;
}

/* Returns a new SCAN pattern matching every key under 'prefix'. */
static char *scan_pattern_new(const char *prefix)
{
	char *pat = malloc(2 * strlen(prefix) + 2);
	char *p = pat;

	if (!pat)
		return NULL;
	for (; *prefix; prefix++) {
		if (strchr("*?[]\\", *prefix))
			*p++ = '\\';
		*p++ = *prefix;
	}
	*p++ = '*';
	*p = '\0';
	return pat;
}

/*
 * Handles one SCAN batch 'keys': reports new value keys as PRESENT and
 * marks meta keys.  0, the callback's result or -ENOMEM.
 */
static int list_batch(const struct be_store_config *sc, const redisReply *keys,
		      struct name_set *set, be_list_cb cb, void *arg)
{
	const redisReply *k;
	bool is_meta;
	char *name;
	char *flags;
	size_t i;
	int ret = 0;

	for (i = 0; i < keys->elements && !ret; i++) {
		k = keys->element[i];
		if (k->type != REDIS_REPLY_STRING)
			return -EPROTO;
		name = be_key_to_name(&sc->ks, k->str, (size_t)k->len,
				      &is_meta);
		if (!name)
			continue;
		flags = name_set_add(set, name);
		if (!flags) {
			ret = -ENOMEM;
		} else if (is_meta) {
			*flags |= SEEN_META;
		} else if (!(*flags & SEEN_VALUE)) {
			*flags |= SEEN_VALUE;
			ret = cb(name, BE_PRESENT, arg);
		}
		free(name);
	}
	return ret;
}

/* One SCAN call on master 'm': updates 'cursor' and handles the batch. */
static int list_scan(struct be_conn *c, unsigned int m,
		     const struct be_store_config *sc, char *cursor,
		     size_t cursor_size, const char *pattern,
		     struct name_set *set, be_list_cb cb, void *arg)
{
	const char *argv[] = { "SCAN",	cursor,	 "MATCH",
			       pattern, "COUNT", SCAN_COUNT };
	size_t lens[6];
	redisReply *r;
	size_t i;
	int ret;

	for (i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	ret = be_conn_command_at(c, m, &r, 6, argv, lens, 0);
	if (ret)
		return ret;
	if (be_acl_is_denial(r)) {
		ret = be_acl_denied("SCAN", r);
	} else if (r->type == REDIS_REPLY_ERROR) {
		ret = be_store_reply_errno(r);
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		   r->element[0]->type != REDIS_REPLY_STRING ||
		   (size_t)r->element[0]->len >= cursor_size ||
		   r->element[1]->type != REDIS_REPLY_ARRAY) {
		ret = -EPROTO;
	} else {
		memcpy(cursor, r->element[0]->str,
		       (size_t)r->element[0]->len + 1);
		ret = list_batch(sc, r->element[1], set, cb, arg);
	}
	freeReplyObject(r);
	return ret;
}

int be_store_list(struct be_conn *c, const struct be_store_config *sc,
		  be_list_cb cb, void *arg)
{
	struct name_set set = { 0 };
	char cursor[32];
	char *pattern;
	unsigned int m, nm;
	size_t i;
	int ret;

	/*
	 * On a cluster each master holds its own slots: every one is
	 * scanned.  A slot that moves during the listing may be missed or
	 * seen twice (the set drops the second); a failover in the middle
	 * (-ESTALE: a master less) fails the listing, as a cut would.
	 */
	ret = be_conn_masters(c, &nm);
	if (ret)
		return ret;
	pattern = scan_pattern_new(sc->ks.prefix ? sc->ks.prefix : "");
	if (!pattern)
		return -ENOMEM;
	for (m = 0; !ret && m < nm; m++) {
		strcpy(cursor, "0");
		do {
			ret = list_scan(c, m, sc, cursor, sizeof(cursor),
					pattern, &set, cb, arg);
		} while (!ret && strcmp(cursor, "0") != 0);
	}

	/* SCAN may return a key twice: only now is a tombstone certain. */
	for (i = 0; !ret && i < set.nslots; i++)
		if (set.slots[i] && set.slots[i][-1] == SEEN_META)
			ret = cb(set.slots[i], BE_TOMBSTONE, arg);
	name_set_release(&set);
	free(pattern);
	return ret;
}

/* be_store_count_scan()'s callback: counts the indexed names present. */
static int count_cb(const char *name, enum be_state state, void *arg)
{
	struct count_arg {
		const struct be_store_config *sc;
		long long n;
	} *ca = arg;

	if (state == BE_PRESENT && be_store_is_indexed(ca->sc, name))
		ca->n++;
	return 0;
}

int be_store_count_scan(struct be_conn *c, const struct be_store_config *sc,
			long long *n)
{
	struct count_arg {
		const struct be_store_config *sc;
		long long n;
	} ca = { sc, 0 };
	int ret;

	ret = be_store_list(c, sc, count_cb, &ca);
	if (ret == 0)
		*n = ca.n;
	return ret;
}
