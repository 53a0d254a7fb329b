/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The walk over a session directory shared by analyze, copy and verify.
 * Entries are opened with openat(O_NOFOLLOW) on the directory fd and
 * checked with fstat() on the opened fd, so a symlink (to /etc/shadow, say)
 * is never followed and a file swapped underneath is never mistaken for
 * another.  A session is read whole between two fstat()s that must agree,
 * so a file rewritten by a running app is read again rather than copied
 * half old, half new.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate_i.h"

#define MOUNTS_FILE	"/proc/self/mounts"
#define SESSFS_FSTYPE	"fuse.sessfs"
#define MAX_LAYERS	64 /* sessfs mounts stacked on one mountpoint */
#define READ_ATTEMPTS	5 /* a file still changing after this is skipped */
#define CACHELIB_HEADER 5 /* expiry (4 bytes) + pickle's 0x80 */

const char *const mig_kind_names[MIG_KIND_COUNT] = {
	[MIG_KIND_PHP] = "php",
	[MIG_KIND_CACHELIB] = "cachelib",
	[MIG_KIND_DJANGO] = "django",
	[MIG_KIND_OTHER] = "other",
};

const char *const mig_status_names[MIG_STATUS_COUNT] = {
	[MIG_OK] = "ok",
	[MIG_LOCAL] = "local",
	[MIG_BAD_NAME] = "invalid_name",
	[MIG_SYMLINK] = "symlink",
	[MIG_DIRECTORY] = "directory",
	[MIG_SPECIAL] = "special",
	[MIG_TOO_LARGE] = "too_large",
	[MIG_EXPIRED] = "expired",
	[MIG_VANISHED] = "vanished",
	[MIG_UNSTABLE] = "unstable",
	[MIG_READ_ERROR] = "read_error",
};

