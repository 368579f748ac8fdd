/*
 * test-mailcrypt.c - the stored-mail ciphertext format (lib/mailcrypt.c):
 * round trips, random access, and detection of every kind of damage
 * (flipped bytes, truncation, extension, swapped or foreign chunks, wrong
 * key), each for format version 1 (XChaCha20-Poly1305) and version 2
 * (AES-256-GCM); version 2 chunks checked against the documented layout
 * with OpenSSL directly; readers copied and cleared independently; with an
 * OpenSSL configuration that offers no AES-256-GCM, version 2 fails closed
 * with a named error (this program runs itself again for that, with
 * OPENSSL_CONF set) while version 1 keeps working.  Prints TAP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "mf-crypto.h"
#include "mf-mailcrypt.h"
#include "tap.h"

struct keys {
	unsigned char pk[32], sk[32];
	unsigned int version; /* format the tests write */
};

struct ct {
	unsigned char *data;
	size_t len;
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

/* Encrypt pt feeding it in pieces of random size (max_piece 0: one piece). */
static struct ct encrypt(const struct keys *k, const unsigned char *pt, size_t len,
                         uint32_t chunk_size, size_t max_piece)
{
	struct mf_mailcrypt_writer *w = xmalloc(sizeof(*w));
	struct mf_error err;
	struct ct c;
	size_t cap = MF_MAILCRYPT_HEADER_SIZE + MF_MAILCRYPT_UPDATE_OUT_MAX(len) +
	             MF_MAILCRYPT_FINAL_OUT_MAX;
	size_t off = 0, piece, n;

	c.data = xmalloc(cap);
	if (mf_mailcrypt_writer_init_version(w, k->pk, k->version, chunk_size, c.data, &err) < 0) {
		fprintf(stderr, "writer_init: %s\n", err.msg);
		exit(2);
	}
	c.len = MF_MAILCRYPT_HEADER_SIZE;
	while (off < len) {
		piece = max_piece == 0 ? len - off : 1 + randombytes_uniform((uint32_t)max_piece);
		if (piece > len - off)
			piece = len - off;
		if (mf_mailcrypt_writer_update(w, pt + off, piece, c.data + c.len, cap - c.len, &n,
		                               &err) < 0) {
			fprintf(stderr, "writer_update: %s\n", err.msg);
			exit(2);
		}
		c.len += n;
		off += piece;
	}
	if (mf_mailcrypt_writer_final(w, c.data + c.len, cap - c.len, &n, &err) < 0) {
		fprintf(stderr, "writer_final: %s\n", err.msg);
		exit(2);
	}
	c.len += n;
	free(w);
	return c;
}

/* 0 when ct decrypts to exactly pt; err filled otherwise. */
static int decrypt_equals(const struct keys *k, const unsigned char *ct, size_t ct_len,
                          const unsigned char *pt, size_t pt_len, struct mf_error *err)
{
	unsigned char *out = xmalloc(ct_len);
	size_t n;
	int ret;

	ret = mf_mailcrypt_decrypt_buffer(ct, ct_len, k->pk, k->sk, out, ct_len, &n, err);
	if (ret == 0 && (n != pt_len || memcmp(out, pt, n) != 0))
		ret = mf_error_set(err, "decrypted text differs");
	free(out);
	return ret;
}

static void test_round_trips(const struct keys *k)
{
	static const size_t sizes[] = {0,     1,      100,       65535,        65536,
	                               65537, 131072, 3 * 65536, 3 * 65536 + 1};
	unsigned char *pt = xmalloc(4 * 65536 + 1000);
	struct mf_error err = {""}; /* printed also when nothing failed */
	uint64_t ptsz;
	size_t i, len;
	struct ct c;

	randombytes_buf(pt, 4 * 65536 + 1000);
	for (i = 0; i < MF_N_ELEMENTS(sizes) + 8; i++) {
		len = i < MF_N_ELEMENTS(sizes) ? sizes[i] : randombytes_uniform(4 * 65536 + 1000);
		c = encrypt(k, pt, len, MF_MAILCRYPT_CHUNK_SIZE, i % 2 ? 0 : 70000);
		ok(c.len == mf_mailcrypt_ciphertext_size(len),
		   "size %zu: ciphertext size %zu is predicted", len, c.len);
		ok(mf_mailcrypt_plaintext_size(NULL, c.len, &ptsz, &err) == 0 && ptsz == len,
		   "size %zu: plaintext size computed from ciphertext size", len);
		ok(mf_mailcrypt_is_ciphertext(c.data, c.len), "size %zu: recognised by magic", len);
		ok(decrypt_equals(k, c.data, c.len, pt, len, &err) == 0, "size %zu: round trip %s",
		   len, err.msg);
		free(c.data);
	}
	/* Byte-at-a-time feeding and small chunk sizes. */
	c = encrypt(k, pt, 5000, 1024, 1);
	ok(decrypt_equals(k, c.data, c.len, pt, 5000, &err) == 0,
	   "byte-at-a-time feeding with 1 KiB chunks round trips");
	free(c.data);
	c = encrypt(k, pt, 3072, 1024, 1024);
	ok(decrypt_equals(k, c.data, c.len, pt, 3072, &err) == 0 &&
	       c.len == MF_MAILCRYPT_HEADER_SIZE + 3072 + 3 * 16,
	   "exact multiple of the chunk size: no empty trailing chunk");
	free(c.data);
	free(pt);
}

static void test_random_access(const struct keys *k)
{
	const size_t len = 3 * 65536 + 12345;
	unsigned char *pt = xmalloc(len), *buf = xmalloc(MF_MAILCRYPT_CHUNK_CT_MAX);
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err = {""}; /* printed also when nothing failed */
	struct ct c;
	uint64_t i;
	size_t n;
	int good = 0, inplace = 0;
	static const uint64_t offsets[] = {0, 1, 65535, 65536, 65537, 3 * 65536, 3 * 65536 + 12344};

	randombytes_buf(pt, len);
	c = encrypt(k, pt, len, MF_MAILCRYPT_CHUNK_SIZE, 4096);
	ok(mf_mailcrypt_reader_init(&r, c.data, MF_MAILCRYPT_HEADER_SIZE, c.len, k->pk, k->sk,
	                            &err) == 0,
	   "reader opens the header alone: %s", err.msg);
	ok(r.pt_size == len && r.chunk_count == 4 && r.info.chunk_size == 65536,
	   "reader reports size, chunk count and chunk size");
	/* Backwards, so no chunk depends on the one before it. */
	for (i = r.chunk_count; i-- > 0;) {
		if (mf_mailcrypt_chunk_at(&r, i, &ch, &err) < 0)
			break;
		memcpy(buf, c.data + ch.ct_offset, ch.ct_len);
		if (mf_mailcrypt_open_chunk(&r, i, buf, ch.ct_len, buf + 0, ch.pt_len, &n, &err) ==
		        0 &&
		    n == ch.pt_len && memcmp(buf, pt + ch.pt_offset, n) == 0)
			inplace++;
		if (mf_mailcrypt_open_chunk(&r, i, c.data + ch.ct_offset, ch.ct_len, buf,
		                            MF_MAILCRYPT_CHUNK_CT_MAX, &n, &err) == 0 &&
		    n == ch.pt_len && memcmp(buf, pt + ch.pt_offset, n) == 0 &&
		    ch.final == (i == 3))
			good++;
	}
	ok(good == 4, "every chunk decrypted alone equals its plaintext slice");
	ok(inplace == 4, "in-place decryption of every chunk");
	for (i = 0; i < MF_N_ELEMENTS(offsets); i++) {
		ok(mf_mailcrypt_chunk_for_offset(&r, offsets[i], &ch, &err) == 0 &&
		       ch.pt_offset <= offsets[i] && offsets[i] < ch.pt_offset + ch.pt_len &&
		       ch.ct_offset == MF_MAILCRYPT_HEADER_SIZE + ch.index * (65536 + 16),
		   "plaintext offset %llu maps to chunk %llu", (unsigned long long)offsets[i],
		   (unsigned long long)ch.index);
	}
	ok(mf_mailcrypt_chunk_for_offset(&r, len, &ch, &err) < 0, "offset past the end refused");
	ok(mf_mailcrypt_chunk_at(&r, 4, &ch, &err) < 0, "chunk index past the end refused");
	ok(mf_mailcrypt_open_chunk(&r, 1, c.data + MF_MAILCRYPT_HEADER_SIZE, 65536 + 16, buf,
	                           MF_MAILCRYPT_CHUNK_CT_MAX, &n, &err) < 0 &&
	       strstr(err.msg, "chunk 1 failed authentication") != NULL,
	   "chunk 0 presented as chunk 1 refused: %s", err.msg);
	ok(mf_mailcrypt_open_chunk(&r, 0, c.data + MF_MAILCRYPT_HEADER_SIZE, 65536, buf,
	                           MF_MAILCRYPT_CHUNK_CT_MAX, &n, &err) < 0,
	   "short chunk refused: %s", err.msg);
	ok(mf_mailcrypt_open_chunk(&r, 0, c.data + MF_MAILCRYPT_HEADER_SIZE, 65536 + 16, buf, 100,
	                           &n, &err) < 0,
	   "small output buffer refused");
	mf_mailcrypt_reader_clear(&r);
	ok(mf_mailcrypt_chunk_at(&r, 0, &ch, &err) < 0, "cleared reader refuses to work");

	/* Empty message. */
	free(c.data);
	c = encrypt(k, pt, 0, MF_MAILCRYPT_CHUNK_SIZE, 0);
	ok(mf_mailcrypt_reader_init(&r, c.data, c.len, c.len, k->pk, k->sk, &err) == 0 &&
	       r.pt_size == 0 && r.chunk_count == 1 &&
	       mf_mailcrypt_chunk_for_offset(&r, 0, &ch, &err) == 0 &&
	       mf_mailcrypt_open_chunk(&r, 0, c.data + ch.ct_offset, ch.ct_len, buf, 0, &n, &err) ==
	           0 &&
	       n == 0,
	   "empty message: one empty final chunk");
	mf_mailcrypt_reader_clear(&r);
	free(c.data);
	free(pt);
	free(buf);
}

/* Every flipped byte of a whole ciphertext is detected by the reader. */
static void flip_every_byte(const struct keys *k, size_t len, uint32_t chunk)
{
	unsigned char *pt = xmalloc(len);
	struct mf_error err;
	struct ct c;
	size_t i, caught = 0;

	randombytes_buf(pt, len);
	c = encrypt(k, pt, len, chunk, 300);
	for (i = 0; i < c.len; i++) {
		unsigned char bit = (unsigned char)(1u << (i % 8));
		c.data[i] ^= bit;
		caught += decrypt_equals(k, c.data, c.len, pt, len, &err) < 0;
		c.data[i] ^= bit;
	}
	ok(caught == c.len, "%zu-byte message, %u-byte chunks: all %zu flipped bytes detected", len,
	   chunk, c.len);
	ok(decrypt_equals(k, c.data, c.len, pt, len, &err) == 0, "restored ciphertext decrypts");
	free(c.data);
	free(pt);
}

static void test_truncation(const struct keys *k, uint32_t chunk)
{
	const size_t len = 3 * chunk + 100, stride = chunk + 16;
	unsigned char *pt = xmalloc(len);
	struct mf_error err;
	struct ct c;
	size_t cut, j, caught = 0, tries = 0;

	randombytes_buf(pt, len);
	c = encrypt(k, pt, len, chunk, 0);
	for (j = 1; j <= 3; j++) {
		cut = MF_MAILCRYPT_HEADER_SIZE + j * stride;
		ok(decrypt_equals(k, c.data, cut, pt, len, &err) < 0 &&
		       strstr(err.msg, "truncated") != NULL,
		   "%u-byte chunks: cut after chunk %zu detected: %s", chunk, j - 1, err.msg);
	}
	for (cut = 0; cut < c.len; cut += 1 + cut / 7) {
		tries++;
		caught += decrypt_equals(k, c.data, cut, pt, len, &err) < 0;
	}
	for (j = 0; j <= 3; j++) {
		/* Just before and just after every boundary, and inside the tag. */
		size_t b = MF_MAILCRYPT_HEADER_SIZE + j * stride;
		size_t cuts[] = {b - 1, b + 1, b + 15, b + 16, b + stride / 2};
		size_t m;
		for (m = 0; m < MF_N_ELEMENTS(cuts); m++) {
			if (cuts[m] >= c.len)
				continue;
			tries++;
			caught += decrypt_equals(k, c.data, cuts[m], pt, len, &err) < 0;
		}
	}
	ok(caught == tries, "%u-byte chunks: %zu/%zu truncations (header, mid-chunk) detected",
	   chunk, caught, tries);
	free(c.data);
	free(pt);
}

static void test_splicing(const struct keys *k)
{
	const uint32_t chunk = 1024;
	const size_t len = 3 * chunk, stride = chunk + 16, h = MF_MAILCRYPT_HEADER_SIZE;
	unsigned char *pt = xmalloc(len), *tmp = xmalloc(stride), *big;
	struct mf_error err;
	struct ct c, d;

	randombytes_buf(pt, len);
	c = encrypt(k, pt, len, chunk, 0);
	d = encrypt(k, pt, len, chunk, 0);
	ok(c.len == d.len && memcmp(c.data + h, d.data + h, c.len - h) != 0,
	   "same plaintext, same key: different ciphertexts");

	/* Swap chunks 0 and 1. */
	memcpy(tmp, c.data + h, stride);
	memcpy(c.data + h, c.data + h + stride, stride);
	memcpy(c.data + h + stride, tmp, stride);
	ok(decrypt_equals(k, c.data, c.len, pt, len, &err) < 0 &&
	       strstr(err.msg, "chunk 0 failed authentication") != NULL,
	   "two chunks swapped: %s", err.msg);
	memcpy(c.data + h + stride, c.data + h, stride);
	memcpy(c.data + h, tmp, stride);
	ok(decrypt_equals(k, c.data, c.len, pt, len, &err) == 0, "swapped back: decrypts again");

	/* Chunk 1 from another message of the same account, same plaintext. */
	memcpy(tmp, c.data + h + stride, stride);
	memcpy(c.data + h + stride, d.data + h + stride, stride);
	ok(decrypt_equals(k, c.data, c.len, pt, len, &err) < 0 &&
	       strstr(err.msg, "chunk 1 failed authentication") != NULL,
	   "chunk from another message: %s", err.msg);
	memcpy(c.data + h + stride, tmp, stride);

	/* Header of another message in front of our chunks. */
	memcpy(tmp, c.data, h);
	memcpy(c.data, d.data, h);
	ok(decrypt_equals(k, c.data, c.len, pt, len, &err) < 0, "header of another message: %s",
	   err.msg);
	memcpy(c.data, tmp, h);

	/* Trailing data: a repeated full chunk, and a few stray bytes. */
	big = xmalloc(c.len + stride);
	memcpy(big, c.data, c.len);
	memcpy(big + c.len, c.data + h, stride);
	ok(decrypt_equals(k, big, c.len + stride, pt, len, &err) < 0 &&
	       strstr(err.msg, "trailing data after final chunk 2") != NULL,
	   "chunk appended after the final chunk: %s", err.msg);
	memset(big + c.len, 'x', 20);
	ok(decrypt_equals(k, big, c.len + 20, pt, len, &err) < 0, "stray bytes appended: %s",
	   err.msg);
	free(big);

	/* Drop the middle chunk: sizes still line up. */
	memmove(c.data + h + stride, c.data + h + 2 * stride, stride);
	ok(decrypt_equals(k, c.data, c.len - stride, pt, len, &err) < 0, "middle chunk removed: %s",
	   err.msg);
	free(c.data);
	free(d.data);
	free(tmp);
	free(pt);
}

static void test_keys_and_header(const struct keys *k)
{
	struct keys other;
	unsigned char pt[200], *bad;
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_info info;
	struct mf_error err;
	struct ct c;
	static const char plain[] =
	    "Return-Path: <a@example.org>\r\nFrom: a@example.org\r\n\r\nhi\r\n";
	uint64_t ptsz;

	randombytes_buf(pt, sizeof(pt));
	mf_account_keypair(other.pk, other.sk);
	c = encrypt(k, pt, sizeof(pt), MF_MAILCRYPT_CHUNK_SIZE, 0);
	ok(decrypt_equals(&other, c.data, c.len, pt, sizeof(pt), &err) < 0 &&
	       strstr(err.msg, "is sealed to account key") != NULL,
	   "another account's key pair refused: %s", err.msg);
	memcpy(other.pk, k->pk, 32);
	ok(decrypt_equals(&other, c.data, c.len, pt, sizeof(pt), &err) < 0 &&
	       strstr(err.msg, "cannot open content key") != NULL,
	   "right public key, wrong secret key refused: %s", err.msg);

	ok(!mf_mailcrypt_is_ciphertext(plain, strlen(plain)), "plaintext mail is not ciphertext");
	ok(!mf_mailcrypt_is_ciphertext(c.data, 7), "7 bytes are not enough for the magic");
	ok(mf_mailcrypt_peek(plain, strlen(plain), &info, &err) < 0 &&
	       strstr(err.msg, "bad magic") != NULL,
	   "peek on plaintext: %s", err.msg);
	ok(mf_mailcrypt_peek(c.data, c.len, &info, &err) == 0 && info.version == k->version &&
	       info.header_size == 136 && info.chunk_size == 65536,
	   "peek reads version %u, header size and chunk size", k->version);
	ok(mf_mailcrypt_peek(c.data, 10, &info, &err) < 0 && strstr(err.msg, "truncated") != NULL,
	   "peek on 10 bytes: %s", err.msg);
	bad = xmalloc(c.len);
	memcpy(bad, c.data, c.len);
	bad[8] = 4;
	ok(mf_mailcrypt_peek(bad, c.len, &info, &err) < 0 &&
	       strstr(err.msg, "unsupported ciphertext version 4") != NULL,
	   "version 4: %s", err.msg);
	bad[8] = 3;
	ok(mf_mailcrypt_peek(bad, c.len, &info, &err) < 0 &&
	       strstr(err.msg, "header length 136") != NULL,
	   "version 3 with this header length: %s", err.msg);
	bad[8] = (unsigned char)(k->version == 1 ? 2 : 1);
	ok(decrypt_equals(k, bad, c.len, pt, sizeof(pt), &err) < 0 &&
	       strstr(err.msg, "header failed authentication") != NULL,
	   "version byte %u changed to %u: %s", k->version, bad[8], err.msg);
	bad[8] = (unsigned char)k->version;
	bad[15] = 1; /* chunk size 65536 + 2^24 */
	ok(mf_mailcrypt_peek(bad, c.len, &info, &err) < 0 && strstr(err.msg, "chunk size") != NULL,
	   "huge chunk size: %s", err.msg);
	free(bad);
	ok(mf_mailcrypt_reader_init(&r, c.data, 100, c.len, k->pk, k->sk, &err) < 0 &&
	       strstr(err.msg, "truncated") != NULL,
	   "short header buffer: %s", err.msg);
	ok(mf_mailcrypt_plaintext_size(NULL, 136 + 15, &ptsz, &err) < 0 &&
	       mf_mailcrypt_plaintext_size(NULL, 136 + 65552 + 5, &ptsz, &err) < 0 &&
	       mf_mailcrypt_plaintext_size(NULL, 136 + 65552 + 16, &ptsz, &err) < 0 &&
	       mf_mailcrypt_plaintext_size(NULL, 136 + 65552 + 17, &ptsz, &err) == 0 &&
	       ptsz == 65537,
	   "impossible ciphertext sizes refused, possible ones computed");
	free(c.data);
}

static void test_writer_misuse(const struct keys *k)
{
	struct mf_mailcrypt_writer *wp = xmalloc(sizeof(*wp));
	unsigned char hdr[MF_MAILCRYPT_HEADER_SIZE], small[100], pt[3000];
	unsigned char zero_pk[32] = {0};
	struct mf_error err;
	size_t n;

	memset(pt, 'a', sizeof(pt));
	ok(mf_mailcrypt_writer_init_chunk(wp, k->pk, 512, hdr, &err) < 0,
	   "chunk size below the minimum refused");
	ok(mf_mailcrypt_writer_init(wp, zero_pk, hdr, &err) < 0, "all-zero public key refused: %s",
	   err.msg);
	ok(mf_mailcrypt_writer_init_version(wp, k->pk, k->version, 1024, hdr, &err) == 0 &&
	       mf_mailcrypt_writer_update(wp, pt, sizeof(pt), small, sizeof(small), &n, &err) < 0 &&
	       strstr(err.msg, "too small") != NULL,
	   "small output buffer refused: %s", err.msg);
	ok(mf_mailcrypt_writer_update(wp, pt, 1, small, sizeof(small), &n, &err) < 0,
	   "writer refuses work after an error");
	ok(mf_mailcrypt_writer_init_version(wp, k->pk, k->version, 1024, hdr, &err) == 0 &&
	       mf_mailcrypt_writer_update(wp, pt, 1024, small, sizeof(small), &n, &err) == 0 &&
	       n == 0,
	   "one full chunk is held back until more data or final");
	ok(mf_mailcrypt_writer_final(wp, small, sizeof(small), &n, &err) < 0,
	   "final with a small buffer refused");
	mf_mailcrypt_writer_clear(wp);
	ok(sodium_is_zero(wp->chunk_key, sizeof(wp->chunk_key)), "clear wipes the chunk key");
	free(wp);
}

/* The plugin sizes its output buffer with MF_MAILCRYPT_UPDATE_OUT_MAX(piece):
   that must hold for every piece size, whatever is already buffered. */
static void test_out_max(const struct keys *k)
{
	static const uint32_t chunks[] = {MF_MAILCRYPT_CHUNK_MIN, 4096, MF_MAILCRYPT_CHUNK_SIZE};
	struct mf_mailcrypt_writer *w = xmalloc(sizeof(*w));
	unsigned char hdr[MF_MAILCRYPT_HEADER_SIZE];
	const size_t max_piece = 3 * 65536 + 7;
	unsigned char *in = xmalloc(max_piece),
	              *out = xmalloc(MF_MAILCRYPT_UPDATE_OUT_MAX(max_piece));
	struct mf_error err;
	size_t i, j, piece, n, failures = 0;

	memset(in, 'm', max_piece);
	for (i = 0; i < MF_N_ELEMENTS(chunks); i++) {
		if (mf_mailcrypt_writer_init_version(w, k->pk, k->version, chunks[i], hdr, &err) <
		    0)
			failures++;
		for (j = 0; j < 300; j++) {
			piece =
			    j % 3 == 0 ? chunks[i] : 1 + randombytes_uniform((uint32_t)max_piece);
			if (mf_mailcrypt_writer_update(w, in, piece, out,
			                               MF_MAILCRYPT_UPDATE_OUT_MAX(piece), &n,
			                               &err) < 0 ||
			    n > MF_MAILCRYPT_UPDATE_OUT_MAX(piece)) {
				failures++;
				break;
			}
		}
		mf_mailcrypt_writer_clear(w);
	}
	ok(failures == 0, "MF_MAILCRYPT_UPDATE_OUT_MAX(len) always suffices for one update");
	free(in);
	free(out);
	free(w);
}

/* A reader for a (claimed) ciphertext of any size up to 2^64 - 1: the
   offsets of the last chunk stay inside it, nothing wraps around. */
static void test_huge_sizes(const struct keys *k)
{
	static const uint64_t sizes[] = {UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63,
	                                 ((uint64_t)1 << 40) * 1040 + 136 + 17};
	static const uint32_t chunks[] = {1024, MF_MAILCRYPT_CHUNK_SIZE};
	unsigned char header[MF_MAILCRYPT_HEADER_SIZE];
	struct mf_mailcrypt_writer w;
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err = {""};
	size_t i, j;

	for (j = 0; j < MF_N_ELEMENTS(chunks); j++) {
		if (mf_mailcrypt_writer_init_version(&w, k->pk, k->version, chunks[j], header,
		                                     &err) < 0) {
			ok(0, "writer_init: %s", err.msg);
			continue;
		}
		mf_mailcrypt_writer_clear(&w);
		for (i = 0; i < MF_N_ELEMENTS(sizes); i++) {
			uint64_t size = sizes[i];
			int good;

			if (mf_mailcrypt_reader_init(&r, header, sizeof(header), size, k->pk, k->sk,
			                             &err) < 0) {
				/* a size that cannot be a ciphertext is refused, not wrapped */
				ok(strstr(err.msg, "ciphertext") != NULL,
				   "chunk %u, size %llu refused with a reason: %s", chunks[j],
				   (unsigned long long)size, err.msg);
				continue;
			}
			good = r.chunk_count > 0 && r.pt_size < size &&
			       mf_mailcrypt_chunk_at(&r, r.chunk_count - 1, &ch, &err) == 0 &&
			       ch.final && ch.ct_offset + ch.ct_len == size &&
			       ch.pt_offset + ch.pt_len == r.pt_size && ch.ct_len >= ch.pt_len &&
			       ch.ct_len <= MF_MAILCRYPT_CHUNK_CT_MAX &&
			       mf_mailcrypt_chunk_at(&r, r.chunk_count, &ch, &err) < 0;
			ok(good, "chunk %u, size %llu: the last chunk ends exactly at the end",
			   chunks[j], (unsigned long long)size);
			if (r.pt_size > 0)
				ok(mf_mailcrypt_chunk_for_offset(&r, r.pt_size - 1, &ch, &err) ==
				           0 &&
				       ch.final &&
				       mf_mailcrypt_chunk_for_offset(&r, r.pt_size, &ch, &err) < 0,
				   "chunk %u, size %llu: the last plaintext byte is in the final "
				   "chunk, the next is out of range",
				   chunks[j], (unsigned long long)size);
			mf_mailcrypt_reader_clear(&r);
		}
	}
}

/* Version 2 as documented in mf-mailcrypt.h, rebuilt with OpenSSL and
   libsodium directly: K from the sealed box, K_chunk = KDF(2, "mfmail02",
   K), nonce LE64(i) || 00 00 00 f, ad = header tag || LE64(i) || final. */
static int v2_open_by_spec(const struct keys *k, const unsigned char *ct, size_t ct_len,
                           uint32_t chunk, uint64_t i, unsigned char *out, size_t *out_len_r)
{
	unsigned char key[32], kc[32], nonce[12] = {0}, ad[16 + 8 + 1], tag[16];
	uint64_t count, pt_size;
	size_t off, len;
	struct mf_mailcrypt_info info = {2, 136, chunk, 0};
	struct mf_error err;
	EVP_CIPHER_CTX *ctx;
	bool final;
	int n, ret = -1;

	if (mf_mailcrypt_plaintext_size(&info, ct_len, &pt_size, &err) < 0 ||
	    crypto_box_seal_open(key, ct + 40, 80, k->pk, k->sk) != 0)
		return -1;
	count = pt_size / chunk + (pt_size % chunk != 0) + (pt_size == 0);
	final = i == count - 1;
	off = 136 + (size_t)i * (chunk + 16);
	len = final ? (size_t)(pt_size - i * chunk) : chunk;
	crypto_kdf_derive_from_key(kc, sizeof(kc), 2, "mfmail02", key);
	for (unsigned int b = 0; b < 8; b++) {
		nonce[b] = (unsigned char)(i >> (8 * b));
		ad[16 + b] = nonce[b];
	}
	nonce[11] = final ? 0x80 : 0;
	memcpy(ad, ct + 120, 16);
	ad[24] = final;
	memcpy(tag, ct + off + len, 16);
	ctx = EVP_CIPHER_CTX_new();
	if (ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kc, nonce) == 1 &&
	    EVP_DecryptUpdate(ctx, NULL, &n, ad, sizeof(ad)) == 1 &&
	    (len == 0 || EVP_DecryptUpdate(ctx, out, &n, ct + off, (int)len) == 1) &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
	    EVP_DecryptFinal_ex(ctx, out + len, &n) == 1)
		ret = 0;
	EVP_CIPHER_CTX_free(ctx);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(kc, sizeof(kc));
	*out_len_r = len;
	return ret;
}

