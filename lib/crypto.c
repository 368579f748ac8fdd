/*
 * crypto.c - libsodium set-up, secretbox, sealed boxes, keyed hash and the
 * per-account mail key pairs (generation, wrapping, escrow).
 *
 * All functions returning int give 0 or -1 with a reason in *err that never
 * contains key material.  Every unwrap wipes its output on failure and
 * checks that the recovered secret key belongs to the expected public key.
 * Byte layouts: mf-crypto.h and docs/SECURITY.md.
 */
#include <string.h>
#include "mf-crypto-evp.h"
#include "mf-crypto.h"

#define SERVER_WRAP_MAGIC      "MFS1"
#define PWWRAP_MAGIC           "MFW1"
#define SERVER_WRAP_P256_MAGIC "MFS2"
#define PWWRAP_P256_MAGIC      "MFW2"

int mf_crypto_init(struct mf_error *err)
{
	/* sodium_init is itself idempotent and thread-safe. */
	if (sodium_init() < 0)
		return mf_error_set(err, "cannot initialise libsodium");
	return 0;
}

/* ---- secretbox ---- */

void mf_secretbox_seal(unsigned char *out, const unsigned char *in, size_t len,
                       const unsigned char key[crypto_secretbox_KEYBYTES])
{
	randombytes_buf(out, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, in, len, out, key);
}

int mf_secretbox_open(unsigned char *out, const unsigned char *in, size_t len,
                      const unsigned char key[crypto_secretbox_KEYBYTES])
{
	if (len < MF_SECRETBOX_OVERHEAD)
		return -1;
	if (crypto_secretbox_open_easy(out, in + crypto_secretbox_NONCEBYTES,
	                               len - crypto_secretbox_NONCEBYTES, in, key) != 0) {
		sodium_memzero(out, len - MF_SECRETBOX_OVERHEAD);
		return -1;
	}
	return 0;
}

/* ---- keyed hash ---- */

void mf_keyed_hash(unsigned char out[MF_KEYED_HASH_BYTES], const void *data, size_t len,
                   const unsigned char key[crypto_generichash_KEYBYTES])
{
	crypto_generichash(out, MF_KEYED_HASH_BYTES, data, len, key, crypto_generichash_KEYBYTES);
}

/* ---- sealed boxes ---- */

int mf_seal(unsigned char *out, const unsigned char *in, size_t len,
            const unsigned char pk[crypto_box_PUBLICKEYBYTES], struct mf_error *err)
{
	if (crypto_box_seal(out, in, len, pk) != 0)
		return mf_error_set(err, "cannot seal to public key (invalid public key)");
	return 0;
}

int mf_seal_open(unsigned char *out, const unsigned char *in, size_t len,
                 const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                 const unsigned char sk[crypto_box_SECRETKEYBYTES], struct mf_error *err)
{
	if (len < MF_SEAL_OVERHEAD)
		return mf_error_set(err, "sealed box too short (%zu bytes)", len);
	if (crypto_box_seal_open(out, in, len, pk, sk) != 0) {
		sodium_memzero(out, len - MF_SEAL_OVERHEAD);
		return mf_error_set(err, "cannot open sealed box (wrong key or corrupted data)");
	}
	return 0;
}

/* ---- account key pairs ---- */

void mf_account_keypair(unsigned char pk[MF_ACCOUNT_PK_BYTES],
                        unsigned char sk[MF_ACCOUNT_SK_BYTES])
{
	crypto_box_keypair(pk, sk);
}

int mf_account_key_check(const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                         const unsigned char sk[MF_ACCOUNT_SK_BYTES], struct mf_error *err)
{
	unsigned char derived[crypto_scalarmult_BYTES];
	int ret;

	if (crypto_scalarmult_base(derived, sk) != 0)
		return mf_error_set(err, "invalid account secret key");
	ret = sodium_memcmp(derived, pk, sizeof(derived));
	sodium_memzero(derived, sizeof(derived));
	if (ret != 0)
		return mf_error_set(err, "account secret key does not belong to public key");
	return 0;
}

