/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fleet commands (DESIGN.md, "Fleet"): every mount of a prefix, on
 * every host, driven through Redis (backend/fleet.h) instead of one
 * control socket.
 *
 *   mode MODE --fleet URL      ask every live host whether it can take
 *                              MODE (a check request each host answers in
 *                              its heartbeat, through its own guards), then
 *                              set the fleet's desired mode and wait until
 *                              every live host reports it
 *   rollback --fleet URL       the same to files, each host exporting what
 *                              its files underneath lack on the way down,
 *                              then unmounting itself (its daemon exits);
 *                              --no-unmount: the mounts stay, in files
 *   status --fleet URL         one line per host from the heartbeats
 *
 * A host that joined the fleet (it heartbeats) and went silent is down: a
 * step refuses while one is, unless --allow-down; that host follows the
 * desired mode when it returns.  A host whose last heartbeat says it
 * unmounted itself in a rollback is neither live nor down: it is out of
 * the fleet until it is mounted again.  mode.c, status.c and rollback.c
 * hand over here when they see --fleet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"
#include "fleet.h"
#include "migrate_i.h"

#define DEFAULT_TIMEOUT_S 60
#define POLL_US		  200000
/* A check not answered in full is asked again this often (seconds). */
#define RECHECK_S 1.0
/* A heartbeat older than this is lagging (the daemon beats every 0.5 s). */
#define LAG_MS 2000

enum fleet_what { FLEET_MODE, FLEET_ROLLBACK, FLEET_STATUS };

struct fleet_cmd {
	enum fleet_what what;
	struct mig_options opt;
	const char *url;
	const char *mode;
	double timeout_s;
	bool allow_down;
	bool no_unmount;
	bool json;
	struct be_conn *c;
};

/* One host as its heartbeat tells it. */
struct host {
	const char *id; /* borrowed from the be_fleet_host */
	json_t *hb; /* its last heartbeat (new reference; NULL: unreadable) */
	bool live;
	bool unmounted; /* its last word: it unmounted itself */
	double age_s; /* since its last heartbeat */
};

static const char *const modes[] = { "files", "dual-write", "redis-first",
				     "redis-only" };

bool mig_fleet_wanted(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--fleet") == 0 ||
		    strncmp(argv[i], "--fleet=", 8) == 0)
			return true;
	}
	return false;
}

static const char *name_of(enum fleet_what w)
{
	return w == FLEET_MODE	   ? "mode"
	       : w == FLEET_STATUS ? "status"
				   : "rollback";
}

static void usage(enum fleet_what w, FILE *out)
{
	if (w == FLEET_MODE)
		fprintf(out,
			"usage: " MIG_PROGNAME
			" mode MODE --fleet URL [--prefix PREFIX] [options]\n"
			"\n"
			"Moves every mount of PREFIX, on every host, to MODE: each live host\n"
			"is asked whether it can take MODE through its own guards (its own\n"
			"repair journal, its own verify of its files underneath, its own\n"
			"probes); if every one can, the fleet's desired mode is set and every\n"
			"host follows within about a second; this waits until all report it.\n"
			"A host that went silent (down) refuses the step, unless\n"
			"--allow-down: it then follows when it returns.\n");
	else if (w == FLEET_ROLLBACK)
		fprintf(out,
			"usage: " MIG_PROGNAME
			" rollback --fleet URL [--prefix PREFIX] [options]\n"
			"\n"
			"Moves every mount of PREFIX back to plain files (mode files): each\n"
			"host in redis-only steps to redis-first, exports what its files\n"
			"underneath lack, then goes to files.\n"
			"Then each host writes its unmount manifest and unmounts every sessfs\n"
			"layer of its mountpoint, lazily (as 'sessfs -u'), and its daemon exits\n"
			"with status 0 once the files opened before are closed: the app goes on\n"
			"with the plain, current files.  Progress is shown per host.\n"
			"Resumable: the request stays in Redis, a host that was down rolls back\n"
			"and unmounts when it returns (or run '" MIG_PROGNAME
			" rollback --mount\n"
			"MOUNTPOINT' there), and running this again waits for the rest.  A\n"
			"host mounted again afterwards stays mounted until the next fleet request.\n");
	else
		fprintf(out,
			"usage: " MIG_PROGNAME
			" status --fleet URL [--prefix PREFIX] [--json]\n"
			"\n"
			"One line per host of the fleet of PREFIX, from the heartbeats every\n"
			"mount writes: host, mode, desired mode, health, repair journal, age\n"
			"of the last heartbeat, and a note: silent (no heartbeat: down),\n"
			"lagging (heartbeat late, or not in the desired mode), override (its\n"
			"mode was set with 'mode --mount'), blocked (why it cannot follow).\n");
	fprintf(out,
		"\n"
		"  --fleet URL            the Redis of the mounts (as they were mounted)\n");
	if (w != FLEET_STATUS)
		fprintf(out,
			"  --timeout SECONDS      how long to wait for the hosts (default %d)\n"
			"  --allow-down           go on without the hosts that are down\n",
			DEFAULT_TIMEOUT_S);
	if (w == FLEET_ROLLBACK)
		fprintf(out,
			"  --no-unmount           stop in mode files, every host still mounted\n");
	fprintf(out,
		"  --json                 print the outcome as JSON\n"
		"  -h, --help             this text\n"
		"\n" MIG_KEY_OPTIONS_HELP "\n"
		"Exit status: 0 %s, 1 %s, 2 usage.\n",
		w == FLEET_STATUS
			? "every host live, healthy and in the desired mode"
			: "every live host took it",
		w == FLEET_STATUS
			? "not so (the notes say why)"
			: "refused, or a host did not follow in time");
}

