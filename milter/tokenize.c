/*
 * tokenize.c - the classifier's view of a message: a set of distinct tokens.
 *
 * Input is UTF-8 text (mime-walk.c has already decoded base64 and
 * quoted-printable and converted every charset, EUC-KR included).  Words
 * are runs of letters and digits (with inner '-', '.', '\'', '_'),
 * lower-cased, between 3 and MF_TOKEN_MAX bytes (numbers included: on the
 * SpamAssassin corpus they carry signal).  Scripts written without spaces (Han, kana) and
 * Hangul words, whose endings change with grammar, also give overlapping
 * character pairs so that words are found inside phrases.  A word written
 * in capitals also gives an "uc:" token.  URLs give
 * "url:" tokens for their host and its parent domains and "urlp:" tokens
 * for the pieces of their path; HTML is reduced to
 * text and gives "tag:" tokens for the elements it uses.
 *
 * A token set holds at most max tokens; further ones are ignored (a huge
 * message cannot make the classifier slow).  Invalid UTF-8 bytes end a word.
 * There are no errors: out of memory only drops tokens.
 */
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "scan.h"

struct mf_tok {
	uint64_t hash;
	char *text;
	size_t len;
};

/* Token texts live in blocks freed together: one allocation per block
   instead of one per token. */
struct text_block {
	struct text_block *next;
	size_t used, size;
	char data[];
};

#define TEXT_BLOCK_SIZE 16384

/* A slot of the hash table: the high half of the token's hash (the low
   bits are its place) and 1 + its index in toks, 0 when empty.  Eight
   bytes, so that the table of most messages stays in the L1 cache. */
struct slot {
	uint32_t tag, index;
};

struct mf_tokens {
	uint64_t seed;      /* random per set: a sender cannot aim tokens at one slot */
	struct slot *slots; /* open addressing, power of two */
	size_t cap, count, max;
	struct mf_tok *toks; /* in insertion order, cap / 2 of them */
	struct text_block *texts;
};

static uint64_t load64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t load32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The 128-bit product of a and b, its two halves xor-ed: every bit of the
   result depends on every bit of both. */
static uint64_t mum(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 r = (unsigned __int128)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
	uint64_t ll = (a & 0xffffffff) * (b & 0xffffffff), lh = (a & 0xffffffff) * (b >> 32);
	uint64_t hl = (a >> 32) * (b & 0xffffffff), hh = (a >> 32) * (b >> 32);
	uint64_t mid = (ll >> 32) + (lh & 0xffffffff) + (hl & 0xffffffff);

	return ((mid << 32) | (ll & 0xffffffff)) ^ (hh + (lh >> 32) + (hl >> 32) + (mid >> 32));
#endif
}

/* Eight bytes at a time (the last piece read as two overlapping halves),
   each step a 128-bit multiplication: a short dependency chain, as the
   hash is taken for every word of a message.  The value only places
   tokens in the set of one message: it is never stored, and differs
   between byte orders. */
uint64_t mf_token_hash(uint64_t seed, const char *tok, size_t len)
{
	uint64_t h = seed ^ 0xcbf29ce484222325ULL ^ (len * 0x9e3779b97f4a7c15ULL), v;

	for (; len > 8; tok += 8, len -= 8)
		h = mum(h ^ load64(tok), 0x9e3779b97f4a7c15ULL);
	if (len >= 4)
		v = load32(tok) | load32(tok + len - 4) << 32;
	else if (len > 0)
		v = (uint64_t)(unsigned char)tok[0] | (uint64_t)(unsigned char)tok[len / 2] << 8 |
		    (uint64_t)(unsigned char)tok[len - 1] << 16;
	else
		v = 0;
	return mum(h ^ v, 0xbf58476d1ce4e5b9ULL);
}

struct mf_tokens *mf_tokens_new(size_t max)
{
	struct mf_tokens *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->max = max ? max : 1;
	/* The table is probed linearly: without a secret seed, a message
	   could be made of thousands of tokens with one hash. */
	randombytes_buf(&t->seed, sizeof(t->seed));
	/* Both arrays grow with the message: a set for up to 20,000 tokens
	   allocated in full would cost more than most messages' tokens. */
	t->cap = 1024;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	t->toks = malloc(t->cap / 2 * sizeof(*t->toks));
	if (t->slots == NULL || t->toks == NULL) {
		free(t->slots);
		free(t->toks);
		free(t);
		return NULL;
	}
	return t;
}

