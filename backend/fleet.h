/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The keys of the migration mode in Redis, beside the sessions of a prefix
 * (DESIGN.md, "Fleet"): the markers a guard reads, the probe of a mode
 * change, and the fleet's desired mode, check request and heartbeats.
 * Every key holds "{sessfs}", so it is never a session name and all of
 * them share one Cluster slot.  Keys of prefix "app1:":
 *
 *   app1:{sessfs}:files             ns of the last entry to or exit from files
 *   app1:{sessfs}:verified          ns of the last clean verify (any host)
 *   app1:{sessfs}:verified:<host>   ns of the last clean verify of <host>
 *   app1:{sessfs}:probe:<host>      written, read and deleted by a probe
 *   app1:{sessfs}:fleet:desired     "VERSION MODE FLAGS": every mount follows
 *   app1:{sessfs}:fleet:check       "VERSION MODE FLAGS": can you take it?
 *   app1:{sessfs}:fleet:hosts       a hash: host id -> its last heartbeat
 *   app1:{sessfs}:fleet:hb:<host>   the host's heartbeat (JSON), with a TTL
 *
 * FLAGS is "-", "export" (a rollback: a host exports what its files lack
 * on the way down) or "unmount" (a rollback that, once in files, also
 * writes the host's unmount manifest and unmounts every sessfs layer of
 * its mountpoint, lazily; the daemon then exits).  A daemon older than
 * "unmount" reads such a request as no request.  Only commands the README's ACL grants are used (GET,
 * SET, DEL, PTTL, HSET, HDEL, HGETALL).  The functions send plain
 * commands on a connection the
 * caller owns; any thread that owns its connection may call them.
 */
#ifndef BACKEND_FLEET_H
#define BACKEND_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct be_conn;

#define BE_FLEET_MODE_MAX 16

/** A fleet request: the desired mode, or a check of one. */
struct be_fleet_req {
	long long version; /* 0: no request */
	char mode[BE_FLEET_MODE_MAX];
	bool exporting; /* FLAGS "export" or "unmount" */
	bool unmount; /* FLAGS "unmount" */
};

/**
 * Returns '<prefix>{sessfs}:<what>', or with 'host' not NULL
 * '<prefix>{sessfs}:<what>:<host>'.  New string; NULL on ENOMEM.
 */
char *be_fleet_key(const char *prefix, const char *what, const char *host);

/** SETs the marker 'key' to 'ns' (decimal).  0 or -errno (-EPERM: ACL). */
int be_fleet_marker_set(struct be_conn *c, const char *key, int64_t ns);

/** GETs the marker 'key' into '*ns' (0 when unset).  0 or -errno. */
int be_fleet_marker_get(struct be_conn *c, const char *key, int64_t *ns);

/**
 * Writes, reads back and deletes the probe key of 'host' under 'prefix'
 * (a mode change's check that Redis works).  One key per host: two hosts
 * that probe at once must not delete each other's.  0 or -errno.
 */
int be_fleet_probe(struct be_conn *c, const char *prefix, const char *host);

/**
 * Parses 'text' ("VERSION MODE FLAGS") into 'req'; pure.  0, or -EINVAL
 * (then 'req' has version 0).
 */
int be_fleet_req_parse(const char *text, struct be_fleet_req *req);

/**
 * Reads the request 'what' ("desired" or "check") of 'prefix' into 'req'
 * (version 0 when none).  0 or -errno.
 */
int be_fleet_req_get(struct be_conn *c, const char *prefix, const char *what,
		     struct be_fleet_req *req);

/**
 * Sets the request 'what' of 'prefix' to 'mode' with FLAGS 'flags' ("-",
 * "export" or "unmount") and a new version, one more than any request's
 * so far, returned in '*version'.  0 or -errno.
 */
int be_fleet_req_set(struct be_conn *c, const char *prefix, const char *what,
		     const char *mode, const char *flags, long long *version);

/**
 * Writes the heartbeat 'json' of 'host' with a TTL of 'ttl_ms', and keeps
 * it as the host's last word in the hosts hash.  0 or -errno.
 */
int be_fleet_heartbeat_put(struct be_conn *c, const char *prefix,
			   const char *host, const char *json, long ttl_ms);

/** A host of the fleet, as be_fleet_hosts() reads it. */
struct be_fleet_host {
	char *host;
	char *json; /* its last heartbeat, live or not */
	long long ttl_ms; /* of the live heartbeat; < 0: it went silent */
};

/**
 * Every host that joined the fleet of 'prefix', sorted by id: a new array
 * of '*n' entries in '*hosts', freed with be_fleet_hosts_free().  0 or
 * -errno.
 */
int be_fleet_hosts(struct be_conn *c, const char *prefix,
		   struct be_fleet_host **hosts, size_t *n);

void be_fleet_hosts_free(struct be_fleet_host *hosts, size_t n);

/** Removes 'host' and its heartbeat from the fleet of 'prefix'. */
int be_fleet_forget(struct be_conn *c, const char *prefix, const char *host);

#endif /* BACKEND_FLEET_H */
