/*
 * ctl-check.c - mailfortctl check: the security posture of this node.
 *
 * SYNOPSIS
 *   mailfortctl [--config FILE] check [--json] [--dovecot-config FILE]
 *       [--postfix-config DIR] [--pam-dir DIR] [--no-dovecot] [--no-postfix]
 *       [--no-database] [--min-retention-months N] [--max-checkpoint-age AGE]
 *
 * Reads what the running services would read: Dovecot's configuration
 * through doveconf (per protocol, doveconf -f protocol=NAME), Postfix's
 * through postconf (main.cf and master.cf), the PAM service files, this
 * configuration file, the key and spool directories, and the PostgreSQL
 * roles and grants.  Prints one line per rule, PASS or FAIL, each FAIL
 * followed by the fix; --json prints one JSON object instead, for
 * monitoring.  Nothing is changed.
 *
 * Exit status: 0 when every rule passes, 1 when one fails (or a source
 * could not be read: that is a FAIL too), 2 on a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "ctl.h"
#include "mf-config.h"
#include "mf-db.h"
#include "mf-event.h"

#define CHECK_OUT_MAX (4 * 1024 * 1024)
#define MAX_NAMES     32
#define PAM_DEPTH     8

struct check {
	struct ctl *ctl;
	bool json;
	int failed, count;
	FILE *json_out; /* the "checks" array, assembled in memory */
	char *json_buf;
	size_t json_len;
};

/* ------------------------------------------------------------ report */

static void MF_PRINTF(5, 6)
    report(struct check *ck, const char *rule, bool ok, const char *fix, const char *fmt, ...)
{
	char detail[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	ck->count++;
	if (!ok)
		ck->failed++;
	if (ck->json) {
		char *r = mf_json_quote(rule, strlen(rule));
		char *d = mf_json_quote(detail, strlen(detail));
		char *f = ok ? NULL : mf_json_quote(fix, strlen(fix));

		fprintf(ck->json_out, "%s{\"rule\":%s,\"status\":\"%s\",\"detail\":%s,\"fix\":%s}",
		        ck->count > 1 ? "," : "", r != NULL ? r : "\"\"", ok ? "PASS" : "FAIL",
		        d != NULL ? d : "\"\"", f != NULL ? f : "null");
		free(r);
		free(d);
		free(f);
		return;
	}
	printf("%s  %-26s %s\n", ok ? "PASS" : "FAIL", rule, detail);
	if (!ok)
		printf("      fix: %s\n", fix);
}

/* ------------------------------------------------------------ helpers */

/* Run argv (no shell) and capture its standard output; stderr is dropped.
   Returns the output (malloc'd, NUL-terminated) with the exit status in
   *status_r (-1 when it could not run), or NULL. */
static char *capture(char *const argv[], int *status_r)
{
	int fds[2], st;
	pid_t pid;
	char *buf;
	size_t len = 0, cap = 8192;
	ssize_t n;

	*status_r = -1;
	if (pipe(fds) < 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(fds[1], 1);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	buf = malloc(cap);
	while (buf != NULL && (n = read(fds[0], buf + len, cap - len - 1)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		if (len + 1 == cap) {
			char *nb = cap < CHECK_OUT_MAX ? realloc(buf, cap * 2) : NULL;

			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (buf == NULL)
		return NULL;
	buf[len] = '\0';
	*status_r = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return buf;
}

/* The value of "key = value" in doveconf/postconf output, copied into
   out; false when absent. */
static bool conf_value(const char *text, const char *key, char *out, size_t outsz)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		const char *eol = strchr(p, '\n');
		size_t ll = eol != NULL ? (size_t)(eol - p) : strlen(p);

		if (ll > kl + 2 && strncmp(p, key, kl) == 0 && strncmp(p + kl, " =", 2) == 0) {
			const char *v = p + kl + 2;
			size_t vl = ll - kl - 2;

			while (vl > 0 && *v == ' ') {
				v++;
				vl--;
			}
			snprintf(out, outsz, "%.*s", (int)vl, v);
			return true;
		}
		if (ll == kl + 2 && strncmp(p, key, kl) == 0 && strncmp(p + kl, " =", 2) == 0) {
			out[0] = '\0';
			return true;
		}
		p = eol != NULL ? eol + 1 : NULL;
	}
	return false;
}

/* True when word is one of the space/comma separated words of list. */
static bool has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);
	const char *p = list;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		n = strcspn(p, " ,\t");
		if (n == wl && strncmp(p, word, wl) == 0)
			return true;
		p += n;
	}
	return false;
}

static int split_words(char *list, char *words[], int max)
{
	int n = 0;
	char *save = NULL, *w;

	for (w = strtok_r(list, " ,\t\n", &save); w != NULL && n < max;
	     w = strtok_r(NULL, " ,\t\n", &save))
		words[n++] = w;
	return n;
}

/* ------------------------------------------------------------ Dovecot */

struct dovecot_facts {
	char protocols[256];
	bool sasl_for_postfix; /* Postfix authenticates through Dovecot */
};

/* Run doveconf or postconf: "TOOL -c CONFIG [-f protocol=PROTOCOL] ARGS...". */
static char *conf_tool(const char *tool, const char *config, const char *protocol,
                       const char *const *args, int *status_r)
{
	char *argv[24], filter[128];
	int n = 0;

	argv[n++] = (char *)tool;
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)config;
	if (protocol != NULL) {
		snprintf(filter, sizeof(filter), "protocol=%s", protocol);
		argv[n++] = (char *)"-f";
		argv[n++] = filter;
	}
	while (args != NULL && *args != NULL && n < 22)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return capture(argv, status_r);
}

static bool protocol_authenticates(const char *p)
{
	return strcmp(p, "lmtp") != 0 && strcmp(p, "lda") != 0;
}

static void check_dovecot_protocols(struct check *ck, const char *config,
                                    struct dovecot_facts *facts)
{
	static const char *const proto_key[] = {"protocols", NULL};
	static const char *const keys[] = {"mail_plugins", "ssl", "disable_plaintext_auth",
	                                   "ssl_min_protocol", NULL};
	char *out, *words[MAX_NAMES], protos[256];
	int st, n, i;

