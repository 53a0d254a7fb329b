/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * passthrough_floor: the benchmark floor for sessfs.  A minimal low-level
 * FUSE filesystem that passes every request through to a directory on
 * local disk, with the same kernel-facing settings sessfs must use (entry,
 * attribute and negative timeouts 0, no writeback cache, keep_cache off,
 * direct_io, default_permissions, max_write 1 MiB, atomic O_TRUNC, the same thread
 * pool, parallel lookups through sessfs's fs/kio.c), so that the time it adds over a plain directory is what any
 * uncached FUSE filesystem pays, and the time sessfs adds over it is ours.
 * It is a benchmark tool, not a filesystem to run a site on: no xattrs,
 * no locks of its own (the kernel's host-local flock), no symlinks,
 * hard links or special files.  The design follows libfuse's
 * passthrough_ll (an O_PATH fd per inode, the nodeid is the inode's
 * address, reached again through /proc/self/fd to open it).
 *
 *   passthrough_floor MOUNTPOINT [-f] [-d] [-o allow_other,source=DIR]
 *
 * Without source=, the directory under the mountpoint is the source (it
 * is opened before mounting, as sessfs opens its lower dir).  As root,
 * new files and directories belong to the caller, as they would on a
 * plain directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "../fs/kio.h"

/* The same loop as sessfs (fs/fs_i.h FS_MAX_THREADS, fs/main.c run()). */
#define PF_MAX_THREADS 16
#define PF_MAX_WRITE   (1024 * 1024)

/*
 * One inode the kernel knows.  Found again by (dev, ino) so that two names
 * of one file share it; freed when the kernel forgets its last lookup.
 */
struct pf_inode {
	struct pf_inode *next; /* hash chain; under pf->lock */
	int fd; /* O_PATH */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup; /* under pf->lock */
};

struct pf {
	pthread_mutex_t lock;
	struct pf_inode root; /* never in the table, never forgotten */
	struct pf_inode **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	bool set_owner; /* root: give new files to the caller */
};

/* An open directory: fi->fh. */
struct pf_dir {
	DIR *dp;
	struct dirent *entry; /* read but not yet returned */
	off_t offset; /* of the next entry */
};

static struct pf *pf_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pf_inode *pf_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &pf_of(req)->root;
	return (struct pf_inode *)(uintptr_t)ino;
}

static size_t pf_bucket(const struct pf *pf, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h >> 17) & (pf->nbuckets - 1);
}

/* Doubles the table; called with pf->lock held.  Failure is harmless. */
static void pf_table_grow(struct pf *pf)
{
	size_t n = pf->nbuckets * 2, i;
	struct pf_inode **b = calloc(n, sizeof(*b));
	struct pf_inode **old = pf->buckets;
	size_t oldn = pf->nbuckets;

	if (!b)
		return;
	pf->buckets = b;
	pf->nbuckets = n;
	for (i = 0; i < oldn; i++) {
		struct pf_inode *in = old[i], *next;

		for (; in; in = next) {
			size_t k = pf_bucket(pf, in->dev, in->ino);

			next = in->next;
			in->next = b[k];
			b[k] = in;
		}
	}
	free(old);
}

/*
 * Returns the inode of the file open as 'fd' (an O_PATH fd, stat in 'st')
 * with one more lookup counted, or NULL on ENOMEM.  Steals 'fd': it
 * becomes the inode's, or is closed when the inode already had one.
 */
static struct pf_inode *pf_inode_ref(struct pf *pf, int fd,
				     const struct stat *st)
{
	struct pf_inode *in;
	size_t k;

	if (st->st_dev == pf->root.dev && st->st_ino == pf->root.ino) {
		close(fd);
		return &pf->root;
	}
	pthread_mutex_lock(&pf->lock);
	k = pf_bucket(pf, st->st_dev, st->st_ino);
	for (in = pf->buckets[k]; in; in = in->next)
		if (in->dev == st->st_dev && in->ino == st->st_ino)
			break;
	if (in) {
		in->nlookup++;
		pthread_mutex_unlock(&pf->lock);
		close(fd);
		return in;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		pthread_mutex_unlock(&pf->lock);
		close(fd);
		return NULL;
	}
	in->fd = fd;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->nlookup = 1;
	in->next = pf->buckets[k];
	pf->buckets[k] = in;
	if (++pf->count > 2 * pf->nbuckets)
		pf_table_grow(pf);
	pthread_mutex_unlock(&pf->lock);
	return in;
}