/* Undoes the octal escapes of /proc/self/mounts (\040 for a space) in 's'. */
static void unescape_mount_field(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

static bool path_is_under(const char *path, const char *top)
{
	size_t len = strlen(top);

	if (strcmp(top, "/") == 0)
		return true;
	return strncmp(path, top, len) == 0 &&
	       (path[len] == '\0' || path[len] == '/');
}

/*
 * Finds the topmost fuse.sessfs mount that holds the absolute path 'real'
 * and copies its mountpoint into 'mnt'.  1 if found, 0 if not, -errno.
 */
static int find_sessfs_mount(const char *real, char *mnt, size_t len)
{
	char *line = NULL;
	size_t cap = 0;
	int found = 0;
	FILE *f;

	f = fopen(MOUNTS_FILE, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *save, *point, *type;

		if (!strtok_r(line, " ", &save))
			continue;
		point = strtok_r(NULL, " ", &save);
		type = strtok_r(NULL, " ", &save);
		if (!point || !type || strcmp(type, SESSFS_FSTYPE) != 0)
			continue;
		unescape_mount_field(point);
		/* Later lines are mounted later, so on top: keep the last. */
		if (path_is_under(real, point) && strlen(point) < len) {
			strcpy(mnt, point);
			found = 1;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/*
 * Resolves 'path' into the absolute 'out' (PATH_MAX bytes).  A dead FUSE
 * mount answers ENOTCONN to stat, so then its parent is resolved and the
 * last component appended.
 */
static int resolve_path(const char *path, char *out)
{
	char *dir, *base;
	int ret = 0;

	if (realpath(path, out))
		return 0;
	if (errno != ENOTCONN)
		return -errno;
	/* POSIX dirname() and basename() may modify their argument. */
	dir = strdup(path);
	base = strdup(path);
	if (!dir || !base)
		ret = -ENOMEM;
	else if (!realpath(dirname(dir), out))
		ret = -errno;
	else if (strlen(out) + strlen(basename(base)) + 2 > PATH_MAX)
		ret = -ENAMETOOLONG;
	else if (strcmp(out, "/") != 0)
		strcat(strcat(out, "/"), basename(base));
	else
		strcat(out, basename(base));
	free(dir);
	free(base);
	return ret;
}

/*
 * Detaches every sessfs mount over 'real' in a private mount namespace of
 * this process: others, the daemon included, keep seeing the mount.
 * 0 or -errno (EPERM when not root).
 */
static int detach_privately(const char *real)
{
	char mnt[PATH_MAX];
	int layers, ret;

	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	/* Without this, the unmount would propagate to the shared parent. */
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	for (layers = 0; layers < MAX_LAYERS; layers++) {
		ret = find_sessfs_mount(real, mnt, sizeof(mnt));
		if (ret <= 0)
			return ret;
		if (umount2(mnt, MNT_DETACH) < 0)
			return -errno;
	}
	return -ELOOP;
}

int mig_dir_open(struct mig_dir *d, const char *path)
{
	char real[PATH_MAX], mnt[PATH_MAX];
	int ret, fd;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	d->path = path;
	ret = resolve_path(path, real);
	if (ret)
		return error("cannot open '%s': %s", path, strerror(-ret));
	ret = find_sessfs_mount(real, mnt, sizeof(mnt));
	if (ret < 0)
		return error("cannot read %s: %s", MOUNTS_FILE, strerror(-ret));
	if (ret > 0) {
		ret = detach_privately(real);
		if (ret)
			return error(
				"'%s' is a sessfs mount (on '%s') and the directory underneath cannot be read: %s; run as root, or unmount it first",
				path, mnt, strerror(-ret));
		d->underneath = true;
	}
	d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		if (errno == ENOTCONN)
			return error(
				"cannot open '%s': a dead FUSE mount (transport endpoint not connected)",
				path);
		return error("cannot open '%s': %s", path, strerror(errno));
	}
	fd = dup(d->fd);
	if (fd >= 0)
		d->dir = fdopendir(fd);
	if (!d->dir) {
		ret = errno;
		if (fd >= 0)
			close(fd);
		close(d->fd);
		d->fd = -1;
		return error("cannot list '%s': %s", path, strerror(ret));
	}
	return 0;
}

void mig_dir_close(struct mig_dir *d)
{
	if (d->dir)
		closedir(d->dir);
	if (d->fd >= 0)
		close(d->fd);
	d->dir = NULL;
	d->fd = -1;
}

static bool is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

const struct dirent *mig_dir_next(struct mig_dir *d, int *err)
{
	struct dirent *de;

	*err = 0;
	for (;;) {
		errno = 0;
		de = readdir(d->dir);
		if (!de) {
			*err = -errno;
			return NULL;
		}
		if (!is_dot(de->d_name))
			return de;
	}
}

long mig_dir_count(struct mig_dir *d)
{
	const struct dirent *de;
	long n = 0;
	int err;

	while ((de = mig_dir_next(d, &err)))
		n++;
	rewinddir(d->dir);
	return err ? -1 : n;
}

static enum mig_kind kind_of(const char *name)
{
	if (strncmp(name, "sess_", 5) == 0)
		return MIG_KIND_PHP;
	if (be_name_is_cachelib(name))
		return MIG_KIND_CACHELIB;
	if (strncmp(name, "sessionid", 9) == 0)
		return MIG_KIND_DJANGO;
	return MIG_KIND_OTHER;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       ts_ns(&a->st_mtim) == ts_ns(&b->st_mtim) &&
	       ts_ns(&a->st_ctim) == ts_ns(&b->st_ctim);
}

/*
 * Reads 'fd' from offset 0 to EOF into f->data, at most 'max' bytes:
 * MIG_OK, MIG_TOO_LARGE (more than 'max'), or MIG_READ_ERROR.
 */
static enum mig_status read_whole(int fd, size_t max, struct mig_file *f)
{
	size_t cap = (size_t)f->st.st_size < max ? (size_t)f->st.st_size : max;
	size_t len = 0;
	char *buf, *bigger;
	ssize_t n;

	/* One byte more than expected, to see a file that grew. */
	cap++;
	buf = malloc(cap);
	if (!buf)
		goto out_error;
	for (;;) {
		n = pread(fd, buf + len, cap - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out_error;
		if (n == 0)
			break;
		len += (size_t)n;
		/* A file that grew since is seen by the caller's fstat(). */
		if (len == (size_t)f->st.st_size)
			break;
		if (len < cap)
			continue;
		if (cap > max) {
			free(buf);
			return MIG_TOO_LARGE;
		}
		cap = max + 1;
		bigger = realloc(buf, cap);
		if (!bigger)
			goto out_error;
		buf = bigger;
	}
	f->data = buf;
	f->len = len;
	return MIG_OK;

out_error:
	f->err = -errno;
	free(buf);
	return MIG_READ_ERROR;
}

/*
 * Reads the open regular file 'fd' of 'f' ('f->st' from a first fstat)
 * whole, again until its attributes before and after the read agree.
 */
static enum mig_status read_stable(int fd, size_t max, struct mig_file *f)
{
	struct stat after;
	enum mig_status s;
	int attempt;

	for (attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
		s = read_whole(fd, max, f);
		if (s != MIG_OK)
			return s;
		if (fstat(fd, &after) < 0) {
			f->err = -errno;
			return MIG_READ_ERROR;
		}
		if (same_stat(&f->st, &after) &&
		    f->len == (size_t)after.st_size)
			return MIG_OK;
		free(f->data);
		f->data = NULL;
		f->len = 0;
		f->st = after;
		if ((size_t)after.st_size > max)
			return MIG_TOO_LARGE;
	}
	return MIG_UNSTABLE;
}

static enum mig_status read_header(int fd, struct mig_file *f)
{
	ssize_t n;

	f->data = malloc(CACHELIB_HEADER);
	if (!f->data) {
		f->err = -ENOMEM;
		return MIG_READ_ERROR;
	}
	do {
		n = pread(fd, f->data, CACHELIB_HEADER, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		f->err = -errno;
		return MIG_READ_ERROR;
	}
	f->len = (size_t)n;
	return MIG_OK;
}

static enum mig_status type_status(mode_t mode)
{
	if (S_ISREG(mode))
		return MIG_OK;
	if (S_ISLNK(mode))
		return MIG_SYMLINK;
	if (S_ISDIR(mode))
		return MIG_DIRECTORY;
	return MIG_SPECIAL;
}

/* Opens the regular file 'de' and fstat()s it into f->st: MIG_OK + fd. */
static enum mig_status open_regular(struct mig_dir *d, const struct dirent *de,
				    struct mig_file *f, int *fd)
{
	enum mig_status s;
	struct stat st;

	*fd = -1;
	/* Look before opening: opening a device or fifo can have effects. */
	if (de->d_type == DT_UNKNOWN) {
		if (fstatat(d->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			goto out_errno;
		s = type_status(st.st_mode);
	} else {
		s = de->d_type == DT_REG   ? MIG_OK
		    : de->d_type == DT_LNK ? MIG_SYMLINK
		    : de->d_type == DT_DIR ? MIG_DIRECTORY
					   : MIG_SPECIAL;
	}
	if (s != MIG_OK)
		return s;
	*fd = openat(d->fd, de->d_name,
		     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0)
		goto out_errno;
	if (fstat(*fd, &f->st) < 0)
		goto out_errno;
	/* The name may have been replaced since readdir. */
	return type_status(f->st.st_mode);

out_errno:
	switch (errno) {
	case ENOENT:
		return MIG_VANISHED;
	case ELOOP:
		return MIG_SYMLINK;
	case ENXIO:
		return MIG_SPECIAL;
	}
	f->err = -errno;
	return MIG_READ_ERROR;
}

void mig_file_read(struct mig_dir *d, const struct mig_options *o,
		   const struct dirent *de, bool header_only, int64_t now_ms,
		   struct mig_file *f)
{
	uint32_t expiry;
	int fd;

	mig_file_release(f);
	f->name = de->d_name;
	f->kind = kind_of(de->d_name);
	switch (be_name_classify(&o->sc.ks, de->d_name)) {
	case BE_NAME_INVALID:
		f->status = MIG_BAD_NAME;
		return;
	case BE_NAME_LOCAL:
		f->status = MIG_LOCAL;
		return;
	case BE_NAME_SESSION:
		break;
	}
	f->status = open_regular(d, de, f, &fd);
	if (f->status == MIG_OK && (size_t)f->st.st_size > o->max_size)
		f->status = MIG_TOO_LARGE;
	if (f->status == MIG_OK)
		f->status = header_only ? read_header(fd, f)
					: read_stable(fd, o->max_size, f);
	if (fd >= 0)
		close(fd);
	if (f->status != MIG_OK)
		return;

	f->meta.version = BE_LAYOUT_VERSION;
	f->meta.mtime_ns = ts_ns(&f->st.st_mtim);
	f->meta.ctime_ns = ts_ns(&f->st.st_ctim);
	f->meta.uid = f->st.st_uid;
	f->meta.gid = f->st.st_gid;
	f->meta.mode = f->st.st_mode & 07777;
	f->bad_header = f->kind == MIG_KIND_CACHELIB &&
			!o->sc.ttl.ignore_cachelib &&
			be_cachelib_expiry(f->data, f->len, &expiry) != 0;
	f->ttl_ms = be_ttl_remaining_ms(&o->sc.ttl, f->name, f->data, f->len,
					f->meta.mtime_ns / 1000000, now_ms);
	if (f->ttl_ms <= 0)
		f->status = MIG_EXPIRED;
}

void mig_file_release(struct mig_file *f)
{
	free(f->data);
	memset(f, 0, sizeof(*f));
}

bool mig_status_is_problem(enum mig_status s)
{
	switch (s) {
	case MIG_OK:
	case MIG_LOCAL:
	case MIG_EXPIRED:
	case MIG_VANISHED:
		return false;
	default:
		return true;
	}
}

static const char *bad_name_reason(const struct mig_options *o,
				   const char *name)
{
	if (strpbrk(name, "{}\n"))
		return "invalid name (holds '{', '}' or a newline)";
	if (strlen(name) > BE_NAME_MAX)
		return "invalid name (too long)";
	if (o->sc.ks.layout == BE_LAYOUT_PHPREDIS)
		return "not a PHP session name, which the phpredis layout needs";
	return "invalid name";
}

void mig_file_report(const struct mig_file *f, const struct mig_options *o)
{
	char q[MIG_QUOTE_MAX];
	const char *name = mig_quote(f->name, q, sizeof(q));

	switch (f->status) {
	case MIG_BAD_NAME:
		error("refusing '%s': %s", name, bad_name_reason(o, f->name));
		break;
	case MIG_SYMLINK:
		error("refusing '%s': a symbolic link (never followed)", name);
		break;
	case MIG_DIRECTORY:
		error("refusing '%s': a subdirectory (sessions are flat files)",
		      name);
		break;
	case MIG_SPECIAL:
		error("refusing '%s': not a regular file", name);
		break;
	case MIG_TOO_LARGE:
		error("refusing '%s': %lld bytes, over --max-size %zu", name,
		      (long long)f->st.st_size, o->max_size);
		break;
	case MIG_UNSTABLE:
		error("cannot read '%s': it kept changing while read", name);
		break;
	case MIG_READ_ERROR:
		error("cannot read '%s': %s", name, strerror(-f->err));
		break;
	case MIG_OK:
		if (f->bad_header)
			warning("'%s': no valid cachelib expiry header, its TTL comes from its mtime",
				name);
		break;
	default:
		break;
	}
}
