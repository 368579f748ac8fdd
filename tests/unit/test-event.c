/*
 * test-event.c - the audit event builder: fixed leading fields, escaping of
 * hostile strings, output that always parses as JSON, appending to a spool.
 */
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <json.h>
#include "mf-event.h"
#include "mf-json.h"
#include "mf-submit.h"
#include "tap.h"

/* Parse strictly (and require valid UTF-8); NULL if it is not JSON. */
static struct json_object *parse(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	                    json_tokener_get_parse_end(tok) != len)) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

static const char *get_str(struct json_object *o, const char *key, size_t *len_r)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	if (len_r != NULL)
		*len_r = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

static bool no_raw_controls(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* A new event's time lies between the clock's UTC time just before and
   just after it is made. */
static bool time_matches_clock(void)
{
	char before[32], after[32];
	struct mf_event *ev;
	struct json_object *o;
	const char *json, *t;
	struct timespec ts;
	time_t now;
	struct tm tm;
	bool ok = true;
	size_t len;

	/* The clock the events read: time() is the coarse clock, which may
	   still show the previous second when CLOCK_REALTIME has passed it. */
	clock_gettime(CLOCK_REALTIME, &ts);
	now = ts.tv_sec;
	strftime(before, sizeof(before), "%Y-%m-%dT%H:%M:%S", gmtime_r(&now, &tm));
	ev = mf_event_new("auth", "mx1");
	clock_gettime(CLOCK_REALTIME, &ts);
	now = ts.tv_sec;
	strftime(after, sizeof(after), "%Y-%m-%dT%H:%M:%S", gmtime_r(&now, &tm));
	json = mf_event_json(ev, &len);
	o = json != NULL ? parse(json, len) : NULL;
	t = o != NULL ? get_str(o, "time", NULL) : NULL;
	if (t == NULL || strlen(t) != 27 || strncmp(t, before, 19) < 0 || strncmp(t, after, 19) > 0)
		ok = false;
	if (!ok)
		diag("event time %s, clock %s .. %s", t != NULL ? t : "(none)", before, after);
	json_object_put(o);
	mf_event_free(&ev);
	return ok;
}

static void test_fixed_fields(void)
{
	static const char *const keys[] = {"v", "type", "time", "node", "pid"};
	struct json_object *o, *v;
	struct mf_event *ev;
	const char *json, *t;
	char host[256] = "";
	regex_t re;
	size_t len, i = 0;
	bool order = true;

	ev = mf_event_new("auth", "mx1");
	json = mf_event_json(ev, &len);
	ok(json != NULL && strlen(json) == len, "event text and length agree");
	ok(strncmp(json, "{\"v\":1,\"type\":\"auth\",\"time\":\"", 29) == 0,
	   "event starts with v, type, time: %.60s", json);
	o = parse(json, len);
	ok(o != NULL && json_object_is_type(o, json_type_object), "event parses as a JSON object");
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		if (i < 5 && strcmp(key, keys[i]) != 0)
			order = false;
		i++;
	}
	ok(i == 5 && order, "exactly the fixed fields, in order");
	ok(json_object_object_get_ex(o, "v", &v) && json_object_get_int(v) == 1, "v is 1");
	t = get_str(o, "time", NULL);
	regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$",
	        REG_EXTENDED | REG_NOSUB);
	ok(t != NULL && regexec(&re, t, 0, NULL, 0) == 0,
	   "time is RFC 3339 UTC with microseconds: %s", t);
	regfree(&re);
	ok(time_matches_clock(), "time is the current UTC time");
	ok(get_str(o, "node", NULL) != NULL && strcmp(get_str(o, "node", NULL), "mx1") == 0,
	   "node is the configured one");
	ok(json_object_object_get_ex(o, "pid", &v) && json_object_get_int(v) == (int)getpid(),
	   "pid is this process");
	ok(mf_event_json(ev, NULL) == json, "asking again gives the same text");
	json_object_put(o);
	mf_event_free(&ev);
	ok(ev == NULL, "free clears the handle");

	ev = mf_event_new("login", NULL);
	json = mf_event_json(ev, &len);
	o = parse(json, len);
	gethostname(host, sizeof(host) - 1);
	ok(o != NULL && get_str(o, "node", NULL) != NULL &&
	       strcmp(get_str(o, "node", NULL), host) == 0,
	   "node defaults to the host name (%s)", host);
	json_object_put(o);
	mf_event_free(&ev);

	ev = mf_event_new("x\"y\n", "n\\1");
	json = mf_event_json(ev, &len);
	o = parse(json, len);
	ok(o != NULL && strcmp(get_str(o, "type", NULL), "x\"y\n") == 0 &&
	       strcmp(get_str(o, "node", NULL), "n\\1") == 0,
	   "type and node are escaped too");
	json_object_put(o);
	mf_event_free(&ev);
}

