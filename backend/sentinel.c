/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis Sentinel (sentinel.h): asking the sentinels in turn for the
 * master's address through our own connections (conn.h, no Sentinel
 * support in hiredis 0.14), the shared record of the last address and its
 * generation, and the watcher thread that notices a failover while every
 * data connection stays up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "sentinel.h"
#include "tls.h"
#include "util.h"

#define HOST_MAX 256
/* The watcher asks a sentinel that failed again after this long. */
#define WATCH_RETRY_MS 1000

struct sentinel_addr {
	char *host;
	int port;
};

struct be_sentinel {
	atomic_uint refs;
	/* Set before the object is shared, then read-only. */
	char *master_name;
	struct sentinel_addr *addrs;
	size_t n;
	char *password;
	struct be_tls *tls;

	/* The sentinel that answered last: asked first next time. */
	atomic_size_t first;

	pthread_mutex_t lock; /* guards the address and its generation */
	char host[HOST_MAX];
	int port;
	uint64_t gen; /* 0: no address yet */
	uint64_t failovers;
	/* A sentinel reports a failover of the current master under way. */
	_Atomic bool holding;

	/* The watcher. */
	pthread_t thread;
	bool watching;
	_Atomic bool stopping;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	be_failover_cb cb;
	void *cb_arg;
};

struct be_sentinel *be_sentinel_new(const char *master)
{
	struct be_sentinel *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->master_name = strdup(master);
	if (!s->master_name) {
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	atomic_init(&s->first, 0);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	pthread_cond_init(&s->wcond, NULL);
	return s;
}

int be_sentinel_add(struct be_sentinel *s, const char *host, int port)
{
	struct sentinel_addr *grown;
	char *h = strdup(host);

	if (!h)
		return -ENOMEM;
	grown = realloc(s->addrs, (s->n + 1) * sizeof(*grown));
	if (!grown) {
		free(h);
		return -ENOMEM;
	}
	s->addrs = grown;
	s->addrs[s->n].host = h;
	s->addrs[s->n].port = port;
	s->n++;
	return 0;
}

struct be_sentinel *be_sentinel_ref(struct be_sentinel *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void be_sentinel_unref(struct be_sentinel *s)
{
	size_t i;

	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	be_sentinel_unwatch(s);
	for (i = 0; i < s->n; i++)
		free(s->addrs[i].host);
	free(s->addrs);
	free(s->master_name);
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	be_tls_unref(s->tls);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->wlock);
	pthread_cond_destroy(&s->wcond);
	free(s);
}

int be_sentinel_set_password(struct be_sentinel *s, const char *password)
{
	char *p = NULL;

	if (password && !(p = strdup(password)))
		return -ENOMEM;
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	s->password = p;
	return 0;
}

void be_sentinel_set_tls(struct be_sentinel *s, struct be_tls *tls)
{
	be_tls_unref(s->tls);
	s->tls = be_tls_ref(tls);
}

const char *be_sentinel_master_name(const struct be_sentinel *s)
{
	return s->master_name;
}

size_t be_sentinel_count(const struct be_sentinel *s)
{
	return s->n;
}

const char *be_sentinel_host(const struct be_sentinel *s, size_t i)
{
	return s->addrs[i].host;
}

int be_sentinel_port(const struct be_sentinel *s, size_t i)
{
	return s->addrs[i].port;
}

int be_sentinel_parse_addr(const redisReply *r, char *host, size_t hostlen,
			   int *port)
{
	const redisReply *h, *p;
	char *end;
	long v;

	if (r->type == REDIS_REPLY_NIL)
		return 0;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return -EPROTO;
	h = r->element[0];
	p = r->element[1];
	if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING ||
	    h->len == 0 || (size_t)h->len >= hostlen ||
	    strlen(h->str) != (size_t)h->len)
		return -EPROTO;
	errno = 0;
	v = strtol(p->str, &end, 10);
	if (errno || end == p->str || *end || v < 1 || v > 65535)
		return -EPROTO;
	memcpy(host, h->str, h->len + 1);
	*port = (int)v;
	return 1;
}

