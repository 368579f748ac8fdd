/*
 * zip-inspect.c - list a ZIP archive's entries without trusting it.
 *
 * Reads the end-of-central-directory record (ZIP64 too), then every central
 * directory entry: name, sizes, method, the encryption flag.  Every offset
 * and length is checked against the buffer before it is used; a count above
 * max_entries stops the walk (an archive bomb is a verdict, not a hang).
 * For each readable entry the first MF_ZIP_HEAD decoded bytes are kept, so
 * the policy can recognise an executable by its content.  Inflating never
 * produces more than asked for: a declared size is never believed.
 *
 * mf_zip_open returns -1 with a reason for input that is not a ZIP archive
 * or is damaged; the caller decides what an unreadable archive means.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "scan.h"

#define SIG_EOCD     0x06054b50u
#define SIG_EOCD64   0x06064b50u
#define SIG_EOCD64_L 0x07064b50u
#define SIG_CDH      0x02014b50u
#define SIG_LFH      0x04034b50u

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

/* Where the entry's compressed data starts, or -1. */
static int64_t entry_data_offset(const unsigned char *data, size_t len,
                                 const struct mf_zip_entry *e)
{
	uint64_t off = e->local_offset;

	if (off > len || len - off < 30 || le32(data + off) != SIG_LFH)
		return -1;
	off += 30 + (uint64_t)le16(data + off + 26) + le16(data + off + 28);
	if (off > len)
		return -1;
	return (int64_t)off;
}

/* Decode up to max bytes of entry e into out; returns the count, or -1 when
   the data is damaged.  *more_r: there was more to decode than max. */
static ssize_t entry_decode(const unsigned char *data, size_t len, const struct mf_zip_entry *e,
                            unsigned char *out, size_t max, bool *more_r)
{
	int64_t off = entry_data_offset(data, len, e);
	size_t avail;

	*more_r = false;
	if (off < 0 || e->encrypted)
		return -1;
	avail = len - (size_t)off;
	if (e->csize < avail)
		avail = (size_t)e->csize;
	if (e->method == 0) {
		size_t n = avail < max ? avail : max;

		memcpy(out, data + off, n);
		*more_r = avail > max;
		return (ssize_t)n;
	}
	if (e->method == 8) {
		z_stream z;
		int rc;
		size_t got;

		memset(&z, 0, sizeof(z));
		if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
			return -1;
		z.next_in = (unsigned char *)(uintptr_t)(data + off);
		z.avail_in = avail > UINT32_MAX ? UINT32_MAX : (uInt)avail;
		z.next_out = out;
		z.avail_out = max > UINT32_MAX ? UINT32_MAX : (uInt)max;
		rc = inflate(&z, Z_SYNC_FLUSH);
		got = max - z.avail_out;
		if (rc != Z_STREAM_END && rc != Z_OK && rc != Z_BUF_ERROR) {
			inflateEnd(&z);
			return -1;
		}
		if (z.avail_out == 0 && rc != Z_STREAM_END) {
			/* Probe one more byte to tell "exactly max" from "more". */
			unsigned char probe;

			z.next_out = &probe;
			z.avail_out = 1;
			rc = inflate(&z, Z_SYNC_FLUSH);
			*more_r = z.avail_out == 0;
		}
		inflateEnd(&z);
		return (ssize_t)got;
	}
	return -1;
}

void mf_zip_free(struct mf_zip *zip)
{
	size_t i;

	for (i = 0; i < zip->count; i++) {
		free(zip->entries[i].name);
		free(zip->entries[i].content);
	}
	free(zip->entries);
	memset(zip, 0, sizeof(*zip));
}

static int find_eocd(const unsigned char *data, size_t len, uint64_t *count_r, uint64_t *cd_off_r,
                     uint64_t *cd_size_r, struct mf_error *err)
{
	size_t i, lim;
	const unsigned char *e = NULL;

	if (len < 22)
		return mf_error_set(err, "too short to be a ZIP archive");
	lim = len - 22 > 65535 ? len - 22 - 65535 : 0;
	for (i = len - 22 + 1; i-- > lim;) {
		if (le32(data + i) == SIG_EOCD) {
			e = data + i;
			break;
		}
	}
	if (e == NULL)
		return mf_error_set(err, "no ZIP central directory (damaged or not a ZIP)");
	*count_r = le16(e + 10);
	*cd_size_r = le32(e + 12);
	*cd_off_r = le32(e + 16);
	if ((*count_r == 0xffff || *cd_off_r == 0xffffffffu || *cd_size_r == 0xffffffffu) &&
	    (size_t)(e - data) >= 20 && le32(e - 20) == SIG_EOCD64_L) {
		uint64_t off64 = le64(e - 20 + 8);

		if (off64 > len || len - off64 < 56 || le32(data + off64) != SIG_EOCD64)
			return mf_error_set(err, "damaged ZIP64 directory record");
		*count_r = le64(data + off64 + 32);
		*cd_size_r = le64(data + off64 + 40);
		*cd_off_r = le64(data + off64 + 48);
	}
	if (*cd_off_r > len || *cd_size_r > len - *cd_off_r)
		return mf_error_set(err, "ZIP central directory lies outside the file");
	return 0;
}