void mf_account_key_id(unsigned char id[MF_ACCOUNT_KEY_ID_BYTES],
                       const unsigned char pk[MF_ACCOUNT_PK_BYTES])
{
	crypto_generichash(id, MF_ACCOUNT_KEY_ID_BYTES, pk, MF_ACCOUNT_PK_BYTES, NULL, 0);
}

void mf_account_key_id_hex(char hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1],
                           const unsigned char pk[MF_ACCOUNT_PK_BYTES])
{
	unsigned char id[MF_ACCOUNT_KEY_ID_BYTES];

	mf_account_key_id(id, pk);
	sodium_bin2hex(hex, 2 * MF_ACCOUNT_KEY_ID_BYTES + 1, id, sizeof(id));
}

enum mf_account_wrap_kind mf_account_wrap_kind(const unsigned char *blob, size_t len)
{
	if (len == MF_ACCOUNT_WRAP_SERVER_BYTES && memcmp(blob, SERVER_WRAP_MAGIC, 4) == 0)
		return MF_ACCOUNT_WRAP_SERVER;
	if (len == MF_ACCOUNT_WRAP_PASSWORD_BYTES && memcmp(blob, PWWRAP_MAGIC, 4) == 0)
		return MF_ACCOUNT_WRAP_PASSWORD;
	if (len == MF_ACCOUNT_WRAP_SERVER_P256_BYTES &&
	    memcmp(blob, SERVER_WRAP_P256_MAGIC, 4) == 0)
		return MF_ACCOUNT_WRAP_SERVER;
	if (len == MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES && memcmp(blob, PWWRAP_P256_MAGIC, 4) == 0)
		return MF_ACCOUNT_WRAP_PASSWORD;
	return MF_ACCOUNT_WRAP_UNKNOWN;
}

static void server_wrap_ad(unsigned char ad[4 + MF_ACCOUNT_PK_BYTES],
                           const unsigned char pk[MF_ACCOUNT_PK_BYTES])
{
	memcpy(ad, SERVER_WRAP_MAGIC, 4);
	memcpy(ad + 4, pk, MF_ACCOUNT_PK_BYTES);
}

int mf_account_wrap_server(unsigned char out[MF_ACCOUNT_WRAP_SERVER_BYTES],
                           const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                           const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                           const unsigned char master_key[32], struct mf_error *err)
{
	unsigned char ad[4 + MF_ACCOUNT_PK_BYTES];

	if (mf_account_key_check(pk, sk, err) < 0)
		return -1;
	server_wrap_ad(ad, pk);
	memcpy(out, SERVER_WRAP_MAGIC, 4);
	randombytes_buf(out + 4, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 28, NULL, sk, MF_ACCOUNT_SK_BYTES, ad,
	                                           sizeof(ad), NULL, out + 4, master_key);
	return 0;
}

int mf_account_unwrap_server(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                             size_t len, const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                             const unsigned char master_key[32], struct mf_error *err)
{
	unsigned char ad[4 + MF_ACCOUNT_PK_BYTES];

	if (mf_account_wrap_kind(blob, len) != MF_ACCOUNT_WRAP_SERVER)
		return mf_error_set(err, "not a server-mode wrapped key (%zu bytes)", len);
	server_wrap_ad(ad, pk);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(sk_out, NULL, NULL, blob + 28, len - 28, ad,
	                                               sizeof(ad), blob + 4, master_key) != 0) {
		sodium_memzero(sk_out, MF_ACCOUNT_SK_BYTES);
		return mf_error_set(err, "cannot unwrap account key: wrong master key, "
		                         "corrupted blob, or blob of another account");
	}
	if (mf_account_key_check(pk, sk_out, err) < 0) {
		sodium_memzero(sk_out, MF_ACCOUNT_SK_BYTES);
		return -1;
	}
	return 0;
}

int mf_account_wrap_password(unsigned char out[MF_ACCOUNT_WRAP_PASSWORD_BYTES],
                             const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                             const unsigned char sk[MF_ACCOUNT_SK_BYTES], const char *password,
                             size_t password_len, const struct mf_pwhash_params *params,
                             struct mf_error *err)
{
	if (mf_account_key_check(pk, sk, err) < 0)
		return -1;
	return mf_pwwrap(out, sk, MF_ACCOUNT_SK_BYTES, password, password_len, params, err);
}

