/*
 * mime-walk.c - parse a message with GMime and walk its parts.
 *
 * Before GMime sees the message, a byte scan checks the limits a hostile
 * message could use against the parser: the size of the top-level header
 * and the number of multipart boundaries and embedded messages (a bound on
 * both the part count and the nesting depth).  Over a limit, the walk stops
 * and the verdict says which limit and by how much: a MIME bomb ends in a
 * clear answer, not in a long parse.
 *
 * The walk itself gives:
 *  - classifier tokens: every header name ("hn:"), the decoded values of the
 *    informative headers (Subject, From, To, Received, ...) under their own
 *    prefixes and of the others under "h:", and the text of every text/plain and text/html body
 * part, converted to UTF-8 from its declared charset (GMime and iconv; EUC-KR, ISO-2022-KR,
 * windows-949 and the rest), or guessed among UTF-8, EUC-KR and Latin-1 when undeclared, at most
 * max_scan_text bytes in all;
 *  - one struct mf_attachment per non-text leaf: decoded (base64, QP,
 *    uuencode) into memory or, past spill_threshold, into an unlinked temp
 *    file, then judged by attach-policy.c;
 *  - the Message-ID and Subject for the verdict.
 *
 * A plain top-level header (every line a "Name: value" field or its
 * continuation) is split here and only its Content-* fields go to GMime, in
 * front of the body: GMime would build an object per field and parse every
 * address header, the larger part of its work on a typical message.  Any
 * other header goes to GMime whole, as before; a unit test checks that both
 * ways give the same tokens, rules and verdict fields.
 *
 * Before any of that, mime-shape.c reads the structure from the bytes: a
 * message that two MIME readers would read differently (two Content-Type
 * fields, a boundary that only begins a line, ...) gets v->ambiguous, which
 * names what was ambiguous; it is still walked, so that a structure limit
 * (a MIME bomb is often ambiguous too) is reported as such, and scan.c
 * decides.
 *
 * Charset converters come from the policy's pool (mf_iconv_pool_new) and
 * go back to it: opened per part, each would load and unload its iconv
 * module every time.
 *
 * Returns -1 only for internal failures (temp file, memory).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include "scan.h"
#include "mf-io.h"

struct walk {
	const struct mf_policy *pol;
	struct mf_tokens *toks;
	struct mf_verdict *v;
	GMimeParserOptions *opts;
	uint64_t text_left;
	int parts;
	bool stop;
	int failed;
	struct mf_error *err;
};

static const char *const fallback_charsets[] = {"UTF-8", "EUC-KR", "ISO-8859-1", NULL};

/* ------------------------------------------------------------ limits */

/* What the byte scan counts: a needle (lower case), found through one of
   its bytes that has no case and is rare in text, so that memchr does most
   of the work. */
struct needle {
	const char *text;
	size_t len, anchor; /* text[anchor] is looked for */
};

static const struct needle needles[] = {
    {"boundary=", 9, 8},
    {"message/rfc822", 14, 7},
};

static bool equal_nocase(const char *s, const char *lower, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c != lower[i])
			return false;
	}
	return true;
}

/* Occurrences of nd in buf[0, len) that end after buf[from]: a chunk's
   first `from` bytes are the tail of the previous one, already counted. */
static uint64_t count_needle(const char *buf, size_t len, size_t from, const struct needle *nd)
{
	const char *p = buf, *end = buf + len;
	uint64_t n = 0;

	while (p < end && (p = memchr(p, nd->text[nd->anchor], (size_t)(end - p))) != NULL) {
		size_t at = (size_t)(p - buf);

		if (at >= nd->anchor && at - nd->anchor + nd->len <= len &&
		    at - nd->anchor + nd->len > from &&
		    equal_nocase(buf + at - nd->anchor, nd->text, nd->len))
			n++;
		p++;
	}
	return n;
}

struct prescan_state {
	uint64_t pos, header_end, counts[2];
	int nl_run;
	bool in_header;
};

/* One piece of the message: buf[0, keep) repeats the end of the last one. */
static void prescan_chunk(struct prescan_state *ps, const char *buf, size_t len, size_t keep)
{
	size_t i, k;

	for (i = keep; ps->in_header && i < len; i++) {
		if (buf[i] == '\n') {
			if (++ps->nl_run == 2) {
				ps->in_header = false;
				ps->header_end = ps->pos + i - keep;
			}
		} else if (buf[i] != '\r') {
			ps->nl_run = 0;
		}
	}
	for (k = 0; k < MF_N_ELEMENTS(needles); k++)
		ps->counts[k] += count_needle(buf, len, keep, &needles[k]);
	ps->pos += len - keep;
}

/* The bytes of a memory stream, in place: 1; 0 for another kind of
   stream; -1 (err) when its bounds are broken. */
