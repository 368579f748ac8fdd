/*
 * config-schema-crypt.c - the [crypt] section of mailfort.conf.
 */
#include "mf-config.h"

static const struct mf_config_key crypt_keys[] = {
	{.name = NULL},
};

const struct mf_config_section mf_config_section_crypt = {"crypt", crypt_keys};
