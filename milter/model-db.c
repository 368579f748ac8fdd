/*
 * model-db.c - the classifier's model and examples in PostgreSQL.
 *
 * mf_model_load reads the fitted model (mailfort.spam_tokens: 8-byte token
 * id, two counters, a weight; mailfort.spam_totals: message totals and the
 * bias) in binary form, inside one read-only snapshot, into a new in-memory
 * model; the milter calls it from its refresh thread, never while a message
 * waits.  A NULL bias means counts only (trained before weights were kept).
 *
 * mf_model_train_db is one training run, in one transaction: the new
 * examples (mailfort.spam_examples, keyed token ids under the digest of
 * their set) are added or relabelled (or, to forget them, deleted), every
 * example is read back, a model is fitted to all of them (classify.c) and
 * replaces the stored one.  Before the fit, the run may drop kept
 * examples (struct mf_retention): those older than an age, and in each
 * class all but the newest N, so that the table and the time of a run stay
 * bounded however long a site trains; a relabelled or retrained example is
 * new again (trained_at is set on every store).  The examples table is
 * locked for the run, so two runs take turns and neither loses the other's
 * messages.  Rows travel by COPY; no value is ever pasted
 * into SQL.
 *
 * Errors come back as "database: ..." messages from mf-db or libpq.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mf-db.h"
#include "scan.h"

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static float be_float(const unsigned char *p)
{
	uint32_t u = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static struct mf_model *load_rows(PGresult *totals, PGresult *res, const struct mf_token_key *key,
                                  struct mf_error *err)
{
	int i, n = PQntuples(res);
	struct mf_model *m = mf_model_new(key, (size_t)n);

	if (m == NULL) {
		mf_error_set(err, "out of memory loading %d spam tokens", n);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		const unsigned char *tok = (const unsigned char *)PQgetvalue(res, i, 0);
		uint64_t id;

		if (PQgetlength(res, i, 0) < 8 || PQgetlength(res, i, 1) != 8 ||
		    PQgetlength(res, i, 2) != 8)
			continue;
		id = be64(tok);
		if (mf_model_add(m, id, clamp32(be64((const unsigned char *)PQgetvalue(res, i, 1))),
		                 clamp32(be64((const unsigned char *)PQgetvalue(res, i, 2)))) < 0 ||
		    (PQgetlength(res, i, 3) == 4 &&
		     mf_model_set_weight(
		         m, id, be_float((const unsigned char *)PQgetvalue(res, i, 3))) < 0)) {
			mf_model_unref(&m);
			mf_error_set(err, "out of memory loading %d spam tokens", n);
			return NULL;
		}
	}
	if (PQntuples(totals) > 0) {
		mf_model_set_messages(m, strtoull(PQgetvalue(totals, 0, 0), NULL, 10),
		                      strtoull(PQgetvalue(totals, 0, 1), NULL, 10));
		if (!PQgetisnull(totals, 0, 2))
			mf_model_set_bias(m, strtod(PQgetvalue(totals, 0, 2), NULL));
	}
	return m;
}

struct mf_model *mf_model_load(struct mf_db *db, const struct mf_token_key *key,
                               struct mf_error *err)
{
	PGresult *totals = NULL, *res = NULL;
	struct mf_model *m = NULL;

	/* One snapshot: the totals and bias belong to the same fit as the rows. */
	if (mf_db_begin(db, err) < 0)
		return NULL;
	if (mf_db_command(db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL,
	                  err) < 0)
		goto out;
	totals = mf_db_exec(
	    db, "SELECT spam_messages, ham_messages, bias FROM mailfort.spam_totals", 0, NULL, err);
	if (totals == NULL)
		goto out;
	res = mf_db_exec_bin(
	    db, "SELECT token, spam_count, ham_count, weight FROM mailfort.spam_tokens", 0, NULL,
	    NULL, NULL, 1, err);
	if (res == NULL)
		goto out;
	m = load_rows(totals, res, key, err);
	if (m != NULL && mf_db_commit(db, err) < 0)
		mf_model_unref(&m);
out:
	if (m == NULL)
		mf_db_rollback(db);
	PQclear(totals);
	PQclear(res);
	return m;
}

/* Buffered COPY ... FROM STDIN: put() a line at a time, end() once. */
struct copy {
	PGconn *conn;
	char *buf;
	size_t used, cap;
	bool failed;
};

