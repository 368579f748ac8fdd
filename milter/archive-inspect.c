/*
 * archive-inspect.c - every file inside an attachment, through libarchive.
 *
 * An attachment is an archive when libarchive can read it, whatever its
 * name, type or first bytes say: ZIP is found by its end-of-central-
 * directory record (so bytes in front of it do not hide it), and the other
 * formats libarchive reads natively (tar, cpio, ar, 7z, RAR 4 and 5, cab,
 * ISO 9660, LHA, XAR, WARC), each also inside any compression libarchive
 * decodes itself (gzip, bzip2, xz, lzma, lzip, zstd, lz4, compress, uu).  A
 * lone compressed file is one entry named after what it holds: the gzip
 * header's file name, else the outer name without its suffix
 * ("report.js.gz" holds "report.js").  When the whole buffer is no archive,
 * the signatures of the formats with a long magic number are looked for
 * further in (a RAR or 7z appended to a picture).
 *
 * Every entry is decoded in full, with every method libarchive knows
 * (deflate, deflate64, bzip2, LZMA, xz, PPMd, zstd, ...), and handed to the
 * visitor; an entry that is itself an archive is opened in turn, up to the
 * depth limit.  Nothing is trusted from the headers: sizes are counted as
 * the bytes come.
 *
 * What cannot be looked at is reported to the visitor, never skipped in
 * silence: an encrypted entry, an unknown method, a damaged or truncated
 * archive, and an archive past the limits (decoded bytes per attachment,
 * entries, nesting depth, compression ratio).  Only the formats libarchive
 * reads by itself are enabled: none that runs an outside program, and no
 * mtree (its entries name files on this machine).
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scan.h"

struct walker {
	const struct mf_inspect_limits *lim;
	const struct mf_archive_visitor *vis;
	void *ctx;
	uint64_t decoded; /* bytes decoded so far, all levels */
	size_t entries;   /* entries seen so far, all levels */
	bool stop;        /* a limit was hit: nothing more is opened */
};

static struct archive *reader_new(void)
{
	struct archive *ar = archive_read_new();

	if (ar == NULL)
		return NULL;
	archive_read_support_filter_gzip(ar);
	archive_read_support_filter_bzip2(ar);
	archive_read_support_filter_xz(ar);
	archive_read_support_filter_lzma(ar);
	archive_read_support_filter_lzip(ar);
	archive_read_support_filter_zstd(ar);
	archive_read_support_filter_lz4(ar);
	archive_read_support_filter_compress(ar);
	archive_read_support_filter_uu(ar);
	archive_read_support_filter_rpm(ar);
	archive_read_support_format_zip(ar); /* seekable (central directory) and streaming */
	archive_read_support_format_7zip(ar);
	archive_read_support_format_rar(ar);
	archive_read_support_format_rar5(ar);
	archive_read_support_format_tar(ar);
	archive_read_support_format_cpio(ar);
	archive_read_support_format_ar(ar);
	archive_read_support_format_cab(ar);
	archive_read_support_format_iso9660(ar);
	archive_read_support_format_lha(ar);
	archive_read_support_format_xar(ar);
	archive_read_support_format_warc(ar);
	/* last resort, for a lone compressed file: its content as one entry */
	archive_read_support_format_raw(ar);
	return ar;
}

static const char *why(struct archive *ar, const char *fallback)
{
	const char *s = archive_error_string(ar);

	return s != NULL && *s != '\0' ? s : fallback;
}

/* The name a lone compressed file had: the gzip header's FNAME when there
   is one, else name without its compression suffix. */
