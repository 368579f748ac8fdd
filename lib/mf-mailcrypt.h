/*
 * mf-mailcrypt.h - the stored-mail ciphertext format (encrypt on delivery,
 * random-access decrypt on read).
 *
 * Every stored message is encrypted under its own random 256-bit content
 * key K.  K is sealed to the account's X25519 public key (crypto_box_seal),
 * so delivery needs only the public key; reading needs the key pair.  The
 * body is cut into fixed-size plaintext chunks (64 KiB); each chunk is
 * sealed on its own with an AEAD, so any chunk can be decrypted without
 * touching the others (partial IMAP FETCH), while truncation, reordering,
 * chunk swapping between messages and any flipped byte are detected.
 *
 * Two versions, same layout, different chunk cipher: version 2 (written by
 * default) uses AES-256-GCM from OpenSSL's libcrypto, which runs at several
 * GB/s on CPUs with AES and carry-less multiply instructions; version 1
 * uses libsodium's XChaCha20-Poly1305-IETF.  Readers accept both, so a
 * mailbox may hold version 1, version 2 and plaintext messages side by side.
 *
 * File layout (all integers little-endian):
 *
 *   offset size  field
 *        0    8  magic 89 4d 46 43 0d 0a 1a 0a  ("\x89MFC\r\n\x1a\n")
 *        8    1  version = 1 or 2
 *        9    1  flags = 0 (reserved; readers reject non-zero)
 *       10    2  header length in bytes = 136 (MF_MAILCRYPT_HEADER_SIZE)
 *       12    4  chunk size C in plaintext bytes = 65536
 *       16   16  nonce prefix (version 1) / salt (version 2), random per
 *                message
 *       32    8  key id = BLAKE2b-64 of the account public key
 *       40   80  crypto_box_seal(K, account public key)
 *      120   16  header tag = BLAKE2b-128 keyed with K_hdr over bytes 0..119
 *      136  ...  chunks 0 .. n-1, each (plaintext || 16-byte tag)
 *
 *   ctx = "mfmail01" (version 1) or "mfmail02" (version 2)
 *   K_hdr   = crypto_kdf_derive_from_key(1, ctx, K)
 *   K_chunk = crypto_kdf_derive_from_key(2, ctx, K)
 *   ad      = header tag (16) || LE64(i) || u8 final (1 or 0)
 *
 *   version 1: chunk i = XChaCha20-Poly1305-IETF(K_chunk, nonce, ad, pt i)
 *     nonce (24 bytes) = nonce prefix (16) || LE64(i), with bit 7 of the
 *     last nonce byte set on the final chunk
 *   version 2: chunk i = AES-256-GCM(K_chunk, nonce, ad, pt i), 16-byte tag
 *     nonce (12 bytes) = LE64(i) || 00 00 00 f, f = 0x80 on the final
 *     chunk, 0 otherwise; i < 2^32
 *
 *   Why a counter nonce is safe in version 2: GCM must never see the same
 *   (key, nonce) pair twice.  K is 256 random bits drawn for this one
 *   message and never used for another, so K_chunk encrypts exactly one
 *   message, and within it (i, final) is different for every chunk.  No
 *   nonce is ever repeated under a key, with no birthday bound to respect
 *   (that bound is what limits GCM with random 96-bit nonces to 2^32
 *   messages per key).  GCM's other limits: one nonce may cover at most
 *   2^36 - 32 bytes (a chunk is 64 KiB); a message has at most 2^32
 *   chunks (writers refuse a larger message, readers reject such a size); and
 *   the distinguishing bound grows with the square of the blocks under one
 *   key (about blocks^2 / 2^129), which for one message of 100 MB (2^23
 *   blocks) is below 2^-82.  The 16 random bytes at offset 16 are not
 *   part of the version 2 nonce (K already makes every message different);
 *   they keep the layout of version 1 and are covered by the header tag.
 *   The version byte is covered by the header tag too, and the KDF context
 *   differs per version, so a header cannot be turned into the other
 *   version's.
 *
 *   Every chunk but the last holds exactly C plaintext bytes; the last holds
 *   1..C bytes, or 0 bytes when the whole message is empty.  There is always
 *   at least one chunk, and exactly one marked final.  Both versions have
 *   the same sizes: a 136-byte header and 16 bytes per chunk.
 *
 * The plaintext size is not stored: the layout above makes it an exact
 * function of the ciphertext size (mf_mailcrypt_plaintext_size), which is
 * what Dovecot needs for RFC822.SIZE.  The value is authenticated when the
 * final chunk is opened (a file cut at a chunk boundary, or extended, fails
 * there with "truncated" / "trailing data"), so a caller that must trust the
 * size before reading the body opens the last chunk (at most 64 KiB).
 *
 * Version 3 (the kcmvp profile) and the server authenticator (header flag
 * 0x01, any version) extend this layout: the header tag stays the last 16
 * bytes of the header, the authenticator (HMAC-SHA256 under the site's
 * mail-mac.key over every byte before it) sits just before the tag, and
 * version 3 seals K with ECDH P-256 + KBKDF + ARIA-256-GCM (65-byte
 * ephemeral key and 48 sealed bytes at offset 40) and encrypts chunks with
 * ARIA-256-GCM under the version 2 nonce rule.  Byte layouts:
 * docs/SECURITY.md, 1.5a.  Header sizes: 136 / 168 (versions 1 and 2
 * without / with authenticator), 169 / 201 (version 3).
 *
 * Typical use.  Delivery: writer_init(pk) -> write the header; for each
 * piece of the message writer_update -> write what it returns; writer_final
 * -> write the last chunk.  Reading: read MF_MAILCRYPT_PREFIX_SIZE bytes,
 * mf_mailcrypt_peek, read info.header_size bytes, pick the key pair whose
 * id is at MF_MAILCRYPT_KEY_ID_OFFSET, reader_init(header, file size, pk,
 * sk); then for a plaintext offset: chunk_for_offset -> read ct_len bytes
 * at ct_offset -> open_chunk (into a separate buffer: in-place decryption
 * works but gives less precise errors).  mf_mailcrypt_is_ciphertext tells
 * encrypted messages from plaintext ones stored before encryption was on.
 *
 * Version 2 checks each chunk's tag before open_chunk returns: libcrypto
 * decrypts into the caller's buffer while it computes the tag, and on a
 * mismatch that buffer is wiped and -1 returned, so no caller ever sees an
 * unauthenticated byte (the same contract as version 1).  When libcrypto
 * has no AES-256-GCM (a restricted provider configuration), version 2 fails
 * closed: writer_init and open_chunk return "AES-256-GCM is not available
 * from OpenSSL: ..."; nothing falls back to another cipher or to plaintext.
 *
 * Thread safety: one struct per thread.  The writer and a version 2 reader
 * own an OpenSSL cipher context (made by writer_init, and by a reader's
 * first open_chunk), reused for every chunk of the message: always call
 * *_clear when done (also on error paths), clear before init-ing the same
 * struct again, and copy a reader only with mf_mailcrypt_reader_copy.
 * Nothing else here allocates memory.  Key material is wiped by *_clear.
 *
 * Errors (struct mf_error) name what is wrong: "not a mailfort ciphertext
 * (bad magic)", "unsupported ciphertext version 7", "ciphertext truncated
 * (...)", "chunk 3 failed authentication", "ciphertext truncated: chunk 2 is
 * not the final chunk", "trailing data after final chunk 2", "message is
 * sealed to account key 0123..., not to key 4567...", "cannot open content
 * key (wrong account secret key or corrupted header)", "AES-256-GCM is not
 * available from OpenSSL: ...", and so on.
 */
