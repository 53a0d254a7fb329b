/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/url.c: redis://, rediss://, unix://,
 * redis-sentinel://, rediss-sentinel://, redis-cluster:// and
 * rediss-cluster:// URLs that parse (with
 * defaults, percent-decoding, IPv6), every refusal and its message (which
 * must never quote a password), the display form without the password,
 * the endpoint copy, and password files.  Pure: no Redis needed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "conn.h"
#include "sentinel.h"
#include "url.h"
#include "testutil.h"

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Parses 'url' and checks every field of the result. */
static void check_ok(const char *url, const char *host, int port,
		     const char *unix_path, int db, const char *user,
		     const char *password)
{
	struct be_endpoint ep;
	char err[256] = "";
	int ret;

	ret = be_url_parse(url, &ep, err, sizeof(err));
	if (ret != 0) {
		fprintf(stderr, "'%s' refused: %s\n", url, err);
		test_failures++;
		return;
	}
	CHECK(str_eq(ep.host, host));
	CHECK(ep.port == port);
	CHECK(str_eq(ep.unix_path, unix_path));
	CHECK(ep.db == db);
	CHECK(str_eq(ep.user, user));
	CHECK(str_eq(ep.password, password));
	be_endpoint_release(&ep);
	CHECK(!ep.host && !ep.password);
}

/*
 * Parses 'url', which must be refused with a message that contains
 * 'msg' and does not contain 'secret' (when not NULL).
 */
static void check_bad(const char *url, const char *msg, const char *secret)
{
	struct be_endpoint ep;
	char err[256] = "";
	int ret;

	ret = be_url_parse(url, &ep, err, sizeof(err));
	if (ret != -EINVAL || !strstr(err, msg) || strchr(err, '\n') ||
	    (secret && strstr(err, secret))) {
		fprintf(stderr, "'%s': got %d '%s', want -EINVAL '%s'\n", url,
			ret, err, msg);
		test_failures++;
	}
	/* Nothing is left allocated after a refusal. */
	CHECK(!ep.host && !ep.unix_path && !ep.user && !ep.password &&
	      !ep.sentinel);
}

static void test_tcp(void)
{
	check_ok("redis://localhost", "localhost", 6379, NULL, 0, NULL, NULL);
	check_ok("redis://localhost/", "localhost", 6379, NULL, 0, NULL, NULL);
	check_ok("redis://127.0.0.1:6380", "127.0.0.1", 6380, NULL, 0, NULL,
		 NULL);
	check_ok("redis://127.0.0.1:6380/3", "127.0.0.1", 6380, NULL, 3, NULL,
		 NULL);
	check_ok("redis://redis-1.example.com/15", "redis-1.example.com", 6379,
		 NULL, 15, NULL, NULL);
	check_ok("redis://h:1", "h", 1, NULL, 0, NULL, NULL);
	check_ok("redis://h:65535", "h", 65535, NULL, 0, NULL, NULL);
	check_ok("redis://h/%32", "h", 6379, NULL, 2, NULL, NULL);
	check_ok("redis://h/2147483647", "h", 6379, NULL, 2147483647, NULL,
		 NULL);
}

static void test_tcp_auth(void)
{
	check_ok("redis://:secret@h", "h", 6379, NULL, 0, NULL, "secret");
	check_ok("redis://alice:secret@h:7000/1", "h", 7000, NULL, 1, "alice",
		 "secret");
	check_ok("redis://alice@h", "h", 6379, NULL, 0, "alice", NULL);
	check_ok("redis://al%69ce:p%40ss%3Aw%2Fd@h", "h", 6379, NULL, 0,
		 "alice", "p@ss:w/d");
	/* Unescaped '@', ':' and '/' in a password: the last '@' ends it. */
	check_ok("redis://:p@ss/w:d@h/2", "h", 6379, NULL, 2, NULL, "p@ss/w:d");
	check_ok("redis://%E2%82%AC:x@h", "h", 6379, NULL, 0, "\xe2\x82\xac",
		 "x");
}