static void test_v2_layout(const struct keys *k)
{
	const size_t len = 2 * 1024 + 300;
	unsigned char *pt = xmalloc(len), out[1024 + 16];
	struct keys k2 = *k;
	size_t n;
	uint64_t i;
	int good = 0;
	struct ct c;

	randombytes_buf(pt, len);
	k2.version = 2;
	c = encrypt(&k2, pt, len, 1024, 0);
	for (i = 0; i < 3; i++) {
		if (v2_open_by_spec(k, c.data, c.len, 1024, i, out, &n) == 0 &&
		    memcmp(out, pt + i * 1024, n) == 0 && n == (i < 2 ? 1024 : 300))
			good++;
	}
	ok(c.data[8] == 2 && good == 3,
	   "version 2: every chunk opens with AES-256-GCM as the format documents it");
	free(c.data);
	c = encrypt(&k2, pt, 0, 1024, 0);
	ok(v2_open_by_spec(k, c.data, c.len, 1024, 0, out, &n) == 0 && n == 0,
	   "version 2: an empty message is one empty final chunk");
	free(c.data);
	free(pt);
}

/* Defaults, the version switch, and the version 2 chunk count limit. */
static void test_versions(const struct keys *k)
{
	struct mf_mailcrypt_writer *w = xmalloc(sizeof(*w));
	unsigned char hdr[MF_MAILCRYPT_HEADER_SIZE], out[2 * (1024 + 16)], in[2048] = {0};
	struct mf_mailcrypt_info info = {2, 136, 1024, 0};
	struct mf_error err = {""};
	uint64_t ptsz, big;
	size_t n;

	ok(mf_mailcrypt_writer_init(w, k->pk, hdr, &err) == 0 && hdr[8] == 2,
	   "writers produce version 2 by default");
	mf_mailcrypt_writer_clear(w);
	ok(mf_mailcrypt_writer_init_version(w, k->pk, 1, 65536, hdr, &err) == 0 && hdr[8] == 1,
	   "version 1 on request");
	mf_mailcrypt_writer_clear(w);
	ok(mf_mailcrypt_writer_init_version(w, k->pk, 3, 65536, hdr, &err) < 0 &&
	       strstr(err.msg, "version 3") != NULL,
	   "version 3 refused: %s", err.msg);
	mf_mailcrypt_writer_clear(w);

	/* 2^32 chunks of 1 KiB: the most version 2 allows; one more is refused */
	big = 136 + ((uint64_t)1 << 32) * (1024 + 16);
	ok(mf_mailcrypt_plaintext_size(&info, big, &ptsz, &err) == 0 &&
	       ptsz == ((uint64_t)1 << 32) * 1024,
	   "version 2: a ciphertext of 2^32 chunks is a valid size");
	ok(mf_mailcrypt_plaintext_size(&info, big + 17, &ptsz, &err) < 0 &&
	       strstr(err.msg, "2^32") != NULL,
	   "version 2: 2^32 + 1 chunks refused: %s", err.msg);
	info.version = 1;
	ok(mf_mailcrypt_plaintext_size(&info, big + 17, &ptsz, &err) == 0,
	   "version 1 has no such limit");

	/* the writer refuses to go past chunk 2^32 - 1 */
	if (mf_mailcrypt_writer_init_version(w, k->pk, 2, 1024, hdr, &err) == 0) {
		w->index = ((uint64_t)1 << 32) - 2; /* chunks 0 .. 2^32 - 3 written */
		ok(mf_mailcrypt_writer_update(w, in, 1025, out, sizeof(out), &n, &err) == 0 &&
		       n == 1040 && mf_mailcrypt_writer_final(w, out, sizeof(out), &n, &err) == 0,
		   "version 2: chunks 2^32 - 2 and 2^32 - 1 (final) are written");
	}
	if (mf_mailcrypt_writer_init_version(w, k->pk, 2, 1024, hdr, &err) == 0) {
		w->index = ((uint64_t)1 << 32) - 1;
		ok(mf_mailcrypt_writer_update(w, in, 1025, out, sizeof(out), &n, &err) < 0 &&
		       strstr(err.msg, "too large") != NULL,
		   "version 2: a message of more than 2^32 chunks is refused: %s", err.msg);
		mf_mailcrypt_writer_clear(w);
	}
	free(w);
}

