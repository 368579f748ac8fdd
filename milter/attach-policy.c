/*
 * attach-policy.c - judge one decoded attachment.
 *
 * Checks, in this order, and keeps the strongest action found:
 *   - the decoded size against max_attachment_size (size_action);
 *   - the file name's extension against blocked_extensions (trailing dots
 *     and spaces ignored, so "invoice.pdf.exe " is an .exe) and the content
 *     against blocked_types (filetype.c: an executable renamed .pdf is
 *     still an executable) -> blocked_action;
 *   - archives, when scan_archives is on (ZIP by zip-inspect.c; RAR, 7z,
 *     tar, cab, ISO 9660 and gzip/bzip2/xz by archive-inspect.c): every
 *     entry's name and first bytes as above, nested archives up to
 *     max_archive_depth; an archive with encrypted entries, or one that
 *     cannot be read, cannot be checked -> encrypted_archive_action; too
 *     many entries, too large a size or too high a compression ratio is an
 *     archive bomb -> limits_action.
 * The attachment gets its type, its action and a reason a sender can act
 * on.  No errors: what cannot be examined is judged, never let through
 * unexamined without saying so.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scan.h"

static char *fmt_size(char *buf, size_t n, uint64_t v)
{
	if (v >= 1024 * 1024)
		snprintf(buf, n, "%.1f MB", (double)v / (1024.0 * 1024.0));
	else if (v >= 1024)
		snprintf(buf, n, "%.1f KB", (double)v / 1024.0);
	else
		snprintf(buf, n, "%llu bytes", (unsigned long long)v);
	return buf;
}

static void judge(struct mf_attachment *a, enum mf_action act, char *reason)
{
	if (reason == NULL)
		return;
	if (a->reason == NULL || act > a->action) {
		free(a->reason);
		a->reason = reason;
		a->action = act;
	} else {
		free(reason);
	}
}

/* Is name's extension blocked?  Returns the extension or NULL. */
static const char *blocked_ext(const struct mf_policy *pol, const char *name, char *ext,
                               size_t extsz)
{
	size_t len = strlen(name), i;
	const char *dot;

	while (len > 0 && (name[len - 1] == '.' || name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	dot = NULL;
	for (i = len; i > 0; i--) {
		if (name[i - 1] == '.') {
			dot = name + i - 1;
			break;
		}
		if (name[i - 1] == '/' || name[i - 1] == '\\')
			break;
	}
	if (dot == NULL || (size_t)(name + len - dot - 1) >= extsz)
		return NULL;
	for (i = 0; dot + 1 + i < name + len; i++)
		ext[i] = (char)tolower((unsigned char)dot[1 + i]);
	ext[i] = '\0';
	for (i = 0; pol->blocked_extensions[i]; i++) {
		if (strcmp(pol->blocked_extensions[i], ext) == 0)
			return ext;
	}
	return NULL;
}

/* Nested archives are decoded in full; all of them together, per
   attachment, may take at most this many bytes (so a thousand entries of
   64 MB each cannot keep the milter busy for minutes). */
#define NESTED_BUDGET (64ULL * 1024 * 1024)

/* List the archive data/len of type t into *zip.  0, or -1 after judging
   why it could not be listed (a bomb, or it cannot be checked). */
static int list_archive(const struct mf_policy *pol, struct mf_attachment *a, const char *outer,
                        enum mf_filetype t, const unsigned char *data, size_t len, int depth,
                        uint64_t *budget, struct mf_zip *zip)
{
	struct mf_error err;
	bool bomb = false;
	uint64_t max;
	int ret;

	if (t == MF_FT_ZIP || t == MF_FT_JAR) {
		ret = mf_zip_open(data, len, pol->max_archive_entries, zip, &err);
		bomb = ret < 0 && strstr(err.msg, "entries (limit") != NULL;
	} else {
		/* Everything is decoded here: no more than the size limit, the
		   compression ratio allows, and (nested) the budget left. */
		uint64_t ratio = (uint64_t)pol->max_archive_ratio, by_ratio;

		by_ratio =
		    ratio > 0 && len > UINT64_MAX / ratio ? UINT64_MAX : (uint64_t)len * ratio;
		if (by_ratio < 1024 * 1024)
			by_ratio = 1024 * 1024;
		max = pol->max_archive_size < by_ratio ? pol->max_archive_size : by_ratio;
		if (depth > 0 && max > *budget)
			max = *budget;
		ret = mf_archive_list(data, len, pol->max_archive_entries, max, zip, &bomb, &err);
		if (ret == 0 && depth > 0)
			*budget -= zip->total_usize;
	}
	if (ret == 0)
		return 0;
	if (bomb) {
		judge(a, pol->limits_action,
		      g_strdup_printf("archive %s is an archive bomb: %s", outer, err.msg));
	} else {
		a->encrypted = true;
		judge(a, pol->encrypted_action,
		      g_strdup_printf("archive %s cannot be checked (%s); send the files unpacked",
		                      outer, err.msg));
	}
	return -1;
}

static void check_archive(const struct mf_policy *pol, struct mf_attachment *a, const char *outer,
                          enum mf_filetype type, const unsigned char *data, size_t len, int depth,
                          uint64_t *budget)
{
	struct mf_zip zip;
	struct mf_error err;
	size_t i;

	if (list_archive(pol, a, outer, type, data, len, depth, budget, &zip) < 0)
		return;
	if (zip.is_jar && depth == 0)
		a->type = MF_FT_JAR;
	if (zip.is_jar && pol->blocked_types[MF_FT_JAR]) {
		a->executable = true;
		judge(
		    a, pol->blocked_action,
		    g_strdup_printf("%s is a Java program, which is not accepted by mail", outer));
	}
	if (zip.total_usize > pol->max_archive_size ||
	    (zip.total_usize > 1024 * 1024 &&
	     zip.total_usize / (zip.total_csize ? zip.total_csize : 1) > pol->max_archive_ratio)) {
		char s1[32], s2[32];

		judge(a, pol->limits_action,
		      g_strdup_printf("archive %s is an archive bomb: %s packed into %s", outer,
		                      fmt_size(s1, sizeof(s1), zip.total_usize),
		                      fmt_size(s2, sizeof(s2), zip.total_csize)));
		mf_zip_free(&zip);
		return;
	}
	for (i = 0; i < zip.count; i++) {
		struct mf_zip_entry *e = &zip.entries[i];
		char ext[32];
		enum mf_filetype t;

		if (e->name[0] != '\0' && e->name[strlen(e->name) - 1] == '/')
			continue; /* directory */
		if (e->encrypted) {
			a->encrypted = true;
			free(a->inner);
			a->inner = strdup(e->name);
			judge(a, pol->encrypted_action,
			      g_strdup_printf("archive %s is encrypted (entry %s) and cannot be "
			                      "checked for dangerous content; send it unencrypted "
			                      "or share it by another way",
			                      outer, e->name));
			continue;
		}
		if (blocked_ext(pol, e->name, ext, sizeof(ext)) != NULL) {
			a->executable = true;
			free(a->inner);
			a->inner = strdup(e->name);
			judge(a, pol->blocked_action,
			      g_strdup_printf("archive %s contains %s: files of type .%s are not "
			                      "accepted by mail",
			                      outer, e->name, ext));
			continue;
		}
		t = mf_filetype_detect(e->head, e->head_len);
		if (t != MF_FT_UNKNOWN && pol->blocked_types[t]) {
			a->executable = true;
			free(a->inner);
			a->inner = strdup(e->name);
			judge(a, pol->blocked_action,
			      g_strdup_printf("archive %s contains %s, which is a %s (whatever its "
			                      "name says); such files are not accepted by mail",
			                      outer, e->name, mf_filetype_name(t)));
			continue;
		}
		if (mf_filetype_is_archive(t)) {
			unsigned char *inner = NULL;
			size_t inner_len;
			uint64_t max = pol->max_archive_size;

			if (max > *budget)
				max = *budget;
			if (depth + 1 > pol->max_archive_depth) {
				judge(a, pol->limits_action,
				      g_strdup_printf("archive %s nests archives more than %d deep",
				                      outer, pol->max_archive_depth));
				continue;
			}
			if (type != MF_FT_ZIP && type != MF_FT_JAR) {
				/* decoded while listing, already counted */
				check_archive(pol, a, e->name, t, e->content, e->content_len,
				              depth + 1, budget);
				continue;
			}
			if (mf_zip_extract(data, len, e, (size_t)max, &inner, &inner_len, &err) <
			    0) {
				judge(
				    a, pol->limits_action,
				    g_strdup_printf("archive %s is an archive bomb or damaged: %s",
				                    outer, err.msg));
				mf_zip_free(&zip);
				return;
			}
			*budget -= inner_len;
			check_archive(pol, a, e->name, t, inner, inner_len, depth + 1, budget);
			free(inner);
		}
	}
	mf_zip_free(&zip);
}

void mf_attach_policy(const struct mf_policy *pol, GMimeObject *part, const unsigned char *data,
                      size_t len, struct mf_attachment *a)
{
	const char *name = a->filename != NULL ? a->filename : "(unnamed attachment)";
	char ext[32], s1[32], s2[32];

	(void)part;
	a->size = len;
	a->type = mf_filetype_detect(data, len);
	a->action = MF_ACT_ACCEPT;
	if (pol->max_attachment_size > 0 && a->size > pol->max_attachment_size)
		judge(a, pol->size_action,
		      g_strdup_printf("attachment %s is %s, over the limit of %s per attachment; "
		                      "please share large files by a link or another channel",
		                      name, fmt_size(s1, sizeof(s1), a->size),
		                      fmt_size(s2, sizeof(s2), pol->max_attachment_size)));
	if (a->filename != NULL && blocked_ext(pol, a->filename, ext, sizeof(ext)) != NULL) {
		a->executable = true;
		judge(a, pol->blocked_action,
		      g_strdup_printf("attachment %s: files of type .%s are not accepted by mail; "
		                      "share it by another way if the recipient expects it",
		                      name, ext));
	}
	if (a->type != MF_FT_UNKNOWN && pol->blocked_types[a->type]) {
		a->executable = true;
		judge(a, pol->blocked_action,
		      g_strdup_printf("attachment %s is a %s (whatever its name says); such files "
		                      "are not accepted by mail",
		                      name, mf_filetype_name(a->type)));
	}
	if (mf_filetype_is_archive(a->type) && a->type != MF_FT_JAR && pol->scan_archives) {
		uint64_t budget = NESTED_BUDGET;

		check_archive(pol, a, name, a->type, data, len, 0, &budget);
	}
}
