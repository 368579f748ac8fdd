/*
 * ctl-db.c - mailfortctl db: create and upgrade the database schema.
 *
 * SYNOPSIS
 *   mailfortctl db migrate     apply every migration not applied yet
 *   mailfortctl db status      connection, server version, applied/pending
 *
 * The migrations are the files of sql/migrations, compiled in (see
 * ctl-migrations.h).  migrate holds a session advisory lock for its whole
 * run, so two concurrent runs apply each file once; it first checks that
 * every file already applied still has the checksum recorded then (an edited
 * migration is an error, nothing is applied), then runs each pending file
 * in name order in its own transaction and records it in
 * mailfort.schema_migrations with its SHA-256.  A failing file is rolled
 * back and reported with its name, the line of the failing statement (the
 * server's position, or the statement's first line) and the server's message.
 *
 * Exit status: 0 success, 1 failure (one line on stderr), 2 usage.
 */
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctl-migrations.h"
#include "ctl.h"
#include "mf-db.h"

/* pg_advisory_lock key: "mailfort" in ASCII. */
#define MIGRATE_LOCK_KEY   "7881706620593426036"
#define MIN_SERVER_VERSION 130000
#define CHECKSUM_HEX       (crypto_hash_sha256_BYTES * 2 + 1)

struct applied {
	char **names;
	char **sums;
	char **times;
	int n;
};

static void usage(FILE *out)
{
	fputs("usage: mailfortctl db COMMAND\n\n"
	      "commands:\n"
	      "  migrate   apply the schema migrations not applied yet (idempotent)\n"
	      "  status    show the connection, server version and applied/pending migrations\n\n"
	      "migrate needs a PostgreSQL superuser, or a role with CREATEROLE that is a\n"
	      "member of mailfort_owner, in [database] conninfo.\n",
	      out);
}

static void checksum_hex(const struct ctl_migration *m, char out[CHECKSUM_HEX])
{
	unsigned char sum[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(sum, (const unsigned char *)m->sql, m->len);
	sodium_bin2hex(out, CHECKSUM_HEX, sum, sizeof(sum));
}

static void applied_free(struct applied *a)
{
	int i;

	for (i = 0; i < a->n; i++) {
		free(a->names[i]);
		free(a->sums[i]);
		free(a->times[i]);
	}
	free(a->names);
	free(a->sums);
	free(a->times);
	memset(a, 0, sizeof(*a));
}

/* Read mailfort.schema_migrations (empty when the table does not exist). */
static int applied_load(struct mf_db *db, struct applied *a)
{
	struct mf_error err;
	PGresult *res;
	int i, n;

	memset(a, 0, sizeof(*a));
	res = mf_db_exec(db, "SELECT to_regclass('mailfort.schema_migrations') IS NOT NULL", 0,
	                 NULL, &err);
	if (res == NULL) {
		ctl_fail("%s", err.msg);
		return -1;
	}
	n = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!n)
		return 0;
	res = mf_db_exec(db,
	                 "SELECT name, checksum, to_char(applied_at AT TIME ZONE 'UTC', "
	                 "'YYYY-MM-DD HH24:MI:SS') || 'Z' FROM mailfort.schema_migrations "
	                 "ORDER BY name COLLATE \"C\"",
	                 0, NULL, &err);
	if (res == NULL) {
		ctl_fail("%s", err.msg);
		return -1;
	}
	n = PQntuples(res);
	a->names = calloc((size_t)n + 1, sizeof(char *));
	a->sums = calloc((size_t)n + 1, sizeof(char *));
	a->times = calloc((size_t)n + 1, sizeof(char *));
	if (a->names == NULL || a->sums == NULL || a->times == NULL) {
		PQclear(res);
		applied_free(a);
		ctl_fail("out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		a->names[i] = strdup(PQgetvalue(res, i, 0));
		a->sums[i] = strdup(PQgetvalue(res, i, 1));
		a->times[i] = strdup(PQgetvalue(res, i, 2));
		a->n = i + 1;
		if (a->names[i] == NULL || a->sums[i] == NULL || a->times[i] == NULL) {
			PQclear(res);
			applied_free(a);
			ctl_fail("out of memory");
			return -1;
		}
	}
	PQclear(res);
	return 0;
}

/* Index of name in the applied list, or -1. */
static int applied_find(const struct applied *a, const char *name)
{
	int i;

	for (i = 0; i < a->n; i++) {
		if (strcmp(a->names[i], name) == 0)
			return i;
	}
	return -1;
}

static bool compiled_in(const char *name)
{
	size_t i;

	for (i = 0; i < ctl_migrations_count; i++) {
		if (strcmp(ctl_migrations[i].name, name) == 0)
			return true;
	}
	return false;
}

/* Line number of a 1-based character position in text (0 if unknown). */
static int line_of(const char *text, size_t len, const char *pos_str)
{
	long pos = pos_str != NULL ? strtol(pos_str, NULL, 10) : 0;
	long chars = 0;
	size_t i;
	int line = 1;

	if (pos <= 0)
		return 0;
	/* The server counts characters, not bytes: skip UTF-8 continuations. */
	for (i = 0; i < len; i++) {
		if (((unsigned char)text[i] & 0xc0) != 0x80 && ++chars >= pos)
			return line;
		if (text[i] == '\n')
			line++;
	}
	return line;
}

static bool ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || (unsigned char)c >= 0x80;
}

