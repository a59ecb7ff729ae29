/*
 * The autotuner's decisions (rf__tune_step) on made-up ticks, and the
 * autotuner inside running pipelines: parked threads, what it reports.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pipeline.h"
#include "testfs.h"
#include "testimg.h"
#include "tune.h"

static const int min[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = RF__IO_DEPTH_AUTO_FLOOR, [RF__KNOB_DECODER] = 1};
static const int max[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 128, [RF__KNOB_DECODER] = 4};
static const bool both[RF__KNOB_COUNT] = {true, true};

/* Steps n ticks of x from active; returns the decoder count and leaves the depth in *depth. */
static void steps(rf__tuner *s, rf__tune_tick x, int n, int active[RF__KNOB_COUNT])
{
	for (int i = 0; i < n; i++)
		rf__tune_step(s, &x, min, max, both, active);
}

/* Decoders waiting for input while every allowed read is in flight: the loader is what limits. */
static const rf__tune_tick starving = {.dec_busy = 0.5, .dec_starved = 0.5, .dec_cpu = 1, .load_saturated = 0.9,
				       .rate = 800};
/* Decoders saturated, on their CPUs: decode-bound with every core busy. */
static const rf__tune_tick decode_bound = {.dec_busy = 0.99, .dec_starved = 0.01, .dec_cpu = 0.95,
					   .load_blocked = 0.9, .rate = 1000};

Test(tune, starved_decoders_and_a_saturated_loader_deepen_io_depth_up_to_the_max)
{
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, starving, 1, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 32, "one tick is noise");
	steps(&s, starving, 1, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 64);
	steps(&s, starving, 2, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 128);
	steps(&s, starving, 10, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 128, "never past what the pools were sized for");
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "starved decoders get no more threads");
}

Test(tune, starved_decoders_with_an_unsaturated_loader_leave_io_depth_alone)
{
	/* The loader has room for more files but no free items or memory: more depth would not help. */
	rf__tune_tick x = starving;
	x.load_saturated = 0.1;
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, x, 20, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 32);
}

Test(tune, a_loader_that_waits_on_fed_decoders_for_half_a_second_gives_depth_back)
{
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, decode_bound, 9, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 32);
	steps(&s, decode_bound, 1, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 16);
	steps(&s, decode_bound, 200, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 4, "not below the floor");
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "decode-bound on every CPU: all decoders stay");
}

Test(tune, a_blocking_file_systems_depth_floor_holds_and_it_still_deepens)
{
	enum { FLOOR = RF__IO_DEPTH_BLOCKING_START };
	const int blocking[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = FLOOR, [RF__KNOB_DECODER] = 1};
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = FLOOR, [RF__KNOB_DECODER] = 4};
	for (int i = 0; i < 200; i++)
		rf__tune_step(&s, &decode_bound, blocking, max, both, active);
	cr_assert_eq(active[RF__KNOB_LOADER], FLOOR, "fed decoders: depth stays at the floor");
	for (int i = 0; i < 2; i++)
		rf__tune_step(&s, &starving, blocking, max, both, active);
	cr_assert_eq(active[RF__KNOB_LOADER], 2 * FLOOR, "starved decoders: deeper");
	for (int i = 0; i < 200; i++)
		rf__tune_step(&s, &decode_bound, blocking, max, both, active);
	cr_assert_eq(active[RF__KNOB_LOADER], FLOOR, "and back to the floor, not below");
}

Test(tune, saturated_decoders_on_their_cpus_get_a_thread_back)
{
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 2};
	steps(&s, decode_bound, 1, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 3);
	steps(&s, decode_bound, 5, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "up to the CPUs");
}

Test(tune, decoders_blocked_by_the_consumer_are_left_alone)
{
	rf__tune_tick x = {.dec_busy = 0.3, .dec_blocked = 0.7, .dec_cpu = 1, .load_blocked = 0.9, .rate = 300};
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, x, 100, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4);
}

/* Busy decoders mostly off the CPU: more threads than free cores. */
static rf__tune_tick oversubscribed(double rate)
{
	return (rf__tune_tick){.dec_busy = 0.95, .dec_starved = 0.05, .dec_cpu = 0.4, .load_blocked = 0.9,
			       .rate = rate};
}

Test(tune, oversubscribed_decoders_try_one_fewer_and_keep_it_when_the_rate_holds)
{
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, oversubscribed(500), 3, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "four ticks before a trial");
	steps(&s, oversubscribed(500), 1, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 3, "the trial");
	steps(&s, oversubscribed(495), 8, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 3, "1%% slower is within the noise: kept");
	steps(&s, decode_bound, 59, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 3, "held for 3 s after a trial");
	steps(&s, decode_bound, 2, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "then saturated decoders on their CPUs may grow again");
}

