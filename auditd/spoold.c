/*
 * spoold.c - mailfort-spoold: the one process that writes the event spool.
 *
 *   mailfort-spoold [-c CONFIG] [-f] [-v] [--check-config]
 *
 * Producers (pam_mailfort in the auth worker, the Dovecot plugins in
 * imap/pop3/lmtp as the mail user, the milter, mailfortctl) send each audit
 * event as one message on the unix socket [spool] socket (SOCK_SEQPACKET,
 * mode 0660, group [spoold] group).  For every message the kernel tells
 * this daemon who sent it (SCM_CREDENTIALS: uid, gid, pid; the executable
 * is read from /proc).  The daemon appends that identity to the event as
 * the member "peer", appends the record to the spool ([spool] dir, owned
 * by [spoold] user, mode 0700, segments 0600) and then answers the
 * producer.  mailfort-auditd reads the spool and decides, by the peer's
 * uid, whether the event's type is one that uid may write.
 *
 * An event that is not one JSON object, or that carries a "peer" member of
 * its own (a forged identity), is not passed on as it is: it is spooled as
 * an event of type "refused", with the reason, the sender's identity and
 * the text it sent in "raw" (mailfort-auditd raises an alert for it), and
 * the producer is told why.  Nothing a producer sends is dropped.
 *
 * Why a daemon of its own, and not a thread in mailfort-auditd: a login
 * waits for its auth event to be spooled, so the receiver must be up
 * whenever mail is served.  It does only local I/O: no database, no
 * mail, no signing key, a few hundred lines.  mailfort-auditd, which
 * talks to PostgreSQL, evaluates alert rules and is restarted on
 * reconfiguration, can stop, hang on the database or crash without
 * blocking a single login.
 *
 * No producer can block another: the spool files are not accessible to
 * producers (nothing to lock), a connection of root is served at most 64
 * events per round of poll(2) and any other one event (so a flood from
 * many connections of the mail uid delays root's auth events by one event
 * each, at most MF_SUBMIT_MAX_EVENT bytes), a uid other than root has at
 * most [spoold] max_bytes_per_sec_per_uid spooled a second (beyond it its
 * connections are not read until the rate allows: its events wait in the
 * socket, its producers wait for their answers, the spool grows no faster), an answer that cannot
 * be sent at once drops the connection (a producer that does not read its answers), and a non-root
 * uid may hold at most [spoold] max_clients_per_uid connections.  At that
 * cap a new connection is not simply refused (every imap, pop3 and lmtp
 * process shares the mail uid): one connection of the process of that uid
 * holding the most is closed for it, so a process that hoards connections
 * cannot keep its uid's other processes out; only when every process of
 * the uid holds one is the newcomer refused (and its login then fails:
 * mailfort_audit fails closed).
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a start-up error, 2 on a usage
 * error.  Logs go to stderr with -f, otherwise to syslog (facility daemon).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mf-config.h"
#include "mf-daemon.h"
#include "mf-event.h"
#include "mf-json.h"
#include "mf-log.h"
#include "mf-spool.h"
#include "mf-submit.h"

/* Events read from one connection of root before the others get their
   turn; any other uid's connection is served one event per round. */
#define SPOOLD_BURST 64
/* Longest "raw" text kept of a refused event. */
#define SPOOLD_RAW_MAX (64 * 1024)

static volatile sig_atomic_t got_term;

struct client {
	int fd;
	struct ucred cred; /* SO_PEERCRED: who connected */
	pid_t exe_pid;     /* the pid exe was read for */
	char exe[320];     /* "exe":... members for the peer (client_exe) */
};

/* The bytes a non-root uid may still have spooled: [spoold]
   max_bytes_per_sec_per_uid a second, at most one second's worth saved up. */
struct uid_bucket {
	uid_t uid;
	int64_t tokens;
};

struct spoold {
	struct mf_config *cfg;
	const char *config_path;
	char *node;
	struct mf_spool_writer *spool;
	bool sync, verbose;
	int listen_fd;
	struct client *clients;
	size_t nclients, cap;
	int64_t max_per_uid;
	int64_t uid_rate; /* [spoold] max_bytes_per_sec_per_uid */
	struct uid_bucket *buckets;
	size_t nbuckets;
	int64_t refilled_us; /* when the buckets were last filled */
	char *buf;           /* one message */
	char *rec;           /* the record written */
	size_t rec_cap;      /* its size */
};

