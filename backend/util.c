/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

uint64_t be_fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* offset basis */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL; /* FNV prime */
	}
	return h;
}

int be_ctl_socket_path(char *buf, size_t size, const char *ctl_dir,
		       const char *mount)
{
	int n = snprintf(buf, size, "%s/%016llx.sock", ctl_dir,
			 (unsigned long long)be_fnv1a64(mount));

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int be_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t be_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t be_mono_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t be_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int be_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
