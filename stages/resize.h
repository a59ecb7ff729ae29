/*
 * Separable antialiased resize of interleaved u8 images, the Pillow method: a
 * triangle (bilinear) filter whose support widens with the downscale factor,
 * applied as a vertical then a horizontal pass with fixed-point coefficient
 * tables. The tables of the last few geometries are kept, so a data set of a
 * few image sizes (portrait, landscape, ...) pays for them once per size.
 */
#ifndef RF_STAGES_RESIZE_H
#define RF_STAGES_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "ringfeed/ringfeed.h"

/* A grow-only buffer: reused across images, so the hot path stops allocating. */
typedef struct rf__scratch {
	void *p;
	size_t cap;
} rf__scratch;

/* Makes s hold at least n bytes (contents are not kept). 0 or RF_ENOMEM. */
int rf__scratch_reserve(rf__scratch *s, size_t n);
void rf__scratch_free(rf__scratch *s);

/*
 * An interleaved u8 image of w x h pixels, rows stride bytes apart. A decoder
 * that decoded only a window of it says so with win_w > 0: px then holds
 * columns [x0, x0 + win_w) and rows [y0, y0 + win_h) only.
 */
typedef struct rf__image {
	const uint8_t *px;
	int w, h, c;
	size_t stride;
	int x0, y0, win_w, win_h;
} rf__image;

/* Whole pixels [x0, x1) x [y0, y1) of an image. */
typedef struct rf__window {
	int x0, y0, x1, y1;
} rf__window;

/* Source window in pixel units; fractional so that crops are exact. */
typedef struct rf__box {
	double x0, y0, x1, y1;
} rf__box;

/* Input span and coefficients of one output sample. */
typedef struct rf__span {
	int32_t start, n;
} rf__span;

/* The tables of one axis, keyed by the geometry they were built for. */
typedef struct rf__axis {
	int in_size, out_size;
	double in0, in1;
	int built;
	int copy;   /* >= 0: scale 1 at a whole-pixel offset, a plain copy from here */
	int lo, hi; /* inputs any output reads: [lo, hi) */
	int taps;   /* coefficient slots per output */
	int n;	    /* coefficients used per output, the same for all */
	rf__scratch spans, coef;
} rf__axis;

/* Plans kept per axis; data sets mix a handful of sizes (e.g. 500x375, 375x500, 500x333). */
#define RF_AXIS_PLANS 4

typedef struct rf__resizer {
	rf__axis x[RF_AXIS_PLANS], y[RF_AXIS_PLANS];
	unsigned next_x, next_y; /* the plan replaced next, round robin */
	rf__scratch mid; /* vertical pass output, input of the horizontal pass */
	rf__scratch acc; /* one row of 32-bit accumulators */
} rf__resizer;

void rf__resizer_init(rf__resizer *r);
void rf__resizer_free(rf__resizer *r);

/*
 * The window of a w x h image that fit maps onto out_w x out_h: the whole image
 * for stretch; for cover the centred window with the output's aspect ratio
 * (scale s = max(out_w / w, out_h / h), window out_w / s x out_h / s).
 */
void rf__fit_box(int w, int h, int out_w, int out_h, rf_fit fit, rf__box *box);

/*
 * Smallest w x h that still gives the resize full resolution: a decoder that
 * can shrink while decoding (JPEG DCT scaling) may go down to this, not below.
 */
void rf__fit_need(int w, int h, int out_w, int out_h, rf_fit fit, int *need_w, int *need_h);

/*
 * The pixels of a w x h image that rf__resize reads for box -> out_w x out_h:
 * a decoder that can skip pixels (JPEG crop decode) needs only these. Builds
 * (and keeps) the same plans the resize will use. 0 or RF_ENOMEM.
 */
int rf__resize_window(rf__resizer *r, int w, int h, const rf__box *box, int out_w, int out_h,
		      rf__window *win);

/*
 * Resamples box of src into dst (out_w x out_h x src->c, rows packed).
 * 1 <= src->c <= 4. Returns 0, RF_ENOMEM, or RF_EINVAL when src is a window
 * that lacks pixels the resize reads.
 */
int rf__resize(rf__resizer *r, const rf__image *src, const rf__box *box, uint8_t *dst, int out_w, int out_h);

#endif
