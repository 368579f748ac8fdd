/*
 * test-totp.c - lib/totp.c and lib/totp-codes.c: codes match RFC 6238's
 * test vectors, the window accepts exactly +-window steps, sealed secrets
 * open only with their key, URIs are what authenticator apps read, app
 * passwords and recovery codes hash the same however they are typed.
 */
#include <string.h>
#include <stdlib.h>
#include "mf-crypto.h"
#include "mf-totp.h"
#include "tap.h"

/* RFC 6238 appendix B, SHA-1, secret "12345678901234567890", 8 digits. */
static const struct {
	time_t t;
	const char *code;
} rfc6238[] = {
    {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
    {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
};

static void test_vectors(void)
{
	const unsigned char *secret = (const unsigned char *)"12345678901234567890";
	char code[MF_TOTP_MAX_DIGITS + 1];
	struct mf_error err;
	uint64_t step;
	size_t i;

	for (i = 0; i < MF_N_ELEMENTS(rfc6238); i++) {
		ok(mf_totp_code(code, secret, 20, mf_totp_step(rfc6238[i].t, 30), 8, &err) == 0 &&
		       strcmp(code, rfc6238[i].code) == 0,
		   "RFC 6238 vector T=%lld gives %s", (long long)rfc6238[i].t, rfc6238[i].code);
		ok(mf_totp_verify(secret, 20, rfc6238[i].code, 8, 8, mf_totp_step(rfc6238[i].t, 30),
		                  1, &step, &err) == 1 &&
		       step == mf_totp_step(rfc6238[i].t, 30),
		   "verify accepts it at its own step");
	}
	/* 6 digits are the last 6 of the 8 */
	ok(mf_totp_code(code, secret, 20, mf_totp_step(59, 30), 6, &err) == 0 &&
	       strcmp(code, "287082") == 0,
	   "6-digit code is the 8-digit code's tail");
	ok(mf_totp_code(code, secret, 20, 1, 5, &err) < 0 && strstr(err.msg, "digits") != NULL,
	   "5 digits refused with a clear error");
	ok(mf_totp_code(code, secret, 20, 1, 9, &err) < 0, "9 digits refused");
}

static void test_window(void)
{
	unsigned char secret[MF_TOTP_SECRET_BYTES];
	char code[MF_TOTP_MAX_DIGITS + 1];
	struct mf_error err;
	uint64_t now = 50000000, step;
	int d, r;

	mf_totp_secret_new(secret);
	for (d = -3; d <= 3; d++) {
		if (mf_totp_code(code, secret, sizeof(secret), now + d, 6, &err) < 0)
			break;
		r = mf_totp_verify(secret, sizeof(secret), code, 6, 6, now, 1, &step, &err);
		if (d >= -1 && d <= 1)
			ok(r == 1 && step == now + d, "window 1: step %+d accepted as its own step",
			   d);
		else
			ok(r == 0, "window 1: step %+d refused", d);
	}
	mf_totp_code(code, secret, sizeof(secret), now + 2, 6, &err) == 0 ? (void)0 : abort();
	ok(mf_totp_verify(secret, sizeof(secret), code, 6, 6, now, 2, &step, &err) == 1,
	   "window 2 accepts step +2");
	ok(mf_totp_verify(secret, sizeof(secret), code, 6, 6, now, 0, &step, &err) == 0,
	   "window 0 refuses step +2");
	mf_totp_code(code, secret, sizeof(secret), now, 6, &err) == 0 ? (void)0 : abort();
	ok(mf_totp_verify(secret, sizeof(secret), code, 5, 6, now, 1, &step, &err) == 0,
	   "a code of the wrong length is refused");
	code[2] = 'x';
	ok(mf_totp_verify(secret, sizeof(secret), code, 6, 6, now, 1, &step, &err) == 0,
	   "a code with a non-digit is refused");
	ok(mf_totp_verify(secret, sizeof(secret), "", 0, 6, now, 1, &step, &err) == 0,
	   "an empty code is refused");
	/* near step 0 the window must not wrap around */
	mf_totp_code(code, secret, sizeof(secret), 0, 6, &err) == 0 ? (void)0 : abort();
	ok(mf_totp_verify(secret, sizeof(secret), code, 6, 6, 0, 1, &step, &err) == 1 && step == 0,
	   "step 0 verifies without wrapping");
	sodium_memzero(secret, sizeof(secret));
}

static void test_seal(void)
{
	unsigned char key[32], other[32], secret[MF_TOTP_SECRET_BYTES];
	unsigned char sealed[MF_TOTP_SEALED_BYTES], back[MF_TOTP_SECRET_BYTES];
	struct mf_error err;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(other, sizeof(other));
	mf_totp_secret_new(secret);
	mf_totp_secret_seal(sealed, secret, key);
	ok(MF_TOTP_SEALED_BYTES >= 40 && MF_TOTP_SEALED_BYTES <= 104,
	   "sealed size fits the accounts.totp_secret check");
	ok(mf_totp_secret_open(back, sealed, sizeof(sealed), key, &err) == 0 &&
	       memcmp(back, secret, sizeof(secret)) == 0,
	   "sealed secret opens with its key");
	ok(mf_totp_secret_open(back, sealed, sizeof(sealed), other, &err) < 0 &&
	       strstr(err.msg, "totp.key") != NULL,
	   "another key is refused, naming totp.key");
	sealed[30] ^= 1;
	ok(mf_totp_secret_open(back, sealed, sizeof(sealed), key, &err) < 0,
	   "an altered value is refused");
	ok(mf_totp_secret_open(back, sealed, 10, key, &err) < 0, "a short value is refused");
}

static void test_uri(void)
{
	const unsigned char rfc[] = "12345678901234567890";
	char *b32, *uri;

	b32 = mf_totp_base32(rfc, 20);
	ok(b32 != NULL && strcmp(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") == 0,
	   "base32 of the RFC secret");
	free(b32);
	b32 = mf_totp_base32((const unsigned char *)"f", 1);
	ok(b32 != NULL && strcmp(b32, "MY") == 0, "base32 without padding");
	free(b32);
	uri = mf_totp_uri("Stadt Musterhausen", "anna.b@example.org", rfc, 20, 6, 30);
	ok(uri != NULL &&
	       strcmp(uri, "otpauth://totp/Stadt%20Musterhausen:anna.b@example.org?"
	                   "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Stadt%20Musterhausen"
	                   "&algorithm=SHA1&digits=6&period=30") == 0,
	   "otpauth URI with escaped issuer");
	free(uri);
	uri = mf_totp_uri("x", "a:b&c?d", rfc, 20, 8, 60);
	ok(uri != NULL && strstr(uri, "totp/x:a%3Ab%26c%3Fd?") != NULL &&
	       strstr(uri, "digits=8&period=60") != NULL,
	   "reserved characters in the user are escaped");
	free(uri);
}

static void test_apppass(void)
{
	unsigned char key[32], h1[32], h2[32], h3[32];
	char pass[MF_APPPASS_DISPLAY], other[MF_APPPASS_DISPLAY], typed[64];
	size_t i, j;
	int shape = 1;

	randombytes_buf(key, sizeof(key));
	mf_apppass_new(pass);
	mf_apppass_new(other);
	for (i = 0; i < strlen(pass); i++) {
		if (i % 5 == 4)
			shape &= pass[i] == '-';
		else
			shape &= strchr("abcdefghijkmnpqrstuvwxyz23456789", pass[i]) != NULL;
	}
	ok(strlen(pass) == 24 && shape, "app password is five groups of four (%s)", pass);
	ok(strcmp(pass, other) != 0, "two app passwords differ");
	ok(mf_apppass_hash(h1, pass, strlen(pass), key) == 0, "hash of the printed form");
	for (i = j = 0; pass[i] != '\0'; i++) {
		if (pass[i] != '-')
			typed[j++] = (char)(pass[i] >= 'a' ? pass[i] - 'a' + 'A' : pass[i]);
		if (i == 9)
			typed[j++] = ' ';
	}
	ok(mf_apppass_hash(h2, typed, j, key) == 0 && memcmp(h1, h2, 32) == 0,
	   "typed in upper case without dashes, with a space: same hash");
	ok(mf_apppass_hash(h3, other, strlen(other), key) == 0 && memcmp(h1, h3, 32) != 0,
	   "another password hashes differently");
	ok(mf_apppass_hash(h3, "secret123456", 12, key) < 0,
	   "a password+code string is not shaped like an app password");
	ok(mf_apppass_hash(h3, pass, strlen(pass) - 1, key) < 0, "one character short: refused");
	memcpy(typed, pass, sizeof(pass));
	typed[0] = 'l'; /* not in the alphabet */
	ok(mf_apppass_hash(h3, typed, strlen(typed), key) < 0, "a character outside the alphabet");
}

static void test_recovery(void)
{
	unsigned char key[32], h1[32], h2[32];
	char code[MF_RECOVERY_DISPLAY], buf[128];

	randombytes_buf(key, sizeof(key));
	mf_recovery_new(code);
	ok(strlen(code) == 14 && code[4] == '-' && code[9] == '-', "recovery code shape (%s)",
	   code);
	snprintf(buf, sizeof(buf), "my password%s", code);
	ok(mf_recovery_suffix_len(buf, strlen(buf)) == 14, "found at the end of password+code");
	snprintf(buf, sizeof(buf), "pw%.4s%.4s%.4s", code, code + 5, code + 10);
	ok(mf_recovery_suffix_len(buf, strlen(buf)) == 12, "found without dashes");
	ok(mf_recovery_suffix_len("secret123456", 12) == 0, "a TOTP code is not one");
	ok(mf_recovery_suffix_len("abc", 3) == 0, "too short");
	snprintf(buf, sizeof(buf), "pw%.4s %.4s %.4s", code, code + 5, code + 10);
	ok(mf_recovery_suffix_len(buf, strlen(buf)) == 14, "found with spaces");
	ok(mf_recovery_hash(h1, code, 14, key) == 0 &&
	       mf_recovery_hash(h2, buf + 2, 14, key) == 0 && memcmp(h1, h2, 32) == 0,
	   "typed with spaces it hashes as with dashes");
	snprintf(buf, sizeof(buf), "pw%.4s%.4s%.4s", code, code + 5, code + 10);
	ok(mf_recovery_hash(h1, code, strlen(code), key) == 0 &&
	       mf_recovery_hash(h2, buf + 2, 12, key) == 0 && memcmp(h1, h2, 32) == 0,
	   "with and without dashes: same hash");
	ok(mf_recovery_hash(h2, "1234-5678-9012", 14, key) < 0, "digits are not recovery codes");
}

static void test_protocols(void)
{
	char out[128];
	struct mf_error err;

	ok(mf_protocols_to_array(out, sizeof(out), "imap,pop3,smtp", &err) == 0 &&
	       strcmp(out, "{imap,pop3,smtp}") == 0,
	   "protocol list becomes a text[] literal");
	ok(mf_protocols_to_array(out, sizeof(out), "IMAP", &err) == 0 && strcmp(out, "{imap}") == 0,
	   "folded to lower case");
	ok(mf_protocols_to_array(out, sizeof(out), "imap,,smtp", &err) < 0 &&
	       strstr(err.msg, "empty") != NULL,
	   "empty item refused");
	ok(mf_protocols_to_array(out, sizeof(out), "imap,Imap", &err) < 0 &&
	       strstr(err.msg, "twice") != NULL,
	   "duplicate refused");
	ok(mf_protocols_to_array(out, sizeof(out), "imap,sm\"tp", &err) < 0 &&
	       strstr(err.msg, "not allowed") != NULL,
	   "quote refused (cannot break the array literal)");
	ok(mf_protocols_to_array(out, sizeof(out), "", &err) < 0, "empty list refused");
}

/* One split for pam_mailfort and mailfort_crypt: what a user would type. */
static bool split_is(const char *s, unsigned digits, enum mf_login_factor factor,
                     const char *password, const char *code)
{
	struct mf_login_split r;
	size_t len = strlen(s);

	mf_login_split(&r, s, len, digits);
	return r.factor == factor && r.password_len == strlen(password) &&
	       memcmp(s, password, r.password_len) == 0 && r.code_len == strlen(code) &&
	       memcmp(s + r.password_len, code, r.code_len) == 0 &&
	       r.password_len + r.code_len == len;
}

static void test_login_split(void)
{
	char code[MF_RECOVERY_DISPLAY], buf[128];

	ok(split_is("secret123456", 6, MF_LOGIN_FACTOR_TOTP, "secret", "123456"),
	   "password + 6-digit code");
	ok(split_is("secret12345678", 8, MF_LOGIN_FACTOR_TOTP, "secret", "12345678"),
	   "password + 8-digit code on an 8-digit account");
	ok(split_is("hunter2024123456", 6, MF_LOGIN_FACTOR_TOTP, "hunter2024", "123456"),
	   "a password ending in digits keeps them: only the last 6 are the code");
	ok(split_is("1234567890123456", 6, MF_LOGIN_FACTOR_TOTP, "1234567890", "123456"),
	   "an all-digit password: the code is still the last 6");
	ok(split_is("hunter2024", 6, MF_LOGIN_FACTOR_NONE, "hunter2024", ""),
	   "a password ending in 4 digits without a code: no code, nothing taken off");
	ok(split_is("ab12345", 6, MF_LOGIN_FACTOR_NONE, "ab12345", ""),
	   "fewer than 6 trailing digits: no code");
	ok(split_is("123456", 6, MF_LOGIN_FACTOR_TOTP, "", "123456"),
	   "only a code: empty password");
	ok(split_is("12345", 6, MF_LOGIN_FACTOR_NONE, "12345", ""), "shorter than a code: no code");
	ok(split_is("x", 6, MF_LOGIN_FACTOR_NONE, "x", ""), "one character: no code");
	ok(split_is("", 6, MF_LOGIN_FACTOR_NONE, "", ""), "empty string: no code");
	ok(split_is("s3cret123456", 0, MF_LOGIN_FACTOR_NONE, "s3cret123456", ""),
	   "an account without TOTP (0 digits): no code");
	ok(split_is("비밀번호123456", 6, MF_LOGIN_FACTOR_TOTP, "비밀번호", "123456"),
	   "a Korean (UTF-8) password + code");
	ok(split_is("mot de passé 654321", 6, MF_LOGIN_FACTOR_TOTP, "mot de passé ", "654321"),
	   "a password with spaces and an accent keeps them, also the space before the code");
	ok(split_is("secret123456 ", 6, MF_LOGIN_FACTOR_NONE, "secret123456 ", ""),
	   "a trailing space: not trimmed, so no code");
	ok(split_is("secret123 456", 6, MF_LOGIN_FACTOR_NONE, "secret123 456", ""),
	   "a code typed with a space inside is not a code");
	ok(split_is("secret\t123456", 6, MF_LOGIN_FACTOR_TOTP, "secret\t", "123456"),
	   "a tab in the password is the password's");
	ok(split_is("passw\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6", 6,
	            MF_LOGIN_FACTOR_NONE, "passw\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6",
	            ""),
	   "Arabic-Indic digits are not code digits");

	mf_recovery_new(code);
	snprintf(buf, sizeof(buf), "secret%s", code);
	ok(split_is(buf, 6, MF_LOGIN_FACTOR_RECOVERY, "secret", code),
	   "password + recovery code with dashes");
	snprintf(buf, sizeof(buf), "2024%.4s%.4s%.4s", code, code + 5, code + 10);
	ok(split_is(buf, 6, MF_LOGIN_FACTOR_RECOVERY, "2024", buf + 4),
	   "a password of digits + a recovery code without dashes");
	ok(split_is(code, 6, MF_LOGIN_FACTOR_RECOVERY, "", code), "only a recovery code");
	ok(split_is("stackedwheat", 6, MF_LOGIN_FACTOR_RECOVERY, "", "stackedwheat"),
	   "12 letters of the recovery alphabet look like a recovery code (checked by hash)");
	ok(split_is("stacked wheat", 6, MF_LOGIN_FACTOR_NONE, "stacked wheat", ""),
	   "a passphrase with a space before its last 12 letters: no code");
	ok(split_is("Secret99ytyp eysb nzbj", 6, MF_LOGIN_FACTOR_RECOVERY, "Secret99",
	            "ytyp eysb nzbj"),
	   "a recovery code typed with spaces (the separators the hash drops)");
	ok(split_is("Secret99 ytyp eysb nzbj", 6, MF_LOGIN_FACTOR_RECOVERY, "Secret99 ",
	            "ytyp eysb nzbj"),
	   "a space before the code is the password's, as before a TOTP code");
	ok(split_is("Secret99ytyp-eysb nzbj", 6, MF_LOGIN_FACTOR_RECOVERY, "Secret99",
	            "ytyp-eysb nzbj"),
	   "a dash and a space mixed");
	ok(split_is("Secret99ytyp_eysb_nzbj", 6, MF_LOGIN_FACTOR_NONE, "Secret99ytyp_eysb_nzbj",
	            ""),
	   "other separators are no code (the hash would not drop them)");
}

static void test_apppass_normalise(void)
{
	char pass[MF_APPPASS_DISPLAY], norm[MF_APPPASS_CHARS + 1], typed[64];
	size_t i, j;

	mf_apppass_new(pass);
	ok(mf_apppass_normalise(norm, pass, strlen(pass)) == 0 && strlen(norm) == 20 &&
	       strchr(norm, '-') == NULL,
	   "the printed form normalises to 20 characters");
	for (i = j = 0; pass[i] != '\0'; i++) {
		if (pass[i] == '-')
			typed[j++] = ' ';
		else
			typed[j++] = (char)(pass[i] >= 'a' ? pass[i] - 'a' + 'A' : pass[i]);
	}
	typed[j] = '\0';
	{
		char again[MF_APPPASS_CHARS + 1];

		ok(mf_apppass_normalise(again, typed, j) == 0 && strcmp(again, norm) == 0,
		   "upper case with spaces: the same normal form");
	}
	ok(mf_apppass_normalise(norm, "secret123456", 12) < 0, "a password+code is not one");
	ok(mf_apppass_normalise(norm, pass, strlen(pass) - 1) < 0 && norm[0] == '\0',
	   "one character short: refused, and nothing left in the output");
	snprintf(typed, sizeof(typed), "%s\t", pass);
	ok(mf_apppass_normalise(norm, typed, strlen(typed)) < 0, "a tab is not a separator");
	snprintf(typed, sizeof(typed), "é%s", pass + 1);
	ok(mf_apppass_normalise(norm, typed, strlen(typed)) < 0, "a non-ASCII letter is refused");
}

int main(void)
{
	struct mf_error err;

	if (mf_crypto_init(&err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	test_vectors();
	test_window();
	test_seal();
	test_uri();
	test_apppass();
	test_recovery();
	test_login_split();
	test_apppass_normalise();
	test_protocols();
	return tap_done();
}
