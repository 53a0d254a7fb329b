/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket's request parser; see ctlreq.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctlreq.h"

static const struct {
	const char *name;
	enum fs_ctl_cmd cmd;
} commands[] = {
	{ "status", FS_CTL_STATUS },
	{ "mode", FS_CTL_MODE },
	{ "export", FS_CTL_EXPORT },
	{ "verify", FS_CTL_VERIFY },
	{ "prepare-unmount", FS_CTL_PREPARE_UNMOUNT },
	{ "metrics", FS_CTL_METRICS },
	{ "repair", FS_CTL_REPAIR },
	{ "backfill", FS_CTL_BACKFILL },
};

int fs_ctl_req_parse(const char *line, struct fs_ctl_req *req, char *err,
		     size_t errlen)
{
	json_error_t jerr;
	const char *cmd;
	size_t i;

	memset(req, 0, sizeof(*req));
	req->json = json_loads(line, 0, &jerr);
	if (!req->json || !json_is_object(req->json)) {
		snprintf(err, errlen, "bad request: %s",
			 req->json ? "not a JSON object" : jerr.text);
		goto out_release;
	}
	cmd = json_string_value(json_object_get(req->json, "cmd"));
	if (!cmd) {
		snprintf(err, errlen, "bad request: no \"cmd\"");
		goto out_release;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		snprintf(err, errlen, "unknown command '%s'", cmd);
		goto out_release;
	}
	req->cmd = commands[i].cmd;
	req->mode = json_string_value(json_object_get(req->json, "mode"));
	req->force = json_is_true(json_object_get(req->json, "force"));
	return 0;
out_release:
	fs_ctl_req_release(req);
	return -EINVAL;
}

void fs_ctl_req_release(struct fs_ctl_req *req)
{
	json_decref(req->json);
	memset(req, 0, sizeof(*req));
}
