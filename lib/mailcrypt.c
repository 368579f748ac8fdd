/*
 * mailcrypt.c - the stored-mail ciphertext format: streaming writer,
 * random-access reader, size arithmetic.  Format and API: mf-mailcrypt.h.
 *
 * Functions return 0 or -1 with a reason naming what is wrong (bad magic,
 * unsupported version, truncated, chunk N failed authentication, final
 * chunk missing, trailing data, wrong account key, AES-256-GCM not
 * available).  Version 1 chunks are XChaCha20-Poly1305 (libsodium),
 * version 2 chunks AES-256-GCM (OpenSSL libcrypto, one EVP_CIPHER_CTX per
 * writer or reader, keyed once and given a new nonce per chunk).  The only
 * memory allocated is that cipher context; key material lives in the
 * caller's writer/reader structs and is wiped by *_clear, by writer_final
 * and on every error (EVP_CIPHER_CTX_free wipes the context's key
 * schedule).
 */
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include "mf-crypto-evp.h"
#include "mf-crypto.h"
#include "mf-mailcrypt.h"

#define OFF_VERSION 8
#define OFF_FLAGS   9
#define OFF_HDRLEN  10
#define OFF_CHUNK   12
#define OFF_PREFIX  16
#define OFF_KEYID   32
#define OFF_SEALED  40
#define SEALED_LEN  (crypto_box_SEALBYTES + CONTENT_KEY_LEN)
#define OFF_TAG     (OFF_SEALED + SEALED_LEN)
#define TAG_LEN     16
#define AD_LEN      (TAG_LEN + 8 + 1)

#define CONTENT_KEY_LEN crypto_kdf_KEYBYTES
#define KDF_CONTEXT_V1  "mfmail01"
#define KDF_CONTEXT_V2  "mfmail02"
#define KDF_ID_HEADER   1
#define KDF_ID_CHUNK    2
/* Version 1: chunk indexes must leave bit 7 of the last nonce byte for the
   final flag.  Version 2: at most 2^32 chunks under one GCM key (see
   mf-mailcrypt.h). */
#define INDEX_LIMIT_V1 ((uint64_t)1 << 55)
#define INDEX_LIMIT_V2 ((uint64_t)1 << 32)
#define GCM_NONCE_LEN  12
#define GCM_TAG_LEN    16
#define GCM_NAME       "AES-256-GCM"
#define KBKDF_HDR_V3   "mfmail03 header"
#define KBKDF_CHUNK_V3 "mfmail03 chunk"
/* version 3: the sealed content key (ephemeral key, K, tag) */
#define SEALED_V3_LEN (MF_P256_SEAL_OVERHEAD + CONTENT_KEY_LEN)

_Static_assert(OFF_TAG + TAG_LEN == MF_MAILCRYPT_HEADER_SIZE, "header layout");
_Static_assert(OFF_SEALED + SEALED_V3_LEN + TAG_LEN == MF_MAILCRYPT_HEADER_V3_SIZE,
               "version 3 header layout");