static void test_ipv6(void)
{
	check_ok("redis://[::1]", "::1", 6379, NULL, 0, NULL, NULL);
	check_ok("redis://[::1]:7000/4", "::1", 7000, NULL, 4, NULL, NULL);
	check_ok("redis://u:p@[2001:db8::1]:6380", "2001:db8::1", 6380, NULL, 0,
		 "u", "p");
	check_ok("redis://[::ffff:127.0.0.1]", "::ffff:127.0.0.1", 6379, NULL,
		 0, NULL, NULL);
}

static void test_unix(void)
{
	check_ok("unix:///run/redis.sock", NULL, 0, "/run/redis.sock", 0, NULL,
		 NULL);
	check_ok("unix:///run/redis.sock?db=2", NULL, 0, "/run/redis.sock", 2,
		 NULL, NULL);
	check_ok("unix:///run/my%20redis.sock?db=0", NULL, 0,
		 "/run/my redis.sock", 0, NULL, NULL);
	check_ok("unix:///x?", NULL, 0, "/x", 0, NULL, NULL);
	check_ok("unix:///x?&db=7&", NULL, 0, "/x", 7, NULL, NULL);
}

static void test_errors(void)
{
	char longpath[200];

	check_bad(NULL, "empty URL", NULL);
	check_bad("", "empty URL", NULL);
	check_bad("localhost:6379", "missing scheme", NULL);
	check_bad("http://h", "bad scheme 'http'", NULL);
	check_bad("redisss://:topsecret@h", "bad scheme 'redisss'",
		  "topsecret");
	check_bad("rediss:/h", "missing scheme", NULL);
	check_bad("rediss://", "empty host", NULL);
	check_bad("rediss://h:0", "out of range", NULL);
	check_bad("rediss://:topsecret@h:x", "invalid port 'x'", "topsecret");
	check_bad("REDIS://h", "bad scheme", NULL);
	/* fuzz_url: a newline quoted from the URL broke the one-line reason. */
	check_bad("un\377\nix:///x", "bad scheme 'un\377?ix'", NULL);
	check_bad("redis://h:6\r9", "invalid port '6?9'", NULL);
	check_bad("redis://", "empty host", NULL);
	check_bad("redis:///0", "empty host", NULL);
	check_bad("redis://:6379", "empty host", NULL);
	check_bad("redis://:pw@", "empty host", "pw");
	check_bad("redis://[]:6379", "empty host", NULL);
	check_bad("redis://h:", "empty port", NULL);
	check_bad("redis://h:abc", "invalid port 'abc': not a number", NULL);
	check_bad("redis://h:-1", "invalid port '-1': not a number", NULL);
	check_bad("redis://h:12x", "invalid port '12x'", NULL);
	check_bad("redis://h:0", "invalid port '0': out of range 1..65535",
		  NULL);
	check_bad("redis://h:65536", "out of range 1..65535", NULL);
	check_bad("redis://h:70000", "invalid port '70000'", NULL);
	check_bad("redis://h:99999999999999999999999", "out of range", NULL);
	check_bad("redis://h/x", "invalid db 'x': not a number", NULL);
	check_bad("redis://h/-1", "invalid db '-1': negative", NULL);
	check_bad("redis://h/1x", "invalid db '1x': not a number", NULL);
	check_bad("redis://h/2147483648",
		  "invalid db '2147483648': out of range", NULL);
	check_bad("redis://h/0/x", "trailing junk '/x' after db", NULL);
	check_bad("redis://h/0?db=1", "trailing junk '?db=1' after db", NULL);
	check_bad("redis://h?x", "trailing junk '?x' after host", NULL);
	check_bad("redis://h#frag", "trailing junk '#frag' after host", NULL);
	check_bad("redis://h/%zz", "bad percent escape in db", NULL);
	check_bad("redis://ho st", "invalid character ' ' in host", NULL);
	check_bad("redis://::1", "must be written in brackets", NULL);
	check_bad("redis://[::1", "missing ']'", NULL);
	check_bad("redis://[::1]x", "trailing junk 'x' after IPv6 host", NULL);
	check_bad("redis://[::g]", "invalid IPv6 host", NULL);
	check_bad("redis://@h", "empty user", NULL);
	check_bad("redis://u:@h", "empty password", NULL);
	check_bad("redis://u%2:pw@h", "bad percent escape in user 'u%2'", "pw");
	check_bad("redis://u:top%zzsecret@h", "bad percent escape in password",
		  "top");
	check_bad("redis://u:top%00secret@h", "bad percent escape in password",
		  "top");
	check_bad("redis://u:secret%@h", "bad percent escape in password",
		  "secret");
	check_bad("unix://", "absolute path", NULL);
	check_bad("unix://localhost/x", "absolute path", NULL);
	check_bad("unix:///", "empty socket path", NULL);
	check_bad("unix:///?db=1", "empty socket path", NULL);
	check_bad("unix:///x%4", "bad percent escape in path", NULL);
	check_bad("unix:///x%00y", "bad percent escape in path", NULL);
	check_bad("unix:///x?db=", "invalid db '': not a number", NULL);
	check_bad("unix:///x?db=a", "invalid db 'a': not a number", NULL);
	check_bad("unix:///x?db=-2", "invalid db '-2': negative", NULL);
	check_bad("unix:///x?db", "missing value of query parameter 'db'",
		  NULL);
	check_bad("unix:///x?db=1&db=2", "duplicate query parameter 'db'",
		  NULL);
	check_bad("unix:///x?password=pw", "unknown query parameter 'password'",
		  NULL);
	check_bad("unix:///x?dbx=1", "unknown query parameter 'dbx'", NULL);
	check_bad("unix:///x#y", "trailing junk '#y' after path", NULL);
	check_bad("unix:///x?db=1#y", "trailing junk '#y' after query", NULL);

	strcpy(longpath, "unix:///");
	memset(longpath + 8, 'a', 120);
	longpath[128] = '\0';
	check_bad(longpath, "too long", NULL);
}

