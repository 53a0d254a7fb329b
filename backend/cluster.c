/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis Cluster (see cluster.h): the shared slot map, its parsers, and
 * the router that cuts a pipeline into units, sends each to its slot's
 * master and follows MOVED and ASK within the call's budget.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "conn.h"
#include "conn_i.h"
#include "layout.h"
#include "track.h"
#include "util.h"

#define NSEC_PER_SEC	 1000000000LL
#define NSEC_PER_MSEC	 1000000LL
#define BACKOFF_FIRST_NS (10 * NSEC_PER_MSEC)
#define BACKOFF_MAX_NS	 (200 * NSEC_PER_MSEC)
/* A refresh this recent serves a thread that asks for another. */
#define REFRESH_FRESH_NS (20 * NSEC_PER_MSEC)
/* Redirects in a row without progress before we back off. */
#define REDIRECTS_MAX 16
#define ERRSTR_MAX    256
#define SEEDS_MAX     64

/* ----------------------------------------------------------------- pure */

static bool int_reply(const redisReply *r, long long lo, long long hi,
		      long long *v)
{
	if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < lo ||
	    r->integer > hi)
		return false;
	*v = r->integer;
	return true;
}

/* Index of 'host':'port' in 'map', added if new; -ENOSPC when full. */
static int map_node(struct be_slot_map *map, const char *host, int port)
{
	unsigned int i;

	for (i = 0; i < map->nnodes; i++)
		if (map->nodes[i].port == port &&
		    !strcmp(map->nodes[i].host, host))
			return (int)i;
	if (map->nnodes == BE_CLUSTER_NODES_MAX)
		return -ENOSPC;
	snprintf(map->nodes[i].host, sizeof(map->nodes[i].host), "%s", host);
	map->nodes[i].port = port;
	map->nnodes++;
	return (int)i;
}

int be_cluster_slots_parse(const redisReply *r, const char *asked,
			   struct be_slot_map *map)
{
	const redisReply *range, *addr, *h;
	char host[BE_CLUSTER_HOST_MAX];
	long long lo, hi, port;
	size_t i;
	int node, served = 0;
	long long s;

