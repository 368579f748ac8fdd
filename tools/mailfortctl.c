/*
 * mailfortctl - administer mailfort: database, keys, users, audit, spam.
 *
 * SYNOPSIS
 *   mailfortctl [--config FILE] GROUP COMMAND [ARGS...]
 *   mailfortctl GROUP --help
 *
 * Exit status: 0 success, 1 failure (one line on stderr says why), 2 usage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-log.h"

static const struct {
	const char *name;
	ctl_group_fn *fn;
	const char *summary;
} groups[] = {
    {"db", ctl_db_cmd, "create and upgrade the database schema"},
    {"keys", ctl_keys_cmd, "create and inspect the server keys"},
    {"totp", ctl_totp_cmd, "enrol users for the second factor, recovery codes"},
    {"apppass", ctl_apppass_cmd, "per-device app passwords"},
    {"user", ctl_user_cmd, "account status and unlock"},
    {"crypt", ctl_crypt_cmd, "mail encryption keys and migration"},
    {"audit", ctl_audit_cmd, "search, verify and retire the audit trail"},
    {"spam", ctl_spam_cmd, "train the spam classifier, statistics"},
    {"check", ctl_check_cmd, "check this node's security posture (PASS/FAIL per rule)"},
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: mailfortctl [--config FILE] GROUP COMMAND [ARGS...]\n\n"
	             "groups:\n");
	for (i = 0; i < MF_N_ELEMENTS(groups); i++)
		fprintf(out, "  %-9s %s\n", groups[i].name, groups[i].summary);
	fprintf(out,
	        "\n'mailfortctl GROUP --help' describes a group's commands.\n"
	        "The configuration is read from %s unless --config says otherwise.\n",
	        MF_CONFIG_DEFAULT_PATH);
}

int ctl_fail(const char *fmt, ...)
{
	va_list args;

	fputs("mailfortctl: ", stderr);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	return 1;
}

int ctl_usage(const char *fmt, ...)
{
	va_list args;

	fputs("mailfortctl: ", stderr);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputs(" (see --help)\n", stderr);
	return 2;
}

bool ctl_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

int ctl_age(const char *arg, int64_t *secs_r)
{
	int64_t n = 0, unit;
	const char *p = arg;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > 1000LL * 366 * 86400)
			return -1;
		n = n * 10 + (*p - '0');
	}
	switch (*p) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return -1;
	}
	if (p[1] != '\0' || n > 1000LL * 366 * 86400 / unit)
		return -1;
	*secs_r = n * unit;
	return 0;
}

int ctl_user_args(int argc, char **argv, void (*usage_fn)(FILE *out), int *status_r)
{
	int i;

	/* "help" only where USER goes: later it may be a label or a code */
	for (i = 0; i < argc; i++) {
		if (i < 2 ? ctl_is_help(argv[i])
		          : strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage_fn(stdout);
			*status_r = 0;
			return 1;
		}
	}
	if (argc < 2) {
		*status_r = ctl_usage("%s needs a USER", argv[0]);
		return 1;
	}
	if (argv[1][0] == '-' || argv[1][0] == '\0') {
		*status_r = ctl_usage("%s: '%s' is not a user name (options come after USER)",
		                      argv[0], argv[1]);
		return 1;
	}
	return 0;
}

const struct mf_config *ctl_config(struct ctl *ctl)
{
	struct mf_error err;

	if (ctl->cfg == NULL) {
		ctl->cfg = mf_config_load(ctl->config_path, &err);
		if (ctl->cfg == NULL) {
			ctl_fail("%s", err.msg);
			return NULL;
		}
	}
	return ctl->cfg;
}

struct mf_db *ctl_db(struct ctl *ctl)
{
	struct mf_db_settings set;
	struct mf_error err;

	if (ctl->db == NULL) {
		if (ctl_config(ctl) == NULL)
			return NULL;
		mf_db_settings_from_config(&set, ctl->cfg, "mailfortctl");
		ctl->db = mf_db_open(&set, &err);
		if (ctl->db == NULL) {
			ctl_fail("%s", err.msg);
			return NULL;
		}
	}
	return ctl->db;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {.config_path = MF_CONFIG_DEFAULT_PATH};
	struct mf_error err;
	int i = 1, ret;
	size_t g;

	mf_log_set_handler(mf_log_handler_stderr, NULL);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc)
				return ctl_usage("--config needs a file name");
			ctl.config_path = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			ctl.config_path = argv[i] + 9;
			i++;
		} else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
			ctl.quiet = true;
			i++;
		} else if (ctl_is_help(argv[i])) {
			usage(stdout);
			return 0;
		} else {
			return ctl_usage("unknown option '%s'", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (ctl_is_help(argv[i])) {
		usage(stdout);
		return 0;
	}
	if (mf_crypto_init(&err) < 0)
		return ctl_fail("%s", err.msg);
	for (g = 0; g < MF_N_ELEMENTS(groups); g++) {
		if (strcmp(argv[i], groups[g].name) == 0)
			break;
	}
	if (g == MF_N_ELEMENTS(groups))
		return ctl_usage("unknown command group '%s'", argv[i]);
	ret = groups[g].fn(&ctl, argc - i - 1, argv + i + 1);
	mf_db_close(&ctl.db);
	mf_config_free(&ctl.cfg);
	return ret;
}
