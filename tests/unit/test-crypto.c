/*
 * test-crypto.c - key files, secretbox, password wrapping, keyed hash,
 * sealed boxes and account key wrapping (lib/crypto*.c).
 *
 * Prints TAP.  Works in a fresh directory under $MF_TEST_TMP (or /tmp)
 * and removes it at the end.
 */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mf-crypto.h"
#include "tap.h"

static const struct mf_pwhash_params fast = {.opslimit = 1, .memlimit = (size_t)8 << 20};

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(2);
	}
	close(fd);
	if (chmod(path, mode) < 0) {
		perror(path);
		exit(2);
	}
}

/* snprintf that fails the test run instead of truncating. */
__attribute__((format(printf, 3, 4))) static void fmt(char *out, size_t size, const char *f, ...)
{
	va_list args;
	int n;

	va_start(args, f);
	n = vsnprintf(out, size, f, args);
	va_end(args);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "path too long\n");
		exit(2);
	}
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void remove_dir(const char *dir)
{
	char path[4096];
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) < 0)
			rmdir(path);
	}
	closedir(d);
	rmdir(dir);
}

static void test_key_files(const char *dir)
{
	static const mode_t bad_modes[] = {0644, 0640, 0604, 0660, 0620, 0602, 0601, 0610};
	unsigned char key[32], key2[32], loaded[32];
	char path[4096], link_path[4096], sub[4096], msg[4400];
	struct mf_error err;
	struct stat st;
	size_t i;

	randombytes_buf(key, sizeof(key));
	fmt(path, sizeof(path), "%s/master.key", dir);

	ok(mf_key_save(path, MF_KEY_SECRET, key, sizeof(key), false, &err) == 0,
	   "secret key saved");
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "secret key file has mode 0600");
	ok(count_entries(dir) == 1, "no temporary file left behind after save");
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) == 0 &&
	       memcmp(key, loaded, sizeof(key)) == 0,
	   "mode 0600 secret key loads with the saved bytes");
	ok(mf_key_check_mode(path, &err) == 0, "mode check accepts 0600");

	for (i = 0; i < MF_N_ELEMENTS(bad_modes); i++) {
		chmod(path, bad_modes[i]);
		memset(loaded, 0xaa, sizeof(loaded));
		memset(&err, 0, sizeof(err));
		fmt(msg, sizeof(msg), "key file %s has mode %04o: it must not be", path,
		    (unsigned int)bad_modes[i]);
		ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
		       strstr(err.msg, msg) != NULL && strstr(err.msg, "chmod 600") != NULL,
		   "secret key with mode %04o refused, message names file and mode: %s",
		   (unsigned int)bad_modes[i], err.msg);
		ok(sodium_is_zero(loaded, sizeof(loaded)), "refused load leaves no key bytes");
		ok(mf_key_check_mode(path, &err) < 0, "mode check refuses %04o",
		   (unsigned int)bad_modes[i]);
	}
	chmod(path, 0644);
	fmt(msg, sizeof(msg),
	    "key file %s has mode 0644: it must not be readable by group or others (chmod "
	    "600)",
	    path);
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strcmp(err.msg, msg) == 0,
	   "0644 message is exactly the documented one");
	ok(mf_key_load(path, MF_KEY_PUBLIC, loaded, sizeof(loaded), &err) == 0,
	   "a public key may be world-readable");
	chmod(path, 0400);
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) == 0,
	   "mode 0400 secret key accepted");
	chmod(path, 0600);

	/* A directory others can write to: anyone could put a key in place. */
	chmod(dir, 0770);
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, "key directory") != NULL && strstr(err.msg, "0770") != NULL &&
	       sodium_is_zero(loaded, sizeof(loaded)),
	   "secret key in a group-writable directory refused: %s", err.msg);
	chmod(dir, 01777);
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, "1777") != NULL,
	   "... and in a world-writable sticky one: %s", err.msg);
	ok(mf_key_load(path, MF_KEY_PUBLIC, loaded, sizeof(loaded), &err) == 0,
	   "a public key may be anywhere");
	chmod(dir, 0711);
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) == 0,
	   "0711 directory (as documented) accepted");
	chmod(dir, 0700);

	/* Wrong sizes. */
	fmt(sub, sizeof(sub), "%s/short.key", dir);
	write_file(sub, key, 31, 0600);
	ok(mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, "has 31 bytes, expected 32") != NULL,
	   "31-byte key file refused: %s", err.msg);
	write_file(sub, key, 0, 0600);
	ok(mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0,
	   "empty key file refused");
	{
		unsigned char big[33] = {0};
		write_file(sub, big, sizeof(big), 0600);
	}
	ok(mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, "has 33 bytes") != NULL,
	   "33-byte key file refused");
	unlink(sub);

	/* Symlinks, directories, FIFOs, missing files. */
	fmt(link_path, sizeof(link_path), "%s/link.key", dir);
	ok(symlink(path, link_path) == 0, "symlink created");
	ok(mf_key_load(link_path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, "symbolic link") != NULL,
	   "symlink to a good key refused: %s", err.msg);
	ok(mf_key_load(link_path, MF_KEY_PUBLIC, loaded, sizeof(loaded), &err) < 0,
	   "symlink refused for public keys too");
	ok(mf_key_check_mode(link_path, &err) < 0, "mode check refuses a symlink");
	unlink(link_path);
	fmt(sub, sizeof(sub), "%s/dir.key", dir);
	mkdir(sub, 0700);
	ok(mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, "not a regular file") != NULL,
	   "directory refused: %s", err.msg);
	rmdir(sub);
	fmt(sub, sizeof(sub), "%s/fifo.key", dir);
	if (mkfifo(sub, 0600) == 0) {
		ok(mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
		       strstr(err.msg, "not a regular file") != NULL,
		   "FIFO refused without blocking: %s", err.msg);
		unlink(sub);
	}
	fmt(sub, sizeof(sub), "%s/missing.key", dir);
	ok(mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) < 0 &&
	       strstr(err.msg, sub) != NULL,
	   "missing key file: message names it: %s", err.msg);

	/* No overwrite unless asked; atomic replace when asked. */
	randombytes_buf(key2, sizeof(key2));
	ok(mf_key_save(path, MF_KEY_SECRET, key2, sizeof(key2), false, &err) < 0 &&
	       strstr(err.msg, "already exists") != NULL,
	   "save refuses to overwrite: %s", err.msg);
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) == 0 &&
	       memcmp(loaded, key, sizeof(key)) == 0,
	   "refused save left the old key intact");
	ok(mf_key_save(path, MF_KEY_SECRET, key2, sizeof(key2), true, &err) == 0,
	   "save with overwrite replaces the key");
	ok(mf_key_load(path, MF_KEY_SECRET, loaded, sizeof(loaded), &err) == 0 &&
	       memcmp(loaded, key2, sizeof(key2)) == 0,
	   "replaced key has the new bytes");
	ok(count_entries(dir) == 1, "no temporary file left behind after replace");
	unlink(path);

	fmt(sub, sizeof(sub), "%s/audit-sign.pub", dir);
	ok(mf_key_save(sub, MF_KEY_PUBLIC, key, sizeof(key), false, &err) == 0 &&
	       stat(sub, &st) == 0 && (st.st_mode & 07777) == 0644,
	   "public key saved with mode 0644");
	unlink(sub);
	fmt(sub, sizeof(sub), "%s/nodir/x.key", dir);
	ok(mf_key_save(sub, MF_KEY_SECRET, key, sizeof(key), false, &err) < 0 &&
	       strstr(err.msg, sub) != NULL,
	   "save into a missing directory fails with a message naming the file");
	fmt(sub, sizeof(sub), "%s/totp.key", dir);
	ok(mf_key_generate(sub, key, sizeof(key), false, &err) == 0 &&
	       mf_key_load(sub, MF_KEY_SECRET, loaded, sizeof(loaded), &err) == 0 &&
	       memcmp(loaded, key, sizeof(key)) == 0 && !sodium_is_zero(key, sizeof(key)),
	   "mf_key_generate writes a random secret key");
	unlink(sub);
}

