/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate copy --mount MOUNTPOINT: the online backfill.  The
 * mount's daemon copies the sessions of its directory underneath into
 * Redis while the application runs (fs/backfill.h): each name under its
 * lock, never over a newer value or a tombstone, at a rate limit, and
 * resumed after a restart of the daemon.  This client starts, pauses,
 * resumes or re-rates it, and follows it until it is done, printing the
 * progress on a terminal and a JSON summary at the end.  The work is the
 * daemon's: killing this client stops nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "migrate_i.h"

#define POLL_MS 200 /* how often the progress is asked for */

struct backfill_cmd {
	const char *mount;
	const char *ctl_dir;
	const char *action; /* start, pause or resume */
	double rate; /* -1: not given */
	bool restart;
	bool wait; /* follow until done (start, resume) */
	bool json;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME
		" copy --mount MOUNTPOINT [--rate N] [--restart] [--no-wait] [--json]\n"
		"       " MIG_PROGNAME
		" copy --mount MOUNTPOINT --pause | --resume [--rate N]\n"
		"\n"
		"Online backfill: the daemon of the sessfs mount on MOUNTPOINT copies\n"
		"the sessions of its directory underneath into Redis while the\n"
		"application runs, each under the name's lock, so ordered with live\n"
		"requests; never over a newer value or a deleted session (tombstone).\n"
		"Runs in dual-write and redis-first.  The position is saved in the\n"
		"state dir: a restarted daemon (also after kill -9) goes on from it.\n"
		"Progress, speed and ETA: 'sessfs-migrate status --mount'.\n"
		"\n" MIG_ONLINE_OPTIONS_HELP
		"  --rate N               at most N sessions per second (0: no limit;\n"
		"                         default: the last rate, else no limit);\n"
		"                         given to a running copy, changes its rate\n"
		"  --restart              start from the first name again\n"
		"  --pause, --resume      pause or resume the daemon's copy\n"
		"  --no-wait              start it and return; do not follow it\n"
		"  --json                 print the daemon's backfill state as JSON\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 done (or paused as asked, or started with --no-wait)\n"
		"with no errors, 1 errors, refused, or paused while followed, 2 usage.\n");
}

static int parse_args(struct backfill_cmd *b, int argc, char **argv)
{
	enum {
		OPT_RATE = MIG_OPT_FIRST_FREE,
		OPT_RESTART,
		OPT_PAUSE,
		OPT_RESUME,
		OPT_NO_WAIT,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "restart", no_argument, NULL, OPT_RESTART },
		{ "pause", no_argument, NULL, OPT_PAUSE },
		{ "resume", no_argument, NULL, OPT_RESUME },
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_ONLINE_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_RATE:
			b->rate = strtod(optarg, &end);
			if (*end || end == optarg || !(b->rate >= 0))
				return error(
					"invalid --rate '%s': sessions per second, 0 for no limit",
					optarg);
			break;
		case OPT_RESTART:
			b->restart = true;
			break;
		case OPT_PAUSE:
		case OPT_RESUME:
			if (b->action)
				return error(
					"--pause and --resume exclude each other");
			b->action = c == OPT_PAUSE ? "pause" : "resume";
			break;
		case OPT_NO_WAIT:
			b->wait = false;
			break;
		case OPT_JSON:
			b->json = true;
			break;
		case MIG_OPT_MOUNT:
			b->mount = optarg;
			break;
		case MIG_OPT_CTL_DIR:
			b->ctl_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return mig_bad_option(c, argv, "copy");
		}
	}
	if (optind != argc)
		return error(
			"copy --mount takes no DIR or URL: the mount has its own; see '" MIG_PROGNAME
			" copy --help'");
	if (!b->mount)
		return error(
			"copy takes DIR and URL, or --mount MOUNTPOINT; see '" MIG_PROGNAME
			" copy --help'");
	if (b->restart && b->action)
		return error(
			"--restart starts a copy: not with --pause or --resume");
	/* A start of a running copy only sets its rate (--rate). */
	if (!b->action)
		b->action = "start";
	if (strcmp(b->action, "pause") == 0)
		b->wait = false;
	return 0;
}

