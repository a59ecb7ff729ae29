/* The bounded blocking queue: order, bounds, timeouts, close/cancel, wait accounting, stress. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "queue.h"
#include "ringfeed/ringfeed.h"

#define MS 1000000ull
#define SLACK_NS (2000 * MS) /* generous upper bound for timed waits on a loaded machine */

static void *item(uintptr_t v)
{
	return (void *)v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* In place: a pthread mutex must not be copied once initialised. */
static void make(rf__queue *q, size_t capacity, int producers)
{
	cr_assert_eq(rf__queue_init(q, capacity, producers), 0);
}

Test(queue, init_rejects_bad_arguments)
{
	rf__queue q;
	cr_assert_eq(rf__queue_init(&q, 0, 1), RF_EINVAL);
	cr_assert_eq(rf__queue_init(&q, 4, 0), RF_EINVAL);
}

Test(queue, fifo_order_across_wraparound)
{
	rf__queue q;
	make(&q, 4, 1);
	uintptr_t next_in = 1, next_out = 1;
	/* Uneven push/pop rounds move head around the ring many times. */
	for (int round = 0; round < 50; round++) {
		int pushes = 1 + round % 4;
		for (int i = 0; i < pushes; i++)
			cr_assert_eq(rf__queue_try_push(&q, item(next_in++)), 0);
		int pops = round % 2 ? pushes : pushes - 1;
		for (int i = 0; i < pops; i++) {
			void *v = NULL;
			cr_assert_eq(rf__queue_try_pop(&q, &v), 0);
			cr_assert_eq((uintptr_t)v, next_out++);
		}
		/* drain the leftover so the next round has room */
		while (next_out < next_in) {
			void *v = NULL;
			cr_assert_eq(rf__queue_pop(&q, &v), 0);
			cr_assert_eq((uintptr_t)v, next_out++);
		}
	}
	rf__queue_destroy(&q);
}

Test(queue, capacity_bound)
{
	rf__queue q;
	make(&q, 3, 1);
	for (uintptr_t i = 1; i <= 3; i++)
		cr_assert_eq(rf__queue_try_push(&q, item(i)), 0);
	cr_assert_eq(rf__queue_try_push(&q, item(4)), RF_ETIMEDOUT);
	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.capacity, 3);
	cr_assert_eq(s.depth, 3);
	cr_assert_eq(s.push_wait_ns, 0, "try_push never waits");

	void *v = NULL;
	cr_assert_eq(rf__queue_try_pop(&q, &v), 0);
	cr_assert_eq((uintptr_t)v, 1);
	cr_assert_eq(rf__queue_try_push(&q, item(4)), 0, "a pop makes room for one more");
	cr_assert_eq(rf__queue_try_push(&q, item(5)), RF_ETIMEDOUT);
	for (uintptr_t want = 2; want <= 4; want++) {
		cr_assert_eq(rf__queue_try_pop(&q, &v), 0);
		cr_assert_eq((uintptr_t)v, want);
	}
	v = item(99);
	cr_assert_eq(rf__queue_try_pop(&q, &v), RF_ETIMEDOUT, "empty and open");
	cr_assert_eq((uintptr_t)v, 99, "a failed pop leaves *item alone");
	rf__queue_destroy(&q);
}

Test(queue, pop_timed_times_out, .timeout = 10)
{
	rf__queue q;
	make(&q, 2, 1);
	const uint64_t timeout = 100 * MS;
	void *v;
	uint64_t t0 = rf__now_ns();
	cr_assert_eq(rf__queue_pop_timed(&q, &v, timeout), RF_ETIMEDOUT);
	uint64_t took = rf__now_ns() - t0;
	cr_assert_geq(took, timeout);
	cr_assert_lt(took, timeout + SLACK_NS);
	rf__queue_destroy(&q);
}

Test(queue, push_timed_times_out, .timeout = 10)
{
	rf__queue q;
	make(&q, 1, 1);
	cr_assert_eq(rf__queue_try_push(&q, item(1)), 0);
	const uint64_t timeout = 100 * MS;
	uint64_t t0 = rf__now_ns();
	cr_assert_eq(rf__queue_push_timed(&q, item(2), timeout), RF_ETIMEDOUT);
	uint64_t took = rf__now_ns() - t0;
	cr_assert_geq(took, timeout);
	cr_assert_lt(took, timeout + SLACK_NS);
	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.depth, 1, "the timed-out item was not stored");
	rf__queue_destroy(&q);
}

