/*
 * ringfeed: keeps an inference or training stage fed with decoded images.
 *
 *   inputs -> loaders (io_uring) -> decoders (decode + resize + normalize)
 *          -> batches -> your code (pull: rf_pipeline_next, push: rf_pipeline_run)
 *
 * Conventions: functions return 0 or a negative RF_E* code (rf_strerror names
 * it), not an errno (which they may change); they never print and never exit. Handles are opaque;
 * every *_close / *_release accepts NULL. Nothing here uses global state: two
 * pipelines in one process never see each other.
 *
 * Threads: each function's comment says from where it may be called. In
 * short: configure and add inputs from one thread; after rf_pipeline_start,
 * rf_pipeline_next, rf_pipeline_cancel and rf_pipeline_stats may be called
 * from any thread at once; a batch belongs to the one thread that holds it;
 * rf_pipeline_close comes last, when no other call on the pipeline runs.
 *
 * Stability: every function and type declared here is stable: within a major
 * version (before 1.0: within a minor version, which is what the CMake
 * package's version check enforces) signatures and documented behaviour do
 * not change, enums and the public structs only gain members at their end,
 * and a program built against an older header runs with a newer library.
 * Two things are explicitly not part of that promise: the wording of
 * messages (rf_pipeline_error, item error reasons, rf_stats_bottleneck's
 * advice) and the rules of rf_stats_bottleneck, which may be refined.
 */
#ifndef RINGFEED_H
#define RINGFEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Only functions marked RF_API are exported from the shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define RF_API __attribute__((visibility("default")))
#else
#define RF_API
#endif

#define RF_VERSION_MAJOR 0
#define RF_VERSION_MINOR 1
#define RF_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked (static string; any thread). */
RF_API const char *rf_version(void);

/* ---- status codes ------------------------------------------------------ */

enum {
	RF_OK = 0,
	RF_EINVAL = -1,     /* bad argument */
	RF_ENOMEM = -2,     /* out of memory */
	RF_EIO = -3,        /* read failed, or file missing / unreadable */
	RF_ECLOSED = -4,    /* queue or pipeline closed */
	RF_EOF = -5,        /* no more data: the normal end of a run */
	RF_ETIMEDOUT = -6,  /* a timed wait expired */
	RF_ECANCELED = -7,  /* rf_pipeline_cancel was called */
	RF_EFORMAT = -8,    /* not an image format ringfeed can decode */
	RF_EDECODE = -9,    /* corrupt or truncated image data */
	RF_ETOOBIG = -10,   /* over limits.max_pixels or limits.max_file_bytes */
	RF_ECONFIG = -11,   /* invalid configuration */
	RF_EITEM = -12,     /* an item failed and pipeline.on_error = fail */
	RF_EUSER = -13,     /* the inference callback returned non-zero */
	RF_ESTATE = -14,    /* call not valid in the pipeline's current state */
	RF_ESYS = -15,      /* an OS call failed (thread creation, ring setup) */
};

/* Short English description of a status code; a static string, never NULL; any thread. */
RF_API const char *rf_strerror(int code);
/* The code's name, e.g. "RF_EDECODE"; a static string, never NULL; any thread. */
RF_API const char *rf_err_name(int code);

/* ---- configuration ------------------------------------------------------ */

typedef enum { RF_BACKEND_AUTO, RF_BACKEND_IO_URING, RF_BACKEND_PREAD } rf_backend;
typedef enum { RF_FIT_COVER, RF_FIT_STRETCH } rf_fit;
typedef enum { RF_LAYOUT_NHWC_U8, RF_LAYOUT_NCHW_F32 } rf_layout;
typedef enum { RF_ON_ERROR_SKIP, RF_ON_ERROR_FAIL } rf_on_error;
typedef enum { RF_SHARDS_PAD, RF_SHARDS_DROP, RF_SHARDS_NONE } rf_equal_shards;

