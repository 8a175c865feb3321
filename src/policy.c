/* policy.c: recipients, the envelope sender and the header rewrites ACS needs (SPEC §4-§5) */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mime.h"
#include "policy.h"
#include "rfc5322.h"

#define RESOLVE_DEPTH	32	/* longer alias chains (through local domains) are cut */

/* Recipient resolution: one run over the words and header fields of one
 * message (or of one -bv request). */
struct resolver {
	const struct config *cfg;
	const struct aliases *al;
	struct strlist *out;	/* final addresses, unique */
	FILE *warn;
	bool smtputf8;		/* some final address is not ASCII */
	size_t delivered;	/* final addresses reached from the current name */
	bool in_fallback;	/* resolving local_recipient */
	struct strlist dropped;	/* names left over from an alias, nowhere to go */
};

/* Fields that hold no free text: never turned into encoded words. */
/* The address fields that decide where mail goes or whom it is from:
 * one that cannot be parsed is refused. */
static const char *const routing_fields[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Resent-From", "Resent-Sender",
	"Resent-Reply-To", "Resent-To", "Resent-Cc", "Resent-Bcc", NULL,
};

static const char *const structured_fields[] = {
	"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
	"Content-Language", "Content-Location", "Content-MD5",
	"MIME-Version", "Message-ID", "In-Reply-To", "References", "Date", "Received",
	"Resent-Date", "Resent-Message-ID", "DKIM-Signature", "ARC-Seal",
	"ARC-Message-Signature", "ARC-Authentication-Results", "Authentication-Results",
	"List-Unsubscribe", "List-Post", "List-Help", "List-Subscribe", "List-Archive",
	"List-Owner", "List-ID", "Return-Path", NULL,
};

/* Never transmitted, in any mode (SPEC §4). */
static const char *const removed_fields[] = {
	"Bcc", "Resent-Bcc", "Return-Path", "Content-Length", NULL,
};

static bool
name_in(const char *name, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcasecmp(name, *list) == 0)
			return true;
	return false;
}

static bool
addr_is_ascii(const struct address *a)
{
	return str_is_ascii(a->local) && (a->domain == NULL || str_is_ascii(a->domain));
}

/* A string from the command line or the config that will land in the
 * envelope or a header: a tab is white space, any other control
 * character could smuggle a command or a field. */
static int
check_argument(const char *what, const char *s, struct status *st)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return status_set(st, EX_DATAERR, "%s holds a control character", what);
	return EX_OK;
}

static int
parse_addresses(const char *what, const char *value, struct address_list *l, struct status *st)
{
	struct status pst;

	status_clear(&pst);
	if (rfc5322_parse_addresses(value, l, &pst) != EX_OK)
		return status_set(st, pst.code != EX_OK ? pst.code : EX_DATAERR, "%s: %s", what,
		    pst.text);
	return EX_OK;
}

static const struct address *
first_mailbox(const struct address_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].kind == ADDR_MAILBOX)
			return &l->v[i];
	return NULL;
}

static bool
is_local(const struct config *cfg, const char *domain)
{
	return domain == NULL || config_domain_is_local(cfg, domain);
}

/* The domain that completes bare names in headers. */
static const char *
qualify_domain(const struct config *cfg)
{
	const char *at;

	if (cfg->qualify_domain != NULL && *cfg->qualify_domain != '\0')
		return cfg->qualify_domain;
	if (cfg->from != NULL && (at = strrchr(cfg->from, '@')) != NULL)
		return at + 1;
	return "localhost";
}

static bool
sender_allowed(const struct config *cfg, const struct address *a)
{
	char *spec;
	bool allowed;

	if (a->domain == NULL)
		return false;
	spec = address_spec(a->local, a->domain);
	allowed = config_sender_allowed(cfg, spec);
	free(spec);
	return allowed;
}

/* --- recipients ------------------------------------------------------ */

static int resolve_mailbox(struct resolver *r, const char *local, const char *domain,
    struct strlist *path, struct status *st);

/* Resolves every mailbox of an alias target or of local_recipient. */
static int
resolve_text(struct resolver *r, const char *what, const char *text, struct strlist *path,
    struct status *st)
{
	struct address_list l = {0};
	size_t i;
	int rc;

