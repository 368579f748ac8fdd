/*
 * model-db.c - token statistics in PostgreSQL (mailfort.spam_tokens).
 *
 * mf_model_load reads every row in binary form (8-byte token id, two
 * counters) and the message totals into a new in-memory model; the milter
 * calls it from its refresh thread, never while a message waits.
 * mf_model_store adds a freshly trained model to the stored counts in one
 * transaction: the rows go through COPY into a temporary table and one
 * INSERT ... ON CONFLICT adds them up, so a training run of thousands of
 * messages is a handful of round trips.  No value is ever pasted into SQL.
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

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

struct mf_model *mf_model_load(struct mf_db *db, const struct mf_token_key *key,
                               struct mf_error *err)
{
	PGresult *res;
	struct mf_model *m;
	uint64_t nspam, nham;
	int i, n;

	res = mf_db_exec(db, "SELECT spam_messages, ham_messages FROM mailfort.spam_totals", 0,
	                 NULL, err);
	if (res == NULL)
		return NULL;
	nspam = PQntuples(res) > 0 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	nham = PQntuples(res) > 0 ? strtoull(PQgetvalue(res, 0, 1), NULL, 10) : 0;
	PQclear(res);

	res = mf_db_exec_bin(db, "SELECT token, spam_count, ham_count FROM mailfort.spam_tokens", 0,
	                     NULL, NULL, NULL, 1, err);
	if (res == NULL)
		return NULL;
	n = PQntuples(res);
	m = mf_model_new(key, (size_t)n);
	if (m == NULL) {
		PQclear(res);
		mf_error_set(err, "out of memory loading %d spam tokens", n);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		const unsigned char *tok = (const unsigned char *)PQgetvalue(res, i, 0);
		uint64_t s, h;

		if (PQgetlength(res, i, 0) < 8 || PQgetlength(res, i, 1) != 8 ||
		    PQgetlength(res, i, 2) != 8)
			continue;
		s = be64((const unsigned char *)PQgetvalue(res, i, 1));
		h = be64((const unsigned char *)PQgetvalue(res, i, 2));
		if (mf_model_add(m, be64(tok), clamp32(s), clamp32(h)) < 0) {
			PQclear(res);
			mf_model_unref(&m);
			mf_error_set(err, "out of memory loading %d spam tokens", n);
			return NULL;
		}
	}
	PQclear(res);
	mf_model_set_messages(m, nspam, nham);
	return m;
}

static int copy_rows(PGconn *conn, const struct mf_model *m, struct mf_error *err)
{
	char line[128], *buf;
	size_t iter = 0, used = 0, cap = 1 << 20;
	struct mf_token_count c;
	PGresult *res;

	buf = malloc(cap);
	if (buf == NULL)
		return mf_error_set(err, "out of memory");
	while (mf_model_next(m, &iter, &c)) {
		int n = snprintf(line, sizeof(line), "\\\\x%016llx\t%u\t%u\n",
		                 (unsigned long long)c.hash, c.spam, c.ham);

		if (used + (size_t)n > cap) {
			if (PQputCopyData(conn, buf, (int)used) != 1)
				goto fail;
			used = 0;
		}
		memcpy(buf + used, line, (size_t)n);
		used += (size_t)n;
	}
	if (used > 0 && PQputCopyData(conn, buf, (int)used) != 1)
		goto fail;
	free(buf);
	if (PQputCopyEnd(conn, NULL) != 1)
		return mf_error_set(err, "database: COPY failed: %s", PQerrorMessage(conn));
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mf_error_set(err, "database: COPY failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		return -1;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return 0;
fail:
	free(buf);
	mf_error_set(err, "database: COPY failed: %s", PQerrorMessage(conn));
	(void)PQputCopyEnd(conn, "aborted");
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return -1;
}

int mf_model_store(const struct mf_model *m, struct mf_db *db, struct mf_error *err)
{
	uint64_t nspam, nham;
	char s_spam[24], s_ham[24];
	const char *params[2] = {s_spam, s_ham};
	PGresult *res;
	PGconn *conn;

	mf_model_messages(m, &nspam, &nham);
	snprintf(s_spam, sizeof(s_spam), "%llu", (unsigned long long)nspam);
	snprintf(s_ham, sizeof(s_ham), "%llu", (unsigned long long)nham);
	if (mf_db_begin(db, err) < 0)
		return -1;
	if (mf_db_command(db,
	                  "CREATE TEMPORARY TABLE mf_spam_train (token bytea, s bigint, h bigint)"
	                  " ON COMMIT DROP",
	                  0, NULL, err) < 0)
		goto fail;
	conn = mf_db_conn(db);
	if (conn == NULL) {
		mf_error_set(err, "database: connection lost");
		goto fail;
	}
	/* A fixed statement without values: COPY needs the raw connection. */
	res = PQexec(conn, "COPY mf_spam_train FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		mf_error_set(err, "database: COPY failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (copy_rows(conn, m, err) < 0)
		goto fail;
	if (mf_db_command(db,
	                  "INSERT INTO mailfort.spam_tokens AS t (token, spam_count, ham_count)"
	                  " SELECT token, s, h FROM mf_spam_train"
	                  " ON CONFLICT (token) DO UPDATE SET"
	                  " spam_count = t.spam_count + EXCLUDED.spam_count,"
	                  " ham_count = t.ham_count + EXCLUDED.ham_count, updated_at = now()",
	                  0, NULL, err) < 0)
		goto fail;
	if (mf_db_command(db,
	                  "UPDATE mailfort.spam_totals SET spam_messages = spam_messages + $1,"
	                  " ham_messages = ham_messages + $2, updated_at = now()",
	                  2, params, err) < 0)
		goto fail;
	return mf_db_commit(db, err);
fail:
	mf_db_rollback(db);
	return -1;
}
