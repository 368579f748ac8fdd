/*
 * spool-writer.c - append records to the event spool (see mf-spool.h).
 *
 * mf_spool_writer_open opens (and if needed creates) the spool directory;
 * mf_spool_append writes one record under the segment lock, moving on to
 * the next segment when the reader has sealed the current one.  Both return
 * 0 / a writer on success and -1 / NULL with a one-line reason in err that
 * names the spool directory and the system error (permission denied, disk
 * full, lock held too long, ...).  An append waits at most
 * SPOOL_WRITER_LOCK_TIMEOUT_MS (2 s) for another thread of the process that
 * is appending through the same writer, and as long again for the segment
 * lock and the current segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "mf-log.h"
#include "spool-private.h"

/* How many segments one append may step over before giving up (only a
   spool being rotated in a tight loop, or damaged, needs more than 2). */
#define WRITER_MAX_HOPS 64

struct mf_spool_writer {
	pthread_mutex_t mutex; /* one append at a time per writer: flock is per
	                          open file, so threads sharing fd would not
	                          exclude each other */
	char *dir;
	int dirfd;
	int fd;       /* current segment, -1 if none */
	uint64_t seg; /* its number */
	pid_t pid;    /* the process that opened fd */
	bool sync;
};

static int writer_open_dir(const char *dir, struct mf_error *err)
{
	int fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		bool made = mkdir(dir, 0700) == 0;

		if (!made && errno != EEXIST)
			return mf_error_set(err, "spool %s: cannot create directory: %s", dir,
			                    strerror(errno));
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* Only the spool's owner may enter it; mode without umask.
		   Only on a directory we made ourselves. */
		if (fd >= 0 && made)
			(void)fchmod(fd, 0700);
	}
	if (fd < 0)
		return mf_error_set(err, "spool %s: cannot open directory: %s", dir,
		                    strerror(errno));
	return fd;
}

