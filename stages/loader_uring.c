/*
 * io_uring loader: each loader thread owns one ring and keeps up to
 * loader.io_depth files in flight (with io_depth = auto, as many as the
 * autotuner allows now, up to what the ring was sized for). Per file: openat
 * (opening never waits behind reads), then statx of the opened file, then one
 * read of the whole file, continued on short reads, then a close that nobody
 * waits for. The statx is a plain system call: it is answered from the inode
 * the open has just filled in, and through the ring it would cost an io-wq
 * worker wake-up per file. Submissions are batched: every SQE prepared in a
 * pass goes to the kernel in one io_uring_submit_and_wait_timeout call, which
 * also reaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "pipeline.h"

enum op { OP_OPEN = 1, OP_READ, OP_CLOSE };
#define OP_BITS 3
#define OP_MASK ((1u << OP_BITS) - 1)
/* How often a waiting loader looks at the cancel flag. */
#define WAIT_SLICE_NS 20000000LL
/* How often a loader with files parked for memory (limits.memory_mb) retries them. */
#define PARKED_SLICE_NS 2000000LL
/* Failed waits in a row after which a broken ring is given up without draining it. */
#define RING_ERRORS_MAX 100

struct loader {
	rf_pipeline *p;
	struct io_uring ring;
	rf__item **reqs; /* the file in flight in each request slot */
	int *free_reqs;
	int free_count, depth;
	int *parked; /* requests sized and opened, waiting for file-buffer bytes */
	int parked_count;
	int ops; /* SQEs submitted and not yet completed */
	bool out_of_inputs;
};

int rf__uring_probe(char *why, size_t why_len)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		snprintf(why, why_len, "io_uring_queue_init: %s", strerror(-rc));
		return RF_ESYS;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	static const int needed[] = {IORING_OP_OPENAT, IORING_OP_READ, IORING_OP_CLOSE};
	rc = 0;
	for (size_t i = 0; probe && i < sizeof(needed) / sizeof(needed[0]); i++)
		if (!io_uring_opcode_supported(probe, needed[i]))
			rc = RF_ESYS;
	if (!probe || rc != 0)
		snprintf(why, why_len, "kernel lacks io_uring openat/read/close");
	io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
	return probe ? rc : RF_ESYS;
}

static struct io_uring_sqe *get_sqe(struct loader *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		/* SQ ring full: push what is queued to the kernel and retry. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static void finish(struct loader *l, int req);

static void queue_op(struct loader *l, int req, enum op op)
{
	rf__item *item = l->reqs[req];
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe) { /* the kernel took none of the queue (io_uring_submit failed): this file fails */
		rf__item_fail(item, RF_EIO, "io_uring: submission queue full");
		finish(l, req);
		return;
	}
	switch (op) {
	case OP_OPEN:
		/* O_NONBLOCK: a FIFO must not block the open; cleared before reading. */
		io_uring_prep_openat(sqe, AT_FDCWD, l->p->source.paths[item->index],
				     O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
		break;
	case OP_READ:
		io_uring_prep_read(sqe, item->fd, item->data + item->len, (unsigned)rf__loader_read_len(item),
				   item->len);
		break;
	case OP_CLOSE:
		break;
	}
	io_uring_sqe_set_data64(sqe, ((uint64_t)req << OP_BITS) | op);
	l->ops++;
}

/* Closes fd without waiting for the result. */
static void queue_close(struct loader *l, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe) {
		close(fd);
		return;
	}
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, OP_CLOSE);
	l->ops++;
}

/* The file is read (or has failed): close it and pass the item on. */
static void finish(struct loader *l, int req)
{
	rf__item *item = l->reqs[req];
	if (item->fd >= 0)
		queue_close(l, item->fd);
	item->fd = -1;
	l->reqs[req] = NULL; /* the item moves on; the slot must not reach it */
	l->free_reqs[l->free_count++] = req;
	if (atomic_load(&l->p->canceled))
		return;
	rf__loader_deliver(l->p, item);
}

/* The item has its buffer: read the whole file. */
static void start_read(struct loader *l, int req)
{
	rf__loader_read_mode(l->p, l->reqs[req], l->reqs[req]->fd);
	queue_op(l, req, OP_READ);
}

