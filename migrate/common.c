/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers every subcommand of sessfs-migrate uses: one-line messages, the
 * key options shared with the mount, the connection to Redis and the
 * clocks.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "sentinel.h"
#include "tls.h"
#include "url.h"
#include "migrate_i.h"

/*
 * Longest --ttl: a century keeps ttl * 1000 and mtime + ttl far from
 * overflowing.
 */
#define MAX_TTL_S (100LL * 366 * 24 * 3600)
/* The mount's limit (fs/main.c): copy never stores what it would refuse. */
#define MAX_MAX_SIZE (64LL * 1024 * 1024)

#define BAR_WIDTH    30
#define BAR_INTERVAL 0.1 /* seconds between redraws */
#define CLEAR_LINE   "\r\033[K"

/*
 * stderr is shared by the copy's threads: the bar on the screen, which a
 * message clears first, is under 'output_lock'.
 */
static pthread_mutex_t output_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mig_progress *shown_bar;

__attribute__((format(printf, 2, 0))) static void
vreport(const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	pthread_mutex_lock(&output_lock);
	fprintf(stderr, "%s%s%s\n", shown_bar ? CLEAR_LINE : "", prefix, msg);
	if (shown_bar)
		shown_bar->drawn = 0;
	pthread_mutex_unlock(&output_lock);
}

int error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("error: ", fmt, ap);
	va_end(ap);
	return -1;
}

void warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("warning: ", fmt, ap);
	va_end(ap);
}