int mf_account_unwrap_password(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                               size_t len, const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                               const char *password, size_t password_len, struct mf_error *err)
{
	if (mf_account_wrap_kind(blob, len) != MF_ACCOUNT_WRAP_PASSWORD)
		return mf_error_set(err, "not a password-mode wrapped key (%zu bytes)", len);
	if (mf_pwunwrap(sk_out, blob, len, password, password_len, err) < 0)
		return -1;
	if (mf_account_key_check(pk, sk_out, err) < 0) {
		sodium_memzero(sk_out, MF_ACCOUNT_SK_BYTES);
		return -1;
	}
	return 0;
}

int mf_account_escrow(unsigned char out[MF_ACCOUNT_ESCROW_BYTES],
                      const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                      const unsigned char recovery_pk[crypto_box_PUBLICKEYBYTES],
                      struct mf_error *err)
{
	return mf_seal(out, sk, MF_ACCOUNT_SK_BYTES, recovery_pk, err);
}

int mf_account_escrow_open(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                           size_t len, const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                           const unsigned char recovery_pk[crypto_box_PUBLICKEYBYTES],
                           const unsigned char recovery_sk[crypto_box_SECRETKEYBYTES],
                           struct mf_error *err)
{
	if (len != MF_ACCOUNT_ESCROW_BYTES)
		return mf_error_set(err, "escrow blob has %zu bytes, expected %d", len,
		                    (int)MF_ACCOUNT_ESCROW_BYTES);
	if (mf_seal_open(sk_out, blob, len, recovery_pk, recovery_sk, err) < 0)
		return mf_error_prefix(err, "cannot open escrow copy");
	if (mf_account_key_check(pk, sk_out, err) < 0) {
		sodium_memzero(sk_out, MF_ACCOUNT_SK_BYTES);
		return -1;
	}
	return 0;
}

/* ---- algorithms per profile ---- */

int mf_profile_parse(const char *name, enum mf_profile *profile_r)
{
	if (name == NULL || strcmp(name, "default") == 0)
		*profile_r = MF_PROFILE_DEFAULT;
	else if (strcmp(name, "kcmvp") == 0)
		*profile_r = MF_PROFILE_KCMVP;
	else
		return -1;
	return 0;
}

const char *mf_profile_name(enum mf_profile profile)
{
	return profile == MF_PROFILE_KCMVP ? "kcmvp" : "default";
}

enum mf_key_alg mf_profile_key_alg(enum mf_profile profile)
{
	return profile == MF_PROFILE_KCMVP ? MF_KEY_ALG_P256 : MF_KEY_ALG_X25519;
}

const char *mf_key_alg_name(enum mf_key_alg alg)
{
	return alg == MF_KEY_ALG_P256 ? "p256" : "x25519";
}

enum mf_key_alg mf_key_alg_of(size_t pk_len)
{
	if (pk_len == MF_ACCOUNT_PK_BYTES)
		return MF_KEY_ALG_X25519;
	if (pk_len == MF_P256_PK_BYTES)
		return MF_KEY_ALG_P256;
	return 0;
}

size_t mf_key_alg_pk_bytes(enum mf_key_alg alg)
{
	return alg == MF_KEY_ALG_P256 ? MF_P256_PK_BYTES : MF_ACCOUNT_PK_BYTES;
}

bool mf_key_alg_listed(enum mf_key_alg alg)
{
	return alg == MF_KEY_ALG_P256;
}

_Static_assert(MF_P256_SK_BYTES == MF_ACCOUNT_SK_BYTES, "one secret key size");
_Static_assert(MF_P256_PK_BYTES == MF_ACCOUNT_PK_MAX, "largest public key");

static int bad_key_len(size_t pk_len, struct mf_error *err)
{
	return mf_error_set(err, "public key of %zu bytes is neither X25519 (32) nor P-256 (65)",
	                    pk_len);
}

int mf_account_keypair_alg(enum mf_key_alg alg, unsigned char *pk,
                           unsigned char sk[MF_ACCOUNT_SK_BYTES], struct mf_error *err)
{
	if (alg == MF_KEY_ALG_P256)
		return mf_p256_keypair(pk, sk, err);
	mf_account_keypair(pk, sk);
	return 0;
}

