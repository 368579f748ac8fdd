/*
 * milter-callbacks.c - the milter callbacks of mailfort-milter.
 *
 * milter-proto.c runs each MTA connection on a thread of its own and calls
 * these with libmilter's meanings; all session state lives in a struct
 * conn hung on the session (milter_ctx_setpriv), with the current message
 * in a struct msg inside it.  The only shared state is the milter_state, read through
 * references (policy, model) or through thread-safe calls (spool).
 *
 * The message is rebuilt from the header and body callbacks into a msgbuf
 * (memory, then a temp file past spill_threshold) and scanned at end of
 * message.  Then, in this order: forged X-Spam-* headers from outside are
 * removed, ours are added, stripped attachments are replaced in a new
 * body, the message is put on hold or refused, and one "verdict" event is
 * appended to the spool.
 *
 * Any internal failure (temp file, memory, parser, spool) ends in the
 * configured default_action with a log line that says what failed; a
 * message that passes the size limit is refused while it is still
 * arriving.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include "mf-event.h"
#include "mf-io.h"
#include "mf-log.h"
#include "mf-submit.h"
#include "milter.h"

/* Set once at start-up, before milter_proto_run; read-only afterwards. */
static struct milter_state *state;

#define MAX_RCPTS    1000
#define SPAM_HEADERS 3
/* the headers counted as they arrive: the spam headers, then this one */
#define UNINSPECTABLE_HEADER SPAM_HEADERS
#define COUNTED_HEADERS      (SPAM_HEADERS + 1)

static const char *const spam_headers[COUNTED_HEADERS] = {
    "X-Spam-Flag", "X-Spam-Score", "X-Spam-Status", "X-Mailfort-Uninspectable"};

struct msg {
	struct mf_policy *pol;
	struct mf_model *model;
	struct mf_msgbuf *buf;
	char *sender;
	char *queue_id; /* Postfix sends it with MAIL FROM, or at end of message */
	char **rcpts;
	size_t nrcpts;
	int seen_spam_headers[COUNTED_HEADERS];
	bool submission; /* the sender authenticated ({auth_authen} at MAIL FROM) */
	bool failed;
	bool too_big;
	char fail_reason[MF_ERROR_MAX];
};

struct conn {
	char ip[INET6_ADDRSTRLEN + 8];
	char *helo;
	/* Postfix's {tls_version} and {cipher} from the last EHLO: NULL when
	   the session is not (yet) under TLS */
	char *tls_version, *tls_cipher;
	struct msg *msg;
	struct mf_msgbuf *spare; /* the last message's buffer, emptied, for the next */
};

/* The steps that need no answer: Postfix then streams the header and body
   without waiting for a round trip per header line. */
#define NR_WANTED                                                                       \
	(SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | \
	 SMFIP_NR_EOH | SMFIP_NR_BODY)
#define ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE)

void milter_callbacks_bind(struct milter_state *st)
{
	state = st;
}

static void msg_free(struct msg **mp)
{
	struct msg *m = *mp;
	size_t i;

	if (m == NULL)
		return;
	mf_msgbuf_free(&m->buf);
	mf_policy_unref(&m->pol);
	mf_model_unref(&m->model);
	free(m->sender);
	free(m->queue_id);
	for (i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m);
	*mp = NULL;
}

/* The message is done: keep its buffer, emptied, for the connection's next
   message (no allocation of a message's size for each), then free it. */
static void msg_end(struct conn *c)
{
	struct msg *m = c->msg;

	if (m == NULL)
		return;
	if (m->buf != NULL && c->spare == NULL &&
	    mf_msgbuf_reset(m->buf, m->pol->tmp_dir, (size_t)m->pol->spill_threshold) == 0) {
		c->spare = m->buf;
		m->buf = NULL;
	}
	msg_free(&c->msg);
}

static struct conn *conn_of(SMFICTX *ctx)
{
	return milter_ctx_getpriv(ctx);
}

/* What to answer for a step: nothing when the MTA agreed to no reply (a
   problem found then is acted on at end of message). */
