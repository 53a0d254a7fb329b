/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mountinfo.h"

/* Decodes the \ooo escapes the kernel writes for ' ', '\t', '\n', '\\'. */
static void unescape(char *s)
{
	char *w = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
				      (s[3] - '0'));
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

static char *next_field(char **p)
{
	char *s = *p, *end;

	if (!s || !*s)
		return NULL;
	end = strchr(s, ' ');
	if (end) {
		*end = '\0';
		*p = end + 1;
	} else {
		*p = NULL;
	}
	return s;
}

bool be_mi_parse_line(char *line, struct be_mi_entry *e)
{
	char *p = line, *f[6], *sep;
	int i;

	for (i = 0; i < 6; i++) {
		f[i] = next_field(&p);
		if (!f[i])
			return false;
	}
	/* Optional fields (shared:N, master:N) end with a lone "-". */
	do {
		sep = next_field(&p);
	} while (sep && strcmp(sep, "-") != 0);
	e->fstype = next_field(&p);
	if (!sep || !e->fstype)
		return false;
	if (sscanf(f[0], "%d", &e->id) != 1 ||
	    sscanf(f[1], "%d", &e->parent) != 1 ||
	    sscanf(f[2], "%u:%u", &e->major, &e->minor) != 2)
		return false;
	e->root = f[3];
	e->mnt = f[4];
	e->opts = f[5];
	unescape(e->root);
	unescape(e->mnt);
	unescape(e->fstype);
	return true;
}

void be_mi_free(struct be_mi_table *t)
{
	free(t->e);
	free(t->buf);
	t->e = NULL;
	t->buf = NULL;
	t->n = 0;
}

int be_read_file(const char *path, char **out)
{
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap), *nbuf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0 || !buf) {
		r = fd < 0 ? -errno : -ENOMEM;
		goto out_free;
	}
	for (;;) {
		if (cap - len < 4096) {
			nbuf = realloc(buf, cap * 2);
			if (!nbuf) {
				r = -ENOMEM;
				goto out_free;
			}
			buf = nbuf;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		len += r;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
	return 0;

out_free:
	if (fd >= 0)
		close(fd);
	free(buf);
	return (int)r;
}

int be_mi_read(struct be_mi_table *t)
{
	size_t lines = 1;
	char *p, *line;
	int ret;

	t->e = NULL;
	t->n = 0;
	ret = be_read_file("/proc/self/mountinfo", &t->buf);
	if (ret < 0)
		return ret;
	for (p = t->buf; *p; p++)
		lines += *p == '\n';
	t->e = calloc(lines, sizeof(*t->e));
	if (!t->e) {
		be_mi_free(t);
		return -ENOMEM;
	}
	for (line = strtok_r(t->buf, "\n", &p); line;
	     line = strtok_r(NULL, "\n", &p)) {
		if (be_mi_parse_line(line, &t->e[t->n]))
			t->n++;
	}
	return 0;
}
