/*
 * db.c - a small, strict wrapper around libpq (see mf-db.h).
 *
 * mf_db_open connects with PQconnectdbParams: the configured conninfo is
 * expanded first, then connect_timeout and application_name are given as
 * later keywords, so they override whatever the conninfo says.  Once
 * connected, statement_timeout is set for the session with a parameterized
 * set_config().  Server notices go to mf_log, never to stderr.
 *
 * Before each statement the connection is checked without blocking (input
 * the server sent while we were idle is read, so a backend that was
 * terminated or a server that restarted is noticed).  A broken connection
 * outside a transaction is replaced by a new one, once per call.  Inside a
 * transaction it is not: the transaction is gone with the connection, so
 * every statement fails ("connection lost inside a transaction") until the
 * caller ends it with mf_db_rollback or mf_db_commit.  A statement that
 * failed is never run a second time.  A connection lost during COMMIT is
 * reported as such: the transaction may have been committed or not.
 *
 * Errors are one line: "database: cannot connect: <libpq's reason>",
 * "database: query failed: ERROR: <primary message> (SQLSTATE xxxxx)" or
 * "database: connection lost: <first line of libpq's reason>"; the SQLSTATE
 * of the last failure is kept for mf_db_sqlstate ("08006" for a lost
 * connection).
 * DETAIL lines are left out because they can quote row values, and for
 * data exceptions (class 22) the part after the first ": " is dropped
 * because it quotes the offending parameter.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "mf-config.h"
#include "mf-db.h"
#include "mf-log.h"

struct mf_db {
	PGconn *conn;
	char *conninfo;
	char *application_name;
	int connect_timeout;
	int statement_timeout_ms;
	/* the connection was inside a transaction when last seen healthy */
	bool in_txn;
	/* the server sent FATAL while we were idle: the session is over even
	   if the socket has not been seen closed yet */
	bool server_fatal;
	char sqlstate[6];
};

/* Copy msg into buf as one line: newlines and tabs become single spaces,
   trailing white space is dropped. */
static void one_line(char *buf, size_t size, const char *msg)
{
	size_t o = 0;
	bool space = false;

	if (msg == NULL)
		msg = "";
	for (; *msg != '\0' && o + 1 < size; msg++) {
		unsigned char c = (unsigned char)*msg;

		if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < size)
			buf[o++] = ' ';
		space = false;
		buf[o++] = c < 0x20 ? '?' : (char)c;
	}
	buf[o] = '\0';
}

/* The first line of a libpq message, trimmed: the FATAL that ended a
   session, or "server closed the connection unexpectedly". */
static void first_line(char *buf, size_t size, const char *msg)
{
	char tmp[MF_ERROR_MAX];
	size_t n;

	if (msg == NULL)
		msg = "";
	n = strcspn(msg, "\n");
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	memcpy(tmp, msg, n);
	tmp[n] = '\0';
	one_line(buf, size, tmp);
}

static void notice_receiver(void *arg, const PGresult *res)
{
	struct mf_db *db = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char line[MF_ERROR_MAX];

	if (severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0))
		db->server_fatal = true;
	one_line(line, sizeof(line), primary != NULL ? primary : PQresultErrorMessage(res));
	if (severity != NULL && (strcmp(severity, "WARNING") == 0 ||
	                         strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0))
		mf_log_warn("database: %s: %s", severity, line);
	else
		mf_log_debug("database: %s: %s", severity != NULL ? severity : "NOTICE", line);
}

