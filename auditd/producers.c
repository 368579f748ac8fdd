/*
 * producers.c - which event types each producer may write ([audit]
 * producers), and the check mailfort-auditd applies to every record.
 *
 * mailfort-spoold adds to each event the member "peer": the uid, gid, pid
 * and executable the kernel reported for its sender, and when it was
 * received.  A record passes when its type is one that uid may write and
 * its "time" lies within [audit] max_clock_skew of its receipt; otherwise
 * it is stored as type "refused" (the record kept whole in "raw") and the
 * producer_refused alert fires.  Records without "peer" were written to
 * the spool directly, which only its owner and root can do; they pass.
 *
 * The setting is a list of USER:KINDS entries separated by blanks; USER is
 * a user name, a numeric uid or "*" (any other uid); KINDS is a comma
 * separated list of event types and of the words "all" (any type) and
 * "mail" (any type that is not auth, verdict, admin or one of those
 * the daemons themselves write: invalid, spool_damage, refused,
 * quarantined).  Those four pass from no producer whatever its rule, root
 * included: a "refused" record passes only as mailfort-spoold wrote it,
 * its peer marked "wrapped": true.  Unset, it is
 *
 *   root:all <[auditd] user>:all <[spoold] user>:all <[milter] user>:verdict
 *   *:mail
 *
 * (entries for users that do not exist are left out of the default), so
 * the mail user can write login, read, save, ... but never auth, verdict
 * or admin events.
 *
 * auditd_producers_load returns 0, or -1 with err naming the bad entry.
 */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditd.h"
#include "mf-config.h"
#include "mf-submit.h"

#define PRODUCERS_MAX_TYPES 16

struct producer_rule {
	bool any_uid;
	uid_t uid;
	bool all, mail;
	char types[PRODUCERS_MAX_TYPES][32];
	int ntypes;
};

struct auditd_producers {
	struct producer_rule *rules;
	size_t n;
	int64_t max_skew_us;
};

/* Types no producer writes under "mail". */
static const char *const reserved_types[] = {"auth",         "verdict", "admin",      "invalid",
                                             "spool_damage", "refused", "quarantined"};

static int rule_add_kinds(struct producer_rule *r, const char *kinds, size_t len,
                          struct mf_error *err)
{
	const char *p = kinds, *end = kinds + len;

	while (p < end) {
		size_t n = strcspn(p, ",");

		if (n > (size_t)(end - p))
			n = (size_t)(end - p);
		if (n == 3 && memcmp(p, "all", 3) == 0) {
			r->all = true;
		} else if (n == 4 && memcmp(p, "mail", 4) == 0) {
			r->mail = true;
		} else if (n > 0) {
			if (n >= sizeof(r->types[0]) || r->ntypes == PRODUCERS_MAX_TYPES)
				return mf_error_set(err,
				                    "[audit] producers: too many or too long "
				                    "kinds in \"%.*s\"",
				                    (int)len, kinds);
			for (size_t i = 0; i < n; i++)
				if (!islower((unsigned char)p[i]) && p[i] != '_')
					return mf_error_set(err,
					                    "[audit] producers: \"%.*s\" is not an "
					                    "event type",
					                    (int)n, p);
			memcpy(r->types[r->ntypes], p, n);
			r->types[r->ntypes++][n] = '\0';
		}
		p += n + 1;
	}
	return 0;
}

/* Add "USER:KINDS"; a user that does not exist is an error only when
   strict (the default list leaves it out). */
static int producers_add(struct auditd_producers *pp, const char *entry, size_t len, bool strict,
                         struct mf_error *err)
{
	const char *colon = memchr(entry, ':', len);
	struct producer_rule r, *n;
	char user[128], *endp;
	struct passwd *pw;
	unsigned long v;

	memset(&r, 0, sizeof(r));
	if (colon == NULL || colon == entry || (size_t)(colon - entry) >= sizeof(user))
		return mf_error_set(err, "[audit] producers: \"%.*s\" is not USER:KINDS", (int)len,
		                    entry);
	memcpy(user, entry, (size_t)(colon - entry));
	user[colon - entry] = '\0';
	if (strcmp(user, "*") == 0) {
		r.any_uid = true;
	} else if (isdigit((unsigned char)user[0])) {
		v = strtoul(user, &endp, 10);
		if (*endp != '\0' || v > 0xffffffffUL)
			return mf_error_set(err, "[audit] producers: bad uid \"%s\"", user);
		r.uid = (uid_t)v;
	} else if ((pw = getpwnam(user)) != NULL) {
		r.uid = pw->pw_uid;
	} else if (strict) {
		return mf_error_set(err, "[audit] producers: no such user \"%s\"", user);
	} else {
		return 0;
	}
	if (rule_add_kinds(&r, colon + 1, len - (size_t)(colon + 1 - entry), err) < 0)
		return -1;
	n = reallocarray(pp->rules, pp->n + 1, sizeof(*n));
	if (n == NULL)
		return mf_error_set(err, "out of memory");
	pp->rules = n;
	pp->rules[pp->n++] = r;
	return 0;
}

static int producers_parse(struct auditd_producers *pp, const char *list, bool strict,
                           struct mf_error *err)
{
	const char *p = list;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n > 0 && producers_add(pp, p, n, strict, err) < 0)
			return -1;
		p += n;
	}
	return 0;
}

