/* main.c: mode dispatch, and the one place where exit codes are decided */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "cli.h"
#include "config.h"
#include "deliver.h"
#include "envelope.h"
#include "log.h"
#include "message.h"
#include "mime.h"
#include "policy.h"
#include "queue.h"
#include "ratelimit.h"
#include "smtp.h"
#include "status.h"
#include "util.h"

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The person at a terminal (or asking with -v) hears about a queued message. */
static bool
tell_user(const struct options *o)
{
	return o->verbose || isatty(STDERR_FILENO);
}

static int
report(const struct status *st)
{
	const char *hint;

	fprintf(stderr, "acsmail: %s\n", st->text);
	hint = smtp_hint(st->text);
	if (hint != NULL)
		fprintf(stderr, "acsmail: hint: %s\n", hint);
	return st->code;
}

static bool
privileged(void)
{
	return getuid() != geteuid() || getgid() != getegid();
}

/* Before a user-supplied path is opened, the setgid privilege goes (SPEC §7). */
static int
drop_privileges(struct status *st)
{
	if (!privileged())
		return EX_OK;
	if (setgid(getgid()) != 0 || setuid(getuid()) != 0)
		return status_set(st, EX_OSERR, "cannot drop privileges: %s", strerror(errno));
	return EX_OK;
}

/* Temporary files go where the queue runner cleans up after a crash. */
static char *
temp_dir(const struct config *cfg)
{
	const char *t;
	char *dir = xasprintf("%s/tmp", cfg->queue_dir);

	if (access(dir, W_OK | X_OK) == 0)
		return dir;
	free(dir);
	t = privileged() ? NULL : getenv("TMPDIR");
	return xstrdup(t != NULL && *t != '\0' ? t : "/tmp");
}

/* An unlinked temporary file for the message as it will be sent. */
static FILE *
temp_file(const char *dir, struct status *st)
{
	char *path = xasprintf("%s/acsmail-prepared.XXXXXX", dir);
	int fd = mkstemp(path);
	FILE *f;

	if (fd < 0) {
		status_set(st, EX_TEMPFAIL, "cannot create a temporary file in %s: %s", dir,
		    strerror(errno));
		free(path);
		return NULL;
	}
	unlink(path);
	free(path);
	f = fdopen(fd, "w+");
	if (f == NULL) {
		close(fd);
		status_set(st, EX_TEMPFAIL, "cannot open a temporary file: %s", strerror(errno));
	}
	return f;
}

/* After writing f (rc is how that went): f rewound with *size its length,
 * or NULL, closed, with the reason in st. */
static FILE *
temp_written(FILE *f, int rc, off_t *size, struct status *st)
{
	if (rc != EX_OK || fflush(f) != 0) {
		if (st->code == EX_OK)
			status_set(st, EX_TEMPFAIL, "cannot write a temporary file: %s",
			    strerror(errno));
		fclose(f);
		return NULL;
	}
	*size = ftello(f);
	rewind(f);
	return f;
}

/* Writes m to a new temporary file; *size gets its length. */
static FILE *
prepare(const char *dir, struct message *m, off_t *size, struct status *st)
{
	FILE *f = temp_file(dir, st);

	if (f == NULL)
		return NULL;
	return temp_written(f, message_write(m, f, st), size, st);
}

/* SMTP allows 998 octets a line: a body with longer lines is re-encoded
 * as quoted-printable rather than cut (SPEC §4). Takes msg, returns the
 * re-encoded message or NULL. */
static FILE *
reencode_long_lines(const char *dir, FILE *msg, off_t *size, struct status *st)
{
	FILE *f = temp_file(dir, st);

	if (f != NULL)
		f = temp_written(f, mime_downgrade(msg, f, st), size, st);
	fclose(msg);
	return f;
}

/* Into the failed area; recipients the spool cannot hold (often the reason
 * they failed: too long, control characters) must not cost the message, so
 * then it is kept without them. */
