/*
 * error.c - struct mf_error helpers.
 */
#include <stdio.h>
#include <string.h>
#include "mf-common.h"

int mf_error_set(struct mf_error *err, const char *fmt, ...)
{
	va_list args;

	if (err == NULL)
		return -1;
	va_start(args, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, args);
	va_end(args);
	return -1;
}

int mf_error_prefix(struct mf_error *err, const char *fmt, ...)
{
	char prefix[MF_ERROR_MAX], old[MF_ERROR_MAX];
	va_list args;

	if (err == NULL)
		return -1;
	va_start(args, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, args);
	va_end(args);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* Truncation is acceptable: the message stays a bounded single line. */
	snprintf(err->msg, sizeof(err->msg), "%.200s: %.300s", prefix, old);
	return -1;
}