static int mem_bytes(GMimeStream *s, const unsigned char **data_r, size_t *len_r,
                     struct mf_error *err)
{
	GByteArray *arr;
	gint64 start = s->bound_start, end = s->bound_end;

	if (!GMIME_IS_STREAM_MEM(s))
		return 0;
	arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
	if (arr == NULL || start < 0 || (guint64)start > arr->len)
		return mf_error_set(err, "cannot read the message");
	if (end < 0 || (guint64)end > arr->len)
		end = arr->len;
	*data_r = arr->data != NULL ? arr->data + start : (const unsigned char *)"";
	*len_r = end > start ? (size_t)(end - start) : 0;
	return 1;
}

/* Case-insensitive counts of the needles in the stream, and the header
   size.  A memory stream (the usual case) is scanned in place. */
static int prescan(GMimeStream *s, const struct mf_policy *pol, struct mf_verdict *v,
                   uint64_t *header_end_r, bool *blank_r, struct mf_error *err)
{
	struct prescan_state ps = {.in_header = true};
	ssize_t n = 0;
	const unsigned char *bytes;
	size_t nbytes;
	int mem = mem_bytes(s, &bytes, &nbytes, err);

	if (mem < 0)
		return -1;
	if (mem > 0) {
		if (nbytes > 0)
			prescan_chunk(&ps, (const char *)bytes, nbytes, 0);
	} else {
		char buf[65536];
		size_t keep = 0;

		if (g_mime_stream_reset(s) < 0)
			return mf_error_set(err, "cannot rewind the message");
		/* (a bounded GMime stream answers -1 at its end: check for the end
		   first) */
		while (!g_mime_stream_eos(s) &&
		       (n = g_mime_stream_read(s, buf + keep, sizeof(buf) - keep)) > 0) {
			size_t len = keep + (size_t)n;

			prescan_chunk(&ps, buf, len, keep);
			keep = len < 31 ? len : 31;
			memmove(buf, buf + len - keep, keep);
		}
		if (n < 0 && !g_mime_stream_eos(s))
			return mf_error_set(err, "cannot read the message: %s", strerror(errno));
	}
	*blank_r = !ps.in_header;
	if (ps.in_header)
		ps.header_end = ps.pos;
	*header_end_r = ps.header_end;
	if (g_mime_stream_reset(s) < 0)
		return mf_error_set(err, "cannot rewind the message");
	if (ps.header_end > pol->max_header_size) {
		v->limit_exceeded = true;
		free(v->reason);
		v->reason = g_strdup_printf("message header is %llu bytes (limit %llu)",
		                            (unsigned long long)ps.header_end,
		                            (unsigned long long)pol->max_header_size);
		return 0;
	}
	if (ps.counts[0] + ps.counts[1] > (uint64_t)pol->max_mime_parts) {
		v->limit_exceeded = true;
		free(v->reason);
		v->reason = g_strdup_printf("message has %llu MIME containers (limit %d parts)",
		                            (unsigned long long)(ps.counts[0] + ps.counts[1]),
		                            pol->max_mime_parts);
	}
	return 0;
}

static void limit(struct walk *w, char *reason)
{
	w->v->limit_exceeded = true;
	w->stop = true;
	free(w->v->reason);
	w->v->reason = reason;
}

/* ------------------------------------------------------------ headers */

/* The informative headers, with their names in lower case. */
static const struct {
	const char *name;
	const char *prefix;
} token_headers[] = {
    {"subject", "subj:"},    {"from", "from:"},      {"to", "to:"},
    {"cc", "cc:"},           {"reply-to", "rt:"},    {"return-path", "rp:"},
    {"received", "rcvd:"},   {"x-mailer", "mua:"},   {"user-agent", "mua:"},
    {"content-type", "ct:"}, {"message-id", "mid:"}, {"organization", "org:"},
    {"list-id", "list:"},    {"sender", "sender:"},  {"x-priority", "prio:"},
    {"precedence", "prec:"},
};

/* A header's decoded value.  Most values are plain ASCII without encoded
   words, for which decoding changes nothing but costs a parse: those are
   only unfolded (*tmp, g_free). */
static const char *header_value(GMimeHeader *h, char **tmp)
{
	const char *raw = g_mime_header_get_raw_value(h);
	const unsigned char *p;

	*tmp = NULL;
	if (raw != NULL) {
		for (p = (const unsigned char *)raw; *p != '\0' && *p < 0x80; p++)
			if (p[0] == '=' && p[1] == '?')
				break;
		if (*p == '\0') {
			*tmp = g_mime_utils_header_unfold(raw);
			if (*tmp != NULL)
				return *tmp;
		}
	}
	return g_mime_header_get_value(h);
}

/* The tokens of one header field: its name, and the words of its value
   (decoded, unfolded) under the prefix of an informative header or "h:". */
