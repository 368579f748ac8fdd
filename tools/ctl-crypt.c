/*
 * ctl-crypt.c - mailfortctl crypt: account mail keys and migration.
 *
 * SYNOPSIS
 *   mailfortctl crypt status USER
 *   mailfortctl crypt init USER [--mode server|password]
 *   mailfortctl crypt rewrap USER
 *   mailfortctl crypt app-wrap USER LABEL
 *   mailfortctl crypt migrate USER MAILDIR [--limit N]
 *   mailfortctl crypt recover USER RECOVERY_KEY_FILE [--mode server|password]
 *
 * status shows the account's key pairs (key id, mode, wraps present), its
 * app passwords that carry a wrap, and nothing secret.
 *
 * init makes the account's X25519 key pair (mailfort_crypt(7)), wrapped
 * under master.key (server) or under the user's password (password mode:
 * the password is read as one line from standard input).  It refuses an
 * account that has a current key pair.
 *
 * rewrap, after a password change in password mode: reads the old and the
 * new password (one line each) and wraps the same private key under the
 * new one, so stored mail stays readable.
 *
 * app-wrap, password mode: reads the account password and then the app
 * password LABEL was created with (one line each) and stores a wrap of the
 * private key under that app password, so logins with it can read mail.
 *
 * migrate encrypts in place the plaintext messages of a maildir (MAILDIR
 * and its subfolders) stored before mailfort_crypt was enabled.  Each
 * message is written encrypted to the folder's tmp/, synced, then swapped
 * with the original in one atomic rename (RENAME_EXCHANGE), which fails if
 * Dovecot renamed or expunged the message meanwhile (the message is then
 * skipped and picked up by the next run); owner, mode and mtime (Dovecot's
 * received date) are kept, and so is the file name with its sizes.  An
 * interrupted run leaves every message either plaintext or encrypted, never
 * lost: the next run removes its leftovers ("mfmigrate.*" in tmp/) and goes
 * on.  It removes dovecot.index.cache, which held headers in the clear.
 * --limit stops after N messages.  The plaintext blocks are unlinked, not
 * overwritten: put mail on an encrypted or discard-enabled file system.
 *
 * recover, when the password of a password-mode account is lost: opens the
 * escrow copy of the private key with the offline recovery secret key (32
 * raw bytes, mode 0600, the counterpart of [crypt] escrow_public_key) and
 * wraps the key again, under master.key (--mode server) or under a new
 * password read from standard input (default: password).  Stored mail stays
 * readable; the escrow copy is kept.
 *
 * Secrets read from standard input are wiped after use and never printed.
 * Exit status: 0 success, 1 failure (no account or key, wrong password,
 * database, key file, file system), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-totp.h"
#include "mf-io.h"
#include "mf-mailcrypt.h"

#define SECRET_MAX     1024
#define MIGRATE_PREFIX "mfmigrate."

static void usage(FILE *out)
{
	fputs(
	    "usage: mailfortctl crypt COMMAND\n\n"
	    "commands:\n"
	    "  status USER                         key pairs and wraps of the account\n"
	    "  init USER [--mode server|password]  make the account's key pair\n"
	    "  rewrap USER                         after a password change (reads old, new)\n"
	    "  app-wrap USER LABEL                 let app password LABEL read mail\n"
	    "                                      (reads the account password, the app password)\n"
	    "  migrate USER MAILDIR [--limit N]    encrypt plaintext messages in place\n"
	    "  recover USER RECOVERY_KEY [--mode server|password]\n"
	    "                                      rewrap from the escrow copy (reads new "
	    "password)\n",
	    out);
}

/* One line from stdin without its newline, echo off on a terminal. */
static int read_secret(const char *prompt, char buf[SECRET_MAX])
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) != 0;
	size_t len;

	if (tty) {
		fprintf(stderr, "%s: ", prompt);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		} else {
			tty = false;
		}
	}
	if (fgets(buf, SECRET_MAX, stdin) == NULL)
		buf[0] = '\0';
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	if (len == 0)
		return ctl_fail("%s: nothing read", prompt);
	return 0;
}

