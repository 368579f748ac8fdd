/*
 * ctl-audit.c - mailfortctl audit: search the audit trail, verify it.
 *
 * SYNOPSIS
 *   mailfortctl audit search [--user U] [--since T] [--until T] [--event TYPE[,TYPE..]]
 *                            [--message-id ID] [--ip ADDR] [--node N] [--limit N]
 *                            [--format table|csv|json]
 *   mailfortctl audit verify [--since T] [--node N] [--key PUBKEY] [--anchor FILE]
 *   mailfortctl audit retire [--dry-run] [--key SECRETKEY]   (ctl-audit-retire.c)
 *   mailfortctl audit anchor export [--output FILE] [--node N]   (ctl-anchor.c)
 *
 * T is an absolute time PostgreSQL understands ("2026-11-27", "2026-11-27
 * 08:00+01") or an age: "90s", "15m", "12h", "7d".
 *
 * search prints matching events, oldest first: a table (default), CSV with
 * a header line, or JSON lines ({"node","seq","event"} with the event as
 * stored).
 *
 * verify recomputes every node's hash chain (lib/mf-audit-chain.h) and
 * checks every signed checkpoint against audit-sign.pub.  It prints one
 * line per node and "OK", or the first row that does not match and why:
 *   changed   a row's event or columns differ from what was hashed / signed
 *   missing   a seq number is absent (rows deleted)
 *   inserted  a seq number appears twice, or a row does not link to the
 *             previous one
 * A record in audit.quarantine must match the BLAKE2b-256 digest its
 * "quarantined" event carries in the chain, and each such event must have
 * its record.
 * Every table is read as it is in schema mailfort, never through the views
 * of schema audit, which a superuser could replace to hide rows.
 * A gap is accepted only where signed retirements (audit_retired, each
 * signed with the audit key) cover the node's oldest events from seq 1
 * without a hole, and the first row after them links to the last hash they
 * signed; an unsigned, forged or out-of-order retirement fails verify.
 * With --since, verification starts at the last checkpoint before T, whose
 * signature anchors the chain.  Rows after the newest checkpoint are
 * verified as a chain and reported as not yet signed.  With --anchor, the
 * trail must also reach every head published outside the database
 * (ctl-anchor.c): a trail cut off at the end fails, naming the range.
 *
 * Exit status: 0 OK, 1 a verification failure or an error, 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "ctl.h"
#include "mf-audit-chain.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"

static void audit_help(FILE *f)
{
	fputs("usage: mailfortctl audit search [--user U] [--since T] [--until T]\n"
	      "                                [--event TYPE[,TYPE..]] [--message-id ID] [--ip "
	      "ADDR]\n"
	      "                                [--node N] [--limit N] [--format table|csv|json]\n"
	      "       mailfortctl audit verify [--since T] [--node N] [--key PUBKEY] [--anchor "
	      "FILE]\n"
	      "       mailfortctl audit retire [--dry-run] [--key SECRETKEY]\n"
	      "       mailfortctl audit anchor export [--output FILE] [--node N]\n"
	      "T: a time (2026-11-27, '2026-11-27 08:00+01') or an age (90s, 15m, 12h, 7d)\n",
	      f);
}

static bool digits(const char *p, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		*v = *v * 10 + (p[i] - '0');
	}
	return true;
}

/* YYYY-MM-DD (a day that exists), then optionally [T ]HH:MM[:SS[.fraction]], then optionally
   Z or +HH[[:]MM] / -HH[[:]MM]: the forms PostgreSQL reads the same way
   whatever its DateStyle. */
static bool valid_time(const char *p)
{
	int y, mo, d, h, mi, sec;

	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
	    !digits(p + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return false;
	/* 29 February only in a leap year */
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	p += 10;
	if (*p == '\0')
		return true;
	if (*p != 'T' && *p != ' ')
		return false;
	if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || h > 23 || mi > 59)
		return false;
	p += 6;
	if (*p == ':') {
		if (!digits(p + 1, 2, &sec) || sec > 60)
			return false;
		p += 3;
		if (*p == '.') {
			if (p[1] < '0' || p[1] > '9')
				return false;
			for (p++; *p >= '0' && *p <= '9'; p++)
				;
		}
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0';
	if (*p == '+' || *p == '-') {
		if (!digits(p + 1, 2, &h) || h > 14)
			return false;
		p += 3;
		if (*p == ':')
			p++;
		if (*p != '\0' && (!digits(p, 2, &mi) || mi > 59 || p[2] != '\0'))
			return false;
		return true;
	}
	return *p == '\0';
}

/* An age like "7d" becomes an absolute UTC time, a time is checked and
   passed on as it is; NULL (after saying why) for anything else. */
static const char *time_arg(const char *opt, const char *arg, char buf[64])
{
	int64_t secs;
	time_t t;
	struct tm tm;

	if (ctl_age(arg, &secs) < 0) {
		/* and PostgreSQL's words for midnight at the start of a day */
		if (valid_time(arg) || strcasecmp(arg, "today") == 0 ||
		    strcasecmp(arg, "yesterday") == 0 || strcasecmp(arg, "tomorrow") == 0)
			return arg;
		ctl_usage("%s: '%s' is not a time (2026-11-27, '2026-11-27 08:00', "
		          "2026-11-27T08:00:00+01:00, today, yesterday) or an age (90s, 15m, "
		          "12h, 7d)",
		          opt, arg);
		return NULL;
	}
	if (secs > 100LL * 366 * 86400) {
		ctl_usage("%s: '%s' is too far back", opt, arg);
		return NULL;
	}
	t = time(NULL) - (time_t)secs;
	gmtime_r(&t, &tm);
	strftime(buf, 64, "%Y-%m-%d %H:%M:%S+00", &tm);
	return buf;
}

/* ------------------------------------------------------------ search */

static void csv_field(const char *s, bool last)
{
	fputc('"', stdout);
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', stdout);
		fputc(*s, stdout);
	}
	fputc('"', stdout);
	fputc(last ? '\n' : ',', stdout);
}

