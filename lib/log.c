/*
 * log.c - route libmailfort's messages to the host's logger.
 *
 * The handler and level are set once at start-up (before threads exist) and
 * only read afterwards, so no lock is needed for them.
 */
#include <stdio.h>
#include <syslog.h>
#include "mf-log.h"

static mf_log_handler_t *log_handler = mf_log_handler_stderr;
static void *log_context;
static enum mf_log_level log_min_level = MF_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

void mf_log_set_handler(mf_log_handler_t *handler, void *context)
{
	log_handler = handler != NULL ? handler : mf_log_handler_stderr;
	log_context = context;
}

void mf_log_set_level(enum mf_log_level level)
{
	log_min_level = level;
}

void mf_log_handler_stderr(enum mf_log_level level, const char *msg, void *context)
{
	(void)context;
	fprintf(stderr, "mailfort: %s: %s\n", level_names[level], msg);
}

void mf_log_handler_syslog(enum mf_log_level level, const char *msg, void *context)
{
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};

	(void)context;
	syslog(prio[level], "%s", msg);
}

void mf_logv(enum mf_log_level level, const char *fmt, va_list args)
{
	char buf[2048];

	if (level < log_min_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, args);
	log_handler(level, buf, log_context);
}

void mf_log(enum mf_log_level level, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	mf_logv(level, fmt, args);
	va_end(args);
}
