/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Our Redis transport (see conn.h): non-blocking TCP and unix sockets that
 * we own, TLS over them where the URL asks (tls.h: it never waits, we
 * do), every wait done with poll() against one deadline per call, AUTH
 * and SELECT after connecting, pipelines written in one go, and retries on
 * a fresh connection with backoff while the call's budget lasts.  hiredis
 * only formats commands and parses replies; it never touches a socket.
 * The pool that lends connections to threads is pool.c.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "cluster.h"
#include "conn_i.h"
#include "resp.h"
#include "sentinel.h"
#include "tls.h"
#include "util.h"
#include "track.h"

#define NSEC_PER_SEC	 1000000000LL
#define NSEC_PER_MSEC	 1000000LL
#define BACKOFF_FIRST_NS (10 * NSEC_PER_MSEC)
#define BACKOFF_MAX_NS	 (200 * NSEC_PER_MSEC)
#define READ_CHUNK	 16384
/* How long a TLS connect waits for the verdict on its client certificate. */
#define TLS_SETTLE_NS (200 * NSEC_PER_MSEC)
#define ERRSTR_MAX    256
#define HOST_MAX      256

struct be_conn {
	struct be_endpoint ep;
	int64_t timeout_ns;
	int fd; /* -1 when not connected */
	struct be_tls_conn *tls; /* over 'fd' for rediss://, else NULL */
	redisReader *reader; /* NULL when not connected */
	char errstr[ERRSTR_MAX];
	/* CLIENT TRACKING at each connect (track.h), or NULL. */
	struct be_tracker *tracker;
	uint64_t track_gen; /* the tracker generation it redirects to */
	bool connected_before;
	unsigned int slot; /* its place in its pool */
	/*
	 * Sentinel: the master's address this connection resolved, its
	 * generation (sentinel.h), and whether it was only the last one
	 * known (no sentinel answered).
	 */
	char host[HOST_MAX];
	int port;
	uint64_t master_gen;
	bool fallback;
	unsigned int marks; /* be_conn_mark(), since the last connect */
	uint64_t connects; /* how many times it connected */
	/* redis-cluster://: the router every call goes through, else NULL. */
	struct be_route *route;
	uint64_t route_connects; /* be_route_connects() when marks were kept */
};

