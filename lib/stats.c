/* rf_pipeline_stats: a consistent-enough snapshot of the counters at any time. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "pipeline.h"

static const char *const stage_names[RF_STAGE_COUNT] = {"loader", "decoder", "infer"};
static const char *const queue_names[RF_QUEUE_COUNT] = {"free_items", "decode", "ready"};

void rf__count_cpu(rf__stage_counters *st, uint64_t *last)
{
	uint64_t now = rf__thread_cpu_ns();
	if (now > *last)
		rf__count(&st->cpu_ns, now - *last);
	*last = now;
}

static double seconds(_Atomic uint64_t *ns)
{
	return rf__seconds(atomic_load_explicit(ns, memory_order_relaxed));
}

/*
 * Every time is read under the lock, so a snapshot's now falls after the
 * start of every wait it counts and before the start of any it does not.
 */
/* Under wait_lock: t, or the run's end once t is past it (what comes after is not the run's time). */
static uint64_t capped(const rf__stage_counters *st, uint64_t t)
{
	return st->end_cap && st->end_cap < t ? st->end_cap : t;
}

uint64_t rf__wait_begin(rf__stage_counters *st, enum rf__wait_kind kind)
{
	pthread_mutex_lock(&st->wait_lock);
	uint64_t t = capped(st, rf__now_ns());
	st->waiting[kind]++;
	st->waiting_since[kind] += t;
	pthread_mutex_unlock(&st->wait_lock);
	return t;
}

void rf__wait_end(rf__stage_counters *st, enum rf__wait_kind kind, uint64_t since)
{
	pthread_mutex_lock(&st->wait_lock);
	uint64_t now = capped(st, rf__now_ns());
	st->waiting[kind]--;
	st->waiting_since[kind] -= since;
	rf__count(&st->spent_ns[kind], now > since ? now - since : 0);
	pthread_mutex_unlock(&st->wait_lock);
}

uint64_t rf__stage_end(rf__stage_counters *st, _Atomic uint64_t *end_ns)
{
	pthread_mutex_lock(&st->wait_lock);
	uint64_t end = atomic_load(end_ns);
	if (!end) {
		end = rf__now_ns();
		atomic_store(end_ns, end);
		st->end_cap = end;
	}
	pthread_mutex_unlock(&st->wait_lock);
	return end;
}

uint64_t rf__stage_stop(rf__stage_counters *st, _Atomic uint64_t *end_ns)
{
	pthread_mutex_lock(&st->wait_lock);
	uint64_t end = atomic_load(end_ns);
	uint64_t stop = end ? end : rf__now_ns();
	pthread_mutex_unlock(&st->wait_lock);
	return stop;
}

uint64_t rf__stage_thread_start(rf__stage_counters *st)
{
	pthread_mutex_lock(&st->wait_lock);
	uint64_t t = rf__now_ns();
	st->running++;
	st->running_since += t;
	pthread_mutex_unlock(&st->wait_lock);
	return t;
}

void rf__stage_thread_exit(rf__stage_counters *st, uint64_t started)
{
	pthread_mutex_lock(&st->wait_lock);
	rf__count(&st->lifetime_ns, rf__now_ns() - started);
	st->running--;
	st->running_since -= started;
	pthread_mutex_unlock(&st->wait_lock);
}

/*
 * Under wait_lock: lifetimes and time spent per rf__wait_kind at now, open
 * intervals included (up to the run's end, once it ended).
 */
static void times_at(const rf__stage_counters *st, uint64_t now, uint64_t *alive, uint64_t spent[RF__WAIT_KINDS])
{
	*alive = atomic_load(&st->lifetime_ns) + rf__open_ns((uint64_t)st->running, now, st->running_since);
	for (int k = 0; k < RF__WAIT_KINDS; k++)
		spent[k] = atomic_load(&st->spent_ns[k]) +
			   rf__open_ns((uint64_t)st->waiting[k], capped(st, now), st->waiting_since[k]);
}

void rf__stage_look(rf__stage_counters *st, uint64_t now, uint64_t *alive, uint64_t spent[RF__WAIT_KINDS])
{
	pthread_mutex_lock(&st->wait_lock);
	times_at(st, now, alive, spent);
	pthread_mutex_unlock(&st->wait_lock);
}

