/*
 * ctl-keys.c - mailfortctl keys: create and inspect the server keys.
 *
 * SYNOPSIS
 *   mailfortctl keys init [--force]   create the key dir (0700) and keys
 *   mailfortctl keys status           list each key: mode, owner, size, safety
 *
 * The keys (raw bytes, see mf-crypto.h) live in [keys] dir:
 *   master.key, totp.key, hash.key, spam.key, mail-mac.key
 *                                    32 random bytes each, mode 0600
 *   audit-sign.key / audit-sign.pub  Ed25519 key pair, 0600 / 0644
 *
 * init refuses to replace any existing key unless --force is given, and
 * with --missing creates only the keys that do not exist yet (mail-mac.key
 * on a site set up before it existed); otherwise it refuses and
 * then names the file; replacing keys makes stored mail, TOTP secrets and
 * app passwords unusable, so --force is for a site that has none yet.
 * Files are written through mf_key_save (temporary file + rename); key
 * material is wiped from memory after use.  status exits 1 when a key is
 * missing, has the wrong size or a mode that lets others read (secret) or
 * write (any) it, or when audit-sign.pub is not audit-sign.key's public half.
 *
 * Exit status: 0 success, 1 failure (one line on stderr), 2 usage.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-crypto.h"

#define KEY_MAX 64

static const struct {
	const char *file;
	enum mf_key_kind kind;
	size_t len;
	const char *use;
} server_keys[] = {
    {"master.key", MF_KEY_SECRET, 32, "wraps mail private keys (server mode)"},
    {"totp.key", MF_KEY_SECRET, crypto_secretbox_KEYBYTES, "encrypts TOTP secrets"},
    {"hash.key", MF_KEY_SECRET, crypto_generichash_KEYBYTES,
     "keyed hash of app passwords and recovery codes"},
    {"spam.key", MF_KEY_SECRET, 32, "keys the spam token ids (mailfort-milter, spam train)"},
    {"mail-mac.key", MF_KEY_SECRET, 32,
     "authenticates stored mail (mailfort_crypt, [crypt] require_encrypted)"},
    {"audit-sign.key", MF_KEY_SECRET, crypto_sign_SECRETKEYBYTES,
     "signs audit checkpoints (mailfort-auditd only)"},
    {"audit-sign.pub", MF_KEY_PUBLIC, crypto_sign_PUBLICKEYBYTES, "verifies audit checkpoints"},
};

static void usage(FILE *out)
{
	fputs("usage: mailfortctl keys COMMAND\n\n"
	      "commands:\n"
	      "  init [--force]   create the key directory and the server keys\n"
	      "  status           list the keys with mode, owner and size; warn if unsafe\n",
	      out);
}

static int key_path(char *buf, size_t size, const char *dir, const char *file)
{
	int n = snprintf(buf, size, "%s/%s", dir, file);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* mkdir -p for the parents (0755), the directory itself 0700. */
