/*
 * mf-crypto.h - keys, sealed boxes, key wrapping and the stored-mail format.
 *
 * All primitives are libsodium's.  Call mf_crypto_init() once (it is
 * idempotent and thread-safe); every other function assumes it succeeded.
 *
 * Key files: raw key bytes, nothing else.  mf_key_load refuses a file that
 * is not a regular file, has the wrong size, or (for secret keys) can be
 * read or written by group or other, naming the file and its mode.
 * mf_key_save writes atomically (temp file + rename) with mode 0600 (secret)
 * or 0644 (public) and refuses to replace an existing file unless told.
 *
 * Server keys in the key dir (mailfortctl keys init):
 *   master.key       32 bytes  wraps per-account mail private keys (server mode)
 *   totp.key         32 bytes  encrypts TOTP secrets (secretbox)
 *   hash.key         32 bytes  keyed hash for app passwords / recovery codes
 *   spam.key         32 bytes  keys the spam token ids (mailfort-milter)
 *   audit-sign.key   64 bytes  Ed25519 secret key, auditd only
 *   audit-sign.pub   32 bytes  Ed25519 public key, anyone who verifies
 *   ([crypt] escrow_public_key) 32 bytes  X25519 public half of the offline
 *                    recovery key pair; its secret half never lives on a server
 *
 * Everything returning int gives 0 or -1 and a reason in *err; the reason
 * names the file or the check that failed and never contains key material.
 * Full byte layouts and the key hierarchy: docs/SECURITY.md.
 *
 * The library works only in buffers the caller owns; it never keeps a copy
 * of a key and wipes its own temporaries (derived keys, failed outputs) with
 * sodium_memzero.  Long-lived secrets (server keys, unwrapped account keys)
 * belong in sodium_malloc'd buffers (guarded, mlocked) where practical, and
 * must be wiped with sodium_memzero by their owner after use.
 */
#ifndef MF_CRYPTO_H
#define MF_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>
#include "mf-common.h"

int mf_crypto_init(struct mf_error *err) MF_WARN_UNUSED;

/* ---- key files ---- */
enum mf_key_kind { MF_KEY_SECRET, MF_KEY_PUBLIC };
/* Load exactly len bytes into key (caller's buffer). */
int mf_key_load(const char *path, enum mf_key_kind kind, unsigned char *key, size_t len,
                struct mf_error *err) MF_WARN_UNUSED;
int mf_key_save(const char *path, enum mf_key_kind kind, const unsigned char *key, size_t len,
                bool overwrite, struct mf_error *err) MF_WARN_UNUSED;
/* Check that path's permissions are safe for a secret (no group/other bits). */
int mf_key_check_mode(const char *path, struct mf_error *err) MF_WARN_UNUSED;
/* Fill key with len random bytes and save it as a new secret key file. */
int mf_key_generate(const char *path, unsigned char *key, size_t len, bool overwrite,
                    struct mf_error *err) MF_WARN_UNUSED;

/* ---- symmetric box (secretbox, random nonce prepended) ----
   Layout: nonce[24] | MAC[16] | ciphertext (XSalsa20-Poly1305). */
#define MF_SECRETBOX_OVERHEAD (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
/* out must hold len + MF_SECRETBOX_OVERHEAD bytes. */
void mf_secretbox_seal(unsigned char *out, const unsigned char *in, size_t len,
                       const unsigned char key[crypto_secretbox_KEYBYTES]);
/* out must hold len - MF_SECRETBOX_OVERHEAD bytes. -1 on forgery / short input. */
int mf_secretbox_open(unsigned char *out, const unsigned char *in, size_t len,
                      const unsigned char key[crypto_secretbox_KEYBYTES]) MF_WARN_UNUSED;

/* ---- password-based wrapping (Argon2id + XChaCha20-Poly1305) ----
   Wrapped blob, MF_PWWRAP_OVERHEAD + len bytes (integers little-endian):
     "MFW1" | u8 alg (1 = Argon2id v1.3) | u32 opslimit | u32 memlimit in KiB |
     salt[16] | nonce[24] | AEAD(secret) (len + 16-byte tag)
   The first 29 bytes are the AEAD's associated data, so the parameters are
   authenticated.  They travel inside the blob so they can be raised later
   without breaking old blobs.  mf_pwunwrap refuses parameters outside
   [MF_PWHASH_OPSLIMIT_MIN..MAX] x [MF_PWHASH_MEMLIMIT_MIN..MAX] (a planted
   blob must not make a login allocate gigabytes), and says "wrong password
   or corrupted key blob" when the tag does not verify. */
