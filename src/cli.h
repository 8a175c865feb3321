/* cli.h: the sendmail command line (SPEC §2) turned into options */
#ifndef ACSMAIL_CLI_H
#define ACSMAIL_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "status.h"
#include "util.h"

enum mode {
	MODE_DELIVER,		/* -bm, the default */
	MODE_SMTP,		/* -bs */
	MODE_LIST,		/* -bp, mailq */
	MODE_ALIASES,		/* -bi, newaliases */
	MODE_VERIFY,		/* -bv */
	MODE_QUEUE_RUN,		/* -q, -q<time>, -qR/-qS/-qI */
	MODE_CHECK,		/* --check */
	MODE_VERSION,		/* --version */
	MODE_HELP,		/* --help */
	MODE_REQUEUE,		/* --requeue ID */
	MODE_DELETE,		/* --delete ID */
};

struct options {
	enum mode mode;
	bool extract;		/* -t */
	bool ignore_dots;	/* -i, -oi: a lone "." does not end the input */
	char *sender;		/* -f/-r ADDR as given ("<>" becomes ""), NULL when absent */
	char *full_name;	/* -F NAME, NULL when absent */
	bool verbose;		/* -v */
	char *config_path;	/* -C FILE, NULL when absent */
	char delivery;		/* 'i', 'b', 'q' from -od?, or 0 when not given */
	char *dsn_notify;	/* -N */
	char *dsn_ret;		/* -R */
	char *dsn_envid;	/* -V */
	char *body_type;	/* -B, upper-cased: "7BIT" or "8BITMIME" */
	bool queue_flush;	/* -q without a time, or -qR/-qS/-qI: ignore backoff */
	long queue_interval;	/* -q<time> in seconds, 0 when not given */
	char *queue_recipient;	/* -qR<s> */
	char *queue_sender;	/* -qS<s> */
	char *queue_id;		/* -qI<id> */
	char *target_id;	/* --requeue / --delete ID */
	struct strlist recipients;	/* every word after the options, as given */
};

/* Parses argv. argv[0]'s base name selects mailq (-bp) and newaliases
 * (-bi). Returns EX_OK, or EX_USAGE with a message naming the option. */
int cli_parse(int argc, char **argv, struct options *o, struct status *st);
void cli_free(struct options *o);
void cli_usage(FILE *out);
#endif