static sfsistat answer(SMFICTX *ctx, unsigned long nr_flag, sfsistat status)
{
	if ((milter_ctx_protocol(ctx) & nr_flag) != 0)
		return SMFIS_NOREPLY;
	return status;
}

static sfsistat default_action(SMFICTX *ctx, const struct mf_policy *pol)
{
	switch (pol != NULL ? pol->default_action : MF_ACT_TEMPFAIL) {
	case MF_ACT_ACCEPT:
		return SMFIS_ACCEPT;
	case MF_ACT_REJECT:
		(void)milter_ctx_setreply(ctx, "550", "5.7.1",
		                          "message refused: the mail filter failed");
		return SMFIS_REJECT;
	default:
		(void)milter_ctx_setreply(
		    ctx, "451", "4.3.0",
		    "temporary failure in the mail filter, please try again later");
		return SMFIS_TEMPFAIL;
	}
}

/* The default action of the current policy, for when no message state
   (which holds its policy) could be made. */
static sfsistat current_default_action(SMFICTX *ctx)
{
	struct mf_policy *pol;
	struct mf_model *model;
	sfsistat r;

	milter_state_acquire(state, &pol, &model);
	r = default_action(ctx, pol);
	mf_policy_unref(&pol);
	mf_model_unref(&model);
	return r;
}

/* ------------------------------------------------------------ verdict event */

static void emit_verdict(struct conn *c, struct msg *m, const struct mf_verdict *v,
                         const char *action_override, const char *reason_override, bool *ok_r)
{
	struct mf_event *ev = mf_event_new("verdict", state->node);
	const char *qid = m->queue_id;
	struct mf_error err;
	GString *r;
	size_t i;

	*ok_r = true;
	if (ev == NULL) {
		*ok_r = false;
		mf_log_error("verdict event: out of memory");
		return;
	}
	mf_event_add_str(ev, "queue_id", qid);
	mf_event_add_str(ev, "sender", m->sender);
	r = g_string_new("[");
	for (i = 0; i < m->nrcpts; i++) {
		char *q = mf_json_quote(m->rcpts[i], strlen(m->rcpts[i]));

		if (i > 0)
			g_string_append_c(r, ',');
		g_string_append(r, q != NULL ? q : "\"\"");
		free(q);
	}
	g_string_append(r, "]");
	mf_event_add_json(ev, "recipients", r->str);
	g_string_free(r, TRUE);
	mf_event_add_str(ev, "ip", c->ip[0] ? c->ip : NULL);
	mf_event_add_str(ev, "helo", c->helo);
	/* "none": the message did not arrive over TLS (or the MTA did not
	   say; Postfix always sends the macros under TLS when asked) */
	mf_event_add_str(ev, "tls", c->tls_version != NULL ? c->tls_version : "none");
	mf_event_add_str(ev, "tls_cipher", c->tls_cipher);
	if (v != NULL)
		mf_verdict_event(v, ev);
	if (action_override != NULL) {
		mf_event_add_str(ev, "action", action_override);
		mf_event_add_str(ev, "reason", reason_override);
	}
	if (state->spool == NULL || mf_event_append(ev, state->spool, &err) < 0) {
		*ok_r = false;
		mf_log_error("cannot record the verdict for %s: %s", qid != NULL ? qid : "message",
		             state->spool == NULL ? "no spool" : err.msg);
	}
	mf_event_free(&ev);
}