	out = conf_tool("doveconf", config, NULL, proto_key, &st);
	if (out == NULL || st != 0 ||
	    !conf_value(out, "protocols", facts->protocols, sizeof(facts->protocols))) {
		report(ck, "dovecot-config", false,
		       "check that doveconf is installed and the file is Dovecot's configuration, "
		       "or use --no-dovecot on a node without Dovecot",
		       "cannot read %s with doveconf (exit %d)", config, st);
		free(out);
		facts->protocols[0] = '\0';
		return;
	}
	free(out);
	snprintf(protos, sizeof(protos), "%s", facts->protocols);
	n = split_words(protos, words, MAX_NAMES);
	for (i = 0; i < n; i++) {
		const char *p = words[i];
		char plugins[1024] = "", ssl[64] = "", plain[16] = "", minp[32] = "", rule[64];
		bool crypt, audit;

		out = conf_tool("doveconf", config, p, keys, &st);
		if (out == NULL || st != 0) {
			snprintf(rule, sizeof(rule), "dovecot-%s", p);
			report(ck, rule, false, "fix the configuration until doveconf reads it",
			       "doveconf -f protocol=%s failed (exit %d)", p, st);
			free(out);
			continue;
		}
		conf_value(out, "mail_plugins", plugins, sizeof(plugins));
		conf_value(out, "ssl", ssl, sizeof(ssl));
		conf_value(out, "disable_plaintext_auth", plain, sizeof(plain));
		conf_value(out, "ssl_min_protocol", minp, sizeof(minp));
		free(out);

		crypt = has_word(plugins, "mailfort_crypt");
		audit = has_word(plugins, "mailfort_audit");
		snprintf(rule, sizeof(rule), "plugins-%s", p);
		report(ck, rule, crypt && audit,
		       "load both plugins for every protocol: install examples/dovecot/conf.d and "
		       "check with doveconf -f protocol=NAME mail_plugins",
		       "%s: %s (mail_plugins = %s)", p,
		       crypt && audit ? "mailfort_crypt and mailfort_audit loaded"
		       : crypt        ? "mailfort_audit missing: accesses are not recorded"
		       : audit        ? "mailfort_crypt missing: mail is stored in the clear"
		                      : "neither mailfort_crypt nor mailfort_audit loaded",
		       plugins[0] != '\0' ? plugins : "(empty)");
		if (!protocol_authenticates(p))
			continue;
		snprintf(rule, sizeof(rule), "plaintext-auth-%s", p);
		report(ck, rule, strcmp(plain, "yes") == 0,
		       "set disable_plaintext_auth = yes (examples/dovecot/conf.d/"
		       "11-mailfort-ssl.conf)",
		       "%s: disable_plaintext_auth = %s%s", p, plain,
		       strcmp(plain, "yes") == 0 ? " (no password without TLS)"
		                                 : ": passwords and codes may cross the network "
		                                   "in the clear");
		snprintf(rule, sizeof(rule), "tls-%s", p);
		{
			bool tls_ok =
			    strcmp(ssl, "required") == 0 &&
			    (strcmp(minp, "TLSv1.2") == 0 || strcmp(minp, "TLSv1.3") == 0);

			report(ck, rule, tls_ok,
			       "set ssl = required and ssl_min_protocol = TLSv1.2 "
			       "(examples/dovecot/conf.d/11-mailfort-ssl.conf)",
			       "%s: ssl = %s, ssl_min_protocol = %s", p, ssl, minp);
		}
	}
}

/* A setting inside a remote/local block of "doveconf -n" (the filters
   doveconf -f protocol=X does not apply) that undoes what the global
   rules check: appended to holes as "BLOCK: setting". */
static void filter_hole(const char *filter, const char *line, char *holes, size_t size)
{
	size_t hl = strlen(holes);

	if (strcmp(line, "disable_plaintext_auth = no") != 0 &&
	    !(strncmp(line, "ssl = ", 6) == 0 && strcmp(line + 6, "required") != 0) &&
	    strncmp(line, "ssl_min_protocol = ", 19) != 0 &&
	    strncmp(line, "auth_mechanisms = ", 18) != 0 &&
	    strncmp(line, "login_trusted_networks = ", 25) != 0)
		return;
	if (hl + strlen(filter) + strlen(line) + 6 < size) {
		int w = snprintf(holes + hl, size - hl, "%s%.127s: %.200s", hl > 0 ? "; " : "",
		                 filter, line);

		if (w < 0)
			holes[hl] = '\0';
	}
}

/* Is every word of a login_trusted_networks value loopback? */
static bool loopback_only(const char *value)
{
	char copy[512], *w[MAX_NAMES];
	int i, n;

	snprintf(copy, sizeof(copy), "%s", value);
	n = split_words(copy, w, MAX_NAMES);
	for (i = 0; i < n; i++)
		if (strncmp(w[i], "127.", 4) != 0 && strcmp(w[i], "::1") != 0 &&
		    strcmp(w[i], "::1/128") != 0)
			return false;
	return true;
}

/* Are all the mechanisms PLAIN or LOGIN (the ones that carry a password
   to the PAM passdb)? */
static bool password_mechanisms_only(const char *value)
{
	char copy[256], *w[MAX_NAMES];
	int i, n;

	snprintf(copy, sizeof(copy), "%s", value);
	n = split_words(copy, w, MAX_NAMES);
	for (i = 0; i < n; i++)
		if (strcasecmp(w[i], "plain") != 0 && strcasecmp(w[i], "login") != 0)
			return false;
	return true;
}

static void report_dovecot_login(struct check *ck, const char *holes, const char *trusted,
                                 const char *mechs, const char *cache)
{
	bool cache_off = strcmp(cache, "0") == 0 || strcmp(cache, "0 B") == 0;

	report(ck, "dovecot-filters", holes[0] == '\0',
	       "remove these settings from the remote/local blocks: the global TLS and "
	       "plaintext rules must hold for every client address",
	       "%s",
	       holes[0] == '\0' ? "no remote/local block weakens TLS or authentication" : holes);
	report(ck, "dovecot-trusted-networks", loopback_only(trusted),
	       "set login_trusted_networks to loopback at most (127.0.0.1 ::1): trusted "
	       "networks may log in without TLS and forge the client address pam_mailfort "
	       "throttles by",
	       "login_trusted_networks = %s", trusted[0] != '\0' ? trusted : "(none)");
	report(ck, "dovecot-auth-mechanisms", password_mechanisms_only(mechs),
	       "set auth_mechanisms = plain login (examples/dovecot/conf.d/90-mailfort-auth.conf): "
	       "other mechanisms (anonymous, external, gssapi ...) do not pass through "
	       "pam_mailfort",
	       "auth_mechanisms = %s", mechs);
	report(ck, "dovecot-auth-cache", cache_off,
	       "set auth_cache_size = 0 (examples/dovecot/conf.d/90-mailfort-auth.conf): a "
	       "cached password+code would let a code be used again",
	       "auth_cache_size = %s", cache);
}

/* The PAM service names Dovecot's passdbs use, from "doveconf -n";
   passdbs of other drivers are reported here (they bypass pam_mailfort). */
