/* test_policy.c: recipients, envelope sender and header rewrites, case by case */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aliases.h"
#include "cli.h"
#include "envelope.h"
#include "message.h"
#include "mime.h"
#include "policy.h"
#include "rfc5322.h"
#include "tap.h"
#include "util.h"

#define FROM	"DoNotReply@mail.example.com"
#define ALLOWED	"alerts@example.com"

static const char alias_text[] =
    "root: admin@example.org\n"
    "postmaster: root\n"
    "ops: one@example.org, two@example.org\n"
    "self: self, other@example.org\n"
    "localfwd: admin@localhost\n"
    "admin: realadmin@example.org\n"
    "typo: nosuch\n"
    "pipe: |/usr/bin/prog\n";

static struct aliases *aliases;
static struct config base;

struct pcase {
	const char *desc;
	const char *input;
	bool extract;
	const char *sender;		/* -f */
	const char *full_name;		/* -F */
	const char *words[4];
	const char *local_recipient;
	bool never;			/* rewrite_from = never */
	const char *from_name;
	int want_rc;
	const char *want_text;		/* part of the error text */
	const char *want_rcpts;		/* joined with "," */
	const char *want_sender;
	const char *want_from;		/* "name|address" of the From field, "|address" without a name */
	const char *want_reply_to;	/* the same for Reply-To; "" for none */
	const char *has[6];		/* substrings of the written header */
	const char *lacks[6];
};