#ifndef MF_MAILCRYPT_H
#define MF_MAILCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>
#include "mf-common.h"

#define MF_MAILCRYPT_MAGIC      "\x89MFC\r\n\x1a\n"
#define MF_MAILCRYPT_MAGIC_SIZE 8
/* Versions: 1 = XChaCha20-Poly1305 (read only by default), 2 = AES-256-GCM,
   3 = ARIA-256-GCM with a P-256 sealed key (the kcmvp profile). */
#define MF_MAILCRYPT_VERSION_1 1
#define MF_MAILCRYPT_VERSION_2 2
#define MF_MAILCRYPT_VERSION_3 3
/* Header flag: a server authenticator (HMAC-SHA256 under the site's
   mail-mac.key) sits before the header tag. */
#define MF_MAILCRYPT_FLAG_MAC     0x01u
#define MF_MAILCRYPT_MAC_SIZE     32
#define MF_MAILCRYPT_MAC_KEY_SIZE 32
/* Header sizes: versions 1 and 2 without / with authenticator, version 3
   without / with. */
#define MF_MAILCRYPT_HEADER_V3_SIZE 169
#define MF_MAILCRYPT_HEADER_MAX     (MF_MAILCRYPT_HEADER_V3_SIZE + MF_MAILCRYPT_MAC_SIZE)
/* The header tag is always the last 16 bytes of the header. */
#define MF_MAILCRYPT_HEADER_TAG_SIZE 16
/* Version the writers produce unless told otherwise. */
#define MF_MAILCRYPT_VERSION MF_MAILCRYPT_VERSION_2
/* Bytes a reader must see to learn version, header length and chunk size. */
#define MF_MAILCRYPT_PREFIX_SIZE 16
/* Header size of versions 1 and 2 without an authenticator. */
#define MF_MAILCRYPT_HEADER_SIZE 136
#define MF_MAILCRYPT_KEY_ID_SIZE 8
/* Chunk size written by this version. */
#define MF_MAILCRYPT_CHUNK_SIZE 65536u
/* Range of chunk sizes accepted by readers (and by writer_init_chunk). */
#define MF_MAILCRYPT_CHUNK_MIN 1024u
#define MF_MAILCRYPT_CHUNK_MAX 65536u
/* Per-chunk expansion: the AEAD tag (16 bytes in both versions). */
#define MF_MAILCRYPT_CHUNK_OVERHEAD 16u
/* Largest ciphertext chunk: size a per-chunk read buffer with this. */
#define MF_MAILCRYPT_CHUNK_CT_MAX (MF_MAILCRYPT_CHUNK_MAX + MF_MAILCRYPT_CHUNK_OVERHEAD)
/* Upper bound of the output of mf_mailcrypt_writer_update for len input bytes. */
#define MF_MAILCRYPT_UPDATE_OUT_MAX(len)          \
	((size_t)(len) + MF_MAILCRYPT_CHUNK_MAX + \
	 ((size_t)(len) / MF_MAILCRYPT_CHUNK_MIN + 1) * MF_MAILCRYPT_CHUNK_OVERHEAD)
