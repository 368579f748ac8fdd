/*
 * fuzz-spool.c - the spool reader over arbitrary segment bytes.
 *
 * The input is the whole content of a segment file (header included, so the
 * sealed flag is fuzzed too), followed by an empty second segment.  The
 * reader must never crash, leak or loop: each call either returns a record
 * or skips damaged bytes (and the position moves forward), or stops (EMPTY,
 * TORN, ERROR).
 *
 * The reader and the segment helpers are compiled into this target (rather
 * than taken from the uninstrumented libmailfort archive) so that the fuzzer
 * sees their coverage.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "spool.c"
#include "spool-reader.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[256];

static void write_file(const char *name, const uint8_t *data, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fuzz_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len))
		abort();
	close(fd);
}

static void remove_fuzz_dir(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/events.0000000001", fuzz_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/events.0000000002", fuzz_dir);
	unlink(path);
	rmdir(fuzz_dir);
}

static bool pos_after(const struct mf_spool_pos *a, const struct mf_spool_pos *b)
{
	return a->segment > b->segment || (a->segment == b->segment && a->offset > b->offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t empty_seg[16] = {'M', 'F', 'S', 'G', 1};
	struct mf_spool_pos pos, prev = {0, 0};
	struct mf_spool_reader *r;
	enum mf_spool_status st;
	struct mf_error err;
	const void *p;
	size_t len, calls = 0;

	if (fuzz_dir[0] == '\0') {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/fuzz-spool.XXXXXX", base);
		if (mkdtemp(fuzz_dir) == NULL)
			abort();
		atexit(remove_fuzz_dir);
	}
	write_file("events.0000000001", data, size);
	write_file("events.0000000002", empty_seg, sizeof(empty_seg));
	r = mf_spool_reader_open(fuzz_dir, NULL, &err);
	if (r == NULL)
		abort();
	for (;;) {
		st = mf_spool_read(r, &p, &len, &pos, &err);
		if (st != MF_SPOOL_RECORD && st != MF_SPOOL_CORRUPT)
			break;
		if (st == MF_SPOOL_RECORD && len > 0)
			(void)memchr(p, 0, len); /* touch the payload */
		/* Progress: the position moves forward (a damaged segment
		   header is reported without moving). */
		if (!pos_after(&pos, &prev) && !(st == MF_SPOOL_CORRUPT && calls == 0))
			abort();
		prev = pos;
		if (++calls > size + 16)
			abort();
	}
	mf_spool_reader_close(&r);
	return 0;
}
