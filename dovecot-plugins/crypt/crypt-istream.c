/*
 * crypt-istream.c - a seekable istream that decrypts a stored message.
 *
 * i_stream_create_mf_decrypt(parent, reader) takes an initialised
 * mf_mailcrypt_reader (header checked, content key open; the stream works
 * on its own copy, made with mf_mailcrypt_reader_copy, whose cipher context
 * serves every chunk of the message; the caller clears its own) and reads
 * the ciphertext from parent
 * (positioned anywhere: offsets are absolute) and yields the plaintext.
 * The plaintext size is known from the ciphertext size, so the stream is
 * seekable and knows its size without decrypting; a read at plaintext
 * offset N opens only the chunk that holds N (and the following ones as the
 * reader goes on).
 *
 * Buffering is that of any Dovecot istream: the stream's max_buffer_size
 * is the parent's (IO_BLOCK_SIZE for a mail file) and is never exceeded;
 * read() returns -2 when that much is buffered and unread.  Consumers size
 * their own buffers from the stream they read (i_stream_get_max_buffer_size
 * looks at every stream below), and some of Dovecot's rely on it: the
 * BINARY fetch code (index-mail-binary.c) merges several filter streams of
 * the same message into one stream of IO_BLOCK_SIZE and counts each part's
 * lines as it goes, which goes wrong (an assertion) as soon as one part
 * hands it more than that in one read.  A chunk is opened whole (its tag
 * covers all of it) into a slot kept by the stream and handed out from
 * there as the buffer has room; when the buffer has room for the whole
 * chunk (small messages, or a consumer that raised the maximum) it is
 * opened straight into the buffer instead.  Two slots are kept: the chunk
 * read last and the final chunk (opened early by whoever checks the size,
 * read again at the end), so sequential readers and readers that seek back
 * a little never open a chunk twice.
 *
 * A chunk that fails authentication, a short ciphertext or a read error of
 * the parent makes read() return -1 with stream_errno = EINVAL (or the
 * parent's errno) and an error text that names the offset; no unverified
 * byte is ever returned.
 */
#include "lib.h"
#include "istream-private.h"
#include "mailfort-crypt-plugin.h"

/* A decrypted chunk kept for readers that come back to it. */
struct mf_decrypt_slot {
	unsigned char *data; /* size bytes, grown as needed */
	size_t size;
	uint64_t idx, pt_offset;
	size_t len;
	bool valid;
};

struct mf_decrypt_istream {
	struct istream_private istream;

	struct istream *ct_input; /* the ciphertext, read by absolute offsets */
	struct mf_mailcrypt_reader reader;

	/* the last chunk opened (other than the final one), and the final
	   chunk (opened early by whoever checks the size, read again at the
	   end) */
	struct mf_decrypt_slot any, final;
};

static void mf_decrypt_slot_free(struct mf_decrypt_slot *slot)
{
	if (slot->data != NULL) {
		sodium_memzero(slot->data, slot->size);
		i_free(slot->data);
	}
}

static void i_stream_mf_decrypt_destroy(struct iostream_private *stream)
{
	struct mf_decrypt_istream *dstream =
	    container_of(stream, struct mf_decrypt_istream, istream.iostream);

	mf_mailcrypt_reader_clear(&dstream->reader);
	mf_decrypt_slot_free(&dstream->any);
	mf_decrypt_slot_free(&dstream->final);
	i_stream_free_buffer(&dstream->istream);
	i_stream_unref(&dstream->ct_input);
}

static int mf_decrypt_fail(struct mf_decrypt_istream *dstream, int stream_errno, const char *error)
{
	struct istream_private *stream = &dstream->istream;

	io_stream_set_error(&stream->iostream, "%s", error);
	stream->istream.stream_errno = stream_errno;
	return -1;
}

/* Read chunk from the parent and open it into out (chunk->pt_len bytes).
   The parent's buffer holds a whole ciphertext chunk (see create), so the
   chunk is opened straight from it, without a copy. */
