/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the control socket's request parser (fs_ctl_req_parse(),
 * fs/ctlreq.c) on a line as the socket hands it over: cut at the first
 * newline, NUL-terminated (a NUL inside ends it early, as in ctl.c).  A
 * refused request has a one-line reason; an accepted one a known
 * command, and for "mode" the mode string of the JSON.
 */
#include <errno.h>

#include "ctlreq.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct fs_ctl_req req;
	char err[1024], *line;
	int ret;

	line = fuzz_str(data, nl ? (size_t)(nl - data) : size);
	memset(err, 0, sizeof(err));
	ret = fs_ctl_req_parse(line, &req, err, sizeof(err));
	if (ret == 0) {
		FUZZ_CHECK(req.json && json_is_object(req.json));
		FUZZ_CHECK(req.cmd <= FS_CTL_BACKFILL); /* the last one */
		FUZZ_CHECK(req.mode == json_string_value(json_object_get(
					       req.json, "mode")));
		fs_ctl_req_release(&req);
		FUZZ_CHECK(!req.json);
	} else {
		FUZZ_CHECK(ret == -EINVAL && err[0] && !req.json);
	}
	free(line);
	return 0;
}
