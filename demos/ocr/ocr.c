/*
 * ringfeed-ocr: Tesseract OCR as the inference stage, built on the public API only.
 *
 *   ringfeed-ocr [--config FILE] [--set SECTION.KEY=VALUE]... [--out DIR] [--threads N]
 *                [--naive] [--stats-json FILE] [--quiet] PATH...
 *
 * Pipeline mode (default): ringfeed reads and decodes the pages to gray 800x600 (output.*), and
 * rf_pipeline_run hands batches to N OCR threads, each with its own Tesseract handle. --naive:
 * N threads, each reads, decodes (stb_image) and recognizes one file at a time: the baseline. It
 * takes the same output.* size and channels, stretching a page only when its size differs
 * (output.fit is not applied), and the same source.extensions and limits.
 * --out DIR writes DIR/<file name of the input>.txt per page (inputs with the same file name in
 * different directories overwrite each other's text).
 *
 * Exit status: 0 completed (failed items, reported on stderr, allowed), 1 runtime failure,
 * 2 usage or config error.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <tesseract/capi.h>
#include <time.h>
#include <unistd.h>

#include "ringfeed/ringfeed.h"

/* Naive mode's decoder. */
#define STBI_NO_STDIO
#define STBI_NO_HDR /* its RLE reader spins forever on a cut file (CVE-2021-42715) */
#define STBI_NO_PIC
/* stb 2.27 formats one PNG failure string into a static buffer: a data race between threads. */
#define STBI_NO_FAILURE_STRINGS
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* The pages of make_documents.sh. Real scans: set output.width/height to their size, since
 * stretching to another aspect ratio distorts the glyphs. */
#define DEFAULT_WIDTH "800"
#define DEFAULT_HEIGHT "600"
/*
 * One page per batch: a page costs 0.1-0.5 s of OCR against microseconds of batch overhead, so
 * larger batches buy nothing, while single pages go to whichever OCR thread is free first (with
 * batches of 4, 6 pages on 2 threads would split 4 + 2).
 */
#define DEFAULT_BATCH "1"
/* Directories of scans often hold text files too (truth/ in make_documents.sh). */
#define DEFAULT_EXTENSIONS "jpg,jpeg,png,bmp,gif,tga,psd,pgm,pnm,ppm"

/* What infer.threads takes. */
#define THREADS_MAX 256

struct options {
	const char *config_path;
	const char *out_dir;
	const char *stats_json;
	int threads;
	bool threads_given; /* --threads: over the config file, as the command line should be */
	bool naive;
	bool quiet;
	char **sets;
	int set_count;
	char **inputs;
	int input_count;
};

/* State shared by the OCR threads of one run. */
struct ocr {
	const struct options *o;
	rf_config cfg;
	TessBaseAPI **handles; /* one per OCR thread, made on the thread's first page */
	int slots;
	atomic_int next_slot;
	atomic_ullong pages, failed, words, chars;
	atomic_ullong ocr_ns, init_ns, read_ns, decode_ns; /* summed over threads */
};

/* The calling thread's handle slot, valid while run == the struct ocr that assigned it. */
static _Thread_local struct {
	const struct ocr *run;
	int slot;
} thread_slot;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_seconds(atomic_ullong *total, double seconds)
{
	atomic_fetch_add(total, (unsigned long long)(seconds * 1e9));
}

static double seconds_of(atomic_ullong *total)
{
	return (double)atomic_load(total) / 1e9;
}

/* ---- options and config ------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "usage: ringfeed-ocr [--config FILE] [--set SECTION.KEY=VALUE]... [--out DIR]\n"
		     "                    [--threads N] [--naive] [--stats-json FILE] [--quiet] PATH...\n"
		     "PATH: an image, a directory (walked recursively, sorted) or @LIST.\n"
		     "--threads N: OCR threads, one Tesseract handle each (1 to 256, over the config file's\n"
		     "  infer.threads; default: online CPUs).\n"
		     "--naive: N threads that each read, decode and recognize one file at a time.\n"
		     "--out DIR: the text of each page as DIR/<file name>.txt.\n"
		     "Exit status: 0 completed, 1 runtime failure, 2 usage or config error.\n");
}

static int parse_threads(const char *s, int *out)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*end || end == s || n < 1 || n > THREADS_MAX) {
		fprintf(stderr, "ringfeed-ocr: --threads expects a number from 1 to %d\n", THREADS_MAX);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* Takes the value of option argv[i]; NULL (with a message) if there is none. */