const char *mig_quote(const char *name, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *name; name++) {
		unsigned char ch = (unsigned char)*name;
		char esc[4];
		size_t n = 0;

		if (ch == '\\' || ch == '\n' || ch == '\t') {
			esc[n++] = '\\';
			esc[n++] = ch == '\n' ? 'n' : ch == '\t' ? 't' : '\\';
		} else if (ch < 0x20 || ch >= 0x7f) {
			esc[n++] = '\\';
			esc[n++] = 'x';
			esc[n++] = hex[ch >> 4];
			esc[n++] = hex[ch & 15];
		} else {
			esc[n++] = (char)ch;
		}
		if (o + n + 4 > len) {
			strcpy(buf + o, "...");
			return buf;
		}
		memcpy(buf + o, esc, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

int mig_bad_option(int c, char **argv, const char *cmd)
{
	const char *opt = argv[optind - 1];

	if (c == ':')
		return error("option '%s' needs a value; see '" MIG_PROGNAME
			     " %s --help'",
			     opt, cmd);
	if (optopt)
		return error("unknown option '-%c'; see '" MIG_PROGNAME
			     " %s --help'",
			     optopt, cmd);
	return error("unknown option '%s'; see '" MIG_PROGNAME " %s --help'",
		     opt, cmd);
}

void mig_options_init(struct mig_options *o)
{
	memset(o, 0, sizeof(*o));
	o->sc.ks.layout = BE_LAYOUT_PLAIN;
	o->sc.ttl.ttl_s = BE_DEFAULT_TTL;
	o->redis_timeout = MIG_DEFAULT_TIMEOUT;
	o->max_size = BE_DEFAULT_MAX_SIZE;
}

void mig_options_release(struct mig_options *o)
{
	free(o->prefix);
	free(o->host_id);
	memset(o, 0, sizeof(*o));
}

/*
 * Parses the whole of 'arg' as a decimal integer in [min, max] into
 * '*out'.  0 or -1.
 */
static int parse_ll(const char *arg, long long min, long long max,
		    long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int mig_key_option(struct mig_options *o, int opt, const char *arg)
{
	long long v;
	char *end;

	switch (opt) {
	case MIG_OPT_PREFIX:
		if (be_prefix_check(arg))
			return error(
				"invalid --prefix '%s': it must not hold '{', '}' or a newline",
				arg);
		free(o->prefix);
		o->prefix = strdup(arg);
		if (!o->prefix)
			return error("out of memory");
		return 0;
	case MIG_OPT_LAYOUT:
		if (strcmp(arg, "plain") == 0)
			o->sc.ks.layout = BE_LAYOUT_PLAIN;
		else if (strcmp(arg, "phpredis") == 0)
			o->sc.ks.layout = BE_LAYOUT_PHPREDIS;
		else
			return error(
				"invalid --layout '%s': use plain or phpredis",
				arg);
		return 0;
	case MIG_OPT_TTL:
		if (parse_ll(arg, 1, MAX_TTL_S, &v))
			return error(
				"invalid --ttl '%s': a number of seconds, 1 to %lld",
				arg, MAX_TTL_S);
		o->sc.ttl.ttl_s = v;
		return 0;
	case MIG_OPT_TTL_FROM:
		if (strcmp(arg, "cachelib") == 0)
			o->sc.ttl.ignore_cachelib = false;
		else if (strcmp(arg, "none") == 0)
			o->sc.ttl.ignore_cachelib = true;
		else
			return error(
				"invalid --ttl-from '%s': use cachelib or none",
				arg);
		return 0;
	case MIG_OPT_MAX_SIZE:
		if (parse_ll(arg, 1, MAX_MAX_SIZE, &v))
			return error(
				"invalid --max-size '%s': a number of bytes, 1 to %lld",
				arg, MAX_MAX_SIZE);
		o->max_size = (size_t)v;
		return 0;
	case MIG_OPT_PASSWORD_FILE:
		o->password_file = arg;
		return 0;
	case MIG_OPT_REDIS_TIMEOUT:
		errno = 0;
		o->redis_timeout = strtod(arg, &end);
		if (errno || end == arg || *end || !(o->redis_timeout > 0) ||
		    o->redis_timeout > 86400)
			return error(
				"invalid --redis-timeout '%s': seconds, above 0",
				arg);
		return 0;
	case MIG_OPT_HOST_ID:
		if (!*arg || strlen(arg) >= sizeof(((struct be_meta *)0)->host))
			return error("invalid --host-id '%s': 1 to 63 bytes",
				     arg);
		free(o->host_id);
		o->host_id = strdup(arg);
		if (!o->host_id)
			return error("out of memory");
		return 0;
	case MIG_OPT_ALLOW_EVICTING:
		o->allow_evicting = true;
		return 0;
	case MIG_OPT_TLS_CA:
		o->tls.ca = arg;
		return 0;
	case MIG_OPT_TLS_CERT:
		o->tls.cert = arg;
		return 0;
	case MIG_OPT_TLS_KEY:
		o->tls.key = arg;
		return 0;
	case MIG_OPT_TLS_SERVER_NAME:
		o->tls.server_name = arg;
		return 0;
	case MIG_OPT_SENTINEL_PASSWORD_FILE:
		o->sentinel_password_file = arg;
		return 0;
	}
	return error("unknown option code %d", opt);
}

int mig_options_finish(struct mig_options *o)
{
	const char *def = o->sc.ks.layout == BE_LAYOUT_PHPREDIS
				  ? BE_PHPREDIS_PREFIX
				  : MIG_DEFAULT_PREFIX;

	if (!o->prefix) {
		o->prefix = strdup(def);
		if (!o->prefix)
			return error("out of memory");
	}
	if (!o->host_id) {
		o->host_id = be_host_id_default();
		if (!o->host_id)
			return error("out of memory");
	}
	o->sc.ks.prefix = o->prefix;
	o->sc.host_id = o->host_id;
	return 0;
}

/*
 * Connects 'c' (its URL shown as 'shown') and checks the server's
 * eviction policy.  0, or prints why and returns -1.
 */
static int connect_checked(const struct mig_options *o, struct be_conn *c,
			   const char *shown)
{
	static bool warned;
	char err[512];
	int ret;

	if (be_conn_connect(c))
		return error("cannot connect to '%s': %s", shown,
			     be_conn_errstr(c));
	ret = be_store_check_server(c, o->allow_evicting, err, sizeof(err));
	if (ret)
		/* The backend's text names the mount's option. */
		return error("cannot use '%s': %s%s", shown, err,
			     ret == -EPERM ? " (here: --allow-evicting-redis)"
					   : "");
	/* Once, not once per connection of a copy's jobs. */
	if (err[0] && !warned)
		warning("'%s': %s (here: --allow-evicting-redis)", shown, err);
	warned = warned || err[0];
	return 0;
}

/* Gives the sentinels of 's' the password in 'file'.  0, or prints why. */
static int set_sentinel_password(struct be_sentinel *s, const char *file)
{
	char err[256], *password;
	int ret;

	if (be_password_file_read(file, &password, err, sizeof(err)))
		return error("%s", err);
	ret = be_sentinel_set_password(s, password);
	explicit_bzero(password, strlen(password));
	free(password);
	return ret ? error("out of memory") : 0;
}

int mig_connect_n(struct mig_options *o, const char *url,
		  struct be_conn **conns, int n)
{
	struct be_endpoint ep;
	char err[256];
	char *shown;
	int i, ret = -1;

	for (i = 0; i < n; i++)
		conns[i] = NULL;
	if (be_url_parse(url, &ep, err, sizeof(err)))
		return error("invalid Redis URL: %s", err);
	if (o->password_file) {
		free(ep.password);
		ep.password = NULL;
		if (be_password_file_read(o->password_file, &ep.password, err,
					  sizeof(err))) {
			error("%s", err);
			goto out_release;
		}
	}
	if (o->sentinel_password_file && !ep.sentinel) {
		error("--sentinel-password-file needs a redis-sentinel:// or rediss-sentinel:// URL");
		goto out_release;
	}
	if (o->sentinel_password_file &&
	    set_sentinel_password(ep.sentinel, o->sentinel_password_file))
		goto out_release;
	if (be_tls_options_check(&o->tls, ep.tls, true, err, sizeof(err))) {
		error("%s; see '" MIG_PROGNAME " <command> --help'", err);
		goto out_release;
	}
	if (ep.tls) {
		ep.tls_ctx = be_tls_new(&o->tls, ep.host, err, sizeof(err));
		if (!ep.tls_ctx) {
			error("%s", err);
			goto out_release;
		}
		/* rediss-sentinel://: the sentinels speak TLS too. */
		if (ep.sentinel)
			be_sentinel_set_tls(ep.sentinel, ep.tls_ctx);
	}
	shown = be_url_display(&ep);
	if (!shown) {
		error("out of memory");
		goto out_release;
	}
	/* A cluster keeps no names index (store.h). */
	o->sc.cluster = ep.cluster != NULL;
	/* One endpoint: the connections share its TLS context. */
	for (i = 0; i < n; i++) {
		conns[i] = be_conn_new(&ep, o->redis_timeout);
		if (!conns[i]) {
			error("out of memory");
			goto out_free_conns;
		}
		if (connect_checked(o, conns[i], shown))
			goto out_free_conns;
	}
	ret = 0;
	goto out_free_shown;
out_free_conns:
	for (i = 0; i < n; i++) {
		be_conn_free(conns[i]);
		conns[i] = NULL;
	}
out_free_shown:
	free(shown);
out_release:
	be_endpoint_release(&ep);
	return ret;
}

int mig_connect(struct mig_options *o, const char *url, struct be_conn **conn)
{
	return mig_connect_n(o, url, conn, 1);
}

void mig_progress_start(struct mig_progress *p, const char *label, long total,
			bool enabled)
{
	memset(p, 0, sizeof(*p));
	p->label = label;
	p->total = total;
	p->start = mig_monotonic();
	p->enabled = enabled;
}

static void progress_draw(struct mig_progress *p, double now)
{
	double elapsed = now - p->start;
	double rate = elapsed > 0 ? p->done / elapsed : 0;
	long total = p->total > p->done ? p->total : p->done;
	int fill = total ? (int)((double)p->done * BAR_WIDTH / total) : 0;
	long eta = rate > 0 ? (long)((total - p->done) / rate) : 0;
	char bar[BAR_WIDTH + 1];

	memset(bar, '=', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(BAR_WIDTH - fill));
	if (fill < BAR_WIDTH)
		bar[fill] = '>';
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr,
		CLEAR_LINE "%s [%s] %3d%%  %ld/%ld  %.0f/s  ETA %ld:%02ld",
		p->label, bar, total ? (int)(p->done * 100 / total) : 100,
		p->done, total, rate, eta / 60, eta % 60);
	fflush(stderr);
	p->drawn = now;
	shown_bar = p;
}

void mig_progress_update(struct mig_progress *p, long done)
{
	double now;

	pthread_mutex_lock(&output_lock);
	p->done = done;
	if (p->enabled) {
		now = mig_monotonic();
		if (p->drawn == 0 || now - p->drawn >= BAR_INTERVAL)
			progress_draw(p, now);
	}
	pthread_mutex_unlock(&output_lock);
}

void mig_progress_end(struct mig_progress *p)
{
	pthread_mutex_lock(&output_lock);
	if (shown_bar == p) {
		fprintf(stderr, CLEAR_LINE);
		fflush(stderr);
		shown_bar = NULL;
	}
	pthread_mutex_unlock(&output_lock);
}

int64_t mig_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double mig_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