/* Open segment seg for appending: 0, 1 if it does not exist, -1 with err. */
static int writer_open_seg(struct mf_spool_writer *w, uint64_t seg, struct mf_error *err)
{
	char name[SPOOL_SEG_NAME_MAX];
	int fd;

	spool_seg_name(name, seg);
	/* Without access-time updates where we may (owner or root): the seal
	   check reads the header before every append, and with relatime
	   each such read would dirty the inode again. */
	fd = openat(w->dirfd, name, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(w->dirfd, name, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		return mf_error_set(err, "spool %s: cannot open segment %s: %s", w->dir, name,
		                    strerror(errno));
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = fd;
	w->seg = seg;
	w->pid = getpid();
	return 0;
}

static void writer_pause(void)
{
	struct timespec ts = {0, 1000 * 1000};

	nanosleep(&ts, NULL);
}

static int64_t writer_ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - start->tv_sec) * 1000 +
	       (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* No marker: a new spool, or the marker was removed by hand.  Publish one;
   in a new spool only the process whose marker won creates segment 1 (a
   process that found the directory empty a while ago must not create it:
   by now segment 1 may have been filled, read and removed). */
static int writer_publish_marker(struct mf_spool_writer *w, struct mf_error *err)
{
	struct spool_seg_list list;
	uint64_t seg;
	bool created;

	if (spool_seg_list(w->dirfd, w->dir, &list, err) < 0)
		return -1;
	seg = list.count > 0 ? list.segs[list.count - 1] : 1;
	spool_seg_list_free(&list);
	if (spool_current_write(w->dirfd, w->dir, seg, false, &created, err) < 0)
		return -1;
	if (created && seg == 1 && spool_seg_create(w->dirfd, w->dir, 1, err) < 0)
		return -1;
	return 0;
}

/* A damaged marker: the highest segment there is (rotation repairs the
   marker).  Nothing is created. */
static int writer_find_newest_listed(struct mf_spool_writer *w, uint64_t *seg_r,
                                     struct mf_error *err)
{
	struct spool_seg_list list;

	if (spool_seg_list(w->dirfd, w->dir, &list, err) < 0)
		return -1;
	*seg_r = list.count > 0 ? list.segs[list.count - 1] : 0;
	spool_seg_list_free(&list);
	if (*seg_r == 0)
		return mf_error_set(err, "spool %s: %s is damaged and there is no segment", w->dir,
		                    SPOOL_CURRENT_NAME);
	return 0;
}

/*
 * Open the segment the "current" marker names.  Rotation creates a segment
 * before making it current, and makes a newer one current before sealing
 * (and much later removing) the old one, so the marker names an existing
 * segment except for a moment in a new spool, or when files were removed
 * by hand.  A missing segment is therefore waited for (up to a second,
 * reading the marker again each time), and only created when the marker
 * still names it after that: the marker never moves back, so a segment it
 * still names was never sealed, hence never read to its end and removed,
 * and creating it cannot put a record behind the reader.
 */
static int writer_open_newest(struct mf_spool_writer *w, struct mf_error *err)
{
	struct timespec begin, start;
	struct mf_error merr;
	uint64_t seg, missing = 0;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &begin);
	start = begin;
	for (;;) {
		if (writer_ms_since(&begin) > SPOOL_WRITER_LOCK_TIMEOUT_MS)
			return mf_error_set(err, "spool %s: cannot find the current segment",
			                    w->dir);
		rc = spool_current_read(w->dirfd, w->dir, &seg, &merr);
		if (rc < 0) {
			*err = merr;
			return -1;
		}
		if (rc == 1) {
			if (writer_publish_marker(w, err) < 0)
				return -1;
			continue;
		}
		if (rc == 2 && writer_find_newest_listed(w, &seg, err) < 0)
			return -1;
		rc = writer_open_seg(w, seg, err);
		if (rc <= 0)
			return rc;
		if (seg != missing) {
			missing = seg;
			clock_gettime(CLOCK_MONOTONIC, &start);
		} else if (writer_ms_since(&start) >= 1000) {
			mf_log_warn("spool %s: segment %llu is missing; creating it again", w->dir,
			            (unsigned long long)seg);
			if (spool_seg_create(w->dirfd, w->dir, seg, err) < 0)
				return -1;
			continue;
		}
		writer_pause();
	}
}

/* The current segment may not be appended to (sealed, removed, damaged):
   go to a newer one. */
static int writer_next_segment(struct mf_spool_writer *w, struct mf_error *err)
{
	struct mf_error merr;
	uint64_t cur, old = w->seg;
	int rc;

	close(w->fd);
	w->fd = -1;
	rc = spool_current_read(w->dirfd, w->dir, &cur, &merr);
	if (rc != 0 || cur > old) {
		/* The normal case: the reader sealed our segment after
		   making a newer one current. */
		return writer_open_newest(w, err);
	}
	/* Our segment is unusable, yet current: its header was damaged or it
	   was removed by hand.  Start the next one; rotation makes it current.
	   The number cannot have been used already: rotation would have made
	   it current first, and the marker never moves back. */
	mf_log_warn("spool %s: segment %llu is damaged or was removed; starting the next one",
	            w->dir, (unsigned long long)old);
	if (spool_seg_create(w->dirfd, w->dir, old + 1, err) < 0)
		return -1;
	rc = writer_open_seg(w, old + 1, err);
	if (rc == 1)
		return writer_open_newest(w, err);
	return rc;
}

struct mf_spool_writer *mf_spool_writer_open(const char *dir, struct mf_error *err)
{
	struct mf_spool_writer *w;

	if (sodium_init() < 0) {
		mf_error_set(err, "spool %s: libsodium cannot be initialised", dir);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->dir = strdup(dir)) == NULL) {
		free(w);
		mf_error_set(err, "spool %s: out of memory", dir);
		return NULL;
	}
	w->fd = -1;
	pthread_mutex_init(&w->mutex, NULL);
	w->dirfd = writer_open_dir(dir, err);
	if (w->dirfd < 0 || writer_open_newest(w, err) < 0) {
		if (w->dirfd >= 0)
			close(w->dirfd);
		pthread_mutex_destroy(&w->mutex);
		free(w->dir);
		free(w);
		return NULL;
	}
	return w;
}

void mf_spool_writer_close(struct mf_spool_writer **wp)
{
	struct mf_spool_writer *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	if (w->fd >= 0)
		close(w->fd);
	close(w->dirfd);
	pthread_mutex_destroy(&w->mutex);
	free(w->dir);
	free(w);
}

void mf_spool_writer_set_sync(struct mf_spool_writer *w, bool sync)
{
	w->sync = sync;
}

bool mf_spool_writer_get_sync(const struct mf_spool_writer *w)
{
	return w->sync;
}

/* Under the segment lock: true if this segment may be appended to. */
static int writer_segment_usable(struct mf_spool_writer *w, off_t *size_r, bool *usable_r,
                                 struct mf_error *err)
{
	struct mf_error herr;
	struct stat st;
	uint32_t flags;

