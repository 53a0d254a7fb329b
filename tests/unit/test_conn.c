/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/conn.c against real redis-servers: commands, error
 * replies, a pipeline of 1000 commands, binary-safe keys and values, AUTH
 * with requirepass and with an ACL user, SELECT, the unix socket, and the
 * retry rules: reconnect after CLIENT KILL, a server stopped (SIGSTOP) for
 * less and for more than the budget, killed and restarted on the same
 * port, down for longer than the budget, busy with a script; then the pool
 * under several threads.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "pool.h"
#include "url.h"
#include "testutil.h"

#define NPIPE	     1000
#define BIG_LEN	     (1024 * 1024)
#define POOL_MAX     3
#define POOL_THREADS 8
#define POOL_INCRS   200

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Returns a new connection to the TCP port of 'r' (db, user, password). */
static struct be_conn *conn_tcp(const struct test_redis *r, int db,
				const char *user, const char *password,
				double timeout)
{
	struct be_endpoint ep = { 0 };
	struct be_conn *c;

	ep.host = strdup("127.0.0.1");
	ep.port = r->port;
	ep.db = db;
	ep.user = user ? strdup(user) : NULL;
	ep.password = password ? strdup(password) : NULL;
	c = be_conn_new(&ep, timeout);
	be_endpoint_release(&ep);
	CHECK(c != NULL);
	return c;
}

/* Runs the command 'words' (NULL-terminated, no NUL bytes) on 'c'. */
static int run(struct be_conn *c, redisReply **reply, unsigned int flags,
	       const char **words)
{
	int argc = 0;

	while (words[argc])
		argc++;
	return be_conn_command(c, reply, argc, words, NULL, flags);
}

/* Runs 'words' and checks that the reply is the status or string 'want'. */
static void expect(struct be_conn *c, const char **words, const char *want)
{
	redisReply *r = NULL;
	int ret = run(c, &r, 0, words);

	CHECK(ret == 0);
	if (ret) {
		fprintf(stderr, "%s: %d %s\n", words[0], ret,
			be_conn_errstr(c));
		return;
	}
	CHECK(r &&
	      (r->type == REDIS_REPLY_STATUS ||
	       r->type == REDIS_REPLY_STRING) &&
	      !strcmp(r->str, want));
	freeReplyObject(r);
}

static void expect_ping(struct be_conn *c)
{
	expect(c, (const char *[]){ "PING", NULL }, "PONG");
}

/* SIGKILLs the server of 'r' and reaps it; its dir stays. */
static void server_kill(struct test_redis *r)
{
	int status;

	kill(r->pid, SIGKILL);
	waitpid(r->pid, &status, 0);
	r->pid = 0;
}

