/*
 * ringfeed: command-line front end, built on the public API only.
 *
 *   ringfeed run [--config FILE] [--set SECTION.KEY=VALUE]... [--consumer stats|null|sleep|spin]
 *                [--cost-ms N] [--stats-json FILE] [--errors FILE] [--save-state FILE]
 *                [--resume FILE] [--list FILE] [--trace FILE] [--quiet] PATH...
 *
 * Exit status: 0 the run completed (failed items allowed under on_error = skip),
 * 1 runtime failure, 2 usage or config error (or an input, list or output file
 * that cannot be opened before the run), 130 interrupted.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130
/* --cost-ms: an hour per batch is already no accelerator. */
#define COST_MS_MAX 3600000

struct options {
	const char *config_path;
	const char *stats_json;
	const char *errors_path;
	const char *save_state;
	const char *resume;
	const char *list_path;
	const char *trace_path;
	enum consumer_kind consumer;
	double cost_ms;
	bool quiet;
	char **sets;
	int set_count;
	char **inputs;
	int input_count;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ringfeed run [--config FILE] [--set SECTION.KEY=VALUE]...\n"
		"                    [--consumer stats|null|sleep|spin] [--cost-ms N]\n"
		"                    [--stats-json FILE] [--errors FILE] [--save-state FILE]\n"
		"                    [--resume FILE] [--list FILE] [--trace FILE] [--quiet] PATH...\n"
		"       ringfeed --version\n"
		"PATH: an image file, a directory (walked recursively) or @LIST (one path per line).\n"
		"Consumers: stats = per-channel mean/std of the output (default), null = release at once,\n"
		"sleep = wait N ms per batch (an accelerator), spin = burn N ms of CPU per batch.\n"
		"--trace FILE: CSV every 100 ms of queue depths and per-stage rates (scripts/plot_trace.sh).\n"
		"Exit status: 0 completed, 1 runtime failure, 2 usage, config or input error, 130 interrupted.\n");
}

/* The options of run that take a value (--quiet and -- take none). */
static bool takes_value(const char *option)
{
	static const char *const with_value[] = {
		"--config", "--set",  "--consumer", "--cost-ms",    "--stats-json",
		"--errors", "--list", "--trace",    "--save-state", "--resume",
	};
	for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
		if (strcmp(option, with_value[i]) == 0)
			return true;
	return false;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	*o = (struct options){.consumer = CONSUMER_STATS};
	o->sets = calloc((size_t)argc, sizeof(char *));
	o->inputs = calloc((size_t)argc, sizeof(char *));
	if (!o->sets || !o->inputs)
		return -1;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;
		if (strcmp(a, "--quiet") == 0) {
			o->quiet = true;
		} else if (strcmp(a, "--") == 0) {
			while (++i < argc)
				o->inputs[o->input_count++] = argv[i];
		} else if (a[0] == '-' && a[1] == '-' && !takes_value(a)) {
			fprintf(stderr, "ringfeed: unknown option %s\n", a);
			return -1;
		} else if (a[0] == '-' && a[1] == '-' && !has_value) {
			fprintf(stderr, "ringfeed: %s needs a value\n", a);
			return -1;
		} else if (strcmp(a, "--config") == 0) {
			o->config_path = argv[++i];
		} else if (strcmp(a, "--set") == 0) {
			o->sets[o->set_count++] = argv[++i];
		} else if (strcmp(a, "--consumer") == 0) {
			if (consumer_parse(argv[++i], &o->consumer) != 0) {
				fprintf(stderr, "ringfeed: unknown consumer '%s' (stats, null, sleep or spin)\n", argv[i]);
				return -1;
			}
		} else if (strcmp(a, "--cost-ms") == 0) {
			char *end;
			o->cost_ms = strtod(argv[++i], &end);
			/* !(x <= max) also catches NaN, which would sleep for ever */
			if (*end || end == argv[i] || o->cost_ms < 0 || !(o->cost_ms <= COST_MS_MAX)) {
				fprintf(stderr, "ringfeed: --cost-ms expects milliseconds from 0 to %d\n", COST_MS_MAX);
				return -1;
			}
		} else if (strcmp(a, "--stats-json") == 0) {
			o->stats_json = argv[++i];
		} else if (strcmp(a, "--errors") == 0) {
			o->errors_path = argv[++i];
		} else if (strcmp(a, "--list") == 0) {
			o->list_path = argv[++i];
		} else if (strcmp(a, "--trace") == 0) {
			o->trace_path = argv[++i];
		} else if (strcmp(a, "--save-state") == 0) {
			o->save_state = argv[++i];
		} else if (strcmp(a, "--resume") == 0) {
			o->resume = argv[++i];
		} else {
			o->inputs[o->input_count++] = argv[i];
		}
	}
	if (o->input_count == 0) {
		fprintf(stderr, "ringfeed: no input paths\n");
		return -1;
	}
	return 0;
}

