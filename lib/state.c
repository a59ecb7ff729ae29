/* Checkpoint and resume: the stream position as a line of text, and its checks. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pipeline.h"

/*
 * Format 2 adds paths=, a hash of the input paths in order: the same number
 * of different files must not resume in the middle. Format 1 (no hash) is
 * still read. %n: nothing but white space may follow.
 */
#define STATE_FORMAT_2                                                                                      \
	"ringfeed-state 2 position=%" SCNu64 " inputs=%zu paths=%" SCNx64 " shuffle=%d seed=%" SCNu64           \
	" shard=%d/%d equal=%d%n"
#define STATE_FORMAT_1                                                                                      \
	"ringfeed-state 1 position=%" SCNu64 " inputs=%zu shuffle=%d seed=%" SCNu64 " shard=%d/%d equal=%d%n"

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

int rf_pipeline_resume(rf_pipeline *p, const char *state)
{
	if (!p || !state)
		return RF_EINVAL;
	if (atomic_load(&p->state) != RF_STATE_CREATED)
		return RF_ESTATE;
	rf__resume_state r = {.set = true, .has_paths = true};
	int end = 0;
	bool ok = sscanf(state, STATE_FORMAT_2, &r.position, &r.inputs, &r.paths, &r.shuffle, &r.seed,
			 &r.shard_index, &r.shard_count, &r.equal_shards, &end) == 8 &&
		  end > 0 && only_space(state + end);
	if (!ok) {
		r.has_paths = false;
		end = 0;
		ok = sscanf(state, STATE_FORMAT_1, &r.position, &r.inputs, &r.shuffle, &r.seed, &r.shard_index,
			    &r.shard_count, &r.equal_shards, &end) == 7 &&
		     end > 0 && only_space(state + end);
	}
	if (!ok) {
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
