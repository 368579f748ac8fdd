/*
 * spool-private.h - what the spool writer and reader share: the on-disk
 * layout (segment header, record header), segment names, segment creation,
 * sealing and bounded waiting for the segment lock.  Not for use outside
 * lib/spool-*.c; the public contract is mf-spool.h.
 */
#ifndef MF_SPOOL_PRIVATE_H
#define MF_SPOOL_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "mf-spool.h"

/* Segment header: "MFSG" | u32 version | u32 flags | u32 reserved (all LE). */
#define SPOOL_SEG_MAGIC       "MFSG"
#define SPOOL_SEG_VERSION     1u
#define SPOOL_SEG_FLAGS_OFF   8
#define SPOOL_SEG_HDR_LEN     MF_SPOOL_FIRST_OFFSET
#define SPOOL_SEG_FLAG_SEALED 0x1u

/* Record header: "MFSR" | u32 payload length | 16-byte BLAKE2b(length | payload). */
#define SPOOL_REC_MAGIC    "MFSR"
#define SPOOL_REC_HASH_LEN 16
#define SPOOL_REC_HDR_LEN  (4 + 4 + SPOOL_REC_HASH_LEN)

#define SPOOL_SEG_PREFIX "events."
/* Longest segment file name: prefix + 20 digits + NUL. */
#define SPOOL_SEG_NAME_MAX (sizeof(SPOOL_SEG_PREFIX) + 21)
#define SPOOL_TMP_PREFIX   ".tmp."
/* The marker naming the newest segment: decimal number and a newline. */
#define SPOOL_CURRENT_NAME "current"

/* Waiting for a segment lock gives up after this long (writers). */
#define SPOOL_WRITER_LOCK_TIMEOUT_MS 2000
/* The reader and rotation may wait longer: they are never in a user's path. */
#define SPOOL_READER_LOCK_TIMEOUT_MS 10000

void spool_seg_name(char buf[SPOOL_SEG_NAME_MAX], uint64_t seg);
/* Parse "events.<N>" (canonical decimal, N >= 1); false for any other name. */
bool spool_seg_parse(const char *name, uint64_t *seg_r);

struct spool_seg_list {
	uint64_t *segs; /* ascending */
	size_t count;
};
/* List the segments in dirfd, ascending.  0 / -1 with err. */
int spool_seg_list(int dirfd, const char *dir, struct spool_seg_list *list_r, struct mf_error *err);
void spool_seg_list_free(struct spool_seg_list *list);

/* Create segment seg atomically (with its header) unless it exists already.
   0 when the segment exists afterwards, -1 with err.  Callers make sure
   that seg cannot be a number that was already used, read and removed
   (see spool-writer.c and spool-rotate.c). */
int spool_seg_create(int dirfd, const char *dir, uint64_t seg, struct mf_error *err);

/* Read the "current" marker: 0 and *seg_r, 1 if there is none, 2 with err
   if it holds no valid segment number, -1 with err if it cannot be read. */
int spool_current_read(int dirfd, const char *dir, uint64_t *seg_r, struct mf_error *err);
/* Write the marker atomically: replace it (rotation), or only create it if
   there is none (a writer starting an empty spool; *created_r says whether
   this call created it).  0 / -1 with err. */
int spool_current_write(int dirfd, const char *dir, uint64_t seg, bool replace, bool *created_r,
                        struct mf_error *err);

/* Read the segment header through fd: 0 and *flags_r, or -1 with err when the
   header is missing or damaged. */
int spool_seg_read_flags(int fd, uint32_t *flags_r, struct mf_error *err);

/* flock(fd, op) retrying for at most timeout_ms; 0 or -1 with err. */
int spool_lock(int fd, int op, unsigned timeout_ms, const char *what, struct mf_error *err);

/* Seal segment seg: take its lock, set the sealed flag, release the lock.
   0 (also when it was sealed already or no longer exists) / -1 with err. */
int spool_seg_seal(int dirfd, const char *dir, uint64_t seg, struct mf_error *err);

/* Little-endian helpers. */
static inline void spool_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t spool_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The record checksum: BLAKE2b-128 over the 4 length bytes and the payload. */
void spool_rec_hash(unsigned char out[SPOOL_REC_HASH_LEN], const unsigned char len_le[4],
                    const void *payload, size_t len);

#endif
