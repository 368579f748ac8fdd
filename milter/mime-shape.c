/*
 * mime-shape.c - the MIME structure of a message read from its bytes, and
 * whatever in it two MIME readers can read differently.
 *
 * GMime (the milter), Dovecot (what IMAP clients are shown) and Python's
 * email package (a common independent reader) agree on well-formed MIME
 * but each resolves a malformed structure its own way: GMime keeps the
 * last of two Content-Type fields, Dovecot the first; Dovecot takes a line
 * that merely begins with a boundary as that boundary, GMime and Python
 * want the boundary alone on its line; Python ends a header at a line that
 * is not a field, Dovecot reads on; Python breaks lines at a bare CR, the
 * others do not.  A message built on such a difference can show the
 * milter one attachment and the recipient another, so this reader does
 * not guess: it walks the structure and stops at the first such
 * construction, naming it ("two Content-Type fields in one part").
 *
 * Ambiguous:
 *  - two Content-Type, Content-Transfer-Encoding or Content-Disposition
 *    fields in one header (names compared without case);
 *  - a header line that is not a clean "Name: value" field (no colon,
 *    white space or 8-bit bytes in the name, a first line that is a
 *    continuation) followed by a Content-* field, or itself a Content-*
 *    field; NUL or a bare CR anywhere in a header;
 *  - a parameter given twice (also as name= and name*=, or as RFC 2231
 *    continuations with a repeated or missing section) with different
 *    values; a boundary in RFC 2231 form; a name, filename or boundary
 *    value with text after it, or an unterminated quoted string;
 *    a Content-Type name that differs from the Content-Disposition
 *    filename; a Content-Type that is not type/subtype;
 *  - a multipart without a boundary, whose boundary never appears, or that
 *    is not closed by its closing boundary; a boundary that is a prefix of
 *    an enclosing one (or equal to it); a line that begins with a boundary
 *    but goes on; a bare CR followed by a boundary; after the closing
 *    boundary, the boundary again or a Content-* field (a part a reader
 *    could still take);
 *  - a multipart or message part with a transfer encoding other than
 *    7bit, 8bit or binary; a transfer encoding of more than one word.
 *
 * Not ambiguous (ordinary mail): a parameter repeated with the same value
 * (name= and name*= both spelling the same name), unknown or misspelled
 * header fields, lines that are not fields where no Content-* field
 * follows, an empty preamble or epilogue, blank lines after the closing
 * boundary, white space after a boundary, 8-bit text in header values.
 *
 * Parts nested deeper than max_depth end the reading without a doubt:
 * mime-walk.c then reports the limit.
 *
 * mf_mime_shape_read fills a struct mf_mime_shape: the parts in document
 * order (kind, depth, type, file name) when asked, and doubt, a sentence
 * naming the first ambiguity, or NULL.  Returns -1 only when out of memory.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scan.h"

#define MAX_PARAMS 64

struct bound {
	const unsigned char *text;
	size_t len;
};

struct shape_ctx {
	struct mf_mime_shape *out;
	bool want_nodes;
	int max_depth;
	size_t max_nodes;
	struct bound stack[64];
	int nstack;
	bool oom;
};

/* ------------------------------------------------------------ helpers */

static bool doubt(struct shape_ctx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Record the first ambiguity; always returns false (stop). */
static bool doubt(struct shape_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->out->doubt == NULL) {
		va_start(ap, fmt);
		c->out->doubt = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
	return false;
}

static unsigned char lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

static bool prefix_nocase(const unsigned char *s, size_t len, const char *lower_prefix)
{
	size_t i, n = strlen(lower_prefix);

	if (len < n)
		return false;
	for (i = 0; i < n; i++)
		if (lower(s[i]) != (unsigned char)lower_prefix[i])
			return false;
	return true;
}

static bool equal_nocase(const unsigned char *s, size_t len, const char *lower_word)
{
	return len == strlen(lower_word) && prefix_nocase(s, len, lower_word);
}

/* RFC 2045 token characters */
static bool is_tchar(unsigned char ch)
{
	return ch > 32 && ch < 127 && strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

/* The end of the line at p (before its CR LF or LF) and the start of the
   next one. */
static const unsigned char *line_end(const unsigned char *p, const unsigned char *end,
                                     const unsigned char **next_r)
{
	const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));

	if (nl == NULL) {
		*next_r = end;
		return end;
	}
	*next_r = nl + 1;
	return nl > p && nl[-1] == '\r' ? nl - 1 : nl;
}

