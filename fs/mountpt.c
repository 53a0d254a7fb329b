/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mountpoint across crashes: the private bind of the lower dir under
 * /run/sessfs, the restart path that mounts a new fuse.sessfs layer over a
 * dead one through our own /dev/fuse fd, and the removal of every layer.
 * What is mounted where is read from /proc/self/mountinfo; mountpt.h states
 * the contracts and the call order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "mountpt.h"
#include "mountinfo.h"
#include "util.h"

/*
 * The kernel ignores source and type of MS_BIND (type only) and
 * MS_PRIVATE; we pass "none" rather than NULL, which valgrind reports.
 */

/* Bounds the loops that peel layers off one path. */
#define MAX_LAYERS 64
/* How long sessfs -u tries a plain unmount before the lazy one. */
#define UNMOUNT_PATIENCE_MS 2000

/* The mounts stacked on one path, bottom first. */
struct mi_stack {
	struct be_mi_entry **v;
	size_t n;
};

/* Records the first failure of a function that goes on after errors. */
static int __attribute__((format(printf, 4, 5)))
note(char *err, size_t errlen, int *first, const char *fmt, ...)
{
	va_list ap;
	int ret = -errno;

	if (*first == 0) {
		*first = ret ? ret : -EIO;
		if (err && errlen) {
			va_start(ap, fmt);
			vsnprintf(err, errlen, fmt, ap);
			va_end(ap);
		}
	}
	return ret;
}

static struct be_mi_entry *mi_by_id(struct be_mi_table *t, int id)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->e[i].id == id)
			return &t->e[i];
	return NULL;
}

/* The mount id of the mount 'fd' was opened on, or -errno. */
static int fd_mnt_id(int fd)
{
	char path[64], *buf, *p;
	int id = -ENOENT, ret;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	ret = be_read_file(path, &buf);
	if (ret < 0)
		return ret;
	p = strstr(buf, "mnt_id:");
	if (p && sscanf(p + 7, "%d", &id) != 1)
		id = -EPROTO;
	free(buf);
	return id;
}

/*
 * Fills 's' with the mounts stacked on 'path', bottom first.  The top one
 * is the mount that 'path' resolves to, if 'path' is its root: the fdinfo
 * of an O_PATH open tells, without asking the filesystem (a dead FUSE
 * mount answers too).  mountinfo alone cannot tell it from a mount at the
 * same path hidden under a later mount on a parent directory.  Each one
 * below is the parent of the one above.  0 (s->n may be 0) or -errno.
 */
static int mi_stack(struct be_mi_table *t, const char *path, struct mi_stack *s)
{
	struct be_mi_entry *top, *cur, *tmp;
	size_t i, n = 0;
	int fd, id;

	s->v = NULL;
	s->n = 0;
	fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	id = fd_mnt_id(fd);
	close(fd);
	if (id < 0)
		return id;
	top = mi_by_id(t, id);
	if (!top || strcmp(top->mnt, path) != 0)
		return 0;
	s->v = calloc(t->n, sizeof(*s->v));
	if (!s->v)
		return -ENOMEM;
	for (cur = top; cur && n < t->n; cur = mi_by_id(t, cur->parent)) {
		if (strcmp(cur->mnt, path) != 0)
			break;
		s->v[n++] = cur;
	}
	for (i = 0; i < n / 2; i++) {
		tmp = s->v[i];
		s->v[i] = s->v[n - 1 - i];
		s->v[n - 1 - i] = tmp;
	}
	s->n = n;
	return 0;
}

static struct be_mi_entry *mi_stack_top(struct mi_stack *s)
{
	return s->n ? s->v[s->n - 1] : NULL;
}

/* The device of the mount 'id' into '*major', '*minor'; false if gone. */
static bool mnt_dev(int id, unsigned int *major, unsigned int *minor)
{
	struct be_mi_table t;
	struct be_mi_entry *e;
	bool found = false;

	if (be_mi_read(&t) < 0)
		return false;
	e = mi_by_id(&t, id);
	if (e) {
		*major = e->major;
		*minor = e->minor;
		found = true;
	}
	be_mi_free(&t);
	return found;
}