static int audit_search(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"user", required_argument, NULL, 'u'},
	    {"since", required_argument, NULL, 's'},
	    {"until", required_argument, NULL, 't'},
	    {"event", required_argument, NULL, 'e'},
	    {"message-id", required_argument, NULL, 'm'},
	    {"ip", required_argument, NULL, 'i'},
	    {"node", required_argument, NULL, 'n'},
	    {"limit", required_argument, NULL, 'l'},
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *user = NULL, *since = NULL, *until = NULL, *events = NULL, *msgid = NULL;
	const char *ip = NULL, *node = NULL, *limit = "1000", *format = "table";
	char sbuf[64], ubuf[64], evbuf[1024], ipbuf[64];
	struct mf_error err;
	struct mf_db *db;
	PGresult *res;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			user = optarg;
			break;
		case 's':
			if ((since = time_arg("audit search: --since", optarg, sbuf)) == NULL)
				return 2;
			break;
		case 't':
			if ((until = time_arg("audit search: --until", optarg, ubuf)) == NULL)
				return 2;
			break;
		case 'e':
			events = optarg;
			break;
		case 'm':
			msgid = optarg;
			break;
		case 'i':
			ip = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'l':
			limit = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'h':
			audit_help(stdout);
			return 0;
		default:
			return ctl_usage("audit search: bad option");
		}
	}
	if (optind != argc)
		return ctl_usage("audit search: unexpected argument '%s'", argv[optind]);
	if (strcmp(format, "table") != 0 && strcmp(format, "csv") != 0 &&
	    strcmp(format, "json") != 0)
		return ctl_usage("audit search: --format must be table, csv or json");
	if (ip != NULL && mf_audit_canon_ip(ip, ipbuf, sizeof(ipbuf)) < 0)
		return ctl_usage("audit search: --ip '%s' is not an IPv4 or IPv6 address", ip);
	if (strspn(limit, "0123456789") != strlen(limit) || *limit == '\0')
		return ctl_usage("audit search: --limit must be a number");
	if (events != NULL) {
		if (strlen(events) + 3 > sizeof(evbuf))
			return ctl_usage("audit search: --event list too long");
		/* "a,b" -> "{a,b}" (a text[] literal; the names are checked by the server as text)
		 */
		if (strpbrk(events, "{}\"\\ ") != NULL)
			return ctl_usage("audit search: bad --event list '%s'", events);
		snprintf(evbuf, sizeof(evbuf), "{%s}", events);
		events = evbuf;
	}
	db = ctl_db(ctl);
	if (db == NULL)
		return 1;
	{
		const char *params[8] = {user, since, until, events, msgid, ip, node, limit};

		res = mf_db_exec(
		    db,
		    "SELECT to_char(event_time AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
		    "  node, seq, type, username, host(ip), session, "
		    "  concat_ws(' ', j->>'mailbox', 'uid=' || (j->>'uid'), "
		    "    'from=' || (j->>'from_mailbox'), 'new_name=' || (j->>'new_name'), "
		    "    j->>'message_id', j->>'action', j->>'result', j->>'reason', "
		    "    'client=' || (j->>'client'), j->>'service'), payload "
		    "FROM audit.events, LATERAL (SELECT payload::jsonb) AS p(j) "
		    "WHERE ($1::text IS NULL OR username = $1) "
		    "  AND ($2::timestamptz IS NULL OR event_time >= $2::timestamptz) "
		    "  AND ($3::timestamptz IS NULL OR event_time < $3::timestamptz) "
		    "  AND ($4::text[] IS NULL OR type = ANY ($4::text[])) "
		    "  AND ($5::text IS NULL OR j->>'message_id' = $5 "
		    "       OR j->>'message_id' = '<' || $5 || '>') "
		    "  AND ($6::inet IS NULL OR ip = $6::inet) "
		    "  AND ($7::text IS NULL OR node = $7) "
		    "ORDER BY event_time, node, seq LIMIT $8::bigint",
		    8, params, &err);
	}
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (strcmp(format, "csv") == 0)
		puts("time,node,seq,event,user,ip,session,detail");
	else if (strcmp(format, "table") == 0)
		printf("%-27s %-10s %6s %-14s %-20s %-15s %s\n", "TIME", "NODE", "SEQ", "EVENT",
		       "USER", "IP", "DETAIL");
	for (int i = 0; i < PQntuples(res); i++) {
		if (strcmp(format, "json") == 0) {
			printf("{\"node\":\"%s\",\"seq\":%s,\"event\":%s}\n", PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2), PQgetvalue(res, i, 8));
		} else if (strcmp(format, "csv") == 0) {
			for (int k = 0; k < 8; k++)
				csv_field(PQgetvalue(res, i, k), k == 7);
		} else {
			printf("%-27s %-10s %6s %-14s %-20s %-15s %s\n", PQgetvalue(res, i, 0),
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
			       PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 7));
		}
	}
	PQclear(res);
	return 0;
}

