/*
 * pam_mailfort.c - PAM entry points: TOTP second factor, app passwords,
 * recovery codes and cluster-wide lockout (see pam_mailfort(8)).
 *
 * Modes (module argument):
 *   (none)    lock check, then the second factor.  In append mode the last
 *             `digits` characters of PAM_AUTHTOK are the code and the rest
 *             is handed on as PAM_AUTHTOK for the password module; in prompt
 *             mode the code is asked for.  A recovery code may stand in for
 *             the code, once.
 *   apppass   the whole PAM_AUTHTOK may be an app password: PAM_SUCCESS
 *             when it is a valid one for this protocol, PAM_IGNORE when it
 *             is none of this user's, PAM_AUTH_ERR when revoked, for another
 *             protocol, or the account is locked.
 *   preauth   lock check only, for stacks where the password module comes
 *             before the code (prompt mode): PAM_AUTH_ERR while locked,
 *             PAM_IGNORE otherwise.
 *   authfail  stacked after the password module ([default=die]): counts the
 *             failed password towards the lock.  Returns PAM_AUTH_ERR.
 *   authsucc  stacked after all factors passed: uses up a code kept by
 *             defer, resets the failure count, records the login.
 *             Returns PAM_SUCCESS (PAM_AUTH_ERR when the kept code was
 *             used meanwhile).
 * In the account phase (pam_acct_mgmt) the module refuses a locked account
 * with PAM_PERM_DENIED, also when the database cannot be reached, so a lock
 * holds for logins that did not authenticate through it (ssh keys).
 * Other arguments: config=FILE, append, prompt, protocol=NAME, defer (leave using
 * up the code to authsucc, after the password module), debug.
 *
 * Returns PAM_SUCCESS, PAM_AUTH_ERR (refused; also while locked and for
 * accounts without TOTP under not_enrolled=require), PAM_IGNORE (apppass:
 * not an app password), PAM_AUTHINFO_UNAVAIL when the configuration, the
 * database, a key or the event spool is unavailable: failing closed.
 *
 * Runs inside someone else's process (Dovecot's auth worker, sshd): no
 * globals, no exit(), logging through pam_syslog, every secret wiped.
 * Every attempt appends one "auth" event to the spool; never the password
 * or the code.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-event.h"
#include "mf-log.h"
#include "mf-submit.h"
#include "mf-totp.h"
#include "pam-mailfort.h"

#define TOKEN_MAX 1024 /* longest PAM_AUTHTOK considered */

/* libmailfort is linked into this module privately (its symbols are not
   exported), so its log handler is ours alone: set it once, when the module
   is loaded, so that its few messages (database warnings, reconnects) go to
   syslog like ours instead of the host's stderr. */
__attribute__((constructor)) static void pam_mailfort_loaded(void)
{
	mf_log_set_handler(mf_log_handler_syslog, NULL);
}

static int parse_args(pam_handle_t *pamh, struct pam_mf_args *args, int argc, const char **argv)
{
	int i;

	memset(args, 0, sizeof(*args));
	args->config_path = MF_CONFIG_DEFAULT_PATH;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strncmp(a, "config=", 7) == 0 && a[7] != '\0')
			args->config_path = a + 7;
		else if (strcmp(a, "apppass") == 0)
			args->mode = PAM_MF_APPPASS;
		else if (strcmp(a, "preauth") == 0)
			args->mode = PAM_MF_PREAUTH;
		else if (strcmp(a, "authfail") == 0)
			args->mode = PAM_MF_AUTHFAIL;
		else if (strcmp(a, "authsucc") == 0)
			args->mode = PAM_MF_AUTHSUCC;
		else if (strcmp(a, "append") == 0)
			args->input = PAM_MF_INPUT_APPEND;
		else if (strcmp(a, "prompt") == 0)
			args->input = PAM_MF_INPUT_PROMPT;
		else if (strncmp(a, "protocol=", 9) == 0 && a[9] != '\0')
			args->protocol = a + 9;
		else if (strcmp(a, "defer") == 0)
			args->defer = true;
		else if (strcmp(a, "debug") == 0)
			args->debug = true;
		else {
			pam_syslog(pamh, LOG_ERR, "unknown module argument '%s'", a);
			return -1;
		}
	}
	return 0;
}

