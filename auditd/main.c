/*
 * main.c - mailfort-auditd: ship the local event spool into PostgreSQL.
 *
 *   mailfort-auditd [-c CONFIG] [-f] [-v] [--once]
 *
 * Loads mailfort.conf, the Ed25519 checkpoint key (audit-sign.key in the key
 * directory; refused when group or other can read it), drops to the
 * [auditd] user when started as root, and then loops: ship a batch, or when
 * the spool is empty write a due checkpoint and wait.  When PostgreSQL is
 * unreachable the events stay in the spool and the daemon retries every
 * retry_interval; nothing is lost.
 *
 * Signals: SIGHUP reloads the configuration (and reconnects); SIGTERM and
 * SIGINT drain: everything in the spool is shipped (if the database is
 * reachable), a final checkpoint is written, and the daemon exits 0.
 *
 * Exit status: 0 after a clean stop, 1 on a start-up error (bad
 * configuration, unreadable or unsafe key, unknown user), 2 on a usage error.
 * Logs go to stderr with -f, otherwise to syslog (facility daemon).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "auditd.h"
#include "mf-config.h"
#include "mf-daemon.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-log.h"

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mailfort-auditd [-c CONFIG] [-f] [-v] [--once]\n"
	           "  -c, --config PATH  configuration file (default " MF_CONFIG_DEFAULT_PATH ")\n"
	           "  -f, --foreground   stay in the foreground, log to stderr\n"
	           "  -v, --verbose      log every batch and checkpoint\n"
	           "      --once         ship what is in the spool, checkpoint, exit\n");
}

/* Sleep ms milliseconds unless a signal arrives. */
static void nap(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	if (!got_term && !got_hup)
		(void)nanosleep(&ts, NULL);
}

static int load_key(struct auditd *d, struct mf_error *err)
{
	const char *dir = mf_config_str(d->cfg, "keys", "dir");
	char path[4096];

	snprintf(path, sizeof(path), "%s/audit-sign.key", dir);
	d->sign_sk = sodium_malloc(MF_AUDIT_SK_BYTES);
	if (d->sign_sk == NULL)
		return mf_error_set(err, "out of memory");
	if (mf_key_load(path, MF_KEY_SECRET, d->sign_sk, MF_AUDIT_SK_BYTES, err) < 0)
		return -1;
	crypto_sign_ed25519_sk_to_pk(d->sign_pk, d->sign_sk);
	return 0;
}

static void reload(struct auditd *d)
{
	struct mf_error err;
	struct mf_config *cfg = mf_config_load(d->config_path, &err);

	if (cfg == NULL) {
		mf_log_error("reload failed, keeping the running configuration: %s", err.msg);
		return;
	}
	struct auditd_producers *pp;

	if (auditd_producers_load(cfg, &pp, &err) < 0) {
		mf_log_error("reload failed, keeping the running configuration: %s", err.msg);
		mf_config_free(&cfg);
		return;
	}
	auditd_reset(d);
	mf_db_close(&d->db);
	mf_config_free(&d->cfg);
	auditd_producers_free(&d->producers);
	d->producers = pp;
	d->cfg = cfg;
	free(d->spool_dir);
	d->spool_dir = strdup(mf_config_str(cfg, "spool", "dir"));
	/* the node name keeps its chain: a change needs a restart */
	mf_log_info("configuration reloaded from %s", d->config_path);
}

