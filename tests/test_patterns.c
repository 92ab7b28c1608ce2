/*
 * Subscription patterns (NATS subject syntax), without a bus:
 *  - a conformance table of (pattern, topic, expected match) through the
 *    public ebus_pattern_match, the internal ebus_pattern_matches (on
 *    buffers without a NUL) and the reference matcher of pattern_ref.h;
 *  - tables of invalid patterns and invalid topics with their exact codes
 *    (and *matched / *len_out untouched);
 *  - a seeded, deterministic property check against the reference:
 *    validation of random byte strings, matching of random token strings,
 *    and patterns derived from a topic (which must match it).
 * Size: EBUS_STRESS_PATTERN_CASES (short 100000 / long 10000000).
 */
#include "testutil.h"

#include "topic.h"
#include "pattern_ref.h"

#define SENTINEL 42

/* Copies s into an exactly sized heap buffer without a NUL, so ASan
 * catches a read past the given length. */
static char *exact_copy(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);
	CHECK(p != NULL);
	memcpy(p, s, n);
	return p;
}

/* One row: the public call, the internal call, the reference, and
 * pattern/topic/literal consistency. */
static void check_match(const char *pattern, const char *topic, int expect)
{
	int matched = SENTINEL;
	size_t plen = 0, tlen = 0;
	int rc = ebus_pattern_match(pattern, topic, &matched);
	CHECK_MSG(rc == EBUS_OK, "ebus_pattern_match('%s', '%s') = %s", pattern, topic,
	          ebus_errname(rc));
	CHECK_MSG(matched == expect, "'%s' vs '%s': matched %d, want %d", pattern, topic, matched,
	          expect);
	CHECK_OK(ebus_pattern_check(pattern, &plen));
	CHECK_EQ_U64(plen, strlen(pattern));
	CHECK_OK(ebus_topic_check(topic, &tlen));
	CHECK_EQ_U64(tlen, strlen(topic));
	char *p = exact_copy(pattern, plen), *t = exact_copy(topic, tlen);
	CHECK_MSG(ebus_pattern_matches(p, plen, t, tlen) == (expect != 0),
	          "internal matcher: '%s' vs '%s', want %d", pattern, topic, expect);
	free(p);
	free(t);
	CHECK_MSG(ref_match(pattern, topic) == (expect != 0), "reference: '%s' vs '%s', want %d",
	          pattern, topic, expect);
	/* a valid topic is a valid pattern, and it matches itself */
	CHECK_OK(ebus_pattern_validate(topic));
	matched = SENTINEL;
	CHECK_OK(ebus_pattern_match(topic, topic, &matched));
	CHECK_EQ_INT(matched, 1);
	/* a literal pattern matches exactly the equal topic */
	if (!ebus_pattern_has_wildcard(pattern, plen))
		CHECK_EQ_INT(expect, strcmp(pattern, topic) == 0);
}

typedef struct match_row {
	const char *pattern;
	const char *topic;
	int match;
} match_row;

