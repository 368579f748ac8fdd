/*
 * embedded.c - files carried inside plain text: uuencode, yEnc, BinHex.
 *
 * Mail clients and news readers turn such a block in a text body into an
 * attachment of its own (Outlook Express and Thunderbird show "begin 644
 * invoice.exe" as invoice.exe), so the policy must judge it as one.  Each
 * block is found by its opening line and decoded as far as it goes:
 *
 *   begin MODE NAME ... end             uuencode (historic alphabet)
 *   begin-base64 MODE NAME ... ====     uuencode -m
 *   =ybegin ... name=NAME ... =yend     yEnc (=ypart lines skipped)
 *   (This file must be converted with BinHex 4.0)  :...:   BinHex 4.0
 *
 * A block that ends early or holds characters outside its alphabet is
 * reported as damaged, with what could be decoded.  At most max_blocks
 * blocks and max_total decoded bytes; past that nothing more is decoded.
 */
#include <stdlib.h>
#include <string.h>
#include "scan.h"

struct out {
	unsigned char *p;
	size_t len, cap;
	uint64_t left; /* budget */
	bool full;
};

static void put(struct out *o, unsigned char c)
{
	if (o->left == 0) {
		o->full = true;
		return;
	}
	if (o->len == o->cap) {
		size_t ncap = o->cap ? o->cap * 2 : 4096;
		unsigned char *n = realloc(o->p, ncap);

		if (n == NULL) {
			o->full = true;
			o->left = 0;
			return;
		}
		o->p = n;
		o->cap = ncap;
	}
	o->p[o->len++] = c;
	o->left--;
}

/* The line at *pos (without CR LF); advances *pos past it. */
static const char *next_line(const unsigned char *t, size_t len, size_t *pos, size_t *llen)
{
	size_t s = *pos, e;
	const unsigned char *nl;

	if (s >= len)
		return NULL;
	nl = memchr(t + s, '\n', len - s);
	e = nl != NULL ? (size_t)(nl - t) : len;
	*pos = nl != NULL ? e + 1 : len;
	if (e > s && t[e - 1] == '\r')
		e--;
	*llen = e - s;
	return (const char *)t + s;
}

static bool prefix(const char *l, size_t n, const char *p)
{
	size_t pl = strlen(p);

	return n >= pl && memcmp(l, p, pl) == 0;
}

/* "begin 644 name": the name, or NULL. */
static char *begin_name(const char *l, size_t n, size_t skip)
{
	size_t i = skip, k = 0;

	while (i < n && l[i] == ' ')
		i++;
	while (i < n && l[i] >= '0' && l[i] <= '7') {
		i++;
		k++;
	}
	if (k < 3 || k > 4 || i >= n || l[i] != ' ')
		return NULL;
	i++;
	if (i >= n)
		return NULL;
	return strndup(l + i, n - i);
}

static void uu_body(const unsigned char *t, size_t len, size_t *pos, struct out *o, bool *damaged)
{
	const char *l;
	size_t n;

	while ((l = next_line(t, len, pos, &n)) != NULL) {
		size_t want, i;
		unsigned v[4];

		if (n >= 3 && memcmp(l, "end", 3) == 0)
			return;
		if (n == 0)
			continue;
		want = (size_t)((l[0] - 0x20) & 0x3f);
		if (want == 0)
			continue; /* the "`" line before "end" */
		for (i = 1; want > 0 && !o->full; i += 4) {
			int k;

			for (k = 0; k < 4; k++) {
				char c = i + (size_t)k < n ? l[i + (size_t)k] : '`';

				if (c < 0x20 || c > 0x60) {
					*damaged = true;
					return;
				}
				v[k] = (unsigned)((c - 0x20) & 0x3f);
			}
			put(o, (unsigned char)(v[0] << 2 | v[1] >> 4));
			if (--want == 0)
				break;
			put(o, (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2));
			if (--want == 0)
				break;
			put(o, (unsigned char)((v[2] & 0x3) << 6 | v[3]));
			--want;
		}
		if (o->full)
			return;
	}
	*damaged = true; /* no "end" */
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static void b64_body(const unsigned char *t, size_t len, size_t *pos, struct out *o, bool *damaged)
{
	const char *l;
	size_t n, i;
	unsigned acc = 0;
	int bits = 0;

	while ((l = next_line(t, len, pos, &n)) != NULL) {
		if (n == 4 && memcmp(l, "====", 4) == 0)
			return;
		for (i = 0; i < n && !o->full; i++) {
			int v = b64val((unsigned char)l[i]);

			if (l[i] == '=')
				break;
			if (v < 0) {
				*damaged = true;
				return;
			}
			acc = acc << 6 | (unsigned)v;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				put(o, (unsigned char)(acc >> bits));
			}
		}
		if (o->full)
			return;
	}
	*damaged = true;
}

