/*
 * ship.c - move events from the local spool into PostgreSQL, exactly once.
 *
 * One batch is one transaction:
 *
 *   COPY the events into mailfort.audit_events (each with its per-node seq,
 *   prev_hash and hash), store the spool position reached and the last seq
 *   in mailfort.auditd_positions, file milter verdicts, evaluate the alert
 *   rules, write a signed checkpoint when one is due, COMMIT.
 *
 * The position, the events and the chain head (kept by a trigger in
 * mailfort.audit_heads) therefore move together: a crash or a lost
 * connection anywhere before COMMIT leaves everything as before the batch,
 * and the next start reads the spool again from the committed position.
 * Nothing is shipped twice, nothing is skipped.
 *
 * A spooled record that is not a valid event (bad JSON, JSON that jsonb
 * would refuse, invalid UTF-8, no "type") is not dropped: it is stored as an
 * event of type "invalid" that carries the original text as a JSON string,
 * so the auditor sees it.
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
#include "mf-event.h"
#include "mf-log.h"

/* ------------------------------------------------------------ buffer */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
	size_t cap;

	if (b->len + more <= b->cap)
		return;
	cap = b->cap == 0 ? 65536 : b->cap;
	while (cap < b->len + more)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (b->p == NULL) {
		mf_log_error("out of memory (%zu bytes)", cap);
		abort();
	}
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t len)
{
	buf_reserve(b, len);
	memcpy(b->p + b->len, s, len);
	b->len += len;
}

static void buf_addc(struct buf *b, char c)
{
	buf_reserve(b, 1);
	b->p[b->len++] = c;
}

/* A COPY text-format field: backslash, tab, newline and CR escaped; NULL as \N. */
static void buf_copy_text(struct buf *b, const char *s, size_t len)
{
	if (s == NULL) {
		buf_add(b, "\\N", 2);
		return;
	}
	buf_reserve(b, len * 2);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		switch (c) {
		case '\\':
			b->p[b->len++] = '\\';
			b->p[b->len++] = '\\';
			break;
		case '\t':
			b->p[b->len++] = '\\';
			b->p[b->len++] = 't';
			break;
		case '\n':
			b->p[b->len++] = '\\';
			b->p[b->len++] = 'n';
			break;
		case '\r':
			b->p[b->len++] = '\\';
			b->p[b->len++] = 'r';
			break;
		default:
			b->p[b->len++] = c;
		}
	}
}

static void buf_copy_str(struct buf *b, const char *s)
{
	buf_copy_text(b, s, s == NULL ? 0 : strlen(s));
}

/* bytea in COPY text format: \\x + hex */
static void buf_copy_bytea(struct buf *b, const unsigned char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	buf_reserve(b, 3 + 2 * len);
	b->p[b->len++] = '\\';
	b->p[b->len++] = '\\';
	b->p[b->len++] = 'x';
	for (size_t i = 0; i < len; i++) {
		b->p[b->len++] = hex[data[i] >> 4];
		b->p[b->len++] = hex[data[i] & 15];
	}
}