static int
store_failed(const struct config *cfg, const char *qid, const struct envelope *env, FILE *msg,
    off_t size, const char *reason, struct status *st)
{
	struct envelope bare = { .sender = env->sender };

	if (queue_store_failed(cfg, qid, env, msg, size, reason, st) == EX_OK)
		return EX_OK;
	if (env->rcpts.n == 0 || fseeko(msg, 0, SEEK_SET) != 0)
		return st->code;
	status_clear(st);
	return queue_store_failed(cfg, qid, &bare, msg, size, reason, st);
}

/* A message that cannot be delivered is kept with the reason: nothing a
 * caller handed over is lost (SPEC §3). Returns the code to exit with. */
static int
keep_failed(const struct config *cfg, const char *qid, const struct envelope *env, FILE *msg,
    off_t size, const struct status *why)
{
	struct envelope none = {0};
	struct status st;

	status_clear(&st);
	none.sender = cfg->from;
	if (env == NULL || env->sender == NULL)
		env = &none;
	if (store_failed(cfg, qid, env, msg, size, why->text, &st) == EX_OK) {
		fprintf(stderr, "acsmail: %s (kept as %s in the failed area)\n", why->text, qid);
		log_line(LOG_ERR, "id=%s kept in the failed area: %s", qid, why->text);
	} else {
		fprintf(stderr, "acsmail: %s\n", why->text);
		fprintf(stderr, "acsmail: and the message could not be kept: %s\n", st.text);
		log_line(LOG_ERR, "id=%s not delivered and not kept: %s; %s", qid, why->text,
		    st.text);
	}
	return why->code;
}

static size_t
count_state(const struct rcpt_outcome *out, size_t n, enum rcpt_state state)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += out[i].state == state;
	return k;
}

/* Spools msg for the recipients whose state is keep: the failed area for
 * RCPT_FAILED, the queue for the others. */
static int
spool(const struct config *cfg, const char *qid, const struct envelope *env,
    const struct rcpt_outcome *out, enum rcpt_state keep, FILE *msg, off_t size,
    const char *reason, struct status *st)
{
	struct envelope part = *env;
	time_t reopens;
	size_t i;
	int rc;

	memset(&part.rcpts, 0, sizeof(part.rcpts));
	for (i = 0; i < env->rcpts.n; i++)
		if (out[i].state == keep)
			strlist_add(&part.rcpts, env->rcpts.v[i]);
	if (part.rcpts.n == 0) {
		strlist_free(&part.rcpts);
		return EX_OK;
	}
	if (keep == RCPT_FAILED)
		rc = store_failed(cfg, qid, &part, msg, size, reason, st);
	else if ((reopens = ratelimit_next(cfg)) > 0)
		/* held back by the rate budget or a throttle pause: no failed attempt */
		rc = queue_store(cfg, qid, &part, msg, size, reason, reopens, st);
	else
		rc = queue_store_deferred(cfg, qid, &part, msg, size, reason, st);
	strlist_free(&part.rcpts);
	return rc;
}

/* One pass of the runner over the queue, with the secret read for it. */
static int
run_queue(const struct config *cfg, const struct queue_filter *f, FILE *transcript,
    struct status *st)
{
	struct deliver_ctx ctx = { .cfg = cfg, .transcript = transcript };
	char *secret = NULL;
	int rc;

	rc = config_secret(cfg, &secret, st);
	if (rc != EX_OK)
		return rc;
	ctx.secret = secret;
	rc = queue_run(cfg, &ctx, f, st);
	deliver_finish(&ctx);
	config_secret_free(secret);
	return rc;
}

/* Detaches a child that delivers the spooled message; the caller returns at once. */
static void
deliver_in_background(const struct config *cfg, const char *qid)
{
	struct queue_filter f = { .flush = true, .id = qid };
	struct status st;
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return;		/* parent, or fork failed: the runner will pick it up */
	setsid();
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	status_clear(&st);
	run_queue(cfg, &f, NULL, &st);
	_exit(0);
}