/* A reader copied with mf_mailcrypt_reader_copy works on its own and is
   cleared on its own (ASan finds a shared cipher context). */
static void test_reader_copy(const struct keys *k)
{
	const size_t len = 3000;
	unsigned char *pt = xmalloc(len), out[1024];
	struct mf_mailcrypt_reader r, copy;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err = {""};
	struct ct c;
	size_t n;
	int good = 0;

	randombytes_buf(pt, len);
	c = encrypt(k, pt, len, 1024, 0);
	if (mf_mailcrypt_reader_init(&r, c.data, c.len, c.len, k->pk, k->sk, &err) == 0) {
		good += mf_mailcrypt_chunk_at(&r, 0, &ch, &err) == 0 &&
		        mf_mailcrypt_open_chunk(&r, 0, c.data + ch.ct_offset, ch.ct_len, out,
		                                sizeof(out), &n, &err) == 0 &&
		        memcmp(out, pt, n) == 0;
		mf_mailcrypt_reader_copy(&copy, &r);
		mf_mailcrypt_reader_clear(&r);
		good += mf_mailcrypt_chunk_at(&copy, 2, &ch, &err) == 0 &&
		        mf_mailcrypt_open_chunk(&copy, 2, c.data + ch.ct_offset, ch.ct_len, out,
		                                sizeof(out), &n, &err) == 0 &&
		        n == len - 2048 && memcmp(out, pt + 2048, n) == 0;
		mf_mailcrypt_reader_clear(&copy);
		mf_mailcrypt_reader_clear(&copy);
	}
	ok(good == 2, "v%u: a copied reader opens chunks after the original is cleared: %s",
	   k->version, err.msg);
	free(c.data);
	free(pt);
}

