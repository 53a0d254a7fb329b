/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The lower dir as a store (see lowerstore.h): every call works relative to
 * the directory fd it is given and never follows a symlink.  Files are
 * opened with O_NOFOLLOW and checked with fstat on the opened fd, so a name
 * swapped for a symlink or a directory between a check and a use is never
 * acted on; writes go to a temp file in the same directory that is given
 * its bytes, owner, mode and times and then renamed over the name, so a
 * reader sees the old file or the new one, never a mix.  There is no state
 * shared between calls: every function may run in any thread.
 *
 * Beyond the header: every call refuses (-EINVAL) a name that is empty,
 * ".", "..", holds '/' or is one of our temps; put over a symlink replaces
 * the symlink itself (rename does not follow it) and never writes its
 * target; setmeta sets atime to the mtime, as put does; delete removes a
 * symlink or fifo itself, never what it points to.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lowerstore.h"
#include "util.h"

#define TEMP_SUFFIX_LEN 16 /* hex digits */
#define TEMP_TRIES	100

/* Flags of every open of an existing name: never a symlink, never a tty. */
#define OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

bool be_lower_is_temp(const char *name)
{
	return strncmp(name, BE_LOWER_TEMP_PREFIX,
		       sizeof(BE_LOWER_TEMP_PREFIX) - 1) == 0;
}

/*
 * Checks that 'name' names an entry of the directory itself: not empty,
 * ".", ".." or holding '/' (which would reach outside it), and not one of
 * our temps (removed at the next start, so nothing may be stored under
 * such a name).  0 or -EINVAL.
 */
static int check_name(const char *name)
{
	if (!name || !name[0] || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, "..") || be_lower_is_temp(name))
		return -EINVAL;
	return 0;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = ns / 1000000000LL;
	ts.tv_nsec = ns % 1000000000LL;
	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000LL;
	}
	return ts;
}

/*
 * Maps the errno of an open of an existing name with O_NOFOLLOW: ELOOP is
 * a symlink, ENXIO a socket; both are "not a regular file".
 */
static int open_error(int err)
{
	if (err == ELOOP || err == ENXIO)
		return -EINVAL;
	return -err;
}

static void meta_from_stat(struct be_meta *m, const struct stat *st)
{
	m->mtime_ns = ts_ns(&st->st_mtim);
	m->ctime_ns = ts_ns(&st->st_ctim);
	m->uid = st->st_uid;
	m->gid = st->st_gid;
	m->mode = st->st_mode & 07777;
}

/*
 * Reads exactly 'len' bytes at offset 0 of 'fd' into 'buf'.  0, -EAGAIN if
 * the file ended early (it shrank), or -errno.
 */
static int read_exact(int fd, char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN;
		done += (size_t)n;
	}
	return 0;
}

/*
 * Reads the bytes of the open regular file 'fd', whose fstat was 'st',
 * into f->data.  A size or mtime that changed while we read means a writer
 * changed the file in place (not through us): -EAGAIN rather than a mix.
 */
static int read_data(int fd, const struct stat *st, struct be_file *f)
{
	size_t len = (size_t)st->st_size;
	struct stat after;
	int ret;

	f->data = malloc(len + 1);
	if (!f->data)
		return -ENOMEM;
	ret = read_exact(fd, f->data, len);
	if (ret)
		return ret;
	f->data[len] = '\0';
	if (fstat(fd, &after) < 0)
		return -errno;
	/*
	 * Not ctime: it changes also when the file is renamed over (its
	 * link count drops), which leaves the bytes we read intact.
	 */
	if (after.st_size != st->st_size ||
	    ts_ns(&after.st_mtim) != ts_ns(&st->st_mtim))
		return -EAGAIN;
	return 0;
}

int be_lower_get(int dirfd, const char *name, size_t max_size, bool want_data,
		 struct be_file *f)
{
	struct stat st;
	int fd, ret;

	memset(f, 0, sizeof(*f));
	ret = check_name(name);
	if (ret)
		return ret;
	fd = openat(dirfd, name, OPEN_FLAGS);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* f->state is BE_ABSENT */
		return open_error(errno);
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max_size) {
		ret = -EFBIG;
		goto out_close;
	}
	f->state = BE_PRESENT;
	f->has_meta = true;
	f->pttl_ms = -1;
	f->size = (size_t)st.st_size;
	meta_from_stat(&f->meta, &st);
	if (want_data)
		ret = read_data(fd, &st, f);
out_close:
	close(fd);
	if (ret)
		be_file_release(f);
	return ret;
}

/*
 * Writes a new temp name (BE_LOWER_TEMP_PREFIX + 16 hex digits) into
 * 'buf'.  getrandom() never blocks here (GRND_NONBLOCK: the daemon may
 * start before the entropy pool is ready); the clock and the address of a
 * stack variable stand in then, and O_EXCL catches any collision.
 */
