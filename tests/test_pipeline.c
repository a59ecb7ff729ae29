/* Whole pipeline runs: ordering, accounting of every item, both APIs, cancel, stats. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline.h"
#include "ringfeed/ringfeed.h"
#include "sampler.h"
#include "testfs.h"
#include "testimg.h"

enum { SIDE = 8 };

/* A flat PNG whose red channel is index % 251 and green index / 251: identifies the input. */
static void write_indexed_png(const char *dir, const char *name, size_t index)
{
	uint8_t px[SIDE * SIDE * 3];
	for (int i = 0; i < SIDE * SIDE; i++) {
		px[i * 3] = (uint8_t)(index % 251);
		px[i * 3 + 1] = (uint8_t)(index / 251);
		px[i * 3 + 2] = 7;
	}
	char *path = tfs_path(dir, name);
	cr_assert_eq(timg_write(path, "png", SIDE, SIDE, 3, px), 0);
	free(path);
}

static void base_config(rf_config *cfg)
{
	rf_config_init(cfg);
	cfg->output.width = SIDE;
	cfg->output.height = SIDE;
	cfg->output.fit = RF_FIT_STRETCH;
	cfg->decoder.threads = 2;
	cfg->batch.size = 7;
}

/* n indexed PNGs named img-00000.png ... in a fresh directory. */
static char *make_dataset(size_t n)
{
	char *dir = tfs_mkdtemp();
	char name[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "img-%05zu.png", i);
		write_indexed_png(dir, name, i);
	}
	return dir;
}

static size_t decoded_index(const rf_batch *b, size_t slot)
{
	const uint8_t *px = (const uint8_t *)rf_batch_data(b) + slot * rf_batch_slot_bytes(b);
	return (size_t)px[0] + 251 * (size_t)px[1];
}

static rf_pipeline *open_started(const rf_config *cfg, const char *input)
{
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, input), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	return p;
}

/* Pulls everything; checks each slot's pixels match its index; returns the number of images. */
static size_t pull_all(rf_pipeline *p, bool ordered, uint8_t *seen, size_t n)
{
	rf_batch *b;
	int rc;
	size_t images = 0, expect = 0;
	uint64_t sequence = 0;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		cr_assert_eq(rf_batch_sequence(b), sequence++);
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			size_t index = (size_t)rf_batch_index(b, i);
			cr_assert_lt(index, n);
			cr_assert_eq(decoded_index(b, i), index, "slot %zu has pixels of another image", i);
			if (ordered)
				cr_assert_eq(index, expect, "out of order");
			expect = index + 1;
			seen[index]++;
			images++;
		}
		rf_batch_release(b);
	}
	cr_assert_eq(rc, RF_EOF, "next returned %s: %s", rf_err_name(rc), rf_pipeline_error(p));
	return images;
}

static void check_run(bool ordered, rf_backend backend, int decoders, int queue_depth, int io_depth)
{
	enum { N = 150 };
	char *dir = make_dataset(N);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.ordered = ordered;
	cfg.loader.backend = backend;
	cfg.decoder.threads = decoders;
	cfg.pipeline.queue_depth = queue_depth;
	cfg.loader.io_depth = io_depth;
	rf_pipeline *p = open_started(&cfg, dir);
	uint8_t seen[N] = {0};
	cr_assert_eq(pull_all(p, ordered, seen, N), N);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(seen[i], 1, "item %zu seen %d times", i, seen[i]);
	rf_stats s;
	cr_assert_eq(rf_pipeline_stats(p, &s), 0);
	cr_assert_eq(s.total, N);
	cr_assert_eq(s.ok, N);
	cr_assert_eq(s.failed, 0);
	cr_assert_eq(s.batches, (N + 6) / 7);
	cr_assert_eq(s.stages[RF_STAGE_DECODER].items, N);
	cr_assert_eq(s.stages[RF_STAGE_LOADER].items, N);
	cr_assert_eq(s.stages[RF_STAGE_DECODER].threads, decoders);
	cr_assert_geq(s.first_batch_seconds, 0.0);
	cr_assert(s.starved_fraction >= 0.0 && s.starved_fraction <= 1.0);
	cr_assert_gt(s.bytes_read, 0);
	cr_assert_gt(s.queues[RF_QUEUE_DECODE].peak_depth, 0);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, ordered_uring, .timeout = 60)
{
	check_run(true, RF_BACKEND_AUTO, 2, 0, 64);
}

Test(pipeline, ordered_pread_many_decoders, .timeout = 60)
{
	check_run(true, RF_BACKEND_PREAD, 4, 0, 64);
}

Test(pipeline, unordered_uring, .timeout = 60)
{
	check_run(false, RF_BACKEND_AUTO, 3, 0, 64);
}

Test(pipeline, tiny_queues_ordered_do_not_deadlock, .timeout = 60)
{
	check_run(true, RF_BACKEND_AUTO, 4, 1, 1);
}

Test(pipeline, tiny_queues_unordered_do_not_deadlock, .timeout = 60)
{
	check_run(false, RF_BACKEND_PREAD, 3, 1, 1);
}

/* Good images mixed with every kind of bad input: each ends as exactly one result or error. */
static void check_mixed(rf_backend backend, bool ordered)
{
	char *dir = tfs_mkdtemp();
	enum { N = 40 };
	uint8_t *good_png = NULL;
	size_t png_len = 0;
	char name[32];
	int expect_code[N];
	for (size_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "m-%03zu", i);
		expect_code[i] = 0;
		switch (i % 5) {
		case 0:
		case 1:
			write_indexed_png(dir, name, i);
			break;
		case 2: { /* truncated: the first half of a valid PNG */
			uint8_t px[SIDE * SIDE * 3];
			memset(px, (int)i, sizeof(px));
			good_png = timg_encode("png", SIDE, SIDE, 3, px, &png_len);
			cr_assert_eq(tfs_write(dir, name, good_png, png_len / 2), 0);
			free(good_png);
			expect_code[i] = RF_EDECODE;
			break;
		}
		case 3: /* empty */
			cr_assert_eq(tfs_write(dir, name, "", 0), 0);
			expect_code[i] = RF_EFORMAT;
			break;
		case 4: { /* random bytes */
			uint8_t junk[777];
			for (size_t k = 0; k < sizeof(junk); k++)
				junk[k] = (uint8_t)(k * 131 + i * 17 + 3);
			cr_assert_eq(tfs_write(dir, name, junk, sizeof(junk)), 0);
			expect_code[i] = RF_EFORMAT;
			break;
		}
		}
	}
	/* A list file naming every input plus a missing one at the end. */
	char *list = tfs_path(dir, "list.txt");
	FILE *f = fopen(list, "w");
	for (size_t i = 0; i < N; i++)
		fprintf(f, "%s/m-%03zu\n", dir, i);
	fprintf(f, "%s/does-not-exist.png\n", dir);
	fclose(f);
	char *at = NULL;
	cr_assert_gt(asprintf(&at, "@%s", list), 0);

	rf_config cfg;
	base_config(&cfg);
	cfg.loader.backend = backend;
	cfg.batch.ordered = ordered;
	rf_pipeline *p = open_started(&cfg, at);
	cr_assert_eq(rf_pipeline_item_count(p), N + 1);
	uint8_t seen[N + 1] = {0};
	rf_batch *b;
	int rc;
	size_t failed = 0, ok = 0;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			size_t index = (size_t)rf_batch_index(b, i);
			cr_assert_eq(expect_code[index], 0, "bad input %zu delivered as an image", index);
			cr_assert_eq(decoded_index(b, i), index);
			seen[index]++;
			ok++;
		}
		for (size_t e = 0; e < rf_batch_error_count(b); e++) {
			const rf_item_error *err = rf_batch_error(b, e);
			cr_assert_leq(err->index, N);
			int want = err->index == N ? RF_EIO : expect_code[err->index];
			cr_assert_eq(err->code, want, "input %llu: code %s, reason %s", (unsigned long long)err->index,
				     rf_err_name(err->code), err->reason);
			cr_assert_gt(strlen(err->reason), 0);
			cr_assert_not_null(strstr(err->path, dir));
			seen[err->index]++;
			failed++;
		}
		rf_batch_release(b);
	}
	cr_assert_eq(rc, RF_EOF);
	for (size_t i = 0; i <= N; i++)
		cr_assert_eq(seen[i], 1, "input %zu accounted for %d times", i, seen[i]);
	cr_assert_eq(ok, 16);
	cr_assert_eq(failed, N + 1 - 16);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert_eq(s.ok, ok);
	cr_assert_eq(s.failed, failed);
	cr_assert_eq(s.items, N + 1);
	rf_pipeline_close(p);
	free(at);
	free(list);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, mixed_bad_inputs_uring_ordered, .timeout = 60)
{
	check_mixed(RF_BACKEND_AUTO, true);
}

