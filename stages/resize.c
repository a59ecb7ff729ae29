#include "resize.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * Coefficients are 14-bit fixed point: they fit int16 (1.0 = 16384) and
 * 255 * 16384 sums fit int32 with room to spare. Each output's coefficients
 * sum to exactly 1.0 and are never negative (triangle filter), so results stay
 * within 0..255 without clamping and a constant image stays exactly constant.
 */
enum { COEF_BITS = 14, COEF_ONE = 1 << COEF_BITS, COEF_HALF = 1 << (COEF_BITS - 1) };

int rf__scratch_reserve(rf__scratch *s, size_t n)
{
	size_t cap;
	void *p;

	if (n <= s->cap)
		return 0;
	/* Geometric growth: a run of slowly growing images reallocates rarely. */
	cap = s->cap + s->cap / 2;
	if (cap < n)
		cap = n;
	/* Old contents are never needed, so free + malloc beats realloc's copy. */
	p = malloc(cap);
	if (!p)
		return RF_ENOMEM;
	free(s->p);
	s->p = p;
	s->cap = cap;
	return 0;
}

void rf__scratch_free(rf__scratch *s)
{
	free(s->p);
	s->p = NULL;
	s->cap = 0;
}

void rf__resizer_init(rf__resizer *r)
{
	memset(r, 0, sizeof(*r));
}

void rf__resizer_free(rf__resizer *r)
{
	if (!r)
		return;
	for (int i = 0; i < RF_AXIS_PLANS; i++) {
		rf__scratch_free(&r->x[i].spans);
		rf__scratch_free(&r->x[i].coef);
		rf__scratch_free(&r->y[i].spans);
		rf__scratch_free(&r->y[i].coef);
	}
	rf__scratch_free(&r->mid);
	rf__scratch_free(&r->acc);
}

/* True when out_w / w >= out_h / h, compared exactly. */
static int width_binds(int w, int h, int out_w, int out_h)
{
	return (int64_t)out_w * h >= (int64_t)out_h * w;
}

void rf__fit_box(int w, int h, int out_w, int out_h, rf_fit fit, rf__box *box)
{
	double side;

	*box = (rf__box){0, 0, w, h};
	if (fit != RF_FIT_COVER)
		return;
	/* The binding axis keeps its whole extent, so its scale is exact. */
	if (width_binds(w, h, out_w, out_h)) {
		side = (double)out_h * w / out_w;
		box->y0 = (h - side) / 2;
		box->y1 = box->y0 + side;
	} else {
		side = (double)out_w * h / out_h;
		box->x0 = (w - side) / 2;
		box->x1 = box->x0 + side;
	}
}

void rf__fit_need(int w, int h, int out_w, int out_h, rf_fit fit, int *need_w, int *need_h)
{
	*need_w = out_w;
	*need_h = out_h;
	if (fit != RF_FIT_COVER)
		return;
	/* The whole image at the cover scale, rounded up. */
	if (width_binds(w, h, out_w, out_h))
		*need_h = (int)(((int64_t)h * out_w + w - 1) / w);
	else
		*need_w = (int)(((int64_t)w * out_h + h - 1) / h);
}

static double triangle(double x)
{
	x = fabs(x);
	return x < 1.0 ? 1.0 - x : 0.0;
}

/*
 * Fixed-point weights of inputs first..first+n-1 for an output centred at
 * center; ss maps input distance to filter units. Writes k and the span,
 * trimmed of zero weights at both ends.
 */
static void span_weights(int16_t *k, int first, int n, double center, double ss, rf__span *sp)
{
	double total = 0, running = 0;
	int rounded = 0, skip = 0;

	for (int i = 0; i < n; i++)
		total += triangle((first + i + 0.5 - center) * ss);
	if (!(total > 0)) {
		/* Only for a window off the image: fall back to the nearest input. */
		k[0] = COEF_ONE;
		sp->start = first;
		sp->n = 1;
		return;
	}
	/*
	 * Each weight is the step in the rounded running total: never negative,
	 * and they sum to exactly 1.0 (the last running total is total itself,
	 * summed in the same order). Rounding each weight alone and correcting
	 * the largest went negative at downscales of thousands to one, where the
	 * rounding errors of many taps add up.
	 */
	for (int i = 0; i < n; i++) {
		running += triangle((first + i + 0.5 - center) * ss);
		int next = (int)lrint(running / total * COEF_ONE);
		k[i] = (int16_t)(next - rounded);
		rounded = next;
	}
	while (n > 1 && k[n - 1] == 0)
		n--;
	while (skip < n - 1 && k[skip] == 0)
		skip++;
	memmove(k, k + skip, (size_t)(n - skip) * sizeof(*k));
	sp->start = first + skip;
	sp->n = n - skip;
}

