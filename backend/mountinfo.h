/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/self/mountinfo, read once and parsed in place: what is mounted
 * where in our mount namespace, in mount order (a later line is mounted
 * later, so on top of an earlier one on the same path).  The daemon
 * (fs/mountpt.c: layers, the private bind, the restart over a dead layer)
 * and sessfs-migrate (migrate/dir.c: is this path a sessfs mount) read it
 * through here.  be_mi_parse_line() is pure; be_mi_read() reads the file.
 */
#ifndef BACKEND_MOUNTINFO_H
#define BACKEND_MOUNTINFO_H

#include <stdbool.h>
#include <stddef.h>

/* One line; the strings point into the line (or be_mi_table.buf). */
struct be_mi_entry {
	int id;
	int parent;
	unsigned int major, minor;
	char *root; /* path of the mount's root inside its filesystem */
	char *mnt; /* where it is mounted, unescaped */
	char *opts; /* per-mount options: rw,nosuid,nodev,relatime */
	char *fstype; /* e.g. "fuse.sessfs", unescaped */
};

struct be_mi_table {
	struct be_mi_entry *e;
	size_t n;
	char *buf;
};

/**
 * Parses one mountinfo line (no newline) in place into 'e': fields are
 * cut at spaces and the kernel's \ooo escapes (' ', '\t', '\n', '\\')
 * undone.  False if the line is malformed ('e' is then undefined).
 */
bool be_mi_parse_line(char *line, struct be_mi_entry *e);

/**
 * Reads our namespace's /proc/self/mountinfo into 't', malformed lines
 * left out.  0 or -errno; on success be_mi_free() releases it.
 */
int be_mi_read(struct be_mi_table *t);
void be_mi_free(struct be_mi_table *t);

/**
 * Reads the whole file 'path' into a new NUL-terminated '*out'.  0 or
 * -errno.  For /proc files, whose size stat() does not tell.
 */
int be_read_file(const char *path, char **out);

#endif
