/*
 * milter-state.c - the policy and token model every session reads.
 *
 * Both are reference-counted objects replaced as a whole under a mutex, so
 * a session holds a consistent pair for its whole message and a reload or
 * a model refresh never waits for mail, nor mail for them.
 *
 * Threads (started after the daemon dropped privileges):
 *   refresh   loads the token statistics from PostgreSQL every
 *             model_refresh seconds (or when asked), builds a new model
 *             off-lock and swaps it in; when the database is down the old
 *             model stays and the next try comes sooner (30 s).
 *   signal    SIGUSR1 (sent by the supervisor on SIGHUP): re-read
 *             mailfort.conf; a bad file is logged and the old policy kept.
 */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mf-config.h"
#include "mf-db.h"
#include "mf-log.h"
#include "mf-submit.h"
#include "milter.h"

static int load_config(struct milter_state *st, struct mf_config **cfg_r, struct mf_policy **pol_r,
                       struct mf_error *err)
{
	struct mf_config *cfg = mf_config_load(st->config_path, err);
	struct mf_policy *pol;

	if (cfg == NULL)
		return -1;
	pol = mf_policy_new(cfg, err);
	if (pol == NULL) {
		mf_error_prefix(err, "%s", st->config_path);
		mf_config_free(&cfg);
		return -1;
	}
	*cfg_r = cfg;
	*pol_r = pol;
	return 0;
}

int milter_state_init(struct milter_state *st, const char *config_path, struct mf_error *err)
{
	const char *s;
	struct mf_error kerr;

	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->wake, NULL);
	st->config_path = config_path;
	if (load_config(st, &st->cfg, &st->policy, err) < 0)
		return -1;
	s = mf_config_str(st->cfg, "spool", "node");
	if (s == NULL) {
		/* the host name, once, instead of once per verdict event */
		char host[256];

		if (gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			st->node = strdup(host);
		}
	} else {
		st->node = strdup(s);
	}
	if (mf_token_key_load(mf_config_str(st->cfg, "keys", "dir"), &st->key, &kerr) == 0) {
		st->have_key = true;
	} else {
		mf_log_warn("spam classifier disabled (rules still apply): %s", kerr.msg);
	}
	return 0;
}

int milter_state_open_spool(struct milter_state *st, struct mf_error *err)
{
	/* mailfort-spoold answers once the verdict is spooled (and, with
	   [spool] sync, on disk) before the message is accepted */
	st->spool = mf_submit_open_config(st->cfg, err);
	return st->spool == NULL ? -1 : 0;
}

void milter_state_deinit(struct milter_state *st)
{
	mf_submit_close(&st->spool);
	mf_policy_unref(&st->policy);
	mf_model_unref(&st->model);
	mf_config_free(&st->cfg);
	free(st->node);
	sodium_memzero(&st->key, sizeof(st->key));
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->wake);
}

void milter_state_acquire(struct milter_state *st, struct mf_policy **pol, struct mf_model **model)
{
	pthread_mutex_lock(&st->lock);
	*pol = mf_policy_ref(st->policy);
	*model = mf_model_ref(st->model);
	pthread_mutex_unlock(&st->lock);
}

int milter_state_reload(struct milter_state *st, struct mf_error *err)
{
	struct mf_config *cfg, *old_cfg;
	struct mf_policy *pol, *old_pol;

	if (load_config(st, &cfg, &pol, err) < 0)
		return -1;
	pthread_mutex_lock(&st->lock);
	old_cfg = st->cfg;
	old_pol = st->policy;
	st->cfg = cfg;
	st->policy = pol;
	st->refresh_requested = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
	mf_policy_unref(&old_pol);
	/* Nothing keeps pointers into a config after start-up except the
	   policy, which owns copies: the old one can go. */
	mf_config_free(&old_cfg);
	return 0;
}

/* Load a new model; returns 0 when swapped in. */
static int refresh_model(struct milter_state *st, struct mf_error *err)
{
	struct mf_db_settings set;
	struct mf_db *db;
	struct mf_model *m, *old;
	struct mf_config *cfg;
	uint64_t ns, nh;

	if (!st->have_key)
		return mf_error_set(err, "no token key");
	/* The config may be swapped while we connect: settings are copied by
	   mf_db_open, and the config is only freed by a reload, which runs on
	   the signal thread: take the lock around the copy. */
	pthread_mutex_lock(&st->lock);
	cfg = st->cfg;
	mf_db_settings_from_config(&set, cfg, "mailfort-milter");
	db = mf_db_open(&set, err);
	pthread_mutex_unlock(&st->lock);
	if (db == NULL)
		return -1;
	m = mf_model_load(db, &st->key, err);
	mf_db_close(&db);
	if (m == NULL)
		return -1;
	mf_model_messages(m, &ns, &nh);
	pthread_mutex_lock(&st->lock);
	old = st->model;
	st->model = m;
	pthread_mutex_unlock(&st->lock);
	mf_model_unref(&old);
	mf_log_info("spam model loaded: %zu tokens, %llu spam and %llu ham messages trained",
	            mf_model_size(m), (unsigned long long)ns, (unsigned long long)nh);
	return 0;
}

void milter_state_refresh_now(struct milter_state *st)
{
	struct mf_error err;

	if (st->have_key && refresh_model(st, &err) < 0)
		mf_log_warn("spam model not loaded (scoring with rules only until it is): %s",
		            err.msg);
}

static void *refresh_main(void *arg)
{
	struct milter_state *st = arg;
	bool ok = true;

	pthread_mutex_lock(&st->lock);
	while (!st->stopping) {
		struct timespec until;
		int period = st->policy->model_refresh;
		struct mf_error err;

		if (!ok && period > 30)
			period = 30;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += period;
		while (!st->stopping && !st->refresh_requested) {
			if (pthread_cond_timedwait(&st->wake, &st->lock, &until) == ETIMEDOUT)
				break;
		}
		if (st->stopping)
			break;
		st->refresh_requested = false;
		pthread_mutex_unlock(&st->lock);
		if (st->have_key) {
			bool was_ok = ok;

			ok = refresh_model(st, &err) == 0;
			if (!ok)
				mf_log(was_ok ? MF_LOG_WARN : MF_LOG_DEBUG,
				       "spam model refresh failed, keeping the one in memory: %s",
				       err.msg);
		}
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static void *signal_main(void *arg)
{
	struct milter_state *st = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	for (;;) {
		struct mf_error err;

		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR2)
			break; /* shutdown */
		if (milter_state_reload(st, &err) < 0)
			mf_log_error("reload failed, keeping the running configuration: %s",
			             err.msg);
		else
			mf_log_info("configuration reloaded from %s", st->config_path);
	}
	return NULL;
}

int milter_state_start_threads(struct milter_state *st, struct mf_error *err)
{
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rc = pthread_create(&st->refresh_thread, NULL, refresh_main, st);
	if (rc != 0)
		return mf_error_set(err, "cannot start a thread: %s", strerror(rc));
	rc = pthread_create(&st->signal_thread, NULL, signal_main, st);
	if (rc != 0) {
		pthread_mutex_lock(&st->lock);
		st->stopping = true;
		pthread_cond_signal(&st->wake);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->refresh_thread, NULL);
		return mf_error_set(err, "cannot start a thread: %s", strerror(rc));
	}
	st->threads_started = true;
	return 0;
}

void milter_state_stop_threads(struct milter_state *st)
{
	if (!st->threads_started)
		return;
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->refresh_thread, NULL);
	pthread_kill(st->signal_thread, SIGUSR2);
	pthread_join(st->signal_thread, NULL);
	st->threads_started = false;
}
