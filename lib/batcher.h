/*
 * The batcher turns decoded items into batches. It is not a thread: decoder
 * threads call rf__batcher_submit, which places items into slots of the batch
 * being filled and converts their pixels straight into the batch tensor.
 *
 * Ordering: items enter a reorder window indexed by sequence number and are
 * given slots strictly in order (batch.ordered) or in arrival order. The
 * window has one entry per preallocated item, so it can never overflow: every
 * live item's sequence number lies within item_count of the next one due.
 * Failed items take no slot; they become error records of the next batch
 * sealed. Batches are shipped to the ready queue in sequence order.
 */
#ifndef RF_LIB_BATCHER_H
#define RF_LIB_BATCHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"
#include "ringfeed/ringfeed.h"

struct rf__item;

typedef struct rf__error_record {
	rf_item_error pub; /* pub.reason points at reason once shipped */
	char reason[200];
} rf__error_record;

typedef struct rf__error_list {
	rf__error_record *records;
	size_t count, cap;
} rf__error_list;

struct rf_batch {
	rf_pipeline *owner;
	uint64_t sequence;
	uint8_t *data; /* capacity slots of slot_bytes */
	size_t slot_bytes, capacity;
	size_t count;  /* slots given out */
	size_t filled; /* slots whose pixels are written */
	bool sealed;   /* no more slots will be given out */
	bool drop;     /* batch.drop_last: a short batch whose images are dropped when it ships */
	size_t dropped; /* images so dropped, counted when the batch (with error records) is handed out */
	uint32_t epoch;
	uint64_t end_position; /* ordered: stream positions below it are in this batch or earlier ones */
	uint64_t handed_ns; /* when a consumer got it, for busy time */
	uint64_t *indices;
	rf__error_list errors;
};

typedef struct rf__batcher {
	pthread_mutex_t lock;
	pthread_cond_t batch_free;
	bool ordered, drop_last, canceled;
	bool fail_fast;       /* pipeline.on_error = fail */
	bool failure_taken;   /* fail_fast: the first failure is recorded; no later item gets a slot */
	bool failure_shipped; /* fail_fast: the batch with the first failure is out; none ship after it */
	bool failure_handed;  /* fail_fast: and a consumer has it, its position recorded */
	pthread_cond_t failure_out; /* signalled when failure_handed is set */
	rf__error_record failure; /* fail_fast: that failure's record, once shipped */

	rf_batch *batches; /* the pool's storage */
	rf_batch **free;   /* stack of free batches */
	size_t batch_count, free_count;

	rf_batch **open; /* ring of batches being filled or written, oldest first */
	size_t open_head, open_count;

	struct rf__item **window;
	size_t window_cap;
	uint64_t next_due;    /* sequence (or arrival ticket) given a slot next */
	uint64_t next_ticket; /* arrival counter, unordered mode */

	rf__error_list pending; /* failures not yet attached to a batch */
	rf__queue ready;
	/*
	 * Counters, under lock: batches shipped to the ready queue (their
	 * numbers), and what the consumer was handed (rf__batcher_hand_out):
	 * batches, images, error records, and images dropped by drop_last (a
	 * dropped batch with no records to hand out counts when it would ship).
	 */
	uint64_t shipped, dropped, handed, ok, failed;
} rf__batcher;

/*
 * Batches in the pool for cfg with decoder_threads decoders: one per ready
 * slot the consumer may prefetch, one per inference thread holding one, one
 * per decoder filling one, and one more. Pool sizing and the
 * limits.memory_mb checks use this one count.
 */
size_t rf__batch_pool_count(const rf_config *cfg, int decoder_threads);

/* batch_count batches of cfg's shape; window_cap = number of items. */
int rf__batcher_init(rf__batcher *b, rf_pipeline *owner, const rf_config *cfg, size_t batch_count,
		     size_t window_cap);
void rf__batcher_destroy(rf__batcher *b);

/*
 * Takes a decoded or failed item. Time spent waiting for a free batch counts
 * as the decoder stage's blocked time. Items given back to the pool go to
 * p->free_items.
 */
void rf__batcher_submit(rf_pipeline *p, struct rf__item *item);
/* All items submitted: seals and ships the last batch, closes the ready queue. */
void rf__batcher_finish(rf_pipeline *p);
/* Wakes waiters; batches stop moving. */
void rf__batcher_cancel(rf__batcher *b);
/* A consumer gives a batch back. */
void rf__batcher_release(rf__batcher *b, rf_batch *batch);
/* batch, taken from the ready queue, goes to the consumer: counted as delivered. */
void rf__batcher_hand_out(rf__batcher *b, const rf_batch *batch);
/*
 * on_error = fail: copies the first failure's record to *out and returns true
 * once the batch carrying it has shipped (the run ends with it). For a caller
 * that found the ready queue at its end: waits until the thread that took
 * that batch has handed it out.
 */
bool rf__batcher_failure(rf__batcher *b, rf__error_record *out);

#endif