static char *inner_name(const unsigned char *d, size_t len, const char *name)
{
	static const char *const suffixes[] = {".gz",  ".gzip", ".bz2",  ".bz",  ".xz", ".lzma",
	                                       ".lz",  ".zst",  ".zstd", ".lz4", ".z",  ".uu",
	                                       ".uue", "-gz",   "_gz",   NULL};
	size_t n = strlen(name), i;

	if (len >= 10 && d[0] == 0x1f && d[1] == 0x8b && d[2] == 8 && (d[3] & 0x08) != 0) {
		size_t off = 10, end;

		if ((d[3] & 0x04) != 0) { /* FEXTRA */
			if (len < 12)
				goto by_suffix;
			off = 12 + (size_t)(d[10] | (d[11] << 8));
		}
		for (end = off; end < len && end - off < 1024 && d[end] != '\0'; end++)
			;
		if (end < len && d[end] == '\0' && end > off)
			return strndup((const char *)d + off, end - off);
	}
by_suffix:
	if (n > 4 && strcasecmp(name + n - 4, ".tgz") == 0)
		return g_strdup_printf("%.*s.tar", (int)(n - 4), name);
	for (i = 0; suffixes[i] != NULL; i++) {
		size_t sl = strlen(suffixes[i]);

		if (n > sl && strcasecmp(name + n - sl, suffixes[i]) == 0)
			return strndup(name, n - sl);
	}
	return strdup(name);
}

static void problem(struct walker *w, const char *where, const char *fmt, ...) MF_PRINTF(3, 4);

static void problem(struct walker *w, const char *where, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->vis->uninspectable(w->ctx, where, msg);
}

static int open_at(struct walker *w, const unsigned char *data, size_t len, const char *name,
                   const char *prefix, int depth, bool strict);

/* Read the current entry into a buffer of its own: everything, within the
   budget.  -1 when it cannot be decoded or a limit is hit (reported). */
static int read_entry(struct walker *w, struct archive *ar, const char *path, uint64_t arc_len,
                      uint64_t *arc_decoded, unsigned char **out_r, size_t *len_r)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	const void *blk;
	size_t blen;
	la_int64_t boff;
	int st;

	while ((st = archive_read_data_block(ar, &blk, &blen, &boff)) == ARCHIVE_OK ||
	       st == ARCHIVE_WARN) {
		size_t need;

		if (boff < 0 || (uint64_t)boff > w->lim->max_total)
			break;
		need = (size_t)boff + blen; /* sparse entries: holes are zeros */
		if (need < len)
			need = len;
		w->decoded += need - len;
		*arc_decoded += need - len;
		if (w->decoded > w->lim->max_total) {
			problem(w, path, "holds more than %llu bytes to decode (inspection limit)",
			        (unsigned long long)w->lim->max_total);
			w->stop = true;
			free(buf);
			return -1;
		}
		if (*arc_decoded > 1024 * 1024 &&
		    *arc_decoded / (arc_len ? arc_len : 1) > w->lim->max_ratio) {
			problem(w, path,
			        "is compressed more than %llu times (inspection limit: an archive "
			        "bomb?)",
			        (unsigned long long)w->lim->max_ratio);
			w->stop = true;
			free(buf);
			return -1;
		}
		if (need > cap) {
			size_t ncap = cap ? cap : 65536;
			unsigned char *nb;

			while (ncap < need)
				ncap *= 2;
			if ((nb = realloc(buf, ncap)) == NULL) {
				problem(w, path, "%s", "ran out of memory while decoding");
				w->stop = true;
				free(buf);
				return -1;
			}
			buf = nb;
			cap = ncap;
		}
		if ((size_t)boff > len)
			memset(buf + len, 0, (size_t)boff - len);
		memcpy(buf + boff, blk, blen);
		len = need;
	}
	if (st != ARCHIVE_EOF) {
		problem(w, path, "cannot be decoded (%s)", why(ar, "damaged or unknown method"));
		free(buf);
		return -1;
	}
	*out_r = buf;
	*len_r = len;
	return 0;
}