int be_sentinel_parse_master(const redisReply *r, bool *failing_over,
			     long long *epoch)
{
	const redisReply *k, *v;
	bool flags = false;
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
		return -EPROTO;
	*failing_over = false;
	*epoch = 0;
	for (i = 0; i + 1 < r->elements; i += 2) {
		k = r->element[i];
		v = r->element[i + 1];
		if (k->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			return -EPROTO;
		if (strcmp(k->str, "flags") == 0) {
			flags = true;
			*failing_over = strstr(v->str, "failover_in_progress");
		} else if (strcmp(k->str, "config-epoch") == 0) {
			*epoch = strtoll(v->str, NULL, 10);
		}
	}
	return flags ? 0 : -EPROTO;
}

int be_role_parse(const redisReply *r, char *role, size_t rolelen)
{
	const redisReply *e;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return -EPROTO;
	e = r->element[0];
	if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)
		return -EPROTO;
	if (strcmp(e->str, "master") == 0)
		return 1;
	if (rolelen)
		snprintf(role, rolelen, "%s", e->str);
	return 0;
}

/* Records 'host':'port' as the master's; a change is a new generation. */
static uint64_t note_master(struct be_sentinel *s, const char *host, int port)
{
	uint64_t gen;

	pthread_mutex_lock(&s->lock);
	if (!s->gen || s->port != port || strcmp(s->host, host) != 0) {
		if (s->gen)
			s->failovers++;
		snprintf(s->host, sizeof(s->host), "%s", host);
		s->port = port;
		s->gen++;
		atomic_store(&s->holding, false);
	}
	gen = s->gen;
	pthread_mutex_unlock(&s->lock);
	return gen;
}

uint64_t be_sentinel_confirm(struct be_sentinel *s, const char *host, int port)
{
	return note_master(s, host, port);
}

bool be_sentinel_holding(struct be_sentinel *s)
{
	return atomic_load(&s->holding);
}

/* Whether 'host':'port' is the address known now. */
static bool is_current(struct be_sentinel *s, const char *host, int port)
{
	bool same;

	pthread_mutex_lock(&s->lock);
	same = s->gen && s->port == port && strcmp(s->host, host) == 0;
	pthread_mutex_unlock(&s->lock);
	return same;
}

uint64_t be_sentinel_gen(struct be_sentinel *s)
{
	uint64_t gen;

	pthread_mutex_lock(&s->lock);
	gen = s->gen;
	pthread_mutex_unlock(&s->lock);
	return gen;
}

bool be_sentinel_master(struct be_sentinel *s, char *host, size_t hostlen,
			int *port)
{
	bool known;

	pthread_mutex_lock(&s->lock);
	known = s->gen != 0;
	if (known) {
		snprintf(host, hostlen, "%s", s->host);
		*port = s->port;
	}
	pthread_mutex_unlock(&s->lock);
	return known;
}

