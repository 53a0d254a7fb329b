/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of fs/mountpt.c with real mounts: a tiny low-level FUSE filesystem
 * served by forked "daemons" that use the mountpt calls as sessfs does.  A
 * daemon is killed with SIGKILL (the mountpoint must answer ENOTCONN and
 * never show the lower files), a second one restarts over the dead layer
 * through the private bind, and the layers go away by fusermount3 -u of
 * the top, by fs_mountpt_unmount_all() and by SIGTERM.  Also: a dead layer
 * without its bind is refused, a failed restart leaves ENOTCONN, paths
 * with a space and a backslash (mountinfo's octal escapes).
 *
 * Every scenario runs twice, each time in a private mount namespace with a
 * tmpfs on /run, so nothing can leak into the host's mounts: once with all
 * mounts private, once with '/' made rshared as on a systemd host, where a
 * peer namespace must see the FUSE layers but never the lower bind.
 * Daemons die with the runner (PR_SET_PDEATHSIG); the runner has an alarm.
 * Needs root and /dev/fuse, else exit 77.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "mountpt.h"
#include "testutil.h"

#define RUNNER_ALARM_S 120
#define FSNAME	       "redis://127.0.0.1:1/0"

enum ns_kind { NS_PRIVATE, NS_RSHARED };

static char tmp_root[64];
static pid_t peer_pid = -1; /* NS_RSHARED: a process in a peer namespace */

/* ------------------------------------------------------------------ */
/* The tiny filesystem: one file "served" listing the lower dir's names. */

#define SERVED_INO 2

static char served[4096];

static void tfs_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = strlen(served);
	}
}

static void tfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { 0 };

	if (parent != FUSE_ROOT_ID || strcmp(name, "served") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = SERVED_INO;
	tfs_stat(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void tfs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct stat st;

	tfs_stat(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void tfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	char buf[512];
	struct stat st;
	size_t n = 0;

	tfs_stat(SERVED_INO, &st);
	if (off == 0)
		n = fuse_add_direntry(req, buf, sizeof(buf), "served", &st, 1);
	fuse_reply_buf(req, buf, n < size ? n : 0);
}

static void tfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	size_t len = strlen(served);

	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, served + off,
			       len - off < size ? len - off : size);
}

static const struct fuse_lowlevel_ops tfs_ops = {
	.lookup = tfs_lookup,
	.getattr = tfs_getattr,
	.readdir = tfs_readdir,
	.read = tfs_read,
};

/* "served by pid N: name name ..." from the lower dir fd. */
static void list_lower(int lower_fd)
{
	int fd = dup(lower_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t n;

	n = snprintf(served, sizeof(served), "served by pid %d:", getpid());
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n += snprintf(served + n, sizeof(served) - n, " %s",
			      de->d_name);
		if (n >= sizeof(served))
			break;
	}
	if (d)
		closedir(d);
}

/* ------------------------------------------------------------------ */
/* A "daemon": the mountpt calls in sessfs's order around a FUSE loop. */

