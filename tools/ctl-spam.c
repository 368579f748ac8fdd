/*
 * ctl-spam.c - mailfortctl spam: not built into this version yet.
 */
#include "ctl.h"

int ctl_spam_cmd(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	return ctl_fail("'spam' commands are not available in this build");
}