	map->nnodes = 0;
	for (i = 0; i < BE_CLUSTER_SLOTS; i++)
		map->slot[i] = BE_SLOT_NONE;
	if (!r || r->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	for (i = 0; i < r->elements; i++) {
		range = r->element[i];
		if (!range || range->type != REDIS_REPLY_ARRAY ||
		    range->elements < 3)
			return -EPROTO;
		if (!int_reply(range->element[0], 0, BE_CLUSTER_SLOTS - 1,
			       &lo) ||
		    !int_reply(range->element[1], lo, BE_CLUSTER_SLOTS - 1,
			       &hi))
			return -EPROTO;
		addr = range->element[2];
		if (!addr || addr->type != REDIS_REPLY_ARRAY ||
		    addr->elements < 2)
			return -EPROTO;
		h = addr->element[0];
		if (!h || (h->type != REDIS_REPLY_STRING &&
			   h->type != REDIS_REPLY_NIL))
			return -EPROTO;
		if (!int_reply(addr->element[1], 1, 65535, &port))
			return -EPROTO;
		if (h->type == REDIS_REPLY_NIL || h->len == 0 ||
		    (h->len == 1 && h->str[0] == '?')) {
			if (!asked || strlen(asked) >= sizeof(host))
				return -EPROTO;
			snprintf(host, sizeof(host), "%s", asked);
		} else {
			if (h->len >= sizeof(host) || memchr(h->str, 0, h->len))
				return -EPROTO;
			memcpy(host, h->str, h->len);
			host[h->len] = '\0';
		}
		node = map_node(map, host, (int)port);
		if (node < 0)
			return node;
		for (s = lo; s <= hi; s++) {
			if (map->slot[s] == BE_SLOT_NONE)
				served++;
			map->slot[s] = (uint16_t)node;
		}
	}
	return served;
}

enum be_redirect be_redirect_parse(const char *s, size_t len,
				   unsigned int *slot, char *host,
				   size_t hostlen, int *port)
{
	enum be_redirect kind;
	const char *p, *end = s + len, *colon, *q;
	unsigned long v;
	size_t hlen;

	if (len > 5 && !memcmp(s, "MOVED ", 6)) {
		kind = BE_REDIRECT_MOVED;
		p = s + 6;
	} else if (len > 3 && !memcmp(s, "ASK ", 4)) {
		kind = BE_REDIRECT_ASK;
		p = s + 4;
	} else {
		return BE_REDIRECT_NONE;
	}
	for (v = 0, q = p; q < end && *q >= '0' && *q <= '9' && q - p < 6; q++)
		v = v * 10 + (unsigned long)(*q - '0');
	if (q == p || q == end || *q != ' ' || v >= BE_CLUSTER_SLOTS)
		return BE_REDIRECT_NONE;
	*slot = (unsigned int)v;
	p = q + 1;
	for (colon = NULL, q = p; q < end; q++) {
		if (*q == ':')
			colon = q;
		else if (*q == ' ' || *q == '\0' || *q == '\r' || *q == '\n')
			return BE_REDIRECT_NONE;
	}
	if (!colon)
		return BE_REDIRECT_NONE;
	hlen = (size_t)(colon - p);
	if (hlen >= hostlen)
		return BE_REDIRECT_NONE;
	for (v = 0, q = colon + 1;
	     q < end && *q >= '0' && *q <= '9' && q - colon <= 5; q++)
		v = v * 10 + (unsigned long)(*q - '0');
	if (q == colon + 1 || q != end || v == 0 || v > 65535)
		return BE_REDIRECT_NONE;
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	*port = (int)v;
	return kind;
}

static bool arg_is(const struct be_cmd *cmd, int i, const char *word)
{
	size_t len = cmd->argvlen ? cmd->argvlen[i] : strlen(cmd->argv[i]);

	return len == strlen(word) && !strncasecmp(cmd->argv[i], word, len);
}

static size_t arg_len(const struct be_cmd *cmd, int i)
{
	return cmd->argvlen ? cmd->argvlen[i] : strlen(cmd->argv[i]);
}

bool be_cmd_first_key(const struct be_cmd *cmd, const char **key, size_t *len)
{
	static const char *const keyless[] = {
		"MULTI",    "EXEC",	"DISCARD",   "WAIT",	  "PING",
		"INFO",	    "CONFIG",	"SCRIPT",    "CLUSTER",	  "CLIENT",
		"SCAN",	    "ROLE",	"AUTH",	     "SELECT",	  "ASKING",
		"READONLY", "HELLO",	"TIME",	     "DBSIZE",	  "FLUSHDB",
		"FLUSHALL", "FUNCTION", "COMMAND",   "ACL",	  "SLOWLOG",
		"LATENCY",  "MONITOR",	"SUBSCRIBE", "READWRITE", "ECHO",
	};
	static const char *const evals[] = {
		"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"
	};
	size_t i, nk;
	int k = 1;
	char buf[24];

	if (cmd->argc < 1)
		return false;
	for (i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
		if (arg_is(cmd, 0, keyless[i]))
			return false;
	for (i = 0; i < sizeof(evals) / sizeof(evals[0]); i++) {
		if (!arg_is(cmd, 0, evals[i]))
			continue;
		if (cmd->argc < 4 || arg_len(cmd, 2) >= sizeof(buf))
			return false;
		memcpy(buf, cmd->argv[2], arg_len(cmd, 2));
		buf[arg_len(cmd, 2)] = '\0';
		nk = strtoul(buf, NULL, 10);
		if (nk == 0)
			return false;
		k = 3;
		goto out;
	}
	if (arg_is(cmd, 0, "OBJECT") || arg_is(cmd, 0, "MEMORY"))
		k = 2;
out:
	if (cmd->argc <= k)
		return false;
	*key = cmd->argv[k];
	*len = arg_len(cmd, k);
	return true;
}

/* ------------------------------------------------------------- the map */

struct be_cluster {
	atomic_uint refs;
	pthread_mutex_t lock; /* the fields below but 'refresh' */
	pthread_mutex_t refresh; /* one refresh at a time */
	size_t nseeds;
	struct {
		char *host;
		int port;
	} seeds[SEEDS_MAX];
	/* Every node ever seen, seeds first; only ever appended to. */
	unsigned int nnodes;
	struct {
		char host[BE_CLUSTER_HOST_MAX];
		int port;
	} nodes[BE_CLUSTER_NODES_MAX];
	uint16_t slot[BE_CLUSTER_SLOTS]; /* node index or BE_SLOT_NONE */
	bool loaded; /* a CLUSTER SLOTS reply was applied */
	/* masters(): valid until the slot table changes */
	bool masters_valid;
	unsigned int nmasters;
	uint16_t master_nodes[BE_CLUSTER_NODES_MAX];
	int64_t refreshed_ns; /* when the last refresh ended */
	uint64_t refreshes;
};

struct be_cluster *be_cluster_new(void)
{
	struct be_cluster *cl = calloc(1, sizeof(*cl));
	size_t i;

	if (!cl)
		return NULL;
	if (pthread_mutex_init(&cl->lock, NULL)) {
		free(cl);
		return NULL;
	}
	if (pthread_mutex_init(&cl->refresh, NULL)) {
		pthread_mutex_destroy(&cl->lock);
		free(cl);
		return NULL;
	}
	atomic_init(&cl->refs, 1);
	for (i = 0; i < BE_CLUSTER_SLOTS; i++)
		cl->slot[i] = BE_SLOT_NONE;
	return cl;
}

/* Index of 'host':'port' among cl's nodes, added if new (under cl->lock). */
static int node_locked(struct be_cluster *cl, const char *host, int port)
{
	unsigned int i;

	for (i = 0; i < cl->nnodes; i++)
		if (cl->nodes[i].port == port &&
		    !strcmp(cl->nodes[i].host, host))
			return (int)i;
	if (cl->nnodes == BE_CLUSTER_NODES_MAX ||
	    strlen(host) >= sizeof(cl->nodes[i].host))
		return -ENOSPC;
	snprintf(cl->nodes[i].host, sizeof(cl->nodes[i].host), "%s", host);
	cl->nodes[i].port = port;
	cl->nnodes++;
	return (int)i;
}

int be_cluster_add_seed(struct be_cluster *cl, const char *host, int port)
{
	int ret;

	if (cl->nseeds == SEEDS_MAX)
		return -ENOSPC;
	cl->seeds[cl->nseeds].host = strdup(host);
	if (!cl->seeds[cl->nseeds].host)
		return -ENOMEM;
	cl->seeds[cl->nseeds++].port = port;
	pthread_mutex_lock(&cl->lock);
	ret = node_locked(cl, host, port);
	pthread_mutex_unlock(&cl->lock);
	return ret < 0 ? ret : 0;
}

struct be_cluster *be_cluster_ref(struct be_cluster *cl)
{
	if (cl)
		atomic_fetch_add(&cl->refs, 1);
	return cl;
}

void be_cluster_unref(struct be_cluster *cl)
{
	size_t i;

	if (!cl || atomic_fetch_sub(&cl->refs, 1) != 1)
		return;
	for (i = 0; i < cl->nseeds; i++)
		free(cl->seeds[i].host);
	pthread_mutex_destroy(&cl->refresh);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

size_t be_cluster_seed_count(const struct be_cluster *cl)
{
	return cl->nseeds;
}

const char *be_cluster_seed_host(const struct be_cluster *cl, size_t i)
{
	return cl->seeds[i].host;
}

int be_cluster_seed_port(const struct be_cluster *cl, size_t i)
{
	return cl->seeds[i].port;
}

uint64_t be_cluster_refreshes(struct be_cluster *cl)
{
	uint64_t n;

	pthread_mutex_lock(&cl->lock);
	n = cl->refreshes;
	pthread_mutex_unlock(&cl->lock);
	return n;
}

/* The masters' node indexes in node order; returns how many. */
static unsigned int masters(struct be_cluster *cl,
			    uint16_t out[BE_CLUSTER_NODES_MAX])
{
	bool is[BE_CLUSTER_NODES_MAX] = { false };
	unsigned int s, i, n = 0;

	pthread_mutex_lock(&cl->lock);
	if (!cl->masters_valid) {
		for (s = 0; s < BE_CLUSTER_SLOTS; s++)
			if (cl->slot[s] != BE_SLOT_NONE)
				is[cl->slot[s]] = true;
		for (i = 0; i < cl->nnodes; i++)
			if (is[i])
				cl->master_nodes[n++] = (uint16_t)i;
		cl->nmasters = n;
		cl->masters_valid = true;
	}
	n = cl->nmasters;
	memcpy(out, cl->master_nodes, n * sizeof(*out));
	pthread_mutex_unlock(&cl->lock);
	return n;
}

unsigned int be_cluster_masters(struct be_cluster *cl,
				uint16_t out[BE_CLUSTER_NODES_MAX])
{
	return masters(cl, out);
}

int be_cluster_node(struct be_cluster *cl, unsigned int i, char *host,
		    size_t len, int *port)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&cl->lock);
	if (i < cl->nnodes) {
		snprintf(host, len, "%s", cl->nodes[i].host);
		*port = cl->nodes[i].port;
		ret = 0;
	}
	pthread_mutex_unlock(&cl->lock);
	return ret;
}

/* Replaces cl's slot table with 'map' (nodes added as needed). */
static int apply_map(struct be_cluster *cl, const struct be_slot_map *map)
{
	int idx[BE_CLUSTER_NODES_MAX];
	unsigned int i;
	int ret = 0;

	pthread_mutex_lock(&cl->lock);
	for (i = 0; i < map->nnodes; i++) {
		idx[i] =
			node_locked(cl, map->nodes[i].host, map->nodes[i].port);
		if (idx[i] < 0) {
			ret = idx[i];
			goto out_unlock;
		}
	}
	for (i = 0; i < BE_CLUSTER_SLOTS; i++)
		cl->slot[i] = map->slot[i] == BE_SLOT_NONE
				      ? BE_SLOT_NONE
				      : (uint16_t)idx[map->slot[i]];
	cl->loaded = true;
	cl->masters_valid = false;
	cl->refreshes++;
out_unlock:
	pthread_mutex_unlock(&cl->lock);
	return ret;
}

/* ---------------------------------------------------------- the router */

struct be_route {
	struct be_cluster *cl;
	struct be_endpoint ep; /* for the links: no cluster, db 0 */
	double timeout;
	int64_t timeout_ns;
	struct be_conn *links[BE_CLUSTER_NODES_MAX]; /* by node index */
	struct be_tracker *tracker; /* the parent (track.h), or NULL */
	int last_node; /* the node the last call used, -1 for none */
	char errstr[ERRSTR_MAX];
};

static int route_error(struct be_route *rt, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int route_error(struct be_route *rt, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rt->errstr, sizeof(rt->errstr), fmt, ap);
	va_end(ap);
	return err;
}

struct be_route *be_route_new(const struct be_endpoint *ep, double timeout)
{
	struct be_route *rt = calloc(1, sizeof(*rt));