static const struct pcase cases[] = {
	{ .desc = "Debian cron: MAILTO=root, From: root (Cron Daemon)",
	  .input = "From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts\n"
	    "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
	    "Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\noutput\n",
	  .full_name = "CronDaemon", .words = { "root" },
	  .want_rcpts = "admin@example.org", .want_sender = FROM,
	  .want_from = "Cron Daemon|" FROM, .want_reply_to = "",
	  .has = { "To: root@host.example.net\r\n", "X-Cron-Env: <SHELL=/bin/sh>\r\n",
	    "Subject: Cron <root@host> run-parts\r\n" },
	  .lacks = { "To: root\r\n", "<root>", "root (Cron" } },
	{ .desc = "cronie: -t -f root, To: a bare name",
	  .input = "From: root (Cron Daemon)\nTo: root\nSubject: Cron\nAuto-Submitted: auto-generated\n\nb\n",
	  .extract = true, .sender = "root", .full_name = "CronDaemon",
	  .want_rcpts = "admin@example.org", .want_sender = FROM, .want_from = "Cron Daemon|" FROM,
	  .want_reply_to = "", .has = { "Auto-Submitted: auto-generated\r\n" } },
	{ .desc = "-t with a folded To of two display-named addresses",
	  .input = "To: \"Doe, John\" <john@example.org>,\n \"Roe, Jane\"\n\t<jane@example.org>\n"
	    "From: alerts@example.com\nSubject: s\n\nb\n",
	  .extract = true, .want_rcpts = "john@example.org,jane@example.org",
	  .want_sender = "alerts@example.com", .want_from = "|alerts@example.com", .want_reply_to = "",
	  .has = { "To: \"Doe, John\" <john@example.org>,\r\n \"Roe, Jane\"\r\n\t<jane@example.org>\r\n",
	    "From: alerts@example.com\r\n" } },
	{ .desc = "-t: Bcc is a recipient and is removed",
	  .input = "To: a@example.org\nBcc: Secret Person <secret@example.org>\nSubject: s\n\nb\n",
	  .extract = true, .want_rcpts = "a@example.org,secret@example.org", .want_sender = FROM,
	  .lacks = { "Bcc", "secret" } },
	{ .desc = "bsd-mailx: recipients on argv, Bcc header stripped without -t",
	  .input = "To: a@example.org\nBcc: secret@example.org\nSubject: s\n\nb\n",
	  .words = { "a@example.org", "secret@example.org" },
	  .want_rcpts = "a@example.org,secret@example.org", .lacks = { "Bcc", "secret" } },
	{ .desc = "-t and argv: union, duplicates removed case-insensitively",
	  .input = "To: a@example.org, c@example.org\nCc: b@example.org\n\nb\n",
	  .extract = true, .words = { "A@Example.org", "c@example.org" },
	  .want_rcpts = "A@Example.org,c@example.org,b@example.org" },
	{ .desc = "-t with Resent- fields takes Resent-To/Cc/Bcc only",
	  .input = "Resent-From: alerts@example.com\nResent-To: r@example.org\n"
	    "Resent-Bcc: rb@example.org\nFrom: orig@example.org\nTo: o@example.org\n"
	    "Cc: oc@example.org\n\nb\n",
	  .extract = true, .want_rcpts = "r@example.org,rb@example.org", .want_sender = FROM,
	  .want_from = "|" FROM, .want_reply_to = "|orig@example.org",
	  .has = { "Resent-To: r@example.org\r\n", "To: o@example.org\r\n" },
	  .lacks = { "Resent-Bcc", "rb@" } },
	{ .desc = "web form: From not allowed: From = from, Reply-To = the visitor",
	  .input = "To: owner@example.org\nFrom: Web Visitor <visitor@gmail.com>\nSubject: Contact\n"
	    "X-PHP-Originating-Script: 33:form.php\n\nhello\n",
	  .extract = true, .want_rcpts = "owner@example.org", .want_sender = FROM,
	  .want_from = "Web Visitor|" FROM, .want_reply_to = "Web Visitor|visitor@gmail.com",
	  .has = { "X-PHP-Originating-Script: 33:form.php\r\n" } },
	{ .desc = "web form: an existing Reply-To is kept",
	  .input = "To: owner@example.org\nFrom: visitor@gmail.com\nReply-To: list@example.org\n\nhi\n",
	  .extract = true, .want_from = "|" FROM, .want_reply_to = "|list@example.org" },
	{ .desc = "allowed -f and allowed From are kept",
	  .input = "To: a@example.org\nFrom: Alerts <alerts@example.com>\n\nb\n",
	  .extract = true, .sender = "alerts@example.com", .want_sender = "alerts@example.com",
	  .want_from = "Alerts|alerts@example.com", .want_reply_to = "",
	  .has = { "From: Alerts <alerts@example.com>\r\n" } },
	{ .desc = "allowed -f, From not allowed: envelope kept, From rewritten",
	  .input = "To: a@example.org\nFrom: someone@gmail.com\n\nb\n",
	  .extract = true, .sender = "alerts@example.com", .want_sender = "alerts@example.com",
	  .want_from = "|" FROM, .want_reply_to = "|someone@gmail.com" },
	{ .desc = "-f not allowed, From allowed: the From address is the envelope sender",
	  .input = "To: a@example.org\nFrom: alerts@example.com\n\nb\n",
	  .extract = true, .sender = "x@gmail.com", .want_sender = "alerts@example.com",
	  .want_from = "|alerts@example.com" },
	{ .desc = "-f with angle brackets, allowed",
	  .input = "To: a@example.org\n\nb\n",
	  .extract = true, .sender = "<alerts@example.com>", .want_sender = "alerts@example.com",
	  .want_from = "|alerts@example.com" },
	{ .desc = "-f with a local domain is never the envelope sender",
	  .input = "To: a@example.org\n\nb\n",
	  .extract = true, .sender = "root@localhost", .want_sender = FROM, .want_from = "|" FROM },
	{ .desc = "-f '<>' is no MailFrom address: the envelope sender is from",
	  .input = "To: a@example.org\n\nb\n", .extract = true, .sender = "", .want_sender = FROM },
	{ .desc = "-f '<>' with an allowed From: the From address",
	  .input = "To: a@example.org\nFrom: " ALLOWED "\n\nb\n", .extract = true, .sender = "<>",
	  .want_sender = ALLOWED, .want_from = "|" ALLOWED },
	{ .desc = "From allowed, compared case-insensitively",
	  .input = "To: a@example.org\nFrom: Alerts@Example.COM\n\nb\n",
	  .extract = true, .want_sender = "Alerts@Example.COM", .want_from = "|Alerts@Example.COM" },
	{ .desc = "the From address itself is allowed",
	  .input = "To: a@example.org\nFrom: Robot <" FROM ">\n\nb\n",
	  .extract = true, .want_sender = FROM, .want_from = "Robot|" FROM, .want_reply_to = "" },
	{ .desc = "local someuser goes to local_recipient",
	  .input = "Subject: s\n\nb\n", .words = { "someuser", "other@localhost" },
	  .local_recipient = "catchall@example.org", .want_rcpts = "catchall@example.org" },
	{ .desc = "local someuser without local_recipient: EX_NOUSER",
	  .input = "Subject: s\n\nb\n", .words = { "a@example.org", "someuser" },
	  .want_rc = EX_NOUSER,
	  .want_text = "no such user: someuser (no alias, local_recipient is not set)" },
	{ .desc = "a name in a local domain without an alias: EX_NOUSER",
	  .input = "Subject: s\n\nb\n", .words = { "someuser@host.example.net" },
	  .want_rc = EX_NOUSER, .want_text = "no such user: someuser" },
	{ .desc = "-i a@x,b@y: one word, two recipients",
	  .input = "Subject: s\n\nb\n", .words = { "a@example.org,b@example.org" },
	  .want_rcpts = "a@example.org,b@example.org" },
	{ .desc = "a word with a quoted display name holding a comma",
	  .input = "Subject: s\n\nb\n", .words = { "\"Doe, John\" <john@example.org>, root" },
	  .want_rcpts = "john@example.org,admin@example.org" },
	{ .desc = "a group on the command line",
	  .input = "Subject: s\n\nb\n", .words = { "team: a@example.org, b@example.org;" },
	  .want_rcpts = "a@example.org,b@example.org" },
	{ .desc = "mdadm: From: mdadm monitoring <root>",
	  .input = "From: mdadm monitoring <root>\nTo: root\nSubject: Fail event on /dev/md0\n\n"
	    "This is an automatically generated mail message\n",
	  .extract = true, .want_rcpts = "admin@example.org", .want_sender = FROM,
	  .want_from = "mdadm monitoring|" FROM, .want_reply_to = "",
	  .has = { "To: root@host.example.net\r\n" } },
	{ .desc = "logwatch: From: Logwatch (no @ at all)",
	  .input = "To: root\nFrom: Logwatch\nSubject: Logwatch for host\nMIME-Version: 1.0\n"
	    "Content-Transfer-Encoding: 7bit\nContent-Type: text/plain; charset=\"UTF-8\"\n\nreport\n",
	  .extract = true, .want_rcpts = "admin@example.org", .want_sender = FROM,
	  .want_from = "|" FROM, .want_reply_to = "", .lacks = { "Logwatch\r\n" } },
	{ .desc = "logwatch with from_name set",
	  .input = "To: root\nFrom: Logwatch\n\nreport\n",
	  .extract = true, .from_name = "Host Robot", .want_from = "Host Robot|" FROM },
	{ .desc = "-F names a From that has no display name",
	  .input = "To: root\nFrom: root\n\nb\n",
	  .extract = true, .full_name = "Backup Job", .from_name = "Host Robot",
	  .want_from = "Backup Job|" FROM },
	{ .desc = "no header at all: Date, Message-ID, From, To added",
	  .input = "just some text\nand more\n", .words = { "a@example.org" },
	  .full_name = "Backup Job", .want_rcpts = "a@example.org", .want_sender = FROM,
	  .want_from = "Backup Job|" FROM,
	  .has = { "To: undisclosed-recipients:;\r\n", "Date: ", "Message-ID: <",
	    "@mail.example.com>\r\n" } },
	{ .desc = "missing From with an allowed -f uses the envelope sender",
	  .input = "To: a@example.org\n\nb\n", .extract = true, .sender = "alerts@example.com",
	  .want_sender = "alerts@example.com", .want_from = "|alerts@example.com",
	  .has = { "@example.com>\r\n" } },
	{ .desc = "Message-ID takes the domain of the final From",
	  .input = "To: a@example.org\nFrom: alerts@example.com\n\nb\n", .extract = true,
	  .has = { "Message-ID: <", "@example.com>\r\n" } },
	{ .desc = "existing Date and Message-ID kept",
	  .input = "To: a@example.org\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n"
	    "Message-ID: <keep@example.org>\n\nb\n", .extract = true,
	  .has = { "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n", "Message-ID: <keep@example.org>\r\n" } },
	{ .desc = "Cc alone: no undisclosed-recipients",
	  .input = "Cc: a@example.org\n\nb\n", .extract = true,
	  .lacks = { "undisclosed" } },
	{ .desc = "8-bit body without MIME fields gets them",
	  .input = "To: a@example.org\nSubject: s\n\ncaf\xc3\xa9\n", .extract = true,
	  .has = { "MIME-Version: 1.0\r\n", "Content-Type: text/plain; charset=UTF-8\r\n",
	    "Content-Transfer-Encoding: 8bit\r\n" } },
	{ .desc = "8-bit body with a Content-Type: its type kept, MIME-Version and 8bit added",
	  .input = "To: a@example.org\nContent-Type: text/plain; charset=ISO-8859-1\n\ncaf\xe9\n",
	  .extract = true,
	  .has = { "MIME-Version: 1.0\r\n", "Content-Type: text/plain; charset=ISO-8859-1\r\n",
	    "Content-Transfer-Encoding: 8bit\r\n" },
	  .lacks = { "UTF-8" } },
	{ .desc = "8-bit body with its own Content-Transfer-Encoding: kept, not added twice",
	  .input = "To: a@example.org\nContent-Transfer-Encoding: binary\n\ncaf\xe9\n",
	  .extract = true,
	  .has = { "Content-Transfer-Encoding: binary\r\n" },
	  .lacks = { "Content-Transfer-Encoding: 8bit" } },
	{ .desc = "ASCII body: no MIME fields added",
	  .input = "To: a@example.org\n\nplain\n", .extract = true,
	  .lacks = { "MIME-Version", "Content-Type" } },
	{ .desc = "Japanese Subject becomes encoded words",
	  .input = "To: a@example.org\nSubject: \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae"
	    "\xe4\xbb\xb6\xe5\x90\x8d\n\nb\n", .extract = true,
	  .has = { "Subject: =?UTF-8?" } },
	{ .desc = "raw non-ASCII display name in To becomes an encoded word",
	  .input = "To: J\xc3\xb6rg M\xc3\xbcller <j@example.org>\n\nb\n", .extract = true,
	  .want_rcpts = "j@example.org", .has = { "To: =?UTF-8?", "<j@example.org>" } },
	{ .desc = "Return-Path and Content-Length removed",
	  .input = "Return-Path: <bounce@example.org>\nTo: a@example.org\nContent-Length: 5\n\nb\n",
	  .extract = true, .lacks = { "Return-Path", "Content-Length", "bounce" } },
	{ .desc = "Sender not allowed is dropped",
	  .input = "To: a@example.org\nFrom: x@gmail.com\nSender: y@gmail.com\n\nb\n",
	  .extract = true, .want_from = "|" FROM, .lacks = { "Sender:", "y@gmail.com" } },
	{ .desc = "Sender allowed is kept",
	  .input = "To: a@example.org\nFrom: alerts@example.com\nSender: " FROM "\n\nb\n",
	  .extract = true, .has = { "Sender: " FROM "\r\n" } },
	{ .desc = "rewrite_from = never: From kept, bare name qualified",
	  .input = "To: a@example.org\nFrom: root (Cron Daemon)\n\nb\n", .extract = true,
	  .never = true, .want_sender = FROM, .want_from = "Cron Daemon|root@host.example.net",
	  .want_reply_to = "" },
	{ .desc = "rewrite_from = never: foreign From kept, no Reply-To",
	  .input = "To: a@example.org\nFrom: visitor@gmail.com\n\nb\n", .extract = true,
	  .never = true, .want_sender = FROM, .want_from = "|visitor@gmail.com", .want_reply_to = "" },
	{ .desc = "From with a local domain: rewritten, no Reply-To",
	  .input = "To: a@example.org\nFrom: root@localhost\n\nb\n", .extract = true,
	  .want_from = "|" FROM, .want_reply_to = "" },
	{ .desc = "From with two mailboxes, one foreign: one From, the envelope follows it, Reply-To the foreign one",
	  .input = "To: a@example.org\nFrom: alerts@example.com, x@gmail.com\n\nb\n", .extract = true,
	  .want_sender = FROM, .want_from = "|" FROM, .want_reply_to = "|x@gmail.com" },
	{ .desc = "two From fields become one",
	  .input = "To: a@example.org\nFrom: alerts@example.com\nFrom: Other <x@gmail.com>\n\nb\n",
	  .extract = true, .want_sender = FROM, .want_from = "|" FROM,
	  .want_reply_to = "Other|x@gmail.com" },
	{ .desc = "two allowed From fields: one field, both kept",
	  .input = "To: a@example.org\nFrom: alerts@example.com\nFrom: " FROM "\n\nb\n",
	  .extract = true, .want_from = "|alerts@example.com",
	  .has = { "From: alerts@example.com, " FROM "\r\n" } },
	{ .desc = "an empty To is replaced by undisclosed-recipients",
	  .input = "To: \nSubject: s\n\nb\n", .words = { "a@example.org" },
	  .has = { "To: undisclosed-recipients:;\r\n" }, .lacks = { "To: \r\n" } },
	{ .desc = "an empty Cc is removed, To kept",
	  .input = "To: a@example.org\nCc:\n\nb\n", .extract = true,
	  .want_rcpts = "a@example.org", .lacks = { "Cc", "undisclosed" } },
	{ .desc = "bare names in To and Cc are qualified, others untouched",
	  .input = "To: root, a@example.org\nCc: ops\nReply-To: b@example.org,\n c@example.org\n\nb\n",
	  .extract = true,
	  .want_rcpts = "admin@example.org,a@example.org,one@example.org,two@example.org",
	  .has = { "To: root@host.example.net, a@example.org\r\n", "Cc: ops@host.example.net\r\n",
	    "Reply-To: b@example.org,\r\n c@example.org\r\n" } },
	{ .desc = "alias chain through a local domain",
	  .input = "Subject: s\n\nb\n", .words = { "localfwd", "postmaster" },
	  .want_rcpts = "realadmin@example.org,admin@example.org" },
	{ .desc = "self-reference: the alias's other targets",
	  .input = "Subject: s\n\nb\n", .words = { "self" }, .want_rcpts = "other@example.org" },
	{ .desc = "self-reference with local_recipient: it takes the local copy",
	  .input = "Subject: s\n\nb\n", .words = { "self" }, .local_recipient = "catchall@example.org",
	  .want_rcpts = "catchall@example.org,other@example.org" },
	{ .desc = "alias to an unknown name",
	  .input = "Subject: s\n\nb\n", .words = { "typo" }, .want_rc = EX_NOUSER,
	  .want_text = "no such user: nosuch" },
	{ .desc = "alias with only a program target",
	  .input = "Subject: s\n\nb\n", .words = { "pipe" }, .want_rc = EX_NOUSER,
	  .want_text = "no such user: pipe" },
	{ .desc = "local_recipient that is an alias name",
	  .input = "Subject: s\n\nb\n", .words = { "someuser" }, .local_recipient = "root",
	  .want_rcpts = "admin@example.org" },
	{ .desc = "local_recipient that resolves to nothing",
	  .input = "Subject: s\n\nb\n", .words = { "someuser" }, .local_recipient = "nosuch",
	  .want_rc = EX_CONFIG, .want_text = "local_recipient nosuch" },
	{ .desc = "-t and no recipients at all",
	  .input = "Subject: s\n\nb\n", .extract = true, .want_rc = EX_USAGE,
	  .want_text = "no recipients" },
	{ .desc = "-t with only undisclosed-recipients",
	  .input = "To: undisclosed-recipients:;\n\nb\n", .extract = true, .want_rc = EX_USAGE },
	{ .desc = "no -t and no words",
	  .input = "To: a@example.org\n\nb\n", .want_rc = EX_USAGE },
	{ .desc = "control characters in a recipient word",
	  .input = "Subject: s\n\nb\n", .words = { "a@example.org\r\nRCPT TO:<b@example.org>" },
	  .want_rc = EX_DATAERR },
	{ .desc = "a control byte in a recipient word",
	  .input = "Subject: s\n\nb\n", .words = { "a\x01@example.org" }, .want_rc = EX_DATAERR },
	{ .desc = "control characters in -f",
	  .input = "To: a@example.org\n\nb\n", .extract = true,
	  .sender = "alerts@example.com\r\nRCPT TO:<x@y>", .want_rc = EX_DATAERR },
	{ .desc = "control characters in -F",
	  .input = "To: a@example.org\n\nb\n", .extract = true, .full_name = "x\r\nBcc: y@z",
	  .want_rc = EX_DATAERR },
	{ .desc = "control byte in To under -t",
	  .input = "To: a\x01@example.org\n\nb\n", .extract = true, .want_rc = EX_DATAERR },
	{ .desc = "control byte in From",
	  .input = "To: a@example.org\nFrom: x\x7f@example.org\n\nb\n", .extract = true,
	  .want_rc = EX_DATAERR },
	{ .desc = "control byte in Cc without -t",
	  .input = "To: a@example.org\nCc: c\x02@example.org\n\nb\n", .words = { "a@example.org" },
	  .want_rc = EX_DATAERR },
};

