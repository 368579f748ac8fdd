/*
 * test-crypt-storage.c - the mailfort_crypt plugin inside Dovecot's own
 * storage code (test-mail-storage-common, maildir), against the test
 * PostgreSQL.
 *
 * Checks what a user would notice: saved mail is ciphertext on disk and
 * reads back byte-identical with the plaintext sizes; reads at any offset
 * (chunk boundaries) give the right bytes; a copy to another user is
 * re-encrypted to that user's key; plaintext mail stored before the plugin
 * reads unchanged; a flipped byte makes the message fail as invalid data
 * while the next message reads fine; in password mode, saving for an
 * account without a key fails temporarily and stores nothing.  New mail is
 * format version 2 (AES-256-GCM), or version 1 with
 * mailfort_crypt_save_version = 1; a mailbox holding version 1, version 2
 * and plaintext messages reads every one; the streams are checked for both
 * versions.  Whether a message has NUL bytes is known when it is opened
 * (IMAP then skips its NUL-replacing copy only for messages without).
 * BINARY sizes and decoded streams (what FETCH BINARY, BINARY.SIZE use) of
 * multipart messages of one to three chunks are those of the same message
 * stored as plaintext.
 *
 * Needs MF_TEST_PGHOST/PORT/USER and MF_BUILD (for mailfortctl db migrate),
 * as scripts/test provides; without them it skips.
 */
#include "lib.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "str.h"
#include "buffer.h"
#include "unlink-directory.h"
#include "mkdir-parents.h"
#include "master-service.h"
#include "module-dir.h"
#include "mail-storage-private.h"
#include "mail-storage-service.h"
#include "mail-user.h"
#include "message-parser.h"
#include "test-mail-storage-common.h"

#include "mf-common.h"
#include "mf-crypto.h"
#include "mf-mailcrypt.h"
#include "mailfort-crypt-plugin.h"
#include "tap.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define DBNAME "mf_unit_crypt_storage"

struct fixture {
	const char *dir;
	const char *conf;
	struct test_mail_storage_ctx *ctx;
};

