/*
 * tap.h - a tiny TAP producer for mailfort's C tests.
 *
 *   ok(cond, "what the user would notice", ...);
 *   return tap_done();
 *
 * Prints "ok N - ..." / "not ok N - ... (file:line)" and, from tap_done(),
 * the plan "1..N".  tap_done() returns 1 when any check failed, so main()
 * can return it.  Header-only: each test program includes it once.
 */
#ifndef MF_TAP_H
#define MF_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_count, tap_failed;

__attribute__((format(printf, 4, 5))) static int tap_ok(int cond, const char *file, int line,
                                                        const char *fmt, ...)
{
	va_list args;

	tap_count++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	if (!cond) {
		printf(" (%s:%d)", file, line);
		tap_failed++;
	}
	printf("\n");
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define diag(...)                    \
	do {                         \
		printf("# ");        \
		printf(__VA_ARGS__); \
		printf("\n");        \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed != 0;
}

#endif
