/*
 * mf-common.h - definitions shared by every part of libmailfort.
 *
 * struct mf_error carries a one-line, human-readable reason out of any call
 * that can fail.  Functions return 0 on success and -1 on failure (or a
 * pointer / NULL) and fill *err; the caller decides whether to log it.
 * The message never contains a secret (password, code, key material).
 */
#ifndef MF_COMMON_H
#define MF_COMMON_H

#include <stdarg.h>
#include <stddef.h>

#define MF_ERROR_MAX 512

struct mf_error {
	char msg[MF_ERROR_MAX];
};

#define MF_WARN_UNUSED   __attribute__((warn_unused_result))
#define MF_PRINTF(a, b)  __attribute__((format(printf, a, b)))
#define MF_NORETURN      __attribute__((noreturn))
#define MF_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* Set err (if not NULL) to a formatted message; always returns -1. */
int mf_error_set(struct mf_error *err, const char *fmt, ...) MF_PRINTF(2, 3);
/* Prefix an existing message: "prefix: old message". Returns -1. */
int mf_error_prefix(struct mf_error *err, const char *fmt, ...) MF_PRINTF(2, 3);

#endif