static void pf_inode_unref(struct pf *pf, struct pf_inode *in, uint64_t n)
{
	struct pf_inode **pp;

	if (in == &pf->root)
		return;
	pthread_mutex_lock(&pf->lock);
	if (n < in->nlookup) {
		in->nlookup -= n;
		pthread_mutex_unlock(&pf->lock);
		return;
	}
	pp = &pf->buckets[pf_bucket(pf, in->dev, in->ino)];
	while (*pp != in)
		pp = &(*pp)->next;
	*pp = in->next;
	pf->count--;
	pthread_mutex_unlock(&pf->lock);
	close(in->fd);
	free(in);
}

static int pf_stat(int fd, struct stat *st)
{
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* "/proc/self/fd/N": the way to open or change a file held as O_PATH. */
static void pf_fd_path(char buf[64], int fd)
{
	snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

/*
 * Fills 'e' for 'name' in the directory 'parent' and counts the kernel's
 * new reference.  0 or -errno.  No caching of any kind: the kernel asks
 * again for every path walk, as it must with sessfs.
 */
static int pf_entry(fuse_req_t req, struct pf_inode *parent, const char *name,
		    struct fuse_entry_param *e)
{
	struct pf *pf = pf_of(req);
	struct pf_inode *in;
	int fd, ret;

	memset(e, 0, sizeof(*e));
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = pf_stat(fd, &e->attr);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	in = pf_inode_ref(pf, fd, &e->attr);
	if (!in)
		return -ENOMEM;
	e->ino = in == &pf->root ? FUSE_ROOT_ID : (uintptr_t)in;
	e->attr_timeout = 0;
	e->entry_timeout = 0;
	return 0;
}

/* A newly made 'name' in 'dirfd' goes to the caller, as on a plain dir. */
static int pf_set_owner(fuse_req_t req, int dirfd, const char *name, int fd)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int ret;

	if (!pf_of(req)->set_owner)
		return 0;
	if (fd >= 0)
		ret = fchown(fd, ctx->uid, ctx->gid);
	else
		ret = fchownat(dirfd, name, ctx->uid, ctx->gid,
			       AT_SYMLINK_NOFOLLOW);
	return ret < 0 ? -errno : 0;
}

static void pf_init(void *userdata, struct fuse_conn_info *conn)
{
	/* The settings sessfs uses (fs/ops.c fs_init), for a fair floor. */
	conn->max_write = PF_MAX_WRITE;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->time_gran = 1;
}

static void pf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int ret = pf_entry(req, pf_inode_of(req, parent), name, &e);

	if (ret < 0)
		fuse_reply_err(req, -ret); /* not cached: negative timeout 0 */
	else if (fuse_reply_entry(req, &e) != 0 && e.ino != FUSE_ROOT_ID)
		pf_inode_unref(pf_of(req), pf_inode_of(req, e.ino), 1);
}

static void pf_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	pf_inode_unref(pf_of(req), pf_inode_of(req, ino), nlookup);
	fuse_reply_none(req);
}

static void pf_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		pf_inode_unref(pf_of(req), pf_inode_of(req, forgets[i].ino),
			       forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pf_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int ret = pf_stat(pf_inode_of(req, ino)->fd, &st);

	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, 0);
}

/* Applies the time part of a SETATTR: UTIME_NOW and UTIME_OMIT as asked. */
static int pf_set_times(int fd, const char *path, const struct stat *attr,
			int to_set)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_nsec = UTIME_OMIT } };

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = attr->st_mtim;
	if (fd >= 0)
		return futimens(fd, ts) < 0 ? -errno : 0;
	return utimensat(AT_FDCWD, path, ts, 0) < 0 ? -errno : 0;
}

static void pf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct pf_inode *in = pf_inode_of(req, ino);
	int fd = fi ? (int)fi->fh : -1;
	char path[64];
	struct stat st;
	int ret = 0;

	pf_fd_path(path, in->fd);
	if (to_set & FUSE_SET_ATTR_MODE) {
		if (fd >= 0)
			ret = fchmod(fd, attr->st_mode);
		else
			ret = chmod(path, attr->st_mode);
		ret = ret < 0 ? -errno : 0;
	}
	if (ret == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid
							 : (uid_t)-1;
		gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid
							 : (gid_t)-1;

		ret = fchownat(in->fd, "", uid, gid,
			       AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		ret = ret < 0 ? -errno : 0;
	}
	if (ret == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		if (fd >= 0)
			ret = ftruncate(fd, attr->st_size);
		else
			ret = truncate(path, attr->st_size);
		ret = ret < 0 ? -errno : 0;
	}
	if (ret == 0 &&
	    (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		       FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		ret = pf_set_times(fd, path, attr, to_set);
	if (ret == 0)
		ret = pf_stat(in->fd, &st);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, 0);
}

static void pf_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct pf_inode *dir = pf_inode_of(req, parent);
	struct fuse_entry_param e;
	int ret = 0;

	if (mkdirat(dir->fd, name, mode) < 0)
		ret = -errno;
	if (ret == 0)
		ret = pf_set_owner(req, dir->fd, name, -1);
	if (ret == 0)
		ret = pf_entry(req, dir, name, &e);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_entry(req, &e) != 0)
		pf_inode_unref(pf_of(req), pf_inode_of(req, e.ino), 1);
}

