/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The trimmer thread (see trim.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "log.h"
#include "trim.h"

#define TRIM_BATCH 4096
/* After this many invalidations, give freed memory back to the system. */
#define TRIM_RETURN 16384

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	struct fs *fs;
	int fd;
	bool started;
	bool stop;
	bool done;
} tr = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .cond = PTHREAD_COND_INITIALIZER,
	 .fd = -1 };

/* Asks the kernel to drop its entry for 'name' in the root. */
static int inval_entry(int fd, const char *name)
{
	struct fuse_out_header oh = { 0 };
	struct fuse_notify_inval_entry_out out = { 0 };
	size_t len = strlen(name);
	struct iovec iov[3] = {
		{ &oh, sizeof(oh) },
		{ &out, sizeof(out) },
		{ (void *)name, len + 1 },
	};

	oh.len = (uint32_t)(sizeof(oh) + sizeof(out) + len + 1);
	oh.error = FUSE_NOTIFY_INVAL_ENTRY;
	out.parent = FUSE_ROOT_ID;
	out.namelen = (uint32_t)len;
	return writev(fd, iov, 3) < 0 ? -errno : 0;
}

static bool stopping(void)
{
	bool stop;

	pthread_mutex_lock(&tr.lock);
	stop = tr.stop;
	pthread_mutex_unlock(&tr.lock);
	return stop;
}

/* One pass: returns how many entries were invalidated. */
static size_t trim_pass(void)
{
	static char *names[TRIM_BATCH];
	int64_t before = fs_mono_ns() / 1000000000LL - FS_TRIM_IDLE_SEC + 1;
	size_t total = 0, n, i;
	bool gone = false;

	do {
		n = fs_inode_idle_names(tr.fs, before, FS_TRIM_KEEP, names,
					TRIM_BATCH);
		for (i = 0; i < n; i++) {
			int ret = gone || stopping()
					  ? 0
					  : inval_entry(tr.fd, names[i]);

			/* ENOENT: the kernel had dropped it already. */
			if (ret < 0 && ret != -ENOENT && ret != -EINTR) {
				LOG_DEBUG("cannot invalidate '%s': %s",
					  names[i], strerror(-ret));
				gone = true; /* the connection is going */
			}
			free(names[i]);
		}
		total += n;
		/* The FORGETs come back asynchronously: let them. */
		if (n == TRIM_BATCH)
			sched_yield();
	} while (n == TRIM_BATCH && !gone && !stopping());
	return total;
}

static void *trim_thread(void *arg)
{
	size_t since_return = 0;

	(void)arg;
	for (;;) {
		struct timespec ts;

		pthread_mutex_lock(&tr.lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!tr.stop)
			pthread_cond_timedwait(&tr.cond, &tr.lock, &ts);
		if (tr.stop) {
			tr.done = true;
			pthread_cond_broadcast(&tr.cond);
			pthread_mutex_unlock(&tr.lock);
			return NULL;
		}
		pthread_mutex_unlock(&tr.lock);
		/*
		 * Memory freed by the last pass's FORGETs goes back to the
		 * system a pass later, when they have arrived.
		 */
		if (since_return >= TRIM_RETURN) {
			malloc_trim(0);
			since_return = 0;
		}
		since_return += trim_pass();
	}
}

int fs_trim_start(struct fs *fs, int fuse_fd)
{
	tr.fs = fs;
	tr.fd = fcntl(fuse_fd, F_DUPFD_CLOEXEC, 0);
	if (tr.fd < 0)
		return -errno;
	if (pthread_create(&tr.thread, NULL, trim_thread, NULL) != 0) {
		close(tr.fd);
		tr.fd = -1;
		return -EAGAIN;
	}
	tr.started = true;
	return 0;
}

void fs_trim_stop(void)
{
	struct timespec ts;
	bool done;

	if (!tr.started)
		return;
	pthread_mutex_lock(&tr.lock);
	tr.stop = true;
	pthread_cond_broadcast(&tr.cond);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	while (!tr.done)
		if (pthread_cond_timedwait(&tr.cond, &tr.lock, &ts) ==
		    ETIMEDOUT)
			break;
	done = tr.done;
	pthread_mutex_unlock(&tr.lock);
	if (!done) {
		/* Blocked in the kernel: its fd stays open, it is left. */
		LOG_WARN("the trimmer does not stop: left running");
		pthread_detach(tr.thread);
		return;
	}
	pthread_join(tr.thread, NULL);
	close(tr.fd);
	tr.fd = -1;
	tr.started = false;
}
