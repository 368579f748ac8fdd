/*
 * milter.h - what the parts of the mailfort-milter daemon share.
 *
 *   milter-main.c       options, supervisor process, privileges, start-up
 *   milter-state.c      the live policy and model; reload and refresh threads
 *   milter-proto.c      the milter protocol: socket, sessions, packets, replies
 *   milter-callbacks.c  the callbacks: per-connection / per-message work
 */
#ifndef MF_MILTER_H
#define MF_MILTER_H

#include <libmilter/mfapi.h>
#include <pthread.h>
#include <stdbool.h>
#include "scan.h"

struct mf_config;
struct mf_submit;

/* Everything shared between sessions.  policy and model are replaced as a
   whole under lock; sessions take a reference and use it unlocked. */
struct milter_state {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	const char *config_path;
	struct mf_config *cfg;
	struct mf_policy *policy;
	struct mf_model *model;
	struct mf_token_key key;
	bool have_key;
	struct mf_submit *spool; /* to mailfort-spoold */
	char *node;
	bool reload_requested, refresh_requested, stopping;
	pthread_t refresh_thread, signal_thread;
	bool threads_started;
};

/* milter-state.c */
int milter_state_init(struct milter_state *st, const char *config_path, struct mf_error *err);
void milter_state_deinit(struct milter_state *st);
/* Connect to the event receiver ([spool] socket). */
int milter_state_open_spool(struct milter_state *st, struct mf_error *err);
/* Take references to the current policy and model (model may be NULL). */
void milter_state_acquire(struct milter_state *st, struct mf_policy **pol, struct mf_model **model);
/* Re-read the configuration; the old one stays on error. */
int milter_state_reload(struct milter_state *st, struct mf_error *err);
/* Start the model refresh thread and the SIGUSR1 (reload) thread. */
int milter_state_start_threads(struct milter_state *st, struct mf_error *err);
void milter_state_stop_threads(struct milter_state *st);
/* Load the model now (start-up); errors are logged, not fatal. */
void milter_state_refresh_now(struct milter_state *st);

/* msgbuf.c (the rest of it is declared in scan.h): empty b for the next
   message of a connection, keeping its memory; tmp_dir and spill as for
   mf_msgbuf_new.  A stream handed out before stays valid.  0 / -1 (out of
   memory; b is then empty, with its old tmp_dir). */
int mf_msgbuf_reset(struct mf_msgbuf *b, const char *tmp_dir, size_t spill);

/* verdict.c (the rest of it is declared in scan.h): a score with one
   decimal, exactly as printf's "%.1f" writes it, for headers and logs. */
void mf_verdict_format_score(char out[32], double score);

/* milter-callbacks.c */
void milter_callbacks_bind(struct milter_state *st);
const struct smfiDesc *milter_callbacks_desc(void);

/* milter-proto.c: libmilter's constants and callback table (struct
   smfiDesc, SMFIS_*, SMFIP_*, SMFIF_*) with our own protocol engine.
   Open the listening socket ("unix:/path", "local:/path", "inet:port@host",
   "inet6:port@host"); a stale unix socket is replaced.  Returns the fd. */
int milter_proto_listen(const char *spec, struct mf_error *err);
/* One session on an already connected fd, in the calling thread, as a
   listener would serve it (for tests and fuzzing); closes fd. */
void milter_proto_serve_fd(int fd, const struct smfiDesc *desc, int timeout);
/* Serve MTA connections, one thread each, until SIGTERM, SIGINT or SIGHUP
   (blocked in the calling thread and taken by a thread of its own).
   timeout: seconds a connection may stay silent.  0 after a clean stop,
   1 when sessions were still busy 10 s after the stop (shared state is
   still in use: exit without freeing it), -1 with err when it could not
   serve. */
int milter_proto_run(int listen_fd, const struct smfiDesc *desc, int timeout, struct mf_error *err);
/* For the callbacks: smfi_getpriv, smfi_setpriv, smfi_getsymval,
   smfi_setreply, smfi_addheader, smfi_chgheader (NULL value: delete),
   smfi_replacebody (called repeatedly: appends), smfi_quarantine.  The
   changes are sent with the end-of-message answer.  0 / -1. */
void *milter_ctx_getpriv(SMFICTX *ctx);
void milter_ctx_setpriv(SMFICTX *ctx, void *priv);
/* The SMFIP_* flags agreed with the MTA (SMFIP_NR_*: no answer wanted). */
unsigned long milter_ctx_protocol(SMFICTX *ctx);
char *milter_ctx_getsymval(SMFICTX *ctx, const char *name);
int milter_ctx_setreply(SMFICTX *ctx, const char *code, const char *xcode, const char *text);
int milter_ctx_addheader(SMFICTX *ctx, const char *name, const char *value);
int milter_ctx_chgheader(SMFICTX *ctx, const char *name, int index, const char *value);
int milter_ctx_replacebody(SMFICTX *ctx, const unsigned char *data, size_t len);
int milter_ctx_quarantine(SMFICTX *ctx, const char *reason);
/* smfi_setsymlist, from xxfi_negotiate only: ask the MTA to send just these
   macros (names separated by spaces, at least one) before the commands of
   stage (SMFIM_*).  Sent only to an MTA that offers SMFIF_SETSYMLIST.
   0 / -1 (bad stage, empty or long list, stage set already, too late). */
int milter_ctx_setsymlist(SMFICTX *ctx, int stage, const char *macros);

#endif