static void on_signal(int sig)
{
	(void)sig;
	got_term = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mailfort-spoold [-c CONFIG] [-f] [-v] [--check-config]\n"
	           "  -c, --config PATH  configuration file (default " MF_CONFIG_DEFAULT_PATH ")\n"
	           "  -f, --foreground   stay in the foreground, log to stderr\n"
	           "  -v, --verbose      log every connection\n"
	           "      --check-config check the configuration, the spool and the socket's\n"
	           "                     directory, then exit (0: fine)\n");
}

/* Bind the socket: mode 0660, group [spoold] group (only root can give it
   away; any other user keeps its own group). */
static int spoold_listen(struct spoold *d, struct mf_error *err)
{
	const char *path = mf_config_str(d->cfg, "spool", "socket");
	const char *group = mf_config_str(d->cfg, "spoold", "group");
	struct sockaddr_un sun;
	struct stat st;
	struct group *gr;
	char dir[sizeof(sun.sun_path)], *slash;
	int fd, on = 1;

	if (strlen(path) >= sizeof(sun.sun_path))
		return mf_error_set(err, "[spool] socket %s: path too long", path);
	memcpy(dir, path, strlen(path) + 1);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return mf_error_set(err, "[spool] socket %s: cannot create %s: %s", path,
			                    dir, strerror(errno));
	}
	/* A socket left by a previous run (never any other kind of file). */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return mf_error_set(err, "[spool] socket %s: exists and is not a socket",
			                    path);
		(void)unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mf_error_set(err, "[spool] socket %s: %s", path, strerror(errno));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* Accepted sockets inherit SO_PASSCRED: every message carries its
	   sender's credentials. */
	(void)setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 512) < 0 ||
	    chmod(path, 0660) < 0) {
		int e = errno;

		close(fd);
		return mf_error_set(err, "[spool] socket %s: %s", path, strerror(e));
	}
	if (group != NULL && *group != '\0' && geteuid() == 0) {
		gr = getgrnam(group);
		if (gr == NULL) {
			close(fd);
			return mf_error_set(err, "[spoold] group %s: no such group", group);
		}
		if (chown(path, 0, gr->gr_gid) < 0) {
			int e = errno;

			close(fd);
			return mf_error_set(err, "[spool] socket %s: chown: %s", path, strerror(e));
		}
	}
	d->listen_fd = fd;
	return 0;
}

static void client_drop(struct spoold *d, size_t i, const char *why)
{
	struct client *c = &d->clients[i];

	if (why != NULL)
		mf_log_warn("producer uid %u pid %d: connection closed: %s", (unsigned)c->cred.uid,
		            (int)c->cred.pid, why);
	close(c->fd);
	d->clients[i] = d->clients[--d->nclients];
}

/* uid holds its [spoold] max_clients_per_uid connections and pid of it
   asks for another: the index of the connection to close for it, one of
   the pid that holds the most (if it holds more than one and is not pid
   itself), or -1: the newcomer is refused.  A Dovecot process holds one
   connection: a process that hoards them loses them to its uid's others. */
static ssize_t spoold_evictee(const struct spoold *d, uid_t uid, pid_t pid)
{
	ssize_t best = -1;
	size_t best_n = 1;

	for (size_t i = 0; i < d->nclients; i++) {
		size_t n = 0;

		if (d->clients[i].cred.uid != uid || d->clients[i].cred.pid == pid ||
		    (best >= 0 && d->clients[best].cred.pid == d->clients[i].cred.pid))
			continue;
		for (size_t k = 0; k < d->nclients; k++)
			n += d->clients[k].cred.uid == uid &&
			     d->clients[k].cred.pid == d->clients[i].cred.pid;
		if (n > best_n) {
			best = (ssize_t)i;
			best_n = n;
		}
	}
	return best;
}