	if ((rc = parse_addresses(what, text, &l, st)) != EX_OK) {
		address_list_free(&l);
		return rc;
	}
	for (i = 0; i < l.n && rc == EX_OK; i++)
		if (l.v[i].kind == ADDR_MAILBOX && *l.v[i].local != '\0')
			rc = resolve_mailbox(r, l.v[i].local, l.v[i].domain, path, st);
	address_list_free(&l);
	return rc;
}

/* A local name nothing resolves: local_recipient, else left over. */
static int
resolve_unknown(struct resolver *r, const char *local, struct strlist *path, struct status *st)
{
	const char *lr = r->cfg->local_recipient;
	size_t before = r->delivered;
	int rc;

	if (lr == NULL || *lr == '\0') {
		strlist_add_unique(&r->dropped, local);
		return EX_OK;
	}
	if (r->in_fallback)
		return status_set(st, EX_CONFIG, "local_recipient %s is a local name without "
		    "an alias", lr);
	/* the fallback may itself be an alias name: resolved, but only once */
	r->in_fallback = true;
	rc = resolve_text(r, "local_recipient", lr, path, st);
	r->in_fallback = false;
	if (rc == EX_OK && r->delivered == before)
		rc = status_set(st, EX_CONFIG, "local_recipient %s holds no address", lr);
	return rc;
}

static int
resolve_mailbox(struct resolver *r, const char *local, const char *domain, struct strlist *path,
    struct status *st)
{
	struct strlist targets = {0};
	char *what;
	size_t i;
	int rc = EX_OK;

	if (!is_local(r->cfg, domain)) {
		strlist_add_owned(&targets, address_spec(local, domain));
		strlist_add_unique(r->out, targets.v[0]);
		if (!str_is_ascii(local) || !str_is_ascii(domain))
			r->smtputf8 = true;
		r->delivered++;
		strlist_free(&targets);
		return EX_OK;
	}
	/* a name met again on its own path is final there (root: root, admin@x) */
	if (strlist_has(path, local) || path->n >= RESOLVE_DEPTH ||
	    aliases_expand(r->al, local, &targets) == 0) {
		strlist_free(&targets);
		return resolve_unknown(r, local, path, st);
	}
	strlist_add(path, local);
	for (i = 0; i < targets.n && rc == EX_OK; i++) {
		what = xasprintf("alias %s: target %s", local, targets.v[i]);
		rc = resolve_text(r, what, targets.v[i], path, st);
		if (rc == EX_DATAERR)
			rc = EX_CONFIG;	/* the aliases file is at fault, not the message */
		free(what);
	}
	path->n--;
	free(path->v[path->n]);
	strlist_free(&targets);
	return rc;
}

/* One address the caller named: at least one final address must come of
 * it. Names left over inside an alias that also reaches real addresses
 * are dropped with a warning (sendmail would deliver them locally). */
static int
resolve_top(struct resolver *r, const struct address *a, struct status *st)
{
	struct strlist path = {0};
	size_t i;
	int rc;

	r->delivered = 0;
	strlist_free(&r->dropped);
	rc = resolve_mailbox(r, a->local, a->domain, &path, st);
	strlist_free(&path);
	if (rc != EX_OK)
		return rc;
	if (r->delivered == 0)
		return status_set(st, EX_NOUSER, "no such user: %s (no alias, local_recipient is "
		    "not set)", r->dropped.n > 0 ? r->dropped.v[0] : a->local);
	for (i = 0; i < r->dropped.n && r->warn != NULL; i++)
		fprintf(r->warn, "acsmail: %s: local name %s has nowhere to go (local_recipient "
		    "is not set); skipped\n", a->local, r->dropped.v[i]);
	strlist_free(&r->dropped);
	return EX_OK;
}

static int
resolve_list(struct resolver *r, const struct address_list *l, size_t *mailboxes,
    struct status *st)
{
	size_t i;
	int rc;

	for (i = 0; i < l->n; i++) {
		if (l->v[i].kind != ADDR_MAILBOX || *l->v[i].local == '\0')
			continue;
		(*mailboxes)++;
		if ((rc = resolve_top(r, &l->v[i], st)) != EX_OK)
			return rc;
	}
	return EX_OK;
}

static int
resolve_words(struct resolver *r, const struct strlist *words, size_t *mailboxes,
    struct status *st)
{
	struct address_list l = {0};
	size_t i;
	int rc = EX_OK;

