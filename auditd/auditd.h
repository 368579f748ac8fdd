/*
 * auditd.h - what the parts of mailfort-auditd share.
 *
 * main.c     options, privileges, signals, the main loop
 * prepare.c  a thread that reads the spool and builds the next batch (checks,
 *            columns, hash chain, binary COPY rows) while one is stored
 * ship.c     batches -> PostgreSQL: COPY, positions, checkpoints, partitions
 *            ahead, quarantine of records the database refuses
 * alerts.c   alert rules evaluated on each batch inside its transaction, and
 *            mailing alerts to the security address after it commits
 * producers.c which producer uid may write which event types
 * anchor.c   publishing signed checkpoints outside the database
 *
 * Every function returns 0 on success and -1 with err set; a -1 from the
 * shipping path means "the database went away or refused the batch": the
 * caller rolls back, forgets the uncommitted batch, waits and retries.
 */
#ifndef MF_AUDITD_H
#define MF_AUDITD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mf-audit-chain.h"
#include "mf-common.h"
#include "mf-spool.h"

struct mf_config;
struct mf_db;

/* Under load the volume rules run at most this often (seconds); an idle
   spool runs them at once. */
#define AUDITD_MASS_INTERVAL 5

/* Seconds an incomplete record may stay at the end of the spool before its
   segment is sealed (a writer died mid-write). */
#define AUDITD_TORN_GRACE 5

/* An alert raised in the current batch, mailed after commit. */
struct auditd_alert {
	char *rule, *username, *ip, *summary;
	struct auditd_alert *next;
};

/* Longest type, user and session (bytes) auditd stores as they are; a
   record with a longer one is quarantined.  The producers cut these
   fields far shorter (mf-event.h): only a broken or hostile writer gets
   here. */
#define AUDITD_MAX_TYPE    64
#define AUDITD_MAX_USER    512
#define AUDITD_MAX_SESSION 512

/* A record kept out of the events table: a "quarantined" event stands at
   seq in the chain, the record goes into mailfort.audit_quarantine. */
struct auditd_quarantine {
	int64_t seq;
	char *reason;
	char sqlstate[6]; /* "" when auditd itself refused it */
	unsigned char digest[MF_AUDIT_HASH_BYTES];
	char *record;
	size_t len;
	struct auditd_quarantine *next;
};

/* A batch prepared from the spool: binary COPY rows for events
   first_seq..last_seq, and where the chain and the spool stand after them.
   Nothing in it is committed. */
struct auditd_batch {
	char *data; /* COPY rows, without the file header and trailer */
	size_t len, cap;
	int64_t n; /* events (0: nothing to ship now) */
	int64_t first_seq, last_seq;
	unsigned char head[MF_AUDIT_HASH_BYTES]; /* hash of last_seq */
	struct mf_spool_pos pos;                 /* spool position after last_seq */
	unsigned int types;                      /* AUDITD_T_* of the events */
	/* why it ended: RECORD (full), EMPTY, TORN (at end_pos) or ERROR */
	enum mf_spool_status end;
	struct mf_spool_pos end_pos;
	bool ahead; /* read ahead, before the shipping thread asked for it */
	struct auditd_quarantine *quarantine; /* records quarantined in it */
	char error[MF_ERROR_MAX];
};

struct auditd_prep;
struct auditd_producers;

struct auditd {
	const char *config_path;
	struct mf_config *cfg;
	char *node;
	char *spool_dir;
	struct mf_db *db;
	struct mf_spool_reader *reader; /* opened at the committed position; read by prep */
	struct auditd_prep *prep;       /* the preparing thread, while state is loaded */

	/* committed state (what PostgreSQL has) */
	bool state_loaded;
	struct mf_spool_pos pos;
	int64_t seq;
	unsigned char head[MF_AUDIT_HASH_BYTES];
	int64_t ckpt_seq;
	time_t ckpt_time;
	int64_t mass_seq; /* last seq the volume rules (mass_read/delete) covered */
	/* kinds of event (AUDITD_T_*) stored after mass_seq; all bits when not
	   known (after a start): a volume rule runs only when its kind is there */
	unsigned int mass_types;
	time_t mass_time;  /* when they last ran */
	time_t maint_time; /* last partition run */

	struct auditd_producers *producers; /* [audit] producers, max_clock_skew */
	int64_t anchored_seq;               /* newest checkpoint published (-1: not loaded) */
	time_t anchor_retry;                /* publication failed: not before then */