/* ------------------------------------------------------------ callbacks */

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
	struct conn *c = calloc(1, sizeof(*c));
	int i;

	(void)f2;
	(void)f3;
	if (c == NULL) {
		mf_log_error("out of memory for a new connection");
		return SMFIS_REJECT; /* the MTA applies milter_default_action */
	}
	milter_ctx_setpriv(ctx, c);
	if ((f0 & ACTIONS) != ACTIONS)
		mf_log_warn("the MTA does not offer every action needed (header and body "
		            "changes, quarantine): some verdicts cannot be applied");
	*pf0 = f0 & ACTIONS;
	if ((f0 & SMFIF_SETSYMLIST) != 0) {
		/* Only the macros read here: the queue id; at EHLO the TLS
		   protocol and cipher of the session (Postfix sends them
		   again after STARTTLS, with the client's second EHLO); at
		   MAIL FROM the authenticated name (mail from an authenticated
		   sender is submission).  Asking for these alone spares the
		   MTA looking up and sending the others. */
		for (i = SMFIM_FIRST; i <= SMFIM_LAST; i++)
			(void)milter_ctx_setsymlist(ctx, i,
			                            i == SMFIM_HELO ? "i {tls_version} {cipher}"
			                            : i == SMFIM_ENVFROM ? "i {auth_authen}"
			                                                 : "i");
		*pf0 |= SMFIF_SETSYMLIST;
	}
	*pf1 = (f1 & NR_WANTED) | (f1 & (SMFIP_NOUNKNOWN | SMFIP_NODATA));
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *addr)
{
	struct conn *c = conn_of(ctx);

	(void)hostname;
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			mf_log_error("out of memory for a new connection");
			return SMFIS_TEMPFAIL;
		}
		milter_ctx_setpriv(ctx, c);
	}
	if (addr != NULL && addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)addr)->sin_addr, c->ip,
		          sizeof(c->ip));
	else if (addr != NULL && addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)addr)->sin6_addr, c->ip,
		          sizeof(c->ip));
	return answer(ctx, SMFIP_NR_CONN, SMFIS_CONTINUE);
}

static sfsistat cb_helo(SMFICTX *ctx, char *helo)
{
	struct conn *c = conn_of(ctx);

	if (c != NULL && helo != NULL) {
		free(c->helo);
		c->helo = strndup(helo, 255);
	}
	if (c != NULL) {
		const char *version = milter_ctx_getsymval(ctx, "{tls_version}");
		const char *cipher = milter_ctx_getsymval(ctx, "{cipher}");

		free(c->tls_version);
		free(c->tls_cipher);
		c->tls_version = version != NULL && *version != '\0' ? strndup(version, 64) : NULL;
		c->tls_cipher = cipher != NULL && *cipher != '\0' ? strndup(cipher, 128) : NULL;
	}
	return answer(ctx, SMFIP_NR_HELO, SMFIS_CONTINUE);
}

static void msg_fail(struct msg *m, const struct mf_error *err);

static char *strip_brackets(const char *a)
{
	size_t n;

	if (a == NULL)
		return strdup("");
	if (*a == '<')
		a++;
	n = strlen(a);
	if (n > 0 && a[n - 1] == '>')
		n--;
	return strndup(a, n > 512 ? 512 : n);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = conn_of(ctx);
	struct msg *m;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	msg_end(c);
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return (milter_ctx_protocol(ctx) & SMFIP_NR_MAIL) ? SMFIS_NOREPLY
		                                                  : current_default_action(ctx);
	c->msg = m;
	milter_state_acquire(state, &m->pol, &m->model);
	m->sender = strip_brackets(argv != NULL ? argv[0] : NULL);
	if (milter_ctx_getsymval(ctx, "i") != NULL)
		m->queue_id = strdup(milter_ctx_getsymval(ctx, "i"));
	m->submission = milter_ctx_getsymval(ctx, "{auth_authen}") != NULL &&
	                milter_ctx_getsymval(ctx, "{auth_authen}")[0] != '\0';
	if (c->spare != NULL) {
		/* (again: the policy may have been reloaded meanwhile) */
		if (mf_msgbuf_reset(c->spare, m->pol->tmp_dir, (size_t)m->pol->spill_threshold) ==
		    0)
			m->buf = c->spare;
		else
			mf_msgbuf_free(&c->spare);
		c->spare = NULL;
	}
	if (m->buf == NULL)
		m->buf = mf_msgbuf_new(m->pol->tmp_dir, (size_t)m->pol->spill_threshold);
	if (m->sender == NULL || m->buf == NULL) {
		struct mf_error err;

		mf_error_set(&err, "out of memory for a new message");
		msg_fail(m, &err);
	}
	return answer(ctx, SMFIP_NR_MAIL, SMFIS_CONTINUE);
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = conn_of(ctx);
	struct msg *m = c != NULL ? c->msg : NULL;
	char **n;

	if (m == NULL)
		return answer(ctx, SMFIP_NR_RCPT, SMFIS_TEMPFAIL);
	if (m->nrcpts >= MAX_RCPTS)
		return answer(ctx, SMFIP_NR_RCPT, SMFIS_CONTINUE);
	n = realloc(m->rcpts, (m->nrcpts + 1) * sizeof(*n));
	if (n == NULL) {
		struct mf_error err;

		mf_error_set(&err, "out of memory for a recipient");
		msg_fail(m, &err);
		return answer(ctx, SMFIP_NR_RCPT, SMFIS_CONTINUE);
	}
	m->rcpts = n;
	m->rcpts[m->nrcpts] = strip_brackets(argv != NULL ? argv[0] : NULL);
	if (m->rcpts[m->nrcpts] != NULL)
		m->nrcpts++;
	return answer(ctx, SMFIP_NR_RCPT, SMFIS_CONTINUE);
}

