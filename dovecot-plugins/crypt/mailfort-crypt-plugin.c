/*
 * mailfort-crypt-plugin.c - mailfort_crypt: every message Dovecot stores is
 * encrypted to its account's key; reading decrypts, transparently.
 *
 * Hooks (mail-storage-hooks.h):
 *   mail_user_created  load mailfort.conf (plugin setting mailfort_config),
 *                      set up the account's key state (keys are fetched
 *                      from PostgreSQL only when first needed)
 *   mailbox_allocated  save_begin wraps the storage's output in the
 *                      encrypting ostream (LMTP, APPEND, doveadm save, sieve
 *                      fileinto, and COPY/MOVE done by saving); copy between
 *                      different users goes through decrypt + re-encrypt;
 *                      the mail cache is disabled for the mailbox, so no
 *                      header, envelope or body structure is ever written to
 *                      dovecot.index.cache in the clear
 *   mail_allocated     istream_opened puts the decrypting istream in front
 *                      of a stored ciphertext; plaintext (stored before the
 *                      plugin was enabled) passes through unchanged
 * lmtp's raw mail user (the incoming message) is left alone.  Storages that
 * cannot hold binary data (mbox) refuse to save instead of storing
 * plaintext.  Per process (plugin_init .. plugin_deinit): the parsed
 * configuration (reloaded when the file changes), one database connection
 * and a 60-second cache of public keys for delivery.  Per mail_user: the
 * opened content keys of up to 4096 recently read messages, so that reading
 * a message again does not open its header again (wiped with the user).
 *
 * Sizes: the ostream's offset counts plaintext bytes, so the storage records
 * the plaintext size as the physical size (maildir: S= in the file name) and
 * the virtual size it computes while parsing the saved message (W=), as it
 * does for zlib; RFC822.SIZE and BODY[] lengths are those of the plaintext.
 * With the cache off, the index's vsize record extension (sizes only) is
 * started so that a FETCH does not read each message twice for its size.
 * For the same reason a one-byte record extension "mailfort-crypt" holds
 * whether a message is known to contain no NUL byte (written when the
 * message is saved; one-chunk messages are checked when they are opened):
 * without it IMAP passes every FETCH through a stream that scans and copies
 * the whole message to replace NULs.  Like the sizes it says nothing about
 * the content a reader of the index could use.
 *
 * Format: new messages are written in format version 2 (AES-256-GCM
 * chunks, lib/mf-mailcrypt.h) to an X25519 key, and in version 3
 * (ARIA-256-GCM, ECDH P-256) to a P-256 key, which accounts get under
 * [crypto] profile = kcmvp; plugin setting mailfort_crypt_save_version = 1
 * writes version 1 (XChaCha20-Poly1305) to X25519 keys instead, for a site
 * whose other readers predate version 2.  Every version, and plaintext, is
 * read.  Any other value fails the user's login and delivery.  With
 * mail-mac.key in [keys] dir every new message carries the server
 * authenticator; [crypt] require_encrypted serves only messages whose
 * authenticator verifies (mailfort_crypt_refuse).
 *
 * Failures: a message that cannot be decrypted (corrupted, truncated, key
 * not unwrappable) makes mail_get_stream() fail with an error in the log
 * naming the user, mailbox and UID.  Damaged data is reported as
 * MAIL_ERROR_INVALIDDATA, which IMAP answers with a tagged NO [PARSE] for
 * that FETCH and keeps the session (whatever imap_fetch_failure says); a key
 * that cannot be had is an internal error.  The first and the
 * last chunk are authenticated when the message is opened, so a damaged
 * single-chunk message (< 64 KiB) or a truncated one never gets as far as a
 * literal on the wire.  A save for which no key is available fails with a
 * temporary error (LMTP 451): plaintext is never stored.
 */
#include "lib.h"
#include "array.h"
#include "hash.h"
#include "istream.h"
#include "istream-crlf.h"
#include "istream-seekable.h"
#include "ostream.h"
#include "module-dir.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "mail-copy.h"
#include "mail-index-private.h"
#include "index-mail.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-event.h"
#include "mf-spool.h"
#include "mf-submit.h"
#include "mailfort-crypt-plugin.h"

#include <sys/stat.h>
#include <unistd.h>

#define MAILFORT_CRYPT_USER_CONTEXT(obj) MODULE_CONTEXT(obj, mailfort_crypt_user_module)
#define MAILFORT_CRYPT_BOX_CONTEXT(obj)  MODULE_CONTEXT_REQUIRE(obj, mailfort_crypt_storage_module)
#define MAILFORT_CRYPT_MAIL_CONTEXT(obj) MODULE_CONTEXT_REQUIRE(obj, mailfort_crypt_mail_module)

/* Values of the "mailfort-crypt" index record extension (one byte). */
#define MF_CRYPT_EXT_NAME     "mailfort-crypt"
#define MF_CRYPT_NULS_UNKNOWN 0 /* no record (saved without the plugin, copied) */
#define MF_CRYPT_NULS_NONE    1 /* the plaintext holds no NUL byte */
#define MF_CRYPT_NULS_SOME    2

struct mailfort_crypt_mailbox {
	union mailbox_module_context module_ctx;
	uint32_t ext_id;     /* the "mailfort-crypt" record extension, */
	bool ext_registered; /* once the mailbox is opened */
};

