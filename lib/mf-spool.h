/*
 * mf-spool.h - the local, append-only event spool.
 *
 * Every mailfort process that has something to record (PAM module, Dovecot
 * plugins, milter, mailfortctl) hands it to mailfort-spoold (mf-submit.h),
 * the one process that appends records here, and goes on: it never waits
 * for the database.  mailfort-auditd is the only reader; it ships records
 * into PostgreSQL and remembers how far it got.  The writer side below is
 * therefore used by mailfort-spoold (and by tests), never by a producer.
 *
 * LAYOUT
 *
 * A directory holding segment files "events.<N>" (N >= 1, decimal, zero
 * padded to 10 digits: events.0000000001).  Each segment starts with a
 * 16-byte header
 *
 *   "MFSG" | u32 version (1) | u32 flags (bit 0: sealed) | u32 0
 *
 * followed by records
 *
 *   "MFSR" | u32 payload length | 16-byte BLAKE2b(length bytes | payload) | payload
 *
 * (integers little-endian; the checksum also covers the length so that a
 * damaged length field is detected as such).  A small file "current" holds
 * the number of the newest segment (decimal, newline).  A new segment or
 * marker appears under its name complete (written to a temporary file
 * ".tmp.*", then link(2)ed or rename(2)d into place), so no process ever
 * sees a segment without its header or a half-written marker.
 *
 * WRITERS
 *
 * A writer appends each record with one writev(2) on an O_APPEND descriptor
 * while it holds flock(LOCK_EX) on the segment: records from many processes
 * and threads never interleave.  Before writing, still under the lock, it
 * checks the segment's sealed flag (one pread of the header; and with the
 * fstat it needs anyway, that the segment has not been unlinked); if the
 * segment is sealed it re-reads "current" and moves to the segment named
 * there.  A writer reads "current" only when it opens the spool or finds its
 * segment sealed, never per record.  A write that fails part-way (disk full)
 * is cut off again with ftruncate under the same lock, so a failed append
 * leaves no fragment behind.  Apart from repairing a spool damaged by hand
 * (see spool-writer.c), writers create a segment only in a new spool: the
 * one process whose link(2) of the first marker succeeds creates
 * events.0000000001, the others wait for it.  (A writer that merely saw an
 * empty directory must not create segment 1: by the time it does, segment 1
 * may have been filled, read and removed, and its records would be written
 * behind the reader.  The same holds for any segment number, which is why
 * numbers come from the marker, which only moves forward.)
 *
 * ROTATION AND WHY NO RECORD IS EVER LOST
 *
 * Rotation (mf_spool_rotate, called by the reader) creates events.<N+1>,
 * makes it current, and only then takes the lock of events.<N> and sets its
 * sealed flag.  A writer that still holds a descriptor for events.<N> either
 * got the lock before the seal (its record is complete in events.<N> before
 * anybody can see the seal) or after it (it sees the flag and goes to the
 * current segment).  The reader moves past a segment only when it has read to
 * its end after seeing it sealed, and rotation removes only sealed segments
 * that lie wholly before the reader's saved position; the newest segment is
 * never sealed, hence never removed.  So no record can be appended to a
 * segment that the reader has finished or deleted.  (Checks of size or nlink
 * alone would not do: a writer that looked just before the reader deleted the
 * file would append into a file nobody reads again; and a writer must never
 * create "the next segment" by number on its own, since that number may
 * already have been read and removed.)
 *
 * Writers never wait long: the lock is held for one write, and a writer gives
 * up after 2 seconds with an error (a stopped process holding the lock, a
 * hung disk) instead of hanging a login.
 *
 * OWNERSHIP AND PERMISSIONS
 *
 * The writer (mailfort-spoold) and the reader (mailfort-auditd) run as the
 * same user, the spool's owner; nobody else needs, or gets, access:
 *
 *   /var/spool/mailfort   mailfort-auditd:mailfort-auditd  mode 0700
 *   events.<N>            mailfort-auditd  mode 0600 (set explicitly,
 *                         whatever the creator's umask)
 *
 * so a producer's uid (the mail user above all) can neither read, rewrite,
 * remove nor lock a segment: the locks below only ever order the receiver
 * against rotation.  mf_spool_writer_open creates a missing directory with
 * mode 0700.  An unwritable spool gives a clear error from
 * mf_spool_writer_open or mf_spool_append.
 */
#ifndef MF_SPOOL_H
#define MF_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include "mf-common.h"

/* Largest payload of one record. */
#define MF_SPOOL_MAX_RECORD (1024 * 1024)
/* Offset of the first record in a segment (the segment header's size). */
#define MF_SPOOL_FIRST_OFFSET 16

struct mf_spool_writer;
struct mf_spool_reader;

/*
 * A position in the spool: a segment number and a byte offset in that
 * segment file, always at the start of a record (or at the end of the data
 * written so far).  {0, 0} means "the beginning": the oldest segment there is.
 * Positions compare in the obvious order (segment first, then offset).
 */
struct mf_spool_pos {
	uint64_t segment;
	uint64_t offset;
};

/* Open the spool directory for appending (creates it if missing, mode 0700,
   and the first segment if there is none).  Fails with a clear error when the
   directory cannot be created or written. */
