/*
 * json-scan.c - the strict JSON scanner (mf-json.h) and the UTF-8 checks
 * it is built on.
 *
 * A recursive descent over the text that builds nothing: it returns 0 when
 * the text is one value jsonb stores as it is, or -1 with the first reason
 * it found (syntax, UTF-8, \u0000, lone surrogate, number, depth) and where.
 * Recursion is bounded by max_depth (at most MF_JSON_MAX_DEPTH frames).
 */
#include <string.h>

#include "mf-json.h"

struct scanner {
	const unsigned char *start, *p, *end;
	struct mf_json_scan *out;
	int max_depth;
};

static bool fail(struct scanner *s, enum mf_json_error error)
{
	s->out->error = error;
	s->out->error_at = (size_t)(s->p - s->start);
	return false;
}

size_t mf_utf8_seq(const unsigned char *s, size_t len, size_t *prefix_r)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*prefix_r = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3;
	else
		return 0;
	/* Second byte ranges exclude overlongs, surrogates and > U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (i = 1; i <= need; i++) {
		if (i >= len || s[i] < lo || s[i] > hi) {
			*prefix_r = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

bool mf_utf8_valid(const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t i = 0, n, prefix;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = mf_utf8_seq(s + i, len - i, &prefix)) == 0)
			return false;
		i += n;
	}
	return true;
}

static void skip_space(struct scanner *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* Four hex digits at s->p: their value, or -1. */
static int hex4(struct scanner *s)
{
	int v = 0;

	if (s->end - s->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = s->p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	s->p += 4;
	return v;
}

/* A string at s->p (the opening quote); *escaped_r: it held an escape. */
static bool scan_string(struct scanner *s, bool *escaped_r)
{
	size_t n, prefix;
	int u, lo;

	*escaped_r = false;
	s->p++;
	for (;;) {
		/* plain ASCII, the usual case */
		while (s->p < s->end && *s->p >= 0x20 && *s->p < 0x80 && *s->p != '"' &&
		       *s->p != '\\')
			s->p++;
		if (s->p >= s->end)
			return fail(s, MF_JSON_ERR_SYNTAX);
		if (*s->p == '"') {
			s->p++;
			return true;
		}
		if (*s->p < 0x20)
			return fail(s, *s->p == 0 ? MF_JSON_ERR_UTF8 : MF_JSON_ERR_SYNTAX);
		if (*s->p >= 0x80) {
			if ((n = mf_utf8_seq(s->p, (size_t)(s->end - s->p), &prefix)) == 0)
				return fail(s, MF_JSON_ERR_UTF8);
			s->p += n;
			continue;
		}
		/* a backslash */
		*escaped_r = true;
		if (s->end - s->p < 2)
			return fail(s, MF_JSON_ERR_SYNTAX);
		s->p++;
		switch (*s->p++) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			continue;
		case 'u':
			break;
		default:
			s->p--;
			return fail(s, MF_JSON_ERR_SYNTAX);
		}
		if ((u = hex4(s)) < 0)
			return fail(s, MF_JSON_ERR_SYNTAX);
		if (u == 0)
			return fail(s, MF_JSON_ERR_NUL);
		if (u >= 0xdc00 && u <= 0xdfff)
			return fail(s, MF_JSON_ERR_SURROGATE);
		if (u < 0xd800 || u > 0xdbff)
			continue;
		/* a high surrogate: a low one must follow */
		if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
			return fail(s, MF_JSON_ERR_SURROGATE);
		s->p += 2;
		if ((lo = hex4(s)) < 0)
			return fail(s, MF_JSON_ERR_SYNTAX);
		if (lo < 0xdc00 || lo > 0xdfff)
			return fail(s, lo == 0 ? MF_JSON_ERR_NUL : MF_JSON_ERR_SURROGATE);
	}
}

/* Digits at s->p: how many (0: none). */
static size_t scan_digits(struct scanner *s)
{
	const unsigned char *from = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return (size_t)(s->p - from);
}

static bool scan_number(struct scanner *s)
{
	size_t n;

	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0') {
		s->p++;
		n = 1;
	} else if (s->p >= s->end || *s->p < '1' || *s->p > '9') {
		return fail(s, MF_JSON_ERR_SYNTAX);
	} else {
		n = scan_digits(s);
	}
	if (n > MF_JSON_MAX_DIGITS)
		return fail(s, MF_JSON_ERR_NUMBER);
	if (n > s->out->digits_seen)
		s->out->digits_seen = n;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if ((n = scan_digits(s)) == 0)
			return fail(s, MF_JSON_ERR_SYNTAX);
		if (n > MF_JSON_MAX_DIGITS)
			return fail(s, MF_JSON_ERR_NUMBER);
		if (n > s->out->digits_seen)
			s->out->digits_seen = n;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		const unsigned char *e;
		unsigned x = 0;

		s->out->exponent_seen = true;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		e = s->p;
		if (scan_digits(s) == 0)
			return fail(s, MF_JSON_ERR_SYNTAX);
		for (; e < s->p; e++) {
			x = x * 10 + (unsigned)(*e - '0');
			if (x > MF_JSON_MAX_EXPONENT) {
				s->p = e;
				return fail(s, MF_JSON_ERR_NUMBER);
			}
		}
	}
	return true;
}