static void msg_fail(struct msg *m, const struct mf_error *err)
{
	if (!m->failed) {
		m->failed = true;
		snprintf(m->fail_reason, sizeof(m->fail_reason), "%s", err->msg);
	}
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = conn_of(ctx);
	struct msg *m = c != NULL ? c->msg : NULL;
	struct mf_error err;
	char line[1024];
	size_t nl, vl;
	int i;

	if (m == NULL)
		return answer(ctx, SMFIP_NR_HDR, SMFIS_TEMPFAIL);
	if (m->failed || m->too_big)
		return answer(ctx, SMFIP_NR_HDR, SMFIS_CONTINUE);
	/* (all of them start with "X-") */
	if ((name[0] == 'X' || name[0] == 'x') && name[1] == '-') {
		for (i = 0; i < COUNTED_HEADERS; i++) {
			if (strcasecmp(name, spam_headers[i]) == 0)
				m->seen_spam_headers[i]++;
		}
	}
	nl = strlen(name);
	vl = strlen(value);
	if (nl + vl + 4 <= sizeof(line)) {
		/* the usual header line in one piece */
		memcpy(line, name, nl);
		memcpy(line + nl, ": ", 2);
		memcpy(line + nl + 2, value, vl);
		memcpy(line + nl + 2 + vl, "\r\n", 2);
		if (mf_msgbuf_append(m->buf, line, nl + vl + 4, &err) < 0)
			msg_fail(m, &err);
	} else if (mf_msgbuf_append(m->buf, name, nl, &err) < 0 ||
	           mf_msgbuf_append(m->buf, ": ", 2, &err) < 0 ||
	           mf_msgbuf_append(m->buf, value, vl, &err) < 0 ||
	           mf_msgbuf_append(m->buf, "\r\n", 2, &err) < 0) {
		msg_fail(m, &err);
	}
	return answer(ctx, SMFIP_NR_HDR, SMFIS_CONTINUE);
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);
	struct msg *m = c != NULL ? c->msg : NULL;
	struct mf_error err;

	if (m == NULL)
		return answer(ctx, SMFIP_NR_EOH, SMFIS_TEMPFAIL);
	if (!m->failed && mf_msgbuf_append(m->buf, "\r\n", 2, &err) < 0)
		msg_fail(m, &err);
	return answer(ctx, SMFIP_NR_EOH, SMFIS_CONTINUE);
}

static sfsistat too_big(SMFICTX *ctx, struct conn *c, struct msg *m)
{
	char text[256];
	bool ok;

	snprintf(text, sizeof(text),
	         "message is larger than the limit of %.1f MB; please share large files by a "
	         "link",
	         (double)m->pol->max_message_size / 1048576.0);
	emit_verdict(c, m, NULL, "reject", text, &ok);
	(void)milter_ctx_setreply(ctx, "552", "5.3.4", text);
	return SMFIS_REJECT;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = conn_of(ctx);
	struct msg *m = c != NULL ? c->msg : NULL;
	struct mf_error err;

	if (m == NULL)
		return answer(ctx, SMFIP_NR_BODY, SMFIS_TEMPFAIL);
	if (m->failed || m->too_big)
		return answer(ctx, SMFIP_NR_BODY, SMFIS_CONTINUE);
	if (m->pol->max_message_size > 0 &&
	    mf_msgbuf_size(m->buf) + len > m->pol->max_message_size) {
		/* Stop keeping it; refuse now, or at end of message when the
		   MTA takes no answer here. */
		m->too_big = true;
		if (milter_ctx_protocol(ctx) & SMFIP_NR_BODY)
			return SMFIS_NOREPLY;
		return too_big(ctx, c, m);
	}
	if (mf_msgbuf_append(m->buf, chunk, len, &err) < 0)
		msg_fail(m, &err);
	return answer(ctx, SMFIP_NR_BODY, SMFIS_CONTINUE);
}