static int dovecot_pam_services(struct check *ck, const char *config,
                                const struct dovecot_facts *facts, char names[][64], int max)
{
	char *out, *p, *save = NULL, *line;
	int st, n = 0, depth = 0;
	bool in_passdb = false, pam = false, ended = false;
	int in_filter = 0; /* depth of the remote/local block being read, or 0 */
	char filter[128] = "", holes[512] = "", trusted[512] = "", mechs[256] = "plain",
	     cache[64] = "0";
	char driver[64] = "", args[512] = "", res_ok[32] = "", res_fail[32] = "",
	     res_ifail[32] = "", skip[32] = "";

	out = conf_tool("doveconf", config, NULL, (const char *const[]){"-n", NULL}, &st);
	if (out == NULL || st != 0) {
		free(out);
		return -1;
	}
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		size_t len;
		bool opens;

		for (p = line; *p == ' '; p++)
			;
		/* a section opens on a line ending in "{" (a value such as
		   login_log_format_elements may hold braces: %{session}) */
		len = strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		opens = len > 0 && p[len - 1] == '{';
		if (depth == 0 && opens && strncmp(p, "passdb", 6) == 0) {
			in_passdb = true;
			driver[0] = args[0] = res_ok[0] = res_fail[0] = res_ifail[0] = skip[0] =
			    '\0';
		}
		if (depth == 0 && opens &&
		    (strncmp(p, "remote ", 7) == 0 || strncmp(p, "local ", 6) == 0)) {
			in_filter = 1;
			snprintf(filter, sizeof(filter), "%.*s", (int)(len > 1 ? len - 2 : 0), p);
		}
		if (in_filter > 0 && !opens && *p != '}')
			filter_hole(filter, p, holes, sizeof(holes));
		if (depth == 0 && !opens) {
			if (strncmp(p, "login_trusted_networks = ", 25) == 0)
				snprintf(trusted, sizeof(trusted), "%s", p + 25);
			else if (strncmp(p, "auth_mechanisms = ", 18) == 0)
				snprintf(mechs, sizeof(mechs), "%s", p + 18);
			else if (strncmp(p, "auth_cache_size = ", 18) == 0)
				snprintf(cache, sizeof(cache), "%s", p + 18);
		}
		if (opens) {
			depth++;
			continue;
		}
		if (*p == '}' && depth == 1)
			in_filter = 0;
		if (*p == '}') {
			if (--depth == 0 && in_passdb) {
				in_passdb = false;
				pam = strcmp(driver, "pam") == 0;
				/* a passdb after one that ends every login (none
				   of its results continue, it skips nothing) is
				   never asked: its PAM service does not matter */
				if (ended)
					continue;
				ended = (res_ok[0] == '\0' || strncmp(res_ok, "return", 6) == 0) &&
				        strcmp(res_fail, "return-fail") == 0 &&
				        strcmp(res_ifail, "return-fail") == 0 &&
				        (skip[0] == '\0' || strcmp(skip, "never") == 0);
				if (!pam) {
					report(
					    ck, "dovecot-passdb", false,
					    "authenticate mail logins only through passdb pam with "
					    "pam_mailfort (examples/dovecot/conf.d); remove this "
					    "passdb",
					    "a passdb with driver %s checks passwords without "
					    "pam_mailfort",
					    driver[0] != '\0' ? driver : "(none)");
				} else {
					char copy[512], *w[MAX_NAMES], *svc = NULL;
					int k, nw;

					snprintf(copy, sizeof(copy), "%s", args);
					nw = split_words(copy, w, MAX_NAMES);
					for (k = 0; k < nw; k++)
						if (strchr(w[k], '=') == NULL)
							svc = w[k];
					if (svc == NULL)
						svc = (char *)"dovecot";
					if (strcmp(svc, "%s") == 0 ||
					    strcmp(svc, "%{service}") == 0 ||
					    strcmp(svc, "%{protocol}") == 0) {
						char pr[256], *pw[MAX_NAMES];
						int np;

						snprintf(pr, sizeof(pr), "%s", facts->protocols);
						np = split_words(pr, pw, MAX_NAMES);
						for (k = 0; k < np && n < max; k++)
							if (protocol_authenticates(pw[k]))
								snprintf(names[n++], 64, "%s",
								         pw[k]);
						if (facts->sasl_for_postfix && n < max)
							snprintf(names[n++], 64, "smtp");
						if (n < max)
							snprintf(names[n++], 64, "doveadm");
					} else if (strchr(svc, '%') != NULL) {
						report(ck, "dovecot-passdb", false,
						       "use a fixed PAM service name or %%s in "
						       "passdb args",
						       "cannot tell which PAM service passdb args "
						       "\"%s\" "
						       "names",
						       args);
					} else if (n < max) {
						snprintf(names[n++], 64, "%s", svc);
					}
				}
			}
			continue;
		}
		if (in_passdb && depth == 1) {
			if (strncmp(p, "driver = ", 9) == 0)
				snprintf(driver, sizeof(driver), "%s", p + 9);
			else if (strncmp(p, "args = ", 7) == 0)
				snprintf(args, sizeof(args), "%s", p + 7);
			else if (strncmp(p, "result_success = ", 17) == 0)
				snprintf(res_ok, sizeof(res_ok), "%s", p + 17);
			else if (strncmp(p, "result_failure = ", 17) == 0)
				snprintf(res_fail, sizeof(res_fail), "%s", p + 17);
			else if (strncmp(p, "result_internalfail = ", 22) == 0)
				snprintf(res_ifail, sizeof(res_ifail), "%s", p + 22);
			else if (strncmp(p, "skip = ", 7) == 0)
				snprintf(skip, sizeof(skip), "%s", p + 7);
		}
	}
	free(out);
	report_dovecot_login(ck, holes, trusted, mechs, cache);
	return n;
}

/* ------------------------------------------------------------ PAM */

#define PAM_MAX_LINES 64

/* The auth stack of a service as libpam runs it: @include, include and
   substack resolved in place (a substack is taken as an include, which can
   only make the verdict stricter). */
struct pam_line {
	char control[96]; /* "required", or a bracketed "[value=action ...]" */
	char module[48];  /* base name: pam_unix.so */
	bool mf_gate;     /* pam_mailfort.so in its code mode (no mode argument) */
};

struct pam_scan {
	struct pam_line lines[PAM_MAX_LINES];
	int n;
	bool overflow;
	char modules[256];
};

static void pam_scan_file(const char *dir, const char *service, struct pam_scan *sc, int depth)
{
	char path[PATH_MAX], line[1024];
	FILE *f;

	if (depth > PAM_DEPTH)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, service);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *w[8], *p = line, *hash = strchr(line, '#');
		char *control, *module;
		int n, i;

		if (hash != NULL)
			*hash = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "@include", 8) == 0) {
			char copy[1024];

			snprintf(copy, sizeof(copy), "%s", p + 8);
			if (split_words(copy, w, 1) == 1)
				pam_scan_file(dir, w[0], sc, depth + 1);
			continue;
		}
		/* a bracketed control may hold spaces: take it whole */
		if (strncmp(p, "auth", 4) != 0 && strncmp(p, "-auth", 5) != 0)
			continue;
		p += p[0] == '-' ? 5 : 4;
		while (*p == ' ' || *p == '\t')
			p++;
		control = p;
		if (*p == '[') {
			p = strchr(p, ']');
			if (p == NULL)
				continue;
			p++;
		} else {
			p += strcspn(p, " \t");
		}
		if (*p == '\0')
			continue;
		*p++ = '\0';
		n = split_words(p, w, 8);
		if (n < 1)
			continue;
		module = w[0];
		if (strcmp(control, "include") == 0 || strcmp(control, "substack") == 0) {
			pam_scan_file(dir, module, sc, depth + 1);
			continue;
		}
		if (sc->n == PAM_MAX_LINES) {
			sc->overflow = true;
			continue;
		}
		{
			struct pam_line *pl = &sc->lines[sc->n++];
			const char *base =
			    strrchr(module, '/') != NULL ? strrchr(module, '/') + 1 : module;
			size_t ml = strlen(sc->modules);

			snprintf(pl->control, sizeof(pl->control), "%s", control);
			snprintf(pl->module, sizeof(pl->module), "%s", base);
			pl->mf_gate = strcmp(base, "pam_mailfort.so") == 0;
			for (i = 1; i < n && pl->mf_gate; i++)
				if (strcmp(w[i], "apppass") == 0 || strcmp(w[i], "preauth") == 0 ||
				    strcmp(w[i], "authfail") == 0 || strcmp(w[i], "authsucc") == 0)
					pl->mf_gate = false;
			if (ml + strlen(base) + 2 < sizeof(sc->modules) &&
			    strstr(sc->modules, base) == NULL)
				snprintf(sc->modules + ml, sizeof(sc->modules) - ml, "%s%s",
				         ml > 0 ? " " : "", base);
		}
	}
	fclose(f);
}

