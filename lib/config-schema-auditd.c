/*
 * config-schema-auditd.c - the [auditd] section of mailfort.conf.
 */
#include "mf-config.h"

static const struct mf_config_key auditd_keys[] = {
	{.name = NULL},
};

const struct mf_config_section mf_config_section_auditd = {"auditd", auditd_keys};