/* After a delivery that did not reach everyone: refused recipients go to
 * the failed area, deferred ones to the queue, each part logged with its
 * count; returns the exit code. */
static int
keep_outcome(const struct options *o, const struct config *cfg, const char *qid,
    const struct envelope *env, const struct rcpt_outcome *out, int rc,
    const struct status *st, FILE *msg, off_t size, const char *reply, double elapsed)
{
	size_t n = env->rcpts.n, nsent = count_state(out, n, RCPT_SENT);
	size_t nfailed = count_state(out, n, RCPT_FAILED);
	size_t nwait = count_state(out, n, RCPT_DEFERRED) + count_state(out, n, RCPT_PENDING);
	/* when others were sent or wait, each refused recipient is told; when all
	 * failed together, the transaction's reason is told once, at the end */
	bool partial = nsent > 0 || nwait > 0;
	struct status qst;
	const char *why = st->text;
	size_t i;

	status_clear(&qst);
	for (i = 0; i < n; i++) {
		if (out[i].state != RCPT_FAILED)
			continue;
		if (*why == '\0')
			why = out[i].reply;
		if (!partial && !out[i].own)
			continue;
		fprintf(stderr, "acsmail: %s: %s\n", env->rcpts.v[i], out[i].reply);
		log_line(LOG_ERR, "id=%s to=<%s> refused: %s", qid, env->rcpts.v[i], out[i].reply);
	}
	if (nsent > 0)
		log_outcome(qid, env->sender, nsent, size, "sent", reply, elapsed);
	if (nfailed > 0) {
		if (spool(cfg, qid, env, out, RCPT_FAILED, msg, size, why, &qst) != EX_OK)
			fprintf(stderr, "acsmail: the refused part could not be kept: %s\n",
			    qst.text);
		log_outcome(qid, env->sender, nfailed, size, "failed", why, elapsed);
	}
	if (rc == EX_TEMPFAIL) {
		if (spool(cfg, qid, env, out, RCPT_DEFERRED, msg, size, st->text, &qst) != EX_OK) {
			log_outcome(qid, env->sender, nwait, size, "deferred, not queued",
			    qst.text, elapsed);
			fprintf(stderr, "acsmail: %s\n", st->text);
			report(&qst);
			return EX_TEMPFAIL;	/* not sent, not queued: the caller keeps it */
		}
		log_outcome(qid, env->sender, nwait, size, "queued", st->text, elapsed);
		if (tell_user(o))
			fprintf(stderr, "acsmail: queued as %s: %s\n", qid, st->text);
		return EX_OK;
	}
	return rc == EX_OK ? EX_OK : report(st);
}

