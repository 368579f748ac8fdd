/*
 * spool-rotate.c - start new spool segments and remove shipped ones.
 *
 * mf_spool_rotate (see mf-spool.h for the order of its steps and why no
 * record can be lost) is called by the spool's reader, mailfort-auditd.
 * Returns 0, or -1 with a reason naming the directory or segment and the
 * system error in err; a failure to remove an old segment is an error too
 * (the spool would otherwise grow without bound unnoticed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "spool-private.h"

#define ROTATE_TMP_MAX_AGE 60

/* *sealed_r and the segment's size; *exists_r false if it is gone. */
static int rotate_seg_state(int dirfd, const char *dir, uint64_t seg, bool *exists_r,
                            bool *sealed_r, uint64_t *size_r, struct mf_error *err)
{
	char name[SPOOL_SEG_NAME_MAX];
	struct mf_error herr;
	struct stat st;
	uint32_t flags;
	int fd;

	spool_seg_name(name, seg);
	*exists_r = false;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return mf_error_set(err, "spool %s: cannot open segment %s: %s", dir, name,
		                    strerror(errno));
	}
	*exists_r = true;
	/* Flag first, then size: once sealed, the size is final. */
	/* A damaged header counts as sealed, as for writers and the reader. */
	*sealed_r =
	    spool_seg_read_flags(fd, &flags, &herr) < 0 || (flags & SPOOL_SEG_FLAG_SEALED) != 0;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return mf_error_set(err, "spool %s: segment %s: fstat: %s", dir, name,
		                    strerror(errno));
	}
	*size_r = (uint64_t)st.st_size;
	close(fd);
	return 0;
}

static void rotate_remove_stale_tmp(int dirfd)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, SPOOL_TMP_PREFIX, sizeof(SPOOL_TMP_PREFIX) - 1) != 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime + ROTATE_TMP_MAX_AGE < time(NULL))
			(void)unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

int mf_spool_rotate(const char *dir, uint64_t max_bytes, const struct mf_spool_pos *pos,
                    struct mf_error *err)
{
	char name[SPOOL_SEG_NAME_MAX];
	struct spool_seg_list list = {NULL, 0};
	uint64_t newest, size, seg, cur;
	bool exists, sealed;
	int dirfd, rc, ret = -1;
	size_t i;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return mf_error_set(err, "spool %s: cannot open directory: %s", dir,
		                    strerror(errno));
	if (spool_seg_list(dirfd, dir, &list, err) < 0)
		goto out;
	if (list.count == 0) {
		ret = 0;
		goto out;
	}
	newest = list.segs[list.count - 1];
	/* The marker must name the newest segment.  It only ever moves
	   forward: if it names a segment beyond the newest one there is
	   (removed by hand), that segment is created again (it was never
	   sealed, so never read to its end and removed by us); if it is
	   behind (an interrupted rotation), missing or damaged, it is set to
	   the newest segment. */
	rc = spool_current_read(dirfd, dir, &cur, err);
	if (rc < 0)
		goto out;
	if (rc == 0 && cur > newest) {
		if (spool_seg_create(dirfd, dir, cur, err) < 0)
			goto out;
		newest = cur;
	} else if ((rc > 0 || cur < newest) &&
	           spool_current_write(dirfd, dir, newest, true, NULL, err) < 0) {
		goto out;
	}
	if (rotate_seg_state(dirfd, dir, newest, &exists, &sealed, &size, err) < 0)
		goto out;
	if (exists && (sealed || size > MF_SPOOL_FIRST_OFFSET + max_bytes)) {
		/* Next segment, then the marker, then the seal: a writer that
		   finds the seal always finds the marker past its segment. */
		if (spool_seg_create(dirfd, dir, newest + 1, err) < 0 ||
		    spool_current_write(dirfd, dir, newest + 1, true, NULL, err) < 0 ||
		    spool_seg_seal(dirfd, dir, newest, err) < 0)
			goto out;
		newest++;
	}
	for (i = 0; i < list.count; i++) {
		seg = list.segs[i];
		if (seg >= newest)
			break;
		if (rotate_seg_state(dirfd, dir, seg, &exists, &sealed, &size, err) < 0)
			goto out;
		if (!exists)
			continue;
		if (!sealed) {
			if (spool_seg_seal(dirfd, dir, seg, err) < 0)
				goto out;
			if (rotate_seg_state(dirfd, dir, seg, &exists, &sealed, &size, err) < 0)
				goto out;
			if (!exists)
				continue;
		}
		if (!sealed || pos == NULL)
			continue;
		if (seg < pos->segment || (seg == pos->segment && pos->offset >= size)) {
			spool_seg_name(name, seg);
			if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
				mf_error_set(err, "spool %s: cannot remove shipped segment %s: %s",
				             dir, name, strerror(errno));
				goto out;
			}
		}
	}
	rotate_remove_stale_tmp(dirfd);
	ret = 0;
out:
	spool_seg_list_free(&list);
	close(dirfd);
	return ret;
}
