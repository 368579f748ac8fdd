/*
 * test-spool.c - the event spool: concurrent writers against a reader that
 * rotates, torn and damaged records, resuming, rotation, permissions.
 *
 * Works in a fresh directory under $MF_TEST_TMP (or /tmp) and removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mf-spool.h"
#include "tap.h"

#define REC_HDR 24

static char base_dir[256];

static void rm_tree(const char *dir)
{
	char path[1024];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%.700s/%.256s", dir, de->d_name);
		if (unlink(path) < 0 && errno == EISDIR)
			rm_tree(path);
	}
	closedir(d);
	rmdir(dir);
}

static const char *new_spool(const char *name)
{
	/* A few live at once (a test may use a second spool). */
	static char paths[4][512];
	static unsigned next;
	char *path = paths[next++ % 4];

	snprintf(path, sizeof(paths[0]), "%s/%.200s", base_dir, name);
	return path;
}

static char *seg_path(const char *dir, uint64_t seg)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%.900s/events.%010" PRIu64, dir, seg);
	return path;
}

static int count_segments(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "events.", 7) == 0)
			n++;
	closedir(d);
	return n;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

/* Deterministic payload for writer w, record n. */
static size_t make_payload(char *buf, size_t cap, unsigned w, unsigned n)
{
	uint32_t x = w * 2654435761u ^ n * 40503u;
	size_t len, i, hl;

	x ^= x >> 13;
	x *= 0x5bd1e995;
	x ^= x >> 15;
	if (n % 997 == 5)
		len = 60000 + x % 5536; /* up to ~64 KiB */
	else if (n % 50 == 7)
		len = 2000 + x % 6000;
	else
		len = 30 + x % 400;
	if (len > cap)
		len = cap;
	hl = (size_t)snprintf(buf, cap, "w=%u n=%u ", w, n);
	for (i = hl; i < len; i++)
		buf[i] = (char)('a' + (x + i * 7) % 26);
	return len < hl ? hl : len;
}

static bool check_payload(const void *p, size_t len, unsigned *w_r, unsigned *n_r)
{
	static char expect[70000];
	size_t elen;

	if (len < 8 || sscanf(p, "w=%u n=%u ", w_r, n_r) != 2)
		return false;
	elen = make_payload(expect, sizeof(expect), *w_r, *n_r);
	return elen == len && memcmp(expect, p, len) == 0;
}

static int append_str(struct mf_spool_writer *w, const char *s)
{
	struct mf_error err;

	if (mf_spool_append(w, s, strlen(s), false, &err) < 0) {
		diag("append: %s", err.msg);
		return -1;
	}
	return 0;
}

/* Read everything now available; record payloads (NUL-terminated) go into
   out[]; returns the count, stops at the first non-RECORD status. */
static int read_all(struct mf_spool_reader *r, char out[][128], int max,
                    enum mf_spool_status *last_r, struct mf_spool_pos *pos_r)
{
	enum mf_spool_status st;
	struct mf_error err;
	const void *p;
	size_t len;
	int n = 0;

	while ((st = mf_spool_read(r, &p, &len, pos_r, &err)) == MF_SPOOL_RECORD) {
		if (n < max) {
			snprintf(out[n], 128, "%.*s", (int)len, (const char *)p);
		}
		n++;
	}
	if (st == MF_SPOOL_CORRUPT || st == MF_SPOOL_ERROR)
		diag("status %d: %s", st, err.msg);
	*last_r = st;
	return n;
}

static void test_basic(void)
{
	const char *dir = new_spool("basic");
	struct mf_spool_writer *w;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos;
	enum mf_spool_status st;
	struct mf_error err;
	char out[8][128];
	struct stat sb;
	int n;

	w = mf_spool_writer_open(dir, &err);
	ok(w != NULL, "writer creates a missing spool directory");
	if (w == NULL) {
		diag("%s", err.msg);
		return;
	}
	memset(&sb, 0, sizeof(sb));
	(void)stat(dir, &sb);
	ok((sb.st_mode & 07777) == 0700,
	   "new spool directory has mode 0700: only its owner enters (is %o)", sb.st_mode & 07777);
	ok(stat(seg_path(dir, 1), &sb) == 0 && (sb.st_mode & 0777) == 0600,
	   "first segment exists with mode 0600: no producer can open or lock it");
	ok(append_str(w, "one") == 0 && append_str(w, "two") == 0 && append_str(w, "") == 0,
	   "three appends succeed (one empty)");
	r = mf_spool_reader_open(dir, NULL, &err);
	ok(r != NULL, "reader opens");
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 3 && strcmp(out[0], "one") == 0 && strcmp(out[1], "two") == 0 && out[2][0] == '\0',
	   "reader returns the records in order");
	ok(st == MF_SPOOL_EMPTY, "then EMPTY");
	ok(pos.segment == 1 && pos.offset == (uint64_t)(16 + 3 * REC_HDR + 6),
	   "position is just after the last record");
	ok(append_str(w, "four") == 0, "append after EMPTY");
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], "four") == 0 && st == MF_SPOOL_EMPTY,
	   "a record appended later is read by the same reader");
	{
		static char big[MF_SPOOL_MAX_RECORD + 1];

		ok(mf_spool_append(w, big, sizeof(big), false, &err) < 0 &&
		       strstr(err.msg, "larger") != NULL,
		   "a record over the limit is refused: %s", err.msg);
		ok(mf_spool_append(w, big, MF_SPOOL_MAX_RECORD, true, &err) == 0,
		   "a record of exactly the limit is accepted (with fsync)");
		n = read_all(r, out, 8, &st, &pos);
		ok(n == 1 && st == MF_SPOOL_EMPTY, "and read back");
	}
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
	ok(w == NULL && r == NULL, "close clears the handles");
	r = mf_spool_reader_open("/nonexistent-mailfort/spool", NULL, &err);
	ok(r == NULL && strstr(err.msg, "/nonexistent-mailfort/spool") != NULL,
	   "reader of a missing spool: %s", err.msg);
	ok(mf_spool_rotate("/nonexistent-mailfort/spool", 0, NULL, &err) < 0 &&
	       strstr(err.msg, "No such file") != NULL,
	   "rotation of a missing spool: %s", err.msg);
}

