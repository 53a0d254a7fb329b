/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mode's keys in Redis (fleet.h): markers, probe, fleet requests and
 * heartbeats.  Plain commands on the caller's connection; an ACL refusal
 * is reported once through acl.h and returned as -EPERM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "acl.h"
#include "conn.h"
#include "fleet.h"

#define FLEET_ARGS_MAX 6

/*
 * Sends the command 'argv' ('argc' NUL-terminated words) and checks the
 * reply: 0 with '*reply' (new) on success, else -errno with no reply.
 * 'what' names the command in an ACL refusal.
 */
static int fleet_cmd(struct be_conn *c, redisReply **reply, int argc,
		     const char **argv, const char *what)
{
	size_t lens[FLEET_ARGS_MAX];
	redisReply *r = NULL;
	int i, ret;

	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	ret = be_conn_command(c, &r, argc, argv, lens, 0);
	if (ret < 0)
		return ret;
	if (be_acl_is_denial(r))
		ret = be_acl_denied(what, r);
	else if (r->type == REDIS_REPLY_ERROR)
		ret = -EIO;
	if (ret < 0) {
		freeReplyObject(r);
		return ret;
	}
	*reply = r;
	return 0;
}

char *be_fleet_key(const char *prefix, const char *what, const char *host)
{
	char *key;
	int n;

	if (host)
		n = asprintf(&key, "%s{sessfs}:%s:%s", prefix, what, host);
	else
		n = asprintf(&key, "%s{sessfs}:%s", prefix, what);
	return n < 0 ? NULL : key;
}

int be_fleet_marker_set(struct be_conn *c, const char *key, int64_t ns)
{
	char val[32];
	const char *argv[3] = { "SET", key, val };
	redisReply *r;
	int ret;

	snprintf(val, sizeof(val), "%lld", (long long)ns);
	ret = fleet_cmd(c, &r, 3, argv, "SET (a fleet marker)");
	if (ret == 0)
		freeReplyObject(r);
	return ret;
}

int be_fleet_marker_get(struct be_conn *c, const char *key, int64_t *ns)
{
	const char *argv[2] = { "GET", key };
	redisReply *r;
	int ret;

	*ns = 0;
	ret = fleet_cmd(c, &r, 2, argv, "GET (a fleet marker)");
	if (ret < 0)
		return ret;
	if (r->type == REDIS_REPLY_STRING)
		*ns = strtoll(r->str, NULL, 10);
	freeReplyObject(r);
	return 0;
}

int be_fleet_probe(struct be_conn *c, const char *prefix, const char *host)
{
	char *key = be_fleet_key(prefix, "probe", host);
	const char *set[5] = { "SET", key, "probe", "PX", "10000" };
	const char *get[2] = { "GET", key };
	const char *del[2] = { "DEL", key };
	redisReply *r;
	int ret;

	if (!key)
		return -ENOMEM;
	ret = fleet_cmd(c, &r, 5, set, "SET (the probe of a mode change)");
	if (ret == 0) {
		freeReplyObject(r);
		ret = fleet_cmd(c, &r, 2, get,
				"GET (the probe of a mode change)");
	}
	if (ret == 0) {
		if (r->type != REDIS_REPLY_STRING ||
		    strcmp(r->str, "probe") != 0)
			ret = -EIO;
		freeReplyObject(r);
	}
	if (ret == 0) {
		ret = fleet_cmd(c, &r, 2, del,
				"DEL (the probe of a mode change)");
		if (ret == 0)
			freeReplyObject(r);
	}
	free(key);
	return ret;
}

int be_fleet_req_parse(const char *text, struct be_fleet_req *req)
{
	char mode[BE_FLEET_MODE_MAX], flags[16];
	long long version;

	memset(req, 0, sizeof(*req));
	if (sscanf(text, "%lld %15s %15s", &version, mode, flags) != 3 ||
	    version <= 0)
		return -EINVAL;
	if (strcmp(flags, "export") != 0 && strcmp(flags, "unmount") != 0 &&
	    strcmp(flags, "-") != 0)
		return -EINVAL;
	req->version = version;
	memcpy(req->mode, mode, sizeof(mode));
	req->unmount = strcmp(flags, "unmount") == 0;
	req->exporting = req->unmount || strcmp(flags, "export") == 0;
	return 0;
}

int be_fleet_req_get(struct be_conn *c, const char *prefix, const char *what,
		     struct be_fleet_req *req)
{
	char *key = be_fleet_key(prefix, "fleet", what);
	const char *argv[2] = { "GET", key };
	redisReply *r;
	int ret;

	memset(req, 0, sizeof(*req));
	if (!key)
		return -ENOMEM;
	ret = fleet_cmd(c, &r, 2, argv, "GET (the fleet's desired mode)");
	free(key);
	if (ret < 0)
		return ret;
	/* A request this version cannot read is no request. */
	if (r->type == REDIS_REPLY_STRING)
		be_fleet_req_parse(r->str, req);
	freeReplyObject(r);
	return 0;
}

/*
 * The highest version of any request of 'prefix' in '*version' (0 when
 * none): the next request takes one more.  Two operators who ask at the
 * same moment may take one version; the later SET wins, and every mount
 * follows the one it reads.
 */
