/*
 * test-kcmvp.c - the kcmvp profile's primitives (mf-crypto-evp.h), its key
 * wraps (mf-crypto.h) and stored-mail format version 3 with the server
 * authenticator (mf-mailcrypt.h).
 *
 * Known answers for PBKDF2-HMAC-SHA256, HMAC-SHA256 and KBKDF come from an
 * independent implementation (Python's hashlib/hmac, SP 800-108 counter
 * mode written out by hand); ARIA-256-GCM's ciphertext is checked against
 * ARIA-256-CTR from the same counter block (GCM encrypts with CTR from
 * nonce || 00000002).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "mf-crypto-evp.h"
#include "mf-crypto.h"
#include "mf-mailcrypt.h"
#include "mf-totp.h"
#include "tap.h"

static int from_hex(unsigned char *out, size_t len, const char *hex)
{
	size_t bin_len;

	return sodium_hex2bin(out, len, hex, strlen(hex), NULL, &bin_len, NULL) == 0 &&
	               bin_len == len
	           ? 0
	           : -1;
}

static void test_known_answers(void)
{
	unsigned char out[48], want[48], key[32];
	struct mf_error err;

	ok(mf_pbkdf2_sha256(out, 32, "passwd", 6, (const unsigned char *)"salt", 4, 1, &err) == 0 &&
	       from_hex(want, 32,
	                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc") == 0 &&
	       memcmp(out, want, 32) == 0,
	   "PBKDF2-HMAC-SHA256 (passwd, salt, 1) matches RFC 7914");
	ok(mf_pbkdf2_sha256(out, 32, "Password", 8, (const unsigned char *)"NaCl", 4, 80000,
	                    &err) == 0 &&
	       from_hex(want, 32,
	                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56") == 0 &&
	       memcmp(out, want, 32) == 0,
	   "PBKDF2-HMAC-SHA256 with 80000 iterations matches hashlib");
	ok(mf_hmac_sha256(out, (const unsigned char *)"key", 3, "The quick brown fox ", 20,
	                  "jumps over the lazy dog", 23, &err) == 0 &&
	       from_hex(want, 32,
	                "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8") == 0 &&
	       memcmp(out, want, 32) == 0,
	   "HMAC-SHA256 over two pieces matches the one-piece reference");
	for (int i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
	ok(mf_kbkdf_sha256(out, 48, key, 32, "mailfort test label", "context bytes", 13, &err) ==
	           0 &&
	       from_hex(want, 48,
	                "e3ad67bf81c70fa656d598a6b3dd1ee642a797fe183c140b54074b09efad2e1b9ac50883e4"
	                "5b51708f8ecb50bf0b1e9d") == 0 &&
	       memcmp(out, want, 48) == 0,
	   "KBKDF (SP 800-108 counter, HMAC-SHA256, 48 bytes) matches a hand-written one");
	ok(mf_kbkdf_sha256(out, 32, key, 32, "mfmail03 chunk", NULL, 0, &err) == 0 &&
	       from_hex(want, 32,
	                "e7196ad058b834d0ee0b3d7e6402bcfa14996156ae69fc1ac41850ed3d5f8412") == 0 &&
	       memcmp(out, want, 32) == 0,
	   "KBKDF with an empty context matches too");
}

static void test_aria_gcm(void)
{
	unsigned char key[32], nonce[12], iv[16], pt[100], ct[116], ctr[100], back[100];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, "ARIA-256-CTR", NULL);
	struct mf_error err;
	int n = 0;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(nonce, sizeof(nonce));
	randombytes_buf(pt, sizeof(pt));
	ok(mf_aria_gcm_seal(ct, pt, sizeof(pt), key, nonce, "ad", 2, &err) == 0,
	   "ARIA-256-GCM seals (%s)", err.msg);
	memcpy(iv, nonce, 12);
	memcpy(iv + 12, "\0\0\0\2", 4);
	ok(ctx != NULL && cipher != NULL && EVP_EncryptInit_ex(ctx, cipher, NULL, key, iv) == 1 &&
	       EVP_EncryptUpdate(ctx, ctr, &n, pt, sizeof(pt)) == 1 && n == (int)sizeof(pt) &&
	       memcmp(ctr, ct, sizeof(pt)) == 0,
	   "its ciphertext is ARIA-256-CTR from nonce || 00000002, as GCM specifies");
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	ok(mf_aria_gcm_open(back, ct, sizeof(ct), key, nonce, "ad", 2, &err) == 0 &&
	       memcmp(back, pt, sizeof(pt)) == 0,
	   "and opens again");
	ct[50] ^= 1;
	memset(back, 0x55, sizeof(back));
	ok(mf_aria_gcm_open(back, ct, sizeof(ct), key, nonce, "ad", 2, &err) < 0 &&
	       strstr(err.msg, "failed authentication") != NULL && back[0] == 0 && back[99] == 0,
	   "a flipped bit fails authentication and the output is wiped: %s", err.msg);
	ct[50] ^= 1;
	ok(mf_aria_gcm_open(back, ct, sizeof(ct), key, nonce, "ax", 2, &err) < 0,
	   "other associated data fails");
}

static void test_p256(void)
{
	unsigned char pk[MF_P256_PK_BYTES], sk[32], pk2[MF_P256_PK_BYTES], sk2[32];
	unsigned char sealed[32 + MF_P256_SEAL_OVERHEAD], secret[32], back[32];
	unsigned char wrapped[MF_ACCOUNT_WRAP_MAX], master[32];
	struct mf_error err;
	size_t len;

	ok(mf_p256_keypair(pk, sk, &err) == 0 && pk[0] == 0x04, "P-256 key pair made");
	ok(mf_p256_keypair(pk2, sk2, &err) == 0, "and a second one");
	ok(mf_p256_key_check(pk, sk, &err) == 0, "the secret key belongs to the public key");
	ok(mf_p256_key_check(pk, sk2, &err) < 0 && mf_account_key_check_any(pk, 65, sk2, &err) < 0,
	   "another secret key does not: %s", err.msg);
	ok(mf_key_alg_of(65) == MF_KEY_ALG_P256 && mf_key_alg_of(32) == MF_KEY_ALG_X25519 &&
	       mf_key_alg_of(33) == 0,
	   "key algorithm by public key length");
	randombytes_buf(secret, sizeof(secret));
	ok(mf_p256_seal(sealed, secret, 32, "hdr", 3, pk, &err) == 0, "sealed to P-256 (%s)",
	   err.msg);
	ok(mf_p256_seal_open(back, sealed, sizeof(sealed), "hdr", 3, pk, sk, &err) == 0 &&
	       memcmp(back, secret, 32) == 0,
	   "opened with the key pair");
	ok(mf_p256_seal_open(back, sealed, sizeof(sealed), "hdr", 3, pk2, sk2, &err) < 0,
	   "another key pair cannot open it: %s", err.msg);
	ok(mf_p256_seal_open(back, sealed, sizeof(sealed), "hdx", 3, pk, sk, &err) < 0,
	   "nor other associated data");
	sealed[10] ^= 0xff;
	ok(mf_p256_seal_open(back, sealed, sizeof(sealed), "hdr", 3, pk, sk, &err) < 0,
	   "a damaged ephemeral key is refused: %s", err.msg);

	randombytes_buf(master, sizeof(master));
	ok(mf_account_wrap_server_any(wrapped, &len, pk, 65, sk, master, &err) == 0 &&
	       len == MF_ACCOUNT_WRAP_SERVER_P256_BYTES && memcmp(wrapped, "MFS2", 4) == 0 &&
	       mf_account_wrap_kind(wrapped, len) == MF_ACCOUNT_WRAP_SERVER,
	   "server-mode wrap of a P-256 key: MFS2, %zu bytes", len);
	ok(mf_account_unwrap_server_any(back, wrapped, len, pk, 65, master, &err) == 0 &&
	       memcmp(back, sk, 32) == 0,
	   "unwraps with master.key");
	ok(mf_account_unwrap_server_any(back, wrapped, len, pk2, 65, master, &err) < 0,
	   "not as another account's key: %s", err.msg);
	ok(mf_account_wrap_server_any(wrapped, &len, pk, 65, sk2, master, &err) < 0,
	   "a mismatched pair is not wrapped");
	ok(mf_account_wrap_password_any(wrapped, &len, pk, 65, sk, "correct horse", 13, &err) ==
	           0 &&
	       len == MF_ACCOUNT_WRAP_PASSWORD_P256_BYTES && memcmp(wrapped, "MFW2", 4) == 0 &&
	       mf_account_wrap_kind(wrapped, len) == MF_ACCOUNT_WRAP_PASSWORD,
	   "password-mode wrap of a P-256 key: MFW2, PBKDF2 %u iterations", MF_PBKDF2_ITERATIONS);
	ok(wrapped[5] == (MF_PBKDF2_ITERATIONS & 0xff) &&
	       wrapped[6] == ((MF_PBKDF2_ITERATIONS >> 8) & 0xff),
	   "the iteration count is in the blob");
	ok(mf_account_unwrap_password_any(back, wrapped, len, pk, 65, "correct horse", 13, &err) ==
	           0 &&
	       memcmp(back, sk, 32) == 0,
	   "unwraps with the password");
	ok(mf_account_unwrap_password_any(back, wrapped, len, pk, 65, "correct horsf", 13, &err) <
	           0 &&
	       strstr(err.msg, "wrong password") != NULL,
	   "not with another: %s", err.msg);
	wrapped[5] = 0xff, wrapped[6] = 0xff, wrapped[7] = 0xff, wrapped[8] = 0x7f;
	ok(mf_account_unwrap_password_any(back, wrapped, len, pk, 65, "correct horse", 13, &err) <
	           0 &&
	       strstr(err.msg, "iterations") != NULL,
	   "a planted blob with 2^31 iterations is refused before any work: %s", err.msg);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));
}

static unsigned char *seal_message(const struct mf_mailcrypt_params *params, const void *pt,
                                   size_t len, size_t *ct_len_r, size_t *hdr_len_r)
{
	struct mf_mailcrypt_writer *w = malloc(sizeof(*w));
	unsigned char *ct = malloc(MF_MAILCRYPT_HEADER_MAX + MF_MAILCRYPT_UPDATE_OUT_MAX(len) +
	                           MF_MAILCRYPT_FINAL_OUT_MAX);
	struct mf_error err;
	size_t hdr, n, m;

	if (w == NULL || ct == NULL || mf_mailcrypt_writer_start(w, params, ct, &hdr, &err) < 0 ||
	    mf_mailcrypt_writer_update(w, pt, len, ct + hdr, MF_MAILCRYPT_UPDATE_OUT_MAX(len), &n,
	                               &err) < 0 ||
	    mf_mailcrypt_writer_final(w, ct + hdr + n, MF_MAILCRYPT_FINAL_OUT_MAX, &m, &err) < 0) {
		diag("seal failed: %s", err.msg);
		free(w);
		free(ct);
		return NULL;
	}
	free(w);
	*ct_len_r = hdr + n + m;
	*hdr_len_r = hdr;
	return ct;
}

/* Decrypt a whole message with a key of either kind. */
static int open_message(const unsigned char *ct, size_t ct_len, const unsigned char *pk,
                        size_t pk_len, const unsigned char *sk, unsigned char *out,
                        struct mf_error *err)
{
	struct mf_mailcrypt_reader r;
	struct mf_mailcrypt_chunk c;
	size_t n;
	int ret = 0;