static int serve(const char *mnt, int report)
{
	char a0[] = "test_mountpt", a1[] = "-o",
	     a2[] = "fsname=" FSNAME ",subtype=sessfs,default_permissions";
	char *argv[] = { a0, a1, a2, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_loop_config *lc;
	struct fuse_session *se;
	struct fs_mountpt m;
	char err[512];
	int ret;

	fs_mountpt_init(&m);
	ret = fs_mountpt_prepare(&m, mnt, err, sizeof(err));
	if (ret == 0) {
		list_lower(m.lower_fd);
		ret = fs_mountpt_mount_arg(&m, FSNAME, false, err, sizeof(err));
	}
	if (ret < 0) {
		dprintf(report, "err %d %s\n", -ret, err);
		fs_mountpt_release(&m);
		return 3;
	}
	se = fuse_session_new(&args, &tfs_ops, sizeof(tfs_ops), NULL);
	if (!se || fuse_set_signal_handlers(se) != 0 ||
	    fuse_session_mount(se, m.fuse_mnt_arg) != 0) {
		dprintf(report, "err session\n");
		fs_mountpt_rollback(&m, NULL, 0);
		fs_mountpt_release(&m);
		return 3;
	}
	fs_mountpt_mounted(&m);
	dprintf(report, "ok %d\n", m.restart);
	close(report);

	/*
	 * The multi-threaded loop, as sessfs: the single-threaded one can
	 * miss a SIGTERM that lands just before it blocks in read().
	 */
	lc = fuse_loop_cfg_create();
	fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	fuse_session_unmount(se);
	ret = fs_mountpt_cleanup_after_unmount(&m, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "daemon %d: cleanup: %s\n", getpid(), err);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	fs_mountpt_release(&m);
	fuse_opt_free_args(&args);
	return ret < 0 ? 2 : 0;
}

/*
 * Forks a daemon on 'mnt' and waits for its report line ("ok 0", "ok 1"
 * for a restart, "err ..."), copied into 'line'.  Returns its pid.
 */
static pid_t start_daemon(const char *mnt, char *line, size_t len)
{
	size_t n = 0;
	ssize_t r;
	pid_t pid;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		abort();
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(serve(mnt, p[1]));
	}
	close(p[1]);
	while (n + 1 < len && (r = read(p[0], line + n, len - 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += r;
	}
	line[n] = '\0';
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	close(p[0]);
	return pid;
}

static int wait_exit(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void kill9(pid_t pid)
{
	kill(pid, SIGKILL);
	CHECK(wait_exit(pid) == 128 + SIGKILL);
}

/* ------------------------------------------------------------------ */
/* Checks. */

static int errno_of_stat(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? errno : 0;
}

static int errno_of_open(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static bool file_has(const char *dir, const char *name, const char *want)
{
	char path[4096], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, want) != NULL;
}

static void check_layers(const char *mnt, unsigned int total,
			 unsigned int covered, bool top_dead, bool bind)
{
	struct fs_mountpt_layers l;

	CHECK(fs_mountpt_layers(mnt, &l) == 0);
	if (l.total != total || l.covered != covered ||
	    l.top_dead != top_dead || l.bind != bind ||
	    l.top_sessfs != (total > covered)) {
		fprintf(stderr,
			"layers of '%s': total %u covered %u top_sessfs %d top_dead %d bind %d; want %u %u %d %d\n",
			mnt, l.total, l.covered, l.top_sessfs, l.top_dead,
			l.bind, total, covered, top_dead, bind);
		test_failures++;
	}
}

/* mountinfo's escaping of a path, to search for it. */
static void escape(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s && n + 5 < len; s++) {
		if (*s == ' ' || *s == '\\' || *s == '\t' || *s == '\n')
			n += snprintf(out + n, len - n, "\\%03o",
				      (unsigned char)*s);
		else
			out[n++] = *s;
	}
	out[n] = '\0';
}

/* Counts lines of /proc/<pid>/mountinfo mounted on 'path' holding 'word'. */
static int mounts_in(pid_t pid, const char *path, const char *word)
{
	char file[64], line[8192], pat[4200];
	int n = 0;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/mountinfo", (int)pid);
	f = fopen(file, "r");
	if (!f)
		return -1;
	escape(path, pat + 1, sizeof(pat) - 2);
	pat[0] = ' ';
	strcat(pat, " ");
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, pat);

		/* Field 5 is the mount point: after 4 spaces. */
		if (p && (!word || strstr(line, word)))
			n++;
	}
	fclose(f);
	return n;
}

struct paths {
	char mnt[512];
	char run_dir[512];
	char bind[512];
};

