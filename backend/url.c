/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis URLs (see url.h): parsing "redis://", "rediss://", "unix://",
 * Sentinel and Cluster URLs into a
 * struct be_endpoint, showing an endpoint again without its password, and
 * reading a password from a file.  Every refusal names the part that is
 * wrong in one line, and never quotes a password.  Also the deep copy and
 * release of struct be_endpoint (conn.h).  Pure, safe from any thread.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "cluster.h"
#include "conn.h"
#include "sentinel.h"
#include "tls.h"
#include "url.h"

#define REDIS_SCHEME	  "redis://"
#define REDISS_SCHEME	  "rediss://"
#define UNIX_SCHEME	  "unix://"
#define SENTINEL_SCHEME	  "redis-sentinel://"
#define SENTINELS_SCHEME  "rediss-sentinel://"
#define CLUSTER_SCHEME	  "redis-cluster://"
#define CLUSTERS_SCHEME	  "rediss-cluster://"
#define DEFAULT_PORT	  6379
#define SENTINEL_PORT	  26379
#define PASSWORD_FILE_MAX 4096
#define UNIX_PATH_MAX	  (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* Characters a URL may carry unescaped (RFC 3986 "unreserved"). */
#define URL_UNRESERVED "-._~"

int be_endpoint_copy(struct be_endpoint *dst, const struct be_endpoint *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->port = src->port;
	dst->db = src->db;
	dst->tls = src->tls;
	dst->tls_ctx = be_tls_ref(src->tls_ctx);
	dst->sentinel = be_sentinel_ref(src->sentinel);
	dst->cluster = be_cluster_ref(src->cluster);
	if ((src->host && !(dst->host = strdup(src->host))) ||
	    (src->unix_path && !(dst->unix_path = strdup(src->unix_path))) ||
	    (src->user && !(dst->user = strdup(src->user))) ||
	    (src->password && !(dst->password = strdup(src->password)))) {
		be_endpoint_release(dst);
		return -ENOMEM;
	}
	return 0;
}