static int make_key_dir(const char *dir, bool quiet)
{
	char path[4096];
	struct stat st;
	size_t i, len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return ctl_fail("keys dir '%s': bad path", dir);
	memcpy(path, dir, len + 1);
	for (i = 1; i < len; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return ctl_fail("cannot create %s: %s", path, strerror(errno));
		path[i] = '/';
	}
	if (mkdir(dir, 0700) == 0) {
		if (!quiet)
			printf("created %s (0700)\n", dir);
		return 0;
	}
	if (errno != EEXIST)
		return ctl_fail("cannot create %s: %s", dir, strerror(errno));
	if (stat(dir, &st) < 0)
		return ctl_fail("cannot stat %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return ctl_fail("keys dir %s exists and is not a directory", dir);
	if ((st.st_mode & 0077) != 0 && st.st_uid == geteuid()) {
		if (chmod(dir, 0700) < 0)
			return ctl_fail("cannot chmod 0700 %s: %s", dir, strerror(errno));
		if (!quiet)
			printf("changed %s from %04o to 0700\n", dir,
			       (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

static int cmd_init(struct ctl *ctl, int argc, char **argv)
{
	const struct mf_config *cfg;
	unsigned char key[KEY_MAX], pub[crypto_sign_PUBLICKEYBYTES];
	char path[4096];
	struct mf_error err;
	struct stat st;
	const char *dir;
	bool force = false, missing = false, made_sign = false;
	size_t i;
	int ret = 0;

	for (; argc > 0; argc--, argv++) {
		if (ctl_is_help(argv[0])) {
			printf("usage: mailfortctl keys init [--force | --missing]\n\n"
			       "Create the key directory ([keys] dir, mode 0700) and the server "
			       "keys:\n");
			for (i = 0; i < MF_N_ELEMENTS(server_keys); i++)
				printf("  %-15s %2zu bytes  %s\n", server_keys[i].file,
				       server_keys[i].len, server_keys[i].use);
			printf(
			    "\n--missing creates only the keys that do not exist yet (a key added "
			    "by a\nnewer version).  "
			    "Existing keys are never replaced unless --force is given.  "
			    "Replacing\n"
			    "keys makes stored mail, TOTP enrolments and app passwords "
			    "unusable.\n");
			return 0;
		}
		if (strcmp(argv[0], "--force") == 0)
			force = true;
		else if (strcmp(argv[0], "--missing") == 0)
			missing = true;
		else
			return ctl_usage("keys init: unexpected argument '%s'", argv[0]);
	}
	if ((cfg = ctl_config(ctl)) == NULL)
		return 1;
	dir = mf_config_str(cfg, "keys", "dir");
	if (dir == NULL || dir[0] != '/')
		return ctl_fail("[keys] dir is not set to an absolute path in %s",
		                ctl->config_path);
	/* Check every file before creating any, so a refusal changes nothing. */
	for (i = 0; i < MF_N_ELEMENTS(server_keys); i++) {
		if (key_path(path, sizeof(path), dir, server_keys[i].file) < 0)
			return ctl_fail("keys dir '%s': path too long", dir);
		if (!force && !missing && lstat(path, &st) == 0)
			return ctl_fail("%s already exists; not replacing keys without --force",
			                path);
	}
	if (make_key_dir(dir, ctl->quiet) != 0)
		return 1;

	for (i = 0; i < MF_N_ELEMENTS(server_keys) && ret == 0; i++) {
		(void)key_path(path, sizeof(path), dir, server_keys[i].file);
		/* --missing: keep every key there is (the audit pair as a pair:
		   its public half is written only with a new secret half) */
		if (missing &&
		    (strcmp(server_keys[i].file, "audit-sign.pub") == 0 ? !made_sign
		                                                        : lstat(path, &st) == 0))
			continue;
		if (strcmp(server_keys[i].file, "audit-sign.key") == 0)
			made_sign = true;
		if (strcmp(server_keys[i].file, "audit-sign.key") == 0) {
			if (crypto_sign_keypair(pub, key) != 0) {
				ret = ctl_fail("cannot generate the audit signing key pair");
				break;
			}
		} else if (strcmp(server_keys[i].file, "audit-sign.pub") == 0) {
			memcpy(key, pub, sizeof(pub)); /* generated with audit-sign.key */
		} else {
			randombytes_buf(key, server_keys[i].len);
		}
		if (mf_key_save(path, server_keys[i].kind, key, server_keys[i].len, force, &err) <
		    0)
			ret = ctl_fail("%s", err.msg);
		else if (!ctl->quiet)
			printf("created %s (%s)\n", path,
			       server_keys[i].kind == MF_KEY_SECRET ? "0600" : "0644");
	}
	sodium_memzero(key, sizeof(key));
	sodium_memzero(pub, sizeof(pub));
	return ret;
}

static const char *owner_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		return pw->pw_name;
	snprintf(buf, size, "%u", (unsigned)uid);
	return buf;
}

static const char *group_name(gid_t gid, char *buf, size_t size)
{
	struct group *gr = getgrgid(gid);

	if (gr != NULL)
		return gr->gr_name;
	snprintf(buf, size, "%u", (unsigned)gid);
	return buf;
}

/* Does audit-sign.pub belong to audit-sign.key?  Checked only when this
   user can read the secret key; checkpoints signed with one and verified
   with the other would all fail. */
static const char *check_sign_pair(const char *dir, const char *pub_path)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES],
	    derived[crypto_sign_PUBLICKEYBYTES];
	char sk_path[4096];
	struct mf_error err;
	const char *problem = "ok";

	if (key_path(sk_path, sizeof(sk_path), dir, "audit-sign.key") < 0 ||
	    access(sk_path, R_OK) != 0)
		return "ok";
	if (mf_key_load(sk_path, MF_KEY_SECRET, sk, sizeof(sk), &err) < 0)
		return "ok"; /* reported on audit-sign.key's own line */
	if (mf_key_load(pub_path, MF_KEY_PUBLIC, pk, sizeof(pk), &err) < 0)
		problem = "BAD: cannot be read";
	else if (crypto_sign_ed25519_sk_to_pk(derived, sk) != 0 ||
	         sodium_memcmp(derived, pk, sizeof(pk)) != 0)
		problem = "BAD: does not match audit-sign.key";
	sodium_memzero(sk, sizeof(sk));
	return problem;
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	const struct mf_config *cfg;
	char path[4096], ubuf[32], gbuf[32];
	const char *dir, *problem;
	struct stat st;
	size_t i, bad = 0;

	if (argc > 0 && ctl_is_help(argv[0])) {
		printf("usage: mailfortctl keys status\n\n"
		       "List the key directory and each server key with its mode, owner and\n"
		       "size.  Exits 1 when a key is missing, has the wrong size, or a mode that\n"
		       "lets group or other read a secret key or write any key.\n");
		return 0;
	}
	if (argc > 0)
		return ctl_usage("keys status: unexpected argument '%s'", argv[0]);
	if ((cfg = ctl_config(ctl)) == NULL)
		return 1;
	dir = mf_config_str(cfg, "keys", "dir");
	if (dir == NULL || dir[0] != '/')
		return ctl_fail("[keys] dir is not set to an absolute path in %s",
		                ctl->config_path);
	if (stat(dir, &st) < 0)
		return ctl_fail("keys dir %s: %s (run 'mailfortctl keys init')", dir,
		                strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return ctl_fail("keys dir %s is not a directory", dir);
	problem = (st.st_mode & 0066) != 0 ? "UNSAFE: group/other may list or write" : "ok";
	if ((st.st_mode & 0066) != 0)
		bad++;
	printf("%-40s %04o %s:%s  %s\n", dir, (unsigned)(st.st_mode & 07777),
	       owner_name(st.st_uid, ubuf, sizeof(ubuf)), group_name(st.st_gid, gbuf, sizeof(gbuf)),
	       problem);
	for (i = 0; i < MF_N_ELEMENTS(server_keys); i++) {
		if (key_path(path, sizeof(path), dir, server_keys[i].file) < 0)
			return ctl_fail("keys dir '%s': path too long", dir);
		if (lstat(path, &st) < 0) {
			printf("  %-15s missing\n", server_keys[i].file);
			bad++;
			continue;
		}
		if (!S_ISREG(st.st_mode))
			problem = "UNSAFE: not a regular file";
		else if (server_keys[i].kind == MF_KEY_SECRET && (st.st_mode & 0077) != 0)
			problem = "UNSAFE: group/other have access to a secret key";
		else if ((st.st_mode & 0022) != 0)
			problem = "UNSAFE: group/other may write it";
		else if ((size_t)st.st_size != server_keys[i].len)
			problem = "BAD: wrong size";
		else if (strcmp(server_keys[i].file, "audit-sign.pub") == 0)
			problem = check_sign_pair(dir, path);
		else
			problem = "ok";
		if (strcmp(problem, "ok") != 0)
			bad++;
		printf("  %-15s %04o %s:%s %3lld bytes  %s\n", server_keys[i].file,
		       (unsigned)(st.st_mode & 07777), owner_name(st.st_uid, ubuf, sizeof(ubuf)),
		       group_name(st.st_gid, gbuf, sizeof(gbuf)), (long long)st.st_size, problem);
	}
	if (bad > 0)
		return ctl_fail("%zu problem%s with the keys in %s", bad, bad == 1 ? "" : "s", dir);
	return 0;
}

int ctl_keys_cmd(struct ctl *ctl, int argc, char **argv)
{
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	if (ctl_is_help(argv[0])) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[0], "init") == 0)
		return cmd_init(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "status") == 0)
		return cmd_status(ctl, argc - 1, argv + 1);
	return ctl_usage("unknown keys command '%s'", argv[0]);
}
