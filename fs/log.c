/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's log: one line per message on stderr, prefixed with the
 * level, written with a single write(2) so lines of concurrent threads do
 * not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <fuse_log.h>

#include "log.h"

int fs_log_level = FS_LOG_INFO;

static const char *level_name(int level)
{
	switch (level) {
	case FS_LOG_ERR:
		return "error";
	case FS_LOG_WARNING:
		return "warning";
	case FS_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* A printf-like: clang's -Wformat-nonliteral checks its callers instead. */
static void __attribute__((format(printf, 2, 0)))
log_va(int level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	n = snprintf(line, sizeof(line), "sessfs: %s: ", level_name(level));
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	while (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void fs_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}

/* libfuse's format strings are its own: checked where it calls us. */
static void __attribute__((format(printf, 2, 0)))
fuse_log_func(enum fuse_log_level level, const char *fmt, va_list ap)
{
	/* libfuse's levels are syslog's, as ours. */
	if ((int)level <= fs_log_level)
		log_va((int)level, fmt, ap);
}

void fs_log_init(int level)
{
	fs_log_level = level;
	fuse_set_log_func(fuse_log_func);
}
