/* test_config.c: /etc/acsmail.conf (SPEC §8) and its secret (SPEC §7) */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

/* by path: "config.h" alone is the build's config.h here */
#include "../../src/config.h"
#include "log.h"
#include "tap.h"

/* what every valid file needs */
#define BASE \
	"username = \"acs-app\"\n" \
	"password = 'pw'\n" \
	"from = \"DoNotReply@mail.example.com\"\n"

static char dir[64];
static char conf[128];

static void
write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) == -1) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static int
load(const char *text, mode_t mode, struct config *cfg, struct status *st)
{
	write_file(conf, text, strlen(text), mode);
	status_clear(st);
	return config_load(conf, cfg, st);
}

/* the file fails with EX_CONFIG and "<path>:<line>: ...<what>..." (no line: "<path>: ") */
static void
fails_at(const char *text, int line, const char *what, const char *desc)
{
	struct config cfg;
	struct status st;
	char want[512];
	int rc = load(text, 0600, &cfg, &st);

	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", conf, line);
	else
		snprintf(want, sizeof(want), "%s: ", conf);
	ok(rc == EX_CONFIG && strncmp(st.text, want, strlen(want)) == 0 &&
	    strstr(st.text + strlen(want), what) != NULL, "%s (%s)", desc, st.text);
	config_free(&cfg);
}

static void
test_defaults(void)
{
	struct config cfg;
	struct status st;
	char host[256];

	ok(load(BASE, 0600, &cfg, &st) == EX_OK, "the smallest config loads (%s)", st.text);
	is_str(cfg.path, conf, "path");
	is_str(cfg.server, "smtp.azurecomm.net", "server default");
	ok(cfg.port == 587, "port default 587");
	ok(cfg.tls == TLS_STARTTLS, "tls default starttls");
	is_str(cfg.tls_ca_file, "", "tls_ca_file default");
	is_str(cfg.username, "acs-app", "username");
	is_str(cfg.password, "pw", "password");
	is_str(cfg.password_file, "", "password_file default");
	is_str(cfg.from, "DoNotReply@mail.example.com", "from");
	is_str(cfg.from_name, "", "from_name default");
	ok(cfg.allowed_from.n == 0, "allowed_from default empty");
	ok(cfg.rewrite_from == REWRITE_AUTO, "rewrite_from default auto");
	is_str(cfg.aliases, "/etc/aliases", "aliases default");
	is_str(cfg.local_recipient, "", "local_recipient default");
	ok(cfg.delivery == DELIVERY_FOREGROUND, "delivery default foreground");
	is_str(cfg.queue_dir, LOCALSTATEDIR "/spool/acsmail", "queue_dir default");
	ok(cfg.queue_lifetime == 432000, "queue_lifetime default 5 days");
	ok(cfg.max_recipients == 50, "max_recipients default 50");
	ok(cfg.max_size == 10485760, "max_size default 10 MB");
	ok(cfg.rate_per_minute == 30, "rate_per_minute default 30");
	ok(cfg.rate_per_hour == 100, "rate_per_hour default 100");
	ok(cfg.timeout == 60, "timeout default 60");
	is_str(cfg.log, "syslog", "log default syslog");

	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	ok(strlist_has(&cfg.local_domains, "localhost"), "localhost is local");
	ok(strlist_has(&cfg.local_domains, host), "the host name (%s) is local", host);
	ok(cfg.qualify_domain != NULL && cfg.qualify_domain[0] != '\0' &&
	    strlist_has(&cfg.local_domains, cfg.qualify_domain),
	    "qualify_domain defaults to the FQDN (%s), which is local", cfg.qualify_domain);
	ok(strncasecmp(cfg.qualify_domain, host, strlen(host)) == 0 ||
	    strchr(cfg.qualify_domain, '.') != NULL, "the FQDN is the host's");
	config_free(&cfg);
	ok(cfg.server == NULL, "config_free clears");
}

