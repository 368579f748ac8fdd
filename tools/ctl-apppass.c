/*
 * ctl-apppass.c - mailfortctl apppass: per-device app passwords.
 *
 * SYNOPSIS
 *   mailfortctl apppass add USER --label LABEL [--protocols imap,pop3,smtp]
 *   mailfortctl apppass list USER
 *   mailfortctl apppass revoke USER LABEL|ID
 *
 * add generates a password of 20 characters (100 bits) in five groups of
 * four, prints it once and stores only its keyed hash (hash.key).  It is
 * accepted by pam_mailfort's apppass mode for the listed protocols (PAM
 * services, see [pam] protocols), default [pam] apppass_protocols.  A label
 * names the device and is unique among the user's active app passwords.
 * list shows labels, protocols, creation and last use (time, address);
 * revoke stops one from working at once: the active one with that label,
 * or else the one with that id.
 *
 * Exit status: 0 success, 1 failure (no account, label in use, nothing to
 * revoke, database, key), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-totp.h"

static void usage(FILE *out)
{
	fputs("usage: mailfortctl apppass COMMAND USER ...\n\n"
	      "commands:\n"
	      "  add USER --label LABEL [--protocols imap,pop3,smtp]\n"
	      "                       generate an app password (shown once)\n"
	      "  list USER            labels, protocols, created, last use\n"
	      "  revoke USER LABEL|ID stop an app password from working\n",
	      out);
}

static int add(struct ctl *ctl, const char *user, const char *label, const char *protocols)
{
	const struct mf_config *cfg = ctl_config(ctl);
	unsigned char key[32], hashes[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES];
	char pass[MF_APPPASS_DISPLAY], id[24], array[512], *hex;
	enum mf_profile profile;
	const char *params[4];
	struct mf_error err;
	PGresult *res;

	if (cfg == NULL)
		return 1;
	if (label == NULL)
		return ctl_usage("apppass add needs --label LABEL (names the device)");
	if (label[0] == '\0' || strlen(label) > 100)
		return ctl_fail("label must have 1 to 100 characters");
	if (protocols == NULL)
		protocols = mf_config_str(cfg, "pam", "apppass_protocols");
	if (mf_protocols_to_array(array, sizeof(array), protocols, &err) < 0)
		return ctl_fail("%s", err.msg);
	if (ctl_account_id(ctl, user, true, id) != 0)
		return 1;
	if (ctl_server_key(ctl, "hash.key", key) != 0)
		return 1;
	if (mf_profile_parse(mf_config_str(cfg, "crypto", "profile"), &profile) < 0)
		profile = MF_PROFILE_DEFAULT; /* the config parser allows no other */
	mf_apppass_new(pass);
	if (mf_apppass_hashes(hashes, pass, strlen(pass), key) < 0) {
		sodium_memzero(key, sizeof(key));
		sodium_memzero(pass, sizeof(pass));
		return ctl_fail("internal error: generated password not accepted");
	}
	sodium_memzero(key, sizeof(key));
	/* stored with the profile's hash; lookups match either kind */
	hex = mf_db_escape_bytea(hashes[mf_code_hash_for(profile)], MF_KEYED_HASH_BYTES);
	if (hex == NULL) {
		sodium_memzero(pass, sizeof(pass));
		return ctl_fail("out of memory");
	}
	params[0] = id;
	params[1] = label;
	params[2] = hex;
	params[3] = array;
	res = mf_db_exec(ctl_db(ctl),
	                 "INSERT INTO mailfort.app_passwords (account_id, label, hash, protocols) "
	                 "VALUES ($1, $2, $3, $4::text[]) RETURNING id",
	                 4, params, &err);
	free(hex);
	if (res == NULL) {
		sodium_memzero(pass, sizeof(pass));
		if (strstr(err.msg, "app_passwords_label") != NULL)
			return ctl_fail("%s already has an active app password labelled '%s'", user,
			                label);
		return ctl_fail("%s", err.msg);
	}
	snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (ctl->quiet) {
		printf("%s\n", pass);
	} else {
		printf("App password %s for %s (\"%s\", protocols %s):\n\n    %s\n\n"
		       "Enter it in the mail client instead of the password; it is shown only "
		       "now.\nDashes and spaces are optional.\n",
		       id, user, label, array, pass);
	}
	sodium_memzero(pass, sizeof(pass));
	return ctl_admin_event(ctl, "apppass_add", user, label);
}