static void field_tokens(struct walk *w, const char *name, const char *value)
{
	char lname[48];
	size_t j, k, len;

	for (j = 0; name[j] && j < sizeof(lname) - 1; j++)
		lname[j] = (char)((name[j] >= 'A' && name[j] <= 'Z') ? name[j] + 32 : name[j]);
	lname[j] = '\0';
	mf_tokens_add(w->toks, "hn:", lname, j);
	if (value == NULL)
		return;
	len = strlen(value);
	for (k = 0; name[j] == '\0' && k < MF_N_ELEMENTS(token_headers); k++) {
		if (lname[0] == token_headers[k].name[0] &&
		    strcmp(lname, token_headers[k].name) == 0)
			break;
	}
	if (name[j] == '\0' && k < MF_N_ELEMENTS(token_headers))
		mf_tokenize_text(w->toks, token_headers[k].prefix, value, len > 4096 ? 4096 : len);
	else /* any other header: its words, under one prefix */
		mf_tokenize_text(w->toks, "h:", value, len > 1024 ? 1024 : len);
}

/* What the rules and the verdict need from one top-level header field.
   Where a field appears more than once, Message-ID, Subject and the Date
   read are the last ones (as GMime's message does), the Date shown the
   first. */
static void field_head(struct walk *w, const char *name, const char *value)
{
	struct mf_head *h = &w->v->head;

	if (value == NULL)
		return;
	if (g_ascii_strcasecmp(name, "date") == 0) {
		GDateTime *dt = g_mime_utils_header_decode_date(value);

		if (!h->has_date)
			h->date = strdup(value);
		h->has_date = true;
		h->date_valid = dt != NULL;
		h->date_when = dt != NULL ? (int64_t)g_date_time_to_unix(dt) : 0;
		if (dt != NULL)
			g_date_time_unref(dt);
	} else if (g_ascii_strcasecmp(name, "message-id") == 0) {
		char *id = g_mime_utils_decode_message_id(value);

		h->has_message_id = true;
		free(w->v->message_id);
		w->v->message_id = id != NULL ? strdup(id) : NULL;
		g_free(id);
	} else if (g_ascii_strcasecmp(name, "from") == 0) {
		h->has_from = true;
	} else if (g_ascii_strcasecmp(name, "subject") == 0) {
		h->has_subject = true;
		free(w->v->subject);
		w->v->subject = strdup(value);
	} else if (g_ascii_strcasecmp(name, "authentication-results") == 0) {
		char **a = realloc(h->auth_results, (h->nauth_results + 1) * sizeof(*a));
		char *copy = strdup(value);

		if (a == NULL || copy == NULL) {
			free(copy);
			if (a != NULL)
				h->auth_results = a;
			return;
		}
		h->auth_results = a;
		a[h->nauth_results++] = copy;
	}
}

/* Tokens of a header read by GMime (an embedded message, or the top-level
   one when it is not plain enough for read_top_header); top: also what the
   rules need. */
static void header_tokens(struct walk *w, GMimeObject *obj, bool top)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	int i, n = g_mime_header_list_get_count(hl);

	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *value;
		char *tmp;

		if (name == NULL)
			continue;
		value = header_value(h, &tmp);
		field_tokens(w, name, value);
		if (top)
			field_head(w, name, value);
		g_free(tmp);
	}
}

/* ------------------------------------------------------------ top-level header */

/* GMime builds an object for every header field and parses every address
   header; the scanner only needs the fields' names and decoded text.  So a
   plain top-level header is split here, and GMime gets only its Content-*
   fields (which make the body's MIME structure) in front of the body.  A
   header that is not plain goes to GMime whole, as before: the split
   below never has to guess what GMime would make of an odd line. */

/* One field: block[start, end) from its name to the end of its last
   line; its name is block[start, start + nlen). */
struct field {
	size_t start, nlen, end;
};

static bool is_content_field(const char *name, size_t nlen)
{
	return nlen >= 8 && g_ascii_strncasecmp(name, "content-", 8) == 0;
}

/* Every line "Name: value" (a name of printable ASCII, directly followed
   by the colon) or the continuation of the line before (starting with a
   space or a tab), no NUL, no CR but before LF.  Fills *f (malloc'd) and
   returns the number of fields, or 0 when the header is not plain. */
