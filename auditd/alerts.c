/*
 * alerts.c - alert rules over the audit trail.
 *
 * Evaluated for each shipped batch, inside its transaction, by SQL over the
 * stored events (so a restart loses no state and an alert is raised exactly
 * once with the batch that caused it).  Rules and their [auditd] settings:
 *
 *   new_ip         a successful login from an address the account has not
 *                  logged in from within new_ip_days (accounts without any
 *                  login in that period are not alerted: nothing to compare)
 *   failed_logins  failed_logins failures for one account within
 *                  failed_logins_window
 *   failed_logins_ip  failed_logins_ip failures from one address, same window
 *   mass_read      mass_read message reads by one account in mass_read_window
 *   mass_delete    mass_delete expunges by one account in mass_delete_window
 *   totp_replay    an authentication refused because its code was used before
 *   locked_login   a login attempt on a locked account
 *   planted_mail   mailfort_crypt refused to serve a stored message that it
 *                  did not store (plaintext, or a ciphertext without a valid
 *                  server authenticator): critical
 *   producer_refused  an event stored as "refused": its sender's uid may
 *                  not write its type ([audit] producers), its time is far
 *                  from its receipt, or it forged the sender's identity
 *
 * A threshold rule stays quiet for one window after it fired for the same
 * account or address.  Each alert is a row in mailfort.alerts (whose
 * trigger sends NOTIFY mailfort_alert); after the batch commits, alerts are
 * mailed to security_address through the local sendmail when one is set.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "auditd.h"
#include "mf-config.h"
#include "mf-db.h"
#include "mf-log.h"

#define FAILED_PRED "type IN ('auth', 'login') AND coalesce(payload::jsonb->>'result', '') = 'fail'"

/* A threshold rule: count events matching pred per key within a window
   (counting stops at the threshold, so a busy account costs no more than
   the threshold's worth of index entries per batch). */
struct count_rule {
	const char *rule;
	const char *key; /* username or ip */
	const char *pred;
	const char *what; /* for the summary */
	const char *threshold_key, *window_key;
	unsigned int kinds; /* AUDITD_T_* of the events it counts */
};

static const struct count_rule count_rules[] = {
    {"failed_logins", "username", FAILED_PRED, "failed logins", "failed_logins",
     "failed_logins_window", AUDITD_T_AUTH},
    {"failed_logins_ip", "ip", FAILED_PRED, "failed logins", "failed_logins_ip",
     "failed_logins_window", AUDITD_T_AUTH},
    {"mass_read", "username", "type = 'read'", "messages read", "mass_read", "mass_read_window",
     AUDITD_T_READ},
    {"mass_delete", "username", "type = 'expunge'", "messages expunged", "mass_delete",
     "mass_delete_window", AUDITD_T_EXPUNGE},
};

static void queue_alerts(struct auditd *d, PGresult *res)
{
	for (int i = 0; i < PQntuples(res); i++) {
		struct auditd_alert *a = calloc(1, sizeof(*a));

		if (a == NULL)
			abort();
		a->rule = strdup(PQgetvalue(res, i, 0));
		a->username = PQgetisnull(res, i, 1) ? NULL : strdup(PQgetvalue(res, i, 1));
		a->ip = PQgetisnull(res, i, 2) ? NULL : strdup(PQgetvalue(res, i, 2));
		a->summary = strdup(PQgetvalue(res, i, 3));
		a->next = d->alerts;
		d->alerts = a;
		mf_log_warn("alert %s: %s", a->rule, a->summary);
	}
}

static int run_rule(struct auditd *d, const char *sql, int nparams, const char *const *params,
                    struct mf_error *err)
{
	PGresult *res = mf_db_exec(d->db, sql, nparams, params, err);

	if (res == NULL)
		return -1;
	queue_alerts(d, res);
	PQclear(res);
	return 0;
}

