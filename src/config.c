/* config.c: /etc/acsmail.conf (SPEC §8) read with libconfuse
 *
 * Quoting, as libconfuse does it: inside "double quotes" ${VAR} is replaced
 * from the environment and backslash escapes are processed (\n, \t, \x41,
 * \", \\ ...). Inside 'single quotes' nothing is expanded, and the only
 * escapes are \' for ' and \\ for \; every other byte, \" included, is kept
 * as written. Secrets therefore go in single quotes, or in password_file,
 * whose first line is taken raw.
 *
 * Before libconfuse sees the text, its comments are blanked out here
 * (newlines kept): libconfuse 3.3 counts the lines after '#' and '//'
 * comments wrongly and refuses a comment inside a list, and every message
 * must name the right line. The same pass notes on which line each key is
 * assigned, for the checks made after parsing.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <confuse.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define CONFIG_SIZE_MAX		(1024 * 1024)
#define SECRET_SIZE_MAX		8192
#define FQDN_TIMEOUT_MS		1000	/* how long the host's name may take to resolve */

struct keypos {
	char *name;
	int line;
};

/* The file as libconfuse gets it, and where its keys are. */
struct conftext {
	char *text;		/* comments blanked, NUL-terminated */
	size_t len;
	struct keypos *keys;	/* in file order */
	size_t nkeys, capkeys;
	int open_quote_line;	/* where a string that never ends starts, or 0 */
};

/* The first error libconfuse reports while parsing. libconfuse's error
 * callback gets no pointer of ours, so it finds this through a file-scope
 * pointer that is set only while cfg_parse_buf runs. */
struct parse_report {
	const struct conftext *ct;
	bool failed;
	int line;
	char text[256];
};
static struct parse_report *parse_report;

/* --- the text ------------------------------------------------------------ */

/* i at an opening quote: the index after the closing one, or len when
 * there is none (then *closed is false) */
static size_t
skip_quoted(const char *s, size_t len, size_t i, bool *closed)
{
	char q = s[i++];

	while (i < len && s[i] != q) {
		if (s[i] == '\\' && i + 1 < len)
			i++;
		i++;
	}
	*closed = i < len;
	return i < len ? i + 1 : len;
}

/* "//" or a slash-star opens a comment only where a token starts, as in libconfuse */
static bool
token_starts(const char *s, size_t i)
{
	return i == 0 || strchr(" \t\r\n={},()+", s[i - 1]) != NULL;
}

static void
blank_comments(char *s, size_t len)
{
	size_t i = 0;
	bool closed;

	while (i < len) {
		if (s[i] == '"' || s[i] == '\'') {
			i = skip_quoted(s, len, i, &closed);
		} else if (s[i] == '#' || (s[i] == '/' && i + 1 < len && s[i + 1] == '/' &&
		    token_starts(s, i))) {
			while (i < len && s[i] != '\n')
				s[i++] = ' ';
		} else if (s[i] == '/' && i + 1 < len && s[i + 1] == '*' && token_starts(s, i)) {
			s[i++] = ' ';
			s[i++] = ' ';
			while (i < len && !(s[i] == '*' && i + 1 < len && s[i + 1] == '/')) {
				if (s[i] != '\n')
					s[i] = ' ';
				i++;
			}
			if (i < len) {
				s[i++] = ' ';
				s[i++] = ' ';
			}
		} else {
			i++;
		}
	}
}

static void
add_key(struct conftext *ct, const char *name, size_t n, int line)
{
	if (ct->nkeys == ct->capkeys) {
		ct->capkeys = ct->capkeys == 0 ? 32 : ct->capkeys * 2;
		ct->keys = xrealloc(ct->keys, ct->capkeys * sizeof(*ct->keys));
	}
	ct->keys[ct->nkeys].name = xstrndup(name, n);
	ct->keys[ct->nkeys].line = line;
	ct->nkeys++;
}

