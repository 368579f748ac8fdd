/*
 * test-milter-proto.c - the milter protocol engine's option negotiation:
 * macro lists set from xxfi_negotiate (milter_ctx_setsymlist) go to an MTA
 * that offers SMFIF_SETSYMLIST, in the reply's (stage, names) pairs and
 * with that flag; an MTA that does not offer it gets the plain reply.
 * One session each over a socket pair, the test playing the MTA.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../milter/milter.h"
#include "tap.h"

/* What the callbacks saw, for the checks (one session at a time). */
static struct {
	int set_ok[SMFIM_LAST + 1];
	int set_empty, set_bad_stage, set_twice;
	char queue_id[64];
} seen;

static sfsistat t_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                            unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                            unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	seen.set_ok[SMFIM_ENVFROM] = milter_ctx_setsymlist(ctx, SMFIM_ENVFROM, "i {mail_addr}");
	seen.set_ok[SMFIM_EOM] = milter_ctx_setsymlist(ctx, SMFIM_EOM, "i");
	seen.set_empty = milter_ctx_setsymlist(ctx, SMFIM_CONNECT, "");
	seen.set_bad_stage = milter_ctx_setsymlist(ctx, SMFIM_LAST + 1, "i");
	seen.set_twice = milter_ctx_setsymlist(ctx, SMFIM_EOM, "j");
	*pf0 = f0 & SMFIF_ADDHDRS;
	*pf1 = f1 & SMFIP_NOUNKNOWN;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat t_envfrom(SMFICTX *ctx, char **argv)
{
	const char *qid = milter_ctx_getsymval(ctx, "i");

	(void)argv;
	snprintf(seen.queue_id, sizeof(seen.queue_id), "%s", qid != NULL ? qid : "(none)");
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "test",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS,
    .xxfi_envfrom = t_envfrom,
    .xxfi_negotiate = t_negotiate,
};

static void *serve(void *arg)
{
	milter_proto_serve_fd(*(int *)arg, &desc, 5);
	return NULL;
}

static void send_packet(int fd, char cmd, const void *data, size_t len)
{
	unsigned char buf[256];
	uint32_t n = htonl((uint32_t)(len + 1));

	memcpy(buf, &n, 4);
	buf[4] = (unsigned char)cmd;
	memcpy(buf + 5, data, len);
	if (write(fd, buf, len + 5) != (ssize_t)(len + 5))
		diag("short write to the milter");
}

static bool read_all(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

/* One reply packet: its command and data (NUL-terminated), false at EOF. */
static bool read_packet(int fd, char *cmd, unsigned char *data, size_t max, size_t *len)
{
	uint32_t n;

	if (!read_all(fd, &n, 4))
		return false;
	n = ntohl(n);
	if (n == 0 || n > max)
		return false;
	if (!read_all(fd, cmd, 1) || !read_all(fd, data, n - 1))
		return false;
	data[n - 1] = '\0';
	*len = n - 1;
	return true;
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

/* Negotiate offering actions; returns the reply's data in data/len. */
static pthread_t start_session(int *mta, int *milter_fd, uint32_t actions, char *cmd,
                               unsigned char *data, size_t max, size_t *len)
{
	uint32_t o[3] = {htonl(6), htonl(actions), htonl(0x1fffff)};
	pthread_t tid;
	int sv[2];

	memset(&seen, 0, sizeof(seen));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	*mta = sv[0];
	*milter_fd = sv[1];
	if (pthread_create(&tid, NULL, serve, milter_fd) != 0)
		abort();
	send_packet(sv[0], SMFIC_OPTNEG, o, sizeof(o));
	*len = 0;
	*cmd = 0;
	if (!read_packet(sv[0], cmd, data, max, len))
		diag("no option negotiation reply");
	return tid;
}

static void end_session(pthread_t tid, int mta)
{
	send_packet(mta, SMFIC_QUIT, "", 0);
	pthread_join(tid, NULL);
	close(mta);
}

int main(void)
{
	static const unsigned char macros[] = "Mi\0Q123\0{mail_addr}\0a@example\0";
	unsigned char data[512];
	size_t len, off;
	pthread_t tid;
	char cmd;
	int mta, milter_fd;

	/* An MTA that takes macro lists (Postfix offers SMFIF_SETSYMLIST). */
	tid = start_session(&mta, &milter_fd, 0x1ff, &cmd, data, sizeof(data), &len);
	ok(cmd == SMFIC_OPTNEG && len >= 12, "the option negotiation is answered");
	ok(seen.set_ok[SMFIM_ENVFROM] == 0 && seen.set_ok[SMFIM_EOM] == 0,
	   "macro lists can be set from xxfi_negotiate");
	ok(seen.set_empty < 0 && seen.set_bad_stage < 0 && seen.set_twice < 0,
	   "an empty list, an unknown stage and a second list for a stage are refused");
	ok(len >= 12 && get32(data + 4) == (SMFIF_ADDHDRS | SMFIF_SETSYMLIST),
	   "the reply asks for the milter's actions and SMFIF_SETSYMLIST (0x%x)",
	   len >= 12 ? get32(data + 4) : 0);
	off = 12;
	ok(len == 12 + 4 + sizeof("i {mail_addr}") + 4 + sizeof("i"),
	   "the reply carries two lists (%zu bytes)", len);
	if (len == 12 + 4 + sizeof("i {mail_addr}") + 4 + sizeof("i")) {
		ok(get32(data + off) == SMFIM_ENVFROM &&
		       strcmp((char *)data + off + 4, "i {mail_addr}") == 0,
		   "MAIL FROM: \"i {mail_addr}\"");
		off += 4 + sizeof("i {mail_addr}");
		ok(get32(data + off) == SMFIM_EOM && strcmp((char *)data + off + 4, "i") == 0,
		   "end of message: \"i\"");
	}
	/* the session goes on as usual */
	send_packet(mta, SMFIC_MACRO, macros, sizeof(macros) - 1);
	send_packet(mta, SMFIC_MAIL, "<a@example>", sizeof("<a@example>"));
	ok(read_packet(mta, &cmd, data, sizeof(data), &len) && cmd == SMFIR_CONTINUE,
	   "MAIL FROM is answered after the negotiation");
	ok(strcmp(seen.queue_id, "Q123") == 0, "the queue id macro is read (%s)", seen.queue_id);
	end_session(tid, mta);

	/* An MTA that does not offer it gets the plain 12-byte reply. */
	tid = start_session(&mta, &milter_fd, 0xff, &cmd, data, sizeof(data), &len);
	ok(cmd == SMFIC_OPTNEG && len == 12, "without SMFIF_SETSYMLIST no lists are sent (%zu)",
	   len);
	ok(len == 12 && get32(data + 4) == SMFIF_ADDHDRS,
	   "and the reply does not ask for SMFIF_SETSYMLIST");
	end_session(tid, mta);
	return tap_done();
}
