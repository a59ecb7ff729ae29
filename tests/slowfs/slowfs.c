/*
 * slowfs: a read-only passthrough FUSE file system whose getattr, lookup,
 * open and read answers arrive a set time late. Local storage here answers in
 * microseconds; a network file system or an object store behind a FUSE
 * adapter answers in milliseconds, and that latency is what a loader has to
 * hide. slowfs puts it in front of any directory, for tests and for
 * scripts/bench_storage.sh.
 *
 *   slowfs SOURCE MOUNTPOINT [--delay-ms MS] [--getattr-ms MS] [--open-ms MS]
 *          [--read-ms MS] [--cache] [--permissions] [--threads N] [--size-lie BYTES]
 *          [--batch] [FUSE options, e.g. -f]
 *
 * --delay-ms sets all three delays; the others override one each (fractions
 * allowed; lookup pays the getattr delay). Like a server, slowfs does the work
 * at once and holds the answer back: requests are taken by --threads threads
 * (default 2, started as needed and then kept; a handler never sleeps), and
 * one thread sends each answer when it is due, so any number of requests wait
 * concurrently at the cost of a heap entry each, not of a sleeping thread.
 * Two threads take requests by default: as no handler waits, more only add
 * wake-ups (each idle thread is woken for a request of its own, where a busy
 * one reads the next request without sleeping): at 2 ms, 3000 files cost
 * slowfs 0.35 s of CPU with 4 threads, 0.28 s with 2 and 0.27 s with 1. The
 * second thread takes requests while the first waits on a cold disk.
 * Without --cache the kernel caches nothing (no attribute, entry or page
 * cache; every read goes to slowfs), so every lookup, open and read pays its
 * delay, as on storage with no client cache: a file costs 4 requests (LOOKUP,
 * OPEN, READ, RELEASE).
 * Access is checked where a network file system checks it, on the server:
 * slowfs opens files as the user who mounted it, the only user the kernel
 * lets in (no allow_other). --permissions makes the kernel check the mode
 * bits itself (default_permissions), which with nothing cached costs 2
 * GETATTR more per file (the directory's on lookup, the file's on open).
 * --size-lie adds BYTES to every regular file's size, so every file seems to
 * shrink between stat and read (reads end early at the real end). --batch
 * runs slowfs under SCHED_BATCH: it stands in for a server on another
 * machine, and so should not preempt the client's threads at every request;
 * it keeps its share of the CPU, and its answers can only come later than
 * the delay, never sooner. Unmount with `fusermount3 -u MOUNTPOINT`.
 *
 * One artefact to know: the first lookup of each name after mounting is
 * served one at a time (the kernel creates the inode), so a first pass over N
 * files takes at least N x getattr delay whatever the concurrency; later
 * passes look names up in parallel. Benchmarks warm the names first
 * (scripts/bench_storage.sh stats every file once after mounting).
 */
#define FUSE_USE_VERSION 312

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <sched.h>
#include <search.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static struct {
	int source; /* directory fd every path is resolved against */
	double getattr_ms, open_ms, read_ms;
	long long size_lie;
	bool cache, permissions;
} fs = {.source = -1};

/* ---- nodes: FUSE inode numbers for the source's files -------------------- */

/*
 * One per source file the kernel holds: made by the first lookup, freed when
 * FORGET takes back as many lookups as were answered, so memory follows the
 * kernel's inode cache, not the data set. The FUSE inode number is the
 * node's address; the root is FUSE_ROOT_ID and never forgotten.
 */
struct node {
	dev_t dev;
	ino_t ino;
	uint64_t lookups; /* entries answered (or about to be) and not yet forgotten */
	char *path;       /* relative to the source directory */
};

static struct node root = {.path = "."};
static void *nodes; /* tsearch tree keyed by (dev, ino) */
static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;

static int node_cmp(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static struct node *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root : (struct node *)(uintptr_t)ino;
}

