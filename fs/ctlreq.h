/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket's request parser (ctl.c serves the socket): one line
 * of JSON, {"cmd": "...", ...}, into a command and its arguments.  Pure,
 * so that tests/fuzz/fuzz_ctl.c fuzzes exactly what the socket reads.
 * Thread-safe on distinct requests.
 */
#ifndef FS_CTLREQ_H
#define FS_CTLREQ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum fs_ctl_cmd {
	FS_CTL_STATUS = 0,
	FS_CTL_MODE,
	FS_CTL_EXPORT,
	FS_CTL_VERIFY,
	FS_CTL_PREPARE_UNMOUNT,
	FS_CTL_METRICS,
	FS_CTL_REPAIR,
	FS_CTL_BACKFILL, /* its arguments: backfill.h reads 'json'; the last */
};

/** A parsed request; zero-initialisable. */
struct fs_ctl_req {
	enum fs_ctl_cmd cmd;
	/* mode: the "mode" string (borrowed from 'json'; NULL when absent
	 * or not a string: the command says why) and "force" (true only
	 * for JSON true). */
	const char *mode;
	bool force;
	json_t *json; /* the request (one reference owned here) */
};

/**
 * Parses the request 'line' (NUL-terminated, without its newline) into
 * 'req'.  0, or -EINVAL with the reason for the client in 'err' of
 * 'errlen' bytes: "bad request: <jansson's reason>", "bad request: not a
 * JSON object", "bad request: no \"cmd\"", "unknown command '<cmd>'".
 * On 0 the caller calls fs_ctl_req_release().
 */
int fs_ctl_req_parse(const char *line, struct fs_ctl_req *req, char *err,
		     size_t errlen);

/** Drops the JSON 'req' holds and zeroes it. */
void fs_ctl_req_release(struct fs_ctl_req *req);

#endif /* FS_CTLREQ_H */