/* mf_mailcrypt_reader_copy_sized: another stored copy of the same header,
   sized and checked as mf_mailcrypt_reader_init does. */
static void test_reader_copy_sized(const struct keys *k)
{
	const size_t len = 3000;
	unsigned char *pt = xmalloc(len), out[1024];
	struct mf_mailcrypt_reader r, copy, again;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err = {""};
	struct ct c;
	size_t n;

	randombytes_buf(pt, len);
	c = encrypt(k, pt, len, 1024, 0);
	if (mf_mailcrypt_reader_init(&r, c.data, c.len, c.len, k->pk, k->sk, &err) < 0) {
		ok(0, "v%u: reader: %s", k->version, err.msg);
		free(c.data);
		free(pt);
		return;
	}
	ok(mf_mailcrypt_reader_copy_sized(&copy, &r, c.len, &err) == 0 &&
	       copy.pt_size == r.pt_size && copy.chunk_count == r.chunk_count &&
	       copy.ct_size == c.len && mf_mailcrypt_chunk_at(&copy, 2, &ch, &err) == 0 &&
	       mf_mailcrypt_open_chunk(&copy, 2, c.data + ch.ct_offset, ch.ct_len, out, sizeof(out),
	                               &n, &err) == 0 &&
	       n == len - 2048 && memcmp(out, pt + 2048, n) == 0,
	   "v%u: a reader copied for the same size has the same layout and opens chunks: %s",
	   k->version, err.msg);
	mf_mailcrypt_reader_clear(&copy);
	ok(mf_mailcrypt_reader_init(&again, c.data, c.len, c.len - 1000, k->pk, k->sk, &err) == 0 &&
	       mf_mailcrypt_reader_copy_sized(&copy, &r, c.len - 1000, &err) == 0 &&
	       copy.pt_size == again.pt_size && copy.chunk_count == again.chunk_count,
	   "v%u: for another size it has the layout reader_init gives", k->version);
	mf_mailcrypt_reader_clear(&again);
	mf_mailcrypt_reader_clear(&copy);
	ok(mf_mailcrypt_reader_copy_sized(&copy, &r, MF_MAILCRYPT_HEADER_SIZE + 5, &err) < 0 &&
	       strstr(err.msg, "truncated") != NULL,
	   "v%u: a size that cannot hold the message is refused as reader_init refuses it: %s",
	   k->version, err.msg);
	mf_mailcrypt_reader_clear(&r);
	free(c.data);
	free(pt);
}

