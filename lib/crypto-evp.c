/*
 * crypto-evp.c - ARIA-256-GCM, HMAC-SHA256, KBKDF, PBKDF2 and ECDH P-256
 * through OpenSSL's EVP interfaces: the primitives of the kcmvp profile.
 * Contract and sealing layout: mf-crypto-evp.h.
 *
 * Every algorithm is fetched by name from the default library context each
 * time (OpenSSL keeps fetched methods in its own cache), so no state lives
 * here and a provider configuration applies to every call.  Returns 0 or -1
 * with a reason naming the algorithm; secrets in temporaries are wiped with
 * OPENSSL_cleanse, and OpenSSL's error queue is emptied on every failure
 * (the host process, Dovecot, reads it after its own TLS calls).
 */
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include "mf-crypto-evp.h"

#define SEAL_LABEL "mailfort p256 seal v1"

const char *mf_openssl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, size, "no reason given");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

static int evp_fail(struct mf_error *err, const char *what)
{
	char reason[256];

	return mf_error_set(err, "%s failed in OpenSSL: %s", what,
	                    mf_openssl_reason(reason, sizeof(reason)));
}

static int evp_unavailable(struct mf_error *err, const char *name)
{
	char reason[256];

	return mf_error_set(err, "%s is not available from OpenSSL: %s", name,
	                    mf_openssl_reason(reason, sizeof(reason)));
}

int mf_evp_random(unsigned char *buf, size_t len, struct mf_error *err)
{
	if (RAND_bytes(buf, (int)len) != 1)
		return evp_fail(err, "RAND_bytes");
	return 0;
}

int mf_hmac_sha256(unsigned char out[MF_HMAC_SHA256_BYTES], const unsigned char *key,
                   size_t key_len, const void *a, size_t a_len, const void *b, size_t b_len,
                   struct mf_error *err)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	size_t len = 0;
	int ret = 0;

	if (ctx == NULL)
		ret = evp_unavailable(err, "HMAC-SHA256");
	else if (EVP_MAC_init(ctx, key, key_len, params) != 1 ||
	         EVP_MAC_update(ctx, a, a_len) != 1 ||
	         (b != NULL && EVP_MAC_update(ctx, b, b_len) != 1) ||
	         EVP_MAC_final(ctx, out, &len, MF_HMAC_SHA256_BYTES) != 1 ||
	         len != MF_HMAC_SHA256_BYTES)
		ret = evp_fail(err, "HMAC-SHA256");
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	if (ret < 0)
		OPENSSL_cleanse(out, MF_HMAC_SHA256_BYTES);
	return ret;
}

int mf_sha256(unsigned char out[32], const void *data, size_t len, struct mf_error *err)
{
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	unsigned int n = 0;
	int ret = 0;

	if (md == NULL)
		ret = evp_unavailable(err, "SHA-256");
	else if (EVP_Digest(data, len, out, &n, md, NULL) != 1 || n != 32)
		ret = evp_fail(err, "SHA-256");
	EVP_MD_free(md);
	return ret;
}

static int kdf_derive(const char *name, unsigned char *out, size_t out_len,
                      const OSSL_PARAM *params, struct mf_error *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
	EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	int ret = 0;

	if (ctx == NULL)
		ret = evp_unavailable(err, name);
	else if (EVP_KDF_derive(ctx, out, out_len, params) != 1)
		ret = evp_fail(err, name);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	if (ret < 0)
		OPENSSL_cleanse(out, out_len);
	return ret;
}

int mf_kbkdf_sha256(unsigned char *out, size_t out_len, const unsigned char *key, size_t key_len,
                    const char *label, const void *context, size_t context_len,
                    struct mf_error *err)
{
	OSSL_PARAM params[7], *p = params;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"counter", 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)"HMAC", 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
	/* OpenSSL's KBKDF calls the label "salt" and the context "info" */
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, strlen(label));
	if (context_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)context,
		                                         context_len);
	*p = OSSL_PARAM_construct_end();
	return kdf_derive("KBKDF", out, out_len, params, err);
}

int mf_pbkdf2_sha256(unsigned char *out, size_t out_len, const char *password, size_t password_len,
                     const unsigned char *salt, size_t salt_len, uint32_t iterations,
                     struct mf_error *err)
{
	unsigned int iter = iterations;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password,
	                                      password_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
	    OSSL_PARAM_construct_uint(OSSL_KDF_PARAM_ITER, &iter),
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};

	return kdf_derive("PBKDF2", out, out_len, params, err);
}

static EVP_CIPHER_CTX *aria_ctx(const unsigned char key[MF_ARIA_KEY_BYTES],
                                const unsigned char nonce[MF_ARIA_NONCE_BYTES], int enc,
                                struct mf_error *err)
{
	EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, MF_ARIA_GCM_NAME, NULL);
	EVP_CIPHER_CTX *ctx = cipher != NULL ? EVP_CIPHER_CTX_new() : NULL;

	if (ctx == NULL || EVP_CipherInit_ex(ctx, cipher, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MF_ARIA_NONCE_BYTES, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		EVP_CIPHER_free(cipher);
		evp_unavailable(err, MF_ARIA_GCM_NAME);
		return NULL;
	}
	EVP_CIPHER_free(cipher); /* the context holds its own reference */
	return ctx;
}

