/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sessfs-migrate rollback --mount MOUNTPOINT: back to plain session files,
 * from any mode, with the application running (DESIGN.md, "Rollback").
 *
 *   redis-only   -> mode redis-first (always allowed: from now on every
 *                   write goes to Redis, then to the files underneath)
 *   redis-first  -> export (the daemon writes what Redis holds into the
 *                   files, name by name under the name's lock, so a write
 *                   racing with it is ordered), then verify (the same
 *                   comparison, name by name); a second round if verify
 *                   still finds a difference
 *   dual-write   -> mode files (the files are authoritative already)
 *   files        -> unmount every sessfs layer on the mountpoint, lazily:
 *                   files the app holds open keep working through the
 *                   daemon (which writes them underneath in files mode),
 *                   new opens see the plain files.
 *
 * Each step is printed with its duration as it ends.  A failed step stops
 * the rollback where it is, which is always a safe mode to stay in, and
 * says so.  Running it again resumes from the mode the mount is in.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "migrate_i.h"

#define VERIFY_ROUNDS	2
#define MAX_UNMOUNTS	64 /* sessfs layers stacked on one mountpoint */
#define DEFAULT_WAIT_S	10 /* for the daemon to exit after the unmount */
#define HELP_OUTPUT_MAX 65536

struct rollback {
	const char *mount;
	const char *ctl_dir;
	const char *sessfs; /* the daemon's executable, for 'sessfs -u' */
	bool unmount;
	bool json;
	double wait_s;

	struct mig_ctl ctl;
	double start;
	int nsteps;
	json_t *steps; /* for --json */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " MIG_PROGNAME
		" rollback --mount MOUNTPOINT [options]\n"
		"\n"
		"Takes the sessfs mount on MOUNTPOINT back to plain session files while\n"
		"the application runs, from any mode:\n"
		"  redis-only   mode redis-first, then as from redis-first\n"
		"  redis-first  export (Redis -> the files underneath, ordered with live\n"
		"               traffic), verify, mode files, then as from files\n"
		"  dual-write   mode files, then as from files\n"
		"  files        unmount every sessfs layer on MOUNTPOINT (lazily: files\n"
		"               the app holds open are finished through the daemon)\n"
		"Each step is printed with its duration.  A failed step stops the\n"
		"rollback in a safe mode, named in the message; run it again to resume.\n"
		"\n" MIG_ONLINE_OPTIONS_HELP MIG_FLEET_OPTION_HELP
		"  --no-unmount           stop in mode files, still mounted\n"
		"  --sessfs PATH          the sessfs executable, whose -u unmounts every\n"
		"                         layer (default: sessfs on PATH; without -u,\n"
		"                         'fusermount3 -u -z' once per layer)\n"
		"  --wait SECONDS         how long to wait for the daemon to exit after\n"
		"                         the unmount (default %d; 0: do not wait)\n"
		"  --json                 print the steps as JSON\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 rolled back, 1 a step failed or was refused (the\n"
		"mount stays in the mode named), 2 usage.\n",
		DEFAULT_WAIT_S);
}

/* ---- steps ---- */

/* Prints (or, with --json, records) one finished step. */
static void step_done(struct rollback *rb, const char *step, double seconds,
		      bool ok, const char *detail, json_t *reply)
{
	rb->nsteps++;
	if (rb->json) {
		json_array_append_new(rb->steps,
				      json_pack("{s:s, s:b, s:f, s:s, s:O*}",
						"step", step, "ok", ok,
						"seconds", seconds, "detail",
						detail, "reply", reply));
		return;
	}
	printf("  %d. %-8s %8.3f s  %s%s\n", rb->nsteps, step, seconds,
	       ok ? "" : "FAILED: ", detail);
	fflush(stdout);
}

/* A label for the spinner: "  3. export". */
static const char *label(struct rollback *rb, const char *step, char *buf,
			 size_t len)
{
	snprintf(buf, len, "  %d. %s", rb->nsteps + 1, step);
	return buf;
}

/* Changes the mode from 'from' to 'to'; 0 or -1 (printed). */
static int step_mode(struct rollback *rb, const char *from, const char *to)
{
	double t0 = mig_monotonic();
	json_t *req, *reply = NULL;
	char detail[1200], lb[64];
	bool ok;
	int ret;

	req = json_pack("{s:s, s:s, s:b}", "cmd", "mode", "mode", to, "force",
			0);
	if (!req)
		return error("out of memory");
	ret = mig_ctl_call(&rb->ctl, req, label(rb, "mode", lb, sizeof(lb)),
			   &reply);
	json_decref(req);
	if (ret)
		return ret;
	ok = json_is_true(json_object_get(reply, "ok"));
	if (ok)
		snprintf(detail, sizeof(detail), "%s -> %s", from, to);
	else
		snprintf(detail, sizeof(detail), "%s", mig_ctl_error(reply));
	step_done(rb, "mode", mig_monotonic() - t0, ok, detail, reply);
	json_decref(reply);
	return ok ? 0 : -1;
}

