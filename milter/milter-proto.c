/*
 * milter-proto.c - the milter protocol (version 6) between Postfix and
 * mailfort-milter: listening socket, one thread per MTA connection,
 * packets in, replies and message changes out.
 *
 * Why not libmilter: its worker pool hands a session back to a poll(2)
 * thread after every command, and reads each command with two poll(2) and
 * two read(2) calls; a message has one command per header line, so most
 * of the milter's time went to system calls and thread hand-overs.  Here a
 * session's thread reads whatever the MTA has sent in one read(2) (a
 * whole header block usually), takes every complete packet from its
 * buffer, and writes its replies in one write(2) just before it would
 * wait for more.
 *
 * The callbacks are the usual xxfi_* functions of a struct smfiDesc with
 * libmilter's meanings (SMFIS_* results, SMFIP_NR_* steps answered with
 * nothing); the milter_ctx_* calls below stand for smfi_getpriv,
 * smfi_setpriv, smfi_getsymval, smfi_setreply, smfi_addheader,
 * smfi_chgheader, smfi_replacebody, smfi_quarantine and smfi_setsymlist
 * (the macro lists go with the option negotiation reply).  A step whose
 * answer was negotiated away is never answered, whatever the callback
 * returned (a problem found there is acted on at end of message).
 *
 * milter_proto_listen returns the listening descriptor or -1 with err
 * (bad socket specification, bind or listen failure).  milter_proto_run
 * returns 0 after SIGTERM, SIGINT or SIGHUP (libmilter's meaning: stop),
 * -1 when it could not run; a session that breaks the protocol, is silent
 * for longer than the timeout, or whose MTA goes away is closed, with the
 * message in progress aborted (xxfi_abort, then xxfi_close).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "mf-log.h"
#include "milter.h"

/* Largest packet taken from the MTA (Postfix sends at most 64 KB). */
#define MAX_PACKET  (1024 * 1024)
#define MAX_ARGS    64
#define MAX_SESSION 4096
/* Longest macro list for one stage in the option negotiation reply. */
#define MAX_SYMLIST 1024

/* Macro sets, in the order of the SMTP dialogue. */
enum { MAC_CONNECT, MAC_HELO, MAC_MAIL, MAC_RCPT, MAC_DATA, MAC_EOH, MAC_EOM, MAC_N };

struct macros {
	char *buf; /* name \0 value \0 ... */
	size_t len, cap;
};

struct smfi_str {
	int fd;
	const struct smfiDesc *desc;
	unsigned long proto; /* SMFIP_* agreed with the MTA */
	bool negotiated;     /* OPTNEG seen */
	void *priv;
	char *reply; /* "550 5.7.1 text" set for the next reject or tempfail */
	struct macros mac[MAC_N];
	char *symlist[SMFIM_LAST + 1]; /* macros wanted per SMFIM_* stage, or NULL */
	unsigned char *in;
	size_t in_start, in_end, in_cap;
	unsigned char *out;
	size_t out_len, out_cap;
	bool out_failed;
	bool tcp;
	struct server *srv;
	struct smfi_str *prev, *next; /* live sessions, for stopping */
};

/* One milter_proto_run: the listener and its live sessions. */
struct server {
	int listen_fd;
	volatile sig_atomic_t stop;
	sigset_t signals;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct smfi_str *head;
	unsigned count;
};

/* ------------------------------------------------------------ output */

static void out_add(SMFICTX *s, const void *data, size_t len)
{
	if (s->out_failed)
		return;
	if (s->out_len + len > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		unsigned char *n;

		while (cap < s->out_len + len)
			cap *= 2;
		n = realloc(s->out, cap);
		if (n == NULL) {
			s->out_failed = true;
			return;
		}
		s->out = n;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, data, len);
	s->out_len += len;
}