	for (i = 0; i < words->n && rc == EX_OK; i++) {
		if ((rc = check_argument("recipient", words->v[i], st)) != EX_OK)
			break;
		if ((rc = parse_addresses("recipient", words->v[i], &l, st)) == EX_OK)
			rc = resolve_list(r, &l, mailboxes, st);
		address_list_free(&l);
	}
	return rc;
}

static bool
has_resent(const struct message *m)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		if (strncasecmp(m->fields[i].name, "Resent-", 7) == 0)
			return true;
	return false;
}

/* -t: To, Cc and Bcc, or their Resent- forms when the message is resent. */
static int
resolve_header(struct resolver *r, const struct message *m, size_t *mailboxes,
    struct status *st)
{
	static const char *const plain[] = { "To", "Cc", "Bcc", NULL };
	static const char *const resent[] = { "Resent-To", "Resent-Cc", "Resent-Bcc", NULL };
	const char *const *names = has_resent(m) ? resent : plain;
	struct address_list l = {0};
	size_t i;
	int rc = EX_OK;

	for (i = 0; i < m->nfields && rc == EX_OK; i++) {
		if (!name_in(m->fields[i].name, names))
			continue;
		if ((rc = parse_addresses(m->fields[i].name, m->fields[i].value, &l, st)) == EX_OK)
			rc = resolve_list(r, &l, mailboxes, st);
		address_list_free(&l);
	}
	return rc;
}

static int
policy_recipients(const struct config *cfg, const struct options *o, const struct aliases *al,
    const struct message *m, struct envelope *env, FILE *warn, struct status *st)
{
	struct resolver r = { .cfg = cfg, .al = al, .out = &env->rcpts, .warn = warn };
	size_t mailboxes = 0;
	int rc;

	if (!o->extract && o->recipients.n == 0)
		return status_set(st, EX_USAGE, "no recipients given (name them, or use -t)");
	rc = resolve_words(&r, &o->recipients, &mailboxes, st);
	if (rc == EX_OK && o->extract)
		rc = resolve_header(&r, m, &mailboxes, st);
	strlist_free(&r.dropped);
	if (rc != EX_OK)
		return rc;
	if (mailboxes == 0 || env->rcpts.n == 0)
		return status_set(st, EX_USAGE, "no recipients%s", o->extract ?
		    " in the command line or the To, Cc and Bcc fields" : "");
	if (r.smtputf8)
		env->smtputf8 = true;
	return EX_OK;
}

/* --- sender ----------------------------------------------------------- */

/* The envelope sender a mailbox list offers: its first mailbox, when every
 * mailbox is allowed; otherwise the From field is rewritten to `from`, and
 * the envelope follows it. */
static char *
allowed_sender(const struct config *cfg, const struct address_list *l, struct envelope *env)
{
	const struct address *a = first_mailbox(l);
	size_t i;

	if (a == NULL)
		return NULL;
	for (i = 0; i < l->n; i++)
		if (l->v[i].kind == ADDR_MAILBOX && !sender_allowed(cfg, &l->v[i]))
			return NULL;
	if (!addr_is_ascii(a))
		env->smtputf8 = true;
	return address_spec(a->local, a->domain);
}

/* MAIL FROM: -f when allowed, else the From address when allowed, else
 * `from`. A bare or local name is never allowed. requested tells whether
 * the result is what -f asked for. */
static int
policy_sender(const struct config *cfg, const struct options *o, struct message *m,
    struct envelope *env, bool *requested, struct status *st)
{
	struct address_list l = {0};
	struct field *f;
	int rc;

	*requested = false;
	if (o->sender != NULL) {
		if ((rc = check_argument("sender (-f)", o->sender, st)) != EX_OK)
			return rc;
		/* the null sender (-f '<>') is no MailFrom address: ACS refuses
		 * it, so it is treated as any other sender it would refuse */
		if (*o->sender != '\0' && strcmp(o->sender, "<>") != 0) {
			rc = parse_addresses("sender (-f)", o->sender, &l, st);
			if (rc == EX_OK)
				env->sender = allowed_sender(cfg, &l, env);
			address_list_free(&l);
			if (rc != EX_OK)
				return rc;
			if (env->sender != NULL) {
				*requested = true;
				return EX_OK;
			}
		}
	}
	if ((f = message_find(m, "From")) != NULL) {
		rc = parse_addresses("From", f->value, &l, st);
		if (rc == EX_OK)
			env->sender = allowed_sender(cfg, &l, env);
		address_list_free(&l);
		if (rc != EX_OK)
			return rc;
	}
	if (env->sender == NULL)
		env->sender = xstrdup(cfg->from);
	return EX_OK;
}