static const match_row match_rows[] = {
	/* literal patterns: whole-name, byte-exact, case-sensitive */
	{"a", "a", 1},
	{"a", "b", 0},
	{"a.b", "a.b", 1},
	{"a.b", "a.b.c", 0},
	{"a.b.c", "a.b", 0},
	{"a", "ab", 0},
	{"ab", "a", 0},
	{"a.b", "a.bc", 0},
	{"a.bc", "a.b", 0},
	{"a.b", "ab", 0},
	{"orders.eu.fill", "orders.eu.fill", 1},
	{"Orders", "orders", 0},
	{"ORDERS.eu", "ORDERS.eu", 1},
	{"a.B", "a.b", 0},
	/* '*': exactly one token */
	{"*", "a", 1},
	{"*", "a.b", 0},
	{"*.*", "a.b", 1},
	{"*.*", "a", 0},
	{"*.*", "a.b.c", 0},
	{"a.*", "a", 0},
	{"a.*", "a.b", 1},
	{"a.*", "a.b.c", 0},
	{"a.*", "b.c", 0},
	{"*.b", "a.b", 1},
	{"*.b", "a.c", 0},
	{"*.b", "b", 0},
	{"a.*.c", "a.b.c", 1},
	{"a.*.c", "a.b.c.d", 0},
	{"a.*.c", "a.b.d", 0},
	{"a.*.c", "a.c", 0},
	{"a.*.c", "a.bb.c", 1},
	{"*.*.*", "a.b.c", 1},
	{"*.*.*", "a.b.c.d", 0},
	/* '>': one or more trailing tokens */
	{">", "a", 1},
	{">", "a.b.c", 1},
	{"a.>", "a", 0},
	{"a.>", "a.b", 1},
	{"a.>", "a.b.c.d", 1},
	{"a.>", "b.c", 0},
	{"a.>", "ab.c", 0},
	{"a.b.>", "a.b", 0},
	{"a.b.>", "a.b.c", 1},
	{"a.b.>", "a.c.c", 0},
	{"*.>", "a", 0},
	{"*.>", "a.b", 1},
	{"*.>", "a.b.c", 1},
	{"a.*.>", "a.b", 0},
	{"a.*.>", "a.b.c", 1},
	{"*.b.>", "x.b.y", 1},
	{"*.b.>", "x.c.y", 0},
	{"*.b.>", "x.b", 0},
	/* unusual but valid tokens */
	{"$", "$", 1},
	{"$.>", "$.x", 1},
	{"-._.~", "-._.~", 1},
	{"*.~", "-.~", 1},
	{"0.1.2", "0.1.2", 1},
	{"0.1.2", "0.1.3", 0},
	{"#.%", "#.%", 1},
	{"#", "%", 0},
	{"a-b_c~d", "a-b_c~d", 1},
	{"a/b\\c", "a/b\\c", 1},
	{"!\"'", "!\"'", 1},
	{"*", "$", 1},
	{"*", "#", 1},
	{">", "!.~.}", 1},
};

/* The reserved "$ebus." rule, both ways. */
static const match_row meta_rows[] = {
	{">", "$ebus.x", 0},
	{">", "$ebus.sub.added", 0},
	{"*.>", "$ebus.x", 0},
	{"*.x", "$ebus.x", 0},
	{"*.*", "$ebus.x", 0},
	{"*.*.added", "$ebus.sub.added", 0},
	{">", "$ebus", 1},       /* one token "$ebus": not under the prefix */
	{"*", "$ebus", 1},
	{">", "$ebusx.y", 1},
	{">", "$EBUS.x", 1},     /* case-sensitive */
	{">", "x.$ebus.y", 1},   /* only a prefix counts */
	{"a.>", "a.$ebus.x", 1},
	{"*.$ebus.>", "a.$ebus.x", 1},
	{"$ebus.>", "$ebus.x", 1},
	{"$ebus.>", "$ebus.sub.added", 1},
	{"$ebus.>", "$ebus", 0},
	{"$ebus.*", "$ebus.x", 1},
	{"$ebus.*", "$ebus.x.y", 0},
	{"$ebus.*.added", "$ebus.sub.added", 1},
	{"$ebus.sub.added", "$ebus.sub.added", 1},
	{"$ebus.x", "$ebus.x", 1},
};

static void test_match_table(void)
{
	size_t n = sizeof match_rows / sizeof match_rows[0];
	for (size_t i = 0; i < n; i++)
		check_match(match_rows[i].pattern, match_rows[i].topic, match_rows[i].match);
	for (size_t i = 0; i < sizeof meta_rows / sizeof meta_rows[0]; i++)
		check_match(meta_rows[i].pattern, meta_rows[i].topic, meta_rows[i].match);
	/* the reserved prefix is spelled as ebus.h spells it */
	CHECK(strcmp(EBUS_META_PREFIX, "$ebus.") == 0);
	check_match(">", EBUS_META_SUB_ADDED, 0);
	check_match("$ebus.>", EBUS_META_HANDLER_ERROR, 1);
}

