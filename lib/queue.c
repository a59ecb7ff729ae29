#include "queue.h"

#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "ringfeed/ringfeed.h"

/* How long a blocking call may wait: forever, not at all, or until a deadline. */
enum wait_kind { WAIT_FOREVER, WAIT_NEVER, WAIT_TIMED };

int rf__queue_init(rf__queue *q, size_t capacity, int producers)
{
	if (capacity == 0 || producers < 1)
		return RF_EINVAL;
	*q = (rf__queue){.capacity = capacity, .producers = producers};
	q->wake_producers_at = capacity - (capacity / 2 > 1 ? capacity / 2 : 1);
	q->slots = calloc(capacity, sizeof(*q->slots));
	if (!q->slots)
		return RF_ENOMEM;
	int rc = pthread_mutex_init(&q->lock, NULL);
	if (rc == 0 && (rc = rf__cond_init_monotonic(&q->not_empty)) != 0)
		pthread_mutex_destroy(&q->lock);
	if (rc == 0 && (rc = rf__cond_init_monotonic(&q->not_full)) != 0) {
		pthread_cond_destroy(&q->not_empty);
		pthread_mutex_destroy(&q->lock);
	}
	if (rc != 0) {
		free(q->slots);
		q->slots = NULL;
		return RF_ESYS;
	}
	return 0;
}

void rf__queue_destroy(rf__queue *q)
{
	if (!q->slots)
		return;
	pthread_cond_destroy(&q->not_full);
	pthread_cond_destroy(&q->not_empty);
	pthread_mutex_destroy(&q->lock);
	free(q->slots);
	q->slots = NULL;
}

static bool push_blocked(const rf__queue *q)
{
	return !q->closed && q->count == q->capacity;
}

static bool pop_blocked(const rf__queue *q)
{
	return !q->closed && q->count == 0;
}

/*
 * Waits on cond while blocked(q) holds. Returns 0 once it no longer holds,
 * RF_ETIMEDOUT if the wait gave up first. Adds the time spent to *wait_ns.
 */
static int wait_while(rf__queue *q, pthread_cond_t *cond, bool (*blocked)(const rf__queue *),
		      enum wait_kind kind, uint64_t timeout_ns, uint64_t *wait_ns)
{
	if (!blocked(q))
		return 0;
	if (kind == WAIT_NEVER)
		return RF_ETIMEDOUT;
	struct timespec deadline = rf__deadline(kind == WAIT_TIMED ? timeout_ns : 0);
	uint64_t start = rf__now_ns();
	int rc = 0;
	while (blocked(q)) {
		if (kind == WAIT_FOREVER) {
			pthread_cond_wait(cond, &q->lock);
		} else if (pthread_cond_timedwait(cond, &q->lock, &deadline) == ETIMEDOUT) {
			rc = blocked(q) ? RF_ETIMEDOUT : 0;
			break;
		}
	}
	*wait_ns += rf__now_ns() - start;
	return rc;
}

static int push(rf__queue *q, void *item, enum wait_kind kind, uint64_t timeout_ns)
{
	pthread_mutex_lock(&q->lock);
	/* Only a pop can see this, and only while wait_while has the lock released in a wait. */
	q->push_waiters++;
	int rc = wait_while(q, &q->not_full, push_blocked, kind, timeout_ns, &q->push_wait_ns);
	q->push_waiters--;
	if (rc == 0 && q->closed)
		rc = RF_ECLOSED;
	if (rc == 0) {
		q->slots[(q->head + q->count) % q->capacity] = item;
		if (++q->count > q->peak)
			q->peak = q->count;
		pthread_cond_signal(&q->not_empty);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int pop(rf__queue *q, void **item, enum wait_kind kind, uint64_t timeout_ns)
{
	pthread_mutex_lock(&q->lock);
	int rc = wait_while(q, &q->not_empty, pop_blocked, kind, timeout_ns, &q->pop_wait_ns);
	if (rc == 0 && q->canceled) {
		rc = RF_ECANCELED;
	} else if (rc == 0 && q->count == 0) {
		rc = RF_EOF;
	} else if (rc == 0) {
		*item = q->slots[q->head];
		q->head = (q->head + 1) % q->capacity;
		q->count--;
		/*
		 * Blocked producers wake once half the queue is free, as many as
		 * there are free slots, not one per pop: a loader behind busy
		 * decoders would otherwise be woken (and a decoder preempted) for
		 * every item. No deadlock: a consumer that can pop keeps popping down
		 * to the mark, and an item pushed sooner could only be taken by such
		 * a consumer. Below the mark (producers woken but not yet run), one
		 * more per pop.
		 */
		if (q->push_waiters > 0 && q->count <= q->wake_producers_at) {
			size_t wake = q->count == q->wake_producers_at ? q->capacity - q->count : 1;
			for (size_t i = 0; i < wake && i < (size_t)q->push_waiters; i++)
				pthread_cond_signal(&q->not_full);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int rf__queue_push(rf__queue *q, void *item)
{
	return push(q, item, WAIT_FOREVER, 0);
}

int rf__queue_push_timed(rf__queue *q, void *item, uint64_t timeout_ns)
{
	return push(q, item, WAIT_TIMED, timeout_ns);
}

int rf__queue_try_push(rf__queue *q, void *item)
{
	return push(q, item, WAIT_NEVER, 0);
}

int rf__queue_pop(rf__queue *q, void **item)
{
	return pop(q, item, WAIT_FOREVER, 0);
}

int rf__queue_pop_timed(rf__queue *q, void **item, uint64_t timeout_ns)
{
	return pop(q, item, WAIT_TIMED, timeout_ns);
}

int rf__queue_try_pop(rf__queue *q, void **item)
{
	return pop(q, item, WAIT_NEVER, 0);
}

static void close_locked(rf__queue *q)
{
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
}

void rf__queue_producer_done(rf__queue *q)
{
	pthread_mutex_lock(&q->lock);
	if (q->producers > 0 && --q->producers == 0)
		close_locked(q);
	pthread_mutex_unlock(&q->lock);
}

void rf__queue_close(rf__queue *q)
{
	pthread_mutex_lock(&q->lock);
	close_locked(q);
	pthread_mutex_unlock(&q->lock);
}

void rf__queue_cancel(rf__queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->canceled = true;
	close_locked(q);
	pthread_mutex_unlock(&q->lock);
}

void rf__queue_snapshot_get(rf__queue *q, rf__queue_snapshot *out)
{
	pthread_mutex_lock(&q->lock);
	*out = (rf__queue_snapshot){q->capacity, q->count, q->peak, q->push_wait_ns, q->pop_wait_ns};
	pthread_mutex_unlock(&q->lock);
}
