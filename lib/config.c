/* Config defaults, the key table, INI loading (inih) and validation. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "batcher.h"
#include "decode.h"
#include "ringfeed/ringfeed.h"

void rf_config_init(rf_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->loader.threads = 0; /* auto */
	cfg->loader.io_depth = 0; /* auto */
	cfg->loader.backend = RF_BACKEND_AUTO;
	cfg->decoder.threads = 0;
	cfg->output.width = 224;
	cfg->output.height = 224;
	cfg->output.channels = 3;
	cfg->output.fit = RF_FIT_COVER;
	cfg->output.layout = RF_LAYOUT_NHWC_U8;
	for (int c = 0; c < 4; c++)
		cfg->output.std[c] = 1.0f;
	cfg->batch.size = 32;
	cfg->batch.ordered = true;
	cfg->infer.threads = 1;
	cfg->limits.max_pixels = 100000000;
	cfg->limits.max_file_bytes = 256u << 20;
	cfg->pipeline.on_error = RF_ON_ERROR_SKIP;
	cfg->pipeline.prefetch_batches = 2;
	cfg->source.epochs = 1;
	cfg->source.shard_count = 1;
	cfg->source.equal_shards = RF_SHARDS_PAD;
}

enum key_type { K_INT, K_INT_AUTO, K_U64, K_BOOL, K_ENUM, K_FLOATS, K_STRING };

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	long long min, max;
	int auto_value; /* K_INT_AUTO: what "auto" stores */
	const char *const *choices; /* K_ENUM: names in enum order, NULL-terminated */
	const char *help;
};

static const char *const backends[] = {"auto", "io_uring", "pread", NULL};
static const char *const fits[] = {"cover", "stretch", NULL};
static const char *const layouts[] = {"nhwc_u8", "nchw_f32", NULL};
static const char *const on_errors[] = {"skip", "fail", NULL};
static const char *const shard_modes[] = {"pad", "drop", "none", NULL};

#define OFF(field) offsetof(rf_config, field)

static const struct key_def keys[] = {
	{"loader.threads", K_INT_AUTO, OFF(loader.threads), 1, 256, 0, NULL, "loader threads or auto"},
	{"loader.io_depth", K_INT_AUTO, OFF(loader.io_depth), 1, 4096, 0, NULL, "reads in flight per loader or auto"},
	{"loader.backend", K_ENUM, OFF(loader.backend), 0, 0, 0, backends, "auto|io_uring|pread"},
	{"loader.direct_io", K_BOOL, OFF(loader.direct_io), 0, 0, 0, NULL, "O_DIRECT reads (no page cache)"},
	{"decoder.threads", K_INT_AUTO, OFF(decoder.threads), 1, 256, 0, NULL, "decoder threads or auto"},
	{"output.width", K_INT, OFF(output.width), 1, 16384, 0, NULL, "output width in pixels"},
	{"output.height", K_INT, OFF(output.height), 1, 16384, 0, NULL, "output height in pixels"},
	{"output.channels", K_INT, OFF(output.channels), 1, 4, 0, NULL, "1, 3 or 4"},
	{"output.fit", K_ENUM, OFF(output.fit), 0, 0, 0, fits, "cover|stretch"},
	{"output.layout", K_ENUM, OFF(output.layout), 0, 0, 0, layouts, "nhwc_u8|nchw_f32"},
	{"output.mean", K_FLOATS, OFF(output.mean), 0, 0, 0, NULL, "per-channel mean, 0..255 scale"},
	{"output.std", K_FLOATS, OFF(output.std), 0, 0, 0, NULL, "per-channel std, 0..255 scale"},
	{"batch.size", K_INT, OFF(batch.size), 1, 65536, 0, NULL, "images per batch"},
	{"batch.ordered", K_BOOL, OFF(batch.ordered), 0, 0, 0, NULL, "deliver in input order"},
	{"batch.drop_last", K_BOOL, OFF(batch.drop_last), 0, 0, 0, NULL, "drop a short last batch"},
	{"infer.threads", K_INT, OFF(infer.threads), 1, 256, 0, NULL, "threads for rf_pipeline_run"},
	{"limits.max_pixels", K_U64, OFF(limits.max_pixels), 1, 0, 0, NULL, "largest width*height"},
	{"limits.max_file_bytes", K_U64, OFF(limits.max_file_bytes), 1, 0, 0, NULL, "largest file"},
	{"limits.memory_mb", K_U64, OFF(limits.memory_mb), 0, 1ll << 30, 0, NULL,
	 "MiB for batches, staging and file buffers; 0 = no cap"},
	{"pipeline.on_error", K_ENUM, OFF(pipeline.on_error), 0, 0, 0, on_errors, "skip|fail"},
	{"pipeline.prefetch_batches", K_INT, OFF(pipeline.prefetch_batches), 1, 64, 0, NULL,
	 "batches that can wait ready beyond those filled and held"},
	{"pipeline.queue_depth", K_INT_AUTO, OFF(pipeline.queue_depth), 1, 65536, 0, NULL,
	 "decode queue capacity or auto"},
	{"source.extensions", K_STRING, OFF(source.extensions), 0, 0, 0, NULL,
	 "directory walk filter, e.g. jpg,png; empty = all"},
	{"source.epochs", K_INT, OFF(source.epochs), 1, 1000000000, 0, NULL, "passes over the inputs"},
	{"source.shuffle", K_BOOL, OFF(source.shuffle), 0, 0, 0, NULL, "seeded permutation per epoch"},
	{"source.seed", K_U64, OFF(source.seed), 0, 0, 0, NULL, "shuffle seed"},
	{"source.shard_index", K_INT_AUTO, OFF(source.shard_index), 0, 65535, -1, NULL,
	 "this process's shard or auto"},
	{"source.shard_count", K_INT, OFF(source.shard_count), 1, 65536, 0, NULL, "number of shards"},
	{"source.equal_shards", K_ENUM, OFF(source.equal_shards), 0, 0, 0, shard_modes, "pad|drop|none"},
};

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcasecmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Writes a message into err (which may be NULL) and returns RF_ECONFIG. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_len, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return RF_ECONFIG;
}

