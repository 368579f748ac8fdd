/*
 * ctl-totp.c - mailfortctl totp: enrol users for the second factor.
 *
 * SYNOPSIS
 *   mailfortctl totp enroll USER [--confirm CODE] [--force] [--no-qr]
 *   mailfortctl totp status USER
 *   mailfortctl totp reset USER
 *   mailfortctl totp recovery USER
 *
 * enroll creates a new random secret (sealed under totp.key), prints the
 * otpauth:// URI and draws it as a QR code in the terminal.  The secret
 * stays "pending" (pam_mailfort treats the account as not enrolled) until
 * a first valid code confirms it: typed at the prompt when stdin is a
 * terminal, or given later with "enroll USER --confirm CODE", which
 * confirms the pending secret without making a new one.  The confirming
 * code's step is recorded, so it cannot be used again to log in.  An
 * enrolled account is re-enrolled only with --force.
 *
 * recovery replaces the account's unused recovery codes with 10 new ones,
 * printed once and stored only as keyed hashes.  reset removes the secret
 * and the recovery codes.
 *
 * Exit status: 0 success, 1 failure (bad code, no account, database, key),
 * 2 usage.
 */
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-totp.h"

static void usage(FILE *out)
{
	fputs("usage: mailfortctl totp COMMAND USER [OPTIONS]\n\n"
	      "commands:\n"
	      "  enroll USER [--force] [--no-qr]   new secret: otpauth:// URI and QR code;\n"
	      "                                    active after the first valid code\n"
	      "  enroll USER --confirm CODE        activate a pending enrolment\n"
	      "  status USER                       enrolment state, recovery codes left\n"
	      "  reset USER                        remove the secret and recovery codes\n"
	      "  recovery USER                     issue 10 new one-time recovery codes\n",
	      out);
}

/* Draw the QR code with half blocks, two module rows per text line, light
   modules as blocks so it reads as dark-on-light on a dark terminal. */
static int draw_qr(const char *text)
{
	QRcode *qr;
	int x, y, q = 2, w;

	qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (qr == NULL)
		return -1;
	w = qr->width;
	for (y = -q; y < w + q; y += 2) {
		for (x = -q; x < w + q; x++) {
			bool top = y >= 0 && y < w && x >= 0 && x < w && (qr->data[y * w + x] & 1);
			bool bottom = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w &&
			              (qr->data[(y + 1) * w + x] & 1);

			if (y + 1 >= w + q)
				bottom = true; /* past the quiet zone: nothing */
			fputs(!top && !bottom ? "\u2588"
			      : !top          ? "\u2580"
			      : !bottom       ? "\u2584"
			                      : " ",
			      stdout);
		}
		fputc('\n', stdout);
	}
	QRcode_free(qr);
	return 0;
}

struct enrolment {
	char id[24];
	char state[16];
	unsigned digits, period;
	unsigned char *sealed;
	size_t sealed_len;
};

static int load_enrolment(struct ctl *ctl, const char *user, struct enrolment *e)
{
	const char *params[1] = {user};
	struct mf_error err;
	PGresult *res;

	memset(e, 0, sizeof(*e));
	res = mf_db_exec(ctl_db(ctl),
	                 "SELECT id, totp_state, totp_digits, totp_period, totp_secret "
	                 "FROM mailfort.accounts WHERE username = $1",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_fail("no account '%s'", user);
	}
	snprintf(e->id, sizeof(e->id), "%s", PQgetvalue(res, 0, 0));
	snprintf(e->state, sizeof(e->state), "%s", PQgetvalue(res, 0, 1));
	e->digits = (unsigned)atoi(PQgetvalue(res, 0, 2));
	e->period = (unsigned)atoi(PQgetvalue(res, 0, 3));
	if (!PQgetisnull(res, 0, 4))
		e->sealed = mf_db_unescape_bytea(PQgetvalue(res, 0, 4), &e->sealed_len);
	PQclear(res);
	return 0;
}

/* Check code against the pending secret and activate it.  Returns 0, or 1
   after printing why. */
