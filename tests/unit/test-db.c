/*
 * test-db.c - the libpq wrapper against a real PostgreSQL.
 *
 * The parts that need no server (bytea helpers, settings from the config,
 * refusing bad settings, a closed port, a server that never answers) always
 * run.  The rest runs against the test PostgreSQL named by MF_TEST_PGHOST,
 * MF_TEST_PGPORT and MF_TEST_PGUSER (scripts/test sets them) and is skipped
 * when MF_TEST_PGHOST is not set.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "mf-config.h"
#include "mf-db.h"
#include "mf-log.h"
#include "tap.h"

static char last_log[1024];
static int log_count;

static void capture_log(enum mf_log_level level, const char *msg, void *context)
{
	(void)level;
	(void)context;
	log_count++;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A TCP socket on 127.0.0.1; listening (never accepting) or closed. */
static int loopback_port(bool listening, int *fd_r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || (listening && listen(fd, 8) < 0)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (listening)
		*fd_r = fd;
	else
		close(fd);
	return ntohs(sa.sin_port);
}

static void test_bytea(void)
{
	static const unsigned char sample[] = {0x00, 0xff, 0x10, 'a'};
	unsigned char all[256], *back;
	char *hex;
	size_t len = 99;

	hex = mf_db_escape_bytea(sample, sizeof(sample));
	ok(hex != NULL && strcmp(hex, "\\x00ff1061") == 0, "bytea: escape gives \\x hex (%s)",
	   hex != NULL ? hex : "NULL");
	free(hex);
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	hex = mf_db_escape_bytea(all, sizeof(all));
	back = hex != NULL ? mf_db_unescape_bytea(hex, &len) : NULL;
	ok(back != NULL && len == 256 && memcmp(back, all, 256) == 0,
	   "bytea: every byte value survives escape + unescape");
	free(back);
	free(hex);
	back = mf_db_unescape_bytea("\\xDEADbeef", &len);
	ok(back != NULL && len == 4 && back[0] == 0xde && back[3] == 0xef,
	   "bytea: upper and lower case hex");
	free(back);
	back = mf_db_unescape_bytea("\\x", &len);
	ok(back != NULL && len == 0, "bytea: empty value");
	free(back);
	hex = mf_db_escape_bytea(NULL, 0);
	ok(hex != NULL && strcmp(hex, "\\x") == 0, "bytea: escape of nothing");
	free(hex);
	ok(mf_db_unescape_bytea("abc", &len) == NULL, "bytea: escape format refused");
	ok(mf_db_unescape_bytea("\\x123", &len) == NULL, "bytea: odd length refused");
	ok(mf_db_unescape_bytea("\\xzz", &len) == NULL, "bytea: non-hex refused");
	ok(mf_db_unescape_bytea(NULL, &len) == NULL, "bytea: NULL refused");
}

