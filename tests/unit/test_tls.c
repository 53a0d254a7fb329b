/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/tls.c and TLS in backend/conn.c: the option
 * checks (pure), the files a context loads and their refusals, then a
 * redis-server with a TLS port and certificates made here with the openssl
 * command: mutual TLS with large values and a long pipeline, the host
 * name and the IP address verified, each refusal with its reason (unknown
 * CA, name mismatch, no client certificate, a port without TLS), a
 * handshake that times out, and session resumption on reconnect.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "tls.h"
#include "testutil.h"

#define NPIPE	1000
#define BIG_LEN (1024 * 1024)

static char certs[64]; /* the certificates' temp dir */

static bool str_has(const char *s, const char *part)
{
	return s && strstr(s, part);
}

/* Checks that 'o' is refused for a 'tls' URL with a message naming 'msg'. */
static void check_refused(const struct be_tls_options *o, bool tls, bool cli,
			  const char *msg)
{
	char err[256] = "";

	CHECK(be_tls_options_check(o, tls, cli, err, sizeof(err)) == -EINVAL);
	if (!str_has(err, msg)) {
		fprintf(stderr, "got '%s', want '%s'\n", err, msg);
		test_failures++;
	}
}

static void test_options_check(void)
{
	struct be_tls_options o = { 0 };
	char err[256];

	CHECK(be_tls_options_check(&o, false, false, err, sizeof(err)) == 0);
	CHECK(be_tls_options_check(&o, true, false, err, sizeof(err)) == 0);
	o.ca = "/ca.pem";
	check_refused(&o, false, false, "tls_ca needs a rediss:// URL");
	check_refused(&o, false, true, "--tls-ca needs a rediss:// URL");
	CHECK(be_tls_options_check(&o, true, false, err, sizeof(err)) == 0);
	o.cert = "/c.pem";
	check_refused(&o, true, false, "tls_cert needs tls_key");
	check_refused(&o, true, true, "--tls-cert needs --tls-key");
	o.key = "/k.pem";
	CHECK(be_tls_options_check(&o, true, false, err, sizeof(err)) == 0);
	o.cert = NULL;
	check_refused(&o, true, false, "tls_key needs tls_cert");
	o = (struct be_tls_options){ .server_name = "" };
	check_refused(&o, true, false, "empty tls_server_name");
	o = (struct be_tls_options){ .ca = "" };
	check_refused(&o, true, true, "empty --tls-ca");
	o = (struct be_tls_options){ .server_name = "redis.example" };
	check_refused(&o, false, false, "tls_server_name needs a rediss://");
}

/* Makes the certificates with the openssl command; 0, 77 or 1. */
static int make_certs(void)
{
	char cmd[4096];

	if (system("openssl version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "openssl not found: skipping\n");
		return 77;
	}
	snprintf(certs, sizeof(certs), "/tmp/sessfs-tls-XXXXXX");
	if (!mkdtemp(certs))
		return 1;
	snprintf(
		cmd, sizeof(cmd),
		"set -e; cd %s; exec 2>openssl.log\n"
		"key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; }\n"
		"ca() { key $1.key; openssl req -x509 -new -key $1.key -days 2 -subj /CN=$1 -out $1.crt; }\n"
		"signed() { key $1.key; printf '%%s\\n' \"$2\" >$1.ext;"
		" openssl req -new -key $1.key -subj /CN=$1 -out $1.csr;"
		" openssl x509 -req -in $1.csr -CA ${3:-ca}.crt -CAkey ${3:-ca}.key"
		" -CAcreateserial -days 2 -extfile $1.ext -out $1.crt; }\n"
		"ca ca; ca other\n"
		"signed server 'subjectAltName=IP:127.0.0.1,DNS:localhost'\n"
		"signed client 'extendedKeyUsage=clientAuth'\n"
		"signed stranger 'extendedKeyUsage=clientAuth' other\n",
		certs);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot make certificates (see %s)\n", certs);
		return 1;
	}
	return 0;
}