static int set_error(struct be_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_error(struct be_conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
	va_end(ap);
	return err;
}

/* Sets the reason for -'err' as strerror() says it, in lowercase. */
static int set_errno_error(struct be_conn *c, int err)
{
	char buf[128];
	const char *msg = strerror_r(-err, buf, sizeof(buf));

	set_error(c, err, "%s", msg);
	if (c->errstr[0] >= 'A' && c->errstr[0] <= 'Z')
		c->errstr[0] += 'a' - 'A';
	return err;
}

/*
 * Milliseconds left until 'deadline' for poll(), rounded up so that we
 * never wake just before it; 0 when it has passed.
 */
static int poll_ms(int64_t deadline)
{
	int64_t left = deadline - be_mono_ns();

	if (left <= 0)
		return 0;
	left = (left + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * Waits until 'fd' is ready for 'events' or 'deadline' passes.  Returns
 * the revents, or -ETIMEDOUT, or -errno of poll().
 */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ms, n;

	for (;;) {
		ms = poll_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, ms);
		if (n > 0)
			return pfd.revents;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

void be_conn_close(struct be_conn *c)
{
	if (c->route)
		be_route_close(c->route);
	be_tls_conn_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->reader)
		be_resp_reader_free(c->reader);
	c->reader = NULL;
}

struct be_conn *be_conn_new(const struct be_endpoint *ep, double timeout)
{
	struct be_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (be_endpoint_copy(&c->ep, ep) < 0) {
		free(c);
		return NULL;
	}
	c->timeout_ns = timeout > 0 ? (int64_t)(timeout * NSEC_PER_SEC) : 0;
	c->fd = -1;
	if (ep->cluster) {
		c->route = be_route_new(ep, timeout);
		if (!c->route) {
			be_conn_free(c);
			return NULL;
		}
	}
	return c;
}

void be_conn_free(struct be_conn *c)
{
	if (!c)
		return;
	be_conn_close(c);
	be_route_free(c->route);
	be_endpoint_release(&c->ep);
	free(c);
}

const char *be_conn_errstr(const struct be_conn *c)
{
	if (c->route)
		return be_route_errstr(c->route);
	return c->errstr;
}

/*
 * Starts a non-blocking connect of a new socket to 'addr' and waits for it
 * until 'deadline'.  Returns the connected fd or -errno.
 */
static int connect_addr(int family, const struct sockaddr *addr,
			socklen_t addrlen, int64_t deadline)
{
	int fd, ret, one = 1;
	socklen_t len = sizeof(ret);

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family != AF_UNIX) {
		/* Small requests and replies: never wait for Nagle. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	if (connect(fd, addr, addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		ret = -errno;
		goto out_close;
	}
	ret = wait_fd(fd, POLLOUT, deadline);
	if (ret < 0)
		goto out_close;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &ret, &len) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (ret) {
		ret = -ret;
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return ret;
}

static int connect_unix(struct be_conn *c, int64_t deadline)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(c->ep.unix_path) >= sizeof(sun.sun_path))
		return set_error(c, -ENAMETOOLONG, "socket path too long");
	strcpy(sun.sun_path, c->ep.unix_path);
	fd = connect_addr(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun),
			  deadline);
	if (fd < 0)
		return set_errno_error(c, fd);
	return fd;
}

/*
 * Connects to each address of the host in turn (e.g. "localhost" gives
 * ::1 and 127.0.0.1) and keeps the first that answers.
 *
 * NEEDSWORK: getaddrinfo() blocks without our deadline; an IP address
 * (the usual case) does not resolve through DNS.
 */
static int connect_tcp(struct be_conn *c, const char *host, int portnum,
		       int64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char port[16];
	int fd = -ECONNREFUSED, gai;

	snprintf(port, sizeof(port), "%d", portnum);
	gai = getaddrinfo(host, port, &hints, &res);
	if (gai == EAI_AGAIN)
		return set_error(c, -EAGAIN, "cannot resolve host '%s': %s",
				 host, gai_strerror(gai));
	if (gai == EAI_MEMORY)
		return set_error(c, -ENOMEM, "out of memory");
	if (gai)
		return set_error(c, -ENXIO, "cannot resolve host '%s': %s",
				 host, gai_strerror(gai));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = connect_addr(ai->ai_family, ai->ai_addr, ai->ai_addrlen,
				  deadline);
		if (fd >= 0 || fd == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd == -ETIMEDOUT)
		return set_error(c, fd, "connection timed out");
	if (fd < 0)
		return set_errno_error(c, fd);
	return fd;
}

/*
 * Sentinel: asks the sentinels for the master's address (into c->host,
 * c->port, c->master_gen) and connects to it.  The fd or -errno.
 */
static int connect_sentinel(struct be_conn *c, int64_t deadline)
{
	char why[ERRSTR_MAX];
	int fd;

	fd = be_sentinel_resolve(c->ep.sentinel, poll_ms(deadline), c->host,
				 sizeof(c->host), &c->port, &c->master_gen,
				 &c->fallback, why, sizeof(why));
	if (fd < 0)
		return set_error(c, fd, "%s", why);
	fd = connect_tcp(c, c->host, c->port, deadline);
	if (fd < 0) {
		snprintf(why, sizeof(why), "%s", c->errstr);
		set_error(c, fd, "master %s:%d%s: %s", c->host, c->port,
			  c->fallback ? " (no sentinel answered)" : "", why);
	}
	return fd;
}

/* Maps a failed hiredis reader to -errno and a reason. */
static int reader_error(struct be_conn *c)
{
	if (c->reader->err == REDIS_ERR_OOM && be_resp_refused(c->reader))
		return set_error(
			c, -EPROTO,
			"protocol error: an array of more than %d or fewer than 0 elements",
			BE_RESP_MAX_ELEMENTS);
	if (c->reader->err == REDIS_ERR_OOM)
		return set_error(c, -ENOMEM, "out of memory");
	return set_error(c, -EPROTO, "protocol error: %s", c->reader->errstr);
}

/*
 * Receives up to 'len' bytes into 'buf', through TLS if 'c' has it.
 * Returns how many (> 0), -EAGAIN with the events to wait for in
 * '*want', or -errno (reason set; -ECONNRESET at end of file).
 */
static ssize_t recv_some(struct be_conn *c, char *buf, size_t len, short *want)
{
	ssize_t n;

	if (c->tls)
		return be_tls_read(c->tls, buf, len, want, c->errstr,
				   sizeof(c->errstr));
	for (;;) {
		n = recv(c->fd, buf, len, 0);
		if (n > 0)
			return n;
		if (n == 0)
			return set_error(c, -ECONNRESET,
					 "connection closed by server");
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return set_errno_error(c, -errno);
		*want = POLLIN;
		return -EAGAIN;
	}
}

/*
 * Sends up to 'len' bytes of 'buf', through TLS if 'c' has it.  Returns
 * how many (>= 0), -EAGAIN with '*want', or -errno (reason set).
 */
static ssize_t send_some(struct be_conn *c, const char *buf, size_t len,
			 short *want)
{
	ssize_t n;

	if (c->tls)
		return be_tls_write(c->tls, buf, len, want, c->errstr,
				    sizeof(c->errstr));
	for (;;) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return set_errno_error(c, -errno);
		*want = POLLOUT;
		return -EAGAIN;
	}
}

/*
 * Reads what the connection has into the reader, waiting for it until
 * 'deadline' if 'wait', else returning 0 when nothing could be read.  0
 * or -errno (-ECONNRESET at end of file).
 */
static int read_some(struct be_conn *c, int64_t deadline, bool wait)
{
	char buf[READ_CHUNK];
	short want = POLLIN;
	ssize_t n;
	int ret;

	for (;;) {
		n = recv_some(c, buf, sizeof(buf), &want);
		if (n > 0)
			break;
		if (n != -EAGAIN)
			return (int)n;
		if (!wait)
			return 0;
		ret = wait_fd(c->fd, want, deadline);
		if (ret == -ETIMEDOUT)
			return set_error(c, ret,
					 "timed out waiting for a reply");
		if (ret < 0)
			return set_errno_error(c, ret);
	}
	if (redisReaderFeed(c->reader, buf, n) != REDIS_OK)
		return reader_error(c);
	return 0;
}

/*
 * Writes the 'len' bytes of 'buf' by 'deadline'.  Replies that arrive
 * meanwhile are read into the reader, so that a long pipeline cannot
 * stall with both socket buffers full.  0 or -errno.
 */
static int write_all(struct be_conn *c, const char *buf, size_t len,
		     int64_t deadline)
{
	short want = POLLOUT;
	ssize_t n;
	int ret;

	while (len) {
		n = send_some(c, buf, len, &want);
		if (n >= 0) {
			buf += n;
			len -= n;
			continue;
		}
		if (n != -EAGAIN)
			return (int)n;
		ret = wait_fd(c->fd, want | POLLIN, deadline);
		if (ret == -ETIMEDOUT)
			return set_error(c, ret, "timed out sending a command");
		if (ret < 0)
			return set_errno_error(c, ret);
		if (ret & POLLIN) {
			ret = read_some(c, deadline, false);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static void free_replies(redisReply **replies, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (replies[i])
			freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
}

/*
 * The next reply the reader holds, reading the socket until 'deadline'
 * while it holds none.  0 with a new '*reply', or -errno (reason set).
 */
static int next_reply(struct be_conn *c, redisReply **reply, int64_t deadline)
{
	void *r;
	int ret;

	for (;;) {
		r = NULL;
		if (redisReaderGetReply(c->reader, &r) != REDIS_OK)
			return reader_error(c);
		if (r) {
			*reply = r;
			return 0;
		}
		/*
		 * A hostile "$<len>" would have us buffer up to 2^63 bytes
		 * until the deadline: refused at its header.
		 */
		if (be_resp_check_pending(c->reader))
			return set_error(
				c, -EPROTO,
				"protocol error: a reply item of more than %d bytes",
				BE_RESP_MAX_BULK);
		ret = read_some(c, deadline, true);
		if (ret < 0)
			return ret;
	}
}

/*
 * One round trip on the connected 'c': writes the 'len' bytes of 'buf'
 * (n formatted commands) and reads 'n' replies into 'replies'.  No retry,
 * no reconnect.  0 or -errno; on failure no reply is left allocated and
 * the caller closes the connection (it may be out of step).
 */
static int exchange(struct be_conn *c, const char *buf, size_t len, size_t n,
		    redisReply **replies, int64_t deadline)
{
	size_t i;
	int ret;

	for (i = 0; i < n; i++)
		replies[i] = NULL;
	ret = write_all(c, buf, len, deadline);
	for (i = 0; i < n && ret == 0; i++)
		ret = next_reply(c, &replies[i], deadline);
	if (ret < 0)
		free_replies(replies, n);
	return ret;
}

/*
 * Formats the 'n' commands of 'cmds' into one buffer '*out' of '*outlen'
 * bytes (new, free()).  0 or -ENOMEM.
 */
static int format_commands(const struct be_cmd *cmds, size_t n, char **out,
			   size_t *outlen)
{
	char *buf = NULL, *cmd, *grown;
	size_t len = 0, cap = 0;
	size_t i;
	int clen;

	for (i = 0; i < n; i++) {
		cmd = NULL;
		clen = redisFormatCommandArgv(&cmd, cmds[i].argc, cmds[i].argv,
					      cmds[i].argvlen);
		if (clen < 0 || !cmd)
			goto out_free;
		if (len + clen > cap) {
			cap = (len + clen) * 2;
			grown = realloc(buf, cap);
			if (!grown) {
				redisFreeCommand(cmd);
				goto out_free;
			}
			buf = grown;
		}
		memcpy(buf + len, cmd, clen);
		len += clen;
		/* It may be an AUTH: leave no password in freed memory. */
		explicit_bzero(cmd, clen);
		redisFreeCommand(cmd);
	}
	*out = buf;
	*outlen = len;
	return 0;
out_free:
	free(buf);
	return -ENOMEM;
}

static bool is_error_reply(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_ERROR;
}

/* True if 'r' is an error reply whose text starts with 'prefix'. */
static bool error_starts_with(const redisReply *r, const char *prefix)
{
	size_t plen = strlen(prefix);

	return is_error_reply(r) && (size_t)r->len >= plen &&
	       !memcmp(r->str, prefix, plen);
}

/*
 * A server at maxclients greets a new connection with this error and
 * closes it: that is a full server, not a refused password.
 */
static bool is_maxclients_reply(const redisReply *r)
{
	return error_starts_with(r, "ERR max number of clients reached");
}

/*
 * The error replies that say "try again soon": a server loading its data,
 * running a long script, resharding, or a replica cut from its master;
 * also a full server's greeting.  The whole first word must match
 * (BUSYKEY is a real error).
 */
bool be_reply_is_transient(const redisReply *r)
{
	static const char *const words[] = { "LOADING", "BUSY", "TRYAGAIN",
					     "MASTERDOWN" };
	size_t i, wlen;

	if (!is_error_reply(r))
		return false;
	if (is_maxclients_reply(r))
		return true;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		wlen = strlen(words[i]);
		if ((size_t)r->len >= wlen && !memcmp(r->str, words[i], wlen) &&
		    ((size_t)r->len == wlen || r->str[wlen] == ' '))
			return true;
	}
	return false;
}

/* Copies the text of the error reply 'r' into 'c's reason. */
static int reply_error(struct be_conn *c, int err, const redisReply *r)
{
	return set_error(c, err, "%.*s", (int)r->len, r->str);
}

/*
 * Sentinel: the reply 'r' to ROLE must say master.  0, -EAGAIN for
 * another role (retried: the sentinels may not have seen the failover
 * yet), -EACCES when ROLE is refused (an ACL without +role), -EPROTO.
 */
static int check_role(struct be_conn *c, const redisReply *r)
{
	char role[32];
	int k;

	if (is_error_reply(r))
		return set_error(c, -EACCES, "ROLE refused by %s:%d: %.*s",
				 c->host, c->port, (int)r->len, r->str);
	k = be_role_parse(r, role, sizeof(role));
	if (k < 0)
		return set_error(c, -EPROTO,
				 "unexpected reply to ROLE from %s:%d", c->host,
				 c->port);
	if (k == 0)
		return set_error(
			c, -EAGAIN,
			"%s:%d is not the master of '%s' (ROLE says %s)%s",
			c->host, c->port,
			be_sentinel_master_name(c->ep.sentinel), role,
			c->fallback ? "; no sentinel answered" : "");
	c->master_gen = be_sentinel_confirm(c->ep.sentinel, c->host, c->port);
	return 0;
}

/*
 * Sends AUTH and SELECT as one pipeline on the freshly connected 'c'.
 * A refusal is final: -EACCES for AUTH, -EINVAL for SELECT.
 */
static int handshake(struct be_conn *c, int64_t deadline)
{
	const char *auth[3] = { "AUTH" };
	const char *select[2] = { "SELECT" };
	const char *track[6] = { "CLIENT",   "TRACKING", "ON",
				 "REDIRECT", NULL,	 "NOLOOP" };
	const char *role[1] = { "ROLE" };
	struct be_cmd cmds[4];
	redisReply *replies[4];
	char db[16], id[24];
	size_t n = 0, len, i, nselect = 0, ntrack = 0, nrole = 0;
	uint64_t gen = 0;
	long long redirect = 0;
	char *buf;
	int ret;

	if (c->ep.user && !c->ep.password)
		return set_error(
			c, -EINVAL,
			"user '%s' has no password (give one in the URL or a password file)",
			c->ep.user);
	if (c->ep.password) {
		i = 1;
		if (c->ep.user)
			auth[i++] = c->ep.user;
		auth[i++] = c->ep.password;
		cmds[n++] = (struct be_cmd){ (int)i, auth, NULL };
	}
	if (c->ep.db) {
		snprintf(db, sizeof(db), "%d", c->ep.db);
		select[1] = db;
		nselect = n;
		cmds[n++] = (struct be_cmd){ 2, select, NULL };
	}
	/* While the tracker is down it redirects nowhere, until a new gen. */
	if (c->tracker)
		redirect = be_tracker_redirect(c->tracker, &gen);
	c->track_gen = gen;
	if (redirect > 0) {
		snprintf(id, sizeof(id), "%lld", redirect);
		track[4] = id;
		ntrack = n;
		cmds[n++] = (struct be_cmd){ 6, track, NULL };
	}
	if (c->ep.sentinel) {
		nrole = n;
		cmds[n++] = (struct be_cmd){ 1, role, NULL };
	}
	if (!n)
		return 0;
	if (format_commands(cmds, n, &buf, &len) < 0)
		return set_error(c, -ENOMEM, "out of memory");
	ret = exchange(c, buf, len, n, replies, deadline);
	explicit_bzero(buf, len);
	free(buf);
	if (ret < 0)
		return ret;
	/* Replies come in the order sent: AUTH, SELECT, TRACKING, ROLE. */
	if (is_maxclients_reply(replies[0]))
		ret = reply_error(c, -EAGAIN, replies[0]);
	else if (c->ep.password && is_error_reply(replies[0]))
		ret = reply_error(c, -EACCES, replies[0]);
	else if (c->ep.db && is_error_reply(replies[nselect]))
		ret = reply_error(c, -EINVAL, replies[nselect]);
	else if (c->ep.sentinel)
		ret = check_role(c, replies[nrole]);
	/*
	 * After a failover the tracker may still be subscribed on the old
	 * master, where its id lives: wait for it to move (it does within
	 * a tick of seeing the new generation) rather than work untracked.
	 */
	if (ret == 0 && redirect > 0 && c->ep.sentinel &&
	    error_starts_with(replies[ntrack],
			      "ERR The client ID you want redirect to"))
		ret = reply_error(c, -EAGAIN, replies[ntrack]);
	/* Refused (ACL, old server): the connection works untracked. */
	if (ret == 0 && redirect > 0 && is_error_reply(replies[ntrack]))
		be_tracker_disable(c->tracker, replies[ntrack]->str);
	free_replies(replies, n);
	return ret;
}

/*
 * The server asked for a client certificate: waits (up to TLS_SETTLE_NS)
 * for its ticket or its alert about ours before anything is written,
 * since our write would make a refusing server reset the connection and
 * destroy the alert that says why.  A server that hands out tickets
 * answers within a round trip; a resumed session is not asked again.  0
 * (accepted, or no word: let the first command tell) or -errno.
 */
static int settle_tls(struct be_conn *c, int64_t deadline)
{
	int64_t until = be_mono_ns() + TLS_SETTLE_NS;
	short want;
	int ret;

	if (until > deadline)
		until = deadline;
	for (;;) {
		ret = be_tls_settle(c->tls, &want, c->errstr,
				    sizeof(c->errstr));
		if (ret != -EAGAIN)
			return ret;
		ret = wait_fd(c->fd, want, until);
		if (ret == -ETIMEDOUT)
			return 0;
		if (ret < 0)
			return set_errno_error(c, ret);
	}
}

/* Runs the TLS handshake on the connected socket of 'c'. 0 or -errno. */
static int start_tls(struct be_conn *c, int64_t deadline)
{
	short want;
	int ret;

	/* A sentinel's own endpoint, or the master it named: that host. */
	c->tls = be_tls_conn_new_host(c->ep.tls_ctx, c->fd,
				      c->ep.sentinel ? c->host : c->ep.host);
	if (!c->tls)
		return set_error(c, -ENOMEM, "out of memory");
	for (;;) {
		ret = be_tls_handshake(c->tls, &want, c->errstr,
				       sizeof(c->errstr));
		if (ret == 0)
			break;
		if (ret != -EAGAIN)
			return ret;
		ret = wait_fd(c->fd, want, deadline);
		if (ret == -ETIMEDOUT)
			return set_error(
				c, ret,
				"timed out in the TLS handshake (does the server speak TLS on this port?)");
		if (ret < 0)
			return set_errno_error(c, ret);
	}
	return be_tls_cert_asked(c->tls) ? settle_tls(c, deadline) : 0;
}

/*
 * Connects 'c' if it is not connected: socket, TLS, AUTH, SELECT.  0 or
 * -errno.
 */
static int ensure_connected(struct be_conn *c, int64_t deadline)
{
	int fd, ret;

	/* Sentinel: nothing goes to a master being failed over. */
	if (c->ep.sentinel && be_sentinel_holding(c->ep.sentinel)) {
		be_conn_close(c);
		return set_error(c, -EAGAIN,
				 "a failover of '%s' is in progress",
				 be_sentinel_master_name(c->ep.sentinel));
	}
	if (c->fd >= 0)
		return 0;
	if (c->ep.tls && !c->ep.tls_ctx)
		return set_error(c, -EINVAL, "rediss:// without a TLS context");
	if (c->ep.unix_path)
		fd = connect_unix(c, deadline);
	else if (c->ep.sentinel)
		fd = connect_sentinel(c, deadline);
	else if (c->ep.host)
		fd = connect_tcp(c, c->ep.host, c->ep.port, deadline);
	else
		return set_error(c, -EINVAL, "no host and no socket path");
	if (fd < 0)
		return fd;
	c->fd = fd;
	c->marks = 0;
	c->reader = be_resp_reader_new();
	if (!c->reader) {
		be_conn_close(c);
		return set_error(c, -ENOMEM, "out of memory");
	}
	ret = c->ep.tls ? start_tls(c, deadline) : 0;
	if (ret < 0) {
		be_conn_close(c);
		return ret;
	}
	ret = handshake(c, deadline);
	if (ret < 0) {
		be_conn_close(c);
		return ret;
	}
	/* The keys the old connection read are no longer tracked. */
	if (c->tracker && c->connected_before)
		be_tracker_lost(c->tracker);
	c->connected_before = true;
	c->connects++;
	return 0;
}

int be_conn_connect(struct be_conn *c)
{
	const char *ping[1] = { "PING" };
	struct be_cmd cmd = { 1, ping, NULL };
	int64_t deadline = be_mono_ns() + c->timeout_ns;
	redisReply *reply;
	size_t len;
	char *buf;
	int ret;

	if (c->route)
		return be_route_connect(c->route);
	if (c->fd >= 0)
		return 0;
	c->errstr[0] = '\0';
	ret = ensure_connected(c, deadline);
	if (ret < 0)
		return ret;
	/*
	 * The server may not have said a word yet (no AUTH, no SELECT): a
	 * PING tells a missing password (NOAUTH) or a full server now rather
	 * than at the first command.  Any other reply (PONG, LOADING, NOPERM
	 * for a user without +ping) means we are connected.
	 */
	if (format_commands(&cmd, 1, &buf, &len) < 0) {
		be_conn_close(c);
		return set_error(c, -ENOMEM, "out of memory");
	}
	ret = exchange(c, buf, len, 1, &reply, deadline);
	free(buf);
	if (ret == 0) {
		if (error_starts_with(reply, "NOAUTH"))
			ret = reply_error(c, -EACCES, reply);
		else if (is_maxclients_reply(reply))
			ret = reply_error(c, -EAGAIN, reply);
		freeReplyObject(reply);
	}
	if (ret < 0)
		be_conn_close(c);
	return ret;
}

bool be_conn_err_retryable(int err)
{
	switch (-err) {
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case ETIMEDOUT:
	case EAGAIN:
	case ENOENT:
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ENETDOWN:
	case EHOSTDOWN:
		return true;
	default:
		return false;
	}
}

/*
 * One attempt of a call: connect if needed, one round trip.  Returns 0,
 * -EAGAIN for a transient error reply (replies freed, reason set), or the
 * -errno of the failure.  Closes the connection on any failure.
 */
static int attempt(struct be_conn *c, const char *buf, size_t len, size_t n,
		   redisReply **replies, int64_t deadline, bool retry)
{
	size_t i;
	int ret;

	ret = ensure_connected(c, deadline);
	if (ret == 0)
		ret = exchange(c, buf, len, n, replies, deadline);
	if (ret < 0) {
		be_conn_close(c);
		return ret;
	}
	if (!retry)
		return 0;
	for (i = 0; i < n; i++) {
		/* Sentinel: a demoted master; the retry resolves again. */
		if (be_reply_is_transient(replies[i]) ||
		    (c->ep.sentinel &&
		     error_starts_with(replies[i], "READONLY"))) {
			reply_error(c, -EAGAIN, replies[i]);
			free_replies(replies, n);
			be_conn_close(c);
			return -EAGAIN;
		}
	}
	return 0;
}

/* Sleeps 'ns' nanoseconds, but not past 'deadline'. */
static void backoff_sleep(int64_t ns, int64_t deadline)
{
	int64_t left = deadline - be_mono_ns();
	struct timespec ts;

	if (ns > left)
		ns = left;
	if (ns <= 0)
		return;
	ts.tv_sec = ns / NSEC_PER_SEC;
	ts.tv_nsec = ns % NSEC_PER_SEC;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Runs the formatted pipeline 'buf' of 'n' commands with retries as
 * conn.h describes.
 */
static int run(struct be_conn *c, const char *buf, size_t len, size_t n,
	       redisReply **replies, unsigned int flags)
{
	bool retry = !(flags & BE_CMD_NORETRY);
	int64_t deadline = be_mono_ns() + c->timeout_ns;
	int64_t backoff = BACKOFF_FIRST_NS;
	char last[ERRSTR_MAX] = "";
	int ret;

	c->errstr[0] = '\0';
	/* The tracker reconnected: redirect to its new connection. */
	if (c->tracker && c->fd >= 0 &&
	    c->track_gen != be_tracker_gen(c->tracker) &&
	    !be_tracker_disabled(c->tracker))
		be_conn_close(c);
	/* The sentinels name another master now. */
	if (be_conn_stale(c))
		be_conn_close(c);
	for (;;) {
		ret = attempt(c, buf, len, n, replies, deadline, retry);
		if (ret == 0)
			return 0;
		if (!retry || !be_conn_err_retryable(ret))
			return ret;
		/* The attempt cut short by the deadline says less. */
		if (ret != -ETIMEDOUT || !last[0])
			snprintf(last, sizeof(last), "%s", c->errstr);
		if (be_mono_ns() >= deadline)
			break;
		backoff_sleep(backoff, deadline);
		backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS
						       : backoff * 2;
	}
	return set_error(c, -ETIMEDOUT,
			 "timed out after %.1f s (last error: %s)",
			 (double)c->timeout_ns / NSEC_PER_SEC, last);
}

/*
 * A pipeline over a cluster: the router's, with the marks kept while no
 * node was connected again (a new server may lack the scripts they say).
 */
static int route_pipeline(struct be_conn *c, const struct be_cmd *cmds,
			  size_t n, struct redisReply **replies,
			  unsigned int flags)
{
	int ret;

	if (be_route_connects(c->route) != c->route_connects)
		c->marks = 0;
	ret = be_route_pipeline(c->route, cmds, n, replies, flags);
	if (be_route_connects(c->route) != c->route_connects) {
		c->marks = 0;
		c->route_connects = be_route_connects(c->route);
	}
	return ret;
}

int be_conn_pipeline(struct be_conn *c, const struct be_cmd *cmds, size_t n,
		     struct redisReply **replies, unsigned int flags)
{
	size_t len;
	char *buf;
	size_t i;
	int ret;

	for (i = 0; i < n; i++)
		replies[i] = NULL;
	if (!n)
		return 0;
	if (c->route)
		return route_pipeline(c, cmds, n, replies, flags);
	if (format_commands(cmds, n, &buf, &len) < 0)
		return set_error(c, -ENOMEM, "out of memory");
	ret = run(c, buf, len, n, replies, flags);
	free(buf);
	return ret;
}

int be_conn_command(struct be_conn *c, struct redisReply **reply, int argc,
		    const char **argv, const size_t *argvlen,
		    unsigned int flags)
{
	struct be_cmd cmd = { argc, argv, argvlen };

	*reply = NULL;
	return be_conn_pipeline(c, &cmd, 1, reply, flags);
}

int be_conn_send(struct be_conn *c, int argc, const char **argv,
		 const size_t *argvlen)
{
	struct be_cmd cmd = { argc, argv, argvlen };
	int64_t deadline = be_mono_ns() + c->timeout_ns;
	size_t len;
	char *buf;
	int ret;

	if (c->route)
		return set_error(c, -EOPNOTSUPP, "not over a cluster");
	c->errstr[0] = '\0';
	ret = ensure_connected(c, deadline);
	if (ret < 0)
		return ret;
	if (format_commands(&cmd, 1, &buf, &len) < 0)
		return set_error(c, -ENOMEM, "out of memory");
	ret = write_all(c, buf, len, deadline);
	free(buf);
	if (ret < 0)
		be_conn_close(c);
	return ret;
}

int be_conn_recv(struct be_conn *c, struct redisReply **reply, int wait_ms)
{
	int64_t deadline = be_mono_ns() + (int64_t)wait_ms * NSEC_PER_MSEC;
	int ret;

	*reply = NULL;
	if (c->fd < 0)
		return set_error(c, -ENOTCONN, "not connected");
	ret = next_reply(c, reply, deadline);
	/* Nothing yet is no error: a half-read reply stays in the reader. */
	if (ret < 0 && ret != -ETIMEDOUT)
		be_conn_close(c);
	return ret;
}

unsigned int be_conn_marks(const struct be_conn *c)
{
	return c->marks;
}

void be_conn_mark(struct be_conn *c, unsigned int bits)
{
	c->marks |= bits;
}

int be_conn_fd(const struct be_conn *c)
{
	return c->fd;
}

bool be_conn_partial(const struct be_conn *c)
{
	return (c->reader && c->reader->pos < c->reader->len) ||
	       (c->tls && be_tls_pending(c->tls));
}

bool be_conn_tls_resumed(const struct be_conn *c)
{
	return c->tls && be_tls_resumed(c->tls);
}

bool be_conn_is_cluster(const struct be_conn *c)
{
	return c->route != NULL;
}

int be_conn_masters(struct be_conn *c, unsigned int *n)
{
	if (!c->route) {
		*n = 1;
		return 0;
	}
	return be_route_masters(c->route, n);
}

int be_conn_pipeline_at(struct be_conn *c, unsigned int i,
			const struct be_cmd *cmds, size_t n,
			struct redisReply **replies, unsigned int flags,
			char *where, size_t wherelen)
{
	size_t k;

	if (c->route)
		return be_route_pipeline_at(c->route, i, cmds, n, replies,
					    flags, where, wherelen);
	for (k = 0; k < n; k++)
		replies[k] = NULL;
	if (i != 0)
		return set_error(c, -ESTALE, "one server only");
	if (where)
		snprintf(where, wherelen, "%s", c->ep.host ? c->ep.host : "");
	return be_conn_pipeline(c, cmds, n, replies, flags);
}

int be_conn_command_at(struct be_conn *c, unsigned int i,
		       struct redisReply **reply, int argc, const char **argv,
		       const size_t *argvlen, unsigned int flags)
{
	struct be_cmd cmd = { argc, argv, argvlen };

	return be_conn_pipeline_at(c, i, &cmd, 1, reply, flags, NULL, 0);
}

uint64_t be_conn_connects(const struct be_conn *c)
{
	return c->connects;
}

bool be_conn_stale(const struct be_conn *c)
{
	return c->ep.sentinel && c->fd >= 0 &&
	       c->master_gen != be_sentinel_gen(c->ep.sentinel);
}

unsigned int be_conn_slot(const struct be_conn *c)
{
	return c->slot;
}

void be_conn_set_slot(struct be_conn *c, unsigned int slot)
{
	c->slot = slot;
}

void be_conn_set_tracker(struct be_conn *c, struct be_tracker *t)
{
	c->tracker = t;
	if (c->route)
		be_route_set_tracker(c->route, t);
}

unsigned int be_conn_sweep_links(struct be_conn *c)
{
	return c->route ? be_route_sweep(c->route) : 0;
}
