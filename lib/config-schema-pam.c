/*
 * config-schema-pam.c - the [pam] section of mailfort.conf.
 */
#include "mf-config.h"

static const struct mf_config_key pam_keys[] = {
	{.name = NULL},
};

const struct mf_config_section mf_config_section_pam = {"pam", pam_keys};