static int build_config(const struct options *o, rf_config *cfg)
{
	char err[512];
	rf_config_init(cfg);
	if (o->config_path && rf_config_load(cfg, o->config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfeed: config: %s\n", err);
		return -1;
	}
	for (int i = 0; i < o->set_count; i++) {
		if (rf_config_set_pair(cfg, o->sets[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "ringfeed: --set %s: %s\n", o->sets[i], err);
			return -1;
		}
	}
	if (rf_config_validate(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfeed: config: %s\n", err);
		return -1;
	}
	return 0;
}

/* Watches for SIGINT/SIGTERM (blocked in every other thread), draws progress, samples the trace. */
struct watcher {
	rf_pipeline *p;
	struct consumer *consumer;
	bool progress;
	struct trace *trace; /* NULL without --trace */
	_Atomic bool done;
	_Atomic bool interrupted;
};

static void *watch(void *arg)
{
	struct watcher *w = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* 100 ms ticks: a trace sample every tick, the progress line every other one. */
	struct timespec tick = {.tv_sec = 0, .tv_nsec = 100000000};
	for (unsigned n = 1; !atomic_load(&w->done); n++) {
		int sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM) {
			atomic_store(&w->interrupted, true);
			/*
			 * Cancel before cutting the consumer's batch short: the other
			 * way, a cut batch could be followed by the end of the data and
			 * the run report itself complete (exit 0).
			 */
			rf_pipeline_cancel(w->p);
			atomic_store(&w->consumer->stop, true);
		} else if (w->trace || (w->progress && n % 2 == 0)) {
			rf_stats s;
			rf_pipeline_stats(w->p, &s);
			if (w->trace)
				trace_sample(w->trace, &s);
			if (w->progress && n % 2 == 0)
				report_progress(stderr, &s);
		}
	}
	if (w->progress)
		fprintf(stderr, "\n");
	return NULL;
}

/* --resume: hands the saved state to the pipeline before it starts. */
static int load_state(rf_pipeline *p, const char *path)
{
	char state[512] = "";
	FILE *f = fopen(path, "r");
	if (!f || !fgets(state, sizeof(state), f)) {
		fprintf(stderr, "ringfeed: cannot read %s: %s\n", path, f ? "empty file" : strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	if (rf_pipeline_resume(p, state) != 0) {
		fprintf(stderr, "ringfeed: %s: %s\n", path, rf_pipeline_error(p));
		return -1;
	}
	return 0;
}

/* --save-state: where the next run should start, written whatever way this one ended. */
static int save_state(rf_pipeline *p, const char *path)
{
	char state[512];
	int rc = rf_pipeline_save_state(p, state, sizeof(state));
	if (rc != 0) {
		fprintf(stderr, "ringfeed: no state to save: %s\n",
			rc == RF_ESTATE ? "resume needs batch.ordered = true" : rf_strerror(rc));
		return -1;
	}
	/* Written aside and renamed: an interrupted write must not replace the last good state. */
	char *tmp = malloc(strlen(path) + 5);
	if (!tmp)
		return -1;
	sprintf(tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	bool ok = f && fputs(state, f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (ok && rename(tmp, path) != 0)
		ok = false;
	if (!ok) {
		fprintf(stderr, "ringfeed: cannot write %s\n", path);
		if (f)
			unlink(tmp);
	}
	free(tmp);
	return ok ? 0 : -1;
}

static int add_inputs(rf_pipeline *p, const struct options *o)
{
	for (int i = 0; i < o->input_count; i++) {
		int rc = rf_pipeline_add(p, o->inputs[i]);
		if (rc != 0) {
			fprintf(stderr, "ringfeed: %s\n", rf_pipeline_error(p));
			return -1;
		}
	}
	return 0;
}

/* Starts, consumes every batch, reports. Returns the exit status. */
/* The run and its output, with SIGINT and SIGTERM blocked (the watcher takes them). */
static int run_blocked(rf_pipeline *p, const struct options *o, struct consumer *c, struct trace *trace)
{
	int rc = rf_pipeline_start(p);
	if (rc != 0) {
		fprintf(stderr, "ringfeed: cannot start: %s\n",
			rf_pipeline_error(p)[0] ? rf_pipeline_error(p) : rf_strerror(rc));
		return rc == RF_ECONFIG ? EXIT_USAGE : EXIT_RUNTIME;
	}
	struct watcher w = {.p = p, .consumer = c, .progress = !o->quiet && isatty(STDERR_FILENO), .trace = trace};
	pthread_t watcher;
	bool watching = pthread_create(&watcher, NULL, watch, &w) == 0;
	rc = rf_pipeline_run(p, consumer_run, c);
	atomic_store(&w.done, true);
	if (watching)
		pthread_join(watcher, NULL);

	rf_stats s;
	rf_pipeline_stats(p, &s);
	if (trace)
		trace_sample(trace, &s); /* the end of the run */
	if (!o->quiet)
		report_table(stdout, &s, c);
	if (c->errors_seen > 10 && c->echo_errors)
		fprintf(stderr, "ringfeed: %llu items failed in all\n", c->errors_seen);
	/* Both outputs are attempted: one that cannot be written does not cost the other. */
	bool written = !(o->save_state && save_state(p, o->save_state) != 0);
	if (o->stats_json && report_json(o->stats_json, &s, c) != 0) {
		fprintf(stderr, "ringfeed: cannot write %s\n", o->stats_json);
		written = false;
	}
	/* A signal the watcher took after the run had ended does not make it interrupted. */
	bool interrupted = atomic_load(&w.interrupted) && rc == RF_ECANCELED;
	if (interrupted)
		fprintf(stderr, "ringfeed: interrupted\n");
	else if (rc != 0)
		fprintf(stderr, "ringfeed: error: %s\n", rf_pipeline_error(p)[0] ? rf_pipeline_error(p) : rf_strerror(rc));
	/* An output lost is a failure even after an interrupt: a resume would start from a stale state. */
	if (!written)
		return EXIT_RUNTIME;
	return interrupted ? EXIT_INTERRUPTED : rc != 0 ? EXIT_RUNTIME : 0;
}

/*
 * SIGINT and SIGTERM stay blocked until the report, the state and the stats
 * are written: a second Ctrl-C must not kill the process half way through
 * them. Any that came meanwhile are dropped (the run has stopped already).
 */
static int run_pipeline(rf_pipeline *p, const struct options *o, struct consumer *c, struct trace *trace)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int status = run_blocked(p, o, c, trace);
	struct timespec now = {0, 0};
	while (sigtimedwait(&set, NULL, &now) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}

/* Closes an output file if open; false (with a message) if its data did not reach the disk. */
static bool close_output(FILE **f, const char *path)
{
	if (!*f)
		return true;
	bool ok = fclose(*f) == 0;
	*f = NULL;
	if (!ok)
		fprintf(stderr, "ringfeed: cannot write %s\n", path);
	return ok;
}

static int cmd_run(int argc, char **argv)
{
	struct options o;
	rf_config cfg;
	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		free(o.sets);
		free(o.inputs);
		return EXIT_USAGE;
	}
	int status = EXIT_USAGE;
	rf_pipeline *p = NULL;
	struct consumer c;
	struct trace trace;
	FILE *trace_file = NULL;
	consumer_init(&c, o.consumer, o.cost_ms, &cfg);
	if (build_config(&o, &cfg) != 0)
		goto out;
	if (o.save_state && !cfg.batch.ordered) {
		fprintf(stderr, "ringfeed: --save-state needs batch.ordered = true (only an ordered run has a resume "
				"point)\n");
		goto out;
	}
	if (rf_pipeline_create(&p, &cfg) != 0) {
		fprintf(stderr, "ringfeed: cannot create the pipeline\n");
		status = EXIT_RUNTIME;
		goto out;
	}
	if (add_inputs(p, &o) != 0 || (o.resume && load_state(p, o.resume) != 0))
		goto out;
	if (o.errors_path && !(c.errors_file = fopen(o.errors_path, "w"))) {
		fprintf(stderr, "ringfeed: cannot write %s: %s\n", o.errors_path, strerror(errno));
		goto out;
	}
	if (o.list_path && !(c.list_file = fopen(o.list_path, "w"))) {
		fprintf(stderr, "ringfeed: cannot write %s: %s\n", o.list_path, strerror(errno));
		goto out;
	}
	if (o.trace_path) {
		if (!(trace_file = fopen(o.trace_path, "w"))) {
			fprintf(stderr, "ringfeed: cannot write %s: %s\n", o.trace_path, strerror(errno));
			goto out;
		}
		trace_begin(&trace, trace_file);
	}
	/* Under on_error = fail the one failure is the run's error, said once at the end. */
	c.echo_errors = !o.quiet && !o.errors_path && cfg.pipeline.on_error != RF_ON_ERROR_FAIL;
	status = run_pipeline(p, &o, &c, trace_file ? &trace : NULL);
	consumer_flush(&c);
	if (!close_output(&c.errors_file, o.errors_path) || !close_output(&c.list_file, o.list_path) ||
	    !close_output(&trace_file, o.trace_path))
		status = EXIT_RUNTIME;
out:
	close_output(&c.errors_file, o.errors_path);
	close_output(&c.list_file, o.list_path);
	close_output(&trace_file, o.trace_path);
	rf_pipeline_close(p);
	consumer_destroy(&c);
	free(o.sets);
	free(o.inputs);
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("ringfeed %s\n", rf_version());
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return EXIT_USAGE;
}
