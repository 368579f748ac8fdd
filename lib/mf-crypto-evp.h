/*
 * mf-crypto-evp.h - the primitives of the kcmvp profile, all through
 * OpenSSL's EVP interfaces (so that a site can put a validated module
 * under them as an OpenSSL provider: docs/SECURITY.md, examples/openssl.cnf).
 *
 *   ARIA-256-GCM      AEAD for stored-mail chunks, wrapped keys, sealed keys
 *   HMAC-SHA256       message authenticators, key ids, randomness extraction
 *   KBKDF             NIST SP 800-108 counter mode, PRF HMAC-SHA256
 *   PBKDF2            PBKDF2-HMAC-SHA256 (password-mode wraps)
 *   ECDH P-256        sealing a key to an account's public key
 *
 * Every algorithm is fetched by name from the default library context
 * (EVP_CIPHER_fetch, EVP_MAC_fetch, EVP_KDF_fetch, EVP_PKEY_CTX_new_from_name),
 * so the provider configuration of openssl.cnf decides which implementation
 * runs; when it offers none, the call fails with "ARIA-256-GCM is not
 * available from OpenSSL: ..." (or the algorithm at fault) and nothing falls
 * back to another algorithm.  Random bytes come from RAND_bytes (the
 * provider's DRBG).
 *
 * Sealing to a P-256 public key (mf_p256_seal), integers big-endian:
 *   out = E (65, uncompressed ephemeral public key) || C (len) || T (16)
 *   Z    = ECDH(e, pk) x-coordinate (32 bytes)
 *   PRK  = HMAC-SHA256(key = 32 zero bytes, Z)          (SP 800-56C extraction)
 *   KEK  = KBKDF-CTR-HMAC-SHA256(PRK, label "mailfort p256 seal v1",
 *                                 context E || pk), 32 bytes   (expansion)
 *   C||T = ARIA-256-GCM(KEK, nonce 12 zero bytes, ad, in)
 * The nonce is constant because KEK is used once: a new ephemeral key is
 * drawn for every seal.
 *
 * All functions return 0 or -1 with a reason naming the algorithm that
 * failed; outputs are wiped on failure, temporaries always.
 */
#ifndef MF_CRYPTO_EVP_H
#define MF_CRYPTO_EVP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mf-common.h"

#define MF_P256_PK_BYTES      65 /* 04 || X || Y */
#define MF_P256_SK_BYTES      32 /* big-endian scalar */
#define MF_P256_SEAL_OVERHEAD (MF_P256_PK_BYTES + 16)
#define MF_ARIA_KEY_BYTES     32
#define MF_ARIA_NONCE_BYTES   12
#define MF_ARIA_TAG_BYTES     16
#define MF_HMAC_SHA256_BYTES  32

/* Name of the chunk cipher of the kcmvp profile, as OpenSSL spells it. */
#define MF_ARIA_GCM_NAME "ARIA-256-GCM"

/* Empty this thread's OpenSSL error queue and return its first reason. */
const char *mf_openssl_reason(char *buf, size_t size);

/* Fill buf with len bytes from the provider's DRBG. */
int mf_evp_random(unsigned char *buf, size_t len, struct mf_error *err) MF_WARN_UNUSED;

/* HMAC-SHA256 over the concatenation of up to two buffers (b may be NULL). */
int mf_hmac_sha256(unsigned char out[MF_HMAC_SHA256_BYTES], const unsigned char *key,
                   size_t key_len, const void *a, size_t a_len, const void *b, size_t b_len,
                   struct mf_error *err) MF_WARN_UNUSED;
/* SHA-256 of data. */
int mf_sha256(unsigned char out[32], const void *data, size_t len,
              struct mf_error *err) MF_WARN_UNUSED;

/* KBKDF (SP 800-108, counter mode, HMAC-SHA256) of out_len bytes. */
int mf_kbkdf_sha256(unsigned char *out, size_t out_len, const unsigned char *key, size_t key_len,
                    const char *label, const void *context, size_t context_len,
                    struct mf_error *err) MF_WARN_UNUSED;

/* PBKDF2-HMAC-SHA256 of out_len bytes. */
int mf_pbkdf2_sha256(unsigned char *out, size_t out_len, const char *password, size_t password_len,
                     const unsigned char *salt, size_t salt_len, uint32_t iterations,
                     struct mf_error *err) MF_WARN_UNUSED;

/* One-shot ARIA-256-GCM: out gets len ciphertext bytes and the 16-byte tag.
   open: in_len includes the tag; out gets in_len - 16 bytes, wiped when the
   tag does not verify ("... failed authentication"). */
int mf_aria_gcm_seal(unsigned char *out, const unsigned char *in, size_t len,
                     const unsigned char key[MF_ARIA_KEY_BYTES],
                     const unsigned char nonce[MF_ARIA_NONCE_BYTES], const void *ad, size_t ad_len,
                     struct mf_error *err) MF_WARN_UNUSED;
int mf_aria_gcm_open(unsigned char *out, const unsigned char *in, size_t in_len,
                     const unsigned char key[MF_ARIA_KEY_BYTES],
                     const unsigned char nonce[MF_ARIA_NONCE_BYTES], const void *ad, size_t ad_len,
                     struct mf_error *err) MF_WARN_UNUSED;

/* ---- P-256 ---- */

int mf_p256_keypair(unsigned char pk[MF_P256_PK_BYTES], unsigned char sk[MF_P256_SK_BYTES],
                    struct mf_error *err) MF_WARN_UNUSED;
/* 0 when sk is the secret key of pk (and pk a point on the curve). */
int mf_p256_key_check(const unsigned char pk[MF_P256_PK_BYTES],
                      const unsigned char sk[MF_P256_SK_BYTES],
                      struct mf_error *err) MF_WARN_UNUSED;
/* Key id: the first 8 bytes of SHA-256(pk). */
int mf_p256_key_id(unsigned char id[8], const unsigned char pk[MF_P256_PK_BYTES],
                   struct mf_error *err) MF_WARN_UNUSED;
/* Seal len bytes to pk (layout above); out: len + MF_P256_SEAL_OVERHEAD. */
int mf_p256_seal(unsigned char *out, const unsigned char *in, size_t len, const void *ad,
                 size_t ad_len, const unsigned char pk[MF_P256_PK_BYTES],
                 struct mf_error *err) MF_WARN_UNUSED;
/* out: in_len - MF_P256_SEAL_OVERHEAD bytes. */
int mf_p256_seal_open(unsigned char *out, const unsigned char *in, size_t in_len, const void *ad,
                      size_t ad_len, const unsigned char pk[MF_P256_PK_BYTES],
                      const unsigned char sk[MF_P256_SK_BYTES],
                      struct mf_error *err) MF_WARN_UNUSED;

#endif
