/* smtp.h: the SMTP client: connect, STARTTLS, AUTH, transactions, QUIT */
#ifndef ACSMAIL_SMTP_H
#define ACSMAIL_SMTP_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "envelope.h"
#include "status.h"

struct smtp_session;

/* What happened to one recipient of a transaction. */
struct rcpt_result {
	int reply_code;		/* the relay's code for this recipient (RCPT, or the final reply of DATA/BDAT), 0 when not reached */
	char reply[256];	/* that reply's text, one line */
};

/* The final reply of a transaction. */
struct smtp_result {
	int reply_code;		/* e.g. 250, 450, 554; 0 when the session broke before a reply */
	char reply[512];	/* one line: "250 2.0.0 OK <id>" */
	bool after_dot;		/* the connection was lost after the whole message was sent:
				 * the relay may have it (the one case of a possible duplicate) */
};

/* Opens a session: resolves cfg->server and tries each address, reads the
 * greeting, EHLO, STARTTLS (or implicit TLS) verified against the system
 * trust store or tls_ca_file with the host name checked, EHLO again, AUTH
 * LOGIN with the username as initial response (without it when the relay
 * answers that with 501 or 504; PLAIN only where LOGIN is not offered).
 * Each step is bounded by cfg->timeout. With transcript non-NULL every line
 * sent and received is written there, secrets as "***".
 * Returns EX_OK; EX_TEMPFAIL for anything worth retrying (refused connection,
 * DNS failure, TLS or verification failure, no STARTTLS, 4xx, timeout,
 * 535); EX_UNAVAILABLE for other 5xx; EX_CONFIG for a config the client
 * cannot use. st->text holds the step and the relay's reply. */
int smtp_open(const struct config *cfg, const char *secret, FILE *transcript,
    struct smtp_session **out, struct status *st);

/* One transaction: MAIL FROM (SIZE, BODY=8BITMIME, SMTPUTF8, DSN RET/ENVID
 * when offered), RCPT TO for each of env->rcpts (NOTIFY when offered),
 * pipelined when PIPELINING is offered, then the message from msg (CRLF
 * lines, not dot-stuffed; read from the current position to EOF, size octets)
 * by BDAT when CHUNKING is offered (chunks of 1 MB, the last one "BDAT n
 * LAST"; with PIPELINING the envelope and the chunks go without waiting),
 * else by DATA with dot-stuffing; every line end goes out as CRLF either
 * way. rcpts[i] is filled for env->rcpts.v[i]: the RCPT reply of a refused
 * recipient, the final reply for an accepted one, code 0 when not reached.
 * After a refused transaction the session is RSET and stays usable. A
 * message that is 8-bit for a relay without 8BITMIME is downgraded
 * (mime_downgrade) on the way.
 * Returns EX_OK when the relay accepted the message for at least one
 * recipient (refused recipients are in rcpts), EX_TEMPFAIL for 4xx or a
 * broken session (res->after_dot tells when it broke after the final dot
 * or the LAST chunk), EX_NOUSER when every recipient was refused with 5xx,
 * EX_UNAVAILABLE for another 5xx (MAIL FROM refused, DATA or a chunk
 * refused), for a message over the relay's SIZE and for non-ASCII
 * addresses the relay has no SMTPUTF8 for;
 * EX_DATAERR, before anything is sent, for an address holding CR, LF or
 * another control character, '<' or '>'. */
int smtp_send(struct smtp_session *s, const struct envelope *env, FILE *msg, off_t size,
    struct rcpt_result *rcpts, struct smtp_result *res, struct status *st);

/* false once the connection is gone: open a new session */
bool smtp_usable(const struct smtp_session *s);

/* the extension keyword (e.g. "PIPELINING") from the last EHLO reply */
bool smtp_has(const struct smtp_session *s, const char *keyword);

/* QUIT (when the connection is usable) without waiting for its reply,
 * TLS close_notify, close, free. NULL is fine. */
void smtp_close(struct smtp_session *s);

/* A hint for the person fixing a failure, from the relay's reply text or
 * the st->text of smtp_open/smtp_send ("530 5.7.57 ...", "535 5.7.3 ...",
 * "450 4.5.127 ...", a refused sender, an untrusted certificate, a missing
 * STARTTLS, a DNS or connect failure): NULL when there is none. */
const char *smtp_hint(const char *reply);
#endif