Test(tune, a_trial_that_slows_decoding_is_undone_and_not_retried_at_once)
{
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, oversubscribed(500), 4, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 3);
	steps(&s, oversubscribed(400), 8, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "20%% slower: undone");
	steps(&s, oversubscribed(500), 59, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "no new trial for 3 s");
	steps(&s, oversubscribed(500), 5, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 3, "then another try");
}

/*
 * Images slower than a tick: decoders add their CPU time as each image
 * finishes, so most ticks show busy decoders at 0 % CPU. That is not
 * oversubscription, and with no image finished recently there is no rate a
 * trial could hold: none starts (one did, and was kept for want of a rate).
 */
Test(tune, ticks_without_a_finished_image_start_no_trial)
{
	const rf__tune_tick lull = {.dec_busy = 1, .dec_cpu = 0, .load_blocked = 0.9, .rate = 0};
	const rf__tune_tick finish = {.dec_busy = 1, .dec_cpu = 2, .load_blocked = 0.9, .rate = 20};
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 4};
	steps(&s, lull, 40, active);
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "a trial with no rate to compare");
	for (int i = 0; i < 40; i++) {
		steps(&s, lull, 3, active);
		steps(&s, finish, 1, active);
	}
	cr_assert_eq(active[RF__KNOB_DECODER], 4, "images finishing every fourth tick, on their CPUs");
}

Test(tune, fixed_knobs_never_move)
{
	const bool none[RF__KNOB_COUNT] = {false, false};
	rf__tuner s = {0};
	int active[RF__KNOB_COUNT] = {[RF__KNOB_LOADER] = 32, [RF__KNOB_DECODER] = 2};
	for (int i = 0; i < 100; i++) {
		rf__tune_step(&s, &starving, min, max, none, active);
		rf__tune_step(&s, &decode_bound, min, max, none, active);
	}
	cr_assert_eq(active[RF__KNOB_LOADER], 32);
	cr_assert_eq(active[RF__KNOB_DECODER], 2);
}

/* ---- in a running pipeline ------------------------------------------------------------- */

static char *make_pngs(int n)
{
	char *dir = tfs_mkdtemp();
	uint8_t *px = timg_pattern(40, 30, 3, 7);
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "i%04d.png", i);
		char *path = tfs_path(dir, name);
		cr_assert_eq(timg_write(path, "png", 40, 30, 3, px), 0);
		free(path);
	}
	free(px);
	return dir;
}

static size_t drain(rf_pipeline *p)
{
	size_t n = 0;
	rf_batch *b;
	while (rf_pipeline_next(p, &b) == 0) {
		n += rf_batch_count(b);
		rf_batch_release(b);
	}
	return n;
}

