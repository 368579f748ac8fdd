/*
 * test-daemon.c - the daemons' start-up steps (mf-daemon.h): the pid file
 * holds this process's pid and nothing is left beside it; a missing
 * directory is named; giving up root to a user cannot be undone, a user
 * that does not exist is named with its configuration section, and
 * nothing happens for "", "root" or when not root.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mf-daemon.h"
#include "tap.h"

static void test_pidfile(void)
{
	char dir[] = "/tmp/mf-daemon.XXXXXX", path[256], tmp[300], text[64] = "";
	struct mf_error err = {""};
	FILE *f;

	if (mkdtemp(dir) == NULL) {
		ok(0, "temp directory: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/d.pid", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	ok(mf_pidfile_write(path, &err) == 0, "the pid file is written: %s", err.msg);
	f = fopen(path, "r");
	if (f != NULL) {
		if (fgets(text, sizeof(text), f) == NULL)
			text[0] = '\0';
		fclose(f);
	}
	ok(atol(text) == (long)getpid() && strchr(text, '\n') != NULL,
	   "it holds this process's pid and a newline");
	ok(access(tmp, F_OK) < 0, "no temp file is left beside it");
	ok(mf_pidfile_write(path, &err) == 0, "writing it again replaces it");
	ok(mf_pidfile_write(NULL, &err) == 0 && mf_pidfile_write("", &err) == 0,
	   "no path: nothing to write");
	unlink(path);
	rmdir(dir);
	ok(mf_pidfile_write("/nonexistent-dir/d.pid", &err) < 0 &&
	       strstr(err.msg, "/nonexistent-dir/d.pid") != NULL,
	   "a directory that does not exist is named: %s", err.msg);
}

/* In a child (the test itself stays root): 0 when user's ids are taken and
   root cannot be regained, 1-3 for each failure. */
static int become_in_child(const char *user)
{
	struct passwd *pw = getpwnam(user);
	struct mf_error err;
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (mf_become_user("test", user, &err) < 0)
			_exit(1);
		if (pw == NULL || getuid() != pw->pw_uid || geteuid() != pw->pw_uid ||
		    getgid() != pw->pw_gid)
			_exit(2);
		_exit(setuid(0) == 0 ? 3 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void test_become_user(void)
{
	struct mf_error err = {""};
	uid_t before = geteuid();

	ok(mf_become_user("test", "", &err) == 0 && mf_become_user("test", NULL, &err) == 0 &&
	       mf_become_user("test", "root", &err) == 0 && geteuid() == before,
	   "no user, or root: nothing changes");
	if (geteuid() != 0) {
		ok(mf_become_user("test", "nobody", &err) == 0 && geteuid() == before,
		   "not root: nothing changes");
		return;
	}
	ok(mf_become_user("test", "no-such-user-mf", &err) < 0 && strstr(err.msg, "[test] user") &&
	       strstr(err.msg, "no-such-user-mf") && geteuid() == 0,
	   "a user that does not exist is named with its section: %s", err.msg);
	ok(getpwnam("nobody") == NULL || become_in_child("nobody") == 0,
	   "as root: the user's ids are taken and root cannot be regained");
}

int main(void)
{
	test_pidfile();
	test_become_user();
	return tap_done();
}
