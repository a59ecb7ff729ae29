/*
 * Bounded blocking queue of pointers: a ring buffer under one mutex with two
 * condition variables (not_empty, not_full). A full queue blocks producers
 * (back-pressure); an empty one blocks consumers. Producers blocked on a
 * full queue are woken together once it is half empty (wake_producers_at),
 * not at every pop, so a fast producer wakes once per half queue.
 *
 * Closing: each producer calls rf__queue_producer_done when it finishes; the
 * queue closes when the last one does (or at once on rf__queue_close). After
 * close, pushes fail with RF_ECLOSED and pops drain what is left, then return
 * RF_EOF. rf__queue_cancel also discards the remaining items' delivery: pops
 * return RF_ECANCELED at once.
 *
 * Time spent blocked is recorded per side: producers blocked on a full queue
 * mean downstream is the bottleneck, consumers blocked on an empty one are
 * starving.
 */
#ifndef RF_LIB_QUEUE_H
#define RF_LIB_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rf__queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	void **slots;
	size_t capacity;
	size_t head;  /* next to pop */
	size_t count;
	size_t peak;
	size_t wake_producers_at; /* blocked producers wake when count falls to this */
	int push_waiters;         /* producers inside push (waiting, when a pop sees it) */
	int producers;  /* open producers; the queue closes when it reaches 0 */
	bool closed;
	bool canceled;
	uint64_t push_wait_ns;
	uint64_t pop_wait_ns;
} rf__queue;

/* capacity >= 1; producers >= 1. RF_ENOMEM / RF_ESYS. */
int rf__queue_init(rf__queue *q, size_t capacity, int producers);
void rf__queue_destroy(rf__queue *q);

/* Blocks while full. 0, RF_ECLOSED (closed or canceled). */
int rf__queue_push(rf__queue *q, void *item);
/* As push, giving up after timeout_ns: RF_ETIMEDOUT. */
int rf__queue_push_timed(rf__queue *q, void *item, uint64_t timeout_ns);
/* Never blocks: RF_ETIMEDOUT when full. */
int rf__queue_try_push(rf__queue *q, void *item);

/* Blocks while empty and open. 0, RF_EOF (closed and drained), RF_ECANCELED. */
int rf__queue_pop(rf__queue *q, void **item);
int rf__queue_pop_timed(rf__queue *q, void **item, uint64_t timeout_ns);
/* Never blocks: RF_ETIMEDOUT when empty but still open. */
int rf__queue_try_pop(rf__queue *q, void **item);

/* One producer is finished; the last one closes the queue. */
void rf__queue_producer_done(rf__queue *q);
/* Closes now: producers fail, consumers drain then see RF_EOF. */
void rf__queue_close(rf__queue *q);
/* Closes and abandons the contents: consumers see RF_ECANCELED. Idempotent. */
void rf__queue_cancel(rf__queue *q);

typedef struct rf__queue_snapshot {
	size_t capacity, depth, peak;
	uint64_t push_wait_ns, pop_wait_ns;
} rf__queue_snapshot;
void rf__queue_snapshot_get(rf__queue *q, rf__queue_snapshot *out);

#endif
