/*
 * ctl-user.c - mailfortctl user: an account's login state, and unlocking.
 *
 * SYNOPSIS
 *   mailfortctl user status USER   TOTP state, failures, lock, last login,
 *                                  app passwords, recovery codes left
 *   mailfortctl user unlock USER   end a lock and reset the failure count
 *
 * Also the helpers the totp and apppass groups share (ctl.h): account id
 * lookup/creation, server key loading, "admin" audit events.
 *
 * Exit status: 0 success, 1 failure (no such user, database), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-event.h"
#include "mf-submit.h"
#include "mf-totp.h"

int ctl_account_id(struct ctl *ctl, const char *user, bool create, char id[24])
{
	const char *params[1] = {user};
	struct mf_db *db = ctl_db(ctl);
	struct mf_error err;
	PGresult *res;

	if (db == NULL)
		return 1;
	if (create) {
		if (mf_db_command(db,
		                  "INSERT INTO mailfort.accounts (username) VALUES ($1) "
		                  "ON CONFLICT (username) DO NOTHING",
		                  1, params, &err) < 0)
			return ctl_fail("user '%s': %s", user, err.msg);
	}
	res =
	    mf_db_exec(db, "SELECT id FROM mailfort.accounts WHERE username = $1", 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_fail("no account '%s'", user);
	}
	snprintf(id, 24, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

int ctl_server_key(struct ctl *ctl, const char *name, unsigned char key[32])
{
	const struct mf_config *cfg = ctl_config(ctl);
	struct mf_error err;

	if (cfg == NULL)
		return 1;
	if (mf_totp_load_key(mf_config_str(cfg, "keys", "dir"), name, key, &err) < 0)
		return ctl_fail("%s", err.msg);
	return 0;
}

int ctl_admin_event(struct ctl *ctl, const char *action, const char *user, const char *detail)
{
	const struct mf_config *cfg = ctl_config(ctl);
	struct mf_submit *s;
	struct mf_event *ev;
	struct mf_error err;
	const char *admin = getlogin();
	int ret = 0;

	if (cfg == NULL)
		return 1;
	ev = mf_event_new("admin", mf_config_str(cfg, "spool", "node"));
	if (ev == NULL)
		return ctl_fail("cannot record the admin event: out of memory");
	mf_event_add_str(ev, "action", action);
	mf_event_add_str(ev, "user", user);
	mf_event_add_str(ev, "admin", admin != NULL ? admin : "");
	mf_event_add_int(ev, "uid", (int64_t)getuid());
	if (detail != NULL)
		mf_event_add_str(ev, "detail", detail);
	s = mf_submit_open_config(cfg, &err);
	if (s == NULL || mf_event_append(ev, s, &err) < 0)
		ret = ctl_fail("'%s' for %s was done but not recorded in the audit spool: %s",
		               action, user, err.msg);
	mf_submit_close(&s);
	mf_event_free(&ev);
	return ret;
}

static void usage(FILE *out)
{
	fputs("usage: mailfortctl user COMMAND USER\n\n"
	      "commands:\n"
	      "  status USER   second factor, failures, lock, last login, app passwords\n"
	      "  unlock USER   end a lock, reset the failure count and the address waits\n",
	      out);
}

static const char status_sql[] =
    "SELECT a.username, a.totp_state, a.failed_count, "
    " coalesce(a.locked_until > now(), false), "
    " coalesce(to_char(a.locked_until, 'YYYY-MM-DD HH24:MI:SSOF'), '-'), a.lock_count, "
    " coalesce(to_char(a.last_login_at, 'YYYY-MM-DD HH24:MI:SSOF'), 'never'), "
    " coalesce(to_char(a.last_failure_at, 'YYYY-MM-DD HH24:MI:SSOF'), 'never'), "
    " (SELECT count(*) FROM mailfort.app_passwords p "
    "   WHERE p.account_id = a.id AND p.revoked_at IS NULL), "
    " (SELECT count(*) FROM mailfort.recovery_codes r "
    "   WHERE r.account_id = a.id AND r.used_at IS NULL), "
    " to_char(a.created_at, 'YYYY-MM-DD HH24:MI:SSOF'), "
    " (SELECT count(*) FROM mailfort.auth_throttle t "
    "   WHERE t.account_id = a.id AND t.delayed_until > now()) "
    "FROM mailfort.accounts a WHERE a.username = $1";

static int user_status(struct ctl *ctl, const char *user)
{
	const char *params[1] = {user};
	struct mf_db *db = ctl_db(ctl);
	struct mf_error err;
	PGresult *res;

	if (db == NULL)
		return 1;
	res = mf_db_exec(db, status_sql, 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_fail("no account '%s'", user);
	}
	printf("user:            %s\n"
	       "created:         %s\n"
	       "totp:            %s\n"
	       "failures:        %s (since the last success or lock)\n"
	       "locked:          %s%s%s\n"
	       "locks so far:    %s\n"
	       "addresses held:  %s (must wait after repeated failures)\n"
	       "last login:      %s\n"
	       "last failure:    %s\n"
	       "app passwords:   %s active\n"
	       "recovery codes:  %s unused\n",
	       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 10), PQgetvalue(res, 0, 1),
	       PQgetvalue(res, 0, 2),
	       strcmp(PQgetvalue(res, 0, 3), "t") == 0 ? "yes, until " : "no",
	       strcmp(PQgetvalue(res, 0, 3), "t") == 0 ? PQgetvalue(res, 0, 4) : "", "",
	       PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 11), PQgetvalue(res, 0, 6),
	       PQgetvalue(res, 0, 7), PQgetvalue(res, 0, 8), PQgetvalue(res, 0, 9));
	PQclear(res);
	return 0;
}

static int user_unlock(struct ctl *ctl, const char *user)
{
	const char *params[1] = {user};
	struct mf_db *db = ctl_db(ctl);
	struct mf_error err;
	PGresult *res;
	int n;

	if (db == NULL)
		return 1;
	/* also the waits of every client address */
	res = mf_db_exec(db,
	                 "WITH d AS (DELETE FROM mailfort.auth_throttle WHERE account_id = "
	                 "  (SELECT id FROM mailfort.accounts WHERE username = $1)) "
	                 "UPDATE mailfort.accounts SET failed_count = 0, lock_count = 0, "
	                 "locked_until = NULL WHERE username = $1",
	                 1, params, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n != 1)
		return ctl_fail("no account '%s'", user);
	if (!ctl->quiet)
		printf("%s: unlocked, failure count and address waits reset\n", user);
	return ctl_admin_event(ctl, "user_unlock", user, NULL);
}

int ctl_user_cmd(struct ctl *ctl, int argc, char **argv)
{
	int status;

	if (argc < 1 || ctl_is_help(argv[0])) {
		usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 2 : 0;
	}
	if (ctl_user_args(argc, argv, usage, &status) != 0)
		return status;
	if (argc != 2)
		return ctl_usage("user %s takes exactly one USER", argv[0]);
	if (strcmp(argv[0], "status") == 0)
		return user_status(ctl, argv[1]);
	if (strcmp(argv[0], "unlock") == 0)
		return user_unlock(ctl, argv[1]);
	return ctl_usage("unknown user command '%s'", argv[0]);
}