/* s with CR and LF shown as \r and \n, for one-line test descriptions */
static const char *
visible(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s != '\0' && n + 3 < size; s++) {
		if (*s == '\r' || *s == '\n') {
			buf[n++] = '\\';
			buf[n++] = *s == '\r' ? 'r' : 'n';
		} else
			buf[n++] = *s;
	}
	buf[n] = '\0';
	return buf;
}

static char *
joined(const struct strlist *l)
{
	struct buf b = {0};
	size_t i;

	for (i = 0; i < l->n; i++)
		buf_printf(&b, "%s%s", i > 0 ? "," : "", l->v[i]);
	return buf_steal(&b);
}

/* "name|address" of a field's first mailbox, "" when the field is absent */
static char *
mailbox_of(struct message *m, const char *name)
{
	struct address_list l = {0};
	struct field *f = message_find(m, name);
	char *s, *spec;
	size_t i;

	if (f == NULL)
		return xstrdup("");
	if (rfc5322_parse_addresses(f->value, &l, NULL) != EX_OK)
		return xstrdup("(unparseable)");
	s = xstrdup("(no mailbox)");
	for (i = 0; i < l.n; i++)
		if (l.v[i].kind == ADDR_MAILBOX) {
			free(s);
			spec = address_spec(l.v[i].local, l.v[i].domain);
			s = xasprintf("%s|%s", l.v[i].name != NULL ? l.v[i].name : "", spec);
			free(spec);
			break;
		}
	address_list_free(&l);
	return s;
}

