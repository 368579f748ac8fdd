/*
 * pam-account.c - pam_mailfort's reads and writes of account state in
 * PostgreSQL: the account's TOTP and lock state, accepting a time step once,
 * one-time recovery codes, app password lookup, failure counting with a
 * doubling lock, and the reset after a success.
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

static const char account_sql[] =
    "SELECT id, totp_state = 'enrolled', totp_secret, totp_digits, totp_period, "
    "coalesce(locked_until > now(), false) "
    "FROM mailfort.accounts WHERE username = $1";

int pam_mf_account_load(struct pam_mf *mf, struct pam_mf_account *acct, struct mf_error *err)
{
	const char *params[1] = {mf->user};
	PGresult *res;

	memset(acct, 0, sizeof(*acct));
	res = mf_db_exec(mf->db, account_sql, 1, params, err);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		acct->found = true;
		snprintf(acct->id, sizeof(acct->id), "%s", PQgetvalue(res, 0, 0));
		acct->enrolled = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
		acct->digits = (unsigned)atoi(PQgetvalue(res, 0, 3));
		acct->period = (unsigned)atoi(PQgetvalue(res, 0, 4));
		acct->locked = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
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

int pam_mf_accept_step(struct pam_mf *mf, const struct pam_mf_account *acct, uint64_t step,
                       struct mf_error *err)
{
	char step_str[24];
	const char *params[2] = {acct->id, step_str};
	PGresult *res;

	snprintf(step_str, sizeof(step_str), "%llu", (unsigned long long)step);
	res = mf_db_exec(mf->db, accept_step_sql, 2, params, err);
	if (res == NULL)
		return -1;
	return affected(res);
}

/* As for a step: no code is used up while the account is locked.  FOR
   SHARE waits for a concurrent lock of the account row to commit and then
   checks the lock on the row as it is now. */
static const char use_recovery_sql[] =
    "WITH a AS (SELECT id FROM mailfort.accounts "
    "           WHERE id = $1 AND NOT coalesce(locked_until > now(), false) FOR SHARE) "
    "UPDATE mailfort.recovery_codes r SET used_at = now() FROM a "
    "WHERE r.account_id = a.id AND r.hash IN ($2, $3) AND r.used_at IS NULL";

int pam_mf_use_recovery(struct pam_mf *mf, const struct pam_mf_account *acct,
                        const unsigned char hashes[MF_CODE_HASH_KINDS][32], struct mf_error *err)
{
	char *hex0 = mf_db_escape_bytea(hashes[0], 32), *hex1 = mf_db_escape_bytea(hashes[1], 32);
	const char *params[3] = {acct->id, hex0, hex1};
	PGresult *res;

	res = hex0 == NULL || hex1 == NULL ? NULL
	                                   : mf_db_exec(mf->db, use_recovery_sql, 3, params, err);
	if (hex0 == NULL || hex1 == NULL)
		mf_error_set(err, "out of memory");
	free(hex0);
	free(hex1);
	if (res == NULL)
		return -1;
	return affected(res);
}

/* One statement: count the failure; when the count reaches max_failures,
   lock for lockout_seconds * 2^lock_count (capped), start counting again
   and remember that one more lock happened.  Failures while locked are not
   counted (the caller refuses those before getting here). */
static const char failure_sql[] =
    "UPDATE mailfort.accounts SET "
    " last_failure_at = now(),"
    " failed_count = CASE WHEN failed_count + 1 >= $2::int THEN 0 ELSE failed_count + 1 END,"
    " lock_count = CASE WHEN failed_count + 1 >= $2::int THEN lock_count + 1"
    "                   ELSE lock_count END,"
    " locked_until = CASE WHEN failed_count + 1 >= $2::int THEN now() + make_interval(secs =>"
    "     least($4::float8, $3::float8 * power(2::float8, least(lock_count, 40))))"
    "     ELSE locked_until END "
    "WHERE username = $1 RETURNING failed_count = 0 AND locked_until > now()";

int pam_mf_record_failure(struct pam_mf *mf, struct mf_error *err)
{
	char max[24], secs[24], max_secs[24];
	const char *params[4] = {mf->user, max, secs, max_secs};
	PGresult *res;

	snprintf(max, sizeof(max), "%lld",
	         (long long)mf_config_int(mf->cfg, "pam", "max_failures"));
	snprintf(secs, sizeof(secs), "%lld",
	         (long long)mf_config_int(mf->cfg, "pam", "lockout_seconds"));
	snprintf(max_secs, sizeof(max_secs), "%lld",
	         (long long)mf_config_int(mf->cfg, "pam", "lockout_max_seconds"));
	res = mf_db_exec(mf->db, failure_sql, 4, params, err);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		mf->locked_now = true;
	PQclear(res);
	return 0;
}

int pam_mf_record_success(struct pam_mf *mf, struct mf_error *err)
{
	const char *params[1] = {mf->user};

	return mf_db_command(mf->db,
	                     "UPDATE mailfort.accounts SET failed_count = 0, lock_count = 0, "
	                     "locked_until = NULL, last_login_at = now() WHERE username = $1",
	                     1, params, err);
}

/* The lookup is by the unique index on hash; user and protocol are then
   compared on that single row. */
static const char apppass_sql[] =
    "SELECT ap.id, a.username = $2, coalesce(a.locked_until > now(), false), "
    "ap.revoked_at IS NOT NULL, $3 = ANY (ap.protocols) "
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
		*status_r = PAM_MF_APPPASS_LOCKED;
	else if (strcmp(PQgetvalue(res, 0, 3), "t") == 0)
		*status_r = PAM_MF_APPPASS_REVOKED;
	else if (strcmp(PQgetvalue(res, 0, 4), "t") != 0)
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