/* Queue one packet: length, command, then the pieces of its data. */
static void out_packet(SMFICTX *s, char cmd, const void *a, size_t alen, const void *b, size_t blen,
                       const void *c, size_t clen)
{
	uint32_t n = htonl((uint32_t)(1 + alen + blen + clen));

	out_add(s, &n, 4);
	out_add(s, &cmd, 1);
	if (alen > 0)
		out_add(s, a, alen);
	if (blen > 0)
		out_add(s, b, blen);
	if (clen > 0)
		out_add(s, c, clen);
}

static int out_flush(SMFICTX *s)
{
	size_t off = 0;

	if (s->out_failed)
		return -1;
	while (off < s->out_len) {
		/* MSG_NOSIGNAL: an MTA that has gone away ends this session, not the
		   process with every other session in it (SIGPIPE) */
		ssize_t n = send(s->fd, s->out + off, s->out_len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->out_failed = true;
			return -1;
		}
		off += (size_t)n;
	}
	s->out_len = 0;
	return 0;
}

/* ------------------------------------------------------------ input */

/* The next packet; its data stays valid until the next call.  Pending
   replies are written before waiting.  0 at the end of the session (EOF,
   timeout, error or a packet that breaks the protocol). */
static int next_packet(SMFICTX *s, char *cmd, unsigned char **data, size_t *len)
{
	for (;;) {
		size_t avail = s->in_end - s->in_start, need = 4;
		ssize_t n;

		if (avail >= 4) {
			uint32_t plen;

			memcpy(&plen, s->in + s->in_start, 4);
			plen = ntohl(plen);
			if (plen == 0 || plen > MAX_PACKET) {
				mf_log_warn("MTA connection: packet of %lu bytes, closing",
				            (unsigned long)plen);
				return 0;
			}
			need = 4 + (size_t)plen;
			if (avail >= need) {
				*cmd = (char)s->in[s->in_start + 4];
				*data = s->in + s->in_start + 5;
				*len = plen - 1;
				s->in_start += need;
				return 1;
			}
		}
		/* make room for the rest of the packet */
		if (s->in_start > 0) {
			memmove(s->in, s->in + s->in_start, avail);
			s->in_end = avail;
			s->in_start = 0;
		}
		if (s->in_cap < need || s->in_cap - s->in_end < 4096) {
			size_t cap = s->in_cap ? s->in_cap : 65536;
			unsigned char *p;

			while (cap < need || cap - s->in_end < 4096)
				cap *= 2;
			p = realloc(s->in, cap);
			if (p == NULL) {
				mf_log_error("MTA connection: out of memory, closing");
				return 0;
			}
			s->in = p;
			s->in_cap = cap;
		}
		if (out_flush(s) < 0)
			return 0;
		do
			n = read(s->fd, s->in + s->in_end, s->in_cap - s->in_end);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			mf_log_warn("MTA connection silent for too long, closing");
		else if (n < 0 && errno != ECONNRESET)
			mf_log_warn("MTA connection: read failed: %s", strerror(errno));
		if (n <= 0)
			return 0;
		s->in_end += (size_t)n;
		if (s->tcp) {
			/* Acknowledge at once.  With no answer due until the end of
			   the message, a delayed ACK here holds Postfix's last small
			   packet in its Nagle buffer for tens of milliseconds. */
			int on = 1;

			(void)setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
		}
	}
}

/* ------------------------------------------------------------ macros */

static int mac_slot(char cmd)
{
	switch (cmd) {
	case SMFIC_CONNECT:
		return MAC_CONNECT;
	case SMFIC_HELO:
		return MAC_HELO;
	case SMFIC_MAIL:
		return MAC_MAIL;
	case SMFIC_RCPT:
		return MAC_RCPT;
	case SMFIC_DATA:
		return MAC_DATA;
	case SMFIC_EOH:
		return MAC_EOH;
	case SMFIC_BODYEOB:
		return MAC_EOM;
	default:
		return -1;
	}
}