/* Names and patterns at EBUS_TOPIC_MAX bytes. */
static void test_long(void)
{
	char a255[EBUS_TOPIC_MAX + 1], a254[EBUS_TOPIC_MAX + 1], b255[EBUS_TOPIC_MAX + 1];
	char stars128[EBUS_TOPIC_MAX + 1], toks128[EBUS_TOPIC_MAX + 1], toks127[EBUS_TOPIC_MAX + 1];
	char stars_gt[EBUS_TOPIC_MAX + 1], agt_long[EBUS_TOPIC_MAX + 1];
	memset(a255, 'a', 255);
	a255[255] = 0;
	memcpy(a254, a255, 254);
	a254[254] = 0;
	memcpy(b255, a255, 256);
	b255[254] = 'b';
	/* 128 one-byte tokens: 255 bytes */
	for (int i = 0; i < 128; i++) {
		stars128[2 * i] = '*';
		toks128[2 * i] = (char)('a' + i % 26);
		stars_gt[2 * i] = i == 127 ? '>' : '*';
		if (i < 127)
			stars128[2 * i + 1] = toks128[2 * i + 1] = stars_gt[2 * i + 1] = '.';
	}
	stars128[255] = toks128[255] = stars_gt[255] = 0;
	memcpy(toks127, toks128, 253);
	toks127[253] = 0;
	agt_long[0] = 'a';
	agt_long[1] = '.';
	memset(agt_long + 2, 'x', 253);
	agt_long[255] = 0;
	CHECK_EQ_U64(strlen(a255), 255);
	CHECK_EQ_U64(strlen(stars128), 255);
	CHECK_EQ_U64(strlen(toks128), 255);
	CHECK_EQ_U64(strlen(agt_long), 255);

	check_match(a255, a255, 1);
	check_match(a254, a255, 0);
	check_match(a255, a254, 0);
	check_match(a255, b255, 0);
	check_match("*", a255, 1);
	check_match(">", a255, 1);
	check_match("a.>", agt_long, 1);
	check_match("a.*", agt_long, 1);
	check_match(agt_long, agt_long, 1);
	check_match(stars128, toks128, 1);
	check_match(stars128, toks127, 0);
	check_match(stars_gt, toks128, 1);
	check_match(stars_gt, toks127, 0);
	check_match(toks128, toks128, 1);
	check_match(toks127, toks128, 0);
	check_match(">", toks128, 1);
}

typedef struct bad_row {
	const char *s;
	int code;
} bad_row;

