/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A locked set of names (see nameset.h): chained buckets so that removal
 * is simple, FNV-1a hashing, doubling at a load factor of one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nameset.h"

struct fs_name_node {
	struct fs_name_node *next;
	uint64_t hash;
	char name[];
};

void fs_nameset_init(struct fs_nameset *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->max = max;
}

void fs_nameset_release(struct fs_nameset *s)
{
	size_t i;

	for (i = 0; i < s->nbuckets; i++) {
		struct fs_name_node *n = s->buckets[i], *next;

		for (; n; n = next) {
			next = n->next;
			free(n);
		}
	}
	free(s->buckets);
	pthread_mutex_destroy(&s->lock);
	s->buckets = NULL;
	s->nbuckets = 0;
	s->count = 0;
}

static struct fs_name_node **find(struct fs_nameset *s, const char *name,
				  uint64_t h)
{
	struct fs_name_node **p;

	if (!s->nbuckets)
		return NULL;
	for (p = &s->buckets[h & (s->nbuckets - 1)]; *p; p = &(*p)->next)
		if ((*p)->hash == h && strcmp((*p)->name, name) == 0)
			return p;
	return NULL;
}

static int grow(struct fs_nameset *s)
{
	size_t n = s->nbuckets ? s->nbuckets * 2 : 64, i;
	struct fs_name_node **b = calloc(n, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (i = 0; i < s->nbuckets; i++) {
		struct fs_name_node *node = s->buckets[i], *next;

		for (; node; node = next) {
			next = node->next;
			node->next = b[node->hash & (n - 1)];
			b[node->hash & (n - 1)] = node;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
	return 0;
}

int fs_nameset_add(struct fs_nameset *s, const char *name)
{
	uint64_t h = be_fnv1a64(name);
	struct fs_name_node *node;
	size_t len = strlen(name);
	int ret = 1;

	pthread_mutex_lock(&s->lock);
	if (find(s, name, h)) {
		ret = 0;
		goto out;
	}
	if (s->max && s->count >= s->max) {
		ret = -ENOSPC;
		goto out;
	}
	if (s->count >= s->nbuckets && grow(s) < 0 && !s->nbuckets) {
		ret = -ENOMEM;
		goto out;
	}
	node = malloc(sizeof(*node) + len + 1);
	if (!node) {
		ret = -ENOMEM;
		goto out;
	}
	node->hash = h;
	memcpy(node->name, name, len + 1);
	node->next = s->buckets[h & (s->nbuckets - 1)];
	s->buckets[h & (s->nbuckets - 1)] = node;
	s->count++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

bool fs_nameset_remove(struct fs_nameset *s, const char *name)
{
	struct fs_name_node **p, *node;

	pthread_mutex_lock(&s->lock);
	p = find(s, name, be_fnv1a64(name));
	node = p ? *p : NULL;
	if (node) {
		*p = node->next;
		s->count--;
	}
	pthread_mutex_unlock(&s->lock);
	free(node);
	return node != NULL;
}

bool fs_nameset_has(struct fs_nameset *s, const char *name)
{
	bool has;

	pthread_mutex_lock(&s->lock);
	has = s->count && find(s, name, be_fnv1a64(name)) != NULL;
	pthread_mutex_unlock(&s->lock);
	return has;
}

bool fs_nameset_any(struct fs_nameset *s)
{
	return atomic_load_explicit(&s->count, memory_order_relaxed) != 0;
}

size_t fs_nameset_count(struct fs_nameset *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->count;
	pthread_mutex_unlock(&s->lock);
	return n;
}
