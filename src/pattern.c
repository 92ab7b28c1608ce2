/*
 * Subscription patterns: NATS subject syntax with the '*' and '>'
 * wildcards. Pure string functions, no allocation, no recursion; the
 * subscriber registry (subs.c, topic.c) calls them when a pattern is
 * subscribed and when a topic is interned, never per event.
 *
 * Validation follows ebus_topic_check (topic.c) byte for byte, so a string
 * without '*' or '>' gets the same code from both, and every valid literal
 * topic is a valid pattern. Precedence when several errors apply: the bytes
 * are read left to right and the first byte that makes the string invalid
 * decides; a string with no such byte in its first EBUS_TOPIC_MAX bytes but
 * a byte beyond them is EBUS_ERR_TOPIC_TOO_LONG (never more than
 * EBUS_TOPIC_MAX + 1 bytes are read). At each byte:
 *   - '.' ending an empty token: EBUS_ERR_TOPIC_EMPTY_TOKEN;
 *   - '.' ending a '>' token: EBUS_ERR_PATTERN_GT_LAST (">." included);
 *   - a byte outside 0x21..0x7e: EBUS_ERR_TOPIC_BAD_CHAR;
 *   - a wildcard after other bytes of its token ("a*"), or any byte after a
 *     wildcard in the same token ("*a", "**"): EBUS_ERR_PATTERN_WILDCARD.
 * At the end, an empty last token (or "." handled above): EMPTY_TOKEN.
 */
#include "topic.h"

#define META_PREFIX_LEN (sizeof EBUS_META_PREFIX - 1)

static inline bool is_wild(unsigned char c)
{
	return c == '*' || c == '>';
}

int ebus_pattern_check(const char *pattern, size_t *len_out)
{
	size_t i, tok = 0;       /* bytes in the current token */
	unsigned char wild = 0;  /* the current token is exactly this wildcard */
	if (!pattern)
		return EBUS_ERR_NULL;
	if (!pattern[0])
		return EBUS_ERR_TOPIC_EMPTY;
	for (i = 0; pattern[i]; i++) {
		unsigned char c = (unsigned char)pattern[i];
		if (i >= EBUS_TOPIC_MAX)
			return EBUS_ERR_TOPIC_TOO_LONG;
		if (c == '.') {
			if (tok == 0)
				return EBUS_ERR_TOPIC_EMPTY_TOKEN;
			if (wild == '>')
				return EBUS_ERR_PATTERN_GT_LAST;
			tok = 0;
			wild = 0;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f)
			return EBUS_ERR_TOPIC_BAD_CHAR;
		if (wild || (tok > 0 && is_wild(c)))
			return EBUS_ERR_PATTERN_WILDCARD;
		if (is_wild(c))
			wild = c;
		tok++;
	}
	if (tok == 0)
		return EBUS_ERR_TOPIC_EMPTY_TOKEN;
	if (len_out)
		*len_out = i;
	return EBUS_OK;
}

bool ebus_pattern_has_wildcard(const char *pattern, size_t len)
{
	/* In a valid pattern '*' and '>' only occur as whole tokens. */
	for (size_t i = 0; i < len; i++)
		if (is_wild((unsigned char)pattern[i]))
			return true;
	return false;
}

/* End of the token that starts at s[i]: the index of its '.' or n. */
static inline size_t tok_end(const char *s, size_t i, size_t n)
{
	while (i < n && s[i] != '.')
		i++;
	return i;
}

bool ebus_pattern_matches(const char *pattern, size_t plen, const char *name, size_t nlen)
{
	size_t pi = 0, ni = 0;
	if (plen == 0 || nlen == 0)
		return false;
	/* A pattern that starts with a wildcard token skips reserved topics. */
	if (is_wild((unsigned char)pattern[0]) && (plen == 1 || pattern[1] == '.') &&
	    nlen >= META_PREFIX_LEN && memcmp(name, EBUS_META_PREFIX, META_PREFIX_LEN) == 0)
		return false;
	/* Invariant at the top: both have a token starting at pi / ni. */
	for (;;) {
		size_t pe = tok_end(pattern, pi, plen), ne = tok_end(name, ni, nlen);
		size_t pl = pe - pi, nl = ne - ni;
		if (pl == 1 && pattern[pi] == '>')
			return true; /* one or more tokens left in name: at least this one */
		if (!(pl == 1 && pattern[pi] == '*') &&
		    (pl != nl || memcmp(pattern + pi, name + ni, pl) != 0))
			return false;
		if (pe == plen || ne == nlen)
			return pe == plen && ne == nlen;
		pi = pe + 1;
		ni = ne + 1;
	}
}

int ebus_pattern_validate(const char *pattern)
{
	return ebus_pattern_check(pattern, NULL);
}

int ebus_pattern_match(const char *pattern, const char *topic, int *matched)
{
	size_t plen, nlen;
	int rc;
	if (!matched)
		return EBUS_ERR_NULL;
	rc = ebus_pattern_check(pattern, &plen);
	if (rc != EBUS_OK)
		return rc;
	rc = ebus_topic_check(topic, &nlen);
	if (rc != EBUS_OK)
		return rc;
	*matched = ebus_pattern_matches(pattern, plen, topic, nlen) ? 1 : 0;
	return EBUS_OK;
}