static int count_rule_eval(struct auditd *d, const struct count_rule *r, const char *from,
                           const char *to, struct mf_error *err)
{
	char sql[6144], thr[32], win[32];
	int len;
	int64_t threshold = mf_config_int(d->cfg, "auditd", r->threshold_key);
	const char *params[5];
	bool is_ip = strcmp(r->key, "ip") == 0;

	if (threshold <= 0)
		return 0;
	snprintf(thr, sizeof(thr), "%" PRId64, threshold);
	snprintf(win, sizeof(win), "%" PRId64, mf_config_int(d->cfg, "auditd", r->window_key));
	/* Only fixed fragments go into the text; every value is a parameter.
	   Per key with matching events in the range (b): quiet keys dropped
	   (q); n counts the window ending at the key's latest event and n_any
	   all events that any window ending in the range can see, both
	   stopping at the threshold (c).  A key alerts at its latest event
	   when n reaches the threshold; when only n_any does (the range spans
	   more time than the window, as when a backlog is shipped), the
	   windows ending at each of its events in the range are counted and
	   the first one that reaches it alerts: a burst earlier in the range
	   is not missed. */
	len = snprintf(
	    sql, sizeof(sql),
	    "WITH b AS MATERIALIZED (SELECT %1$s AS k, min(event_time) AS t0, "
	    "  max(event_time) AS t, max(seq) AS seq FROM mailfort.audit_events "
	    "  WHERE node = $1 AND seq BETWEEN $2 AND $3 "
	    "  AND %1$s IS NOT NULL AND %2$s GROUP BY %1$s), "
	    "q AS MATERIALIZED (SELECT b.* FROM b WHERE NOT EXISTS (SELECT 1 "
	    "  FROM mailfort.alerts a WHERE a.rule = '%3$s' AND a.%1$s = b.k "
	    "  AND a.created_at > now() - make_interval(secs => $5::bigint))), "
	    "c0 AS MATERIALIZED (SELECT q.*, (SELECT count(*) FROM (SELECT 1 "
	    "  FROM mailfort.audit_events e WHERE e.%1$s = q.k "
	    "  AND e.event_time > q.t - make_interval(secs => $5::bigint) "
	    "  AND e.event_time <= q.t AND %2$s LIMIT $4::bigint) w) AS n FROM q), "
	    /* (n_any is n when n reached the threshold or all events of the
	       key in the range share one time) */
	    "c AS MATERIALIZED (SELECT c0.*, "
	    "  CASE WHEN c0.n >= $4::bigint OR c0.t0 = c0.t THEN c0.n "
	    "  ELSE (SELECT count(*) FROM (SELECT 1 FROM mailfort.audit_events e "
	    "  WHERE e.%1$s = c0.k "
	    "  AND e.event_time > c0.t0 - make_interval(secs => $5::bigint) "
	    "  AND e.event_time <= c0.t AND %2$s LIMIT $4::bigint) w) END AS n_any "
	    "  FROM c0), "
	    "h AS (SELECT k, seq, n FROM c WHERE n >= $4::bigint "
	    "  UNION ALL "
	    "  (SELECT DISTINCT ON (x.k) x.k, x.seq, x.n "
	    "  FROM c CROSS JOIN LATERAL (SELECT c.k AS k, e.seq, e.event_time, "
	    "  (e.node = $1 AND e.seq BETWEEN $2 AND $3) AS inr, "
	    "  count(*) OVER (ORDER BY e.event_time RANGE BETWEEN "
	    "  make_interval(secs => $5::bigint) - interval '1 microsecond' "
	    "  PRECEDING AND CURRENT ROW) AS n "
	    "  FROM mailfort.audit_events e WHERE e.%1$s = c.k "
	    "  AND e.event_time > c.t0 - make_interval(secs => $5::bigint) "
	    "  AND e.event_time <= c.t AND %2$s) x "
	    "  WHERE c.n < $4::bigint AND c.n_any >= $4::bigint "
	    "  AND x.inr AND x.n >= $4::bigint "
	    "  ORDER BY x.k, x.event_time, x.seq)) "
	    "INSERT INTO mailfort.alerts (node, rule, severity, username, ip, summary, detail, "
	    "  event_node, event_seq) "
	    "SELECT $1, '%3$s', 'warning', %4$s, %5$s, "
	    "  format('%%s %6$s by %%s within %%s seconds', b.n, %7$s, $5::bigint), "
	    "  jsonb_build_object('count', b.n, 'threshold', $4::bigint, 'window_seconds', "
	    "  $5::bigint), $1, b.seq "
	    "FROM h AS b "
	    "RETURNING rule, username, host(ip), summary",
	    r->key, r->pred, r->rule, is_ip ? "NULL" : "b.k", is_ip ? "b.k" : "NULL", r->what,
	    is_ip ? "host(b.k)" : "b.k");
	if (len < 0 || (size_t)len >= sizeof(sql))
		return mf_error_set(err, "alert rule %s: query too long", r->rule);
	params[0] = d->node;
	params[1] = from;
	params[2] = to;
	params[3] = thr;
	params[4] = win;
	return run_rule(d, sql, 5, params, err);
}