struct mf_spool_writer *mf_spool_writer_open(const char *dir, struct mf_error *err) MF_WARN_UNUSED;
void mf_spool_writer_close(struct mf_spool_writer **w);
/* Make mf_event_append fsync every record (config [spool] sync). */
void mf_spool_writer_set_sync(struct mf_spool_writer *w, bool sync);
bool mf_spool_writer_get_sync(const struct mf_spool_writer *w);
/* Append one record (1..MF_SPOOL_MAX_RECORD bytes; 0 bytes is allowed too);
   returns 0 when it is in the file (write(2) returned; fdatasync as well if
   sync is true).  Thread-safe, and safe to use in a child after fork (the
   child re-opens the segment so that its lock is its own). */
int mf_spool_append(struct mf_spool_writer *w, const void *payload, size_t len, bool sync,
                    struct mf_error *err) MF_WARN_UNUSED;

enum mf_spool_status {
	MF_SPOOL_RECORD,  /* *payload_r / *len_r hold the next record */
	MF_SPOOL_EMPTY,   /* nothing more for now */
	MF_SPOOL_TORN,    /* incomplete record at the end of an unsealed segment */
	MF_SPOOL_CORRUPT, /* damaged bytes skipped; err says where; call again */
	MF_SPOOL_ERROR,   /* I/O error; err says what */
};

/*
 * Open the spool for reading from start (NULL = {0, 0}, the beginning).
 * The reader only reads (it never seals, creates or removes anything; that
 * is mf_spool_rotate's job).  Fails when the directory cannot be opened, or
 * when start lies beyond the end of its segment or beyond the newest segment,
 * or the spool holds no segment at all although start is not {0, 0} (the
 * spool was replaced, restored or wiped: reading on from start would skip
 * everything written to it; the caller must decide, e.g. an administrator
 * resets the saved position).
 * If start's segment no longer exists, reading starts at the first record of
 * the next segment that does.
 */
struct mf_spool_reader *mf_spool_reader_open(const char *dir, const struct mf_spool_pos *start,
                                             struct mf_error *err) MF_WARN_UNUSED;
void mf_spool_reader_close(struct mf_spool_reader **r);
/*
 * Read the next record.  The payload stays valid until the next call.
 * *pos_r (if not NULL) is always the position the reader continues from:
 *
 *   RECORD   the position just after this record: save it once the record
 *            is safely shipped, and resume from it after a restart;
 *   EMPTY    where the next record will be (nothing more for now: call again
 *            later);
 *   TORN     the start of the incomplete record, which is not consumed: the
 *            next call reads it again, and returns it once it is complete (a
 *            writer still writing) or reports it as CORRUPT once it is
 *            followed by other records or its segment is sealed (a writer
 *            that died mid-write).  A TORN that lasts (more than a few
 *            seconds: a record is written with one system call) is such a
 *            remnant in a quiet spool: mf_spool_rotate(dir, 0, ...) seals
 *            the segment, and the next call reports it CORRUPT and moves on;
 *   CORRUPT  just after the skipped bytes, which is the next position where
 *            a valid record (or a possibly incomplete one at the end) starts:
 *            nothing valid is skipped.  err and mf_spool_reader_damage say
 *            which bytes were skipped and why;
 *   ERROR    unchanged.
 *
 * The reader passes from segment N to the next existing one only after N has
 * been sealed and read to its end; the position then becomes
 * {next, MF_SPOOL_FIRST_OFFSET} with the first record read from it.
 */
enum mf_spool_status mf_spool_read(struct mf_spool_reader *r, const void **payload_r, size_t *len_r,
                                   struct mf_spool_pos *pos_r, struct mf_error *err);
/* Where the bytes skipped by the last MF_SPOOL_CORRUPT start, and how many. */
void mf_spool_reader_damage(const struct mf_spool_reader *r, struct mf_spool_pos *start_r,
                            uint64_t *len_r);

/*
 * Rotate and clean up; called by the reader (mailfort-auditd) from time to
 * time, typically after each batch it has committed.  In this order:
 *   - make "current" name the newest segment if it is missing, damaged or
 *     behind; if it names a segment beyond the newest (removed by hand),
 *     create that one;
 *   - if the newest segment holds more than max_bytes (0: any record at all),
 *     create the next segment, make it current, and seal the old newest;
 *   - seal every other unsealed segment that is not the newest (repairs a
 *     rotation interrupted between creating and sealing);
 *   - remove the sealed segments that lie wholly before pos (pos NULL: none):
 *     segment < pos->segment, or == pos->segment with pos->offset at or past
 *     its end;
 *   - remove temporary files left by processes that died while creating a
 *     segment (older than a minute).
 * Only pass a pos whose records are safely shipped.  0 / -1 with err.
 *
 * A reader is used by one thread at a time.  Rotation is meant for the one
 * reader of the spool (mailfort-auditd); it may run on another thread than
 * the reader's (auditd rotates on its main thread while its preparing
 * thread reads), because a reader checks a segment's sealed flag again
 * before it trusts what it read.
 */
int mf_spool_rotate(const char *dir, uint64_t max_bytes, const struct mf_spool_pos *pos,
                    struct mf_error *err);

#endif
