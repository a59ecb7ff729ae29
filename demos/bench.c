/*
 * ringfeed-bench: throughput of ringfeed against a plain loop over the same
 * decoders, on the same files, interleaved and repeated in one process.
 *
 *   ringfeed-bench [--system ringfeed,hand,cancel] [--threads 1,2] [--repeat R] [--limit N]
 *                  [--api pull|push] [--set SECTION.KEY=VALUE]... [--round-base N] PATH...
 *
 * Systems:
 *   ringfeed  the public API with a null consumer (pull: rf_pipeline_next +
 *             rf_batch_release; push: rf_pipeline_run with a callback that
 *             only counts); decoder.threads = K.
 *   hand      no queues, no loader thread: K threads over disjoint contiguous
 *             slices of the file list, each doing open + read + rf__decode_image
 *             + rf__convert into its own batch.size-slot buffer (the ceiling
 *             for ringfeed's own decoders).
 *   cancel    shutdown latency: ringfeed as above, consumed for 0..9 batches,
 *             then rf_pipeline_cancel + rf_pipeline_close, timed from the
 *             cancel call until close has joined every thread and freed
 *             everything; ten runs per round and thread count, one JSON line
 *             each ("cancel_seconds").
 * Both use one config: ImageNet mean/std, nchw_f32, 224x224 cover, then the
 * --set overrides; --threads K wins over any decoder.threads set.
 *
 * Every file is read once before timing (warm page cache). Round r runs every
 * system at every thread count in turn; each measurement is one JSON line on
 * stdout, with the process's CPU time (all threads) over the same span.
 * Exit status: 0 done, 1 a run failed, 2 usage or config error.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"
#include "source.h"
#include "ringfeed/ringfeed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define MAX_THREAD_COUNTS 16

enum { SYS_RINGFEED = 1, SYS_HAND = 2, SYS_CANCEL = 4 };

struct options {
	int systems;
	int threads[MAX_THREAD_COUNTS];
	int thread_counts;
	int repeat;
	int round_base;
	size_t limit;
	bool push;
	char **sets;
	int set_count;
	const char **inputs; /* PATH arguments, expanded once the config is known */
	int input_count;
};

/* One measurement; rf is filled for ringfeed runs only. */
struct result {
	const char *system;
	int threads;
	int round;
	unsigned long long ok, failed;
	double seconds;
	double cpu_seconds; /* user + system of the whole process, all threads */
	double first_seen;  /* ringfeed: rf_pipeline_start called to first batch in hand */
	bool has_rf;
	rf_stats rf;	   /* its strings belong to the closed pipeline: do not read them */
	char backend[160]; /* rf.loader_backend, copied */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ringfeed-bench [--system ringfeed,hand,cancel] [--threads 1,2] [--repeat R] [--limit N]\n"
		"                      [--api pull|push] [--set SECTION.KEY=VALUE]...\n"
		"                      [--round-base N] PATH...\n"
		"PATH: an image file, a directory (walked recursively, sorted) or @LIST.\n"
		"Prints one JSON line per measurement: system, threads, round, images, failed, seconds,\n"
		"images_per_second, cpu_seconds; for ringfeed also first batch times and stage shares.\n");
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- file list ------------------------------------------------------------ */

/*
 * The inputs, expanded as rf_pipeline_add expands them (lib/source.c itself:
 * directories walked in name order, source.extensions applied, @LIST files),
 * so that both systems time the same files a `ringfeed run` of the same
 * inputs would take.
 */
static int expand_inputs(const struct options *o, const rf_config *cfg, rf__source *files)
{
	rf__source_init(files, cfg->source.extensions);
	for (int i = 0; i < o->input_count; i++) {
		int rc = rf__source_add(files, o->inputs[i]);
		if (rc != 0) {
			fprintf(stderr, "ringfeed-bench: %s\n", rc == RF_ENOMEM ? "out of memory" : files->error);
			return -1;
		}
	}
	if (o->limit && files->count > o->limit) {
		for (size_t i = o->limit; i < files->count; i++)
			free(files->paths[i]);
		files->count = o->limit;
	}
	if (files->count == 0) {
		fprintf(stderr, "ringfeed-bench: no input files\n");
		return -1;
	}
	return 0;
}

