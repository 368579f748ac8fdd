/*
 * ctl-crypt.c - mailfortctl crypt: not built into this version yet.
 */
#include "ctl.h"

int ctl_crypt_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'crypt' commands are not available in this build");
}
