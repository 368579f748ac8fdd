/*
 * config-schema-audit.c - the [audit] section of mailfort.conf.
 */
#include "mf-config.h"

static const struct mf_config_key audit_keys[] = {
	{.name = NULL},
};

const struct mf_config_section mf_config_section_audit = {"audit", audit_keys};
