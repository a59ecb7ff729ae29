#include "batcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pipeline.h"

/* Items given slots per trip through the lock; their pixels are written after unlocking. */
#define WORK_MAX 32
/*
 * Failures held before they are shipped, so that an all-failing input stays
 * bounded: past PENDING_ERRORS_MAX they go out in a batch of their own when
 * no batch has images waiting. A batch with images is not cut short for them
 * (every batch but an epoch's last is full) unless PENDING_ERRORS_HARD
 * failures pile up since the last seal (about 4 MB of records; a run of them,
 * or with batch.size over it, failures spread among the images); then it
 * ships short, and under drop_last its images are dropped (counted).
 */
#define PENDING_ERRORS_MAX 1024
#define PENDING_ERRORS_HARD 16384

struct work {
	rf__item *item;
	rf_batch *batch;
	size_t slot;
};

size_t rf__batch_pool_count(const rf_config *cfg, int decoder_threads)
{
	return (size_t)cfg->pipeline.prefetch_batches + (size_t)cfg->infer.threads + (size_t)decoder_threads + 1;
}

int rf__batcher_init(rf__batcher *b, rf_pipeline *owner, const rf_config *cfg, size_t batch_count,
		     size_t window_cap)
{
	memset(b, 0, sizeof(*b));
	b->ordered = cfg->batch.ordered;
	b->drop_last = cfg->batch.drop_last;
	b->fail_fast = cfg->pipeline.on_error == RF_ON_ERROR_FAIL;
	b->batch_count = batch_count;
	b->window_cap = window_cap;
	size_t slot_bytes = rf__slot_bytes(cfg);
	size_t capacity = (size_t)cfg->batch.size;
	b->batches = calloc(batch_count, sizeof(*b->batches));
	b->free = calloc(batch_count, sizeof(*b->free));
	b->open = calloc(batch_count, sizeof(*b->open));
	b->window = calloc(window_cap, sizeof(*b->window));
	if (!b->batches || !b->free || !b->open || !b->window)
		return RF_ENOMEM;
	for (size_t i = 0; i < batch_count; i++) {
		rf_batch *batch = &b->batches[i];
		batch->owner = owner;
		batch->slot_bytes = slot_bytes;
		batch->capacity = capacity;
		/* 64-byte alignment keeps SIMD consumers of the tensor happy. */
		batch->data = aligned_alloc(64, (slot_bytes * capacity + 63) & ~(size_t)63);
		batch->indices = calloc(capacity, sizeof(*batch->indices));
		if (!batch->data || !batch->indices)
			return RF_ENOMEM;
		b->free[b->free_count++] = batch;
	}
	int rc = rf__cond_init_monotonic(&b->batch_free);
	if (rc != 0)
		return RF_ESYS;
	if (pthread_cond_init(&b->failure_out, NULL) != 0) {
		pthread_cond_destroy(&b->batch_free);
		return RF_ESYS;
	}
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		pthread_cond_destroy(&b->failure_out);
		pthread_cond_destroy(&b->batch_free);
		return RF_ESYS;
	}
	rc = rf__queue_init(&b->ready, batch_count, 1);
	if (rc != 0) {
		pthread_mutex_destroy(&b->lock);
		pthread_cond_destroy(&b->failure_out);
		pthread_cond_destroy(&b->batch_free);
		return rc;
	}
	return 0;
}

void rf__batcher_destroy(rf__batcher *b)
{
	if (b->ready.slots) {
		rf__queue_destroy(&b->ready);
		pthread_mutex_destroy(&b->lock);
		pthread_cond_destroy(&b->failure_out);
		pthread_cond_destroy(&b->batch_free);
	}
	for (size_t i = 0; b->batches && i < b->batch_count; i++) {
		free(b->batches[i].data);
		free(b->batches[i].indices);
		free(b->batches[i].errors.records);
	}
	free(b->batches);
	free(b->free);
	free(b->open);
	free(b->window);
	free(b->pending.records);
	memset(b, 0, sizeof(*b));
}

static int record_error(rf__batcher *b, const rf_pipeline *p, const rf__item *item)
{
	rf__error_list *l = &b->pending;
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		rf__error_record *grown = realloc(l->records, cap * sizeof(*grown));
		if (!grown)
			return RF_ENOMEM;
		l->records = grown;
		l->cap = cap;
	}
	rf__error_record *r = &l->records[l->count++];
	r->pub = (rf_item_error){
		.index = item->index, .path = p->source.paths[item->index], .code = item->status, .epoch = item->epoch};
	snprintf(r->reason, sizeof(r->reason), "%s", item->reason);
	return 0;
}

