/*
 * ctl-db.c - mailfortctl db: not built into this version yet.
 */
#include "ctl.h"

int ctl_db_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'db' commands are not available in this build");
}
