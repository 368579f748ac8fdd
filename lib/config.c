/*
 * config.c - load and query mailfort.conf (see mf-config.h).
 *
 * The file is read into memory and handed to inih line by line through
 * ini_parse_stream(), so that this module always knows the line being
 * parsed: Debian's inih gives the handler no line number.  The line reader
 * also does what inih cannot or does differently:
 *   - a line longer than inih's buffer is reported instead of being split
 *     into two lines;
 *   - leading white space is removed, so an indented "key = value" is a key
 *     and never a continuation of the previous value (no multi-line values);
 *   - section headers are checked here (inih reports no empty section), so
 *     an unknown or repeated section is an error at its own line;
 *   - NUL bytes and a missing "]" are reported with a precise reason.
 * Comments start with ';' or '#' at the start of a line, or with " ;"
 * inside a line.
 *
 * Every value is checked against the schema as it is read and stored in
 * its final form (seconds, bytes, a copy of the string).  Defaults are
 * parsed from their text by the same code; a default that does not parse
 * is a programming error, reported by load and logged by defaults.
 *
 * mf_config_load*() return NULL and set err to "NAME:LINE: what is wrong"
 * (or "NAME: cannot open: reason") at the first error.  mf_config_load
 * refuses anything but a regular file, and a file that everyone may write
 * (it names keys, databases and commands the programs trust).  Getters never fail
 * for a key in the schema; a key that is not, or a getter of the wrong type,
 * is logged with mf_log_error and yields 0 / NULL / false.  String values
 * and the file's text are wiped when freed: conninfo may hold a password.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ini.h>
#include <sodium.h>
#include "mf-config.h"
#include "mf-log.h"

/* Larger than any sane configuration file; bounds memory for bad input. */
#define MF_CONFIG_MAX_FILE (1024 * 1024)
/* How much of a bad value an error message quotes. */
#define MF_CONFIG_QUOTE_MAX 64

struct mf_config_value {
	bool set;       /* written in the file */
	bool has_value; /* set or defaulted (a NULL default leaves it empty) */
	unsigned line;  /* where it was set */
	int64_t num;    /* INT, DURATION, SIZE; BOOL as 0/1 */
	char *str;      /* STRING, ENUM, PATH */
};

struct mf_config {
	char *path;
	size_t nvalues;
	struct mf_config_value *values; /* schema order: section by section */
};

struct mf_config_parse {
	struct mf_config *cfg;
	const char *name;
	/* the line reader */
	const char *text, *pos, *end;
	unsigned lineno;
	/* current section: index into mf_config_schema, -1 = none yet */
	int section;
	size_t section_base;    /* index of its first key in cfg->values */
	unsigned *section_line; /* per section: line of its header, 0 = not seen */
	/* first error */
	unsigned err_line;
	char err_msg[MF_ERROR_MAX];
};

/* ------------------------------------------------------------------ schema */

static size_t schema_nsections(void)
{
	size_t n = 0;

	while (mf_config_schema[n] != NULL)
		n++;
	return n;
}

static size_t section_nkeys(const struct mf_config_section *sec)
{
	size_t n = 0;

	while (sec->keys[n].name != NULL)
		n++;
	return n;
}

static size_t schema_nkeys(void)
{
	size_t n = 0;

	for (size_t i = 0; mf_config_schema[i] != NULL; i++)
		n += section_nkeys(mf_config_schema[i]);
	return n;
}

static int find_section(const char *name, size_t len, size_t *base_r)
{
	size_t base = 0;

	for (size_t i = 0; mf_config_schema[i] != NULL; i++) {
		const struct mf_config_section *sec = mf_config_schema[i];

		if (strlen(sec->name) == len && memcmp(sec->name, name, len) == 0) {
			*base_r = base;
			return (int)i;
		}
		base += section_nkeys(sec);
	}
	return -1;
}

/* Index of section.key in the values array, or -1; *key_r gets its schema. */
static long find_key(const char *section, const char *key, const struct mf_config_key **key_r)
{
	size_t base;
	int s;

	if (section == NULL || key == NULL)
		return -1;
	s = find_section(section, strlen(section), &base);
	if (s < 0)
		return -1;
	for (size_t k = 0; mf_config_schema[s]->keys[k].name != NULL; k++) {
		if (strcmp(mf_config_schema[s]->keys[k].name, key) == 0) {
			*key_r = &mf_config_schema[s]->keys[k];
			return (long)(base + k);
		}
	}
	return -1;
}

/* ------------------------------------------------------------ value types */