static int copy_begin(struct mf_db *db, struct copy *c, const char *sql, struct mf_error *err)
{
	PGresult *res;

	memset(c, 0, sizeof(*c));
	c->conn = mf_db_conn(db);
	if (c->conn == NULL)
		return mf_error_set(err, "database: connection lost");
	c->cap = 1 << 20;
	c->buf = malloc(c->cap);
	if (c->buf == NULL)
		return mf_error_set(err, "out of memory");
	/* A fixed statement without values: COPY needs the raw connection. */
	res = PQexec(c->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		mf_error_set(err, "database: COPY failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		free(c->buf);
		c->buf = NULL;
		return -1;
	}
	PQclear(res);
	return 0;
}

static void copy_flush(struct copy *c)
{
	if (c->used > 0 && !c->failed && PQputCopyData(c->conn, c->buf, (int)c->used) != 1)
		c->failed = true;
	c->used = 0;
}

static void copy_put(struct copy *c, const char *data, size_t len)
{
	while (len > 0 && !c->failed) {
		size_t n = c->cap - c->used < len ? c->cap - c->used : len;

		memcpy(c->buf + c->used, data, n);
		c->used += n;
		data += n;
		len -= n;
		if (c->used == c->cap)
			copy_flush(c);
	}
}

static int copy_end(struct copy *c, struct mf_error *err)
{
	PGresult *res;
	int ret = 0;

	copy_flush(c);
	free(c->buf);
	c->buf = NULL;
	if (PQputCopyEnd(c->conn, c->failed ? "aborted" : NULL) != 1) {
		mf_error_set(err, "database: COPY failed: %s", PQerrorMessage(c->conn));
		ret = -1;
	}
	while ((res = PQgetResult(c->conn)) != NULL) {
		if (ret == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
			mf_error_set(err, "database: COPY failed: %s", PQresultErrorMessage(res));
			ret = -1;
		}
		PQclear(res);
	}
	return ret;
}

static void put_hex_digits(struct copy *c, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char out[512];
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		out[o++] = hex[p[i] >> 4];
		out[o++] = hex[p[i] & 15];
		if (o == sizeof(out)) {
			copy_put(c, out, o);
			o = 0;
		}
	}
	copy_put(c, out, o);
}

/* A bytea in COPY's text format: \\x and hex digits. */
static void put_hex(struct copy *c, const unsigned char *p, size_t n)
{
	copy_put(c, "\\\\x", 3);
	put_hex_digits(c, p, n);
}

/* Add ts to the kept examples or, with forgotten_r, delete them (and count). */
static int store_examples(struct mf_db *db, const struct mf_trainset *ts, uint64_t *forgotten_r,
                          struct mf_error *err)
{
	struct copy c;
	size_t i, j, n;
	bool spam;

	if (mf_db_command(db,
	                  "CREATE TEMPORARY TABLE mf_spam_new (seq bigint, digest bytea,"
	                  " is_spam boolean, tokens bytea) ON COMMIT DROP",
	                  0, NULL, err) < 0 ||
	    copy_begin(db, &c, "COPY mf_spam_new FROM STDIN", err) < 0)
		return -1;
	for (i = 0; i < mf_trainset_count(ts); i++) {
		const uint64_t *ids = mf_trainset_get(ts, i, &n, &spam);
		unsigned char digest[32], be[8];
		char head[32];
		int k;

		mf_trainset_digest(ids, n, digest);
		snprintf(head, sizeof(head), "%zu\t", i);
		copy_put(&c, head, strlen(head));
		put_hex(&c, digest, sizeof(digest));
		copy_put(&c, spam ? "\tt\t\\\\x" : "\tf\t\\\\x", 6);
		for (j = 0; j < n; j++) {
			for (k = 0; k < 8; k++)
				be[k] = (unsigned char)(ids[j] >> (56 - 8 * k));
			put_hex_digits(&c, be, sizeof(be));
		}
		copy_put(&c, "\n", 1);
	}
	if (copy_end(&c, err) < 0)
		return -1;
	if (forgotten_r != NULL) {
		PGresult *res = mf_db_exec(db,
		                           "DELETE FROM mailfort.spam_examples"
		                           " WHERE digest IN (SELECT digest FROM mf_spam_new)",
		                           0, NULL, err);

		if (res == NULL)
			return -1;
		*forgotten_r = strtoull(PQcmdTuples(res), NULL, 10);
		PQclear(res);
		return 0;
	}
	/* The same message twice in one run: its last label counts. */
	return mf_db_command(db,
	                     "INSERT INTO mailfort.spam_examples AS e (digest, is_spam, tokens)"
	                     " SELECT DISTINCT ON (digest) digest, is_spam, tokens FROM mf_spam_new"
	                     " ORDER BY digest, seq DESC"
	                     " ON CONFLICT (digest) DO UPDATE SET is_spam = EXCLUDED.is_spam,"
	                     " trained_at = now()",
	                     0, NULL, err);
}