void be_endpoint_release(struct be_endpoint *ep)
{
	free(ep->host);
	free(ep->unix_path);
	free(ep->user);
	if (ep->password) {
		explicit_bzero(ep->password, strlen(ep->password));
		free(ep->password);
	}
	be_tls_unref(ep->tls_ctx);
	be_sentinel_unref(ep->sentinel);
	be_cluster_unref(ep->cluster);
	memset(ep, 0, sizeof(*ep));
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Writes the reason into 'err' and returns -EINVAL.  The reason quotes
 * parts of the URL: control characters in them become '?', so that it
 * stays the one line the header promises (fuzz_url found a newline).
 */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		for (p = err; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	return -EINVAL;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes the 'len' bytes at 's' into '*out' (new string).
 * Returns 0, -EINVAL for a bad escape or an escaped NUL (our strings are C
 * strings), or -ENOMEM.
 */
static int percent_decode(const char *s, size_t len, char **out)
{
	char *d = malloc(len + 1);
	size_t i, j = 0;
	int hi, lo;

	if (!d)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		hi = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
		lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			explicit_bzero(d, j);
			free(d);
			return -EINVAL;
		}
		d[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[j] = '\0';
	*out = d;
	return 0;
}

/*
 * Decodes the URL part 'what' ("user", "password", "path") of 'len' bytes
 * at 's' into '*out'.  A bad password is not quoted in the message.
 */
static int decode_part(const char *s, size_t len, const char *what, char **out,
		       char *err, size_t errlen)
{
	int ret = percent_decode(s, len, out);

	if (ret == -ENOMEM)
		return fail(err, errlen, "out of memory");
	if (ret < 0 && !strcmp(what, "password"))
		return fail(err, errlen, "bad percent escape in password");
	if (ret < 0)
		return fail(err, errlen, "bad percent escape in %s '%.*s'",
			    what, (int)len, s);
	return 0;
}

/*
 * Parses the decimal number of 'len' bytes at 's' into '*val', which must
 * lie in [min, max].  Returns 0, -EINVAL (not a number) or -ERANGE.
 */
static int parse_number(const char *s, size_t len, long min, long max,
			long *val)
{
	bool neg = false;
	long v = 0;
	size_t i = 0;

	if (len && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len)
		return -EINVAL;
	for (; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		if (v > (LONG_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (s[i] - '0');
	}
	if (neg)
		v = -v;
	if (v < min || v > max)
		return -ERANGE;
	*val = v;
	return 0;
}

static int parse_db(const char *s, size_t len, struct be_endpoint *ep,
		    char *err, size_t errlen)
{
	long v;
	int ret = parse_number(s, len, 0, INT_MAX, &v);

	if (ret == -EINVAL)
		return fail(err, errlen, "invalid db '%.*s': not a number",
			    (int)len, s);
	if (ret < 0 && len && s[0] == '-')
		return fail(err, errlen, "invalid db '%.*s': negative",
			    (int)len, s);
	if (ret < 0)
		return fail(err, errlen, "invalid db '%.*s': out of range",
			    (int)len, s);
	ep->db = (int)v;
	return 0;
}

static int parse_port(const char *s, size_t len, struct be_endpoint *ep,
		      char *err, size_t errlen)
{
	long v;
	int ret;

	if (!len)
		return fail(err, errlen, "empty port after ':'");
	ret = parse_number(s, len, 1, 65535, &v);
	if (ret == -EINVAL || s[0] == '-')
		return fail(err, errlen, "invalid port '%.*s': not a number",
			    (int)len, s);
	if (ret < 0)
		return fail(err, errlen,
			    "invalid port '%.*s': out of range 1..65535",
			    (int)len, s);
	ep->port = (int)v;
	return 0;
}

/* Splits "[user][:password]" of 'len' bytes at 's' into 'ep'. */
static int parse_userinfo(const char *s, size_t len, struct be_endpoint *ep,
			  char *err, size_t errlen)
{
	const char *colon = memchr(s, ':', len);
	size_t ulen = colon ? (size_t)(colon - s) : len;
	int ret;

	if (ulen) {
		ret = decode_part(s, ulen, "user", &ep->user, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (!colon) {
		if (!ulen)
			return fail(err, errlen, "empty user before '@'");
		return 0;
	}
	if (colon + 1 == s + len)
		return fail(err, errlen, "empty password after ':'");
	return decode_part(colon + 1, s + len - colon - 1, "password",
			   &ep->password, err, errlen);
}

/* Checks a host name or IPv4 address; IPv6 is handled by the caller. */
static int check_host(const char *s, size_t len, char *err, size_t errlen)
{
	size_t i;

	if (!len)
		return fail(err, errlen, "empty host");
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && !strchr("-._", s[i]))
			return fail(err, errlen,
				    "invalid character '%c' in host '%.*s'",
				    s[i], (int)len, s);
	}
	return 0;
}

/* Parses "host[:port]" or "[v6]:port" of 'len' bytes at 's'. */
static int parse_hostport(const char *s, size_t len, struct be_endpoint *ep,
			  char *err, size_t errlen)
{
	const char *end = s + len;
	const char *hend, *colon;
	size_t i;
	int ret;

	if (len && s[0] == '[') {
		hend = memchr(s, ']', len);
		if (!hend)
			return fail(err, errlen, "missing ']' after IPv6 host");
		if (hend == s + 1)
			return fail(err, errlen, "empty host");
		for (i = 1; s + i < hend; i++) {
			if (!isxdigit((unsigned char)s[i]) &&
			    !strchr(":.", s[i]))
				return fail(err, errlen,
					    "invalid IPv6 host '%.*s'",
					    (int)(hend - s + 1), s);
		}
		ep->host = strndup(s + 1, hend - s - 1);
		colon = hend + 1;
		if (colon < end && *colon != ':')
			return fail(err, errlen,
				    "trailing junk '%.*s' after IPv6 host",
				    (int)(end - colon), colon);
	} else {
		colon = memchr(s, ':', len);
		hend = colon ? colon : end;
		if (colon && memchr(colon + 1, ':', end - colon - 1))
			return fail(
				err, errlen,
				"IPv6 host '%.*s' must be written in brackets",
				(int)len, s);
		ret = check_host(s, hend - s, err, errlen);
		if (ret < 0)
			return ret;
		ep->host = strndup(s, hend - s);
		colon = hend;
	}
	if (!ep->host)
		return fail(err, errlen, "out of memory");
	if (colon < end)
		return parse_port(colon + 1, end - colon - 1, ep, err, errlen);
	return 0;
}

/* Parses the part of a redis:// URL after the scheme. */
static int parse_redis(const char *s, struct be_endpoint *ep, char *err,
		       size_t errlen)
{
	/*
	 * The last '@' ends the user info, so that a password with an
	 * unescaped '@' or '/' still parses; a db never holds an '@'.
	 */
	const char *at = strrchr(s, '@');
	const char *hp = at ? at + 1 : s;
	const char *slash = strchr(hp, '/');
	const char *end = slash ? slash : hp + strlen(hp);
	const char *junk;
	char *path = NULL;
	int ret;

	ep->port = DEFAULT_PORT;
	if (at) {
		ret = parse_userinfo(s, at - s, ep, err, errlen);
		if (ret < 0)
			return ret;
	}
	junk = strpbrk(hp, "?#");
	if (junk && junk < end)
		end = junk;
	ret = parse_hostport(hp, end - hp, ep, err, errlen);
	if (ret < 0)
		return ret;
	if (*end != '/') {
		if (*end)
			return fail(err, errlen,
				    "trailing junk '%s' after host", end);
		return 0;
	}
	s = end + 1;
	end = s + strcspn(s, "/?#");
	if (*end)
		return fail(err, errlen, "trailing junk '%s' after db", end);
	if (s == end)
		return 0;
	ret = decode_part(s, end - s, "db", &path, err, errlen);
	if (ret < 0)
		return ret;
	ret = parse_db(path, strlen(path), ep, err, errlen);
	free(path);
	return ret;
}

/* Adds one "host:port" of a list to what the callback's 'arg' is. */
typedef int (*host_add_fn)(void *arg, const char *host, int port, char *err,
			   size_t errlen);

/*
 * Parses the list "host[:port][,host[:port]...]" of 'len' bytes at 's',
 * each with 'port' by default, handing each to 'add'; 'what' names one
 * in the error of an empty one ("sentinel", "node").
 */
static int parse_hostlist(const char *s, size_t len, int port, const char *what,
			  host_add_fn add, void *arg, char *err, size_t errlen)
{
	const char *end = s + len, *comma;
	struct be_endpoint one;
	int ret;

	for (;;) {
		comma = memchr(s, ',', end - s);
		if (!comma)
			comma = end;
		if (comma == s)
			return fail(err, errlen, "empty %s address", what);
		memset(&one, 0, sizeof(one));
		one.port = port;
		ret = parse_hostport(s, comma - s, &one, err, errlen);
		if (ret == 0)
			ret = add(arg, one.host, one.port, err, errlen);
		be_endpoint_release(&one);
		if (ret < 0)
			return ret;
		if (comma == end)
			return 0;
		s = comma + 1;
	}
}

static int add_sentinel(void *arg, const char *host, int port, char *err,
			size_t errlen)
{
	if (be_sentinel_add(arg, host, port) < 0)
		return fail(err, errlen, "out of memory");
	return 0;
}

static int add_seed(void *arg, const char *host, int port, char *err,
		    size_t errlen)
{
	int ret = be_cluster_add_seed(arg, host, port);

	if (ret == -ENOSPC)
		return fail(err, errlen, "too many nodes");
	if (ret < 0)
		return fail(err, errlen, "out of memory");
	return 0;
}

/*
 * Parses the sentinels "host[:port][,host[:port]...]" of 'len' bytes at
 * 's' into the new 'ep->sentinel' for the master 'master'.
 */
static int parse_sentinels(const char *s, size_t len, const char *master,
			   struct be_endpoint *ep, char *err, size_t errlen)
{
	ep->sentinel = be_sentinel_new(master);
	if (!ep->sentinel)
		return fail(err, errlen, "out of memory");
	return parse_hostlist(s, len, SENTINEL_PORT, "sentinel", add_sentinel,
			      ep->sentinel, err, errlen);
}

/*
 * Parses the part of a redis-sentinel:// URL after the scheme:
 * "[user[:password]@]sentinels/MASTER[/db]"; the user and password are
 * the master's.
 */
static int parse_sentinel(const char *s, struct be_endpoint *ep, char *err,
			  size_t errlen)
{
	/* As parse_redis(): the last '@' ends the user info. */
	const char *at = strrchr(s, '@');
	const char *hp = at ? at + 1 : s;
	const char *slash = strchr(hp, '/');
	const char *name, *name_end, *junk;
	char *master = NULL, *path = NULL;
	int ret;

	if (at) {
		ret = parse_userinfo(s, at - s, ep, err, errlen);
		if (ret < 0)
			return ret;
	}
	junk = strpbrk(hp, "?#");
	if (junk && (!slash || junk < slash))
		return fail(err, errlen, "trailing junk '%s' after sentinels",
			    junk);
	if (!slash)
		return fail(
			err, errlen,
			"missing master name: expected redis-sentinel://host:port[,host:port...]/MASTER[/db]");
	name = slash + 1;
	name_end = name + strcspn(name, "/?#");
	if (name == name_end)
		return fail(err, errlen, "empty master name");
	ret = decode_part(name, name_end - name, "master name", &master, err,
			  errlen);
	if (ret < 0)
		return ret;
	ret = parse_sentinels(hp, slash - hp, master, ep, err, errlen);
	free(master);
	if (ret < 0)
		return ret;
	if (!*name_end)
		return 0;
	if (*name_end != '/')
		return fail(err, errlen, "trailing junk '%s' after master name",
			    name_end);
	s = name_end + 1;
	name_end = s + strcspn(s, "/?#");
	if (*name_end)
		return fail(err, errlen, "trailing junk '%s' after db",
			    name_end);
	if (s == name_end)
		return 0;
	ret = decode_part(s, name_end - s, "db", &path, err, errlen);
	if (ret < 0)
		return ret;
	ret = parse_db(path, strlen(path), ep, err, errlen);
	free(path);
	return ret;
}

/*
 * Parses the part of a redis-cluster:// URL after the scheme:
 * "[user[:password]@]host[:port][,host[:port]...][/]", the seed nodes.  A
 * cluster has db 0 only: a db is refused.
 */
static int parse_cluster(const char *s, struct be_endpoint *ep, char *err,
			 size_t errlen)
{
	/* As parse_redis(): the last '@' ends the user info. */
	const char *at = strrchr(s, '@');
	const char *hp = at ? at + 1 : s;
	const char *end = hp + strcspn(hp, "/?#");
	int ret;

	if (at) {
		ret = parse_userinfo(s, at - s, ep, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (*end == '/' && end[1])
		return fail(
			err, errlen,
			"a cluster URL takes no db (a cluster has db 0 only): '%s'",
			end);
	if (*end && *end != '/')
		return fail(err, errlen, "trailing junk '%s' after nodes", end);
	if (end == hp)
		return fail(
			err, errlen,
			"missing nodes: expected redis-cluster://host:port[,host:port...]");
	ep->cluster = be_cluster_new();
	if (!ep->cluster)
		return fail(err, errlen, "out of memory");
	return parse_hostlist(hp, end - hp, DEFAULT_PORT, "node", add_seed,
			      ep->cluster, err, errlen);
}

/* Parses "name=value" of 'len' bytes at 's', a unix:// query parameter. */
static int parse_query_param(const char *s, size_t len, bool *seen_db,
			     struct be_endpoint *ep, char *err, size_t errlen)
{
	const char *eq = memchr(s, '=', len);
	size_t nlen = eq ? (size_t)(eq - s) : len;

	if (nlen != 2 || memcmp(s, "db", 2) != 0)
		return fail(err, errlen, "unknown query parameter '%.*s'",
			    (int)nlen, s);
	if (!eq)
		return fail(err, errlen,
			    "missing value of query parameter 'db'");
	if (*seen_db)
		return fail(err, errlen, "duplicate query parameter 'db'");
	*seen_db = true;
	return parse_db(eq + 1, s + len - eq - 1, ep, err, errlen);
}

/* Parses the part of a unix:// URL after the scheme: "/path[?db=N]". */
static int parse_unix(const char *s, struct be_endpoint *ep, char *err,
		      size_t errlen)
{
	const char *q = s + strcspn(s, "?#");
	const char *p, *amp;
	bool seen_db = false;
	int ret;

	if (*s != '/')
		return fail(
			err, errlen,
			"unix URL needs an absolute path (unix:///path), got '%.*s'",
			(int)(q - s), s);
	if (q == s + 1)
		return fail(err, errlen, "empty socket path");
	ret = decode_part(s, q - s, "path", &ep->unix_path, err, errlen);
	if (ret < 0)
		return ret;
	if (strlen(ep->unix_path) > UNIX_PATH_MAX)
		return fail(err, errlen,
			    "socket path '%s' too long (more than %zu bytes)",
			    ep->unix_path, UNIX_PATH_MAX);
	if (*q == '#')
		return fail(err, errlen, "trailing junk '%s' after path", q);
	if (!*q)
		return 0;
	for (p = q + 1; *p; p = *amp ? amp + 1 : amp) {
		amp = p + strcspn(p, "&");
		if (strchr(p, '#') && strchr(p, '#') < amp)
			return fail(err, errlen,
				    "trailing junk '%s' after query",
				    strchr(p, '#'));
		if (amp == p)
			continue;
		ret = parse_query_param(p, amp - p, &seen_db, ep, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int be_url_parse(const char *url, struct be_endpoint *ep, char *err,
		 size_t errlen)
{
	const char *sep;
	int ret;

	memset(ep, 0, sizeof(*ep));
	if (!url || !*url)
		return fail(err, errlen, "empty URL");
	if (!strncmp(url, REDIS_SCHEME, strlen(REDIS_SCHEME))) {
		ret = parse_redis(url + strlen(REDIS_SCHEME), ep, err, errlen);
	} else if (!strncmp(url, REDISS_SCHEME, strlen(REDISS_SCHEME))) {
		ep->tls = true;
		ret = parse_redis(url + strlen(REDISS_SCHEME), ep, err, errlen);
	} else if (!strncmp(url, UNIX_SCHEME, strlen(UNIX_SCHEME))) {
		ret = parse_unix(url + strlen(UNIX_SCHEME), ep, err, errlen);
	} else if (!strncmp(url, SENTINEL_SCHEME, strlen(SENTINEL_SCHEME))) {
		ret = parse_sentinel(url + strlen(SENTINEL_SCHEME), ep, err,
				     errlen);
	} else if (!strncmp(url, SENTINELS_SCHEME, strlen(SENTINELS_SCHEME))) {
		ep->tls = true;
		ret = parse_sentinel(url + strlen(SENTINELS_SCHEME), ep, err,
				     errlen);
	} else if (!strncmp(url, CLUSTER_SCHEME, strlen(CLUSTER_SCHEME))) {
		ret = parse_cluster(url + strlen(CLUSTER_SCHEME), ep, err,
				    errlen);
	} else if (!strncmp(url, CLUSTERS_SCHEME, strlen(CLUSTERS_SCHEME))) {
		ep->tls = true;
		ret = parse_cluster(url + strlen(CLUSTERS_SCHEME), ep, err,
				    errlen);
	} else {
		/* The rest may hold a password: quote the scheme only. */
		sep = strstr(url, "://");
		if (!sep)
			ret = fail(
				err, errlen,
				"missing scheme: expected redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster://, rediss-cluster:// or unix://");
		else
			ret = fail(
				err, errlen,
				"bad scheme '%.*s': expected redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster://, rediss-cluster:// or unix://",
				(int)(sep - url > 20 ? 20 : sep - url), url);
	}
	if (ret < 0)
		be_endpoint_release(ep);
	return ret;
}

void be_url_hide_password(char *url)
{
	char *s, *at, *colon;

	if (!strncmp(url, REDIS_SCHEME, strlen(REDIS_SCHEME)))
		s = url + strlen(REDIS_SCHEME);
	else if (!strncmp(url, REDISS_SCHEME, strlen(REDISS_SCHEME)))
		s = url + strlen(REDISS_SCHEME);
	else if (!strncmp(url, SENTINEL_SCHEME, strlen(SENTINEL_SCHEME)))
		s = url + strlen(SENTINEL_SCHEME);
	else if (!strncmp(url, SENTINELS_SCHEME, strlen(SENTINELS_SCHEME)))
		s = url + strlen(SENTINELS_SCHEME);
	else if (!strncmp(url, CLUSTER_SCHEME, strlen(CLUSTER_SCHEME)))
		s = url + strlen(CLUSTER_SCHEME);
	else if (!strncmp(url, CLUSTERS_SCHEME, strlen(CLUSTERS_SCHEME)))
		s = url + strlen(CLUSTERS_SCHEME);
	else
		return;
	/* As parse_redis(): the last '@' ends the user info. */
	at = strrchr(s, '@');
	colon = at ? memchr(s, ':', at - s) : NULL;
	if (colon)
		memset(colon + 1, '*', at - colon - 1);
}

/* Appends 's' to 'f', percent-encoding all but unreserved and 'keep'. */
static void put_encoded(FILE *f, const char *s, const char *keep)
{
	for (; *s; s++) {
		if (isalnum((unsigned char)*s) || strchr(URL_UNRESERVED, *s) ||
		    strchr(keep, *s))
			fputc(*s, f);
		else
			fprintf(f, "%%%02X", (unsigned char)*s);
	}
}

/* Appends the host 'host' (NULL: none), an IPv6 address in brackets. */
static void put_host(FILE *f, const char *host)
{
	if (host && strchr(host, ':'))
		fprintf(f, "[%s]", host);
	else
		fputs(host ? host : "", f);
}

char *be_url_display(const struct be_endpoint *ep)
{
	char *buf = NULL;
	size_t size = 0;
	size_t i;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	if (ep->unix_path) {
		fputs(UNIX_SCHEME, f);
		put_encoded(f, ep->unix_path, "/");
		if (ep->db)
			fprintf(f, "?db=%d", ep->db);
	} else if (ep->sentinel) {
		fputs(ep->tls ? SENTINELS_SCHEME : SENTINEL_SCHEME, f);
		if (ep->user) {
			put_encoded(f, ep->user, "");
			fputc('@', f);
		}
		for (i = 0; i < be_sentinel_count(ep->sentinel); i++) {
			if (i)
				fputc(',', f);
			put_host(f, be_sentinel_host(ep->sentinel, i));
			fprintf(f, ":%d", be_sentinel_port(ep->sentinel, i));
		}
		fputc('/', f);
		put_encoded(f, be_sentinel_master_name(ep->sentinel), "");
		fprintf(f, "/%d", ep->db);
	} else if (ep->cluster) {
		fputs(ep->tls ? CLUSTERS_SCHEME : CLUSTER_SCHEME, f);
		if (ep->user) {
			put_encoded(f, ep->user, "");
			fputc('@', f);
		}
		for (i = 0; i < be_cluster_seed_count(ep->cluster); i++) {
			if (i)
				fputc(',', f);
			put_host(f, be_cluster_seed_host(ep->cluster, i));
			fprintf(f, ":%d", be_cluster_seed_port(ep->cluster, i));
		}
	} else {
		fputs(ep->tls ? REDISS_SCHEME : REDIS_SCHEME, f);
		if (ep->user) {
			put_encoded(f, ep->user, "");
			fputc('@', f);
		}
		put_host(f, ep->host);
		fprintf(f, ":%d/%d", ep->port, ep->db);
	}
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

int be_password_file_read(const char *path, char **password, char *err,
			  size_t errlen)
{
	char buf[PASSWORD_FILE_MAX + 1];
	size_t len = 0;
	ssize_t n;
	char *nl;
	int fd, ret = 0;

	*password = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot read password file '%s': %s",
			 path, strerror(-ret));
		return ret;
	}
	while (len < PASSWORD_FILE_MAX) {
		n = read(fd, buf + len, PASSWORD_FILE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snprintf(err, errlen,
				 "cannot read password file '%s': %s", path,
				 strerror(-ret));
			goto out_close;
		}
		if (n == 0)
			break;
		len += n;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	nl = memchr(buf, '\n', len);
	if (!nl && len == PASSWORD_FILE_MAX) {
		ret = fail(
			err, errlen,
			"password file '%s': first line longer than %d bytes",
			path, PASSWORD_FILE_MAX);
		goto out_close;
	}
	if (nl)
		len = nl - buf;
	if (len && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	if (!len) {
		ret = fail(err, errlen, "password file '%s' is empty", path);
		goto out_close;
	}
	if (strlen(buf) != len) {
		ret = fail(err, errlen, "password file '%s' holds a NUL byte",
			   path);
		goto out_close;
	}
	*password = strdup(buf);
	if (!*password)
		ret = -ENOMEM;
	if (ret < 0)
		snprintf(err, errlen, "out of memory");
out_close:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return ret;
}
