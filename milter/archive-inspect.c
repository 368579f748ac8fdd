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
#include <locale.h>
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

/* Which readers to enable: all, the compression filters with the raw
   format only (a compressed stream, whatever it holds), or ZIP's local
   headers only (what follows one signature, not the central directory). */
enum readers { READ_ALL, READ_RAW, READ_ZIP_LOCAL };

static struct archive *reader_new_for(enum readers which)
{
	struct archive *ar = archive_read_new();

	if (ar == NULL)
		return NULL;
	if (which == READ_ZIP_LOCAL) {
		archive_read_support_format_zip_streamable(ar);
		return ar;
	}
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
	if (which == READ_RAW) {
		archive_read_support_format_raw(ar);
		return ar;
	}
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
		if (blen > 0) /* a sparse or empty block may come without a pointer */
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

/* An entry's name in UTF-8 (g_free it), whatever the locale: libarchive
   converts stored names to UTF-8 or to the locale's multibyte form, and
   both fail for a name outside ASCII under the C locale the milter runs
   in; the wide-character form does not.  A name stored as bytes in an
   unknown character set (a legacy ZIP) is taken as it is, so that its
   ASCII extension still counts.  NULL when there is no name at all. */
static char *entry_name(struct archive_entry *ent)
{
	const char *s = archive_entry_pathname_utf8(ent);
	const wchar_t *wcs;

	if (s != NULL)
		return g_strdup(s);
	if ((wcs = archive_entry_pathname_w(ent)) != NULL) {
		char *u = g_ucs4_to_utf8((const gunichar *)wcs, -1, NULL, NULL, NULL);

		if (u != NULL)
			return u;
	}
	s = archive_entry_pathname(ent);
	return s != NULL ? g_strdup(s) : NULL;
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
		char *inner, *path;
		unsigned char *content = NULL;
		size_t clen = 0;

		if (w->stop)
			return;
		if (archive_entry_filetype(ent) != AE_IFREG && archive_entry_filetype(ent) != 0)
			continue; /* directories, links, devices: nothing to run */
		inner = raw ? inner_name(data, len, name) : entry_name(ent);
		if (inner == NULL && !raw) {
			problem(w, *prefix != '\0' ? prefix : name, "%s",
			        "holds a file whose name cannot be read");
			continue;
		}
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
				(void)open_at(
				    w, content, clen, inner, path, depth + 1,
				    mf_filetype_is_archive(mf_filetype_detect(content, clen)));
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
                    const char *prefix, int depth, bool strict, enum readers which)
{
	const char *where = *prefix != '\0' ? prefix : name;
	struct archive *ar;
	struct archive_entry *ent = NULL;
	int st;

	if ((ar = reader_new_for(which)) == NULL) {
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
		/* encrypted headers (7z -mhe, RAR -hp): an archive, whatever the
		   caller thought */
		if (strict || archive_read_has_encrypted_entries(ar) > 0) {
			if (archive_read_has_encrypted_entries(ar) > 0)
				problem(w, where, "is encrypted (%s)",
				        why(ar, "encrypted headers"));
			else
				problem(w, where, "is damaged or truncated (%s)",
				        why(ar, "read error"));
		}
		strict = strict || archive_read_has_encrypted_entries(ar) > 0;
		archive_read_free(ar);
		return strict;
	}
	if ((archive_format(ar) == ARCHIVE_FORMAT_RAW && archive_filter_count(ar) <= 1) ||
	    (st == ARCHIVE_EOF && !strict)) {
		/* no archive and no compression: a plain file; or a reader that
		   took it for an archive with nothing in it (a ZIP central
		   directory that leads nowhere): the search goes on */
		archive_read_free(ar);
		return 0;
	}
	if (depth > w->lim->max_depth) {
		problem(w, where, "nests archives more than %d deep (inspection limit)",
		        w->lim->max_depth);
		archive_read_free(ar);
		return 1;
	}
	if (archive_format(ar) == ARCHIVE_FORMAT_RAW && archive_filter_count(ar) > 2) {
		/* compressed more than once (a gzip inside a gzip): libarchive
		   peels every layer at once, and the names the inner gzip headers
		   carry would be lost; so only the outer layer is decoded here,
		   and what it holds is opened in turn */
		int outer = archive_filter_code(ar, archive_filter_count(ar) - 2);

		archive_read_free(ar);
		if ((ar = archive_read_new()) == NULL ||
		    archive_read_append_filter(ar, outer) != ARCHIVE_OK ||
		    archive_read_support_format_raw(ar) != ARCHIVE_OK ||
		    archive_read_open_memory(ar, data, len) != ARCHIVE_OK ||
		    ((st = archive_read_next_header(ar, &ent)) != ARCHIVE_OK &&
		     st != ARCHIVE_WARN)) {
			problem(w, where, "cannot be opened (%s)",
			        ar != NULL ? why(ar, "not readable") : "out of memory");
			if (ar != NULL)
				archive_read_free(ar);
			return 1;
		}
	}
	if (st != ARCHIVE_EOF)
		walk_entries(w, ar, ent, st, data, len, name, prefix, depth);
	archive_read_free(ar);
	return 1;
}

/* Formats other readers (7z) open and libarchive does not: what they hold
   cannot be inspected, so they are not taken for plain files.  Those 7z
   also finds behind other bytes (inside: long signatures) are looked for
   there too, by the offset search below. */
static const struct {
	const char *magic;
	size_t len;
	size_t off; /* of the signature from the start of the archive */
	const char *name;
	bool inside;
} foreign[] = {
    {"MSWIM\0\0\0", 8, 0, "WIM", true},
    {"**ACE**", 7, 7, "ACE", true},
    {"\x60\xea", 2, 0, "ARJ", false},
    {"hsqs", 4, 0, "SquashFS", false},
    {"ZOO ", 4, 0, "ZOO", false},
    {"SZDD\x88\xf0\x27\x33", 8, 0, "SZDD", true},
    {"KWAJ\x88\xf0\x27\xd1", 8, 0, "KWAJ", true},
    {"conectix", 8, 0, "VHD", true},
    {"vhdxfile", 8, 0, "VHDX", true},
    {"QFI\xfb", 4, 0, "QCOW", false},
    {"ITSF\x03\0\0\0", 8, 0, "CHM", true},
    {"ITOLITLS", 8, 0, "HXS", true},
    {"\x1f\x9d", 2, 0, NULL, false},
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

/*
 * Archives behind other bytes.  7z, asked to open a file that is no archive
 * as a whole, searches it for the signatures of the formats it knows and
 * opens what it finds there (a gzip stream after 4 KB of anything, a RAR
 * appended to a picture); a mail client that hands the file to 7z shows
 * what is inside.  So every offset of a buffer that is no archive is looked
 * at, for the signatures of every format both 7z and libarchive read.
 *
 * A signature turns up by chance in any large file, so a hit is believed
 * only after its header checks out (check()) and libarchive decoded the
 * start of it without an error (probe()).  What is believed is
 * then read like any archive: a failure past that point is reported.  The
 * number of hits decoded and of archives opened is bounded; past a bound
 * the buffer is uninspectable, because what was not looked at may be what
 * 7z opens.
 */
enum {
	SIG_GZIP,
	SIG_ZSTD,
	SIG_ZIP,
	SIG_RAR,
	SIG_7Z,
	SIG_CAB,
	SIG_XZ,
	SIG_BZIP2,
	SIG_TAR,
	SIG_CPIO,
	SIG_AR,
	SIG_XAR,
	SIG_ISO
};

static const struct {
	const char *magic;
	size_t len;
	size_t at; /* the signature's offset from the start of the archive */
} sigs[] = {
    [SIG_GZIP] = {"\x1f\x8b\x08", 3, 0},
    [SIG_ZSTD] = {"\x28\xb5\x2f\xfd", 4, 0},
    [SIG_ZIP] = {"PK\x03\x04", 4, 0},
    [SIG_RAR] = {"Rar!\x1a\x07", 6, 0},
    [SIG_7Z] = {"7z\xbc\xaf\x27\x1c", 6, 0},
    [SIG_CAB] = {"MSCF\0\0\0\0", 8, 0},
    [SIG_XZ] = {"\xfd"
                "7zXZ\0",
                6, 0},
    [SIG_BZIP2] = {"BZh", 3, 0},
    [SIG_TAR] = {"ustar", 5, 257},
    [SIG_CPIO] = {"07070", 5, 0},
    [SIG_AR] = {"!<arch>\n", 8, 0},
    [SIG_XAR] = {"xar!\0\x1c", 6, 0},
    [SIG_ISO] = {"\x01"
                 "CD001\x01",
                 7, 32768},
};

/* Hits past their header check that are decoded, and archives opened, per
   buffer; more of either makes it uninspectable. */
#define MAX_PROBES   64
#define MAX_EMBEDDED 8
#define PROBE_BYTES  65536

static bool all_in(const unsigned char *p, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\0' || strchr(set, p[i]) == NULL)
			return false;
	return true;
}

/* The header after signature k at a (the start of the archive, n bytes to
   the end of the buffer) is well formed as far as it can be told cheaply. */
static bool check(int k, const unsigned char *a, size_t n)
{
	unsigned sum = 0;
	size_t i;

	if (n < sigs[k].at + sigs[k].len)
		return false;
	switch (k) {
	case SIG_GZIP: /* CM 8 (deflate), reserved flag bits clear */
		return n >= 18 && (a[3] & 0xe0) == 0;
	case SIG_ZSTD: /* frame header descriptor: reserved bit clear */
		return n >= 9 && (a[4] & 0x08) == 0;
	case SIG_ZIP:
		return n >= 30;
	case SIG_BZIP2: /* "BZh" block size "1AY&SY" */
		return n >= 14 && a[3] >= '1' && a[3] <= '9' && memcmp(a + 4, "1AY&SY", 6) == 0;
	case SIG_TAR: /* the header's checksum, octal, over its 512 bytes */
		if (n < 512)
			return false;
		for (i = 0; i < 512; i++)
			sum += i >= 148 && i < 156 ? ' ' : a[i];
		{
			unsigned want = 0;

			for (i = 148; i < 156 && a[i] == ' '; i++)
				;
			if (i == 156 || a[i] < '0' || a[i] > '7')
				return false;
			for (; i < 156 && a[i] >= '0' && a[i] <= '7'; i++)
				want = want * 8 + (unsigned)(a[i] - '0');
			return want == sum;
		}
	case SIG_CPIO: /* newc / crc: 13 hex fields; odc: 11 octal fields */
		if (a[5] == '1' || a[5] == '2')
			return n >= 110 && all_in(a + 6, 104, "0123456789abcdefABCDEF");
		return a[5] == '7' && n >= 76 && all_in(a + 6, 70, "01234567");
	case SIG_AR: /* the first member header ends in "`\n" */
		return n >= 68 && a[66] == '`' && a[67] == '\n';
	default: /* six bytes of signature or more */
		return true;
	}
}

/* An encrypted entry's name, to tell a real encrypted ZIP from bytes that
   only look like a local header with the encryption bit set. */
static bool plausible_name(struct archive_entry *ent)
{
	const char *s = archive_entry_pathname(ent);

	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* The readers for what signature k announces, not for what it holds: a
   compressed stream is decoded as one (the archive inside it is then
   opened from memory, where 7z's and ZIP's central directories can be
   reached), a ZIP by its local headers (its central directory, when
   there is a good one, was found by the attempt at offset 0). */
static enum readers readers_for(int k)
{
	if (k == SIG_ZIP)
		return READ_ZIP_LOCAL;
	if (k == SIG_GZIP || k == SIG_ZSTD || k == SIG_XZ || k == SIG_BZIP2)
		return READ_RAW;
	return READ_ALL;
}

/* libarchive reads the first header at a (signature k) and, after the
   short signatures of gzip, zstd and ZIP, decodes the start of the first
   entry without an error; or finds it encrypted. */
static bool probe(int k, const unsigned char *a, size_t n)
{
	/* the layer the signature announces, not what it holds (a 7z in a
	   zstd stream cannot be read as one stream, and is reported later) */
	enum readers which = readers_for(k);
	struct archive *ar = reader_new_for(which);
	struct archive_entry *ent;
	unsigned char scratch[16384];
	size_t got = 0;
	bool ok = false;
	la_ssize_t r;
	int st;

	if (ar == NULL)
		return true; /* cannot tell: believe it, the open reports the failure */
	if (archive_read_open_memory(ar, a, n) != ARCHIVE_OK)
		goto out;
	st = archive_read_next_header(ar, &ent);
	if (st != ARCHIVE_OK && st != ARCHIVE_WARN) {
		/* only 7z and RAR encrypt their headers */
		ok = st != ARCHIVE_EOF && (k == SIG_7Z || k == SIG_RAR) &&
		     archive_read_has_encrypted_entries(ar) > 0;
		goto out;
	}
	if (archive_format(ar) == ARCHIVE_FORMAT_RAW && archive_filter_count(ar) <= 1)
		goto out;
	if (archive_entry_is_encrypted(ent) || k == SIG_ZIP) {
		/* a ZIP local header with a real name: 7z writes that file under
		   its name even when its data cannot be decoded */
		ok = plausible_name(ent);
		goto out;
	}
	if (which == READ_ALL) {
		/* a long signature and a header libarchive could read (7z's is
		   checked by CRC): what follows is an archive even when its
		   method cannot be decoded (7z's Deflate64), and is reported */
		ok = true;
		goto out;
	}
	/* a compressed stream: the start of it must decode */
	while (got < PROBE_BYTES && (r = archive_read_data(ar, scratch, sizeof(scratch))) > 0)
		got += (size_t)r;
	ok = got >= PROBE_BYTES || r == 0;
out:
	archive_read_free(ar);
	return ok;
}

/* The first bytes of the signatures above, for the scan below. */
static const bool sig_first[256] = {
    [0x1f] = true, [0x28] = true, ['P'] = true,  ['R'] = true, ['7'] = true,
    ['M'] = true,  [0xfd] = true, ['B'] = true,  ['u'] = true, ['0'] = true,
    ['!'] = true,  ['x'] = true,  [0x01] = true, ['S'] = true, ['K'] = true,
    ['c'] = true,  ['v'] = true,  ['I'] = true,  ['*'] = true,
};

/* Archives anywhere past the start of data (which is none as a whole). */
static int open_inside(struct walker *w, const unsigned char *data, size_t len, const char *name,
                       const char *prefix, int depth)
{
	const char *where = *prefix != '\0' ? prefix : name;
	size_t pos, k, probes = 0, opened = 0;

	for (pos = 1; pos < len && !w->stop; pos++) {
		if (!sig_first[data[pos]])
			continue;
		for (k = 0; k < MF_N_ELEMENTS(foreign); k++) {
			if (foreign[k].inside && pos > foreign[k].off &&
			    len - pos >= foreign[k].len &&
			    memcmp(data + pos, foreign[k].magic, foreign[k].len) == 0) {
				problem(w, where,
				        "holds a %s archive behind other data, a format that "
				        "cannot be inspected",
				        foreign[k].name);
				return 1;
			}
		}
		for (k = 0; k < MF_N_ELEMENTS(sigs); k++) {
			const unsigned char *a;

			if (data[pos] != (unsigned char)sigs[k].magic[0] || pos < sigs[k].at ||
			    len - pos < sigs[k].len ||
			    memcmp(data + pos, sigs[k].magic, sigs[k].len) != 0)
				continue;
			a = data + pos - sigs[k].at;
			if (a == data || !check((int)k, a, len - (size_t)(a - data)))
				continue;
			if (++probes > MAX_PROBES) {
				problem(w, where,
				        "holds more than %d places that look like the start of an "
				        "archive (inspection limit)",
				        MAX_PROBES);
				return 1;
			}
			if (!probe((int)k, a, len - (size_t)(a - data)))
				continue;
			if (opened == MAX_EMBEDDED) {
				problem(w, where,
				        "holds more than %d archives behind other data (inspection "
				        "limit)",
				        MAX_EMBEDDED);
				return 1;
			}
			opened++;
			(void)open_one(w, a, len - (size_t)(a - data), name, prefix, depth, true,
			               readers_for((int)k));
		}
	}
	return opened > 0;
}

static int open_at(struct walker *w, const unsigned char *data, size_t len, const char *name,
                   const char *prefix, int depth, bool strict)
{
	const char *other;

	if (open_one(w, data, len, name, prefix, depth, strict, READ_ALL))
		return 1;
	if ((other = foreign_format(data, len)) != NULL) {
		problem(w, *prefix != '\0' ? prefix : name,
		        "is a %s archive, a format that cannot be inspected", other);
		return 1;
	}
	return open_inside(w, data, len, name, prefix, depth);
}

/* libarchive turns the names it reads (UTF-16 in 7z, CP437 or UTF-8 in
   ZIP, ...) into the character set of the calling thread's locale; under
   the C locale every name outside ASCII is lost ("보고서.vbs" would have no
   name at all).  So the walk runs under a UTF-8 LC_CTYPE, for this thread
   only (uselocale), leaving the rest of the milter in the C locale. */
static locale_t utf8_ctype(void)
{
	static gsize once;
	static locale_t loc;

	if (g_once_init_enter(&once)) {
		loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
		g_once_init_leave(&once, 1);
	}
	return loc;
}

int mf_archive_inspect(const unsigned char *data, size_t len, const char *name,
                       const struct mf_inspect_limits *lim, const struct mf_archive_visitor *vis,
                       void *ctx)
{
	struct walker w = {.lim = lim, .vis = vis, .ctx = ctx};
	locale_t utf8 = utf8_ctype(), old = (locale_t)0;
	int r;

	if (utf8 != (locale_t)0)
		old = uselocale(utf8);
	r = open_at(&w, data, len, name, "", 0,
	            mf_filetype_is_archive(mf_filetype_detect(data, len)));
	if (utf8 != (locale_t)0)
		uselocale(old);
	return r;
}