/* Line where statement number n (0-based, empty statements not counted)
   of a SQL text starts, or 0.  It knows comments, quoted strings and
   identifiers, E'' escapes and dollar quoting; it is used only to point at
   the statement a server error without a position came from, so a construct
   it does not know can only give a wrong line number, never change what is
   executed. */
static int statement_line(const char *s, size_t len, unsigned n)
{
	unsigned stmt = 0;
	bool content = false;
	int line = 1, depth;
	size_t i = 0, j, tag;

	while (i < len) {
		char c = s[i];

		if (c == '\n') {
			line++;
			i++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && s[i + 1] == '-') {
			while (i < len && s[i] != '\n')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			for (depth = 1, i += 2; i < len && depth > 0; i++) {
				if (s[i] == '\n')
					line++;
				else if (s[i] == '/' && i + 1 < len && s[i + 1] == '*')
					depth++, i++;
				else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/')
					depth--, i++;
			}
			continue;
		}
		if (c == ';') {
			if (content)
				stmt++;
			content = false;
			i++;
			continue;
		}
		if (!content) {
			content = true;
			if (stmt == n)
				return line;
		}
		if (c == '\'' || c == '"') {
			bool esc = c == '\'' && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
			           (i < 2 || !ident_char(s[i - 2]));

			for (i++; i < len && s[i] != c; i++) {
				if (s[i] == '\n')
					line++;
				else if (esc && s[i] == '\\' && i + 1 < len && s[i + 1] != '\n')
					i++;
			}
			i++; /* closing quote; a doubled quote just reopens */
			continue;
		}
		if (c == '$' && (i == 0 || !ident_char(s[i - 1]))) {
			for (j = i + 1; j < len && ident_char(s[j]) &&
			                !(s[j] >= '0' && s[j] <= '9' && j == i + 1);
			     j++)
				;
			if (j < len && s[j] == '$') {
				tag = j - i + 1; /* "$tag$" */
				for (j++; j + tag <= len && memcmp(s + j, s + i, tag) != 0; j++)
					if (s[j] == '\n')
						line++;
				i = j + tag;
				continue;
			}
		}
		i++;
	}
	return 0;
}

static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Run one migration file in its own transaction and record it. */
static int apply_one(struct mf_db *db, const struct ctl_migration *m, const char *sum)
{
	const char *params[2] = {m->name, sum};
	struct mf_error err;
	PGconn *conn;
	PGresult *res, *failed = NULL;
	ExecStatusType st;
	unsigned done = 0;
	int line;

	if (mf_db_begin(db, &err) < 0)
		return ctl_fail("migration %s: %s", m->name, err.msg);
	conn = mf_db_conn(db);
	if (conn == NULL) {
		mf_db_rollback(db);
		return ctl_fail("migration %s: database connection lost", m->name);
	}
	/* A migration file is trusted, static SQL made of several statements:
	   it is sent with the simple query protocol and has no parameters.  The
	   server answers each statement in turn and stops at the first error. */
	if (!PQsendQuery(conn, m->sql)) {
		ctl_fail("migration %s: %s", m->name, PQerrorMessage(conn));
		mf_db_rollback(db);
		return 1;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			done++;
			PQclear(res);
		} else if (failed == NULL) {
			failed = res;
		} else {
			PQclear(res);
		}
	}
	if (failed != NULL) {
		const char *msg = PQresultErrorField(failed, PG_DIAG_MESSAGE_PRIMARY);

		line =
		    line_of(m->sql, m->len, PQresultErrorField(failed, PG_DIAG_STATEMENT_POSITION));
		if (line == 0)
			line = statement_line(m->sql, m->len, done);
		if (msg == NULL)
			msg = PQerrorMessage(conn);
		if (line > 0)
			ctl_fail("migration %s failed at line %d: %s", m->name, line, msg);
		else
			ctl_fail("migration %s failed: %s", m->name, msg);
		PQclear(failed);
		mf_db_rollback(db);
		return 1;
	}
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		mf_db_rollback(db);
		return ctl_fail("migration %s ends the transaction itself (no BEGIN/COMMIT in "
		                "migration files)",
		                m->name);
	}
	if (mf_db_command(db,
	                  "INSERT INTO mailfort.schema_migrations (name, checksum) VALUES ($1, $2)",
	                  2, params, &err) < 0) {
		mf_db_rollback(db);
		return ctl_fail("migration %s: cannot record it: %s", m->name, err.msg);
	}
	if (mf_db_commit(db, &err) < 0)
		return ctl_fail("migration %s: %s", m->name, err.msg);
	if (mf_db_command(db, "RESET ROLE", 0, NULL, &err) < 0)
		return ctl_fail("%s", err.msg);
	return 0;
}

