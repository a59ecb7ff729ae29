/*
 * Last step of an item: its HWC u8 pixels into a batch slot, either copied as
 * they are or as planar float32 normalised through a per-channel table (one
 * load per sample instead of a subtract and a divide).
 */
#include <string.h>

#include "decode.h"

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
	for (int c = 0; c < cv->channels && c < 4; c++)
		for (int x = 0; x < 256; x++)
			cv->lut[c][x] = ((float)x - cfg->output.mean[c]) / cfg->output.std[c];
}

/* One output plane: every channels-th byte of hwc, starting at c. */
static void plane(const float *restrict lut, const uint8_t *restrict hwc, size_t n, int channels,
		  float *restrict out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = lut[hwc[i * channels]];
}

void rf__convert(const rf__converter *cv, const uint8_t *hwc, void *slot)
{
	size_t n = (size_t)cv->width * cv->height;

	if (cv->layout != RF_LAYOUT_NCHW_F32) {
		memcpy(slot, hwc, n * cv->channels);
		return;
	}
	for (int c = 0; c < cv->channels; c++)
		plane(cv->lut[c], hwc + c, n, cv->channels, (float *)slot + n * c);
}