/* Reads the whole of path, a regular file, into *buf (grown as needed); its length, or -1. */
static ssize_t read_file(const char *path, uint8_t **buf, size_t *cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hold the open */
	if (fd < 0)
		return -1;
	struct stat st;
	size_t need = 0, got = 0;
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (ok)
		need = (size_t)st.st_size;
	if (ok && need > *cap) {
		uint8_t *p = realloc(*buf, need);
		ok = p != NULL;
		if (ok) {
			*buf = p;
			*cap = need;
		}
	}
	while (ok && got < need) {
		ssize_t r = read(fd, *buf + got, need - got);
		if (r < 0 && errno == EINTR)
			continue;
		ok = r > 0;
		if (ok)
			got += (size_t)r;
	}
	close(fd);
	return ok ? (ssize_t)got : -1;
}

/* Puts every file in the page cache, so no run pays for storage. */
static void warm_cache(const rf__source *f)
{
	uint8_t *buf = NULL;
	size_t cap = 0;
	for (size_t i = 0; i < f->count; i++)
		read_file(f->paths[i], &buf, &cap);
	free(buf);
}

/* ---- ringfeed through the public API ----------------------------------------- */

/* What the null consumer keeps: images seen, and when the first batch reached it. */
struct tally {
	atomic_ullong ok;
	_Atomic double first; /* now_s() at the first batch; 0 until then */
};

static void tally_batch(struct tally *t, const rf_batch *b)
{
	double none = 0;
	atomic_fetch_add(&t->ok, rf_batch_count(b));
	if (atomic_load_explicit(&t->first, memory_order_relaxed) == 0)
		atomic_compare_exchange_strong(&t->first, &none, now_s());
}

static int count_batch(const rf_batch *b, void *user)
{
	tally_batch(user, b);
	return 0;
}

static int drain(rf_pipeline *p, bool push, struct tally *t)
{
	if (push)
		return rf_pipeline_run(p, count_batch, t);
	rf_batch *b;
	int rc;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		tally_batch(t, b);
		rf_batch_release(b);
	}
	return rc == RF_EOF ? 0 : rc;
}

/*
 * Timed from the call to rf_pipeline_start (which sizes and allocates; rf_stats
 * times start from after that) to the end of the data.
 */
static int run_ringfeed(const rf_config *base, const rf__source *f, int threads, bool push,
			struct result *r)
{
	rf_config cfg = *base;
	cfg.decoder.threads = threads;
	rf_pipeline *p = NULL;
	int rc = rf_pipeline_create(&p, &cfg);
	for (size_t i = 0; rc == 0 && i < f->count; i++)
		rc = rf_pipeline_add_file(p, f->paths[i]); /* expanded already */
	struct tally t = {0};
	double t0 = now_s(), c0 = cpu_s();
	if (rc == 0)
		rc = rf_pipeline_start(p);
	if (rc == 0)
		rc = drain(p, push, &t);
	r->seconds = now_s() - t0;
	r->cpu_seconds = cpu_s() - c0;
	r->ok = atomic_load(&t.ok);
	r->first_seen = t.first > 0 ? t.first - t0 : -1;
	if (rc != 0)
		fprintf(stderr, "ringfeed-bench: ringfeed: %s\n",
			p && rf_pipeline_error(p)[0] ? rf_pipeline_error(p) : rf_strerror(rc));
	else if (rf_pipeline_stats(p, &r->rf) == 0) {
		r->has_rf = true;
		snprintf(r->backend, sizeof(r->backend), "%s", r->rf.loader_backend);
	}
	r->failed = r->has_rf ? r->rf.failed : 0;
	rf_pipeline_close(p);
	return rc;
}

/* ---- hand loop: the same decoders, no queues ----------------------------------- */

struct hand_worker {
	pthread_t thread;
	const rf_config *cfg;
	const rf__converter *cv;
	const rf__source *files;
	size_t begin, end;
	unsigned long long ok, failed;
	int rc;
};

