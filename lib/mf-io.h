/*
 * mf-io.h - small I/O helpers shared by libmailfort and its programs.
 *
 * mf_write_all writes all len bytes, retrying short writes and EINTR.
 * Returns 0, or -1 with errno set (a write that returns 0 sets EIO).
 */
#ifndef MF_IO_H
#define MF_IO_H

#include <stddef.h>
#include "mf-common.h"

int mf_write_all(int fd, const void *data, size_t len) MF_WARN_UNUSED;

#endif