static bool is_sessfs(const struct be_mi_entry *e)
{
	return e && strcmp(e->fstype, FS_MOUNTPT_FSTYPE) == 0;
}

static unsigned int count_sessfs(struct mi_stack *s)
{
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		n += is_sessfs(s->v[i]);
	return n;
}

/* The mount id of the top mount on 'path' (-1: none), or -errno. */
static int top_mnt_id(const char *path, bool *sessfs)
{
	struct be_mi_table t;
	struct mi_stack s;
	struct be_mi_entry *top;
	int ret;

	ret = be_mi_read(&t);
	if (ret < 0)
		return ret;
	ret = mi_stack(&t, path, &s);
	if (ret == 0) {
		top = mi_stack_top(&s);
		ret = top ? top->id : -1;
		if (sessfs)
			*sessfs = is_sessfs(top);
	}
	free(s.v);
	be_mi_free(&t);
	return ret;
}

/*
 * Makes 'path' absolute without asking the filesystem mounted on it: a
 * dead FUSE mount answers ENOTCONN, so on that error only the parent is
 * resolved.  New string in '*out'; 0 or -errno.
 */
static int resolve(const char *path, char **out)
{
	char *copy, *slash, *base, *pdir;
	const char *dir;
	int ret = 0;

	*out = realpath(path, NULL);
	if (*out)
		return 0;
	if (errno != ENOTCONN)
		return -errno;
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	slash = strrchr(copy, '/');
	dir = slash ? (slash == copy ? "/" : copy) : ".";
	base = slash ? slash + 1 : copy;
	if (slash && slash != copy)
		*slash = '\0';
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		ret = -ENOTCONN;
		goto out_free;
	}
	pdir = realpath(dir, NULL);
	if (!pdir) {
		ret = -errno;
		goto out_free;
	}
	if (asprintf(out, "%s%s%s", pdir, strcmp(pdir, "/") ? "/" : "", base) <
	    0) {
		*out = NULL;
		ret = -ENOMEM;
	}
	free(pdir);
out_free:
	free(copy);
	return ret;
}

/* Fills the paths of 'm' from the absolute mountpoint 'abs' (stolen). */
static int set_paths(struct fs_mountpt *m, char *abs)
{
	m->mountpoint = abs;
	if (asprintf(&m->run_dir, "%s/%016llx", FS_MOUNTPT_RUN_DIR,
		     (unsigned long long)be_fnv1a64(abs)) < 0) {
		m->run_dir = NULL;
		return -ENOMEM;
	}
	if (asprintf(&m->bind, "%s/lower", m->run_dir) < 0) {
		m->bind = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* mkdir 'path' 0700 unless it exists; it must be root's directory. */
static int make_private_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return be_fail(err, errlen, -errno, "cannot create '%s': %s",
			       path, strerror(errno));
	if (lstat(path, &st) < 0)
		return be_fail(err, errlen, -errno, "cannot use '%s': %s", path,
			       strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0)
		return be_fail(err, errlen, -EPERM,
			       "cannot use '%s': not a directory owned by root",
			       path);
	if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0)
		return be_fail(err, errlen, -errno, "cannot chmod '%s': %s",
			       path, strerror(errno));
	return 0;
}

/*
 * Makes /run/sessfs a private mount (a bind onto itself the first time),
 * so that binds under it never propagate to other mount namespaces.
 */
static int make_run_root(char *err, size_t errlen)
{
	const char *dir = FS_MOUNTPT_RUN_DIR;
	int ret, id;

	ret = make_private_dir(dir, err, errlen);
	if (ret < 0)
		return ret;
	id = top_mnt_id(dir, NULL);
	if (id < -1)
		return be_fail(err, errlen, id, "cannot read mountinfo: %s",
			       strerror(-id));
	if (id == -1 && mount(dir, dir, "none", MS_BIND, NULL) < 0)
		return be_fail(err, errlen, -errno, "cannot bind '%s': %s", dir,
			       strerror(errno));
	if (mount("none", dir, "none", MS_PRIVATE, NULL) < 0)
		return be_fail(err, errlen, -errno,
			       "cannot make '%s' private: %s", dir,
			       strerror(errno));
	return 0;
}