/* Starts the server of 'r' again, same port and config, without waiting. */
static void server_respawn(struct test_redis *r)
{
	char conf[128];
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/redis.conf", r->dir);
	pid = fork();
	if (pid == 0) {
		execlp("redis-server", "redis-server", conf, (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0);
	r->pid = pid;
}

/* Waits (up to 10 s) until the server of 'r' answers PING again. */
static void server_wait(const struct test_redis *r)
{
	struct be_conn *c = conn_tcp(r, 0, NULL, NULL, 10);
	redisReply *reply;

	CHECK(run(c, &reply, 0, (const char *[]){ "PING", NULL }) == 0);
	if (reply)
		freeReplyObject(reply);
	be_conn_free(c);
}

static void test_command(const struct test_redis *r)
{
	struct be_conn *c = conn_tcp(r, 0, NULL, NULL, 5);
	redisReply *reply;
	int ret;

	CHECK(be_conn_connect(c) == 0);
	CHECK(!strcmp(be_conn_errstr(c), ""));
	CHECK(be_conn_connect(c) == 0);
	expect_ping(c);
	expect(c, (const char *[]){ "SET", "greeting", "hello", NULL }, "OK");
	expect(c, (const char *[]){ "GET", "greeting", NULL }, "hello");

	/* An error reply is a result, not a failure, and is not retried. */
	ret = run(c, &reply, 0, (const char *[]){ "INCR", "greeting", NULL });
	CHECK(ret == 0 && reply && reply->type == REDIS_REPLY_ERROR);
	if (reply)
		freeReplyObject(reply);
	ret = run(c, &reply, 0, (const char *[]){ "NOSUCHCOMMAND", NULL });
	CHECK(ret == 0 && reply && reply->type == REDIS_REPLY_ERROR);
	if (reply)
		freeReplyObject(reply);
	expect_ping(c);

	/* Closing is harmless; the next call reconnects. */
	be_conn_close(c);
	be_conn_close(c);
	expect(c, (const char *[]){ "GET", "greeting", NULL }, "hello");
	be_conn_free(c);
	be_conn_free(NULL);
}

static void test_pipeline(const struct test_redis *r)
{
	struct be_conn *c = conn_tcp(r, 0, NULL, NULL, 10);
	static char keys[NPIPE][16], vals[NPIPE][16];
	static const char *argv[NPIPE][3];
	static struct be_cmd cmds[NPIPE];
	static redisReply *replies[NPIPE];
	int i, bad = 0;

	for (i = 0; i < NPIPE; i++) {
		snprintf(keys[i], sizeof(keys[i]), "pipe:%d", i);
		snprintf(vals[i], sizeof(vals[i]), "v%d", i * 7);
		argv[i][0] = "SET";
		argv[i][1] = keys[i];
		argv[i][2] = vals[i];
		cmds[i] = (struct be_cmd){ 3, argv[i], NULL };
	}
	CHECK(be_conn_pipeline(c, cmds, NPIPE, replies, 0) == 0);
	for (i = 0; i < NPIPE; i++) {
		if (!replies[i] || replies[i]->type != REDIS_REPLY_STATUS)
			bad++;
		if (replies[i])
			freeReplyObject(replies[i]);
	}
	CHECK(bad == 0);

	for (i = 0; i < NPIPE; i++) {
		argv[i][0] = "GET";
		cmds[i].argc = 2;
	}
	CHECK(be_conn_pipeline(c, cmds, NPIPE, replies, 0) == 0);
	for (i = 0; i < NPIPE; i++) {
		if (!replies[i] || replies[i]->type != REDIS_REPLY_STRING ||
		    strcmp(replies[i]->str, vals[i]))
			bad++;
		if (replies[i])
			freeReplyObject(replies[i]);
	}
	CHECK(bad == 0);
	CHECK(be_conn_pipeline(c, cmds, 0, replies, 0) == 0);
	be_conn_free(c);
}

static void test_binary(const struct test_redis *r)
{
	struct be_conn *c = conn_tcp(r, 0, NULL, NULL, 10);
	static const char key[] = "bin\0key\r\n";
	const char *argv[3] = { "SET", key, NULL };
	size_t lens[3] = { 3, sizeof(key), 0 };
	redisReply *reply = NULL;
	char *big = malloc(BIG_LEN);
	size_t i;

	CHECK(big != NULL);
	if (!big)
		return;
	for (i = 0; i < BIG_LEN; i++)
		big[i] = (char)(i * 131 + (i >> 8));
	big[0] = '\0';
	big[BIG_LEN - 1] = '\0';
	argv[2] = big;
	lens[2] = BIG_LEN;
	CHECK(be_conn_command(c, &reply, 3, argv, lens, 0) == 0);
	CHECK(reply && reply->type == REDIS_REPLY_STATUS);
	if (reply)
		freeReplyObject(reply);

	argv[0] = "GET";
	CHECK(be_conn_command(c, &reply, 2, argv, lens, 0) == 0);
	CHECK(reply && reply->type == REDIS_REPLY_STRING &&
	      reply->len == BIG_LEN && !memcmp(reply->str, big, BIG_LEN));
	if (reply)
		freeReplyObject(reply);

	/* The key without its tail is another key. */
	lens[1] = 3;
	CHECK(be_conn_command(c, &reply, 2, argv, lens, 0) == 0);
	CHECK(reply && reply->type == REDIS_REPLY_NIL);
	if (reply)
		freeReplyObject(reply);
	free(big);
	be_conn_free(c);
}

static void test_auth(void)
{
	struct test_redis r;
	struct be_conn *c;
	redisReply *reply;
	double t0;
	int ret;

	ret = test_redis_start(&r, "requirepass topsecret\n"
				   "user alice on >alicepw ~* +@all\n"
				   "user bob off >bobpw ~* +@all");
	if (ret) {
		CHECK(ret == 77);
		return;
	}

	/* No password: refused at connect with the server's reason. */
	c = conn_tcp(&r, 0, NULL, NULL, 5);
	CHECK(be_conn_connect(c) == -EACCES);
	CHECK(!strncmp(be_conn_errstr(c), "NOAUTH", 6));
	ret = run(c, &reply, 0, (const char *[]){ "GET", "x", NULL });
	CHECK(ret == 0 && reply && reply->type == REDIS_REPLY_ERROR);
	if (reply)
		freeReplyObject(reply);
	be_conn_free(c);

	c = conn_tcp(&r, 0, NULL, "topsecret", 5);
	CHECK(be_conn_connect(c) == 0);
	expect(c, (const char *[]){ "ACL", "WHOAMI", NULL }, "default");
	be_conn_free(c);

	c = conn_tcp(&r, 0, "alice", "alicepw", 5);
	expect(c, (const char *[]){ "ACL", "WHOAMI", NULL }, "alice");
	be_conn_free(c);

	/* A wrong password fails at once, within a long budget. */
	c = conn_tcp(&r, 0, NULL, "wrongpw", 5);
	t0 = now();
	CHECK(be_conn_connect(c) == -EACCES);
	CHECK(!strncmp(be_conn_errstr(c), "WRONGPASS", 9));
	CHECK(!strstr(be_conn_errstr(c), "wrongpw"));
	ret = run(c, &reply, 0, (const char *[]){ "PING", NULL });
	CHECK(ret == -EACCES && !reply);
	CHECK(!strncmp(be_conn_errstr(c), "WRONGPASS", 9));
	CHECK(now() - t0 < 1.0);
	be_conn_free(c);

	c = conn_tcp(&r, 0, "alice", "topsecret", 5);
	CHECK(run(c, &reply, 0, (const char *[]){ "PING", NULL }) == -EACCES);
	CHECK(!strstr(be_conn_errstr(c), "topsecret"));
	be_conn_free(c);

	c = conn_tcp(&r, 0, "bob", "bobpw", 5);
	CHECK(be_conn_connect(c) == -EACCES);
	be_conn_free(c);

	/* A user without a password is a setup error, not a retry. */
	c = conn_tcp(&r, 0, "alice", NULL, 5);
	CHECK(be_conn_connect(c) == -EINVAL);
	CHECK(strstr(be_conn_errstr(c), "no password") != NULL);
	be_conn_free(c);

	/* AUTH and SELECT go together; a refused AUTH wins. */
	c = conn_tcp(&r, 2, "alice", "alicepw", 5);
	expect(c, (const char *[]){ "SET", "in2", "yes", NULL }, "OK");
	be_conn_free(c);
	c = conn_tcp(&r, 2, "alice", "nope", 5);
	CHECK(be_conn_connect(c) == -EACCES);
	be_conn_free(c);
	test_redis_stop(&r);
}

static void test_select(const struct test_redis *r)
{
	struct be_conn *c0 = conn_tcp(r, 0, NULL, NULL, 5);
	struct be_conn *c3 = conn_tcp(r, 3, NULL, NULL, 5);
	struct be_conn *bad = conn_tcp(r, 99, NULL, NULL, 5);
	redisReply *reply;

	expect(c3, (const char *[]){ "SET", "where", "db3", NULL }, "OK");
	CHECK(run(c0, &reply, 0, (const char *[]){ "GET", "where", NULL }) ==
	      0);
	CHECK(reply && reply->type == REDIS_REPLY_NIL);
	if (reply)
		freeReplyObject(reply);
	/* A reconnect selects the db again. */
	be_conn_close(c3);
	expect(c3, (const char *[]){ "GET", "where", NULL }, "db3");

	CHECK(be_conn_connect(bad) == -EINVAL);
	CHECK(strstr(be_conn_errstr(bad), "out of range") != NULL);
	CHECK(run(bad, &reply, 0, (const char *[]){ "PING", NULL }) == -EINVAL);
	be_conn_free(c0);
	be_conn_free(c3);
	be_conn_free(bad);
}

static void test_unix(const struct test_redis *r)
{
	struct be_endpoint ep;
	struct be_conn *c;
	char url[128], err[256];

	snprintf(url, sizeof(url), "unix://%s/redis.sock?db=5", r->dir);
	CHECK(be_url_parse(url, &ep, err, sizeof(err)) == 0);
	c = be_conn_new(&ep, 5);
	be_endpoint_release(&ep);
	CHECK(be_conn_connect(c) == 0);
	expect(c, (const char *[]){ "SET", "via", "unix", NULL }, "OK");
	be_conn_free(c);

	c = conn_tcp(r, 5, NULL, NULL, 5);
	expect(c, (const char *[]){ "GET", "via", NULL }, "unix");
	be_conn_free(c);

	snprintf(url, sizeof(url), "unix://%s/nosuch.sock", r->dir);
	CHECK(be_url_parse(url, &ep, err, sizeof(err)) == 0);
	c = be_conn_new(&ep, 5);
	be_endpoint_release(&ep);
	CHECK(be_conn_connect(c) == -ENOENT);
	CHECK(!strcmp(be_conn_errstr(c), "no such file or directory"));
	be_conn_free(c);
}

static void test_refused(const struct test_redis *r)
{
	struct test_redis gone = *r;
	struct be_conn *c;
	redisReply *reply;

	/* A port nobody listens on: the server's port + 1 may be taken. */
	gone.port = 1;
	c = conn_tcp(&gone, 0, NULL, NULL, 5);
	CHECK(be_conn_connect(c) == -ECONNREFUSED);
	CHECK(!strcmp(be_conn_errstr(c), "connection refused"));
	CHECK(run(c, &reply, BE_CMD_NORETRY,
		  (const char *[]){ "PING", NULL }) == -ECONNREFUSED);
	CHECK(!reply);
	be_conn_free(c);
}

static void test_client_kill(const struct test_redis *r)
{
	struct be_conn *a = conn_tcp(r, 0, NULL, NULL, 5);
	struct be_conn *b = conn_tcp(r, 0, NULL, NULL, 5);
	const char *kill_words[] = { "CLIENT", "KILL", "TYPE", "normal", NULL };
	redisReply *reply;
	int ret;

	expect_ping(a);
	/* SKIPME is the default: 'b' survives its own kill. */
	CHECK(run(b, &reply, 0, kill_words) == 0);
	CHECK(reply && reply->type == REDIS_REPLY_INTEGER &&
	      reply->integer >= 1);
	if (reply)
		freeReplyObject(reply);
	expect_ping(a);

	CHECK(run(b, &reply, 0, kill_words) == 0);
	if (reply)
		freeReplyObject(reply);
	ret = run(a, &reply, BE_CMD_NORETRY, (const char *[]){ "PING", NULL });
	CHECK(ret == -ECONNRESET || ret == -EPIPE);
	CHECK(!reply);
	expect_ping(a);
	be_conn_free(a);
	be_conn_free(b);
}

struct delayed_signal {
	pid_t pid;
	int sig;
	long delay_ms;
};

static void *delayed_signal_thread(void *arg)
{
	struct delayed_signal *d = arg;

	sleep_ms(d->delay_ms);
	kill(d->pid, d->sig);
	return NULL;
}

static void test_sigstop(const struct test_redis *r)
{
	struct be_conn *c = conn_tcp(r, 0, NULL, NULL, 3);
	struct delayed_signal d = { r->pid, SIGCONT, 500 };
	redisReply *reply;
	pthread_t th;
	double t0, dt;

	expect_ping(c);
	/* Stopped for less than the budget: the reply comes late. */
	kill(r->pid, SIGSTOP);
	CHECK(pthread_create(&th, NULL, delayed_signal_thread, &d) == 0);
	t0 = now();
	expect(c, (const char *[]){ "SET", "after", "stop", NULL }, "OK");
	dt = now() - t0;
	CHECK(dt >= 0.4 && dt < 2.0);
	pthread_join(th, NULL);
	be_conn_free(c);

	/* Stopped for longer than the budget: -ETIMEDOUT at the budget. */
	c = conn_tcp(r, 0, NULL, NULL, 0.5);
	expect_ping(c);
	kill(r->pid, SIGSTOP);
	t0 = now();
	CHECK(run(c, &reply, 0, (const char *[]){ "PING", NULL }) ==
	      -ETIMEDOUT);
	dt = now() - t0;
	CHECK(!reply);
	CHECK(dt >= 0.45 && dt < 1.0);
	CHECK(strstr(be_conn_errstr(c), "timed out") != NULL);
	kill(r->pid, SIGCONT);
	expect_ping(c);
	be_conn_free(c);
}

struct ping_job {
	struct be_conn *c;
	int ret;
	double elapsed;
};

static void *ping_thread(void *arg)
{
	struct ping_job *job = arg;
	redisReply *reply = NULL;
	double t0 = now();

	job->ret = run(job->c, &reply, 0, (const char *[]){ "PING", NULL });
	job->elapsed = now() - t0;
	if (job->ret == 0 && (!reply || reply->type != REDIS_REPLY_STATUS ||
			      strcmp(reply->str, "PONG")))
		job->ret = -EBADMSG;
	if (reply)
		freeReplyObject(reply);
	return NULL;
}

static void test_restart(struct test_redis *r)
{
	struct ping_job job = { conn_tcp(r, 0, NULL, NULL, 5), -1, 0 };
	struct be_conn *c;
	redisReply *reply;
	pthread_t th;
	double t0, dt;
	int ret;

	/* Killed and back on the same port within the budget. */
	expect_ping(job.c);
	server_kill(r);
	CHECK(pthread_create(&th, NULL, ping_thread, &job) == 0);
	sleep_ms(500);
	server_respawn(r);
	pthread_join(th, NULL);
	CHECK(job.ret == 0);
	CHECK(job.elapsed >= 0.4 && job.elapsed < 5.0);
	be_conn_free(job.c);

	/* Down for longer than the budget. */
	c = conn_tcp(r, 0, NULL, NULL, 1);
	expect_ping(c);
	server_kill(r);
	t0 = now();
	ret = run(c, &reply, 0, (const char *[]){ "PING", NULL });
	dt = now() - t0;
	CHECK(ret == -ETIMEDOUT && !reply);
	CHECK(dt >= 0.95 && dt < 1.5);
	CHECK(strstr(be_conn_errstr(c), "connection refused") != NULL);

	/* Without retries the failure is immediate and says why. */
	t0 = now();
	ret = run(c, &reply, BE_CMD_NORETRY, (const char *[]){ "PING", NULL });
	CHECK(ret == -ECONNREFUSED && now() - t0 < 0.5);
	be_conn_free(c);
	server_respawn(r);
	server_wait(r);
}

struct script_job {
	const struct test_redis *r;
	int ret;
	redisReply *reply;
};

static void *script_thread(void *arg)
{
	struct script_job *job = arg;
	struct be_conn *c = conn_tcp(job->r, 0, NULL, NULL, 30);

	job->ret =
		run(c, &job->reply, BE_CMD_NORETRY,
		    (const char *[]){ "EVAL", "while true do end", "0", NULL });
	be_conn_free(c);
	return NULL;
}

static void *script_kill_thread(void *arg)
{
	struct be_conn *c = conn_tcp(arg, 0, NULL, NULL, 5);
	redisReply *reply = NULL;

	sleep_ms(300);
	CHECK(run(c, &reply, BE_CMD_NORETRY,
		  (const char *[]){ "SCRIPT", "KILL", NULL }) == 0);
	if (reply)
		freeReplyObject(reply);
	be_conn_free(c);
	return NULL;
}

/* Waits until the server of 'c' answers BUSY; false after 10 s. */
static bool wait_busy(struct be_conn *c)
{
	redisReply *reply;
	bool busy = false;
	int i;

	for (i = 0; i < 1000 && !busy; i++) {
		if (run(c, &reply, BE_CMD_NORETRY,
			(const char *[]){ "PING", NULL }) == 0) {
			busy = reply->type == REDIS_REPLY_ERROR &&
			       !strncmp(reply->str, "BUSY ", 5);
			freeReplyObject(reply);
		}
		if (!busy)
			sleep_ms(10);
	}
	return busy;
}

static void test_busy(void)
{
	struct test_redis r;
	struct script_job job = { &r, -1, NULL };
	pthread_t script, killer;
	struct be_conn *c;
	double t0, dt;
	int ret;

	ret = test_redis_start(&r, "busy-reply-threshold 50");
	if (ret) {
		CHECK(ret == 77);
		return;
	}
	c = conn_tcp(&r, 0, NULL, NULL, 5);
	CHECK(pthread_create(&script, NULL, script_thread, &job) == 0);
	/* A NORETRY caller sees the transient reply itself. */
	CHECK(wait_busy(c));

	CHECK(pthread_create(&killer, NULL, script_kill_thread, &r) == 0);
	t0 = now();
	expect_ping(c);
	dt = now() - t0;
	CHECK(dt >= 0.2 && dt < 3.0);
	pthread_join(killer, NULL);
	pthread_join(script, NULL);
	CHECK(job.ret == 0 && job.reply &&
	      job.reply->type == REDIS_REPLY_ERROR);
	if (job.reply)
		freeReplyObject(job.reply);
	be_conn_free(c);
	test_redis_stop(&r);
}

static void test_maxclients(void)
{
	struct be_conn *a, *b;
	struct test_redis r;
	redisReply *reply;
	int ret;

	ret = test_redis_start(&r, "maxclients 1");
	if (ret) {
		CHECK(ret == 77);
		return;
	}
	/* testutil's own connection is gone; 'a' takes the only slot. */
	a = conn_tcp(&r, 0, NULL, NULL, 5);
	b = conn_tcp(&r, 0, NULL, NULL, 0.3);
	expect_ping(a);
	CHECK(be_conn_connect(b) == -EAGAIN);
	CHECK(strstr(be_conn_errstr(b), "max number of clients") != NULL);
	CHECK(run(b, &reply, 0, (const char *[]){ "PING", NULL }) ==
	      -ETIMEDOUT);
	CHECK(strstr(be_conn_errstr(b), "max number of clients") != NULL);
	be_conn_free(a);
	expect_ping(b);
	be_conn_free(b);
	test_redis_stop(&r);
}

struct pool_job {
	struct be_pool *pool;
	int failures;
};

static void *pool_thread(void *arg)
{
	struct pool_job *job = arg;
	redisReply *reply;
	struct be_conn *c;
	int i;

	for (i = 0; i < POOL_INCRS; i++) {
		c = be_pool_get(job->pool);
		if (!c || run(c, &reply, 0,
			      (const char *[]){ "INCR", "counter", NULL })) {
			job->failures++;
		} else {
			if (reply->type != REDIS_REPLY_INTEGER)
				job->failures++;
			freeReplyObject(reply);
		}
		be_pool_put(job->pool, c);
	}
	return NULL;
}

/* Counts the clients connected to the server of 'c', 'c' included. */
static long count_clients(struct be_conn *c)
{
	redisReply *reply;
	long n = -1;
	char *p;

	if (run(c, &reply, 0, (const char *[]){ "CLIENT", "LIST", NULL }))
		return -1;
	if (reply->type == REDIS_REPLY_STRING) {
		for (n = 0, p = reply->str; (p = strchr(p, '\n')); p++)
			n++;
	}
	freeReplyObject(reply);
	return n;
}

/* Sweeps 'pool' until it closes one connection (the kill is async). */
static void wait_sweep(struct be_pool *pool)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (be_pool_sweep(pool) == 1)
			return;
		usleep(10000);
	}
	CHECK(!"the sweep never saw the closed connection");
}

