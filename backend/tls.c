/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS for our transport (see tls.h): the shared client context of an
 * endpoint, with peer and name verification always on and the last
 * session kept for resumption, and non-blocking TLS connections whose
 * waits conn.c does.  Every OpenSSL failure is turned into -errno and a
 * one-line reason here, where SSL_get_error() and the error queue are
 * seen, and the queue is cleared before each call (it is per thread).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

struct be_tls {
	atomic_uint refs;
	SSL_CTX *ctx;
	char *server_name;
	bool name_given; /* tls_server_name: every connection verifies it */
	bool has_cert; /* a client certificate is configured */
	pthread_mutex_t lock; /* guards 'session' */
	SSL_SESSION *session; /* the last one the server gave, or NULL */
};

struct be_tls_conn {
	struct be_tls *tls;
	SSL *ssl;
	char *name; /* the name verified: the context's or the host's */
	bool failed; /* a fatal error: no shutdown, no resumption */
	bool cert_asked; /* the server asked for a client certificate */
	bool got_session; /* the server handed out a session (ticket) */
};

/* Whether 's' is set but empty: "-o tls_ca=" is a mistake, not a default. */
static bool is_empty(const char *s)
{
	return s && !*s;
}

int be_tls_options_check(const struct be_tls_options *o, bool tls, bool cli,
			 char *err, size_t errlen)
{
	static const char *const mount_names[] = { "tls_ca", "tls_cert",
						   "tls_key",
						   "tls_server_name" };
	static const char *const cli_names[] = { "--tls-ca", "--tls-cert",
						 "--tls-key",
						 "--tls-server-name" };
	const char *const *names = cli ? cli_names : mount_names;
	const char *vals[] = { o->ca, o->cert, o->key, o->server_name };
	size_t i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		if (is_empty(vals[i]))
			return be_fail(err, errlen, -EINVAL, "empty %s",
				       names[i]);
		if (vals[i] && !tls)
			return be_fail(err, errlen, -EINVAL,
				       "%s needs a rediss:// URL", names[i]);
	}
	if (o->cert && !o->key)
		return be_fail(err, errlen, -EINVAL, "%s needs %s", names[1],
			       names[2]);
	if (o->key && !o->cert)
		return be_fail(err, errlen, -EINVAL, "%s needs %s", names[2],
			       names[1]);
	return 0;
}

/*
 * The reason of the oldest error in this thread's queue, lowercase as
 * OpenSSL writes it ("no certificate or crl found"), or 'dflt'.
 */
static const char *queue_reason(const char *dflt)
{
	unsigned long code = ERR_peek_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;

	return r ? r : dflt;
}

/*
 * Checks that the file 'path' of option 'what' can be opened, so that a
 * missing file is named as such rather than by OpenSSL's error stack.
 */
static int check_readable(const char *what, const char *path, char *err,
			  size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char buf[128];

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return be_fail(err, errlen, -errno, "cannot read the %s '%s': %s", what,
		       path, strerror_r(errno, buf, sizeof(buf)));
}

/* A pass phrase is never asked for on a terminal: encrypted keys fail. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return -1;
}

/*
 * Called by OpenSSL with each session the server hands out (TLS 1.2: at
 * the handshake; TLS 1.3: in a ticket after it): keep the newest.
 * Returns 1: we own 'sess' now.
 */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct be_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct be_tls_conn *tc = SSL_get_app_data(ssl);
	SSL_SESSION *old;

	tc->got_session = true;
	/* Only sessions of the context's own name are offered again. */
	if (strcmp(tc->name, t->server_name) != 0)
		return 0;
	pthread_mutex_lock(&t->lock);
	old = t->session;
	t->session = sess;
	pthread_mutex_unlock(&t->lock);
	if (old)
		SSL_SESSION_free(old);
	return 1;
}

/*
 * Called by OpenSSL when the server asks for a client certificate, with
 * or without one configured: remember it for be_tls_cert_asked().
 * Returns 1: go on (with ours, or with none).
 */
static int cert_asked(SSL *ssl, void *arg)
{
	struct be_tls_conn *tc = SSL_get_app_data(ssl);

	tc->cert_asked = true;
	return 1;
}

/* Loads the trust store and the client certificate into 't->ctx'. */
static int load_files(struct be_tls *t, const struct be_tls_options *o,
		      char *err, size_t errlen)
{
	int ret;

	if (o->ca) {
		ret = check_readable("CA file", o->ca, err, errlen);
		if (ret < 0)
			return ret;
		if (SSL_CTX_load_verify_locations(t->ctx, o->ca, NULL) != 1)
			return be_fail(
				err, errlen, -EINVAL,
				"cannot load the CA file '%s': %s", o->ca,
				queue_reason("not a PEM certificate file"));
	} else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
		return be_fail(err, errlen, -EINVAL,
			       "cannot load the system's trust store: %s",
			       queue_reason("unknown error"));
	}
	if (!o->cert)
		return 0;
	ret = check_readable("client certificate", o->cert, err, errlen);
	if (ret == 0)
		ret = check_readable("private key", o->key, err, errlen);
	if (ret < 0)
		return ret;
	if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert) != 1)
		return be_fail(err, errlen, -EINVAL,
			       "cannot load the client certificate '%s': %s",
			       o->cert, queue_reason("not a PEM certificate"));
	if (SSL_CTX_use_PrivateKey_file(t->ctx, o->key, SSL_FILETYPE_PEM) != 1)
		return be_fail(err, errlen, -EINVAL,
			       "cannot load the private key '%s': %s", o->key,
			       queue_reason("not a PEM private key"));
	if (SSL_CTX_check_private_key(t->ctx) != 1)
		return be_fail(
			err, errlen, -EINVAL,
			"private key '%s' does not match the client certificate '%s'",
			o->key, o->cert);
	t->has_cert = true;
	return 0;
}

