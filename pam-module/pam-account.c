/*
 * pam-account.c - pam_mailfort's reads and writes of account state in
 * PostgreSQL: the account's TOTP and lock state, accepting a time step once,
 * one-time recovery codes, app password lookup, failure counting per
 * account and per client address (waits for the address, a doubling lock
 * for the account), and the reset after a success.
 *
 * Each operation is one parameterized statement whose WHERE clause makes
 * it atomic across every node of the cluster: a step is accepted by
 *   UPDATE ... SET totp_last_step = $2 WHERE ... AND totp_last_step < $2
 * so when many logins race with the same code, exactly one row update
 * wins.  Functions return as documented in pam-mailfort.h; on a database
 * error they return -1 with err set (the text never holds a secret).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "mf-config.h"
#include "mf-db.h"
#include "pam-mailfort.h"

/* The address's wait is read in the same statement (one primary-key
   lookup), so throttling costs a login no extra round trip. */
static const char account_sql[] =
    "SELECT a.id, a.totp_state = 'enrolled', a.totp_secret, a.totp_digits, a.totp_period, "
    "coalesce(a.locked_until > now(), false), "
    "EXISTS (SELECT 1 FROM mailfort.auth_throttle t WHERE t.account_id = a.id "
    "        AND t.source = $2 AND t.delayed_until > now()), "
    "a.totp_last_step "
    "FROM mailfort.accounts a WHERE a.username = $1";

int pam_mf_account_load(struct pam_mf *mf, struct pam_mf_account *acct, struct mf_error *err)
{
	const char *params[2] = {mf->user, mf->source};
	PGresult *res;

	memset(acct, 0, sizeof(*acct));
	res = mf_db_exec(mf->db, account_sql, 2, params, err);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		acct->found = true;
		snprintf(acct->id, sizeof(acct->id), "%s", PQgetvalue(res, 0, 0));
		acct->enrolled = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
		acct->digits = (unsigned)atoi(PQgetvalue(res, 0, 3));
		acct->period = (unsigned)atoi(PQgetvalue(res, 0, 4));
		acct->locked = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
		acct->throttled = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
		acct->last_step = strtoull(PQgetvalue(res, 0, 7), NULL, 10);
		if (!PQgetisnull(res, 0, 2)) {
			acct->sealed_secret =
			    mf_db_unescape_bytea(PQgetvalue(res, 0, 2), &acct->sealed_len);
			if (acct->sealed_secret == NULL) {
				PQclear(res);
				return mf_error_set(err, "account id %s: malformed totp_secret",
				                    acct->id);
			}
		}
	}
	PQclear(res);
	return 0;
}

int pam_mf_name_case_variant(struct pam_mf *mf, struct mf_error *err)
{
	const char *params[1] = {mf->user};
	PGresult *res;
	int found;

	/* only asked for a name without a row; index accounts_username_lower */
	res = mf_db_exec(mf->db,
	                 "SELECT EXISTS (SELECT 1 FROM mailfort.accounts "
	                 "WHERE lower(username) = lower($1) AND username <> $1)",
	                 1, params, err);
	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return found;
}

void pam_mf_account_clear(struct pam_mf_account *acct)
{
	if (acct->sealed_secret != NULL) {
		sodium_memzero(acct->sealed_secret, acct->sealed_len);
		free(acct->sealed_secret);
	}
	memset(acct, 0, sizeof(*acct));
}

static int affected(PGresult *res)
{
	int n = atoi(PQcmdTuples(res));

	PQclear(res);
	return n > 0 ? 1 : 0;
}

/* The lock is checked again in the statement that accepts: the account
   was read before the code was checked, and concurrent failures may have
   locked it since.  Row locking makes the UPDATE see their outcome, so a
   guess that arrives while others are locking the account cannot win. */
static const char accept_step_sql[] =
    "UPDATE mailfort.accounts SET totp_last_step = $2 "
    "WHERE id = $1 AND totp_state = 'enrolled' AND totp_last_step < $2 "
    "AND NOT coalesce(locked_until > now(), false)";

int pam_mf_accept_step(struct pam_mf *mf, const char *account_id, uint64_t step,
                       struct mf_error *err)
{
	char step_str[24];
	const char *params[2] = {account_id, step_str};
	PGresult *res;

	snprintf(step_str, sizeof(step_str), "%llu", (unsigned long long)step);
	res = mf_db_exec(mf->db, accept_step_sql, 2, params, err);
	if (res == NULL)
		return -1;
	return affected(res);
}

/* Unlike a step, a recovery code is accepted while the account is locked:
   it is the owner's way out of a lock someone else caused (a code holds
   about 60 bits, beyond any guessing the throttle lets through), and the
   success that follows ends the lock. */
