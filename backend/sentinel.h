/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis Sentinel for our transport (redis-sentinel://, rediss-sentinel://):
 * which address is the master of the set the URL names, now.
 *
 * A struct be_sentinel belongs to one endpoint (conn.h) and is shared by
 * every copy of it (pool, tracker, prober: one reference each).  It holds
 * the sentinels' addresses, the master's name, the sentinels' own
 * password (sentinel_password_file; the URL's user and password are the
 * master's), the TLS context for rediss-sentinel:// (the endpoint's), and
 * what was learnt: the master's last address and a generation that
 * changes with it.
 *
 * Resolving asks the sentinels in turn, starting with the one that
 * answered last, "SENTINEL get-master-addr-by-name MASTER", each within
 * BE_SENTINEL_TIMEOUT_MS (or the call's budget when less): a dead sentinel
 * costs at most that, and only until another one answered.  conn.c
 * resolves at every connect (so at every reconnect: after a connection
 * loss, a READONLY or MASTERDOWN reply), then confirms with ROLE that the
 * address is a master before anything is sent; an address that is not a
 * master is never used.  When no sentinel answers, the last address is
 * tried, still only if ROLE says master (be_sentinel_resolve()).
 *
 * The watcher (be_sentinel_watch(), the daemon only) asks every sentinel
 * every 100 ms, so that a failover is seen even by connections that stay
 * up: a demoted master keeps accepting writes until Sentinel reconfigures
 * it, seconds later (11 s after a SENTINEL FAILOVER here, Redis 7.0.15),
 * and every write it takes after the promotion is lost.  While a sentinel reports a
 * failover of the current master under way, calls are held
 * (be_sentinel_holding()); once the address changed, a connection made
 * in an older generation is closed at its next use (conn.c), and the
 * watcher's callback tells the daemon.
 *
 * Call order: be_sentinel_new() and be_sentinel_add() (the URL parser),
 * be_sentinel_set_password() and be_sentinel_set_tls() before the object
 * is shared between threads; then any thread: be_sentinel_resolve(),
 * be_sentinel_gen(), be_sentinel_master(); be_sentinel_watch() once and
 * be_sentinel_unwatch() before the last be_sentinel_unref().
 */
#ifndef BACKEND_SENTINEL_H
#define BACKEND_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one sentinel may cost a resolution (connect and answer). */
#define BE_SENTINEL_TIMEOUT_MS 500
/* How often the watcher asks. */
#define BE_SENTINEL_WATCH_MS 100

struct redisReply;
struct be_tls;
struct be_sentinel;

/** A new set for the master named 'master' (copied), no sentinel yet. */
struct be_sentinel *be_sentinel_new(const char *master);
/** Adds the sentinel 'host':'port' (copied).  0 or -ENOMEM. */
int be_sentinel_add(struct be_sentinel *s, const char *host, int port);
/** Takes a reference; NULL is allowed.  Any thread. */
struct be_sentinel *be_sentinel_ref(struct be_sentinel *s);
/** Drops a reference; the last frees 's'.  NULL is allowed. */
void be_sentinel_unref(struct be_sentinel *s);

/**
 * Sets the password the sentinels ask for (AUTH), copied; NULL for none.
 * Before 's' is shared.  0 or -ENOMEM.
 */
int be_sentinel_set_password(struct be_sentinel *s, const char *password);
/**
 * Connects to the sentinels over TLS with 'tls' (a new reference; NULL:
 * plain TCP), each verified by its own address unless tls_server_name
 * was given.  Before 's' is shared.
 */
void be_sentinel_set_tls(struct be_sentinel *s, struct be_tls *tls);

/** The master's name.  Borrowed. */
const char *be_sentinel_master_name(const struct be_sentinel *s);
/** How many sentinels; their addresses by index.  Borrowed. */
size_t be_sentinel_count(const struct be_sentinel *s);
const char *be_sentinel_host(const struct be_sentinel *s, size_t i);
int be_sentinel_port(const struct be_sentinel *s, size_t i);

/**
 * Asks the sentinels for the master's address, within 'budget_ms' in
 * all.  On 0, 'host' (of 'hostlen' bytes) and '*port' hold it, '*gen' the
 * generation now (the caller confirms the address with ROLE, then
 * be_sentinel_confirm()), and '*fallback' whether no sentinel answered
 * and it is the last address known (the caller must then trust it only
 * if ROLE says master, as always).  Errors, with one line in 'err': -ENXIO
 * when the sentinels that answered do not know the master ("no sentinel
 * knows master 'x'"), -ECONNREFUSED when none answered and no address is
 * known yet ("no sentinel answered: 127.0.0.1:26379: connection refused,
 * ..."), -ENOMEM.  Any thread.
 */
int be_sentinel_resolve(struct be_sentinel *s, int budget_ms, char *host,
			size_t hostlen, int *port, uint64_t *gen,
			bool *fallback, char *err, size_t errlen);

/**
 * Records 'host':'port', which ROLE just called a master, as the master's
 * address; returns its generation (a new one if it changed).  Any thread.
 */
uint64_t be_sentinel_confirm(struct be_sentinel *s, const char *host, int port);
/**
 * Whether a sentinel reports a failover of the current master under way
 * (the watcher's view): conn.c then sends nothing (-EAGAIN, retried
 * within the budget) until the sentinels name the new master, so that no
 * write reaches the old one while the new one is being promoted.
 */
bool be_sentinel_holding(struct be_sentinel *s);

/** The generation of the current address: 0 before the first. */
uint64_t be_sentinel_gen(struct be_sentinel *s);
/**
 * The master's last known address into 'host' and '*port'; false when
 * none is known yet.  Any thread.
 */
bool be_sentinel_master(struct be_sentinel *s, char *host, size_t hostlen,
			int *port);
/** How many times the address changed after the first (failovers). */
uint64_t be_sentinel_failovers(struct be_sentinel *s);

/**
 * Called by the watcher's thread when a failover of the master 'host':
 * 'port' begins ('started': calls are held), and when the master's
 * address changed (after the first one): 'host' and 'port' are the new
 * one.  Must not block on Redis.
 */
typedef void (*be_failover_cb)(void *arg, bool started, const char *host,
			       int port);

/**
 * Starts the watcher thread: every BE_SENTINEL_WATCH_MS it asks every
 * sentinel (on one kept connection each) for the address and the
 * master's state, takes the address of the highest config epoch, holds
 * calls while a failover of the current master is under way
 * (be_sentinel_holding()), and calls 'cb' as be_failover_cb says,
 * whoever noticed a change first (a connect in conn.c, or itself).  Once
 * per 's'.  0 or -errno.
 */
int be_sentinel_watch(struct be_sentinel *s, be_failover_cb cb, void *arg);
/** Stops the watcher if it runs.  NULL is allowed. */
void be_sentinel_unwatch(struct be_sentinel *s);

/**
 * Reads a reply to SENTINEL get-master-addr-by-name: 1 with the address
 * in 'host' and '*port' (a two-element array of host and port), 0 for a
 * nil reply (the sentinel does not know the master), -EPROTO for anything
 * else (an error reply included).  Pure.
 */
int be_sentinel_parse_addr(const struct redisReply *r, char *host,
			   size_t hostlen, int *port);
/**
 * Reads a reply to SENTINEL master MASTER (field, value, ...): whether
 * its flags hold failover_in_progress, and its config-epoch.  0, or
 * -EPROTO when it is not such a reply.  Pure.
 */
int be_sentinel_parse_master(const struct redisReply *r, bool *failing_over,
			     long long *epoch);
/**
 * Reads a reply to ROLE: 1 when it says "master", 0 for any other role
 * (its name copied into 'role' of 'rolelen' bytes: "slave", "sentinel"),
 * -EPROTO for anything else (an error reply included).  Pure.
 */
int be_role_parse(const struct redisReply *r, char *role, size_t rolelen);

#endif /* BACKEND_SENTINEL_H */