int auditd_producers_load(const struct mf_config *cfg, struct auditd_producers **pp_r,
                          struct mf_error *err)
{
	struct auditd_producers *pp = calloc(1, sizeof(*pp));
	const char *list = mf_config_str(cfg, "audit", "producers");
	char def[1024];
	int ret;

	if (pp == NULL)
		return mf_error_set(err, "out of memory");
	pp->max_skew_us = mf_config_int(cfg, "audit", "max_clock_skew") * INT64_C(1000000);
	if (list != NULL && *list != '\0') {
		ret = producers_parse(pp, list, true, err);
	} else {
		const char *au = mf_config_str(cfg, "auditd", "user");
		const char *su = mf_config_str(cfg, "spoold", "user");
		const char *mu = mf_config_str(cfg, "milter", "user");

		/* the milter's entry first: the first entry naming a uid wins */
		snprintf(
		    def, sizeof(def), "%s%s root:all %s%s %s%s *:mail",
		    mu != NULL && *mu != '\0' ? mu : "",
		    mu != NULL && *mu != '\0' ? ":verdict" : "",
		    au != NULL && *au != '\0' ? au : "", au != NULL && *au != '\0' ? ":all" : "",
		    su != NULL && *su != '\0' ? su : "", su != NULL && *su != '\0' ? ":all" : "");
		ret = producers_parse(pp, def, false, err);
	}
	if (ret < 0) {
		auditd_producers_free(&pp);
		return -1;
	}
	*pp_r = pp;
	return 0;
}

void auditd_producers_free(struct auditd_producers **ppp)
{
	struct auditd_producers *pp = *ppp;

	if (pp == NULL)
		return;
	*ppp = NULL;
	free(pp->rules);
	free(pp);
}

static bool rule_allows(const struct producer_rule *r, const char *type)
{
	if (r->all)
		return true;
	for (int i = 0; i < r->ntypes; i++)
		if (strcmp(r->types[i], type) == 0)
			return true;
	if (!r->mail)
		return false;
	for (size_t i = 0; i < MF_N_ELEMENTS(reserved_types); i++)
		if (strcmp(reserved_types[i], type) == 0)
			return false;
	return true;
}

/* The rule for uid: the first naming it, else the first "*". */
static const struct producer_rule *rule_for(const struct auditd_producers *pp, uid_t uid)
{
	const struct producer_rule *any = NULL;

	for (size_t i = 0; i < pp->n; i++) {
		if (!pp->rules[i].any_uid && pp->rules[i].uid == uid)
			return &pp->rules[i];
		if (pp->rules[i].any_uid && any == NULL)
			any = &pp->rules[i];
	}
	return any;
}

/* Parse the receiver's "peer" member: {"uid":U,"gid":G,"pid":P,"exe":...,"time":"T"}. */
static bool peer_parse(const char *peer, size_t len, unsigned long *uid_r, int64_t *time_us_r)
{
	char buf[512], *t, *endp;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, peer, len);
	buf[len] = '\0';
	if (strncmp(buf, "{\"uid\":", 7) != 0)
		return false;
	*uid_r = strtoul(buf + 7, &endp, 10);
	if (endp == buf + 7 || *endp != ',')
		return false;
	*time_us_r = INT64_MIN;
	t = strstr(buf, ",\"time\":\"");
	if (t != NULL) {
		char *q = strchr(t + 9, '"');

		if (q != NULL) {
			*q = '\0';
			if (mf_audit_parse_time(t + 9, time_us_r) < 0)
				*time_us_r = INT64_MIN;
		}
	}
	return true;
}

const char *auditd_producers_check(const struct auditd_producers *pp, const char *type,
                                   const char *peer, size_t peer_len, bool time_ok, int64_t time_us,
                                   char *why, size_t why_size)
{
	const struct producer_rule *r;
	unsigned long uid;
	int64_t recv_us, skew;

	if (pp == NULL || peer == NULL)
		return NULL;
	if (!peer_parse(peer, peer_len, &uid, &recv_us)) {
		snprintf(why, why_size, "the sender's identity (\"peer\") is malformed");
		return why;
	}
	/* The receiver's own refusals say so in the peer, which no producer
	   can set; every other type only the daemons write is refused
	   whoever sent it, root included. */
	if (strcmp(type, "refused") == 0 && peer_len > 16 &&
	    memcmp(peer + peer_len - 16, ",\"wrapped\":true}", 16) == 0)
		return NULL;
	if (mf_submit_type_reserved(type, strlen(type))) {
		snprintf(why, why_size,
		         "uid %lu may not write \"%.64s\" events (only the audit "
		         "daemons do)",
		         uid, type);
		return why;
	}
	r = rule_for(pp, (uid_t)uid);
	if (r == NULL || !rule_allows(r, type)) {
		snprintf(why, why_size,
		         "uid %lu may not write \"%.64s\" events ([audit] producers)", uid, type);
		return why;
	}
	if (recv_us == INT64_MIN) {
		snprintf(why, why_size, "the receipt time in \"peer\" is missing or malformed");
		return why;
	}
	if (!time_ok) {
		snprintf(why, why_size, "the event has no valid time");
		return why;
	}
	skew = time_us > recv_us ? time_us - recv_us : recv_us - time_us;
	if (skew > pp->max_skew_us) {
		snprintf(why, why_size,
		         "the event's time is %lld s %s its receipt ([audit] max_clock_skew)",
		         (long long)(skew / 1000000), time_us < recv_us ? "before" : "after");
		return why;
	}
	return NULL;
}