/* The action a control gives return value `value` ("success", ...):
   required/requisite/optional/sufficient mapped to their bracket form.
   Copies at most size-1 bytes into out. */
static void pam_action(const char *control, const char *value, char *out, size_t size)
{
	char copy[96], *w[16];
	const char *dflt = "ignore";
	int i, n;

	snprintf(out, size, "%s", "bad");
	if (control[0] != '[') {
		bool ok = strcmp(value, "success") == 0;

		if (strcmp(control, "sufficient") == 0)
			snprintf(out, size, "%s", ok ? "done" : "ignore");
		else if (strcmp(control, "requisite") == 0)
			snprintf(out, size, "%s", ok ? "ok" : "die");
		else if (strcmp(control, "optional") == 0)
			snprintf(out, size, "%s", ok ? "ok" : "ignore");
		else /* required, and anything unknown, the strict way */
			snprintf(out, size, "%s", ok ? "ok" : "bad");
		return;
	}
	snprintf(copy, sizeof(copy), "%s", control + 1);
	if (strchr(copy, ']') != NULL)
		*strchr(copy, ']') = '\0';
	n = split_words(copy, w, 16);
	for (i = 0; i < n; i++) {
		char *eq = strchr(w[i], '=');

		if (eq == NULL)
			continue;
		*eq = '\0';
		if (strcmp(w[i], value) == 0) {
			snprintf(out, size, "%s", eq + 1);
			return;
		}
		if (strcmp(w[i], "default") == 0)
			dflt = eq + 1;
	}
	snprintf(out, size, "%s", dflt);
}

/* Modules that only log (and return PAM_IGNORE): harmless before a deny. */
static bool pam_logs_only(const char *module)
{
	return strcmp(module, "pam_warn.so") == 0 || strcmp(module, "pam_echo.so") == 0;
}

/* Does the stack refuse every login: its first auth module that does more
   than log is pam_deny.so, required or requisite? */
static bool pam_denies(const struct pam_scan *sc)
{
	int i;

	for (i = 0; i < sc->n; i++) {
		const struct pam_line *pl = &sc->lines[i];

		if (pam_logs_only(pl->module))
			continue;
		return strcmp(pl->module, "pam_deny.so") == 0 &&
		       (strcmp(pl->control, "required") == 0 ||
		        strcmp(pl->control, "requisite") == 0);
	}
	return false;
}

static const char *const pam_values[] = {
    "success",          "auth_err",          "ignore",           "user_unknown",
    "authinfo_unavail", "cred_insufficient", "new_authtok_reqd", "default"};

/* Can a password alone get through: is there a module before the first
   pam_mailfort code line that can end the stack with success (sufficient,
   success=done) or jump past it, and is that line itself one whose
   failure the stack cannot survive?  NULL when the stack is sound, else
   why not, in why. */
static const char *pam_bypass(const struct pam_scan *sc, char *why, size_t size)
{
	char act[32];
	int i, gate = -1;
	size_t v;

	if (sc->overflow)
		return snprintf(why, size, "more than %d auth lines", PAM_MAX_LINES), why;
	for (i = 0; i < sc->n && gate < 0; i++)
		if (sc->lines[i].mf_gate)
			gate = i;
	if (gate < 0)
		return snprintf(why, size, "no pam_mailfort code line"), why;
	for (i = 0; i < gate; i++) {
		const struct pam_line *pl = &sc->lines[i];

		for (v = 0; v < MF_N_ELEMENTS(pam_values); v++) {
			pam_action(pl->control, pam_values[v], act, sizeof(act));
			if (act[0] >= '0' && act[0] <= '9' && i + 1 + atoi(act) > gate)
				return snprintf(why, size, "%s %s jumps past pam_mailfort on %s",
				                pl->control, pl->module, pam_values[v]),
				       why;
			/* pam_mailfort's own successes (an app password) may end it */
			if (strcmp(pam_values[v], "success") == 0 && strcmp(act, "done") == 0 &&
			    strcmp(pl->module, "pam_mailfort.so") != 0 &&
			    strcmp(pl->module, "pam_deny.so") != 0)
				return snprintf(why, size,
				                "%s %s before pam_mailfort ends the stack "
				                "on its success",
				                pl->control, pl->module),
				       why;
		}
	}
	/* the code line: success goes on, every other outcome fails the stack */
	for (v = 0; v < MF_N_ELEMENTS(pam_values); v++) {
		pam_action(sc->lines[gate].control, pam_values[v], act, sizeof(act));
		if (strcmp(pam_values[v], "success") == 0
		        ? strcmp(act, "ok") != 0
		        : strcmp(act, "bad") != 0 && strcmp(act, "die") != 0)
			return snprintf(why, size,
			                "pam_mailfort's control %s lets the stack go on without "
			                "it on %s",
			                sc->lines[gate].control, pam_values[v]),
			       why;
	}
	return NULL;
}