int mf_account_key_check_any(const unsigned char *pk, size_t pk_len,
                             const unsigned char sk[MF_ACCOUNT_SK_BYTES], struct mf_error *err)
{
	switch (mf_key_alg_of(pk_len)) {
	case MF_KEY_ALG_X25519:
		return mf_account_key_check(pk, sk, err);
	case MF_KEY_ALG_P256:
		return mf_p256_key_check(pk, sk, err);
	}
	return bad_key_len(pk_len, err);
}

int mf_account_key_id_any(unsigned char id[MF_ACCOUNT_KEY_ID_BYTES], const unsigned char *pk,
                          size_t pk_len, struct mf_error *err)
{
	switch (mf_key_alg_of(pk_len)) {
	case MF_KEY_ALG_X25519:
		mf_account_key_id(id, pk);
		return 0;
	case MF_KEY_ALG_P256:
		return mf_p256_key_id(id, pk, err);
	}
	return bad_key_len(pk_len, err);
}

/* "MFS2" | nonce | ARIA-256-GCM(master, sk, ad = "MFS2" | pk) */
static int wrap_server_p256(unsigned char out[MF_ACCOUNT_WRAP_SERVER_P256_BYTES],
                            const unsigned char pk[MF_P256_PK_BYTES],
                            const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                            const unsigned char master_key[32], struct mf_error *err)
{
	unsigned char ad[4 + MF_P256_PK_BYTES];

	memcpy(ad, SERVER_WRAP_P256_MAGIC, 4);
	memcpy(ad + 4, pk, MF_P256_PK_BYTES);
	memcpy(out, SERVER_WRAP_P256_MAGIC, 4);
	if (mf_evp_random(out + 4, MF_ARIA_NONCE_BYTES, err) < 0)
		return -1;
	return mf_aria_gcm_seal(out + 4 + MF_ARIA_NONCE_BYTES, sk, MF_ACCOUNT_SK_BYTES, master_key,
	                        out + 4, ad, sizeof(ad), err);
}

static int unwrap_server_p256(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                              const unsigned char pk[MF_P256_PK_BYTES],
                              const unsigned char master_key[32], struct mf_error *err)
{
	unsigned char ad[4 + MF_P256_PK_BYTES];

	memcpy(ad, SERVER_WRAP_P256_MAGIC, 4);
	memcpy(ad + 4, pk, MF_P256_PK_BYTES);
	if (mf_aria_gcm_open(sk_out, blob + 4 + MF_ARIA_NONCE_BYTES,
	                     MF_ACCOUNT_WRAP_SERVER_P256_BYTES - 4 - MF_ARIA_NONCE_BYTES,
	                     master_key, blob + 4, ad, sizeof(ad), err) < 0)
		return mf_error_set(err, "cannot unwrap account key: wrong master key, "
		                         "corrupted blob, or blob of another account");
	return 0;
}

int mf_account_wrap_server_any(unsigned char out[MF_ACCOUNT_WRAP_MAX], size_t *out_len_r,
                               const unsigned char *pk, size_t pk_len,
                               const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                               const unsigned char master_key[32], struct mf_error *err)
{
	*out_len_r = 0;
	if (mf_account_key_check_any(pk, pk_len, sk, err) < 0)
		return -1;
	if (mf_key_alg_of(pk_len) == MF_KEY_ALG_X25519) {
		*out_len_r = MF_ACCOUNT_WRAP_SERVER_BYTES;
		return mf_account_wrap_server(out, pk, sk, master_key, err);
	}
	*out_len_r = MF_ACCOUNT_WRAP_SERVER_P256_BYTES;
	return wrap_server_p256(out, pk, sk, master_key, err);
}