/* A fresh session dir under the tmp root holding "sess_a". */
static void make_sessdir(struct paths *p, const char *name)
{
	struct fs_mountpt m;
	char file[1024];
	int fd;

	snprintf(p->mnt, sizeof(p->mnt), "%s/%s", tmp_root, name);
	if (mkdir(p->mnt, 0700) < 0)
		abort();
	snprintf(file, sizeof(file), "%s/sess_a", p->mnt);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, "lower-a", 7) != 7)
		abort();
	close(fd);
	/* The same paths as the daemon computes (prepare, then undo). */
	fs_mountpt_init(&m);
	if (fs_mountpt_prepare(&m, p->mnt, file, sizeof(file)) < 0) {
		fprintf(stderr, "prepare '%s': %s\n", p->mnt, file);
		abort();
	}
	snprintf(p->run_dir, sizeof(p->run_dir), "%s", m.run_dir);
	snprintf(p->bind, sizeof(p->bind), "%s", m.bind);
	CHECK(fs_mountpt_rollback(&m, NULL, 0) == 0);
	fs_mountpt_release(&m);
	CHECK(errno_of_stat(p->run_dir) == ENOENT);
}

/* The plain directory is back: no layer, no bind, no run dir. */
static void check_plain(const struct paths *p)
{
	CHECK(errno_of_stat(p->mnt) == 0);
	CHECK(file_has(p->mnt, "sess_a", "lower-a"));
	CHECK(errno_of_open(p->mnt, "served") == ENOENT);
	check_layers(p->mnt, 0, 0, false, false);
	CHECK(errno_of_stat(p->run_dir) == ENOENT);
	if (peer_pid > 0)
		CHECK(mounts_in(peer_pid, p->mnt, FS_MOUNTPT_FSTYPE) == 0);
}

/* The mountpoint answers ENOTCONN: nothing of the lower dir shows. */
static void check_dead(const struct paths *p)
{
	DIR *d;

	CHECK(errno_of_stat(p->mnt) == ENOTCONN);
	CHECK(errno_of_open(p->mnt, "sess_a") == ENOTCONN);
	d = opendir(p->mnt);
	CHECK(!d && errno == ENOTCONN);
	if (d)
		closedir(d);
}

/* A daemon serves the mountpoint, and read the lower dir through the bind. */
static void check_served(const struct paths *p, pid_t pid)
{
	char want[64];

	snprintf(want, sizeof(want), "served by pid %d: sess_a", (int)pid);
	CHECK(file_has(p->mnt, "served", want));
	CHECK(errno_of_open(p->mnt, "sess_a") == ENOENT);
	/* The bind shows the lower files, never the FUSE mount. */
	CHECK(file_has(p->bind, "sess_a", "lower-a"));
	CHECK(errno_of_open(p->bind, "served") == ENOENT);
	CHECK(mounts_in(getpid(), p->bind, "shared:") == 0);
	if (peer_pid > 0) {
		CHECK(mounts_in(peer_pid, p->mnt, FS_MOUNTPT_FSTYPE) >= 1);
		CHECK(mounts_in(peer_pid, p->bind, NULL) == 0);
	}
}

/* Starts a daemon and checks its report. */
static pid_t daemon_ok(const struct paths *p, int restart)
{
	char line[1024], want[16];
	pid_t pid;

	pid = start_daemon(p->mnt, line, sizeof(line));
	snprintf(want, sizeof(want), "ok %d", restart);
	if (strcmp(line, want) != 0) {
		fprintf(stderr, "daemon on '%s' reported '%s', want '%s'\n",
			p->mnt, line, want);
		test_failures++;
	}
	return pid;
}

static int run_cmd(const char *prog, const char *a1, const char *a2)
{
	pid_t pid = fork();

	if (pid == 0) {
		execlp(prog, prog, a1, a2, (char *)NULL);
		_exit(127);
	}
	return wait_exit(pid);
}

/* ------------------------------------------------------------------ */
/* Scenarios. */

