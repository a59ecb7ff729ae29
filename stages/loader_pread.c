/*
 * Loader backend without io_uring: open, fstat and pread on the loader
 * thread itself. Latency is hidden only by running more loader threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "pipeline.h"

static void read_item(rf_pipeline *p, rf__item *item)
{
	const char *path = p->source.paths[item->index];
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rf__item_fail(item, RF_EIO, "open: %s", strerror(errno));
		return;
	}
	if (rf__loader_size_file(p, item, fd) && rf__loader_reserve(p, item, true) == RF__RESERVED) {
		rf__loader_read_mode(p, item, fd);
		/* A file read in pieces (over 16 MiB, or short reads) stops at a cancel: close need not wait for it. */
		while (item->len < item->size && !atomic_load(&p->canceled)) {
			ssize_t n = pread(fd, item->data + item->len, rf__loader_read_len(item), (off_t)item->len);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0) {
				rf__item_fail(item, RF_EIO, "read: %s", strerror(errno));
				break;
			}
			if (n == 0)
				break; /* shrank since fstat: the decoder judges what is there */
			item->len += (size_t)n;
		}
	}
	close(fd);
}

void rf__loader_pread_run(rf_pipeline *p)
{
	uint64_t cpu = rf__thread_cpu_ns();
	int index = atomic_fetch_add(&p->stage[RF_STAGE_LOADER].next_index, 1);
	for (;;) {
		rf__tune_wait_turn(p, RF__KNOB_LOADER, index);
		int rc;
		rf__item *item = rf__loader_take_item(p, true, &rc);
		if (!item)
			break;
		read_item(p, item);
		rf__count_cpu(&p->stage[RF_STAGE_LOADER], &cpu);
		if (rf__loader_deliver(p, item) != 0)
			break;
	}
	rf__count_cpu(&p->stage[RF_STAGE_LOADER], &cpu);
}
