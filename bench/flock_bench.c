/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * flock_bench: what flock() costs processes of one host on one session
 * file (bench/lock_bench.sh runs it on a plain directory and on sessfs).
 * PROCS processes, each with its own open file description, run for
 * SECONDS in one of five loops:
 *
 *   lock      flock(LOCK_EX), flock(LOCK_UN) on a file kept open
 *   section   the same around a pread and a pwrite of the file (64 bytes)
 *   php       PHP's session cycle: open, flock(LOCK_EX), pread, pwrite,
 *             close (the close unlocks)
 *   fcntl     the lock loop with fcntl(F_SETLKW, F_WRLCK, whole file) and
 *             F_UNLCK: a process's POSIX lock
 *   fcntl-php the php loop with that fcntl lock (the close unlocks)
 *
 *   flock_bench FILE MODE PROCS SECONDS
 *
 * Prints "MODE PROCS cycles/s mean_us" on one line: the cycles all
 * processes completed per second, and the mean time of one cycle.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
	fprintf(stderr, "flock_bench: %s: %s\n", what, strerror(errno));
	_exit(1);
}

/* Locks ('type' F_WRLCK) or unlocks (F_UNLCK) the whole of 'fd'. */
static int posix_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };

	return fcntl(fd, type == F_UNLCK ? F_SETLK : F_SETLKW, &fl);
}

/* One process's loop until 'end'; returns the cycles done. */
static long run(const char *path, const char *mode, double end)
{
	char buf[64];
	long n = 0;
	int fd = -1;
	bool posix = strncmp(mode, "fcntl", 5) == 0;
	bool php = strcmp(mode, "php") == 0 || strcmp(mode, "fcntl-php") == 0;
	bool section = strcmp(mode, "section") == 0;

	memset(buf, 'x', sizeof(buf));
	if (!php && (fd = open(path, O_RDWR)) < 0)
		die("open");
	while (now_s() < end) {
		if (php && (fd = open(path, O_RDWR)) < 0)
			die("open");
		if ((posix ? posix_lock(fd, F_WRLCK) : flock(fd, LOCK_EX)) < 0)
			die("lock");
		if ((php || section) &&
		    (pread(fd, buf, sizeof(buf), 0) < 0 ||
		     pwrite(fd, buf, sizeof(buf), 0) != sizeof(buf)))
			die("read or write");
		if (php) {
			if (close(fd) < 0)
				die("close");
		} else if ((posix ? posix_lock(fd, F_UNLCK)
				  : flock(fd, LOCK_UN)) < 0) {
			die("unlock");
		}
		n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	long *counts, total = 0;
	double secs, start, end;
	int procs, i, fd;

	if (argc != 5) {
		fprintf(stderr,
			"usage: flock_bench FILE lock|section|php|fcntl|fcntl-php PROCS SECONDS\n");
		return 2;
	}
	procs = atoi(argv[3]);
	secs = atof(argv[4]);
	if (procs < 1 || secs <= 0)
		return 2;
	fd = open(argv[1], O_RDWR | O_CREAT, 0600);
	if (fd < 0 || pwrite(fd, "x", 1, 0) != 1)
		die(argv[1]);
	close(fd);
	counts = mmap(NULL, sizeof(long) * procs, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		die("mmap");
	start = now_s();
	end = start + secs;
	for (i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (pid == 0) {
			counts[i] = run(argv[1], argv[2], end);
			_exit(0);
		}
	}
	for (i = 0; i < procs; i++) {
		int st;

		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	secs = now_s() - start;
	for (i = 0; i < procs; i++)
		total += counts[i];
	printf("%s %d %.0f %.1f\n", argv[2], procs, total / secs,
	       total ? secs * 1e6 * procs / total : 0.0);
	return 0;
}
