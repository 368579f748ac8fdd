/*
 * mailfort-milter - spam scoring and attachment policy for Postfix.
 *
 * SYNOPSIS
 *   mailfort-milter [-c FILE] [-f] [--check-config]
 *
 * Reads the [milter] section of mailfort.conf (default MF_CONFIG_DEFAULT_PATH),
 * listens on its socket for Postfix (smtpd_milters / non_smtpd_milters) and
 * judges every message: spam score and X-Spam headers, hold or reject above
 * the thresholds, attachment limits and blocked types, and one verdict
 * event per message in the audit spool.
 *
 * Process layout: a small supervisor (the process started, which detaches
 * unless -f) runs the milter in a child and restarts it if it ever dies.
 * The milter process takes SIGHUP as "stop" (as libmilter milters do), so
 * the supervisor turns SIGHUP
 * into SIGUSR1 for the child, which re-reads the configuration and reloads
 * the model without dropping a session.  SIGTERM/SIGINT stop both.
 *
 * --check-config loads and checks the file and exits 0 (prints nothing) or
 * 1 with the reason.  Exit status otherwise: 0 after a clean stop, 1 when
 * start-up failed (the reason is logged and printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-daemon.h"
#include "mf-log.h"
#include "milter.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mailfort-milter [-c FILE] [-f] [--check-config]\n"
	        "  -c, --config FILE   configuration file (default %s)\n"
	        "  -f, --foreground    do not detach; log to stderr\n"
	        "      --check-config  check the configuration and exit\n",
	        MF_CONFIG_DEFAULT_PATH);
}

static const char *unix_path(const char *sock)
{
	if (strncmp(sock, "unix:", 5) == 0)
		return sock + 5;
	if (strncmp(sock, "local:", 6) == 0)
		return sock + 6;
	return NULL;
}

/* The group of a unix socket, or -1 (none, or unknown: socket_access
   reports it). */
static gid_t socket_gid(const struct mf_policy *pol)
{
	struct group *gr;

	if (unix_path(pol->socket) == NULL || pol->socket_group[0] == '\0')
		return (gid_t)-1;
	gr = getgrnam(pol->socket_group);
	return gr != NULL ? gr->gr_gid : (gid_t)-1;
}

/* A unix socket gets its mode and group (Postfix's) before anybody can
   connect through a wrong one: any local user who can connect could send
   mail past the policy and write verdict records. */
static int socket_access(const struct mf_policy *pol, struct mf_error *err)
{
	const char *path = unix_path(pol->socket);
	struct group *gr;

	if (path == NULL)
		return 0;
	if (chmod(path, pol->socket_mode) < 0)
		return mf_error_set(err, "cannot chmod %s: %s", path, strerror(errno));
	if (pol->socket_group[0] == '\0')
		return 0;
	gr = getgrnam(pol->socket_group);
	if (gr == NULL)
		return mf_error_set(err, "[milter] socket_group: no such group '%s'",
		                    pol->socket_group);
	if (chown(path, (uid_t)-1, gr->gr_gid) < 0)
		return mf_error_set(err,
		                    "cannot give %s to group %s: %s (start as root, or as a member "
		                    "of that group)",
		                    path, pol->socket_group, strerror(errno));
	return 0;
}

/* The socket goes to the milter's user first: Postfix connects to it and
   the milter removes it when it ends. */
static int drop_privileges(const char *user, const char *sock, bool keep_group,
                           struct mf_error *err)
{
	struct passwd *pw;
	const char *path = unix_path(sock);

	if (user[0] == '\0' || geteuid() != 0 || strcmp(user, "root") == 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL)
		return mf_error_set(err, "[milter] user: no such user '%s'", user);
	if (path != NULL && chown(path, pw->pw_uid, keep_group ? (gid_t)-1 : pw->pw_gid) < 0)
		return mf_error_set(err, "cannot chown %s: %s", path, strerror(errno));
	return mf_become_user("milter", user, err);
}

