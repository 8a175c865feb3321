/* smtp.c: the SMTP client: replies, capabilities, STARTTLS, AUTH, transactions */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mime.h"
#include "net.h"
#include "smtp.h"
#include "tls.h"
#include "util.h"

#define REPLY_LINE_MAX	2048	/* octets in one reply line, CRLF excluded */
#define REPLY_MAX_LINES	128
#define REPLY_MAX_TEXT	32768	/* octets in one whole reply */
#define WBUF_FLUSH	16384	/* the write buffer goes out when it holds this much */
#define BODY_CHUNK	8192	/* message octets read at a time */
#define BDAT_CHUNK	(1024 * 1024)	/* octets in one BDAT chunk but the last */
#define BDAT_AHEAD	1	/* chunks sent before the reply to an earlier one is read */
#define ADDR_MAX	512	/* longest address we put on the wire (RFC 5321 says 256) */
#define ENVID_MAX	100	/* RFC 3461 */

/* ---- replies ---------------------------------------------------------- */

struct reply {
	int code;		/* 0 until the first line is in */
	size_t nlines;
	struct buf text;	/* each line's text after "250-", '\n'-terminated */
	char line[512];		/* one line for messages: "550 5.1.1 text more text" */
};

enum { REPLY_MORE, REPLY_DONE, REPLY_BAD };

static void
reply_reset(struct reply *r)
{
	r->code = 0;
	r->nlines = 0;
	buf_reset(&r->text);
	r->line[0] = '\0';
}

static void
reply_free(struct reply *r)
{
	buf_free(&r->text);
}

/* bytes a terminal or a log should not see become '?' */
static void
sanitize(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = s[i] == '\t' ? ' ' : '?';
}

/* Adds one line (CRLF removed) of a reply: REPLY_MORE when a continuation
 * follows, REPLY_DONE at the last line, REPLY_BAD when the line is not SMTP
 * or the reply grows beyond bounds. */
static int
reply_add_line(struct reply *r, const char *line, size_t len)
{
	const char *text;
	size_t tlen, start, used;
	int code;
	char sep;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !isdigit((unsigned char)line[2]))
		return REPLY_BAD;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-')
		return REPLY_BAD;
	if (r->nlines > 0 && code != r->code)
		return REPLY_BAD;
	if (r->nlines >= REPLY_MAX_LINES || r->text.len + len > REPLY_MAX_TEXT)
		return REPLY_BAD;
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;

	r->code = code;
	start = r->text.len;
	buf_add(&r->text, text, tlen);
	sanitize(r->text.s + start, tlen);
	if (r->nlines == 0)
		snprintf(r->line, sizeof(r->line), "%03d %s", code, r->text.s + start);
	else if ((used = strlen(r->line)) + 2 < sizeof(r->line))
		snprintf(r->line + used, sizeof(r->line) - used, " %s", r->text.s + start);
	buf_addc(&r->text, '\n');
	r->nlines++;
	return sep == '-' ? REPLY_MORE : REPLY_DONE;
}

static bool
code_ok(int code)
{
	return code >= 200 && code < 300;
}

static bool
reply_ok(const struct reply *r)
{
	return code_ok(r->code);
}

/* 5xx is permanent; everything else that is not success is worth retrying */
static int
reply_exit(const struct reply *r)
{
	return r->code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL;
}

/* ---- capabilities ----------------------------------------------------- */

struct caps {
	struct strlist kw;	/* upper-case keywords */
	struct strlist param;	/* their parameters ("" for none), parallel to kw */
};

static void
caps_free(struct caps *c)
{
	strlist_free(&c->kw);
	strlist_free(&c->param);
}

static const char *
caps_get(const struct caps *c, const char *kw)
{
	size_t i;

	for (i = 0; i < c->kw.n; i++)
		if (strcasecmp(c->kw.v[i], kw) == 0)
			return c->param.v[i];
	return NULL;
}

static void
caps_add(struct caps *c, const char *kw, size_t kwlen, const char *param)
{
	char *k, *p;
	size_t i;

	k = xstrndup(kw, kwlen);
	for (i = 0; k[i] != '\0'; i++)
		k[i] = (char)toupper((unsigned char)k[i]);
	if (strlist_has(&c->kw, k)) {
		free(k);
		return;
	}
	p = xstrdup(param);
	for (i = strlen(p); i > 0 && p[i - 1] == ' '; i--)
		p[i - 1] = '\0';
	strlist_add_owned(&c->kw, k);
	strlist_add_owned(&c->param, p);
}

/* The text of a 250 EHLO reply: the first line greets, each other line is
 * "KEYWORD[ params]". The old "AUTH=LOGIN" spelling counts as AUTH. */
static void
caps_parse(struct caps *c, const char *text)
{
	const char *line, *end, *p;
	char *copy;
	size_t kwlen;

	caps_free(c);
	line = strchr(text, '\n');
	while (line != NULL && *++line != '\0') {
		end = strchr(line, '\n');
		copy = xstrndup(line, end != NULL ? (size_t)(end - line) : strlen(line));
		for (p = copy; *p == ' '; p++)
			;
		for (kwlen = 0; isalnum((unsigned char)p[kwlen]) || (kwlen > 0 && p[kwlen] == '-'); kwlen++)
			;
		if (kwlen > 0 && (p[kwlen] == '\0' || p[kwlen] == ' ')) {
			caps_add(c, p, kwlen, p[kwlen] == ' ' ? p + kwlen + 1 : "");
		} else if (kwlen == 4 && strncasecmp(p, "AUTH", 4) == 0 && p[4] == '=') {
			caps_add(c, p, kwlen, p + 5);
		}
		free(copy);
		line = end;
	}
}

/* true when mech is one of the words in params */
static bool
word_in(const char *params, const char *mech)
{
	size_t n = strlen(mech);
	const char *p = params;

	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, mech, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
		p = strchr(p, ' ');
	}
	return false;
}

/* the SIZE limit, 0 when there is none (or none we understand) */
static unsigned long long
caps_size_limit(const struct caps *c)
{
	const char *p = caps_get(c, "SIZE");
	unsigned long long n = 0;

	if (p == NULL)
		return 0;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (~0ULL - 9) / 10)
			return 0;
		n = n * 10 + (unsigned long long)(*p - '0');
	}
	return *p == '\0' || *p == ' ' ? n : 0;
}

/* ---- encodings -------------------------------------------------------- */

static void
base64_encode(const unsigned char *in, size_t n, struct buf *out)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned long v;
	char q[4];
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
		q[0] = abc[v >> 18 & 63];
		q[1] = abc[v >> 12 & 63];
		q[2] = abc[v >> 6 & 63];
		q[3] = abc[v & 63];
		buf_add(out, q, 4);
	}
	if (i < n) {
		v = (unsigned long)in[i] << 16 | (i + 1 < n ? (unsigned long)in[i + 1] << 8 : 0);
		q[0] = abc[v >> 18 & 63];
		q[1] = abc[v >> 12 & 63];
		q[2] = i + 1 < n ? abc[v >> 6 & 63] : '=';
		q[3] = '=';
		buf_add(out, q, 4);
	}
	if (out->s == NULL)
		buf_add(out, "", 0);
}