	if (mf_mailcrypt_reader_open(&r, ct, ct_len, ct_len, pk, pk_len, sk, err) < 0)
		return -1;
	for (uint64_t i = 0; i < r.chunk_count && ret == 0; i++) {
		ret = mf_mailcrypt_chunk_at(&r, i, &c, err) < 0 ||
		              mf_mailcrypt_open_chunk(&r, i, ct + c.ct_offset, c.ct_len,
		                                      out + c.pt_offset, c.pt_len, &n, err) < 0
		          ? -1
		          : 0;
	}
	mf_mailcrypt_reader_clear(&r);
	return ret;
}

static void test_version3(void)
{
	unsigned char pk[65], sk[32], pk2[65], sk2[32], xpk[32], xsk[32], mac_key[32], other[32];
	static unsigned char pt[200000], out[200000];
	struct mf_mailcrypt_params params = {.pk = pk, .pk_len = 65, .mac_key = mac_key};
	struct mf_mailcrypt_info info;
	struct mf_error err;
	size_t sizes[] = {0, 1, 65535, 65536, 65537, 200000};
	size_t ct_len, hdr;
	unsigned char *ct;

	if (mf_p256_keypair(pk, sk, &err) < 0 || mf_p256_keypair(pk2, sk2, &err) < 0) {
		ok(0, "P-256 keys: %s", err.msg);
		return;
	}
	mf_account_keypair(xpk, xsk);
	randombytes_buf(mac_key, sizeof(mac_key));
	randombytes_buf(other, sizeof(other));
	randombytes_buf(pt, sizeof(pt));
	for (size_t i = 0; i < MF_N_ELEMENTS(sizes); i++) {
		uint64_t pt_size = 0;

		ct = seal_message(&params, pt, sizes[i], &ct_len, &hdr);
		ok(ct != NULL && mf_mailcrypt_peek(ct, ct_len, &info, &err) == 0 &&
		       info.version == 3 && info.flags == MF_MAILCRYPT_FLAG_MAC &&
		       hdr == MF_MAILCRYPT_HEADER_MAX && info.header_size == hdr,
		   "%zu bytes: version 3 with authenticator, %zu-byte header", sizes[i], hdr);
		ok(ct != NULL && mf_mailcrypt_plaintext_size(&info, ct_len, &pt_size, &err) == 0 &&
		       pt_size == sizes[i],
		   "%zu bytes: plaintext size from the ciphertext size", sizes[i]);
		ok(ct != NULL && open_message(ct, ct_len, pk, 65, sk, out, &err) == 0 &&
		       memcmp(out, pt, sizes[i]) == 0,
		   "%zu bytes: ARIA-256-GCM chunks read back (%s)", sizes[i], ct ? err.msg : "");
		free(ct);
	}
	ct = seal_message(&params, pt, 70000, &ct_len, &hdr);
	if (ct == NULL)
		return;
	ok(mf_mailcrypt_check_mac(ct, hdr, mac_key, &err) == 0,
	   "the server authenticator verifies");
	ok(mf_mailcrypt_check_mac(ct, hdr, other, &err) < 0 &&
	       strstr(err.msg, "does not verify") != NULL,
	   "not under another site's key: %s", err.msg);
	ok(open_message(ct, ct_len, pk2, 65, sk2, out, &err) < 0 &&
	       strstr(err.msg, "sealed to account key") != NULL,
	   "another account's key pair cannot read it: %s", err.msg);
	ok(open_message(ct, ct_len, xpk, 32, xsk, out, &err) < 0,
	   "an X25519 key is refused for a version 3 message: %s", err.msg);
	ct[hdr - 20] ^= 1; /* in the authenticator: covered by the header tag */
	ok(open_message(ct, ct_len, pk, 65, sk, out, &err) < 0 &&
	       strstr(err.msg, "header failed authentication") != NULL,
	   "a changed authenticator fails the header tag: %s", err.msg);
	ct[hdr - 20] ^= 1;
	ct[hdr + 100] ^= 1;
	ok(open_message(ct, ct_len, pk, 65, sk, out, &err) < 0 &&
	       strstr(err.msg, "chunk 0 failed") != NULL,
	   "a flipped chunk byte is found: %s", err.msg);
	free(ct);

	/* what an attacker with the public key only can make */
	params.mac_key = NULL;
	ct =
	    seal_message(&params, "From: boss\r\n\r\nwire EUR 90,000 today\r\n", 38, &ct_len, &hdr);
	ok(ct != NULL && hdr == MF_MAILCRYPT_HEADER_V3_SIZE &&
	       open_message(ct, ct_len, pk, 65, sk, out, &err) == 0,
	   "a ciphertext made with only the public key decrypts (the format alone cannot tell)");
	ok(ct != NULL && mf_mailcrypt_check_mac(ct, hdr, mac_key, &err) < 0 &&
	       strstr(err.msg, "no server authenticator") != NULL,
	   "but it has no server authenticator: %s", err.msg);
	if (ct != NULL) {
		/* claim an authenticator it does not have */
		unsigned char forged[MF_MAILCRYPT_HEADER_MAX];

		memcpy(forged, ct, hdr);
		forged[9] = MF_MAILCRYPT_FLAG_MAC;
		forged[10] = MF_MAILCRYPT_HEADER_MAX & 0xff;
		memset(forged + hdr - 16, 0, 32);
		memcpy(forged + MF_MAILCRYPT_HEADER_MAX - 16, ct + hdr - 16, 16);
		ok(mf_mailcrypt_check_mac(forged, sizeof(forged), mac_key, &err) < 0 &&
		       strstr(err.msg, "does not verify") != NULL,
		   "a made-up authenticator does not verify: %s", err.msg);
	}
	free(ct);

	/* the default profile's format gets the authenticator too */
	params.pk = xpk;
	params.pk_len = 32;
	params.mac_key = mac_key;
	ct = seal_message(&params, pt, 1000, &ct_len, &hdr);
	ok(ct != NULL && ct[8] == 2 && hdr == MF_MAILCRYPT_HEADER_SIZE + 32 &&
	       mf_mailcrypt_check_mac(ct, hdr, mac_key, &err) == 0 &&
	       open_message(ct, ct_len, xpk, 32, xsk, out, &err) == 0 && memcmp(out, pt, 1000) == 0,
	   "version 2 with authenticator: %zu-byte header, reads back", hdr);
	free(ct);
	params.version = 3;
	ok(mf_mailcrypt_writer_start(&(struct mf_mailcrypt_writer){0}, &params, out, &hdr, &err) <
	       0,
	   "version 3 refuses an X25519 key: %s", err.msg);
	ok(strcmp(mf_mailcrypt_chunk_alg(3), "ARIA-256-GCM") == 0 &&
	       mf_mailcrypt_version_listed(3) && !mf_mailcrypt_version_listed(2),
	   "algorithm names per version");
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));
	sodium_memzero(xsk, sizeof(xsk));
}

