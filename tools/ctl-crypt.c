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
	    "  status USER [MAILDIR]               key pairs and wraps of the account;\n"
	    "                                      messages per algorithm in MAILDIR\n"
	    "  init USER [--mode server|password]  make the account's key pair\n"
	    "  rewrap USER                         after a password change (reads old, new)\n"
	    "  app-wrap USER LABEL                 let app password LABEL read mail\n"
	    "                                      (reads the account password, the app password)\n"
	    "  migrate USER MAILDIR [--limit N] [--profile default|kcmvp]\n"
	    "                                      encrypt plaintext, re-encrypt to the profile\n"
	    "                                      and add the server authenticator, in place\n"
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
	unsigned char pk[MF_ACCOUNT_PK_MAX];
	size_t pk_len;
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
	if (pk == NULL || mf_key_alg_of(pk_len) == 0 || k->wrapped == NULL) {
		free(pk);
		free(k->wrapped);
		ctl_fail("mailfort.mail_keys holds a malformed key (id %s)", k->id);
		return -1;
	}
	memcpy(k->pk, pk, pk_len);
	k->pk_len = pk_len;
	free(pk);
	return 1;
}

/* ---- walking a maildir ---- */

/* fn for every message file of one folder (in cur/ and new/); -1 when any
   call returned -1. */
typedef int maildir_file_fn(void *ctx, const char *dir, const char *sub, const char *name);

static int folder_each_file(const char *dir, maildir_file_fn *fn, void *ctx)
{
	static const char *const subs[] = {"cur", "new"};
	char path[4096];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	for (size_t i = 0; i < MF_N_ELEMENTS(subs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] != '.' && fn(ctx, dir, subs[i], de->d_name) < 0)
				ret = -1;
		}
		closedir(d);
	}
	return ret;
}

/* fn for every folder of a maildir: the top and each ".Name" subfolder
   that has cur/; -1 when any call returned -1. */
static int maildir_each_folder(const char *maildir, int (*fn)(void *ctx, const char *dir),
                               void *ctx)
{
	char path[4096];
	struct dirent *de;
	struct stat st;
	int ret;
	DIR *d;

	ret = fn(ctx, maildir);
	if ((d = opendir(maildir)) == NULL)
		return ret;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/cur", maildir, de->d_name);
		if (stat(path, &st) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", maildir, de->d_name);
		if (fn(ctx, path) < 0)
			ret = -1;
	}
	closedir(d);
	return ret;
}

/* Count the messages of every folder of a maildir per stored format. */
struct census {
	unsigned long plain, damaged, by_version[4], without_mac, total;
};

static int census_file(void *ctx, const char *dir, const char *sub, const char *name)
{
	struct census *c = ctx;
	unsigned char head[MF_MAILCRYPT_PREFIX_SIZE];
	struct mf_mailcrypt_info info;
	struct mf_error err;
	char path[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW)) < 0)
		return 0;
	n = pread(fd, head, sizeof(head), 0);
	close(fd);
	c->total++;
	if (n < 0 || !mf_mailcrypt_is_ciphertext(head, (size_t)n))
		c->plain++;
	else if (mf_mailcrypt_peek(head, (size_t)n, &info, &err) < 0)
		c->damaged++;
	else {
		c->by_version[info.version]++;
		if ((info.flags & MF_MAILCRYPT_FLAG_MAC) == 0)
			c->without_mac++;
	}
	return 0;
}

static int census_folder(void *ctx, const char *dir)
{
	return folder_each_file(dir, census_file, ctx);
}

