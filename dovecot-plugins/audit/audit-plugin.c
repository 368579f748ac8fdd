/*
 * audit-plugin.c - mailfort_audit: record sessions and mail access.
 *
 * Loaded into imap, pop3 and lmtp (mail_plugins = ... notify mailfort_audit).
 * For every session it appends a "login" event when the mail user is set up
 * and a "logout" event when it goes away; in between it records message
 * reads (the first time a session is sent a message's content: FETCH of
 * BODY[...], BINARY[...], RFC822, RFC822.TEXT, PREVIEW or SNIPPET, POP3
 * RETR or TOP), content searches (SEARCH, SORT, THREAD with BODY or TEXT:
 * one "search" event with the criteria kinds and the hit count), saves
 * (APPEND, LMTP delivery), copies, moves, expunges, flag changes and mailbox
 * create / delete / rename.  Events are flat JSON records (lib/mf-event.h)
 * handed to mailfort-spoold, which appends it to the local spool
 * (lib/mf-submit.h, lib/mf-spool.h); the plugin never talks to the database
 * and cannot touch the spool itself.  mailfort-auditd ships the spool to PostgreSQL.
 *
 * Mail events of a transaction are kept until the transaction commits (a
 * rolled back transaction changed nothing), so saved and copied messages are
 * recorded with the UID they received.
 *
 * Failure policy: an audit trail with holes is worse than a refused login.
 * When the configuration or the spool cannot be opened, the mail user fails
 * to initialise (the login or delivery fails, with the reason in Dovecot's
 * log).  The login event is waited for: the session starts only once it is
 * in the spool, otherwise the login fails.  An event that cannot be
 * recorded later (its send, or the receiver's answer, failed even after a
 * reconnection) is logged with i_error naming the event type and the
 * reason, and the session fails closed: from then on no message content is
 * handed out (the command fails with "Audit trail unavailable") and the
 * imap part ends the session with BYE (mailfort_audit_failure).
 *
 * Plugin settings: mailfort_config (path of mailfort.conf, default
 * /etc/mailfort/mailfort.conf), mailfort_audit_client_id (the IMAP ID the
 * client sent before login, passed through a userdb override_fields
 * "mailfort_audit_client_id=%{client_id}" with imap_id_retain = yes).
 */
#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "time-util.h"
#include "net.h"
#include "str.h"
#include "seq-range-array.h"
#include "imap-util.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mail-search.h"
#include "mail-storage-hooks.h"
#include "module-context.h"
#include "notify-plugin.h"

#include "mf-config.h"
#include "mf-event.h"
#include "mf-submit.h"

#include "audit-plugin.h"

#define AUDIT_USER_CONTEXT(obj)   MODULE_CONTEXT(obj, audit_user_module)
#define AUDIT_MAIL_CONTEXT(obj)   MODULE_CONTEXT(obj, audit_mail_module)
#define AUDIT_BOX_CONTEXT(obj)    MODULE_CONTEXT_REQUIRE(obj, audit_storage_module)
#define AUDIT_SEARCH_CONTEXT(obj) MODULE_CONTEXT(obj, audit_storage_module)

struct audit_user {
	union mail_user_module_context module_ctx;
	struct mail_user *session_user; /* the user this context belongs to */

	struct mf_config *cfg;
	struct mf_submit *spool; /* the connection to mailfort-spoold */
	const char *node;        /* [spool] node, or the host name */
	bool enabled, log_reads, log_flags;
	/* a login/logout pair is recorded for this user (not for lmtp) */
	bool session;

	struct timeval login_time;
	HASH_TABLE(char *, void *) reads; /* "mailbox\nuid" already recorded */

	/* the most recent move's source message, so that the expunge that
	   completes the move is not recorded again as a deletion */
	char *move_src_box;
	uint32_t move_src_uid;

	/* filled by the imap part before the session ends */
	const char *end_reason, *end_detail;
	uint64_t bytes_in, bytes_out;
	bool have_bytes;
	bool suspended; /* hibernated: the session continues elsewhere */
	unsigned int append_failures;
	/* the first event that could not be recorded, and why: from then on
	   every read fails and the imap part ends the session */
	const char *failure;
};

/* One event waiting for its transaction to commit. */
struct audit_pending {
	struct mf_event *ev;
	const char *type; /* static string, for error messages */
	bool wants_uid;   /* save/copy/move: the UID is known at commit */
};