int mf_aria_gcm_seal(unsigned char *out, const unsigned char *in, size_t len,
                     const unsigned char key[MF_ARIA_KEY_BYTES],
                     const unsigned char nonce[MF_ARIA_NONCE_BYTES], const void *ad, size_t ad_len,
                     struct mf_error *err)
{
	EVP_CIPHER_CTX *ctx = aria_ctx(key, nonce, 1, err);
	int n, ret = 0;

	if (ctx == NULL)
		return -1;
	if ((ad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1) ||
	    (len > 0 && EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(ctx, out + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MF_ARIA_TAG_BYTES, out + len) != 1) {
		OPENSSL_cleanse(out, len + MF_ARIA_TAG_BYTES);
		ret = evp_fail(err, MF_ARIA_GCM_NAME " encryption");
	}
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

int mf_aria_gcm_open(unsigned char *out, const unsigned char *in, size_t in_len,
                     const unsigned char key[MF_ARIA_KEY_BYTES],
                     const unsigned char nonce[MF_ARIA_NONCE_BYTES], const void *ad, size_t ad_len,
                     struct mf_error *err)
{
	EVP_CIPHER_CTX *ctx;
	unsigned char tag[MF_ARIA_TAG_BYTES], scratch[16];
	size_t len;
	int n, ok;

	if (in_len < MF_ARIA_TAG_BYTES)
		return mf_error_set(err, "%s input too short (%zu bytes)", MF_ARIA_GCM_NAME,
		                    in_len);
	len = in_len - MF_ARIA_TAG_BYTES;
	if ((ctx = aria_ctx(key, nonce, 0, err)) == NULL)
		return -1;
	memcpy(tag, in + len, sizeof(tag));
	ok = (ad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)ad_len) == 1) &&
	     (len == 0 || EVP_DecryptUpdate(ctx, out, &n, in, (int)len) == 1) &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, MF_ARIA_TAG_BYTES, tag) == 1 &&
	     EVP_DecryptFinal_ex(ctx, scratch, &n) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		OPENSSL_cleanse(out, len);
		return mf_error_set(err, "%s failed authentication", MF_ARIA_GCM_NAME);
	}
	return 0;
}

/* ---- P-256 ---- */

/* An EVP_PKEY for P-256 from a public key (65 bytes) and, when sk is not
   NULL, its secret scalar. */
static EVP_PKEY *p256_pkey(const unsigned char *pk, const unsigned char *sk, struct mf_error *err)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *priv = NULL;

	if (sk != NULL && (priv = BN_secure_new()) != NULL &&
	    BN_bin2bn(sk, MF_P256_SK_BYTES, priv) == NULL) {
		BN_clear_free(priv);
		priv = NULL;
	}
	if (bld == NULL || ctx == NULL || (sk != NULL && priv == NULL) ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pk, MF_P256_PK_BYTES) !=
	        1 ||
	    (priv != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, sk != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
	                      params) != 1) {
		evp_fail(err, "P-256 key import (invalid key?)");
		pkey = NULL;
	}
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(priv);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* Public key (uncompressed) and, when sk is not NULL, the secret scalar of
   pkey. */
static int p256_export(EVP_PKEY *pkey, unsigned char pk[MF_P256_PK_BYTES], unsigned char *sk,
                       struct mf_error *err)
{
	BIGNUM *priv = NULL;
	size_t len = 0;
	int ret = 0;

	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pk, MF_P256_PK_BYTES,
	                                    &len) != 1 ||
	    len != MF_P256_PK_BYTES || pk[0] != 0x04)
		return evp_fail(err, "P-256 public key export");
	if (sk != NULL) {
		if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv) != 1 ||
		    BN_bn2binpad(priv, sk, MF_P256_SK_BYTES) != MF_P256_SK_BYTES)
			ret = evp_fail(err, "P-256 secret key export");
		BN_clear_free(priv);
	}
	return ret;
}

static EVP_PKEY *p256_generate(struct mf_error *err)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (pkey == NULL)
		evp_unavailable(err, "ECDH P-256 key generation");
	return pkey;
}

int mf_p256_keypair(unsigned char pk[MF_P256_PK_BYTES], unsigned char sk[MF_P256_SK_BYTES],
                    struct mf_error *err)
{
	EVP_PKEY *pkey = p256_generate(err);
	int ret;

	if (pkey == NULL)
		return -1;
	ret = p256_export(pkey, pk, sk, err);
	EVP_PKEY_free(pkey);
	if (ret < 0)
		OPENSSL_cleanse(sk, MF_P256_SK_BYTES);
	return ret;
}

