/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The client side of a mount's control socket (fs/ctl.c), shared by the
 * online commands (mode, status, export --mount, verify --mount,
 * rollback): finding the socket from the mountpoint, one JSON request and
 * one JSON reply per line, and a "label ... 3.2 s" line on a terminal
 * while the daemon works.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "migrate_i.h"

#define REPLY_MAX	 (64 * 1024 * 1024) /* a verify lists differences */
#define SPINNER_DELAY	 0.3 /* seconds before the line is drawn */
#define SPINNER_INTERVAL 100 /* ms between redraws */
#define CLEAR_LINE	 "\r\033[K"

/* Prints why connecting to c->path failed with 'err', and what to do. */
static int connect_error(const struct mig_ctl *c, const char *ctl_dir, int err)
{
	switch (err) {
	case ENOENT:
		return error(
			"no control socket for '%s' at '%s': was it mounted with another -o ctl_dir (give it with --ctl-dir)? is the daemon older than the control socket?",
			c->mount, c->path);
	case EACCES:
	case EPERM:
		return error("cannot connect to '%s': %s; run as root", c->path,
			     strerror(err));
	case ECONNREFUSED:
		return error(
			"the daemon of '%s' does not answer on '%s': connection refused; if 'ls %s' says 'Transport endpoint is not connected', the daemon died: mount sessfs over it again (crash restart), then retry",
			c->mount, c->path, c->mount);
	default:
		return error("cannot connect to '%s' (--ctl-dir %s): %s",
			     c->path, ctl_dir, strerror(err));
	}
}

int mig_ctl_open(struct mig_ctl *c, const char *mount, const char *ctl_dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int ret, layers;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->spinner = isatty(STDERR_FILENO);
	if (!ctl_dir)
		ctl_dir = MIG_DEFAULT_CTL_DIR;
	ret = mig_resolve_path(mount, c->mount);
	if (ret)
		return error("cannot use --mount '%s': %s", mount,
			     strerror(-ret));
	layers = mig_sessfs_layers(c->mount);
	if (layers < 0)
		return error("cannot read the mount table: %s",
			     strerror(-layers));
	if (layers == 0)
		return error(
			"'%s' is not a sessfs mount (no fuse.sessfs mount there); 'findmnt -t fuse.sessfs' lists them",
			c->mount);
	if (be_ctl_socket_path(c->path, sizeof(sa.sun_path), ctl_dir, c->mount))
		return error(
			"invalid --ctl-dir '%s': the socket path is too long",
			ctl_dir);
	strcpy(sa.sun_path, c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return error("cannot make a unix socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return connect_error(c, ctl_dir, errno);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		c->pid = cred.pid;
	return 0;
}

void mig_ctl_close(struct mig_ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void spinner_draw(const char *label, double seconds)
{
	fprintf(stderr, CLEAR_LINE "%s ... %.1f s", label, seconds);
	fflush(stderr);
}

/*
 * Reads one line from c->fd into a new string in '*line' (no newline).
 * Draws the spinner while waiting.  0, or -errno (-ECONNRESET at EOF,
 * -EMSGSIZE for a line over REPLY_MAX).
 */
static int read_line(struct mig_ctl *c, const char *label, char **line)
{
	double start = mig_monotonic(), now;
	size_t used = 0, cap = 4096;
	char *buf = malloc(cap), *nl;
	bool drawn = false;
	int ret = 0;

	*line = NULL;
	while (buf) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, SPINNER_INTERVAL) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		now = mig_monotonic();
		if (label && c->spinner && now - start >= SPINNER_DELAY) {
			spinner_draw(label, now - start);
			drawn = true;
		}
		if (!pfd.revents)
			continue;
		if (cap - used < 4096) {
			char *bigger = cap >= REPLY_MAX ? NULL
							: realloc(buf, cap * 2);

			if (!bigger) {
				ret = cap >= REPLY_MAX ? -EMSGSIZE : -ENOMEM;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		n = recv(c->fd, buf + used, cap - used - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -ECONNRESET;
			break;
		}
		used += (size_t)n;
		buf[used] = '\0';
		nl = memchr(buf, '\n', used);
		if (nl) {
			*nl = '\0';
			*line = buf;
			buf = NULL;
		}
	}
	if (drawn) {
		fprintf(stderr, CLEAR_LINE);
		fflush(stderr);
	}
	if (!*line && !ret)
		ret = -ENOMEM;
	free(buf);
	return ret;
}

int mig_ctl_call(struct mig_ctl *c, json_t *req, const char *label,
		 json_t **reply)
{
	json_error_t jerr;
	char *out, *line;
	int ret;

	*reply = NULL;
	out = json_dumps(req, JSON_COMPACT);
	if (!out)
		return error("out of memory");
	ret = send_all(c->fd, out, strlen(out));
	if (!ret)
		ret = send_all(c->fd, "\n", 1);
	free(out);
	if (ret)
		return error("cannot send to the daemon of '%s' ('%s'): %s",
			     c->mount, c->path, strerror(-ret));
	ret = read_line(c, label, &line);
	if (ret == -ECONNRESET)
		return error(
			"the daemon of '%s' closed the connection without a reply (it accepts root only; did it stop? see its log)",
			c->mount);
	if (ret)
		return error("cannot read the reply of the daemon of '%s': %s",
			     c->mount, strerror(-ret));
	*reply = json_loads(line, 0, &jerr);
	free(line);
	if (!*reply || !json_is_object(*reply) ||
	    !json_is_boolean(json_object_get(*reply, "ok"))) {
		json_decref(*reply);
		*reply = NULL;
		return error(
			"the daemon of '%s' sent a reply that is not a control-socket reply: %s",
			c->mount, jerr.text[0] ? jerr.text : "no \"ok\"");
	}
	return 0;
}

int mig_ctl_simple(struct mig_ctl *c, const char *cmd, const char *label,
		   json_t **reply)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	int ret;

	if (!req)
		return error("out of memory");
	ret = mig_ctl_call(c, req, label, reply);
	json_decref(req);
	if (ret)
		return ret;
	if (!json_is_true(json_object_get(*reply, "ok")))
		return error("%s on '%s' failed: %s", cmd, c->mount,
			     mig_ctl_error(*reply));
	return 0;
}

const char *mig_ctl_error(json_t *reply)
{
	const char *s = json_string_value(json_object_get(reply, "error"));

	return s ? s : "no reason given";
}