/* App-password and recovery-code hashes of both kinds, against hashlib. */
static void test_code_hashes(void)
{
	unsigned char key[32], h[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES], want[32], old[32];

	for (int i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
	ok(mf_apppass_hashes(h, "ABCD-efgh-ijkm-npqr-stuv", 24, key) == 0 &&
	       from_hex(want, 32,
	                "b6b84db466a85da6da619f1e0e0a26945490aadccd0e2ee7225205a38ace437f") == 0 &&
	       memcmp(h[MF_CODE_HASH_HMAC], want, 32) == 0,
	   "app password: the kcmvp hash is HMAC-SHA256(hash.key, normal form)");
	ok(from_hex(want, 32, "ecf97a0cbce674bc7d3edf9fd5435cae7f8db0a34e644e3844c53c1399dde523") ==
	           0 &&
	       memcmp(h[MF_CODE_HASH_BLAKE2B], want, 32) == 0 &&
	       mf_apppass_hash(old, "abcdefghijkmnpqrstuv", 20, key) == 0 &&
	       memcmp(old, want, 32) == 0,
	   "and the default hash is the keyed BLAKE2b mf_apppass_hash gives");
	ok(mf_recovery_hashes(h, "abcd-efgh-jkmn", 14, key) == 0 &&
	       from_hex(want, 32,
	                "019e2b0c3830d659f3abdc44bd00ce3cfefc658cf0a1e364f54c4f7b47211675") == 0 &&
	       memcmp(h[MF_CODE_HASH_HMAC], want, 32) == 0,
	   "recovery code: HMAC-SHA256 of the normal form");
	ok(mf_apppass_hashes(h, "not an app password", 19, key) < 0,
	   "a string not shaped like an app password gives no hash");
	ok(mf_code_hash_for(MF_PROFILE_KCMVP) == MF_CODE_HASH_HMAC &&
	       mf_code_hash_for(MF_PROFILE_DEFAULT) == MF_CODE_HASH_BLAKE2B,
	   "the profile picks the stored kind");
}

int main(void)
{
	struct mf_error err;

	if (mf_crypto_init(&err) < 0) {
		ok(0, "crypto init: %s", err.msg);
		return tap_done();
	}
	test_known_answers();
	test_aria_gcm();
	test_p256();
	test_version3();
	test_code_hashes();
	return tap_done();
}
