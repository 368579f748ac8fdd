/*
 * fuzz-mime-shape.c - the milter's own MIME structure reader against
 * GMime's part tree, for the same bytes.
 *
 * Input: a message as Postfix would hand it over.  mime-shape.c reads its
 * structure from the bytes; the milter's walk (mf_mime_walk: the top-level
 * header split by the milter, the rest parsed by GMime) builds the tree the
 * policy is applied to.  Where the structure reader finds nothing ambiguous
 * the two must agree part by part: the same kind (multipart, embedded
 * message, leaf), nesting depth and content type, and for each leaf the
 * same file name (its ASCII characters, without case: 8-bit bytes in a
 * plain name are shown through a guessed charset).  Any disagreement the milter
 * did not flag as ambiguous aborts: it is a structure one reader reads one
 * way and another reader another way, which is exactly what the milter
 * must refuse rather than guess at.
 *
 * The comparison stops at the structure limits (depth, part count), which
 * the walk reports itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../milter/scan.h"
#include "mf-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mf_policy *pol;

struct tree {
	struct mf_mime_node n[512];
	size_t count;
	bool over;
};

static void setup(void)
{
	static const char conf[] = "[milter]\ntmp_dir = /tmp\nspam = no\nmax_mime_parts = 400\n"
	                           "max_mime_depth = 20\nscan_archives = no\n";
	struct mf_config *cfg;
	struct mf_error err;

	g_mime_init();
	cfg = mf_config_load_buffer("fuzz.conf", conf, sizeof(conf) - 1, &err);
	pol = cfg != NULL ? mf_policy_new(cfg, &err) : NULL;
	mf_config_free(&cfg);
	if (pol == NULL)
		abort();
}

static void add(struct tree *t, char kind, int depth, GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	struct mf_mime_node *n;
	char *mime;

	if (t->count == MF_N_ELEMENTS(t->n)) {
		t->over = true;
		return;
	}
	n = &t->n[t->count++];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->depth = depth;
	mime = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
	snprintf(n->type, sizeof(n->type), "%s", mime != NULL ? mime : "");
	g_free(mime);
	for (char *p = n->type; *p; p++)
		*p = g_ascii_tolower(*p);
	if (kind == 'l' && GMIME_IS_PART(obj)) {
		const char *f = g_mime_part_get_filename(GMIME_PART(obj));

		n->filename = f != NULL ? g_strdup(f) : NULL;
	}
}

/* GMime's tree in document order, as mime-shape.c numbers it. */
static void gmime_tree(struct tree *t, GMimeObject *obj, int depth)
{
	if (obj == NULL || t->over)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);

		add(t, 'm', depth, obj);
		for (i = 0; i < n; i++)
			gmime_tree(t, g_mime_multipart_get_part(mp, i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		add(t, 'r', depth, obj);
		if (inner != NULL)
			gmime_tree(t, g_mime_message_get_mime_part(inner), depth + 1);
	} else {
		add(t, 'l', depth, obj);
	}
}

/* The same ASCII letters, without case: 8-bit bytes in a plain name are
   shown through a guessed charset (GMime's fallback charsets, the client's
   own), which changes the bytes but not the ASCII around them, where the
   extensions are. */
static bool same_ascii(const char *a, const char *b)
{
	for (;;) {
		while (*a != '\0' && (unsigned char)*a >= 0x80)
			a++;
		while (*b != '\0' && (unsigned char)*b >= 0x80)
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if (g_ascii_tolower(*a) != g_ascii_tolower(*b))
			return false;
		a++;
		b++;
	}
}

static void report(const char *what, const struct mf_mime_shape *s, const struct tree *t)
{
	size_t i;

	fprintf(stderr, "disagreement not flagged as ambiguous: %s\nmime-shape.c:\n", what);
	for (i = 0; i < s->n; i++)
		fprintf(stderr, "  %d %c %s %s\n", s->nodes[i].depth, s->nodes[i].kind,
		        s->nodes[i].type, s->nodes[i].filename ? s->nodes[i].filename : "-");
	fprintf(stderr, "GMime:\n");
	for (i = 0; i < t->count; i++)
		fprintf(stderr, "  %d %c %s %s\n", t->n[i].depth, t->n[i].kind, t->n[i].type,
		        t->n[i].filename ? t->n[i].filename : "-");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_mime_shape s;
	struct mf_tokens *toks;
	struct mf_verdict v;
	struct mf_error err;
	GMimeStream *stream;
	struct tree *t;
	size_t i;

	if (pol == NULL)
		setup();
	if (mf_mime_shape_read(data, size, pol->max_mime_depth, true, &s) < 0)
		return 0;
	if (s.doubt != NULL || s.n >= 400) {
		mf_mime_shape_free(&s);
		return 0;
	}
	stream = g_mime_stream_mem_new_with_buffer((const char *)data, size);
	toks = mf_tokens_new(1000);
	t = calloc(1, sizeof(*t));
	mf_verdict_init(&v);
	if (t != NULL && toks != NULL && mf_mime_walk(pol, stream, toks, &v, &err) == 0 &&
	    !v.limit_exceeded && v.ambiguous == NULL && v.top != NULL) {
		gmime_tree(t, v.top, 1);
		if (!t->over) {
			if (t->count != s.n)
				report("a different number of parts", &s, t);
			for (i = 0; i < s.n; i++) {
				const struct mf_mime_node *a = &s.nodes[i], *b = &t->n[i];

				if (a->kind != b->kind || a->depth != b->depth)
					report("a part of another kind or depth", &s, t);
				if (strcmp(a->type, b->type) != 0)
					report("a part of another content type", &s, t);
				if (a->kind == 'l' &&
				    (a->filename == NULL) != (b->filename == NULL))
					report("a file name only one reader sees", &s, t);
				if (a->kind == 'l' && a->filename != NULL &&
				    !same_ascii(a->filename, b->filename))
					report("another file name", &s, t);
			}
		}
	}
	if (t != NULL) {
		for (i = 0; i < t->count; i++)
			g_free(t->n[i].filename);
		free(t);
	}
	mf_verdict_free(&v);
	mf_tokens_free(&toks);
	g_object_unref(stream);
	mf_mime_shape_free(&s);
	return 0;
}