static size_t
count_fields(struct message *m, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < m->nfields; i++)
		if (strcasecmp(m->fields[i].name, name) == 0)
			n++;
	return n;
}

/* No bare name in any address field, no raw 8-bit, one From/Date/Message-ID. */
static bool
header_sane(struct message *m, const char **why)
{
	struct address_list l = {0};
	size_t i, j;

	for (i = 0; i < m->nfields; i++) {
		if (!str_is_ascii(m->fields[i].raw) && strncasecmp(m->fields[i].name, "Content-", 8) != 0)
			return (*why = "raw 8-bit header field"), false;
		if (!rfc5322_is_address_field(m->fields[i].name))
			continue;
		if (rfc5322_parse_addresses(m->fields[i].value, &l, NULL) != EX_OK)
			return (*why = "unparseable address field"), false;
		for (j = 0; j < l.n; j++)
			if (l.v[j].kind == ADDR_MAILBOX && l.v[j].domain == NULL) {
				address_list_free(&l);
				return (*why = "bare name in a header"), false;
			}
		address_list_free(&l);
	}
	if (count_fields(m, "From") != 1 || count_fields(m, "Date") != 1 ||
	    count_fields(m, "Message-ID") != 1)
		return (*why = "not exactly one From, Date and Message-ID"), false;
	if (count_fields(m, "Bcc") + count_fields(m, "Resent-Bcc") + count_fields(m, "Return-Path") +
	    count_fields(m, "Content-Length") != 0)
		return (*why = "a field that is never sent"), false;
	return true;
}

