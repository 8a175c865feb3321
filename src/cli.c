/* cli.c: the sendmail command line (SPEC §2) turned into options
 *
 * The grammar is getopt's, as sendmail and Postfix use it: a word starting
 * with '-' is a cluster of option letters; a letter that takes a value takes
 * the rest of the word, or the next word when the rest is empty. Options end
 * at the first word that is not an option, or after "--". -o, -b and -q have
 * their own small sub-languages, decoded here too.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* letters that stand alone; those ignored here are accepted for sendmail's sake */
#define FLAG_LETTERS	"tivGUmns"
/* letters that take a value (-q is apart: its value is optional) */
#define VALUE_LETTERS	"ABCFLNORVXbfhopr"

/* The longest interval -q<time> accepts: a year. */
#define QUEUE_INTERVAL_MAX	(366L * 24 * 3600)

struct argv_cursor {
	int argc;
	char **argv;
	int i;			/* the word being parsed */
};

/* A piece of argv fit for a message: printable, and not too long. */
static const char *
printable(const char *s, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outsz; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[i] = '\0';
	return out;
}

static int
unknown_option(struct status *st, const char *prefix, const char *rest)
{
	char shown[64];

	return status_set(st, EX_USAGE, "unknown option %s%s (acsmail --help lists them)",
	    prefix, printable(rest, shown, sizeof(shown)));
}

static void
replace(char **slot, const char *value)
{
	free(*slot);
	*slot = xstrdup(value);
}

static void
upcase(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)toupper((unsigned char)*s);
}

/* The value of the option letter at *p: the rest of the word, or the next
 * word. Returns NULL when there is none. */
static const char *
take_value(struct argv_cursor *c, const char *p)
{
	if (p[1] != '\0')
		return p + 1;
	if (c->i + 1 < c->argc)
		return c->argv[++c->i];
	return NULL;
}

/* -f/-r: "<>" (or nothing) is the null sender; "<a@x>" and
 * "Name <a@x>" give a@x, as Postfix takes the address out of the phrase. */
static char *
sender_address(const char *v)
{
	const char *end, *lt;

	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end > v && end[-1] == '>') {
		for (lt = end - 1; lt > v && *lt != '<'; lt--)
			;
		if (*lt == '<')
			return xstrndup(lt + 1, (size_t)(end - 1 - (lt + 1)));
	}
	return xstrndup(v, (size_t)(end - v));
}