static void test_settings(void)
{
	static const char text[] = "[database]\n"
	                           "conninfo = host=/run/pg dbname=mf\n"
	                           "connect_timeout = 7\n"
	                           "statement_timeout = 2m\n";
	struct mf_error err = {{0}};
	struct mf_config *cfg = mf_config_load_buffer("t.conf", text, strlen(text), &err);
	struct mf_db_settings set;
	struct mf_db *db;

	if (!ok(cfg != NULL, "settings: config loads (%s)", err.msg))
		return;
	mf_db_settings_from_config(&set, cfg, "mf-test");
	ok(strcmp(set.conninfo, "host=/run/pg dbname=mf") == 0, "settings: conninfo");
	ok(set.connect_timeout == 7, "settings: connect_timeout in seconds");
	ok(set.statement_timeout_ms == 120000, "settings: statement_timeout 2m = 120000 ms");
	ok(strcmp(set.application_name, "mf-test") == 0, "settings: application_name");
	mf_config_free(&cfg);

	cfg = mf_config_defaults();
	mf_db_settings_from_config(&set, cfg, NULL);
	ok(strcmp(set.conninfo, "dbname=mailfort") == 0 && set.connect_timeout == 3 &&
	       set.statement_timeout_ms == 10000,
	   "settings: defaults");
	mf_config_free(&cfg);

	set.connect_timeout = 0;
	db = mf_db_open(&set, &err);
	ok(db == NULL && strstr(err.msg, "connect_timeout") != NULL,
	   "open: connect_timeout 0 refused (%s)", err.msg);
	mf_db_close(&db);
	set.connect_timeout = 1;
	set.conninfo = "host=/nonexistent password=my secret words";
	db = mf_db_open(&set, &err);
	ok(db == NULL && strstr(err.msg, "not valid") != NULL &&
	       strstr(err.msg, "secret") == NULL && strstr(err.msg, "words") == NULL,
	   "open: a malformed conninfo is refused without quoting it (%s)", err.msg);
	mf_db_close(&db);
	set.conninfo = "postgres://u:secretpw@[::1/db";
	db = mf_db_open(&set, &err);
	ok(db == NULL && strstr(err.msg, "not valid") != NULL &&
	       strstr(err.msg, "secretpw") == NULL,
	   "open: a malformed URI is refused without quoting it (%s)", err.msg);
	mf_db_close(&db);
	set.conninfo = "postgres";
	set.connect_timeout = 2;
	db = mf_db_open(&set, &err);
	ok(strstr(err.msg, "not valid") == NULL,
	   "open: a bare word is a database name, not a malformed string (%s)", err.msg);
	mf_db_close(&db);
	set.conninfo = NULL;
	db = mf_db_open(&set, &err);
	ok(db == NULL && strstr(err.msg, "no connection string") != NULL,
	   "open: missing conninfo refused (%s)", err.msg);
	mf_db_close(&db);
}

static void test_unreachable(void)
{
	struct mf_db_settings set = {.connect_timeout = 2, .application_name = "mf-test"};
	struct mf_error err = {{0}};
	struct mf_db *db;
	char conninfo[256];
	double t0;
	int port, fd = -1;

	port = loopback_port(false, NULL);
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=x user=x", port);
	set.conninfo = conninfo;
	t0 = now();
	db = mf_db_open(&set, &err);
	ok(db == NULL && strncmp(err.msg, "database: cannot connect: ", 26) == 0 &&
	       strstr(err.msg, "refused") != NULL,
	   "closed port: clear error (%s)", err.msg);
	ok(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\t') == NULL,
	   "closed port: the message is one line");
	ok(now() - t0 < 2.0, "closed port: fails at once (%.2fs)", now() - t0);
	mf_db_close(&db);

	/* a server that accepts the TCP connection and never says a word */
	port = loopback_port(true, &fd);
	if (!ok(port > 0, "black hole: listening socket"))
		return;
	snprintf(conninfo, sizeof(conninfo),
	         "postgresql://x@127.0.0.1:%d/x?connect_timeout=600&sslmode=disable", port);
	t0 = now();
	db = mf_db_open(&set, &err);
	ok(db == NULL && strstr(err.msg, "database: cannot connect: ") != NULL &&
	       strstr(err.msg, "timeout") != NULL,
	   "silent server: timeout error (%s)", err.msg);
	ok(now() - t0 >= 1.5 && now() - t0 < 6.0,
	   "silent server: the forced 2s timeout wins over 600 in the URI (%.2fs)", now() - t0);
	mf_db_close(&db);
	close(fd);
}

static struct mf_db *open_test_db(const char *conninfo, int statement_timeout_ms)
{
	struct mf_db_settings set = {.conninfo = conninfo,
	                             .connect_timeout = 5,
	                             .statement_timeout_ms = statement_timeout_ms,
	                             .application_name = "mf-test-db"};
	struct mf_error err = {{0}};
	struct mf_db *db = mf_db_open(&set, &err);

	if (db == NULL)
		diag("cannot connect: %s", err.msg);
	return db;
}

/* First column of the first row as text, copied into buf ("" if none). */
static const char *scalar(struct mf_db *db, const char *sql, int n, const char *const *params,
                          char *buf, size_t size)
{
	struct mf_error err = {{0}};
	PGresult *res = mf_db_exec(db, sql, n, params, &err);

	buf[0] = '\0';
	if (res == NULL) {
		snprintf(buf, size, "(error: %s)", err.msg);
		return buf;
	}
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return buf;
}

