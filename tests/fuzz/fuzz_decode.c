/*
 * libFuzzer target for the decoder: bytes -> rf__decode_image.
 *
 * Input: one byte that picks the output config, then the image bytes. The
 * decoders are created on first use and kept, one per config as a pipeline's
 * decoder thread keeps one for its fixed config, so state carried from image
 * to image (libjpeg decompressor, scratch buffers, resize plans) is fuzzed too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

enum { REASON_LEN = 200 }; /* the pipeline's RF_REASON_MAX */

static const struct {
	int w, h;
} sizes[] = {{1, 1}, {7, 5}, {32, 32}, {48, 80}};
static const int channels[] = {1, 3, 4};
static const rf_fit fits[] = {RF_FIT_COVER, RF_FIT_STRETCH};

#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define NCHANNELS (sizeof(channels) / sizeof(channels[0]))
#define NFITS (sizeof(fits) / sizeof(fits[0]))
#define NCONFIGS (NSIZES * NCHANNELS * NFITS)

static rf_config configs[NCONFIGS];
static rf__decoder *decoders[NCONFIGS];

static void check(int ok, const char *what, int rc, const char *reason)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_decode: %s (rc %d %s, reason '%.*s')\n", what, rc, rf_err_name(rc), REASON_LEN,
		reason);
	abort();
}

static uint64_t max_pixels(void)
{
	const char *env = getenv("RF_FUZZ_MAX_PIXELS");
	unsigned long long n = env ? strtoull(env, NULL, 10) : 0;
	return n > 0 ? n : 1000000;
}

static rf__decoder *decoder_for(unsigned pick)
{
	unsigned i = pick % NCONFIGS;
	rf_config *cfg = &configs[i];
	int rc;

	if (decoders[i])
		return decoders[i];
	rf_config_init(cfg);
	cfg->output.width = sizes[i % NSIZES].w;
	cfg->output.height = sizes[i % NSIZES].h;
	cfg->output.channels = channels[i / NSIZES % NCHANNELS];
	cfg->output.fit = fits[i / NSIZES / NCHANNELS];
	/*
	 * Legitimately huge images only slow the fuzzer down; the limit path is
	 * still reached. RF_FUZZ_MAX_PIXELS lowers the cap for a long run.
	 */
	cfg->limits.max_pixels = max_pixels();
	rc = rf__decoder_create(&decoders[i], cfg);
	check(rc == 0 && decoders[i], "rf__decoder_create failed", rc, "");
	return decoders[i];
}

static int known_failure(int rc)
{
	return rc == RF_EFORMAT || rc == RF_EDECODE || rc == RF_ETOOBIG || rc == RF_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[REASON_LEN];
	rf__decoder *d;
	const rf_config *cfg;
	uint8_t *out;
	int rc;

	if (size < 1)
		return 0;
	d = decoder_for(data[0]);
	cfg = &configs[data[0] % NCONFIGS];
	/* Exactly the output's size, so any write past it is an ASan report. */
	out = malloc((size_t)cfg->output.width * cfg->output.height * cfg->output.channels);
	check(out != NULL, "out of memory for the output buffer", 0, "");
	/* No NUL anywhere: a reason left unterminated is caught below. */
	memset(reason, 'X', sizeof(reason));
	rc = rf__decode_image(d, data + 1, size - 1, out, reason, sizeof(reason));
	check(rc == 0 || known_failure(rc), "unexpected return code", rc, reason);
	if (rc != 0) {
		check(memchr(reason, '\0', sizeof(reason)) != NULL, "reason not NUL-terminated", rc, reason);
		check(reason[0] != '\0', "empty reason on failure", rc, reason);
	}
	free(out);
	return 0;
}
