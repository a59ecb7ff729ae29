/*
 * Which input comes at each position of the stream: epochs, a seeded shuffle
 * per epoch and this process's shard.
 *
 * Each epoch is a permutation of all inputs (identity without shuffle), the
 * same on every machine for a given seed and epoch. Shard r of W takes every
 * W-th position of it starting at r (as torch's DistributedSampler does), so
 * shards are disjoint and together cover the epoch. equal_shards = pad wraps
 * around so every shard has ceil(n / W) items, drop trims to floor(n / W),
 * none leaves the natural sizes.
 */
#ifndef RF_LIB_SAMPLER_H
#define RF_LIB_SAMPLER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringfeed/ringfeed.h"

typedef struct rf__sampler {
	pthread_mutex_t lock;
	size_t inputs;
	int shard_index, shard_count;
	bool shuffle;
	uint64_t seed;
	uint64_t per_epoch; /* positions per epoch in this shard */
	uint64_t total;     /* per_epoch * epochs */
	uint64_t next;      /* next position to hand out */
	uint32_t *perm;     /* permutation of the epoch being handed out */
	uint64_t perm_epoch;
	bool perm_valid;
	bool ready; /* lock initialised */
} rf__sampler;

/*
 * Plans the stream for `inputs` inputs. shard_index = auto (-1) is resolved
 * from the launcher's environment (Open MPI, PMI, torch). RF_ECONFIG with a
 * message in err, RF_ENOMEM.
 */
int rf__sampler_init(rf__sampler *s, size_t inputs, const rf_config *cfg, char *err, size_t err_len);
void rf__sampler_destroy(rf__sampler *s);

/* Hands out the next position: its input index and epoch. False once all are taken. */
bool rf__sampler_next(rf__sampler *s, uint64_t *position, size_t *index, uint32_t *epoch);

/* Input index of shard position k in a permutation perm (NULL = identity); exposed for tests. */
size_t rf__sampler_pick(const rf__sampler *s, const uint32_t *perm, uint64_t k);

/* Fills perm with the seeded permutation of n inputs for epoch. */
void rf__sampler_permute(uint32_t *perm, size_t n, uint64_t seed, uint64_t epoch);

#endif
