/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate status --mount MOUNTPOINT: a mount's mode and health as
 * its daemon reports them (the control socket's status): Redis reachable,
 * the repair journal, fenced names, the recent error rate, whether the
 * files underneath are current, and the sessfs layers on the mountpoint.
 * The exit status says whether it is healthy, for scripts and monitoring.
 * With --metrics it prints the daemon's metrics instead, in Prometheus's
 * text format (the control socket's metrics, fs/metrics.h).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "migrate_i.h"

/* Over this share of failed recent operations (of at least 100) is bad. */
#define ERROR_RATE_PCT 1

struct status_cmd {
	const char *mount;
	const char *ctl_dir;
	bool json;
	bool metrics;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME
		" status --mount MOUNTPOINT [--json | --metrics]\n"
		"\n"
		"Shows the mode and health of the sessfs mount on MOUNTPOINT: Redis\n"
		"reachable, names waiting in the repair journal, names fenced after a\n"
		"failed read, the recent error rate, whether the files underneath are\n"
		"current (a rollback to files needs them), the sessfs layers\n"
		"stacked on the mountpoint, and whether sessions only in the files\n"
		"underneath are still read (-o legacy_reads_until).\n"
		"\n" MIG_ONLINE_OPTIONS_HELP MIG_FLEET_OPTION_HELP
		"  --json                 print the daemon's status as JSON, with\n"
		"                         \"healthy\" and \"problems\" added\n"
		"  --metrics              print the daemon's metrics in Prometheus's\n"
		"                         text format (as its -o metrics_addr serves\n"
		"                         them) and exit 0\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 healthy, 1 unhealthy (the problems are listed) or the\n"
		"daemon cannot be reached, 2 usage.\n");
}

static int parse_args(struct status_cmd *s, int argc, char **argv)
{
	enum { OPT_JSON = MIG_OPT_FIRST_FREE, OPT_METRICS };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "metrics", no_argument, NULL, OPT_METRICS },
		{ "help", no_argument, NULL, 'h' },
		MIG_ONLINE_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case MIG_OPT_MOUNT:
			s->mount = optarg;
			break;
		case MIG_OPT_CTL_DIR:
			s->ctl_dir = optarg;
			break;
		case OPT_JSON:
			s->json = true;
			break;
		case OPT_METRICS:
			s->metrics = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return mig_bad_option(c, argv, "status");
		}
	}
	if (argc != optind)
		return error(
			"status takes no arguments but --mount; see '" MIG_PROGNAME
			" status --help'");
	if (s->json && s->metrics)
		return error(
			"--json and --metrics exclude each other; see '" MIG_PROGNAME
			" status --help'");
	if (!s->mount)
		return error(
			"status needs --mount MOUNTPOINT; see '" MIG_PROGNAME
			" status --help'");
	return 0;
}