/* Opened headers kept per mail_user: opening a header (crypto_box_seal_open)
   costs about as much as decrypting 50 KB, and clients read the same
   message several times in a session (ENVELOPE or BODYSTRUCTURE, then
   BODY[], then parts of it).  Keyed by the header tag (a MAC); a hit needs
   the whole header to be byte-identical to one that was authenticated, so
   it yields exactly what mf_mailcrypt_reader_init would.  Only the size
   fields of the kept reader are recomputed (they come from the file, not
   the header).  At most MF_CRYPT_READER_CACHE_MAX entries (~260 bytes
   each); when full, all are wiped and it starts again; wiped with the
   user. */
#define MF_CRYPT_READER_CACHE_MAX 4096
#define MF_CRYPT_SAVED_MAX        8
struct mf_crypt_reader_entry {
	/* the header tag is its last MF_MAILCRYPT_HEADER_TAG_SIZE bytes */
	unsigned char header[MF_MAILCRYPT_HEADER_MAX];
	size_t header_len;
	struct mf_mailcrypt_reader reader;
};

struct mailfort_crypt_user {
	union mail_user_module_context module_ctx;
	const struct mf_config *cfg; /* owned by the process state */
	struct mf_crypt_keys *keys;
	unsigned int save_version; /* format version of new X25519-sealed messages */
	/* [crypt] require_encrypted: serve only ciphertexts with a valid
	   server authenticator */
	bool require_encrypted;
	/* mail-mac.key, when the key dir has it: every new message carries
	   the server authenticator; wiped with the user */
	bool have_mac_key;
	unsigned char mac_key[MF_MAILCRYPT_MAC_KEY_SIZE];
	/* header tag (16 bytes inside the entry) -> entry; created on first use */
	HASH_TABLE(const unsigned char *, struct mf_crypt_reader_entry *) readers;
	/* lmtp and dovecot-lda only: the plaintext this user's messages were
	   last saved from, and the headers they were sealed with (one delivery
	   may save it several times: Sieve keep and fileinto); see
	   mailfort_crypt_saved_plain */
	bool keep_saved;
	struct istream *saved_input;
	unsigned int saved_count, saved_next;
	unsigned char saved_headers[MF_CRYPT_SAVED_MAX][MF_MAILCRYPT_HEADER_MAX];
	size_t saved_header_lens[MF_CRYPT_SAVED_MAX];
};

/* What the plugin keeps for the whole process (an lmtp process delivers to
   many users, one mail_user each): the parsed configuration, reloaded when
   the file changes, and one database connection, so a delivery costs one
   query and not a connection.  Made in plugin_init, freed in
   plugin_deinit; a Dovecot mail process is single-threaded. */
struct mailfort_crypt_process {
	char *config_path;
	struct mf_config *cfg;
	struct stat cfg_st;
	/* configurations replaced by a reload; users may still point at them */
	ARRAY(struct mf_config *) old_cfgs;
	/* stands in for cfg for users that fail (user->error is set) */
	struct mf_config *defaults;
	struct mf_db *db;
	struct mf_crypt_pk_cache *pk_cache;
};

static struct mailfort_crypt_process *mailfort_crypt_process;

const char *mailfort_crypt_plugin_version = DOVECOT_ABI_VERSION;

static MODULE_CONTEXT_DEFINE_INIT(mailfort_crypt_user_module, &mail_user_module_register);
static MODULE_CONTEXT_DEFINE_INIT(mailfort_crypt_storage_module, &mail_storage_module_register);
static MODULE_CONTEXT_DEFINE_INIT(mailfort_crypt_mail_module, &mail_module_register);

/* ---- reading ---- */

/* Authenticate chunk 0 and the last chunk now, so that damage in a small
   message, or truncation of any message, is reported before a client has
   been promised a size. */
static int mailfort_crypt_verify_ends(struct istream *input, const char **error_r)
{
	const unsigned char *data;
	size_t len;

	if (i_stream_mf_decrypt_check_final(input, error_r) < 0)
		return -1;
	i_stream_seek(input, 0);
	if (i_stream_read_more(input, &data, &len) < 0 && input->stream_errno != 0) {
		*error_r = t_strdup(i_stream_get_error(input));
		return -1;
	}
	i_stream_seek(input, 0);
	return 0;
}

static unsigned int mf_crypt_tag_hash(const unsigned char *tag)
{
	return tag[0] | (unsigned int)tag[1] << 8 | (unsigned int)tag[2] << 16 |
	       (unsigned int)tag[3] << 24;
}

static int mf_crypt_tag_cmp(const unsigned char *a, const unsigned char *b)
{
	return memcmp(a, b, 16);
}

static void mailfort_crypt_readers_clear(struct mailfort_crypt_user *muser)
{
	struct hash_iterate_context *iter;
	const unsigned char *tag;
	struct mf_crypt_reader_entry *entry;

	if (!hash_table_is_created(muser->readers))
		return;
	iter = hash_table_iterate_init(muser->readers);
	while (hash_table_iterate(iter, muser->readers, &tag, &entry)) {
		mf_mailcrypt_reader_clear(&entry->reader);
		sodium_memzero(entry, sizeof(*entry));
		i_free(entry);
	}
	hash_table_iterate_deinit(&iter);
	hash_table_clear(muser->readers, FALSE);
}