/* Replace the body with v's rewritten one (stripped attachments). */
static int replace_body(SMFICTX *ctx, struct msg *m, struct mf_verdict *v, struct mf_error *err)
{
	/* A large message's new body goes to an unlinked temp file, not memory. */
	bool big = v->size > m->pol->spill_threshold;
	GMimeStream *out;
	const unsigned char *data;
	void *map = NULL;
	size_t len = 0;
	int fd = -1, ret = -1;

	if (big) {
		int fd2;

		fd = mf_tmpfile(m->pol->tmp_dir, err);
		if (fd < 0)
			return -1;
		if ((fd2 = dup(fd)) < 0) {
			mf_error_set(err, "cannot duplicate the temp file: %s", strerror(errno));
			close(fd);
			return -1;
		}
		out = g_mime_stream_fs_new(fd2);
	} else {
		out = g_mime_stream_mem_new();
	}
	if (mf_scan_write_body(v, out, err) < 0)
		goto done;
	if (big) {
		off_t size = lseek(fd, 0, SEEK_END);

		len = size > 0 ? (size_t)size : 0;
		if (len > 0) {
			map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
			if (map == MAP_FAILED) {
				map = NULL;
				mf_error_set(err, "cannot map the new body: %s", strerror(errno));
				goto done;
			}
		}
		data = map != NULL ? map : (const unsigned char *)"";
	} else {
		GByteArray *arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));

		data = arr->data != NULL ? arr->data : (const unsigned char *)"";
		len = arr->len;
	}
	/* the protocol code cuts it into packets */
	if (milter_ctx_replacebody(ctx, data, len) < 0) {
		mf_error_set(err, "cannot send the new body to the MTA");
		goto done;
	}
	if (v->top_replaced) {
		(void)milter_ctx_chgheader(ctx, "Content-Type", 1, "text/plain; charset=utf-8");
		(void)milter_ctx_chgheader(ctx, "Content-Transfer-Encoding", 1, "quoted-printable");
	}
	ret = 0;