Test(queue, timed_calls_succeed_without_waiting_when_possible, .timeout = 10)
{
	rf__queue q;
	make(&q, 1, 1);
	uint64_t t0 = rf__now_ns();
	cr_assert_eq(rf__queue_push_timed(&q, item(7), 5000 * MS), 0);
	void *v = NULL;
	cr_assert_eq(rf__queue_pop_timed(&q, &v, 5000 * MS), 0);
	cr_assert_lt(rf__now_ns() - t0, 2000 * MS);
	cr_assert_eq((uintptr_t)v, 7);
	rf__queue_destroy(&q);
}

Test(queue, close_fails_pushes_and_drains_pops, .timeout = 10)
{
	rf__queue q;
	make(&q, 4, 1);
	cr_assert_eq(rf__queue_push(&q, item(1)), 0);
	cr_assert_eq(rf__queue_push(&q, item(2)), 0);
	rf__queue_close(&q);
	cr_assert_eq(rf__queue_push(&q, item(3)), RF_ECLOSED);
	cr_assert_eq(rf__queue_try_push(&q, item(3)), RF_ECLOSED);
	cr_assert_eq(rf__queue_push_timed(&q, item(3), 10 * MS), RF_ECLOSED);

	void *v = NULL;
	cr_assert_eq(rf__queue_pop(&q, &v), 0);
	cr_assert_eq((uintptr_t)v, 1);
	cr_assert_eq(rf__queue_try_pop(&q, &v), 0);
	cr_assert_eq((uintptr_t)v, 2);
	cr_assert_eq(rf__queue_pop(&q, &v), RF_EOF);
	cr_assert_eq(rf__queue_try_pop(&q, &v), RF_EOF);
	cr_assert_eq(rf__queue_pop_timed(&q, &v, 10 * MS), RF_EOF);
	rf__queue_close(&q); /* closing twice is harmless */
	cr_assert_eq(rf__queue_pop(&q, &v), RF_EOF);
	rf__queue_destroy(&q);
}

Test(queue, closes_when_last_producer_is_done, .timeout = 10)
{
	rf__queue q;
	make(&q, 8, 3);
	void *v;
	cr_assert_eq(rf__queue_push(&q, item(1)), 0);
	rf__queue_producer_done(&q);
	cr_assert_eq(rf__queue_push(&q, item(2)), 0, "two producers still open");
	rf__queue_producer_done(&q);
	cr_assert_eq(rf__queue_push(&q, item(3)), 0, "one producer still open");
	for (uintptr_t want = 1; want <= 3; want++) {
		cr_assert_eq(rf__queue_pop(&q, &v), 0);
		cr_assert_eq((uintptr_t)v, want);
	}
	cr_assert_eq(rf__queue_try_pop(&q, &v), RF_ETIMEDOUT, "still open: empty is not the end");
	rf__queue_producer_done(&q);
	cr_assert_eq(rf__queue_push(&q, item(4)), RF_ECLOSED);
	cr_assert_eq(rf__queue_try_pop(&q, &v), RF_EOF);
	rf__queue_producer_done(&q); /* an extra call does nothing */
	cr_assert_eq(rf__queue_pop(&q, &v), RF_EOF);
	rf__queue_destroy(&q);
}

Test(queue, cancel_abandons_contents, .timeout = 10)
{
	rf__queue q;
	make(&q, 4, 1);
	cr_assert_eq(rf__queue_push(&q, item(1)), 0);
	cr_assert_eq(rf__queue_push(&q, item(2)), 0);
	rf__queue_cancel(&q);
	void *v = item(99);
	cr_assert_eq(rf__queue_pop(&q, &v), RF_ECANCELED);
	cr_assert_eq(rf__queue_try_pop(&q, &v), RF_ECANCELED);
	cr_assert_eq(rf__queue_pop_timed(&q, &v, 10 * MS), RF_ECANCELED);
	cr_assert_eq((uintptr_t)v, 99);
	cr_assert_eq(rf__queue_push(&q, item(3)), RF_ECLOSED);
	rf__queue_cancel(&q); /* idempotent */
	cr_assert_eq(rf__queue_pop(&q, &v), RF_ECANCELED);
	rf__queue_destroy(&q);
}