static void census_print(const char *maildir)
{
	struct census c;

	memset(&c, 0, sizeof(c));
	(void)maildir_each_folder(maildir, census_folder, &c);
	printf("messages: %lu in %s\n", c.total, maildir);
	printf("  plaintext:                                 %lu\n", c.plain);
	for (unsigned int v = MF_MAILCRYPT_VERSION_1; v <= MF_MAILCRYPT_VERSION_3; v++)
		printf("  version %u (%s, %s):%*s%lu\n", v, mf_mailcrypt_chunk_alg(v),
		       mf_mailcrypt_seal_alg(v),
		       (int)(30 - strlen(mf_mailcrypt_chunk_alg(v)) -
		             strlen(mf_mailcrypt_seal_alg(v))),
		       "", c.by_version[v]);
	printf("  unreadable header:                         %lu\n", c.damaged);
	printf("without server authenticator: %lu\n", c.without_mac + c.plain);
	printf("under algorithms not on the kcmvp list: %lu\n",
	       c.plain + c.by_version[1] + c.by_version[2]);
}

static int cmd_status(struct ctl *ctl, const char *user, const char *maildir)
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

		unsigned char kid[MF_ACCOUNT_KEY_ID_BYTES];

		if (pk == NULL || mf_key_alg_of(len) == 0 ||
		    mf_account_key_id_any(kid, pk, len, &err) < 0) {
			free(pk);
			PQclear(res);
			return ctl_fail("mailfort.mail_keys holds a malformed key");
		}
		sodium_bin2hex(hex, sizeof(hex), kid, sizeof(kid));
		free(pk);
		printf("key:     %s  %s  mode %s  escrow %s  created %s%s%s\n", hex,
		       mf_key_alg_name(mf_key_alg_of(len)), PQgetvalue(res, i, 1),
		       strcmp(PQgetvalue(res, i, 2), "t") == 0 ? "yes" : "no",
		       PQgetvalue(res, i, 3), PQgetvalue(res, i, 4)[0] != '\0' ? "  retired " : "",
		       PQgetvalue(res, i, 4));
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
	if (maildir != NULL)
		census_print(maildir);
	return 0;
}

static int store_key(struct ctl *ctl, const char *id, const unsigned char *pk, size_t pk_len,
                     const unsigned char *wrapped, size_t wrapped_len, const char *mode,
                     const unsigned char *escrow, size_t escrow_len)
{
	char *pk_hex = mf_db_escape_bytea(pk, pk_len);
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
	unsigned char pk[MF_ACCOUNT_PK_MAX], sk[MF_ACCOUNT_SK_BYTES], key[32];
	unsigned char wrapped[MF_ACCOUNT_WRAP_MAX], escrow[MF_ACCOUNT_ESCROW_MAX];
	unsigned char kid[MF_ACCOUNT_KEY_ID_BYTES];
	const char *escrow_path;
	char id[24], pw[SECRET_MAX], hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1];
	enum mf_profile profile;
	enum mf_key_alg alg;
	struct keyrow k;
	struct mf_error err;
	size_t wrapped_len = 0, escrow_len = 0, pk_len;
	int ret;

	if (cfg == NULL)
		return 1;
	if (mode == NULL)
		mode = mf_config_str(cfg, "crypt", "mode");
	if (strcmp(mode, "server") != 0 && strcmp(mode, "password") != 0)
		return ctl_usage("--mode must be server or password, not '%s'", mode);
	if (mf_profile_parse(mf_config_str(cfg, "crypto", "profile"), &profile) < 0)
		return ctl_fail("[crypto] profile is neither default nor kcmvp");
	alg = mf_profile_key_alg(profile);
	pk_len = mf_key_alg_pk_bytes(alg);
	if (ctl_account_id(ctl, user, true, id) != 0)
		return 1;
	ret = current_key(ctl, id, &k);
	if (ret < 0)
		return 1;
	if (ret > 0) {
		free(k.wrapped);
		return ctl_fail("%s already has a current key pair", user);
	}
	escrow_path = mf_config_str(cfg, "crypt", "escrow_public_key");
	if (strcmp(mode, "password") == 0) {
		if (read_secret("password", pw) != 0)
			return 1;
		ret = mf_account_keypair_alg(alg, pk, sk, &err);
		if (ret == 0)
			ret = mf_account_wrap_password_any(wrapped, &wrapped_len, pk, pk_len, sk,
			                                   pw, strlen(pw), &err);
		sodium_memzero(pw, sizeof(pw));
	} else {
		if (ctl_server_key(ctl, "master.key", key) != 0)
			return 1;
		ret = mf_account_keypair_alg(alg, pk, sk, &err);
		if (ret == 0)
			ret = mf_account_wrap_server_any(wrapped, &wrapped_len, pk, pk_len, sk, key,
			                                 &err);
		sodium_memzero(key, sizeof(key));
	}
	if (ret == 0 && escrow_path != NULL)
		ret = mf_account_escrow_any(escrow, &escrow_len, sk, pk_len, escrow_path, &err);
	sodium_memzero(sk, sizeof(sk));
	if (ret == 0)
		ret = mf_account_key_id_any(kid, pk, pk_len, &err);
	if (ret < 0)
		return ctl_fail("%s", err.msg);
	if (store_key(ctl, id, pk, pk_len, wrapped, wrapped_len, mode,
	              escrow_len > 0 ? escrow : NULL, escrow_len) != 0)
		return 1;
	sodium_bin2hex(hex, sizeof(hex), kid, sizeof(kid));
	if (!ctl->quiet)
		printf("%s: %s %s key pair %s\n", user, mode, mf_key_alg_name(alg), hex);
	return ctl_admin_event(ctl, "crypt_init", user, mode);
}