/* Checks run in a child whose OpenSSL has only the "base" provider, so no
   cipher at all; ct_path holds a version 2 message of 3000 bytes sealed to
   k.  Returns a bit per failed check (exit status). */
enum {
	NOGCM_WRITE_V2 = 1,
	NOGCM_WRITE_DEFAULT = 2,
	NOGCM_READ_V2 = 4,
	NOGCM_BUFFER_V2 = 8,
	NOGCM_V1 = 16,
};

static int nogcm_child(const char *ct_path, const struct keys *k)
{
	struct mf_mailcrypt_writer *w = xmalloc(sizeof(*w));
	unsigned char hdr[MF_MAILCRYPT_HEADER_SIZE], ct[4000], out[4000];
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err = {""};
	struct keys k1 = *k;
	FILE *f = fopen(ct_path, "rb");
	size_t ct_len = f != NULL ? fread(ct, 1, sizeof(ct), f) : 0, n;
	int failed = 0;
	struct ct c;

	if (f != NULL)
		fclose(f);
	if (mf_mailcrypt_writer_init_version(w, k->pk, 2, 65536, hdr, &err) == 0 ||
	    strstr(err.msg, "AES-256-GCM is not available from OpenSSL") == NULL)
		failed |= NOGCM_WRITE_V2;
	mf_mailcrypt_writer_clear(w);
	if (mf_mailcrypt_writer_init(w, k->pk, hdr, &err) == 0 ||
	    strstr(err.msg, "AES-256-GCM") == NULL || !sodium_is_zero(hdr, sizeof(hdr)))
		failed |= NOGCM_WRITE_DEFAULT;
	mf_mailcrypt_writer_clear(w);
	memset(out, 'x', sizeof(out));
	if (mf_mailcrypt_reader_init(&r, ct, ct_len, ct_len, k->pk, k->sk, &err) < 0 ||
	    mf_mailcrypt_chunk_at(&r, 0, &ch, &err) < 0 ||
	    mf_mailcrypt_open_chunk(&r, 0, ct + ch.ct_offset, ch.ct_len, out, sizeof(out), &n,
	                            &err) == 0 ||
	    strstr(err.msg, "AES-256-GCM is not available") == NULL || n != 0)
		failed |= NOGCM_READ_V2;
	mf_mailcrypt_reader_clear(&r);
	if (mf_mailcrypt_decrypt_buffer(ct, ct_len, k->pk, k->sk, out, sizeof(out), &n, &err) ==
	        0 ||
	    n != 0)
		failed |= NOGCM_BUFFER_V2;
	k1.version = 1;
	c = encrypt(&k1, ct, 1000, 1024, 0);
	if (decrypt_equals(&k1, c.data, c.len, ct, 1000, &err) < 0)
		failed |= NOGCM_V1;
	free(c.data);
	free(w);
	return failed;
}

