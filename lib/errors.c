#include "ringfeed/ringfeed.h"

#define RF_STR2(x) #x
#define RF_STR(x) RF_STR2(x)

const char *rf_version(void)
{
	return RF_STR(RF_VERSION_MAJOR) "." RF_STR(RF_VERSION_MINOR) "." RF_STR(RF_VERSION_PATCH);
}

struct code_info {
	int code;
	const char *name;
	const char *text;
};

static const struct code_info codes[] = {
	{RF_OK, "RF_OK", "success"},
	{RF_EINVAL, "RF_EINVAL", "invalid argument"},
	{RF_ENOMEM, "RF_ENOMEM", "out of memory"},
	{RF_EIO, "RF_EIO", "read error"},
	{RF_ECLOSED, "RF_ECLOSED", "closed"},
	{RF_EOF, "RF_EOF", "end of data"},
	{RF_ETIMEDOUT, "RF_ETIMEDOUT", "timed out"},
	{RF_ECANCELED, "RF_ECANCELED", "canceled"},
	{RF_EFORMAT, "RF_EFORMAT", "unsupported format"},
	{RF_EDECODE, "RF_EDECODE", "corrupt image data"},
	{RF_ETOOBIG, "RF_ETOOBIG", "over a size limit"},
	{RF_ECONFIG, "RF_ECONFIG", "invalid configuration"},
	{RF_EITEM, "RF_EITEM", "an item failed (on_error = fail)"},
	{RF_EUSER, "RF_EUSER", "the inference function failed"},
	{RF_ESTATE, "RF_ESTATE", "not valid in the pipeline's current state"},
	{RF_ESYS, "RF_ESYS", "system call failed"},
};

static const struct code_info *find(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return &codes[i];
	return NULL;
}

const char *rf_strerror(int code)
{
	const struct code_info *c = find(code);
	return c ? c->text : "unknown error";
}

const char *rf_err_name(int code)
{
	const struct code_info *c = find(code);
	return c ? c->name : "RF_E?";
}