void mf_tokens_free(struct mf_tokens **tp)
{
	struct mf_tokens *t = *tp;

	if (t == NULL)
		return;
	while (t->texts != NULL) {
		struct text_block *b = t->texts;

		t->texts = b->next;
		free(b);
	}
	free(t->slots);
	free(t->toks);
	free(t);
	*tp = NULL;
}

size_t mf_tokens_count(const struct mf_tokens *t)
{
	return t->count;
}

const char *mf_tokens_get(const struct mf_tokens *t, size_t i, uint64_t *hash_r)
{
	const struct mf_tok *k;

	if (i >= t->count)
		return NULL;
	k = &t->toks[i];
	if (hash_r != NULL)
		*hash_r = k->hash;
	return k->text;
}

const char *mf_tokens_text(const struct mf_tokens *t, size_t i, size_t *len_r)
{
	if (i >= t->count)
		return NULL;
	*len_r = t->toks[i].len;
	return t->toks[i].text;
}

/* Double the table (at most half full, so toks needs cap / 2 entries). */
static bool tokens_grow(struct mf_tokens *t)
{
	size_t ncap = t->cap * 2, i, j;
	struct slot *n = calloc(ncap, sizeof(*n));
	struct mf_tok *ntoks = n != NULL ? realloc(t->toks, ncap / 2 * sizeof(*ntoks)) : NULL;

	if (ntoks == NULL) {
		free(n);
		return false;
	}
	t->toks = ntoks;
	for (j = 0; j < t->count; j++) {
		uint64_t h = t->toks[j].hash;

		i = h & (ncap - 1);
		while (n[i].index != 0)
			i = (i + 1) & (ncap - 1);
		n[i].tag = (uint32_t)(h >> 32);
		n[i].index = (uint32_t)(j + 1);
	}
	free(t->slots);
	t->slots = n;
	t->cap = ncap;
	return true;
}

static char *text_copy(struct mf_tokens *t, const char *s, size_t n)
{
	struct text_block *b = t->texts;
	char *p;

	if (b == NULL || b->size - b->used < n + 1) {
		size_t size = n + 1 > TEXT_BLOCK_SIZE ? n + 1 : TEXT_BLOCK_SIZE;

		b = malloc(sizeof(*b) + size);
		if (b == NULL)
			return NULL;
		b->next = t->texts;
		b->used = 0;
		b->size = size;
		t->texts = b;
	}
	p = b->data + b->used;
	memcpy(p, s, n);
	p[n] = '\0';
	b->used += n + 1;
	return p;
}