static void test_no_gcm(const struct keys *k, const char *self)
{
	char dir[] = "/tmp/test-mailcrypt.XXXXXX";
	const char *conf_text = "openssl_conf = openssl_init\n"
	                        "[openssl_init]\nproviders = provider_sect\n"
	                        "[provider_sect]\nbase = base_sect\n"
	                        "[base_sect]\nactivate = 1\n";
	char conf[64], ctp[64], keyhex[4 * 32 + 1];
	unsigned char pt[3000], pair[64];
	struct keys k2 = *k;
	int status = -1;
	FILE *f;
	pid_t pid;
	struct ct c;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(conf, sizeof(conf), "%s/openssl.cnf", dir);
	snprintf(ctp, sizeof(ctp), "%s/v2.mfc", dir);
	randombytes_buf(pt, sizeof(pt));
	k2.version = 2;
	c = encrypt(&k2, pt, sizeof(pt), 1024, 0);
	if ((f = fopen(conf, "w")) != NULL) {
		fputs(conf_text, f);
		fclose(f);
	}
	if ((f = fopen(ctp, "wb")) != NULL) {
		fwrite(c.data, 1, c.len, f);
		fclose(f);
	}
	free(c.data);
	memcpy(pair, k->pk, 32);
	memcpy(pair + 32, k->sk, 32);
	sodium_bin2hex(keyhex, sizeof(keyhex), pair, sizeof(pair));
	sodium_memzero(pair, sizeof(pair));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		setenv("OPENSSL_CONF", conf, 1);
		execl("/proc/self/exe", self, "--no-gcm", ctp, keyhex, (char *)NULL);
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		status = WEXITSTATUS(status);
	else
		status = -1;
	sodium_memzero(keyhex, sizeof(keyhex));
	ok(status >= 0 && status != 127, "no AES-256-GCM in OpenSSL: the check ran (status %d)",
	   status);
	if (status < 0 || status == 127)
		status = 0xff;
	ok(!(status & NOGCM_WRITE_V2),
	   "no AES-256-GCM: a version 2 writer refuses, naming the cipher");
	ok(!(status & NOGCM_WRITE_DEFAULT),
	   "no AES-256-GCM: the default writer refuses too (no fallback), header wiped");
	ok(!(status & NOGCM_READ_V2),
	   "no AES-256-GCM: a version 2 chunk is not opened, naming the cipher, nothing returned");
	ok(!(status & NOGCM_BUFFER_V2), "no AES-256-GCM: decrypt_buffer of version 2 fails");
	ok(!(status & NOGCM_V1), "no AES-256-GCM: version 1 still writes and reads");
	unlink(conf);
	unlink(ctp);
	rmdir(dir);
}

