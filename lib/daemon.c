/*
 * daemon.c - start-up steps shared by the daemons (mf-daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include "mf-daemon.h"
#include "mf-io.h"

int mf_daemonize(struct mf_error *err)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return mf_error_set(err, "cannot detach: fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return mf_error_set(err, "cannot detach: setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		return mf_error_set(err, "cannot detach: chdir /: %s", strerror(errno));
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return mf_error_set(err, "cannot detach: /dev/null: %s", strerror(errno));
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
		int e = errno;

		close(fd);
		return mf_error_set(err, "cannot detach: dup2: %s", strerror(e));
	}
	if (fd > 2)
		close(fd);
	return 0;
}

int mf_pidfile_write(const char *path, struct mf_error *err)
{
	char tmp[4096], text[32];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return mf_error_set(err, "pid file %s: name too long", path);
	n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return mf_error_set(err, "pid file %s: %s", tmp, strerror(errno));
	if (mf_write_all(fd, text, (size_t)n) < 0 || close(fd) < 0) {
		int e = errno;

		(void)unlink(tmp);
		return mf_error_set(err, "pid file %s: %s", tmp, strerror(e));
	}
	if (rename(tmp, path) < 0) {
		int e = errno;

		(void)unlink(tmp);
		return mf_error_set(err, "pid file %s: %s", path, strerror(e));
	}
	return 0;
}

int mf_become_user(const char *section, const char *user, struct mf_error *err)
{
	struct passwd *pw;

	if (geteuid() != 0 || user == NULL || user[0] == '\0' || strcmp(user, "root") == 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL)
		return mf_error_set(err, "[%s] user: no such user '%s'", section, user);
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return mf_error_set(err, "cannot become user '%s': %s", user, strerror(errno));
	if (setuid(0) == 0)
		return mf_error_set(err, "could still regain root after becoming '%s'", user);
	return 0;
}
