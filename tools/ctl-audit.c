/*
 * ctl-audit.c - mailfortctl audit: not built into this version yet.
 */
#include "ctl.h"

int ctl_audit_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'audit' commands are not available in this build");
}