/* Whether the n bytes at a and b are the same (n small). */
static bool same_bytes(const char *a, const char *b, size_t n)
{
	size_t i;

	if (n >= 8) {
		for (i = 0; i + 8 < n; i += 8)
			if (load64(a + i) != load64(b + i))
				return false;
		return load64(a + n - 8) == load64(b + n - 8);
	}
	if (n >= 4)
		return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* Add the token of n bytes at src (n at most MF_TOKEN_MAX + 16), unless
   the set has it or is full. */
static void set_add(struct mf_tokens *t, const char *src, size_t n)
{
	struct slot *s;
	struct mf_tok *k;
	size_t i;
	uint64_t h;
	uint32_t tag;

	if (t->count >= t->max)
		return;
	h = mf_token_hash(t->seed, src, n);
	if ((t->count + 1) * 2 > t->cap && !tokens_grow(t))
		return;
	tag = (uint32_t)(h >> 32);
	i = h & (t->cap - 1);
	while ((s = &t->slots[i])->index != 0) {
		if (s->tag == tag) {
			const struct mf_tok *o = &t->toks[s->index - 1];

			if (o->hash == h && o->len == n && same_bytes(o->text, src, n))
				return;
		}
		i = (i + 1) & (t->cap - 1);
	}
	k = &t->toks[t->count];
	k->text = text_copy(t, src, n);
	if (k->text == NULL)
		return;
	k->hash = h;
	k->len = n;
	s->tag = tag;
	s->index = (uint32_t)++t->count;
}

/* mf_tokens_add with the prefix's length known (plen at most 16). */
static void tokens_add(struct mf_tokens *t, const char *prefix, size_t plen, const char *word,
                       size_t len)
{
	char buf[MF_TOKEN_MAX + 24];

	if (t->count >= t->max || len == 0)
		return;
	if (len > MF_TOKEN_MAX)
		len = MF_TOKEN_MAX;
	if (plen == 0) {
		set_add(t, word, len); /* no copy to look it up */
		return;
	}
	memcpy(buf, prefix, plen);
	memcpy(buf + plen, word, len);
	set_add(t, buf, plen + len);
}

static size_t prefix_len(const char *prefix)
{
	size_t plen = prefix != NULL ? strlen(prefix) : 0;

	return plen > 16 ? 16 : plen;
}

void mf_tokens_add(struct mf_tokens *t, const char *prefix, const char *word, size_t len)
{
	tokens_add(t, prefix, prefix_len(prefix), word, len);
}

/* ------------------------------------------------------------ words */

/* What an ASCII byte is inside a word (bytes from 0x80 are looked at as
   UTF-8 characters): bits that can be or-ed over a run of bytes. */
#define WC_WORD     1  /* part of a word */
#define WC_UPPER    2  /* A-Z: 0x20 (WC_UPPER << 4) lower-cases it */
#define WC_LOWER    4  /* a-z */
#define WC_NONDIGIT 8  /* anything but 0-9 */
#define WC_INNER    16 /* only inside a word: - . ' _ */

#define WC_L (WC_WORD | WC_LOWER | WC_NONDIGIT)
#define WC_U (WC_WORD | WC_UPPER | WC_NONDIGIT)
#define WC_I (WC_WORD | WC_INNER | WC_NONDIGIT)

static const unsigned char word_class[256] = {
    ['A' ... 'Z'] = WC_U,
    ['a' ... 'z'] = WC_L,
    ['0' ... '9'] = WC_WORD,
    ['$'] = WC_WORD | WC_NONDIGIT,
    ['-'] = WC_I,
    ['.'] = WC_I,
    ['\''] = WC_I,
    ['_'] = WC_I,
};

/* In a URL's path: bytes that end the path, and bytes that separate its
   pieces (NUL too). */
#define URL_END 1
#define URL_SEP 2

static const unsigned char url_class[256] = {
    [' '] = URL_END,  ['"'] = URL_END,  ['\''] = URL_END, ['>'] = URL_END,  ['<'] = URL_END,
    ['\n'] = URL_END, ['\r'] = URL_END, ['\t'] = URL_END, ['\0'] = URL_SEP, ['/'] = URL_SEP,
    ['?'] = URL_SEP,  ['='] = URL_SEP,  ['&'] = URL_SEP,  ['.'] = URL_SEP,  [';'] = URL_SEP,
    [':'] = URL_SEP,  ['#'] = URL_SEP,  ['%'] = URL_SEP,  ['+'] = URL_SEP,  [','] = URL_SEP,
};

/* Whether the n bytes at p are lit (lower-case ASCII), ignoring ASCII case. */
static bool ci_eq(const char *p, const char *lit, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != (unsigned char)lit[i])
			return false;
	}
	return true;
}

static bool is_spaceless_script(gunichar c)
{
	GUnicodeScript s = g_unichar_get_script(c);

	return s == G_UNICODE_SCRIPT_HAN || s == G_UNICODE_SCRIPT_HIRAGANA ||
	       s == G_UNICODE_SCRIPT_KATAKANA || s == G_UNICODE_SCRIPT_HANGUL ||
	       s == G_UNICODE_SCRIPT_THAI;
}

/* Longest word kept while it is read, in bytes (longer ones are dropped). */
#define WORD_MAX (MF_TOKEN_MAX * 2 + 8)

struct wstate {
	bool upper, lower; /* the word had upper-case / lower-case letters */
};

/* Emit one word (lower-cased UTF-8 in w, nchars characters, the plen bytes
   of the prefix in front of it): the word, the pairs of characters of a
   spaceless script, and for a word written all in capitals "uc:word"
   ("FREE" shouts). */
static void emit_word(struct mf_tokens *t, const char *prefix, size_t plen, const char *w,
                      size_t len, size_t nchars, bool digits, bool cjk, const struct wstate *ws)
{
	/* Trim trailing inner punctuation ("end." -> "end"). */
	while (len > 0 && (word_class[(unsigned char)w[len - 1]] & WC_INNER)) {
		len--;
		nchars--;
	}
	/* numbers of 3+ digits are kept: prices, years, codes */
	if (len == 0)
		return;
	if (!cjk && (len < 3 || len > MF_TOKEN_MAX))
		return;
	if (len <= MF_TOKEN_MAX)
		set_add(t, w - plen, plen + len); /* the prefix is in front of the word */
	if (cjk && nchars > 2) {
		/* Overlapping pairs of characters. */
		const char *p = w, *end = w + len;

		while (p < end) {
			const char *q = g_utf8_next_char(p);
			const char *r;

			if (q >= end)
				break;
			r = g_utf8_next_char(q);
			if (r > end)
				break;
			tokens_add(t, prefix, plen, p, (size_t)(r - p));
			p = q;
		}
	}
	if (cjk || digits || !ws->upper || ws->lower)
		return;
	if (prefix != NULL)
		tokens_add(t, "uch:", 4, w, len);
	else
		tokens_add(t, "uc:", 3, w, len);
}

