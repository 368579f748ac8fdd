/*
 * attach-policy.c - judge one decoded attachment.
 *
 * Checks, in this order, and keeps the strongest action found:
 *   - the decoded size against max_attachment_size (size_action);
 *   - the file name's extension against blocked_extensions (trailing dots
 *     and spaces ignored, so "invoice.pdf.exe " is an .exe) and the content
 *     against blocked_types (filetype.c: an executable renamed .pdf is
 *     still an executable) -> blocked_action;
 *   - when scan_archives is on, every file inside, if the attachment is an
 *     archive or a compressed file of any kind libarchive reads, wherever
 *     it sits in the attachment (archive-inspect.c): each file's name and
 *     content as above, nested archives up to max_archive_depth, a Java
 *     manifest in a ZIP -> blocked_action.  What cannot be inspected (an
 *     encrypted or damaged entry, an unknown method, past max_archive_size,
 *     max_archive_entries, max_archive_depth or max_archive_ratio) is noted
 *     in a->uninspectable; scan.c applies uninspectable_action or
 *     uninspectable_submission_action to it, by the mail's direction.
 * The attachment gets its type, its action and a reason a sender can act
 * on.  No errors: what cannot be examined is judged, never let through
 * unexamined without saying so.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

struct inspect {
	const struct mf_policy *pol;
	struct mf_attachment *a;
	const char *outer;
};

static void set_inner(struct mf_attachment *a, const char *path)
{
	free(a->inner);
	a->inner = strdup(path);
}

/* One file inside the attachment: its name and its content. */
static void inspect_entry(void *ctx, const struct mf_archive_entry *e)
{
	struct inspect *in = ctx;
	const struct mf_policy *pol = in->pol;
	struct mf_attachment *a = in->a;
	char ext[32];
	enum mf_filetype t;

	if (e->in_zip && strcasecmp(e->name, "META-INF/MANIFEST.MF") == 0) {
		if (e->depth == 0 && a->type == MF_FT_ZIP)
			a->type = MF_FT_JAR;
		if (pol->blocked_types[MF_FT_JAR]) {
			a->executable = true;
			set_inner(a, e->path);
			judge(a, pol->blocked_action,
			      g_strdup_printf("%s is a Java program, which is not accepted by mail",
			                      e->depth == 0 ? in->outer : e->path));
		}
	}
	if (blocked_ext(pol, e->name, ext, sizeof(ext)) != NULL) {
		a->executable = true;
		set_inner(a, e->path);
		judge(a, pol->blocked_action,
		      g_strdup_printf("%s contains %s: files of type .%s are not accepted by mail",
		                      in->outer, e->path, ext));
		return;
	}
	t = mf_filetype_detect(e->data, e->len);
	if (t != MF_FT_UNKNOWN && pol->blocked_types[t]) {
		a->executable = true;
		set_inner(a, e->path);
		judge(a, pol->blocked_action,
		      g_strdup_printf("%s contains %s, which is a %s (whatever its name says); "
		                      "such files are not accepted by mail",
		                      in->outer, e->path, mf_filetype_name(t)));
	}
}

/* Something inside could not be looked at: the first reason is kept. */
static void inspect_problem(void *ctx, const char *where, const char *why)
{
	struct inspect *in = ctx;
	struct mf_attachment *a = in->a;

	if (strstr(why, "encrypted") != NULL)
		a->encrypted = true;
	if (a->uninspectable != NULL)
		return;
	set_inner(a, where);
	if (strcmp(where, in->outer) == 0)
		a->uninspectable =
		    g_strdup_printf("attachment %s cannot be inspected: it %s; send the files "
		                    "unpacked and unencrypted, or share them by another way",
		                    in->outer, why);
	else
		a->uninspectable =
		    g_strdup_printf("attachment %s cannot be inspected: %s inside it %s; send the "
		                    "files unpacked and unencrypted, or share them by another way",
		                    in->outer, where, why);
}

static const struct mf_archive_visitor visitor = {.entry = inspect_entry,
                                                  .uninspectable = inspect_problem};

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
	if (pol->scan_archives) {
		struct inspect in = {.pol = pol, .a = a, .outer = name};
		struct mf_inspect_limits lim = {.max_total = pol->max_archive_size,
		                                .max_entries = pol->max_archive_entries,
		                                .max_depth = pol->max_archive_depth,
		                                .max_ratio = pol->max_archive_ratio};

		(void)mf_archive_inspect(data, len, name, &lim, &visitor, &in);
	}
}

struct embedded_ctx {
	const struct mf_policy *pol;
	GMimeObject *part, *parent;
	struct mf_verdict *v;
	int failed;
};

static void embedded_found(void *ctx, const struct mf_embedded *e)
{
	struct embedded_ctx *c = ctx;
	struct mf_verdict *v = c->v;
	struct mf_attachment *a;

	if (c->failed)
		return;
	a = realloc(v->attachments, (v->nattachments + 1) * sizeof(*a));
	if (a == NULL) {
		c->failed = -1;
		return;
	}
	v->attachments = a;
	a = &v->attachments[v->nattachments++];
	memset(a, 0, sizeof(*a));
	a->filename = strdup(e->name);
	a->content_type = g_strdup_printf("application/x-%s", e->encoding);
	a->part = g_object_ref(c->part);
	a->parent = c->parent != NULL ? g_object_ref(c->parent) : NULL;
	mf_attach_policy(c->pol, c->part, e->data, e->len, a);
	if (e->damaged && a->uninspectable == NULL)
		a->uninspectable = g_strdup_printf(
		    "the %s block %s in the message text cannot be inspected: it is damaged, "
		    "truncated or past max_archive_size; send the file as a normal attachment",
		    e->encoding, e->name);
}

int mf_embedded_attachments(const struct mf_policy *pol, GMimeObject *part, GMimeObject *parent,
                            const unsigned char *data, size_t len, struct mf_verdict *v)
{
	struct embedded_ctx c = {.pol = pol, .part = part, .parent = parent, .v = v};

	/* as many blocks as an archive may hold files, and as many bytes */
	(void)mf_embedded_scan(data, len, pol->max_archive_entries, pol->max_archive_size,
	                       embedded_found, &c);
	return c.failed;
}