/* The big one: 8 processes x 10,000 records while the reader reads and
   rotates. */
#define NWRITERS 8
#define NRECORDS 10000

static int writer_child(const char *dir, unsigned id, bool pause)
{
	static char buf[70000];
	struct mf_spool_writer *w;
	struct mf_error err;
	size_t len;

	w = mf_spool_writer_open(dir, &err);
	if (w == NULL) {
		fprintf(stderr, "writer %u: %s\n", id, err.msg);
		return 1;
	}
	for (unsigned n = 0; n < NRECORDS; n++) {
		len = make_payload(buf, sizeof(buf), id, n);
		if (mf_spool_append(w, buf, len, false, &err) < 0) {
			fprintf(stderr, "writer %u record %u: %s\n", id, n, err.msg);
			mf_spool_writer_close(&w);
			return 1;
		}
		/* Now and then a pause, so that the reader, one process among
		   nine on a small machine, reads and rotates while we write. */
		if (pause && n % 200 == 199)
			usleep(2000);
	}
	mf_spool_writer_close(&w);
	return 0;
}

static void test_concurrent(void)
{
	const char *dir = new_spool("concurrent");
	unsigned next[NWRITERS] = {0}, wid, n;
	int status, running = NWRITERS, bad = 0, dup_or_gap = 0, corrupt = 0, torn = 0;
	int rotations = 0, child_fail = 0, max_segs = 0, segs, read_active = 0, seg_active = 0;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos = {0, 0};
	enum mf_spool_status st;
	struct mf_error err;
	uint64_t total = 0, seg_seen = 0;
	volatile int *finished;
	const void *p;
	size_t len;

	/* How many writers have finished, shared with them. */
	finished =
	    mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (finished == MAP_FAILED || mkdir(dir, 02770) < 0) {
		ok(0, "set up %s: %s", dir, strerror(errno));
		return;
	}
	*finished = 0;
	r = mf_spool_reader_open(dir, NULL, &err);
	if (!ok(r != NULL, "reader opens an empty spool"))
		return;
	for (int i = 0; i < NWRITERS; i++) {
		if (fork() == 0) {
			int rc;

			mf_spool_reader_close(&r);
			rc = writer_child(dir, (unsigned)i, true);
			__atomic_add_fetch(finished, 1, __ATOMIC_SEQ_CST);
			_exit(rc);
		}
	}
	for (;;) {
		bool active = __atomic_load_n(finished, __ATOMIC_SEQ_CST) < NWRITERS;

		st = mf_spool_read(r, &p, &len, &pos, &err);
		if (st == MF_SPOOL_RECORD) {
			total++;
			read_active += active;
			if (!check_payload(p, len, &wid, &n) || wid >= NWRITERS) {
				if (bad++ < 5)
					diag("bad payload at %" PRIu64 ":%" PRIu64, pos.segment,
					     pos.offset);
				continue;
			}
			if (n != next[wid] && dup_or_gap++ < 5)
				diag("writer %u: record %u where %u was expected", wid, n,
				     next[wid]);
			next[wid] = n + 1;
			if (pos.segment != seg_seen) {
				seg_seen = pos.segment;
				seg_active += active;
			}
			/* Rotate often, every other time whatever the size, to
			   seal segments under writers' feet. */
			if (total % 200 == 0) {
				if (mf_spool_rotate(dir, total % 400 == 0 ? 0 : 64 * 1024, &pos,
				                    &err) < 0)
					diag("rotate: %s", err.msg);
				else
					rotations++;
				segs = count_segments(dir);
				if (segs > max_segs)
					max_segs = segs;
			}
			continue;
		}
		if (st == MF_SPOOL_CORRUPT) {
			if (corrupt++ < 5)
				diag("corrupt: %s", err.msg);
			continue;
		}
		if (st == MF_SPOOL_ERROR) {
			diag("error: %s", err.msg);
			break;
		}
		if (st == MF_SPOOL_TORN)
			torn++;
		/* EMPTY or TORN: are the writers done? */
		if (running == 0)
			break;
		while (running > 0 && waitpid(-1, &status, WNOHANG) > 0) {
			running--;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				child_fail++;
		}
		if (running > 0)
			usleep(500);
		else if (mf_spool_rotate(dir, 0, &pos, &err) < 0)
			diag("rotate: %s", err.msg); /* last pass: all is there now */
	}
	ok(child_fail == 0, "all %d writer processes succeeded", NWRITERS);
	ok(total == NWRITERS * NRECORDS, "every record read exactly once (%" PRIu64 " of %d)",
	   total, NWRITERS * NRECORDS);
	ok(bad == 0, "every payload intact (%d bad)", bad);
	ok(dup_or_gap == 0, "per-writer order preserved, no duplicate or gap");
	for (n = 0, wid = 0; wid < NWRITERS; wid++)
		n += next[wid] == NRECORDS;
	ok(n == NWRITERS, "each writer's last record was read");
	ok(corrupt == 0, "no record reported corrupt");
	ok(st == MF_SPOOL_EMPTY, "the spool ends EMPTY, no torn record left");
	diag("%d rotations, %d torn reads of records being written, at most %d segments, "
	     "last segment %" PRIu64,
	     rotations, torn, max_segs, pos.segment);
	ok(read_active > 0 && seg_active > 0,
	   "reading and rotation overlapped the writing (%d records, %d segments)", read_active,
	   seg_active);
	if (mf_spool_rotate(dir, 0, &pos, &err) < 0)
		diag("rotate: %s", err.msg);
	ok(count_segments(dir) <= 2, "shipped segments were removed (%d left)",
	   count_segments(dir));
	mf_spool_reader_close(&r);
	munmap((void *)finished, sizeof(int));
}

