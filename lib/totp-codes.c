/*
 * totp-codes.c - generated app passwords and recovery codes, their keyed
 * hashes, the split of a login string into password and code, and
 * protocol lists for app passwords.
 *
 * The alphabets leave out characters that are easy to mistake for each
 * other when read off a screen (l/1, o/0).  Input is normalised (case
 * folded, dashes and spaces dropped) before hashing, so the hash is the
 * same however the user typed the groups.  Returns 0 / -1 (see mf-totp.h).
 */
#include <string.h>
#include "mf-crypto-evp.h"
#include "mf-totp.h"

static const char apppass_alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789"; /* 32 */
static const char recovery_alphabet[] = "abcdefghjkmnpqrstuvwxyz";         /* 23 */

#define MAX_TYPED 64 /* longest input considered (with separators) */

static void generate(char *out, size_t chars, const char *alphabet, size_t alphabet_len)
{
	size_t i, o = 0;

	for (i = 0; i < chars; i++) {
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = alphabet[randombytes_uniform((uint32_t)alphabet_len)];
	}
	out[o] = '\0';
}

void mf_apppass_new(char out[MF_APPPASS_DISPLAY])
{
	generate(out, MF_APPPASS_CHARS, apppass_alphabet, sizeof(apppass_alphabet) - 1);
}

void mf_recovery_new(char out[MF_RECOVERY_DISPLAY])
{
	generate(out, MF_RECOVERY_CHARS, recovery_alphabet, sizeof(recovery_alphabet) - 1);
}

/* Normalise s into out (want characters exactly, all from alphabet):
   separators (dashes, spaces) dropped, ASCII letters folded to lower case. */
static int normalise(char *out, size_t want, const char *s, size_t len, const char *alphabet)
{
	size_t i, o = 0;

	if (len > MAX_TYPED)
		return -1;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '-' || c == ' ')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '\0' || strchr(alphabet, c) == NULL || o == want)
			return -1;
		out[o++] = c;
	}
	return o == want ? 0 : -1;
}

int mf_apppass_normalise(char out[MF_APPPASS_CHARS + 1], const char *s, size_t len)
{
	if (normalise(out, MF_APPPASS_CHARS, s, len, apppass_alphabet) < 0) {
		sodium_memzero(out, MF_APPPASS_CHARS + 1);
		return -1;
	}
	out[MF_APPPASS_CHARS] = '\0';
	return 0;
}

static int keyed(unsigned char out[MF_KEYED_HASH_BYTES], size_t want, const char *s, size_t len,
                 const char *alphabet, const unsigned char key[crypto_generichash_KEYBYTES])
{
	char norm[MAX_TYPED];
	int ret = -1;

	if (normalise(norm, want, s, len, alphabet) == 0) {
		mf_keyed_hash(out, norm, want, key);
		ret = 0;
	}
	sodium_memzero(norm, sizeof(norm));
	return ret;
}

int mf_apppass_hash(unsigned char out[MF_KEYED_HASH_BYTES], const char *s, size_t len,
                    const unsigned char key[crypto_generichash_KEYBYTES])
{
	return keyed(out, MF_APPPASS_CHARS, s, len, apppass_alphabet, key);
}

int mf_recovery_hash(unsigned char out[MF_KEYED_HASH_BYTES], const char *s, size_t len,
                     const unsigned char key[crypto_generichash_KEYBYTES])
{
	return keyed(out, MF_RECOVERY_CHARS, s, len, recovery_alphabet, key);
}

enum mf_code_hash mf_code_hash_for(enum mf_profile profile)
{
	return profile == MF_PROFILE_KCMVP ? MF_CODE_HASH_HMAC : MF_CODE_HASH_BLAKE2B;
}

static int keyed_both(unsigned char out[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES], size_t want,
                      const char *s, size_t len, const char *alphabet,
                      const unsigned char key[crypto_generichash_KEYBYTES])
{
	char norm[MAX_TYPED];
	int ret = -1;

	if (normalise(norm, want, s, len, alphabet) == 0) {
		mf_keyed_hash(out[MF_CODE_HASH_BLAKE2B], norm, want, key);
		if (mf_hmac_sha256(out[MF_CODE_HASH_HMAC], key, crypto_generichash_KEYBYTES, norm,
		                   want, NULL, 0, NULL) < 0)
			memcpy(out[MF_CODE_HASH_HMAC], out[MF_CODE_HASH_BLAKE2B],
			       MF_KEYED_HASH_BYTES);
		ret = 0;
	}
	sodium_memzero(norm, sizeof(norm));
	return ret;
}

