/* status.c: errors as values */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "status.h"

int
status_set(struct status *st, int code, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (st == NULL)
		return code;
	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->text, sizeof(st->text), fmt, ap);
	va_end(ap);
	/* the text is one line, whatever went into it */
	for (p = st->text; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	return code;
}

void
status_clear(struct status *st)
{
	st->code = EX_OK;
	st->text[0] = '\0';
}