struct audit_txn {
	pool_t pool;
	struct mail_user *user;
	ARRAY(struct audit_pending) events;
};

static MODULE_CONTEXT_DEFINE_INIT(audit_user_module, &mail_user_module_register);
static MODULE_CONTEXT_DEFINE_INIT(audit_mail_module, &mail_module_register);
static MODULE_CONTEXT_DEFINE_INIT(audit_storage_module, &mail_storage_module_register);

/* The notify registration: process-wide by Dovecot's design (one per
   loaded plugin), set in init and cleared in deinit. */
static struct notify_context *audit_notify_ctx;

/* ------------------------------------------------------------ events */

static struct mail_user *audit_session_user(struct mail_user *user)
{
	/* Shared mailboxes are opened through a user created for the
	   owner; the session belongs to whoever created it. */
	while (user->creator != NULL)
		user = user->creator;
	return user;
}

static struct audit_user *audit_user_get(struct mail_user *user)
{
	struct audit_user *auser;

	auser = AUDIT_USER_CONTEXT(audit_session_user(user));
	if (auser == NULL || !auser->enabled)
		return NULL;
	return auser;
}

/* A new event with the fields every mail event carries. */
static struct mf_event *audit_event_new(struct mail_user *user, struct audit_user *auser,
                                        const char *type)
{
	struct mf_event *ev;

	ev = mf_event_new(type, auser->node);
	mf_event_add_str(ev, "user", user->username);
	mf_event_add_str(ev, "service", user->service);
	mf_event_add_str(ev, "session", user->session_id);
	if (user->conn.remote_ip != NULL && user->conn.remote_ip->family != 0)
		mf_event_add_str(ev, "ip", net_ip2addr(user->conn.remote_ip));
	return ev;
}

/* Hand an event to mailfort-spoold; 0, or -1 after noting the failure in
   auser->failure (the session then fails closed: see the top). */
static int audit_event_send(struct mail_user *user, struct audit_user *auser, struct mf_event **_ev,
                            const char *type, bool wait)
{
	struct mf_error err;
	int ret;

	/* Without wait, the answer is collected with the next event (or at
	   the end of the session): by the time the client has the command's
	   reply and sends the next one, it is there.  Once sent, the event is
	   in the receiver's queue; it is sent again if the receiver restarts
	   first.  An error in an earlier event's answer shows here too. */
	ret = wait ? mf_event_append(*_ev, auser->spool, &err)
	           : mf_event_append_nowait(*_ev, auser->spool, &err);
	mf_event_free(_ev);
	if (ret == 0)
		return 0;
	auser->append_failures++;
	i_error("mailfort_audit: %s event could not be recorded: %s", type, err.msg);
	if (auser->failure == NULL)
		auser->failure =
		    p_strdup_printf(user->pool, "%s event not recorded: %s", type, err.msg);
	return -1;
}

static int audit_event_append(struct audit_user *auser, struct mf_event **_ev, const char *type)
{
	return audit_event_send(auser->session_user, auser, _ev, type, FALSE);
}

static void audit_event_add_box(struct mf_event *ev, const char *name, struct mailbox *box)
{
	mf_event_add_str(ev, name, mailbox_get_vname(box));
}

static void audit_event_add_message_id(struct mf_event *ev, struct mail *mail)
{
	const char *value;

	if (mail_get_first_header(mail, "Message-ID", &value) > 0)
		mf_event_add_str(ev, "message_id", value);
	else
		mf_event_add_str(ev, "message_id", NULL);
}

static const char *audit_flags_str(enum mail_flags flags, const char *const *keywords)
{
	string_t *str = t_str_new(64);

	imap_write_flags(str, flags & ENUM_NEGATE(MAIL_RECENT), keywords);
	return str_c(str);
}

/* ------------------------------------------------------------ IMAP ID */

/* Parse one IMAP string or atom from *p; returns NULL at the end. */
static const char *audit_id_token(const char **p)
{
	const char *s = *p;
	string_t *tok;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return NULL;
	tok = t_str_new(32);
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			str_append_c(tok, *s);
		}
		if (*s == '"')
			s++;
	} else {
		while (*s != '\0' && *s != ' ')
			str_append_c(tok, *s++);
	}
	*p = s;
	return str_c(tok);
}

/* The client's name and version from an IMAP ID parameter list such as
   "name" "Thunderbird" "version" "115.0". */