static void remove_certs(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	if (certs[0] && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", certs);
}

/* "<certs>/<name>" in a static buffer of 'slot' (0..3). */
static const char *cert_path(int slot, const char *name)
{
	static char buf[4][128];

	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", certs, name);
	return buf[slot];
}

/* A new context with the client certificate 'client' (NULL: none). */
static struct be_tls *tls_ctx_as(const char *ca, const char *client,
				 const char *server_name, char *err,
				 size_t errlen)
{
	struct be_tls_options o = { .server_name = server_name };
	char name[2][64];

	o.ca = ca ? cert_path(0, ca) : NULL;
	if (client) {
		snprintf(name[0], sizeof(name[0]), "%s.crt", client);
		snprintf(name[1], sizeof(name[1]), "%s.key", client);
		o.cert = cert_path(1, name[0]);
		o.key = cert_path(2, name[1]);
	}
	return be_tls_new(&o, "127.0.0.1", err, errlen);
}

/* A new context; 'with_cert' adds the client certificate. */
static struct be_tls *tls_ctx(const char *ca, bool with_cert,
			      const char *server_name, char *err, size_t errlen)
{
	return tls_ctx_as(ca, with_cert ? "client" : NULL, server_name, err,
			  errlen);
}

static void check_new_fails(struct be_tls_options *o, const char *msg)
{
	char err[256] = "";
	struct be_tls *t = be_tls_new(o, "h", err, sizeof(err));

	CHECK(!t);
	be_tls_unref(t);
	if (!str_has(err, msg)) {
		fprintf(stderr, "got '%s', want '%s'\n", err, msg);
		test_failures++;
	}
}

static void test_files(void)
{
	struct be_tls_options o = { 0 };
	struct be_endpoint a = { 0 }, b;
	char err[256];
	struct be_tls *t;

	t = be_tls_new(&o, "redis.example", err, sizeof(err));
	CHECK(t && !strcmp(be_tls_server_name(t), "redis.example"));
	/* Copies of an endpoint share its context. */
	a.host = strdup("h");
	a.tls = true;
	a.tls_ctx = be_tls_ref(t);
	CHECK(be_endpoint_copy(&b, &a) == 0);
	CHECK(b.tls && b.tls_ctx == t);
	be_endpoint_release(&a);
	be_endpoint_release(&b);
	be_tls_unref(t);

	o.ca = "/nonexistent/ca.crt";
	check_new_fails(&o, "cannot read the CA file '/nonexistent/ca.crt'");
	o.ca = cert_path(0, "client.key");
	check_new_fails(&o, "cannot load the CA file");
	o.ca = cert_path(0, "ca.crt");
	o.cert = cert_path(1, "client.crt");
	o.key = "/nonexistent/k";
	check_new_fails(&o, "cannot read the private key '/nonexistent/k'");
	o.key = cert_path(2, "server.key");
	check_new_fails(&o, "private key");
	o.key = cert_path(2, "ca.crt");
	check_new_fails(&o, "cannot load the private key");
	o.cert = cert_path(1, "client.key");
	o.key = cert_path(2, "client.key");
	check_new_fails(&o, "cannot load the client certificate");
	o = (struct be_tls_options){ .server_name = "other" };
	t = be_tls_new(&o, "h", err, sizeof(err));
	CHECK(t && !strcmp(be_tls_server_name(t), "other"));
	be_tls_unref(t);
}

/* A connection to 'host':'port' over TLS with the context 't' (stolen). */
static struct be_conn *tls_conn(const char *host, int port, struct be_tls *t,
				double timeout)
{
	struct be_endpoint ep = { 0 };
	struct be_conn *c;

	ep.host = strdup(host);
	ep.port = port;
	ep.tls = true;
	ep.tls_ctx = t;
	c = be_conn_new(&ep, timeout);
	be_endpoint_release(&ep);
	CHECK(c != NULL);
	return c;
}

/* Connects with 't' (stolen) and checks the outcome and its reason. */
static void check_connect(const char *host, int port, struct be_tls *t,
			  int want, const char *msg)
{
	/* Generous: valgrind and parallel tests make handshakes slow. */
	struct be_conn *c =
		tls_conn(host, port, t, want == -ETIMEDOUT ? 0.5 : 5);
	int ret = be_conn_connect(c);

	CHECK(ret == want);
	if (ret != want || (msg && !str_has(be_conn_errstr(c), msg)))
		fprintf(stderr, "%s:%d: got %d '%s', want %d '%s'\n", host,
			port, ret, be_conn_errstr(c), want, msg ? msg : "");
	if (msg)
		CHECK(str_has(be_conn_errstr(c), msg));
	be_conn_free(c);
}

static void test_refusals(const struct test_redis *r, int tls_port)
{
	char err[256];

	check_connect("127.0.0.1", tls_port,
		      tls_ctx("ca.crt", true, NULL, err, sizeof(err)), 0, NULL);
	check_connect("localhost", tls_port,
		      tls_ctx("ca.crt", true, "localhost", err, sizeof(err)), 0,
		      NULL);
	check_connect("127.0.0.1", tls_port,
		      tls_ctx("other.crt", true, NULL, err, sizeof(err)),
		      -EACCES, "server certificate not trusted: unknown CA");
	check_connect("127.0.0.1", tls_port,
		      tls_ctx(NULL, true, NULL, err, sizeof(err)), -EACCES,
		      "unknown CA");
	check_connect("127.0.0.1", tls_port,
		      tls_ctx("ca.crt", true, "other", err, sizeof(err)),
		      -EACCES,
		      "server certificate does not match the name 'other'");
	check_connect("127.0.0.1", tls_port,
		      tls_ctx("ca.crt", true, "127.0.0.2", err, sizeof(err)),
		      -EACCES, "does not match the name '127.0.0.2'");
	check_connect("127.0.0.1", tls_port,
		      tls_ctx("ca.crt", false, NULL, err, sizeof(err)), -EACCES,
		      "server requires a client certificate");
	/* Signed by a CA the server does not trust: its alert says so. */
	check_connect("127.0.0.1", tls_port,
		      tls_ctx_as("ca.crt", "stranger", NULL, err, sizeof(err)),
		      -EACCES, "server refused the client certificate");
	/* A plain Redis waits for a newline that the ClientHello lacks. */
	check_connect("127.0.0.1", r->port,
		      tls_ctx("ca.crt", true, NULL, err, sizeof(err)),
		      -ETIMEDOUT, "does the server speak TLS on this port?");
}

static void test_traffic(int tls_port)
{
	char err[256];
	struct be_conn *c =
		tls_conn("127.0.0.1", tls_port,
			 tls_ctx("ca.crt", true, NULL, err, sizeof(err)), 10.0);
	const char *set[3] = { "SET", "big", NULL };
	size_t setlen[3] = { 3, 3, BIG_LEN };
	const char *get[2] = { "GET", "big" };
	struct be_cmd cmds[NPIPE];
	redisReply *replies[NPIPE], *r = NULL;
	const char *incr[2] = { "INCR", "n" };
	char *big = malloc(BIG_LEN);
	int i;

	CHECK(big != NULL);
	if (!big)
		return;
	for (i = 0; i < BIG_LEN; i++)
		big[i] = (char)(i * 7);
	set[2] = big;
	CHECK(be_conn_command(c, &r, 3, set, setlen, 0) == 0);
	freeReplyObject(r);
	CHECK(be_conn_command(c, &r, 2, get, NULL, 0) == 0);
	CHECK(r && r->type == REDIS_REPLY_STRING && r->len == BIG_LEN &&
	      !memcmp(r->str, big, BIG_LEN));
	freeReplyObject(r);
	for (i = 0; i < NPIPE; i++)
		cmds[i] = (struct be_cmd){ 2, incr, NULL };
	CHECK(be_conn_pipeline(c, cmds, NPIPE, replies, 0) == 0);
	CHECK(replies[NPIPE - 1]->type == REDIS_REPLY_INTEGER &&
	      replies[NPIPE - 1]->integer == NPIPE);
	for (i = 0; i < NPIPE; i++)
		freeReplyObject(replies[i]);
	CHECK(!be_conn_partial(c));
	free(big);
	be_conn_free(c);
}

/* Runs 'words' on 'c'; returns the integer reply or -1. */
static long long int_cmd(struct be_conn *c, int argc, const char **argv)
{
	redisReply *r = NULL;
	long long v = -1;

	if (be_conn_command(c, &r, argc, argv, NULL, 0) == 0 &&
	    r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	if (r)
		freeReplyObject(r);
	return v;
}

/*
 * A reconnect resumes the session: after our own close, after the server
 * killed the connection, and on another connection of the same context.
 */
static void test_resume(int tls_port)
{
	const char *client_id[2] = { "CLIENT", "ID" };
	const char *kill_id[4] = { "CLIENT", "KILL", "ID", NULL };
	char err[256], id[32];
	struct be_tls *t = tls_ctx("ca.crt", true, NULL, err, sizeof(err));
	struct be_conn *c = tls_conn("127.0.0.1", tls_port, be_tls_ref(t), 5);
	struct be_conn *killer = tls_conn("127.0.0.1", tls_port, t, 5);
	long long before;

	before = int_cmd(c, 2, client_id);
	CHECK(before > 0);
	CHECK(!be_conn_tls_resumed(c));
	be_conn_close(c);
	CHECK(int_cmd(c, 2, client_id) > before);
	CHECK(be_conn_tls_resumed(c));

	snprintf(id, sizeof(id), "%lld", int_cmd(c, 2, client_id));
	kill_id[3] = id;
	CHECK(int_cmd(killer, 4, kill_id) == 1);
	CHECK(be_conn_tls_resumed(killer));
	/* The transport error is retried on a fresh, resumed connection. */
	CHECK(int_cmd(c, 2, client_id) > atoll(id));
	CHECK(be_conn_tls_resumed(c));
	be_conn_free(killer);
	be_conn_free(c);
}

/* A server that accepts but never answers: the handshake times out. */
static void test_handshake_timeout(struct test_redis *r, int tls_port)
{
	char err[256];
	struct be_conn *c =
		tls_conn("127.0.0.1", tls_port,
			 tls_ctx("ca.crt", true, NULL, err, sizeof(err)), 0.3);
	int ret;

	kill(r->pid, SIGSTOP);
	ret = be_conn_connect(c);
	kill(r->pid, SIGCONT);
	CHECK(ret == -ETIMEDOUT);
	CHECK(str_has(be_conn_errstr(c), "timed out in the TLS handshake"));
	be_conn_free(c);
}

int main(void)
{
	struct test_redis r;
	char conf[1024];
	int ret, tls_port;

	test_options_check();
	ret = make_certs();
	if (ret)
		return ret;
	test_files();
	tls_port = test_free_port();
	snprintf(conf, sizeof(conf),
		 "tls-port %d\n"
		 "tls-cert-file %s/server.crt\n"
		 "tls-key-file %s/server.key\n"
		 "tls-ca-cert-file %s/ca.crt\n"
		 "tls-auth-clients yes\n",
		 tls_port, certs, certs, certs);
	ret = test_redis_start(&r, conf);
	if (ret) {
		remove_certs();
		return ret;
	}
	test_refusals(&r, tls_port);
	test_traffic(tls_port);
	test_resume(tls_port);
	test_handshake_timeout(&r, tls_port);
	test_redis_stop(&r);
	remove_certs();
	return test_exit();
}