static struct mf_trainset *load_examples(struct mf_db *db, struct mf_error *err)
{
	struct mf_trainset *ts = mf_trainset_new();
	PGresult *res;
	uint64_t *ids = NULL;
	size_t cap = 0;
	int i, n;

	if (ts == NULL) {
		mf_error_set(err, "out of memory");
		return NULL;
	}
	/* In digest order, so that the fit sees the examples in the same order
	   whatever order they were trained in. */
	res =
	    mf_db_exec_bin(db, "SELECT is_spam, tokens FROM mailfort.spam_examples ORDER BY digest",
	                   0, NULL, NULL, NULL, 1, err);
	if (res == NULL)
		goto fail;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		const unsigned char *p = (const unsigned char *)PQgetvalue(res, i, 1);
		size_t k, len = (size_t)PQgetlength(res, i, 1) / 8;

		if (len > cap) {
			uint64_t *nids = realloc(ids, len * sizeof(*ids));

			if (nids == NULL) {
				mf_error_set(err, "out of memory loading %d training examples", n);
				goto fail;
			}
			ids = nids;
			cap = len;
		}
		for (k = 0; k < len; k++)
			ids[k] = be64(p + 8 * k);
		if (mf_trainset_add(ts, ids, len, PQgetvalue(res, i, 0)[0] != 0, err) < 0)
			goto fail;
	}
	PQclear(res);
	free(ids);
	return ts;
fail:
	PQclear(res);
	free(ids);
	mf_trainset_free(&ts);
	return NULL;
}

/* Run a DELETE ... RETURNING is_spam wrapped as WITH d AS (...): add the
   counts of spam and ham it deleted to keep. */
static int prune_count(struct mf_db *db, const char *sql, int nparams, const char *const *params,
                       struct mf_retention *keep, struct mf_error *err)
{
	PGresult *res = mf_db_exec(db, sql, nparams, params, err);

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		keep->pruned_spam += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		keep->pruned_ham += strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	return 0;
}

/* Drop the examples older than keep->max_age, then, in each class, all but
   the keep->keep newest (trained_at, then digest: equal times keep the
   greater digests).  The index on (is_spam, trained_at, digest) finds the
   boundary without sorting the table. */
static int prune_examples(struct mf_db *db, struct mf_retention *keep, struct mf_error *err)
{
	char s_num[24];
	const char *params[2];
	int cls;

	keep->pruned_spam = keep->pruned_ham = 0;
	if (keep->max_age > 0) {
		snprintf(s_num, sizeof(s_num), "%lld", (long long)keep->max_age);
		params[0] = s_num;
		if (prune_count(db,
		                "WITH d AS (DELETE FROM mailfort.spam_examples"
		                " WHERE trained_at < now() - $1::bigint * interval '1 second'"
		                " RETURNING is_spam)"
		                " SELECT count(*) FILTER (WHERE is_spam),"
		                " count(*) FILTER (WHERE NOT is_spam) FROM d",
		                1, params, keep, err) < 0)
			return -1;
	}
	if (keep->keep < 0)
		return 0;
	snprintf(s_num, sizeof(s_num), "%lld", (long long)keep->keep);
	for (cls = 0; cls < 2; cls++) {
		const char *sql = keep->keep == 0
		                      ? "WITH d AS (DELETE FROM mailfort.spam_examples"
		                        " WHERE is_spam = $1 RETURNING is_spam)"
		                        " SELECT count(*) FILTER (WHERE is_spam),"
		                        " count(*) FILTER (WHERE NOT is_spam) FROM d"
		                      : "WITH b AS (SELECT trained_at, digest"
		                        " FROM mailfort.spam_examples WHERE is_spam = $1"
		                        " ORDER BY trained_at DESC, digest DESC"
		                        " OFFSET $2::bigint - 1 LIMIT 1),"
		                        " d AS (DELETE FROM mailfort.spam_examples e USING b"
		                        " WHERE e.is_spam = $1 AND (e.trained_at, e.digest)"
		                        " < (b.trained_at, b.digest) RETURNING e.is_spam)"
		                        " SELECT count(*) FILTER (WHERE is_spam),"
		                        " count(*) FILTER (WHERE NOT is_spam) FROM d";

		params[0] = cls ? "t" : "f";
		params[1] = s_num;
		if (prune_count(db, sql, keep->keep == 0 ? 1 : 2, params, keep, err) < 0)
			return -1;
	}
	return 0;
}