static int parse_args(struct fleet_cmd *f, int argc, char **argv)
{
	enum {
		OPT_FLEET = MIG_OPT_FIRST_FREE,
		OPT_TIMEOUT,
		OPT_ALLOW_DOWN,
		OPT_NO_UNMOUNT,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "fleet", required_argument, NULL, OPT_FLEET },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "allow-down", no_argument, NULL, OPT_ALLOW_DOWN },
		{ "no-unmount", no_argument, NULL, OPT_NO_UNMOUNT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_KEY_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = name_of(f->what);
	char *end;
	size_t i;
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case OPT_FLEET:
			f->url = optarg;
			break;
		case OPT_TIMEOUT:
			f->timeout_s = strtod(optarg, &end);
			if (*end || end == optarg || f->timeout_s <= 0)
				return error("invalid --timeout '%s'", optarg);
			break;
		case OPT_ALLOW_DOWN:
			f->allow_down = true;
			break;
		case OPT_NO_UNMOUNT:
			if (f->what != FLEET_ROLLBACK)
				return mig_bad_option(c, argv, cmd);
			f->no_unmount = true;
			break;
		case OPT_JSON:
			f->json = true;
			break;
		case 'h':
			usage(f->what, stdout);
			return 1;
		default:
			if (c >= MIG_OPT_PREFIX && c < MIG_OPT_MOUNT) {
				if (mig_key_option(&f->opt, c, optarg))
					return -1;
				break;
			}
			return mig_bad_option(c, argv, cmd);
		}
	}
	if ((f->what != FLEET_STATUS && f->what != FLEET_ROLLBACK &&
	     argc - optind != 1) ||
	    ((f->what == FLEET_STATUS || f->what == FLEET_ROLLBACK) &&
	     argc != optind))
		return error("bad arguments; see '" MIG_PROGNAME " %s --help'",
			     cmd);
	if (f->what == FLEET_MODE) {
		f->mode = argv[optind];
		for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			if (strcmp(f->mode, modes[i]) == 0)
				break;
		}
		if (i == sizeof(modes) / sizeof(modes[0]))
			return error(
				"invalid mode '%s': files, dual-write, redis-first or redis-only",
				f->mode);
	} else if (f->what == FLEET_ROLLBACK) {
		f->mode = "files";
	}
	if (!f->url || !*f->url)
		return error("--fleet needs the Redis URL of the mounts");
	return mig_options_finish(&f->opt);
}

/* ---- reading the fleet ---- */