static const unsigned char *mailfort_crypt_header_tag(const unsigned char *header, size_t len)
{
	return header + len - MF_MAILCRYPT_HEADER_TAG_SIZE;
}

static const struct mf_crypt_reader_entry *
mailfort_crypt_readers_find(struct mailfort_crypt_user *muser, const unsigned char *header,
                            size_t header_len)
{
	struct mf_crypt_reader_entry *entry;

	if (!hash_table_is_created(muser->readers))
		return NULL;
	entry = hash_table_lookup(muser->readers, mailfort_crypt_header_tag(header, header_len));
	/* the header is not secret: plain memcmp */
	if (entry == NULL || entry->header_len != header_len ||
	    memcmp(entry->header, header, header_len) != 0)
		return NULL;
	return entry;
}

static void mailfort_crypt_readers_add(struct mailfort_crypt_user *muser,
                                       const unsigned char *header, size_t header_len,
                                       const struct mf_mailcrypt_reader *reader)
{
	struct mf_crypt_reader_entry *entry;
	const unsigned char *tag;

	if (!hash_table_is_created(muser->readers)) {
		hash_table_create(&muser->readers, default_pool, 0, mf_crypt_tag_hash,
		                  mf_crypt_tag_cmp);
	}
	entry = hash_table_lookup(muser->readers, mailfort_crypt_header_tag(header, header_len));
	if (entry != NULL) {
		/* same tag, other header (a crafted file): replace it */
		hash_table_remove(muser->readers, mailfort_crypt_header_tag(header, header_len));
		mf_mailcrypt_reader_clear(&entry->reader);
		sodium_memzero(entry, sizeof(*entry));
		i_free(entry);
	}
	if (hash_table_count(muser->readers) >= MF_CRYPT_READER_CACHE_MAX)
		mailfort_crypt_readers_clear(muser);
	entry = i_new(struct mf_crypt_reader_entry, 1);
	memcpy(entry->header, header, header_len);
	entry->header_len = header_len;
	tag = mailfort_crypt_header_tag(entry->header, header_len);
	hash_table_insert(muser->readers, tag, entry);
	/* keys and sizes only: the entry never opens a chunk itself */
	mf_mailcrypt_reader_copy(&entry->reader, reader);
}

/* A header opened before in this session: the kept reader with the sizes
   of this file (checked as mf_mailcrypt_reader_init checks them). */
static int mailfort_crypt_reader_reuse(const struct mf_crypt_reader_entry *entry, uoff_t ct_size,
                                       struct mf_mailcrypt_reader *reader_r, const char **error_r)
{
	struct mf_error err;

	if (mf_mailcrypt_reader_copy_sized(reader_r, &entry->reader, ct_size, &err) < 0) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	return 0;
}

/* Strict mode: the header's server authenticator must verify under
   mail-mac.key (a ciphertext made with only the account's public key has
   none, or a wrong one). */
static int mailfort_crypt_check_mac(struct mailfort_crypt_user *muser, const unsigned char *header,
                                    size_t header_len, const char **error_r)
{
	struct mf_error err;

	if (!muser->have_mac_key) {
		*error_r = "[crypt] require_encrypted is on and mail-mac.key cannot be read";
		return -1;
	}
	if (mf_mailcrypt_check_mac(header, header_len, muser->mac_key, &err) < 0) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	return 0;
}

/* Returns -1 with *corrupt_r set when the stored data is at fault, unset
   when the key is (not available, database down, ...); *refused_r when
   strict mode refuses it (no valid server authenticator). */
static int mailfort_crypt_open_reader(struct mail *mail, struct istream *input,
                                      struct mf_mailcrypt_reader *reader_r, bool *corrupt_r,
                                      bool *refused_r, const char **error_r)
{
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(mail->box->storage->user);
	const struct mf_crypt_reader_entry *entry;
	const unsigned char *header, *pk, *sk;
	struct mf_mailcrypt_info info;
	struct mf_error err;
	uoff_t ct_size;
	size_t size, pk_len;
	int ret;

	*corrupt_r = TRUE;
	*refused_r = FALSE;
	ret = i_stream_read_bytes(input, &header, &size, MF_MAILCRYPT_PREFIX_SIZE);
	if (ret <= 0 && input->stream_errno != 0) {
		*corrupt_r = FALSE;
		*error_r = t_strdup_printf("read(%s) failed: %s", i_stream_get_name(input),
		                           i_stream_get_error(input));
		return -1;
	}
	if (ret <= 0 || mf_mailcrypt_peek(header, size, &info, &err) < 0) {
		*error_r =
		    ret <= 0 ? "encrypted message is truncated in its header" : t_strdup(err.msg);
		return -1;
	}
	ret = i_stream_read_bytes(input, &header, &size, info.header_size);
	if (ret <= 0) {
		*corrupt_r = input->stream_errno == 0;
		*error_r = input->stream_errno != 0
		               ? i_stream_get_error(input)
		               : "encrypted message is truncated in its header";
		return -1;
	}
	if (i_stream_get_size(input, TRUE, &ct_size) <= 0) {
		*error_r = t_strdup_printf("cannot get the size of %s: %s",
		                           i_stream_get_name(input), i_stream_get_error(input));
		*corrupt_r = FALSE;
		return -1;
	}
	if (muser->require_encrypted &&
	    mailfort_crypt_check_mac(muser, header, info.header_size, error_r) < 0) {
		*refused_r = TRUE;
		return -1;
	}
	/* key id: header bytes 32..39 (mf-mailcrypt.h layout) */
	if (mf_crypt_keys_get_pair(muser->keys, header + 32, &pk, &pk_len, &sk, error_r) < 0) {
		*corrupt_r = FALSE;
		return -1;
	}
	if ((entry = mailfort_crypt_readers_find(muser, header, info.header_size)) != NULL)
		return mailfort_crypt_reader_reuse(entry, ct_size, reader_r, error_r);
	if (mf_mailcrypt_reader_open(reader_r, header, size, ct_size, pk, pk_len, sk, &err) < 0) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	mailfort_crypt_readers_add(muser, header, info.header_size, reader_r);
	return 0;
}