static const bad_row bad_patterns[] = {
	{"", EBUS_ERR_TOPIC_EMPTY},
	{".", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{".a", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a.", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a..b", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"*.", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"*..a", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a b", EBUS_ERR_TOPIC_BAD_CHAR},
	{" ", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a\tb", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a\nb", EBUS_ERR_TOPIC_BAD_CHAR},
	{"\x7f", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a.\x80", EBUS_ERR_TOPIC_BAD_CHAR},
	{"caf\xc3\xa9", EBUS_ERR_TOPIC_BAD_CHAR},
	{"\x01*", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a*", EBUS_ERR_PATTERN_WILDCARD},
	{"*b", EBUS_ERR_PATTERN_WILDCARD},
	{">x", EBUS_ERR_PATTERN_WILDCARD},
	{"x>", EBUS_ERR_PATTERN_WILDCARD},
	{"**", EBUS_ERR_PATTERN_WILDCARD},
	{">>", EBUS_ERR_PATTERN_WILDCARD},
	{"*>", EBUS_ERR_PATTERN_WILDCARD},
	{">*", EBUS_ERR_PATTERN_WILDCARD},
	{"a.b*.c", EBUS_ERR_PATTERN_WILDCARD},
	{"a.*b.>", EBUS_ERR_PATTERN_WILDCARD},
	{"a.b.c>", EBUS_ERR_PATTERN_WILDCARD},
	{"a*b", EBUS_ERR_PATTERN_WILDCARD},
	{"a.>.b", EBUS_ERR_PATTERN_GT_LAST},
	{">.a", EBUS_ERR_PATTERN_GT_LAST},
	{">.>", EBUS_ERR_PATTERN_GT_LAST},
	{">.*", EBUS_ERR_PATTERN_GT_LAST},
	{"*.>.*", EBUS_ERR_PATTERN_GT_LAST},
	/* precedence: the first offending byte from the left decides */
	{">.", EBUS_ERR_PATTERN_GT_LAST},      /* the '.' after '>' comes first */
	{">..", EBUS_ERR_PATTERN_GT_LAST},
	{"a.>.b c", EBUS_ERR_PATTERN_GT_LAST},
	{"a.>. ", EBUS_ERR_PATTERN_GT_LAST},
	{"a*. b", EBUS_ERR_PATTERN_WILDCARD},
	{"a .b*", EBUS_ERR_TOPIC_BAD_CHAR},
	{"* ", EBUS_ERR_TOPIC_BAD_CHAR},       /* a bad byte is bad before it is "after a wildcard" */
	{"*\x7f", EBUS_ERR_TOPIC_BAD_CHAR},
	{"..*x", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a**.>.b", EBUS_ERR_PATTERN_WILDCARD},
	{"a.>x.b", EBUS_ERR_PATTERN_WILDCARD},
};

/* Strings longer than EBUS_TOPIC_MAX, built at run time. */
static void check_bad_pattern(const char *s, int code)
{
	size_t len = SENTINEL;
	int matched = SENTINEL;
	CHECK_MSG(ebus_pattern_validate(s) == code, "ebus_pattern_validate('%s') = %s, want %s", s,
	          ebus_errname(ebus_pattern_validate(s)), ebus_errname(code));
	CHECK_EQ_INT(ebus_pattern_check(s, &len), code);
	CHECK_EQ_U64(len, SENTINEL);
	CHECK_EQ_INT(ebus_pattern_match(s, "a", &matched), code);
	CHECK_EQ_INT(matched, SENTINEL);
	/* pattern errors come before topic errors */
	CHECK_EQ_INT(ebus_pattern_match(s, "a.*", &matched), code);
	CHECK_EQ_INT(matched, SENTINEL);
	CHECK(!ref_valid_pattern(s));
	/* without wildcards, the same code as for a literal topic */
	if (!strchr(s, '*') && !strchr(s, '>'))
		CHECK_EQ_INT(ebus_topic_validate(s), code);
}

static void test_bad_patterns(void)
{
	for (size_t i = 0; i < sizeof bad_patterns / sizeof bad_patterns[0]; i++)
		check_bad_pattern(bad_patterns[i].s, bad_patterns[i].code);
	CHECK_EQ_INT(ebus_pattern_validate(NULL), EBUS_ERR_NULL);
	int matched = SENTINEL;
	CHECK_EQ_INT(ebus_pattern_match(NULL, "a", &matched), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_pattern_match("a", NULL, &matched), EBUS_ERR_NULL);
	CHECK_EQ_INT(matched, SENTINEL);
	CHECK_EQ_INT(ebus_pattern_match("a", "a", NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_pattern_match("a b", "a", NULL), EBUS_ERR_NULL); /* NULL first */

	/* length: 255 bytes are fine, byte 256 is too long whatever it is,
	 * but an offending byte within the first 255 wins */
	char s[400];
	memset(s, 'a', sizeof s - 1);
	s[sizeof s - 1] = 0;
	s[EBUS_TOPIC_MAX] = 0;
	CHECK_OK(ebus_pattern_validate(s));
	s[EBUS_TOPIC_MAX] = 'a';
	s[EBUS_TOPIC_MAX + 1] = 0;
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG);
	s[EBUS_TOPIC_MAX] = '.';
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG);
	s[EBUS_TOPIC_MAX] = '*';
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG);
	s[EBUS_TOPIC_MAX] = ' ';
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG);
	s[EBUS_TOPIC_MAX + 1] = 'a'; /* 399 bytes */
	s[EBUS_TOPIC_MAX] = 'a';
	s[300] = ' ';
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG); /* bad byte beyond 255 */
	s[10] = ' ';
	check_bad_pattern(s, EBUS_ERR_TOPIC_BAD_CHAR);
	s[10] = '*';
	check_bad_pattern(s, EBUS_ERR_PATTERN_WILDCARD);
	s[9] = '.';
	s[11] = '.';
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG); /* "*" is a whole token there */
	s[254] = '.';
	check_bad_pattern(s, EBUS_ERR_TOPIC_TOO_LONG);
	s[253] = '.'; /* empty token at 254, before byte 256 */
	check_bad_pattern(s, EBUS_ERR_TOPIC_EMPTY_TOKEN);
	s[253] = '>'; /* "...a>.a..." */
	check_bad_pattern(s, EBUS_ERR_PATTERN_WILDCARD);
	s[252] = '.'; /* '>' token followed by '.' at 254 */
	check_bad_pattern(s, EBUS_ERR_PATTERN_GT_LAST);
	/* 255 bytes ending in ".>" are valid */
	s[EBUS_TOPIC_MAX] = 0;
	s[253] = '.';
	s[254] = '>';
	s[252] = 'a';
	CHECK_OK(ebus_pattern_validate(s));
	CHECK(ref_valid_pattern(s));
}