/* --- header ----------------------------------------------------------- */

static void
split_address(const char *spec, struct address *a)
{
	const char *at = strrchr(spec, '@');

	a->kind = ADDR_MAILBOX;
	a->local = at != NULL ? xstrndup(spec, (size_t)(at - spec)) : xstrdup(spec);
	a->domain = at != NULL ? xstrdup(at + 1) : NULL;
}

static const char *
nonempty(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/* A one-mailbox field body: "Name" <spec>. */
static char *
format_mailbox(const char *name, const char *spec, size_t column)
{
	struct address a = {0};
	struct address_list l = { &a, 1, 1 };
	char *s;

	split_address(spec, &a);
	a.name = (char *)name;
	s = rfc5322_format_addresses(&l, column);
	free(a.local);
	free(a.domain);
	return s;
}

static char *
default_name(const struct config *cfg, const struct options *o)
{
	const char *n = nonempty(o->full_name);

	if (n == NULL)
		n = nonempty(cfg->from_name);
	return n != NULL ? xstrdup(n) : NULL;
}

static void
add_reply_to(struct message *m, const struct address_list *replaced)
{
	char *v;

	if (replaced->n == 0 || message_find(m, "Reply-To") != NULL)
		return;
	v = rfc5322_format_addresses(replaced, strlen("Reply-To: "));
	message_add(m, "Reply-To", v);
	free(v);
}

static void
address_copy(struct address_list *l, const struct address *a)
{
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 4 : l->cap * 2;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].kind = ADDR_MAILBOX;
	l->v[l->n].name = a->name != NULL ? xstrdup(a->name) : NULL;
	l->v[l->n].local = xstrdup(a->local);
	l->v[l->n].domain = a->domain != NULL ? xstrdup(a->domain) : NULL;
	l->n++;
}

/*
 * The From field (SPEC §5). ACS identifies the sender by the From address,
 * so a From that is not allowed is rewritten to `from` even when -f named
 * an allowed envelope sender: the display name stays, and the replaced
 * address, when it had a real domain, becomes Reply-To so answers still
 * reach its owner. A From with several mailboxes is kept only when every
 * one of them is allowed; otherwise it becomes the single `from` mailbox.
 * A missing From is written with the envelope sender when -f asked for an
 * allowed one (as Postfix does), else with `from`.
 */
static int
policy_from(const struct config *cfg, const struct options *o, struct message *m,
    const struct envelope *env, bool requested, struct status *st)
{
	struct address_list l = {0}, replaced = {0};
	const struct address *first;
	struct field *f;
	char *name = NULL, *v;
	bool allowed = true;
	size_t i, n;
	int rc;

	if ((f = message_find(m, "From")) == NULL) {
		name = default_name(cfg, o);
		v = format_mailbox(name, requested ? env->sender : cfg->from, strlen("From: "));
		message_add(m, "From", v);
		free(v);
		free(name);
		return EX_OK;
	}
	if ((rc = parse_addresses("From", f->value, &l, st)) != EX_OK)
		goto out;
	for (i = n = 0; i < l.n; i++)
		if (l.v[i].kind == ADDR_MAILBOX) {
			n++;
			if (!sender_allowed(cfg, &l.v[i]))
				allowed = false;
		}
	if (n > 0 && allowed)
		goto out;	/* kept; bare names and encoding are seen to later */
	if (n > 0 && cfg->rewrite_from == REWRITE_NEVER)
		goto out;
	first = first_mailbox(&l);
	if (first != NULL && nonempty(first->name) != NULL)
		name = xstrdup(first->name);
	else
		name = default_name(cfg, o);
	for (i = 0; i < l.n; i++)
		if (l.v[i].kind == ADDR_MAILBOX && !is_local(cfg, l.v[i].domain) &&
		    !sender_allowed(cfg, &l.v[i]))
			address_copy(&replaced, &l.v[i]);
	v = format_mailbox(name, cfg->from, strlen("From: "));
	message_replace(m, f, v);
	free(v);
	add_reply_to(m, &replaced);
out:
	free(name);
	address_list_free(&l);
	address_list_free(&replaced);
	return rc;
}

