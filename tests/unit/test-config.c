/*
 * test-config.c - mailfort.conf parsing as an administrator meets it.
 *
 * Every value type, the defaults, and every kind of bad input: each error
 * must name the file, the line and what is wrong.  Keys for the types that
 * only component sections use (INT, SIZE, ENUM) are looked up in the real
 * schema, so the test follows the schema as it grows.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mf-config.h"
#include "mf-log.h"
#include "tap.h"

static int logged_errors;
static char last_log[1024];

static void capture_log(enum mf_log_level level, const char *msg, void *context)
{
	(void)context;
	if (level == MF_LOG_ERROR)
		logged_errors++;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static struct mf_config *load_text(const char *text, struct mf_error *err)
{
	return mf_config_load_buffer("test.conf", text, strlen(text), err);
}

/* text must fail with "test.conf:LINE: ...reason..." */
static void expect_error(const char *what, const char *text, unsigned line, const char *reason)
{
	struct mf_error err = {{0}};
	struct mf_config *cfg = load_text(text, &err);
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "test.conf:%u: ", line);
	if (!ok(cfg == NULL, "%s: rejected", what))
		mf_config_free(&cfg);
	ok(strncmp(err.msg, prefix, strlen(prefix)) == 0 && strstr(err.msg, reason) != NULL,
	   "%s: message names file, line %u and reason '%s' (got: %s)", what, line, reason,
	   err.msg);
}

/* First schema key of a type (optionally needing a range). */
static const struct mf_config_key *find_type(enum mf_config_type type, const char **section_r,
                                             bool (*want)(const struct mf_config_key *))
{
	for (size_t s = 0; mf_config_schema[s] != NULL; s++) {
		for (size_t k = 0; mf_config_schema[s]->keys[k].name != NULL; k++) {
			const struct mf_config_key *key = &mf_config_schema[s]->keys[k];

			if (key->type == type && (want == NULL || want(key))) {
				*section_r = mf_config_schema[s]->name;
				return key;
			}
		}
	}
	return NULL;
}

static bool int_bounded(const struct mf_config_key *k)
{
	return k->max != 0 && k->max < INT64_MAX && k->min > INT64_MIN;
}

static bool size_wide(const struct mf_config_key *k)
{
	return (k->min == 0 && k->max == 0) || (k->min <= 512 && k->max >= 1073741824);
}

static bool duration_days(const struct mf_config_key *k)
{
	return (k->min == 0 && k->max == 0) || (k->min <= 60 && k->max >= 86400 * 2);
}

static void test_defaults(void)
{
	struct mf_config *cfg = mf_config_defaults();
	size_t nkeys = 0;

	ok(cfg != NULL, "defaults: every built-in default parses");
	if (cfg == NULL)
		return;
	ok(strcmp(mf_config_path(cfg), "(built-in defaults)") == 0, "defaults: path says so");
	ok(strcmp(mf_config_str(cfg, "database", "conninfo"), "dbname=mailfort") == 0,
	   "defaults: [database] conninfo");
	ok(mf_config_int(cfg, "database", "connect_timeout") == 3,
	   "defaults: connect_timeout 3s is 3 seconds");
	ok(mf_config_int(cfg, "database", "statement_timeout") == 10,
	   "defaults: statement_timeout 10s");
	ok(strcmp(mf_config_str(cfg, "keys", "dir"), MF_SYSCONFDIR "/mailfort/keys") == 0,
	   "defaults: [keys] dir under sysconfdir");
	ok(strcmp(mf_config_str(cfg, "spool", "dir"), "/var/spool/mailfort") == 0,
	   "defaults: [spool] dir");
	ok(mf_config_str(cfg, "spool", "node") == NULL, "defaults: a key without default is NULL");
	ok(mf_config_bool(cfg, "spool", "sync") == false, "defaults: [spool] sync is no");
	ok(!mf_config_is_set(cfg, "database", "conninfo"), "defaults: nothing is marked set");
	for (size_t s = 0; mf_config_schema[s] != NULL; s++)
		for (size_t k = 0; mf_config_schema[s]->keys[k].name != NULL; k++)
			nkeys++;
	ok(nkeys >= 7, "schema: has the core keys (%zu keys)", nkeys);
	{
		int dups = 0;

		for (size_t s = 0; mf_config_schema[s] != NULL; s++) {
			const struct mf_config_section *sec = mf_config_schema[s];

			for (size_t t = 0; t < s; t++)
				if (strcmp(mf_config_schema[t]->name, sec->name) == 0) {
					diag("section [%s] defined twice", sec->name);
					dups++;
				}
			for (size_t k = 0; sec->keys[k].name != NULL; k++)
				for (size_t j = 0; j < k; j++)
					if (strcmp(sec->keys[j].name, sec->keys[k].name) == 0) {
						diag("[%s] %s defined twice", sec->name,
						     sec->keys[k].name);
						dups++;
					}
		}
		ok(dups == 0, "schema: no section or key is defined twice");
	}
	mf_config_free(&cfg);
	ok(cfg == NULL, "free: clears the pointer");
	mf_config_free(&cfg);
}