/* Strict mode: a stored message that mailfort_crypt did not store
   (plaintext planted in the store, or a ciphertext without a valid server
   authenticator) is never served.  The client gets NO [PARSE] naming the
   cause, the log an error, the audit trail a "crypt" event with result
   "refused", on which mailfort-auditd raises the planted_mail alert. */
static int mailfort_crypt_refuse(struct mail *mail, const char *reason)
{
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(mail->box->storage->user);
	struct mail_user *user = mail->box->storage->user;
	struct mf_submit *sub;
	struct mf_event *ev;
	struct mf_error err;
	int ret;

	e_error(mail->box->event,
	        "mailfort_crypt: refused to serve UID %u: %s ([crypt] require_encrypted)",
	        mail->uid, reason);
	ev = mf_event_new("crypt", mf_config_str(muser->cfg, "spool", "node"));
	mf_event_add_str(ev, "user", user->username);
	mf_event_add_str(ev, "service", user->service);
	mf_event_add_str(ev, "session", user->session_id);
	if (user->conn.remote_ip != NULL)
		mf_event_add_str(ev, "ip", net_ip2addr(user->conn.remote_ip));
	mf_event_add_str(ev, "mailbox", mailbox_get_vname(mail->box));
	mf_event_add_int(ev, "uid", mail->uid);
	mf_event_add_str(ev, "result", "refused");
	mf_event_add_str(ev, "reason", reason);
	sub = mf_submit_open_config(muser->cfg, &err);
	ret = sub == NULL ? -1 : 0;
	if (sub != NULL) {
		ret = mf_event_append(ev, sub, &err);
		mf_submit_close(&sub);
	}
	if (ret < 0)
		e_error(mail->box->event, "mailfort_crypt: cannot record the refusal: %s", err.msg);
	mf_event_free(&ev);
	mail_storage_set_error(
	    mail->box->storage, MAIL_ERROR_INVALIDDATA,
	    t_strdup_printf("Message refused: not stored by mailfort_crypt (%s)", reason));
	return -1;
}

/* Log the failure (naming user, mailbox and UID) and set the error the
   client sees.  Damaged data is MAIL_ERROR_INVALIDDATA, which IMAP answers
   with NO [PARSE] for the message and keeps the session; a missing key is
   an internal (temporary) error. */
static int mailfort_crypt_read_failed(struct mail *mail, bool corrupt, const char *error)
{
	mail_set_critical(mail, "mailfort_crypt: cannot decrypt message: %s", error);
	if (corrupt) {
		mail_storage_set_error(mail->box->storage, MAIL_ERROR_INVALIDDATA,
		                       "Stored message is damaged and cannot be decrypted");
	}
	return -1;
}

/* The NUL state of a message from the index (MF_CRYPT_NULS_*). */
static uint8_t mailfort_crypt_get_nuls(struct mail *mail)
{
	struct mailfort_crypt_mailbox *mbox = MAILFORT_CRYPT_BOX_CONTEXT(mail->box);
	const void *data;
	bool expunged;

	if (mail->seq == 0 || !mbox->ext_registered)
		return MF_CRYPT_NULS_UNKNOWN;
	mail_index_lookup_ext(mail->transaction->view, mail->seq, mbox->ext_id, &data, &expunged);
	return data == NULL ? MF_CRYPT_NULS_UNKNOWN : *(const uint8_t *)data;
}

static void mailfort_crypt_set_nuls(struct mail *mail, uint8_t state)
{
	struct mailfort_crypt_mailbox *mbox = MAILFORT_CRYPT_BOX_CONTEXT(mail->box);

	if (mail->seq != 0 && mbox->ext_registered)
		mail_index_update_ext(mail->transaction->itrans, mail->seq, mbox->ext_id, &state,
		                      NULL);
}

/* Tell IMAP that a message has no NULs when the index says so, or, for a
   message of one chunk (most mail), when the plaintext that verify_ends
   opened has none.  Otherwise IMAP copies every byte through a
   NUL-replacing stream (imap-msgpart). */
static void mailfort_crypt_learn_nuls(struct mail *mail, struct istream *plain)
{
	int nul;

	if (mail->has_nuls || mail->has_no_nuls)
		return;
	switch (mailfort_crypt_get_nuls(mail)) {
	case MF_CRYPT_NULS_NONE:
		mail->has_no_nuls = TRUE;
		return;
	case MF_CRYPT_NULS_SOME:
		mail->has_nuls = TRUE;
		return;
	default:
		break;
	}
	if ((nul = i_stream_mf_decrypt_find_nul(plain)) >= 0) {
		mail->has_nuls = nul > 0;
		mail->has_no_nuls = nul == 0;
	}
}