static void check_pam(struct check *ck, const char *pam_dir, char names[][64], int n)
{
	struct pam_scan other = {0};
	char path[PATH_MAX], rule[96];
	struct stat st;
	int i;

	pam_scan_file(pam_dir, "other", &other, 0);
	report(ck, "pam-other", pam_denies(&other),
	       "make /etc/pam.d/other deny everything (auth/account/password/session required "
	       "pam_deny.so, after pam_warn.so at most): a service without its own file then "
	       "cannot log in",
	       "%s/other: %s", pam_dir,
	       pam_denies(&other)
	           ? "denies (services without a file of their own cannot log in)"
	           : (other.n > 0 ? "lets a service without its own file authenticate"
	                          : "missing or without auth lines"));
	for (i = 0; i < n; i++) {
		struct pam_scan sc = {0};
		char why[256];
		const char *bypass;

		snprintf(path, sizeof(path), "%s/%s", pam_dir, names[i]);
		snprintf(rule, sizeof(rule), "pam-%.60s", names[i]);
		if (stat(path, &st) < 0) {
			report(ck, rule, pam_denies(&other),
			       "give the service a file that includes the mailfort stack "
			       "(examples/pam.d), or make /etc/pam.d/other deny everything",
			       "%s: no file, PAM uses \"other\", which %s", names[i],
			       pam_denies(&other) ? "denies" : "does not deny");
			continue;
		}
		pam_scan_file(pam_dir, names[i], &sc, 0);
		bypass = pam_denies(&sc) ? NULL : pam_bypass(&sc, why, sizeof(why));
		report(
		    ck, rule, bypass == NULL,
		    "authenticate this service through pam_mailfort (include the stack of "
		    "examples/pam.d: nothing before pam_mailfort may end the stack with success, "
		    "and pam_mailfort must be required or requisite) or deny it",
		    "%s: %s%s (auth: %s)", names[i],
		    bypass == NULL ? (pam_denies(&sc) ? "denies" : "goes through pam_mailfort")
		                   : "a password alone can authenticate mail: ",
		    bypass == NULL ? "" : bypass, sc.modules[0] != '\0' ? sc.modules : "none");
	}
}

/* ------------------------------------------------------------ Postfix */

/* A parameter as master.cf service svc ("name/type") sees it: its -o
   override from "postconf -P" output, else the main.cf value. */
static void master_value(const char *master, const char *svc, const char *param,
                         const char *main_value, char *out, size_t size)
{
	char key[256];

	snprintf(key, sizeof(key), "%s/%s", svc, param);
	if (!conf_value(master, key, out, size))
		snprintf(out, size, "%s", main_value);
}

static void check_postfix(struct check *ck, const char *dir, struct dovecot_facts *facts)
{
	static const char *const main_keys[] = {
	    "smtpd_tls_auth_only",     "smtpd_tls_security_level",
	    "smtpd_sasl_auth_enable",  "smtpd_sasl_type",
	    "smtp_tls_security_level", "smtpd_tls_cert_file",
	    "smtpd_tls_wrappermode",   NULL};
	static const char *const master_args[] = {"-P", NULL};
	char auth_only[16] = "", inlevel[32] = "", sasl[16] = "", sasl_type[32] = "",
	     outlevel[32] = "", cert[256] = "", wrapmode[16] = "";
	char *out, *master, *services, *save = NULL, *line;
	int st, subs = 0;

	out = conf_tool("postconf", dir, NULL, main_keys, &st);
	if (out == NULL || st != 0) {
		report(
		    ck, "postfix-config", false,
		    "check that postconf is installed and DIR holds main.cf, or use --no-postfix "
		    "on a node without Postfix",
		    "cannot read %s with postconf (exit %d)", dir, st);
		free(out);
		return;
	}
	conf_value(out, "smtpd_tls_auth_only", auth_only, sizeof(auth_only));
	conf_value(out, "smtpd_tls_security_level", inlevel, sizeof(inlevel));
	conf_value(out, "smtpd_sasl_auth_enable", sasl, sizeof(sasl));
	conf_value(out, "smtpd_sasl_type", sasl_type, sizeof(sasl_type));
	conf_value(out, "smtp_tls_security_level", outlevel, sizeof(outlevel));
	conf_value(out, "smtpd_tls_cert_file", cert, sizeof(cert));
	conf_value(out, "smtpd_tls_wrappermode", wrapmode, sizeof(wrapmode));
	free(out);
	master = conf_tool("postconf", dir, NULL, master_args, &st);
	if (master == NULL)
		master = strdup("");
	if (strcmp(sasl_type, "dovecot") == 0 ||
	    strstr(master, "smtpd_sasl_type = dovecot") != NULL)
		facts->sasl_for_postfix = true;

	report(ck, "postfix-tls-auth-only", strcmp(auth_only, "yes") == 0,
	       "set smtpd_tls_auth_only = yes in main.cf (examples/postfix/main.cf)",
	       "smtpd_tls_auth_only = %s%s", auth_only,
	       strcmp(auth_only, "yes") == 0 ? " (SMTP AUTH only after STARTTLS)"
	                                     : ": SMTP AUTH may send passwords in the clear");
	report(ck, "postfix-tls-inbound",
	       (strcmp(inlevel, "may") == 0 || strcmp(inlevel, "encrypt") == 0) && cert[0] != '\0',
	       "set smtpd_tls_security_level = may and smtpd_tls_cert_file/smtpd_tls_key_file "
	       "(examples/postfix/main.cf)",
	       "smtpd_tls_security_level = %s, certificate %s", inlevel[0] ? inlevel : "(none)",
	       cert[0] ? cert : "(none)");
	report(ck, "postfix-tls-outbound",
	       strcmp(outlevel, "may") == 0 || strcmp(outlevel, "dane") == 0 ||
	           strcmp(outlevel, "dane-only") == 0 || strcmp(outlevel, "encrypt") == 0 ||
	           strcmp(outlevel, "verify") == 0 || strcmp(outlevel, "secure") == 0,
	       "set smtp_tls_security_level = dane and smtp_dns_support_level = dnssec "
	       "(examples/postfix/main.cf)",
	       "smtp_tls_security_level = %s",
	       outlevel[0] ? outlevel
	                   : "(none): outbound mail "
	                     "never uses TLS");

	/* Every smtpd service of master.cf, with its -o overrides over main.cf:
	   one that offers AUTH must speak TLS before it and hand the password
	   to Dovecot (and so to pam_mailfort). */
	services = conf_tool("postconf", dir, NULL, (const char *const[]){"-M", NULL}, &st);
	for (line = services != NULL ? strtok_r(services, "\n", &save) : NULL; line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char copy[1024], *w[8], svc[160], rule[180];
		char v_sasl[16], v_only[16], v_level[32], v_wrap[16], v_type[32];
		bool tls;

		snprintf(copy, sizeof(copy), "%s", line);
		if (split_words(copy, w, 8) < 8 || strcmp(w[7], "smtpd") != 0)
			continue;
		snprintf(svc, sizeof(svc), "%.64s/%.16s", w[0], w[1]);
		master_value(master, svc, "smtpd_sasl_auth_enable", sasl, v_sasl, sizeof(v_sasl));
		if (strcmp(v_sasl, "yes") != 0)
			continue;
		master_value(master, svc, "smtpd_tls_auth_only", auth_only, v_only, sizeof(v_only));
		master_value(master, svc, "smtpd_tls_security_level", inlevel, v_level,
		             sizeof(v_level));
		master_value(master, svc, "smtpd_tls_wrappermode", wrapmode, v_wrap,
		             sizeof(v_wrap));
		master_value(master, svc, "smtpd_sasl_type", sasl_type, v_type, sizeof(v_type));
		tls = strcmp(v_level, "encrypt") == 0 || strcmp(v_wrap, "yes") == 0 ||
		      strcmp(v_only, "yes") == 0;
		subs++;
		snprintf(rule, sizeof(rule), "postfix-%s-auth", svc);
		report(ck, rule, tls && strcmp(v_type, "dovecot") == 0,
		       "give the service in master.cf -o smtpd_tls_security_level=encrypt (port "
		       "587) or -o smtpd_tls_wrappermode=yes (port 465), no -o "
		       "smtpd_tls_auth_only=no, and -o smtpd_sasl_type=dovecot "
		       "(examples/postfix/master.cf), or -o smtpd_sasl_auth_enable=no",
		       "master.cf %s offers AUTH %s, through %s%s", svc,
		       strcmp(v_level, "encrypt") == 0 ? "after mandatory STARTTLS"
		       : strcmp(v_wrap, "yes") == 0    ? "under implicit TLS"
		       : strcmp(v_only, "yes") == 0    ? "only after STARTTLS"
		                                       : "without requiring TLS",
		       v_type[0] != '\0' ? v_type : "(none)",
		       strcmp(v_type, "dovecot") == 0 ? "" : ": not Dovecot, so not pam_mailfort");
	}
	free(services);
	if (subs == 0 && strcmp(sasl, "yes") != 0)
		report(ck, "postfix-submission", true, "", "no smtpd offers AUTH");
	free(master);
}