static size_t split_fields(const char *b, size_t len, struct field **f_r)
{
	struct field *f = NULL;
	size_t pos = 0, n = 0, cap = 0;

	*f_r = NULL;
	while (pos < len) {
		const char *nl = memchr(b + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - b) + 1 : len, stop = end, i;

		if (nl != NULL)
			stop--;
		if (stop > pos && b[stop - 1] == '\r')
			stop--;
		if (stop == pos || memchr(b + pos, '\0', stop - pos) != NULL ||
		    memchr(b + pos, '\r', stop - pos) != NULL)
			goto odd;
		if (b[pos] == ' ' || b[pos] == '\t') {
			if (n == 0)
				goto odd;
			f[n - 1].end = end;
			pos = end;
			continue;
		}
		for (i = pos; i < stop && b[i] != ':'; i++) {
			if ((unsigned char)b[i] < 33 || (unsigned char)b[i] > 126)
				goto odd;
		}
		if (i == pos || i == stop)
			goto odd;
		if (n == cap) {
			struct field *nf = realloc(f, (cap = cap ? cap * 2 : 32) * sizeof(*f));

			if (nf == NULL)
				goto odd;
			f = nf;
		}
		f[n].start = pos;
		f[n].nlen = i - pos;
		f[n++].end = end;
		pos = end;
	}
	*f_r = f;
	return n;
odd:
	free(f);
	return 0;
}

/* A value as GMime unfolds it: without the white space at both ends and
   without its line breaks.  out has room for len + 1 bytes. */
static size_t unfold(const char *raw, size_t len, char *out)
{
	size_t i = 0, end = len, n = 0;

	while (i < end && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n'))
		i++;
	while (end > i && (raw[end - 1] == ' ' || raw[end - 1] == '\t' || raw[end - 1] == '\r' ||
	                   raw[end - 1] == '\n'))
		end--;
	for (; i < end; i++) {
		if (raw[i] != '\r' && raw[i] != '\n')
			out[n++] = raw[i];
	}
	out[n] = '\0';
	return n;
}

/* The body as a stream GMime can read as one MIME part: the Content-*
   fields, a blank line, and the body from body_start on. */
static GMimeStream *body_stream(GMimeStream *s, const GByteArray *content, gint64 body_start)
{
	GMimeStream *head, *rest, *cat;

	if (GMIME_IS_STREAM_MEM(s)) {
		GByteArray *arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
		guint64 end = s->bound_end >= 0 && (guint64)s->bound_end <= arr->len
		                  ? (guint64)s->bound_end
		                  : arr->len;
		guint64 from = (guint64)(s->bound_start + body_start);

		/* a copy is cheaper to parse than a chain of streams */
		if (from <= end && end - from <= 4u << 20) {
			GByteArray *copy =
			    g_byte_array_sized_new((guint)(content->len + (end - from)));

			g_byte_array_append(copy, content->data, content->len);
			g_byte_array_append(copy, arr->data + from, (guint)(end - from));
			return g_mime_stream_mem_new_with_byte_array(copy);
		}
	}
	head = g_mime_stream_mem_new_with_buffer((const char *)content->data, content->len);
	rest = g_mime_stream_substream(s, s->bound_start + body_start, s->bound_end);
	cat = g_mime_stream_cat_new();
	g_mime_stream_cat_add_source(GMIME_STREAM_CAT(cat), head);
	g_mime_stream_cat_add_source(GMIME_STREAM_CAT(cat), rest);
	g_object_unref(head);
	g_object_unref(rest);
	return cat;
}

/* Read a plain top-level header [0, header_end) (blank: a blank line ends
   it) and parse the body with GMime into w->v->top.  Returns 0 when done,
   1 when the header is not plain or GMime cannot read the body this way
   (nothing was done: read the whole message with GMime), -1 on an
   internal error. */
static int read_top_header(struct walk *w, GMimeStream *s, uint64_t header_end, bool blank)
{
	char *copy = NULL, *scratch = NULL;
	const char *b;
	size_t len = (size_t)header_end, n, i;
	struct field *f = NULL;
	GByteArray *content = NULL;
	GMimeStream *bs;
	GMimeParser *parser;
	GMimeObject *top;
	int ret = 1;

	if (len == 0)
		return 1;
	if (GMIME_IS_STREAM_MEM(s)) {
		GByteArray *arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));

		if (arr == NULL || s->bound_start < 0 || (guint64)s->bound_start + len > arr->len)
			return 1;
		b = (const char *)arr->data + s->bound_start;
	} else {
		ssize_t got = 0, r = 0;

		copy = malloc(len);
		if (copy == NULL)
			return mf_error_set(w->err, "out of memory");
		if (g_mime_stream_reset(s) < 0)
			goto done;
		while ((size_t)got < len &&
		       (r = g_mime_stream_read(s, copy + got, len - (size_t)got)) > 0)
			got += r;
		if (g_mime_stream_reset(s) < 0 || (size_t)got != len)
			goto done;
		b = copy;
	}
	/* the CR of a CRLF blank line is not part of the header */
	if (blank && b[len - 1] == '\r')
		len--;
	if (len == 0 || (n = split_fields(b, len, &f)) == 0)
		goto done;

	content = g_byte_array_new();
	for (i = 0; i < n; i++) {
		if (is_content_field(b + f[i].start, f[i].nlen)) {
			g_byte_array_append(content, (const guint8 *)b + f[i].start,
			                    (guint)(f[i].end - f[i].start));
			if (b[f[i].end - 1] != '\n')
				g_byte_array_append(content, (const guint8 *)"\n", 1);
		}
	}
	g_byte_array_append(content, (const guint8 *)"\n", 1);
	bs = body_stream(s, content, blank ? (gint64)header_end + 1 : g_mime_stream_length(s));
	parser = g_mime_parser_new_with_stream(bs);
	top = g_mime_parser_construct_part(parser, w->opts);
	g_object_unref(parser);
	g_object_unref(bs);
	if (top == NULL)
		goto done;

	scratch = malloc(len + 1);
	if (scratch == NULL) {
		g_object_unref(top);
		ret = mf_error_set(w->err, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		const char *name = b + f[i].start;
		const char *raw = name + f[i].nlen + 1;
		size_t vlen, k;
		char *decoded = NULL, *value;

		if (is_content_field(name, f[i].nlen))
			continue;
		/* name and value, each NUL-terminated, in scratch */
		memcpy(scratch, name, f[i].nlen);
		scratch[f[i].nlen] = '\0';
		value = scratch + f[i].nlen + 1;
		vlen = unfold(raw, (size_t)(b + f[i].end - raw), value);
		for (k = 0; k < vlen && (unsigned char)value[k] < 0x80; k++)
			if (value[k] == '=' && value[k + 1] == '?')
				break;
		if (k < vlen)
			decoded = g_mime_utils_header_decode_text(w->opts, value);
		field_tokens(w, scratch, decoded != NULL ? decoded : value);
		field_head(w, scratch, decoded != NULL ? decoded : value);
		g_free(decoded);
	}
	w->v->top = top;
	w->v->head.parsed = true;
	ret = 0;
done:
	if (content != NULL)
		g_byte_array_unref(content);
	free(scratch);
	free(f);
	free(copy);
	return ret;
}

