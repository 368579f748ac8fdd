/*
 * mf-log.h - one logging family for libmailfort and its hosts.
 *
 * libmailfort never writes to stderr or syslog directly: it calls
 * mf_log_{debug,info,warn,error}, which go to the handler the host installed
 * (syslog in the PAM module and the daemons, i_info/i_error inside Dovecot,
 * stderr in mailfortctl).  The default handler writes "mailfort: LEVEL: msg"
 * to stderr.  mf_log_set_handler is meant for a process's start-up; the
 * handler itself must be thread-safe (libmilter calls from many threads).
 * Never pass a secret to these functions.
 */
#ifndef MF_LOG_H
#define MF_LOG_H

#include "mf-common.h"

enum mf_log_level {
	MF_LOG_DEBUG,
	MF_LOG_INFO,
	MF_LOG_WARN,
	MF_LOG_ERROR,
};

typedef void mf_log_handler_t(enum mf_log_level level, const char *msg, void *context);

void mf_log_set_handler(mf_log_handler_t *handler, void *context);
/* Messages below this level are dropped (default MF_LOG_INFO). */
void mf_log_set_level(enum mf_log_level level);
/* Handlers ready to install. */
mf_log_handler_t mf_log_handler_stderr;
/* Uses syslog(3) with the facility/ident the host opened (openlog). */
mf_log_handler_t mf_log_handler_syslog;

void mf_log(enum mf_log_level level, const char *fmt, ...) MF_PRINTF(2, 3);
void mf_logv(enum mf_log_level level, const char *fmt, va_list args) MF_PRINTF(2, 0);
#define mf_log_debug(...) mf_log(MF_LOG_DEBUG, __VA_ARGS__)
#define mf_log_info(...)  mf_log(MF_LOG_INFO, __VA_ARGS__)
#define mf_log_warn(...)  mf_log(MF_LOG_WARN, __VA_ARGS__)
#define mf_log_error(...) mf_log(MF_LOG_ERROR, __VA_ARGS__)

#endif