static long long count_of(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* One line of progress: "copy  1234/5000  25 %  812/s  ETA 4.6 s". */
static void draw(json_t *bf)
{
	long long total = count_of(bf, "total"), done = count_of(bf, "done");
	json_t *eta = json_object_get(bf, "eta_seconds");
	const char *waiting = json_string_value(json_object_get(bf, "waiting"));

	fprintf(stderr, "\r\033[Kcopy  %lld/%lld  %.0f %%  %.0f/s", done, total,
		total ? 100.0 * (double)done / (double)total : 100.0,
		json_number_value(json_object_get(bf, "per_second")));
	if (json_is_number(eta))
		fprintf(stderr, "  ETA %.1f s", json_number_value(eta));
	if (waiting)
		fprintf(stderr, "  (waiting: %s)", waiting);
	fflush(stderr);
}

/*
 * Sends {"cmd":"backfill", "action": 'action', ...}; 0 with the backfill
 * object in '*bf' (a new reference), or -1 after printing why.
 */
static int call(struct mig_ctl *ctl, const struct backfill_cmd *b,
		const char *action, json_t **bf)
{
	json_t *req = json_pack("{s:s, s:s}", "cmd", "backfill", "action",
				action),
	       *reply = NULL;
	int ret;

	*bf = NULL;
	if (!req)
		return error("out of memory");
	if (b->rate >= 0 && strcmp(action, "status") != 0)
		json_object_set_new(req, "rate", json_real(b->rate));
	if (b->restart && strcmp(action, "start") == 0)
		json_object_set_new(req, "restart", json_true());
	ret = mig_ctl_call(ctl, req, NULL, &reply);
	json_decref(req);
	if (ret)
		return -1;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		ret = error("copy --mount on '%s': %s", ctl->mount,
			    mig_ctl_error(reply));
	} else {
		*bf = json_incref(json_object_get(reply, "backfill"));
		if (!*bf)
			ret = error(
				"the daemon of '%s' is older than copy --mount: upgrade sessfs",
				ctl->mount);
	}
	json_decref(reply);
	return ret;
}

/* Follows the daemon's copy until it is no longer running. */
static int follow(struct mig_ctl *ctl, const struct backfill_cmd *b,
		  json_t **bf)
{
	const struct timespec pause = { 0, POLL_MS * 1000000L };
	bool bar = isatty(STDERR_FILENO);
	const char *state;

	for (;;) {
		state = json_string_value(json_object_get(*bf, "state"));
		if (!state || strcmp(state, "running") != 0)
			break;
		if (bar)
			draw(*bf);
		nanosleep(&pause, NULL);
		json_decref(*bf);
		if (call(ctl, b, "status", bf))
			return -1;
	}
	if (bar)
		fprintf(stderr, "\r\033[K");
	return 0;
}

int cmd_copy_online(int argc, char **argv)
{
	struct backfill_cmd b = { .rate = -1, .wait = true };
	struct mig_ctl ctl;
	json_t *bf = NULL;
	const char *state;
	int ret, code = MIG_EXIT_USAGE;

	ret = parse_args(&b, argc, argv);
	if (ret)
		return ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
	code = MIG_EXIT_DIFF;
	if (mig_ctl_open(&ctl, b.mount, b.ctl_dir) ||
	    call(&ctl, &b, b.action, &bf))
		goto out;
	if (b.wait && follow(&ctl, &b, &bf))
		goto out;
	state = json_string_value(json_object_get(bf, "state"));
	if (b.json) {
		json_dumpf(bf, stdout, JSON_PRESERVE_ORDER);
		printf("\n");
	} else {
		printf("backfill of '%s' %s: %lld of %lld names, %lld copied, %lld already in redis, %lld deleted in redis, %lld expired, %lld skipped, %lld vanished, %lld errors\n",
		       ctl.mount, state ? state : "?", count_of(bf, "done"),
		       count_of(bf, "total"), count_of(bf, "copied"),
		       count_of(bf, "existing"), count_of(bf, "tombstone"),
		       count_of(bf, "expired"), count_of(bf, "skipped"),
		       count_of(bf, "vanished"), count_of(bf, "errors"));
	}
	if (count_of(bf, "errors")) {
		error("the backfill of '%s' met errors (see the daemon's log); run 'copy --mount %s --restart' once their cause is fixed",
		      ctl.mount, ctl.mount);
		goto out;
	}
	if (b.wait && state && strcmp(state, "done") != 0) {
		error("the backfill of '%s' is %s, not done; 'copy --mount %s --resume' goes on",
		      ctl.mount, state, ctl.mount);
		goto out;
	}
	code = MIG_EXIT_OK;
out:
	json_decref(bf);
	mig_ctl_close(&ctl);
	return code;
}
