/*
 * fuzz-totp-input.c - what pam_mailfort does with the string a client sent:
 * finding a recovery code at its end, app password and recovery code
 * normalisation, TOTP verification of arbitrary "codes", and protocol lists
 * (mailfortctl --protocols).  Crashes, out-of-bounds reads and broken
 * invariants (a suffix longer than the input, a hash that depends on dashes
 * or case, an array literal with characters it must not hold) abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mf-crypto.h"
#include "mf-totp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[32] = {1, 2, 3};
	static const unsigned char secret[MF_TOTP_SECRET_BYTES] = {9, 8, 7};
	unsigned char h1[MF_KEYED_HASH_BYTES], h2[MF_KEYED_HASH_BYTES];
	const char *s = (const char *)data;
	char *z, *upper, out[256];
	struct mf_error err;
	uint64_t step;
	size_t n, i;

	if (size > 4096)
		return 0;
	n = mf_recovery_suffix_len(s, size);
	if (n > size || (n != 0 && n != 12 && n != 14))
		abort();
	if (n > 0 && mf_recovery_hash(h1, s + size - n, n, key) != 0)
		abort(); /* what was found must be accepted */

	/* case and dashes never change the hash */
	upper = malloc(size + 1);
	if (upper == NULL)
		return 0;
	for (i = 0; i < size; i++)
		upper[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
	if (mf_apppass_hash(h1, s, size, key) == 0 &&
	    (mf_apppass_hash(h2, upper, size, key) != 0 || memcmp(h1, h2, sizeof(h1)) != 0))
		abort();
	if (mf_recovery_hash(h1, s, size, key) == 0 &&
	    (mf_recovery_hash(h2, upper, size, key) != 0 || memcmp(h1, h2, sizeof(h1)) != 0))
		abort();
	free(upper);

	if (mf_totp_verify(secret, sizeof(secret), s, size, 6, 1000, 1, &step, &err) < 0)
		abort();

	z = malloc(size + 1);
	if (z == NULL)
		return 0;
	memcpy(z, data, size);
	z[size] = '\0';
	if (mf_protocols_to_array(out, sizeof(out), z, &err) == 0) {
		size_t len = strlen(out);

		if (len < 3 || out[0] != '{' || out[len - 1] != '}')
			abort();
		for (i = 1; i + 1 < len; i++) {
			char c = out[i];

			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
			      c == '-' || c == ','))
				abort();
		}
	}
	free(z);
	return 0;
}