static void spoold_accept(struct spoold *d)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	size_t same = 0;
	int fd, on = 1;

	for (;;) {
		fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				mf_log_error("accept: %s", strerror(errno));
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
			mf_log_error("SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
		same = 0;
		for (size_t i = 0; i < d->nclients; i++)
			same += d->clients[i].cred.uid == cred.uid;
		if (cred.uid != 0 && (int64_t)same >= d->max_per_uid) {
			ssize_t victim = spoold_evictee(d, cred.uid, cred.pid);

			if (victim < 0) {
				mf_log_warn(
				    "producer uid %u pid %d: refused: the uid already holds "
				    "%zu connections ([spoold] max_clients_per_uid), one "
				    "per process",
				    (unsigned)cred.uid, (int)cred.pid, same);
				close(fd);
				continue;
			}
			client_drop(d, (size_t)victim,
			            "its uid holds [spoold] max_clients_per_uid connections, this "
			            "process the most: one goes to a new process of the uid");
		}
		if (d->nclients == d->cap) {
			size_t cap = d->cap == 0 ? 64 : d->cap * 2;
			struct client *n = reallocarray(d->clients, cap, sizeof(*n));

			if (n == NULL) {
				mf_log_error("out of memory: connection refused");
				close(fd);
				continue;
			}
			d->clients = n;
			d->cap = cap;
		}
		memset(&d->clients[d->nclients], 0, sizeof(d->clients[0]));
		d->clients[d->nclients].fd = fd;
		d->clients[d->nclients].cred = cred;
		d->nclients++;
		if (d->verbose)
			mf_log_info("producer connected: uid %u gid %u pid %d", (unsigned)cred.uid,
			            (unsigned)cred.gid, (int)cred.pid);
	}
}

/* How the sender is named beside its uid: "exe":"<path>" from
   /proc/PID/exe, read again only when the pid changes.  Running as an
   unprivileged user the receiver may not read another user's exe link:
   then "exe":null and "comm", the process's name (which the process can
   set itself: a hint, not an attestation). */
static const char *client_exe(struct client *c, pid_t pid)
{
	char path[64], exe[256], *q;
	ssize_t n;
	int fd;

	if (c->exe_pid == pid)
		return c->exe;
	c->exe_pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		q = mf_json_quote(exe, (size_t)n);
		snprintf(c->exe, sizeof(c->exe), "\"exe\":%s", q != NULL ? q : "null");
		free(q);
		return c->exe;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, exe, 64) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0 && exe[n - 1] == '\n')
		n--;
	q = n > 0 ? mf_json_quote(exe, (size_t)n) : NULL;
	snprintf(c->exe, sizeof(c->exe), "\"exe\":null,\"comm\":%s", q != NULL ? q : "null");
	free(q);
	return c->exe;
}

/* What the scan of a submitted event found at its top level. */
struct top_scan {
	size_t members;
	const char *forbidden; /* why the event may not be passed on as it is */
};

static void note_member(void *context, const struct mf_json_member *m)
{
	struct top_scan *t = context;

	t->members++;
	if (m->key_escaped)
		t->forbidden = "a member name with an escape";
	else if (m->key_len == 4 && memcmp(m->key, "peer", 4) == 0)
		t->forbidden = "a \"peer\" member of its own (only the receiver sets it)";
	else if (m->key_len == 4 && memcmp(m->key, "type", 4) == 0 &&
	         (m->value_escaped || (m->value_len >= 2 && m->value[0] == '"' &&
	                               mf_submit_type_reserved(m->value + 1, m->value_len - 2))))
		t->forbidden = m->value_escaped ? "a \"type\" with an escape"
		                                : "a \"type\" only the audit daemons write";
}

static void rec_reserve(struct spoold *d, size_t len)
{
	char *n;

	if (len <= d->rec_cap)
		return;
	n = realloc(d->rec, len);
	if (n == NULL) {
		mf_log_error("out of memory (%zu bytes)", len);
		abort();
	}
	d->rec = n;
	d->rec_cap = len;
}

/* Spool one record; 0 or -1 with err. */
static int spoold_write(struct spoold *d, const char *rec, size_t len, struct mf_error *err)
{
	if (mf_spool_append(d->spool, rec, len, d->sync, err) < 0) {
		mf_log_error("%s", err->msg);
		return -1;
	}
	return 0;
}

