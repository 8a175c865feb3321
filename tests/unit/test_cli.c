/* test_cli.c: the sendmail command line (SPEC §2, CALLERS.md) */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>

#include "cli.h"
#include "tap.h"

#define MAXW 32

/* parses the words given (argv[0] first, NULL last) */
static int
parse(struct options *o, struct status *st, const char *w0, ...)
{
	char *argv[MAXW + 1];
	const char *w;
	va_list ap;
	int argc = 0;

	va_start(ap, w0);
	for (w = w0; w != NULL && argc < MAXW; w = va_arg(ap, const char *))
		argv[argc++] = (char *)w;
	va_end(ap);
	argv[argc] = NULL;
	return cli_parse(argc, argv, o, st);
}

static bool
has_text(const struct status *st, const char *part)
{
	return strstr(st->text, part) != NULL;
}

static void
test_defaults(void)
{
	struct options o;
	struct status st;

	ok(parse(&o, &st, "sendmail", NULL) == EX_OK, "no options");
	ok(o.mode == MODE_DELIVER, "deliver is the default mode");
	ok(!o.extract && !o.ignore_dots && !o.verbose, "no flags set");
	ok(o.sender == NULL && o.full_name == NULL && o.config_path == NULL, "no values set");
	ok(o.delivery == 0 && o.queue_interval == 0 && !o.queue_flush, "no delivery/queue");
	ok(o.recipients.n == 0, "no recipients");
	cli_free(&o);

	ok(cli_parse(0, (char *[]){ NULL }, &o, &st) == EX_OK, "argc 0 is fine");
	ok(o.mode == MODE_DELIVER, "argc 0: deliver");
	cli_free(&o);
}

static void
test_flags(void)
{
	struct options o;
	struct status st;

	ok(parse(&o, &st, "sendmail", "-t", "-i", "-v", NULL) == EX_OK, "-t -i -v");
	ok(o.extract && o.ignore_dots && o.verbose, "-t -i -v set");
	cli_free(&o);

	ok(parse(&o, &st, "sendmail", "-ti", NULL) == EX_OK && o.extract && o.ignore_dots,
	    "-ti cluster (BusyBox crond)");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-it", NULL) == EX_OK && o.extract && o.ignore_dots,
	    "-it cluster");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-tiv", NULL) == EX_OK && o.extract && o.ignore_dots &&
	    o.verbose, "-tiv cluster");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-tf", "a@x", "b@y", NULL) == EX_OK && o.extract &&
	    o.sender != NULL && strcmp(o.sender, "a@x") == 0 && o.recipients.n == 1,
	    "-tf ADDR: a cluster ending in a valued option takes the next word");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-tfa@x", NULL) == EX_OK && o.extract &&
	    o.sender != NULL && strcmp(o.sender, "a@x") == 0, "-tfa@x: glued in a cluster");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-G", "-U", "-m", "-n", "-s", "-Gm", "x@y", NULL) == EX_OK &&
	    o.recipients.n == 1, "-G -U -m -n -s accepted");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-oi", NULL) == EX_OK && o.ignore_dots, "-oi");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-o", "i", NULL) == EX_OK && o.ignore_dots,
	    "-o i (separate value)");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-t", "-t", "-i", "-i", NULL) == EX_OK && o.extract,
	    "repeated flags are fine");
	cli_free(&o);
}