/*
 * Creates /run/sessfs/<id> and takes an exclusive flock on it, held until
 * fs_mountpt_release(); -EBUSY while a live daemon holds it.  A daemon
 * removes the dir only once no layer of it is left, so whoever serves a
 * layer holds the lock of the current dir.
 */
static int take_lock(struct fs_mountpt *m, char *err, size_t errlen)
{
	int ret;

	ret = make_private_dir(m->run_dir, err, errlen);
	if (ret < 0)
		return ret;
	m->lock_fd = open(m->run_dir,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m->lock_fd < 0)
		return be_fail(err, errlen, -errno, "cannot open '%s': %s",
			       m->run_dir, strerror(errno));
	if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(m->lock_fd);
		m->lock_fd = -1;
		return be_fail(
			err, errlen, ret,
			"another sessfs still runs on '%s' (it holds '%s')",
			m->mountpoint, m->run_dir);
	}
	return 0;
}

/* Detaches every mount on 'path'; 0 or -errno. */
static int detach_all(const char *path)
{
	int i;

	for (i = 0; i < MAX_LAYERS; i++) {
		if (umount2(path, MNT_DETACH) < 0)
			return errno == EINVAL || errno == ENOENT ? 0 : -errno;
	}
	return -EBUSY;
}

/* Undoes make_bind(); rmdir fails harmlessly where a mount is left. */
static void unmake_bind(struct fs_mountpt *m)
{
	if (m->made_bind)
		detach_all(m->bind);
	rmdir(m->bind);
	rmdir(m->run_dir);
	m->made_bind = false;
}

/*
 * Normal path: binds the mountpoint's directory to m->bind, private before
 * anything else is mounted on the mountpoint.  Undoes itself on failure.
 */
static int make_bind(struct fs_mountpt *m, char *err, size_t errlen)
{
	int ret;

	ret = make_private_dir(m->bind, err, errlen);
	if (ret < 0)
		goto out_undo;
	/* A bind left by a daemon whose layers are all gone is stale. */
	ret = detach_all(m->bind);
	if (ret < 0) {
		ret = be_fail(err, errlen, ret,
			      "cannot remove stale bind '%s': %s", m->bind,
			      strerror(-ret));
		goto out_undo;
	}
	if (mount(m->mountpoint, m->bind, "none", MS_BIND, NULL) < 0) {
		ret = be_fail(err, errlen, -errno,
			      "cannot bind '%s' to '%s': %s", m->mountpoint,
			      m->bind, strerror(errno));
		goto out_undo;
	}
	m->made_bind = true;
	if (mount("none", m->bind, "none", MS_PRIVATE, NULL) < 0) {
		ret = be_fail(err, errlen, -errno,
			      "cannot make '%s' private: %s", m->bind,
			      strerror(errno));
		goto out_undo;
	}
	return 0;

out_undo:
	unmake_bind(m);
	return ret;
}

/*
 * Restart path: checks that the bind on m->bind shows the directory the
 * bottom sessfs layer was mounted on (same device, same root inside it), so
 * a stale bind from elsewhere is never taken for the lower dir.
 */
static int check_bind(struct fs_mountpt *m, struct be_mi_table *t,
		      struct mi_stack *mp, char *err, size_t errlen)
{
	struct be_mi_entry *bottom = NULL, *under, *b;
	struct mi_stack bs;
	const char *rel;
	char *want;
	size_t i;
	int ret;

