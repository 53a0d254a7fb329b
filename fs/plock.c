/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fcntl byte-range locks of one name: plock.h states the rules. */
#include <errno.h>
#include <stdlib.h>

#include "plock.h"

int fs_plock_range(const struct flock *fl, int64_t *start, int64_t *end)
{
	if (fl->l_start < 0 || fl->l_len < 0)
		return -EINVAL;
	*start = fl->l_start;
	if (fl->l_len == 0 || fl->l_len - 1 > INT64_MAX - fl->l_start)
		*end = INT64_MAX;
	else
		*end = fl->l_start + fl->l_len - 1;
	return 0;
}

const struct fs_plock *fs_plock_conflict(const struct fs_plock *list,
					 uint64_t owner, bool ex, int64_t start,
					 int64_t end)
{
	const struct fs_plock *p;

	for (p = list; p; p = p->next)
		if (p->owner != owner && (p->ex || ex) && p->start <= end &&
		    p->end >= start)
			return p;
	return NULL;
}

bool fs_plock_holds(const struct fs_plock *list, uint64_t owner)
{
	const struct fs_plock *p;

	for (p = list; p; p = p->next)
		if (p->owner == owner)
			return true;
	return false;
}

int fs_plock_set(struct fs_plock **list, uint64_t *count, uint64_t owner,
		 uint64_t ino, uint32_t pid, int type, int64_t start,
		 int64_t end)
{
	/* Both allocated first: a failure must leave the list as it was. */
	struct fs_plock **pp, *p, *split = malloc(sizeof(*split));
	struct fs_plock *add = type == F_UNLCK ? NULL : malloc(sizeof(*add));

	if (!split || (type != F_UNLCK && !add)) {
		free(split);
		free(add);
		return -ENOMEM;
	}
	for (pp = list; (p = *pp);) {
		if (p->owner != owner || p->ino != ino || p->end < start ||
		    p->start > end) {
			pp = &p->next;
			continue;
		}
		if (p->start < start && p->end > end) {
			/* Around the range: its two ends stay (at most one). */
			*split = *p;
			split->start = end + 1;
			p->end = start - 1;
			p->next = split;
			pp = &split->next;
			split = NULL;
			++*count;
		} else if (p->start < start) {
			p->end = start - 1;
			pp = &p->next;
		} else if (p->end > end) {
			p->start = end + 1;
			pp = &p->next;
		} else {
			*pp = p->next;
			free(p);
			--*count;
		}
	}
	free(split);
	if (add) {
		add->owner = owner;
		add->ino = ino;
		add->pid = pid;
		add->ex = type == F_WRLCK;
		add->start = start;
		add->end = end;
		add->next = *list;
		*list = add;
		++*count;
	}
	return 0;
}

bool fs_plock_drop(struct fs_plock **list, uint64_t *count, uint64_t owner,
		   uint64_t ino)
{
	struct fs_plock **pp = list, *p;
	bool any = false;

	while ((p = *pp)) {
		if (p->owner != owner || p->ino != ino) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		free(p);
		--*count;
		any = true;
	}
	return any;
}

void fs_plock_free(struct fs_plock *list)
{
	struct fs_plock *p;

	while ((p = list)) {
		list = p->next;
		free(p);
	}
}