/* A printable sample of s for a sentence (at most 40 bytes). */
static char *sample(const unsigned char *s, size_t len)
{
	char *out = g_malloc(44), *o = out;
	size_t i;

	for (i = 0; i < len && i < 40; i++)
		*o++ = s[i] >= 32 && s[i] < 127 ? (char)s[i] : '?';
	if (len > 40) {
		memcpy(o, "...", 3);
		o += 3;
	}
	*o = '\0';
	return out;
}

/* ------------------------------------------------------------ header */

enum { F_CT, F_CTE, F_CD, F_COUNT };
static const char *const field_names[F_COUNT] = {"Content-Type", "Content-Transfer-Encoding",
                                                 "Content-Disposition"};
static const char *const field_lower[F_COUNT] = {"content-type", "content-transfer-encoding",
                                                 "content-disposition"};

struct header {
	const unsigned char *val[F_COUNT], *val_end[F_COUNT];
	bool blank;     /* ended by a blank line */
	bool first_odd; /* its first line is not a field */
	bool odd;       /* some line is not a field */
};

/* The header in [p, end): the three fields' raw values.  Returns the start
   of the body, or NULL with the doubt set. */
static const unsigned char *read_header(struct shape_ctx *c, const unsigned char *p,
                                        const unsigned char *end, struct header *h)
{
	const unsigned char *next, *e, *odd = NULL;
	int cur = -1; /* the field whose continuation lines follow */
	bool first = true;
	size_t odd_len = 0;

	memset(h, 0, sizeof(*h));
	while (p < end) {
		const unsigned char *colon, *q;
		size_t nlen;
		int k;

		e = line_end(p, end, &next);
		if (e == p) {
			h->blank = true;
			return next; /* the blank line */
		}
		if (memchr(p, '\0', (size_t)(e - p)) != NULL) {
			doubt(c, "a NUL byte in a header field");
			return NULL;
		}
		if (memchr(p, '\r', (size_t)(e - p)) != NULL) {
			doubt(c, "a bare carriage return (CR) in a header field");
			return NULL;
		}
		if ((*p == ' ' || *p == '\t') && !first) {
			/* continuation of the field before */
			if (cur >= 0)
				h->val_end[cur] = e;
			p = next;
			continue;
		}
		if (first)
			h->first_odd = true; /* until the field below is found good */
		first = false;
		colon = memchr(p, ':', (size_t)(e - p));
		for (q = p; colon != NULL && q < colon; q++)
			if (*q <= 32 || *q >= 127)
				break;
		nlen = colon != NULL ? (size_t)(colon - p) : 0;
		if (colon == NULL || q < colon || nlen == 0 || *p == ' ' || *p == '\t') {
			/* not a field: readers differ on whether the header goes on */
			const unsigned char *s = p;

			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
			if (prefix_nocase(s, (size_t)(e - s), "content-")) {
				char *t = sample(p, (size_t)(e - p));

				doubt(c, "a malformed Content-* header line (\"%s\")", t);
				g_free(t);
				return NULL;
			}
			h->odd = true;
			if (odd == NULL) {
				odd = p;
				odd_len = (size_t)(e - p);
			}
			cur = -2; /* its continuations belong to nothing */
			p = next;
			continue;
		}
		cur = -2;
		if (odd == NULL)
			h->first_odd = false;
		if (prefix_nocase(p, nlen, "content-")) {
			if (odd != NULL) {
				char *t = sample(odd, odd_len);

				doubt(
				    c,
				    "a header line that is not a field (\"%s\") before a Content-* "
				    "field",
				    t);
				g_free(t);
				return NULL;
			}
			for (k = 0; k < F_COUNT; k++) {
				if (!equal_nocase(p, nlen, field_lower[k]))
					continue;
				if (h->val[k] != NULL) {
					doubt(c, "two %s fields in one part", field_names[k]);
					return NULL;
				}
				h->val[k] = colon + 1;
				h->val_end[k] = e;
				cur = k;
			}
		}
		p = next;
	}
	return end;
}

