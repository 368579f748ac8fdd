/*
 * spool-append.c - append events to a mailfort spool (a tool for tests and
 * benchmarks, not installed).
 *
 *   audit-spool-append SPOOLDIR              one JSON event per stdin line
 *   audit-spool-append SPOOLDIR --generate N [--node NODE]
 *                                            N synthetic "read" events, as
 *                                            mailfort-spoold spools them for
 *                                            a mail process (uid 5000)
 *
 * Lines are appended exactly as given (no validation: tests use this to
 * spool malformed records too).  Exit 0 when every record was appended, 1
 * with a message on the first failure, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mf-event.h"
#include "mf-spool.h"

int main(int argc, char **argv)
{
	struct mf_spool_writer *w;
	struct mf_error err;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	const char *json;
	size_t jlen;
	long long n = -1;
	const char *node = "bench";

	if (argc < 2 || (argc > 2 && (argc < 4 || strcmp(argv[2], "--generate") != 0))) {
		fprintf(stderr,
		        "usage: audit-spool-append SPOOLDIR [--generate N [--node NODE]]\n");
		return 2;
	}
	if (argc > 2)
		n = atoll(argv[3]);
	if (argc > 5 && strcmp(argv[4], "--node") == 0)
		node = argv[5];
	w = mf_spool_writer_open(argv[1], &err);
	if (w == NULL) {
		fprintf(stderr, "audit-spool-append: %s\n", err.msg);
		return 1;
	}
	if (n >= 0) {
		for (long long i = 0; i < n; i++) {
			struct mf_event *ev = mf_event_new("read", node);
			char user[64], msgid[96], now[28], peer[160];

			snprintf(user, sizeof(user), "user%03lld@example.test", i % 500);
			snprintf(msgid, sizeof(msgid), "<msg%lld.bench@example.test>", i);
			mf_event_add_str(ev, "user", user);
			mf_event_add_str(ev, "service", "imap");
			mf_event_add_str(ev, "session", "benchsession");
			mf_event_add_str(ev, "ip", "192.0.2.10");
			mf_event_add_str(ev, "mailbox", "INBOX");
			mf_event_add_int(ev, "uid", i + 1);
			mf_event_add_str(ev, "message_id", msgid);
			/* as mailfort-spoold adds it for a mail process */
			mf_event_time_now(now);
			snprintf(peer, sizeof(peer),
			         "{\"uid\":5000,\"gid\":5000,\"pid\":4242,"
			         "\"exe\":\"/usr/lib/dovecot/imap\",\"time\":\"%s\"}",
			         now);
			mf_event_add_json(ev, "peer", peer);
			json = mf_event_json(ev, &jlen);
			if (json == NULL || mf_spool_append(w, json, jlen, false, &err) < 0) {
				fprintf(stderr, "audit-spool-append: %s\n", err.msg);
				return 1;
			}
			mf_event_free(&ev);
		}
	} else {
		while ((len = getline(&line, &cap, stdin)) >= 0) {
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (len == 0)
				continue;
			if (mf_spool_append(w, line, (size_t)len, false, &err) < 0) {
				fprintf(stderr, "audit-spool-append: %s\n", err.msg);
				return 1;
			}
		}
		free(line);
	}
	mf_spool_writer_close(&w);
	return 0;
}