static int confirm(struct ctl *ctl, const char *user, const struct enrolment *e, const char *code)
{
	unsigned char key[32], secret[MF_TOTP_SECRET_BYTES];
	char step_str[24], *hex;
	const char *params[3];
	struct mf_error err;
	PGresult *res;
	uint64_t step;
	int r, n;

	if (e->sealed == NULL)
		return ctl_fail("%s has no pending secret: run 'totp enroll %s' first", user, user);
	if (ctl_server_key(ctl, "totp.key", key) != 0)
		return 1;
	r = mf_totp_secret_open(secret, e->sealed, e->sealed_len, key, &err);
	sodium_memzero(key, sizeof(key));
	if (r < 0)
		return ctl_fail("%s", err.msg);
	r = mf_totp_verify(secret, sizeof(secret), code, strlen(code), e->digits,
	                   mf_totp_step(time(NULL), e->period),
	                   (unsigned)mf_config_int(ctl_config(ctl), "pam", "window"), &step, &err);
	sodium_memzero(secret, sizeof(secret));
	if (r < 0)
		return ctl_fail("%s", err.msg);
	if (r == 0)
		return ctl_fail("%s: the code does not match; check the device's clock and try "
		                "again (the enrolment stays pending)",
		                user);
	snprintf(step_str, sizeof(step_str), "%llu", (unsigned long long)step);
	params[0] = e->id;
	params[1] = step_str;
	/* the secret checked must still be the pending one: a concurrent
	   enroll or reset replaces it */
	params[2] = hex = mf_db_escape_bytea(e->sealed, e->sealed_len);
	if (hex == NULL)
		return ctl_fail("out of memory");
	res = mf_db_exec(ctl_db(ctl),
	                 "UPDATE mailfort.accounts SET totp_state = 'enrolled', "
	                 "totp_enrolled_at = now(), totp_last_step = $2 "
	                 "WHERE id = $1 AND totp_state = 'pending' AND totp_secret = $3",
	                 3, params, &err);
	free(hex);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n != 1)
		return ctl_fail("%s: the enrolment changed meanwhile (enrolled, reset or "
		                "replaced); nothing activated",
		                user);
	if (!ctl->quiet)
		printf("%s: second factor active\n", user);
	return ctl_admin_event(ctl, "totp_enroll", user, NULL);
}

