/*
 * fuzz-milter-proto.c - the milter protocol engine against arbitrary MTA input.
 *
 * Input: the bytes an MTA (or anyone who can reach the milter's socket)
 * sends: packets of a 4-byte length, a command and its data, in any order,
 * truncated, oversized or nonsensical.  They are written into one end of a
 * socket pair and one session is served on the other end, with callbacks
 * that use every context call the real milter uses (macros, macro lists,
 * private data, replies, header changes, body replacement, quarantine).
 * The engine must never read outside a packet, never trust a length, and
 * end the session cleanly on anything it does not accept.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../milter/milter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_msg {
	size_t headers, body;
};

static sfsistat fz_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
	(void)host;
	(void)sa;
	(void)milter_ctx_getsymval(ctx, "j");
	(void)milter_ctx_getsymval(ctx, "{daemon_name}");
	return SMFIS_CONTINUE;
}

static sfsistat fz_envfrom(SMFICTX *ctx, char **argv)
{
	struct fuzz_msg *m = milter_ctx_getpriv(ctx);

	if (m == NULL) {
		m = calloc(1, sizeof(*m));
		milter_ctx_setpriv(ctx, m);
	}
	(void)milter_ctx_getsymval(ctx, "i");
	(void)milter_ctx_getsymval(ctx, "{auth_authen}");
	if (argv[0] != NULL && strcmp(argv[0], "<reject@example>") == 0) {
		(void)milter_ctx_setreply(ctx, "550", "5.7.1", "no");
		return SMFIS_REJECT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat fz_envrcpt(SMFICTX *ctx, char **argv)
{
	(void)milter_ctx_getsymval(ctx, "{rcpt_addr}");
	if (argv[0] != NULL && strcmp(argv[0], "<later@example>") == 0) {
		(void)milter_ctx_setreply(ctx, "451", "4.3.0", "later");
		return SMFIS_TEMPFAIL;
	}
	return SMFIS_CONTINUE;
}

static sfsistat fz_header(SMFICTX *ctx, char *name, char *value)
{
	struct fuzz_msg *m = milter_ctx_getpriv(ctx);

	(void)name;
	(void)value;
	if (m != NULL)
		m->headers++;
	return SMFIS_CONTINUE;
}

static sfsistat fz_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
	struct fuzz_msg *m = milter_ctx_getpriv(ctx);

	(void)data;
	if (m != NULL)
		m->body += len;
	return SMFIS_CONTINUE;
}

static sfsistat fz_eom(SMFICTX *ctx)
{
	struct fuzz_msg *m = milter_ctx_getpriv(ctx);
	static const unsigned char body[] = "replaced\r\n";

	(void)milter_ctx_addheader(ctx, "X-Fuzz", "1");
	(void)milter_ctx_chgheader(ctx, "X-Spam-Flag", 1, NULL);
	if (m != NULL && m->body % 3 == 1)
		(void)milter_ctx_replacebody(ctx, body, sizeof(body) - 1);
	if (m != NULL && m->headers % 4 == 3)
		(void)milter_ctx_quarantine(ctx, "held");
	if (m != NULL && m->body % 5 == 2) {
		(void)milter_ctx_setreply(ctx, "552", "5.3.4", "too big");
		return SMFIS_REJECT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat fz_abort(SMFICTX *ctx)
{
	free(milter_ctx_getpriv(ctx));
	milter_ctx_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static sfsistat fz_close(SMFICTX *ctx)
{
	free(milter_ctx_getpriv(ctx));
	milter_ctx_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static sfsistat fz_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
	(void)milter_ctx_setsymlist(ctx, SMFIM_ENVFROM, "i {auth_authen}");
	(void)milter_ctx_setsymlist(ctx, SMFIM_EOM, "i");
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE);
	*pf1 = f1 & (SMFIP_NR_HDR | SMFIP_NR_CONN | SMFIP_NOUNKNOWN);
	*pf2 = f2;
	*pf3 = f3;
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "fuzz",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE,
    .xxfi_connect = fz_connect,
    .xxfi_envfrom = fz_envfrom,
    .xxfi_envrcpt = fz_envrcpt,
    .xxfi_header = fz_header,
    .xxfi_body = fz_body,
    .xxfi_eom = fz_eom,
    .xxfi_abort = fz_abort,
    .xxfi_close = fz_close,
    .xxfi_negotiate = fz_negotiate,
};

struct feed {
	int fd;
	const uint8_t *data;
	size_t size;
};

/* The MTA's side: send everything, then read every reply until the
   session closes its end. */
static void *mta_side(void *arg)
{
	struct feed *f = arg;
	unsigned char buf[65536];
	size_t done = 0;

	while (done < f->size) {
		ssize_t n = write(f->fd, f->data + done, f->size - done);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	while (read(f->fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = {.data = data, .size = size};
	pthread_t mta;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	f.fd = sv[0];
	if (pthread_create(&mta, NULL, mta_side, &f) != 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	milter_proto_serve_fd(sv[1], &desc, 2); /* closes sv[1] */
	pthread_join(mta, NULL);
	close(sv[0]);
	return 0;
}
