/* policy.h: recipients, the envelope sender and the header rewrites of SPEC §4-§5 */
#ifndef ACSMAIL_POLICY_H
#define ACSMAIL_POLICY_H

#include <stdio.h>

#include "aliases.h"
#include "cli.h"
#include "config.h"
#include "envelope.h"
#include "message.h"
#include "status.h"

/* Turns what the caller handed over into what ACS accepts:
 *  - recipients from the command line, plus To/Cc/Bcc (or Resent-*) with -t;
 *    comma lists and full RFC 5322 forms in every word; local names resolved
 *    through aliases, then local_recipient (EX_NOUSER when neither helps);
 *  - the envelope sender and the From header rewrite of SPEC §5, Reply-To;
 *  - Date, Message-ID, From, To (undisclosed-recipients:;), MIME headers for
 *    an 8-bit body without them; Bcc, Resent-Bcc, Return-Path and
 *    Content-Length removed; bare names in headers qualified; non-ASCII raw
 *    text in Subject and display names encoded;
 *  - addresses with control characters refused (EX_DATAERR).
 * Warnings (skipped alias entries, ...) go to warn when it is not NULL. */
int policy_apply(const struct config *cfg, const struct options *o, const struct aliases *al,
    struct message *m, struct envelope *env, FILE *warn, struct status *st);

/* -bv: resolves words (as on the command line) through aliases and
 * local_recipient into out, one final address each. */
int policy_resolve(const struct config *cfg, const struct aliases *al,
    const struct strlist *words, struct strlist *out, struct status *st);
#endif
