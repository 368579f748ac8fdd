/*
 * ctl-audit-retire.c - mailfortctl audit retire: take the oldest audit
 * events out of the database, signed.
 *
 * SYNOPSIS
 *   mailfortctl audit retire [--dry-run] [--key SECRETKEY]
 *
 * Retires, oldest first, every monthly partition of mailfort.audit_events
 * that ends more than [audit] retention_min months ago: for each node's
 * events in it (a contiguous seq range that starts at seq 1 or right after
 * the previous retirement, covered by a signed checkpoint) it signs the
 * statement (node, partition, first_seq, last_seq, count, last_hash) with
 * the audit key (audit-sign.key, lib/mf-audit-chain.h), records it in
 * mailfort.audit_retired and detaches the partition, all in one
 * transaction.  The detached table stays in schema mailfort for archiving.
 * The first partition that cannot be retired (why is printed) stops the run:
 * a later one would leave a hole.
 *
 * Needs the schema owner's rights (a superuser, or a role that is a member
 * of mailfort_owner) and read access to audit-sign.key.  The database
 * checks the figures again and refuses anything younger than 12 months.
 *
 * Exit status: 0 (also when there is nothing to retire), 1 on an error,
 * 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ctl.h"
#include "mf-audit-chain.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"

static void retire_help(FILE *f)
{
	fputs("usage: mailfortctl audit retire [--dry-run] [--key SECRETKEY]\n"
	      "Retires (signed, oldest first) audit partitions older than [audit] "
	      "retention_min.\n",
	      f);
}

/* Sign and record one row of audit_retire_candidates; 0 or -1 with err. */
static int retire_one(struct mf_db *db, PGresult *cand, int i, const unsigned char *sk,
                      const unsigned char pk[MF_AUDIT_PK_BYTES], const char *months,
                      struct mf_error *err)
{
	struct mf_audit_retirement r;
	unsigned char sig[MF_AUDIT_SIG_BYTES], *h;
	size_t hlen;
	char *hh, *ss, *pp;
	int ret;

	memset(&r, 0, sizeof(r));
	r.partition = PQgetvalue(cand, i, 0);
	r.node = PQgetvalue(cand, i, 1);
	r.first_seq = strtoll(PQgetvalue(cand, i, 2), NULL, 10);
	r.last_seq = strtoll(PQgetvalue(cand, i, 3), NULL, 10);
	r.count = strtoll(PQgetvalue(cand, i, 4), NULL, 10);
	h = mf_db_unescape_bytea(PQgetvalue(cand, i, 5), &hlen);
	if (h == NULL || hlen != MF_AUDIT_HASH_BYTES) {
		free(h);
		return mf_error_set(err, "partition %s node %s: malformed hash at seq %" PRId64,
		                    r.partition, r.node, r.last_seq);
	}
	memcpy(r.last_hash, h, MF_AUDIT_HASH_BYTES);
	free(h);
	mf_audit_retirement_sign(sig, &r, sk);
	hh = mf_db_escape_bytea(r.last_hash, MF_AUDIT_HASH_BYTES);
	ss = mf_db_escape_bytea(sig, sizeof(sig));
	pp = mf_db_escape_bytea(pk, MF_AUDIT_PK_BYTES);
	{
		const char *params[9] = {r.partition,
		                         r.node,
		                         PQgetvalue(cand, i, 2),
		                         PQgetvalue(cand, i, 3),
		                         PQgetvalue(cand, i, 4),
		                         hh,
		                         ss,
		                         pp,
		                         months};

		ret = mf_db_command(
		    db,
		    "SELECT mailfort.audit_retire_record($1, $2, $3::bigint, $4::bigint, "
		    "$5::bigint, $6::bytea, $7::bytea, $8::bytea, $9::integer)",
		    9, params, err);
	}
	free(hh);
	free(ss);
	free(pp);
	return ret;
}

