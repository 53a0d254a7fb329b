/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pool that lends the connections of one endpoint (conn.h) to
 * threads: a thread borrows one for one request and gives it back.
 */
#include <assert.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "conn.h"
#include "conn_i.h"
#include "pool.h"

/*
 * Connections live in slots, made when first lent: be_pool_get_at() lends
 * its slot's connection when free, else any free one, as be_pool_get().
 */
struct be_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct be_endpoint ep;
	double timeout;
	unsigned int max;
	struct be_tracker *tracker;
	struct be_conn **conns; /* [max], NULL until first lent */
	bool *lent; /* [max] */
	unsigned int next; /* where be_pool_get() starts looking */
};

struct be_pool *be_pool_new(const struct be_endpoint *ep, double timeout,
			    unsigned int max)
{
	struct be_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max = max ? max : 1;
	p->timeout = timeout;
	p->conns = calloc(p->max, sizeof(*p->conns));
	p->lent = calloc(p->max, sizeof(*p->lent));
	if (!p->conns || !p->lent)
		goto out_free;
	if (be_endpoint_copy(&p->ep, ep) < 0)
		goto out_free;
	if (pthread_mutex_init(&p->lock, NULL))
		goto out_release;
	if (pthread_cond_init(&p->cond, NULL))
		goto out_destroy_lock;
	return p;
out_destroy_lock:
	pthread_mutex_destroy(&p->lock);
out_release:
	be_endpoint_release(&p->ep);
out_free:
	free(p->lent);
	free(p->conns);
	free(p);
	return NULL;
}

void be_pool_free(struct be_pool *p)
{
	unsigned int i;

	if (!p)
		return;
	for (i = 0; i < p->max; i++)
		be_conn_free(p->conns[i]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	be_endpoint_release(&p->ep);
	free(p->lent);
	free(p->conns);
	free(p);
}

void be_pool_set_tracker(struct be_pool *p, struct be_tracker *t)
{
	unsigned int i;

	pthread_mutex_lock(&p->lock);
	p->tracker = t;
	for (i = 0; i < p->max; i++)
		if (p->conns[i])
			be_conn_set_tracker(p->conns[i], t);
	pthread_mutex_unlock(&p->lock);
}

unsigned int be_pool_size(const struct be_pool *p)
{
	return p->max;
}

/* Lends slot 'i' (free, under p->lock), making its connection. */
static struct be_conn *lend(struct be_pool *p, unsigned int i)
{
	struct be_conn *c = p->conns[i];

	if (!c) {
		/* be_conn_new() does not connect: cheap under the lock. */
		c = be_conn_new(&p->ep, p->timeout);
		if (!c)
			return NULL;
		be_conn_set_slot(c, i);
		be_conn_set_tracker(c, p->tracker);
		p->conns[i] = c;
	}
	p->lent[i] = true;
	return c;
}

/* Lends slot 'i' if free, else the first free one after the last lent. */
static struct be_conn *get_locked(struct be_pool *p, unsigned int i)
{
	unsigned int k;

	if (i < p->max && !p->lent[i])
		return lend(p, i);
	for (;;) {
		for (k = 0; k < p->max; k++) {
			i = (p->next + k) % p->max;
			if (!p->lent[i])
				break;
		}
		if (k < p->max)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	p->next = (i + 1) % p->max;
	return lend(p, i);
}

struct be_conn *be_pool_get_at(struct be_pool *p, unsigned int i)
{
	struct be_conn *c;

	pthread_mutex_lock(&p->lock);
	c = get_locked(p, i % p->max);
	pthread_mutex_unlock(&p->lock);
	return c;
}

struct be_conn *be_pool_get(struct be_pool *p)
{
	struct be_conn *c;

	pthread_mutex_lock(&p->lock);
	c = get_locked(p, UINT_MAX);
	pthread_mutex_unlock(&p->lock);
	return c;
}

void be_pool_put(struct be_pool *p, struct be_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&p->lock);
	assert(be_conn_slot(c) < p->max && p->conns[be_conn_slot(c)] == c);
	assert(p->lent[be_conn_slot(c)]);
	p->lent[be_conn_slot(c)] = false;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

unsigned int be_pool_sweep(struct be_pool *p)
{
	struct pollfd pfd[64];
	struct be_conn *who[64];
	unsigned int i, n = 0, closed = 0;
	int k;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->max && n < 64; i++) {
		struct be_conn *c = p->conns[i];

		if (c && !p->lent[i] && be_conn_is_cluster(c)) {
			closed += be_conn_sweep_links(c);
			continue;
		}
		if (!c || p->lent[i] || be_conn_fd(c) < 0)
			continue;
		if (be_conn_stale(c)) {
			be_conn_close(c);
			closed++;
			continue;
		}
		pfd[n] = (struct pollfd){ .fd = be_conn_fd(c),
					  .events = POLLIN };
		who[n++] = c;
	}
	/*
	 * An idle connection has nothing to read: anything there is the
	 * server closing it (Redis's 'timeout', CLIENT KILL).
	 */
	if (n && poll(pfd, n, 0) > 0) {
		for (k = 0; k < (int)n; k++) {
			if (!pfd[k].revents)
				continue;
			be_conn_close(who[k]);
			closed++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return closed;
}