static void
test_sender(void)
{
	struct options o;
	struct status st;

	ok(parse(&o, &st, "sendmail", "-fa@x", NULL) == EX_OK, "-fX");
	is_str(o.sender, "a@x", "-fX glued");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-f", "a@x", NULL) == EX_OK, "-f X");
	is_str(o.sender, "a@x", "-f X separate");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-f", "<>", NULL);
	is_str(o.sender, "", "-f <> is the null sender");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-f<>", NULL);
	is_str(o.sender, "", "-f<> glued is the null sender");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-f", "", NULL);
	is_str(o.sender, "", "-f '' is the null sender");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-f", "<a@x>", NULL);
	is_str(o.sender, "a@x", "-f '<a@x>' loses its brackets");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-f", "Web Site <www@x.example>", NULL);
	is_str(o.sender, "www@x.example", "-f 'Name <a@x>' gives the address");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-r", "b@y", NULL);
	is_str(o.sender, "b@y", "-r ADDR");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-ra@x", "-f", "c@z", NULL);
	is_str(o.sender, "c@z", "the last of -r/-f wins");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-FCronDaemon", NULL);
	is_str(o.full_name, "CronDaemon", "-FCronDaemon");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-F", "Cron Daemon", NULL);
	is_str(o.full_name, "Cron Daemon", "-F 'Cron Daemon'");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-F", "", NULL);
	is_str(o.full_name, "", "-F '' is an empty name");
	cli_free(&o);

	ok(parse(&o, &st, "sendmail", "-f", "a@x\r\nRCPT TO:<e@v>", NULL) == EX_USAGE,
	    "-f with CR LF is refused");
	ok(has_text(&st, "-f"), "and the message names -f");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-F", "x\nBcc: e@v", NULL) == EX_USAGE,
	    "-F with LF is refused");
	cli_free(&o);
}

static void
test_values(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "sendmail", "-B8BITMIME", NULL);
	is_str(o.body_type, "8BITMIME", "-B8BITMIME");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-B", "8BITMIME", NULL);
	is_str(o.body_type, "8BITMIME", "-B 8BITMIME");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-B", "7bit", NULL);
	is_str(o.body_type, "7BIT", "-B 7bit is upper-cased");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-B8bitmime", NULL);
	is_str(o.body_type, "8BITMIME", "-B8bitmime is upper-cased");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-B", "BINARYMIME", NULL) == EX_USAGE,
	    "-B BINARYMIME is refused");
	ok(has_text(&st, "-B"), "naming -B");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-N", "success,failure", NULL);
	is_str(o.dsn_notify, "SUCCESS,FAILURE", "-N success,failure");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-Nnever", NULL);
	is_str(o.dsn_notify, "NEVER", "-Nnever");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-N", "delay,failure", NULL);
	is_str(o.dsn_notify, "DELAY,FAILURE", "-N delay,failure");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-N", "sometimes", NULL) == EX_USAGE, "-N bogus refused");
	ok(has_text(&st, "-N"), "naming -N");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-N", "never,success", NULL) == EX_USAGE,
	    "-N never,success refused");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-R", "hdrs", NULL);
	is_str(o.dsn_ret, "HDRS", "-R hdrs");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-Rfull", NULL);
	is_str(o.dsn_ret, "FULL", "-Rfull");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-R", "body", NULL) == EX_USAGE, "-R body refused");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-V", "env-1234", NULL);
	is_str(o.dsn_envid, "env-1234", "-V envid");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-Venv5", NULL);
	is_str(o.dsn_envid, "env5", "-Venvid glued");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-C", "/tmp/other.conf", NULL);
	is_str(o.config_path, "/tmp/other.conf", "-C file");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-C/tmp/o.conf", NULL);
	is_str(o.config_path, "/tmp/o.conf", "-Cfile");
	cli_free(&o);

	ok(parse(&o, &st, "sendmail", "-L", "tag", "-h", "17", "-p", "esmtp", "-A", "c",
	    "-X", "/tmp/trace", "-O", "LogLevel=9", "-Ltag2", "-h5", "-pesmtp:host", "-Am",
	    "a@x", NULL) == EX_OK, "-L -h -p -A -X -O accepted");
	ok(o.recipients.n == 1 && strcmp(o.recipients.v[0], "a@x") == 0,
	    "their values are not taken as recipients");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-O", "IgnoreDots=True", NULL);
	ok(o.ignore_dots, "-O IgnoreDots=True");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-ODeliveryMode=q", NULL);
	ok(o.delivery == 'q', "-ODeliveryMode=q");
	cli_free(&o);
}