static void
test_every_key(void)
{
	struct config cfg;
	struct status st;
	const char *text =
	    "server = \"relay.example.net\"\n"
	    "port = 465\n"
	    "tls = \"implicit\"\n"
	    "tls_ca_file = \"/etc/ssl/relay.pem\"\n"
	    "username = 'acs-relay-app'\n"
	    "acs_resource = \"\"\n"
	    "password = ''\n"
	    "password_file = \"/etc/acsmail.secret\"\n"
	    "from = \"Alerts@Mail.Example.com\"\n"
	    "from_name = \"Host Alerts\"\n"
	    "allowed_from = { \"billing@mail.example.com\", \"ops@mail.example.com\" }\n"
	    "rewrite_from = \"never\"\n"
	    "aliases = \"/etc/mail/aliases\"\n"
	    "local_domains = { \"web01.internal.example\" }\n"
	    "local_recipient = \"ops@example.com\"\n"
	    "qualify_domain = \"internal.example\"\n"
	    "delivery = \"queue\"\n"
	    "queue_dir = \"/tmp/acsmail-q\"\n"
	    "queue_lifetime = 3600\n"
	    "max_recipients = 10\n"
	    "max_size = 1000000\n"
	    "rate_per_minute = 5\n"
	    "rate_per_hour = 10\n"
	    "timeout = 15\n"
	    "log = \"/var/log/acsmail.log\"\n";

	ok(load(text, 0640, &cfg, &st) == EX_OK, "every key set (%s)", st.text);
	is_str(cfg.server, "relay.example.net", "server");
	ok(cfg.port == 465, "port");
	ok(cfg.tls == TLS_IMPLICIT, "tls implicit");
	is_str(cfg.tls_ca_file, "/etc/ssl/relay.pem", "tls_ca_file");
	is_str(cfg.username, "acs-relay-app", "username");
	is_str(cfg.password, "", "password empty with password_file");
	is_str(cfg.password_file, "/etc/acsmail.secret", "password_file");
	is_str(cfg.from, "Alerts@Mail.Example.com", "from");
	is_str(cfg.from_name, "Host Alerts", "from_name");
	ok(cfg.allowed_from.n == 2 && strcmp(cfg.allowed_from.v[1], "ops@mail.example.com") == 0,
	    "allowed_from");
	ok(cfg.rewrite_from == REWRITE_NEVER, "rewrite_from never");
	is_str(cfg.aliases, "/etc/mail/aliases", "aliases");
	ok(strlist_has(&cfg.local_domains, "web01.internal.example") &&
	    strlist_has(&cfg.local_domains, "localhost"), "local_domains adds to the host's names");
	is_str(cfg.local_recipient, "ops@example.com", "local_recipient");
	is_str(cfg.qualify_domain, "internal.example", "qualify_domain");
	ok(cfg.delivery == DELIVERY_QUEUE, "delivery queue");
	is_str(cfg.queue_dir, "/tmp/acsmail-q", "queue_dir");
	ok(cfg.queue_lifetime == 3600, "queue_lifetime");
	ok(cfg.max_recipients == 10, "max_recipients");
	ok(cfg.max_size == 1000000, "max_size");
	ok(cfg.rate_per_minute == 5, "rate_per_minute");
	ok(cfg.rate_per_hour == 10, "rate_per_hour");
	ok(cfg.timeout == 15, "timeout");
	is_str(cfg.log, "/var/log/acsmail.log", "log path");

	ok(config_sender_allowed(&cfg, "alerts@mail.example.com"), "from, in another case");
	ok(config_sender_allowed(&cfg, "BILLING@MAIL.EXAMPLE.COM"), "allowed_from, upper case");
	ok(config_sender_allowed(&cfg, "ops@Mail.Example.Com"), "allowed_from, mixed case");
	ok(!config_sender_allowed(&cfg, "root@mail.example.com"), "another address is not");
	ok(!config_sender_allowed(&cfg, "billing@mail.example.com.evil"), "no suffix match");
	ok(!config_sender_allowed(&cfg, ""), "the null sender is not an allowed From");
	ok(!config_sender_allowed(&cfg, NULL), "NULL is not");
	ok(config_domain_is_local(&cfg, "localhost"), "localhost is local");
	ok(config_domain_is_local(&cfg, "LocalHost"), "LocalHost is local");
	ok(config_domain_is_local(&cfg, "WEB01.internal.example"), "a listed domain, any case");
	ok(config_domain_is_local(&cfg, "web01.internal.example."), "with a final dot");
	ok(!config_domain_is_local(&cfg, "internal.example"), "qualify_domain alone is not");
	ok(!config_domain_is_local(&cfg, "example.com"), "a remote domain is not");
	ok(!config_domain_is_local(&cfg, ""), "empty is not");
	config_free(&cfg);

	ok(load("delivery = \"background\"\n" BASE, 0600, &cfg, &st) == EX_OK &&
	    cfg.delivery == DELIVERY_BACKGROUND, "delivery background");
	config_free(&cfg);
	ok(load("log = \"none\"\n" BASE, 0600, &cfg, &st) == EX_OK && strcmp(cfg.log, "none") == 0,
	    "log none");
	config_free(&cfg);
	ok(load("port = 587\nport = 2525\n" BASE, 0600, &cfg, &st) == EX_OK && cfg.port == 2525,
	    "a key given twice: the last wins");
	config_free(&cfg);
	ok(load(BASE "allowed_from = { \"a@x.example\" }\nallowed_from += { \"b@x.example\" }\n",
	    0600, &cfg, &st) == EX_OK && cfg.allowed_from.n == 2, "+= appends to a list");
	config_free(&cfg);
	ok(load(BASE "server = relay.example.net\nport = 0x24b\n", 0600, &cfg, &st) == EX_OK &&
	    strcmp(cfg.server, "relay.example.net") == 0 && cfg.port == 587,
	    "unquoted words and hex numbers");
	config_free(&cfg);
}