static char *
header_text(struct message *m)
{
	struct buf b = {0};
	size_t i;

	for (i = 0; i < m->nfields; i++)
		buf_adds(&b, m->fields[i].raw);
	return buf_steal(&b);
}

static int
prepare(const char *input, const struct config *cfg, struct options *o, struct message *m,
    struct envelope *env, struct status *st)
{
	FILE *in = tmpfile();
	int rc;

	fputs(input, in);
	rewind(in);
	memset(env, 0, sizeof(*env));
	status_clear(st);
	rc = message_read(in, false, NULL, m, st);
	fclose(in);
	if (rc != EX_OK)
		return rc;
	return policy_apply(cfg, o, aliases, m, env, NULL, st);
}

static void
run_case(const struct pcase *c)
{
	struct config cfg = base;
	struct options o = {0};
	struct message m;
	struct envelope env;
	struct status st;
	const char *why = "";
	char *s, *hdr, buf[256];
	size_t i;
	int rc, failed_before = tap_failed;

	if (c->local_recipient != NULL)
		cfg.local_recipient = (char *)c->local_recipient;
	if (c->from_name != NULL)
		cfg.from_name = (char *)c->from_name;
	if (c->never)
		cfg.rewrite_from = REWRITE_NEVER;
	o.extract = c->extract;
	o.sender = (char *)c->sender;
	o.full_name = (char *)c->full_name;
	for (i = 0; i < 4 && c->words[i] != NULL; i++)
		strlist_add(&o.recipients, c->words[i]);

	rc = prepare(c->input, &cfg, &o, &m, &env, &st);
	ok(rc == c->want_rc, "%s: exit %d (got %d: %s)", c->desc, c->want_rc, rc, st.text);
	if (c->want_text != NULL)
		ok(strstr(st.text, c->want_text) != NULL, "%s: reason \"%s\"", c->desc, st.text);
	if (rc != EX_OK || c->want_rc != EX_OK)
		goto out;

	if (c->want_rcpts != NULL) {
		s = joined(&env.rcpts);
		is_str(s, c->want_rcpts, "%s: recipients", c->desc);
		free(s);
	}
	for (i = 0; i < env.rcpts.n; i++)
		if (strchr(env.rcpts.v[i], '@') == NULL)
			ok(0, "%s: bare recipient %s", c->desc, env.rcpts.v[i]);
	if (c->want_sender != NULL)
		is_str(env.sender, c->want_sender, "%s: envelope sender", c->desc);
	if (c->want_from != NULL) {
		s = mailbox_of(&m, "From");
		is_str(s, c->want_from, "%s: From", c->desc);
		free(s);
	}
	if (c->want_reply_to != NULL) {
		s = mailbox_of(&m, "Reply-To");
		is_str(s, c->want_reply_to, "%s: Reply-To", c->desc);
		free(s);
		ok(count_fields(&m, "Reply-To") <= 1, "%s: at most one Reply-To", c->desc);
	}
	ok(header_sane(&m, &why), "%s: header sane (%s)", c->desc, why);
	hdr = header_text(&m);
	for (i = 0; i < 6 && c->has[i] != NULL; i++)
		ok(strstr(hdr, c->has[i]) != NULL, "%s: header has \"%s\"", c->desc,
		    visible(c->has[i], buf, sizeof(buf)));
	for (i = 0; i < 6 && c->lacks[i] != NULL; i++)
		ok(strstr(hdr, c->lacks[i]) == NULL, "%s: header lacks \"%s\"", c->desc,
		    visible(c->lacks[i], buf, sizeof(buf)));
	if (tap_failed > failed_before) {
		printf("# header:\n#   ");
		for (s = hdr; *s != '\0'; s++)
			if (*s == '\n')
				printf("\n#   ");
			else if (*s != '\r')
				putchar(*s);
		printf("\n");
	}
	free(hdr);
out:
	envelope_free(&env);
	message_free(&m);
	strlist_free(&o.recipients);
}