static void test_types(void)
{
	struct mf_error err = {{0}};
	struct mf_config *cfg;
	const char *sec;
	const struct mf_config_key *key;
	char text[1024];

	/* STRING, DURATION, PATH, BOOL from the core sections */
	cfg = load_text("# comment\n"
	                "; comment too\n"
	                "\n"
	                "[database]\n"
	                "conninfo = host=/run/pg port=5433 options='-c a=b' ; inline comment\n"
	                "connect_timeout = 1m\n"
	                "statement_timeout = 0\n"
	                "[keys]\n"
	                "dir = /srv/keys\n"
	                "[spool]\n"
	                "node =\n"
	                "sync = on\n",
	                &err);
	ok(cfg != NULL, "types: valid file loads (%s)", cfg == NULL ? err.msg : "ok");
	if (cfg != NULL) {
		ok(strcmp(mf_config_str(cfg, "database", "conninfo"),
		          "host=/run/pg port=5433 options='-c a=b'") == 0,
		   "string: '=' kept inside, inline comment dropped");
		ok(mf_config_int(cfg, "database", "connect_timeout") == 60, "duration: 1m = 60");
		ok(mf_config_int(cfg, "database", "statement_timeout") == 0, "duration: plain 0");
		ok(strcmp(mf_config_str(cfg, "keys", "dir"), "/srv/keys") == 0, "path: absolute");
		ok(mf_config_str(cfg, "spool", "node") != NULL &&
		       mf_config_str(cfg, "spool", "node")[0] == '\0',
		   "string: empty value allowed");
		ok(mf_config_bool(cfg, "spool", "sync"), "bool: on");
		ok(mf_config_is_set(cfg, "spool", "node") && mf_config_is_set(cfg, "keys", "dir"),
		   "is_set: written keys are set");
		ok(!mf_config_is_set(cfg, "spool", "dir"), "is_set: unwritten key is not");
		ok(strcmp(mf_config_str(cfg, "spool", "dir"), "/var/spool/mailfort") == 0,
		   "unset key yields its default");
		ok(strcmp(mf_config_path(cfg), "test.conf") == 0, "path: the name given");
		mf_config_free(&cfg);
	}

	/* every boolean spelling */
	{
		static const char *const words[] = {"yes", "no", "true", "false", "on",
		                                    "off", "1",  "0",    "YES",   "False"};
		int good = 0;

		for (size_t i = 0; i < MF_N_ELEMENTS(words); i++) {
			snprintf(text, sizeof(text), "[spool]\nsync = %s\n", words[i]);
			cfg = load_text(text, &err);
			if (cfg != NULL && mf_config_bool(cfg, "spool", "sync") == (i % 2 == 0))
				good++;
			mf_config_free(&cfg);
		}
		ok(good == (int)MF_N_ELEMENTS(words),
		   "bool: yes/no true/false on/off 1/0 any case");
	}

	/* duration suffixes */
	{
		static const struct {
			const char *text;
			int64_t secs;
		} d[] = {{"45", 45}, {"45s", 45}, {"2m", 120}, {"1h", 3600}};
		int good = 0;

		for (size_t i = 0; i < MF_N_ELEMENTS(d); i++) {
			snprintf(text, sizeof(text), "[database]\nstatement_timeout = %s\n",
			         d[i].text);
			cfg = load_text(text, &err);
			if (cfg != NULL &&
			    mf_config_int(cfg, "database", "statement_timeout") == d[i].secs)
				good++;
			mf_config_free(&cfg);
		}
		ok(good == (int)MF_N_ELEMENTS(d), "duration: 45, 45s, 2m, 1h");
	}
	key = find_type(MF_CONFIG_DURATION, &sec, duration_days);
	if (key != NULL) {
		snprintf(text, sizeof(text), "[%s]\n%s = 2d\n", sec, key->name);
		cfg = load_text(text, &err);
		ok(cfg != NULL && mf_config_int(cfg, sec, key->name) == 2 * 86400,
		   "duration: 2d = 172800 ([%s] %s)", sec, key->name);
		mf_config_free(&cfg);
	}

	/* SIZE */
	key = find_type(MF_CONFIG_SIZE, &sec, size_wide);
	if (ok(key != NULL, "schema: has a SIZE key accepting 512..1G")) {
		static const struct {
			const char *text;
			int64_t bytes;
		} z[] = {{"512", 512},
		         {"64k", 65536},
		         {"64K", 65536},
		         {"10M", 10485760},
		         {"1G", 1073741824}};
		int good = 0;

		for (size_t i = 0; i < MF_N_ELEMENTS(z); i++) {
			snprintf(text, sizeof(text), "[%s]\n%s = %s\n", sec, key->name, z[i].text);
			cfg = load_text(text, &err);
			if (cfg != NULL && mf_config_int(cfg, sec, key->name) == z[i].bytes)
				good++;
			else
				diag("size %s: %s", z[i].text,
				     cfg == NULL ? err.msg : "wrong value");
			mf_config_free(&cfg);
		}
		ok(good == (int)MF_N_ELEMENTS(z), "size: 512, 64k, 64K, 10M, 1G ([%s] %s)", sec,
		   key->name);
		snprintf(text, sizeof(text), "[%s]\n%s = 10MB\n", sec, key->name);
		expect_error("size with unknown unit", text, 2, "is not a size");
		snprintf(text, sizeof(text), "[%s]\n%s = 99999999999999999999G\n", sec, key->name);
		expect_error("size that overflows", text, 2, "is not a size");
	}

	/* INT */
	key = find_type(MF_CONFIG_INT, &sec, int_bounded);
	if (ok(key != NULL, "schema: has a bounded INT key")) {
		snprintf(text, sizeof(text), "[%s]\n%s = %" PRId64 "\n", sec, key->name, key->max);
		cfg = load_text(text, &err);
		ok(cfg != NULL && mf_config_int(cfg, sec, key->name) == key->max,
		   "int: maximum %" PRId64 " accepted ([%s] %s)", key->max, sec, key->name);
		mf_config_free(&cfg);
		snprintf(text, sizeof(text), "[%s]\n%s = %" PRId64 "\n", sec, key->name, key->min);
		cfg = load_text(text, &err);
		ok(cfg != NULL && mf_config_int(cfg, sec, key->name) == key->min,
		   "int: minimum %" PRId64 " accepted", key->min);
		mf_config_free(&cfg);
		snprintf(text, sizeof(text), "[%s]\n\n%s = %" PRId64 "\n", sec, key->name,
		         key->max + 1);
		expect_error("int above maximum", text, 3, "is out of range");
		snprintf(text, sizeof(text), "[%s]\n%s = %" PRId64 "\n", sec, key->name,
		         key->min - 1);
		expect_error("int below minimum", text, 2, "is out of range");
		snprintf(text, sizeof(text), "[%s]\n%s = ten\n", sec, key->name);
		expect_error("int that is a word", text, 2, "'ten' is not an integer");
		snprintf(text, sizeof(text), "[%s]\n%s = 1.5\n", sec, key->name);
		expect_error("int with a fraction", text, 2, "'1.5' is not an integer");
		snprintf(text, sizeof(text), "[%s]\n%s = 12abc\n", sec, key->name);
		expect_error("int with trailing junk", text, 2, "is not an integer");
	}

	/* ENUM */
	key = find_type(MF_CONFIG_ENUM, &sec, NULL);
	if (ok(key != NULL && key->choices != NULL && key->choices[0] != NULL,
	       "schema: has an ENUM key")) {
		size_t last = 0;

		while (key->choices[last + 1] != NULL)
			last++;
		snprintf(text, sizeof(text), "[%s]\n%s = %s\n", sec, key->name, key->choices[last]);
		cfg = load_text(text, &err);
		ok(cfg != NULL &&
		       strcmp(mf_config_str(cfg, sec, key->name), key->choices[last]) == 0,
		   "enum: '%s' accepted ([%s] %s)", key->choices[last], sec, key->name);
		mf_config_free(&cfg);
		snprintf(text, sizeof(text), "[%s]\n%s = no-such-choice\n", sec, key->name);
		expect_error("enum with an unknown word", text, 2,
		             "'no-such-choice' is not one of:");
		{
			struct mf_error e2 = {{0}};

			cfg = load_text(text, &e2);
			ok(cfg == NULL && strstr(e2.msg, key->choices[0]) != NULL,
			   "enum: message lists the choices (%s)", e2.msg);
			mf_config_free(&cfg);
		}
	}
}