static void
test_username_forms(void)
{
	struct config cfg;
	struct status st;

	ok(load("password = 'pw'\nfrom = \"a@b.example\"\n"
	    "acs_resource = \"myacs\"\nentra_app_id = \"11111111-2222\"\n"
	    "entra_tenant_id = \"33333333-4444\"\n", 0600, &cfg, &st) == EX_OK,
	    "acs_resource/entra_app_id/entra_tenant_id (%s)", st.text);
	is_str(cfg.username, "myacs.11111111-2222.33333333-4444", "joined with dots");
	config_free(&cfg);

	fails_at("password = 'pw'\nfrom = \"a@b.example\"\n", 0, "username is not set",
	    "no username at all");
	fails_at("password = 'pw'\nfrom = \"a@b.example\"\n\nacs_resource = \"myacs\"\n"
	    "entra_tenant_id = \"t\"\n", 4, "entra_app_id is not set",
	    "two of the three: names the missing one, at a line of the others");
	fails_at("username = \"u\"\npassword = 'pw'\nfrom = \"a@b.example\"\n"
	    "acs_resource = \"r\"\nentra_app_id = \"a\"\nentra_tenant_id = \"t\"\n", 1,
	    "username and acs_resource", "username and the three are alternatives");
	fails_at("password = 'pw'\nfrom = \"a@b.example\"\n"
	    "acs_resource = \"r.x\"\nentra_app_id = \"a\"\nentra_tenant_id = \"t\"\n", 3,
	    "acs_resource must be one word", "a dot inside a part");
}