static int db_connect(struct mf_db *db, struct mf_error *err)
{
	const char *keywords[4], *values[4];
	char timeout[32];
	int n = 0;

	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	db->in_txn = false;
	db->server_fatal = false;
	/* a bare word is a database name; anything else must parse */
	if (strchr(db->conninfo, '=') != NULL || strncmp(db->conninfo, "postgresql://", 13) == 0 ||
	    strncmp(db->conninfo, "postgres://", 11) == 0) {
		char *why = NULL;
		PQconninfoOption *opts = PQconninfoParse(db->conninfo, &why);

		/* libpq's reason quotes the string, which may hold a password */
		PQfreemem(why);
		if (opts == NULL)
			return mf_error_set(err, "database: cannot connect: the connection string "
			                         "is not valid (see libpq's connection strings)");
		PQconninfoFree(opts);
	}
	snprintf(timeout, sizeof(timeout), "%d", db->connect_timeout);
	keywords[n] = "dbname";
	values[n++] = db->conninfo;
	keywords[n] = "connect_timeout";
	values[n++] = timeout;
	if (db->application_name != NULL) {
		keywords[n] = "application_name";
		values[n++] = db->application_name;
	}
	keywords[n] = NULL;
	values[n] = NULL;

	db->conn = PQconnectdbParams(keywords, values, 1);
	if (db->conn == NULL) {
		mf_error_set(err, "database: cannot connect: out of memory");
		return -1;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		char line[MF_ERROR_MAX];

		one_line(line, sizeof(line), PQerrorMessage(db->conn));
		mf_error_set(err, "database: cannot connect: %s",
		             line[0] != '\0' ? line : "unknown reason");
		PQfinish(db->conn);
		db->conn = NULL;
		return -1;
	}
	PQsetNoticeReceiver(db->conn, notice_receiver, db);

	if (db->statement_timeout_ms > 0) {
		char ms[32];
		const char *params[1] = {ms};
		PGresult *res;

		snprintf(ms, sizeof(ms), "%d", db->statement_timeout_ms);
		res = PQexecParams(db->conn, "SELECT set_config('statement_timeout', $1, false)", 1,
		                   NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			char line[MF_ERROR_MAX];

			one_line(line, sizeof(line),
			         res != NULL ? PQresultErrorMessage(res)
			                     : PQerrorMessage(db->conn));
			mf_error_set(err, "database: cannot set statement_timeout: %s", line);
			PQclear(res);
			PQfinish(db->conn);
			db->conn = NULL;
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

void mf_db_settings_from_config(struct mf_db_settings *set, const struct mf_config *cfg,
                                const char *application_name)
{
	int64_t ct = mf_config_int(cfg, "database", "connect_timeout");
	int64_t st = mf_config_int(cfg, "database", "statement_timeout");

	memset(set, 0, sizeof(*set));
	set->conninfo = mf_config_str(cfg, "database", "conninfo");
	set->connect_timeout = ct >= 1 && ct <= 3600 ? (int)ct : 3;
	set->statement_timeout_ms = st >= 0 && st <= 86400 ? (int)(st * 1000) : 0;
	set->application_name = application_name;
}

static void db_free(struct mf_db *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	if (db->conninfo != NULL) {
		/* the connection string may hold a password */
		sodium_memzero(db->conninfo, strlen(db->conninfo));
		free(db->conninfo);
	}
	free(db->application_name);
	free(db);
}

struct mf_db *mf_db_open(const struct mf_db_settings *set, struct mf_error *err)
{
	struct mf_db *db;

	if (set == NULL || set->conninfo == NULL) {
		mf_error_set(err, "database: no connection string configured");
		return NULL;
	}
	if (set->connect_timeout < 1) {
		mf_error_set(err, "database: connect_timeout must be at least 1 second");
		return NULL;
	}
	if (set->statement_timeout_ms < 0) {
		mf_error_set(err, "database: statement_timeout must not be negative");
		return NULL;
	}
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		mf_error_set(err, "database: out of memory");
		return NULL;
	}
	db->conninfo = strdup(set->conninfo);
	db->application_name = set->application_name != NULL ? strdup(set->application_name) : NULL;
	db->connect_timeout = set->connect_timeout;
	db->statement_timeout_ms = set->statement_timeout_ms;
	if (db->conninfo == NULL ||
	    (set->application_name != NULL && db->application_name == NULL)) {
		mf_error_set(err, "database: out of memory");
		db_free(db);
		return NULL;
	}
	if (db_connect(db, err) < 0) {
		db_free(db);
		return NULL;
	}
	return db;
}

void mf_db_close(struct mf_db **dbp)
{
	struct mf_db *db = *dbp;

	if (db == NULL)
		return;
	*dbp = NULL;
	db_free(db);
}

/* Read whatever the server sent while we were idle (a FATAL before it went
   away, then end of file), so a dead connection shows as CONNECTION_BAD. */
static void db_poll_idle(struct mf_db *db)
{
	for (int i = 0; i < 4 && PQstatus(db->conn) == CONNECTION_OK; i++) {
		struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};

		if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0)
			break;
		if (PQconsumeInput(db->conn) == 0)
			break;
		/* PQconsumeInput only reads: parsing delivers the FATAL notice */
		(void)PQisBusy(db->conn);
	}
}