static rf_batch *open_tail(rf__batcher *b)
{
	if (b->open_count == 0)
		return NULL;
	return b->open[(b->open_head + b->open_count - 1) % b->batch_count];
}

/* The batch taking slots now, opening one from the pool if needed; NULL if the pool is empty. */
static rf_batch *filling_batch(rf__batcher *b)
{
	rf_batch *tail = open_tail(b);
	if (tail && !tail->sealed)
		return tail;
	if (b->free_count == 0)
		return NULL;
	rf_batch *batch = b->free[--b->free_count];
	batch->count = batch->filled = 0;
	batch->sealed = batch->drop = false;
	batch->errors.count = 0;
	b->open[(b->open_head + b->open_count++) % b->batch_count] = batch;
	return batch;
}

/* Ships finished batches from the head of the open ring, in sequence order. */
static void ship_ready(rf_pipeline *p)
{
	rf__batcher *b = &p->batcher;
	/*
	 * on_error = fail: nothing after the batch with the first failure; the
	 * batches filled meanwhile stay unshipped, so the pool runs dry and the
	 * stages stop until the consumer takes that batch and the run ends.
	 */
	while (b->open_count > 0 && !b->failure_shipped) {
		rf_batch *head = b->open[b->open_head];
		if (!head->sealed || head->filled != head->count)
			break;
		b->open_head = (b->open_head + 1) % b->batch_count;
		b->open_count--;
		head->dropped = 0;
		if (head->drop) { /* every slot is written now: safe to empty it */
			head->dropped = head->count;
			head->count = head->filled = 0;
		}
		for (size_t i = 0; i < head->errors.count; i++)
			head->errors.records[i].pub.reason = head->errors.records[i].reason;
		/* Numbered as shipped (before the push: a consumer may read it at once), so no gaps. */
		head->sequence = b->shipped;
		if ((head->count == 0 && head->errors.count == 0) || rf__queue_try_push(&b->ready, head) != 0) {
			b->dropped += head->dropped; /* nothing to hand out: dropped now */
			b->free[b->free_count++] = head;
			pthread_cond_signal(&b->batch_free);
			continue;
		}
		b->shipped++;
		if (b->fail_fast && head->errors.count > 0) {
			b->failure = head->errors.records[0];
			b->failure.pub.reason = b->failure.reason;
			b->failure_shipped = true;
		}
		uint64_t zero = 0;
		atomic_compare_exchange_strong(&p->first_batch_ns, &zero, rf__now_ns());
	}
}

/*
 * Waits (lock released meanwhile) until filling_batch can succeed; NULL on
 * cancel. Decoder threads call it: the wait is theirs, blocked.
 */
static rf_batch *acquire_filling(rf_pipeline *p)
{
	rf__batcher *b = &p->batcher;
	rf_batch *batch;
	while (!(batch = filling_batch(b)) && !b->canceled) {
		/* Sealed batches nobody else will ship (errors only) must reach the consumer to come back. */
		ship_ready(p);
		if ((batch = filling_batch(b)))
			break;
		uint64_t t = rf__wait_begin(&p->stage[RF_STAGE_DECODER], RF__BLOCKED);
		pthread_cond_wait(&b->batch_free, &b->lock);
		rf__wait_end(&p->stage[RF_STAGE_DECODER], RF__BLOCKED, t);
	}
	return b->canceled ? NULL : batch;
}

/*
 * No more slots: the batch takes the failures recorded so far. In ordered
 * mode every position before next_due is now in this batch or an earlier one,
 * which is what makes it a resume point.
 */
static void seal(rf__batcher *b, rf_batch *batch)
{
	batch->end_position = b->next_due;
	rf__error_list swap = batch->errors;
	batch->errors = b->pending;
	b->pending = swap;
	b->pending.count = 0;
	batch->sealed = true;
	if (batch->count == 0 && batch->errors.count > 0)
		batch->epoch = batch->errors.records[0].pub.epoch; /* not the epoch of the batch's last use */
}

/* Seals a batch that is not full: under drop_last its images go when it ships. */
static void seal_short(rf__batcher *b, rf_batch *batch)
{
	batch->drop = b->drop_last && batch->count < batch->capacity;
	seal(b, batch);
}

/*
 * on_error = fail: the batch ends with the first failure, whose position
 * (next_due has not moved past it since) is where a resume starts, so that
 * the failed item is tried again.
 */
static void seal_failure(rf__batcher *b, rf_batch *batch)
{
	seal(b, batch);
	batch->end_position = b->next_due - 1;
}

