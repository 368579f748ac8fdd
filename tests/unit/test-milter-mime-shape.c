/*
 * test-milter-mime-shape.c - MIME that readers read differently is named,
 * ordinary MIME is not (milter/mime-shape.c), and the scan turns the first
 * into 554 5.6.0 or a hold, as [milter] ambiguous_mime_action says.
 */
#include <string.h>
#include "../../milter/scan.h"
#include "mf-config.h"
#include "tap.h"

#define TOP   "From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
#define MIXED "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
#define TEXT  "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
#define EXE   "Content-Type: application/octet-stream; name=\"invoice.exe\"\r\n"
#define END   "--b1--\r\n"

struct shape_case {
	const char *what;
	const char *msg;
	const char *doubt; /* a word of the expected sentence, or NULL: not ambiguous */
};

static const struct shape_case cases[] = {
    /* ordinary mail */
    {"a plain text message", TOP "\r\nhello\r\n", NULL},
    {"a multipart with a text and an attachment",
     TOP MIXED "preamble\r\n" TEXT "--b1\r\n" EXE "Content-Transfer-Encoding: base64\r\n\r\n"
               "TVqQAA==\r\n" END "\r\n",
     NULL},
    {"name= and name*= spelling the same name",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"; name*=UTF-8''r.pdf\r\n"
                    "\r\nx\r\n" END,
     NULL},
    {"RFC 2231 continuations in order",
     TOP MIXED TEXT
     "--b1\r\nContent-Type: application/pdf\r\n"
     "Content-Disposition: attachment; filename*0=\"long\"; filename*1=\"name.pdf\"\r\n"
     "\r\nx\r\n" END,
     NULL},
    {"a folded Content-Type and white space after the boundary",
     TOP "Content-Type: multipart/mixed;\r\n\tboundary=\"b1\"\r\n\r\n--b1  \r\n"
         "Content-Type: text/plain\r\n\r\nhi\r\n--b1--\t\r\n",
     NULL},
    {"nested multiparts with unrelated boundaries",
     TOP MIXED
     "--b1\r\nContent-Type: multipart/alternative; boundary=\"x2\"\r\n\r\n"
     "--x2\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x2\r\nContent-Type: text/html\r\n\r\n"
     "<p>hi</p>\r\n--x2--\r\n" END,
     NULL},
    {"an embedded message",
     TOP MIXED TEXT "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
                    "Subject: inner\r\nContent-Type: text/plain\r\n\r\nin\r\n" END,
     NULL},
    {"a name differing from the filename only in case",
     TOP MIXED TEXT "--b1\r\nContent-Type: text/x-diff; name=\"patch\"\r\n"
                    "Content-Disposition: inline; filename=\"PATCH\"\r\n\r\nx\r\n" END,
     NULL},
    {"a header line that is not a field, with no Content-* after it",
     TOP MIXED TEXT "--b1\r\nContent-Type: text/plain\r\nnot a field\r\n\r\nx\r\n" END, NULL},
    /* ambiguous */
    {"two Content-Type fields",
     TOP MIXED TEXT "--b1\r\nContent-Type: text/plain\r\n" EXE "\r\nx\r\n" END,
     "two Content-Type fields"},
    {"two Content-Type fields at the top", TOP "Content-Type: text/plain\r\n" MIXED TEXT END,
     "two Content-Type fields"},
    {"Content-Type fields differing in case and folding",
     TOP MIXED TEXT "--b1\r\nCONTENT-TYPE:\r\n text/plain\r\ncontent-type: "
                    "application/x-msdownload\r\n\r\nx\r\n" END,
     "two Content-Type fields"},
    {"two Content-Transfer-Encoding fields",
     TOP MIXED TEXT "--b1\r\n" EXE "Content-Transfer-Encoding: 7bit\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\nTVqQAA==\r\n" END,
     "two Content-Transfer-Encoding fields"},
    {"two Content-Disposition fields",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/octet-stream\r\n"
                    "Content-Disposition: inline\r\nContent-Disposition: attachment; "
                    "filename=a.exe\r\n\r\nx\r\n" END,
     "two Content-Disposition fields"},
    {"two different name parameters",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/octet-stream; name=\"a.pdf\"; "
                    "name=\"a.exe\"\r\n\r\nx\r\n" END,
     "two different name parameters"},
    {"name= and name*= with different names",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/octet-stream; name=\"a.pdf\"; "
                    "name*=UTF-8''a.exe\r\n\r\nx\r\n" END,
     "two different name parameters"},
    {"a repeated RFC 2231 section",
     TOP MIXED TEXT
     "--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
     "filename*0=\"a\"; filename*0=\"b.exe\"\r\n\r\nx\r\n" END,
     "appears twice"},
    {"a missing RFC 2231 section",
     TOP MIXED TEXT
     "--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
     "filename*0=\"a\"; filename*2=\".exe\"\r\n\r\nx\r\n" END,
     "is missing"},
    {"two different boundary parameters",
     TOP "Content-Type: multipart/mixed; boundary=\"b1\"; boundary=\"b2\"\r\n\r\n" TEXT END,
     "two different boundary parameters"},
    {"two different charset parameters",
     TOP MIXED "--b1\r\nContent-Type: text/plain; charset=utf-8; charset=euc-kr\r\n\r\nx\r\n" END,
     "two different charset parameters"},
    {"a name that differs from the filename",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
                    "Content-Disposition: attachment; filename=\"a.exe\"\r\n\r\nx\r\n" END,
     "differs from the Content-Disposition filename"},
    {"a multipart without a boundary", TOP "Content-Type: multipart/mixed\r\n\r\n" TEXT END,
     "without a boundary"},
    {"a boundary that never appears", TOP MIXED "hello\r\n", "never appears"},
    {"an unterminated multipart", TOP MIXED TEXT "--b1\r\n" EXE "\r\nMZ\r\n", "closing boundary"},
    {"a part after the closing boundary", TOP MIXED TEXT END "\r\n" EXE "\r\nMZ\r\n",
     "after the closing boundary"},
    {"the boundary again after the closing boundary",
     TOP MIXED TEXT END "--b1\r\n" EXE "\r\nMZ\r\n" END, "after the closing boundary"},
    {"a line that begins with the boundary and goes on",
     TOP MIXED TEXT "--b1x\r\n" EXE "\r\nMZ\r\n" END, "goes on"},
    {"a nested boundary that begins like the enclosing one",
     TOP MIXED "--b1\r\nContent-Type: multipart/mixed; boundary=\"b1-inner\"\r\n\r\n"
               "--b1-inner\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1-inner--\r\n" END,
     "begins"},
    {"a NUL in a header",
     TOP MIXED "--b1\r\nContent-Type: text/plain\r\nX-A: a\0b\r\n\r\nx\r\n" END, "NUL"},
    {"a bare CR in a header",
     TOP MIXED "--b1\r\nContent-Type: text/plain\rContent-Type: application/x-exe\r\n\r\nx\r\n" END,
     "bare carriage return"},
    {"a boundary after a bare CR", TOP MIXED TEXT "x\r--b1\r\n" EXE "\r\nMZ\r\n" END,
     "bare carriage return"},
    {"a line that is not a field before a Content-Type",
     TOP MIXED "--b1\r\nX-Junk\r\nContent-Type: application/x-msdownload\r\n\r\nMZ\r\n" END,
     "not a field"},
    {"8-bit in a header name before a Content-Type",
     TOP MIXED "--b1\r\nX-\xc3\xa9: 1\r\nContent-Type: application/x-msdownload\r\n\r\nMZ\r\n" END,
     "not a field"},
    {"white space before the colon of Content-Type",
     TOP MIXED "--b1\r\nContent-Type : application/x-msdownload\r\n\r\nMZ\r\n" END,
     "malformed Content-*"},
    {"a multipart in base64",
     TOP
     "Content-Type: multipart/mixed; boundary=b1\r\nContent-Transfer-Encoding: base64\r\n\r\n" TEXT
         END,
     "transfer encoding"},
    {"a boundary in RFC 2231 form",
     TOP "Content-Type: multipart/mixed; boundary*=UTF-8''b1\r\n\r\n" TEXT END, "RFC 2231"},
    {"text after a filename",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/octet-stream; "
                    "name=invoice.pdf .exe\r\n\r\nx\r\n" END,
     "text after the name parameter"},
    {"an unterminated quoted name",
     TOP MIXED TEXT "--b1\r\nContent-Type: application/octet-stream; name=\"a.exe\r\n\r\nx\r\n" END,
     "unterminated"},
    {"an empty Content-Type", TOP MIXED TEXT "--b1\r\nContent-Type: \r\n\r\nx\r\n" END,
     "empty Content-Type"},
    {"text glued to the subtype",
     TOP "Content-Type: multipart/mixed\xff\xff; boundary=b1\r\n\r\n" TEXT END, "after the type"},
    {"a parameter after junk that is not a parameter",
     TOP "Content-Type: multipart/mixed; junk: x; boundary=b1\r\n\r\n" TEXT END,
     "after text that is not a parameter"},
    {"a part with neither header nor blank line", TOP MIXED TEXT "--b1\r\nJunk line\r\n" END,
     "neither a header field nor a blank line"},
    {"an empty part without a blank line", TOP MIXED TEXT "--b1\r\n" END,
     "neither a header field nor a blank line"},
    {"a broken %-escape in an RFC 2231 name",
     TOP MIXED TEXT
     "--b1\r\nContent-Type: application/octet-stream; name*=UTF-8''a.%zxe\r\n\r\nx\r\n" END,
     "escape"},
    {"a transfer encoding of two words",
     TOP MIXED TEXT "--b1\r\n" EXE "Content-Transfer-Encoding: base64 7bit\r\n\r\nx\r\n" END,
     "more than one word"},
};