static bool scan_literal(struct scanner *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, MF_JSON_ERR_SYNTAX);
	s->p += n;
	return true;
}

static bool scan_value(struct scanner *s, int depth, bool *escaped_r);

/* An object or array at s->p, which is at the given depth (0: the top). */
static bool scan_container(struct scanner *s, int depth)
{
	unsigned char close = *s->p == '{' ? '}' : ']';
	bool object = close == '}', escaped;

	if (depth >= s->max_depth)
		return fail(s, MF_JSON_ERR_DEPTH);
	if (depth + 1 > s->out->depth_seen)
		s->out->depth_seen = depth + 1;
	s->p++;
	skip_space(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return true;
	}
	for (;;) {
		struct mf_json_member m;

		if (object) {
			if (s->p >= s->end || *s->p != '"')
				return fail(s, MF_JSON_ERR_SYNTAX);
			m.key = (const char *)s->p + 1;
			if (!scan_string(s, &m.key_escaped))
				return false;
			m.key_len = (size_t)((const char *)s->p - 1 - m.key);
			skip_space(s);
			if (s->p >= s->end || *s->p != ':')
				return fail(s, MF_JSON_ERR_SYNTAX);
			s->p++;
			skip_space(s);
		}
		m.value = (const char *)s->p;
		if (!scan_value(s, depth + 1, &escaped))
			return false;
		if (object && depth == 0 && s->out->member != NULL) {
			m.value_len = (size_t)((const char *)s->p - m.value);
			m.value_escaped = escaped;
			s->out->member(s->out->context, &m);
		}
		skip_space(s);
		if (s->p >= s->end)
			return fail(s, MF_JSON_ERR_SYNTAX);
		if (*s->p == close) {
			s->p++;
			return true;
		}
		if (*s->p != ',')
			return fail(s, MF_JSON_ERR_SYNTAX);
		s->p++;
		skip_space(s);
	}
}

/* A value at s->p (no white space before it). */
static bool scan_value(struct scanner *s, int depth, bool *escaped_r)
{
	*escaped_r = false;
	if (s->p >= s->end)
		return fail(s, MF_JSON_ERR_SYNTAX);
	switch (*s->p) {
	case '"':
		return scan_string(s, escaped_r);
	case '{':
	case '[':
		return scan_container(s, depth);
	case 't':
		return scan_literal(s, "true", 4);
	case 'f':
		return scan_literal(s, "false", 5);
	case 'n':
		return scan_literal(s, "null", 4);
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		return scan_number(s);
	default:
		return fail(s, *s->p == 0 ? MF_JSON_ERR_UTF8 : MF_JSON_ERR_SYNTAX);
	}
}

int mf_json_scan(const char *text, size_t len, struct mf_json_scan *scan)
{
	struct scanner s;
	bool escaped;

	s.start = s.p = (const unsigned char *)text;
	s.end = s.p + len;
	s.out = scan;
	s.max_depth = scan->max_depth > 0 ? scan->max_depth : MF_JSON_MAX_DEPTH;
	scan->error = MF_JSON_OK;
	scan->error_at = 0;
	scan->depth_seen = 0;
	scan->digits_seen = 0;
	scan->exponent_seen = false;
	skip_space(&s);
	if (!scan_value(&s, 0, &escaped))
		return -1;
	skip_space(&s);
	if (s.p != s.end) {
		fail(&s, *s.p == 0 ? MF_JSON_ERR_UTF8 : MF_JSON_ERR_SYNTAX);
		return -1;
	}
	return 0;
}

const char *mf_json_strerror(enum mf_json_error error)
{
	switch (error) {
	case MF_JSON_OK:
		return "valid";
	case MF_JSON_ERR_SYNTAX:
		return "not strict JSON";
	case MF_JSON_ERR_UTF8:
		return "not valid UTF-8";
	case MF_JSON_ERR_NUL:
		return "a \\u0000 escape";
	case MF_JSON_ERR_SURROGATE:
		return "a lone surrogate escape";
	case MF_JSON_ERR_NUMBER:
		return "a number beyond the digit or exponent limit";
	case MF_JSON_ERR_DEPTH:
		return "nested too deep";
	}
	return "unknown error";
}
