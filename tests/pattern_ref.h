/*
 * Reference implementations of the pattern rules, written from the
 * definitions and independently of src/pattern.c: split into tokens, check
 * each token, match by backtracking recursion. Slow and simple on purpose.
 * Used by tests/test_patterns.c and fuzz/fuzz_pattern.c.
 *
 *   valid topic:   1..EBUS_TOPIC_MAX bytes, tokens separated by '.', every
 *                  token non-empty, bytes 0x21..0x7e, no '*' or '>'.
 *   valid pattern: the same, except that a token may be exactly "*", or
 *                  exactly ">" if it is the last token.
 *   match:         "*" is one token, ">" is one or more tokens, any other
 *                  token is itself (case-sensitive); a pattern whose first
 *                  token is a wildcard does not match a name whose first
 *                  token is "$ebus" followed by more tokens.
 */
#ifndef EBUS_PATTERN_REF_H
#define EBUS_PATTERN_REF_H

#include <ebus/ebus.h>

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct ref_tok {
	const char *p;
	size_t n;
} ref_tok;

#define REF_MAX_TOKENS (EBUS_TOPIC_MAX / 2 + 1)

/* Splits s[0..n) on '.'; returns the token count (empty tokens included),
 * or 0 if there would be more than `max`. */
static inline size_t ref_split(const char *s, size_t n, ref_tok *t, size_t max)
{
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (k == max)
				return 0;
			t[k].p = s + start;
			t[k].n = i - start;
			k++;
			start = i + 1;
		}
	}
	return k;
}

static inline bool ref_tok_is(const ref_tok *t, const char *lit)
{
	return t->n == strlen(lit) && memcmp(t->p, lit, t->n) == 0;
}

static inline bool ref_valid(const char *s, bool pattern)
{
	ref_tok t[REF_MAX_TOKENS + 1];
	size_t n = strlen(s), k;
	if (n < 1 || n > EBUS_TOPIC_MAX)
		return false;
	k = ref_split(s, n, t, REF_MAX_TOKENS + 1);
	if (k == 0)
		return false;
	for (size_t i = 0; i < k; i++) {
		bool wild = false;
		if (t[i].n == 0)
			return false;
		for (size_t j = 0; j < t[i].n; j++) {
			unsigned char c = (unsigned char)t[i].p[j];
			if (c < 0x21 || c > 0x7e)
				return false;
			if (c == '*' || c == '>')
				wild = true;
		}
		if (wild && (!pattern || t[i].n != 1))
			return false;
		if (ref_tok_is(&t[i], ">") && i != k - 1)
			return false;
	}
	return true;
}

static inline bool ref_valid_topic(const char *s)
{
	return ref_valid(s, false);
}

static inline bool ref_valid_pattern(const char *s)
{
	return ref_valid(s, true);
}

static inline bool ref_match_toks(const ref_tok *pt, size_t np, const ref_tok *nt, size_t nn)
{
	if (np == 0)
		return nn == 0;
	if (ref_tok_is(&pt[0], ">")) {
		for (size_t take = 1; take <= nn; take++)
			if (ref_match_toks(pt + 1, np - 1, nt + take, nn - take))
				return true;
		return false;
	}
	if (nn == 0)
		return false;
	if (!ref_tok_is(&pt[0], "*") &&
	    !(pt[0].n == nt[0].n && memcmp(pt[0].p, nt[0].p, pt[0].n) == 0))
		return false;
	return ref_match_toks(pt + 1, np - 1, nt + 1, nn - 1);
}

/* Both strings must be valid (pattern, literal topic). */
static inline bool ref_match(const char *pattern, const char *name)
{
	ref_tok pt[REF_MAX_TOKENS], nt[REF_MAX_TOKENS];
	size_t np = ref_split(pattern, strlen(pattern), pt, REF_MAX_TOKENS);
	size_t nn = ref_split(name, strlen(name), nt, REF_MAX_TOKENS);
	if (np > 0 && (ref_tok_is(&pt[0], "*") || ref_tok_is(&pt[0], ">")) && nn >= 2 &&
	    ref_tok_is(&nt[0], "$ebus"))
		return false;
	return ref_match_toks(pt, np, nt, nn);
}

#endif