static void
test_details(void)
{
	struct config cfg = base;
	struct options o = {0};
	struct message m;
	struct envelope env;
	struct status st;
	struct field *f;
	char *v;

	/* 8-bit flags and DSN */
	o.extract = true;
	o.dsn_notify = "FAILURE,DELAY";
	o.dsn_ret = "HDRS";
	o.dsn_envid = "abc123";
	ok(prepare("To: a@example.org\n\ncaf\xc3\xa9\n", &cfg, &o, &m, &env, &st) == EX_OK,
	    "8-bit body prepared");
	ok(env.eightbit, "8-bit body: eightbit set");
	ok(!env.smtputf8, "ASCII addresses: no SMTPUTF8");
	is_str(env.dsn_notify, "FAILURE,DELAY", "DSN notify copied");
	is_str(env.dsn_ret, "HDRS", "DSN ret copied");
	is_str(env.dsn_envid, "abc123", "DSN envid copied");
	envelope_free(&env);
	message_free(&m);
	o.dsn_notify = o.dsn_ret = o.dsn_envid = NULL;

	ok(prepare("To: a@example.org\nSubject: \xe6\x97\xa5\xe6\x9c\xac\n\nplain\n", &cfg, &o, &m,
	    &env, &st) == EX_OK, "Japanese subject, ASCII body");
	ok(!env.eightbit, "subject encoded: nothing 8-bit left");
	f = message_find(&m, "Subject");
	v = f != NULL ? mime_decode_words(f->value) : NULL;
	is_str(v, "\xe6\x97\xa5\xe6\x9c\xac", "Subject decodes back to the original");
	free(v);
	envelope_free(&env);
	message_free(&m);

	ok(prepare("To: a@example.org\nSubject: caf\xe9 =?UTF-8?Q?d=C3=A9j=C3=A0?=\n\nb\n", &cfg, &o,
	    &m, &env, &st) == EX_OK, "ISO-8859-1 subject beside an encoded word");
	f = message_find(&m, "Subject");
	v = f != NULL ? mime_decode_words(f->value) : NULL;
	is_str(v, "caf\xc3\xa9 d\xc3\xa9j\xc3\xa0", "Latin-1 taken as such, no double encoding");
	free(v);
	envelope_free(&env);
	message_free(&m);

	o.extract = false;
	strlist_add(&o.recipients, "j\xc3\xb6rg@example.org");
	ok(prepare("Subject: s\n\nb\n", &cfg, &o, &m, &env, &st) == EX_OK, "non-ASCII recipient");
	ok(env.smtputf8, "non-ASCII recipient needs SMTPUTF8");
	envelope_free(&env);
	message_free(&m);
	strlist_free(&o.recipients);

	/* Date in RFC 5322 form with a numeric zone */
	o.extract = true;
	ok(prepare("To: a@example.org\n\nb\n", &cfg, &o, &m, &env, &st) == EX_OK, "Date added");
	f = message_find(&m, "Date");
	ok(f != NULL && strlen(f->value) >= 29 && strchr(f->value, ',') == f->value + 3 &&
	    (f->value[strlen(f->value) - 5] == '+' || f->value[strlen(f->value) - 5] == '-'),
	    "Date looks like \"Thu, 1 Jan 2026 00:00:00 +0000\": %s", f != NULL ? f->value : "");
	f = message_find(&m, "Message-ID");
	v = f != NULL ? xstrdup(f->value) : xstrdup("");
	envelope_free(&env);
	message_free(&m);
	ok(prepare("To: a@example.org\n\nb\n", &cfg, &o, &m, &env, &st) == EX_OK, "again");
	f = message_find(&m, "Message-ID");
	ok(f != NULL && strcmp(f->value, v) != 0, "Message-IDs differ: %s", v);
	ok(f != NULL && f->value[0] == '<' && f->value[strlen(f->value) - 1] == '>' &&
	    strchr(f->value, '@') != NULL && !str_has_ctl(f->value), "Message-ID is <x@y>");
	free(v);
	envelope_free(&env);
	message_free(&m);
}