/* RFC 3461 xtext: printable ASCII except '+' and '=' as is, the rest +HH */
static void
xtext_encode(const char *in, struct buf *out)
{
	const unsigned char *p;

	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p >= '!' && *p <= '~' && *p != '+' && *p != '=')
			buf_addc(out, (char)*p);
		else
			buf_printf(out, "+%02X", *p);
	}
	if (out->s == NULL)
		buf_add(out, "", 0);
}

/* Overwrites memory that held a secret, in a way the compiler keeps. */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

static void
buf_wipe_free(struct buf *b)
{
	if (b->s != NULL)
		wipe(b->s, b->cap);
	buf_free(b);
}

/* ---- dot-stuffing ----------------------------------------------------- */

/* The message goes out as DATA: every line end becomes CRLF (CRLF, bare LF
 * and bare CR all end a line), a line starting with '.' gets another '.',
 * and the end is "CRLF.CRLF" whether or not the input ended its last line.
 * For BDAT only the line ends are made CRLF: no dots, no end marker. */
struct dotstuff {
	bool dots;		/* double leading dots (DATA) */
	bool line_start;
	bool cr;		/* the previous byte was a CR */
	unsigned long long octets;	/* written so far */
};

static void
dotstuff_init(struct dotstuff *d)
{
	d->dots = true;
	d->line_start = true;
	d->cr = false;
	d->octets = 0;
}

static void
crlf_init(struct dotstuff *d)
{
	dotstuff_init(d);
	d->dots = false;
}

static void
dotstuff_feed(struct dotstuff *d, const char *in, size_t n, struct buf *out)
{
	size_t i, start = out->len;

	for (i = 0; i < n; i++) {
		char c = in[i];

		if (d->cr) {
			d->cr = false;
			buf_add(out, "\r\n", 2);
			d->line_start = true;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			d->cr = true;
			continue;
		}
		if (c == '\n') {
			buf_add(out, "\r\n", 2);
			d->line_start = true;
			continue;
		}
		if (d->dots && d->line_start && c == '.')
			buf_addc(out, '.');
		buf_addc(out, c);
		d->line_start = false;
	}
	d->octets += out->len - start;
}

/* ends the last line when the input left it open */
static void
crlf_end(struct dotstuff *d, struct buf *out)
{
	if (d->cr || !d->line_start) {
		buf_add(out, "\r\n", 2);
		d->octets += 2;
	}
	d->cr = false;
	d->line_start = true;
}

static void
dotstuff_end(struct dotstuff *d, struct buf *out)
{
	crlf_end(d, out);
	buf_add(out, ".\r\n", 3);
	d->octets += 3;
}

/* ---- hints ------------------------------------------------------------ */

/* true when text holds the reply code as a word: "535 5.7.3", "...: 535-..." */
static bool
has_code(const char *text, const char *code)
{
	const char *p = text;

	while ((p = strstr(p, code)) != NULL) {
		bool before = p == text || p[-1] == ' ';
		char after = p[3];

		if (before && (after == ' ' || after == '-' || after == '\0'))
			return true;
		p++;
	}
	return false;
}

static bool
contains_nocase(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (; *text != '\0'; text++)
		if (strncasecmp(text, word, n) == 0)
			return true;
	return false;
}

const char *
smtp_hint(const char *reply)
{
	if (reply == NULL || *reply == '\0')
		return NULL;
	if (strstr(reply, "5.7.57") != NULL || has_code(reply, "530"))
		return "the relay wants AUTH first and the session did not authenticate: "
		    "check tls and username in the config";
	if (strstr(reply, "5.7.3") != NULL || has_code(reply, "535"))
		return "authentication failed: check the username form (the SMTP Username, or "
		    "resource.app-id.tenant-id), that the SMTP Username is linked to the Entra app, "
		    "that the app has the 'Communication and Email Service Owner' role on the ACS "
		    "resource, and that the client secret is right and not expired";
	if (strstr(reply, "4.5.127") != NULL)
		return "ACS rate limit (30 a minute, 100 an hour by default): lower rate_per_minute "
		    "and rate_per_hour, or ask Azure support to raise the limit";
	if (strstr(reply, "certificate not trusted") != NULL)
		return "the relay's certificate did not verify: check that server is the name on the "
		    "certificate, and the system trust store (ca-certificates) or tls_ca_file";
	if (strstr(reply, "does not offer STARTTLS") != NULL || strstr(reply, "STARTTLS refused") != NULL)
		return "no STARTTLS, so nothing was sent: check server and port (587 speaks STARTTLS), "
		    "or whether something on the path strips STARTTLS";
	if (strstr(reply, "sender refused") != NULL || strstr(reply, "5.7.60") != NULL ||
	    strstr(reply, "5.1.7") != NULL || strstr(reply, "5.1.8") != NULL ||
	    (contains_nocase(reply, "sender") && (has_code(reply, "550") || has_code(reply, "553") ||
	    has_code(reply, "554") || has_code(reply, "501"))))
		return "the relay refused the sender: MAIL FROM must be a MailFrom address of a "
		    "verified domain connected to the ACS resource; set `from` (and `allowed_from`)";
	if (strstr(reply, "cannot resolve") != NULL)
		return "check server and the host's DNS resolver";
	if (strstr(reply, "cannot connect") != NULL)
		return "check server and port, and that outbound connections to that port are allowed "
		    "(Azure blocks port 25: use 587)";
	return NULL;
}

/* ---- the session and its I/O ------------------------------------------ */

struct smtp_session {
	const struct config *cfg;
	FILE *transcript;
	int fd;
	struct tls *tls;
	bool usable;
	char peer[128];
	char ehlo[256];
	struct deadline dl;	/* of the read in progress */
	struct status io;	/* why the last read or write failed */
	char rbuf[4096];
	size_t rpos, rlen;
	struct buf wbuf;
	struct caps caps;
	size_t chunk_size;	/* octets in a BDAT chunk but the last */
};

static void __attribute__((format(printf, 2, 3)))
trace(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->transcript == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(s->transcript, fmt, ap);
	va_end(ap);
	fputc('\n', s->transcript);
	fflush(s->transcript);
}

static struct smtp_session *
session_new(const struct config *cfg, FILE *transcript, int fd)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->transcript = transcript;
	s->fd = fd;
	s->usable = fd >= 0;
	s->chunk_size = BDAT_CHUNK;
	snprintf(s->ehlo, sizeof(s->ehlo), "localhost");
	return s;
}