/* pread with loader.threads = auto starts 64 threads, 56 of them parked: all must see the end. */
Test(tune, parked_pread_loaders_see_the_end_and_the_stats_leave_them_out, .timeout = 60)
{
	char *dir = make_pngs(300);
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.backend = RF_BACKEND_PREAD;
	cfg.output.width = cfg.output.height = 16;
	cfg.batch.size = 8;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert(s.tuned.adaptive);
	cr_assert_eq(s.tuned.io_depth, 0, "no io_depth under pread");
	cr_assert_geq(s.tuned.loader_threads, 1);
	cr_assert_leq(s.tuned.loader_threads, RF__PREAD_AUTO_MAX);
	cr_assert_eq(drain(p), 300);
	rf_pipeline_stats(p, &s);
	cr_assert_eq(s.stages[RF_STAGE_LOADER].threads, RF__PREAD_AUTO_MAX);
	/* Busy + starved + blocked is the working threads' time: far below 64 threads x wall. */
	const rf_stage_stats *ld = &s.stages[RF_STAGE_LOADER];
	double worked = ld->busy_seconds + ld->starved_seconds + ld->blocked_seconds;
	cr_assert_lt(worked, 0.5 * RF__PREAD_AUTO_MAX * s.wall_seconds, "parked time counted as work: %.3f s of %.3f",
		     worked, RF__PREAD_AUTO_MAX * s.wall_seconds);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

Test(tune, cancel_wakes_parked_threads, .timeout = 60)
{
	char *dir = make_pngs(200);
	for (int round = 0; round < 20; round++) {
		rf_config cfg;
		rf_config_init(&cfg);
		cfg.loader.backend = round % 2 ? RF_BACKEND_PREAD : RF_BACKEND_AUTO;
		cfg.output.width = cfg.output.height = 16;
		cfg.batch.size = 4;
		rf_pipeline *p;
		cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
		cr_assert_eq(rf_pipeline_add(p, dir), 0);
		cr_assert_eq(rf_pipeline_start(p), 0);
		rf_batch *b;
		for (int i = 0; i < round % 5 && rf_pipeline_next(p, &b) == 0; i++)
			rf_batch_release(b);
		if (round % 3)
			usleep(1000 * (useconds_t)(round % 4));
		rf_pipeline_cancel(p);
		cr_assert_eq(rf_pipeline_next(p, &b), RF_ECANCELED);
		rf_pipeline_close(p); /* joins every thread: a parked one left asleep would hang here */
	}
	tfs_rmtree(dir);
	free(dir);
}

Test(tune, fixed_config_reports_itself)
{
	char *dir = make_pngs(20);
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.threads = 2;
	cfg.loader.io_depth = 5;
	cfg.decoder.threads = 3;
	cfg.loader.backend = RF_BACKEND_IO_URING;
	cfg.output.width = cfg.output.height = 16;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(drain(p), 20);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert_not(s.tuned.adaptive);
	cr_assert_eq(s.tuned.decoder_threads, 3);
	cr_assert_eq(s.tuned.loader_threads, 2);
	cr_assert_eq(s.tuned.io_depth, 5);
	cr_assert_eq(s.tuned.changes, 0);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * Loading held back by limits.memory_mb (files of ~270 KB through a cap that
 * holds three or four): more depth or more pread threads would only park or
 * block more files, so the autotuner leaves both alone, and the loader's
 * waits for memory count as blocked time. (Both moved to their ceilings.)
 */
static void check_memory_bound_loading(rf_backend backend, const char *dir, size_t n)
{
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.backend = backend;
	cfg.output.width = cfg.output.height = 16;
	cfg.batch.size = 4;
	cfg.limits.memory_mb = 1;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	rf_stats s;
	rf_pipeline_stats(p, &s);
	int depth = s.tuned.io_depth, threads = s.tuned.loader_threads;
	cr_assert_eq(drain(p), n);
	rf_pipeline_stats(p, &s);
	/* Less is fair (decoders fed by the few files memory allows, as under a sanitizer); more is not. */
	cr_assert_leq(s.tuned.io_depth, depth, "io_depth %d -> %d with memory the limit", depth, s.tuned.io_depth);
	cr_assert_leq(s.tuned.loader_threads, threads, "loader threads %d -> %d with memory the limit", threads,
		      s.tuned.loader_threads);
	cr_assert_gt(s.stages[RF_STAGE_LOADER].blocked_seconds, 0, "waits for memory counted as work");
	rf_pipeline_close(p);
}

Test(tune, memory_bound_loading_gets_no_more_depth_or_threads, .timeout = 120)
{
	enum { N = 600 };
	char *dir = tfs_mkdtemp();
	cr_assert_eq(timg_write_noise_pngs(dir, N, 300), 0);
	check_memory_bound_loading(RF_BACKEND_IO_URING, dir, N);
	check_memory_bound_loading(RF_BACKEND_PREAD, dir, N);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * A consumer that pauses holds the decoders blocked on a full queue. The
 * autotuner must see that wait while it lasts: counted only once it ended, the
 * decoders looked busy and off the CPU (oversubscribed) for the whole pause,
 * one was taken away, and given back when the trial's rate (0) fell short.
 */
Test(tune, a_paused_consumer_takes_no_decoder_away, .timeout = 60)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("one CPU: decoders start at their minimum, nothing to take away");
	char *dir = make_pngs(300);
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.threads = 1;
	cfg.loader.io_depth = 16; /* only decoder.threads is left to the autotuner */
	cfg.output.width = cfg.output.height = 16;
	cfg.batch.size = 8;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert(s.tuned.adaptive);
	int decoders = s.tuned.decoder_threads;
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), 0);
	usleep(1500 * 1000); /* 30 autotuner ticks with every stage blocked behind this batch */
	rf_pipeline_stats(p, &s);
	cr_assert_eq(s.tuned.changes, 0, "the autotuner moved %" PRIu64 " times during the pause (decoders %d, now %d)",
		     s.tuned.changes, decoders, s.tuned.decoder_threads);
	cr_assert_gt(s.stages[RF_STAGE_DECODER].blocked_seconds, 1.0, "the decoders were not blocked: no pause to test");
	size_t n = rf_batch_count(b);
	rf_batch_release(b);
	cr_assert_eq(n + drain(p), 300);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}