static int mf_decrypt_chunk(struct mf_decrypt_istream *dstream,
                            const struct mf_mailcrypt_chunk *chunk, unsigned char *out)
{
	struct istream *parent = dstream->ct_input;
	const unsigned char *data;
	struct mf_error err;
	size_t size, out_len;
	int ret;

	i_stream_seek(parent, chunk->ct_offset);
	/* i_stream_read_memarea(), not i_stream_read(): nothing here keeps
	   pointers into the parent's buffer across a read, so it need not be
	   kept alive in a snapshot, which would make the parent copy its
	   whole buffer to a new one on every refill */
	data = i_stream_get_data(parent, &size);
	ret = 1;
	while (size < chunk->ct_len && ret > 0) {
		ret = i_stream_read_memarea(parent);
		data = i_stream_get_data(parent, &size);
	}
	if (size < chunk->ct_len) {
		if (parent->stream_errno != 0) {
			return mf_decrypt_fail(dstream, parent->stream_errno,
			                       t_strdup_printf("read(%s) failed: %s",
			                                       i_stream_get_name(parent),
			                                       i_stream_get_error(parent)));
		}
		return mf_decrypt_fail(
		    dstream, EINVAL,
		    t_strdup_printf("encrypted message is truncated in chunk %" PRIu64,
		                    chunk->index));
	}
	ret = mf_mailcrypt_open_chunk(&dstream->reader, chunk->index, data, chunk->ct_len, out,
	                              chunk->pt_len, &out_len, &err);
	i_stream_skip(parent, chunk->ct_len);
	if (ret < 0) {
		return mf_decrypt_fail(
		    dstream, EINVAL,
		    t_strdup_printf("plaintext offset %" PRIu64 ": %s", chunk->pt_offset, err.msg));
	}
	i_assert(out_len == chunk->pt_len);
	return 0;
}

static bool mf_decrypt_slot_holds(const struct mf_decrypt_slot *slot, uint64_t idx)
{
	return slot->valid && slot->idx == idx;
}

static const struct mf_decrypt_slot *mf_decrypt_slot_load(struct mf_decrypt_istream *dstream,
                                                          const struct mf_mailcrypt_chunk *chunk)
{
	struct mf_decrypt_slot *slot = chunk->final ? &dstream->final : &dstream->any;

	if (mf_decrypt_slot_holds(slot, chunk->index))
		return slot;
	slot->valid = FALSE;
	if (slot->size < chunk->pt_len) {
		/* most mail is one small chunk: size the slot to it */
		mf_decrypt_slot_free(slot);
		slot->data = i_malloc(I_MAX(chunk->pt_len, 1));
		slot->size = I_MAX(chunk->pt_len, 1);
	}
	if (mf_decrypt_chunk(dstream, chunk, slot->data) < 0)
		return NULL;
	slot->idx = chunk->index;
	slot->pt_offset = chunk->pt_offset;
	slot->len = chunk->pt_len;
	slot->valid = TRUE;
	return slot;
}

static ssize_t i_stream_mf_decrypt_read(struct istream_private *stream)
{
	struct mf_decrypt_istream *dstream =
	    container_of(stream, struct mf_decrypt_istream, istream);
	uint64_t next = stream->istream.v_offset + (stream->pos - stream->skip);
	const struct mf_decrypt_slot *slot;
	struct mf_mailcrypt_chunk chunk;
	struct mf_error err;
	size_t within, avail, max, n;

	if (next >= dstream->reader.pt_size) {
		stream->istream.eof = TRUE;
		return -1;
	}
	if (mf_mailcrypt_chunk_for_offset(&dstream->reader, next, &chunk, &err) < 0)
		return mf_decrypt_fail(dstream, EINVAL, err.msg);
	within = next - chunk.pt_offset;
	/* room up to max_buffer_size, no more: -2 when the buffer is full
	   (the buffer may be larger when a consumer lowered the limit) */
	max = i_stream_get_max_buffer_size(&stream->istream);
	if (stream->pos - stream->skip >= max || !i_stream_try_alloc(stream, 1, &avail))
		return -2;
	avail = I_MIN(avail, max - (stream->pos - stream->skip));

	if (within == 0 && avail >= chunk.pt_len &&
	    !mf_decrypt_slot_holds(&dstream->any, chunk.index) &&
	    !mf_decrypt_slot_holds(&dstream->final, chunk.index)) {
		/* the whole chunk fits: open it straight into the buffer
		   (no copy) */
		if (mf_decrypt_chunk(dstream, &chunk, stream->w_buffer + stream->pos) < 0)
			return -1;
		stream->pos += chunk.pt_len;
		return (ssize_t)chunk.pt_len;
	}
	if ((slot = mf_decrypt_slot_load(dstream, &chunk)) == NULL)
		return -1;
	n = I_MIN(avail, slot->len - within);
	memcpy(stream->w_buffer + stream->pos, slot->data + within, n);
	stream->pos += n;
	return (ssize_t)n;
}