static const char *type_noun(enum mf_config_type type)
{
	switch (type) {
	case MF_CONFIG_STRING:
		return "a string";
	case MF_CONFIG_INT:
		return "an integer";
	case MF_CONFIG_BOOL:
		return "yes or no";
	case MF_CONFIG_DURATION:
		return "a duration";
	case MF_CONFIG_SIZE:
		return "a size";
	case MF_CONFIG_ENUM:
		return "one of a list of words";
	case MF_CONFIG_PATH:
		return "an absolute path";
	}
	return "a value";
}

/* Values may hold a password ([database] conninfo): wiped before free. */
static void free_str(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* Copy value for an error message: bounded, control characters replaced. */
static void quote_value(char *buf, size_t size, const char *value)
{
	size_t i = 0;

	for (; value[i] != '\0' && i + 1 < size && i < MF_CONFIG_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)value[i];

		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[i] = '\0';
	if (value[i] != '\0' && i >= 3)
		memcpy(buf + i - 3, "...", 3);
}

/* Unsigned decimal digits only ("12"); 0 / -1 on junk or overflow. */
static int parse_digits(const char *s, size_t len, uint64_t *num_r)
{
	uint64_t n = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	*num_r = n;
	return 0;
}

static bool in_range(const struct mf_config_key *key, int64_t n)
{
	if (key->min == 0 && key->max == 0)
		return true;
	return n >= key->min && n <= key->max;
}

/* Number with an optional one-letter unit suffix. */
static int parse_scaled(const char *value, const char *suffixes, const int64_t *factors,
                        int64_t *num_r)
{
	size_t len = strlen(value);
	int64_t factor = 1;
	uint64_t n;

	if (len > 1) {
		const char *p = strchr(suffixes, value[len - 1]);

		if (p != NULL && *p != '\0') {
			factor = factors[p - suffixes];
			len--;
		}
	}
	if (parse_digits(value, len, &n) < 0 || n > (uint64_t)(INT64_MAX / factor))
		return -1;
	*num_r = (int64_t)n * factor;
	return 0;
}

/*
 * Check value against key and store it in *out.  On error writes the reason
 * ("'ten' is not an integer") to why and returns -1.
 */
static int parse_value(const struct mf_config_key *key, const char *value,
                       struct mf_config_value *out, char *why, size_t why_size)
{
	static const char dur_suffixes[] = "smhd";
	static const int64_t dur_factors[] = {1, 60, 3600, 86400};
	static const char size_suffixes[] = "kKmMgG";
	static const int64_t size_factors[] = {1024,    1024,       1048576,
	                                       1048576, 1073741824, 1073741824};
	char q[MF_CONFIG_QUOTE_MAX + 1];
	int64_t n = 0;

	quote_value(q, sizeof(q), value);
	if (value[0] == '\0' && key->type != MF_CONFIG_STRING) {
		snprintf(why, why_size, "empty value (expected %s)", type_noun(key->type));
		return -1;
	}
	switch (key->type) {
	case MF_CONFIG_STRING:
		break;
	case MF_CONFIG_INT: {
		const char *digits = value;
		bool neg = false;
		uint64_t u;

		if (*digits == '-' || *digits == '+')
			neg = *digits++ == '-';
		if (parse_digits(digits, strlen(digits), &u) < 0) {
			snprintf(why, why_size, "'%s' is not an integer", q);
			return -1;
		}
		if (u > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
			snprintf(why, why_size, "'%s' is out of range", q);
			return -1;
		}
		n = neg ? (int64_t)(0 - u) : (int64_t)u;
		if (!in_range(key, n)) {
			snprintf(why, why_size,
			         "'%s' is out of range (%" PRId64 "..%" PRId64 ")%s%s", q, key->min,
			         key->max, key->range_note != NULL ? ": " : "",
			         key->range_note != NULL ? key->range_note : "");
			return -1;
		}
		break;
	}
	case MF_CONFIG_BOOL: {
		static const char *const yes[] = {"yes", "true", "on", "1"};
		static const char *const no[] = {"no", "false", "off", "0"};
		bool found = false;

		for (size_t i = 0; i < MF_N_ELEMENTS(yes) && !found; i++) {
			if (strcasecmp(value, yes[i]) == 0) {
				n = 1;
				found = true;
			} else if (strcasecmp(value, no[i]) == 0) {
				n = 0;
				found = true;
			}
		}
		if (!found) {
			snprintf(why, why_size, "'%s' is not a boolean (use yes or no)", q);
			return -1;
		}
		break;
	}
	case MF_CONFIG_DURATION:
		if (parse_scaled(value, dur_suffixes, dur_factors, &n) < 0) {
			snprintf(why, why_size,
			         "'%s' is not a duration (seconds, or a number with s, m, h or d)",
			         q);
			return -1;
		}
		if (!in_range(key, n)) {
			snprintf(why, why_size, "'%s' is out of range (%" PRId64 "s..%" PRId64 "s)",
			         q, key->min, key->max);
			return -1;
		}
		break;
	case MF_CONFIG_SIZE:
		if (parse_scaled(value, size_suffixes, size_factors, &n) < 0) {
			snprintf(why, why_size,
			         "'%s' is not a size (bytes, or a number with k, M or G)", q);
			return -1;
		}
		if (!in_range(key, n)) {
			snprintf(why, why_size,
			         "'%s' is out of range (%" PRId64 "..%" PRId64 " bytes)", q,
			         key->min, key->max);
			return -1;
		}
		break;
	case MF_CONFIG_ENUM: {
		size_t used = 0;
		bool found = false;

		for (size_t i = 0; key->choices != NULL && key->choices[i] != NULL; i++) {
			if (strcmp(value, key->choices[i]) == 0)
				found = true;
		}
		if (found)
			break;
		used = (size_t)snprintf(why, why_size, "'%s' is not one of:", q);
		for (size_t i = 0; key->choices != NULL && key->choices[i] != NULL; i++) {
			if (used >= why_size)
				break;
			used += (size_t)snprintf(why + used, why_size - used, "%s %s",
			                         i == 0 ? "" : ",", key->choices[i]);
		}
		return -1;
	}
	case MF_CONFIG_PATH:
		if (value[0] != '/') {
			snprintf(why, why_size, "'%s' is not an absolute path", q);
			return -1;
		}
		break;
	default:
		snprintf(why, why_size, "unknown type %d in the schema", (int)key->type);
		return -1;
	}

	if (key->type == MF_CONFIG_STRING || key->type == MF_CONFIG_ENUM ||
	    key->type == MF_CONFIG_PATH) {
		char *copy = strdup(value);

		if (copy == NULL) {
			snprintf(why, why_size, "out of memory");
			return -1;
		}
		free_str(out->str);
		out->str = copy;
	}
	out->num = n;
	out->has_value = true;
	return 0;
}

/* -------------------------------------------------------- building configs */

static void config_free_values(struct mf_config *cfg)
{
	for (size_t i = 0; i < cfg->nvalues; i++)
		free_str(cfg->values[i].str);
	free(cfg->values);
	cfg->values = NULL;
}

void mf_config_free(struct mf_config **cfgp)
{
	struct mf_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	config_free_values(cfg);
	free(cfg->path);
	free(cfg);
}

/* A configuration holding every default; NULL with err on a schema bug. */
static struct mf_config *config_new(const char *path, struct mf_error *err)
{
	struct mf_config *cfg;
	size_t idx = 0;

	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		mf_error_set(err, "%s: out of memory", path);
		return NULL;
	}
	cfg->path = strdup(path);
	cfg->nvalues = schema_nkeys();
	cfg->values = calloc(cfg->nvalues + 1, sizeof(*cfg->values));
	if (cfg->path == NULL || cfg->values == NULL) {
		mf_config_free(&cfg);
		mf_error_set(err, "%s: out of memory", path);
		return NULL;
	}
	for (size_t s = 0; mf_config_schema[s] != NULL; s++) {
		const struct mf_config_section *sec = mf_config_schema[s];

		for (size_t k = 0; sec->keys[k].name != NULL; k++, idx++) {
			const struct mf_config_key *key = &sec->keys[k];
			char why[MF_ERROR_MAX];

			if (key->min > key->max ||
			    (key->type == MF_CONFIG_ENUM && key->choices == NULL)) {
				mf_error_set(err, "built-in schema: [%s] %s: bad limits or choices",
				             sec->name, key->name);
				mf_config_free(&cfg);
				return NULL;
			}
			if (key->default_value == NULL)
				continue;
			if (parse_value(key, key->default_value, &cfg->values[idx], why,
			                sizeof(why)) < 0) {
				mf_error_set(err, "built-in default of [%s] %s: %s", sec->name,
				             key->name, why);
				mf_config_free(&cfg);
				return NULL;
			}
		}
	}
	return cfg;
}

