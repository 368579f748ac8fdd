/*
 * spool-reader.c - read the event spool from a saved position (mf-spool.h).
 *
 * mf_spool_read returns the next record, or says that there is nothing more
 * for now (EMPTY), that the last record is still incomplete (TORN, not
 * consumed), that damaged bytes were skipped (CORRUPT, with their position in
 * err and mf_spool_reader_damage), or that the spool could not be read
 * (ERROR, err says why).
 *
 * How damage is told apart from a record still being written: a writer
 * writes a record while it holds the segment's flock, so a reader that looks
 * without the lock may see a prefix of a record, never anything else.
 * Whenever the bytes at the current position look damaged in a segment that
 * is not sealed, the reader takes the lock shared (a few microseconds'
 * wait at most) and decides again on data no writer is changing.  In a
 * sealed segment the data is final, so no lock is needed.  Only the bytes
 * that cannot belong to a valid record are skipped: the reader resumes at the
 * next record marker that starts a record with a valid checksum (or one that
 * may still be completed, at the end of an unsealed segment).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "spool-private.h"

#define READER_BUF_MIN (64 * 1024)
#define READER_BUF_MAX (SPOOL_REC_HDR_LEN + MF_SPOOL_MAX_RECORD)

struct mf_spool_reader {
	char *dir;
	int dirfd;

	int fd;        /* current segment, -1 before the first is found */
	uint64_t seg;  /* its number (or where to start looking) */
	uint64_t off;  /* position of the next record in it */
	bool sealed;   /* seen sealed: its data is final */
	bool hdr_done; /* its header was checked */

	/* A window on the segment: bytes [buf_off, buf_off + buf_len). */
	unsigned char *buf;
	size_t buf_cap, buf_len;
	uint64_t buf_off;

	struct mf_spool_pos damage;
	uint64_t damage_len;
};

/* What the bytes at one position hold. */
enum rec_kind {
	REC_END,        /* end of the data */
	REC_VALID,      /* a complete record with a valid checksum */
	REC_INCOMPLETE, /* the beginning of a record, cut off by the end */
	REC_BAD,        /* not a valid record */
};

struct rec_info {
	enum rec_kind kind;
	uint32_t len;
	const unsigned char *payload;
	const char *reason; /* for REC_BAD */
};

/* The outcome of looking at the current position. */
enum decision {
	DEC_RECORD,
	DEC_END,
	DEC_TORN,
	DEC_CORRUPT,
	DEC_NEED_LOCK, /* looks damaged, but a writer may be active: look again
	                  under the lock */
};

static void reader_drop_buffer(struct mf_spool_reader *r)
{
	r->buf_len = 0;
	r->buf_off = 0;
}

/* Make bytes [off, off + need) available if the file has them.  *p_r points
   at off, *avail_r says how many bytes from off are there (fewer than need
   only at the end of the file). */
static int reader_fill(struct mf_spool_reader *r, uint64_t off, size_t need,
                       const unsigned char **p_r, size_t *avail_r, struct mf_error *err)
{
	size_t skip;
	ssize_t n;

	if (off >= r->buf_off && off - r->buf_off <= r->buf_len) {
		skip = (size_t)(off - r->buf_off);
		if (r->buf_len - skip >= need) {
			*p_r = r->buf + skip;
			*avail_r = r->buf_len - skip;
			return 0;
		}
		memmove(r->buf, r->buf + skip, r->buf_len - skip);
		r->buf_len -= skip;
	} else {
		r->buf_len = 0;
	}
	r->buf_off = off;
	if (need > r->buf_cap) {
		size_t cap = r->buf_cap * 2;
		unsigned char *nb;

		if (cap < need)
			cap = need;
		if (cap > READER_BUF_MAX)
			cap = READER_BUF_MAX;
		nb = realloc(r->buf, cap);
		if (nb == NULL)
			return mf_error_set(err, "spool %s: out of memory reading a record",
			                    r->dir);
		r->buf = nb;
		r->buf_cap = cap;
	}
	while (r->buf_len < need) {
		n = pread(r->fd, r->buf + r->buf_len, r->buf_cap - r->buf_len,
		          (off_t)(r->buf_off + r->buf_len));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return mf_error_set(err, "spool %s: segment %" PRIu64 ": read: %s", r->dir,
			                    r->seg, strerror(errno));
		}
		if (n == 0)
			break;
		r->buf_len += (size_t)n;
	}
	*p_r = r->buf;
	*avail_r = r->buf_len;
	return 0;
}