static void audit_parse_client_id(const char *id, const char **name_r, const char **version_r)
{
	const char *key, *value;

	*name_r = NULL;
	*version_r = NULL;
	while ((key = audit_id_token(&id)) != NULL && (value = audit_id_token(&id)) != NULL) {
		if (strcasecmp(value, "NIL") == 0)
			continue;
		if (strcasecmp(key, "name") == 0)
			*name_r = value;
		else if (strcasecmp(key, "version") == 0)
			*version_r = value;
	}
}

/* ------------------------------------------------------------ session */

static void audit_login(struct mail_user *user, struct audit_user *auser)
{
	struct mf_event *ev;
	const char *id, *name = NULL, *version = NULL;

	ev = audit_event_new(user, auser, "login");
	if (user->conn.remote_ip != NULL && user->conn.remote_ip->family != 0)
		mf_event_add_int(ev, "port", user->conn.remote_port);
	if (user->conn.local_ip != NULL && user->conn.local_ip->family != 0) {
		mf_event_add_str(ev, "local_ip", net_ip2addr(user->conn.local_ip));
		mf_event_add_int(ev, "local_port", user->conn.local_port);
	}
	mf_event_add_bool(ev, "tls", user->conn.ssl_secured);
	mf_event_add_bool(ev, "secured", user->conn.secured);
	mf_event_add_str(ev, "mech", user->auth_mech);
	id = mail_user_plugin_getenv(user, "mailfort_audit_client_id");
	if (id != NULL && *id != '\0')
		audit_parse_client_id(id, &name, &version);
	mf_event_add_str(ev, "client", name != NULL ? name : "unknown");
	mf_event_add_str(ev, "client_version", version);
	mf_event_add_str(ev, "result", "ok");
	/* the session starts only once its login is in the spool */
	if (audit_event_send(user, auser, &ev, "login", TRUE) < 0)
		user->error = p_strdup_printf(user->pool, "mailfort_audit: %s", auser->failure);
}

static void audit_logout(struct mail_user *user, struct audit_user *auser)
{
	struct mf_event *ev;
	long long ms;

	ms = timeval_diff_msecs(&ioloop_timeval, &auser->login_time);
	ev = audit_event_new(user, auser, "logout");
	mf_event_add_int(ev, "duration_ms", ms < 0 ? 0 : ms);
	mf_event_add_str(ev, "reason", auser->end_reason != NULL ? auser->end_reason : "closed");
	if (auser->end_detail != NULL)
		mf_event_add_str(ev, "detail", auser->end_detail);
	if (auser->have_bytes) {
		mf_event_add_int(ev, "bytes_in", (int64_t)auser->bytes_in);
		mf_event_add_int(ev, "bytes_out", (int64_t)auser->bytes_out);
	}
	mf_event_add_int(ev, "reads", hash_table_count(auser->reads));
	audit_event_append(auser, &ev, "logout");
}

void mailfort_audit_session_end(struct mail_user *user, const char *reason, const char *detail,
                                uint64_t bytes_in, uint64_t bytes_out)
{
	struct audit_user *auser = audit_user_get(user);

	if (auser == NULL)
		return;
	/* the first reason wins: a policy logout stays a policy logout */
	if (auser->end_reason == NULL)
		auser->end_reason = p_strdup(user->pool, reason);
	if (auser->end_detail == NULL && detail != NULL)
		auser->end_detail = p_strdup(user->pool, detail);
	auser->bytes_in = bytes_in;
	auser->bytes_out = bytes_out;
	auser->have_bytes = TRUE;
}

const char *mailfort_audit_failure(struct mail_user *user)
{
	struct audit_user *auser = audit_user_get(user);

	return auser != NULL ? auser->failure : NULL;
}

void mailfort_audit_session_suspend(struct mail_user *user)
{
	struct audit_user *auser = audit_user_get(user);

	if (auser != NULL)
		auser->suspended = TRUE;
}

int mailfort_audit_session_policy(struct mail_user *user, unsigned int *idle_r,
                                  unsigned int *lifetime_r)
{
	struct audit_user *auser = audit_user_get(user);

	if (auser == NULL)
		return -1;
	*idle_r = (unsigned int)mf_config_int(auser->cfg, "audit", "session_idle_timeout");
	*lifetime_r = (unsigned int)mf_config_int(auser->cfg, "audit", "session_max_lifetime");
	return 0;
}