/* ------------------------------------------------------------ verify */

struct checkpoint {
	int64_t seq, count;
	unsigned char head[MF_AUDIT_HASH_BYTES];
	unsigned char sig[MF_AUDIT_SIG_BYTES];
	unsigned char signer[MF_AUDIT_PK_BYTES];
	bool ok;
};

struct retired {
	int64_t first, last;
	unsigned char last_hash[MF_AUDIT_HASH_BYTES];
};

struct node_check {
	const char *node;
	const unsigned char *pk;
	struct checkpoint *ckpts;
	int nckpts;
	struct retired *retired;
	int nretired;
	int64_t retired_upto; /* signed retirements cover seq 1 to this */
	int quarantined;      /* records in audit.quarantine, each checked */
	int64_t head_seq;     /* audit_heads.last_seq, -1 if none */
	int64_t rows, verified_ckpts, last_seq, retired_rows;
	char failure[1024];
};

static bool bytea_get(PGresult *res, int row, int col, unsigned char *out, size_t len)
{
	size_t n;
	unsigned char *b = mf_db_unescape_bytea(PQgetvalue(res, row, col), &n);
	bool ok = b != NULL && n == len;

	if (ok)
		memcpy(out, b, len);
	free(b);
	return ok;
}

/*
 * The node's retirements, oldest first.  Each must carry a signature by
 * audit-sign.pub over its figures, and together they must cover seq 1 to
 * some seq without a hole: retirement only ever takes the oldest events.
 * Returns 0, -1 with err on a database error, 1 with nc->failure set.
 */
static int load_retired(struct mf_db *db, struct node_check *nc, struct mf_error *err)
{
	const char *params[1] = {nc->node};
	PGresult *res;

	res =
	    mf_db_exec(db,
	               "SELECT partition, first_seq, last_seq, count, last_hash, signature, "
	               "signer_key FROM mailfort.audit_retired WHERE node = $1 ORDER BY first_seq, "
	               "last_seq",
	               1, params, err);
	if (res == NULL)
		return -1;
	nc->nretired = PQntuples(res);
	nc->retired = calloc((size_t)nc->nretired + 1, sizeof(*nc->retired));
	nc->retired_upto = 0;
	for (int i = 0; i < nc->nretired; i++) {
		struct retired *r = &nc->retired[i];
		struct mf_audit_retirement st;
		unsigned char sig[MF_AUDIT_SIG_BYTES], signer[MF_AUDIT_PK_BYTES];
		const char *part = PQgetvalue(res, i, 0);

		r->first = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		r->last = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		memset(&st, 0, sizeof(st));
		st.node = nc->node;
		st.partition = part;
		st.first_seq = r->first;
		st.last_seq = r->last;
		st.count = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		if (!bytea_get(res, i, 4, r->last_hash, sizeof(r->last_hash)) ||
		    PQgetisnull(res, i, 5) || !bytea_get(res, i, 5, sig, sizeof(sig)) ||
		    !bytea_get(res, i, 6, signer, sizeof(signer))) {
			snprintf(nc->failure, sizeof(nc->failure),
			         "seq %" PRId64 " to %" PRId64
			         ": missing: retirement (partition %s) is not signed",
			         r->first, r->last, part);
			break;
		}
		memcpy(st.last_hash, r->last_hash, MF_AUDIT_HASH_BYTES);
		if (sodium_memcmp(signer, nc->pk, MF_AUDIT_PK_BYTES) != 0 ||
		    mf_audit_retirement_verify(sig, &st, nc->pk) < 0) {
			snprintf(nc->failure, sizeof(nc->failure),
			         "seq %" PRId64 " to %" PRId64
			         ": missing: retirement (partition %s) does not verify with "
			         "audit-sign.pub (forged or changed)",
			         r->first, r->last, part);
			break;
		}
		if (r->first != nc->retired_upto + 1 || st.count != r->last - r->first + 1) {
			snprintf(nc->failure, sizeof(nc->failure),
			         "seq %" PRId64 " to %" PRId64
			         ": missing: retirement (partition %s) is not of the oldest events "
			         "(signed retirements cover seq 1 to %" PRId64 " only)",
			         r->first, r->last, part, nc->retired_upto);
			break;
		}
		nc->retired_upto = r->last;
	}
	PQclear(res);
	return nc->failure[0] != '\0' ? 1 : 0;
}