/* ------------------------------------------------------------ ambiguity */

/* Read the structure from the message's bytes (mime-shape.c): in place for
   a memory stream, mapped for a file, else copied.  Sets v->ambiguous when
   readers could read it differently. */
static int check_shape(const struct mf_policy *pol, GMimeStream *s, struct mf_verdict *v,
                       struct mf_error *err)
{
	struct mf_mime_shape shape;
	const unsigned char *data = NULL;
	void *map = NULL;
	char *copy = NULL;
	size_t len = 0;
	int r;

	r = mem_bytes(s, &data, &len, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		gint64 size = g_mime_stream_length(s);
		ssize_t got = 0, n;

		if (size < 0)
			return mf_error_set(err, "cannot size the message");
		len = (size_t)size;
		if (GMIME_IS_STREAM_FS(s) && len > 0 && s->bound_start == 0) {
			map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, GMIME_STREAM_FS(s)->fd, 0);
			if (map == MAP_FAILED)
				map = NULL;
			data = map;
		}
		if (data == NULL && len > 0) {
			copy = malloc(len);
			if (copy == NULL)
				return mf_error_set(err, "out of memory");
			if (g_mime_stream_reset(s) < 0) {
				free(copy);
				return mf_error_set(err, "cannot rewind the message");
			}
			while ((size_t)got < len &&
			       (n = g_mime_stream_read(s, copy + got, len - (size_t)got)) > 0)
				got += n;
			len = (size_t)got;
			data = (const unsigned char *)copy;
			if (g_mime_stream_reset(s) < 0) {
				free(copy);
				return mf_error_set(err, "cannot rewind the message");
			}
		}
		if (data == NULL)
			data = (const unsigned char *)"";
	}
	r = mf_mime_shape_read(data, len, pol->max_mime_depth, false, &shape);
	if (map != NULL)
		munmap(map, len);
	free(copy);
	if (r < 0)
		return mf_error_set(err, "out of memory");
	v->ambiguous = shape.doubt;
	shape.doubt = NULL;
	mf_mime_shape_free(&shape);
	return 0;
}

/* ------------------------------------------------------------ decoding */

struct decoded {
	GMimeStream *mem; /* small content */
	int fd;           /* large content, or -1 */
	void *map;
	size_t len;
	const unsigned char *data;
};

static void decoded_free(struct decoded *d)
{
	if (d->map != NULL)
		munmap(d->map, d->len);
	if (d->fd >= 0)
		close(d->fd);
	if (d->mem != NULL)
		g_object_unref(d->mem);
	memset(d, 0, sizeof(*d));
	d->fd = -1;
}

static bool needs_decoding(GMimeContentEncoding enc)
{
	return enc != GMIME_CONTENT_ENCODING_DEFAULT && enc != GMIME_CONTENT_ENCODING_7BIT &&
	       enc != GMIME_CONTENT_ENCODING_8BIT && enc != GMIME_CONTENT_ENCODING_BINARY;
}