/* Walk an opened archive whose first header (st, ent) was read. */
static void walk_entries(struct walker *w, struct archive *ar, struct archive_entry *ent, int st,
                         const unsigned char *data, size_t len, const char *name,
                         const char *prefix, int depth)
{
	bool raw = archive_format(ar) == ARCHIVE_FORMAT_RAW;
	bool zip = (archive_format(ar) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP;
	uint64_t arc_decoded = 0;

	for (; st == ARCHIVE_OK || st == ARCHIVE_WARN; st = archive_read_next_header(ar, &ent)) {
		const char *ename = archive_entry_pathname_utf8(ent);
		char *inner, *path;
		unsigned char *content = NULL;
		size_t clen = 0;

		if (w->stop)
			return;
		if (ename == NULL)
			ename = archive_entry_pathname(ent);
		if (ename == NULL)
			ename = "";
		if (archive_entry_filetype(ent) != AE_IFREG && archive_entry_filetype(ent) != 0)
			continue; /* directories, links, devices: nothing to run */
		inner = raw ? inner_name(data, len, name) : strdup(ename);
		path = *prefix != '\0'
		           ? g_strdup_printf("%s/%s", prefix, inner != NULL ? inner : "")
		           : g_strdup(inner != NULL ? inner : "");
		if (inner == NULL || path == NULL) {
			problem(w, *prefix != '\0' ? prefix : name, "%s", "ran out of memory");
			w->stop = true;
			free(inner);
			g_free(path);
			return;
		}
		if (++w->entries > w->lim->max_entries) {
			problem(w, *prefix != '\0' ? prefix : name,
			        "holds more than %zu files (inspection limit)",
			        w->lim->max_entries);
			w->stop = true;
		} else if (archive_entry_is_encrypted(ent)) {
			problem(w, path, "%s", "is encrypted");
		} else if (read_entry(w, ar, path, len, &arc_decoded, &content, &clen) == 0) {
			struct mf_archive_entry e = {
			    .name = inner,
			    .path = path,
			    .data = content != NULL ? content : (const unsigned char *)"",
			    .len = clen,
			    .depth = depth,
			    .in_zip = zip};

			w->vis->entry(w->ctx, &e);
			if (!w->stop && clen > 0)
				(void)open_at(w, content, clen, inner, path, depth + 1, false);
		}
		free(content);
		free(inner);
		g_free(path);
	}
	if (!w->stop && st != ARCHIVE_EOF) {
		if (archive_read_has_encrypted_entries(ar) > 0)
			problem(w, *prefix != '\0' ? prefix : name, "is encrypted (%s)",
			        why(ar, "encrypted headers"));
		else
			problem(w, *prefix != '\0' ? prefix : name, "is damaged or truncated (%s)",
			        why(ar, "read error"));
	}
}

/* Open data as an archive.  strict: the caller knows it is one (its first
   bytes say so), and a failure to read it is reported.  Returns 1 when it
   was an archive, 0 when not. */
static int open_one(struct walker *w, const unsigned char *data, size_t len, const char *name,
                    const char *prefix, int depth, bool strict)
{
	const char *where = *prefix != '\0' ? prefix : name;
	struct archive *ar;
	struct archive_entry *ent = NULL;
	int st;

	if ((ar = reader_new()) == NULL) {
		problem(w, where, "%s", "ran out of memory");
		w->stop = true;
		return 1;
	}
	if (archive_read_open_memory(ar, data, len) != ARCHIVE_OK) {
		if (strict)
			problem(w, where, "cannot be opened (%s)", why(ar, "not readable"));
		archive_read_free(ar);
		return strict;
	}
	st = archive_read_next_header(ar, &ent);
	if (st != ARCHIVE_OK && st != ARCHIVE_WARN && st != ARCHIVE_EOF) {
		if (strict) {
			if (archive_read_has_encrypted_entries(ar) > 0)
				problem(w, where, "is encrypted (%s)",
				        why(ar, "encrypted headers"));
			else
				problem(w, where, "is damaged or truncated (%s)",
				        why(ar, "read error"));
		}
		archive_read_free(ar);
		return strict;
	}
	if (archive_format(ar) == ARCHIVE_FORMAT_RAW && archive_filter_count(ar) <= 1) {
		/* no archive and no compression: a plain file */
		archive_read_free(ar);
		return 0;
	}
	if (depth > w->lim->max_depth) {
		problem(w, where, "nests archives more than %d deep (inspection limit)",
		        w->lim->max_depth);
		archive_read_free(ar);
		return 1;
	}
	if (st != ARCHIVE_EOF)
		walk_entries(w, ar, ent, st, data, len, name, prefix, depth);
	archive_read_free(ar);
	return 1;
}

/* Signatures long enough not to turn up by chance, looked for past the
   start of a buffer that is no archive as a whole; at is where the
   archive starts relative to the signature (tar: "ustar" at 257). */
static const struct {
	const char *magic;
	size_t len;
	size_t at;
} inner_magic[] = {
    {"PK\x03\x04", 4, 0},
    {"Rar!\x1a\x07", 6, 0},
    {"7z\xbc\xaf\x27\x1c", 6, 0},
    {"MSCF\0\0\0\0", 8, 0},
    {"\xfd"
     "7zXZ\0",
     6, 0},
    {"!<arch>\n", 8, 0},
    {"1AY&SY", 6, 4},
    {"ustar", 5, 257},
    {"070701", 6, 0},
    {"070707", 6, 0},
    {"\x28\xb5\x2f\xfd", 4, 0},
    {"xar!", 4, 0},
};

/* Formats other readers (7z) open and libarchive does not: what they hold
   cannot be inspected, so they are not taken for plain files. */
static const struct {
	const char *magic;
	size_t len;
	size_t off;
	const char *name;
} foreign[] = {
    {"MSWIM\0\0\0", 8, 0, "WIM"},
    {"**ACE**", 7, 7, "ACE"},
    {"\x60\xea", 2, 0, "ARJ"},
    {"hsqs", 4, 0, "SquashFS"},
    {"ZOO ", 4, 0, "ZOO"},
    {"SZDD\x88\xf0\x27\x33", 8, 0, "SZDD"},
    {"KWAJ\x88\xf0\x27\xd1", 8, 0, "KWAJ"},
    {"conectix", 8, 0, "VHD"},
    {"vhdxfile", 8, 0, "VHDX"},
    {"QFI\xfb", 4, 0, "QCOW"},
    {"ITSF", 4, 0, "CHM"},
    {"\x1f\x9d", 2, 0, NULL},
};

static const char *foreign_format(const unsigned char *data, size_t len)
{
	size_t i;

	for (i = 0; i < MF_N_ELEMENTS(foreign); i++) {
		if (len >= foreign[i].off + foreign[i].len &&
		    memcmp(data + foreign[i].off, foreign[i].magic, foreign[i].len) == 0)
			return foreign[i].name;
	}
	return NULL;
}

#define MAX_OFFSET_TRIES 8

static int open_at(struct walker *w, const unsigned char *data, size_t len, const char *name,
                   const char *prefix, int depth, bool strict)
{
	size_t m, off, tries = 0;
	size_t best;
	const char *other;

	if (open_one(w, data, len, name, prefix, depth, strict))
		return 1;
	if ((other = foreign_format(data, len)) != NULL) {
		problem(w, *prefix != '\0' ? prefix : name,
		        "is a %s archive, a format that cannot be inspected", other);
		return 1;
	}
	/* Readers such as 7z find an archive behind other bytes; so does this,
	   from the earliest signature on, a few times at most. */
	off = 1;
	while (!w->stop && off < len && tries < MAX_OFFSET_TRIES) {
		best = len;
		for (m = 0; m < MF_N_ELEMENTS(inner_magic); m++) {
			const unsigned char *hit = data + off;
			size_t at;

			/* the first hit where the archive would start inside data */
			while ((hit = memmem(hit, len - (size_t)(hit - data), inner_magic[m].magic,
			                     inner_magic[m].len)) != NULL &&
			       (size_t)(hit - data) < off + inner_magic[m].at)
				hit++;
			if (hit == NULL)
				continue;
			at = (size_t)(hit - data) - inner_magic[m].at;
			if (at < best)
				best = at;
		}
		if (best >= len)
			break;
		tries++;
		if (open_one(w, data + best, len - best, name, prefix, depth, false))
			return 1;
		off = best + 1;
	}
	return 0;
}

int mf_archive_inspect(const unsigned char *data, size_t len, const char *name,
                       const struct mf_inspect_limits *lim, const struct mf_archive_visitor *vis,
                       void *ctx)
{
	struct walker w = {.lim = lim, .vis = vis, .ctx = ctx};

	return open_at(&w, data, len, name, "", 0,
	               mf_filetype_is_archive(mf_filetype_detect(data, len)));
}
