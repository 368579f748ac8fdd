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

/* ---- stored mail format: see mf-mailcrypt.h ---- */

#endif