/* A record the producer may not pass on as it is: spooled as a "refused"
   event (with why, the sender and the text it sent), which mailfort-auditd
   stores as it is and alerts on; the producer is told why. */
static int spoold_wrap(struct spoold *d, const char *why, const char *peer, const char *msg,
                       size_t len, struct mf_error *err)
{
	struct mf_event *ev = mf_event_new("refused", d->node);
	const char *json;
	size_t jlen;
	int ret;
	char wpeer[800];
	size_t plen = strlen(peer);

	/* "wrapped": true in the peer tells mailfort-auditd that this refused
	   event is the receiver's own; a producer cannot set "peer" */
	snprintf(wpeer, sizeof(wpeer), "%.*s,\"wrapped\":true}", (int)(plen - 1), peer);
	mf_event_add_str(ev, "reason", why);
	mf_event_add_strn(ev, "raw", msg, len < SPOOLD_RAW_MAX ? len : SPOOLD_RAW_MAX);
	if (len > SPOOLD_RAW_MAX)
		mf_event_add_int(ev, "raw_length", (int64_t)len);
	mf_event_add_json(ev, "peer", wpeer);
	json = mf_event_json(ev, &jlen);
	if (json == NULL)
		ret = mf_error_set(err, "out of memory");
	else
		ret = spoold_write(d, json, jlen, err);
	mf_event_free(&ev);
	if (ret == 0)
		mf_error_set(err, "%s", why);
	return -1;
}

/* Handle one message: its answer goes to err (empty when spooled). */
static int spoold_event(struct spoold *d, struct client *c, const struct ucred *cred, size_t len,
                        const char *refuse, struct mf_error *err)
{
	char peer[768], now[28];
	struct top_scan top = {0, NULL};
	struct mf_json_scan scan;
	const char *p = d->buf;
	size_t plen;
	int n;

	mf_event_time_now(now);
	n = snprintf(peer, sizeof(peer), "{\"uid\":%u,\"gid\":%u,\"pid\":%d,%s,\"time\":\"%s\"}",
	             (unsigned)cred->uid, (unsigned)cred->gid, (int)cred->pid,
	             client_exe(c, cred->pid), now);
	plen = n > 0 && (size_t)n < sizeof(peer) ? (size_t)n : 0;
	if (plen == 0)
		return mf_error_set(err, "cannot describe the sender");
	peer[plen] = '\0';
	if (refuse != NULL)
		return spoold_wrap(d, refuse, peer, p, len, err);
	memset(&scan, 0, sizeof(scan));
	scan.member = note_member;
	scan.context = &top;
	if (len < 2 || p[0] != '{' || p[len - 1] != '}' || mf_json_scan(p, len, &scan) < 0)
		return spoold_wrap(d, "not one JSON object", peer, p, len, err);
	if (top.forbidden != NULL)
		return spoold_wrap(d, top.forbidden, peer, p, len, err);
	/* The event with ,"peer":{...} before its closing brace. */
	rec_reserve(d, len + plen + 16);
	memcpy(d->rec, p, len - 1);
	n = snprintf(d->rec + len - 1, plen + 16, "%s\"peer\":%s}", top.members > 0 ? "," : "",
	             peer);
	return spoold_write(d, d->rec, len - 1 + (size_t)n, err);
}

/* Why a message is kept as refused whatever it holds: cut short, or with
   ancillary data that did not fit beside the credentials (descriptors
   sent along: the credentials may be missing).  NULL: neither. */