/*
 * on_error = fail, the failure recorded with no batch free: waits (blocked,
 * holding no slots) until one comes back and seals it with the record alone.
 */
static void place_failure(rf_pipeline *p)
{
	rf__batcher *b = &p->batcher;
	while (b->pending.count > 0 && !b->canceled) {
		rf_batch *batch = filling_batch(b);
		if (!batch) {
			ship_ready(p); /* may give an empty batch back */
			batch = filling_batch(b);
		}
		if (batch) {
			seal_failure(b, batch);
			ship_ready(p);
			return;
		}
		uint64_t t = rf__wait_begin(&p->stage[RF_STAGE_DECODER], RF__BLOCKED);
		pthread_cond_wait(&b->batch_free, &b->lock);
		rf__wait_end(&p->stage[RF_STAGE_DECODER], RF__BLOCKED, t);
	}
}

/*
 * Records a failed item whose turn has come. Running out of memory for the
 * record stops the batcher and copies the message out for the caller, which
 * reports it after unlocking (reporting cancels the pipeline, which takes this
 * lock).
 */
static void take_failure(rf_pipeline *p, rf__item *item, char *fatal, size_t fatal_len)
{
	rf__batcher *b = &p->batcher;
	rf_batch *tail = open_tail(b);
	/*
	 * on_error = fail: an epoch that ends before the failure ends as any
	 * epoch does (its short last batch goes, dropped under drop_last), so the
	 * failure's batch does not span two epochs. Nothing is pending to go with it.
	 */
	if (b->fail_fast && b->ordered && tail && !tail->sealed && tail->count > 0 && tail->epoch != item->epoch) {
		seal_short(b, tail);
		tail->end_position = b->next_due - 1; /* up to the failed item, not past it */
	}
	if (record_error(b, p, item) != 0) {
		snprintf(fatal, fatal_len, "out of memory recording a failed item");
		b->canceled = true;
		pthread_cond_broadcast(&b->batch_free);
		return;
	}
	/*
	 * on_error = fail: the failure goes out at once, in a batch that ends with
	 * it (the images before it, then its record); the run stops when the
	 * consumer takes it (next_batch). No later item gets a slot (assign_slots);
	 * with no batch free now, the record waits for one (place_failure).
	 */
	if (b->fail_fast) {
		b->failure_taken = true;
		rf_batch *batch = filling_batch(b);
		if (batch)
			seal_failure(b, batch);
		return;
	}
	/* Not waiting here: the caller may hold slots (see assign_slots); a later failure retries. */
	rf_batch *batch = b->pending.count >= PENDING_ERRORS_MAX ? filling_batch(b) : NULL;
	if (batch && batch->count == 0)
		seal(b, batch); /* a batch of errors only */
	else if (batch && b->pending.count >= PENDING_ERRORS_HARD)
		seal_short(b, batch);
}

/* Gives slots to the items now due, in order, until a gap or WORK_MAX. */
static size_t assign_slots(rf_pipeline *p, struct work *work, char *fatal, size_t fatal_len)
{
	rf__batcher *b = &p->batcher;
	size_t n = 0;
	while (n < WORK_MAX && !b->canceled) {
		if (b->failure_taken) {
			/*
			 * Later items stay in the window, so the stages stall until
			 * the run stops. Never wait while holding slots (see below).
			 */
			if (n == 0)
				place_failure(p);
			break;
		}
		rf__item **entry = &b->window[b->next_due % b->window_cap];
		rf__item *item = *entry;
		if (!item)
			break;
		if (item->status != 0) {
			*entry = NULL;
			b->next_due++;
			take_failure(p, item, fatal, fatal_len);
			rf__queue_try_push(&p->free_items, item);
			continue;
		}
		rf_batch *batch = filling_batch(b);
		if (batch && batch->count > 0 && batch->epoch != item->epoch && b->ordered) {
			seal_short(b, batch); /* an epoch ends: its last batch may be short */
			continue;
		}
		if (!batch) {
			/*
			 * Never wait while holding slots: their batches can only
			 * ship (and come back free) once these pixels are written.
			 */
			if (n > 0 || !acquire_filling(p))
				break;
			continue; /* the window may have moved while we waited */
		}
		if (batch->count == 0)
			batch->epoch = item->epoch;
		size_t slot = batch->count++;
		batch->indices[slot] = item->index;
		*entry = NULL;
		b->next_due++;
		if (batch->count == batch->capacity)
			seal(b, batch);
		work[n++] = (struct work){item, batch, slot};
	}
	return n;
}