/* Sender names the agent that sent the message. ACS goes by From, and
 * beside a From rewritten to `from` a foreign Sender only invites a
 * refusal, so a Sender (or Resent-Sender) that is not allowed is dropped
 * rather than rewritten. rewrite_from = never keeps it. */
static int
policy_sender_field(const struct config *cfg, struct message *m, struct status *st)
{
	static const char *const names[] = { "Sender", "Resent-Sender" };
	struct address_list l = {0};
	const struct address *a;
	struct field *f;
	size_t i;
	int rc;

	for (i = 0; i < 2; i++) {
		if ((f = message_find(m, names[i])) == NULL)
			continue;
		if ((rc = parse_addresses(names[i], f->value, &l, st)) != EX_OK) {
			address_list_free(&l);
			return rc;
		}
		a = first_mailbox(&l);
		if (cfg->rewrite_from != REWRITE_NEVER && (a == NULL || !sender_allowed(cfg, a)))
			message_remove(m, names[i]);
		address_list_free(&l);
	}
	return EX_OK;
}

/* Every address field: bare names get qualify_domain, raw non-ASCII
 * display names become encoded words. Fields that need neither keep
 * their original folding. */
static bool has_control(const char *s);

static int
policy_address_fields(const struct config *cfg, struct message *m, struct envelope *env,
    struct status *st)
{
	struct address_list l = {0};
	struct strlist dropped = {0};
	struct field *f;
	size_t i, j;
	bool change;
	char *v;
	int rc;

	for (i = 0; i < m->nfields; i++) {
		f = &m->fields[i];
		if (!rfc5322_is_address_field(f->name))
			continue;
		if ((rc = parse_addresses(f->name, f->value, &l, st)) != EX_OK) {
			address_list_free(&l);
			/* a field that only asks for a reply or a receipt is
			 * dropped rather than cost the message: as it came it
			 * could carry a bare name or raw 8-bit text */
			if (!name_in(f->name, routing_fields) && rc == EX_DATAERR &&
			    !has_control(f->value)) {
				status_clear(st);
				strlist_add_unique(&dropped, f->name);
				continue;
			}
			strlist_free(&dropped);
			return rc;
		}
		change = !str_is_ascii(f->value);
		for (j = 0; j < l.n; j++) {
			if (l.v[j].kind != ADDR_MAILBOX)
				continue;
			if (l.v[j].domain == NULL && *l.v[j].local != '\0') {
				l.v[j].domain = xstrdup(qualify_domain(cfg));
				change = true;
			}
			if (!addr_is_ascii(&l.v[j]))
				env->smtputf8 = true;
		}
		if (change) {
			v = rfc5322_format_addresses(&l, strlen(f->name) + 2);
			message_replace(m, f, v);
			free(v);
		}
		address_list_free(&l);
	}
	for (i = 0; i < dropped.n; i++)
		message_remove(m, dropped.v[i]);
	strlist_free(&dropped);
	return EX_OK;
}

static bool
utf8_valid(const unsigned char *s)
{
	size_t n, i;

	while (*s != '\0') {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf)
			n = 1;
		else if (*s >= 0xe0 && *s <= 0xef)
			n = 2;
		else if (*s >= 0xf0 && *s <= 0xf4)
			n = 3;
		else
			return false;
		for (i = 1; i <= n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return false;
		s += n + 1;
	}
	return true;
}

/* Raw text that is not UTF-8 is taken to be ISO-8859-1, the usual
 * alternative in old scripts. */
static char *
as_utf8(const char *s)
{
	struct buf b = {0};
	const unsigned char *p;

	if (utf8_valid((const unsigned char *)s))
		return xstrdup(s);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x80) {
			buf_addc(&b, (char)*p);
			continue;
		}
		buf_addc(&b, (char)(0xc0 | (*p >> 6)));
		buf_addc(&b, (char)(0x80 | (*p & 0x3f)));
	}
	return buf_steal(&b);
}

/* Raw 8-bit text that is not UTF-8 (Latin-1 from old scripts) becomes
 * UTF-8 first, so that every encoded word written later says the truth. */
