/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Redis URLs as the user writes them:
 *
 *   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0 by default)
 *   rediss://...                                  (the same, over TLS: tls.h)
 *   unix:///path/to/redis.sock[?db=N]
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER[/db]
 *   rediss-sentinel://...                         (TLS to sentinels and master)
 *   redis-cluster://[[user]:password@]host[:port][,host[:port]...]
 *   rediss-cluster://...                          (TLS to every node)
 *
 * In a Sentinel URL the hosts are the sentinels (port 26379 by default),
 * MASTER the name they monitor the master by, and the user and password
 * the master's (the sentinels' own password comes from a file:
 * be_sentinel_set_password()).  A master name holding '@', '/', '?' or
 * '#' is percent-encoded.  In a Cluster URL the hosts are seed nodes
 * (port 6379 by default): any that answers gives the slot map
 * (cluster.h); a cluster has db 0 only, so no db is taken.
 *
 * user, password and path are percent-decoded.  An IPv6 host is written in
 * brackets (redis://[::1]:6379).  Anything else is refused with a one-line
 * message naming the part that is wrong.
 */
#ifndef BACKEND_URL_H
#define BACKEND_URL_H

#include <stddef.h>

struct be_endpoint;

/**
 * Parses 'url' into 'ep' (zeroed first; its strings are new, free them with
 * be_endpoint_release()).  Returns 0, or -EINVAL and writes a one-line
 * reason (no trailing newline, e.g. "invalid port '70000'") into 'err' of
 * 'errlen' bytes.  A rediss:// URL sets 'ep->tls'; its context is the
 * caller's to make (be_tls_new()).  A Sentinel URL sets 'ep->sentinel'
 * (a new struct be_sentinel, sentinel.h) and leaves 'ep->host' NULL; a
 * Cluster URL sets 'ep->cluster' (cluster.h) and leaves 'ep->host' NULL.
 * Pure; thread-safe.
 */
int be_url_parse(const char *url, struct be_endpoint *ep, char *err,
		 size_t errlen);

/**
 * Returns the URL of 'ep' without its password (the user name is kept), as
 * shown in /proc/mounts: "redis://alice@127.0.0.1:6379/0",
 * "rediss://127.0.0.1:6379/0",
 * "unix:///run/redis.sock?db=2",
 * "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
 * "redis-cluster://10.0.0.1:7000,10.0.0.2:7000".  New string, or NULL on
 * ENOMEM.
 */
char *be_url_display(const struct be_endpoint *ep);

/**
 * Overwrites the password of the redis://, rediss://, redis-sentinel://,
 * rediss-sentinel://, redis-cluster:// or rediss-cluster:// URL 'url' in
 * place
 * with as many '*' (the user name stays), so that a URL given on the
 * command line stops showing it in ps and /proc/PID/cmdline once the
 * program has parsed it.  Anything else is left alone.  Pure.
 */
void be_url_hide_password(char *url);

/**
 * Reads a password from the first line of the file 'path' (trailing
 * newline and CR removed) into '*password' (new string).  0, or -errno with
 * a reason in 'err' ("cannot read password file '/x': No such file or
 * directory", "password file '/x' is empty").
 */
int be_password_file_read(const char *path, char **password, char *err,
			  size_t errlen);

#endif /* BACKEND_URL_H */