/* Output of mf_mailcrypt_writer_final is at most this. */
#define MF_MAILCRYPT_FINAL_OUT_MAX MF_MAILCRYPT_CHUNK_CT_MAX

/* ---- quick checks and sizes (no keys needed) ---- */

/* True when data (len bytes, the start of a stored message) begins with the
   mailfort magic.  Plaintext mail does not: 0x89 is a UTF-8 continuation
   byte, so no RFC 5322 / RFC 6532 message can start with it.  Fewer than MF_MAILCRYPT_MAGIC_SIZE
   bytes: false. */
bool mf_mailcrypt_is_ciphertext(const void *data, size_t len);

/* What the first MF_MAILCRYPT_PREFIX_SIZE bytes say. */
struct mf_mailcrypt_info {
	unsigned int version;
	size_t header_size;  /* bytes before chunk 0 */
	uint32_t chunk_size; /* plaintext bytes per chunk */
	unsigned int flags;  /* MF_MAILCRYPT_FLAG_* */
};
/* Parse and check magic, version, flags, header length and chunk size.
   len must be >= MF_MAILCRYPT_PREFIX_SIZE. */
int mf_mailcrypt_peek(const void *data, size_t len, struct mf_mailcrypt_info *info_r,
                      struct mf_error *err) MF_WARN_UNUSED;