Test(pipeline, mixed_bad_inputs_pread_unordered, .timeout = 60)
{
	check_mixed(RF_BACKEND_PREAD, false);
}

/*
 * on_error = fail stops at the first failed item, in input order: every image
 * before it arrives, then a batch ending with its record, then RF_EITEM; the
 * same whatever the timing (batches waiting ready were thrown away before).
 */
Test(pipeline, on_error_fail_stops_with_the_path, .timeout = 60)
{
	char *dir = make_dataset(30);
	cr_assert_eq(tfs_write(dir, "img-00010x.png", "not an image", 12), 0); /* input 11, after img-00010 */
	for (int round = 0; round < 6; round++) {
		rf_config cfg;
		base_config(&cfg);
		cfg.pipeline.on_error = RF_ON_ERROR_FAIL;
		rf_pipeline *p = open_started(&cfg, dir);
		if (round % 2)
			usleep(200 * 1000); /* every batch the pool holds is ready before the first is taken */
		rf_batch *b;
		int rc;
		size_t images = 0, errors = 0;
		while ((rc = rf_pipeline_next(p, &b)) == 0) {
			cr_assert_eq(errors, 0, "a batch after the failure");
			for (size_t i = 0; i < rf_batch_count(b); i++)
				cr_assert_eq(rf_batch_index(b, i), images++, "images out of order");
			errors += rf_batch_error_count(b);
			if (rf_batch_error_count(b)) {
				cr_assert_eq(rf_batch_error(b, 0)->index, 11);
				cr_assert_not_null(strstr(rf_batch_error(b, 0)->path, "img-00010x.png"));
			}
			rf_batch_release(b);
			if (round >= 4)
				usleep(20 * 1000); /* a slow consumer */
		}
		cr_assert_eq(rc, RF_EITEM, "got %s", rf_err_name(rc));
		cr_assert_eq(images, 11, "round %d: %zu images before the failure, not 11", round, images);
		cr_assert_eq(errors, 1);
		cr_assert_not_null(strstr(rf_pipeline_error(p), "img-00010x.png"), "%s", rf_pipeline_error(p));
		cr_assert_eq(rf_pipeline_next(p, &b), RF_EITEM, "the failure sticks");
		rf_stats s;
		rf_pipeline_stats(p, &s);
		cr_assert_eq(s.ok, 11);
		cr_assert_eq(s.failed, 1);
		rf_pipeline_close(p);
	}
	tfs_rmtree(dir);
	free(dir);
}

/* make_dataset(n) with input bad's file replaced by one that is not an image. */
static char *make_dataset_failing_at(size_t n, size_t bad)
{
	char *dir = make_dataset(n);
	char name[32];
	snprintf(name, sizeof(name), "img-%05zu.png", bad);
	cr_assert_eq(tfs_write(dir, name, "not an image", 12), 0);
	return dir;
}

/* base_config with on_error = fail and batches of batch_size. */
static void fail_fast_config(rf_config *cfg, int batch_size)
{
	base_config(cfg);
	cfg->batch.size = batch_size;
	cfg->pipeline.on_error = RF_ON_ERROR_FAIL;
}

/*
 * on_error = fail with every batch of the pool filled before the consumer
 * comes: the failure finds no batch free, and must still end the stream with
 * nothing after it (its record used to ride on the next batch sealed, with
 * images from after the failure). A resume from the state saved then starts
 * at the failed item, so once the file is mended the rest arrives.
 */
Test(pipeline, on_error_fail_delivers_nothing_after_the_failure_when_no_batch_is_free, .timeout = 60)
{
	enum { N = 40, BAD = 12 };
	char *dir = make_dataset_failing_at(N, BAD);
	rf_config cfg;
	fail_fast_config(&cfg, 2);
	rf_pipeline *p = open_started(&cfg, dir);
	usleep(300 * 1000);
	rf_batch *b;
	int rc;
	size_t images = 0, errors = 0;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		cr_assert_eq(errors, 0, "a batch after the failure");
		for (size_t i = 0; i < rf_batch_count(b); i++, images++)
			cr_assert_eq(rf_batch_index(b, i), images, "image %llu after %zu images",
				     (unsigned long long)rf_batch_index(b, i), images);
		errors += rf_batch_error_count(b);
		if (rf_batch_error_count(b))
			cr_assert_eq(rf_batch_error(b, 0)->index, BAD);
		rf_batch_release(b);
	}
	cr_assert_eq(rc, RF_EITEM, "got %s", rf_err_name(rc));
	cr_assert_eq(images, BAD);
	cr_assert_eq(errors, 1);
	char state[256];
	cr_assert_eq(rf_pipeline_save_state(p, state, sizeof(state)), 0);
	rf_pipeline_close(p);

	write_indexed_png(dir, "img-00012.png", BAD);
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_resume(p, state), 0, "%s", state);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	size_t next = BAD;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		cr_assert_eq(rf_batch_error_count(b), 0);
		for (size_t i = 0; i < rf_batch_count(b); i++)
			cr_assert_eq(rf_batch_index(b, i), next++, "state '%s'", state);
		rf_batch_release(b);
	}
	cr_assert_eq(rc, RF_EOF, "got %s", rf_err_name(rc));
	cr_assert_eq(next, N, "state '%s': the resumed run ended at %zu", state, next);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

struct fail_puller {
	rf_pipeline *p;
	int rc;
	char state[256];
	rf_stats stats;
};

/* Pulls until the run stops; then, at once, saves the state and reads the stats. */
static void *pull_until_stopped(void *arg)
{
	struct fail_puller *f = arg;
	rf_batch *b;
	while ((f->rc = rf_pipeline_next(f->p, &b)) == 0)
		rf_batch_release(b);
	rf_pipeline_save_state(f->p, f->state, sizeof(f->state));
	rf_pipeline_stats(f->p, &f->stats);
	return NULL;
}

/*
 * on_error = fail with several pullers, the failure near the end: one takes
 * the failure's batch, others find the end of the stream or are woken by the
 * stop. Every one must see RF_EITEM (one got RF_EOF, a run that looked
 * complete: 7 runs in 300), and a state saved or stats read as soon as it is
 * seen must include the failure's batch (the state resumed up to 5 images
 * early, in about 1 run in 5, and the stats could count no failure).
 */
Test(pipeline, on_error_fail_is_seen_by_every_puller, .timeout = 120)
{
	enum { PULLERS = 4, N = 20, BAD = 18 };
	char *dir = make_dataset_failing_at(N, BAD);
	rf_config cfg;
	fail_fast_config(&cfg, 2);
	char want[64];
	snprintf(want, sizeof(want), " position=%d ", BAD);
	for (int run = 0; run < 300; run++) {
		rf_pipeline *p = open_started(&cfg, dir);
		struct fail_puller f[PULLERS];
		pthread_t t[PULLERS];
		for (int i = 0; i < PULLERS; i++) {
			f[i] = (struct fail_puller){.p = p};
			cr_assert_eq(pthread_create(&t[i], NULL, pull_until_stopped, &f[i]), 0);
		}
		for (int i = 0; i < PULLERS; i++) {
			pthread_join(t[i], NULL);
			cr_assert_eq(f[i].rc, RF_EITEM, "run %d, puller %d: %s", run, i, rf_err_name(f[i].rc));
			cr_assert_not_null(strstr(f[i].state, want), "run %d, puller %d saved '%s'", run, i, f[i].state);
			cr_assert_eq(f[i].stats.failed, 1, "run %d, puller %d", run, i);
		}
		rf_pipeline_close(p);
	}
	tfs_rmtree(dir);
	free(dir);
}

/*
 * on_error = fail with the failure the first item of an epoch (here: shard 0
 * of 2, shuffled, where input 1 is not in the first epoch's share): the epoch
 * before it ends as any epoch does, its short last batch dropped under
 * drop_last, and the failure goes in a batch of its own epoch (it was sealed
 * into that short batch: one batch spanning two epochs, its image delivered).
 */
