/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate: the companion of the sessfs mount, offline (on a
 * directory and Redis) and online (through a mount's control socket).
 * main() stars the password of a URL in argv, then only finds the
 * subcommand and exits with what it returns; each subcommand lives in its
 * own file and parses its own options.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "acl.h"
#include "url.h"
#include "migrate_i.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

/* One line each: clang-format would fill the lines. */
/* clang-format off */
static const struct command commands[] = {
	{ "analyze", cmd_analyze },
	{ "copy", cmd_copy },
	{ "verify", cmd_verify },
	{ "export", cmd_export },
	{ "mode", cmd_mode },
	{ "status", cmd_status },
	{ "rollback", cmd_rollback },
	{ "backup", cmd_backup },
	{ "restore", cmd_restore },
	{ "cleanup", cmd_cleanup },
};
/* clang-format on */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME
		" [--version] [--help] <command> [<args>]\n"
		"\n"
		"Offline commands, on a session directory that no sessfs mount serves\n"
		"(under a mount, root reads the directory underneath it):\n"
		"  analyze DIR [URL]   count, size and date the sessions of DIR; estimate\n"
		"                      the Redis memory and, with URL, the copy time\n"
		"  copy DIR URL        copy the live sessions of DIR into Redis, never\n"
		"                      overwriting a newer value or a deleted session\n"
		"  verify DIR URL      compare the sessions of DIR with Redis\n"
		"  export URL DIR      write the sessions Redis holds into DIR, unmounted\n"
		"                      (the way back to files); remove the deleted ones\n"
		"  backup URL FILE     write every session of a prefix (bytes, meta, TTL,\n"
		"                      tombstones) into FILE, checksummed\n"
		"  restore FILE URL    check FILE whole, then write its sessions back,\n"
		"                      skipping expired ones and never a newer value\n"
		"  cleanup DIR URL --older-than AGE [--yes]  remove the old session\n"
		"                      files of DIR that Redis holds as new or newer\n"
		"                      (dry run without --yes; never under a mount)\n"
		"\n"
		"Online commands, through the control socket of the mount on MNT:\n"
		"  status --mount MNT  mode and health: Redis, repair journal, errors,\n"
		"                      layers (--metrics: its Prometheus metrics)\n"
		"  mode MODE --mount MNT  change the mode at run time (files,\n"
		"                      dual-write, redis-first, redis-only)\n"
		"  copy --mount MNT    the daemon copies the files underneath into\n"
		"                      Redis under live traffic (--rate, --pause,\n"
		"                      --resume; resumed after a restart)\n"
		"  export --mount MNT  Redis -> the files underneath, with live traffic\n"
		"  verify --mount MNT  compare Redis and the files underneath\n"
		"  rollback --mount MNT  back to plain files from any mode, then unmount\n"
		"\n"
		"Fleet commands, through Redis, for every mount of --prefix on every host:\n"
		"  mode MODE --fleet URL  every host to MODE, each through its own guards\n"
		"  status --fleet URL  one line per host: mode, desired, health, journal\n"
		"  rollback --fleet URL  every host back to plain files (mode files)\n"
		"\n"
		"URL: redis://[[user]:password@]host[:port][/db], rediss://... (TLS: see a\n"
		"     command's --help for --tls-*), unix:///path[?db=N],\n"
		"     redis-sentinel://..., or a Redis Cluster:\n"
		"     redis-cluster://[[user]:password@]host[:port][,host[:port]...]\n"
		"     (rediss-cluster:// over TLS)\n"
		"Exit status: 0 ok, 1 differences or errors, 2 usage or unusable input.\n"
		"'" MIG_PROGNAME
		" <command> --help' describes a command's options.\n");
}

/* An ACL refusal (acl.h), once per command: what the operator must grant. */
static void report_acl(const char *msg)
{
	warning("%s; grant it to the redis user (docs/RUNBOOK.md, \"A Redis user for sessfs\")",
		msg);
}

/*
 * The copies of the arguments that hold a Redis URL with a password:
 * argv[i] points to the copy, and the original, which ps and
 * /proc/PID/cmdline show, has the password starred (url.h), as sessfs
 * does.  Kept for the whole run.
 */
static char **url_copies;

static void hide_passwords(int argc, char **argv)
{
	char *copy;
	int i;

	url_copies = calloc((size_t)argc, sizeof(*url_copies));
	for (i = 1; url_copies && i < argc; i++) {
		copy = strdup(argv[i]);
		if (!copy)
			break;
		be_url_hide_password(argv[i]);
		if (strcmp(copy, argv[i]) == 0) {
			free(copy);
			continue;
		}
		url_copies[i] = copy;
		argv[i] = copy;
	}
}

int main(int argc, char **argv)
{
	static char help_option[] = "--help";
	const char *name;
	size_t i;

	hide_passwords(argc, argv);
	be_acl_set_reporter(report_acl);
	/* Option errors are ours to print: mig_bad_option(). */
	opterr = 0;
	if (argc < 2) {
		usage(stderr);
		return MIG_EXIT_USAGE;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		usage(stdout);
		return MIG_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0) {
		printf(MIG_PROGNAME " " PACKAGE_VERSION "\n");
		return MIG_EXIT_OK;
	}
	/* "help copy" is "copy --help". */
	if (strcmp(name, "help") == 0) {
		if (argc < 3) {
			usage(stdout);
			return MIG_EXIT_OK;
		}
		name = argv[1] = argv[2];
		argv[2] = help_option;
		argc = 3;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	}
	error("unknown command '%s'; see '" MIG_PROGNAME " --help'", name);
	return MIG_EXIT_USAGE;
}