static json_int_t int_of(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static int step_export(struct rollback *rb)
{
	double t0 = mig_monotonic();
	json_t *reply = NULL;
	char detail[1200], lb[64];
	bool ok;
	int ret;

	ret = mig_ctl_simple(&rb->ctl, "export",
			     label(rb, "export", lb, sizeof(lb)), &reply);
	if (ret && !reply)
		return ret;
	ok = ret == 0;
	snprintf(
		detail, sizeof(detail),
		"%lld sessions: %lld written, %lld deleted, %lld unchanged, %lld errors",
		(long long)int_of(reply, "names"),
		(long long)int_of(reply, "written"),
		(long long)int_of(reply, "deleted"),
		(long long)int_of(reply, "unchanged"),
		(long long)int_of(reply, "errors"));
	step_done(rb, "export", mig_monotonic() - t0, ok, detail, reply);
	json_decref(reply);
	return ok ? 0 : -1;
}

/* 0 clean, 1 differences (listed), -1 failed. */
static int step_verify(struct rollback *rb)
{
	double t0 = mig_monotonic();
	json_t *reply = NULL, *d;
	json_int_t ndiff;
	char detail[256], lb[64];
	size_t i;

	if (mig_ctl_simple(&rb->ctl, "verify",
			   label(rb, "verify", lb, sizeof(lb)), &reply)) {
		json_decref(reply);
		return -1;
	}
	ndiff = int_of(reply, "differences");
	snprintf(detail, sizeof(detail),
		 "%lld sessions checked, %lld differences",
		 (long long)int_of(reply, "checked"), (long long)ndiff);
	step_done(rb, "verify", mig_monotonic() - t0, ndiff == 0, detail,
		  reply);
	if (!rb->json) {
		json_array_foreach(json_object_get(reply, "diff"), i, d)
			printf("       '%s': %s\n",
			       json_string_value(json_object_get(d, "name")),
			       json_string_value(json_object_get(d, "why")));
	}
	json_decref(reply);
	return ndiff ? 1 : 0;
}

/* ---- unmount ---- */

/*
 * Runs 'argv' (from PATH) and waits for it.  With 'out', its stdout and
 * stderr are collected there ('len' bytes, NUL-terminated), else
 * inherited.  Returns its exit status, or -errno when it could not run.
 */
static int run(const char *const argv[], char *out, size_t len)
{
	posix_spawn_file_actions_t fa;
	int fds[2] = { -1, -1 }, status, ret;
	size_t used = 0;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	if (out) {
		if (pipe2(fds, O_CLOEXEC) < 0) {
			ret = -errno;
			goto out_destroy;
		}
		posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
		posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
	}
	/* posix_spawnp() does not change the strings; its type is older. */
	ret = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
			   environ);
	if (fds[1] >= 0)
		close(fds[1]);
	if (ret) {
		ret = -ret;
		goto out_close;
	}
	while (out) {
		ssize_t n = read(fds[0], out + used, len - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == len - 1)
			break;
	}
	if (out)
		out[used] = '\0';
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			ret = -errno;
			goto out_close;
		}
	}
	ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out_close:
	if (fds[0] >= 0)
		close(fds[0]);
out_destroy:
	posix_spawn_file_actions_destroy(&fa);
	return ret;
}

/* True when 'word' (maybe quoted) names a program called sessfs. */
static bool is_sessfs_word(const char *word, size_t len)
{
	const char *base;

	while (len && (*word == '\'' || *word == '"')) {
		word++;
		len--;
	}
	base = memrchr(word, '/', len);
	if (base) {
		len -= (size_t)(base + 1 - word);
		word = base + 1;
	}
	return len == 6 && strncmp(word, "sessfs", 6) == 0;
}

/*
 * True when 'sessfs --help' offers -u: a usage line "sessfs -u ..." or an
 * option line starting with "-u".  The help also mentions 'fusermount3
 * -u', which does not count.
 */
static bool sessfs_can_unmount(const char *sessfs)
{
	const char *argv[] = { sessfs, "--help", NULL };
	char *out = malloc(HELP_OUTPUT_MAX), *line, *save;
	bool found = false;

	if (!out)
		return false;
	if (run(argv, out, HELP_OUTPUT_MAX) >= 0) {
		for (line = strtok_r(out, "\n", &save); line && !found;
		     line = strtok_r(NULL, "\n", &save)) {
			const char *prev = NULL, *w = line;
			size_t prev_len = 0, len;

			for (;;) {
				w += strspn(w, " \t");
				len = strcspn(w, " \t,");
				if (!len)
					break;
				if (len == 2 && strncmp(w, "-u", 2) == 0 &&
				    (!prev || is_sessfs_word(prev, prev_len))) {
					found = true;
					break;
				}
				prev = w;
				prev_len = len;
				w += len;
				w += strspn(w, ",");
			}
		}
	}
	free(out);
	return found;
}

