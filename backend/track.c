/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The tracker (track.h): one connection subscribed to Redis's invalidation
 * channel, read by its own thread, which reconnects with backoff and pings
 * the server when it has been quiet, so that a dead connection is noticed
 * within a second or two.  The epoch is one atomic word: a counter, and a
 * DOWN bit while nothing may be trusted.
 *
 * Over a cluster (redis-cluster://) the tracker is a parent of one child
 * tracker per node, each an ordinary tracker on that node, made when the
 * node is first a master or first linked (be_tracker_node()): a key's
 * invalidations come from the node that holds it, to a client id on that
 * node.  The parent's epoch is 0 unless every current master's child is
 * up, else the sum of the children's epochs and its own counter: any
 * child's change, or a new master, is a new epoch.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "track.h"
#include "util.h"

#define EPOCH_DOWN     (1ULL << 63)
#define TICK_MS	       50
#define PING_AFTER_MS  1000
#define HEARD_MAX_MS   (PING_AFTER_MS + 500) /* silent longer: trust nothing */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CHANNEL	       "__redis__:invalidate"

struct be_tracker {
	struct be_endpoint ep;
	double timeout;
	be_inval_cb cb;
	void (*tick)(void *arg);
	void *arg;

	pthread_t thread;
	bool started;
	_Atomic bool stopping;

	_Atomic uint64_t epoch; /* counter | EPOCH_DOWN */
	_Atomic bool disabled;
	char why[256]; /* set once, before 'disabled' */
	pthread_mutex_t lock; /* redirect and gen change together */
	long long redirect;
	_Atomic uint64_t gen; /* read without the lock on every call */
	_Atomic uint64_t invalidations;
	/*
	 * be_tracker_quiet(): the subscribed socket (-1 when none), and
	 * whether the thread holds messages it has not applied yet.
	 */
	_Atomic int fd;
	_Atomic bool busy;
	_Atomic int64_t heard_ms; /* when the socket last had data */
	/* A cluster's parent: the map and the children by node index. */
	struct be_cluster *cluster;
	pthread_mutex_t nodes_lock;
	struct be_tracker *nodes[BE_CLUSTER_NODES_MAX];
	bool ticking; /* a child calls 'tick' */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct be_tracker *be_tracker_new(const struct be_endpoint *ep, double timeout,
				  be_inval_cb cb, void (*tick)(void *arg),
				  void *arg)
{
	struct be_tracker *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (be_endpoint_copy(&t->ep, ep) < 0 ||
	    pthread_mutex_init(&t->lock, NULL)) {
		be_endpoint_release(&t->ep);
		free(t);
		return NULL;
	}
	if (pthread_mutex_init(&t->nodes_lock, NULL)) {
		pthread_mutex_destroy(&t->lock);
		be_endpoint_release(&t->ep);
		free(t);
		return NULL;
	}
	t->cluster = t->ep.cluster;
	t->timeout = timeout;
	t->cb = cb;
	t->tick = tick;
	t->arg = arg;
	/* A parent is up as its children are: its own counter starts up. */
	atomic_init(&t->epoch, t->cluster ? 1 : EPOCH_DOWN);
	atomic_init(&t->fd, -1);
	atomic_init(&t->busy, true);
	return t;
}

/*
 * The children of the cluster's current masters into 'out' (NULL for a
 * master without one yet); returns how many masters.
 */
static unsigned int master_children(struct be_tracker *t,
				    struct be_tracker **out)
{
	uint16_t m[BE_CLUSTER_NODES_MAX];
	unsigned int n, i;

	n = be_cluster_masters(t->cluster, m);
	pthread_mutex_lock(&t->nodes_lock);
	for (i = 0; i < n; i++)
		out[i] = t->nodes[m[i]];
	pthread_mutex_unlock(&t->nodes_lock);
	return n;
}

uint64_t be_tracker_epoch(struct be_tracker *t)
{
	struct be_tracker *kids[BE_CLUSTER_NODES_MAX];
	uint64_t e, k;
	unsigned int n, i;

	if (!t || atomic_load(&t->disabled))
		return 0;
	e = atomic_load(&t->epoch);
	if (e & EPOCH_DOWN)
		return 0;
	if (!t->cluster)
		return e;
	n = master_children(t, kids);
	if (!n)
		return 0;
	for (i = 0; i < n; i++) {
		k = kids[i] ? be_tracker_epoch(kids[i]) : 0;
		if (!k)
			return 0;
		e += k;
	}
	return e;
}

bool be_tracker_up(struct be_tracker *t)
{
	return be_tracker_epoch(t) != 0;
}

long long be_tracker_redirect(struct be_tracker *t, uint64_t *gen)
{
	long long id;

	pthread_mutex_lock(&t->lock);
	id = t->redirect;
	*gen = atomic_load(&t->gen);
	pthread_mutex_unlock(&t->lock);
	return atomic_load(&t->disabled) ? 0 : id;
}

uint64_t be_tracker_gen(struct be_tracker *t)
{
	return atomic_load(&t->gen);
}

void be_tracker_lost(struct be_tracker *t)
{
	atomic_fetch_add(&t->epoch, 1);
}

void be_tracker_disable(struct be_tracker *t, const char *why)
{
	pthread_mutex_lock(&t->lock);
	if (!atomic_load(&t->disabled)) {
		strncpy(t->why, why ? why : "refused", sizeof(t->why) - 1);
		atomic_store(&t->disabled, true);
	}
	pthread_mutex_unlock(&t->lock);
}

const char *be_tracker_disabled(struct be_tracker *t)
{
	const char *why = NULL;
	unsigned int i;

	if (atomic_load(&t->disabled))
		return t->why;
	if (!t->cluster)
		return NULL;
	pthread_mutex_lock(&t->nodes_lock);
	for (i = 0; i < BE_CLUSTER_NODES_MAX && !why; i++)
		if (t->nodes[i])
			why = be_tracker_disabled(t->nodes[i]);
	pthread_mutex_unlock(&t->nodes_lock);
	return why;
}

uint64_t be_tracker_invalidations(struct be_tracker *t)
{
	uint64_t n = atomic_load(&t->invalidations);
	unsigned int i;

	if (!t->cluster)
		return n;
	pthread_mutex_lock(&t->nodes_lock);
	for (i = 0; i < BE_CLUSTER_NODES_MAX; i++)
		if (t->nodes[i])
			n += be_tracker_invalidations(t->nodes[i]);
	pthread_mutex_unlock(&t->nodes_lock);
	return n;
}

/* Subscribed: a new redirect id, a new generation, then a new epoch. */
static void go_up(struct be_tracker *t, long long id)
{
	uint64_t e, up;

	pthread_mutex_lock(&t->lock);
	t->redirect = id;
	atomic_fetch_add(&t->gen, 1);
	pthread_mutex_unlock(&t->lock);
	e = atomic_load(&t->epoch);
	do {
		up = (e & ~EPOCH_DOWN) + 1;
	} while (!atomic_compare_exchange_weak(&t->epoch, &e, up));
}

static void go_down(struct be_tracker *t)
{
	atomic_fetch_or(&t->epoch, EPOCH_DOWN);
	pthread_mutex_lock(&t->lock);
	t->redirect = 0;
	pthread_mutex_unlock(&t->lock);
	t->cb(t->arg, NULL, 0);
}

/* CLIENT ID, then SUBSCRIBE; the client id on success, else -errno. */
static long long subscribe(struct be_tracker *t, struct be_conn *c)
{
	const char *id_cmd[2] = { "CLIENT", "ID" };
	const char *sub[2] = { "SUBSCRIBE", CHANNEL };
	redisReply *r = NULL;
	long long id;
	int ret;

	ret = be_conn_command(c, &r, 2, id_cmd, NULL, BE_CMD_NORETRY);
	if (ret < 0)
		return ret;
	if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
		if (r->type == REDIS_REPLY_ERROR)
			be_tracker_disable(t, r->str);
		freeReplyObject(r);
		return -EPROTO;
	}
	id = r->integer;
	freeReplyObject(r);
	ret = be_conn_command(c, &r, 2, sub, NULL, BE_CMD_NORETRY);
	if (ret < 0)
		return ret;
	/* ["subscribe", channel, 1], or NOPERM for the channel. */
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		if (r->type == REDIS_REPLY_ERROR)
			be_tracker_disable(t, r->str);
		freeReplyObject(r);
		return -EPROTO;
	}
	freeReplyObject(r);
	return id;
}