static void
test_errors(void)
{
	struct config cfg;
	struct status st;
	char want[300];
	int rc;

	fails_at("# comment 1\n"
	    "# comment 2\n"
	    "username = \"u\"   # trailing\n"
	    "// another comment\n"
	    "/* a block\n"
	    "   comment */\n"
	    "password = 'pw'\n"
	    "from = \"a@b.example\"\n"
	    "allowed_from = { \"x@b.example\", # a comment in a list\n"
	    "  \"y@b.example\" }\n"
	    "\n"
	    "sever = \"x\"\n", 12, "unknown key \"sever\"",
	    "an unknown key after comments, at its true line");
	fails_at(BASE "port = 0\n", 4, "port must be 1-65535", "port 0");
	fails_at("username = \"u\"\npassword = 'pw'\nport = 70000\nfrom = \"a@b.example\"\n", 3,
	    "port must be 1-65535", "port 70000");
	fails_at("port = 25\n" BASE "\nport = -1\n", 6, "port must be 1-65535",
	    "the line of the last assignment");
	fails_at(BASE "port = abc\n", 4, "invalid integer value for option 'port'",
	    "port not a number");
	fails_at(BASE "tls = \"none\"\n", 4, "tls must be \"starttls\" or \"implicit\"",
	    "tls none");
	fails_at(BASE "rewrite_from = \"always\"\n", 4, "rewrite_from must be", "rewrite_from");
	fails_at(BASE "delivery = \"later\"\n", 4, "delivery must be", "delivery");
	fails_at(BASE "queue_lifetime = 0\n", 4, "queue_lifetime must be a positive number",
	    "queue_lifetime 0");
	fails_at(BASE "max_recipients = -5\n", 4, "max_recipients must be a positive number",
	    "max_recipients -5");
	fails_at(BASE "max_size = 0\n", 4, "max_size must be a positive number", "max_size 0");
	fails_at(BASE "rate_per_minute = 0\n", 4, "rate_per_minute must be a positive number",
	    "rate_per_minute 0");
	fails_at(BASE "rate_per_hour = 0\n", 4, "rate_per_hour must be a positive number",
	    "rate_per_hour 0");
	fails_at(BASE "timeout = 0\n", 4, "timeout must be a positive number", "timeout 0");
	fails_at(BASE "server = \"\"\n", 4, "server must not be empty", "server empty");
	fails_at(BASE "server = \"relay example\"\n", 4, "server must be a host name",
	    "server with a space");
	fails_at("username = \"u\"\npassword = 'pw'\n", 0, "from is not set", "from missing");
	fails_at("username = \"u\"\npassword = 'pw'\nfrom = \"DoNotReply\"\n", 3,
	    "from must be an address", "from without @");
	fails_at("username = \"u\"\npassword = 'pw'\nfrom = \"@b.example\"\n", 3,
	    "from must be an address", "from without a local part");
	fails_at("username = \"u\"\npassword = 'pw'\nfrom = \"a\\r\\nRCPT@b.example\"\n", 3,
	    "from must be an address", "from with CR LF");
	fails_at(BASE "allowed_from = { \"a@b.example\",\n \"nobody\" }\n", 4,
	    "allowed_from holds something that is not an address", "allowed_from entry");
	fails_at(BASE "local_domains = { \"a b\" }\n", 4, "local_domains", "local_domains entry");
	fails_at(BASE "from_name = \"x\\nBcc: e@v\"\n", 4, "from_name holds control characters",
	    "from_name with LF");
	fails_at(BASE "queue_dir = \"spool\"\n", 4, "queue_dir must be an absolute path",
	    "queue_dir relative");
	fails_at(BASE "log = \"acsmail.log\"\n", 4, "log must be", "log relative");
	fails_at(BASE "qualify_domain = \"a@b\"\n", 4, "qualify_domain must be a domain name",
	    "qualify_domain with @");
	fails_at(BASE "password_file = \"/etc/s\"\n", 4,
	    "password and password_file are alternatives", "password and password_file");
	fails_at("username = \"u\"\nfrom = \"a@b.example\"\n", 0,
	    "neither password nor password_file is set", "no password");
	fails_at("username = \"u\"\npassword = ''\nfrom = \"a@b.example\"\n", 0,
	    "neither password nor password_file is set", "an empty password is none");
	fails_at(BASE "from_name = \"unterminated\n\nport = 25\n", 4, "unterminated string",
	    "an unterminated string, at the line where it starts");
	fails_at(BASE "password = 'unterminated\n\n", 4, "unterminated string",
	    "an unterminated password");
	fails_at(BASE "\nfrom_name = Host Alerts\n", 5, "unexpected \"Alerts\"",
	    "a value with a space, unquoted");
	fails_at(BASE "port = 587 588\n", 4, "unexpected \"588\" after port", "two values");
	fails_at(BASE "server += \"x\"\n", 4, "append to non-list option 'server'",
	    "+= on a single value");

	/* a syntax error in the password must not show it */
	rc = load("username = \"u\"\npassword = s3cr3t w0rd\nfrom = \"a@b.example\"\n", 0600,
	    &cfg, &st);
	ok(rc == EX_CONFIG && strstr(st.text, ":2:") != NULL && strstr(st.text, "password"),
	    "a broken password is reported at its line (%s)", st.text);
	ok(strstr(st.text, "s3cr3t") == NULL && strstr(st.text, "w0rd") == NULL,
	    "without quoting the secret");
	config_free(&cfg);
	rc = load("username = \"u\"\npassword = 'ab'cd'\nfrom = \"a@b.example\"\n", 0600, &cfg, &st);
	ok(rc == EX_CONFIG && strstr(st.text, "cd") == NULL, "nor a piece of it (%s)", st.text);
	config_free(&cfg);

	/* NUL */
	write_file(conf, BASE "x\0y\n", sizeof(BASE "x\0y\n") - 1, 0600);
	ok(config_load(conf, &cfg, &st) == EX_CONFIG && strstr(st.text, "NUL") != NULL,
	    "a NUL byte is refused");
	config_free(&cfg);

	/* the file itself */
	snprintf(want, sizeof(want), "%s/missing.conf", dir);
	ok(config_load(want, &cfg, &st) == EX_CONFIG, "a missing file is EX_CONFIG");
	ok(strstr(st.text, want) != NULL && strstr(st.text, strerror(ENOENT)) != NULL,
	    "naming the path and the reason (%s)", st.text);
	config_free(&cfg);
	ok(config_load(dir, &cfg, &st) == EX_CONFIG && strstr(st.text, dir) != NULL,
	    "a directory is EX_CONFIG (%s)", st.text);
	config_free(&cfg);
}