/* A key is a word followed by "=" or "+=". */
static void
index_keys(struct conftext *ct)
{
	const char *s = ct->text;
	size_t len = ct->len, i = 0, start, word = 0, wordlen = 0;
	int line = 1, wordline = 0;
	bool closed;

	while (i < len) {
		if (s[i] == '\n') {
			line++;
			i++;
		} else if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
			i++;
		} else if (s[i] == '"' || s[i] == '\'') {
			start = i;
			i = skip_quoted(s, len, i, &closed);
			if (!closed)
				ct->open_quote_line = line;
			for (; start < i; start++)
				if (s[start] == '\n')
					line++;
			wordlen = 0;
		} else if (s[i] == '=' || (s[i] == '+' && i + 1 < len && s[i + 1] == '=')) {
			if (wordlen > 0)
				add_key(ct, s + word, wordlen, wordline);
			wordlen = 0;
			i += s[i] == '+' ? 2 : 1;
		} else if (strchr("{},()", s[i]) != NULL) {
			wordlen = 0;
			i++;
		} else {
			start = i;
			while (i < len && strchr(" \t\r\n=,{}()\"'", s[i]) == NULL &&
			    !(s[i] == '+' && i + 1 < len && s[i + 1] == '='))
				i++;
			word = start;
			wordlen = i - start;
			wordline = line;
		}
	}
}

/* the line where key was last assigned, 0 when it was not */
static int
key_line(const struct conftext *ct, const char *key)
{
	size_t i;

	for (i = ct->nkeys; i > 0; i--)
		if (strcmp(ct->keys[i - 1].name, key) == 0)
			return ct->keys[i - 1].line;
	return 0;
}

static bool
key_assigned_on(const struct conftext *ct, const char *key, int line)
{
	size_t i;

	for (i = 0; i < ct->nkeys; i++)
		if (ct->keys[i].line == line && strcmp(ct->keys[i].name, key) == 0)
			return true;
	return false;
}

/* the key whose statement holds this line */
static const char *
statement_key(const struct conftext *ct, int line)
{
	const char *key = NULL;
	size_t i;

	for (i = 0; i < ct->nkeys && ct->keys[i].line <= line; i++)
		key = ct->keys[i].name;
	return key;
}

static void
conftext_free(struct conftext *ct)
{
	size_t i;

	if (ct->text != NULL) {
		explicit_bzero(ct->text, ct->len);
		free(ct->text);
	}
	for (i = 0; i < ct->nkeys; i++)
		free(ct->keys[i].name);
	free(ct->keys);
	memset(ct, 0, sizeof(*ct));
}

/* Reads the whole file. It may hold the secret, so the buffer is grown by
 * hand: each old copy is wiped before it is freed. */
