/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate mode MODE --mount MOUNTPOINT [--force]: changes a
 * mount's migration mode at run time, through its control socket.  The
 * daemon checks the step (DESIGN.md, "Modes"): a step that could serve
 * stale data is refused with the reason and what to run first, unless
 * --force; the stores the new mode uses are probed before and after, and
 * a mode that is not stable after the change is undone.
 *
 * dual-write -> redis-first needs an empty repair journal; the daemon
 * replays it in the background every half second (after a files period,
 * every name written meanwhile is in it), so this command asks for a
 * repair pass first rather than fail on what is a moment's work.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "migrate_i.h"

#define REPAIR_TRIES	5
#define REPAIR_PAUSE_US 200000

static const char *const modes[] = { "files", "dual-write", "redis-first",
				     "redis-only" };

struct mode_cmd {
	const char *mount;
	const char *ctl_dir;
	const char *mode;
	bool force;
	bool json;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME
		" mode MODE --mount MOUNTPOINT [--force] [--json]\n"
		"\n"
		"Changes the migration mode of the sessfs mount on MOUNTPOINT while the\n"
		"application runs.  MODE: files, dual-write, redis-first, redis-only.\n"
		"A step that could serve stale data is refused with its reason and what\n"
		"to run first:\n"
		"  redis-only -> dual-write/files   run 'mode redis-first', 'export' first\n"
		"  redis-first -> dual-write/files  run 'export --mount' first\n"
		"  files -> redis-first/redis-only  go through dual-write\n"
		"  dual-write -> redis-first        the repair journal must be empty and\n"
		"                                   a copy + verify done since the last\n"
		"                                   files period ('verify --mount')\n"
		"\n" MIG_ONLINE_OPTIONS_HELP MIG_FLEET_OPTION_HELP
		"  --force                skip the checks above (the stores are still\n"
		"                         probed); only when you know the data is current\n"
		"  --json                 print the daemon's reply as JSON\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 changed (or already in MODE), 1 refused or failed, 2\n"
		"usage.\n");
}

static bool valid_mode(const char *mode)
{
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(mode, modes[i]) == 0)
			return true;
	}
	return false;
}

static int parse_args(struct mode_cmd *m, int argc, char **argv)
{
	enum {
		OPT_FORCE = MIG_OPT_FIRST_FREE,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_ONLINE_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case MIG_OPT_MOUNT:
			m->mount = optarg;
			break;
		case MIG_OPT_CTL_DIR:
			m->ctl_dir = optarg;
			break;
		case OPT_FORCE:
			m->force = true;
			break;
		case OPT_JSON:
			m->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return mig_bad_option(c, argv, "mode");
		}
	}
	if (argc - optind != 1)
		return error(
			"mode takes one MODE (files, dual-write, redis-first or redis-only); see '" MIG_PROGNAME
			" mode --help'");
	m->mode = argv[optind];
	if (!valid_mode(m->mode))
		return error(
			"invalid mode '%s': files, dual-write, redis-first or redis-only",
			m->mode);
	if (!m->mount)
		return error("mode needs --mount MOUNTPOINT; see '" MIG_PROGNAME
			     " mode --help'");
	return 0;
}

/*
 * Before dual-write -> redis-first: repair passes until the journal is
 * empty (or REPAIR_TRIES passes); the daemon's guard judges the rest.
 * Only a failure to talk to the daemon is an error.
 */
static int repair_first(const struct mode_cmd *m, struct mig_ctl *ctl)
{
	json_t *reply = NULL;
	json_int_t left;
	const char *from;
	int i, ret;

	if (m->force || strcmp(m->mode, "redis-first") != 0)
		return 0;
	ret = mig_ctl_simple(ctl, "status", NULL, &reply);
	from = json_string_value(json_object_get(reply, "mode"));
	left = json_integer_value(json_object_get(reply, "journal"));
	if (ret || !from || strcmp(from, "dual-write") != 0 || left == 0) {
		json_decref(reply);
		return ret;
	}
	for (i = 0; i < REPAIR_TRIES && left > 0 && !ret; i++) {
		if (i)
			usleep(REPAIR_PAUSE_US);
		json_decref(reply);
		reply = NULL;
		ret = mig_ctl_simple(ctl, "repair", "repair", &reply);
		left = json_integer_value(json_object_get(reply, "journal"));
	}
	json_decref(reply);
	return ret;
}

/* Prints the outcome of the request; returns the exit code. */
static int report(const struct mode_cmd *m, const struct mig_ctl *ctl,
		  json_t *reply)
{
	bool ok = json_is_true(json_object_get(reply, "ok"));
	const char *from = json_string_value(json_object_get(reply, "from"));
	double secs = json_number_value(json_object_get(reply, "seconds"));

	if (m->json) {
		json_dumpf(reply, stdout, JSON_PRESERVE_ORDER);
		printf("\n");
	}
	if (!ok) {
		error("%s", mig_ctl_error(reply));
		return MIG_EXIT_DIFF;
	}
	if (m->json)
		return MIG_EXIT_OK;
	if (from && strcmp(from, m->mode) == 0)
		printf("%s: already in mode %s\n", ctl->mount, m->mode);
	else
		printf("%s: mode %s -> %s in %.3f s%s\n", ctl->mount,
		       from ? from : "?", m->mode, secs,
		       m->force ? " (forced: guards skipped)" : "");
	return MIG_EXIT_OK;
}

int cmd_mode(int argc, char **argv)
{
	struct mode_cmd m = { 0 };
	struct mig_ctl ctl;
	json_t *req, *reply = NULL;
	int ret, code;

	if (mig_fleet_wanted(argc, argv))
		return cmd_fleet_mode(argc, argv);
	ret = parse_args(&m, argc, argv);
	if (ret)
		return ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
	code = MIG_EXIT_DIFF;
	if (mig_ctl_open(&ctl, m.mount, m.ctl_dir) || repair_first(&m, &ctl))
		goto out_close;
	req = json_pack("{s:s, s:s, s:b}", "cmd", "mode", "mode", m.mode,
			"force", m.force);
	if (!req) {
		error("out of memory");
		goto out_close;
	}
	ret = mig_ctl_call(&ctl, req, "mode", &reply);
	json_decref(req);
	if (!ret)
		code = report(&m, &ctl, reply);
	json_decref(reply);
out_close:
	mig_ctl_close(&ctl);
	return code;
}
