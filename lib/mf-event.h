/*
 * mf-event.h - build audit events and append them to the spool.
 *
 * An event is one flat JSON object, UTF-8, keys in the order they were
 * added.  Every event starts with the same fields, filled by mf_event_new:
 *
 *   {"v":1,"type":"auth","time":"2026-11-27T06:21:44.123456Z",
 *    "node":"mx1","pid":1234, ...}
 *
 * The producer then adds its own fields with the typed adders; names are
 * fixed ASCII identifiers, values are escaped here (control characters,
 * quotes, invalid UTF-8 replaced by U+FFFD), so a hostile Subject or user
 * name cannot break the record.  Common field names, used the same way by
 * every producer so that auditd and the SQL views can rely on them:
 *
 *   user, service, session, ip (remote), port, local_ip, local_port,
 *   result ("ok"/"fail"/...), reason, mailbox, uid, message_id, client
 *
 * Event types: "auth" (pam_mailfort), "login", "logout", "read", "save",
 * "copy", "move", "expunge", "flags", "mailbox_create", "mailbox_delete",
 * "mailbox_rename" (mailfort_audit), "verdict" (mailfort-milter), "crypt"
 * (mailfort_crypt errors and key events), "admin" (mailfortctl actions).
 *
 * Never add a password, code or key to an event.
 */
#ifndef MF_EVENT_H
#define MF_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include "mf-common.h"

struct mf_spool_writer;
struct mf_event;

/* node: this host's name in the audit log (NULL = gethostname()). */
struct mf_event *mf_event_new(const char *type, const char *node);
void mf_event_free(struct mf_event **ev);

void mf_event_add_str(struct mf_event *ev, const char *name, const char *value); /* NULL -> null */
void mf_event_add_strn(struct mf_event *ev, const char *name, const char *value, size_t len);
void mf_event_add_int(struct mf_event *ev, const char *name, int64_t value);
void mf_event_add_bool(struct mf_event *ev, const char *name, bool value);
/* Add already-valid JSON (an array or object built by the caller). */
void mf_event_add_json(struct mf_event *ev, const char *name, const char *json);

/* The finished JSON text (closes the object on first call). */
const char *mf_event_json(struct mf_event *ev, size_t *len_r);

/* Append to the spool. 0 on success. */
int mf_event_append(struct mf_event *ev, struct mf_spool_writer *w,
		    struct mf_error *err) MF_WARN_UNUSED;

/* Escape s as a JSON string (with quotes) into a malloc'd buffer. */
char *mf_json_quote(const char *s, size_t len);

#endif
