/*
 * mf-totp.h - one-time codes (RFC 4226/6238), app passwords, recovery codes.
 *
 * Shared by pam_mailfort (verification at login) and mailfortctl
 * (enrolment, issuing app passwords and recovery codes).
 *
 * TOTP codes are generated with liboath's HOTP function and compared here
 * in constant time over the whole window (liboath's own validators use
 * strcmp and stop at the first match).  Replay protection is not done here:
 * the caller records the accepted step with an atomic
 *   UPDATE ... SET totp_last_step = $step WHERE totp_last_step < $step
 * and refuses when no row changed.
 *
 * App passwords: 20 characters from a 32-letter alphabet (100 bits), shown
 * as five groups of four ("k7vq-...").  Recovery codes: 12 letters (about
 * 54 bits, one use each), shown as three groups of four.  Both are stored
 * only as mf_keyed_hash() of their normalised form (lower case, without
 * separators), so a user may type them with or without dashes/spaces.
 *
 * Functions return 0 / -1 (with err set) unless documented otherwise.
 * No function here logs, and no error message contains a secret.
 */
#ifndef MF_TOTP_H
#define MF_TOTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "mf-common.h"
#include "mf-crypto.h"

#define MF_TOTP_SECRET_BYTES 20 /* 160 bits, RFC 4226 recommendation */
#define MF_TOTP_MIN_DIGITS   6
#define MF_TOTP_MAX_DIGITS   8
#define MF_TOTP_MAX_WINDOW   10
/* A sealed secret as stored in accounts.totp_secret. */
#define MF_TOTP_SEALED_BYTES (MF_TOTP_SECRET_BYTES + MF_SECRETBOX_OVERHEAD)

/* The time step holding now (now / period), period in seconds (>= 1). */
uint64_t mf_totp_step(time_t now, unsigned period);

/* Write the digits-long code for step into out (NUL-terminated). */
int mf_totp_code(char out[MF_TOTP_MAX_DIGITS + 1], const unsigned char *secret, size_t secret_len,
                 uint64_t step, unsigned digits, struct mf_error *err) MF_WARN_UNUSED;

/* Check code (code_len characters, not NUL-terminated necessarily) against
   every step in [step - window, step + window], comparing in constant time
   and without stopping at a match.  Returns 1 and the highest matching step
   in *step_r, 0 when no step matches (also for a code of the wrong length or
   with non-digits), -1 on an internal error (err set). */
int mf_totp_verify(const unsigned char *secret, size_t secret_len, const char *code,
                   size_t code_len, unsigned digits, uint64_t step, unsigned window,
                   uint64_t *step_r, struct mf_error *err) MF_WARN_UNUSED;

/* ---- secrets at rest ---- */
/* A new random secret. */
void mf_totp_secret_new(unsigned char secret[MF_TOTP_SECRET_BYTES]);
/* Seal / open a secret with the TOTP key (secretbox). open fails on a
   forged or malformed value, or one of another length. */
void mf_totp_secret_seal(unsigned char out[MF_TOTP_SEALED_BYTES],
                         const unsigned char secret[MF_TOTP_SECRET_BYTES],
                         const unsigned char key[crypto_secretbox_KEYBYTES]);
int mf_totp_secret_open(unsigned char secret[MF_TOTP_SECRET_BYTES], const unsigned char *sealed,
                        size_t sealed_len, const unsigned char key[crypto_secretbox_KEYBYTES],
                        struct mf_error *err) MF_WARN_UNUSED;

/* Base32 (RFC 4648, no padding) of secret, as authenticator apps want it.
   malloc'd; the caller wipes and frees it. NULL on allocation failure. */
char *mf_totp_base32(const unsigned char *secret, size_t len);
/* otpauth://totp/ISSUER:USER?secret=...&issuer=...&algorithm=SHA1&digits=D&period=P
   with issuer and user percent-encoded.  malloc'd, contains the secret:
   wipe before free.  NULL on allocation failure. */
char *mf_totp_uri(const char *issuer, const char *user, const unsigned char *secret,
                  size_t secret_len, unsigned digits, unsigned period);

/* ---- key files ---- */
/* Load keys/<name> from the key directory (e.g. "totp.key", "hash.key"),
   refusing files that group or other can read. */
int mf_totp_load_key(const char *key_dir, const char *name,
                     unsigned char key[crypto_secretbox_KEYBYTES],
                     struct mf_error *err) MF_WARN_UNUSED;

/* ---- app passwords and recovery codes ---- */
#define MF_APPPASS_CHARS    20
#define MF_APPPASS_DISPLAY  (MF_APPPASS_CHARS + MF_APPPASS_CHARS / 4) /* groups + NUL */
#define MF_RECOVERY_CHARS   12
#define MF_RECOVERY_DISPLAY (MF_RECOVERY_CHARS + MF_RECOVERY_CHARS / 4)
#define MF_RECOVERY_COUNT   10