static const char *mode_name(enum pam_mf_mode mode)
{
	switch (mode) {
	case PAM_MF_APPPASS:
		return "apppass";
	case PAM_MF_PREAUTH:
		return "preauth";
	case PAM_MF_ACCOUNT:
		return "account";
	case PAM_MF_AUTHFAIL:
		return "authfail";
	case PAM_MF_AUTHSUCC:
		return "authsucc";
	default:
		return "auth";
	}
}

/* The app password protocol for this PAM service: protocol= wins, then
   the [pam] protocols map ("service:protocol, ..."), then the service. */
static void resolve_protocol(struct pam_mf *mf)
{
	const char *map, *p, *name = mf->service != NULL ? mf->service : "";
	size_t i, n = strlen(name);

	if (mf->args.protocol != NULL)
		name = mf->args.protocol;
	else if ((map = mf_config_str(mf->cfg, "pam", "protocols")) != NULL) {
		for (p = map; *p != '\0';) {
			size_t klen, vlen;

			while (*p == ' ' || *p == ',')
				p++;
			klen = strcspn(p, ":, ");
			if (p[klen] != ':') {
				p += klen;
				continue;
			}
			vlen = strcspn(p + klen + 1, ", ");
			if (klen == n && strncmp(p, name, n) == 0 && vlen > 0 &&
			    vlen < sizeof(mf->protocol)) {
				memcpy(mf->protocol, p + klen + 1, vlen);
				mf->protocol[vlen] = '\0';
				goto lower;
			}
			p += klen + 1 + vlen;
		}
	}
	snprintf(mf->protocol, sizeof(mf->protocol), "%s", name);
lower:
	for (i = 0; mf->protocol[i] != '\0'; i++)
		mf->protocol[i] = (char)tolower((unsigned char)mf->protocol[i]);
}

/* The address failures are counted under (pam_mf.source): an IPv4
   address as it is (also written IPv4-mapped, ::ffff:a.b.c.d), the /64 network of an IPv6 address
   (one host can use all of it), anything else (a host name) in lower case, "" without one. */
static void resolve_source(struct pam_mf *mf)
{
	unsigned char a6[16];
	struct in_addr a4;
	char buf[INET6_ADDRSTRLEN];
	size_t i;

	mf->source[0] = '\0';
	if (mf->rhost == NULL || mf->rhost[0] == '\0')
		return;
	if (inet_pton(AF_INET, mf->rhost, &a4) == 1 &&
	    inet_ntop(AF_INET, &a4, buf, sizeof(buf)) != NULL) {
		snprintf(mf->source, sizeof(mf->source), "%s", buf);
	} else if (inet_pton(AF_INET6, mf->rhost, a6) == 1 &&
	           IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a6)) {
		/* ::ffff:a.b.c.d is an IPv4 client seen by an IPv6 socket: its
		   own address, not one /64 shared by every IPv4 client */
		if (inet_ntop(AF_INET, a6 + 12, buf, sizeof(buf)) != NULL)
			snprintf(mf->source, sizeof(mf->source), "%s", buf);
	} else if (inet_pton(AF_INET6, mf->rhost, a6) == 1) {
		memset(a6 + 8, 0, 8);
		if (inet_ntop(AF_INET6, a6, buf, sizeof(buf)) != NULL)
			snprintf(mf->source, sizeof(mf->source), "%s/64", buf);
	} else {
		for (i = 0; mf->rhost[i] != '\0' && i < sizeof(mf->source) - 1; i++)
			mf->source[i] = mf->rhost[i] > 0x20 && mf->rhost[i] < 0x7f
			                    ? (char)tolower((unsigned char)mf->rhost[i])
			                    : '?';
		mf->source[i] = '\0';
	}
}

