/*
 * fuzz-audit-anchor.c - the anchor line reader (mf_audit_anchor_parse),
 * which "mailfortctl audit verify --anchor" runs over files an auditor
 * kept, syslog extracts and mail.
 *
 * The input is read as a line (it must never crash, and a line it accepts
 * must carry a valid signature and come out the same when written again);
 * then it is used as a node name and numbers for an anchor that is signed
 * with a fixed key, written and read back: the reader must give back
 * exactly what the writer was given (node bytes percent-encoded and
 * decoded, seq, count, head, key, signature), or refuse a node it cannot
 * carry (NUL bytes, too long).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "mf-audit-anchor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char pk[MF_AUDIT_PK_BYTES], sk[MF_AUDIT_SK_BYTES];
	static int ready;
	struct mf_audit_anchor a, b;
	struct mf_error err;
	char line[MF_AUDIT_ANCHOR_MAX * 2], *text;
	size_t n;
	int len;

	if (!ready) {
		unsigned char seed[crypto_sign_SEEDBYTES] = {7};

		if (sodium_init() < 0)
			abort();
		crypto_sign_seed_keypair(pk, sk, seed);
		ready = 1;
	}
	if (size > 4096)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (mf_audit_anchor_parse(text, &a, &err) == 0) {
		if (mf_audit_checkpoint_verify(a.sig, a.node, a.seq, a.count, a.head, a.pk) < 0)
			abort(); /* accepted without a valid signature */
		len = mf_audit_anchor_format(&a, line, sizeof(line));
		if (len < 0 || mf_audit_anchor_parse(line, &b, &err) != 0 ||
		    memcmp(&a, &b, sizeof(a)) != 0)
			abort();
	}
	free(text);

	/* the writer's round trip, with the input as the node name */
	memset(&a, 0, sizeof(a));
	n = strnlen((const char *)data, size < sizeof(a.node) - 1 ? size : sizeof(a.node) - 1);
	memcpy(a.node, data, n);
	if (n == 0)
		return 0;
	a.seq = (int64_t)(size * 7919);
	a.count = a.seq;
	memcpy(a.time, "2026-12-08T01:02:03Z", 21);
	crypto_generichash(a.head, sizeof(a.head), data, size, NULL, 0);
	memcpy(a.pk, pk, sizeof(pk));
	mf_audit_checkpoint_sign(a.sig, a.node, a.seq, a.count, a.head, sk);
	len = mf_audit_anchor_format(&a, line, sizeof(line));
	if (len < 0 || strchr(line, '\n') != NULL || mf_audit_anchor_parse(line, &b, &err) != 0 ||
	    memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	return 0;
}
