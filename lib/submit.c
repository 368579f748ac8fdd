/*
 * submit.c - send audit events to mailfort-spoold (mf-submit.h).
 *
 * A SOCK_SEQPACKET connection keeps message boundaries, so an event is one
 * send(2) and its answer one recv(2).  The sender's identity is not sent:
 * the receiver takes it from the kernel (SO_PASSCRED), so a producer cannot
 * claim to be another.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "mf-config.h"
#include "mf-submit.h"

struct mf_submit {
	pthread_mutex_t mutex;
	char *path;
	unsigned timeout_ms;
	int fd;    /* -1: not connected */
	pid_t pid; /* the process that connected fd */
	/* the event sent last, until its answer is in (resent if the
	   connection breaks first) */
	char *pending;
	size_t pending_len, pending_cap;
	bool has_pending;
};

static int64_t submit_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int submit_connect(struct mf_submit *s, struct mf_error *err)
{
	struct sockaddr_un sun;
	struct timeval tv;
	int fd, buf = MF_SUBMIT_MAX_EVENT + 4096;

	if (strlen(s->path) >= sizeof(sun.sun_path))
		return mf_error_set(err, "event socket %s: path too long", s->path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mf_error_set(err, "event socket %s: socket: %s", s->path, strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	/* connect(2) on a unix socket waits only when the backlog is full. */
	tv.tv_sec = s->timeout_ms / 1000;
	tv.tv_usec = (s->timeout_ms % 1000) * 1000;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		return mf_error_set(
		    err, "event socket %s: cannot connect (is mailfort-spoold running?): %s",
		    s->path, strerror(e));
	}
	s->fd = fd;
	s->pid = getpid();
	return 0;
}

static void submit_disconnect(struct mf_submit *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

struct mf_submit *mf_submit_open(const char *socket_path, unsigned timeout_ms, struct mf_error *err)
{
	struct mf_submit *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->path = strdup(socket_path)) == NULL) {
		free(s);
		mf_error_set(err, "event socket %s: out of memory", socket_path);
		return NULL;
	}
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	s->fd = -1;
	pthread_mutex_init(&s->mutex, NULL);
	if (submit_connect(s, err) < 0) {
		mf_submit_close(&s);
		return NULL;
	}
	return s;
}

struct mf_submit *mf_submit_open_config(const struct mf_config *cfg, struct mf_error *err)
{
	return mf_submit_open(mf_config_str(cfg, "spool", "socket"),
	                      (unsigned)mf_config_int(cfg, "spool", "submit_timeout_ms"), err);
}

void mf_submit_close(struct mf_submit **sp)
{
	struct mf_submit *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->fd >= 0)
		close(s->fd); /* after fork(2): only our copy */
	pthread_mutex_destroy(&s->mutex);
	free(s->pending);
	free(s->path);
	free(s);
}

/* Wait for the answer to the event just sent: 0, or -1 with err. */
static int submit_answer(struct mf_submit *s, const struct timespec *deadline, bool *refused_r,
                         bool *timeout_r, struct mf_error *err)
{
	char ans[512];
	struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
	int64_t left;
	ssize_t n;
	int rc;

	for (bool first = true;; first = false) {
		/* The answer is usually there already (the events of a mail
		   session are collected one later): no poll then. */
		if (!first) {
			left = submit_ms_left(deadline);
			if (left <= 0) {
				*timeout_r = true;
				return mf_error_set(
				    err,
				    "event socket %s: no answer from the receiver within %u ms",
				    s->path, s->timeout_ms);
			}
			rc = poll(&pfd, 1, (int)left);
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc < 0)
				return mf_error_set(err, "event socket %s: poll: %s", s->path,
				                    strerror(errno));
			if (rc == 0)
				continue;
		}
		n = recv(s->fd, ans, sizeof(ans) - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return mf_error_set(err, "event socket %s: %s", s->path, strerror(errno));
		if (n == 0)
			return mf_error_set(
			    err, "event socket %s: the receiver closed the connection", s->path);
		if (ans[0] == MF_SUBMIT_OK)
			return 0;
		ans[n] = '\0';
		*refused_r = true;
		return mf_error_set(err, "event socket %s: event refused: %s", s->path,
		                    ans[0] == MF_SUBMIT_ERR ? ans + 1 : "malformed answer");
	}
}

static void submit_deadline(const struct mf_submit *s, struct timespec *deadline)
{
	clock_gettime(CLOCK_MONOTONIC, deadline);
	deadline->tv_sec += s->timeout_ms / 1000;
	deadline->tv_nsec += (long)(s->timeout_ms % 1000) * 1000000L;
	if (deadline->tv_nsec >= 1000000000L) {
		deadline->tv_sec++;
		deadline->tv_nsec -= 1000000000L;
	}
}

/* Send one message, connecting (once more after a broken connection) as
   needed.  0, or -1 with err. */
