/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What is asked of the server before mounting (be_store_check_server():
 * reachable, and a maxmemory-policy that never evicts a session; on a
 * cluster, of every master, and a cluster_state of ok), and
 * the host id the write scripts record (be_host_id_default()).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
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

#define MACHINE_ID_CHARS 8

/*
 * Sends a command of NUL-terminated words to master 'm' (conn.h); 'argv'
 * ends with NULL.
 */
static int command_words(struct be_conn *c, unsigned int m, redisReply **reply,
			 const char **argv)
{
	size_t lens[8];
	int argc;

	for (argc = 0; argv[argc]; argc++) {
		assert(argc < 8);
		lens[argc] = strlen(argv[argc]);
	}
	return be_conn_command_at(c, m, reply, argc, argv, lens, 0);
}

/* Copies the value of 'field:' from an INFO reply 'info' into 'out'. */
static bool info_field(const char *info, const char *field, char *out,
		       size_t size)
{
	size_t flen = strlen(field);
	const char *p = info;
	size_t len;

	while (p && *p) {
		if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
			p += flen + 1;
			len = strcspn(p, "\r\n");
			if (len >= size)
				return false;
			memcpy(out, p, len);
			out[len] = '\0';
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/*
 * Reads the maxmemory-policy into 'policy': 1 when found, 0 when neither
 * CONFIG GET nor INFO tells it ('*denied' then says whether the ACL
 * refused INFO), or -errno of the transport.
 */
static int read_policy(struct be_conn *c, unsigned int m, char *policy,
		       size_t size, bool *denied)
{
	const char *config[] = { "CONFIG", "GET", "maxmemory-policy", NULL };
	const char *info[] = { "INFO", "memory", NULL };
	const redisReply *v;
	redisReply *r;
	int ret;

	ret = command_words(c, m, &r, config);
	if (ret)
		return ret;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		v = r->element[1];
		if (v->type == REDIS_REPLY_STRING && (size_t)v->len < size) {
			memcpy(policy, v->str, (size_t)v->len + 1);
			freeReplyObject(r);
			return 1;
		}
	}
	freeReplyObject(r);

	/*
	 * CONFIG may be renamed or denied (CONFIG GET also reads the
	 * passwords: docs/RUNBOOK.md grants INFO only); INFO still tells.
	 */
	ret = command_words(c, m, &r, info);
	if (ret)
		return ret;
	*denied = be_acl_is_denial(r);
	ret = r->type == REDIS_REPLY_STRING &&
	      info_field(r->str, "maxmemory_policy", policy, size);
	freeReplyObject(r);
	return ret;
}

/*
 * be_store_check_server() for master 'm' of 'c', named 'who' in messages
 * ("redis", or "redis master HOST:PORT" on a cluster).
 */
static int check_one(struct be_conn *c, unsigned int m, const char *who,
		     bool allow_evicting, char *err, size_t errlen)
{
	const char *ping[] = { "PING", NULL };
	const char *cinfo[] = { "CLUSTER", "INFO", NULL };
	bool denied = false;
	char policy[64], state[32];
	redisReply *r;
	int ret;

	ret = command_words(c, m, &r, ping);
	if (ret) {
		be_fail(err, errlen, 0, "cannot reach %s: %s", who,
			*be_conn_errstr(c) ? be_conn_errstr(c)
					   : strerror(-ret));
		return ret;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		be_fail(err, errlen, 0, "%s refused PING: %s", who, r->str);
		ret = be_store_reply_errno(r);
		freeReplyObject(r);
		return ret;
	}
	freeReplyObject(r);

	if (be_conn_is_cluster(c)) {
		ret = command_words(c, m, &r, cinfo);
		if (ret) {
			be_fail(err, errlen, 0, "cannot reach %s: %s", who,
				be_conn_errstr(c));
			return ret;
		}
		if (r->type != REDIS_REPLY_STRING ||
		    !info_field(r->str, "cluster_state", state,
				sizeof(state)) ||
		    strcmp(state, "ok") != 0) {
			be_fail(err, errlen, 0,
				"%s: cluster_state is not ok (%s): every slot must be served",
				who,
				r->type == REDIS_REPLY_ERROR ? r->str : state);
			freeReplyObject(r);
			return -EAGAIN;
		}
		freeReplyObject(r);
	}

	ret = read_policy(c, m, policy, sizeof(policy), &denied);
	if (ret < 0) {
		be_fail(err, errlen, 0, "cannot read %s maxmemory-policy: %s",
			who,
			*be_conn_errstr(c) ? be_conn_errstr(c)
					   : strerror(-ret));
		return ret;
	}
	if (ret == 0 && denied && allow_evicting) {
		be_fail(err, errlen, 0,
			"cannot check redis maxmemory-policy: the redis user may not run CONFIG GET or INFO (NOPERM); going on as -o allow_evicting_redis says: make sure it is noeviction");
		return 0;
	}
	if (allow_evicting)
		return 0;
	if (ret == 0 && denied) {
		be_fail(err, errlen, 0,
			"cannot check redis maxmemory-policy: the redis user may not run CONFIG GET or INFO (NOPERM); grant it +info (docs/RUNBOOK.md), or make sure the policy is noeviction and pass -o allow_evicting_redis");
		return -EPERM;
	}
	if (ret == 0) {
		be_fail(err, errlen, 0,
			"cannot read redis maxmemory-policy (CONFIG GET and INFO refused): make sure it is noeviction and pass -o allow_evicting_redis");
		return -EPERM;
	}
	if (strncmp(policy, "allkeys-", 8) == 0 ||
	    strncmp(policy, "volatile-", 9) == 0) {
		be_fail(err, errlen, 0,
			"%s maxmemory-policy is '%s': it would evict sessions; set noeviction or pass -o allow_evicting_redis",
			who, policy);
		return -EPERM;
	}
	return 0;
}

int be_store_check_server(struct be_conn *c, bool allow_evicting, char *err,
			  size_t errlen)
{
	char where[300], who[320];
	unsigned int m, nm;
	int ret;

	be_fail(err, errlen, 0, "%s", "");
	ret = be_conn_masters(c, &nm);
	if (ret) {
		be_fail(err, errlen, 0, "cannot reach redis: %s",
			*be_conn_errstr(c) ? be_conn_errstr(c)
					   : strerror(-ret));
		return ret;
	}
	for (m = 0; m < nm; m++) {
		snprintf(who, sizeof(who), "redis");
		if (be_conn_is_cluster(c)) {
			/* Only for the name: where master m is. */
			be_conn_pipeline_at(c, m, NULL, 0, NULL, 0, where,
					    sizeof(where));
			snprintf(who, sizeof(who), "redis master %s", where);
		}
		ret = check_one(c, m, who, allow_evicting, err, errlen);
		/* A warning (allowed, not checked) goes on to the others. */
		if (ret)
			return ret;
	}
	return 0;
}

/* Reads the first MACHINE_ID_CHARS hex digits of /etc/machine-id into 'id'. */
static bool machine_id(char id[MACHINE_ID_CHARS + 1])
{
	char line[64];
	FILE *f;
	size_t i;
	bool ok;

	f = fopen("/etc/machine-id", "re");
	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	for (i = 0; ok && i < MACHINE_ID_CHARS; i++)
		ok = strchr("0123456789abcdef", line[i]) && line[i];
	if (ok) {
		memcpy(id, line, MACHINE_ID_CHARS);
		id[MACHINE_ID_CHARS] = '\0';
	}
	return ok;
}

char *be_host_id_default(void)
{
	/* The id must fit be_meta.host with the machine-id part. */
	char host[sizeof(((struct be_meta *)0)->host) - MACHINE_ID_CHARS - 1];
	char mid[MACHINE_ID_CHARS + 1];
	char *id;

	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	if (!machine_id(mid))
		return strdup(host);
	if (asprintf(&id, "%s-%s", host, mid) < 0)
		return NULL;
	return id;
}
