/* Checkpoint and resume: the stream position as a line of text, and its checks. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

/*
 * "ringfeed-state 2 position=P inputs=N paths=HASH shuffle=S seed=X
 * shard=I/W equal=E", then nothing but white space. Format 2 adds paths=, a
 * hash of the input paths in order: the same number of different files must
 * not resume in the middle. Format 1 (no hash) is still read.
 */
/* FNV-1a over every path and its terminating zero, in order. */
static uint64_t hash_paths(const rf__source *src)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < src->count; i++)
		for (const unsigned char *c = (const unsigned char *)src->paths[i];; c++) {
			h = (h ^ *c) * 1099511628211ull;
			if (!*c)
				break;
		}
	return h;
}

int rf_pipeline_save_state(rf_pipeline *p, char *buf, size_t len)
{
	if (!p || !buf)
		return RF_EINVAL;
	if (atomic_load(&p->state) == RF_STATE_CREATED || !p->cfg.batch.ordered)
		return RF_ESTATE;
	const rf__sampler *s = &p->sampler;
	int n = snprintf(buf, len,
			 "ringfeed-state 2 position=%" PRIu64 " inputs=%zu paths=%016" PRIx64 " shuffle=%d seed=%" PRIu64
			 " shard=%d/%d equal=%d\n",
			 atomic_load(&p->delivered_position), s->inputs, p->paths_hash, s->shuffle, s->seed,
			 s->shard_index, s->shard_count, (int)p->cfg.source.equal_shards);
	return n > 0 && (size_t)n < len ? 0 : RF_EINVAL;
}

static bool only_space(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

/* Steps *s over text if it starts there. */
static bool literal(const char **s, const char *text)
{
	size_t n = strlen(text);
	if (strncmp(*s, text, n) != 0)
		return false;
	*s += n;
	return true;
}

/*
 * Steps *s over a number of at most max, digits only (no sign, space or 0x,
 * all of which strtoull and scanf would take: "-5" as 2^64 - 5).
 */
static bool number(const char **s, int base, uint64_t max, uint64_t *out)
{
	size_t digits = strspn(*s, base == 16 ? "0123456789abcdefABCDEF" : "0123456789");
	if (digits == 0 || digits > 32)
		return false;
	char text[33];
	memcpy(text, *s, digits);
	text[digits] = '\0';
	errno = 0;
	unsigned long long v = strtoull(text, NULL, base);
	if (errno || v > max)
		return false;
	*out = v;
	*s += digits;
	return true;
}

static bool small_number(const char **s, int *out)
{
	uint64_t v;
	if (!number(s, 10, INT_MAX, &v))
		return false;
	*out = (int)v;
	return true;
}

static bool parse_state(const char *s, rf__resume_state *r)
{
	uint64_t inputs;
	if (!literal(&s, "ringfeed-state "))
		return false;
	r->has_paths = literal(&s, "2 ");
	if (!r->has_paths && !literal(&s, "1 "))
		return false;
	if (!literal(&s, "position=") || !number(&s, 10, UINT64_MAX, &r->position) || !literal(&s, " inputs=") ||
	    !number(&s, 10, SIZE_MAX, &inputs))
		return false;
	r->inputs = (size_t)inputs;
	if (r->has_paths && (!literal(&s, " paths=") || !number(&s, 16, UINT64_MAX, &r->paths)))
		return false;
	return literal(&s, " shuffle=") && small_number(&s, &r->shuffle) && literal(&s, " seed=") &&
	       number(&s, 10, UINT64_MAX, &r->seed) && literal(&s, " shard=") && small_number(&s, &r->shard_index) &&
	       literal(&s, "/") && small_number(&s, &r->shard_count) && literal(&s, " equal=") &&
	       small_number(&s, &r->equal_shards) && only_space(s);
}

int rf_pipeline_resume(rf_pipeline *p, const char *state)
{
	if (!p || !state)
		return RF_EINVAL;
	if (atomic_load(&p->state) != RF_STATE_CREATED)
		return RF_ESTATE;
	rf__resume_state r = {.set = true};
	if (!parse_state(state, &r)) {
		pthread_mutex_lock(&p->error_lock);
		snprintf(p->error, sizeof(p->error), "not a ringfeed resume state");
		pthread_mutex_unlock(&p->error_lock);
		return RF_EINVAL;
	}
	p->resume = r;
	return 0;
}

int rf__pipeline_apply_resume(rf_pipeline *p)
{
	/* Only ordered runs save or check a state: no pass over every path for the others. */
	if (p->cfg.batch.ordered)
		p->paths_hash = hash_paths(&p->source);
	if (!p->resume.set)
		return 0;
	rf__sampler *s = &p->sampler;
	const char *what = NULL;
	if (!p->cfg.batch.ordered)
		what = "batch.ordered is false";
	else if (p->resume.inputs != s->inputs)
		what = "the number of inputs differs";
	else if (p->resume.has_paths && p->resume.paths != p->paths_hash)
		what = "the input paths differ";
	else if (p->resume.shuffle != s->shuffle || p->resume.seed != s->seed)
		what = "source.shuffle or source.seed differs";
	else if (p->resume.shard_index != s->shard_index || p->resume.shard_count != s->shard_count)
		what = "the shard differs";
	else if (p->resume.equal_shards != (int)p->cfg.source.equal_shards)
		what = "source.equal_shards differs";
	else if (p->resume.position > s->total)
		what = "its position is past the end of the stream (fewer epochs?)";
	if (what) {
		rf__pipeline_fail(p, RF_ECONFIG, "cannot resume: %s", what);
		return RF_ECONFIG;
	}
	s->next = p->resume.position;
	p->batcher.next_due = p->resume.position;
	atomic_store(&p->delivered_position, p->resume.position);
	return 0;
}
