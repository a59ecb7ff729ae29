/* The CLI's output: summary table, JSON stats, progress line. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

void report_progress(FILE *out, const rf_stats *s)
{
	const rf_queue_stats *dq = &s->queues[RF_QUEUE_DECODE];
	const rf_queue_stats *rq = &s->queues[RF_QUEUE_READY];
	fprintf(out, "\r%llu/%llu items  %.0f img/s  %.1f MB/s  decode queue %zu/%zu  ready %zu/%zu  starved %.1f%%  ",
		(unsigned long long)s->items, (unsigned long long)s->total, s->items_per_second,
		s->mb_per_second, dq->depth, dq->capacity, rq->depth, rq->capacity, 100.0 * s->starved_fraction);
	fflush(out);
}

void report_table(FILE *out, const rf_stats *s, struct consumer *c)
{
	fprintf(out, "items %llu: ok %llu, failed %llu, dropped %llu, in %llu batches\n",
		(unsigned long long)s->items, (unsigned long long)s->ok, (unsigned long long)s->failed,
		(unsigned long long)s->dropped, (unsigned long long)s->batches);
	fprintf(out, "wall %.3f s, %.1f items/s, %.1f MB/s, ", s->wall_seconds, s->items_per_second,
		s->mb_per_second);
	if (s->first_batch_seconds >= 0)
		fprintf(out, "first batch after %.1f ms, ", s->first_batch_seconds * 1e3);
	fprintf(out, "starved %.1f%%\n", 100.0 * s->starved_fraction);
	fprintf(out, "loader backend: %s\n", s->loader_backend);
	fprintf(out, "%s: %d decoder thread%s, %d loader thread%s", s->tuned.adaptive ? "autotuned" : "fixed",
		s->tuned.decoder_threads, s->tuned.decoder_threads == 1 ? "" : "s", s->tuned.loader_threads,
		s->tuned.loader_threads == 1 ? "" : "s");
	if (s->tuned.io_depth)
		fprintf(out, ", io_depth %d", s->tuned.io_depth);
	if (s->tuned.adaptive)
		fprintf(out, " (%llu changes)", (unsigned long long)s->tuned.changes);
	fprintf(out, "\n");
	char advice[256];
	if (rf_stats_bottleneck(s, advice, sizeof(advice)) >= 0)
		fprintf(out, "bottleneck: %s\n", advice);
	fprintf(out, "%-8s %7s %9s %9s %9s %9s %9s\n", "stage", "threads", "items", "busy s", "starved s",
		"blocked s", "on-CPU s");
	for (int i = 0; i < RF_STAGE_COUNT; i++) {
		const rf_stage_stats *st = &s->stages[i];
		fprintf(out, "%-8s %7d %9llu %9.3f %9.3f %9.3f %9.3f\n", st->name, st->threads,
			(unsigned long long)st->items, st->busy_seconds, st->starved_seconds, st->blocked_seconds,
			st->cpu_seconds);
	}
	fprintf(out, "%-10s %9s %6s\n", "queue", "capacity", "peak");
	for (int i = 0; i < RF_QUEUE_COUNT; i++)
		fprintf(out, "%-10s %9zu %6zu\n", s->queues[i].name, s->queues[i].capacity, s->queues[i].peak_depth);
	if (c->kind == CONSUMER_STATS) {
		double mean[4], std[4];
		int ch = consumer_channel_stats(c, mean, std);
		fprintf(out, "channel mean (0..255):");
		for (int k = 0; k < ch; k++)
			fprintf(out, " %.3f", mean[k]);
		fprintf(out, "\nchannel std  (0..255):");
		for (int k = 0; k < ch; k++)
			fprintf(out, " %.3f", std[k]);
		fprintf(out, "\n");
	}
}

static cJSON *stage_json(const rf_stage_stats *st)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "threads", st->threads);
	cJSON_AddNumberToObject(o, "items", (double)st->items);
	cJSON_AddNumberToObject(o, "busy_seconds", st->busy_seconds);
	cJSON_AddNumberToObject(o, "starved_seconds", st->starved_seconds);
	cJSON_AddNumberToObject(o, "blocked_seconds", st->blocked_seconds);
	cJSON_AddNumberToObject(o, "cpu_seconds", st->cpu_seconds);
	return o;
}

static cJSON *build_json(const rf_stats *s, struct consumer *c)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "total", (double)s->total);
	cJSON_AddNumberToObject(root, "items", (double)s->items);
	cJSON_AddNumberToObject(root, "ok", (double)s->ok);
	cJSON_AddNumberToObject(root, "failed", (double)s->failed);
	cJSON_AddNumberToObject(root, "dropped", (double)s->dropped);
	cJSON_AddNumberToObject(root, "batches", (double)s->batches);
	cJSON_AddNumberToObject(root, "bytes_read", (double)s->bytes_read);
	cJSON_AddNumberToObject(root, "wall_seconds", s->wall_seconds);
	cJSON_AddNumberToObject(root, "items_per_second", s->items_per_second);
	cJSON_AddNumberToObject(root, "mb_per_second", s->mb_per_second);
	cJSON_AddNumberToObject(root, "first_batch_seconds", s->first_batch_seconds);
	cJSON_AddNumberToObject(root, "starved_fraction", s->starved_fraction);
	cJSON_AddStringToObject(root, "loader_backend", s->loader_backend);
	cJSON_AddStringToObject(root, "consumer", consumer_name(c->kind));
	char advice[256];
	int stage = rf_stats_bottleneck(s, advice, sizeof(advice));
	if (stage >= 0) {
		cJSON *b = cJSON_AddObjectToObject(root, "bottleneck");
		cJSON_AddStringToObject(b, "stage", s->stages[stage].name);
		cJSON_AddStringToObject(b, "advice", advice);
	}
	cJSON *tuned = cJSON_AddObjectToObject(root, "tuned");
	cJSON_AddBoolToObject(tuned, "adaptive", s->tuned.adaptive);
	cJSON_AddNumberToObject(tuned, "decoder_threads", s->tuned.decoder_threads);
	cJSON_AddNumberToObject(tuned, "loader_threads", s->tuned.loader_threads);
	cJSON_AddNumberToObject(tuned, "io_depth", s->tuned.io_depth);
	cJSON_AddNumberToObject(tuned, "changes", (double)s->tuned.changes);
	cJSON *stages = cJSON_AddObjectToObject(root, "stages");
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		cJSON_AddItemToObject(stages, s->stages[i].name, stage_json(&s->stages[i]));
	cJSON *queues = cJSON_AddObjectToObject(root, "queues");
	for (int i = 0; i < RF_QUEUE_COUNT; i++) {
		cJSON *q = cJSON_CreateObject();
		cJSON_AddNumberToObject(q, "capacity", (double)s->queues[i].capacity);
		cJSON_AddNumberToObject(q, "peak_depth", (double)s->queues[i].peak_depth);
		cJSON_AddItemToObject(queues, s->queues[i].name, q);
	}
	if (c->kind == CONSUMER_STATS) {
		double mean[4], std[4];
		int ch = consumer_channel_stats(c, mean, std);
		cJSON_AddItemToObject(root, "channel_mean", cJSON_CreateDoubleArray(mean, ch));
		cJSON_AddItemToObject(root, "channel_std", cJSON_CreateDoubleArray(std, ch));
	}
	return root;
}

int report_json(const char *path, const rf_stats *s, struct consumer *c)
{
	cJSON *root = build_json(s, c);
	char *text = root ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text)
		return -1;
	FILE *f = fopen(path, "w");
	int rc = -1;
	if (f) {
		rc = fputs(text, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
		if (fclose(f) != 0)
			rc = -1;
	}
	free(text);
	return rc;
}