static void hosts_release(struct host *h, size_t n)
{
	size_t i;

	for (i = 0; h && i < n; i++)
		json_decref(h[i].hb);
	free(h);
}

/*
 * Reads every host into '*out' ('*n'); 'raw' keeps the strings the hosts
 * borrow (free it after them).  0 or -1 (printed).
 */
static int read_hosts(struct fleet_cmd *f, struct be_fleet_host **raw,
		      struct host **out, size_t *n)
{
	const char *prefix = f->opt.sc.ks.prefix;
	int64_t now = mig_now_ms();
	struct host *h;
	size_t i;
	int ret;

	*out = NULL;
	ret = be_fleet_hosts(f->c, prefix, raw, n);
	if (ret < 0)
		return error("cannot read the hosts of the fleet: %s",
			     strerror(-ret));
	h = calloc(*n + 1, sizeof(*h));
	if (!h)
		return error("out of memory");
	for (i = 0; i < *n; i++) {
		json_int_t at;

		h[i].id = (*raw)[i].host;
		h[i].hb = json_loads((*raw)[i].json, 0, NULL);
		/* Its last heartbeat lives on a little: it is not live. */
		h[i].unmounted =
			json_is_true(json_object_get(h[i].hb, "unmounted"));
		h[i].live = (*raw)[i].ttl_ms >= 0 && h[i].hb && !h[i].unmounted;
		at = json_integer_value(json_object_get(h[i].hb, "at_ms"));
		h[i].age_s = at ? (now - at) / 1000.0 : -1;
	}
	*out = h;
	return 0;
}

static const char *hb_str(const struct host *h, const char *key)
{
	return json_string_value(json_object_get(h->hb, key));
}

static json_int_t hb_int(const struct host *h, const char *key)
{
	return json_integer_value(json_object_get(h->hb, key));
}

/* ---- mode and rollback ---- */

/* FLAGS of the request (backend/fleet.h). */
static const char *flags_of(const struct fleet_cmd *f)
{
	if (f->what != FLEET_ROLLBACK)
		return "-";
	return f->no_unmount ? "export" : "unmount";
}

static bool unmounting(const struct fleet_cmd *f)
{
	return f->what == FLEET_ROLLBACK && !f->no_unmount;
}

/*
 * Asks every live host whether it can take the mode, again every
 * RECHECK_S while some cannot, until all can or the time is up.  0 when
 * all can; -1 after listing those that cannot, and why.
 */
static int check_all(struct fleet_cmd *f, double deadline)
{
	const char *prefix = f->opt.sc.ks.prefix;
	struct be_fleet_host *raw = NULL;
	struct host *h = NULL;
	long long version = 0;
	double asked = 0;
	size_t n = 0, i, ok, live;
	int ret;

	for (;;) {
		if (mig_monotonic() - asked >= RECHECK_S) {
			ret = be_fleet_req_set(f->c, prefix, "check", f->mode,
					       flags_of(f), &version);
			if (ret < 0)
				return error("cannot ask the fleet: %s",
					     strerror(-ret));
			asked = mig_monotonic();
		}
		usleep(POLL_US);
		hosts_release(h, n);
		be_fleet_hosts_free(raw, n);
		if (read_hosts(f, &raw, &h, &n))
			return -1;
		for (i = ok = live = 0; i < n; i++) {
			json_t *chk = json_object_get(h[i].hb, "check");

			if (!h[i].live)
				continue;
			live++;
			if (json_integer_value(json_object_get(
				    chk, "version")) >= version &&
			    json_is_true(json_object_get(chk, "ok")))
				ok++;
		}
		if (ok == live || mig_monotonic() >= deadline)
			break;
	}
	ret = 0;
	for (i = 0; i < n && ok < live; i++) {
		json_t *chk = json_object_get(h[i].hb, "check");
		const char *why =
			json_string_value(json_object_get(chk, "why"));

		if (!h[i].live ||
		    (json_integer_value(json_object_get(chk, "version")) >=
			     version &&
		     json_is_true(json_object_get(chk, "ok"))))
			continue;
		if (json_integer_value(json_object_get(chk, "version")) <
		    version)
			error("host '%s' cannot take %s: it did not answer within the timeout",
			      h[i].id, f->mode);
		else
			error("host '%s' cannot take %s: %s", h[i].id, f->mode,
			      why ? why : "(no reason given)");
		ret = -1;
	}
	hosts_release(h, n);
	be_fleet_hosts_free(raw, n);
	return ret;
}