	if (!rt)
		return NULL;
	if (be_endpoint_copy(&rt->ep, ep) < 0) {
		free(rt);
		return NULL;
	}
	/* The links are plain connections to one node each. */
	rt->cl = rt->ep.cluster;
	rt->ep.cluster = NULL;
	rt->ep.db = 0;
	free(rt->ep.host);
	rt->ep.host = NULL;
	rt->timeout = timeout;
	rt->timeout_ns = timeout > 0 ? (int64_t)(timeout * NSEC_PER_SEC) : 0;
	rt->last_node = -1;
	return rt;
}

void be_route_free(struct be_route *rt)
{
	unsigned int i;

	if (!rt)
		return;
	for (i = 0; i < BE_CLUSTER_NODES_MAX; i++)
		be_conn_free(rt->links[i]);
	be_cluster_unref(rt->cl);
	be_endpoint_release(&rt->ep);
	free(rt);
}

void be_route_close(struct be_route *rt)
{
	unsigned int i;

	for (i = 0; i < BE_CLUSTER_NODES_MAX; i++)
		if (rt->links[i])
			be_conn_close(rt->links[i]);
}

void be_route_set_tracker(struct be_route *rt, struct be_tracker *t)
{
	unsigned int i;

	rt->tracker = t;
	for (i = 0; i < BE_CLUSTER_NODES_MAX; i++)
		if (rt->links[i])
			be_conn_set_tracker(rt->links[i],
					    t ? be_tracker_node(t, i) : NULL);
}

unsigned int be_route_sweep(struct be_route *rt)
{
	struct pollfd pfd;
	unsigned int i, closed = 0;

	/* An idle link has nothing to read: anything is the server closing. */
	for (i = 0; i < BE_CLUSTER_NODES_MAX; i++) {
		if (!rt->links[i] || be_conn_fd(rt->links[i]) < 0)
			continue;
		pfd = (struct pollfd){ .fd = be_conn_fd(rt->links[i]),
				       .events = POLLIN };
		if (poll(&pfd, 1, 0) > 0) {
			be_conn_close(rt->links[i]);
			closed++;
		}
	}
	return closed;
}

const char *be_route_errstr(const struct be_route *rt)
{
	return rt->errstr;
}

uint64_t be_route_connects(const struct be_route *rt)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < BE_CLUSTER_NODES_MAX; i++)
		if (rt->links[i])
			n += be_conn_connects(rt->links[i]);
	return n;
}

