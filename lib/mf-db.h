/*
 * mf-db.h - a small, strict wrapper around libpq.
 *
 * Only parameterized statements: there is no call that takes SQL with values
 * pasted in.  Connecting honours a timeout (connect_timeout in the conninfo
 * is forced to the configured value) and every statement runs with a
 * statement_timeout, so a dead or hung server turns into an error within a
 * known time instead of a hang.  When the connection is found broken, the
 * next call reconnects once before giving up.
 *
 * mf_db_exec returns a PGresult the caller frees with PQclear(), or NULL with
 * err set ("database: query failed: ERROR: ... (SQLSTATE 42P01)" /
 * "database: cannot connect: connection to server at ... failed: timeout
 * expired" / "database: connection lost: ...").  Error text comes from the
 * server or libpq and never contains parameter values.  A struct mf_db is not thread-safe: use
 * one per thread or lock around it.
 */
#ifndef MF_DB_H
#define MF_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include "mf-common.h"

struct mf_config;
struct mf_db;

struct mf_db_settings {
	const char *conninfo;         /* libpq connection string or URI */
	int connect_timeout;          /* seconds, >= 1 */
	int statement_timeout_ms;     /* 0 = server default */
	const char *application_name; /* shown in pg_stat_activity */
};

/* Fill settings from the [database] section.  The strings point into cfg
   (keep it until mf_db_open, which copies them). */
void mf_db_settings_from_config(struct mf_db_settings *set, const struct mf_config *cfg,
                                const char *application_name);

/* Connect now. NULL with err set on failure. */
struct mf_db *mf_db_open(const struct mf_db_settings *set, struct mf_error *err) MF_WARN_UNUSED;
void mf_db_close(struct mf_db **db);

/* Run one statement with text parameters (params[i] may be NULL for SQL NULL).
   Succeeds on PGRES_TUPLES_OK and PGRES_COMMAND_OK. */
PGresult *mf_db_exec(struct mf_db *db, const char *sql, int nparams, const char *const *params,
                     struct mf_error *err) MF_WARN_UNUSED;
/* Same, for statements without result rows; returns 0 / -1. */
int mf_db_command(struct mf_db *db, const char *sql, int nparams, const char *const *params,
                  struct mf_error *err) MF_WARN_UNUSED;
/* Binary-safe variant: lengths[] and formats[] as for PQexecParams. */
PGresult *mf_db_exec_bin(struct mf_db *db, const char *sql, int nparams, const char *const *values,
                         const int *lengths, const int *formats, int result_format,
                         struct mf_error *err) MF_WARN_UNUSED;

int mf_db_begin(struct mf_db *db, struct mf_error *err) MF_WARN_UNUSED;
int mf_db_commit(struct mf_db *db, struct mf_error *err) MF_WARN_UNUSED;
void mf_db_rollback(struct mf_db *db);

/* Reconnect if the connection is bad; 0 when usable afterwards. */
int mf_db_ensure(struct mf_db *db, struct mf_error *err);
/* The raw connection, for COPY and pipeline mode; may be NULL if broken. */
PGconn *mf_db_conn(struct mf_db *db);
/* SQLSTATE of the last failed call ("23505", "08006" for a lost connection),
   "" after a success; lets a caller tell a unique violation from an outage. */
const char *mf_db_sqlstate(const struct mf_db *db);

/* Decode a bytea column value in text format ("\x..." hex). Returns malloc'd
   bytes and *len_r, or NULL on a malformed value. */
unsigned char *mf_db_unescape_bytea(const char *text, size_t *len_r);
/* Encode bytes as a "\x..." hex text parameter. Returns malloc'd string. */
char *mf_db_escape_bytea(const unsigned char *data, size_t len);

#endif