/*
 * Refuses when a host of the fleet is down, unless --allow-down; 0 with
 * '*live' counted, or -1 (printed).
 */
static int check_down(struct fleet_cmd *f, size_t *live, size_t *gone)
{
	struct be_fleet_host *raw = NULL;
	struct host *h = NULL;
	size_t n = 0, i, down = 0;

	if (read_hosts(f, &raw, &h, &n))
		return -1;
	*live = *gone = 0;
	for (i = 0; i < n; i++) {
		if (h[i].live) {
			++*live;
			continue;
		}
		if (h[i].unmounted) {
			++*gone;
			if (!f->json)
				printf("%s: unmounted (rollback request %lld); not part of this step until mounted again\n",
				       h[i].id,
				       (long long)hb_int(&h[i],
							 "unmounted_request"));
			continue;
		}
		down++;
		if (f->allow_down && unmounting(f))
			printf("%s: down (silent for %.0f s); it rolls back and unmounts when it returns, or run '" MIG_PROGNAME
			       " rollback --mount %s' there\n",
			       h[i].id, h[i].age_s,
			       hb_str(&h[i], "mount") ? hb_str(&h[i], "mount")
						      : "MOUNTPOINT");
		else if (f->allow_down)
			printf("%s: down (silent for %.0f s); it follows when it returns\n",
			       h[i].id, h[i].age_s);
		else
			error("host '%s' is down: no heartbeat for %.0f s (last in mode %s); start it, or pass --allow-down to go on without it",
			      h[i].id, h[i].age_s,
			      hb_str(&h[i], "mode") ? hb_str(&h[i], "mode")
						    : "?");
	}
	hosts_release(h, n);
	be_fleet_hosts_free(raw, n);
	if (n == 0)
		return error(
			"no host has joined the fleet of prefix '%s': is a sessfs mount of it running?",
			f->opt.sc.ks.prefix);
	if (down && !f->allow_down)
		return -1;
	if (*live == 0 && *gone && unmounting(f))
		return 1;
	if (*live == 0)
		return error(*gone ? "no host of the fleet is mounted"
				   : "every host of the fleet is down");
	return 0;
}

/* Whether 'h' has taken the fleet request 'version' of mode 'mode'. */
static bool arrived(const struct fleet_cmd *f, const struct host *h,
		    long long version)
{
	const char *m = hb_str(h, "mode");

	if (unmounting(f))
		return hb_int(h, "unmounted_request") >= version;
	return h->live && hb_int(h, "request") >= version && m &&
	       strcmp(m, f->mode) == 0;
}

/*
 * Prints what host 'h' is doing on its way when it changed since the last
 * look ('seen': host id -> what was printed): its mode, an export.
 */
static void progress(const struct fleet_cmd *f, json_t *seen,
		     const struct host *h, double t0)
{
	const char *mode = hb_str(h, "mode"), *what = hb_str(h, "progress");
	char now[128];

	if (f->json || !mode)
		return;
	snprintf(now, sizeof(now), "%s%s%s", mode, what ? ", " : "",
		 what ? what : "");
	if (json_object_get(seen, h->id) &&
	    strcmp(json_string_value(json_object_get(seen, h->id)), now) == 0)
		return;
	json_object_set_new(seen, h->id, json_string(now));
	printf("%s: %s (%.1f s)\n", h->id, now, mig_monotonic() - t0);
}

/*
 * Waits until every live host reports the desired mode 'version',
 * printing each host as it arrives and what a host is doing meanwhile.
 * 0, or -1 at the deadline after listing the hosts behind and why.
 */