static int list(struct ctl *ctl, const char *user)
{
	char id[24];
	const char *params[1] = {id};
	struct mf_error err;
	PGresult *res;
	int i;

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	res = mf_db_exec(ctl_db(ctl),
	                 "SELECT id, label, array_to_string(protocols, ','), "
	                 " to_char(created_at, 'YYYY-MM-DD HH24:MI'), "
	                 " coalesce(to_char(last_used_at, 'YYYY-MM-DD HH24:MI'), 'never'), "
	                 " coalesce(host(last_used_ip), '-'), "
	                 " CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked ' || "
	                 "   to_char(revoked_at, 'YYYY-MM-DD HH24:MI') END "
	                 "FROM mailfort.app_passwords WHERE account_id = $1 ORDER BY id",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	printf("%-6s %-24s %-16s %-16s %-16s %-15s %s\n", "ID", "LABEL", "PROTOCOLS", "CREATED",
	       "LAST USED", "FROM", "STATE");
	for (i = 0; i < PQntuples(res); i++)
		printf("%-6s %-24s %-16s %-16s %-16s %-15s %s\n", PQgetvalue(res, i, 0),
		       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		       PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
	PQclear(res);
	return 0;
}

static int revoke(struct ctl *ctl, const char *user, const char *which)
{
	char id[24];
	const char *params[2] = {id, which};
	struct mf_error err;
	PGresult *res;
	int n;

	if (ctl_account_id(ctl, user, false, id) != 0)
		return 1;
	/* A label wins over an id: "revoke USER 7" must not also revoke the
	   app password whose id is 7 when another one is labelled "7". */
	res = mf_db_exec(ctl_db(ctl),
	                 "UPDATE mailfort.app_passwords SET revoked_at = now() "
	                 "WHERE account_id = $1 AND revoked_at IS NULL "
	                 "AND (label = $2 OR (id::text = $2 AND NOT EXISTS ("
	                 "  SELECT 1 FROM mailfort.app_passwords l WHERE l.account_id = $1 "
	                 "  AND l.revoked_at IS NULL AND l.label = $2)))",
	                 2, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n == 0)
		return ctl_fail("%s has no active app password '%s'", user, which);
	if (!ctl->quiet)
		printf("%s: app password '%s' revoked\n", user, which);
	return ctl_admin_event(ctl, "apppass_revoke", user, which);
}

int ctl_apppass_cmd(struct ctl *ctl, int argc, char **argv)
{
	const char *label = NULL, *protocols = NULL;
	int i;

	if (argc < 1 || ctl_is_help(argv[0])) {
		usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 2 : 0;
	}
	if (ctl_user_args(argc, argv, usage, &i) != 0)
		return i;
	if (strcmp(argv[0], "add") == 0) {
		for (i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
				label = argv[++i];
			else if (strcmp(argv[i], "--protocols") == 0 && i + 1 < argc)
				protocols = argv[++i];
			else
				return ctl_usage("apppass add: unexpected '%s'", argv[i]);
		}
		return add(ctl, argv[1], label, protocols);
	}
	if (strcmp(argv[0], "list") == 0) {
		if (argc != 2)
			return ctl_usage("apppass list takes one USER");
		return list(ctl, argv[1]);
	}
	if (strcmp(argv[0], "revoke") == 0) {
		if (argc != 3)
			return ctl_usage("apppass revoke takes USER and LABEL or ID");
		return revoke(ctl, argv[1], argv[2]);
	}
	return ctl_usage("unknown apppass command '%s'", argv[0]);
}
