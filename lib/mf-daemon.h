/*
 * mf-daemon.h - what the daemons (mailfort-auditd, mailfort-milter) do to
 * start: leave the terminal, write a pid file, give up root.
 *
 * mf_daemonize forks (the parent exits 0), starts a new session, changes
 * to / and points stdin, stdout and stderr at /dev/null.
 *
 * mf_pidfile_write writes this process's pid to path (nothing for NULL or
 * ""), through a temp file renamed over it, so that a reader never sees a
 * half-written file.
 *
 * mf_become_user switches to user (its groups, then its gid and uid) when
 * running as root; nothing when not root or for NULL, "" and "root".  It
 * fails when the user does not exist or root could be regained
 * afterwards.  section names the configuration section in the error.
 *
 * Each returns 0, or -1 with err saying what failed.
 */
#ifndef MF_DAEMON_H
#define MF_DAEMON_H

#include "mf-common.h"

int mf_daemonize(struct mf_error *err) MF_WARN_UNUSED;
int mf_pidfile_write(const char *path, struct mf_error *err) MF_WARN_UNUSED;
int mf_become_user(const char *section, const char *user, struct mf_error *err) MF_WARN_UNUSED;

#endif