static int pg_admin(const char *sql)
{
	const char *host = getenv("MF_TEST_PGHOST"), *port = getenv("MF_TEST_PGPORT");
	const char *user = getenv("MF_TEST_PGUSER");
	char conninfo[512];
	PGconn *conn;
	PGresult *res;
	int ret;

	snprintf(conninfo, sizeof(conninfo), "host=%s port=%s user=%s dbname=postgres", host,
	         port != NULL ? port : "5432", user != NULL ? user : "postgres");
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		diag("cannot connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	res = PQexec(conn, sql);
	ret = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (ret < 0)
		diag("%s: %s", sql, PQerrorMessage(conn));
	PQclear(res);
	PQfinish(conn);
	return ret;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		i_fatal("write(%s) failed: %m", path);
}

static void write_config(struct fixture *fx, const char *mode)
{
	const char *host = getenv("MF_TEST_PGHOST"), *port = getenv("MF_TEST_PGPORT");
	const char *user = getenv("MF_TEST_PGUSER");
	const char *text = t_strdup_printf(
	    "[database]\nconninfo = host=%s port=%s user=%s dbname=" DBNAME "\n"
	    "[keys]\ndir = %s/keys\n[crypt]\nmode = %s\n",
	    host, port != NULL ? port : "5432", user != NULL ? user : "postgres", fx->dir, mode);

	write_file(fx->conf, text, strlen(text), 0644);
}

static int setup_site(struct fixture *fx)
{
	unsigned char master[32];
	struct mf_error err;
	const char *cmd;

	if (pg_admin("DROP DATABASE IF EXISTS " DBNAME " WITH (FORCE)") < 0 ||
	    pg_admin("CREATE DATABASE " DBNAME) < 0)
		return -1;
	if (mkdir(t_strconcat(fx->dir, "/keys", NULL), 0700) < 0)
		return -1;
	randombytes_buf(master, sizeof(master));
	if (mf_key_save(t_strconcat(fx->dir, "/keys/master.key", NULL), MF_KEY_SECRET, master,
	                sizeof(master), FALSE, &err) < 0) {
		diag("%s", err.msg);
		return -1;
	}
	sodium_memzero(master, sizeof(master));
	write_config(fx, "server");
	cmd = t_strdup_printf("%s/tools/mailfortctl --config %s db migrate >/dev/null",
	                      getenv("MF_BUILD"), fx->conf);
	return system(cmd) == 0 ? 0 : -1;
}

/* extra: one more userdb field ("key=value") or NULL.  NULL with *error_r
   when the user cannot be set up (the plugin refused it). */
static struct mail_user *user_try_init(struct fixture *fx, const char *username, const char *extra,
                                       struct mail_storage_service_user **svc_r,
                                       const char **error_r)
{
	const char *home = t_strconcat(fx->ctx->home_root, username, NULL);
	const char *const fields[] = {
	    "mail=maildir:~/Maildir",
	    "namespace=inbox",
	    "namespace/inbox/prefix=",
	    "namespace/inbox/inbox=yes",
	    t_strconcat("home=", home, NULL),
	    "mail_plugins=mailfort_crypt",
	    t_strconcat("mailfort_config=", fx->conf, NULL),
	    extra,
	    NULL,
	};
	struct mail_storage_service_input input = {
	    .userdb_fields = fields,
	    .username = username,
	    .no_userdb_lookup = TRUE,
	};
	struct mail_user *user;

	if (mkdir_parents(home, 0700) < 0 && errno != EEXIST)
		i_fatal("mkdir(%s) failed: %m", home);
	if (mail_storage_service_lookup_next(fx->ctx->storage_service, &input, svc_r, &user,
	                                     error_r) < 0)
		return NULL;
	return user;
}

static struct mail_user *user_init(struct fixture *fx, const char *username,
                                   struct mail_storage_service_user **svc_r)
{
	struct mail_user *user;
	const char *error;

	if ((user = user_try_init(fx, username, NULL, svc_r, &error)) == NULL)
		i_fatal("user %s: %s", username, error);
	return user;
}

static void user_deinit(struct mail_user **user, struct mail_storage_service_user **svc)
{
	mail_user_deinit(user);
	mail_storage_service_user_unref(svc);
}

/* Save msg to INBOX of user; returns 0, or -1 with the storage error. */
static int save_msg(struct mail_user *user, const void *msg, size_t len, enum mail_error *err_r)
{
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	struct mailbox *box = mailbox_alloc(ns->list, "INBOX", 0);
	struct mailbox_transaction_context *trans;
	struct mail_save_context *save;
	struct istream *input;
	int ret = -1;

	*err_r = MAIL_ERROR_NONE;
	if (mailbox_open(box) < 0) {
		mailbox_get_last_error(box, err_r);
		mailbox_free(&box);
		return -1;
	}
	trans = mailbox_transaction_begin(box, MAILBOX_TRANSACTION_FLAG_EXTERNAL, __func__);
	save = mailbox_save_alloc(trans);
	input = i_stream_create_from_data(msg, len);
	if (mailbox_save_begin(&save, input) == 0) {
		ssize_t rret;

		do {
			if (mailbox_save_continue(save) < 0)
				break;
		} while ((rret = i_stream_read(input)) > 0);
		if (input->eof && input->stream_errno == 0 && mailbox_save_finish(&save) == 0 &&
		    mailbox_transaction_commit(&trans) == 0)
			ret = 0;
	}
	if (ret < 0) {
		mailbox_get_last_error(box, err_r);
		if (save != NULL)
			mailbox_save_cancel(&save);
		if (trans != NULL)
			mailbox_transaction_rollback(&trans);
	}
	i_stream_unref(&input);
	mailbox_free(&box);
	return ret;
}

/* Read UID uid of user's INBOX: whole body, sizes, a few offsets. */
static int read_msg(struct mail_user *user, uint32_t uid, string_t *out, uoff_t *psize_r,
                    uoff_t *vsize_r, enum mail_error *err_r)
{
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	struct mailbox *box = mailbox_alloc(ns->list, "INBOX", 0);
	struct mailbox_transaction_context *trans;
	struct istream *input;
	struct mail *mail;
	const unsigned char *data;
	size_t size;
	int ret = -1;

	*err_r = MAIL_ERROR_NONE;
	if (mailbox_open(box) < 0 || mailbox_sync(box, 0) < 0) {
		mailbox_free(&box);
		return -1;
	}
	trans = mailbox_transaction_begin(box, 0, __func__);
	mail = mail_alloc(trans, 0, NULL);
	if (mail_set_uid(mail, uid) && mail_get_stream(mail, NULL, NULL, &input) == 0 &&
	    mail_get_physical_size(mail, psize_r) == 0 &&
	    mail_get_virtual_size(mail, vsize_r) == 0) {
		i_stream_seek(input, 0);
		while (i_stream_read_more(input, &data, &size) > 0) {
			str_append_data(out, data, size);
			i_stream_skip(input, size);
		}
		ret = input->stream_errno == 0 ? 0 : -1;
	}
	if (ret < 0)
		mailbox_get_last_error(box, err_r);
	mail_free(&mail);
	(void)mailbox_transaction_commit(&trans);
	mailbox_free(&box);
	return ret;
}

/* Bytes [off, off+len) of uid read after a seek (random access). */
static bool read_at(struct mail_user *user, uint32_t uid, uoff_t off, size_t len,
                    const unsigned char *want)
{
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	struct mailbox *box = mailbox_alloc(ns->list, "INBOX", 0);
	struct mailbox_transaction_context *trans;
	struct istream *input;
	struct mail *mail;
	const unsigned char *data;
	size_t size;
	bool ret = FALSE;

	if (mailbox_open(box) < 0) {
		mailbox_free(&box);
		return FALSE;
	}
	trans = mailbox_transaction_begin(box, 0, __func__);
	mail = mail_alloc(trans, 0, NULL);
	if (mail_set_uid(mail, uid) && mail_get_stream(mail, NULL, NULL, &input) == 0) {
		i_stream_seek(input, off);
		if (i_stream_read_bytes(input, &data, &size, len) > 0 && size >= len)
			ret = memcmp(data, want, len) == 0;
	}
	mail_free(&mail);
	(void)mailbox_transaction_commit(&trans);
	mailbox_free(&box);
	return ret;
}

/* What the storage knows after opening uid's stream: 'N' no NULs, 'Y'
   NULs, '?' unknown, 'E' error. */
static char nul_state(struct mail_user *user, uint32_t uid)
{
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	struct mailbox *box = mailbox_alloc(ns->list, "INBOX", 0);
	struct mailbox_transaction_context *trans;
	struct istream *input;
	struct mail *mail;
	char ret = 'E';

	if (mailbox_open(box) < 0 || mailbox_sync(box, 0) < 0) {
		mailbox_free(&box);
		return 'E';
	}
	trans = mailbox_transaction_begin(box, 0, __func__);
	mail = mail_alloc(trans, 0, NULL);
	if (mail_set_uid(mail, uid) && mail_get_stream(mail, NULL, NULL, &input) == 0)
		ret = mail->has_no_nuls ? 'N' : (mail->has_nuls ? 'Y' : '?');
	mail_free(&mail);
	(void)mailbox_transaction_commit(&trans);
	mailbox_free(&box);
	return ret;
}

/* Copy UID uid from src's INBOX to dest's INBOX. */
static int copy_msg(struct mail_user *src, struct mail_user *dest, uint32_t uid)
{
	struct mailbox *sbox =
	    mailbox_alloc(mail_namespace_find_inbox(src->namespaces)->list, "INBOX", 0);
	struct mailbox *dbox =
	    mailbox_alloc(mail_namespace_find_inbox(dest->namespaces)->list, "INBOX", 0);
	struct mailbox_transaction_context *strans, *dtrans;
	struct mail_save_context *save;
	struct mail *mail;
	int ret = -1;

	if (mailbox_open(sbox) == 0 && mailbox_open(dbox) == 0) {
		strans = mailbox_transaction_begin(sbox, 0, __func__);
		dtrans =
		    mailbox_transaction_begin(dbox, MAILBOX_TRANSACTION_FLAG_EXTERNAL, __func__);
		mail = mail_alloc(strans, 0, NULL);
		if (mail_set_uid(mail, uid)) {
			save = mailbox_save_alloc(dtrans);
			if (mailbox_copy(&save, mail) == 0)
				ret = 0;
		}
		mail_free(&mail);
		if (ret == 0 && mailbox_transaction_commit(&dtrans) < 0)
			ret = -1;
		if (dtrans != NULL)
			mailbox_transaction_rollback(&dtrans);
		(void)mailbox_transaction_commit(&strans);
	}
	mailbox_free(&sbox);
	mailbox_free(&dbox);
	return ret;
}

/* Paths of the message files in user's INBOX (new/ and cur/), sorted. */
static unsigned int maildir_files(struct fixture *fx, const char *username, const char **paths,
                                  unsigned int max)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < 2; i++) {
		const char *dir = t_strdup_printf("%s%s/Maildir/%s", fx->ctx->home_root, username,
		                                  i == 0 ? "new" : "cur");
		DIR *d = opendir(dir);
		struct dirent *de;

		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL && n < max) {
			if (de->d_name[0] != '.')
				paths[n++] = t_strconcat(dir, "/", de->d_name, NULL);
		}
		closedir(d);
	}
	return n;
}