/* A delivery reads back what it has just saved: Dovecot's delivery code
   for the log line (Message-ID, Subject, From), and lmtp to copy the first
   recipient's message to the others (mail_storage_copy), which in password
   mode it could not decrypt (no login password in lmtp), and in server
   mode would decrypt for nothing.  The plaintext it saved is still at
   hand: the stream given to save_begin, kept with the header the message
   was sealed with.  A stored header identical to that one (it holds the
   message's sealed random key: no other message has it) is read from the
   kept plaintext instead.  NULL when this is not that message. */
static int mailfort_crypt_no_temp_file(const char **path_r, void *context ATTR_UNUSED)
{
	*path_r = "(mailfort_crypt: no temp file for plaintext)";
	return -1;
}

static struct istream *mailfort_crypt_saved_plain(struct mail *mail, struct istream *input)
{
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(mail->box->storage->user);
	struct mail_storage *storage = mail->box->storage;
	struct istream *limit, *plain, *conv[2] = {NULL, NULL};
	const unsigned char *data;
	unsigned int i;
	size_t size;

	if (muser == NULL || muser->saved_input == NULL || muser->saved_input->closed ||
	    muser->saved_input->stream_errno != 0)
		return NULL;
	for (i = 0; i < muser->saved_count; i++) {
		if (i_stream_read_bytes(input, &data, &size, muser->saved_header_lens[i]) > 0 &&
		    memcmp(data, muser->saved_headers[i], muser->saved_header_lens[i]) == 0)
			break;
	}
	if (i == muser->saved_count)
		return NULL;
	/* the line endings the storage gave it when saving (maildir as
	   mail_save_crlf says, dbox always LF), made seekable in memory:
	   never in a file, where it would be plaintext on disk */
	i_stream_seek(muser->saved_input, 0);
	limit = i_stream_create_limit(muser->saved_input, UOFF_T_MAX);
	if (strcmp(storage->name, "maildir") == 0 && storage->set->mail_save_crlf)
		conv[0] = i_stream_create_crlf(limit);
	else
		conv[0] = i_stream_create_lf(limit);
	i_stream_unref(&limit);
	plain = i_stream_create_seekable(conv, SIZE_MAX, mailfort_crypt_no_temp_file, NULL);
	i_stream_unref(&conv[0]);
	i_stream_set_name(plain,
	                  t_strdup_printf("(mailfort_crypt saved %s)", i_stream_get_name(input)));
	return plain;
}

/* The kept stream is not referenced: it belongs to the message being
   delivered (lmtp's or dovecot-lda's raw mail), and Dovecot requires that
   nothing holds a mail's stream when the mail is closed.  It is forgotten
   when it is destroyed. */
static void mailfort_crypt_saved_destroyed(struct mailfort_crypt_user *muser)
{
	muser->saved_count = 0;
	muser->saved_input = NULL;
}

static void mailfort_crypt_saved_forget(struct mailfort_crypt_user *muser)
{
	muser->saved_count = 0;
	muser->saved_next = 0;
	if (muser->saved_input != NULL) {
		i_stream_remove_destroy_callback(muser->saved_input,
		                                 mailfort_crypt_saved_destroyed);
		muser->saved_input = NULL;
	}
}

static int mailfort_crypt_istream_opened(struct mail *_mail, struct istream **stream)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILFORT_CRYPT_MAIL_CONTEXT(mail);
	struct mf_mailcrypt_reader reader;
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(_mail->box->storage->user);
	struct istream *input = *stream, *plain;
	const unsigned char *data;
	const char *error;
	bool corrupt, refused;
	size_t size;

	if (i_stream_read_bytes(input, &data, &size, MF_MAILCRYPT_MAGIC_SIZE) <= 0 ||
	    !mf_mailcrypt_is_ciphertext(data, size)) {
		/* stored before encryption was enabled (or empty) */
		if (input->stream_errno == 0) {
			if (muser != NULL && muser->require_encrypted)
				return mailfort_crypt_refuse(_mail, "plaintext in the mail store");
			i_stream_seek(input, 0);
			return mmail->super.istream_opened(_mail, stream);
		}
		mail_set_critical(_mail, "mailfort_crypt: read(%s) failed: %s",
		                  i_stream_get_name(input), i_stream_get_error(input));
		return -1;
	}
	if ((plain = mailfort_crypt_saved_plain(_mail, input)) != NULL) {
		i_stream_unref(stream);
		*stream = plain;
		return mmail->super.istream_opened(_mail, stream);
	}
	i_stream_seek(input, 0);
	if (mailfort_crypt_open_reader(_mail, input, &reader, &corrupt, &refused, &error) < 0) {
		if (refused)
			return mailfort_crypt_refuse(_mail, error);
		return mailfort_crypt_read_failed(_mail, corrupt, error);
	}
	plain = i_stream_create_mf_decrypt(input, &reader);
	mf_mailcrypt_reader_clear(&reader);
	i_stream_set_name(plain, t_strdup_printf("(mailfort_crypt %s)", i_stream_get_name(input)));
	if (mailfort_crypt_verify_ends(plain, &error) < 0) {
		corrupt = plain->stream_errno == EINVAL;
		i_stream_unref(&plain);
		return mailfort_crypt_read_failed(_mail, corrupt, error);
	}
	mailfort_crypt_learn_nuls(_mail, plain);
	i_stream_unref(stream);
	*stream = plain;
	return mmail->super.istream_opened(_mail, stream);
}