int mf_p256_key_check(const unsigned char pk[MF_P256_PK_BYTES],
                      const unsigned char sk[MF_P256_SK_BYTES], struct mf_error *err)
{
	EVP_PKEY *pkey = p256_pkey(pk, sk, err);
	EVP_PKEY_CTX *ctx;
	int ok;

	if (pkey == NULL)
		return -1;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	/* the public key is sk * G, and a point of the curve */
	ok = ctx != NULL && EVP_PKEY_pairwise_check(ctx) == 1 && EVP_PKEY_public_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	if (!ok) {
		ERR_clear_error();
		return mf_error_set(err, "account secret key does not belong to public key");
	}
	return 0;
}

int mf_p256_key_id(unsigned char id[8], const unsigned char pk[MF_P256_PK_BYTES],
                   struct mf_error *err)
{
	unsigned char hash[32];

	if (mf_sha256(hash, pk, MF_P256_PK_BYTES, err) < 0)
		return -1;
	memcpy(id, hash, 8);
	return 0;
}

/* KEK for a seal between ephemeral public key e_pk and recipient pk. */
static int seal_kek(unsigned char kek[MF_ARIA_KEY_BYTES], EVP_PKEY *own, EVP_PKEY *peer,
                    const unsigned char e_pk[MF_P256_PK_BYTES],
                    const unsigned char pk[MF_P256_PK_BYTES], struct mf_error *err)
{
	static const unsigned char zero_salt[32];
	unsigned char z[32], prk[MF_HMAC_SHA256_BYTES], context[2 * MF_P256_PK_BYTES];
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL);
	size_t z_len = sizeof(z);
	int ret;

	if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, peer) != 1 || EVP_PKEY_derive(ctx, z, &z_len) != 1 ||
	    z_len != sizeof(z)) {
		EVP_PKEY_CTX_free(ctx);
		OPENSSL_cleanse(z, sizeof(z));
		return evp_fail(err, "ECDH P-256");
	}
	EVP_PKEY_CTX_free(ctx);
	memcpy(context, e_pk, MF_P256_PK_BYTES);
	memcpy(context + MF_P256_PK_BYTES, pk, MF_P256_PK_BYTES);
	ret = mf_hmac_sha256(prk, zero_salt, sizeof(zero_salt), z, sizeof(z), NULL, 0, err);
	if (ret == 0)
		ret = mf_kbkdf_sha256(kek, MF_ARIA_KEY_BYTES, prk, sizeof(prk), SEAL_LABEL, context,
		                      sizeof(context), err);
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(prk, sizeof(prk));
	return ret;
}

int mf_p256_seal(unsigned char *out, const unsigned char *in, size_t len, const void *ad,
                 size_t ad_len, const unsigned char pk[MF_P256_PK_BYTES], struct mf_error *err)
{
	static const unsigned char nonce[MF_ARIA_NONCE_BYTES];
	unsigned char kek[MF_ARIA_KEY_BYTES];
	EVP_PKEY *peer, *eph;
	int ret = -1;

	if ((peer = p256_pkey(pk, NULL, err)) == NULL)
		return mf_error_prefix(err, "cannot seal to account public key");
	if ((eph = p256_generate(err)) != NULL && p256_export(eph, out, NULL, err) == 0 &&
	    seal_kek(kek, eph, peer, out, pk, err) == 0) {
		ret =
		    mf_aria_gcm_seal(out + MF_P256_PK_BYTES, in, len, kek, nonce, ad, ad_len, err);
		OPENSSL_cleanse(kek, sizeof(kek));
	}
	EVP_PKEY_free(eph);
	EVP_PKEY_free(peer);
	return ret;
}

int mf_p256_seal_open(unsigned char *out, const unsigned char *in, size_t in_len, const void *ad,
                      size_t ad_len, const unsigned char pk[MF_P256_PK_BYTES],
                      const unsigned char sk[MF_P256_SK_BYTES], struct mf_error *err)
{
	static const unsigned char nonce[MF_ARIA_NONCE_BYTES];
	unsigned char kek[MF_ARIA_KEY_BYTES];
	EVP_PKEY *own, *eph;
	int ret = -1;

	if (in_len < MF_P256_SEAL_OVERHEAD)
		return mf_error_set(err, "sealed key too short (%zu bytes)", in_len);
	if ((eph = p256_pkey(in, NULL, err)) == NULL)
		return mf_error_prefix(err, "invalid ephemeral key in sealed key");
	if ((own = p256_pkey(pk, sk, err)) != NULL && seal_kek(kek, own, eph, in, pk, err) == 0) {
		ret = mf_aria_gcm_open(out, in + MF_P256_PK_BYTES, in_len - MF_P256_PK_BYTES, kek,
		                       nonce, ad, ad_len, err);
		OPENSSL_cleanse(kek, sizeof(kek));
	}
	EVP_PKEY_free(own);
	EVP_PKEY_free(eph);
	return ret;
}