/* -N: "never", or a comma list of success, failure, delay (RFC 3461). */
static bool
dsn_notify_valid(const char *v)
{
	const char *p = v;
	size_t n;
	bool never = false, others = false;

	for (;;) {
		n = strcspn(p, ",");
		if (n == 5 && strncasecmp(p, "never", 5) == 0)
			never = true;
		else if ((n == 7 && strncasecmp(p, "success", 7) == 0) ||
		    (n == 7 && strncasecmp(p, "failure", 7) == 0) ||
		    (n == 5 && strncasecmp(p, "delay", 5) == 0))
			others = true;
		else
			return false;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	return !(never && others);
}

/* -o<x>[value]: only -oi and -od<mode> mean something here; -oem, -oee,
 * -oep, -oeq, -oew and every other sendmail option are accepted. */
static void
apply_o(struct options *o, const char *v)
{
	if (strcmp(v, "i") == 0)
		o->ignore_dots = true;
	else if (v[0] == 'd' && v[1] != '\0' && v[2] == '\0') {
		switch (v[1]) {
		case 'i':
		case 'b':
		case 'q':
			o->delivery = v[1];
			break;
		case 'd':	/* deferred: queue only */
			o->delivery = 'q';
			break;
		default:
			break;
		}
	}
}

/* -O Option=value, sendmail's long form of -o. */
static void
apply_O(struct options *o, const char *v)
{
	size_t n = strcspn(v, "=");
	const char *val = v[n] == '=' ? v + n + 1 : "";

	if (n == 10 && strncasecmp(v, "IgnoreDots", n) == 0)
		o->ignore_dots = *val == '\0' || strchr("TtYy1", *val) != NULL;
	else if (n == 12 && strncasecmp(v, "DeliveryMode", n) == 0 && val[0] != '\0' &&
	    val[1] == '\0' && strchr("ibqd", val[0]) != NULL)
		o->delivery = val[0] == 'd' ? 'q' : val[0];
}

static int
apply_b(struct options *o, const char *v, struct status *st)
{
	char shown[64];

	if (v[0] != '\0' && v[1] == '\0') {
		switch (v[0]) {
		case 'm':
			o->mode = MODE_DELIVER;
			return EX_OK;
		case 's':
			o->mode = MODE_SMTP;
			return EX_OK;
		case 'p':
			o->mode = MODE_LIST;
			return EX_OK;
		case 'i':
			o->mode = MODE_ALIASES;
			return EX_OK;
		case 'v':
			o->mode = MODE_VERIFY;
			return EX_OK;
		default:
			break;
		}
	}
	return status_set(st, EX_USAGE, "option -b%s is not supported (-bm, -bs, -bp, -bi, -bv are)",
	    printable(v, shown, sizeof(shown)));
}

static int
apply_value(struct options *o, char letter, const char *v, struct status *st)
{
	char shown[64];

	/* values end up in SMTP commands and headers: nothing may break a line */
	if (str_has_ctl(v))
		return status_set(st, EX_USAGE, "option -%c: the value holds control characters",
		    letter);
	switch (letter) {
	case 'f':
	case 'r':
		free(o->sender);
		o->sender = sender_address(v);
		break;
	case 'F':
		replace(&o->full_name, v);
		break;
	case 'C':
		replace(&o->config_path, v);
		break;
	case 'B':
		replace(&o->body_type, v);
		upcase(o->body_type);
		if (strcmp(o->body_type, "7BIT") != 0 && strcmp(o->body_type, "8BITMIME") != 0)
			return status_set(st, EX_USAGE, "option -B %s: the body type is 7BIT or 8BITMIME",
			    printable(v, shown, sizeof(shown)));
		break;
	case 'N':
		if (!dsn_notify_valid(v))
			return status_set(st, EX_USAGE, "option -N %s: expected never, or a list of "
			    "success,failure,delay", printable(v, shown, sizeof(shown)));
		replace(&o->dsn_notify, v);
		upcase(o->dsn_notify);
		break;
	case 'R':
		if (strcasecmp(v, "hdrs") != 0 && strcasecmp(v, "full") != 0)
			return status_set(st, EX_USAGE, "option -R %s: expected hdrs or full",
			    printable(v, shown, sizeof(shown)));
		replace(&o->dsn_ret, v);
		upcase(o->dsn_ret);
		break;
	case 'V':
		replace(&o->dsn_envid, v);
		break;
	case 'b':
		return apply_b(o, v, st);
	case 'o':
		apply_o(o, v);
		break;
	case 'O':
		apply_O(o, v);
		break;
	default:		/* -A, -L, -X, -h, -p: nothing to do here */
		break;
	}
	return EX_OK;
}

/* "1m", "30s", "2h30m", "1d", "1w"; a bare number counts minutes, as in
 * sendmail. Returns the seconds, or -1. */
static long
parse_interval(const char *s)
{
	long total = 0, n, unit;
	char *end;

	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		if (!isdigit((unsigned char)*s))
			return -1;
		n = strtol(s, &end, 10);
		switch (*end) {
		case 's':
			unit = 1;
			break;
		case '\0':
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case 'w':
			unit = 7 * 86400;
			break;
		default:
			return -1;
		}
		if (n > QUEUE_INTERVAL_MAX / unit)
			return -1;
		total += n * unit;
		if (total > QUEUE_INTERVAL_MAX)
			return -1;
		s = *end == '\0' ? end : end + 1;
	}
	return total;
}

