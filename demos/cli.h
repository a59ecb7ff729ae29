/* Pieces of the ringfeed command-line program (demos/ringfeed.c). */
#ifndef RF_DEMOS_CLI_H
#define RF_DEMOS_CLI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ringfeed/ringfeed.h"

enum consumer_kind { CONSUMER_STATS, CONSUMER_NULL, CONSUMER_SLEEP, CONSUMER_SPIN };

/* One batch's lines for --list and --errors, waiting for their turn. */
struct batch_lines {
	uint64_t sequence;
	char *list, *errors;
	size_t list_len, errors_len;
};

/* What the inference callback needs; shared by the infer threads. */
struct consumer {
	enum consumer_kind kind;
	double cost_ms;
	_Atomic bool stop; /* set on SIGINT/SIGTERM: sleep and spin cut their batch short */
	const rf_config *cfg;
	pthread_mutex_t lock;
	/* stats consumer: per-channel sums on the 0..255 scale */
	double sum[4], sum_sq[4];
	unsigned long long pixels;
	/* failed items: written to errors_file, the first few echoed to stderr */
	FILE *errors_file;
	FILE *list_file; /* --list: one line per delivered image */
	bool echo_errors;
	unsigned long long errors_seen;
	/*
	 * With several infer threads batches reach the lock in any order; their
	 * lines wait here until every earlier batch's are written, so both files
	 * follow delivery order (rf_batch_sequence).
	 */
	uint64_t next_sequence;
	struct batch_lines *waiting;
	size_t waiting_count, waiting_cap;
};

int consumer_parse(const char *name, enum consumer_kind *out);
const char *consumer_name(enum consumer_kind kind);
void consumer_init(struct consumer *c, enum consumer_kind kind, double cost_ms, const rf_config *cfg);
/* Writes the lines still waiting for an earlier batch that never came (a stopped run). */
void consumer_flush(struct consumer *c);
void consumer_destroy(struct consumer *c);
/* rf_infer_fn: consumes one batch. */
int consumer_run(const rf_batch *batch, void *user);
/* Per-channel mean and standard deviation (stats consumer); returns channels. */
int consumer_channel_stats(struct consumer *c, double mean[4], double std[4]);

/* Summary table for humans. */
void report_table(FILE *out, const rf_stats *s, struct consumer *c);
/* One JSON object with the stats; 0 or -1. */
int report_json(const char *path, const rf_stats *s, struct consumer *c);
/* One-line progress, overwritten in place on a terminal. */
void report_progress(FILE *out, const rf_stats *s);

/* --trace: CSV samples of queue depths and per-stage rates over the run. */
struct trace {
	FILE *f;
	rf_stats prev; /* the previous sample, for the rates */
	bool has_prev;
};
/* Writes the CSV header to f. */
void trace_begin(struct trace *t, FILE *f);
/* One row: s against the previous sample. */
void trace_sample(struct trace *t, const rf_stats *s);

#endif
