/*
 * crypto-pwwrap.c - wrap a small secret under a password (Argon2id +
 * XChaCha20-Poly1305), parameters carried and authenticated in the blob.
 *
 * Blob (integers little-endian, layout also in mf-crypto.h):
 *   0  "MFW1"   4  u8 alg = 1 (Argon2id v1.3)   5  u32 opslimit
 *   9  u32 memlimit (KiB)   13 salt[16]   29 nonce[24]   53 AEAD(secret)
 * The AEAD's associated data is bytes 0..28.
 *
 * mf_pwwrap / mf_pwunwrap return 0 or -1 with a reason: parameters out of
 * range, not a wrapped blob, unknown algorithm, out of memory for Argon2id,
 * or "wrong password or corrupted key blob".  Derived keys are wiped.
 *
 * The kcmvp profile's wrap ("MFW2", mf_pwwrap_pbkdf2) has the same shape
 * with listed algorithms: PBKDF2-HMAC-SHA256 and ARIA-256-GCM (layout in
 * mf-crypto.h); its iteration count travels in the blob in the same way.
 */
#include <string.h>
#include "mf-crypto-evp.h"
#include "mf-crypto.h"

#define PW_MAGIC          "MFW1"
#define PW_ALG_ARGON2ID13 1
#define PW_AD_BYTES       29
#define PW_NONCE_OFF      29
#define PW_CT_OFF         (PW_NONCE_OFF + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)

/* Argon2id t=3, m=64 MiB: about 0.1-0.2 s on one 2020s server core; see SECURITY.md. */
const struct mf_pwhash_params mf_pwhash_interactive = {
    .opslimit = 3,
    .memlimit = (size_t)64 << 20,
};

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int params_check(const struct mf_pwhash_params *p, struct mf_error *err)
{
	if (p->opslimit < MF_PWHASH_OPSLIMIT_MIN || p->opslimit > MF_PWHASH_OPSLIMIT_MAX)
		return mf_error_set(err, "Argon2id opslimit %llu outside %llu..%llu", p->opslimit,
		                    MF_PWHASH_OPSLIMIT_MIN, MF_PWHASH_OPSLIMIT_MAX);
	if (p->memlimit < MF_PWHASH_MEMLIMIT_MIN || p->memlimit > MF_PWHASH_MEMLIMIT_MAX ||
	    p->memlimit % 1024 != 0)
		return mf_error_set(err, "Argon2id memlimit %zu KiB outside %zu..%zu KiB",
		                    p->memlimit / 1024, MF_PWHASH_MEMLIMIT_MIN / 1024,
		                    MF_PWHASH_MEMLIMIT_MAX / 1024);
	return 0;
}

static int derive(unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES],
                  const char *password, size_t password_len, const unsigned char *salt,
                  const struct mf_pwhash_params *p, struct mf_error *err)
{
	if (crypto_pwhash(key, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, password, password_len,
	                  salt, p->opslimit, p->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return mf_error_set(err, "Argon2id failed (out of memory for %zu KiB?)",
		                    p->memlimit / 1024);
	return 0;
}

int mf_pwwrap_params(const unsigned char *blob, size_t blob_len, struct mf_pwhash_params *params_r,
                     struct mf_error *err)
{
	if (blob_len < MF_PWWRAP_OVERHEAD || memcmp(blob, PW_MAGIC, 4) != 0)
		return mf_error_set(err, "not a password-wrapped blob");
	if (blob[4] != PW_ALG_ARGON2ID13)
		return mf_error_set(err, "password-wrapped blob uses unknown algorithm %u",
		                    blob[4]);
	params_r->opslimit = get_le32(blob + 5);
	params_r->memlimit = (size_t)get_le32(blob + 9) * 1024;
	return params_check(params_r, err);
}

int mf_pwwrap(unsigned char *out, const unsigned char *secret, size_t len, const char *password,
              size_t password_len, const struct mf_pwhash_params *params, struct mf_error *err)
{
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];

	if (params_check(params, err) < 0)
		return -1;
	memcpy(out, PW_MAGIC, 4);
	out[4] = PW_ALG_ARGON2ID13;
	put_le32(out + 5, (uint32_t)params->opslimit);
	put_le32(out + 9, (uint32_t)(params->memlimit / 1024));
	randombytes_buf(out + 13, crypto_pwhash_SALTBYTES);
	randombytes_buf(out + PW_NONCE_OFF, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	if (derive(key, password, password_len, out + 13, params, err) < 0)
		return -1;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + PW_CT_OFF, NULL, secret, len, out,
	                                           PW_AD_BYTES, NULL, out + PW_NONCE_OFF, key);
	sodium_memzero(key, sizeof(key));
	return 0;
}

int mf_pwunwrap(unsigned char *out, const unsigned char *blob, size_t blob_len,
                const char *password, size_t password_len, struct mf_error *err)
{
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	struct mf_pwhash_params params;
	int ret;

	if (mf_pwwrap_params(blob, blob_len, &params, err) < 0)
		return -1;
	if (derive(key, password, password_len, blob + 13, &params, err) < 0)
		return -1;
	ret = crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, blob + PW_CT_OFF,
	                                                 blob_len - PW_CT_OFF, blob, PW_AD_BYTES,
	                                                 blob + PW_NONCE_OFF, key);
	sodium_memzero(key, sizeof(key));
	if (ret != 0) {
		sodium_memzero(out, blob_len - MF_PWWRAP_OVERHEAD);
		return mf_error_set(err, "wrong password or corrupted key blob");
	}
	return 0;
}