static void audit_user_deinit(struct mail_user *user)
{
	struct audit_user *auser = AUDIT_USER_CONTEXT(user);
	struct mf_error err;

	i_assert(auser != NULL);
	if (auser->enabled && auser->session && !auser->suspended)
		audit_logout(user, auser);
	hash_table_destroy(&auser->reads);
	i_free(auser->move_src_box);
	if (auser->spool != NULL && mf_submit_flush(auser->spool, &err) < 0) {
		auser->append_failures++;
		i_error("mailfort_audit: the last event could not be recorded: %s", err.msg);
	}
	mf_submit_close(&auser->spool);
	mf_config_free(&auser->cfg);
	auser->module_ctx.super.deinit(user);
}

static bool audit_service_has_session(const char *service)
{
	return strcmp(service, "lmtp") != 0 && strcmp(service, "lda") != 0;
}

static void audit_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct audit_user *auser;
	struct mf_error err;
	const char *path;

	if (user->creator != NULL)
		return; /* owner of a shared mailbox: events go to the creator */

	auser = p_new(user->pool, struct audit_user, 1);
	auser->session_user = user;
	auser->module_ctx.super = *v;
	user->vlast = &auser->module_ctx.super;
	v->deinit = audit_user_deinit;
	hash_table_create(&auser->reads, user->pool, 0, str_hash, strcmp);
	MODULE_CONTEXT_SET(user, audit_user_module, auser);

	path = mail_user_plugin_getenv(user, "mailfort_config");
	if (path == NULL || *path == '\0')
		path = MF_CONFIG_DEFAULT_PATH;
	auser->cfg = mf_config_load(path, &err);
	if (auser->cfg == NULL) {
		user->error = p_strdup_printf(user->pool, "mailfort_audit: %s", err.msg);
		return;
	}
	auser->enabled = mf_config_bool(auser->cfg, "audit", "enabled");
	if (!auser->enabled)
		return;
	auser->log_reads = mf_config_bool(auser->cfg, "audit", "log_reads");
	auser->log_flags = mf_config_bool(auser->cfg, "audit", "log_flags");
	auser->node = p_strdup(user->pool, mf_config_str(auser->cfg, "spool", "node"));
	if (auser->node == NULL || auser->node[0] == '\0') {
		/* resolve the host name once, not for every event */
		char host[256];

		if (gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			auser->node = p_strdup(user->pool, host);
		} else {
			auser->node = NULL;
		}
	}
	auser->spool = mf_submit_open_config(auser->cfg, &err);
	if (auser->spool == NULL) {
		auser->enabled = FALSE;
		user->error = p_strdup_printf(user->pool, "mailfort_audit: %s", err.msg);
		return;
	}
	auser->session = audit_service_has_session(user->service);
	auser->login_time = ioloop_timeval;
	if (user->session_restored) {
		/* unhibernated: the same session, logged in long ago */
		auser->login_time.tv_sec = user->session_create_time;
		auser->login_time.tv_usec = 0;
	} else if (auser->session) {
		audit_login(user, auser);
	}
}

/* ------------------------------------------------------------ reads */

static bool audit_is_read_reason(const char *reason)
{
	/* The reasons Dovecot gives when a client is sent message content:
	   IMAP FETCH BODY[]/RFC822/BINARY (imap-msgpart), POP3 RETR/TOP.
	   Searching, copying, indexing and size lookups are not reads. */
	static const char *const reasons[] = {"full mail", "MIME part", "mail body",
	                                      "RETR",      "TOP",       NULL};
	unsigned int i;

	if (reason == NULL)
		return FALSE;
	for (i = 0; reasons[i] != NULL; i++) {
		if (strcmp(reason, reasons[i]) == 0)
			return TRUE;
	}
	return FALSE;
}

/* 0, or -1 when the read could not be recorded: the content is then not
   handed out. */
static int audit_record_read(struct mail *mail, struct audit_user *auser, const char *reason)
{
	struct mail_user *user = mail->box->storage->user;
	struct mf_event *ev;
	const char *key;
	char *pkey;

	if (auser->failure != NULL)
		return -1;
	key = t_strdup_printf("%s\n%u", mailbox_get_vname(mail->box), mail->uid);
	if (hash_table_lookup(auser->reads, key) != NULL)
		return 0;

	ev = audit_event_new(audit_session_user(user), auser, "read");
	audit_event_add_box(ev, "mailbox", mail->box);
	mf_event_add_int(ev, "uid", mail->uid);
	audit_event_add_message_id(ev, mail);
	mf_event_add_str(ev, "reason", reason);
	if (audit_event_append(auser, &ev, "read") < 0)
		return -1;
	pkey = p_strdup(audit_session_user(user)->pool, key);
	hash_table_insert(auser->reads, pkey, POINTER_CAST(1));
	return 0;
}