int mf_apppass_hashes(unsigned char out[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES], const char *s,
                      size_t len, const unsigned char key[crypto_generichash_KEYBYTES])
{
	return keyed_both(out, MF_APPPASS_CHARS, s, len, apppass_alphabet, key);
}

int mf_recovery_hashes(unsigned char out[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES], const char *s,
                       size_t len, const unsigned char key[crypto_generichash_KEYBYTES])
{
	return keyed_both(out, MF_RECOVERY_CHARS, s, len, recovery_alphabet, key);
}

static bool is_recovery_char(char c)
{
	if (c >= 'A' && c <= 'Z')
		c = (char)(c - 'A' + 'a');
	return c != '\0' && strchr(recovery_alphabet, c) != NULL;
}

size_t mf_recovery_suffix_len(const char *s, size_t len)
{
	size_t i, n = MF_RECOVERY_DISPLAY - 1;

	/* "xxxx-xxxx-xxxx", or with spaces: the separators normalise() drops */
	if (len >= n) {
		const char *p = s + len - n;

		for (i = 0; i < n; i++) {
			if (i % 5 == 4 ? p[i] != '-' && p[i] != ' ' : !is_recovery_char(p[i]))
				break;
		}
		if (i == n)
			return n;
	}
	/* "xxxxxxxxxxxx" */
	n = MF_RECOVERY_CHARS;
	if (len >= n) {
		for (i = len - n; i < len; i++) {
			if (!is_recovery_char(s[i]))
				return 0;
		}
		return n;
	}
	return 0;
}

void mf_login_split(struct mf_login_split *r, const char *s, size_t len, unsigned digits)
{
	size_t i, n;

	r->factor = MF_LOGIN_FACTOR_NONE;
	r->password_len = len;
	r->code_len = 0;
	if (len == 0)
		return;
	if (s[len - 1] >= '0' && s[len - 1] <= '9') {
		if (digits == 0 || len < digits)
			return;
		for (i = len - digits; i < len; i++) {
			if (s[i] < '0' || s[i] > '9')
				return;
		}
		r->factor = MF_LOGIN_FACTOR_TOTP;
		r->code_len = digits;
	} else {
		n = mf_recovery_suffix_len(s, len);
		if (n == 0)
			return;
		r->factor = MF_LOGIN_FACTOR_RECOVERY;
		r->code_len = n;
	}
	r->password_len = len - r->code_len;
}

int mf_protocols_to_array(char *out, size_t out_size, const char *list, struct mf_error *err)
{
	size_t o = 0, start, i, len = strlen(list);

	if (out_size < 3)
		return mf_error_set(err, "protocol list: no room");
	out[o++] = '{';
	start = 0;
	for (i = 0; i <= len; i++) {
		if (i < len && list[i] != ',')
			continue;
		if (i == start)
			return mf_error_set(err, "protocol list '%s': empty item", list);
		if (i - start > 32)
			return mf_error_set(err, "protocol list: item too long");
		/* no duplicates: look for ",item," in what was written so far */
		{
			size_t k, plen = i - start;
			const char *item = list + start;
			size_t p = 1;

			while (p < o) {
				size_t e = p;

				while (e < o && out[e] != ',')
					e++;
				if (e - p == plen) {
					for (k = 0; k < plen; k++) {
						char c = item[k];

						if (c >= 'A' && c <= 'Z')
							c = (char)(c - 'A' + 'a');
						if (out[p + k] != c)
							break;
					}
					if (k == plen)
						return mf_error_set(err,
						                    "protocol list: '%.*s' "
						                    "appears twice",
						                    (int)plen, item);
				}
				p = e + 1;
			}
		}
		if (o > 1)
			out[o++] = ',';
		for (; start < i; start++) {
			char c = list[start];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
			      c == '-'))
				return mf_error_set(err,
				                    "protocol list '%s': '%c' is not allowed "
				                    "(letters, digits, '_' and '-')",
				                    list, list[start]);
			if (o + 2 >= out_size)
				return mf_error_set(err, "protocol list is too long");
			out[o++] = c;
		}
		start = i + 1;
	}
	out[o++] = '}';
	out[o] = '\0';
	return 0;
}