static void test_secretbox(void)
{
	unsigned char key[crypto_secretbox_KEYBYTES], key2[crypto_secretbox_KEYBYTES];
	unsigned char msg[20], box[sizeof(msg) + MF_SECRETBOX_OVERHEAD], box2[sizeof(box)];
	unsigned char out[sizeof(msg)];
	size_t i;
	int caught = 0;

	crypto_secretbox_keygen(key);
	crypto_secretbox_keygen(key2);
	randombytes_buf(msg, sizeof(msg));
	mf_secretbox_seal(box, msg, sizeof(msg), key);
	ok(mf_secretbox_open(out, box, sizeof(box), key) == 0 && memcmp(out, msg, sizeof(msg)) == 0,
	   "secretbox round trip");
	mf_secretbox_seal(box2, msg, sizeof(msg), key);
	ok(memcmp(box, box2, sizeof(box)) != 0, "two seals of one message differ (random nonce)");
	for (i = 0; i < sizeof(box); i++) {
		box[i] ^= 0x01;
		caught += mf_secretbox_open(out, box, sizeof(box), key) < 0;
		box[i] ^= 0x01;
	}
	ok(caught == (int)sizeof(box), "every flipped byte of a secretbox is detected (%d/%zu)",
	   caught, sizeof(box));
	ok(mf_secretbox_open(out, box, sizeof(box), key2) < 0, "wrong key refused");
	ok(mf_secretbox_open(out, box, MF_SECRETBOX_OVERHEAD - 1, key) < 0, "short box refused");
	ok(mf_secretbox_open(out, box, sizeof(box) - 1, key) < 0, "truncated box refused");
}