Test(queue, cancel_after_close_still_cancels, .timeout = 10)
{
	rf__queue q;
	make(&q, 4, 1);
	cr_assert_eq(rf__queue_push(&q, item(1)), 0);
	rf__queue_close(&q);
	rf__queue_cancel(&q);
	void *v;
	cr_assert_eq(rf__queue_pop(&q, &v), RF_ECANCELED);
	rf__queue_destroy(&q);
}

struct waiter {
	rf__queue *q;
	void *value;
	int rc;
};

static void *pop_thread(void *arg)
{
	struct waiter *w = arg;
	w->rc = rf__queue_pop(w->q, &w->value);
	return NULL;
}

static void *push_thread(void *arg)
{
	struct waiter *w = arg;
	w->rc = rf__queue_push(w->q, w->value);
	return NULL;
}

/* Starts fn on w, gives it time to block, then returns the thread. */
static pthread_t start_blocked(void *(*fn)(void *), struct waiter *w)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, fn, w), 0);
	sleep_ms(100);
	return t;
}

Test(queue, close_wakes_blocked_pop, .timeout = 10)
{
	rf__queue q;
	make(&q, 2, 1);
	struct waiter w = {.q = &q, .rc = 1};
	pthread_t t = start_blocked(pop_thread, &w);
	rf__queue_close(&q);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(w.rc, RF_EOF);
	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_gt(s.pop_wait_ns, 0, "the pop really blocked before the close");
	rf__queue_destroy(&q);
}

Test(queue, last_producer_done_wakes_blocked_pop, .timeout = 10)
{
	rf__queue q;
	make(&q, 2, 2);
	struct waiter w = {.q = &q, .rc = 1};
	pthread_t t = start_blocked(pop_thread, &w);
	rf__queue_producer_done(&q);
	sleep_ms(50);
	rf__queue_producer_done(&q);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(w.rc, RF_EOF);
	rf__queue_destroy(&q);
}

Test(queue, cancel_wakes_blocked_pop, .timeout = 10)
{
	rf__queue q;
	make(&q, 2, 1);
	struct waiter w = {.q = &q, .rc = 1};
	pthread_t t = start_blocked(pop_thread, &w);
	rf__queue_cancel(&q);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(w.rc, RF_ECANCELED);
	rf__queue_destroy(&q);
}

Test(queue, close_wakes_blocked_push, .timeout = 10)
{
	rf__queue q;
	make(&q, 1, 1);
	cr_assert_eq(rf__queue_push(&q, item(1)), 0);
	struct waiter w = {.q = &q, .value = item(2), .rc = 1};
	pthread_t t = start_blocked(push_thread, &w);
	rf__queue_close(&q);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(w.rc, RF_ECLOSED);
	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_gt(s.push_wait_ns, 0, "the push really blocked before the close");
	cr_assert_eq(s.depth, 1, "the rejected item was not stored");
	void *v;
	cr_assert_eq(rf__queue_pop(&q, &v), 0);
	cr_assert_eq((uintptr_t)v, 1);
	cr_assert_eq(rf__queue_pop(&q, &v), RF_EOF);
	rf__queue_destroy(&q);
}