/* " (detached partitions no retirement records: ...)" or "". */
static void note_detached(struct mf_db *db, char *buf, size_t size)
{
	struct mf_error err;
	PGresult *res = mf_db_exec(
	    db,
	    "SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c "
	    "WHERE c.relnamespace = 'mailfort'::regnamespace AND c.relkind = 'r' "
	    "AND c.relname ~ '^audit_events_[0-9]{4}_[0-9]{2}$' "
	    "AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) "
	    "AND NOT EXISTS (SELECT 1 FROM mailfort.audit_retired r WHERE r.partition = c.relname)",
	    0, NULL, &err);
	size_t len = strlen(buf);

	if (res != NULL && !PQgetisnull(res, 0, 0) && len < size)
		snprintf(buf + len, size - len,
		         "; partitions detached from mailfort.audit_events without a signed "
		         "retirement: %s",
		         PQgetvalue(res, 0, 0));
	if (res != NULL)
		PQclear(res);
}

static int load_node_meta(struct mf_db *db, struct node_check *nc, struct mf_error *err)
{
	const char *params[1] = {nc->node};
	PGresult *res;

	res = mf_db_exec(
	    db,
	    "SELECT seq, count, head_hash, signature, signer_key FROM mailfort.audit_checkpoints "
	    "WHERE node = $1 ORDER BY seq",
	    1, params, err);
	if (res == NULL)
		return -1;
	nc->nckpts = PQntuples(res);
	nc->ckpts = calloc((size_t)nc->nckpts + 1, sizeof(*nc->ckpts));
	for (int i = 0; i < nc->nckpts; i++) {
		struct checkpoint *k = &nc->ckpts[i];

		k->seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		k->count = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		k->ok = bytea_get(res, i, 2, k->head, sizeof(k->head)) &&
		        bytea_get(res, i, 3, k->sig, sizeof(k->sig)) &&
		        bytea_get(res, i, 4, k->signer, sizeof(k->signer));
	}
	PQclear(res);

	if (load_retired(db, nc, err) != 0)
		return nc->failure[0] != '\0' ? 1 : -1;

	res = mf_db_exec(db, "SELECT last_seq FROM mailfort.audit_heads WHERE node = $1", 1, params,
	                 err);
	if (res == NULL)
		return -1;
	nc->head_seq = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
	PQclear(res);
	return 0;
}

/* The signed retirement that ends at seq, or NULL. */
static const struct retired *retired_ending_at(const struct node_check *nc, int64_t seq)
{
	if (seq > nc->retired_upto)
		return NULL;
	for (int i = 0; i < nc->nretired; i++) {
		if (nc->retired[i].last == seq)
			return &nc->retired[i];
	}
	return NULL;
}

/* Check a checkpoint signature; 0 ok, -1 with nc->failure set. */
static int check_signature(struct node_check *nc, const struct checkpoint *k)
{
	if (!k->ok) {
		snprintf(nc->failure, sizeof(nc->failure),
		         "checkpoint at seq %" PRId64 ": malformed (changed)", k->seq);
		return -1;
	}
	if (sodium_memcmp(k->signer, nc->pk, MF_AUDIT_PK_BYTES) != 0 ||
	    mf_audit_checkpoint_verify(k->sig, nc->node, k->seq, k->count, k->head, nc->pk) < 0) {
		snprintf(nc->failure, sizeof(nc->failure),
		         "checkpoint at seq %" PRId64
		         ": signature does not verify with audit-sign.pub (changed or forged)",
		         k->seq);
		return -1;
	}
	return 0;
}

