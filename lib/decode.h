/*
 * Contract between the core and the decoder stage (stages/decode*.c,
 * stages/resize.c, stages/convert.c). A decoder thread owns one rf__decoder
 * (libjpeg decompressor, scratch buffers, resize plans); nothing in it is shared.
 */
#ifndef RF_LIB_DECODE_H
#define RF_LIB_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "ringfeed/ringfeed.h"

typedef struct rf__decoder rf__decoder;

/* Per-thread decoder state for cfg (cfg must outlive it). RF_ENOMEM / RF_ESYS. */
int rf__decoder_create(rf__decoder **out, const rf_config *cfg);
void rf__decoder_destroy(rf__decoder *d);

/*
 * Decodes one compressed image (format sniffed from its bytes), checks its
 * header dimensions against cfg->limits.max_pixels before any pixel buffer is
 * allocated, then resizes (cfg->output.fit) into out: an interleaved HWC u8
 * image of cfg->output.width x height x channels bytes.
 * Returns 0, or RF_EFORMAT / RF_EDECODE / RF_ETOOBIG / RF_ENOMEM with a one-line
 * reason (no path) in reason.
 */
int rf__decode_image(rf__decoder *d, const uint8_t *data, size_t len, uint8_t *out, char *reason,
		     size_t reason_len);

/* Bytes of one batch slot for cfg's output shape and layout. */
size_t rf__slot_bytes(const rf_config *cfg);

/*
 * Final layout pass: copies an HWC u8 image (as made by rf__decode_image) into
 * one batch slot, converting to NCHW float32 with (x - mean) / std when
 * cfg->output.layout says so.
 */
typedef struct rf__converter {
	rf_layout layout;
	int width, height, channels;
	float mean[4], std[4];
	float lut[4][256]; /* (x - mean[c]) / std[c] per channel and byte value */
	int avx2;	   /* 1: the CPU has AVX2 and the channel count has a kernel */
} rf__converter;

void rf__converter_init(rf__converter *cv, const rf_config *cfg);
void rf__convert(const rf__converter *cv, const uint8_t *hwc, void *slot);

#endif