static int reader_classify(struct mf_spool_reader *r, uint64_t off, struct rec_info *ri,
                           struct mf_error *err)
{
	unsigned char hash[SPOOL_REC_HASH_LEN];
	const unsigned char *p;
	size_t avail;

	memset(ri, 0, sizeof(*ri));
	if (reader_fill(r, off, SPOOL_REC_HDR_LEN, &p, &avail, err) < 0)
		return -1;
	if (avail == 0) {
		ri->kind = REC_END;
		return 0;
	}
	if (memcmp(p, SPOOL_REC_MAGIC, avail < 4 ? avail : 4) != 0) {
		ri->kind = REC_BAD;
		ri->reason = "no record marker";
		return 0;
	}
	if (avail >= 8) {
		ri->len = spool_get_u32(p + 4);
		if (ri->len > MF_SPOOL_MAX_RECORD) {
			ri->kind = REC_BAD;
			ri->reason = "record length out of range";
			return 0;
		}
	}
	if (avail < SPOOL_REC_HDR_LEN) {
		ri->kind = REC_INCOMPLETE;
		return 0;
	}
	if (reader_fill(r, off, SPOOL_REC_HDR_LEN + ri->len, &p, &avail, err) < 0)
		return -1;
	if (avail < SPOOL_REC_HDR_LEN + ri->len) {
		ri->kind = REC_INCOMPLETE;
		return 0;
	}
	spool_rec_hash(hash, p + 4, p + SPOOL_REC_HDR_LEN, ri->len);
	if (sodium_memcmp(hash, p + 8, SPOOL_REC_HASH_LEN) != 0) {
		ri->kind = REC_BAD;
		ri->reason = "checksum mismatch";
		return 0;
	}
	ri->kind = REC_VALID;
	ri->payload = p + SPOOL_REC_HDR_LEN;
	return 0;
}

/* The first position at or after from where a valid record starts (or, if
   allow_incomplete, one that may still be completed); the end of the data
   if there is none.  *kind_r says which. */
static int reader_find_candidate(struct mf_spool_reader *r, uint64_t from, bool allow_incomplete,
                                 uint64_t *pos_r, enum rec_kind *kind_r, struct mf_error *err)
{
	const unsigned char *p, *m;
	struct rec_info ri;
	uint64_t pos = from, x;
	size_t avail;

	for (;;) {
		if (reader_fill(r, pos, 4, &p, &avail, err) < 0)
			return -1;
		if (avail == 0) {
			*pos_r = pos;
			*kind_r = REC_END;
			return 0;
		}
		if (avail < 4) {
			/* The last bytes of the data: a marker cut off? */
			if (allow_incomplete && memcmp(p, SPOOL_REC_MAGIC, avail) == 0) {
				*pos_r = pos;
				*kind_r = REC_INCOMPLETE;
				return 0;
			}
			pos++;
			continue;
		}
		m = memmem(p, avail, SPOOL_REC_MAGIC, 4);
		if (m == NULL) {
			/* Keep the last 3 bytes: a marker may straddle. */
			pos += avail - 3;
			continue;
		}
		x = pos + (uint64_t)(m - p);
		if (reader_classify(r, x, &ri, err) < 0)
			return -1;
		if (ri.kind == REC_VALID || (ri.kind == REC_INCOMPLETE && allow_incomplete)) {
			*pos_r = x;
			*kind_r = ri.kind;
			return 0;
		}
		pos = x + 1;
	}
}

static int reader_set_corrupt(struct mf_spool_reader *r, uint64_t to, const char *reason,
                              struct mf_error *err)
{
	r->damage.segment = r->seg;
	r->damage.offset = r->off;
	r->damage_len = to - r->off;
	mf_error_set(err,
	             "spool %s: segment %" PRIu64 " offset %" PRIu64 ": %s; skipped %" PRIu64
	             " bytes, resuming at offset %" PRIu64,
	             r->dir, r->seg, r->off, reason, r->damage_len, to);
	r->off = to;
	return 0;
}