_Static_assert(TAG_LEN == MF_MAILCRYPT_HEADER_TAG_SIZE, "tag size");
_Static_assert(16 + 8 == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce layout");
_Static_assert(MF_MAILCRYPT_CHUNK_OVERHEAD == crypto_aead_xchacha20poly1305_ietf_ABYTES &&
                   MF_MAILCRYPT_CHUNK_OVERHEAD == GCM_TAG_LEN,
               "both versions add one 16-byte tag per chunk");
_Static_assert(sizeof(((struct mf_mailcrypt_writer *)0)->chunk_key) ==
                   crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "chunk key size");
_Static_assert(MF_MAILCRYPT_KEY_ID_SIZE == MF_ACCOUNT_KEY_ID_BYTES, "key id size");
/* The version 1 reader does not check INDEX_LIMIT_V1: no 64-bit size holds
   that many chunks of the smallest size. */
_Static_assert(UINT64_MAX / (MF_MAILCRYPT_CHUNK_MIN + MF_MAILCRYPT_CHUNK_OVERHEAD) < INDEX_LIMIT_V1,
               "chunk index bound");

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

/* ---- checks and sizes ---- */

/* Header size of a version with the given flags. */
static size_t header_size_of(unsigned int version, unsigned int flags)
{
	size_t size = version == MF_MAILCRYPT_VERSION_3 ? MF_MAILCRYPT_HEADER_V3_SIZE
	                                                : MF_MAILCRYPT_HEADER_SIZE;

	return (flags & MF_MAILCRYPT_FLAG_MAC) != 0 ? size + MF_MAILCRYPT_MAC_SIZE : size;
}

/* Where the header tag starts, and the authenticator (when present). */
static size_t tag_offset(size_t header_size)
{
	return header_size - TAG_LEN;
}

static size_t mac_offset(size_t header_size)
{
	return tag_offset(header_size) - MF_MAILCRYPT_MAC_SIZE;
}

const char *mf_mailcrypt_chunk_alg(unsigned int version)
{
	switch (version) {
	case MF_MAILCRYPT_VERSION_1:
		return "XChaCha20-Poly1305";
	case MF_MAILCRYPT_VERSION_2:
		return GCM_NAME;
	case MF_MAILCRYPT_VERSION_3:
		return MF_ARIA_GCM_NAME;
	}
	return "unknown";
}

const char *mf_mailcrypt_seal_alg(unsigned int version)
{
	switch (version) {
	case MF_MAILCRYPT_VERSION_1:
	case MF_MAILCRYPT_VERSION_2:
		return "X25519-sealed-box";
	case MF_MAILCRYPT_VERSION_3:
		return "ECDH-P256-KBKDF";
	}
	return "unknown";
}

bool mf_mailcrypt_version_listed(unsigned int version)
{
	return version == MF_MAILCRYPT_VERSION_3;
}

bool mf_mailcrypt_is_ciphertext(const void *data, size_t len)
{
	return len >= MF_MAILCRYPT_MAGIC_SIZE &&
	       memcmp(data, MF_MAILCRYPT_MAGIC, MF_MAILCRYPT_MAGIC_SIZE) == 0;
}

int mf_mailcrypt_peek(const void *data, size_t len, struct mf_mailcrypt_info *info_r,
                      struct mf_error *err)
{
	const unsigned char *p = data;
	unsigned int hdrlen;
	uint32_t chunk;

	memset(info_r, 0, sizeof(*info_r));
	if (len < MF_MAILCRYPT_MAGIC_SIZE) {
		if (len > 0 && memcmp(p, MF_MAILCRYPT_MAGIC, len) == 0)
			return mf_error_set(err, "ciphertext truncated: %zu bytes, header needs %d",
			                    len, MF_MAILCRYPT_HEADER_SIZE);
		return mf_error_set(err, "not a mailfort ciphertext (bad magic)");
	}
	if (!mf_mailcrypt_is_ciphertext(p, len))
		return mf_error_set(err, "not a mailfort ciphertext (bad magic)");
	if (len < MF_MAILCRYPT_PREFIX_SIZE)
		return mf_error_set(err, "ciphertext truncated: %zu bytes, header needs %d", len,
		                    MF_MAILCRYPT_HEADER_SIZE);
	if (p[OFF_VERSION] < MF_MAILCRYPT_VERSION_1 || p[OFF_VERSION] > MF_MAILCRYPT_VERSION_3)
		return mf_error_set(err,
		                    "unsupported ciphertext version %u (this build reads %d to %d)",
		                    p[OFF_VERSION], MF_MAILCRYPT_VERSION_1, MF_MAILCRYPT_VERSION_3);
	if ((p[OFF_FLAGS] & ~MF_MAILCRYPT_FLAG_MAC) != 0)
		return mf_error_set(err, "unsupported ciphertext header flags 0x%02x",
		                    p[OFF_FLAGS]);
	hdrlen = get_le16(p + OFF_HDRLEN);
	if (hdrlen != header_size_of(p[OFF_VERSION], p[OFF_FLAGS]))
		return mf_error_set(
		    err, "invalid ciphertext header length %u (version %u%s uses %zu)", hdrlen,
		    p[OFF_VERSION],
		    (p[OFF_FLAGS] & MF_MAILCRYPT_FLAG_MAC) != 0 ? " with authenticator" : "",
		    header_size_of(p[OFF_VERSION], p[OFF_FLAGS]));
	chunk = get_le32(p + OFF_CHUNK);
	if (chunk < MF_MAILCRYPT_CHUNK_MIN || chunk > MF_MAILCRYPT_CHUNK_MAX)
		return mf_error_set(err, "invalid ciphertext chunk size %u (allowed %u..%u)", chunk,
		                    MF_MAILCRYPT_CHUNK_MIN, MF_MAILCRYPT_CHUNK_MAX);
	info_r->version = p[OFF_VERSION];
	info_r->flags = p[OFF_FLAGS];
	info_r->header_size = hdrlen;
	info_r->chunk_size = chunk;
	return 0;
}

static const struct mf_mailcrypt_info default_info = {
    .version = MF_MAILCRYPT_VERSION,
    .header_size = MF_MAILCRYPT_HEADER_SIZE,
    .chunk_size = MF_MAILCRYPT_CHUNK_SIZE,
};

/* Split a ciphertext size into chunk count and plaintext size. */
static int layout(const struct mf_mailcrypt_info *info, uint64_t ct_size, uint64_t *count_r,
                  uint64_t *pt_size_r, struct mf_error *err)
{
	const uint64_t tag = MF_MAILCRYPT_CHUNK_OVERHEAD;
	const uint64_t stride = (uint64_t)info->chunk_size + tag;
	uint64_t body, count, last;

	if (ct_size < info->header_size + tag)
		return mf_error_set(
		    err, "ciphertext truncated: %llu bytes, a message needs at least %llu",
		    (unsigned long long)ct_size, (unsigned long long)(info->header_size + tag));
	body = ct_size - info->header_size;
	count = body / stride + (body % stride != 0);
	last = body - (count - 1) * stride;
	if (last < tag)
		return mf_error_set(err,
		                    "ciphertext truncated in chunk %llu (%llu bytes, less than its "
		                    "%llu-byte tag)",
		                    (unsigned long long)(count - 1), (unsigned long long)last,
		                    (unsigned long long)tag);
	if (last == tag && count > 1)
		return mf_error_set(err,
		                    "invalid ciphertext size %llu: empty chunk %llu after full "
		                    "chunks (truncated or trailing data)",
		                    (unsigned long long)ct_size, (unsigned long long)(count - 1));
	if (info->version != MF_MAILCRYPT_VERSION_1 && count > INDEX_LIMIT_V2)
		return mf_error_set(
		    err,
		    "invalid ciphertext size %llu: %llu chunks, version %u allows at "
		    "most 2^32",
		    (unsigned long long)ct_size, (unsigned long long)count, info->version);
	*count_r = count;
	*pt_size_r = body - count * tag;
	return 0;
}

int mf_mailcrypt_plaintext_size(const struct mf_mailcrypt_info *info, uint64_t ct_size,
                                uint64_t *pt_size_r, struct mf_error *err)
{
	uint64_t count;

	return layout(info != NULL ? info : &default_info, ct_size, &count, pt_size_r, err);
}

uint64_t mf_mailcrypt_ciphertext_size(uint64_t pt_size)
{
	uint64_t count =
	    pt_size / MF_MAILCRYPT_CHUNK_SIZE + (pt_size % MF_MAILCRYPT_CHUNK_SIZE != 0);

	if (count == 0)
		count = 1;
	return MF_MAILCRYPT_HEADER_SIZE + pt_size + count * MF_MAILCRYPT_CHUNK_OVERHEAD;
}

/* ---- shared chunk primitives ---- */

static const char *kdf_context(unsigned int version)
{
	return version == MF_MAILCRYPT_VERSION_1 ? KDF_CONTEXT_V1 : KDF_CONTEXT_V2;
}

/* A new AES-256-GCM (version 3: ARIA-256-GCM) context keyed with key, for encryption or decryption
   (enc 1/0).  NULL with a reason when libcrypto cannot provide it: the
   caller fails; nothing falls back to another cipher. */
static EVP_CIPHER_CTX *gcm_new(unsigned int version, const unsigned char key[32], int enc,
                               struct mf_error *err)
{
	const char *name = version == MF_MAILCRYPT_VERSION_3 ? MF_ARIA_GCM_NAME : GCM_NAME;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER *fetched = NULL;
	const EVP_CIPHER *cipher;
	char reason[256];

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	/* an explicit fetch, so that a provider configuration without the
	   cipher is reported as such */
	cipher = fetched = EVP_CIPHER_fetch(NULL, name, NULL);
#else
	cipher = version == MF_MAILCRYPT_VERSION_3 ? EVP_aria_256_gcm() : EVP_aes_256_gcm();
#endif
	if (ctx == NULL || cipher == NULL ||
	    EVP_CipherInit_ex(ctx, cipher, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, NULL, enc) != 1) {
		EVP_CIPHER_CTX_free(ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
		EVP_CIPHER_free(fetched);
#endif
		mf_error_set(err, "%s is not available from OpenSSL: %s", name,
		             mf_openssl_reason(reason, sizeof(reason)));
		return NULL;
	}
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	EVP_CIPHER_free(fetched); /* the context holds its own reference */
#endif
	return ctx;
}

static void gcm_nonce(unsigned char nonce[GCM_NONCE_LEN], uint64_t index, bool final)
{
	put_le64(nonce, index);
	memset(nonce + 8, 0, GCM_NONCE_LEN - 8);
	if (final)
		nonce[GCM_NONCE_LEN - 1] = 0x80;
}

static void chunk_nonce(unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES],
                        const unsigned char prefix[16], uint64_t index, bool final)
{
	memcpy(nonce, prefix, 16);
	put_le64(nonce + 16, index);
	if (final)
		nonce[23] |= 0x80;
}

static void chunk_ad(unsigned char ad[AD_LEN], const unsigned char tag[TAG_LEN], uint64_t index,
                     bool final)
{
	memcpy(ad, tag, TAG_LEN);
	put_le64(ad + TAG_LEN, index);
	ad[TAG_LEN + 8] = final ? 1 : 0;
}

/* The header tag over the header bytes before it (tag_off of them), under
   a key derived from the content key: BLAKE2b-128 (versions 1, 2) or
   HMAC-SHA256 cut to 16 bytes (version 3). */
static int header_tag(unsigned char tag[TAG_LEN], const unsigned char *header, size_t tag_off,
                      const unsigned char content_key[CONTENT_KEY_LEN], struct mf_error *err)
{
	unsigned char k_hdr[crypto_generichash_KEYBYTES], mac[MF_HMAC_SHA256_BYTES];
	int ret = 0;

	/* the version byte is in the header: it picks the context */
	if (header[OFF_VERSION] == MF_MAILCRYPT_VERSION_3) {
		ret = mf_kbkdf_sha256(k_hdr, sizeof(k_hdr), content_key, CONTENT_KEY_LEN,
		                      KBKDF_HDR_V3, NULL, 0, err);
		if (ret == 0)
			ret = mf_hmac_sha256(mac, k_hdr, sizeof(k_hdr), header, tag_off, NULL, 0,
			                     err);
		memcpy(tag, mac, TAG_LEN);
		sodium_memzero(mac, sizeof(mac));
	} else {
		crypto_kdf_derive_from_key(k_hdr, sizeof(k_hdr), KDF_ID_HEADER,
		                           kdf_context(header[OFF_VERSION]), content_key);
		crypto_generichash(tag, TAG_LEN, header, tag_off, k_hdr, sizeof(k_hdr));
	}
	sodium_memzero(k_hdr, sizeof(k_hdr));
	return ret;
}

/* The chunk key of a message from its content key. */
static int chunk_key(unsigned char out[32], unsigned int version,
                     const unsigned char content_key[CONTENT_KEY_LEN], struct mf_error *err)
{
	if (version == MF_MAILCRYPT_VERSION_3)
		return mf_kbkdf_sha256(out, 32, content_key, CONTENT_KEY_LEN, KBKDF_CHUNK_V3, NULL,
		                       0, err);
	crypto_kdf_derive_from_key(out, 32, KDF_ID_CHUNK, kdf_context(version), content_key);
	return 0;
}

/* The server authenticator over the header bytes before it. */
static int header_mac(unsigned char mac[MF_MAILCRYPT_MAC_SIZE], const unsigned char *header,
                      size_t mac_off, const unsigned char mac_key[MF_MAILCRYPT_MAC_KEY_SIZE],
                      struct mf_error *err)
{
	return mf_hmac_sha256(mac, mac_key, MF_MAILCRYPT_MAC_KEY_SIZE, header, mac_off, NULL, 0,
	                      err);
}

int mf_mailcrypt_check_mac(const void *header, size_t header_len,
                           const unsigned char mac_key[MF_MAILCRYPT_MAC_KEY_SIZE],
                           struct mf_error *err)
{
	unsigned char mac[MF_MAILCRYPT_MAC_SIZE];
	struct mf_mailcrypt_info info;
	size_t off;
	int ret;

	if (mf_mailcrypt_peek(header, header_len, &info, err) < 0)
		return -1;
	if (header_len < info.header_size)
		return mf_error_set(err, "ciphertext truncated: header needs %zu bytes, got %zu",
		                    info.header_size, header_len);
	if ((info.flags & MF_MAILCRYPT_FLAG_MAC) == 0)
		return mf_error_set(err, "message has no server authenticator");
	off = mac_offset(info.header_size);
	if (header_mac(mac, header, off, mac_key, err) < 0)
		return -1;
	ret = sodium_memcmp(mac, (const unsigned char *)header + off, sizeof(mac));
	sodium_memzero(mac, sizeof(mac));
	if (ret != 0)
		return mf_error_set(err, "server authenticator does not verify (message not "
		                         "stored by this site)");
	return 0;
}

/* ---- writer ---- */

void mf_mailcrypt_writer_clear(struct mf_mailcrypt_writer *w)
{
	EVP_CIPHER_CTX_free(w->gcm); /* wipes the key schedule */
	w->gcm = NULL;
	sodium_memzero(w->chunk_key, sizeof(w->chunk_key));
	sodium_memzero(w->buf, w->buffered < sizeof(w->buf) ? w->buffered : sizeof(w->buf));
	w->buffered = 0;
	w->active = false;
}

int mf_mailcrypt_writer_start(struct mf_mailcrypt_writer *w,
                              const struct mf_mailcrypt_params *params,
                              unsigned char header_out[MF_MAILCRYPT_HEADER_MAX],
                              size_t *header_len_r, struct mf_error *err)
{
	unsigned char content_key[CONTENT_KEY_LEN];
	unsigned char *h = header_out;
	const bool p256 = params->pk_len == MF_P256_PK_BYTES;
	unsigned int version = params->version, flags;
	uint32_t chunk_size =
	    params->chunk_size != 0 ? params->chunk_size : MF_MAILCRYPT_CHUNK_SIZE;
	size_t hdrlen, tag_off;
	int ret;

	/* the struct may be uninitialised memory: nothing in it is read */
	w->active = false;
	w->buffered = 0;
	w->gcm = NULL;
	*header_len_r = 0;
	if (version == 0)
		version = p256 ? MF_MAILCRYPT_VERSION_3 : MF_MAILCRYPT_VERSION;
	if (version < MF_MAILCRYPT_VERSION_1 || version > MF_MAILCRYPT_VERSION_3)
		return mf_error_set(err,
		                    "unsupported ciphertext version %u (writers produce %d to %d)",
		                    version, MF_MAILCRYPT_VERSION_1, MF_MAILCRYPT_VERSION_3);
	if ((version == MF_MAILCRYPT_VERSION_3) != p256 ||
	    (!p256 && params->pk_len != crypto_box_PUBLICKEYBYTES))
		return mf_error_set(err,
		                    "ciphertext version %u cannot seal to a %zu-byte public key "
		                    "(version 3: P-256, 65 bytes; 1 and 2: X25519, 32 bytes)",
		                    version, params->pk_len);
	if (chunk_size < MF_MAILCRYPT_CHUNK_MIN || chunk_size > MF_MAILCRYPT_CHUNK_MAX)
		return mf_error_set(err, "invalid chunk size %u (allowed %u..%u)", chunk_size,
		                    MF_MAILCRYPT_CHUNK_MIN, MF_MAILCRYPT_CHUNK_MAX);
	flags = params->mac_key != NULL ? MF_MAILCRYPT_FLAG_MAC : 0;
	hdrlen = header_size_of(version, flags);
	tag_off = tag_offset(hdrlen);
	memcpy(h, MF_MAILCRYPT_MAGIC, MF_MAILCRYPT_MAGIC_SIZE);
	h[OFF_VERSION] = (unsigned char)version;
	h[OFF_FLAGS] = (unsigned char)flags;
	put_le16(h + OFF_HDRLEN, (uint16_t)hdrlen);
	put_le32(h + OFF_CHUNK, chunk_size);
	if (p256) {
		/* only the provider's DRBG in version 3 */
		if (mf_evp_random(content_key, sizeof(content_key), err) < 0 ||
		    mf_evp_random(h + OFF_PREFIX, 16, err) < 0 ||
		    mf_p256_key_id(h + OFF_KEYID, params->pk, err) < 0 ||
		    mf_p256_seal(h + OFF_SEALED, content_key, sizeof(content_key), h, OFF_SEALED,
		                 params->pk, err) < 0) {
			sodium_memzero(content_key, sizeof(content_key));
			sodium_memzero(h, hdrlen);
			return -1;
		}
	} else {
		randombytes_buf(content_key, sizeof(content_key));
		randombytes_buf(h + OFF_PREFIX, 16);
		mf_account_key_id(h + OFF_KEYID, params->pk);
		if (crypto_box_seal(h + OFF_SEALED, content_key, sizeof(content_key), params->pk) !=
		    0) {
			sodium_memzero(content_key, sizeof(content_key));
			return mf_error_set(err,
			                    "cannot seal content key: invalid account public key");
		}
	}
	ret = 0;
	if (params->mac_key != NULL)
		ret =
		    header_mac(h + mac_offset(hdrlen), h, mac_offset(hdrlen), params->mac_key, err);
	if (ret == 0)
		ret = header_tag(h + tag_off, h, tag_off, content_key, err);
	if (ret == 0)
		ret = chunk_key(w->chunk_key, version, content_key, err);
	sodium_memzero(content_key, sizeof(content_key));
	if (ret == 0 && version != MF_MAILCRYPT_VERSION_1 &&
	    (w->gcm = gcm_new(version, w->chunk_key, 1, err)) == NULL)
		ret = -1;
	if (ret < 0) {
		sodium_memzero(w->chunk_key, sizeof(w->chunk_key));
		sodium_memzero(h, hdrlen);
		return -1;
	}
	memcpy(w->header_tag, h + tag_off, TAG_LEN);
	memcpy(w->nonce_prefix, h + OFF_PREFIX, 16);
	w->index = 0;
	w->version = version;
	w->chunk_size = chunk_size;
	w->active = true;
	*header_len_r = hdrlen;
	return 0;
}

int mf_mailcrypt_writer_init_version(struct mf_mailcrypt_writer *w,
                                     const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                     unsigned int version, uint32_t chunk_size,
                                     unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                                     struct mf_error *err)
{
	const struct mf_mailcrypt_params params = {
	    .version = version,
	    .chunk_size = chunk_size,
	    .pk = pk,
	    .pk_len = crypto_box_PUBLICKEYBYTES,
	};
	unsigned char header[MF_MAILCRYPT_HEADER_MAX];
	size_t len;

	if (version == MF_MAILCRYPT_VERSION_3 || version == 0)
		return mf_error_set(err, "ciphertext version %u needs mf_mailcrypt_writer_start",
		                    version);
	if (chunk_size == 0)
		return mf_error_set(err, "invalid chunk size 0 (allowed %u..%u)",
		                    MF_MAILCRYPT_CHUNK_MIN, MF_MAILCRYPT_CHUNK_MAX);
	if (mf_mailcrypt_writer_start(w, &params, header, &len, err) < 0)
		return -1;
	memcpy(header_out, header, MF_MAILCRYPT_HEADER_SIZE);
	return 0;
}

int mf_mailcrypt_writer_init_chunk(struct mf_mailcrypt_writer *w,
                                   const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                   uint32_t chunk_size,
                                   unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                                   struct mf_error *err)
{
	return mf_mailcrypt_writer_init_version(w, pk, MF_MAILCRYPT_VERSION, chunk_size, header_out,
	                                        err);
}

int mf_mailcrypt_writer_init(struct mf_mailcrypt_writer *w,
                             const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                             unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                             struct mf_error *err)
{
	return mf_mailcrypt_writer_init_version(w, pk, MF_MAILCRYPT_VERSION,
	                                        MF_MAILCRYPT_CHUNK_SIZE, header_out, err);
}

/* Version 2: one chunk with the writer's context, keyed once in init; only
   the nonce changes per chunk. */
static int gcm_seal(EVP_CIPHER_CTX *ctx, const unsigned char *in, size_t len,
                    const unsigned char nonce[GCM_NONCE_LEN], const unsigned char ad[AD_LEN],
                    unsigned char *out)
{
	int n;

	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, ad, AD_LEN) != 1 ||
	    (len > 0 && EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(ctx, out + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, out + len) != 1)
		return -1;
	return 0;
}

