/*
 * fuzz-audit-event.c - the audit event parser of mailfort-auditd and
 * mailfortctl audit verify (mf_audit_derive, mf_audit_parse_time,
 * mf_audit_canon_ip) over arbitrary bytes.
 *
 * Spooled records come from many processes; a hostile or damaged one must
 * give an error or columns, never a crash, a leak or an out-of-bounds read.
 * Also checks that a derived event hashes the same twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mf-audit-chain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_audit_cols cols;
	struct mf_error err;
	unsigned char prev[MF_AUDIT_HASH_BYTES] = {0}, h1[MF_AUDIT_HASH_BYTES],
	              h2[MF_AUDIT_HASH_BYTES];
	char *s = malloc(size + 1), ip[64];
	int64_t us;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (mf_audit_derive(s, size, &cols, &err) == 0) {
		if (cols.type == NULL || cols.type[0] == '\0')
			abort();
		mf_audit_hash(h1, prev, "node", 1, s, size);
		mf_audit_hash(h2, prev, "node", 1, s, size);
		if (memcmp(h1, h2, sizeof(h1)) != 0)
			abort();
		mf_audit_cols_free(&cols);
	}
	(void)mf_audit_parse_time(s, &us);
	(void)mf_audit_canon_ip(s, ip, sizeof(ip));
	free(s);
	return 0;
}
