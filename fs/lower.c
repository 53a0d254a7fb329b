/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Legacy reads from the lower dir: the session directory as it was before
 * sessfs was mounted over it, reached through a directory fd opened before
 * mounting.  A file is read with openat(O_NOFOLLOW) and fstat on the same
 * fd, so a symlink or a file swapped underneath is never followed; only
 * live regular files are served.  An expired one is removed from the lower
 * dir when found (DESIGN.md, "Expired legacy files"): the mount hides it,
 * and the lower dir must hold only what the mount shows, or a rollback
 * would bring it back.
 *
 * -o legacy_reads_until=DATE ends the legacy reads (the migration plan's
 * deprecation of file reads): from DATE on, in redis-first and redis-only,
 * a name Redis has neither a value nor a tombstone for is absent, whatever
 * the lower dir holds; nothing is read, copied up or listed from there.
 * The files stay (redis-first still writes the lower dir), but a listing
 * still removes the expired ones it finds (fs_lower_sweep()), so that a
 * rollback brings back no file the mount would have hidden anyway.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "log.h"
#include "notify.h"

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int read_all(int fd, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* shrank while we read: try again later */
		done += n;
	}
	return 0;
}

/*
 * Removes the expired legacy file 'name', if it is still the file 'st'
 * describes (caller holds the name's stripe; nothing else writes the lower
 * dir while mounted).  A failure only leaves it hidden, and is logged.
 */
static void lower_remove_expired(struct fs *fs, const char *name,
				 const struct stat *st)
{
	struct stat now;

	if (fstatat(fs->lower_fd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
	    now.st_ino != st->st_ino || now.st_dev != st->st_dev)
		return;
	if (unlinkat(fs->lower_fd, name, 0) < 0 && errno != ENOENT) {
		LOG_WARN("cannot remove expired '%s' from the lower dir: %s",
			 name, strerror(errno));
		return;
	}
	LOG_DEBUG("removed expired '%s' from the lower dir", name);
}

bool fs_legacy_cutoff_passed(struct fs *fs)
{
	return fs->legacy_until_ns && fs_now_ns() >= fs->legacy_until_ns;
}

bool fs_legacy_reads_ended(struct fs *fs)
{
	if (fs_mode_get(fs) < FS_MODE_REDIS_FIRST ||
	    !fs_legacy_cutoff_passed(fs))
		return false;
	if (!atomic_exchange(&fs->legacy_ended_seen, true)) {
		LOG_INFO(
			"legacy reads have ended (legacy_reads_until): sessions only in the files underneath are no longer read or copied up");
		fs_notify_status(fs);
	}
	return true;
}

int fs_lower_read(struct fs *fs, const char *name, struct be_file *f)
{
	if (fs_legacy_reads_ended(fs)) {
		memset(f, 0, sizeof(*f));
		return -ENOENT;
	}
	return fs_lower_sweep(fs, name, f);
}

int fs_lower_sweep(struct fs *fs, const char *name, struct be_file *f)
{
	struct timespec now;
	struct stat st;
	int64_t ttl;
	char *buf;
	int fd, ret;

	memset(f, 0, sizeof(*f));
	fd = openat(fs->lower_fd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			LOG_WARN("ignoring '%s' in the lower dir: a symlink",
				 name);
		return errno == ENOENT || errno == ELOOP || errno == EISDIR
			       ? -ENOENT
			       : -errno;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		LOG_WARN("ignoring '%s' in the lower dir: not a regular file",
			 name);
		ret = -ENOENT;
		goto out_close;
	}
	if ((size_t)st.st_size > fs->max_size) {
		LOG_WARN(
			"ignoring '%s' in the lower dir: %lld bytes, over max_size",
			name, (long long)st.st_size);
		ret = -EFBIG;
		goto out_close;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out_close;
	}
	ret = read_all(fd, buf, st.st_size);
	if (ret < 0)
		goto out_free;

	clock_gettime(CLOCK_REALTIME, &now);
	ttl = be_ttl_remaining_ms(&fs->sc.ttl, name, buf, st.st_size,
				  ts_ns(&st.st_mtim) / 1000000,
				  ts_ns(&now) / 1000000);
	if (ttl <= 0) {
		lower_remove_expired(fs, name, &st);
		ret = -ENOENT;
		goto out_free;
	}
	f->state = BE_PRESENT;
	f->has_meta = true;
	f->data = buf;
	f->size = st.st_size;
	f->pttl_ms = ttl;
	f->meta.version = BE_LAYOUT_VERSION;
	f->meta.mtime_ns = ts_ns(&st.st_mtim);
	f->meta.ctime_ns = ts_ns(&st.st_ctim);
	f->meta.uid = st.st_uid;
	f->meta.gid = st.st_gid;
	f->meta.mode = st.st_mode & 07777;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return ret;
}

int fs_lower_root_stat(struct fs *fs, struct stat *st)
{
	return fstat(fs->lower_fd, st) < 0 ? -errno : 0;
}