/* Seal one chunk to out (len + tag bytes). */
static int writer_seal(struct mf_mailcrypt_writer *w, const unsigned char *in, size_t len,
                       bool final, unsigned char *out, struct mf_error *err)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char ad[AD_LEN];
	char reason[256];

	chunk_ad(ad, w->header_tag, w->index, final);
	if (w->version != MF_MAILCRYPT_VERSION_1) {
		gcm_nonce(nonce, w->index, final);
		if (gcm_seal(w->gcm, in, len, nonce, ad, out) < 0) {
			sodium_memzero(out, len + GCM_TAG_LEN);
			mf_mailcrypt_writer_clear(w);
			return mf_error_set(err, "%s encryption of chunk failed: %s",
			                    mf_mailcrypt_chunk_alg(w->version),
			                    mf_openssl_reason(reason, sizeof(reason)));
		}
	} else {
		chunk_nonce(nonce, w->nonce_prefix, w->index, final);
		crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, sizeof(ad), NULL,
		                                           nonce, w->chunk_key);
	}
	w->index++;
	return 0;
}

int mf_mailcrypt_writer_update(struct mf_mailcrypt_writer *w, const void *in, size_t len,
                               unsigned char *out, size_t out_size, size_t *out_len_r,
                               struct mf_error *err)
{
	const unsigned char *p = in;
	const size_t c = w->chunk_size, stride = c + MF_MAILCRYPT_CHUNK_OVERHEAD;
	size_t total, emit, n, done = 0;

