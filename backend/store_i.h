/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What store.c, store_copy.c, store_list.c and store_check.c share; not
 * for callers.
 */
#ifndef BACKEND_STORE_I_H
#define BACKEND_STORE_I_H

struct redisReply;
struct be_cmd;
struct be_conn;
struct be_put_item;
struct be_store_config;

/*
 * Maps an error reply to -errno: OOM -ENOSPC, NOPERM -EPERM, NOAUTH and
 * WRONGPASS -EACCES, READONLY -EROFS, anything else -EIO.  Errors raised
 * inside a script start with the failing command's error code, as the
 * command's own would.
 */
int be_store_reply_errno(const struct redisReply *r);

/**
 * be_store_count() on a cluster, where no names index is kept: the
 * indexed names (be_store_is_indexed()) whose value key exists, by a SCAN
 * of every master: O(keys under the prefix).  0 or -errno.
 */
int be_store_count_scan(struct be_conn *c, const struct be_store_config *sc,
			long long *n);

/*
 * One put script call (store.c) for a pipeline of store_copy.c: exactly
 * what be_store_put() sends for an item, its write sequence taken when it
 * is made.
 */
struct be_put_call;

/**
 * Returns a new call for 'it' ('sc' and 'it' stay borrowed and must
 * outlive it), or NULL with '*err' set: -EINVAL (no usable host id, or not
 * a session name) or -ENOMEM.
 */
struct be_put_call *be_store_put_call_new(const struct be_store_config *sc,
					  const struct be_put_item *it,
					  int *err);

/** Points 'cmd' at the arguments of 'pc' (borrowed from it). */
void be_store_put_call_cmd(struct be_put_call *pc, struct be_cmd *cmd);

/**
 * The result of item 'it' from its call's reply 'r': 0, -EEXIST, or
 * -errno as be_store_put().  A NOSCRIPT reply (the script cache flushed)
 * runs be_store_put() on 'c' for the item instead.
 */
int be_store_put_call_result(struct be_conn *c,
			     const struct be_store_config *sc,
			     const struct be_put_item *it,
			     const struct redisReply *r);

/** Frees 'pc'; NULL is allowed. */
void be_store_put_call_free(struct be_put_call *pc);

/*
 * Tests only: when set, be_store_put_many() calls it with 'arg' between
 * a transaction's check and its write (store_copy.c), where a concurrent
 * writer must make the write abort.  Set before any thread puts.
 */
typedef void (*be_put_many_hook_fn)(void *arg);
void be_store_put_many_set_hook(be_put_many_hook_fn fn, void *arg);

#endif