/* The node for st (found or made with path), counting one more lookup; NULL when out of memory. */
static struct node *intern(const struct stat *st, const char *path)
{
	struct node key = {.dev = st->st_dev, .ino = st->st_ino};
	pthread_mutex_lock(&nodes_lock);
	struct node **found = tfind(&key, &nodes, node_cmp);
	struct node *n = found ? *found : NULL;
	if (!n && (n = malloc(sizeof(*n)))) {
		*n = key;
		n->path = strdup(path);
		if (!n->path || !tsearch(n, &nodes, node_cmp)) {
			free(n->path);
			free(n);
			n = NULL;
		}
	}
	if (n)
		n->lookups++;
	pthread_mutex_unlock(&nodes_lock);
	return n;
}

static void node_free(void *v)
{
	struct node *n = v;
	free(n->path);
	free(n);
}

/* The kernel drops count of its lookups of ino; the node goes with the last. */
static void forget(fuse_ino_t ino, uint64_t count)
{
	if (ino == FUSE_ROOT_ID)
		return;
	struct node *n = node_of(ino);
	pthread_mutex_lock(&nodes_lock);
	n->lookups -= count < n->lookups ? count : n->lookups;
	bool last = n->lookups == 0;
	if (last)
		tdelete(n, &nodes, node_cmp);
	pthread_mutex_unlock(&nodes_lock);
	if (last)
		node_free(n);
}

/* ---- answers held back until due ---------------------------------------- */

enum answer_kind { ANSWER_ERR, ANSWER_ENTRY, ANSWER_ATTR, ANSWER_OPEN, ANSWER_DATA };

struct answer {
	uint64_t due_ns;
	fuse_req_t req;
	enum answer_kind kind;
	int err;
	struct fuse_entry_param entry;
	struct stat st;
	struct fuse_file_info fi;
	int fd;
	off_t off;
	size_t size;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct answer **heap; /* min-heap by due_ns */
	size_t count, cap;
	bool stopping;
	pthread_t thread;
} held = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void send_answer(struct answer *a)
{
	switch (a->kind) {
	case ANSWER_ERR:
		fuse_reply_err(a->req, a->err);
		break;
	/* An answer the kernel no longer takes (the connection aborted) leaves nothing behind. */
	case ANSWER_ENTRY:
		if (fuse_reply_entry(a->req, &a->entry) != 0)
			forget(a->entry.ino, 1); /* the lookup counted for it */
		break;
	case ANSWER_ATTR:
		fuse_reply_attr(a->req, &a->st, fs.cache ? 1.0 : 0.0);
		break;
	case ANSWER_OPEN:
		if (fuse_reply_open(a->req, &a->fi) != 0)
			close((int)a->fi.fh); /* no RELEASE will come for it */
		break;
	case ANSWER_DATA: {
		/* The file's own pages, spliced from the source file to the FUSE device. */
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(a->size);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = a->fd;
		buf.buf[0].pos = a->off;
		fuse_reply_data(a->req, &buf, FUSE_BUF_SPLICE_MOVE);
		break;
	}
	}
	free(a);
}

static void heap_swap(size_t i, size_t j)
{
	struct answer *t = held.heap[i];
	held.heap[i] = held.heap[j];
	held.heap[j] = t;
}

static struct answer *heap_pop(void)
{
	struct answer *top = held.heap[0];
	held.heap[0] = held.heap[--held.count];
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < held.count && held.heap[l]->due_ns < held.heap[m]->due_ns)
			m = l;
		if (r < held.count && held.heap[r]->due_ns < held.heap[m]->due_ns)
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
	return top;
}

