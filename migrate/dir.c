/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The walk over a session directory shared by analyze, copy and verify.
 * An entry is looked at (d_type, or fstatat() without following) before
 * anything opens it, and read with the lower-dir store, as the mount reads
 * its lower dir: openat(O_NOFOLLOW) on the directory fd and fstat() on the
 * opened fd, so a symlink (to /etc/shadow, say) is never followed and a
 * file swapped underneath is never mistaken for another; a file rewritten
 * by a running app while it is read is read again.  A sessfs mount over
 * the directory is looked under in a private mount namespace.
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

#include "lowerstore.h"
#include "mountinfo.h"
#include "migrate_i.h"

#define MAX_LAYERS    64 /* sessfs mounts stacked on one mountpoint */
#define READ_ATTEMPTS 5 /* a file still changing after this is skipped */

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

static bool path_is_under(const char *path, const char *top)
{
	size_t len = strlen(top);

	if (strcmp(top, "/") == 0)
		return true;
	return strncmp(path, top, len) == 0 &&
	       (path[len] == '\0' || path[len] == '/');
}

int mig_find_sessfs_mount(const char *real, char *mnt, size_t len)
{
	struct be_mi_table t;
	int found = 0, ret;
	size_t i;

	ret = be_mi_read(&t);
	if (ret)
		return ret;
	/* Later lines are mounted later, so on top: keep the last. */
	for (i = 0; i < t.n; i++) {
		if (strcmp(t.e[i].fstype, MIG_SESSFS_FSTYPE) == 0 &&
		    path_is_under(real, t.e[i].mnt) &&
		    strlen(t.e[i].mnt) < len) {
			strcpy(mnt, t.e[i].mnt);
			found = 1;
		}
	}
	be_mi_free(&t);
	return found;
}

int mig_sessfs_layers(const char *mount)
{
	struct be_mi_table t;
	int layers = 0, ret;
	size_t i;

	ret = be_mi_read(&t);
	if (ret)
		return ret;
	for (i = 0; i < t.n; i++)
		if (strcmp(t.e[i].fstype, MIG_SESSFS_FSTYPE) == 0 &&
		    strcmp(t.e[i].mnt, mount) == 0)
			layers++;
	be_mi_free(&t);
	return layers;
}

int mig_resolve_path(const char *path, char *out)
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
		ret = mig_find_sessfs_mount(real, mnt, sizeof(mnt));
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
	ret = mig_resolve_path(path, real);
	if (ret)
		return error("cannot open '%s': %s", path, strerror(-ret));
	ret = mig_find_sessfs_mount(real, mnt, sizeof(mnt));
	if (ret < 0)
		return error("cannot read /proc/self/mountinfo: %s",
			     strerror(-ret));
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

/*
 * Looks at the entry without opening it (opening a device or a fifo can
 * have effects): its d_type, or fstatat() into 'st' when the file system
 * gives none or when 'want_stat'.
 */
static enum mig_status look(struct mig_dir *d, const struct dirent *de,
			    bool want_stat, struct stat *st, int *err)
{
	if (de->d_type != DT_UNKNOWN && !want_stat) {
		switch (de->d_type) {
		case DT_REG:
			return MIG_OK;
		case DT_LNK:
			return MIG_SYMLINK;
		case DT_DIR:
			return MIG_DIRECTORY;
		default:
			return MIG_SPECIAL;
		}
	}
	if (fstatat(d->fd, de->d_name, st, AT_SYMLINK_NOFOLLOW) == 0)
		return type_status(st->st_mode);
	if (errno == ENOENT)
		return MIG_VANISHED;
	*err = -errno;
	return MIG_READ_ERROR;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/*
 * Reads the regular file 'de' whole with the lower-dir store, the way the
 * mount reads it: O_NOFOLLOW on the directory fd, fstat() on the opened
 * fd, again while it changes under the read.
 */
static enum mig_status read_file(struct mig_dir *d, const struct mig_options *o,
				 const struct dirent *de, struct mig_file *f)
{
	enum mig_status type;
	struct be_file bf;
	struct stat st;
	int attempt, ret;

	for (attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
		ret = be_lower_get(d->fd, de->d_name, o->max_size, true, &bf);
		if (ret != -EAGAIN)
			break;
	}
	switch (ret) {
	case 0:
		break;
	case -EAGAIN:
		return MIG_UNSTABLE;
	case -EFBIG:
		/* The size and date of a refused file are still reported. */
		type = look(d, de, true, &st, &f->err);
		if (type != MIG_OK)
			return type;
		f->len = (size_t)st.st_size;
		f->meta.mtime_ns = ts_ns(&st.st_mtim);
		return MIG_TOO_LARGE;
	case -EINVAL:
		/* No longer a regular file since readdir: say what it is. */
		type = look(d, de, true, &st, &f->err);
		return type == MIG_OK ? MIG_UNSTABLE : type;
	default:
		f->err = ret;
		return MIG_READ_ERROR;
	}
	if (bf.state != BE_PRESENT)
		return MIG_VANISHED;
	f->data = bf.data;
	f->len = bf.size;
	f->meta = bf.meta;
	f->meta.version = BE_LAYOUT_VERSION;
	return MIG_OK;
}

/* MIG_OK for a session name, else why it is none. */
static enum mig_status classify(const struct mig_options *o, const char *name)
{
	/* The lower-dir store's own temps (the mount removes them). */
	if (be_lower_is_temp(name))
		return MIG_LOCAL;
	switch (be_name_classify(&o->sc.ks, name)) {
	case BE_NAME_INVALID:
		return MIG_BAD_NAME;
	case BE_NAME_LOCAL:
		return MIG_LOCAL;
	default:
		return MIG_OK;
	}
}

void mig_file_read(struct mig_dir *d, const struct mig_options *o,
		   const struct dirent *de, int64_t now_ms, struct mig_file *f)
{
	uint32_t expiry;
	struct stat st;

	mig_file_release(f);
	f->name = de->d_name;
	f->kind = kind_of(de->d_name);
	f->status = classify(o, de->d_name);
	if (f->status == MIG_OK)
		f->status = look(d, de, false, &st, &f->err);
	if (f->status == MIG_OK)
		f->status = read_file(d, o, de, f);
	if (f->status != MIG_OK)
		return;

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
		error("refusing '%s': %zu bytes, over --max-size %zu", name,
		      f->len, o->max_size);
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
