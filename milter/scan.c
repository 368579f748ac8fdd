/*
 * scan.c - one message through the whole policy: a struct mf_verdict.
 *
 * Order: message size; MIME structure limits and attachments (mime-walk.c,
 * attach-policy.c); the total attachment size; then, when spam scoring is
 * on, the classifier and the rules.  The message's action is the strongest
 * of everything found (accept < strip < hold < tempfail < reject), and the
 * reply for a rejection names what was found and what the sender can do:
 *
 *   552 5.3.4  an attachment over a size limit, or refused by type
 *   550 5.7.1  spam above reject_threshold
 *   554 5.6.0  a message over a structure limit (MIME or archive bomb), or
 *              MIME that mail readers read differently (ambiguous_mime_action)
 *   451 4.6.0  the same, when limits_action is tempfail
 *
 * mf_scan returns -1 only for internal errors; the milter then applies the
 * configured default action.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scan.h"

void mf_verdict_init(struct mf_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->bayes.prob = 0.5;
}

void mf_verdict_free(struct mf_verdict *v)
{
	size_t i;

	for (i = 0; i < v->nattachments; i++) {
		struct mf_attachment *a = &v->attachments[i];

		free(a->filename);
		free(a->content_type);
		free(a->reason);
		free(a->inner);
		g_free(a->uninspectable);
		if (a->part != NULL)
			g_object_unref(a->part);
		if (a->parent != NULL)
			g_object_unref(a->parent);
	}
	free(v->attachments);
	free(v->reply_text);
	free(v->hold_reason);
	free(v->reason);
	g_free(v->uninspectable);
	free(v->message_id);
	free(v->subject);
	g_free(v->ambiguous);
	if (v->top != NULL)
		g_object_unref(v->top);
	if (v->message != NULL)
		g_object_unref(v->message);
	free(v->head.date);
	for (i = 0; i < v->head.nauth_results; i++)
		free(v->head.auth_results[i]);
	free(v->head.auth_results);
	memset(v, 0, sizeof(*v));
}

static int rank(enum mf_action a)
{
	switch (a) {
	case MF_ACT_ACCEPT:
		return 0;
	case MF_ACT_STRIP:
		return 1;
	case MF_ACT_HOLD:
		return 2;
	case MF_ACT_TEMPFAIL:
		return 3;
	case MF_ACT_REJECT:
		return 4;
	}
	return 0;
}

/* Raise the message's action to act (if stronger), with reply and reason. */
static void decide(struct mf_verdict *v, enum mf_action act, const char *code, const char *xcode,
                   const char *text)
{
	if (rank(act) < rank(v->action) || (rank(act) == rank(v->action) && v->reply_text != NULL))
		return;
	v->action = act;
	snprintf(v->reply_code, sizeof(v->reply_code), "%s", code != NULL ? code : "");
	snprintf(v->reply_xcode, sizeof(v->reply_xcode), "%s", xcode != NULL ? xcode : "");
	free(v->reply_text);
	v->reply_text = text != NULL ? strdup(text) : NULL;
	if (act == MF_ACT_HOLD) {
		free(v->hold_reason);
		v->hold_reason = text != NULL ? strdup(text) : NULL;
	}
	free(v->reason);
	v->reason = text != NULL ? strdup(text) : NULL;
}

static void limits_verdict(const struct mf_policy *pol, struct mf_verdict *v)
{
	char *text = v->reason != NULL ? strdup(v->reason) : strdup("message structure limit");

	switch (pol->limits_action) {
	case MF_ACT_REJECT:
	case MF_ACT_STRIP:
		decide(v, MF_ACT_REJECT, "554", "5.6.0", text);
		break;
	case MF_ACT_HOLD:
		decide(v, MF_ACT_HOLD, NULL, NULL, text);
		break;
	case MF_ACT_TEMPFAIL:
		decide(v, MF_ACT_TEMPFAIL, "451", "4.6.0", text);
		break;
	case MF_ACT_ACCEPT:
		break;
	}
	free(text);
}