static int audit_mail_get_stream(struct mail *_mail, bool get_body, struct message_size *hdr_size,
                                 struct message_size *body_size, struct istream **stream_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *amail = AUDIT_MAIL_CONTEXT(mail);
	struct audit_user *auser = audit_user_get(_mail->box->storage->user);
	const char *reason = mail->get_stream_reason;
	int ret;

	if (auser != NULL && auser->log_reads && get_body && audit_is_read_reason(reason)) {
		/* Look the Message-ID up before the stream is handed out:
		   parsing the header afterwards would move the caller's
		   stream.  The lookup may itself open a header stream, which
		   resets the reason, so keep our copy. */
		reason = t_strdup(reason);
		T_BEGIN
		{
			ret = audit_record_read(_mail, auser, reason);
		}
		T_END;
		if (ret < 0) {
			mail_storage_set_error(_mail->box->storage, MAIL_ERROR_TEMP,
			                       "Audit trail unavailable: message not read");
			return -1;
		}
		mail->get_stream_reason = reason;
	}
	ret = amail->super.get_stream(_mail, get_body, hdr_size, body_size, stream_r);
	return ret;
}

/* FETCH PREVIEW and SNIPPET hand out the start of the message text, often
   from the cache without opening the message: a read.  Recorded once the
   text was obtained (PREVIEW (LAZY) may get nothing). */
static int audit_mail_get_special(struct mail *_mail, enum mail_fetch_field field,
                                  const char **value_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *amail = AUDIT_MAIL_CONTEXT(mail);
	struct audit_user *auser;
	int ret = amail->super.get_special(_mail, field, value_r);

	if (ret == 0 && field == MAIL_FETCH_BODY_SNIPPET &&
	    (auser = audit_user_get(_mail->box->storage->user)) != NULL && auser->log_reads) {
		/* the value lives in the mail's pool: the Message-ID lookup
		   cannot move it */
		T_BEGIN
		{
			audit_record_read(_mail, auser, "preview");
		}
		T_END;
	}
	return ret;
}

static int audit_mail_get_binary_stream(struct mail *_mail, const struct message_part *part,
                                        bool include_hdr, uoff_t *size_r, unsigned int *lines_r,
                                        bool *binary_r, struct istream **stream_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *amail = AUDIT_MAIL_CONTEXT(mail);
	struct audit_user *auser = audit_user_get(_mail->box->storage->user);

	if (auser != NULL && auser->log_reads) {
		T_BEGIN
		{
			audit_record_read(_mail, auser, "binary");
		}
		T_END;
	}
	return amail->super.get_binary_stream(_mail, part, include_hdr, size_r, lines_r, binary_r,
	                                      stream_r);
}

static void audit_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *amail;

	if (audit_user_get(_mail->box->storage->user) == NULL)
		return;
	amail = p_new(mail->pool, union mail_module_context, 1);
	amail->super = *v;
	mail->vlast = &amail->super;
	v->get_stream = audit_mail_get_stream;
	v->get_binary_stream = audit_mail_get_binary_stream;
	v->get_special = audit_mail_get_special;
	MODULE_CONTEXT_SET_SELF(mail, audit_mail_module, amail);
}

/* ------------------------------------------------------------ searches */

/*
 * SEARCH, SORT and THREAD with BODY or TEXT criteria test message content:
 * each such search (one per command) is recorded as one "search" event
 * with the mailbox, the kinds of content criteria ("body", "text",
 * "mimepart") and how many messages matched.  The search words are never
 * recorded.  Searches on flags, dates, sizes or headers only are not
 * content tests and are not recorded.
 */
struct audit_search {
	union mail_search_module_context module_ctx;
	char *criteria;
	unsigned int hits;
};

static void audit_search_kinds(const struct mail_search_arg *arg, bool kinds[3])
{
	for (; arg != NULL; arg = arg->next) {
		switch (arg->type) {
		case SEARCH_BODY:
			kinds[0] = TRUE;
			break;
		case SEARCH_TEXT:
			kinds[1] = TRUE;
			break;
		case SEARCH_MIMEPART:
			kinds[2] = TRUE;
			break;
		case SEARCH_OR:
		case SEARCH_SUB:
		case SEARCH_INTHREAD:
			audit_search_kinds(arg->value.subargs, kinds);
			break;
		default:
			break;
		}
	}
}

