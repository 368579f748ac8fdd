/*
 * config-schema-milter.c - the [milter] section of mailfort.conf.
 */
#include "mf-config.h"

static const struct mf_config_key milter_keys[] = {
	{.name = NULL},
};

const struct mf_config_section mf_config_section_milter = {"milter", milter_keys};