static void
session_free(struct smtp_session *s)
{
	struct deadline d;

	if (s->tls != NULL) {
		deadline_start(&d, 5 < s->cfg->timeout ? 5 : s->cfg->timeout);
		tls_close(s->tls, s->usable ? &d : NULL);
	}
	net_close(s->fd);
	caps_free(&s->caps);
	buf_wipe_free(&s->wbuf);
	free(s);
}

static ssize_t
transport_read(struct smtp_session *s, void *p, size_t n)
{
	if (s->tls != NULL)
		return tls_read(s->tls, p, n, &s->dl, &s->io);
	return net_read(s->fd, p, n, &s->dl, &s->io);
}

static int
flush(struct smtp_session *s)
{
	struct deadline d;
	int rc;

	if (s->wbuf.len == 0)
		return EX_OK;
	if (!s->usable)
		return status_set(&s->io, EX_TEMPFAIL, "the connection is gone");
	deadline_start(&d, s->cfg->timeout);
	if (s->tls != NULL)
		rc = tls_write(s->tls, s->wbuf.s, s->wbuf.len, &d, &s->io);
	else
		rc = net_write(s->fd, s->wbuf.s, s->wbuf.len, &d, &s->io);
	buf_reset(&s->wbuf);
	if (rc != EX_OK)
		s->usable = false;
	return rc;
}

/* Queues one command line; shown is what the transcript gets instead of
 * the line (for secrets), NULL to show the line itself. */
static int
send_line(struct smtp_session *s, const char *line, const char *shown)
{
	trace(s, "-> %s", shown != NULL ? shown : line);
	buf_adds(&s->wbuf, line);
	buf_add(&s->wbuf, "\r\n", 2);
	return s->wbuf.len >= WBUF_FLUSH ? flush(s) : EX_OK;
}

/* one line of a reply into line (NUL-terminated, CRLF or LF removed) */
static int
read_line(struct smtp_session *s, char *line, size_t *lenp)
{
	size_t len = 0;
	ssize_t n;
	char c;

	for (;;) {
		while (s->rpos < s->rlen) {
			c = s->rbuf[s->rpos++];
			if (c == '\n') {
				if (len > 0 && line[len - 1] == '\r')
					len--;
				line[len] = '\0';
				*lenp = len;
				return EX_OK;
			}
			if (len > REPLY_LINE_MAX)
				return status_set(&s->io, EX_TEMPFAIL,
				    "a reply line longer than %d octets", REPLY_LINE_MAX);
			line[len++] = c;
		}
		n = transport_read(s, s->rbuf, sizeof(s->rbuf));
		if (n == 0)
			return status_set(&s->io, EX_TEMPFAIL, "connection closed by the relay");
		if (n < 0)
			return EX_TEMPFAIL;
		s->rpos = 0;
		s->rlen = (size_t)n;
	}
}

/* A whole reply, within one timeout. A failure leaves the session unusable. */
static int
read_reply(struct smtp_session *s, struct reply *r)
{
	char line[REPLY_LINE_MAX + 2];
	size_t len = 0;
	int rc;

	reply_reset(r);
	if (!s->usable)
		return status_set(&s->io, EX_TEMPFAIL, "the connection is gone");
	deadline_start(&s->dl, s->cfg->timeout);
	for (;;) {
		if (read_line(s, line, &len) != EX_OK) {
			s->usable = false;
			return EX_TEMPFAIL;
		}
		rc = reply_add_line(r, line, len);
		sanitize(line, len);
		trace(s, "<- %s", line);
		if (rc == REPLY_BAD) {
			s->usable = false;
			return status_set(&s->io, EX_TEMPFAIL, "not an SMTP reply: \"%.80s\"", line);
		}
		if (rc == REPLY_DONE)
			break;
	}
	/* 421: the relay is closing the connection */
	if (r->code == 421)
		s->usable = false;
	return EX_OK;
}

/* sends line (now, with what was queued before) and reads its reply */
static int
command(struct smtp_session *s, struct reply *r, const char *line, const char *shown)
{
	if (send_line(s, line, shown) != EX_OK || flush(s) != EX_OK)
		return EX_TEMPFAIL;
	return read_reply(s, r);
}

/* the session broke during step: st says where and why */
static int
broken(struct smtp_session *s, struct status *st, const char *step)
{
	s->usable = false;
	return status_set(st, EX_TEMPFAIL, "%s: %s", step, s->io.text);
}

/* RSET after a failed transaction; a relay that refuses it is left alone */
static void
reset(struct smtp_session *s)
{
	struct reply r = {0};

	if (s->usable && (command(s, &r, "RSET", NULL) != EX_OK || !reply_ok(&r)))
		s->usable = false;
	reply_free(&r);
}

/* ---- opening: greeting, EHLO, STARTTLS, AUTH -------------------------- */

static bool
valid_host_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 253 || name[0] == '.' || name[0] == '-' || strchr(name, '.') == NULL ||
	    strstr(name, "..") != NULL)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '.')
			return false;
	return true;
}

/* The host's FQDN for EHLO: its name when dotted, else what the resolver
 * calls it, else "localhost". */
static void
ehlo_name(char *out, size_t outsz)
{
	struct addrinfo hints, *res;
	char host[256];
	size_t n;

	snprintf(out, outsz, "localhost");
	if (gethostname(host, sizeof(host)) != 0)
		return;
	host[sizeof(host) - 1] = '\0';
	if (strchr(host, '.') == NULL) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_CANONNAME;
		if (getaddrinfo(host, NULL, &hints, &res) == 0) {
			if (res->ai_canonname != NULL)
				snprintf(host, sizeof(host), "%s", res->ai_canonname);
			freeaddrinfo(res);
		}
	}
	n = strlen(host);
	if (n > 0 && host[n - 1] == '.')
		host[n - 1] = '\0';
	if (valid_host_name(host))
		snprintf(out, outsz, "%s", host);
}

static int
greeting(struct smtp_session *s, struct status *st)
{
	struct reply r = {0};
	int rc = EX_OK;

	if (read_reply(s, &r) != EX_OK)
		rc = broken(s, st, "waiting for the greeting");
	else if (r.code != 220)
		rc = status_set(st, reply_exit(&r), "greeting: %s", r.line);
	reply_free(&r);
	return rc;
}

/* EHLO (HELO when EHLO is refused); the capability list is replaced */
static int
hello(struct smtp_session *s, struct status *st)
{
	struct reply r = {0};
	char *line;
	int rc = EX_OK;

	caps_free(&s->caps);
	line = xasprintf("EHLO %s", s->ehlo);
	if (command(s, &r, line, NULL) != EX_OK) {
		rc = broken(s, st, "EHLO");
	} else if (r.code == 250) {
		caps_parse(&s->caps, r.text.s);
	} else if (r.code >= 500) {
		free(line);
		line = xasprintf("HELO %s", s->ehlo);
		if (command(s, &r, line, NULL) != EX_OK)
			rc = broken(s, st, "HELO");
		else if (r.code != 250)
			rc = status_set(st, reply_exit(&r), "HELO refused: %s", r.line);
	} else {
		rc = status_set(st, reply_exit(&r), "EHLO refused: %s", r.line);
	}
	free(line);
	reply_free(&r);
	return rc;
}

