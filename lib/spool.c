/*
 * spool.c - segment files of the event spool: names, listing, atomic
 * creation, sealing and the bounded wait for a segment's lock.
 *
 * Used by spool-writer.c and spool-reader.c.  Every function returns 0 on
 * success and -1 with a one-line reason in err (which names the spool
 * directory or segment and the system error).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "spool-private.h"
#include "mf-io.h"

void spool_seg_name(char buf[SPOOL_SEG_NAME_MAX], uint64_t seg)
{
	snprintf(buf, SPOOL_SEG_NAME_MAX, SPOOL_SEG_PREFIX "%010" PRIu64, seg);
}

bool spool_seg_parse(const char *name, uint64_t *seg_r)
{
	char canon[SPOOL_SEG_NAME_MAX];
	const char *p;
	uint64_t n = 0;

	if (strncmp(name, SPOOL_SEG_PREFIX, sizeof(SPOOL_SEG_PREFIX) - 1) != 0)
		return false;
	p = name + sizeof(SPOOL_SEG_PREFIX) - 1;
	if (*p == '\0' || strlen(p) > 20)
		return false;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (n == 0)
		return false;
	/* Only the canonical spelling counts, so one number has one file. */
	spool_seg_name(canon, n);
	if (strcmp(canon, name) != 0)
		return false;
	*seg_r = n;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int spool_seg_list(int dirfd, const char *dir, struct spool_seg_list *list_r, struct mf_error *err)
{
	struct dirent *de;
	uint64_t *segs = NULL, *n, seg;
	size_t count = 0, alloc = 0;
	DIR *d;
	int fd;

	list_r->segs = NULL;
	list_r->count = 0;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mf_error_set(err, "spool %s: cannot open directory: %s", dir,
		                    strerror(errno));
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return mf_error_set(err, "spool %s: cannot read directory: %s", dir,
		                    strerror(errno));
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!spool_seg_parse(de->d_name, &seg))
			continue;
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			n = reallocarray(segs, alloc, sizeof(*segs));
			if (n == NULL) {
				free(segs);
				closedir(d);
				return mf_error_set(err, "spool %s: out of memory listing segments",
				                    dir);
			}
			segs = n;
		}
		segs[count++] = seg;
		errno = 0;
	}
	if (errno != 0) {
		int e = errno;

		free(segs);
		closedir(d);
		return mf_error_set(err, "spool %s: cannot read directory: %s", dir, strerror(e));
	}
	closedir(d);
	if (count > 1)
		qsort(segs, count, sizeof(*segs), cmp_u64);
	list_r->segs = segs;
	list_r->count = count;
	return 0;
}

void spool_seg_list_free(struct spool_seg_list *list)
{
	free(list->segs);
	list->segs = NULL;
	list->count = 0;
}

/* Write data into a new temporary file (mode 0600) and give it the name
   final: with link(2) (fails if final exists; that counts as success) or,
   if replace, with rename(2).  The temporary file is always removed.
   *created_r (if not NULL): whether this call gave final its content. */
static int spool_install_file(int dirfd, const char *dir, const char *final, const void *data,
                              size_t len, bool replace, bool *created_r, struct mf_error *err)
{
	char tmp[64];
	int fd, ret = 0;

	if (created_r != NULL)
		*created_r = false;
	snprintf(tmp, sizeof(tmp), SPOOL_TMP_PREFIX "%ld.%08" PRIx32, (long)getpid(),
	         randombytes_random());
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return mf_error_set(err, "spool %s: cannot create %s: %s", dir, final,
		                    strerror(errno));
	/* 0600 whatever the process umask: only the spool's owner (the
	   receiver, mailfort-spoold, and the reader, mailfort-auditd, which
	   run as the same user) may read, write or lock a segment. */
	if (fchmod(fd, 0600) < 0 || mf_write_all(fd, data, len) < 0) {
		ret =
		    mf_error_set(err, "spool %s: cannot write %s: %s", dir, final, strerror(errno));
	} else if (replace) {
		if (renameat(dirfd, tmp, dirfd, final) < 0)
			ret = mf_error_set(err, "spool %s: cannot replace %s: %s", dir, final,
			                   strerror(errno));
	} else if (linkat(dirfd, tmp, dirfd, final, 0) < 0) {
		if (errno != EEXIST)
			ret = mf_error_set(err, "spool %s: cannot create %s: %s", dir, final,
			                   strerror(errno));
	} else if (created_r != NULL) {
		*created_r = true;
	}
	close(fd);
	if (ret < 0 || !replace)
		(void)unlinkat(dirfd, tmp, 0);
	return ret;
}

int spool_current_read(int dirfd, const char *dir, uint64_t *seg_r, struct mf_error *err)
{
	char buf[32], name[SPOOL_SEG_NAME_MAX + 1];
	ssize_t n;
	int fd;

	fd = openat(dirfd, SPOOL_CURRENT_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		return mf_error_set(err, "spool %s: cannot open %s: %s", dir, SPOOL_CURRENT_NAME,
		                    strerror(errno));
	}
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return mf_error_set(err, "spool %s: cannot read %s: %s", dir, SPOOL_CURRENT_NAME,
		                    strerror(errno));
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	/* Same rules as a segment name: canonical decimal, at least 1. */
	snprintf(name, sizeof(name), SPOOL_SEG_PREFIX "%.20s", buf);
	if (strlen(buf) > 20 || !spool_seg_parse(name, seg_r)) {
		mf_error_set(err, "spool %s: %s is damaged", dir, SPOOL_CURRENT_NAME);
		return 2;
	}
	return 0;
}