static int submit_put(struct mf_submit *s, const void *payload, size_t len, struct mf_error *err)
{
	ssize_t n;
	int e;

	for (int tries = 0; tries < 2; tries++) {
		if (s->fd < 0 && submit_connect(s, err) < 0)
			return -1;
		do
			n = send(s->fd, payload, len, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n >= 0)
			return 0;
		e = errno;
		if (e == EMSGSIZE)
			return mf_error_set(
			    err, "event socket %s: event of %zu bytes does not fit the socket",
			    s->path, len);
		mf_error_set(err, "event socket %s: cannot send: %s", s->path, strerror(e));
		submit_disconnect(s);
		if (e == EAGAIN || e == EWOULDBLOCK)
			return -1; /* timed out: the receiver is stuck */
	}
	return -1;
}

/* Keep a copy of the event just sent until its answer is in. */
static int submit_keep(struct mf_submit *s, const void *payload, size_t len, struct mf_error *err)
{
	char *n;

	if (len + 32 > s->pending_cap) {
		n = realloc(s->pending, len + 32);
		if (n == NULL)
			return mf_error_set(err, "event socket %s: out of memory", s->path);
		s->pending = n;
		s->pending_cap = len + 32;
	}
	memcpy(s->pending, payload, len);
	s->pending_len = len;
	s->has_pending = true;
	return 0;
}

/*
 * Wait for the answer to the event sent last, if it is not in yet.  When
 * the connection broke first (the receiver restarted), the event is sent
 * once more on a new connection, marked "resent": true (the receiver may
 * have spooled it before it went away; a duplicate is better than a loss),
 * and its answer waited for.  An answer that does not come in time is an
 * error at once (a stuck receiver would not answer the copy either).
 */
static int submit_settle(struct mf_submit *s, struct mf_error *err)
{
	struct timespec deadline;
	bool refused = false, timeout = false;
	int ret;

	if (!s->has_pending)
		return 0;
	submit_deadline(s, &deadline);
	ret = s->fd >= 0 ? submit_answer(s, &deadline, &refused, &timeout, err)
	                 : mf_error_set(err, "event socket %s: not connected", s->path);
	if (ret < 0 && timeout)
		submit_disconnect(s); /* a late answer must not be taken for the next */
	else if (ret < 0 && !refused) {
		submit_disconnect(s);
		if (s->pending_len > 0 && s->pending[s->pending_len - 1] == '}' &&
		    s->pending_len > 2) {
			memcpy(s->pending + s->pending_len - 1, ",\"resent\":true}", 15);
			s->pending_len += 14;
		}
		submit_deadline(s, &deadline);
		ret = submit_put(s, s->pending, s->pending_len, err);
		if (ret == 0)
			ret = submit_answer(s, &deadline, &refused, &timeout, err);
		if (ret < 0 && !refused)
			submit_disconnect(s);
	}
	s->has_pending = false;
	return ret;
}

/* The common part of mf_submit_send and mf_submit_send_nowait. */
static int submit_send(struct mf_submit *s, const void *payload, size_t len, bool wait,
                       struct mf_error *err)
{
	struct mf_error earlier;
	int ret, settled;

	if (len > MF_SUBMIT_MAX_EVENT)
		return mf_error_set(err,
		                    "event socket %s: event of %zu bytes is larger than %u bytes",
		                    s->path, len, (unsigned)MF_SUBMIT_MAX_EVENT);
	pthread_mutex_lock(&s->mutex);
	if (s->fd >= 0 && s->pid != getpid()) {
		/* Forked: the connection (and the event waiting for its
		   answer) is the parent's; answers would go to whichever
		   process reads first. */
		close(s->fd);
		s->fd = -1;
		s->has_pending = false;
	}
	settled = submit_settle(s, &earlier);
	ret = submit_put(s, payload, len, err);
	if (ret == 0)
		ret = submit_keep(s, payload, len, err);
	if (ret == 0 && wait)
		ret = submit_settle(s, err);
	if (ret == 0 && settled < 0) {
		*err = earlier;
		ret = mf_error_prefix(err, "an earlier event");
	}
	pthread_mutex_unlock(&s->mutex);
	return ret;
}

int mf_submit_send(struct mf_submit *s, const void *payload, size_t len, struct mf_error *err)
{
	return submit_send(s, payload, len, true, err);
}

int mf_submit_send_nowait(struct mf_submit *s, const void *payload, size_t len,
                          struct mf_error *err)
{
	return submit_send(s, payload, len, false, err);
}

int mf_submit_flush(struct mf_submit *s, struct mf_error *err)
{
	int ret;

	pthread_mutex_lock(&s->mutex);
	if (s->fd >= 0 && s->pid != getpid()) {
		close(s->fd);
		s->fd = -1;
		s->has_pending = false;
	}
	ret = submit_settle(s, err);
	pthread_mutex_unlock(&s->mutex);
	return ret;
}

bool mf_submit_type_reserved(const char *type, size_t len)
{
	static const char *const daemon_types[] = {"refused", "quarantined", "invalid",
	                                           "spool_damage"};

	for (size_t i = 0; i < MF_N_ELEMENTS(daemon_types); i++)
		if (strlen(daemon_types[i]) == len && memcmp(daemon_types[i], type, len) == 0)
			return true;
	return false;
}