static int
start_tls(struct smtp_session *s, struct status *st)
{
	struct deadline d;
	char desc[128];
	int rc;

	deadline_start(&d, s->cfg->timeout);
	rc = tls_connect(s->fd, s->cfg->server, s->cfg->tls_ca_file, &d, &s->tls, st);
	if (rc != EX_OK) {
		s->usable = false;
		trace(s, "-- %s", st->text);
		return rc;
	}
	tls_describe(s->tls, desc, sizeof(desc));
	trace(s, "-- TLS: %s, certificate verified for %s", desc, s->cfg->server);
	return EX_OK;
}

static int
starttls(struct smtp_session *s, struct status *st)
{
	struct reply r = {0};
	int rc;

	/* required: without it nothing more is sent, credentials least of all */
	if (caps_get(&s->caps, "STARTTLS") == NULL) {
		s->usable = false;
		return status_set(st, EX_TEMPFAIL, "%s does not offer STARTTLS; nothing was sent",
		    s->cfg->server);
	}
	if (command(s, &r, "STARTTLS", NULL) != EX_OK) {
		rc = broken(s, st, "STARTTLS");
	} else if (r.code != 220) {
		s->usable = false;
		rc = status_set(st, EX_TEMPFAIL, "STARTTLS refused: %s", r.line);
	} else if (s->rpos < s->rlen) {
		/* anything after the 220 was sent in the clear by someone: refuse it */
		s->usable = false;
		rc = status_set(st, EX_TEMPFAIL, "%s sent data after its STARTTLS reply",
		    s->cfg->server);
	} else {
		rc = start_tls(s, st);
	}
	reply_free(&r);
	return rc;
}

static int
auth_refused(struct smtp_session *s, const char *mech, const struct reply *r, struct status *st)
{
	/* 535 is soft: a rotated secret or a role assignment is fixed without touching the mail */
	if (r->code == 535 || r->code < 500)
		return status_set(st, EX_TEMPFAIL, "AUTH %s refused by %s: %s", mech, s->cfg->server,
		    r->line);
	return status_set(st, EX_UNAVAILABLE, "AUTH %s refused by %s: %s", mech, s->cfg->server,
	    r->line);
}

/* sends base64 of p (n octets), shown as "***", and reads the reply */
static int
send_secret(struct smtp_session *s, const char *prefix, const void *p, size_t n,
    struct reply *r)
{
	struct buf b = {0};
	int rc;

	buf_adds(&b, prefix);
	base64_encode(p, n, &b);
	buf_add(&s->wbuf, b.s, b.len);
	buf_add(&s->wbuf, "\r\n", 2);
	trace(s, "-> %s***", prefix);
	buf_wipe_free(&b);
	rc = flush(s);
	wipe(s->wbuf.s, s->wbuf.cap);
	return rc != EX_OK ? rc : read_reply(s, r);
}

/* A 334 that asks for the username: a relay that ignored the initial
 * response must not get the secret in its place. */
static bool
asks_username(const struct reply *r)
{
	/* "Username:" and "username:" in base64 */
	return strncmp(r->text.s, "VXNlcm5hbWU6", 12) == 0 ||
	    strncmp(r->text.s, "dXNlcm5hbWU6", 12) == 0;
}

/* The rest of AUTH LOGIN after r, the reply to the command: the username
 * when it is due (or asked for again), then the secret. */
static int
login_steps(struct smtp_session *s, const char *secret, bool user_due, struct reply *r,
    struct status *st)
{
	const char *user = s->cfg->username;

	if (r->code != 334)
		return auth_refused(s, "LOGIN", r, st);
	if (user_due || asks_username(r)) {
		if (send_secret(s, "", user, strlen(user), r) != EX_OK)
			return broken(s, st, "AUTH LOGIN");
		if (r->code != 334)
			return auth_refused(s, "LOGIN", r, st);
	}
	if (send_secret(s, "", secret, strlen(secret), r) != EX_OK)
		return broken(s, st, "AUTH LOGIN");
	if (r->code == 334)
		return status_set(st, EX_TEMPFAIL, "AUTH LOGIN: %s asks for more than a username and "
		    "a password", s->cfg->server);
	if (r->code != 235)
		return auth_refused(s, "LOGIN", r, st);
	return EX_OK;
}

/* AUTH LOGIN with the username as initial response (RFC 4954), a round
 * trip less; a relay that does not take that form (501, 504) gets the
 * command alone and the username after its prompt. */
static int
auth_login(struct smtp_session *s, const char *secret, struct status *st)
{
	const char *user = s->cfg->username;
	struct reply r = {0};
	int rc;

	if (send_secret(s, "AUTH LOGIN ", user, strlen(user), &r) != EX_OK)
		rc = broken(s, st, "AUTH LOGIN");
	else if (r.code != 501 && r.code != 504)
		rc = login_steps(s, secret, false, &r, st);
	else if (command(s, &r, "AUTH LOGIN", NULL) != EX_OK)
		rc = broken(s, st, "AUTH LOGIN");
	else
		rc = login_steps(s, secret, true, &r, st);
	if (rc != EX_OK && r.code == 334)
		s->usable = false;
	reply_free(&r);
	return rc;
}

static int
auth_plain(struct smtp_session *s, const char *secret, struct status *st)
{
	const char *user = s->cfg->username;
	size_t ulen = strlen(user), slen = strlen(secret);
	struct reply r = {0};
	struct buf b = {0};
	int rc = EX_OK;

	/* authzid (empty) NUL authcid NUL password */
	buf_addc(&b, '\0');
	buf_add(&b, user, ulen);
	buf_addc(&b, '\0');
	buf_add(&b, secret, slen);
	if (send_secret(s, "AUTH PLAIN ", b.s, b.len, &r) != EX_OK)
		rc = broken(s, st, "AUTH PLAIN");
	else if (r.code == 334)
		rc = status_set(st, EX_TEMPFAIL, "AUTH PLAIN: %s did not take the initial response",
		    s->cfg->server);
	else if (r.code != 235)
		rc = auth_refused(s, "PLAIN", &r, st);
	if (rc != EX_OK && r.code == 334)
		s->usable = false;
	buf_wipe_free(&b);
	reply_free(&r);
	return rc;
}

