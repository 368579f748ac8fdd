/*
 * imap-audit-plugin.c - imap_mailfort_audit: the imap-only part of the audit.
 *
 * Loaded into the imap process next to mailfort_audit
 * (protocol imap { mail_plugins = $mail_plugins imap_mailfort_audit }).
 * It does two things only the imap process can do:
 *
 *  - When a session ends it tells mailfort_audit why (LOGOUT, Dovecot's own
 *    inactivity timeout, the session policy below, or a dropped connection)
 *    and how many bytes went in and out, so the logout event carries them.
 *
 *  - Session policy from [audit] in mailfort.conf: a session that sent no
 *    command for session_idle_timeout, or that has lasted
 *    session_max_lifetime, is closed with an untagged BYE saying why; the
 *    logout event records the reason ("idle_timeout" / "max_lifetime").
 *    A command still running keeps a session from being idle; a client in
 *    IDLE is idle.
 *
 *  - A session whose audit trail failed (mailfort_audit could not record
 *    one of its events) is ended after the command with an untagged BYE
 *    "Audit trail unavailable"; the logout event, if it can be recorded,
 *    says "audit_failed".
 *
 *  - A session handed to imap-hibernate is not ended: no logout event, and
 *    the restored session records no second login.
 */
#include "imap-common.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "module-context.h"
#include "imap-client.h"

#include "audit-plugin.h"

#define IMAP_AUDIT_CONTEXT(obj) MODULE_CONTEXT_REQUIRE(obj, imap_audit_module)

struct imap_audit_client {
	union imap_module_context module_ctx;
	struct client *client;
	unsigned int idle_secs, lifetime_secs;
	time_t started;
	struct timeout *to_idle, *to_lifetime;
	const char *policy_reason; /* set when the policy ended the session */
};

static MODULE_CONTEXT_DEFINE_INIT(imap_audit_module, &imap_module_register);

/* Dovecot's client-created hook chain (the previous hook) and this
   plugin's module, kept for the plugin's lifetime as imap plugins do. */
static imap_client_created_func_t *next_hook_client_created;
static struct module *imap_audit_plugin_module;

static void imap_audit_end(struct imap_audit_client *actx, const char *reason, const char *text)
{
	struct client *client = actx->client;

	actx->policy_reason = reason;
	timeout_remove(&actx->to_idle);
	timeout_remove(&actx->to_lifetime);
	client_disconnect_with_error(client, text);
}

static bool imap_audit_client_busy(struct client *client)
{
	struct client_command_context *cmd;

	for (cmd = client->command_queue; cmd != NULL; cmd = cmd->next) {
		if (cmd->name == NULL || strcasecmp(cmd->name, "IDLE") != 0)
			return TRUE;
	}
	return FALSE;
}

static void imap_audit_idle_check(struct imap_audit_client *actx);

static void imap_audit_idle_arm(struct imap_audit_client *actx, unsigned int secs)
{
	timeout_remove(&actx->to_idle);
	actx->to_idle = timeout_add(secs * 1000U, imap_audit_idle_check, actx);
}

static void imap_audit_idle_check(struct imap_audit_client *actx)
{
	struct client *client = actx->client;
	time_t last = client->last_input;
	time_t idle_for = ioloop_time - last;

	if (client->disconnected)
		return;
	if (imap_audit_client_busy(client)) {
		imap_audit_idle_arm(actx, actx->idle_secs);
		return;
	}
	if (idle_for >= (time_t)actx->idle_secs) {
		imap_audit_end(actx, "idle_timeout",
		               t_strdup_printf("Session idle for %u seconds: logged out by policy.",
		                               actx->idle_secs));
		return;
	}
	imap_audit_idle_arm(actx, actx->idle_secs - (unsigned int)idle_for);
}

static void imap_audit_lifetime_reached(struct imap_audit_client *actx)
{
	if (actx->client->disconnected)
		return;
	imap_audit_end(actx, "max_lifetime",
	               t_strdup_printf("Session older than %u seconds: logged out by policy.",
	                               actx->lifetime_secs));
}

