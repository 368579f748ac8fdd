/*
 * config-schema.c - every section mailfort.conf may contain.
 *
 * The core sections are defined here; each component defines its own
 * section in config-schema-<component>.c, next to nothing else, so that the
 * keys a component reads and the keys the parser accepts stay one list.
 */
#include "mf-config.h"

extern const struct mf_config_section mf_config_section_pam;
extern const struct mf_config_section mf_config_section_crypt;
extern const struct mf_config_section mf_config_section_audit;
extern const struct mf_config_section mf_config_section_auditd;
extern const struct mf_config_section mf_config_section_milter;

static const struct mf_config_key database_keys[] = {
    {.name = "conninfo",
     .type = MF_CONFIG_STRING,
     .default_value = "dbname=mailfort",
     .help = "libpq connection string (each program may use its own role)"},
    {.name = "connect_timeout",
     .type = MF_CONFIG_DURATION,
     .default_value = "3s",
     .min = 1,
     .max = 300,
     .help = "give up connecting after this long"},
    {.name = "statement_timeout",
     .type = MF_CONFIG_DURATION,
     .default_value = "10s",
     .min = 0,
     .max = 3600,
     .help = "give up on any one statement after this long"},
    {.name = NULL},
};

static const struct mf_config_key keys_keys[] = {
    {.name = "dir",
     .type = MF_CONFIG_PATH,
     .default_value = MF_SYSCONFDIR "/mailfort/keys",
     .help = "directory holding the server keys (mailfortctl keys init)"},
    {.name = NULL},
};

static const char *const crypto_profiles[] = {"default", "kcmvp", NULL};

static const struct mf_config_key crypto_keys[] = {
    {.name = "profile",
     .type = MF_CONFIG_ENUM,
     .default_value = "default",
     .choices = crypto_profiles,
     .help = "algorithms of everything newly written: default (libsodium and AES-256-GCM) or "
             "kcmvp (only algorithms on the KCMVP list, through OpenSSL EVP: ARIA-256-GCM, "
             "ECDH P-256, KBKDF, PBKDF2, HMAC-SHA256)"},
    {.name = NULL},
};

static const struct mf_config_key spool_keys[] = {
    {.name = "dir",
     .type = MF_CONFIG_PATH,
     .default_value = "/var/spool/mailfort",
     .help = "local event spool, shipped to PostgreSQL by mailfort-auditd"},
    {.name = "node",
     .type = MF_CONFIG_STRING,
     .default_value = NULL,
     .help = "this host's name in the audit trail (default: the host name)"},
    {.name = "sync",
     .type = MF_CONFIG_BOOL,
     .default_value = "no",
     .help = "fsync every event (slower; survives power loss, not only crashes)"},
    {.name = "socket",
     .type = MF_CONFIG_PATH,
     .default_value = "/run/mailfort/spool.sock",
     .help = "where producers hand events to mailfort-spoold, which alone writes the spool"},
    {.name = "submit_timeout_ms",
     .type = MF_CONFIG_INT,
     .default_value = "2000",
     .min = 10,
     .max = 60000,
     .help = "a producer gives up (a login fails closed) when an event is not spooled this fast"},
    {.name = NULL},
};

static const struct mf_config_key spoold_keys[] = {
    {.name = "user",
     .type = MF_CONFIG_STRING,
     .default_value = "mailfort-auditd",
     .help = "system user that owns the spool; mailfort-spoold runs as it (as mailfort-auditd)"},
    {.name = "group",
     .type = MF_CONFIG_STRING,
     .default_value = "mailfort",
     .help = "group allowed to connect to the event socket (producers' users are members)"},
    {.name = "pidfile",
     .type = MF_CONFIG_PATH,
     .default_value = "/run/mailfort/spoold.pid",
     .help = "pid file written in daemon mode"},
    {.name = "max_clients_per_uid",
     .type = MF_CONFIG_INT,
     .default_value = "512",
     .min = 1,
     .max = 100000,
     .help = "connections one non-root uid may hold open at once"},
    {.name = "max_bytes_per_sec_per_uid",
     .type = MF_CONFIG_INT,
     .default_value = "4194304",
     .min = 65536,
     .max = 1073741824,
     .help = "bytes of events one non-root uid may have spooled a second (beyond: it waits)"},
    {.name = NULL},
};

static const struct mf_config_section database_section = {"database", database_keys};
static const struct mf_config_section keys_section = {"keys", keys_keys};
static const struct mf_config_section spool_section = {"spool", spool_keys};
static const struct mf_config_section crypto_section = {"crypto", crypto_keys};
static const struct mf_config_section spoold_section = {"spoold", spoold_keys};

const struct mf_config_section *const mf_config_schema[] = {
    &database_section,
    &keys_section,
    &crypto_section,
    &spool_section,
    &spoold_section,
    &mf_config_section_pam,
    &mf_config_section_crypt,
    &mf_config_section_audit,
    &mf_config_section_auditd,
    &mf_config_section_milter,
    NULL,
};