/* Five records; the file is then cut inside the last one. */
static void test_torn(void)
{
	const char *dir = new_spool("torn");
	struct mf_spool_writer *w;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos, pos2;
	enum mf_spool_status st;
	struct mf_error err;
	char out[8][128], path[1024];
	const char *last = "the fifth record, cut in half";
	off_t full, start;
	int n, fd;

	w = mf_spool_writer_open(dir, &err);
	if (!ok(w != NULL, "torn: writer opens"))
		return;
	for (int i = 1; i <= 4; i++) {
		char s[32];

		snprintf(s, sizeof(s), "record %d", i);
		(void)append_str(w, s);
	}
	snprintf(path, sizeof(path), "%s", seg_path(dir, 1));
	start = file_size(path);
	(void)append_str(w, last);
	full = file_size(path);
	ok(truncate(path, start + REC_HDR + 5) == 0, "cut the last record mid-payload");
	r = mf_spool_reader_open(dir, NULL, &err);
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 4 && strcmp(out[3], "record 4") == 0, "all complete records are read");
	ok(st == MF_SPOOL_TORN, "the cut record is reported TORN (status %d)", st);
	ok(pos.segment == 1 && pos.offset == (uint64_t)start,
	   "TORN position is the start of the cut record");
	n = read_all(r, out, 8, &st, &pos2);
	ok(n == 0 && st == MF_SPOOL_TORN && pos2.offset == pos.offset,
	   "TORN again on the next call, nothing consumed");

	/* Complete it: write the missing bytes. */
	{
		char rec[256];
		size_t rlen = (size_t)(full - start);

		/* Rebuild the record as the writer wrote it, from a copy. */
		const char *cdir = new_spool("torn-copy");
		struct mf_spool_writer *cw = mf_spool_writer_open(cdir, &err);

		ok(cw != NULL && append_str(cw, last) == 0, "build the full record elsewhere");
		mf_spool_writer_close(&cw);
		fd = open(seg_path(cdir, 1), O_RDONLY);
		ok(fd >= 0 && pread(fd, rec, rlen, 16) == (ssize_t)rlen, "read it");
		if (fd >= 0)
			close(fd);
		fd = open(path, O_WRONLY | O_APPEND);
		ok(fd >= 0 && write(fd, rec + REC_HDR + 5, rlen - REC_HDR - 5) ==
		                  (ssize_t)(rlen - REC_HDR - 5),
		   "append the missing bytes");
		if (fd >= 0)
			close(fd);
	}
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], last) == 0 && st == MF_SPOOL_EMPTY,
	   "the completed record is read, then EMPTY (%d, %d)", n, st);
	mf_spool_reader_close(&r);

	/* Only two bytes of a header at the end: torn too. */
	(void)append_str(w, "after");
	start = file_size(path);
	(void)append_str(w, "lost");
	ok(truncate(path, start + 2) == 0, "cut a record inside its marker");
	r = mf_spool_reader_open(dir, &pos, &err);
	n = read_all(r, out, 8, &st, &pos2);
	ok(n == 1 && strcmp(out[0], "after") == 0 && st == MF_SPOOL_TORN,
	   "a cut marker is TORN too");

	/* A writer appends after the torn remnant (its writer died): the
	   remnant becomes CORRUPT and the new record is read. */
	ok(append_str(w, "new after remnant") == 0, "append after a remnant");
	st = mf_spool_read(r, &(const void *){NULL}, &(size_t){0}, &pos2, &err);
	ok(st == MF_SPOOL_CORRUPT, "the remnant followed by a record is CORRUPT: %s",
	   st == MF_SPOOL_CORRUPT ? err.msg : "-");
	n = read_all(r, out, 8, &st, &pos2);
	ok(n == 1 && strcmp(out[0], "new after remnant") == 0 && st == MF_SPOOL_EMPTY,
	   "and the record after it is read");
	mf_spool_reader_close(&r);

	/* Torn at the end of a sealed segment: CORRUPT, then the next one. */
	start = file_size(path);
	(void)append_str(w, "sealed torn");
	ok(truncate(path, start + 10) == 0, "cut the last record again");
	ok(mf_spool_rotate(dir, 0, NULL, &err) == 0, "rotate seals the segment");
	ok(append_str(w, "in segment 2") == 0, "the writer moves on to segment 2");
	r = mf_spool_reader_open(dir, &pos2, &err);
	st = mf_spool_read(r, &(const void *){NULL}, &(size_t){0}, &pos, &err);
	ok(st == MF_SPOOL_CORRUPT && strstr(err.msg, "sealed") != NULL,
	   "incomplete record in a sealed segment is CORRUPT: %s", err.msg);
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], "in segment 2") == 0 && pos.segment == 2,
	   "then the next segment is read");
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
}