/* MIME that readers read differently: not guessed at (mime-shape.c). */
static void ambiguous_verdict(const struct mf_policy *pol, struct mf_verdict *v)
{
	char *text = g_strdup_printf(
	    "message refused: its MIME structure can be read in more than one way (%s), so "
	    "mail programs could show different attachments than were checked; please send it "
	    "again from an ordinary mail program",
	    v->ambiguous);

	if (pol->ambiguous_action == MF_ACT_HOLD) {
		char *why = g_strdup_printf("ambiguous MIME: %s", v->ambiguous);

		decide(v, MF_ACT_HOLD, NULL, NULL, why);
		g_free(why);
	} else {
		decide(v, MF_ACT_REJECT, "554", "5.6.0", text);
	}
	g_free(text);
}

static void attachment_verdicts(const struct mf_policy *pol, struct mf_verdict *v)
{
	uint64_t total = 0;
	size_t i;

	for (i = 0; i < v->nattachments; i++)
		total += v->attachments[i].size;
	if (pol->max_total_attachment_size > 0 && total > pol->max_total_attachment_size) {
		char *text = g_strdup_printf(
		    "attachments total %.1f MB, over the limit of %.1f MB per message; please "
		    "send fewer files per message or share them by a link",
		    (double)total / 1048576.0, (double)pol->max_total_attachment_size / 1048576.0);

		if (pol->size_action == MF_ACT_STRIP) {
			/* strip the largest until the rest fits */
			while (total > pol->max_total_attachment_size) {
				struct mf_attachment *big = NULL;

				for (i = 0; i < v->nattachments; i++) {
					struct mf_attachment *a = &v->attachments[i];

					if (a->action != MF_ACT_STRIP &&
					    (big == NULL || a->size > big->size))
						big = a;
				}
				if (big == NULL)
					break;
				big->action = MF_ACT_STRIP;
				free(big->reason);
				big->reason = strdup(text);
				total -= big->size;
			}
		} else {
			decide(v, pol->size_action,
			       pol->size_action == MF_ACT_REJECT ? "552" : NULL,
			       pol->size_action == MF_ACT_REJECT ? "5.3.4" : NULL, text);
		}
		g_free(text);
	}
	for (i = 0; i < v->nattachments; i++) {
		struct mf_attachment *a = &v->attachments[i];
		enum mf_action u = v->submission ? pol->uninspectable_submission_action
		                                 : pol->uninspectable_action;

		if (a->uninspectable != NULL && u == MF_ACT_ACCEPT && v->uninspectable == NULL)
			v->uninspectable = g_strdup(a->uninspectable);
		if (a->uninspectable != NULL && rank(u) > rank(a->action)) {
			a->action = u;
			free(a->reason);
			a->reason = strdup(a->uninspectable);
		}
		switch (a->action) {
		case MF_ACT_ACCEPT:
			break;
		case MF_ACT_STRIP:
			v->body_changed = true;
			if (v->reason == NULL)
				v->reason = a->reason != NULL ? strdup(a->reason) : NULL;
			break;
		case MF_ACT_HOLD:
			decide(v, MF_ACT_HOLD, NULL, NULL, a->reason);
			break;
		case MF_ACT_REJECT:
			decide(v, MF_ACT_REJECT, "552", "5.3.4", a->reason);
			break;
		case MF_ACT_TEMPFAIL:
			decide(v, MF_ACT_TEMPFAIL, "451", "4.6.0", a->reason);
			break;
		}
	}
}

static void spam_verdict(const struct mf_policy *pol, const struct mf_model *model,
                         struct mf_tokens *toks, struct mf_verdict *v)
{
	struct mf_bayes_params bp;
	unsigned i;
	char text[160];

	v->scanned_spam = true;
	mf_bayes_defaults(&bp);
	bp.min_training = (uint64_t)pol->min_training;
	mf_classify(model, toks, &bp, &v->bayes);
	mf_rules_run(pol, v);
	v->score = v->bayes.trained ? pol->bayes_weight * (2.0 * v->bayes.prob - 1.0) : 0.0;
	for (i = 0; i < v->nrules; i++)
		v->score += v->rules[i].score;
	/* one decimal, as shown in the headers */
	v->score = (double)(long long)(v->score * 10.0 + (v->score >= 0 ? 0.5 : -0.5)) / 10.0;
	v->is_spam = v->score >= pol->spam_threshold;
	if (pol->reject_threshold >= 0 && v->score >= pol->reject_threshold) {
		snprintf(text, sizeof(text),
		         "message refused as spam (score %.1f, limit %.1f); if this is wrong, "
		         "contact the recipient by another way",
		         v->score, pol->reject_threshold);
		decide(v, MF_ACT_REJECT, "550", "5.7.1", text);
	} else if (pol->hold_threshold >= 0 && v->score >= pol->hold_threshold) {
		snprintf(text, sizeof(text), "spam score %.1f (hold from %.1f)", v->score,
		         pol->hold_threshold);
		decide(v, MF_ACT_HOLD, NULL, NULL, text);
	}
}

