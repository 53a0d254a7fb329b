/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /dev/fuse I/O with parallel lookups switched on (see kio.h).
 *
 * read() notes the unique id of the kernel's INIT request and whether it
 * offered FUSE_PARALLEL_DIROPS; writev() adds the flag to the reply with
 * that id.  INIT is the first request and is answered before any other,
 * so the state is written once, before the worker threads start reading.
 *
 * Both also count, for the watchdog (notify.c): requests that expect a
 * reply, and replies written.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "kio.h"

static atomic_uint_fast64_t init_unique; /* 0: no INIT pending */
static atomic_bool parallel_dirops;
static atomic_uint_fast64_t n_requests, n_replies;

/* Whether the kernel waits for a reply to a request of 'opcode'. */
static bool wants_reply(uint32_t opcode)
{
	return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET &&
	       opcode != FUSE_INTERRUPT && opcode != FUSE_NOTIFY_REPLY;
}

static ssize_t kio_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;
	struct fuse_init_in init;

	(void)userdata;
	/*
	 * libfuse ends the session quietly on ENODEV, which it takes to mean
	 * unmounted or aborted through /sys/fs/fuse/connections.  Recent
	 * kernels answer ECONNABORTED when the last user of a lazily detached
	 * mount lets go at the wrong moment (CI's TSan run met it after
	 * 'sessfs -u' with a file kept open): the same end, so the same exit.
	 */
	if (n < 0 && errno == ECONNABORTED)
		errno = ENODEV;
	if (n >= (ssize_t)sizeof(*in) && wants_reply(in->opcode))
		atomic_fetch_add(&n_requests, 1);
	if (n < (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, flags) +
			  sizeof(init.flags)) ||
	    in->opcode != FUSE_INIT)
		return n;
	memcpy(&init, (const char *)buf + sizeof(*in),
	       offsetof(struct fuse_init_in, flags) + sizeof(init.flags));
	if (init.flags & FUSE_PARALLEL_DIROPS)
		atomic_store(&init_unique, in->unique);
	return n;
}

static ssize_t kio_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	uint64_t want = atomic_load(&init_unique);

	(void)userdata;
	if (count >= 1 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    ((struct fuse_out_header *)iov[0].iov_base)->unique != 0)
		atomic_fetch_add(&n_replies, 1);
	if (want && count >= 2 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >=
		    offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
		struct fuse_out_header *out = iov[0].iov_base;

		if (out->unique == want && out->error == 0) {
			struct fuse_init_out *o = iov[1].iov_base;

			o->flags |= FUSE_PARALLEL_DIROPS;
			atomic_store(&init_unique, 0);
			atomic_store(&parallel_dirops, true);
		}
	}
	return writev(fd, iov, count);
}

int fs_kio_install(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = kio_read,
		.writev = kio_writev,
	};
	int ret = fuse_session_custom_io(se, &io, fuse_session_fd(se));

	return ret < 0 ? ret : 0;
}

bool fs_kio_parallel_dirops(void)
{
	return atomic_load(&parallel_dirops);
}

void fs_kio_progress(uint64_t *requests, uint64_t *replies)
{
	/* Replies first: a request read after that cannot look answered. */
	*replies = atomic_load(&n_replies);
	*requests = atomic_load(&n_requests);
}
