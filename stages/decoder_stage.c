/*
 * Decoder threads: pop a loaded item, decode + resize it into the item's
 * staging pixels, hand it to the batcher (which writes it into a batch slot).
 * The last decoder to finish closes the stream.
 */
#include <stdlib.h>

#include "clock.h"
#include "pipeline.h"

/* An item that once held a huge file gives its buffer back rather than keep it. */
#define KEEP_FILE_BUFFER_MAX ((size_t)8 << 20)

void rf__decoder_run(rf_pipeline *p)
{
	rf__stage_counters *st = &p->stage[RF_STAGE_DECODER];
	int index = atomic_fetch_add(&st->next_index, 1);
	rf__decoder *d = NULL;
	uint64_t cpu = rf__thread_cpu_ns();
	int rc = rf__decoder_create(&d, &p->cfg);
	if (rc != 0)
		rf__pipeline_fail(p, rc, "cannot create a decoder: %s", rf_strerror(rc));
	while (rc == 0) {
		rf__tune_wait_turn(p, RF__KNOB_DECODER, index);
		void *v;
		uint64_t t = rf__wait_begin(st, RF__STARVED);
		rc = rf__queue_pop(&p->decode_queue, &v);
		rf__wait_end(st, RF__STARVED, t);
		if (rc != 0)
			break;
		rf__item *item = v;
		if (item->status == 0) {
			int drc = rf__decode_image(d, item->data, item->len, item->pixels, item->reason,
						   sizeof(item->reason));
			if (drc != 0)
				item->status = drc;
		}
		rf__budget_after_decode(p, item, KEEP_FILE_BUFFER_MAX);
		rf__batcher_submit(p, item);
		rf__count(&st->items, 1);
		rf__count_cpu(st, &cpu);
	}
	rf__count_cpu(st, &cpu);
	rf__decoder_destroy(d);
	if (atomic_fetch_sub(&p->decoders_running, 1) == 1 && rc == RF_EOF)
		rf__batcher_finish(p);
}
