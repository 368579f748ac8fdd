/*
 * fuzz-mailcrypt.c - libFuzzer target for the stored-mail ciphertext reader.
 *
 * An input starting with the mailfort magic (or anything else) is fed to
 * the magic check, mf_mailcrypt_peek, the size arithmetic, the reader
 * (header authentication, content key opening) and every chunk, opened
 * both in order and by plaintext offset, with a fixed key pair so that the
 * seeds in tests/fuzz/corpus/mailcrypt/ (sealed to that pair; format
 * version 1, named v2-* version 2, named v3-* version 3 sealed to a fixed
 * P-256 pair, some with the server authenticator under a fixed key) reach
 * the chunk code of every version; the final chunk is opened again by a
 * copied reader and in place, and the server authenticator is checked.
 * An input starting with 'W' is instead encrypted with the writer (split
 * at points taken from the input, version 1, 2 or 3 by the third byte, with
 * an authenticator when its bit 2 is set) and must decrypt back to itself.
 * Any crash, sanitizer report, leak or broken round trip is a bug.
 *
 * lib/mailcrypt.c is compiled into this target (the #include below) so that
 * it gets libFuzzer's coverage instrumentation; libmailfort itself is built
 * without it.  The rest of the library is linked as usual.
 */
#include <stdlib.h>
#include <string.h>
#include "mf-crypto.h"
#include "mf-mailcrypt.h"
#include "mailcrypt.c"

/* Seed of the fixed fuzzing key pair; the corpus is sealed to it. */
#define FUZZ_KEY_SEED "mailfort fuzz key pair seed 0001"
/* The fixed P-256 pair of the version 3 seeds, and the authenticator key. */
#define FUZZ_P256_SK "7c0684ed19d83f91bff589526ee13b374bad4f3e880cd58fae58b4a43b949380"
#define FUZZ_P256_PK                                                                    \
	"04e30fd1156ba25972c78fe29ad5863f542e322d0457373db57b5815efa9d82b1dc5229ea8eae" \
	"59e7e60919feb47e0d187590f1d7181b434b8938a7c4c242eae9e"
#define FUZZ_MAC_KEY "mailfort fuzz authenticator 0001"

static unsigned char p256_pk[65], p256_sk[32];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0 ||
	    sodium_hex2bin(p256_pk, sizeof(p256_pk), FUZZ_P256_PK, strlen(FUZZ_P256_PK), NULL, NULL,
	                   NULL) != 0 ||
	    sodium_hex2bin(p256_sk, sizeof(p256_sk), FUZZ_P256_SK, strlen(FUZZ_P256_SK), NULL, NULL,
	                   NULL) != 0)
		abort();
	return 0;
}

static void keypair(unsigned char pk[32], unsigned char sk[32])
{
	crypto_box_seed_keypair(pk, sk, (const unsigned char *)FUZZ_KEY_SEED);
}

static void fuzz_reader(const uint8_t *data, size_t size, const unsigned char *pk,
                        const unsigned char *sk)
{
	struct mf_mailcrypt_reader r, copy;
	struct mf_mailcrypt_chunk ch;
	struct mf_mailcrypt_info info;
	struct mf_error err;
	unsigned char *out;
	uint64_t i, pt_size;
	size_t n;

	(void)mf_mailcrypt_is_ciphertext(data, size);
	if (mf_mailcrypt_peek(data, size, &info, &err) == 0)
		(void)mf_mailcrypt_plaintext_size(&info, size, &pt_size, &err);
	(void)mf_mailcrypt_plaintext_size(NULL, size, &pt_size, &err);
	(void)mf_mailcrypt_check_mac(data, size, (const unsigned char *)FUZZ_MAC_KEY, &err);

	if (size > 8 && data[8] == MF_MAILCRYPT_VERSION_3) {
		pk = p256_pk;
		sk = p256_sk;
	}
	if (mf_mailcrypt_reader_open(&r, data, size, size, pk, pk == p256_pk ? 65 : 32, sk, &err) <
	    0)
		return;
	if (r.pt_size > size || r.chunk_count == 0)
		abort();
	out = malloc(MF_MAILCRYPT_CHUNK_CT_MAX);
	if (out == NULL)
		abort();
	for (i = 0; i < r.chunk_count; i++) {
		if (mf_mailcrypt_chunk_at(&r, i, &ch, &err) < 0)
			abort();
		if (ch.ct_offset + ch.ct_len > size || ch.ct_len > MF_MAILCRYPT_CHUNK_CT_MAX)
			abort();
		if (mf_mailcrypt_open_chunk(&r, i, data + ch.ct_offset, ch.ct_len, out,
		                            MF_MAILCRYPT_CHUNK_CT_MAX, &n, &err) == 0 &&
		    n != ch.pt_len)
			abort();
	}
	if (mf_mailcrypt_chunk_for_offset(&r, r.pt_size / 2, &ch, &err) == 0 &&
	    ch.ct_offset + ch.ct_len > size)
		abort();
	/* the final chunk again: by a copy of the reader (its own cipher
	   context) after the original is cleared, and in place */
	mf_mailcrypt_reader_copy(&copy, &r);
	mf_mailcrypt_reader_clear(&r);
	if (mf_mailcrypt_chunk_at(&copy, copy.chunk_count - 1, &ch, &err) < 0)
		abort();
	memcpy(out, data + ch.ct_offset, ch.ct_len);
	if (mf_mailcrypt_open_chunk(&copy, ch.index, out, ch.ct_len, out, MF_MAILCRYPT_CHUNK_CT_MAX,
	                            &n, &err) == 0 &&
	    n != ch.pt_len)
		abort();
	mf_mailcrypt_reader_clear(&copy);
	free(out);

	if (pk == p256_pk)
		return;
	out = malloc(size);
	if (out == NULL)
		abort();
	(void)mf_mailcrypt_decrypt_buffer(data, size, pk, sk, out, size, &n, &err);
	free(out);
}

