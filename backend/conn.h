/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Our Redis transport: one blocking connection over TCP (optionally TLS,
 * tls.h) or a unix socket, with connect/read/write timeouts, AUTH (user +
 * password), SELECT, pipelining and reconnect with backoff.  hiredis is
 * used only to format commands (redisFormatCommandArgv) and to parse
 * replies (redisReader).
 *
 * Call order: be_conn_new() -> be_conn_command()/be_conn_pipeline() (they
 * connect on first use and reconnect after a transport error) ->
 * be_conn_free().  A struct be_conn is not thread-safe: one thread uses it
 * at a time.  struct be_pool (pool.h) hands connections to threads.
 *
 * Retries: a transport error (connect refused, reset, timeout, EOF) and the
 * transient error replies LOADING, BUSY, TRYAGAIN, MASTERDOWN are retried,
 * with a fresh connection and a backoff of 10 ms doubling up to 200 ms,
 * until 'timeout' seconds have passed since the call began.  Then the call
 * returns -ETIMEDOUT (deadline passed) or the last -errno.  Every command
 * sent through this API must therefore be idempotent, or the caller passes
 * BE_CMD_NORETRY.  A server at maxclients counts as transient too.  A
 * refused AUTH (-EACCES) or SELECT (-EINVAL) is never retried, nor is a
 * refused TLS certificate (-EACCES).
 *
 * Sentinel (sentinel.h): an endpoint with 'sentinel' has no fixed
 * address.  Every connect asks the sentinels for the master's address
 * and sends ROLE with AUTH and SELECT: a server that does not say
 * "master" is left at once (-EAGAIN, retried within the budget), so no
 * command ever reaches a replica.  A READONLY reply (a master demoted
 * under an open connection) is retried like MASTERDOWN, on a new
 * connection, so resolved again; a connection made before the master's
 * address last changed is closed before its next use.
 *
 * Cluster (cluster.h): a connection to an endpoint with 'cluster' holds
 * one link per node and routes every command by its key; MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN and a node that dies are handled inside the call,
 * within the same budget.  The marks start again when any link
 * reconnects.  be_conn_send(), be_conn_recv() (tracking) are refused
 * there (-EOPNOTSUPP) and be_conn_fd() is -1.  Commands every master
 * must answer (SCAN, INFO, CONFIG GET, SCRIPT LOAD) go through
 * be_conn_pipeline_at() for each of be_conn_masters().
 */
#ifndef BACKEND_CONN_H
#define BACKEND_CONN_H

#include <stdbool.h>
#include <stddef.h>

struct redisReply;
struct be_tls;
struct be_sentinel;
struct be_cluster;

/** Where and how to connect; parsed from a URL by be_url_parse(). */
struct be_endpoint {
	char *host; /* TCP host, NULL for a unix socket */
	int port; /* TCP port, 6379 by default */
	char *unix_path; /* unix socket path, NULL for TCP */
	int db; /* SELECT db after connecting when != 0 */
	char *user; /* AUTH user, NULL for the default user */
	char *password; /* AUTH password, NULL for no AUTH */
	bool tls; /* rediss://: TLS over TCP */
	/*
	 * With 'tls': the context every connection to this endpoint shares
	 * (be_tls_new(), one reference owned here); NULL fails the connect.
	 */
	struct be_tls *tls_ctx;
	/*
	 * redis-sentinel:// and rediss-sentinel://: the sentinels to ask for
	 * the master (one reference owned here; 'host' is NULL then), else
	 * NULL.  The TLS context serves the sentinels and the master.
	 */
	struct be_sentinel *sentinel;
	/*
	 * redis-cluster:// and rediss-cluster://: the cluster's shared slot
	 * map with the seed nodes of the URL (cluster.h; one reference owned
	 * here; 'host' is NULL then), else NULL.  'db' is 0 there.
	 */
	struct be_cluster *cluster;
};

/**
 * Deep copy of 'src' into 'dst' (the TLS context is shared: a new
 * reference); 0 or -ENOMEM.
 */
int be_endpoint_copy(struct be_endpoint *dst, const struct be_endpoint *src);
/** Frees the strings of 'ep', drops its TLS reference and zeroes it. */
void be_endpoint_release(struct be_endpoint *ep);

enum be_cmd_flags {
	/*
	 * Fail at the first transport error; a transient error reply
	 * (LOADING, BUSY, ...) is then handed to the caller as it is.
	 */
	BE_CMD_NORETRY = (1 << 0),
};

/** One command of a pipeline: borrowed argv, as for redisFormatCommandArgv. */
struct be_cmd {
	int argc;
	const char **argv;
	const size_t *argvlen;
};

struct be_conn;

/**
 * Returns a new, not yet connected connection to 'ep' (deep-copied) with a
 * budget of 'timeout' seconds per call (connect, each read and write, and
 * all retries together).  NULL on ENOMEM.
 */
