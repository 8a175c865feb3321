/* rfc5322.h: address lists of RFC 5322 header fields */
#ifndef ACSMAIL_RFC5322_H
#define ACSMAIL_RFC5322_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

enum address_kind {
	ADDR_MAILBOX,
	ADDR_GROUP_START,	/* "name:" ; the mailboxes up to ADDR_GROUP_END belong to it */
	ADDR_GROUP_END,		/* ";" */
};

struct address {
	enum address_kind kind;
	/* mailbox: the display name, UTF-8 with encoded words decoded, taken
	 * from the phrase or, in the old "addr (Name)" form, from the comment;
	 * NULL when there is none. group start: the group's name. */
	char *name;
	char *local;		/* mailbox: the local part unquoted (what it means) */
	char *domain;		/* mailbox: the domain, NULL for a bare name */
};

struct address_list {
	struct address *v;
	size_t n, cap;
};

/* Parses an unfolded field body (To, Cc, From, ...). Lenient where real
 * callers are sloppy (bare names, stray commas, a missing ';' or '>', an
 * obsolete route, which is dropped), strict where it matters: control
 * characters are refused (EX_DATAERR). Appends to out. */
int rfc5322_parse_addresses(const char *value, struct address_list *out, struct status *st);

/* "local@domain" (or just "local" when domain is NULL) with the local part
 * quoted when it is not a dot-atom. */
char *address_spec(const char *local, const char *domain);

/* A field body for the list: display names quoted where needed, non-ASCII
 * ones as RFC 2047 encoded words, folded (CRLF + space) so no line reaches
 * 78 columns; `column` is where the body starts ("To: " = 4). No final CRLF. */
char *rfc5322_format_addresses(const struct address_list *l, size_t column);

/* Fields that hold address lists: From, Sender, Reply-To, To, Cc, Bcc and
 * their Resent- forms; Mail-Followup-To, Mail-Reply-To,
 * Disposition-Notification-To, Return-Receipt-To, Errors-To. */
bool rfc5322_is_address_field(const char *name);

void address_list_free(struct address_list *l);
#endif