/* Exact plaintext size for a ciphertext of ct_size bytes (header included),
   for the layout in info (NULL: the defaults of MF_MAILCRYPT_VERSION).  -1 when no valid
   ciphertext has that size ("ciphertext truncated ..."). */
int mf_mailcrypt_plaintext_size(const struct mf_mailcrypt_info *info, uint64_t ct_size,
                                uint64_t *pt_size_r, struct mf_error *err) MF_WARN_UNUSED;
/* Exact ciphertext size (header included) that the writer produces for
   pt_size plaintext bytes with 64 KiB chunks (the same for both versions). */
uint64_t mf_mailcrypt_ciphertext_size(uint64_t pt_size);

/* ---- writer (delivery: needs only the account public key) ---- */

/* OpenSSL's EVP_CIPHER_CTX, without making every user include OpenSSL. */
struct evp_cipher_ctx_st;

struct mf_mailcrypt_writer {
	/* private: use the functions below */
	unsigned char chunk_key[32];
	unsigned char header_tag[16];
	unsigned char nonce_prefix[16];
	struct evp_cipher_ctx_st *gcm; /* version 2: AES-256-GCM under chunk_key */
	uint64_t index;                /* next chunk number */
	unsigned int version;
	uint32_t chunk_size;
	size_t buffered; /* plaintext bytes held in buf, 0..chunk_size */
	bool active;
	unsigned char buf[MF_MAILCRYPT_CHUNK_MAX];
};

/* Start a message sealed to account public key pk, in format
   MF_MAILCRYPT_VERSION: writes the MF_MAILCRYPT_HEADER_SIZE header bytes to
   header_out.  The struct is large (64 KiB buffer): allocate it once per
   message or reuse it (after final or clear).  Fails on a bad public key,
   and for version 2 when libcrypto offers no AES-256-GCM. */
int mf_mailcrypt_writer_init(struct mf_mailcrypt_writer *w,
                             const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                             unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                             struct mf_error *err) MF_WARN_UNUSED;
/* Same with a chunk size in [MF_MAILCRYPT_CHUNK_MIN, MF_MAILCRYPT_CHUNK_MAX]
   (tests, tools; mail delivery uses mf_mailcrypt_writer_init). */
int mf_mailcrypt_writer_init_chunk(struct mf_mailcrypt_writer *w,
                                   const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                   uint32_t chunk_size,
                                   unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                                   struct mf_error *err) MF_WARN_UNUSED;
/* Same with a format version (MF_MAILCRYPT_VERSION_1 or _2): writing
   version 1 is for sites whose other readers predate version 2. */
int mf_mailcrypt_writer_init_version(struct mf_mailcrypt_writer *w,
                                     const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                     unsigned int version, uint32_t chunk_size,
                                     unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                                     struct mf_error *err) MF_WARN_UNUSED;
/* What a new message is written with (mf_mailcrypt_writer_start). */
struct mf_mailcrypt_params {
	/* 0: version 3 for a P-256 key, MF_MAILCRYPT_VERSION for X25519 */
	unsigned int version;
	uint32_t chunk_size;     /* 0: MF_MAILCRYPT_CHUNK_SIZE */
	const unsigned char *pk; /* account public key: 32 bytes X25519 (versions */
	size_t pk_len;           /* 1, 2) or 65 bytes P-256 (version 3) */
	/* MF_MAILCRYPT_MAC_KEY_SIZE bytes: write a server authenticator; NULL:
	   none */
	const unsigned char *mac_key;
};
/* Start a message as params say: writes the header (*header_len_r bytes,
   at most MF_MAILCRYPT_HEADER_MAX) to header_out. */