	unsigned char *sign_sk; /* sodium_malloc'd Ed25519 secret key */
	unsigned char sign_pk[MF_AUDIT_PK_BYTES];

	/* which kinds of event the batch being shipped holds (AUDITD_T_*):
	   rules and filing are skipped for kinds it does not hold */
	unsigned int batch_types;
	/* an incomplete record seen at the end of the spool, and since when */
	time_t torn_since;
	struct mf_spool_pos torn_pos;

	struct auditd_alert *alerts; /* raised by the batch being shipped */

	/* After the database refused a batch for its data (not an outage):
	   events up to careful_until are shipped one per batch, and the one
	   it refuses alone (quarantine_seq) is quarantined with the reason. */
	int64_t careful_until;
	int64_t quarantine_seq;
	char quarantine_reason[MF_ERROR_MAX];
	char quarantine_state[6];
	char refused_state[6]; /* SQLSTATE of the last refused batch */
	uint64_t shipped_total;
	bool verbose;
};

/* Event kinds that rules or filing look at. */
#define AUDITD_T_AUTH    0x1u /* auth, login */
#define AUDITD_T_READ    0x2u
#define AUDITD_T_EXPUNGE 0x4u
#define AUDITD_T_VERDICT 0x8u
#define AUDITD_T_CRYPT   0x10u /* mailfort_crypt: refused or forged stored mail */
#define AUDITD_T_REFUSED 0x20u

/* producers.c */
int auditd_producers_load(const struct mf_config *cfg, struct auditd_producers **pp_r,
                          struct mf_error *err);
void auditd_producers_free(struct auditd_producers **pp);
/* NULL when the record may be stored as it is; otherwise why it is
   refused (written into why).  peer is the "peer" member's JSON text, NULL
   when the record has none. */
const char *auditd_producers_check(const struct auditd_producers *pp, const char *type,
                                   const char *peer, size_t peer_len, bool time_ok, int64_t time_us,
                                   char *why, size_t why_size);

/* anchor.c */
/* Publish the committed checkpoints not published yet ([audit] anchor_sink). */
int auditd_anchor_publish(struct auditd *d, struct mf_error *err);

/* prepare.c */
unsigned int auditd_type_bit(const char *type);
/* Start preparing batches from d->reader, d->seq and d->head. */
int auditd_prep_start(struct auditd *d, int64_t batch_size, struct mf_error *err);
/* Stop the thread and throw away what it prepared (d->reader stays open). */
void auditd_prep_stop(struct auditd *d);
/* The next batch (waits for it); the following one is started at once when
   this one holds events.  Hand it back with auditd_prep_release. */
struct auditd_batch *auditd_prep_take(struct auditd *d);
void auditd_prep_release(struct auditd *d, struct auditd_batch *b);
void auditd_batch_free(struct auditd_batch *b);

/* ship.c */
/* Connect (if needed) and load the committed state. */
int auditd_connect(struct auditd *d, struct mf_error *err);
/* Forget connection-bound state after a failure (reader, db). */
void auditd_reset(struct auditd *d);
/* Ship one batch; *n_r = events shipped (0: the spool is empty). */
int auditd_ship_batch(struct auditd *d, int64_t *n_r, struct mf_error *err);
/* Write a checkpoint when one is due (force: whenever events are unsigned). */
int auditd_checkpoint_if_due(struct auditd *d, bool force, struct mf_error *err);
/* Partitions ahead, at most hourly unless force. */
int auditd_maintenance(struct auditd *d, bool force, struct mf_error *err);

/* alerts.c */
/* Evaluate the rules over events from_seq..to_seq of this node (inside the
   batch's transaction), and the volume rules over mass_from..to_seq when
   mass_from > 0 (those whose kind is in mass_types: the kinds of event in
   that range); raised alerts are queued on d->alerts. */
int auditd_alerts_evaluate(struct auditd *d, int64_t from_seq, int64_t to_seq, int64_t mass_from,
                           unsigned int mass_types, struct mf_error *err);
/* Run the volume rules over what they have not seen yet (idle spool). */
int auditd_alerts_catch_up(struct auditd *d, struct mf_error *err);
/* Raise the critical "quarantine" alert for a quarantined record (inside
   the batch's transaction). */
int auditd_alert_quarantine(struct auditd *d, const struct auditd_quarantine *q,
                            struct mf_error *err);
/* Mail queued alerts (after commit) and free the queue. */
void auditd_alerts_flush(struct auditd *d, bool send);

#endif