static const char *nz(const char *s)
{
	return s == NULL ? "NULL" : s;
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Verify one row; prev is the hash the row must link to. */
static int check_row(struct node_check *nc, PGresult *res, int i, int64_t seq,
                     const unsigned char prev[MF_AUDIT_HASH_BYTES],
                     unsigned char out[MF_AUDIT_HASH_BYTES])
{
	unsigned char stored_prev[MF_AUDIT_HASH_BYTES], stored[MF_AUDIT_HASH_BYTES];
	const char *payload = PQgetvalue(res, i, 1);
	size_t plen = (size_t)PQgetlength(res, i, 1);
	struct mf_audit_cols cols;
	struct mf_error err;
	const char *col_type = PQgetvalue(res, i, 4);
	const char *col_user = PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5);
	const char *col_session = PQgetisnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6);
	const char *col_ip = PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7);
	int64_t col_us = strtoll(PQgetvalue(res, i, 8), NULL, 10);
	char ipcanon[64];

	if (!bytea_get(res, i, 2, stored_prev, sizeof(stored_prev)) ||
	    !bytea_get(res, i, 3, stored, sizeof(stored))) {
		snprintf(nc->failure, sizeof(nc->failure),
		         "seq %" PRId64 ": changed: malformed hash columns", seq);
		return -1;
	}
	mf_audit_hash(out, prev, nc->node, seq, payload, plen);
	if (sodium_memcmp(stored_prev, prev, MF_AUDIT_HASH_BYTES) != 0) {
		unsigned char alt[MF_AUDIT_HASH_BYTES];

		/* A row whose own hash is consistent with a prev_hash that is
		   not the previous row's was put there: inserted. */
		mf_audit_hash(alt, stored_prev, nc->node, seq, payload, plen);
		snprintf(nc->failure, sizeof(nc->failure),
		         "seq %" PRId64 ": %s: its prev_hash is not the hash of seq %" PRId64
		         " (the row does not belong to the chain)",
		         seq,
		         sodium_memcmp(alt, stored, MF_AUDIT_HASH_BYTES) == 0 ? "inserted"
		                                                              : "changed",
		         seq - 1);
		return -1;
	}
	if (sodium_memcmp(out, stored, MF_AUDIT_HASH_BYTES) != 0) {
		snprintf(nc->failure, sizeof(nc->failure),
		         "seq %" PRId64 ": changed: the stored event does not match its hash", seq);
		return -1;
	}
	if (mf_audit_derive(payload, plen, &cols, &err) < 0) {
		snprintf(nc->failure, sizeof(nc->failure), "seq %" PRId64 ": changed: %s", seq,
		         err.msg);
		return -1;
	}
	if (col_ip != NULL && mf_audit_canon_ip(col_ip, ipcanon, sizeof(ipcanon)) == 0)
		col_ip = ipcanon;
	{
		const char *bad = NULL, *got = NULL, *want = NULL;

		if (!str_eq(col_type, cols.type)) {
			bad = "type";
			got = col_type;
			want = cols.type;
		} else if (!str_eq(col_user, cols.username)) {
			bad = "username";
			got = col_user;
			want = cols.username;
		} else if (!str_eq(col_session, cols.session)) {
			bad = "session";
			got = col_session;
			want = cols.session;
		} else if (!str_eq(col_ip, cols.ip)) {
			bad = "ip";
			got = col_ip;
			want = cols.ip;
		} else if (cols.time_ok && col_us != cols.time_us) {
			bad = "event_time";
			got = PQgetvalue(res, i, 9);
			want = "the event's time";
		}
		if (bad != NULL) {
			snprintf(nc->failure, sizeof(nc->failure),
			         "seq %" PRId64
			         ": changed: column %s is '%s' but the hashed event says '%s'",
			         seq, bad, nz(got), nz(want));
			mf_audit_cols_free(&cols);
			return -1;
		}
	}
	mf_audit_cols_free(&cols);
	return 0;
}

/*
 * Every quarantined record must be the one its "quarantined" event names
 * (BLAKE2b-256 "digest"), and every such event must have its record.
 * Returns 0, 1 with nc->failure set, -1 with err.
 */
static int verify_quarantine(struct mf_db *db, struct node_check *nc, struct mf_error *err)
{
	char upto[32];
	const char *params[2] = {nc->node, upto};
	PGresult *res;
	int ret = 0;

	snprintf(upto, sizeof(upto), "%" PRId64, nc->retired_upto);
	res =
	    mf_db_exec(db,
	               "SELECT coalesce(q.seq, e.seq), q.seq IS NOT NULL, q.record, "
	               "  e.seq IS NOT NULL, e.payload::jsonb->>'digest' "
	               "FROM (SELECT seq, record FROM mailfort.audit_quarantine WHERE node = $1) q "
	               "FULL JOIN (SELECT seq, payload FROM mailfort.audit_events "
	               "  WHERE node = $1 AND type = 'quarantined') e ON e.seq = q.seq "
	               "WHERE coalesce(q.seq, e.seq) > $2::bigint ORDER BY 1",
	               2, params, err);
	if (res == NULL)
		return -1;
	nc->quarantined = PQntuples(res);
	for (int i = 0; i < PQntuples(res) && ret == 0; i++) {
		const char *seq = PQgetvalue(res, i, 0);
		unsigned char digest[MF_AUDIT_HASH_BYTES];
		char hex[MF_AUDIT_HASH_BYTES * 2 + 1];
		unsigned char *rec;
		size_t rlen;

		if (strcmp(PQgetvalue(res, i, 1), "t") != 0) {
			snprintf(
			    nc->failure, sizeof(nc->failure),
			    "seq %s: missing: the quarantined record is not in audit.quarantine",
			    seq);
			ret = 1;
		} else if (strcmp(PQgetvalue(res, i, 3), "t") != 0) {
			snprintf(
			    nc->failure, sizeof(nc->failure),
			    "seq %s: inserted: a quarantined record no \"quarantined\" event in "
			    "the chain stands for",
			    seq);
			ret = 1;
		} else if ((rec = mf_db_unescape_bytea(PQgetvalue(res, i, 2), &rlen)) == NULL) {
			snprintf(nc->failure, sizeof(nc->failure),
			         "seq %s: changed: the quarantined record is malformed", seq);
			ret = 1;
		} else {
			crypto_generichash(digest, sizeof(digest), rec, rlen, NULL, 0);
			free(rec);
			sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
			if (strcmp(hex, PQgetvalue(res, i, 4)) != 0) {
				snprintf(
				    nc->failure, sizeof(nc->failure),
				    "seq %s: changed: the quarantined record does not match the "
				    "digest in the chain",
				    seq);
				ret = 1;
			}
		}
	}
	PQclear(res);
	return ret;
}