/* The milter proper; returns the exit status. */
static int child_main(const char *config_path)
{
	struct milter_state st;
	struct mf_error err;
	sigset_t stop;
	mode_t old;
	int ret = 1, fd = -1, rc;
	gid_t sock_gid, saved_gid;

	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	/* Taken by milter_proto_run's stop thread; blocked before any other
	   thread starts so that none of them gets one. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGHUP);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (milter_state_init(&st, config_path, &err) < 0) {
		mf_log_error("%s", err.msg);
		return 1;
	}
	milter_callbacks_bind(&st);
	/* made with its group and mode, not changed to them after a moment in
	   which another user could connect */
	sock_gid = socket_gid(st.policy);
	saved_gid = getegid();
	if (sock_gid != (gid_t)-1 && setegid(sock_gid) < 0)
		sock_gid = (gid_t)-1; /* not allowed: socket_access changes it */
	old = umask(0777 & ~st.policy->socket_mode);
	fd = milter_proto_listen(st.policy->socket, &err);
	umask(old);
	if (sock_gid != (gid_t)-1 && setegid(saved_gid) < 0) {
		mf_log_error("cannot return to group %u: %s", (unsigned)saved_gid, strerror(errno));
		goto out;
	}
	if (fd < 0) {
		mf_log_error("%s (is the directory there, is another milter running?)", err.msg);
		goto out;
	}
	if (socket_access(st.policy, &err) < 0 ||
	    drop_privileges(st.policy->user, st.policy->socket, st.policy->socket_group[0] != '\0',
	                    &err) < 0 ||
	    milter_state_open_spool(&st, &err) < 0) {
		mf_log_error("%s", err.msg);
		goto out;
	}
	milter_state_refresh_now(&st);
	if (milter_state_start_threads(&st, &err) < 0) {
		mf_log_error("%s", err.msg);
		goto out;
	}
	mf_log_info("listening on %s", st.policy->socket);
	rc = milter_proto_run(fd, milter_callbacks_desc(), st.policy->timeout, &err);
	if (rc < 0)
		mf_log_error("%s", err.msg);
	if (rc == 1) {
		/* sessions still hold the shared state: leave it to the exit */
		mf_log_info("stopped");
		_exit(0);
	}
	ret = rc == 0 ? 0 : 1;
	milter_state_stop_threads(&st);
	mf_log_info("stopped");
out:
	if (fd >= 0)
		close(fd);
	milter_state_deinit(&st);
	return ret;
}

static pid_t start_child(const char *config_path)
{
	pid_t pid = fork();

	if (pid == 0) {
		int rc = child_main(config_path);

		g_mime_shutdown();
		_exit(rc);
	}
	return pid;
}

/* Run the child, restart it when it dies, forward signals. */
static int supervise(const char *config_path, const char *pid_file)
{
	struct sigaction sa;
	struct mf_error err;
	pid_t child;
	time_t started;
	int status, failures = 0;
	bool stopping = false;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (mf_pidfile_write(pid_file, &err) < 0)
		mf_log_warn("%s", err.msg);
	for (;;) {
		started = time(NULL);
		child = start_child(config_path);
		if (child < 0) {
			mf_log_error("cannot fork: %s", strerror(errno));
			return 1;
		}
		for (;;) {
			int sig = got_signal;
			pid_t w;

			/* a signal that came before waitpid started is seen here */
			if (sig != 0) {
				got_signal = 0;
				if (sig == SIGHUP) {
					kill(child, SIGUSR1);
				} else if (sig == SIGTERM || sig == SIGINT) {
					stopping = true;
					kill(child, SIGTERM);
				}
			}
			w = waitpid(child, &status, 0);
			if (w == child)
				break;
			if (w < 0 && errno != EINTR) {
				mf_log_error("waitpid: %s", strerror(errno));
				return 1;
			}
		}
		if (stopping || got_signal == SIGTERM || got_signal == SIGINT ||
		    (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		    (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
			break;
		if (time(NULL) - started < 10)
			failures++;
		else
			failures = 0;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && failures >= 3) {
			mf_log_error("the milter keeps failing to start; giving up");
			if (pid_file[0])
				unlink(pid_file);
			return 1;
		}
		mf_log_error("the milter process ended (%s %d); restarting",
		             WIFSIGNALED(status) ? "signal" : "status",
		             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		sleep(failures > 0 ? 1 : 0);
	}
	if (pid_file[0])
		unlink(pid_file);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"foreground", no_argument, NULL, 'f'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = MF_CONFIG_DEFAULT_PATH;
	bool foreground = false, check = false;
	struct mf_config *cfg;
	struct mf_policy *pol;
	struct mf_error err;
	char *pid_file;
	int c, ret;

	while ((c = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'C':
			check = true;
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
	mf_log_set_handler(mf_log_handler_stderr, NULL);
	cfg = mf_config_load(config_path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "mailfort-milter: %s\n", err.msg);
		return 1;
	}
	pol = mf_policy_new(cfg, &err);
	if (pol == NULL) {
		fprintf(stderr, "mailfort-milter: %s: %s\n", config_path, err.msg);
		mf_config_free(&cfg);
		return 1;
	}
	pid_file = strdup(pol->pid_file);
	mf_policy_unref(&pol);
	mf_config_free(&cfg);
	if (check || pid_file == NULL) {
		free(pid_file);
		return check ? 0 : 1;
	}
	if (mf_crypto_init(&err) < 0) {
		fprintf(stderr, "mailfort-milter: %s\n", err.msg);
		free(pid_file);
		return 1;
	}
	g_mime_init();
	if (!foreground) {
		openlog("mailfort-milter", LOG_PID, LOG_MAIL);
		mf_log_set_handler(mf_log_handler_syslog, NULL);
		if (mf_daemonize(&err) < 0) {
			mf_log_error("%s", err.msg);
			free(pid_file);
			return 1;
		}
	}
	ret = supervise(config_path, pid_file);
	free(pid_file);
	g_mime_shutdown();
	return ret;
}