/* The part's content, decoded: in place, in memory or in an unlinked temp
   file.  d->data is not NUL-terminated: it is read with d->len. */
static int decode_part(struct walk *w, GMimePart *part, struct decoded *d)
{
	GMimeDataWrapper *wrap = g_mime_part_get_content(part);
	GMimeStream *raw, *out;
	gint64 enc_len;
	ssize_t n;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (wrap == NULL) {
		d->data = (const unsigned char *)"";
		return 0;
	}
	raw = g_mime_data_wrapper_get_stream(wrap);
	if (raw != NULL && GMIME_IS_STREAM_MEM(raw) &&
	    !needs_decoding(g_mime_data_wrapper_get_encoding(wrap))) {
		/* 7bit, 8bit or binary content in memory is its own decoded form:
		   read where it lies (the parser keeps the message's bytes) */
		GByteArray *arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(raw));
		gint64 start = raw->bound_start, end = raw->bound_end;

		if (arr != NULL && end < 0)
			end = arr->len;
		if (arr != NULL && start >= 0 && start <= end && (guint64)end <= arr->len) {
			d->len = (size_t)(end - start);
			d->data = d->len > 0 ? arr->data + start : (const unsigned char *)"";
			return 0;
		}
	}
	enc_len = raw != NULL ? g_mime_stream_length(raw) : 0;
	if (enc_len >= 0 && (uint64_t)enc_len <= w->pol->spill_threshold) {
		d->mem = g_mime_stream_mem_new();
		out = d->mem;
	} else {
		int fd2;

		d->fd = mf_tmpfile(w->pol->tmp_dir, w->err);
		if (d->fd < 0)
			return -1;
		if ((fd2 = dup(d->fd)) < 0) {
			decoded_free(d);
			return mf_error_set(w->err, "cannot duplicate a temp file: %s",
			                    strerror(errno));
		}
		out = g_mime_stream_fs_new(fd2);
	}
	n = g_mime_data_wrapper_write_to_stream(wrap, out);
	if (n >= 0)
		(void)g_mime_stream_flush(out);
	if (d->mem == NULL)
		g_object_unref(out);
	if (n < 0) {
		decoded_free(d);
		return mf_error_set(w->err, "cannot decode a MIME part: %s", strerror(errno));
	}
	if (d->mem != NULL) {
		GByteArray *arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(d->mem));

		d->len = arr->len;
		d->data = d->len > 0 ? arr->data : (const unsigned char *)"";
	} else {
		off_t size = lseek(d->fd, 0, SEEK_END);

		if (size <= 0) {
			d->data = (const unsigned char *)"";
			d->len = 0;
			return 0;
		}
		d->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, d->fd, 0);
		if (d->map == MAP_FAILED) {
			d->map = NULL;
			decoded_free(d);
			return mf_error_set(w->err, "cannot map a decoded part: %s",
			                    strerror(errno));
		}
		d->len = (size_t)size;
		d->data = d->map;
	}
	return 0;
}

/* ------------------------------------------------------------ converters */

#define POOL_SIZE 32

struct mf_iconv_pool {
	pthread_mutex_t lock;
	bool preloaded;
	struct {
		char charset[48]; /* canonical name */
		iconv_t cd;
		bool busy;
	} slot[POOL_SIZE];
	int n;
};

