/*
 * classify.c - the token model and the Robinson/Fisher classifier.
 *
 * The model maps a token's 64-bit hash to how many spam and ham messages
 * contained it, plus the number of spam and ham messages trained.  It is
 * built once (model-db.c or a test), then shared read-only by every thread
 * through reference counting.
 *
 * Classification follows Gary Robinson's method as bogofilter and SpamBayes
 * use it: each token's spam probability p(w) = b/(b+g) with b and g the
 * token's frequency in spam and ham; it is shrunk towards robx by the
 * strength robs for tokens seen rarely, f(w) = (robs*robx + n*p) / (robs+n);
 * tokens with |f - 0.5| < min_dev are ignored; the max_tokens strongest
 * of the rest are combined with
 * Fisher's inverse chi-square test into a spamminess S and a hamminess H,
 * and the result is (1 + S - H) / 2.  The chi-square tail is computed in
 * log space so that a message with thousands of tokens neither underflows
 * nor loses its answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "mf-crypto.h"
#include "scan.h"

struct mf_model {
	int refcount; /* atomic */
	struct mf_token_key key;
	struct mf_token_count *slots;
	size_t cap, count;
	uint64_t nspam, nham;
};

static uint64_t key_of(uint64_t hash)
{
	return hash != 0 ? hash : 1; /* 0 marks an empty slot */
}

int mf_token_key_load(const char *keys_dir, struct mf_token_key *key, struct mf_error *err)
{
	unsigned char master[32];
	char path[4096];

	/* spam.key belongs to the milter's user alone: the milter never needs
	   hash.key, which guards app passwords and is the mail user's. */
	if ((size_t)snprintf(path, sizeof(path), "%s/spam.key", keys_dir) >= sizeof(path))
		return mf_error_set(err, "key directory name too long");
	if (mf_key_load(path, MF_KEY_SECRET, master, sizeof(master), err) < 0)
		return -1;
	/* The SipHash key is derived, so the file's key is used for nothing else. */
	crypto_kdf_derive_from_key(key->k, crypto_shorthash_KEYBYTES, 1, "mfspamtk", master);
	sodium_memzero(master, sizeof(master));
	return 0;
}

uint64_t mf_token_id(const struct mf_token_key *key, const char *tok, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t id = 0;
	int i;

	/* SipHash-2-4: a keyed 64-bit function made for short inputs, several
	   times faster than BLAKE2b here, and as opaque without the key. */
	crypto_shorthash(out, (const unsigned char *)tok, len, key->k);
	for (i = 0; i < 8; i++)
		id = (id << 8) | out[i];
	return key_of(id);
}

