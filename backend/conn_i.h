/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the pool (pool.c) keeps in a connection it lends (its place in the
 * pool and the tracker it redirects to), and what the cluster router
 * (cluster.c) asks of the connections it makes.  Private to backend/.
 */
#ifndef BACKEND_CONN_I_H
#define BACKEND_CONN_I_H

#include <stdbool.h>
#include <stdint.h>

struct be_conn;
struct be_tracker;
struct redisReply;

/** The pool slot of 'c' (0 for a connection no pool made). */
unsigned int be_conn_slot(const struct be_conn *c);
/** Sets the pool slot of 'c'; only its pool, before lending it. */
void be_conn_set_slot(struct be_conn *c, unsigned int slot);
/**
 * Makes every later connect of 'c' send CLIENT TRACKING ... REDIRECT to
 * 't' (NULL: none); only its pool, under the pool's lock.
 */
void be_conn_set_tracker(struct be_conn *c, struct be_tracker *t);

/**
 * Over a cluster: closes the idle links of 'c' the server closed, and
 * returns how many (0 for any other connection).  Only its pool, with
 * 'c' not lent.
 */
unsigned int be_conn_sweep_links(struct be_conn *c);
/** How many times 'c' connected (cluster.c: a node's server may be new). */
uint64_t be_conn_connects(const struct be_conn *c);
/** Whether the transport error 'err' is one a fresh connection may cure. */
bool be_conn_err_retryable(int err);
/**
 * Whether 'r' is an error reply conn.h retries (LOADING, BUSY, TRYAGAIN,
 * MASTERDOWN, a full server).
 */
bool be_reply_is_transient(const struct redisReply *r);

#endif /* BACKEND_CONN_I_H */
