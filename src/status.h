/* status.h: errors are values carrying a sysexits code and one line of text */
#ifndef ACSMAIL_STATUS_H
#define ACSMAIL_STATUS_H

#include <sysexits.h>

struct status {
	int code;		/* EX_OK, or a sysexits.h code */
	char text[512];		/* one line for the person reading syslog */
};

/* Records a failure and returns its code, so callers can write
 * "return status_set(st, EX_DATAERR, "...")". */
int status_set(struct status *st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void status_clear(struct status *st);

#endif