static void test_escaping(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *quoted;
	} cases[] = {
	    {"plain", 5, "\"plain\""},
	    {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
	    {"l1\nl2\r\t", 7, "\"l1\\nl2\\r\\t\""},
	    {"\b\f\x01\x1f\x7f", 5, "\"\\b\\f\\u0001\\u001f\\u007f\""},
	    {"a\0b", 3,
	     "\"a\xef\xbf\xbd"
	     "b\""}, /* jsonb refuses \u0000 */
	    {"\xff", 1, "\"\xef\xbf\xbd\""},
	    {"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},                 /* overlong '/' */
	    {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
	    {"\xe2\x82x", 3, "\"\xef\xbf\xbdx\""},                           /* cut sequence */
	    {"\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
	    {"\xf0\x9f\x98\x80 \xc3\xa9", 7, "\"\xf0\x9f\x98\x80 \xc3\xa9\""}, /* emoji, é */
	    {"\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\""},
	    {"</script>", 9, "\"</script>\""},
	    {"", 0, "\"\""},
	};
	char *q;

	for (size_t i = 0; i < MF_N_ELEMENTS(cases); i++) {
		q = mf_json_quote(cases[i].in, cases[i].len);
		ok(q != NULL && strcmp(q, cases[i].quoted) == 0, "quote case %zu: %s", i,
		   q != NULL ? q : "(null)");
		free(q);
	}
	q = mf_json_quote(NULL, 0);
	ok(q != NULL && strcmp(q, "null") == 0, "quoting NULL gives null");
	free(q);
}

static void test_adders(void)
{
	static const char hostile[] =
	    "Re: \"urgent\"\n\r\\ \x01\x1b[31m \xff\xfe \xf0\x9f\x98\x80}";
	struct json_object *o, *v, *a;
	struct mf_event *ev;
	const char *json, *s;
	char *big;
	size_t len, slen;

	ev = mf_event_new("read", "mx1");
	mf_event_add_str(ev, "user", "alice@example.org");
	mf_event_add_str(ev, "subject", hostile);
	mf_event_add_strn(ev, "raw", "a\0b", 3);
	mf_event_add_str(ev, "none", NULL);
	mf_event_add_int(ev, "min", INT64_MIN);
	mf_event_add_int(ev, "max", INT64_MAX);
	mf_event_add_bool(ev, "yes", true);
	mf_event_add_bool(ev, "no", false);
	mf_event_add_json(ev, "list", "[1, {\"a\": \"b\"},\n 3]");
	mf_event_add_json(ev, "broken", "{\"a\":");
	mf_event_add_json(ev, "trailing", "[1] [2]");
	mf_event_add_json(ev, "nulljson", NULL);
	mf_event_add_json(ev, "num", "42");
	json = mf_event_json(ev, &len);
	ok(json != NULL && no_raw_controls(json, len), "no raw control character in the event");
	ok(strchr(json, '\n') == NULL, "the event is one line");
	o = parse(json, len);
	ok(o != NULL, "event with hostile values parses as JSON");
	if (o == NULL) {
		diag("%s", json);
		mf_event_free(&ev);
		return;
	}
	ok(strcmp(get_str(o, "user", NULL), "alice@example.org") == 0, "a plain string");
	s = get_str(o, "subject", NULL);
	ok(s != NULL &&
	       strncmp(s, "Re: \"urgent\"\n\r\\ \x01\x1b[31m \xef\xbf\xbd\xef\xbf\xbd ", 25) == 0 &&
	       strstr(s, "\xf0\x9f\x98\x80}") != NULL,
	   "hostile subject round-trips, invalid bytes as U+FFFD, emoji kept");
	s = get_str(o, "raw", &slen);
	ok(s != NULL && slen == 5 &&
	       memcmp(s,
	              "a\xef\xbf\xbd"
	              "b",
	              5) == 0,
	   "a NUL inside strn becomes U+FFFD (jsonb cannot store \\u0000)");
	ok(json_object_object_get_ex(o, "none", &v) && v == NULL, "NULL string is null");
	ok(json_object_object_get_ex(o, "min", &v) && json_object_get_int64(v) == INT64_MIN,
	   "INT64_MIN");
	ok(json_object_object_get_ex(o, "max", &v) && json_object_get_int64(v) == INT64_MAX,
	   "INT64_MAX");
	ok(json_object_object_get_ex(o, "yes", &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v),
	   "true");
	ok(json_object_object_get_ex(o, "no", &v) && !json_object_get_boolean(v), "false");
	ok(json_object_object_get_ex(o, "list", &a) && json_object_is_type(a, json_type_array) &&
	       json_object_array_length(a) == 3,
	   "valid JSON is embedded as is");
	ok(get_str(o, "broken", NULL) != NULL && strcmp(get_str(o, "broken", NULL), "{\"a\":") == 0,
	   "invalid JSON is recorded as a string");
	ok(get_str(o, "trailing", NULL) != NULL, "two JSON values are recorded as a string");
	ok(json_object_object_get_ex(o, "nulljson", &v) && v == NULL, "NULL JSON is null");
	ok(json_object_object_get_ex(o, "num", &v) && json_object_get_int(v) == 42,
	   "a bare number is valid JSON");
	json_object_put(o);

	/* Adding after the text was taken reopens the object. */
	mf_event_add_str(ev, "late", "yes");
	json = mf_event_json(ev, &len);
	o = parse(json, len);
	ok(o != NULL && get_str(o, "late", NULL) != NULL, "a field added after json is included");
	json_object_put(o);
	mf_event_free(&ev);

	/* A huge value is cut, at a character boundary, and marked. */
	big = malloc(3 * MF_EVENT_MAX_STR);
	for (size_t i = 0; i + 4 <= 3 * MF_EVENT_MAX_STR; i += 4)
		memcpy(big + i, "\xf0\x9f\x98\x80", 4);
	ev = mf_event_new("save", "mx1");
	mf_event_add_strn(ev, "subject", big, 3 * MF_EVENT_MAX_STR - 1); /* cut sequence at end */
	json = mf_event_json(ev, &len);
	o = parse(json, len);
	s = o != NULL ? get_str(o, "subject", &slen) : NULL;
	ok(s != NULL && slen <= MF_EVENT_MAX_STR + 16 && strstr(s, "[truncated]") != NULL,
	   "a value over %d bytes is cut and marked (%zu bytes)", MF_EVENT_MAX_STR, slen);
	json_object_put(o);
	mf_event_free(&ev);
	free(big);

	/* Named fields have shorter limits, and a flag says a value was cut. */
	big = malloc(3000);
	memset(big, 'u', 3000);
	ev = mf_event_new("login", "mx1");
	mf_event_add_strn(ev, "user", big, 3000);
	mf_event_add_strn(ev, "session", big, MF_EVENT_MAX_SESSION);
	mf_event_add_strn(ev, "message_id", big, 3000);
	json = mf_event_json(ev, &len);
	o = parse(json, len);
	s = o != NULL ? get_str(o, "user", &slen) : NULL;
	ok(s != NULL && slen == MF_EVENT_MAX_USER + strlen(" [truncated]") &&
	       strncmp(s, big, MF_EVENT_MAX_USER) == 0 && strstr(s, " [truncated]") != NULL,
	   "a 3,000-byte user is cut to %d bytes and marked (%zu)", MF_EVENT_MAX_USER, slen);
	{
		struct json_object *flag;

		ok(o != NULL && json_object_object_get_ex(o, "user_truncated", &flag) &&
		       json_object_get_boolean(flag),
		   "... and \"user_truncated\": true is added");
		ok(o != NULL && !json_object_object_get_ex(o, "session_truncated", NULL),
		   "a value exactly at its limit is kept whole, without a flag");
		s = o != NULL ? get_str(o, "message_id", &slen) : NULL;
		ok(s != NULL && slen == MF_EVENT_MAX_MESSAGE_ID + strlen(" [truncated]") &&
		       json_object_object_get_ex(o, "message_id_truncated", &flag),
		   "message_id is cut at %d bytes, flagged", MF_EVENT_MAX_MESSAGE_ID);
	}
	json_object_put(o);
	mf_event_free(&ev);
	free(big);
}

/* Random bytes never break the JSON. */
static void test_random(void)
{
	unsigned char buf[64];
	struct json_object *o;
	unsigned seed = 12345;
	int bad = 0;
	char *q;

	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));

		for (size_t j = 0; j < len; j++) {
			int r = rand_r(&seed);
			/* Bias towards UTF-8 lead and continuation bytes. */
			buf[j] = (unsigned char)(r % 3 == 0 ? 0x80 + (r >> 8) % 0x80 : r >> 8);
		}
		q = mf_json_quote((const char *)buf, len);
		o = q != NULL ? parse(q, strlen(q)) : NULL;
		if (o == NULL || !json_object_is_type(o, json_type_string)) {
			if (bad++ < 3)
				diag("not valid: %s", q != NULL ? q : "(null)");
		}
		json_object_put(o);
		free(q);
	}
	ok(bad == 0, "20000 random byte strings all quote to valid JSON strings in UTF-8");
}

