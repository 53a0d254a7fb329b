/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/lowerstore.c on a real directory under /tmp: exact
 * bytes (NUL bytes, empty files), owner, mode and mtime round trips,
 * atomic replacement seen by a concurrent reader, symlinks and directories
 * refused and never followed, the size limit, a full and a read-only
 * filesystem (a small tmpfs mounted for the test) leaving the old file and
 * no temp behind, cleanup of our temps and listing without them.  Needs
 * root (chown, mount): exits 77 otherwise, and also when the tmpfs cannot
 * be mounted (the other checks have run and passed by then).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lowerstore.h"
#include "testutil.h"

static char topdir[64];
static int topfd = -1;
static int dfd = -1; /* the directory most tests work in: topfd */
static bool skipped;

static struct be_meta meta_of(uint32_t uid, uint32_t gid, uint32_t mode,
			      int64_t mtime_ns)
{
	struct be_meta m = { 0 };

	m.uid = uid;
	m.gid = gid;
	m.mode = mode;
	m.mtime_ns = mtime_ns;
	return m;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Counts the entries of 'fd' whose name starts with our temp prefix. */
static int count_temps(int fd)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = fdopendir(openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += be_lower_is_temp(de->d_name);
	closedir(d);
	return n;
}

static bool has_bytes_in(int fd, const char *name, const void *data, size_t len)
{
	struct be_file f;
	bool ok;

	if (be_lower_get(fd, name, 1 << 24, true, &f))
		return false;
	ok = f.state == BE_PRESENT && f.size == len && f.data &&
	     memcmp(f.data, data, len) == 0;
	be_file_release(&f);
	return ok;
}

static bool has_bytes(const char *name, const void *data, size_t len)
{
	return has_bytes_in(dfd, name, data, len);
}

static void test_is_temp(void)
{
	CHECK(be_lower_is_temp(".sessfs-tmp.0123"));
	CHECK(be_lower_is_temp(BE_LOWER_TEMP_PREFIX));
	CHECK(!be_lower_is_temp(".sessfs-tmp"));
	CHECK(!be_lower_is_temp("sess_.sessfs-tmp.1"));
	CHECK(!be_lower_is_temp(""));
}

static void test_bytes(void)
{
	static const char bin[] = "a\0b\0\0c\n\xff";
	struct be_meta m = meta_of(0, 0, 0600, 1000000000LL);
	struct be_file f;
	char *big;

	CHECK(be_lower_put(dfd, "sess_bin", bin, sizeof(bin), &m) == 0);
	CHECK(has_bytes("sess_bin", bin, sizeof(bin)));

	CHECK(be_lower_put(dfd, "sess_empty", NULL, 0, &m) == 0);
	CHECK(be_lower_get(dfd, "sess_empty", 100, true, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.size == 0 && f.has_meta);
	CHECK(f.pttl_ms == -1);
	be_file_release(&f);

	/* Without data: size and meta only. */
	CHECK(be_lower_get(dfd, "sess_bin", 100, false, &f) == 0);
	CHECK(f.state == BE_PRESENT && f.size == sizeof(bin) && !f.data);
	be_file_release(&f);

	/* Replacing with shorter and longer contents. */
	big = malloc(300000);
	memset(big, 'x', 300000);
	big[12345] = '\0';
	CHECK(be_lower_put(dfd, "sess_bin", big, 300000, &m) == 0);
	CHECK(has_bytes("sess_bin", big, 300000));
	CHECK(be_lower_put(dfd, "sess_bin", "y", 1, &m) == 0);
	CHECK(has_bytes("sess_bin", "y", 1));
	free(big);

	/* A missing name is ABSENT, not an error. */
	CHECK(be_lower_get(dfd, "sess_none", 100, true, &f) == 0);
	CHECK(f.state == BE_ABSENT && !f.data);

	/* Names that would leave the directory, or are our temps. */
	CHECK(be_lower_get(dfd, "../etc", 100, true, &f) == -EINVAL);
	CHECK(be_lower_get(dfd, "", 100, true, &f) == -EINVAL);
	CHECK(be_lower_get(dfd, "..", 100, true, &f) == -EINVAL);
	CHECK(be_lower_put(dfd, "a/b", "x", 1, &m) == -EINVAL);
	CHECK(be_lower_put(dfd, ".sessfs-tmp.x", "x", 1, &m) == -EINVAL);
	CHECK(be_lower_delete(dfd, "../x") == -EINVAL);
	CHECK(count_temps(dfd) == 0);
}

static void test_meta(void)
{
	const int64_t mt = 1700000000123456789LL;
	struct be_meta m = meta_of(33, 33, 0600, mt);
	struct be_file f;
	struct stat st;

	CHECK(be_lower_put(dfd, "sess_meta", "data", 4, &m) == 0);
	CHECK(be_lower_get(dfd, "sess_meta", 100, false, &f) == 0);
	CHECK(f.meta.uid == 33 && f.meta.gid == 33);
	CHECK(f.meta.mode == 0600);
	CHECK(f.meta.mtime_ns == mt);
	CHECK(f.meta.ctime_ns > 0);
	be_file_release(&f);
	CHECK(fstatat(dfd, "sess_meta", &st, 0) == 0);
	CHECK(st.st_atim.tv_sec == st.st_mtim.tv_sec &&
	      st.st_atim.tv_nsec == st.st_mtim.tv_nsec);

	m = meta_of(0, 33, 0644, mt + 1);
	CHECK(be_lower_put(dfd, "sess_meta", "data", 4, &m) == 0);
	CHECK(be_lower_get(dfd, "sess_meta", 100, false, &f) == 0);
	CHECK(f.meta.uid == 0 && f.meta.gid == 33 && f.meta.mode == 0644);
	CHECK(f.meta.mtime_ns == mt + 1);
	be_file_release(&f);

	/* setuid survives: chmod comes after chown. */
	m = meta_of(33, 33, 04750, mt);
	CHECK(be_lower_put(dfd, "sess_meta", "data", 4, &m) == 0);
	CHECK(fstatat(dfd, "sess_meta", &st, 0) == 0);
	CHECK((st.st_mode & 07777) == 04750);

	/* setmeta on the existing file. */
	m = meta_of(1, 2, 0640, -1500000000LL); /* before the epoch */
	CHECK(be_lower_setmeta(dfd, "sess_meta", &m) == 0);
	CHECK(be_lower_get(dfd, "sess_meta", 100, true, &f) == 0);
	CHECK(f.meta.uid == 1 && f.meta.gid == 2 && f.meta.mode == 0640);
	CHECK(f.meta.mtime_ns == -1500000000LL);
	CHECK(f.size == 4 && memcmp(f.data, "data", 4) == 0);
	be_file_release(&f);
	m = meta_of(33, 33, 06755, mt);
	CHECK(be_lower_setmeta(dfd, "sess_meta", &m) == 0);
	CHECK(fstatat(dfd, "sess_meta", &st, 0) == 0);
	CHECK((st.st_mode & 07777) == 06755);
	CHECK(be_lower_setmeta(dfd, "sess_none", &m) == -ENOENT);
}

struct race {
	const char *a, *b;
	size_t alen, blen;
	atomic_bool stop;
	int bad, reads;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	struct be_file f;
	int ret;

	while (!atomic_load(&r->stop)) {
		ret = be_lower_get(dfd, "sess_race", 1 << 20, true, &f);
		r->reads++;
		if (ret || f.state != BE_PRESENT ||
		    !((f.size == r->alen && !memcmp(f.data, r->a, r->alen)) ||
		      (f.size == r->blen && !memcmp(f.data, r->b, r->blen)))) {
			if (!r->bad++)
				fprintf(stderr,
					"race: ret %d state %d size %zu\n", ret,
					f.state, f.size);
		}
		be_file_release(&f);
	}
	return NULL;
}

static void test_atomic(void)
{
	struct be_meta m = meta_of(0, 0, 0600, 1);
	struct race r = { 0 };
	char *a, *b;
	pthread_t t;
	int i;

	r.alen = 5000;
	r.blen = 70000;
	a = malloc(r.alen);
	b = malloc(r.blen);
	memset(a, 'a', r.alen);
	memset(b, 'b', r.blen);
	r.a = a;
	r.b = b;
	CHECK(be_lower_put(dfd, "sess_race", a, r.alen, &m) == 0);
	CHECK(pthread_create(&t, NULL, race_reader, &r) == 0);
	for (i = 0; i < 3000; i++) {
		CHECK(be_lower_put(dfd, "sess_race", i % 2 ? a : b,
				   i % 2 ? r.alen : r.blen, &m) == 0);
	}
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	CHECK(r.bad == 0);
	CHECK(r.reads > 0);
	CHECK(count_temps(dfd) == 0);
	free(a);
	free(b);
}

static void test_symlink(void)
{
	struct be_meta m = meta_of(33, 33, 0666, 5);
	struct stat before, after, st;
	struct be_file f;

	CHECK(stat("/etc/passwd", &before) == 0);
	CHECK(symlinkat("/etc/passwd", dfd, "sess_link") == 0);
	CHECK(be_lower_get(dfd, "sess_link", 1 << 20, true, &f) == -EINVAL);
	CHECK(f.state == BE_ABSENT && !f.data);
	CHECK(be_lower_setmeta(dfd, "sess_link", &m) == -EINVAL);
	/*
	 * put replaces the symlink itself with a regular file (that is what
	 * rename does); the target is never written.
	 */
	CHECK(be_lower_put(dfd, "sess_link", "mine", 4, &m) == 0);
	CHECK(fstatat(dfd, "sess_link", &st, AT_SYMLINK_NOFOLLOW) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK(has_bytes("sess_link", "mine", 4));
	CHECK(stat("/etc/passwd", &after) == 0);
	CHECK(after.st_ino == before.st_ino && after.st_size == before.st_size);
	CHECK(after.st_mode == before.st_mode && after.st_uid == before.st_uid);
	CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
	      after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);

	/* A dangling symlink and a symlink to a directory. */
	CHECK(symlinkat("/nonexistent", dfd, "sess_dangling") == 0);
	CHECK(be_lower_get(dfd, "sess_dangling", 100, true, &f) == -EINVAL);
	CHECK(symlinkat("/tmp", dfd, "sess_dirlink") == 0);
	CHECK(be_lower_get(dfd, "sess_dirlink", 100, true, &f) == -EINVAL);
	CHECK(be_lower_setmeta(dfd, "sess_dirlink", &m) == -EINVAL);
	/* delete removes the link, not its target. */
	CHECK(be_lower_delete(dfd, "sess_dirlink") == 0);
	CHECK(access("/tmp", F_OK) == 0);
	CHECK(be_lower_delete(dfd, "sess_dangling") == 0);
	CHECK(be_lower_delete(dfd, "sess_link") == 0);
}

static void test_special(void)
{
	struct be_meta m = meta_of(0, 0, 0600, 5);
	struct be_file f;

	CHECK(mkdirat(dfd, "sess_dir", 0700) == 0);
	CHECK(be_lower_get(dfd, "sess_dir", 100, true, &f) == -EINVAL);
	CHECK(be_lower_setmeta(dfd, "sess_dir", &m) == -EINVAL);
	CHECK(be_lower_delete(dfd, "sess_dir") == -EISDIR);
	CHECK(be_lower_put(dfd, "sess_dir", "x", 1, &m) == -EISDIR);
	CHECK(count_temps(dfd) == 0);
	CHECK(unlinkat(dfd, "sess_dir", AT_REMOVEDIR) == 0);

	CHECK(mkfifoat(dfd, "sess_fifo", 0600) == 0);
	CHECK(be_lower_get(dfd, "sess_fifo", 100, true, &f) == -EINVAL);
	CHECK(be_lower_setmeta(dfd, "sess_fifo", &m) == -EINVAL);
	CHECK(be_lower_delete(dfd, "sess_fifo") == 0);

	CHECK(be_lower_delete(dfd, "sess_none") == -ENOENT);
}

static void test_max_size(void)
{
	struct be_meta m = meta_of(0, 0, 0600, 5);
	char buf[100] = { 0 };
	struct be_file f;

	CHECK(be_lower_put(dfd, "sess_size", buf, 100, &m) == 0);
	CHECK(be_lower_get(dfd, "sess_size", 99, true, &f) == -EFBIG);
	CHECK(f.state == BE_ABSENT && !f.data);
	CHECK(be_lower_get(dfd, "sess_size", 99, false, &f) == -EFBIG);
	CHECK(be_lower_get(dfd, "sess_size", 100, true, &f) == 0);
	CHECK(f.size == 100);
	be_file_release(&f);
	CHECK(be_lower_delete(dfd, "sess_size") == 0);
}

static void test_rename(void)
{
	struct be_meta m = meta_of(0, 0, 0600, 5);

	CHECK(be_lower_put(dfd, "sess_r1", "1", 1, &m) == 0);
	CHECK(be_lower_put(dfd, "sess_r2", "2", 1, &m) == 0);
	CHECK(be_lower_rename(dfd, "sess_r1", "sess_r2", true) == -EEXIST);
	CHECK(has_bytes("sess_r1", "1", 1) && has_bytes("sess_r2", "2", 1));
	CHECK(be_lower_rename(dfd, "sess_r1", "sess_r2", false) == 0);
	CHECK(has_bytes("sess_r2", "1", 1));
	CHECK(be_lower_rename(dfd, "sess_r1", "sess_r3", false) == -ENOENT);
	CHECK(be_lower_rename(dfd, "sess_r2", "sess_r3", true) == 0);
	CHECK(has_bytes("sess_r3", "1", 1));
	CHECK(be_lower_rename(dfd, "sess_r3", "../x", false) == -EINVAL);
	CHECK(be_lower_rename(dfd, "sess_r3", ".sessfs-tmp.1", false) ==
	      -EINVAL);
	CHECK(be_lower_delete(dfd, "sess_r3") == 0);
}

struct seen {
	char names[16][64];
	int n;
	int stop_after;
};

static int list_cb(const char *name, enum be_state state, void *arg)
{
	struct seen *s = arg;

	if (state != BE_PRESENT || s->n >= 16)
		return -100;
	snprintf(s->names[s->n++], 64, "%s", name);
	return s->n == s->stop_after ? 42 : 0;
}

static bool seen_has(const struct seen *s, const char *name)
{
	int i;

	for (i = 0; i < s->n; i++) {
		if (!strcmp(s->names[i], name))
			return true;
	}
	return false;
}

static void test_list_cleanup(void)
{
	struct be_meta m = meta_of(0, 0, 0600, 5);
	struct seen s = { 0 };
	struct stat st;
	int fd, lfd;

	/* A directory of its own, so that only these entries are listed. */
	CHECK(mkdirat(topfd, "list", 0700) == 0);
	lfd = openat(topfd, "list", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(lfd >= 0);

	CHECK(be_lower_put(lfd, "sess_l1", "1", 1, &m) == 0);
	CHECK(be_lower_put(lfd, "sess l2", "2", 1, &m) == 0);
	fd = openat(lfd, ".sessfs-tmp.leftover", O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);
	fd = openat(lfd, ".sessfs-tmp", O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK(mkdirat(lfd, ".sessfs-tmp.dir", 0700) == 0);
	CHECK(mkdirat(lfd, "subdir", 0700) == 0);
	CHECK(symlinkat("sess_l1", lfd, "sess_ln") == 0);

	CHECK(be_lower_list(lfd, list_cb, &s) == 0);
	CHECK(s.n == 3);
	CHECK(seen_has(&s, "sess_l1") && seen_has(&s, "sess l2"));
	CHECK(seen_has(&s, ".sessfs-tmp"));

	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	CHECK(be_lower_list(lfd, list_cb, &s) == 42);
	CHECK(s.n == 1);

	/* Only our leftover temp file goes. */
	CHECK(be_lower_cleanup(lfd) == 1);
	CHECK(fstatat(lfd, ".sessfs-tmp.leftover", &st, 0) < 0);
	CHECK(fstatat(lfd, ".sessfs-tmp", &st, 0) == 0);
	CHECK(fstatat(lfd, ".sessfs-tmp.dir", &st, 0) == 0);
	CHECK(fstatat(lfd, "sess_l1", &st, 0) == 0);
	CHECK(fstatat(lfd, "sess l2", &st, 0) == 0);
	CHECK(fstatat(lfd, "subdir", &st, 0) == 0);
	CHECK(fstatat(lfd, "sess_ln", &st, AT_SYMLINK_NOFOLLOW) == 0);
	CHECK(be_lower_cleanup(lfd) == 0);
	CHECK(be_lower_list(-1, list_cb, &s) == -EBADF);
	close(lfd);
}

/*
 * Mounts a tmpfs of 'opts' on a fresh dir under 'topdir' and opens it.
 * Returns the fd, or -1 (the test is skipped) if mounting is not allowed.
 */
static int mount_tmpfs(const char *opts, char *path, size_t size)
{
	int fd;

	snprintf(path, size, "%s/mnt", topdir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	if (mount("tmpfs", path, "tmpfs", 0, opts) < 0) {
		fprintf(stderr, "cannot mount a tmpfs on '%s': %s: skipping\n",
			path, strerror(errno));
		skipped = true;
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		umount2(path, MNT_DETACH);
	return fd;
}

static void unmount_tmpfs(int fd, const char *path)
{
	close(fd);
	if (umount(path) < 0)
		CHECK(umount2(path, MNT_DETACH) == 0);
}

static void test_enospc(void)
{
	struct be_meta m = meta_of(33, 33, 0640, 77);
	struct be_file f;
	char path[128];
	char *big;
	int fd;

	fd = mount_tmpfs("size=64k,mode=0700", path, sizeof(path));
	if (fd < 0)
		return;
	big = calloc(1, 1 << 20);
	CHECK(be_lower_put(fd, "sess_keep", "old", 3, &m) == 0);
	CHECK(be_lower_put(fd, "sess_keep", big, 1 << 20, &m) == -ENOSPC);
	CHECK(be_lower_put(fd, "sess_new", big, 1 << 20, &m) == -ENOSPC);
	CHECK(be_lower_get(fd, "sess_keep", 100, true, &f) == 0);
	CHECK(f.size == 3 && memcmp(f.data, "old", 3) == 0);
	CHECK(f.meta.uid == 33 && f.meta.mode == 0640 && f.meta.mtime_ns == 77);
	be_file_release(&f);
	CHECK(be_lower_get(fd, "sess_new", 100, true, &f) == 0);
	CHECK(f.state == BE_ABSENT);
	CHECK(count_temps(fd) == 0);
	free(big);
	unmount_tmpfs(fd, path);
}

static void test_erofs(void)
{
	struct be_meta m = meta_of(0, 0, 0600, 77);
	char path[128];
	int fd;

	fd = mount_tmpfs("size=64k,mode=0700", path, sizeof(path));
	if (fd < 0)
		return;
	CHECK(be_lower_put(fd, "sess_ro", "old", 3, &m) == 0);
	if (mount("tmpfs", path, "tmpfs", MS_REMOUNT | MS_RDONLY, "") < 0) {
		fprintf(stderr, "cannot remount read-only: %s\n",
			strerror(errno));
		test_failures++;
		unmount_tmpfs(fd, path);
		return;
	}
	CHECK(be_lower_put(fd, "sess_ro", "new", 3, &m) == -EROFS);
	CHECK(be_lower_put(fd, "sess_ro2", "new", 3, &m) == -EROFS);
	CHECK(be_lower_setmeta(fd, "sess_ro", &m) == -EROFS);
	CHECK(be_lower_delete(fd, "sess_ro") == -EROFS);
	CHECK(be_lower_rename(fd, "sess_ro", "sess_ro3", false) == -EROFS);
	CHECK(be_lower_cleanup(fd) == 0);
	CHECK(has_bytes_in(fd, "sess_ro", "old", 3));
	CHECK(count_temps(fd) == 0);
	unmount_tmpfs(fd, path);
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "needs root (chown, mount): skipping\n");
		return 77;
	}
	snprintf(topdir, sizeof(topdir), "/tmp/sessfs-lower-XXXXXX");
	if (!mkdtemp(topdir)) {
		perror("mkdtemp");
		return 1;
	}
	topfd = open(topdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dfd = topfd;
	if (dfd < 0) {
		perror("open");
		rm_tree(topdir);
		return 1;
	}
	test_is_temp();
	test_bytes();
	test_meta();
	test_atomic();
	test_symlink();
	test_special();
	test_max_size();
	test_rename();
	test_list_cleanup();
	test_enospc();
	test_erofs();
	close(dfd);
	rm_tree(topdir);
	if (!test_failures && skipped)
		return 77;
	return test_exit();
}