struct be_tls *be_tls_new(const struct be_tls_options *o, const char *host,
			  char *err, size_t errlen)
{
	struct be_tls *t = calloc(1, sizeof(*t));
	const char *name = o->server_name ? o->server_name : host;

	if (!t || pthread_mutex_init(&t->lock, NULL)) {
		free(t);
		be_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	atomic_init(&t->refs, 1);
	ERR_clear_error();
	t->name_given = o->server_name != NULL;
	t->server_name = strdup(name ? name : "");
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->server_name || !t->ctx) {
		be_fail(err, errlen, -ENOMEM, "out of memory");
		goto out_free;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_default_passwd_cb(t->ctx, no_passphrase);
	/* conn.c writes from a buffer that may move between retries. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A server that closes without close_notify: a plain EOF. */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	/* Sessions come to new_session(); OpenSSL keeps no client cache. */
	SSL_CTX_set_session_cache_mode(
		t->ctx,
		SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->ctx, new_session);
	SSL_CTX_set_cert_cb(t->ctx, cert_asked, NULL);
	if (load_files(t, o, err, errlen) < 0)
		goto out_free;
	ERR_clear_error();
	return t;
out_free:
	ERR_clear_error();
	SSL_CTX_free(t->ctx);
	free(t->server_name);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}

struct be_tls *be_tls_ref(struct be_tls *t)
{
	if (t)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void be_tls_unref(struct be_tls *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	if (t->session)
		SSL_SESSION_free(t->session);
	SSL_CTX_free(t->ctx);
	free(t->server_name);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

const char *be_tls_server_name(const struct be_tls *t)
{
	return t->server_name;
}

static bool is_ip(const char *name)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, addr) == 1 ||
	       inet_pton(AF_INET6, name, addr) == 1;
}

/* Sets the name to verify (and send as SNI unless it is an IP address). */
static int set_peer_name(struct be_tls_conn *tc)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(tc->ssl);
	const char *name = tc->name;

	X509_VERIFY_PARAM_set_hostflags(param,
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip(name))
		return X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(tc->ssl, name) != 1)
		return -1;
	return X509_VERIFY_PARAM_set1_host(param, name, 0) == 1 ? 0 : -1;
}

struct be_tls_conn *be_tls_conn_new(struct be_tls *t, int fd)
{
	return be_tls_conn_new_host(t, fd, NULL);
}

struct be_tls_conn *be_tls_conn_new_host(struct be_tls *t, int fd,
					 const char *host)
{
	struct be_tls_conn *tc = calloc(1, sizeof(*tc));
	bool own = host && !t->name_given && strcmp(host, t->server_name);

	if (!tc)
		return NULL;
	ERR_clear_error();
	tc->tls = t;
	tc->name = strdup(own ? host : t->server_name);
	tc->ssl = SSL_new(t->ctx);
	if (!tc->name || !tc->ssl || SSL_set_fd(tc->ssl, fd) != 1 ||
	    set_peer_name(tc) < 0)
		goto out_free;
	SSL_set_app_data(tc->ssl, tc);
	SSL_set_connect_state(tc->ssl);
	/*
	 * The context keeps one session, of its own name: a connection that
	 * verifies another name (a sentinel, the master it named) does not
	 * offer it, since a resumed session is not verified again.
	 */
	pthread_mutex_lock(&t->lock);
	if (!own && t->session && SSL_SESSION_is_resumable(t->session))
		SSL_set_session(tc->ssl, t->session); /* takes a reference */
	pthread_mutex_unlock(&t->lock);
	return tc;
out_free:
	ERR_clear_error();
	SSL_free(tc->ssl);
	free(tc->name);
	free(tc);
	return NULL;
}

void be_tls_conn_free(struct be_tls_conn *tc)
{
	if (!tc)
		return;
	/*
	 * SSL_free() of a connection never shut down marks its session not
	 * resumable; a quiet shutdown sends nothing and keeps it.  A fatal
	 * error must not be followed by SSL_shutdown().
	 */
	if (!tc->failed && SSL_is_init_finished(tc->ssl)) {
		SSL_set_quiet_shutdown(tc->ssl, 1);
		SSL_shutdown(tc->ssl);
	}
	ERR_clear_error();
	SSL_free(tc->ssl);
	free(tc->name);
	free(tc);
}