/* Parses 'url' and checks that it is displayed as 'want'. */
static void check_display(const char *url, const char *want)
{
	struct be_endpoint ep, again;
	char err[256];
	char *shown;

	if (be_url_parse(url, &ep, err, sizeof(err)) != 0) {
		fprintf(stderr, "'%s' refused: %s\n", url, err);
		test_failures++;
		return;
	}
	shown = be_url_display(&ep);
	CHECK(shown && !strcmp(shown, want));
	if (shown && strcmp(shown, want))
		fprintf(stderr, "'%s' shown as '%s', want '%s'\n", url, shown,
			want);
	/* What is shown parses back to the same place, minus the password. */
	if (shown && be_url_parse(shown, &again, err, sizeof(err)) == 0) {
		CHECK(str_eq(again.host, ep.host));
		CHECK(again.port == ep.port);
		CHECK(str_eq(again.unix_path, ep.unix_path));
		CHECK(again.db == ep.db);
		CHECK(str_eq(again.user, ep.user));
		CHECK(again.tls == ep.tls);
		CHECK(!again.password);
		be_endpoint_release(&again);
	} else {
		CHECK(!"display parses back");
	}
	free(shown);
	be_endpoint_release(&ep);
}

/* rediss:// is redis:// over TLS: the same parts, 'tls' set. */
static void test_tls(void)
{
	struct be_endpoint ep;
	char err[256];

	check_ok("rediss://localhost", "localhost", 6379, NULL, 0, NULL, NULL);
	check_ok("rediss://alice:pw@10.0.0.1:6380/4", "10.0.0.1", 6380, NULL, 4,
		 "alice", "pw");
	check_ok("rediss://[::1]:7000", "::1", 7000, NULL, 0, NULL, NULL);
	CHECK(be_url_parse("rediss://h:1/2", &ep, err, sizeof(err)) == 0);
	CHECK(ep.tls && !ep.tls_ctx);
	be_endpoint_release(&ep);
	CHECK(!ep.tls);
	CHECK(be_url_parse("redis://h:1/2", &ep, err, sizeof(err)) == 0);
	CHECK(!ep.tls);
	be_endpoint_release(&ep);
	CHECK(be_url_parse("unix:///r.sock", &ep, err, sizeof(err)) == 0);
	CHECK(!ep.tls);
	be_endpoint_release(&ep);
	CHECK(be_url_parse("http://h", &ep, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(
		err,
		"expected redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster://, rediss-cluster:// or unix://"));
}

/*
 * Parses the Sentinel URL 'url' and checks its master name, db, TLS, and
 * its 'n' sentinels "host:port" of 'addrs'.
 */
static void check_sentinel(const char *url, bool tls, const char *master,
			   int db, const char *user, const char *password,
			   size_t n, const char *const *addrs)
{
	struct be_endpoint ep, copy;
	char err[256] = "", addr[300];
	size_t i;

	if (be_url_parse(url, &ep, err, sizeof(err)) != 0) {
		fprintf(stderr, "'%s' refused: %s\n", url, err);
		test_failures++;
		return;
	}
	CHECK(ep.sentinel && !ep.host && !ep.unix_path);
	CHECK(ep.tls == tls && ep.db == db);
	CHECK(str_eq(ep.user, user) && str_eq(ep.password, password));
	CHECK(str_eq(be_sentinel_master_name(ep.sentinel), master));
	CHECK(be_sentinel_count(ep.sentinel) == n);
	for (i = 0; i < n && i < be_sentinel_count(ep.sentinel); i++) {
		snprintf(addr, sizeof(addr), "%s:%d",
			 be_sentinel_host(ep.sentinel, i),
			 be_sentinel_port(ep.sentinel, i));
		if (strcmp(addr, addrs[i])) {
			fprintf(stderr,
				"'%s': sentinel %zu is '%s', want '%s'\n", url,
				i, addr, addrs[i]);
			test_failures++;
		}
	}
	/* A copy shares the sentinels (one object, a reference). */
	CHECK(be_endpoint_copy(&copy, &ep) == 0);
	CHECK(copy.sentinel == ep.sentinel);
	be_endpoint_release(&ep);
	CHECK(!ep.sentinel);
	CHECK(str_eq(be_sentinel_master_name(copy.sentinel), master));
	be_endpoint_release(&copy);
}

static void test_sentinel(void)
{
	const char *one[] = { "10.0.0.1:26379" };
	const char *three[] = { "10.0.0.1:26379", "10.0.0.2:5000",
				"s3.example.com:26380" };
	const char *v6[] = { "::1:26379", "127.0.0.1:1" };

	check_sentinel("redis-sentinel://10.0.0.1/mymaster", false, "mymaster",
		       0, NULL, NULL, 1, one);
	check_sentinel("redis-sentinel://10.0.0.1:26379/mymaster/", false,
		       "mymaster", 0, NULL, NULL, 1, one);
	check_sentinel(
		"redis-sentinel://10.0.0.1,10.0.0.2:5000,s3.example.com:26380/m/3",
		false, "m", 3, NULL, NULL, 3, three);
	check_sentinel("rediss-sentinel://alice:p%40ss@10.0.0.1/my%2Fmaster/1",
		       true, "my/master", 1, "alice", "p@ss", 1, one);
	check_sentinel("redis-sentinel://:pw@[::1],127.0.0.1:1/m", false, "m",
		       0, NULL, "pw", 2, v6);
	/* A password with '@' and '/' still parses: the last '@' ends it. */
	check_sentinel("redis-sentinel://u:a@b/c@10.0.0.1/m", false, "m", 0,
		       "u", "a@b/c", 1, one);

	check_bad("redis-sentinel://10.0.0.1", "missing master name", NULL);
	check_bad("redis-sentinel://10.0.0.1/", "empty master name", NULL);
	check_bad("redis-sentinel://10.0.0.1//0", "empty master name", NULL);
	check_bad("redis-sentinel://10.0.0.1,/m", "empty sentinel address",
		  NULL);
	check_bad("redis-sentinel://,10.0.0.1/m", "empty sentinel address",
		  NULL);
	check_bad("redis-sentinel://10.0.0.1:0/m", "invalid port '0'", NULL);
	check_bad("redis-sentinel://10.0.0.1:x/m", "invalid port 'x'", NULL);
	check_bad("redis-sentinel://h/m/x", "invalid db 'x'", NULL);
	check_bad("redis-sentinel://h/m/1/2", "trailing junk '/2' after db",
		  NULL);
	check_bad("redis-sentinel://h/m?x=1", "trailing junk '?x=1'", NULL);
	check_bad("redis-sentinel://h?x/m", "trailing junk '?x/m'", NULL);
	check_bad("redis-sentinel://:s3cret@/m", "empty sentinel address",
		  "s3cret");
	check_bad("redis-sentinel://h/m%zz",
		  "bad percent escape in master name", NULL);
	check_bad("rediss-sentinel://:s3cret@h:99999/m", "out of range",
		  "s3cret");
}

/* Sentinel URLs shown: every sentinel, the master, the db; no password. */
static void test_sentinel_display(void)
{
	const char *cases[][2] = {
		{ "redis-sentinel://10.0.0.1/mymaster",
		  "redis-sentinel://10.0.0.1:26379/mymaster/0" },
		{ "rediss-sentinel://alice:secret@a:1,[::1]:2/m%20x/4",
		  "rediss-sentinel://alice@a:1,[::1]:2/m%20x/4" },
		{ "redis-sentinel://:secret@h:5,g/m",
		  "redis-sentinel://h:5,g:26379/m/0" },
	};
	struct be_endpoint ep, again;
	char err[256];
	char *shown;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(be_url_parse(cases[i][0], &ep, err, sizeof(err)) == 0);
		shown = be_url_display(&ep);
		if (!shown || strcmp(shown, cases[i][1])) {
			fprintf(stderr, "'%s' shown as '%s', want '%s'\n",
				cases[i][0], shown ? shown : "(null)",
				cases[i][1]);
			test_failures++;
		}
		CHECK(shown && !strstr(shown, "secret"));
		/* What is shown parses back to the same set. */
		if (shown &&
		    be_url_parse(shown, &again, err, sizeof(err)) == 0) {
			CHECK(again.sentinel && again.tls == ep.tls);
			CHECK(be_sentinel_count(again.sentinel) ==
			      be_sentinel_count(ep.sentinel));
			CHECK(str_eq(be_sentinel_master_name(again.sentinel),
				     be_sentinel_master_name(ep.sentinel)));
			CHECK(again.db == ep.db && !again.password);
			be_endpoint_release(&again);
		} else {
			CHECK(!"sentinel display parses back");
		}
		free(shown);
		be_endpoint_release(&ep);
	}
}