static void
policy_charset(struct message *m)
{
	char *v;
	size_t i;

	for (i = 0; i < m->nfields; i++) {
		if (utf8_valid((const unsigned char *)m->fields[i].value))
			continue;
		v = as_utf8(m->fields[i].value);
		message_replace(m, &m->fields[i], v);
		free(v);
	}
}

/* RFC 5322 2.1.1: no line over 998 octets. A field line that long (a To of
 * a hundred addresses on one line, a cron Subject of a long command) is
 * folded at its blanks, below 78 columns where it can be; a field without a
 * blank to fold at is left, its parts too long to break. */
static void
policy_fold_long_lines(struct message *m)
{
	struct buf b = {0};
	const char *line, *end, *p;
	bool overlong;
	size_t i, col, start, blank;

	for (i = 0; i < m->nfields; i++) {
		overlong = false;
		for (line = m->fields[i].raw; *line != '\0'; line = end + (*end != '\0')) {
			end = strchr(line, '\n');
			if (end == NULL)
				end = line + strlen(line);
			if (end - line > 998 + 1)
				overlong = true;
		}
		if (!overlong)
			continue;
		/* refold the unfolded value: a line that passes 77 columns is
		 * broken before its last blank */
		buf_reset(&b);
		col = strlen(m->fields[i].name) + 2;
		start = 0;
		blank = SIZE_MAX;
		for (p = m->fields[i].value; *p != '\0'; p++) {
			if ((*p == ' ' || *p == '\t') && b.len > start)
				blank = b.len;
			buf_addc(&b, *p);
			col++;
			if (col > 77 && blank != SIZE_MAX) {
				buf_add(&b, "\r\n", 2);
				memmove(b.s + blank + 2, b.s + blank, b.len - 2 - blank);
				memcpy(b.s + blank, "\r\n", 2);
				start = blank + 2;
				col = b.len - start;
				blank = SIZE_MAX;
			}
		}
		message_replace(m, &m->fields[i], b.s != NULL ? b.s : "");
	}
	buf_free(&b);
}

/* A control character other than TAB: a bare CR, a NUL (kept as DEL by
 * message_read), ... None of them may reach the relay raw. */
static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