/* Decide what the current position holds.  quiescent: no writer can be
   changing the segment (it is sealed, or we hold its lock). */
static int reader_decide(struct mf_spool_reader *r, bool quiescent, enum decision *dec_r,
                         struct rec_info *ri, struct mf_error *err)
{
	enum rec_kind kind;
	uint64_t x;

	if (reader_classify(r, r->off, ri, err) < 0)
		return -1;
	switch (ri->kind) {
	case REC_VALID:
		*dec_r = DEC_RECORD;
		return 0;
	case REC_END:
		*dec_r = DEC_END;
		return 0;
	case REC_INCOMPLETE:
		/* Torn if nothing valid follows; otherwise its writer is gone. */
		if (reader_find_candidate(r, r->off + 1, false, &x, &kind, err) < 0)
			return -1;
		if (kind == REC_END && !r->sealed) {
			*dec_r = DEC_TORN;
			return 0;
		}
		if (!quiescent) {
			*dec_r = DEC_NEED_LOCK;
			return 0;
		}
		if (kind != REC_END && !r->sealed &&
		    reader_find_candidate(r, r->off + 1, true, &x, &kind, err) < 0)
			return -1;
		reader_set_corrupt(r, x,
		                   kind == REC_END
		                       ? "incomplete record at the end of a sealed segment"
		                       : "incomplete record followed by other records",
		                   err);
		*dec_r = DEC_CORRUPT;
		return 0;
	case REC_BAD:
		if (!quiescent) {
			*dec_r = DEC_NEED_LOCK;
			return 0;
		}
		if (reader_find_candidate(r, r->off + 1, !r->sealed, &x, &kind, err) < 0)
			return -1;
		reader_set_corrupt(r, x, ri->reason, err);
		*dec_r = DEC_CORRUPT;
		return 0;
	}
	return mf_error_set(err, "spool %s: internal error", r->dir);
}

static void reader_close_segment(struct mf_spool_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->sealed = false;
	r->hdr_done = false;
	reader_drop_buffer(r);
}

/* Open the first existing segment numbered at least min.  *found_r false
   if there is none (yet). */
static int reader_open_segment(struct mf_spool_reader *r, uint64_t min, bool *found_r,
                               struct mf_error *err)
{
	char name[SPOOL_SEG_NAME_MAX];
	struct spool_seg_list list;
	size_t i;
	int fd;

	*found_r = false;
	/* Usually the very segment asked for exists: no need to list. */
	if (min > 0) {
		spool_seg_name(name, min);
		fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			reader_close_segment(r);
			r->fd = fd;
			if (min != r->seg)
				r->off = MF_SPOOL_FIRST_OFFSET;
			r->seg = min;
			if (r->off < MF_SPOOL_FIRST_OFFSET)
				r->off = MF_SPOOL_FIRST_OFFSET;
			*found_r = true;
			return 0;
		}
	}
	for (int tries = 0; tries < 16; tries++) {
		if (spool_seg_list(r->dirfd, r->dir, &list, err) < 0)
			return -1;
		for (i = 0; i < list.count && list.segs[i] < min; i++)
			;
		if (i == list.count) {
			spool_seg_list_free(&list);
			return 0;
		}
		spool_seg_name(name, list.segs[i]);
		fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno != ENOENT) {
			mf_error_set(err, "spool %s: cannot open segment %s: %s", r->dir, name,
			             strerror(errno));
			spool_seg_list_free(&list);
			return -1;
		}
		if (fd >= 0) {
			reader_close_segment(r);
			r->fd = fd;
			if (list.segs[i] != r->seg)
				r->off = MF_SPOOL_FIRST_OFFSET;
			r->seg = list.segs[i];
			if (r->off < MF_SPOOL_FIRST_OFFSET)
				r->off = MF_SPOOL_FIRST_OFFSET;
			spool_seg_list_free(&list);
			*found_r = true;
			return 0;
		}
		spool_seg_list_free(&list);
		/* Removed meanwhile: look again. */
	}
	return mf_error_set(err, "spool %s: segments keep disappearing", r->dir);
}

/* Re-read the sealed flag; true if it changed to sealed.  A damaged
   header counts as sealed: writers leave such a segment alone. */
