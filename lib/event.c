/*
 * event.c - build one audit event as a flat JSON object (mf-event.h) and
 * hand it to the spool receiver.
 *
 * The object grows in one heap buffer.  An allocation failure marks the
 * event failed instead of crashing; mf_event_json then returns NULL and
 * mf_event_append returns -1 with "out of memory" in err.  Strings are
 * escaped by json_escape: the output is always valid JSON in valid UTF-8
 * that PostgreSQL's jsonb stores (a NUL byte, like an invalid UTF-8 byte,
 * becomes U+FFFD: jsonb refuses \u0000).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include "mf-event.h"
#include "mf-json.h"
#include "mf-log.h"
#include "mf-submit.h"

#define EVENT_VERSION  "1"
#define TRUNCATED_MARK " [truncated]"

struct mf_event {
	char *buf;
	size_t len, cap;
	bool failed; /* out of memory: the text is incomplete */
	bool closed; /* the closing brace is at the end of buf */
};

/* A growable byte buffer; on failure it sets *failed and drops the data. */
struct jbuf {
	char *buf;
	size_t len, cap;
	bool failed;
};

static bool jbuf_reserve(struct jbuf *b, size_t more)
{
	size_t cap;
	char *n;

	if (b->failed)
		return false;
	if (b->cap - b->len > more)
		return true;
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap - b->len <= more) {
		if (cap > SIZE_MAX / 2) {
			b->failed = true;
			return false;
		}
		cap *= 2;
	}
	n = realloc(b->buf, cap);
	if (n == NULL) {
		b->failed = true;
		return false;
	}
	b->buf = n;
	b->cap = cap;
	return true;
}

static void jbuf_add(struct jbuf *b, const void *data, size_t len)
{
	if (!jbuf_reserve(b, len))
		return;
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
}

static void jbuf_adds(struct jbuf *b, const char *s)
{
	jbuf_add(b, s, strlen(s));
}

/* Append s as a JSON string (with quotes); cut after max input bytes
   (at a character boundary) and marked, unless max is 0. */
static void json_escape(struct jbuf *b, const char *str, size_t len, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n, prefix, in;
	char esc[7];

	if (str == NULL) {
		jbuf_adds(b, "null");
		return;
	}
	/* Worst case 6 output bytes per input byte; when cutting, a character
	   that starts before max may end up to 3 bytes after it. */
	in = max != 0 && len > max ? max + 3 : len;
	if (in > (SIZE_MAX - 64) / 6) {
		b->failed = true;
		return;
	}
	if (!jbuf_reserve(b, in * 6 + 2 + sizeof(TRUNCATED_MARK)))
		return;
	b->buf[b->len++] = '"';
	while (i < len) {
		if (max != 0 && i >= max) {
			jbuf_adds(b, TRUNCATED_MARK);
			break;
		}
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			/* Plain ASCII: copy the whole run. */
			n = i + 1;
			while (n < len && (max == 0 || n < max) && s[n] >= 0x20 && s[n] < 0x7f &&
			       s[n] != '"' && s[n] != '\\')
				n++;
			memcpy(b->buf + b->len, s + i, n - i);
			b->len += n - i;
			i = n;
			continue;
		}
		if (c == 0) {
			/* PostgreSQL's jsonb refuses \u0000: the event would be
			   stored as "invalid", not under its type */
			memcpy(b->buf + b->len, "\xef\xbf\xbd", 3); /* U+FFFD */
			b->len += 3;
			i++;
			continue;
		}
		if (c < 0x80) {
			esc[0] = '\\';
			switch (c) {
			case '"':
			case '\\':
				esc[1] = (char)c;
				n = 2;
				break;
			case '\b':
				esc[1] = 'b';
				n = 2;
				break;
			case '\f':
				esc[1] = 'f';
				n = 2;
				break;
			case '\n':
				esc[1] = 'n';
				n = 2;
				break;
			case '\r':
				esc[1] = 'r';
				n = 2;
				break;
			case '\t':
				esc[1] = 't';
				n = 2;
				break;
			default: /* other controls and DEL */
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 0xf];
				n = 6;
				break;
			}
			memcpy(b->buf + b->len, esc, n);
			b->len += n;
			i++;
			continue;
		}
		n = mf_utf8_seq(s + i, len - i, &prefix);
		if (n == 0) {
			memcpy(b->buf + b->len, "\xef\xbf\xbd", 3); /* U+FFFD */
			b->len += 3;
			i += prefix;
		} else if (n == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 &&
		           (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
			/* U+2028/U+2029: valid JSON, but line breaks to
			   JavaScript and some log viewers. */
			memcpy(b->buf + b->len, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			b->len += 6;
			i += 3;
		} else {
			memcpy(b->buf + b->len, s + i, n);
			b->len += n;
			i += n;
		}
	}
	b->buf[b->len++] = '"';
	b->buf[b->len] = '\0';
}

