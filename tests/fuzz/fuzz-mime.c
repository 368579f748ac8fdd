/*
 * fuzz-mime.c - the milter's whole scan over arbitrary message bytes.
 *
 * Input: a message as Postfix would hand it over.  Runs the structure
 * limits, GMime parse and walk, attachment policy (ZIP inspection included),
 * tokenizer, classifier over a small model, rules, the body rewrite when an
 * attachment is stripped, and the verdict's header and event text.  Must
 * never crash, leak or hang, whatever the bytes.
 */
#include <stdlib.h>
#include <string.h>
#include "../../milter/scan.h"
#include "mf-config.h"
#include "mf-event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mf_policy *pol;
static struct mf_model *model;

static void setup(void)
{
	static const char conf[] = "[milter]\ntmp_dir = /tmp\nmax_mime_parts = 200\n"
	                           "max_attachment_size = 64k\nmin_training = 1\n";
	struct mf_token_key key;
	struct mf_config *cfg;
	struct mf_error err;
	int i;

	g_mime_init();
	cfg = mf_config_load_buffer("fuzz.conf", conf, sizeof(conf) - 1, &err);
	pol = mf_policy_new(cfg, &err);
	mf_config_free(&cfg);
	if (pol == NULL)
		abort();
	memset(&key, 1, sizeof(key));
	model = mf_model_new(&key, 64);
	for (i = 0; i < 3; i++) {
		struct mf_tokens *t = mf_tokens_new(16);

		mf_tokens_add(t, NULL, i ? "meeting" : "casino", i ? 7 : 6);
		mf_tokens_add(t, "subj:", "hello", 5);
		(void)mf_model_train(model, t, i == 0);
		mf_tokens_free(&t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GMimeStream *s;
	struct mf_verdict v;
	struct mf_error err;

	if (pol == NULL)
		setup();
	s = g_mime_stream_mem_new_with_buffer((const char *)data, size);
	mf_verdict_init(&v);
	if (mf_scan(pol, model, s, &v, &err) == 0) {
		struct mf_event *ev = mf_event_new("verdict", "fuzz");
		char *status = mf_verdict_spam_status(pol, &v);
		size_t len;

		if (v.body_changed) {
			GMimeStream *out = g_mime_stream_mem_new();

			(void)mf_scan_write_body(&v, out, &err);
			g_object_unref(out);
		}
		mf_verdict_event(&v, ev);
		(void)mf_event_json(ev, &len);
		mf_event_free(&ev);
		g_free(status);
	}
	mf_verdict_free(&v);
	g_object_unref(s);
	return 0;
}
