/* tap.h: the Test Anything Protocol for the unit tests, in a dozen lines */
#ifndef ACSMAIL_TAP_H
#define ACSMAIL_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

/* ok(cond, "what is checked") */
#define ok(cond, ...) tap_ok((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)
/* is_str(got, want, "what") compares strings, NULL-safe, and shows both on failure */
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

#include <stdarg.h>
static __attribute__((unused, format(printf, 4, 5))) int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("%sok %d - ", pass ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("# failed at %s:%d\n", file, line);
	}
	return pass;
}

static __attribute__((unused, format(printf, 5, 6))) int
tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int pass = (got == NULL && want == NULL) ||
	    (got != NULL && want != NULL && strcmp(got, want) == 0);

	tap_count++;
	printf("%sok %d - ", pass ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("# failed at %s:%d\n#   got:  \"%s\"\n#   want: \"%s\"\n", file, line,
		    got ? got : "(null)", want ? want : "(null)");
	}
	return pass;
}

/* call last: prints the plan, returns the exit status */
static int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed == 0 ? 0 : 1;
}
#endif
