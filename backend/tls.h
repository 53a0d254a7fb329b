/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS under our Redis transport (rediss://), over OpenSSL's libssl.
 *
 * A struct be_tls is the client side of one endpoint: an SSL_CTX with the
 * trust store (tls_ca, or the system's), the client certificate and key
 * for mutual TLS, peer and host name verification always on, and the last
 * session Redis handed out, so that a reconnect resumes it where OpenSSL
 * allows.  It is shared by every connection to that endpoint (copies of a
 * struct be_endpoint take a reference) and is thread-safe.
 *
 * A struct be_tls_conn is one TLS connection over a connected non-blocking
 * socket that conn.c owns.  Nothing here waits: every call returns -EAGAIN
 * with the poll() events it needs ('*want', POLLIN or POLLOUT), and conn.c
 * waits for them against its call's deadline, then calls again with the
 * same arguments.  One thread uses a struct be_tls_conn at a time.
 *
 * Call order: be_tls_options_check() -> be_tls_new() (at start: a file
 * that cannot be read is reported there) -> per connection
 * be_tls_conn_new() -> be_tls_handshake() until 0 (then, if
 * be_tls_cert_asked(), be_tls_settle()) -> be_tls_read() /
 * be_tls_write() -> be_tls_conn_free() -> be_tls_unref().
 *
 * Errors are -errno with a one-line reason that names the cause, e.g.
 * "server certificate not trusted: unknown CA", "server certificate does
 * not match the name 'other'", "server certificate expired", "server
 * requires a client certificate", "server refused the client certificate:
 * tlsv1 alert unknown ca".  A refused certificate is -EACCES (never
 * retried); a connection closed or reset is -ECONNRESET, like a plain
 * socket's.  'err' and 'errlen' receive the reason and are left alone on
 * success and on -EAGAIN.
 */
#ifndef BACKEND_TLS_H
#define BACKEND_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/** The TLS options of an endpoint; every string borrowed, NULL if unset. */
struct be_tls_options {
	const char *ca; /* PEM file of trusted CAs; NULL: the system's */
	const char *cert; /* PEM client certificate (chain) for mutual TLS */
	const char *key; /* PEM private key of 'cert' */
	const char *server_name; /* SNI and verified name; NULL: URL's host */
};

/**
 * Checks 'o' against the URL's scheme ('tls': rediss://) without touching
 * a file: TLS options with a plain URL, 'cert' without 'key' or the other
 * way round, and an empty value are refused.  Returns 0, or -EINVAL with
 * a one-line reason in 'err' of 'errlen' bytes naming the option as the
 * mount spells it ("tls_cert needs tls_key") or, with 'cli', as
 * sessfs-migrate does ("--tls-cert needs --tls-key").  Pure; thread-safe.
 */
int be_tls_options_check(const struct be_tls_options *o, bool tls, bool cli,
			 char *err, size_t errlen);

struct be_tls;

/**
 * Returns a new client context (one reference) for the host 'host' (the
 * default server name) with the options 'o' (copied): loads the CA file
 * or the system's trust store, the client certificate and its key, and
 * checks that they match.  NULL with a one-line reason in 'err' ("cannot
 * read the private key '/x': No such file or directory", "private key
 * '/k' does not match the client certificate '/c'").  The key's bytes are
 * never part of a message.  Any thread; the files are read here only.
 */
struct be_tls *be_tls_new(const struct be_tls_options *o, const char *host,
			  char *err, size_t errlen);
/** Takes a reference on 't' and returns it; NULL is allowed.  Any thread. */
struct be_tls *be_tls_ref(struct be_tls *t);
/** Drops a reference; the last frees 't'.  NULL is allowed.  Any thread. */
void be_tls_unref(struct be_tls *t);
/** The name 't' verifies the server's certificate against.  Borrowed. */
const char *be_tls_server_name(const struct be_tls *t);

struct be_tls_conn;

/**
 * Returns a new TLS connection of 't' over the connected non-blocking
 * socket 'fd' (borrowed: be_tls_conn_free() does not close it), offering
 * the last session 't' holds.  NULL on ENOMEM.  Any thread: connections
 * of one context may be made and used by many threads at once.
 */
struct be_tls_conn *be_tls_conn_new(struct be_tls *t, int fd);
/**
 * As be_tls_conn_new(), for a connection to 'host' (NULL: the context's
 * host): unless tls_server_name was given, the certificate must name
 * 'host' (Sentinel: each sentinel, and the master a sentinel named, by
 * the address it gave).  Only a connection that verifies the context's
 * own name offers or keeps its session: a resumed session is not
 * verified again.
 */
struct be_tls_conn *be_tls_conn_new_host(struct be_tls *t, int fd,
					 const char *host);
/**
 * Frees 'tc'; NULL is allowed.  After no fatal error the session stays
 * resumable (no close_notify is sent: the caller closes the socket).
 */
void be_tls_conn_free(struct be_tls_conn *tc);

/**
 * Runs the handshake.  0 when done, -EAGAIN with '*want' set when it
 * must wait, else -errno with the reason in 'err' (a refused server
 * certificate: -EACCES).
 */
int be_tls_handshake(struct be_tls_conn *tc, short *want, char *err,
		     size_t errlen);
/**
 * Reads up to 'len' decrypted bytes into 'buf'.  Returns how many (> 0),
 * or -EAGAIN with '*want', or -errno with the reason in 'err'
 * (-ECONNRESET when the server closed the connection; -EACCES when it
 * refused our certificate, which TLS 1.3 reports at the first read).
 */
ssize_t be_tls_read(struct be_tls_conn *tc, void *buf, size_t len, short *want,
		    char *err, size_t errlen);
/**
 * Writes up to 'len' bytes of 'buf'.  Returns how many were taken (> 0),
 * or -EAGAIN with '*want' (call again with the same 'buf' and 'len'), or
 * -errno with the reason in 'err'.
 */
ssize_t be_tls_write(struct be_tls_conn *tc, const void *buf, size_t len,
		     short *want, char *err, size_t errlen);
/**
 * Whether the server asked for a client certificate in the handshake of
 * 'tc' (not in a resumed one).  A TLS 1.3 server says whether it accepts
 * ours (or its absence) only after our side of the handshake is done, in
 * an alert that a reset destroys once we have written: then
 * be_tls_settle() before the first write.
 */
bool be_tls_cert_asked(const struct be_tls_conn *tc);
/**
 * Reads what the server sends right after the handshake, without taking
 * application data: 0 once it handed out a session ticket (it accepted
 * us), -EAGAIN with '*want' until then, or -errno with the reason of its
 * alert ("server requires a client certificate": -EACCES).  A server that
 * sends no ticket leaves it at -EAGAIN: the caller bounds the wait.
 */
int be_tls_settle(struct be_tls_conn *tc, short *want, char *err,
		  size_t errlen);
/** Whether 'tc' holds received bytes not read yet (a record or part). */
bool be_tls_pending(const struct be_tls_conn *tc);
/** Whether the handshake of 'tc' resumed an earlier session. */
bool be_tls_resumed(const struct be_tls_conn *tc);

#endif /* BACKEND_TLS_H */