/* "=ybegin part=1 line=128 size=1000 name=x.exe": name is the rest. */
static void yenc_body(const unsigned char *t, size_t len, size_t *pos, struct out *o, bool *damaged)
{
	const char *l;
	size_t n, i;

	while ((l = next_line(t, len, pos, &n)) != NULL) {
		if (prefix(l, n, "=yend"))
			return;
		if (prefix(l, n, "=ypart"))
			continue;
		for (i = 0; i < n && !o->full; i++) {
			unsigned char c = (unsigned char)l[i];

			if (c == '=') {
				if (++i >= n) {
					*damaged = true;
					return;
				}
				c = (unsigned char)(l[i] - 64);
			}
			put(o, (unsigned char)(c - 42));
		}
		if (o->full)
			return;
	}
	*damaged = true;
}

static const char binhex_alphabet[] =
    "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr";

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* BinHex 4.0 from the ':' after the banner: 6-bit text, run-length
   coding, then a header (name, type, fork lengths) and the data fork. */
static char *binhex_body(const unsigned char *t, size_t len, size_t *pos, struct out *o,
                         bool *damaged)
{
	struct out raw = {.left = o->left};
	size_t i = *pos, nlen, dlen;
	unsigned acc = 0;
	int bits = 0;
	bool started = false, ended = false, rle = false;
	unsigned char prev = 0;
	char *name = NULL;

	for (; i < len && !raw.full; i++) {
		unsigned char c = t[i];
		const char *p;
		unsigned char b;

		if (!started) {
			if (c == ':')
				started = true;
			else if (c != '\r' && c != '\n' && c != ' ' && c != '\t')
				break;
			continue;
		}
		if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (c == ':') {
			ended = true;
			i++;
			break;
		}
		if ((p = memchr(binhex_alphabet, c, sizeof(binhex_alphabet) - 1)) == NULL)
			break;
		acc = acc << 6 | (unsigned)(p - binhex_alphabet);
		bits += 6;
		if (bits < 8)
			continue;
		bits -= 8;
		b = (unsigned char)(acc >> bits);
		if (rle) {
			rle = false;
			if (b == 0) {
				put(&raw, 0x90);
				prev = 0x90;
			} else {
				for (unsigned k = 1; k < b; k++)
					put(&raw, prev);
			}
		} else if (b == 0x90) {
			rle = true;
		} else {
			put(&raw, b);
			prev = b;
		}
	}
	*pos = i;
	if (!ended)
		*damaged = true;
	if (raw.len < 1 || raw.len < (size_t)1 + raw.p[0] + 1 + 4 + 4 + 2 + 4 + 4 + 2) {
		*damaged = true;
		free(raw.p);
		return strdup("");
	}
	nlen = raw.p[0];
	name = strndup((const char *)raw.p + 1, nlen);
	dlen = be32(raw.p + 1 + nlen + 1 + 4 + 4 + 2);
	i = 1 + nlen + 1 + 4 + 4 + 2 + 4 + 4 + 2;
	if (dlen > raw.len - i) {
		*damaged = true;
		dlen = raw.len - i;
	}
	for (size_t k = 0; k < dlen && !o->full; k++)
		put(o, raw.p[i + k]);
	free(raw.p);
	return name;
}