/* Crash, restart, then fusermount3 -u of the top leaves plain files. */
static void test_restart_fusermount(void)
{
	struct paths p = { 0 };
	struct stat st;
	pid_t a, b;
	char err[512];
	struct fs_mountpt m;

	make_sessdir(&p, "s1 a\\b");
	a = daemon_ok(&p, 0);
	check_served(&p, a);
	check_layers(p.mnt, 1, 0, false, true);
	CHECK(stat(FS_MOUNTPT_RUN_DIR, &st) == 0 &&
	      (st.st_mode & 0777) == 0700 && st.st_uid == 0);
	CHECK(stat(p.run_dir, &st) == 0 && (st.st_mode & 0777) == 0700);

	/* A second daemon is refused while the first lives. */
	fs_mountpt_init(&m);
	CHECK(fs_mountpt_prepare(&m, p.mnt, err, sizeof(err)) == -EBUSY);
	fs_mountpt_release(&m);

	kill9(a);
	check_dead(&p);
	check_layers(p.mnt, 1, 0, true, true);

	b = daemon_ok(&p, 1);
	check_served(&p, b);
	check_layers(p.mnt, 2, 1, false, true);

	CHECK(run_cmd("fusermount3", "-u", p.mnt) == 0);
	CHECK(wait_exit(b) == 0);
	check_plain(&p);
}

/* Crash, restart, then fs_mountpt_unmount_all() from outside. */
static void test_restart_unmount_all(void)
{
	unsigned int n = 0;
	struct paths p = { 0 };
	char err[512];
	pid_t a, b;

	make_sessdir(&p, "s2 dir");
	a = daemon_ok(&p, 0);
	kill9(a);
	check_dead(&p);
	b = daemon_ok(&p, 1);
	check_served(&p, b);
	CHECK(fs_mountpt_unmount_all(p.mnt, &n, err, sizeof(err)) == 0);
	/* Once its layer is gone, b itself may remove the dead one first. */
	CHECK(n == 1 || n == 2);
	CHECK(wait_exit(b) == 0);
	check_plain(&p);

	/* Nothing mounted: still 0. */
	CHECK(fs_mountpt_unmount_all(p.mnt, &n, err, sizeof(err)) == 0);
	CHECK(n == 0);
}

/* SIGTERM of a restarted daemon unmounts its layer and the dead one. */
static void test_restart_sigterm(void)
{
	struct paths p = { 0 };
	pid_t a, b;

	make_sessdir(&p, "s3");
	a = daemon_ok(&p, 0);
	kill9(a);
	b = daemon_ok(&p, 1);
	check_served(&p, b);
	kill(b, SIGTERM);
	CHECK(wait_exit(b) == 0);
	check_plain(&p);

	/* And of a first daemon (libfuse unmounts its layer). */
	a = daemon_ok(&p, 0);
	check_served(&p, a);
	kill(a, SIGTERM);
	CHECK(wait_exit(a) == 0);
	check_plain(&p);
}

/* A dead layer without its bind: refused, and the lower dir stays hidden. */
static void test_no_bind(void)
{
	char line[1024], err[512];
	unsigned int n = 0;
	struct paths p = { 0 };
	pid_t a, c;

	make_sessdir(&p, "s4");
	a = daemon_ok(&p, 0);
	kill9(a);
	CHECK(umount2(p.bind, MNT_DETACH) == 0);
	c = start_daemon(p.mnt, line, sizeof(line));
	CHECK(wait_exit(c) == 3);
	CHECK(strncmp(line, "err 2 ", 6) == 0 && strstr(line, "no bind"));
	check_dead(&p);
	check_layers(p.mnt, 1, 0, true, false);
	CHECK(fs_mountpt_unmount_all(p.mnt, &n, err, sizeof(err)) == 0);
	CHECK(n == 1);
	check_plain(&p);
}