static void
test_permissions(void)
{
	struct config cfg;
	struct status st;
	int rc;

	rc = load(BASE, 0644, &cfg, &st);
	ok(rc == EX_CONFIG, "a password readable by others is refused");
	ok(strstr(st.text, "refusing") != NULL && strstr(st.text, conf) != NULL &&
	    strstr(st.text, "readable by others") != NULL &&
	    strstr(st.text, "chmod 640, chown root:acsmail") != NULL, "saying why and how (%s)",
	    st.text);
	config_free(&cfg);
	ok(load(BASE, 0604, &cfg, &st) == EX_CONFIG, "0604 is refused too");
	config_free(&cfg);
	ok(load(BASE, 0640, &cfg, &st) == EX_OK, "0640 is fine");
	config_free(&cfg);
	ok(load(BASE, 0660, &cfg, &st) == EX_OK, "group-writable is fine");
	config_free(&cfg);
	ok(load("username = \"u\"\npassword_file = \"/etc/s\"\nfrom = \"a@b.example\"\n", 0644,
	    &cfg, &st) == EX_OK, "a config without a password may be world-readable");
	config_free(&cfg);
}

static void
test_secrets(void)
{
	struct config cfg;
	struct status st;
	char secret_path[128], text[512], *secret;

	/* single quotes: the secret arrives byte for byte */
	ok(load("username = \"u\"\nfrom = \"a@b.example\"\n"
	    "password = 'a#b=c:~$HOME\\\"x y'\n", 0600, &cfg, &st) == EX_OK,
	    "a secret full of specials, single-quoted (%s)", st.text);
	is_str(cfg.password, "a#b=c:~$HOME\\\"x y", "arrives byte for byte");
	ok(config_secret(&cfg, &secret, &st) == EX_OK, "config_secret from password");
	is_str(secret, "a#b=c:~$HOME\\\"x y", "config_secret gives it unchanged");
	config_secret_free(secret);
	config_free(&cfg);

	ok(load("username = \"u\"\nfrom = \"a@b.example\"\n"
	    "password = '  it\\'s // not /* a */ comment; back\\\\slash \\n ${X} '\n", 0600,
	    &cfg, &st) == EX_OK, "\\' and \\\\ in single quotes (%s)", st.text);
	is_str(cfg.password, "  it's // not /* a */ comment; back\\slash \\n ${X} ",
	    "only \\' and \\\\ are escapes inside single quotes");
	config_free(&cfg);

	/* what double quotes do, and why the docs say single quotes */
	setenv("ACSMAIL_TEST_VAR", "expanded", 1);
	ok(load(BASE "from_name = \"${ACSMAIL_TEST_VAR} \\x41\"\n", 0600, &cfg, &st) == EX_OK,
	    "double quotes");
	is_str(cfg.from_name, "expanded A", "double quotes expand ${VAR} and escapes");
	config_free(&cfg);

	/* password_file */
	snprintf(secret_path, sizeof(secret_path), "%s/secret", dir);
	snprintf(text, sizeof(text),
	    "username = \"u\"\nfrom = \"a@b.example\"\npassword_file = \"%s\"\n", secret_path);
	ok(load(text, 0644, &cfg, &st) == EX_OK, "password_file config (%s)", st.text);
	is_str(cfg.password, "", "password is empty");
	is_str(cfg.password_file, secret_path, "password_file");

	write_file(secret_path, " s3cr#t = 'x' \\\"\t \r\nsecond line\n", strlen(" s3cr#t = 'x' \\\"\t \r\nsecond line\n"), 0640);
	ok(config_secret(&cfg, &secret, &st) == EX_OK, "config_secret reads it (%s)", st.text);
	is_str(secret, " s3cr#t = 'x' \\\"\t ", "the first line, raw, without CR LF");
	config_secret_free(secret);

	write_file(secret_path, "no-newline ", strlen("no-newline "), 0600);
	ok(config_secret(&cfg, &secret, &st) == EX_OK, "a file without a final newline");
	is_str(secret, "no-newline ", "taken whole, trailing space kept");
	config_secret_free(secret);

	write_file(secret_path, "lf-only\n", strlen("lf-only\n"), 0600);
	ok(config_secret(&cfg, &secret, &st) == EX_OK, "LF line end");
	is_str(secret, "lf-only", "LF removed");
	config_secret_free(secret);

	write_file(secret_path, "world\n", strlen("world\n"), 0644);
	secret = (char *)"untouched";
	ok(config_secret(&cfg, &secret, &st) == EX_CONFIG, "a readable-by-others secret file");
	ok(secret == NULL, "gives no secret");
	ok(strstr(st.text, "refusing") != NULL && strstr(st.text, secret_path) != NULL &&
	    strstr(st.text, "readable by others") != NULL, "is refused, saying why (%s)", st.text);

	write_file(secret_path, "\nsecond\n", strlen("\nsecond\n"), 0600);
	ok(config_secret(&cfg, &secret, &st) == EX_CONFIG && strstr(st.text, "empty") != NULL,
	    "an empty first line is refused (%s)", st.text);
	write_file(secret_path, "", strlen(""), 0600);
	ok(config_secret(&cfg, &secret, &st) == EX_CONFIG, "an empty file is refused");
	write_file(secret_path, "\r\n", strlen("\r\n"), 0600);
	ok(config_secret(&cfg, &secret, &st) == EX_CONFIG, "a lone CR LF is empty");

	unlink(secret_path);
	ok(config_secret(&cfg, &secret, &st) == EX_CONFIG && strstr(st.text, secret_path) &&
	    strstr(st.text, strerror(ENOENT)), "a missing secret file, named (%s)", st.text);
	config_free(&cfg);
	config_secret_free(NULL);
}

