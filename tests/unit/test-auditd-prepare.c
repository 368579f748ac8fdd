/*
 * test-auditd-prepare.c - mailfort-auditd's one-pass check of a record
 * (auditd/prepare.c): jsonb's grammar, and the indexed columns read on the
 * way, which must be exactly what mf_audit_derive (json-c, also used by
 * "mailfortctl audit verify") derives, or else left to mf_audit_derive.
 *
 * Fixed cases for each reason to leave a record to mf_audit_derive, then
 * random mutations of a typical event: whenever the fast path answers, its
 * columns must equal mf_audit_derive's.
 */
#include "../../auditd/prepare.c"
#include "../../auditd/producers.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tap.h"

static bool str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool cols_same(const struct mf_audit_cols *a, const struct mf_audit_cols *b)
{
	return str_same(a->type, b->type) && str_same(a->username, b->username) &&
	       str_same(a->session, b->session) && str_same(a->ip, b->ip) &&
	       a->time_ok == b->time_ok && (!a->time_ok || a->time_us == b->time_us);
}

/* 1: fast path taken and equal to mf_audit_derive; 0: left to it;
   -1: fast path taken and different (or json-c refuses what it took). */
static int check(const char *s, size_t len)
{
	struct jscan j;
	struct mf_audit_cols fast, slow;
	struct mf_error err;
	int ret;

	if (!json_strict_scan(s, len, &j) || fast_derive(&j, &fast) < 0)
		return 0;
	if (mf_audit_derive(s, len, &slow, &err) < 0) {
		mf_audit_cols_free(&fast);
		return -1;
	}
	ret = cols_same(&fast, &slow) ? 1 : -1;
	mf_audit_cols_free(&fast);
	mf_audit_cols_free(&slow);
	return ret;
}

static int check_str(const char *s)
{
	return check(s, strlen(s));
}

#define EV_HEAD "{\"v\":1,\"type\":\"read\",\"time\":\"2026-11-27T09:19:41.809721Z\","
#define EV_TAIL                                                                                \
	"\"service\":\"imap\",\"session\":\"s1\",\"ip\":\"192.0.2.10\",\"mailbox\":\"INBOX\"," \
	"\"uid\":1,\"message_id\":\"<m@example.test>\"}"

/* The NUL rule: a \u0000 escape is refused (jsonb cannot hold it), an
   escaped backslash before the text "u0000" is an ordinary string. */
static void test_nul_escape(void)
{
	static const char nul[] = "{\"type\":\"read\",\"x\":\"a\\u0000\"}";
	static const char text[] = "{\"type\":\"read\",\"x\":\"a\\\\u0000\"}";
	struct jscan j;

	ok(!json_strict_scan(nul, sizeof(nul) - 1, &j) && j.scan.error == MF_JSON_ERR_NUL,
	   "a \\u0000 escape is refused as a NUL character");
	ok(json_strict_scan(text, sizeof(text) - 1, &j) && j.scan.error == MF_JSON_OK,
	   "an escaped backslash before u0000 is valid JSON (%s)", text);
}

/* Where the producers' check and auditd's used to disagree: now an event
   field is embedded as JSON exactly when auditd stores a record holding
   that value as it is, and every event a producer writes is stored as it
   is. */
static void test_same_answer(void)
{
	static const char *const values[] = {
	    "\"\\ud83d\\ude00\"",
	    "\"\\ud800\"",
	    "\"\\udc00x\"",
	    "\"\\ud800\\u0041\"",
	    "\"a\\u0000\"",
	    "\"a\\\\u0000\"",
	    "\"\\\\\\u0000\"",
	    "1e1000",
	    "1e1001",
	    "1e99999",
	    "-0.5e-3",
	    "[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]",
	    "null",
	    "{\"a\":[]}",
	};
	char record[256], deep[128];
	int agree = 0, stored = 0, n = 0;

	for (size_t i = 0; i <= MF_N_ELEMENTS(values); i++) {
		const char *v = values[i < MF_N_ELEMENTS(values) ? i : 0];
		struct mf_event *ev = mf_event_new("read", "n1");
		const char *json;
		struct jscan j;
		size_t len;
		bool embedded, taken;

		if (i == MF_N_ELEMENTS(values)) {
			/* as deep as a field may go */
			memset(deep, '[', MF_JSON_MAX_DEPTH);
			deep[MF_JSON_MAX_DEPTH] = '\0';
			v = deep;
		}
		snprintf(record, sizeof(record), "{\"type\":\"read\",\"x\":%s}", v);
		if (v == deep) {
			/* a field at depth MF_JSON_MAX_DEPTH - 1 */
			char *p = record + strlen("{\"type\":\"read\",\"x\":");
			int d = MF_JSON_MAX_DEPTH - 1;

			memset(p, '[', (size_t)d);
			strcpy(p + d, "1");
			memset(p + d + 1, ']', (size_t)d);
			strcpy(p + 2 * d + 1, "}");
			v = p;
			p[2 * d + 1] = '\0';
			mf_event_add_json(ev, "x", v);
			p[2 * d + 1] = '}';
		} else {
			mf_event_add_json(ev, "x", v);
		}
		json = mf_event_json(ev, &len);
		embedded = json != NULL && strstr(json, v) != NULL && strstr(json, v)[-1] == ':' &&
		           strstr(json, v)[-2] == '"';
		taken = json_strict_scan(record, strlen(record), &j);
		if (embedded == taken)
			agree++;
		else
			diag("producer %s, auditd %s: %s", embedded ? "embeds" : "quotes",
			     taken ? "stores" : "refuses", record);
		if (json != NULL && json_strict_scan(json, len, &j))
			stored++;
		else
			diag("auditd refuses the event: %s", json != NULL ? json : "(null)");
		n++;
		mf_event_free(&ev);
	}
	ok(agree == n, "producer and auditd give the same answer for %d values", n);
	ok(stored == n, "auditd stores every event a producer writes as it is");
}