static void test_corrupt(void)
{
	static const struct {
		const char *what;
		int where; /* offset inside record 5 */
	} cases[] = {
	    {"a flipped payload byte", REC_HDR + 3},
	    {"a flipped marker byte", 1},
	    {"a flipped length byte", 5},
	    {"a flipped checksum byte", 12},
	};

	for (size_t c = 0; c < MF_N_ELEMENTS(cases); c++) {
		char name[32], out[16][128], rec[32];
		struct mf_spool_writer *w;
		struct mf_spool_reader *r;
		struct mf_spool_pos pos, dpos;
		enum mf_spool_status st;
		struct mf_error err;
		off_t offs[11];
		uint64_t dlen;
		unsigned char b;
		const char *dir;
		int fd, n, m;

		snprintf(name, sizeof(name), "corrupt%zu", c);
		dir = new_spool(name);
		w = mf_spool_writer_open(dir, &err);
		if (!ok(w != NULL, "corrupt: writer opens"))
			return;
		for (int i = 0; i < 10; i++) {
			offs[i] = file_size(seg_path(dir, 1));
			snprintf(rec, sizeof(rec), "record %d payload", i);
			(void)append_str(w, rec);
		}
		offs[10] = file_size(seg_path(dir, 1));
		fd = open(seg_path(dir, 1), O_RDWR);
		if (pread(fd, &b, 1, offs[4] + cases[c].where) == 1) {
			b ^= 0x40;
			if (pwrite(fd, &b, 1, offs[4] + cases[c].where) != 1)
				diag("pwrite failed");
		}
		close(fd);
		r = mf_spool_reader_open(dir, NULL, &err);
		n = read_all(r, out, 16, &st, &pos);
		ok(n == 4 && st == MF_SPOOL_CORRUPT, "%s: 4 records, then CORRUPT (%d, %d)",
		   cases[c].what, n, st);
		mf_spool_reader_damage(r, &dpos, &dlen);
		ok(dpos.segment == 1 && dpos.offset == (uint64_t)offs[4] &&
		       dlen == (uint64_t)(offs[5] - offs[4]),
		   "%s: damage reported at the record's position and length", cases[c].what);
		ok(pos.offset == (uint64_t)offs[5], "%s: reading resumes at the next record",
		   cases[c].what);
		m = read_all(r, out, 16, &st, &pos);
		ok(m == 5 && strcmp(out[0], "record 5 payload") == 0 &&
		       strcmp(out[4], "record 9 payload") == 0 && st == MF_SPOOL_EMPTY,
		   "%s: every other record is still read", cases[c].what);
		/* A new reader from the start sees exactly the same. */
		mf_spool_reader_close(&r);
		mf_spool_writer_close(&w);
	}

	/* Garbage between records, containing a false marker. */
	{
		const char *dir = new_spool("garbage");
		struct mf_spool_writer *w = NULL;
		struct mf_spool_reader *r;
		struct mf_spool_pos pos;
		enum mf_spool_status st;
		struct mf_error err;
		char out[8][128];
		int fd, n;

		w = mf_spool_writer_open(dir, &err);
		(void)append_str(w, "before");
		fd = open(seg_path(dir, 1), O_WRONLY | O_APPEND);
		ok(write(fd, "xxMFSR\x05\0\0\0junkjunkjunkjunkjunkMFSRMF", 37) == 37,
		   "garbage with false markers appended");
		close(fd);
		(void)append_str(w, "after");
		r = mf_spool_reader_open(dir, NULL, &err);
		n = read_all(r, out, 8, &st, &pos);
		ok(n == 1 && st == MF_SPOOL_CORRUPT, "garbage is CORRUPT");
		n = read_all(r, out, 8, &st, &pos);
		ok(n == 1 && strcmp(out[0], "after") == 0 && st == MF_SPOOL_EMPTY,
		   "the record after the garbage is read");
		mf_spool_reader_close(&r);
		mf_spool_writer_close(&w);
	}
}