/* Writes "host:port" of node 'i' into 'buf'. */
static void node_name(struct be_route *rt, unsigned int i, char *buf,
		      size_t len)
{
	pthread_mutex_lock(&rt->cl->lock);
	if (strchr(rt->cl->nodes[i].host, ':'))
		snprintf(buf, len, "[%s]:%d", rt->cl->nodes[i].host,
			 rt->cl->nodes[i].port);
	else
		snprintf(buf, len, "%s:%d", rt->cl->nodes[i].host,
			 rt->cl->nodes[i].port);
	pthread_mutex_unlock(&rt->cl->lock);
}

/* The link to node 'i', made on first use; NULL on ENOMEM. */
static struct be_conn *link_to(struct be_route *rt, unsigned int i)
{
	char host[BE_CLUSTER_HOST_MAX];

	if (rt->links[i])
		return rt->links[i];
	pthread_mutex_lock(&rt->cl->lock);
	snprintf(host, sizeof(host), "%s", rt->cl->nodes[i].host);
	rt->ep.port = rt->cl->nodes[i].port;
	pthread_mutex_unlock(&rt->cl->lock);
	rt->ep.host = host;
	rt->links[i] = be_conn_new(&rt->ep, rt->timeout);
	rt->ep.host = NULL;
	if (rt->links[i] && rt->tracker)
		be_conn_set_tracker(rt->links[i],
				    be_tracker_node(rt->tracker, i));
	return rt->links[i];
}