/*
 * Plain data, owned by the caller. rf_config_init sets every field to its
 * default; fields are only ever appended. Thread counts and io_depth of 0 mean
 * "auto": the autotuner adapts them while the pipeline runs, within the CPUs
 * and limits.memory_mb, and rf_stats.tuned says what it chose. The rf_config_* functions touch only the struct they are
 * given: any thread, one struct per thread at a time.
 * mean/std are on the 0..255 scale: f32 output = (pixel - mean[c]) / std[c].
 */
typedef struct rf_config {
	struct {
		int threads;         /* default 0 = auto: 1 with io_uring; with pread, adapted 4..64 from 16 */
		int io_depth;        /* files in flight per io_uring loader thread; default 0 = auto (adapted 4..128
		                      * from 16; 64..128 from 64 on FUSE, NFS, SMB, Ceph, 9p) */
		rf_backend backend;  /* default auto */
		bool direct_io;      /* O_DIRECT reads that bypass the page cache, default false */
	} loader;
	struct {
		int threads;  /* default 0 = auto: one per online CPU, fewer while that decodes faster */
	} decoder;
	struct {
		int width, height;  /* default 224 x 224 */
		int channels;       /* 1, 3 or 4; default 3 */
		rf_fit fit;         /* default cover */
		rf_layout layout;   /* default nhwc_u8 */
		float mean[4];      /* default 0 */
		float std[4];       /* default 1 */
	} output;
	struct {
		int size;        /* default 32 */
		bool ordered;    /* default true: batches follow input order */
		bool drop_last;  /* default false */
	} batch;
	struct {
		int threads;  /* push API threads, default 1 */
	} infer;
	struct {
		uint64_t max_pixels;      /* default 100,000,000 */
		uint64_t max_file_bytes;  /* default 256 MiB */
		uint64_t memory_mb;       /* cap on batches + staging + file buffers; 0 = none (default) */
	} limits;
	struct {
		rf_on_error on_error;  /* default skip */
		int prefetch_batches;  /* batches that can wait ready while each decoder fills one and each
		                        * inference thread holds one (extra batches in the pool), default 2 */
		int queue_depth;       /* decode queue capacity, 0 = auto */
	} pipeline;
	struct {
		char extensions[128]; /* directory walk filter, comma list; "" = all */
		int epochs;           /* passes over the inputs, default 1 */
		bool shuffle;         /* a seeded permutation per epoch, default false */
		uint64_t seed;        /* default 0 */
		int shard_index;      /* this process's shard; -1 = auto (launcher env), default 0 */
		int shard_count;      /* default 1 */
		rf_equal_shards equal_shards; /* default pad: every shard the same length */
	} source;
} rf_config;

/* Sets every field of *cfg to its default (docs/config.md). */
RF_API void rf_config_init(rf_config *cfg);

/*
 * Sets one key, "section.key" = value, e.g. ("decoder.threads", "4").
 * On error returns RF_ECONFIG and writes a message naming the key into
 * err (err may be NULL). cfg is unchanged on error.
 */
RF_API int rf_config_set(rf_config *cfg, const char *key, const char *value, char *err, size_t err_len);

/*
 * As rf_config_set, from one "section.key=value" string (a command-line
 * --set argument). RF_ECONFIG with a message if there is no '=' or no key.
 */
RF_API int rf_config_set_pair(rf_config *cfg, const char *assignment, char *err, size_t err_len);

/*
 * Reads an INI file ([section] then key = value lines) onto cfg. Unknown
 * keys, bad values and unreadable files return RF_ECONFIG with a message
 * naming the file, line and key in err.
 */
RF_API int rf_config_load(rf_config *cfg, const char *path, char *err, size_t err_len);

/* Checks the whole config for consistency; RF_ECONFIG with a message. */
RF_API int rf_config_validate(const rf_config *cfg, char *err, size_t err_len);

/* ---- pipeline ------------------------------------------------------------ */

typedef struct rf_pipeline rf_pipeline;
typedef struct rf_batch rf_batch;

/*
 * Creates a stopped pipeline from a copy of cfg (cfg may be reused or freed
 * at once) and stores it in *out, which the caller owns and frees with
 * rf_pipeline_close. Returns RF_ECONFIG if rf_config_validate rejects cfg
 * (*out is then NULL), RF_ENOMEM on allocation failure. Any thread.
 */
