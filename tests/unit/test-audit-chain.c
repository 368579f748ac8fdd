/*
 * test-audit-chain.c - the audit hash chain, checkpoint signatures and the
 * derivation of indexed columns from an event (lib/audit-chain.c).
 *
 * The hash is checked against a vector computed independently (Python's
 * hashlib.blake2b over the documented layout), so auditd, verify and any
 * outside auditor's tool agree on the format.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "mf-audit-chain.h"
#include "tap.h"

static void hex(char *out, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

int main(void)
{
	unsigned char zero[MF_AUDIT_HASH_BYTES] = {0}, h1[MF_AUDIT_HASH_BYTES],
	              h2[MF_AUDIT_HASH_BYTES], h3[MF_AUDIT_HASH_BYTES];
	unsigned char pk[MF_AUDIT_PK_BYTES], sk[MF_AUDIT_SK_BYTES], pk2[MF_AUDIT_PK_BYTES],
	    sk2[MF_AUDIT_SK_BYTES], sig[MF_AUDIT_SIG_BYTES];
	const char *ev = "{\"type\":\"x\"}";
	char hx[2 * MF_AUDIT_HASH_BYTES + 1];
	struct mf_audit_cols cols;
	struct mf_error err;
	int64_t us;
	char ip[64];

	if (sodium_init() < 0)
		return 1;

	/* ---- hash */
	mf_audit_hash(h1, zero, "n1", 1, ev, strlen(ev));
	hex(hx, h1, sizeof(h1));
	ok(strcmp(hx, "03c2d81e1b89d960e8165dded17e1e0d86260f9cc74390b393123750b0541571") == 0,
	   "hash of seq 1 matches the independently computed vector (%s)", hx);
	mf_audit_hash(h2, zero, "n1", 2, ev, strlen(ev));
	ok(memcmp(h1, h2, sizeof(h1)) != 0, "the seq number is part of the hash");
	mf_audit_hash(h2, zero, "n2", 1, ev, strlen(ev));
	ok(memcmp(h1, h2, sizeof(h1)) != 0, "the node is part of the hash");
	mf_audit_hash(h2, h1, "n1", 1, ev, strlen(ev));
	ok(memcmp(h1, h2, sizeof(h1)) != 0, "the previous hash is part of the hash");
	mf_audit_hash(h3, zero, "n1", 1, "{\"type\":\"y\"}", strlen(ev));
	ok(memcmp(h1, h3, sizeof(h1)) != 0, "one changed byte of the event changes the hash");
	/* length prefixes: moving a byte between node and payload changes it */
	mf_audit_hash(h2, zero, "n", 1, "1{\"type\":\"x\"}", strlen(ev) + 1);
	ok(memcmp(h1, h2, sizeof(h1)) != 0, "node and payload cannot be shifted into each other");

	/* ---- checkpoints */
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	mf_audit_checkpoint_sign(sig, "n1", 10, 10, h1, sk);
	ok(mf_audit_checkpoint_verify(sig, "n1", 10, 10, h1, pk) == 0, "a checkpoint verifies");
	ok(mf_audit_checkpoint_verify(sig, "n1", 11, 10, h1, pk) < 0, "... not with another seq");
	ok(mf_audit_checkpoint_verify(sig, "n1", 10, 9, h1, pk) < 0, "... not with another count");
	ok(mf_audit_checkpoint_verify(sig, "n1", 10, 10, h3, pk) < 0, "... not with another head");
	ok(mf_audit_checkpoint_verify(sig, "n2", 10, 10, h1, pk) < 0, "... not for another node");
	ok(mf_audit_checkpoint_verify(sig, "n1", 10, 10, h1, pk2) < 0, "... not with another key");
	sig[5] ^= 1;
	ok(mf_audit_checkpoint_verify(sig, "n1", 10, 10, h1, pk) < 0, "... not when altered");

	/* retirement statements: every figure is covered by the signature */
	{
		struct mf_audit_retirement r = {.node = "n1",
		                                .partition = "audit_events_2025_01",
		                                .first_seq = 1,
		                                .last_seq = 5,
		                                .count = 5};
		struct mf_audit_retirement t;

		memcpy(r.last_hash, h1, sizeof(r.last_hash));
		mf_audit_retirement_sign(sig, &r, sk);
		ok(mf_audit_retirement_verify(sig, &r, pk) == 0, "a retirement verifies");
		ok(mf_audit_retirement_verify(sig, &r, pk2) < 0, "... not with another key");
		t = r;
		t.first_seq = 6;
		t.last_seq = 10;
		ok(mf_audit_retirement_verify(sig, &t, pk) < 0, "... not for another range");
		t = r;
		t.count = 4;
		ok(mf_audit_retirement_verify(sig, &t, pk) < 0, "... not with another count");
		t = r;
		t.partition = "audit_events_2025_02";
		ok(mf_audit_retirement_verify(sig, &t, pk) < 0, "... not for another partition");
		t = r;
		t.node = "n2";
		ok(mf_audit_retirement_verify(sig, &t, pk) < 0, "... not for another node");
		t = r;
		memcpy(t.last_hash, h3, sizeof(t.last_hash));
		ok(mf_audit_retirement_verify(sig, &t, pk) < 0, "... not with another last hash");
		mf_audit_checkpoint_sign(sig, "n1", 5, 5, h1, sk);
		ok(mf_audit_retirement_verify(sig, &r, pk) < 0,
		   "a checkpoint's signature is not a retirement's (separate domains)");
	}
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));

	/* ---- times and addresses */
	ok(mf_audit_parse_time("2026-11-27T06:21:44.123456Z", &us) == 0 && us == 1795760504123456LL,
	   "event time with microseconds");
	ok(mf_audit_parse_time("2026-11-27T07:21:44.123456+01:00", &us) == 0 &&
	       us == 1795760504123456LL,
	   "event time with an offset");
	ok(mf_audit_parse_time("2026-11-27T06:21:44Z", &us) == 0 && us == 1795760504000000LL,
	   "event time without fraction");
	ok(mf_audit_parse_time("2026-13-27T06:21:44Z", &us) < 0, "month 13 refused");
	ok(mf_audit_parse_time("2026-11-27T06:21:44", &us) < 0, "time without zone refused");
	ok(mf_audit_parse_time("yesterday", &us) < 0, "text refused");
	ok(mf_audit_canon_ip("2001:DB8:0:0::1", ip, sizeof(ip)) == 0 &&
	       strcmp(ip, "2001:db8::1") == 0,
	   "IPv6 address in canonical form");
	ok(mf_audit_canon_ip("192.0.2.1", ip, sizeof(ip)) == 0 && strcmp(ip, "192.0.2.1") == 0,
	   "IPv4 address");
	ok(mf_audit_canon_ip("mail.example", ip, sizeof(ip)) < 0, "a host name is not an address");

	/* ---- columns */
	ok(mf_audit_derive(
	       "{\"v\":1,\"type\":\"login\",\"time\":\"2026-11-27T06:21:44.123456Z\","
	       "\"user\":\"al\\u00e9\",\"session\":\"s1\",\"ip\":\"192.0.2.1\"}",
	       strlen("{\"v\":1,\"type\":\"login\",\"time\":\"2026-11-27T06:21:44.123456Z\","
	              "\"user\":\"al\\u00e9\",\"session\":\"s1\",\"ip\":\"192.0.2.1\"}"),
	       &cols, &err) == 0,
	   "a login event is parsed");
	ok(strcmp(cols.type, "login") == 0 && strcmp(cols.username, "al\xc3\xa9") == 0 &&
	       strcmp(cols.session, "s1") == 0 && strcmp(cols.ip, "192.0.2.1") == 0 &&
	       cols.time_ok && cols.time_us == 1795760504123456LL,
	   "type, user (unescaped UTF-8), session, ip and time derived");
	mf_audit_cols_free(&cols);
	ok(mf_audit_derive("{\"type\":\"auth\",\"ip\":\"not-an-ip\"}", 32, &cols, &err) == 0 &&
	       cols.ip == NULL && cols.username == NULL && !cols.time_ok,
	   "a bad address and missing fields become NULL");
	mf_audit_cols_free(&cols);
	ok(mf_audit_derive("{\"user\":\"x\"}", 12, &cols, &err) < 0 &&
	       strstr(err.msg, "type") != NULL,
	   "an event without type is refused: %s", err.msg);
	ok(mf_audit_derive("not json", 8, &cols, &err) < 0, "text that is not JSON is refused");
	ok(mf_audit_derive("[1,2]", 5, &cols, &err) < 0, "a JSON array is refused");
	ok(mf_audit_derive("{\"type\":\"x\"} trailing", 20, &cols, &err) < 0,
	   "trailing garbage is refused");
	ok(mf_audit_derive("{\"type\":7}", 10, &cols, &err) < 0, "a non-string type is refused");
	return tap_done();
}