static void test_resume(void)
{
	const char *dir = new_spool("resume");
	struct mf_spool_writer *w;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos, saved = {0, 0};
	enum mf_spool_status st;
	struct mf_error err;
	char out[32][128], rec[32];
	int n, ok_order = 1;

	w = mf_spool_writer_open(dir, &err);
	if (!ok(w != NULL, "resume: writer opens"))
		return;
	for (int i = 0; i < 20; i++) {
		snprintf(rec, sizeof(rec), "r%d", i);
		(void)append_str(w, rec);
		if (i == 9 && mf_spool_rotate(dir, 0, NULL, &err) < 0)
			diag("rotate: %s", err.msg);
	}
	r = mf_spool_reader_open(dir, NULL, &err);
	for (n = 0; n < 12; n++) {
		const void *p;
		size_t len;

		st = mf_spool_read(r, &p, &len, &pos, &err);
		if (st != MF_SPOOL_RECORD)
			break;
		saved = pos;
	}
	mf_spool_reader_close(&r);
	ok(n == 12 && saved.segment == 2,
	   "read 12 records across a rotation, saved %" PRIu64 ":%" PRIu64, saved.segment,
	   saved.offset);
	r = mf_spool_reader_open(dir, &saved, &err);
	n = read_all(r, out, 32, &st, &pos);
	for (int i = 0; i < n && i < 8; i++) {
		snprintf(rec, sizeof(rec), "r%d", i + 12);
		ok_order &= strcmp(out[i], rec) == 0;
	}
	ok(n == 8 && ok_order && st == MF_SPOOL_EMPTY,
	   "resuming from the saved position returns exactly the remaining 8");
	mf_spool_reader_close(&r);

	/* A position at the end of segment 1: continues in segment 2. */
	{
		struct mf_spool_pos end1 = {1, (uint64_t)file_size(seg_path(dir, 1))};

		r = mf_spool_reader_open(dir, &end1, &err);
		n = read_all(r, out, 32, &st, &pos);
		ok(n == 10 && strcmp(out[0], "r10") == 0, "resume at a segment's end");
		mf_spool_reader_close(&r);
	}
	/* A position beyond the end: refused with a clear error. */
	{
		struct mf_spool_pos bad = {2, 1u << 30};

		r = mf_spool_reader_open(dir, &bad, &err);
		ok(r == NULL && strstr(err.msg, "beyond the end") != NULL,
		   "a position beyond the data is refused: %s", err.msg);
	}
	/* A position in a segment beyond the newest: the spool was replaced. */
	{
		struct mf_spool_pos later = {7, 16};

		r = mf_spool_reader_open(dir, &later, &err);
		ok(r == NULL && strstr(err.msg, "beyond the newest segment") != NULL,
		   "a position beyond the newest segment is refused: %s", err.msg);
		const char *empty = new_spool("resume-empty");

		(void)mkdir(empty, 0770);
		r = mf_spool_reader_open(empty, &later, &err);
		ok(r == NULL && strstr(err.msg, "no segment") != NULL,
		   "a saved position in an empty spool is refused: %s", err.msg);
	}
	/* The saved segment was removed: start at the next one. */
	{
		struct mf_spool_pos gone = {1, 40};

		ok(mf_spool_rotate(dir, 1u << 30, &saved, &err) == 0, "rotate removes segment 1");
		ok(file_size(seg_path(dir, 1)) < 0, "segment 1 is gone");
		r = mf_spool_reader_open(dir, &gone, &err);
		n = read_all(r, out, 32, &st, &pos);
		ok(n == 10 && strcmp(out[0], "r10") == 0,
		   "resuming in a removed segment starts at the next one");
		mf_spool_reader_close(&r);
	}
	mf_spool_writer_close(&w);
}