/* Add "url:" tokens for a host name and its parent domains. */
static void emit_host(struct mf_tokens *t, const char *host, size_t len)
{
	char buf[256];
	size_t i, n = 0;
	const char *p;

	for (i = 0; i < len && n < sizeof(buf) - 1; i++) {
		char c = host[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		      (unsigned char)c >= 0x80))
			break;
		buf[n++] = c;
	}
	while (n > 0 && buf[n - 1] == '.')
		n--;
	buf[n] = '\0';
	if (n == 0)
		return;
	tokens_add(t, "url:", 4, buf, n);
	/* parent domains: a.b.example.com -> b.example.com, example.com, com */
	p = buf;
	while ((p = memchr(p, '.', (size_t)(buf + n - p))) != NULL) {
		p++;
		if (*p)
			tokens_add(t, "url:", 4, p, (size_t)(buf + n - p));
	}
}

/* If text at p starts a URL, emit its host and return the length of the
   "scheme://host" part; else 0. */
static size_t try_url(struct mf_tokens *t, const char *p, const char *end)
{
	const char *h = NULL, *q;
	size_t left = (size_t)(end - p);

	if (left > 7 && ci_eq(p, "http://", 7))
		h = p + 7;
	else if (left > 8 && ci_eq(p, "https://", 8))
		h = p + 8;
	else if (left > 4 && ci_eq(p, "www.", 4))
		h = p;
	if (h == NULL)
		return 0;
	q = h;
	/* skip user:password@ */
	for (const char *s = h; s < end && *s != '/' && *s != ' ' && *s != '"' && *s != '>'; s++) {
		if (*s == '@') {
			q = s + 1;
			break;
		}
	}
	h = q;
	while (q < end && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
	                   (*q >= '0' && *q <= '9') || *q == '-' || *q == '.'))
		q++;
	emit_host(t, h, (size_t)(q - h));
	/* The path's pieces under their own prefix ("/cgi-bin/r.pl?id=7" ->
	   cgi-bin, r, pl, id, 7): tracking scripts differ from archive links.
	   The path's words are also read as text afterwards. */
	if (q < end && *q == '/') {
		const char *e = q, *s;

		while (e < end && (size_t)(e - q) < 512 && url_class[(unsigned char)*e] != URL_END)
			e++;
		for (s = q; s < e;) {
			const char *w = s;

			while (w < e && url_class[(unsigned char)*w] == URL_SEP)
				w++;
			s = w;
			while (s < e && url_class[(unsigned char)*s] != URL_SEP)
				s++;
			if (s > w)
				tokens_add(t, "urlp:", 5, w, (size_t)(s - w));
		}
	}
	return (size_t)(q - p);
}