/* ------------------------------------------------------------ files */

static const char *owner_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
	return buf;
}

static void check_keys(struct check *ck, const struct mf_config *cfg)
{
	const char *dir = mf_config_str(cfg, "keys", "dir");
	char path[PATH_MAX], rule[PATH_MAX + 8], owner[64], group[64];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int seen = 0;

	if (dir == NULL || stat(dir, &st) < 0) {
		report(ck, "keys-dir", false, "run mailfortctl keys init (see docs/INSTALL.md)",
		       "[keys] dir %s: %s", dir != NULL ? dir : "(unset)", strerror(errno));
		return;
	}
	report(ck, "keys-dir", (st.st_mode & 022) == 0 && st.st_uid == 0,
	       "chown root DIR && chmod 0711 DIR (only root may add or replace keys)",
	       "%s mode %04o owner %s", dir, (unsigned)(st.st_mode & 07777),
	       owner_name(st.st_uid, owner, sizeof(owner)));
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		struct group *gr;

		if (de->d_name[0] == '.' || nl < 4 || strcmp(de->d_name + nl - 4, ".key") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) < 0)
			continue;
		seen++;
		gr = getgrgid(st.st_gid);
		snprintf(group, sizeof(group), "%s", gr != NULL ? gr->gr_name : "?");
		snprintf(rule, sizeof(rule), "key-%.*s", (int)(nl - 4), de->d_name);
		report(ck, rule, S_ISREG(st.st_mode) && (st.st_mode & 077) == 0,
		       "chmod 0600 the file, owned by the one user that reads it "
		       "(examples/mailfort.conf [keys]); consider the key exposed and rotate it",
		       "%s mode %04o %s:%s%s", path, (unsigned)(st.st_mode & 07777),
		       owner_name(st.st_uid, owner, sizeof(owner)), group,
		       (st.st_mode & 077) != 0 ? ": group or others can read or change it" : "");
	}
	closedir(d);
	if (seen == 0)
		report(ck, "keys", false, "run mailfortctl keys init", "no secret key in %s", dir);
}

static const char *group_name(gid_t gid, char *buf, size_t len)
{
	struct group *gr = getgrgid(gid);

	if (gr != NULL)
		snprintf(buf, len, "%s", gr->gr_name);
	else
		snprintf(buf, len, "%lu", (unsigned long)gid);
	return buf;
}

/* The spool (mailfort-spool(5)): a directory only its owner, the [spoold]
   user (mailfort-spoold and mailfort-auditd run as it), may enter; producers
   reach it only through the receiver's socket, mode 0660, group [spoold]
   group. */
static void check_spool(struct check *ck, const struct mf_config *cfg)
{
	const char *dir = mf_config_str(cfg, "spool", "dir");
	const char *sock = mf_config_str(cfg, "spool", "socket");
	const char *user = mf_config_str(cfg, "spoold", "user");
	const char *group = mf_config_str(cfg, "spoold", "group");
	const struct passwd *pw = user != NULL ? getpwnam(user) : NULL;
	const struct group *gr = group != NULL ? getgrnam(group) : NULL;
	char owner[64], gname[64];
	struct stat st;
	bool ok;

	if (dir == NULL || stat(dir, &st) < 0) {
		report(ck, "spool", false,
		       "install -d -o SPOOLD_USER -g SPOOLD_USER -m 0700 DIR (mailfort-spool(5))",
		       "[spool] dir %s: %s", dir != NULL ? dir : "(unset)", strerror(errno));
	} else {
		bool mine = pw != NULL && st.st_uid == pw->pw_uid;

		ok = S_ISDIR(st.st_mode) && mine && (st.st_mode & 077) == 0 &&
		     (st.st_mode & 0700) == 0700;
		report(ck, "spool", ok,
		       "chown [spoold] user DIR && chmod 0700 DIR: only mailfort-spoold and "
		       "mailfort-auditd enter the spool (mailfort-spool(5))",
		       "%s mode %04o owner %s ([spoold] user %s)%s", dir,
		       (unsigned)(st.st_mode & 07777), owner_name(st.st_uid, owner, sizeof(owner)),
		       user != NULL ? user : "(unset)",
		       !S_ISDIR(st.st_mode)          ? ": not a directory"
		       : pw == NULL                  ? ": no such user"
		       : !mine                       ? ": owned by another user"
		       : (st.st_mode & 077) != 0     ? ": group or others can enter it"
		       : (st.st_mode & 0700) != 0700 ? ": its owner cannot use it"
		                                     : "");
	}

	if (sock == NULL || lstat(sock, &st) < 0) {
		report(ck, "spool-socket", false,
		       "start mailfort-spoold: it makes the socket producers hand events to",
		       "[spool] socket %s: %s", sock != NULL ? sock : "(unset)", strerror(errno));
		return;
	}
	ok = S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0660 && gr != NULL &&
	     st.st_gid == gr->gr_gid;
	report(ck, "spool-socket", ok,
	       "restart mailfort-spoold as root (it binds the socket with mode 0660, group "
	       "[spoold] group); remove any other file at that path",
	       "%s mode %04o group %s ([spoold] group %s)%s", sock, (unsigned)(st.st_mode & 07777),
	       group_name(st.st_gid, gname, sizeof(gname)), group != NULL ? group : "(unset)",
	       !S_ISSOCK(st.st_mode)          ? ": not a socket"
	       : (st.st_mode & 07777) != 0660 ? ": mode is not 0660"
	       : gr == NULL                   ? ": no such group"
	       : st.st_gid != gr->gr_gid      ? ": another group can connect"
	                                      : "");
}

/* ------------------------------------------------------------ auditd */

/* Is the daemon NAME (mailfort-auditd, mailfort-spoold) running with this
   configuration file? */