static void mac_set(SMFICTX *s, int slot, const unsigned char *data, size_t len)
{
	struct macros *m = &s->mac[slot];

	if (len + 1 > m->cap) {
		char *n = realloc(m->buf, len + 1);

		if (n == NULL) {
			m->len = 0;
			return;
		}
		m->buf = n;
		m->cap = len + 1;
	}
	memcpy(m->buf, data, len);
	m->buf[len] = '\0';
	m->len = len;
}

/* A new step forgets the macros of the steps after it (an earlier
   message's queue id, for one). */
static void mac_clear_after(SMFICTX *s, int slot)
{
	int i;

	for (i = slot + 1; i < MAC_N; i++)
		s->mac[i].len = 0;
}

static bool mac_name_is(const char *have, const char *want)
{
	size_t wl;

	if (strcmp(have, want) == 0)
		return true;
	/* "i" matches "{i}" and the other way round */
	if (have[0] == '{' && want[0] != '{') {
		wl = strlen(want);
		return strncmp(have + 1, want, wl) == 0 && have[wl + 1] == '}' &&
		       have[wl + 2] == '\0';
	}
	if (want[0] == '{' && have[0] != '{') {
		wl = strlen(have);
		return strncmp(want + 1, have, wl) == 0 && want[wl + 1] == '}' &&
		       want[wl + 2] == '\0';
	}
	return false;
}