/*
 * One pushed reply: an invalidation message (["message", channel, keys or
 * nil]) or the answer to our PING (["pong", ""]).  0, or -EPROTO.
 */
static int handle(struct be_tracker *t, const redisReply *r)
{
	const redisReply *keys;
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return -EPROTO;
	if (strcmp(r->element[0]->str, "pong") == 0)
		return 0;
	if (strcmp(r->element[0]->str, "message") != 0 || r->elements != 3)
		return -EPROTO;
	keys = r->element[2];
	if (keys->type == REDIS_REPLY_NIL) {
		atomic_fetch_add(&t->invalidations, 1);
		t->cb(t->arg, NULL, 0); /* FLUSHALL / FLUSHDB */
		return 0;
	}
	if (keys->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	for (i = 0; i < keys->elements; i++) {
		if (keys->element[i]->type != REDIS_REPLY_STRING)
			continue;
		atomic_fetch_add(&t->invalidations, 1);
		t->cb(t->arg, keys->element[i]->str, keys->element[i]->len);
	}
	return 0;
}

bool be_tracker_quiet(struct be_tracker *t)
{
	struct pollfd pfd = { .fd = atomic_load(&t->fd), .events = POLLIN };
	struct be_tracker *kids[BE_CLUSTER_NODES_MAX];
	unsigned int n, i;

	if (t->cluster) {
		n = master_children(t, kids);
		for (i = 0; i < n; i++)
			if (!kids[i] || !be_tracker_quiet(kids[i]))
				return false;
		return n > 0;
	}

	/*
	 * A connection that has been silent past its PING (a partition) is
	 * not believed; then unread bytes, then bytes read but not applied.
	 */
	if (be_mono_ms() - atomic_load(&t->heard_ms) > HEARD_MAX_MS)
		return false;
	if (pfd.fd < 0 || poll(&pfd, 1, 0) != 0)
		return false;
	return !atomic_load(&t->busy);
}

/*
 * Applies every message the socket holds; 'busy' stays set while a
 * message is only partly read.  0, or -errno when the connection failed.
 */
static int drain(struct be_tracker *t, struct be_conn *c)
{
	redisReply *r;
	int ret;

	atomic_store(&t->busy, true);
	for (;;) {
		ret = be_conn_recv(c, &r, 0);
		if (ret < 0)
			break;
		ret = handle(t, r);
		freeReplyObject(r);
		if (ret < 0)
			break;
	}
	if (ret != -ETIMEDOUT)
		return ret;
	atomic_store(&t->busy, be_conn_partial(c));
	return 0;
}

/* Reads messages until the connection fails or we stop. */
static void listen_loop(struct be_tracker *t, struct be_conn *c)
{
	const char *ping[1] = { "PING" };
	int64_t heard = be_mono_ms(), pinged = 0, now;
	struct pollfd pfd = { .fd = be_conn_fd(c), .events = POLLIN };
	int n;

	atomic_store(&t->heard_ms, heard);
	atomic_store(&t->busy, false);
	atomic_store(&t->fd, pfd.fd);
	while (!atomic_load(&t->stopping)) {
		n = poll(&pfd, 1, TICK_MS);
		now = be_mono_ms();
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			heard = now;
			pinged = 0;
			if (drain(t, c) < 0)
				break;
			atomic_store(&t->heard_ms, heard);
		}
		if (t->tick)
			t->tick(t->arg);
		/* A failover: subscribe again, on the new master. */
		if (be_conn_stale(c))
			break;
		if (!pinged && now - heard >= PING_AFTER_MS) {
			if (be_conn_send(c, 1, ping, NULL) < 0)
				break;
			pinged = now;
		} else if (pinged &&
			   now - pinged >= (int64_t)(t->timeout * 1000)) {
			break; /* no pong: the server or the path is gone */
		}
	}
	/* go_down() follows: the epoch is DOWN before the socket closes. */
	atomic_store(&t->busy, true);
	atomic_store(&t->fd, -1);
}

