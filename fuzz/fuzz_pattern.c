/*
 * libFuzzer target for topic and pattern parsing and matching.
 *
 * The input is split at its first '\n' into a pattern and a topic (no
 * '\n': both are the input); each is cut at its first NUL and copied into
 * an exactly sized heap buffer, so ASan reports any read past the NUL (or,
 * for ebus_pattern_matches, past the given length). Every invariant below
 * that fails calls abort(): libFuzzer saves the input as a crash.
 *
 * Built by -DEBUS_BUILD_FUZZ=ON with clang (fuzz/CMakeLists.txt); see
 * docs/testing.md for running it.
 */
#include "topic.h"
#include "pattern_ref.h"

#include <stdio.h>
#include <stdlib.h>

#define SENTINEL 42

#define REQUIRE(cond)                                                                \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_pattern: %s:%d: invariant failed: %s\n", \
			        __FILE__, __LINE__, #cond);                          \
			abort();                                                     \
		}                                                                    \
	} while (0)

static char *dup_exact(const uint8_t *p, size_t n)
{
	size_t len = strnlen((const char *)p, n);
	char *s = malloc(len + 1);
	if (!s)
		abort();
	memcpy(s, p, len);
	s[len] = 0;
	return s;
}

static bool is_pattern_code(int rc)
{
	switch (rc) {
	case EBUS_OK:
	case EBUS_ERR_TOPIC_EMPTY:
	case EBUS_ERR_TOPIC_TOO_LONG:
	case EBUS_ERR_TOPIC_EMPTY_TOKEN:
	case EBUS_ERR_TOPIC_BAD_CHAR:
	case EBUS_ERR_PATTERN_WILDCARD:
	case EBUS_ERR_PATTERN_GT_LAST:
		return true;
	default:
		return false;
	}
}

static bool is_topic_code(int rc)
{
	switch (rc) {
	case EBUS_OK:
	case EBUS_ERR_TOPIC_EMPTY:
	case EBUS_ERR_TOPIC_TOO_LONG:
	case EBUS_ERR_TOPIC_EMPTY_TOKEN:
	case EBUS_ERR_TOPIC_BAD_CHAR:
	case EBUS_ERR_TOPIC_WILDCARD:
		return true;
	default:
		return false;
	}
}

static bool has_wild_byte(const char *s)
{
	return strchr(s, '*') || strchr(s, '>');
}

/* Matching through all three paths; both strings valid. */
static int match3(const char *p, const char *t)
{
	int matched = SENTINEL;
	size_t pl = strlen(p), tl = strlen(t);
	REQUIRE(ebus_pattern_match(p, t, &matched) == EBUS_OK);
	REQUIRE(matched == 0 || matched == 1);
	REQUIRE(matched == (int)ref_match(p, t));
	/* exact-length copies without a NUL */
	char *pc = malloc(pl), *tc = malloc(tl);
	if (!pc || !tc)
		abort();
	memcpy(pc, p, pl);
	memcpy(tc, t, tl);
	REQUIRE(ebus_pattern_matches(pc, pl, tc, tl) == (matched == 1));
	free(pc);
	free(tc);
	return matched;
}

/* Everything that must hold for one string on its own. */
static void check_one(const char *s)
{
	size_t len = SENTINEL;
	int rp = ebus_pattern_check(s, &len);
	int rt = ebus_topic_validate(s);
	REQUIRE(rp >= 0 && rp < EBUS_ERR_COUNT_ && ebus_errname(rp) != NULL);
	REQUIRE(is_pattern_code(rp));
	REQUIRE(is_topic_code(rt));
	REQUIRE(rp == ebus_pattern_validate(s));
	REQUIRE((rp == EBUS_OK) == ref_valid_pattern(s));
	REQUIRE((rt == EBUS_OK) == ref_valid_topic(s));
	if (rp == EBUS_OK)
		REQUIRE(len == strlen(s));
	else
		REQUIRE(len == SENTINEL);
	/* a valid literal topic is a valid pattern */
	if (rt == EBUS_OK)
		REQUIRE(rp == EBUS_OK);
	/* without wildcard bytes, the same code from both */
	if (!has_wild_byte(s))
		REQUIRE(rp == rt);
	if (rp == EBUS_OK) {
		bool wild = ebus_pattern_has_wildcard(s, len);
		REQUIRE(wild == has_wild_byte(s));
		REQUIRE(wild == (rt == EBUS_ERR_TOPIC_WILDCARD));
	}
	/* a valid topic matches itself, ">" and "*" as the rules say */
	if (rt == EBUS_OK) {
		bool reserved = strncmp(s, EBUS_META_PREFIX, strlen(EBUS_META_PREFIX)) == 0;
		bool one_token = strchr(s, '.') == NULL;
		REQUIRE(match3(s, s) == 1);
		REQUIRE(match3(">", s) == !reserved);
		REQUIRE(match3("*", s) == one_token);
		REQUIRE(match3("*.>", s) == (!one_token && !reserved));
	}
}

