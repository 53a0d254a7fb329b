/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Refusals by Redis's ACL: a reply that says the Redis user may not run a
 * command, touch a key or use a channel (NOPERM, or the error a script
 * gets when a command inside it is denied).  The backend reports each
 * refused command once, in one line that names it, through a reporter the
 * program sets (the daemon logs it, sessfs-migrate prints it), so that a
 * user missing a permission is told which one instead of seeing a bare
 * error per request.  A refusal is -EPERM (Redis answers, it refuses: not
 * an outage), where a refused password is -EACCES (conn.h).
 * docs/RUNBOOK.md gives the ACL sessfs needs.
 *
 * Call order: be_acl_set_reporter() once at start, before any thread
 * runs; be_acl_is_denial() and be_acl_denied() from any thread.
 */
#ifndef BACKEND_ACL_H
#define BACKEND_ACL_H

#include <stdbool.h>

struct redisReply;

/** Called with one line (no newline) for each newly refused command. */
typedef void (*be_acl_reporter_fn)(const char *msg);

/** Sets the reporter; NULL (the default) reports nothing. */
void be_acl_set_reporter(be_acl_reporter_fn fn);

/**
 * Whether 'r' is an error reply of the ACL: "NOPERM ...", or "ERR The
 * user executing the script can't run this command ..." (a command
 * inside a script).
 */
bool be_acl_is_denial(const struct redisReply *r);

/**
 * Reports the denial 'r' of 'cmd' (a static string naming what we sent,
 * e.g. "EVALSHA of the put script (HMGET, SET, ...)") through the
 * reporter, unless 'cmd' was reported before.  Returns -EPERM.
 * Thread-safe.
 */
int be_acl_denied(const char *cmd, const struct redisReply *r);

#endif /* BACKEND_ACL_H */