static bool daemon_running(const char *name, const char *config, pid_t *pid_r)
{
	char want[PATH_MAX], path[300], comm[32], args[4096], have[PATH_MAX];
	struct dirent *de;
	DIR *d;
	bool found = false;

	if (realpath(config, want) == NULL)
		snprintf(want, sizeof(want), "%s", config);
	d = opendir("/proc");
	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		const char *cfgarg = MF_CONFIG_DEFAULT_PATH, *p;
		ssize_t n;
		FILE *f;
		int fd;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		/* comm holds at most 15 characters of the name */
		if (strncmp(comm, name, 15) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, args, sizeof(args) - 1);
		close(fd);
		if (n <= 0)
			continue;
		args[n] = '\0';
		for (p = args; p < args + n; p += strlen(p) + 1) {
			if ((strcmp(p, "-c") == 0 || strcmp(p, "--config") == 0) &&
			    p + strlen(p) + 1 < args + n)
				cfgarg = p + strlen(p) + 1;
			else if (strncmp(p, "--config=", 9) == 0)
				cfgarg = p + 9;
		}
		if (realpath(cfgarg, have) == NULL)
			snprintf(have, sizeof(have), "%s", cfgarg);
		if (strcmp(have, want) == 0) {
			found = true;
			*pid_r = (pid_t)atol(de->d_name);
		}
	}
	closedir(d);
	return found;
}

static void check_daemon(struct check *ck, const char *rule, const char *name, const char *why,
                         const char *config)
{
	pid_t pid = 0;
	bool running = daemon_running(name, config, &pid);
	char pidtext[32] = "", fix[256];

	if (running)
		snprintf(pidtext, sizeof(pidtext), " (pid %ld)", (long)pid);
	snprintf(fix, sizeof(fix), "start %s (systemctl enable --now %s): %s", name, name, why);
	report(ck, rule, running, fix, "%s %s runs with %s%s", running ? "a" : "no", name, config,
	       pidtext);
}

static void check_retention(struct check *ck, const struct mf_config *cfg, int64_t min_months)
{
	int64_t months = mf_config_int(cfg, "audit", "retention_min");

	report(ck, "audit-retention", months >= min_months,
	       "set [audit] retention_min to at least the legal minimum (mailfortctl audit "
	       "retire keeps events that long); access records of personal-information systems "
	       "must be kept at least one year (two for large or sensitive ones)",
	       "[audit] retention_min = %lld months (minimum %lld)", (long long)months,
	       (long long)min_months);
}

/* ------------------------------------------------------------ database */

