/*
 * totp.c - TOTP codes (RFC 6238 over RFC 4226 HOTP, HMAC-SHA-1), secrets at
 * rest, otpauth:// URIs.
 *
 * Codes come from liboath's oath_hotp_generate; the comparison is ours and
 * constant time over the whole window.  Secrets are sealed with secretbox
 * under totp.key.  Returns 0 / -1 with err set (see mf-totp.h); never logs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <liboath/oath.h>
#include "mf-totp.h"

uint64_t mf_totp_step(time_t now, unsigned period)
{
	if (period == 0)
		period = 30;
	if (now < 0)
		return 0;
	return (uint64_t)now / period;
}

int mf_totp_code(char out[MF_TOTP_MAX_DIGITS + 1], const unsigned char *secret, size_t secret_len,
                 uint64_t step, unsigned digits, struct mf_error *err)
{
	int rc;

	if (digits < MF_TOTP_MIN_DIGITS || digits > MF_TOTP_MAX_DIGITS)
		return mf_error_set(err, "totp: %u digits is not supported (6 to 8)", digits);
	if (secret_len == 0)
		return mf_error_set(err, "totp: empty secret");
	/* oath_init only checks library versions; it is cheap and idempotent. */
	rc = oath_init();
	if (rc != OATH_OK)
		return mf_error_set(err, "totp: liboath: %s", oath_strerror(rc));
	rc = oath_hotp_generate((const char *)secret, secret_len, step, digits, false,
	                        OATH_HOTP_DYNAMIC_TRUNCATION, out);
	if (rc != OATH_OK) {
		sodium_memzero(out, MF_TOTP_MAX_DIGITS + 1);
		return mf_error_set(err, "totp: liboath: %s", oath_strerror(rc));
	}
	return 0;
}

int mf_totp_verify(const unsigned char *secret, size_t secret_len, const char *code,
                   size_t code_len, unsigned digits, uint64_t step, unsigned window,
                   uint64_t *step_r, struct mf_error *err)
{
	char want[MF_TOTP_MAX_DIGITS + 1];
	uint64_t first, s, matched = 0;
	size_t i;
	int found = 0, ret = 0;

	*step_r = 0;
	if (window > MF_TOTP_MAX_WINDOW)
		window = MF_TOTP_MAX_WINDOW;
	/* The length and the digit-ness of the input are not secret. */
	if (code_len != digits)
		return 0;
	for (i = 0; i < code_len; i++) {
		if (code[i] < '0' || code[i] > '9')
			return 0;
	}
	first = step >= window ? step - window : 0;
	/* Every step of the window is computed and compared, whatever matched,
	   so the time taken does not depend on which step (if any) matched. */
	for (s = first; s <= step + window; s++) {
		int eq;

		if (mf_totp_code(want, secret, secret_len, s, digits, err) < 0) {
			ret = -1;
			break;
		}
		eq = sodium_memcmp(want, code, digits) == 0;
		found |= eq;
		/* branch-free: keep the highest matching step */
		matched = eq ? s : matched;
	}
	sodium_memzero(want, sizeof(want));
	if (ret < 0)
		return -1;
	*step_r = matched;
	return found ? 1 : 0;
}

void mf_totp_secret_new(unsigned char secret[MF_TOTP_SECRET_BYTES])
{
	randombytes_buf(secret, MF_TOTP_SECRET_BYTES);
}

void mf_totp_secret_seal(unsigned char out[MF_TOTP_SEALED_BYTES],
                         const unsigned char secret[MF_TOTP_SECRET_BYTES],
                         const unsigned char key[crypto_secretbox_KEYBYTES])
{
	mf_secretbox_seal(out, secret, MF_TOTP_SECRET_BYTES, key);
}

int mf_totp_secret_open(unsigned char secret[MF_TOTP_SECRET_BYTES], const unsigned char *sealed,
                        size_t sealed_len, const unsigned char key[crypto_secretbox_KEYBYTES],
                        struct mf_error *err)
{
	if (sealed_len != MF_TOTP_SEALED_BYTES)
		return mf_error_set(err, "totp: stored secret has %zu bytes, expected %d",
		                    sealed_len, MF_TOTP_SEALED_BYTES);
	if (mf_secretbox_open(secret, sealed, sealed_len, key) < 0) {
		sodium_memzero(secret, MF_TOTP_SECRET_BYTES);
		return mf_error_set(err, "totp: stored secret does not open with totp.key "
		                         "(wrong key, or the value was altered)");
	}
	return 0;
}

char *mf_totp_base32(const unsigned char *secret, size_t len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	size_t i, o = 0, out_len = (len * 8 + 4) / 5;
	unsigned int buf = 0, bits = 0;
	char *out;

	out = malloc(out_len + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		buf = (buf << 8) | secret[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = alphabet[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = alphabet[(buf << (5 - bits)) & 31];
	out[o] = '\0';
	/* a plain store of 0 could be dropped by the compiler */
	sodium_memzero(&buf, sizeof(buf));
	return out;
}

/* Percent-encode s for a URI path segment or query value. */
static size_t uri_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
			if (out != NULL)
				out[o] = (char)c;
			o++;
		} else {
			if (out != NULL) {
				out[o] = '%';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			}
			o += 3;
		}
	}
	return o;
}

char *mf_totp_uri(const char *issuer, const char *user, const unsigned char *secret,
                  size_t secret_len, unsigned digits, unsigned period)
{
	char *b32, *out, *p;
	size_t len;

	b32 = mf_totp_base32(secret, secret_len);
	if (b32 == NULL)
		return NULL;
	len = strlen("otpauth://totp/") + 2 * uri_escape(NULL, issuer) + uri_escape(NULL, user) +
	      strlen(b32) + 128;
	out = malloc(len);
	if (out == NULL) {
		sodium_memzero(b32, strlen(b32));
		free(b32);
		return NULL;
	}
	p = out;
	p += sprintf(p, "otpauth://totp/");
	p += uri_escape(p, issuer);
	*p++ = ':';
	p += uri_escape(p, user);
	p += sprintf(p, "?secret=%s&issuer=", b32);
	p += uri_escape(p, issuer);
	sprintf(p, "&algorithm=SHA1&digits=%u&period=%u", digits, period);
	sodium_memzero(b32, strlen(b32));
	free(b32);
	return out;
}

int mf_totp_load_key(const char *key_dir, const char *name,
                     unsigned char key[crypto_secretbox_KEYBYTES], struct mf_error *err)
{
	char path[4096];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", key_dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return mf_error_set(err, "key directory path is too long");
	return mf_key_load(path, MF_KEY_SECRET, key, crypto_secretbox_KEYBYTES, err);
}