/*
 * Asks the nodes for CLUSTER SLOTS (masters first, then every other node
 * known, the seeds among them) and applies the first answer.  A refresh
 * another thread finished REFRESH_FRESH_NS ago serves instead, unless
 * 'force'.  0 or -errno (a refused AUTH, a node without cluster support:
 * final; -EAGAIN when no node answered).
 */
static int refresh(struct be_route *rt, bool force)
{
	const char *argv[2] = { "CLUSTER", "SLOTS" };
	struct be_cmd cmd = { 2, argv, NULL };
	struct be_cluster *cl = rt->cl;
	uint16_t order[2 * BE_CLUSTER_NODES_MAX];
	bool tried[BE_CLUSTER_NODES_MAX] = { false };
	struct be_slot_map *map;
	char where[BE_CLUSTER_HOST_MAX + 16];
	unsigned int n, k, i, nnodes;
	redisReply *r;
	int ret = -EAGAIN, got;

	map = malloc(sizeof(*map));
	if (!map)
		return route_error(rt, -ENOMEM, "out of memory");
	pthread_mutex_lock(&cl->refresh);
	pthread_mutex_lock(&cl->lock);
	if (!force && cl->loaded &&
	    be_mono_ns() - cl->refreshed_ns < REFRESH_FRESH_NS) {
		pthread_mutex_unlock(&cl->lock);
		ret = 0;
		goto out_unlock;
	}
	nnodes = cl->nnodes;
	pthread_mutex_unlock(&cl->lock);
	n = masters(cl, order);
	for (i = 0; i < nnodes; i++)
		order[n++] = (uint16_t)i;
	route_error(rt, -EAGAIN, "no cluster node answered");
	for (k = 0; k < n; k++) {
		i = order[k];
		if (tried[i])
			continue;
		tried[i] = true;
		if (!link_to(rt, i)) {
			ret = route_error(rt, -ENOMEM, "out of memory");
			break;
		}
		node_name(rt, i, where, sizeof(where));
		got = be_conn_pipeline(rt->links[i], &cmd, 1, &r,
				       BE_CMD_NORETRY);
		if (got < 0) {
			route_error(rt, got, "%s: %s", where,
				    be_conn_errstr(rt->links[i]));
			/* A refused password is refused by every node. */
			if (got == -EACCES || got == -EINVAL) {
				ret = got;
				break;
			}
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			route_error(rt, -EIO, "%s: CLUSTER SLOTS: %.*s", where,
				    (int)r->len, r->str);
			got = strstr(r->str, "cluster support disabled") ? 1
									 : 0;
			freeReplyObject(r);
			if (got) {
				ret = route_error(
					rt, -EINVAL,
					"%s is not a cluster node (cluster support disabled): use redis://",
					where);
				break;
			}
			continue;
		}
		pthread_mutex_lock(&cl->lock);
		snprintf(where, sizeof(where), "%s", cl->nodes[i].host);
		pthread_mutex_unlock(&cl->lock);
		got = be_cluster_slots_parse(r, where, map);
		freeReplyObject(r);
		/* A node cut from the others may know no slots: ask on. */
		if (got <= 0) {
			route_error(rt, -EAGAIN,
				    "a node answered CLUSTER SLOTS with %s",
				    got < 0 ? "a reply we cannot read"
					    : "no slots");
			continue;
		}
		ret = apply_map(cl, map);
		if (ret < 0)
			route_error(rt, ret, "too many cluster nodes");
		break;
	}
	pthread_mutex_lock(&cl->lock);
	cl->refreshed_ns = be_mono_ns();
	pthread_mutex_unlock(&cl->lock);
out_unlock:
	pthread_mutex_unlock(&cl->refresh);
	free(map);
	return ret;
}

static bool loaded(struct be_cluster *cl)
{
	bool v;

	pthread_mutex_lock(&cl->lock);
	v = cl->loaded;
	pthread_mutex_unlock(&cl->lock);
	return v;
}