static const char *option_value(int argc, char **argv, int i)
{
	if (i + 1 < argc)
		return argv[i + 1];
	fprintf(stderr, "ringfeed-ocr: %s needs a value\n", argv[i]);
	return NULL;
}

static int parse_option(int argc, char **argv, int *i, struct options *o)
{
	const char *a = argv[*i];
	if (strcmp(a, "--naive") == 0) {
		o->naive = true;
		return 0;
	}
	if (strcmp(a, "--quiet") == 0) {
		o->quiet = true;
		return 0;
	}
	const char *v = option_value(argc, argv, *i);
	if (!v)
		return -1;
	++*i;
	if (strcmp(a, "--config") == 0)
		o->config_path = v;
	else if (strcmp(a, "--set") == 0)
		o->sets[o->set_count++] = argv[*i];
	else if (strcmp(a, "--out") == 0)
		o->out_dir = v;
	else if (strcmp(a, "--stats-json") == 0)
		o->stats_json = v;
	else if (strcmp(a, "--threads") == 0) {
		o->threads_given = true;
		return parse_threads(v, &o->threads);
	}
	else {
		fprintf(stderr, "ringfeed-ocr: unknown option %s\n", a);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	*o = (struct options){.threads = cpus < 1 ? 1 : cpus > THREADS_MAX ? THREADS_MAX : (int)cpus};
	o->sets = calloc((size_t)argc, sizeof(char *));
	o->inputs = calloc((size_t)argc, sizeof(char *));
	if (!o->sets || !o->inputs)
		return -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (++i < argc)
				o->inputs[o->input_count++] = argv[i];
		} else if (strncmp(argv[i], "--", 2) == 0) {
			if (parse_option(argc, argv, &i, o) != 0)
				return -1;
		} else {
			o->inputs[o->input_count++] = argv[i];
		}
	}
	if (o->input_count == 0) {
		fprintf(stderr, "ringfeed-ocr: no input paths\n");
		return -1;
	}
	return 0;
}

/* This program's defaults, set before --config and --set so that both can override them. */
static int set_defaults(rf_config *cfg, int threads)
{
	char n[16];
	snprintf(n, sizeof(n), "%d", threads);
	const char *pairs[][2] = {
		{"output.channels", "1"},
		{"output.layout", "nhwc_u8"},
		{"output.fit", "stretch"},
		{"output.width", DEFAULT_WIDTH},
		{"output.height", DEFAULT_HEIGHT},
		{"batch.size", DEFAULT_BATCH},
		{"infer.threads", n},
		{"source.extensions", DEFAULT_EXTENSIONS},
	};
	char err[256];
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		if (rf_config_set(cfg, pairs[i][0], pairs[i][1], err, sizeof(err)) != 0) {
			fprintf(stderr, "ringfeed-ocr: default %s: %s\n", pairs[i][0], err);
			return -1;
		}
	}
	return 0;
}