static int verify_node(struct mf_db *db, struct node_check *nc, const char *since,
                       struct mf_error *err)
{
	unsigned char prev[MF_AUDIT_HASH_BYTES] = {0}, cur[MF_AUDIT_HASH_BYTES];
	int64_t expect = 1, last = 0;
	int next_ckpt = 0;
	bool have_last = false, fail = false;
	char from[32];
	PGresult *res;

	{
		int r = load_node_meta(db, nc, err);

		if (r != 0)
			return r;
	}
	for (int k = 0; k < nc->nckpts; k++) {
		if (check_signature(nc, &nc->ckpts[k]) < 0)
			return 1;
	}
	{
		/* a seq stored twice: name it as inserted before anything else */
		const char *params[1] = {nc->node};

		res = mf_db_exec(
		    db,
		    "SELECT seq, string_agg(format('type %s, user %s, time %s', type, "
		    "coalesce(username, '-'), event_time), '; ' ORDER BY received_at) "
		    "FROM mailfort.audit_events WHERE node = $1 GROUP BY seq HAVING count(*) > 1 "
		    "ORDER BY seq LIMIT 1",
		    1, params, err);
		if (res == NULL)
			return -1;
		if (PQntuples(res) == 1) {
			snprintf(nc->failure, sizeof(nc->failure),
			         "seq %s: inserted: more than one row carries this seq (%s)",
			         PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
			PQclear(res);
			return 1;
		}
		PQclear(res);
	}
	if (since != NULL) {
		/* anchor at the newest checkpoint before the first event since T */
		const char *params[2] = {nc->node, since};

		res = mf_db_exec(
		    db,
		    "SELECT coalesce(min(seq), 0) FROM mailfort.audit_events WHERE node = $1 "
		    "AND event_time >= $2::timestamptz",
		    2, params, err);
		if (res == NULL)
			return -1;
		{
			int64_t first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);

			for (int k = 0; k < nc->nckpts; k++) {
				if (first > 0 && nc->ckpts[k].seq < first) {
					expect = nc->ckpts[k].seq + 1;
					memcpy(prev, nc->ckpts[k].head, sizeof(prev));
					next_ckpt = k + 1;
					last = nc->ckpts[k].seq;
				}
			}
		}
		PQclear(res);
	}
	while (next_ckpt < nc->nckpts && nc->ckpts[next_ckpt].seq < expect)
		next_ckpt++;