	*out_len_r = 0;
	if (!w->active)
		return mf_error_set(err, "mailcrypt writer used after final or error");
	if (len == 0)
		return 0;
	/* One chunk is always held back: only the last one may be final. */
	total = w->buffered + len;
	emit = (total - 1) / c;
	if (emit > out_size / stride) {
		mf_mailcrypt_writer_clear(w);
		return mf_error_set(err, "mailcrypt output buffer too small (%zu bytes, need %zu)",
		                    out_size, emit * stride);
	}
	if (w->index + emit + 1 >
	    (w->version != MF_MAILCRYPT_VERSION_1 ? INDEX_LIMIT_V2 : INDEX_LIMIT_V1 - 1)) {
		mf_mailcrypt_writer_clear(w);
		return mf_error_set(err, "message too large for the ciphertext format");
	}
	while (len > 0) {
		if (w->buffered == c) {
			if (writer_seal(w, w->buf, c, false, out + done, err) < 0)
				return -1;
			done += stride;
			w->buffered = 0;
		}
		if (w->buffered == 0 && len > c) {
			/* Whole chunk straight from the caller's data, no copy. */
			if (writer_seal(w, p, c, false, out + done, err) < 0)
				return -1;
			done += stride;
			p += c;
			len -= c;
			continue;
		}
		n = c - w->buffered < len ? c - w->buffered : len;
		memcpy(w->buf + w->buffered, p, n);
		w->buffered += n;
		p += n;
		len -= n;
	}
	*out_len_r = done;
	return 0;
}