	for (i = 0; i < mp->n && !bottom; i++)
		if (is_sessfs(mp->v[i]))
			bottom = mp->v[i];
	ret = mi_stack(t, m->bind, &bs);
	if (ret < 0)
		return be_fail(err, errlen, ret, "cannot read mountinfo: %s",
			       strerror(-ret));
	b = mi_stack_top(&bs);
	free(bs.v);
	if (!b)
		return be_fail(
			err, errlen, -ENOENT,
			"cannot reach the lower dir of '%s': a dead sessfs layer is mounted there but no bind at '%s' (unmount with 'sessfs -u', which exposes the lower files)",
			m->mountpoint, m->bind);
	under = bottom ? mi_by_id(t, bottom->parent) : NULL;
	if (!under)
		return 0; /* parent outside our namespace's view */
	rel = m->mountpoint;
	if (strcmp(under->mnt, "/") != 0)
		rel += strlen(under->mnt);
	if (asprintf(&want, "%s%s",
		     strcmp(under->root, "/") || !*rel ? under->root : "",
		     rel) < 0)
		return be_fail(err, errlen, -ENOMEM, "out of memory");
	ret = 0;
	if (b->major != under->major || b->minor != under->minor ||
	    strcmp(b->root, want) != 0)
		ret = be_fail(
			err, errlen, -ESTALE,
			"cannot reach the lower dir of '%s': the bind at '%s' shows %u:%u '%s', not %u:%u '%s'",
			m->mountpoint, m->bind, b->major, b->minor, b->root,
			under->major, under->minor, want);
	free(want);
	return ret;
}

static int open_lower(struct fs_mountpt *m, char *err, size_t errlen)
{
	int id;

	m->lower_fd =
		open(m->bind, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m->lower_fd < 0)
		return be_fail(err, errlen, -errno,
			       "cannot open the lower dir '%s': %s", m->bind,
			       strerror(errno));
	id = fd_mnt_id(m->lower_fd);
	if (id < 0)
		return be_fail(err, errlen, id,
			       "cannot read fdinfo of '%s': %s", m->bind,
			       strerror(-id));
	m->bind_mnt_id = id;
	return 0;
}

void fs_mountpt_init(struct fs_mountpt *m)
{
	memset(m, 0, sizeof(*m));
	m->lower_fd = -1;
	m->fuse_fd = -1;
	m->lock_fd = -1;
	m->bind_mnt_id = -1;
	m->fuse_mnt_id = -1;
}

/* Decides between the normal and the restart path from the stack. */
static int classify(struct fs_mountpt *m, struct mi_stack *s, char *err,
		    size_t errlen)
{
	struct be_mi_entry *top = mi_stack_top(s);
	struct stat st;

	if (count_sessfs(s) == 0) {
		if (stat(m->mountpoint, &st) < 0)
			return be_fail(err, errlen, -errno,
				       "cannot use mountpoint '%s': %s",
				       m->mountpoint, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return be_fail(
				err, errlen, -ENOTDIR,
				"cannot use mountpoint '%s': not a directory",
				m->mountpoint);
		return 0;
	}
	if (!is_sessfs(top))
		return be_fail(
			err, errlen, -EBUSY,
			"cannot mount on '%s': its sessfs layers are covered by a '%s' mount",
			m->mountpoint, top->fstype);
	if (stat(m->mountpoint, &st) == 0)
		return be_fail(err, errlen, -EBUSY,
			       "'%s' is already mounted by a running sessfs",
			       m->mountpoint);
	if (errno != ENOTCONN)
		return be_fail(err, errlen, -errno,
			       "cannot use mountpoint '%s': %s", m->mountpoint,
			       strerror(errno));
	m->restart = true;
	return 0;
}

int fs_mountpt_prepare(struct fs_mountpt *m, const char *mountpoint, char *err,
		       size_t errlen)
{
	struct be_mi_table t = { 0 };
	struct mi_stack s = { 0 };
	char *abs;
	int ret;

	if (geteuid() != 0)
		return be_fail(
			err, errlen, -EPERM,
			"sessfs must run as root (it bind-mounts the lower dir of '%s')",
			mountpoint);
	ret = resolve(mountpoint, &abs);
	if (ret < 0)
		return be_fail(err, errlen, ret,
			       "cannot use mountpoint '%s': %s", mountpoint,
			       strerror(-ret));
	if (set_paths(m, abs) < 0)
		return be_fail(err, errlen, -ENOMEM, "out of memory");
	ret = make_run_root(err, errlen);
	if (ret == 0)
		ret = take_lock(m, err, errlen);
	if (ret < 0)
		return ret;

	ret = be_mi_read(&t);
	if (ret == 0)
		ret = mi_stack(&t, m->mountpoint, &s);
	if (ret < 0) {
		ret = be_fail(err, errlen, ret, "cannot read mountinfo: %s",
			      strerror(-ret));
		goto out;
	}
	ret = classify(m, &s, err, errlen);
	if (ret < 0)
		goto out;
	if (m->restart)
		ret = check_bind(m, &t, &s, err, errlen);
	else
		ret = make_bind(m, err, errlen);
	if (ret == 0)
		ret = open_lower(m, err, errlen);
out:
	if (ret < 0 && !m->restart)
		unmake_bind(m);
	free(s.v);
	be_mi_free(&t);
	return ret;
}

/* The MS_* flags named in a per-mount option string of mountinfo. */
static unsigned long mount_flags(const char *opts)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} map[] = {
		{ "ro", MS_RDONLY },	     { "nosuid", MS_NOSUID },
		{ "nodev", MS_NODEV },	     { "noexec", MS_NOEXEC },
		{ "noatime", MS_NOATIME },   { "nodiratime", MS_NODIRATIME },
		{ "relatime", MS_RELATIME }, { "strictatime", MS_STRICTATIME },
	};
	unsigned long flags = 0;
	const char *p = opts, *end;
	size_t i, len;

	while (p && *p) {
		end = strchr(p, ',');
		len = end ? (size_t)(end - p) : strlen(p);
		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strlen(map[i].name) == len &&
			    strncmp(map[i].name, p, len) == 0)
				flags |= map[i].flag;
		p = end ? end + 1 : NULL;
	}
	return flags;
}