/* A stand-in for mailfort-spoold: for each message, the next letter of its
   script says what to do: 'K' answer OK, 'E' answer with a refusal, 'N'
   not answer, 'C' close the connection without answering and accept the
   next one.  It keeps the last message. */
struct fake_receiver {
	int listen_fd;
	const char *script;
	char last[4096];
	size_t last_len;
};

static void *fake_receiver_main(void *arg)
{
	struct fake_receiver *f = arg;
	int fd = accept(f->listen_fd, NULL, NULL);

	for (const char *s = f->script; fd >= 0 && *s != '\0'; s++) {
		ssize_t n = recv(fd, f->last, sizeof(f->last), 0);

		if (n <= 0)
			break;
		f->last_len = (size_t)n;
		if (*s == 'K' && send(fd, "K", 1, 0) != 1)
			break;
		if (*s == 'E' && send(fd, "Eno such kind", 13, 0) != 13)
			break;
		if (*s == 'C') {
			close(fd);
			fd = accept(f->listen_fd, NULL, NULL);
		}
	}
	if (fd >= 0) {
		usleep(1000 * 1000);
		close(fd);
	}
	return NULL;
}

static int fake_receiver_start(struct fake_receiver *f, pthread_t *th, const char *path,
                               const char *script)
{
	struct sockaddr_un sun;

	memset(f, 0, sizeof(*f));
	f->script = script;
	f->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	(void)unlink(path);
	if (bind(f->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(f->listen_fd, 4) < 0 || pthread_create(th, NULL, fake_receiver_main, f) != 0)
		return -1;
	return 0;
}

/* Events sent without waiting: answers are collected later, and an event
   whose answer never came is sent again after the receiver went away. */
static void test_append_nowait(const char *path)
{
	struct fake_receiver f;
	struct mf_submit *s;
	struct mf_event *ev;
	struct mf_error err;
	pthread_t th;

	if (fake_receiver_start(&f, &th, path, "KECK") < 0) {
		ok(0, "fake receiver: %s", strerror(errno));
		return;
	}
	s = mf_submit_open(path, 500, &err);
	ev = mf_event_new("read", "mx1");
	ok(s != NULL && mf_event_append_nowait(ev, s, &err) == 0, "a read event is sent");
	ok(mf_event_append_nowait(ev, s, &err) == 0, "the next one collects the first's answer");
	ok(mf_event_append_nowait(ev, s, &err) < 0 &&
	       strstr(err.msg, "an earlier event: event socket") != NULL &&
	       strstr(err.msg, "no such kind") != NULL,
	   "a refusal is reported with the next event, as the earlier one's: %s", err.msg);
	/* the receiver closed the connection without answering the third */
	ok(mf_submit_flush(s, &err) == 0, "an event whose answer was lost is sent again: %s",
	   err.msg);
	ok(f.last_len > 20 && memmem(f.last, f.last_len, ",\"resent\":true}", 15) != NULL,
	   "marked resent, on a new connection");
	ok(mf_submit_flush(s, &err) == 0, "nothing left to wait for");
	mf_event_free(&ev);
	mf_submit_close(&s);
	pthread_join(th, NULL);
	close(f.listen_fd);
}

static void test_append(void)
{
	char dir[512], path[600], cmd[700];
	const char *tmp = getenv("MF_TEST_TMP");
	struct fake_receiver f;
	struct mf_submit *s;
	struct mf_event *ev;
	struct mf_error err;
	struct timespec t0, t1;
	pthread_t th;
	const char *json;
	size_t len, jlen;
	long ms;

	snprintf(dir, sizeof(dir), "%s/test-event.XXXXXX",
	         tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/spool.sock", dir);
	s = mf_submit_open(path, 500, &err);
	ok(s == NULL && strstr(err.msg, "cannot connect") != NULL && strstr(err.msg, path) != NULL,
	   "no receiver: a clear error naming the socket: %s", err.msg);

	if (fake_receiver_start(&f, &th, path, "KEN") < 0) {
		ok(0, "fake receiver: %s", strerror(errno));
		return;
	}
	s = mf_submit_open(path, 500, &err);
	ok(s != NULL, "connects to the receiver");
	ev = mf_event_new("auth", "mx1");
	mf_event_add_str(ev, "user", "bob");
	mf_event_add_str(ev, "result", "ok");
	ok(mf_event_append(ev, s, &err) == 0, "event handed over and acknowledged");
	json = mf_event_json(ev, &jlen);
	ok(f.last_len == jlen && memcmp(f.last, json, jlen) == 0,
	   "the receiver got exactly the event's JSON, as one message");
	ok(mf_event_append(ev, s, &err) < 0 &&
	       strstr(err.msg, "event refused: no such kind") != NULL,
	   "a refusal reaches the producer with its reason: %s", err.msg);
	mf_event_free(&ev);
	ok(mf_event_append(NULL, s, &err) < 0 && strstr(err.msg, "could not be built") != NULL,
	   "a failed (NULL) event is an error, not a crash: %s", err.msg);
	/* the script is done: the receiver reads but no longer answers */
	ev = mf_event_new("admin", "mx1");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ok(mf_event_append(ev, s, &err) < 0 && strstr(err.msg, "within 500 ms") != NULL,
	   "an unanswered event fails after the timeout: %s", err.msg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ok(ms >= 450 && ms < 1500, "... and not much later (%ld ms)", ms);
	mf_event_free(&ev);
	ok(mf_event_append(NULL, NULL, &err) < 0, "no connection at all is an error too");
	mf_event_add_str(NULL, "x", "y");
	mf_event_add_int(NULL, "x", 1);
	ok(mf_event_json(NULL, &len) == NULL && len == 0, "adders and json accept NULL");
	mf_submit_close(&s);
	pthread_join(th, NULL);
	close(f.listen_fd);
	test_append_nowait(path);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("cleanup failed");
}

/* True if the event embeds value as JSON (not as a string). */
static bool embedded(const char *value)
{
	struct mf_event *ev = mf_event_new("read", "mx1");
	const char *json;
	size_t len, vlen = strlen(value);
	bool yes;

	mf_event_add_json(ev, "f", value);
	json = mf_event_json(ev, &len);
	yes = json != NULL && len > vlen + 6 && memcmp(json + len - vlen - 6, ",\"f\":", 5) == 0 &&
	      memcmp(json + len - vlen - 1, value, vlen) == 0;
	mf_event_free(&ev);
	return yes;
}

/* n arrays nested in each other around 1: "[[...[1]...]]" (malloc). */
static char *nested(int n)
{
	char *s = malloc((size_t)n * 2 + 2);

	memset(s, '[', (size_t)n);
	s[n] = '1';
	memset(s + n + 1, ']', (size_t)n);
	s[2 * n + 1] = '\0';
	return s;
}

/* A number of n digits, then tail (malloc). */
static char *digits(size_t n, const char *tail)
{
	char *s = malloc(n + strlen(tail) + 2);

	s[0] = '1';
	memset(s + 1, '0', n - 1);
	strcpy(s + n, tail);
	return s;
}

/* Where the scanners of the producers and of auditd used to disagree, the
   one scanner gives jsonb's answer (mf-json.h). */
static void test_jsonb_rules(void)
{
	static const struct {
		const char *json;
		bool valid;
		enum mf_json_error error;
		const char *what;
	} cases[] = {
	    {"\"\\ud83d\\ude00\"", true, MF_JSON_OK, "a surrogate pair"},
	    {"\"\\uD83D\\uDE00x\"", true, MF_JSON_OK, "a surrogate pair in upper case"},
	    {"\"\\ud800\"", false, MF_JSON_ERR_SURROGATE, "a lone high surrogate"},
	    {"\"\\udc00x\"", false, MF_JSON_ERR_SURROGATE, "a lone low surrogate"},
	    {"\"\\ud800\\u0041\"", false, MF_JSON_ERR_SURROGATE, "a high surrogate, no low one"},
	    {"\"\\ude00\\ud83d\"", false, MF_JSON_ERR_SURROGATE, "a pair in the wrong order"},
	    {"\"\\ud800\\u0000\"", false, MF_JSON_ERR_NUL, "a high surrogate, then \\u0000"},
	    {"\"a\\u0000\"", false, MF_JSON_ERR_NUL, "a \\u0000 escape"},
	    {"[\"\\u0000\"]", false, MF_JSON_ERR_NUL, "a \\u0000 escape in an array"},
	    {"\"a\\\\u0000\"", true, MF_JSON_OK, "an escaped backslash before u0000"},
	    {"\"\\\\\\u0000\"", false, MF_JSON_ERR_NUL, "an escaped backslash, then \\u0000"},
	    {"\"\\u0001\"", true, MF_JSON_OK, "a \\u0001 escape"},
	    {"1e1000", true, MF_JSON_OK, "exponent 1000"},
	    {"-1E-1000", true, MF_JSON_OK, "exponent -1000"},
	    {"1e+0001000", true, MF_JSON_OK, "exponent 1000 with leading zeros"},
	    {"1e1001", false, MF_JSON_ERR_NUMBER, "exponent 1001"},
	    {"1e99999", false, MF_JSON_ERR_NUMBER, "exponent 99999"},
	    {"1e-99999999999999999999", false, MF_JSON_ERR_NUMBER, "a huge negative exponent"},
	    {"null", true, MF_JSON_OK, "a bare null"},
	    {"01", false, MF_JSON_ERR_SYNTAX, "a leading zero"},
	    {"\"\xed\xa0\x80\"", false, MF_JSON_ERR_UTF8, "an encoded surrogate"},
	};
	struct mf_json_scan scan;
	char *s;

	for (size_t i = 0; i < MF_N_ELEMENTS(cases); i++) {
		memset(&scan, 0, sizeof(scan));
		ok((mf_json_scan(cases[i].json, strlen(cases[i].json), &scan) == 0) ==
		           cases[i].valid &&
		       scan.error == cases[i].error,
		   "%s: %s (%s)", cases[i].what, cases[i].valid ? "valid" : "refused",
		   mf_json_strerror(scan.error));
		ok(embedded(cases[i].json) == cases[i].valid, "%s: %s by an event", cases[i].what,
		   cases[i].valid ? "embedded" : "recorded as a string");
	}

	/* a whole record holds at most MF_JSON_MAX_DEPTH levels, so a field
	   value one less (the event's object is one) */
	s = nested(MF_JSON_MAX_DEPTH);
	memset(&scan, 0, sizeof(scan));
	ok(mf_json_scan(s, strlen(s), &scan) == 0 && scan.depth_seen == MF_JSON_MAX_DEPTH,
	   "%d levels of nesting are valid", MF_JSON_MAX_DEPTH);
	ok(!embedded(s), "but not in an event field");
	free(s);
	s = nested(MF_JSON_MAX_DEPTH + 1);
	memset(&scan, 0, sizeof(scan));
	ok(mf_json_scan(s, strlen(s), &scan) < 0 && scan.error == MF_JSON_ERR_DEPTH,
	   "%d levels are nested too deep", MF_JSON_MAX_DEPTH + 1);
	free(s);
	s = nested(MF_JSON_MAX_DEPTH - 1);
	ok(embedded(s), "%d levels in an event field are embedded", MF_JSON_MAX_DEPTH - 1);
	free(s);
	s = nested(17);
	ok(embedded(s), "17 levels in an event field are embedded");
	free(s);

	s = digits(MF_JSON_MAX_DIGITS, ".5");
	ok(embedded(s), "%d digits before the point are embedded", MF_JSON_MAX_DIGITS);
	free(s);
	s = digits(MF_JSON_MAX_DIGITS + 1, "");
	memset(&scan, 0, sizeof(scan));
	ok(mf_json_scan(s, strlen(s), &scan) < 0 && scan.error == MF_JSON_ERR_NUMBER &&
	       !embedded(s),
	   "%d digits are refused", MF_JSON_MAX_DIGITS + 1);
	free(s);
	s = digits(MF_JSON_MAX_DIGITS + 3, "");
	memcpy(s, "0.", 2); /* then 1 and MF_JSON_MAX_DIGITS zeros */
	memset(&scan, 0, sizeof(scan));
	ok(mf_json_scan(s, strlen(s), &scan) < 0 && scan.error == MF_JSON_ERR_NUMBER,
	   "%d digits after the point are refused", MF_JSON_MAX_DIGITS + 1);
	free(s);
	memset(&scan, 0, sizeof(scan));
	ok(mf_json_scan("\"a\0\"", 4, &scan) < 0 && scan.error == MF_JSON_ERR_UTF8,
	   "a NUL byte is refused");
	memset(&scan, 0, sizeof(scan));
	ok(mf_json_scan("[1] x", 5, &scan) < 0 && scan.error == MF_JSON_ERR_SYNTAX &&
	       scan.error_at == 4,
	   "the error is where the scan stopped");
}

int main(void)
{
	test_fixed_fields();
	test_escaping();
	test_adders();
	test_random();
	test_jsonb_rules();
	test_append();
	return tap_done();
}