int i_stream_mf_decrypt_check_final(struct istream *input, const char **error_r)
{
	struct mf_decrypt_istream *dstream =
	    container_of(input->real_stream, struct mf_decrypt_istream, istream);
	struct istream_private *stream = &dstream->istream;
	struct mf_mailcrypt_chunk chunk;
	struct mf_error err;

	if (dstream->reader.chunk_count == 1 && dstream->reader.pt_size > 0 &&
	    input->v_offset == 0 && stream->pos == stream->skip) {
		/* most mail: the final chunk is the first, and the first
		   read opens it (straight into the stream's buffer when it
		   fits, else into the final chunk's slot), where the reader
		   will find it */
		ssize_t ret = i_stream_read(input);

		/* a chunk's bytes are released only after its tag was checked */
		if (ret > 0)
			return 0;
		if (ret < 0 && input->stream_errno != 0) {
			*error_r = t_strdup(i_stream_get_error(input));
			return -1;
		}
		/* nothing read (a parent with nothing ready yet): check it
		   below, into a slot of its own */
	}

	if (mf_mailcrypt_chunk_at(&dstream->reader, dstream->reader.chunk_count - 1, &chunk, &err) <
	    0) {
		(void)mf_decrypt_fail(dstream, EINVAL, err.msg);
		*error_r = t_strdup(err.msg);
		return -1;
	}
	if (mf_decrypt_slot_load(dstream, &chunk) == NULL) {
		*error_r = t_strdup(i_stream_get_error(input));
		return -1;
	}
	return 0;
}

int i_stream_mf_decrypt_find_nul(struct istream *input)
{
	struct mf_decrypt_istream *dstream =
	    container_of(input->real_stream, struct mf_decrypt_istream, istream);
	const struct mf_decrypt_slot *final = &dstream->final;
	const unsigned char *data;
	size_t size;

	if (dstream->reader.chunk_count != 1)
		return -1;
	if (mf_decrypt_slot_holds(final, 0))
		return memchr(final->data, '\0', final->len) != NULL ? 1 : 0;
	data = i_stream_get_data(input, &size);
	if (input->v_offset == 0 && size == dstream->reader.pt_size)
		return memchr(data, '\0', size) != NULL ? 1 : 0;
	return -1;
}

static int i_stream_mf_decrypt_stat(struct istream_private *stream, bool exact)
{
	struct mf_decrypt_istream *dstream =
	    container_of(stream, struct mf_decrypt_istream, istream);
	const struct stat *st;

	if (i_stream_stat(dstream->ct_input, exact, &st) < 0) {
		stream->istream.stream_errno = dstream->ct_input->stream_errno;
		return -1;
	}
	stream->statbuf = *st;
	stream->statbuf.st_size = (off_t)dstream->reader.pt_size;
	return 0;
}

static int i_stream_mf_decrypt_get_size(struct istream_private *stream, bool exact ATTR_UNUSED,
                                        uoff_t *size_r)
{
	struct mf_decrypt_istream *dstream =
	    container_of(stream, struct mf_decrypt_istream, istream);

	*size_r = dstream->reader.pt_size;
	return 1;
}

struct istream *i_stream_create_mf_decrypt(struct istream *parent,
                                           const struct mf_mailcrypt_reader *reader)
{
	struct mf_decrypt_istream *dstream;
	struct istream *input;
	size_t max_buffer_size = parent->real_stream->max_buffer_size;

	dstream = i_new(struct mf_decrypt_istream, 1);
	mf_mailcrypt_reader_copy(&dstream->reader, reader);

	dstream->istream.iostream.destroy = i_stream_mf_decrypt_destroy;
	dstream->istream.read = i_stream_mf_decrypt_read;
	dstream->istream.stat = i_stream_mf_decrypt_stat;
	dstream->istream.get_size = i_stream_mf_decrypt_get_size;
	/* the parent's limit, as a filter stream would have it (see the
	   top of the file for why it must not be raised) */
	dstream->istream.max_buffer_size = max_buffer_size;
	dstream->istream.istream.readable_fd = FALSE;
	dstream->istream.istream.blocking = TRUE;
	dstream->istream.istream.seekable = TRUE;

	/* Not a filter stream in Dovecot's sense: the parent is read by
	   absolute offsets, so it is kept out of istream.parent (which
	   i_stream_read() would seek back before every read).  Nobody else
	   reads it, so its buffer may hold a whole ciphertext chunk, which
	   is opened in place. */
	i_stream_ref(parent);
	dstream->ct_input = parent;
	if (i_stream_get_max_buffer_size(parent) < MF_MAILCRYPT_CHUNK_CT_MAX + IO_BLOCK_SIZE)
		i_stream_set_max_buffer_size(parent, MF_MAILCRYPT_CHUNK_CT_MAX + IO_BLOCK_SIZE);
	/* Both buffers start at the size they will need (a small message:
	   its own size; a large one: a whole chunk, or the plaintext limit),
	   instead of growing by doubling, each step a new zeroed buffer and
	   a copy. */
	i_stream_set_init_buffer_size(
	    parent, (size_t)I_MIN(reader->ct_size, MF_MAILCRYPT_CHUNK_CT_MAX + IO_BLOCK_SIZE));
	input = i_stream_create(&dstream->istream, NULL, -1, 0);
	i_stream_set_init_buffer_size(
	    input,
	    I_MAX((size_t)I_MIN(I_MIN(reader->pt_size, reader->info.chunk_size), max_buffer_size),
	          1));
	return input;
}