/* Restart path: our own mount(2) of a new layer over the dead one. */
static int mount_over(struct fs_mountpt *m, const char *fsname,
		      bool allow_other, char *err, size_t errlen)
{
	unsigned long flags = MS_NOSUID | MS_NODEV;
	struct be_mi_table t;
	struct mi_stack s;
	char opts[256];
	bool sessfs = false;
	int ret, id;

	ret = be_mi_read(&t);
	if (ret == 0)
		ret = mi_stack(&t, m->mountpoint, &s);
	if (ret < 0)
		return be_fail(err, errlen, ret, "cannot read mountinfo: %s",
			       strerror(-ret));
	if (is_sessfs(mi_stack_top(&s)))
		flags = mount_flags(mi_stack_top(&s)->opts);
	free(s.v);
	be_mi_free(&t);

	m->fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (m->fuse_fd < 0)
		return be_fail(err, errlen, -errno, "cannot open /dev/fuse: %s",
			       strerror(errno));
	snprintf(
		opts, sizeof(opts),
		"fd=%d,rootmode=%o,user_id=%u,group_id=%u,default_permissions%s",
		m->fuse_fd, S_IFDIR, (unsigned int)getuid(),
		(unsigned int)getgid(), allow_other ? ",allow_other" : "");
	if (mount(fsname, m->mountpoint, FS_MOUNTPT_FSTYPE, flags, opts) < 0)
		return be_fail(
			err, errlen, -errno,
			"cannot mount over the dead sessfs layer on '%s': %s",
			m->mountpoint, strerror(errno));
	/* Ours is the top now; id and device tell it apart at cleanup. */
	id = top_mnt_id(m->mountpoint, &sessfs);
	if (id >= 0 && sessfs && mnt_dev(id, &m->fuse_major, &m->fuse_minor))
		m->fuse_mnt_id = id;
	if (asprintf(&m->fuse_mnt_arg, "/dev/fd/%d", m->fuse_fd) < 0) {
		m->fuse_mnt_arg = NULL;
		ret = be_fail(err, errlen, -ENOMEM, "out of memory");
		fs_mountpt_rollback(m, NULL, 0);
		return ret;
	}
	return 0;
}