static void
test_warnings(void)
{
	struct config cfg = base;
	struct options o = {0};
	struct message m;
	struct envelope env = {0};
	struct status st;
	char *warned = NULL;
	size_t n = 0;
	FILE *warn = open_memstream(&warned, &n), *in = tmpfile();

	fputs("Subject: s\n\nb\n", in);
	rewind(in);
	strlist_add(&o.recipients, "self");
	message_read(in, false, NULL, &m, &st);
	ok(policy_apply(&cfg, &o, aliases, &m, &env, warn, &st) == EX_OK, "self alias applied");
	fclose(warn);
	ok(warned != NULL && strstr(warned, "self") != NULL, "dropped local copy warned: %s",
	    warned != NULL ? warned : "");
	free(warned);
	envelope_free(&env);
	message_free(&m);
	strlist_free(&o.recipients);
	fclose(in);
}

static void
test_resolve(void)
{
	struct strlist words = {0}, out = {0};
	struct status st;
	char *s;

	strlist_add(&words, "root");
	strlist_add(&words, "ops, x@example.org");
	strlist_add(&words, "Admin@Example.org");
	status_clear(&st);
	ok(policy_resolve(&base, aliases, &words, &out, &st) == EX_OK, "-bv resolves");
	s = joined(&out);
	is_str(s, "admin@example.org,one@example.org,two@example.org,x@example.org",
	    "-bv: final addresses, unique");
	free(s);
	strlist_free(&out);
	strlist_add(&words, "nobody");
	ok(policy_resolve(&base, aliases, &words, &out, &st) == EX_NOUSER, "-bv: unknown name");
	ok(strstr(st.text, "nobody") != NULL, "-bv: reason names it: %s", st.text);
	strlist_free(&out);
	strlist_free(&words);
	strlist_add(&words, "a\nb@example.org");
	ok(policy_resolve(&base, aliases, &words, &out, &st) == EX_DATAERR, "-bv: control characters");
	strlist_free(&out);
	strlist_free(&words);
}

static void
setup(void)
{
	char path[] = "/tmp/test_policy.XXXXXX";
	struct status st;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs(alias_text, f);
	fclose(f);
	aliases_load(path, &aliases, NULL, &st);
	unlink(path);

	base.from = FROM;
	base.from_name = "";
	strlist_add(&base.allowed_from, ALLOWED);
	base.rewrite_from = REWRITE_AUTO;
	strlist_add(&base.local_domains, "localhost");
	strlist_add(&base.local_domains, "host.example.net");
	base.local_recipient = "";
	base.qualify_domain = "host.example.net";
}

int
main(void)
{
	size_t i;

	setup();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_details();
	test_warnings();
	test_resolve();
	aliases_free(aliases);
	strlist_free(&base.allowed_from);
	strlist_free(&base.local_domains);
	return tap_done();
}