static void
test_o_family(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "sendmail", "-odi", NULL);
	ok(o.delivery == 'i', "-odi");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-odb", NULL);
	ok(o.delivery == 'b', "-odb");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-odq", NULL);
	ok(o.delivery == 'q', "-odq");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-odq", "-odb", NULL);
	ok(o.delivery == 'b', "the last -od wins");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-odd", NULL);
	ok(o.delivery == 'q', "-odd (deferred) queues");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-oem", "-oee", "-oep", "-oeq", "-oew", NULL) == EX_OK,
	    "-oem -oee -oep -oeq -oew");
	ok(!o.ignore_dots && o.delivery == 0, "and they change nothing");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-oXanything", "-oL9", "-oQ/var/spool", "-om", NULL) ==
	    EX_OK, "-o<x><value> accepted");
	ok(!o.ignore_dots, "-o<x> ignored");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-o", NULL) == EX_USAGE && has_text(&st, "-o"),
	    "-o alone needs a value");
	cli_free(&o);
}

static void
test_b_family(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "sendmail", "-bm", NULL);
	ok(o.mode == MODE_DELIVER, "-bm");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-bs", NULL);
	ok(o.mode == MODE_SMTP, "-bs");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-bp", NULL);
	ok(o.mode == MODE_LIST, "-bp");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-bi", NULL);
	ok(o.mode == MODE_ALIASES, "-bi");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-bv", "root", NULL);
	ok(o.mode == MODE_VERIFY && o.recipients.n == 1, "-bv root");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-b", "s", NULL);
	ok(o.mode == MODE_SMTP, "-b s (separate value)");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-bd", NULL) == EX_USAGE, "-bd refused");
	ok(has_text(&st, "-bd"), "naming -bd: %s", st.text);
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-bD", NULL) == EX_USAGE && has_text(&st, "-bD"),
	    "-bD refused, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-bt", NULL) == EX_USAGE && has_text(&st, "-bt"),
	    "-bt refused, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-bsx", NULL) == EX_USAGE && has_text(&st, "-bsx"),
	    "-bsx refused, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-b", NULL) == EX_USAGE && has_text(&st, "-b"),
	    "-b needs a value");
	cli_free(&o);
}

static void
test_q_family(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "sendmail", "-q", NULL);
	ok(o.mode == MODE_QUEUE_RUN && o.queue_flush && o.queue_interval == 0,
	    "-q flushes");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-q1m", NULL);
	ok(o.mode == MODE_QUEUE_RUN && !o.queue_flush && o.queue_interval == 60,
	    "-q1m is 60 s, not a flush");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-q30s", NULL);
	ok(o.queue_interval == 30, "-q30s");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-q1h", NULL);
	ok(o.queue_interval == 3600, "-q1h");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-q2h30m", NULL);
	ok(o.queue_interval == 9000, "-q2h30m");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-q15", NULL);
	ok(o.queue_interval == 900, "-q15: minutes, as in sendmail");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-q1d", NULL);
	ok(o.queue_interval == 86400, "-q1d");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-q1x", NULL) == EX_USAGE && has_text(&st, "-q1x"),
	    "-q1x refused, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-q0m", NULL) == EX_USAGE, "-q0m refused");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-q99999999999999999999h", NULL) == EX_USAGE,
	    "an absurd interval is refused");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-qRexample.com", NULL);
	ok(o.mode == MODE_QUEUE_RUN && o.queue_flush, "-qR flushes");
	is_str(o.queue_recipient, "example.com", "-qR<s>");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-qS", "root@x", NULL);
	is_str(o.queue_sender, "root@x", "-qS <s> separate");
	ok(o.queue_flush && o.recipients.n == 0, "-qS value is not a recipient");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-qI0A1B2C", NULL);
	is_str(o.queue_id, "0A1B2C", "-qI<id>");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-qI", "0A1B2C", NULL);
	is_str(o.queue_id, "0A1B2C", "-qI <id> separate");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-qI", NULL) == EX_USAGE && has_text(&st, "-qI"),
	    "-qI without a value, named");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-v", "-q", NULL);
	ok(o.verbose && o.queue_flush, "-v -q");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-vq1m", NULL);
	ok(o.verbose && o.queue_interval == 60, "-vq1m cluster");
	cli_free(&o);
}