int mf_mailcrypt_writer_final(struct mf_mailcrypt_writer *w, unsigned char *out, size_t out_size,
                              size_t *out_len_r, struct mf_error *err)
{
	size_t need;

	*out_len_r = 0;
	if (!w->active)
		return mf_error_set(err, "mailcrypt writer used after final or error");
	need = w->buffered + MF_MAILCRYPT_CHUNK_OVERHEAD;
	if (out_size < need) {
		mf_mailcrypt_writer_clear(w);
		return mf_error_set(err, "mailcrypt output buffer too small (%zu bytes, need %zu)",
		                    out_size, need);
	}
	if (writer_seal(w, w->buf, w->buffered, true, out, err) < 0)
		return -1;
	*out_len_r = need;
	mf_mailcrypt_writer_clear(w);
	return 0;
}

/* ---- reader ---- */

void mf_mailcrypt_reader_clear(struct mf_mailcrypt_reader *r)
{
	EVP_CIPHER_CTX_free(r->gcm); /* wipes the key schedule */
	r->gcm = NULL;
	sodium_memzero(r->chunk_key, sizeof(r->chunk_key));
	r->active = false;
}

void mf_mailcrypt_reader_copy(struct mf_mailcrypt_reader *dst,
                              const struct mf_mailcrypt_reader *src)
{
	*dst = *src;
	dst->gcm = NULL;
}