static bool ascii_alnum(gunichar c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The word so far gives its tokens (unless it grew too long), and a new
   one starts. */
#define END_WORD()                                                                        \
	do {                                                                              \
		if (!too_long)                                                            \
			emit_word(t, prefix, plen, word, wlen, nchars, digits, cjk, &ws); \
		ws.upper = ws.lower = false;                                              \
		wlen = nchars = 0;                                                        \
		digits = true;                                                            \
		too_long = false;                                                         \
	} while (0)

void mf_tokenize_text(struct mf_tokens *t, const char *prefix, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	size_t plen = prefix_len(prefix);
	char buf[16 + WORD_MAX], *word = buf + plen; /* the prefix, then the word */
	size_t wlen = 0, nchars = 0;
	bool digits = true, cjk = false, too_long = false;
	struct wstate ws = {.upper = false};
	bool ascii;

	if (plen > 0)
		memcpy(buf, prefix, plen);

	while (p < end && t->count < t->max) {
		gunichar c;
		const char *next;
		unsigned k;

		/* A URL gives its host; its labels are then read as words too. */
		if (wlen == 0 && (*p == 'h' || *p == 'H' || *p == 'w' || *p == 'W'))
			(void)try_url(t, p, end);
		k = word_class[(unsigned char)*p];
		if (k != 0 && (wlen > 0 ? !cjk : !(k & WC_INNER))) {
			/* A run of ASCII word characters, most of any mail, without
			   the Unicode path and without a branch per byte; no token is
			   added before its end. */
			const char *q = p, *lim;
			unsigned seen = 0;
			size_t room = WORD_MAX - 1 - wlen;

			cjk = false;
			lim = (size_t)(end - q) < room ? end : q + room;
			while (q < lim && (k = word_class[(unsigned char)*q]) != 0) {
				seen |= k;
				word[wlen++] = (char)(*q + ((k & WC_UPPER) << 4));
				q++;
			}
			nchars += (size_t)(q - p);
			while (q < end && (k = word_class[(unsigned char)*q]) != 0) {
				seen |= k;
				too_long = true;
				q++;
			}
			if (seen & WC_UPPER)
				ws.upper = true;
			if (seen & WC_LOWER)
				ws.lower = true;
			if (seen & WC_NONDIGIT)
				digits = false;
			p = q;
			continue;
		}
		if ((unsigned char)*p < 0x80 && (k == 0 || wlen == 0)) {
			/* ASCII that is not part of a word (inner punctuation is not
			   before a word's first character) ends the word, and so do
			   the ones after it. */
			if (wlen > 0)
				END_WORD();
			do
				p++;
			while (p < end && (unsigned char)*p < 0x80 &&
			       ((k = word_class[(unsigned char)*p]) == 0 || (k & WC_INNER)));
			continue;
		}
		if ((unsigned char)*p < 0x80) {
			/* ASCII, most of any mail: no Unicode tables needed */
			c = (unsigned char)*p;
			next = p + 1;
			ascii = true;
		} else {
			c = g_utf8_get_char_validated(p, (gssize)(end - p));
			if (c == (gunichar)-1 || c == (gunichar)-2) {
				next = p + 1;
				c = ' ';
			} else {
				next = g_utf8_next_char(p);
			}
			ascii = c < 0x80;
		}
		if ((ascii ? ascii_alnum(c) : g_unichar_isalnum(c)) || c == '$' ||
		    (wlen > 0 && (c == '-' || c == '.' || c == '\'' || c == '_'))) {
			bool sl = c >= 0x80 && is_spaceless_script(c);
			char enc[8];
			int n;

			if (wlen > 0 && sl != cjk)
				END_WORD(); /* a change of script ends the word */
			cjk = sl;
			if (ascii) {
				if (c >= 'A' && c <= 'Z') {
					ws.upper = true;
					c += 'a' - 'A';
				} else if (c >= 'a' && c <= 'z') {
					ws.lower = true;
				}
				enc[0] = (char)c;
				n = 1;
			} else {
				if (g_unichar_isupper(c))
					ws.upper = true;
				else if (g_unichar_islower(c))
					ws.lower = true;
				c = g_unichar_tolower(c);
				n = g_unichar_to_utf8(c, enc);
			}
			if (wlen + (size_t)n < WORD_MAX) {
				memcpy(word + wlen, enc, (size_t)n);
				wlen += (size_t)n;
				nchars++;
			} else {
				too_long = true;
			}
			if (ascii ? !(c >= '0' && c <= '9') : !g_unichar_isdigit(c))
				digits = false;
		} else if (wlen > 0) {
			END_WORD();
		}
		p = next;
	}
	if (wlen > 0 && !too_long)
		emit_word(t, prefix, plen, word, wlen, nchars, digits, cjk, &ws);
}
#undef END_WORD

/* ------------------------------------------------------------ HTML */

struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *x;

		while (cap < b->len + n + 1)
			cap *= 2;
		x = realloc(b->s, cap);
		if (x == NULL)
			return;
		b->s = x;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static const struct {
	const char *name;
	const char *text;
} entities[] = {
    {"nbsp", " "},         {"amp", "&"},        {"lt", "<"},
    {"gt", ">"},           {"quot", "\""},      {"apos", "'"},
    {"copy", "\xc2\xa9"},  {"reg", "\xc2\xae"}, {"euro", "\xe2\x82\xac"},
    {"pound", "\xc2\xa3"},
};

/* Decode the entity at p (just after '&'); returns bytes consumed or 0. */
static size_t html_entity(struct sbuf *b, const char *p, const char *end)
{
	size_t i;

	if (p < end && *p == '#') {
		const char *q = p + 1;
		unsigned long v = 0;
		bool hex = q < end && (*q == 'x' || *q == 'X');
		int digits = 0;
		char enc[8];

		if (hex)
			q++;
		while (q < end && digits < 8) {
			int d;

			if (*q >= '0' && *q <= '9')
				d = *q - '0';
			else if (hex && *q >= 'a' && *q <= 'f')
				d = *q - 'a' + 10;
			else if (hex && *q >= 'A' && *q <= 'F')
				d = *q - 'A' + 10;
			else
				break;
			v = v * (hex ? 16 : 10) + (unsigned long)d;
			q++;
			digits++;
		}
		if (digits == 0)
			return 0;
		if (q < end && *q == ';')
			q++;
		if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			v = ' ';
		sb_put(b, enc, (size_t)g_unichar_to_utf8((gunichar)v, enc));
		return (size_t)(q - p);
	}
	for (i = 0; i < MF_N_ELEMENTS(entities); i++) {
		size_t n = strlen(entities[i].name);

		if ((size_t)(end - p) > n && ci_eq(p, entities[i].name, n) && p[n] == ';') {
			sb_put(b, entities[i].text, strlen(entities[i].text));
			return n + 1;
		}
	}
	return 0;
}

/* Inside a tag [p, end): URL attributes give hosts. */
static void html_tag(struct mf_tokens *t, const char *p, const char *end)
{
	const char *q = p;
	char name[16];
	size_t n = 0;

	if (q < end && *q == '/')
		q++;
	while (q < end && n < sizeof(name) - 1 &&
	       ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9'))) {
		name[n++] = (char)(*q >= 'A' && *q <= 'Z' ? *q - 'A' + 'a' : *q);
		q++;
	}
	if (n > 0 && p[0] != '/')
		tokens_add(t, "tag:", 4, name, n);
	for (; q < end; q++) {
		/* *q | 0x20 is 'h' for 'h' and 'H' only, 's' for 's' and 'S' only */
		if ((size_t)(end - q) > 5 && (((*q | 0x20) == 'h' && ci_eq(q, "href=", 5)) ||
		                              ((*q | 0x20) == 's' && ci_eq(q, "src=", 4)))) {
			const char *v = (const char *)memchr(q, 0x3d, (size_t)(end - q)) + 1;

			while (v < end && (*v == '"' || *v == '\'' || *v == ' '))
				v++;
			if (v < end) {
				size_t u = try_url(t, v, end);

				q = v + (u > 0 ? u - 1 : 0);
			}
		}
	}
}

/* The first needle (lower-case, its first byte not a letter) in [p, end),
   ignoring ASCII case. */
static const char *find_ci(const char *p, const char *end, const char *needle)
{
	size_t n = strlen(needle);

	while ((size_t)(end - p) >= n) {
		const char *c = memchr(p, needle[0], (size_t)(end - p) - n + 1);

		if (c == NULL)
			return NULL;
		if (ci_eq(c + 1, needle + 1, n - 1))
			return c;
		p = c + 1;
	}
	return NULL;
}

void mf_tokenize_html(struct mf_tokens *t, const char *html, size_t len)
{
	const char *p = html, *end = html + len;
	struct sbuf b = {0};

	while (p < end) {
		if (*p == '<') {
			const char *close;

			if ((size_t)(end - p) >= 4 && memcmp(p, "<!--", 4) == 0) {
				const char *c = find_ci(p + 4, end, "-->");

				p = c != NULL ? c + 3 : end;
				continue;
			}
			close = memchr(p, '>', (size_t)(end - p));
			if (close == NULL)
				close = end;
			html_tag(t, p + 1, close);
			if ((size_t)(end - p) > 7 &&
			    (ci_eq(p, "<script", 7) || ci_eq(p, "<style", 6))) {
				const char *c = find_ci(
				    close, end, ci_eq(p, "<script", 7) ? "</script" : "</style");

				close = c != NULL ? c : end;
			}
			sb_put(&b, " ", 1);
			p = close < end ? close + 1 : end;
		} else if (*p == '&') {
			size_t n = html_entity(&b, p + 1, end);

			if (n == 0)
				sb_put(&b, "&", 1);
			p += 1 + n;
		} else {
			const char *q = p;

			while (q < end && *q != '<' && *q != '&')
				q++;
			sb_put(&b, p, (size_t)(q - p));
			p = q;
		}
	}
	if (b.s != NULL)
		mf_tokenize_text(t, NULL, b.s, b.len);
	free(b.s);
}