static void *hand_main(void *arg)
{
	struct hand_worker *w = arg;
	const rf_config *cfg = w->cfg;
	size_t hwc_bytes = (size_t)cfg->output.width * cfg->output.height * cfg->output.channels;
	size_t slot = rf__slot_bytes(cfg), slots = (size_t)cfg->batch.size;
	uint8_t *hwc = malloc(hwc_bytes), *batch = malloc(slot * slots), *buf = NULL;
	size_t cap = 0, filled = 0;
	rf__decoder *d = NULL;
	char reason[200];
	w->rc = hwc && batch ? rf__decoder_create(&d, cfg) : RF_ENOMEM;
	for (size_t i = w->begin; w->rc == 0 && i < w->end; i++) {
		ssize_t len = read_file(w->files->paths[i], &buf, &cap);
		if (len < 0 || rf__decode_image(d, buf, (size_t)len, hwc, reason, sizeof(reason)) != 0) {
			w->failed++;
			continue;
		}
		rf__convert(w->cv, hwc, batch + slot * filled);
		filled = filled + 1 == slots ? 0 : filled + 1;
		w->ok++;
	}
	rf__decoder_destroy(d);
	free(buf);
	free(batch);
	free(hwc);
	return NULL;
}

/* Timed from the first thread's creation to the last one's join. */
static int run_hand(const rf_config *cfg, const rf__source *f, int threads, struct result *r)
{
	struct hand_worker *w = calloc((size_t)threads, sizeof(*w));
	rf__converter *cv = malloc(sizeof(*cv));
	int rc = w && cv ? 0 : RF_ENOMEM, started = 0;
	if (cv)
		rf__converter_init(cv, cfg);
	double t0 = now_s(), c0 = cpu_s();
	for (int i = 0; rc == 0 && i < threads; i++) {
		w[i] = (struct hand_worker){.cfg = cfg, .cv = cv, .files = f};
		w[i].begin = f->count * (size_t)i / (size_t)threads;
		w[i].end = f->count * (size_t)(i + 1) / (size_t)threads;
		if (pthread_create(&w[i].thread, NULL, hand_main, &w[i]) != 0)
			rc = RF_ESYS;
		else
			started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(w[i].thread, NULL);
		r->ok += w[i].ok;
		r->failed += w[i].failed;
		if (rc == 0)
			rc = w[i].rc;
	}
	r->seconds = now_s() - t0;
	r->cpu_seconds = cpu_s() - c0;
	if (rc != 0)
		fprintf(stderr, "ringfeed-bench: hand loop: %s\n", rf_strerror(rc));
	free(cv);
	free(w);
	return rc;
}

/* One measurement: o as one JSON line on stdout, flushed; frees o. */
static void print_line(cJSON *o)
{
	char *line = cJSON_PrintUnformatted(o);
	if (line)
		printf("%s\n", line);
	fflush(stdout);
	free(line);
	cJSON_Delete(o);
}

/* ---- cancel latency ------------------------------------------------------------- */

enum { CANCEL_RUNS = 10 };

/* One run stopped after `after` batches; prints its JSON line. 0 or an RF_ code. */
static int run_cancel(const rf_config *base, const rf__source *f, int threads, int round, int after)
{
	rf_config cfg = *base;
	cfg.decoder.threads = threads;
	rf_pipeline *p = NULL;
	rf_batch *b;
	int rc = rf_pipeline_create(&p, &cfg);
	for (size_t i = 0; rc == 0 && i < f->count; i++)
		rc = rf_pipeline_add_file(p, f->paths[i]); /* expanded already */
	if (rc == 0)
		rc = rf_pipeline_start(p);
	for (int got = 0; rc == 0 && got < after && (rc = rf_pipeline_next(p, &b)) == 0; got++)
		rf_batch_release(b);
	if (rc != 0 && rc != RF_EOF) {
		fprintf(stderr, "ringfeed-bench: cancel: %s\n",
			p && rf_pipeline_error(p)[0] ? rf_pipeline_error(p) : rf_strerror(rc));
		rf_pipeline_close(p);
		return rc;
	}
	double t0 = now_s();
	rf_pipeline_cancel(p);
	rf_pipeline_close(p);
	double took = now_s() - t0;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "system", "cancel");
	cJSON_AddNumberToObject(o, "threads", threads);
	cJSON_AddNumberToObject(o, "round", round);
	cJSON_AddNumberToObject(o, "after_batches", after);
	cJSON_AddBoolToObject(o, "data_ended_first", rc == RF_EOF);
	cJSON_AddNumberToObject(o, "cancel_seconds", took);
	print_line(o);
	return 0;
}

