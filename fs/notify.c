/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * systemd supervision (see notify.h): our own sd_notify (one datagram to
 * $NOTIFY_SOCKET), and the supervisor thread that tells systemd when the
 * mount is ready and feeds its watchdog while the daemon serves.  A second
 * thread, the prober, makes the self-stats: a stat of the mountpoint can
 * block for as long as the daemon does not answer, and the supervisor
 * must not block with it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "kio.h"
#include "log.h"
#include "notify.h"

/* How often the supervisor stats the mountpoint until it is ready. */
#define NOTIFY_READY_POLL_NS (10 * 1000000LL)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* any change below */
	struct sockaddr_un addr; /* systemd's socket */
	socklen_t addrlen; /* 0: systemd does not listen */
	int64_t watchdog_ns; /* $WATCHDOG_USEC in ns; 0: no watchdog */

	struct fs *fs;
	char *path; /* the mountpoint */
	dev_t dev; /* our layer's device */
	bool ready; /* READY=1 was sent */
	bool stop;
	pthread_t sup, prober;
	bool sup_started, prober_started;
	bool sup_done, prober_done;

	/* The prober: stats the mountpoint when 'asked' exceeds 'done'. */
	uint64_t asked, done;
	int probe_result; /* of probe 'done': 0 ours, 1 elsewhere, -errno */
} sn = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .cond = PTHREAD_COND_INITIALIZER }; /* monotonic once started */

/* Parses a decimal number of microseconds; 0 when absent or invalid. */
static int64_t env_usec(const char *name)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > 1000000000000ULL)
		return 0;
	return (int64_t)v;
}

bool fs_notify_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET"), *wpid;
	size_t len;

	if (s && (s[0] == '/' || s[0] == '@') &&
	    (len = strlen(s)) < sizeof(sn.addr.sun_path) && len > 1) {
		sn.addr.sun_family = AF_UNIX;
		memcpy(sn.addr.sun_path, s, len);
		/* An abstract name: '@' stands for the leading NUL. */
		if (s[0] == '@')
			sn.addr.sun_path[0] = '\0';
		sn.addrlen =
			(socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				    len + (s[0] == '/'));
		sn.watchdog_ns = env_usec("WATCHDOG_USEC") * 1000;
		wpid = getenv("WATCHDOG_PID");
		if (wpid && atol(wpid) != (long)getpid())
			sn.watchdog_ns = 0; /* meant for another process */
	} else if (s) {
		LOG_WARN("ignoring NOTIFY_SOCKET '%s': not a unix socket path",
			 s);
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return sn.addrlen > 0;
}

int fs_notify(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int fd, n, ret = 0;

	if (!sn.addrlen)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EMSGSIZE;
	/* A socket per message: rare, and nothing to share across threads. */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL,
		   (const struct sockaddr *)&sn.addr, sn.addrlen) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* STATUS= text: the mode, and the legacy cutoff once it has passed. */
static int send_status(struct fs *fs, const char *prefix)
{
	return fs_notify(
		"%sSTATUS=mode %s%s", prefix, fs_mode_name(fs_mode_get(fs)),
		fs_legacy_reads_ended(fs) ? ", legacy reads ended" : "");
}

void fs_notify_status(struct fs *fs)
{
	bool ready;

	pthread_mutex_lock(&sn.lock);
	ready = sn.ready;
	pthread_mutex_unlock(&sn.lock);
	if (ready)
		send_status(fs, "");
}

void fs_notify_stopping(void)
{
	fs_notify("STOPPING=1\nSTATUS=stopping");
}

/*
 * The prober: a stat of the mountpoint for every probe asked.  0 when our
 * layer answered, 1 when the path leads elsewhere (a lazy unmount, a
 * mount over ours), -errno when it failed.
 */
static void *prober_thread(void *arg)
{
	struct stat st;
	int ret;

	(void)arg;
	pthread_mutex_lock(&sn.lock);
	for (;;) {
		while (!sn.stop && sn.asked == sn.done)
			pthread_cond_wait(&sn.cond, &sn.lock);
		if (sn.stop)
			break;
		pthread_mutex_unlock(&sn.lock);
		if (stat(sn.path, &st) < 0)
			ret = -errno;
		else
			ret = !sn.dev || st.st_dev == sn.dev ? 0 : 1;
		pthread_mutex_lock(&sn.lock);
		sn.done = sn.asked;
		sn.probe_result = ret;
		pthread_cond_broadcast(&sn.cond);
	}
	sn.prober_done = true;
	pthread_cond_broadcast(&sn.cond);
	pthread_mutex_unlock(&sn.lock);
	return NULL;
}

/*
 * Waits on sn.cond until 'deadline' (CLOCK_MONOTONIC ns, the clock of
 * sn.cond: a step of the wall clock must not stall the watchdog); holds
 * sn.lock.
 */
static void wait_until(int64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000LL),
			       .tv_nsec = (long)(deadline % 1000000000LL) };

	if (deadline > fs_mono_ns())
		pthread_cond_timedwait(&sn.cond, &sn.lock, &ts);
}

/*
 * Asks for a probe unless one is in flight, and waits for it until
 * 'deadline'.  Returns its result, or -ETIMEDOUT.  Holds sn.lock.
 */
static int probe(int64_t deadline)
{
	uint64_t want;

	if (sn.asked == sn.done)
		sn.asked++;
	want = sn.asked;
	pthread_cond_broadcast(&sn.cond);
	while (!sn.stop && sn.done < want && fs_mono_ns() < deadline)
		wait_until(deadline);
	return sn.done >= want ? sn.probe_result : -ETIMEDOUT;
}