static const char *imap_audit_reason(struct client *client, struct imap_audit_client *actx,
                                     const char *text)
{
	if (actx->policy_reason != NULL)
		return actx->policy_reason;
	if (client->logged_out)
		return "logout";
	if (text != NULL && str_begins(text, "Inactivity"))
		return "inactivity";
	return "disconnected";
}

static void imap_audit_client_destroy(struct client *client, const char *reason)
{
	struct imap_audit_client *actx = IMAP_AUDIT_CONTEXT(client);
	const char *text = reason != NULL ? reason : client->disconnect_reason;
	uint64_t in = 0, out = 0;

	timeout_remove(&actx->to_idle);
	timeout_remove(&actx->to_lifetime);
	if (client->user != NULL && client->hibernated) {
		mailfort_audit_session_suspend(client->user);
	} else if (client->user != NULL) {
		if (client->input != NULL)
			in = i_stream_get_absolute_offset(client->input);
		if (client->output != NULL)
			out = client->output->offset;
		mailfort_audit_session_end(client->user, imap_audit_reason(client, actx, text),
		                           text, in, out);
	}
	actx->module_ctx.super.destroy(client, reason);
}

static void imap_audit_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct imap_audit_client *actx;
	unsigned int idle = 0, lifetime = 0, elapsed;

	if (mail_user_is_plugin_loaded(client->user, imap_audit_plugin_module) &&
	    mailfort_audit_session_policy(client->user, &idle, &lifetime) == 0) {
		actx = p_new(client->pool, struct imap_audit_client, 1);
		actx->module_ctx.super = client->v;
		actx->client = client;
		actx->idle_secs = idle;
		actx->lifetime_secs = lifetime;
		client->v.destroy = imap_audit_client_destroy;
		MODULE_CONTEXT_SET(client, imap_audit_module, actx);
		if (idle > 0)
			imap_audit_idle_arm(actx, idle);
		if (lifetime > 0) {
			/* a session restored from hibernation keeps its
			   original start */
			elapsed =
			    ioloop_time > client->user->session_create_time
			        ? (unsigned int)(ioloop_time - client->user->session_create_time)
			        : 0;
			actx->to_lifetime =
			    timeout_add((lifetime > elapsed ? lifetime - elapsed : 0) * 1000U,
			                imap_audit_lifetime_reached, actx);
		}
	}
	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

/* After every command: a session whose audit trail failed is ended (the
   audit never silently stops while the session goes on). */
static void imap_audit_command_post(struct client_command_context *cmd)
{
	struct client *client = cmd->client;
	struct imap_audit_client *actx;

	if (client->disconnected || client->user == NULL ||
	    (actx = MODULE_CONTEXT(client, imap_audit_module)) == NULL ||
	    mailfort_audit_failure(client->user) == NULL)
		return;
	imap_audit_end(actx, "audit_failed",
	               "Audit trail unavailable: session closed (the server could not record "
	               "its events).");
}

static void imap_audit_command_pre(struct client_command_context *cmd)
{
	(void)cmd;
}

void imap_mailfort_audit_plugin_init(struct module *module);
void imap_mailfort_audit_plugin_deinit(void);

void imap_mailfort_audit_plugin_init(struct module *module)
{
	imap_audit_plugin_module = module;
	next_hook_client_created = imap_client_created_hook_set(imap_audit_client_created);
	command_hook_register(imap_audit_command_pre, imap_audit_command_post);
}

void imap_mailfort_audit_plugin_deinit(void)
{
	command_hook_unregister(imap_audit_command_pre, imap_audit_command_post);
	imap_client_created_hook_set(next_hook_client_created);
}

const char *imap_mailfort_audit_plugin_dependencies[] = {"mailfort_audit", NULL};
const char imap_mailfort_audit_plugin_binary_dependency[] = "imap";
const char *imap_mailfort_audit_plugin_version = DOVECOT_ABI_VERSION;