static void test_rotation(void)
{
	const char *dir = new_spool("rotation");
	struct mf_spool_writer *w, *stale;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos, mid;
	enum mf_spool_status st;
	struct mf_error err;
	char out[16][128];
	off_t s1;
	int n;

	w = mf_spool_writer_open(dir, &err);
	stale = mf_spool_writer_open(dir, &err);
	if (!ok(w != NULL && stale != NULL, "rotation: two writers open"))
		return;
	(void)append_str(w, "a");
	(void)append_str(stale, "b");
	ok(mf_spool_rotate(dir, 1024, NULL, &err) == 0 && count_segments(dir) == 1,
	   "a small segment is not rotated");
	ok(mf_spool_rotate(dir, 0, NULL, &err) == 0 && count_segments(dir) == 2,
	   "rotation creates segment 2");
	s1 = file_size(seg_path(dir, 1));
	(void)append_str(w, "c");
	(void)append_str(stale, "d");
	ok(file_size(seg_path(dir, 1)) == s1, "no writer appends to the sealed segment");
	r = mf_spool_reader_open(dir, NULL, &err);
	n = read_all(r, out, 16, &st, &pos);
	ok(n == 4 && strcmp(out[0], "a") == 0 && strcmp(out[3], "d") == 0 && pos.segment == 2 &&
	       st == MF_SPOOL_EMPTY,
	   "the reader goes through both segments");
	mid.segment = 1;
	mid.offset = 16;
	ok(mf_spool_rotate(dir, 1u << 20, &mid, &err) == 0 && file_size(seg_path(dir, 1)) == s1,
	   "a segment not fully read is kept");
	ok(mf_spool_rotate(dir, 1u << 20, &pos, &err) == 0 && file_size(seg_path(dir, 1)) < 0 &&
	       file_size(seg_path(dir, 2)) > 0,
	   "a fully read segment is removed, the newest kept");
	/* The newest is never removed even when the position is past it. */
	ok(mf_spool_rotate(dir, 1u << 20, &(struct mf_spool_pos){99, 0}, &err) == 0 &&
	       file_size(seg_path(dir, 2)) > 0,
	   "the newest (unsealed) segment is never removed");
	/* Rotate twice and remove, while `stale` still holds segment 2. */
	ok(mf_spool_rotate(dir, 0, NULL, &err) == 0, "rotate to segment 3");
	(void)append_str(w, "e");
	ok(mf_spool_rotate(dir, 0, NULL, &err) == 0, "rotate to segment 4");
	n = read_all(r, out, 16, &st, &pos);
	ok(n == 1 && strcmp(out[0], "e") == 0, "reader reads segment 3");
	ok(mf_spool_rotate(dir, 1u << 20, &pos, &err) == 0 && file_size(seg_path(dir, 2)) < 0 &&
	       file_size(seg_path(dir, 3)) < 0,
	   "segments 2 and 3 are removed");
	ok(append_str(stale, "f") == 0, "a writer holding a removed segment appends");
	n = read_all(r, out, 16, &st, &pos);
	ok(n == 1 && strcmp(out[0], "f") == 0 && pos.segment == 4,
	   "its record lands in the newest segment and is read");
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
	mf_spool_writer_close(&stale);
}

/* A writer opened before fork(): children must not share its lock. */
static void test_fork_shared_writer(void)
{
	const char *dir = new_spool("forked");
	struct mf_spool_writer *w;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos;
	enum mf_spool_status st;
	struct mf_error err;
	const void *p;
	size_t len;
	unsigned wid, n, next[4] = {0};
	int total = 0, bad = 0, status, fails = 0;
	static char buf[70000];

	w = mf_spool_writer_open(dir, &err);
	if (!ok(w != NULL, "fork: writer opens"))
		return;
	(void)append_str(w, "w=9 n=0 parent");
	for (int i = 0; i < 4; i++) {
		if (fork() == 0) {
			for (n = 0; n < 2000; n++) {
				len = make_payload(buf, sizeof(buf), (unsigned)i, n);
				if (mf_spool_append(w, buf, len, false, &err) < 0)
					_exit(1);
			}
			mf_spool_writer_close(&w);
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fails++;
	}
	ok(fails == 0, "4 children append through the inherited writer");
	r = mf_spool_reader_open(dir, NULL, &err);
	(void)mf_spool_read(r, &p, &len, &pos, &err);
	while ((st = mf_spool_read(r, &p, &len, &pos, &err)) == MF_SPOOL_RECORD) {
		total++;
		if (!check_payload(p, len, &wid, &n) || wid >= 4 || n != next[wid])
			bad++;
		else
			next[wid]++;
	}
	ok(total == 8000 && bad == 0 && st == MF_SPOOL_EMPTY,
	   "all 8000 records intact and in order (%d read, %d bad, status %d)", total, bad, st);
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
}

/* Threads sharing one writer (libmilter), next to another process. */
struct thread_arg {
	struct mf_spool_writer *w;
	unsigned id;
	int failed;
};

static void *thread_writer(void *p)
{
	struct thread_arg *a = p;
	struct mf_error err;
	char *buf = malloc(70000);
	size_t len;

	for (unsigned n = 0; buf != NULL && n < 5000; n++) {
		len = make_payload(buf, 70000, a->id, n);
		if (mf_spool_append(a->w, buf, len, false, &err) < 0) {
			a->failed++;
			break;
		}
	}
	free(buf);
	return NULL;
}

static void test_threads(void)
{
	const char *dir = new_spool("threads");
	struct thread_arg args[4];
	pthread_t tids[4];
	struct mf_spool_writer *w;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos;
	enum mf_spool_status st;
	struct mf_error err;
	unsigned next[5] = {0}, wid, n;
	int total = 0, bad = 0, failed = 0, status;
	const void *p;
	size_t len;
	pid_t pid;

	w = mf_spool_writer_open(dir, &err);
	if (!ok(w != NULL, "threads: writer opens"))
		return;
	pid = fork();
	if (pid == 0)
		_exit(writer_child(dir, 4, false) != 0);
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){w, i, 0};
		pthread_create(&tids[i], NULL, thread_writer, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tids[i], NULL);
		failed += args[i].failed;
	}
	waitpid(pid, &status, 0);
	ok(failed == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "4 threads sharing a writer and another process append");
	r = mf_spool_reader_open(dir, NULL, &err);
	while ((st = mf_spool_read(r, &p, &len, &pos, &err)) == MF_SPOOL_RECORD) {
		total++;
		if (!check_payload(p, len, &wid, &n) || wid > 4 || n != next[wid])
			bad++;
		else
			next[wid]++;
	}
	ok(total == 4 * 5000 + NRECORDS && bad == 0 && st == MF_SPOOL_EMPTY,
	   "all records intact, each thread's in order (%d read, %d bad)", total, bad);
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
}