/* A pattern derived from valid topic t: tokens replaced by '*' where the
 * bits say so, the tail from token `cut` on replaced by '>'. It matches t
 * unless it starts with a wildcard and t is reserved. */
static void check_derived(const char *t, uint64_t bits)
{
	char p[EBUS_TOPIC_MAX + 1];
	size_t o = 0;
	unsigned ntok = 1, cut, i = 0;
	for (const char *q = t; *q; q++)
		ntok += *q == '.';
	cut = (unsigned)(bits % (ntok + 1)); /* ntok: no '>' */
	bits /= ntok + 1;
	for (const char *q = t; i < ntok && i <= cut; i++) {
		const char *e = strchr(q, '.');
		size_t tl = e ? (size_t)(e - q) : strlen(q);
		if (i)
			p[o++] = '.';
		if (i == cut) {
			p[o++] = '>';
		} else if (bits & 1) {
			p[o++] = '*';
		} else {
			memcpy(p + o, q, tl);
			o += tl;
		}
		bits >>= 1;
		q = e ? e + 1 : q + tl;
	}
	p[o] = 0;
	REQUIRE(o <= strlen(t));
	REQUIRE(ebus_pattern_validate(p) == EBUS_OK);
	bool first_wild = p[0] == '*' || p[0] == '>';
	bool reserved = strncmp(t, EBUS_META_PREFIX, strlen(EBUS_META_PREFIX)) == 0;
	REQUIRE(match3(p, t) == !(first_wild && reserved));
	/* one token more than the pattern can take: no match without '>' */
	if (cut == ntok && strlen(t) + 2 <= EBUS_TOPIC_MAX) {
		char longer[EBUS_TOPIC_MAX + 1];
		memcpy(longer, t, strlen(t));
		memcpy(longer + strlen(t), ".x", 3);
		REQUIRE(match3(p, longer) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t plen = nl ? (size_t)(nl - data) : size;
	char *p = dup_exact(data, plen);
	char *t = nl ? dup_exact(nl + 1, size - plen - 1) : dup_exact(data, size);
	uint64_t bits = 0;
	for (size_t i = 0; i < size; i++)
		bits = bits * 131 + data[i];

	check_one(p);
	check_one(t);

	int rp = ebus_pattern_validate(p), rt = ebus_topic_validate(t);
	int matched = SENTINEL;
	int rc = ebus_pattern_match(p, t, &matched);
	/* the pattern's error first, then the topic's; *matched untouched */
	if (rp != EBUS_OK) {
		REQUIRE(rc == rp);
		REQUIRE(matched == SENTINEL);
	} else if (rt != EBUS_OK) {
		REQUIRE(rc == rt);
		REQUIRE(matched == SENTINEL);
	} else {
		REQUIRE(rc == EBUS_OK);
		REQUIRE(match3(p, t) == matched);
		/* a literal pattern matches exactly the equal topic */
		if (!has_wild_byte(p))
			REQUIRE(matched == (strcmp(p, t) == 0));
	}
	REQUIRE(ebus_pattern_match(p, t, NULL) == EBUS_ERR_NULL);
	if (rt == EBUS_OK)
		check_derived(t, bits);

	free(p);
	free(t);
	return 0;
}
