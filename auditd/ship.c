/*
 * ship.c - move events from the local spool into PostgreSQL, exactly once.
 *
 * The batches come from the preparing thread (prepare.c), which reads,
 * checks and hash-chains the next batch while this one is stored.  One
 * batch is one transaction:
 *
 *   COPY the events (binary format) into mailfort.audit_events (each with
 *   its per-node seq, prev_hash and hash), store the spool position reached
 *   and the last seq in mailfort.auditd_positions, file milter verdicts,
 *   evaluate the alert rules, write a signed checkpoint when one is due,
 *   COMMIT.
 *
 * The position, the events and the chain head (kept by a trigger in
 * mailfort.audit_heads) therefore move together: a crash or a lost
 * connection anywhere before COMMIT leaves everything as before the batch,
 * and the next start reads the spool again from the committed position.
 * Nothing is shipped twice, nothing is skipped.  Only after COMMIT does
 * the in-memory committed state (seq, chain head, spool position) move to
 * the batch's end; after a failure auditd_reset throws away whatever was
 * prepared beyond it.
 *
 * A spooled record that is not a valid event (bad JSON, JSON that jsonb
 * would refuse, invalid UTF-8, no "type") is not dropped: it is stored as an
 * event of type "invalid" that carries the original text as a JSON string,
 * so the auditor sees it.
 *
 * A batch the database refuses for its data (an index row too large, a
 * value it cannot convert) is not retried as it is: auditd ships the same
 * events again one per transaction, and the one refused on its own is
 * quarantined (prepare.c): a "quarantined" event in its place in the
 * chain, the record byte for byte in mailfort.audit_quarantine, a critical
 * alert, all in the same transaction; then shipping goes on.  Nothing is
 * skipped and nothing is stored twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "auditd.h"
#include "mf-config.h"
#include "mf-db.h"
#include "mf-log.h"

/* ------------------------------------------------------------ state */

static char *int_str(char buf[32], int64_t v)
{
	snprintf(buf, 32, "%" PRId64, v);
	return buf;
}

void auditd_reset(struct auditd *d)
{
	auditd_prep_stop(d);
	mf_spool_reader_close(&d->reader);
	d->state_loaded = false;
	d->anchored_seq = -1;
	auditd_alerts_flush(d, false);
}

static int load_state(struct auditd *d, struct mf_error *err)
{
	const char *params[1] = {d->node};
	PGresult *res;
	int64_t pos_seq = 0, head_seq = 0, mass_seq = 0;
	bool have_pos = false;

	res = mf_db_exec(d->db,
	                 "SELECT spool_segment, spool_offset, last_seq, alert_seq "
	                 "FROM mailfort.auditd_positions WHERE node = $1",
	                 1, params, err);
	if (res == NULL)
		return -1;
	memset(&d->pos, 0, sizeof(d->pos));
	if (PQntuples(res) == 1) {
		d->pos.segment = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		d->pos.offset = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		pos_seq = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		mass_seq = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		have_pos = true;
	}
	PQclear(res);

	res = mf_db_exec(d->db,
	                 "SELECT last_seq, last_hash FROM mailfort.audit_heads WHERE node = $1", 1,
	                 params, err);
	if (res == NULL)
		return -1;
	memset(d->head, 0, sizeof(d->head));
	if (PQntuples(res) == 1) {
		size_t hlen;
		unsigned char *h = mf_db_unescape_bytea(PQgetvalue(res, 0, 1), &hlen);

		head_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		if (h == NULL || hlen != MF_AUDIT_HASH_BYTES) {
			free(h);
			PQclear(res);
			return mf_error_set(err, "audit head of node \"%s\" has a malformed hash",
			                    d->node);
		}
		memcpy(d->head, h, MF_AUDIT_HASH_BYTES);
		free(h);
	}
	PQclear(res);
	if (head_seq != pos_seq) {
		return mf_error_set(err,
		                    "node \"%s\": stored events end at seq %" PRId64
		                    " but the shipped spool position is for seq %" PRId64
		                    "%s; refusing to guess (check mailfort.auditd_positions)",
		                    d->node, head_seq, pos_seq, have_pos ? "" : " (no position)");
	}
	d->seq = head_seq;
	d->mass_seq = mass_seq;
	d->mass_types = ~0u; /* what lies after mass_seq is not known here */
	d->mass_time = 0;    /* run the volume rules with the first batch */

	res = mf_db_exec(d->db,
	                 "SELECT coalesce(max(seq), 0), "
	                 "coalesce(extract(epoch FROM max(created_at))::bigint, 0) "
	                 "FROM mailfort.audit_checkpoints WHERE node = $1",
	                 1, params, err);
	if (res == NULL)
		return -1;
	d->ckpt_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	d->ckpt_time = (time_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);

	d->reader = mf_spool_reader_open(d->spool_dir, &d->pos, err);
	if (d->reader == NULL)
		return -1;
	if (auditd_prep_start(d, mf_config_int(d->cfg, "auditd", "batch_size"), err) < 0) {
		mf_spool_reader_close(&d->reader);
		return -1;
	}
	d->state_loaded = true;
	mf_log_info("node %s: resuming at seq %" PRId64 ", spool %" PRIu64 ":%" PRIu64, d->node,
	            d->seq, d->pos.segment, d->pos.offset);
	return 0;
}