	if (fstat(w->fd, &st) < 0)
		return mf_error_set(err, "spool %s: fstat: %s", w->dir, strerror(errno));
	*size_r = st.st_size;
	if (st.st_nlink == 0) {
		/* Removed (only sealed segments are, normally). */
		*usable_r = false;
		return 0;
	}
	if (spool_seg_read_flags(w->fd, &flags, &herr) < 0) {
		/* Damaged header: leave this segment alone, use the next. */
		*usable_r = false;
		return 0;
	}
	*usable_r = (flags & SPOOL_SEG_FLAG_SEALED) == 0;
	return 0;
}

static int writer_write_record(struct mf_spool_writer *w, struct iovec *iov, off_t size,
                               struct mf_error *err)
{
	size_t total = iov[0].iov_len + iov[1].iov_len, done = 0;
	ssize_t n;
	int e;

	while (done < total) {
		n = writev(w->fd, iov, 2);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			/* Leave no fragment behind (we still hold the lock). */
			if (done > 0 && ftruncate(w->fd, size) < 0)
				mf_error_set(err, "spool %s: cannot remove a partial record: %s",
				             w->dir, strerror(errno));
			return mf_error_set(err, "spool %s: cannot append: %s", w->dir,
			                    strerror(e));
		}
		done += (size_t)n;
		/* Short write: continue with the rest, still under the lock. */
		for (int i = 0; i < 2 && n > 0; i++) {
			size_t k = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;

			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= (ssize_t)k;
		}
	}
	return 0;
}

int mf_spool_append(struct mf_spool_writer *w, const void *payload, size_t len, bool sync,
                    struct mf_error *err)
{
	unsigned char hdr[SPOOL_REC_HDR_LEN];
	struct iovec iov[2];
	char what[512];
	off_t size = 0;
	struct timespec deadline, begin;
	bool usable = false;
	int hops, rc, ret = -1;

	if (len > MF_SPOOL_MAX_RECORD)
		return mf_error_set(err, "spool %s: record of %zu bytes is larger than %u bytes",
		                    w->dir, len, (unsigned)MF_SPOOL_MAX_RECORD);
	memcpy(hdr, SPOOL_REC_MAGIC, 4);
	spool_put_u32(hdr + 4, (uint32_t)len);
	spool_rec_hash(hdr + 8, hdr + 4, payload, len);

	/* Other threads of this process may be appending: wait for them no
	   longer than for another process. */
	rc = pthread_mutex_trylock(&w->mutex);
	if (rc == EBUSY) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += SPOOL_WRITER_LOCK_TIMEOUT_MS / 1000;
		rc = pthread_mutex_timedlock(&w->mutex, &deadline);
	}
	if (rc != 0)
		return mf_error_set(err, "spool %s: another thread holds the writer: %s", w->dir,
		                    strerror(rc));
	if (w->fd >= 0 && w->pid != getpid()) {
		/* Forked: the descriptor (and its flock) is shared with the
		   parent, so open our own. */
		close(w->fd);
		w->fd = -1;
	}
	if (w->fd < 0 && writer_open_newest(w, err) < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &begin);
	for (hops = 0; hops < WRITER_MAX_HOPS; hops++) {
		if (hops > 0 && writer_ms_since(&begin) > SPOOL_WRITER_LOCK_TIMEOUT_MS) {
			mf_error_set(err, "spool %s: no usable segment found in %d ms", w->dir,
			             SPOOL_WRITER_LOCK_TIMEOUT_MS);
			goto out;
		}
		/* Free (the usual case): no waiting, nothing to name. */
		if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
			snprintf(what, sizeof(what), "spool %s: segment %llu", w->dir,
			         (unsigned long long)w->seg);
			if (spool_lock(w->fd, LOCK_EX, SPOOL_WRITER_LOCK_TIMEOUT_MS, what, err) < 0)
				goto out;
		}
		if (writer_segment_usable(w, &size, &usable, err) < 0) {
			(void)flock(w->fd, LOCK_UN);
			goto out;
		}
		if (usable)
			break;
		(void)flock(w->fd, LOCK_UN);
		if (writer_next_segment(w, err) < 0)
			goto out;
	}
	if (!usable) {
		mf_error_set(err, "spool %s: no usable segment after %d attempts", w->dir, hops);
		goto out;
	}
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)payload;
	iov[1].iov_len = len;
	ret = writer_write_record(w, iov, size, err);
	(void)flock(w->fd, LOCK_UN);
	if (ret == 0 && sync && fdatasync(w->fd) < 0)
		ret = mf_error_set(err, "spool %s: fdatasync: %s", w->dir, strerror(errno));
out:
	pthread_mutex_unlock(&w->mutex);
	return ret;
}