/*
 * Pads every span with zero weights to the longest one, so one tap count
 * serves the whole axis (spans near the end grow to the left), and zeroes the
 * unused slots, which the SIMD kernels read in pairs and eights.
 */
static void equal_spans(rf__axis *a, int in_size, int out_size)
{
	rf__span *sp = a->spans.p;
	int n = 1;

	for (int o = 0; o < out_size; o++)
		if (sp[o].n > n)
			n = sp[o].n;
	a->lo = in_size;
	a->hi = 0;
	for (int o = 0; o < out_size; o++) {
		int16_t *k = (int16_t *)a->coef.p + (size_t)o * a->taps;
		int shift = sp[o].start + n > in_size ? sp[o].start + n - in_size : 0;

		memmove(k + shift, k, (size_t)sp[o].n * sizeof(*k));
		memset(k, 0, (size_t)shift * sizeof(*k));
		memset(k + shift + sp[o].n, 0, (size_t)(a->taps - shift - sp[o].n) * sizeof(*k));
		sp[o].start -= shift;
		if (sp[o].start < a->lo)
			a->lo = sp[o].start;
		if (sp[o].start + n > a->hi)
			a->hi = sp[o].start + n;
	}
	a->n = n;
}

static int axis_filter(rf__axis *a, int in_size, double in0, double scale, int out_size)
{
	/* The triangle reaches one input pixel; shrinking widens it to one output pixel. */
	double support = scale > 1.0 ? scale : 1.0;
	/*
	 * Slots per output: every tap the span may have (no more than the input
	 * has: a shrink to a pixel or two of a 2^31-wide row would overflow an
	 * int), rounded up to eight.
	 */
	int64_t span_max = 2 * (int64_t)ceil(support) + 1;
	if (span_max > in_size)
		span_max = in_size;
	span_max = (span_max + 7) & ~(int64_t)7;
	if (span_max > INT_MAX)
		return RF_ENOMEM;
	int taps = (int)span_max;
	rf__span *sp;
	int16_t *coef;

	if (rf__scratch_reserve(&a->spans, (size_t)out_size * sizeof(rf__span)) ||
	    rf__scratch_reserve(&a->coef, (size_t)out_size * taps * sizeof(int16_t)))
		return RF_ENOMEM;
	sp = a->spans.p;
	coef = a->coef.p;
	a->taps = taps;
	a->copy = -1;
	for (int o = 0; o < out_size; o++) {
		double center = in0 + (o + 0.5) * scale;
		/* Clamped as doubles: past INT_MAX the conversion to int is undefined. */
		double lo = fmax(floor(center - support + 0.5), 0), hi = fmin(floor(center + support + 0.5), in_size);
		int first = (int)fmin(lo, in_size - 1);
		int last = (int)fmax(hi, 0);

		if (last <= first)
			last = first + 1;
		span_weights(coef + (size_t)o * taps, first, last - first, center, 1.0 / support, &sp[o]);
	}
	equal_spans(a, in_size, out_size);
	return 0;
}

/* Builds a's tables for [in0, in1) of in_size inputs -> out_size, unless it has them. */
static int axis_plan(rf__axis *a, int in_size, double in0, double in1, int out_size)
{
	double scale = (in1 - in0) / out_size;
	int err = 0;

	if (a->built && a->in_size == in_size && a->out_size == out_size && a->in0 == in0 && a->in1 == in1)
		return 0;
	a->built = 0;
	if (scale == 1.0 && in0 == floor(in0) && in0 >= 0 && in0 + out_size <= in_size) {
		/* Same size (or a whole-pixel crop): filtering would only copy. */
		a->copy = (int)in0;
		a->lo = a->copy;
		a->hi = a->copy + out_size;
	} else {
		err = axis_filter(a, in_size, in0, scale, out_size);
	}
	if (err)
		return err;
	a->in_size = in_size;
	a->out_size = out_size;
	a->in0 = in0;
	a->in1 = in1;
	a->built = 1;
	return 0;
}

