/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis Cluster: the slot map, and the router a connection (conn.h) to a
 * redis-cluster:// endpoint sends its commands through.
 *
 * The map (struct be_cluster) belongs to the endpoint: every connection
 * copied from it shares it (one reference each), so one CLUSTER SLOTS
 * after a reshard or a failover serves every thread.  It is made from the
 * seed addresses of the URL and filled by be_cluster_refresh() from the
 * first node (known masters first, then the seeds) that answers.  Nodes
 * are only ever added to it, so a node index stays valid for its life.
 *
 * The router (struct be_route) is one connection's set of links, one
 * plain connection per node, made on first use.  A pipeline is cut into
 * units: a MULTI..EXEC block, or one keyed command, each with the keyless
 * commands that follow it (WAIT after a write must reach the node that
 * took the write).  A unit goes to the master of the slot of its first
 * key (be_cmd_first_key()); keyless units go to the node the connection
 * used last (the first master when none).  Units for one node go in one
 * write.  Then, per unit and within the call's budget: MOVED updates the
 * map and resends the unit to the node named; ASK resends it behind
 * ASKING to the node named, once, without touching the map; TRYAGAIN,
 * CLUSTERDOWN and the transient replies conn.h lists, and a transport
 * error (the node's link is closed, the map refreshed) are retried with
 * conn.h's backoff.  Every command must therefore be idempotent, as for
 * a single connection.
 *
 * Pure parts (any thread): be_cluster_slots_parse(), be_redirect_parse(),
 * be_cmd_first_key().  The map's functions are thread-safe; a router is
 * used by one thread at a time, like its connection.
 */
#ifndef BACKEND_CLUSTER_H
#define BACKEND_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;
struct be_cmd;
struct be_endpoint;

#define BE_CLUSTER_SLOTS     16384
#define BE_CLUSTER_NODES_MAX 256
#define BE_CLUSTER_HOST_MAX  256
/* No node serves the slot (in a parsed map). */
#define BE_SLOT_NONE 0xffff

/** A parsed CLUSTER SLOTS reply: the master of each slot. */
struct be_slot_map {
	unsigned int nnodes;
	struct {
		char host[BE_CLUSTER_HOST_MAX];
		int port;
	} nodes[BE_CLUSTER_NODES_MAX];
	uint16_t slot[BE_CLUSTER_SLOTS]; /* index in nodes[] or BE_SLOT_NONE */
};

/**
 * Parses the reply 'r' to CLUSTER SLOTS into 'map' (overwritten): the
 * first address of each range is its master.  An empty host ("" or "?",
 * a node that does not know its own address) is 'asked', the host the
 * reply came from.  Returns the number of slots served (0..16384), or
 * -EPROTO for a reply of the wrong shape (a range past 16383, a port out
 * of 1..65535, a host too long) or -ENOSPC for more than
 * BE_CLUSTER_NODES_MAX masters.  Pure.
 */
int be_cluster_slots_parse(const struct redisReply *r, const char *asked,
			   struct be_slot_map *map);

enum be_redirect {
	BE_REDIRECT_NONE = 0,
	BE_REDIRECT_MOVED,
	BE_REDIRECT_ASK,
};

/**
 * Reads the error text 's' of 'len' bytes: "MOVED <slot> <host>:<port>"
 * or "ASK <slot> <host>:<port>" (the host may be an IPv6 address, the
 * port is after the last ':'; an empty host means the node that replied,
 * and 'host' is then "").  Sets '*slot', 'host' (of 'hostlen' bytes) and
 * '*port' for MOVED and ASK; BE_REDIRECT_NONE for any other text or a
 * malformed one.  Pure.
 */
enum be_redirect be_redirect_parse(const char *s, size_t len,
				   unsigned int *slot, char *host,
				   size_t hostlen, int *port);

/**
 * The first key of the command 'cmd' (argv[1] for most; for EVAL,
 * EVALSHA and their _RO forms and FCALL the first key after numkeys; for
 * OBJECT and MEMORY USAGE argv[2]; none for MULTI, EXEC, DISCARD, WAIT,
 * PING, INFO, CONFIG, SCRIPT, CLUSTER, CLIENT, SCAN, ROLE, AUTH, SELECT,
 * ASKING, READONLY, HELLO, TIME, DBSIZE, FLUSHDB, FLUSHALL, FUNCTION,
 * COMMAND, ACL, SLOWLOG, LATENCY, MONITOR, SUBSCRIBE and an EVAL with 0
 * keys).  Sets '*key' and '*len' (borrowed from 'cmd') and returns true,
 * or returns false for a keyless command.  Pure.
 */
bool be_cmd_first_key(const struct be_cmd *cmd, const char **key, size_t *len);

/** A cluster's shared slot map; see the overview. */
struct be_cluster;

/** An empty map with no seeds; NULL on ENOMEM. */
struct be_cluster *be_cluster_new(void);
/** Adds the seed 'host':'port' (copied).  0, -ENOMEM or -ENOSPC. */
int be_cluster_add_seed(struct be_cluster *cl, const char *host, int port);
/** A new reference to 'cl' (NULL allowed). */
struct be_cluster *be_cluster_ref(struct be_cluster *cl);
/** Drops a reference; the last frees the map.  NULL allowed. */
void be_cluster_unref(struct be_cluster *cl);
/** The seeds, as the URL gave them (for be_url_display()). */
size_t be_cluster_seed_count(const struct be_cluster *cl);
const char *be_cluster_seed_host(const struct be_cluster *cl, size_t i);
int be_cluster_seed_port(const struct be_cluster *cl, size_t i);
/** The number of times the map was refreshed (tests, metrics). */
uint64_t be_cluster_refreshes(struct be_cluster *cl);
/**
 * The node indexes of the masters (the nodes that serve a slot) in node
 * order into 'out'; returns how many (0 before the map is loaded).
 */
unsigned int be_cluster_masters(struct be_cluster *cl,
				uint16_t out[BE_CLUSTER_NODES_MAX]);
/**
 * The address of node 'i' into 'host' ('len' bytes) and '*port'.  0, or
 * -ENOENT for a node the map never had.
 */
int be_cluster_node(struct be_cluster *cl, unsigned int i, char *host,
		    size_t len, int *port);

struct be_tracker;

/** One connection's links to the nodes of a cluster; see the overview. */
struct be_route;

/**
 * A router for connections to 'ep' (its cluster map referenced; links
 * made with ep's user, password, db 0 and TLS context) with a budget of
 * 'timeout' seconds per call.  NULL on ENOMEM.
 */
struct be_route *be_route_new(const struct be_endpoint *ep, double timeout);
void be_route_free(struct be_route *rt);
/** Closes every link (the next call reconnects). */
void be_route_close(struct be_route *rt);
/**
 * Makes every link, made and to be made, redirect its CLIENT TRACKING to
 * the tracker of its node (be_tracker_node() of the parent 't'); NULL
 * for none.  Called by the pool under its lock.
 */
void be_route_set_tracker(struct be_route *rt, struct be_tracker *t);
/**
 * Closes the idle links the server has closed (or that have anything to
 * read); returns how many (pool.h's be_pool_sweep()).
 */
unsigned int be_route_sweep(struct be_route *rt);
/** The reason of the last failure ("" when none).  Borrowed. */
const char *be_route_errstr(const struct be_route *rt);

/**
 * Runs the pipeline 'cmds' of 'n' commands as the overview says; on 0,
 * replies[i] answers cmds[i] (the caller frees each; any error reply but
 * the ones retried).  -errno as be_conn_pipeline(); on failure no reply
 * is left.  'flags' as conn.h's (BE_CMD_NORETRY: one attempt, redirects
 * still followed).
 */
int be_route_pipeline(struct be_route *rt, const struct be_cmd *cmds, size_t n,
		      struct redisReply **replies, unsigned int flags);

/**
 * Loads the map if it is empty and connects to every master (AUTH and a
 * PING, as be_conn_connect()), and checks that the map covers all 16384
 * slots.  0 or -errno with be_route_errstr() saying why.
 */
int be_route_connect(struct be_route *rt);

/**
 * The masters of the map now (loading it first if empty): how many, so
 * that be_route_pipeline_at() can reach each.  0 or -errno.
 */
int be_route_masters(struct be_route *rt, unsigned int *n);
/**
 * Runs 'cmds' on master 'i' (0 .. be_route_masters() - 1) of the map as
 * it is now, with the retries of a single connection but no redirect:
 * SCAN, INFO, CONFIG GET and SCRIPT LOAD that each master must answer.
 * -ESTALE when the map no longer has master 'i'.  Otherwise as
 * be_route_pipeline().  'where' (of 'wherelen' bytes, when not NULL)
 * gets "host:port" for messages.
 */
int be_route_pipeline_at(struct be_route *rt, unsigned int i,
			 const struct be_cmd *cmds, size_t n,
			 struct redisReply **replies, unsigned int flags,
			 char *where, size_t wherelen);

/**
 * How many connects the links of 'rt' made in all: a change means some
 * node's server may be a new one (conn.h's marks start again).
 */
uint64_t be_route_connects(const struct be_route *rt);

#endif /* BACKEND_CLUSTER_H */
