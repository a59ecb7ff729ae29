/*
 * Decoder front: sniffs the format from the first bytes (never the file name),
 * hands the bytes to libjpeg-turbo, libpng or stb_image, and resizes the result into the
 * caller's buffer. Everything it allocates is kept in the rf__decoder and
 * reused, so a warmed-up JPEG decode allocates nothing.
 */
#include "decode.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"
#include "resize.h"

struct rf__decoder {
	const rf_config *cfg;
	rf__jpeg *jpeg;
	rf__scratch px;   /* decoded JPEG pixels */
	rf__scratch rows; /* decoded PNG rows */
	rf__scratch conv; /* PNG rows in the output channel count */
	rf__resizer rs;
};

int rf__fail(char *reason, size_t reason_len, int code, const char *fmt, ...)
{
	va_list ap;

	if (reason && reason_len) {
		va_start(ap, fmt);
		vsnprintf(reason, reason_len, fmt, ap);
		va_end(ap);
	}
	return code;
}

int rf__check_pixels(const rf_config *cfg, int w, int h, char *reason, size_t reason_len)
{
	uint64_t pixels = (uint64_t)w * (uint64_t)h;

	if (w <= 0 || h <= 0)
		return rf__fail(reason, reason_len, RF_EDECODE, "image is %dx%d", w, h);
	if (pixels > cfg->limits.max_pixels)
		return rf__fail(reason, reason_len, RF_ETOOBIG,
				"image is %dx%d (%" PRIu64 " pixels), over limits.max_pixels %" PRIu64, w, h,
				pixels, cfg->limits.max_pixels);
	return 0;
}

int rf__decoder_create(rf__decoder **out, const rf_config *cfg)
{
	rf__decoder *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return RF_ENOMEM;
	d->cfg = cfg;
	rf__resizer_init(&d->rs);
	if (rf__jpeg_create(&d->jpeg)) {
		free(d);
		return RF_ENOMEM;
	}
	*out = d;
	return 0;
}

void rf__decoder_destroy(rf__decoder *d)
{
	if (!d)
		return;
	rf__jpeg_destroy(d->jpeg);
	rf__scratch_free(&d->px);
	rf__scratch_free(&d->rows);
	rf__scratch_free(&d->conv);
	rf__resizer_free(&d->rs);
	free(d);
}

static int is_jpeg(const uint8_t *data, size_t len)
{
	return len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

static int is_png(const uint8_t *data, size_t len)
{
	return len >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8);
}

static int resize_out(rf__decoder *d, const rf__image *img, uint8_t *out, char *reason, size_t reason_len)
{
	int w = d->cfg->output.width, h = d->cfg->output.height;
	rf__box box;

	rf__fit_box(img->w, img->h, w, h, d->cfg->output.fit, &box);
	int rc = rf__resize(&d->rs, img, &box, out, w, h);
	if (rc == RF_ENOMEM)
		return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory resizing %dx%d", img->w, img->h);
	if (rc) /* the decoder's window does not hold the pixels the resize needs */
		return rf__fail(reason, reason_len, RF_EDECODE, "cannot resize %dx%d: %s", img->w, img->h,
				rf_strerror(rc));
	return 0;
}

int rf__decode_image(rf__decoder *d, const uint8_t *data, size_t len, uint8_t *out, char *reason,
		     size_t reason_len)
{
	rf__image img;
	int err;

	if (reason && reason_len)
		reason[0] = '\0';
	if (len == 0)
		return rf__fail(reason, reason_len, RF_EFORMAT, "empty file");
	if (is_jpeg(data, len)) {
		err = rf__jpeg_decode(d->jpeg, d->cfg, &d->rs, data, len, &d->px, &img, reason, reason_len);
		return err ? err : resize_out(d, &img, out, reason, reason_len);
	}
	if (is_png(data, len)) {
		err = rf__png_decode(d->cfg, data, len, &d->rows, &d->conv, &img, reason, reason_len);
		return err ? err : resize_out(d, &img, out, reason, reason_len);
	}
	err = rf__stb_decode(d->cfg, data, len, &img, reason, reason_len);
	if (err)
		return err;
	err = resize_out(d, &img, out, reason, reason_len);
	rf__stb_free(&img);
	return err;
}