static void test_display(void)
{
	check_display("redis://127.0.0.1", "redis://127.0.0.1:6379/0");
	check_display("redis://:secret@h:7000/3", "redis://h:7000/3");
	check_display("redis://alice:secret@127.0.0.1:6379/0",
		      "redis://alice@127.0.0.1:6379/0");
	check_display("redis://a%40b%20c:secret@h",
		      "redis://a%40b%20c@h:6379/0");
	check_display("redis://[::1]:6380/1", "redis://[::1]:6380/1");
	check_display("rediss://h", "rediss://h:6379/0");
	check_display("rediss://bob:secret@[::1]:7000/5",
		      "rediss://bob@[::1]:7000/5");
	check_display("unix:///run/redis.sock", "unix:///run/redis.sock");
	check_display("unix:///run/redis.sock?db=2",
		      "unix:///run/redis.sock?db=2");
	check_display("unix:///run/my%20redis.sock",
		      "unix:///run/my%20redis.sock");
}

/* 'url' with its password hidden must read 'want'. */
static void check_hidden(const char *url, const char *want)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s", url);
	be_url_hide_password(buf);
	if (strcmp(buf, want)) {
		fprintf(stderr, "'%s' hidden as '%s', want '%s'\n", url, buf,
			want);
		test_failures++;
	}
}