static void test_shapes(void)
{
	size_t i;

	for (i = 0; i < MF_N_ELEMENTS(cases); i++) {
		const struct shape_case *t = &cases[i];
		size_t len = strlen(t->msg);
		struct mf_mime_shape s;

		/* the NUL case: its length runs to the end of the literal */
		if (strstr(t->what, "NUL") != NULL)
			len += strlen(t->msg + len + 1) + 1;
		if (mf_mime_shape_read((const unsigned char *)t->msg, len, 20, true, &s) < 0) {
			ok(0, "%s: read", t->what);
			continue;
		}
		if (t->doubt == NULL)
			ok(s.doubt == NULL, "%s: not ambiguous (%s)", t->what,
			   s.doubt != NULL ? s.doubt : "-");
		else
			ok(s.doubt != NULL && strstr(s.doubt, t->doubt) != NULL,
			   "%s: ambiguous, \"%s\" (%s)", t->what, t->doubt,
			   s.doubt != NULL ? s.doubt : "not flagged");
		mf_mime_shape_free(&s);
	}
}

static void test_tree(void)
{
	static const char msg[] =
	    TOP MIXED TEXT "--b1\r\nContent-Type: multipart/alternative; "
	                   "boundary=\"x2\"\r\n\r\n--x2\r\n\r\nplain\r\n--x2--\r\n"
	                   "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
	                   "Subject: in\r\n\r\nbody\r\n"
	                   "--b1\r\n" EXE "\r\nMZ\r\n" END;
	struct mf_mime_shape s;
	const char *want[] = {
	    "1m multipart/mixed", "2l text/plain", "2m multipart/alternative",   "3l text/plain",
	    "2r message/rfc822",  "3l text/plain", "2l application/octet-stream"};
	size_t i;
	bool same;

	if (mf_mime_shape_read((const unsigned char *)msg, sizeof(msg) - 1, 20, true, &s) < 0) {
		ok(0, "tree: read");
		return;
	}
	same = s.doubt == NULL && s.n == MF_N_ELEMENTS(want);
	for (i = 0; same && i < s.n; i++) {
		char got[64];

		snprintf(got, sizeof(got), "%d%c %s", s.nodes[i].depth, s.nodes[i].kind,
		         s.nodes[i].type);
		if (strcmp(got, want[i]) != 0) {
			diag("part %zu: %s, want %s", i, got, want[i]);
			same = false;
		}
	}
	ok(same, "the parts of a nested message, in order, with their depth and type");
	ok(s.n == 7 && s.nodes[6].filename != NULL &&
	       strcmp(s.nodes[6].filename, "invoice.exe") == 0,
	   "a leaf's file name is read from its Content-Type name");
	mf_mime_shape_free(&s);
}