struct mf_iconv_pool *mf_iconv_pool_new(void)
{
	struct mf_iconv_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void mf_iconv_pool_free(struct mf_iconv_pool **pp)
{
	struct mf_iconv_pool *p = *pp;
	int i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		g_mime_iconv_close(p->slot[i].cd);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}

/* The fallback charsets stay loaded, for g_mime_utils_decode_8bit.  Done
   at the first use, under the lock: GMime is initialised by then (a
   policy may be made before g_mime_init). */
static void pool_preload(struct mf_iconv_pool *p)
{
	static const char *const preload[] = {"EUC-KR", "ISO-8859-1"};
	size_t i;

	p->preloaded = true;
	for (i = 0; i < MF_N_ELEMENTS(preload) && p->n < POOL_SIZE; i++) {
		const char *name = g_mime_charset_canon_name(preload[i]);
		iconv_t cd;

		if (name == NULL || strlen(name) >= sizeof(p->slot[0].charset))
			continue;
		cd = g_mime_iconv_open("UTF-8", name);
		if (cd == (iconv_t)-1)
			continue;
		snprintf(p->slot[p->n].charset, sizeof(p->slot[0].charset), "%s", name);
		p->slot[p->n].busy = false;
		p->slot[p->n++].cd = cd;
	}
}

/* A converter from charset (canonical name) to UTF-8, reset; or -1. */
static iconv_t pool_get(struct mf_iconv_pool *p, const char *charset)
{
	int i;

	if (p != NULL) {
		pthread_mutex_lock(&p->lock);
		if (!p->preloaded)
			pool_preload(p);
		for (i = 0; i < p->n; i++) {
			if (!p->slot[i].busy && strcmp(p->slot[i].charset, charset) == 0) {
				p->slot[i].busy = true;
				pthread_mutex_unlock(&p->lock);
				(void)iconv(p->slot[i].cd, NULL, NULL, NULL, NULL);
				return p->slot[i].cd;
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
	return g_mime_iconv_open("UTF-8", charset);
}

/* Give cd back: kept for the next part, or closed when the pool is full. */
static void pool_put(struct mf_iconv_pool *p, const char *charset, iconv_t cd)
{
	int i;

	if (p != NULL) {
		pthread_mutex_lock(&p->lock);
		for (i = 0; i < p->n; i++) {
			if (p->slot[i].cd == cd) {
				p->slot[i].busy = false;
				pthread_mutex_unlock(&p->lock);
				return;
			}
		}
		if (p->n < POOL_SIZE && strlen(charset) < sizeof(p->slot[0].charset)) {
			snprintf(p->slot[p->n].charset, sizeof(p->slot[0].charset), "%s", charset);
			p->slot[p->n].cd = cd;
			p->slot[p->n++].busy = false;
			pthread_mutex_unlock(&p->lock);
			return;
		}
		pthread_mutex_unlock(&p->lock);
	}
	g_mime_iconv_close(cd);
}

/* ISO-8859-1 text as UTF-8 (g_free): every byte is its own code point, so
   no converter is needed (iconv would go through UCS-4 for every byte). */
static char *latin1_to_utf8(const unsigned char *s, size_t len)
{
	char *out = g_malloc(len * 2 + 1), *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] < 0x80) {
			*o++ = (char)s[i];
		} else {
			*o++ = (char)(0xc0 | (s[i] >> 6));
			*o++ = (char)(0x80 | (s[i] & 0x3f));
		}
	}
	*o = '\0';
	return out;
}

/* The part's text as UTF-8, at most max bytes read, up to its first NUL:
   *len_r bytes, in the decoded data itself when that is valid UTF-8 (no
   copy), else in *owned (g_free). */
static const char *part_text(struct walk *w, GMimePart *part, const struct decoded *d, size_t max,
                             size_t *len_r, char **owned)
{
	const char *charset =
	    g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
	size_t len = d->len < max ? d->len : max;
	char *out = NULL;

	*owned = NULL;
	if (charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0) {
		const char *canon = g_mime_charset_canon_name(charset);
		iconv_t cd;

		if (strcmp(canon, "iso-8859-1") == 0 || strcmp(canon, "latin1") == 0) {
			out = latin1_to_utf8(d->data, len);
		} else if ((cd = pool_get(w->pol->iconv_pool, canon)) != (iconv_t)-1) {
			out = g_mime_iconv_strndup(cd, (const char *)d->data, len);
			pool_put(w->pol->iconv_pool, canon, cd);
		}
	}
	if (out == NULL) {
		if (g_utf8_validate((const char *)d->data, (gssize)len, NULL)) {
			*len_r = len; /* checked: no NUL either */
			return (const char *)d->data;
		}
		out = g_mime_utils_decode_8bit(w->opts, (const char *)d->data, len);
	}
	if (out != NULL && !g_utf8_validate(out, -1, NULL)) {
		char *valid = g_utf8_make_valid(out, -1);

		g_free(out);
		out = valid;
	}
	*owned = out;
	*len_r = out != NULL ? strlen(out) : 0;
	return out;
}

/* ------------------------------------------------------------ parts */

static struct mf_attachment *new_attachment(struct walk *w)
{
	struct mf_verdict *v = w->v;
	struct mf_attachment *a;