static const bad_row bad_topics[] = {
	{"", EBUS_ERR_TOPIC_EMPTY},
	{".", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a..b", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a.", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a b", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a.\x80", EBUS_ERR_TOPIC_BAD_CHAR},
	{"*", EBUS_ERR_TOPIC_WILDCARD},
	{">", EBUS_ERR_TOPIC_WILDCARD},
	{"a.*", EBUS_ERR_TOPIC_WILDCARD},
	{"a.>", EBUS_ERR_TOPIC_WILDCARD},
	{"a*", EBUS_ERR_TOPIC_WILDCARD},
	{"$ebus.>", EBUS_ERR_TOPIC_WILDCARD},
};

static void test_bad_topics(void)
{
	static const char *patterns[] = {">", "*", "a.>", "a", "$ebus.>"};
	for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
		for (size_t i = 0; i < sizeof bad_topics / sizeof bad_topics[0]; i++) {
			int matched = SENTINEL;
			int rc = ebus_pattern_match(patterns[p], bad_topics[i].s, &matched);
			CHECK_MSG(rc == bad_topics[i].code, "ebus_pattern_match('%s', '%s') = %s, want %s",
			          patterns[p], bad_topics[i].s, ebus_errname(rc),
			          ebus_errname(bad_topics[i].code));
			CHECK_EQ_INT(matched, SENTINEL);
			CHECK(!ref_valid_topic(bad_topics[i].s));
		}
		char s[300];
		int matched = SENTINEL;
		memset(s, 'a', sizeof s - 1);
		s[sizeof s - 1] = 0;
		CHECK_EQ_INT(ebus_pattern_match(patterns[p], s, &matched), EBUS_ERR_TOPIC_TOO_LONG);
		CHECK_EQ_INT(matched, SENTINEL);
	}
}

/* ---- randomized property check ------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void)
{
	return tu_mix(rng_state++);
}
static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* Joins k tokens drawn from `toks` into out. */
static void rnd_tokens(char *out, const char *const *toks, unsigned ntoks, unsigned k)
{
	out[0] = 0;
	for (unsigned i = 0; i < k; i++) {
		if (i)
			strcat(out, ".");
		strcat(out, toks[rnd_below(ntoks)]);
	}
}