Test(pipeline, on_error_fail_keeps_batches_within_their_epoch, .timeout = 60)
{
	char *dir = make_dataset_failing_at(10, 1);
	for (int drop_last = 1; drop_last >= 0; drop_last--) {
		rf_config cfg;
		fail_fast_config(&cfg, 4);
		cfg.batch.drop_last = drop_last;
		cfg.source.epochs = 2;
		cfg.source.shuffle = true;
		cfg.source.seed = 0;
		cfg.source.shard_index = 0;
		cfg.source.shard_count = 2;
		rf_pipeline *p = open_started(&cfg, dir);
		rf_batch *b;
		int rc;
		size_t errors = 0;
		while ((rc = rf_pipeline_next(p, &b)) == 0) {
			if (drop_last && rf_batch_count(b) > 0)
				cr_assert_eq(rf_batch_count(b), 4, "a short batch under drop_last");
			for (size_t e = 0; e < rf_batch_error_count(b); e++) {
				cr_assert_eq(rf_batch_error(b, e)->index, 1);
				cr_assert_eq(rf_batch_error(b, e)->epoch, 1, "input 1 is in the second epoch's share only");
				cr_assert_eq(rf_batch_epoch(b), 1, "the failure's batch is of epoch %u", rf_batch_epoch(b));
				errors++;
			}
			rf_batch_release(b);
		}
		cr_assert_eq(rc, RF_EITEM, "got %s", rf_err_name(rc));
		cr_assert_eq(errors, 1);
		rf_stats s;
		rf_pipeline_stats(p, &s);
		cr_assert_eq(s.ok, drop_last ? 4 : 5);
		cr_assert_eq(s.dropped, drop_last ? 1 : 0, "the first epoch's short last batch");
		/* The failed item is the second epoch's first of this shard's 5 per epoch: position 5. */
		char state[256];
		cr_assert_eq(rf_pipeline_save_state(p, state, sizeof(state)), 0);
		cr_assert_not_null(strstr(state, " position=5 "), "drop_last %d: %s", drop_last, state);
		rf_pipeline_close(p);
	}
	tfs_rmtree(dir);
	free(dir);
}

/*
 * rf_pipeline_add_file takes a path as it is: a file whose name starts with
 * '@' is an image (rf_pipeline_add reads it as a list), a directory is one
 * item that fails (rf_pipeline_add walks it).
 */
Test(pipeline, add_file_takes_the_path_as_it_is, .timeout = 60)
{
	char *dir = make_dataset(3);
	write_indexed_png(dir, "@at.png", 7);
	char *cwd = getcwd(NULL, 0);
	cr_assert_not_null(cwd);
	cr_assert_eq(chdir(dir), 0); /* a relative name, as a user's list would give it */
	const char *at = "@at.png";
	rf_config cfg;
	base_config(&cfg);
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, at), RF_EIO, "rf_pipeline_add reads '@' as a list file");
	cr_assert_eq(rf_pipeline_add_file(p, at), 0);
	cr_assert_eq(rf_pipeline_add_file(p, dir), 0);
	cr_assert_eq(rf_pipeline_add_file(p, ""), RF_EINVAL);
	cr_assert_eq(rf_pipeline_item_count(p), 2);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(rf_pipeline_add_file(p, at), RF_ESTATE);
	rf_batch *b;
	size_t images = 0, errors = 0;
	while (rf_pipeline_next(p, &b) == 0) {
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			cr_assert_eq(rf_batch_index(b, i), 0);
			cr_assert_eq(decoded_index(b, i), 7);
			images++;
		}
		for (size_t e = 0; e < rf_batch_error_count(b); e++) {
			cr_assert_eq(rf_batch_error(b, e)->index, 1);
			cr_assert_not_null(strstr(rf_batch_error(b, e)->reason, "directory"), "%s",
					   rf_batch_error(b, e)->reason);
			errors++;
		}
		rf_batch_release(b);
	}
	cr_assert_eq(images, 1);
	cr_assert_eq(errors, 1);
	rf_pipeline_close(p);
	cr_assert_eq(chdir(cwd), 0);
	free(cwd);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, drop_last_and_nchw_f32_values, .timeout = 60)
{
	char *dir = make_dataset(10);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 4;
	cfg.batch.drop_last = true;
	cfg.output.layout = RF_LAYOUT_NCHW_F32;
	cfg.output.mean[0] = 1.0f;
	cfg.output.std[0] = 2.0f;
	cfg.output.mean[2] = 7.0f;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	size_t images = 0;
	while (rf_pipeline_next(p, &b) == 0) {
		cr_assert_eq(rf_batch_slot_bytes(b), sizeof(float) * 3 * SIDE * SIDE);
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			const float *slot = (const float *)rf_batch_data(b) + i * 3 * SIDE * SIDE;
			float r = (float)(rf_batch_index(b, i) % 251);
			cr_assert_float_eq(slot[0], (r - 1.0f) / 2.0f, 1e-6);
			cr_assert_float_eq(slot[SIDE * SIDE * 2 + 5], 0.0f, 1e-6); /* blue 7, mean 7 */
			images++;
		}
		rf_batch_release(b);
	}
	cr_assert_eq(images, 8);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert_eq(s.dropped, 2);
	cr_assert_eq(s.items, 10);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

struct push_ctx {
	_Atomic size_t images;
	_Atomic int calls;
	int fail_at;
};

static int count_batch(const rf_batch *b, void *user)
{
	struct push_ctx *ctx = user;
	ctx->images += rf_batch_count(b);
	int call = ++ctx->calls;
	return ctx->fail_at && call == ctx->fail_at ? 42 : 0;
}

Test(pipeline, push_api_runs_on_infer_threads, .timeout = 60)
{
	char *dir = make_dataset(100);
	rf_config cfg;
	base_config(&cfg);
	cfg.infer.threads = 3;
	rf_pipeline *p = open_started(&cfg, dir);
	struct push_ctx ctx = {0};
	cr_assert_eq(rf_pipeline_run(p, count_batch, &ctx), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(ctx.images, 100);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert_eq(s.stages[RF_STAGE_INFER].threads, 3);
	cr_assert_eq(s.stages[RF_STAGE_INFER].items, 100);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, push_api_stops_on_user_error, .timeout = 60)
{
	char *dir = make_dataset(100);
	rf_config cfg;
	base_config(&cfg);
	cfg.infer.threads = 2;
	rf_pipeline *p = open_started(&cfg, dir);
	struct push_ctx ctx = {.fail_at = 3};
	cr_assert_eq(rf_pipeline_run(p, count_batch, &ctx), RF_EUSER);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "42"), "%s", rf_pipeline_error(p));
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

static void *cancel_soon(void *arg)
{
	usleep(20000);
	rf_pipeline_cancel(arg);
	rf_pipeline_cancel(arg); /* twice is harmless */
	return NULL;
}

Test(pipeline, cancel_from_another_thread_wakes_the_consumer, .timeout = 60)
{
	char *dir = make_dataset(60);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 1;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	/* Hold one batch and consume the rest slowly (60 x 10 ms), so the cancel after 20 ms lands mid-run. */
	cr_assert_eq(rf_pipeline_next(p, &b), 0);
	pthread_t t;
	pthread_create(&t, NULL, cancel_soon, p);
	int rc;
	rf_batch *more;
	size_t consumed = 1;
	while ((rc = rf_pipeline_next(p, &more)) == 0) {
		usleep(10000);
		rf_batch_release(more);
		consumed++;
	}
	cr_assert_eq(rc, RF_ECANCELED);
	cr_assert_lt(consumed, 60);
	pthread_join(t, NULL);
	rf_batch_release(b);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * Runs dir through the pipeline as a user that may not read secret.png; the
 * exit status says what came out (0: two images and one "Permission denied"
 * record for secret.png, nothing else). Root reads anything, so under root
 * this runs after becoming nobody (65534).
 */
static int run_unprivileged(const char *dir, rf_backend backend)
{
	if (geteuid() == 0) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			return 20;
		prctl(PR_SET_DUMPABLE, 1); /* setuid clears it; LeakSanitizer needs it */
	}
	rf_config cfg;
	base_config(&cfg);
	cfg.loader.backend = backend;
	rf_pipeline *p;
	rf_batch *b;
	int rc, ok = 0, denied = 0, other = 0;
	if (rf_pipeline_create(&p, &cfg) || rf_pipeline_add(p, dir) || rf_pipeline_start(p))
		return 21;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		ok += (int)rf_batch_count(b);
		for (size_t e = 0; e < rf_batch_error_count(b); e++) {
			const rf_item_error *err = rf_batch_error(b, e);
			bool expected = err->code == RF_EIO && strstr(err->reason, "Permission denied") &&
					strstr(err->path, "secret.png");
			if (!expected)
				fprintf(stderr, "unexpected error record: %s: %s (%s)\n", err->path, err->reason,
					rf_err_name(err->code));
			denied += expected;
			other += !expected;
		}
		rf_batch_release(b);
	}
	rf_pipeline_close(p);
	if (rc != RF_EOF)
		return 22;
	return ok == 2 && denied == 1 && other == 0 ? 0 : 23;
}