static int wait_all(struct fleet_cmd *f, long long version, double deadline,
		    json_t *done)
{
	struct be_fleet_host *raw = NULL;
	struct host *h = NULL;
	json_t *seen = json_object();
	double t0 = mig_monotonic();
	size_t n = 0, i, behind;
	int ret = 0;

	for (;;) {
		hosts_release(h, n);
		be_fleet_hosts_free(raw, n);
		if (read_hosts(f, &raw, &h, &n))
			return -1;
		for (i = behind = 0; i < n; i++) {
			/* An unmounted host is done, and no longer live. */
			if (!arrived(f, &h[i], version)) {
				if (!h[i].live)
					continue;
				behind++;
				progress(f, seen, &h[i], t0);
				continue;
			}
			if (json_object_get(done, h[i].id))
				continue;
			json_object_set_new(done, h[i].id,
					    json_real(mig_monotonic() - t0));
			if (!f->json)
				printf("%s: %s%s after %.1f s\n", h[i].id,
				       f->mode,
				       unmounting(f) ? ", unmounted" : "",
				       mig_monotonic() - t0);
		}
		if (!behind || mig_monotonic() >= deadline)
			break;
		usleep(POLL_US);
	}
	for (i = 0; i < n && behind; i++) {
		const char *why = hb_str(&h[i], "blocked");

		if (!h[i].live || arrived(f, &h[i], version))
			continue;
		error("host '%s' is still in %s: %s (the request stays: it goes on trying)",
		      h[i].id,
		      hb_str(&h[i], "mode") ? hb_str(&h[i], "mode") : "?",
		      why ? why
			  : (hb_str(&h[i], "progress")
				     ? hb_str(&h[i], "progress")
				     : "no reason given yet"));
		ret = -1;
	}
	json_decref(seen);
	hosts_release(h, n);
	be_fleet_hosts_free(raw, n);
	return ret;
}

