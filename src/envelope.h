/* envelope.h: what goes into MAIL FROM and RCPT TO */
#ifndef ACSMAIL_ENVELOPE_H
#define ACSMAIL_ENVELOPE_H

#include <stdbool.h>

#include "util.h"

struct envelope {
	char *sender;		/* MAIL FROM address, "" for the null sender */
	struct strlist rcpts;	/* RCPT TO addresses, each local@domain, unique */
	char *dsn_notify;	/* -N value, or NULL */
	char *dsn_ret;		/* -R value, or NULL */
	char *dsn_envid;	/* -V value, or NULL */
	bool eightbit;		/* the prepared message holds 8-bit bytes: BODY=8BITMIME */
	bool smtputf8;		/* an address needs SMTPUTF8 */
};

void envelope_free(struct envelope *env);
#endif