/* With the mail cache off, index-mail learns a message's body size only by
   reading (here: decrypting) all of it, unless the virtual size is in the
   index's "vsize" record extension, which Dovecot keeps up to date once it
   exists in a mailbox.  It holds sizes only (like the maildir file names),
   so it is started here, with the first message saved or read whose size
   is known. */
static void mailfort_crypt_start_vsize_ext(struct mail *mail, uoff_t virtual_size)
{
	uint32_t ext_idx, vsize;

	if (mail->seq == 0 || virtual_size == UOFF_T_MAX || virtual_size >= (uint32_t)-1 ||
	    mail_index_map_get_ext_idx(mail->transaction->view->index->map,
	                               mail->box->mail_vsize_ext_id, &ext_idx))
		return;
	vsize = virtual_size + 1;
	mail_index_update_ext(mail->transaction->itrans, mail->seq, mail->box->mail_vsize_ext_id,
	                      &vsize, NULL);
}

static void mailfort_crypt_mail_close(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILFORT_CRYPT_MAIL_CONTEXT(mail);
	struct index_mail *imail = INDEX_MAIL(_mail);

	if (_mail->uid != 0)
		mailfort_crypt_start_vsize_ext(_mail, imail->data.virtual_size);
	mmail->super.close(_mail);
}

static void mailfort_crypt_mail_allocated(struct mail *_mail)
{
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(_mail->box->storage->user);
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *mmail;

	if (muser == NULL)
		return;
	mmail = p_new(mail->pool, union mail_module_context, 1);
	mmail->super = *v;
	mail->vlast = &mmail->super;
	v->istream_opened = mailfort_crypt_istream_opened;
	v->close = mailfort_crypt_mail_close;
	MODULE_CONTEXT_SET_SELF(mail, mailfort_crypt_mail_module, mmail);
}

/* ---- saving ---- */

static int mailfort_crypt_save_begin(struct mail_save_context *ctx, struct istream *input)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailfort_crypt_mailbox *mbox = MAILFORT_CRYPT_BOX_CONTEXT(box);
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(box->storage->user);
	unsigned char pk[MF_ACCOUNT_PK_MAX];
	struct mf_mailcrypt_params params;
	struct ostream *output;
	const char *error;
	size_t pk_len;
	int ret;

	if (mbox->module_ctx.super.save_begin(ctx, input) < 0)
		return -1;

	if ((box->storage->class_flags & MAIL_STORAGE_CLASS_FLAG_BINARY_DATA) == 0) {
		/* e.g. mbox cannot hold binary data: refuse rather than
		   store plaintext */
		e_error(box->event,
		        "mailfort_crypt: storage %s cannot hold encrypted mail "
		        "(use maildir, sdbox or mdbox)",
		        box->storage->name);
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP, MAIL_ERRSTR_CRITICAL_MSG);
		return -1;
	}
	if (muser->require_encrypted && !muser->have_mac_key) {
		/* strict mode would refuse to serve what is saved now */
		e_error(box->event, "mailfort_crypt: not saving: [crypt] require_encrypted is on "
		                    "and mail-mac.key cannot be read");
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP, MAIL_ERRSTR_CRITICAL_MSG);
		return -1;
	}
	ret = mf_crypt_keys_get_public(muser->keys, pk, &pk_len, &error);
	if (ret <= 0) {
		/* no plaintext is ever stored: the save fails, temporarily */
		if (ret < 0)
			e_error(box->event, "mailfort_crypt: cannot get the mail key: %s", error);
		else
			e_warning(box->event, "mailfort_crypt: not saving: %s", error);
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP,
		                       ret < 0 ? MAIL_ERRSTR_CRITICAL_MSG
		                               : "Mailbox encryption key is not available yet");
		return -1;
	}
	i_zero(&params);
	/* a P-256 key (kcmvp profile) is always written as version 3 */
	params.version = pk_len == crypto_box_PUBLICKEYBYTES ? muser->save_version : 0;
	params.pk = pk;
	params.pk_len = pk_len;
	params.mac_key = muser->have_mac_key ? muser->mac_key : NULL;
	output = o_stream_create_mf_encrypt(ctx->data.output, &params);
	o_stream_unref(&ctx->data.output);
	ctx->data.output = output;
	o_stream_cork(ctx->data.output);
	if (muser->keep_saved && input->seekable) {
		/* another message: start again.  A failed save leaves a header
		   that no stored file has, which never matches. */
		if (input != muser->saved_input) {
			mailfort_crypt_saved_forget(muser);
			muser->saved_input = input;
			i_stream_add_destroy_callback(input, mailfort_crypt_saved_destroyed, muser);
		}
		if (o_stream_mf_encrypt_get_header(output, muser->saved_headers[muser->saved_next],
		                                   &muser->saved_header_lens[muser->saved_next]) ==
		    0) {
			muser->saved_next = (muser->saved_next + 1) % MF_CRYPT_SAVED_MAX;
			if (muser->saved_count < MF_CRYPT_SAVED_MAX)
				muser->saved_count++;
		}
	}
	return 0;
}