static void test_queries(struct mf_db *db)
{
	static const char nasty[] = "O'Brien \"quoted\" \\ ; DROP TABLE mf_test_db; --";
	struct mf_error err = {{0}};
	const char *params[3];
	unsigned char all[256];
	char buf[2048], *hex;
	PGresult *res;
	PGconn *conn = mf_db_conn(db);
	int rc;

	ok(conn != NULL, "conn: raw connection available");
	ok(strcmp(scalar(db, "SHOW statement_timeout", 0, NULL, buf, sizeof(buf)), "1500ms") == 0,
	   "connect: statement_timeout set (%s)", buf);
	ok(strcmp(
	       scalar(db, "SELECT current_setting('application_name')", 0, NULL, buf, sizeof(buf)),
	       "mf-test-db") == 0,
	   "connect: application_name forced over the conninfo (%s)", buf);
	if (conn != NULL) {
		PQconninfoOption *opts = PQconninfo(conn);
		const char *ct = "";

		for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
			if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL)
				ct = o->val;
		ok(strcmp(ct, "5") == 0, "connect: connect_timeout forced over the conninfo (%s)",
		   ct);
		PQconninfoFree(opts);
	}

	rc = mf_db_command(db, "DROP TABLE IF EXISTS mf_test_db", 0, NULL, &err);
	rc |= mf_db_command(db, "CREATE TABLE mf_test_db (id int, name text, data bytea)", 0, NULL,
	                    &err);
	if (!ok(rc == 0, "create a table (%s)", err.msg))
		return;

	params[0] = "1";
	params[1] = nasty;
	params[2] = NULL;
	rc = mf_db_command(db, "INSERT INTO mf_test_db (id, name, data) VALUES ($1, $2, $3)", 3,
	                   params, &err);
	ok(rc == 0, "exec: insert with quotes and a NULL parameter (%s)", rc == 0 ? "" : err.msg);
	res = mf_db_exec(db, "SELECT name, data IS NULL, data FROM mf_test_db WHERE id = $1", 1,
	                 params, &err);
	ok(res != NULL && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), nasty) == 0,
	   "exec: value with quotes comes back unchanged");
	ok(res != NULL && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0 &&
	       PQgetisnull(res, 0, 2),
	   "exec: NULL parameter stored as SQL NULL");
	PQclear(res);
	ok(strcmp(scalar(db, "SELECT count(*) FROM mf_test_db", 0, NULL, buf, sizeof(buf)), "1") ==
	       0,
	   "exec: the table is still there, one row");

	/* bytea, as text parameter and text result */
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)(255 - i);
	hex = mf_db_escape_bytea(all, sizeof(all));
	params[0] = "2";
	params[1] = "bin";
	params[2] = hex;
	rc = mf_db_command(db, "INSERT INTO mf_test_db (id, name, data) VALUES ($1, $2, $3)", 3,
	                   params, &err);
	free(hex);
	res = mf_db_exec(db, "SELECT data FROM mf_test_db WHERE id = 2", 0, NULL, &err);
	if (ok(rc == 0 && res != NULL && PQntuples(res) == 1, "bytea: stored (%s)", err.msg)) {
		size_t len = 0;
		unsigned char *back = mf_db_unescape_bytea(PQgetvalue(res, 0, 0), &len);

		ok(back != NULL && len == 256 && memcmp(back, all, 256) == 0,
		   "bytea: round trip through PostgreSQL (text format)");
		free(back);
	}
	PQclear(res);
	/* bytea, binary parameter and binary result */
	{
		const char *values[1] = {(const char *)all};
		int lengths[1] = {100}, formats[1] = {1};

		res = mf_db_exec_bin(db, "SELECT $1::bytea", 1, values, lengths, formats, 1, &err);
		ok(res != NULL && PQgetlength(res, 0, 0) == 100 &&
		       memcmp(PQgetvalue(res, 0, 0), all, 100) == 0,
		   "exec_bin: binary parameter and result");
		PQclear(res);
	}

	/* a bad statement */
	res = mf_db_exec(db, "SELECT * FROM no_such_table", 0, NULL, &err);
	ok(res == NULL &&
	       strcmp(err.msg, "database: query failed: ERROR: relation \"no_such_table\" "
	                       "does not exist (SQLSTATE 42P01)") == 0,
	   "error: one clear line (%s)", err.msg);
	ok(strcmp(mf_db_sqlstate(db), "42P01") == 0, "error: SQLSTATE kept (%s)",
	   mf_db_sqlstate(db));
	ok(strcmp(scalar(db, "SELECT 41 + 1", 0, NULL, buf, sizeof(buf)), "42") == 0 &&
	       mf_db_sqlstate(db)[0] == '\0',
	   "error: the connection is still usable");
	params[0] = "hunter2-secret";
	res = mf_db_exec(db, "SELECT $1::int", 1, params, &err);
	ok(res == NULL && strstr(err.msg, "invalid input syntax") != NULL &&
	       strstr(err.msg, "hunter2") == NULL,
	   "error: a data error does not quote the parameter (%s)", err.msg);
	ok(mf_db_command(db, "SELECT 1 FROM mf_test_db WHERE id = $1", 1, NULL, &err) < 0,
	   "error: parameters announced but missing are refused");

	/* COPY belongs on the raw connection; through exec it is refused cleanly */
	res = mf_db_exec(db, "COPY mf_test_db (id) FROM STDIN", 0, NULL, &err);
	ok(res == NULL && strstr(err.msg, "COPY") != NULL, "copy in: refused (%s)", err.msg);
	res = mf_db_exec(db, "COPY mf_test_db TO STDOUT", 0, NULL, &err);
	ok(res == NULL && strstr(err.msg, "COPY") != NULL, "copy out: refused (%s)", err.msg);
	ok(strcmp(scalar(db, "SELECT count(*) FROM mf_test_db", 0, NULL, buf, sizeof(buf)), "2") ==
	       0,
	   "copy: the connection is still usable (%s)", buf);

	/* statement_timeout */
	{
		double t0 = now();

		res = mf_db_exec(db, "SELECT pg_sleep(5)", 0, NULL, &err);
		ok(res == NULL && strcmp(mf_db_sqlstate(db), "57014") == 0 && now() - t0 < 4.0,
		   "statement_timeout: a slow statement is cancelled (%.2fs, %s)", now() - t0,
		   err.msg);
		PQclear(res);
	}

	/* transactions */
	ok(mf_db_begin(db, &err) == 0, "txn: begin");
	ok(mf_db_begin(db, &err) < 0 && strstr(err.msg, "already open") != NULL,
	   "txn: nested begin refused");
	params[0] = "3";
	ok(mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) == 0,
	   "txn: insert");
	mf_db_rollback(db);
	ok(strcmp(scalar(db, "SELECT count(*) FROM mf_test_db WHERE id = 3", 0, NULL, buf,
	                 sizeof(buf)),
	          "0") == 0,
	   "txn: rollback undid the insert");
	ok(mf_db_begin(db, &err) == 0 &&
	       mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) == 0 &&
	       mf_db_commit(db, &err) == 0,
	   "txn: begin, insert, commit");
	ok(strcmp(scalar(db, "SELECT count(*) FROM mf_test_db WHERE id = 3", 0, NULL, buf,
	                 sizeof(buf)),
	          "1") == 0,
	   "txn: committed row is there");
	params[0] = "4";
	ok(mf_db_begin(db, &err) == 0 &&
	       mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) == 0,
	   "txn: begin, insert");
	ok(mf_db_command(db, "SELECT * FROM no_such_table", 0, NULL, &err) < 0,
	   "txn: a failing statement");
	ok(mf_db_commit(db, &err) < 0 && strstr(err.msg, "rolled back") != NULL,
	   "txn: commit after an error reports the rollback (%s)", err.msg);
	ok(strcmp(scalar(db, "SELECT count(*) FROM mf_test_db WHERE id = 4", 0, NULL, buf,
	                 sizeof(buf)),
	          "0") == 0,
	   "txn: nothing of the failed transaction was kept");
	ok(mf_db_commit(db, &err) < 0, "txn: commit without begin refused");
}