/* Sets slot 's' to 'host':'port' after a MOVED; the node's index or -errno. */
static int moved(struct be_route *rt, unsigned int s, const char *host,
		 int port)
{
	int i;

	pthread_mutex_lock(&rt->cl->lock);
	i = node_locked(rt->cl, host, port);
	if (i >= 0 && rt->cl->slot[s] != i) {
		rt->cl->slot[s] = (uint16_t)i;
		rt->cl->masters_valid = false;
	}
	pthread_mutex_unlock(&rt->cl->lock);
	return i;
}

/* Sleeps 'ns' nanoseconds, but not past 'deadline'. */
static void backoff_sleep(int64_t ns, int64_t deadline)
{
	int64_t left = deadline - be_mono_ns();
	struct timespec ts;

	if (ns > left)
		ns = left;
	if (ns <= 0)
		return;
	ts.tv_sec = ns / NSEC_PER_SEC;
	ts.tv_nsec = ns % NSEC_PER_SEC;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One unit of a pipeline: see the overview in cluster.h. */
struct unit {
	size_t first, count;
	int slot; /* -1: keyless */
	int node; /* where it goes this round */
	int ask_node; /* ASK: where it goes next, behind ASKING; -1 */
	bool done;
};

static bool is_multi(const struct be_cmd *cmd)
{
	return cmd->argc >= 1 && arg_is(cmd, 0, "MULTI");
}

static bool ends_multi(const struct be_cmd *cmd)
{
	return cmd->argc >= 1 &&
	       (arg_is(cmd, 0, "EXEC") || arg_is(cmd, 0, "DISCARD"));
}

/* Cuts 'cmds' into 'units'; returns how many. */
static size_t cut_units(const struct be_cmd *cmds, size_t n, struct unit *units)
{
	const char *key;
	size_t i = 0, k, nu = 0, len;
	struct unit *u;

	while (i < n) {
		u = &units[nu++];
		*u = (struct unit){ .first = i, .slot = -1, .ask_node = -1 };
		if (is_multi(&cmds[i])) {
			while (i < n && !ends_multi(&cmds[i]))
				i++;
			if (i < n)
				i++;
		} else {
			i++;
		}
		while (i < n && !is_multi(&cmds[i]) &&
		       !be_cmd_first_key(&cmds[i], &key, &len))
			i++;
		u->count = i - u->first;
		for (k = u->first; k < i; k++) {
			if (be_cmd_first_key(&cmds[k], &key, &len)) {
				u->slot = (int)be_key_slot(key, len);
				break;
			}
		}
	}
	return nu;
}

enum verdict { V_DONE, V_REDIRECT, V_TRANSIENT };

static bool error_word(const redisReply *r, const char *word)
{
	size_t wlen = strlen(word);

	return r && r->type == REDIS_REPLY_ERROR && (size_t)r->len >= wlen &&
	       !memcmp(r->str, word, wlen) &&
	       ((size_t)r->len == wlen || r->str[wlen] == ' ');
}

/*
 * Judges the 'm' replies of unit 'u' sent to node 'node': a MOVED or ASK
 * among them redirects it (the map or 'u' updated), a reply saying "try
 * again" makes it transient.
 */
static enum verdict judge(struct be_route *rt, struct unit *u, int node,
			  redisReply **r, size_t m, bool retry)
{
	char host[BE_CLUSTER_HOST_MAX];
	enum be_redirect kind;
	unsigned int s;
	size_t i;
	int port, to;

	for (i = 0; i < m; i++) {
		if (!r[i] || r[i]->type != REDIS_REPLY_ERROR)
			continue;
		kind = be_redirect_parse(r[i]->str, r[i]->len, &s, host,
					 sizeof(host), &port);
		if (kind != BE_REDIRECT_NONE) {
			/* An empty host is the node that replied. */
			if (!host[0]) {
				pthread_mutex_lock(&rt->cl->lock);
				snprintf(host, sizeof(host), "%s",
					 rt->cl->nodes[node].host);
				pthread_mutex_unlock(&rt->cl->lock);
			}
			route_error(rt, -EAGAIN, "%.*s", (int)r[i]->len,
				    r[i]->str);
			if (kind == BE_REDIRECT_MOVED) {
				to = moved(rt, s, host, port);
				u->ask_node = -1;
			} else {
				pthread_mutex_lock(&rt->cl->lock);
				to = node_locked(rt->cl, host, port);
				pthread_mutex_unlock(&rt->cl->lock);
				u->ask_node = to;
			}
			return to < 0 ? V_TRANSIENT : V_REDIRECT;
		}
		if (retry && (be_reply_is_transient(r[i]) ||
			      error_word(r[i], "CLUSTERDOWN"))) {
			route_error(rt, -EAGAIN, "%.*s", (int)r[i]->len,
				    r[i]->str);
			return V_TRANSIENT;
		}
	}
	return V_DONE;
}

static void free_replies(redisReply **r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i])
			freeReplyObject(r[i]);
		r[i] = NULL;
	}
}

