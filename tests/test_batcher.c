/* The batcher driven by hand: reorder window, slots, error records, drop_last. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

enum { W = 2, H = 2, C = 1 };

static rf_pipeline *make(size_t n, int batch_size, bool ordered, bool drop_last)
{
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.output.width = W;
	cfg.output.height = H;
	cfg.output.channels = C;
	cfg.batch.size = batch_size;
	cfg.batch.ordered = ordered;
	cfg.batch.drop_last = drop_last;
	cfg.decoder.threads = 1;
	cfg.loader.backend = RF_BACKEND_PREAD;
	cfg.pipeline.prefetch_batches = 64; /* room for every batch: nobody consumes while we submit */
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	char path[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "in-%zu", i);
		cr_assert_eq(rf_pipeline_add(p, path), 0);
	}
	cr_assert_eq(rf__pipeline_prepare(p), 0);
	return p;
}

/* Takes free items for inputs 0..n-1; failing[i] marks the ones that failed. */
static rf__item **take_items(rf_pipeline *p, size_t n, const bool *failing)
{
	cr_assert_geq(p->item_count, n, "the test needs every item alive at once");
	rf__item **items = calloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		int rc;
		items[i] = rf__loader_take_item(p, false, &rc);
		cr_assert_not_null(items[i]);
		cr_assert_eq(items[i]->seq, i);
		memset(items[i]->pixels, (int)(i & 0xff), W * H * C);
		if (failing && failing[i])
			rf__item_fail(items[i], RF_EDECODE, "bad item %zu", i);
	}
	return items;
}

/* Pops every shipped batch and hands it out; checks slot pixels match their indices. Returns them in order. */
static size_t drain(rf_pipeline *p, rf_batch **out, size_t max)
{
	size_t n = 0;
	void *v;
	while (rf__queue_try_pop(&p->batcher.ready, &v) == 0) {
		rf_batch *b = v;
		rf__batcher_hand_out(&p->batcher, b);
		cr_assert_lt(n, max);
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			const uint8_t *px = (const uint8_t *)rf_batch_data(b) + i * rf_batch_slot_bytes(b);
			cr_assert_eq(px[0], rf_batch_index(b, i) & 0xff, "slot %zu holds the wrong pixels", i);
		}
		out[n++] = b;
	}
	return n;
}

Test(batcher, ordered_reverse_submission_comes_out_in_order)
{
	enum { N = 23 };
	rf_pipeline *p = make(N, 5, true, false);
	rf__item **items = take_items(p, N, NULL);
	for (int i = N - 1; i >= 0; i--)
		rf__batcher_submit(p, items[i]);
	rf__batcher_finish(p);
	rf_batch *batches[16];
	size_t nb = drain(p, batches, 16);
	cr_assert_eq(nb, 5);
	uint64_t expect = 0;
	for (size_t k = 0; k < nb; k++) {
		cr_assert_eq(rf_batch_sequence(batches[k]), k);
		cr_assert_eq(rf_batch_count(batches[k]), k < 4 ? 5u : 3u);
		for (size_t i = 0; i < rf_batch_count(batches[k]); i++)
			cr_assert_eq(rf_batch_index(batches[k], i), expect++);
		cr_assert_str_eq(rf_batch_path(batches[k], 0), p->source.paths[rf_batch_index(batches[k], 0)]);
	}
	cr_assert_eq(expect, N);
	for (size_t k = 0; k < nb; k++)
		rf_batch_release(batches[k]);
	free(items);
	rf_pipeline_close(p);
}

Test(batcher, failures_take_no_slot_and_are_reported_in_order)
{
	enum { N = 20 };
	bool failing[N] = {false};
	failing[0] = failing[3] = failing[4] = failing[19] = true;
	rf_pipeline *p = make(N, 4, true, false);
	rf__item **items = take_items(p, N, failing);
	/* Interleaved submission: odd indices first. */
	for (int i = 1; i < N; i += 2)
		rf__batcher_submit(p, items[i]);
	for (int i = 0; i < N; i += 2)
		rf__batcher_submit(p, items[i]);
	rf__batcher_finish(p);
	rf_batch *batches[16];
	size_t nb = drain(p, batches, 16);
	uint64_t next_ok = 0, errors = 0, last_error = 0, images = 0;
	for (size_t k = 0; k < nb; k++) {
		for (size_t i = 0; i < rf_batch_count(batches[k]); i++) {
			while (failing[next_ok])
				next_ok++;
			cr_assert_eq(rf_batch_index(batches[k], i), next_ok++);
			images++;
		}
		for (size_t e = 0; e < rf_batch_error_count(batches[k]); e++) {
			const rf_item_error *err = rf_batch_error(batches[k], e);
			cr_assert(failing[err->index]);
			cr_assert(errors == 0 || err->index > last_error, "errors out of order");
			cr_assert_eq(err->code, RF_EDECODE);
			char want[32];
			snprintf(want, sizeof(want), "bad item %llu", (unsigned long long)err->index);
			cr_assert_str_eq(err->reason, want);
			cr_assert_str_eq(err->path, p->source.paths[err->index]);
			last_error = err->index;
			errors++;
		}
	}
	cr_assert_eq(images, 16);
	cr_assert_eq(errors, 4);
	/* 16 images in full batches of 4; every batch is full. */
	for (size_t k = 0; k < nb; k++)
		cr_assert(rf_batch_count(batches[k]) == 4 || rf_batch_count(batches[k]) == 0);
	cr_assert_eq(p->batcher.ok, 16);
	cr_assert_eq(p->batcher.failed, 4);
	for (size_t k = 0; k < nb; k++)
		rf_batch_release(batches[k]);
	free(items);
	rf_pipeline_close(p);
}

