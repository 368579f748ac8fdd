/*
 * spool-bench.c - cost of recording an audit event: building the JSON
 * event, appending it to the spool (1 to 8 processes at once, with and
 * without fsync), and reading it back as mailfort-auditd does.
 *
 *   spool-bench [DIR]      (default: a fresh directory under /tmp)
 *   spool-bench DIR --submit SOCKET
 *                          also hand 100,000 events to a running
 *                          mailfort-spoold on SOCKET, waiting for each
 *                          answer and without waiting (as a mail session
 *                          does): the producer's wall and CPU time per
 *                          event, against appending to DIR directly
 *
 * Prints one line per measurement; exits non-zero if anything failed or a
 * record was lost.  Not run by scripts/test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "mf-event.h"
#include "mf-spool.h"
#include "mf-submit.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds used by this process (self) or its waited-for children. */
static double cpu(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static struct mf_event *typical_event(unsigned n)
{
	struct mf_event *ev = mf_event_new("read", "mx1");

	mf_event_add_str(ev, "user", "alice.example@agency.example.gov");
	mf_event_add_str(ev, "service", "imap");
	mf_event_add_str(ev, "session", "Fq9oQ1bZkMDAAAAAAAAAAAAAAAAAAAA");
	mf_event_add_str(ev, "ip", "192.0.2.17");
	mf_event_add_int(ev, "port", 51234);
	mf_event_add_str(ev, "mailbox", "INBOX/Projects/2026");
	mf_event_add_int(ev, "uid", n);
	mf_event_add_str(ev, "message_id", "<20261127062144.12345@mail.example.gov>");
	mf_event_add_str(ev, "subject", "Re: Budget \"Q4\" \xe2\x80\x93 final");
	return ev;
}

static int append_many(const char *dir, unsigned count, bool sync)
{
	struct mf_spool_writer *w;
	struct mf_event *ev;
	struct mf_error err;
	const char *json;
	size_t len;

	w = mf_spool_writer_open(dir, &err);
	if (w == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	ev = typical_event(0);
	json = mf_event_json(ev, &len);
	for (unsigned i = 0; i < count; i++) {
		if (mf_spool_append(w, json, len, sync, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			mf_event_free(&ev);
			mf_spool_writer_close(&w);
			return -1;
		}
	}
	mf_event_free(&ev);
	mf_spool_writer_close(&w);
	return 0;
}

/* Hand count events to mailfort-spoold; the producer's time per event. */
static int submit_many(const char *sock, unsigned count, bool wait)
{
	struct mf_submit *s;
	struct mf_event *ev;
	struct mf_error err;
	const char *json;
	double t0, t, c0, c;
	size_t len;
	int ret = 0;

	s = mf_submit_open(sock, 5000, &err);
	if (s == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	ev = typical_event(0);
	json = mf_event_json(ev, &len);
	c0 = cpu(RUSAGE_SELF);
	t0 = now();
	for (unsigned i = 0; i < count && ret == 0; i++)
		ret = wait ? mf_submit_send(s, json, len, &err)
		           : mf_submit_send_nowait(s, json, len, &err);
	if (ret == 0)
		ret = mf_submit_flush(s, &err);
	t = now() - t0;
	c = cpu(RUSAGE_SELF) - c0;
	if (ret < 0)
		fprintf(stderr, "%s\n", err.msg);
	printf("submit to spoold, %s x %u         %10.2f %10.2f %12.0f\n",
	       wait ? "each answer  " : "answer later ", count, t / count * 1e6, c / count * 1e6,
	       count / t);
	mf_event_free(&ev);
	mf_submit_close(&s);
	return ret;
}

static long read_all(const char *dir, struct mf_spool_pos *pos)
{
	struct mf_spool_reader *r;
	enum mf_spool_status st;
	struct mf_error err;
	const void *p;
	size_t len;
	long n = 0;

	r = mf_spool_reader_open(dir, pos, &err);
	if (r == NULL)
		return -1;
	while ((st = mf_spool_read(r, &p, &len, pos, &err)) == MF_SPOOL_RECORD)
		n++;
	mf_spool_reader_close(&r);
	return st == MF_SPOOL_EMPTY ? n : -1;
}

int main(int argc, char **argv)
{
	static const int procs[] = {1, 2, 4, 8};
	const unsigned per_proc = 100000;
	struct mf_spool_pos pos = {0, 0};
	struct mf_error err;
	char dir[256];
	double t0, t, c0, c;
	size_t len;
	int fails = 0, status;
	long n;

	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	if (argc > 3 && strcmp(argv[2], "--submit") == 0) {
		/* direct append (the producers' old path), then the socket */
		c0 = cpu(RUSAGE_SELF);
		t0 = now();
		if (append_many(dir, per_proc, false) < 0)
			return 1;
		t = now() - t0;
		c = cpu(RUSAGE_SELF) - c0;
		printf("append directly, 1 process x %u           %10.2f %10.2f %12.0f\n", per_proc,
		       t / per_proc * 1e6, c / per_proc * 1e6, per_proc / t);
		if (submit_many(argv[3], per_proc, true) < 0 ||
		    submit_many(argv[3], per_proc, false) < 0)
			return 1;
		return 0;
	} else {
		snprintf(dir, sizeof(dir), "/tmp/spool-bench.XXXXXX");
		if (mkdtemp(dir) == NULL)
			return 1;
	}

	printf("%-44s %10s %10s %12s\n", "measurement", "wall_us", "cpu_us", "events/s");
	/* Building an event. */
	c0 = cpu(RUSAGE_SELF);
	t0 = now();
	for (unsigned i = 0; i < 200000; i++) {
		struct mf_event *ev = typical_event(i);

		(void)mf_event_json(ev, &len);
		mf_event_free(&ev);
	}
	t = now() - t0;
	c = cpu(RUSAGE_SELF) - c0;
	printf("build event (%3zu bytes of JSON)             %10.2f %10.2f %12.0f\n", len,
	       t / 200000 * 1e6, c / 200000 * 1e6, 200000 / t);

	for (size_t k = 0; k < sizeof(procs) / sizeof(procs[0]); k++) {
		c0 = cpu(RUSAGE_CHILDREN);
		t0 = now();
		for (int i = 0; i < procs[k]; i++)
			if (fork() == 0)
				_exit(append_many(dir, per_proc, false) < 0);
		for (int i = 0; i < procs[k]; i++)
			if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				fails++;
		t = now() - t0;
		c = cpu(RUSAGE_CHILDREN) - c0;
		printf("append, %d process(es) x %u               %10.2f %10.2f %12.0f\n", procs[k],
		       per_proc, t / (procs[k] * per_proc) * 1e6, c / (procs[k] * per_proc) * 1e6,
		       procs[k] * per_proc / t);
		c0 = cpu(RUSAGE_SELF);
		t0 = now();
		n = read_all(dir, &pos);
		t = now() - t0;
		c = cpu(RUSAGE_SELF) - c0;
		if (n != (long)(procs[k] * per_proc))
			fails++;
		printf("read back %6ld records                     %10.2f %10.2f %12.0f\n", n,
		       t / (double)n * 1e6, c / (double)n * 1e6, (double)n / t);
		if (mf_spool_rotate(dir, 0, &pos, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			fails++;
		}
	}

	c0 = cpu(RUSAGE_SELF);
	t0 = now();
	if (append_many(dir, 2000, true) < 0)
		fails++;
	t = now() - t0;
	c = cpu(RUSAGE_SELF) - c0;
	printf("append with fdatasync, 1 process x 2000      %10.2f %10.2f %12.0f\n",
	       t / 2000 * 1e6, c / 2000 * 1e6, 2000 / t);
	if (read_all(dir, &pos) != 2000)
		fails++;
	(void)mf_spool_rotate(dir, 0, &pos, &err);
	(void)mf_spool_rotate(dir, 0, &pos, &err);
	if (argc <= 1) {
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fails++;
	}
	if (fails > 0)
		printf("FAILED: %d errors or lost records\n", fails);
	return fails > 0;
}
