/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers for the C unit tests (see testutil.h): the failure counter and
 * summary, and a throwaway redis-server.  The server gets a free loopback
 * port (bind port 0, read it back, close), a config file and a unix socket
 * in its own mkdtemp dir under /tmp, no persistence unless the test asks
 * for it, and counts as started once our own transport gets a PING
 * answered.  Only the PID started here is ever signalled.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "testutil.h"

#define START_TRIES   3 /* another process may take the free port */
#define START_WAIT_MS 10000
#define STOP_WAIT_MS  5000
#define POLL_STEP_MS  10

int test_failures;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Returns true if 'name' is an executable file in a $PATH directory. */
static bool in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];
	const char *p, *end;

	for (p = path ? path : "/usr/bin:/bin"; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p, name);
		if (end > p && access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

int test_free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int write_config(const struct test_redis *r, const char *extra_conf)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/redis.conf", r->dir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "port %d\n", r->port);
	fprintf(f, "bind 127.0.0.1\n");
	fprintf(f, "unixsocket %s/redis.sock\n", r->dir);
	fprintf(f, "unixsocketperm 700\n");
	fprintf(f, "dir %s\n", r->dir);
	fprintf(f, "logfile %s/redis.log\n", r->dir);
	fprintf(f, "daemonize no\n");
	fprintf(f, "save \"\"\n");
	if (!extra_conf || !strstr(extra_conf, "appendonly"))
		fprintf(f, "appendonly no\n");
	if (extra_conf)
		fprintf(f, "%s\n", extra_conf);
	if (fclose(f))
		return -errno;
	return 0;
}

static pid_t spawn(const struct test_redis *r)
{
	char conf[128];
	pid_t pid;
	int fd;

	snprintf(conf, sizeof(conf), "%s/redis.conf", r->dir);
	pid = fork();
	if (pid != 0)
		return pid;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
	}
	execlp("redis-server", "redis-server", conf, (char *)NULL);
	_exit(127);
}

/* Prints the server's log, for a start that failed. */
static void dump_log(const struct test_redis *r)
{
	char path[128], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/redis.log", r->dir);
	f = fopen(path, "r");
	if (!f)
		return;
	fprintf(stderr, "--- %s\n", path);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}

/*
 * Waits until the server started as 'r->pid' answers PING (any reply,
 * NOAUTH included, means it is serving).  0, or -1 if it exited or did
 * not answer in time.
 */
static int wait_ready(struct test_redis *r)
{
	char host[] = "127.0.0.1";
	struct be_endpoint ep = { .host = host, .port = r->port };
	const char *argv[] = { "PING" };
	struct redisReply *reply;
	struct be_conn *c;
	int waited, status;

	c = be_conn_new(&ep, 1.0);
	if (!c)
		return -1;
	for (waited = 0; waited < START_WAIT_MS; waited += POLL_STEP_MS) {
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
			r->pid = 0;
			break;
		}
		if (be_conn_command(c, &reply, 1, argv, NULL, BE_CMD_NORETRY) ==
		    0) {
			freeReplyObject(reply);
			be_conn_free(c);
			return 0;
		}
		sleep_ms(POLL_STEP_MS);
	}
	be_conn_free(c);
	return -1;
}

/*
 * Ends the server 'r->pid' (and only it): SIGCONT in case a test left it
 * stopped, SIGTERM, then SIGKILL if it has not exited in time.
 */
static void stop_process(struct test_redis *r)
{
	int waited, status;

	if (r->pid <= 0)
		return;
	kill(r->pid, SIGCONT);
	kill(r->pid, SIGTERM);
	for (waited = 0; waited < STOP_WAIT_MS; waited += POLL_STEP_MS) {
		if (waitpid(r->pid, &status, WNOHANG) != 0)
			goto out;
		sleep_ms(POLL_STEP_MS);
	}
	kill(r->pid, SIGKILL);
	waitpid(r->pid, &status, 0);
out:
	r->pid = 0;
}

/* Removes 'r->dir' and the files the server left in it. */
static void remove_dir(struct test_redis *r)
{
	char path[512];
	struct dirent *de;
	DIR *d;

	if (!r->dir[0])
		return;
	d = opendir(r->dir);
	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", r->dir,
				 de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(r->dir);
	r->dir[0] = '\0';
}

int test_redis_start(struct test_redis *r, const char *extra_conf)
{
	int try, k;

	memset(r, 0, sizeof(*r));
	if (!in_path("redis-server")) {
		fprintf(stderr, "redis-server not found: skipping\n");
		return 77;
	}
	snprintf(r->dir, sizeof(r->dir), "/tmp/sessfs-test-XXXXXX");
	if (!mkdtemp(r->dir)) {
		perror("mkdtemp");
		r->dir[0] = '\0';
		return 1;
	}
	for (try = 0; try < START_TRIES; try++) {
		r->port = test_free_port();
		/* A cluster node's bus listens on port + 10000. */
		for (k = 0;
		     extra_conf && strstr(extra_conf, "cluster-enabled") &&
		     r->port > 55535 && k < 1000;
		     k++)
			r->port = test_free_port();
		if (r->port < 0 || write_config(r, extra_conf) < 0)
			break;
		r->pid = spawn(r);
		if (r->pid < 0) {
			r->pid = 0;
			break;
		}
		if (wait_ready(r) == 0)
			return 0;
		dump_log(r);
		stop_process(r);
	}
	fprintf(stderr, "cannot start redis-server\n");
	remove_dir(r);
	return 1;
}

void test_redis_stop(struct test_redis *r)
{
	stop_process(r);
	remove_dir(r);
}

int test_exit(void)
{
	if (test_failures) {
		fprintf(stderr, "%d check(s) failed\n", test_failures);
		return 1;
	}
	return 0;
}