static void test_errors(void)
{
	char text[2048], *longline;
	int max_line = 197; /* inih's buffer of 200 less "\r\n\0" */

	expect_error("duration that is a word", "[database]\nconnect_timeout = ten\n", 2,
	             "[database] connect_timeout: 'ten' is not a duration");
	expect_error("duration with unknown unit", "[database]\nconnect_timeout = 5w\n", 2,
	             "'5w' is not a duration");
	expect_error("negative duration", "[database]\nstatement_timeout = -5\n", 2,
	             "is not a duration");
	expect_error("duration above maximum", "[database]\nconnect_timeout = 1h\n", 2,
	             "[database] connect_timeout: '1h' is out of range (1s..300s)");
	expect_error("duration below minimum", "[database]\nconnect_timeout = 0\n", 2,
	             "out of range");
	expect_error("unknown section", "[database]\nconninfo = x\n\n[databse]\nconninfo = y\n", 4,
	             "unknown section [databse]");
	expect_error("unknown empty section", "[nothing]\n", 1, "unknown section [nothing]");
	expect_error("unknown key", "[database]\nconnifo = dbname=x\n", 2,
	             "[database] connifo: unknown key");
	expect_error("key from another section", "[keys]\nconninfo = dbname=x\n", 2,
	             "[keys] conninfo: unknown key");
	expect_error("duplicate key",
	             "[database]\nconninfo = a\nconnect_timeout = 2\nconninfo = b\n", 4,
	             "[database] conninfo: duplicate key (first set on line 2)");
	expect_error("duplicate section", "[keys]\ndir = /a\n[spool]\n[keys]\n", 4,
	             "section [keys] appears twice (first on line 1)");
	expect_error("key outside any section", "conninfo = dbname=x\n[database]\n", 1,
	             "key 'conninfo' is outside any section");
	expect_error("line without '='", "[database]\nconninfo\n", 2,
	             "syntax error: expected 'key = value'");
	expect_error("missing '=' after the key", "[database]\nconninfo dbname=x\n", 2,
	             "[database] 'conninfo dbname' is not a key name (missing '='?)");
	expect_error("header without ']'", "[database\nconninfo = x\n", 1,
	             "section header has no closing ']'");
	expect_error("text after a header", "[database] extra\n", 1,
	             "unexpected text after the section header");
	expect_error("missing key name", "[database]\n= dbname=x\n", 2, "missing key name");
	expect_error("empty integer value", "[database]\nconnect_timeout =\n", 2,
	             "[database] connect_timeout: empty value (expected a duration)");
	expect_error("empty bool value", "[spool]\nsync = \n", 2,
	             "empty value (expected yes or no)");
	expect_error("bad boolean", "[spool]\nsync = maybe\n", 2,
	             "[spool] sync: 'maybe' is not a boolean");
	expect_error("'#' comment after a value", "[spool]\nsync = yes  # fsync\n", 2,
	             "'yes  # fsync' is not a boolean (use yes or no) (a comment after a value "
	             "starts with ';', not '#')");
	expect_error("relative path", "[keys]\ndir = etc/keys\n", 2,
	             "[keys] dir: 'etc/keys' is not an absolute path");
	expect_error("first error wins", "[database]\nconnect_timeout = x\n[bogus]\n", 2,
	             "is not a duration");
	expect_error("value with control characters is quoted safely",
	             "[spool]\nsync = \x1b[31mred\n", 2, "'?[31mred' is not a boolean");

	/* a NUL byte inside the buffer */
	{
		static const char nul[] = "[spool]\nsync = y\0es\n";
		struct mf_error err = {{0}};
		struct mf_config *cfg =
		    mf_config_load_buffer("test.conf", nul, sizeof(nul) - 1, &err);

		ok(cfg == NULL && strcmp(err.msg, "test.conf:2: line contains a NUL byte") == 0,
		   "NUL byte: rejected with line (%s)", err.msg);
		mf_config_free(&cfg);
	}

	/* over-long lines are reported, not split or truncated */
	longline = malloc(4096);
	if (longline != NULL) {
		struct mf_error err = {{0}};
		struct mf_config *cfg;
		size_t fill = (size_t)max_line - strlen("conninfo = ");

		memset(longline, 'x', fill);
		longline[fill] = '\0';
		snprintf(text, sizeof(text), "[database]\nconninfo = %s\n", longline);
		cfg = load_text(text, &err);
		ok(cfg != NULL && strlen(mf_config_str(cfg, "database", "conninfo")) == fill,
		   "long line: %d characters still fit", max_line);
		mf_config_free(&cfg);
		snprintf(text, sizeof(text), "[database]\n\nconninfo = %sx\n", longline);
		expect_error("line one character too long", text, 3, "line is longer than");
		memset(longline, 'y', 4000);
		longline[4000] = '\0';
		snprintf(text, sizeof(text), "[database]\n;%.1500s\n", longline);
		expect_error("over-long comment", text, 2, "line is longer than 197 characters");
		free(longline);
	}
}

