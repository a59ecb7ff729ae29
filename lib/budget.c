/*
 * The byte budget for file buffers under limits.memory_mb. Loaders charge an
 * item's buffer before allocating it and wait (pread) or park the file
 * (io_uring) while the budget is spent; decoders give every buffer back right
 * after decoding, so the bytes held are those of files read and not yet
 * decoded, which the decoders always get to: the wait cannot deadlock.
 * (Without a cap an item keeps its buffer for the next file instead.) A file
 * larger than the whole budget fails at once instead of waiting.
 */
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "pipeline.h"

int rf__budget_init(rf__budget *b, uint64_t limit)
{
	*b = (rf__budget){.limit = limit};
	if (pthread_mutex_init(&b->lock, NULL) != 0)
		return RF_ESYS;
	if (rf__cond_init_monotonic(&b->freed) != 0) {
		pthread_mutex_destroy(&b->lock);
		return RF_ESYS;
	}
	b->ready = true;
	return 0;
}

void rf__budget_destroy(rf__budget *b)
{
	if (!b->ready)
		return;
	pthread_cond_destroy(&b->freed);
	pthread_mutex_destroy(&b->lock);
	b->ready = false;
}

/* Frees item's buffer and takes it off the books; b->lock held when b->limit. Returns the bytes freed. */
static size_t drop_buffer(rf__budget *b, rf__item *item)
{
	size_t freed = item->cap;
	if (b->limit)
		b->held -= freed;
	free(item->data);
	item->data = NULL;
	item->cap = 0;
	return freed;
}

int rf__budget_charge(rf_pipeline *p, rf__item *item, size_t want, bool wait)
{
	rf__budget *b = &p->budget;
	if (!b->limit) {
		drop_buffer(b, item);
		return RF__RESERVED;
	}
	if (want > b->limit) {
		/* The buffer is what is compared: at least 4 KiB, whole blocks under direct I/O. */
		char buffer[64] = "";
		if (want != item->size)
			snprintf(buffer, sizeof(buffer), " (a buffer of %zu)", want);
		rf__item_fail(item, RF_ETOOBIG,
			      "file is %llu bytes%s, more than the %llu bytes limits.memory_mb leaves for file "
			      "buffers",
			      (unsigned long long)item->size, buffer, (unsigned long long)b->limit);
		return RF__RESERVE_FAILED;
	}
	/*
	 * A loader waiting here waits on room downstream, as for a free item:
	 * blocked, not busy, so that the autotuner does not add loading when
	 * memory is what limits it.
	 */
	rf__stage_counters *st = &p->stage[RF_STAGE_LOADER];
	uint64_t since = 0;
	int rc = RF__RESERVED;
	pthread_mutex_lock(&b->lock);
	if (drop_buffer(b, item)) /* the old, too small buffer goes back first */
		pthread_cond_broadcast(&b->freed);
	while (b->held + want > b->limit) {
		if (atomic_load(&p->canceled)) {
			rc = RF__RESERVE_FAILED;
			break;
		}
		if (!wait) {
			rc = RF__RESERVE_LATER;
			break;
		}
		if (!since)
			since = rf__wait_begin(st, RF__BLOCKED);
		/* Timed, so a cancel is seen: nobody signals the budget then. */
		struct timespec until = rf__deadline(20000000);
		pthread_cond_timedwait(&b->freed, &b->lock, &until);
	}
	if (rc == RF__RESERVED) {
		b->held += want;
		if (b->held > b->peak)
			b->peak = b->held;
	}
	pthread_mutex_unlock(&b->lock);
	if (since)
		rf__wait_end(st, RF__BLOCKED, since);
	if (rc == RF__RESERVE_FAILED)
		rf__item_fail(item, RF_ECANCELED, "canceled while waiting for file-buffer memory");
	return rc;
}

void rf__budget_uncharge(rf_pipeline *p, size_t bytes)
{
	rf__budget *b = &p->budget;
	if (!b->limit)
		return;
	pthread_mutex_lock(&b->lock);
	b->held -= bytes;
	pthread_cond_broadcast(&b->freed);
	pthread_mutex_unlock(&b->lock);
}

void rf__budget_after_decode(rf_pipeline *p, rf__item *item, size_t keep_max)
{
	rf__budget *b = &p->budget;
	if (!b->limit) {
		if (item->cap > keep_max)
			drop_buffer(b, item);
		return;
	}
	if (!item->data)
		return;
	pthread_mutex_lock(&b->lock);
	drop_buffer(b, item);
	pthread_cond_broadcast(&b->freed);
	pthread_mutex_unlock(&b->lock);
}