Test(batcher, drop_last_drops_and_counts_the_short_tail)
{
	enum { N = 10 };
	rf_pipeline *p = make(N, 4, false, true);
	rf__item **items = take_items(p, N, NULL);
	for (int i = 0; i < N; i++)
		rf__batcher_submit(p, items[i]);
	rf__batcher_finish(p);
	rf_batch *batches[8];
	size_t nb = drain(p, batches, 8);
	cr_assert_eq(nb, 2);
	cr_assert_eq(rf_batch_count(batches[0]) + rf_batch_count(batches[1]), 8);
	cr_assert_eq(p->batcher.dropped, 2);
	cr_assert_eq(p->batcher.ok, 8);
	for (size_t k = 0; k < nb; k++)
		rf_batch_release(batches[k]);
	free(items);
	rf_pipeline_close(p);
}

Test(batcher, all_failing_input_ships_error_only_batches)
{
	enum { N = 12 };
	bool failing[N];
	for (int i = 0; i < N; i++)
		failing[i] = true;
	rf_pipeline *p = make(N, 4, true, false);
	rf__item **items = take_items(p, N, failing);
	for (int i = 0; i < N; i++)
		rf__batcher_submit(p, items[i]);
	rf__batcher_finish(p);
	rf_batch *batches[8];
	size_t nb = drain(p, batches, 8);
	cr_assert_eq(nb, 1);
	cr_assert_eq(rf_batch_count(batches[0]), 0);
	cr_assert_eq(rf_batch_error_count(batches[0]), N);
	rf_batch_release(batches[0]);
	free(items);
	rf_pipeline_close(p);
}

/* Submits n items in order, one at a time (items come back free once slotted); bad(i) says which fail. */
static void submit_stream(rf_pipeline *p, size_t n, bool (*bad)(size_t))
{
	for (size_t i = 0; i < n; i++) {
		int rc;
		rf__item *item = rf__loader_take_item(p, false, &rc);
		cr_assert_not_null(item, "no free item for input %zu", i);
		memset(item->pixels, (int)(i & 0xff), W * H * C);
		if (bad(i))
			rf__item_fail(item, RF_EIO, "missing %zu", i);
		rf__batcher_submit(p, item);
	}
	rf__batcher_finish(p);
}

enum { SIZE = 64, GOOD_FIRST = 63, BAD_RUN = 1100 };

static bool bad_after_63(size_t i)
{
	return i >= GOOD_FIRST && i < GOOD_FIRST + BAD_RUN;
}

/*
 * 1100 failures in a row behind a batch with 63 of its 64 images: more than
 * are held before an error-only batch would go, but with images waiting the
 * batch keeps its size and ships full once the 64th arrives, with the errors.
 */
Test(batcher, a_run_of_failures_does_not_cut_a_batch_short)
{
	enum { N = GOOD_FIRST + BAD_RUN + 2 * SIZE };
	rf_pipeline *p = make(N, SIZE, true, true);
	submit_stream(p, N, bad_after_63);
	rf_batch *batches[8];
	size_t nb = drain(p, batches, 8);
	size_t errors = 0;
	for (size_t k = 0; k < nb; k++) {
		cr_assert_eq(rf_batch_count(batches[k]), SIZE, "batch %zu has %zu images", k, rf_batch_count(batches[k]));
		errors += rf_batch_error_count(batches[k]);
	}
	cr_assert_eq(nb, 2);
	cr_assert_eq(rf_batch_error_count(batches[0]), BAD_RUN);
	cr_assert_eq(errors, BAD_RUN);
	cr_assert_eq(p->batcher.dropped, GOOD_FIRST + 2 * SIZE - nb * SIZE, "the epoch's short tail is dropped");
	for (size_t k = 0; k < nb; k++)
		rf_batch_release(batches[k]);
	rf_pipeline_close(p);
}

static bool bad_after_1(size_t i)
{
	return i >= 1;
}

/* Errors stay bounded even then: after 16384 in a row the waiting batch ships short with them. */
Test(batcher, failures_held_behind_a_batch_stay_bounded)
{
	enum { HARD = 16384, N = 1 + HARD + 10 };
	rf_pipeline *p = make(N, SIZE, true, false);
	submit_stream(p, N, bad_after_1);
	rf_batch *batches[8];
	size_t nb = drain(p, batches, 8);
	cr_assert_eq(nb, 2);
	cr_assert_eq(rf_batch_count(batches[0]), 1);
	cr_assert_eq(rf_batch_error_count(batches[0]), HARD);
	cr_assert_eq(rf_batch_count(batches[1]), 0);
	cr_assert_eq(rf_batch_error_count(batches[1]), N - 1 - HARD);
	for (size_t k = 0; k < nb; k++)
		rf_batch_release(batches[k]);
	rf_pipeline_close(p);
}