/* The node keyless units go to: the last one used, else the first master. */
static int keyless_node(struct be_route *rt)
{
	uint16_t m[BE_CLUSTER_NODES_MAX];

	if (rt->last_node >= 0)
		return rt->last_node;
	return masters(rt->cl, m) ? m[0] : -1;
}

/*
 * Sends the pending units of node 'node' in one pipeline and judges each.
 * Returns 0 (each unit judged: '*redirects', '*transients' counted), or
 * the -errno of the transport (the link closed).
 */
static int send_node(struct be_route *rt, int node, const struct be_cmd *cmds,
		     struct unit *units, size_t nu, redisReply **replies,
		     bool retry, unsigned int *redirects,
		     unsigned int *transients)
{
	static const char *asking[1] = { "ASKING" };
	struct be_cmd *sub;
	redisReply **rep;
	size_t k, j, m = 0, pos;
	struct unit *u;
	int ret;

	for (k = 0; k < nu; k++)
		if (!units[k].done && units[k].node == node)
			m += units[k].count + (units[k].ask_node >= 0);
	sub = calloc(m, sizeof(*sub));
	rep = calloc(m, sizeof(*rep));
	if (!sub || !rep) {
		free(sub);
		free(rep);
		return route_error(rt, -ENOMEM, "out of memory");
	}
	for (m = 0, k = 0; k < nu; k++) {
		u = &units[k];
		if (u->done || u->node != node)
			continue;
		if (u->ask_node >= 0)
			sub[m++] = (struct be_cmd){ 1, asking, NULL };
		for (j = 0; j < u->count; j++)
			sub[m++] = cmds[u->first + j];
	}
	ret = be_conn_pipeline(link_to(rt, (unsigned int)node), sub, m, rep,
			       BE_CMD_NORETRY);
	if (ret < 0) {
		char where[BE_CLUSTER_HOST_MAX + 16];

		node_name(rt, (unsigned int)node, where, sizeof(where));
		route_error(rt, ret, "%s: %s", where,
			    be_conn_errstr(rt->links[node]));
		/* Keyless commands go elsewhere until this node answers. */
		if (rt->last_node == node)
			rt->last_node = -1;
		goto out_free;
	}
	for (pos = 0, k = 0; k < nu; k++) {
		bool asked;

		u = &units[k];
		if (u->done || u->node != node)
			continue;
		asked = u->ask_node >= 0;
		if (asked) {
			freeReplyObject(rep[pos]);
			rep[pos++] = NULL;
			u->ask_node = -1;
		}
		switch (judge(rt, u, node, &rep[pos], u->count, retry)) {
		case V_DONE:
			memcpy(&replies[u->first], &rep[pos],
			       u->count * sizeof(*rep));
			memset(&rep[pos], 0, u->count * sizeof(*rep));
			u->done = true;
			rt->last_node = node;
			break;
		case V_REDIRECT:
			(*redirects)++;
			break;
		case V_TRANSIENT:
			(*transients)++;
			break;
		}
		pos += u->count;
	}
out_free:
	free_replies(rep, m);
	free(rep);
	free(sub);
	return ret;
}

/* Whether a transport error 'err' may be cured by another try. */
static bool retryable(int err)
{
	return be_conn_err_retryable(err) || err == -EAGAIN;
}

int be_route_pipeline(struct be_route *rt, const struct be_cmd *cmds, size_t n,
		      struct redisReply **replies, unsigned int flags)
{
	bool retry = !(flags & BE_CMD_NORETRY);
	int64_t deadline = be_mono_ns() + rt->timeout_ns;
	int64_t backoff = BACKOFF_FIRST_NS;
	unsigned int redirects, transients, hops = 0;
	char last[ERRSTR_MAX] = "";
	bool stale = false, sent[BE_CLUSTER_NODES_MAX];
	struct unit *units;
	size_t nu, k, left;
	int ret = 0, node, s;