int mf_mailcrypt_writer_start(struct mf_mailcrypt_writer *w,
                              const struct mf_mailcrypt_params *params,
                              unsigned char header_out[MF_MAILCRYPT_HEADER_MAX],
                              size_t *header_len_r, struct mf_error *err) MF_WARN_UNUSED;
/* Feed len plaintext bytes (any split).  Complete chunks are written to out
   (out_size >= MF_MAILCRYPT_UPDATE_OUT_MAX(len) always suffices; the exact
   need is whole chunks only); *out_len_r = bytes written (may be 0: one
   chunk is always held back until more data or final). */
int mf_mailcrypt_writer_update(struct mf_mailcrypt_writer *w, const void *in, size_t len,
                               unsigned char *out, size_t out_size, size_t *out_len_r,
                               struct mf_error *err) MF_WARN_UNUSED;
/* Write the final chunk (out_size >= MF_MAILCRYPT_FINAL_OUT_MAX) and wipe
   the writer.  After final or any error the writer is cleared. */
int mf_mailcrypt_writer_final(struct mf_mailcrypt_writer *w, unsigned char *out, size_t out_size,
                              size_t *out_len_r, struct mf_error *err) MF_WARN_UNUSED;
/* Wipe keys and buffered plaintext (abort; safe to call twice). */
void mf_mailcrypt_writer_clear(struct mf_mailcrypt_writer *w);

/* ---- reader (needs the account key pair) ---- */

struct mf_mailcrypt_reader {
	/* read-only for callers after init: */
	struct mf_mailcrypt_info info;
	uint64_t ct_size;     /* whole file, header included */
	uint64_t pt_size;     /* plaintext size (see top comment) */
	uint64_t chunk_count; /* >= 1 */
	/* private: */
	unsigned char chunk_key[32];
	unsigned char header_tag[16];
	unsigned char nonce_prefix[16];
	/* version 2: AES-256-GCM under chunk_key, made by the first
	   open_chunk; owned by this struct (see mf_mailcrypt_reader_copy) */
	struct evp_cipher_ctx_st *gcm;
	bool active;
};

/* Parse and authenticate the header and open the content key.
   header: the first header_len bytes of the file (header_len >=
   MF_MAILCRYPT_HEADER_SIZE; extra bytes are ignored).  ct_size: the size of
   the whole stored file, needed to locate the final chunk.  pk/sk: the
   account key pair the message was sealed to.  r is overwritten: clear a
   reader that was used before init-ing it again. */
int mf_mailcrypt_reader_init(struct mf_mailcrypt_reader *r, const void *header, size_t header_len,
                             uint64_t ct_size, const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                             const unsigned char sk[crypto_box_SECRETKEYBYTES],
                             struct mf_error *err) MF_WARN_UNUSED;

/* The same for a key of either kind: pk_len 32 (X25519, versions 1 and 2)
   or 65 (P-256, version 3). */
int mf_mailcrypt_reader_open(struct mf_mailcrypt_reader *r, const void *header, size_t header_len,
                             uint64_t ct_size, const unsigned char *pk, size_t pk_len,
                             const unsigned char sk[32], struct mf_error *err) MF_WARN_UNUSED;

/* Check the server authenticator of a header (header_len >= the header
   size its prefix gives) under mac_key: 0 when present and valid; -1 with
   "message has no server authenticator" or "server authenticator does not
   verify (message not stored by this site)".  Needs no account key. */
int mf_mailcrypt_check_mac(const void *header, size_t header_len,
                           const unsigned char mac_key[MF_MAILCRYPT_MAC_KEY_SIZE],
                           struct mf_error *err) MF_WARN_UNUSED;

