/*
 * io.c - write a whole buffer to a file descriptor; anonymous temp files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mf-io.h"

int mf_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mf_tmpfile(const char *dir, struct mf_error *err)
{
	char path[4096];
	int fd;

#ifdef O_TMPFILE
	/* never has a name: nothing to remove, nothing another process can
	   open by name in between */
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* file systems without it say so in one of these words */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return mf_error_set(err, "cannot create a temp file in %s: %s", dir,
		                    strerror(errno));
#endif
	if ((size_t)snprintf(path, sizeof(path), "%s/mailfort.XXXXXX", dir) >= sizeof(path))
		return mf_error_set(err, "temp directory name too long: %s", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return mf_error_set(err, "cannot create a temp file in %s: %s", dir,
		                    strerror(errno));
	if (unlink(path) < 0) {
		int e = errno;

		close(fd);
		return mf_error_set(err, "cannot remove the name of temp file %s: %s", path,
		                    strerror(e));
	}
	return fd;
}