/* The value of a field without its line breaks (g_free). */
static char *unfold_value(const unsigned char *v, const unsigned char *e)
{
	char *out = g_malloc((size_t)(e - v) + 1), *o = out;

	for (; v < e; v++)
		if (*v != '\r' && *v != '\n')
			*o++ = (char)*v;
	*o = '\0';
	return out;
}

/* ------------------------------------------------------------ parameters */

struct param {
	char name[40]; /* lower case, without the RFC 2231 suffix */
	int section;   /* -1: none */
	bool ext;      /* a trailing '*': charset'language'percent-encoded */
	char *value;   /* unquoted (g_free) */
};

struct params {
	struct param p[MAX_PARAMS];
	int n;
	char type[48]; /* "type/subtype", lower case; "" when absent */
};

static void params_free(struct params *ps)
{
	int i;

	for (i = 0; i < ps->n; i++)
		g_free(ps->p[i].value);
	ps->n = 0;
}

/* A significant parameter: what the structure or the attachment's name
   depends on. */
static bool significant(const char *name)
{
	return strcmp(name, "boundary") == 0 || strcmp(name, "name") == 0 ||
	       strcmp(name, "filename") == 0;
}

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* A comment at s (which is '('): the text after it, or NULL when it is
   unterminated or holds what a reader without comment support would take
   for a parameter. */
static const char *skip_comment(const char *s)
{
	int depth = 0;

	for (; *s; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '(')
			depth++;
		else if (*s == ')' && --depth == 0)
			return s + 1;
		else if (*s == ';' || *s == '=' || *s == '"')
			return NULL;
	}
	return NULL;
}

static const char *skip_cfws(struct shape_ctx *c, const char *s, const char *field)
{
	for (;;) {
		s = skip_ws(s);
		if (*s != '(')
			return s;
		s = skip_comment(s);
		if (s == NULL) {
			doubt(c, "a comment in %s that readers split differently", field);
			return NULL;
		}
	}
}

/* Parse "type/subtype; a=b; c="d"" (with_type) or "inline; a=b". */
static bool parse_params(struct shape_ctx *c, const char *v, bool with_type, const char *field,
                         struct params *ps)
{
	const char *s = skip_cfws(c, v, field), *t;
	bool junk = false;
	size_t i;

