/* The CLI's inference stages: dataset statistics, nothing, sleep, or CPU spin. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char *const names[] = {"stats", "null", "sleep", "spin"};

int consumer_parse(const char *name, enum consumer_kind *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum consumer_kind)i;
			return 0;
		}
	}
	return -1;
}

const char *consumer_name(enum consumer_kind kind)
{
	return names[kind];
}

void consumer_init(struct consumer *c, enum consumer_kind kind, double cost_ms, const rf_config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->cost_ms = cost_ms;
	c->cfg = cfg;
	atomic_init(&c->stop, false);
	pthread_mutex_init(&c->lock, NULL);
}

void consumer_destroy(struct consumer *c)
{
	for (size_t i = 0; i < c->waiting_count; i++) {
		free(c->waiting[i].list);
		free(c->waiting[i].errors);
	}
	free(c->waiting);
	pthread_mutex_destroy(&c->lock);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Burns CPU for ms milliseconds, like a model running on the host; a stop cuts it short. */
static void spin(struct consumer *c, double ms)
{
	double until = now_ms() + ms;
	volatile double x = 1.0;
	while (now_ms() < until && !atomic_load_explicit(&c->stop, memory_order_relaxed))
		for (int i = 0; i < 1000; i++)
			x = x * 1.0000001 + 1e-9;
}

/* Sleeps ms milliseconds in slices of at most 10 ms, so that a stop (SIGINT) is seen at once. */
static void pause_ms(struct consumer *c, double ms)
{
	for (double until = now_ms() + ms, left = ms; left > 0 && !atomic_load(&c->stop); left = until - now_ms()) {
		double slice = left < 10 ? left : 10;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(slice * 1e6)};
		nanosleep(&ts, NULL);
	}
}

/* Adds the batch's pixels to the per-channel sums, in 0..255 units. */
static void accumulate(struct consumer *c, const rf_batch *batch)
{
	const rf_config *cfg = c->cfg;
	int ch = cfg->output.channels;
	size_t plane = (size_t)cfg->output.width * cfg->output.height;
	size_t n = rf_batch_count(batch);
	double sum[4] = {0}, sq[4] = {0};
	if (cfg->output.layout == RF_LAYOUT_NHWC_U8) {
		const unsigned char *px = rf_batch_data(batch);
		/* Integer histogram per channel: exact and much faster than double math per pixel. */
		unsigned long long hist[4][256];
		memset(hist, 0, sizeof(hist));
		for (size_t i = 0; i < n * plane; i++)
			for (int k = 0; k < ch; k++)
				hist[k][px[i * (size_t)ch + (size_t)k]]++;
		for (int k = 0; k < ch; k++)
			for (int v = 0; v < 256; v++) {
				sum[k] += (double)hist[k][v] * v;
				sq[k] += (double)hist[k][v] * v * v;
			}
	} else {
		const float *px = rf_batch_data(batch);
		for (size_t i = 0; i < n; i++)
			for (int k = 0; k < ch; k++) {
				const float *p = px + (i * (size_t)ch + (size_t)k) * plane;
				double m = cfg->output.mean[k], s = cfg->output.std[k];
				for (size_t j = 0; j < plane; j++) {
					double v = p[j] * s + m;
					sum[k] += v;
					sq[k] += v * v;
				}
			}
	}
	pthread_mutex_lock(&c->lock);
	for (int k = 0; k < ch; k++) {
		c->sum[k] += sum[k];
		c->sum_sq[k] += sq[k];
	}
	c->pixels += n * plane;
	pthread_mutex_unlock(&c->lock);
}

static void write_lines(struct consumer *c, struct batch_lines *b)
{
	if (b->list_len)
		fwrite(b->list, 1, b->list_len, c->list_file);
	if (b->errors_len)
		fwrite(b->errors, 1, b->errors_len, c->errors_file);
	free(b->list);
	free(b->errors);
}