/* A bind that shows another directory is not taken for the lower dir. */
static void test_wrong_bind(void)
{
	char line[1024], err[512], other[600];
	unsigned int n = 0;
	struct paths p = { 0 };
	pid_t a, c;

	make_sessdir(&p, "s6");
	snprintf(other, sizeof(other), "%s/s6-other", tmp_root);
	CHECK(mkdir(other, 0700) == 0);
	a = daemon_ok(&p, 0);
	kill9(a);
	CHECK(umount2(p.bind, MNT_DETACH) == 0);
	CHECK(mount(other, p.bind, "none", MS_BIND, NULL) == 0);
	CHECK(mount("none", p.bind, "none", MS_PRIVATE, NULL) == 0);
	c = start_daemon(p.mnt, line, sizeof(line));
	CHECK(wait_exit(c) == 3);
	CHECK(strncmp(line, "err 116 ", 8) == 0 && strstr(line, "s6-other"));
	check_dead(&p);
	CHECK(fs_mountpt_unmount_all(p.mnt, &n, err, sizeof(err)) == 0);
	CHECK(n == 1);
	check_plain(&p);
}

/* The session dir is a mount of its own (a tmpfs, as often in practice). */
static void test_sessdir_is_mount(void)
{
	char file[700];
	struct paths p = { 0 };
	pid_t a, b;
	int fd;

	make_sessdir(&p, "s7");
	CHECK(mount("tmpfs", p.mnt, "tmpfs", 0, "size=64k,mode=700") == 0);
	snprintf(file, sizeof(file), "%s/sess_a", p.mnt);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "lower-a", 7) == 7);
	close(fd);
	a = daemon_ok(&p, 0);
	check_served(&p, a);
	kill9(a);
	check_dead(&p);
	b = daemon_ok(&p, 1);
	check_served(&p, b);
	CHECK(run_cmd("fusermount3", "-u", p.mnt) == 0);
	CHECK(wait_exit(b) == 0);
	check_plain(&p);
	CHECK(umount2(p.mnt, 0) == 0);
}

/* A restart that fails after mounting its layer leaves ENOTCONN. */
static void test_rollback(void)
{
	struct fs_mountpt m;
	unsigned int n = 0;
	struct paths p = { 0 };
	char err[512];
	pid_t a;

	make_sessdir(&p, "s5");
	a = daemon_ok(&p, 0);
	kill9(a);
	fs_mountpt_init(&m);
	CHECK(fs_mountpt_prepare(&m, p.mnt, err, sizeof(err)) == 0);
	CHECK(m.restart);
	CHECK(fs_mountpt_mount_arg(&m, FSNAME, true, err, sizeof(err)) == 0);
	CHECK(m.fuse_fd >= 0 && m.fuse_mnt_arg &&
	      strncmp(m.fuse_mnt_arg, "/dev/fd/", 8) == 0);
	CHECK(mounts_in(getpid(), p.mnt, "allow_other") == 1);
	CHECK(mounts_in(getpid(), p.mnt, "nosuid,nodev") == 2);
	CHECK(mounts_in(getpid(), p.mnt, " " FSNAME " ") == 2);
	CHECK(fs_mountpt_rollback(&m, err, sizeof(err)) == 0);
	fs_mountpt_release(&m);
	check_dead(&p);
	check_layers(p.mnt, 1, 0, true, true);
	CHECK(fs_mountpt_unmount_all(p.mnt, &n, err, sizeof(err)) == 0);
	CHECK(n == 1);
	check_plain(&p);
}

/* Refusals and errors that need no daemon. */
static void test_refusals(void)
{
	struct fs_mountpt_layers l;
	struct fs_mountpt m;
	char err[512], path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/no-such-dir", tmp_root);
	CHECK(fs_mountpt_layers(path, &l) == -ENOENT);
	fs_mountpt_init(&m);
	CHECK(fs_mountpt_prepare(&m, path, err, sizeof(err)) == -ENOENT);
	fs_mountpt_release(&m);

	snprintf(path, sizeof(path), "%s/a-file", tmp_root);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	fs_mountpt_init(&m);
	CHECK(fs_mountpt_prepare(&m, path, err, sizeof(err)) == -ENOTDIR);
	CHECK(errno_of_stat(m.run_dir) == ENOENT);
	fs_mountpt_release(&m);
}