/* Decrypt a whole ciphertext with a key of either kind into out. */
static int decrypt_any(const unsigned char *ct, size_t len, const unsigned char *pk, size_t pk_len,
                       const unsigned char *sk, unsigned char *out, size_t out_size,
                       size_t *out_len_r)
{
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err;
	size_t n;
	int ret = 0;

	if (mf_mailcrypt_reader_open(&r, ct, len, len, pk, pk_len, sk, &err) < 0)
		return -1;
	if (r.pt_size > out_size)
		ret = -1;
	for (uint64_t i = 0; ret == 0 && i < r.chunk_count; i++) {
		if (mf_mailcrypt_chunk_at(&r, i, &ch, &err) < 0 ||
		    mf_mailcrypt_open_chunk(&r, i, ct + ch.ct_offset, ch.ct_len, out + ch.pt_offset,
		                            out_size - ch.pt_offset, &n, &err) < 0)
			ret = -1;
	}
	*out_len_r = r.pt_size;
	mf_mailcrypt_reader_clear(&r);
	return ret;
}

static void fuzz_writer(const uint8_t *data, size_t size, const unsigned char *pk,
                        const unsigned char *sk)
{
	struct mf_mailcrypt_writer *w = malloc(sizeof(*w));
	size_t cap = MF_MAILCRYPT_HEADER_MAX + MF_MAILCRYPT_UPDATE_OUT_MAX(size) +
	             MF_MAILCRYPT_FINAL_OUT_MAX;
	unsigned char *ct = malloc(cap), *pt = malloc(size + 1);
	uint32_t chunk = MF_MAILCRYPT_CHUNK_MIN + (size > 1 ? data[1] : 0) * 4;
	unsigned int version = size > 2 ? 1 + data[2] % 3 : 2;
	bool mac = size > 2 && (data[2] & 4) != 0;
	struct mf_mailcrypt_params params = {
	    .version = version,
	    .chunk_size = chunk,
	    .pk = version == 3 ? p256_pk : pk,
	    .pk_len = version == 3 ? 65 : 32,
	    .mac_key = mac ? (const unsigned char *)FUZZ_MAC_KEY : NULL,
	};
	struct mf_error err;
	size_t len, off = 0, piece, n;

	if (w == NULL || ct == NULL || pt == NULL)
		abort();
	if (mf_mailcrypt_writer_start(w, &params, ct, &len, &err) < 0 || ct[8] != version ||
	    (mf_mailcrypt_check_mac(ct, len, (const unsigned char *)FUZZ_MAC_KEY, &err) == 0) !=
	        mac)
		abort();
	while (off < size) {
		/* Piece sizes come from the data itself. */
		piece = 1 + (size_t)data[off] * 37;
		if (piece > size - off)
			piece = size - off;
		if (mf_mailcrypt_writer_update(w, data + off, piece, ct + len, cap - len, &n,
		                               &err) < 0)
			abort();
		len += n;
		off += piece;
	}
	if (mf_mailcrypt_writer_final(w, ct + len, cap - len, &n, &err) < 0)
		abort();
	len += n;
	if (decrypt_any(ct, len, params.pk, params.pk_len, version == 3 ? p256_sk : sk, pt,
	                size + 1, &n) < 0 ||
	    n != size || memcmp(pt, data, size) != 0)
		abort();
	free(w);
	free(ct);
	free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char pk[32], sk[32];

	keypair(pk, sk);
	if (size > 0 && data[0] == 'W')
		fuzz_writer(data, size, pk, sk);
	else
		fuzz_reader(data, size, pk, sk);
	sodium_memzero(sk, sizeof(sk));
	return 0;
}
