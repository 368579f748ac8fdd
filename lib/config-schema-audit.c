/*
 * config-schema-audit.c - the [audit] section of mailfort.conf.
 *
 * Read by the mailfort_audit Dovecot plugin (and its imap part): what is
 * recorded and the session policy; retention_min by mailfortctl audit
 * retire.  The spool it writes to and the node
 * name come from [spool].
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
    {.name = NULL},
};

const struct mf_config_section mf_config_section_audit = {"audit", audit_keys};