	a = realloc(v->attachments, (v->nattachments + 1) * sizeof(*a));
	if (a == NULL)
		return NULL;
	v->attachments = a;
	a = &v->attachments[v->nattachments++];
	memset(a, 0, sizeof(*a));
	return a;
}

static void leaf(struct walk *w, GMimeObject *obj, GMimeObject *parent)
{
	GMimePart *part = GMIME_PART(obj);
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *filename = g_mime_part_get_filename(part);
	bool is_text = g_mime_content_type_is_type(ct, "text", "plain") ||
	               g_mime_content_type_is_type(ct, "text", "html");
	struct decoded d;
	struct mf_attachment *a;
	char *mime;

	if (decode_part(w, part, &d) < 0) {
		w->failed = -1;
		w->stop = true;
		return;
	}
	if (g_mime_content_type_is_type(ct, "text", "*") &&
	    mf_embedded_attachments(w->pol, obj, parent, d.data, d.len, w->v) < 0) {
		decoded_free(&d);
		w->failed = mf_error_set(w->err, "out of memory");
		w->stop = true;
		return;
	}
	if (is_text && filename == NULL && !g_mime_part_is_attachment(part)) {
		if (w->text_left > 0) {
			char *owned;
			size_t len;
			const char *text =
			    part_text(w, part, &d, (size_t)w->text_left, &len, &owned);

			if (text != NULL) {
				if (g_mime_content_type_is_type(ct, "text", "html"))
					mf_tokenize_html(w->toks, text, len);
				else
					mf_tokenize_text(w->toks, NULL, text, len);
				w->text_left -= len < w->text_left ? len : w->text_left;
			}
			g_free(owned);
		}
		decoded_free(&d);
		return;
	}
	a = new_attachment(w);
	if (a == NULL) {
		decoded_free(&d);
		w->failed = mf_error_set(w->err, "out of memory");
		w->stop = true;
		return;
	}
	mime = g_mime_content_type_get_mime_type(ct);
	a->content_type = strdup(mime != NULL ? mime : "application/octet-stream");
	g_free(mime);
	a->filename = filename != NULL ? strdup(filename) : NULL;
	a->part = g_object_ref(obj);
	a->parent = parent != NULL ? g_object_ref(parent) : NULL;
	mf_attach_policy(w->pol, obj, d.data, d.len, a);
	decoded_free(&d);
	if (a->content_type != NULL)
		mf_tokens_add(w->toks, "att:ct:", a->content_type, strlen(a->content_type));
	mf_tokens_add(w->toks, "att:type:", mf_filetype_name(a->type),
	              strlen(mf_filetype_name(a->type)));
	if (a->filename != NULL) {
		const char *dot = strrchr(a->filename, '.');

		if (dot != NULL && dot[1] != '\0')
			mf_tokenize_text(w->toks, "att:ext:", dot + 1, strlen(dot + 1));
		mf_tokenize_text(w->toks, "att:name:", a->filename, strlen(a->filename));
	}
}

static void walk_object(struct walk *w, GMimeObject *obj, GMimeObject *parent, int depth)
{
	if (w->stop || obj == NULL)
		return;
	w->v->parts = (unsigned)++w->parts;
	if (w->parts > w->pol->max_mime_parts) {
		limit(w, g_strdup_printf("message has more than %d MIME parts",
		                         w->pol->max_mime_parts));
		return;
	}
	if (depth > w->pol->max_mime_depth) {
		limit(w, g_strdup_printf("MIME parts are nested more than %d deep",
		                         w->pol->max_mime_depth));
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);

		for (i = 0; i < n && !w->stop; i++)
			walk_object(w, g_mime_multipart_get_part(mp, i), obj, depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (inner != NULL) {
			header_tokens(w, GMIME_OBJECT(inner), false);
			walk_object(w, g_mime_message_get_mime_part(inner), GMIME_OBJECT(inner),
			            depth + 1);
		}
	} else if (GMIME_IS_PART(obj)) {
		leaf(w, obj, parent);
	}
}

int mf_mime_walk(const struct mf_policy *pol, GMimeStream *stream, struct mf_tokens *toks,
                 struct mf_verdict *v, struct mf_error *err)
{
	struct walk w = {.pol = pol, .toks = toks, .v = v, .err = err};
	uint64_t header_end;
	bool blank;
	int r;

	v->size = (uint64_t)g_mime_stream_length(stream);
	if (prescan(stream, pol, v, &header_end, &blank, err) < 0)
		return -1;
	if (v->limit_exceeded)
		return 0;
	if (check_shape(pol, stream, v, err) < 0)
		return -1;
	w.opts = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(w.opts, (const char **)fallback_charsets);
	w.text_left = pol->max_scan_text;
	r = read_top_header(&w, stream, header_end, blank);
	if (r < 0) {
		g_mime_parser_options_free(w.opts);
		return -1;
	}
	if (r > 0) {
		GMimeParser *parser = g_mime_parser_new_with_stream(stream);
		GMimeMessage *msg;

		g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
		msg = g_mime_parser_construct_message(parser, w.opts);
		g_object_unref(parser);
		if (msg == NULL) {
			g_mime_parser_options_free(w.opts);
			v->limit_exceeded = true;
			free(v->reason);
			v->reason = strdup("message cannot be parsed as an Internet message");
			return 0;
		}
		v->message = msg;
		v->top = g_mime_message_get_mime_part(msg);
		if (v->top != NULL)
			g_object_ref(v->top);
		v->head.parsed = true;
		header_tokens(&w, GMIME_OBJECT(msg), true);
	}
	walk_object(&w, v->top, NULL, 1);
	g_mime_parser_options_free(w.opts);
	return w.failed;
}