static void *tracker_main(void *arg)
{
	struct be_tracker *t = arg;
	int backoff = BACKOFF_MIN_MS;

	while (!atomic_load(&t->stopping) && !atomic_load(&t->disabled)) {
		struct be_conn *c = be_conn_new(&t->ep, t->timeout);
		long long id = c ? subscribe(t, c) : -ENOMEM;

		if (id > 0) {
			go_up(t, id);
			backoff = BACKOFF_MIN_MS;
			listen_loop(t, c);
			go_down(t);
		}
		be_conn_free(c);
		if (atomic_load(&t->stopping))
			break;
		/* Down: the daemon still checks its idle connections. */
		for (int waited = 0; waited < backoff; waited += TICK_MS) {
			if (atomic_load(&t->stopping))
				break;
			if (t->tick)
				t->tick(t->arg);
			sleep_ms(TICK_MS);
		}
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
						       : backoff * 2;
	}
	if (t->tick)
		t->tick(t->arg); /* once more: it may report the refusal */
	return NULL;
}

int be_tracker_start(struct be_tracker *t)
{
	uint16_t m[BE_CLUSTER_NODES_MAX];
	unsigned int n, i;
	int ret;

	/* A cluster's parent: a child per master known now, more later. */
	if (t->cluster) {
		n = be_cluster_masters(t->cluster, m);
		for (i = 0; i < n; i++)
			if (!be_tracker_node(t, m[i]))
				return -ENOMEM;
		return 0;
	}
	ret = pthread_create(&t->thread, NULL, tracker_main, t);
	if (ret)
		return -ret;
	t->started = true;
	return 0;
}