static void test_pwwrap(void)
{
	static const char pw[] = "correct horse battery staple";
	unsigned char secret[32], out[32];
	unsigned char blob[32 + MF_PWWRAP_OVERHEAD];
	struct mf_pwhash_params p;
	struct mf_error err;
	static const size_t positions[] = {0, 3, 4, 5, 9, 13, 28, 29, 52, 53, 70, 84, 85, 100};
	size_t i;
	int caught = 0;

	ok(MF_PWWRAP_OVERHEAD == 69, "password wrap overhead is 69 bytes");
	randombytes_buf(secret, sizeof(secret));
	ok(mf_pwwrap(blob, secret, sizeof(secret), pw, strlen(pw), &fast, &err) == 0,
	   "password wrap");
	ok(memcmp(blob, "MFW1", 4) == 0, "blob starts with MFW1");
	ok(mf_pwwrap_params(blob, sizeof(blob), &p, &err) == 0 && p.opslimit == 1 &&
	       p.memlimit == ((size_t)8 << 20),
	   "parameters are read back from the blob");
	ok(mf_pwunwrap(out, blob, sizeof(blob), pw, strlen(pw), &err) == 0 &&
	       memcmp(out, secret, sizeof(secret)) == 0,
	   "password unwrap round trip");
	memset(out, 0xaa, sizeof(out));
	ok(mf_pwunwrap(out, blob, sizeof(blob), "wrong", 5, &err) < 0 &&
	       strstr(err.msg, "wrong password") != NULL && sodium_is_zero(out, sizeof(out)),
	   "wrong password refused, output wiped: %s", err.msg);
	ok(mf_pwunwrap(out, blob, sizeof(blob), pw, strlen(pw) - 1, &err) < 0,
	   "password prefix refused");
	for (i = 0; i < MF_N_ELEMENTS(positions); i++) {
		blob[positions[i]] ^= 0x01;
		caught += mf_pwunwrap(out, blob, sizeof(blob), pw, strlen(pw), &err) < 0;
		blob[positions[i]] ^= 0x01;
	}
	ok(caught == (int)MF_N_ELEMENTS(positions),
	   "flipped bytes in magic, parameters, salt, nonce, ciphertext and tag detected");
	ok(mf_pwunwrap(out, blob, sizeof(blob) - 1, pw, strlen(pw), &err) < 0,
	   "truncated blob refused");
	/* A planted blob asking for 4 GiB must not make a login allocate it. */
	blob[9] = 0;
	blob[10] = 0;
	blob[11] = 0;
	blob[12] = 0x01; /* 16 GiB in KiB */
	ok(mf_pwunwrap(out, blob, sizeof(blob), pw, strlen(pw), &err) < 0 &&
	       strstr(err.msg, "memlimit") != NULL,
	   "out-of-range memlimit in a blob refused: %s", err.msg);
	p.opslimit = 0;
	p.memlimit = (size_t)64 << 20;
	ok(mf_pwwrap(blob, secret, sizeof(secret), pw, strlen(pw), &p, &err) < 0,
	   "wrap refuses opslimit 0");
	ok(mf_pwwrap(blob, secret, sizeof(secret), pw, strlen(pw), &mf_pwhash_interactive, &err) ==
	           0 &&
	       mf_pwunwrap(out, blob, sizeof(blob), pw, strlen(pw), &err) == 0 &&
	       memcmp(out, secret, sizeof(secret)) == 0,
	   "round trip with the interactive parameters");
}