static int
cmd_deliver(const struct options *o, const struct config *cfg)
{
	struct message m = {0};
	struct envelope env = {0};
	struct aliases *al = NULL;
	struct deliver_ctx ctx = { .cfg = cfg };
	struct rcpt_outcome *out = NULL;
	struct status st;
	char qid[QUEUE_ID_MAX], reply[512] = "";
	enum delivery mode = cfg->delivery;
	char *dir = temp_dir(cfg);
	char *secret = NULL;
	FILE *msg = NULL;
	off_t size = 0;
	double started = now_seconds();
	int rc;

	status_clear(&st);
	queue_new_id(qid);
	if (o->delivery == 'i')
		mode = DELIVERY_FOREGROUND;
	else if (o->delivery == 'b')
		mode = DELIVERY_BACKGROUND;
	else if (o->delivery == 'q')
		mode = DELIVERY_QUEUE;

	rc = message_read(stdin, !o->ignore_dots, dir, &m, &st);
	if (rc != EX_OK) {
		report(&st);
		goto out;
	}
	rc = aliases_load(cfg->aliases, &al, stderr, &st);
	if (rc == EX_OK && m.header_too_large) {
		struct status ignored;

		/* kept for the recipients the command line names (those of -t
		 * are in the header that could not be read) */
		policy_resolve(cfg, al, &o->recipients, &env.rcpts, &ignored);
		env.sender = xstrdup(cfg->from);
		rc = status_set(&st, EX_DATAERR, "header too large (over %d octets)",
		    MESSAGE_HEADER_MAX);
	}
	if (rc == EX_OK)
		rc = policy_apply(cfg, o, al, &m, &env, stderr, &st);
	if (rc != EX_OK) {
		struct status why = st;
		FILE *raw = prepare(dir, &m, &size, &st);

		rc = raw != NULL ? keep_failed(cfg, qid, &env, raw, size, &why) : report(&why);
		if (raw != NULL)
			fclose(raw);
		goto out;
	}
	msg = prepare(dir, &m, &size, &st);
	if (msg != NULL && m.body_longest > 998)
		msg = reencode_long_lines(dir, msg, &size, &st);
	if (msg == NULL) {
		rc = report(&st);
		goto out;
	}
	if (size > cfg->max_size) {
		status_set(&st, EX_DATAERR, "message is %jd octets, over max_size (%ld)",
		    (intmax_t)size, cfg->max_size);
		rc = keep_failed(cfg, qid, &env, msg, size, &st);
		goto out;
	}

	if (mode != DELIVERY_FOREGROUND) {
		rc = queue_store(cfg, qid, &env, msg, size, mode == DELIVERY_QUEUE ?
		    "queued (delivery = queue)" : "queued for background delivery", 0, &st);
		if (rc != EX_OK) {
			report(&st);
			rc = EX_TEMPFAIL;	/* not queued: the caller keeps it */
			goto out;
		}
		log_outcome(qid, env.sender, env.rcpts.n, size, "queued", "", now_seconds() - started);
		if (mode == DELIVERY_BACKGROUND)
			deliver_in_background(cfg, qid);
		rc = EX_OK;
		goto out;
	}

	rc = config_secret(cfg, &secret, &st);
	if (rc != EX_OK) {
		report(&st);
		goto out;
	}
	ctx.secret = secret;
	ctx.transcript = o->verbose ? stderr : NULL;
	out = xcalloc(env.rcpts.n, sizeof(*out));
	rc = deliver_message(&ctx, &env, msg, size, out, reply, sizeof(reply), &st);
	deliver_finish(&ctx);
	if (rc == EX_OK && count_state(out, env.rcpts.n, RCPT_FAILED) == 0) {
		log_outcome(qid, env.sender, env.rcpts.n, size, "sent", reply, now_seconds() - started);
		goto out;
	}
	rc = keep_outcome(o, cfg, qid, &env, out, rc, &st, msg, size, reply,
	    now_seconds() - started);
out:
	free(out);
	free(dir);
	config_secret_free(secret);
	if (msg != NULL)
		fclose(msg);
	envelope_free(&env);
	aliases_free(al);
	message_free(&m);
	return rc;
}

/* --check: connect, STARTTLS, AUTH, QUIT; each step shown; nothing sent. */
static int
cmd_check(const struct options *o, const struct config *cfg)
{
	struct smtp_session *s = NULL;
	struct status st;
	char *secret = NULL;
	int rc;

	(void)o;
	status_clear(&st);
	printf("config: %s ok\n", cfg->path);
	printf("relay: %s port %ld, %s\n", cfg->server, cfg->port,
	    cfg->tls == TLS_STARTTLS ? "STARTTLS" : "implicit TLS");
	printf("username: %s\n", cfg->username);
	printf("sender: %s\n", cfg->from);
	rc = config_secret(cfg, &secret, &st);
	if (rc != EX_OK)
		return report(&st);
	fflush(stdout);
	rc = smtp_open(cfg, secret, stdout, &s, &st);
	config_secret_free(secret);
	if (rc != EX_OK) {
		const char *hint = smtp_hint(st.text);

		printf("FAILED: %s\n", st.text);
		if (hint != NULL)
			printf("hint: %s\n", hint);
		return rc;
	}
	smtp_close(s);
	printf("OK: connected, TLS verified, authenticated as %s; nothing was sent\n",
	    cfg->username);
	return EX_OK;
}

