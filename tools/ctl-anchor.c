/*
 * ctl-anchor.c - mailfortctl audit anchor export, and the anchor checks of
 * mailfortctl audit verify --anchor FILE.
 *
 * SYNOPSIS
 *   mailfortctl audit anchor export [--output FILE] [--node N]
 *   mailfortctl audit verify --anchor FILE [...]
 *
 * export writes one anchor line (mf-audit-anchor.h) per signed checkpoint
 * in the database, oldest first, to FILE (created 0644, replaced
 * atomically) or standard output: what an auditor keeps outside the
 * database.  mailfort-auditd publishes the same lines as it signs
 * checkpoints ([audit] anchor_sink).
 *
 * verify --anchor reads anchor lines from FILE (lines without an anchor,
 * such as syslog noise, are skipped; a malformed anchor or one whose
 * signature does not match is an error) and checks, per node, that the
 * trail in the database still reaches every published head:
 *   truncated  the database ends before a published seq: "events A..B
 *              missing" names the range cut off the end
 *   missing    a published seq is absent although later rows exist (and
 *              no retirement covers it)
 * Only retirements that audit verify itself checked (signed with
 * audit-sign.pub, of the oldest events, without a hole) excuse a missing
 * row: the caller passes what it proved per node.  Every read is of the
 * base tables in schema mailfort, never of the views in schema audit,
 * which a superuser could replace to hide rows.
 *   changed    the row at a published seq does not hash to the published
 *              head
 *   removed    the checkpoint a published anchor repeats is gone
 * An anchor signed by a key other than the verifier's audit-sign.pub is an
 * error too (it proves nothing about this trail).
 *
 * ctl_anchor_verify returns 0 when every anchor is reached, 1 after
 * printing a FAIL line per node that does not, -1 with err on an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "ctl.h"
#include "mf-audit-anchor.h"
#include "mf-config.h"
#include "mf-db.h"

struct anchors {
	struct mf_audit_anchor *a;
	size_t n, cap;
};

static int anchors_cmp(const void *x, const void *y)
{
	const struct mf_audit_anchor *a = x, *b = y;
	int c = strcmp(a->node, b->node);

	if (c != 0)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int anchors_read(const char *file, struct anchors *as, struct mf_error *err)
{
	char line[MF_AUDIT_ANCHOR_MAX * 2];
	unsigned lineno = 0;
	FILE *f = fopen(file, "r");
	int rc;

	if (f == NULL)
		return mf_error_set(err, "anchor file %s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		struct mf_audit_anchor a;

		lineno++;
		rc = mf_audit_anchor_parse(line, &a, err);
		if (rc == 1)
			continue;
		if (rc < 0) {
			fclose(f);
			return mf_error_prefix(err, "anchor file %s line %u", file, lineno);
		}
		if (as->n == as->cap) {
			size_t cap = as->cap == 0 ? 64 : as->cap * 2;
			struct mf_audit_anchor *n = reallocarray(as->a, cap, sizeof(*n));

			if (n == NULL) {
				fclose(f);
				return mf_error_set(err, "out of memory");
			}
			as->a = n;
			as->cap = cap;
		}
		as->a[as->n++] = a;
	}
	fclose(f);
	if (as->n > 1)
		qsort(as->a, as->n, sizeof(*as->a), anchors_cmp);
	return 0;
}

/* Rows and checkpoint of one node at a published seq. */
static int anchor_check_one(struct mf_db *db, const struct mf_audit_anchor *a, int64_t retired_upto,
                            char *fail, size_t fail_size, struct mf_error *err)
{
	char seq[32];
	const char *params[2] = {a->node, seq};
	PGresult *res;
	bool retired = a->seq <= retired_upto, have_row, have_ckpt, same;

	snprintf(seq, sizeof(seq), "%" PRId64, a->seq);
	res = mf_db_exec(db,
	                 "SELECT (SELECT encode(hash, 'hex') FROM mailfort.audit_events "
	                 "        WHERE node = $1 AND seq = $2::bigint LIMIT 1), "
	                 "  EXISTS (SELECT 1 FROM mailfort.audit_checkpoints WHERE node = $1 "
	                 "          AND seq = $2::bigint)",
	                 2, params, err);
	if (res == NULL)
		return -1;
	have_row = !PQgetisnull(res, 0, 0);
	if (have_row) {
		char head[MF_AUDIT_HASH_BYTES * 2 + 1];

		sodium_bin2hex(head, sizeof(head), a->head, sizeof(a->head));
		same = strcmp(head, PQgetvalue(res, 0, 0)) == 0;
	} else {
		same = false;
	}
	have_ckpt = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (retired)
		return 0;
	if (!have_row)
		snprintf(fail, fail_size,
		         "seq %" PRId64 ": missing: the anchor published %s shows this row, which "
		         "is no longer in the table",
		         a->seq, a->time);
	else if (!same)
		snprintf(fail, fail_size,
		         "seq %" PRId64 ": changed: the row does not hash to the head published %s",
		         a->seq, a->time);
	else if (!have_ckpt)
		snprintf(fail, fail_size,
		         "seq %" PRId64
		         ": removed: the signed checkpoint published %s is no longer "
		         "in the database",
		         a->seq, a->time);
	else
		return 0;
	return 1;
}

