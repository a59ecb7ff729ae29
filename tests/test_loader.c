/* Both loader backends, driven by hand: every file comes out whole or failed with a reason. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline.h"
#include "testfs.h"

struct expect {
	const char *name;
	size_t size; /* bytes written; content is a function of name and offset */
	int status;
	const char *reason; /* substring of the reason when status != 0 */
};

static uint8_t content_byte(const char *name, size_t i)
{
	return (uint8_t)(name[0] * 31 + i * 7 + (i >> 9));
}

static void write_file(const char *dir, const char *name, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		buf[i] = content_byte(name, i);
	cr_assert_eq(tfs_write(dir, name, buf, size), 0);
	free(buf);
}

/* Runs one loader thread body to completion and collects its items by input index. */
static rf__item **load_all(rf_pipeline *p, rf_backend backend, size_t n)
{
	cr_assert_eq(rf__pipeline_prepare(p), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(p->backend, backend);
	if (backend == RF_BACKEND_IO_URING)
		rf__loader_uring_run(p);
	else
		rf__loader_pread_run(p);
	rf__item **by_seq = calloc(n, sizeof(*by_seq));
	void *v;
	size_t got = 0;
	while (rf__queue_try_pop(&p->decode_queue, &v) == 0) {
		rf__item *item = v;
		cr_assert_lt(item->seq, n);
		cr_assert_null(by_seq[item->seq], "item %llu delivered twice", (unsigned long long)item->seq);
		by_seq[item->seq] = item;
		got++;
	}
	for (size_t i = 0; i < n; i++)
		cr_assert_not_null(by_seq[i], "%s was never delivered", p->source.paths[i]);
	cr_assert_eq(got, n);
	return by_seq;
}

static void check_item(const rf_pipeline *p, const rf__item *item, const struct expect *e)
{
	const char *path = p->source.paths[item->seq];
	cr_assert_eq(item->status, e->status, "%s: status %d (%s), expected %d", path, item->status, item->reason,
		     e->status);
	if (e->status != 0) {
		cr_assert_not_null(strstr(item->reason, e->reason), "%s: reason '%s' lacks '%s'", path,
				   item->reason, e->reason);
		return;
	}
	cr_assert_eq(item->len, e->size, "%s: read %zu bytes, expected %zu", path, item->len, e->size);
	for (size_t i = 0; i < e->size; i++)
		if (item->data[i] != content_byte(e->name, i))
			cr_assert_fail("%s: byte %zu differs", path, i);
}

/* Whether files in dir can be read with O_DIRECT (tmpfs before Linux 6.6 cannot). */
static bool takes_o_direct(const char *dir)
{
	char *path = tfs_path(dir, "one");
	int fd = open(path, O_RDONLY | O_DIRECT);
	free(path);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* Adds dir/name of every case, in order, through a list file (a directory named directly would be walked). */
static void add_cases(rf_pipeline *p, const char *dir, const struct expect *cases, size_t n)
{
	char *list = tfs_path(dir, "list");
	FILE *f = fopen(list, "w");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s/%s\n", dir, cases[i].name);
	fclose(f);
	char *at = NULL;
	cr_assert_gt(asprintf(&at, "@%s", list), 0);
	cr_assert_eq(rf_pipeline_add(p, at), 0);
	cr_assert_eq(rf_pipeline_item_count(p), n);
	free(at);
	free(list);
}

static void run_cases(rf_backend backend, bool direct)
{
	char *dir = tfs_mkdtemp();
	const struct expect cases[] = {
		{"empty", 0, 0, NULL},
		{"one", 1, 0, NULL},
		{"page", 4096, 0, NULL},
		{"big", (3u << 20) + 7, 0, NULL},
		{"huge", 5u << 20, RF_ETOOBIG, "limits.max_file_bytes"},
		{"missing", 0, RF_EIO, "No such file"},
		{"subdir", 0, RF_EIO, "a directory"},
		{"fifo", 0, RF_EIO, "a FIFO"},
		{"zero", 0, RF_EIO, "a character device"},
		{"dangling", 0, RF_EIO, "No such file"},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < 5; i++)
		write_file(dir, cases[i].name, cases[i].size);
	char *sub = tfs_path(dir, "subdir"), *fifo = tfs_path(dir, "fifo"), *zero = tfs_path(dir, "zero"),
	     *dangling = tfs_path(dir, "dangling");
	cr_assert_eq(mkdir(sub, 0755), 0);
	cr_assert_eq(mkfifo(fifo, 0644), 0);
	cr_assert_eq(symlink("/dev/zero", zero), 0);
	cr_assert_eq(symlink("/nonexistent/target", dangling), 0);

	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.backend = backend;
	cfg.loader.direct_io = direct;
	cfg.loader.io_depth = 4;
	cfg.decoder.threads = 1;
	cfg.pipeline.queue_depth = 64;
	cfg.limits.max_file_bytes = 4u << 20;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	add_cases(p, dir, cases, n);
	rf__item **items = load_all(p, backend, n);
	bool o_direct = takes_o_direct(dir);
	for (size_t i = 0; i < n; i++) {
		check_item(p, items[i], &cases[i]);
		/* read with O_DIRECT when asked and the file system takes it, else through the page cache */
		if (cases[i].status == 0 && cases[i].size > 0)
			cr_assert_eq(items[i]->direct, direct && o_direct, "%s", cases[i].name);
	}
	free(items);
	rf_pipeline_close(p);
	free(sub);
	free(fifo);
	free(zero);
	free(dangling);
	tfs_rmtree(dir);
	free(dir);
}

Test(loader, uring_reads_whole_files_and_rejects_non_files, .timeout = 60)
{
	run_cases(RF_BACKEND_IO_URING, false);
}

Test(loader, pread_reads_whole_files_and_rejects_non_files, .timeout = 60)
{
	run_cases(RF_BACKEND_PREAD, false);
}

/* loader.direct_io: the same files, byte for byte, read with O_DIRECT into aligned buffers. */
Test(loader, uring_direct_io_reads_whole_files, .timeout = 60)
{
	run_cases(RF_BACKEND_IO_URING, true);
}

Test(loader, pread_direct_io_reads_whole_files, .timeout = 60)
{
	run_cases(RF_BACKEND_PREAD, true);
}

/* More files than io_depth and than free items: requests and items are recycled. */
static void run_many(rf_backend backend)
{
	char *dir = tfs_mkdtemp();
	enum { N = 300 };
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.backend = backend;
	cfg.loader.io_depth = 8;
	cfg.decoder.threads = 1;
	cfg.pipeline.queue_depth = N;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		write_file(dir, name, (size_t)(i * 37 % 5000) + 1);
	}
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf_pipeline_item_count(p), N);
	rf__item **items = load_all(p, backend, N);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		struct expect e = {name, (size_t)(i * 37 % 5000) + 1, 0, NULL};
		check_item(p, items[i], &e);
	}
	uint64_t bytes = 0;
	for (int i = 0; i < N; i++)
		bytes += (uint64_t)(i * 37 % 5000) + 1;
	cr_assert_eq(atomic_load(&p->bytes_read), bytes);
	free(items);
	rf_pipeline_close(p);
	tfs_rmtree(dir);
	free(dir);
}

