/*
 * --trace FILE: one CSV row per sample (every 100 ms, and one at the end) with
 * queue depths and what each stage did since the previous sample, so a run can
 * be looked at over time (scripts/plot_trace.sh draws it).
 */
#include <stdio.h>

#include "cli.h"

static const char header[] =
	"seconds,items,ok,failed,items_per_second,mb_per_second,free_items_depth,decode_queue_depth,"
	"ready_queue_depth,loader_items_per_second,decoder_items_per_second,infer_items_per_second,"
	"loader_busy,decoder_busy,decoder_starved,decoder_blocked,consumer_starved,decoder_on_cpu,"
	"decoder_threads,loader_threads,io_depth\n";

void trace_begin(struct trace *t, FILE *f)
{
	*t = (struct trace){.f = f};
	fputs(header, f);
}

static double thread_time(const rf_stage_stats *st)
{
	return st->busy_seconds + st->starved_seconds + st->blocked_seconds;
}

/* Share of a stage's thread time in the interval (threads parked by the autotuner left out) spent on delta. */
static double share(double delta, const rf_stage_stats *now, const rf_stage_stats *before)
{
	double alive = thread_time(now) - thread_time(before);
	return alive > 0 ? delta / alive : 0;
}

/*
 * The decoders' on-CPU share, at most 1: CPU time is added once per item, so
 * an interval can be handed a little of the one before. (Busy, starved and
 * blocked time are read as they accrue and need no cap.)
 */
static double on_cpu_share(const rf_stage_stats *now, const rf_stage_stats *before)
{
	double x = share(now->cpu_seconds - before->cpu_seconds, now, before);
	return x < 1 ? x : 1;
}

void trace_sample(struct trace *t, const rf_stats *s)
{
	const rf_stats *p = &t->prev;
	double dt = s->wall_seconds - (t->has_prev ? p->wall_seconds : 0);
	if (t->has_prev && dt <= 0)
		return; /* no time passed (the run had already ended) */
	rf_stats zero = {0};
	if (!t->has_prev)
		p = &zero;
	const rf_stage_stats *st = s->stages, *pst = p->stages;
	double rate[RF_STAGE_COUNT];
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		rate[i] = dt > 0 ? (double)(st[i].items - pst[i].items) / dt : 0;
	const rf_stage_stats *dec = &st[RF_STAGE_DECODER], *pdec = &pst[RF_STAGE_DECODER];
	const rf_stage_stats *inf = &st[RF_STAGE_INFER], *pinf = &pst[RF_STAGE_INFER];
	double waited =
		(inf->starved_seconds - pinf->starved_seconds) + (inf->busy_seconds - pinf->busy_seconds);
	const rf_stage_stats *ld = &st[RF_STAGE_LOADER], *pld = &pst[RF_STAGE_LOADER];
	fprintf(t->f,
		"%.3f,%llu,%llu,%llu,%.1f,%.2f,%zu,%zu,%zu,%.1f,%.1f,%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d,%d,%d\n",
		s->wall_seconds, (unsigned long long)s->items, (unsigned long long)s->ok,
		(unsigned long long)s->failed, dt > 0 ? (double)(s->items - p->items) / dt : 0,
		dt > 0 ? (double)(s->bytes_read - p->bytes_read) / dt / 1e6 : 0,
		s->queues[RF_QUEUE_FREE_ITEMS].depth, s->queues[RF_QUEUE_DECODE].depth,
		s->queues[RF_QUEUE_READY].depth, rate[RF_STAGE_LOADER], rate[RF_STAGE_DECODER],
		rate[RF_STAGE_INFER],
		share(ld->busy_seconds - pld->busy_seconds, ld, pld), share(dec->busy_seconds - pdec->busy_seconds, dec, pdec),
		share(dec->starved_seconds - pdec->starved_seconds, dec, pdec),
		share(dec->blocked_seconds - pdec->blocked_seconds, dec, pdec),
		waited > 0 ? (inf->starved_seconds - pinf->starved_seconds) / waited : 0,
		on_cpu_share(dec, pdec), s->tuned.decoder_threads,
		s->tuned.loader_threads, s->tuned.io_depth);
	t->prev = *s;
	t->has_prev = true;
}