/* One node's anchors as[from..to). */
static int anchor_check_node(struct mf_db *db, const struct mf_audit_anchor *as, size_t n,
                             int64_t retired_upto, int64_t *checked, struct mf_error *err)
{
	const char *params[1] = {as[0].node};
	const struct mf_audit_anchor *last = &as[n - 1];
	char fail[768];
	int64_t end;
	PGresult *res;
	int rc;

	res = mf_db_exec(db,
	                 "SELECT coalesce((SELECT max(seq) FROM mailfort.audit_events "
	                 "  WHERE node = $1), 0)",
	                 1, params, err);
	if (res == NULL)
		return -1;
	end = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (retired_upto > end)
		end = retired_upto;
	if (last->seq > end) {
		printf("FAIL node %s events %" PRId64 "..%" PRId64
		       " missing: truncated: the trail ends at seq %" PRId64
		       ", but the anchor published %s shows it reached seq %" PRId64 "\n",
		       as[0].node, end + 1, last->seq, end, last->time, last->seq);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && as[i].seq == as[i - 1].seq)
			continue; /* published twice */
		rc = anchor_check_one(db, &as[i], retired_upto, fail, sizeof(fail), err);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			printf("FAIL node %s %s\n", as[i].node, fail);
			return 1;
		}
		(*checked)++;
	}
	return 0;
}

int ctl_anchor_verify(struct mf_db *db, const char *file, const unsigned char *pk, const char *only,
                      const struct ctl_verified_node *nodes, size_t nnodes, struct mf_error *err)
{
	struct anchors as = {NULL, 0, 0};
	int64_t checked = 0;
	size_t i, j;
	int status = 0, rc;

	if (anchors_read(file, &as, err) < 0)
		return -1;
	for (i = 0; i < as.n; i++) {
		if (sodium_memcmp(as.a[i].pk, pk, MF_AUDIT_PK_BYTES) != 0) {
			mf_error_set(err,
			             "anchor file %s: the anchor of node %s at seq %" PRId64
			             " is signed by another key than audit-sign.pub",
			             file, as.a[i].node, as.a[i].seq);
			free(as.a);
			return -1;
		}
	}
	for (i = 0; i < as.n; i = j) {
		for (j = i + 1; j < as.n && strcmp(as.a[j].node, as.a[i].node) == 0; j++)
			;
		if (only != NULL && strcmp(only, as.a[i].node) != 0)
			continue;
		{
			int64_t upto = 0; /* a node verify did not pass: no retirement counts */

			for (size_t k = 0; k < nnodes; k++)
				if (strcmp(nodes[k].node, as.a[i].node) == 0)
					upto = nodes[k].retired_upto;
			rc = anchor_check_node(db, as.a + i, j - i, upto, &checked, err);
		}
		if (rc < 0) {
			free(as.a);
			return -1;
		}
		if (rc > 0)
			status = 1;
	}
	if (status == 0)
		printf("anchors: %" PRId64 " published heads in %s, every one reached\n", checked,
		       file);
	free(as.a);
	return status;
}