Test(queue, push_wakes_blocked_pop_and_pop_wakes_blocked_push, .timeout = 10)
{
	rf__queue q;
	make(&q, 1, 1);
	struct waiter popper = {.q = &q, .rc = 1};
	pthread_t t = start_blocked(pop_thread, &popper);
	cr_assert_eq(rf__queue_push(&q, item(5)), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(popper.rc, 0);
	cr_assert_eq((uintptr_t)popper.value, 5);

	cr_assert_eq(rf__queue_push(&q, item(6)), 0);
	struct waiter pusher = {.q = &q, .value = item(7), .rc = 1};
	t = start_blocked(push_thread, &pusher);
	void *v;
	cr_assert_eq(rf__queue_pop(&q, &v), 0);
	cr_assert_eq((uintptr_t)v, 6);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(pusher.rc, 0);
	cr_assert_eq(rf__queue_pop(&q, &v), 0);
	cr_assert_eq((uintptr_t)v, 7);

	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_gt(s.pop_wait_ns, 0);
	cr_assert_gt(s.push_wait_ns, 0);
	rf__queue_destroy(&q);
}

/* Waits until a producer is inside its wait on the full queue (it holds the lock until then). */
static void wait_for_blocked_push(rf__queue *q)
{
	for (;;) {
		pthread_mutex_lock(&q->lock);
		int waiters = q->push_waiters;
		pthread_mutex_unlock(&q->lock);
		if (waiters > 0)
			return;
		sleep_ms(1);
	}
}

Test(queue, blocked_push_wakes_only_once_half_drained, .timeout = 10)
{
	rf__queue q;
	make(&q, 8, 1);
	for (uintptr_t i = 0; i < 8; i++)
		cr_assert_eq(rf__queue_push(&q, item(i)), 0);
	struct waiter pusher = {.q = &q, .value = item(8), .rc = 1};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, push_thread, &pusher), 0);
	wait_for_blocked_push(&q);

	void *v;
	for (uintptr_t i = 0; i < 3; i++) {
		cr_assert_eq(rf__queue_pop(&q, &v), 0);
		cr_assert_eq((uintptr_t)v, i);
	}
	sleep_ms(100);
	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.depth, 5, "3 pops of 8 leave the producer asleep (depth %zu)", s.depth);

	cr_assert_eq(rf__queue_pop(&q, &v), 0); /* down to 4 of 8: the producer wakes */
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(pusher.rc, 0);
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.depth, 5);
	for (uintptr_t i = 4; i <= 8; i++) {
		cr_assert_eq(rf__queue_pop(&q, &v), 0);
		cr_assert_eq((uintptr_t)v, i, "order kept across the wait");
	}
	rf__queue_destroy(&q);
}

Test(queue, wait_time_recorded_per_side, .timeout = 10)
{
	rf__queue q;
	make(&q, 1, 1);
	const uint64_t timeout = 50 * MS;
	rf__queue_snapshot s;
	void *v;

	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.pop_wait_ns, 0);
	cr_assert_eq(s.push_wait_ns, 0);

	cr_assert_eq(rf__queue_pop_timed(&q, &v, timeout), RF_ETIMEDOUT);
	rf__queue_snapshot_get(&q, &s);
	/* The queue starts its clock a hair after computing the deadline. */
	cr_assert_geq(s.pop_wait_ns, timeout - MS);
	cr_assert_lt(s.pop_wait_ns, timeout + SLACK_NS);
	cr_assert_eq(s.push_wait_ns, 0, "only the consumer side waited");
	uint64_t pop_wait = s.pop_wait_ns;

	cr_assert_eq(rf__queue_push(&q, item(1)), 0);
	cr_assert_eq(rf__queue_push_timed(&q, item(2), timeout), RF_ETIMEDOUT);
	rf__queue_snapshot_get(&q, &s);
	cr_assert_geq(s.push_wait_ns, timeout - MS);
	cr_assert_lt(s.push_wait_ns, timeout + SLACK_NS);
	cr_assert_eq(s.pop_wait_ns, pop_wait, "only the producer side waited");

	/* Waits accumulate. */
	cr_assert_eq(rf__queue_push_timed(&q, item(2), timeout), RF_ETIMEDOUT);
	rf__queue_snapshot_get(&q, &s);
	cr_assert_geq(s.push_wait_ns, 2 * (timeout - MS));
	rf__queue_destroy(&q);
}