/* No example left: no model (the milter scores with its rules only). */
static int clear_model(struct mf_db *db, struct mf_error *err)
{
	if (mf_db_command(db, "DELETE FROM mailfort.spam_tokens", 0, NULL, err) < 0)
		return -1;
	return mf_db_command(db,
	                     "UPDATE mailfort.spam_totals SET spam_messages = 0, ham_messages = 0,"
	                     " bias = NULL, updated_at = now()",
	                     0, NULL, err);
}

static int store_model(struct mf_db *db, const struct mf_model *m, struct mf_error *err)
{
	char s_spam[24], s_ham[24], s_bias[40], line[96];
	const char *params[3] = {s_spam, s_ham, s_bias};
	struct mf_token_count tc;
	uint64_t nspam, nham;
	size_t iter = 0;
	struct copy c;
	double bias;

	if (mf_db_command(db, "DELETE FROM mailfort.spam_tokens", 0, NULL, err) < 0 ||
	    copy_begin(db, &c,
	               "COPY mailfort.spam_tokens (token, spam_count, ham_count, weight)"
	               " FROM STDIN",
	               err) < 0)
		return -1;
	while (mf_model_next(m, &iter, &tc)) {
		int n = snprintf(line, sizeof(line), "\\\\x%016llx\t%u\t%u\t%.9g\n",
		                 (unsigned long long)tc.hash, tc.spam, tc.ham, (double)tc.weight);

		copy_put(&c, line, (size_t)n);
	}
	if (copy_end(&c, err) < 0)
		return -1;
	mf_model_messages(m, &nspam, &nham);
	(void)mf_model_weighted(m, &bias);
	snprintf(s_spam, sizeof(s_spam), "%llu", (unsigned long long)nspam);
	snprintf(s_ham, sizeof(s_ham), "%llu", (unsigned long long)nham);
	snprintf(s_bias, sizeof(s_bias), "%.17g", bias);
	return mf_db_command(
	    db,
	    "UPDATE mailfort.spam_totals SET spam_messages = $1, ham_messages = $2,"
	    " bias = $3, updated_at = now()",
	    3, params, err);
}

struct mf_model *mf_model_train_db(struct mf_db *db, const struct mf_trainset *ts,
                                   uint64_t *forgotten_r, struct mf_retention *keep,
                                   const struct mf_token_key *key, struct mf_error *err)
{
	struct mf_trainset *all = NULL;
	struct mf_model *m = NULL;

	if (mf_db_begin(db, err) < 0)
		return NULL;
	/* Runs take turns; the milter's reads are not blocked. */
	if (mf_db_command(db, "LOCK TABLE mailfort.spam_examples IN SHARE ROW EXCLUSIVE MODE", 0,
	                  NULL, err) < 0 ||
	    (ts != NULL && mf_trainset_count(ts) > 0 &&
	     store_examples(db, ts, forgotten_r, err) < 0) ||
	    (keep != NULL && prune_examples(db, keep, err) < 0) ||
	    (all = load_examples(db, err)) == NULL)
		goto fail;
	if (mf_trainset_count(all) == 0) {
		/* everything forgotten: an empty model */
		if (clear_model(db, err) < 0)
			goto fail;
		if ((m = mf_model_new(key, 0)) == NULL) {
			mf_error_set(err, "out of memory");
			goto fail;
		}
	} else if ((m = mf_model_fit(all, key, err)) == NULL || store_model(db, m, err) < 0) {
		goto fail;
	}
	if (mf_db_commit(db, err) < 0)
		goto fail;
	if (keep != NULL)
		mf_model_messages(m, &keep->kept_spam, &keep->kept_ham);
	mf_trainset_free(&all);
	return m;
fail:
	mf_db_rollback(db);
	mf_model_unref(&m);
	mf_trainset_free(&all);
	return NULL;
}
