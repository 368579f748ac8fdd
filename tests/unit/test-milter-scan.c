/*
 * test-milter-scan.c - the milter's message scanner, message by message.
 *
 * Builds small messages in memory (no corpus) and checks what a sender or
 * a postmaster would see: which attachment is refused, held or stripped
 * and with which reply; that a renamed program is caught by its content,
 * also inside a ZIP, RAR, 7z, tar, cab or ISO image (archives made here with
 * libarchive's writer); that MIME and archive bombs end in a verdict; that
 * EUC-KR, HTML and URLs tokenize sensibly; that the classifier separates
 * trained spam from ham; the rules and the X-Spam-Status text.
 */
#include <archive.h>
#include <archive_entry.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "../../milter/scan.h"
#include "mf-config.h"
#include "tap.h"

/* ------------------------------------------------------------ helpers */

static struct mf_policy *policy(const char *extra)
{
	char text[4096];
	struct mf_config *cfg;
	struct mf_policy *pol;
	struct mf_error err;

	snprintf(text, sizeof(text), "[milter]\ntmp_dir = /tmp\n%s", extra);
	cfg = mf_config_load_buffer("test.conf", text, strlen(text), &err);
	if (cfg == NULL) {
		diag("config: %s", err.msg);
		return NULL;
	}
	pol = mf_policy_new(cfg, &err);
	if (pol == NULL)
		diag("policy: %s", err.msg);
	mf_config_free(&cfg);
	return pol;
}

static const char *policy_error(const char *extra)
{
	static struct mf_error err;
	struct mf_config *cfg;
	struct mf_policy *pol;

	cfg = mf_config_load_buffer("test.conf", extra, strlen(extra), &err);
	if (cfg == NULL)
		return err.msg;
	pol = mf_policy_new(cfg, &err);
	mf_config_free(&cfg);
	if (pol != NULL) {
		mf_policy_unref(&pol);
		return NULL;
	}
	return err.msg;
}