static void zip64_extra(const unsigned char *x, size_t xlen, struct mf_zip_entry *e, bool need_u,
                        bool need_c, bool need_off)
{
	while (xlen >= 4) {
		uint16_t id = le16(x), sz = le16(x + 2);
		const unsigned char *v = x + 4;
		size_t left;

		if ((size_t)sz + 4 > xlen)
			return;
		left = sz;
		if (id == 0x0001) {
			if (need_u && left >= 8) {
				e->usize = le64(v);
				v += 8;
				left -= 8;
			}
			if (need_c && left >= 8) {
				e->csize = le64(v);
				v += 8;
				left -= 8;
			}
			if (need_off && left >= 8)
				e->local_offset = le64(v);
			return;
		}
		x += 4 + sz;
		xlen -= 4 + (size_t)sz;
	}
}

int mf_zip_open(const unsigned char *data, size_t len, size_t max_entries, struct mf_zip *zip,
                struct mf_error *err)
{
	uint64_t count = 0, cd_off = 0, cd_size = 0, pos, i;

	memset(zip, 0, sizeof(*zip));
	if (find_eocd(data, len, &count, &cd_off, &cd_size, err) < 0)
		return -1;
	if (count > max_entries)
		return mf_error_set(err, "ZIP archive has %llu entries (limit %zu)",
		                    (unsigned long long)count, max_entries);
	zip->entries = calloc(count ? count : 1, sizeof(*zip->entries));
	if (zip->entries == NULL)
		return mf_error_set(err, "out of memory reading a ZIP directory");
	pos = cd_off;
	for (i = 0; i < count; i++) {
		const unsigned char *h = data + pos;
		struct mf_zip_entry *e;
		uint16_t nlen, xlen, clen, flags;
		bool more;
		ssize_t n;

		if (pos > len || len - pos < 46 || le32(h) != SIG_CDH) {
			mf_zip_free(zip);
			return mf_error_set(err, "damaged ZIP central directory (entry %llu)",
			                    (unsigned long long)i + 1);
		}
		nlen = le16(h + 28);
		xlen = le16(h + 30);
		clen = le16(h + 32);
		if (len - pos - 46 < (uint64_t)nlen + xlen + clen) {
			mf_zip_free(zip);
			return mf_error_set(err, "damaged ZIP central directory (entry %llu)",
			                    (unsigned long long)i + 1);
		}
		e = &zip->entries[zip->count];
		flags = le16(h + 8);
		e->method = le16(h + 10);
		e->csize = le32(h + 20);
		e->usize = le32(h + 24);
		e->local_offset = le32(h + 42);
		e->encrypted = (flags & 1) != 0 || e->method == 99;
		zip64_extra(h + 46 + nlen, xlen, e, e->usize == 0xffffffffu,
		            e->csize == 0xffffffffu, e->local_offset == 0xffffffffu);
		e->name = strndup((const char *)h + 46, nlen);
		if (e->name == NULL) {
			mf_zip_free(zip);
			return mf_error_set(err, "out of memory reading a ZIP directory");
		}
		zip->count++;
		zip->total_usize += e->usize;
		zip->total_csize += e->csize;
		if (e->encrypted)
			zip->any_encrypted = true;
		if (strcmp(e->name, "META-INF/MANIFEST.MF") == 0)
			zip->is_jar = true;
		n = entry_decode(data, len, e, e->head, sizeof(e->head), &more);
		e->head_len = n > 0 ? (size_t)n : 0;
		pos += 46 + (uint64_t)nlen + xlen + clen;
	}
	return 0;
}

int mf_zip_extract(const unsigned char *data, size_t len, const struct mf_zip_entry *e, size_t max,
                   unsigned char **out_r, size_t *out_len_r, struct mf_error *err)
{
	unsigned char *out;
	ssize_t n;
	bool more;

	*out_r = NULL;
	*out_len_r = 0;
	if (e->encrypted)
		return mf_error_set(err, "entry %s is encrypted", e->name);
	out = malloc(max ? max : 1);
	if (out == NULL)
		return mf_error_set(err, "out of memory extracting %s", e->name);
	n = entry_decode(data, len, e, out, max, &more);
	if (n < 0) {
		free(out);
		return mf_error_set(err, "entry %s is damaged or uses an unsupported method",
		                    e->name);
	}
	if (more) {
		free(out);
		return mf_error_set(err, "entry %s expands beyond %zu bytes", e->name, max);
	}
	*out_r = out;
	*out_len_r = (size_t)n;
	return 0;
}