static void format_time_us(char out[80], int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	int64_t frac = us % 1000000;
	struct tm tm;

	if (frac < 0) {
		frac += 1000000;
		t--;
	}
	gmtime_r(&t, &tm);
	snprintf(out, 80, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------ state */

static char *int_str(char buf[32], int64_t v)
{
	snprintf(buf, 32, "%" PRId64, v);
	return buf;
}

void auditd_reset(struct auditd *d)
{
	mf_spool_reader_close(&d->reader);
	d->state_loaded = false;
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
	d->mass_time = 0; /* run the volume rules with the first batch */

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

/* ------------------------------------------------------------ events */

static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			if (c == 0)
				return false;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * JSON as PostgreSQL's jsonb reads it (RFC 8259), checked before a record is
 * shipped: audit_events.payload has a CHECK (payload::jsonb IS NOT NULL), and
 * json-c, which derives the columns, also accepts single quotes, comments,
 * trailing commas, NaN, Infinity, leading zeros and lone surrogate escapes.
 * A record jsonb refuses would make PostgreSQL refuse the whole batch, again
 * on every retry, and stop the trail.  Such a record is stored as type
 * "invalid" instead.  Numbers with more than 1,000 digits before or after
 * the point or an exponent beyond +-1000 (numeric refuses some numbers far
 * beyond: 131,072 digits, a scale of 16,383) and nesting deeper than 64 are
 * refused too: refusing more than jsonb does only wraps a record, it never
 * loses one.  The text is already known to be valid UTF-8 without NUL.
 */
#define JSON_MAX_DEPTH    64
#define JSON_MAX_EXPONENT 1000
#define JSON_MAX_DIGITS   1000

struct jscan {
	const unsigned char *p, *end;
};

static void js_ws(struct jscan *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int js_hex4(struct jscan *j)
{
	int v = 0;

	if (j->end - j->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = *j->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static bool js_string(struct jscan *j)
{
	j->p++; /* the opening quote */
	while (j->p < j->end) {
		unsigned char c = *j->p++;
		int u;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (j->p >= j->end)
			return false;
		c = *j->p++;
		if (strchr("\"\\/bfnrt", c) != NULL && c != '\0')
			continue;
		if (c != 'u' || (u = js_hex4(j)) <= 0 || (u >= 0xdc00 && u <= 0xdfff))
			return false; /* unknown escape, \u0000, lone low surrogate */
		if (u >= 0xd800 && u <= 0xdbff) {
			int lo;

			if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
				return false;
			j->p += 2;
			lo = js_hex4(j);
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
		}
	}
	return false;
}

static bool js_digits(struct jscan *j, size_t *n)
{
	const unsigned char *start = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	*n = (size_t)(j->p - start);
	return *n > 0;
}

static bool js_number(struct jscan *j)
{
	size_t n;

	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!js_digits(j, &n) || n > JSON_MAX_DIGITS)
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!js_digits(j, &n) || n > JSON_MAX_DIGITS)
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		const unsigned char *e;
		long x = 0;

		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		e = j->p;
		if (!js_digits(j, &n))
			return false;
		for (; e < j->p; e++) {
			x = x * 10 + (*e - '0');
			if (x > JSON_MAX_EXPONENT)
				return false;
		}
	}
	return true;
}

static bool js_literal(struct jscan *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool js_value(struct jscan *j, int depth)
{
	js_ws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '{':
	case '[': {
		unsigned char close = *j->p == '{' ? '}' : ']';
		bool object = close == '}';

		if (depth >= JSON_MAX_DEPTH)
			return false;
		j->p++;
		js_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (object) {
				js_ws(j);
				if (j->p >= j->end || *j->p != '"' || !js_string(j))
					return false;
				js_ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return false;
			}
			if (!js_value(j, depth + 1))
				return false;
			js_ws(j);
			if (j->p >= j->end)
				return false;
			if (*j->p == close) {
				j->p++;
				return true;
			}
			if (*j->p++ != ',')
				return false;
		}
	}
	case '"':
		return js_string(j);
	case 't':
		return js_literal(j, "true");
	case 'f':
		return js_literal(j, "false");
	case 'n':
		return js_literal(j, "null");
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return js_number(j);
		return false;
	}
}

static bool json_strict_valid(const char *s, size_t len)
{
	struct jscan j = {(const unsigned char *)s, (const unsigned char *)s + len};

	if (!js_value(&j, 0))
		return false;
	js_ws(&j);
	return j.p == j.end;
}

unsigned int auditd_type_bit(const char *type)
{
	if (strcmp(type, "auth") == 0 || strcmp(type, "login") == 0)
		return AUDITD_T_AUTH;
	if (strcmp(type, "read") == 0)
		return AUDITD_T_READ;
	if (strcmp(type, "expunge") == 0)
		return AUDITD_T_EXPUNGE;
	if (strcmp(type, "verdict") == 0)
		return AUDITD_T_VERDICT;
	return 0;
}

/* Wrap a record that is not a valid event so that it is stored, not lost. */
static char *wrap_invalid(struct auditd *d, const char *payload, size_t len, const char *why)
{
	struct mf_event *ev = mf_event_new("invalid", d->node);
	const char *json;
	size_t jlen;
	char *out;

	mf_event_add_str(ev, "reason", why);
	mf_event_add_strn(ev, "raw", payload, len);
	json = mf_event_json(ev, &jlen);
	out = strndup(json, jlen);
	mf_event_free(&ev);
	if (out == NULL)
		abort();
	return out;
}

/* Add one record to the COPY buffer, advancing seq and head. */
static void add_record(struct auditd *d, struct buf *b, const char *payload, size_t len,
                       int64_t seq, unsigned char head[MF_AUDIT_HASH_BYTES])
{
	struct mf_audit_cols cols;
	struct mf_error err;
	unsigned char hash[MF_AUDIT_HASH_BYTES];
	char *wrapped = NULL, tbuf[80], sbuf[32];
	const char *why = NULL;

	if (!utf8_valid((const unsigned char *)payload, len))
		why = "record is not valid UTF-8";
	else if (memmem(payload, len, "\\u0000", 6) != NULL)
		why = "record contains a NUL character";
	else if (mf_audit_derive(payload, len, &cols, &err) < 0)
		why = err.msg;
	else if (!json_strict_valid(payload, len)) {
		mf_audit_cols_free(&cols);
		why = "event is not strict JSON (jsonb would refuse it)";
	}
	if (why != NULL) {
		mf_log_warn("node %s seq %" PRId64 ": %s; stored as type \"invalid\"", d->node, seq,
		            why);
		wrapped = wrap_invalid(d, payload, len, why);
		payload = wrapped;
		len = strlen(wrapped);
		if (mf_audit_derive(payload, len, &cols, &err) < 0) {
			mf_log_error("cannot wrap an invalid record: %s", err.msg);
			abort();
		}
	}
	d->batch_types |= auditd_type_bit(cols.type);
	mf_audit_hash(hash, head, d->node, seq, payload, len);

	buf_copy_str(b, d->node);
	buf_addc(b, '\t');
	buf_copy_str(b, int_str(sbuf, seq));
	buf_addc(b, '\t');
	format_time_us(tbuf, cols.time_ok ? cols.time_us : now_us());
	buf_copy_str(b, tbuf);
	buf_addc(b, '\t');
	buf_copy_str(b, cols.type);
	buf_addc(b, '\t');
	buf_copy_str(b, cols.username);
	buf_addc(b, '\t');
	buf_copy_str(b, cols.session);
	buf_addc(b, '\t');
	buf_copy_str(b, cols.ip);
	buf_addc(b, '\t');
	buf_copy_text(b, payload, len);
	buf_addc(b, '\t');
	buf_copy_bytea(b, head, MF_AUDIT_HASH_BYTES);
	buf_addc(b, '\t');
	buf_copy_bytea(b, hash, MF_AUDIT_HASH_BYTES);
	buf_addc(b, '\n');

	memcpy(head, hash, MF_AUDIT_HASH_BYTES);
	mf_audit_cols_free(&cols);
	free(wrapped);
}

/* COPY is streamed: rows go to the server while the next records are read
   and hashed, so PostgreSQL and auditd work at the same time. */
#define COPY_CHUNK (256 * 1024)

static int copy_begin(struct auditd *d, struct mf_error *err)
{
	PGconn *conn = mf_db_conn(d->db);
	PGresult *res;

	if (conn == NULL)
		return mf_error_set(err, "database: no connection");
	res = PQexec(conn, "COPY mailfort.audit_events (node, seq, event_time, type, username, "
	                   "session, ip, payload, prev_hash, hash) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		mf_error_set(err, "database: COPY failed: %s", PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

static int copy_put(struct auditd *d, struct buf *b, struct mf_error *err)
{
	PGconn *conn = mf_db_conn(d->db);

	if (b->len == 0)
		return 0;
	if (conn == NULL || PQputCopyData(conn, b->p, (int)b->len) != 1)
		return mf_error_set(err, "database: COPY failed: %s",
		                    conn != NULL ? PQerrorMessage(conn) : "no connection");
	b->len = 0;
	return 0;
}

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
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		ok = 0;
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

int auditd_ship_batch(struct auditd *d, int64_t *n_r, struct mf_error *err)
{
	int64_t max = mf_config_int(d->cfg, "auditd", "batch_size");
	int64_t n = 0, seq = d->seq, ckpt_seq = d->ckpt_seq;
	unsigned char head[MF_AUDIT_HASH_BYTES];
	struct mf_spool_pos pos = d->pos, rpos;
	struct buf b = {NULL, 0, 0};
	bool ckpt = false, in_txn = false, copying = false;
	bool alerts = mf_config_bool(d->cfg, "auditd", "alerts");
	int64_t mass_from = 0, mass_seq = d->mass_seq;
	const void *payload;
	size_t len;
	struct mf_error e;

	*n_r = 0;
	d->batch_types = 0;
	memcpy(head, d->head, sizeof(head));
	while (n < max) {
		enum mf_spool_status st = mf_spool_read(d->reader, &payload, &len, &rpos, &e);

		if ((st == MF_SPOOL_RECORD || st == MF_SPOOL_CORRUPT) && !in_txn) {
			/* the first record: open the transaction and the COPY */
			if (mf_db_begin(d->db, err) < 0)
				goto fail;
			in_txn = true;
			/* also after a silent reconnect: the commit must be durable */
			if (mf_db_command(d->db, "SET LOCAL synchronous_commit = on", 0, NULL,
			                  err) < 0 ||
			    copy_begin(d, err) < 0)
				goto fail;
			copying = true;
		}
		if (st == MF_SPOOL_RECORD) {
			d->torn_since = 0;
			seq++;
			add_record(d, &b, payload, len, seq, head);
			pos = rpos;
			n++;
		} else if (st == MF_SPOOL_CORRUPT) {
			/* the damage itself goes into the trail */
			struct mf_spool_pos at;
			uint64_t dlen;
			struct mf_event *ev = mf_event_new("spool_damage", d->node);
			const char *json;
			size_t jlen;

			mf_log_error("spool: %s", e.msg);
			mf_spool_reader_damage(d->reader, &at, &dlen);
			mf_event_add_int(ev, "segment", (int64_t)at.segment);
			mf_event_add_int(ev, "offset", (int64_t)at.offset);
			mf_event_add_int(ev, "length", (int64_t)dlen);
			mf_event_add_str(ev, "reason", e.msg);
			json = mf_event_json(ev, &jlen);
			if (json == NULL) {
				mf_event_free(&ev);
				mf_error_set(err, "out of memory");
				goto fail;
			}
			seq++;
			add_record(d, &b, json, jlen, seq, head);
			mf_event_free(&ev);
			pos = rpos;
			n++;
		} else if (st == MF_SPOOL_ERROR) {
			mf_error_set(err, "spool: %s", e.msg);
			goto fail;
		} else if (st == MF_SPOOL_TORN) {
			note_torn(d, &rpos);
			break;
		} else {
			d->torn_since = 0;
			break; /* EMPTY: nothing more now */
		}
		if (b.len >= COPY_CHUNK && copy_put(d, &b, err) < 0)
			goto fail;
	}
	if (n == 0) {
		free(b.p);
		return 0;
	}
	copying = false;
	if (copy_put(d, &b, err) < 0 || copy_end(d, NULL, err) < 0)
		goto fail;
	if (!alerts)
		mass_seq = seq;
	else if (time(NULL) - d->mass_time >= AUDITD_MASS_INTERVAL)
		mass_from = d->mass_seq + 1, mass_seq = seq;
	if (store_position(d, &pos, seq, mass_seq, err) < 0)
		goto fail;
	if ((d->batch_types & AUDITD_T_VERDICT) != 0 && store_verdicts(d, d->seq + 1, seq, err) < 0)
		goto fail;
	if (alerts && auditd_alerts_evaluate(d, d->seq + 1, seq, mass_from, err) < 0)
		goto fail;
	if (checkpoint_due(d, seq, false)) {
		if (insert_checkpoint(d, seq, head, err) < 0)
			goto fail;
		ckpt = true;
		ckpt_seq = seq;
	}
	if (mf_db_commit(d->db, err) < 0) {
		in_txn = false;
		goto fail;
	}
	free(b.p);

	d->seq = seq;
	d->pos = pos;
	memcpy(d->head, head, sizeof(head));
	if (mass_from > 0)
		d->mass_time = time(NULL);
	d->mass_seq = mass_seq;
	if (ckpt) {
		d->ckpt_seq = ckpt_seq;
		d->ckpt_time = time(NULL);
	}
	d->shipped_total += (uint64_t)n;
	*n_r = n;
	auditd_alerts_flush(d, true);
	if (mf_spool_rotate(d->spool_dir, (uint64_t)mf_config_int(d->cfg, "auditd", "segment_size"),
	                    &d->pos, &e) < 0)
		mf_log_warn("spool rotation: %s", e.msg);
	return 0;

fail:
	if (copying) {
		struct mf_error ignored;

		(void)copy_end(d, "batch abandoned", &ignored);
	}
	if (in_txn)
		mf_db_rollback(d->db);
	free(b.p);
	return -1;
}

int auditd_maintenance(struct auditd *d, bool force, struct mf_error *err)
{
	time_t now = time(NULL);
	int64_t months;
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
	months = mf_config_int(d->cfg, "auditd", "retention_months");
	if (months > 0) {
		const char *params[1] = {int_str(a, months)};

		res = mf_db_exec(d->db, "SELECT mailfort.audit_retire_partitions($1::integer)", 1,
		                 params, err);
		if (res == NULL)
			return -1;
		for (int i = 0; i < PQntuples(res); i++)
			mf_log_info("retention: detached partition %s", PQgetvalue(res, i, 0));
		PQclear(res);
	}
	d->maint_time = now;
	return 0;
}