	for (k = 0; k < n; k++)
		replies[k] = NULL;
	if (!n)
		return 0;
	rt->errstr[0] = '\0';
	units = calloc(n, sizeof(*units));
	if (!units)
		return route_error(rt, -ENOMEM, "out of memory");
	nu = cut_units(cmds, n, units);
	for (;;) {
		redirects = transients = 0;
		if (stale || !loaded(rt->cl)) {
			ret = refresh(rt, false);
			if (ret < 0 && !retryable(ret))
				goto out_fail;
			stale = false;
		}
		memset(sent, 0, sizeof(sent));
		for (k = 0; k < nu; k++) {
			struct unit *u = &units[k];

			if (u->done)
				continue;
			if (u->ask_node >= 0) {
				u->node = u->ask_node;
				continue;
			}
			if (u->slot < 0) {
				u->node = keyless_node(rt);
			} else {
				pthread_mutex_lock(&rt->cl->lock);
				s = rt->cl->slot[u->slot];
				pthread_mutex_unlock(&rt->cl->lock);
				u->node = s == BE_SLOT_NONE ? -1 : s;
			}
			if (u->node < 0) {
				route_error(rt, -EAGAIN,
					    "no master serves slot %d",
					    u->slot);
				transients++;
				stale = true;
			}
		}
		for (k = 0; k < nu; k++) {
			node = units[k].node;
			if (units[k].done || node < 0 || sent[node])
				continue;
			sent[node] = true;
			ret = send_node(rt, node, cmds, units, nu, replies,
					retry, &redirects, &transients);
			if (ret == 0)
				continue;
			if (!retry || !retryable(ret))
				goto out_fail;
			/* A node gone: its slots may have a new master. */
			transients++;
			stale = true;
		}
		for (left = 0, k = 0; k < nu; k++)
			left += !units[k].done;
		if (!left) {
			free(units);
			return 0;
		}
		if (rt->errstr[0] && (rt->errstr[0] != 'M' || !last[0]))
			snprintf(last, sizeof(last), "%s", rt->errstr);
		if (!transients && redirects && ++hops < REDIRECTS_MAX)
			continue;
		if (!retry && !redirects) {
			ret = route_error(rt, -EAGAIN, "%s", last);
			goto out_fail;
		}
		hops = 0;
		/* Redirected again and again: a reshard in flight. */
		stale = true;
		if (be_mono_ns() >= deadline)
			break;
		backoff_sleep(backoff, deadline);
		backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS
						       : backoff * 2;
	}
	ret = route_error(rt, -ETIMEDOUT,
			  "timed out after %.1f s (last error: %s)",
			  (double)rt->timeout_ns / NSEC_PER_SEC, last);
out_fail:
	free_replies(replies, n);
	free(units);
	return ret;
}

int be_route_masters(struct be_route *rt, unsigned int *n)
{
	uint16_t m[BE_CLUSTER_NODES_MAX];
	int ret;

	if (!loaded(rt->cl)) {
		ret = refresh(rt, true);
		if (ret < 0)
			return ret;
	}
	*n = masters(rt->cl, m);
	return 0;
}

int be_route_pipeline_at(struct be_route *rt, unsigned int i,
			 const struct be_cmd *cmds, size_t n,
			 struct redisReply **replies, unsigned int flags,
			 char *where, size_t wherelen)
{
	uint16_t m[BE_CLUSTER_NODES_MAX];
	char name[BE_CLUSTER_HOST_MAX + 16];
	struct be_conn *c;
	unsigned int nm;
	size_t k;
	int ret;

	for (k = 0; k < n; k++)
		replies[k] = NULL;
	nm = masters(rt->cl, m);
	if (i >= nm)
		return route_error(rt, -ESTALE, "the cluster has %u masters",
				   nm);
	node_name(rt, m[i], name, sizeof(name));
	if (where)
		snprintf(where, wherelen, "%s", name);
	c = link_to(rt, m[i]);
	if (!c)
		return route_error(rt, -ENOMEM, "out of memory");
	ret = be_conn_pipeline(c, cmds, n, replies, flags);
	if (ret < 0)
		route_error(rt, ret, "%s: %s", name, be_conn_errstr(c));
	return ret;
}

int be_route_connect(struct be_route *rt)
{
	uint16_t m[BE_CLUSTER_NODES_MAX];
	char name[BE_CLUSTER_HOST_MAX + 16];
	unsigned int nm, k, s, served = 0;
	struct be_conn *c;
	int ret;

	rt->errstr[0] = '\0';
	ret = refresh(rt, true);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&rt->cl->lock);
	for (s = 0; s < BE_CLUSTER_SLOTS; s++)
		served += rt->cl->slot[s] != BE_SLOT_NONE;
	pthread_mutex_unlock(&rt->cl->lock);
	if (served < BE_CLUSTER_SLOTS)
		return route_error(
			rt, -EAGAIN,
			"the cluster serves %u of %d slots (is its state ok?)",
			served, BE_CLUSTER_SLOTS);
	nm = masters(rt->cl, m);
	for (k = 0; k < nm; k++) {
		c = link_to(rt, m[k]);
		if (!c)
			return route_error(rt, -ENOMEM, "out of memory");
		ret = be_conn_connect(c);
		if (ret < 0) {
			node_name(rt, m[k], name, sizeof(name));
			return route_error(rt, ret, "%s: %s", name,
					   be_conn_errstr(c));
		}
	}
	return 0;
}