int fs_mountpt_mount_arg(struct fs_mountpt *m, const char *fsname,
			 bool allow_other, char *err, size_t errlen)
{
	int ret;

	if (!m->restart) {
		m->fuse_mnt_arg = strdup(m->mountpoint);
		if (!m->fuse_mnt_arg)
			return be_fail(err, errlen, -ENOMEM, "out of memory");
		return 0;
	}
	ret = mount_over(m, fsname, allow_other, err, errlen);
	if (ret < 0 && m->fuse_fd >= 0) {
		close(m->fuse_fd);
		m->fuse_fd = -1;
	}
	return ret;
}

void fs_mountpt_mounted(struct fs_mountpt *m)
{
	unsigned int major = m->fuse_major, minor = m->fuse_minor;
	bool sessfs = false, found = m->fuse_mnt_id >= 0;
	int id;

	m->fuse_fd = -1;
	if (!found) {
		id = top_mnt_id(m->mountpoint, &sessfs);
		found = id >= 0 && sessfs && mnt_dev(id, &major, &minor);
	}
	m->dev = found ? makedev(major, minor) : 0;
}

/* Detaches our own layer (restart path) while it is on top. */
static int detach_own(struct fs_mountpt *m, char *err, size_t errlen)
{
	int id;

	if (m->fuse_mnt_id < 0)
		return 0;
	id = top_mnt_id(m->mountpoint, NULL);
	if (id < -1)
		return be_fail(err, errlen, id, "cannot read mountinfo: %s",
			       strerror(-id));
	if (id != m->fuse_mnt_id) {
		struct be_mi_table t;
		bool still = false;

		if (be_mi_read(&t) == 0) {
			struct be_mi_entry *e = mi_by_id(&t, m->fuse_mnt_id);

			/*
			 * The id alone may be a new mount's by now, and so
			 * may the device: the kernel hands out both lowest
			 * free first, so another FUSE mount made since ours
			 * went (another daemon on this host) can get both.
			 * Ours is still there only if on our mountpoint.
			 */
			still = e && e->major == m->fuse_major &&
				e->minor == m->fuse_minor &&
				strcmp(e->mnt, m->mountpoint) == 0;
			be_mi_free(&t);
		}
		if (!still) {
			m->fuse_mnt_id = -1;
			return 0;
		}
		return be_fail(
			err, errlen, -EBUSY,
			"cannot unmount our layer on '%s': another mount covers it",
			m->mountpoint);
	}
	if (umount2(m->mountpoint, MNT_DETACH) < 0)
		return be_fail(err, errlen, -errno, "cannot unmount '%s': %s",
			       m->mountpoint, strerror(errno));
	m->fuse_mnt_id = -1;
	return 0;
}

/* Removes 'bind' (if its id is 'only_id', or any if -1) and 'run_dir'. */
static int remove_bind(const char *bind, const char *run_dir, int only_id,
		       char *err, size_t errlen)
{
	int id = top_mnt_id(bind, NULL), ret;

	if (id < -1)
		return be_fail(err, errlen, id, "cannot read mountinfo: %s",
			       strerror(-id));
	if (only_id >= 0 && id >= 0 && id != only_id)
		return 0; /* a newer daemon's bind */
	ret = detach_all(bind);
	if (ret < 0)
		return be_fail(err, errlen, ret, "cannot unmount '%s': %s",
			       bind, strerror(-ret));
	if (rmdir(bind) < 0 && errno != ENOENT)
		return be_fail(err, errlen, -errno, "cannot remove '%s': %s",
			       bind, strerror(errno));
	if (rmdir(run_dir) < 0 && errno != ENOENT)
		return be_fail(err, errlen, -errno, "cannot remove '%s': %s",
			       run_dir, strerror(errno));
	return 0;
}