int auditd_alerts_evaluate(struct auditd *d, int64_t from_seq, int64_t to_seq, int64_t mass_from,
                           unsigned int mass_types, struct mf_error *err)
{
	char from[32], to[32], days[32], mfrom[32];
	const char *params[4] = {d->node, from, to, days};
	int64_t new_ip_days = mf_config_int(d->cfg, "auditd", "new_ip_days");

	snprintf(from, sizeof(from), "%" PRId64, from_seq);
	snprintf(to, sizeof(to), "%" PRId64, to_seq);
	snprintf(days, sizeof(days), "%" PRId64, new_ip_days);
	snprintf(mfrom, sizeof(mfrom), "%" PRId64, mass_from);

	for (size_t i = 0; i < MF_N_ELEMENTS(count_rules); i++) {
		const struct count_rule *r = &count_rules[i];

		if ((r->kinds & AUDITD_T_AUTH) == 0) {
			/* volume rule: over everything since it last ran, when
			   that holds events of its kind */
			if (mass_from > 0 && (mass_types & r->kinds) != 0 &&
			    count_rule_eval(d, r, mfrom, to, err) < 0)
				return -1;
			continue;
		}
		if ((d->batch_types & r->kinds) == 0)
			continue;
		if (count_rule_eval(d, r, from, to, err) < 0)
			return -1;
	}
	if ((d->batch_types & AUDITD_T_CRYPT) != 0 &&
	    run_rule(d,
	             "INSERT INTO mailfort.alerts (node, rule, severity, username, ip, summary, "
	             "  detail, event_node, event_seq) "
	             "SELECT $1, 'planted_mail', 'critical', e.username, e.ip, "
	             "  format('stored message %s uid %s of %s refused: %s', "
	             "    coalesce(j->>'mailbox', '?'), coalesce(j->>'uid', '?'), e.username, "
	             "    coalesce(j->>'reason', 'not stored by mailfort_crypt')), "
	             "  jsonb_build_object('service', j->>'service', 'mailbox', j->>'mailbox', "
	             "    'uid', j->>'uid', 'reason', j->>'reason'), e.node, e.seq "
	             "FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j) "
	             "WHERE e.node = $1 AND e.seq BETWEEN $2 AND $3 AND e.type = 'crypt' "
	             "  AND j->>'result' = 'refused' "
	             "RETURNING rule, username, host(ip), summary",
	             3, params, err) < 0)
		return -1;
	if ((d->batch_types & AUDITD_T_REFUSED) != 0 &&
	    run_rule(
	        d,
	        "INSERT INTO mailfort.alerts (node, rule, severity, username, ip, summary, "
	        "  detail, event_node, event_seq) "
	        "SELECT $1, 'producer_refused', 'critical', NULL, NULL, "
	        "  format('refused an event from uid %s (%s, pid %s): %s', "
	        "  coalesce(j->'peer'->>'uid', 'unknown'), coalesce(j->'peer'->>'exe', '?'), "
	        "  coalesce(j->'peer'->>'pid', '?'), j->>'reason'), "
	        "  jsonb_build_object('peer', j->'peer', 'reason', j->>'reason'), e.node, e.seq "
	        "FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j) "
	        "WHERE e.node = $1 AND e.seq BETWEEN $2 AND $3 AND e.type = 'refused' "
	        "RETURNING rule, username, host(ip), summary",
	        3, params, err) < 0)
		return -1;
	if ((d->batch_types & AUDITD_T_AUTH) == 0)
		return 0;
	if (new_ip_days > 0 &&
	    run_rule(d,
	             "INSERT INTO mailfort.alerts (node, rule, severity, username, ip, summary, "
	             "  detail, event_node, event_seq) "
	             "SELECT $1, 'new_ip', 'warning', e.username, e.ip, "
	             "  format('login by %s from %s, not seen for this account in %s days', "
	             "  e.username, host(e.ip), $4::int), "
	             "  jsonb_build_object('service', e.payload::jsonb->>'service', 'client', "
	             "  e.payload::jsonb->>'client', 'days', $4::int), e.node, e.seq "
	             "FROM mailfort.audit_events e "
	             "WHERE e.node = $1 AND e.seq BETWEEN $2 AND $3 AND e.type = 'login' "
	             "  AND e.ip IS NOT NULL AND e.username IS NOT NULL "
	             "  AND coalesce(e.payload::jsonb->>'result', 'ok') = 'ok' "
	             "  AND EXISTS (SELECT 1 FROM mailfort.audit_events o WHERE o.username = "
	             "    e.username AND o.type = 'login' AND o.ip IS NOT NULL "
	             "    AND o.event_time >= e.event_time - make_interval(days => $4::int) "
	             "    AND o.event_time <= e.event_time AND (o.node, o.seq) <> (e.node, e.seq)) "
	             "  AND NOT EXISTS (SELECT 1 FROM mailfort.audit_events o WHERE o.username = "
	             "    e.username AND o.type = 'login' AND o.ip = e.ip "
	             "    AND o.event_time >= e.event_time - make_interval(days => $4::int) "
	             "    AND o.event_time <= e.event_time AND (o.node, o.seq) <> (e.node, e.seq)) "
	             "RETURNING rule, username, host(ip), summary",
	             4, params, err) < 0)
		return -1;
	if (run_rule(d,
	             "INSERT INTO mailfort.alerts (node, rule, severity, username, ip, summary, "
	             "  detail, event_node, event_seq) "
	             "SELECT $1, CASE WHEN j->>'reason' ~* 'replay' THEN 'totp_replay' "
	             "    ELSE 'locked_login' END, "
	             "  CASE WHEN j->>'reason' ~* 'replay' THEN 'critical' ELSE 'warning' END, "
	             "  e.username, e.ip, "
	             "  CASE WHEN j->>'reason' ~* 'replay' "
	             "    THEN format('replayed one-time code for %s from %s', e.username, "
	             "      coalesce(host(e.ip), 'unknown address')) "
	             "    ELSE format('login attempt on locked account %s from %s', e.username, "
	             "      coalesce(host(e.ip), 'unknown address')) END, "
	             "  jsonb_build_object('service', j->>'service', 'reason', j->>'reason'), "
	             "  e.node, e.seq "
	             "FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j) "
	             "WHERE e.node = $1 AND e.seq BETWEEN $2 AND $3 AND e.type = 'auth' "
	             "  AND coalesce(j->>'result', '') <> 'ok' "
	             "  AND (j->>'reason' ~* 'replay' OR j->>'reason' ~* 'lock') "
	             "RETURNING rule, username, host(ip), summary",
	             3, params, err) < 0)
		return -1;
	return 0;
}