#define MF_PWWRAP_OVERHEAD                                                                        \
	(4 + 1 + 4 + 4 + crypto_pwhash_SALTBYTES + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + \
	 crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define MF_PWHASH_OPSLIMIT_MIN 1ULL
#define MF_PWHASH_OPSLIMIT_MAX 20ULL
#define MF_PWHASH_MEMLIMIT_MIN ((size_t)8 << 20)
#define MF_PWHASH_MEMLIMIT_MAX ((size_t)1 << 30)
struct mf_pwhash_params {
	unsigned long long opslimit;
	size_t memlimit; /* bytes, multiple of 1 KiB */
};
/* Argon2id t=3, m=64 MiB, p=1: the login-time unwrap (see docs/SECURITY.md). */
extern const struct mf_pwhash_params mf_pwhash_interactive;
/* out must hold len + MF_PWWRAP_OVERHEAD bytes. */
int mf_pwwrap(unsigned char *out, const unsigned char *secret, size_t len, const char *password,
              size_t password_len, const struct mf_pwhash_params *params,
              struct mf_error *err) MF_WARN_UNUSED;
/* out must hold blob_len - MF_PWWRAP_OVERHEAD bytes. */
int mf_pwunwrap(unsigned char *out, const unsigned char *blob, size_t blob_len,
                const char *password, size_t password_len, struct mf_error *err) MF_WARN_UNUSED;
/* Read the parameters of a blob (e.g. to see whether it needs rewrapping). */
int mf_pwwrap_params(const unsigned char *blob, size_t blob_len, struct mf_pwhash_params *params_r,
                     struct mf_error *err) MF_WARN_UNUSED;

/* ---- keyed hash (app passwords, recovery codes) ---- */
#define MF_KEYED_HASH_BYTES 32
void mf_keyed_hash(unsigned char out[MF_KEYED_HASH_BYTES], const void *data, size_t len,
                   const unsigned char key[crypto_generichash_KEYBYTES]);

/* ---- sealed boxes (anonymous sender, X25519 + XSalsa20-Poly1305) ---- */
#define MF_SEAL_OVERHEAD crypto_box_SEALBYTES
/* out must hold len + MF_SEAL_OVERHEAD bytes. */
int mf_seal(unsigned char *out, const unsigned char *in, size_t len,
            const unsigned char pk[crypto_box_PUBLICKEYBYTES], struct mf_error *err) MF_WARN_UNUSED;
/* out must hold len - MF_SEAL_OVERHEAD bytes. */
int mf_seal_open(unsigned char *out, const unsigned char *in, size_t len,
                 const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                 const unsigned char sk[crypto_box_SECRETKEYBYTES],
                 struct mf_error *err) MF_WARN_UNUSED;

/* ---- per-account mail key pairs (X25519) ----
   The public key seals every stored message (mf-mailcrypt.h).  The secret
   key is only ever stored wrapped (mail_keys.wrapped_private):
     server mode:   "MFS1" | nonce[24] | XChaCha20-Poly1305(master.key, sk,
                    ad = "MFS1" | pk)                      (76 bytes)
     password mode: mf_pwwrap(sk, password)               (101 bytes)
     escrow copy:   mf_seal(sk, recovery public key)       (80 bytes)
   Every unwrap checks that the secret key belongs to the expected public
   key, so wrapped keys swapped between accounts are refused. */
#define MF_ACCOUNT_PK_BYTES            crypto_box_PUBLICKEYBYTES
#define MF_ACCOUNT_SK_BYTES            crypto_box_SECRETKEYBYTES
#define MF_ACCOUNT_KEY_ID_BYTES        8
#define MF_ACCOUNT_WRAP_SERVER_BYTES   (4 + 24 + MF_ACCOUNT_SK_BYTES + 16)
#define MF_ACCOUNT_WRAP_PASSWORD_BYTES (MF_PWWRAP_OVERHEAD + MF_ACCOUNT_SK_BYTES)
#define MF_ACCOUNT_ESCROW_BYTES        (MF_SEAL_OVERHEAD + MF_ACCOUNT_SK_BYTES)
#define MF_ACCOUNT_WRAP_MAX            MF_ACCOUNT_WRAP_PASSWORD_BYTES
enum mf_account_wrap_kind {
	MF_ACCOUNT_WRAP_UNKNOWN,
	MF_ACCOUNT_WRAP_SERVER,
	MF_ACCOUNT_WRAP_PASSWORD,
};
void mf_account_keypair(unsigned char pk[MF_ACCOUNT_PK_BYTES],
                        unsigned char sk[MF_ACCOUNT_SK_BYTES]);
/* 0 when sk is the secret key of pk. */
int mf_account_key_check(const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                         const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                         struct mf_error *err) MF_WARN_UNUSED;
/* Short public identifier of a key pair: BLAKE2b-64 of the public key
   (stored in every message header; hex for log lines). */
void mf_account_key_id(unsigned char id[MF_ACCOUNT_KEY_ID_BYTES],
                       const unsigned char pk[MF_ACCOUNT_PK_BYTES]);
void mf_account_key_id_hex(char hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1],
                           const unsigned char pk[MF_ACCOUNT_PK_BYTES]);