static void check_unreadable(rf_backend backend)
{
	char *dir = make_dataset(2);
	write_indexed_png(dir, "secret.png", 2);
	char *secret = tfs_path(dir, "secret.png");
	cr_assert_eq(chmod(secret, 0), 0);
	cr_assert_eq(chmod(dir, 0755), 0); /* nobody may list it */
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(run_unprivileged(dir, backend));
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died (status %d)", status);
	cr_assert_eq(WEXITSTATUS(status), 0,
		     "backend %d: exit %d (20: cannot become nobody, 21: cannot start, 22: did not end with "
		     "RF_EOF, 23: wrong results)",
		     backend, WEXITSTATUS(status));
	free(secret);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, unreadable_file_is_an_error_record, .timeout = 60)
{
	check_unreadable(RF_BACKEND_IO_URING);
	check_unreadable(RF_BACKEND_PREAD);
}

Test(pipeline, close_while_running_stops_everything, .timeout = 60)
{
	char *dir = make_dataset(80);
	rf_config cfg;
	base_config(&cfg);
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), 0);
	rf_batch_release(b);
	rf_pipeline_close(p); /* threads mid-flight: must join and free without leaks */
	tfs_rmtree(dir);
	free(dir);
}

/* Threads of this process under SCHED_BATCH. */
static int batch_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && sched_getscheduler(atoi(e->d_name)) == SCHED_BATCH)
			n++;
	closedir(d);
	return n;
}

/* Loader threads (and only they) run batch-scheduled; `at_least` allows for io_uring's workers. */
static void check_batch_scheduled(rf_backend backend, int loaders, bool at_least)
{
	char *dir = make_dataset(300);
	rf_config cfg;
	base_config(&cfg);
	cfg.loader.backend = backend;
	cfg.loader.threads = loaders;
	cr_assert_eq(batch_threads(), 0);
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), 0);
	/* Holding the batch stalls the pipeline long before 300 files: the loaders stay alive. */
	int n = 0;
	for (int i = 0; i < 500 && (n = batch_threads()) < loaders; i++)
		usleep(10000);
	if (at_least)
		cr_assert_geq(n, loaders);
	else
		cr_assert_eq(n, loaders, "%d threads batch-scheduled, want the %d loaders", n, loaders);
	cr_assert_eq(sched_getscheduler(0), SCHED_OTHER, "the caller's policy changed");
	rf_batch_release(b);
	rf_pipeline_close(p);
	/* Joined; io_uring's workers may take a moment longer to go. */
	for (int i = 0; i < 500 && (n = batch_threads()) > 0; i++)
		usleep(10000);
	cr_assert_eq(n, 0, "%d batch-scheduled threads left after close", n);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, loader_threads_are_batch_scheduled, .timeout = 60)
{
	check_batch_scheduled(RF_BACKEND_PREAD, 2, false);
	check_batch_scheduled(RF_BACKEND_IO_URING, 1, true);
}

Test(pipeline, empty_input_ends_at_once, .timeout = 30)
{
	char *dir = tfs_mkdtemp();
	rf_config cfg;
	base_config(&cfg);
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), RF_EOF);
	cr_assert_null(b);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/* A consumer holding the whole batch pool: a timed wait must time out, then flow again. */
Test(pipeline, next_timeout_times_out_while_the_pool_is_held, .timeout = 60)
{
	char *dir = make_dataset(40);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 2;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next_timeout(p, &b, 10), RF_ESTATE);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0);
	cr_assert_eq(rf_pipeline_next_timeout(p, &b, -1), RF_EINVAL);
	rf_stats s;
	cr_assert_eq(rf_pipeline_stats(p, &s), 0);
	size_t pool = (size_t)(cfg.pipeline.prefetch_batches + cfg.infer.threads + cfg.decoder.threads + 1);
	cr_assert_eq(s.batch_pool, pool);
	rf_batch *held[16] = {0};
	for (size_t i = 0; i < pool; i++)
		cr_assert_eq(rf_pipeline_next_timeout(p, &held[i], 10000), 0, "batch %zu", i);
	cr_assert_eq(rf_pipeline_next_timeout(p, &b, 50), RF_ETIMEDOUT);
	cr_assert_null(b);
	cr_assert_eq(rf_pipeline_next_timeout(p, &b, 0), RF_ETIMEDOUT);
	size_t images = 0;
	for (size_t i = 0; i < pool; i++) {
		images += rf_batch_count(held[i]);
		rf_batch_release(held[i]);
	}
	int rc;
	while ((rc = rf_pipeline_next_timeout(p, &b, 10000)) == 0) {
		images += rf_batch_count(b);
		rf_batch_release(b);
	}
	cr_assert_eq(rc, RF_EOF);
	cr_assert_eq(images, 40);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, api_misuse_is_reported)
{
	rf_config cfg;
	base_config(&cfg);
	cfg.output.channels = 2;
	rf_pipeline *p = NULL;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), RF_ECONFIG);
	cr_assert_null(p);
	base_config(&cfg);
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), RF_ESTATE);
	cr_assert_eq(rf_pipeline_add(p, "@/nonexistent/list"), RF_EIO);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "/nonexistent/list"));
	rf_pipeline_close(p);
	rf_pipeline_close(NULL);
	rf_batch_release(NULL);
}

/* Makes io_uring_setup fail with ENOSYS in this (test) process, as a seccomp profile would. */
static void forbid_io_uring(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0, "seccomp: %s", strerror(errno));
}

Test(pipeline, auto_backend_falls_back_to_pread_without_io_uring, .timeout = 60)
{
	char *dir = make_dataset(20);
	forbid_io_uring();
	rf_config cfg;
	base_config(&cfg);
	rf_pipeline *p = open_started(&cfg, dir);
	uint8_t seen[20] = {0};
	cr_assert_eq(pull_all(p, true, seen, 20), 20);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert_not_null(strstr(s.loader_backend, "pread (io_uring unavailable"), "%s", s.loader_backend);
	rf_pipeline_close(p);

	cfg.loader.backend = RF_BACKEND_IO_URING; /* asked for explicitly: a clear failure instead */
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), RF_ESYS);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "io_uring"), "%s", rf_pipeline_error(p));
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/* Delivered input indices of a shuffled multi-epoch run, batch by batch. */
static size_t epoch_run(const char *dir, int decoders, bool drop_last, size_t *order, size_t max, int *batches,
			uint64_t *dropped)
{
	rf_config cfg;
	base_config(&cfg);
	cfg.decoder.threads = decoders;
	cfg.batch.size = 4;
	cfg.batch.drop_last = drop_last;
	cfg.source.epochs = 3;
	cfg.source.shuffle = true;
	cfg.source.seed = 7;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	size_t n = 0;
	*batches = 0;
	uint32_t last_epoch = 0;
	while (rf_pipeline_next(p, &b) == 0) {
		cr_assert_leq(rf_batch_count(b), 4);
		cr_assert_geq(rf_batch_epoch(b), last_epoch, "epochs go forward");
		last_epoch = rf_batch_epoch(b);
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			cr_assert_lt(n, max);
			cr_assert_eq(decoded_index(b, i), rf_batch_index(b, i));
			if (!drop_last)
				cr_assert_eq(rf_batch_epoch(b), n / 10, "a batch holds one epoch's images");
			order[n++] = (size_t)rf_batch_index(b, i);
		}
		(*batches)++;
		rf_batch_release(b);
	}
	rf_stats s;
	rf_pipeline_stats(p, &s);
	cr_assert_eq(s.total, 30);
	*dropped = s.dropped;
	rf_pipeline_close(p);
	return n;
}

