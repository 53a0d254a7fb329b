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
	size_t max_bulk; /* longest bulk string taken */
};

/*
 * What a bulk string's header and CRLFs add to its length: '$', 20
 * digits at most (a sign and 19 for 2^63), CRLF, the data's CRLF.
 */
#define BULK_FRAMING 32

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
	st->max_bulk = BE_RESP_MAX_BULK;
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

void be_resp_set_max_bulk(redisReader *r, size_t max_bulk)
{
	struct resp_state *st = r->privdata;

	st->max_bulk = max_bulk;
}

/*
 * hiredis 0.14's reader, between two calls of redisReaderGetReply() that
 * gave nothing: r->rstack[r->ridx] is the item it waits for; for a bulk
 * string its type is REDIS_REPLY_STRING and r->buf + r->pos is just past
 * the '$', at the length (hiredis parses it again on every call, so
 * nothing of it is consumed until the whole string is there).
 */
bool be_resp_check_pending(const redisReader *r)
{
	const struct resp_state *st = r->privdata;
	size_t avail = r->len - r->pos, i;
	const char *p = r->buf + r->pos;
	unsigned long long len = 0;

	/* Whatever the item, no more buffered than the longest one takes. */
	if (avail > st->max_bulk + BULK_FRAMING)
		return true;
	if (r->ridx < 0 || r->rstack[r->ridx].type != REDIS_REPLY_STRING)
		return false;
	/* "-1" is nil, other negatives hiredis refuses itself. */
	if (avail && p[0] == '-')
		return false;
	/* The digits so far, the CRLF maybe not yet there. */
	for (i = 0; i < avail && p[i] >= '0' && p[i] <= '9'; i++) {
		len = len * 10 + (unsigned long long)(p[i] - '0');
		if (len > st->max_bulk)
			return true;
	}
	return false;
}