/* AUTH LOGIN, which ACS offers; PLAIN only where LOGIN is not offered */
static int
authenticate(struct smtp_session *s, const char *secret, struct status *st)
{
	const char *mechs;

	if (s->cfg->username == NULL || *s->cfg->username == '\0')
		return status_set(st, EX_CONFIG, "no username is set: the relay needs AUTH");
	if (secret == NULL || *secret == '\0')
		return status_set(st, EX_CONFIG, "no password is set (password or password_file)");
	if ((mechs = caps_get(&s->caps, "AUTH")) == NULL)
		return status_set(st, EX_UNAVAILABLE, "%s offers no AUTH: acsmail needs AUTH LOGIN or "
		    "PLAIN", s->cfg->server);
	if (word_in(mechs, "LOGIN"))
		return auth_login(s, secret, st);
	if (word_in(mechs, "PLAIN"))
		return auth_plain(s, secret, st);
	return status_set(st, EX_UNAVAILABLE, "%s offers AUTH %.100s: acsmail speaks only LOGIN "
	    "and PLAIN", s->cfg->server, mechs);
}

/* everything after the TCP connection: greeting to AUTH */
static int
session_start(struct smtp_session *s, const char *secret, struct status *st)
{
	int rc;

	if (s->cfg->tls == TLS_IMPLICIT && (rc = start_tls(s, st)) != EX_OK)
		return rc;
	if ((rc = greeting(s, st)) != EX_OK || (rc = hello(s, st)) != EX_OK)
		return rc;
	if (s->cfg->tls == TLS_STARTTLS &&
	    ((rc = starttls(s, st)) != EX_OK || (rc = hello(s, st)) != EX_OK))
		return rc;
	return authenticate(s, secret, st);
}

int
smtp_open(const struct config *cfg, const char *secret, FILE *transcript,
    struct smtp_session **out, struct status *st)
{
	struct smtp_session *s;
	int fd, rc;

	*out = NULL;
	status_clear(st);
	s = session_new(cfg, transcript, -1);
	rc = net_connect(cfg->server, cfg->port, cfg->timeout, &fd, s->peer, sizeof(s->peer), st);
	if (rc != EX_OK) {
		trace(s, "-- %s", st->text);
		session_free(s);
		return rc;
	}
	s->fd = fd;
	s->usable = true;
	ehlo_name(s->ehlo, sizeof(s->ehlo));
	trace(s, "-- connected to %s [%s] port %ld", cfg->server, s->peer, cfg->port);
	if ((rc = session_start(s, secret, st)) != EX_OK) {
		/* nothing more goes out: no QUIT either */
		s->usable = false;
		session_free(s);
		return rc;
	}
	*out = s;
	return EX_OK;
}

bool
smtp_usable(const struct smtp_session *s)
{
	return s != NULL && s->usable;
}

bool
smtp_has(const struct smtp_session *s, const char *keyword)
{
	return s != NULL && caps_get(&s->caps, keyword) != NULL;
}

/* QUIT without waiting for the 221 (RFC 5321 4.1.1.10 only says SHOULD):
 * every transaction is over by now, so the reply can tell nothing, and
 * waiting for it costs a round trip. The TLS close_notify goes the same way. */
void
smtp_close(struct smtp_session *s)
{
	if (s == NULL)
		return;
	if (s->usable && (send_line(s, "QUIT", NULL) != EX_OK || flush(s) != EX_OK))
		s->usable = false;
	session_free(s);
}

/* ---- a transaction ---------------------------------------------------- */

/* An address is refused when it could smuggle anything into a command. */
static int
check_address(const char *what, const char *addr, bool empty_ok, struct status *st)
{
	char shown[80];

	snprintf(shown, sizeof(shown), "%s", addr);
	sanitize(shown, strlen(shown));
	if (str_has_ctl(addr))
		return status_set(st, EX_DATAERR, "%s %s holds a control character", what, shown);
	if (strchr(addr, '<') != NULL || strchr(addr, '>') != NULL)
		return status_set(st, EX_DATAERR, "%s %s holds '<' or '>'", what, shown);
	if (!empty_ok && *addr == '\0')
		return status_set(st, EX_DATAERR, "empty %s", what);
	if (strlen(addr) > ADDR_MAX)
		return status_set(st, EX_DATAERR, "%s %s... is longer than %d octets", what, shown,
		    ADDR_MAX);
	return EX_OK;
}

/* "SUCCESS,FAILURE" in upper case, or NULL when the value is not valid */
static char *
dsn_notify_value(const char *v)
{
	char *out, *tok, *save = NULL;
	struct buf b = {0};
	bool never = false;
	size_t count = 0;

	if (v == NULL || *v == '\0' || str_has_ctl(v))
		return NULL;
	out = xstrdup(v);
	for (tok = strtok_r(out, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "NEVER") == 0)
			never = true;
		else if (strcasecmp(tok, "SUCCESS") != 0 && strcasecmp(tok, "FAILURE") != 0 &&
		    strcasecmp(tok, "DELAY") != 0)
			goto bad;
		buf_printf(&b, "%s%s", count++ > 0 ? "," : "", tok);
	}
	if (count == 0 || (never && count > 1))
		goto bad;
	free(out);
	for (tok = b.s; *tok != '\0'; tok++)
		*tok = (char)toupper((unsigned char)*tok);
	return buf_steal(&b);
bad:
	free(out);
	buf_free(&b);
	return NULL;
}

struct txn {
	const struct envelope *env;
	bool eightbit;			/* BODY=8BITMIME */
	bool smtputf8;
	off_t size;
	char *notify;			/* NOTIFY= value, or NULL */
	size_t accepted;		/* recipients the relay took */
	bool temp_refusal;		/* some recipient was refused with 4xx */
	size_t last_refused;		/* the last refused recipient ... */
	char refusal[512];		/* ... and its reply */
	int refusal_code;
};

static char *
mail_command(const struct smtp_session *s, const struct txn *t)
{
	const struct envelope *env = t->env;
	struct buf b = {0};

	buf_printf(&b, "MAIL FROM:<%s>", env->sender != NULL ? env->sender : "");
	if (caps_get(&s->caps, "SIZE") != NULL)
		buf_printf(&b, " SIZE=%lld", (long long)t->size);
	if (t->eightbit)
		buf_adds(&b, " BODY=8BITMIME");
	if (t->smtputf8)
		buf_adds(&b, " SMTPUTF8");
	if (caps_get(&s->caps, "DSN") != NULL) {
		if (env->dsn_ret != NULL && (strcasecmp(env->dsn_ret, "FULL") == 0 ||
		    strcasecmp(env->dsn_ret, "HDRS") == 0))
			buf_printf(&b, " RET=%s", strcasecmp(env->dsn_ret, "FULL") == 0 ? "FULL" : "HDRS");
		if (env->dsn_envid != NULL && *env->dsn_envid != '\0' &&
		    strlen(env->dsn_envid) <= ENVID_MAX) {
			buf_adds(&b, " ENVID=");
			xtext_encode(env->dsn_envid, &b);
		}
	}
	return buf_steal(&b);
}

static char *
rcpt_command(const struct txn *t, const char *addr)
{
	struct buf b = {0};

	buf_printf(&b, "RCPT TO:<%s>", addr);
	if (t->notify != NULL)
		buf_printf(&b, " NOTIFY=%s", t->notify);
	return buf_steal(&b);
}

