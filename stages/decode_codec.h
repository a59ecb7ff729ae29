/*
 * Inside the decoder stage: what decode.c asks of its codecs, libjpeg-turbo
 * (decode_jpeg.c), libpng (decode_png.c) and stb_image (decode_stb.c). Each codec reads the header,
 * enforces limits through rf__check_pixels before it allocates pixels, and
 * hands back an image with cfg->output.channels channels.
 */
#ifndef RF_STAGES_DECODE_CODEC_H
#define RF_STAGES_DECODE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "resize.h"
#include "ringfeed/ringfeed.h"

/* Formats reason (may be NULL) and returns code. */
int rf__fail(char *reason, size_t reason_len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* 0, or RF_ETOOBIG / RF_EDECODE with a reason when w x h is over max_pixels or empty. */
int rf__check_pixels(const rf_config *cfg, int w, int h, char *reason, size_t reason_len);

typedef struct rf__jpeg rf__jpeg;

/* One libjpeg decompressor; RF_ENOMEM if it cannot be made. */
int rf__jpeg_create(rf__jpeg **out);
void rf__jpeg_destroy(rf__jpeg *j);

/*
 * Decodes a JPEG, shrunk at decode time as far as cfg's output allows, into
 * px (grown as needed); img points into px and holds only the window that
 * rs's resize to cfg's output reads (img->win_w > 0). RF_EFORMAT /
 * RF_EDECODE / RF_ETOOBIG / RF_ENOMEM with a reason.
 */
int rf__jpeg_decode(rf__jpeg *j, const rf_config *cfg, rf__resizer *rs, const uint8_t *data, size_t len,
		    rf__scratch *px, rf__image *img, char *reason, size_t reason_len);

/*
 * Decodes a PNG with libpng into rows (grown as needed), converting channels
 * through out when the file's count differs from cfg's; img points into one of
 * them. Same codes as rf__jpeg_decode.
 */
int rf__png_decode(const rf_config *cfg, const uint8_t *data, size_t len, rf__scratch *rows, rf__scratch *out,
		   rf__image *img, char *reason, size_t reason_len);

/*
 * Converts n pixels of `from` channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)
 * to `to` channels (1, 3 or 4) into dst: gray is replicated, colour becomes
 * luma with stb_image's weights, alpha is dropped or added opaque.
 */
void rf__convert_channels(const uint8_t *src, size_t n, int from, uint8_t *dst, int to);

/*
 * Decodes any format stb_image knows (JPEG and PNG excepted). img->px is allocated by
 * stb: give it back with rf__stb_free. Same codes as rf__jpeg_decode.
 */
int rf__stb_decode(const rf_config *cfg, const uint8_t *data, size_t len, rf__image *img, char *reason,
		   size_t reason_len);
void rf__stb_free(rf__image *img);

#endif