static void pf_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int ret = unlinkat(pf_inode_of(req, parent)->fd, name, 0);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void pf_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int ret = unlinkat(pf_inode_of(req, parent)->fd, name, AT_REMOVEDIR);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void pf_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	int ret = renameat2(pf_inode_of(req, parent)->fd, name,
			    pf_inode_of(req, newparent)->fd, newname, flags);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void pf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[64];
	int fd;

	pf_fd_path(path, pf_inode_of(req, ino)->fd);
	/* The kernel handled O_CREAT and O_EXCL, and /proc links must be followed. */
	fd = open(path, fi->flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = fd;
	fi->keep_cache = 0;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0)
		close(fd);
}

/*
 * Creates 'name' for open(O_CREAT): O_EXCL first, so that only a file made
 * here is given to the caller; without O_EXCL in the request an existing
 * file is opened as it is.
 */
static void pf_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct pf_inode *dir = pf_inode_of(req, parent);
	int flags = (fi->flags | O_CREAT | O_CLOEXEC) & ~O_NOFOLLOW;
	struct fuse_entry_param e;
	bool made = true;
	int fd, ret = 0;

	fd = openat(dir->fd, name, flags | O_EXCL | O_NOFOLLOW, mode);
	if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL)) {
		made = false;
		fd = openat(dir->fd, name, (flags & ~O_CREAT) | O_NOFOLLOW);
	}
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (made)
		ret = pf_set_owner(req, dir->fd, name, fd);
	if (ret == 0)
		ret = pf_entry(req, dir, name, &e);
	if (ret < 0) {
		close(fd);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = fd;
	fi->keep_cache = 0;
	fi->direct_io = 1;
	if (fuse_reply_create(req, &e, fi) != 0) {
		close(fd);
		pf_inode_unref(pf_of(req), pf_inode_of(req, e.ino), 1);
	}
}

static void pf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	/* libfuse reads from the fd itself (or splices, where enabled). */
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void pf_write(fuse_req_t req, fuse_ino_t ino, const char *data,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n = pwrite((int)fi->fh, data, size, off);

	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

/* close(2) reports the underlying filesystem's errors: pass them on. */
static void pf_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int fd = dup((int)fi->fh);

	if (fd < 0 || close(fd) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void pf_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void pf_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	int ret = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void pf_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pf_dir *d = calloc(1, sizeof(*d));
	int fd;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(pf_inode_of(req, ino)->fd, ".",
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d->dp = fd < 0 ? NULL : fdopendir(fd);
	if (!d->dp) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
}

/*
 * Fills one READDIR reply from 'off' on.  An entry that does not fit stays
 * in d->entry for the next call, which continues at its offset.
 */
static void pf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct pf_dir *d = (struct pf_dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t left = size;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct stat st = { 0 };
		size_t len;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				if (errno && p == buf) {
					free(buf);
					fuse_reply_err(req, errno);
					return;
				}
				break;
			}
		}
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)d->entry->d_type << 12;
		len = fuse_add_direntry(req, p, left, d->entry->d_name, &st,
					d->entry->d_off);
		if (len > left)
			break;
		p += len;
		left -= len;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	fuse_reply_buf(req, buf, size - left);
	free(buf);
}