Test(pipeline, epochs_shuffle_in_seeded_order_and_batches_stay_in_their_epoch, .timeout = 60)
{
	char *dir = make_dataset(10);
	size_t one[30], four[30];
	int batches;
	uint64_t dropped;
	cr_assert_eq(epoch_run(dir, 1, false, one, 30, &batches, &dropped), 30);
	cr_assert_eq(batches, 9, "4 + 4 + 2 per epoch");
	cr_assert_eq(dropped, 0);
	cr_assert_eq(epoch_run(dir, 4, false, four, 30, &batches, &dropped), 30);
	cr_assert_arr_eq(one, four, sizeof(one), "same seed, same order whatever the thread count");
	uint32_t perm[10];
	for (int e = 0; e < 3; e++) {
		rf__sampler_permute(perm, 10, 7, (uint64_t)e);
		for (int k = 0; k < 10; k++)
			cr_assert_eq(one[e * 10 + k], perm[k], "epoch %d position %d", e, k);
	}
	size_t kept[30];
	cr_assert_eq(epoch_run(dir, 2, true, kept, 30, &batches, &dropped), 24);
	cr_assert_eq(batches, 6);
	cr_assert_eq(dropped, 6, "the short last batch of each epoch");
	tfs_rmtree(dir);
	free(dir);
}

static void resume_config(rf_config *cfg, int decoders)
{
	base_config(cfg);
	cfg->decoder.threads = decoders;
	cfg->batch.size = 4;
	cfg->source.epochs = 2;
	cfg->source.shuffle = true;
	cfg->source.seed = 99;
}

/* Consumes up to stop batches (all if stop < 0), counting deliveries (images and failures) per input. */
static void consume(rf_pipeline *p, int stop, uint8_t *count)
{
	rf_batch *b;
	for (int k = 0; k != stop && rf_pipeline_next(p, &b) == 0; k++) {
		for (size_t i = 0; i < rf_batch_count(b); i++)
			count[rf_batch_index(b, i)]++;
		for (size_t e = 0; e < rf_batch_error_count(b); e++)
			count[rf_batch_error(b, e)->index]++;
		rf_batch_release(b);
	}
}

Test(pipeline, resume_continues_exactly_where_the_state_was_saved, .timeout = 120)
{
	enum { N = 25 };
	char *dir = make_dataset(N - 3);
	/* Failures count as deliveries too: they must not repeat or vanish across a resume. */
	cr_assert_eq(tfs_write(dir, "zz-bad-1", "nope", 4), 0);
	cr_assert_eq(tfs_write(dir, "zz-bad-2", "", 0), 0);
	cr_assert_eq(tfs_write(dir, "zz-bad-3", "\xff\xd8\xff", 3), 0);
	unsigned seed = 5;
	for (int trial = 0; trial < 12; trial++) {
		uint8_t count[N] = {0};
		rf_config cfg;
		resume_config(&cfg, 1 + trial % 3);
		rf_pipeline *p = open_started(&cfg, dir);
		int stop = (int)(rand_r(&seed) % 14); /* 2 epochs x 7 batches */
		consume(p, stop, count);
		char state[256];
		cr_assert_eq(rf_pipeline_save_state(p, state, sizeof(state)), 0);
		rf_pipeline_close(p); /* mid-run: threads stop, work in flight is thrown away */

		resume_config(&cfg, 2);
		cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
		cr_assert_eq(rf_pipeline_add(p, dir), 0);
		cr_assert_eq(rf_pipeline_resume(p, state), 0, "%s", state);
		cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
		consume(p, -1, count);
		rf_pipeline_close(p);
		for (int i = 0; i < N; i++)
			cr_assert_eq(count[i], 2, "trial %d (stopped after %d batches, state '%s'): input %d delivered %d times",
				     trial, stop, state, i, count[i]);
	}
	tfs_rmtree(dir);
	free(dir);
}

Test(pipeline, resume_refuses_a_state_for_other_data, .timeout = 60)
{
	char *dir = make_dataset(12);
	rf_config cfg;
	resume_config(&cfg, 2);
	rf_pipeline *p = open_started(&cfg, dir);
	consume(p, 1, (uint8_t[12]){0});
	char state[256];
	cr_assert_eq(rf_pipeline_save_state(p, state, sizeof(state)), 0);
	char small[10];
	cr_assert_eq(rf_pipeline_save_state(p, small, sizeof(small)), RF_EINVAL);
	cr_assert_eq(rf_pipeline_resume(p, state), RF_ESTATE, "too late once started");
	rf_pipeline_close(p);

	cfg.source.seed = 100; /* another shuffle: the position means something else */
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_resume(p, "garbage"), RF_EINVAL);
	cr_assert_eq(rf_pipeline_resume(p, state), 0);
	cr_assert_eq(rf_pipeline_start(p), RF_ECONFIG);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "seed"), "%s", rf_pipeline_error(p));
	/* A failed start is final: a second one would set the pools up again over the first. */
	cr_assert_eq(rf_pipeline_start(p), RF_ESTATE);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "seed"), "the first error stays: %s", rf_pipeline_error(p));
	rf_pipeline_close(p);

	/* As many inputs, other files: the position would name other images. */
	char *other = make_dataset(12);
	resume_config(&cfg, 2);
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, other), 0);
	cr_assert_eq(rf_pipeline_resume(p, state), 0);
	cr_assert_eq(rf_pipeline_start(p), RF_ECONFIG);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "input paths differ"), "%s", rf_pipeline_error(p));
	rf_pipeline_close(p);
	tfs_rmtree(other);
	free(other);

	/* Trailing junk: not a state; a state of format 1 (no paths) is still read. */
	char junk[300];
	snprintf(junk, sizeof(junk), "%.*s junk", (int)strcspn(state, "\n"), state);
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_resume(p, junk), RF_EINVAL, "%s", junk);
	cr_assert_eq(rf_pipeline_resume(p, "ringfeed-state 1 position=4 inputs=12 shuffle=1 seed=99 shard=0/1 equal=0\n"),
		     0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	rf_pipeline_close(p);

	resume_config(&cfg, 2);
	cfg.batch.ordered = false;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_start(p), 0);
	cr_assert_eq(rf_pipeline_save_state(p, state, sizeof(state)), RF_ESTATE, "unordered runs have no resume point");
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * A state is read exactly: numbers that wrap (a sign, more than 64 or 32
 * bits), a missing separator or a 0x are not a state, rather than a resume
 * at another shard or position.
 */
Test(pipeline, resume_refuses_numbers_that_would_wrap)
{
	static const char *const bad[] = {
		"ringfeed-state 1 position=5 inputs=10 shuffle=1 seed=99 shard=4294967296/4294967297 equal=0",
		"ringfeed-state 1 position=5 inputs=10 shuffle=1 seed=99 shard=0/1 equal=8589934592",
		"ringfeed-state 1 position=-18446744073709551611 inputs=10 shuffle=1 seed=99 shard=0/1 equal=0",
		"ringfeed-state 1 position=5 inputs=-18446744073709551606 shuffle=1 seed=99 shard=0/1 equal=0",
		"ringfeed-state 1 position=5 inputs=10 shuffle=1 seed=18446744073709551616 shard=0/1 equal=0",
		"ringfeed-state 1 position=5 inputs=10 shuffle=+1 seed=99 shard=0/1 equal=0",
		"ringfeed-state 1position=5 inputs=10 shuffle=1 seed=99 shard=0/1 equal=0",
		"ringfeed-state 1 position= 5 inputs=10 shuffle=1 seed=99 shard=0/1 equal=0",
		"ringfeed-state 2 position=5 inputs=10 paths=0x12 shuffle=1 seed=99 shard=0/1 equal=0",
		"ringfeed-state 3 position=5 inputs=10 shuffle=1 seed=99 shard=0/1 equal=0",
	};
	rf_config cfg;
	resume_config(&cfg, 2);
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(rf_pipeline_resume(p, bad[i]), RF_EINVAL, "taken: %s", bad[i]);
	cr_assert_eq(rf_pipeline_resume(p, "ringfeed-state 2 position=5 inputs=10 paths=00ff00ff00ff00ff shuffle=1 "
					   "seed=18446744073709551615 shard=0/1 equal=0 \r\n"),
		     0, "the largest seed and trailing white space are a state");
	rf_pipeline_close(p);
}

/* A finished 10 s run: 1 loader, 2 decoders, one consumer thread; shares as given. */
static rf_stats shaped(double consumer_starved, double dec_busy, double dec_starved, const char *backend)
{
	rf_stats s = {.items = 1000, .ok = 1000, .wall_seconds = 10, .starved_fraction = consumer_starved,
		      .loader_backend = backend};
	s.stages[RF_STAGE_LOADER] = (rf_stage_stats){"loader", 1, 1000, 6, 0, 4};
	s.stages[RF_STAGE_DECODER] =
		(rf_stage_stats){"decoder", 2, 1000, 20 * dec_busy, 20 * dec_starved, 20 * (1 - dec_busy - dec_starved)};
	s.stages[RF_STAGE_INFER] = (rf_stage_stats){"infer", 1, 1000, 10 * (1 - consumer_starved), 10 * consumer_starved, 0};
	return s;
}