static bool reader_refresh_sealed(struct mf_spool_reader *r)
{
	struct mf_error ignored;
	uint32_t flags;

	if (r->sealed)
		return false;
	if (spool_seg_read_flags(r->fd, &flags, &ignored) < 0 ||
	    (flags & SPOOL_SEG_FLAG_SEALED) != 0) {
		r->sealed = true;
		return true;
	}
	return false;
}

/* A saved position's segment is removed only once a newer segment exists,
   and the newest segment is never removed: if no segment at or after the
   position exists, the spool was replaced (restored, recreated, wiped) and
   reading on would silently skip all that is written to it. */
static int reader_check_start_exists(struct mf_spool_reader *r, const struct mf_spool_pos *start,
                                     struct mf_error *err)
{
	struct spool_seg_list list;
	uint64_t newest;

	if (spool_seg_list(r->dirfd, r->dir, &list, err) < 0)
		return -1;
	newest = list.count > 0 ? list.segs[list.count - 1] : 0;
	spool_seg_list_free(&list);
	if (newest >= start->segment)
		return 0;
	if (newest == 0)
		return mf_error_set(err,
		                    "spool %s: saved position %" PRIu64 ":%" PRIu64
		                    " but the spool holds no segment: was the spool replaced?",
		                    r->dir, start->segment, start->offset);
	return mf_error_set(err,
	                    "spool %s: saved position %" PRIu64 ":%" PRIu64
	                    " lies beyond the newest segment (%" PRIu64
	                    "): was the spool replaced?",
	                    r->dir, start->segment, start->offset, newest);
}

struct mf_spool_reader *mf_spool_reader_open(const char *dir, const struct mf_spool_pos *start,
                                             struct mf_error *err)
{
	static const struct mf_spool_pos beginning = {0, 0};
	char name[SPOOL_SEG_NAME_MAX];
	struct mf_spool_reader *r;
	struct stat st;

	if (start == NULL)
		start = &beginning;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->dir = strdup(dir)) == NULL) {
		free(r);
		mf_error_set(err, "spool %s: out of memory", dir);
		return NULL;
	}
	r->fd = -1;
	r->seg = start->segment;
	r->off = start->offset;
	r->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		mf_error_set(err, "spool %s: cannot open directory: %s", dir, strerror(errno));
		goto fail;
	}
	if (start->segment != 0) {
		spool_seg_name(name, start->segment);
		if (fstatat(r->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    start->offset > (uint64_t)st.st_size) {
			mf_error_set(err,
			             "spool %s: saved position %" PRIu64 ":%" PRIu64
			             " lies beyond the end of segment %s (%lld bytes): "
			             "was the spool replaced?",
			             dir, start->segment, start->offset, name,
			             (long long)st.st_size);
			goto fail;
		}
		if (reader_check_start_exists(r, start, err) < 0)
			goto fail;
	}
	return r;
fail:
	if (r->dirfd >= 0)
		close(r->dirfd);
	free(r->dir);
	free(r);
	return NULL;
}

void mf_spool_reader_close(struct mf_spool_reader **rp)
{
	struct mf_spool_reader *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	reader_close_segment(r);
	close(r->dirfd);
	free(r->buf);
	free(r->dir);
	free(r);
}

void mf_spool_reader_damage(const struct mf_spool_reader *r, struct mf_spool_pos *start_r,
                            uint64_t *len_r)
{
	*start_r = r->damage;
	*len_r = r->damage_len;
}

static enum mf_spool_status reader_result(struct mf_spool_reader *r, enum mf_spool_status st,
                                          struct mf_spool_pos *pos_r)
{
	if (pos_r != NULL) {
		pos_r->segment = r->seg;
		pos_r->offset = r->off;
	}
	return st;
}

/* Decide under the segment's lock, where no writer changes anything. */
static int reader_decide_locked(struct mf_spool_reader *r, enum decision *dec_r,
                                struct rec_info *ri, struct mf_error *err)
{
	char what[300];
	int ret;

	snprintf(what, sizeof(what), "spool %s: segment %" PRIu64, r->dir, r->seg);
	if (spool_lock(r->fd, LOCK_SH, SPOOL_READER_LOCK_TIMEOUT_MS, what, err) < 0)
		return -1;
	reader_drop_buffer(r);
	(void)reader_refresh_sealed(r);
	ret = reader_decide(r, true, dec_r, ri, err);
	(void)flock(r->fd, LOCK_UN);
	return ret;
}