/*
 * Whether the daemon serves, at one watchdog check: the loop replied
 * since the last check ('*replies' is updated), or our layer answered a
 * self-stat now, or the path leads elsewhere and nothing waits for a
 * reply.  Holds sn.lock.
 */
static bool healthy(uint64_t *replies)
{
	uint64_t req, rep;
	int ret;

	fs_kio_progress(&req, &rep);
	if (rep != *replies) {
		*replies = rep;
		return true;
	}
	ret = probe(fs_mono_ns() + sn.watchdog_ns / 4);
	if (ret == 0)
		return true;
	if (ret == 1) {
		fs_kio_progress(&req, &rep);
		return req <= rep;
	}
	return false;
}

static void *supervisor_thread(void *arg)
{
	struct fs *fs = arg;
	uint64_t replies = 0;
	int64_t next, bad_since = 0;

	pthread_mutex_lock(&sn.lock);
	while (!sn.stop) {
		if (probe(fs_mono_ns() + NOTIFY_READY_POLL_NS) == 0)
			break;
		wait_until(fs_mono_ns() + NOTIFY_READY_POLL_NS);
	}
	if (sn.stop)
		goto out;
	sn.ready = true;
	pthread_mutex_unlock(&sn.lock);
	/* Forked without -f: systemd (NotifyAccess=all) learns our pid. */
	if (fs->cfg.foreground)
		send_status(fs, "READY=1\n");
	else
		fs_notify("READY=1\nMAINPID=%ld", (long)getpid());
	if (!fs->cfg.foreground)
		send_status(fs, "");
	LOG_INFO("told systemd that '%s' is ready%s", sn.path,
		 sn.watchdog_ns ? "; feeding its watchdog" : "");
	pthread_mutex_lock(&sn.lock);

	next = fs_mono_ns();
	while (!sn.stop && sn.watchdog_ns) {
		next += sn.watchdog_ns / 2;
		while (!sn.stop && fs_mono_ns() < next)
			wait_until(next);
		if (sn.stop)
			break;
		if (healthy(&replies)) {
			if (bad_since)
				LOG_INFO(
					"'%s' answers again: feeding the watchdog",
					sn.path);
			bad_since = 0;
			pthread_mutex_unlock(&sn.lock);
			fs_notify("WATCHDOG=1");
			pthread_mutex_lock(&sn.lock);
		} else if (!bad_since) {
			bad_since = fs_mono_ns();
			LOG_ERR("'%s' does not answer: the systemd watchdog is not fed",
				sn.path);
		}
		/* A check that waited long must not make the next one early. */
		if (fs_mono_ns() > next)
			next = fs_mono_ns();
	}
out:
	sn.sup_done = true;
	pthread_cond_broadcast(&sn.cond);
	pthread_mutex_unlock(&sn.lock);
	return NULL;
}

int fs_notify_start(struct fs *fs, dev_t dev)
{
	pthread_condattr_t ca;

	if (!sn.addrlen)
		return 0;
	/* No thread uses sn.cond yet. */
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&sn.cond, &ca) != 0)
		return -EINVAL;
	pthread_condattr_destroy(&ca);
	/*
	 * A check passes when a reply went out since the last one, half an
	 * interval ago; while Redis is down, every busy thread replies within
	 * redis_timeout.
	 */
	if (sn.watchdog_ns &&
	    (double)sn.watchdog_ns / 2 <= fs->redis_timeout * 1e9)
		LOG_WARN(
			"WatchdogSec (%.1f s) is not above twice redis_timeout (%.1f s): a redis outage under load may get the daemon restarted",
			(double)sn.watchdog_ns / 1e9, fs->redis_timeout);
	sn.fs = fs;
	sn.dev = dev;
	sn.path = strdup(fs->cfg.mountpoint);
	if (!sn.path)
		return -ENOMEM;
	if (pthread_create(&sn.prober, NULL, prober_thread, NULL) != 0)
		return -EAGAIN;
	sn.prober_started = true;
	if (pthread_create(&sn.sup, NULL, supervisor_thread, fs) != 0)
		return -EAGAIN;
	sn.sup_started = true;
	return 0;
}

/* Joins 'thread' once '*done', waiting up to 2 s; else leaves it. */
static void join(pthread_t thread, bool *done, const char *what)
{
	int64_t deadline = fs_mono_ns() + 2000000000LL;
	bool ok;

	pthread_mutex_lock(&sn.lock);
	while (!*done && fs_mono_ns() < deadline)
		wait_until(deadline);
	ok = *done;
	pthread_mutex_unlock(&sn.lock);
	if (!ok) {
		LOG_WARN("the %s does not stop: left running", what);
		pthread_detach(thread);
		return;
	}
	pthread_join(thread, NULL);
}

void fs_notify_stop(void)
{
	bool prober_left;

	pthread_mutex_lock(&sn.lock);
	sn.stop = true;
	pthread_cond_broadcast(&sn.cond);
	pthread_mutex_unlock(&sn.lock);
	if (sn.sup_started)
		join(sn.sup, &sn.sup_done, "watchdog supervisor");
	if (sn.prober_started)
		join(sn.prober, &sn.prober_done, "watchdog prober");
	prober_left = sn.prober_started && !sn.prober_done;
	sn.sup_started = sn.prober_started = false;
	/* A prober stuck in stat() still reads the path. */
	if (!prober_left) {
		free(sn.path);
		sn.path = NULL;
	}
}