/* ---- output -------------------------------------------------------------------- */

/* Shares of the stage's working thread time: threads the autotuner parked are not in it. */
static void add_stage(cJSON *o, const char *prefix, const rf_stage_stats *st)
{
	char key[64];
	double alive = st->busy_seconds + st->starved_seconds + st->blocked_seconds;
	snprintf(key, sizeof(key), "%s_busy_fraction", prefix);
	cJSON_AddNumberToObject(o, key, alive > 0 ? st->busy_seconds / alive : 0);
	snprintf(key, sizeof(key), "%s_starved_fraction", prefix);
	cJSON_AddNumberToObject(o, key, alive > 0 ? st->starved_seconds / alive : 0);
	snprintf(key, sizeof(key), "%s_blocked_fraction", prefix);
	cJSON_AddNumberToObject(o, key, alive > 0 ? st->blocked_seconds / alive : 0);
}

static void print_result(const struct result *r, const char *api)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "system", r->system);
	cJSON_AddNumberToObject(o, "threads", r->threads);
	cJSON_AddNumberToObject(o, "round", r->round);
	cJSON_AddNumberToObject(o, "images", (double)r->ok);
	cJSON_AddNumberToObject(o, "failed", (double)r->failed);
	cJSON_AddNumberToObject(o, "seconds", r->seconds);
	cJSON_AddNumberToObject(o, "images_per_second", r->seconds > 0 ? (double)r->ok / r->seconds : 0);
	cJSON_AddNumberToObject(o, "cpu_seconds", r->cpu_seconds);
	if (r->has_rf) {
		const rf_stats *s = &r->rf;
		cJSON_AddStringToObject(o, "api", api);
		cJSON_AddNumberToObject(o, "first_batch_seconds", s->first_batch_seconds);
		cJSON_AddNumberToObject(o, "first_batch_in_hand_seconds", r->first_seen);
		cJSON_AddNumberToObject(o, "rf_wall_seconds", s->wall_seconds);
		cJSON_AddNumberToObject(o, "consumer_starved_fraction", s->starved_fraction);
		add_stage(o, "decoder", &s->stages[RF_STAGE_DECODER]);
		add_stage(o, "loader", &s->stages[RF_STAGE_LOADER]);
		cJSON_AddStringToObject(o, "loader_backend", r->backend);
	}
	print_line(o);
}

/* ---- arguments ------------------------------------------------------------------- */

static int parse_systems(const char *s, int *out)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", s);
	*out = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "ringfeed") == 0)
			*out |= SYS_RINGFEED;
		else if (strcmp(t, "hand") == 0)
			*out |= SYS_HAND;
		else if (strcmp(t, "cancel") == 0)
			*out |= SYS_CANCEL;
		else
			return -1;
	}
	return *out ? 0 : -1;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno || end == s || *end || *out < lo || *out > hi ? -1 : 0;
}

static int parse_threads(const char *s, struct options *o)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", s);
	o->thread_counts = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		long k;
		if (o->thread_counts == MAX_THREAD_COUNTS || parse_int(t, 1, 1024, &k) != 0)
			return -1;
		o->threads[o->thread_counts++] = (int)k;
	}
	return o->thread_counts ? 0 : -1;
}