static char *
without_controls(const char *s)
{
	char *v = xstrdup(s), *p;

	for (p = v; *p != '\0'; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			*p = ' ';
	return v;
}

/* Appends a piece of an unstructured field, on a new line when it would
 * pass 77 columns. */
static void
text_add_piece(struct buf *out, size_t *col, char *piece)
{
	const char *nl;

	if (out->len > 0) {
		if (*col + 1 + strcspn(piece, "\r") > 77) {
			buf_adds(out, "\r\n");
			*col = 0;
		}
		buf_addc(out, ' ');
		(*col)++;
	}
	buf_adds(out, piece);
	nl = strrchr(piece, '\n');
	*col = nl != NULL ? strlen(nl + 1) : *col + strlen(piece);
	free(piece);
}

/* The run of plain words before or after an encoded word, encoded when it
 * needs it; an encoded run carries the blank next to the encoded word
 * inside it, since blanks between encoded words are not text (RFC 2047 6.2). */
static void
text_flush_run(struct buf *out, size_t *col, struct buf *run, bool before, bool after)
{
	struct buf t = {0};

	if (run->len == 0)
		return;
	if (str_is_ascii(run->s) && !has_control(run->s)) {
		text_add_piece(out, col, buf_steal(run));
		return;
	}
	if (after)
		buf_addc(&t, ' ');
	buf_add(&t, run->s, run->len);
	if (before)
		buf_addc(&t, ' ');
	text_add_piece(out, col, mime_encode_text(t.s, *col + (out->len > 0)));
	buf_free(&t);
	buf_reset(run);
}

/* Text for an unstructured field: the encoded words that decoding left
 * (a charset not decoded) stay as they are, the runs between are encoded. */
static char *
encode_text_keeping_words(const char *text, size_t column)
{
	struct buf out = {0}, run = {0};
	const char *p = text, *end;
	size_t col = column;
	bool after_word = false;

	for (;; p = end + 1) {
		end = p + strcspn(p, " ");
		if (end > p && mime_is_encoded_word(p, (size_t)(end - p))) {
			text_flush_run(&out, &col, &run, true, after_word);
			text_add_piece(&out, &col, xstrndup(p, (size_t)(end - p)));
			after_word = true;
		} else if (end > p) {
			if (run.len > 0)
				buf_addc(&run, ' ');
			buf_add(&run, p, (size_t)(end - p));
		}
		if (*end == '\0')
			break;
	}
	text_flush_run(&out, &col, &run, false, after_word);
	buf_free(&run);
	return buf_steal(&out);
}

/* Subject and other free text with raw non-ASCII bytes or control
 * characters: encoded words, which carry them safely.
 * Encoded words already in the text are decoded first, so nothing is
 * encoded twice. */
static void
policy_encode_text(struct message *m)
{
	struct field *f;
	char *decoded, *v;
	size_t i;

	for (i = 0; i < m->nfields; i++) {
		f = &m->fields[i];
		if ((str_is_ascii(f->value) && !has_control(f->value)) ||
		    rfc5322_is_address_field(f->name))
			continue;
		if (name_in(f->name, structured_fields)) {
			if (has_control(f->value)) {
				v = without_controls(f->value);
				message_replace(m, f, v);
				free(v);
			}
			continue;
		}
		/* policy_charset made the text UTF-8 already */
		decoded = mime_decode_words(f->value);
		v = encode_text_keeping_words(decoded, strlen(f->name) + 2);
		message_replace(m, f, v);
		free(v);
		free(decoded);
	}
}

/* Fields never sent, and To or Cc fields that hold nothing at all (an
 * empty address list is not a valid field; undisclosed-recipients:;
 * takes its place when nothing else is left). */
static void
policy_remove_fields(struct message *m)
{
	static const char *const lists[] = { "To", "Cc", NULL };
	bool empty;
	size_t i, j;

	for (i = 0; removed_fields[i] != NULL; i++)
		message_remove(m, removed_fields[i]);
	for (i = 0; lists[i] != NULL; i++) {
		empty = message_find(m, lists[i]) != NULL;
		for (j = 0; j < m->nfields && empty; j++)
			if (strcasecmp(m->fields[j].name, lists[i]) == 0 &&
			    *m->fields[j].value != '\0')
				empty = false;
		if (empty)
			message_remove(m, lists[i]);
	}
}

/* Several From fields (not valid, but scripts write them) become one
 * field with all their mailboxes, which the From rules then judge. */
static void
policy_merge_from(struct message *m)
{
	struct buf b = {0};
	size_t i, n = 0;

	for (i = 0; i < m->nfields; i++)
		if (strcasecmp(m->fields[i].name, "From") == 0 && *m->fields[i].value != '\0') {
			buf_printf(&b, "%s%s", n > 0 ? ", " : "", m->fields[i].value);
			n++;
		}
	if (n > 1) {
		message_remove(m, "From");
		message_prepend(m, "From", b.s);
	}
	buf_free(&b);
}

static char *
rfc5322_date(time_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	char zone[16];

	localtime_r(&t, &tm);
	if (strftime(zone, sizeof(zone), "%z", &tm) == 0 || (zone[0] != '+' && zone[0] != '-'))
		strcpy(zone, "+0000");
	return xasprintf("%s, %d %s %d %02d:%02d:%02d %s", days[tm.tm_wday % 7], tm.tm_mday,
	    months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
}

static void
random_hex(char *out, size_t bytes)
{
	unsigned char r[16];
	struct timespec ts;
	size_t i, got = 0;
	ssize_t n;
	int fd;

	if (bytes > sizeof(r))
		bytes = sizeof(r);
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) != -1) {
		while (got < bytes && (n = read(fd, r + got, bytes - got)) > 0)
			got += (size_t)n;
		close(fd);
	}
	if (got < bytes) {
		/* no /dev/urandom (a chroot): the clock still differs per call */
		clock_gettime(CLOCK_REALTIME, &ts);
		for (i = 0; i < bytes; i++)
			r[i] = (unsigned char)((unsigned long)ts.tv_nsec >> (8 * (i % 4))) ^
			    (unsigned char)(getpid() >> (8 * (i % 2))) ^ (unsigned char)(i * 37);
	}
	for (i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

/* <YYYYmmddHHMMSS.pid.random@domain>, the domain taken from the final From */
static char *
message_id(const struct config *cfg, struct message *m, time_t now)
{
	struct address_list l = {0};
	const struct address *a = NULL;
	struct field *f = message_find(m, "From");
	const char *domain = NULL, *at;
	char rnd[33], stamp[32];
	struct tm tm;
	char *id;

	if (f != NULL && rfc5322_parse_addresses(f->value, &l, NULL) == EX_OK)
		a = first_mailbox(&l);
	if (a != NULL && a->domain != NULL && str_is_ascii(a->domain) && *a->domain != '\0')
		domain = a->domain;
	else if (cfg->from != NULL && (at = strrchr(cfg->from, '@')) != NULL)
		domain = at + 1;
	else
		domain = qualify_domain(cfg);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	random_hex(rnd, 12);
	id = xasprintf("<%s.%ld.%s@%s>", stamp, (long)getpid(), rnd, domain);
	address_list_free(&l);
	return id;
}

static void
policy_add_fields(const struct config *cfg, struct message *m)
{
	time_t now = time(NULL);
	char *v;

	if (message_find(m, "Date") == NULL) {
		v = rfc5322_date(now);
		message_add(m, "Date", v);
		free(v);
	}
	if (message_find(m, "Message-ID") == NULL) {
		v = message_id(cfg, m, now);
		message_add(m, "Message-ID", v);
		free(v);
	}
	if (message_find(m, "To") == NULL && message_find(m, "Cc") == NULL)
		message_add(m, "To", "undisclosed-recipients:;");
	/* an 8-bit body must be declared; a Content-Type already there says
	 * what the body is and stays */
	if (m->body_8bit && message_find(m, "MIME-Version") == NULL)
		message_add(m, "MIME-Version", "1.0");
	if (m->body_8bit && message_find(m, "Content-Type") == NULL)
		message_add(m, "Content-Type", "text/plain; charset=UTF-8");
	/* without it the body would claim to be 7bit (RFC 2045 6.1) */
	if (m->body_8bit && message_find(m, "Content-Transfer-Encoding") == NULL)
		message_add(m, "Content-Transfer-Encoding", "8bit");
}

static bool
header_is_8bit(const struct message *m)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		if (!str_is_ascii(m->fields[i].raw))
			return true;
	return false;
}

int
policy_apply(const struct config *cfg, const struct options *o, const struct aliases *al,
    struct message *m, struct envelope *env, FILE *warn, struct status *st)
{
	bool requested;
	int rc;

	if (cfg->from == NULL || strchr(cfg->from, '@') == NULL || str_has_ctl(cfg->from) ||
	    (cfg->from_name != NULL && str_has_ctl(cfg->from_name)))
		return status_set(st, EX_CONFIG, "from must be an address, from_name plain text");
	if (o->full_name != NULL &&
	    (rc = check_argument("full name (-F)", o->full_name, st)) != EX_OK)
		return rc;
	policy_charset(m);
	policy_merge_from(m);
	if ((rc = policy_recipients(cfg, o, al, m, env, warn, st)) != EX_OK)
		return rc;
	if ((rc = policy_sender(cfg, o, m, env, &requested, st)) != EX_OK)
		return rc;
	policy_remove_fields(m);
	if ((rc = policy_from(cfg, o, m, env, requested, st)) != EX_OK)
		return rc;
	if ((rc = policy_sender_field(cfg, m, st)) != EX_OK)
		return rc;
	if ((rc = policy_address_fields(cfg, m, env, st)) != EX_OK)
		return rc;
	policy_encode_text(m);
	policy_add_fields(cfg, m);
	policy_fold_long_lines(m);
	m->header_8bit = header_is_8bit(m);
	env->eightbit = m->body_8bit || m->header_8bit;
	env->dsn_notify = o->dsn_notify != NULL ? xstrdup(o->dsn_notify) : NULL;
	env->dsn_ret = o->dsn_ret != NULL ? xstrdup(o->dsn_ret) : NULL;
	env->dsn_envid = o->dsn_envid != NULL ? xstrdup(o->dsn_envid) : NULL;
	return EX_OK;
}

int
policy_resolve(const struct config *cfg, const struct aliases *al, const struct strlist *words,
    struct strlist *out, struct status *st)
{
	struct resolver r = { .cfg = cfg, .al = al, .out = out };
	size_t mailboxes = 0;
	int rc;

	rc = resolve_words(&r, words, &mailboxes, st);
	strlist_free(&r.dropped);
	if (rc == EX_OK && mailboxes == 0)
		return status_set(st, EX_USAGE, "no recipients given");
	return rc;
}