static int
cmd_queue_run(const struct options *o, const struct config *cfg)
{
	struct queue_filter f = {
		.flush = o->queue_flush,
		.recipient = o->queue_recipient,
		.sender = o->queue_sender,
		.id = o->queue_id,
	};
	struct status st;
	int rc;

	status_clear(&st);
	rc = run_queue(cfg, &f, o->verbose ? stderr : NULL, &st);
	if (rc == EX_OK)
		return EX_OK;
	report(&st);
	/* the queue could not be read or written: the mail in it waits (SPEC §3) */
	return rc == EX_CONFIG || rc == EX_USAGE ? rc : EX_TEMPFAIL;
}

static int
not_available(const char *what)
{
	fprintf(stderr, "acsmail: %s is not available yet\n", what);
	return EX_USAGE;
}

/* A caller may start us with stdin, stdout or stderr closed: the next file
 * opened would take that number, and a warning or the transcript would be
 * written into a queue file or the relay's socket. */
static void
open_standard_fds(void)
{
	int fd;

	for (fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
		    open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY) != fd)
			_exit(EX_OSERR);
}

int
main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	struct status st;
	const char *path;
	int rc;

	open_standard_fds();
	status_clear(&st);
	memset(&cfg, 0, sizeof(cfg));
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	rc = cli_parse(argc, argv, &o, &st);
	if (rc != EX_OK) {
		fprintf(stderr, "acsmail: %s\n", st.text);
		fprintf(stderr, "Try 'acsmail --help'.\n");
		return rc;
	}
	switch (o.mode) {
	case MODE_VERSION:
		printf("acsmail %s\n", PACKAGE_VERSION);
		cli_free(&o);
		return EX_OK;
	case MODE_HELP:
		cli_usage(stdout);
		cli_free(&o);
		return EX_OK;
	case MODE_SMTP:
		cli_free(&o);
		return not_available("-bs (SMTP on standard input)");
	case MODE_ALIASES:
		cli_free(&o);
		return not_available("-bi (newaliases)");
	case MODE_VERIFY:
		cli_free(&o);
		return not_available("-bv (address verification)");
	default:
		break;
	}

	path = o.config_path != NULL ? o.config_path : getenv("ACSMAIL_CONFIG");
	if (path != NULL && *path != '\0') {
		if (drop_privileges(&st) != EX_OK) {
			cli_free(&o);
			return report(&st);
		}
	} else {
		path = ACSMAIL_DEFAULT_CONFIG;
	}
	rc = config_load(path, &cfg, &st);
	if (rc != EX_OK) {
		cli_free(&o);
		return report(&st);
	}
	log_open(&cfg);

	switch (o.mode) {
	case MODE_CHECK:
		rc = cmd_check(&o, &cfg);
		break;
	case MODE_LIST:
		rc = queue_list(&cfg, stdout, &st);
		if (rc != EX_OK)
			report(&st);
		break;
	case MODE_QUEUE_RUN:
		rc = cmd_queue_run(&o, &cfg);
		break;
	case MODE_REQUEUE:
	case MODE_DELETE:
		/* through the setgid bit anyone can reach the queue: only root
		 * (or the queue's owner, when acsmail runs without it) edits it */
		if (privileged() && getuid() != 0) {
			fprintf(stderr, "acsmail: --%s: only root may change the queue\n",
			    o.mode == MODE_DELETE ? "delete" : "requeue");
			rc = EX_NOPERM;
			break;
		}
		rc = o.mode == MODE_DELETE ? queue_delete(&cfg, o.target_id, &st) :
		    queue_requeue(&cfg, o.target_id, &st);
		if (rc != EX_OK)
			report(&st);
		break;
	default:
		rc = cmd_deliver(&o, &cfg);
		break;
	}
	log_close();
	config_free(&cfg);
	cli_free(&o);
	return rc;
}
