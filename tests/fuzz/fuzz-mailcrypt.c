/*
 * fuzz-mailcrypt.c - libFuzzer target for the stored-mail ciphertext reader.
 *
 * An input starting with the mailfort magic (or anything else) is fed to
 * the magic check, mf_mailcrypt_peek, the size arithmetic, the reader
 * (header authentication, content key opening) and every chunk, opened
 * both in order and by plaintext offset, with a fixed key pair so that the
 * seeds in tests/fuzz/corpus/mailcrypt/ (sealed to that pair; format
 * version 1 and, named v2-*, version 2) reach the chunk code of both
 * versions; the final chunk is opened again by a copied reader and in
 * place.  An input starting with 'W' is instead encrypted with the writer
 * (split at points taken from the input, version 1 or 2 by the low bit of
 * the third byte) and must decrypt back to itself.  Any crash, sanitizer
 * report, leak or broken round trip is a bug.
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

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
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

	if (mf_mailcrypt_reader_init(&r, data, size, size, pk, sk, &err) < 0)
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

	out = malloc(size);
	if (out == NULL)
		abort();
	(void)mf_mailcrypt_decrypt_buffer(data, size, pk, sk, out, size, &n, &err);
	free(out);
}

static void fuzz_writer(const uint8_t *data, size_t size, const unsigned char *pk,
                        const unsigned char *sk)
{
	struct mf_mailcrypt_writer *w = malloc(sizeof(*w));
	size_t cap = MF_MAILCRYPT_HEADER_SIZE + MF_MAILCRYPT_UPDATE_OUT_MAX(size) +
	             MF_MAILCRYPT_FINAL_OUT_MAX;
	unsigned char *ct = malloc(cap), *pt = malloc(size + 1);
	uint32_t chunk = MF_MAILCRYPT_CHUNK_MIN + (size > 1 ? data[1] : 0) * 4;
	unsigned int version = size > 2 && (data[2] & 1) ? 1 : 2;
	struct mf_error err;
	size_t len = MF_MAILCRYPT_HEADER_SIZE, off = 0, piece, n;

	if (w == NULL || ct == NULL || pt == NULL)
		abort();
	if (mf_mailcrypt_writer_init_version(w, pk, version, chunk, ct, &err) < 0 ||
	    ct[8] != version)
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
	if (mf_mailcrypt_decrypt_buffer(ct, len, pk, sk, pt, size + 1, &n, &err) < 0 || n != size ||
	    memcmp(pt, data, size) != 0)
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
