/*
 * ctl-totp.c - mailfortctl totp: not built into this version yet.
 */
#include "ctl.h"

int ctl_totp_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'totp' commands are not available in this build");
}
