/*
 * fuzz-json-scan.c - the strict JSON scanner (mf_json_scan, mf-json.h) over
 * arbitrary bytes, checked against json-c and against the event builder.
 *
 * A crash, a leak, an out-of-bounds read or an abort() is a finding.  For
 * every input the scanner accepts: json-c in strict mode, validating
 * UTF-8, must parse it as one value (json-c reads what the producers
 * embed and what auditd stores); the text must be valid UTF-8 without a
 * NUL byte; the scan must give the same answer at a lower depth limit
 * when it went no deeper.  For every input: an event holding it as a
 * field (embedded or quoted) must be accepted by the scanner as a whole
 * record, which is what mailfort-auditd stores as it is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "mf-event.h"
#include "mf-json.h"
#include "mf-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Top-level members must lie inside the text. */
struct bounds {
	const char *start, *end;
};

static void check_member(void *context, const struct mf_json_member *m)
{
	const struct bounds *b = context;

	if (m->key < b->start || m->key + m->key_len > b->end || m->value < b->start ||
	    m->value + m->value_len > b->end || m->value_len == 0)
		abort();
	if (m->value_escaped && m->value[0] != '"')
		abort();
}

/* json-c, strict and validating UTF-8, reads text as exactly one value. */
static int jsonc_accepts(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	size_t end;
	int ok;

	if (tok == NULL)
		return 0;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* with the terminating NUL, which ends a bare number */
	obj = json_tokener_parse_ex(tok, text, (int)len + 1);
	ok = json_tokener_get_error(tok) == json_tokener_success;
	if (ok) {
		end = json_tokener_get_parse_end(tok);
		while (end < len && strchr(" \t\r\n", text[end]) != NULL)
			end++;
		ok = end == len;
	}
	json_object_put(obj);
	json_tokener_free(tok);
	return ok;
}

static void quiet(enum mf_log_level level, const char *msg, void *context)
{
	(void)level;
	(void)msg;
	(void)context;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_json_scan scan, again;
	struct bounds b;
	struct mf_event *ev;
	const char *json;
	size_t jlen;
	char *s;

	if (size > 1 << 20)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	mf_log_set_handler(quiet, NULL);

	b.start = s;
	b.end = s + size;
	memset(&scan, 0, sizeof(scan));
	scan.member = check_member;
	scan.context = &b;
	if (mf_json_scan(s, size, &scan) == 0) {
		if (scan.error != MF_JSON_OK || scan.depth_seen > MF_JSON_MAX_DEPTH ||
		    scan.digits_seen > MF_JSON_MAX_DIGITS)
			abort();
		if (!mf_utf8_valid(s, size) || memchr(s, '\0', size) != NULL)
			abort();
		if (!jsonc_accepts(s, size))
			abort(); /* json-c must read all the scanner accepts */
		memset(&again, 0, sizeof(again));
		again.max_depth = scan.depth_seen > 0 ? scan.depth_seen : 1;
		if (mf_json_scan(s, size, &again) != 0)
			abort();
	} else {
		if (scan.error == MF_JSON_OK || scan.error_at > size)
			abort();
		if (scan.error == MF_JSON_ERR_DEPTH && scan.depth_seen != MF_JSON_MAX_DEPTH)
			abort();
	}

	/* whatever a producer adds, auditd stores the event as it is */
	ev = mf_event_new("read", "n1");
	mf_event_add_json(ev, "x", s);
	json = mf_event_json(ev, &jlen);
	if (json != NULL) {
		memset(&scan, 0, sizeof(scan));
		if (mf_json_scan(json, jlen, &scan) != 0 || !jsonc_accepts(json, jlen))
			abort();
	}
	mf_event_free(&ev);
	free(s);
	return 0;
}
