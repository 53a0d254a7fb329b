/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the readers of Sentinel's replies (backend/sentinel.c): SENTINEL
 * get-master-addr-by-name, SENTINEL master and ROLE, on every reply the
 * transport's reader makes of the fuzzer's bytes.  A host that is
 * returned must be a terminated string that fits, a port in 1..65535.
 */
#include <errno.h>

#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "resp.h"
#include "sentinel.h"

static void check(const redisReply *r)
{
	char host[256], role[32];
	long long epoch = -1;
	bool failing = false;
	int port = 0, ret;

	memset(host, 'x', sizeof(host));
	ret = be_sentinel_parse_addr(r, host, sizeof(host), &port);
	FUZZ_CHECK(ret == 1 || ret == 0 || ret == -EPROTO);
	if (ret == 1) {
		FUZZ_CHECK(memchr(host, '\0', sizeof(host)));
		FUZZ_CHECK(port >= 1 && port <= 65535);
	}
	ret = be_sentinel_parse_master(r, &failing, &epoch);
	FUZZ_CHECK(ret == 0 || ret == -EPROTO);
	memset(role, 'x', sizeof(role));
	ret = be_role_parse(r, role, sizeof(role));
	FUZZ_CHECK(ret == 1 || ret == 0 || ret == -EPROTO);
	if (ret == 0)
		FUZZ_CHECK(memchr(role, '\0', sizeof(role)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd = be_resp_reader_new();
	void *reply;
	int n;

	FUZZ_CHECK(rd);
	if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
		for (n = 0; n < 16; n++) {
			reply = NULL;
			if (redisReaderGetReply(rd, &reply) != REDIS_OK ||
			    !reply)
				break;
			check(reply);
			freeReplyObject(reply);
		}
	}
	be_resp_reader_free(rd);
	return 0;
}