struct buf {
	char *s;
	size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void put_le(struct buf *b, uint64_t v, int n)
{
	unsigned char x[8];
	int i;

	for (i = 0; i < n; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	put(b, x, (size_t)n);
}

struct zentry {
	const char *name;
	const void *data;
	size_t len;
	bool encrypted;
	uint64_t fake_usize; /* 0: real size */
};

/* A ZIP archive with stored (uncompressed) entries. */
static struct buf make_zip(const struct zentry *e, int n)
{
	struct buf z = {0}, cd = {0};
	uint64_t offs[16];
	int i;

	for (i = 0; i < n; i++) {
		offs[i] = z.len;
		put_le(&z, 0x04034b50, 4);
		put_le(&z, 20, 2);
		put_le(&z, e[i].encrypted ? 1 : 0, 2);
		put_le(&z, 0, 2); /* stored */
		put_le(&z, 0, 4); /* time, date */
		put_le(&z, 0, 4); /* crc */
		put_le(&z, e[i].len, 4);
		put_le(&z, e[i].fake_usize ? e[i].fake_usize : e[i].len, 4);
		put_le(&z, strlen(e[i].name), 2);
		put_le(&z, 0, 2);
		puts_(&z, e[i].name);
		put(&z, e[i].data, e[i].len);
	}
	for (i = 0; i < n; i++) {
		put_le(&cd, 0x02014b50, 4);
		put_le(&cd, 20, 2);
		put_le(&cd, 20, 2);
		put_le(&cd, e[i].encrypted ? 1 : 0, 2);
		put_le(&cd, 0, 2);
		put_le(&cd, 0, 4);
		put_le(&cd, 0, 4);
		put_le(&cd, e[i].len, 4);
		put_le(&cd, e[i].fake_usize ? e[i].fake_usize : e[i].len, 4);
		put_le(&cd, strlen(e[i].name), 2);
		put_le(&cd, 0, 2);
		put_le(&cd, 0, 2);
		put_le(&cd, 0, 2);
		put_le(&cd, 0, 2);
		put_le(&cd, 0, 4);
		put_le(&cd, offs[i], 4);
		puts_(&cd, e[i].name);
	}
	{
		uint64_t cd_off = z.len;

		put(&z, cd.s, cd.len);
		put_le(&z, 0x06054b50, 4);
		put_le(&z, 0, 4);
		put_le(&z, (uint64_t)n, 2);
		put_le(&z, (uint64_t)n, 2);
		put_le(&z, cd.len, 4);
		put_le(&z, cd_off, 4);
		put_le(&z, 0, 2);
	}
	free(cd.s);
	return z;
}

static char *b64(const void *data, size_t len)
{
	return g_base64_encode(data, len);
}

/* A multipart/mixed message with a text part and attachments. */
struct att {
	const char *name;
	const char *ctype;
	const void *data;
	size_t len;
};

static struct buf message(const char *headers, const char *text, const struct att *a, int n)
{
	struct buf m = {0};
	int i;

	puts_(&m, headers);
	puts_(&m, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n"
	          "--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
	puts_(&m, text);
	puts_(&m, "\r\n");
	for (i = 0; i < n; i++) {
		char *enc = b64(a[i].data, a[i].len);
		char hdr[512];

		snprintf(hdr, sizeof(hdr),
		         "--BOUND\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: "
		         "attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		         a[i].ctype, a[i].name, a[i].name);
		puts_(&m, hdr);
		puts_(&m, enc);
		puts_(&m, "\r\n");
		g_free(enc);
	}
	puts_(&m, "--BOUND--\r\n");
	return m;
}

static const char *std_headers = "From: Alice <alice@example.org>\r\n"
                                 "To: bob@example.test\r\n"
                                 "Subject: Quarterly report\r\n"
                                 "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
                                 "Message-ID: <r1@example.org>\r\n";

static int scan(const struct mf_policy *pol, const struct mf_model *model, const struct buf *m,
                struct mf_verdict *v)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(m->s, m->len);
	struct mf_error err;
	int r;

	mf_verdict_init(v);
	r = mf_scan(pol, model, s, v, &err);
	if (r < 0)
		diag("scan: %s", err.msg);
	g_object_unref(s);
	return r;
}

static bool has_token(struct mf_tokens *t, const char *tok)
{
	size_t i;

	for (i = 0; i < mf_tokens_count(t); i++) {
		if (strcmp(mf_tokens_get(t, i, NULL), tok) == 0)
			return true;
	}
	return false;
}

static struct mf_tokens *walk_tokens(const struct mf_policy *pol, const char *msg)
{
	struct mf_tokens *t = mf_tokens_new(MF_MAX_TOKENS);
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(msg, strlen(msg));
	struct mf_verdict v;
	struct mf_error err;

	mf_verdict_init(&v);
	if (mf_mime_walk(pol, s, t, &v, &err) < 0)
		diag("walk: %s", err.msg);
	mf_verdict_free(&v);
	g_object_unref(s);
	return t;
}

static const unsigned char exe[] = "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"
                                   "This program cannot be run in DOS mode.";
static const unsigned char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n";

/* ------------------------------------------------------------ tests */

static void test_filetype(void)
{
	ok(mf_filetype_detect(exe, sizeof(exe)) == MF_FT_WINDOWS_EXE, "MZ is a Windows program");
	ok(mf_filetype_detect((const unsigned char *)"\x7f"
	                                             "ELF\x02\x01",
	                      6) == MF_FT_ELF,
	   "ELF is a program");
	ok(mf_filetype_detect((const unsigned char *)"#!/bin/sh\n", 10) == MF_FT_SCRIPT,
	   "#! is a script");
	ok(mf_filetype_detect(pdf, sizeof(pdf)) == MF_FT_PDF, "a PDF is a PDF");
	ok(mf_filetype_detect((const unsigned char *)"hello", 5) == MF_FT_UNKNOWN,
	   "plain text is unknown");
	ok(strcmp(mf_filetype_name(MF_FT_WINDOWS_EXE), "windows-executable") == 0,
	   "type names are the ones blocked_types uses");
}

static void test_policy(void)
{
	struct mf_policy *p = policy("");
	const char *e;

	ok(p != NULL && p->spam_threshold == 5.0 && p->default_action == MF_ACT_TEMPFAIL,
	   "defaults: spam at 5.0, tempfail on internal errors");
	ok(p != NULL && p->blocked_types[MF_FT_WINDOWS_EXE] && !p->blocked_types[MF_FT_PDF],
	   "defaults block programs, not documents");
	mf_policy_unref(&p);
	e = policy_error("[milter]\nspam_threshold = lots\n");
	ok(e != NULL && strstr(e, "spam_threshold") && strstr(e, "lots"),
	   "a threshold that is not a number names the key: %s", e ? e : "");
	e = policy_error("[milter]\nspam_threshold = 8\nhold_threshold = 6\n");
	ok(e != NULL && strstr(e, "hold_threshold"), "hold below spam is refused: %s", e ? e : "");
	e = policy_error("[milter]\nblocked_types = windows-executable, exe-files\n");
	ok(e != NULL && strstr(e, "exe-files"), "an unknown content type is named: %s", e ? e : "");
	e = policy_error("[milter]\nreject_threshold = off\nsocket = inet:1234@127.0.0.1\n");
	ok(e == NULL, "'off' disables a threshold");
	e = policy_error("[milter]\nsocket = /run/x.sock\n");
	ok(e != NULL && strstr(e, "socket"), "a socket without unix:/inet: is refused");
}

static void test_msgbuf(void)
{
	struct mf_msgbuf *b = mf_msgbuf_new("/tmp", 4096);
	struct mf_error err;
	char chunk[1000];
	GMimeStream *s;
	const unsigned char *d;
	size_t len;
	int i, good = 1;

	for (i = 0; i < 20; i++) {
		memset(chunk, 'a' + i, sizeof(chunk));
		good &= mf_msgbuf_append(b, chunk, sizeof(chunk), &err) == 0;
	}
	ok(good && mf_msgbuf_spilled(b), "a message past the spill threshold goes to a file");
	s = mf_msgbuf_stream(b, &err);
	ok(s != NULL && g_mime_stream_length(s) == 20000, "the stream holds every byte");
	if (s != NULL) {
		char rd[20000];
		ssize_t n = 0, r;

		while (n < (ssize_t)sizeof(rd) &&
		       (r = g_mime_stream_read(s, rd + n, sizeof(rd) - (size_t)n)) > 0)
			n += r;
		ok(n == 20000 && rd[0] == 'a' && rd[19999] == 'a' + 19,
		   "the spilled message reads back from the start");
		g_object_unref(s);
	}
	good = mf_msgbuf_append(b, "z", 1, &err) == 0;
	d = mf_msgbuf_data(b, &len, &err);
	ok(good && d != NULL && len == 20001 && d[20000] == 'z',
	   "appending after reading still appends at the end");
	d = mf_msgbuf_data(b, &len, &err);
	ok(d != NULL && len == 20001 && d[0] == 'a' && d[19999] == 'a' + 19,
	   "the mapped content is what was written");
	mf_msgbuf_free(&b);
}

static void test_tokens(void)
{
	struct mf_policy *pol = policy("");
	struct mf_tokens *t;
	iconv_t cd;
	char ko_utf8[] = "회의 일정을 알려드립니다. 예산 보고서";
	char ko_euc[256], *in = ko_utf8, *out = ko_euc, *enc, msg[2048];
	size_t inl = strlen(ko_utf8), outl = sizeof(ko_euc);

	t = walk_tokens(pol, "From: a@example.org\r\nSubject: Cheap WATCHES now\r\n\r\n"
	                     "Visit http://Shop.Example.COM/offer?id=12345 today, 2026 deals!\r\n");
	ok(has_token(t, "subj:cheap") && has_token(t, "subj:watches"),
	   "Subject words are lower-cased and prefixed");
	ok(has_token(t, "url:shop.example.com") && has_token(t, "url:example.com"),
	   "URL hosts and their parent domains are tokens");
	ok(has_token(t, "visit") && has_token(t, "today") && has_token(t, "2026") &&
	       !has_token(t, "now,"),
	   "body words and numbers are tokens, without punctuation");
	ok(has_token(t, "hn:subject"), "header names are tokens");
	mf_tokens_free(&t);

	cd = iconv_open("EUC-KR", "UTF-8");
	ok(cd != (iconv_t)-1 && iconv(cd, &in, &inl, &out, &outl) != (size_t)-1,
	   "EUC-KR test text encoded");
	iconv_close(cd);
	enc = b64(ko_euc, sizeof(ko_euc) - outl);
	snprintf(
	    msg, sizeof(msg),
	    "From: a@example.org\r\nSubject: =?EUC-KR?B?yLjAxyDAz8Gk?=\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=euc-kr\r\nContent-Transfer-Encoding: "
	    "base64\r\n\r\n%s\r\n",
	    enc);
	g_free(enc);
	t = walk_tokens(pol, msg);
	ok(has_token(t, "회의") && has_token(t, "예산") && has_token(t, "보고서"),
	   "EUC-KR base64 body becomes Korean words in UTF-8");
	ok(has_token(t, "subj:회의") && has_token(t, "subj:일정"),
	   "RFC 2047 EUC-KR subject is decoded");
	ok(has_token(t, "알려") || has_token(t, "려드"), "long Hangul words also give pairs");
	mf_tokens_free(&t);

	t = walk_tokens(pol, "From: a@example.org\r\n"
	                     "Content-Type: text/plain; charset=ISO-8859-1\r\n"
	                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	                     "Caf=E9 cr=E8me br=FBl=E9e, \xa9 2026 Stra=DFe\r\n");
	ok(has_token(t, "café") && has_token(t, "crème") && has_token(t, "brûlée") &&
	       has_token(t, "straße") && has_token(t, "2026"),
	   "an ISO-8859-1 body becomes UTF-8 words");
	mf_tokens_free(&t);

	t = walk_tokens(pol, "From: a@example.org\r\nContent-Type: text/html\r\n\r\n"
	                     "<html><body><p>Cheap&nbsp;pills &amp; more</p><script>var "
	                     "hiddenword=1;</script><!-- secretcomment --><a "
	                     "href=\"https://click.spam.example/x\">here</a></body></html>\r\n");
	ok(has_token(t, "cheap") && has_token(t, "pills") && has_token(t, "more"),
	   "HTML text is tokenized, entities decoded");
	ok(!has_token(t, "hiddenword") && !has_token(t, "secretcomment"),
	   "scripts and comments are not text");
	ok(has_token(t, "url:click.spam.example") && has_token(t, "tag:a"),
	   "href hosts and tag names are tokens");
	mf_tokens_free(&t);
	mf_policy_unref(&pol);
}

static const char *spam_words[] = {"viagra", "casino", "winner", "lottery", "bonus", "jackpot"};
static const char *ham_words[] = {"meeting", "agenda", "budget", "minutes", "committee", "draft"};

/* Toy message i of 40: even ones spam words, odd ones ham words.  Returns
   whether it is spam. */
static bool toy_message(char *msg, size_t size, int i)
{
	bool spam = i % 2 == 0;
	const char **w = spam ? spam_words : ham_words;

	snprintf(msg, size, "From: x%d@example.org\r\nSubject: %s %s\r\n\r\n%s %s %s word%d\r\n", i,
	         w[i % 6], w[(i + 1) % 6], w[(i + 2) % 6], w[(i + 3) % 6], w[(i + 4) % 6], i);
	return spam;
}

static struct mf_model *trained_model(const struct mf_policy *pol)
{
	struct mf_token_key key;
	struct mf_model *m;
	int i;

	memset(&key, 7, sizeof(key));
	m = mf_model_new(&key, 100);
	for (i = 0; i < 40; i++) {
		char msg[512];
		bool spam = toy_message(msg, sizeof(msg), i);
		struct mf_tokens *t = walk_tokens(pol, msg);

		(void)mf_model_train(m, t, spam);
		mf_tokens_free(&t);
	}
	return m;
}

/* Tokens of a few texts exactly and in order, as the tokenizer has always
   given them (the classifier's models depend on it), and token ids equal
   to libsodium's SipHash-2-4. */
static void test_tokens_exact(void)
{
	static const struct {
		bool html;
		const char *prefix, *text, *tokens;
	} cases[] = {
	    {false, NULL,
	     "FREE money!!! Visit http://user:pw@Sub.Example.COM/cgi-bin/r.pl?id=7 it's end. "
	     "$100 x-ray_ 2026",
	     "free uc:free money visit url:sub.example.com url:example.com url:com urlp:cgi-bin "
	     "urlp:r urlp:pl urlp:id urlp:7 http user sub.example.com cgi-bin r.pl it's end $100 "
	     "x-ray 2026"},
	    {true, NULL,
	     "<HTML><!-- hidden --><A "
	     "HREF=\"https://Click.Spam.Example/x?a=1\">Cheap&nbsp;PILLS</a>"
	     "<SCRIPT>var secret;</Script><img src=www.pics.example/a.gif>&#x41;BC</html>",
	     "tag:html tag:a url:click.spam.example url:spam.example url:example urlp:x urlp:a "
	     "urlp:1 tag:script tag:img url:www.pics.example url:pics.example urlp:gif cheap pills "
	     "uc:pills script abc uc:abc"},
	    {false, "subj:",
	     "caf\xc3\xa9 \xc3\x89T\xc3\x89 \xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97"
	     "abc\xed\x9a\x8c\xec\x9d\x98 "
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
	     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	     "subj:caf\xc3\xa9 subj:\xc3\xa9t\xc3\xa9 uch:\xc3\xa9t\xc3\xa9 "
	     "subj:\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 subj:\xe4\xb8\xad\xe6\x96\x87 "
	     "subj:\xe6\x96\x87\xe5\xad\x97 subj:abc subj:\xed\x9a\x8c\xec\x9d\x98 "
	     "subj:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
	};
	struct mf_token_key key;
	unsigned char msg[80], out[crypto_shorthash_BYTES];
	size_t c, i, len;
	bool same = true;

	for (c = 0; c < MF_N_ELEMENTS(cases); c++) {
		struct mf_tokens *t = mf_tokens_new(1000);
		char got[2048] = "";
		bool lengths = true;

		if (cases[c].html)
			mf_tokenize_html(t, cases[c].text, strlen(cases[c].text));
		else
			mf_tokenize_text(t, cases[c].prefix, cases[c].text, strlen(cases[c].text));
		for (i = 0; i < mf_tokens_count(t); i++) {
			const char *tok = mf_tokens_text(t, i, &len);

			lengths = lengths && len == strlen(tok) && tok == mf_tokens_get(t, i, NULL);
			if (i > 0)
				g_strlcat(got, " ", sizeof(got));
			g_strlcat(got, tok, sizeof(got));
		}
		ok(strcmp(got, cases[c].tokens) == 0, "tokens of text %zu exactly: %s", c, got);
		ok(lengths && mf_tokens_text(t, i, &len) == NULL, "token lengths of text %zu", c);
		mf_tokens_free(&t);
	}

	/* the test vector of the SipHash paper: key 00..0f, message 00..0e */
	memset(&key, 0, sizeof(key));
	for (i = 0; i < 16; i++)
		key.k[i] = (unsigned char)i;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	ok(mf_token_id(&key, (const char *)msg, 15) == 0xe545be4961ca29a1ULL,
	   "token id of the SipHash-2-4 test vector");
	for (len = 0; len < sizeof(msg); len++) {
		uint64_t want = 0;

		crypto_shorthash(out, msg, len, key.k);
		for (i = 0; i < sizeof(out); i++)
			want = want << 8 | out[i];
		if (mf_token_id(&key, (const char *)msg, len) != (want != 0 ? want : 1)) {
			diag("length %zu differs", len);
			same = false;
		}
	}
	ok(same, "token ids equal libsodium's crypto_shorthash for 0 to 79 bytes");
}

static void test_classifier(void)
{
	struct mf_policy *pol = policy("min_training = 10\n");
	struct mf_model *m = trained_model(pol);
	struct mf_bayes_params bp;
	struct mf_bayes out;
	struct mf_tokens *t;
	uint64_t ns, nh;

	mf_model_messages(m, &ns, &nh);
	ok(ns == 20 && nh == 20, "training counts messages");
	mf_bayes_defaults(&bp);
	bp.min_training = 10;
	t = walk_tokens(pol, "From: new@example.org\r\nSubject: jackpot winner\r\n\r\n"
	                     "casino bonus lottery\r\n");
	mf_classify(m, t, &bp, &out);
	ok(out.trained && out.prob > 0.95, "spam words score as spam (%.4f)", out.prob);
	ok(out.ntop > 0 && out.top[0].prob > 0.9, "the strongest tokens are reported (%s)",
	   out.ntop ? out.top[0].token : "none");
	mf_tokens_free(&t);
	t = walk_tokens(pol, "From: colleague@example.org\r\nSubject: committee agenda\r\n\r\n"
	                     "draft minutes and budget\r\n");
	mf_classify(m, t, &bp, &out);
	ok(out.trained && out.prob < 0.05, "ham words score as ham (%.4f)", out.prob);
	bp.min_training = 1000;
	mf_classify(m, t, &bp, &out);
	ok(!out.trained && out.prob == 0.5, "an undertrained model stays out of the score");
	mf_tokens_free(&t);
	mf_model_unref(&m);
	mf_policy_unref(&pol);
}

static struct mf_trainset *toy_examples(const struct mf_policy *pol, const struct mf_token_key *key)
{
	struct mf_trainset *ts = mf_trainset_new();
	struct mf_error err;
	int i;

	for (i = 0; i < 40; i++) {
		char msg[512];
		bool spam = toy_message(msg, sizeof(msg), i);
		struct mf_tokens *t = walk_tokens(pol, msg);

		ok(mf_trainset_add_tokens(ts, key, t, spam, &err) == 0 || i > 0,
		   "examples are added");
		mf_tokens_free(&t);
	}
	return ts;
}

static void test_logistic(void)
{
	struct mf_policy *pol = policy("min_training = 10\n");
	struct mf_token_key key;
	struct mf_trainset *ts;
	struct mf_model *m, *m2;
	struct mf_bayes_params bp;
	struct mf_bayes out, out2;
	struct mf_tokens *t;
	struct mf_error err;
	uint64_t ids[] = {9, 3, 7, 3, 9, 1}, sorted[] = {1, 3, 7, 9};
	unsigned char d1[32], d2[32];
	const uint64_t *got;
	size_t n;
	bool spam;
	double bias;

	memset(&key, 7, sizeof(key));
	ts = toy_examples(pol, &key);
	ok(mf_trainset_count(ts) == 40, "40 training examples");
	ok(mf_trainset_add(ts, ids, 6, true, &err) == 0, "an example from raw ids");
	got = mf_trainset_get(ts, 40, &n, &spam);
	ok(n == 4 && memcmp(got, sorted, sizeof(sorted)) == 0 && spam,
	   "example ids are sorted and distinct (%zu)", n);
	mf_trainset_digest(got, n, d1);
	mf_trainset_digest(sorted, 4, d2);
	ok(memcmp(d1, d2, 32) == 0, "the digest is that of the id set");
	mf_trainset_digest(sorted, 3, d2);
	ok(memcmp(d1, d2, 32) != 0, "another set has another digest");

	m = mf_model_fit(ts, &key, &err);
	ok(m != NULL, "a model is fitted (%s)", m ? "" : err.msg);
	if (m == NULL)
		return;
	ok(mf_model_weighted(m, &bias), "a fitted model has weights (bias %.3f)", bias);
	mf_bayes_defaults(&bp);
	bp.min_training = 10;
	t = walk_tokens(pol, "From: new@example.org\r\nSubject: jackpot winner\r\n\r\n"
	                     "casino bonus lottery\r\n");
	mf_classify(m, t, &bp, &out);
	ok(out.trained && out.prob > 0.9, "spam words score as spam (%.4f)", out.prob);
	ok(out.ntop > 0 && out.top[0].prob > 0.5 &&
	       (strstr(out.top[0].token, "jackpot") || strstr(out.top[0].token, "winner") ||
	        strstr(out.top[0].token, "casino") || strstr(out.top[0].token, "bonus") ||
	        strstr(out.top[0].token, "lottery")),
	   "the strongest token is a spam word (%s %.3f)", out.ntop ? out.top[0].token : "none",
	   out.ntop ? out.top[0].prob : 0);
	m2 = mf_model_fit(ts, &key, &err);
	mf_classify(m2, t, &bp, &out2);
	ok(m2 != NULL && out2.prob == out.prob, "the fit is deterministic");
	mf_model_unref(&m2);
	mf_tokens_free(&t);
	t = walk_tokens(pol, "From: colleague@example.org\r\nSubject: committee agenda\r\n\r\n"
	                     "draft minutes and budget\r\n");
	mf_classify(m, t, &bp, &out);
	ok(out.trained && out.prob < 0.5, "ham words score well below the spam cut (%.4f)",
	   out.prob);
	ok(out.ntop > 0 && out.top[0].prob < 0.5, "the strongest token of ham pulls to ham (%s)",
	   out.ntop ? out.top[0].token : "none");
	mf_tokens_free(&t);
	mf_model_unref(&m);
	mf_trainset_free(&ts);
	ts = mf_trainset_new();
	ok(mf_model_fit(ts, &key, &err) == NULL && strstr(err.msg, "no training") != NULL,
	   "fitting nothing is an error (%s)", err.msg);
	mf_trainset_free(&ts);
	mf_policy_unref(&pol);
}

static void test_attachments(void)
{
	int r;
	struct mf_policy *pol = policy("max_attachment_size = 2k\n");
	struct mf_verdict v;
	struct buf m, z;
	char big[3000];

	/* a harmless PDF */
	{
		struct att a[] = {{"report.pdf", "application/pdf", pdf, sizeof(pdf)}};

		m = message(std_headers, "See attached.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.action == MF_ACT_ACCEPT && v.nattachments == 1 &&
		       v.attachments[0].type == MF_FT_PDF && v.attachments[0].size == sizeof(pdf),
		   "a PDF is accepted with its decoded size and type");
		mf_verdict_free(&v);
		free(m.s);
	}
	/* a program renamed .pdf */
	{
		struct att a[] = {{"invoice.pdf", "application/pdf", exe, sizeof(exe)}};

		m = message(std_headers, "Invoice attached.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.nattachments == 1 && v.attachments[0].action == MF_ACT_STRIP &&
		       v.attachments[0].type == MF_FT_WINDOWS_EXE && v.body_changed,
		   "a Windows program renamed .pdf is found by content and stripped");
		ok(v.attachments[0].reason && strstr(v.attachments[0].reason, "invoice.pdf") &&
		       strstr(v.attachments[0].reason, "windows-executable"),
		   "the reason names the file and what it is: %s",
		   v.attachments[0].reason ? v.attachments[0].reason : "");
		{
			GMimeStream *out = g_mime_stream_mem_new();
			struct mf_error err;
			GByteArray *arr;
			char *enc = b64(exe, sizeof(exe));

			ok(mf_scan_write_body(&v, out, &err) == 0, "the body is rewritten");
			arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
			g_byte_array_append(arr, (const guint8 *)"", 1);
			ok(strstr((char *)arr->data, "was removed") != NULL &&
			       strstr((char *)arr->data, "invoice.pdf") != NULL,
			   "a text part names the removed file");
			ok(strstr((char *)arr->data, enc) == NULL &&
			       strstr((char *)arr->data, "--BOUND--") != NULL,
			   "the program is gone and the multipart stays well formed");
			g_free(enc);
			g_object_unref(out);
		}
		mf_verdict_free(&v);
		free(m.s);
	}
	/* a blocked extension, with a reject policy */
	{
		struct mf_policy *rp = policy("blocked_action = reject\n");
		struct att a[] = {{"setup.EXE.", "application/octet-stream", "hello", 5}};

		m = message(std_headers, "Tool attached.", a, 1);
		r = scan(rp, NULL, &m, &v);
		ok(r == 0 && v.action == MF_ACT_REJECT && strcmp(v.reply_code, "552") == 0 &&
		       strcmp(v.reply_xcode, "5.3.4") == 0,
		   "a blocked extension (any case, trailing dot) is rejected with 552 5.3.4");
		mf_verdict_free(&v);
		free(m.s);
		mf_policy_unref(&rp);
	}
	/* too large */
	memset(big, 'x', sizeof(big));
	{
		struct att a[] = {{"scan.tif", "image/tiff", big, sizeof(big)}};

		m = message(std_headers, "Scan attached.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.action == MF_ACT_REJECT && strcmp(v.reply_code, "552") == 0,
		   "an attachment over max_attachment_size is rejected with 552");
		ok(v.reply_text && strstr(v.reply_text, "scan.tif") &&
		       strstr(v.reply_text, "2.9 KB") && strstr(v.reply_text, "2.0 KB") &&
		       strstr(v.reply_text, "link"),
		   "the reply names the file, its size, the limit and what to do: %s",
		   v.reply_text ? v.reply_text : "");
		mf_verdict_free(&v);
		free(m.s);
	}
	/* a ZIP with a screensaver inside */
	{
		struct zentry ze[] = {{"docs/readme.txt", "read me", 7, false, 0},
		                      {"docs/photo.scr", "whatever", 8, false, 0}};
		struct att a[1];

		z = make_zip(ze, 2);
		a[0] = (struct att){"photos.zip", "application/zip", z.s, z.len};
		m = message(std_headers, "Photos.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.attachments[0].action == MF_ACT_STRIP && v.attachments[0].inner &&
		       strcmp(v.attachments[0].inner, "docs/photo.scr") == 0,
		   "a blocked name inside a ZIP is found");
		mf_verdict_free(&v);
		free(m.s);
		free(z.s);
	}
	/* a ZIP with a program renamed .txt inside */
	{
		struct zentry ze[] = {{"notes.txt", exe, sizeof(exe), false, 0}};
		struct att a[1];

		z = make_zip(ze, 1);
		a[0] = (struct att){"notes.zip", "application/zip", z.s, z.len};
		m = message(std_headers, "Notes.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.attachments[0].executable && v.attachments[0].action == MF_ACT_STRIP,
		   "a program renamed .txt inside a ZIP is found by content");
		mf_verdict_free(&v);
		free(m.s);
		free(z.s);
	}
	/* an encrypted ZIP */
	{
		struct zentry ze[] = {{"contract.docx", "\x01\x02\x03garbage", 10, true, 0}};
		struct att a[1];

		z = make_zip(ze, 1);
		a[0] = (struct att){"contract.zip", "application/zip", z.s, z.len};
		m = message(std_headers, "Contract, password by phone.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.attachments[0].encrypted &&
		       v.hold_reason && strstr(v.hold_reason, "encrypted"),
		   "an encrypted archive is held by default (%s)",
		   v.hold_reason ? v.hold_reason : "no reason");
		mf_verdict_free(&v);
		free(m.s);
		free(z.s);
	}
	/* a declared size is not believed: 10 bytes that claim to be 1 GB */
	{
		struct zentry ze[] = {{"big.bin", "0000000000", 10, false, 1024ULL * 1024 * 1024}};
		struct att a[1];

		z = make_zip(ze, 1);
		a[0] = (struct att){"big.zip", "application/zip", z.s, z.len};
		m = message(std_headers, "Data.", a, 1);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.action != MF_ACT_REJECT && v.attachments[0].uninspectable == NULL,
		   "a ZIP is judged by the bytes it holds, not by the sizes it declares (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(m.s);
		free(z.s);
	}
	/* an archive that lies about the size of a nested archive */
	{
		struct mf_policy *bp = policy("max_archive_size = 1M\n");
		size_t big_len = 1500000;
		char *big_data = calloc(1, big_len);
		struct zentry inner_e[] = {{"zeros.bin", big_data, big_len, false, 0}};
		struct buf inner = make_zip(inner_e, 1);
		struct zentry outer_e[] = {{"inner.zip", inner.s, inner.len, false, 100}};
		struct att a[1];

		z = make_zip(outer_e, 1);
		a[0] = (struct att){"outer.zip", "application/zip", z.s, z.len};
		m = message(std_headers, "Data.", a, 1);
		r = scan(bp, NULL, &m, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.reason &&
		       strstr(v.reason, "cannot be inspected") &&
		       strstr(v.reason, "inspection limit"),
		   "a nested archive that expands past max_archive_size is uninspectable: held "
		   "(%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		{
			struct mf_policy *rp =
			    policy("max_archive_size = 1M\nuninspectable_action = reject\n");

			r = scan(rp, NULL, &m, &v);
			ok(r == 0 && v.action == MF_ACT_REJECT &&
			       strcmp(v.reply_code, "552") == 0 && v.reply_text &&
			       strstr(v.reply_text, "outer.zip cannot be inspected"),
			   "uninspectable_action = reject refuses it, naming why (%s)",
			   v.reply_text ? v.reply_text : "none");
			mf_verdict_free(&v);
			mf_policy_unref(&rp);
		}
		free(m.s);
		free(z.s);
		free(inner.s);
		free(big_data);
		mf_policy_unref(&bp);
	}
	mf_policy_unref(&pol);
}

static void test_bombs(void)
{
	int r;
	struct mf_policy *pol = policy("max_mime_depth = 20\nmax_mime_parts = 200\n");
	struct mf_verdict v;
	struct buf m = {0};
	int i;

	puts_(&m, std_headers);
	for (i = 0; i < 60; i++) {
		char line[128];

		snprintf(line, sizeof(line),
		         "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
		puts_(&m, line);
	}
	puts_(&m, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	r = scan(pol, NULL, &m, &v);
	ok(r == 0 && v.limit_exceeded && v.action == MF_ACT_REJECT &&
	       strcmp(v.reply_code, "554") == 0 && v.reason && strstr(v.reason, "20"),
	   "60 nested multiparts end in a rejection naming the limit (%s)",
	   v.reason ? v.reason : "none");
	mf_verdict_free(&v);
	free(m.s);

	memset(&m, 0, sizeof(m));
	puts_(&m, std_headers);
	puts_(&m, "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n");
	for (i = 0; i < 1000; i++)
		puts_(&m, "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n");
	puts_(&m, "--B--\r\n");
	r = scan(pol, NULL, &m, &v);
	ok(r == 0 && v.limit_exceeded && v.action == MF_ACT_REJECT && v.reason &&
	       strstr(v.reason, "200"),
	   "a thousand parts end in a rejection (%s)", v.reason ? v.reason : "none");
	mf_verdict_free(&v);
	free(m.s);

	{
		struct mf_policy *hp = policy("max_header_size = 2k\n");

		memset(&m, 0, sizeof(m));
		puts_(&m, std_headers);
		for (i = 0; i < 100; i++)
			puts_(&m,
			      "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
		puts_(&m, "\r\nbody\r\n");
		r = scan(hp, NULL, &m, &v);
		ok(r == 0 && v.limit_exceeded && v.action == MF_ACT_REJECT && v.reason &&
		       strstr(v.reason, "header"),
		   "a header over max_header_size is refused (%s)", v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(m.s);
		mf_policy_unref(&hp);
	}
	mf_policy_unref(&pol);
}

struct aentry {
	const char *name;
	const void *data;
	size_t len;
};

static struct buf make_archive_opts(int format, int filter, const char *options,
                                    const struct aentry *e, int n);

/* An archive in memory, written by libarchive: format and filter as for
   archive_write_set_format() / archive_write_add_filter(). */
static struct buf make_archive(int format, int filter, const struct aentry *e, int n)
{
	return make_archive_opts(format, filter, NULL, e, n);
}

/* The same with writer options ("zip:encryption=zipcrypt",
   "7zip:compression=bzip2"); a passphrase is always set. */
static struct buf make_archive_opts(int format, int filter, const char *options,
                                    const struct aentry *e, int n)
{
	struct archive *w = archive_write_new();
	struct buf b = {0};
	size_t used = 0;
	int i;

	b.cap = 16 * 1024 * 1024;
	b.s = malloc(b.cap);
	archive_write_set_format(w, format);
	archive_write_add_filter(w, filter);
	if (format == ARCHIVE_FORMAT_RAW)
		archive_write_set_bytes_in_last_block(w, 1);
	if (options != NULL && (archive_write_set_passphrase(w, "secret") != ARCHIVE_OK ||
	                        archive_write_set_options(w, options) != ARCHIVE_OK))
		fprintf(stderr, "archive writer options: %s\n", archive_error_string(w));
	if (b.s == NULL || archive_write_open_memory(w, b.s, b.cap, &used) != ARCHIVE_OK)
		fprintf(stderr, "archive writer: %s\n", archive_error_string(w));
	for (i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();

		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_size(ae, (la_int64_t)e[i].len);
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_perm(ae, 0644);
		if (archive_write_header(w, ae) != ARCHIVE_OK ||
		    archive_write_data(w, e[i].data, e[i].len) != (la_ssize_t)e[i].len)
			fprintf(stderr, "archive writer: %s\n", archive_error_string(w));
		archive_entry_free(ae);
	}
	archive_write_close(w);
	archive_write_free(w);
	b.len = used;
	return b;
}

/* One attachment through the scanner; its verdict in *v. */
static int scan_one(const struct mf_policy *pol, const char *name, const struct buf *data,
                    struct mf_verdict *v)
{
	struct att a[] = {{name, "application/octet-stream", data->s, data->len}};
	struct buf m = message(std_headers, "Files attached.", a, 1);
	int r = scan(pol, NULL, &m, v);

	free(m.s);
	return r;
}

static bool reason_has(const struct mf_verdict *v, const char *a, const char *b)
{
	const char *r = v->nattachments ? v->attachments[0].reason : NULL;

	return r != NULL && strstr(r, a) != NULL && (b == NULL || strstr(r, b) != NULL);
}

static void test_other_archives(void)
{
	struct mf_policy *pol = policy("");
	struct mf_verdict v;
	struct buf arc, inner;
	static const char text[] = "minutes of the meeting\n";
	static const unsigned char elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0};
	int r;

	{ /* a program renamed .txt inside a 7z */
		struct aentry e[] = {{"notes.txt", text, sizeof(text)},
		                     {"readme.txt", exe, sizeof(exe)}};

		arc = make_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, e, 2);
		r = scan_one(pol, "docs.7z", &arc, &v);
		ok(r == 0 && v.attachments[0].type == MF_FT_7Z &&
		       v.attachments[0].action == MF_ACT_STRIP &&
		       reason_has(&v, "readme.txt", "windows-executable"),
		   "7z: a program renamed .txt is found by content (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	{ /* a blocked name in a tar.gz */
		struct aentry e[] = {{"tools/setup.exe", "hello", 5}};

		arc = make_archive(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, e, 1);
		r = scan_one(pol, "tools.tar.gz", &arc, &v);
		ok(r == 0 && v.attachments[0].type == MF_FT_GZIP &&
		       v.attachments[0].action == MF_ACT_STRIP &&
		       reason_has(&v, "setup.exe", ".exe"),
		   "tar.gz: a blocked name inside is found (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	{ /* harmless tar.xz and tar.bz2 pass */
		struct aentry e[] = {{"a.txt", text, sizeof(text)}, {"b.txt", text, sizeof(text)}};

		arc = make_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_XZ, e, 2);
		r = scan_one(pol, "docs.tar.xz", &arc, &v);
		ok(r == 0 && v.attachments[0].type == MF_FT_XZ &&
		       v.attachments[0].action == MF_ACT_ACCEPT && v.action == MF_ACT_ACCEPT,
		   "tar.xz of text files is accepted");
		mf_verdict_free(&v);
		free(arc.s);
		arc = make_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_BZIP2, e, 2);
		r = scan_one(pol, "docs.tar.bz2", &arc, &v);
		ok(r == 0 && v.attachments[0].type == MF_FT_BZIP2 &&
		       v.attachments[0].action == MF_ACT_ACCEPT,
		   "tar.bz2 of text files is accepted");
		mf_verdict_free(&v);
		free(arc.s);
		arc = make_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, e, 2);
		r = scan_one(pol, "docs.dat", &arc, &v);
		ok(r == 0 && v.attachments[0].type == MF_FT_TAR &&
		       v.attachments[0].action == MF_ACT_ACCEPT,
		   "a tar is recognised by its content (%s)",
		   v.nattachments ? mf_filetype_name(v.attachments[0].type) : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	{ /* a lone gzip-compressed program */
		struct aentry e[] = {{"data", elf, sizeof(elf)}};

		arc = make_archive(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, e, 1);
		r = scan_one(pol, "report.gz", &arc, &v);
		ok(r == 0 && v.attachments[0].action == MF_ACT_STRIP &&
		       reason_has(&v, "elf-executable", NULL),
		   "a gzip-compressed program is found (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	{ /* a 7z holding a tar holding a script */
		struct aentry e1[] = {{"run.sh.txt", "#!/bin/sh\nrm -rf ~\n", 19}};
		struct aentry e2[2];

		inner = make_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, e1, 1);
		e2[0] = (struct aentry){"readme.txt", text, sizeof(text)};
		e2[1] = (struct aentry){"more.tar", inner.s, inner.len};
		arc = make_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, e2, 2);
		r = scan_one(pol, "bundle.7z", &arc, &v);
		ok(r == 0 && v.attachments[0].action == MF_ACT_STRIP &&
		       reason_has(&v, "run.sh.txt", "shell-script"),
		   "a script inside a tar inside a 7z is found (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(inner.s);
	}
	{ /* an ISO image renamed .pdf, and a program inside an ISO */
		struct mf_policy *ip = policy("blocked_types = windows-executable\n");
		struct aentry e[] = {{"SETUP.TXT", exe, sizeof(exe)}};

		arc = make_archive(ARCHIVE_FORMAT_ISO9660, ARCHIVE_FILTER_NONE, e, 1);
		r = scan_one(pol, "scan.pdf", &arc, &v);
		ok(r == 0 && v.attachments[0].type == MF_FT_ISO &&
		       v.attachments[0].action == MF_ACT_STRIP && reason_has(&v, "iso-image", NULL),
		   "an ISO image renamed .pdf is refused by content (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		r = scan_one(ip, "scan.pdf", &arc, &v);
		ok(r == 0 && v.attachments[0].action == MF_ACT_STRIP &&
		       reason_has(&v, "windows-executable", NULL),
		   "with ISO images allowed, a program inside one is still found (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		mf_policy_unref(&ip);
	}
	{ /* a bomb: 3 MB of zeros packed into a few KB, over the ratio */
		struct mf_policy *bp = policy("max_archive_ratio = 100\n");
		size_t n = 3 * 1024 * 1024;
		char *zeros = calloc(1, n);
		struct aentry e[] = {{"zeros.txt", zeros, n}};

		arc = make_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, e, 1);
		r = scan_one(bp, "logs.tar.gz", &arc, &v);
		ok(r == 0 && v.attachments[0].action == MF_ACT_HOLD &&
		       reason_has(&v, "archive bomb", NULL),
		   "a tar.gz bomb is uninspectable: held (%zu bytes packed: %s)", arc.len,
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(zeros);
		mf_policy_unref(&bp);
	}
	{ /* damaged: cannot be checked */
		struct aentry e[] = {{"a.txt", text, sizeof(text)}, {"b.bin", exe, sizeof(exe)}};

		arc = make_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, e, 2);
		arc.len /= 2;
		r = scan_one(pol, "cut.7z", &arc, &v);
		ok(r == 0 && v.attachments[0].action == MF_ACT_HOLD &&
		       reason_has(&v, "cannot be inspected", "damaged"),
		   "a damaged 7z cannot be inspected and is held (%s)",
		   v.nattachments ? v.attachments[0].reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	mf_policy_unref(&pol);
}

static bool rule_hit(const struct mf_verdict *v, const char *name)
{
	unsigned i;

	for (i = 0; i < v->nrules; i++)
		if (strcmp(v->rules[i].name, name) == 0)
			return true;
	return false;
}

static void test_rules_and_spam(void)
{
	struct mf_policy *pol =
	    policy("min_training = 10\nhold_threshold = 9\nreject_threshold = 14\n");
	struct mf_model *model = trained_model(pol);
	struct mf_verdict v;
	struct buf m = {0};
	char *status;
	int r;

	puts_(&m, "Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=x@bad.example;"
	          " dkim=none; dmarc=fail header.from=bank.example\r\n"
	          "Authentication-Results: evil.example; dkim=fail\r\n"
	          "From: x@bad.example\r\nTo: bob@example.test\r\nSubject: committee agenda\r\n\r\n"
	          "draft minutes\r\n");
	r = scan(pol, model, &m, &v);
	ok(r == 0 && rule_hit(&v, "SPF_FAIL") && rule_hit(&v, "DMARC_FAIL") &&
	       !rule_hit(&v, "DKIM_FAIL"),
	   "failures in the topmost Authentication-Results count, lower ones do not");
	ok(rule_hit(&v, "MISSING_DATE") && rule_hit(&v, "MISSING_MESSAGE_ID"),
	   "missing Date and Message-ID are rules");
	status = mf_verdict_spam_status(pol, &v);
	ok(strstr(status, "tests=BAYES_00,") && strstr(status, "SPF_FAIL") &&
	       strstr(status, "required=5.0"),
	   "X-Spam-Status lists the Bayes band and the rules: %s", status);
	g_free(status);
	mf_verdict_free(&v);
	free(m.s);

	memset(&m, 0, sizeof(m));
	puts_(&m, "From: x@spam.example\r\nTo: bob@example.test\r\nSubject: jackpot winner\r\n"
	          "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s@spam.example>\r\n\r\n"
	          "casino bonus lottery viagra\r\n");
	r = scan(pol, model, &m, &v);
	ok(r == 0 && v.is_spam && v.score >= 9 && v.action == MF_ACT_HOLD,
	   "trained spam is flagged and held (score %.1f)", v.score);
	status = mf_verdict_spam_status(pol, &v);
	ok(strncmp(status, "Yes, score=", 11) == 0 && strstr(status, "BAYES_99"),
	   "X-Spam-Status starts 'Yes, score=' like SpamAssassin's: %s", status);
	g_free(status);
	mf_verdict_free(&v);
	free(m.s);

	memset(&m, 0, sizeof(m));
	puts_(&m, "From: x@spam.example\r\nTo: bob@example.test\r\nSubject: jackpot winner\r\n"
	          "Authentication-Results: mx.example.test; spf=fail; dmarc=fail\r\n\r\n"
	          "casino bonus lottery viagra\r\n");
	r = scan(pol, model, &m, &v);
	ok(r == 0 && v.action == MF_ACT_REJECT && strcmp(v.reply_code, "550") == 0 &&
	       strcmp(v.reply_xcode, "5.7.1") == 0,
	   "spam over reject_threshold is rejected with 550 5.7.1 (score %.1f)", v.score);
	mf_verdict_free(&v);
	free(m.s);
	mf_model_unref(&model);
	mf_policy_unref(&pol);
}

/* The same message with one line GMime skips ("not a header") after its
   first header field: read by GMime as a whole message, not split by the
   scanner. */
static char *with_odd_line(const char *msg)
{
	const char *blank = strstr(msg, "\n\r\n"), *lf = strstr(msg, "\n\n");
	size_t at;

	/* as the header's last line, where no Content-* field follows it (a
	   Content-* field after it is ambiguous: mime-shape.c) */
	if (blank == NULL || (lf != NULL && lf < blank))
		blank = lf;
	at = blank != NULL ? (size_t)(blank - msg) + 1 : strlen(msg);
	char *out = malloc(strlen(msg) + 64);

	memcpy(out, msg, at);
	strcpy(out + at, "this line is not a header\r\n");
	strcat(out, msg + at);
	return out;
}

static bool same_tokens(struct mf_tokens *a, struct mf_tokens *b)
{
	size_t i;

	for (i = 0; i < mf_tokens_count(a) || i < mf_tokens_count(b); i++) {
		if (i >= mf_tokens_count(a) || i >= mf_tokens_count(b)) {
			diag("token %zu: %s / %s", i,
			     i < mf_tokens_count(a) ? mf_tokens_get(a, i, NULL) : "(none)",
			     i < mf_tokens_count(b) ? mf_tokens_get(b, i, NULL) : "(none)");
			return false;
		}
		if (strcmp(mf_tokens_get(a, i, NULL), mf_tokens_get(b, i, NULL)) != 0) {
			diag("token %zu: %s / %s", i, mf_tokens_get(a, i, NULL),
			     mf_tokens_get(b, i, NULL));
			return false;
		}
	}
	return true;
}

static bool same_rules(const struct mf_verdict *a, const struct mf_verdict *b)
{
	unsigned i;

	if (a->nrules != b->nrules)
		return false;
	for (i = 0; i < a->nrules; i++) {
		if (strcmp(a->rules[i].name, b->rules[i].name) != 0 ||
		    strcmp(a->rules[i].detail, b->rules[i].detail) != 0)
			return false;
	}
	return true;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The scanner splits a plain top-level header itself and gives GMime only
   the body; anything else goes to GMime whole.  Both must see the same. */
static void test_top_header(void)
{
	static const char *const msgs[] = {
	    /* folded fields, encoded words, 8-bit text, CRLF */
	    "Received: from mx.example.org (mx.example.org [192.0.2.7])\r\n"
	    "\tby mail.example.test with ESMTP id 4AB;\r\n\tThu, 26 Nov 2026 10:00:00 +0000\r\n"
	    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.org>\r\n"
	    "To: bob@example.test\r\n"
	    "Subject: =?utf-8?B?7JWI64WV7ZWY7IS47JqU?= quarterly\r\n  budget "
	    "=?utf-8?q?caf=C3=A9?=\r\n"
	    "X-Note: caf\xe9 cr\xe8me, in Latin-1\r\n"
	    "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
	    "Message-ID: <a1@example.org>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain words here\r\n"
	    "--b1\r\nContent-Type: text/html\r\n\r\n<p>html <a "
	    "href=\"http://x.example/p\">words</a>\r\n"
	    "--b1--\r\n",
	    /* LF only; repeated Date, Message-ID and Subject; authentication results */
	    "Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=a@b.example\n"
	    "Authentication-Results: other.example; dkim=fail\n"
	    "Date: Mon, 01 Jan 2035 00:00:00 +0000\n"
	    "Date: Tue, 02 Jan 2001 00:00:00 +0000\n"
	    "Message-ID: <first@example.org>\nMessage-Id: <second@example.org>\n"
	    "Subject: one\nSubject: two\nContent-type: text/html\n\n<b>only html</b>\n",
	    /* a date in the future, no Message-ID, no blank line and no body */
	    "From: a@example.org\r\nDate: Mon, 01 Jan 2035 00:00:00 +0000\r\nSubject: s\r\n"
	    "X-Empty:\r\nX-Spaces:    \r\n",
	};
	struct mf_policy *pol = policy("");
	size_t i;

	for (i = 0; i < MF_N_ELEMENTS(msgs); i++) {
		char *odd = with_odd_line(msgs[i]);
		struct mf_verdict v1, v2;
		struct mf_tokens *t1 = mf_tokens_new(MF_MAX_TOKENS),
		                 *t2 = mf_tokens_new(MF_MAX_TOKENS);
		GMimeStream *s1 = g_mime_stream_mem_new_with_buffer(msgs[i], strlen(msgs[i]));
		GMimeStream *s2 = g_mime_stream_mem_new_with_buffer(odd, strlen(odd));
		struct mf_error err;
		int r1, r2;

		mf_verdict_init(&v1);
		mf_verdict_init(&v2);
		r1 = mf_mime_walk(pol, s1, t1, &v1, &err);
		r2 = mf_mime_walk(pol, s2, t2, &v2, &err);
		mf_rules_run(pol, &v1);
		mf_rules_run(pol, &v2);
		ok(r1 == 0 && r2 == 0 && v1.message == NULL && v2.message != NULL,
		   "message %zu: split by the scanner; with an odd line, read by GMime", i + 1);
		ok(mf_tokens_count(t1) > 5 && same_tokens(t1, t2),
		   "message %zu: the same %zu tokens either way", i + 1, mf_tokens_count(t1));
		ok(same_rules(&v1, &v2) && same_str(v1.message_id, v2.message_id) &&
		       same_str(v1.subject, v2.subject) && v1.parts == v2.parts,
		   "message %zu: the same rules, Message-ID (%s) and Subject (%s)", i + 1,
		   v1.message_id ? v1.message_id : "none", v1.subject ? v1.subject : "none");
		if (i == 0) {
			ok(has_token(t1, "subj:quarterly") && has_token(t1, "subj:café") &&
			       has_token(t1, "from:jörg") && has_token(t1, "h:crème") &&
			       has_token(t1, "rcvd:4ab") && has_token(t1, "url:x.example") &&
			       !has_token(t1, "hn:content-type") &&
			       has_token(t1, "hn:mime-version"),
			   "encoded words and Latin-1 are decoded; Content-* fields are the "
			   "body's");
		} else if (i == 1) {
			ok(!rule_hit(&v1, "DATE_IN_FUTURE") && rule_hit(&v1, "HTML_ONLY") &&
			       rule_hit(&v1, "SPF_FAIL") && !rule_hit(&v1, "DKIM_FAIL") &&
			       same_str(v1.message_id, "second@example.org") &&
			       same_str(v1.subject, "two"),
			   "the last Date, Message-ID and Subject count, the first "
			   "Authentication-Results");
		} else {
			ok(rule_hit(&v1, "DATE_IN_FUTURE") && rule_hit(&v1, "MISSING_MESSAGE_ID") &&
			       !rule_hit(&v1, "MISSING_FROM"),
			   "a header without a body: a future date and a missing Message-ID are "
			   "seen");
		}
		mf_tokens_free(&t1);
		mf_tokens_free(&t2);
		mf_verdict_free(&v1);
		mf_verdict_free(&v2);
		g_object_unref(s1);
		g_object_unref(s2);
		free(odd);
	}

	/* the whole body is the attachment: stripped and replaced either way */
	for (i = 0; i < 2; i++) {
		static const char *prog =
		    "From: a@example.org\r\nSubject: invoice\r\n"
		    "Content-Type: application/pdf; name=\"invoice.pdf\"\r\n"
		    "Content-Disposition: attachment;\r\n filename=\"invoice.pdf\"\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n";
		struct buf m = {0};
		struct mf_verdict v;
		char *enc = b64(exe, sizeof(exe));
		GMimeStream *out = g_mime_stream_mem_new();
		GByteArray *arr;
		struct mf_error err;

		puts_(&m, prog);
		if (i == 1) {
			char *odd = with_odd_line(m.s);

			free(m.s);
			memset(&m, 0, sizeof(m));
			puts_(&m, odd);
			free(odd);
		}
		puts_(&m, enc);
		puts_(&m, "\r\n");
		ok(scan(pol, NULL, &m, &v) == 0 && v.nattachments == 1 &&
		       v.attachments[0].action == MF_ACT_STRIP &&
		       same_str(v.attachments[0].filename, "invoice.pdf") &&
		       (v.message == NULL) == (i == 0),
		   "%s: a program that is the whole body is found and stripped",
		   i == 0 ? "split header" : "GMime header");
		ok(mf_scan_write_body(&v, out, &err) == 0 && v.top_replaced,
		   "the body is rewritten");
		arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
		g_byte_array_append(arr, (const guint8 *)"", 1);
		ok(strstr((const char *)arr->data, "This attachment was removed") &&
		       strstr((const char *)arr->data, "invoice.pdf") &&
		       !strstr((const char *)arr->data, "TVqQ"),
		   "the new body names the file and holds no trace of the program");
		g_object_unref(out);
		mf_verdict_free(&v);
		g_free(enc);
		free(m.s);
	}

	/* a header GMime cannot read at all: still a clear verdict */
	{
		struct buf m = {0};
		struct mf_verdict v;
		int r;

		puts_(&m, "this is not a message\r\nSubject: s\r\n\r\nbody\r\n");
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.limit_exceeded && v.reason != NULL &&
		       strstr(v.reason, "cannot be parsed"),
		   "a message whose first line is not a header field is refused as unreadable: %s",
		   v.reason ? v.reason : "");
		mf_verdict_free(&v);
		free(m.s);
	}
	mf_policy_unref(&pol);
}

static int scan_dir(const struct mf_policy *pol, const char *name, const struct buf *data,
                    bool submission, struct mf_verdict *v)
{
	struct att a[] = {{name, "application/octet-stream", data->s, data->len}};
	struct buf m = message(std_headers, "Files attached.", a, 1);
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(m.s, m.len);
	struct mf_error err;
	int r;

	mf_verdict_init(v);
	v->submission = submission;
	r = mf_scan(pol, NULL, s, v, &err);
	g_object_unref(s);
	free(m.s);
	return r;
}

/* Archives found by content wherever they sit, every compression method,
   compressed single files, and what cannot be inspected. */
static void test_uninspectable(void)
{
	struct mf_policy *pol = policy("");
	static const char text[] = "minutes of the meeting\n";
	struct mf_verdict v;
	struct buf arc;
	int r;

	{ /* a ZIP behind 4 KB of other bytes */
		struct aentry e[] = {{"a.txt", text, sizeof(text)},
		                     {"invoice.exe", exe, sizeof(exe)}};
		struct buf z = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, e, 2);
		struct buf j = {0};
		char junk[4096];

		memset(junk, 'x', sizeof(junk));
		put(&j, junk, sizeof(junk));
		put(&j, z.s, z.len);
		r = scan_dir(pol, "scan.pdf", &j, false, &v);
		ok(r == 0 && v.attachments[0].executable && v.attachments[0].inner &&
		       strcmp(v.attachments[0].inner, "invoice.exe") == 0,
		   "a ZIP behind leading bytes is opened by its central directory (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(z.s);
		free(j.s);
	}
	{ /* a 7z appended to a picture */
		static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
		struct aentry e[] = {{"run.txt", exe, sizeof(exe)}};
		struct buf z = make_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, e, 1);
		struct buf j = {0};

		put(&j, gif, sizeof(gif));
		put(&j, z.s, z.len);
		r = scan_dir(pol, "photo.gif", &j, false, &v);
		ok(r == 0 && v.attachments[0].executable,
		   "a 7z appended to a picture is found (%s)", v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(z.s);
		free(j.s);
	}
	{ /* a compressed script or an archive behind 4 KB of random bytes, as
	     7z finds them when it searches a file */
		static const struct {
			int format, filter;
			const char *label;
		} kinds[] = {
		    {ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, "gzip"},
		    {ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_ZSTD, "zstd"},
		    {ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_BZIP2, "bzip2"},
		    {ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_XZ, "xz"},
		    {ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, "tar"},
		    {ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FILTER_NONE, "cpio"},
		    {ARCHIVE_FORMAT_XAR, ARCHIVE_FILTER_NONE, "xar"},
		    {ARCHIVE_FORMAT_ISO9660, ARCHIVE_FILTER_NONE, "ISO 9660"},
		};
		struct aentry e[] = {{"install.sh", "#!/bin/sh\necho pwned\n", 21}};
		unsigned seed = 156;
		size_t i, k;

		for (i = 0; i < MF_N_ELEMENTS(kinds); i++) {
			struct buf j = {0};
			unsigned char junk[4096];

			for (k = 0; k < sizeof(junk); k++)
				junk[k] = (unsigned char)(rand_r(&seed) >> 7);
			/* a gzip and a ZIP signature that are not followed by one */
			memcpy(junk + 100, "\x1f\x8b\x08\x00", 4);
			memcpy(junk + 900, "PK\x03\x04", 4);
			arc = make_archive(kinds[i].format, kinds[i].filter, e, 1);
			put(&j, junk, sizeof(junk));
			put(&j, arc.s, arc.len);
			r = scan_dir(pol, "data.bin", &j, false, &v);
			ok(r == 0 && v.attachments[0].executable && v.action != MF_ACT_HOLD,
			   "%s behind random bytes is found and judged by its content (%s)",
			   kinds[i].label, v.reason ? v.reason : "none");
			mf_verdict_free(&v);
			free(arc.s);
			free(j.s);
		}
	}
	{ /* a file name outside ASCII inside a 7z (UTF-16 in the archive) */
		struct aentry e[] = {
		    {"\xeb\xb3\xb4\xea\xb3\xa0\xec\x84\x9c_run.vbs", "x = 1\n", 6}};

		arc = make_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, e, 1);
		r = scan_dir(pol, "report.7z", &arc, false, &v);
		ok(r == 0 && v.attachments[0].inner && strstr(v.attachments[0].inner, "_run.vbs") &&
		       v.attachments[0].action == MF_ACT_STRIP,
		   "a Korean-named .vbs in a 7z is judged by its name (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	{ /* a gzip inside a gzip: the inner header's name counts */
		struct aentry e[] = {{"update.js", "WScript.Echo(1);\n", 17}};
		struct buf in = make_archive(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, e, 1);
		struct aentry e2[] = {{"x", in.s, in.len}};

		/* libarchive's raw writer keeps no name: put FNAME in by hand */
		{
			struct buf named = {0};
			unsigned char hdr[10];

			memcpy(hdr, in.s, 10);
			hdr[3] |= 0x08;
			put(&named, hdr, 10);
			put(&named, "update.js", 10);
			put(&named, in.s + 10, in.len - 10);
			free(in.s);
			in = named;
			e2[0].data = in.s;
			e2[0].len = in.len;
		}
		arc = make_archive(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, e2, 1);
		r = scan_dir(pol, "update.gz.gz", &arc, false, &v);
		ok(r == 0 && v.attachments[0].inner &&
		       strstr(v.attachments[0].inner, "update.js") &&
		       v.attachments[0].action == MF_ACT_STRIP,
		   "a gzip inside a gzip is opened layer by layer, the inner name counts (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(in.s);
	}
	{ /* a 7z inside a zstd stream behind other bytes: the stream is decoded
	     alone and the 7z opened from memory */
		struct aentry e[] = {{"INVOICE.PDF", exe, sizeof(exe)}};
		struct buf z7 = make_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, e, 1);
		struct aentry e2[] = {{"x", z7.s, z7.len}};
		struct buf j = {0};

		arc = make_archive(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_ZSTD, e2, 1);
		put(&j, "%PDF-1.4\n", 9);
		put(&j, arc.s, arc.len);
		r = scan_dir(pol, "INVOICE.7z.zst", &j, false, &v);
		ok(r == 0 && v.attachments[0].executable && v.action != MF_ACT_HOLD,
		   "a 7z in a zstd stream behind other bytes is opened and the program found (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(z7.s);
		free(j.s);
	}
	{ /* a WIM image behind a byte: 7z opens it, libarchive cannot */
		struct buf j = {0};

		put(&j, "U", 1);
		put(&j, "MSWIM\0\0\0\xd0\0\0\0", 12);
		put(&j, exe, sizeof(exe));
		r = scan_dir(pol, "photo.jpg", &j, false, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.hold_reason &&
		       strstr(v.hold_reason, "WIM"),
		   "a WIM image behind other bytes is uninspectable (%s)",
		   v.hold_reason ? v.hold_reason : "none");
		mf_verdict_free(&v);
		free(j.s);
	}
	{ /* a ZIP whose data is broken behind other bytes: 7z still writes the
	     file under its name */
		struct aentry e[] = {{"invoice.vbs",
		                      "x = 1\n"
		                      "x = 2\n"
		                      "x = 3\n",
		                      18}};
		struct buf z = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, e, 1);
		struct buf j = {0};
		size_t k;

		put(&j, "%PDF-1.4\n", 9);
		for (k = 0; k < z.len; k++) {
			put(&j, z.s + k, 1);
			if (z.s[k] == '\n')
				put(&j, "X", 1);
		}
		r = scan_dir(pol, "invoice.shar", &j, false, &v);
		ok(r == 0 && (v.action == MF_ACT_HOLD ||
		              (v.attachments[0].action == MF_ACT_STRIP && v.attachments[0].inner &&
		               strstr(v.attachments[0].inner, "invoice.vbs"))),
		   "a ZIP with a readable local header and broken data behind other bytes is "
		   "held or its program refused (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(z.s);
		free(j.s);
	}
	{ /* random bytes full of signatures that lead nowhere: not held */
		struct buf j = {0};
		unsigned seed = 7;
		size_t k;

		j.cap = 4 * 1024 * 1024;
		j.s = malloc(j.cap);
		for (k = 0; k < j.cap; k++)
			j.s[k] = (char)(rand_r(&seed) >> 7);
		for (k = 4096; k + 4096 < j.cap; k += 256 * 1024) {
			memcpy(j.s + k, "\x1f\x8b\x08\x00", 4);
			memcpy(j.s + k + 1000, "PK\x03\x04", 4);
			memcpy(j.s + k + 2000, "\x28\xb5\x2f\xfd", 4);
			memcpy(j.s + k + 3000, "BZh91AY&SY", 10);
		}
		j.len = j.cap;
		r = scan_dir(pol, "noise.bin", &j, false, &v);
		ok(r == 0 && v.action == MF_ACT_ACCEPT && !v.uninspectable &&
		       !v.attachments[0].executable,
		   "4 MB of noise with 15 false gzip, ZIP, zstd, bzip2 signatures each is not "
		   "held (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(j.s);
	}
	{ /* more false signatures than are tried: held, what 7z opens may be
	     behind them */
		struct aentry e[] = {{"install.sh", "#!/bin/sh\necho pwned\n", 21}};
		struct buf j = {0};
		size_t k;

		arc = make_archive(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, e, 1);
		put(&j, "%PDF-1.4\n", 9);
		for (k = 0; k < 100; k++)
			put(&j, "\x1f\x8b\x08\x00........................", 28);
		put(&j, arc.s, arc.len);
		r = scan_dir(pol, "decoys.pdf", &j, false, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.hold_reason &&
		       strstr(v.hold_reason, "inspection limit"),
		   "a script behind 100 false gzip headers is held as uninspectable (%s)",
		   v.hold_reason ? v.hold_reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(j.s);
	}
	{ /* more real streams behind other bytes than are inspected: held */
		struct aentry e[] = {{"note.txt", text, sizeof(text)}};
		struct buf j = {0};
		size_t k;

		arc = make_archive(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, e, 1);
		for (k = 0; k < 40; k++) {
			put(&j, "padding.", 8);
			put(&j, arc.s, arc.len);
		}
		r = scan_dir(pol, "many.bin", &j, false, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.hold_reason &&
		       strstr(v.hold_reason, "inspection limit"),
		   "a file with 40 gzip streams behind other bytes is held as uninspectable (%s)",
		   v.hold_reason ? v.hold_reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(j.s);
	}
	{ /* every 7z method: the ZIP inside is opened */
		static const char *const methods[] = {
		    "7zip:compression=bzip2", "7zip:compression=lzma1", "7zip:compression=lzma2",
		    "7zip:compression=ppmd", "7zip:compression=deflate"};
		struct aentry ie[] = {{"tool.js", "var a = 1;\n", 11}};
		struct buf inner = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, ie, 1);
		struct aentry e[] = {{"data.bin", inner.s, inner.len}};
		size_t i;

		for (i = 0; i < MF_N_ELEMENTS(methods); i++) {
			arc = make_archive_opts(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE,
			                        methods[i], e, 1);
			r = scan_dir(pol, "files.7z", &arc, false, &v);
			ok(r == 0 && v.attachments[0].executable && v.attachments[0].inner &&
			       strcmp(v.attachments[0].inner, "data.bin/tool.js") == 0,
			   "%s: the archive inside is decoded and opened (%s)", methods[i],
			   v.reason ? v.reason : "none");
			mf_verdict_free(&v);
			free(arc.s);
		}
		free(inner.s);
	}
	{ /* a single compressed script: the inner name counts */
		static const int filters[] = {ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_BZIP2,
		                              ARCHIVE_FILTER_XZ,   ARCHIVE_FILTER_ZSTD,
		                              ARCHIVE_FILTER_LZIP, ARCHIVE_FILTER_LZMA,
		                              ARCHIVE_FILTER_LZ4,  ARCHIVE_FILTER_COMPRESS};
		static const char *const names[] = {"x.js.gz", "x.js.bz2",  "x.js.xz",  "x.js.zst",
		                                    "x.js.lz", "x.js.lzma", "x.js.lz4", "x.js.Z"};
		struct aentry e[] = {{"data", "WScript.Echo(1);\n", 17}};
		size_t i;

		for (i = 0; i < MF_N_ELEMENTS(filters); i++) {
			arc = make_archive(ARCHIVE_FORMAT_RAW, filters[i], e, 1);
			r = scan_dir(pol, names[i], &arc, false, &v);
			ok(r == 0 && v.attachments[0].executable && v.attachments[0].inner &&
			       strcmp(v.attachments[0].inner, "x.js") == 0,
			   "%s: the name inside counts (%s)", names[i],
			   v.reason ? v.reason : "none");
			mf_verdict_free(&v);
			free(arc.s);
		}
	}
	{ /* an encrypted ZIP: held from outside, tagged from a sender who logged in */
		struct aentry e[] = {{"contract.docx", text, sizeof(text)}};

		arc = make_archive_opts(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE,
		                        "zip:encryption=zipcrypt", e, 1);
		r = scan_dir(pol, "contract.zip", &arc, false, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.attachments[0].encrypted &&
		       v.hold_reason && strstr(v.hold_reason, "cannot be inspected") &&
		       strstr(v.hold_reason, "encrypted"),
		   "an encrypted ZIP from outside is held as uninspectable (%s)",
		   v.hold_reason ? v.hold_reason : "none");
		mf_verdict_free(&v);
		r = scan_dir(pol, "contract.zip", &arc, true, &v);
		ok(r == 0 && v.action == MF_ACT_ACCEPT && v.uninspectable &&
		       strstr(v.uninspectable, "encrypted"),
		   "the same from an authenticated sender is accepted and tagged (%s)",
		   v.uninspectable ? v.uninspectable : "none");
		mf_verdict_free(&v);
		free(arc.s);
	}
	{ /* past max_archive_depth */
		struct mf_policy *dp = policy("max_archive_depth = 1\n");
		struct aentry e0[] = {{"note.txt", text, sizeof(text)}};
		struct buf l0 = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, e0, 1);
		struct aentry e1[] = {{"l0.zip", l0.s, l0.len}};
		struct buf l1 = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, e1, 1);
		struct aentry e2[] = {{"l1.zip", l1.s, l1.len}};

		arc = make_archive(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, e2, 1);
		r = scan_dir(dp, "deep.zip", &arc, false, &v);
		ok(r == 0 && v.action == MF_ACT_HOLD && v.reason && strstr(v.reason, "deep"),
		   "archives nested past max_archive_depth are uninspectable (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(arc.s);
		free(l1.s);
		free(l0.s);
		mf_policy_unref(&dp);
	}
	mf_policy_unref(&pol);
}

/* uuencode, yEnc and BinHex blocks in a text body are attachments. */
static void test_embedded(void)
{
	struct mf_policy *pol = policy("");
	struct mf_verdict v;
	struct buf m;
	int r;

	m = message(std_headers,
	            "Here is the invoice.\r\n\r\nbegin 644 invoice.exe\r\n"
	            "*35J0``,````$````\r\n`\r\nend\r\n\r\nRegards\r\n",
	            NULL, 0);
	r = scan(pol, NULL, &m, &v);
	ok(r == 0 && v.nattachments == 1 && v.attachments[0].filename &&
	       strcmp(v.attachments[0].filename, "invoice.exe") == 0 &&
	       v.attachments[0].executable && v.attachments[0].type == MF_FT_WINDOWS_EXE &&
	       v.body_changed,
	   "a uuencoded invoice.exe in the text is an attachment, judged by name and content "
	   "(%s)",
	   v.reason ? v.reason : "none");
	mf_verdict_free(&v);
	free(m.s);
	/* yEnc: 'M' 'Z' are 77+42, 90+42 */
	m = message(std_headers,
	            "=ybegin line=128 size=2 name=setup.bin\r\nw\x84\r\n=yend size=2\r\n", NULL, 0);
	r = scan(pol, NULL, &m, &v);
	ok(r == 0 && v.nattachments == 1 && v.attachments[0].type == MF_FT_WINDOWS_EXE &&
	       v.attachments[0].action == MF_ACT_STRIP,
	   "a yEnc block holding a program is found by content (%s)", v.reason ? v.reason : "none");
	mf_verdict_free(&v);
	free(m.s);
	m = message(std_headers, "begin 644 report.txt\r\n*35J0``,````$````\r\n", NULL, 0);
	r = scan(pol, NULL, &m, &v);
	ok(r == 0 && v.nattachments == 1 && v.attachments[0].uninspectable &&
	       v.action == MF_ACT_HOLD,
	   "a uuencoded block without its end is uninspectable (%s)", v.reason ? v.reason : "none");
	mf_verdict_free(&v);
	free(m.s);
	{ /* many lines that start like a block, then a yEnc block and a uuencoded one */
		struct buf t = {0};
		int k;

		for (k = 0; k < 20000; k++)
			puts_(&t, k % 2 ? "begin the meeting at ten\r\n" : "=y begin\r\n");
		puts_(&t, "=ybegin line=128 size=2 name=setup.bin\r\nw\x84\r\n=yend size=2\r\n");
		puts_(&t, "and then\r\nbegin 644 invoice.exe\r\n*35J0``,````$````\r\n`\r\nend\r\n");
		put(&t, "", 1);
		m = message(std_headers, t.s, NULL, 0);
		r = scan(pol, NULL, &m, &v);
		ok(r == 0 && v.nattachments == 2 && v.attachments[0].filename &&
		       strcmp(v.attachments[0].filename, "setup.bin") == 0 &&
		       v.attachments[1].filename &&
		       strcmp(v.attachments[1].filename, "invoice.exe") == 0,
		   "after 20,000 lines that start like a block, a yEnc and a uuencoded block are "
		   "both found (%s)",
		   v.reason ? v.reason : "none");
		mf_verdict_free(&v);
		free(m.s);
		free(t.s);
	}
	m = message(std_headers, "We begin 644 days from now.\r\nbegin\r\n", NULL, 0);
	r = scan(pol, NULL, &m, &v);
	ok(r == 0 && v.nattachments == 0 && v.action == MF_ACT_ACCEPT,
	   "plain text that only looks a little like uuencode is left alone");
	mf_verdict_free(&v);
	free(m.s);
	mf_policy_unref(&pol);
}

int main(void)
{
	g_mime_init();
	test_filetype();
	test_policy();
	test_msgbuf();
	test_tokens();
	test_tokens_exact();
	test_classifier();
	test_logistic();
	test_attachments();
	test_bombs();
	test_other_archives();
	test_uninspectable();
	test_embedded();
	test_rules_and_spam();
	test_top_header();
	g_mime_shutdown();
	return tap_done();
}