struct keyrow {
	char id[24];
	unsigned char pk[MF_ACCOUNT_PK_BYTES];
	unsigned char *wrapped;
	size_t wrapped_len;
	char mode[16];
};

/* The account's current key pair.  Returns 1 found, 0 none, -1 error. */
static int current_key(struct ctl *ctl, const char *account_id, struct keyrow *k)
{
	const char *params[1] = {account_id};
	struct mf_error err;
	unsigned char *pk;
	size_t pk_len;
	PGresult *res;

	res = mf_db_exec(ctl_db(ctl),
	                 "SELECT id, public_key, wrapped_private, mode FROM mailfort.mail_keys "
	                 "WHERE account_id = $1 AND retired_at IS NULL",
	                 1, params, &err);
	if (res == NULL) {
		ctl_fail("%s", err.msg);
		return -1;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	snprintf(k->id, sizeof(k->id), "%s", PQgetvalue(res, 0, 0));
	snprintf(k->mode, sizeof(k->mode), "%s", PQgetvalue(res, 0, 3));
	pk = mf_db_unescape_bytea(PQgetvalue(res, 0, 1), &pk_len);
	k->wrapped = mf_db_unescape_bytea(PQgetvalue(res, 0, 2), &k->wrapped_len);
	PQclear(res);
	if (pk == NULL || pk_len != sizeof(k->pk) || k->wrapped == NULL) {
		free(pk);
		free(k->wrapped);
		ctl_fail("mailfort.mail_keys holds a malformed key (id %s)", k->id);
		return -1;
	}
	memcpy(k->pk, pk, sizeof(k->pk));
	free(pk);
	return 1;
}

static int cmd_status(struct ctl *ctl, const char *user)
{
	const char *params[1];
	struct mf_error err;
	char id[24], hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1];
	PGresult *res;
	int i, n;

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	params[0] = id;
	res = mf_db_exec(ctl_db(ctl),
	                 "SELECT public_key, mode, escrow_wrap IS NOT NULL, "
	                 "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z', "
	                 "coalesce(to_char(retired_at AT TIME ZONE 'UTC', "
	                 "'YYYY-MM-DD HH24:MI:SS') || 'Z', '') "
	                 "FROM mailfort.mail_keys WHERE account_id = $1 "
	                 "ORDER BY retired_at IS NULL DESC, id DESC",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	n = PQntuples(res);
	printf("account: %s\n", user);
	if (n == 0)
		printf("keys:    none (server mode makes one on first delivery; "
		       "password mode: crypt init)\n");
	for (i = 0; i < n; i++) {
		size_t len;
		unsigned char *pk = mf_db_unescape_bytea(PQgetvalue(res, i, 0), &len);

		if (pk == NULL || len != MF_ACCOUNT_PK_BYTES) {
			free(pk);
			PQclear(res);
			return ctl_fail("mailfort.mail_keys holds a malformed key");
		}
		mf_account_key_id_hex(hex, pk);
		free(pk);
		printf(
		    "key:     %s  mode %s  escrow %s  created %s%s%s\n", hex, PQgetvalue(res, i, 1),
		    strcmp(PQgetvalue(res, i, 2), "t") == 0 ? "yes" : "no", PQgetvalue(res, i, 3),
		    PQgetvalue(res, i, 4)[0] != '\0' ? "  retired " : "", PQgetvalue(res, i, 4));
	}
	PQclear(res);
	res = mf_db_exec(ctl_db(ctl),
	                 "SELECT label, wrapped_mail_key IS NOT NULL FROM mailfort.app_passwords "
	                 "WHERE account_id = $1 AND revoked_at IS NULL ORDER BY id",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	for (i = 0; i < PQntuples(res); i++) {
		printf("apppass: %s  %s\n", PQgetvalue(res, i, 0),
		       strcmp(PQgetvalue(res, i, 1), "t") == 0 ? "can read mail"
		                                               : "no mail key wrap");
	}
	PQclear(res);
	return 0;
}

static int store_key(struct ctl *ctl, const char *id, const unsigned char *pk,
                     const unsigned char *wrapped, size_t wrapped_len, const char *mode,
                     const unsigned char *escrow, size_t escrow_len)
{
	char *pk_hex = mf_db_escape_bytea(pk, MF_ACCOUNT_PK_BYTES);
	char *w_hex = mf_db_escape_bytea(wrapped, wrapped_len);
	char *e_hex = escrow != NULL ? mf_db_escape_bytea(escrow, escrow_len) : NULL;
	const char *params[5] = {id, pk_hex, w_hex, mode, e_hex};
	struct mf_error err;
	int ret = 0;

	if (pk_hex == NULL || w_hex == NULL || (escrow != NULL && e_hex == NULL))
		ret = ctl_fail("out of memory");
	else if (mf_db_command(ctl_db(ctl),
	                       "INSERT INTO mailfort.mail_keys "
	                       "(account_id, public_key, wrapped_private, mode, escrow_wrap) "
	                       "VALUES ($1, $2, $3, $4, $5)",
	                       5, params, &err) < 0)
		ret = ctl_fail("%s", err.msg);
	free(pk_hex);
	free(w_hex);
	free(e_hex);
	return ret;
}

static int cmd_init(struct ctl *ctl, const char *user, const char *mode)
{
	const struct mf_config *cfg = ctl_config(ctl);
	unsigned char pk[MF_ACCOUNT_PK_BYTES], sk[MF_ACCOUNT_SK_BYTES], key[32];
	unsigned char wrapped[MF_ACCOUNT_WRAP_MAX], escrow[MF_ACCOUNT_ESCROW_BYTES];
	unsigned char escrow_pk[crypto_box_PUBLICKEYBYTES];
	const char *escrow_path;
	char id[24], pw[SECRET_MAX], hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1];
	struct keyrow k;
	struct mf_error err;
	size_t wrapped_len;
	int ret;

	if (cfg == NULL)
		return 1;
	if (mode == NULL)
		mode = mf_config_str(cfg, "crypt", "mode");
	if (strcmp(mode, "server") != 0 && strcmp(mode, "password") != 0)
		return ctl_usage("--mode must be server or password, not '%s'", mode);
	if (ctl_account_id(ctl, user, true, id) != 0)
		return 1;
	ret = current_key(ctl, id, &k);
	if (ret < 0)
		return 1;
	if (ret > 0) {
		free(k.wrapped);
		mf_account_key_id_hex(hex, k.pk);
		return ctl_fail("%s already has a current key pair (%s)", user, hex);
	}
	escrow_path = mf_config_str(cfg, "crypt", "escrow_public_key");
	if (escrow_path != NULL &&
	    mf_key_load(escrow_path, MF_KEY_PUBLIC, escrow_pk, sizeof(escrow_pk), &err) < 0)
		return ctl_fail("%s", err.msg);

	if (strcmp(mode, "password") == 0) {
		if (read_secret("password", pw) != 0)
			return 1;
		mf_account_keypair(pk, sk);
		ret = mf_account_wrap_password(wrapped, pk, sk, pw, strlen(pw),
		                               &mf_pwhash_interactive, &err);
		sodium_memzero(pw, sizeof(pw));
		wrapped_len = MF_ACCOUNT_WRAP_PASSWORD_BYTES;
	} else {
		if (ctl_server_key(ctl, "master.key", key) != 0)
			return 1;
		mf_account_keypair(pk, sk);
		ret = mf_account_wrap_server(wrapped, pk, sk, key, &err);
		sodium_memzero(key, sizeof(key));
		wrapped_len = MF_ACCOUNT_WRAP_SERVER_BYTES;
	}
	if (ret == 0 && escrow_path != NULL)
		ret = mf_account_escrow(escrow, sk, escrow_pk, &err);
	sodium_memzero(sk, sizeof(sk));
	if (ret < 0)
		return ctl_fail("%s", err.msg);
	if (store_key(ctl, id, pk, wrapped, wrapped_len, mode, escrow_path != NULL ? escrow : NULL,
	              sizeof(escrow)) != 0)
		return 1;
	mf_account_key_id_hex(hex, pk);
	if (!ctl->quiet)
		printf("%s: %s key pair %s\n", user, mode, hex);
	return ctl_admin_event(ctl, "crypt_init", user, mode);
}

/* Unwrap the current password-mode key with pw (a login password). */
static int unwrap_password(struct keyrow *k, const char *pw, unsigned char sk[MF_ACCOUNT_SK_BYTES])
{
	struct mf_error err;

	if (strcmp(k->mode, "password") != 0)
		return ctl_fail("the key is in %s mode; rewrap and app-wrap are for password mode",
		                k->mode);
	if (mf_account_unwrap_password(sk, k->wrapped, k->wrapped_len, k->pk, pw, strlen(pw),
	                               &err) < 0)
		return ctl_fail("the password does not unwrap the mail key");
	return 0;
}

static int cmd_rewrap(struct ctl *ctl, const char *user)
{
	unsigned char sk[MF_ACCOUNT_SK_BYTES], wrapped[MF_ACCOUNT_WRAP_PASSWORD_BYTES];
	char id[24], oldpw[SECRET_MAX], newpw[SECRET_MAX], *hex;
	const char *params[2];
	struct keyrow k;
	struct mf_error err;
	int ret;

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	ret = current_key(ctl, id, &k);
	if (ret <= 0)
		return ret < 0 ? 1 : ctl_fail("%s has no mail key", user);
	ret = 1;
	if (read_secret("old password", oldpw) == 0 && read_secret("new password", newpw) == 0 &&
	    unwrap_password(&k, oldpw, sk) == 0) {
		if (mf_account_wrap_password(wrapped, k.pk, sk, newpw, strlen(newpw),
		                             &mf_pwhash_interactive, &err) < 0) {
			ret = ctl_fail("%s", err.msg);
		} else if ((hex = mf_db_escape_bytea(wrapped, sizeof(wrapped))) == NULL) {
			ret = ctl_fail("out of memory");
		} else {
			params[0] = k.id;
			params[1] = hex;
			if (mf_db_command(ctl_db(ctl),
			                  "UPDATE mailfort.mail_keys SET wrapped_private = $2 "
			                  "WHERE id = $1",
			                  2, params, &err) < 0)
				ret = ctl_fail("%s", err.msg);
			else
				ret = 0;
			free(hex);
		}
	}
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(oldpw, sizeof(oldpw));
	sodium_memzero(newpw, sizeof(newpw));
	free(k.wrapped);
	if (ret != 0)
		return ret;
	if (!ctl->quiet)
		printf("%s: mail key wrapped under the new password\n", user);
	return ctl_admin_event(ctl, "crypt_rewrap", user, NULL);
}

static int cmd_app_wrap(struct ctl *ctl, const char *user, const char *label)
{
	unsigned char sk[MF_ACCOUNT_SK_BYTES], wrapped[MF_ACCOUNT_WRAP_PASSWORD_BYTES];
	char id[24], pw[SECRET_MAX], app[SECRET_MAX], norm[MF_APPPASS_CHARS + 1], *hex;
	const char *params[3];
	struct keyrow k;
	struct mf_error err;
	PGresult *res;
	int ret;

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	ret = current_key(ctl, id, &k);
	if (ret <= 0)
		return ret < 0 ? 1 : ctl_fail("%s has no mail key", user);
	ret = 1;
	if (read_secret("account password", pw) == 0 && read_secret("app password", app) == 0 &&
	    unwrap_password(&k, pw, sk) == 0) {
		/* app passwords wrap in their normal form, as pam_mailfort and
		   the plugin use them */
		if (mf_apppass_normalise(norm, app, strlen(app)) < 0) {
			ret = ctl_fail("that is not an app password (%d letters and digits as "
			               "mailfortctl apppass add printed them; dashes and spaces "
			               "may be left out)",
			               MF_APPPASS_CHARS);
		} else if (mf_account_wrap_password(wrapped, k.pk, sk, norm, MF_APPPASS_CHARS,
		                                    &mf_pwhash_interactive, &err) < 0) {
			ret = ctl_fail("%s", err.msg);
		} else if ((hex = mf_db_escape_bytea(wrapped, sizeof(wrapped))) == NULL) {
			ret = ctl_fail("out of memory");
		} else {
			params[0] = id;
			params[1] = label;
			params[2] = hex;
			res = mf_db_exec(
			    ctl_db(ctl),
			    "UPDATE mailfort.app_passwords SET wrapped_mail_key = $3 "
			    "WHERE account_id = $1 AND label = $2 AND revoked_at IS NULL "
			    "RETURNING id",
			    3, params, &err);
			if (res == NULL)
				ret = ctl_fail("%s", err.msg);
			else if (PQntuples(res) == 0)
				ret = ctl_fail("%s has no active app password labelled '%s'", user,
				               label);
			else
				ret = 0;
			if (res != NULL)
				PQclear(res);
			free(hex);
		}
	}
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(app, sizeof(app));
	sodium_memzero(norm, sizeof(norm));
	free(k.wrapped);
	if (ret != 0)
		return ret;
	if (!ctl->quiet)
		printf("%s: app password '%s' can read mail\n", user, label);
	return ctl_admin_event(ctl, "crypt_app_wrap", user, label);
}

static int cmd_recover(struct ctl *ctl, const char *user, const char *keyfile, const char *mode)
{
	unsigned char rsk[crypto_box_SECRETKEYBYTES], rpk[crypto_box_PUBLICKEYBYTES];
	unsigned char sk[MF_ACCOUNT_SK_BYTES], master[32], wrapped[MF_ACCOUNT_WRAP_MAX];
	char id[24], pw[SECRET_MAX], *hex = NULL;
	const char *params[3];
	size_t wrapped_len = 0;
	unsigned char *escrow;
	size_t escrow_len;
	struct keyrow k;
	struct mf_error err;
	PGresult *res;
	int ret;

	if (strcmp(mode, "server") != 0 && strcmp(mode, "password") != 0)
		return ctl_usage("--mode must be server or password, not '%s'", mode);
	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	ret = current_key(ctl, id, &k);
	if (ret <= 0)
		return ret < 0 ? 1 : ctl_fail("%s has no mail key", user);
	free(k.wrapped);
	params[0] = k.id;
	res = mf_db_exec(ctl_db(ctl), "SELECT escrow_wrap FROM mailfort.mail_keys WHERE id = $1", 1,
	                 params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	escrow = PQgetisnull(res, 0, 0) ? NULL
	                                : mf_db_unescape_bytea(PQgetvalue(res, 0, 0), &escrow_len);
	PQclear(res);
	if (escrow == NULL)
		return ctl_fail("%s's key has no escrow copy", user);
	if (mf_key_load(keyfile, MF_KEY_SECRET, rsk, sizeof(rsk), &err) < 0) {
		free(escrow);
		return ctl_fail("%s", err.msg);
	}
	crypto_scalarmult_base(rpk, rsk);
	ret = mf_account_escrow_open(sk, escrow, escrow_len, k.pk, rpk, rsk, &err);
	sodium_memzero(rsk, sizeof(rsk));
	free(escrow);
	if (ret < 0)
		return ctl_fail("the recovery key does not open the escrow copy: %s", err.msg);

	ret = 1;
	if (strcmp(mode, "server") == 0) {
		if (ctl_server_key(ctl, "master.key", master) == 0) {
			ret = mf_account_wrap_server(wrapped, k.pk, sk, master, &err) < 0
			          ? ctl_fail("%s", err.msg)
			          : 0;
			wrapped_len = MF_ACCOUNT_WRAP_SERVER_BYTES;
		}
		sodium_memzero(master, sizeof(master));
	} else if (read_secret("new password", pw) == 0) {
		ret = mf_account_wrap_password(wrapped, k.pk, sk, pw, strlen(pw),
		                               &mf_pwhash_interactive, &err) < 0
		          ? ctl_fail("%s", err.msg)
		          : 0;
		wrapped_len = MF_ACCOUNT_WRAP_PASSWORD_BYTES;
		sodium_memzero(pw, sizeof(pw));
	}
	sodium_memzero(sk, sizeof(sk));
	if (ret == 0 && (hex = mf_db_escape_bytea(wrapped, wrapped_len)) == NULL)
		ret = ctl_fail("out of memory");
	if (ret == 0) {
		params[0] = k.id;
		params[1] = hex;
		params[2] = mode;
		if (mf_db_command(ctl_db(ctl),
		                  "UPDATE mailfort.mail_keys SET wrapped_private = $2, mode = $3 "
		                  "WHERE id = $1",
		                  3, params, &err) < 0)
			ret = ctl_fail("%s", err.msg);
	}
	free(hex);
	if (ret != 0)
		return ret;
	if (!ctl->quiet)
		printf("%s: mail key recovered from the escrow copy, now in %s mode\n", user, mode);
	return ctl_admin_event(ctl, "crypt_recover", user, mode);
}

/* ---- migrate ---- */

struct migrate {
	unsigned char pk[MF_ACCOUNT_PK_BYTES];
	struct mf_mailcrypt_writer writer;
	unsigned char in[65536];
	unsigned char out[MF_MAILCRYPT_UPDATE_OUT_MAX(65536)];
	long limit; /* < 0: none */
	unsigned long done, skipped, failed, plain_left;
};

/* Encrypt src into the open file dst_fd. */
static int encrypt_file(struct migrate *m, int src_fd, int dst_fd, struct mf_error *err)
{
	unsigned char header[MF_MAILCRYPT_HEADER_SIZE];
	size_t out_len;
	ssize_t n;

	if (mf_mailcrypt_writer_init(&m->writer, m->pk, header, err) < 0)
		return -1;
	if (mf_write_all(dst_fd, header, sizeof(header)) < 0)
		goto fail_errno;
	while ((n = read(src_fd, m->in, sizeof(m->in))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail_errno;
		}
		if (mf_mailcrypt_writer_update(&m->writer, m->in, (size_t)n, m->out, sizeof(m->out),
		                               &out_len, err) < 0)
			return -1;
		if (mf_write_all(dst_fd, m->out, out_len) < 0)
			goto fail_errno;
	}
	if (mf_mailcrypt_writer_final(&m->writer, m->out, sizeof(m->out), &out_len, err) < 0)
		return -1;
	sodium_memzero(m->in, sizeof(m->in));
	if (mf_write_all(dst_fd, m->out, out_len) < 0 || fsync(dst_fd) < 0)
		goto fail_errno;
	return 0;
fail_errno:
	mf_mailcrypt_writer_clear(&m->writer);
	sodium_memzero(m->in, sizeof(m->in));
	return mf_error_set(err, "write: %s", strerror(errno));
}

/* Encrypt one message file of folder dir (which has tmp/). */
static int migrate_file(struct migrate *m, const char *dir, const char *sub, const char *name)
{
	char path[4096], tmp[4096];
	unsigned char magic[MF_MAILCRYPT_MAGIC_SIZE];
	struct stat st, swapped;
	struct timespec times[2];
	struct mf_error err;
	int src = -1, dst = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	snprintf(tmp, sizeof(tmp), "%s/tmp/" MIGRATE_PREFIX "%ld.%s", dir, (long)getpid(), name);
	src = open(path, O_RDONLY | O_NOFOLLOW);
	if (src < 0) {
		m->skipped++; /* renamed or expunged meanwhile */
		return 0;
	}
	if (fstat(src, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(src);
		return 0;
	}
	n = pread(src, magic, sizeof(magic), 0);
	if (n == (ssize_t)sizeof(magic) && mf_mailcrypt_is_ciphertext(magic, sizeof(magic))) {
		close(src);
		return 0; /* already encrypted */
	}
	if (m->limit >= 0 && (long)m->done >= m->limit) {
		m->plain_left++;
		close(src);
		return 0;
	}
	dst = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (dst < 0) {
		fprintf(stderr, "mailfortctl: %s: %s\n", tmp, strerror(errno));
		close(src);
		m->failed++;
		return -1;
	}
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	if (encrypt_file(m, src, dst, &err) < 0 || fchown(dst, st.st_uid, st.st_gid) < 0 ||
	    fchmod(dst, st.st_mode & 07777) < 0 || futimens(dst, times) < 0) {
		fprintf(stderr, "mailfortctl: %s: %s\n", path,
		        err.msg[0] ? err.msg : strerror(errno));
		goto fail;
	}
	close(dst);
	dst = -1;
	/* Swap, so that a message Dovecot renamed meanwhile is not brought
	   back under its old name: the exchange needs both names to exist. */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0) {
		if (errno == ENOENT) {
			m->skipped++;
			unlink(tmp);
			close(src);
			return 0;
		}
		fprintf(stderr, "mailfortctl: rename(%s): %s\n", path, strerror(errno));
		goto fail;
	}
	/* tmp is the plaintext now; make sure it is the file we encrypted */
	if (stat(tmp, &swapped) < 0 || swapped.st_ino != st.st_ino || swapped.st_dev != st.st_dev ||
	    swapped.st_size != st.st_size) {
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0)
			fprintf(stderr,
			        "mailfortctl: %s changed during migration; its plaintext "
			        "is kept as %s\n",
			        path, tmp);
		else
			unlink(tmp);
		m->skipped++;
		close(src);
		return 0;
	}
	if (unlink(tmp) < 0)
		fprintf(stderr, "mailfortctl: unlink(%s): %s\n", tmp, strerror(errno));
	close(src);
	m->done++;
	return 0;
fail:
	if (dst >= 0)
		close(dst);
	unlink(tmp);
	close(src);
	m->failed++;
	return -1;
}

/* Remove what an interrupted run left in dir/tmp. */
static void migrate_cleanup(const char *dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tmp", dir);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, MIGRATE_PREFIX, strlen(MIGRATE_PREFIX)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/tmp/%s", dir, de->d_name);
		if (unlink(path) == 0)
			fprintf(stderr, "mailfortctl: removed %s, left by an interrupted run\n",
			        path);
	}
	closedir(d);
}