done:
	if (map != NULL)
		munmap(map, len);
	g_object_unref(out);
	if (fd >= 0)
		close(fd);
	return ret;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);
	struct msg *m = c != NULL ? c->msg : NULL;
	struct mf_verdict v;
	struct mf_error err;
	GMimeStream *stream = NULL;
	const char *qid;
	char score[32];
	sfsistat ret = SMFIS_CONTINUE;
	bool ok;
	int i, k;

	if (m == NULL)
		return current_default_action(ctx);
	if (m->too_big) {
		ret = too_big(ctx, c, m);
		msg_end(c);
		return ret;
	}
	qid = milter_ctx_getsymval(ctx, "i");
	if (qid != NULL && m->queue_id == NULL)
		m->queue_id = strdup(qid);
	qid = m->queue_id != NULL ? m->queue_id : "NOQUEUE";
	mf_verdict_init(&v);
	v.submission = m->submission;
	if (m->failed) {
		mf_log_error("%s: cannot scan the message: %s", qid, m->fail_reason);
		emit_verdict(c, m, NULL, mf_action_name(m->pol->default_action), m->fail_reason,
		             &ok);
		ret = default_action(ctx, m->pol);
		goto out;
	}
	stream = mf_msgbuf_stream(m->buf, &err);
	if (stream == NULL || mf_scan(m->pol, m->model, stream, &v, &err) < 0) {
		mf_log_error("%s: cannot scan the message: %s", qid, err.msg);
		emit_verdict(c, m, NULL, mf_action_name(m->pol->default_action), err.msg, &ok);
		ret = default_action(ctx, m->pol);
		goto out;
	}
	/* for the header and the log line (printf's "%.1f" is slow) */
	mf_verdict_format_score(score, v.score);
	if (v.body_changed && v.action != MF_ACT_REJECT && v.action != MF_ACT_TEMPFAIL) {
		if (replace_body(ctx, m, &v, &err) < 0) {
			mf_log_error("%s: cannot strip an attachment: %s", qid, err.msg);
			emit_verdict(c, m, &v, mf_action_name(m->pol->default_action), err.msg,
			             &ok);
			ret = default_action(ctx, m->pol);
			goto out;
		}
	}
	if (v.scanned_spam && m->pol->add_headers && v.action != MF_ACT_REJECT &&
	    v.action != MF_ACT_TEMPFAIL) {
		char *status = mf_verdict_spam_status(m->pol, &v);

		/* Headers of these names from outside would lie to the user's filters. */
		for (i = 0; i < SPAM_HEADERS; i++)
			for (k = m->seen_spam_headers[i]; k >= 1; k--)
				(void)milter_ctx_chgheader(ctx, (char *)spam_headers[i], k, NULL);
		(void)milter_ctx_addheader(ctx, "X-Spam-Flag", v.is_spam ? "YES" : "NO");
		(void)milter_ctx_addheader(ctx, "X-Spam-Score", score);
		(void)milter_ctx_addheader(ctx, "X-Spam-Status", status);
		g_free(status);
	}
	if (v.action != MF_ACT_REJECT && v.action != MF_ACT_TEMPFAIL) {
		/* Only this milter says what it could not inspect. */
		for (k = m->seen_spam_headers[UNINSPECTABLE_HEADER]; k >= 1; k--)
			(void)milter_ctx_chgheader(ctx, (char *)spam_headers[UNINSPECTABLE_HEADER],
			                           k, NULL);
		if (v.uninspectable != NULL)
			(void)milter_ctx_addheader(ctx, "X-Mailfort-Uninspectable",
			                           v.uninspectable);
	}
	emit_verdict(c, m, &v, NULL, NULL, &ok);
	if (!ok && v.action != MF_ACT_REJECT) {
		/* No record, no delivery: the sender will retry. */
		ret = default_action(ctx, m->pol);
		goto out;
	}
	switch (v.action) {
	case MF_ACT_REJECT:
		(void)milter_ctx_setreply(ctx, v.reply_code, v.reply_xcode, v.reply_text);
		ret = SMFIS_REJECT;
		break;
	case MF_ACT_TEMPFAIL:
		(void)milter_ctx_setreply(ctx, v.reply_code, v.reply_xcode, v.reply_text);
		ret = SMFIS_TEMPFAIL;
		break;
	case MF_ACT_HOLD:
		if (milter_ctx_quarantine(ctx, v.hold_reason != NULL ? v.hold_reason : "mailfort") <
		    0)
			mf_log_warn("%s: the MTA did not accept the hold request", qid);
		ret = SMFIS_CONTINUE;
		break;
	default:
		ret = SMFIS_CONTINUE;
		break;
	}
	mf_log_info("%s: %s from=<%s> score=%s%s%s", qid, mf_action_name(v.action), m->sender,
	            score, v.reason != NULL ? " reason=" : "", v.reason != NULL ? v.reason : "");
out:
	if (stream != NULL)
		g_object_unref(stream);
	mf_verdict_free(&v);
	msg_end(c);
	return ret;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);

	if (c != NULL)
		msg_end(c);
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);

	if (c != NULL) {
		msg_free(&c->msg);
		mf_msgbuf_free(&c->spare);
		free(c->helo);
		free(c->tls_version);
		free(c->tls_cipher);
		free(c);
		milter_ctx_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static const struct smfiDesc desc = {
    .xxfi_name = "mailfort-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE,
    .xxfi_connect = cb_connect,
    .xxfi_helo = cb_helo,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = cb_eoh,
    .xxfi_body = cb_body,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_negotiate = cb_negotiate,
};

const struct smfiDesc *milter_callbacks_desc(void)
{
	return &desc;
}
