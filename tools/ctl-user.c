/*
 * ctl-user.c - mailfortctl user: not built into this version yet.
 */
#include "ctl.h"

int ctl_user_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'user' commands are not available in this build");
}