static int backend_pid(struct mf_db *db)
{
	char buf[64];

	return atoi(scalar(db, "SELECT pg_backend_pid()", 0, NULL, buf, sizeof(buf)));
}

/* Terminate db's backend from other and wait until it is gone. */
static bool kill_backend(struct mf_db *other, int pid)
{
	char pidtext[32], buf[64];
	const char *params[1] = {pidtext};

	snprintf(pidtext, sizeof(pidtext), "%d", pid);
	if (strcmp(
	        scalar(other, "SELECT pg_terminate_backend($1::int)", 1, params, buf, sizeof(buf)),
	        "t") != 0)
		return false;
	for (int i = 0; i < 100; i++) {
		if (strcmp(scalar(other,
		                  "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1,
		                  params, buf, sizeof(buf)),
		           "0") == 0)
			return true;
		usleep(20000);
	}
	return false;
}

struct killer {
	struct mf_db *other;
	int pid;
	bool done;
};

/* Terminate the backend as soon as it is running COMMIT. */
static void *kill_in_commit(void *arg)
{
	struct killer *k = arg;
	char pidtext[32], buf[64];
	const char *params[1] = {pidtext};

	snprintf(pidtext, sizeof(pidtext), "%d", k->pid);
	for (int i = 0; i < 500 && !k->done; i++) {
		if (strcmp(scalar(k->other,
		                  "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int "
		                  "AND state = 'active' AND query = 'COMMIT'",
		                  1, params, buf, sizeof(buf)),
		           "1") == 0) {
			k->done = kill_backend(k->other, k->pid);
			break;
		}
		usleep(10000);
	}
	return NULL;
}

