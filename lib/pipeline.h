/*
 * Pipeline internals shared by the core (lib/) and the stages (stages/).
 *
 * Items are preallocated (pipeline.items) and circulate: free_items ->
 * loader -> decode queue -> decoder -> batcher -> free_items. Batches are
 * preallocated in the batcher's pool and circulate: pool -> batcher (filling)
 * -> ready queue -> consumer -> pool. Nothing is allocated per image once the
 * buffers have grown to the data set's sizes.
 */
#ifndef RF_LIB_PIPELINE_H
#define RF_LIB_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "batcher.h"
#include "decode.h"
#include "queue.h"
#include "ringfeed/ringfeed.h"
#include "sampler.h"
#include "source.h"
#include "tune.h"

#define RF_REASON_MAX 200

typedef struct rf__item {
	uint64_t seq;   /* position in the stream: orders delivery */
	size_t index;   /* input index (which file) */
	uint32_t epoch;
	int status;   /* 0 or an RF_E* code; reason says why */
	char reason[RF_REASON_MAX];
	uint8_t *data; /* compressed bytes: len used, cap allocated */
	size_t len, cap;
	uint8_t *pixels; /* HWC u8 output of the decoder */
	/* Loader scratch. */
	int fd;
	bool direct; /* fd reads with O_DIRECT: aligned offsets, lengths and buffer */
	int pending; /* operations in flight for this item */
	uint64_t size;
	void *loader_state; /* backend-specific, e.g. a struct statx */
} rf__item;

/*
 * Counters of one stage, summed over its threads. Loader and decoder threads
 * are busy whenever they are neither starved nor blocked, so their busy time
 * is derived from thread lifetimes; the inference stage measures busy time
 * directly (RF__HELD: from handing out a batch to its release). Every kind of
 * interval counts while still in progress (rf__wait_begin / rf__wait_end), so
 * that no time goes down between two snapshots and a batch held for a minute
 * is a minute of work as it happens, not when it is released.
 */
enum rf__wait_kind { RF__STARVED, RF__BLOCKED, RF__HELD, RF__WAIT_KINDS };

typedef struct rf__stage_counters {
	_Atomic int threads;  /* started */
	int running;          /* started and not yet exited (under wait_lock) */
	uint64_t running_since; /* sum of their start times (under wait_lock) */
	_Atomic int next_index; /* each thread takes one: its place in the autotuner's order */
	_Atomic uint64_t items;
	_Atomic uint64_t lifetime_ns; /* of exited threads */
	_Atomic uint64_t spent_ns[RF__WAIT_KINDS]; /* finished intervals of each kind */
	_Atomic uint64_t cpu_ns; /* on-CPU time of its threads, added as they go */
	/* Intervals in progress, per rf__wait_kind: how many, and the sum of their starts. */
	pthread_mutex_t wait_lock; /* also taken to add a finished one, so snapshots see each whole */
	int waiting[RF__WAIT_KINDS];
	uint64_t waiting_since[RF__WAIT_KINDS];
	uint64_t end_cap; /* the run's end, once it ended: every interval stops there (under wait_lock) */
} rf__stage_counters;

/* A parsed rf_pipeline_resume state: where to start and what it was made for. */
typedef struct rf__resume_state {
	bool set;
	uint64_t position, seed;
	uint64_t paths; /* hash of the input paths in order; states of format 1 have none */
	bool has_paths;
	size_t inputs;
	int shuffle, shard_index, shard_count, equal_shards;
} rf__resume_state;

enum rf__state { RF_STATE_CREATED, RF_STATE_RUNNING, RF_STATE_ENDED };

/* Bytes of file buffers items may hold under limits.memory_mb (lib/budget.c). */
typedef struct rf__budget {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	uint64_t limit; /* 0: no cap, nothing is counted */
	uint64_t held, peak;
	bool ready;
} rf__budget;

struct rf_pipeline {
	rf_config cfg;
	rf__source source;
	_Atomic int state;
	_Atomic bool canceled;

