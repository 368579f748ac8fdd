/*
 * mf-audit-chain.h - the audit trail's hash chain and signed checkpoints.
 *
 * Shared by mailfort-auditd, which builds the chain, and mailfortctl audit
 * verify, which recomputes it, so that both agree byte for byte.
 *
 * Each node's events form one chain.  The row with sequence number seq
 * stores
 *
 *   hash = BLAKE2b-256(key = none,
 *            "mailfort-audit-v1" | prev_hash[32] | u64be(seq) |
 *            u32be(len(node)) | node | u32be(len(payload)) | payload)
 *
 * where prev_hash is the previous row's hash (32 zero bytes before seq 1)
 * and payload is the event JSON exactly as it was spooled.  The columns
 * that index the event (event_time, type, username, session, ip) are
 * derived from the payload by mf_audit_derive; verify derives them again
 * and reports a row whose columns disagree with its payload.
 *
 * A checkpoint signs, with the Ed25519 key audit-sign.key,
 *
 *   "mailfort-audit-checkpoint-v1" | u32be(len(node)) | node | u64be(seq) |
 *   u64be(count) | head_hash[32]
 *
 * stating that the node's chain had count events up to seq, ending in
 * head_hash.
 *
 * A retirement (mailfortctl audit retire) signs, with the same key,
 *
 *   "mailfort-audit-retirement-v1" | u32be(len(node)) | node |
 *   u32be(len(partition)) | partition | u64be(first_seq) | u64be(last_seq) |
 *   u64be(count) | last_hash[32]
 *
 * stating that the node's events first_seq..last_seq (count of them), whose
 * last hash is last_hash, left the database with that partition.
 */
#ifndef MF_AUDIT_CHAIN_H
#define MF_AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mf-common.h"

#define MF_AUDIT_HASH_BYTES 32
#define MF_AUDIT_SIG_BYTES  64
#define MF_AUDIT_PK_BYTES   32
#define MF_AUDIT_SK_BYTES   64

void mf_audit_hash(unsigned char out[MF_AUDIT_HASH_BYTES],
                   const unsigned char prev[MF_AUDIT_HASH_BYTES], const char *node, int64_t seq,
                   const char *payload, size_t payload_len);

/* Checkpoint signature: 0 / -1 (verify: -1 when it does not match). */
void mf_audit_checkpoint_sign(unsigned char sig[MF_AUDIT_SIG_BYTES], const char *node, int64_t seq,
                              int64_t count, const unsigned char head[MF_AUDIT_HASH_BYTES],
                              const unsigned char sk[MF_AUDIT_SK_BYTES]);
int mf_audit_checkpoint_verify(const unsigned char sig[MF_AUDIT_SIG_BYTES], const char *node,
                               int64_t seq, int64_t count,
                               const unsigned char head[MF_AUDIT_HASH_BYTES],
                               const unsigned char pk[MF_AUDIT_PK_BYTES]) MF_WARN_UNUSED;

/* A retirement statement (see above). */
struct mf_audit_retirement {
	const char *node, *partition;
	int64_t first_seq, last_seq, count;
	unsigned char last_hash[MF_AUDIT_HASH_BYTES];
};

void mf_audit_retirement_sign(unsigned char sig[MF_AUDIT_SIG_BYTES],
                              const struct mf_audit_retirement *r,
                              const unsigned char sk[MF_AUDIT_SK_BYTES]);
/* 0, or -1 when sig is not r signed by pk. */
int mf_audit_retirement_verify(const unsigned char sig[MF_AUDIT_SIG_BYTES],
                               const struct mf_audit_retirement *r,
                               const unsigned char pk[MF_AUDIT_PK_BYTES]) MF_WARN_UNUSED;

/* The indexed columns of an event, derived from its JSON. */
struct mf_audit_cols {
	char *type;      /* never NULL after success */
	char *username;  /* "user" field, or NULL */
	char *session;   /* "session" field, or NULL */
	char *ip;        /* "ip" field in canonical text form, NULL if absent or not an address */
	int64_t time_us; /* "time" as microseconds since the epoch */
	bool time_ok;    /* false when "time" is missing or malformed */
};

/* Parse payload (a JSON object with at least a string "type"); -1 with err
   set when it is not.  Free with mf_audit_cols_free. */
int mf_audit_derive(const char *payload, size_t len, struct mf_audit_cols *cols,
                    struct mf_error *err) MF_WARN_UNUSED;
void mf_audit_cols_free(struct mf_audit_cols *cols);

/* Parse "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (also with +HH:MM); -1 if malformed. */
int mf_audit_parse_time(const char *s, int64_t *us_r);
/* Canonical text form of an IPv4/IPv6 address into out (>= 46 bytes);
   -1 if s is not an address. */
int mf_audit_canon_ip(const char *s, char *out, size_t outlen);

#endif
