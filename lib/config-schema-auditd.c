/*
 * config-schema-auditd.c - the [auditd] section of mailfort.conf.
 *
 * Read by mailfort-auditd: batching, checkpoints, partitions and retention,
 * alert thresholds and where alerts are mailed.
 */
#include "mf-config.h"

static const struct mf_config_key auditd_keys[] = {
	{.name = "user", .type = MF_CONFIG_STRING, .default_value = "mailfort-auditd",
	 .help = "system user the daemon runs as after start-up (when started as root)"},
	{.name = "pidfile", .type = MF_CONFIG_PATH, .default_value = "/run/mailfort/auditd.pid",
	 .help = "pid file written in daemon mode"},
	{.name = "batch_size", .type = MF_CONFIG_INT, .default_value = "5000", .min = 1,
	 .max = 1000000, .help = "events shipped to PostgreSQL in one transaction at most"},
	{.name = "poll_interval_ms", .type = MF_CONFIG_INT, .default_value = "200", .min = 10,
	 .max = 60000, .help = "how often the spool is looked at when it is idle"},
	{.name = "retry_interval", .type = MF_CONFIG_DURATION, .default_value = "2s", .min = 1,
	 .max = 3600, .help = "wait this long before reconnecting to an unreachable database"},
	{.name = "segment_size", .type = MF_CONFIG_SIZE, .default_value = "64M", .min = 4096,
	 .max = (int64_t)1 << 40, .help = "start a new spool segment past this size"},
	{.name = "checkpoint_events", .type = MF_CONFIG_INT, .default_value = "10000", .min = 1,
	 .max = 100000000, .help = "write a signed checkpoint after this many events"},
	{.name = "checkpoint_interval", .type = MF_CONFIG_DURATION, .default_value = "5m",
	 .min = 1, .max = 86400, .help = "... or after this long, when new events arrived"},
	{.name = "partitions_ahead", .type = MF_CONFIG_INT, .default_value = "2", .min = 1,
	 .max = 24, .help = "monthly partitions created ahead of the current month"},
	{.name = "retention_months", .type = MF_CONFIG_INT, .default_value = "0", .min = 0,
	 .max = 1200,
	 .help = "detach partitions older than this many months once a checkpoint covers them (0 = keep)"},
	{.name = "alerts", .type = MF_CONFIG_BOOL, .default_value = "yes",
	 .help = "evaluate the alert rules"},
	{.name = "new_ip_days", .type = MF_CONFIG_INT, .default_value = "90", .min = 0,
	 .max = 3650,
	 .help = "alert on a login from an IP not seen for the account in this many days (0 = off)"},
	{.name = "failed_logins", .type = MF_CONFIG_INT, .default_value = "5", .min = 0,
	 .max = 1000000, .help = "alert after this many failed logins for one account (0 = off)"},
	{.name = "failed_logins_ip", .type = MF_CONFIG_INT, .default_value = "20", .min = 0,
	 .max = 1000000, .help = "alert after this many failed logins from one IP (0 = off)"},
	{.name = "failed_logins_window", .type = MF_CONFIG_DURATION, .default_value = "10m",
	 .min = 1, .max = 86400, .help = "... within this window"},
	{.name = "mass_read", .type = MF_CONFIG_INT, .default_value = "500", .min = 0,
	 .max = 100000000, .help = "alert when one account reads this many messages (0 = off)"},
	{.name = "mass_read_window", .type = MF_CONFIG_DURATION, .default_value = "10m", .min = 1,
	 .max = 86400, .help = "... within this window"},
	{.name = "mass_delete", .type = MF_CONFIG_INT, .default_value = "200", .min = 0,
	 .max = 100000000, .help = "alert when one account expunges this many messages (0 = off)"},
	{.name = "mass_delete_window", .type = MF_CONFIG_DURATION, .default_value = "10m",
	 .min = 1, .max = 86400, .help = "... within this window"},
	{.name = "security_address", .type = MF_CONFIG_STRING, .default_value = NULL,
	 .help = "mail every alert to this address (unset: table and NOTIFY only)"},
	{.name = "sendmail", .type = MF_CONFIG_PATH, .default_value = "/usr/sbin/sendmail",
	 .help = "sendmail program used to mail alerts"},
	{.name = NULL},
};

const struct mf_config_section mf_config_section_auditd = {"auditd", auditd_keys};
