/*
 * anchor.c - publish every signed checkpoint outside PostgreSQL
 * ([audit] anchor_sink), so that even a database superuser cannot cut the
 * newest events off the chain unseen: "mailfortctl audit verify --anchor"
 * fails when the chain no longer reaches a published head.
 *
 * Sinks (several, separated by blanks):
 *   file:PATH     append the anchor line to PATH (created 0640) and fsync
 *   syslog        log it (facility authpriv, priority notice), for a
 *                 remote log host
 *   command:PATH  run PATH (no shell) with the line on its standard input;
 *                 exit status 0 means published (e.g. scp to another host)
 *   mail:ADDRESS  mail it through [auditd] sendmail to ADDRESS
 *
 * Checkpoints are published after they are committed, in order, each
 * through every sink; the newest one published is kept in
 * mailfort.audit_anchored.  When a sink fails the failure is logged and
 * publication is tried again after [auditd] retry_interval, from the first
 * checkpoint not yet published: an anchor may be published twice (the
 * reader does not mind), never skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "auditd.h"
#include "mf-audit-anchor.h"
#include "mf-config.h"
#include "mf-db.h"
#include "mf-io.h"
#include "mf-log.h"

#define ANCHOR_COMMAND_TIMEOUT 30

/* Run argv with data on its standard input; 0 when it exits 0 within
   ANCHOR_COMMAND_TIMEOUT seconds. */