RF_API int rf_pipeline_create(rf_pipeline **out, const rf_config *cfg);

/*
 * Adds inputs before rf_pipeline_start: an image file, a directory (walked
 * recursively, entries sorted by name, hidden entries skipped), or "@FILE"
 * (a list file, one path per line). Each file becomes exactly one item, in the
 * order added. A path that does not exist is still an item (it will fail with
 * a reason). An unreadable list file or directory returns RF_EIO with a
 * message in rf_pipeline_error, and nothing of that input is added (a retry
 * adds nothing twice); RF_ESTATE after start. The path is copied.
 * One thread at a time, before rf_pipeline_start.
 */
RF_API int rf_pipeline_add(rf_pipeline *p, const char *input);

/*
 * Adds path as exactly one item, taken as it is: a name starting with '@'
 * is a file, a directory is not walked (its item fails: not a regular file),
 * source.extensions does not apply. For lists held by the caller. RF_EINVAL
 * for NULL or "", RF_ENOMEM, RF_ESTATE after start. The path is copied.
 * One thread at a time, before rf_pipeline_start.
 */
RF_API int rf_pipeline_add_file(rf_pipeline *p, const char *path);

/* Number of items added so far (before start: from the thread that adds). */
RF_API size_t rf_pipeline_item_count(const rf_pipeline *p);

/*
 * Starts the stage threads. RF_ESYS if a thread or resource cannot be made
 * (rf_pipeline_error says which), RF_ENOMEM, RF_ECONFIG if a resumed state
 * does not match the inputs, shard_index = auto finds no rank, limits.memory_mb
 * cannot hold the pools, or there are more than 2^32 inputs,
 * RF_ECANCELED after rf_pipeline_cancel, RF_ESTATE if already called: a
 * failed start is final (close the pipeline). Call once, from one thread.
 */
RF_API int rf_pipeline_start(rf_pipeline *p);

/*
 * Pull API. Waits for the next batch and hands it to the caller, who must give
 * it back with rf_batch_release (batches come from a fixed pool: holding them
 * stalls the pipeline). Returns 0, RF_EOF after the last batch, RF_ECANCELED,
 * RF_EITEM (on_error = fail: after the batch carrying the first failure's
 * record; see rf_pipeline_error), the code of whatever
 * else stopped the run (RF_ESYS, RF_ENOMEM, RF_EUSER from a push thread; see
 * rf_pipeline_error), RF_ESTATE before rf_pipeline_start, RF_EINVAL for NULL.
 * Thread-safe: several threads may call it.
 */
RF_API int rf_pipeline_next(rf_pipeline *p, rf_batch **out);

/*
 * As rf_pipeline_next, waiting at most timeout_ms milliseconds (0: only look):
 * RF_ETIMEDOUT when no batch became ready in that time (nothing is consumed;
 * call again). For callers that must stay responsive while they wait, such as
 * a language binding that checks for signals. RF_EINVAL if timeout_ms < 0.
 */
RF_API int rf_pipeline_next_timeout(rf_pipeline *p, rf_batch **out, int timeout_ms);

/*
 * Push API. Calls fn(batch, user) for every batch on cfg.infer.threads
 * threads (the calling thread is one of them; fewer if the system refuses a
 * thread: the infer stage's threads in rf_stats say how many ran) and returns when the data ends:
 * 0, RF_EUSER if fn returned non-zero (the run stops), or as rf_pipeline_next.
 * The batch is released after fn returns; fn must not release it or keep
 * pointers into it. fn runs on several threads at once when infer.threads > 1.
 * One rf_pipeline_run per pipeline, not mixed with rf_pipeline_next.
 */
typedef int (*rf_infer_fn)(const rf_batch *batch, void *user);
RF_API int rf_pipeline_run(rf_pipeline *p, rf_infer_fn fn, void *user);

/*
 * Stops the run from any thread: waiters wake with RF_ECANCELED, stage threads
 * exit. Only sets a flag and signals condition variables; calling it twice is
 * harmless. It takes locks, so it is not async-signal-safe: from a signal
 * handler, wake a thread that calls it (demos/ringfeed.c uses sigtimedwait).
 */
