/*
 * mailfort-crypt-plugin.h - internal interface of the mailfort_crypt plugin.
 *
 * The plugin (mailfort-crypt-plugin.c) hooks Dovecot's storage: messages
 * are encrypted as they are saved (crypt-ostream.c) and decrypted as they
 * are read (crypt-istream.c); account keys come from PostgreSQL
 * (crypt-keys.c).  Stored format: lib/mf-mailcrypt.h.
 */
#ifndef MAILFORT_CRYPT_PLUGIN_H
#define MAILFORT_CRYPT_PLUGIN_H

#include "mf-crypto.h"
#include "mf-mailcrypt.h"

struct module;
struct mail_user;
struct mf_config;
struct mf_db;

/* ---- streams ---- */

/* Plaintext view of a stored ciphertext.  reader is initialised (header
   authenticated, content key open) and copied; the caller clears its copy. */
struct istream *i_stream_create_mf_decrypt(struct istream *parent,
                                           const struct mf_mailcrypt_reader *reader);
/* Open and authenticate the final chunk now (also for an empty message,
   which a reader never reads into): the plaintext size the stream reports
   is then proven, and truncation found before anything is sent.  -1 with
   stream_errno EINVAL (damaged) or the parent's errno. */
int i_stream_mf_decrypt_check_final(struct istream *input, const char **error_r);
/* For a message of one chunk that has been opened (check_final): 1 when
   its plaintext holds a NUL byte, 0 when not; -1 when that is not known
   without decrypting (more chunks, or none opened yet). */
int i_stream_mf_decrypt_find_nul(struct istream *input);
/* Encrypting filter in front of parent, writing as params say (account
   public key, format version, server authenticator key); params is not
   kept. */
struct ostream *o_stream_create_mf_encrypt(struct ostream *parent,
                                           const struct mf_mailcrypt_params *params);
/* Whether the plaintext written so far to the encrypting stream in output
   (output itself or a stream under it) held a NUL byte: 1 yes, 0 no, -1
   when output has no encrypting stream. */
int o_stream_mf_encrypt_saw_nul(struct ostream *output);
/* The header the encrypting stream in output wrote (it holds the message's
   sealed key, so no two messages share one): 0, or -1 when there is no
   such stream or it failed before writing one. */
int o_stream_mf_encrypt_get_header(struct ostream *output,
                                   unsigned char header_r[MF_MAILCRYPT_HEADER_MAX],
                                   size_t *header_len_r);

/* ---- keys ---- */

enum mf_crypt_mode {
	MF_CRYPT_MODE_SERVER,
	MF_CRYPT_MODE_PASSWORD,
};

/* Per mail_user key state (crypt-keys.c). */
struct mf_crypt_keys;
/* Per process: recently used public keys by account (delivery). */
struct mf_crypt_pk_cache;

struct mf_crypt_pk_cache *mf_crypt_pk_cache_init(void);
void mf_crypt_pk_cache_deinit(struct mf_crypt_pk_cache **cache);

/* db: where the process keeps its database connection (opened on first
   need, closed by the owner of the slot); pk_cache may be NULL. */
struct mf_crypt_keys *mf_crypt_keys_init(const struct mf_config *cfg, struct mf_db **db,
                                         struct mf_crypt_pk_cache *pk_cache, const char *account,
                                         const char *password);
void mf_crypt_keys_deinit(struct mf_crypt_keys **keys);
enum mf_crypt_mode mf_crypt_keys_mode(const struct mf_crypt_keys *keys);

/* The account's current public key, for delivery.  In server mode with
   create_keys a missing key pair is made (and stored) now.  Returns 1 and
   the key, 0 when the account has no key and none may be made here
   (*error_r says why: a temporary failure for the sender), -1 on error
   (database unreachable, ...).  The key is an X25519 (32 bytes) or P-256
   (65 bytes) public key; [crypto] profile decides which kind a new key
   pair is. */
int mf_crypt_keys_get_public(struct mf_crypt_keys *keys, unsigned char pk_r[MF_ACCOUNT_PK_MAX],
                             size_t *pk_len_r, const char **error_r);
/* The key pair whose key id (mf_account_key_id_any of the public key) is
   key_id, for reading.  The returned pointers stay valid until deinit.  -1
   with *error_r when it is not found or cannot be unwrapped. */
int mf_crypt_keys_get_pair(struct mf_crypt_keys *keys,
                           const unsigned char key_id[MF_MAILCRYPT_KEY_ID_SIZE],
                           const unsigned char **pk_r, size_t *pk_len_r, const unsigned char **sk_r,
                           const char **error_r);

/* ---- plugin ---- */

extern const char *mailfort_crypt_plugin_version;
void mailfort_crypt_plugin_init(struct module *module);
void mailfort_crypt_plugin_deinit(void);

#endif