int mf_account_unwrap_server_any(unsigned char sk_out[MF_ACCOUNT_SK_BYTES],
                                 const unsigned char *blob, size_t len, const unsigned char *pk,
                                 size_t pk_len, const unsigned char master_key[32],
                                 struct mf_error *err)
{
	switch (mf_key_alg_of(pk_len)) {
	case MF_KEY_ALG_X25519:
		return mf_account_unwrap_server(sk_out, blob, len, pk, master_key, err);
	case MF_KEY_ALG_P256:
		break;
	default:
		return bad_key_len(pk_len, err);
	}
	if (len != MF_ACCOUNT_WRAP_SERVER_P256_BYTES ||
	    memcmp(blob, SERVER_WRAP_P256_MAGIC, 4) != 0)
		return mf_error_set(err, "not a server-mode wrapped P-256 key (%zu bytes)", len);
	if (unwrap_server_p256(sk_out, blob, pk, master_key, err) < 0)
		return -1;
	if (mf_p256_key_check(pk, sk_out, err) < 0) {
		sodium_memzero(sk_out, MF_ACCOUNT_SK_BYTES);
		return -1;
	}
	return 0;
}

int mf_account_wrap_password_any(unsigned char out[MF_ACCOUNT_WRAP_MAX], size_t *out_len_r,
                                 const unsigned char *pk, size_t pk_len,
                                 const unsigned char sk[MF_ACCOUNT_SK_BYTES], const char *password,
                                 size_t password_len, struct mf_error *err)
{
	*out_len_r = 0;
	if (mf_account_key_check_any(pk, pk_len, sk, err) < 0)
		return -1;
	if (mf_key_alg_of(pk_len) == MF_KEY_ALG_X25519) {
		*out_len_r = MF_ACCOUNT_WRAP_PASSWORD_BYTES;
		return mf_pwwrap(out, sk, MF_ACCOUNT_SK_BYTES, password, password_len,
		                 &mf_pwhash_interactive, err);
	}
	*out_len_r = MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES;
	return mf_pwwrap_pbkdf2(out, sk, password, password_len, MF_PBKDF2_ITERATIONS, err);
}

int mf_account_unwrap_password_any(unsigned char sk_out[MF_ACCOUNT_SK_BYTES],
                                   const unsigned char *blob, size_t len, const unsigned char *pk,
                                   size_t pk_len, const char *password, size_t password_len,
                                   struct mf_error *err)
{
	switch (mf_key_alg_of(pk_len)) {
	case MF_KEY_ALG_X25519:
		return mf_account_unwrap_password(sk_out, blob, len, pk, password, password_len,
		                                  err);
	case MF_KEY_ALG_P256:
		break;
	default:
		return bad_key_len(pk_len, err);
	}
	if (mf_pwunwrap_pbkdf2(sk_out, blob, len, password, password_len, err) < 0)
		return -1;
	if (mf_p256_key_check(pk, sk_out, err) < 0) {
		sodium_memzero(sk_out, MF_ACCOUNT_SK_BYTES);
		return -1;
	}
	return 0;
}

int mf_account_escrow_any(unsigned char out[MF_ACCOUNT_ESCROW_MAX], size_t *out_len_r,
                          const unsigned char sk[MF_ACCOUNT_SK_BYTES], size_t pk_len,
                          const char *recovery_path, struct mf_error *err)
{
	unsigned char rpk[MF_P256_PK_BYTES];
	struct mf_error p256_err;

	*out_len_r = 0;
	if (mf_key_load(recovery_path, MF_KEY_PUBLIC, rpk, MF_P256_PK_BYTES, &p256_err) == 0) {
		*out_len_r = MF_ACCOUNT_ESCROW_P256_BYTES;
		return mf_p256_seal(out, sk, MF_ACCOUNT_SK_BYTES, "MFE2", 4, rpk, err);
	}
	if (mf_key_load(recovery_path, MF_KEY_PUBLIC, rpk, crypto_box_PUBLICKEYBYTES, err) < 0)
		return mf_error_prefix(err, "escrow_public_key (X25519, 32 bytes, or P-256, 65)");
	if (mf_key_alg_of(pk_len) == MF_KEY_ALG_P256)
		return mf_error_set(err,
		                    "%s is an X25519 recovery key; P-256 account keys (kcmvp "
		                    "profile) are escrowed only to a P-256 recovery key (65 bytes)",
		                    recovery_path);
	*out_len_r = MF_ACCOUNT_ESCROW_BYTES;
	return mf_account_escrow(out, sk, rpk, err);
}