	rf__item *items;
	size_t item_count;
	rf__queue free_items;
	rf__queue decode_queue;
	rf__batcher batcher;
	rf__converter converter;
	rf__budget budget;

	rf__sampler sampler; /* which input comes next */
	rf__resume_state resume;             /* from rf_pipeline_resume, checked at start */
	uint64_t paths_hash;                 /* of the input paths in order, set at start (lib/state.c) */
	bool start_tried;                    /* rf_pipeline_start ran: a failed start is not retried */
	_Atomic uint64_t delivered_position; /* ordered: resume point after the batches handed out */
	rf_backend backend;        /* resolved: io_uring or pread */
	char backend_name[160];
	const char *blocking_fs;   /* io_uring, io_depth = auto: the first input's file system if it blocks */

	pthread_t *threads;
	int thread_count;
	int loader_threads, decoder_threads; /* started (with auto: the maxima; see tune.h) */
	int io_depth;                        /* io_uring: files in flight per loader, at most */
	rf__tune tune;
	_Atomic int decoders_running;

	rf__stage_counters stage[RF_STAGE_COUNT];
	_Atomic uint64_t bytes_read;
	uint64_t start_ns;
	_Atomic uint64_t end_ns;         /* 0 while running */
	_Atomic uint64_t first_batch_ns; /* 0 until the first batch is ready */

	pthread_mutex_t error_lock;
	int fatal_code; /* first fatal error (RF_EITEM, RF_EUSER, ...), 0 if none */
	char error[512];
};

/* Sizes pools and queues and picks the loader backend (rf_pipeline_start's
 * first step; tests call it to drive a stage by hand). */