#define BINHEX_BANNER "(This file must be converted with BinHex"

static const unsigned char *find(const unsigned char *t, size_t len, size_t from, const char *s)
{
	return from < len ? memmem(t + from, len - from, s, strlen(s)) : NULL;
}

/* The next "begin" and BinHex banner at or after where the text was last
   looked at (NULL: none left).  Each is looked for again only once passed,
   so that text is read once however many lines start with "begin". */
struct openings {
	const unsigned char *b, *h;
};

/* The start of the next line at or after from that may open a block:
   "begin" at the start of a line or after "=y" there, or the BinHex
   banner at the start of a line; len when there is none.  from only grows
   from one call to the next. */
static size_t next_opening(struct openings *op, const unsigned char *t, size_t len, size_t from)
{
	for (;;) {
		size_t o;

		if (op->b != NULL && (size_t)(op->b - t) < from)
			op->b = find(t, len, from, "begin");
		if (op->h != NULL && (size_t)(op->h - t) < from)
			op->h = find(t, len, from, BINHEX_BANNER);
		if (op->b == NULL && op->h == NULL)
			return len;
		if (op->h != NULL && (op->b == NULL || op->h < op->b)) {
			o = (size_t)(op->h - t);
			if (o == 0 || t[o - 1] == '\n')
				return o;
		} else {
			o = (size_t)(op->b - t);
			if (o == 0 || t[o - 1] == '\n')
				return o;
			if (o >= from + 2 && t[o - 2] == '=' && t[o - 1] == 'y' &&
			    (o == 2 || t[o - 3] == '\n'))
				return o - 2;
		}
		from = o + 1;
	}
}

size_t mf_embedded_scan(const unsigned char *text, size_t len, size_t max_blocks,
                        uint64_t max_total, void (*found)(void *ctx, const struct mf_embedded *e),
                        void *ctx)
{
	size_t pos = 0, count = 0, n;
	const char *l;
	uint64_t left = max_total;
	struct openings op = {find(text, len, 0, "begin"), find(text, len, 0, BINHEX_BANNER)};

	while (count < max_blocks && left > 0 && (pos = next_opening(&op, text, len, pos)) < len &&
	       (l = next_line(text, len, &pos, &n)) != NULL) {
		struct out o = {.left = left};
		struct mf_embedded e = {0};
		char *name = NULL;

		if (prefix(l, n, "begin-base64 ")) {
			if ((name = begin_name(l, n, 12)) == NULL)
				continue;
			e.encoding = "uuencode";
			b64_body(text, len, &pos, &o, &e.damaged);
		} else if (prefix(l, n, "begin ")) {
			if ((name = begin_name(l, n, 5)) == NULL)
				continue;
			e.encoding = "uuencode";
			uu_body(text, len, &pos, &o, &e.damaged);
		} else if (prefix(l, n, "=ybegin ")) {
			const char *nm = NULL;
			size_t i;

			for (i = 7; i + 6 <= n; i++) {
				if (l[i - 1] == ' ' && memcmp(l + i, "name=", 5) == 0) {
					nm = l + i + 5;
					break;
				}
			}
			if (nm == NULL)
				continue;
			name = strndup(nm, (size_t)(l + n - nm));
			e.encoding = "yenc";
			yenc_body(text, len, &pos, &o, &e.damaged);
		} else if (prefix(l, n, BINHEX_BANNER)) {
			e.encoding = "binhex";
			name = binhex_body(text, len, &pos, &o, &e.damaged);
		} else {
			continue;
		}
		if (name == NULL) {
			free(o.p);
			break;
		}
		if (o.full)
			e.damaged = true; /* past the budget: not all of it was read */
		e.name = name;
		e.data = o.p != NULL ? o.p : (const unsigned char *)"";
		e.len = o.len;
		left -= o.len < left ? o.len : left;
		found(ctx, &e);
		count++;
		free(name);
		free(o.p);
	}
	return count;
}