char *mf_json_quote(const char *s, size_t len)
{
	struct jbuf b = {NULL, 0, 0, false};

	json_escape(&b, s, len, 0);
	if (b.failed) {
		free(b.buf);
		return NULL;
	}
	return b.buf;
}

/* Work on the event's buffer as a jbuf. */
static void event_to_jbuf(struct mf_event *ev, struct jbuf *b)
{
	b->buf = ev->buf;
	b->len = ev->len;
	b->cap = ev->cap;
	b->failed = ev->failed;
}

static void event_from_jbuf(struct mf_event *ev, const struct jbuf *b)
{
	ev->buf = b->buf;
	ev->len = b->len;
	ev->cap = b->cap;
	ev->failed = b->failed;
}

/* Start a field: reopen a closed object, add the separator and the name. */
static bool event_field(struct mf_event *ev, struct jbuf *b, const char *name)
{
	if (ev == NULL || ev->failed)
		return false;
	if (ev->closed) {
		ev->len--; /* the closing brace */
		ev->buf[ev->len] = '\0';
		ev->closed = false;
	}
	event_to_jbuf(ev, b);
	jbuf_add(b, ",", 1);
	json_escape(b, name != NULL ? name : "", name != NULL ? strlen(name) : 0, 0);
	jbuf_add(b, ":", 1);
	return !b->failed;
}

/* v in decimal at out (at least 21 bytes); returns the number of digits. */
static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static size_t fmt_i64(char *out, int64_t v)
{
	if (v >= 0)
		return fmt_u64(out, (uint64_t)v);
	out[0] = '-';
	return 1 + fmt_u64(out + 1, -(uint64_t)v);
}