struct mf_config *mf_config_defaults(void)
{
	struct mf_error err;
	struct mf_config *cfg;

	cfg = config_new("(built-in defaults)", &err);
	if (cfg == NULL)
		mf_log_error("configuration: %s", err.msg);
	return cfg;
}

/* ---------------------------------------------------------------- parsing */

MF_PRINTF(3, 4)
static void parse_error(struct mf_config_parse *ctx, unsigned line, const char *fmt, ...)
{
	va_list args;

	if (ctx->err_line != 0)
		return;
	ctx->err_line = line;
	va_start(args, fmt);
	vsnprintf(ctx->err_msg, sizeof(ctx->err_msg), fmt, args);
	va_end(args);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* A "[section]" line (already left-trimmed): check it and make it current. */
static void reader_section(struct mf_config_parse *ctx, const char *line, size_t len)
{
	const char *close = memchr(line, ']', len);
	const char *rest, *name = line + 1;
	size_t name_len, base;
	int s;

	if (close == NULL) {
		parse_error(ctx, ctx->lineno, "section header has no closing ']'");
		return;
	}
	name_len = (size_t)(close - name);
	for (rest = close + 1; rest < line + len && is_blank(*rest); rest++)
		;
	if (rest < line + len && *rest != ';' && *rest != '#') {
		parse_error(ctx, ctx->lineno, "unexpected text after the section header");
		return;
	}
	s = find_section(name, name_len, &base);
	if (s < 0) {
		char q[MF_CONFIG_QUOTE_MAX + 1], tmp[MF_CONFIG_QUOTE_MAX + 1];

		snprintf(tmp, sizeof(tmp), "%.*s", (int)name_len, name);
		quote_value(q, sizeof(q), tmp);
		parse_error(ctx, ctx->lineno, "unknown section [%s]", q);
		return;
	}
	if (ctx->section_line[s] != 0) {
		parse_error(ctx, ctx->lineno, "section [%s] appears twice (first on line %u)",
		            mf_config_schema[s]->name, ctx->section_line[s]);
		return;
	}
	ctx->section_line[s] = ctx->lineno;
	ctx->section = s;
	ctx->section_base = base;
}

/*
 * ini_reader: hand inih the next line, left-trimmed, or NULL at the end or
 * after the first error (which stops the parse).  Lines that this reader
 * judged (headers, comments, errors) still go to inih so its own idea of
 * the current section stays right; an erroneous line is passed as blank.
 */
static char *config_reader(char *buf, int size, void *stream)
{
	struct mf_config_parse *ctx = stream;
	const char *line, *eol, *p;
	size_t len, raw_len;

	if (ctx->err_line != 0 || ctx->pos >= ctx->end)
		return NULL;
	if (size < 4) {
		parse_error(ctx, ctx->lineno + 1, "the INI parser's line buffer is too small");
		return NULL;
	}
	line = ctx->pos;
	eol = memchr(line, '\n', (size_t)(ctx->end - line));
	if (eol == NULL)
		eol = ctx->end;
	ctx->pos = eol < ctx->end ? eol + 1 : ctx->end;
	ctx->lineno++;

	raw_len = (size_t)(eol - line);
	if (raw_len > 0 && line[raw_len - 1] == '\r')
		raw_len--;
	if (memchr(line, '\0', raw_len) != NULL) {
		parse_error(ctx, ctx->lineno, "line contains a NUL byte");
		buf[0] = '\0';
		return buf;
	}
	/* inih's documented limit: the line plus "\r\n\0" must fit. */
	if (raw_len > (size_t)size - 3) {
		parse_error(ctx, ctx->lineno, "line is longer than %d characters", size - 3);
		buf[0] = '\0';
		return buf;
	}
	p = line;
	if (ctx->lineno == 1 && raw_len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < line + raw_len && (is_blank(*p)))
		p++;
	len = (size_t)(line + raw_len - p);

	if (len > 0 && *p == '[') {
		reader_section(ctx, p, len);
	} else if (len > 0 && *p != ';' && *p != '#') {
		bool has_sep = false;

		for (size_t i = 0; i < len && !has_sep; i++) {
			if (p[i] == '=' || p[i] == ':')
				has_sep = true;
			else if (p[i] == ';' && i > 0 && is_blank(p[i - 1]))
				break;
		}
		if (!has_sep)
			parse_error(ctx, ctx->lineno, "syntax error: expected 'key = value'");
	}
	if (ctx->err_line != 0) {
		buf[0] = '\0';
		return buf;
	}
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

/* ini_handler: one key = value in the current section. */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct mf_config_parse *ctx = user;
	const struct mf_config_section *sec;
	struct mf_config_value *slot;
	char why[MF_ERROR_MAX], q[MF_CONFIG_QUOTE_MAX + 1];
	size_t k;

	if (ctx->err_line != 0)
		return 1;
	quote_value(q, sizeof(q), name);
	if (ctx->section < 0) {
		parse_error(ctx, ctx->lineno, "key '%s' is outside any section", q);
		return 1;
	}
	sec = mf_config_schema[ctx->section];
	if (name[0] == '\0') {
		parse_error(ctx, ctx->lineno, "[%s] missing key name before '='", sec->name);
		return 1;
	}
	if (strpbrk(name, " \t") != NULL) {
		parse_error(ctx, ctx->lineno, "[%s] '%s' is not a key name (missing '='?)",
		            sec->name, q);
		return 1;
	}
	for (k = 0; sec->keys[k].name != NULL; k++) {
		if (strcmp(sec->keys[k].name, name) == 0)
			break;
	}
	if (sec->keys[k].name == NULL) {
		parse_error(ctx, ctx->lineno, "[%s] %s: unknown key", sec->name, q);
		return 1;
	}
	slot = &ctx->cfg->values[ctx->section_base + k];
	if (slot->set) {
		parse_error(ctx, ctx->lineno, "[%s] %s: duplicate key (first set on line %u)",
		            sec->name, q, slot->line);
		return 1;
	}
	if (value == NULL)
		value = "";
	if (parse_value(&sec->keys[k], value, slot, why, sizeof(why)) < 0) {
		/* "sync = yes  # comment": only ';' starts a comment after a value */
		bool hash_comment = strstr(value, " #") != NULL || strstr(value, "\t#") != NULL;

		parse_error(ctx, ctx->lineno, "[%s] %s: %s%s", sec->name, q, why,
		            hash_comment ? " (a comment after a value starts with ';', not '#')"
		                         : "");
		return 1;
	}
	slot->set = true;
	slot->line = ctx->lineno;
	(void)section;
	return 1;
}

struct mf_config *mf_config_load_buffer(const char *name, const char *text, size_t len,
                                        struct mf_error *err)
{
	struct mf_config_parse ctx;
	struct mf_config *cfg;
	int rc;

	if (name == NULL)
		name = "(buffer)";
	if (text == NULL && len > 0) {
		mf_error_set(err, "%s: no text", name);
		return NULL;
	}
	cfg = config_new(name, err);
	if (cfg == NULL)
		return NULL;
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.name = name;
	ctx.text = ctx.pos = text == NULL ? "" : text;
	ctx.end = ctx.text + len;
	ctx.section = -1;
	ctx.section_line = calloc(schema_nsections() + 1, sizeof(*ctx.section_line));
	if (ctx.section_line == NULL) {
		mf_config_free(&cfg);
		mf_error_set(err, "%s: out of memory", name);
		return NULL;
	}

	rc = ini_parse_stream(config_reader, &ctx, config_handler, &ctx);
	free(ctx.section_line);
	if (rc > 0 && (ctx.err_line == 0 || (unsigned)rc < ctx.err_line))
		parse_error(&ctx, (unsigned)rc, "syntax error");
	else if (rc < 0 && ctx.err_line == 0)
		parse_error(&ctx, ctx.lineno, "out of memory while parsing");
	if (ctx.err_line != 0) {
		mf_error_set(err, "%s:%u: %s", name, ctx.err_line, ctx.err_msg);
		mf_config_free(&cfg);
		return NULL;
	}
	return cfg;
}

/* Read the whole regular file at fd (at most MF_CONFIG_MAX_FILE bytes). */
static char *read_file(int fd, const char *path, size_t *len_r, struct mf_error *err)
{
	struct stat st;
	size_t len = 0, cap;
	char *text;

	if (fstat(fd, &st) < 0) {
		mf_error_set(err, "%s: cannot stat: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		mf_error_set(err, "%s: not a regular file", path);
		return NULL;
	}
	/* anyone could point the programs at other keys, databases, commands */
	if ((st.st_mode & S_IWOTH) != 0) {
		mf_error_set(err, "%s: writable by everyone; refusing to use it", path);
		return NULL;
	}
	if (st.st_size > MF_CONFIG_MAX_FILE) {
		mf_error_set(err, "%s: larger than %d bytes", path, MF_CONFIG_MAX_FILE);
		return NULL;
	}
	/* one byte more than the size, to notice a file that grew meanwhile */
	cap = (size_t)st.st_size + 1;
	text = malloc(cap);
	if (text == NULL) {
		mf_error_set(err, "%s: out of memory", path);
		return NULL;
	}
	while (len < cap) {
		ssize_t n = read(fd, text + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mf_error_set(err, "%s: cannot read: %s", path, strerror(errno));
			sodium_memzero(text, len);
			free(text);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == cap) {
		mf_error_set(err, "%s: changed while being read", path);
		sodium_memzero(text, cap);
		free(text);
		return NULL;
	}
	*len_r = len;
	return text;
}

struct mf_config *mf_config_load(const char *path, struct mf_error *err)
{
	struct mf_config *cfg;
	char *text;
	size_t len = 0;
	int fd;

	if (path == NULL || path[0] == '\0') {
		mf_error_set(err, "configuration: no file name given");
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		mf_error_set(err, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	text = read_file(fd, path, &len, err);
	close(fd);
	if (text == NULL)
		return NULL;
	cfg = mf_config_load_buffer(path, text, len, err);
	/* the file text holds the same secrets as the values */
	sodium_memzero(text, len);
	free(text);
	return cfg;
}

/* ---------------------------------------------------------------- getters */

static const struct mf_config_value *lookup(const struct mf_config *cfg, const char *section,
                                            const char *key, const char *getter,
                                            const struct mf_config_key **key_r)
{
	const struct mf_config_key *k = NULL;
	long idx;

	if (cfg == NULL) {
		mf_log_error("configuration: %s([%s] %s) called without a configuration", getter,
		             section != NULL ? section : "(null)", key != NULL ? key : "(null)");
		return NULL;
	}
	idx = find_key(section, key, &k);
	if (idx < 0 || (size_t)idx >= cfg->nvalues) {
		mf_log_error("configuration: %s: [%s] %s is not in the schema", getter,
		             section != NULL ? section : "(null)", key != NULL ? key : "(null)");
		return NULL;
	}
	*key_r = k;
	return &cfg->values[idx];
}

static void wrong_type(const char *getter, const char *section, const struct mf_config_key *k)
{
	mf_log_error("configuration: %s: [%s] %s is %s", getter, section, k->name,
	             type_noun(k->type));
}

const char *mf_config_path(const struct mf_config *cfg)
{
	return cfg != NULL ? cfg->path : NULL;
}

const char *mf_config_str(const struct mf_config *cfg, const char *section, const char *key)
{
	const struct mf_config_key *k;
	const struct mf_config_value *v = lookup(cfg, section, key, "mf_config_str", &k);

	if (v == NULL)
		return NULL;
	if (k->type != MF_CONFIG_STRING && k->type != MF_CONFIG_ENUM && k->type != MF_CONFIG_PATH) {
		wrong_type("mf_config_str", section, k);
		return NULL;
	}
	return v->has_value ? v->str : NULL;
}

int64_t mf_config_int(const struct mf_config *cfg, const char *section, const char *key)
{
	const struct mf_config_key *k;
	const struct mf_config_value *v = lookup(cfg, section, key, "mf_config_int", &k);

	if (v == NULL)
		return 0;
	if (k->type != MF_CONFIG_INT && k->type != MF_CONFIG_DURATION &&
	    k->type != MF_CONFIG_SIZE) {
		wrong_type("mf_config_int", section, k);
		return 0;
	}
	return v->has_value ? v->num : 0;
}

bool mf_config_bool(const struct mf_config *cfg, const char *section, const char *key)
{
	const struct mf_config_key *k;
	const struct mf_config_value *v = lookup(cfg, section, key, "mf_config_bool", &k);

	if (v == NULL)
		return false;
	if (k->type != MF_CONFIG_BOOL) {
		wrong_type("mf_config_bool", section, k);
		return false;
	}
	return v->has_value && v->num != 0;
}

bool mf_config_is_set(const struct mf_config *cfg, const char *section, const char *key)
{
	const struct mf_config_key *k;
	const struct mf_config_value *v = lookup(cfg, section, key, "mf_config_is_set", &k);

	return v != NULL && v->set;
}

char *mf_config_node(const struct mf_config *cfg)
{
	const char *node = mf_config_str(cfg, "spool", "node");
	char host[256];

	if (node != NULL && *node != '\0')
		return strdup(node);
	if (gethostname(host, sizeof(host)) < 0)
		return strdup("localhost");
	host[sizeof(host) - 1] = '\0';
	return strdup(host);
}