int mf_scan(const struct mf_policy *pol, const struct mf_model *model, GMimeStream *stream,
            struct mf_verdict *v, struct mf_error *err)
{
	struct mf_tokens *toks;
	gint64 size = g_mime_stream_length(stream);

	if (size >= 0 && pol->max_message_size > 0 && (uint64_t)size > pol->max_message_size) {
		char *text = g_strdup_printf(
		    "message is %.1f MB, over the limit of %.1f MB; please "
		    "share large files by a link",
		    (double)size / 1048576.0, (double)pol->max_message_size / 1048576.0);

		v->size = (uint64_t)size;
		decide(v, MF_ACT_REJECT, "552", "5.3.4", text);
		g_free(text);
		return 0;
	}
	toks = mf_tokens_new(MF_MAX_TOKENS);
	if (toks == NULL)
		return mf_error_set(err, "out of memory");
	if (mf_mime_walk(pol, stream, toks, v, err) < 0) {
		mf_tokens_free(&toks);
		return -1;
	}
	if (v->limit_exceeded) {
		limits_verdict(pol, v);
		mf_tokens_free(&toks);
		return 0;
	}
	if (v->ambiguous != NULL) {
		ambiguous_verdict(pol, v);
		mf_tokens_free(&toks);
		return 0;
	}
	attachment_verdicts(pol, v);
	if (pol->spam)
		spam_verdict(pol, model, toks, v);
	mf_tokens_free(&toks);
	return 0;
}

static GMimeObject *replacement_part(const struct mf_attachment *a)
{
	GMimeTextPart *tp = g_mime_text_part_new_with_subtype("plain");
	char *text;

	text =
	    g_strdup_printf("This attachment was removed by the mail system.\r\n"
	                    "File: %s\r\nType: %s, %llu bytes\r\nReason: %s\r\n",
	                    a->filename != NULL ? a->filename : "(unnamed)", a->content_type,
	                    (unsigned long long)a->size, a->reason != NULL ? a->reason : "policy");
	g_mime_text_part_set_text(tp, text);
	g_mime_part_set_content_encoding(GMIME_PART(tp), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	g_mime_object_set_disposition(GMIME_OBJECT(tp), "inline");
	g_free(text);
	return GMIME_OBJECT(tp);
}

int mf_scan_write_body(struct mf_verdict *v, GMimeStream *out, struct mf_error *err)
{
	GMimeFormatOptions *fo;
	size_t i;
	ssize_t n;

	if (v->top == NULL)
		return mf_error_set(err, "no parsed message to rewrite");
	for (i = 0; i < v->nattachments; i++) {
		struct mf_attachment *a = &v->attachments[i];
		GMimeObject *repl;

		if (a->action != MF_ACT_STRIP || a->part == NULL)
			continue;
		repl = replacement_part(a);
		if (a->parent == NULL && a->part == v->top) {
			/* the whole body was the attachment */
			g_object_unref(v->top);
			v->top = g_object_ref(repl);
			v->top_replaced = true;
		} else if (a->parent != NULL && GMIME_IS_MULTIPART(a->parent)) {
			GMimeMultipart *mp = GMIME_MULTIPART(a->parent);
			int idx = g_mime_multipart_index_of(mp, a->part);

			if (idx >= 0) {
				GMimeObject *old = g_mime_multipart_replace(mp, idx, repl);

				if (old != NULL)
					g_object_unref(old);
			}
		} else if (a->parent != NULL && GMIME_IS_MESSAGE(a->parent)) {
			g_mime_message_set_mime_part(GMIME_MESSAGE(a->parent), repl);
		}
		g_object_unref(repl);
	}
	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	n = g_mime_object_write_content_to_stream(v->top, fo, out);
	g_mime_format_options_free(fo);
	if (n < 0 || g_mime_stream_flush(out) < 0)
		return mf_error_set(err, "cannot write the rewritten body");
	return 0;
}