Test(loader, uring_many_files_small_depth, .timeout = 60)
{
	run_many(RF_BACKEND_IO_URING);
}

Test(loader, pread_many_files, .timeout = 60)
{
	run_many(RF_BACKEND_PREAD);
}

/*
 * Linux 5.6-5.10 have no IORING_FEAT_EXT_ARG: liburing then waits with a
 * timeout SQE of its own, whose completion (LIBURING_UDATA_TIMEOUT) lands
 * among the loader's. hide_ext_arg makes this kernel look like one of those.
 */
static bool hide_ext_arg;

int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *params)
{
	static int (*real)(unsigned, struct io_uring *, struct io_uring_params *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "io_uring_queue_init_params");
	int rc = real(entries, ring, params);
	if (rc == 0 && hide_ext_arg)
		ring->features &= ~IORING_FEAT_EXT_ARG;
	return rc;
}

Test(loader, uring_on_kernels_without_ext_arg, .timeout = 60)
{
	hide_ext_arg = true;
	run_many(RF_BACKEND_IO_URING);
}

/* The loader's wait that fails with ENOMEM, counted from 1 (0: none). */
static int fail_wait;

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe, unsigned wait_nr,
				     struct __kernel_timespec *ts, sigset_t *sigmask)
{
	static int (*real)(struct io_uring *, struct io_uring_cqe **, unsigned, struct __kernel_timespec *,
			   sigset_t *);
	static int calls;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit_and_wait_timeout");
	if (fail_wait && ++calls == fail_wait)
		return -ENOMEM;
	return real(ring, cqe, wait_nr, ts, sigmask);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* The ring fails mid-run: the pipeline stops with the reason, and no file is left open. */
Test(loader, uring_ring_failure_closes_every_file, .timeout = 60)
{
	char *dir = tfs_mkdtemp();
	enum { N = 200 };
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		write_file(dir, name, 3000);
	}
	int before = open_fds();
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.backend = RF_BACKEND_IO_URING;
	cfg.loader.io_depth = 16;
	cfg.decoder.threads = 1;
	cfg.pipeline.queue_depth = N;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, dir), 0);
	cr_assert_eq(rf__pipeline_prepare(p), 0, "%s", rf_pipeline_error(p));
	fail_wait = 3; /* files are open and reads in flight by then */
	rf__loader_uring_run(p);
	cr_assert_str_eq(rf_pipeline_error(p), "io_uring_submit_and_wait: Cannot allocate memory");
	rf_pipeline_close(p);
	cr_assert_eq(open_fds(), before, "files left open after the ring failed");
	tfs_rmtree(dir);
	free(dir);
}