static const char *msg_refusal(int flags)
{
	if ((flags & MSG_TRUNC) != 0)
		return "event larger than the socket carries";
	if ((flags & MSG_CTRUNC) != 0)
		return "ancillary data beyond the sender's credentials";
	return NULL;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* uid's bucket (a new one is full). */
static struct uid_bucket *uid_bucket(struct spoold *d, uid_t uid)
{
	struct uid_bucket *n;

	for (size_t i = 0; i < d->nbuckets; i++)
		if (d->buckets[i].uid == uid)
			return &d->buckets[i];
	n = reallocarray(d->buckets, d->nbuckets + 1, sizeof(*n));
	if (n == NULL) {
		mf_log_error("out of memory");
		abort();
	}
	d->buckets = n;
	n[d->nbuckets].uid = uid;
	n[d->nbuckets].tokens = d->uid_rate;
	return &n[d->nbuckets++];
}

/* Add what the time since the last call allows; returns the microseconds
   until the emptiest bucket holds a byte again (0: none is empty). */
static int64_t buckets_refill(struct spoold *d)
{
	int64_t now = now_us(), dt = now - d->refilled_us, wait = 0;

	d->refilled_us = now;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct uid_bucket *b = &d->buckets[i];

		if (dt > 0)
			b->tokens += dt >= 1000000 ? d->uid_rate : d->uid_rate * dt / 1000000;
		if (b->tokens > d->uid_rate)
			b->tokens = d->uid_rate;
		if (b->tokens <= 0) {
			int64_t w = (1 - b->tokens) * 1000000 / d->uid_rate + 1;

			if (w > wait)
				wait = w;
		}
	}
	return wait;
}

/* Whether a connection of uid is read this round. */
static bool uid_may_send(struct spoold *d, uid_t uid)
{
	return uid == 0 || uid_bucket(d, uid)->tokens > 0;
}

/* Read what a client sent (at most a burst); false when it is gone. */
static bool spoold_serve(struct spoold *d, struct client *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct mf_error err;
	char ans[MF_ERROR_MAX + 1];
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	struct ucred cred;
	size_t alen;
	ssize_t n;

	if (!uid_may_send(d, c->cred.uid))
		return true; /* its uid used its rate up earlier this round */
	for (int i = 0; i < SPOOLD_BURST; i++) {
		iov.iov_base = d->buf;
		iov.iov_len = MF_SUBMIT_MAX_EVENT + 1;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return false;
		/* The sender at the time of sending (after a setuid or a
		   fork the connection's own credentials may be stale). */
		cred = c->cred;
		for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS &&
			    cm->cmsg_len >= CMSG_LEN(sizeof(cred)))
				memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
			else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				/* descriptors are not part of the protocol */
				int *fds = (int *)CMSG_DATA(cm);
				size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (size_t k = 0; k < nfd; k++)
					close(fds[k]);
			}
		}
		if (spoold_event(d, c, &cred,
		                 (size_t)n > MF_SUBMIT_MAX_EVENT ? MF_SUBMIT_MAX_EVENT : (size_t)n,
		                 msg_refusal(mh.msg_flags), &err) == 0) {
			ans[0] = MF_SUBMIT_OK;
			alen = 1;
		} else {
			ans[0] = MF_SUBMIT_ERR;
			alen = strlen(err.msg);
			memcpy(ans + 1, err.msg, alen);
			alen++;
		}
		/* A producer that does not read its answers loses its
		   connection, not the others their turn. */
		if (send(c->fd, ans, alen, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)alen)
			return false;
		/* any uid but root: one event a round, within its byte rate */
		if (cred.uid != 0) {
			uid_bucket(d, cred.uid)->tokens -= (int64_t)n;
			break;
		}
	}
	return true;
}