int auditd_alert_quarantine(struct auditd *d, const struct auditd_quarantine *q,
                            struct mf_error *err)
{
	char seq[32], len[32];
	const char *params[5] = {d->node, seq, q->reason, len,
	                         q->sqlstate[0] != '\0' ? q->sqlstate : NULL};

	snprintf(seq, sizeof(seq), "%" PRId64, q->seq);
	snprintf(len, sizeof(len), "%zu", q->len);
	return run_rule(d,
	                "INSERT INTO mailfort.alerts (node, rule, severity, summary, detail, "
	                "  event_node, event_seq) "
	                "SELECT $1::text, 'quarantine', 'critical', "
	                "  format('a spooled record (%s bytes) was refused and quarantined at seq "
	                "%s: %s', $4::bigint, $2::bigint, left($3::text, 300)), "
	                "  jsonb_build_object('reason', $3::text, 'sqlstate', $5::text, 'length', "
	                "$4::bigint), $1::text, $2::bigint "
	                "RETURNING rule, username, host(ip), summary",
	                5, params, err);
}

int auditd_alerts_catch_up(struct auditd *d, struct mf_error *err)
{
	char a[32];
	const char *params[2] = {d->node, a};
	unsigned int types = d->batch_types;

	if (!d->state_loaded || d->mass_seq >= d->seq)
		return 0;
	if (!mf_config_bool(d->cfg, "auditd", "alerts")) {
		d->mass_seq = d->seq;
		d->mass_types = 0;
		return 0;
	}
	snprintf(a, sizeof(a), "%" PRId64, d->seq);
	if (mf_db_begin(d->db, err) < 0)
		return -1;
	d->batch_types = 0; /* the other rules ran with their batches */
	if (auditd_alerts_evaluate(d, d->seq + 1, d->seq, d->mass_seq + 1, d->mass_types, err) <
	        0 ||
	    mf_db_command(d->db,
	                  "UPDATE mailfort.auditd_positions SET alert_seq = $2::bigint "
	                  "WHERE node = $1",
	                  2, params, err) < 0 ||
	    mf_db_commit(d->db, err) < 0) {
		d->batch_types = types;
		mf_db_rollback(d->db);
		auditd_alerts_flush(d, false);
		return -1;
	}
	d->batch_types = types;
	d->mass_seq = d->seq;
	d->mass_types = 0;
	d->mass_time = time(NULL);
	auditd_alerts_flush(d, true);
	return 0;
}

