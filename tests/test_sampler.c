/* Epochs, seeded shuffles and shards: which input comes at each stream position. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

static rf_config shard_config(int index, int count, rf_equal_shards mode, bool shuffle, int epochs)
{
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.source.shard_index = index;
	cfg.source.shard_count = count;
	cfg.source.equal_shards = mode;
	cfg.source.shuffle = shuffle;
	cfg.source.seed = 42;
	cfg.source.epochs = epochs;
	return cfg;
}

/* Every position the sampler hands out, as input indices. */
static size_t drain(rf__sampler *s, size_t *out, uint32_t *epochs, size_t max)
{
	size_t n = 0, index;
	uint64_t position;
	uint32_t epoch;
	while (rf__sampler_next(s, &position, &index, &epoch)) {
		cr_assert_lt(n, max);
		cr_assert_eq(position, n, "positions are handed out in order");
		out[n] = index;
		if (epochs)
			epochs[n] = epoch;
		n++;
	}
	return n;
}

Test(sampler, permutation_is_seeded_and_portable)
{
	uint32_t a[10], b[10], c[10];
	rf__sampler_permute(a, 10, 42, 0);
	rf__sampler_permute(b, 10, 42, 0);
	rf__sampler_permute(c, 10, 42, 1);
	cr_assert_arr_eq(a, b, sizeof(a), "same seed and epoch, same order");
	cr_assert_neq(memcmp(a, c, sizeof(a)), 0, "another epoch, another order");
	/* Pinned so that a change of generator (which would reorder every user's data) fails here. */
	const uint32_t expect[10] = {0, 9, 5, 8, 6, 4, 7, 2, 1, 3};
	for (int i = 0; i < 10; i++)
		cr_assert_eq(a[i], expect[i], "position %d: %u, pinned %u", i, a[i], expect[i]);
}

Test(sampler, shuffle_covers_every_input_each_epoch)
{
	enum { N = 1000, E = 3 };
	rf_config cfg = shard_config(0, 1, RF_SHARDS_PAD, true, E);
	rf__sampler s;
	char err[256];
	cr_assert_eq(rf__sampler_init(&s, N, &cfg, err, sizeof(err)), 0, "%s", err);
	size_t *out = calloc(N * E, sizeof(*out));
	uint32_t *epochs = calloc(N * E, sizeof(*epochs));
	cr_assert_eq(drain(&s, out, epochs, N * E), N * E);
	for (int e = 0; e < E; e++) {
		uint8_t seen[N] = {0};
		size_t in_place = 0;
		for (int k = 0; k < N; k++) {
			cr_assert_eq(epochs[e * N + k], (uint32_t)e);
			seen[out[e * N + k]]++;
			in_place += out[e * N + k] == (size_t)k;
		}
		for (int i = 0; i < N; i++)
			cr_assert_eq(seen[i], 1, "epoch %d: input %d seen %d times", e, i, seen[i]);
		cr_assert_lt(in_place, 20, "epoch %d looks unshuffled", e);
	}
	cr_assert_neq(memcmp(out, out + N, N * sizeof(*out)), 0);
	free(out);
	free(epochs);
	rf__sampler_destroy(&s);
}

/* The shards of one epoch: their sizes and how often each input appears across them. */
static void check_shards(size_t n, int w, rf_equal_shards mode, bool shuffle, const size_t *sizes, int max_copies)
{
	uint8_t *copies = calloc(n, 1);
	for (int r = 0; r < w; r++) {
		rf_config cfg = shard_config(r, w, mode, shuffle, 1);
		rf__sampler s;
		char err[256];
		cr_assert_eq(rf__sampler_init(&s, n, &cfg, err, sizeof(err)), 0, "%s", err);
		size_t *out = calloc(n + (size_t)w, sizeof(*out));
		size_t got = drain(&s, out, NULL, n + (size_t)w);
		cr_assert_eq(got, sizes[r], "shard %d of %d: %zu items, expected %zu", r, w, got, sizes[r]);
		for (size_t i = 0; i < got; i++)
			copies[out[i]]++;
		free(out);
		rf__sampler_destroy(&s);
	}
	size_t covered = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert_leq(copies[i], max_copies, "input %zu in %d shards", i, copies[i]);
		covered += copies[i] > 0;
	}
	size_t expect_covered = mode == RF_SHARDS_DROP ? (n / (size_t)w) * (size_t)w : n;
	cr_assert_eq(covered, expect_covered);
	free(copies);
}

