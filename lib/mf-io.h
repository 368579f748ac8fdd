/*
 * mf-io.h - small I/O helpers shared by libmailfort and its programs.
 *
 * mf_write_all writes all len bytes, retrying short writes and EINTR.
 * Returns 0, or -1 with errno set (a write that returns 0 sets EIO).
 *
 * mf_tmpfile opens a new, empty, nameless file in dir for reading and
 * writing (mode 0600, close-on-exec): O_TMPFILE where the file system has
 * it, else a file made with mkostemp whose name is removed at once.  It is
 * gone when its last descriptor is closed.  Returns the descriptor, or -1
 * with err naming the directory and the reason.
 */
#ifndef MF_IO_H
#define MF_IO_H

#include <stddef.h>
#include "mf-common.h"

int mf_write_all(int fd, const void *data, size_t len) MF_WARN_UNUSED;
int mf_tmpfile(const char *dir, struct mf_error *err) MF_WARN_UNUSED;

#endif
