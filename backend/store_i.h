/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What store.c, store_list.c and store_check.c share; not for callers. */
#ifndef BACKEND_STORE_I_H
#define BACKEND_STORE_I_H

struct redisReply;
struct be_conn;
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

#endif