static int lock_migrations(struct mf_db *db, struct ctl *ctl)
{
	struct mf_error err;
	PGresult *res;
	bool got;

	res = mf_db_exec(db, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (got)
		return 0;
	if (!ctl->quiet)
		printf("waiting for another 'mailfortctl db migrate' to finish...\n");
	fflush(stdout);
	if (mf_db_command(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, &err) < 0)
		return ctl_fail("%s", err.msg);
	return 0;
}

static int cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
	char sum[CHECKSUM_HEX];
	struct applied a;
	struct mf_error err;
	struct mf_db *db;
	size_t i, done = 0;
	int j, ret = 0;

	if (argc > 0 && ctl_is_help(argv[0])) {
		printf("usage: mailfortctl db migrate\n\n"
		       "Apply, in name order and each in its own transaction, every migration\n"
		       "compiled into this mailfortctl (%zu files) that the database has not\n"
		       "applied yet.  Refuses to run when an applied file has changed since.\n",
		       ctl_migrations_count);
		return 0;
	}
	if (argc > 0)
		return ctl_usage("db migrate: unexpected argument '%s'", argv[0]);
	if ((db = ctl_db(ctl)) == NULL)
		return 1;
	if (mf_db_conn(db) != NULL)
		PQsetNoticeProcessor(mf_db_conn(db), quiet_notices, NULL);
	/* Migrations may legitimately run long (an index on a big table). */
	if (mf_db_command(db, "SET statement_timeout = 0", 0, NULL, &err) < 0)
		return ctl_fail("%s", err.msg);
	/* Row triggers on partitioned tables (the audit trail) need 13. */
	if (mf_db_conn(db) != NULL && PQserverVersion(mf_db_conn(db)) < MIN_SERVER_VERSION)
		return ctl_fail("PostgreSQL %d.%d is too old: the schema needs %d or later",
		                PQserverVersion(mf_db_conn(db)) / 10000,
		                PQserverVersion(mf_db_conn(db)) % 10000 / 100,
		                MIN_SERVER_VERSION / 10000);
	if (lock_migrations(db, ctl) != 0)
		return 1;
	if (applied_load(db, &a) < 0)
		return 1;
	/* Verify everything before changing anything. */
	for (i = 0; i < ctl_migrations_count; i++) {
		j = applied_find(&a, ctl_migrations[i].name);
		if (j < 0)
			continue;
		checksum_hex(&ctl_migrations[i], sum);
		if (strcmp(sum, a.sums[j]) != 0) {
			ret = ctl_fail("migration %s was changed after it was applied on %s "
			               "(recorded sha256 %.12s..., this file %.12s...); add a new "
			               "migration instead of editing an applied one",
			               ctl_migrations[i].name, a.times[j], a.sums[j], sum);
			goto out;
		}
	}
	for (j = 0; j < a.n; j++) {
		if (!compiled_in(a.names[j]))
			fprintf(stderr,
			        "mailfortctl: warning: the database has migration %s, which this "
			        "mailfortctl does not know (a newer version applied it?)\n",
			        a.names[j]);
	}
	for (i = 0; i < ctl_migrations_count; i++) {
		if (applied_find(&a, ctl_migrations[i].name) >= 0)
			continue;
		checksum_hex(&ctl_migrations[i], sum);
		if ((ret = apply_one(db, &ctl_migrations[i], sum)) != 0)
			goto out;
		done++;
		if (!ctl->quiet)
			printf("applied %s\n", ctl_migrations[i].name);
	}
	if (!ctl->quiet) {
		if (done == 0)
			printf("nothing to apply: all %zu migrations are applied\n",
			       ctl_migrations_count);
		else
			printf("%zu migration%s applied\n", done, done == 1 ? "" : "s");
	}
out:
	applied_free(&a);
	/* The lock ends with the session anyway; release it politely. */
	if (mf_db_command(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, &err) <
	        0 &&
	    ret == 0)
		ret = ctl_fail("%s", err.msg);
	return ret;
}

