/*
 * test-milter-msgbuf.c - the milter's message buffer across the messages
 * of one connection: a stream over a message in memory shows exactly that
 * message, also when the buffer is appended to or emptied for the next
 * one while the stream is still held; mf_msgbuf_reset empties memory and
 * spilled buffers alike and takes a new temp directory and threshold; a
 * spilled message's temp file has no name in the temp directory.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../milter/milter.h"
#include "mf-io.h"
#include "tap.h"

/* The whole content of a stream, NUL-terminated (g_free it). */
static char *stream_text(GMimeStream *s)
{
	GByteArray *out = g_byte_array_new();
	char buf[4096];
	ssize_t n;

	g_mime_stream_reset(s);
	while ((n = g_mime_stream_read(s, buf, sizeof(buf))) > 0)
		g_byte_array_append(out, (const guint8 *)buf, (guint)n);
	g_byte_array_append(out, (const guint8 *)"", 1);
	return (char *)g_byte_array_free(out, FALSE);
}

static bool append(struct mf_msgbuf *b, const char *text)
{
	struct mf_error err;

	return mf_msgbuf_append(b, text, strlen(text), &err) == 0;
}

int main(void)
{
	struct mf_msgbuf *b;
	struct mf_error err;
	GMimeStream *s, *s2;
	const unsigned char *d;
	char *text, big[8192];
	size_t len;

	g_mime_init();
	b = mf_msgbuf_new("/tmp", 4096);
	ok(b != NULL && append(b, "Subject: one\r\n\r\nfirst\r\n"), "a message is buffered");
	s = mf_msgbuf_stream(b, &err);
	text = s != NULL ? stream_text(s) : NULL;
	ok(text != NULL && strcmp(text, "Subject: one\r\n\r\nfirst\r\n") == 0,
	   "the stream shows the message");
	g_free(text);
	d = mf_msgbuf_data(b, &len, &err);
	ok(d != NULL && len == 23 && memcmp(d, "Subject: one", 12) == 0, "so do its bytes");

	/* appending while the stream is held leaves the stream as it was */
	ok(append(b, "more\r\n"), "more is appended while the stream is held");
	text = stream_text(s);
	ok(strcmp(text, "Subject: one\r\n\r\nfirst\r\n") == 0, "the held stream is unchanged");
	g_free(text);
	s2 = mf_msgbuf_stream(b, &err);
	text = s2 != NULL ? stream_text(s2) : NULL;
	ok(text != NULL && strcmp(text, "Subject: one\r\n\r\nfirst\r\nmore\r\n") == 0,
	   "a new stream shows everything");
	g_free(text);

	/* the next message while both streams are still held */
	ok(mf_msgbuf_reset(b, "/tmp", 4096) == 0 && mf_msgbuf_size(b) == 0,
	   "reset empties the buffer");
	ok(append(b, "Subject: two\r\n\r\nsecond\r\n"), "the next message is buffered");
	text = stream_text(s);
	ok(strcmp(text, "Subject: one\r\n\r\nfirst\r\n") == 0,
	   "a stream of the first message still shows it");
	g_free(text);
	text = stream_text(s2);
	ok(strcmp(text, "Subject: one\r\n\r\nfirst\r\nmore\r\n") == 0, "so does the second one");
	g_free(text);
	g_object_unref(s);
	g_object_unref(s2);

	/* the usual case: the stream is dropped before the next message */
	s = mf_msgbuf_stream(b, &err);
	text = s != NULL ? stream_text(s) : NULL;
	ok(text != NULL && strcmp(text, "Subject: two\r\n\r\nsecond\r\n") == 0,
	   "the stream shows the second message only");
	g_free(text);
	g_object_unref(s);
	ok(mf_msgbuf_reset(b, "/tmp", 4096) == 0 && append(b, "x") &&
	       (d = mf_msgbuf_data(b, &len, &err)) != NULL && len == 1 && d[0] == 'x',
	   "after a reset the buffer holds the new bytes only");

	/* a spilled message; the next one is in memory again */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ok(append(b, big) && mf_msgbuf_spilled(b) && mf_msgbuf_size(b) == sizeof(big),
	   "a large message spills to a file");
	ok(mf_msgbuf_reset(b, "/nonexistent-dir", 100) == 0 && !mf_msgbuf_spilled(b) &&
	       mf_msgbuf_size(b) == 0,
	   "reset leaves the file and takes new settings");
	ok(append(b, "short") && !mf_msgbuf_spilled(b), "a small message stays in memory");
	ok(!append(b, big), "past the new threshold the new temp directory is used (and fails)");
	mf_msgbuf_free(&b);
	ok(b == NULL, "the buffer is freed");

	/* a spilled message leaves no name behind in the temp directory */
	{
		char dir[] = "/tmp/mf-msgbuf.XXXXXX";
		struct dirent *e;
		DIR *dh;
		int names = 0;

		ok(mkdtemp(dir) != NULL, "a temp directory is made");
		b = mf_msgbuf_new(dir, 100);
		ok(b != NULL && append(b, big) && mf_msgbuf_spilled(b) &&
		       (d = mf_msgbuf_data(b, &len, &err)) != NULL && len == sizeof(big) - 1 &&
		       d[0] == 'a' && d[len - 1] == 'a',
		   "a message past the threshold spills, and reads back whole");
		dh = opendir(dir);
		while (dh != NULL && (e = readdir(dh)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				names++;
		if (dh != NULL)
			closedir(dh);
		ok(dh != NULL && names == 0, "the spilled file has no name in %s (%d found)", dir,
		   names);
		mf_msgbuf_free(&b);
		ok(rmdir(dir) == 0, "nothing is left in the directory afterwards");
	}
	{
		int fd = mf_tmpfile("/nonexistent-dir", &err);

		ok(fd < 0 && strstr(err.msg, "/nonexistent-dir") != NULL,
		   "a temp directory that does not exist is named: %s", err.msg);
	}
	return tap_done();
}