uint64_t rf__stage_times(rf__stage_counters *st, uint64_t *alive, uint64_t spent[RF__WAIT_KINDS])
{
	pthread_mutex_lock(&st->wait_lock);
	uint64_t now = rf__now_ns();
	times_at(st, now, alive, spent);
	pthread_mutex_unlock(&st->wait_lock);
	return now;
}

static void stage_stats(rf_pipeline *p, int i, rf_stage_stats *out)
{
	rf__stage_counters *c = &p->stage[i];
	out->name = stage_names[i];
	out->threads = atomic_load(&c->threads);
	out->items = atomic_load(&c->items);
	uint64_t alive, spent[RF__WAIT_KINDS];
	uint64_t now = rf__stage_times(c, &alive, spent);
	out->starved_seconds = rf__seconds(spent[RF__STARVED]);
	out->blocked_seconds = rf__seconds(spent[RF__BLOCKED]);
	out->cpu_seconds = seconds(&c->cpu_ns);
	if (i == RF_STAGE_INFER) {
		out->busy_seconds = rf__seconds(spent[RF__HELD]);
		return;
	}
	/* Threads parked by the autotuner are neither busy nor starved. */
	uint64_t parked = rf__tune_parked_ns(&p->tune, i, now);
	alive = alive > parked ? alive - parked : 0;
	double busy = rf__seconds(alive) - out->starved_seconds - out->blocked_seconds;
	out->busy_seconds = busy > 0 ? busy : 0;
}

static void queue_stats(rf__queue *q, const char *name, rf_queue_stats *out)
{
	rf__queue_snapshot snap = {0};
	if (q->slots)
		rf__queue_snapshot_get(q, &snap);
	*out = (rf_queue_stats){.name = name, .capacity = snap.capacity, .depth = snap.depth, .peak_depth = snap.peak};
}

int rf_pipeline_stats(rf_pipeline *p, rf_stats *out)
{
	if (!p || !out)
		return RF_EINVAL;
	memset(out, 0, sizeof(*out));
	out->total = p->source.count;
	out->loader_backend = p->backend_name;
	out->first_batch_seconds = -1;
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		out->stages[i].name = stage_names[i];
	for (int i = 0; i < RF_QUEUE_COUNT; i++)
		out->queues[i].name = queue_names[i];
	if (atomic_load(&p->state) == RF_STATE_CREATED)
		return 0; /* names and zeros: nothing has run */
	/* A resumed run delivers what comes after its position. */
	out->total = p->sampler.total - (p->resume.set ? p->resume.position : 0);
	uint64_t stop = rf__stage_stop(&p->stage[RF_STAGE_INFER], &p->end_ns);
	rf__batcher *b = &p->batcher;
	pthread_mutex_lock(&b->lock);
	out->ok = b->ok;
	out->failed = b->failed;
	out->dropped = b->dropped;
	out->batches = b->handed;
	pthread_mutex_unlock(&b->lock);
	out->batch_pool = b->batch_count;
	out->tuned.decoder_threads = atomic_load(&p->tune.active[RF__KNOB_DECODER]);
	bool uring = p->backend == RF_BACKEND_IO_URING;
	out->tuned.loader_threads = uring ? p->loader_threads : atomic_load(&p->tune.active[RF__KNOB_LOADER]);
	out->tuned.io_depth = uring ? atomic_load(&p->tune.active[RF__KNOB_LOADER]) : 0;
	out->tuned.changes = atomic_load(&p->tune.changes);
	out->tuned.adaptive = rf__tune_adaptive(&p->tune);
	out->items = out->ok + out->failed + out->dropped;
	out->bytes_read = atomic_load(&p->bytes_read);
	out->wall_seconds = rf__seconds(stop - p->start_ns);
	if (out->wall_seconds > 0) {
		out->items_per_second = (double)out->items / out->wall_seconds;
		out->mb_per_second = (double)out->bytes_read / out->wall_seconds / 1e6;
	}
	uint64_t first = atomic_load(&p->first_batch_ns);
	if (first)
		out->first_batch_seconds = rf__seconds(first - p->start_ns);
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		stage_stats(p, i, &out->stages[i]);
	rf_stage_stats *infer = &out->stages[RF_STAGE_INFER];
	double waited = infer->starved_seconds + infer->busy_seconds;
	out->starved_fraction = waited > 0 ? infer->starved_seconds / waited : 0;
	queue_stats(&p->free_items, queue_names[RF_QUEUE_FREE_ITEMS], &out->queues[RF_QUEUE_FREE_ITEMS]);
	queue_stats(&p->decode_queue, queue_names[RF_QUEUE_DECODE], &out->queues[RF_QUEUE_DECODE]);
	queue_stats(&b->ready, queue_names[RF_QUEUE_READY], &out->queues[RF_QUEUE_READY]);
	return 0;
}