/*
 * The hazard the private bind avoids is real in the rshared namespace: a
 * plain bind receives what is later mounted on its source.
 */
static void test_shared_hazard(void)
{
	char src[600], dst[600], f[700];

	snprintf(src, sizeof(src), "%s/hazard-src", tmp_root);
	snprintf(dst, sizeof(dst), "%s/hazard-dst", tmp_root);
	CHECK(mkdir(src, 0700) == 0 && mkdir(dst, 0700) == 0);
	CHECK(mount(src, dst, "none", MS_BIND, NULL) == 0);
	CHECK(mount("tmpfs", src, "tmpfs", 0, "size=64k") == 0);
	snprintf(f, sizeof(f), "%s/on-tmpfs", src);
	close(open(f, O_WRONLY | O_CREAT, 0600));
	CHECK(errno_of_open(dst, "on-tmpfs") == 0);
	umount2(src, MNT_DETACH);
	umount2(dst, MNT_DETACH);
	umount2(dst, MNT_DETACH);
}

/* A process in a namespace that is a peer of ours (propagation kept). */
static pid_t start_peer(void)
{
	char c;
	pid_t pid;
	int p[2];

	if (pipe(p) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		if (unshare(CLONE_NEWNS) < 0)
			_exit(1);
		close(p[1]);
		pause();
		_exit(0);
	}
	close(p[1]);
	while (read(p[0], &c, 1) < 0 && errno == EINTR)
		;
	close(p[0]);
	return pid;
}

/* Runs every scenario in a new mount namespace; exits with the result. */
static void runner(enum ns_kind kind)
{
	alarm(RUNNER_ALARM_S);
	/*
	 * Two tmpfs on /run: under the second one, a hidden bind on
	 * /run/sessfs that mountinfo still lists (as after a namespace copied
	 * the host's /run/sessfs and got a /run of its own).
	 */
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", 0, "mode=755,size=1m") < 0 ||
	    mkdir(FS_MOUNTPT_RUN_DIR, 0700) < 0 ||
	    mount(FS_MOUNTPT_RUN_DIR, FS_MOUNTPT_RUN_DIR, "none", MS_BIND,
		  NULL) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", 0, "mode=755,size=1m") < 0) {
		perror("test_mountpt: namespace setup");
		_exit(1);
	}
	if (kind == NS_RSHARED) {
		if (mount("none", "/", "none", MS_REC | MS_SHARED, NULL) < 0) {
			perror("test_mountpt: make rshared");
			_exit(1);
		}
		test_shared_hazard();
		peer_pid = start_peer();
	}
	test_refusals();
	test_restart_fusermount();
	test_restart_unmount_all();
	test_restart_sigterm();
	test_no_bind();
	test_rollback();
	test_wrong_bind();
	test_sessdir_is_mount();
	if (peer_pid > 0)
		kill(peer_pid, SIGKILL);
	_exit(test_exit());
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

int main(void)
{
	static const char *names[] = { "private", "rshared" };
	int kind, status, failed = 0;
	pid_t pid;

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		fprintf(stderr, "test_mountpt: needs root and /dev/fuse\n");
		return 77;
	}
	for (kind = NS_PRIVATE; kind <= NS_RSHARED; kind++) {
		/* A space in the root exercises mountinfo's \040. */
		snprintf(tmp_root, sizeof(tmp_root), "/tmp/sfs mpt-XXXXXX");
		if (!mkdtemp(tmp_root)) {
			perror("mkdtemp");
			return 1;
		}
		pid = fork();
		if (pid == 0)
			runner(kind);
		status = wait_exit(pid);
		/* The namespace died with its processes: only files remain. */
		nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		fprintf(stderr, "test_mountpt: %s namespace: %s (%d)\n",
			names[kind], status ? "FAILED" : "ok", status);
		failed |= status != 0;
	}
	return failed;
}