/* At the end of an unsealed segment: if it was removed (by hand: rotation
   removes only sealed ones), no writer appends to it any more (they check
   under the lock), so once we hold the lock its data is final: treat it as
   sealed and go on. */
static int reader_check_removed(struct mf_spool_reader *r, struct mf_error *err)
{
	char what[300];
	struct stat st;

	if (fstat(r->fd, &st) < 0)
		return mf_error_set(err, "spool %s: segment %" PRIu64 ": fstat: %s", r->dir, r->seg,
		                    strerror(errno));
	if (st.st_nlink > 0)
		return 0;
	snprintf(what, sizeof(what), "spool %s: segment %" PRIu64, r->dir, r->seg);
	if (spool_lock(r->fd, LOCK_SH, SPOOL_READER_LOCK_TIMEOUT_MS, what, err) < 0)
		return -1;
	r->sealed = true;
	(void)flock(r->fd, LOCK_UN);
	return 0;
}

enum mf_spool_status mf_spool_read(struct mf_spool_reader *r, const void **payload_r, size_t *len_r,
                                   struct mf_spool_pos *pos_r, struct mf_error *err)
{
	struct rec_info ri;
	enum decision dec;
	uint32_t flags;
	bool found;

	*payload_r = NULL;
	*len_r = 0;
	for (;;) {
		if (r->fd < 0) {
			if (reader_open_segment(r, r->seg, &found, err) < 0)
				return reader_result(r, MF_SPOOL_ERROR, pos_r);
			if (!found)
				return reader_result(r, MF_SPOOL_EMPTY, pos_r);
		}
		if (!r->hdr_done) {
			r->hdr_done = true;
			if (spool_seg_read_flags(r->fd, &flags, err) < 0) {
				/* Writers leave a segment with a damaged header
				   alone: its data is final. */
				r->sealed = true;
				r->damage.segment = r->seg;
				r->damage.offset = 0;
				r->damage_len = MF_SPOOL_FIRST_OFFSET;
				mf_error_prefix(err, "spool %s: segment %" PRIu64, r->dir, r->seg);
				return reader_result(r, MF_SPOOL_CORRUPT, pos_r);
			}
			r->sealed = (flags & SPOOL_SEG_FLAG_SEALED) != 0;
		}
		if (reader_decide(r, r->sealed, &dec, &ri, err) < 0)
			return reader_result(r, MF_SPOOL_ERROR, pos_r);
		if ((dec == DEC_END || dec == DEC_TORN) && reader_refresh_sealed(r)) {
			/* Sealed meanwhile: look again at data that is final
			   now (the flag was read before the data). */
			reader_drop_buffer(r);
			continue;
		}
		if (dec == DEC_NEED_LOCK && reader_decide_locked(r, &dec, &ri, err) < 0)
			return reader_result(r, MF_SPOOL_ERROR, pos_r);
		switch (dec) {
		case DEC_RECORD:
			r->off += SPOOL_REC_HDR_LEN + ri.len;
			*payload_r = ri.payload;
			*len_r = ri.len;
			return reader_result(r, MF_SPOOL_RECORD, pos_r);
		case DEC_CORRUPT:
			return reader_result(r, MF_SPOOL_CORRUPT, pos_r);
		case DEC_TORN:
			reader_drop_buffer(r);
			return reader_result(r, MF_SPOOL_TORN, pos_r);
		case DEC_END:
		case DEC_NEED_LOCK:
			break;
		}
		reader_drop_buffer(r);
		if (!r->sealed) {
			if (reader_check_removed(r, err) < 0)
				return reader_result(r, MF_SPOOL_ERROR, pos_r);
			if (r->sealed)
				continue;
			return reader_result(r, MF_SPOOL_EMPTY, pos_r);
		}
		/* Sealed and read to its end: on to the next segment. */
		if (reader_open_segment(r, r->seg + 1, &found, err) < 0)
			return reader_result(r, MF_SPOOL_ERROR, pos_r);
		if (!found)
			return reader_result(r, MF_SPOOL_EMPTY, pos_r);
	}
}
