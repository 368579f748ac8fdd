/*
 * config-schema-crypt.c - the [crypt] section of mailfort.conf, read by the
 * mailfort_crypt Dovecot plugin and by "mailfortctl crypt".
 *
 * The chunk size of the stored format is not configurable: it is part of
 * the format (mf-mailcrypt.h) and every reader accepts what the writer
 * records in each message's header.
 */
#include "mf-config.h"

static const char *const crypt_modes[] = {"server", "password", NULL};

static const struct mf_config_key crypt_keys[] = {
    {.name = "mode",
     .type = MF_CONFIG_ENUM,
     .default_value = "server",
     .choices = crypt_modes,
     .help = "who can unwrap an account's mail key: server (master.key) or password "
             "(the user's password, so administrators cannot)"},
    {.name = "create_keys",
     .type = MF_CONFIG_BOOL,
     .default_value = "yes",
     .help = "server mode: make a key pair (and account row) on first delivery to an "
             "account that has none"},
    {.name = "escrow_public_key",
     .type = MF_CONFIG_PATH,
     .default_value = NULL,
     .help = "X25519 public key (32 raw bytes) of the offline recovery key; when set, "
             "every new private key is also sealed to it"},
    {.name = "conninfo",
     .type = MF_CONFIG_STRING,
     .default_value = NULL,
     .help = "libpq connection string for the plugin (default: [database] conninfo); its "
             "role needs group mailfort_crypt"},
    {.name = "require_encrypted",
     .type = MF_CONFIG_BOOL,
     .default_value = "no",
     .help = "refuse to serve a message that is not a mailfort ciphertext carrying a valid "
             "server authenticator (mail-mac.key): planted or forged mail is refused, "
             "recorded and alerted on; turn on once mailfortctl crypt status reports none "
             "left"},
    {.name = "totp_suffix",
     .type = MF_CONFIG_BOOL,
     .default_value = "yes",
     .help = "password mode: the login string may end in the TOTP code or a recovery "
             "code, which is not part of the wrapping secret"},
    {.name = NULL},
};

const struct mf_config_section mf_config_section_crypt = {"crypt", crypt_keys};