int mf_mailcrypt_reader_copy_sized(struct mf_mailcrypt_reader *dst,
                                   const struct mf_mailcrypt_reader *src, uint64_t ct_size,
                                   struct mf_error *err)
{
	uint64_t count, pt_size;

	if (layout(&src->info, ct_size, &count, &pt_size, err) < 0)
		return -1;
	mf_mailcrypt_reader_copy(dst, src);
	dst->ct_size = ct_size;
	dst->chunk_count = count;
	dst->pt_size = pt_size;
	return 0;
}

int mf_mailcrypt_reader_open(struct mf_mailcrypt_reader *r, const void *header, size_t header_len,
                             uint64_t ct_size, const unsigned char *pk, size_t pk_len,
                             const unsigned char sk[32], struct mf_error *err)
{
	const unsigned char *h = header;
	unsigned char content_key[CONTENT_KEY_LEN];
	unsigned char id[MF_ACCOUNT_KEY_ID_BYTES], tag[TAG_LEN];
	char want_hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1], have_hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1];
	size_t tag_off;
	bool p256;
	int ret;

	memset(r, 0, sizeof(*r));
	if (mf_mailcrypt_peek(h, header_len, &r->info, err) < 0)
		return -1;
	if (header_len < r->info.header_size || ct_size < r->info.header_size)
		return mf_error_set(
		    err, "ciphertext truncated: header needs %zu bytes, got %llu",
		    r->info.header_size,
		    (unsigned long long)(header_len < ct_size ? header_len : ct_size));
	if (layout(&r->info, ct_size, &r->chunk_count, &r->pt_size, err) < 0)
		return -1;
	r->ct_size = ct_size;
	p256 = r->info.version == MF_MAILCRYPT_VERSION_3;
	if (pk_len != (p256 ? MF_P256_PK_BYTES : crypto_box_PUBLICKEYBYTES))
		return mf_error_set(err, "a version %u message is not sealed to a %zu-byte key",
		                    r->info.version, pk_len);
	if (mf_account_key_id_any(id, pk, pk_len, err) < 0)
		return -1;
	if (memcmp(id, h + OFF_KEYID, sizeof(id)) != 0) {
		sodium_bin2hex(want_hex, sizeof(want_hex), h + OFF_KEYID, sizeof(id));
		sodium_bin2hex(have_hex, sizeof(have_hex), id, sizeof(id));
		return mf_error_set(err, "message is sealed to account key %s, not to key %s",
		                    want_hex, have_hex);
	}
	if (p256 ? mf_p256_seal_open(content_key, h + OFF_SEALED, SEALED_V3_LEN, h, OFF_SEALED, pk,
	                             sk, err) < 0
	         : crypto_box_seal_open(content_key, h + OFF_SEALED, SEALED_LEN, pk, sk) != 0)
		return mf_error_set(err, "cannot open content key (wrong account secret key or "
		                         "corrupted header)");
	tag_off = tag_offset(r->info.header_size);
	ret = header_tag(tag, h, tag_off, content_key, err);
	if (ret == 0 && sodium_memcmp(tag, h + tag_off, TAG_LEN) != 0)
		ret = mf_error_set(err, "ciphertext header failed authentication");
	if (ret == 0)
		ret = chunk_key(r->chunk_key, r->info.version, content_key, err);
	sodium_memzero(content_key, sizeof(content_key));
	if (ret < 0) {
		sodium_memzero(r->chunk_key, sizeof(r->chunk_key));
		return -1;
	}
	memcpy(r->header_tag, tag, TAG_LEN);
	memcpy(r->nonce_prefix, h + OFF_PREFIX, 16);
	r->active = true;
	return 0;
}