/* True while the process 'pid' runs (a zombie has finished). */
static bool process_runs(int pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	bool runs;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	runs = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	/* "pid (comm) S ...": the state follows the last ')'. */
	p = runs ? strrchr(buf, ')') : NULL;
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/*
 * Asks the daemon to write its unmount manifest now: after a lazy unmount
 * the application writes the plain files while the daemon may still live,
 * and those writes must count as changed at the next mount.  A daemon
 * that does not know the request writes it when it exits.
 */
static void prepare_unmount(struct rollback *rb)
{
	json_t *req = json_pack("{s:s}", "cmd", "prepare-unmount");
	json_t *reply = NULL;

	if (req)
		mig_ctl_call(&rb->ctl, req, NULL, &reply);
	json_decref(req);
	json_decref(reply);
}

/* Runs 'argv' quietly; 0, or prints the command and its first line. */
static int run_quiet(const char *const argv[])
{
	char out[4096], cmd[PATH_MAX + 256];
	size_t i, o = 0;
	int rc;

	rc = run(argv, out, sizeof(out));
	if (rc == 0)
		return 0;
	for (i = 0; argv[i] && o < sizeof(cmd); i++)
		o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "%s%s",
				      i ? " " : "", argv[i]);
	out[strcspn(out, "\n")] = '\0';
	return error("'%s' failed: %s", cmd,
		     rc < 0   ? strerror(-rc)
		     : out[0] ? out
			      : "no reason given");
}

/* Unmounts every sessfs layer; 0 or -1 (printed). */
static int step_unmount(struct rollback *rb)
{
	const char *fusermount[] = { "fusermount3", "-u", "-z", rb->ctl.mount,
				     NULL };
	const char *sessfs_u[] = { rb->sessfs, "-u", rb->ctl.mount, NULL };
	const char *how = "sessfs -u";
	double t0 = mig_monotonic(), deadline;
	int before, layers, i;
	char detail[512];
	bool ok;

	prepare_unmount(rb);
	mig_ctl_close(&rb->ctl);
	before = mig_sessfs_layers(rb->ctl.mount);
	if (before > 0 && sessfs_can_unmount(rb->sessfs) && run_quiet(sessfs_u))
		warning("trying fusermount3");
	for (i = 0; i < MAX_UNMOUNTS; i++) {
		if (mig_sessfs_layers(rb->ctl.mount) <= 0)
			break;
		how = "fusermount3 -u -z";
		if (run_quiet(fusermount))
			break;
	}
	layers = mig_sessfs_layers(rb->ctl.mount);
	ok = layers == 0;
	if (ok)
		snprintf(detail, sizeof(detail),
			 "%d sessfs layer%s removed (%s)", before,
			 before == 1 ? "" : "s", how);
	else
		snprintf(detail, sizeof(detail),
			 "%d sessfs layers still mounted", layers);
	/* Files opened before the unmount are finished through the daemon. */
	deadline = mig_monotonic() + rb->wait_s;
	while (ok && rb->ctl.pid > 0 && process_runs(rb->ctl.pid) &&
	       mig_monotonic() < deadline)
		usleep(20000);
	if (ok && rb->ctl.pid > 0 && process_runs(rb->ctl.pid)) {
		size_t o = strlen(detail);

		snprintf(
			detail + o, sizeof(detail) - o,
			"; the daemon (pid %d) still finishes files opened before",
			rb->ctl.pid);
	}
	step_done(rb, "unmount", mig_monotonic() - t0, ok, detail, NULL);
	return ok ? 0 : -1;
}

/* ---- the rollback ---- */

/* Says where a failed rollback left the mount, and what to do. */
static int stopped(struct rollback *rb, const char *mode, const char *what)
{
	return error(
		"rollback stopped: '%s' stays in mode %s, where %s; fix the cause (see the daemon's log) and run '" MIG_PROGNAME
		" rollback --mount %s' again",
		rb->ctl.mount, mode, what, rb->ctl.mount);
}

/* Export and verify until clean; 0 or -1 (printed). */
static int export_verified(struct rollback *rb)
{
	int round, ret = -1;

	for (round = 0; round < VERIFY_ROUNDS; round++) {
		if (step_export(rb))
			return stopped(
				rb, "redis-first",
				"Redis is authoritative and every write also goes to the files");
		ret = step_verify(rb);
		if (ret <= 0)
			break;
	}
	if (ret)
		return stopped(
			rb, "redis-first",
			ret > 0 ? "Redis is authoritative and some files still differ (listed above)"
				: "Redis is authoritative");
	return 0;
}

