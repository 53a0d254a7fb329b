/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of backend/acl.c: which error replies are ACL refusals (the
 * NOPERM code, a script's "can't run" and "can't access", nothing else),
 * one report per command whatever the number of refusals, the report on
 * one line with the command and Redis's reason, -EPERM.  Pure: the
 * replies are made here, no Redis needed.
 */
#include <errno.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "acl.h"
#include "testutil.h"

static char last[1024];
static int reports;

static void reporter(const char *msg)
{
	strncpy(last, msg, sizeof(last) - 1);
	reports++;
}

/* An error reply holding 'text' (borrowed: the reply is never freed). */
static redisReply error_reply(const char *text)
{
	redisReply r = { .type = REDIS_REPLY_ERROR };

	r.str = (char *)text;
	r.len = strlen(text);
	return r;
}

static void test_is_denial(void)
{
	redisReply r;

	r = error_reply(
		"NOPERM this user has no permissions to run the 'evalsha' command");
	CHECK(be_acl_is_denial(&r));
	r = error_reply(
		"NOPERM this user has no permissions to access one of the keys used as arguments");
	CHECK(be_acl_is_denial(&r));
	r = error_reply(
		"ERR The user executing the script can't run this command or subcommand script: ff1a, on @user_script:54.");
	CHECK(be_acl_is_denial(&r));
	r = error_reply(
		"ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 40b3, on @user_script:1.");
	CHECK(be_acl_is_denial(&r));
	r = error_reply("NOPERMISSION is not a code of ours");
	CHECK(!be_acl_is_denial(&r));
	r = error_reply("NOSCRIPT No matching script. Please use EVAL.");
	CHECK(!be_acl_is_denial(&r));
	r = error_reply("WRONGPASS invalid username-password pair");
	CHECK(!be_acl_is_denial(&r));
	r = error_reply("NOPERM");
	r.type = REDIS_REPLY_STRING; /* a value, not an error */
	CHECK(!be_acl_is_denial(&r));
	CHECK(!be_acl_is_denial(NULL));
}

static void test_once_per_command(void)
{
	redisReply r = error_reply(
		"NOPERM this user has no permissions to run the 'scan' command");
	redisReply s = error_reply(
		"ERR The user executing the script can't run\r\nthis");
	int i;

	CHECK(be_acl_denied("SCAN", &r) == -EPERM); /* no reporter yet */
	CHECK(reports == 0);
	be_acl_set_reporter(reporter);
	for (i = 0; i < 5; i++)
		CHECK(be_acl_denied("SCAN", &r) == -EPERM);
	CHECK(reports == 1);
	CHECK(strcmp(last,
		     "the redis user may not run SCAN: redis says 'NOPERM this user has no permissions to run the 'scan' command'") ==
	      0);
	CHECK(be_acl_denied("the put script", &s) == -EPERM);
	CHECK(be_acl_denied("the put script", &s) == -EPERM);
	CHECK(reports == 2);
	CHECK(strstr(last, "the put script") && !strchr(last, '\n') &&
	      !strchr(last, '\r'));
	be_acl_set_reporter(NULL);
}

int main(void)
{
	test_is_denial();
	test_once_per_command();
	return test_exit();
}