static const char use_recovery_sql[] =
    "UPDATE mailfort.recovery_codes SET used_at = now() "
    "WHERE account_id = $1 AND hash IN ($2, $3) AND used_at IS NULL";
static const char find_recovery_sql[] =
    "SELECT 1 FROM mailfort.recovery_codes "
    "WHERE account_id = $1 AND hash IN ($2, $3) AND used_at IS NULL";

int pam_mf_use_recovery(struct pam_mf *mf, const char *account_id,
                        const unsigned char hashes[MF_CODE_HASH_KINDS][32], bool check_only,
                        struct mf_error *err)
{
	char *hex0 = mf_db_escape_bytea(hashes[0], 32), *hex1 = mf_db_escape_bytea(hashes[1], 32);
	const char *params[3] = {account_id, hex0, hex1};
	PGresult *res;
	int n;

	res = hex0 == NULL || hex1 == NULL
	          ? NULL
	          : mf_db_exec(mf->db, check_only ? find_recovery_sql : use_recovery_sql, 3, params,
	                       err);
	if (hex0 == NULL || hex1 == NULL)
		mf_error_set(err, "out of memory");
	free(hex0);
	free(hex1);
	if (res == NULL)
		return -1;
	if (!check_only)
		return affected(res);
	n = PQntuples(res);
	PQclear(res);
	return n > 0 ? 1 : 0;
}

/* One statement.  The address's row (auth_throttle) counts its failure,
   restarting after throttle_window ($7) without one; from the
   throttle_after-th ($5) failure on, the address waits
   throttle_delay * 2^(failures - throttle_after) ($6, capped at $8).  The
   account counts every failure; it is locked for
   lockout_seconds * 2^lock_count (capped) when the count reaches
   max_failures ($2), or when lock_sources ($9) addresses (this one
   included) have each used up their own budget (throttle_after failures)
   within the window: an address that failed once or twice is no
   distributed guesser, and counting it would let anyone lock the owner
   out with one try from each of a few addresses.  A lock starts the
   account's count again and forgets every address (d), so the next lock
   takes the whole effort again, and one more lock is remembered.
   Failures while the address waits, and codes other than a recovery code
   while locked, are refused before getting here. */
#define THROTTLE_FAILURES                                                                 \
	"CASE WHEN t.last_failure_at < now() - make_interval(secs => $7::float8) THEN 1 " \
	"ELSE t.failures + 1 END"
#define THROTTLE_WAIT(n)                                                                   \
	"CASE WHEN " n " >= $5::int THEN now() + make_interval(secs => least($8::float8, " \
	"$6::float8 * power(2::float8, least(" n " - $5::int, 40)))) END"

static const char failure_sql[] =
    "WITH acct AS (SELECT id, failed_count FROM mailfort.accounts WHERE username = $1 "
    "              FOR UPDATE), "
    "f AS (SELECT coalesce((SELECT " THROTTLE_FAILURES " FROM mailfort.auth_throttle t "
    "      JOIN acct ON t.account_id = acct.id WHERE t.source = $10), 1) AS n), "
    "s AS (SELECT count(*) + CASE WHEN (SELECT n FROM f) >= $5::int THEN 1 ELSE 0 END AS n "
    "      FROM mailfort.auth_throttle x JOIN acct ON x.account_id = acct.id "
    "      WHERE x.source <> $10 AND x.failures >= $5::int "
    "      AND x.last_failure_at >= now() - make_interval(secs => $7::float8)), "
    "l AS (SELECT acct.id, (acct.failed_count + 1 >= $2::int OR s.n >= $9::int) AS locks "
    "      FROM acct, s), "
    "d AS (DELETE FROM mailfort.auth_throttle x USING l WHERE x.account_id = l.id AND l.locks), "
    "t AS (INSERT INTO mailfort.auth_throttle AS t "
    "        (account_id, source, failures, last_failure_at, delayed_until) "
    "      SELECT l.id, $10, 1, now(), " THROTTLE_WAIT(
        "1") " FROM l WHERE NOT l.locks "
             "      ON CONFLICT (account_id, source) DO UPDATE SET "
             "        failures = (SELECT n FROM f), last_failure_at = now(), "
             "        delayed_until = " THROTTLE_WAIT(
                 "(SELECT n FROM f)") " "
                                      "      RETURNING coalesce(delayed_until > now(), false) AS "
                                      "waits) "
                                      "UPDATE mailfort.accounts a SET "
                                      " last_failure_at = now(),"
                                      " failed_count = CASE WHEN l.locks THEN 0 ELSE "
                                      "a.failed_count + 1 END,"
                                      " lock_count = CASE WHEN l.locks THEN a.lock_count + 1 ELSE "
                                      "a.lock_count END,"
                                      " locked_until = CASE WHEN l.locks THEN now() + "
                                      "make_interval(secs =>"
                                      "     least($4::float8, $3::float8 * power(2::float8, "
                                      "least(a.lock_count, 40))))"
                                      "     ELSE a.locked_until END "
                                      "FROM l WHERE a.id = l.id "
                                      "RETURNING l.locks, coalesce((SELECT waits FROM t), false)";

