/*
 * mime-ambiguity.c - how much ordinary mail the milter would refuse as
 * ambiguous MIME (milter/mime-shape.c), and why.
 *
 * Build and run (from a configured build directory, see docs/BENCHMARKS.md):
 *   cc -O2 -I$SRC/milter -I$SRC/lib -I. $(pkg-config --cflags gmime-3.0) \
 *      $SRC/bench/mime-ambiguity.c milter/.libs/libmfscan.a \
 *      $(pkg-config --libs gmime-3.0 libarchive zlib) -lm -o mime-ambiguity
 *   ./mime-ambiguity $CORPUS/easy_ham/[0-9]* $CORPUS/hard_ham/[0-9]*
 *
 * Reads each file as one message (an mbox "From " line at its start is
 * skipped: Postfix never hands one to the milter), prints every message
 * found ambiguous with the sentence the sender would get, and last
 * "N of M ambiguous (P %)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scan.h"

int main(int argc, char **argv)
{
	int i, n = 0, amb = 0;

	g_mime_init();
	for (i = 1; i < argc; i++) {
		struct mf_mime_shape s;
		gchar *buf;
		gsize len;
		const char *m;

		if (!g_file_get_contents(argv[i], &buf, &len, NULL)) {
			fprintf(stderr, "%s: cannot read\n", argv[i]);
			continue;
		}
		m = buf;
		if (len > 5 && memcmp(buf, "From ", 5) == 0) {
			const char *nl = memchr(buf, '\n', len);

			if (nl != NULL)
				m = nl + 1;
		}
		n++;
		if (mf_mime_shape_read((const unsigned char *)m, len - (size_t)(m - buf), 20, false,
		                       &s) < 0) {
			fprintf(stderr, "out of memory\n");
			return 1;
		}
		if (s.doubt != NULL) {
			amb++;
			printf("%s: %s\n", argv[i], s.doubt);
		}
		mf_mime_shape_free(&s);
		g_free(buf);
	}
	printf("%d of %d ambiguous (%.2f %%)\n", amb, n, n > 0 ? 100.0 * amb / n : 0.0);
	return 0;
}
