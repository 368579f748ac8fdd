/*
 * fuzz-mime-zip.c - archive inspection and the attachment policy over
 * arbitrary attachment bytes.
 *
 * Input: a decoded attachment.  Every offset and size a ZIP declares is
 * hostile here: the central directory walk, ZIP64 records, the inflating of
 * entry heads and of nested archives, and the content type detection must
 * stay inside the buffer and inside their limits.  Inputs that start like
 * a 7z, RAR, tar, cab, ISO image or gzip/bzip2/xz stream go through
 * archive-inspect.c (libarchive) and its limits instead (seeds seed-*).
 */
#include <stdlib.h>
#include <string.h>
#include "../../milter/scan.h"
#include "mf-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mf_policy *pol;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_attachment a;
	struct mf_zip zip;
	struct mf_error err;

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
	a.filename = strdup("fuzz.zip");
	mf_attach_policy(pol, NULL, data, size, &a);
	free(a.filename);
	free(a.reason);
	free(a.inner);
	if (mf_zip_open(data, size, 64, &zip, &err) == 0) {
		size_t i;

		for (i = 0; i < zip.count; i++) {
			unsigned char *out;
			size_t len;

			if (mf_zip_extract(data, size, &zip.entries[i], 1 << 16, &out, &len,
			                   &err) == 0)
				free(out);
		}
		mf_zip_free(&zip);
	}
	return 0;
}