char *milter_ctx_getsymval(SMFICTX *s, const char *name)
{
	int slot;

	for (slot = MAC_N - 1; slot >= 0; slot--) {
		const struct macros *m = &s->mac[slot];
		size_t off = 0;

		while (off < m->len) {
			const char *n = m->buf + off;
			size_t nl = strnlen(n, m->len - off);
			const char *v;

			if (off + nl + 1 >= m->len)
				break;
			v = n + nl + 1;
			if (mac_name_is(n, name))
				return (char *)(uintptr_t)v;
			off += nl + 1 + strnlen(v, m->len - (off + nl + 1)) + 1;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ calls for the callbacks */

void *milter_ctx_getpriv(SMFICTX *s)
{
	return s->priv;
}

void milter_ctx_setpriv(SMFICTX *s, void *priv)
{
	s->priv = priv;
}

unsigned long milter_ctx_protocol(SMFICTX *s)
{
	return s->proto;
}

int milter_ctx_setreply(SMFICTX *s, const char *code, const char *xcode, const char *text)
{
	size_t i;
	char *r;

	if (code == NULL || strlen(code) != 3 || (code[0] != '4' && code[0] != '5'))
		return -1;
	if (text == NULL)
		text = "";
	for (i = 0; text[i] != '\0'; i++)
		if (text[i] == '\r' || text[i] == '\n')
			return -1;
	r = g_strdup_printf("%s %s%s%s", code, xcode != NULL ? xcode : "",
	                    xcode != NULL && xcode[0] != '\0' ? " " : "", text);
	g_free(s->reply);
	s->reply = r;
	return 0;
}

int milter_ctx_addheader(SMFICTX *s, const char *name, const char *value)
{
	out_packet(s, SMFIR_ADDHEADER, name, strlen(name) + 1, value, strlen(value) + 1, NULL, 0);
	return s->out_failed ? -1 : 0;
}

int milter_ctx_chgheader(SMFICTX *s, const char *name, int index, const char *value)
{
	uint32_t idx = htonl((uint32_t)index);

	if (value == NULL)
		value = "";
	out_packet(s, SMFIR_CHGHEADER, &idx, 4, name, strlen(name) + 1, value, strlen(value) + 1);
	return s->out_failed ? -1 : 0;
}

int milter_ctx_replacebody(SMFICTX *s, const unsigned char *data, size_t len)
{
	size_t off = 0;

	do {
		size_t n = len - off > MILTER_CHUNK_SIZE ? MILTER_CHUNK_SIZE : len - off;

		out_packet(s, SMFIR_REPLBODY, data + off, n, NULL, 0, NULL, 0);
		/* a long body goes out as it is made, not all in memory */
		if (s->out_len >= 4 * MILTER_CHUNK_SIZE && out_flush(s) < 0)
			return -1;
		off += n;
	} while (off < len);
	return s->out_failed ? -1 : 0;
}

int milter_ctx_setsymlist(SMFICTX *s, int stage, const char *macros)
{
	size_t len = macros != NULL ? strlen(macros) : 0;
	char *copy;

	/* An empty list would mean "the MTA's defaults" to Postfix. */
	if (s->negotiated || stage < SMFIM_FIRST || stage > SMFIM_LAST || len == 0 ||
	    len > MAX_SYMLIST || s->symlist[stage] != NULL)
		return -1;
	copy = strdup(macros);
	if (copy == NULL)
		return -1;
	s->symlist[stage] = copy;
	return 0;
}

int milter_ctx_quarantine(SMFICTX *s, const char *reason)
{
	out_packet(s, SMFIR_QUARANTINE, reason, strlen(reason) + 1, NULL, 0, NULL, 0);
	return s->out_failed ? -1 : 0;
}

/* ------------------------------------------------------------ the dialogue */

static void reply(SMFICTX *s, unsigned long nr_bit, sfsistat r)
{
	char c;

	if (nr_bit != 0 && (s->proto & nr_bit) != 0)
		return; /* agreed: no answer for this step */
	switch (r) {
	case SMFIS_REJECT:
	case SMFIS_TEMPFAIL:
		if (s->reply != NULL && s->reply[0] == (r == SMFIS_REJECT ? '5' : '4')) {
			out_packet(s, SMFIR_REPLYCODE, s->reply, strlen(s->reply) + 1, NULL, 0,
			           NULL, 0);
			g_free(s->reply);
			s->reply = NULL;
			return;
		}
		c = r == SMFIS_REJECT ? SMFIR_REJECT : SMFIR_TEMPFAIL;
		break;
	case SMFIS_ACCEPT:
		c = SMFIR_ACCEPT;
		break;
	case SMFIS_DISCARD:
		c = SMFIR_DISCARD;
		break;
	case SMFIS_SKIP:
		c = SMFIR_SKIP;
		break;
	default: /* CONTINUE, or NOREPLY where the MTA expects an answer */
		c = SMFIR_CONTINUE;
		break;
	}
	out_packet(s, c, NULL, 0, NULL, 0, NULL, 0);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

/* Split NUL-terminated strings; false if the data does not end in NUL. */
static bool split_args(unsigned char *data, size_t len, char **argv, size_t max)
{
	size_t off = 0, n = 0;

	if (len == 0 || data[len - 1] != '\0')
		return false;
	while (off < len && n + 1 < max) {
		argv[n++] = (char *)data + off;
		off += strlen((char *)data + off) + 1;
	}
	argv[n] = NULL;
	return true;
}

static bool do_optneg(SMFICTX *s, const unsigned char *data, size_t len)
{
	unsigned long version, actions, proto, a = 0, p = 0, p2 = 0, p3 = 0;
	uint32_t o[3], plen;
	size_t lists = 0;
	char cmd = SMFIC_OPTNEG;
	sfsistat r = SMFIS_ALL_OPTS;
	int i;

	if (len < 12) {
		mf_log_warn("MTA connection: short option negotiation, closing");
		return false;
	}
	version = get32(data);
	actions = get32(data + 4);
	proto = get32(data + 8);
	if (version < 2) {
		mf_log_warn("MTA connection: milter protocol version %lu is too old", version);
		return false;
	}
	if (s->desc->xxfi_negotiate != NULL)
		r = s->desc->xxfi_negotiate(s, actions, proto, 0, 0, &a, &p, &p2, &p3);
	if (r == SMFIS_ALL_OPTS) {
		a = actions;
		p = proto & (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
		             SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY);
	} else if (r != SMFIS_CONTINUE) {
		return false;
	}
	s->proto = p & proto;
	/* Macro lists go with the reply only to an MTA that offered to take
	   them (and then with the flag that says so). */
	a &= ~(unsigned long)SMFIF_SETSYMLIST;
	for (i = SMFIM_FIRST; i <= SMFIM_LAST; i++) {
		if (s->symlist[i] != NULL && (actions & SMFIF_SETSYMLIST) != 0) {
			a |= SMFIF_SETSYMLIST;
			lists += 4 + strlen(s->symlist[i]) + 1;
		}
	}
	o[0] = htonl((uint32_t)(version < SMFI_PROT_VERSION ? version : SMFI_PROT_VERSION));
	o[1] = htonl((uint32_t)(a & actions));
	o[2] = htonl((uint32_t)s->proto);
	if (lists == 0) {
		out_packet(s, SMFIC_OPTNEG, o, sizeof(o), NULL, 0, NULL, 0);
		return true;
	}
	/* version, actions, protocol, then (stage, "name name ...") pairs */
	plen = htonl((uint32_t)(1 + sizeof(o) + lists));
	out_add(s, &plen, 4);
	out_add(s, &cmd, 1);
	out_add(s, o, sizeof(o));
	for (i = SMFIM_FIRST; i <= SMFIM_LAST; i++) {
		uint32_t stage = htonl((uint32_t)i);

		if (s->symlist[i] == NULL)
			continue;
		out_add(s, &stage, 4);
		out_add(s, s->symlist[i], strlen(s->symlist[i]) + 1);
	}
	return true;
}

/* data ends in a NUL (checked by the caller). */
static sfsistat do_connect(SMFICTX *s, unsigned char *data, size_t len)
{
	struct sockaddr_storage ss;
	struct sockaddr *sa = NULL;
	const char *host = (const char *)data, *addr;
	size_t hl;
	uint16_t port = 0;
	char family;

	hl = strlen(host) + 1;
	memset(&ss, 0, sizeof(ss));
	if (hl < len) {
		family = (char)data[hl];
		if ((family == '4' || family == '6') && hl + 3 < len) {
			memcpy(&port, data + hl + 1, 2);
			addr = (const char *)data + hl + 3;
			if (strncasecmp(addr, "IPv6:", 5) == 0)
				addr += 5;
			if (family == '4') {
				struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;

				if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
					in->sin_family = AF_INET;
					in->sin_port = port;
					sa = (struct sockaddr *)(void *)&ss;
				}
			} else {
				struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;

				if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
					in6->sin6_family = AF_INET6;
					in6->sin6_port = port;
					sa = (struct sockaddr *)(void *)&ss;
				}
			}
		}
	}
	if (s->desc->xxfi_connect == NULL)
		return SMFIS_CONTINUE;
	return s->desc->xxfi_connect(s, (char *)data, sa);
}

/* One session, until QUIT or the end of the connection. */
static void dialogue(SMFICTX *s)
{
	const struct smfiDesc *d = s->desc;
	char *argv[MAX_ARGS];
	unsigned char *data;
	size_t len;
	char cmd;
	int slot;

	while (next_packet(s, &cmd, &data, &len)) {
		sfsistat r;

		slot = mac_slot(cmd);
		if (slot >= 0)
			mac_clear_after(s, slot);
		switch (cmd) {
		case SMFIC_OPTNEG:
			/* once per connection: a second one would start a second
			   milter context over the first */
			if (s->negotiated || !do_optneg(s, data, len))
				return;
			s->negotiated = true;
			break;
		case SMFIC_MACRO:
			if (len > 0 && (slot = mac_slot((char)data[0])) >= 0)
				mac_set(s, slot, data + 1, len - 1);
			break;
		case SMFIC_CONNECT:
			/* malformed: close, as for every other command (an answer
			   negotiated away would let it pass unnoticed) */
			if (len == 0 || data[len - 1] != '\0')
				return;
			reply(s, SMFIP_NR_CONN, do_connect(s, data, len));
			break;
		case SMFIC_HELO:
			if (len == 0 || data[len - 1] != '\0')
				return;
			r = d->xxfi_helo != NULL ? d->xxfi_helo(s, (char *)data) : SMFIS_CONTINUE;
			reply(s, SMFIP_NR_HELO, r);
			break;
		case SMFIC_MAIL:
		case SMFIC_RCPT:
			if (!split_args(data, len, argv, MAX_ARGS))
				return;
			if (cmd == SMFIC_MAIL)
				r = d->xxfi_envfrom != NULL ? d->xxfi_envfrom(s, argv)
				                            : SMFIS_CONTINUE;
			else
				r = d->xxfi_envrcpt != NULL ? d->xxfi_envrcpt(s, argv)
				                            : SMFIS_CONTINUE;
			reply(s, cmd == SMFIC_MAIL ? SMFIP_NR_MAIL : SMFIP_NR_RCPT, r);
			break;
		case SMFIC_DATA:
			r = d->xxfi_data != NULL ? d->xxfi_data(s) : SMFIS_CONTINUE;
			reply(s, SMFIP_NR_DATA, r);
			break;
		case SMFIC_UNKNOWN:
			reply(s, SMFIP_NR_UNKN, SMFIS_CONTINUE);
			break;
		case SMFIC_HEADER: {
			size_t nl;

			if (len == 0 || data[len - 1] != '\0')
				return;
			nl = strlen((char *)data) + 1;
			if (nl >= len)
				return;
			r = d->xxfi_header != NULL
			        ? d->xxfi_header(s, (char *)data, (char *)data + nl)
			        : SMFIS_CONTINUE;
			reply(s, SMFIP_NR_HDR, r);
			break;
		}
		case SMFIC_EOH:
			r = d->xxfi_eoh != NULL ? d->xxfi_eoh(s) : SMFIS_CONTINUE;
			reply(s, SMFIP_NR_EOH, r);
			break;
		case SMFIC_BODY:
			r = d->xxfi_body != NULL ? d->xxfi_body(s, data, len) : SMFIS_CONTINUE;
			reply(s, SMFIP_NR_BODY, r);
			break;
		case SMFIC_BODYEOB:
			if (len > 0 && d->xxfi_body != NULL)
				(void)d->xxfi_body(s, data, len);
			r = d->xxfi_eom != NULL ? d->xxfi_eom(s) : SMFIS_CONTINUE;
			reply(s, 0, r);
			if (out_flush(s) < 0)
				return;
			break;
		case SMFIC_ABORT:
			if (d->xxfi_abort != NULL)
				(void)d->xxfi_abort(s);
			mac_clear_after(s, MAC_HELO);
			break;
		case SMFIC_QUIT_NC:
			/* the MTA goes on with another SMTP connection */
			if (d->xxfi_close != NULL)
				(void)d->xxfi_close(s);
			s->priv = NULL;
			mac_clear_after(s, -1);
			break;
		case SMFIC_QUIT:
			return;
		default:
			mf_log_warn("MTA connection: unknown command 0x%02x, closing",
			            (unsigned)(unsigned char)cmd);
			return;
		}
		if (s->out_failed)
			return;
	}
}

static void session_free(SMFICTX *s)
{
	int i;

	if (s->fd >= 0)
		close(s->fd);
	for (i = 0; i < MAC_N; i++)
		free(s->mac[i].buf);
	for (i = SMFIM_FIRST; i <= SMFIM_LAST; i++)
		free(s->symlist[i]);
	g_free(s->reply);
	free(s->in);
	free(s->out);
	free(s);
}

/* The whole life of a session: the dialogue, then the message still open
   (if any) dropped and the connection's end announced. */
static void session_serve(SMFICTX *s)
{
	dialogue(s);
	(void)out_flush(s);
	if (s->priv != NULL) {
		/* a message still open was not finished: drop it */
		if (s->desc->xxfi_abort != NULL)
			(void)s->desc->xxfi_abort(s);
	}
	if (s->desc->xxfi_close != NULL)
		(void)s->desc->xxfi_close(s);
}

static void set_timeouts(int fd, int timeout)
{
	struct timeval tv = {.tv_sec = timeout > 0 ? timeout : 300, .tv_usec = 0};

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void milter_proto_serve_fd(int fd, const struct smfiDesc *desc, int timeout)
{
	SMFICTX *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		close(fd);
		return;
	}
	set_timeouts(fd, timeout);
	s->fd = fd;
	s->desc = desc;
	session_serve(s);
	session_free(s);
}

static void *session_main(void *arg)
{
	SMFICTX *s = arg;
	struct server *srv = s->srv;

	session_serve(s);
	pthread_mutex_lock(&srv->lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (--srv->count == 0)
		pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
	session_free(s);
	return NULL;
}

/* ------------------------------------------------------------ the listener */

int milter_proto_listen(const char *spec, struct mf_error *err)
{
	const char *path = NULL, *p;
	int fd, on = 1;

	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	else if (strncmp(spec, "local:", 6) == 0)
		path = spec + 6;
	if (path != NULL) {
		struct sockaddr_un sun;
		struct stat st;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path))
			return mf_error_set(err, "[milter] socket: bad unix socket path '%s'",
			                    path);
		memcpy(sun.sun_path, path, strlen(path));
		/* a socket left by an earlier run is replaced, anything else kept */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			(void)unlink(path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return mf_error_set(err, "cannot create a socket: %s", strerror(errno));
		if (bind(fd, (struct sockaddr *)(void *)&sun, sizeof(sun)) < 0) {
			mf_error_set(err, "cannot listen on %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	} else {
		struct addrinfo hints, *ai = NULL;
		char port[16], host[256];
		int rc;
		bool v6 = strncmp(spec, "inet6:", 6) == 0;

		if (!v6 && strncmp(spec, "inet:", 5) != 0)
			return mf_error_set(err,
			                    "[milter] socket: '%s' must start with unix:, "
			                    "inet: or inet6:",
			                    spec);
		p = spec + (v6 ? 6 : 5);
		host[0] = '\0';
		if (strchr(p, '@') != NULL) {
			size_t n = (size_t)(strchr(p, '@') - p);

			if (n == 0 || n >= sizeof(port) || strlen(p + n + 1) >= sizeof(host))
				return mf_error_set(err, "[milter] socket: bad address '%s'", spec);
			memcpy(port, p, n);
			port[n] = '\0';
			snprintf(host, sizeof(host), "%s", p + n + 1);
		} else if (strlen(p) > 0 && strlen(p) < sizeof(port)) {
			snprintf(port, sizeof(port), "%s", p);
		} else {
			return mf_error_set(err, "[milter] socket: bad address '%s'", spec);
		}
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = v6 ? AF_INET6 : AF_INET;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
		if (rc != 0)
			return mf_error_set(err, "[milter] socket: %s: %s", spec, gai_strerror(rc));
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			freeaddrinfo(ai);
			return mf_error_set(err, "cannot create a socket: %s", strerror(errno));
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			mf_error_set(err, "cannot listen on %s: %s", spec, strerror(errno));
			freeaddrinfo(ai);
			close(fd);
			return -1;
		}
		freeaddrinfo(ai);
	}
	if (listen(fd, SOMAXCONN) < 0) {
		mf_error_set(err, "cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void *stop_main(void *arg)
{
	struct server *srv = arg;
	int sig;

	while (sigwait(&srv->signals, &sig) != 0)
		;
	srv->stop = 1;
	/* wakes accept(2) */
	(void)shutdown(srv->listen_fd, SHUT_RDWR);
	return NULL;
}

int milter_proto_run(int listen_fd, const struct smfiDesc *desc, int timeout, struct mf_error *err)
{
	struct sockaddr_storage peer;
	struct server *srv;
	pthread_attr_t attr;
	pthread_t tid, stopper;
	struct timespec until;
	int rc, ret = 0, domain = 0, on = 1;
	socklen_t dlen = sizeof(domain);

	(void)getsockopt(listen_fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen);
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return mf_error_set(err, "out of memory");
	srv->listen_fd = listen_fd;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->idle, NULL);
	sigemptyset(&srv->signals);
	sigaddset(&srv->signals, SIGTERM);
	sigaddset(&srv->signals, SIGINT);
	sigaddset(&srv->signals, SIGHUP);
	/* sessions inherit the mask: only the stop thread takes these */
	pthread_sigmask(SIG_BLOCK, &srv->signals, NULL);
	rc = pthread_create(&stopper, NULL, stop_main, srv);
	if (rc != 0) {
		free(srv);
		return mf_error_set(err, "cannot start a thread: %s", strerror(rc));
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!srv->stop) {
		socklen_t plen = sizeof(peer);
		int fd = accept4(listen_fd, (struct sockaddr *)(void *)&peer, &plen, SOCK_CLOEXEC);
		SMFICTX *s;

		if (fd < 0) {
			int e = errno; /* logging may change errno */

			if (srv->stop)
				break;
			if (e == EINTR || e == ECONNABORTED)
				continue;
			mf_log_error("accept: %s", strerror(e));
			if (e == EMFILE || e == ENFILE || e == ENOMEM || e == ENOBUFS) {
				struct timespec pause = {0, 100 * 1000 * 1000};

				nanosleep(&pause, NULL);
				continue;
			}
			mf_error_set(err, "cannot accept connections: %s", strerror(e));
			ret = -1;
			break;
		}
		set_timeouts(fd, timeout);
		/* replies are written whole: nothing to gain from Nagle's delay */
		if (domain == AF_INET || domain == AF_INET6)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			mf_log_error("out of memory for a new MTA connection");
			close(fd);
			continue;
		}
		s->fd = fd;
		s->desc = desc;
		s->srv = srv;
		s->tcp = domain == AF_INET || domain == AF_INET6;
		pthread_mutex_lock(&srv->lock);
		if (srv->count >= MAX_SESSION) {
			pthread_mutex_unlock(&srv->lock);
			mf_log_error("%d MTA connections open, refusing another", MAX_SESSION);
			session_free(s);
			continue;
		}
		s->next = srv->head;
		if (srv->head != NULL)
			srv->head->prev = s;
		srv->head = s;
		srv->count++;
		rc = pthread_create(&tid, &attr, session_main, s);
		if (rc != 0) {
			srv->head = s->next;
			if (s->next != NULL)
				s->next->prev = NULL;
			srv->count--;
			pthread_mutex_unlock(&srv->lock);
			mf_log_error("cannot start a thread for an MTA connection: %s",
			             strerror(rc));
			session_free(s);
			continue;
		}
		pthread_mutex_unlock(&srv->lock);
	}
	pthread_attr_destroy(&attr);
	if (!srv->stop)
		pthread_kill(stopper, SIGTERM);
	pthread_join(stopper, NULL);
	/* Stop: every session reads the end of its input, aborts what it had
	   and closes; give them a few seconds. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&srv->lock);
	for (SMFICTX *s = srv->head; s != NULL; s = s->next)
		(void)shutdown(s->fd, SHUT_RD);
	while (srv->count > 0) {
		if (pthread_cond_timedwait(&srv->idle, &srv->lock, &until) == ETIMEDOUT)
			break;
	}
	rc = (int)srv->count;
	pthread_mutex_unlock(&srv->lock);
	if (rc > 0) {
		/* they still use srv and the shared state: leave both to exit */
		mf_log_warn("%d MTA connections still busy at stop", rc);
		return ret < 0 ? -1 : 1;
	}
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->idle);
	free(srv);
	return ret;
}