/* A write that fails part-way (file size limit, as with a full disk). */
static void test_write_failure(void)
{
	const char *dir = new_spool("full");
	struct mf_spool_writer *w;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos;
	enum mf_spool_status st;
	struct mf_error err;
	char out[8][128], path[1024], big[4000];
	int fds[2], status, n;
	off_t before = 0;
	char msg[MF_ERROR_MAX] = "";
	ssize_t got;

	w = mf_spool_writer_open(dir, &err);
	if (!ok(w != NULL && pipe(fds) == 0, "full: writer opens"))
		return;
	(void)append_str(w, "before the failure");
	snprintf(path, sizeof(path), "%s", seg_path(dir, 1));
	memset(big, 'x', sizeof(big));
	if (fork() == 0) {
		struct rlimit rl;

		close(fds[0]);
		signal(SIGXFSZ, SIG_IGN);
		rl.rlim_cur = rl.rlim_max = (rlim_t)file_size(path) + 1000;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(2);
		if (mf_spool_append(w, big, sizeof(big), false, &err) == 0)
			_exit(1);
		if (write(fds[1], err.msg, strlen(err.msg)) < 0)
			_exit(2);
		/* A record that fits is still accepted afterwards. */
		if (append_str(w, "after the failure") < 0)
			_exit(3);
		_exit(0);
	}
	close(fds[1]);
	got = read(fds[0], msg, sizeof(msg) - 1);
	msg[got > 0 ? got : 0] = '\0';
	close(fds[0]);
	wait(&status);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(msg, "File too large") != NULL,
	   "a failed write is a clear error: %s", msg);
	before = file_size(path);
	r = mf_spool_reader_open(dir, NULL, &err);
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 2 && strcmp(out[0], "before the failure") == 0 &&
	       strcmp(out[1], "after the failure") == 0 && st == MF_SPOOL_EMPTY &&
	       pos.offset == (uint64_t)before,
	   "no fragment of the failed record is left (%d records, status %d)", n, st);
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
}