static void db_note_txn(struct mf_db *db)
{
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK) {
		PGTransactionStatusType ts = PQtransactionStatus(db->conn);

		db->in_txn = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
	}
}

int mf_db_ensure(struct mf_db *db, struct mf_error *err)
{
	if (db == NULL)
		return mf_error_set(err, "database: not open");
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK) {
		if (!db->in_txn)
			db_poll_idle(db);
		if (PQstatus(db->conn) == CONNECTION_OK && !db->server_fatal) {
			db_note_txn(db);
			return 0;
		}
	}
	if (db->in_txn) {
		strcpy(db->sqlstate, "08006");
		return mf_error_set(err, "database: connection lost inside a transaction; "
		                         "the transaction was rolled back");
	}
	if (db->conn != NULL)
		mf_log_info("database: connection lost, reconnecting");
	return db_connect(db, err);
}

PGconn *mf_db_conn(struct mf_db *db)
{
	if (db == NULL || db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return NULL;
	return db->conn;
}

const char *mf_db_sqlstate(const struct mf_db *db)
{
	return db != NULL ? db->sqlstate : "";
}

/* Leave a COPY that a statement started by mistake, so the connection
   stays usable: abort COPY IN, drain COPY OUT, then read the results. */
static void db_end_copy(struct mf_db *db, ExecStatusType st)
{
	PGresult *res;

	if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
		(void)PQputCopyEnd(db->conn, "COPY is not supported here");
	} else {
		char *buf = NULL;

		while (PQgetCopyData(db->conn, &buf, 0) > 0) {
			PQfreemem(buf);
			buf = NULL;
		}
	}
	while ((res = PQgetResult(db->conn)) != NULL)
		PQclear(res);
}

/* Turn a failed result into err. */
static void db_result_error(struct mf_db *db, const PGresult *res, struct mf_error *err)
{
	char line[MF_ERROR_MAX];
	const char *state = NULL, *severity = NULL, *primary = NULL;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		strcpy(db->sqlstate, "08006");
		first_line(line, sizeof(line), PQerrorMessage(db->conn));
		mf_error_set(err, "database: connection lost: %s",
		             line[0] != '\0' ? line : "no reason given");
		return;
	}
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state != NULL ? state : "");
	if (primary == NULL) {
		one_line(line, sizeof(line),
		         res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
		if (line[0] == '\0' && res != NULL)
			snprintf(line, sizeof(line), "unexpected result %s",
			         PQresStatus(PQresultStatus(res)));
		mf_error_set(err, "database: query failed: %s",
		             line[0] != '\0' ? line : "no result");
		return;
	}
	one_line(line, sizeof(line), primary);
	if (state != NULL && strncmp(state, "22", 2) == 0) {
		char *colon = strstr(line, ": ");

		if (colon != NULL)
			*colon = '\0';
	}
	mf_error_set(err, "database: query failed: %s: %s (SQLSTATE %s)",
	             severity != NULL ? severity : "ERROR", line, state != NULL ? state : "?????");
}

PGresult *mf_db_exec_bin(struct mf_db *db, const char *sql, int nparams, const char *const *values,
                         const int *lengths, const int *formats, int result_format,
                         struct mf_error *err)
{
	PGresult *res;
	ExecStatusType st;