RF_API void rf_pipeline_cancel(rf_pipeline *p);

/*
 * Checkpoint and resume (batch.ordered only). rf_pipeline_save_state writes a
 * one-line text state into buf: the stream position after the last batch
 * handed out by rf_pipeline_next, plus what the position depends on (the
 * inputs' count and a hash of their paths in order, shuffle, seed, shard). A
 * new pipeline with the same inputs and source keys
 * given that text by rf_pipeline_resume (before rf_pipeline_start) continues
 * exactly there: nothing delivered twice, nothing skipped. After RF_EITEM
 * (on_error = fail) the position is the failed item's, so a resume tries it again.
 * save: RF_ESTATE before start or when unordered, RF_EINVAL if buf is too
 * small (256 bytes always suffice). resume: RF_EINVAL for text that is not a
 * state (trailing text included), RF_ESTATE after start; a state that does not match the inputs or
 * config makes rf_pipeline_start fail with RF_ECONFIG. save: any thread (it
 * reflects the batches handed out when it runs); resume: as rf_pipeline_add.
 */
RF_API int rf_pipeline_save_state(rf_pipeline *p, char *buf, size_t len);
RF_API int rf_pipeline_resume(rf_pipeline *p, const char *state);

/*
 * Human message for the last failure (empty string if none), owned by p and
 * valid until rf_pipeline_close. Read it after a call returned an error: once
 * running, it is written at most once (the failure that stopped the run).
 */
RF_API const char *rf_pipeline_error(const rf_pipeline *p);

/*
 * Stops the threads if running (as rf_pipeline_cancel), waits for them and
 * frees everything, batches included: give every batch back first, and call it
 * when no other call on p is in progress. Accepts NULL.
 */
RF_API void rf_pipeline_close(rf_pipeline *p);

/* ---- batches ---------------------------------------------------------------- */

/*
 * Batches: a batch from rf_pipeline_next belongs to the caller until
 * rf_batch_release; the functions below only read it and may be called from
 * any thread that holds it. Everything they return is owned by the batch and
 * valid until it is released (paths: until rf_pipeline_close).
 */

/* One input that could not be turned into pixels. Owned by its batch. */
typedef struct rf_item_error {
	uint64_t index;    /* position in the input order */
	const char *path;  /* owned by the pipeline */
	int code;          /* RF_EIO, RF_EFORMAT, RF_EDECODE, RF_ETOOBIG; RF_ENOMEM when its buffers could not be
	                    * had, RF_ECANCELED when a cancel found it waiting for memory */
	const char *reason;
	uint32_t epoch;
} rf_item_error;

/* Number of images in the batch (may be 0 for a batch carrying only errors). */
RF_API size_t rf_batch_count(const rf_batch *b);
/* Contiguous tensor: count slots of rf_batch_slot_bytes each, laid out as
 * cfg.output.layout (NHWC u8 or NCHW float32), owned by the batch. */
RF_API const void *rf_batch_data(const rf_batch *b);
RF_API size_t rf_batch_slot_bytes(const rf_batch *b);
/* Input index and path of slot i (i < count). */
RF_API uint64_t rf_batch_index(const rf_batch *b, size_t i);
RF_API const char *rf_batch_path(const rf_batch *b, size_t i);
/* Items that failed since the previous batch, in order when batch.ordered. */
RF_API size_t rf_batch_error_count(const rf_batch *b);
RF_API const rf_item_error *rf_batch_error(const rf_batch *b, size_t i);
/* Epoch of the batch's images (batches never span epochs when batch.ordered). */
RF_API uint32_t rf_batch_epoch(const rf_batch *b);
/* Sequence number of the batch: 0, 1, 2, ... in the order batches are handed out, with no gaps. */
RF_API uint64_t rf_batch_sequence(const rf_batch *b);
/* Gives a batch from rf_pipeline_next back to the pipeline, exactly once. Accepts NULL. */
RF_API void rf_batch_release(rf_batch *b);

/* ---- statistics -------------------------------------------------------------- */

