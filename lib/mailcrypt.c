/*
 * mailcrypt.c - the stored-mail ciphertext format: streaming writer,
 * random-access reader, size arithmetic.  Format and API: mf-mailcrypt.h.
 *
 * Functions return 0 or -1 with a reason naming what is wrong (bad magic,
 * unsupported version, truncated, chunk N failed authentication, final
 * chunk missing, trailing data, wrong account key).  Nothing here allocates
 * memory; key material lives in the caller's writer/reader structs and is
 * wiped by *_clear, by writer_final and on every error.
 */
#include <string.h>
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
#define KDF_CONTEXT     "mfmail01"
#define KDF_ID_HEADER   1
#define KDF_ID_CHUNK    2
/* Chunk indexes must leave bit 7 of the last nonce byte for the final flag. */
#define INDEX_LIMIT ((uint64_t)1 << 55)

_Static_assert(OFF_TAG + TAG_LEN == MF_MAILCRYPT_HEADER_SIZE, "header layout");
_Static_assert(16 + 8 == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce layout");
_Static_assert(MF_MAILCRYPT_KEY_ID_SIZE == MF_ACCOUNT_KEY_ID_BYTES, "key id size");
/* The reader does not check INDEX_LIMIT: no 64-bit size holds that many
   chunks of the smallest size. */
_Static_assert(UINT64_MAX / (MF_MAILCRYPT_CHUNK_MIN + MF_MAILCRYPT_CHUNK_OVERHEAD) < INDEX_LIMIT,
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
	if (p[OFF_VERSION] != MF_MAILCRYPT_VERSION)
		return mf_error_set(err, "unsupported ciphertext version %u (this build reads %d)",
		                    p[OFF_VERSION], MF_MAILCRYPT_VERSION);
	if (p[OFF_FLAGS] != 0)
		return mf_error_set(err, "unsupported ciphertext header flags 0x%02x",
		                    p[OFF_FLAGS]);
	hdrlen = get_le16(p + OFF_HDRLEN);
	if (hdrlen != MF_MAILCRYPT_HEADER_SIZE)
		return mf_error_set(err, "invalid ciphertext header length %u (version %d uses %d)",
		                    hdrlen, MF_MAILCRYPT_VERSION, MF_MAILCRYPT_HEADER_SIZE);
	chunk = get_le32(p + OFF_CHUNK);
	if (chunk < MF_MAILCRYPT_CHUNK_MIN || chunk > MF_MAILCRYPT_CHUNK_MAX)
		return mf_error_set(err, "invalid ciphertext chunk size %u (allowed %u..%u)", chunk,
		                    MF_MAILCRYPT_CHUNK_MIN, MF_MAILCRYPT_CHUNK_MAX);
	info_r->version = p[OFF_VERSION];
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

static void header_tag(unsigned char tag[TAG_LEN], const unsigned char *header,
                       const unsigned char content_key[CONTENT_KEY_LEN])
{
	unsigned char k_hdr[crypto_generichash_KEYBYTES];

	crypto_kdf_derive_from_key(k_hdr, sizeof(k_hdr), KDF_ID_HEADER, KDF_CONTEXT, content_key);
	crypto_generichash(tag, TAG_LEN, header, OFF_TAG, k_hdr, sizeof(k_hdr));
	sodium_memzero(k_hdr, sizeof(k_hdr));
}

/* ---- writer ---- */

void mf_mailcrypt_writer_clear(struct mf_mailcrypt_writer *w)
{
	sodium_memzero(w->chunk_key, sizeof(w->chunk_key));
	sodium_memzero(w->buf, w->buffered < sizeof(w->buf) ? w->buffered : sizeof(w->buf));
	w->buffered = 0;
	w->active = false;
}

int mf_mailcrypt_writer_init_chunk(struct mf_mailcrypt_writer *w,
                                   const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                                   uint32_t chunk_size,
                                   unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                                   struct mf_error *err)
{
	unsigned char content_key[CONTENT_KEY_LEN];
	unsigned char *h = header_out;

	w->active = false;
	w->buffered = 0;
	if (chunk_size < MF_MAILCRYPT_CHUNK_MIN || chunk_size > MF_MAILCRYPT_CHUNK_MAX)
		return mf_error_set(err, "invalid chunk size %u (allowed %u..%u)", chunk_size,
		                    MF_MAILCRYPT_CHUNK_MIN, MF_MAILCRYPT_CHUNK_MAX);
	randombytes_buf(content_key, sizeof(content_key));
	memcpy(h, MF_MAILCRYPT_MAGIC, MF_MAILCRYPT_MAGIC_SIZE);
	h[OFF_VERSION] = MF_MAILCRYPT_VERSION;
	h[OFF_FLAGS] = 0;
	put_le16(h + OFF_HDRLEN, MF_MAILCRYPT_HEADER_SIZE);
	put_le32(h + OFF_CHUNK, chunk_size);
	randombytes_buf(h + OFF_PREFIX, 16);
	mf_account_key_id(h + OFF_KEYID, pk);
	if (crypto_box_seal(h + OFF_SEALED, content_key, sizeof(content_key), pk) != 0) {
		sodium_memzero(content_key, sizeof(content_key));
		return mf_error_set(err, "cannot seal content key: invalid account public key");
	}
	header_tag(h + OFF_TAG, h, content_key);
	crypto_kdf_derive_from_key(w->chunk_key, sizeof(w->chunk_key), KDF_ID_CHUNK, KDF_CONTEXT,
	                           content_key);
	sodium_memzero(content_key, sizeof(content_key));
	memcpy(w->header_tag, h + OFF_TAG, TAG_LEN);
	memcpy(w->nonce_prefix, h + OFF_PREFIX, 16);
	w->index = 0;
	w->chunk_size = chunk_size;
	w->active = true;
	return 0;
}

int mf_mailcrypt_writer_init(struct mf_mailcrypt_writer *w,
                             const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                             unsigned char header_out[MF_MAILCRYPT_HEADER_SIZE],
                             struct mf_error *err)
{
	return mf_mailcrypt_writer_init_chunk(w, pk, MF_MAILCRYPT_CHUNK_SIZE, header_out, err);
}

/* Seal one chunk to out (len + tag bytes). */
static void writer_seal(struct mf_mailcrypt_writer *w, const unsigned char *in, size_t len,
                        bool final, unsigned char *out)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char ad[AD_LEN];

	chunk_nonce(nonce, w->nonce_prefix, w->index, final);
	chunk_ad(ad, w->header_tag, w->index, final);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, sizeof(ad), NULL, nonce,
	                                           w->chunk_key);
	w->index++;
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
	if (w->index + emit + 1 >= INDEX_LIMIT) {
		mf_mailcrypt_writer_clear(w);
		return mf_error_set(err, "message too large for the ciphertext format");
	}
	while (len > 0) {
		if (w->buffered == c) {
			writer_seal(w, w->buf, c, false, out + done);
			done += stride;
			w->buffered = 0;
		}
		if (w->buffered == 0 && len > c) {
			/* Whole chunk straight from the caller's data, no copy. */
			writer_seal(w, p, c, false, out + done);
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
	writer_seal(w, w->buf, w->buffered, true, out);
	*out_len_r = need;
	mf_mailcrypt_writer_clear(w);
	return 0;
}

/* ---- reader ---- */

void mf_mailcrypt_reader_clear(struct mf_mailcrypt_reader *r)
{
	sodium_memzero(r->chunk_key, sizeof(r->chunk_key));
	r->active = false;
}

int mf_mailcrypt_reader_init(struct mf_mailcrypt_reader *r, const void *header, size_t header_len,
                             uint64_t ct_size, const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                             const unsigned char sk[crypto_box_SECRETKEYBYTES],
                             struct mf_error *err)
{
	const unsigned char *h = header;
	unsigned char content_key[CONTENT_KEY_LEN];
	unsigned char id[MF_ACCOUNT_KEY_ID_BYTES], tag[TAG_LEN];
	char want_hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1], have_hex[2 * MF_ACCOUNT_KEY_ID_BYTES + 1];

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
	mf_account_key_id(id, pk);
	if (memcmp(id, h + OFF_KEYID, sizeof(id)) != 0) {
		sodium_bin2hex(want_hex, sizeof(want_hex), h + OFF_KEYID, sizeof(id));
		sodium_bin2hex(have_hex, sizeof(have_hex), id, sizeof(id));
		return mf_error_set(err, "message is sealed to account key %s, not to key %s",
		                    want_hex, have_hex);
	}
	if (crypto_box_seal_open(content_key, h + OFF_SEALED, SEALED_LEN, pk, sk) != 0)
		return mf_error_set(err, "cannot open content key (wrong account secret key or "
		                         "corrupted header)");
	header_tag(tag, h, content_key);
	if (sodium_memcmp(tag, h + OFF_TAG, TAG_LEN) != 0) {
		sodium_memzero(content_key, sizeof(content_key));
		return mf_error_set(err, "ciphertext header failed authentication");
	}
	crypto_kdf_derive_from_key(r->chunk_key, sizeof(r->chunk_key), KDF_ID_CHUNK, KDF_CONTEXT,
	                           content_key);
	sodium_memzero(content_key, sizeof(content_key));
	memcpy(r->header_tag, tag, TAG_LEN);
	memcpy(r->nonce_prefix, h + OFF_PREFIX, 16);
	r->active = true;
	return 0;
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

static int chunk_decrypt(const struct mf_mailcrypt_reader *r, uint64_t index, bool final,
                         const unsigned char *ct, size_t ct_len, unsigned char *out)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char ad[AD_LEN];

	chunk_nonce(nonce, r->nonce_prefix, index, final);
	chunk_ad(ad, r->header_tag, index, final);
	/* out == NULL: verify only. */
	if (out == NULL)
		return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		    NULL, NULL, ct, ct_len - MF_MAILCRYPT_CHUNK_OVERHEAD,
		    ct + ct_len - MF_MAILCRYPT_CHUNK_OVERHEAD, ad, sizeof(ad), nonce, r->chunk_key);
	return crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, ct_len, ad,
	                                                  sizeof(ad), nonce, r->chunk_key);
}

int mf_mailcrypt_open_chunk(const struct mf_mailcrypt_reader *r, uint64_t index, const void *ct,
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
	if (chunk_decrypt(r, index, chunk.final, ct, ct_len, out) == 0) {
		*out_len_r = chunk.pt_len;
		return 0;
	}
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