static int run_step(struct fleet_cmd *f)
{
	const char *prefix = f->opt.sc.ks.prefix;
	double deadline = mig_monotonic() + f->timeout_s;
	json_t *done = json_object(), *out;
	long long version = 0;
	size_t live = 0, gone = 0;
	int ret;

	ret = check_down(f, &live, &gone);
	if (ret > 0) {
		if (!f->json)
			printf("fleet of '%s': every host (%zu) is unmounted already\n",
			       prefix, gone);
		ret = 0;
		goto out;
	}
	if (ret == 0)
		ret = check_all(f, deadline);
	if (ret == 0) {
		ret = be_fleet_req_set(f->c, prefix, "desired", f->mode,
				       flags_of(f), &version);
		if (ret < 0)
			ret = error("cannot set the fleet's mode: %s",
				    strerror(-ret));
		else if (!f->json)
			printf("fleet of '%s': every live host (%zu) can take %s; request %lld set\n",
			       prefix, live, f->mode, version);
	}
	if (ret == 0)
		ret = wait_all(f, version, deadline, done);
out:
	if (f->json) {
		out = json_pack("{s:b, s:s, s:s, s:I, s:O}", "ok", ret == 0,
				"prefix", prefix, "mode", f->mode, "request",
				(json_int_t)version, "hosts", done);
		json_dumpf(out, stdout, JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(out);
	}
	json_decref(done);
	return ret == 0 ? MIG_EXIT_OK : MIG_EXIT_DIFF;
}

/* ---- status ---- */

/* The note of a host, "" when all is well. */
static void note_of(const struct host *h, const struct be_fleet_req *want,
		    char *note, size_t len)
{
	const char *mode = hb_str(h, "mode"), *blocked = hb_str(h, "blocked");
	const char *progress = hb_str(h, "progress");
	bool override = json_is_true(json_object_get(h->hb, "override"));

	note[0] = '\0';
	if (h->unmounted)
		snprintf(note, len, "unmounted");
	else if (!h->live)
		snprintf(note, len, "silent");
	else if (override)
		snprintf(note, len, "override");
	else if (progress)
		snprintf(note, len, "%s", progress);
	else if (blocked)
		snprintf(note, len, "blocked: %s", blocked);
	else if (h->age_s * 1000 > LAG_MS ||
		 (want->version && mode && strcmp(mode, want->mode) != 0))
		snprintf(note, len, "lagging");
}

static int run_status(struct fleet_cmd *f)
{
	const char *prefix = f->opt.sc.ks.prefix;
	struct be_fleet_host *raw = NULL;
	struct be_fleet_req want;
	struct host *h = NULL;
	json_t *arr = json_array(), *out;
	char note[1200];
	size_t n = 0, i;
	bool good = true;
	int ret;

	ret = be_fleet_req_get(f->c, prefix, "desired", &want);
	if (ret < 0)
		return error("cannot read the fleet's mode: %s",
			     strerror(-ret)),
		       MIG_EXIT_DIFF;
	if (read_hosts(f, &raw, &h, &n))
		return MIG_EXIT_DIFF;
	if (!f->json) {
		printf("fleet of '%s': desired mode %s", prefix,
		       want.version ? want.mode : "(none set)");
		if (want.version)
			printf(" (request %lld%s)", want.version,
			       want.unmount	? ", rollback + unmount"
			       : want.exporting ? ", rollback"
						: "");
		printf(", %zu hosts\n", n);
		printf("%-24s %-12s %-12s %-9s %8s %9s  %s\n", "HOST", "MODE",
		       "DESIRED", "HEALTH", "JOURNAL", "HEARTBEAT", "NOTE");
	}
	for (i = 0; i < n; i++) {
		const char *desired = hb_str(&h[i], "desired");
		json_t *o;

		note_of(&h[i], &want, note, sizeof(note));
		/* Unmounted by the rollback in force: as it should be. */
		if (h[i].unmounted && want.unmount &&
		    hb_int(&h[i], "unmounted_request") >= want.version)
			;
		else if (note[0] || strcmp(hb_str(&h[i], "health")
						   ? hb_str(&h[i], "health")
						   : "?",
					   "ok") != 0)
			good = false;
		if (f->json) {
			o = h[i].hb ? json_deep_copy(h[i].hb) : json_object();
			json_object_set_new(o, "host", json_string(h[i].id));
			json_object_set_new(o, "live", json_boolean(h[i].live));
			json_object_set_new(o, "age_s", json_real(h[i].age_s));
			json_object_set_new(o, "note", json_string(note));
			json_array_append_new(arr, o);
			continue;
		}
		printf("%-24s %-12s %-12s %-9s %8lld %8.1fs  %s\n", h[i].id,
		       hb_str(&h[i], "mode") ? hb_str(&h[i], "mode") : "?",
		       desired ? desired : "-",
		       hb_str(&h[i], "health") ? hb_str(&h[i], "health") : "?",
		       (long long)hb_int(&h[i], "journal"), h[i].age_s, note);
	}
	if (n == 0)
		good = false;
	if (f->json) {
		out = json_pack("{s:b, s:s, s:s?, s:I, s:b, s:b, s:O}", "ok",
				good, "prefix", prefix, "desired",
				want.version ? want.mode : NULL, "request",
				(json_int_t)want.version, "rollback",
				want.exporting, "unmount", want.unmount,
				"hosts", arr);
		json_dumpf(out, stdout, JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(out);
	}
	json_decref(arr);
	hosts_release(h, n);
	be_fleet_hosts_free(raw, n);
	return good ? MIG_EXIT_OK : MIG_EXIT_DIFF;
}

static int run(enum fleet_what what, int argc, char **argv)
{
	struct fleet_cmd f = { .what = what, .timeout_s = DEFAULT_TIMEOUT_S };
	int ret, code = MIG_EXIT_DIFF;

	mig_options_init(&f.opt);
	ret = parse_args(&f, argc, argv);
	if (ret) {
		code = ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
		goto out;
	}
	if (mig_connect(&f.opt, f.url, &f.c))
		goto out;
	code = what == FLEET_STATUS ? run_status(&f) : run_step(&f);
	be_conn_free(f.c);
out:
	mig_options_release(&f.opt);
	return code;
}

int cmd_fleet_mode(int argc, char **argv)
{
	return run(FLEET_MODE, argc, argv);
}

int cmd_fleet_status(int argc, char **argv)
{
	return run(FLEET_STATUS, argc, argv);
}

int cmd_fleet_rollback(int argc, char **argv)
{
	return run(FLEET_ROLLBACK, argc, argv);
}