/* Retries the files parked for memory; finishes them on cancel. */
static void unpark(struct loader *l)
{
	int kept = 0;
	for (int i = 0; i < l->parked_count; i++) {
		int req = l->parked[i];
		int rc = atomic_load(&l->p->canceled) ? RF__RESERVE_FAILED
						      : rf__loader_reserve(l->p, l->reqs[req], false);
		if (rc == RF__RESERVE_LATER) {
			l->parked[kept++] = req;
			continue;
		}
		if (rc == RF__RESERVED)
			start_read(l, req);
		else
			finish(l, req);
	}
	l->parked_count = kept;
}

/* The file is open: size it (rf__loader_size_file) and start reading. */
static void opened(struct loader *l, int req)
{
	rf__item *item = l->reqs[req];
	if (!rf__loader_size_file(l->p, item, item->fd) || item->size == 0 || atomic_load(&l->p->canceled)) {
		finish(l, req);
		return;
	}
	/* The budget is spent for now: park the file (it stays open) and keep reaping. */
	int rc = rf__loader_reserve(l->p, item, false);
	if (rc == RF__RESERVE_LATER) {
		l->parked[l->parked_count++] = req;
		return;
	}
	if (rc == RF__RESERVED)
		start_read(l, req);
	else
		finish(l, req);
}

static void completed(struct loader *l, uint64_t data, int res)
{
	enum op op = (enum op)(data & OP_MASK);
	int req = (int)(data >> OP_BITS);
	l->ops--;
	if (op == OP_CLOSE)
		return;
	rf__item *item = l->reqs[req];
	/*
	 * Interrupted: again, unless stopping. Not an open's EAGAIN: with
	 * O_NONBLOCK it means a lease is held on the file, which would hold the
	 * loader in a loop for the lease-break time; it fails, as with pread.
	 */
	if ((res == -EINTR || (res == -EAGAIN && op == OP_READ)) && !atomic_load(&l->p->canceled)) {
		queue_op(l, req, op);
		return;
	}
	if (op == OP_OPEN) {
		if (res < 0) {
			rf__item_fail(item, RF_EIO, "open: %s", strerror(-res));
			finish(l, req);
			return;
		}
		item->fd = res;
		opened(l, req);
		return;
	}
	if (res < 0)
		rf__item_fail(item, RF_EIO, "read: %s", strerror(-res));
	else
		item->len += (size_t)res;
	/* res == 0 before size: the file shrank since statx; the decoder judges what is there. */
	if (res > 0 && item->len < item->size && !atomic_load(&l->p->canceled))
		queue_op(l, req, OP_READ);
	else
		finish(l, req);
}

static int in_flight(const struct loader *l)
{
	return l->depth - l->free_count;
}

/* True when the autotuner's limit, not the inputs or the item pool, keeps more files from starting. */
static bool at_limit(const struct loader *l)
{
	return !l->out_of_inputs && in_flight(l) >= atomic_load(&l->p->tune.active[RF__KNOB_LOADER]);
}

/* Starts new files while there is room, inputs and free items. */
static void fill(struct loader *l)
{
	while (!l->out_of_inputs && l->free_count > 0 && !at_limit(l) && !atomic_load(&l->p->canceled)) {
		bool idle = l->free_count == l->depth;
		int rc;
		rf__item *item = rf__loader_take_item(l->p, idle, &rc);
		if (!item) {
			if (rc != RF_ETIMEDOUT)
				l->out_of_inputs = true;
			return;
		}
		int req = l->free_reqs[--l->free_count];
		l->reqs[req] = item;
		queue_op(l, req, OP_OPEN);
	}
}

