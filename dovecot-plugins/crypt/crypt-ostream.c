/*
 * crypt-ostream.c - an ostream that encrypts a message as it is saved.
 *
 * o_stream_create_mf_encrypt(parent, pk, version) seals a new message to
 * the account public key pk in format version (mf-mailcrypt.h; normally
 * MF_MAILCRYPT_VERSION): it writes the header at once and
 * then the ciphertext chunks as the plaintext comes in.  The writer holds
 * one chunk back until it knows whether it is the last, so a message is
 * only complete after o_stream_finish(), which seals the final chunk.  The
 * stream's offset counts plaintext bytes: the storage records the
 * plaintext size as the message's physical size (as for zlib).  It also
 * notes whether the plaintext held a NUL byte
 * (o_stream_mf_encrypt_saw_nul), which the plugin records in the index so
 * that IMAP need not scan every message for NULs when it is read, and
 * gives the header it wrote (o_stream_mf_encrypt_get_header), which names
 * this message among all others.
 *
 * Creating the stream fails only on a bad public key or version, or when
 * the cipher is not available (AES-256-GCM from OpenSSL for version 2);
 * then the returned stream is an error stream (stream_errno EINVAL) whose
 * error names it, and nothing is stored.
 * Errors of the parent are copied to this stream.  A stream destroyed
 * before it was finished leaves a ciphertext without a final chunk, which
 * every reader rejects; the key material is wiped in any case.
 */
#include "lib.h"
#include "ostream-private.h"
#include "mailfort-crypt-plugin.h"

/* Plaintext fed to the writer per call, and the output room that needs. */
#define MF_ENCRYPT_FEED     MF_MAILCRYPT_CHUNK_MAX
#define MF_ENCRYPT_OUT_SIZE MF_MAILCRYPT_UPDATE_OUT_MAX(MF_ENCRYPT_FEED)

struct mf_encrypt_ostream {
	struct ostream_private ostream;

	struct mf_mailcrypt_writer *writer;
	unsigned char *out; /* MF_ENCRYPT_OUT_SIZE */
	bool final_sent;
	bool saw_nul; /* a NUL byte was among the plaintext */
	bool have_header;
	size_t header_len;
	unsigned char header[MF_MAILCRYPT_HEADER_MAX]; /* as written (not secret) */
};

static int mf_encrypt_send_parent(struct mf_encrypt_ostream *estream, const void *data, size_t size)
{
	ssize_t ret;

	if (size == 0)
		return 0;
	ret = o_stream_send(estream->ostream.parent, data, size);
	if (ret < 0) {
		o_stream_copy_error_from_parent(&estream->ostream);
		return -1;
	}
	/* the parent is a blocking stream: it takes everything */
	i_assert((size_t)ret == size);
	return 0;
}

static int mf_encrypt_fail(struct mf_encrypt_ostream *estream, const char *error)
{
	io_stream_set_error(&estream->ostream.iostream, "%s", error);
	estream->ostream.ostream.stream_errno = EINVAL;
	return -1;
}

static ssize_t o_stream_mf_encrypt_sendv(struct ostream_private *stream,
                                         const struct const_iovec *iov, unsigned int iov_count)
{
	struct mf_encrypt_ostream *estream =
	    container_of(stream, struct mf_encrypt_ostream, ostream);
	struct mf_error err;
	ssize_t total = 0;
	size_t out_len;

	i_assert(!estream->final_sent);
	for (unsigned int i = 0; i < iov_count; i++) {
		const unsigned char *data = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left > 0) {
			size_t n = I_MIN(left, MF_ENCRYPT_FEED);

			if (!estream->saw_nul && memchr(data, '\0', n) != NULL)
				estream->saw_nul = TRUE;
			if (mf_mailcrypt_writer_update(estream->writer, data, n, estream->out,
			                               MF_ENCRYPT_OUT_SIZE, &out_len, &err) < 0)
				return mf_encrypt_fail(estream, err.msg);
			if (mf_encrypt_send_parent(estream, estream->out, out_len) < 0)
				return -1;
			data += n;
			left -= n;
			total += n;
		}
	}
	stream->ostream.offset += total;
	return total;
}