/* Append the auth event.  Returns 0, or -1 when it could not be written. */
static int emit_event(struct pam_mf *mf)
{
	struct mf_submit *s;
	struct mf_event *ev;
	struct mf_error err;
	int ret;

	if (mf->cfg == NULL)
		return -1;
	ev = mf_event_new("auth", mf_config_str(mf->cfg, "spool", "node"));
	if (ev == NULL) {
		pam_syslog(mf->pamh, LOG_ERR, "cannot build the auth event: out of memory");
		return -1;
	}
	mf_event_add_str(ev, "user", mf->user);
	mf_event_add_str(ev, "service", mf->service);
	mf_event_add_str(ev, "ip", mf->rhost);
	mf_event_add_str(ev, "protocol", mf->protocol[0] != '\0' ? mf->protocol : NULL);
	mf_event_add_str(ev, "mode", mode_name(mf->args.mode));
	mf_event_add_str(ev, "result", mf->result);
	mf_event_add_str(ev, "reason", mf->reason);
	if (mf->factor != NULL)
		mf_event_add_str(ev, "factor", mf->factor);
	if (mf->apppass_id[0] != '\0')
		mf_event_add_str(ev, "apppass_id", mf->apppass_id);
	if (mf->locked_now)
		mf_event_add_bool(ev, "locked", true);
	if (mf->throttled_now)
		mf_event_add_bool(ev, "throttled", true);
	/* The receiver takes our identity from the kernel; it answers once
	   the event is in the spool, or within [spool] submit_timeout_ms
	   the login fails closed. */
	s = mf_submit_open_config(mf->cfg, &err);
	if (s == NULL) {
		mf_event_free(&ev);
		pam_syslog(mf->pamh, LOG_ERR, "cannot record the auth event: %s", err.msg);
		return -1;
	}
	ret = mf_event_append(ev, s, &err);
	if (ret < 0)
		pam_syslog(mf->pamh, LOG_ERR, "cannot record the auth event: %s", err.msg);
	mf_submit_close(&s);
	mf_event_free(&ev);
	return ret;
}

/* A copy of s fit for a log line: control characters (a user name with a
   newline could forge a line) and non-ASCII become '?', at most 64 bytes. */