static int migrate_folder(struct migrate *m, const char *dir)
{
	static const char *const subs[] = {"cur", "new"};
	char path[4096];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	migrate_cleanup(dir);
	for (size_t i = 0; i < MF_N_ELEMENTS(subs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (migrate_file(m, dir, subs[i], de->d_name) < 0)
				ret = -1;
		}
		closedir(d);
	}
	snprintf(path, sizeof(path), "%s/dovecot.index.cache", dir);
	if (unlink(path) < 0 && errno != ENOENT) {
		fprintf(stderr, "mailfortctl: unlink(%s): %s\n", path, strerror(errno));
		ret = -1;
	}
	return ret;
}

static int cmd_migrate(struct ctl *ctl, const char *user, const char *maildir, long limit)
{
	struct migrate *m;
	struct keyrow k;
	struct dirent *de;
	char id[24], path[4096];
	struct stat st;
	DIR *d;
	int ret;

	if (stat(maildir, &st) < 0 || !S_ISDIR(st.st_mode))
		return ctl_fail("%s: not a directory", maildir);
	snprintf(path, sizeof(path), "%s/cur", maildir);
	if (stat(path, &st) < 0)
		return ctl_fail("%s: not a maildir (no cur/)", maildir);
	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	ret = current_key(ctl, id, &k);
	if (ret <= 0)
		return ret < 0 ? 1
		               : ctl_fail("%s has no mail key yet (crypt init, or one delivery "
		                          "in server mode)",
		                          user);
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		free(k.wrapped);
		return ctl_fail("out of memory");
	}
	memcpy(m->pk, k.pk, sizeof(m->pk));
	free(k.wrapped);
	m->limit = limit;

	ret = migrate_folder(m, maildir);
	if ((d = opendir(maildir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s/cur", maildir, de->d_name);
			if (stat(path, &st) < 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", maildir, de->d_name);
			if (migrate_folder(m, path) < 0)
				ret = -1;
		}
		closedir(d);
	}
	printf("%s: %lu encrypted, %lu skipped (changed meanwhile), %lu failed, "
	       "%lu left for the next run\n",
	       user, m->done, m->skipped, m->failed, m->plain_left);
	mf_mailcrypt_writer_clear(&m->writer);
	free(m);
	if (ret < 0)
		return 1;
	return ctl_admin_event(ctl, "crypt_migrate", user, maildir);
}

int ctl_crypt_cmd(struct ctl *ctl, int argc, char **argv)
{
	const char *cmd = argc > 0 ? argv[0] : NULL;

	if (cmd == NULL || ctl_is_help(cmd)) {
		usage(cmd == NULL ? stderr : stdout);
		return cmd == NULL ? 2 : 0;
	}
	if (argc < 2)
		return ctl_usage("crypt %s needs a USER", cmd);
	if (strcmp(cmd, "status") == 0 && argc == 2)
		return cmd_status(ctl, argv[1]);
	if (strcmp(cmd, "init") == 0) {
		if (argc == 2)
			return cmd_init(ctl, argv[1], NULL);
		if (argc == 4 && strcmp(argv[2], "--mode") == 0)
			return cmd_init(ctl, argv[1], argv[3]);
		return ctl_usage("crypt init USER [--mode server|password]");
	}
	if (strcmp(cmd, "rewrap") == 0 && argc == 2)
		return cmd_rewrap(ctl, argv[1]);
	if (strcmp(cmd, "app-wrap") == 0 && argc == 3)
		return cmd_app_wrap(ctl, argv[1], argv[2]);
	if (strcmp(cmd, "migrate") == 0 && (argc == 3 || argc == 5)) {
		long limit = -1;
		char *end;

		if (argc == 5) {
			if (strcmp(argv[3], "--limit") != 0)
				return ctl_usage("crypt migrate USER MAILDIR [--limit N]");
			errno = 0;
			limit = strtol(argv[4], &end, 10);
			if (errno != 0 || *end != '\0' || limit < 0)
				return ctl_usage("--limit wants a number >= 0, not '%s'", argv[4]);
		}
		return cmd_migrate(ctl, argv[1], argv[2], limit);
	}
	if (strcmp(cmd, "recover") == 0) {
		if (argc == 3)
			return cmd_recover(ctl, argv[1], argv[2], "password");
		if (argc == 5 && strcmp(argv[3], "--mode") == 0)
			return cmd_recover(ctl, argv[1], argv[2], argv[4]);
		return ctl_usage("crypt recover USER RECOVERY_KEY [--mode server|password]");
	}
	return ctl_usage("unknown crypt command or wrong arguments: %s", cmd);
}
