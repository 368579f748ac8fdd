/*
 * milter.h - what the parts of the mailfort-milter daemon share.
 *
 *   milter-main.c       options, supervisor process, privileges, start-up
 *   milter-state.c      the live policy and model; reload and refresh threads
 *   milter-callbacks.c  libmilter callbacks: per-connection / per-message work
 */
#ifndef MF_MILTER_H
#define MF_MILTER_H

#include <pthread.h>
#include <stdbool.h>
#include "scan.h"

struct mf_config;
struct mf_spool_writer;

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
	struct mf_spool_writer *spool;
	char *node;
	bool spool_sync;
	bool reload_requested, refresh_requested, stopping;
	pthread_t refresh_thread, signal_thread;
	bool threads_started;
};

/* milter-state.c */
int milter_state_init(struct milter_state *st, const char *config_path, struct mf_error *err);
void milter_state_deinit(struct milter_state *st);
/* Open the event spool ([spool] dir). */
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

/* milter-callbacks.c */
struct smfiDesc;
void milter_callbacks_bind(struct milter_state *st);
struct smfiDesc *milter_callbacks_desc(void);

#endif