static int build_config(const struct options *o, rf_config *cfg)
{
	char err[512];
	rf_config_init(cfg);
	if (set_defaults(cfg, o->threads) != 0)
		return -1;
	if (o->config_path && rf_config_load(cfg, o->config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfeed-ocr: config: %s\n", err);
		return -1;
	}
	if (o->threads_given)
		cfg->infer.threads = o->threads;
	for (int i = 0; i < o->set_count; i++) {
		if (rf_config_set_pair(cfg, o->sets[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "ringfeed-ocr: --set %s: %s\n", o->sets[i], err);
			return -1;
		}
	}
	if (rf_config_validate(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfeed-ocr: config: %s\n", err);
		return -1;
	}
	/* Tesseract takes interleaved 8-bit pixels: 1 (gray), 3 (RGB) or 4 (RGBA) bytes each. */
	if (cfg->output.layout != RF_LAYOUT_NHWC_U8) {
		fprintf(stderr, "ringfeed-ocr: Tesseract needs output.layout = nhwc_u8\n");
		return -1;
	}
	return 0;
}

/* ---- OCR ------------------------------------------------------------------------- */

static int ocr_init(struct ocr *r, const struct options *o, const rf_config *cfg)
{
	*r = (struct ocr){.o = o, .cfg = *cfg, .slots = cfg->infer.threads};
	r->handles = calloc((size_t)r->slots, sizeof(*r->handles));
	return r->handles ? 0 : -1;
}

static void ocr_destroy(struct ocr *r)
{
	for (int i = 0; i < r->slots; i++) {
		if (r->handles[i]) {
			TessBaseAPIEnd(r->handles[i]);
			TessBaseAPIDelete(r->handles[i]);
		}
	}
	free(r->handles);
}

/* Makes the calling thread's handle; NULL (with a message) on failure. */
static TessBaseAPI *new_handle(struct ocr *r)
{
	double t0 = now_s();
	int slot = atomic_fetch_add(&r->next_slot, 1);
	if (slot >= r->slots) {
		fprintf(stderr, "ringfeed-ocr: more OCR threads than the %d handle slots\n", r->slots);
		return NULL;
	}
	TessBaseAPI *h = TessBaseAPICreate();
	if (!h) {
		fprintf(stderr, "ringfeed-ocr: cannot create a Tesseract handle\n");
		return NULL;
	}
	r->handles[slot] = h; /* deleted by ocr_destroy even if Init fails */
	if (TessBaseAPIInit3(h, NULL, "eng") != 0) {
		fprintf(stderr, "ringfeed-ocr: Tesseract cannot load the \"eng\" language data "
				"(Debian: tesseract-ocr-eng)\n");
		return NULL;
	}
	/* Raw pixels carry no resolution: Tesseract estimates it and would say so on every page. */
	TessBaseAPISetVariable(h, "debug_file", "/dev/null");
	thread_slot.run = r;
	thread_slot.slot = slot;
	add_seconds(&r->init_ns, now_s() - t0);
	return h;
}

static TessBaseAPI *thread_handle(struct ocr *r)
{
	if (thread_slot.run == r)
		return r->handles[thread_slot.slot];
	return new_handle(r);
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Words (runs of non-space) and characters (UTF-8 code points that are not space). */
static void count_text(struct ocr *r, const char *text)
{
	unsigned long long words = 0, chars = 0;
	bool in_word = false;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		bool space = is_space(*p);
		if (!space && (*p & 0xC0) != 0x80)
			chars++;
		if (!space && !in_word)
			words++;
		in_word = !space;
	}
	atomic_fetch_add(&r->words, words);
	atomic_fetch_add(&r->chars, chars);
}

/* --out: DIR/<file name of path>.txt. */
static int write_text(const char *dir, const char *path, const char *text)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t len = strlen(dir) + strlen(name) + 6;
	char *out = malloc(len);
	if (!out)
		return -1;
	snprintf(out, len, "%s/%s.txt", dir, name);
	FILE *f = fopen(out, "w");
	bool ok = f && fputs(text, f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "ringfeed-ocr: cannot write %s: %s\n", out, strerror(errno));
	free(out);
	return ok ? 0 : -1;
}

static void item_failed(struct ocr *r, const char *path, const char *reason)
{
	fprintf(stderr, "ringfeed-ocr: failed %s: %s\n", path, reason);
	atomic_fetch_add(&r->failed, 1);
}

/*
 * Recognizes one page of w x h pixels of channels bytes each. A page Tesseract cannot read is a
 * failed item; 0, or -1 when the run must stop (no handle, output not writable).
 */
static int ocr_page(struct ocr *r, const uint8_t *px, int w, int h, int channels, const char *path)
{
	TessBaseAPI *api = thread_handle(r);
	if (!api)
		return -1;
	double t0 = now_s();
	TessBaseAPISetImage(api, px, w, h, channels, w * channels);
	char *text = TessBaseAPIGetUTF8Text(api);
	add_seconds(&r->ocr_ns, now_s() - t0);
	if (!text) {
		item_failed(r, path, "Tesseract could not recognize the page");
		return 0;
	}
	count_text(r, text);
	int rc = r->o->out_dir ? write_text(r->o->out_dir, path, text) : 0;
	TessDeleteText(text);
	if (rc == 0)
		atomic_fetch_add(&r->pages, 1);
	return rc;
}

/* ---- pipeline mode ------------------------------------------------------------ */

/* rf_infer_fn: reports the batch's failed items, then recognizes its pages one by one. */
static int on_batch(const rf_batch *b, void *user)
{
	struct ocr *r = user;
	for (size_t i = 0; i < rf_batch_error_count(b); i++) {
		const rf_item_error *e = rf_batch_error(b, i);
		item_failed(r, e->path, e->reason);
	}
	const uint8_t *data = rf_batch_data(b);
	size_t slot = rf_batch_slot_bytes(b);
	const rf_config *cfg = &r->cfg;
	for (size_t i = 0; i < rf_batch_count(b); i++)
		if (ocr_page(r, data + i * slot, cfg->output.width, cfg->output.height, cfg->output.channels,
			     rf_batch_path(b, i)) != 0)
			return -1;
	return 0;
}

static int add_inputs(rf_pipeline *p, const struct options *o)
{
	for (int i = 0; i < o->input_count; i++) {
		if (rf_pipeline_add(p, o->inputs[i]) != 0) {
			fprintf(stderr, "ringfeed-ocr: %s\n", rf_pipeline_error(p));
			return -1;
		}
	}
	return 0;
}

/*
 * Runs the pipeline to the end; fills s and seconds. s's strings outlive the
 * pipeline: the backend name is copied into backend. Returns the exit status.
 */
static int run_pipeline(struct ocr *r, rf_stats *s, double *seconds, char *backend, size_t backend_len)
{
	rf_pipeline *p = NULL;
	int status = EXIT_RUNTIME;
	if (rf_pipeline_create(&p, &r->cfg) != 0) {
		fprintf(stderr, "ringfeed-ocr: cannot create the pipeline\n");
		return EXIT_RUNTIME;
	}
	if (add_inputs(p, r->o) != 0) {
		rf_pipeline_close(p);
		return EXIT_USAGE;
	}
	double t0 = now_s();
	int rc = rf_pipeline_start(p);
	if (rc == 0)
		rc = rf_pipeline_run(p, on_batch, r);
	*seconds = now_s() - t0;
	rf_pipeline_stats(p, s);
	snprintf(backend, backend_len, "%s", s->loader_backend ? s->loader_backend : "");
	s->loader_backend = backend; /* the pipeline's own string goes with rf_pipeline_close */
	if (rc == 0)
		status = 0;
	else if (rc != RF_EUSER) /* on_batch said why already */
		fprintf(stderr, "ringfeed-ocr: %s\n",
			rf_pipeline_error(p)[0] ? rf_pipeline_error(p) : rf_strerror(rc));
	rf_pipeline_close(p);
	return status;
}

/* ---- naive mode ------------------------------------------------------------------ */

struct paths {
	char **v;
	size_t n, cap;
};

static int push_path(struct paths *ps, const char *path)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 64;
		char **grown = realloc(ps->v, cap * sizeof(*grown));
		if (!grown)
			return -1;
		ps->v = grown;
		ps->cap = cap;
	}
	if (!(ps->v[ps->n] = strdup(path)))
		return -1;
	ps->n++;
	return 0;
}

