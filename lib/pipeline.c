/* Pipeline lifecycle: create, add inputs, start threads, pull batches, cancel, close. */
#include "pipeline.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

/* Upper bound on the bytes of decoded staging pixels held by preallocated items. */
#define STAGING_BYTES_MAX ((size_t)512 << 20)

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

int rf_pipeline_create(rf_pipeline **out, const rf_config *cfg)
{
	if (!out || !cfg)
		return RF_EINVAL;
	*out = NULL;
	if (rf_config_validate(cfg, NULL, 0) != 0)
		return RF_ECONFIG;
	rf_pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return RF_ENOMEM;
	p->cfg = *cfg;
	rf__source_init(&p->source, cfg->source.extensions);
	pthread_mutex_init(&p->error_lock, NULL);
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		pthread_mutex_init(&p->stage[i].wait_lock, NULL);
	atomic_init(&p->state, RF_STATE_CREATED);
	*out = p;
	return 0;
}

/* rf_pipeline_add and rf_pipeline_add_file: add is rf__source_add or rf__source_add_file. */
static int add_input(rf_pipeline *p, const char *input, int (*add)(rf__source *, const char *))
{
	if (!p || !input)
		return RF_EINVAL;
	if (atomic_load(&p->state) != RF_STATE_CREATED)
		return RF_ESTATE;
	int rc = add(&p->source, input);
	if (rc != 0) {
		pthread_mutex_lock(&p->error_lock);
		snprintf(p->error, sizeof(p->error), "%s",
			 p->source.error[0] ? p->source.error : rf_strerror(rc));
		pthread_mutex_unlock(&p->error_lock);
	}
	return rc;
}

int rf_pipeline_add(rf_pipeline *p, const char *input)
{
	return add_input(p, input, rf__source_add);
}

int rf_pipeline_add_file(rf_pipeline *p, const char *path)
{
	return add_input(p, path, rf__source_add_file);
}

size_t rf_pipeline_item_count(const rf_pipeline *p)
{
	return p ? p->source.count : 0;
}

void rf__pipeline_fail(rf_pipeline *p, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&p->error_lock);
	if (p->fatal_code == 0) {
		p->fatal_code = code;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->error, sizeof(p->error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&p->error_lock);
	rf_pipeline_cancel(p);
}

const char *rf_pipeline_error(const rf_pipeline *p)
{
	return p ? p->error : "";
}

/* Resolves auto values and sizes the pools from the config. */
/*
 * limits.memory_mb: the batch pool must fit; of what is left, at most half goes
 * to staging (decoded images waiting for their slot), and the rest is the
 * budget for file buffers (docs/config.md has the formula).
 */
static int fit_memory(rf_pipeline *p, size_t batches, size_t staging, size_t items_floor, size_t *items,
		      uint64_t *file_budget)
{
	const rf_config *c = &p->cfg;
	uint64_t mem = c->limits.memory_mb << 20;
	uint64_t pool = (uint64_t)batches * (uint64_t)c->batch.size * rf__slot_bytes(c);
	/* The least that works: the pool, and as much again as the decode buffers for file buffers. */
	uint64_t need_mb = (pool + 2 * (uint64_t)items_floor * staging + (1 << 20) - 1) >> 20;
	if (pool >= mem) {
		rf__pipeline_fail(p, RF_ECONFIG,
				  "limits.memory_mb = %llu cannot hold the batch pool: %zu batches of %d images of %zu "
				  "bytes need %.1f MiB; this config needs limits.memory_mb >= %llu, or a lower "
				  "batch.size or pipeline.prefetch_batches",
				  (unsigned long long)c->limits.memory_mb, batches, c->batch.size, rf__slot_bytes(c),
				  (double)pool / (1 << 20), (unsigned long long)need_mb);
		return RF_ECONFIG;
	}
	uint64_t left = mem - pool;
	uint64_t fit = left / 2 / staging;
	if (fit < items_floor) {
		rf__pipeline_fail(p, RF_ECONFIG,
				  "limits.memory_mb = %llu leaves %.1f MiB after the batch pool: too little for the %zu "
				  "decode buffers of %zu bytes this config needs and room for file buffers; it needs "
				  "limits.memory_mb >= %llu",
				  (unsigned long long)c->limits.memory_mb, (double)left / (1 << 20), items_floor, staging,
				  (unsigned long long)need_mb);
		return RF_ECONFIG;
	}
	if (*items > fit)
		*items = (size_t)fit;
	*file_budget = left - (uint64_t)*items * staging;
	return 0;
}

