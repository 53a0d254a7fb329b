/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the pure parts of backend/cluster.c: the CLUSTER SLOTS reader on
 * every reply the transport's reader makes of the fuzzer's bytes, the
 * MOVED/ASK reader on the bytes themselves, and the first key of a
 * command made of the bytes split at NUL.  A map must name only nodes it
 * holds, a redirect a slot below 16384, a terminated host and a port in
 * 1..65535, a key a part of the command.
 */
#include <errno.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "conn.h"
#include "fuzz.h"
#include "resp.h"

static struct be_slot_map map;

static void check_slots(const redisReply *r)
{
	unsigned int s, served = 0;
	int ret;

	ret = be_cluster_slots_parse(r, "asked", &map);
	FUZZ_CHECK(ret == -EPROTO || ret == -ENOSPC ||
		   (ret >= 0 && ret <= BE_CLUSTER_SLOTS));
	if (ret < 0)
		return;
	FUZZ_CHECK(map.nnodes <= BE_CLUSTER_NODES_MAX);
	for (s = 0; s < BE_CLUSTER_SLOTS; s++) {
		if (map.slot[s] == BE_SLOT_NONE)
			continue;
		FUZZ_CHECK(map.slot[s] < map.nnodes);
		served++;
	}
	FUZZ_CHECK(served == (unsigned int)ret);
	for (s = 0; s < map.nnodes; s++) {
		FUZZ_CHECK(memchr(map.nodes[s].host, '\0',
				  sizeof(map.nodes[s].host)));
		FUZZ_CHECK(map.nodes[s].port >= 1 &&
			   map.nodes[s].port <= 65535);
	}
}

static void check_redirect(const uint8_t *data, size_t size)
{
	char host[64];
	unsigned int slot = 0;
	int port = 0;
	enum be_redirect k;

	memset(host, 'x', sizeof(host));
	k = be_redirect_parse((const char *)data, size, &slot, host,
			      sizeof(host), &port);
	if (k == BE_REDIRECT_NONE)
		return;
	FUZZ_CHECK(k == BE_REDIRECT_MOVED || k == BE_REDIRECT_ASK);
	FUZZ_CHECK(slot < BE_CLUSTER_SLOTS);
	FUZZ_CHECK(memchr(host, '\0', sizeof(host)));
	FUZZ_CHECK(port >= 1 && port <= 65535);
}

static void check_first_key(const uint8_t *data, size_t size)
{
	const char *argv[16];
	size_t lens[16], i = 0, start = 0, len;
	struct be_cmd cmd = { 0, argv, lens };
	const char *key;

	for (i = 0; i <= size && cmd.argc < 16; i++) {
		if (i < size && data[i] != '\0')
			continue;
		argv[cmd.argc] = (const char *)data + start;
		lens[cmd.argc++] = i - start;
		start = i + 1;
	}
	if (!be_cmd_first_key(&cmd, &key, &len))
		return;
	FUZZ_CHECK(key >= (const char *)data &&
		   key + len <= (const char *)data + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd = be_resp_reader_new();
	void *reply;
	int n;

	FUZZ_CHECK(rd);
	check_redirect(data, size);
	check_first_key(data, size);
	if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
		for (n = 0; n < 16; n++) {
			reply = NULL;
			if (redisReaderGetReply(rd, &reply) != REDIS_OK ||
			    !reply)
				break;
			check_slots(reply);
			freeReplyObject(reply);
		}
	}
	be_resp_reader_free(rd);
	return 0;
}