/*
 * A file another process holds a write lease on (a file server's, say):
 * opening it without blocking fails at once, and so must the item, instead
 * of the open being retried until the lease-break time (45 s) runs out.
 */
static void run_leased(rf_backend backend)
{
	char *dir = tfs_mkdtemp();
	const struct expect cases[] = {
		{"leased", 100, RF_EIO, "Resource temporarily unavailable"},
		{"plain", 100, 0, NULL},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < n; i++)
		write_file(dir, cases[i].name, cases[i].size);
	char *leased = tfs_path(dir, "leased");
	signal(SIGIO, SIG_IGN); /* the lease's holder, this process, is told of the break by SIGIO */
	int holder = open(leased, O_RDWR);
	cr_assert_geq(holder, 0);
	if (fcntl(holder, F_SETLEASE, F_WRLCK) != 0)
		cr_skip_test("no write lease on %s: %s", dir, strerror(errno));
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.loader.backend = backend;
	cfg.loader.io_depth = 4;
	cfg.decoder.threads = 1;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	add_cases(p, dir, cases, n);
	rf__item **items = load_all(p, backend, n);
	for (size_t i = 0; i < n; i++)
		check_item(p, items[i], &cases[i]);
	free(items);
	rf_pipeline_close(p);
	close(holder);
	free(leased);
	tfs_rmtree(dir);
	free(dir);
}

Test(loader, uring_fails_a_leased_file_at_once, .timeout = 20)
{
	run_leased(RF_BACKEND_IO_URING);
}

Test(loader, pread_fails_a_leased_file_at_once, .timeout = 20)
{
	run_leased(RF_BACKEND_PREAD);
}

/*
 * io_uring takes a 32-bit length: a file of 4 GiB or more is read in pieces,
 * not cut short; 16 MiB ones, so that a cancel waits for one piece at most.
 */
Test(loader, a_read_asks_for_at_most_16_mib)
{
	rf__item item = {.size = (5ull << 30) + 100};
	cr_assert_eq(rf__loader_read_len(&item), (size_t)16 << 20);
	item.len = (size_t)5 << 30;
	cr_assert_eq(rf__loader_read_len(&item), 100);
	item.direct = true; /* whole blocks */
	cr_assert_eq(rf__loader_read_len(&item), 4096);
	item.len = 0;
	cr_assert_eq(rf__loader_read_len(&item), (size_t)16 << 20);
}

Test(loader, auto_backend_names_itself)
{
	rf_config cfg;
	rf_config_init(&cfg);
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf__pipeline_prepare(p), 0);
	char why[128];
	if (rf__uring_probe(why, sizeof(why)) == 0) {
		cr_assert_eq(p->backend, RF_BACKEND_IO_URING);
		cr_assert_str_eq(p->backend_name, "io_uring");
	} else {
		cr_assert_eq(p->backend, RF_BACKEND_PREAD);
		cr_assert_not_null(strstr(p->backend_name, "io_uring unavailable"));
	}
	rf_pipeline_close(p);
}
