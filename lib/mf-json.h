/*
 * mf-json.h - the one strict JSON scanner of mailfort: what an audit event
 * may hold, checked by the producers (mf_event_add_json) before a record
 * goes to the spool and by mailfort-auditd before it is stored as jsonb.
 *
 * mf_json_scan accepts exactly one JSON value (RFC 8259), white space
 * (space, tab, LF, CR) allowed around it, and only what PostgreSQL's
 * jsonb stores and json-c (mf_audit_derive) reads back the same way:
 *
 *   - strings in valid UTF-8 (no overlong form, no encoded surrogate,
 *     nothing above U+10FFFF), no raw control character below 0x20, only
 *     the escapes \" \\ \/ \b \f \n \r \t and \uXXXX;
 *   - no \u0000 escape (jsonb cannot hold U+0000: MF_JSON_ERR_NUL);
 *     "\\u0000", an escaped backslash before the text u0000, is fine;
 *   - a \uD800-\uDBFF escape only directly followed by a \uDC00-\uDFFF
 *     escape (a surrogate pair); a lone high or low surrogate is refused;
 *   - numbers as RFC 8259 writes them (no leading zero, +, NaN, Infinity,
 *     no "1." or ".5") with at most MF_JSON_MAX_DIGITS digits before and
 *     after the point and an exponent of at most MF_JSON_MAX_EXPONENT in
 *     absolute value: far inside what jsonb's numeric stores (131,072
 *     digits before the point, 16,383 after);
 *   - at most max_depth nested arrays and objects (MF_JSON_MAX_DEPTH for
 *     a whole record: json-c refuses 32 and more);
 *   - the literals true, false and null (also as the whole text).
 * Nothing else is accepted: no comments, single quotes, trailing commas.
 * Refusing a little more than jsonb only means that a record is stored as
 * type "invalid" with its text, never that one is lost.  Whatever the
 * scanner accepts, json-c in strict mode accepts too.
 *
 * mf_json_scan returns 0 for valid text, -1 otherwise with scan->error
 * (mf_json_strerror names it) and scan->error_at (the offset where the
 * scan stopped).  While it scans it also reports each member of a
 * top-level object to scan->member (if set) and notes the largest number
 * and nesting it saw, so that a caller can read fields without a second
 * parse.  No allocation, no global state.
 */
#ifndef MF_JSON_H
#define MF_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define MF_JSON_MAX_DEPTH    31
#define MF_JSON_MAX_DIGITS   1000
#define MF_JSON_MAX_EXPONENT 1000

enum mf_json_error {
	MF_JSON_OK = 0,
	MF_JSON_ERR_SYNTAX,    /* not JSON, or more than one value */
	MF_JSON_ERR_UTF8,      /* a string is not valid UTF-8 */
	MF_JSON_ERR_NUL,       /* a \u0000 escape */
	MF_JSON_ERR_SURROGATE, /* a lone surrogate escape */
	MF_JSON_ERR_NUMBER,    /* a number with too many digits or too large an exponent */
	MF_JSON_ERR_DEPTH,     /* nested deeper than max_depth */
};

/* One member of the top-level object, as it is in the text. */
struct mf_json_member {
	const char *key; /* between the quotes */
	size_t key_len;
	bool key_escaped;  /* the key holds a backslash escape */
	const char *value; /* the whole value: a string with its quotes */
	size_t value_len;
	bool value_escaped; /* the value is a string with a backslash escape */
};

struct mf_json_scan {
	/* set by the caller (memset the struct to 0 first) */
	int max_depth; /* 0: MF_JSON_MAX_DEPTH */
	void (*member)(void *context, const struct mf_json_member *m);
	void *context;
	/* set by mf_json_scan */
	enum mf_json_error error;
	size_t error_at;
	int depth_seen;     /* deepest nesting of arrays and objects */
	size_t digits_seen; /* most digits before or after a number's point */
	bool exponent_seen; /* some number has an exponent */
};

/* Check len bytes at text (NUL bytes in them are refused); 0 / -1. */
int mf_json_scan(const char *text, size_t len, struct mf_json_scan *scan);

/* A short English name of an error ("a \\u0000 escape", ...). */
const char *mf_json_strerror(enum mf_json_error error);

/* Length of the valid UTF-8 sequence at s (len > 0 bytes), or 0 if it is
   not one; *prefix_r is then how many bytes one U+FFFD should replace
   (the longest start of a valid sequence, at least 1). */
size_t mf_utf8_seq(const unsigned char *s, size_t len, size_t *prefix_r);

/* True if len bytes at s are valid UTF-8 (NUL bytes included). */
bool mf_utf8_valid(const void *s, size_t len);

#endif