static void test_pool(const struct test_redis *r)
{
	struct be_endpoint ep = { 0 };
	struct pool_job jobs[POOL_THREADS];
	pthread_t th[POOL_THREADS];
	struct be_conn *a, *b, *c, *probe;
	struct be_pool *pool;
	redisReply *reply;
	char total[16];
	int i;

	ep.host = strdup("127.0.0.1");
	ep.port = r->port;
	pool = be_pool_new(&ep, 5, POOL_MAX);
	be_endpoint_release(&ep);
	CHECK(pool != NULL);
	if (!pool)
		return;

	/* A slot lends its own connection, or another while it is lent. */
	a = be_pool_get_at(pool, 3);
	b = be_pool_get_at(pool, 3 + POOL_MAX);
	CHECK(a && b && a != b);
	be_pool_put(pool, a);
	be_pool_put(pool, b);
	c = be_pool_get_at(pool, 3);
	CHECK(c == a);
	be_pool_put(pool, c);
	CHECK(be_pool_size(pool) == POOL_MAX);

	/* An idle connection the server closed is found by the sweep. */
	c = be_pool_get_at(pool, 3);
	expect_ping(c);
	be_pool_put(pool, c);
	CHECK(be_pool_sweep(pool) == 0);
	probe = conn_tcp(r, 0, NULL, NULL, 5);
	CHECK(run(probe, &reply, 0,
		  (const char *[]){ "CLIENT", "KILL", "TYPE", "normal",
				    "SKIPME", "yes", NULL }) == 0);
	CHECK(reply && reply->type == REDIS_REPLY_INTEGER &&
	      reply->integer >= 1);
	freeReplyObject(reply);
	wait_sweep(pool);
	c = be_pool_get_at(pool, 3);
	CHECK(c == a);
	expect_ping(c); /* reconnects */
	be_pool_put(pool, c);
	be_conn_free(probe);

	probe = conn_tcp(r, 0, NULL, NULL, 5);
	expect(probe, (const char *[]){ "SET", "counter", "0", NULL }, "OK");
	for (i = 0; i < POOL_THREADS; i++) {
		jobs[i] = (struct pool_job){ pool, 0 };
		CHECK(pthread_create(&th[i], NULL, pool_thread, &jobs[i]) == 0);
	}
	for (i = 0; i < POOL_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(jobs[i].failures == 0);
	}
	snprintf(total, sizeof(total), "%d", POOL_THREADS * POOL_INCRS);
	expect(probe, (const char *[]){ "GET", "counter", NULL }, total);
	/* At most POOL_MAX connections were made, plus the probe. */
	CHECK(count_clients(probe) <= POOL_MAX + 1);
	be_conn_free(probe);
	be_pool_free(pool);
	be_pool_free(NULL);
}

int main(void)
{
	struct test_redis r;
	int ret;

	signal(SIGPIPE, SIG_DFL);
	ret = test_redis_start(&r, NULL);
	if (ret)
		return ret;
	test_command(&r);
	test_pipeline(&r);
	test_binary(&r);
	test_select(&r);
	test_unix(&r);
	test_refused(&r);
	test_client_kill(&r);
	test_pool(&r);
	test_sigstop(&r);
	test_restart(&r);
	test_redis_stop(&r);

	test_auth();
	test_busy();
	test_maxclients();
	return test_exit();
}
