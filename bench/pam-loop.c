/*
 * pam-loop.c - the measuring loop of bench/pam-auth: pam_authenticate for
 * users PREFIX1..PREFIXN of one PAM service, each once, answering every
 * prompt with PASSWORD followed by the current TOTP code (computed here
 * with liboath from the shared test secret).  Prints one line:
 *
 *   SERVICE n=N ok=K logins/s=R p50_ms=A p99_ms=B cpu_ms=C
 *
 * cpu_ms is this process's CPU time (user + system) per login: the cost on
 * the host of the PAM stack (Dovecot's auth worker), which unlike latency
 * hardly depends on how busy the machine is.
 *
 * Exit status 0 when every login succeeded, 1 otherwise (the numbers would
 * not measure successful logins), 2 on a usage error.
 *
 * usage: pam-loop SERVICE PREFIX N PASSWORD SECRET_HEX
 *        pam-loop --connect CONNINFO N
 * The second form times connecting to PostgreSQL and disconnecting, the
 * floor under any login check that opens a connection per login.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <liboath/oath.h>
#include <libpq-fe.h>
#include <security/pam_appl.h>

struct answer {
	char text[256];
};

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	const struct answer *a = data;
	struct pam_response *r;
	int i;

	r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			r[i].resp = strdup(a->text);
			if (r[i].resp == NULL) {
				free(r);
				return PAM_BUF_ERR;
			}
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void report(const char *what, double *lat, int n, int ok, double total, double cpu)
{
	int p99 = (n * 99) / 100;

	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	printf("%s n=%d ok=%d logins/s=%.0f p50_ms=%.3f p99_ms=%.3f cpu_ms=%.3f\n", what, n, ok,
	       n / (total / 1e3), lat[n / 2], lat[p99 < n ? p99 : n - 1], cpu / n);
}

static int connect_loop(const char *conninfo, int n)
{
	double *lat = calloc((size_t)n, sizeof(*lat)), t0, total = 0, cpu0 = cpu_ms();
	int i, ok = 0;

	if (lat == NULL)
		return 2;
	for (i = 0; i < n; i++) {
		PGconn *c;

		t0 = now_ms();
		c = PQconnectdb(conninfo);
		if (PQstatus(c) == CONNECTION_OK)
			ok++;
		PQfinish(c);
		lat[i] = now_ms() - t0;
		total += lat[i];
	}
	report("connect", lat, n, ok, total, cpu_ms() - cpu0);
	free(lat);
	return ok == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct answer ans;
	struct pam_conv pc = {conv, &ans};
	char secret[64], user[128], code[16];
	size_t secret_len = sizeof(secret);
	double *lat, t0, total = 0, cpu = 0, c0;
	int n, i, ok = 0;

	if (argc == 4 && strcmp(argv[1], "--connect") == 0 && atoi(argv[3]) > 0)
		return connect_loop(argv[2], atoi(argv[3]));
	if (argc != 6 || (n = atoi(argv[3])) <= 0) {
		fprintf(stderr, "usage: pam-loop SERVICE PREFIX N PASSWORD SECRET_HEX\n"
		                "       pam-loop --connect CONNINFO N\n");
		return 2;
	}
	if (oath_init() != OATH_OK || oath_hex2bin(argv[5], secret, &secret_len) != OATH_OK) {
		fprintf(stderr, "pam-loop: bad secret\n");
		return 2;
	}
	lat = calloc((size_t)n, sizeof(*lat));
	if (lat == NULL)
		return 2;
	for (i = 0; i < n; i++) {
		pam_handle_t *pamh = NULL;
		int rc;

		snprintf(user, sizeof(user), "%s%d", argv[2], i + 1);
		if (oath_totp_generate(secret, secret_len, time(NULL), 30, 0, 6, code) != OATH_OK)
			return 2;
		snprintf(ans.text, sizeof(ans.text), "%s%s", argv[4], code);
		if (pam_start(argv[1], user, &pc, &pamh) != PAM_SUCCESS)
			return 2;
		pam_set_item(pamh, PAM_RHOST, "192.0.2.1");
		c0 = cpu_ms();
		t0 = now_ms();
		rc = pam_authenticate(pamh, 0);
		lat[i] = now_ms() - t0;
		cpu += cpu_ms() - c0;
		total += lat[i];
		if (rc == PAM_SUCCESS)
			ok++;
		else if (n - ok < 4)
			fprintf(stderr, "pam-loop: %s: %s\n", user, pam_strerror(pamh, rc));
		pam_end(pamh, rc);
	}
	report(argv[1], lat, n, ok, total, cpu);
	free(lat);
	return ok == n ? 0 : 1;
}