static void test_hide_password(void)
{
	check_hidden("redis://:pw@h:1/2", "redis://:**@h:1/2");
	check_hidden("rediss://alice:p%40ss@h", "rediss://alice:******@h");
	check_hidden("redis://u:a@b/c@h/0", "redis://u:*****@h/0");
	check_hidden("redis://alice@h", "redis://alice@h");
	check_hidden("redis://h:6379/0", "redis://h:6379/0");
	check_hidden("unix:///r.sock?db=1", "unix:///r.sock?db=1");
	check_hidden("http://u:pw@h", "http://u:pw@h");
	check_hidden("redis-sentinel://:pw@a:1,b:2/m/0",
		     "redis-sentinel://:**@a:1,b:2/m/0");
	check_hidden("rediss-sentinel://u:secret@a/m",
		     "rediss-sentinel://u:******@a/m");
	check_hidden("redis-sentinel://a:1,b:2/m",
		     "redis-sentinel://a:1,b:2/m");
}

static void test_copy(void)
{
	struct be_endpoint ep, copy;
	char err[256];

	CHECK(be_url_parse("redis://u:p@h:7/2", &ep, err, sizeof(err)) == 0);
	CHECK(be_endpoint_copy(&copy, &ep) == 0);
	CHECK(copy.host != ep.host && str_eq(copy.host, "h"));
	CHECK(copy.user != ep.user && str_eq(copy.user, "u"));
	CHECK(copy.password != ep.password && str_eq(copy.password, "p"));
	CHECK(copy.port == 7 && copy.db == 2 && !copy.unix_path);
	be_endpoint_release(&ep);
	be_endpoint_release(&copy);
	CHECK(!copy.host && !copy.user && !copy.password && !copy.port);
}