	if (db == NULL || sql == NULL || nparams < 0 || (nparams > 0 && values == NULL)) {
		mf_error_set(err, "database: bad arguments to a query");
		return NULL;
	}
	db->sqlstate[0] = '\0';
	if (mf_db_ensure(db, err) < 0)
		return NULL;
	res = PQexecParams(db->conn, sql, nparams, NULL, values, lengths, formats, result_format);
	st = PQresultStatus(res);
	if (res != NULL && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
		db_note_txn(db);
		return res;
	}
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
		PQclear(res);
		db_end_copy(db, st);
		db_note_txn(db);
		strcpy(db->sqlstate, "0A000");
		mf_error_set(err, "database: COPY through mf_db_exec is not supported "
		                  "(use mf_db_conn)");
		return NULL;
	}
	db_result_error(db, res, err);
	PQclear(res);
	db_note_txn(db);
	return NULL;
}

PGresult *mf_db_exec(struct mf_db *db, const char *sql, int nparams, const char *const *params,
                     struct mf_error *err)
{
	return mf_db_exec_bin(db, sql, nparams, params, NULL, NULL, 0, err);
}

int mf_db_command(struct mf_db *db, const char *sql, int nparams, const char *const *params,
                  struct mf_error *err)
{
	PGresult *res = mf_db_exec(db, sql, nparams, params, err);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int mf_db_begin(struct mf_db *db, struct mf_error *err)
{
	if (db != NULL)
		db_note_txn(db);
	if (db != NULL && db->in_txn && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return mf_error_set(err, "database: a transaction is already open");
	return mf_db_command(db, "BEGIN", 0, NULL, err);
}

int mf_db_commit(struct mf_db *db, struct mf_error *err)
{
	PGresult *res;
	int ret = 0;

	if (db == NULL)
		return mf_error_set(err, "database: not open");
	db_note_txn(db);
	if (!db->in_txn)
		return mf_error_set(err, "database: commit without a transaction");
	if (mf_db_ensure(db, err) < 0) {
		/* the connection went first: certainly rolled back */
		db->in_txn = false;
		return -1;
	}
	res = mf_db_exec(db, "COMMIT", 0, NULL, err);
	if (res == NULL) {
		if (strcmp(db->sqlstate, "08006") == 0) {
			char line[MF_ERROR_MAX];

			first_line(line, sizeof(line), PQerrorMessage(db->conn));
			mf_error_set(err,
			             "database: connection lost during COMMIT, the transaction may "
			             "or may not have been committed: %s",
			             line[0] != '\0' ? line : "no reason given");
		}
		ret = -1;
	} else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		/* COMMIT of a failed transaction "succeeds" as ROLLBACK */
		strcpy(db->sqlstate, "40000");
		ret = mf_error_set(err, "database: transaction was rolled back after an error");
	}
	PQclear(res);
	/* whatever happened, the transaction is over */
	db->in_txn = false;
	return ret;
}

void mf_db_rollback(struct mf_db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK &&
	    PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
		PGresult *res = PQexec(db->conn, "ROLLBACK");

		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char line[MF_ERROR_MAX];

			one_line(line, sizeof(line), PQerrorMessage(db->conn));
			mf_log_warn("database: rollback failed: %s", line);
		}
		PQclear(res);
	}
	db->in_txn = false;
}

char *mf_db_escape_bytea(const unsigned char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char *out;

	if (len > (SIZE_MAX - 3) / 2)
		return NULL;
	out = malloc(2 * len + 3);
	if (out == NULL)
		return NULL;
	out[0] = '\\';
	out[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		out[2 + 2 * i] = hex[data[i] >> 4];
		out[3 + 2 * i] = hex[data[i] & 0x0f];
	}
	out[2 + 2 * len] = '\0';
	return out;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

unsigned char *mf_db_unescape_bytea(const char *text, size_t *len_r)
{
	unsigned char *out;
	size_t hexlen;

	if (text == NULL || text[0] != '\\' || text[1] != 'x')
		return NULL;
	text += 2;
	hexlen = strlen(text);
	if (hexlen % 2 != 0)
		return NULL;
	out = malloc(hexlen / 2 + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < hexlen / 2; i++) {
		int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len_r = hexlen / 2;
	return out;
}