int mf_mailcrypt_reader_init(struct mf_mailcrypt_reader *r, const void *header, size_t header_len,
                             uint64_t ct_size, const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                             const unsigned char sk[crypto_box_SECRETKEYBYTES],
                             struct mf_error *err)
{
	return mf_mailcrypt_reader_open(r, header, header_len, ct_size, pk,
	                                crypto_box_PUBLICKEYBYTES, sk, err);
}

int mf_mailcrypt_chunk_at(const struct mf_mailcrypt_reader *r, uint64_t index,
                          struct mf_mailcrypt_chunk *chunk_r, struct mf_error *err)
{
	const uint64_t c = r->info.chunk_size;

	if (!r->active)
		return mf_error_set(err, "mailcrypt reader not initialised");
	if (index >= r->chunk_count)
		return mf_error_set(err, "chunk %llu out of range (message has %llu chunks)",
		                    (unsigned long long)index, (unsigned long long)r->chunk_count);
	chunk_r->index = index;
	chunk_r->ct_offset = r->info.header_size + index * (c + MF_MAILCRYPT_CHUNK_OVERHEAD);
	chunk_r->pt_offset = index * c;
	chunk_r->final = index == r->chunk_count - 1;
	chunk_r->pt_len = chunk_r->final ? (size_t)(r->pt_size - chunk_r->pt_offset) : (size_t)c;
	chunk_r->ct_len = chunk_r->pt_len + MF_MAILCRYPT_CHUNK_OVERHEAD;
	return 0;
}

int mf_mailcrypt_chunk_for_offset(const struct mf_mailcrypt_reader *r, uint64_t pt_offset,
                                  struct mf_mailcrypt_chunk *chunk_r, struct mf_error *err)
{
	if (!r->active)
		return mf_error_set(err, "mailcrypt reader not initialised");
	if (pt_offset >= r->pt_size && !(pt_offset == 0 && r->pt_size == 0))
		return mf_error_set(err, "offset %llu beyond plaintext size %llu",
		                    (unsigned long long)pt_offset, (unsigned long long)r->pt_size);
	return mf_mailcrypt_chunk_at(r, pt_offset / r->info.chunk_size, chunk_r, err);
}

/* Version 2: decrypt with the reader's context (keyed once, new nonce per
   chunk).  libcrypto computes the tag while it decrypts into out; on a
   mismatch the caller wipes out and returns -1, so an unauthenticated byte
   never leaves open_chunk.  out == NULL: check the tag only, decrypting
   into a small scratch buffer that is wiped. */