/* The kept plan for this geometry, or a rebuilt one in place of the oldest; NULL if out of memory. */
static rf__axis *axis_for(rf__axis *plans, unsigned *next, int in_size, double in0, double in1, int out_size)
{
	for (int i = 0; i < RF_AXIS_PLANS; i++) {
		rf__axis *a = &plans[i];
		if (a->built && a->in_size == in_size && a->out_size == out_size && a->in0 == in0 && a->in1 == in1)
			return a;
	}
	rf__axis *a = &plans[(*next)++ % RF_AXIS_PLANS];
	return axis_plan(a, in_size, in0, in1, out_size) == 0 ? a : NULL;
}

#ifdef __SSE2__
/*
 * SSE2 kernels (every x86-64 has it). pmaddwd multiplies 16-bit lanes and
 * adds neighbouring products: fed two taps interleaved (a0 b0 a1 b1 ...)
 * against (k0 k1 k0 k1 ...) it does two taps of four samples at once.
 * Coefficient slots past a span are zero, so kernels may read whole pairs
 * and eights of them.
 */

static inline int32_t load32(const void *p)
{
	int32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* (k[t], k[t + 1]) in every 32-bit lane. */
static inline __m128i coef_pair(const int16_t *k, int t)
{
	return _mm_set1_epi32(load32(k + t));
}

/* Bytes 0..3 (lo) or 4..7 (hi) of ab as 16-bit lanes. */
static inline __m128i widen_lo(__m128i ab)
{
	return _mm_unpacklo_epi8(ab, _mm_setzero_si128());
}

static inline __m128i widen_hi(__m128i ab)
{
	return _mm_unpackhi_epi8(ab, _mm_setzero_si128());
}

static inline __m128i round_pack(__m128i a, __m128i b)
{
	return _mm_packs_epi32(_mm_srai_epi32(a, COEF_BITS), _mm_srai_epi32(b, COEF_BITS));
}

/* Vertical pass over the first bytes (a multiple of 16) of an output row. */
static void vrow_sse2(const uint8_t *row, size_t stride, size_t bytes, const int16_t *k, int n, uint8_t *d)
{
	for (size_t i = 0; i < bytes; i += 16) {
		__m128i a0 = _mm_set1_epi32(COEF_HALF), a1 = a0, a2 = a0, a3 = a0;
		const uint8_t *r = row + i;

		for (int t = 0; t < n; t += 2, r += 2 * stride) {
			/* An odd last tap pairs with zeros: no read of a row past the span. */
			__m128i x = _mm_loadu_si128((const __m128i *)r);
			__m128i y = t + 1 < n ? _mm_loadu_si128((const __m128i *)(r + stride))
					      : _mm_setzero_si128();
			__m128i kk = coef_pair(k, t);
			__m128i lo = _mm_unpacklo_epi8(x, y), hi = _mm_unpackhi_epi8(x, y);

			a0 = _mm_add_epi32(a0, _mm_madd_epi16(widen_lo(lo), kk));
			a1 = _mm_add_epi32(a1, _mm_madd_epi16(widen_hi(lo), kk));
			a2 = _mm_add_epi32(a2, _mm_madd_epi16(widen_lo(hi), kk));
			a3 = _mm_add_epi32(a3, _mm_madd_epi16(widen_hi(hi), kk));
		}
		_mm_storeu_si128((__m128i *)(d + i),
				 _mm_packus_epi16(round_pack(a0, a1), round_pack(a2, a3)));
	}
}

/*
 * Horizontal pass over one row for c = 3 or 4: a pixel is read as 4 bytes
 * and two taps go through one pmaddwd. Reads up to 4 bytes past the span.
 */
static inline __attribute__((always_inline)) void
hrow_sse2(const uint8_t *restrict src, uint8_t *restrict dst, const rf__axis *ax, const int c)
{
	const rf__span *sp = ax->spans.p;
	const int16_t *coef = ax->coef.p;
	const int n = ax->n;

	for (int o = 0; o < ax->out_size; o++) {
		const uint8_t *p = src + (size_t)(sp[o].start - ax->lo) * c;
		const int16_t *k = coef + (size_t)o * ax->taps;
		__m128i acc = _mm_set1_epi32(COEF_HALF);
		int32_t v;

		for (int t = 0; t < n; t += 2, p += 2 * c) {
			/* pixels t and t + 1 as pairs: r0 r1 g0 g1 b0 b1 (a0 a1) */
			__m128i ab = _mm_unpacklo_epi8(_mm_cvtsi32_si128(load32(p)),
						       _mm_cvtsi32_si128(load32(p + c)));

			acc = _mm_add_epi32(acc, _mm_madd_epi16(widen_lo(ab), coef_pair(k, t)));
		}
		acc = round_pack(acc, acc);
		v = _mm_cvtsi128_si32(_mm_packus_epi16(acc, acc));
		memcpy(dst + (size_t)o * c, &v, (size_t)c);
	}
}

/*
 * Horizontal pass over one row for c = 1: eight taps per pmaddwd.
 * Reads up to 7 bytes past the span.
 */
static void hrow1_sse2(const uint8_t *restrict src, uint8_t *restrict dst, const rf__axis *ax)
{
	const rf__span *sp = ax->spans.p;
	const int16_t *coef = ax->coef.p;
	const int n = ax->n;

	for (int o = 0; o < ax->out_size; o++) {
		const uint8_t *p = src + (sp[o].start - ax->lo);
		const int16_t *k = coef + (size_t)o * ax->taps;
		__m128i acc = _mm_setzero_si128();

		for (int t = 0; t < n; t += 8) {
			__m128i x = widen_lo(_mm_loadl_epi64((const __m128i *)(p + t)));
			__m128i kk = _mm_loadu_si128((const __m128i *)(k + t));

			acc = _mm_add_epi32(acc, _mm_madd_epi16(x, kk));
		}
		acc = _mm_add_epi32(acc, _mm_srli_si128(acc, 8));
		acc = _mm_add_epi32(acc, _mm_srli_si128(acc, 4));
		dst[o] = (uint8_t)((_mm_cvtsi128_si32(acc) + COEF_HALF) >> COEF_BITS);
	}
}

/* Rows of a buffer with at least 16 bytes after them, where kernels may overread. */
static int overread_rows(int rows, size_t stride)
{
	int tail = (int)((16 + stride - 1) / stride);

	return rows > tail ? rows - tail : 0;
}
#endif

/*
 * Vertical pass over row_bytes bytes of each row; src's first row is input
 * row y0. Portable part: a row of
 * accumulators per output row and one multiply-add sweep per tap over
 * contiguous bytes, which compilers vectorise; with SSE2 it only does the
 * last row_bytes % 16 bytes.
 */
static void vpass(const uint8_t *src, size_t stride, int y0, size_t row_bytes, const rf__axis *ay,
		  uint8_t *dst, size_t dst_stride, int32_t *restrict acc)
{
	const rf__span *sp = ay->spans.p;
	const int16_t *coef = ay->coef.p;
	size_t from = 0;

#ifdef __SSE2__
	from = row_bytes & ~(size_t)15;
#endif
	for (int o = 0; o < ay->out_size; o++) {
		const int16_t *k = coef + (size_t)o * ay->taps;
		const uint8_t *restrict row = src + (size_t)(sp[o].start - y0) * stride;
		uint8_t *restrict d = dst + (size_t)o * dst_stride;
		int16_t kt = k[0];

#ifdef __SSE2__
		vrow_sse2(row, stride, from, k, ay->n, d);
#endif
		for (size_t i = from; i < row_bytes; i++)
			acc[i] = COEF_HALF + (int16_t)row[i] * kt;
		for (int t = 1; t < ay->n; t++) {
			row += stride;
			kt = k[t];
			for (size_t i = from; i < row_bytes; i++)
				acc[i] += (int16_t)row[i] * kt;
		}
		for (size_t i = from; i < row_bytes; i++)
			d[i] = (uint8_t)(acc[i] >> COEF_BITS);
	}
}

/* One row of the horizontal pass; inlined with a constant c so the channel loops unroll. */
static inline __attribute__((always_inline)) void hrow(const uint8_t *restrict src, uint8_t *restrict dst,
						       const rf__axis *ax, const int c)
{
	const rf__span *sp = ax->spans.p;
	const int16_t *coef = ax->coef.p;

	for (int o = 0; o < ax->out_size; o++) {
		const uint8_t *p = src + (size_t)(sp[o].start - ax->lo) * c;
		const int16_t *k = coef + (size_t)o * ax->taps;
		int32_t a[4] = {COEF_HALF, COEF_HALF, COEF_HALF, COEF_HALF};

		for (int t = 0; t < ax->n; t++)
			for (int ch = 0; ch < c; ch++)
				a[ch] += p[t * c + ch] * k[t];
		for (int ch = 0; ch < c; ch++)
			dst[o * c + ch] = (uint8_t)(a[ch] >> COEF_BITS);
	}
}

/* src's column 0 is input column ax->lo. */
static void hpass(const uint8_t *src, size_t stride, int rows, const rf__axis *ax, int c, uint8_t *dst)
{
	size_t out_row = (size_t)ax->out_size * c;

	int y = 0;

#ifdef __SSE2__
	for (int fast = overread_rows(rows, stride); y < fast && c != 2; y++) {
		const uint8_t *s = src + (size_t)y * stride;
		uint8_t *d = dst + (size_t)y * out_row;

		if (c == 1)
			hrow1_sse2(s, d, ax);
		else if (c == 3)
			hrow_sse2(s, d, ax, 3);
		else
			hrow_sse2(s, d, ax, 4);
	}
#endif
	for (; y < rows; y++) {
		const uint8_t *s = src + (size_t)y * stride;
		uint8_t *d = dst + (size_t)y * out_row;

		switch (c) {
		case 1:
			hrow(s, d, ax, 1);
			break;
		case 3:
			hrow(s, d, ax, 3);
			break;
		case 4:
			hrow(s, d, ax, 4);
			break;
		default:
			hrow(s, d, ax, c);
			break;
		}
	}
}

int rf__resize_window(rf__resizer *r, int w, int h, const rf__box *box, int out_w, int out_h, rf__window *win)
{
	const rf__axis *ax = axis_for(r->x, &r->next_x, w, box->x0, box->x1, out_w);
	const rf__axis *ay = ax ? axis_for(r->y, &r->next_y, h, box->y0, box->y1, out_h) : NULL;

	if (!ax || !ay)
		return RF_ENOMEM;
	*win = (rf__window){ax->lo, ay->lo, ax->hi, ay->hi};
	return 0;
}

/* True when src holds every pixel the plans read. */
static int window_covers(const rf__image *src, const rf__axis *ax, const rf__axis *ay)
{
	if (src->win_w <= 0)
		return src->x0 == 0 && src->y0 == 0;
	return ax->lo >= src->x0 && ax->hi <= src->x0 + src->win_w && ay->lo >= src->y0 &&
	       ay->hi <= src->y0 + src->win_h;
}

/*
 * Vertical first: per sample it is the cheaper pass (a sweep does 16 bytes),
 * so it takes the full-width rows down to out_h, and the horizontal pass only
 * sees out_h rows.
 */
int rf__resize(rf__resizer *r, const rf__image *src, const rf__box *box, uint8_t *dst, int out_w, int out_h)
{
	const rf__axis *ax = axis_for(r->x, &r->next_x, src->w, box->x0, box->x1, out_w);
	const rf__axis *ay = ax ? axis_for(r->y, &r->next_y, src->h, box->y0, box->y1, out_h) : NULL;
	size_t out_row = (size_t)out_w * src->c;
	const uint8_t *cols, *mid;
	size_t mid_row, mid_stride;

	if (!ax || !ay)
		return RF_ENOMEM;
	if (!window_covers(src, ax, ay))
		return RF_EINVAL;
	/* cols: column ax->lo of the window's first row; vpass counts rows from src->y0. */
	cols = src->px + (size_t)(ax->lo - src->x0) * src->c;
	mid_row = (size_t)(ax->hi - ax->lo) * src->c;
	if (ay->copy >= 0) {
		mid = cols + (size_t)(ay->copy - src->y0) * src->stride;
		mid_stride = src->stride;
	} else {
		uint8_t *to = dst;

		if (rf__scratch_reserve(&r->acc, mid_row * sizeof(int32_t)))
			return RF_ENOMEM;
		/* A copied x axis makes the vertical pass the last one: write dst. */
		if (ax->copy < 0) {
			if (rf__scratch_reserve(&r->mid, (size_t)out_h * mid_row))
				return RF_ENOMEM;
			to = r->mid.p;
		}
		vpass(cols, src->stride, src->y0, mid_row, ay, to, mid_row, r->acc.p);
		if (ax->copy >= 0)
			return 0;
		mid = to;
		mid_stride = mid_row;
	}
	if (ax->copy >= 0) {
		for (int y = 0; y < out_h; y++)
			memcpy(dst + (size_t)y * out_row, mid + (size_t)y * mid_stride, out_row);
		return 0;
	}
	hpass(mid, mid_stride, out_h, ax, src->c, dst);
	return 0;
}
