/*
 * msgbuf.c - a message held in memory, or in a temp file once it is large.
 *
 * The first `spill` bytes stay in a heap buffer; the append that would pass
 * that size moves everything into an unlinked file created in tmp_dir with
 * mode 0600, so a 50 MB message costs 50 MB of disk, not of memory, and
 * nothing is left behind if the process dies.  mf_msgbuf_stream gives GMime
 * a stream over the content; mf_msgbuf_data maps it for byte-level scans.
 *
 * Errors (temp file cannot be created, disk full) are returned with the
 * path and errno text; the caller turns them into the default action.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "scan.h"
#include "mf-io.h"

struct mf_msgbuf {
	char *tmp_dir;
	size_t spill;
	unsigned char *mem;
	size_t mem_len, mem_cap;
	int fd; /* -1 while in memory */
	uint64_t size;
	void *map;
	size_t map_len;
};

struct mf_msgbuf *mf_msgbuf_new(const char *tmp_dir, size_t spill)
{
	struct mf_msgbuf *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->tmp_dir = strdup(tmp_dir != NULL ? tmp_dir : "/tmp");
	if (b->tmp_dir == NULL) {
		free(b);
		return NULL;
	}
	b->spill = spill;
	b->fd = -1;
	return b;
}

static void msgbuf_unmap(struct mf_msgbuf *b)
{
	if (b->map != NULL) {
		munmap(b->map, b->map_len);
		b->map = NULL;
		b->map_len = 0;
	}
}

void mf_msgbuf_free(struct mf_msgbuf **bp)
{
	struct mf_msgbuf *b = *bp;

	if (b == NULL)
		return;
	msgbuf_unmap(b);
	if (b->fd >= 0)
		close(b->fd);
	free(b->mem);
	free(b->tmp_dir);
	free(b);
	*bp = NULL;
}

static int msgbuf_spill(struct mf_msgbuf *b, struct mf_error *err)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/mailfort-milter.XXXXXX", b->tmp_dir) >=
	    sizeof(path))
		return mf_error_set(err, "temp directory name too long: %s", b->tmp_dir);
	b->fd = mkostemp(path, O_CLOEXEC);
	if (b->fd < 0)
		return mf_error_set(err, "cannot create a temp file in %s: %s", b->tmp_dir,
		                    strerror(errno));
	(void)unlink(path);
	if (mf_write_all(b->fd, b->mem, b->mem_len) < 0) {
		mf_error_set(err, "cannot write a temp file in %s: %s", b->tmp_dir,
		             strerror(errno));
		close(b->fd);
		b->fd = -1;
		return -1;
	}
	free(b->mem);
	b->mem = NULL;
	b->mem_len = b->mem_cap = 0;
	return 0;
}

int mf_msgbuf_append(struct mf_msgbuf *b, const void *data, size_t len, struct mf_error *err)
{
	if (len == 0)
		return 0;
	msgbuf_unmap(b);
	if (b->fd < 0 && b->mem_len + len > b->spill) {
		if (msgbuf_spill(b, err) < 0)
			return -1;
	}
	if (b->fd >= 0) {
		if (mf_write_all(b->fd, data, len) < 0)
			return mf_error_set(err, "cannot write a temp file in %s: %s", b->tmp_dir,
			                    strerror(errno));
	} else {
		if (b->mem_len + len > b->mem_cap) {
			size_t cap = b->mem_cap ? b->mem_cap : 16384;
			unsigned char *n;

			while (cap < b->mem_len + len)
				cap *= 2;
			n = realloc(b->mem, cap);
			if (n == NULL)
				return mf_error_set(err, "out of memory buffering a message");
			b->mem = n;
			b->mem_cap = cap;
		}
		memcpy(b->mem + b->mem_len, data, len);
		b->mem_len += len;
	}
	b->size += len;
	return 0;
}

uint64_t mf_msgbuf_size(const struct mf_msgbuf *b)
{
	return b->size;
}

bool mf_msgbuf_spilled(const struct mf_msgbuf *b)
{
	return b->fd >= 0;
}

GMimeStream *mf_msgbuf_stream(struct mf_msgbuf *b, struct mf_error *err)
{
	GMimeStream *s;
	char path[64];
	int fd;

	if (b->fd < 0) {
		GByteArray *arr = g_byte_array_sized_new((guint)b->mem_len);

		g_byte_array_append(arr, b->mem != NULL ? b->mem : (const guint8 *)"",
		                    (guint)b->mem_len);
		return g_mime_stream_mem_new_with_byte_array(arr);
	}
	/* A new open file description, so that reading does not move the
	   offset the appends rely on (a dup would share it). */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fd = dup(b->fd);
	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		mf_error_set(err, "cannot reopen the temp file: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	s = g_mime_stream_fs_new(fd);
	if (s == NULL) {
		close(fd);
		mf_error_set(err, "cannot open a stream over the temp file");
	}
	return s;
}

const unsigned char *mf_msgbuf_data(struct mf_msgbuf *b, size_t *len_r, struct mf_error *err)
{
	if (b->fd < 0) {
		*len_r = b->mem_len;
		return b->mem != NULL ? b->mem : (const unsigned char *)"";
	}
	if (b->size == 0) {
		*len_r = 0;
		return (const unsigned char *)"";
	}
	if (b->map == NULL) {
		void *m = mmap(NULL, (size_t)b->size, PROT_READ, MAP_PRIVATE, b->fd, 0);

		if (m == MAP_FAILED) {
			mf_error_set(err, "cannot map the temp file: %s", strerror(errno));
			return NULL;
		}
		b->map = m;
		b->map_len = (size_t)b->size;
	}
	*len_r = b->map_len;
	return b->map;
}