static int gcm_open(EVP_CIPHER_CTX *ctx, const unsigned char *ct, size_t ct_len,
                    const unsigned char nonce[GCM_NONCE_LEN], const unsigned char ad[AD_LEN],
                    unsigned char *out)
{
	const size_t len = ct_len - GCM_TAG_LEN;
	unsigned char tag[GCM_TAG_LEN], scratch[1024];
	size_t off, n;
	int outl, ok;

	memcpy(tag, ct + len, GCM_TAG_LEN);
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &outl, ad, AD_LEN) != 1)
		return -1;
	if (out != NULL) {
		if (len > 0 && EVP_DecryptUpdate(ctx, out, &outl, ct, (int)len) != 1)
			return -1;
	} else {
		for (off = 0; off < len; off += n) {
			n = len - off < sizeof(scratch) ? len - off : sizeof(scratch);
			if (EVP_DecryptUpdate(ctx, scratch, &outl, ct + off, (int)n) != 1)
				break;
		}
		sodium_memzero(scratch, sizeof(scratch));
		if (off < len)
			return -1;
	}
	ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1 &&
	     EVP_DecryptFinal_ex(ctx, scratch, &outl) == 1;
	if (!ok)
		ERR_clear_error();
	return ok ? 0 : -1;
}

static int chunk_decrypt(const struct mf_mailcrypt_reader *r, uint64_t index, bool final,
                         const unsigned char *ct, size_t ct_len, unsigned char *out)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char ad[AD_LEN];

	chunk_ad(ad, r->header_tag, index, final);
	if (r->info.version != MF_MAILCRYPT_VERSION_1) {
		gcm_nonce(nonce, index, final);
		return gcm_open(r->gcm, ct, ct_len, nonce, ad, out);
	}
	chunk_nonce(nonce, r->nonce_prefix, index, final);
	/* out == NULL: verify only. */
	if (out == NULL)
		return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		    NULL, NULL, ct, ct_len - MF_MAILCRYPT_CHUNK_OVERHEAD,
		    ct + ct_len - MF_MAILCRYPT_CHUNK_OVERHEAD, ad, sizeof(ad), nonce, r->chunk_key);
	return crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, ct_len, ad,
	                                                  sizeof(ad), nonce, r->chunk_key);
}

int mf_mailcrypt_open_chunk(struct mf_mailcrypt_reader *r, uint64_t index, const void *ct,
                            size_t ct_len, unsigned char *out, size_t out_size, size_t *out_len_r,
                            struct mf_error *err)
{
	struct mf_mailcrypt_chunk chunk;

	*out_len_r = 0;
	if (mf_mailcrypt_chunk_at(r, index, &chunk, err) < 0)
		return -1;
	if (ct_len != chunk.ct_len)
		return mf_error_set(err, "chunk %llu has %zu bytes, expected %zu (truncated?)",
		                    (unsigned long long)index, ct_len, chunk.ct_len);
	if (out_size < chunk.pt_len)
		return mf_error_set(err, "output buffer too small for chunk %llu (%zu < %zu)",
		                    (unsigned long long)index, out_size, chunk.pt_len);
	if (r->info.version != MF_MAILCRYPT_VERSION_1 && r->gcm == NULL &&
	    (r->gcm = gcm_new(r->info.version, r->chunk_key, 0, err)) == NULL)
		return -1;
	if (chunk_decrypt(r, index, chunk.final, ct, ct_len, out) == 0) {
		*out_len_r = chunk.pt_len;
		return 0;
	}
	/* version 2 wrote unauthenticated plaintext into out: wipe it (version
	   1 verifies before it decrypts, and wipes out itself) */
	if (r->info.version != MF_MAILCRYPT_VERSION_1)
		sodium_memzero(out, chunk.pt_len);
	/* Failed: say why when we still can (in-place decryption wiped ct). */
	if ((const unsigned char *)ct != out &&
	    chunk_decrypt(r, index, !chunk.final, ct, ct_len, NULL) == 0) {
		if (chunk.final)
			return mf_error_set(err,
			                    "ciphertext truncated: chunk %llu is not the final "
			                    "chunk (final chunk missing)",
			                    (unsigned long long)index);
		return mf_error_set(err, "trailing data after final chunk %llu",
		                    (unsigned long long)index);
	}
	return mf_error_set(err, "chunk %llu failed authentication%s", (unsigned long long)index,
	                    chunk.final ? " (corrupted, or message truncated or extended)" : "");
}

int mf_mailcrypt_decrypt_buffer(const void *ct, size_t ct_len,
                                const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                const unsigned char sk[crypto_box_SECRETKEYBYTES],
                                unsigned char *out, size_t out_size, size_t *out_len_r,
                                struct mf_error *err)
{
	const unsigned char *p = ct;
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk chunk;
	size_t n;
	uint64_t i;

	*out_len_r = 0;
	if (mf_mailcrypt_reader_init(&r, ct, ct_len, ct_len, pk, sk, err) < 0)
		return -1;
	if (out_size < r.pt_size) {
		mf_mailcrypt_reader_clear(&r);
		return mf_error_set(err, "output buffer too small (%zu bytes, plaintext has %llu)",
		                    out_size, (unsigned long long)r.pt_size);
	}
	for (i = 0; i < r.chunk_count; i++) {
		if (mf_mailcrypt_chunk_at(&r, i, &chunk, err) < 0 ||
		    mf_mailcrypt_open_chunk(&r, i, p + chunk.ct_offset, chunk.ct_len,
		                            out + chunk.pt_offset, out_size - chunk.pt_offset, &n,
		                            err) < 0) {
			sodium_memzero(out, r.pt_size);
			mf_mailcrypt_reader_clear(&r);
			return -1;
		}
	}
	*out_len_r = r.pt_size;
	mf_mailcrypt_reader_clear(&r);
	return 0;
}
