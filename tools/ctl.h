/*
 * ctl.h - what every mailfortctl command group shares.
 *
 * mailfortctl.c parses the global options (--config, --help), then calls the
 * group's entry point with argv starting at the group name's next word.
 * A group prints its own help for "--help" / "help" and returns the process
 * exit status: 0 on success, 1 on a failure (after printing one line
 * "mailfortctl: <reason>" to stderr via ctl_fail), 2 on a usage error.
 */
#ifndef MF_CTL_H
#define MF_CTL_H

#include <stdio.h>
#include <stdbool.h>
#include "mf-common.h"

struct mf_config;
struct mf_db;

struct ctl {
	const char *config_path;
	struct mf_config *cfg; /* loaded lazily by ctl_config() */
	struct mf_db *db;      /* opened lazily by ctl_db() */
	bool quiet;
};

/* Load the configuration (once); NULL after printing the reason. */
const struct mf_config *ctl_config(struct ctl *ctl);
/* Connect to PostgreSQL (once); NULL after printing the reason. */
struct mf_db *ctl_db(struct ctl *ctl);
/* Print "mailfortctl: <msg>" to stderr and return 1. */
int ctl_fail(const char *fmt, ...) MF_PRINTF(1, 2);
/* Print "mailfortctl: <msg>" and a hint to use --help; return 2. */
int ctl_usage(const char *fmt, ...) MF_PRINTF(1, 2);
/* True for "-h", "--help" and "help". */
bool ctl_is_help(const char *arg);
/* An age: digits and one unit, s, m, h or d ("90s", "15m", "12h", "365d"),
   at most 1000 years.  0 with the seconds in *secs_r, or -1. */
int ctl_age(const char *arg, int64_t *secs_r);
/* For "GROUP COMMAND USER [OPTIONS]": 0 when argv (from COMMAND on) may
   go ahead; otherwise prints the group's usage (help asked for anywhere:
   exit 0) or a usage error (USER missing or shaped like an option: exit 2)
   and returns 1 with the exit status in *status_r.  Nothing is created for
   "totp enroll --help". */
int ctl_user_args(int argc, char **argv, void (*usage_fn)(FILE *out), int *status_r);

/* ctl-user.c: the account's id as text into id (24 bytes); with create,
   the account row is made when missing.  Returns 0, or 1 after printing why. */
int ctl_account_id(struct ctl *ctl, const char *user, bool create, char id[24]);
/* ctl-user.c: append an "admin" event (action, user, detail may be NULL).
   Returns 0, or 1 after printing why. */
int ctl_admin_event(struct ctl *ctl, const char *action, const char *user, const char *detail);
/* ctl-user.c: load a secret server key (e.g. "totp.key") from [keys] dir.
   Returns 0, or 1 after printing why. */
int ctl_server_key(struct ctl *ctl, const char *name, unsigned char key[32]);

typedef int ctl_group_fn(struct ctl *ctl, int argc, char **argv);

/* The groups (one file each). */
ctl_group_fn ctl_db_cmd;      /* ctl-db.c:      db migrate | status */
ctl_group_fn ctl_keys_cmd;    /* ctl-keys.c:    keys init | status */
ctl_group_fn ctl_totp_cmd;    /* ctl-totp.c:    totp enroll | status | reset | recovery */
ctl_group_fn ctl_apppass_cmd; /* ctl-apppass.c: apppass add | list | revoke */
ctl_group_fn ctl_user_cmd;    /* ctl-user.c:    user status | unlock */
ctl_group_fn ctl_crypt_cmd;   /* ctl-crypt.c:   crypt status | rewrap | migrate */
ctl_group_fn ctl_audit_cmd;   /* ctl-audit.c:   audit search | verify | retire */
ctl_group_fn ctl_spam_cmd;    /* ctl-spam.c:    spam train | stats */
ctl_group_fn ctl_check_cmd;   /* ctl-check.c:   check (posture, PASS/FAIL per rule) */

/* ctl-audit-retire.c: audit retire (argv from "retire" on). */
int ctl_audit_retire(struct ctl *ctl, int argc, char **argv);

/* ctl-anchor.c: audit anchor export, and verify --anchor FILE */
ctl_group_fn ctl_audit_anchor_cmd;
/* What audit verify proved of one node: signed retirements, checked
   oldest first against audit-sign.pub, cover seq 1 to retired_upto. */
struct ctl_verified_node {
	char node[128];
	int64_t retired_upto;
};
int ctl_anchor_verify(struct mf_db *db, const char *file, const unsigned char *pk, const char *only,
                      const struct ctl_verified_node *nodes, size_t nnodes, struct mf_error *err);

#endif
