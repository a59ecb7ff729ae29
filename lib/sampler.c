#include "sampler.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: tiny, fast, and the same sequence on every platform. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, bound), without modulo bias (rejection). */
static uint64_t below(uint64_t *state, uint64_t bound)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
	uint64_t r;
	do
		r = next_random(state);
	while (r >= limit);
	return r % bound;
}

void rf__sampler_permute(uint32_t *perm, size_t n, uint64_t seed, uint64_t epoch)
{
	uint64_t state = seed ^ (epoch * 0xd1b54a32d192ed03ull);
	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
		size_t j = (size_t)below(&state, i);
		uint32_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
}

/* A whole decimal number from 0 to INT_MAX. */
static bool parse_count(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* Rank and world size from the common launchers' environment variables; RF_ECONFIG with err if none or not numbers. */
static int launcher_rank(int *rank, int *size, char *err, size_t err_len)
{
	static const char *const vars[][2] = {
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
		{"PMI_RANK", "PMI_SIZE"},
		{"RANK", "WORLD_SIZE"},
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *r = getenv(vars[i][0]), *w = getenv(vars[i][1]);
		if (r && w && *r && *w) {
			if (parse_count(r, rank) && parse_count(w, size))
				return 0;
			/* atoi would make every rank 0: all of them reading the same shard */
			snprintf(err, err_len, "source.shard_index = auto: %s='%s' and %s='%s' are not a rank and a size",
				 vars[i][0], r, vars[i][1], w);
			return RF_ECONFIG;
		}
	}
	snprintf(err, err_len, "source.shard_index = auto: no rank in the environment "
			       "(OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE or RANK/WORLD_SIZE)");
	return RF_ECONFIG;
}

int rf__sampler_init(rf__sampler *s, size_t inputs, const rf_config *cfg, char *err, size_t err_len)
{
	memset(s, 0, sizeof(*s));
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return RF_ENOMEM;
	s->ready = true;
	s->inputs = inputs;
	s->shard_index = cfg->source.shard_index;
	s->shard_count = cfg->source.shard_count;
	s->shuffle = cfg->source.shuffle;
	s->seed = cfg->source.seed;
	if (s->shard_index < 0 && launcher_rank(&s->shard_index, &s->shard_count, err, err_len) != 0)
		return RF_ECONFIG;
	if (s->shard_count < 1 || s->shard_index < 0 || s->shard_index >= s->shard_count) {
		snprintf(err, err_len, "source.shard_index %d is not below source.shard_count %d", s->shard_index,
			 s->shard_count);
		return RF_ECONFIG;
	}
	if (inputs > UINT32_MAX) {
		snprintf(err, err_len, "more than %u inputs", UINT32_MAX);
		return RF_ECONFIG;
	}
	uint64_t n = inputs, w = (uint64_t)s->shard_count, r = (uint64_t)s->shard_index;
	switch (cfg->source.equal_shards) {
	case RF_SHARDS_PAD:
		s->per_epoch = n ? (n + w - 1) / w : 0;
		break;
	case RF_SHARDS_DROP:
		s->per_epoch = n / w;
		break;
	case RF_SHARDS_NONE:
		s->per_epoch = r < n ? (n - r + w - 1) / w : 0;
		break;
	}
	s->total = s->per_epoch * (uint64_t)cfg->source.epochs;
	if (s->shuffle && inputs > 0 && !(s->perm = malloc(inputs * sizeof(*s->perm))))
		return RF_ENOMEM;
	return 0;
}

void rf__sampler_destroy(rf__sampler *s)
{
	if (s->ready)
		pthread_mutex_destroy(&s->lock);
	free(s->perm);
	memset(s, 0, sizeof(*s));
}

size_t rf__sampler_pick(const rf__sampler *s, const uint32_t *perm, uint64_t k)
{
	uint64_t j = ((uint64_t)s->shard_index + k * (uint64_t)s->shard_count) % s->inputs; /* pad wraps */
	return perm ? perm[j] : (size_t)j;
}

bool rf__sampler_next(rf__sampler *s, uint64_t *position, size_t *index, uint32_t *epoch)
{
	pthread_mutex_lock(&s->lock);
	bool more = s->next < s->total;
	if (more) {
		uint64_t g = s->next++;
		uint64_t e = g / s->per_epoch;
		/* Positions go out in order under the lock, so one epoch's permutation is enough. */
		if (s->shuffle && (!s->perm_valid || s->perm_epoch != e)) {
			rf__sampler_permute(s->perm, s->inputs, s->seed, e);
			s->perm_epoch = e;
			s->perm_valid = true;
		}
		*position = g;
		*index = rf__sampler_pick(s, s->shuffle ? s->perm : NULL, g % s->per_epoch);
		*epoch = (uint32_t)e;
	}
	pthread_mutex_unlock(&s->lock);
	return more;
}