/* Sends a (taking it) after delay_ms, or now. */
static void answer_after(struct answer *a, double delay_ms)
{
	if (delay_ms <= 0) {
		send_answer(a);
		return;
	}
	a->due_ns = now_ns() + (uint64_t)(delay_ms * 1e6);
	pthread_mutex_lock(&held.lock);
	if (held.count == held.cap) {
		size_t cap = held.cap ? 2 * held.cap : 1024;
		struct answer **heap = realloc(held.heap, cap * sizeof(*heap));
		if (!heap) {
			pthread_mutex_unlock(&held.lock);
			send_answer(a); /* out of memory: answer now rather than never */
			return;
		}
		held.heap = heap;
		held.cap = cap;
	}
	size_t i = held.count++;
	held.heap[i] = a;
	for (; i > 0 && held.heap[(i - 1) / 2]->due_ns > held.heap[i]->due_ns; i = (i - 1) / 2)
		heap_swap(i, (i - 1) / 2);
	if (i == 0) /* a new earliest answer: the sender sleeps until it */
		pthread_cond_signal(&held.wake);
	pthread_mutex_unlock(&held.lock);
}

static void *sender_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&held.lock);
	for (;;) {
		if (held.count == 0) {
			if (held.stopping)
				break;
			pthread_cond_wait(&held.wake, &held.lock);
			continue;
		}
		uint64_t now = now_ns(), due = held.heap[0]->due_ns;
		if (due > now && !held.stopping) {
			struct timespec until = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
			pthread_cond_timedwait(&held.wake, &held.lock, &until);
			continue;
		}
		struct answer *a = heap_pop();
		pthread_mutex_unlock(&held.lock);
		send_answer(a);
		pthread_mutex_lock(&held.lock);
	}
	pthread_mutex_unlock(&held.lock);
	return NULL;
}

/* A new answer to req; NULL (req answered ENOMEM) when out of memory. */
static struct answer *answer_new(fuse_req_t req, enum answer_kind kind)
{
	struct answer *a = calloc(1, sizeof(*a));
	if (!a) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	a->req = req;
	a->kind = kind;
	return a;
}

/* Turns a into an error answer. */
static void answer_fail(struct answer *a, int err)
{
	a->kind = ANSWER_ERR;
	a->err = err;
}

/* ---- operations ---------------------------------------------------------- */

static void lie_about_size(struct stat *st)
{
	if (S_ISREG(st->st_mode))
		st->st_size += fs.size_lie;
}

static void slow_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/*
	 * Reads submitted asynchronously (io_uring, AIO) travel as FUSE
	 * "background" requests, of which the kernel lets max_background
	 * (default 12) be outstanding: far fewer than a loader keeps in flight.
	 * A network file system has no such limit of its own.
	 */
	conn->max_background = 1024;
	conn->congestion_threshold = 768;
	conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void slow_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	const char *dir = node_of(parent)->path;
	size_t len = strlen(dir) + strlen(name) + 2;
	struct answer *a = answer_new(req, ANSWER_ENTRY);
	if (!a)
		return;
	char *path = malloc(len);
	if (!path) {
		free(a);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (strcmp(dir, ".") == 0)
		snprintf(path, len, "%s", name);
	else
		snprintf(path, len, "%s/%s", dir, name);
	struct node *n = NULL;
	if (fstatat(fs.source, path, &a->entry.attr, AT_SYMLINK_NOFOLLOW) != 0) {
		answer_fail(a, errno);
	} else if (!(n = intern(&a->entry.attr, path))) {
		answer_fail(a, ENOMEM);
	} else {
		a->entry.ino = (fuse_ino_t)(uintptr_t)n;
		a->entry.attr_timeout = a->entry.entry_timeout = fs.cache ? 1.0 : 0.0;
		lie_about_size(&a->entry.attr);
	}
	free(path);
	answer_after(a, fs.getattr_ms);
}

static void slow_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget(ino, nlookup);
	fuse_reply_none(req);
}

static void slow_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void slow_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct answer *a = answer_new(req, ANSWER_ATTR);
	if (!a)
		return;
	int rc = fi ? fstat((int)fi->fh, &a->st)
		    : fstatat(fs.source, node_of(ino)->path, &a->st, AT_SYMLINK_NOFOLLOW);
	if (rc != 0)
		answer_fail(a, errno);
	lie_about_size(&a->st);
	answer_after(a, fs.getattr_ms);
}