static void free_paths(struct paths *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->v[i]);
	free(ps->v);
}

/* source.extensions: a comma list, case-insensitive; "" takes every file. */
static bool extension_allowed(const char *list, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!list[0])
		return true;
	if (!dot)
		return false;
	size_t elen = strlen(dot + 1);
	for (const char *p = list; *p;) {
		while (*p == ',' || *p == ' ' || *p == '.')
			p++;
		size_t n = strcspn(p, ", ");
		if (n && n == elen && strncasecmp(p, dot + 1, n) == 0)
			return true;
		p += n;
	}
	return false;
}

static int not_hidden(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* As the library's walk (lib/source.c): deeper is an error, not a silent skip. */
#define WALK_DEPTH_MAX 64

/* The directories from the walk's root down to the one being read: a link back to one is skipped. */
struct dir_chain {
	dev_t dev[WALK_DEPTH_MAX + 1];
	ino_t ino[WALK_DEPTH_MAX + 1];
	int depth;
};

static bool on_chain(const struct dir_chain *c, const struct stat *st)
{
	for (int i = 0; i < c->depth; i++)
		if (c->dev[i] == st->st_dev && c->ino[i] == st->st_ino)
			return true;
	return false;
}

/* The order rf_pipeline_add gives: entries sorted by name, hidden ones skipped, recursively. */
static int walk(struct paths *ps, const char *dir, const char *exts, struct dir_chain *chain)
{
	if (chain->depth > WALK_DEPTH_MAX) {
		fprintf(stderr, "ringfeed-ocr: %s: cannot read directory: too deep\n", dir);
		return -1;
	}
	struct dirent **list;
	int n = scandir(dir, &list, not_hidden, by_name);
	if (n < 0) {
		fprintf(stderr, "ringfeed-ocr: %s: cannot read directory: %s\n", dir, strerror(errno));
		return -1;
	}
	size_t dlen = strlen(dir);
	bool slash = dlen > 0 && dir[dlen - 1] == '/';
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;
		if (rc == 0 && snprintf(path, sizeof(path), slash ? "%s%s" : "%s/%s", dir, list[i]->d_name) >=
				       (int)sizeof(path)) {
			fprintf(stderr, "ringfeed-ocr: %s/%s: path too long\n", dir, list[i]->d_name);
			rc = -1;
		}
		if (rc == 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (!on_chain(chain, &st)) {
				chain->dev[chain->depth] = st.st_dev;
				chain->ino[chain->depth++] = st.st_ino;
				rc = walk(ps, path, exts, chain);
				chain->depth--;
			}
		} else if (rc == 0 && extension_allowed(exts, list[i]->d_name)) {
			rc = push_path(ps, path);
		}
		free(list[i]);
	}
	free(list);
	return rc;
}

