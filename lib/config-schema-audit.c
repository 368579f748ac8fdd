/*
 * config-schema-audit.c - the [audit] section of mailfort.conf.
 *
 * Read by the mailfort_audit Dovecot plugin (and its imap part): what is
 * recorded and the session policy; retention_min by mailfortctl audit
 * retire.  The spool it writes to and the node name come from [spool].
 * mailfort-auditd reads producers (who may write what), max_clock_skew and
 * anchor_sink (where signed checkpoints are published outside the
 * database).
 */
#include "mf-config.h"

static const struct mf_config_key audit_keys[] = {
    {.name = "enabled",
     .type = MF_CONFIG_BOOL,
     .default_value = "yes",
     .help = "record mail events (no: the plugin loads but records nothing)"},
    {.name = "log_reads",
     .type = MF_CONFIG_BOOL,
     .default_value = "yes",
     .help = "record a read event the first time a session fetches a message body"},
    {.name = "log_flags",
     .type = MF_CONFIG_BOOL,
     .default_value = "yes",
     .help = "record flag and keyword changes (\\Deleted is always recorded)"},
    {.name = "session_idle_timeout",
     .type = MF_CONFIG_DURATION,
     .default_value = "0",
     .min = 0,
     .max = 7 * 86400,
     .help = "log out an IMAP session that sent no command for this long (0 = never)"},
    {.name = "session_max_lifetime",
     .type = MF_CONFIG_DURATION,
     .default_value = "0",
     .min = 0,
     .max = 30 * 86400,
     .help = "log out an IMAP session this long after login (0 = never)"},
    {.name = "retention_min",
     .type = MF_CONFIG_INT,
     .default_value = "24",
     .min = 12,
     .max = 1200,
     .help = "months: mailfortctl audit retire never takes audit events younger than this",
     .range_note = "the legal minimum is 12 months (Korea's personal information safety "
                   "standard: access records are kept at least 1 year, 2 years for large "
                   "systems)"},
    {.name = "producers",
     .type = MF_CONFIG_STRING,
     .default_value = NULL,
     .help = "which event types each producer uid may write: USER:KIND,... entries "
             "(unset: root and the [auditd] user all, the [milter] user verdict, * mail)"},
    {.name = "max_clock_skew",
     .type = MF_CONFIG_DURATION,
     .default_value = "5m",
     .min = 1,
     .max = 86400,
     .help = "refuse (and alert on) an event whose time differs more from its receipt"},
    {.name = "anchor_sink",
     .type = MF_CONFIG_STRING,
     .default_value = NULL,
     .help = "publish every signed checkpoint outside PostgreSQL: file:PATH, syslog, "
             "command:PATH, mail:ADDRESS (several separated by blanks)"},
    {.name = NULL},
};

const struct mf_config_section mf_config_section_audit = {"audit", audit_keys};