static void test_syntax_variants(void)
{
	struct mf_error err = {{0}};
	struct mf_config *cfg;

	cfg = load_text("\xEF\xBB\xBF[database]\r\n"
	                "    connect_timeout = 5\r\n"
	                "\tstatement_timeout: 30s\r\n"
	                "   ; indented comment\r\n"
	                "[spool]",
	                &err);
	ok(cfg != NULL, "BOM, CRLF, indentation, ':' separator, no final newline (%s)",
	   cfg == NULL ? err.msg : "ok");
	if (cfg != NULL) {
		ok(mf_config_int(cfg, "database", "connect_timeout") == 5 &&
		       mf_config_int(cfg, "database", "statement_timeout") == 30,
		   "an indented key is a key, not a continuation of the previous value");
		mf_config_free(&cfg);
	}
	cfg = mf_config_load_buffer("empty", "", 0, &err);
	ok(cfg != NULL && mf_config_int(cfg, "database", "connect_timeout") == 3,
	   "empty text: all defaults");
	mf_config_free(&cfg);
	cfg = mf_config_load_buffer("empty", NULL, 0, &err);
	ok(cfg != NULL, "NULL text of length 0: all defaults");
	mf_config_free(&cfg);
	cfg = load_text("[keys]\n[database]\n[spool]\n", &err);
	ok(cfg != NULL, "empty known sections are fine");
	mf_config_free(&cfg);
}

