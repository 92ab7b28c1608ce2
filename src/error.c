/* Error strings: one X-macro list in ebus.h generates the enum and these. */
#include "ebus/ebus.h"

static const char *const err_text[] = {
#define EBUS_ERR_TEXT_(name, value, text) [value] = text,
	EBUS_ERRORS(EBUS_ERR_TEXT_)
#undef EBUS_ERR_TEXT_
};

static const char *const err_name[] = {
#define EBUS_ERR_NAME_(name, value, text) [value] = #name,
	EBUS_ERRORS(EBUS_ERR_NAME_)
#undef EBUS_ERR_NAME_
};

const char *ebus_strerror(int err)
{
	if (err < 0 || err >= EBUS_ERR_COUNT_ || !err_text[err])
		return "unknown ebus error";
	return err_text[err];
}

const char *ebus_errname(int err)
{
	if (err < 0 || err >= EBUS_ERR_COUNT_)
		return NULL;
	return err_name[err];
}

const char *ebus_version(void)
{
	return EBUS_VERSION_STRING;
}
