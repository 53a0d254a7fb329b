/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A pool of connections (conn.h) to one endpoint, shared by threads.
 * Call order: be_pool_new() -> be_pool_get()/be_pool_get_at() ...
 * be_pool_put() per request -> be_pool_free() once no connection is lent.
 */
#ifndef BACKEND_POOL_H
#define BACKEND_POOL_H

struct be_conn;
struct be_endpoint;
struct be_tracker;

/**
 * A pool of connections to one endpoint, shared by threads: a thread
 * borrows one for one request and gives it back.  At most 'max' exist, one
 * per slot; both getters wait only when all are borrowed.  All functions
 * are thread-safe.
 */
struct be_pool;

struct be_pool *be_pool_new(const struct be_endpoint *ep, double timeout,
			    unsigned int max);
void be_pool_free(struct be_pool *p);
/** The number of slots ('max'). */
unsigned int be_pool_size(const struct be_pool *p);
/** Borrows any connection (never NULL unless ENOMEM). */
struct be_conn *be_pool_get(struct be_pool *p);
/**
 * Borrows the connection of slot 'i' % size, or any other when that one is
 * lent: the keys of a name go through its slot's connection whenever they
 * can, so that its own writes do not invalidate what it tracks (track.h).
 */
struct be_conn *be_pool_get_at(struct be_pool *p, unsigned int i);
/** Gives 'c' back to 'p'. */
void be_pool_put(struct be_pool *p, struct be_conn *c);
/**
 * Every connection, made and to be made, sends CLIENT TRACKING ...
 * REDIRECT to 't' at each connect and tells 't' when it reconnects
 * (track.h); NULL for none.
 */
void be_pool_set_tracker(struct be_pool *p, struct be_tracker *t);
/**
 * Closes the idle connections the server has closed (or that have
 * anything to read), and those to a master the sentinels no longer name;
 * returns how many.
 */
unsigned int be_pool_sweep(struct be_pool *p);

#endif /* BACKEND_POOL_H */