static int req_version(struct be_conn *c, const char *prefix,
		       long long *version)
{
	static const char *const whats[] = { "desired", "check" };
	struct be_fleet_req req;
	size_t i;
	int ret;

	*version = 0;
	for (i = 0; i < 2; i++) {
		ret = be_fleet_req_get(c, prefix, whats[i], &req);
		if (ret < 0)
			return ret;
		if (req.version > *version)
			*version = req.version;
	}
	return 0;
}

int be_fleet_req_set(struct be_conn *c, const char *prefix, const char *what,
		     const char *mode, const char *flags, long long *version)
{
	char *key = be_fleet_key(prefix, "fleet", what);
	const char *set[3] = { "SET", key, NULL };
	char val[64];
	redisReply *r;
	int ret = -ENOMEM;

	if (!key)
		return ret;
	ret = req_version(c, prefix, version);
	if (ret < 0)
		goto out;
	++*version;
	snprintf(val, sizeof(val), "%lld %s %s", *version, mode, flags);
	set[2] = val;
	ret = fleet_cmd(c, &r, 3, set, "SET (the fleet's desired mode)");
	if (ret == 0)
		freeReplyObject(r);
out:
	free(key);
	return ret;
}

int be_fleet_heartbeat_put(struct be_conn *c, const char *prefix,
			   const char *host, const char *json, long ttl_ms)
{
	char *key = be_fleet_key(prefix, "fleet:hb", host);
	char *hosts = be_fleet_key(prefix, "fleet", "hosts");
	char ttl[32];
	const char *set[5] = { "SET", key, json, "PX", ttl };
	const char *hset[4] = { "HSET", hosts, host, json };
	redisReply *r;
	int ret = -ENOMEM;

	if (!key || !hosts)
		goto out;
	snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
	ret = fleet_cmd(c, &r, 5, set, "SET (a fleet heartbeat)");
	if (ret == 0) {
		freeReplyObject(r);
		ret = fleet_cmd(c, &r, 4, hset, "HSET (the fleet's hosts)");
	}
	if (ret == 0)
		freeReplyObject(r);
out:
	free(key);
	free(hosts);
	return ret;
}

static int cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct be_fleet_host *)a)->host,
		      ((const struct be_fleet_host *)b)->host);
}

/* The live heartbeat's remaining TTL of 'host' (-2 when none). */
static int hb_ttl(struct be_conn *c, const char *prefix, const char *host,
		  long long *ttl_ms)
{
	char *key = be_fleet_key(prefix, "fleet:hb", host);
	const char *pttl[2] = { "PTTL", key };
	redisReply *r;
	int ret;

	*ttl_ms = -2;
	if (!key)
		return -ENOMEM;
	ret = fleet_cmd(c, &r, 2, pttl, "PTTL (a fleet heartbeat)");
	free(key);
	if (ret < 0)
		return ret;
	if (r->type == REDIS_REPLY_INTEGER)
		*ttl_ms = r->integer;
	freeReplyObject(r);
	return 0;
}

int be_fleet_hosts(struct be_conn *c, const char *prefix,
		   struct be_fleet_host **hosts, size_t *n)
{
	char *key = be_fleet_key(prefix, "fleet", "hosts");
	const char *argv[2] = { "HGETALL", key };
	struct be_fleet_host *v;
	redisReply *r;
	size_t i, m;
	int ret;

	*hosts = NULL;
	*n = 0;
	if (!key)
		return -ENOMEM;
	ret = fleet_cmd(c, &r, 2, argv, "HGETALL (the fleet's hosts)");
	free(key);
	if (ret < 0)
		return ret;
	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
		freeReplyObject(r);
		return -EIO;
	}
	m = r->elements / 2;
	v = calloc(m + 1, sizeof(*v));
	for (i = 0; v && i < m; i++) {
		v[i].host = strdup(r->element[2 * i]->str);
		v[i].json = strdup(r->element[2 * i + 1]->str);
		if (!v[i].host || !v[i].json) {
			be_fleet_hosts_free(v, m);
			v = NULL;
		}
	}
	freeReplyObject(r);
	if (!v)
		return -ENOMEM;
	for (i = 0; i < m && ret == 0; i++)
		ret = hb_ttl(c, prefix, v[i].host, &v[i].ttl_ms);
	if (ret < 0) {
		be_fleet_hosts_free(v, m);
		return ret;
	}
	qsort(v, m, sizeof(*v), cmp_host);
	*hosts = v;
	*n = m;
	return 0;
}

void be_fleet_hosts_free(struct be_fleet_host *hosts, size_t n)
{
	size_t i;

	for (i = 0; hosts && i < n; i++) {
		free(hosts[i].host);
		free(hosts[i].json);
	}
	free(hosts);
}

int be_fleet_forget(struct be_conn *c, const char *prefix, const char *host)
{
	char *key = be_fleet_key(prefix, "fleet:hb", host);
	char *hosts = be_fleet_key(prefix, "fleet", "hosts");
	const char *hdel[3] = { "HDEL", hosts, host };
	const char *del[2] = { "DEL", key };
	redisReply *r;
	int ret = -ENOMEM;

	if (!key || !hosts)
		goto out;
	ret = fleet_cmd(c, &r, 3, hdel, "HDEL (the fleet's hosts)");
	if (ret == 0) {
		freeReplyObject(r);
		ret = fleet_cmd(c, &r, 2, del, "DEL (a fleet heartbeat)");
	}
	if (ret == 0)
		freeReplyObject(r);
out:
	free(key);
	free(hosts);
	return ret;
}