/*
 * Share of a stage's thread time spent on x seconds. Thread time is what its
 * threads were busy, starved or blocked: with the autotuner, fewer threads
 * than were started may have been running.
 */
static double share(const rf_stats *s, const rf_stage_stats *st, double x)
{
	double alive = st->busy_seconds + st->starved_seconds + st->blocked_seconds;
	if (!(alive > 0))
		alive = s->wall_seconds * (st->threads > 0 ? st->threads : 1);
	return alive > 0 ? x / alive : 0;
}

static int advise(int stage, char *advice, size_t len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int advise(int stage, char *advice, size_t len, const char *fmt, ...)
{
	if (advice && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(advice, len, fmt, ap);
		va_end(ap);
	}
	return stage;
}

int rf_stats_bottleneck(const rf_stats *s, char *advice, size_t len)
{
	if (advice && len)
		advice[0] = '\0';
	if (!s || s->items == 0 || !(s->wall_seconds > 0))
		return -1;
	const rf_stage_stats *ld = &s->stages[RF_STAGE_LOADER], *dec = &s->stages[RF_STAGE_DECODER];
	double dec_busy = share(s, dec, dec->busy_seconds), dec_starved = share(s, dec, dec->starved_seconds);
	double ld_busy = share(s, ld, ld->busy_seconds);
	bool uring = s->loader_backend && strncmp(s->loader_backend, "io_uring", 8) == 0;

	if (s->starved_fraction < 0.05)
		return advise(RF_STAGE_INFER, advice, len,
			      "inference stage: it waited for batches %.1f%% of its time; loading keeps up, more "
			      "loader or decoder threads would not help",
			      100 * s->starved_fraction);
	double dec_cpu = share(s, dec, dec->cpu_seconds);
	if (dec_busy >= 0.8 && dec->cpu_seconds > 0 && dec_cpu < 0.75 * dec_busy)
		return advise(RF_STAGE_DECODER, advice, len,
			      "decoders busy %.0f%% but on a CPU only %.0f%% (%d threads): they wait for cores; "
			      "fewer threads in all, or less other work on the machine, would help, more would not",
			      100 * dec_busy, 100 * dec_cpu, dec->threads);
	if (dec_busy >= 0.8)
		return advise(RF_STAGE_DECODER, advice, len,
			      "decoders busy %.0f%% (%d threads): add decoder threads (decoder.threads, CPUs "
			      "permitting) or shrink the output",
			      100 * dec_busy, dec->threads);
	double ld_blocked = share(s, ld, ld->blocked_seconds);
	if (dec_starved >= 0.2 && ld_blocked >= 0.5)
		return advise(RF_STAGE_LOADER, advice, len,
			      "loader: decoders starved %.0f%% of their time while the loader waited %.0f%% for room "
			      "(file-buffer memory or free items): raise limits.memory_mb or pipeline.queue_depth; "
			      "with batch.ordered a slow file also holds back the ones after it",
			      100 * dec_starved, 100 * ld_blocked);
	if (dec_starved >= 0.2)
		return advise(RF_STAGE_LOADER, advice, len,
			      "loader: decoders starved %.0f%% of their time, loader busy %.0f%% (reading, waiting on "
			      "storage): %s",
			      100 * dec_starved, 100 * ld_busy,
			      uring ? "raise loader.io_depth (or loader.threads)" : "raise loader.threads");
	return advise(RF_STAGE_DECODER, advice, len,
		      "decoders busy %.0f%%, starved %.0f%%, consumer starved %.0f%%: no stage is saturated, so "
		      "the threads are waiting for CPUs (other work on the machine, or more threads than cores)",
		      100 * dec_busy, 100 * dec_starved, 100 * s->starved_fraction);
}
