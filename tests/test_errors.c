/*
 * The error table: one X-macro list in ebus.h generates the enum, the
 * strings and the names. Walks it and checks each code's text and name,
 * that codes are dense from 0, texts distinct, and unknown values safe.
 */
#include "testutil.h"

#include <limits.h>

typedef struct err_row {
	int value;
	const char *name;
	const char *text;
} err_row;

static const err_row rows[] = {
#define ROW_(name, value, text) {name, #name, text},
	EBUS_ERRORS(ROW_)
#undef ROW_
};
#define NROWS ((int)(sizeof rows / sizeof rows[0]))

static void test_every_code(void)
{
	CHECK_EQ_INT(NROWS, EBUS_ERR_COUNT_);
	for (int i = 0; i < NROWS; i++) {
		/* dense and in order: the enum value is the row index */
		CHECK_EQ_INT(rows[i].value, i);
		const char *s = ebus_strerror(rows[i].value);
		CHECK_MSG(s != NULL, "ebus_strerror(%s) is NULL", rows[i].name);
		CHECK_MSG(s[0] != '\0', "ebus_strerror(%s) is empty", rows[i].name);
		CHECK_MSG(strcmp(s, rows[i].text) == 0, "ebus_strerror(%s) = '%s', the table says '%s'",
		          rows[i].name, s, rows[i].text);
		/* static: the same pointer every time */
		CHECK(ebus_strerror(rows[i].value) == s);
		const char *n = ebus_errname(rows[i].value);
		CHECK_MSG(n != NULL, "ebus_errname(%d) is NULL", rows[i].value);
		CHECK_MSG(strcmp(n, rows[i].name) == 0, "ebus_errname(%d) = '%s', want '%s'", rows[i].value,
		          n, rows[i].name);
		CHECK(strcmp(s, "unknown ebus error") != 0);
	}
	CHECK_EQ_INT(EBUS_OK, 0);
}

static void test_distinct(void)
{
	for (int i = 0; i < NROWS; i++)
		for (int j = i + 1; j < NROWS; j++) {
			CHECK_MSG(strcmp(ebus_strerror(i), ebus_strerror(j)) != 0,
			          "%s and %s share the text '%s'", rows[i].name, rows[j].name,
			          ebus_strerror(i));
			CHECK(strcmp(ebus_errname(i), ebus_errname(j)) != 0);
		}
}

static void test_unknown(void)
{
	const int unknown[] = {-1, -2, EBUS_ERR_COUNT_, EBUS_ERR_COUNT_ + 1, 1000, INT_MAX, INT_MIN};
	const char *fixed = ebus_strerror(-1);
	CHECK(fixed != NULL);
	CHECK_MSG(strcmp(fixed, "unknown ebus error") == 0, "ebus_strerror(-1) = '%s'", fixed);
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		const char *s = ebus_strerror(unknown[i]);
		CHECK_MSG(s != NULL && strcmp(s, "unknown ebus error") == 0, "ebus_strerror(%d) = '%s'",
		          unknown[i], s ? s : "(null)");
		CHECK_MSG(ebus_errname(unknown[i]) == NULL, "ebus_errname(%d) is not NULL", unknown[i]);
	}
}

static void test_version(void)
{
	const char *v = ebus_version();
	CHECK(v != NULL);
	CHECK_MSG(strcmp(v, EBUS_VERSION_STRING) == 0, "ebus_version() = '%s', header says '%s'", v,
	          EBUS_VERSION_STRING);
	char want[32];
	snprintf(want, sizeof want, "%d.%d.%d", EBUS_VERSION_MAJOR, EBUS_VERSION_MINOR,
	         EBUS_VERSION_PATCH);
	CHECK(strcmp(v, want) == 0);
}

int main(void)
{
	printf("error codes: %d\n", NROWS);
	TU_RUN(test_every_code);
	TU_RUN(test_distinct);
	TU_RUN(test_unknown);
	TU_RUN(test_version);
	return tu_finish("test_errors");
}