Test(sampler, shards_are_disjoint_and_cover_the_set)
{
	const size_t none[3] = {4, 3, 3}, pad[3] = {4, 4, 4}, drop[3] = {3, 3, 3};
	for (int shuffle = 0; shuffle <= 1; shuffle++) {
		check_shards(10, 3, RF_SHARDS_NONE, shuffle, none, 1);
		check_shards(10, 3, RF_SHARDS_PAD, shuffle, pad, 2); /* padding repeats two inputs */
		check_shards(10, 3, RF_SHARDS_DROP, shuffle, drop, 1);
	}
}

Test(sampler, auto_shard_reads_the_launcher_environment)
{
	rf_config cfg = shard_config(-1, 1, RF_SHARDS_PAD, false, 1);
	rf__sampler s;
	char err[256] = "";
	unsetenv("OMPI_COMM_WORLD_RANK");
	unsetenv("PMI_RANK");
	unsetenv("RANK");
	cr_assert_eq(rf__sampler_init(&s, 10, &cfg, err, sizeof(err)), RF_ECONFIG);
	cr_assert_not_null(strstr(err, "shard_index = auto"), "%s", err);
	rf__sampler_destroy(&s);

	setenv("RANK", "1", 1);
	setenv("WORLD_SIZE", "4", 1);
	cr_assert_eq(rf__sampler_init(&s, 10, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.shard_index, 1);
	cr_assert_eq(s.shard_count, 4);
	size_t out[8];
	cr_assert_eq(drain(&s, out, NULL, 8), 3); /* pad: ceil(10 / 4) */
	cr_assert_eq(out[0], 1);
	cr_assert_eq(out[1], 5);
	cr_assert_eq(out[2], 9);
	rf__sampler_destroy(&s);

	setenv("OMPI_COMM_WORLD_RANK", "2", 1); /* Open MPI's variables win over torch's */
	setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
	cr_assert_eq(rf__sampler_init(&s, 10, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.shard_index, 2);
	cr_assert_eq(s.shard_count, 3);
	rf__sampler_destroy(&s);

	setenv("OMPI_COMM_WORLD_RANK", "3", 1); /* rank outside the world */
	cr_assert_eq(rf__sampler_init(&s, 10, &cfg, err, sizeof(err)), RF_ECONFIG);
	rf__sampler_destroy(&s);

	/* Not a number: an error, not rank 0 (every process would read the same shard). */
	setenv("OMPI_COMM_WORLD_RANK", "abc", 1);
	cr_assert_eq(rf__sampler_init(&s, 10, &cfg, err, sizeof(err)), RF_ECONFIG);
	cr_assert_not_null(strstr(err, "OMPI_COMM_WORLD_RANK='abc'"), "%s", err);
	rf__sampler_destroy(&s);
	setenv("OMPI_COMM_WORLD_RANK", "1x", 1);
	cr_assert_eq(rf__sampler_init(&s, 10, &cfg, err, sizeof(err)), RF_ECONFIG);
	rf__sampler_destroy(&s);
}

Test(sampler, empty_input_and_more_shards_than_inputs)
{
	rf_config cfg = shard_config(4, 5, RF_SHARDS_NONE, true, 2);
	rf__sampler s;
	char err[256];
	size_t out[4];
	cr_assert_eq(rf__sampler_init(&s, 3, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(drain(&s, out, NULL, 4), 0, "shard 4 of 5 over 3 inputs is empty");
	rf__sampler_destroy(&s);
	cr_assert_eq(rf__sampler_init(&s, 0, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(drain(&s, out, NULL, 4), 0);
	rf__sampler_destroy(&s);
}
