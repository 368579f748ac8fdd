/*
 * mf-config.h - the mailfort configuration file (INI, parsed with inih).
 *
 * One file, by default MF_CONFIG_DEFAULT_PATH, read by every program; each
 * program lets the path be overridden (--config, PAM "config=", Dovecot
 * plugin setting "mailfort_config").  The set of sections and keys, their
 * types, limits and defaults is fixed in the schema (config-schema*.c):
 * anything not in it is an error, so a typo never silently becomes the
 * default.
 *
 * mf_config_load() returns NULL and an error naming the file, the line and
 * what is wrong ("/etc/mailfort/mailfort.conf:12: [pam] max_failures: 'ten'
 * is not an integer").  Values are checked when loaded, so the getters
 * cannot fail: a key that is not set yields its schema default.  Asking a
 * getter for a key that is not in the schema, or with the wrong type, is a
 * programming error: it is logged and yields 0 / NULL / false.
 *
 * A loaded struct mf_config is immutable and may be shared between threads.
 */
#ifndef MF_CONFIG_H
#define MF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include "mf-common.h"

#ifndef MF_SYSCONFDIR
#define MF_SYSCONFDIR "/etc"
#endif
#define MF_CONFIG_DEFAULT_PATH MF_SYSCONFDIR "/mailfort/mailfort.conf"

enum mf_config_type {
	MF_CONFIG_STRING,   /* any text */
	MF_CONFIG_INT,      /* decimal integer within [min, max] */
	MF_CONFIG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	MF_CONFIG_DURATION, /* "30", "30s", "15m", "2h", "7d": stored in seconds */
	MF_CONFIG_SIZE,     /* "512", "64k", "10M", "1G": stored in bytes */
	MF_CONFIG_ENUM,     /* one of the words in choices[] */
	MF_CONFIG_PATH,     /* absolute path */
};

struct mf_config_key {
	const char *name;
	enum mf_config_type type;
	const char *default_value;  /* as it would be written in the file; NULL = unset */
	int64_t min, max;           /* INT, DURATION, SIZE; both 0 = no limit */
	const char *const *choices; /* ENUM: NULL-terminated */
	const char *help;           /* one line, for the annotated example and docs */
	const char *range_note;     /* said after an out-of-range error (why the limits) */
};

struct mf_config_section {
	const char *name;
	const struct mf_config_key *keys; /* terminated by { .name = NULL } */
};

/* NULL-terminated list of every section mailfort knows (config-schema.c). */
extern const struct mf_config_section *const mf_config_schema[];

struct mf_config;

/* Parse path.  Returns NULL with err set on any error (also a missing file,
   and a file that is not regular or is writable by everyone). */
struct mf_config *mf_config_load(const char *path, struct mf_error *err) MF_WARN_UNUSED;
/* Parse text held in memory (name is used in messages). */
struct mf_config *mf_config_load_buffer(const char *name, const char *text, size_t len,
                                        struct mf_error *err) MF_WARN_UNUSED;
/* A configuration with every key at its default. */
struct mf_config *mf_config_defaults(void);
void mf_config_free(struct mf_config **cfg);

/* The name it was loaded from; "(built-in defaults)" for mf_config_defaults(). */
const char *mf_config_path(const struct mf_config *cfg);
const char *mf_config_str(const struct mf_config *cfg, const char *section, const char *key);
/* This host's name in the audit trail: [spool] node, or the host name
   (malloc'd; NULL only when out of memory). */
char *mf_config_node(const struct mf_config *cfg);
int64_t mf_config_int(const struct mf_config *cfg, const char *section, const char *key);
bool mf_config_bool(const struct mf_config *cfg, const char *section, const char *key);
/* True when the key was written in the file (not defaulted). */
bool mf_config_is_set(const struct mf_config *cfg, const char *section, const char *key);

#endif