struct be_tracker *be_tracker_node(struct be_tracker *t, unsigned int i)
{
	struct be_endpoint ep;
	struct be_tracker *k;
	char host[BE_CLUSTER_HOST_MAX];
	int port;

	if (!t->cluster || i >= BE_CLUSTER_NODES_MAX)
		return NULL;
	pthread_mutex_lock(&t->nodes_lock);
	k = t->nodes[i];
	if (k || be_cluster_node(t->cluster, i, host, sizeof(host), &port))
		goto out_unlock;
	if (be_endpoint_copy(&ep, &t->ep) < 0)
		goto out_unlock;
	be_cluster_unref(ep.cluster);
	ep.cluster = NULL;
	free(ep.host);
	ep.host = strdup(host);
	ep.port = port;
	if (ep.host)
		k = be_tracker_new(&ep, t->timeout, t->cb,
				   t->ticking ? NULL : t->tick, t->arg);
	be_endpoint_release(&ep);
	if (k && be_tracker_start(k) < 0) {
		be_tracker_free(k);
		k = NULL;
	}
	if (k) {
		t->ticking = true;
		t->nodes[i] = k;
	}
out_unlock:
	pthread_mutex_unlock(&t->nodes_lock);
	return k;
}

void be_tracker_free(struct be_tracker *t)
{
	unsigned int i;

	if (!t)
		return;
	atomic_store(&t->stopping, true);
	if (t->started)
		pthread_join(t->thread, NULL);
	for (i = 0; t->cluster && i < BE_CLUSTER_NODES_MAX; i++)
		be_tracker_free(t->nodes[i]);
	pthread_mutex_destroy(&t->nodes_lock);
	pthread_mutex_destroy(&t->lock);
	be_endpoint_release(&t->ep);
	free(t);
}