/* A new app password, "xxxx-xxxx-xxxx-xxxx-xxxx" (NUL-terminated). */
void mf_apppass_new(char out[MF_APPPASS_DISPLAY]);
/* A new recovery code, "xxxx-xxxx-xxxx". */
void mf_recovery_new(char out[MF_RECOVERY_DISPLAY]);

/* Keyed hash of the normalised form of an app password: dashes and spaces
   dropped, letters folded to lower case.  Returns 0, or -1 when s is not
   shaped like an app password (wrong length or characters): then it cannot
   be one, and no lookup is needed. */
int mf_apppass_hash(unsigned char out[MF_KEYED_HASH_BYTES], const char *s, size_t len,
                    const unsigned char key[crypto_generichash_KEYBYTES]);
/* Same for recovery codes. */
int mf_recovery_hash(unsigned char out[MF_KEYED_HASH_BYTES], const char *s, size_t len,
                     const unsigned char key[crypto_generichash_KEYBYTES]);
/* Both kinds of keyed hash of the normal form, for lookups:
   [MF_CODE_HASH_BLAKE2B] keyed BLAKE2b-256 (what mf_apppass_hash gives; the
   default profile stores it) and [MF_CODE_HASH_HMAC] HMAC-SHA256 under the
   same hash.key through OpenSSL (the kcmvp profile stores it).  A lookup
   matches either, so codes made before a profile switch keep working; new
   codes are stored with mf_code_hash_for(profile).  -1 when s is not
   shaped like one.  Should OpenSSL fail to give the HMAC, that slot holds
   the BLAKE2b hash again: an HMAC-stored code is then not found (closed). */
enum mf_code_hash { MF_CODE_HASH_BLAKE2B = 0, MF_CODE_HASH_HMAC = 1 };
#define MF_CODE_HASH_KINDS 2
enum mf_code_hash mf_code_hash_for(enum mf_profile profile);
int mf_apppass_hashes(unsigned char out[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES], const char *s,
                      size_t len, const unsigned char key[crypto_generichash_KEYBYTES]);
int mf_recovery_hashes(unsigned char out[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES], const char *s,
                       size_t len, const unsigned char key[crypto_generichash_KEYBYTES]);
/* Length of a recovery code at the end of s (with its two dashes, or
   spaces in their place, or without), or 0 when s does not end with one. */
size_t mf_recovery_suffix_len(const char *s, size_t len);

/* The normal form of an app password, as it is hashed and as it wraps a
   mail key: dashes and spaces dropped, ASCII letters folded to lower case,
   exactly MF_APPPASS_CHARS characters of the app password alphabet, NUL
   terminated.  Returns 0, or -1 when s is not shaped like an app password
   (out is then wiped).  The only normaliser: pam_mailfort, mailfort_crypt
   and mailfortctl all go through it. */
int mf_apppass_normalise(char out[MF_APPPASS_CHARS + 1], const char *s, size_t len);

/* ---- a login string: password followed by the second factor ---- */
enum mf_login_factor {
	MF_LOGIN_FACTOR_NONE,     /* no code at the end */
	MF_LOGIN_FACTOR_TOTP,     /* the last `digits` characters, all digits */
	MF_LOGIN_FACTOR_RECOVERY, /* a recovery code, "xxxx-xxxx-xxxx", spaces, or none */
};

struct mf_login_split {
	enum mf_login_factor factor;
	size_t password_len; /* the password is s[0 .. password_len) */
	size_t code_len;     /* the code is s[password_len .. password_len + code_len) */
};

/* Split a login string as mail clients send it in append mode: password
   immediately followed by a TOTP code of `digits` digits, or by a recovery
   code.  A string whose last character is a digit can only end in a TOTP
   code: when its last `digits` characters are not all digits (or it is
   shorter) there is no code.  Otherwise a recovery code at the end is
   looked for.  Bytes are compared as bytes (a UTF-8 password is fine), and
   nothing is trimmed: a code followed by a space is no code.  The password
   may be empty (the string is only a code).  With factor NONE,
   password_len is len and code_len 0.  The one splitter: pam_mailfort and
   mailfort_crypt's password mode both use it. */
void mf_login_split(struct mf_login_split *r, const char *s, size_t len, unsigned digits);

/* ---- protocols ---- */
/* Validate and normalise a protocol list "imap,pop3,smtp" (lower case,
   [a-z0-9_-]+, comma separated, no duplicates) into a PostgreSQL text[]
   literal "{imap,pop3,smtp}" in out.  -1 with err naming the bad item. */
int mf_protocols_to_array(char *out, size_t out_size, const char *list,
                          struct mf_error *err) MF_WARN_UNUSED;

#endif