/* -q, -q<time>, -qR<s>, -qS<s>, -qI<id>; p points at the 'q'. */
static int
parse_q(struct options *o, struct argv_cursor *c, const char *p, struct status *st)
{
	const char *v;
	char **slot;
	char shown[64];
	long secs;

	o->mode = MODE_QUEUE_RUN;
	if (p[1] == '\0') {
		o->queue_flush = true;
		return EX_OK;
	}
	if (p[1] == 'R' || p[1] == 'S' || p[1] == 'I') {
		slot = p[1] == 'R' ? &o->queue_recipient :
		    p[1] == 'S' ? &o->queue_sender : &o->queue_id;
		if ((v = take_value(c, p + 1)) == NULL)
			return status_set(st, EX_USAGE, "option -q%c requires a value", p[1]);
		if (str_has_ctl(v))
			return status_set(st, EX_USAGE,
			    "option -q%c: the value holds control characters", p[1]);
		if (p[1] == 'I' && v[strspn(v, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz")] != '\0')
			return status_set(st, EX_USAGE, "option -qI: \"%s\" is not a queue id "
			    "(letters and digits)", printable(v, shown, sizeof(shown)));
		replace(slot, v);
		o->queue_flush = true;
		return EX_OK;
	}
	if ((secs = parse_interval(p + 1)) <= 0)
		return status_set(st, EX_USAGE, "option -q%s: expected a time such as -q1m, -q30s, "
		    "-q1h30m", printable(p + 1, shown, sizeof(shown)));
	o->queue_interval = secs;
	return EX_OK;
}

/* One word of single-letter options: "-t", "-ti", "-fX", "-oem", "-q1m". */
static int
parse_cluster(struct options *o, struct argv_cursor *c, struct status *st)
{
	const char *p, *v;
	char letter[2] = {0, 0};

	for (p = c->argv[c->i] + 1; *p != '\0'; p++) {
		if (strchr(FLAG_LETTERS, *p) != NULL) {
			if (*p == 't')
				o->extract = true;
			else if (*p == 'i')
				o->ignore_dots = true;
			else if (*p == 'v')
				o->verbose = true;
			continue;
		}
		if (*p == 'q')
			return parse_q(o, c, p, st);
		if (strchr(VALUE_LETTERS, *p) != NULL) {
			if ((v = take_value(c, p)) == NULL)
				return status_set(st, EX_USAGE, "option -%c requires a value", *p);
			return apply_value(o, *p, v, st);
		}
		letter[0] = *p;
		return unknown_option(st, "-", letter);
	}
	return EX_OK;
}

/* --check, --version, --help, --requeue ID, --delete ID (or --opt=ID) */
static int
parse_long(struct options *o, struct argv_cursor *c, struct status *st)
{
	const char *w = c->argv[c->i] + 2, *v;
	size_t n = strcspn(w, "=");
	enum mode m;

	if (w[n] == '\0') {
		if (strcmp(w, "check") == 0) {
			o->mode = MODE_CHECK;
			return EX_OK;
		}
		if (strcmp(w, "version") == 0) {
			o->mode = MODE_VERSION;
			return EX_OK;
		}
		if (strcmp(w, "help") == 0) {
			o->mode = MODE_HELP;
			return EX_OK;
		}
	}
	if (n == 7 && strncmp(w, "requeue", n) == 0)
		m = MODE_REQUEUE;
	else if (n == 6 && strncmp(w, "delete", n) == 0)
		m = MODE_DELETE;
	else {
		char name[64];

		snprintf(name, sizeof(name), "%.*s", (int)(n < 60 ? n : 60), w);
		return unknown_option(st, "--", name);
	}
	if (w[n] == '=')
		v = w + n + 1;
	else if (c->i + 1 < c->argc)
		v = c->argv[++c->i];
	else
		return status_set(st, EX_USAGE, "option --%s requires a queue id", w);
	if (*v == '\0' || str_has_ctl(v))
		return status_set(st, EX_USAGE, "option --%.*s: expected a queue id", (int)n, w);
	o->mode = m;
	replace(&o->target_id, v);
	return EX_OK;
}

static enum mode
mode_from_name(const char *argv0)
{
	const char *base;

	if (argv0 == NULL)
		return MODE_DELIVER;
	base = strrchr(argv0, '/');
	base = base == NULL ? argv0 : base + 1;
	if (strcmp(base, "mailq") == 0)
		return MODE_LIST;
	if (strcmp(base, "newaliases") == 0)
		return MODE_ALIASES;
	return MODE_DELIVER;
}

int
cli_parse(int argc, char **argv, struct options *o, struct status *st)
{
	struct argv_cursor c = { argc, argv, 1 };
	const char *w;
	int rc;

	memset(o, 0, sizeof(*o));
	if (st != NULL)
		status_clear(st);
	o->mode = mode_from_name(argc > 0 ? argv[0] : NULL);
	for (; c.i < argc; c.i++) {
		w = argv[c.i];
		if (w[0] != '-' || w[1] == '\0')
			break;
		if (strcmp(w, "--") == 0) {
			c.i++;
			break;
		}
		rc = w[1] == '-' ? parse_long(o, &c, st) : parse_cluster(o, &c, st);
		if (rc != EX_OK) {
			cli_free(o);
			return rc;
		}
	}
	for (; c.i < argc; c.i++)
		strlist_add(&o->recipients, argv[c.i]);
	return EX_OK;
}

void
cli_free(struct options *o)
{
	free(o->sender);
	free(o->full_name);
	free(o->config_path);
	free(o->dsn_notify);
	free(o->dsn_ret);
	free(o->dsn_envid);
	free(o->body_type);
	free(o->queue_recipient);
	free(o->queue_sender);
	free(o->queue_id);
	free(o->target_id);
	strlist_free(&o->recipients);
	memset(o, 0, sizeof(*o));
}

void
cli_usage(FILE *out)
{
	fputs(
	    "usage: sendmail [options] [--] [recipient ...]\n"
	    "       mailq | newaliases | acsmail --check | --version | --help\n"
	    "\n"
	    "  -t            recipients from To/Cc/Bcc (plus those given)\n"
	    "  -i, -oi       a line holding only \".\" does not end the message\n"
	    "  -f ADDR       envelope sender (-f '<>': null sender); -r ADDR alike\n"
	    "  -F NAME       full name for the From header acsmail writes\n"
	    "  -v            SMTP transcript on stderr (secrets shown as ***)\n"
	    "  -bm -bs -bp -bi -bv   deliver (default) / speak SMTP on stdin /\n"
	    "                list the queue / check aliases / verify recipients\n"
	    "  -q            send every queued message now; -qR/-qS/-qI STR only some\n"
	    "  -q1m          one pass over the messages that are due\n"
	    "  -odi -odb -odq   deliver now / in the background / queue only\n"
	    "  -N DSN -R RET -V ENVID   DSN parameters;  -B 7BIT|8BITMIME\n"
	    "  -C FILE       another configuration file\n"
	    "  --check       connect, STARTTLS, AUTH, QUIT, and report each step\n"
	    "  --requeue ID, --delete ID   move a failed message back / remove it\n"
	    "Other sendmail options (-oem, -O opt=val, -L, -h, -p, -A, -X, -G, -U,\n"
	    "-m, -n, -s) are accepted. See acsmail(8).\n", out);
}