static int enroll(struct ctl *ctl, const char *user, const char *code, bool force, bool no_qr)
{
	unsigned char key[32], secret[MF_TOTP_SECRET_BYTES], sealed[MF_TOTP_SEALED_BYTES];
	const struct mf_config *cfg = ctl_config(ctl);
	struct enrolment e;
	struct mf_error err;
	char digits[8], period[8], *hex, *uri, line[64];
	const char *params[4];
	int ret, tries;

	if (cfg == NULL || ctl_db(ctl) == NULL)
		return 1;
	if (code != NULL) {
		if (load_enrolment(ctl, user, &e) != 0)
			return 1;
		if (strcmp(e.state, "pending") != 0)
			ret = ctl_fail("%s: no pending enrolment to confirm (state: %s)", user,
			               e.state);
		else
			ret = confirm(ctl, user, &e, code);
		free(e.sealed);
		return ret;
	}
	if (ctl_account_id(ctl, user, true, e.id) != 0)
		return 1;
	if (load_enrolment(ctl, user, &e) != 0)
		return 1;
	free(e.sealed);
	if (strcmp(e.state, "enrolled") == 0 && !force)
		return ctl_fail("%s is already enrolled: 'totp enroll %s --force' replaces the "
		                "secret (the old device stops working)",
		                user, user);

	if (ctl_server_key(ctl, "totp.key", key) != 0)
		return 1;
	mf_totp_secret_new(secret);
	mf_totp_secret_seal(sealed, secret, key);
	sodium_memzero(key, sizeof(key));
	hex = mf_db_escape_bytea(sealed, sizeof(sealed));
	snprintf(digits, sizeof(digits), "%lld", (long long)mf_config_int(cfg, "pam", "digits"));
	snprintf(period, sizeof(period), "%lld", (long long)mf_config_int(cfg, "pam", "period"));
	params[0] = e.id;
	params[1] = hex;
	params[2] = digits;
	params[3] = period;
	ret = hex == NULL
	          ? mf_error_set(&err, "out of memory")
	          : mf_db_command(ctl_db(ctl),
	                          "UPDATE mailfort.accounts SET totp_state = 'pending', "
	                          "totp_secret = $2, totp_digits = $3, totp_period = $4, "
	                          "totp_last_step = 0, totp_enrolled_at = NULL WHERE id = $1",
	                          4, params, &err);
	free(hex);
	if (ret < 0) {
		sodium_memzero(secret, sizeof(secret));
		return ctl_fail("%s", err.msg);
	}
	uri = mf_totp_uri(mf_config_str(cfg, "pam", "issuer"), user, secret, sizeof(secret),
	                  (unsigned)atoi(digits), (unsigned)atoi(period));
	sodium_memzero(secret, sizeof(secret));
	if (uri == NULL)
		return ctl_fail("out of memory");
	printf("Scan this with the authenticator app of %s, or enter the URI:\n\n", user);
	if (!no_qr && draw_qr(uri) < 0)
		fprintf(stderr, "mailfortctl: cannot draw the QR code; use the URI\n");
	printf("\n%s\n\n", uri);
	fflush(stdout);
	sodium_memzero(uri, strlen(uri));
	free(uri);

	if (!isatty(STDIN_FILENO)) {
		printf("%s: enrolment pending; activate with "
		       "'mailfortctl totp enroll %s --confirm CODE'\n",
		       user, user);
		return ctl_admin_event(ctl, "totp_pending", user, NULL);
	}
	for (tries = 0; tries < 3; tries++) {
		if (load_enrolment(ctl, user, &e) != 0)
			return 1;
		printf("Code shown by the app (empty to stop): ");
		fflush(stdout);
		if (fgets(line, sizeof(line), stdin) == NULL || line[0] == '\n') {
			free(e.sealed);
			break;
		}
		if (strchr(line, '\n') == NULL) {
			int c;

			/* an over-long line is one wrong answer, not several */
			while ((c = getchar()) != EOF && c != '\n')
				;
		}
		line[strcspn(line, "\r\n")] = '\0';
		ret = confirm(ctl, user, &e, line);
		sodium_memzero(line, sizeof(line));
		free(e.sealed);
		if (ret == 0)
			return 0;
	}
	printf("%s: enrolment pending; activate with "
	       "'mailfortctl totp enroll %s --confirm CODE'\n",
	       user, user);
	return 1;
}