/* Unwrap the current password-mode key with pw (a login password). */
static int unwrap_password(struct keyrow *k, const char *pw, unsigned char sk[MF_ACCOUNT_SK_BYTES])
{
	struct mf_error err;

	if (strcmp(k->mode, "password") != 0)
		return ctl_fail("the key is in %s mode; rewrap and app-wrap are for password mode",
		                k->mode);
	if (mf_account_unwrap_password_any(sk, k->wrapped, k->wrapped_len, k->pk, k->pk_len, pw,
	                                   strlen(pw), &err) < 0)
		return ctl_fail("the password does not unwrap the mail key");
	return 0;
}

static int cmd_rewrap(struct ctl *ctl, const char *user)
{
	unsigned char sk[MF_ACCOUNT_SK_BYTES], wrapped[MF_ACCOUNT_WRAP_MAX];
	size_t wrapped_len;
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
		if (mf_account_wrap_password_any(wrapped, &wrapped_len, k.pk, k.pk_len, sk, newpw,
		                                 strlen(newpw), &err) < 0) {
			ret = ctl_fail("%s", err.msg);
		} else if ((hex = mf_db_escape_bytea(wrapped, wrapped_len)) == NULL) {
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
	unsigned char sk[MF_ACCOUNT_SK_BYTES], wrapped[MF_ACCOUNT_WRAP_MAX];
	size_t wrapped_len;
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
		} else if (mf_account_wrap_password_any(wrapped, &wrapped_len, k.pk, k.pk_len, sk,
		                                        norm, MF_APPPASS_CHARS, &err) < 0) {
			ret = ctl_fail("%s", err.msg);
		} else if ((hex = mf_db_escape_bytea(wrapped, wrapped_len)) == NULL) {
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
	if (k.pk_len != MF_ACCOUNT_PK_BYTES)
		return ctl_fail("%s's key is %s; recover opens X25519 escrow copies only", user,
		                mf_key_alg_name(mf_key_alg_of(k.pk_len)));
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

/* One of the account's key pairs, unwrapped when a message sealed to it
   must be read again. */
struct migrate_key {
	unsigned char id[MF_ACCOUNT_KEY_ID_BYTES];
	unsigned char pk[MF_ACCOUNT_PK_MAX];
	size_t pk_len;
	unsigned char sk[MF_ACCOUNT_SK_BYTES];
	bool sk_valid;
	unsigned char *wrapped;
	size_t wrapped_len;
	bool password_mode;
};

struct migrate {
	struct ctl *ctl;
	enum mf_profile profile;
	unsigned char pk[MF_ACCOUNT_PK_MAX]; /* the current key: new mail is sealed to it */
	size_t pk_len;
	bool have_mac_key;
	unsigned char mac_key[MF_MAILCRYPT_MAC_KEY_SIZE];
	char password[SECRET_MAX]; /* password mode, read once when needed */
	bool have_password;
	struct migrate_key keys[16];
	unsigned int key_count;
	struct mf_mailcrypt_writer writer;
	struct mf_mailcrypt_reader reader;
	unsigned char in[MF_MAILCRYPT_CHUNK_CT_MAX];
	unsigned char plain[MF_MAILCRYPT_CHUNK_MAX];
	unsigned char out[MF_MAILCRYPT_UPDATE_OUT_MAX(65536)];
	long limit; /* < 0: none */
	unsigned long done, reencrypted, skipped, failed, plain_left, refused;
};

/* What a stored file needs: nothing, encryption (plaintext) or
   re-encryption (an algorithm outside the profile, or no server
   authenticator).  -1: a ciphertext to leave alone (its authenticator does
   not verify: never vouch for a forged or planted message). */
enum migrate_need { NEED_NOTHING, NEED_ENCRYPT, NEED_REENCRYPT, NEED_REFUSE };

static enum migrate_need migrate_classify(struct migrate *m, const unsigned char *head, size_t len,
                                          struct mf_error *err)
{
	struct mf_mailcrypt_info info;

	if (!mf_mailcrypt_is_ciphertext(head, len))
		return NEED_ENCRYPT;
	if (mf_mailcrypt_peek(head, len, &info, err) < 0 || len < info.header_size)
		return NEED_REFUSE;
	if ((info.flags & MF_MAILCRYPT_FLAG_MAC) != 0 && m->have_mac_key &&
	    mf_mailcrypt_check_mac(head, len, m->mac_key, err) < 0)
		return NEED_REFUSE;
	if (m->profile == MF_PROFILE_KCMVP && !mf_mailcrypt_version_listed(info.version))
		return NEED_REENCRYPT;
	if (m->have_mac_key && (info.flags & MF_MAILCRYPT_FLAG_MAC) == 0)
		return NEED_REENCRYPT;
	return NEED_NOTHING;
}

static int migrate_unwrap(struct migrate *m, struct migrate_key *k, struct mf_error *err)
{
	unsigned char master[32];
	int ret;

	if (k->sk_valid)
		return 0;
	if (k->password_mode) {
		if (!m->have_password) {
			if (read_secret("account password", m->password) != 0)
				return mf_error_set(err,
				                    "password mode needs the account password");
			m->have_password = true;
		}
		ret = mf_account_unwrap_password_any(k->sk, k->wrapped, k->wrapped_len, k->pk,
		                                     k->pk_len, m->password, strlen(m->password),
		                                     err);
	} else {
		if (ctl_server_key(m->ctl, "master.key", master) != 0)
			return mf_error_set(err, "master.key cannot be read");
		ret = mf_account_unwrap_server_any(k->sk, k->wrapped, k->wrapped_len, k->pk,
		                                   k->pk_len, master, err);
		sodium_memzero(master, sizeof(master));
	}
	if (ret == 0)
		k->sk_valid = true;
	return ret;
}

/* Write the message of src_fd (plaintext, or a ciphertext of ct_size bytes
   when reencrypt) to dst_fd in the profile's format, sealed to the current
   key, with the server authenticator. */
static int encrypt_file(struct migrate *m, int src_fd, int dst_fd, bool reencrypt, uint64_t ct_size,
                        struct mf_error *err)
{
	const struct mf_mailcrypt_params params = {
	    .pk = m->pk,
	    .pk_len = m->pk_len,
	    .mac_key = m->have_mac_key ? m->mac_key : NULL,
	};
	unsigned char header[MF_MAILCRYPT_HEADER_MAX];
	struct mf_mailcrypt_chunk chunk;
	struct migrate_key *k = NULL;
	size_t header_len, out_len, n = 0;
	ssize_t got;
	uint64_t i = 0;
	int ret = -1;

	if (reencrypt) {
		got = pread(src_fd, header, sizeof(header), 0);
		if (got < MF_MAILCRYPT_PREFIX_SIZE)
			return mf_error_set(err, "cannot read the header");
		for (unsigned int j = 0; j < m->key_count && k == NULL; j++) {
			if (memcmp(m->keys[j].id, header + 32, MF_ACCOUNT_KEY_ID_BYTES) == 0)
				k = &m->keys[j];
		}
		if (k == NULL)
			return mf_error_set(err, "sealed to a key the account does not have");
		if (migrate_unwrap(m, k, err) < 0 ||
		    mf_mailcrypt_reader_open(&m->reader, header, (size_t)got, ct_size, k->pk,
		                             k->pk_len, k->sk, err) < 0)
			return -1;
	}
	if (mf_mailcrypt_writer_start(&m->writer, &params, header, &header_len, err) < 0)
		goto out;
	if (mf_write_all(dst_fd, header, header_len) < 0)
		goto fail_errno;
	for (;;) {
		if (reencrypt) {
			if (i == m->reader.chunk_count)
				break;
			if (mf_mailcrypt_chunk_at(&m->reader, i, &chunk, err) < 0)
				goto out;
			got = pread(src_fd, m->in, chunk.ct_len, (off_t)chunk.ct_offset);
			if (got != (ssize_t)chunk.ct_len) {
				mf_error_set(err, "chunk %llu: short read", (unsigned long long)i);
				goto out;
			}
			if (mf_mailcrypt_open_chunk(&m->reader, i, m->in, chunk.ct_len, m->plain,
			                            sizeof(m->plain), &n, err) < 0)
				goto out;
			i++;
		} else {
			got = read(src_fd, m->plain, sizeof(m->plain));
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				goto fail_errno;
			if (got == 0)
				break;
			n = (size_t)got;
		}
		if (mf_mailcrypt_writer_update(&m->writer, m->plain, n, m->out, sizeof(m->out),
		                               &out_len, err) < 0)
			goto out;
		if (mf_write_all(dst_fd, m->out, out_len) < 0)
			goto fail_errno;
	}
	if (mf_mailcrypt_writer_final(&m->writer, m->out, sizeof(m->out), &out_len, err) < 0)
		goto out;
	if (mf_write_all(dst_fd, m->out, out_len) < 0 || fsync(dst_fd) < 0)
		goto fail_errno;
	ret = 0;
	goto out;
fail_errno:
	mf_error_set(err, "write: %s", strerror(errno));
out:
	mf_mailcrypt_writer_clear(&m->writer);
	mf_mailcrypt_reader_clear(&m->reader);
	sodium_memzero(m->plain, sizeof(m->plain));
	return ret;
}

/* Encrypt (or re-encrypt) one message file of folder dir (which has tmp/). */
static int migrate_file(struct migrate *m, const char *dir, const char *sub, const char *name)
{
	char path[4096], tmp[4096];
	unsigned char head[MF_MAILCRYPT_HEADER_MAX];
	struct stat st, swapped;
	struct timespec times[2];
	struct mf_error err;
	enum migrate_need need;
	int src = -1, dst = -1;
	ssize_t n;

	err.msg[0] = '\0';
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
	n = pread(src, head, sizeof(head), 0);
	need = migrate_classify(m, head, n > 0 ? (size_t)n : 0, &err);
	if (need == NEED_NOTHING) {
		close(src);
		return 0;
	}
	if (need == NEED_REFUSE) {
		fprintf(stderr, "mailfortctl: %s: left alone: %s\n", path, err.msg);
		m->refused++;
		close(src);
		return 0;
	}
	if (m->limit >= 0 && (long)(m->done + m->reencrypted) >= m->limit) {
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
	if (encrypt_file(m, src, dst, need == NEED_REENCRYPT, (uint64_t)st.st_size, &err) < 0 ||
	    fchown(dst, st.st_uid, st.st_gid) < 0 || fchmod(dst, st.st_mode & 07777) < 0 ||
	    futimens(dst, times) < 0) {
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
	/* tmp is the old file now; make sure it is the file we read */
	if (stat(tmp, &swapped) < 0 || swapped.st_ino != st.st_ino || swapped.st_dev != st.st_dev ||
	    swapped.st_size != st.st_size) {
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0)
			fprintf(stderr,
			        "mailfortctl: %s changed during migration; its old content "
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
	if (need == NEED_ENCRYPT)
		m->done++;
	else
		m->reencrypted++;
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

static int migrate_file_cb(void *ctx, const char *dir, const char *sub, const char *name)
{
	return migrate_file(ctx, dir, sub, name);
}

static int migrate_folder(void *ctx, const char *dir)
{
	char path[4096];
	int ret;

	migrate_cleanup(dir);
	ret = folder_each_file(dir, migrate_file_cb, ctx);
	snprintf(path, sizeof(path), "%s/dovecot.index.cache", dir);
	if (unlink(path) < 0 && errno != ENOENT) {
		fprintf(stderr, "mailfortctl: unlink(%s): %s\n", path, strerror(errno));
		ret = -1;
	}
	return ret;
}

static const char *t_mac_path(const struct mf_config *cfg, char *buf, size_t size)
{
	snprintf(buf, size, "%s/mail-mac.key", mf_config_str(cfg, "keys", "dir"));
	return buf;
}

/* The account's key pairs (current first), for reading old messages. */
static int migrate_load_keys(struct migrate *m, const char *account_id)
{
	const char *params[1] = {account_id};
	struct mf_error err;
	PGresult *res;
	int n;

	res = mf_db_exec(ctl_db(m->ctl),
	                 "SELECT public_key, wrapped_private, mode FROM mailfort.mail_keys "
	                 "WHERE account_id = $1 ORDER BY retired_at IS NULL DESC, id DESC",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	n = PQntuples(res);
	for (int i = 0; i < n && m->key_count < MF_N_ELEMENTS(m->keys); i++) {
		struct migrate_key *k = &m->keys[m->key_count];
		unsigned char *pk = mf_db_unescape_bytea(PQgetvalue(res, i, 0), &k->pk_len);

		k->wrapped = mf_db_unescape_bytea(PQgetvalue(res, i, 1), &k->wrapped_len);
		if (pk == NULL || k->wrapped == NULL || mf_key_alg_of(k->pk_len) == 0 ||
		    mf_account_key_id_any(k->id, pk, k->pk_len, &err) < 0) {
			free(pk);
			free(k->wrapped);
			PQclear(res);
			return ctl_fail("mailfort.mail_keys holds a malformed key");
		}
		memcpy(k->pk, pk, k->pk_len);
		free(pk);
		k->password_mode = strcmp(PQgetvalue(res, i, 2), "password") == 0;
		m->key_count++;
	}
	PQclear(res);
	return 0;
}

/* A new key pair of the profile's kind, wrapped like the current one
   (server: master.key; password: the account password) and escrowed when
   [crypt] escrow_public_key is set; the current key is retired in the same
   transaction, and stays to read older mail.  New deliveries seal to the
   new key from then on (the plugin does not trust a cached key of the
   other kind). */
static int migrate_rotate(struct migrate *m, const char *account_id, const char *user)
{
	const struct mf_config *cfg = ctl_config(m->ctl);
	const enum mf_key_alg alg = mf_profile_key_alg(m->profile);
	const char *escrow_path = mf_config_str(cfg, "crypt", "escrow_public_key");
	struct migrate_key *cur = &m->keys[0];
	unsigned char pk[MF_ACCOUNT_PK_MAX], sk[MF_ACCOUNT_SK_BYTES], master[32];
	unsigned char wrapped[MF_ACCOUNT_WRAP_MAX], escrow[MF_ACCOUNT_ESCROW_MAX];
	size_t pk_len = mf_key_alg_pk_bytes(alg), wrapped_len = 0, escrow_len = 0;
	char *pk_hex = NULL, *w_hex = NULL, *e_hex = NULL, hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1];
	const char *params[5];
	unsigned char id[MF_ACCOUNT_KEY_ID_BYTES];
	struct mf_error err;
	int ret;

	if (migrate_unwrap(m, cur, &err) < 0) /* proves the password, reads old mail */
		return ctl_fail("%s", err.msg);
	ret = mf_account_keypair_alg(alg, pk, sk, &err);
	if (ret == 0 && cur->password_mode) {
		ret = mf_account_wrap_password_any(wrapped, &wrapped_len, pk, pk_len, sk,
		                                   m->password, strlen(m->password), &err);
	} else if (ret == 0) {
		if (ctl_server_key(m->ctl, "master.key", master) != 0)
			ret = mf_error_set(&err, "master.key cannot be read");
		else
			ret = mf_account_wrap_server_any(wrapped, &wrapped_len, pk, pk_len, sk,
			                                 master, &err);
		sodium_memzero(master, sizeof(master));
	}
	if (ret == 0 && escrow_path != NULL)
		ret = mf_account_escrow_any(escrow, &escrow_len, sk, pk_len, escrow_path, &err);
	sodium_memzero(sk, sizeof(sk));
	if (ret < 0 || mf_account_key_id_any(id, pk, pk_len, &err) < 0)
		return ctl_fail("%s", err.msg);
	pk_hex = mf_db_escape_bytea(pk, pk_len);
	w_hex = mf_db_escape_bytea(wrapped, wrapped_len);
	e_hex = escrow_len > 0 ? mf_db_escape_bytea(escrow, escrow_len) : NULL;
	params[0] = account_id;
	params[1] = pk_hex;
	params[2] = w_hex;
	params[3] = cur->password_mode ? "password" : "server";
	params[4] = e_hex;
	ret = 0;
	if (pk_hex == NULL || w_hex == NULL || (escrow_len > 0 && e_hex == NULL))
		ret = ctl_fail("out of memory");
	else if (mf_db_begin(ctl_db(m->ctl), &err) < 0 ||
	         mf_db_command(ctl_db(m->ctl),
	                       "UPDATE mailfort.mail_keys SET retired_at = now() "
	                       "WHERE account_id = $1 AND retired_at IS NULL",
	                       1, params, &err) < 0 ||
	         mf_db_command(ctl_db(m->ctl),
	                       "INSERT INTO mailfort.mail_keys "
	                       "(account_id, public_key, wrapped_private, mode, escrow_wrap) "
	                       "VALUES ($1, $2, $3, $4, $5)",
	                       5, params, &err) < 0 ||
	         mf_db_commit(ctl_db(m->ctl), &err) < 0) {
		mf_db_rollback(ctl_db(m->ctl));
		ret = ctl_fail("%s", err.msg);
	}
	free(pk_hex);
	free(w_hex);
	free(e_hex);
	if (ret != 0)
		return ret;
	memcpy(m->pk, pk, pk_len);
	m->pk_len = pk_len;
	sodium_bin2hex(hex, sizeof(hex), id, sizeof(id));
	printf("%s: new %s key pair %s (the %s key is retired, kept to read older mail)\n", user,
	       mf_key_alg_name(alg), hex, mf_key_alg_name(mf_key_alg_of(cur->pk_len)));
	return 0;
}

static int cmd_migrate(struct ctl *ctl, const char *user, const char *maildir, long limit,
                       const char *profile)
{
	const struct mf_config *cfg = ctl_config(ctl);
	struct migrate *m;
	char id[24], path[4096];
	unsigned long before;
	struct stat st;
	int ret = 0, pass;

	if (cfg == NULL)
		return 1;
	if (stat(maildir, &st) < 0 || !S_ISDIR(st.st_mode))
		return ctl_fail("%s: not a directory", maildir);
	snprintf(path, sizeof(path), "%s/cur", maildir);
	if (stat(path, &st) < 0)
		return ctl_fail("%s: not a maildir (no cur/)", maildir);
	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	m = sodium_malloc(sizeof(*m));
	if (m == NULL)
		return ctl_fail("out of memory");
	memset(m, 0, sizeof(*m));
	m->ctl = ctl;
	m->limit = limit;
	if (mf_profile_parse(profile != NULL ? profile : mf_config_str(cfg, "crypto", "profile"),
	                     &m->profile) < 0) {
		sodium_free(m);
		return ctl_usage("--profile must be default or kcmvp, not '%s'", profile);
	}
	if (migrate_load_keys(m, id) != 0)
		ret = 1;
	else if (m->key_count == 0)
		ret = ctl_fail(
		    "%s has no mail key yet (crypt init, or one delivery in server mode)", user);
	if (ret == 0) {
		memcpy(m->pk, m->keys[0].pk, m->keys[0].pk_len);
		m->pk_len = m->keys[0].pk_len;
		m->have_mac_key = mf_key_load(t_mac_path(cfg, path, sizeof(path)), MF_KEY_SECRET,
		                              m->mac_key, sizeof(m->mac_key), NULL) == 0;
		if (!m->have_mac_key)
			fprintf(stderr,
			        "mailfortctl: %s cannot be read: messages get no server "
			        "authenticator (mailfortctl keys init --missing makes it)\n",
			        path);
		if (mf_key_alg_of(m->pk_len) != mf_profile_key_alg(m->profile))
			ret = migrate_rotate(m, id, user);
	}
	/* Passes until one finds nothing to do: a delivery that fetched the
	   old key just before the rotation may land behind the first pass. */
	for (pass = 0; ret == 0 && pass < 5; pass++) {
		before = m->done + m->reencrypted;
		if (maildir_each_folder(maildir, migrate_folder, m) < 0)
			ret = 1;
		if (m->limit >= 0 || m->done + m->reencrypted == before)
			break;
	}
	if (ret == 0 || m->done + m->reencrypted > 0)
		printf("%s: %lu encrypted, %lu re-encrypted (%s profile), %lu skipped (changed "
		       "meanwhile), %lu failed, %lu left alone (authenticator does not verify), "
		       "%lu left for the next run\n",
		       user, m->done, m->reencrypted, mf_profile_name(m->profile), m->skipped,
		       m->failed, m->refused, m->plain_left);
	for (unsigned int i = 0; i < m->key_count; i++)
		free(m->keys[i].wrapped);
	mf_mailcrypt_writer_clear(&m->writer);
	sodium_free(m); /* wipes the keys, the password and the buffers */
	if (ret != 0)
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
	if (strcmp(cmd, "status") == 0 && (argc == 2 || argc == 3))
		return cmd_status(ctl, argv[1], argc == 3 ? argv[2] : NULL);
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
	if (strcmp(cmd, "migrate") == 0 && argc >= 3) {
		const char *profile = NULL;
		long limit = -1;
		char *end;

		for (int i = 3; i < argc; i += 2) {
			if (i + 1 >= argc)
				return ctl_usage("crypt migrate USER MAILDIR [--limit N] "
				                 "[--profile default|kcmvp]");
			if (strcmp(argv[i], "--profile") == 0) {
				profile = argv[i + 1];
				continue;
			}
			if (strcmp(argv[i], "--limit") != 0)
				return ctl_usage("crypt migrate USER MAILDIR [--limit N] "
				                 "[--profile default|kcmvp]");
			errno = 0;
			limit = strtol(argv[i + 1], &end, 10);
			if (errno != 0 || *end != '\0' || limit < 0)
				return ctl_usage("--limit wants a number >= 0, not '%s'",
				                 argv[i + 1]);
		}
		return cmd_migrate(ctl, argv[1], argv[2], limit, profile);
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