/* ---- PBKDF2-HMAC-SHA256 + ARIA-256-GCM ("MFW2") ---- */

#define PW2_MAGIC      "MFW2"
#define PW2_ALG_PBKDF2 2
#define PW2_SALT_OFF   13
#define PW2_NONCE_OFF  29
#define PW2_CT_OFF     (PW2_NONCE_OFF + MF_ARIA_NONCE_BYTES)
_Static_assert(PW2_CT_OFF + MF_ACCOUNT_SK_BYTES + MF_ARIA_TAG_BYTES ==
                   MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES,
               "MFW2 layout");

int mf_pwwrap_pbkdf2(unsigned char *out, const unsigned char secret[MF_ACCOUNT_SK_BYTES],
                     const char *password, size_t password_len, uint32_t iterations,
                     struct mf_error *err)
{
	unsigned char key[MF_ARIA_KEY_BYTES];
	int ret;

	if (iterations < MF_PBKDF2_ITERATIONS_MIN || iterations > MF_PBKDF2_ITERATIONS_MAX)
		return mf_error_set(err, "PBKDF2 iterations %u outside %u..%u", iterations,
		                    MF_PBKDF2_ITERATIONS_MIN, MF_PBKDF2_ITERATIONS_MAX);
	memcpy(out, PW2_MAGIC, 4);
	out[4] = PW2_ALG_PBKDF2;
	put_le32(out + 5, iterations);
	put_le32(out + 9, 0);
	if (mf_evp_random(out + PW2_SALT_OFF, 16 + MF_ARIA_NONCE_BYTES, err) < 0 ||
	    mf_pbkdf2_sha256(key, sizeof(key), password, password_len, out + PW2_SALT_OFF, 16,
	                     iterations, err) < 0)
		return -1;
	ret = mf_aria_gcm_seal(out + PW2_CT_OFF, secret, MF_ACCOUNT_SK_BYTES, key,
	                       out + PW2_NONCE_OFF, out, PW_AD_BYTES, err);
	sodium_memzero(key, sizeof(key));
	return ret;
}

int mf_pwunwrap_pbkdf2(unsigned char secret_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                       size_t blob_len, const char *password, size_t password_len,
                       struct mf_error *err)
{
	unsigned char key[MF_ARIA_KEY_BYTES];
	uint32_t iterations;
	int ret;

	if (blob_len != MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES || memcmp(blob, PW2_MAGIC, 4) != 0)
		return mf_error_set(err, "not a PBKDF2 password-wrapped blob (%zu bytes)",
		                    blob_len);
	if (blob[4] != PW2_ALG_PBKDF2 || get_le32(blob + 9) != 0)
		return mf_error_set(err, "password-wrapped blob uses unknown algorithm %u",
		                    blob[4]);
	iterations = get_le32(blob + 5);
	if (iterations < MF_PBKDF2_ITERATIONS_MIN || iterations > MF_PBKDF2_ITERATIONS_MAX)
		return mf_error_set(err, "PBKDF2 iterations %u outside %u..%u", iterations,
		                    MF_PBKDF2_ITERATIONS_MIN, MF_PBKDF2_ITERATIONS_MAX);
	if (mf_pbkdf2_sha256(key, sizeof(key), password, password_len, blob + PW2_SALT_OFF, 16,
	                     iterations, err) < 0)
		return -1;
	ret = mf_aria_gcm_open(secret_out, blob + PW2_CT_OFF, blob_len - PW2_CT_OFF, key,
	                       blob + PW2_NONCE_OFF, blob, PW_AD_BYTES, err);
	sodium_memzero(key, sizeof(key));
	if (ret < 0)
		return mf_error_set(err, "wrong password or corrupted key blob");
	return 0;
}
