/*
 * archive-inspect.c - the entries of archives other than ZIP, through libarchive.
 *
 * RAR (4 and 5), 7z, tar, cab and ISO 9660 images, each also inside gzip,
 * bzip2 or xz, and a lone gzip/bzip2/xz-compressed file: what a sender can
 * wrap a program in besides ZIP.  These formats have no central directory
 * worth trusting (or none at all), so every entry is decompressed as it
 * comes, into the same listing zip-inspect.c gives (struct mf_zip): name,
 * size actually decoded, encryption, first bytes.  An entry whose first
 * bytes say it is an archive itself is kept whole for the caller to open.
 *
 * Limits: at most max_entries entries and max_total bytes decoded in all;
 * past either, -1 with *bomb_r set.  An archive that cannot be read to the
 * end (damaged, or its headers encrypted) is -1 with err saying why: it
 * cannot be checked, and the caller judges it as such.  Entries whose data
 * is encrypted are listed with encrypted set and not read.
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include "scan.h"

struct reader {
	struct archive *ar;
	struct mf_zip *out;
	uint64_t max_total;
	size_t max_entries;
	bool *bomb_r;
	struct mf_error *err;
};

static struct mf_zip_entry *new_entry(struct reader *r, const char *name)
{
	struct mf_zip *z = r->out;
	struct mf_zip_entry *e, *n;

	if (z->count >= r->max_entries) {
		*r->bomb_r = true;
		mf_error_set(r->err, "more than %zu entries (limit)", r->max_entries);
		return NULL;
	}
	n = realloc(z->entries, (z->count + 1) * sizeof(*n));
	if (n == NULL) {
		mf_error_set(r->err, "out of memory");
		return NULL;
	}
	z->entries = n;
	e = &z->entries[z->count];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (e->name == NULL) {
		mf_error_set(r->err, "out of memory");
		return NULL;
	}
	z->count++;
	return e;
}

static int append(struct mf_zip_entry *e, size_t *cap, const unsigned char *p, size_t n,
                  struct mf_error *err)
{
	if (e->content_len + n > *cap) {
		size_t ncap = *cap ? *cap : 65536;
		unsigned char *nc;

		while (ncap < e->content_len + n)
			ncap *= 2;
		nc = realloc(e->content, ncap);
		if (nc == NULL)
			return mf_error_set(err, "out of memory");
		e->content = nc;
		*cap = ncap;
	}
	memcpy(e->content + e->content_len, p, n);
	e->content_len += n;
	return 0;
}

/* Decode the current entry: its first bytes always, all of it when they
   say it is an archive, and never more than the budget left. */
static int read_entry(struct reader *r, struct mf_zip_entry *e)
{
	unsigned char buf[65536];
	size_t cap = 0;
	bool decided = false, keep = true;
	la_ssize_t n;

	while ((n = archive_read_data(r->ar, buf, sizeof(buf))) > 0) {
		size_t got = (size_t)n;

		if (r->out->total_usize + got > r->max_total) {
			*r->bomb_r = true;
			return mf_error_set(r->err, "more than %llu bytes decoded (limit)",
			                    (unsigned long long)r->max_total);
		}
		r->out->total_usize += got;
		e->usize += got;
		if (e->head_len < MF_ZIP_HEAD) {
			size_t take =
			    MF_ZIP_HEAD - e->head_len < got ? MF_ZIP_HEAD - e->head_len : got;

			memcpy(e->head + e->head_len, buf, take);
			e->head_len += take;
		}
		if (keep && append(e, &cap, buf, got, r->err) < 0)
			return -1;
		if (!decided && e->head_len == MF_ZIP_HEAD) {
			decided = true;
			keep = mf_filetype_is_archive(mf_filetype_detect(e->head, e->head_len));
		}
		if (decided && !keep && e->content != NULL) {
			free(e->content);
			e->content = NULL;
			e->content_len = 0;
		}
	}
	if (n < 0)
		return mf_error_set(r->err, "entry %s: %s", e->name,
		                    archive_error_string(r->ar) ? archive_error_string(r->ar)
		                                                : "cannot be decoded");
	if (!decided && !mf_filetype_is_archive(mf_filetype_detect(e->head, e->head_len))) {
		free(e->content);
		e->content = NULL;
		e->content_len = 0;
	}
	return 0;
}

static int list_entries(struct reader *r)
{
	struct archive_entry *ent;
	int st;

	while ((st = archive_read_next_header(r->ar, &ent)) == ARCHIVE_OK || st == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname_utf8(ent);
		struct mf_zip_entry *e;

		if (name == NULL)
			name = archive_entry_pathname(ent);
		if (name == NULL)
			name = "";
		if (archive_entry_filetype(ent) != AE_IFREG && archive_entry_filetype(ent) != 0)
			continue; /* directories, links, devices: nothing to run */
		if ((e = new_entry(r, name)) == NULL)
			return -1;
		if (archive_entry_is_encrypted(ent)) {
			e->encrypted = true;
			r->out->any_encrypted = true;
			continue;
		}
		if (read_entry(r, e) < 0)
			return -1;
	}
	if (st != ARCHIVE_EOF) {
		const char *why = archive_error_string(r->ar);

		if (archive_read_has_encrypted_entries(r->ar) > 0) {
			r->out->any_encrypted = true;
			return mf_error_set(r->err, "encrypted (%s)", why ? why : "no details");
		}
		return mf_error_set(r->err, "%s", why ? why : "damaged archive");
	}
	return 0;
}

int mf_archive_list(const unsigned char *data, size_t len, size_t max_entries, uint64_t max_total,
                    struct mf_zip *out, bool *bomb_r, struct mf_error *err)
{
	struct reader r = {.out = out,
	                   .max_total = max_total,
	                   .max_entries = max_entries,
	                   .bomb_r = bomb_r,
	                   .err = err};
	int ret;

	memset(out, 0, sizeof(*out));
	*bomb_r = false;
	out->total_csize = len;
	r.ar = archive_read_new();
	if (r.ar == NULL)
		return mf_error_set(err, "out of memory");
	archive_read_support_filter_gzip(r.ar);
	archive_read_support_filter_bzip2(r.ar);
	archive_read_support_filter_xz(r.ar);
	archive_read_support_format_7zip(r.ar);
	archive_read_support_format_rar(r.ar);
	archive_read_support_format_rar5(r.ar);
	archive_read_support_format_tar(r.ar);
	archive_read_support_format_cab(r.ar);
	archive_read_support_format_iso9660(r.ar);
	/* last resort, for a lone compressed file: its content as one entry */
	archive_read_support_format_raw(r.ar);
	if (archive_read_open_memory(r.ar, data, len) != ARCHIVE_OK) {
		const char *why = archive_error_string(r.ar);

		ret = mf_error_set(err, "%s", why ? why : "not an archive");
	} else {
		ret = list_entries(&r);
	}
	archive_read_free(r.ar);
	if (ret < 0)
		mf_zip_free(out);
	return ret;
}