/* The last monthly audit partition, and a warning when next month has none
   (mailfort-auditd creates them ahead with mailfort.ensure_partitions). */
static int partitions_status(struct mf_db *db)
{
	struct mf_error err;
	PGresult *res;

	res =
	    mf_db_exec(db,
	               "SELECT replace(substr(max(c.relname), 14), '_', '-'), "
	               " coalesce(max(c.relname) >= 'audit_events_' || to_char(date_trunc('month', "
	               "  now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM'), false) "
	               "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
	               "WHERE i.inhparent = to_regclass('mailfort.audit_events') "
	               " AND c.relname ~ '^audit_events_[0-9]{4}_[0-9]{2}$'",
	               0, NULL, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (!PQgetisnull(res, 0, 0)) {
		printf("audit:     monthly partitions up to %s\n", PQgetvalue(res, 0, 0));
		if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
			printf("  WARNING  no partition for next month yet: events will go to the "
			       "default partition\n"
			       "           (mailfort-auditd creates them; or run SELECT "
			       "mailfort.ensure_partitions(3))\n");
	}
	PQclear(res);
	return 0;
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	char sum[CHECKSUM_HEX];
	struct applied a;
	struct mf_error err;
	struct mf_db *db;
	PGconn *conn;
	PGresult *res;
	size_t i, pending = 0, changed = 0;
	int j;

	if (argc > 0 && ctl_is_help(argv[0])) {
		printf("usage: mailfortctl db status\n\n"
		       "Show where mailfortctl connects (never the password), the server\n"
		       "version, and each migration: applied (with its date), pending, changed\n"
		       "since it was applied, or unknown to this mailfortctl.  Exits 1 when an\n"
		       "applied migration has changed.\n");
		return 0;
	}
	if (argc > 0)
		return ctl_usage("db status: unexpected argument '%s'", argv[0]);
	if ((db = ctl_db(ctl)) == NULL)
		return 1;
	if ((conn = mf_db_conn(db)) == NULL)
		return ctl_fail("database connection lost");
	res =
	    mf_db_exec(db, "SELECT current_setting('server_version'), current_user", 0, NULL, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	printf("database:  host=%s port=%s dbname=%s user=%s\n",
	       PQhost(conn) != NULL && *PQhost(conn) != '\0' ? PQhost(conn) : "(default)",
	       PQport(conn), PQdb(conn), PQuser(conn));
	printf("server:    PostgreSQL %s (connected as %s)\n", PQgetvalue(res, 0, 0),
	       PQgetvalue(res, 0, 1));
	PQclear(res);
	if (applied_load(db, &a) < 0)
		return 1;
	for (i = 0; i < ctl_migrations_count; i++)
		if (applied_find(&a, ctl_migrations[i].name) < 0)
			pending++;
	printf("schema:    %d applied, %zu pending\n", a.n, pending);
	for (i = 0; i < ctl_migrations_count; i++) {
		j = applied_find(&a, ctl_migrations[i].name);
		if (j < 0) {
			printf("  pending  %s\n", ctl_migrations[i].name);
			continue;
		}
		checksum_hex(&ctl_migrations[i], sum);
		if (strcmp(sum, a.sums[j]) != 0) {
			printf("  CHANGED  %-32s applied %s, the file differs since\n",
			       ctl_migrations[i].name, a.times[j]);
			changed++;
		} else {
			printf("  applied  %-32s %s\n", ctl_migrations[i].name, a.times[j]);
		}
	}
	for (j = 0; j < a.n; j++) {
		if (!compiled_in(a.names[j])) {
			printf("  unknown  %-32s applied %s, not in this mailfortctl\n", a.names[j],
			       a.times[j]);
		}
	}
	applied_free(&a);
	if (partitions_status(db) != 0)
		return 1;
	if (changed > 0)
		return ctl_fail("%zu applied migration%s changed since", changed,
		                changed == 1 ? " has" : "s have");
	return 0;
}

int ctl_db_cmd(struct ctl *ctl, int argc, char **argv)
{
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	if (ctl_is_help(argv[0])) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[0], "migrate") == 0)
		return cmd_migrate(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "status") == 0)
		return cmd_status(ctl, argc - 1, argv + 1);
	return ctl_usage("unknown db command '%s'", argv[0]);
}