static void pf_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct pf_dir *d = (struct pf_dir *)(uintptr_t)fi->fh;

	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void pf_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (fstatvfs(pf_inode_of(req, ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/*
 * Left out on purpose: xattrs, ioctl, flock, symlink, link, mknod.  The
 * kernel gets ENOSYS once and stops asking for xattrs; flock stays the
 * kernel's host-local lock, as in sessfs.
 */
static const struct fuse_lowlevel_ops pf_oper = {
	.init = pf_init,
	.lookup = pf_lookup,
	.forget = pf_forget,
	.forget_multi = pf_forget_multi,
	.getattr = pf_getattr,
	.setattr = pf_setattr,
	.mkdir = pf_mkdir,
	.unlink = pf_unlink,
	.rmdir = pf_rmdir,
	.rename = pf_rename,
	.open = pf_open,
	.create = pf_create,
	.read = pf_read,
	.write = pf_write,
	.flush = pf_flush,
	.release = pf_release,
	.fsync = pf_fsync,
	.opendir = pf_opendir,
	.readdir = pf_readdir,
	.releasedir = pf_releasedir,
	.statfs = pf_statfs,
};

struct pf_options {
	char *source;
};

static const struct fuse_opt pf_opts[] = {
	{ "source=%s", offsetof(struct pf_options, source), 0 }, FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s MOUNTPOINT [-f] [-d] [-o allow_other,source=DIR]\n"
	       "\n"
	       "The sessfs benchmark floor: passes every request through to\n"
	       "DIR (default: the directory under MOUNTPOINT), with no kernel\n"
	       "caching, as sessfs must.  Unmount with 'fusermount3 -u'.\n",
	       prog);
}

/*
 * Every inode the kernel holds keeps an O_PATH fd open here, so a walk of
 * 100k files needs 100k fds: raise the limit as far as root may.
 */
static void pf_raise_nofile(void)
{
	struct rlimit rl = { .rlim_cur = 1 << 20, .rlim_max = 1 << 20 };

	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 ||
	    getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Opens the source and sets up the root inode and the table. */
static int pf_setup(struct pf *pf, const char *source)
{
	struct stat st;

	pf->root.fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pf->root.fd < 0 || pf_stat(pf->root.fd, &st) < 0) {
		fprintf(stderr, "passthrough_floor: cannot open '%s': %s\n",
			source, strerror(errno));
		return -1;
	}
	pf->root.dev = st.st_dev;
	pf->root.ino = st.st_ino;
	pf->root.nlookup = 2;
	pf->nbuckets = 1024;
	pf->buckets = calloc(pf->nbuckets, sizeof(*pf->buckets));
	if (!pf->buckets) {
		fprintf(stderr, "passthrough_floor: out of memory\n");
		return -1;
	}
	pthread_mutex_init(&pf->lock, NULL);
	pf->set_owner = geteuid() == 0;
	pf_raise_nofile();
	return 0;
}

/* Frees what the kernel did not forget before the unmount. */
static void pf_teardown(struct pf *pf)
{
	size_t i;

	for (i = 0; i < pf->nbuckets; i++) {
		struct pf_inode *in = pf->buckets[i], *next;

		for (; in; in = next) {
			next = in->next;
			close(in->fd);
			free(in);
		}
	}
	free(pf->buckets);
	if (pf->root.fd >= 0)
		close(pf->root.fd);
}

static int pf_run(struct pf *pf, struct fuse_args *args, const char *mnt,
		  int foreground)
{
	struct fuse_loop_config *lc;
	struct fuse_session *se;
	int ret = 1;

	se = fuse_session_new(args, &pf_oper, sizeof(pf_oper), pf);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, mnt) != 0)
		goto out_signals;
	/* The kernel flags sessfs gets: libfuse 3.14 drops parallel dirops. */
	if (fs_kio_install(se) < 0)
		fprintf(stderr, "passthrough_floor: lookups are serialised\n");
	fuse_daemonize(foreground);
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_idle_threads(lc, PF_MAX_THREADS / 2);
	fuse_loop_cfg_set_max_threads(lc, PF_MAX_THREADS);
	ret = fuse_session_loop_mt(se, lc) ? 1 : 0;
	fuse_loop_cfg_destroy(lc);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct pf_options o = { 0 };
	struct pf pf = { .root.fd = -1 };
	int ret = 1;

	if (fuse_parse_cmdline(&args, &cmd) != 0)
		return 1;
	if (cmd.show_help || !cmd.mountpoint) {
		usage(argv[0]);
		ret = cmd.show_help ? 0 : 1;
		goto out_args;
	}
	if (fuse_opt_parse(&args, &o, pf_opts, NULL) != 0)
		goto out_args;
	/* Modes arrive as asked, like sessfs stores them. */
	umask(0);
	if (pf_setup(&pf, o.source ? o.source : cmd.mountpoint) < 0)
		goto out_args;
	if (fuse_opt_add_arg(
		    &args,
		    "-odefault_permissions,fsname=floor,subtype=passthrough_floor") !=
	    0)
		goto out_args;
	ret = pf_run(&pf, &args, cmd.mountpoint, cmd.foreground);
out_args:
	pf_teardown(&pf);
	free(o.source);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
