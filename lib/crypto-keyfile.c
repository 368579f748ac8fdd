/*
 * crypto-keyfile.c - load and save raw key files safely.
 *
 * mf_key_load reads exactly `len` bytes from a regular file and refuses:
 * symbolic links (O_NOFOLLOW), anything that is not a regular file, a file
 * of any other size, and (for secret keys) a file with any group or other
 * permission bit or in a directory writable by group or others (where
 * anyone could put another key in its place).  mf_key_save writes a
 * temp file in the same directory, fsyncs it, then renames it into place (or hard-links it when it
 * must not replace an existing file, which makes "refuse to overwrite" race-free), and fsyncs the
 * directory.  Every function returns 0 or -1 with a message naming the file; key bytes are never
 * part of a message and the caller's buffer is wiped on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mf-crypto.h"
#include "mf-io.h"

static int key_mode_error(const char *path, mode_t mode, struct mf_error *err)
{
	unsigned int perm = (unsigned int)(mode & 07777);

	if ((mode & (S_IRGRP | S_IROTH)) != 0)
		return mf_error_set(
		    err,
		    "key file %s has mode %04o: it must not be readable by group or "
		    "others (chmod 600)",
		    path, perm);
	return mf_error_set(err,
	                    "key file %s has mode %04o: it must not be accessible by group or "
	                    "others (chmod 600)",
	                    path, perm);
}

int mf_key_check_mode(const char *path, struct mf_error *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return mf_error_set(err, "key file %s: %s", path, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return mf_error_set(err, "key file %s is a symbolic link: refusing it", path);
	if (!S_ISREG(st.st_mode))
		return mf_error_set(err, "key file %s is not a regular file", path);
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		return key_mode_error(path, st.st_mode, err);
	return 0;
}

/* Whoever can write to a key's directory can replace the key: the directory
   must not be writable by group or others. */
static int check_key_dir(const char *path, struct mf_error *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return mf_error_set(err, "key file name %s is too long", path);
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	if (stat(dir, &st) < 0)
		return mf_error_set(err, "cannot stat key directory %s: %s", dir, strerror(errno));
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return mf_error_set(err,
		                    "key directory %s has mode %04o: others could replace the keys "
		                    "in it (chmod go-w)",
		                    dir, (unsigned int)(st.st_mode & 07777));
	return 0;
}

int mf_key_load(const char *path, enum mf_key_kind kind, unsigned char *key, size_t len,
                struct mf_error *err)
{
	struct stat st;
	size_t done = 0;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO planted in place of a key must not hang us. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			return mf_error_set(err, "key file %s is a symbolic link: refusing it",
			                    path);
		return mf_error_set(err, "cannot open key file %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		mf_error_set(err, "cannot stat key file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		mf_error_set(err, "key file %s is not a regular file", path);
		goto fail;
	}
	if (kind == MF_KEY_SECRET && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		key_mode_error(path, st.st_mode, err);
		goto fail;
	}
	if (kind == MF_KEY_SECRET && check_key_dir(path, err) < 0)
		goto fail;
	if (st.st_size < 0 || (unsigned long long)st.st_size != (unsigned long long)len) {
		mf_error_set(err, "key file %s has %lld bytes, expected %zu", path,
		             (long long)st.st_size, len);
		goto fail;
	}
	while (done < len) {
		n = read(fd, key + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mf_error_set(err, "cannot read key file %s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0) {
			mf_error_set(err, "key file %s shrank while being read", path);
			goto fail;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
fail:
	sodium_memzero(key, len);
	close(fd);
	return -1;
}

static void fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int mf_key_save(const char *path, enum mf_key_kind kind, const unsigned char *key, size_t len,
                bool overwrite, struct mf_error *err)
{
	char tmp[PATH_MAX];
	mode_t mode = kind == MF_KEY_SECRET ? 0600 : 0644;
	struct stat st;
	int fd, saved;

	if (!overwrite && lstat(path, &st) == 0)
		return mf_error_set(err, "key file %s already exists: refusing to overwrite it",
		                    path);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp))
		return mf_error_set(err, "key file path too long: %.100s...", path);
	/* mkostemp creates the file 0600, so a secret is never exposed. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return mf_error_set(err, "cannot create temporary file for key %s: %s", path,
		                    strerror(errno));
	if (fchmod(fd, mode) < 0 || mf_write_all(fd, key, len) < 0 || fsync(fd) < 0) {
		saved = errno;
		close(fd);
		unlink(tmp);
		return mf_error_set(err, "cannot write key file %s: %s", tmp, strerror(saved));
	}
	if (close(fd) < 0) {
		saved = errno;
		unlink(tmp);
		return mf_error_set(err, "cannot write key file %s: %s", tmp, strerror(saved));
	}
	if (overwrite) {
		if (rename(tmp, path) < 0) {
			saved = errno;
			unlink(tmp);
			return mf_error_set(err, "cannot rename %s to %s: %s", tmp, path,
			                    strerror(saved));
		}
	} else {
		/* link() fails with EEXIST instead of replacing: no race window. */
		if (link(tmp, path) < 0) {
			saved = errno;
			unlink(tmp);
			if (saved == EEXIST)
				return mf_error_set(
				    err, "key file %s already exists: refusing to overwrite it",
				    path);
			return mf_error_set(err, "cannot create key file %s: %s", path,
			                    strerror(saved));
		}
		unlink(tmp);
	}
	fsync_parent(path);
	return 0;
}

int mf_key_generate(const char *path, unsigned char *key, size_t len, bool overwrite,
                    struct mf_error *err)
{
	randombytes_buf(key, len);
	if (mf_key_save(path, MF_KEY_SECRET, key, len, overwrite, err) < 0) {
		sodium_memzero(key, len);
		return -1;
	}
	return 0;
}