static struct mail_search_context *
audit_search_init(struct mailbox_transaction_context *t, struct mail_search_args *args,
                  const enum mail_sort_type *sort_program, enum mail_fetch_field wanted_fields,
                  struct mailbox_header_lookup_ctx *wanted_headers)
{
	union mailbox_module_context *abox = AUDIT_BOX_CONTEXT(t->box);
	struct mail_search_context *ctx;
	struct audit_search *actx;
	bool kinds[3] = {FALSE, FALSE, FALSE};
	string_t *str;

	ctx = abox->super.search_init(t, args, sort_program, wanted_fields, wanted_headers);
	audit_search_kinds(args->args, kinds);
	if (!kinds[0] && !kinds[1] && !kinds[2])
		return ctx;
	str = t_str_new(32);
	if (kinds[0])
		str_append(str, "body,");
	if (kinds[1])
		str_append(str, "text,");
	if (kinds[2])
		str_append(str, "mimepart,");
	str_truncate(str, str_len(str) - 1);
	actx = i_new(struct audit_search, 1);
	actx->criteria = i_strdup(str_c(str));
	MODULE_CONTEXT_SET(ctx, audit_storage_module, actx);
	return ctx;
}

static bool audit_search_next_nonblock(struct mail_search_context *ctx, struct mail **mail_r,
                                       bool *tryagain_r)
{
	union mailbox_module_context *abox = AUDIT_BOX_CONTEXT(ctx->transaction->box);
	struct audit_search *actx = AUDIT_SEARCH_CONTEXT(ctx);

	if (!abox->super.search_next_nonblock(ctx, mail_r, tryagain_r))
		return FALSE;
	if (actx != NULL)
		actx->hits++;
	return TRUE;
}

static int audit_search_deinit(struct mail_search_context *ctx)
{
	struct mailbox *box = ctx->transaction->box;
	union mailbox_module_context *abox = AUDIT_BOX_CONTEXT(box);
	struct audit_search *actx = AUDIT_SEARCH_CONTEXT(ctx);
	struct audit_user *auser;

	if (actx != NULL && (auser = audit_user_get(box->storage->user)) != NULL &&
	    auser->log_reads) {
		T_BEGIN
		{
			struct mf_event *ev = audit_event_new(
			    audit_session_user(box->storage->user), auser, "search");

			audit_event_add_box(ev, "mailbox", box);
			mf_event_add_str(ev, "criteria", actx->criteria);
			mf_event_add_int(ev, "hits", actx->hits);
			audit_event_append(auser, &ev, "search");
		}
		T_END;
	}
	if (actx != NULL) {
		i_free(actx->criteria);
		i_free(actx);
	}
	return abox->super.search_deinit(ctx);
}

static void audit_mailbox_allocated(struct mailbox *box)
{
	struct mailbox_vfuncs *v = box->vlast;
	union mailbox_module_context *abox;

	if (audit_user_get(box->storage->user) == NULL)
		return;
	abox = p_new(box->pool, union mailbox_module_context, 1);
	abox->super = *v;
	box->vlast = &abox->super;
	v->search_init = audit_search_init;
	v->search_next_nonblock = audit_search_next_nonblock;
	v->search_deinit = audit_search_deinit;
	MODULE_CONTEXT_SET_SELF(box, audit_storage_module, abox);
}

/* ------------------------------------------------------------ notify */

static void *audit_txn_begin(struct mailbox_transaction_context *t)
{
	pool_t pool;
	struct audit_txn *txn;

	pool = pool_alloconly_create("mailfort audit txn", 1024);
	txn = p_new(pool, struct audit_txn, 1);
	txn->pool = pool;
	txn->user = t->box->storage->user;
	p_array_init(&txn->events, pool, 8);
	return txn;
}

static void audit_txn_add(struct audit_txn *txn, struct mf_event *ev, const char *type,
                          bool wants_uid)
{
	struct audit_pending *p = array_append_space(&txn->events);

	p->ev = ev;
	p->type = type;
	p->wants_uid = wants_uid;
}