void rf__batcher_submit(rf_pipeline *p, rf__item *item)
{
	rf__batcher *b = &p->batcher;
	struct work work[WORK_MAX];
	char fatal[RF_REASON_MAX + 300] = "";
	pthread_mutex_lock(&b->lock);
	uint64_t key = b->ordered ? item->seq : b->next_ticket++;
	b->window[key % b->window_cap] = item;
	for (;;) {
		size_t n = assign_slots(p, work, fatal, sizeof(fatal));
		if (n == 0) {
			if (!b->canceled)
				ship_ready(p); /* a batch of errors only may have been sealed */
			break;
		}
		pthread_mutex_unlock(&b->lock);
		for (size_t i = 0; i < n; i++)
			rf__convert(&p->converter, work[i].item->pixels,
				    work[i].batch->data + work[i].slot * work[i].batch->slot_bytes);
		pthread_mutex_lock(&b->lock);
		for (size_t i = 0; i < n; i++) {
			work[i].batch->filled++;
			rf__queue_try_push(&p->free_items, work[i].item);
		}
		ship_ready(p);
	}
	pthread_mutex_unlock(&b->lock);
	if (fatal[0])
		rf__pipeline_fail(p, RF_EITEM, "%s", fatal);
}

void rf__batcher_finish(rf_pipeline *p)
{
	rf__batcher *b = &p->batcher;
	pthread_mutex_lock(&b->lock);
	rf_batch *tail = open_tail(b);
	if (!b->canceled && tail && !tail->sealed)
		seal_short(b, tail);
	if (!b->canceled && b->failure_taken) {
		place_failure(p);
	} else if (!b->canceled && b->pending.count > 0) {
		rf_batch *batch = acquire_filling(p);
		if (batch)
			seal(b, batch);
	}
	if (!b->canceled)
		ship_ready(p);
	pthread_mutex_unlock(&b->lock);
	rf__queue_close(&b->ready);
}

void rf__batcher_cancel(rf__batcher *b)
{
	pthread_mutex_lock(&b->lock);
	b->canceled = true;
	pthread_cond_broadcast(&b->batch_free);
	pthread_mutex_unlock(&b->lock);
	rf__queue_cancel(&b->ready);
}

void rf__batcher_release(rf__batcher *b, rf_batch *batch)
{
	pthread_mutex_lock(&b->lock);
	b->free[b->free_count++] = batch;
	pthread_cond_signal(&b->batch_free);
	pthread_mutex_unlock(&b->lock);
}

void rf__batcher_hand_out(rf__batcher *b, const rf_batch *batch)
{
	pthread_mutex_lock(&b->lock);
	b->handed++;
	b->ok += batch->count;
	b->failed += batch->errors.count;
	b->dropped += batch->dropped;
	if (b->fail_fast && batch->errors.count > 0) {
		b->failure_handed = true;
		pthread_cond_broadcast(&b->failure_out);
	}
	pthread_mutex_unlock(&b->lock);
}

bool rf__batcher_failure(rf__batcher *b, rf__error_record *out)
{
	pthread_mutex_lock(&b->lock);
	/* Shipped and out of the queue: the thread that took it is about to hand it out. */
	while (b->failure_shipped && !b->failure_handed)
		pthread_cond_wait(&b->failure_out, &b->lock);
	bool shipped = b->failure_shipped;
	if (shipped) {
		*out = b->failure;
		out->pub.reason = out->reason;
	}
	pthread_mutex_unlock(&b->lock);
	return shipped;
}

size_t rf_batch_count(const rf_batch *b)
{
	return b->count;
}

const void *rf_batch_data(const rf_batch *b)
{
	return b->data;
}

size_t rf_batch_slot_bytes(const rf_batch *b)
{
	return b->slot_bytes;
}

uint64_t rf_batch_index(const rf_batch *b, size_t i)
{
	return i < b->count ? b->indices[i] : UINT64_MAX;
}

const char *rf_batch_path(const rf_batch *b, size_t i)
{
	return i < b->count ? b->owner->source.paths[b->indices[i]] : NULL;
}

size_t rf_batch_error_count(const rf_batch *b)
{
	return b->errors.count;
}

const rf_item_error *rf_batch_error(const rf_batch *b, size_t i)
{
	return i < b->errors.count ? &b->errors.records[i].pub : NULL;
}

uint32_t rf_batch_epoch(const rf_batch *b)
{
	return b->epoch;
}

uint64_t rf_batch_sequence(const rf_batch *b)
{
	return b->sequence;
}