static void slow_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4096];
	ssize_t n = readlinkat(fs.source, node_of(ino)->path, buf, sizeof(buf) - 1);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

static void slow_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct answer *a = answer_new(req, ANSWER_OPEN);
	if (!a)
		return;
	int fd = openat(fs.source, node_of(ino)->path, O_RDONLY | O_CLOEXEC | (fi->flags & O_NOFOLLOW));
	if (fd < 0) {
		answer_fail(a, errno);
	} else {
		a->fi = *fi;
		a->fi.fh = (uint64_t)fd;
		a->fi.direct_io = !fs.cache;
		a->fi.keep_cache = fs.cache;
	}
	answer_after(a, fs.open_ms);
}

static void slow_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct answer *a = answer_new(req, ANSWER_DATA);
	if (!a)
		return;
	/* The file stays open until the answer is sent: RELEASE waits for the read. */
	a->fd = (int)fi->fh;
	a->off = off;
	a->size = size;
	answer_after(a, fs.read_ms);
}

static void slow_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

/* An open directory: the stream and the entry a full reply buffer left over. */
struct dir {
	DIR *stream;
	struct dirent *pending;
	off_t offset;
};

static void slow_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir *d = calloc(1, sizeof(*d));
	int fd = d ? openat(fs.source, node_of(ino)->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd >= 0 && !(d->stream = fdopendir(fd)))
		close(fd);
	if (!d || !d->stream) {
		int err = d ? errno : ENOMEM;
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fuse_reply_open(req, fi);
}

static void slow_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct dir *d = (struct dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->stream, off);
		d->pending = NULL;
		d->offset = off;
	}
	size_t used = 0;
	for (;;) {
		if (!d->pending) {
			errno = 0;
			d->pending = readdir(d->stream);
			if (!d->pending) {
				if (errno && used == 0) {
					free(buf);
					fuse_reply_err(req, errno);
					return;
				}
				break;
			}
		}
		struct stat st = {.st_ino = d->pending->d_ino, .st_mode = (mode_t)DTTOIF(d->pending->d_type)};
		size_t n = fuse_add_direntry(req, buf + used, size - used, d->pending->d_name, &st,
					     d->pending->d_off);
		if (n > size - used)
			break; /* full: this entry goes first next time */
		used += n;
		d->offset = d->pending->d_off;
		d->pending = NULL;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void slow_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct dir *d = (struct dir *)(uintptr_t)fi->fh;
	closedir(d->stream);
	free(d);
	fuse_reply_err(req, 0);
}

static void slow_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs st;
	if (fstatvfs(fs.source, &st) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &st);
}

static const struct fuse_lowlevel_ops slow_ops = {
	.init = slow_init,
	.lookup = slow_lookup,
	.forget = slow_forget,
	.forget_multi = slow_forget_multi,
	.getattr = slow_getattr,
	.readlink = slow_readlink,
	.open = slow_open,
	.read = slow_read,
	.release = slow_release,
	.opendir = slow_opendir,
	.readdir = slow_readdir,
	.releasedir = slow_releasedir,
	.statfs = slow_statfs,
};