static void expect_bottleneck(rf_stats s, int stage, const char *says)
{
	char advice[256];
	cr_assert_eq(rf_stats_bottleneck(&s, advice, sizeof(advice)), stage, "%s", advice);
	cr_assert_not_null(strstr(advice, says), "advice '%s' lacks '%s'", advice, says);
}

Test(stats, bottleneck_names_the_stage_and_what_helps)
{
	char advice[64] = "stale";
	rf_stats none = {0};
	cr_assert_eq(rf_stats_bottleneck(&none, advice, sizeof(advice)), -1);
	cr_assert_str_empty(advice);
	cr_assert_eq(rf_stats_bottleneck(NULL, NULL, 0), -1);
	expect_bottleneck(shaped(0.01, 0.5, 0.4, "io_uring"), RF_STAGE_INFER, "loading keeps up");
	expect_bottleneck(shaped(0.6, 0.97, 0.0, "io_uring"), RF_STAGE_DECODER, "decoders busy 97% (2 threads)");
	expect_bottleneck(shaped(0.6, 0.5, 0.45, "io_uring"), RF_STAGE_LOADER, "raise loader.io_depth");
	expect_bottleneck(shaped(0.6, 0.5, 0.45, "pread (io_uring unavailable: x)"), RF_STAGE_LOADER,
			  "raise loader.threads");
	expect_bottleneck(shaped(0.6, 0.5, 0.05, "io_uring"), RF_STAGE_DECODER, "waiting for CPUs");
	/* Starved decoders behind a loader that waits for room (memory, free items): not more depth. */
	rf_stats held = shaped(0.6, 0.5, 0.45, "io_uring");
	held.stages[RF_STAGE_LOADER].busy_seconds = 2;
	held.stages[RF_STAGE_LOADER].blocked_seconds = 8;
	expect_bottleneck(held, RF_STAGE_LOADER, "raise limits.memory_mb");
	/* busy 97%, but on a CPU 55% of the time: waiting for cores, more threads would not help */
	rf_stats crowded = shaped(0.6, 0.97, 0.0, "io_uring");
	crowded.stages[RF_STAGE_DECODER].cpu_seconds = 20 * 0.55;
	expect_bottleneck(crowded, RF_STAGE_DECODER, "on a CPU only 55%");
	crowded.stages[RF_STAGE_DECODER].cpu_seconds = 20 * 0.9; /* on a CPU most of the busy time */
	expect_bottleneck(crowded, RF_STAGE_DECODER, "add decoder threads");
	/* NULL advice is allowed */
	rf_stats s = shaped(0.6, 0.97, 0.0, "io_uring");
	cr_assert_eq(rf_stats_bottleneck(&s, NULL, 0), RF_STAGE_DECODER);
}

/* A real run whose consumer is slow: the stats say so. */
Test(stats, slow_consumer_is_named_the_bottleneck, .timeout = 120)
{
	char *dir = make_dataset(48);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 2;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	/*
	 * 100 ms per batch of two 8x8 PNGs, far slower than loading them: the
	 * consumer only waits for the first batch (start-up, well under the 5%
	 * of 2.4 s the rule allows even in sanitizer builds).
	 */
	while (rf_pipeline_next(p, &b) == 0) {
		usleep(100000);
		rf_batch_release(b);
	}
	rf_stats s;
	char advice[256];
	rf_pipeline_stats(p, &s);
	cr_assert_eq(rf_stats_bottleneck(&s, advice, sizeof(advice)), RF_STAGE_INFER, "%s", advice);
	/* loaders and decoders did some work on a CPU, never more than their lifetime */
	for (int i = RF_STAGE_LOADER; i <= RF_STAGE_DECODER; i++) {
		const rf_stage_stats *st = &s.stages[i];
		cr_assert_gt(st->cpu_seconds, 0, "%s", st->name);
		cr_assert_leq(st->cpu_seconds, s.wall_seconds * st->threads + 0.01, "%s: %.3f s on a CPU in %.3f s",
			      st->name, st->cpu_seconds, s.wall_seconds);
	}
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/* n PNGs of side x side RGB noise in a fresh directory. */
static char *make_noise_dataset(size_t n, int side)
{
	char *dir = tfs_mkdtemp();
	cr_assert_eq(timg_write_noise_pngs(dir, n, side), 0);
	return dir;
}

/*
 * 40 files of ~270 KB (10.8 MB) through a 2 MiB cap with 64 reads allowed in
 * flight: the io_uring loader must park files and the pread loader wait, and
 * the file buffers held never exceed what the cap leaves for them.
 */
static void check_memory_cap(rf_backend backend, const char *dir)
{
	rf_config cfg;
	base_config(&cfg);
	cfg.loader.backend = backend;
	cfg.loader.io_depth = 64;
	cfg.loader.threads = backend == RF_BACKEND_PREAD ? 4 : 1;
	cfg.batch.size = 4;
	cfg.limits.memory_mb = 2;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	size_t ok = 0;
	int rc;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		for (size_t e = 0; e < rf_batch_error_count(b); e++)
			cr_assert_fail("%s: %s", rf_batch_error(b, e)->path, rf_batch_error(b, e)->reason);
		ok += rf_batch_count(b);
		rf_batch_release(b);
	}
	cr_assert_eq(rc, RF_EOF, "%s", rf_pipeline_error(p));
	cr_assert_eq(ok, 40);
	uint64_t limit = p->budget.limit, peak = p->budget.peak;
	cr_assert_gt(limit, (1u << 20), "the cap leaves %llu bytes for file buffers", (unsigned long long)limit);
	cr_assert_leq(limit, 2u << 20);
	cr_assert_leq(peak, limit, "file buffers peaked at %llu bytes, over the %llu the cap allows",
		      (unsigned long long)peak, (unsigned long long)limit);
	cr_assert_geq(peak, 250000, "no file was ever held? peak %llu", (unsigned long long)peak);
	cr_assert_eq(p->budget.held, 0, "%llu bytes still charged at the end", (unsigned long long)p->budget.held);
	rf_pipeline_close(p);
}

Test(memory, file_buffers_stay_within_limits_memory_mb, .timeout = 120)
{
	char *dir = make_noise_dataset(40, 300);
	check_memory_cap(RF_BACKEND_IO_URING, dir);
	check_memory_cap(RF_BACKEND_PREAD, dir);
	tfs_rmtree(dir);
	free(dir);
}

Test(memory, file_larger_than_the_budget_is_an_error_record, .timeout = 60)
{
	char *dir = make_noise_dataset(1, 700); /* ~1.5 MB */
	write_indexed_png(dir, "small.png", 1);
	for (int backend = RF_BACKEND_IO_URING; backend <= RF_BACKEND_PREAD; backend++) {
		rf_config cfg;
		base_config(&cfg);
		cfg.loader.backend = (rf_backend)backend;
		cfg.limits.memory_mb = 1;
		rf_pipeline *p = open_started(&cfg, dir);
		rf_batch *b;
		size_t ok = 0, too_big = 0;
		while (rf_pipeline_next(p, &b) == 0) {
			ok += rf_batch_count(b);
			for (size_t e = 0; e < rf_batch_error_count(b); e++) {
				const rf_item_error *err = rf_batch_error(b, e);
				cr_assert_eq(err->code, RF_ETOOBIG, "%s", err->reason);
				cr_assert_not_null(strstr(err->reason, "limits.memory_mb"), "%s", err->reason);
				too_big++;
			}
			rf_batch_release(b);
		}
		cr_assert_eq(ok, 1);
		cr_assert_eq(too_big, 1);
		rf_pipeline_close(p);
	}
	tfs_rmtree(dir);
	free(dir);
}

/*
 * Under loader.direct_io a buffer is whole 4 KiB blocks: a file 100 bytes
 * under the budget's limit needs a buffer over it. The record says so (it
 * said "file is N bytes, more than the M bytes" with N below M).
 */
