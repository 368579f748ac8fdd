/*
 * verdict.c - a verdict as SpamAssassin-style headers and as an audit event.
 *
 * X-Spam-Status follows SpamAssassin's layout so existing Sieve and client
 * rules keep working:
 *
 *   X-Spam-Status: Yes, score=7.3 required=5.0 tests=BAYES_99,MISSING_DATE
 *	autolearn=disabled version=mailfort-0.1.0
 *
 * The classifier appears as a BAYES_nn pseudo-test (nn = probability band,
 * as SpamAssassin names them).  The event ("verdict", see mf-event.h)
 * carries the score, the classifier's probability and strongest tokens, the
 * rules with their scores, the action and reason, and one object per
 * attachment (name, content type, detected type, size, action, reason);
 * the milter adds the envelope (queue id, sender, recipients, client).
 * Nothing here fails: values are escaped by mf_json_quote.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mailfort-config.h"
#include "mf-event.h"
#include "scan.h"

static const char *bayes_band(double p)
{
	if (p >= 0.99)
		return "BAYES_99";
	if (p >= 0.95)
		return "BAYES_95";
	if (p >= 0.80)
		return "BAYES_80";
	if (p >= 0.60)
		return "BAYES_60";
	if (p >= 0.40)
		return "BAYES_50";
	if (p >= 0.20)
		return "BAYES_40";
	if (p >= 0.05)
		return "BAYES_20";
	if (p >= 0.01)
		return "BAYES_05";
	return "BAYES_00";
}

char *mf_verdict_spam_status(const struct mf_policy *pol, const struct mf_verdict *v)
{
	GString *s = g_string_new(NULL);
	unsigned i;
	bool first = true;

	g_string_append_printf(s, "%s, score=%.1f required=%.1f tests=", v->is_spam ? "Yes" : "No",
	                       v->score, pol->spam_threshold);
	if (v->bayes.trained) {
		g_string_append(s, bayes_band(v->bayes.prob));
		first = false;
	}
	for (i = 0; i < v->nrules; i++) {
		g_string_append_printf(s, "%s%s", first ? "" : ",", v->rules[i].name);
		first = false;
	}
	if (first)
		g_string_append(s, "none");
	g_string_append(s, "\r\n\tautolearn=disabled version=mailfort-" PACKAGE_VERSION);
	return g_string_free(s, FALSE);
}

static void append_quoted(GString *s, const char *str)
{
	char *q = mf_json_quote(str != NULL ? str : "", str != NULL ? strlen(str) : 0);

	if (q != NULL) {
		g_string_append(s, q);
		free(q);
	} else {
		g_string_append(s, "\"\"");
	}
}

void mf_verdict_event(const struct mf_verdict *v, struct mf_event *ev)
{
	GString *s;
	unsigned i;
	size_t k;

	mf_event_add_str(ev, "message_id", v->message_id);
	mf_event_add_int(ev, "size", (int64_t)v->size);
	/* A message whose attachment was stripped was delivered changed: say so. */
	mf_event_add_str(ev, "action",
	                 v->action == MF_ACT_ACCEPT && v->body_changed ? "strip"
	                                                               : mf_action_name(v->action));
	mf_event_add_str(ev, "reason", v->reason);
	if (v->reply_code[0] != '\0') {
		char reply[16];

		snprintf(reply, sizeof(reply), "%s %s", v->reply_code, v->reply_xcode);
		mf_event_add_str(ev, "reply", reply);
	}
	if (v->scanned_spam) {
		char num[32];

		snprintf(num, sizeof(num), "%.1f", v->score);
		mf_event_add_json(ev, "score", num);
		mf_event_add_bool(ev, "spam", v->is_spam);
		if (v->bayes.trained) {
			snprintf(num, sizeof(num), "%.4f", v->bayes.prob);
			mf_event_add_json(ev, "bayes", num);
		}
		s = g_string_new("[");
		for (i = 0; i < v->bayes.ntop; i++) {
			g_string_append(s, i ? ",[" : "[");
			append_quoted(s, v->bayes.top[i].token);
			g_string_append_printf(s, ",%.4f]", v->bayes.top[i].prob);
		}
		g_string_append(s, "]");
		mf_event_add_json(ev, "tokens", s->str);
		g_string_free(s, TRUE);
		s = g_string_new("[");
		for (i = 0; i < v->nrules; i++) {
			g_string_append(s, i ? ",{\"name\":" : "{\"name\":");
			append_quoted(s, v->rules[i].name);
			g_string_append_printf(s, ",\"score\":%.1f}", v->rules[i].score);
		}
		g_string_append(s, "]");
		mf_event_add_json(ev, "rules", s->str);
		g_string_free(s, TRUE);
	}
	s = g_string_new("[");
	for (k = 0; k < v->nattachments; k++) {
		const struct mf_attachment *a = &v->attachments[k];

		g_string_append(s, k ? ",{\"name\":" : "{\"name\":");
		if (a->filename != NULL)
			append_quoted(s, a->filename);
		else
			g_string_append(s, "null");
		g_string_append(s, ",\"content_type\":");
		append_quoted(s, a->content_type);
		g_string_append(s, ",\"type\":");
		append_quoted(s, mf_filetype_name(a->type));
		g_string_append_printf(s,
		                       ",\"size\":%llu,\"action\":", (unsigned long long)a->size);
		append_quoted(s, mf_action_name(a->action));
		if (a->inner != NULL) {
			g_string_append(s, ",\"inner\":");
			append_quoted(s, a->inner);
		}
		if (a->reason != NULL) {
			g_string_append(s, ",\"reason\":");
			append_quoted(s, a->reason);
		}
		g_string_append(s, "}");
	}
	g_string_append(s, "]");
	mf_event_add_json(ev, "attachments", s->str);
	g_string_free(s, TRUE);
}