/* The connection dies while the server works on COMMIT (a deferred
   trigger makes COMMIT slow): the outcome is unknown and must say so. */
static void test_lost_commit(struct mf_db *db, struct mf_db *other)
{
	struct mf_error err = {{0}};
	struct killer k = {.other = other};
	const char *params[1] = {"6"};
	pthread_t t;
	int rc;

	rc = mf_db_command(db,
	                   "CREATE OR REPLACE FUNCTION mf_test_db_slow() RETURNS trigger "
	                   "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$",
	                   0, NULL, &err);
	rc |= mf_db_command(db,
	                    "CREATE CONSTRAINT TRIGGER mf_test_db_slow AFTER INSERT ON mf_test_db "
	                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
	                    "EXECUTE FUNCTION mf_test_db_slow()",
	                    0, NULL, &err);
	if (!ok(rc == 0, "lost commit: slow deferred trigger (%s)", err.msg))
		return;
	/* a slow COMMIT leaves the other thread time to find it even on a
	   loaded machine; the session's 1.5s statement_timeout is lifted for it */
	ok(mf_db_begin(db, &err) == 0 &&
	       mf_db_command(db, "SELECT set_config('statement_timeout', '0', true)", 0, NULL,
	                     &err) == 0 &&
	       mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) == 0,
	   "lost commit: begin, insert");
	k.pid = backend_pid(db);
	pthread_create(&t, NULL, kill_in_commit, &k);
	rc = mf_db_commit(db, &err);
	k.done = true;
	pthread_join(t, NULL);
	ok(rc < 0 && strstr(err.msg, "may or may not have been committed") != NULL,
	   "lost commit: reported as of unknown outcome (%s)", err.msg);
	ok(mf_db_command(db, "DROP TRIGGER mf_test_db_slow ON mf_test_db", 0, NULL, &err) == 0,
	   "lost commit: the next call reconnects (%s)", err.msg);
	if (mf_db_command(db, "DROP FUNCTION mf_test_db_slow()", 0, NULL, &err) < 0)
		diag("%s", err.msg);
}