static const char *log_safe(char buf[65], const char *s)
{
	size_t i;

	if (s == NULL)
		return "";
	for (i = 0; i < 64 && s[i] != '\0'; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* Record the outcome and turn it into the PAM return code.  No login is
   granted without its audit record. */
static int finish(struct pam_mf *mf, int pam_ret, const char *result, const char *reason)
{
	char user[65], service[65], rhost[65];
	int level;

	mf->result = result;
	mf->reason = reason;
	if (emit_event(mf) < 0 && pam_ret == PAM_SUCCESS)
		pam_ret = PAM_AUTHINFO_UNAVAIL;
	level = pam_ret == PAM_SUCCESS            ? LOG_INFO
	        : pam_ret == PAM_AUTHINFO_UNAVAIL ? LOG_ERR
	                                          : LOG_NOTICE;
	if (pam_ret != PAM_SUCCESS || mf->args.debug)
		pam_syslog(mf->pamh, level, "user=%s service=%s rhost=%s mode=%s: %s (%s)%s",
		           log_safe(user, mf->user), log_safe(service, mf->service),
		           log_safe(rhost, mf->rhost), mode_name(mf->args.mode), result, reason,
		           mf->locked_now      ? ", account now locked"
		           : mf->throttled_now ? ", address must now wait"
		                               : "");
	return pam_ret;
}

/* A failure of a factor: count it (the lock may start now) and refuse. */
static int fail(struct pam_mf *mf, const char *reason)
{
	struct mf_error err;

	if (pam_mf_record_failure(mf, &err) < 0) {
		pam_syslog(mf->pamh, LOG_ERR, "cannot record a failed login: %s", err.msg);
		return finish(mf, PAM_AUTHINFO_UNAVAIL, "error", "db_unavailable");
	}
	return finish(mf, PAM_AUTH_ERR, "fail", reason);
}

static int unavailable(struct pam_mf *mf, const char *reason, const struct mf_error *err)
{
	pam_syslog(mf->pamh, LOG_ERR, "%s", err->msg);
	return finish(mf, PAM_AUTHINFO_UNAVAIL, "error", reason);
}

/* The connection is shared by the module's instances in one stack (apppass,
   code, authfail, authsucc) through pam_set_data, so one login costs one
   connection; it is closed by pam_end, or by pam_setcred, which
   applications call after a successful authentication (sshd keeps its
   handle for the whole session). */
#define DB_DATA "mailfort:db"

struct db_shared {
	char *conninfo;
	int connect_timeout;
	struct mf_db *db;
};

/* The connection string may hold a password. */
static void db_shared_free(struct db_shared *sh)
{
	if (sh->conninfo != NULL) {
		sodium_memzero(sh->conninfo, strlen(sh->conninfo));
		free(sh->conninfo);
	}
	free(sh);
}

static void db_shared_cleanup(pam_handle_t *pamh, void *data, int status)
{
	struct db_shared *sh = data;

	(void)pamh;
	(void)status;
	mf_db_close(&sh->db);
	db_shared_free(sh);
}

static int open_db_quiet(struct pam_mf *mf, struct mf_error *err)
{
	struct mf_db_settings set;
	struct db_shared *sh;
	const void *data = NULL;
	const char *conninfo;

	mf_db_settings_from_config(&set, mf->cfg, "pam_mailfort");
	conninfo = mf_config_str(mf->cfg, "pam", "conninfo");
	if (conninfo != NULL)
		set.conninfo = conninfo;
	if (pam_get_data(mf->pamh, DB_DATA, &data) == PAM_SUCCESS && data != NULL) {
		sh = (struct db_shared *)data;
		if (sh->db != NULL && strcmp(sh->conninfo, set.conninfo) == 0 &&
		    sh->connect_timeout == set.connect_timeout && mf_db_ensure(sh->db, err) == 0) {
			mf->db = sh->db;
			mf->db_shared = true;
			return 0;
		}
	}
	mf->db = mf_db_open(&set, err);
	if (mf->db == NULL)
		return -1;
	sh = calloc(1, sizeof(*sh));
	if (sh != NULL && (sh->conninfo = strdup(set.conninfo)) != NULL) {
		sh->connect_timeout = set.connect_timeout;
		sh->db = mf->db;
		/* replaces (and closes) an earlier one */
		if (pam_set_data(mf->pamh, DB_DATA, sh, db_shared_cleanup) == PAM_SUCCESS) {
			mf->db_shared = true;
			return 0;
		}
		sh->db = NULL;
	}
	if (sh != NULL)
		db_shared_free(sh);
	return 0; /* not shared: closed at the end of this call */
}

/* Connect (within [database] connect_timeout).  PAM_SUCCESS, or the
   PAM_AUTHINFO_UNAVAIL result with its event and log line. */
static int open_db(struct pam_mf *mf)
{
	struct mf_error err;

	if (open_db_quiet(mf, &err) < 0)
		return unavailable(mf, "db_unavailable", &err);
	return PAM_SUCCESS;
}

/* A valid TOTP code was not accepted (step used), or the account was
   locked meanwhile by concurrent failures: the accepting statement refuses
   while locked.  A lock is reported as
   such and not counted again; anything else is a counted failure. */
static int code_refused(struct pam_mf *mf, const char *reason)
{
	struct pam_mf_account now;
	struct mf_error err;
	bool locked;

	if (pam_mf_account_load(mf, &now, &err) < 0)
		return unavailable(mf, "db_unavailable", &err);
	locked = now.found && now.locked;
	pam_mf_account_clear(&now);
	if (locked)
		return finish(mf, PAM_AUTH_ERR, "fail", "locked");
	return fail(mf, reason);
}

/* defer: the checked code waits on the PAM handle for authsucc. */
#define PENDING_DATA "mailfort:pending"

static void pending_cleanup(pam_handle_t *pamh, void *data, int status)
{
	(void)pamh;
	(void)status;
	sodium_memzero(data, sizeof(struct pam_mf_pending));
	free(data);
}

static int defer_code(struct pam_mf *mf, const struct pam_mf_account *acct, uint64_t step,
                      const unsigned char hashes[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES])
{
	struct pam_mf_pending *p = calloc(1, sizeof(*p));
	struct mf_error err;

	if (p != NULL) {
		snprintf(p->account_id, sizeof(p->account_id), "%s", acct->id);
		p->recovery = hashes != NULL;
		p->step = step;
		if (hashes != NULL)
			memcpy(p->hashes, hashes, sizeof(p->hashes));
		if (pam_set_data(mf->pamh, PENDING_DATA, p, pending_cleanup) == PAM_SUCCESS)
			return PAM_SUCCESS;
		pending_cleanup(mf->pamh, p, 0);
	}
	mf_error_set(&err, "cannot keep the checked code until the password is checked");
	return unavailable(mf, "internal_error", &err);
}

/* Check a TOTP code or recovery code for an enrolled account.  Returns a
   PAM code through finish()/fail(); on success the caller sets AUTHTOK. */
static int check_code(struct pam_mf *mf, const struct pam_mf_account *acct,
                      enum mf_login_factor factor, const char *code, size_t code_len)
{
	unsigned char key[crypto_secretbox_KEYBYTES];
	unsigned char secret[MF_TOTP_SECRET_BYTES];
	unsigned char hashes[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES];
	const char *key_dir = mf_config_str(mf->cfg, "keys", "dir");
	struct mf_error err;
	uint64_t step;
	int r;

	if (factor != MF_LOGIN_FACTOR_RECOVERY && acct->locked)
		return finish(mf, PAM_AUTH_ERR, "fail", "locked"); /* not looked at, not counted */
	if (factor == MF_LOGIN_FACTOR_TOTP) {
		mf->factor = "totp";
		if (mf_totp_load_key(key_dir, "totp.key", key, &err) < 0)
			return unavailable(mf, "key_unavailable", &err);
		if (acct->sealed_secret == NULL ||
		    mf_totp_secret_open(secret, acct->sealed_secret, acct->sealed_len, key, &err) <
		        0) {
			sodium_memzero(key, sizeof(key));
			if (acct->sealed_secret == NULL)
				mf_error_set(&err, "the account is enrolled without a secret");
			return unavailable(mf, "key_unavailable", &err);
		}
		sodium_memzero(key, sizeof(key));
		r = mf_totp_verify(secret, sizeof(secret), code, code_len, acct->digits,
		                   mf_totp_step(time(NULL), acct->period),
		                   (unsigned)mf_config_int(mf->cfg, "pam", "window"), &step, &err);
		sodium_memzero(secret, sizeof(secret));
		if (r < 0)
			return unavailable(mf, "internal_error", &err);
		if (r == 0)
			return fail(mf, "bad_code");
		if (mf->args.defer)
			return step <= acct->last_step ? fail(mf, "replay")
			                               : defer_code(mf, acct, step, NULL);
		r = pam_mf_accept_step(mf, acct->id, step, &err);
		if (r < 0)
			return unavailable(mf, "db_unavailable", &err);
		if (r == 0)
			return code_refused(mf, "replay");
		return PAM_SUCCESS;
	}

	mf->factor = "recovery";
	if (mf_totp_load_key(key_dir, "hash.key", key, &err) < 0)
		return unavailable(mf, "key_unavailable", &err);
	r = mf_recovery_hashes(hashes, code, code_len, key);
	sodium_memzero(key, sizeof(key));
	if (r < 0) {
		mf->factor = NULL;
		return fail(mf, code_len == 0 ? "no_code" : "bad_code");
	}
	r = pam_mf_use_recovery(mf, acct->id, hashes, mf->args.defer, &err);
	if (r > 0 && mf->args.defer)
		r = defer_code(mf, acct, 0, hashes) == PAM_SUCCESS ? 1 : -2;
	sodium_memzero(hashes, sizeof(hashes));
	if (r == -2)
		return PAM_AUTHINFO_UNAVAIL; /* defer_code reported it */
	if (r < 0)
		return unavailable(mf, "db_unavailable", &err);
	if (r == 0) /* counted also while locked: a lock is no free guessing */
		return fail(mf, "bad_recovery");
	return PAM_SUCCESS;
}

/* The default mode: lock check, then the second factor. */
static int do_auth(struct pam_mf *mf)
{
	struct pam_mf_account acct;
	struct mf_error err;
	struct mf_login_split split;
	const char *tok = NULL;
	char *buf = NULL, *resp = NULL;
	size_t len;
	bool prompt;
	int r;

	if ((r = open_db(mf)) != PAM_SUCCESS)
		return r;
	if (pam_mf_account_load(mf, &acct, &err) < 0)
		return unavailable(mf, "db_unavailable", &err);
	/* a locked account still takes a recovery code (check_code): the
	   owner's way out of a lock someone else caused */
	if (acct.found && acct.locked && !acct.enrolled) {
		pam_mf_account_clear(&acct);
		return finish(mf, PAM_AUTH_ERR, "fail", "locked");
	}
	if (acct.found && acct.throttled) {
		/* this address failed too often: it must wait, and its attempts
		   are not looked at meanwhile (nor counted: they are no guesses) */
		pam_mf_account_clear(&acct);
		return finish(mf, PAM_AUTH_ERR, "fail", "throttled");
	}
	if (!acct.found || !acct.enrolled) {
		pam_mf_account_clear(&acct);
		if (strcmp(mf_config_str(mf->cfg, "pam", "not_enrolled"), "allow") == 0) {
			/* "Alice" is not "alice", but a password module or
			   directory that ignores case would let "Alice" in
			   with alice's password and without her code */
			if (!acct.found) {
				r = pam_mf_name_case_variant(mf, &err);
				if (r < 0)
					return unavailable(mf, "db_unavailable", &err);
				if (r > 0)
					return fail(mf, "name_case");
			}
			return finish(mf, PAM_SUCCESS, "ok", "not_enrolled");
		}
		/* counted like a wrong code (a no-op for an unknown user), so
		   that the refusal does the same database work and takes about
		   as long: the time does not tell which names are enrolled */
		return fail(mf, "not_enrolled");
	}

	if (mf->args.input == PAM_MF_INPUT_CONFIG)
		prompt = strcmp(mf_config_str(mf->cfg, "pam", "mode"), "prompt") == 0;
	else
		prompt = mf->args.input == PAM_MF_INPUT_PROMPT;

	if (prompt) {
		r = pam_prompt(mf->pamh, PAM_PROMPT_ECHO_OFF, &resp, "%s",
		               mf_config_str(mf->cfg, "pam", "prompt"));
		if (r != PAM_SUCCESS || resp == NULL) {
			pam_mf_account_clear(&acct);
			return finish(mf, r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_AUTH_ERR,
			              "fail", "no_code");
		}
		len = strnlen(resp, TOKEN_MAX + 1);
		/* the whole answer is the code: all digits make a TOTP code
		   (of any length: a wrong length is a wrong code), anything
		   else can only be a recovery code */
		r = len > TOKEN_MAX ? fail(mf, "bad_code")
		                    : check_code(mf, &acct,
		                                 len > 0 && strspn(resp, "0123456789") == len
		                                     ? MF_LOGIN_FACTOR_TOTP
		                                     : MF_LOGIN_FACTOR_RECOVERY,
		                                 resp, len);
		/* all of it, also past TOKEN_MAX */
		sodium_memzero(resp, strlen(resp));
		free(resp);
		pam_mf_account_clear(&acct);
		return r == PAM_SUCCESS
		           ? finish(mf, PAM_SUCCESS, "ok",
		                    strcmp(mf->factor, "recovery") == 0 ? "recovery" : "ok")
		           : r;
	}

	/* append mode: password followed by the code */
	r = pam_get_authtok(mf->pamh, PAM_AUTHTOK, &tok, NULL);
	if (r != PAM_SUCCESS || tok == NULL) {
		pam_mf_account_clear(&acct);
		return finish(mf, r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_AUTH_ERR, "fail",
		              "no_code");
	}
	len = strnlen(tok, TOKEN_MAX + 1);
	if (len > TOKEN_MAX) {
		pam_mf_account_clear(&acct);
		return fail(mf, "bad_code");
	}
	buf = malloc(len + 1);
	if (buf == NULL) {
		pam_mf_account_clear(&acct);
		mf_error_set(&err, "out of memory");
		return unavailable(mf, "internal_error", &err);
	}
	memcpy(buf, tok, len + 1);
	mf_login_split(&split, buf, len, acct.digits);
	if (split.factor == MF_LOGIN_FACTOR_NONE && acct.locked) {
		r = finish(mf, PAM_AUTH_ERR, "fail", "locked");
	} else if (split.factor == MF_LOGIN_FACTOR_NONE) {
		/* ends in a digit but not in a whole code, or in nothing like one */
		r = fail(mf, len > 0 && buf[len - 1] >= '0' && buf[len - 1] <= '9' ? "bad_code"
		                                                                   : "no_code");
	} else {
		r = check_code(mf, &acct, split.factor, buf + split.password_len, split.code_len);
	}
	pam_mf_account_clear(&acct);
	if (r == PAM_SUCCESS) {
		/* the password module sees only the password */
		buf[split.password_len] = '\0';
		r = pam_set_item(mf->pamh, PAM_AUTHTOK, buf);
		if (r != PAM_SUCCESS) {
			mf_error_set(&err, "cannot hand the password on: %s",
			             pam_strerror(mf->pamh, r));
			r = unavailable(mf, "internal_error", &err);
		} else {
			r = finish(mf, PAM_SUCCESS, "ok",
			           strcmp(mf->factor, "recovery") == 0 ? "recovery" : "ok");
		}
	}
	sodium_memzero(buf, len + 1);
	free(buf);
	return r;
}

/* preauth mode: refuse a locked account, or an address that must wait,
   before any password is checked. */
static int do_preauth(struct pam_mf *mf)
{
	struct pam_mf_account acct;
	struct mf_error err;
	bool locked, throttled;
	int r;

	if ((r = open_db(mf)) != PAM_SUCCESS)
		return r;
	if (pam_mf_account_load(mf, &acct, &err) < 0)
		return unavailable(mf, "db_unavailable", &err);
	locked = acct.found && acct.locked;
	/* the account phase (a login by ssh key) is not a guess: only a lock
	   refuses it */
	throttled = acct.found && acct.throttled && mf->args.mode != PAM_MF_ACCOUNT;
	pam_mf_account_clear(&acct);
	if (locked)
		return finish(mf, PAM_AUTH_ERR, "fail", "locked");
	return throttled ? finish(mf, PAM_AUTH_ERR, "fail", "throttled") : PAM_IGNORE;
}

/* apppass mode: is the whole token one of this user's app passwords? */
static int do_apppass(struct pam_mf *mf)
{
	unsigned char key[crypto_generichash_KEYBYTES];
	unsigned char hashes[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES];
	enum pam_mf_apppass_status status;
	struct mf_error err;
	const char *tok = NULL;
	int r;

	r = pam_get_authtok(mf->pamh, PAM_AUTHTOK, &tok, NULL);
	if (r != PAM_SUCCESS || tok == NULL)
		return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_IGNORE;
	if (mf_totp_load_key(mf_config_str(mf->cfg, "keys", "dir"), "hash.key", key, &err) < 0)
		return unavailable(mf, "key_unavailable", &err);
	r = mf_apppass_hashes(hashes, tok, strnlen(tok, TOKEN_MAX + 1), key);
	sodium_memzero(key, sizeof(key));
	if (r < 0)
		return PAM_IGNORE; /* not shaped like an app password */
	if ((r = open_db(mf)) != PAM_SUCCESS) {
		sodium_memzero(hashes, sizeof(hashes));
		return r;
	}
	r = pam_mf_apppass_check(mf, hashes, &status, &err);
	sodium_memzero(hashes, sizeof(hashes));
	if (r < 0)
		return unavailable(mf, "db_unavailable", &err);
	mf->factor = "apppass";
	switch (status) {
	case PAM_MF_APPPASS_NONE:
		return PAM_IGNORE;
	case PAM_MF_APPPASS_REVOKED:
		return fail(mf, "apppass_revoked");
	case PAM_MF_APPPASS_PROTOCOL:
		return fail(mf, "apppass_protocol");
	case PAM_MF_APPPASS_OK:
		break;
	}
	if (pam_mf_record_apppass_success(mf, &err) < 0)
		return unavailable(mf, "db_unavailable", &err);
	return finish(mf, PAM_SUCCESS, "ok", "apppass");
}

/* authsucc mode, after every factor passed: use up a code the code mode
   checked with defer (only now that the password is known to be right, so
   a mistyped password does not burn the code), then reset the failure
   count and record the login. */
static int do_authsucc(struct pam_mf *mf)
{
	const void *data = NULL;
	const struct pam_mf_pending *p;
	struct mf_error err;
	int r;

	if (pam_get_data(mf->pamh, PENDING_DATA, &data) == PAM_SUCCESS && data != NULL) {
		p = data;
		if ((r = open_db(mf)) != PAM_SUCCESS)
			return r;
		mf->factor = p->recovery ? "recovery" : "totp";
		r = p->recovery ? pam_mf_use_recovery(mf, p->account_id, p->hashes, false, &err)
		                : pam_mf_accept_step(mf, p->account_id, p->step, &err);
		(void)pam_set_data(mf->pamh, PENDING_DATA, NULL, NULL); /* wipes it */
		if (r < 0)
			return unavailable(mf, "db_unavailable", &err);
		/* a concurrent login used the same code first, or a lock came
		   meanwhile (a step is refused while locked) */
		if (r == 0)
			return strcmp(mf->factor, "recovery") == 0 ? fail(mf, "bad_recovery")
			                                           : code_refused(mf, "replay");
	}
	if (open_db_quiet(mf, &err) < 0 || pam_mf_record_success(mf, &err) < 0)
		pam_syslog(mf->pamh, LOG_WARNING, "cannot reset the failure count: %s", err.msg);
	return PAM_SUCCESS;
}

static int run(pam_handle_t *pamh, bool account, int argc, const char **argv)
{
	struct pam_mf mf;
	struct mf_error err;
	const void *item;
	int ret;

	memset(&mf, 0, sizeof(mf));
	mf.pamh = pamh;
	if (parse_args(pamh, &mf.args, argc, argv) < 0)
		return account ? PAM_PERM_DENIED : PAM_AUTHINFO_UNAVAIL;
	if (account)
		mf.args.mode = PAM_MF_ACCOUNT;
	if (pam_get_user(pamh, &mf.user, NULL) != PAM_SUCCESS || mf.user == NULL ||
	    mf.user[0] == '\0') {
		pam_syslog(pamh, LOG_NOTICE, "no user name");
		return PAM_USER_UNKNOWN;
	}
	if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS)
		mf.service = item;
	if (pam_get_item(pamh, PAM_RHOST, &item) == PAM_SUCCESS)
		mf.rhost = item;

	mf.cfg = mf_config_load(mf.args.config_path, &err);
	if (mf.cfg == NULL) {
		/* no spool location without a configuration: the log is all there is */
		pam_syslog(pamh, LOG_ERR, "%s", err.msg);
		return account ? PAM_PERM_DENIED : PAM_AUTHINFO_UNAVAIL;
	}
	resolve_protocol(&mf);
	resolve_source(&mf);
	if (mf_crypto_init(&err) < 0) {
		ret = unavailable(&mf, "internal_error", &err);
		goto out;
	}

	switch (mf.args.mode) {
	case PAM_MF_AUTH:
		ret = do_auth(&mf);
		break;
	case PAM_MF_APPPASS:
		ret = do_apppass(&mf);
		break;
	case PAM_MF_PREAUTH:
		ret = do_preauth(&mf);
		break;
	case PAM_MF_ACCOUNT:
		ret = do_preauth(&mf);
		/* the account phase has no "ignore, unavailable": refuse */
		ret = ret == PAM_IGNORE ? PAM_SUCCESS : PAM_PERM_DENIED;
		break;
	case PAM_MF_AUTHFAIL:
		mf.factor = "password";
		ret = open_db(&mf);
		if (ret == PAM_SUCCESS)
			ret = fail(&mf, "bad_password");
		break;
	case PAM_MF_AUTHSUCC:
		ret = do_authsucc(&mf);
		break;
	default:
		ret = PAM_AUTHINFO_UNAVAIL;
		break;
	}
out:
	if (!mf.db_shared)
		mf_db_close(&mf.db);
	mf_config_free(&mf.cfg);
	return ret;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	return run(pamh, false, argc, argv);
}

/* Account phase: refuse a locked account also when the authentication did
   not go through this module (ssh public keys, Kerberos). */
PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	return run(pamh, true, argc, argv);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	/* authentication is over: give the database connection back now */
	(void)pam_set_data(pamh, DB_DATA, NULL, NULL);
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}