static void
test_long(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "acsmail", "--check", NULL);
	ok(o.mode == MODE_CHECK, "--check");
	cli_free(&o);
	parse(&o, &st, "acsmail", "--version", NULL);
	ok(o.mode == MODE_VERSION, "--version");
	cli_free(&o);
	parse(&o, &st, "acsmail", "--help", NULL);
	ok(o.mode == MODE_HELP, "--help");
	cli_free(&o);
	parse(&o, &st, "acsmail", "--requeue", "0A1B2C", NULL);
	ok(o.mode == MODE_REQUEUE, "--requeue ID");
	is_str(o.target_id, "0A1B2C", "--requeue ID value");
	ok(o.recipients.n == 0, "the id is not a recipient");
	cli_free(&o);
	parse(&o, &st, "acsmail", "--delete=0A1B2C", NULL);
	ok(o.mode == MODE_DELETE, "--delete=ID");
	is_str(o.target_id, "0A1B2C", "--delete=ID value");
	cli_free(&o);
	ok(parse(&o, &st, "acsmail", "--delete", NULL) == EX_USAGE && has_text(&st, "--delete"),
	    "--delete without an id, named");
	cli_free(&o);
	ok(parse(&o, &st, "acsmail", "--frobnicate", NULL) == EX_USAGE, "--frobnicate refused");
	ok(has_text(&st, "unknown option --frobnicate"), "naming it: %s", st.text);
	cli_free(&o);
	ok(parse(&o, &st, "acsmail", "--check=yes", NULL) == EX_USAGE, "--check=yes refused");
	cli_free(&o);
}

static void
test_end_of_options(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "sendmail", "-i", "a@x", "-t", "-fb@y", NULL);
	ok(!o.extract && o.sender == NULL, "options end at the first non-option word");
	ok(o.recipients.n == 3, "the rest are recipient words");
	is_str(o.recipients.v[1], "-t", "kept as given");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-i", "--", "-a@x", "b@y", NULL);
	ok(o.ignore_dots && o.recipients.n == 2, "-- ends the options");
	is_str(o.recipients.v[0], "-a@x", "a word after -- is a recipient");
	cli_free(&o);

	parse(&o, &st, "sendmail", "--", NULL);
	ok(o.recipients.n == 0, "-- alone");
	cli_free(&o);

	parse(&o, &st, "sendmail", "a@x,b@y", "\"A, B\" <c@z>", NULL);
	ok(o.recipients.n == 2, "commas are not split here");
	is_str(o.recipients.v[0], "a@x,b@y", "a comma list is one word");
	is_str(o.recipients.v[1], "\"A, B\" <c@z>", "a full address is one word");
	cli_free(&o);

	parse(&o, &st, "sendmail", "-", "x@y", NULL);
	ok(o.recipients.n == 2, "a lone - is not an option");
	cli_free(&o);
}

static void
test_errors(void)
{
	struct options o;
	struct status st;

	ok(parse(&o, &st, "sendmail", "-Z", NULL) == EX_USAGE, "-Z refused with EX_USAGE");
	ok(has_text(&st, "unknown option -Z"), "naming it: %s", st.text);
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-tZ", NULL) == EX_USAGE && has_text(&st, "-Z"),
	    "an unknown letter in a cluster, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-d0.1", NULL) == EX_USAGE && has_text(&st, "-d"),
	    "-d refused, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-\x01", NULL) == EX_USAGE && !str_has_ctl(st.text),
	    "a control character is not echoed");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-f", NULL) == EX_USAGE, "-f at the end");
	ok(has_text(&st, "-f requires a value"), "names -f: %s", st.text);
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-i", "-F", NULL) == EX_USAGE && has_text(&st, "-F"),
	    "-F at the end, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-C", NULL) == EX_USAGE && has_text(&st, "-C"),
	    "-C at the end, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-B", NULL) == EX_USAGE && has_text(&st, "-B"),
	    "-B at the end, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-N", NULL) == EX_USAGE && has_text(&st, "-N"),
	    "-N at the end, named");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-fa@x", "-Z", NULL) == EX_USAGE,
	    "an error after a value");
	cli_free(&o);
	ok(o.sender == NULL, "cli_free cleared the options");
}