/* The whole suite for one format version. */
static void test_version(struct keys *k, unsigned int version)
{
	k->version = version;
	diag("format version %u", version);
	test_round_trips(k);
	test_random_access(k);
	flip_every_byte(k, 0, MF_MAILCRYPT_CHUNK_SIZE);
	flip_every_byte(k, 200, MF_MAILCRYPT_CHUNK_SIZE);
	flip_every_byte(k, 2500, 1024);
	flip_every_byte(k, 2048, 1024);
	test_truncation(k, 1024);
	test_truncation(k, MF_MAILCRYPT_CHUNK_SIZE);
	test_splicing(k);
	test_keys_and_header(k);
	test_writer_misuse(k);
	test_out_max(k);
	test_huge_sizes(k);
	test_reader_copy(k);
	test_reader_copy_sized(k);
}

int main(int argc, char **argv)
{
	struct mf_error err;
	struct keys k;

	if (mf_crypto_init(&err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	if (argc == 4 && strcmp(argv[1], "--no-gcm") == 0) {
		/* the child of test_no_gcm: key pair as hex (pk | sk) */
		unsigned char pair[64];
		int ret =
		    sodium_hex2bin(pair, sizeof(pair), argv[3], strlen(argv[3]), NULL, NULL, NULL);

		memcpy(k.pk, pair, 32);
		memcpy(k.sk, pair + 32, 32);
		sodium_memzero(pair, sizeof(pair));
		k.version = 2;
		ret = ret < 0 ? 0xff : nogcm_child(argv[2], &k);
		sodium_memzero(k.sk, sizeof(k.sk));
		return ret;
	}
	mf_account_keypair(k.pk, k.sk);
	test_version(&k, MF_MAILCRYPT_VERSION_1);
	test_version(&k, MF_MAILCRYPT_VERSION_2);
	test_v2_layout(&k);
	test_versions(&k);
	test_no_gcm(&k, argv[0]);
	sodium_memzero(k.sk, sizeof(k.sk));
	return tap_done();
}