static void anchor_help(FILE *f)
{
	fputs("usage: mailfortctl audit anchor export [--output FILE] [--node N]\n", f);
}

static int anchor_export(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"node", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *out = NULL, *only = NULL;
	char line[MF_AUDIT_ANCHOR_MAX], tmp[4200];
	struct mf_error err;
	struct mf_db *db;
	PGresult *res;
	FILE *f = stdout;
	size_t got;
	int c, n, bad = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'n':
			only = optarg;
			break;
		case 'h':
			anchor_help(stdout);
			return 0;
		default:
			return ctl_usage("audit anchor export: bad option");
		}
	}
	if (optind != argc)
		return ctl_usage("audit anchor export: unexpected argument '%s'", argv[optind]);
	db = ctl_db(ctl);
	if (db == NULL)
		return 1;
	{
		const char *params[1] = {only};

		res = mf_db_exec(
		    db,
		    "SELECT node, seq, count, encode(head_hash, 'hex'), encode(signature, 'hex'), "
		    "  encode(signer_key, 'hex'), "
		    "  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
		    "FROM mailfort.audit_checkpoints WHERE $1::text IS NULL OR node = $1 ORDER BY "
		    "node, seq",
		    1, params, &err);
	}
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (out != NULL) {
		int fd;

		snprintf(tmp, sizeof(tmp), "%s.tmp", out);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
			PQclear(res);
			return ctl_fail("%s: %s", tmp, strerror(errno));
		}
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct mf_audit_anchor a;

		memset(&a, 0, sizeof(a));
		snprintf(a.node, sizeof(a.node), "%s", PQgetvalue(res, i, 0));
		a.seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		a.count = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		snprintf(a.time, sizeof(a.time), "%s", PQgetvalue(res, i, 6));
		if (sodium_hex2bin(a.head, sizeof(a.head), PQgetvalue(res, i, 3),
		                   strlen(PQgetvalue(res, i, 3)), NULL, &got, NULL) != 0 ||
		    got != sizeof(a.head) ||
		    sodium_hex2bin(a.sig, sizeof(a.sig), PQgetvalue(res, i, 4),
		                   strlen(PQgetvalue(res, i, 4)), NULL, &got, NULL) != 0 ||
		    got != sizeof(a.sig) ||
		    sodium_hex2bin(a.pk, sizeof(a.pk), PQgetvalue(res, i, 5),
		                   strlen(PQgetvalue(res, i, 5)), NULL, &got, NULL) != 0 ||
		    got != sizeof(a.pk) ||
		    (n = mf_audit_anchor_format(&a, line, sizeof(line))) < 0) {
			bad++;
			continue;
		}
		fprintf(f, "%s\n", line);
	}
	n = PQntuples(res);
	PQclear(res);
	if (out != NULL) {
		if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 ||
		    rename(tmp, out) != 0) {
			(void)unlink(tmp);
			return ctl_fail("%s: %s", out, strerror(errno));
		}
		fprintf(stderr, "%d anchors written to %s\n", n - bad, out);
	}
	if (bad > 0)
		return ctl_fail("%d checkpoints are malformed and were not exported", bad);
	return 0;
}

int ctl_audit_anchor_cmd(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 2 || ctl_is_help(argv[1])) {
		anchor_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "export") == 0)
		return anchor_export(ctl, argc - 1, argv + 1);
	return ctl_usage("audit anchor: unknown command '%s'", argv[1]);
}
