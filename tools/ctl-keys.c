/*
 * ctl-keys.c - mailfortctl keys: not built into this version yet.
 */
#include "ctl.h"

int ctl_keys_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'keys' commands are not available in this build");
}