struct mf_model *mf_model_new(const struct mf_token_key *key, size_t hint)
{
	struct mf_model *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->refcount = 1;
	m->key = *key;
	m->cap = 1024;
	while (m->cap < hint * 2)
		m->cap *= 2;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (m->slots == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

struct mf_model *mf_model_ref(struct mf_model *m)
{
	if (m != NULL)
		__atomic_add_fetch(&m->refcount, 1, __ATOMIC_SEQ_CST);
	return m;
}

void mf_model_unref(struct mf_model **mp)
{
	struct mf_model *m = *mp;

	*mp = NULL;
	if (m != NULL && __atomic_sub_fetch(&m->refcount, 1, __ATOMIC_SEQ_CST) == 0) {
		sodium_memzero(&m->key, sizeof(m->key));
		free(m->slots);
		free(m);
	}
}

static bool model_grow(struct mf_model *m)
{
	size_t ncap = m->cap * 2, i, j;
	struct mf_token_count *n = calloc(ncap, sizeof(*n));

	if (n == NULL)
		return false;
	for (i = 0; i < m->cap; i++) {
		if (m->slots[i].hash == 0)
			continue;
		j = m->slots[i].hash & (ncap - 1);
		while (n[j].hash != 0)
			j = (j + 1) & (ncap - 1);
		n[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = n;
	m->cap = ncap;
	return true;
}

int mf_model_add(struct mf_model *m, uint64_t hash, uint32_t spam, uint32_t ham)
{
	uint64_t k = key_of(hash);
	size_t i;

	if ((m->count + 1) * 2 > m->cap && !model_grow(m))
		return -1;
	i = k & (m->cap - 1);
	while (m->slots[i].hash != 0 && m->slots[i].hash != k)
		i = (i + 1) & (m->cap - 1);
	if (m->slots[i].hash == 0) {
		m->slots[i].hash = k;
		m->count++;
	}
	m->slots[i].spam += spam;
	m->slots[i].ham += ham;
	return 0;
}

const struct mf_token_key *mf_model_key(const struct mf_model *m)
{
	return &m->key;
}

int mf_model_train(struct mf_model *m, const struct mf_tokens *t, bool spam)
{
	size_t i, n = mf_tokens_count(t);

	for (i = 0; i < n; i++) {
		const char *tok = mf_tokens_get(t, i, NULL);

		if (mf_model_add(m, mf_token_id(&m->key, tok, strlen(tok)), spam ? 1 : 0,
		                 spam ? 0 : 1) < 0)
			return -1;
	}
	if (spam)
		m->nspam++;
	else
		m->nham++;
	return 0;
}

bool mf_model_next(const struct mf_model *m, size_t *iter, struct mf_token_count *out)
{
	while (*iter < m->cap) {
		const struct mf_token_count *c = &m->slots[(*iter)++];

		if (c->hash != 0) {
			*out = *c;
			return true;
		}
	}
	return false;
}

void mf_model_set_messages(struct mf_model *m, uint64_t nspam, uint64_t nham)
{
	m->nspam = nspam;
	m->nham = nham;
}

void mf_model_messages(const struct mf_model *m, uint64_t *nspam, uint64_t *nham)
{
	*nspam = m->nspam;
	*nham = m->nham;
}

size_t mf_model_size(const struct mf_model *m)
{
	return m->count;
}

const struct mf_token_count *mf_model_get(const struct mf_model *m, uint64_t hash)
{
	uint64_t k = key_of(hash);
	size_t i = k & (m->cap - 1);

	while (m->slots[i].hash != 0) {
		if (m->slots[i].hash == k)
			return &m->slots[i];
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

void mf_bayes_defaults(struct mf_bayes_params *p)
{
	/* Robinson's strength s = 1 and min_dev 0.2, chosen by 5-fold
	   cross-validation inside the training split of bench/spam-accuracy
	   (--cv 5): area above the ROC curve 0.201 % with SpamBayes' values
	   (s 0.45, min_dev 0.1), 0.070 % with these; s from 0.7 to 1.4 gives
	   about the same, s 2 and more lets rare tokens mark ham as spam. */
	p->robs = 1.0;
	p->robx = 0.5;
	p->min_dev = 0.2;
	p->max_tokens = 150;
	p->min_training = 20;
}

/* P(chi2 >= x2) with v (even) degrees of freedom, in log space. */
static double chi2q(double x2, unsigned v)
{
	double m = x2 / 2.0, lm, maxl = -INFINITY, sum = 0.0;
	unsigned i, k = v / 2;
	double *terms;

	if (x2 <= 0.0)
		return 1.0;
	lm = log(m);
	terms = malloc(k * sizeof(*terms));
	if (terms == NULL)
		return 0.5;
	for (i = 0; i < k; i++) {
		terms[i] = -m + i * lm - lgamma((double)i + 1.0);
		if (terms[i] > maxl)
			maxl = terms[i];
	}
	for (i = 0; i < k; i++)
		sum += exp(terms[i] - maxl);
	free(terms);
	sum = exp(maxl + log(sum));
	return sum > 1.0 ? 1.0 : sum;
}

struct clue {
	double f;
	const char *tok;
};

static int clue_cmp(const void *a, const void *b)
{
	double da = fabs(((const struct clue *)a)->f - 0.5);
	double db = fabs(((const struct clue *)b)->f - 0.5);

	return da < db ? 1 : da > db ? -1 : 0;
}

void mf_classify(const struct mf_model *m, const struct mf_tokens *t,
                 const struct mf_bayes_params *p, struct mf_bayes *out)
{
	double sum_ln_f = 0.0, sum_ln_1f = 0.0, s, h;
	size_t i, n, nclues = 0;
	unsigned used;
	struct clue *clues;

	memset(out, 0, sizeof(*out));
	out->prob = 0.5;
	if (m == NULL || m->nspam < p->min_training || m->nham < p->min_training || m->nspam == 0 ||
	    m->nham == 0)
		return;
	out->trained = true;
	n = mf_tokens_count(t);
	clues = malloc((n ? n : 1) * sizeof(*clues));
	if (clues == NULL)
		return;
	for (i = 0; i < n; i++) {
		const char *tok = mf_tokens_get(t, i, NULL);
		const struct mf_token_count *c =
		    mf_model_get(m, mf_token_id(&m->key, tok, strlen(tok)));
		double b, g, pw, f, cnt;

		if (c == NULL)
			continue;
		b = (double)c->spam / (double)m->nspam;
		g = (double)c->ham / (double)m->nham;
		if (b > 1.0)
			b = 1.0;
		if (g > 1.0)
			g = 1.0;
		if (b + g <= 0.0)
			continue;
		pw = b / (b + g);
		cnt = (double)c->spam + (double)c->ham;
		f = (p->robs * p->robx + cnt * pw) / (p->robs + cnt);
		if (fabs(f - 0.5) < p->min_dev)
			continue;
		/* keep logs finite */
		if (f < 1e-6)
			f = 1e-6;
		if (f > 1.0 - 1e-6)
			f = 1.0 - 1e-6;
		clues[nclues].f = f;
		clues[nclues].tok = tok;
		nclues++;
	}
	/* strongest first; the order among equals follows the message */
	qsort(clues, nclues, sizeof(*clues), clue_cmp);
	if (p->max_tokens > 0 && nclues > p->max_tokens)
		nclues = p->max_tokens;
	for (i = 0; i < nclues; i++) {
		sum_ln_f += log(clues[i].f);
		sum_ln_1f += log(1.0 - clues[i].f);
		if (out->ntop < MF_BAYES_TOP) {
			snprintf(out->top[out->ntop].token, sizeof(out->top[out->ntop].token), "%s",
			         clues[i].tok);
			out->top[out->ntop].prob = clues[i].f;
			out->ntop++;
		}
	}
	free(clues);
	used = (unsigned)nclues;
	out->used = used;
	if (used == 0) {
		out->prob = p->robx;
		return;
	}
	s = 1.0 - chi2q(-2.0 * sum_ln_1f, 2 * used);
	h = 1.0 - chi2q(-2.0 * sum_ln_f, 2 * used);
	out->prob = (1.0 + s - h) / 2.0;
}