/*
 * Thread counts and depths, with auto resolved to the autotuner's maxima and
 * starting points (tune.h). Needs the backend: pread has no io_depth, so its
 * loader.threads = auto is what adapts.
 */
static int resolve_threads(rf_pipeline *p)
{
	const rf_config *c = &p->cfg;
	bool uring = p->backend == RF_BACKEND_IO_URING;
	int start[RF__KNOB_COUNT], min[RF__KNOB_COUNT], max[RF__KNOB_COUNT];
	bool adaptive[RF__KNOB_COUNT];
	p->decoder_threads = c->decoder.threads ? c->decoder.threads : online_cpus();
	adaptive[RF__KNOB_DECODER] = c->decoder.threads == 0;
	start[RF__KNOB_DECODER] = max[RF__KNOB_DECODER] = p->decoder_threads;
	min[RF__KNOB_DECODER] = 1;
	if (uring) {
		int from = p->blocking_fs ? RF__IO_DEPTH_BLOCKING_START : RF__IO_DEPTH_AUTO_START;
		p->loader_threads = c->loader.threads ? c->loader.threads : 1;
		p->io_depth = c->loader.io_depth ? c->loader.io_depth : RF__IO_DEPTH_AUTO_MAX;
		adaptive[RF__KNOB_LOADER] = c->loader.io_depth == 0;
		start[RF__KNOB_LOADER] = c->loader.io_depth ? c->loader.io_depth : from;
		min[RF__KNOB_LOADER] = p->blocking_fs ? RF__IO_DEPTH_BLOCKING_START : RF__IO_DEPTH_AUTO_FLOOR;
		max[RF__KNOB_LOADER] = p->io_depth;
	} else {
		p->loader_threads = c->loader.threads ? c->loader.threads : RF__PREAD_AUTO_MAX;
		p->io_depth = 1;
		adaptive[RF__KNOB_LOADER] = c->loader.threads == 0;
		start[RF__KNOB_LOADER] = c->loader.threads ? c->loader.threads : RF__PREAD_AUTO_START;
		min[RF__KNOB_LOADER] = RF__PREAD_AUTO_FLOOR;
		max[RF__KNOB_LOADER] = p->loader_threads;
	}
	return rf__tune_init(&p->tune, start, min, max, adaptive);
}

static int size_pipeline(rf_pipeline *p)
{
	rf_config *c = &p->cfg;
	int rc = resolve_threads(p);
	if (rc != 0)
		return rc;
	size_t queue_depth = c->pipeline.queue_depth ? (size_t)c->pipeline.queue_depth
						     : (size_t)(4 * p->decoder_threads + 8);
	size_t staging = (size_t)c->output.width * c->output.height * c->output.channels;
	size_t items = (size_t)p->loader_threads * (size_t)p->io_depth + queue_depth +
		       2 * (size_t)p->decoder_threads + 16;
	size_t items_floor = (size_t)p->loader_threads + 2 * (size_t)p->decoder_threads + 2;
	size_t batches = rf__batch_pool_count(c, p->decoder_threads);
	if (items * staging > STAGING_BYTES_MAX)
		items = STAGING_BYTES_MAX / staging;
	if (items < items_floor)
		items = items_floor;
	uint64_t file_budget = 0;
	if (c->limits.memory_mb) {
		rc = fit_memory(p, batches, staging, items_floor, &items, &file_budget);
		if (rc != 0)
			return rc;
	}
	if (rf__budget_init(&p->budget, file_budget) != 0)
		return RF_ESYS;
	p->item_count = items;
	p->items = calloc(items, sizeof(*p->items));
	if (!p->items)
		return RF_ENOMEM;
	rc = rf__queue_init(&p->free_items, items, 1);
	if (rc == 0)
		rc = rf__queue_init(&p->decode_queue, queue_depth, p->loader_threads);
	for (size_t i = 0; rc == 0 && i < items; i++) {
		p->items[i].fd = -1;
		p->items[i].pixels = malloc(staging);
		if (!p->items[i].pixels)
			rc = RF_ENOMEM;
		else
			rf__queue_try_push(&p->free_items, &p->items[i]);
	}
	if (rc == 0)
		rc = rf__batcher_init(&p->batcher, p, c, batches, items);
	rf__converter_init(&p->converter, c);
	return rc;
}

