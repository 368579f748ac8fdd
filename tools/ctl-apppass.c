/*
 * ctl-apppass.c - mailfortctl apppass: not built into this version yet.
 */
#include "ctl.h"

int ctl_apppass_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'apppass' commands are not available in this build");
}