Test(memory, a_buffer_rounded_over_the_budget_says_so, .timeout = 60)
{
	rf_config cfg;
	base_config(&cfg);
	cfg.loader.direct_io = true;
	cfg.limits.memory_mb = 1;
	char *dir = tfs_mkdtemp();
	write_indexed_png(dir, "a.png", 1);
	rf_pipeline *p = open_started(&cfg, dir);
	uint64_t limit = p->budget.limit;
	rf_pipeline_close(p);
	cr_assert_gt(limit, 4096);
	size_t size = (size_t)limit - 100;
	char *big = calloc(1, size);
	cr_assert_eq(tfs_write(dir, "b.png", big, size), 0);
	free(big);
	p = open_started(&cfg, dir);
	rf_batch *b;
	size_t too_big = 0;
	while (rf_pipeline_next(p, &b) == 0) {
		for (size_t e = 0; e < rf_batch_error_count(b); e++) {
			const rf_item_error *err = rf_batch_error(b, e);
			unsigned long long file = 0, buffer = 0, budget = 0;
			cr_assert_eq(sscanf(err->reason, "file is %llu bytes (a buffer of %llu), more than the %llu bytes",
					    &file, &buffer, &budget),
				     3, "%s", err->reason);
			cr_assert_eq(file, size);
			cr_assert_eq(budget, limit);
			cr_assert_gt(buffer, budget, "%s", err->reason);
			too_big++;
		}
		rf_batch_release(b);
	}
	cr_assert_eq(too_big, 1);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

Test(memory, batch_pool_over_the_cap_is_a_config_error)
{
	rf_config cfg;
	char err[512];
	rf_config_init(&cfg);
	rf_config_set(&cfg, "output.layout", "nchw_f32", NULL, 0); /* 602 KB per image */
	cfg.decoder.threads = 2;
	cfg.limits.memory_mb = 64; /* 6 batches of 32 need 110 MiB */
	cr_assert_eq(rf_config_validate(&cfg, err, sizeof(err)), RF_ECONFIG);
	cr_assert_not_null(strstr(err, "limits.memory_mb"), "%s", err);
	cr_assert_not_null(strstr(err, "batch pool"), "%s", err);
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), RF_ECONFIG);
	cfg.batch.size = 8; /* 6 batches of 8: 28 MiB, fits */
	cr_assert_eq(rf_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
	/* A cap that holds the batches but not the decode buffers the config needs fails at start. */
	cfg.limits.memory_mb = 29;
	cr_assert_eq(rf_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_start(p), RF_ECONFIG);
	cr_assert_not_null(strstr(rf_pipeline_error(p), "limits.memory_mb"), "%s", rf_pipeline_error(p));
	/* The message names the least cap that works, and that one does (not another error further on). */
	const char *least = strstr(rf_pipeline_error(p), "limits.memory_mb >= ");
	cr_assert_not_null(least, "%s", rf_pipeline_error(p));
	cfg.limits.memory_mb = strtoull(least + strlen("limits.memory_mb >= "), NULL, 10);
	rf_pipeline_close(p);
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_start(p), 0, "with limits.memory_mb = %llu: %s",
		     (unsigned long long)cfg.limits.memory_mb, rf_pipeline_error(p));
	rf_pipeline_close(p);
}

/*
 * Busy time is lifetime less starved and blocked time, so a wait must count
 * while it lasts: added only at its end, busy rose through the wait and fell
 * back when it ended (the trace showed negative busy shares).
 */
Test(pipeline, busy_time_never_goes_down_mid_run, .timeout = 60)
{
	char *dir = make_dataset(40);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 2; /* a slow consumer keeps the decoders waiting for free batches */
	rf_pipeline *p = open_started(&cfg, dir);
	double last[RF_STAGE_COUNT] = {0};
	rf_batch *b;
	while (rf_pipeline_next(p, &b) == 0) {
		for (int k = 0; k < 10; k++) {
			rf_stats s;
			cr_assert_eq(rf_pipeline_stats(p, &s), 0);
			for (int i = 0; i < RF_STAGE_COUNT; i++) {
				/* 1 ms: a wait that begins or ends while the snapshot is taken */
				cr_assert_geq(s.stages[i].busy_seconds, last[i] - 1e-3, "%s busy went from %.4f to %.4f s",
					      s.stages[i].name, last[i], s.stages[i].busy_seconds);
				last[i] = s.stages[i].busy_seconds;
			}
			usleep(2000);
		}
		rf_batch_release(b);
	}
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/* The progress line and the trace read the inference stage mid-batch: a batch in hand is work. */
Test(pipeline, a_batch_in_hand_is_busy_time_before_its_release, .timeout = 60)
{
	char *dir = make_dataset(40);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 4;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), 0);
	usleep(300 * 1000);
	rf_stats s;
	cr_assert_eq(rf_pipeline_stats(p, &s), 0);
	double busy = s.stages[RF_STAGE_INFER].busy_seconds;
	cr_assert_geq(busy, 0.29, "300 ms with a batch in hand counted as %.3f s busy", busy);
	cr_assert_lt(s.starved_fraction, 0.5, "starved_fraction %.3f while the consumer works", s.starved_fraction);
	rf_batch_release(b);
	cr_assert_eq(rf_pipeline_stats(p, &s), 0);
	cr_assert_geq(s.stages[RF_STAGE_INFER].busy_seconds, busy);
	while (rf_pipeline_next(p, &b) == 0)
		rf_batch_release(b);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * More failures in a row than the batch pool holds in error-only batches
 * (6 batches x 1024 records with these settings): each such batch must ship
 * as it is sealed, or the pool runs dry with every batch sealed and unshipped
 * and the run hangs. Images after the run of failures still arrive.
 */
Test(pipeline, a_long_run_of_failures_does_not_exhaust_the_batch_pool, .timeout = 60)
{
	char *dir = make_dataset(14); /* two full batches of 7: each epoch ends with nothing filling */
	size_t missing = 7000, cap = missing * 64 + 1024, len = 0;
	char *list = malloc(cap);
	for (size_t i = 0; i < missing; i++)
		len += (size_t)snprintf(list + len, cap - len, "%s/missing-%05zu.png\n", dir, i);
	for (size_t i = 0; i < 14; i++)
		len += (size_t)snprintf(list + len, cap - len, "%s/img-%05zu.png\n", dir, i);
	cr_assert_eq(tfs_write(dir, "list.txt", list, len), 0);
	free(list);
	char *at = NULL;
	cr_assert_gt(asprintf(&at, "@%s/list.txt", dir), 0);
	for (int ordered = 0; ordered < 2; ordered++) {
		rf_config cfg;
		base_config(&cfg);
		cfg.batch.ordered = ordered;
		cfg.infer.threads = 1;
		cfg.pipeline.prefetch_batches = 2; /* 2 + 1 + 2 decoders + 1 = 6 batches */
		cfg.source.epochs = 2; /* error-only batches reuse batches that held images of epoch 0 */
		rf_pipeline *p = open_started(&cfg, at);
		rf_batch *b;
		size_t images = 0, errors = 0;
		while (rf_pipeline_next(p, &b) == 0) {
			images += rf_batch_count(b);
			errors += rf_batch_error_count(b);
			/* A batch of errors only has its first error's epoch, not that of its last use. */
			if (rf_batch_count(b) == 0)
				cr_assert_eq(rf_batch_epoch(b), rf_batch_error(b, 0)->epoch, "ordered=%d", ordered);
			rf_batch_release(b);
		}
		cr_assert_eq(images, 28, "ordered=%d", ordered);
		cr_assert_eq(errors, 2 * missing, "ordered=%d", ordered);
		rf_pipeline_close(p);
	}
	free(at);
	tfs_rmtree(dir);
	free(dir);
}

struct late_cancel {
	rf_pipeline *p;
	atomic_bool go;
	long delay_ns;
};

static void *cancel_after(void *arg)
{
	struct late_cancel *c = arg;
	while (!atomic_load(&c->go))
		;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < c->delay_ns);
	rf_pipeline_cancel(c->p);
	return NULL;
}

/*
 * A cancel that lands while rf_pipeline_start sets up (here: hashing 20000
 * paths) must still stop the run: the stages it started would otherwise fill
 * every queue and wait for a consumer that never comes, and close would wait
 * for them for ever.
 */
