/*
 * msgbuf.c - a message held in memory, or in a temp file once it is large.
 *
 * The first `spill` bytes stay in a heap buffer; the append that would pass
 * that size moves everything into an unlinked file created in tmp_dir with
 * mode 0600, so a 50 MB message costs 50 MB of disk, not of memory, and
 * nothing is left behind if the process dies.  mf_msgbuf_stream gives GMime
 * a stream over the content (in memory: over the buffer itself, not a
 * copy); mf_msgbuf_data maps it for byte-level scans.  mf_msgbuf_reset
 * empties a buffer for the next message of a connection and keeps its
 * memory (up to MSGBUF_KEEP bytes), so that a message costs no allocation
 * of its size.
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
#include "milter.h"
#include "scan.h"
#include "mf-io.h"

/* The most memory mf_msgbuf_reset keeps for the next message: an idle
   connection holds no more than this (most messages fit). */
#define MSGBUF_KEEP (256 * 1024)
/* The first allocation for a message in memory. */
#define MSGBUF_FIRST 16384

struct mf_msgbuf {
	char *tmp_dir;
	size_t spill;
	GByteArray *mem;     /* the content while in memory (NULL: none yet) */
	size_t mem_high;     /* the most it has held: roughly its allocation */
	GMimeStream *stream; /* our reference to the stream over mem, if any */
	int fd;              /* -1 while in memory */
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

/* Before mem changes or goes: a stream handed out over it that somebody
   still holds gets mem for its own (and we start a new one); otherwise the
   stream goes and mem stays. */
static void msgbuf_release_stream(struct mf_msgbuf *b)
{
	if (b->stream == NULL)
		return;
	if (g_atomic_int_get(&G_OBJECT(b->stream)->ref_count) > 1) {
		g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(b->stream), TRUE);
		b->mem = NULL;
		b->mem_high = 0;
	}
	g_object_unref(b->stream);
	b->stream = NULL;
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
	msgbuf_release_stream(b);
	msgbuf_unmap(b);
	if (b->fd >= 0)
		close(b->fd);
	if (b->mem != NULL)
		g_byte_array_free(b->mem, TRUE);
	free(b->tmp_dir);
	free(b);
	*bp = NULL;
}

int mf_msgbuf_reset(struct mf_msgbuf *b, const char *tmp_dir, size_t spill)
{
	msgbuf_release_stream(b);
	msgbuf_unmap(b);
	if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
	}
	if (b->mem != NULL && b->mem_high > MSGBUF_KEEP) {
		g_byte_array_free(b->mem, TRUE);
		b->mem = NULL;
		b->mem_high = 0;
	}
	if (b->mem != NULL)
		g_byte_array_set_size(b->mem, 0);
	b->size = 0;
	b->spill = spill;
	if (tmp_dir == NULL)
		tmp_dir = "/tmp";
	if (strcmp(b->tmp_dir, tmp_dir) != 0) {
		char *d = strdup(tmp_dir);

		if (d == NULL)
			return -1;
		free(b->tmp_dir);
		b->tmp_dir = d;
	}
	return 0;
}

static int msgbuf_spill(struct mf_msgbuf *b, struct mf_error *err)
{
	b->fd = mf_tmpfile(b->tmp_dir, err);
	if (b->fd < 0)
		return -1;
	if (b->mem != NULL && mf_write_all(b->fd, b->mem->data, b->mem->len) < 0) {
		mf_error_set(err, "cannot write a temp file in %s: %s", b->tmp_dir,
		             strerror(errno));
		close(b->fd);
		b->fd = -1;
		return -1;
	}
	/* the memory is kept for the next message, empty */
	if (b->mem != NULL)
		g_byte_array_set_size(b->mem, 0);
	return 0;
}

int mf_msgbuf_append(struct mf_msgbuf *b, const void *data, size_t len, struct mf_error *err)
{
	GByteArray *old = NULL;

	if (len == 0)
		return 0;
	if (b->stream != NULL) {
		/* A stream handed out keeps what it showed: if it is still
		   held, it takes the content and we go on with a copy. */
		old = b->mem;
		msgbuf_release_stream(b);
		if (b->mem == NULL && b->fd < 0 && old != NULL) {
			b->mem = g_byte_array_sized_new(old->len + (guint)len);
			g_byte_array_append(b->mem, old->data, old->len);
			b->mem_high = b->mem->len;
		}
	}
	msgbuf_unmap(b);
	if (b->fd < 0 && b->size + len > b->spill) {
		if (msgbuf_spill(b, err) < 0)
			return -1;
	}
	if (b->fd >= 0) {
		if (mf_write_all(b->fd, data, len) < 0)
			return mf_error_set(err, "cannot write a temp file in %s: %s", b->tmp_dir,
			                    strerror(errno));
	} else {
		/* (GLib aborts rather than fail an allocation; the spill
		   threshold bounds what is asked for here) */
		if (b->mem == NULL)
			b->mem =
			    g_byte_array_sized_new(len > MSGBUF_FIRST ? (guint)len : MSGBUF_FIRST);
		g_byte_array_append(b->mem, data, (guint)len);
		if (b->mem->len > b->mem_high)
			b->mem_high = b->mem->len;
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
		/* Over mem itself, not a copy: the stream does not own it, and
		   we keep a reference to see whether it is still used when mem
		   is to change (msgbuf_release_stream). */
		msgbuf_release_stream(b);
		if (b->mem == NULL)
			b->mem = g_byte_array_sized_new(MSGBUF_FIRST);
		s = g_mime_stream_mem_new_with_byte_array(b->mem);
		g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
		b->stream = s;
		return g_object_ref(s);
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
		*len_r = b->mem != NULL ? b->mem->len : 0;
		return b->mem != NULL && b->mem->data != NULL ? b->mem->data
		                                              : (const unsigned char *)"";
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
