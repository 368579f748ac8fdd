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
    {.name = NULL},
};

static const struct mf_config_section database_section = {"database", database_keys};
static const struct mf_config_section keys_section = {"keys", keys_keys};
static const struct mf_config_section spool_section = {"spool", spool_keys};
static const struct mf_config_section crypto_section = {"crypto", crypto_keys};

const struct mf_config_section *const mf_config_schema[] = {
    &database_section,         &keys_section,
    &crypto_section,           &spool_section,
    &mf_config_section_pam,    &mf_config_section_crypt,
    &mf_config_section_audit,  &mf_config_section_auditd,
    &mf_config_section_milter, NULL,
};
