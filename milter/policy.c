/*
 * policy.c - the [milter] section of mailfort.conf as a struct mf_policy.
 *
 * mf_policy_new reads every key once, checks what the generic config
 * parser cannot (decimal thresholds, "off", the list of content types, the
 * octal socket mode) and returns NULL with an error naming the key.  A
 * policy is immutable once built and reference counted, so a reload can
 * replace it while messages that started with the old one finish with it.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mf-config.h"
#include "scan.h"

#define S "milter"

const char *mf_action_name(enum mf_action a)
{
	switch (a) {
	case MF_ACT_ACCEPT:
		return "accept";
	case MF_ACT_STRIP:
		return "strip";
	case MF_ACT_HOLD:
		return "hold";
	case MF_ACT_REJECT:
		return "reject";
	case MF_ACT_TEMPFAIL:
		return "tempfail";
	}
	return "unknown";
}

static enum mf_action action_from(const char *s)
{
	if (s == NULL)
		return MF_ACT_TEMPFAIL;
	if (strcmp(s, "accept") == 0)
		return MF_ACT_ACCEPT;
	if (strcmp(s, "strip") == 0)
		return MF_ACT_STRIP;
	if (strcmp(s, "hold") == 0)
		return MF_ACT_HOLD;
	if (strcmp(s, "reject") == 0)
		return MF_ACT_REJECT;
	return MF_ACT_TEMPFAIL;
}

static int parse_score(const struct mf_config *cfg, const char *key, bool allow_off, double *out,
                       struct mf_error *err)
{
	const char *s = mf_config_str(cfg, S, key);
	char *end;
	double d;

	if (s == NULL || *s == '\0')
		return mf_error_set(err, "[milter] %s: empty (a number%s)", key,
		                    allow_off ? " or 'off'" : "");
	if (allow_off && strcasecmp(s, "off") == 0) {
		*out = -1.0;
		return 0;
	}
	errno = 0;
	d = strtod(s, &end);
	while (*end == ' ')
		end++;
	if (errno != 0 || *end != '\0' || !isfinite(d) || d < 0 || d > 1000)
		return mf_error_set(err, "[milter] %s: '%s' is not a number between 0 and 1000%s",
		                    key, s, allow_off ? " (or 'off')" : "");
	*out = d;
	return 0;
}

/* Split "a, b,c" into a NULL-terminated array of lower-case words. */
static char **split_list(const char *s, bool strip_dot)
{
	size_t n = 1, k = 0;
	const char *p;
	char **v;

	if (s == NULL)
		s = "";
	for (p = s; *p; p++)
		if (*p == ',' || *p == ' ')
			n++;
	v = calloc(n + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	p = s;
	while (*p) {
		const char *start;
		size_t len, i;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (strip_dot)
			while (*p == '.' || *p == '*')
				p++;
		start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		len = (size_t)(p - start);
		if (len == 0)
			continue;
		v[k] = strndup(start, len);
		if (v[k] == NULL)
			break;
		for (i = 0; i < len; i++)
			v[k][i] = (char)tolower((unsigned char)v[k][i]);
		k++;
	}
	return v;
}

static void free_list(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static char *dup_str(const struct mf_config *cfg, const char *key)
{
	const char *s = mf_config_str(cfg, S, key);

	return strdup(s != NULL ? s : "");
}

static void policy_free(struct mf_policy *p)
{
	free(p->socket);
	free(p->socket_group);
	free(p->user);
	free(p->pid_file);
	free(p->tmp_dir);
	free(p->trusted_authserv_id);
	free_list(p->disabled_rules);
	free_list(p->blocked_extensions);
	mf_iconv_pool_free(&p->iconv_pool);
	free(p);
}

struct mf_policy *mf_policy_new(const struct mf_config *cfg, struct mf_error *err)
{
	struct mf_policy *p = calloc(1, sizeof(*p));
	const char *s, *q;
	char *end;
	unsigned long mode;
	size_t i;
	char **types;

	if (p == NULL) {
		mf_error_set(err, "out of memory");
		return NULL;
	}
	/* without it, every part's converter is opened and closed */
	p->iconv_pool = mf_iconv_pool_new();
	p->refcount = 1;
	p->socket = dup_str(cfg, "socket");
	p->socket_group = dup_str(cfg, "socket_group");
	p->user = dup_str(cfg, "user");
	p->pid_file = dup_str(cfg, "pid_file");
	p->tmp_dir = dup_str(cfg, "tmp_dir");
	p->trusted_authserv_id = dup_str(cfg, "trusted_authserv_id");
	p->disabled_rules = split_list(mf_config_str(cfg, S, "disabled_rules"), false);
	p->blocked_extensions = split_list(mf_config_str(cfg, S, "blocked_extensions"), true);
	if (p->socket == NULL || p->socket_group == NULL || p->user == NULL ||
	    p->pid_file == NULL || p->tmp_dir == NULL || p->trusted_authserv_id == NULL ||
	    p->disabled_rules == NULL || p->blocked_extensions == NULL) {
		mf_error_set(err, "out of memory");
		goto fail;
	}
	if (strncmp(p->socket, "unix:", 5) != 0 && strncmp(p->socket, "local:", 6) != 0 &&
	    strncmp(p->socket, "inet:", 5) != 0 && strncmp(p->socket, "inet6:", 6) != 0) {
		mf_error_set(
		    err, "[milter] socket: '%s' must start with unix:, inet: or inet6:", p->socket);
		goto fail;
	}
	s = mf_config_str(cfg, S, "socket_mode");
	errno = 0;
	mode = strtoul(s != NULL ? s : "", &end, 8);
	if (s == NULL || *s == '\0' || *end != '\0' || errno != 0 || mode > 0777) {
		mf_error_set(err, "[milter] socket_mode: '%s' is not an octal mode like 0660",
		             s != NULL ? s : "");
		goto fail;
	}
	p->socket_mode = (unsigned)mode;
	p->timeout = (int)mf_config_int(cfg, S, "timeout");
	p->default_action = action_from(mf_config_str(cfg, S, "default_action"));
	p->spill_threshold = (uint64_t)mf_config_int(cfg, S, "spill_threshold");
	p->max_message_size = (uint64_t)mf_config_int(cfg, S, "max_message_size");

	p->spam = mf_config_bool(cfg, S, "spam");
	p->add_headers = mf_config_bool(cfg, S, "add_headers");
	if (parse_score(cfg, "spam_threshold", false, &p->spam_threshold, err) < 0 ||
	    parse_score(cfg, "hold_threshold", true, &p->hold_threshold, err) < 0 ||
	    parse_score(cfg, "reject_threshold", true, &p->reject_threshold, err) < 0 ||
	    parse_score(cfg, "bayes_weight", false, &p->bayes_weight, err) < 0)
		goto fail;
	if (p->hold_threshold >= 0 && p->hold_threshold < p->spam_threshold) {
		mf_error_set(err, "[milter] hold_threshold (%.1f) is below spam_threshold (%.1f)",
		             p->hold_threshold, p->spam_threshold);
		goto fail;
	}
	if (p->reject_threshold >= 0 && p->reject_threshold < p->spam_threshold) {
		mf_error_set(err, "[milter] reject_threshold (%.1f) is below spam_threshold (%.1f)",
		             p->reject_threshold, p->spam_threshold);
		goto fail;
	}
	p->min_training = (int)mf_config_int(cfg, S, "min_training");
	p->model_refresh = (int)mf_config_int(cfg, S, "model_refresh");

	p->max_attachment_size = (uint64_t)mf_config_int(cfg, S, "max_attachment_size");
	p->max_total_attachment_size = (uint64_t)mf_config_int(cfg, S, "max_total_attachment_size");
	p->size_action = action_from(mf_config_str(cfg, S, "size_action"));
	p->blocked_action = action_from(mf_config_str(cfg, S, "blocked_action"));
	p->uninspectable_action = action_from(mf_config_str(cfg, S, "uninspectable_action"));
	p->uninspectable_submission_action =
	    action_from(mf_config_str(cfg, S, "uninspectable_submission_action"));
	types = split_list(mf_config_str(cfg, S, "blocked_types"), false);
	if (types == NULL) {
		mf_error_set(err, "out of memory");
		goto fail;
	}
	for (i = 0; types[i]; i++) {
		enum mf_filetype t = mf_filetype_from_name(types[i], strlen(types[i]));

		if (t == MF_FT_COUNT || t == MF_FT_UNKNOWN) {
			mf_error_set(err,
			             "[milter] blocked_types: unknown type '%s' (known: "
			             "windows-executable, elf-executable, macho-executable, "
			             "shell-script, windows-shortcut, java-archive, zip, rar, 7z, "
			             "gzip, pdf, ole-document, png, jpeg, gif, html)",
			             types[i]);
			free_list(types);
			goto fail;
		}
		p->blocked_types[t] = true;
	}
	free_list(types);
	p->scan_archives = mf_config_bool(cfg, S, "scan_archives");
	p->max_archive_entries = (size_t)mf_config_int(cfg, S, "max_archive_entries");
	p->max_archive_ratio = (uint64_t)mf_config_int(cfg, S, "max_archive_ratio");
	p->max_archive_size = (uint64_t)mf_config_int(cfg, S, "max_archive_size");
	p->max_archive_depth = (int)mf_config_int(cfg, S, "max_archive_depth");
	p->max_mime_depth = (int)mf_config_int(cfg, S, "max_mime_depth");
	p->max_mime_parts = (int)mf_config_int(cfg, S, "max_mime_parts");
	p->max_header_size = (uint64_t)mf_config_int(cfg, S, "max_header_size");
	p->limits_action = action_from(mf_config_str(cfg, S, "limits_action"));
	p->ambiguous_action = action_from(mf_config_str(cfg, S, "ambiguous_mime_action"));
	p->max_scan_text = (uint64_t)mf_config_int(cfg, S, "max_scan_text");
	for (q = p->user; *q; q++) {
		if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-' && *q != '.') {
			mf_error_set(err, "[milter] user: '%s' is not a user name", p->user);
			goto fail;
		}
	}
	return p;
fail:
	policy_free(p);
	return NULL;
}

struct mf_policy *mf_policy_ref(struct mf_policy *p)
{
	if (p != NULL)
		__atomic_add_fetch(&p->refcount, 1, __ATOMIC_SEQ_CST);
	return p;
}

void mf_policy_unref(struct mf_policy **pp)
{
	struct mf_policy *p = *pp;

	*pp = NULL;
	if (p != NULL && __atomic_sub_fetch(&p->refcount, 1, __ATOMIC_SEQ_CST) == 0)
		policy_free(p);
}

bool mf_policy_rule_enabled(const struct mf_policy *p, const char *rule)
{
	size_t i;

	for (i = 0; p->disabled_rules[i]; i++) {
		if (strcasecmp(p->disabled_rules[i], rule) == 0)
			return false;
	}
	return true;
}
