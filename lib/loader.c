/* What every loader backend shares: taking inputs, checking files, handing items on. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "clock.h"
#include "pipeline.h"

void rf__item_fail(rf__item *item, int code, const char *fmt, ...)
{
	if (item->status != 0)
		return; /* keep the first reason */
	item->status = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(item->reason, sizeof(item->reason), fmt, ap);
	va_end(ap);
}

rf__item *rf__loader_take_item(rf_pipeline *p, bool wait, int *rc)
{
	void *v = NULL;
	if (wait) {
		uint64_t t = rf__wait_begin(&p->stage[RF_STAGE_LOADER], RF__BLOCKED);
		*rc = rf__queue_pop(&p->free_items, &v);
		rf__wait_end(&p->stage[RF_STAGE_LOADER], RF__BLOCKED, t);
	} else {
		*rc = rf__queue_try_pop(&p->free_items, &v);
	}
	if (*rc != 0)
		return NULL;
	rf__item *item = v;
	if (!rf__sampler_next(&p->sampler, &item->seq, &item->index, &item->epoch)) {
		rf__queue_try_push(&p->free_items, item);
		/* Every input is taken: parked threads must see the end, and nothing is left to tune. */
		rf__tune_release(&p->tune);
		*rc = RF_EOF;
		return NULL;
	}
	item->status = 0;
	item->reason[0] = '\0';
	item->len = 0;
	item->size = 0;
	item->fd = -1;
	item->direct = false;
	item->pending = 0;
	return item;
}

static const char *file_kind(unsigned mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/*
 * Of the opened file, with the attributes its open brought (DONT_SYNC): it
 * never waits for I/O, where by path, or synced, FUSE, NFS and the like would
 * make up to three more round trips to the server per file (directory and
 * file attributes, lookup) for the same answer.
 */
bool rf__loader_size_file(rf_pipeline *p, rf__item *item, int fd)
{
	struct statx st;
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_SIZE, &st) != 0) {
		rf__item_fail(item, RF_EIO, "stat: %s", strerror(errno));
		return false;
	}
	if (!S_ISREG(st.stx_mode)) {
		rf__item_fail(item, RF_EIO, "not a regular file: %s", file_kind(st.stx_mode));
		return false;
	}
	if (st.stx_size > p->cfg.limits.max_file_bytes) {
		rf__item_fail(item, RF_ETOOBIG, "file is %llu bytes, over limits.max_file_bytes %llu",
			      (unsigned long long)st.stx_size, (unsigned long long)p->cfg.limits.max_file_bytes);
		return false;
	}
	item->size = st.stx_size;
	return true;
}

const char *rf__loader_blocking_fs(const char *path)
{
	struct statfs st;
	if (!path || statfs(path, &st) != 0)
		return NULL;
	switch ((unsigned long)st.f_type) {
	case FUSE_SUPER_MAGIC:
		return "FUSE";
	case NFS_SUPER_MAGIC:
		return "NFS";
	case CIFS_SUPER_MAGIC:
	case SMB2_SUPER_MAGIC:
		return "SMB";
	case CEPH_SUPER_MAGIC:
		return "Ceph";
	case V9FS_MAGIC:
		return "9p";
	default:
		return NULL;
	}
}

/* O_DIRECT wants buffer, offset and length aligned to the device's block; 4096 covers every common one. */
#define DIRECT_ALIGN ((size_t)4096)

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

void rf__loader_read_mode(rf_pipeline *p, rf__item *item, int fd)
{
	item->direct = p->cfg.loader.direct_io && fcntl(fd, F_SETFL, O_DIRECT) == 0;
	if (!item->direct)
		fcntl(fd, F_SETFL, 0);
}

/*
 * At most 16 MiB per read (a multiple of DIRECT_ALIGN, so the next offset
 * stays aligned); a larger file is read in several. Both loaders stop between
 * pieces at a cancel, so close waits for one piece, not a whole file (a
 * 256 MiB file on slow storage held it for seconds). io_uring takes a 32-bit
 * length and Linux ends any read at 2 GiB, so the cap is needed anyway.
 */
#define READ_MAX ((size_t)16 << 20)

size_t rf__loader_read_len(const rf__item *item)
{
	size_t left = item->direct ? round_up((size_t)item->size, DIRECT_ALIGN) - item->len
				   : (size_t)item->size - item->len;
	return left < READ_MAX ? left : READ_MAX;
}

int rf__loader_reserve(rf_pipeline *p, rf__item *item, bool wait)
{
	bool direct = p->cfg.loader.direct_io;
	size_t want = item->size > 4096 ? (size_t)item->size : 4096;
	if (direct)
		want = round_up(want, DIRECT_ALIGN);
	if (item->cap >= want && item->data)
		return RF__RESERVED;
	/* Drops the old buffer (its contents are not needed: free + malloc beats realloc's copy). */
	int rc = rf__budget_charge(p, item, want, wait);
	if (rc != RF__RESERVED)
		return rc;
	item->data = direct ? aligned_alloc(DIRECT_ALIGN, want) : malloc(want);
	if (!item->data) {
		rf__budget_uncharge(p, want);
		rf__item_fail(item, RF_ENOMEM, "out of memory for a %llu-byte file", (unsigned long long)item->size);
		return RF__RESERVE_FAILED;
	}
	item->cap = want;
	return RF__RESERVED;
}

int rf__loader_deliver(rf_pipeline *p, rf__item *item)
{
	rf__stage_counters *st = &p->stage[RF_STAGE_LOADER];
	if (item->status == 0)
		rf__count(&p->bytes_read, item->len);
	rf__count(&st->items, 1);
	uint64_t t = rf__wait_begin(st, RF__BLOCKED);
	int rc = rf__queue_push(&p->decode_queue, item);
	rf__wait_end(st, RF__BLOCKED, t);
	return rc;
}