uint64_t be_sentinel_failovers(struct be_sentinel *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->failovers;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* A new, unconnected connection to sentinel 'i' with 'ms' per call. */
static struct be_conn *sentinel_conn(struct be_sentinel *s, size_t i, int ms)
{
	/* Borrowed strings: be_conn_new() copies them. */
	struct be_endpoint ep = { .host = s->addrs[i].host,
				  .port = s->addrs[i].port,
				  .password = s->password,
				  .tls = s->tls != NULL,
				  .tls_ctx = s->tls };

	return be_conn_new(&ep, ms / 1000.0);
}

/*
 * Asks the sentinel behind 'c' once.  1 with the address, 0 when it does
 * not know the master, or -errno with the reason in 'why' (the sentinel's
 * address first).  The connection is closed after a failure.
 */
static int ask(struct be_sentinel *s, struct be_conn *c, size_t i, char *host,
	       size_t hostlen, int *port, char *why, size_t whylen)
{
	const char *argv[3] = { "SENTINEL", "get-master-addr-by-name",
				s->master_name };
	redisReply *r;
	int ret;

	ret = be_conn_command(c, &r, 3, argv, NULL, BE_CMD_NORETRY);
	if (ret < 0) {
		snprintf(why, whylen, "%s:%d: %s", s->addrs[i].host,
			 s->addrs[i].port, be_conn_errstr(c));
		return ret;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		/* NOAUTH, WRONGPASS: a sentinel that wants its password. */
		snprintf(why, whylen, "%s:%d: %s", s->addrs[i].host,
			 s->addrs[i].port, r->str);
		ret = -EACCES;
	} else {
		ret = be_sentinel_parse_addr(r, host, hostlen, port);
		if (ret < 0)
			snprintf(why, whylen, "%s:%d: unexpected reply",
				 s->addrs[i].host, s->addrs[i].port);
	}
	freeReplyObject(r);
	if (ret < 0)
		be_conn_close(c);
	return ret;
}

/* Appends "; 'text'" (or 'text' first) to 'buf' of 'len' bytes. */
static void append_why(char *buf, size_t len, const char *text)
{
	size_t used = strlen(buf);

	if (used + 3 >= len)
		return;
	snprintf(buf + used, len - used, "%s%s", used ? "; " : "", text);
}

/*
 * Asks each sentinel once, the last one that answered first, within
 * 'budget_ms'.  1 with the address, 0 when every sentinel that answered
 * does not know the master, or -errno when none answered; 'err' gathers
 * the reasons.
 */
static int ask_all(struct be_sentinel *s, int budget_ms, char *host,
		   size_t hostlen, int *port, char *err, size_t errlen)
{
	int64_t deadline = be_mono_ms() + budget_ms;
	size_t first = atomic_load(&s->first), k, i;
	char why[256];
	int ret, ms, unknown = 0;

	err[0] = '\0';
	for (k = 0; k < s->n; k++) {
		struct be_conn *c;

		i = (first + k) % s->n;
		ms = (int)(deadline - be_mono_ms());
		if (ms <= 0) {
			append_why(err, errlen, "out of time");
			break;
		}
		if (ms > BE_SENTINEL_TIMEOUT_MS)
			ms = BE_SENTINEL_TIMEOUT_MS;
		c = sentinel_conn(s, i, ms);
		if (!c)
			return -ENOMEM;
		ret = ask(s, c, i, host, hostlen, port, why, sizeof(why));
		be_conn_free(c);
		if (ret == 1) {
			atomic_store(&s->first, i);
			return 1;
		}
		if (ret == 0)
			unknown++;
		else
			append_why(err, errlen, why);
	}
	return unknown ? 0 : -ECONNREFUSED;
}

int be_sentinel_resolve(struct be_sentinel *s, int budget_ms, char *host,
			size_t hostlen, int *port, uint64_t *gen,
			bool *fallback, char *err, size_t errlen)
{
	char why[512];
	int ret;

	*fallback = false;
	ret = ask_all(s, budget_ms, host, hostlen, port, why, sizeof(why));
	if (ret == 1) {
		*gen = be_sentinel_gen(s);
		return 0;
	}
	if (ret == -ENOMEM) {
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	if (ret == 0) {
		snprintf(err, errlen, "no sentinel knows master '%s'%s%s",
			 s->master_name, why[0] ? " (" : "", why);
		if (why[0])
			snprintf(err + strlen(err), errlen - strlen(err), ")");
		return -ENXIO;
	}
	/* None answered: the last address, if ROLE still says master. */
	pthread_mutex_lock(&s->lock);
	if (s->gen) {
		snprintf(host, hostlen, "%s", s->host);
		*port = s->port;
		*gen = s->gen;
		*fallback = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (*fallback)
		return 0;
	snprintf(err, errlen, "no sentinel answered for master '%s': %s",
		 s->master_name, why);
	return -ECONNREFUSED;
}

/* Waits 'ms' or until told to stop; true when stopping. */
static bool watch_sleep(struct be_sentinel *s, int ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->wlock);
	while (!atomic_load(&s->stopping))
		if (pthread_cond_timedwait(&s->wcond, &s->wlock, &ts) != 0)
			break;
	stop = atomic_load(&s->stopping);
	pthread_mutex_unlock(&s->wlock);
	return stop;
}

/* What one sentinel told the watcher. */
struct sighting {
	char host[HOST_MAX];
	int port;
	bool failing_over;
	long long epoch;
};

/*
 * Asks sentinel 'i' over '*c' (made when NULL, freed after a failure)
 * for the master's address and state, in one round trip.  0, or -errno.
 */
static int look(struct be_sentinel *s, struct be_conn **c, size_t i,
		struct sighting *out)
{
	const char *addr[3] = { "SENTINEL", "get-master-addr-by-name",
				s->master_name };
	const char *state[3] = { "SENTINEL", "master", s->master_name };
	struct be_cmd cmds[2] = { { 3, addr, NULL }, { 3, state, NULL } };
	redisReply *r[2];
	int ret;

	if (!*c)
		*c = sentinel_conn(s, i, BE_SENTINEL_TIMEOUT_MS);
	if (!*c)
		return -ENOMEM;
	ret = be_conn_pipeline(*c, cmds, 2, r, BE_CMD_NORETRY);
	if (ret < 0)
		goto out_free_conn;
	ret = be_sentinel_parse_addr(r[0], out->host, sizeof(out->host),
				     &out->port) == 1 &&
			      be_sentinel_parse_master(r[1], &out->failing_over,
						       &out->epoch) == 0
		      ? 0
		      : -EPROTO;
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	if (ret == 0)
		return 0;
out_free_conn:
	be_conn_free(*c);
	*c = NULL;
	return ret;
}

/*
 * One look at every sentinel: the address of the one with the highest
 * config epoch is the master (the leader of a failover reports the new
 * one first); any of them reporting a failover of the current address
 * holds every call until the address changes.
 */
static void watch_once(struct be_sentinel *s, struct be_conn **conns,
		       int64_t *retry_at)
{
	struct sighting one, best = { .epoch = -1 };
	bool failing = false;
	int64_t now = be_mono_ms();
	size_t i;

	for (i = 0; i < s->n; i++) {
		/* A dead sentinel would cost each round its timeout. */
		if (now < retry_at[i])
			continue;
		if (look(s, &conns[i], i, &one) < 0) {
			retry_at[i] = be_mono_ms() + WATCH_RETRY_MS;
			continue;
		}
		/*
		 * The leader of a failover names the promoted replica before
		 * its config epoch is raised and the others hear of it.
		 */
		if (one.epoch > best.epoch ||
		    (one.epoch == best.epoch && one.failing_over &&
		     !best.failing_over))
			best = one;
		if (one.failing_over && is_current(s, one.host, one.port))
			failing = true;
	}
	if (best.epoch < 0)
		return; /* no sentinel answered: nothing learnt */
	if (!is_current(s, best.host, best.port))
		note_master(s, best.host, best.port);
	else
		atomic_store(&s->holding, failing);
}

/*
 * The watcher: one kept connection per sentinel, all asked every
 * BE_SENTINEL_WATCH_MS; every new generation after the first is reported,
 * including those a connect confirmed first, and so is the start of a
 * hold.
 */
static void *watch_main(void *arg)
{
	struct be_sentinel *s = arg;
	struct be_conn **conns = calloc(s->n, sizeof(*conns));
	int64_t *retry_at = calloc(s->n, sizeof(*retry_at));
	uint64_t told = be_sentinel_gen(s), gen;
	bool held = false, holding;
	char host[HOST_MAX];
	size_t i;
	int port;

	if (!conns || !retry_at)
		goto out_free;
	do {
		watch_once(s, conns, retry_at);
		gen = be_sentinel_gen(s);
		holding = be_sentinel_holding(s);
		if (be_sentinel_master(s, host, sizeof(host), &port)) {
			if (gen != told && told)
				s->cb(s->cb_arg, false, host, port);
			else if (holding && !held)
				s->cb(s->cb_arg, true, host, port);
		}
		told = gen;
		held = holding;
	} while (!watch_sleep(s, BE_SENTINEL_WATCH_MS));
	for (i = 0; i < s->n; i++)
		be_conn_free(conns[i]);
out_free:
	free(retry_at);
	free(conns);
	return NULL;
}

int be_sentinel_watch(struct be_sentinel *s, be_failover_cb cb, void *arg)
{
	int ret;

	if (s->watching || !s->n)
		return -EINVAL;
	s->cb = cb;
	s->cb_arg = arg;
	atomic_store(&s->stopping, false);
	ret = pthread_create(&s->thread, NULL, watch_main, s);
	if (ret)
		return -ret;
	s->watching = true;
	return 0;
}

void be_sentinel_unwatch(struct be_sentinel *s)
{
	if (!s || !s->watching)
		return;
	pthread_mutex_lock(&s->wlock);
	atomic_store(&s->stopping, true);
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
	pthread_join(s->thread, NULL);
	s->watching = false;
}
