/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The transport's RESP reader: hiredis's parser with reply objects of our
 * own that bound arrays; see resp.h.  The objects are
 * struct redisReply allocated with malloc(), as hiredis's own, so that
 * freeReplyObject() frees them.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "resp.h"

/* What a reader keeps beside hiredis's state (its privdata). */
struct resp_state {
	bool refused; /* an array over BE_RESP_MAX_ELEMENTS was refused */
};

/*
 * A new reply of 'type' for 'task', linked into its parent array.  NULL
 * on ENOMEM (the reader then fails with REDIS_ERR_OOM).
 */
static redisReply *reply_new(const redisReadTask *task, int type)
{
	redisReply *r = calloc(1, sizeof(*r));
	redisReply *parent;

	if (!r)
		return NULL;
	r->type = type;
	if (task->parent) {
		parent = task->parent->obj;
		parent->element[task->idx] = r;
	}
	return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
	char *copy = malloc(len + 1);
	redisReply *r;

	if (!copy)
		return NULL;
	r = reply_new(task, task->type);
	if (!r) {
		free(copy);
		return NULL;
	}
	memcpy(copy, str, len);
	copy[len] = '\0';
	r->str = copy;
	r->len = len;
	return r;
}

/*
 * An array of 'elements': refused (NULL, with 'refused' set) when it is
 * longer than BE_RESP_MAX_ELEMENTS or negative (hiredis makes "*-1" a nil
 * and passes any other count on).
 */
static void *create_array(const redisReadTask *task, int elements)
{
	struct resp_state *st = task->privdata;
	redisReply **element = NULL, *r;

	if (elements < 0 || elements > BE_RESP_MAX_ELEMENTS) {
		st->refused = true;
		return NULL;
	}
	if (elements > 0) {
		element = calloc((size_t)elements, sizeof(*element));
		if (!element)
			return NULL;
	}
	r = reply_new(task, REDIS_REPLY_ARRAY);
	if (!r) {
		free(element);
		return NULL;
	}
	r->element = element;
	r->elements = (size_t)elements;
	return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
	redisReply *r = reply_new(task, REDIS_REPLY_INTEGER);

	if (r)
		r->integer = value;
	return r;
}

static void *create_nil(const redisReadTask *task)
{
	return reply_new(task, REDIS_REPLY_NIL);
}

static redisReplyObjectFunctions functions = {
	.createString = create_string,
	.createArray = create_array,
	.createInteger = create_integer,
	.createNil = create_nil,
	.freeObject = freeReplyObject,
};

redisReader *be_resp_reader_new(void)
{
	struct resp_state *st = calloc(1, sizeof(*st));
	redisReader *r;

	if (!st)
		return NULL;
	r = redisReaderCreateWithFunctions(&functions);
	if (!r) {
		free(st);
		return NULL;
	}
	r->privdata = st;
	return r;
}

void be_resp_reader_free(redisReader *r)
{
	if (!r)
		return;
	free(r->privdata);
	redisReaderFree(r);
}

bool be_resp_refused(const redisReader *r)
{
	const struct resp_state *st = r->privdata;

	return st->refused;
}
