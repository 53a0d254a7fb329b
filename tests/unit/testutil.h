/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers for the C unit tests: a CHECK macro that reports file:line and
 * keeps going, and a throwaway redis-server on a free loopback port for
 * the tests of backend modules that talk to Redis.
 */
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <stdio.h>
#include <sys/types.h>

extern int test_failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			test_failures++;                                       \
		}                                                              \
	} while (0)

/** A redis-server started by the test. */
struct test_redis {
	pid_t pid;
	int port;
	char dir[64]; /* its temp dir (config, unix socket "redis.sock") */
};

/**
 * Starts redis-server on a free loopback port with 'extra_conf' (may be
 * NULL) appended to its config, waits until it answers PING.  Returns 0,
 * or 77 if redis-server is not installed, or 1 on another failure.  With
 * "cluster-enabled" in 'extra_conf' the port is at most 55535 (the
 * cluster bus listens on port + 10000).
 */
int test_redis_start(struct test_redis *r, const char *extra_conf);
/** Stops the server (SIGTERM, then SIGKILL) and removes its dir. */
void test_redis_stop(struct test_redis *r);

/** Returns a loopback TCP port that was free a moment ago, or -1. */
int test_free_port(void);

/** Returns 0 when no check failed, else 1; prints a summary. */
int test_exit(void);

#endif /* TESTS_TESTUTIL_H */