/* Writes 'len' bytes of 'data' to a new temp file; its path into 'path'. */
static void write_temp(char *path, const char *data, size_t len)
{
	int fd;

	strcpy(path, "/tmp/sessfs-pw-XXXXXX");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

/* Reads a password file holding 'len' bytes of 'data'. */
static int read_pw(const char *data, size_t len, char **pw, char *err,
		   size_t errlen)
{
	char path[64];
	int ret;

	write_temp(path, data, len);
	ret = be_password_file_read(path, pw, err, errlen);
	unlink(path);
	return ret;
}

static void test_password_file(void)
{
	char err[256] = "";
	char big[5000];
	char *pw = NULL;

	CHECK(read_pw("s3cret\n", 7, &pw, err, sizeof(err)) == 0);
	CHECK(str_eq(pw, "s3cret"));
	free(pw);
	CHECK(read_pw("s3cret", 6, &pw, err, sizeof(err)) == 0);
	CHECK(str_eq(pw, "s3cret"));
	free(pw);
	CHECK(read_pw("s3cret\r\nsecond line\n", 20, &pw, err, sizeof(err)) ==
	      0);
	CHECK(str_eq(pw, "s3cret"));
	free(pw);
	CHECK(read_pw(" with spaces \n", 14, &pw, err, sizeof(err)) == 0);
	CHECK(str_eq(pw, " with spaces "));
	free(pw);

	CHECK(read_pw("", 0, &pw, err, sizeof(err)) == -EINVAL);
	CHECK(!pw && strstr(err, "is empty"));
	CHECK(read_pw("\nx\n", 3, &pw, err, sizeof(err)) == -EINVAL);
	CHECK(!pw && strstr(err, "is empty"));
	CHECK(read_pw("\r\n", 2, &pw, err, sizeof(err)) == -EINVAL);
	CHECK(!pw && strstr(err, "is empty"));
	CHECK(read_pw("a\0b\n", 4, &pw, err, sizeof(err)) == -EINVAL);
	CHECK(!pw && strstr(err, "NUL"));
	memset(big, 'x', sizeof(big));
	CHECK(read_pw(big, sizeof(big), &pw, err, sizeof(err)) == -EINVAL);
	CHECK(!pw && strstr(err, "too long") == NULL &&
	      strstr(err, "longer than"));

	CHECK(be_password_file_read("/nonexistent/pw", &pw, err, sizeof(err)) ==
	      -ENOENT);
	CHECK(!pw &&
	      !strcmp(err,
		      "cannot read password file '/nonexistent/pw': No such file or directory"));
	CHECK(be_password_file_read("/tmp", &pw, err, sizeof(err)) == -EISDIR);
	CHECK(!pw && strstr(err, "cannot read password file '/tmp'"));
}

/*
 * Parses the Cluster URL 'url' and checks TLS, user, password and its
 * 'n' seeds "host:port" of 'addrs', then its display form 'shown'.
 */
static void check_cluster(const char *url, bool tls, const char *user,
			  const char *password, size_t n,
			  const char *const *addrs, const char *shown)
{
	struct be_endpoint ep, copy;
	char err[256] = "", addr[300], *disp;
	size_t i;

	if (be_url_parse(url, &ep, err, sizeof(err)) != 0) {
		fprintf(stderr, "'%s' refused: %s\n", url, err);
		test_failures++;
		return;
	}
	CHECK(ep.cluster && !ep.host && !ep.unix_path && !ep.sentinel);
	CHECK(ep.tls == tls && ep.db == 0);
	CHECK(str_eq(ep.user, user) && str_eq(ep.password, password));
	CHECK(be_cluster_seed_count(ep.cluster) == n);
	for (i = 0; i < n && i < be_cluster_seed_count(ep.cluster); i++) {
		snprintf(addr, sizeof(addr), "%s:%d",
			 be_cluster_seed_host(ep.cluster, i),
			 be_cluster_seed_port(ep.cluster, i));
		if (strcmp(addr, addrs[i])) {
			fprintf(stderr, "'%s': seed %zu is '%s', want '%s'\n",
				url, i, addr, addrs[i]);
			test_failures++;
		}
	}
	disp = be_url_display(&ep);
	if (!disp || strcmp(disp, shown)) {
		fprintf(stderr, "'%s' shown as '%s', want '%s'\n", url,
			disp ? disp : "(null)", shown);
		test_failures++;
	}
	free(disp);
	/* A copy shares the map (one object, a reference). */
	CHECK(be_endpoint_copy(&copy, &ep) == 0);
	CHECK(copy.cluster == ep.cluster);
	be_endpoint_release(&ep);
	CHECK(!ep.cluster);
	CHECK(be_cluster_seed_count(copy.cluster) == n);
	be_endpoint_release(&copy);
}

static void test_cluster(void)
{
	const char *one[] = { "10.0.0.1:6379" };
	const char *three[] = { "10.0.0.1:7000", "10.0.0.2:7001", "::1:7002" };
	char url[] = "redis-cluster://u:topsecret@h:1,h:2";

	check_cluster("redis-cluster://10.0.0.1", false, NULL, NULL, 1, one,
		      "redis-cluster://10.0.0.1:6379");
	check_cluster("redis-cluster://10.0.0.1/", false, NULL, NULL, 1, one,
		      "redis-cluster://10.0.0.1:6379");
	check_cluster("redis-cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002",
		      false, NULL, NULL, 3, three,
		      "redis-cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002");
	check_cluster(
		"rediss-cluster://alice:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002",
		true, "alice", "p@ss", 3, three,
		"rediss-cluster://alice@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002");
	check_cluster("redis-cluster://:pw@10.0.0.1", false, NULL, "pw", 1, one,
		      "redis-cluster://10.0.0.1:6379");
	check_bad("redis-cluster://", "missing nodes", NULL);
	check_bad("redis-cluster://:topsecret@", "missing nodes", "topsecret");
	check_bad("redis-cluster://h:1,,h:2", "empty node address", NULL);
	check_bad("redis-cluster://h:1,", "empty node address", NULL);
	check_bad("redis-cluster://h:1/2", "takes no db", NULL);
	check_bad("redis-cluster://h:99999", "invalid port", NULL);
	check_bad("redis-cluster://h:1?x", "trailing junk", NULL);
	check_bad("rediss-cluster://u:topsecret@h:0", "port", "topsecret");
	be_url_hide_password(url);
	CHECK(!strcmp(url, "redis-cluster://u:*********@h:1,h:2"));
}

int main(void)
{
	test_tcp();
	test_tcp_auth();
	test_ipv6();
	test_unix();
	test_errors();
	test_tls();
	test_sentinel();
	test_sentinel_display();
	test_cluster();
	test_display();
	test_hide_password();
	test_copy();
	test_password_file();
	return test_exit();
}