/* Format version of a stored message file; 0 for plaintext (or none). */
static unsigned int file_version(const char *path)
{
	unsigned char buf[MF_MAILCRYPT_PREFIX_SIZE];
	struct mf_mailcrypt_info info;
	struct mf_error err;
	int fd = open(path, O_RDONLY);
	bool ret = fd >= 0 && read(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
	           mf_mailcrypt_peek(buf, sizeof(buf), &info, &err) == 0;

	if (fd >= 0)
		close(fd);
	return ret ? info.version : 0;
}

static bool file_is_ciphertext(const char *path)
{
	return file_version(path) != 0;
}

static string_t *make_message(const char *subject, size_t body_len)
{
	string_t *msg = t_str_new(body_len + 256);

	/* LF line ends: maildir stores them as they are (CRLF would be
	   stored as LF, mail_save_crlf = no) */
	str_printfa(msg, "From: a@example.test\nTo: b@example.test\nSubject: %s\n\n", subject);
	for (size_t i = 0; str_len(msg) < body_len; i++)
		str_printfa(msg, "line %zu of the body, some text to fill it up\n", i);
	return msg;
}

static size_t count_lf(const string_t *str)
{
	size_t n = 0;

	for (size_t i = 0; i < str_len(str); i++)
		n += str_data(str)[i] == '\n';
	return n;
}

/* The streams alone, for one format version: a 10-chunk message with
   chunk 5 damaged reads fine everywhere else (so a read opens only the
   chunks it needs), and reading into chunk 5 fails without returning a byte
   of it. */
static void test_streams(unsigned int version)
{
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	const size_t len = 10 * MF_MAILCRYPT_CHUNK_SIZE - 77;
	buffer_t *ct = buffer_create_dynamic(default_pool, len + 1024);
	unsigned char *plain = i_malloc(len), *p;
	struct mf_mailcrypt_reader reader;
	struct ostream *raw, *enc;
	struct istream *ct_in, *in;
	const unsigned char *data;
	struct mf_error err;
	struct mf_mailcrypt_chunk chunk;
	size_t size;
	bool all = TRUE;

	crypto_box_keypair(pk, sk);
	for (size_t i = 0; i < len; i++)
		plain[i] = (unsigned char)('a' + (i * 7) % 26);
	raw = o_stream_create_buffer(ct);
	enc = o_stream_create_mf_encrypt(raw,
	                                 &(const struct mf_mailcrypt_params){
	                                     .version = version, .pk = pk, .pk_len = sizeof(pk)});
	ok(o_stream_send(enc, plain, len) == (ssize_t)len && o_stream_finish(enc) > 0,
	   "streams v%u: encrypt a 10-chunk message", version);
	o_stream_unref(&enc);
	o_stream_unref(&raw);
	ok(ct->used == mf_mailcrypt_ciphertext_size(len),
	   "streams v%u: ciphertext has the format's size", version);

	ok(mf_mailcrypt_reader_init(&reader, ct->data, ct->used, ct->used, pk, sk, &err) == 0 &&
	       reader.info.version == version &&
	       mf_mailcrypt_chunk_at(&reader, 5, &chunk, &err) == 0,
	   "streams v%u: header opens", version);

	/* the whole message, read sequentially, is the plaintext */
	ct_in = i_stream_create_from_data(ct->data, ct->used);
	in = i_stream_create_mf_decrypt(ct_in, &reader);
	{
		size_t got = 0;

		while (i_stream_read_more(in, &data, &size) > 0) {
			all = all && got + size <= len && memcmp(data, plain + got, size) == 0;
			got += size;
			i_stream_skip(in, size);
		}
		ok(all && got == len && in->stream_errno == 0,
		   "streams v%u: a sequential read gives the plaintext", version);
	}
	i_stream_unref(&in);
	i_stream_unref(&ct_in);
	p = buffer_get_modifiable_data(ct, NULL);
	p[chunk.ct_offset + 100] ^= 0x01;

	ct_in = i_stream_create_from_data(ct->data, ct->used);
	in = i_stream_create_mf_decrypt(ct_in, &reader);
	mf_mailcrypt_reader_clear(&reader);
	all = TRUE;
	for (unsigned int c = 0; c < 10; c++) {
		uoff_t off = (uoff_t)c * MF_MAILCRYPT_CHUNK_SIZE + 3;

		if (c == 5)
			continue;
		i_stream_seek(in, off);
		all = all && i_stream_read_bytes(in, &data, &size, 50) > 0 && size >= 50 &&
		      memcmp(data, plain + off, 50) == 0;
	}
	ok(all, "streams v%u: every undamaged chunk reads correctly after a seek", version);
	i_stream_seek(in, 5 * MF_MAILCRYPT_CHUNK_SIZE + 10);
	{
		int r = i_stream_read_bytes(in, &data, &size, 1);

		ok(r < 0 && in->stream_errno == EINVAL && i_stream_get_data_size(in) == 0,
		   "streams v%u: reading the damaged chunk fails, no byte of it returned (%s)",
		   version, i_stream_get_error(in));
	}
	i_stream_unref(&in);
	i_stream_unref(&ct_in);

	/* cut after the header and 16 bytes: it would pass for an empty
	   message if the final chunk were not checked */
	{
		size_t cut = MF_MAILCRYPT_HEADER_SIZE + MF_MAILCRYPT_CHUNK_OVERHEAD;
		const char *error = NULL;
		int r = -1;

		if (mf_mailcrypt_reader_init(&reader, ct->data, cut, cut, pk, sk, &err) == 0) {
			ct_in = i_stream_create_from_data(ct->data, cut);
			in = i_stream_create_mf_decrypt(ct_in, &reader);
			mf_mailcrypt_reader_clear(&reader);
			r = i_stream_mf_decrypt_check_final(in, &error);
			i_stream_unref(&in);
			i_stream_unref(&ct_in);
		}
		ok(r < 0, "streams v%u: a message cut to look empty is refused (%s)", version,
		   error != NULL ? error : err.msg);
	}
	buffer_free(&ct);
	i_free(plain);
}

/* One mailbox with a version 1, a version 2 and a plaintext message, as
   a site has after it upgrades; and the setting that picks the version. */
static void test_mixed_versions(struct fixture *fx)
{
	static const char user[] = "dave@example.test";
	struct mail_storage_service_user *svc;
	struct mail_user *dave;
	string_t *m1 = make_message("written as version 1", 2 * MF_MAILCRYPT_CHUNK_SIZE + 5);
	string_t *m2 = make_message("written as version 2", 2 * MF_MAILCRYPT_CHUNK_SIZE + 5);
	string_t *m3 = make_message("stored before encryption", 3000);
	string_t *out = t_str_new(str_len(m1));
	unsigned int n, i, v1 = 0, v2 = 0;
	const char *paths[8], *error = "";
	enum mail_error merr;
	uoff_t psize, vsize;
	bool all = TRUE;

	dave = user_try_init(fx, user, "mailfort_crypt_save_version=3", &svc, &error);
	ok(dave == NULL && strstr(error, "mailfort_crypt_save_version") != NULL,
	   "mailfort_crypt_save_version = 3 is refused: %s", error);
	if (dave != NULL)
		user_deinit(&dave, &svc);

	dave = user_try_init(fx, user, "mailfort_crypt_save_version=1", &svc, &error);
	ok(dave != NULL && save_msg(dave, str_data(m1), str_len(m1), &merr) == 0,
	   "mailfort_crypt_save_version = 1: save a message");
	if (dave != NULL)
		user_deinit(&dave, &svc);
	dave = user_init(fx, user, &svc);
	ok(save_msg(dave, str_data(m2), str_len(m2), &merr) == 0, "default: save a message");
	n = maildir_files(fx, user, paths, N_ELEMENTS(paths));
	for (i = 0; i < n; i++) {
		v1 += file_version(paths[i]) == MF_MAILCRYPT_VERSION_1;
		v2 += file_version(paths[i]) == MF_MAILCRYPT_VERSION_2;
	}
	ok(n == 2 && v1 == 1 && v2 == 1, "one message stored as version 1, one as version 2");
	write_file(t_strconcat(fx->ctx->home_root, user, "/Maildir/cur/1.M1P1.legacy:2,", NULL),
	           str_data(m3), str_len(m3), 0600);

	ok(read_msg(dave, 1, out, &psize, &vsize, &merr) == 0 && str_equals(out, m1),
	   "mixed mailbox: the version 1 message reads byte-identical");
	str_truncate(out, 0);
	ok(read_msg(dave, 2, out, &psize, &vsize, &merr) == 0 && str_equals(out, m2),
	   "mixed mailbox: the version 2 message reads byte-identical");
	str_truncate(out, 0);
	ok(read_msg(dave, 3, out, &psize, &vsize, &merr) == 0 && str_equals(out, m3),
	   "mixed mailbox: the plaintext message reads unchanged");
	for (uoff_t off = MF_MAILCRYPT_CHUNK_SIZE - 8; off + 16 <= str_len(m1);
	     off += MF_MAILCRYPT_CHUNK_SIZE) {
		all = all && read_at(dave, 1, off, 16, str_data(m1) + off) &&
		      read_at(dave, 2, off, 16, str_data(m2) + off);
	}
	ok(all, "mixed mailbox: reads across chunk boundaries of both versions");

	/* NUL state: recorded at save time (multi-chunk messages), checked
	   at open (one-chunk messages) */
	{
		string_t *nul = make_message("with a NUL", 2 * MF_MAILCRYPT_CHUNK_SIZE);
		string_t *nul1 = make_message("one chunk with a NUL", 1000);

		((unsigned char *)buffer_get_modifiable_data(nul, NULL))[str_len(nul) - 100] = '\0';
		((unsigned char *)buffer_get_modifiable_data(nul1, NULL))[500] = '\0';
		ok(save_msg(dave, str_data(nul), str_len(nul), &merr) == 0 &&
		       save_msg(dave, str_data(nul1), str_len(nul1), &merr) == 0,
		   "save two messages with a NUL byte");
		ok(nul_state(dave, 1) == 'N' && nul_state(dave, 2) == 'N',
		   "multi-chunk messages without NULs (version 1 and 2) are known to have none");
		ok(nul_state(dave, 4) == 'Y' && nul_state(dave, 5) == 'Y',
		   "messages with a NUL are known to have one (%c %c)", nul_state(dave, 4),
		   nul_state(dave, 5));
		str_truncate(out, 0);
		ok(read_msg(dave, 4, out, &psize, &vsize, &merr) == 0 && str_equals(out, nul),
		   "the message with a NUL reads byte-identical");
		/* a copy within the account (maildir: a hard link) keeps it */
		ok(copy_msg(dave, dave, 2) == 0 && copy_msg(dave, dave, 4) == 0,
		   "copy both multi-chunk messages within the account");
		ok(nul_state(dave, 6) == 'N' && nul_state(dave, 7) == 'Y',
		   "the copies keep their NUL state (%c %c)", nul_state(dave, 6),
		   nul_state(dave, 7));
	}
	user_deinit(&dave, &svc);
}

/* BINARY.SIZE of every part of uid (whole message with header, depth
   first), as text "size/lines;...", then "|size|" and the binary stream
   of the whole message (mail_get_binary_size, mail_get_binary_stream).
   -1 when any of them fails. */
static int binary_summary(struct mail_user *user, uint32_t uid, string_t *out)
{
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	struct mailbox *box = mailbox_alloc(ns->list, "INBOX", 0);
	struct mailbox_transaction_context *trans;
	struct message_part *parts, *part;
	struct istream *input;
	struct mail *mail;
	const unsigned char *data;
	unsigned int lines;
	uoff_t size;
	size_t dsize;
	bool binary;
	int ret = -1;

	if (mailbox_open(box) < 0 || mailbox_sync(box, 0) < 0) {
		mailbox_free(&box);
		return -1;
	}
	trans = mailbox_transaction_begin(box, 0, __func__);
	mail = mail_alloc(trans, 0, NULL);
	if (mail_set_uid(mail, uid) && mail_get_parts(mail, &parts) == 0) {
		ret = 0;
		/* depth-first, as message_part lists them */
		for (part = parts; part != NULL && ret == 0;) {
			if (mail_get_binary_size(mail, part, TRUE, &size, &lines) < 0) {
				ret = -1;
				break;
			}
			str_printfa(out, "%llu/%u;", (unsigned long long)size, lines);
			if (part->children != NULL)
				part = part->children;
			else {
				while (part != NULL && part->next == NULL)
					part = part->parent;
				if (part != NULL)
					part = part->next;
			}
		}
		if (ret < 0 ||
		    mail_get_binary_stream(mail, parts, TRUE, &size, &binary, &input) < 0) {
			ret = -1;
		} else {
			str_printfa(out, "|%llu|", (unsigned long long)size);
			while (i_stream_read_more(input, &data, &dsize) > 0) {
				str_append_data(out, data, dsize);
				i_stream_skip(input, dsize);
			}
			if (input->stream_errno != 0)
				ret = -1;
			i_stream_unref(&input);
		}
	}
	mail_free(&mail);
	(void)mailbox_transaction_commit(&trans);
	mailbox_free(&box);
	return ret;
}

/* A newsletter-like message: multipart/alternative of a 7bit text part
   and a quoted-printable HTML part, then a base64 attachment, body_kb KiB
   in all. */
static string_t *make_multipart(size_t body_kb)
{
	string_t *msg = t_str_new(body_kb * 1024 + 1024);
	size_t i;

	str_append(msg, "From: list@example.test\nTo: b@example.test\nSubject: news\n"
	                "MIME-Version: 1.0\n"
	                "Content-Type: multipart/mixed; boundary=\"outer\"\n\n"
	                "--outer\nContent-Type: multipart/alternative; boundary=\"alt\"\n\n"
	                "--alt\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit\n\n");
	for (i = 0; i < body_kb * 4; i++)
		str_printfa(msg, "plain line %zu of the newsletter text\n", i);
	str_append(msg, "--alt\nContent-Type: text/html\n"
	                "Content-Transfer-Encoding: quoted-printable\n\n");
	for (i = 0; i < body_kb * 8; i++)
		str_printfa(msg,
		            "<p style=3D\"margin:0\">line %zu of the html part, soft=\n"
		            " break</p>\n",
		            i);
	str_append(msg, "--alt--\n--outer\nContent-Type: application/octet-stream\n"
	                "Content-Transfer-Encoding: base64\n\n");
	for (i = 0; i < body_kb * 4; i++)
		str_append(
		    msg, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5\n");
	str_append(msg, "--outer--\n");
	return msg;
}

/* BINARY (RFC 3516) reads every part of a message through filter streams
   stacked on the message's stream, merged into one stream of IO_BLOCK_SIZE,
   and Dovecot asserts that each part's bytes arrive before the next's: an
   istream that buffers more than its max_buffer_size breaks that
   (index-mail-binary.c, blocks_count_lines).  Binary sizes, line counts
   and the decoded stream of every part must be those of the same message
   stored as plaintext. */
static void test_binary(struct fixture *fx)
{
	static const char user[] = "erin@example.test";
	static const size_t sizes_kb[] = {5, 20, 60, 150};
	struct mail_storage_service_user *svc;
	struct mail_user *erin;
	enum mail_error merr;
	uint32_t uid = 1;

	erin = user_init(fx, user, &svc);
	for (unsigned int i = 0; i < N_ELEMENTS(sizes_kb); i++) {
		string_t *msg = make_multipart(sizes_kb[i]);
		string_t *enc = t_str_new(str_len(msg)), *plain = t_str_new(str_len(msg));
		const char *path = t_strdup_printf("%s%s/Maildir/cur/%u.M1P1.plain%u:2,",
		                                   fx->ctx->home_root, user, i + 1, i);

		ok(save_msg(erin, str_data(msg), str_len(msg), &merr) == 0,
		   "binary: save a %zu KiB multipart message", sizes_kb[i]);
		write_file(path, str_data(msg), str_len(msg), 0600);
		/* the base64 attachment decodes to 3/4 of its size */
		ok(binary_summary(erin, uid, enc) == 0 &&
		       binary_summary(erin, uid + 1, plain) == 0 &&
		       str_len(enc) > str_len(msg) * 3 / 4 && str_equals(enc, plain),
		   "binary: BINARY.SIZE and BINARY[] of every part of the %zu KiB message are "
		   "those of its plaintext copy",
		   sizes_kb[i]);
		uid += 2;
	}
	user_deinit(&erin, &svc);
}

static void run_tests(struct fixture *fx)
{
	struct mail_storage_service_user *asvc, *bsvc, *csvc;
	struct mail_user *alice, *bob, *carol;
	string_t *big = make_message("big", 3 * MF_MAILCRYPT_CHUNK_SIZE + 1234);
	string_t *small = make_message("small", 500);
	string_t *out = t_str_new(str_len(big));
	const unsigned char *b = str_data(big);
	const char *paths[16];
	enum mail_error merr;
	uoff_t psize, vsize;
	unsigned int n;
	bool all;

	alice = user_init(fx, "alice@example.test", &asvc);
	ok(save_msg(alice, str_data(big), str_len(big), &merr) == 0, "save a 3-chunk message");
	n = maildir_files(fx, "alice@example.test", paths, N_ELEMENTS(paths));
	ok(n == 1 && file_version(paths[0]) == MF_MAILCRYPT_VERSION_2,
	   "it is stored as ciphertext, format version 2");
	ok(read_msg(alice, 1, out, &psize, &vsize, &merr) == 0 && str_equals(out, big),
	   "it reads back byte-identical");
	ok(psize == str_len(big) && vsize == str_len(big) + count_lf(big),
	   "physical and virtual size are those of the plaintext (%llu, %llu)",
	   (unsigned long long)psize, (unsigned long long)vsize);

	all = TRUE;
	for (uoff_t off = 0; off + 16 < str_len(big); off += MF_MAILCRYPT_CHUNK_SIZE / 2) {
		uoff_t at = off == 0 ? 0 : off - 8; /* straddle every chunk boundary */
		all = all && read_at(alice, 1, at, 16, b + at);
	}
	ok(all, "reads after a seek give the right bytes, across chunk boundaries");
	ok(read_at(alice, 1, str_len(big) - 3, 3, b + str_len(big) - 3), "the last bytes read");

	/* plaintext stored before the plugin */
	write_file(t_strconcat(fx->ctx->home_root,
	                       "alice@example.test/Maildir/cur/1.M1P1.legacy:2,", NULL),
	           str_data(small), str_len(small), 0600);
	str_truncate(out, 0);
	ok(read_msg(alice, 2, out, &psize, &vsize, &merr) == 0 && str_equals(out, small),
	   "a plaintext message in the same mailbox reads unchanged");

	/* copy to another user: re-encrypted to bob's key */
	bob = user_init(fx, "bob@example.test", &bsvc);
	ok(copy_msg(alice, bob, 1) == 0, "copy alice's message to bob");
	n = maildir_files(fx, "bob@example.test", paths, N_ELEMENTS(paths));
	ok(n == 1 && file_is_ciphertext(paths[0]), "bob's copy is ciphertext");
	str_truncate(out, 0);
	ok(read_msg(bob, 1, out, &psize, &vsize, &merr) == 0 && str_equals(out, big),
	   "bob reads his copy byte-identical (sealed to his own key)");

	/* a flipped byte */
	ok(save_msg(alice, str_data(small), str_len(small), &merr) == 0, "save a small message");
	ok(save_msg(alice, str_data(small), str_len(small), &merr) == 0, "and another");
	{
		const char *victim = NULL;
		struct stat st;
		time_t newest = 0;

		/* the newest two files are UIDs 3 and 4; damage the one of UID 3,
		   found as the one that reads back for 3 before the damage */
		n = maildir_files(fx, "alice@example.test", paths, N_ELEMENTS(paths));
		for (unsigned int i = 0; i < n; i++) {
			if (stat(paths[i], &st) == 0 && file_is_ciphertext(paths[i]) &&
			    st.st_size < 2000 && st.st_mtime >= newest) {
				newest = st.st_mtime;
				victim = paths[i];
			}
		}
		if (victim != NULL) {
			int fd = open(victim, O_RDWR);
			unsigned char c;

			if (fd < 0 || pread(fd, &c, 1, 300) != 1)
				victim = NULL;
			c ^= 0x40;
			if (fd >= 0 && (pwrite(fd, &c, 1, 300) != 1 || close(fd) < 0))
				victim = NULL;
		}
		ok(victim != NULL, "flip one byte in a stored message");
	}
	{
		enum mail_error e3, e4;
		string_t *o3 = t_str_new(1024), *o4 = t_str_new(1024);
		int r3 = read_msg(alice, 3, o3, &psize, &vsize, &e3);
		int r4 = read_msg(alice, 4, o4, &psize, &vsize, &e4);

		/* which of the two was damaged depends on directory order */
		ok((r3 < 0) != (r4 < 0), "exactly the damaged message fails to read");
		ok((r3 < 0 ? e3 : e4) == MAIL_ERROR_INVALIDDATA,
		   "as invalid data (IMAP: NO for that message), not an internal error");
		ok(r3 < 0 ? str_equals(o4, small) : str_equals(o3, small),
		   "the other message still reads byte-identical");
		ok((r3 < 0 ? str_len(o3) : str_len(o4)) == 0, "no unverified byte was returned");
	}

	test_mixed_versions(fx);
	test_binary(fx);

	/* password mode, no key: temporary failure, nothing stored */
	write_config(fx, "password");
	carol = user_init(fx, "carol@example.test", &csvc);
	ok(save_msg(carol, str_data(small), str_len(small), &merr) < 0 && merr == MAIL_ERROR_TEMP,
	   "password mode: saving for an account without a key fails temporarily");
	ok(maildir_files(fx, "carol@example.test", paths, N_ELEMENTS(paths)) == 0,
	   "and stores nothing");
	write_config(fx, "server");

	user_deinit(&carol, &csvc);
	user_deinit(&bob, &bsvc);
	user_deinit(&alice, &asvc);
}

int main(int argc, char **argv)
{
	static struct module crypt_module = {
	    .path = (char *)"lib10_mailfort_crypt_plugin.so",
	    .name = (char *)"mailfort_crypt",
	};
	struct fixture fx;
	char tmpl[] = "/tmp/test-crypt-storage.XXXXXX";
	const char *tmp, *error;
	struct mf_error err;

	if (getenv("MF_TEST_PGHOST") == NULL || getenv("MF_BUILD") == NULL) {
		printf(
		    "1..0 # SKIP MF_TEST_PGHOST / MF_BUILD not set (run through scripts/test)\n");
		return 0;
	}
	master_service = master_service_init(
	    "test-crypt-storage",
	    MASTER_SERVICE_FLAG_STANDALONE | MASTER_SERVICE_FLAG_DONT_SEND_STATS |
	        MASTER_SERVICE_FLAG_NO_CONFIG_SETTINGS | MASTER_SERVICE_FLAG_NO_SSL_INIT |
	        MASTER_SERVICE_FLAG_NO_INIT_DATASTACK_FRAME,
	    &argc, &argv, "");
	if (mf_crypto_init(&err) < 0)
		i_fatal("%s", err.msg);

	i_zero(&fx);
	tmp = getenv("MF_TEST_TMP");
	if (tmp != NULL) {
		fx.dir = t_strconcat(tmp, "/crypt-storage", NULL);
		(void)unlink_directory(fx.dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error);
		if (mkdir(fx.dir, 0700) < 0)
			i_fatal("mkdir(%s) failed: %m", fx.dir);
	} else if ((fx.dir = mkdtemp(tmpl)) == NULL) {
		i_fatal("mkdtemp() failed: %m");
	}
	fx.dir = t_strdup(fx.dir);
	fx.conf = t_strconcat(fx.dir, "/mailfort.conf", NULL);
	if (chdir(fx.dir) < 0)
		i_fatal("chdir(%s) failed: %m", fx.dir);

	if (!ok(setup_site(&fx) == 0, "site: database migrated, master.key written")) {
		master_service_deinit(&master_service);
		return tap_done();
	}
	mailfort_crypt_plugin_init(&crypt_module);
	fx.ctx = test_mail_storage_init();
	T_BEGIN
	{
		test_streams(MF_MAILCRYPT_VERSION_1);
		test_streams(MF_MAILCRYPT_VERSION_2);
		run_tests(&fx);
	}
	T_END;
	/* as Dovecot does: plugins go before the storage */
	mailfort_crypt_plugin_deinit();
	test_mail_storage_deinit(&fx.ctx);
	(void)pg_admin("DROP DATABASE IF EXISTS " DBNAME " WITH (FORCE)");
	master_service_deinit(&master_service);
	return tap_done();
}