static int o_stream_mf_encrypt_flush(struct ostream_private *stream)
{
	struct mf_encrypt_ostream *estream =
	    container_of(stream, struct mf_encrypt_ostream, ostream);
	struct mf_error err;
	size_t out_len;

	if (stream->finished && !estream->final_sent) {
		estream->final_sent = TRUE;
		if (mf_mailcrypt_writer_final(estream->writer, estream->out, MF_ENCRYPT_OUT_SIZE,
		                              &out_len, &err) < 0)
			return mf_encrypt_fail(estream, err.msg);
		if (mf_encrypt_send_parent(estream, estream->out, out_len) < 0)
			return -1;
	}
	return o_stream_flush_parent(stream);
}

static size_t o_stream_mf_encrypt_get_buffer_used_size(const struct ostream_private *stream)
{
	const struct mf_encrypt_ostream *estream =
	    container_of(stream, const struct mf_encrypt_ostream, ostream);

	return estream->writer->buffered + o_stream_get_buffer_used_size(stream->parent);
}

static void o_stream_mf_encrypt_close(struct iostream_private *stream, bool close_parent)
{
	struct mf_encrypt_ostream *estream =
	    container_of(stream, struct mf_encrypt_ostream, ostream.iostream);

	if (close_parent)
		o_stream_close(estream->ostream.parent);
}

static void o_stream_mf_encrypt_destroy(struct iostream_private *stream)
{
	struct mf_encrypt_ostream *estream =
	    container_of(stream, struct mf_encrypt_ostream, ostream.iostream);

	mf_mailcrypt_writer_clear(estream->writer);
	i_free(estream->writer);
	sodium_memzero(estream->out, MF_ENCRYPT_OUT_SIZE);
	i_free(estream->out);
	o_stream_unref(&estream->ostream.parent);
}

/* The encrypting stream in output: output itself or under filters added
   after it; NULL when there is none. */
static struct mf_encrypt_ostream *mf_encrypt_find(struct ostream *output)
{
	for (struct ostream *o = output; o != NULL; o = o->real_stream->parent) {
		if (o->real_stream->iostream.destroy == o_stream_mf_encrypt_destroy)
			return container_of(o->real_stream, struct mf_encrypt_ostream, ostream);
	}
	return NULL;
}

int o_stream_mf_encrypt_saw_nul(struct ostream *output)
{
	struct mf_encrypt_ostream *estream = mf_encrypt_find(output);

	return estream == NULL ? -1 : estream->saw_nul ? 1 : 0;
}

int o_stream_mf_encrypt_get_header(struct ostream *output,
                                   unsigned char header_r[MF_MAILCRYPT_HEADER_MAX],
                                   size_t *header_len_r)
{
	struct mf_encrypt_ostream *estream = mf_encrypt_find(output);

	if (estream == NULL || !estream->have_header)
		return -1;
	memcpy(header_r, estream->header, estream->header_len);
	*header_len_r = estream->header_len;
	return 0;
}

struct ostream *o_stream_create_mf_encrypt(struct ostream *parent,
                                           const struct mf_mailcrypt_params *params)
{
	struct mf_encrypt_ostream *estream;
	unsigned char header[MF_MAILCRYPT_HEADER_MAX];
	struct ostream *output;
	struct mf_error err;
	size_t header_len;

	estream = i_new(struct mf_encrypt_ostream, 1);
	estream->writer = i_new(struct mf_mailcrypt_writer, 1);
	estream->out = i_malloc(MF_ENCRYPT_OUT_SIZE);
	estream->ostream.sendv = o_stream_mf_encrypt_sendv;
	estream->ostream.flush = o_stream_mf_encrypt_flush;
	estream->ostream.get_buffer_used_size = o_stream_mf_encrypt_get_buffer_used_size;
	estream->ostream.iostream.close = o_stream_mf_encrypt_close;
	estream->ostream.iostream.destroy = o_stream_mf_encrypt_destroy;
	output = o_stream_create(&estream->ostream, parent, o_stream_get_fd(parent));

	if (mf_mailcrypt_writer_start(estream->writer, params, header, &header_len, &err) < 0) {
		estream->final_sent = TRUE;
		(void)mf_encrypt_fail(estream, err.msg);
	} else if (mf_encrypt_send_parent(estream, header, header_len) < 0) {
		estream->final_sent = TRUE;
	} else {
		memcpy(estream->header, header, header_len);
		estream->header_len = header_len;
		estream->have_header = TRUE;
	}
	return output;
}
