/*
 * mailcrypt-bench.c - raw cost of the stored-mail format (lib/mailcrypt.c):
 * per-message writer and reader time for typical mail sizes, next to a
 * plain memcpy of the same bytes, on one core, for format version 1
 * (XChaCha20-Poly1305), version 2 (AES-256-GCM) and version 3 (the kcmvp
 * profile: ARIA-256-GCM chunks, content key sealed with ECDH P-256 + KBKDF),
 * all with the server authenticator.
 *
 * Build and run (from a configured build directory, see docs/BENCHMARKS.md):
 *   cc -O2 -I$SRC/lib $SRC/bench/mailcrypt-bench.c lib/.libs/libmailfort.a \
 *      $(pkg-config --libs libsodium libcrypto) -o mailcrypt-bench && ./mailcrypt-bench [1|2]
 *
 * Prints one line per version and message size: microseconds per message
 * to encrypt (header with sealed content key + all chunks), to open the
 * header, to decrypt all chunks (the reader's cipher context is made by the
 * first chunk, as in the Dovecot istream), and to memcpy, plus throughput
 * in MB/s.  With an argument, only that version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mf-crypto-evp.h"
#include "mf-crypto.h"
#include "mf-mailcrypt.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = {2048, 16384, 65536, 262144, 1048576, 10485760};
	unsigned char pk[32], sk[32], ppk[65], psk[32], mac_key[32];
	struct mf_mailcrypt_params params;
	struct mf_mailcrypt_writer *w = malloc(sizeof(*w));
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk ch;
	struct mf_error err;
	size_t i, n, len, cap;
	unsigned char *pt, *ct, *out;
	volatile unsigned char sink = 0;

	if (mf_crypto_init(&err) < 0 || w == NULL)
		return 1;
	mf_account_keypair(pk, sk);
	if (mf_p256_keypair(ppk, psk, &err) < 0)
		return 1;
	randombytes_buf(mac_key, sizeof(mac_key));
	printf("%2s %10s %8s %12s %12s %12s %10s %10s %10s\n", "v", "size", "iters", "encrypt_us",
	       "open_hdr_us", "decrypt_us", "memcpy_us", "enc_MB/s", "dec_MB/s");
	for (i = 0; i < 3 * MF_N_ELEMENTS(sizes); i++) {
		unsigned int version = 1 + (unsigned int)(i / MF_N_ELEMENTS(sizes));
		const unsigned char *vpk = version == 3 ? ppk : pk, *vsk = version == 3 ? psk : sk;
		size_t vpk_len = version == 3 ? 65 : 32, hdr;

		if (argc > 1 && (unsigned int)atoi(argv[1]) != version)
			continue;
		len = sizes[i % MF_N_ELEMENTS(sizes)];
		cap = MF_MAILCRYPT_HEADER_MAX + MF_MAILCRYPT_UPDATE_OUT_MAX(len) +
		      MF_MAILCRYPT_FINAL_OUT_MAX;
		pt = malloc(len);
		ct = malloc(cap);
		out = malloc(len + MF_MAILCRYPT_CHUNK_CT_MAX);
		if (pt == NULL || ct == NULL || out == NULL)
			return 1;
		randombytes_buf(pt, len);
		int iters = (int)(200000000 / (len + 20000));
		double t0, t_enc = 0, t_hdr = 0, t_dec = 0, t_cpy = 0;
		size_t ct_len = 0;

		for (int it = 0; it < iters; it++) {
			t0 = now();
			params = (struct mf_mailcrypt_params){
			    .version = version, .pk = vpk, .pk_len = vpk_len, .mac_key = mac_key};
			if (mf_mailcrypt_writer_start(w, &params, ct, &hdr, &err) < 0) {
				fprintf(stderr, "%s\n", err.msg);
				return 1;
			}
			ct_len = hdr;
			/* Feed in 64 KiB pieces, as a Dovecot ostream would. */
			for (size_t off = 0; off < len; off += 65536) {
				size_t piece = len - off < 65536 ? len - off : 65536;
				if (mf_mailcrypt_writer_update(w, pt + off, piece, ct + ct_len,
				                               cap - ct_len, &n, &err) < 0)
					return 1;
				ct_len += n;
			}
			if (mf_mailcrypt_writer_final(w, ct + ct_len, cap - ct_len, &n, &err) < 0)
				return 1;
			ct_len += n;
			t_enc += now() - t0;

			t0 = now();
			if (mf_mailcrypt_reader_open(&r, ct, ct_len, ct_len, vpk, vpk_len, vsk,
			                             &err) < 0)
				return 1;
			t_hdr += now() - t0;
			t0 = now();
			for (uint64_t c = 0; c < r.chunk_count; c++) {
				if (mf_mailcrypt_chunk_at(&r, c, &ch, &err) < 0 ||
				    mf_mailcrypt_open_chunk(&r, c, ct + ch.ct_offset, ch.ct_len,
				                            out + ch.pt_offset, ch.pt_len, &n,
				                            &err) < 0) {
					fprintf(stderr, "%s\n", err.msg);
					return 1;
				}
			}
			t_dec += now() - t0;
			mf_mailcrypt_reader_clear(&r);

			t0 = now();
			memcpy(out, ct, len);
			sink ^= out[len / 2];
			t_cpy += now() - t0;
		}
		printf("%2u %10zu %8d %12.1f %12.1f %12.1f %10.1f %10.0f %10.0f\n", version, len,
		       iters, t_enc / iters * 1e6, t_hdr / iters * 1e6, t_dec / iters * 1e6,
		       t_cpy / iters * 1e6, (double)len * iters / t_enc / 1e6,
		       (double)len * iters / (t_hdr + t_dec) / 1e6);
		free(pt);
		free(ct);
		free(out);
	}
	free(w);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(psk, sizeof(psk));
	return sink == 255 ? 0 : 0;
}
