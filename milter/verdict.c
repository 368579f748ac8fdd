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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mailfort-config.h"
#include "mf-event.h"
#include "milter.h"
#include "scan.h"

/* x with dec (0..4) decimals into out (at least 32 bytes), exactly as
   printf's "%.<dec>f" writes it; printf itself does it only near a
   rounding tie, for large values and for NaN (a verdict has about twenty
   numbers, and glibc's printf_fp is slow). */
static void fmt_fixed(char *out, size_t size, double x, int dec)
{
	static const double scale[] = {1, 10, 100, 1000, 10000};
	double y, whole;
	unsigned long long n;
	char digits[32];
	int i, k = 0;
	size_t o = 0;

	if (!(x > -1e12 && x < 1e12) || dec < 0 || dec > 4) {
		snprintf(out, size, "%.*f", dec, x);
		return;
	}
	y = fabs(x) * scale[dec];
	whole = floor(y);
	if (fabs(y - whole - 0.5) < 1e-6) {
		snprintf(out, size, "%.*f", dec, x);
		return;
	}
	n = (unsigned long long)whole + (y - whole > 0.5 ? 1 : 0);
	/* the fraction's digits, then the integer part's, backwards */
	for (i = 0; i < dec; i++, n /= 10)
		digits[k++] = (char)('0' + n % 10);
	if (dec > 0)
		digits[k++] = '.';
	do {
		digits[k++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	if (signbit(x))
		digits[k++] = '-';
	while (k > 0 && o + 1 < size)
		out[o++] = digits[--k];
	out[o] = '\0';
}

void mf_verdict_format_score(char out[32], double score)
{
	fmt_fixed(out, 32, score, 1);
}

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
	char score[32], required[32];
	unsigned i;
	bool first = true;

	fmt_fixed(score, sizeof(score), v->score, 1);
	fmt_fixed(required, sizeof(required), pol->spam_threshold, 1);
	g_string_append(s, v->is_spam ? "Yes, score=" : "No, score=");
	g_string_append(s, score);
	g_string_append(s, " required=");
	g_string_append(s, required);
	g_string_append(s, " tests=");
	if (v->bayes.trained) {
		g_string_append(s, bayes_band(v->bayes.prob));
		first = false;
	}
	for (i = 0; i < v->nrules; i++) {
		if (!first)
			g_string_append_c(s, ',');
		g_string_append(s, v->rules[i].name);
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

static void append_u64(GString *s, uint64_t v)
{
	char digits[20];
	int k = 0;

	do {
		digits[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (k > 0)
		g_string_append_c(s, digits[--k]);
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
	if (v->ambiguous != NULL)
		mf_event_add_str(ev, "ambiguous", v->ambiguous);
	mf_event_add_str(ev, "direction", v->submission ? "submission" : "inbound");
	if (v->uninspectable != NULL)
		mf_event_add_str(ev, "uninspectable", v->uninspectable);
	if (v->reply_code[0] != '\0') {
		char reply[16];

		snprintf(reply, sizeof(reply), "%s %s", v->reply_code, v->reply_xcode);
		mf_event_add_str(ev, "reply", reply);
	}
	if (v->scanned_spam) {
		char num[32];

		fmt_fixed(num, sizeof(num), v->score, 1);
		mf_event_add_json(ev, "score", num);
		mf_event_add_bool(ev, "spam", v->is_spam);
		if (v->bayes.trained) {
			fmt_fixed(num, sizeof(num), v->bayes.prob, 4);
			mf_event_add_json(ev, "bayes", num);
		}
		s = g_string_new("[");
		for (i = 0; i < v->bayes.ntop; i++) {
			g_string_append(s, i ? ",[" : "[");
			append_quoted(s, v->bayes.top[i].token);
			fmt_fixed(num, sizeof(num), v->bayes.top[i].prob, 4);
			g_string_append_c(s, ',');
			g_string_append(s, num);
			g_string_append_c(s, ']');
		}
		g_string_append(s, "]");
		mf_event_add_json(ev, "tokens", s->str);
		g_string_free(s, TRUE);
		s = g_string_new("[");
		for (i = 0; i < v->nrules; i++) {
			g_string_append(s, i ? ",{\"name\":" : "{\"name\":");
			append_quoted(s, v->rules[i].name);
			fmt_fixed(num, sizeof(num), v->rules[i].score, 1);
			g_string_append(s, ",\"score\":");
			g_string_append(s, num);
			g_string_append_c(s, '}');
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
		g_string_append(s, ",\"size\":");
		append_u64(s, (uint64_t)a->size);
		g_string_append(s, ",\"action\":");
		append_quoted(s, mf_action_name(a->action));
		if (a->inner != NULL) {
			g_string_append(s, ",\"inner\":");
			append_quoted(s, a->inner);
		}
		if (a->reason != NULL) {
			g_string_append(s, ",\"reason\":");
			append_quoted(s, a->reason);
		}
		if (a->uninspectable != NULL) {
			g_string_append(s, ",\"uninspectable\":");
			append_quoted(s, a->uninspectable);
		}
		g_string_append(s, "}");
	}
	g_string_append(s, "]");
	mf_event_add_json(ev, "attachments", s->str);
	g_string_free(s, TRUE);
}