static void
test_example(void)
{
	const char *tests = getenv("ACSMAIL_TESTS");
	char path[1024], copy[128];
	struct config cfg;
	struct status st;
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f;

	if (tests == NULL) {
		ok(1, "# SKIP ACSMAIL_TESTS is not set");
		return;
	}
	snprintf(path, sizeof(path), "%s/../etc/acsmail.conf.example", tests);
	if ((f = fopen(path, "r")) != NULL) {
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_add(&b, chunk, n);
		fclose(f);
	}
	if (b.len == 0) {
		ok(1, "# SKIP %s is missing or empty", path);
		buf_free(&b);
		return;
	}
	/* installed as root:acsmail 0640; the copy here keeps the bits apart */
	snprintf(copy, sizeof(copy), "%s/example.conf", dir);
	write_file(copy, b.s, b.len, 0640);
	ok(config_load(copy, &cfg, &st) == EX_OK, "acsmail.conf.example loads (%s)", st.text);
	config_free(&cfg);
	unlink(copy);
	buf_free(&b);
}

static char *
slurp(const char *path)
{
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f != NULL) {
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_add(&b, chunk, n);
		fclose(f);
	}
	return buf_steal(&b);
}

/* the log key, as log.c follows it (SPEC §9) */
static void
test_log_key(void)
{
	struct config cfg;
	struct status st;
	char logpath[128], text[512], *got, *nl;
	size_t lines = 0;

	log_line(LOG_INFO, "a line before log_open goes to syslog");
	snprintf(logpath, sizeof(logpath), "%s/acsmail.log", dir);
	snprintf(text, sizeof(text), BASE "log = \"%s\"\n", logpath);
	ok(load(text, 0600, &cfg, &st) == EX_OK, "log = a path (%s)", st.text);
	log_open(&cfg);
	log_outcome("0A1B2C", "x@y.example", 2, 1234, "sent", "250 2.0.0 OK <id@acs> \"q\"", 0.42);
	log_outcome("0A1B2D", "", 1, 99, "failed", NULL, 1.0);
	log_line(LOG_WARNING, "bad\r\nline\x01 %s", "end");
	log_close();
	got = slurp(logpath);
	for (nl = got; (nl = strchr(nl, '\n')) != NULL; nl++)
		lines++;
	ok(lines == 3, "three calls, three lines (%zu)", lines);
	ok(strstr(got, "acsmail[") != NULL, "lines carry the ident and pid");
	ok(strstr(got, " id=0A1B2C from=<x@y.example> nrcpt=2 size=1234 status=sent "
	    "reply=\"250 2.0.0 OK <id@acs> \\\"q\\\"\" delay=0.42s\n") != NULL,
	    "the outcome line");
	ok(strstr(got, " id=0A1B2D from=<> nrcpt=1 size=99 status=failed delay=1.00s\n") != NULL,
	    "the null sender is <>, no reply no field");
	ok(strstr(got, "warning: bad  line end\n") != NULL, "control characters are blanked");
	ok(strchr(got, '\r') == NULL && strchr(got, '\x01') == NULL, "none reach the file");
	ok(got[0] >= '2' && got[0] <= '9' && got[4] == '-', "lines start with a timestamp");
	free(got);
	config_free(&cfg);

	ok(load(BASE "log = \"none\"\n", 0600, &cfg, &st) == EX_OK, "log = none");
	log_open(&cfg);
	log_line(LOG_ERR, "nowhere");
	log_outcome("X", "a@b", 1, 1, "sent", "250", 0);
	log_close();
	config_free(&cfg);
	got = slurp(logpath);
	ok(strstr(got, "nowhere") == NULL && strstr(got, "id=X ") == NULL, "none logs nothing");
	free(got);

	snprintf(text, sizeof(text), BASE "log = \"%s/no/such/dir/log\"\n", dir);
	ok(load(text, 0600, &cfg, &st) == EX_OK, "log = an unopenable path loads");
	log_open(&cfg);
	log_line(LOG_INFO, "falls back to syslog");
	log_close();
	config_free(&cfg);
	ok(access(logpath, F_OK) == 0, "and the earlier file is untouched by it");
	unlink(logpath);
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/acsmail-test-config.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(conf, sizeof(conf), "%s/acsmail.conf", dir);

	test_defaults();
	test_every_key();
	test_username_forms();
	test_errors();
	test_permissions();
	test_secrets();
	test_example();
	test_log_key();

	unlink(conf);
	rmdir(dir);
	return tap_done();
}
