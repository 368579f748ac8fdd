/*
 * mf-event.h - build audit events and hand them to the spool receiver.
 *
 * An event is one flat JSON object, UTF-8, keys in the order they were
 * added.  Every event starts with the same fields, filled by mf_event_new:
 *
 *   {"v":1,"type":"auth","time":"2026-11-27T06:21:44.123456Z",
 *    "node":"mx1","pid":1234, ...}
 *
 * time is UTC (RFC 3339, microseconds), node the configured [spool] node or
 * the host name, pid the producing process (as it says; the receiver adds
 * "peer", the kernel-attested uid, gid, pid and executable of the sender,
 * which a producer cannot set: see mailfort-spool(5)).
 *
 * The producer then adds its own fields with the typed adders; names are
 * fixed ASCII identifiers, values are escaped here (control characters,
 * quotes, backslash, DEL and U+2028/U+2029 as \uXXXX escapes; invalid UTF-8
 * replaced by U+FFFD), so a hostile Subject or user name cannot break the
 * record.  A string value longer than its limit is cut at a character
 * boundary, ends in " [truncated]", and the event gets a flag
 * "<name>_truncated": true after it, so that no producer can make an event
 * too large for the spool or a column too large for its index.  Limits
 * (bytes of input): user and client 256, session 128, service, ip,
 * local_ip and original_type 64, mailbox, from_mailbox, new_name and
 * reason 1024, message_id 998 (the longest line RFC 5322 allows), any
 * other string MF_EVENT_MAX_STR.  mailfort-auditd checks type, user and
 * session again and quarantines a record that exceeds its own limits.  Common field names, used the
 * same way by every producer so that auditd and the SQL views can rely on them:
 *
 *   user, service, session, ip (remote), port, local_ip, local_port,
 *   result ("ok"/"fail"/...), reason, mailbox, uid, message_id, client
 *
 * Event types: "auth" (pam_mailfort), "login", "logout", "read", "save",
 * "copy", "move", "expunge", "flags", "mailbox_create", "mailbox_delete",
 * "mailbox_rename" (mailfort_audit), "verdict" (mailfort-milter), "crypt"
 * (mailfort_crypt errors and key events), "admin" (mailfortctl actions).
 * mailfort-auditd itself stores "invalid" (a spooled record that is not a
 * valid event, kept as text in "raw"), "spool_damage" (bytes of the
 * spool the reader had to skip: segment, offset, length) and "refused" (an
 * event of a type its sender's uid may not write, or whose time is far
 * from when the receiver got it: kept in "raw", with an alert).
 *
 * Allocation failure never crashes: mf_event_new returns NULL, an adder
 * that cannot allocate marks the event failed, every function accepts a
 * NULL or failed event, and mf_event_append then returns -1 with an error
 * saying the event could not be built, so the caller can log it (and the PAM
 * module fail closed).
 *
 * Never add a password, code or key to an event.
 */
#ifndef MF_EVENT_H
#define MF_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include "mf-common.h"

/* Longest string value kept whole (bytes of input), and the limits of the
   named fields above. */
#define MF_EVENT_MAX_STR        (64 * 1024)
#define MF_EVENT_MAX_USER       256
#define MF_EVENT_MAX_SESSION    128
#define MF_EVENT_MAX_SHORT      64
#define MF_EVENT_MAX_NAME       1024
#define MF_EVENT_MAX_MESSAGE_ID 998

struct mf_submit;
struct mf_event;

/* node: this host's name in the audit log (NULL = gethostname()).
   NULL only when out of memory. */
struct mf_event *mf_event_new(const char *type, const char *node);
void mf_event_free(struct mf_event **ev);

void mf_event_add_str(struct mf_event *ev, const char *name, const char *value); /* NULL -> null */
/* value may contain NUL bytes: each becomes U+FFFD, as an invalid UTF-8
   byte does (PostgreSQL's jsonb cannot store \u0000). */
void mf_event_add_strn(struct mf_event *ev, const char *name, const char *value, size_t len);
void mf_event_add_int(struct mf_event *ev, const char *name, int64_t value);
void mf_event_add_bool(struct mf_event *ev, const char *name, bool value);
/* Add already-valid JSON (an array or object built by the caller; NULL ->
   null).  Text that does not parse as one JSON value is added as a string
   instead (and a warning logged), so the event stays valid. */
void mf_event_add_json(struct mf_event *ev, const char *name, const char *json);

/* The finished JSON text (closes the object; adding more fields afterwards
   reopens it).  NULL if the event could not be built (out of memory). */
const char *mf_event_json(struct mf_event *ev, size_t *len_r);

/* Hand the event to the spool receiver (mf-submit.h) and wait until it is
   spooled.  0 on success; -1 with err if the event could not be built,
   s is NULL, or the receiver could not be reached or refused it. */
int mf_event_append(struct mf_event *ev, struct mf_submit *s, struct mf_error *err) MF_WARN_UNUSED;
/* The same without waiting for the answer (mf_submit_send_nowait): an
   error in the previous event's answer is returned here, or by
   mf_submit_flush. */
int mf_event_append_nowait(struct mf_event *ev, struct mf_submit *s,
                           struct mf_error *err) MF_WARN_UNUSED;

/* The current time as events write it: "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (UTC,
   27 characters and a NUL). */
void mf_event_time_now(char out[28]);

/* Escape s (len bytes, NUL allowed) as a JSON string, with quotes, into a
   malloc'd NUL-terminated buffer; s NULL gives "null".  NULL when out of
   memory.  Not truncated. */
char *mf_json_quote(const char *s, size_t len);

#endif