/* Which wrapping a stored blob uses (by its magic and size). */
enum mf_account_wrap_kind mf_account_wrap_kind(const unsigned char *blob, size_t len);
/* out: MF_ACCOUNT_WRAP_SERVER_BYTES. */
int mf_account_wrap_server(unsigned char out[MF_ACCOUNT_WRAP_SERVER_BYTES],
                           const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                           const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                           const unsigned char master_key[32], struct mf_error *err) MF_WARN_UNUSED;
int mf_account_unwrap_server(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                             size_t len, const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                             const unsigned char master_key[32],
                             struct mf_error *err) MF_WARN_UNUSED;
/* out: MF_ACCOUNT_WRAP_PASSWORD_BYTES. */
int mf_account_wrap_password(unsigned char out[MF_ACCOUNT_WRAP_PASSWORD_BYTES],
                             const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                             const unsigned char sk[MF_ACCOUNT_SK_BYTES], const char *password,
                             size_t password_len, const struct mf_pwhash_params *params,
                             struct mf_error *err) MF_WARN_UNUSED;
int mf_account_unwrap_password(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                               size_t len, const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                               const char *password, size_t password_len,
                               struct mf_error *err) MF_WARN_UNUSED;
/* out: MF_ACCOUNT_ESCROW_BYTES, sealed to the offline recovery public key. */
int mf_account_escrow(unsigned char out[MF_ACCOUNT_ESCROW_BYTES],
                      const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                      const unsigned char recovery_pk[crypto_box_PUBLICKEYBYTES],
                      struct mf_error *err) MF_WARN_UNUSED;
int mf_account_escrow_open(unsigned char sk_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                           size_t len, const unsigned char pk[MF_ACCOUNT_PK_BYTES],
                           const unsigned char recovery_pk[crypto_box_PUBLICKEYBYTES],
                           const unsigned char recovery_sk[crypto_box_SECRETKEYBYTES],
                           struct mf_error *err) MF_WARN_UNUSED;

/* ---- algorithms per profile ([crypto] profile) ----
   default: X25519 account keys, sealed boxes, XChaCha20-Poly1305 wraps,
            Argon2id password wraps, AES-256-GCM stored-mail chunks;
   kcmvp:   only algorithms on the KCMVP list, through OpenSSL EVP
            (mf-crypto-evp.h): P-256 account keys, ECDH P-256 + KBKDF
            sealing, ARIA-256-GCM wraps and chunks, PBKDF2-HMAC-SHA256
            password wraps, HMAC-SHA256 authenticators.
   The algorithm of a key follows from its public key's length (32 bytes
   X25519, 65 bytes P-256), and the wrap of its private key from the key:
     P-256 server mode:   "MFS2" | nonce[12] | ARIA-256-GCM(master.key, sk,
                          ad = "MFS2" | pk)                     (64 bytes)
     P-256 password mode: "MFW2" | u8 alg = 2 (PBKDF2-HMAC-SHA256) |
                          u32 iterations | u32 0 | salt[16] | nonce[12] |
                          ARIA-256-GCM(PBKDF2 key, sk, ad = bytes 0..28)
                                                                (89 bytes)
   Every function below takes the public key with its length and works for
   both algorithms; the X25519-only functions above stay for callers that
   know their keys are X25519. */
enum mf_profile { MF_PROFILE_DEFAULT, MF_PROFILE_KCMVP };
enum mf_key_alg { MF_KEY_ALG_X25519 = 1, MF_KEY_ALG_P256 = 2 };
#define MF_ACCOUNT_PK_MAX                   65
#define MF_ACCOUNT_WRAP_SERVER_P256_BYTES   (4 + 12 + MF_ACCOUNT_SK_BYTES + 16)
#define MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES (4 + 1 + 4 + 4 + 16 + 12 + MF_ACCOUNT_SK_BYTES + 16)
/* PBKDF2-HMAC-SHA256 iterations of new P-256 password wraps, and the range
   an unwrap accepts (a planted blob must not make a login spin for minutes). */
#define MF_PBKDF2_ITERATIONS     600000u
#define MF_PBKDF2_ITERATIONS_MIN 100000u
#define MF_PBKDF2_ITERATIONS_MAX 10000000u