int pam_mf_record_failure(struct pam_mf *mf, struct mf_error *err)
{
	static const char *const keys[] = {
	    "max_failures",   "lockout_seconds", "lockout_max_seconds", "throttle_after",
	    "throttle_delay", "throttle_window", "throttle_max_delay",  "lock_sources"};
	char num[MF_N_ELEMENTS(keys)][24];
	const char *params[10];
	PGresult *res;
	size_t i;

	params[0] = mf->user;
	for (i = 0; i < MF_N_ELEMENTS(keys); i++) {
		snprintf(num[i], sizeof(num[i]), "%lld",
		         (long long)mf_config_int(mf->cfg, "pam", keys[i]));
		params[i + 1] = num[i];
	}
	params[9] = mf->source;
	res = mf_db_exec(mf->db, failure_sql, 10, params, err);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		mf->locked_now = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		mf->throttled_now = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	}
	PQclear(res);
	return 0;
}

/* The address's row goes in the same statement: no extra round trip. */
int pam_mf_record_success(struct pam_mf *mf, struct mf_error *err)
{
	const char *params[2] = {mf->user, mf->source};

	return mf_db_command(mf->db,
	                     "WITH d AS (DELETE FROM mailfort.auth_throttle WHERE source = $2 "
	                     "  AND account_id = (SELECT id FROM mailfort.accounts "
	                     "                    WHERE username = $1)) "
	                     "UPDATE mailfort.accounts SET failed_count = 0, lock_count = 0, "
	                     "locked_until = NULL, last_login_at = now() WHERE username = $1",
	                     2, params, err);
}

int pam_mf_record_apppass_success(struct pam_mf *mf, struct mf_error *err)
{
	const char *params[1] = {mf->user};

	return mf_db_command(
	    mf->db, "UPDATE mailfort.accounts SET last_login_at = now() WHERE username = $1", 1,
	    params, err);
}

/* The lookup is by the unique index on hash; user and protocol are then
   compared on that single row. */
static const char apppass_sql[] =
    "SELECT ap.id, a.username = $2, ap.revoked_at IS NOT NULL, $3 = ANY (ap.protocols) "
    "FROM mailfort.app_passwords ap JOIN mailfort.accounts a ON a.id = ap.account_id "
    "WHERE ap.hash IN ($1, $4)";

int pam_mf_apppass_check(struct pam_mf *mf, const unsigned char hashes[MF_CODE_HASH_KINDS][32],
                         enum pam_mf_apppass_status *status_r, struct mf_error *err)
{
	const char *params[4];
	char *hex0, *hex1;
	unsigned char addr[16];
	const char *ip = NULL;
	PGresult *res;

	*status_r = PAM_MF_APPPASS_NONE;
	hex0 = mf_db_escape_bytea(hashes[0], 32);
	hex1 = mf_db_escape_bytea(hashes[1], 32);
	if (hex0 == NULL || hex1 == NULL) {
		free(hex0);
		free(hex1);
		return mf_error_set(err, "out of memory");
	}
	params[0] = hex0;
	params[1] = mf->user;
	params[2] = mf->protocol;
	params[3] = hex1;
	res = mf_db_exec(mf->db, apppass_sql, 4, params, err);
	free(hex0);
	free(hex1);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		PQclear(res);
		return 0;
	}
	snprintf(mf->apppass_id, sizeof(mf->apppass_id), "%s", PQgetvalue(res, 0, 0));
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		*status_r = PAM_MF_APPPASS_REVOKED;
	else if (strcmp(PQgetvalue(res, 0, 3), "t") != 0)
		*status_r = PAM_MF_APPPASS_PROTOCOL;
	else
		*status_r = PAM_MF_APPPASS_OK;
	PQclear(res);
	if (*status_r != PAM_MF_APPPASS_OK)
		return 0;

	/* last use: the remote address when it is one (PAM_RHOST may be a name) */
	if (mf->rhost != NULL &&
	    (inet_pton(AF_INET, mf->rhost, addr) == 1 || inet_pton(AF_INET6, mf->rhost, addr) == 1))
		ip = mf->rhost;
	params[0] = mf->apppass_id;
	params[1] = ip;
	return mf_db_command(mf->db,
	                     "UPDATE mailfort.app_passwords SET last_used_at = now(), "
	                     "last_used_ip = $2::inet WHERE id = $1",
	                     2, params, err);
}
