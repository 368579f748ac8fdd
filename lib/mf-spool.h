/*
 * mf-spool.h - the local, append-only event spool.
 *
 * Every mailfort process that has something to record (PAM module, Dovecot
 * plugins, milter) appends a record here and goes on: it never waits for the
 * database.  mailfort-auditd is the only reader; it ships records into
 * PostgreSQL and remembers how far it got.
 *
 * Layout: a directory holding segment files "events.<N>" (N increasing).
 * Writers append to the highest segment; the reader rotates by creating the
 * next segment when the current one is large, and removes segments it has
 * shipped completely.  Each record is written with one write(2) under an
 * exclusive lock on an O_APPEND file, so records from many processes never
 * interleave.  Each record carries its length and a checksum of its payload:
 *
 *   "MFSR" | u32 payload length (LE) | 16-byte BLAKE2b of payload | payload
 *
 * The reader resumes from a saved (segment, offset) position.  A record cut
 * off at the end of the newest segment (a writer that crashed mid-write, or
 * one still writing) is reported as MF_SPOOL_TORN and not consumed; a bad
 * record followed by good ones (disk damage) is reported as MF_SPOOL_CORRUPT
 * with its position, and the reader resynchronises on the next good record:
 * nothing valid is ever skipped.
 */
#ifndef MF_SPOOL_H
#define MF_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include "mf-common.h"

#define MF_SPOOL_MAX_RECORD (1024 * 1024)

struct mf_spool_writer;
struct mf_spool_reader;

struct mf_spool_pos {
	uint64_t segment;
	uint64_t offset;
};

/* Open the spool directory for appending (creates it if missing, mode 0770). */
struct mf_spool_writer *mf_spool_writer_open(const char *dir, struct mf_error *err) MF_WARN_UNUSED;
void mf_spool_writer_close(struct mf_spool_writer **w);
/* Append one record; returns 0 when it is durably in the file (write(2)
   returned; fsync only if sync is true). Thread-safe. */
int mf_spool_append(struct mf_spool_writer *w, const void *payload, size_t len, bool sync,
		    struct mf_error *err) MF_WARN_UNUSED;

enum mf_spool_status {
	MF_SPOOL_RECORD,  /* *payload_r / *len_r hold the next record */
	MF_SPOOL_EMPTY,   /* nothing more for now */
	MF_SPOOL_TORN,    /* incomplete record at the end of the newest segment */
	MF_SPOOL_CORRUPT, /* damaged record skipped; err says where; call again */
	MF_SPOOL_ERROR,   /* I/O error; err says what */
};

struct mf_spool_reader *mf_spool_reader_open(const char *dir, const struct mf_spool_pos *start,
					     struct mf_error *err) MF_WARN_UNUSED;
void mf_spool_reader_close(struct mf_spool_reader **r);
/* Read the next record. The payload stays valid until the next call.
   *pos_r (if not NULL) is the position just after this record. */
enum mf_spool_status mf_spool_read(struct mf_spool_reader *r, const void **payload_r,
				   size_t *len_r, struct mf_spool_pos *pos_r, struct mf_error *err);
/* Start a new segment if the current one is larger than max_bytes, and remove
   segments that lie wholly before pos. */
int mf_spool_rotate(const char *dir, uint64_t max_bytes, const struct mf_spool_pos *pos,
		    struct mf_error *err);

#endif