/* copies as much of src as fits */
static void
copy_text(char *dst, size_t dstsz, const char *src)
{
	size_t n = strlen(src);

	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
record(struct rcpt_result *rr, const struct reply *r)
{
	rr->reply_code = r->code;
	copy_text(rr->reply, sizeof(rr->reply), r->line);
}

static void
record_final(struct smtp_result *res, const struct reply *r)
{
	res->reply_code = r->code;
	copy_text(res->reply, sizeof(res->reply), r->line);
}

/* the RCPT reply r for recipient i */
static void
rcpt_reply(struct txn *t, size_t i, const struct reply *r, struct rcpt_result *rcpts)
{
	record(&rcpts[i], r);
	if (reply_ok(r)) {
		t->accepted++;
		return;
	}
	if (r->code < 500)
		t->temp_refusal = true;
	t->last_refused = i;
	t->refusal_code = r->code;
	copy_text(t->refusal, sizeof(t->refusal), r->line);
}

/* no recipient was accepted: what to tell the caller */
static int
all_refused(const struct txn *t, struct smtp_result *res, struct status *st)
{
	res->reply_code = t->refusal_code;
	copy_text(res->reply, sizeof(res->reply), t->refusal);
	return status_set(st, t->temp_refusal ? EX_TEMPFAIL : EX_NOUSER,
	    "every recipient was refused; %s: %s", t->env->rcpts.v[t->last_refused], t->refusal);
}

static int
mail_refused(const struct txn *t, const struct reply *r, struct smtp_result *res,
    struct status *st)
{
	const char *sender = t->env->sender != NULL ? t->env->sender : "";

	record_final(res, r);
	if (r->code >= 500)
		return status_set(st, EX_UNAVAILABLE, "sender refused: MAIL FROM:<%s>: %s", sender,
		    r->line);
	return status_set(st, EX_TEMPFAIL, "MAIL FROM:<%s> deferred: %s", sender, r->line);
}

/* the final reply r for every recipient the relay accepted */
static void
record_accepted(const struct txn *t, struct rcpt_result *rcpts, const struct reply *r)
{
	size_t i;

	for (i = 0; i < t->env->rcpts.n; i++)
		if (code_ok(rcpts[i].reply_code))
			record(&rcpts[i], r);
}

/* The only way to take back a message under way is to hang up. */
static void
hang_up(struct smtp_session *s)
{
	s->usable = false;
	net_close(s->fd);
	s->fd = -1;
}

/* MAIL FROM and a RCPT TO for each recipient, into the write buffer */
static int
queue_envelope(struct smtp_session *s, const struct txn *t)
{
	char *line;
	size_t i;
	int rc;

	line = mail_command(s, t);
	rc = send_line(s, line, NULL);
	free(line);
	for (i = 0; rc == EX_OK && i < t->env->rcpts.n; i++) {
		line = rcpt_command(t, t->env->rcpts.v[i]);
		rc = send_line(s, line, NULL);
		free(line);
	}
	return rc;
}

/* Sends the envelope and DATA; EX_OK when the relay said 354. */
static int
envelope_pipelined(struct smtp_session *s, struct txn *t, struct rcpt_result *rcpts,
    struct smtp_result *res, struct status *st)
{
	const struct envelope *env = t->env;
	struct reply mail = {0}, r = {0};
	size_t i;
	int rc = EX_OK;

	if (queue_envelope(s, t) != EX_OK || send_line(s, "DATA", NULL) != EX_OK ||
	    flush(s) != EX_OK || read_reply(s, &mail) != EX_OK) {
		rc = broken(s, st, "sending the envelope");
		goto out;
	}
	if (!s->usable) {
		rc = mail_refused(t, &mail, res, st);
		goto out;
	}
	for (i = 0; i < env->rcpts.n; i++) {
		if (read_reply(s, &r) != EX_OK) {
			rc = broken(s, st, "RCPT TO");
			goto out;
		}
		/* after a refused MAIL the RCPT replies say nothing about the recipients */
		if (reply_ok(&mail))
			rcpt_reply(t, i, &r, rcpts);
		if (!s->usable) {
			record_final(res, &r);
			rc = status_set(st, EX_TEMPFAIL, "RCPT TO: %s", r.line);
			goto out;
		}
	}
	if (read_reply(s, &r) != EX_OK) {
		rc = broken(s, st, "DATA");
		goto out;
	}
	/* a relay that opens DATA for nobody: hang up rather than send anything */
	if (r.code == 354 && (!reply_ok(&mail) || t->accepted == 0))
		hang_up(s);
	if (!reply_ok(&mail))
		rc = mail_refused(t, &mail, res, st);
	else if (t->accepted == 0)
		rc = all_refused(t, res, st);
	else if (r.code != 354) {
		record_accepted(t, rcpts, &r);
		record_final(res, &r);
		rc = status_set(st, reply_exit(&r), "DATA refused: %s", r.line);
	}
	if (rc != EX_OK)
		reset(s);
out:
	reply_free(&mail);
	reply_free(&r);
	return rc;
}

/* The envelope without PIPELINING: one command, one reply. EX_OK when a
 * recipient was accepted. */
static int
envelope_stepwise(struct smtp_session *s, struct txn *t, struct rcpt_result *rcpts,
    struct smtp_result *res, struct status *st)
{
	const struct envelope *env = t->env;
	struct reply r = {0};
	char *line;
	size_t i;
	int rc = EX_OK;

	line = mail_command(s, t);
	rc = command(s, &r, line, NULL);
	free(line);
	if (rc != EX_OK) {
		rc = broken(s, st, "MAIL FROM");
		goto out;
	}
	if (!reply_ok(&r)) {
		rc = mail_refused(t, &r, res, st);
		reset(s);
		goto out;
	}
	for (i = 0; i < env->rcpts.n; i++) {
		line = rcpt_command(t, env->rcpts.v[i]);
		rc = command(s, &r, line, NULL);
		free(line);
		if (rc != EX_OK) {
			rc = broken(s, st, "RCPT TO");
			goto out;
		}
		rcpt_reply(t, i, &r, rcpts);
		/* 421 ends the session: the rest would not get a reply */
		if (!s->usable)
			break;
	}
	if (t->accepted == 0 || !s->usable) {
		rc = t->accepted == 0 ? all_refused(t, res, st) :
		    status_set(st, EX_TEMPFAIL, "RCPT TO: %s", r.line);
		reset(s);
	}
out:
	reply_free(&r);
	return rc;
}

/* DATA after the stepwise envelope; EX_OK when the relay said 354. */
static int
data_stepwise(struct smtp_session *s, struct txn *t, struct rcpt_result *rcpts,
    struct smtp_result *res, struct status *st)
{
	struct reply r = {0};
	int rc = EX_OK;

	if (command(s, &r, "DATA", NULL) != EX_OK) {
		rc = broken(s, st, "DATA");
	} else if (r.code != 354) {
		record_accepted(t, rcpts, &r);
		record_final(res, &r);
		rc = status_set(st, reply_exit(&r), "DATA refused: %s", r.line);
		reset(s);
	}
	reply_free(&r);
	return rc;
}

/* After 354: the message, dot-stuffed, the final dot, the final reply. */
static int
send_body(struct smtp_session *s, struct txn *t, FILE *msg, struct rcpt_result *rcpts,
    struct smtp_result *res, struct status *st)
{
	char chunk[BODY_CHUNK];
	struct dotstuff ds;
	struct reply r = {0};
	size_t n;
	int rc;

	dotstuff_init(&ds);
	while ((n = fread(chunk, 1, sizeof(chunk), msg)) > 0) {
		dotstuff_feed(&ds, chunk, n, &s->wbuf);
		if (s->wbuf.len >= WBUF_FLUSH && flush(s) != EX_OK)
			return broken(s, st, "sending the message");
	}
	if (ferror(msg)) {
		rc = errno;
		hang_up(s);
		return status_set(st, EX_TEMPFAIL, "reading the message: %s", strerror(rc));
	}
	dotstuff_end(&ds, &s->wbuf);
	trace(s, "-> (%llu octets of message)", ds.octets - 3);
	trace(s, "-> .");
	if (flush(s) != EX_OK)
		return broken(s, st, "sending the message");
	if (read_reply(s, &r) != EX_OK) {
		/* the relay may have the whole message: the one possible duplicate */
		res->after_dot = true;
		rc = broken(s, st, "waiting for the reply to the message");
		reply_free(&r);
		return rc;
	}
	record_final(res, &r);
	record_accepted(t, rcpts, &r);
	rc = reply_ok(&r) ? EX_OK : status_set(st, reply_exit(&r), "message refused: %s", r.line);
	reply_free(&r);
	return rc;
}

/* ---- BDAT (RFC 3030) -------------------------------------------------- */

/* The message cut into chunks, line ends made CRLF on the way: a chunk's
 * octet count is taken from what goes out, not from the input. */
struct chunker {
	FILE *msg;
	struct dotstuff lines;
	struct buf buf;		/* the chunk, then what was read beyond it */
	size_t size;		/* octets in a chunk but the last */
	size_t len;		/* octets in the current chunk */
	bool last;
};

static void
chunker_init(struct chunker *c, FILE *msg, size_t size)
{
	memset(c, 0, sizeof(*c));
	c->msg = msg;
	c->size = size > 0 ? size : BDAT_CHUNK;
	crlf_init(&c->lines);
}

/* The next chunk into c->buf.s[0..c->len), c->last when it ends the
 * message. Returns 0, or the errno of a failed read. */
static int
chunker_next(struct chunker *c)
{
	char in[BODY_CHUNK];
	size_t n;

	if (c->len > 0) {
		c->buf.len -= c->len;
		memmove(c->buf.s, c->buf.s + c->len, c->buf.len);
		c->buf.s[c->buf.len] = '\0';
		c->len = 0;
	}
	/* a chunk goes before the last only with an octet beyond it: the
	 * LAST chunk is empty for an empty message alone */
	while (c->buf.len <= c->size) {
		if ((n = fread(in, 1, sizeof(in), c->msg)) == 0) {
			if (ferror(c->msg))
				return errno != 0 ? errno : EIO;
			crlf_end(&c->lines, &c->buf);
			c->len = c->buf.len;
			c->last = true;
			return 0;
		}
		dotstuff_feed(&c->lines, in, n, &c->buf);
	}
	c->len = c->size;
	return 0;
}

static void
chunker_free(struct chunker *c)
{
	buf_free(&c->buf);
}

/* "BDAT n [LAST]" and the n octets, into the write buffer */
static int
queue_chunk(struct smtp_session *s, const char *p, size_t n, bool last)
{
	char line[48];
	size_t k;

	snprintf(line, sizeof(line), "BDAT %zu%s", n, last ? " LAST" : "");
	if (send_line(s, line, NULL) != EX_OK)
		return EX_TEMPFAIL;
	trace(s, "-> (%zu octets of message)", n);
	for (; n > 0; p += k, n -= k) {
		k = n < WBUF_FLUSH ? n : WBUF_FLUSH;
		buf_add(&s->wbuf, p, k);
		if (s->wbuf.len >= WBUF_FLUSH && flush(s) != EX_OK)
			return EX_TEMPFAIL;
	}
	return EX_OK;
}

/* Where a BDAT transaction stands. The replies come in the order of the
 * commands: MAIL's and the RCPTs' when they were pipelined, then one for
 * each chunk. */
struct bdat {
	size_t envelope;	/* envelope replies due before the chunks' */
	size_t replies;		/* replies read */
	size_t chunks;		/* chunks queued */
	bool last_queued;	/* the LAST chunk is among them */
	bool last_sent;		/* ... and went out whole */
	int rc;			/* EX_OK until a reply decides against the transaction */
	struct reply r;
};

/* Reads the next reply and weighs it; once the outcome is known the rest
 * are only read. EX_TEMPFAIL when the session broke. */
static int
bdat_reply(struct smtp_session *s, struct txn *t, struct bdat *b, struct rcpt_result *rcpts,
    struct smtp_result *res, struct status *st)
{
	struct reply *r = &b->r;
	size_t i = b->replies;

	if (read_reply(s, r) != EX_OK)
		return EX_TEMPFAIL;
	b->replies++;
	if (b->rc != EX_OK)
		return EX_OK;
	if (i < b->envelope && i == 0) {
		if (!reply_ok(r))
			b->rc = mail_refused(t, r, res, st);
	} else if (i < b->envelope) {
		rcpt_reply(t, i - 1, r, rcpts);
		if (!s->usable) {
			record_final(res, r);
			b->rc = status_set(st, EX_TEMPFAIL, "RCPT TO: %s", r->line);
		} else if (i + 1 == b->envelope && t->accepted == 0) {
			/* the relay answers the chunks with 503 or 554 */
			b->rc = all_refused(t, res, st);
		}
	} else if (!reply_ok(r)) {
		/* a refused chunk ends the transaction, the LAST one or not */
		record_accepted(t, rcpts, r);
		record_final(res, r);
		b->rc = status_set(st, reply_exit(r), "message refused: %s", r->line);
	} else if (b->last_queued && b->replies == b->envelope + b->chunks) {
		record_accepted(t, rcpts, r);
		record_final(res, r);
	}
	return EX_OK;
}

/* A whole transaction with the message in BDAT chunks. With PIPELINING
 * the envelope and the chunks go without waiting, and a chunk's reply is
 * read only once BDAT_AHEAD more chunks are out: a message of one chunk
 * takes one round trip. Without PIPELINING every command waits for its
 * reply. */
static int
transaction_bdat(struct smtp_session *s, struct txn *t, FILE *msg, struct rcpt_result *rcpts,
    struct smtp_result *res, struct status *st)
{
	bool pipelined = caps_get(&s->caps, "PIPELINING") != NULL;
	size_t ahead = pipelined ? BDAT_AHEAD : 0;
	struct chunker c;
	struct bdat b;
	int rc, err;

	memset(&b, 0, sizeof(b));
	if (pipelined) {
		b.envelope = 1 + t->env->rcpts.n;
		if (queue_envelope(s, t) != EX_OK)
			return broken(s, st, "sending the envelope");
	} else if ((rc = envelope_stepwise(s, t, rcpts, res, st)) != EX_OK) {
		return rc;
	}
	chunker_init(&c, msg, s->chunk_size);
	while (b.rc == EX_OK && s->usable && !b.last_queued) {
		if ((err = chunker_next(&c)) != 0) {
			hang_up(s);
			rc = status_set(st, EX_TEMPFAIL, "reading the message: %s", strerror(err));
			goto out;
		}
		if (queue_chunk(s, c.buf.s, c.len, c.last) != EX_OK) {
			rc = broken(s, st, "sending the message");
			goto out;
		}
		b.chunks++;
		b.last_queued = c.last;
		while (!b.last_queued && b.rc == EX_OK && s->usable && b.chunks > ahead &&
		    b.replies + ahead < b.envelope + b.chunks) {
			if (flush(s) != EX_OK) {
				rc = broken(s, st, "sending the message");
				goto out;
			}
			if (bdat_reply(s, t, &b, rcpts, res, st) != EX_OK)
				goto lost;
		}
	}
	if (flush(s) != EX_OK) {
		rc = broken(s, st, "sending the message");
		goto out;
	}
	b.last_sent = b.last_queued;
	while (s->usable && b.replies < b.envelope + b.chunks)
		if (bdat_reply(s, t, &b, rcpts, res, st) != EX_OK)
			goto lost;
	rc = b.rc;
	if (rc != EX_OK)
		reset(s);
	goto out;
lost:
	if (b.rc != EX_OK) {
		/* the outcome was known before the session broke */
		rc = b.rc;
	} else {
		/* with the LAST chunk out the relay may have the message */
		res->after_dot = b.last_sent;
		rc = broken(s, st, b.last_sent ? "waiting for the reply to the message" :
		    b.replies < b.envelope ? "sending the envelope" : "BDAT");
	}
out:
	chunker_free(&c);
	reply_free(&b.r);
	return rc;
}

static int
check_envelope(const struct envelope *env, struct status *st)
{
	size_t i;
	int rc;

	if ((rc = check_address("sender", env->sender != NULL ? env->sender : "", true, st)) != EX_OK)
		return rc;
	if (env->rcpts.n == 0)
		return status_set(st, EX_DATAERR, "no recipients");
	for (i = 0; i < env->rcpts.n; i++)
		if ((rc = check_address("recipient", env->rcpts.v[i], false, st)) != EX_OK)
			return rc;
	return EX_OK;
}

static bool
needs_smtputf8(const struct envelope *env)
{
	size_t i;

	if (env->smtputf8 || (env->sender != NULL && !str_is_ascii(env->sender)))
		return true;
	for (i = 0; i < env->rcpts.n; i++)
		if (!str_is_ascii(env->rcpts.v[i]))
			return true;
	return false;
}

/* An 8-bit message for a relay without 8BITMIME: quoted-printable copy. */
static int
downgrade(FILE *msg, FILE **out, off_t *size, struct status *st)
{
	FILE *tmp;
	off_t n;
	int rc;

	if ((tmp = tmpfile()) == NULL)
		return status_set(st, EX_TEMPFAIL, "temporary file for the 7-bit copy: %s",
		    strerror(errno));
	if ((rc = mime_downgrade(msg, tmp, st)) != EX_OK) {
		fclose(tmp);
		return rc;
	}
	if (fflush(tmp) != 0 || (n = ftello(tmp)) < 0 || fseeko(tmp, 0, SEEK_SET) != 0) {
		rc = errno;
		fclose(tmp);
		return status_set(st, EX_TEMPFAIL, "temporary file for the 7-bit copy: %s",
		    strerror(rc));
	}
	*out = tmp;
	*size = n;
	return EX_OK;
}

int
smtp_send(struct smtp_session *s, const struct envelope *env, FILE *msg, off_t size,
    struct rcpt_result *rcpts, struct smtp_result *res, struct status *st)
{
	unsigned long long limit;
	struct txn t;
	FILE *body = msg, *tmp = NULL;
	size_t i;
	int rc;

	status_clear(st);
	memset(res, 0, sizeof(*res));
	for (i = 0; i < env->rcpts.n; i++) {
		rcpts[i].reply_code = 0;
		rcpts[i].reply[0] = '\0';
	}
	if (!smtp_usable(s))
		return status_set(st, EX_TEMPFAIL, "the SMTP session is closed");
	if ((rc = check_envelope(env, st)) != EX_OK)
		return rc;

	memset(&t, 0, sizeof(t));
	t.env = env;
	t.size = size;
	t.smtputf8 = needs_smtputf8(env);
	if (t.smtputf8 && caps_get(&s->caps, "SMTPUTF8") == NULL)
		return status_set(st, EX_UNAVAILABLE, "%s does not offer SMTPUTF8, which the "
		    "non-ASCII addresses need", s->cfg->server);
	t.eightbit = env->eightbit;
	if (t.eightbit && caps_get(&s->caps, "8BITMIME") == NULL) {
		if ((rc = downgrade(msg, &tmp, &t.size, st)) != EX_OK)
			return rc;
		body = tmp;
		t.eightbit = false;
	}
	limit = caps_size_limit(&s->caps);
	if (limit > 0 && t.size > 0 && (unsigned long long)t.size > limit) {
		rc = status_set(st, EX_UNAVAILABLE, "message size %lld exceeds the relay's limit %llu",
		    (long long)t.size, limit);
		goto out;
	}
	if (caps_get(&s->caps, "DSN") != NULL)
		t.notify = dsn_notify_value(env->dsn_notify);

	if (caps_get(&s->caps, "CHUNKING") != NULL) {
		rc = transaction_bdat(s, &t, body, rcpts, res, st);
		goto out;
	}
	if (caps_get(&s->caps, "PIPELINING") != NULL)
		rc = envelope_pipelined(s, &t, rcpts, res, st);
	else if ((rc = envelope_stepwise(s, &t, rcpts, res, st)) == EX_OK)
		rc = data_stepwise(s, &t, rcpts, res, st);
	if (rc == EX_OK)
		rc = send_body(s, &t, body, rcpts, res, st);
out:
	free(t.notify);
	if (tmp != NULL)
		fclose(tmp);
	return rc;
}