static void reap(struct loader *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		/* Kernels without IORING_FEAT_EXT_ARG: liburing's own timeout for the wait. */
		if (cqe->user_data != LIBURING_UDATA_TIMEOUT)
			completed(l, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
}

static int loader_init(struct loader *l, rf_pipeline *p)
{
	*l = (struct loader){.p = p, .depth = p->io_depth};
	l->reqs = calloc((size_t)l->depth, sizeof(*l->reqs));
	l->free_reqs = calloc((size_t)l->depth, sizeof(*l->free_reqs));
	l->parked = calloc((size_t)l->depth, sizeof(*l->parked));
	if (!l->reqs || !l->free_reqs || !l->parked) {
		rf__pipeline_fail(p, RF_ENOMEM, "out of memory for the loader");
		return RF_ENOMEM;
	}
	for (int i = 0; i < l->depth; i++)
		l->free_reqs[l->free_count++] = l->depth - 1 - i;
	/* Room for an open or a read per file and a close per finished file. */
	unsigned entries = (unsigned)l->depth * 2 + 8;
	/*
	 * Completions from io-wq workers (FUSE, NFS: every op) are run as task
	 * work on this thread. DEFER_TASKRUN (Linux 6.1) runs it only when the
	 * loader asks for completions, all at once (over FUSE, the loader went
	 * to sleep 2.2 times per file instead of 3.4); COOP_TASKRUN at least
	 * spares the inter-processor interrupt; older kernels get neither.
	 */
	static const unsigned setups[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
					  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, 0};
	int rc = -EINVAL;
	for (size_t i = 0; rc == -EINVAL && i < sizeof(setups) / sizeof(setups[0]); i++) {
		struct io_uring_params params = {.flags = setups[i]};
		rc = io_uring_queue_init_params(entries, &l->ring, &params);
	}
	if (rc < 0) {
		rf__pipeline_fail(p, RF_ESYS, "io_uring_queue_init: %s", strerror(-rc));
		return RF_ESYS;
	}
	/*
	 * Opens, reads and closes that cannot finish at once (page cache misses,
	 * FUSE and network file systems) run on the kernel's io-wq workers, of
	 * which a ring gets min(SQ entries, 4 x CPUs) by default: 8 here, which
	 * would cap a 64-deep loader on 2 ms storage at ~1000 ops/s. Allow one
	 * per op in flight. Only a hint (older kernels: -EINVAL, ignored).
	 */
	unsigned workers[2] = {entries, 0};
	(void)io_uring_register_iowq_max_workers(&l->ring, workers);
	return 0;
}

void rf__loader_uring_run(rf_pipeline *p)
{
	struct loader l;
	rf__stage_counters *st = &p->stage[RF_STAGE_LOADER];
	uint64_t cpu = rf__thread_cpu_ns();
	if (loader_init(&l, p) == 0) {
		int ring_errors = 0;
		for (;;) {
			if (l.parked_count)
				unpark(&l);
			fill(&l);
			if (l.ops == 0 && l.parked_count == 0 && (l.out_of_inputs || atomic_load(&p->canceled)))
				break;
			struct io_uring_cqe *cqe;
			struct __kernel_timespec ts = {.tv_sec = 0,
						       .tv_nsec = l.parked_count ? PARKED_SLICE_NS : WAIT_SLICE_NS};
			/* Files parked for memory (limits.memory_mb): more depth would only park more. */
			bool saturated = at_limit(&l) && l.parked_count == 0;
			/* Nothing in flight but files parked: blocked on memory, as a pread loader is. */
			bool on_memory = l.ops == 0 && l.parked_count > 0;
			uint64_t t = saturated ? rf__now_ns() : on_memory ? rf__wait_begin(st, RF__BLOCKED) : 0;
			int rc = io_uring_submit_and_wait_timeout(&l.ring, &cqe, 1, &ts, NULL);
			if (saturated)
				rf__count(&p->tune.saturated_ns, rf__now_ns() - t);
			else if (on_memory)
				rf__wait_end(st, RF__BLOCKED, t);
			if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
				/*
				 * The pipeline stops; keep reaping while the ring
				 * answers, so that every open file is closed and no
				 * read is left writing into a buffer about to be freed.
				 */
				rf__pipeline_fail(p, RF_ESYS, "io_uring_submit_and_wait: %s", strerror(-rc));
				if (++ring_errors > RING_ERRORS_MAX)
					break;
			} else {
				ring_errors = 0;
			}
			reap(&l);
			rf__count_cpu(st, &cpu);
		}
		io_uring_queue_exit(&l.ring);
		/* Only when the ring was given up: files still open (parked, or their read never answered). */
		for (int i = 0; i < l.depth; i++)
			if (l.reqs[i] && l.reqs[i]->fd >= 0)
				close(l.reqs[i]->fd);
	}
	rf__count_cpu(&p->stage[RF_STAGE_LOADER], &cpu);
	free(l.reqs);
	free(l.free_reqs);
	free(l.parked);
}