/* One option and its value; returns how many arguments it used, or -1. */
static int parse_option(struct options *o, const char *a, const char *v)
{
	long n;
	if (!v)
		return -1;
	if (strcmp(a, "--system") == 0)
		return parse_systems(v, &o->systems) == 0 ? 2 : -1;
	if (strcmp(a, "--threads") == 0)
		return parse_threads(v, o) == 0 ? 2 : -1;
	if (strcmp(a, "--set") == 0) {
		o->sets[o->set_count++] = (char *)v;
		return 2;
	}
	if (strcmp(a, "--api") == 0) {
		o->push = strcmp(v, "push") == 0;
		return o->push || strcmp(v, "pull") == 0 ? 2 : -1;
	}
	if (strcmp(a, "--repeat") == 0 && parse_int(v, 1, 1000, &n) == 0)
		o->repeat = (int)n;
	else if (strcmp(a, "--round-base") == 0 && parse_int(v, 0, 1000000, &n) == 0)
		o->round_base = (int)n;
	else if (strcmp(a, "--limit") == 0 && parse_int(v, 0, 100000000, &n) == 0)
		o->limit = (size_t)n;
	else
		return -1;
	return 2;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	*o = (struct options){
		.systems = SYS_RINGFEED | SYS_HAND, .threads = {1, 2}, .thread_counts = 2, .repeat = 3};
	if (!(o->sets = calloc((size_t)argc, sizeof(char *))) || !(o->inputs = calloc((size_t)argc, sizeof(char *))))
		return -1;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] == '-') {
			int used = parse_option(o, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
			if (used < 0) {
				fprintf(stderr, "ringfeed-bench: bad or incomplete option %s\n", argv[i]);
				return -1;
			}
			i += used - 1;
		} else {
			o->inputs[o->input_count++] = argv[i];
		}
	}
	if (o->input_count == 0) {
		fprintf(stderr, "ringfeed-bench: no input files\n");
		return -1;
	}
	return 0;
}

/* The reference config (ImageNet normalisation, 224x224 cover, NCHW f32), then --set. */
static int build_config(const struct options *o, rf_config *cfg)
{
	static const char *const defaults[][2] = {
		{"output.layout", "nchw_f32"},
		{"output.mean", "123.675,116.28,103.53"},
		{"output.std", "58.395,57.12,57.375"},
		{"output.width", "224"},
		{"output.height", "224"},
		{"output.fit", "cover"},
	};
	char err[512];
	rf_config_init(cfg);
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (rf_config_set(cfg, defaults[i][0], defaults[i][1], err, sizeof(err)) != 0) {
			fprintf(stderr, "ringfeed-bench: %s\n", err);
			return -1;
		}
	for (int i = 0; i < o->set_count; i++) {
		if (rf_config_set_pair(cfg, o->sets[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "ringfeed-bench: --set %s: %s\n", o->sets[i], err);
			return -1;
		}
	}
	if (rf_config_validate(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfeed-bench: config: %s\n", err);
		return -1;
	}
	return 0;
}

/* Round by round, every system at every thread count. Returns the exit status. */
static int bench(const struct options *o, const rf_config *cfg, const rf__source *files)
{
	for (int round = 0; round < o->repeat; round++) {
		for (int sys = SYS_RINGFEED; sys <= SYS_CANCEL; sys <<= 1) {
			for (int t = 0; t < o->thread_counts && (o->systems & sys); t++) {
				struct result r = {.threads = o->threads[t], .round = o->round_base + round};
				int rc = 0;
				if (sys == SYS_CANCEL) {
					for (int k = 0; rc == 0 && k < CANCEL_RUNS; k++)
						rc = run_cancel(cfg, files, r.threads, r.round, k);
					if (rc != 0)
						return EXIT_RUNTIME;
					continue;
				}
				if (sys == SYS_RINGFEED) {
					r.system = "ringfeed";
					rc = run_ringfeed(cfg, files, r.threads, o->push, &r);
				} else {
					r.system = "hand";
					rc = run_hand(cfg, files, r.threads, &r);
				}
				if (rc != 0)
					return EXIT_RUNTIME;
				print_result(&r, o->push ? "push" : "pull");
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	rf_config cfg;
	rf__source files = {0};
	int status = EXIT_USAGE;
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		goto out;
	}
	if (build_config(&o, &cfg) != 0 || expand_inputs(&o, &cfg, &files) != 0)
		goto out;
	warm_cache(&files);
	status = bench(&o, &cfg, &files);
out:
	rf__source_destroy(&files);
	free(o.sets);
	free(o.inputs);
	return status;
}
