/* deliver.h: one message to all its recipients, in as few transactions and connections as possible */
#ifndef ACSMAIL_DELIVER_H
#define ACSMAIL_DELIVER_H

#include <stdio.h>

#include "config.h"
#include "envelope.h"
#include "smtp.h"
#include "status.h"

enum rcpt_state { RCPT_PENDING, RCPT_SENT, RCPT_DEFERRED, RCPT_FAILED };

struct rcpt_outcome {
	enum rcpt_state state;
	char reply[256];	/* the relay's reply for this recipient, or why it was not tried */
	bool own;		/* reply is this recipient's own (to its RCPT), not the transaction's */
};

/* Shared by the messages of one run: the session is opened on first use and
 * kept for the next message. */
struct deliver_ctx {
	const struct config *cfg;
	const char *secret;
	FILE *transcript;		/* -v: the SMTP dialogue, or NULL */
	struct smtp_session *session;
	int open_failures;		/* smtp_open failures in this run */
	struct status open_status;	/* the last of them */
};

/* Sends msg (prepared: CRLF, not dot-stuffed, size octets) to env's
 * recipients in transactions of at most cfg->max_recipients, each counted
 * against the shared rate budget (ratelimit.h): a transaction the budget
 * has no room for is not tried and its recipients are RCPT_DEFERRED.
 * out has one entry per env->rcpts. reply gets the relay's last final reply
 * (the "250 ... <id>" of ACS), for the log.
 * Returns EX_OK when every recipient was sent; EX_TEMPFAIL when some are
 * deferred; otherwise the permanent code (EX_NOUSER when every recipient
 * was refused, EX_UNAVAILABLE). A mix of sent and refused is EX_OK with
 * the refused ones RCPT_FAILED in out. */
int deliver_message(struct deliver_ctx *ctx, const struct envelope *env, FILE *msg, off_t size,
    struct rcpt_outcome *out, char *reply, size_t replysz, struct status *st);

/* QUIT and close the session, if any. */
void deliver_finish(struct deliver_ctx *ctx);
#endif