static struct mf_policy *policy(const char *extra)
{
	char conf[512];
	struct mf_config *cfg;
	struct mf_policy *pol;
	struct mf_error err;

	snprintf(conf, sizeof(conf), "[milter]\ntmp_dir = /tmp\nspam = no\n%s\n", extra);
	cfg = mf_config_load_buffer("t.conf", conf, strlen(conf), &err);
	if (cfg == NULL) {
		diag("config: %s", err.msg);
		return NULL;
	}
	pol = mf_policy_new(cfg, &err);
	mf_config_free(&cfg);
	if (pol == NULL)
		diag("policy: %s", err.msg);
	return pol;
}

static void scan_msg(struct mf_policy *pol, const char *msg, struct mf_verdict *v)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(msg, strlen(msg));
	struct mf_error err;

	mf_verdict_init(v);
	if (mf_scan(pol, NULL, s, v, &err) < 0)
		diag("scan: %s", err.msg);
	g_object_unref(s);
}

static void test_verdict(void)
{
	static const char two_ct[] =
	    TOP MIXED TEXT "--b1\r\nContent-Type: text/plain\r\n" EXE "\r\nMZ\r\n" END;
	struct mf_policy *pol = policy(""), *hold = policy("ambiguous_mime_action = hold");
	struct mf_verdict v;

	if (pol == NULL || hold == NULL) {
		ok(0, "policies");
		return;
	}
	scan_msg(pol, two_ct, &v);
	ok(v.action == MF_ACT_REJECT && strcmp(v.reply_code, "554") == 0 &&
	       strcmp(v.reply_xcode, "5.6.0") == 0,
	   "ambiguous MIME is refused with 554 5.6.0 by default");
	ok(v.reply_text != NULL && strstr(v.reply_text, "two Content-Type fields in one part") &&
	       strstr(v.reply_text, "more than one way"),
	   "the reply names what was ambiguous in a sentence (%s)",
	   v.reply_text != NULL ? v.reply_text : "none");
	ok(v.ambiguous != NULL && strstr(v.ambiguous, "two Content-Type"),
	   "the verdict keeps what was ambiguous for the event");
	mf_verdict_free(&v);
	scan_msg(hold, two_ct, &v);
	ok(v.action == MF_ACT_HOLD && v.hold_reason != NULL &&
	       strstr(v.hold_reason, "ambiguous MIME: two Content-Type"),
	   "ambiguous_mime_action = hold holds it, with the reason (%s)",
	   v.hold_reason != NULL ? v.hold_reason : "none");
	mf_verdict_free(&v);
	scan_msg(pol, TOP MIXED TEXT END, &v);
	ok(v.action == MF_ACT_ACCEPT && v.ambiguous == NULL, "ordinary MIME is accepted");
	mf_verdict_free(&v);
	mf_policy_unref(&pol);
	mf_policy_unref(&hold);
}

static void test_config(void)
{
	char conf[] = "[milter]\nambiguous_mime_action = accept\n";
	struct mf_config *cfg;
	struct mf_error err;

	cfg = mf_config_load_buffer("t.conf", conf, strlen(conf), &err);
	ok(cfg == NULL && strstr(err.msg, "ambiguous_mime_action") != NULL,
	   "ambiguous_mime_action accepts only reject or hold (%s)",
	   cfg == NULL ? err.msg : "accepted");
	mf_config_free(&cfg);
}

int main(void)
{
	g_mime_init();
	test_shapes();
	test_tree();
	test_verdict();
	test_config();
	g_mime_shutdown();
	return tap_done();
}