/* A record that is not valid is stored wrapped: the wrapper itself must be
   what jsonb stores, also when the record holds NUL bytes (as U+FFFD). */
static void test_wrap_nul(void)
{
	static const char rec[] = "{\"type\":\"read\",\"user\":\"a\0b\"}\0";
	char *w = wrap_record("invalid", "n1", rec, sizeof(rec) - 1, "record is not valid UTF-8",
	                      NULL, 0);
	struct jscan j;
	struct mf_audit_cols cols;
	struct mf_error err;

	ok(json_strict_scan(w, strlen(w), &j),
	   "the wrapper of a record with NUL bytes is strict JSON");
	ok(strstr(w, "\\u0000") == NULL && strstr(w, "a\xef\xbf\xbd"
	                                             "b\\\"}\xef\xbf\xbd\"") != NULL,
	   "its NUL bytes are kept as U+FFFD: %s", w);
	ok(mf_audit_derive(w, strlen(w), &cols, &err) == 0 && strcmp(cols.type, "invalid") == 0,
	   "and it is an event of type invalid");
	mf_audit_cols_free(&cols);
	free(w);
}

int main(void)
{
	static const char typical[] = EV_HEAD "\"user\":\"alice@example.test\"," EV_TAIL;
	static const char *const left[] = {
	    /* an escape in a field, a key with an escape */
	    EV_HEAD "\"user\":\"\\u0061lice\"," EV_TAIL,
	    "{\"typ\\u0065\":\"read\",\"user\":\"a\"}",
	    /* a field twice, or not a string */
	    "{\"type\":\"read\",\"user\":\"a\",\"user\":\"b\"}",
	    "{\"type\":\"read\",\"user\":7}",
	    "{\"type\":[\"read\"]}",
	    /* numbers json-c might read differently */
	    "{\"type\":\"read\",\"n\":1e5}",
	    "{\"type\":\"read\",\"n\":12345678901234567890}",
	    "{\"type\":\"read\",\"n\":0.12345678901234567890}",
	    /* trailing space (json-c stops before it), not an object */
	    "{\"type\":\"read\"} ",
	    "[{\"type\":\"read\"}]",
	    /* nesting deeper than the fast path goes */
	    "{\"type\":\"read\",\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	    /* no type, or an empty one */
	    "{\"user\":\"a\"}",
	    "{\"type\":\"\"}",
	};
	char buf[sizeof(typical) + 8];
	int bad = 0, fast = 0, n;

	if (sodium_init() < 0)
		return 1;
	ok(check_str(typical) == 1, "a typical event takes the fast path, same columns");
	ok(check_str("{\"type\":\"login\",\"user\":\"j\xc3\xbcrgen\",\"ip\":\"::FFFF:192.0.2.1\","
	             "\"time\":\"2026-01-02T03:04:05.123456789+02:00\",\"session\":\"\"}") == 1,
	   "non-ASCII name, mapped IPv6 address, long fraction and offset: same columns");
	ok(check_str("{\"type\":\"x\",\"ip\":\"not an address\",\"time\":\"yesterday\","
	             "\"n\":-0.5,\"b\":true,\"z\":null,\"o\":{\"user\":\"inner\"}}") == 1,
	   "bad address and time, nested \"user\": same columns");
	ok(check_str(" \t{\"type\":\"x\"}") == 1, "leading white space: same columns");
	for (size_t i = 0; i < MF_N_ELEMENTS(left); i++)
		ok(check_str(left[i]) == 0, "left to mf_audit_derive: %s", left[i]);

	/* random single-byte changes of the typical event */
	srand(5);
	for (int i = 0; i < 200000; i++) {
		size_t at = (size_t)rand() % (sizeof(typical) - 1);
		static const char alphabet[] = "{}[]\":,\\ 0123456789.eE+-tfnu\xc3\xbc";

		memcpy(buf, typical, sizeof(typical));
		n = rand() % 3;
		if (n == 0) /* replace */
			buf[at] = alphabet[rand() % (sizeof(alphabet) - 1)];
		else if (n == 1) /* delete */
			memmove(buf + at, buf + at + 1, sizeof(typical) - at - 1);
		else { /* insert */
			memmove(buf + at + 1, buf + at, sizeof(typical) - at);
			buf[at] = alphabet[rand() % (sizeof(alphabet) - 1)];
		}
		if (!mf_utf8_valid(buf, strlen(buf)))
			continue;
		n = check(buf, strlen(buf));
		if (n < 0 && bad++ < 5)
			diag("fast path differs from mf_audit_derive on: %s", buf);
		fast += n > 0;
	}
	ok(bad == 0, "200,000 mutated events: the fast path never differs from mf_audit_derive");
	ok(fast > 1000, "and it was taken for %d of them", fast);
	test_nul_escape();
	test_same_answer();
	test_wrap_nul();
	return tap_done();
}
