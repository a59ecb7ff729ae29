/*
 * Autotuning: decoder.threads = auto, loader.io_depth = auto, and for the pread
 * backend loader.threads = auto.
 *
 * Each tunable stage starts its maximum number of threads (decoders: one per
 * CPU; pread loaders: RF__PREAD_AUTO_MAX) and a thread whose index is at or
 * beyond the stage's active count parks. io_uring loaders instead keep at most
 * the active count of files in flight. A tuner thread looks at the stages'
 * busy / starved / blocked time every tick and moves the active counts within
 * [min, max]: deeper loading when decoders starve while every allowed read is in
 * flight, fewer decoders when they mostly wait for the consumer, more when they
 * are saturated and the consumer waits. Memory stays within limits.memory_mb
 * because the maxima are what the pools were sized for.
 */
#ifndef RF_LIB_TUNE_H
#define RF_LIB_TUNE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringfeed/ringfeed.h"

/* The knobs, indexed like the stage they belong to. */
#define RF__KNOB_LOADER RF_STAGE_LOADER
#define RF__KNOB_DECODER RF_STAGE_DECODER
#define RF__KNOB_COUNT 2

/*
 * loader.io_depth = auto: files in flight per io_uring loader, start, floor and
 * ceiling. The floor is low because on a local disk files read long before a
 * decoder takes them only cost memory and cache.
 */
#define RF__IO_DEPTH_AUTO_START 16
#define RF__IO_DEPTH_AUTO_FLOOR 4
#define RF__IO_DEPTH_AUTO_MAX 128
/*
 * On a file system that blocks in every operation (FUSE, NFS, ...; see
 * rf__loader_blocking_fs) each file in flight is an io_uring worker waiting for
 * the server. More of them in flight costs fewer wake-ups per file (over FUSE:
 * 8.8 context switches per file at 64, 11.1 at 16) though the decoders starve
 * too little at 16 for the tuner to deepen: the depth starts here and never
 * shrinks below it (docs/tuning.md, section 7).
 */
#define RF__IO_DEPTH_BLOCKING_START 64
/* loader.threads = auto under the pread backend: threads, start, floor and ceiling. */
#define RF__PREAD_AUTO_START 16
#define RF__PREAD_AUTO_FLOOR 4
#define RF__PREAD_AUTO_MAX 64

typedef struct rf__tune {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* an active count changed, or release */
	pthread_cond_t wake;    /* stops the tuner's tick early */
	bool released;          /* under lock: nobody parks any more */
	_Atomic int active[RF__KNOB_COUNT];
	int min[RF__KNOB_COUNT], max[RF__KNOB_COUNT];
	bool adaptive[RF__KNOB_COUNT];
	bool ready;
	_Atomic uint64_t saturated_ns; /* io_uring loaders: waiting with every allowed read in flight */
	_Atomic uint64_t changes;
	/* Parked time per knob, under lock: finished parks, and the ones going on. */
	uint64_t parked_ns[RF__KNOB_COUNT];
	int parked[RF__KNOB_COUNT];
	uint64_t parked_since_sum[RF__KNOB_COUNT];
} rf__tune;

/* What one tick saw, as shares of each stage's active thread time. */
typedef struct rf__tune_tick {
	double dec_busy, dec_starved, dec_blocked;
	double dec_cpu;        /* on-CPU share of the decoders' busy time */
	double load_saturated; /* io_uring: waiting with every allowed read in flight; pread: reading */
	double load_blocked;   /* loaders waiting for free items or for room in the decode queue */
	double rate;           /* images decoded per second */
} rf__tune_tick;

#define RF__TUNE_RECENT 4

/* The tuner's memory between ticks; zero is the start. */
typedef struct rf__tuner {
	int deepen, shrink;  /* ticks the loading conditions held */
	int oversubscribed;  /* ticks decoders waited for cores */
	int trial;           /* > 0: ticks left in a one-decoder-fewer trial */
	int hold;            /* ticks before decoders may change again */
	double rate_before;  /* images/s before the trial */
	double rate_sum;     /* during the trial */
	int rate_ticks;
	double recent_rate[RF__TUNE_RECENT];
	int recent;
} rf__tuner;

/*
 * One decision, pure: from a tick's shares and the active counts, the new
 * active counts (in place). The rules:
 * - loading: decoders starved > 5% while the loader is saturated, two ticks
 *   running: double the depth (up to max); decoders fed and the loader blocked
 *   for 0.5 s: halve it (not below min);
 * - decoding: busy > 85%, on a CPU >= 75% of that, not blocked: one thread
 *   more (up to max); busy but on a CPU < 60% for four ticks (waiting for
 *   cores): one thread fewer (not below min) for eight ticks, kept only if
 *   the decode rate stayed within 3%; after a trial, no change for 3 s.
 */
void rf__tune_step(rf__tuner *s, const rf__tune_tick *x, const int min[RF__KNOB_COUNT],
		   const int max[RF__KNOB_COUNT], const bool adaptive[RF__KNOB_COUNT], int active[RF__KNOB_COUNT]);

struct rf_pipeline;

/* Sets the knobs from the resolved config (rf_pipeline_start, before any thread runs). */
int rf__tune_init(rf__tune *t, const int start[RF__KNOB_COUNT], const int min[RF__KNOB_COUNT],
		  const int max[RF__KNOB_COUNT], const bool adaptive[RF__KNOB_COUNT]);
void rf__tune_destroy(rf__tune *t);
/* True when some knob adapts, i.e. a tuner thread should run. */
bool rf__tune_adaptive(const rf__tune *t);
/* The tuner thread's body: ticks until released. */
void *rf__tune_main(void *pipeline);

/*
 * Parks the calling thread of stage knob while index >= its active count.
 * Returns at once after rf__tune_release. Parked time goes to the stage's
 * parked_ns, so it counts neither as busy nor as starved.
 */
void rf__tune_wait_turn(struct rf_pipeline *p, int knob, int index);
/* Thread time the knob's threads have spent parked, up to now. */
uint64_t rf__tune_parked_ns(rf__tune *t, int knob, uint64_t now);
/* Wakes every parked thread for good and stops the tuner (cancel, end of input). */
void rf__tune_release(rf__tune *t);

#endif
