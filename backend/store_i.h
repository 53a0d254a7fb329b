/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What store.c, store_list.c and store_check.c share; not for callers. */
#ifndef BACKEND_STORE_I_H
#define BACKEND_STORE_I_H

struct redisReply;

/*
 * Maps an error reply to -errno: OOM -ENOSPC, NOPERM -EPERM, NOAUTH and
 * WRONGPASS -EACCES, READONLY -EROFS, anything else -EIO.  Errors raised
 * inside a script start with the failing command's error code, as the
 * command's own would.
 */
int be_store_reply_errno(const struct redisReply *r);

#endif