static void audit_mail_save(void *_txn, struct mail *mail)
{
	struct audit_txn *txn = _txn;
	struct audit_user *auser = audit_user_get(txn->user);
	struct mail_user *suser = audit_session_user(txn->user);
	struct mf_event *ev;
	uoff_t size;

	if (auser == NULL)
		return;
	T_BEGIN
	{
		ev = audit_event_new(suser, auser, "save");
		audit_event_add_box(ev, "mailbox", mail->box);
		audit_event_add_message_id(ev, mail);
		if (mail_get_physical_size(mail, &size) == 0)
			mf_event_add_int(ev, "size", (int64_t)size);
		audit_txn_add(txn, ev, "save", TRUE);
	}
	T_END;
}

static void audit_mail_copy(void *_txn, struct mail *src, struct mail *dst)
{
	struct audit_txn *txn = _txn;
	struct audit_user *auser = audit_user_get(txn->user);
	struct mail_user *suser = audit_session_user(txn->user);
	struct mail_private *src_pmail = (struct mail_private *)src;
	struct mailbox *src_box = src->box;
	struct mail_save_context *save_ctx = dst->transaction->save_ctx;
	bool moving = save_ctx != NULL && save_ctx->moving;
	struct mf_event *ev;

	if (auser == NULL)
		return;
	if (src_pmail->vmail != NULL)
		src_box = src_pmail->vmail->box;
	T_BEGIN
	{
		ev = audit_event_new(suser, auser, moving ? "move" : "copy");
		audit_event_add_box(ev, "from_mailbox", src_box);
		mf_event_add_int(ev, "from_uid", src->uid);
		audit_event_add_box(ev, "mailbox", dst->box);
		audit_event_add_message_id(ev, src);
		audit_txn_add(txn, ev, moving ? "move" : "copy", TRUE);
		if (moving) {
			i_free(auser->move_src_box);
			auser->move_src_box = i_strdup(mailbox_get_vname(src->box));
			auser->move_src_uid = src->uid;
		}
	}
	T_END;
}

static void audit_mail_expunge(void *_txn, struct mail *mail)
{
	struct audit_txn *txn = _txn;
	struct audit_user *auser = audit_user_get(txn->user);
	struct mail_user *suser = audit_session_user(txn->user);
	struct mail_private *p = (struct mail_private *)mail;
	struct mf_event *ev;

	if (auser == NULL)
		return;
	if (auser->move_src_box != NULL && auser->move_src_uid == mail->uid &&
	    strcmp(auser->move_src_box, mailbox_get_vname(mail->box)) == 0) {
		/* the second half of a MOVE, already recorded as "move" */
		i_free(auser->move_src_box);
		return;
	}
	T_BEGIN
	{
		ev = audit_event_new(suser, auser, "expunge");
		audit_event_add_box(ev, "mailbox", mail->box);
		mf_event_add_int(ev, "uid", mail->uid);
		audit_event_add_message_id(ev, mail);
		mf_event_add_str(ev, "reason", p->autoexpunged ? "autoexpunge" : "expunge");
		audit_txn_add(txn, ev, "expunge", FALSE);
	}
	T_END;
}

static void audit_flags_event(struct audit_txn *txn, struct mail *mail, const char *action,
                              const char *old_flags)
{
	struct audit_user *auser = audit_user_get(txn->user);
	struct mail_user *suser = audit_session_user(txn->user);
	struct mf_event *ev;

	if (auser == NULL)
		return;
	if (!auser->log_flags && strcmp(action, "change") == 0)
		return;
	T_BEGIN
	{
		ev = audit_event_new(suser, auser, "flags");
		audit_event_add_box(ev, "mailbox", mail->box);
		mf_event_add_int(ev, "uid", mail->uid);
		audit_event_add_message_id(ev, mail);
		mf_event_add_str(ev, "action", action);
		mf_event_add_str(ev, "old_flags", old_flags);
		mf_event_add_str(ev, "flags",
		                 audit_flags_str(mail_get_flags(mail), mail_get_keywords(mail)));
		audit_txn_add(txn, ev, "flags", FALSE);
	}
	T_END;
}