/* ---- main ---------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: slowfs SOURCE MOUNTPOINT [--delay-ms MS] [--getattr-ms MS] [--open-ms MS] "
			"[--read-ms MS] [--cache] [--permissions] [--threads N] [--size-lie BYTES] "
			"[--batch] [FUSE options]\n");
	return 2;
}

static bool parse_ms(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = s ? strtod(s, &end) : -1;
	if (!s || errno || end == s || *end || !(v >= 0 && v <= 60000))
		return false;
	*out = v;
	return true;
}

/* Mounts, serves until unmounted or signalled, unmounts. */
static int serve(struct fuse_args *args, int threads)
{
	struct fuse_cmdline_opts opts;
	if (fuse_parse_cmdline(args, &opts) != 0)
		return 1;
	if (!opts.mountpoint) {
		free(opts.mountpoint);
		return usage();
	}
	int rc = 1;
	struct fuse_session *se = fuse_session_new(args, &slow_ops, sizeof(slow_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(opts.foreground);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&held.wake, &attr);
	pthread_condattr_destroy(&attr);
	/* As many threads kept as may run: libfuse would otherwise start and end threads all along. */
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	if (loop && pthread_create(&held.thread, NULL, sender_main, NULL) == 0) {
		fuse_loop_cfg_set_max_threads(loop, (unsigned)threads);
		fuse_loop_cfg_set_idle_threads(loop, (unsigned)threads);
		rc = opts.singlethread ? fuse_session_loop(se) : fuse_session_loop_mt(se, loop);
		/* Answers still held go out now; the sender ends once none are left. */
		pthread_mutex_lock(&held.lock);
		held.stopping = true;
		pthread_cond_signal(&held.wake);
		pthread_mutex_unlock(&held.lock);
		pthread_join(held.thread, NULL);
	}
	fuse_loop_cfg_destroy(loop);
	pthread_cond_destroy(&held.wake);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	free(opts.mountpoint);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	/* FUSE gets: program, MOUNTPOINT, -o options, then whatever we do not know. */
	char **fargv = calloc((size_t)argc + 4, sizeof(char *));
	int fargc = 0, threads = 2;
	bool batch = false;
	const char *source = NULL;
	if (!fargv)
		return 1;
	fargv[fargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		double ms;
		if (!strcmp(a, "--delay-ms") && parse_ms(argv[i + 1], &ms)) {
			fs.getattr_ms = fs.open_ms = fs.read_ms = ms;
			i++;
		} else if (!strcmp(a, "--getattr-ms") && parse_ms(argv[i + 1], &fs.getattr_ms)) {
			i++;
		} else if (!strcmp(a, "--open-ms") && parse_ms(argv[i + 1], &fs.open_ms)) {
			i++;
		} else if (!strcmp(a, "--read-ms") && parse_ms(argv[i + 1], &fs.read_ms)) {
			i++;
		} else if (!strcmp(a, "--threads") && argv[i + 1] && (threads = atoi(argv[i + 1])) > 0) {
			i++;
		} else if (!strcmp(a, "--size-lie") && argv[i + 1] &&
			   (fs.size_lie = atoll(argv[i + 1])) > 0) {
			i++;
		} else if (!strcmp(a, "--cache")) {
			fs.cache = true;
		} else if (!strcmp(a, "--permissions")) {
			fs.permissions = true;
		} else if (!strcmp(a, "--batch")) {
			batch = true;
		} else if (!strncmp(a, "--", 2)) {
			free(fargv);
			return usage();
		} else if (!source && a[0] != '-') {
			source = a;
		} else {
			fargv[fargc++] = argv[i];
		}
	}
	if (!source || fargc < 2) {
		free(fargv);
		return usage();
	}
	/* Set before any thread starts: they all inherit it. */
	if (batch && sched_setscheduler(0, SCHED_BATCH, &(struct sched_param){0}) != 0)
		fprintf(stderr, "slowfs: SCHED_BATCH: %s (kept the default policy)\n", strerror(errno));
	fs.source = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs.source < 0) {
		fprintf(stderr, "slowfs: %s: %s\n", source, strerror(errno));
		free(fargv);
		return 1;
	}
	fargv[fargc++] = "-o";
	fargv[fargc++] = fs.permissions ? "ro,default_permissions" : "ro";
	struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
	int rc = serve(&args, threads);
	fuse_opt_free_args(&args);
	tdestroy(nodes, node_free);
	close(fs.source);
	free(fargv);
	return rc;
}
