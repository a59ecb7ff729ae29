/*
 * JPEG through TurboJPEG, one decompressor per decoder thread. The IDCT can
 * shrink by n/8 for free while decoding, so the decode is asked for the
 * smallest size that still gives the resize full resolution.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "decode_codec.h"

struct rf__jpeg {
	tjhandle tj; /* NULL after a failed re-creation; retried on the next image */
	const tjscalingfactor *factors;
	int nfactors;
};

int rf__jpeg_create(rf__jpeg **out)
{
	rf__jpeg *j = calloc(1, sizeof(*j));

	*out = NULL;
	if (!j)
		return RF_ENOMEM;
	j->tj = tjInitDecompress();
	j->factors = tjGetScalingFactors(&j->nfactors);
	if (!j->tj || !j->factors) {
		rf__jpeg_destroy(j);
		return RF_ENOMEM;
	}
	*out = j;
	return 0;
}

void rf__jpeg_destroy(rf__jpeg *j)
{
	if (!j)
		return;
	if (j->tj)
		tjDestroy(j->tj);
	free(j);
}

/*
 * Reports the failure of the call just made on j->tj, then replaces the
 * handle: a handle that has failed can report a stale message for a later
 * image.
 */
static int jpeg_error(rf__jpeg *j, char *reason, size_t reason_len)
{
	rf__fail(reason, reason_len, RF_EDECODE, "jpeg: %s", tjGetErrorStr2(j->tj));
	tjDestroy(j->tj);
	j->tj = tjInitDecompress();
	return RF_EDECODE;
}

/*
 * Smallest of 1/2, 1/4, 1/8 whose output is still need_w x need_h or larger,
 * else 1/1. The other factors (3/8 ... 7/8) run libjpeg-turbo's scalar IDCTs
 * and cost more than they save: a 500x375 q90 JPEG to 224x224 cover took
 * 1.2-1.3 ms decoded at 1/1 and 1.4-1.7 ms at 5/8, the smallest factor that
 * covers (x86-64, libjpeg-turbo 2.1.5).
 */
static tjscalingfactor pick_scale(const rf__jpeg *j, int w, int h, int need_w, int need_h)
{
	tjscalingfactor best = {1, 1};

	for (int i = 0; i < j->nfactors; i++) {
		tjscalingfactor f = j->factors[i];

		if (f.num != 1 || TJSCALED(w, f) < need_w || TJSCALED(h, f) < need_h)
			continue;
		if (f.num * best.denom < best.num * f.denom)
			best = f;
	}
	return best;
}

/*
 * libjpeg-turbo only warns about a truncated or corrupt stream and fills the
 * rest with grey, so a warning fails the image, except the one that camera
 * and editor files commonly carry and that loses no data: junk bytes between
 * two markers. (TurboJPEG reports the last warning of the decode.)
 */
static bool harmless_warning(rf__jpeg *j)
{
	return tjGetErrorCode(j->tj) == TJERR_WARNING &&
	       strstr(tjGetErrorStr2(j->tj), "extraneous bytes before marker") != NULL;
}

static int pixel_format(int channels)
{
	switch (channels) {
	case 1:
		return TJPF_GRAY;
	case 4:
		return TJPF_RGBA;
	default:
		return TJPF_RGB;
	}
}

int rf__jpeg_decode(rf__jpeg *j, const rf_config *cfg, const uint8_t *data, size_t len, rf__scratch *px,
		    rf__image *img, char *reason, size_t reason_len)
{
	int c = cfg->output.channels, w = 0, h = 0, subsamp, colorspace, need_w, need_h, err;
	tjscalingfactor f;

	if (!j->tj && !(j->tj = tjInitDecompress()))
		return rf__fail(reason, reason_len, RF_ENOMEM, "jpeg: cannot create a decompressor");
	if (tjDecompressHeader3(j->tj, data, (unsigned long)len, &w, &h, &subsamp, &colorspace) &&
	    !harmless_warning(j))
		return jpeg_error(j, reason, reason_len);
	/* A stream that ends before its frame header reads as tables-only: "success", no size. */
	if (w < 1 || h < 1)
		return rf__fail(reason, reason_len, RF_EDECODE, "jpeg: no frame header (truncated?)");
	err = rf__check_pixels(cfg, w, h, reason, reason_len);
	if (err)
		return err;
	/* TurboJPEG decodes CMYK/YCCK only to CMYK pixels; RGB would need a colour profile. */
	if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK)
		return rf__fail(reason, reason_len, RF_EFORMAT, "CMYK JPEG not supported");
	rf__fit_need(w, h, cfg->output.width, cfg->output.height, cfg->output.fit, &need_w, &need_h);
	f = pick_scale(j, w, h, need_w, need_h);
	w = TJSCALED(w, f);
	h = TJSCALED(h, f);
	if (rf__scratch_reserve(px, (size_t)w * h * c))
		return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory for %dx%d pixels", w, h);
	if (tjDecompress2(j->tj, data, (unsigned long)len, px->p, w, w * c, h, pixel_format(c), 0) &&
	    !harmless_warning(j))
		return jpeg_error(j, reason, reason_len);
	*img = (rf__image){px->p, w, h, c, (size_t)w * c};
	return 0;
}