struct be_conn *be_conn_new(const struct be_endpoint *ep, double timeout);
/** Closes and frees 'c'; NULL is allowed. */
void be_conn_free(struct be_conn *c);

/**
 * Connects now (socket, AUTH, SELECT) if not connected.  0 or -errno;
 * be_conn_errstr() then says why (e.g. "connection refused",
 * "WRONGPASS invalid username-password pair").  No retries: used at start
 * to report a clear error.  It also sends a PING, so that a missing
 * password (NOAUTH) gives -EACCES here.  A user without a password gives
 * -EINVAL.  Over TLS, a certificate refused either way gives -EACCES and
 * a peer that does not speak TLS -EPROTO, with tls.h's reason.
 */
int be_conn_connect(struct be_conn *c);

/** Last error text of 'c' (never NULL; "" when none).  Borrowed. */
const char *be_conn_errstr(const struct be_conn *c);

/**
 * Sends one command and waits for its reply.  On 0, '*reply' is a new
 * reply the caller frees with freeReplyObject(); it may be an error reply
 * (REDIS_REPLY_ERROR) other than the transient ones, which are retried.
 * On failure returns -errno (-ETIMEDOUT when the budget ran out,
 * -ECONNREFUSED, -ECONNRESET, -EPROTO, -ENOMEM, ...) and '*reply' is NULL.
 */
int be_conn_command(struct be_conn *c, struct redisReply **reply, int argc,
		    const char **argv, const size_t *argvlen,
		    unsigned int flags);

/**
 * Sends 'n' commands in one write and reads 'n' replies into 'replies'
 * (caller frees each).  A transport error or a transient error reply in
 * any of them resends the whole pipeline on a fresh connection, within the
 * budget.  0 or -errno as be_conn_command(); on failure no reply is left
 * allocated.
 */
int be_conn_pipeline(struct be_conn *c, const struct be_cmd *cmds, size_t n,
		     struct redisReply **replies, unsigned int flags);

/** Closes the socket (the next call reconnects). */
void be_conn_close(struct be_conn *c);

/**
 * Writes one command without waiting for its reply (a subscribed
 * connection: track.c), connecting first if needed.  No retries.  0 or
 * -errno (the connection is closed then).
 */
int be_conn_send(struct be_conn *c, int argc, const char **argv,
		 const size_t *argvlen);
/**
 * Waits up to 'wait_ms' for the next reply or pushed message.  0 with a
 * new '*reply'; -ETIMEDOUT when none came (the connection stays); any
 * other -errno closes the connection.
 */
int be_conn_recv(struct be_conn *c, struct redisReply **reply, int wait_ms);

/**
 * Bits the caller keeps about the server of the current connection
 * (store.c: the scripts it ran there), all 0 after every connect, so a
 * new server (a failover, a restart) starts with none.
 */
unsigned int be_conn_marks(const struct be_conn *c);
/** Sets the bits 'bits' of be_conn_marks() until the next connect. */
void be_conn_mark(struct be_conn *c, unsigned int bits);

/** The socket, or -1 when not connected. */
int be_conn_fd(const struct be_conn *c);
/**
 * Whether part of a reply was read and waits for the rest (in the reader,
 * or received by TLS and not decrypted yet).
 */
bool be_conn_partial(const struct be_conn *c);
/** Whether the current connection is TLS and resumed an earlier session. */
bool be_conn_tls_resumed(const struct be_conn *c);
/**
 * Whether 'c' is connected to an address the sentinels no longer name as
 * the master (sentinel.h): the caller closes it (the next call resolves
 * again).  False for a fixed address.
 */
bool be_conn_stale(const struct be_conn *c);

/** Whether 'c' is over a redis-cluster:// endpoint.  Any thread. */
bool be_conn_is_cluster(const struct be_conn *c);
/**
 * Sets '*n' to the number of masters: the cluster's now (its map loaded
 * first if needed), 1 for any other endpoint.  0 or -errno.
 */
int be_conn_masters(struct be_conn *c, unsigned int *n);
/**
 * Runs the pipeline 'cmds' on master 'i' (0 .. be_conn_masters() - 1) as
 * be_conn_pipeline() does, without cluster redirects: for the commands
 * each master must answer.  'where' (when not NULL, 'wherelen' bytes)
 * gets the master's "host:port" (the host alone for a single server).
 * -ESTALE when there is no master 'i' any more (a failover since).
 */
int be_conn_pipeline_at(struct be_conn *c, unsigned int i,
			const struct be_cmd *cmds, size_t n,
			struct redisReply **replies, unsigned int flags,
			char *where, size_t wherelen);
/** One command on master 'i', as be_conn_pipeline_at(). */
int be_conn_command_at(struct be_conn *c, unsigned int i,
		       struct redisReply **reply, int argc, const char **argv,
		       const size_t *argvlen, unsigned int flags);

#endif /* BACKEND_CONN_H */