enum { RF_STAGE_LOADER, RF_STAGE_DECODER, RF_STAGE_INFER, RF_STAGE_COUNT };
enum { RF_QUEUE_FREE_ITEMS, RF_QUEUE_DECODE, RF_QUEUE_READY, RF_QUEUE_COUNT };

typedef struct rf_stage_stats {
	const char *name;
	int threads;
	uint64_t items;
	double busy_seconds;     /* working (for loaders: includes waiting on storage) */
	double starved_seconds;  /* waiting for input */
	double blocked_seconds;  /* waiting for room downstream */
	double cpu_seconds;      /* on a CPU (loader and decoder threads; 0 for infer): busy but off
				    the CPU means waiting for a core */
} rf_stage_stats;

typedef struct rf_queue_stats {
	const char *name;
	size_t capacity;
	size_t depth;
	size_t peak_depth;
} rf_queue_stats;

typedef struct rf_stats {
	uint64_t total;    /* items to deliver: this shard's share of the inputs x epochs, after a resume's position */
	uint64_t items;    /* items finished: ok + failed + dropped */
	/* Delivered: handed to the consumer (rf_pipeline_next, or the callback of rf_pipeline_run). */
	uint64_t ok;       /* images delivered in batches */
	uint64_t failed;   /* error records delivered */
	uint64_t dropped;  /* decoded but left out by batch.drop_last */
	uint64_t batches;  /* batches delivered */
	uint64_t bytes_read;
	double wall_seconds;      /* since rf_pipeline_start (to the end, once ended) */
	double items_per_second;  /* items / wall_seconds */
	double mb_per_second;     /* bytes_read / wall_seconds / 1e6 */
	double first_batch_seconds;  /* start to first batch ready; < 0 if none yet */
	double starved_fraction;  /* share of the inference stage's time spent waiting for a batch */
	const char *loader_backend;  /* "io_uring", "pread", or "pread (io_uring unavailable: ...)" */
	rf_stage_stats stages[RF_STAGE_COUNT];
	rf_queue_stats queues[RF_QUEUE_COUNT];
	size_t batch_pool;  /* batches in the fixed pool; a consumer holding all of them stalls the run */
	/* What runs now: the autotuner's choice for keys set to auto, the config's otherwise. */
	struct {
		bool adaptive;        /* some key is auto and the autotuner runs */
		int decoder_threads;  /* decoder threads working (with auto, the rest are parked) */
		int loader_threads;   /* loader threads working */
		int io_depth;         /* io_uring: files in flight per loader thread, at most; 0 for pread */
		uint64_t changes;     /* adjustments the autotuner made */
	} tuned;
} rf_stats;

/* Snapshot of the counters into *out; any time after create, from any thread.
 * Strings are owned by the pipeline (valid until rf_pipeline_close). */
RF_API int rf_pipeline_stats(rf_pipeline *p, rf_stats *out);

/*
 * Names the stage that limits the run in s and writes one line of advice
 * (what would help, with the shares it is based on) into advice (may be
 * NULL). Returns RF_STAGE_LOADER, RF_STAGE_DECODER or RF_STAGE_INFER, or -1
 * when s has too little to tell (no items yet). Pure: any thread. The rules,
 * in order:
 * - the inference stage waits for batches under 5% of its time: it is the
 *   bottleneck, and more loading would not help;
 * - decoders busy 80% of their time or more: if they were on a CPU for
 *   less than three quarters of that, they wait for cores (oversubscribed);
 *   otherwise add decoder threads (CPUs permitting) or shrink the output;
 * - decoders starved 20% or more while the loader waits for room half its
 *   time or more (file-buffer memory under limits.memory_mb, or free items):
 *   raise limits.memory_mb or pipeline.queue_depth;
 * - decoders starved 20% or more: the loader cannot keep up; raise
 *   loader.io_depth (io_uring) or loader.threads (pread);
 * - otherwise the decoders, neither saturated nor starved, share CPUs with
 *   other work: the machine is oversubscribed.
 */
RF_API int rf_stats_bottleneck(const rf_stats *s, char *advice, size_t len);

#ifdef __cplusplus
}
#endif
#endif