int rf__pipeline_prepare(rf_pipeline *p);
/* Applies a resume state to the sampler and batcher; RF_ECONFIG on a mismatch. */
int rf__pipeline_apply_resume(rf_pipeline *p);
/* Records the first fatal error and cancels the run. */
void rf__pipeline_fail(rf_pipeline *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The first fatal error's code, 0 if none. */
int rf__pipeline_fatal(rf_pipeline *p);
/* Per-item failure: status and reason on the item (the batcher reports it). */
void rf__item_fail(rf__item *item, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Loader side. rf__loader_take_item hands out a free item bound to the next
 * input: with wait, blocks for a free item (time counted as blocked); without,
 * returns NULL with *rc = RF_ETIMEDOUT if none is free. Returns NULL with
 * *rc = RF_EOF when every input has been taken, RF_ECANCELED on cancel.
 */
rf__item *rf__loader_take_item(rf_pipeline *p, bool wait, int *rc);
/*
 * Stats the opened fd (the attributes its open brought, no round trip to a
 * server) and checks the file before reading: regular, under max_file_bytes.
 * Sets item->size; returns false with the item failed otherwise.
 */
bool rf__loader_size_file(rf_pipeline *p, rf__item *item, int fd);
/*
 * The name of path's file system if it serves every operation by blocking a
 * thread (FUSE, NFS, SMB, Ceph, 9p): io_uring then hands each operation to a
 * kernel worker thread that waits for the server, so keeping the loading fed
 * takes more files in flight than on a local disk. NULL otherwise or when
 * path cannot be looked at.
 */
const char *rf__loader_blocking_fs(const char *path);
/* rf__loader_reserve results. */
enum { RF__RESERVED = 0, RF__RESERVE_FAILED = -1, RF__RESERVE_LATER = 1 };
/*
 * Makes room for item->size bytes within the file-buffer budget: RESERVED;
 * FAILED with the item failed (out of memory, larger than the whole budget,
 * canceled); LATER only without wait, when the budget is spent for now.
 * With wait, blocks until the bytes are free.
 */
int rf__loader_reserve(rf_pipeline *p, rf__item *item, bool wait);

/* The budget (lib/budget.c). */
int rf__budget_init(rf__budget *b, uint64_t limit);
void rf__budget_destroy(rf__budget *b);
/* Drops item's buffer and charges want bytes for a new one; codes as rf__loader_reserve. */
int rf__budget_charge(rf_pipeline *p, rf__item *item, size_t want, bool wait);
/* Takes back bytes charged for a buffer that could not be allocated. */
void rf__budget_uncharge(rf_pipeline *p, size_t bytes);
/* After decoding: gives item's buffer back under a budget; without one, only if over keep_max. */
void rf__budget_after_decode(rf_pipeline *p, rf__item *item, size_t keep_max);
/*
 * Puts item's opened fd in reading mode: blocking, and O_DIRECT under
 * loader.direct_io where the file system takes it (item->direct says; where it
 * does not, the file is read through the page cache).
 */
void rf__loader_read_mode(rf_pipeline *p, rf__item *item, int fd);
/* Bytes the next read of item asks for (whole blocks under O_DIRECT). */
size_t rf__loader_read_len(const rf__item *item);

/* Hands a loaded (or failed) item to the decoders. 0 or RF_ECLOSED. */
int rf__loader_deliver(rf_pipeline *p, rf__item *item);

/* Stage thread bodies (stages/). */
void rf__loader_uring_run(rf_pipeline *p);
void rf__loader_pread_run(rf_pipeline *p);
void rf__decoder_run(rf_pipeline *p);
/* 0 if this process can create an io_uring, else RF_ESYS with why filled. */
int rf__uring_probe(char *why, size_t why_len);

/*
 * Adds the calling thread's CPU time since *last to the stage's cpu_ns; stage
 * threads call it once per item or loop pass (a syscall: not per byte).
 */
void rf__count_cpu(rf__stage_counters *st, uint64_t *last);

/* An interval starts (returns its start time), and ends, adding its length to spent_ns[kind]. */
uint64_t rf__wait_begin(rf__stage_counters *st, enum rf__wait_kind kind);
void rf__wait_end(rf__stage_counters *st, enum rf__wait_kind kind, uint64_t since);
/*
 * Sets *end_ns (the run's end, now) unless set, and from then on ends every
 * interval of st there, all under st's lock so that no snapshot sees time go
 * back: a batch kept past the end, or a call to rf_pipeline_next after it, is
 * not the run's time. Returns the end.
 */
uint64_t rf__stage_end(rf__stage_counters *st, _Atomic uint64_t *end_ns);
/* The run's end if rf__stage_end set it, else now: read under st's lock, so never after an end set later. */
uint64_t rf__stage_stop(rf__stage_counters *st, _Atomic uint64_t *end_ns);
/*
 * Thread lifetimes and the time spent in each kind of interval (ns) of st
 * now, those in progress included (only up to the run's end, once
 * rf__stage_end set it); returns that now. One lock with
 * rf__wait_* and rf__stage_thread_*: a snapshot never sees half a change.
 */
uint64_t rf__stage_times(rf__stage_counters *st, uint64_t *alive, uint64_t spent[RF__WAIT_KINDS]);
/* The same at now, a time read before this call (the autotuner's ticks). */
void rf__stage_look(rf__stage_counters *st, uint64_t now, uint64_t *alive, uint64_t spent[RF__WAIT_KINDS]);
/* A stage thread starts (returns its start time) and exits. */
uint64_t rf__stage_thread_start(rf__stage_counters *st);
void rf__stage_thread_exit(rf__stage_counters *st, uint64_t started);

static inline void rf__count(_Atomic uint64_t *counter, uint64_t v)
{
	atomic_fetch_add_explicit(counter, v, memory_order_relaxed);
}

/*
 * Time spent so far in count intervals still open at now, whose start times
 * sum to since_sum (waits, parked or running threads). Clamped at 0: an
 * interval that began after the caller read now would wrap the difference.
 */
static inline uint64_t rf__open_ns(uint64_t count, uint64_t now, uint64_t since_sum)
{
	uint64_t open = count * now;
	return open > since_sum ? open - since_sum : 0;
}

#endif