static void check_database(struct check *ck, int64_t max_age)
{
	struct mf_error err;
	struct mf_db *db = ctl_db(ck->ctl);
	PGresult *res;
	int i;

	if (db == NULL) {
		report(ck, "database", false,
		       "make [database] conninfo reach PostgreSQL (see the line above)",
		       "cannot connect to the database");
		return;
	}
	/* The audit trail is append-only for every service role. */
	res = mf_db_exec(db,
	                 "SELECT r.rolname, "
	                 "  has_table_privilege(r.oid, 'mailfort.audit_events', 'UPDATE') "
	                 "  OR has_table_privilege(r.oid, 'mailfort.audit_events', 'DELETE') "
	                 "  OR has_table_privilege(r.oid, 'mailfort.audit_events', 'TRUNCATE') "
	                 "  OR has_table_privilege(r.oid, 'mailfort.audit_checkpoints', 'UPDATE') "
	                 "  OR has_table_privilege(r.oid, 'mailfort.audit_checkpoints', 'DELETE') "
	                 "FROM pg_roles r WHERE r.rolname IN ('mailfort_pam', 'mailfort_crypt', "
	                 "  'mailfort_milter', 'mailfort_auditd', 'mailfort_admin', "
	                 "  'mailfort_auditor') ORDER BY 1",
	                 0, NULL, &err);
	if (res == NULL) {
		report(ck, "db-roles", false, "run mailfortctl db migrate", "%s", err.msg);
		return;
	}
	if (PQntuples(res) < 6)
		report(ck, "db-roles", false, "run mailfortctl db migrate",
		       "only %d of the 6 mailfort roles exist", PQntuples(res));
	for (i = 0; i < PQntuples(res); i++) {
		char rule[96];
		bool can = strcmp(PQgetvalue(res, i, 1), "t") == 0;

		snprintf(rule, sizeof(rule), "db-%s", PQgetvalue(res, i, 0));
		report(ck, rule, !can,
		       "REVOKE UPDATE, DELETE, TRUNCATE ON mailfort.audit_events, "
		       "mailfort.audit_checkpoints FROM the role",
		       "%s %s", PQgetvalue(res, i, 0),
		       can ? "can change or remove audit rows" : "cannot change the audit trail");
	}
	PQclear(res);
	res = mf_db_exec(db,
	                 "SELECT count(*) FROM information_schema.role_table_grants "
	                 "WHERE grantee = 'PUBLIC' AND table_schema IN ('mailfort', 'audit')",
	                 0, NULL, &err);
	if (res != NULL) {
		bool none = strcmp(PQgetvalue(res, 0, 0), "0") == 0;

		report(ck, "db-public", none,
		       "REVOKE ALL ON ALL TABLES IN SCHEMA mailfort, audit FROM PUBLIC",
		       "PUBLIC holds %s privileges on mailfort's tables and views",
		       PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	res = mf_db_exec(
	    db,
	    "SELECT string_agg(m.rolname, ', ' ORDER BY m.rolname) FROM pg_auth_members a "
	    "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
	    "WHERE g.rolname = 'mailfort_owner' AND m.rolcanlogin AND NOT m.rolsuper",
	    0, NULL, &err);
	if (res != NULL) {
		bool none = PQgetisnull(res, 0, 0);

		report(ck, "db-owner", none,
		       "REVOKE mailfort_owner FROM these login roles: the schema owner can drop "
		       "the append-only triggers",
		       none ? "no login role other than superusers is in mailfort_owner"
		            : "login roles in mailfort_owner: %s",
		       none ? "" : PQgetvalue(res, 0, 0));
		PQclear(res);
	}

	/* Every statement has a time limit, from mailfort.conf or the database. */
	res = mf_db_exec(db, "SELECT current_setting('statement_timeout')", 0, NULL, &err);
	if (res != NULL) {
		const char *v = PQgetvalue(res, 0, 0);
		bool limited = strcmp(v, "0") != 0;

		report(
		    ck, "db-statement-timeout", limited,
		    "ALTER DATABASE mailfort SET statement_timeout = '10s' (docs/INSTALL.md), or "
		    "set [database] statement_timeout",
		    "statement_timeout = %s%s", v,
		    limited ? "" : ": a stuck statement holds a login or a pooled backend forever");
		PQclear(res);
	}

	/* Events shipped but not covered by a signed checkpoint, per node. */
	res = mf_db_exec(db,
	                 "SELECT h.node, h.last_seq - coalesce(c.seq, 0), "
	                 "  extract(epoch FROM now() - (SELECT min(e.received_at) "
	                 "    FROM mailfort.audit_events e WHERE e.node = h.node "
	                 "    AND e.seq > coalesce(c.seq, 0)))::bigint "
	                 "FROM mailfort.audit_heads h LEFT JOIN LATERAL "
	                 "  (SELECT max(seq) AS seq FROM mailfort.audit_checkpoints k "
	                 "   WHERE k.node = h.node) c ON true "
	                 "WHERE h.last_seq > coalesce(c.seq, 0) ORDER BY 1",
	                 0, NULL, &err);
	if (res == NULL) {
		report(ck, "audit-checkpoint", false, "run mailfortctl db migrate", "%s", err.msg);
		return;
	}
	{
		bool ok = true;
		char worst[256] = "", ok_text[160];

		snprintf(ok_text, sizeof(ok_text),
		         "no shipped event has waited more than %llds for a signed checkpoint",
		         (long long)max_age);

		for (i = 0; i < PQntuples(res); i++) {
			long long waiting = atoll(PQgetvalue(res, i, 2));

			if (waiting > max_age && ok) {
				ok = false;
				snprintf(
				    worst, sizeof(worst),
				    "node %s: %s events shipped up to %llds ago without a signed "
				    "checkpoint (limit %llds)",
				    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), waiting,
				    (long long)max_age);
			}
		}
		report(ck, "audit-checkpoint", ok,
		       "start mailfort-auditd and check its log: it signs a checkpoint "
		       "checkpoint_interval after new events",
		       "%s", ok ? ok_text : worst);
	}
	PQclear(res);
}

/* ------------------------------------------------------------ command */

static void check_usage(FILE *out)
{
	fprintf(out,
	        "usage: mailfortctl check [OPTIONS]\n"
	        "  Check this node's security posture: one PASS/FAIL line per rule, each\n"
	        "  FAIL with its fix.  Exit status 1 when a rule fails.\n"
	        "  --json                   one JSON object, for monitoring\n"
	        "  --dovecot-config FILE    Dovecot's configuration (/etc/dovecot/dovecot.conf)\n"
	        "  --postfix-config DIR     Postfix's configuration directory (/etc/postfix)\n"
	        "  --pam-dir DIR            PAM service files (/etc/pam.d)\n"
	        "  --no-dovecot, --no-postfix, --no-database\n"
	        "                           skip what this node does not run\n"
	        "  --min-retention-months N legal minimum for audit records (12)\n"
	        "  --max-checkpoint-age AGE shipped events without a signed checkpoint\n"
	        "                           (default twice [auditd] checkpoint_interval)\n");
}

int ctl_check_cmd(struct ctl *ctl, int argc, char **argv)
{
	const char *dovecot = "/etc/dovecot/dovecot.conf", *postfix = "/etc/postfix",
	           *pam_dir = "/etc/pam.d";
	bool no_dovecot = false, no_postfix = false, no_db = false;
	int64_t min_months = 12, max_age = -1;
	struct check ck = {.ctl = ctl};
	struct dovecot_facts facts = {0};
	const struct mf_config *cfg;
	char names[MAX_NAMES][64];
	int i, n;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (ctl_is_help(a)) {
			check_usage(stdout);
			return 0;
		} else if (strcmp(a, "--json") == 0) {
			ck.json = true;
		} else if (strcmp(a, "--no-dovecot") == 0) {
			no_dovecot = true;
		} else if (strcmp(a, "--no-postfix") == 0) {
			no_postfix = true;
		} else if (strcmp(a, "--no-database") == 0) {
			no_db = true;
		} else if (v == NULL && a[0] == '-') {
			return ctl_usage("check: %s needs a value", a);
		} else if (strcmp(a, "--dovecot-config") == 0) {
			dovecot = v;
			i++;
		} else if (strcmp(a, "--postfix-config") == 0) {
			postfix = v;
			i++;
		} else if (strcmp(a, "--pam-dir") == 0) {
			pam_dir = v;
			i++;
		} else if (strcmp(a, "--min-retention-months") == 0) {
			char *end;

			min_months = strtoll(v, &end, 10);
			if (*end != '\0' || min_months < 1 || min_months > 1200)
				return ctl_usage("check: --min-retention-months takes 1..1200");
			i++;
		} else if (strcmp(a, "--max-checkpoint-age") == 0) {
			if (ctl_age(v, &max_age) < 0)
				return ctl_usage(
				    "check: --max-checkpoint-age takes an age such as 15m");
			i++;
		} else {
			return ctl_usage("check: unknown option '%s'", a);
		}
	}
	cfg = ctl_config(ctl);
	if (cfg == NULL)
		return 1;
	if (max_age < 0)
		max_age = 2 * mf_config_int(cfg, "auditd", "checkpoint_interval");
	if (ck.json) {
		ck.json_out = open_memstream(&ck.json_buf, &ck.json_len);
		if (ck.json_out == NULL)
			return ctl_fail("out of memory");
	}

	if (!no_postfix)
		check_postfix(&ck, postfix, &facts);
	if (!no_dovecot) {
		check_dovecot_protocols(&ck, dovecot, &facts);
		if (facts.protocols[0] != '\0') {
			n = dovecot_pam_services(&ck, dovecot, &facts, names, MAX_NAMES);
			if (n < 0)
				report(&ck, "dovecot-passdb", false,
				       "fix the configuration until doveconf -n reads it",
				       "doveconf -n failed");
			else
				check_pam(&ck, pam_dir, names, n);
		}
	}
	report(&ck, "pam-not-enrolled",
	       strcmp(mf_config_str(cfg, "pam", "not_enrolled"), "allow") != 0,
	       "enrol everyone (mailfortctl totp enroll), then set [pam] not_enrolled = require",
	       "[pam] not_enrolled = %s%s", mf_config_str(cfg, "pam", "not_enrolled"),
	       strcmp(mf_config_str(cfg, "pam", "not_enrolled"), "allow") != 0
	           ? " (no login without a second factor)"
	           : ": accounts without TOTP log in with the password alone");
	check_keys(&ck, cfg);
	check_spool(&ck, cfg);
	check_daemon(&ck, "spoold-running", "mailfort-spoold",
	             "without it no event reaches the spool and logins fail closed",
	             ctl->config_path);
	check_daemon(&ck, "auditd-running", "mailfort-auditd",
	             "without it events pile up in the spool and no alert is raised",
	             ctl->config_path);
	check_retention(&ck, cfg, min_months);
	if (!no_db)
		check_database(&ck, max_age);

	if (ck.json) {
		fclose(ck.json_out);
		printf("{\"ok\":%s,\"passed\":%d,\"failed\":%d,\"checks\":[%s]}\n",
		       ck.failed == 0 ? "true" : "false", ck.count - ck.failed, ck.failed,
		       ck.json_buf != NULL ? ck.json_buf : "");
		free(ck.json_buf);
	} else {
		printf("%d passed, %d failed\n", ck.count - ck.failed, ck.failed);
	}
	return ck.failed == 0 ? 0 : 1;
}