static void test_files(const char *dir)
{
	struct mf_error err = {{0}};
	struct mf_config *cfg;
	char path[1024], expect[1400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	cfg = mf_config_load(path, &err);
	snprintf(expect, sizeof(expect), "%s: cannot open: %s", path, strerror(ENOENT));
	ok(cfg == NULL && strcmp(err.msg, expect) == 0, "missing file: named with reason (%s)",
	   err.msg);
	mf_config_free(&cfg);

	cfg = mf_config_load(dir, &err);
	ok(cfg == NULL && strstr(err.msg, "not a regular file") != NULL,
	   "a directory is refused (%s)", err.msg);
	mf_config_free(&cfg);

	snprintf(path, sizeof(path), "%s/mailfort.conf", dir);
	f = fopen(path, "w");
	if (f == NULL) {
		ok(0, "cannot create %s: %s", path, strerror(errno));
		return;
	}
	fputs("[database]\nconninfo = dbname=test\n\n[spool]\nsync = yes\nsync = no\n", f);
	fclose(f);
	cfg = mf_config_load(path, &err);
	snprintf(expect, sizeof(expect), "%s:6: [spool] sync: duplicate key", path);
	ok(cfg == NULL && strncmp(err.msg, expect, strlen(expect)) == 0,
	   "file: error names the path and line (%s)", err.msg);
	mf_config_free(&cfg);

	f = fopen(path, "w");
	fputs("[database]\nconninfo = dbname=test\n", f);
	fclose(f);
	chmod(path, 0666);
	cfg = mf_config_load(path, &err);
	snprintf(expect, sizeof(expect), "%s: writable by everyone; refusing to use it", path);
	ok(cfg == NULL && strcmp(err.msg, expect) == 0, "file: world-writable refused (%s)",
	   err.msg);
	mf_config_free(&cfg);
	chmod(path, 0640);
	cfg = mf_config_load(path, &err);
	ok(cfg != NULL && strcmp(mf_config_path(cfg), path) == 0 &&
	       strcmp(mf_config_str(cfg, "database", "conninfo"), "dbname=test") == 0,
	   "file: loads, remembers its path");
	mf_config_free(&cfg);
	unlink(path);
}

/* The shipped example must load: it is installed as the first config. */
static void test_example(void)
{
	const char *src = getenv("MF_SRC");
	struct mf_error err = {{0}};
	struct mf_config *cfg;
	char path[1024];

	if (src == NULL) {
		ok(1, "# SKIP MF_SRC not set: examples/mailfort.conf not checked");
		return;
	}
	snprintf(path, sizeof(path), "%s/examples/mailfort.conf", src);
	cfg = mf_config_load(path, &err);
	ok(cfg != NULL, "examples/mailfort.conf loads (%s)", cfg == NULL ? err.msg : "ok");
	mf_config_free(&cfg);
}

static void test_getter_misuse(void)
{
	struct mf_config *cfg = mf_config_defaults();

	mf_log_set_handler(capture_log, NULL);
	logged_errors = 0;
	ok(mf_config_int(cfg, "database", "conninfo") == 0, "int getter on a string yields 0");
	ok(logged_errors == 1 && strstr(last_log, "[database] conninfo") != NULL,
	   "... and logs the programming error (%s)", last_log);
	ok(mf_config_str(cfg, "database", "connect_timeout") == NULL,
	   "str getter on a duration yields NULL");
	ok(mf_config_bool(cfg, "database", "conninfo") == false, "bool getter on a string: false");
	ok(mf_config_str(cfg, "database", "nope") == NULL, "unknown key yields NULL");
	ok(strstr(last_log, "not in the schema") != NULL, "... logged (%s)", last_log);
	ok(mf_config_int(cfg, "nosection", "x") == 0, "unknown section yields 0");
	ok(!mf_config_is_set(cfg, "nosection", "x"), "is_set of unknown key is false");
	ok(mf_config_int(NULL, "database", "connect_timeout") == 0, "NULL config yields 0");
	ok(logged_errors == 7, "every misuse was logged (%d)", logged_errors);
	mf_log_set_handler(NULL, NULL);
	mf_config_free(&cfg);
}

static void *reader_thread(void *arg)
{
	const struct mf_config *cfg = arg;
	long bad = 0;

	for (int i = 0; i < 20000; i++) {
		if (mf_config_int(cfg, "database", "connect_timeout") != 7 ||
		    strcmp(mf_config_str(cfg, "keys", "dir"), "/k") != 0)
			bad++;
	}
	return (void *)bad;
}

static void test_threads(void)
{
	struct mf_error err = {{0}};
	struct mf_config *cfg = load_text("[database]\nconnect_timeout=7\n[keys]\ndir=/k\n", &err);
	pthread_t t[4];
	long bad = 0;

	if (!ok(cfg != NULL, "threads: config loads"))
		return;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, reader_thread, cfg);
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad += (long)r;
	}
	ok(bad == 0, "threads: concurrent readers see the same values");
	mf_config_free(&cfg);
}

int main(void)
{
	const char *tmp = getenv("MF_TEST_TMP");
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/test-config.XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (tmp != NULL)
		(void)mkdir(tmp, 0700); /* usually exists already */
	test_defaults();
	test_types();
	test_errors();
	test_syntax_variants();
	if (mkdtemp(dir) != NULL) {
		test_files(dir);
		rmdir(dir);
	} else {
		ok(0, "cannot create a temporary directory %s: %s", dir, strerror(errno));
	}
	test_example();
	test_getter_misuse();
	test_threads();
	return tap_done();
}