static void temp_name(char *buf, size_t size)
{
	uint64_t r;
	struct timespec ts;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^
		    (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts ^
		    ((uint64_t)getpid() << 32);
	}
	snprintf(buf, size, "%s%016llx", BE_LOWER_TEMP_PREFIX,
		 (unsigned long long)r);
}

/* Creates a new temp file in 'dirfd'; its name goes into 'tmp'. */
static int temp_create(int dirfd, char *tmp, size_t size)
{
	int i, fd;

	for (i = 0; i < TEMP_TRIES; i++) {
		temp_name(tmp, size);
		fd = openat(dirfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC | O_NOCTTY,
			    0600);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

/*
 * Gives the open file 'fd' the owner, mode and times of 'meta'.  chmod
 * comes after chown, which clears the setuid and setgid bits.
 */
static int set_meta_fd(int fd, const struct be_meta *meta)
{
	struct timespec times[2];

	if (fchown(fd, meta->uid, meta->gid) < 0)
		return -errno;
	if (fchmod(fd, meta->mode & 07777) < 0)
		return -errno;
	times[0] = ns_ts(meta->mtime_ns);
	times[1] = times[0];
	if (futimens(fd, times) < 0)
		return -errno;
	return 0;
}

int be_lower_put(int dirfd, const char *name, const void *data, size_t len,
		 const struct be_meta *meta)
{
	char tmp[sizeof(BE_LOWER_TEMP_PREFIX) + TEMP_SUFFIX_LEN];
	int fd, ret;

	ret = check_name(name);
	if (ret)
		return ret;
	fd = temp_create(dirfd, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	ret = be_write_all(fd, data, len);
	if (!ret)
		ret = set_meta_fd(fd, meta);
	/* close() reports delayed write errors on some filesystems (NFS). */
	if (close(fd) < 0 && !ret && errno != EINTR)
		ret = -errno;
	if (ret)
		goto out_unlink;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	return 0;
out_unlink:
	unlinkat(dirfd, tmp, 0);
	return ret;
}

int be_lower_delete(int dirfd, const char *name)
{
	int ret;

	ret = check_name(name);
	if (ret)
		return ret;
	if (unlinkat(dirfd, name, 0) < 0)
		return -errno;
	return 0;
}

int be_lower_setmeta(int dirfd, const char *name, const struct be_meta *meta)
{
	struct stat st;
	int fd, ret;

	ret = check_name(name);
	if (ret)
		return ret;
	/*
	 * Work on an fd (opened read-only: root may always) rather than on
	 * the name, so the file checked is the file changed.
	 */
	fd = openat(dirfd, name, OPEN_FLAGS);
	if (fd < 0)
		return open_error(errno);
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		ret = -EINVAL;
	else
		ret = set_meta_fd(fd, meta);
	close(fd);
	return ret;
}

int be_lower_rename(int dirfd, const char *from, const char *to, bool noreplace)
{
	int ret;

	ret = check_name(from);
	if (!ret)
		ret = check_name(to);
	if (ret)
		return ret;
	if (renameat2(dirfd, from, dirfd, to,
		      noreplace ? RENAME_NOREPLACE : 0) < 0)
		return -errno;
	return 0;
}

/*
 * Opens a DIR stream of its own on 'dirfd', so the caller's fd keeps its
 * offset and stays open.  NULL with errno set on failure.
 */
static DIR *dir_open(int dirfd)
{
	DIR *d;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		int err = errno;

		close(fd);
		errno = err;
	}
	return d;
}

/*
 * Tells whether the entry 'de' of 'dirfd' is a regular file: 1, 0, or
 * -errno.  An entry gone meanwhile is not one.
 */
static int entry_is_regular(int dirfd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_REG;
	if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	return S_ISREG(st.st_mode);
}

int be_lower_list(int dirfd, be_list_cb cb, void *arg)
{
	struct dirent *de;
	int ret = 0;
	DIR *d;

	d = dir_open(dirfd);
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			ret = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    be_lower_is_temp(de->d_name))
			continue;
		ret = entry_is_regular(dirfd, de);
		if (ret < 0)
			break;
		if (!ret)
			continue;
		ret = cb(de->d_name, BE_PRESENT, arg);
		if (ret)
			break;
	}
	closedir(d);
	return ret;
}

int be_lower_cleanup(int dirfd)
{
	struct dirent *de;
	int count = 0, ret = 0;
	DIR *d;

	d = dir_open(dirfd);
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno && !ret)
				ret = -errno;
			break;
		}
		if (!be_lower_is_temp(de->d_name))
			continue;
		/*
		 * Our temps are regular files; anything else under the
		 * prefix (a directory: EISDIR) is not ours to remove.  Keep
		 * going after an error so one bad entry does not keep the
		 * others, and report the first error.
		 */
		if (entry_is_regular(dirfd, de) != 1)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			count++;
		else if (errno != ENOENT && !ret)
			ret = -errno;
	}
	closedir(d);
	return ret ? ret : count;
}