static int parse_ll(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

/* "a" or "a,b,c[,d]": one value is repeated for every channel; finite, within float range. */
static int parse_floats(const char *s, float out[4])
{
	float v[4];
	int n = 0;
	const char *p = s;
	for (;;) {
		char *end;
		errno = 0;
		double d = strtod(p, &end);
		if (errno || end == p || n == 4 || !isfinite(d) || fabs(d) > FLT_MAX)
			return -1;
		v[n++] = (float)d;
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -1;
		p = end + 1;
	}
	if (n == 2)
		return -1; /* one for all channels, or one per colour channel */
	for (int c = 0; c < 4; c++)
		out[c] = v[n == 1 ? 0 : (c < n ? c : n - 1)];
	return 0;
}

static int set_value(rf_config *cfg, const struct key_def *k, const char *value, char *err, size_t err_len)
{
	char *field = (char *)cfg + k->offset;
	long long v;
	switch (k->type) {
	case K_INT_AUTO:
		if (strcasecmp(value, "auto") == 0) {
			*(int *)field = k->auto_value;
			return 0;
		}
		/* fall through */
	case K_INT:
		if (parse_ll(value, &v) != 0 || v < k->min || v > k->max) {
			char range[64];
			snprintf(range, sizeof(range), "an integer from %lld to %lld%s", k->min, k->max,
				 k->type == K_INT_AUTO ? " or auto" : "");
			return fail(err, err_len, "%s: expected %s", k->name, range);
		}
		/* Caught here, not only by rf_config_validate, so a config file's error names its line. */
		if (k->offset == OFF(output.channels) && v == 2)
			return fail(err, err_len, "%s: expected 1, 3 or 4, got 2", k->name);
		*(int *)field = (int)v;
		return 0;
	case K_U64: {
		char *end;
		errno = 0;
		/* Digits only: strtoull would take " -5" as 2^64 - 5. */
		unsigned long long u = strtoull(value, &end, 10);
		if (errno || end == value || *end || !isdigit((unsigned char)value[0]) ||
		    u < (unsigned long long)k->min)
			return fail(err, err_len, "%s: expected %s integer, got '%s'", k->name,
				    k->min ? "a positive" : "a non-negative", value);
		if (k->max && u > (unsigned long long)k->max)
			return fail(err, err_len, "%s: at most %lld, got '%s'", k->name, k->max, value);
		*(uint64_t *)field = u;
		return 0;
	}
	case K_BOOL:
		if (parse_bool(value, (bool *)field) != 0)
			return fail(err, err_len, "%s: expected true or false, got '%s'", k->name, value);
		return 0;
	case K_ENUM:
		for (int i = 0; k->choices[i]; i++) {
			if (strcasecmp(value, k->choices[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		return fail(err, err_len, "%s: expected %s", k->name, k->help);
	case K_FLOATS:
		if (parse_floats(value, (float *)field) != 0)
			return fail(err, err_len, "%s: expected 1, 3 or 4 comma-separated finite numbers, got '%s'",
				    k->name, value);
		return 0;
	case K_STRING:
		if (strlen(value) >= sizeof(cfg->source.extensions))
			return fail(err, err_len, "%s: value too long: '%s'", k->name, value);
		strcpy(field, value);
		return 0;
	}
	return RF_ECONFIG;
}

int rf_config_set(rf_config *cfg, const char *key, const char *value, char *err, size_t err_len)
{
	if (!cfg || !key || !value)
		return fail(err, err_len, "missing key or value");
	const struct key_def *k = find_key(key);
	if (!k)
		return fail(err, err_len, "unknown key '%s'", key);
	if (value[0] == '\0' && k->type != K_STRING)
		return fail(err, err_len, "%s: empty value", k->name);
	rf_config tmp = *cfg;
	int rc = set_value(&tmp, k, value, err, err_len);
	if (rc == 0)
		*cfg = tmp;
	return rc;
}

int rf_config_set_pair(rf_config *cfg, const char *assignment, char *err, size_t err_len)
{
	char key[128];
	const char *eq = assignment ? strchr(assignment, '=') : NULL;
	size_t klen = eq ? (size_t)(eq - assignment) : 0;
	if (klen == 0 || klen >= sizeof(key))
		return fail(err, err_len, "expected SECTION.KEY=VALUE, got '%s'", assignment ? assignment : "");
	memcpy(key, assignment, klen);
	key[klen] = '\0';
	return rf_config_set(cfg, key, eq + 1, err, err_len);
}

struct ini_ctx {
	rf_config cfg;
	FILE *file;
	int line;       /* lines read so far */
	int error_line; /* line of the first key that failed, 0 if none */
	int long_line;  /* first line too long for inih that is not a comment, 0 if none */
	char msg[256];
};

/*
 * inih's line reader. Counting lines here tells the handler where it is
 * (Debian's inih is built without INI_HANDLER_LINENO), and dropping leading
 * blanks stops an indented key from being read as a continuation of the
 * previous value (inih's multiline mode is on in that build).
 */
static char *read_line(char *buf, int size, void *stream)
{
	struct ini_ctx *ctx = stream;
	if (!fgets(buf, size, ctx->file))
		return NULL;
	ctx->line++;
	size_t skip = strspn(buf, " \t"), len = strlen(buf);
	int c;
	if (len + 1 == (size_t)size && buf[len - 1] != '\n' && (c = fgetc(ctx->file)) != '\n' && c != EOF) {
		/* Longer than inih's buffer: the rest must not pass for a line of its own. */
		while ((c = fgetc(ctx->file)) != EOF && c != '\n')
			;
		if (buf[skip] != ';' && buf[skip] != '#') {
			if (!ctx->long_line)
				ctx->long_line = ctx->line;
			snprintf(buf, (size_t)size, "\x01\n"); /* a syntax error for inih, reported as too long */
			return buf;
		}
	}
	if (skip)
		memmove(buf, buf + skip, strlen(buf + skip) + 1);
	return buf;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	if (ctx->error_line)
		return 0; /* only the first error is reported */
	char key[128];
	char msg[sizeof(ctx->msg)];
	int rc = 0;
	if (!section[0]) {
		snprintf(msg, sizeof(msg), "key '%s' outside any [section]", name);
		rc = RF_ECONFIG;
	} else if (snprintf(key, sizeof(key), "%s.%s", section, name) >= (int)sizeof(key)) {
		snprintf(msg, sizeof(msg), "key too long");
		rc = RF_ECONFIG;
	} else {
		rc = rf_config_set(&ctx->cfg, key, value, msg, sizeof(msg));
	}
	if (rc != 0) {
		ctx->error_line = ctx->line;
		memcpy(ctx->msg, msg, sizeof(msg));
	}
	return rc == 0;
}

int rf_config_load(rf_config *cfg, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	struct stat st;
	if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		const char *why = !f ? strerror(errno) : "not a regular file";
		char reason[128];
		snprintf(reason, sizeof(reason), "%s", why);
		if (f)
			fclose(f);
		return fail(err, err_len, "%s: %s", path, reason);
	}
	struct ini_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		fclose(f);
		return RF_ENOMEM;
	}
	ctx->cfg = *cfg;
	ctx->file = f;
	int line = ini_parse_stream(read_line, ctx, on_ini_entry, ctx);
	bool read_error = ferror(f);
	fclose(f);
	int rc = 0;
	if (read_error) {
		rc = fail(err, err_len, "%s: read error", path);
	} else if (line != 0) {
		/* inih returns the first bad line: a key we rejected, or a syntax error before it. */
		char too_long[64];
		snprintf(too_long, sizeof(too_long), "line longer than %d bytes", INI_MAX_LINE - 1);
		const char *what = line == ctx->error_line  ? ctx->msg
				   : line == ctx->long_line ? too_long
							    : "syntax error (expected [section] or key = value)";
		if (err && err_len)
			snprintf(err, err_len, "%s:%d: %s", path, line, what);
		rc = RF_ECONFIG;
	} else {
		*cfg = ctx->cfg;
	}
	free(ctx);
	return rc;
}

int rf_config_validate(const rf_config *cfg, char *err, size_t err_len)
{
	if (!cfg)
		return fail(err, err_len, "no config");
	rf_config probe = *cfg;
	char num[32];
	/* Every numeric key must be in its range, whichever way it was set. */
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct key_def *k = &keys[i];
		const char *field = (const char *)cfg + k->offset;
		if (k->type == K_INT || k->type == K_INT_AUTO) {
			int v = *(const int *)field;
			if (k->type == K_INT_AUTO && v == k->auto_value)
				continue;
			snprintf(num, sizeof(num), "%d", v);
			if (set_value(&probe, k, num, err, err_len) != 0)
				return RF_ECONFIG;
		} else if (k->type == K_U64 && *(const uint64_t *)field < (uint64_t)k->min) {
			return fail(err, err_len, "%s: must be at least %lld", k->name, k->min);
		} else if (k->type == K_ENUM) {
			int v = *(const int *)field;
			int n = 0;
			while (k->choices[n])
				n++;
			if (v < 0 || v >= n)
				return fail(err, err_len, "%s: expected %s", k->name, k->help);
		}
	}
	if (cfg->source.shard_index >= cfg->source.shard_count)
		return fail(err, err_len, "source.shard_index: must be below source.shard_count");
	if (cfg->output.channels == 2)
		return fail(err, err_len, "output.channels: expected 1, 3 or 4, got 2");
	for (int c = 0; c < 4; c++) {
		if (!isfinite(cfg->output.std[c]) || cfg->output.std[c] == 0.0f)
			return fail(err, err_len, "output.std: must be a finite number other than zero");
		if (!isfinite(cfg->output.mean[c]))
			return fail(err, err_len, "output.mean: must be a finite number");
	}
	uint64_t slot = rf__slot_bytes(cfg);
	if (slot * (uint64_t)cfg->batch.size > (1ull << 32))
		return fail(err, err_len, "batch.size: a batch of this output shape exceeds 4 GiB");
	if (cfg->limits.memory_mb > (1ull << 30))
		return fail(err, err_len, "limits.memory_mb: at most 1073741824 (1 PiB)");
	/* The batch pool with the fewest decoder threads auto could pick; start checks the real count. */
	uint64_t batches = rf__batch_pool_count(cfg, cfg->decoder.threads > 0 ? cfg->decoder.threads : 1);
	uint64_t pool = batches * slot * (uint64_t)cfg->batch.size;
	if (cfg->limits.memory_mb && pool >= cfg->limits.memory_mb << 20)
		return fail(err, err_len,
			    "limits.memory_mb: %llu MiB cannot hold the batch pool (%s%llu batches of %d images, "
			    "%.1f MiB%s); lower batch.size or pipeline.prefetch_batches",
			    (unsigned long long)cfg->limits.memory_mb, cfg->decoder.threads > 0 ? "" : "at least ",
			    (unsigned long long)batches, cfg->batch.size, (double)pool / (1 << 20),
			    cfg->decoder.threads > 0 ? "" : "; decoder.threads = auto adds one per CPU beyond the first");
	return 0;
}