static void
test_argv0(void)
{
	struct options o;
	struct status st;

	parse(&o, &st, "mailq", NULL);
	ok(o.mode == MODE_LIST, "mailq is -bp");
	cli_free(&o);
	parse(&o, &st, "/usr/bin/mailq", "-v", NULL);
	ok(o.mode == MODE_LIST && o.verbose, "/usr/bin/mailq -v");
	cli_free(&o);
	parse(&o, &st, "newaliases", NULL);
	ok(o.mode == MODE_ALIASES, "newaliases is -bi");
	cli_free(&o);
	parse(&o, &st, "/usr/bin/newaliases", NULL);
	ok(o.mode == MODE_ALIASES, "/usr/bin/newaliases");
	cli_free(&o);
	parse(&o, &st, "/usr/sbin/sendmail", NULL);
	ok(o.mode == MODE_DELIVER, "/usr/sbin/sendmail delivers");
	cli_free(&o);
	parse(&o, &st, "/usr/bin/mailq.old", NULL);
	ok(o.mode == MODE_DELIVER, "only the exact base name counts");
	cli_free(&o);
}

/* CALLERS.md, argv as those programs build it */
static void
test_callers(void)
{
	struct options o;
	struct status st;

	/* PHP mail() with the 5th argument */
	ok(parse(&o, &st, "/usr/sbin/sendmail", "-t", "-i", "-fwww@site.example", NULL) == EX_OK,
	    "PHP mail(): sendmail -t -i -fuser@dom");
	ok(o.extract && o.ignore_dots, "PHP: -t -i");
	is_str(o.sender, "www@site.example", "PHP: -f");
	cli_free(&o);

	/* PHPMailer */
	ok(parse(&o, &st, "sendmail", "-oi", "-fmailer@site.example", "-t", NULL) == EX_OK &&
	    o.extract && o.ignore_dots, "PHPMailer: -oi -f<sender> -t");
	is_str(o.sender, "mailer@site.example", "PHPMailer: sender");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-t", "-i", "-oi", "-fX@y.example", "-t", NULL) == EX_OK &&
	    o.extract && o.ignore_dots && o.recipients.n == 0,
	    "PHPMailer old: -t -i -oi -fX -t (repeated flags)");
	is_str(o.sender, "X@y.example", "PHPMailer old: sender");
	cli_free(&o);

	/* Symfony Mailer */
	parse(&o, &st, "sendmail", "-bs", NULL);
	ok(o.mode == MODE_SMTP, "Symfony: -bs");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-f<s@app.example>", "--", "r1@x", "r2@y", NULL) == EX_OK,
	    "Symfony -t mode: -f'<s>' -- r1 r2");
	is_str(o.sender, "s@app.example", "Symfony: sender without brackets");
	ok(o.recipients.n == 2 && !o.extract, "Symfony: two recipients, no -t");
	cli_free(&o);

	/* Debian cron */
	ok(parse(&o, &st, "/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem",
	    "a@x,b@y", NULL) == EX_OK, "Debian cron: -FCronDaemon -i -B8BITMIME -oem MAILTO");
	is_str(o.full_name, "CronDaemon", "cron: full name");
	is_str(o.body_type, "8BITMIME", "cron: body type");
	ok(o.ignore_dots && !o.extract, "cron: -i, no -t");
	ok(o.recipients.n == 1, "cron: the MAILTO list is one word");
	is_str(o.recipients.v[0], "a@x,b@y", "cron: as given");
	cli_free(&o);

	/* cronie */
	ok(parse(&o, &st, "/usr/sbin/sendmail", "-FCronDaemon", "-i", "-odi", "-oem", "-oi",
	    "-t", "-f", "root", NULL) == EX_OK,
	    "cronie: -FCronDaemon -i -odi -oem -oi -t -f root");
	ok(o.extract && o.ignore_dots && o.delivery == 'i', "cronie: -t -i -odi");
	is_str(o.sender, "root", "cronie: -f root");
	ok(o.recipients.n == 0, "cronie: no recipients on argv");
	cli_free(&o);

	/* systemd-cron */
	ok(parse(&o, &st, "sendmail", "-i", "-B", "8BITMIME", "root", NULL) == EX_OK,
	    "systemd-cron: -i -B 8BITMIME mailto");
	is_str(o.body_type, "8BITMIME", "systemd-cron: body type");
	ok(o.recipients.n == 1 && strcmp(o.recipients.v[0], "root") == 0,
	    "systemd-cron: 8BITMIME is not a recipient");
	cli_free(&o);

	/* BusyBox crond, mdadm, logwatch, unattended-upgrades */
	ok(parse(&o, &st, "sendmail", "-ti", NULL) == EX_OK && o.extract && o.ignore_dots,
	    "BusyBox crond: -ti");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-t", NULL) == EX_OK && o.extract, "mdadm/logwatch: -t");
	cli_free(&o);
	ok(parse(&o, &st, "/usr/sbin/sendmail", "-oi", "-t", NULL) == EX_OK && o.extract &&
	    o.ignore_dots, "unattended-upgrades: -oi -t");
	cli_free(&o);

	/* bsd-mailx, s-nail */
	ok(parse(&o, &st, "sendmail", "-i", "-v", "u1@x", "u2@y", NULL) == EX_OK &&
	    o.verbose && o.recipients.n == 2, "bsd-mailx: -i -v rcpt rcpt");
	cli_free(&o);
	ok(parse(&o, &st, "sendmail", "-i", "-f", "me@x", "--", "u@y", NULL) == EX_OK &&
	    o.recipients.n == 1, "s-nail: -i -f from -- rcpt");
	is_str(o.sender, "me@x", "s-nail: sender");
	cli_free(&o);

	/* GNU mailutils */
	ok(parse(&o, &st, "sendmail", "-oi", "-f", "me@x", "-t", NULL) == EX_OK && o.extract,
	    "mailutils: -oi -f from -t");
	cli_free(&o);

	/* mutt / neomutt */
	ok(parse(&o, &st, "/usr/sbin/sendmail", "-oem", "-oi", "-B8BITMIME", "-f", "me@x",
	    "-N", "success,failure", "-R", "hdrs", "--", "to@x", "cc@y", "bcc@z", NULL) == EX_OK,
	    "mutt: -oem -oi -B8BITMIME -f addr -N .. -R .. -- to cc bcc");
	ok(o.ignore_dots && !o.extract, "mutt: -oi");
	is_str(o.body_type, "8BITMIME", "mutt: body type");
	is_str(o.sender, "me@x", "mutt: sender");
	is_str(o.dsn_notify, "SUCCESS,FAILURE", "mutt: NOTIFY");
	is_str(o.dsn_ret, "HDRS", "mutt: RET");
	ok(o.recipients.n == 3, "mutt: three recipients");
	is_str(o.recipients.v[2], "bcc@z", "mutt: the last one");
	cli_free(&o);

	/* git send-email */
	ok(parse(&o, &st, "/usr/sbin/sendmail", "-f", "dev@x.example", "-i",
	    "list@vger.example", "maint@y.example", NULL) == EX_OK,
	    "git send-email: -f env -i rcpt rcpt");
	ok(o.ignore_dots && o.recipients.n == 2, "git: -i, two recipients");
	is_str(o.sender, "dev@x.example", "git: sender");
	cli_free(&o);

	/* fail2ban */
	ok(parse(&o, &st, "sendmail", "-f", "fail2ban@host.example", "admin@x,ops@y", NULL) ==
	    EX_OK, "fail2ban: -f \"<sender>\" \"<dest>\"");
	is_str(o.sender, "fail2ban@host.example", "fail2ban: sender");
	ok(o.recipients.n == 1, "fail2ban: the comma list is one word");
	cli_free(&o);
	parse(&o, &st, "sendmail", "-f", "<fail2ban@host.example>", "admin@x", NULL);
	is_str(o.sender, "fail2ban@host.example", "fail2ban with brackets");
	cli_free(&o);
}

static void
test_usage(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cli_usage(f);
	fclose(f);
	ok(text != NULL && strstr(text, "usage:") != NULL && strstr(text, "-bs") != NULL &&
	    strstr(text, "--check") != NULL, "cli_usage prints a short help");
	free(text);
}

int
main(void)
{
	test_defaults();
	test_flags();
	test_sender();
	test_values();
	test_o_family();
	test_b_family();
	test_q_family();
	test_long();
	test_end_of_options();
	test_errors();
	test_argv0();
	test_callers();
	test_usage();
	return tap_done();
}
