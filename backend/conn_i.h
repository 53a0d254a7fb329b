/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the pool (pool.c) keeps in a connection it lends: its place in the
 * pool and the tracker it redirects to.  Private to backend/.
 */
#ifndef BACKEND_CONN_I_H
#define BACKEND_CONN_I_H

struct be_conn;
struct be_tracker;

/** The pool slot of 'c' (0 for a connection no pool made). */
unsigned int be_conn_slot(const struct be_conn *c);
/** Sets the pool slot of 'c'; only its pool, before lending it. */
void be_conn_set_slot(struct be_conn *c, unsigned int slot);
/**
 * Makes every later connect of 'c' send CLIENT TRACKING ... REDIRECT to
 * 't' (NULL: none); only its pool, under the pool's lock.
 */
void be_conn_set_tracker(struct be_conn *c, struct be_tracker *t);

#endif /* BACKEND_CONN_I_H */