static int add_list_file(struct paths *ps, const char *list)
{
	FILE *f = fopen(list, "r");
	if (!f) {
		fprintf(stderr, "ringfeed-ocr: %s: cannot read list file: %s\n", list, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len > 0 && line[0] != '#')
			rc = push_path(ps, line);
	}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "ringfeed-ocr: %s: read error\n", list);
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

static int list_inputs(struct paths *ps, const struct options *o, const char *exts)
{
	for (int i = 0; i < o->input_count; i++) {
		const char *in = o->inputs[i];
		struct stat st;
		int rc;
		if (in[0] == '@')
			rc = add_list_file(ps, in + 1);
		else if (stat(in, &st) == 0 && S_ISDIR(st.st_mode)) {
			struct dir_chain chain = {.dev = {st.st_dev}, .ino = {st.st_ino}, .depth = 1};
			rc = walk(ps, in, exts, &chain);
		}
		else
			rc = push_path(ps, in);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* One naive thread's reusable buffers. */
struct naive_buf {
	uint8_t *file;
	size_t file_cap;
	uint8_t *px;
	size_t px_cap;
};

static int reserve(uint8_t **p, size_t *cap, size_t n)
{
	if (n <= *cap)
		return 0;
	uint8_t *grown = realloc(*p, n);
	if (!grown)
		return -1;
	*p = grown;
	*cap = n;
	return 0;
}

/* Reads the whole file into buf->file; 0, or -1 with reason set. */
static int read_file(const rf_config *cfg, const char *path, struct naive_buf *buf, size_t *len, char *reason,
		     size_t reason_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(reason, reason_len, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int rc = -1;
	if ((uint64_t)st.st_size > cfg->limits.max_file_bytes || st.st_size > INT_MAX)
		snprintf(reason, reason_len, "file of %lld bytes, over limits.max_file_bytes",
			 (long long)st.st_size);
	else if (reserve(&buf->file, &buf->file_cap, (size_t)st.st_size + 1) != 0)
		snprintf(reason, reason_len, "out of memory");
	else
		rc = 0;
	size_t done = 0;
	while (rc == 0 && done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf->file + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(reason, reason_len, "read failed: %s",
				 n < 0 ? strerror(errno) : "file shrank");
			rc = -1;
		}
		done += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	*len = done;
	return rc;
}

static const char *format_name(const uint8_t *d, size_t len)
{
	if (len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
		return "JPEG";
	if (len >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "PNG";
	return NULL;
}

/* Decodes to cfg's channels and, if the size differs, stretches to the output size into buf->px. */
static int decode_page(const rf_config *cfg, const uint8_t *data, size_t len, struct naive_buf *buf,
		       char *reason, size_t reason_len)
{
	int w, h, comp, ch = cfg->output.channels, ow = cfg->output.width, oh = cfg->output.height;
	const char *fmt = format_name(data, len);
	if (!stbi_info_from_memory(data, (int)len, &w, &h, &comp)) {
		snprintf(reason, reason_len, fmt ? "corrupt %s header" : "not an image stb_image can decode",
			 fmt);
		return -1;
	}
	if ((uint64_t)w * (uint64_t)h > cfg->limits.max_pixels) {
		snprintf(reason, reason_len, "image is %dx%d, over limits.max_pixels", w, h);
		return -1;
	}
	uint8_t *px = stbi_load_from_memory(data, (int)len, &w, &h, &comp, ch);
	if (!px) {
		snprintf(reason, reason_len, "corrupt or truncated %s data", fmt ? fmt : "image");
		return -1;
	}
	int rc = reserve(&buf->px, &buf->px_cap, (size_t)ow * (size_t)oh * (size_t)ch);
	if (rc != 0)
		snprintf(reason, reason_len, "out of memory");
	else if (w == ow && h == oh)
		memcpy(buf->px, px, (size_t)ow * (size_t)oh * (size_t)ch);
	else if (!stbir_resize_uint8(px, w, h, 0, buf->px, ow, oh, 0, ch)) {
		snprintf(reason, reason_len, "resize from %dx%d failed", w, h);
		rc = -1;
	}
	stbi_image_free(px);
	return rc;
}

struct naive {
	struct ocr *r;
	const struct paths *ps;
	atomic_size_t next;
	atomic_bool stop;
};

/* Read, decode, recognize; one file at a time. */
static int naive_item(struct naive *nv, struct naive_buf *buf, const char *path)
{
	struct ocr *r = nv->r;
	const rf_config *cfg = &r->cfg;
	char reason[256];
	size_t len;
	double t0 = now_s();
	int rc = read_file(cfg, path, buf, &len, reason, sizeof(reason));
	double t1 = now_s();
	add_seconds(&r->read_ns, t1 - t0);
	if (rc == 0) {
		rc = decode_page(cfg, buf->file, len, buf, reason, sizeof(reason));
		add_seconds(&r->decode_ns, now_s() - t1);
	}
	if (rc != 0) {
		item_failed(r, path, reason);
		return 0;
	}
	return ocr_page(r, buf->px, cfg->output.width, cfg->output.height, cfg->output.channels, path);
}

static void *naive_thread(void *arg)
{
	struct naive *nv = arg;
	struct naive_buf buf = {0};
	while (!atomic_load(&nv->stop)) {
		size_t i = atomic_fetch_add(&nv->next, 1);
		if (i >= nv->ps->n)
			break;
		if (naive_item(nv, &buf, nv->ps->v[i]) != 0)
			atomic_store(&nv->stop, true);
	}
	free(buf.file);
	free(buf.px);
	return NULL;
}

/* Runs the naive loop on r->slots threads; fills items and seconds. Returns the exit status. */
static int run_naive(struct ocr *r, size_t *items, double *seconds)
{
	struct paths ps = {0};
	if (list_inputs(&ps, r->o, r->cfg.source.extensions) != 0) {
		free_paths(&ps);
		return EXIT_USAGE;
	}
	*items = ps.n;
	struct naive nv = {.r = r, .ps = &ps};
	pthread_t *threads = calloc((size_t)r->slots, sizeof(*threads));
	int started = 0;
	double t0 = now_s();
	while (threads && started < r->slots &&
	       pthread_create(&threads[started], NULL, naive_thread, &nv) == 0)
		started++;
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	*seconds = now_s() - t0;
	free(threads);
	free_paths(&ps);
	if (started < r->slots) {
		fprintf(stderr, "ringfeed-ocr: cannot start %d threads\n", r->slots);
		return EXIT_RUNTIME;
	}
	return atomic_load(&nv.stop) ? EXIT_RUNTIME : 0;
}

/* ---- report ------------------------------------------------------------------------ */

struct result {
	const char *mode;
	double seconds;
	unsigned long long items;
	const rf_stats *stats; /* pipeline mode only */
};

static double per_second(unsigned long long n, double seconds)
{
	return seconds > 0 ? (double)n / seconds : 0;
}

static void print_pipeline_stats(FILE *out, const rf_stats *s)
{
	fprintf(out, "loader backend: %s\n", s->loader_backend);
	fprintf(out, "OCR threads starved (waiting for a batch): %.1f%% of their time\n",
		100.0 * s->starved_fraction);
	fprintf(out, "%-8s %7s %7s %9s %9s %9s %9s\n", "stage", "threads", "items", "busy s", "starved s",
		"blocked s", "on-CPU s");
	for (int i = 0; i < RF_STAGE_COUNT; i++) {
		const rf_stage_stats *st = &s->stages[i];
		fprintf(out, "%-8s %7d %7llu %9.3f %9.3f %9.3f %9.3f\n", st->name, st->threads,
			(unsigned long long)st->items, st->busy_seconds, st->starved_seconds,
			st->blocked_seconds, st->cpu_seconds);
	}
	char advice[256];
	if (rf_stats_bottleneck(s, advice, sizeof(advice)) >= 0)
		fprintf(out, "bottleneck: %s\n", advice);
}

static void print_summary(FILE *out, struct ocr *r, const struct result *res)
{
	const rf_config *cfg = &r->cfg;
	unsigned long long pages = atomic_load(&r->pages);
	fprintf(out, "ringfeed-ocr %s: %d OCR thread%s, pages %dx%dx%d, batch %d\n", res->mode, r->slots,
		r->slots == 1 ? "" : "s",
		cfg->output.width, cfg->output.height, cfg->output.channels, cfg->batch.size);
	fprintf(out, "images %llu of %llu (failed %llu)\n", pages, res->items, atomic_load(&r->failed));
	fprintf(out, "seconds %.3f, images/s %.3f\n", res->seconds, per_second(pages, res->seconds));
	fprintf(out, "words %llu, characters %llu\n", atomic_load(&r->words), atomic_load(&r->chars));
	fprintf(out, "thread-seconds: OCR %.3f, Tesseract init %.3f", seconds_of(&r->ocr_ns),
		seconds_of(&r->init_ns));
	if (!res->stats)
		fprintf(out, ", read %.3f, decode + resize %.3f", seconds_of(&r->read_ns),
			seconds_of(&r->decode_ns));
	fprintf(out, "\n");
	if (res->stats)
		print_pipeline_stats(out, res->stats);
}

static cJSON *stage_json(const rf_stage_stats *st)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "threads", st->threads);
	cJSON_AddNumberToObject(o, "items", (double)st->items);
	cJSON_AddNumberToObject(o, "busy_seconds", st->busy_seconds);
	cJSON_AddNumberToObject(o, "starved_seconds", st->starved_seconds);
	cJSON_AddNumberToObject(o, "blocked_seconds", st->blocked_seconds);
	cJSON_AddNumberToObject(o, "cpu_seconds", st->cpu_seconds);
	return o;
}

static void add_pipeline_json(cJSON *root, const rf_stats *s)
{
	cJSON_AddNumberToObject(root, "starved_fraction", s->starved_fraction);
	cJSON_AddNumberToObject(root, "first_batch_seconds", s->first_batch_seconds);
	cJSON_AddNumberToObject(root, "wall_seconds", s->wall_seconds);
	cJSON_AddStringToObject(root, "loader_backend", s->loader_backend);
	cJSON *stages = cJSON_AddObjectToObject(root, "stages");
	for (int i = 0; i < RF_STAGE_COUNT; i++)
		cJSON_AddItemToObject(stages, s->stages[i].name, stage_json(&s->stages[i]));
	char advice[256];
	int stage = rf_stats_bottleneck(s, advice, sizeof(advice));
	if (stage >= 0) {
		cJSON *b = cJSON_AddObjectToObject(root, "bottleneck");
		cJSON_AddStringToObject(b, "stage", s->stages[stage].name);
		cJSON_AddStringToObject(b, "advice", advice);
	}
}

static cJSON *build_json(struct ocr *r, const struct result *res)
{
	const rf_config *cfg = &r->cfg;
	unsigned long long pages = atomic_load(&r->pages);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "mode", res->mode);
	cJSON_AddNumberToObject(root, "threads", r->slots);
	cJSON_AddNumberToObject(root, "width", cfg->output.width);
	cJSON_AddNumberToObject(root, "height", cfg->output.height);
	cJSON_AddNumberToObject(root, "channels", cfg->output.channels);
	cJSON_AddNumberToObject(root, "batch_size", cfg->batch.size);
	cJSON_AddNumberToObject(root, "items", (double)res->items);
	cJSON_AddNumberToObject(root, "images", (double)pages);
	cJSON_AddNumberToObject(root, "failed", (double)atomic_load(&r->failed));
	cJSON_AddNumberToObject(root, "seconds", res->seconds);
	cJSON_AddNumberToObject(root, "images_per_second", per_second(pages, res->seconds));
	cJSON_AddNumberToObject(root, "words", (double)atomic_load(&r->words));
	cJSON_AddNumberToObject(root, "characters", (double)atomic_load(&r->chars));
	cJSON_AddNumberToObject(root, "ocr_seconds", seconds_of(&r->ocr_ns));
	cJSON_AddNumberToObject(root, "ocr_init_seconds", seconds_of(&r->init_ns));
	if (res->stats) {
		add_pipeline_json(root, res->stats);
	} else {
		cJSON_AddNumberToObject(root, "read_seconds", seconds_of(&r->read_ns));
		cJSON_AddNumberToObject(root, "decode_seconds", seconds_of(&r->decode_ns));
	}
	return root;
}

static int write_json(const char *path, struct ocr *r, const struct result *res)
{
	cJSON *root = build_json(r, res);
	char *text = root ? cJSON_Print(root) : NULL;
	FILE *f = text ? fopen(path, "w") : NULL;
	bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "ringfeed-ocr: cannot write %s\n", path);
	free(text);
	cJSON_Delete(root);
	return ok ? 0 : -1;
}

/* ---- main ---------------------------------------------------------------------------- */

static int make_out_dir(const char *dir)
{
	if (!dir || mkdir(dir, 0777) == 0 || errno == EEXIST)
		return 0;
	fprintf(stderr, "ringfeed-ocr: cannot create %s: %s\n", dir, strerror(errno));
	return -1;
}

static int run(const struct options *o, const rf_config *cfg)
{
	struct ocr r;
	if (ocr_init(&r, o, cfg) != 0)
		return EXIT_RUNTIME;
	rf_stats s = {0};
	char backend[160] = "";
	struct result res = {.mode = o->naive ? "naive" : "pipeline"};
	int status;
	if (o->naive) {
		size_t items = 0;
		status = run_naive(&r, &items, &res.seconds);
		res.items = items;
	} else {
		status = run_pipeline(&r, &s, &res.seconds, backend, sizeof(backend));
		res.items = s.items;
		res.stats = &s;
	}
	if (status != EXIT_USAGE && !o->quiet)
		print_summary(stdout, &r, &res);
	if (status != EXIT_USAGE && o->stats_json && write_json(o->stats_json, &r, &res) != 0)
		status = EXIT_RUNTIME;
	ocr_destroy(&r);
	return status;
}

/*
 * Debian's Tesseract is built with OpenMP: each handle would start a team of one thread per CPU,
 * so N handles would run N x CPUs threads fighting for the cores (measured here: 4x slower per
 * page on 2 CPUs). One thread per handle, parallel across handles, is Tesseract's advice for
 * several instances. The OpenMP runtime reads OMP_THREAD_LIMIT once, when it is loaded (before
 * main), so the setting takes effect only in a fresh image of this program: exec it once.
 */
static void limit_openmp(char **argv)
{
	const char *v = getenv("OMP_THREAD_LIMIT");
	if (v && strcmp(v, "1") == 0)
		return;
	setenv("OMP_THREAD_LIMIT", "1", 1);
	execv("/proc/self/exe", argv);
	fprintf(stderr,
		"ringfeed-ocr: warning: cannot restart with OMP_THREAD_LIMIT=1 (%s): OCR will be slow\n",
		strerror(errno));
}

int main(int argc, char **argv)
{
	limit_openmp(argv);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	struct options o;
	rf_config cfg;
	int status = EXIT_USAGE;
	if (parse_args(argc, argv, &o) != 0)
		usage(stderr);
	else if (build_config(&o, &cfg) == 0)
		status = make_out_dir(o.out_dir) == 0 ? run(&o, &cfg) : EXIT_RUNTIME;
	free(o.sets);
	free(o.inputs);
	return status;
}
