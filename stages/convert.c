/*
 * Last step of an item: its HWC u8 pixels into a batch slot, either copied as
 * they are or as planar float32 normalised: eight pixels at a time with AVX2
 * where the CPU has it (1 and 3 channels), else through a per-channel table
 * (one load per sample instead of a subtract and a divide). Both give the same
 * floats.
 */
#include <string.h>

#include "decode.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RF_CONVERT_AVX2 1
#endif

size_t rf__slot_bytes(const rf_config *cfg)
{
	size_t samples = (size_t)cfg->output.width * cfg->output.height * cfg->output.channels;

	return cfg->output.layout == RF_LAYOUT_NCHW_F32 ? samples * sizeof(float) : samples;
}

void rf__converter_init(rf__converter *cv, const rf_config *cfg)
{
	memset(cv, 0, sizeof(*cv));
	cv->layout = cfg->output.layout;
	cv->width = cfg->output.width;
	cv->height = cfg->output.height;
	cv->channels = cfg->output.channels;
	for (int c = 0; c < cv->channels && c < 4; c++) {
		cv->mean[c] = cfg->output.mean[c];
		cv->std[c] = cfg->output.std[c];
		for (int x = 0; x < 256; x++)
			cv->lut[c][x] = ((float)x - cv->mean[c]) / cv->std[c];
	}
#ifdef RF_CONVERT_AVX2
	cv->avx2 = (cv->channels == 1 || cv->channels == 3) && __builtin_cpu_supports("avx2");
#endif
}

/* One output plane: every channels-th byte of hwc, starting at c. */
static void plane(const float *restrict lut, const uint8_t *restrict hwc, size_t n, int channels,
		  float *restrict out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = lut[hwc[i * channels]];
}

#ifdef RF_CONVERT_AVX2
/* Eight samples (as u8 in the low 8 bytes of v) to (x - mean) / std, stored at out. */
__attribute__((target("avx2"))) static inline void norm8(__m128i v, __m256 mean, __m256 std, float *out)
{
	__m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));

	/* sub then div, as the table was built: the same floats, bit for bit */
	_mm256_storeu_ps(out, _mm256_div_ps(_mm256_sub_ps(x, mean), std));
}

/*
 * The table costs a load per sample and moves one sample at a time; here eight
 * pixels go at once: the RGB bytes are sorted into planes with pshufb, widened
 * and normalised in 256-bit registers. Returns how many pixels it did (the
 * rest, fewer than eight, are left to the table).
 */
__attribute__((target("avx2"))) static size_t planes_avx2(const rf__converter *cv, const uint8_t *hwc, size_t n,
							   float *out)
{
	size_t i = 0;

	if (cv->channels == 1) {
		__m256 m = _mm256_set1_ps(cv->mean[0]), s = _mm256_set1_ps(cv->std[0]);

		for (; i + 8 <= n; i += 8)
			norm8(_mm_loadl_epi64((const __m128i *)(hwc + i)), m, s, out + i);
		return i;
	}
	/* Pixels i..i+7 are bytes 0..23 from p: a = bytes 0..15, b = bytes 8..23. */
	const __m128i ra = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i rb = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i ga = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i gb = _mm_setr_epi8(-1, -1, -1, -1, -1, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i ba = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i bb = _mm_setr_epi8(-1, -1, -1, -1, -1, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1);
	__m256 m0 = _mm256_set1_ps(cv->mean[0]), m1 = _mm256_set1_ps(cv->mean[1]), m2 = _mm256_set1_ps(cv->mean[2]);
	__m256 s0 = _mm256_set1_ps(cv->std[0]), s1 = _mm256_set1_ps(cv->std[1]), s2 = _mm256_set1_ps(cv->std[2]);

	for (; i + 8 <= n; i += 8) {
		const uint8_t *p = hwc + i * 3;
		__m128i a = _mm_loadu_si128((const __m128i *)p), b = _mm_loadu_si128((const __m128i *)(p + 8));

		norm8(_mm_or_si128(_mm_shuffle_epi8(a, ra), _mm_shuffle_epi8(b, rb)), m0, s0, out + i);
		norm8(_mm_or_si128(_mm_shuffle_epi8(a, ga), _mm_shuffle_epi8(b, gb)), m1, s1, out + n + i);
		norm8(_mm_or_si128(_mm_shuffle_epi8(a, ba), _mm_shuffle_epi8(b, bb)), m2, s2, out + 2 * n + i);
	}
	return i;
}
#endif

void rf__convert(const rf__converter *cv, const uint8_t *hwc, void *slot)
{
	size_t n = (size_t)cv->width * cv->height, done = 0;
	float *out = slot;

	if (cv->layout != RF_LAYOUT_NCHW_F32) {
		memcpy(slot, hwc, n * cv->channels);
		return;
	}
#ifdef RF_CONVERT_AVX2
	if (cv->avx2)
		done = planes_avx2(cv, hwc, n, out);
#endif
	for (int c = 0; c < cv->channels; c++)
		plane(cv->lut[c], hwc + done * cv->channels + c, n - done, cv->channels, out + n * c + done);
}
