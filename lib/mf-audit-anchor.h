/*
 * mf-audit-anchor.h - signed checkpoints published outside the database.
 *
 * An anchor is one line of text that repeats a signed checkpoint of the
 * audit chain:
 *
 *   mailfort-anchor 1 node=mx1 seq=10000 count=10000 time=2026-12-08T01:02:03Z
 *     head=<64 hex> key=<64 hex> sig=<128 hex>
 *
 * (one line; node percent-encoded outside [A-Za-z0-9._-]).  sig is the
 * checkpoint's Ed25519 signature (mf_audit_checkpoint_sign) by key, so an
 * anchor cannot be forged without auditd's key, and a copy kept by an
 * auditor proves that the chain once reached head at seq.  Any text before
 * "mailfort-anchor 1 " on a line is ignored (a syslog prefix, a mail
 * quote).
 *
 * mf_audit_anchor_format returns the line's length (without a newline) or
 * -1 when buf is too small.  mf_audit_anchor_parse returns 0, 1 for a line
 * that holds no anchor, or -1 with err saying what is malformed; it checks
 * the signature too (an anchor whose signature does not match is
 * malformed).
 */
#ifndef MF_AUDIT_ANCHOR_H
#define MF_AUDIT_ANCHOR_H

#include <stddef.h>
#include <stdint.h>
#include "mf-audit-chain.h"
#include "mf-common.h"

#define MF_AUDIT_ANCHOR_TAG "mailfort-anchor 1 "
#define MF_AUDIT_ANCHOR_MAX 2048

struct mf_audit_anchor {
	char node[256];
	int64_t seq, count;
	char time[40];
	unsigned char head[MF_AUDIT_HASH_BYTES];
	unsigned char pk[MF_AUDIT_PK_BYTES];
	unsigned char sig[MF_AUDIT_SIG_BYTES];
};

int mf_audit_anchor_format(const struct mf_audit_anchor *a, char *buf, size_t size);
int mf_audit_anchor_parse(const char *line, struct mf_audit_anchor *a, struct mf_error *err);

#endif