Test(pipeline, a_cancel_during_start_still_stops_the_run, .timeout = 120)
{
	char *dir = make_dataset(4);
	size_t n = 20000, cap = n * 128, len = 0;
	char *list = malloc(cap);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(list + len, cap - len, "%s/img-%05zu.png\n", dir, i % 4);
	cr_assert_eq(tfs_write(dir, "list.txt", list, len), 0);
	free(list);
	char *at = NULL;
	cr_assert_gt(asprintf(&at, "@%s/list.txt", dir), 0);
	rf_config cfg;
	base_config(&cfg);
	cfg.loader.backend = RF_BACKEND_PREAD; /* the io_uring loader looks at the flag itself */
	/* How long a start takes here, to spread the cancels over it. */
	rf_pipeline *p = open_started(&cfg, at);
	rf_pipeline_close(p);
	struct timespec t0, t1;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, at), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(rf_pipeline_start(p), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long start_ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
	rf_pipeline_close(p);
	for (int trial = 0; trial < 40; trial++) {
		struct late_cancel c = {.delay_ns = start_ns * trial / 40};
		cr_assert_eq(rf_pipeline_create(&c.p, &cfg), 0);
		cr_assert_eq(rf_pipeline_add(c.p, at), 0);
		pthread_t canceler;
		cr_assert_eq(pthread_create(&canceler, NULL, cancel_after, &c), 0);
		atomic_store(&c.go, true);
		int rc = rf_pipeline_start(c.p);
		pthread_join(canceler, NULL);
		rf_batch *b;
		if (rc == 0)
			cr_assert_eq(rf_pipeline_next(c.p, &b), RF_ECANCELED, "trial %d", trial);
		else
			cr_assert_eq(rc, RF_ECANCELED, "trial %d", trial);
		rf_pipeline_close(c.p); /* joins the stage threads: hangs if they were never stopped */
	}
	free(at);
	tfs_rmtree(dir);
	free(dir);
}

/* rf_pipeline_stats works any time after create: before start, and after a start that failed. */
Test(pipeline, stats_before_start_name_every_stage_and_queue)
{
	rf_config cfg;
	base_config(&cfg);
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	for (int round = 0; round < 2; round++) {
		rf_stats s;
		cr_assert_eq(rf_pipeline_stats(p, &s), 0);
		for (int i = 0; i < RF_STAGE_COUNT; i++)
			cr_assert_not_null(s.stages[i].name, "stage %d", i);
		for (int i = 0; i < RF_QUEUE_COUNT; i++)
			cr_assert_not_null(s.queues[i].name, "queue %d", i);
		cr_assert_str_eq(s.stages[RF_STAGE_INFER].name, "infer");
		rf_pipeline_cancel(p);
		cr_assert_eq(rf_pipeline_start(p), RF_ECANCELED);
	}
	rf_pipeline_close(p);
}

/* Sequence numbers count the batches handed out, even when drop_last drops an epoch's short tail. */
Test(pipeline, batch_sequences_have_no_gaps_when_a_tail_is_dropped, .timeout = 60)
{
	char *dir = make_dataset(64);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 7; /* 64 = 9 x 7 + 1: each epoch drops a batch of 1 */
	cfg.batch.drop_last = true;
	cfg.source.epochs = 3;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	uint64_t expect = 0;
	while (rf_pipeline_next(p, &b) == 0) {
		cr_assert_eq(rf_batch_sequence(b), expect, "batch %" PRIu64 " numbered %" PRIu64, expect,
			     rf_batch_sequence(b));
		expect++;
		rf_batch_release(b);
	}
	cr_assert_eq(expect, 27);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/* A batch still held once the run has ended stops counting at the end: the run's figures stay put. */
Test(pipeline, a_batch_kept_after_the_end_is_not_busy_time_of_the_run, .timeout = 60)
{
	char *dir = make_dataset(20);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 4;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b, *last = NULL;
	while (rf_pipeline_next(p, &b) == 0) {
		rf_batch_release(last);
		last = b;
	}
	rf_stats at_end, later;
	cr_assert_eq(rf_pipeline_stats(p, &at_end), 0);
	usleep(300 * 1000);
	cr_assert_eq(rf_pipeline_stats(p, &later), 0);
	double busy0 = at_end.stages[RF_STAGE_INFER].busy_seconds, busy1 = later.stages[RF_STAGE_INFER].busy_seconds;
	cr_assert_lt(busy1 - busy0, 0.001, "busy went from %.4f to %.4f s after the end", busy0, busy1);
	cr_assert_leq(busy1, later.wall_seconds + 0.001);
	rf_batch_release(last);
	cr_assert_eq(rf_pipeline_stats(p, &later), 0);
	cr_assert_lt(later.stages[RF_STAGE_INFER].busy_seconds - busy0, 0.001, "the release added its time after the end");
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * The counts of a run are of what the consumer was handed: batches waiting in
 * the ready queue are not delivered yet, and a cancel leaves them undelivered.
 */
Test(pipeline, stats_count_what_was_handed_out_not_what_waits_ready, .timeout = 60)
{
	char *dir = make_dataset(60);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 4;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	cr_assert_eq(rf_pipeline_next(p, &b), 0);
	rf_stats s;
	for (int i = 0; i < 500; i++) { /* until batches wait ready behind the one in hand */
		cr_assert_eq(rf_pipeline_stats(p, &s), 0);
		if (s.queues[RF_QUEUE_READY].depth >= 2)
			break;
		usleep(10 * 1000);
	}
	cr_assert_geq(s.queues[RF_QUEUE_READY].depth, 2, "no batch came ready in 5 s");
	cr_assert_eq(s.batches, 1, "%" PRIu64 " batches counted, 1 handed out", s.batches);
	cr_assert_eq(s.ok, 4, "%" PRIu64 " images counted, 4 handed out", s.ok);
	cr_assert_eq(s.items, 4);
	rf_batch_release(b);
	rf_pipeline_cancel(p);
	cr_assert_eq(rf_pipeline_stats(p, &s), 0);
	cr_assert_eq(s.ok, 4, "a cancel delivers nothing more");
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/* Asking for batches after the end is not waiting for one: the run's starved time stays put. */
Test(pipeline, calls_after_the_end_are_not_starved_time_of_the_run, .timeout = 60)
{
	char *dir = make_dataset(20);
	rf_config cfg;
	base_config(&cfg);
	cfg.batch.size = 4;
	rf_pipeline *p = open_started(&cfg, dir);
	rf_batch *b;
	while (rf_pipeline_next(p, &b) == 0)
		rf_batch_release(b);
	rf_stats at_end, later;
	cr_assert_eq(rf_pipeline_stats(p, &at_end), 0);
	for (int i = 0; i < 20000; i++)
		cr_assert_eq(rf_pipeline_next(p, &b), RF_EOF);
	cr_assert_eq(rf_pipeline_next_timeout(p, &b, 50), RF_EOF);
	cr_assert_eq(rf_pipeline_stats(p, &later), 0);
	double s0 = at_end.stages[RF_STAGE_INFER].starved_seconds, s1 = later.stages[RF_STAGE_INFER].starved_seconds;
	cr_assert_eq(s1, s0, "starved went from %.6f to %.6f s after the end", s0, s1);
	cr_assert_eq(later.wall_seconds, at_end.wall_seconds);
	cr_assert_eq(later.starved_fraction, at_end.starved_fraction);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * Held time stops at the run's end: a batch kept past it, or handed out just
 * after it (a cancel between a pop and the hand-over), adds nothing, and
 * takes nothing from the batches held before it.
 */
Test(pipeline, held_time_stops_at_the_end_and_never_goes_back)
{
	rf__stage_counters st = {0};
	pthread_mutex_init(&st.wait_lock, NULL);
	_Atomic uint64_t end = 0;
	uint64_t alive, spent[RF__WAIT_KINDS];
	uint64_t a = rf__wait_begin(&st, RF__HELD);
	usleep(20 * 1000);
	uint64_t e = rf__stage_end(&st, &end);
	cr_assert_eq(rf__stage_end(&st, &end), e, "the end is set once");
	usleep(20 * 1000);
	rf__stage_times(&st, &alive, spent);
	uint64_t at_end = spent[RF__HELD];
	cr_assert_eq(at_end, e - a);
	uint64_t b = rf__wait_begin(&st, RF__HELD); /* handed out after the end */
	rf__stage_times(&st, &alive, spent);
	cr_assert_eq(spent[RF__HELD], at_end, "%" PRIu64 " ns after a hand-over past the end, %" PRIu64 " before",
		     spent[RF__HELD], at_end);
	rf__wait_end(&st, RF__HELD, a);
	rf__wait_end(&st, RF__HELD, b);
	rf__stage_times(&st, &alive, spent);
	cr_assert_eq(spent[RF__HELD], at_end, "the releases after the end added %" PRId64 " ns",
		     (int64_t)(spent[RF__HELD] - at_end));
	pthread_mutex_destroy(&st.wait_lock);
}