int ctl_audit_retire(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"key", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *keypath = NULL;
	bool dry = false;
	char path[4096], months[32];
	unsigned char *sk, pk[MF_AUDIT_PK_BYTES];
	const struct mf_config *cfg;
	struct mf_error err;
	struct mf_db *db;
	PGresult *res;
	int c, n, status = 0, retired = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			dry = true;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'h':
			retire_help(stdout);
			return 0;
		default:
			return ctl_usage("audit retire: bad option");
		}
	}
	if (optind != argc)
		return ctl_usage("audit retire: unexpected argument '%s'", argv[optind]);
	cfg = ctl_config(ctl);
	if (cfg == NULL)
		return 1;
	snprintf(months, sizeof(months), "%" PRId64, mf_config_int(cfg, "audit", "retention_min"));
	if (keypath == NULL) {
		snprintf(path, sizeof(path), "%s/audit-sign.key",
		         mf_config_str(cfg, "keys", "dir"));
		keypath = path;
	}
	if (mf_crypto_init(&err) < 0)
		return ctl_fail("%s", err.msg);
	sk = sodium_malloc(MF_AUDIT_SK_BYTES);
	if (sk == NULL)
		return ctl_fail("out of memory");
	if (mf_key_load(keypath, MF_KEY_SECRET, sk, MF_AUDIT_SK_BYTES, &err) < 0) {
		sodium_free(sk);
		return ctl_fail("%s", err.msg);
	}
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	db = ctl_db(ctl);
	if (db == NULL) {
		sodium_free(sk);
		return 1;
	}
	if (mf_db_begin(db, &err) < 0) {
		sodium_free(sk);
		return ctl_fail("%s", err.msg);
	}
	{
		const char *params[1] = {months};

		res =
		    mf_db_exec(db,
		               "SELECT partition, node, first_seq, last_seq, count, last_hash, ok, "
		               "why FROM mailfort.audit_retire_candidates($1::integer)",
		               1, params, &err);
	}
	if (res == NULL) {
		bool denied = strcmp(mf_db_sqlstate(db), "42501") == 0;

		mf_db_rollback(db);
		sodium_free(sk);
		if (denied)
			return ctl_fail("%s (retiring audit events needs the schema owner: a "
			                "superuser or a member of mailfort_owner)",
			                err.msg);
		return ctl_fail("%s", err.msg);
	}
	n = PQntuples(res);
	for (int i = 0; i < n && status == 0;) {
		const char *part = PQgetvalue(res, i, 0);
		int end = i;
		bool ok = true;

		while (end < n && strcmp(PQgetvalue(res, end, 0), part) == 0) {
			if (strcmp(PQgetvalue(res, end, 6), "t") != 0) {
				printf("kept %s: node %s: %s\n", part, PQgetvalue(res, end, 1),
				       PQgetvalue(res, end, 7));
				ok = false;
			}
			end++;
		}
		if (!ok)
			break;
		for (int k = i; k < end && status == 0; k++) {
			if (!dry && retire_one(db, res, k, sk, pk, months, &err) < 0) {
				status = ctl_fail("%s", err.msg);
				break;
			}
			printf("%s %s: node %s seq %s to %s (%s events)\n",
			       dry ? "would retire" : "retired", part, PQgetvalue(res, k, 1),
			       PQgetvalue(res, k, 2), PQgetvalue(res, k, 3), PQgetvalue(res, k, 4));
		}
		if (status == 0 && !dry) {
			const char *params[1] = {part};

			if (mf_db_command(db, "SELECT mailfort.audit_retire_detach($1)", 1, params,
			                  &err) < 0)
				status = ctl_fail("%s", err.msg);
		}
		retired++;
		i = end;
	}
	PQclear(res);
	sodium_free(sk);
	if (status != 0 || dry) {
		mf_db_rollback(db);
		return status;
	}
	if (mf_db_commit(db, &err) < 0)
		return ctl_fail("%s", err.msg);
	if (retired == 0)
		printf("nothing to retire: no partition older than %s months (or the oldest is "
		       "kept, see above)\n",
		       months);
	return 0;
}