Test(queue, peak_depth)
{
	rf__queue q;
	make(&q, 5, 1);
	void *v;
	rf__queue_snapshot s;
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.peak, 0);
	for (uintptr_t i = 1; i <= 3; i++)
		cr_assert_eq(rf__queue_push(&q, item(i)), 0);
	cr_assert_eq(rf__queue_pop(&q, &v), 0);
	cr_assert_eq(rf__queue_pop(&q, &v), 0);
	cr_assert_eq(rf__queue_push(&q, item(4)), 0);
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.depth, 2);
	cr_assert_eq(s.peak, 3);
	cr_assert_eq(s.capacity, 5);
	for (uintptr_t i = 5; i <= 7; i++)
		cr_assert_eq(rf__queue_push(&q, item(i)), 0);
	rf__queue_snapshot_get(&q, &s);
	cr_assert_eq(s.depth, 5);
	cr_assert_eq(s.peak, 5);
	rf__queue_destroy(&q);
}

/* ---- many producers, many consumers ---------------------------------------- */

enum { PRODUCERS = 4, CONSUMERS = 4, PER_PRODUCER = 50000, TOTAL = PRODUCERS * PER_PRODUCER };

struct stress {
	rf__queue q;
	atomic_uchar seen[TOTAL];
	atomic_size_t received, out_of_range;
};

struct stress_worker {
	struct stress *st;
	int index;
	int rc; /* producers: first failing push; consumers: the code that ended the loop */
};

static void *stress_producer(void *arg)
{
	struct stress_worker *w = arg;
	for (uintptr_t i = 0; i < PER_PRODUCER && w->rc == 0; i++) {
		/* Item values start at 1, so NULL never appears as a payload. */
		uintptr_t value = (uintptr_t)w->index * PER_PRODUCER + i + 1;
		w->rc = rf__queue_push(&w->st->q, item(value));
	}
	rf__queue_producer_done(&w->st->q);
	return NULL;
}

static void *stress_consumer(void *arg)
{
	struct stress_worker *w = arg;
	for (;;) {
		void *v;
		int rc = rf__queue_pop(&w->st->q, &v);
		if (rc != 0) {
			w->rc = rc;
			return NULL;
		}
		uintptr_t value = (uintptr_t)v;
		if (value < 1 || value > TOTAL)
			atomic_fetch_add(&w->st->out_of_range, 1);
		else
			atomic_fetch_add(&w->st->seen[value - 1], 1);
		atomic_fetch_add(&w->st->received, 1);
	}
}

Test(queue, stress_every_item_exactly_once, .timeout = 120)
{
	struct stress *st = calloc(1, sizeof(*st));
	cr_assert_not_null(st);
	cr_assert_eq(rf__queue_init(&st->q, 3, PRODUCERS), 0);
	struct stress_worker prod[PRODUCERS], cons[CONSUMERS];
	pthread_t prod_t[PRODUCERS], cons_t[CONSUMERS];
	for (int i = 0; i < CONSUMERS; i++) {
		cons[i] = (struct stress_worker){.st = st, .index = i};
		cr_assert_eq(pthread_create(&cons_t[i], NULL, stress_consumer, &cons[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		prod[i] = (struct stress_worker){.st = st, .index = i};
		cr_assert_eq(pthread_create(&prod_t[i], NULL, stress_producer, &prod[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++)
		cr_assert_eq(pthread_join(prod_t[i], NULL), 0);
	for (int i = 0; i < CONSUMERS; i++)
		cr_assert_eq(pthread_join(cons_t[i], NULL), 0);

	for (int i = 0; i < PRODUCERS; i++)
		cr_assert_eq(prod[i].rc, 0, "producer %d: push failed with %d", i, prod[i].rc);
	for (int i = 0; i < CONSUMERS; i++)
		cr_assert_eq(cons[i].rc, RF_EOF, "consumer %d ended with %d", i, cons[i].rc);
	cr_assert_eq(atomic_load(&st->out_of_range), 0);
	cr_assert_eq(atomic_load(&st->received), TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		cr_assert_eq(atomic_load(&st->seen[i]), 1, "item %zu received %u times", i + 1,
			     (unsigned)atomic_load(&st->seen[i]));

	rf__queue_snapshot s;
	rf__queue_snapshot_get(&st->q, &s);
	cr_assert_eq(s.depth, 0);
	cr_assert_leq(s.peak, 3, "the capacity bound held under contention");
	cr_assert_geq(s.peak, 1);
	rf__queue_destroy(&st->q);
	free(st);
}
