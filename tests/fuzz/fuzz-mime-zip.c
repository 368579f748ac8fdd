/*
 * fuzz-mime-zip.c - archive inspection and the attachment policy over
 * arbitrary attachment bytes.
 *
 * Input: a decoded attachment.  Every offset and size an archive declares
 * is hostile here: libarchive's readers for every enabled format and
 * filter (archive-inspect.c), the search for archives behind leading
 * bytes, nested archives, the limits on decoded bytes, files, depth and
 * ratio, the content type detection, and the uuencode / yEnc / BinHex
 * decoders (embedded.c) over the same bytes read as text.
 */
#include <stdlib.h>
#include <string.h>
#include "../../milter/scan.h"
#include "mf-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mf_policy *pol;

static void count(void *ctx, const struct mf_embedded *e)
{
	size_t *n = ctx;

	*n += e->len + strlen(e->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_attachment a;
	struct mf_error err;
	size_t n = 0;

	if (pol == NULL) {
		static const char conf[] = "[milter]\nmax_archive_entries = 64\n"
		                           "max_archive_size = 16M\nmax_archive_depth = 3\n";
		struct mf_config *cfg =
		    mf_config_load_buffer("fuzz.conf", conf, sizeof(conf) - 1, &err);

		pol = mf_policy_new(cfg, &err);
		mf_config_free(&cfg);
		if (pol == NULL)
			abort();
	}
	memset(&a, 0, sizeof(a));
	a.filename = strdup("fuzz.zip.gz");
	mf_attach_policy(pol, NULL, data, size, &a);
	free(a.filename);
	free(a.reason);
	free(a.inner);
	g_free(a.uninspectable);
	(void)mf_embedded_scan(data, size, 16, 1 << 20, count, &n);
	return 0;
}
