/* The CLI's inference stages: dataset statistics, nothing, sleep, or CPU spin. */
#include <errno.h>
#include <math.h>
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
	pthread_mutex_init(&c->lock, NULL);
}

void consumer_destroy(struct consumer *c)
{
	pthread_mutex_destroy(&c->lock);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Burns CPU for ms milliseconds, like a model running on the host. */
static void spin(double ms)
{
	double until = now_ms() + ms;
	volatile double x = 1.0;
	while (now_ms() < until)
		for (int i = 0; i < 1000; i++)
			x = x * 1.0000001 + 1e-9;
}

static void pause_ms(double ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1e3), .tv_nsec = (long)(fmod(ms, 1e3) * 1e6)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
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

/* --list: INDEX<TAB>EPOCH<TAB>PATH for every image of the batch. */
static void list_images(struct consumer *c, const rf_batch *batch)
{
	if (!c->list_file)
		return;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < rf_batch_count(batch); i++)
		fprintf(c->list_file, "%llu\t%u\t%s\n", (unsigned long long)rf_batch_index(batch, i),
			rf_batch_epoch(batch), rf_batch_path(batch, i));
	pthread_mutex_unlock(&c->lock);
}

static void note_errors(struct consumer *c, const rf_batch *batch)
{
	size_t n = rf_batch_error_count(batch);
	if (n == 0)
		return;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		const rf_item_error *e = rf_batch_error(batch, i);
		if (c->errors_file)
			fprintf(c->errors_file, "%s\t%s\n", e->path, e->reason);
		if (c->echo_errors && c->errors_seen < 10)
			fprintf(stderr, "ringfeed: skipped %s: %s\n", e->path, e->reason);
		c->errors_seen++;
	}
	pthread_mutex_unlock(&c->lock);
}

int consumer_run(const rf_batch *batch, void *user)
{
	struct consumer *c = user;
	note_errors(c, batch);
	list_images(c, batch);
	switch (c->kind) {
	case CONSUMER_STATS:
		accumulate(c, batch);
		break;
	case CONSUMER_NULL:
		break;
	case CONSUMER_SLEEP:
		pause_ms(c->cost_ms);
		break;
	case CONSUMER_SPIN:
		spin(c->cost_ms);
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