static int
read_text(int fd, const char *path, off_t size_hint, struct conftext *ct, struct status *st)
{
	size_t cap, len = 0;
	char *text, *bigger;
	ssize_t n;
	int err;

	cap = size_hint > 0 && size_hint < CONFIG_SIZE_MAX ? (size_t)size_hint + 1 : 4096;
	text = xmalloc(cap);
	for (;;) {
		if (len + 1 == cap) {
			if (cap > CONFIG_SIZE_MAX) {
				explicit_bzero(text, len);
				free(text);
				return status_set(st, EX_CONFIG, "%s: larger than %d bytes", path,
				    CONFIG_SIZE_MAX);
			}
			bigger = xmalloc(cap * 2);
			memcpy(bigger, text, len);
			explicit_bzero(text, len);
			free(text);
			text = bigger;
			cap *= 2;
		}
		n = read(fd, text + len, cap - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err = errno;
			explicit_bzero(text, len);
			free(text);
			return status_set(st, EX_CONFIG, "cannot read %s: %s", path, strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	ct->text = text;
	ct->len = len;
	if (strlen(text) != len)
		return status_set(st, EX_CONFIG, "%s: holds a NUL byte", path);
	return EX_OK;
}

/* --- libconfuse ---------------------------------------------------------- */

static void
confuse_error(cfg_t *c, const char *fmt, va_list ap)
{
	struct parse_report *r = parse_report;
	const char *key, *word;

	if (r == NULL || r->failed)
		return;
	r->failed = true;
	r->line = c->line;
	key = statement_key(r->ct, r->line);
	if (strcmp(fmt, "no such option '%s'") == 0) {
		word = va_arg(ap, const char *);
		if (key_assigned_on(r->ct, word, r->line))
			snprintf(r->text, sizeof(r->text), "unknown key \"%s\"", word);
		else if (key != NULL && strcmp(key, "password") == 0)
			snprintf(r->text, sizeof(r->text), "syntax error in the value of password "
			    "(put it in single quotes)");
		else
			snprintf(r->text, sizeof(r->text), "unexpected \"%s\"%s%s (a value holding "
			    "spaces needs quotes)", word, key != NULL ? " after " : "",
			    key != NULL ? key : "");
	} else if (key != NULL && strcmp(key, "password") == 0) {
		/* libconfuse would quote the offending token: part of the secret */
		snprintf(r->text, sizeof(r->text), "syntax error in the value of password "
		    "(put it in single quotes)");
	} else {
		vsnprintf(r->text, sizeof(r->text), fmt, ap);
	}
}

static int
confuse_parse(cfg_t *c, const char *path, struct conftext *ct, struct status *st)
{
	struct parse_report report = { .ct = ct };
	int rc;

	cfg_set_error_function(c, confuse_error);
	parse_report = &report;
	rc = cfg_parse_buf(c, ct->text);
	parse_report = NULL;
	if (rc == CFG_SUCCESS)
		return EX_OK;
	if (ct->open_quote_line > 0)
		return status_set(st, EX_CONFIG, "%s:%d: unterminated string (its closing quote is "
		    "missing)", path, ct->open_quote_line);
	if (!report.failed)
		return status_set(st, EX_CONFIG, "%s: cannot be parsed", path);
	if (report.line > 0)
		return status_set(st, EX_CONFIG, "%s:%d: %s", path, report.line, report.text);
	return status_set(st, EX_CONFIG, "%s: %s", path, report.text);
}

static char *
dup_str(cfg_t *c, const char *key)
{
	const char *v = cfg_getstr(c, key);

	return xstrdup(v != NULL ? v : "");
}

static void
dup_list(cfg_t *c, const char *key, struct strlist *l)
{
	unsigned int i, n = cfg_size(c, key);
	const char *v;

	for (i = 0; i < n; i++)
		if ((v = cfg_getnstr(c, key, i)) != NULL)
			strlist_add(l, v);
}

/* The password's text inside libconfuse is wiped before cfg_free. */
static void
confuse_free(cfg_t *c)
{
	char *pw;

	if (c == NULL)
		return;
	if ((pw = cfg_getstr(c, "password")) != NULL)
		explicit_bzero(pw, strlen(pw));
	cfg_free(c);
}

/* --- checks -------------------------------------------------------------- */

struct checker {
	const char *path;
	const struct conftext *ct;
	struct status *st;
};

static int __attribute__((format(printf, 3, 4)))
invalid(const struct checker *k, const char *key, const char *fmt, ...)
{
	char text[400];
	va_list ap;
	int line = key != NULL ? key_line(k->ct, key) : 0;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (line > 0)
		return status_set(k->st, EX_CONFIG, "%s:%d: %s", k->path, line, text);
	return status_set(k->st, EX_CONFIG, "%s: %s", k->path, text);
}

/* no control characters, no spaces, something in it */
static bool
is_word(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* local@domain, both parts present, nothing that could break a command */
static bool
is_address(const char *s)
{
	const char *at = strrchr(s, '@');

	return is_word(s) && at != NULL && at != s && at[1] != '\0' &&
	    strpbrk(s, "<>,;\"()[]\\") == NULL;
}

static bool
is_domain(const char *s)
{
	return is_word(s) && strpbrk(s, "@<>,;\"()\\") == NULL;
}

static int
check_positive(const struct checker *k, const char *key, long v)
{
	if (v <= 0)
		return invalid(k, key, "%s must be a positive number", key);
	return EX_OK;
}

static int
check_numbers(const struct checker *k, const struct config *cfg)
{
	int rc;

	if (cfg->port < 1 || cfg->port > 65535)
		return invalid(k, "port", "port must be 1-65535");
	if ((rc = check_positive(k, "queue_lifetime", cfg->queue_lifetime)) != EX_OK ||
	    (rc = check_positive(k, "max_recipients", cfg->max_recipients)) != EX_OK ||
	    (rc = check_positive(k, "max_size", cfg->max_size)) != EX_OK ||
	    (rc = check_positive(k, "rate_per_minute", cfg->rate_per_minute)) != EX_OK ||
	    (rc = check_positive(k, "rate_per_hour", cfg->rate_per_hour)) != EX_OK ||
	    (rc = check_positive(k, "timeout", cfg->timeout)) != EX_OK)
		return rc;
	return EX_OK;
}

/* tls, rewrite_from, delivery */
static int
read_choices(const struct checker *k, cfg_t *c, struct config *cfg)
{
	const char *v;

	v = cfg_getstr(c, "tls");
	if (v != NULL && strcmp(v, "starttls") == 0)
		cfg->tls = TLS_STARTTLS;
	else if (v != NULL && strcmp(v, "implicit") == 0)
		cfg->tls = TLS_IMPLICIT;
	else
		return invalid(k, "tls", "tls must be \"starttls\" or \"implicit\"");

	v = cfg_getstr(c, "rewrite_from");
	if (v != NULL && strcmp(v, "auto") == 0)
		cfg->rewrite_from = REWRITE_AUTO;
	else if (v != NULL && strcmp(v, "never") == 0)
		cfg->rewrite_from = REWRITE_NEVER;
	else
		return invalid(k, "rewrite_from", "rewrite_from must be \"auto\" or \"never\"");

	v = cfg_getstr(c, "delivery");
	if (v != NULL && strcmp(v, "foreground") == 0)
		cfg->delivery = DELIVERY_FOREGROUND;
	else if (v != NULL && strcmp(v, "background") == 0)
		cfg->delivery = DELIVERY_BACKGROUND;
	else if (v != NULL && strcmp(v, "queue") == 0)
		cfg->delivery = DELIVERY_QUEUE;
	else
		return invalid(k, "delivery",
		    "delivery must be \"foreground\", \"background\" or \"queue\"");
	return EX_OK;
}

/* username, or acs_resource.entra_app_id.entra_tenant_id */
static int
read_username(const struct checker *k, cfg_t *c, struct config *cfg)
{
	static const char *const parts[] = { "acs_resource", "entra_app_id", "entra_tenant_id" };
	const char *user = cfg_getstr(c, "username"), *v[3];
	int i, set = 0;

	for (i = 0; i < 3; i++) {
		v[i] = cfg_getstr(c, parts[i]);
		if (v[i] == NULL)
			v[i] = "";
		if (*v[i] != '\0') {
			set++;
			if (!is_word(v[i]) || strchr(v[i], '.') != NULL)
				return invalid(k, parts[i], "%s must be one word without dots",
				    parts[i]);
		}
	}
	if (user != NULL && *user != '\0') {
		if (set > 0)
			return invalid(k, "username", "username and acs_resource/entra_app_id/"
			    "entra_tenant_id are alternatives: set only one of them");
		if (str_has_ctl(user))
			return invalid(k, "username", "username holds control characters");
		cfg->username = xstrdup(user);
		return EX_OK;
	}
	if (set == 0)
		return invalid(k, NULL, "username is not set (nor acs_resource, entra_app_id "
		    "and entra_tenant_id)");
	for (i = 0; i < 3; i++)
		if (*v[i] == '\0')
			return invalid(k, *v[0] != '\0' ? parts[0] : *v[1] != '\0' ? parts[1] : parts[2],
			    "%s is not set: acs_resource, entra_app_id and entra_tenant_id go "
			    "together", parts[i]);
	cfg->username = xasprintf("%s.%s.%s", v[0], v[1], v[2]);
	return EX_OK;
}

static int
read_password(const struct checker *k, cfg_t *c, struct config *cfg, const struct stat *sb)
{
	const char *pw = cfg_getstr(c, "password"), *file = cfg_getstr(c, "password_file");
	bool has_pw = pw != NULL && *pw != '\0', has_file = file != NULL && *file != '\0';

	if (has_pw && (sb->st_mode & S_IROTH))
		return status_set(k->st, EX_CONFIG, "refusing %s: it holds a password and is "
		    "readable by others (chmod 640, chown root:acsmail)", k->path);
	if (has_pw && has_file)
		return invalid(k, key_line(k->ct, "password") > key_line(k->ct, "password_file") ?
		    "password" : "password_file",
		    "password and password_file are alternatives: set only one of them");
	if (!has_pw && !has_file)
		return invalid(k, NULL, "neither password nor password_file is set");
	if (has_file && str_has_ctl(file))
		return invalid(k, "password_file", "password_file holds control characters");
	cfg->password = xstrdup(has_pw ? pw : "");
	cfg->password_file = xstrdup(has_file ? file : "");
	return EX_OK;
}

static int
check_strings(const struct checker *k, struct config *cfg)
{
	size_t i;

	if (cfg->server[0] == '\0')
		return invalid(k, "server", "server must not be empty");
	if (!is_domain(cfg->server))
		return invalid(k, "server", "server must be a host name");
	if (str_has_ctl(cfg->tls_ca_file))
		return invalid(k, "tls_ca_file", "tls_ca_file holds control characters");
	if (cfg->from[0] == '\0')
		return invalid(k, NULL, "from is not set (a MailFrom address of the ACS domain)");
	if (!is_address(cfg->from))
		return invalid(k, "from", "from must be an address (local@domain)");
	if (str_has_ctl(cfg->from_name))
		return invalid(k, "from_name", "from_name holds control characters");
	for (i = 0; i < cfg->allowed_from.n; i++)
		if (!is_address(cfg->allowed_from.v[i]))
			return invalid(k, "allowed_from",
			    "allowed_from holds something that is not an address (local@domain)");
	for (i = 0; i < cfg->local_domains.n; i++)
		if (!is_domain(cfg->local_domains.v[i]))
			return invalid(k, "local_domains",
			    "local_domains holds something that is not a domain name");
	if (str_has_ctl(cfg->aliases))
		return invalid(k, "aliases", "aliases holds control characters");
	if (cfg->local_recipient[0] != '\0' && !is_word(cfg->local_recipient))
		return invalid(k, "local_recipient",
		    "local_recipient must be an address or a local name, without spaces");
	if (cfg->qualify_domain[0] != '\0' && !is_domain(cfg->qualify_domain))
		return invalid(k, "qualify_domain", "qualify_domain must be a domain name");
	if (cfg->queue_dir[0] != '/' || str_has_ctl(cfg->queue_dir))
		return invalid(k, "queue_dir", "queue_dir must be an absolute path");
	if (strcmp(cfg->log, "syslog") != 0 && strcmp(cfg->log, "none") != 0 &&
	    (cfg->log[0] != '/' || str_has_ctl(cfg->log)))
		return invalid(k, "log", "log must be \"syslog\", \"none\" or an absolute path");
	return EX_OK;
}

/* --- the host's names ---------------------------------------------------- */

static bool
is_host_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' || *s == '_'))
			return false;
	return true;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The canonical name of host. The resolver may wait for a DNS server that
 * is not there for many seconds, so the lookup runs in a child that is
 * given FQDN_TIMEOUT_MS; without an answer the short name is used. */
static char *
canonical_name(const char *host)
{
	struct addrinfo hints, *res;
	struct timespec t0;
	struct pollfd pfd;
	char name[256];
	size_t got = 0;
	ssize_t n;
	long left;
	pid_t pid;
	int fds[2];

	if (strchr(host, '.') != NULL || pipe(fds) == -1)
		return xstrdup(host);
	/* nothing buffered may be written twice, whatever ends the child */
	fflush(NULL);
	if ((pid = fork()) == -1) {
		close(fds[0]);
		close(fds[1]);
		return xstrdup(host);
	}
	if (pid == 0) {
		close(fds[0]);
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_flags = AI_CANONNAME;
		if (getaddrinfo(host, NULL, &hints, &res) == 0) {
			if (res->ai_canonname != NULL &&
			    write(fds[1], res->ai_canonname, strlen(res->ai_canonname)) < 0)
				_exit(1);
			freeaddrinfo(res);
		}
		_exit(0);
	}
	close(fds[1]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (got < sizeof(name) - 1 && (left = FQDN_TIMEOUT_MS - ms_since(&t0)) > 0) {
		if (poll(&pfd, 1, (int)left) <= 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n = read(fds[0], name + got, sizeof(name) - 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	name[got] = '\0';
	close(fds[0]);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	if (!is_host_name(name) || strchr(name, '.') == NULL)
		return xstrdup(host);
	return xstrdup(name);
}

/* localhost, the host name and its FQDN are always local; qualify_domain
 * defaults to the FQDN */
static void
add_host_names(struct config *cfg)
{
	char host[256];
	char *fqdn;

	if (gethostname(host, sizeof(host)) == -1 || !is_host_name(host))
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	fqdn = canonical_name(host);
	strlist_add_unique(&cfg->local_domains, "localhost");
	strlist_add_unique(&cfg->local_domains, host);
	strlist_add_unique(&cfg->local_domains, fqdn);
	if (cfg->qualify_domain[0] == '\0') {
		free(cfg->qualify_domain);
		cfg->qualify_domain = fqdn;
	} else
		free(fqdn);
}

/* --- the interface ------------------------------------------------------- */

static int
read_values(const struct checker *k, cfg_t *c, struct config *cfg, const struct stat *sb)
{
	int rc;

	cfg->server = dup_str(c, "server");
	cfg->port = cfg_getint(c, "port");
	cfg->tls_ca_file = dup_str(c, "tls_ca_file");
	cfg->from = dup_str(c, "from");
	cfg->from_name = dup_str(c, "from_name");
	dup_list(c, "allowed_from", &cfg->allowed_from);
	cfg->aliases = dup_str(c, "aliases");
	dup_list(c, "local_domains", &cfg->local_domains);
	cfg->local_recipient = dup_str(c, "local_recipient");
	cfg->qualify_domain = dup_str(c, "qualify_domain");
	cfg->queue_dir = dup_str(c, "queue_dir");
	cfg->queue_lifetime = cfg_getint(c, "queue_lifetime");
	cfg->max_recipients = cfg_getint(c, "max_recipients");
	cfg->max_size = cfg_getint(c, "max_size");
	cfg->rate_per_minute = cfg_getint(c, "rate_per_minute");
	cfg->rate_per_hour = cfg_getint(c, "rate_per_hour");
	cfg->timeout = cfg_getint(c, "timeout");
	cfg->log = dup_str(c, "log");

	if ((rc = read_password(k, c, cfg, sb)) != EX_OK ||
	    (rc = read_username(k, c, cfg)) != EX_OK ||
	    (rc = read_choices(k, c, cfg)) != EX_OK ||
	    (rc = check_numbers(k, cfg)) != EX_OK ||
	    (rc = check_strings(k, cfg)) != EX_OK)
		return rc;
	return EX_OK;
}

int
config_load(const char *path, struct config *cfg, struct status *st)
{
	cfg_opt_t opts[] = {
		CFG_STR("server", "smtp.azurecomm.net", CFGF_NONE),
		CFG_INT("port", 587, CFGF_NONE),
		CFG_STR("tls", "starttls", CFGF_NONE),
		CFG_STR("tls_ca_file", "", CFGF_NONE),
		CFG_STR("username", "", CFGF_NONE),
		CFG_STR("acs_resource", "", CFGF_NONE),
		CFG_STR("entra_app_id", "", CFGF_NONE),
		CFG_STR("entra_tenant_id", "", CFGF_NONE),
		CFG_STR("password", "", CFGF_NONE),
		CFG_STR("password_file", "", CFGF_NONE),
		CFG_STR("from", "", CFGF_NONE),
		CFG_STR("from_name", "", CFGF_NONE),
		CFG_STR_LIST("allowed_from", "{}", CFGF_NONE),
		CFG_STR("rewrite_from", "auto", CFGF_NONE),
		CFG_STR("aliases", "/etc/aliases", CFGF_NONE),
		CFG_STR_LIST("local_domains", "{}", CFGF_NONE),
		CFG_STR("local_recipient", "", CFGF_NONE),
		CFG_STR("qualify_domain", "", CFGF_NONE),
		CFG_STR("delivery", "foreground", CFGF_NONE),
		CFG_STR("queue_dir", LOCALSTATEDIR "/spool/acsmail", CFGF_NONE),
		CFG_INT("queue_lifetime", 432000, CFGF_NONE),
		CFG_INT("max_recipients", 50, CFGF_NONE),
		CFG_INT("max_size", 10485760, CFGF_NONE),
		CFG_INT("rate_per_minute", 30, CFGF_NONE),
		CFG_INT("rate_per_hour", 100, CFGF_NONE),
		CFG_INT("timeout", 60, CFGF_NONE),
		CFG_STR("log", "syslog", CFGF_NONE),
		CFG_END()
	};
	struct conftext ct = {0};
	struct checker k = { path, &ct, st };
	struct stat sb;
	cfg_t *c = NULL;
	int fd, rc, err;

	memset(cfg, 0, sizeof(*cfg));
	if (st != NULL)
		status_clear(st);
	cfg->path = xstrdup(path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		err = errno;
		rc = status_set(st, EX_CONFIG, "cannot open %s: %s%s", path, strerror(err),
		    err == EACCES ? " (it is root:acsmail 0640: run acsmail as installed, "
		    "setgid acsmail, or as root)" : "");
		goto out;
	}
	if (fstat(fd, &sb) == -1) {
		err = errno;
		close(fd);
		rc = status_set(st, EX_CONFIG, "cannot read %s: %s", path, strerror(err));
		goto out;
	}
	rc = read_text(fd, path, sb.st_size, &ct, st);
	close(fd);
	if (rc != EX_OK)
		goto out;
	blank_comments(ct.text, ct.len);
	index_keys(&ct);
	if ((c = cfg_init(opts, CFGF_NONE)) == NULL) {
		rc = status_set(st, EX_CONFIG, "%s: cannot set up the parser", path);
		goto out;
	}
	if ((rc = confuse_parse(c, path, &ct, st)) != EX_OK)
		goto out;
	if ((rc = read_values(&k, c, cfg, &sb)) != EX_OK)
		goto out;
	add_host_names(cfg);
out:
	confuse_free(c);
	conftext_free(&ct);
	if (rc != EX_OK)
		config_free(cfg);
	return rc;
}

static int
read_secret_file(const char *path, char **secret, struct status *st)
{
	char buf[SECRET_SIZE_MAX];
	struct stat sb;
	size_t got = 0, end;
	ssize_t n;
	int fd, err;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		err = errno;
		return status_set(st, EX_CONFIG, "cannot open password_file %s: %s", path,
		    strerror(err));
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return status_set(st, EX_CONFIG, "password_file %s is not a regular file", path);
	}
	if (sb.st_mode & S_IROTH) {
		close(fd);
		return status_set(st, EX_CONFIG, "refusing password_file %s: it is readable by "
		    "others (chmod 640, chown root:acsmail)", path);
	}
	while (got < sizeof(buf) && memchr(buf, '\n', got) == NULL) {
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err = errno;
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return status_set(st, EX_CONFIG, "cannot read password_file %s: %s", path,
			    strerror(err));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	/* the first line, without its line end; nothing else is trimmed */
	for (end = 0; end < got && buf[end] != '\n'; end++)
		;
	if (end == got && got == sizeof(buf)) {
		explicit_bzero(buf, sizeof(buf));
		return status_set(st, EX_CONFIG, "password_file %s: the first line is longer than "
		    "%d bytes", path, SECRET_SIZE_MAX);
	}
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	if (end == 0 || memchr(buf, '\0', end) != NULL) {
		explicit_bzero(buf, sizeof(buf));
		return status_set(st, EX_CONFIG, end == 0 ? "password_file %s: the first line is "
		    "empty" : "password_file %s: the secret holds a NUL byte", path);
	}
	*secret = xstrndup(buf, end);
	explicit_bzero(buf, sizeof(buf));
	return EX_OK;
}

int
config_secret(const struct config *cfg, char **secret, struct status *st)
{
	*secret = NULL;
	if (st != NULL)
		status_clear(st);
	if (cfg->password != NULL && cfg->password[0] != '\0') {
		*secret = xstrdup(cfg->password);
		return EX_OK;
	}
	if (cfg->password_file != NULL && cfg->password_file[0] != '\0')
		return read_secret_file(cfg->password_file, secret, st);
	return status_set(st, EX_CONFIG, "%s: neither password nor password_file is set",
	    cfg->path != NULL ? cfg->path : "config");
}

void
config_secret_free(char *secret)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

/* ACS compares MailFrom addresses without regard to case, local part
 * included */
bool
config_sender_allowed(const struct config *cfg, const char *addr)
{
	if (addr == NULL || *addr == '\0')
		return false;
	if (cfg->from != NULL && strcasecmp(addr, cfg->from) == 0)
		return true;
	return strlist_has(&cfg->allowed_from, addr);
}

bool
config_domain_is_local(const struct config *cfg, const char *domain)
{
	char *bare;
	size_t n;
	bool local;

	if (domain == NULL || (n = strlen(domain)) == 0)
		return false;
	if (domain[n - 1] != '.')
		return strlist_has(&cfg->local_domains, domain);
	/* "host.example.com." is the same name */
	bare = xstrndup(domain, n - 1);
	local = strlist_has(&cfg->local_domains, bare);
	free(bare);
	return local;
}

void
config_free(struct config *cfg)
{
	if (cfg->password != NULL)
		explicit_bzero(cfg->password, strlen(cfg->password));
	free(cfg->path);
	free(cfg->server);
	free(cfg->tls_ca_file);
	free(cfg->username);
	free(cfg->password);
	free(cfg->password_file);
	free(cfg->from);
	free(cfg->from_name);
	strlist_free(&cfg->allowed_from);
	free(cfg->aliases);
	strlist_free(&cfg->local_domains);
	free(cfg->local_recipient);
	free(cfg->qualify_domain);
	free(cfg->queue_dir);
	free(cfg->log);
	memset(cfg, 0, sizeof(*cfg));
}