static void audit_mail_update_flags(void *_txn, struct mail *mail, enum mail_flags old_flags)
{
	struct audit_txn *txn = _txn;
	enum mail_flags new_flags = mail_get_flags(mail);
	const char *action;

	if (((old_flags ^ new_flags) & ENUM_NEGATE(MAIL_RECENT)) == 0)
		return;
	if (((old_flags ^ new_flags) & MAIL_DELETED) == 0)
		action = "change";
	else if ((new_flags & MAIL_DELETED) != 0)
		action = "delete";
	else
		action = "undelete";
	T_BEGIN
	{
		audit_flags_event(txn, mail, action,
		                  audit_flags_str(old_flags, mail_get_keywords(mail)));
	}
	T_END;
}

static void audit_mail_update_keywords(void *_txn, struct mail *mail,
                                       const char *const *old_keywords)
{
	struct audit_txn *txn = _txn;

	T_BEGIN
	{
		audit_flags_event(txn, mail, "change",
		                  audit_flags_str(mail_get_flags(mail), old_keywords));
	}
	T_END;
}

static void audit_txn_free(struct audit_txn *txn)
{
	struct audit_pending *p;

	array_foreach_modifiable(&txn->events, p)
	{
		if (p->ev != NULL)
			mf_event_free(&p->ev);
	}
	pool_unref(&txn->pool);
}

static void audit_txn_commit(void *_txn, struct mail_transaction_commit_changes *changes)
{
	struct audit_txn *txn = _txn;
	struct audit_user *auser = audit_user_get(txn->user);
	struct audit_pending *p;
	struct seq_range_iter iter;
	unsigned int n = 0;
	uint32_t uid;

	if (auser != NULL) {
		seq_range_array_iter_init(&iter, &changes->saved_uids);
		array_foreach_modifiable(&txn->events, p)
		{
			if (p->wants_uid) {
				if (!seq_range_array_iter_nth(&iter, n++, &uid))
					uid = 0;
				mf_event_add_int(p->ev, "uid", uid);
			}
			audit_event_append(auser, &p->ev, p->type);
		}
	}
	audit_txn_free(txn);
}

static void audit_txn_rollback(void *_txn)
{
	audit_txn_free(_txn);
}

static void audit_mailbox_event(struct mailbox *box, const char *type, struct mailbox *dest)
{
	struct mail_user *user = box->storage->user;
	struct audit_user *auser = audit_user_get(user);
	struct mf_event *ev;

	if (auser == NULL)
		return;
	T_BEGIN
	{
		ev = audit_event_new(audit_session_user(user), auser, type);
		audit_event_add_box(ev, "mailbox", box);
		if (dest != NULL)
			audit_event_add_box(ev, "new_name", dest);
		audit_event_append(auser, &ev, type);
	}
	T_END;
}

static void audit_mailbox_create(struct mailbox *box)
{
	audit_mailbox_event(box, "mailbox_create", NULL);
}

static void audit_mailbox_delete_commit(void *txn ATTR_UNUSED, struct mailbox *box)
{
	audit_mailbox_event(box, "mailbox_delete", NULL);
}

static void audit_mailbox_rename(struct mailbox *src, struct mailbox *dest)
{
	audit_mailbox_event(src, "mailbox_rename", dest);
}

static const struct notify_vfuncs audit_notify_vfuncs = {
    .mail_transaction_begin = audit_txn_begin,
    .mail_save = audit_mail_save,
    .mail_copy = audit_mail_copy,
    .mail_expunge = audit_mail_expunge,
    .mail_update_flags = audit_mail_update_flags,
    .mail_update_keywords = audit_mail_update_keywords,
    .mail_transaction_commit = audit_txn_commit,
    .mail_transaction_rollback = audit_txn_rollback,
    .mailbox_create = audit_mailbox_create,
    .mailbox_delete_commit = audit_mailbox_delete_commit,
    .mailbox_rename = audit_mailbox_rename,
};

static struct mail_storage_hooks audit_mail_storage_hooks = {
    .mail_user_created = audit_mail_user_created,
    .mail_allocated = audit_mail_allocated,
    .mailbox_allocated = audit_mailbox_allocated,
};

void mailfort_audit_plugin_init(struct module *module)
{
	audit_notify_ctx = notify_register(&audit_notify_vfuncs);
	mail_storage_hooks_add(module, &audit_mail_storage_hooks);
}

void mailfort_audit_plugin_deinit(void)
{
	notify_unregister(audit_notify_ctx);
	mail_storage_hooks_remove(&audit_mail_storage_hooks);
}

const char *mailfort_audit_plugin_dependencies[] = {"notify", NULL};
const char *mailfort_audit_plugin_version = DOVECOT_ABI_VERSION;
