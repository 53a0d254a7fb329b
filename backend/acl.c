/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Refusals by Redis's ACL (acl.h): recognised by their error code and
 * reported once per command, in one line naming the command and quoting
 * Redis's reason.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "acl.h"

/* More different refused commands than we send is impossible. */
#define ACL_SEEN_MAX 64

/*
 * Redis 7's text for a command, key or channel a script may not use (no
 * NOPERM code): "... can't run this command", "... can't access ...".
 */
#define SCRIPT_DENIAL "ERR The user executing the script can't "

static pthread_mutex_t acl_lock = PTHREAD_MUTEX_INITIALIZER;
static be_acl_reporter_fn acl_reporter;
static const char *acl_seen[ACL_SEEN_MAX];
static size_t acl_nseen;

void be_acl_set_reporter(be_acl_reporter_fn fn)
{
	pthread_mutex_lock(&acl_lock);
	acl_reporter = fn;
	pthread_mutex_unlock(&acl_lock);
}

bool be_acl_is_denial(const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ERROR)
		return false;
	return (r->len >= 6 && strncmp(r->str, "NOPERM", 6) == 0 &&
		(r->len == 6 || r->str[6] == ' ')) ||
	       strstr(r->str, SCRIPT_DENIAL) != NULL;
}

/* Whether 'cmd' was reported already; records it if not. */
static bool seen_before(const char *cmd)
{
	size_t i;

	for (i = 0; i < acl_nseen; i++)
		if (strcmp(acl_seen[i], cmd) == 0)
			return true;
	if (acl_nseen < ACL_SEEN_MAX)
		acl_seen[acl_nseen++] = cmd;
	return false;
}

int be_acl_denied(const char *cmd, const redisReply *r)
{
	char msg[768];
	int len;

	pthread_mutex_lock(&acl_lock);
	if (acl_reporter && !seen_before(cmd)) {
		len = r && r->type == REDIS_REPLY_ERROR ? (int)r->len : 0;
		/* Redis's reason stays on our one line. */
		snprintf(msg, sizeof(msg),
			 "the redis user may not run %s: redis says '%.*s'",
			 cmd, len > 300 ? 300 : len, len ? r->str : "");
		for (char *p = msg; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		acl_reporter(msg);
	}
	pthread_mutex_unlock(&acl_lock);
	return -EPERM;
}