/* Mail one alert through sendmail -t; failures are logged, never fatal. */
static void mail_alert(struct auditd *d, const char *to, const struct auditd_alert *a)
{
	const char *sendmail = mf_config_str(d->cfg, "auditd", "sendmail");
	int fds[2], status;
	pid_t pid;
	FILE *f;

	if (pipe(fds) < 0) {
		mf_log_error("alert mail: pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		mf_log_error("alert mail: fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execl(sendmail, sendmail, "-t", "-oi", (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	f = fdopen(fds[1], "w");
	if (f == NULL) {
		close(fds[1]);
	} else {
		fprintf(f,
		        "To: %s\nSubject: [mailfort alert] %s: %s\nAuto-Submitted: auto-generated\n"
		        "Content-Type: text/plain; charset=utf-8\n\n"
		        "Rule:    %s\nNode:    %s\nAccount: %s\nAddress: %s\n\n%s\n\n"
		        "See audit.alerts in the mailfort database for details.\n",
		        to, a->rule, a->username != NULL ? a->username : "-", a->rule, d->node,
		        a->username != NULL ? a->username : "-", a->ip != NULL ? a->ip : "-",
		        a->summary);
		fclose(f);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		mf_log_error("alert mail to %s: %s exited with status %d", to, sendmail,
		             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

void auditd_alerts_flush(struct auditd *d, bool send)
{
	const char *to = mf_config_str(d->cfg, "auditd", "security_address");
	struct auditd_alert *a, *next;

	for (a = d->alerts; a != NULL; a = next) {
		next = a->next;
		if (send && to != NULL && *to != '\0')
			mail_alert(d, to, a);
		free(a->rule);
		free(a->username);
		free(a->ip);
		free(a->summary);
		free(a);
	}
	d->alerts = NULL;
}