	ps->n = 0;
	ps->type[0] = '\0';
	if (s == NULL)
		return false;
	if (*s == '\0' && with_type)
		return doubt(c, "an empty Content-Type (some readers take text, some binary)");
	if (*s == '\0')
		return true;
	/* the type (and subtype) */
	for (t = s; is_tchar((unsigned char)*t); t++)
		;
	if (with_type) {
		const char *sub = t;

		if (*t == '/')
			for (sub = t + 1; is_tchar((unsigned char)*sub); sub++)
				;
		if (t == s || *t != '/' || sub == t + 1) {
			char *x = sample((const unsigned char *)v, strlen(v));

			doubt(c, "a Content-Type that is not type/subtype (\"%s\")", x);
			g_free(x);
			return false;
		}
		/* (a longer type is kept as its first bytes, as struct mf_mime_node) */
		for (i = 0; i < (size_t)(sub - s) && i < sizeof(ps->type) - 1; i++)
			ps->type[i] = (char)lower((unsigned char)s[i]);
		ps->type[i] = '\0';
		t = sub;
	}
	s = skip_cfws(c, t, field);
	if (s == NULL)
		return false;
	if (*s != '\0' && *s != ';') {
		char *x = sample((const unsigned char *)v, strlen(v));

		doubt(c, "text after the type in %s (\"%s\")", field, x);
		g_free(x);
		return false;
	}
	while (*s != '\0') {
		struct param *p;
		const char *name, *star;
		size_t nlen;
		GString *val;

		if (*s != ';') {
			/* text that is not a parameter: harmless unless a reader
			   could find a parameter in it */
			const char *semi = strchr(s, ';');
			size_t n = semi != NULL ? (size_t)(semi - s) : strlen(s);

			if (memchr(s, '=', n) != NULL) {
				char *x = sample((const unsigned char *)s, n);

				doubt(c, "text in %s that readers split differently (\"%s\")",
				      field, x);
				g_free(x);
				return false;
			}
			if (semi == NULL)
				break;
			s = semi;
			junk = true;
		}
		s = skip_cfws(c, s + 1, field);
		if (s == NULL)
			return false;
		if (*s == '\0' || *s == ';')
			continue;
		name = s;
		while (is_tchar((unsigned char)*s) || *s == '*')
			s++;
		nlen = (size_t)(s - name);
		s = skip_cfws(c, s, field);
		if (s == NULL)
			return false;
		if (nlen == 0 || *s != '=') {
			/* an attribute without a value (or junk) */
			char *x = sample((const unsigned char *)name, strcspn(name, ";"));

			if (strcspn(name, ";=\"\\") < strcspn(name, ";") ||
			    strncasecmp(name, "boundary", 8) == 0 ||
			    strncasecmp(name, "name", 4) == 0 ||
			    strncasecmp(name, "filename", 8) == 0) {
				doubt(c,
				      "a parameter in %s that readers split differently (\"%s\")",
				      field, x);
				g_free(x);
				return false;
			}
			g_free(x);
			s = name + strcspn(name, ";");
			junk = true;
			continue;
		}
		if (junk) {
			/* GMime stops at the junk; others read on */
			char *x = sample((const unsigned char *)v, strlen(v));

			doubt(c, "a parameter after text that is not a parameter in %s (\"%s\")",
			      field, x);
			g_free(x);
			return false;
		}
		if (ps->n == MAX_PARAMS) {
			doubt(c, "more than %d parameters in %s", MAX_PARAMS, field);
			return false;
		}
		p = &ps->p[ps->n];
		memset(p, 0, sizeof(*p));
		p->section = -1;
		star = memchr(name, '*', nlen);
		if (star != NULL) {
			const char *d = star + 1, *dend = name + nlen;
			int sec = 0;

			if (d < dend && *d >= '0' && *d <= '9') {
				for (; d < dend && *d >= '0' && *d <= '9' && sec < 100000; d++)
					sec = sec * 10 + (*d - '0');
				p->section = sec;
				if (d < dend && *d == '*') {
					p->ext = true;
					d++;
				}
			} else if (d < dend && *d == '*') {
				d = dend + 1; /* "name**" */
			} else {
				p->ext = true;
			}
			if (d != dend) {
				char *x = sample((const unsigned char *)name, nlen);

				doubt(c, "a malformed parameter name in %s (\"%s\")", field, x);
				g_free(x);
				return false;
			}
			nlen = (size_t)(star - name);
		}
		if (nlen == 0 || nlen >= sizeof(p->name)) {
			char *x = sample((const unsigned char *)name, nlen);

			doubt(c, "a malformed parameter name in %s (\"%s\")", field, x);
			g_free(x);
			return false;
		}
		for (i = 0; i < nlen; i++)
			p->name[i] = (char)lower((unsigned char)name[i]);
		p->name[nlen] = '\0';
		s = skip_ws(s + 1);
		val = g_string_new(NULL);
		if (*s == '"') {
			for (s++; *s != '\0' && *s != '"'; s++) {
				if (*s == '\\' && s[1] != '\0')
					s++;
				g_string_append_c(val, *s);
			}
			if (*s != '"') {
				g_string_free(val, TRUE);
				doubt(c, "an unterminated quoted %s parameter in %s", p->name,
				      field);
				return false;
			}
			s++;
		} else {
			bool clean = true;

			while (*s != '\0' && *s != ';' && *s != ' ' && *s != '\t' && *s != '(' &&
			       *s != '"') {
				if (!is_tchar((unsigned char)*s) && (unsigned char)*s < 0x80)
					clean = false;
				g_string_append_c(val, *s++);
			}
			if (!clean && significant(p->name)) {
				g_string_free(val, TRUE);
				doubt(c, "a %s parameter in %s with characters that need quotes",
				      p->name, field);
				return false;
			}
		}
		p->value = g_string_free(val, FALSE);
		ps->n++;
		t = skip_cfws(c, s, field);
		if (t == NULL)
			return false;
		if (*t != '\0' && *t != ';' && significant(p->name)) {
			char *x = sample((const unsigned char *)t, strcspn(t, ";"));

			doubt(c, "text after the %s parameter in %s (\"%s\")", p->name, field, x);
			g_free(x);
			return false;
		}
		s = t;
	}
	return true;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The UTF-8 value of parameter `name` from its forms: plain, name*,
   name*0.. (g_free), or NULL.  Sets the doubt when the forms disagree or
   the continuations are broken. */
static char *param_value(struct shape_ctx *c, const struct params *ps, const char *name,
                         const char *field, bool *bad_r)
{
	const struct param *plain = NULL, *ext = NULL;
	const struct param *sec[64];
	int i, nsec = 0, forms = 0;
	char *plain_v = NULL, *ext_v = NULL, *result;

	*bad_r = false;
	memset(sec, 0, sizeof(sec));
	for (i = 0; i < ps->n; i++) {
		const struct param *p = &ps->p[i];

		if (strcmp(p->name, name) != 0)
			continue;
		if (p->section < 0 && !p->ext) {
			if (plain != NULL && strcmp(plain->value, p->value) != 0)
				goto two;
			plain = p;
		} else if (p->section < 0) {
			if (ext != NULL && strcmp(ext->value, p->value) != 0)
				goto two;
			ext = p;
		} else {
			if (p->section >= 64 || sec[p->section] != NULL) {
				doubt(c, "the RFC 2231 section %s*%d appears twice in %s", name,
				      p->section, field);
				*bad_r = true;
				return NULL;
			}
			sec[p->section] = p;
			if (p->section + 1 > nsec)
				nsec = p->section + 1;
		}
	}
	for (i = 0; i < nsec; i++) {
		if (sec[i] == NULL) {
			doubt(c, "the RFC 2231 section %s*%d is missing in %s", name, i, field);
			*bad_r = true;
			return NULL;
		}
	}
	forms = (plain != NULL) + (ext != NULL) + (nsec > 0);
	if (forms == 0)
		return NULL;
	if (strcmp(name, "boundary") == 0 && (ext != NULL || nsec > 0)) {
		doubt(c, "a boundary in RFC 2231 form in %s", field);
		*bad_r = true;
		return NULL;
	}
	if (plain != NULL) {
		if (strstr(plain->value, "=?") != NULL)
			plain_v = g_mime_utils_header_decode_text(NULL, plain->value);
		else
			plain_v = g_strdup(plain->value);
	}
	if (ext != NULL || nsec > 0) {
		GString *raw = g_string_new(NULL);
		const char *charset = NULL;
		size_t clen = 0;
		int k;

		for (k = ext != NULL ? -1 : 0; k < (ext != NULL ? 0 : nsec); k++) {
			const struct param *p = k < 0 ? ext : sec[k];
			const char *s = p->value;

			if (p->ext && (k <= 0)) {
				/* charset'language'text */
				const char *q1 = strchr(s, '\''),
				           *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;

				if (q2 == NULL) {
					g_string_free(raw, TRUE);
					g_free(plain_v);
					doubt(c, "a malformed RFC 2231 %s parameter in %s", name,
					      field);
					*bad_r = true;
					return NULL;
				}
				charset = s;
				clen = (size_t)(q1 - s);
				s = q2 + 1;
			}
			for (; *s; s++) {
				if (p->ext && *s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
					g_string_append_c(raw,
					                  (char)(hexval(s[1]) * 16 + hexval(s[2])));
					s += 2;
				} else if (p->ext && *s == '%') {
					g_string_free(raw, TRUE);
					g_free(plain_v);
					doubt(
					    c,
					    "a broken %%-escape in the RFC 2231 %s parameter in %s",
					    name, field);
					*bad_r = true;
					return NULL;
				} else {
					g_string_append_c(raw, *s);
				}
			}
		}
		if (charset != NULL && clen > 0 && clen < 40) {
			char cs[40];

			memcpy(cs, charset, clen);
			cs[clen] = '\0';
			if (g_ascii_strcasecmp(cs, "utf-8") != 0 &&
			    g_ascii_strcasecmp(cs, "us-ascii") != 0) {
				iconv_t cd =
				    g_mime_iconv_open("UTF-8", g_mime_charset_canon_name(cs));

				if (cd == (iconv_t)-1) {
					g_string_free(raw, TRUE);
					g_free(plain_v);
					doubt(
					    c,
					    "an RFC 2231 %s parameter in %s in an unknown charset",
					    name, field);
					*bad_r = true;
					return NULL;
				}
				ext_v = g_mime_iconv_strndup(cd, raw->str, raw->len);
				g_mime_iconv_close(cd);
			}
		}
		if (ext_v == NULL && g_utf8_validate(raw->str, (gssize)raw->len, NULL))
			ext_v = g_strndup(raw->str, raw->len);
		g_string_free(raw, TRUE);
		if (ext_v == NULL) {
			g_free(plain_v);
			doubt(c, "an RFC 2231 %s parameter in %s that cannot be decoded", name,
			      field);
			*bad_r = true;
			return NULL;
		}
	}
	if (plain_v != NULL && ext_v != NULL && strcmp(plain_v, ext_v) != 0) {
		char *a = sample((const unsigned char *)plain_v, strlen(plain_v));
		char *b = sample((const unsigned char *)ext_v, strlen(ext_v));

		doubt(c, "two different %s parameters in %s (\"%s\" and \"%s\")", name, field, a,
		      b);
		g_free(a);
		g_free(b);
		g_free(plain_v);
		g_free(ext_v);
		*bad_r = true;
		return NULL;
	}
	result = ext_v != NULL ? ext_v : plain_v;
	if (result != plain_v)
		g_free(plain_v);
	if (result != NULL && *result == '\0') {
		g_free(result); /* an empty name is no name */
		result = NULL;
	}
	return result;
two:
	doubt(c, "two different %s parameters in %s", name, field);
	*bad_r = true;
	return NULL;
}

/* Every parameter given twice with different values, of any name. */
static bool check_duplicates(struct shape_ctx *c, const struct params *ps, const char *field)
{
	int i, j;

	for (i = 0; i < ps->n; i++) {
		for (j = 0; j < i; j++) {
			const struct param *a = &ps->p[i], *b = &ps->p[j];

			if (strcmp(a->name, b->name) != 0)
				continue;
			if (a->section == b->section && a->ext == b->ext &&
			    strcmp(a->value, b->value) == 0)
				continue; /* the same twice */
			if (significant(a->name))
				continue; /* param_value compares the decoded forms */
			if (a->section < 0 && b->section < 0 && a->ext == b->ext) {
				doubt(c, "two different %s parameters in %s", a->name, field);
				return false;
			}
		}
	}
	return true;
}

/* ------------------------------------------------------------ entities */

static bool read_entity(struct shape_ctx *c, const unsigned char *p, const unsigned char *end,
                        const unsigned char *raw_end, bool is_part, int depth, bool in_digest);

static bool add_node(struct shape_ctx *c, char kind, int depth, const char *type, char *filename)
{
	struct mf_mime_shape *s = c->out;
	struct mf_mime_node *n;

	if (!c->want_nodes) {
		g_free(filename);
		return true;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct mf_mime_node *nn = realloc(s->nodes, cap * sizeof(*nn));

		if (nn == NULL) {
			g_free(filename);
			c->oom = true;
			return false;
		}
		s->nodes = nn;
		s->cap = cap;
	}
	n = &s->nodes[s->n++];
	n->kind = kind;
	n->depth = depth;
	snprintf(n->type, sizeof(n->type), "%s", type);
	n->filename = filename;
	return true;
}

/* The parts of a multipart body [p, end) with boundary b. */
static bool read_multipart(struct shape_ctx *c, const unsigned char *p, const unsigned char *end,
                           const char *b, size_t blen, int depth, bool digest)
{
	const unsigned char *part = NULL, *next, *e, *line_start;
	bool closed = false, found = false;
	int i;

	for (i = 0; i < c->nstack; i++) {
		size_t n = c->stack[i].len < blen ? c->stack[i].len : blen;

		if (memcmp(c->stack[i].text, b, n) == 0)
			return doubt(c, "a boundary that begins like an enclosing boundary");
	}
	if (c->nstack == (int)MF_N_ELEMENTS(c->stack))
		return true;
	c->stack[c->nstack].text = (const unsigned char *)b;
	c->stack[c->nstack++].len = blen;
	for (line_start = p; line_start < end; line_start = next) {
		const unsigned char *q = line_start, *cr;
		bool close = false;

		e = line_end(line_start, end, &next);
		/* a bare CR starts a line for Python's email package */
		for (cr = memchr(q, '\r', (size_t)(e - q)); cr != NULL;
		     cr = memchr(cr + 1, '\r', (size_t)(e - cr - 1))) {
			if ((size_t)(e - cr) >= 3 + blen && cr[1] == '-' && cr[2] == '-' &&
			    memcmp(cr + 3, b, blen) == 0)
				return doubt(c, "a boundary after a bare carriage return (CR)");
		}
		if ((size_t)(e - q) < 2 + blen || q[0] != '-' || q[1] != '-' ||
		    memcmp(q + 2, b, blen) != 0)
			continue;
		q += 2 + blen;
		if (closed) {
			return doubt(c,
			             "the boundary again after the closing boundary (a part some "
			             "readers still show)");
		}
		if (e - q >= 2 && q[0] == '-' && q[1] == '-') {
			close = true;
			q += 2;
		}
		while (q < e && (*q == ' ' || *q == '\t'))
			q++;
		if (q != e)
			return doubt(c, "a line that begins with a boundary and goes on");
		if (part != NULL) {
			/* the line break before the boundary belongs to it */
			const unsigned char *pe = line_start;

			if (pe > part && pe[-1] == '\n')
				pe--;
			if (pe > part && pe[-1] == '\r')
				pe--;
			if (!read_entity(c, part, pe, line_start, true, depth + 1, digest))
				return false;
		}
		found = true;
		if (close) {
			closed = true;
			part = NULL;
			/* the epilogue: nothing a reader could take for a part */
			for (q = next; q < end; q = next) {
				e = line_end(q, end, &next);
				if (prefix_nocase(q, (size_t)(e - q), "content-"))
					return doubt(
					    c, "a Content-* field after the closing boundary (a "
					       "part some readers still show)");
				if ((size_t)(e - q) >= 2 + blen && q[0] == '-' && q[1] == '-' &&
				    memcmp(q + 2, b, blen) == 0)
					return doubt(
					    c, "the boundary again after the closing boundary (a "
					       "part some readers still show)");
			}
			break;
		}
		part = next;
	}
	c->nstack--;
	if (!found)
		return doubt(c, "a multipart whose boundary never appears");
	if (!closed)
		return doubt(c, "a multipart without its closing boundary");
	return true;
}

static bool plain_encoding(const char *cte)
{
	return cte == NULL || *cte == '\0' || g_ascii_strcasecmp(cte, "7bit") == 0 ||
	       g_ascii_strcasecmp(cte, "8bit") == 0 || g_ascii_strcasecmp(cte, "binary") == 0;
}

/* One entity (header and body) in [p, end); for a part of a multipart,
   raw_end is where its boundary line starts (end leaves out the line break
   before it), else end. */
static bool read_entity(struct shape_ctx *c, const unsigned char *p, const unsigned char *end,
                        const unsigned char *raw_end, bool is_part, int depth, bool in_digest)
{
	struct header h;
	struct params ct, cd;
	const unsigned char *body;
	char *cte = NULL, *name = NULL, *filename = NULL, *boundary = NULL, *fv;
	const char *type;
	bool ok = false, bad;

	if (depth > c->max_depth || (c->want_nodes && c->out->n >= c->max_nodes))
		return false; /* stop, not ambiguous: mime-walk.c reports the limit */
	body = read_header(c, p, raw_end, &h);
	if (body == NULL)
		return false;
	if (body > end)
		body = end;
	/* GMime drops such a part; other readers show it */
	if (is_part && !h.blank && (p == raw_end || h.first_odd))
		return doubt(c, "a MIME part with neither a header field nor a blank line");
	ct.n = cd.n = 0;
	ct.type[0] = '\0';
	if (h.val[F_CTE] != NULL) {
		char *v = unfold_value(h.val[F_CTE], h.val_end[F_CTE]);
		const char *s = skip_cfws(c, v, "Content-Transfer-Encoding"), *t;

		if (s == NULL) {
			g_free(v);
			return false;
		}
		for (t = s; is_tchar((unsigned char)*t); t++)
			;
		cte = g_strndup(s, (size_t)(t - s));
		t = skip_cfws(c, t, "Content-Transfer-Encoding");
		if (t == NULL || *t != '\0') {
			char *x = sample((const unsigned char *)v, strlen(v));

			g_free(v);
			g_free(cte);
			if (t != NULL)
				doubt(c,
				      "a Content-Transfer-Encoding of more than one word (\"%s\")",
				      x);
			g_free(x);
			return false;
		}
		g_free(v);
	}
	if (h.val[F_CT] != NULL) {
		fv = unfold_value(h.val[F_CT], h.val_end[F_CT]);
		ok = parse_params(c, fv, true, "Content-Type", &ct);
		g_free(fv);
		if (!ok || !check_duplicates(c, &ct, "Content-Type"))
			goto out;
		ok = false;
	}
	if (h.val[F_CD] != NULL) {
		fv = unfold_value(h.val[F_CD], h.val_end[F_CD]);
		ok = parse_params(c, fv, false, "Content-Disposition", &cd);
		g_free(fv);
		if (!ok || !check_duplicates(c, &cd, "Content-Disposition"))
			goto out;
		ok = false;
	}
	name = param_value(c, &ct, "name", "Content-Type", &bad);
	if (bad)
		goto out;
	filename = param_value(c, &cd, "filename", "Content-Disposition", &bad);
	if (bad)
		goto out;
	if (name != NULL && filename != NULL && g_ascii_strcasecmp(name, filename) != 0) {
		char *a = sample((const unsigned char *)name, strlen(name));
		char *b = sample((const unsigned char *)filename, strlen(filename));

		doubt(c,
		      "a Content-Type name (\"%s\") that differs from the Content-Disposition "
		      "filename (\"%s\")",
		      a, b);
		g_free(a);
		g_free(b);
		goto out;
	}
	type = ct.type[0] != '\0' ? ct.type : in_digest ? "message/rfc822" : "text/plain";
	if (strncmp(type, "multipart/", 10) == 0) {
		boundary = param_value(c, &ct, "boundary", "Content-Type", &bad);
		if (bad)
			goto out;
		if (boundary == NULL || *boundary == '\0') {
			doubt(c, "a multipart without a boundary");
			goto out;
		}
		if (!plain_encoding(cte)) {
			doubt(c, "a multipart with the transfer encoding %s", cte);
			goto out;
		}
		if (!add_node(c, 'm', depth, type, NULL))
			goto out;
		ok = read_multipart(c, body, end, boundary, strlen(boundary), depth,
		                    strcmp(type, "multipart/digest") == 0);
	} else if (strcmp(type, "message/rfc822") == 0 || strcmp(type, "message/news") == 0 ||
	           strcmp(type, "message/global") == 0) {
		if (!plain_encoding(cte)) {
			doubt(c, "an embedded message with the transfer encoding %s", cte);
			goto out;
		}
		if (!add_node(c, 'r', depth, type, NULL))
			goto out;
		/* an empty one holds no message part for GMime; a header not ended
		   by a blank line, with a line in it that is not a field, ends where
		   each reader likes */
		if (body != end) {
			struct header ih;

			if (read_header(c, body, end, &ih) == NULL)
				goto out;
			if (!ih.blank && ih.odd) {
				doubt(c, "an embedded message whose header has no end");
				goto out;
			}
		}
		ok = body == end || read_entity(c, body, end, end, false, depth + 1, false);
	} else {
		ok = add_node(c, 'l', depth, type,
		              filename != NULL ? g_strdup(filename) : g_strdup(name));
	}
out:
	params_free(&ct);
	params_free(&cd);
	g_free(cte);
	g_free(name);
	g_free(filename);
	g_free(boundary);
	return ok;
}

int mf_mime_shape_read(const unsigned char *data, size_t len, int max_depth, bool want_nodes,
                       struct mf_mime_shape *out)
{
	struct shape_ctx c = {.out = out, .want_nodes = want_nodes, .max_depth = max_depth};

	memset(out, 0, sizeof(*out));
	c.max_nodes = 100000;
	(void)read_entity(&c, data, data + len, data + len, false, 1, false);
	if (c.oom) {
		mf_mime_shape_free(out);
		return -1;
	}
	return 0;
}

void mf_mime_shape_free(struct mf_mime_shape *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		g_free(s->nodes[i].filename);
	free(s->nodes);
	g_free(s->doubt);
	memset(s, 0, sizeof(*s));
}