static int anchor_run(char *const argv[], const char *data, size_t len, struct mf_error *err)
{
	int pfd[2], status;
	pid_t pid, w;
	time_t start;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return mf_error_set(err, "%s: pipe: %s", argv[0], strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return mf_error_set(err, "%s: fork: %s", argv[0], strerror(errno));
	}
	if (pid == 0) {
		if (dup2(pfd[0], 0) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[0]);
	/* a command that does not read its input fails by its exit status */
	if (mf_write_all(pfd[1], data, len) < 0)
		mf_log_warn("%s: cannot write the anchor to it: %s", argv[0], strerror(errno));
	close(pfd[1]);
	start = time(NULL);
	while ((w = waitpid(pid, &status, WNOHANG)) == 0) {
		if (time(NULL) - start > ANCHOR_COMMAND_TIMEOUT) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			return mf_error_set(err, "%s: still running after %d s, killed", argv[0],
			                    ANCHOR_COMMAND_TIMEOUT);
		}
		usleep(10000);
	}
	if (w < 0)
		return mf_error_set(err, "%s: waitpid: %s", argv[0], strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return mf_error_set(err, "%s: exited with status %d", argv[0],
		                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

static int anchor_to_file(const char *path, const char *line, size_t len, struct mf_error *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	int ret = 0;

	if (fd < 0)
		return mf_error_set(err, "anchor file %s: %s", path, strerror(errno));
	if (mf_write_all(fd, line, len) < 0 || mf_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0)
		ret = mf_error_set(err, "anchor file %s: %s", path, strerror(errno));
	close(fd);
	return ret;
}

/* Publish one line through one sink (sink is "kind:arg", len bytes). */
static int anchor_sink_one(struct auditd *d, const char *sink, size_t slen,
                           const struct mf_audit_anchor *a, const char *line, size_t len,
                           struct mf_error *err)
{
	char arg[1024], buf[MF_AUDIT_ANCHOR_MAX + 1024];
	const char *colon = memchr(sink, ':', slen);
	size_t klen = colon != NULL ? (size_t)(colon - sink) : slen;

	if (colon != NULL) {
		if (slen - klen - 1 >= sizeof(arg) || slen - klen - 1 == 0)
			return mf_error_set(err, "[audit] anchor_sink: \"%.*s\" is malformed",
			                    (int)slen, sink);
		memcpy(arg, colon + 1, slen - klen - 1);
		arg[slen - klen - 1] = '\0';
	}
	if (klen == 6 && memcmp(sink, "syslog", 6) == 0 && colon == NULL) {
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
		return 0;
	}
	if (colon != NULL && klen == 4 && memcmp(sink, "file", 4) == 0)
		return anchor_to_file(arg, line, len, err);
	if (colon != NULL && klen == 7 && memcmp(sink, "command", 7) == 0) {
		char *argv[] = {arg, NULL};
		int n = snprintf(buf, sizeof(buf), "%s\n", line);

		return anchor_run(argv, buf, (size_t)n, err);
	}
	if (colon != NULL && klen == 4 && memcmp(sink, "mail", 4) == 0) {
		char *argv[] = {(char *)mf_config_str(d->cfg, "auditd", "sendmail"), "-t", "-oi",
		                NULL};
		int n =
		    snprintf(buf, sizeof(buf),
		             "To: %s\nSubject: mailfort audit anchor: node %s seq %" PRId64
		             "\nContent-Type: text/plain; charset=us-ascii\n\n"
		             "Keep this line: mailfortctl audit verify --anchor FILE checks that\n"
		             "the audit trail still reaches it.\n\n%s\n",
		             arg, a->node, a->seq, line);

		if (strpbrk(arg, "\r\n") != NULL)
			return mf_error_set(err, "[audit] anchor_sink: bad mail address");
		return anchor_run(argv, buf, (size_t)n, err);
	}
	return mf_error_set(err,
	                    "[audit] anchor_sink: unknown sink \"%.*s\" (file:PATH, syslog, "
	                    "command:PATH, mail:ADDRESS)",
	                    (int)slen, sink);
}

static int anchor_publish_line(struct auditd *d, const char *sinks, const struct mf_audit_anchor *a,
                               const char *line, size_t len, struct mf_error *err)
{
	const char *p = sinks;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n > 0 && anchor_sink_one(d, p, n, a, line, len, err) < 0)
			return -1;
		p += n;
	}
	return 0;
}

static int anchor_hex(const char *in, unsigned char *out, size_t len)
{
	size_t got;

	return sodium_hex2bin(out, len, in, strlen(in), NULL, &got, NULL) == 0 && got == len ? 0
	                                                                                     : -1;
}

int auditd_anchor_publish(struct auditd *d, struct mf_error *err)
{
	const char *sinks = mf_config_str(d->cfg, "audit", "anchor_sink");
	char from[32], line[MF_AUDIT_ANCHOR_MAX], last[32];
	struct mf_audit_anchor a;
	const char *params[2];
	int64_t published = -1;
	PGresult *res;
	int ret = 0, len;

	if (sinks == NULL || *sinks == '\0' || !d->state_loaded || d->db == NULL)
		return 0;
	if (d->anchored_seq < 0) {
		params[0] = d->node;
		res = mf_db_exec(d->db, "SELECT seq FROM mailfort.audit_anchored WHERE node = $1",
		                 1, params, err);
		if (res == NULL)
			return -1;
		d->anchored_seq = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
		PQclear(res);
	}
	if (d->anchored_seq >= d->ckpt_seq || time(NULL) < d->anchor_retry)
		return 0;
	snprintf(from, sizeof(from), "%" PRId64, d->anchored_seq);
	params[0] = d->node;
	params[1] = from;
	res =
	    mf_db_exec(d->db,
	               "SELECT seq, count, encode(head_hash, 'hex'), encode(signature, 'hex'), "
	               "  encode(signer_key, 'hex'), "
	               "  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	               "FROM mailfort.audit_checkpoints WHERE node = $1 AND seq > $2 "
	               "ORDER BY seq LIMIT 1000",
	               2, params, err);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		memset(&a, 0, sizeof(a));
		snprintf(a.node, sizeof(a.node), "%s", d->node);
		a.seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		a.count = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		snprintf(a.time, sizeof(a.time), "%s", PQgetvalue(res, i, 5));
		if (anchor_hex(PQgetvalue(res, i, 2), a.head, sizeof(a.head)) < 0 ||
		    anchor_hex(PQgetvalue(res, i, 3), a.sig, sizeof(a.sig)) < 0 ||
		    anchor_hex(PQgetvalue(res, i, 4), a.pk, sizeof(a.pk)) < 0 ||
		    (len = mf_audit_anchor_format(&a, line, sizeof(line))) < 0) {
			ret = mf_error_set(
			    err, "checkpoint at seq %" PRId64 " cannot be published: malformed",
			    a.seq);
			break;
		}
		if (anchor_publish_line(d, sinks, &a, line, (size_t)len, err) < 0) {
			mf_error_prefix(
			    err, "checkpoint at seq %" PRId64 " not published (will retry)", a.seq);
			ret = -1;
			break;
		}
		published = a.seq;
	}
	PQclear(res);
	if (ret < 0)
		d->anchor_retry = time(NULL) + mf_config_int(d->cfg, "auditd", "retry_interval");
	if (published > 0) {
		snprintf(last, sizeof(last), "%" PRId64, published);
		params[1] = last;
		if (mf_db_command(
		        d->db,
		        "INSERT INTO mailfort.audit_anchored AS a (node, seq) VALUES ($1, $2) "
		        "ON CONFLICT (node) DO UPDATE SET seq = excluded.seq, "
		        "published_at = now() WHERE a.seq < excluded.seq",
		        2, params, err) < 0)
			return -1;
		d->anchored_seq = published;
		if (d->verbose)
			mf_log_info("node %s: checkpoints up to seq %" PRId64 " published", d->node,
			            published);
	}
	return ret;
}
