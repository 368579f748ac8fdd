/*
 * rules.c - a small set of transparent rules that add to the spam score.
 *
 * Each rule has a fixed name (shown in X-Spam-Status and in the verdict, so
 * a postmaster can see exactly why a message scored) and a fixed score; a
 * site turns rules off with [milter] disabled_rules.
 *
 *   MISSING_DATE         1.0  no Date header (RFC 5322 requires one)
 *   MISSING_MESSAGE_ID   1.0  no Message-ID header
 *   MISSING_FROM         2.0  no From header
 *   MISSING_SUBJECT      0.5  no Subject header
 *   DATE_IN_FUTURE       1.5  Date more than a day ahead
 *   EXECUTABLE_ATTACHMENT 4.0 an attachment, or a file in an archive, is a program
 *   ENCRYPTED_ARCHIVE    1.0  an archive that cannot be checked
 *   SPF_FAIL             2.0  Authentication-Results: spf=fail
 *   SPF_SOFTFAIL         0.7  spf=softfail
 *   DKIM_FAIL            1.5  dkim=fail
 *   DMARC_FAIL           3.0  dmarc=fail
 *   HTML_ONLY            0.3  the only text is HTML
 *
 * Authentication-Results are trusted only from trusted_authserv_id when
 * set, otherwise only the topmost header (the one the receiving side
 * added): a sender can write any such header further down.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "scan.h"

static void hit(const struct mf_policy *pol, struct mf_verdict *v, const char *name, double score,
                const char *detail)
{
	unsigned i;

	if (!mf_policy_rule_enabled(pol, name) || v->nrules >= MF_MAX_RULE_HITS)
		return;
	for (i = 0; i < v->nrules; i++) {
		if (strcmp(v->rules[i].name, name) == 0)
			return;
	}
	v->rules[v->nrules].name = name;
	v->rules[v->nrules].score = score;
	snprintf(v->rules[v->nrules].detail, sizeof(v->rules[v->nrules].detail), "%s",
	         detail != NULL ? detail : "");
	v->nrules++;
}

/* Find "method=result" in an Authentication-Results value. */
static void auth_results(const struct mf_policy *pol, struct mf_verdict *v, const char *value)
{
	static const struct {
		const char *method, *result, *rule;
		double score;
	} checks[] = {
	    {"spf", "fail", "SPF_FAIL", 2.0},
	    {"spf", "softfail", "SPF_SOFTFAIL", 0.7},
	    {"dkim", "fail", "DKIM_FAIL", 1.5},
	    {"dmarc", "fail", "DMARC_FAIL", 3.0},
	};
	const char *p = strchr(value, ';');
	size_t k;

	if (p == NULL)
		return;
	while (*p) {
		char method[16], result[16];
		size_t n = 0, r = 0;

		while (*p && !isalpha((unsigned char)*p))
			p++;
		while (*p && (isalnum((unsigned char)*p) || *p == '-') && n < sizeof(method) - 1)
			method[n++] = (char)tolower((unsigned char)*p++);
		method[n] = '\0';
		while (*p == ' ')
			p++;
		if (*p != '=') {
			while (*p && *p != ';' && *p != ' ')
				p++;
			continue;
		}
		p++;
		while (*p == ' ')
			p++;
		while (*p && isalpha((unsigned char)*p) && r < sizeof(result) - 1)
			result[r++] = (char)tolower((unsigned char)*p++);
		result[r] = '\0';
		for (k = 0; k < MF_N_ELEMENTS(checks); k++) {
			if (strcmp(method, checks[k].method) == 0 &&
			    strcmp(result, checks[k].result) == 0)
				hit(pol, v, checks[k].rule, checks[k].score, value);
		}
		/* skip the rest of this resinfo */
		while (*p && *p != ';')
			p++;
	}
}

static bool authserv_matches(const char *value, const char *id)
{
	size_t n = strlen(id);

	while (*value == ' ' || *value == '\t')
		value++;
	return strncasecmp(value, id, n) == 0 &&
	       (value[n] == ';' || value[n] == ' ' || value[n] == '\t');
}

static bool html_only(GMimeObject *part)
{
	GMimeContentType *ct;

	if (part == NULL)
		return false;
	ct = g_mime_object_get_content_type(part);
	if (GMIME_IS_MULTIPART(part)) {
		GMimeMultipart *mp = GMIME_MULTIPART(part);
		int i, n = g_mime_multipart_get_count(mp);

		if (!g_mime_content_type_is_type(ct, "multipart", "alternative") &&
		    !g_mime_content_type_is_type(ct, "multipart", "related")) {
			/* mixed: html-only if the first part is */
			return n > 0 && html_only(g_mime_multipart_get_part(mp, 0));
		}
		for (i = 0; i < n; i++) {
			GMimeObject *c = g_mime_multipart_get_part(mp, i);

			if (g_mime_content_type_is_type(g_mime_object_get_content_type(c), "text",
			                                "plain"))
				return false;
		}
		return n > 0;
	}
	return g_mime_content_type_is_type(ct, "text", "html");
}

void mf_rules_run(const struct mf_policy *pol, struct mf_verdict *v)
{
	const struct mf_head *h = &v->head;
	size_t a;

	for (a = 0; a < v->nattachments; a++) {
		if (v->attachments[a].executable)
			hit(pol, v, "EXECUTABLE_ATTACHMENT", 4.0,
			    v->attachments[a].filename ? v->attachments[a].filename : "");
		if (v->attachments[a].encrypted)
			hit(pol, v, "ENCRYPTED_ARCHIVE", 1.0,
			    v->attachments[a].filename ? v->attachments[a].filename : "");
	}
	if (!h->parsed)
		return;
	if (!h->has_date)
		hit(pol, v, "MISSING_DATE", 1.0, NULL);
	else if (h->date_valid && h->date_when > (int64_t)time(NULL) + 86400)
		hit(pol, v, "DATE_IN_FUTURE", 1.5, h->date);
	if (!h->has_message_id)
		hit(pol, v, "MISSING_MESSAGE_ID", 1.0, NULL);
	if (!h->has_from)
		hit(pol, v, "MISSING_FROM", 2.0, NULL);
	if (!h->has_subject)
		hit(pol, v, "MISSING_SUBJECT", 0.5, NULL);
	if (html_only(v->top))
		hit(pol, v, "HTML_ONLY", 0.3, NULL);
	for (a = 0; a < h->nauth_results; a++) {
		if (pol->trusted_authserv_id[0] != '\0') {
			if (authserv_matches(h->auth_results[a], pol->trusted_authserv_id))
				auth_results(pol, v, h->auth_results[a]);
		} else if (a == 0) {
			auth_results(pol, v, h->auth_results[a]);
		}
	}
}
