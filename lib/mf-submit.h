/*
 * mf-submit.h - hand audit events to the spool receiver (mailfort-spoold).
 *
 * Producers (the PAM module, the Dovecot plugins, the milter, mailfortctl)
 * do not write the spool themselves: they send each event as one message
 * on the receiver's unix socket ([spool] socket, SOCK_SEQPACKET) and wait
 * for its answer.  The receiver, which alone can write the spool, appends
 * the kernel-attested identity of the sender (uid, gid, pid, executable)
 * to the event, appends the record to the spool and only then answers.  So
 * when mf_submit_send returns 0 the event is in the spool file (and on disk
 * when [spool] sync is on): a crash of the producer right afterwards loses
 * nothing, exactly as with a direct append.
 *
 * One event is outstanding per connection at a time (a mutex serialises
 * threads).  An answer not received within the timeout ([spool]
 * submit_timeout_ms) is an error, and the connection is closed so that a
 * late answer cannot be taken for the next event's.  A connection broken
 * by a receiver restart, or inherited across fork(2), is replaced by a new
 * one on the next send.
 *
 * Every function returns 0 / a handle, or -1 / NULL with a one-line reason
 * in err that names the socket and what failed (no receiver listening,
 * permission denied, timed out, event refused: and why).
 */
#ifndef MF_SUBMIT_H
#define MF_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include "mf-common.h"

struct mf_config;
struct mf_submit;

/* Largest event the socket carries; larger events are refused by
   mf_submit_send with a clear error.  Every field but one has a limit of
   at most 1 KiB (mf-event.h), the longest string 64 KiB: this fits one
   such string with the rest, and bounds what one event of a flood costs
   the others (mailfort-spoold serves a non-root connection one event a
   round). */
#define MF_SUBMIT_MAX_EVENT (80 * 1024)

/* The answer of the receiver: one byte MF_SUBMIT_OK, or MF_SUBMIT_ERR
   followed by a reason (text, not NUL-terminated). */
#define MF_SUBMIT_OK  'K'
#define MF_SUBMIT_ERR 'E'

/* Whether an event type (len bytes, not NUL-terminated) is one only the
   audit daemons write: refused, quarantined, invalid, spool_damage.  The
   receiver refuses such an event from any producer. */
bool mf_submit_type_reserved(const char *type, size_t len);

/* Connect to the receiver's socket; timeout_ms bounds connecting and every
   later answer. */
struct mf_submit *mf_submit_open(const char *socket_path, unsigned timeout_ms,
                                 struct mf_error *err) MF_WARN_UNUSED;
/* The same with [spool] socket and [spool] submit_timeout_ms of cfg. */
struct mf_submit *mf_submit_open_config(const struct mf_config *cfg,
                                        struct mf_error *err) MF_WARN_UNUSED;
void mf_submit_close(struct mf_submit **s);
/* Send one event and wait until the receiver has spooled it. */
int mf_submit_send(struct mf_submit *s, const void *payload, size_t len,
                   struct mf_error *err) MF_WARN_UNUSED;
/*
 * Send one event and return at once; its answer is collected by the next
 * send or by mf_submit_flush (an error in it is reported then, prefixed
 * "an earlier event").  Once send(2) returned, the event is in the
 * receiver's socket queue: a crash of the producer loses nothing.  A copy
 * is kept until the answer is in, and sent again, marked "resent": true,
 * when the connection breaks first (the receiver restarted), so a crash of
 * the receiver loses nothing either; at worst the event is spooled twice.
 * For events whose operation is acknowledged to a client anyway before the
 * next one (a mail session's reads): the wait for the answer then overlaps
 * with the client's round trip instead of adding to it.
 */
int mf_submit_send_nowait(struct mf_submit *s, const void *payload, size_t len,
                          struct mf_error *err) MF_WARN_UNUSED;
/* Wait for the answer to the event sent last with mf_submit_send_nowait. */
int mf_submit_flush(struct mf_submit *s, struct mf_error *err) MF_WARN_UNUSED;

#endif
