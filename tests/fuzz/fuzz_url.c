/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the Redis URL parser (backend/url.c), as the mount and
 * sessfs-migrate call it on the 'redis=' option: a URL that parses must
 * display without its password, parse again from that display to the
 * same address, and have its password hidden in place without changing
 * its length.
 */
#include <hiredis/hiredis.h>

#include "conn.h"
#include "fuzz.h"
#include "sentinel.h"
#include "url.h"

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct be_endpoint ep, again;
	char err[256], err2[256], *url, *shown;
	size_t len;

	url = fuzz_str(data, size);
	len = strlen(url);
	if (be_url_parse(url, &ep, err, sizeof(err)) == 0) {
		shown = be_url_display(&ep);
		FUZZ_CHECK(shown);
		if (be_url_parse(shown, &again, err2, sizeof(err2)) == 0) {
			FUZZ_CHECK(same(ep.host, again.host));
			FUZZ_CHECK(same(ep.unix_path, again.unix_path));
			FUZZ_CHECK(ep.port == again.port);
			FUZZ_CHECK(ep.db == again.db);
			FUZZ_CHECK(ep.tls == again.tls);
			FUZZ_CHECK(!ep.sentinel == !again.sentinel);
			be_endpoint_release(&again);
		} else {
			fprintf(stderr,
				"'%s' parsed, its display '%s' not: %s\n", url,
				shown, err2);
			FUZZ_CHECK(!"the display of a parsed URL parses");
		}
		free(shown);
		be_endpoint_release(&ep);
	} else {
		FUZZ_CHECK(err[0] && !strchr(err, '\n'));
	}
	be_url_hide_password(url);
	FUZZ_CHECK(strlen(url) == len);
	free(url);
	return 0;
}