static json_int_t int_of(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *str_of(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "?";
}

/* Appends to 'problems' what makes the mount unhealthy. */
static void find_problems(json_t *st, json_t *problems)
{
	json_t *recent = json_object_get(st, "recent");
	json_int_t ops = int_of(recent, "ops"),
		   errors = int_of(recent, "errors");
	char msg[256];

	if (!json_is_true(json_object_get(st, "redis_up")))
		json_array_append_new(
			problems, json_string("redis is down (circuit open)"));
	if (json_is_true(json_object_get(st, "journal_corrupt")))
		json_array_append_new(
			problems,
			json_string(
				"the repair journal was found corrupt (see the daemon log)"));
	if (int_of(st, "dead_layers") > 0) {
		snprintf(msg, sizeof(msg),
			 "%lld dead sessfs layers on the mountpoint",
			 (long long)int_of(st, "dead_layers"));
		json_array_append_new(problems, json_string(msg));
	}
	if (ops >= 100 && errors * 100 > ops * ERROR_RATE_PCT) {
		snprintf(msg, sizeof(msg),
			 "%lld of the last %lld operations failed",
			 (long long)errors, (long long)ops);
		json_array_append_new(problems, json_string(msg));
	}
	if (int_of(st, "fenced") > 0) {
		snprintf(
			msg, sizeof(msg),
			"%lld names fenced after a failed read (writes refused until a read succeeds)",
			(long long)int_of(st, "fenced"));
		json_array_append_new(problems, json_string(msg));
	}
}

/* Tracked lookups (-o cache=tracking); a daemon before them says nothing. */
static void print_cache(json_t *c)
{
	const char *refused;

	if (!c || strcmp(str_of(c, "kind"), "tracking") != 0) {
		printf("cache:       off (every lookup asks redis)\n");
		return;
	}
	refused = json_string_value(json_object_get(c, "refused"));
	if (refused)
		printf("cache:       tracking REFUSED by redis (%s)\n",
		       refused);
	else
		printf("cache:       tracking, %s, %lld hits, %lld invalidations\n",
		       json_is_true(json_object_get(c, "up")) ? "up" : "DOWN",
		       (long long)int_of(c, "hits"),
		       (long long)int_of(c, "invalidations"));
}

/* durability=replica (WAIT); a daemon before it says nothing: none. */
static void print_durability(json_t *d)
{
	long long seen;

	if (!d || strcmp(str_of(d, "level"), "replica") != 0) {
		printf("durability:  none (a write is acknowledged by the master alone)\n");
		return;
	}
	seen = (long long)int_of(d, "replicas_seen");
	printf("durability:  replica:%lld (WAIT up to %lld ms), ",
	       (long long)int_of(d, "replicas"),
	       (long long)int_of(d, "timeout_ms"));
	if (seen < 0)
		printf("no write yet");
	else
		printf("last write confirmed by %lld replica%s", seen,
		       seen == 1 ? "" : "s");
	printf(", %lld confirmed, %lld not\n",
	       (long long)int_of(d, "confirmed"),
	       (long long)int_of(d, "unconfirmed"));
}

/* Sentinel URLs only: the master now and the failovers seen. */
static void print_sentinel(json_t *s)
{
	const char *master;

	if (!s)
		return;
	master = json_string_value(json_object_get(s, "master"));
	printf("sentinel:    master '%s' at %s, %lld failover%s seen\n",
	       str_of(s, "master_name"), master ? master : "(unknown)",
	       (long long)int_of(s, "failovers"),
	       int_of(s, "failovers") == 1 ? "" : "s");
}

/* -o legacy_reads_until; a daemon before it says nothing. */
static void print_legacy(json_t *l, const char *mode)
{
	const char *until = json_string_value(json_object_get(l, "until"));

	if (!l)
		return;
	if (json_is_true(json_object_get(l, "reads")))
		printf("legacy:      read and copied up from the files underneath %s%s\n",
		       until ? "until " : "(no legacy_reads_until)",
		       until ? until : "");
	else if (until && json_is_true(json_object_get(l, "passed")))
		printf("legacy:      reads ENDED at %s%s\n", until,
		       strcmp(mode, "redis-first") == 0 ||
				       strcmp(mode, "redis-only") == 0
			       ? ": sessions only in the files underneath are not served"
			       : " (the files are the store in this mode)");
	else
		printf("legacy:      the files are the store in this mode%s%s\n",
		       until ? "; reads end at " : "", until ? until : "");
}

/* The online backfill (copy --mount); a daemon before it says nothing. */
static void print_backfill(json_t *b)
{
	const char *state = str_of(b, "state");
	json_t *eta = json_object_get(b, "eta_seconds");
	const char *waiting = json_string_value(json_object_get(b, "waiting"));

	if (!json_is_object(b))
		return;
	if (strcmp(state, "idle") == 0) {
		printf("backfill:    idle (sessfs-migrate copy --mount starts one)\n");
		return;
	}
	printf("backfill:    %s%s, %lld of %lld names, %lld copied, %lld errors",
	       state,
	       json_is_true(json_object_get(b, "resumed")) ? " (resumed)" : "",
	       (long long)int_of(b, "done"), (long long)int_of(b, "total"),
	       (long long)int_of(b, "copied"), (long long)int_of(b, "errors"));
	if (strcmp(state, "running") == 0) {
		printf(", %.0f/s",
		       json_number_value(json_object_get(b, "per_second")));
		if (json_number_value(json_object_get(b, "rate_limit")) > 0)
			printf(" (limit %.0f/s)",
			       json_number_value(
				       json_object_get(b, "rate_limit")));
		if (json_is_number(eta))
			printf(", ETA %.0f s", json_number_value(eta));
		if (waiting)
			printf(", waiting: %s", waiting);
	}
	printf("\n");
}

/* Shadow reads (-o shadow); a daemon before them says nothing. */
static void print_shadow(json_t *s)
{
	json_t *rate = json_object_get(s, "consistency");

	if (!json_is_object(s) || !int_of(s, "percent"))
		return;
	printf("shadow:      %lld %% of dual-write reads, %lld compared, ",
	       (long long)int_of(s, "percent"),
	       (long long)int_of(s, "compared"));
	if (json_is_number(rate))
		printf("%.2f %% consistent", 100 * json_number_value(rate));
	else
		printf("none consistent yet");
	printf(" (%lld differ, %lld missing in redis, %lld errors)\n",
	       (long long)int_of(s, "differ"), (long long)int_of(s, "missing"),
	       (long long)int_of(s, "errors"));
}

/* The fleet follower (--fleet); a daemon before it says nothing. */
static void print_fleet(json_t *f)
{
	const char *desired, *blocked;

	if (!f)
		return;
	desired = json_string_value(json_object_get(f, "desired"));
	blocked = json_string_value(json_object_get(f, "blocked"));
	if (!desired) {
		printf("fleet:       no fleet mode set (heartbeat as '%s')\n",
		       str_of(f, "host"));
		return;
	}
	printf("fleet:       desired %s (request %lld)%s%s%s\n", desired,
	       (long long)int_of(f, "request"),
	       json_is_true(json_object_get(f, "override"))
		       ? ", OVERRIDDEN here by 'mode --mount'"
		       : "",
	       blocked ? ", blocked: " : "", blocked ? blocked : "");
}

static void print_human(const struct mig_ctl *ctl, json_t *st, json_t *problems)
{
	json_t *recent = json_object_get(st, "recent");
	json_int_t ops = int_of(recent, "ops"),
		   errors = int_of(recent, "errors");
	const char *mode = str_of(st, "mode");
	size_t i;

	printf("mountpoint:  %s\n", str_of(st, "mountpoint"));
	printf("mode:        %s\n", mode);
	printf("health:      %s\n",
	       json_array_size(problems) ? "UNHEALTHY" : "ok");
	for (i = 0; i < json_array_size(problems); i++)
		printf("  problem:   %s\n",
		       json_string_value(json_array_get(problems, i)));
	printf("redis:       %s, prefix '%s', %s\n", str_of(st, "redis"),
	       str_of(st, "prefix"),
	       json_is_true(json_object_get(st, "redis_up")) ? "up" : "DOWN");
	printf("journal:     %lld names waiting for repair%s\n",
	       (long long)int_of(st, "journal"),
	       json_is_true(json_object_get(st, "journal_corrupt"))
		       ? " (corrupt at start)"
		       : "");
	printf("fenced:      %lld names\n", (long long)int_of(st, "fenced"));
	printf("recent ops:  %lld, %lld errors (%.2f %%)\n", (long long)ops,
	       (long long)errors,
	       ops ? 100.0 * (double)errors / (double)ops : 0);
	printf("files:       %s\n",
	       json_is_true(json_object_get(st, "lower_current"))
		       ? "current (the directory underneath holds every session)"
		       : "not current (run 'export --mount' before leaving redis)");
	printf("layers:      %lld sessfs mounts, %lld dead\n",
	       (long long)int_of(st, "layers"),
	       (long long)int_of(st, "dead_layers"));
	print_sentinel(json_object_get(st, "sentinel"));
	print_durability(json_object_get(st, "durability"));
	print_cache(json_object_get(st, "cache"));
	print_legacy(json_object_get(st, "legacy"), mode);
	print_backfill(json_object_get(st, "backfill"));
	print_shadow(json_object_get(st, "shadow"));
	print_fleet(json_object_get(st, "fleet"));
	printf("host id:     %s\n", str_of(st, "host_id"));
	printf("daemon:      sessfs %s, protocol %lld, socket %s\n",
	       str_of(st, "version"), (long long)int_of(st, "protocol"),
	       ctl->path);
}

int cmd_status(int argc, char **argv)
{
	struct status_cmd s = { 0 };
	struct mig_ctl ctl;
	json_t *reply = NULL, *problems;
	int ret, code;

	if (mig_fleet_wanted(argc, argv))
		return cmd_fleet_status(argc, argv);
	ret = parse_args(&s, argc, argv);
	if (ret)
		return ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
	code = MIG_EXIT_DIFF;
	if (mig_ctl_open(&ctl, s.mount, s.ctl_dir))
		goto out;
	if (s.metrics) {
		if (mig_ctl_simple(&ctl, "metrics", NULL, &reply) == 0) {
			fputs(str_of(reply, "text"), stdout);
			code = MIG_EXIT_OK;
		}
		goto out;
	}
	if (mig_ctl_simple(&ctl, "status", NULL, &reply))
		goto out;
	if (int_of(reply, "protocol") > MIG_CTL_PROTOCOL)
		warning("the daemon speaks control protocol %lld, this tool %d: upgrade sessfs-migrate",
			(long long)int_of(reply, "protocol"), MIG_CTL_PROTOCOL);
	problems = json_array();
	find_problems(reply, problems);
	if (s.json) {
		json_object_set_new(reply, "healthy",
				    json_boolean(!json_array_size(problems)));
		json_object_set(reply, "problems", problems);
		json_object_set_new(reply, "socket", json_string(ctl.path));
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else {
		print_human(&ctl, reply, problems);
	}
	if (!json_array_size(problems))
		code = MIG_EXIT_OK;
	json_decref(problems);
out:
	json_decref(reply);
	mig_ctl_close(&ctl);
	return code;
}