/* Ship until the spool is empty (or the database fails); returns -1 on failure. */
static int ship_all(struct auditd *d, bool *idle_r)
{
	struct mf_error err;
	int64_t n;

	*idle_r = false;
	if (auditd_connect(d, &err) < 0) {
		mf_log_error("%s", err.msg);
		auditd_reset(d);
		return -1;
	}
	if (auditd_ship_batch(d, &n, &err) < 0) {
		mf_log_error("batch not shipped (will retry): %s", err.msg);
		auditd_reset(d);
		return -1;
	}
	if (auditd_anchor_publish(d, &err) < 0)
		mf_log_error("%s", err.msg); /* retried; shipping goes on */
	if (n > 0) {
		if (d->verbose)
			mf_log_info("shipped %" PRId64 " events, seq now %" PRId64, n, d->seq);
		return 0;
	}
	*idle_r = true;
	if (auditd_alerts_catch_up(d, &err) < 0 || auditd_checkpoint_if_due(d, false, &err) < 0 ||
	    auditd_maintenance(d, false, &err) < 0) {
		mf_log_error("%s", err.msg);
		auditd_reset(d);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},      {"once", no_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	struct auditd d;
	struct mf_error err;
	struct sigaction sa;
	bool foreground = false, once = false, idle;
	int c, failures = 0;
	int64_t poll_ms, retry_ms;

	memset(&d, 0, sizeof(d));
	d.anchored_seq = -1;
	d.config_path = MF_CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:fvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'v':
			d.verbose = true;
			break;
		case 'o':
			once = true;
			foreground = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (foreground) {
		mf_log_set_handler(mf_log_handler_stderr, NULL);
	} else {
		openlog("mailfort-auditd", LOG_PID, LOG_DAEMON);
		mf_log_set_handler(mf_log_handler_syslog, NULL);
	}

	d.cfg = mf_config_load(d.config_path, &err);
	if (d.cfg == NULL) {
		fprintf(stderr, "mailfort-auditd: %s\n", err.msg);
		return 1;
	}
	if (mf_crypto_init(&err) < 0 || load_key(&d, &err) < 0 ||
	    auditd_producers_load(d.cfg, &d.producers, &err) < 0 ||
	    mf_become_user("auditd", mf_config_str(d.cfg, "auditd", "user"), &err) < 0) {
		fprintf(stderr, "mailfort-auditd: %s\n", err.msg);
		mf_log_error("%s", err.msg);
		return 1;
	}
	d.node = mf_config_node(d.cfg);
	d.spool_dir = strdup(mf_config_str(d.cfg, "spool", "dir"));
	if (!foreground &&
	    (mf_daemonize(&err) < 0 ||
	     mf_pidfile_write(mf_config_str(d.cfg, "auditd", "pidfile"), &err) < 0)) {
		mf_log_error("%s", err.msg);
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a signal ends a nap */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	mf_log_info("started: node %s, spool %s", d.node, d.spool_dir);

	while (!got_term) {
		if (got_hup) {
			got_hup = 0;
			reload(&d);
		}
		poll_ms = mf_config_int(d.cfg, "auditd", "poll_interval_ms");
		retry_ms = mf_config_int(d.cfg, "auditd", "retry_interval") * 1000;
		if (ship_all(&d, &idle) < 0) {
			if (once && ++failures >= 3)
				break;
			nap(retry_ms);
			continue;
		}
		failures = 0;
		if (idle) {
			if (once)
				break;
			nap(poll_ms);
		}
	}

	/* Drain: ship what is left while the database answers, then sign. */
	if (got_term)
		mf_log_info("stopping: shipping what is left in the spool");
	for (int tries = 0; tries < 3;) {
		if (ship_all(&d, &idle) < 0) {
			tries++;
			continue;
		}
		if (idle)
			break;
	}
	if (d.state_loaded && auditd_checkpoint_if_due(&d, true, &err) < 0)
		mf_log_error("final checkpoint: %s", err.msg);
	d.anchor_retry = 0;
	if (d.state_loaded && auditd_anchor_publish(&d, &err) < 0)
		mf_log_error("final checkpoint: %s", err.msg);
	mf_log_info("stopped: %" PRIu64 " events shipped, node %s at seq %" PRId64, d.shipped_total,
	            d.node, d.seq);

	auditd_reset(&d);
	mf_db_close(&d.db);
	mf_config_free(&d.cfg);
	auditd_producers_free(&d.producers);
	if (d.sign_sk != NULL)
		sodium_free(d.sign_sk); /* zeroes the key */
	free(d.node);
	free(d.spool_dir);
	return failures > 0 ? 1 : 0;
}