	if (mf_db_begin(db, err) < 0)
		return -1;
	snprintf(from, sizeof(from), "%" PRId64, expect);
	{
		const char *params[2] = {nc->node, from};

		if (mf_db_command(
		        db,
		        "DECLARE mf_verify NO SCROLL CURSOR FOR "
		        "SELECT seq, payload, prev_hash, hash, type, username, session, host(ip), "
		        "  (extract(epoch FROM event_time) * 1000000)::bigint, event_time::text "
		        "FROM mailfort.audit_events WHERE node = $1 AND seq >= $2::bigint "
		        "ORDER BY seq, received_at",
		        2, params, err) < 0) {
			mf_db_rollback(db);
			return -1;
		}
	}
	while (!fail) {
		int n;

		res = mf_db_exec(db, "FETCH 5000 FROM mf_verify", 0, NULL, err);
		if (res == NULL) {
			mf_db_rollback(db);
			return -1;
		}
		n = PQntuples(res);
		for (int i = 0; i < n && !fail; i++) {
			int64_t seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);

			if (have_last && seq == last) {
				snprintf(nc->failure, sizeof(nc->failure),
				         "seq %" PRId64 ": inserted: a second row with this seq "
				         "(type %s, user %s, time %s)",
				         seq, PQgetvalue(res, i, 4), nz(PQgetvalue(res, i, 5)),
				         PQgetvalue(res, i, 9));
				fail = true;
				break;
			}
			if (seq > expect) {
				/* a gap is retired only when signed retirements of
				   the oldest events end right before this row, with
				   the hash it links to */
				const struct retired *r = retired_ending_at(nc, seq - 1);

				if (r == NULL) {
					/* name only what no retirement covers */
					if (expect <= nc->retired_upto &&
					    nc->retired_upto < seq - 1)
						expect = nc->retired_upto + 1;
					if (seq - 1 > expect)
						snprintf(nc->failure, sizeof(nc->failure),
						         "seq %" PRId64 " to %" PRId64
						         ": missing: these rows are not in the "
						         "table and no signed retirement covers "
						         "them",
						         expect, seq - 1);
					else
						snprintf(nc->failure, sizeof(nc->failure),
						         "seq %" PRId64
						         ": missing: this row is not in the table "
						         "(next present row is seq %" PRId64
						         ") and no signed retirement covers it",
						         expect, seq);
					fail = true;
					break;
				}
				if (!bytea_get(res, i, 2, prev, sizeof(prev)) ||
				    sodium_memcmp(prev, r->last_hash, MF_AUDIT_HASH_BYTES) != 0) {
					snprintf(nc->failure, sizeof(nc->failure),
					         "seq %" PRId64
					         ": changed: its prev_hash is not the last hash "
					         "of the signed retirement of seq %" PRId64
					         " to %" PRId64,
					         seq, r->first, r->last);
					fail = true;
					break;
				}
				/* checkpoints inside the retired range were checked
				   (signature) but their rows are gone */
				while (next_ckpt < nc->nckpts && nc->ckpts[next_ckpt].seq < seq)
					next_ckpt++;
				/* a signed checkpoint right before the first row anchors it */
				if (next_ckpt > 0 && nc->ckpts[next_ckpt - 1].seq == seq - 1 &&
				    sodium_memcmp(nc->ckpts[next_ckpt - 1].head, prev,
				                  MF_AUDIT_HASH_BYTES) != 0) {
					snprintf(nc->failure, sizeof(nc->failure),
					         "seq %" PRId64
					         ": changed: its prev_hash is not the "
					         "head signed in the checkpoint at seq %" PRId64,
					         seq, seq - 1);
					fail = true;
					break;
				}
				nc->retired_rows += seq - expect;
			}
			if (check_row(nc, res, i, seq, prev, cur) < 0) {
				fail = true;
				break;
			}
			while (next_ckpt < nc->nckpts && nc->ckpts[next_ckpt].seq == seq) {
				if (sodium_memcmp(nc->ckpts[next_ckpt].head, cur,
				                  MF_AUDIT_HASH_BYTES) != 0) {
					snprintf(nc->failure, sizeof(nc->failure),
					         "seq %" PRId64
					         ": changed: the chain up to this row "
					         "differs from the signed checkpoint",
					         seq);
					fail = true;
					break;
				}
				nc->verified_ckpts++;
				next_ckpt++;
			}
			memcpy(prev, cur, sizeof(prev));
			last = seq;
			have_last = true;
			expect = seq + 1;
			nc->rows++;
		}
		PQclear(res);
		if (n == 0)
			break;
	}
	mf_db_rollback(db); /* read-only: just closes the cursor */
	if (fail) {
		if (strstr(nc->failure, ": missing: ") != NULL)
			note_detached(db, nc->failure, sizeof(nc->failure));
		return 1;
	}
	if (!have_last && nc->retired_upto >= expect) {
		/* every event of the node is retired */
		nc->retired_rows += nc->retired_upto - expect + 1;
		last = nc->retired_upto;
	}
	nc->last_seq = last;
	if (next_ckpt < nc->nckpts) {
		snprintf(nc->failure, sizeof(nc->failure),
		         "seq %" PRId64 " to %" PRId64
		         ": missing: a signed checkpoint covers rows that are not in the table",
		         last + 1, nc->ckpts[nc->nckpts - 1].seq);
		note_detached(db, nc->failure, sizeof(nc->failure));
		return 1;
	}
	{
		int q = verify_quarantine(db, nc, err);

		if (q != 0)
			return q;
	}
	if (nc->head_seq > last) {
		snprintf(nc->failure, sizeof(nc->failure),
		         "seq %" PRId64 " to %" PRId64
		         ": missing: the chain head says these rows were stored",
		         last + 1, nc->head_seq);
		note_detached(db, nc->failure, sizeof(nc->failure));
		return 1;
	}
	return 0;
}