static int mailfort_crypt_save_finish(struct mail_save_context *ctx)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailfort_crypt_mailbox *mbox = MAILFORT_CRYPT_BOX_CONTEXT(box);
	struct mail *dest_mail = ctx->dest_mail;
	int saw_nul = o_stream_mf_encrypt_saw_nul(ctx->data.output);
	uoff_t vsize;

	if (mbox->module_ctx.super.save_finish(ctx) < 0)
		return -1;
	if (dest_mail != NULL && mail_get_virtual_size(dest_mail, &vsize) == 0)
		mailfort_crypt_start_vsize_ext(dest_mail, vsize);
	if (dest_mail != NULL && saw_nul >= 0) {
		mailfort_crypt_set_nuls(dest_mail,
		                        saw_nul > 0 ? MF_CRYPT_NULS_SOME : MF_CRYPT_NULS_NONE);
	}
	return 0;
}

static int mailfort_crypt_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailfort_crypt_mailbox *mbox = MAILFORT_CRYPT_BOX_CONTEXT(box);
	struct mail *dest_mail = ctx->dest_mail;
	uint8_t nuls;

	/* Another user's mail is sealed to another key: decrypt and
	   re-encrypt.  Within one user a storage-level copy (maildir hard
	   link) keeps the ciphertext as it is, which is right. */
	if (mail->box->storage->user != box->storage->user)
		return mail_storage_copy(ctx, mail);
	/* the copy is the same message, with the same NUL state (a storage
	   that copies by saving has recorded the same value already) */
	nuls = mailfort_crypt_get_nuls(mail);
	if (mbox->module_ctx.super.copy(ctx, mail) < 0)
		return -1;
	if (dest_mail != NULL && nuls != MF_CRYPT_NULS_UNKNOWN)
		mailfort_crypt_set_nuls(dest_mail, nuls);
	return 0;
}

static void mailfort_crypt_mailbox_allocated(struct mailbox *box)
{
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(box->storage->user);
	struct mailbox_vfuncs *v = box->vlast;
	struct mailfort_crypt_mailbox *mbox;

	if (muser == NULL)
		return;
	mbox = p_new(box->pool, struct mailfort_crypt_mailbox, 1);
	mbox->module_ctx.super = *v;
	box->vlast = &mbox->module_ctx.super;
	MODULE_CONTEXT_SET(box, mailfort_crypt_storage_module, mbox);

	/* The cache would hold headers, envelopes and body structures in the
	   clear (same as mail_never_cache_fields = *). */
	box->mail_cache_disabled = TRUE;

	v->save_begin = mailfort_crypt_save_begin;
	v->save_finish = mailfort_crypt_save_finish;
	v->copy = mailfort_crypt_copy;
}

static void mailfort_crypt_mailbox_opened(struct mailbox *box)
{
	struct mailfort_crypt_mailbox *mbox = MODULE_CONTEXT(box, mailfort_crypt_storage_module);

	if (mbox == NULL || box->index == NULL)
		return;
	mbox->ext_id = mail_index_ext_register(box->index, MF_CRYPT_EXT_NAME, 0, sizeof(uint8_t),
	                                       sizeof(uint8_t));
	mbox->ext_registered = TRUE;
}

/* ---- user ---- */