int spool_current_write(int dirfd, const char *dir, uint64_t seg, bool replace, bool *created_r,
                        struct mf_error *err)
{
	char buf[32];
	int len;

	len = snprintf(buf, sizeof(buf), "%010" PRIu64 "\n", seg);
	return spool_install_file(dirfd, dir, SPOOL_CURRENT_NAME, buf, (size_t)len, replace,
	                          created_r, err);
}

int spool_seg_create(int dirfd, const char *dir, uint64_t seg, struct mf_error *err)
{
	unsigned char hdr[SPOOL_SEG_HDR_LEN] = {0};
	char name[SPOOL_SEG_NAME_MAX];

	/* The segment appears under its name complete with its header (link
	   is atomic and fails if another process created it first), so
	   nobody ever sees a segment without a header. */
	spool_seg_name(name, seg);
	memcpy(hdr, SPOOL_SEG_MAGIC, 4);
	spool_put_u32(hdr + 4, SPOOL_SEG_VERSION);
	return spool_install_file(dirfd, dir, name, hdr, sizeof(hdr), false, NULL, err);
}

int spool_seg_read_flags(int fd, uint32_t *flags_r, struct mf_error *err)
{
	unsigned char hdr[SPOOL_SEG_HDR_LEN];
	ssize_t n;

	do
		n = pread(fd, hdr, sizeof(hdr), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return mf_error_set(err, "cannot read the segment header: %s", strerror(errno));
	if ((size_t)n < sizeof(hdr))
		return mf_error_set(err, "the segment header is cut short (%zd bytes)", n);
	if (memcmp(hdr, SPOOL_SEG_MAGIC, 4) != 0 || spool_get_u32(hdr + 4) != SPOOL_SEG_VERSION)
		return mf_error_set(err, "the segment header is damaged or of an unknown version");
	*flags_r = spool_get_u32(hdr + SPOOL_SEG_FLAGS_OFF);
	return 0;
}

int spool_lock(int fd, int op, unsigned timeout_ms, const char *what, struct mf_error *err)
{
	struct timespec start, now, pause = {0, 20 * 1000};
	int64_t waited_ms;

	/* Non-blocking attempts with a growing pause: a process stopped while
	   holding the lock must not hang mail processes forever. */
	if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
		return mf_error_set(err, "%s: clock_gettime: %s", what, strerror(errno));
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return mf_error_set(err, "%s: cannot lock: %s", what, strerror(errno));
		(void)clock_gettime(CLOCK_MONOTONIC, &now);
		waited_ms = (int64_t)(now.tv_sec - start.tv_sec) * 1000 +
		            (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited_ms >= (int64_t)timeout_ms)
			return mf_error_set(err, "%s: still locked by another process after %u ms",
			                    what, timeout_ms);
		nanosleep(&pause, NULL);
		if (pause.tv_nsec < 2 * 1000 * 1000)
			pause.tv_nsec *= 2;
	}
}

int spool_seg_seal(int dirfd, const char *dir, uint64_t seg, struct mf_error *err)
{
	char name[SPOOL_SEG_NAME_MAX], what[256];
	unsigned char flags_le[4];
	uint32_t flags;
	ssize_t n;
	int fd, ret = 0;

	spool_seg_name(name, seg);
	snprintf(what, sizeof(what), "spool %s: segment %s", dir, name);
	fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return mf_error_set(err, "%s: cannot open: %s", what, strerror(errno));
	}
	/* Under the writers' lock: once the flag is set, no writer appends
	   here again (each checks it under the same lock before writing). */
	if (spool_lock(fd, LOCK_EX, SPOOL_READER_LOCK_TIMEOUT_MS, what, err) < 0) {
		close(fd);
		return -1;
	}
	if (spool_seg_read_flags(fd, &flags, err) < 0) {
		/* A damaged header: writers treat it as sealed already. */
		mf_error_prefix(err, "%s", what);
		ret = -1;
	} else if ((flags & SPOOL_SEG_FLAG_SEALED) == 0) {
		spool_put_u32(flags_le, flags | SPOOL_SEG_FLAG_SEALED);
		do
			n = pwrite(fd, flags_le, sizeof(flags_le), SPOOL_SEG_FLAGS_OFF);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(flags_le))
			ret = mf_error_set(err, "%s: cannot seal: %s", what,
			                   n < 0 ? strerror(errno) : "short write");
	}
	(void)flock(fd, LOCK_UN);
	close(fd);
	return ret;
}

void spool_rec_hash(unsigned char out[SPOOL_REC_HASH_LEN], const unsigned char len_le[4],
                    const void *payload, size_t len)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, SPOOL_REC_HASH_LEN);
	crypto_generichash_update(&st, len_le, 4);
	crypto_generichash_update(&st, payload, len);
	crypto_generichash_final(&st, out, SPOOL_REC_HASH_LEN);
}