static void test_keyed_hash(void)
{
	static const char data[] = "mailfort keyed hash test vector";
	static const char expect[] =
	    "227131410c66686c6afb66ea549c8c93487a0fb0f77d671dc90913a908cc234c";
	unsigned char key[32], h1[MF_KEYED_HASH_BYTES], h2[MF_KEYED_HASH_BYTES];
	char hex[2 * MF_KEYED_HASH_BYTES + 1];
	size_t i;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	mf_keyed_hash(h1, data, strlen(data), key);
	sodium_bin2hex(hex, sizeof(hex), h1, sizeof(h1));
	ok(strcmp(hex, expect) == 0, "keyed hash matches BLAKE2b-256 keyed test vector");
	mf_keyed_hash(h2, data, strlen(data), key);
	ok(memcmp(h1, h2, sizeof(h1)) == 0, "keyed hash is stable");
	key[0] ^= 1;
	mf_keyed_hash(h2, data, strlen(data), key);
	ok(memcmp(h1, h2, sizeof(h1)) != 0, "another key gives another hash");
}

static void test_account_keys(void)
{
	unsigned char pk[32], sk[32], pk2[32], sk2[32], rpk[32], rsk[32], out[32];
	unsigned char master[32], master2[32];
	unsigned char wrap[MF_ACCOUNT_WRAP_SERVER_BYTES], pwrap[MF_ACCOUNT_WRAP_PASSWORD_BYTES];
	unsigned char wrap2[MF_ACCOUNT_WRAP_SERVER_BYTES], escrow[MF_ACCOUNT_ESCROW_BYTES];
	unsigned char sealed[5 + MF_SEAL_OVERHEAD], small[5];
	char hex[17], hex2[17];
	struct mf_error err;

	mf_account_keypair(pk, sk);
	mf_account_keypair(pk2, sk2);
	mf_account_keypair(rpk, rsk);
	randombytes_buf(master, sizeof(master));
	randombytes_buf(master2, sizeof(master2));
	ok(mf_account_key_check(pk, sk, &err) == 0, "key pair matches");
	ok(mf_account_key_check(pk, sk2, &err) < 0, "mismatched key pair detected");
	mf_account_key_id_hex(hex, pk);
	mf_account_key_id_hex(hex2, pk2);
	ok(strlen(hex) == 16 && strcmp(hex, hex2) != 0, "key ids are 16 hex digits, distinct");

	ok(mf_account_wrap_server(wrap, pk, sk, master, &err) == 0, "server-mode wrap");
	ok(sizeof(wrap) == 76 && mf_account_wrap_kind(wrap, sizeof(wrap)) == MF_ACCOUNT_WRAP_SERVER,
	   "server wrap is 76 bytes and recognised");
	ok(mf_account_unwrap_server(out, wrap, sizeof(wrap), pk, master, &err) == 0 &&
	       memcmp(out, sk, 32) == 0,
	   "server-mode unwrap round trip");
	ok(mf_account_unwrap_server(out, wrap, sizeof(wrap), pk, master2, &err) < 0 &&
	       sodium_is_zero(out, sizeof(out)),
	   "wrong master key refused: %s", err.msg);
	ok(mf_account_unwrap_server(out, wrap, sizeof(wrap), pk2, master, &err) < 0,
	   "wrapped key presented for another account's public key refused");
	ok(mf_account_wrap_server(wrap2, pk, sk2, master, &err) < 0,
	   "wrapping a secret key under the wrong public key refused");
	wrap[40] ^= 1;
	ok(mf_account_unwrap_server(out, wrap, sizeof(wrap), pk, master, &err) < 0,
	   "tampered server wrap refused");
	wrap[40] ^= 1;

	ok(mf_account_wrap_password(pwrap, pk, sk, "pw", 2, &fast, &err) == 0 &&
	       mf_account_wrap_kind(pwrap, sizeof(pwrap)) == MF_ACCOUNT_WRAP_PASSWORD,
	   "password-mode wrap recognised");
	ok(mf_account_unwrap_password(out, pwrap, sizeof(pwrap), pk, "pw", 2, &err) == 0 &&
	       memcmp(out, sk, 32) == 0,
	   "password-mode unwrap round trip");
	ok(mf_account_unwrap_password(out, pwrap, sizeof(pwrap), pk2, "pw", 2, &err) < 0 &&
	       strstr(err.msg, "does not belong") != NULL,
	   "password wrap of another account refused: %s", err.msg);
	ok(mf_account_unwrap_password(out, pwrap, sizeof(pwrap), pk, "pW", 2, &err) < 0,
	   "password-mode wrong password refused");
	ok(mf_account_unwrap_server(out, pwrap, sizeof(pwrap), pk, master, &err) < 0,
	   "password blob is not accepted as a server blob");

	ok(mf_account_escrow(escrow, sk, rpk, &err) == 0 &&
	       mf_account_escrow_open(out, escrow, sizeof(escrow), pk, rpk, rsk, &err) == 0 &&
	       memcmp(out, sk, 32) == 0,
	   "escrow copy opens with the recovery key");
	ok(mf_account_escrow_open(out, escrow, sizeof(escrow), pk, pk2, sk2, &err) < 0,
	   "escrow copy does not open with another key");

	memcpy(small, "hello", 5);
	ok(mf_seal(sealed, small, sizeof(small), pk, &err) == 0 &&
	       mf_seal_open(out, sealed, sizeof(sealed), pk, sk, &err) == 0 &&
	       memcmp(out, "hello", 5) == 0,
	   "sealed box round trip");
	sealed[10] ^= 1;
	ok(mf_seal_open(out, sealed, sizeof(sealed), pk, sk, &err) < 0, "tampered sealed box");
	ok(mf_seal_open(out, sealed, MF_SEAL_OVERHEAD - 1, pk, sk, &err) < 0, "short sealed box");
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));
	sodium_memzero(rsk, sizeof(rsk));
}

int main(void)
{
	struct mf_error err;
	const char *base = getenv("MF_TEST_TMP");
	char dir[4096];

	if (base == NULL || *base == '\0')
		base = "/tmp";
	mkdir(base, 0700);
	fmt(dir, sizeof(dir), "%s/test-crypto.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		return 2;
	}
	ok(mf_crypto_init(&err) == 0, "libsodium initialised");
	ok(mf_crypto_init(&err) == 0, "initialising twice is fine");
	test_key_files(dir);
	test_secretbox();
	test_pwwrap();
	test_keyed_hash();
	test_account_keys();
	remove_dir(dir);
	return tap_done();
}