int auditd_connect(struct auditd *d, struct mf_error *err)
{
	if (d->db == NULL) {
		struct mf_db_settings set;

		mf_db_settings_from_config(&set, d->cfg, "mailfort-auditd");
		d->db = mf_db_open(&set, err);
		if (d->db == NULL)
			return -1;
	} else if (mf_db_ensure(d->db, err) < 0) {
		return -1;
	}
	if (!d->state_loaded) {
		/* spool segments are removed once their events are committed:
		   a commit must be durable when it returns */
		if (mf_db_command(d->db, "SET synchronous_commit = on", 0, NULL, err) < 0)
			return -1;
		if (auditd_maintenance(d, true, err) < 0)
			return -1;
		if (load_state(d, err) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ batches */

/* The COPY is sent in pieces of this size. */
#define COPY_CHUNK (256 * 1024)

static int copy_begin(struct auditd *d, struct mf_error *err)
{
	PGconn *conn = mf_db_conn(d->db);
	PGresult *res;

	if (conn == NULL)
		return mf_error_set(err, "database: no connection");
	res = PQexec(conn, "COPY mailfort.audit_events (node, seq, event_time, type, username, "
	                   "session, ip, payload, prev_hash, hash) FROM STDIN (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		mf_error_set(err, "database: COPY failed: %s", PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

static int copy_put(struct auditd *d, const char *data, size_t len, struct mf_error *err)
{
	PGconn *conn = mf_db_conn(d->db);

	while (len > 0) {
		size_t n = len < COPY_CHUNK ? len : COPY_CHUNK;

		if (conn == NULL || PQputCopyData(conn, data, (int)n) != 1)
			return mf_error_set(err, "database: COPY failed: %s",
			                    conn != NULL ? PQerrorMessage(conn) : "no connection");
		data += n;
		len -= n;
	}
	return 0;
}

/* The binary COPY file header (signature, flags, no extension) and trailer. */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
static const char copy_trailer[2] = "\377\377";

/* End the COPY; abort it (error != NULL) so that the transaction fails. */
static int copy_end(struct auditd *d, const char *error, struct mf_error *err)
{
	PGconn *conn = mf_db_conn(d->db);
	PGresult *res;
	int ok = 1;

	if (conn == NULL)
		return mf_error_set(err, "database: no connection");
	if (PQputCopyEnd(conn, error) != 1)
		ok = 0;
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		ok = 0;
		snprintf(d->refused_state, sizeof(d->refused_state), "%s",
		         state != NULL ? state : "");
	}
	if (!ok && error == NULL)
		mf_error_set(err, "database: COPY failed: %s", PQerrorMessage(conn));
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return ok ? 0 : -1;
}

static int store_position(struct auditd *d, const struct mf_spool_pos *pos, int64_t seq,
                          int64_t mass_seq, struct mf_error *err)
{
	char a[32], b[32], c[32], m[32];
	const char *params[5] = {d->node, int_str(a, (int64_t)pos->segment),
	                         int_str(b, (int64_t)pos->offset), int_str(c, seq),
	                         int_str(m, mass_seq)};

	return mf_db_command(
	    d->db,
	    "INSERT INTO mailfort.auditd_positions "
	    "(node, spool_segment, spool_offset, last_seq, alert_seq) VALUES ($1, $2, $3, $4, $5) "
	    "ON CONFLICT (node) DO UPDATE SET spool_segment = EXCLUDED.spool_segment, "
	    "spool_offset = EXCLUDED.spool_offset, last_seq = EXCLUDED.last_seq, "
	    "alert_seq = EXCLUDED.alert_seq, updated_at = now()",
	    5, params, err);
}

static int store_verdicts(struct auditd *d, int64_t from, int64_t to, struct mf_error *err)
{
	char a[32], b[32];
	const char *params[3] = {d->node, int_str(a, from), int_str(b, to)};
	PGresult *res;

	res =
	    mf_db_exec(d->db, "SELECT mailfort.auditd_store_verdicts($1, $2, $3)", 3, params, err);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

static int insert_checkpoint(struct auditd *d, int64_t seq,
                             const unsigned char head[MF_AUDIT_HASH_BYTES], struct mf_error *err)
{
	unsigned char sig[MF_AUDIT_SIG_BYTES];
	char a[32], b[32], *hh, *ss, *pp;
	int ret;

	mf_audit_checkpoint_sign(sig, d->node, seq, seq, head, d->sign_sk);
	hh = mf_db_escape_bytea(head, MF_AUDIT_HASH_BYTES);
	ss = mf_db_escape_bytea(sig, sizeof(sig));
	pp = mf_db_escape_bytea(d->sign_pk, sizeof(d->sign_pk));
	{
		const char *params[6] = {d->node, int_str(a, seq), int_str(b, seq), hh, ss, pp};

		ret = mf_db_command(d->db,
		                    "INSERT INTO mailfort.audit_checkpoints "
		                    "(node, seq, count, head_hash, signature, signer_key) "
		                    "VALUES ($1, $2, $3, $4, $5, $6)",
		                    6, params, err);
	}
	free(hh);
	free(ss);
	free(pp);
	return ret;
}

/* The records of batch b that are quarantined: each row, and its alert. */
static int store_quarantine(struct auditd *d, const struct auditd_batch *b, struct mf_error *err)
{
	for (const struct auditd_quarantine *q = b->quarantine; q != NULL; q = q->next) {
		char seq[32], *dg = mf_db_escape_bytea(q->digest, sizeof(q->digest));
		char *rec = mf_db_escape_bytea((const unsigned char *)q->record, q->len);
		const char *params[6] = {d->node,   int_str(seq, q->seq),
		                         q->reason, q->sqlstate[0] != '\0' ? q->sqlstate : NULL,
		                         dg,        rec};
		int ret = mf_db_command(d->db,
		                        "INSERT INTO mailfort.audit_quarantine "
		                        "(node, seq, reason, sqlstate, digest, record) "
		                        "VALUES ($1, $2, $3, $4, $5, $6)",
		                        6, params, err);

		free(dg);
		free(rec);
		if (ret < 0 || auditd_alert_quarantine(d, q, err) < 0)
			return -1;
	}
	return 0;
}

/* A batch the database refused for what it holds, not for an outage or a
   conflict: data exceptions (22), values too large for a row or an index
   (54), CHECK and NOT NULL violations. */
static bool refused_for_data(const char *state)
{
	return strncmp(state, "22", 2) == 0 || strncmp(state, "54", 2) == 0 ||
	       strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0;
}

/* After batch b failed: when the database refused its data, find the
   record (one event per batch) and quarantine it, instead of retrying the
   same batch for ever. */
static void note_refusal(struct auditd *d, const struct auditd_batch *b, const char *why)
{
	if (!refused_for_data(d->refused_state))
		return;
	if (b->n > 1) {
		d->careful_until = b->last_seq;
		mf_log_warn("the database refused the batch of seq %" PRId64 " to %" PRId64
		            " (SQLSTATE %s); shipping it one event at a time to find the record",
		            b->first_seq, b->last_seq, d->refused_state);
	} else if (d->quarantine_seq != b->first_seq) {
		d->quarantine_seq = b->first_seq;
		snprintf(d->quarantine_reason, sizeof(d->quarantine_reason), "%s", why);
		memcpy(d->quarantine_state, d->refused_state, sizeof(d->quarantine_state));
		if (d->careful_until < b->first_seq)
			d->careful_until = b->first_seq;
	} else {
		mf_log_error("seq %" PRId64 ": even the quarantine event was refused: %s",
		             b->first_seq, why);
	}
}

static bool checkpoint_due(struct auditd *d, int64_t seq, bool force)
{
	if (seq <= d->ckpt_seq)
		return false;
	if (force)
		return true;
	if (seq - d->ckpt_seq >= mf_config_int(d->cfg, "auditd", "checkpoint_events"))
		return true;
	return time(NULL) - d->ckpt_time >= mf_config_int(d->cfg, "auditd", "checkpoint_interval");
}

int auditd_checkpoint_if_due(struct auditd *d, bool force, struct mf_error *err)
{
	if (!d->state_loaded || !checkpoint_due(d, d->seq, force))
		return 0;
	if (insert_checkpoint(d, d->seq, d->head, err) < 0)
		return -1;
	d->ckpt_seq = d->seq;
	d->ckpt_time = time(NULL);
	if (d->verbose)
		mf_log_info("node %s: checkpoint at seq %" PRId64, d->node, d->seq);
	return 0;
}

/* An incomplete record at the end of the spool is normally a writer still
   writing (one system call).  One that stays is what a writer that died
   mid-write left: sealing its segment makes the reader report it as
   damaged and go on, instead of waiting behind it for ever. */
static void note_torn(struct auditd *d, const struct mf_spool_pos *at)
{
	time_t now = time(NULL);
	struct mf_error e;

	if (d->torn_since == 0 || d->torn_pos.segment != at->segment ||
	    d->torn_pos.offset != at->offset) {
		d->torn_since = now;
		d->torn_pos = *at;
		return;
	}
	if (now - d->torn_since < AUDITD_TORN_GRACE)
		return;
	mf_log_warn("spool segment %" PRIu64 ": incomplete record at offset %" PRIu64
	            " for %d seconds (a writer died mid-write); sealing the segment",
	            at->segment, at->offset, AUDITD_TORN_GRACE);
	if (mf_spool_rotate(d->spool_dir, 0, NULL, &e) < 0)
		mf_log_error("spool: %s", e.msg);
	d->torn_since = 0;
}

/* Store batch b in one transaction; the committed state moves to its end. */
static int ship(struct auditd *d, const struct auditd_batch *b, struct mf_error *err)
{
	int64_t seq = b->last_seq, mass_from = 0, mass_seq = d->mass_seq;
	unsigned int mass_types = d->mass_types | b->types;
	bool alerts = mf_config_bool(d->cfg, "auditd", "alerts"), ckpt = false, copying = false;

	if (mf_db_begin(d->db, err) < 0)
		return -1;
	/* also after a silent reconnect: the commit must be durable */
	if (mf_db_command(d->db, "SET LOCAL synchronous_commit = on", 0, NULL, err) < 0 ||
	    copy_begin(d, err) < 0)
		goto fail;
	copying = true;
	if (copy_put(d, copy_header, sizeof(copy_header), err) < 0 ||
	    copy_put(d, b->data, b->len, err) < 0 ||
	    copy_put(d, copy_trailer, sizeof(copy_trailer), err) < 0)
		goto fail;
	copying = false;
	if (copy_end(d, NULL, err) < 0)
		goto fail;
	if (b->quarantine != NULL && store_quarantine(d, b, err) < 0)
		goto fail;
	d->batch_types = b->types;
	if (!alerts)
		mass_seq = seq;
	else if (time(NULL) - d->mass_time >= AUDITD_MASS_INTERVAL)
		mass_from = d->mass_seq + 1, mass_seq = seq;
	if (store_position(d, &b->pos, seq, mass_seq, err) < 0)
		goto fail;
	if ((b->types & AUDITD_T_VERDICT) != 0 && store_verdicts(d, b->first_seq, seq, err) < 0)
		goto fail;
	if (alerts && auditd_alerts_evaluate(d, b->first_seq, seq, mass_from, mass_types, err) < 0)
		goto fail;
	if (checkpoint_due(d, seq, false)) {
		if (insert_checkpoint(d, seq, b->head, err) < 0)
			goto fail;
		ckpt = true;
	}
	if (mf_db_commit(d->db, err) < 0)
		return -1;

	d->seq = seq;
	if (d->quarantine_seq != 0 && seq >= d->quarantine_seq)
		d->quarantine_seq = 0;
	if (d->careful_until != 0 && seq >= d->careful_until)
		d->careful_until = 0;
	d->pos = b->pos;
	memcpy(d->head, b->head, sizeof(d->head));
	if (mass_from > 0)
		d->mass_time = time(NULL);
	d->mass_seq = mass_seq;
	d->mass_types = mass_seq == seq ? 0 : mass_types;
	if (ckpt) {
		d->ckpt_seq = seq;
		d->ckpt_time = time(NULL);
	}
	return 0;

fail:
	if (copying) {
		struct mf_error ignored;

		(void)copy_end(d, "batch abandoned", &ignored);
	} else if (d->refused_state[0] == '\0') {
		snprintf(d->refused_state, sizeof(d->refused_state), "%s", mf_db_sqlstate(d->db));
	}
	mf_db_rollback(d->db);
	return -1;
}

int auditd_ship_batch(struct auditd *d, int64_t *n_r, struct mf_error *err)
{
	struct auditd_batch *b;
	struct mf_error e;

	*n_r = 0;
	if (d->prep == NULL)
		return mf_error_set(err, "no spool reader");
	b = auditd_prep_take(d);
	if (b->end == MF_SPOOL_ERROR) {
		mf_error_set(err, "spool: %s", b->error);
		auditd_prep_release(d, b);
		return -1;
	}
	if (b->end == MF_SPOOL_TORN)
		note_torn(d, &b->end_pos);
	else
		d->torn_since = 0;
	if (b->n == 0) {
		auditd_prep_release(d, b);
		return 0;
	}
	if (b->first_seq != d->seq + 1) {
		mf_error_set(err,
		             "internal error: prepared batch starts at seq %" PRId64
		             " after seq %" PRId64,
		             b->first_seq, d->seq);
		auditd_prep_release(d, b);
		return -1;
	}
	d->refused_state[0] = '\0';
	if (ship(d, b, err) < 0) {
		note_refusal(d, b, err->msg);
		auditd_prep_release(d, b);
		return -1;
	}
	d->shipped_total += (uint64_t)b->n;
	*n_r = b->n;
	auditd_prep_release(d, b);
	auditd_alerts_flush(d, true);
	if (mf_spool_rotate(d->spool_dir, (uint64_t)mf_config_int(d->cfg, "auditd", "segment_size"),
	                    &d->pos, &e) < 0)
		mf_log_warn("spool rotation: %s", e.msg);
	return 0;
}

int auditd_maintenance(struct auditd *d, bool force, struct mf_error *err)
{
	time_t now = time(NULL);
	char a[32];
	PGresult *res;

	if (!force && now - d->maint_time < 3600)
		return 0;
	{
		const char *params[1] = {
		    int_str(a, mf_config_int(d->cfg, "auditd", "partitions_ahead"))};

		res = mf_db_exec(d->db, "SELECT mailfort.ensure_partitions($1::integer)", 1, params,
		                 err);
		if (res == NULL)
			return -1;
		PQclear(res);
	}
	/* Retirement is not the shipper's: it needs the schema owner's rights
	   (mailfortctl audit retire), which this role does not have. */
	if (mf_config_int(d->cfg, "auditd", "retention_months") > 0 && d->maint_time == 0)
		mf_log_warn("[auditd] retention_months is ignored: old events are retired, signed, "
		            "by the schema owner with \"mailfortctl audit retire\" "
		            "([audit] retention_min)");
	d->maint_time = now;
	return 0;
}