/* Why the server's certificate was refused, from the verify result 'vr'. */
static int verify_failure(struct be_tls_conn *tc, long vr, char *err,
			  size_t errlen)
{
	switch (vr) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_CERT_UNTRUSTED:
		return be_fail(err, errlen, -EACCES,
			       "server certificate not trusted: unknown CA");
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return be_fail(
			err, errlen, -EACCES,
			"server certificate does not match the name '%s'",
			tc->name);
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return be_fail(err, errlen, -EACCES,
			       "server certificate expired");
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return be_fail(err, errlen, -EACCES,
			       "server certificate not yet valid");
	default:
		return be_fail(err, errlen, -EACCES,
			       "server certificate refused: %s",
			       X509_verify_cert_error_string(vr));
	}
}

/*
 * Maps an SSL_ERROR_SSL failure of 'tc': the server's certificate
 * refused by us, ours refused by the server (TLS 1.3 tells it at the
 * first read), a peer that does not speak TLS, or OpenSSL's reason.
 */
static int ssl_failure(struct be_tls_conn *tc, char *err, size_t errlen)
{
	long vr = SSL_get_verify_result(tc->ssl);
	unsigned long code = ERR_peek_last_error();
	int reason = ERR_GET_REASON(code);

	if (vr != X509_V_OK)
		return verify_failure(tc, vr, err, errlen);
	switch (reason) {
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return be_fail(err, errlen, -EACCES,
			       "server requires a client certificate");
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		if (!tc->tls->has_cert)
			return be_fail(
				err, errlen, -EACCES,
				"server refused the handshake: it may require a client certificate");
		break;
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
		return be_fail(err, errlen, -EACCES,
			       "server refused the client certificate: %s",
			       ERR_reason_error_string(code));
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
		return be_fail(err, errlen, -EPROTO,
			       "server does not speak TLS on this port (%s)",
			       ERR_reason_error_string(code));
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return be_fail(err, errlen, -ECONNRESET,
			       "connection closed by server");
#endif
	}
	return be_fail(err, errlen, -EPROTO, "tls: %s",
		       code ? ERR_reason_error_string(code) : "protocol error");
}

/*
 * Maps the result 'ret' of SSL_do_handshake/read/write on 'tc' (its
 * errno in 'saved'): -EAGAIN with '*want', or -errno with a reason.
 */
static int map_error(struct be_tls_conn *tc, int ret, int saved, short *want,
		     char *err, size_t errlen)
{
	char buf[128];
	int e = SSL_get_error(tc->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want = POLLIN;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want = POLLOUT;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ret = be_fail(err, errlen, -ECONNRESET,
			      "connection closed by server");
		break;
	case SSL_ERROR_SYSCALL:
		tc->failed = true;
		if (saved && !ERR_peek_error()) {
			ret = be_fail(err, errlen, -saved, "%s",
				      strerror_r(saved, buf, sizeof(buf)));
			if (err && err[0] >= 'A' && err[0] <= 'Z')
				err[0] += 'a' - 'A';
		} else {
			ret = be_fail(err, errlen, -ECONNRESET,
				      "connection closed by server");
		}
		break;
	case SSL_ERROR_SSL:
		tc->failed = true;
		ret = ssl_failure(tc, err, errlen);
		break;
	default:
		tc->failed = true;
		ret = be_fail(err, errlen, -EPROTO, "tls: unexpected error %d",
			      e);
	}
	ERR_clear_error();
	return ret;
}

int be_tls_handshake(struct be_tls_conn *tc, short *want, char *err,
		     size_t errlen)
{
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_do_handshake(tc->ssl);
	if (ret == 1)
		return 0;
	return map_error(tc, ret, errno, want, err, errlen);
}

ssize_t be_tls_read(struct be_tls_conn *tc, void *buf, size_t len, short *want,
		    char *err, size_t errlen)
{
	size_t n = 0;
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_read_ex(tc->ssl, buf, len, &n);
	if (ret == 1)
		return (ssize_t)n;
	return map_error(tc, ret, errno, want, err, errlen);
}

ssize_t be_tls_write(struct be_tls_conn *tc, const void *buf, size_t len,
		     short *want, char *err, size_t errlen)
{
	size_t n = 0;
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_write_ex(tc->ssl, buf, len, &n);
	if (ret == 1)
		return (ssize_t)n;
	return map_error(tc, ret, errno, want, err, errlen);
}

bool be_tls_cert_asked(const struct be_tls_conn *tc)
{
	return tc->cert_asked;
}

int be_tls_settle(struct be_tls_conn *tc, short *want, char *err, size_t errlen)
{
	unsigned char byte;
	size_t n = 0;
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_peek_ex(tc->ssl, &byte, 1, &n);
	if (ret == 1)
		return 0;
	ret = map_error(tc, ret, errno, want, err, errlen);
	if (ret == -EAGAIN && tc->got_session)
		return 0;
	return ret;
}

bool be_tls_pending(const struct be_tls_conn *tc)
{
	return SSL_has_pending(tc->ssl) == 1;
}

bool be_tls_resumed(const struct be_tls_conn *tc)
{
	return SSL_session_reused(tc->ssl) == 1;
}
