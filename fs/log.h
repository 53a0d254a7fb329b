/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Logging of the daemon to stderr (journald keeps it) with syslog's level
 * numbers.  The macros test the level before evaluating their arguments.
 * Never log session contents or secrets.  <syslog.h> is not included: its
 * LOG_ERR constant would clash with our macro of the same name.
 */
#ifndef FS_LOG_H
#define FS_LOG_H

enum fs_log_level {
	FS_LOG_ERR = 3,
	FS_LOG_WARNING = 4,
	FS_LOG_INFO = 6,
	FS_LOG_DEBUG = 7,
};

/** Messages above this level are dropped; set once at start. */
extern int fs_log_level;

/** Writes "sessfs: <level>: <message>\n" to stderr in one write. */
void fs_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** Routes libfuse's own messages through fs_log(). */
void fs_log_init(int level);

#define FS_LOG(level, ...)                            \
	do {                                          \
		if ((level) <= fs_log_level)          \
			fs_log((level), __VA_ARGS__); \
	} while (0)

#define LOG_ERR(...)   FS_LOG(FS_LOG_ERR, __VA_ARGS__)
#define LOG_WARN(...)  FS_LOG(FS_LOG_WARNING, __VA_ARGS__)
#define LOG_INFO(...)  FS_LOG(FS_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) FS_LOG(FS_LOG_DEBUG, __VA_ARGS__)

#endif /* FS_LOG_H */