static int spoold_loop(struct spoold *d)
{
	struct pollfd *pfds = NULL;
	size_t cap = 0, n, i;
	int64_t wait_us;
	int rc;

	while (!got_term) {
		n = d->nclients + 1;
		if (n > cap) {
			cap = n * 2;
			free(pfds);
			pfds = calloc(cap, sizeof(*pfds));
			if (pfds == NULL) {
				mf_log_error("out of memory");
				return -1;
			}
		}
		pfds[0].fd = d->listen_fd;
		pfds[0].events = POLLIN;
		wait_us = buckets_refill(d);
		for (i = 0; i < d->nclients; i++) {
			/* a uid past its byte rate waits (poll skips a
			   negative fd): its events stay in the socket, its
			   producers wait, nothing is lost */
			pfds[i + 1].fd =
			    uid_may_send(d, d->clients[i].cred.uid) ? d->clients[i].fd : -1;
			pfds[i + 1].events = POLLIN;
			pfds[i + 1].revents = 0;
		}
		rc = poll(pfds, n, wait_us > 0 ? (int)(wait_us / 1000 + 1) : -1);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			mf_log_error("poll: %s", strerror(errno));
			free(pfds);
			return -1;
		}
		/* Clients from the end, so that dropping one (moving the last
		   into its place) leaves the rest of pfds valid. */
		for (i = n - 1; i >= 1; i--) {
			if (pfds[i].revents == 0)
				continue; /* nothing, or its uid waits */
			if (!spoold_serve(d, &d->clients[i - 1]))
				client_drop(d, i - 1, NULL);
		}
		if (pfds[0].revents & POLLIN)
			spoold_accept(d);
	}
	free(pfds);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},      {"check-config", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	struct spoold d;
	struct mf_error err;
	struct sigaction sa;
	bool foreground = false, check = false;
	const char *dir;
	int c, rc;

	memset(&d, 0, sizeof(d));
	d.listen_fd = -1;
	d.config_path = MF_CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:fvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'v':
			d.verbose = true;
			break;
		case 'C':
			check = true;
			foreground = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (foreground) {
		mf_log_set_handler(mf_log_handler_stderr, NULL);
	} else {
		openlog("mailfort-spoold", LOG_PID, LOG_DAEMON);
		mf_log_set_handler(mf_log_handler_syslog, NULL);
	}
	d.cfg = mf_config_load(d.config_path, &err);
	if (d.cfg == NULL) {
		fprintf(stderr, "mailfort-spoold: %s\n", err.msg);
		return 1;
	}
	dir = mf_config_str(d.cfg, "spool", "dir");
	d.node = mf_config_node(d.cfg);
	d.sync = mf_config_bool(d.cfg, "spool", "sync");
	d.max_per_uid = mf_config_int(d.cfg, "spoold", "max_clients_per_uid");
	d.uid_rate = mf_config_int(d.cfg, "spoold", "max_bytes_per_sec_per_uid");
	d.refilled_us = now_us();
	d.buf = malloc(MF_SUBMIT_MAX_EVENT + 1);
	if (d.node == NULL || d.buf == NULL) {
		fprintf(stderr, "mailfort-spoold: out of memory\n");
		return 1;
	}
	if (check) {
		const char *user = mf_config_str(d.cfg, "spoold", "user");
		const char *group = mf_config_str(d.cfg, "spoold", "group");

		if (user != NULL && *user != '\0' && getpwnam(user) == NULL) {
			fprintf(stderr, "mailfort-spoold: [spoold] user %s: no such user\n", user);
			return 1;
		}
		if (group != NULL && *group != '\0' && getgrnam(group) == NULL) {
			fprintf(stderr, "mailfort-spoold: [spoold] group %s: no such group\n",
			        group);
			return 1;
		}
		printf("mailfort-spoold: configuration %s is valid (spool %s, socket %s)\n",
		       d.config_path, dir, mf_config_str(d.cfg, "spool", "socket"));
		return 0;
	}
	if (spoold_listen(&d, &err) < 0 ||
	    mf_become_user("spoold", mf_config_str(d.cfg, "spoold", "user"), &err) < 0 ||
	    (d.spool = mf_spool_writer_open(dir, &err)) == NULL) {
		fprintf(stderr, "mailfort-spoold: %s\n", err.msg);
		mf_log_error("%s", err.msg);
		return 1;
	}
	if (!foreground &&
	    (mf_daemonize(&err) < 0 ||
	     mf_pidfile_write(mf_config_str(d.cfg, "spoold", "pidfile"), &err) < 0)) {
		mf_log_error("%s", err.msg);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	mf_log_info("started: spool %s, socket %s", dir, mf_config_str(d.cfg, "spool", "socket"));
	rc = spoold_loop(&d);
	mf_log_info("stopped");
	while (d.nclients > 0)
		client_drop(&d, d.nclients - 1, NULL);
	close(d.listen_fd);
	/* producers see at once that nobody receives (we may lack the right
	   to remove it after giving up root: then it stays, refusing) */
	(void)unlink(mf_config_str(d.cfg, "spool", "socket"));
	mf_spool_writer_close(&d.spool);
	mf_config_free(&d.cfg);
	free(d.clients);
	free(d.buf);
	free(d.rec);
	free(d.node);
	return rc < 0 ? 1 : 0;
}