static void mailfort_crypt_user_deinit(struct mail_user *user)
{
	struct mailfort_crypt_user *muser = MAILFORT_CRYPT_USER_CONTEXT(user);

	if (hash_table_is_created(muser->readers)) {
		mailfort_crypt_readers_clear(muser);
		hash_table_destroy(&muser->readers);
	}
	mailfort_crypt_saved_forget(muser);
	sodium_memzero(muser->mac_key, sizeof(muser->mac_key));
	mf_crypt_keys_deinit(&muser->keys);
	muser->module_ctx.super.deinit(user);
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The process's configuration for path, loaded now if it is not loaded
   yet or the file changed since. */
static const struct mf_config *mailfort_crypt_config(struct mailfort_crypt_process *proc,
                                                     const char *path, const char **error_r)
{
	struct mf_config *cfg;
	struct mf_error err;
	struct stat st;

	if (stat(path, &st) < 0) {
		*error_r = t_strdup_printf("stat(%s) failed: %m", path);
		return NULL;
	}
	if (proc->cfg != NULL && strcmp(proc->config_path, path) == 0 &&
	    stat_same(&st, &proc->cfg_st))
		return proc->cfg;
	cfg = mf_config_load(path, &err);
	if (cfg == NULL) {
		*error_r = t_strdup(err.msg);
		return NULL;
	}
	if (proc->cfg != NULL)
		array_push_back(&proc->old_cfgs, &proc->cfg);
	/* the connection (and the keys) may be another database's now */
	if (proc->db != NULL)
		mf_db_close(&proc->db);
	mf_crypt_pk_cache_deinit(&proc->pk_cache);
	proc->pk_cache = mf_crypt_pk_cache_init();
	i_free(proc->config_path);
	proc->config_path = i_strdup(path);
	proc->cfg = cfg;
	proc->cfg_st = st;
	return cfg;
}

/* mail-mac.key in [keys] dir: the server authenticator of new messages,
   and what strict mode checks.  A site that has not made it yet writes
   messages without one (logged once per session); with [crypt]
   require_encrypted on, its absence fails the user (fail closed). */
static void mailfort_crypt_load_mac_key(struct mail_user *user, struct mailfort_crypt_user *muser)
{
	const char *path =
	    t_strconcat(mf_config_str(muser->cfg, "keys", "dir"), "/mail-mac.key", NULL);
	struct mf_error err;

	muser->require_encrypted = mf_config_bool(muser->cfg, "crypt", "require_encrypted");
	if (mf_key_load(path, MF_KEY_SECRET, muser->mac_key, sizeof(muser->mac_key), &err) == 0) {
		muser->have_mac_key = TRUE;
		return;
	}
	sodium_memzero(muser->mac_key, sizeof(muser->mac_key));
	if (muser->require_encrypted) {
		user->error = p_strdup_printf(
		    user->pool, "mailfort_crypt: [crypt] require_encrypted needs mail-mac.key: %s",
		    err.msg);
	} else if (access(path, F_OK) == 0 || errno != ENOENT) {
		e_warning(user->event, "mailfort_crypt: new mail has no server authenticator: %s",
		          err.msg);
	}
}

static void mailfort_crypt_user_created(struct mail_user *user)
{
	struct mailfort_crypt_process *proc = mailfort_crypt_process;
	struct mail_user_vfuncs *v = user->vlast;
	struct mailfort_crypt_user *muser;
	const char *path, *password, *version, *error;
	struct mf_error err;

	if (user->autocreated && strcmp(user->username, "raw mail user") == 0) {
		/* lmtp's and doveadm's holder of the incoming message: not
		   an account, never stored, nothing to encrypt */
		return;
	}
	muser = p_new(user->pool, struct mailfort_crypt_user, 1);
	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	v->deinit = mailfort_crypt_user_deinit;
	MODULE_CONTEXT_SET(user, mailfort_crypt_user_module, muser);

	path = mail_user_plugin_getenv(user, "mailfort_config");
	if (path == NULL || *path == '\0')
		path = MF_CONFIG_DEFAULT_PATH;
	if (mf_crypto_init(&err) < 0)
		error = t_strdup(err.msg);
	else
		muser->cfg = mailfort_crypt_config(proc, path, &error);
	if (muser->cfg == NULL) {
		/* fail closed: the user can neither log in nor receive mail */
		user->error = p_strdup_printf(user->pool, "mailfort_crypt: %s", error);
		if (proc->defaults == NULL)
			proc->defaults = mf_config_defaults();
		muser->cfg = proc->defaults;
	}
	muser->save_version = MF_MAILCRYPT_VERSION;
	muser->keep_saved = user->service != NULL && (strcmp(user->service, "lmtp") == 0 ||
	                                              strcmp(user->service, "lda") == 0);
	version = mail_user_plugin_getenv(user, "mailfort_crypt_save_version");
	if (version != NULL && *version != '\0' && user->error == NULL) {
		if (strcmp(version, "1") == 0)
			muser->save_version = MF_MAILCRYPT_VERSION_1;
		else if (strcmp(version, "2") == 0)
			muser->save_version = MF_MAILCRYPT_VERSION_2;
		else {
			/* fail closed: a typo must not go unnoticed */
			user->error = p_strdup_printf(
			    user->pool,
			    "mailfort_crypt: invalid mailfort_crypt_save_version '%s' (1 or 2)",
			    version);
		}
	}
	if (user->error == NULL)
		mailfort_crypt_load_mac_key(user, muser);
	password = mail_user_plugin_getenv(user, "mailfort_crypt_password");
	muser->keys =
	    mf_crypt_keys_init(muser->cfg, &proc->db, proc->pk_cache, user->username, password);
}

static struct mail_storage_hooks mailfort_crypt_hooks = {
    .mail_user_created = mailfort_crypt_user_created,
    .mailbox_allocated = mailfort_crypt_mailbox_allocated,
    .mailbox_opened = mailfort_crypt_mailbox_opened,
    .mail_allocated = mailfort_crypt_mail_allocated,
};

void mailfort_crypt_plugin_init(struct module *module)
{
	mailfort_crypt_process = i_new(struct mailfort_crypt_process, 1);
	i_array_init(&mailfort_crypt_process->old_cfgs, 2);
	mailfort_crypt_process->pk_cache = mf_crypt_pk_cache_init();
	mail_storage_hooks_add(module, &mailfort_crypt_hooks);
}

void mailfort_crypt_plugin_deinit(void)
{
	struct mailfort_crypt_process *proc = mailfort_crypt_process;
	struct mf_config **cfgp;

	mail_storage_hooks_remove(&mailfort_crypt_hooks);
	if (proc->db != NULL)
		mf_db_close(&proc->db);
	mf_crypt_pk_cache_deinit(&proc->pk_cache);
	array_foreach_modifiable(&proc->old_cfgs, cfgp) mf_config_free(cfgp);
	array_free(&proc->old_cfgs);
	mf_config_free(&proc->cfg);
	mf_config_free(&proc->defaults);
	i_free(proc->config_path);
	i_free(proc);
	mailfort_crypt_process = NULL;
}