static void test_random(void)
{
	uint64_t cases = tu_param("EBUS_STRESS_PATTERN_CASES", 100000, 10000000);
	static const char *const ptoks[] = {"a", "b", "ab", "$ebus", "$", "*", "*", ">", ">"};
	static const char *const ttoks[] = {"a", "b", "ab", "$ebus", "$"};
	static const char alphabet[] = {'a', 'b', '.', '.', '*', '>', '$', ' ', '\x7f', '\x80', '~', 'a'};
	uint64_t matches = 0, nonmatches = 0, valid = 0, invalid = 0, gt_mid = 0, derived = 0;
	rng_state = 0x5eed;
	for (uint64_t c = 0; c < cases; c++) {
		char p[EBUS_TOPIC_MAX + 64], t[EBUS_TOPIC_MAX + 64];
		int matched = SENTINEL, rc;

		/* 1. token strings: validity and matching against the reference */
		rnd_tokens(p, ptoks, sizeof ptoks / sizeof ptoks[0], 1 + rnd_below(5));
		rnd_tokens(t, ttoks, sizeof ttoks / sizeof ttoks[0], 1 + rnd_below(5));
		rc = ebus_pattern_match(p, t, &matched);
		if (ref_valid_pattern(p)) {
			CHECK_MSG(rc == EBUS_OK, "'%s': %s", p, ebus_errname(rc));
			CHECK_MSG(matched == ref_match(p, t), "'%s' vs '%s': %d, reference %d", p, t,
			          matched, ref_match(p, t));
			CHECK(ebus_pattern_matches(p, strlen(p), t, strlen(t)) == (matched == 1));
			if (matched)
				matches++;
			else
				nonmatches++;
		} else {
			/* only '>' before the end can make these invalid */
			CHECK_MSG(rc == EBUS_ERR_PATTERN_GT_LAST, "'%s': %s", p, ebus_errname(rc));
			CHECK_EQ_INT(matched, SENTINEL);
			gt_mid++;
		}

		/* 2. random bytes: validity against the reference, topic vs pattern */
		unsigned n = rnd_below(EBUS_TOPIC_MAX + 8);
		if (rnd_below(4) == 0)
			n = rnd_below(8);
		for (unsigned i = 0; i < n; i++)
			p[i] = alphabet[rnd_below(sizeof alphabet)];
		p[n] = 0;
		int rp = ebus_pattern_validate(p), rt = ebus_topic_validate(p);
		CHECK_MSG((rp == EBUS_OK) == ref_valid_pattern(p), "'%s': %s", p, ebus_errname(rp));
		CHECK_MSG((rt == EBUS_OK) == ref_valid_topic(p), "'%s': %s", p, ebus_errname(rt));
		if (rt == EBUS_OK)
			CHECK_EQ_INT(rp, EBUS_OK);
		if (!strchr(p, '*') && !strchr(p, '>'))
			CHECK_EQ_INT(rp, rt);
		else if (rp == EBUS_OK)
			CHECK_EQ_INT(rt, EBUS_ERR_TOPIC_WILDCARD);
		if (rp == EBUS_OK)
			valid++;
		else
			invalid++;

		/* 3. a pattern derived from a topic matches it */
		unsigned k = 1 + rnd_below(6), cut;
		rnd_tokens(t, ttoks, sizeof ttoks / sizeof ttoks[0], k);
		cut = rnd_below(k + 1); /* tokens from `cut` on become '>' (k: none) */
		p[0] = 0;
		const char *q = t;
		bool first_wild = false;
		for (unsigned i = 0; i < k && i <= cut; i++) {
			const char *e = strchr(q, '.');
			size_t tl = e ? (size_t)(e - q) : strlen(q);
			if (i)
				strcat(p, ".");
			if (i == cut) {
				strcat(p, ">");
			} else if (rnd_below(3) == 0) {
				strcat(p, "*");
			} else {
				strncat(p, q, tl);
			}
			if (i == 0)
				first_wild = p[0] == '*' || p[0] == '>';
			q = e ? e + 1 : q + tl;
		}
		bool reserved = strncmp(t, EBUS_META_PREFIX, strlen(EBUS_META_PREFIX)) == 0;
		matched = SENTINEL;
		CHECK_OK(ebus_pattern_match(p, t, &matched));
		CHECK_MSG(matched == !(first_wild && reserved), "derived '%s' vs '%s': %d", p, t,
		          matched);
		derived++;
	}
	printf("matches %" PRIu64 ", non-matches %" PRIu64 ", GT_LAST %" PRIu64
	       ", random valid %" PRIu64 ", random invalid %" PRIu64 ", derived %" PRIu64 "\n",
	       matches, nonmatches, gt_mid, valid, invalid, derived);
	/* the generators reach every outcome (deterministic: the seed is fixed) */
	CHECK(matches > cases / 50);
	CHECK(nonmatches > cases / 50);
	CHECK(gt_mid > 0);
	CHECK(valid > 0 && invalid > 0);
}

int main(void)
{
	TU_RUN(test_match_table);
	TU_RUN(test_long);
	TU_RUN(test_bad_patterns);
	TU_RUN(test_bad_topics);
	TU_RUN(test_random);
	return tu_finish("test_patterns");
}
