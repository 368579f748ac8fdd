/*
 * pam-mailfort.h - what the parts of pam_mailfort share: the per-call
 * context and the account operations in PostgreSQL (pam-account.c).
 *
 * Everything lives in one struct pam_mf per pam_sm_* call, allocated on
 * the caller's stack: no globals, so several pam handles in one process
 * (Dovecot's auth worker, sshd) never see each other's state.
 */
#ifndef PAM_MAILFORT_H
#define PAM_MAILFORT_H

#include <stdbool.h>
#include <stdint.h>
#include <security/pam_modules.h>
#include "mf-common.h"
#include "mf-totp.h"

struct mf_config;
struct mf_db;

enum pam_mf_mode {
	PAM_MF_AUTH,     /* lock check + second factor (default) */
	PAM_MF_APPPASS,  /* the whole token may be an app password */
	PAM_MF_PREAUTH,  /* lock check only (password module comes next) */
	PAM_MF_AUTHFAIL, /* stacked after a failed password module: count it */
	PAM_MF_AUTHSUCC, /* stacked after every factor succeeded: reset the count */
	PAM_MF_ACCOUNT,  /* pam_acct_mgmt: refuse a locked account */
};

enum pam_mf_input {
	PAM_MF_INPUT_CONFIG, /* [pam] mode decides */
	PAM_MF_INPUT_APPEND,
	PAM_MF_INPUT_PROMPT,
};

struct pam_mf_args {
	enum pam_mf_mode mode;
	enum pam_mf_input input;
	const char *config_path;
	const char *protocol; /* protocol= override for app passwords */
	bool defer;           /* code mode: leave using up the code to authsucc */
	bool debug;
};

/* One account row, as the second factor needs it. */
struct pam_mf_account {
	bool found;
	char id[24];
	bool enrolled;  /* totp_state = 'enrolled' */
	bool locked;    /* locked_until > now() */
	bool throttled; /* this client address must still wait (auth_throttle) */
	unsigned char *sealed_secret;
	size_t sealed_len;
	unsigned digits, period;
	uint64_t last_step; /* totp_last_step: the newest step used */
};

/* A code checked but not yet used up (defer): kept on the PAM handle
   until authsucc, after the password module, uses it up. */
struct pam_mf_pending {
	char account_id[24];
	bool recovery;
	uint64_t step;
	unsigned char hashes[MF_CODE_HASH_KINDS][32];
};

struct pam_mf {
	pam_handle_t *pamh;
	struct pam_mf_args args;
	const char *user, *service, *rhost;
	char protocol[64];
	char source[65]; /* rhost as throttled: IPv4, IPv6 /64, name, or "" */
	struct mf_config *cfg;
	struct mf_db *db;
	bool db_shared; /* owned by the pam handle (pam_set_data), not this call */
	/* what the event records */
	const char *result; /* "ok", "fail", "error" */
	const char *reason;
	const char *factor; /* "totp", "recovery", "apppass", "password", NULL */
	bool locked_now;    /* this failure locked the account */
	bool throttled_now; /* this failure makes the address wait */
	char apppass_id[24];
};

/* ---- pam-account.c: every statement is parameterized ---- */

/* Load the account (found=false when there is no row). -1 on a db error. */
int pam_mf_account_load(struct pam_mf *mf, struct pam_mf_account *acct,
                        struct mf_error *err) MF_WARN_UNUSED;
void pam_mf_account_clear(struct pam_mf_account *acct);
/* For a name without a row: 1 when an account's name differs from it only
   in letter case (the password module may not tell them apart), 0 when
   none does, -1 on a db error. */
int pam_mf_name_case_variant(struct pam_mf *mf, struct mf_error *err) MF_WARN_UNUSED;
/* Accept step once: 1 accepted, 0 step already used (replay) or the
   account is locked now, -1 db error. */
int pam_mf_accept_step(struct pam_mf *mf, const char *account_id, uint64_t step,
                       struct mf_error *err) MF_WARN_UNUSED;
/* Use a recovery code of account id, given both kinds of its hash
   (mf_recovery_hashes: codes stored under either profile match), or with
   check_only only look whether it is unused: 1 used now (unused), 0
   unknown or already used, -1 db error.  A lock does not refuse it. */
int pam_mf_use_recovery(struct pam_mf *mf, const char *account_id,
                        const unsigned char hashes[MF_CODE_HASH_KINDS][32], bool check_only,
                        struct mf_error *err) MF_WARN_UNUSED;
/* Count one failure for the user and for this client address (mf->source):
   the address is made to wait once it has failed throttle_after times
   (sets mf->throttled_now); the account is locked when its consecutive
   failures reach max_failures, or lock_sources addresses have failed
   within throttle_window (sets mf->locked_now).  0, or -1 on a db error. */
int pam_mf_record_failure(struct pam_mf *mf, struct mf_error *err) MF_WARN_UNUSED;
/* A login with every factor: reset the account's failure count and lock
   history, forget this address's failures, record the login time. */
int pam_mf_record_success(struct pam_mf *mf, struct mf_error *err) MF_WARN_UNUSED;
/* A login with an app password: record the login time.  The account's
   count and lock and this address's failures stay: the device may share
   its address (NAT) with whoever is guessing codes, and an app password
   proves nothing about them. */
int pam_mf_record_apppass_success(struct pam_mf *mf, struct mf_error *err) MF_WARN_UNUSED;

enum pam_mf_apppass_status {
	PAM_MF_APPPASS_NONE,     /* no such app password for this user */
	PAM_MF_APPPASS_OK,       /* valid for this protocol (also while the account
	                            is locked by failed guesses); last use recorded */
	PAM_MF_APPPASS_REVOKED,  /* revoked */
	PAM_MF_APPPASS_PROTOCOL, /* not allowed for this protocol */
};
/* One indexed lookup by keyed hash, either kind (mf_apppass_hashes). -1
   on a db error. */
int pam_mf_apppass_check(struct pam_mf *mf, const unsigned char hashes[MF_CODE_HASH_KINDS][32],
                         enum pam_mf_apppass_status *status_r, struct mf_error *err) MF_WARN_UNUSED;

#endif