/* Picks the loader backend; auto falls back to pread when no ring can be made. */
static int choose_backend(rf_pipeline *p)
{
	char why[128] = "";
	switch (p->cfg.loader.backend) {
	case RF_BACKEND_PREAD:
		p->backend = RF_BACKEND_PREAD;
		snprintf(p->backend_name, sizeof(p->backend_name), "pread");
		return 0;
	case RF_BACKEND_IO_URING:
		if (rf__uring_probe(why, sizeof(why)) != 0) {
			rf__pipeline_fail(p, RF_ESYS, "loader.backend = io_uring: %s", why);
			return RF_ESYS;
		}
		break;
	case RF_BACKEND_AUTO:
		if (rf__uring_probe(why, sizeof(why)) != 0) {
			p->backend = RF_BACKEND_PREAD;
			snprintf(p->backend_name, sizeof(p->backend_name), "pread (io_uring unavailable: %s)", why);
			return 0;
		}
		break;
	}
	p->backend = RF_BACKEND_IO_URING;
	/* Where every operation blocks, io_depth = auto keeps more files in flight (tune.h). */
	if (p->cfg.loader.io_depth == 0 && p->source.count)
		p->blocking_fs = rf__loader_blocking_fs(p->source.paths[0]);
	if (p->blocking_fs)
		snprintf(p->backend_name, sizeof(p->backend_name),
			 "io_uring (%s: a blocking file system, io_depth from %d)", p->blocking_fs,
			 RF__IO_DEPTH_BLOCKING_START);
	else
		snprintf(p->backend_name, sizeof(p->backend_name), "io_uring");
	return 0;
}

int rf__pipeline_prepare(rf_pipeline *p)
{
	char err[256];
	int rc = rf__sampler_init(&p->sampler, p->source.count, &p->cfg, err, sizeof(err));
	if (rc != 0) {
		rf__pipeline_fail(p, rc, "%s", rc == RF_ECONFIG ? err : rf_strerror(rc));
		return rc;
	}
	rc = choose_backend(p);
	if (rc == 0)
		rc = size_pipeline(p);
	return rc == 0 ? rf__pipeline_apply_resume(p) : rc;
}

/*
 * Loader threads, and the io_uring workers they spawn (which inherit the
 * policy), wake for every completion; under the default policy each wake-up
 * may preempt a decoder mid-image. SCHED_BATCH keeps their share of the CPU
 * but lets them wait until a running thread's time slice ends, so completions
 * are handled several at a time and the decoders keep their caches. The
 * queues and the files in flight absorb the few milliseconds this can add.
 * Only from the default policy: a real-time process keeps what it chose.
 */