int fs_mountpt_rollback(struct fs_mountpt *m, char *err, size_t errlen)
{
	struct be_mi_table t;
	struct mi_stack s;
	unsigned int left;
	int ret;

	if (!m->mountpoint)
		return 0;
	if (m->restart)
		return detach_own(m, err, errlen);
	if (!m->made_bind)
		return 0;
	ret = be_mi_read(&t);
	if (ret == 0)
		ret = mi_stack(&t, m->mountpoint, &s);
	if (ret < 0)
		return be_fail(err, errlen, ret, "cannot read mountinfo: %s",
			       strerror(-ret));
	left = count_sessfs(&s);
	free(s.v);
	be_mi_free(&t);
	if (left)
		return be_fail(
			err, errlen, -EBUSY,
			"not removing '%s': a sessfs layer is still on '%s'",
			m->bind, m->mountpoint);
	return remove_bind(m->bind, m->run_dir, m->bind_mnt_id, err, errlen);
}

/*
 * Unmounts the top mount of 'mp'.  A lazy unmount can land between the
 * two path lookups of an application's rename(), which then fails with
 * EXDEV (old name through the mount, new one in the plain directory): so
 * when 'patient', a plain unmount is tried first, for up to
 * UNMOUNT_PATIENCE_MS, which the kernel refuses (EBUSY) while any path
 * or open file uses the mount, including a rename half resolved.  Then
 * the lazy one.  0 or -1 with errno.
 */
static int detach_layer(const char *mp, bool patient)
{
	int i;

	for (i = 0; patient && i < UNMOUNT_PATIENCE_MS; i++) {
		struct timespec ms = { 0, 1000000L };

		if (umount2(mp, 0) == 0)
			return 0;
		if (errno != EBUSY)
			break;
		nanosleep(&ms, NULL);
	}
	return umount2(mp, MNT_DETACH);
}

/*
 * Detaches the top mount of 'mp' while it is a sessfs layer, each one only
 * if it answers ENOTCONN when 'dead_only'.  Returns how many sessfs layers
 * are left, or -errno after recording the failure.
 */
static int peel(const char *mp, bool dead_only, unsigned int *removed,
		char *err, size_t errlen, int *first)
{
	struct be_mi_table t;
	struct mi_stack s;
	struct be_mi_entry *top;
	struct stat st;
	unsigned int left;
	int i, ret;

	for (i = 0; i <= MAX_LAYERS; i++) {
		ret = be_mi_read(&t);
		if (ret == 0)
			ret = mi_stack(&t, mp, &s);
		if (ret < 0) {
			errno = -ret;
			return note(err, errlen, first,
				    "cannot read mountinfo: %s",
				    strerror(-ret));
		}
		top = mi_stack_top(&s);
		left = count_sessfs(&s);
		ret = is_sessfs(top);
		if (!ret && left) {
			errno = EBUSY;
			note(err, errlen, first,
			     "cannot unmount the sessfs layers on '%s': a '%s' mount covers them",
			     mp, top->fstype);
		}
		free(s.v);
		be_mi_free(&t);
		if (!ret)
			return (int)left;
		if (dead_only && (stat(mp, &st) == 0 || errno != ENOTCONN))
			return (int)left;
		if (detach_layer(mp, !dead_only) == 0) {
			if (removed)
				(*removed)++;
		} else if (errno != EINVAL) {
			return note(err, errlen, first,
				    "cannot unmount '%s': %s", mp,
				    strerror(errno));
		}
		/* EINVAL: another process (the daemon) removed it first. */
	}
	errno = EBUSY;
	return note(err, errlen, first, "too many layers on '%s'", mp);
}

int fs_mountpt_cleanup_after_unmount(struct fs_mountpt *m, char *err,
				     size_t errlen)
{
	int first = 0, ret;

	if (!m->mountpoint || m->bind_mnt_id < 0)
		return 0;
	ret = detach_own(m, err, errlen);
	if (ret < 0)
		return ret;
	ret = peel(m->mountpoint, true, NULL, err, errlen, &first);
	if (ret == 0)
		ret = remove_bind(m->bind, m->run_dir, m->bind_mnt_id, err,
				  errlen);
	if (ret == 0)
		m->made_bind = false;
	return first ? first : (ret < 0 ? ret : 0);
}