/* Under c->lock: writes b now if its turn has come (and whatever waited for it), else keeps it. */
static void write_in_order(struct consumer *c, struct batch_lines *b)
{
	if (b->sequence > c->next_sequence) {
		if (c->waiting_count == c->waiting_cap) {
			size_t cap = c->waiting_cap ? 2 * c->waiting_cap : 8;
			struct batch_lines *grown = realloc(c->waiting, cap * sizeof(*grown));
			if (!grown) {
				write_lines(c, b); /* out of memory: out of order rather than lost */
				return;
			}
			c->waiting = grown;
			c->waiting_cap = cap;
		}
		c->waiting[c->waiting_count++] = *b;
		return;
	}
	write_lines(c, b);
	c->next_sequence = b->sequence + 1;
	for (size_t i = 0; i < c->waiting_count;) {
		if (c->waiting[i].sequence != c->next_sequence) {
			i++;
			continue;
		}
		write_lines(c, &c->waiting[i]);
		c->next_sequence++;
		c->waiting[i] = c->waiting[--c->waiting_count];
		i = 0; /* the next one may sit anywhere */
	}
}

static int by_sequence(const void *a, const void *b)
{
	uint64_t x = ((const struct batch_lines *)a)->sequence, y = ((const struct batch_lines *)b)->sequence;
	return x < y ? -1 : x > y;
}

void consumer_flush(struct consumer *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->waiting_count > 1)
		qsort(c->waiting, c->waiting_count, sizeof(*c->waiting), by_sequence);
	for (size_t i = 0; i < c->waiting_count; i++)
		write_lines(c, &c->waiting[i]);
	c->waiting_count = 0;
	pthread_mutex_unlock(&c->lock);
}

/*
 * A TSV field: a tab, newline, carriage return or backslash in it (a file
 * name may hold any of them) is written as \t, \n, \r or \\, so that
 * every record stays one line of the columns it promises.
 */
static void put_field(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\t':
			fputs("\\t", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

/*
 * --list: INDEX<TAB>EPOCH<TAB>PATH for every image of the batch; --errors:
 * PATH<TAB>REASON for every failure it carries (fields escaped by put_field),
 * the first few echoed at once.
 */
static void note_batch(struct consumer *c, const rf_batch *batch)
{
	struct batch_lines b = {.sequence = rf_batch_sequence(batch)};
	FILE *list = c->list_file ? open_memstream(&b.list, &b.list_len) : NULL;
	for (size_t i = 0; list && i < rf_batch_count(batch); i++) {
		fprintf(list, "%llu\t%u\t", (unsigned long long)rf_batch_index(batch, i), rf_batch_epoch(batch));
		put_field(list, rf_batch_path(batch, i));
		fputc('\n', list);
	}
	size_t n = rf_batch_error_count(batch);
	FILE *errors = c->errors_file && n ? open_memstream(&b.errors, &b.errors_len) : NULL;
	for (size_t i = 0; errors && i < n; i++) {
		put_field(errors, rf_batch_error(batch, i)->path);
		fputc('\t', errors);
		put_field(errors, rf_batch_error(batch, i)->reason);
		fputc('\n', errors);
	}
	if (list)
		fclose(list);
	if (errors)
		fclose(errors);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		const rf_item_error *e = rf_batch_error(batch, i);
		if (c->echo_errors && c->errors_seen < 10)
			fprintf(stderr, "ringfeed: skipped %s: %s\n", e->path, e->reason);
		c->errors_seen++;
	}
	if (c->list_file || c->errors_file)
		write_in_order(c, &b);
	pthread_mutex_unlock(&c->lock);
}

int consumer_run(const rf_batch *batch, void *user)
{
	struct consumer *c = user;
	note_batch(c, batch);
	switch (c->kind) {
	case CONSUMER_STATS:
		accumulate(c, batch);
		break;
	case CONSUMER_NULL:
		break;
	case CONSUMER_SLEEP:
		pause_ms(c, c->cost_ms);
		break;
	case CONSUMER_SPIN:
		spin(c, c->cost_ms);
		break;
	}
	return 0;
}

int consumer_channel_stats(struct consumer *c, double mean[4], double std[4])
{
	int ch = c->cfg->output.channels;
	pthread_mutex_lock(&c->lock);
	for (int k = 0; k < ch; k++) {
		double n = (double)c->pixels;
		mean[k] = n > 0 ? c->sum[k] / n : 0;
		double var = n > 0 ? c->sum_sq[k] / n - mean[k] * mean[k] : 0;
		std[k] = var > 0 ? sqrt(var) : 0;
	}
	pthread_mutex_unlock(&c->lock);
	return ch;
}