/* width digits of v, zero padded. */
static void fmt_digits(char *out, unsigned v, int width)
{
	while (width-- > 0) {
		out[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (28 bytes with the NUL), UTC.  The civil
   date is computed here (days to year/month/day, proleptic Gregorian), not
   with gmtime_r and strftime: no time zone lock, no format parsing, for
   an event written per message. */
void mf_event_time_now(char out[28])
{
	struct timespec ts;
	int64_t days, secs, z, era, doe, yoe, y, doy, mp, d, m;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || ts.tv_sec < 0 ||
	    ts.tv_sec >= (time_t)253402300800LL) {
		/* before 1970 or after 9999: a clock this wrong says so */
		memcpy(out, "1970-01-01T00:00:00.000000Z", 28);
		return;
	}
	days = (int64_t)ts.tv_sec / 86400;
	secs = (int64_t)ts.tv_sec % 86400;
	z = days + 719468;
	era = z / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	fmt_digits(out, (unsigned)y, 4);
	out[4] = '-';
	fmt_digits(out + 5, (unsigned)m, 2);
	out[7] = '-';
	fmt_digits(out + 8, (unsigned)d, 2);
	out[10] = 'T';
	fmt_digits(out + 11, (unsigned)(secs / 3600), 2);
	out[13] = ':';
	fmt_digits(out + 14, (unsigned)(secs / 60 % 60), 2);
	out[16] = ':';
	fmt_digits(out + 17, (unsigned)(secs % 60), 2);
	out[19] = '.';
	fmt_digits(out + 20, (unsigned)(ts.tv_nsec / 1000), 6);
	out[26] = 'Z';
	out[27] = '\0';
}

struct mf_event *mf_event_new(const char *type, const char *node)
{
	char host[256], ts[28], num[32];
	struct mf_event *ev;
	struct jbuf b = {NULL, 0, 0, false};

	ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		return NULL;
	if (node == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		node = host;
	}
	mf_event_time_now(ts);
	jbuf_adds(&b, "{\"v\":" EVENT_VERSION ",\"type\":");
	json_escape(&b, type != NULL ? type : "", type != NULL ? strlen(type) : 0, 0);
	jbuf_adds(&b, ",\"time\":\"");
	jbuf_adds(&b, ts);
	jbuf_adds(&b, "\",\"node\":");
	json_escape(&b, node, strlen(node), 0);
	jbuf_adds(&b, ",\"pid\":");
	jbuf_add(&b, num, fmt_i64(num, (int64_t)getpid()));
	if (b.failed) {
		free(b.buf);
		free(ev);
		return NULL;
	}
	event_from_jbuf(ev, &b);
	return ev;
}

void mf_event_free(struct mf_event **evp)
{
	struct mf_event *ev = *evp;

	if (ev == NULL)
		return;
	*evp = NULL;
	free(ev->buf);
	free(ev);
}

/* The fields that are indexed, searched or shown in one line have their
   own, shorter limits (mf-event.h). */
static const struct {
	const char *name;
	size_t max;
} field_limits[] = {
    {"user", MF_EVENT_MAX_USER},      {"session", MF_EVENT_MAX_SESSION},
    {"service", MF_EVENT_MAX_SHORT},  {"ip", MF_EVENT_MAX_SHORT},
    {"local_ip", MF_EVENT_MAX_SHORT}, {"client", MF_EVENT_MAX_USER},
    {"mailbox", MF_EVENT_MAX_NAME},   {"from_mailbox", MF_EVENT_MAX_NAME},
    {"new_name", MF_EVENT_MAX_NAME},  {"message_id", MF_EVENT_MAX_MESSAGE_ID},
    {"reason", MF_EVENT_MAX_NAME},    {"original_type", MF_EVENT_MAX_SHORT},
};

static size_t field_limit(const char *name)
{
	if (name != NULL) {
		for (size_t i = 0; i < MF_N_ELEMENTS(field_limits); i++) {
			if (strcmp(name, field_limits[i].name) == 0)
				return field_limits[i].max;
		}
	}
	return MF_EVENT_MAX_STR;
}

void mf_event_add_strn(struct mf_event *ev, const char *name, const char *value, size_t len)
{
	struct jbuf b;
	size_t max = field_limit(name);

	if (!event_field(ev, &b, name))
		return;
	json_escape(&b, value, len, max);
	event_from_jbuf(ev, &b);
	if (value != NULL && len > max && name != NULL && strlen(name) < 64) {
		char flag[80];

		snprintf(flag, sizeof(flag), "%s_truncated", name);
		mf_event_add_bool(ev, flag, true);
	}
}

void mf_event_add_str(struct mf_event *ev, const char *name, const char *value)
{
	mf_event_add_strn(ev, name, value, value != NULL ? strlen(value) : 0);
}

void mf_event_add_int(struct mf_event *ev, const char *name, int64_t value)
{
	char num[32];
	struct jbuf b;

	if (!event_field(ev, &b, name))
		return;
	jbuf_add(&b, num, fmt_i64(num, value));
	event_from_jbuf(ev, &b);
}

void mf_event_add_bool(struct mf_event *ev, const char *name, bool value)
{
	struct jbuf b;

	if (!event_field(ev, &b, name))
		return;
	jbuf_adds(&b, value ? "true" : "false");
	event_from_jbuf(ev, &b);
}

/* True if text is one JSON value that jsonb stores as it is (mf-json.h),
   nested at most as deep as a whole record may be, inside the event's
   own object; otherwise *why_r says what is wrong. */
static bool json_is_valid(const char *text, size_t len, const char **why_r)
{
	struct mf_json_scan scan;

	memset(&scan, 0, sizeof(scan));
	scan.max_depth = MF_JSON_MAX_DEPTH - 1;
	if (mf_json_scan(text, len, &scan) < 0) {
		*why_r = mf_json_strerror(scan.error);
		return false;
	}
	return true;
}

void mf_event_add_json(struct mf_event *ev, const char *name, const char *json)
{
	struct jbuf b;
	const char *why = NULL;
	size_t len;

	if (!event_field(ev, &b, name))
		return;
	if (json == NULL) {
		jbuf_adds(&b, "null");
	} else if (!json_is_valid(json, strlen(json), &why)) {
		mf_log_warn("event field %.64s: not valid JSON (%s), recorded as a string",
		            name != NULL ? name : "", why);
		json_escape(&b, json, strlen(json), MF_EVENT_MAX_STR);
	} else {
		/* Valid JSON may still hold raw newlines between tokens:
		   keep the record on one line. */
		len = b.len;
		jbuf_adds(&b, json);
		for (size_t i = len; !b.failed && i < b.len; i++)
			if (b.buf[i] == '\n' || b.buf[i] == '\r' || b.buf[i] == '\t')
				b.buf[i] = ' ';
	}
	event_from_jbuf(ev, &b);
}

const char *mf_event_json(struct mf_event *ev, size_t *len_r)
{
	struct jbuf b;

	if (len_r != NULL)
		*len_r = 0;
	if (ev == NULL || ev->failed)
		return NULL;
	if (!ev->closed) {
		event_to_jbuf(ev, &b);
		jbuf_add(&b, "}", 1);
		event_from_jbuf(ev, &b);
		if (ev->failed)
			return NULL;
		ev->closed = true;
	}
	if (len_r != NULL)
		*len_r = ev->len;
	return ev->buf;
}

static int event_submit(struct mf_event *ev, struct mf_submit *s, bool wait, struct mf_error *err)
{
	const char *json;
	size_t len;
	int rc;

	json = mf_event_json(ev, &len);
	if (json == NULL)
		return mf_error_set(err, "audit event could not be built: out of memory");
	if (s == NULL)
		return mf_error_set(err,
		                    "cannot record audit event: no connection to the receiver");
	rc = wait ? mf_submit_send(s, json, len, err) : mf_submit_send_nowait(s, json, len, err);
	return rc < 0 ? mf_error_prefix(err, "cannot record audit event") : 0;
}

int mf_event_append(struct mf_event *ev, struct mf_submit *s, struct mf_error *err)
{
	return event_submit(ev, s, true, err);
}

int mf_event_append_nowait(struct mf_event *ev, struct mf_submit *s, struct mf_error *err)
{
	return event_submit(ev, s, false, err);
}