/* Name of a version's chunk algorithm ("XChaCha20-Poly1305",
   "AES-256-GCM", "ARIA-256-GCM") and of its content-key sealing
   ("X25519-sealed-box", "ECDH-P256-KBKDF"); "unknown" otherwise. */
const char *mf_mailcrypt_chunk_alg(unsigned int version);
const char *mf_mailcrypt_seal_alg(unsigned int version);
/* Whether a version uses only algorithms of the kcmvp profile's list. */
bool mf_mailcrypt_version_listed(unsigned int version);

/* Where chunk `index` lives. */
struct mf_mailcrypt_chunk {
	uint64_t index;
	uint64_t ct_offset; /* from the start of the file */
	size_t ct_len;      /* bytes to read: pt_len + MF_MAILCRYPT_CHUNK_OVERHEAD */
	uint64_t pt_offset; /* plaintext offset of the chunk's first byte */
	size_t pt_len;
	bool final;
};
/* Locate chunk `index` (< r->chunk_count). */
int mf_mailcrypt_chunk_at(const struct mf_mailcrypt_reader *r, uint64_t index,
                          struct mf_mailcrypt_chunk *chunk_r, struct mf_error *err) MF_WARN_UNUSED;
/* Locate the chunk holding plaintext offset pt_offset (< r->pt_size; for an
   empty message offset 0 gives chunk 0). */
int mf_mailcrypt_chunk_for_offset(const struct mf_mailcrypt_reader *r, uint64_t pt_offset,
                                  struct mf_mailcrypt_chunk *chunk_r,
                                  struct mf_error *err) MF_WARN_UNUSED;

/* Decrypt chunk `index` from its ct_len ciphertext bytes (exactly the
   length mf_mailcrypt_chunk_at gives) into out (out_size >= pt_len; out may
   equal ct for in-place decryption).  Verifies tag, index and final flag;
   on failure out is wiped.  The reader is not const: a version 2 reader
   makes its cipher context on the first call and reuses it after. */
int mf_mailcrypt_open_chunk(struct mf_mailcrypt_reader *r, uint64_t index, const void *ct,
                            size_t ct_len, unsigned char *out, size_t out_size, size_t *out_len_r,
                            struct mf_error *err) MF_WARN_UNUSED;

/* Wipe the content key and free the cipher context (safe to call twice). */
void mf_mailcrypt_reader_clear(struct mf_mailcrypt_reader *r);

/* Make dst an independent reader for the same message (keys and sizes;
   dst gets its own cipher context when it first opens a chunk).  Never copy
   the struct by assignment: both copies would own one cipher context.
   Clear dst when done, as any reader. */
void mf_mailcrypt_reader_copy(struct mf_mailcrypt_reader *dst,
                              const struct mf_mailcrypt_reader *src);

/* Make dst a reader for another stored copy of the same message header
   (same keys) whose ciphertext is ct_size bytes: mf_mailcrypt_reader_copy
   with the sizes checked and computed as mf_mailcrypt_reader_init does
   (same errors).  -1 with err, dst untouched, when ct_size cannot hold
   such a message. */
int mf_mailcrypt_reader_copy_sized(struct mf_mailcrypt_reader *dst,
                                   const struct mf_mailcrypt_reader *src, uint64_t ct_size,
                                   struct mf_error *err) MF_WARN_UNUSED;

/* ---- whole-buffer helpers (tools, tests; not for large mail) ---- */

/* Decrypt a complete in-memory ciphertext into out (out_size >=
   plaintext size, see mf_mailcrypt_plaintext_size). */
int mf_mailcrypt_decrypt_buffer(const void *ct, size_t ct_len,
                                const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                const unsigned char sk[crypto_box_SECRETKEYBYTES],
                                unsigned char *out, size_t out_size, size_t *out_len_r,
                                struct mf_error *err) MF_WARN_UNUSED;

#endif
