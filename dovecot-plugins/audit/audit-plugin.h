/*
 * audit-plugin.h - what the mailfort_audit plugin offers its imap part.
 *
 * The base plugin (lib20_mailfort_audit_plugin) records every session and
 * mail event into the local spool.  The imap part (imap_mailfort_audit)
 * knows what only the imap process knows (why a session ended, bytes in and
 * out, the session policy) and hands it over here before the session's
 * mail user goes away; the logout event then carries it.
 */
#ifndef MAILFORT_AUDIT_PLUGIN_H
#define MAILFORT_AUDIT_PLUGIN_H

struct mail_user;
struct module;

/* Why and how a session ended: reason is a short word ("logout",
   "idle_timeout", "max_lifetime", "inactivity", "disconnected"), detail
   Dovecot's own text (may be NULL). */
void mailfort_audit_session_end(struct mail_user *user, const char *reason, const char *detail,
                                uint64_t bytes_in, uint64_t bytes_out);
/* The session goes on in another process (IMAP hibernation): no logout
   event now; the restored session records no second login. */
void mailfort_audit_session_suspend(struct mail_user *user);
/* Session policy of this user's configuration, in seconds (0 = off).
   Returns -1 when the user is not audited. */
int mailfort_audit_session_policy(struct mail_user *user, unsigned int *idle_r,
                                  unsigned int *lifetime_r);

/* Why the session's audit trail failed (an event could not be recorded),
   or NULL while it works; the imap part then ends the session. */
const char *mailfort_audit_failure(struct mail_user *user);

void mailfort_audit_plugin_init(struct module *module);
void mailfort_audit_plugin_deinit(void);

#endif