static void loader_batch_scheduling(void)
{
	struct sched_param none = {0};
	if (sched_getscheduler(0) == SCHED_OTHER)
		(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
}

static void *loader_main(void *arg)
{
	rf_pipeline *p = arg;
	uint64_t started = rf__stage_thread_start(&p->stage[RF_STAGE_LOADER]);
	loader_batch_scheduling();
	if (p->backend == RF_BACKEND_IO_URING)
		rf__loader_uring_run(p);
	else
		rf__loader_pread_run(p);
	rf__queue_producer_done(&p->decode_queue);
	rf__stage_thread_exit(&p->stage[RF_STAGE_LOADER], started);
	return NULL;
}

static void *decoder_main(void *arg)
{
	rf_pipeline *p = arg;
	uint64_t started = rf__stage_thread_start(&p->stage[RF_STAGE_DECODER]);
	rf__decoder_run(p);
	rf__stage_thread_exit(&p->stage[RF_STAGE_DECODER], started);
	return NULL;
}

static int spawn(rf_pipeline *p, void *(*fn)(void *), rf__stage_counters *st)
{
	atomic_fetch_add(&st->threads, 1);
	if (pthread_create(&p->threads[p->thread_count], NULL, fn, p) != 0) {
		atomic_fetch_sub(&st->threads, 1);
		return RF_ESYS;
	}
	p->thread_count++;
	return 0;
}

/* The run's end, once: wall time stops here, and so does every interval of the inference stage. */
static void mark_ended(rf_pipeline *p)
{
	rf__stage_end(&p->stage[RF_STAGE_INFER], &p->end_ns);
}

/* Wakes and stops every stage; may run twice (cancel and a start it overlapped), harmlessly. */
static void stop_stages(rf_pipeline *p)
{
	mark_ended(p);
	rf__tune_release(&p->tune);
	rf__queue_cancel(&p->free_items);
	rf__queue_cancel(&p->decode_queue);
	rf__batcher_cancel(&p->batcher);
}

int rf_pipeline_start(rf_pipeline *p)
{
	if (!p)
		return RF_EINVAL;
	if (atomic_load(&p->state) != RF_STATE_CREATED || p->start_tried)
		return RF_ESTATE;
	if (atomic_load(&p->canceled))
		return RF_ECANCELED;
	/* Once: a second try would set up queues and pools over the half-made ones. */
	p->start_tried = true;
	int rc = rf__pipeline_prepare(p);
	/* One more for the tuner. */
	if (rc == 0 &&
	    !(p->threads = calloc((size_t)(p->loader_threads + p->decoder_threads + 1), sizeof(pthread_t))))
		rc = RF_ENOMEM;
	if (rc != 0) {
		if (!rf__pipeline_fatal(p))
			rf__pipeline_fail(p, rc, "cannot start: %s", rf_strerror(rc));
		return rc;
	}
	p->start_ns = rf__now_ns();
	atomic_store(&p->decoders_running, p->decoder_threads);
	atomic_store(&p->state, RF_STATE_RUNNING);
	/*
	 * A cancel that came during the setup above found the pipeline not yet
	 * running and stopped nothing: stop it now, before any thread starts.
	 * (Both sides write, then read the other's flag: one of them sees it.)
	 */
	if (atomic_load(&p->canceled))
		stop_stages(p);
	for (int i = 0; rc == 0 && i < p->decoder_threads; i++)
		rc = spawn(p, decoder_main, &p->stage[RF_STAGE_DECODER]);
	for (int i = 0; rc == 0 && i < p->loader_threads; i++)
		rc = spawn(p, loader_main, &p->stage[RF_STAGE_LOADER]);
	if (rc == 0 && rf__tune_adaptive(&p->tune)) {
		if (pthread_create(&p->threads[p->thread_count], NULL, rf__tune_main, p) != 0)
			rc = RF_ESYS;
		else
			p->thread_count++;
	}
	if (rc != 0)
		rf__pipeline_fail(p, rc, "cannot start stage threads");
	return rc;
}


int rf__pipeline_fatal(rf_pipeline *p)
{
	pthread_mutex_lock(&p->error_lock);
	int code = p->fatal_code;
	pthread_mutex_unlock(&p->error_lock);
	return code;
}

static int stopped_code(rf_pipeline *p)
{
	int code = rf__pipeline_fatal(p);
	return code ? code : RF_ECANCELED;
}

/* on_error = fail: the run stops with the first failed item's "path: reason". */
static void fail_at_item(rf_pipeline *p, const rf_item_error *e)
{
	rf__pipeline_fail(p, RF_EITEM, "%s: %s", e->path, e->reason);
}

/* rf_pipeline_next with a limit on the wait; timeout_ns < 0 waits for ever. */
static int next_batch(rf_pipeline *p, rf_batch **out, int64_t timeout_ns)
{
	if (!p || !out)
		return RF_EINVAL;
	*out = NULL;
	if (atomic_load(&p->state) == RF_STATE_CREATED)
		return RF_ESTATE;
	if (atomic_load(&p->canceled))
		return stopped_code(p);
	rf__stage_counters *st = &p->stage[RF_STAGE_INFER];
	void *v = NULL;
	uint64_t t = rf__wait_begin(st, RF__STARVED);
	int rc = timeout_ns < 0 ? rf__queue_pop(&p->batcher.ready, &v)
				: rf__queue_pop_timed(&p->batcher.ready, &v, (uint64_t)timeout_ns);
	rf__wait_end(st, RF__STARVED, t);
	if (rc == RF_ETIMEDOUT)
		return RF_ETIMEDOUT;
	if (rc == RF_EOF) {
		mark_ended(p);
		/*
		 * A cancel stops loaders before it reaches the later queues, so their
		 * ends can still close as if the data ran out: the end of data is
		 * only the end while nobody canceled.
		 */
		if (atomic_load(&p->canceled))
			return stopped_code(p);
		/* on_error = fail: another puller has the failure's batch but may not have stopped the run yet. */
		rf__error_record failure;
		if (rf__batcher_failure(&p->batcher, &failure)) {
			fail_at_item(p, &failure.pub);
			return stopped_code(p);
		}
		return RF_EOF;
	}
	if (rc != 0)
		return stopped_code(p);
	rf_batch *b = v;
	/*
	 * Batches leave the ready queue in order; with several pullers keep the
	 * furthest. Recorded before the hand-out, so that a state saved by any
	 * thread once RF_EITEM is seen includes the failure's batch.
	 */
	uint64_t seen = atomic_load(&p->delivered_position);
	while (b->end_position > seen && !atomic_compare_exchange_weak(&p->delivered_position, &seen, b->end_position))
		;
	rf__batcher_hand_out(&p->batcher, b);
	/* on_error = fail: the consumer gets the batch with the first failure, and the run stops there. */
	if (p->batcher.fail_fast && b->errors.count > 0)
		fail_at_item(p, rf_batch_error(b, 0));
	b->handed_ns = rf__wait_begin(st, RF__HELD); /* busy from now until rf_batch_release */
	rf__count(&st->items, b->count);
	*out = b;
	return 0;
}

int rf_pipeline_next(rf_pipeline *p, rf_batch **out)
{
	return next_batch(p, out, -1);
}

int rf_pipeline_next_timeout(rf_pipeline *p, rf_batch **out, int timeout_ms)
{
	if (timeout_ms < 0)
		return RF_EINVAL;
	return next_batch(p, out, (int64_t)timeout_ms * 1000000);
}

void rf_batch_release(rf_batch *b)
{
	if (!b)
		return;
	rf_pipeline *p = b->owner;
	/* Busy until now, or until the run's end if it ended first (a batch kept after it is not its work). */
	rf__wait_end(&p->stage[RF_STAGE_INFER], RF__HELD, b->handed_ns);
	rf__batcher_release(&p->batcher, b);
}

void rf_pipeline_cancel(rf_pipeline *p)
{
	if (!p || atomic_exchange(&p->canceled, true))
		return;
	/* Not running yet: rf_pipeline_start sees the flag once it is (or refuses to start). */
	if (atomic_load(&p->state) == RF_STATE_RUNNING)
		stop_stages(p);
}

void rf_pipeline_close(rf_pipeline *p)
{
	if (!p)
		return;
	if (atomic_load(&p->state) == RF_STATE_RUNNING) {
		rf_pipeline_cancel(p);
		for (int i = 0; i < p->thread_count; i++)
			pthread_join(p->threads[i], NULL);
	}
	atomic_store(&p->state, RF_STATE_ENDED);
	rf__batcher_destroy(&p->batcher);
	rf__queue_destroy(&p->decode_queue);
	rf__queue_destroy(&p->free_items);
	rf__budget_destroy(&p->budget);
	rf__tune_destroy(&p->tune);
	for (size_t i = 0; p->items && i < p->item_count; i++) {
		free(p->items[i].data);
		free(p->items[i].pixels);
	}
	free(p->items);
	free(p->threads);
	rf__sampler_destroy(&p->sampler);
	rf__source_destroy(&p->source);
	pthread_mutex_destroy(&p->error_lock);
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		pthread_mutex_destroy(&p->stage[i].wait_lock);
	free(p);
}