static int audit_verify(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"since", required_argument, NULL, 's'}, {"node", required_argument, NULL, 'n'},
	    {"key", required_argument, NULL, 'k'},   {"anchor", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
	};
	const char *since = NULL, *only = NULL, *keypath = NULL, *anchor = NULL;
	char sbuf[64], path[4096];
	unsigned char pk[MF_AUDIT_PK_BYTES];
	const struct mf_config *cfg;
	struct mf_error err;
	struct mf_db *db;
	PGresult *res;
	struct ctl_verified_node *verified; /* what the chain check proved */
	size_t nverified = 0;
	int c, status = 0, nodes;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((since = time_arg("audit verify: --since", optarg, sbuf)) == NULL)
				return 2;
			break;
		case 'n':
			only = optarg;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'a':
			anchor = optarg;
			break;
		case 'h':
			audit_help(stdout);
			return 0;
		default:
			return ctl_usage("audit verify: bad option");
		}
	}
	if (optind != argc)
		return ctl_usage("audit verify: unexpected argument '%s'", argv[optind]);
	cfg = ctl_config(ctl);
	if (cfg == NULL)
		return 1;
	if (keypath == NULL) {
		snprintf(path, sizeof(path), "%s/audit-sign.pub",
		         mf_config_str(cfg, "keys", "dir"));
		keypath = path;
	}
	if (mf_crypto_init(&err) < 0 ||
	    mf_key_load(keypath, MF_KEY_PUBLIC, pk, sizeof(pk), &err) < 0)
		return ctl_fail("%s", err.msg);
	db = ctl_db(ctl);
	if (db == NULL)
		return 1;
	{
		const char *params[1] = {only};

		res = mf_db_exec(db,
		                 "SELECT node FROM (SELECT node FROM mailfort.audit_heads UNION "
		                 "SELECT node FROM mailfort.audit_checkpoints) n "
		                 "WHERE $1::text IS NULL OR node = $1 ORDER BY node",
		                 1, params, &err);
	}
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	nodes = PQntuples(res);
	verified = calloc((size_t)nodes + 1, sizeof(*verified));
	if (verified == NULL)
		abort();
	for (int i = 0; i < nodes; i++) {
		struct node_check nc;
		int r;

		memset(&nc, 0, sizeof(nc));
		nc.node = PQgetvalue(res, i, 0);
		nc.pk = pk;
		r = verify_node(db, &nc, since, &err);
		if (r < 0) {
			status = ctl_fail("node %s: %s", nc.node, err.msg);
		} else if (r > 0) {
			printf("FAIL node %s %s\n", nc.node, nc.failure);
			status = 1;
		} else {
			int64_t unsigned_rows =
			    nc.nckpts > 0 ? nc.last_seq - nc.ckpts[nc.nckpts - 1].seq : nc.rows;

			snprintf(verified[nverified].node, sizeof(verified[nverified].node), "%s",
			         nc.node);
			verified[nverified++].retired_upto = nc.retired_upto;
			printf("node %s: %" PRId64 " events verified up to seq %" PRId64
			       ", %" PRId64 " checkpoints match",
			       nc.node, nc.rows, nc.last_seq, nc.verified_ckpts);
			if (nc.retired_rows > 0)
				printf("; %" PRId64 " older events retired (signed retirements "
				       "up to seq %" PRId64 ")",
				       nc.retired_rows, nc.retired_upto);
			if (nc.quarantined > 0)
				printf("; %d quarantined records match their digests",
				       nc.quarantined);
			if (unsigned_rows > 0)
				printf("; %" PRId64
				       " newest events not yet covered by a checkpoint",
				       unsigned_rows);
			putchar('\n');
		}
		free(nc.ckpts);
		free(nc.retired);
		if (status != 0)
			break;
	}
	PQclear(res);
	/* A trail cut off at its end still verifies as a chain: only the
	   heads published outside the database show what is missing. */
	if (anchor != NULL) {
		int rc = ctl_anchor_verify(db, anchor, pk, only, verified, nverified, &err);

		if (rc < 0) {
			free(verified);
			return ctl_fail("%s", err.msg);
		}
		if (rc > 0)
			status = 1;
	}
	free(verified);
	if (status == 0)
		puts(nodes == 0 ? "OK (the audit trail is empty)" : "OK");
	return status;
}

int ctl_audit_cmd(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 1 || ctl_is_help(argv[0])) {
		audit_help(argc < 1 ? stderr : stdout);
		return argc < 1 ? 2 : 0;
	}
	if (strcmp(argv[0], "search") == 0)
		return audit_search(ctl, argc, argv);
	if (strcmp(argv[0], "verify") == 0)
		return audit_verify(ctl, argc, argv);
	if (strcmp(argv[0], "retire") == 0)
		return ctl_audit_retire(ctl, argc, argv);
	if (strcmp(argv[0], "anchor") == 0)
		return ctl_audit_anchor_cmd(ctl, argc, argv);
	return ctl_usage("audit: unknown command '%s'", argv[0]);
}
