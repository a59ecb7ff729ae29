/*
 * Many short runs with random shapes: tiny queues, many threads, both
 * backends, ordered and not, pull and push, cancelled at random points.
 * Uncancelled runs must account for every input exactly once (in order when
 * ordered); cancelled runs must stop, never deliver an input twice, and free
 * everything (ASan / TSan builds run this too).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringfeed/ringfeed.h"
#include "testfs.h"
#include "testimg.h"

enum { GOOD = 48, BAD = 12, N = GOOD + BAD, SIDE = 6 };

static char *dataset;

static void make_dataset(void)
{
	dataset = tfs_mkdtemp();
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "s-%03d", i);
		if (i % 5 == 4) { /* every fifth input is bad: empty, junk or a cut PNG */
			static const char junk[] = "definitely not an image";
			cr_assert_eq(tfs_write(dataset, name, junk, (size_t)(i % 3) * 8), 0);
			continue;
		}
		uint8_t px[SIDE * SIDE * 3];
		memset(px, i, sizeof(px));
		char *path = tfs_path(dataset, name);
		cr_assert_eq(timg_write(path, "png", SIDE, SIDE, 3, px), 0);
		free(path);
	}
}

static void drop_dataset(void)
{
	tfs_rmtree(dataset);
	free(dataset);
}

TestSuite(stress, .init = make_dataset, .fini = drop_dataset);

struct tally {
	pthread_mutex_t lock;
	uint8_t seen[N]; /* deliveries per input, over all epochs */
	bool ordered;
	long next_ok; /* ordered runs: last index delivered as an image */
	int out_of_order;
	int stop_after; /* push runs: fail after this many batches, 0 = never */
	int batches;
};

static void record(struct tally *t, const rf_batch *b)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < rf_batch_count(b); i++) {
		uint64_t index = rf_batch_index(b, i);
		const uint8_t *px = (const uint8_t *)rf_batch_data(b) + i * rf_batch_slot_bytes(b);
		if (index >= N || px[0] != (uint8_t)index)
			t->out_of_order += 1000; /* wrong pixels for the slot: always a failure */
		else
			t->seen[index]++;
		if (t->ordered && (long)index <= t->next_ok)
			t->out_of_order++;
		t->next_ok = (long)index;
	}
	for (size_t e = 0; e < rf_batch_error_count(b); e++) {
		uint64_t index = rf_batch_error(b, e)->index;
		if (index < N)
			t->seen[index]++;
	}
	t->batches++;
	pthread_mutex_unlock(&t->lock);
}

static int push_fn(const rf_batch *b, void *user)
{
	struct tally *t = user;
	record(t, b);
	pthread_mutex_lock(&t->lock);
	int stop = t->stop_after && t->batches >= t->stop_after;
	pthread_mutex_unlock(&t->lock);
	return stop ? 1 : 0;
}

struct canceller {
	rf_pipeline *p;
	useconds_t delay;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	usleep(c->delay);
	rf_pipeline_cancel(c->p);
	return NULL;
}

static int pick(unsigned *seed, int lo, int hi)
{
	return lo + (int)(rand_r(seed) % (unsigned)(hi - lo + 1));
}

/* One random run; returns how it ended (0 = complete). */
static int one_run(unsigned run_seed)
{
	unsigned seed = run_seed;
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.output.width = cfg.output.height = SIDE;
	cfg.output.fit = RF_FIT_STRETCH;
	/* 0 is auto: the autotuner runs, parking threads beyond its counts. */
	cfg.loader.threads = pick(&seed, 0, 3);
	cfg.loader.io_depth = pick(&seed, 0, 8);
	cfg.loader.backend = pick(&seed, 0, 1) ? RF_BACKEND_PREAD : RF_BACKEND_AUTO;
	cfg.decoder.threads = pick(&seed, 0, 6);
	cfg.pipeline.queue_depth = pick(&seed, 1, 4);
	cfg.pipeline.prefetch_batches = pick(&seed, 1, 2);
	cfg.batch.size = pick(&seed, 1, 9);
	cfg.batch.ordered = pick(&seed, 0, 1);
	cfg.infer.threads = pick(&seed, 1, 3);
	cfg.source.epochs = pick(&seed, 1, 2);
	cfg.source.shuffle = pick(&seed, 0, 1);
	cfg.batch.drop_last = false;
	bool push = pick(&seed, 0, 1);
	int cancel = pick(&seed, 0, 3); /* 0: none, 1: from a thread, 2: by the consumer, 3: user error (push) */

	/* Order is only observable with one consumer thread: several push threads record in any order. */
	struct tally t = {.ordered = cfg.batch.ordered && (!push || cfg.infer.threads == 1) && !cfg.source.shuffle &&
				     cfg.source.epochs == 1,
			  .next_ok = -1};
	pthread_mutex_init(&t.lock, NULL);
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dataset), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "seed %u: %s", run_seed, rf_pipeline_error(p));
	pthread_t canceller;
	struct canceller c = {p, (useconds_t)pick(&seed, 0, 3000)};
	if (cancel == 1)
		pthread_create(&canceller, NULL, cancel_later, &c);
	int rc;
	if (push) {
		t.stop_after = cancel == 3 ? pick(&seed, 1, 4) : 0;
		rc = rf_pipeline_run(p, push_fn, &t);
	} else {
		int stop_at = cancel >= 2 ? pick(&seed, 0, 5) : -1;
		rf_batch *b;
		int got = 0;
		while ((rc = rf_pipeline_next(p, &b)) == 0) {
			record(&t, b);
			rf_batch_release(b);
			if (++got == stop_at)
				rf_pipeline_cancel(p);
		}
		if (rc == RF_EOF)
			rc = 0;
	}
	if (cancel == 1)
		pthread_join(canceller, NULL);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	int epochs = cfg.source.epochs;
	for (int i = 0; i < N; i++)
		cr_assert_leq(t.seen[i], epochs, "seed %u: input %d delivered %d times", run_seed, i, t.seen[i]);
	cr_assert_eq(t.out_of_order, 0, "seed %u: %d slots out of order or with wrong pixels", run_seed, t.out_of_order);
	if (rc == 0) {
		for (int i = 0; i < N; i++)
			cr_assert_eq(t.seen[i], epochs, "seed %u: input %d delivered %d times", run_seed, i, t.seen[i]);
		cr_assert_eq(s.ok, (uint64_t)GOOD * epochs, "seed %u", run_seed);
		cr_assert_eq(s.failed, (uint64_t)BAD * epochs, "seed %u", run_seed);
	} else {
		cr_assert(rc == RF_ECANCELED || rc == RF_EUSER, "seed %u: ended with %s", run_seed, rf_err_name(rc));
	}
	rf_pipeline_close(p);
	pthread_mutex_destroy(&t.lock);
	return rc;
}

Test(stress, random_shapes_and_cancel_points, .timeout = 240)
{
	const char *env = getenv("RF_STRESS_RUNS");
	int runs = env ? atoi(env) : 150;
	int completed = 0, stopped = 0;
	for (int i = 0; i < runs; i++) {
		if (one_run(1000u + (unsigned)i) == 0)
			completed++;
		else
			stopped++;
	}
	cr_assert_gt(completed, runs / 10, "too few runs completed to check accounting");
	cr_assert_gt(stopped, runs / 10, "too few runs were cancelled to check shutdown");
}