/* A process holding the segment lock does not hang writers. */
static void test_lock_timeout(void)
{
	const char *dir = new_spool("locked");
	struct mf_spool_writer *w;
	struct mf_error err;
	struct timespec t0, t1;
	double secs;
	int fd, rc;

	w = mf_spool_writer_open(dir, &err);
	fd = open(seg_path(dir, 1), O_RDONLY);
	if (!ok(w != NULL && fd >= 0 && flock(fd, LOCK_EX) == 0, "lock the segment"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mf_spool_append(w, "x", 1, false, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(rc < 0 && strstr(err.msg, "still locked") != NULL, "a writer gives up: %s", err.msg);
	ok(secs >= 1.9 && secs < 4.0, "after about 2 seconds (%.2f)", secs);
	close(fd);
	ok(mf_spool_append(w, "x", 1, false, &err) == 0, "and works once the lock is free");
	mf_spool_writer_close(&w);
}

/* The "current" marker missing or damaged; a segment removed by hand. */
static void test_marker(void)
{
	const char *dir = new_spool("marker");
	struct mf_spool_writer *w, *w2;
	struct mf_spool_reader *r;
	struct mf_spool_pos pos;
	enum mf_spool_status st;
	struct mf_error err;
	char out[8][128], path[1024];
	int n, fd;

	w = mf_spool_writer_open(dir, &err);
	(void)append_str(w, "s1");
	(void)mf_spool_rotate(dir, 0, NULL, &err);
	(void)append_str(w, "s2");
	(void)mf_spool_rotate(dir, 0, NULL, &err);
	(void)append_str(w, "s3");
	r = mf_spool_reader_open(dir, NULL, &err);
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 3 && pos.segment == 3, "three segments read");
	ok(mf_spool_rotate(dir, 1u << 20, &pos, &err) == 0 && count_segments(dir) == 1,
	   "the first two are removed");
	snprintf(path, sizeof(path), "%s/current", dir);
	ok(unlink(path) == 0, "remove the current marker");
	w2 = mf_spool_writer_open(dir, &err);
	ok(w2 != NULL && append_str(w2, "no marker") == 0, "a new writer still appends");
	ok(file_size(seg_path(dir, 1)) < 0, "and did not restart at segment 1");
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], "no marker") == 0, "its record is read");
	mf_spool_writer_close(&w2);
	fd = open(path, O_WRONLY | O_TRUNC);
	ok(fd >= 0 && write(fd, "junk\n", 5) == 5, "damage the marker");
	close(fd);
	w2 = mf_spool_writer_open(dir, &err);
	ok(w2 != NULL && append_str(w2, "bad marker") == 0, "a writer copes with a damaged marker");
	ok(mf_spool_rotate(dir, 1u << 20, NULL, &err) == 0, "rotation repairs the marker: %s",
	   err.msg);
	{
		char buf[32] = "";

		fd = open(path, O_RDONLY);
		if (fd >= 0 && read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = '\0';
		close(fd);
		ok(strcmp(buf, "0000000003\n") == 0, "marker names segment 3 again");
	}
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], "bad marker") == 0, "its record is read");

	/* The newest segment removed by hand while writers and the reader hold it. */
	ok(unlink(seg_path(dir, 3)) == 0, "remove the newest segment by hand");
	ok(append_str(w, "after removal") == 0, "a writer holding it moves on");
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], "after removal") == 0 && pos.segment == 4,
	   "the reader follows to the new segment");

	/* The marker names a segment that is not there. */
	fd = open(path, O_WRONLY | O_TRUNC);
	ok(fd >= 0 && write(fd, "0000000009\n", 11) == 11, "point the marker at segment 9");
	close(fd);
	mf_spool_writer_close(&w2);
	w2 = mf_spool_writer_open(dir, &err);
	ok(w2 != NULL && append_str(w2, "in nine") == 0 && file_size(seg_path(dir, 9)) > 0,
	   "a new writer creates the segment the marker names");
	ok(mf_spool_rotate(dir, 1u << 20, &pos, &err) == 0, "rotation seals the older ones");
	n = read_all(r, out, 8, &st, &pos);
	ok(n == 1 && strcmp(out[0], "in nine") == 0 && pos.segment == 9,
	   "the reader gets there across the gap");
	mf_spool_reader_close(&r);
	mf_spool_writer_close(&w);
	mf_spool_writer_close(&w2);
}

static void test_permissions(void)
{
	struct mf_spool_writer *w;
	struct mf_error err;
	const char *dir = new_spool("readonly");
	int fds[2], status;
	char msg[MF_ERROR_MAX] = "";
	ssize_t n;

	w = mf_spool_writer_open("/nonexistent-mailfort/a/b", &err);
	ok(w == NULL && strstr(err.msg, "/nonexistent-mailfort/a/b") != NULL &&
	       strstr(err.msg, "No such file") != NULL,
	   "a spool under a missing directory: %s", err.msg);

	/* A directory the writer may not write to: as root, test as nobody. */
	if (mkdir(dir, 0755) < 0 || pipe(fds) < 0) {
		ok(0, "set up %s", dir);
		return;
	}
	if (fork() == 0) {
		close(fds[0]);
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		if (geteuid() != 0)
			(void)chmod(dir, 0555);
		w = mf_spool_writer_open(dir, &err);
		if (w != NULL)
			_exit(1);
		if (write(fds[1], err.msg, strlen(err.msg)) < 0)
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	(void)wait(&status);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(msg, dir) != NULL &&
	       strstr(msg, "Permission denied") != NULL,
	   "an unwritable spool gives a clear error: %s", msg);
	(void)chmod(dir, 0755);
}

int main(void)
{
	const char *tmp = getenv("MF_TEST_TMP");

	snprintf(base_dir, sizeof(base_dir), "%s/test-spool.XXXXXX",
	         tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(base_dir) == NULL) {
		printf("Bail out! mkdtemp %s: %s\n", base_dir, strerror(errno));
		return 1;
	}
	chmod(base_dir, 0755);
	test_basic();
	test_torn();
	test_corrupt();
	test_resume();
	test_rotation();
	test_fork_shared_writer();
	test_permissions();
	test_threads();
	test_write_failure();
	test_lock_timeout();
	test_marker();
	test_concurrent();
	if (!getenv("KEEP"))
		rm_tree(base_dir);
	return tap_done();
}