int fs_mountpt_unmount_all(const char *mountpoint, unsigned int *unmounted,
			   char *err, size_t errlen)
{
	struct fs_mountpt m;
	int first = 0, ret;
	char *abs;

	if (unmounted)
		*unmounted = 0;
	if (geteuid() != 0)
		return be_fail(
			err, errlen, -EPERM,
			"cannot unmount '%s': sessfs -u must run as root",
			mountpoint);
	ret = resolve(mountpoint, &abs);
	if (ret < 0)
		return be_fail(err, errlen, ret,
			       "cannot use mountpoint '%s': %s", mountpoint,
			       strerror(-ret));
	fs_mountpt_init(&m);
	ret = set_paths(&m, abs);
	if (ret < 0) {
		ret = be_fail(err, errlen, ret, "out of memory");
		goto out;
	}
	ret = peel(m.mountpoint, false, unmounted, err, errlen, &first);
	if (ret == 0)
		ret = remove_bind(m.bind, m.run_dir, -1, err, errlen);
	ret = first ? first : (ret < 0 ? ret : 0);
out:
	fs_mountpt_release(&m);
	return ret;
}

/* True while a daemon holds the lock of the mountpoint of 'm'. */
static bool lock_held(const struct fs_mountpt *m)
{
	bool held = false;
	int fd;

	fd = open(m->run_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		held = errno == EWOULDBLOCK;
	close(fd);
	return held;
}

int fs_mountpt_layers(const char *mountpoint, struct fs_mountpt_layers *out)
{
	struct be_mi_table t;
	struct mi_stack s, bs;
	struct fs_mountpt m;
	struct stat st;
	char *abs;
	int ret;

	memset(out, 0, sizeof(*out));
	fs_mountpt_init(&m);
	ret = resolve(mountpoint, &abs);
	if (ret < 0)
		return ret;
	ret = set_paths(&m, abs);
	if (ret == 0)
		ret = be_mi_read(&t);
	if (ret < 0)
		goto out;
	ret = mi_stack(&t, m.mountpoint, &s);
	if (ret == 0) {
		out->total = count_sessfs(&s);
		out->top_sessfs = is_sessfs(mi_stack_top(&s));
		out->covered = out->total - out->top_sessfs;
		free(s.v);
		ret = mi_stack(&t, m.bind, &bs);
		out->bind = bs.n > 0;
		free(bs.v);
	}
	be_mi_free(&t);
	if (ret == 0 && out->top_sessfs && !lock_held(&m))
		out->top_dead = stat(m.mountpoint, &st) < 0 &&
				errno == ENOTCONN;
out:
	fs_mountpt_release(&m);
	return ret;
}

int fs_mountpt_print_status(const char *mountpoint, FILE *out, char *err,
			    size_t errlen)
{
	struct fs_mountpt_layers l;
	struct fs_mountpt m;
	const char *top;
	char *abs;
	int ret;

	ret = fs_mountpt_layers(mountpoint, &l);
	if (ret == 0)
		ret = resolve(mountpoint, &abs);
	if (ret < 0)
		return be_fail(err, errlen, ret,
			       "cannot use mountpoint '%s': %s", mountpoint,
			       strerror(-ret));
	fs_mountpt_init(&m);
	ret = set_paths(&m, abs);
	if (ret < 0) {
		fs_mountpt_release(&m);
		return be_fail(err, errlen, ret, "out of memory");
	}
	if (l.top_sessfs)
		top = l.top_dead ? "dead" : "alive";
	else
		top = l.total ? "other" : "none";
	fprintf(out,
		"mountpoint: %s\nlayers: %u\ntop: %s\ncovered: %u\nbind: %s\n",
		m.mountpoint, l.total, top, l.covered,
		l.bind ? m.bind : "none");
	fs_mountpt_release(&m);
	return 0;
}

void fs_mountpt_release(struct fs_mountpt *m)
{
	if (m->lower_fd >= 0)
		close(m->lower_fd);
	if (m->fuse_fd >= 0)
		close(m->fuse_fd);
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	free(m->mountpoint);
	free(m->run_dir);
	free(m->bind);
	free(m->fuse_mnt_arg);
	fs_mountpt_init(m);
}