/* "default" / "kcmvp"; -1 for anything else. */
int mf_profile_parse(const char *name, enum mf_profile *profile_r) MF_WARN_UNUSED;
const char *mf_profile_name(enum mf_profile profile);
/* The key algorithm the profile makes new account keys with. */
enum mf_key_alg mf_profile_key_alg(enum mf_profile profile);
/* "x25519" / "p256". */
const char *mf_key_alg_name(enum mf_key_alg alg);
/* Algorithm of a public key by its length; 0 when no algorithm has it. */
enum mf_key_alg mf_key_alg_of(size_t pk_len);
size_t mf_key_alg_pk_bytes(enum mf_key_alg alg);
/* Whether the algorithm is on the kcmvp profile's list. */
bool mf_key_alg_listed(enum mf_key_alg alg);

/* pk: mf_key_alg_pk_bytes(alg) bytes; sk: MF_ACCOUNT_SK_BYTES. */
int mf_account_keypair_alg(enum mf_key_alg alg, unsigned char *pk,
                           unsigned char sk[MF_ACCOUNT_SK_BYTES],
                           struct mf_error *err) MF_WARN_UNUSED;
int mf_account_key_check_any(const unsigned char *pk, size_t pk_len,
                             const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                             struct mf_error *err) MF_WARN_UNUSED;
/* Key id of either kind of key: BLAKE2b-64 (X25519) or the first 8 bytes
   of SHA-256 (P-256) of the public key. */
int mf_account_key_id_any(unsigned char id[MF_ACCOUNT_KEY_ID_BYTES], const unsigned char *pk,
                          size_t pk_len, struct mf_error *err) MF_WARN_UNUSED;
/* Server-mode wrap of the key's kind; out: MF_ACCOUNT_WRAP_MAX bytes,
 *out_len_r its length. */
int mf_account_wrap_server_any(unsigned char out[MF_ACCOUNT_WRAP_MAX], size_t *out_len_r,
                               const unsigned char *pk, size_t pk_len,
                               const unsigned char sk[MF_ACCOUNT_SK_BYTES],
                               const unsigned char master_key[32],
                               struct mf_error *err) MF_WARN_UNUSED;
int mf_account_unwrap_server_any(unsigned char sk_out[MF_ACCOUNT_SK_BYTES],
                                 const unsigned char *blob, size_t len, const unsigned char *pk,
                                 size_t pk_len, const unsigned char master_key[32],
                                 struct mf_error *err) MF_WARN_UNUSED;
/* Password-mode wrap of the key's kind (X25519: Argon2id with
   mf_pwhash_interactive; P-256: PBKDF2 with MF_PBKDF2_ITERATIONS). */
int mf_account_wrap_password_any(unsigned char out[MF_ACCOUNT_WRAP_MAX], size_t *out_len_r,
                                 const unsigned char *pk, size_t pk_len,
                                 const unsigned char sk[MF_ACCOUNT_SK_BYTES], const char *password,
                                 size_t password_len, struct mf_error *err) MF_WARN_UNUSED;
int mf_account_unwrap_password_any(unsigned char sk_out[MF_ACCOUNT_SK_BYTES],
                                   const unsigned char *blob, size_t len, const unsigned char *pk,
                                   size_t pk_len, const char *password, size_t password_len,
                                   struct mf_error *err) MF_WARN_UNUSED;
/* Escrow copy of a secret key sealed to the offline recovery public key in
   the file recovery_path: an X25519 recovery key (32 bytes) gives
   mf_account_escrow (80 bytes), a P-256 one (65 bytes) mf_p256_seal with
   ad "MFE2" (113 bytes).  A P-256 account key (pk_len 65) is escrowed only
   to a P-256 recovery key: sealing it with X25519 would leave the profile's
   list.  out: MF_ACCOUNT_ESCROW_MAX bytes. */
#define MF_ACCOUNT_ESCROW_P256_BYTES (MF_ACCOUNT_SK_BYTES + MF_ACCOUNT_PK_MAX + 16)
#define MF_ACCOUNT_ESCROW_MAX        MF_ACCOUNT_ESCROW_P256_BYTES
int mf_account_escrow_any(unsigned char out[MF_ACCOUNT_ESCROW_MAX], size_t *out_len_r,
                          const unsigned char sk[MF_ACCOUNT_SK_BYTES], size_t pk_len,
                          const char *recovery_path, struct mf_error *err) MF_WARN_UNUSED;
/* PBKDF2 password wrap of a 32-byte secret ("MFW2", layout above) with
   the given iteration count; out: MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES. */
int mf_pwwrap_pbkdf2(unsigned char *out, const unsigned char secret[MF_ACCOUNT_SK_BYTES],
                     const char *password, size_t password_len, uint32_t iterations,
                     struct mf_error *err) MF_WARN_UNUSED;
int mf_pwunwrap_pbkdf2(unsigned char secret_out[MF_ACCOUNT_SK_BYTES], const unsigned char *blob,
                       size_t blob_len, const char *password, size_t password_len,
                       struct mf_error *err) MF_WARN_UNUSED;

/* ---- stored mail format: see mf-mailcrypt.h ---- */

#endif