static void test_reconnect(struct mf_db *db, struct mf_db *other)
{
	struct mf_error err = {{0}};
	const char *params[1] = {"5"};
	char buf[512];
	int pid = backend_pid(db), pid2;

	mf_log_set_handler(capture_log, NULL);
	ok(pid > 0 && kill_backend(other, pid), "reconnect: backend %d terminated", pid);
	{
		/* the server's goodbye has reached us: the next call must notice it
		   before sending anything, and go to a new connection */
		struct pollfd pfd = {.fd = mf_db_conn(db) != NULL ? PQsocket(mf_db_conn(db)) : -1,
		                     .events = POLLIN};

		ok(pfd.fd >= 0 && poll(&pfd, 1, 5000) == 1, "reconnect: server closed the session");
	}
	pid2 = atoi(scalar(db, "SELECT pg_backend_pid()", 0, NULL, buf, sizeof(buf)));
	ok(pid2 > 0 && pid2 != pid, "reconnect: next call works on a new connection (%s)", buf);
	ok(strstr(last_log, "reconnecting") != NULL, "reconnect: logged (%s)", last_log);
	ok(strcmp(scalar(db, "SHOW statement_timeout", 0, NULL, buf, sizeof(buf)), "1500ms") == 0,
	   "reconnect: session settings applied again");

	/* lost inside a transaction: never silently continue outside it */
	ok(mf_db_begin(db, &err) == 0 &&
	       mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) == 0,
	   "lost txn: begin, insert");
	pid = backend_pid(db);
	ok(kill_backend(other, pid), "lost txn: backend terminated");
	ok(mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) < 0,
	   "lost txn: the next statement fails (%s)", err.msg);
	ok(mf_db_command(db, "INSERT INTO mf_test_db (id) VALUES ($1)", 1, params, &err) < 0 &&
	       strstr(err.msg, "inside a transaction") != NULL,
	   "lost txn: and the one after, without reconnecting (%s)", err.msg);
	ok(mf_db_commit(db, &err) < 0, "lost txn: commit reports failure (%s)", err.msg);
	ok(strcmp(scalar(db, "SELECT count(*) FROM mf_test_db WHERE id = 5", 0, NULL, buf,
	                 sizeof(buf)),
	          "0") == 0,
	   "lost txn: after the transaction ended, a new connection; nothing was kept");

	/* lost, then rollback */
	ok(mf_db_begin(db, &err) == 0, "lost txn 2: begin");
	ok(kill_backend(other, backend_pid(db)), "lost txn 2: backend terminated");
	mf_db_rollback(db);
	ok(mf_db_ensure(db, &err) == 0 && mf_db_conn(db) != NULL,
	   "lost txn 2: after rollback, ensure reconnects");
	mf_log_set_handler(NULL, NULL);
}

int main(void)
{
	const char *host = getenv("MF_TEST_PGHOST"), *port = getenv("MF_TEST_PGPORT"),
	           *user = getenv("MF_TEST_PGUSER");
	char conninfo[1024];
	struct mf_db *db, *other;

	test_bytea();
	test_settings();
	test_unreachable();
	if (host == NULL || host[0] == '\0') {
		ok(1, "# SKIP no database");
		return tap_done();
	}
	snprintf(conninfo, sizeof(conninfo),
	         "host='%s' port='%s' user='%s' dbname=postgres application_name=other "
	         "connect_timeout=100",
	         host, port != NULL ? port : "5432", user != NULL ? user : "postgres");
	db = open_test_db(conninfo, 1500);
	other = open_test_db(conninfo, 0);
	if (ok(db != NULL && other != NULL, "connect to the test database")) {
		test_queries(db);
		test_reconnect(db, other);
		mf_log_set_handler(capture_log, NULL);
		test_lost_commit(db, other);
		mf_log_set_handler(NULL, NULL);
		if (mf_db_command(other, "DROP TABLE IF EXISTS mf_test_db", 0, NULL, NULL) < 0)
			diag("could not drop mf_test_db");
	}
	mf_db_close(&db);
	mf_db_close(&other);
	ok(db == NULL, "close: clears the pointer");
	return tap_done();
}