static int roll_back(struct rollback *rb, const char *mode)
{
	if (strcmp(mode, "redis-only") == 0) {
		if (step_mode(rb, "redis-only", "redis-first"))
			return stopped(rb, "redis-only",
				       "Redis alone is current");
		mode = "redis-first";
	}
	if (strcmp(mode, "redis-first") == 0) {
		if (export_verified(rb))
			return -1;
	} else if (strcmp(mode, "dual-write") != 0 &&
		   strcmp(mode, "files") != 0) {
		return error(
			"'%s' reports the unknown mode '%s'; upgrade sessfs-migrate",
			rb->ctl.mount, mode);
	}
	if (strcmp(mode, "files") != 0 && step_mode(rb, mode, "files"))
		return stopped(rb, mode, "nothing is lost");
	if (!rb->unmount)
		return 0;
	if (step_unmount(rb))
		return error(
			"'%s' is in mode files (the application reads and writes the files underneath through the mount), but still mounted: remove it with 'fusermount3 -u -z %s'",
			rb->ctl.mount, rb->ctl.mount);
	return 0;
}

static int parse_args(struct rollback *rb, int argc, char **argv)
{
	enum {
		OPT_NO_UNMOUNT = MIG_OPT_FIRST_FREE,
		OPT_SESSFS,
		OPT_WAIT,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "no-unmount", no_argument, NULL, OPT_NO_UNMOUNT },
		{ "sessfs", required_argument, NULL, OPT_SESSFS },
		{ "wait", required_argument, NULL, OPT_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		MIG_ONLINE_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, MIG_SHORT_OPTIONS, longopts,
				NULL)) != -1) {
		switch (c) {
		case MIG_OPT_MOUNT:
			rb->mount = optarg;
			break;
		case MIG_OPT_CTL_DIR:
			rb->ctl_dir = optarg;
			break;
		case OPT_NO_UNMOUNT:
			rb->unmount = false;
			break;
		case OPT_SESSFS:
			rb->sessfs = optarg;
			break;
		case OPT_WAIT:
			rb->wait_s = strtod(optarg, &end);
			if (*end || end == optarg || !(rb->wait_s >= 0) ||
			    rb->wait_s > 3600)
				return error(
					"invalid --wait '%s': 0 to 3600 seconds",
					optarg);
			break;
		case OPT_JSON:
			rb->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return mig_bad_option(c, argv, "rollback");
		}
	}
	if (argc != optind)
		return error(
			"rollback takes no arguments but options; see '" MIG_PROGNAME
			" rollback --help'");
	if (!rb->mount)
		return error(
			"rollback needs --mount MOUNTPOINT; see '" MIG_PROGNAME
			" rollback --help'");
	return 0;
}

int cmd_rollback(int argc, char **argv)
{
	struct rollback rb = {
		.sessfs = "sessfs",
		.unmount = true,
		.wait_s = DEFAULT_WAIT_S,
	};
	json_t *reply = NULL, *out;
	char mode[32] = "";
	int ret, code;

	if (mig_fleet_wanted(argc, argv))
		return cmd_fleet_rollback(argc, argv);
	ret = parse_args(&rb, argc, argv);
	if (ret)
		return ret > 0 ? MIG_EXIT_OK : MIG_EXIT_USAGE;
	code = MIG_EXIT_DIFF;
	rb.steps = json_array();
	rb.start = mig_monotonic();
	if (mig_ctl_open(&rb.ctl, rb.mount, rb.ctl_dir) ||
	    mig_ctl_simple(&rb.ctl, "status", NULL, &reply))
		goto out;
	snprintf(mode, sizeof(mode), "%s",
		 json_string_value(json_object_get(reply, "mode"))
			 ? json_string_value(json_object_get(reply, "mode"))
			 : "?");
	if (!rb.json)
		printf("rollback of '%s' from mode %s to plain files\n",
		       rb.ctl.mount, mode);
	ret = roll_back(&rb, mode);
	if (rb.json) {
		out = json_pack("{s:b, s:s, s:s, s:O, s:f}", "ok", ret == 0,
				"mountpoint", rb.ctl.mount, "from", mode,
				"steps", rb.steps, "seconds",
				mig_monotonic() - rb.start);
		json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(out);
	} else if (ret == 0) {
		printf("rollback done in %.1f s: '%s' %s\n",
		       mig_monotonic() - rb.start, rb.ctl.mount,
		       rb.unmount ? "holds plain session files again"
				  : "is in mode files, still mounted");
	}
	if (ret == 0)
		code = MIG_EXIT_OK;
out:
	json_decref(reply);
	json_decref(rb.steps);
	mig_ctl_close(&rb.ctl);
	return code;
}