static int status(struct ctl *ctl, const char *user)
{
	const char *params[1] = {user};
	struct mf_error err;
	PGresult *res;

	if (ctl_db(ctl) == NULL)
		return 1;
	res = mf_db_exec(ctl_db(ctl),
	                 "SELECT a.totp_state, a.totp_digits, a.totp_period, "
	                 " coalesce(to_char(a.totp_enrolled_at, 'YYYY-MM-DD HH24:MI:SSOF'), '-'), "
	                 " (SELECT count(*) FROM mailfort.recovery_codes r "
	                 "   WHERE r.account_id = a.id AND r.used_at IS NULL) "
	                 "FROM mailfort.accounts a WHERE a.username = $1",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (PQntuples(res) != 1) {
		PQclear(res);
		printf("user:            %s\nstate:           none (no account)\n", user);
		return 0;
	}
	printf("user:            %s\n"
	       "state:           %s\n"
	       "digits:          %s\n"
	       "period:          %ss\n"
	       "enrolled at:     %s\n"
	       "recovery codes:  %s unused\n",
	       user, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
	       PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
	PQclear(res);
	return 0;
}

static int reset(struct ctl *ctl, const char *user)
{
	char id[24];
	const char *params[1] = {id};
	struct mf_db *db;
	struct mf_error err;

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	db = ctl_db(ctl);
	if (mf_db_begin(db, &err) < 0 ||
	    mf_db_command(db,
	                  "UPDATE mailfort.accounts SET totp_state = 'none', totp_secret = NULL, "
	                  "totp_last_step = 0, totp_enrolled_at = NULL WHERE id = $1",
	                  1, params, &err) < 0 ||
	    mf_db_command(db, "DELETE FROM mailfort.recovery_codes WHERE account_id = $1", 1,
	                  params, &err) < 0 ||
	    mf_db_commit(db, &err) < 0) {
		mf_db_rollback(db);
		return ctl_fail("%s", err.msg);
	}
	if (!ctl->quiet)
		printf("%s: second factor and recovery codes removed\n", user);
	return ctl_admin_event(ctl, "totp_reset", user, NULL);
}

static int recovery(struct ctl *ctl, const char *user)
{
	const struct mf_config *cfg = ctl_config(ctl);
	char codes[MF_RECOVERY_COUNT][MF_RECOVERY_DISPLAY];
	unsigned char key[32], hashes[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES];
	char id[24], *hex;
	const char *params[2];
	enum mf_profile profile;
	struct mf_db *db;
	struct mf_error err;
	int i, ret = 0;

	if (cfg == NULL)
		return 1;
	if (mf_profile_parse(mf_config_str(cfg, "crypto", "profile"), &profile) < 0)
		profile = MF_PROFILE_DEFAULT; /* the config parser allows no other */

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	if (ctl_server_key(ctl, "hash.key", key) != 0)
		return 1;
	db = ctl_db(ctl);
	params[0] = id;
	if (mf_db_begin(db, &err) < 0 ||
	    mf_db_command(db, "DELETE FROM mailfort.recovery_codes WHERE account_id = $1", 1,
	                  params, &err) < 0)
		ret = -1;
	for (i = 0; ret == 0 && i < MF_RECOVERY_COUNT; i++) {
		mf_recovery_new(codes[i]);
		if (mf_recovery_hashes(hashes, codes[i], strlen(codes[i]), key) < 0) {
			ret = mf_error_set(&err, "internal error: generated code not accepted");
			break;
		}
		/* stored with the profile's hash; lookups match either kind */
		hex = mf_db_escape_bytea(hashes[mf_code_hash_for(profile)], MF_KEYED_HASH_BYTES);
		params[1] = hex;
		ret = hex == NULL ? mf_error_set(&err, "out of memory")
		                  : mf_db_command(db,
		                                  "INSERT INTO mailfort.recovery_codes "
		                                  "(account_id, hash) VALUES ($1, $2)",
		                                  2, params, &err);
		free(hex);
	}
	sodium_memzero(key, sizeof(key));
	if (ret == 0)
		ret = mf_db_commit(db, &err);
	if (ret < 0) {
		mf_db_rollback(db);
		sodium_memzero(codes, sizeof(codes));
		return ctl_fail("%s", err.msg);
	}
	if (!ctl->quiet)
		printf("Recovery codes for %s (each works once, in place of the 6-digit code;\n"
		       "the earlier ones no longer work). Shown only now:\n\n",
		       user);
	for (i = 0; i < MF_RECOVERY_COUNT; i++)
		printf("  %s\n", codes[i]);
	sodium_memzero(codes, sizeof(codes));
	return ctl_admin_event(ctl, "totp_recovery", user, NULL);
}

int ctl_totp_cmd(struct ctl *ctl, int argc, char **argv)
{
	const char *cmd, *user, *code = NULL;
	bool force = false, no_qr = false;
	int i;

	if (argc < 1 || ctl_is_help(argv[0])) {
		usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 2 : 0;
	}
	cmd = argv[0];
	if (ctl_user_args(argc, argv, usage, &i) != 0)
		return i;
	user = argv[1];
	for (i = 2; i < argc; i++) {
		if (strcmp(cmd, "enroll") == 0 && strcmp(argv[i], "--confirm") == 0 && i + 1 < argc)
			code = argv[++i];
		else if (strcmp(cmd, "enroll") == 0 && strcmp(argv[i], "--force") == 0)
			force = true;
		else if (strcmp(cmd, "enroll") == 0 && strcmp(argv[i], "--no-qr") == 0)
			no_qr = true;
		else
			return ctl_usage("totp %s: unexpected '%s'", cmd, argv[i]);
	}
	if (strcmp(cmd, "enroll") == 0)
		return enroll(ctl, user, code, force, no_qr);
	if (strcmp(cmd, "status") == 0)
		return status(ctl, user);
	if (strcmp(cmd, "reset") == 0)
		return reset(ctl, user);
	if (strcmp(cmd, "recovery") == 0)
		return recovery(ctl, user);
	return ctl_usage("unknown totp command '%s'", cmd);
}
