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
 *   audit-sign.key   64 bytes  Ed25519 secret key, auditd only
 *   audit-sign.pub   32 bytes  Ed25519 public key, anyone who verifies
 *
 * Secrets live in sodium_malloc'd buffers (guarded, mlocked) where practical
 * and are always wiped with sodium_memzero after use.
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

/* ---- symmetric box (secretbox, random nonce prepended) ---- */
#define MF_SECRETBOX_OVERHEAD (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
/* out must hold len + MF_SECRETBOX_OVERHEAD bytes. */
void mf_secretbox_seal(unsigned char *out, const unsigned char *in, size_t len,
		       const unsigned char key[crypto_secretbox_KEYBYTES]);
/* out must hold len - MF_SECRETBOX_OVERHEAD bytes. -1 on forgery / short input. */
int mf_secretbox_open(unsigned char *out, const unsigned char *in, size_t len,
		      const unsigned char key[crypto_secretbox_KEYBYTES]) MF_WARN_UNUSED;

/* ---- password-based wrapping (Argon2id + secretbox) ----
   Wrapped blob: "MFW1" | u8 alg | u32 opslimit | u32 memlimit_kib | salt[16] | secretbox.
   Parameters travel inside the blob so they can be raised later. */
#define MF_PWWRAP_OVERHEAD (4 + 1 + 4 + 4 + crypto_pwhash_SALTBYTES + MF_SECRETBOX_OVERHEAD)
struct mf_pwhash_params {
	unsigned long long opslimit;
	size_t memlimit;
};
extern const struct mf_pwhash_params mf_pwhash_interactive; /* for login-time unwrap */
int mf_pwwrap(unsigned char *out, const unsigned char *secret, size_t len, const char *password,
	      size_t password_len, const struct mf_pwhash_params *params,
	      struct mf_error *err) MF_WARN_UNUSED;
int mf_pwunwrap(unsigned char *out, const unsigned char *blob, size_t blob_len,
		const char *password, size_t password_len, struct mf_error *err) MF_WARN_UNUSED;

/* ---- keyed hash (app passwords, recovery codes) ---- */
#define MF_KEYED_HASH_BYTES 32
void mf_keyed_hash(unsigned char out[MF_KEYED_HASH_BYTES], const void *data, size_t len,
		   const unsigned char key[crypto_generichash_KEYBYTES]);

/* ---- stored mail format (see mf-mailcrypt.h) ---- */

#endif
