/* test_queue.c: the spool, the runner, mailq, requeue and delete (src/queue.c) */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "log.h"
#include "queue.h"
#include "ratelimit.h"
#include "tap.h"
#include "util.h"

/*
 * A stand-in for deliver.c, so the runner can be tested without a relay.
 * Like the real one it reads the message from offset 0 to EOF, sends in
 * transactions of max_recipients, and takes each from the rate budget. A
 * recipient's local part says what the "relay" does with it: fail* is
 * refused (550), defer* deferred (451), throttle* throttled (450 4.5.127);
 * anything else is accepted.
 */
static struct {
	int calls;
	bool keep_body;		/* keep the bytes read in body */
	struct buf body;
	uint64_t sum;		/* FNV-1a of the bytes read */
	off_t read, size;	/* bytes read, and the size it was given */
	struct envelope env;	/* the last envelope seen */
	int log_fd;		/* >= 0: one line per accepted recipient, appended */
	int block_out, block_in;	/* >= 0: say "inside" on out, wait for a byte on in */
	int down;		/* 1: the relay cannot be reached; 2: and permanently so */
} fake = { .log_fd = -1, .block_out = -1, .block_in = -1 };

static uint64_t
fnv(uint64_t h, const unsigned char *p, size_t n)
{
	while (n-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

#define FNV_START 0xcbf29ce484222325ULL

static void
set_all(struct rcpt_outcome *out, size_t n, enum rcpt_state state, const char *reply)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[i].state = state;
		str_copy(out[i].reply, sizeof(out[i].reply), reply);
	}
}

int
deliver_message(struct deliver_ctx *ctx, const struct envelope *env, FILE *msg, off_t size,
    struct rcpt_outcome *out, char *reply, size_t replysz, struct status *st)
{
	unsigned char chunk[8192];
	size_t n = env->rcpts.n, max, first, i, got, deferred = 0, failed = 0;
	time_t at;
	bool paused = false;
	char c, line[512];

	fake.calls++;
	status_clear(st);
	str_copy(reply, replysz, "250 2.0.0 OK <fake@relay>");
	envelope_free(&fake.env);
	fake.env.sender = xstrdup(env->sender);
	for (i = 0; i < n; i++)
		strlist_add(&fake.env.rcpts, env->rcpts.v[i]);
	fake.env.dsn_notify = env->dsn_notify ? xstrdup(env->dsn_notify) : NULL;
	fake.env.dsn_ret = env->dsn_ret ? xstrdup(env->dsn_ret) : NULL;
	fake.env.dsn_envid = env->dsn_envid ? xstrdup(env->dsn_envid) : NULL;
	fake.env.eightbit = env->eightbit;
	fake.env.smtputf8 = env->smtputf8;

	buf_reset(&fake.body);
	fake.sum = FNV_START;
	fake.read = 0;
	fake.size = size;
	if (fseeko(msg, 0, SEEK_SET) != 0)
		return status_set(st, EX_IOERR, "cannot rewind");
	while ((got = fread(chunk, 1, sizeof(chunk), msg)) > 0) {
		fake.sum = fnv(fake.sum, chunk, got);
		fake.read += (off_t)got;
		if (fake.keep_body)
			buf_add(&fake.body, chunk, got);
	}
	if (fake.block_out >= 0) {
		if (write(fake.block_out, "i", 1) != 1 || read(fake.block_in, &c, 1) != 1)
			_exit(3);
	}
	if (fake.down) {
		ctx->open_failures++;
		status_set(&ctx->open_status, fake.down == 2 ? EX_UNAVAILABLE : EX_TEMPFAIL,
		    "cannot connect to the relay: Connection refused");
		set_all(out, n, fake.down == 2 ? RCPT_FAILED : RCPT_DEFERRED, ctx->open_status.text);
		*st = ctx->open_status;
		return fake.down == 2 ? EX_UNAVAILABLE : EX_TEMPFAIL;
	}
	max = ctx->cfg->max_recipients > 0 ? (size_t)ctx->cfg->max_recipients : n;
	for (first = 0; first < n; first += max) {
		size_t len = n - first < max ? n - first : max;

		if (paused || !ratelimit_take(ctx->cfg, &at)) {
			paused = true;
			set_all(out + first, len, RCPT_DEFERRED, "rate budget used up");
			deferred += len;
			continue;
		}
		for (i = first; i < first + len; i++) {
			const char *r = env->rcpts.v[i];

			if (strncmp(r, "fail", 4) == 0) {
				snprintf(line, sizeof(line), "550 5.1.1 <%s>: user unknown", r);
				set_all(out + i, 1, RCPT_FAILED, line);
				failed++;
			} else if (strncmp(r, "defer", 5) == 0) {
				set_all(out + i, 1, RCPT_DEFERRED, "451 4.3.0 try again later");
				deferred++;
			} else if (strncmp(r, "throttle", 8) == 0) {
				ratelimit_throttled(ctx->cfg);
				set_all(out + i, 1, RCPT_DEFERRED, "450 4.5.127 Message rejected. "
				    "Excessive message rate from sender.");
				deferred++;
				paused = true;
			} else {
				set_all(out + i, 1, RCPT_SENT, "250 2.1.5 OK");
				if (fake.log_fd >= 0) {
					snprintf(line, sizeof(line), "%s\n", r);
					if (write(fake.log_fd, line, strlen(line)) < 0)
						_exit(4);
				}
			}
		}
	}
	if (deferred > 0)
		return status_set(st, EX_TEMPFAIL, "some recipients deferred");
	if (failed == n)
		return status_set(st, EX_NOUSER, "every recipient refused");
	return EX_OK;
}

void
deliver_finish(struct deliver_ctx *ctx)
{
	(void)ctx;
}

/* The log, recorded: the last outcome per status, and how many. */
static struct {
	int sent, failed, deferred;
	char failed_reply[512], deferred_reply[512];
	char lines[4096];
} logged;

void
log_line(int prio, const char *fmt, ...)
{
	va_list ap;
	size_t len = strlen(logged.lines);

	(void)prio;
	va_start(ap, fmt);
	if (len < sizeof(logged.lines) - 2) {
		vsnprintf(logged.lines + len, sizeof(logged.lines) - len - 1, fmt, ap);
		strcat(logged.lines, "\n");
	}
	va_end(ap);
}

void
log_outcome(const char *qid, const char *sender, size_t nrcpt, off_t size, const char *status,
    const char *reply, double elapsed)
{
	(void)qid, (void)sender, (void)nrcpt, (void)size, (void)elapsed;
	if (strcmp(status, "sent") == 0)
		logged.sent++;
	else if (strcmp(status, "failed") == 0) {
		logged.failed++;
		str_copy(logged.failed_reply, sizeof(logged.failed_reply), reply);
	} else if (strcmp(status, "deferred") == 0) {
		logged.deferred++;
		str_copy(logged.deferred_reply, sizeof(logged.deferred_reply), reply);
	}
}

/* ---- helpers ---- */

static char top[] = "/tmp/acsmail-test-q-XXXXXX";
static struct config cfg;

static void
fresh(const char *name)
{
	free(cfg.queue_dir);
	cfg.queue_dir = xasprintf("%s/%s", top, name);
	cfg.queue_lifetime = 432000;
	cfg.max_recipients = 50;
	cfg.rate_per_minute = 0;
	cfg.rate_per_hour = 0;
	memset(&logged, 0, sizeof(logged));
	fake.calls = 0;
	fake.down = 0;
	fake.keep_body = false;
}

static FILE *
message(const void *bytes, size_t n)
{
	FILE *f = tmpfile();

	if (f == NULL || fwrite(bytes, 1, n, f) != n || fflush(f) != 0)
		abort();
	return f;
}

static const char simple[] = "Subject: hi\r\nFrom: a@example.com\r\n\r\nhello\r\n";

/* An envelope with sender and the recipients up to NULL. */
static void
envelope(struct envelope *env, const char *sender, ...)
{
	const char *r;
	va_list ap;

	memset(env, 0, sizeof(*env));
	env->sender = xstrdup(sender);
	va_start(ap, sender);
	while ((r = va_arg(ap, const char *)) != NULL)
		strlist_add(&env->rcpts, r);
	va_end(ap);
}

/* Stores simple for the recipients given, returns its id in id. */
static int
store(char id[QUEUE_ID_MAX], const char *sender, const char *r1, const char *r2)
{
	struct envelope env;
	struct status st;
	FILE *f = message(simple, sizeof(simple) - 1);
	int rc;

	envelope(&env, sender, r1, r2, (const char *)NULL);
	queue_new_id(id);
	status_clear(&st);
	rc = queue_store(&cfg, id, &env, f, (off_t)(sizeof(simple) - 1), "queued for a test", 0,
	    &st);
	fclose(f);
	envelope_free(&env);
	return rc;
}

static char *
path_of(const char *area, const char *id)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s/%s", cfg.queue_dir, area, id);
	return path;
}

static bool
exists(const char *area, const char *id)
{
	return access(path_of(area, id), F_OK) == 0;
}

static size_t
count(const char *area)
{
	char *dir = xasprintf("%s/%s", cfg.queue_dir, area);
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	free(dir);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The whole file; NULL when absent. */
static char *
slurp(const char *path, size_t *len)
{
	struct buf b = {0};
	char chunk[4096];
	size_t got;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return NULL;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, got);
	fclose(f);
	if (len != NULL)
		*len = b.len;
	return buf_steal(&b);
}

/* true when the header of area/id has this exact line */
static bool
has_line(const char *area, const char *id, const char *line)
{
	char *text = slurp(path_of(area, id), NULL), *end, *want;
	bool found;

	if (text == NULL)
		return false;
	end = strstr(text, "\n\n");
	if (end != NULL)
		end[1] = '\0';
	want = xasprintf("\n%s\n", line);
	found = strstr(text, want) != NULL;
	free(want);
	free(text);
	return found;
}

/* a number from the header of area/id; -1 when missing */
static long long
number(const char *area, const char *id, const char *key)
{
	char *text = slurp(path_of(area, id), NULL), *want, *p;
	long long v = -1;

	if (text == NULL)
		return -1;
	want = xasprintf("\n%s ", key);
	p = strstr(text, want);
	if (p != NULL)
		v = strtoll(p + strlen(want), NULL, 10);
	free(want);
	free(text);
	return v;
}

/* Sets a header number in place, as if time had passed. */
static void
set_number(const char *area, const char *id, const char *key, long long v)
{
	size_t len;
	char *text = slurp(path_of(area, id), &len), *want, *p, *eol;
	FILE *f;

	want = xasprintf("\n%s ", key);
	p = strstr(text, want);
	eol = strchr(p + 1, '\n');
	f = fopen(path_of(area, id), "wb");
	fwrite(text, 1, (size_t)(p - text), f);
	fprintf(f, "\n%s %lld", key, v);
	fwrite(eol, 1, len - (size_t)(eol - text), f);
	fclose(f);
	free(want);
	free(text);
}

static int
run(bool flush, const char *rcpt, const char *sender, const char *id)
{
	struct queue_filter f = { .flush = flush, .recipient = rcpt, .sender = sender, .id = id };
	struct deliver_ctx ctx = { .cfg = &cfg };
	struct status st;
	int rc;

	status_clear(&st);
	rc = queue_run(&cfg, &ctx, &f, &st);
	deliver_finish(&ctx);
	return rc;
}

static char *
mailq(void)
{
	struct status st;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	status_clear(&st);
	queue_list(&cfg, f, &st);
	fclose(f);
	return text;
}

static long
near_now(long long t)
{
	return (long)(t - (long long)time(NULL));
}

/* ---- tests ---- */

static void
test_ids(void)
{
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];
	int i, sorted = 1, clean = 1;
	size_t j;

	queue_new_id(a);
	for (i = 0; i < 2000; i++) {
		queue_new_id(b);
		sorted &= strcmp(a, b) < 0;
		for (j = 0; b[j] != '\0'; j++)
			clean &= (b[j] >= '0' && b[j] <= '9') || (b[j] >= 'A' && b[j] <= 'Z');
		memcpy(a, b, sizeof(a));
	}
	ok(sorted, "ids are unique and sort in the order they were made");
	ok(clean && strlen(a) > 10 && strlen(a) < QUEUE_ID_MAX, "ids are letters and digits: %s", a);
}

static void
test_backoff(void)
{
	ok(queue_backoff(1) == 60, "first retry after a minute");
	ok(queue_backoff(2) == 120 && queue_backoff(3) == 240 && queue_backoff(6) == 1920,
	    "then doubling");
	ok(queue_backoff(7) == 3600 && queue_backoff(8) == 3600 && queue_backoff(1000) == 3600,
	    "at most an hour");
	ok(queue_backoff(0) == 0, "nothing to wait for before the first attempt");
}

static void
test_store_and_read_back(void)
{
	static const unsigned char body[] = "From: \"A\" <a@example.com>\r\nSubject: caf\xc3\xa9\r\n"
	    "\r\n.leading dot stays as is\r\n\x00 nul and 8-bit \xff\r\n\r\n";
	struct envelope env;
	struct status st;
	struct stat sb;
	char id[QUEUE_ID_MAX], *text;
	size_t len;
	FILE *f;
	int rc;

	fresh("store");
	envelope(&env, "DoNotReply@example.com", "one@example.net", "tw\xc3\xb6@example.net",
	    (const char *)NULL);
	env.dsn_notify = xstrdup("FAILURE,DELAY");
	env.dsn_ret = xstrdup("HDRS");
	env.dsn_envid = xstrdup("env+2Did");
	env.eightbit = true;
	env.smtputf8 = true;
	f = message(body, sizeof(body) - 1);
	queue_new_id(id);
	status_clear(&st);
	rc = queue_store(&cfg, id, &env, f, (off_t)(sizeof(body) - 1), "relay down", 0, &st);
	ok(rc == EX_OK, "stored (%s)", st.text);
	fclose(f);
	ok(stat(cfg.queue_dir, &sb) == 0 && (sb.st_mode & 0777) == 0770,
	    "the missing queue_dir was created 0770");
	ok(exists("queue", id) && count("queue") == 1, "one file in queue/, named by its id");
	ok(count("tmp") == 0, "nothing left in tmp/");
	ok(stat(path_of("queue", id), &sb) == 0 && (sb.st_mode & 0777) == 0660,
	    "the queue file is 0660 whatever the umask");

	text = slurp(path_of("queue", id), &len);
	ok(text != NULL && strncmp(text, "acsmail-queue 1\n", 16) == 0, "the file names its format");
	free(text);
	ok(has_line("queue", id, "sender <DoNotReply@example.com>"), "sender line");
	ok(has_line("queue", id, "rcpt <one@example.net>") &&
	    has_line("queue", id, "rcpt <tw\xc3\xb6@example.net>"), "one rcpt line each");
	ok(has_line("queue", id, "notify FAILURE,DELAY") && has_line("queue", id, "ret HDRS") &&
	    has_line("queue", id, "envid env+2Did"), "DSN lines");
	ok(has_line("queue", id, "body 8bitmime") && has_line("queue", id, "smtputf8 yes"),
	    "body type and SMTPUTF8");
	ok(has_line("queue", id, "attempts 0") && has_line("queue", id, "next-attempt 0") &&
	    has_line("queue", id, "last-reply relay down"), "attempts, next attempt, last reply");
	ok(near_now(number("queue", id, "created")) <= 0 &&
	    near_now(number("queue", id, "created")) > -5, "created now");
	text = slurp(path_of("queue", id), &len);
	ok(len > sizeof(body) - 1 &&
	    memcmp(text + len - (sizeof(body) - 1), body, sizeof(body) - 1) == 0 &&
	    memcmp(text + len - (sizeof(body) - 1) - 2, "\n\n", 2) == 0,
	    "an empty line, then the message byte for byte");
	free(text);

	fake.keep_body = true;
	ok(run(false, NULL, NULL, NULL) == EX_OK && fake.calls == 1, "the runner delivers it");
	ok(fake.body.len == sizeof(body) - 1 && memcmp(fake.body.s, body, sizeof(body) - 1) == 0,
	    "deliver reads exactly the message from offset 0, none of the header");
	ok(fake.size == (off_t)(sizeof(body) - 1), "and is given its size");
	is_str(fake.env.sender, "DoNotReply@example.com", "the sender comes back");
	ok(fake.env.rcpts.n == 2 && strcmp(fake.env.rcpts.v[1], "tw\xc3\xb6@example.net") == 0,
	    "the recipients come back");
	is_str(fake.env.dsn_notify, "FAILURE,DELAY", "NOTIFY comes back");
	is_str(fake.env.dsn_envid, "env+2Did", "ENVID comes back");
	ok(fake.env.eightbit && fake.env.smtputf8, "8BITMIME and SMTPUTF8 come back");
	ok(!exists("queue", id) && count("queue") == 0, "sent to all: removed");
	ok(logged.sent == 1, "and logged as sent");
	envelope_free(&env);

	/* the null sender */
	envelope(&env, "", "x@example.net", (const char *)NULL);
	f = message(simple, sizeof(simple) - 1);
	queue_new_id(id);
	ok(queue_store(&cfg, id, &env, f, (off_t)(sizeof(simple) - 1), "", 0, &st) == EX_OK &&
	    has_line("queue", id, "sender <>"), "the null sender is stored as <>");
	ok(run(false, NULL, NULL, NULL) == EX_OK && fake.env.sender != NULL &&
	    fake.env.sender[0] == '\0', "and comes back empty");
	fclose(f);
	envelope_free(&env);
}

static void
test_refused_input(void)
{
	struct envelope env;
	struct status st;
	char id[QUEUE_ID_MAX];
	FILE *f = message(simple, sizeof(simple) - 1);

	fresh("refuse");
	envelope(&env, "a@example.com", "b@example.com\nrcpt <evil@example.com>", (const char *)NULL);
	queue_new_id(id);
	status_clear(&st);
	ok(queue_store(&cfg, id, &env, f, 10, "", 0, &st) == EX_DATAERR,
	    "an address with a newline is refused (%s)", st.text);
	ok(count("queue") == 0 && count("tmp") == 0, "and nothing is stored");
	envelope_free(&env);
	envelope(&env, "a@example.com", (const char *)NULL);
	ok(queue_store(&cfg, id, &env, f, 10, "", 0, &st) != EX_OK, "no recipients: refused");
	envelope_free(&env);
	envelope(&env, "a@example.com", "b@example.com", (const char *)NULL);
	ok(queue_store(&cfg, "../../etc/x", &env, f, 10, "", 0, &st) != EX_OK,
	    "an id that is a path is refused");
	ok(queue_store(&cfg, id, &env, f, 1000, "", 0, &st) == EX_TEMPFAIL && count("queue") == 0 &&
	    count("tmp") == 0, "a message shorter than its size is not stored (%s)", st.text);
	envelope_free(&env);
	fclose(f);
}

static void
test_no_space(void)
{
	static char big[200000];
	struct envelope env;
	struct status st;
	struct rlimit old, small;
	char id[QUEUE_ID_MAX];
	FILE *f;
	int rc;

	fresh("nospace");
	memset(big, 'x', sizeof(big));
	f = message(big, sizeof(big));
	envelope(&env, "a@example.com", "b@example.com", (const char *)NULL);
	queue_new_id(id);
	status_clear(&st);
	store(id, "a@example.com", "first@example.com", NULL);	/* the directories exist */
	queue_new_id(id);
	getrlimit(RLIMIT_FSIZE, &old);
	small = old;
	small.rlim_cur = 65536;
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &small);
	rc = queue_store(&cfg, id, &env, f, (off_t)sizeof(big), "", 0, &st);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
	ok(rc == EX_TEMPFAIL, "a full disk (file size limit) is a temporary failure");
	ok(strstr(st.text, "cannot write the queue file") != NULL &&
	    strstr(st.text, strerror(EFBIG)) != NULL, "that says what happened: %s", st.text);
	ok(count("queue") == 1 && !exists("queue", id), "nothing half-written in the queue");
	ok(count("tmp") == 0, "and no temporary file left behind");
	envelope_free(&env);
	fclose(f);
}

static void
test_outcomes_and_backoff(void)
{
	char id[QUEUE_ID_MAX];
	char *q;

	fresh("outcomes");
	ok(store(id, "s@example.com", "ok@example.net", "fail@example.net") == EX_OK, "stored");
	{
		/* a third recipient, deferred */
		struct envelope env;
		struct status st;
		FILE *f = message(simple, sizeof(simple) - 1);

		envelope(&env, "s@example.com", "ok@example.net", "fail@example.net",
		    "defer@example.net", (const char *)NULL);
		status_clear(&st);
		ok(queue_store(&cfg, id, &env, f, (off_t)(sizeof(simple) - 1), "", 0, &st) == EX_OK,
		    "stored again over it with three recipients");
		fclose(f);
		envelope_free(&env);
	}
	ok(run(false, NULL, NULL, NULL) == EX_OK && fake.calls == 1, "one attempt");
	ok(logged.sent == 1 && logged.failed == 1 && logged.deferred == 1,
	    "logged: sent, failed, deferred");
	ok(exists("queue", id) && has_line("queue", id, "rcpt <defer@example.net>") &&
	    !has_line("queue", id, "rcpt <ok@example.net>") &&
	    !has_line("queue", id, "rcpt <fail@example.net>"),
	    "the queue keeps only the deferred recipient");
	ok(has_line("queue", id, "reply 451 4.3.0 try again later") &&
	    has_line("queue", id, "last-reply 451 4.3.0 try again later"),
	    "with its reply as the last reply");
	ok(number("queue", id, "attempts") == 1, "attempts 1");
	ok(near_now(number("queue", id, "next-attempt")) >= 58 &&
	    near_now(number("queue", id, "next-attempt")) <= 60, "next attempt in a minute (%ld)",
	    near_now(number("queue", id, "next-attempt")));
	ok(exists("failed", id) && has_line("failed", id, "rcpt <fail@example.net>") &&
	    !has_line("failed", id, "rcpt <defer@example.net>"),
	    "the refused recipient is in the failed area, alone");
	ok(has_line("failed", id, "reply 550 5.1.1 <fail@example.net>: user unknown"),
	    "with the relay's reason");
	ok(count("tmp") == 0, "no temporary file left");

	ok(run(false, NULL, NULL, NULL) == EX_OK && fake.calls == 1, "-q1m: not due yet, not tried");
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 2, "-q: tried anyway");
	ok(number("queue", id, "attempts") == 2 &&
	    near_now(number("queue", id, "next-attempt")) >= 118 &&
	    near_now(number("queue", id, "next-attempt")) <= 120, "attempt 2: two minutes");
	run(true, NULL, NULL, NULL);
	ok(number("queue", id, "attempts") == 3 &&
	    near_now(number("queue", id, "next-attempt")) >= 238, "attempt 3: four minutes");
	set_number("queue", id, "attempts", 12);
	run(true, NULL, NULL, NULL);
	ok(number("queue", id, "attempts") == 13 &&
	    near_now(number("queue", id, "next-attempt")) <= 3600 &&
	    near_now(number("queue", id, "next-attempt")) >= 3598, "attempt 13: an hour, no more");
	set_number("queue", id, "next-attempt", (long long)time(NULL) - 1);
	ok(run(false, NULL, NULL, NULL) == EX_OK && fake.calls == 5, "due again: tried by -q1m");

	q = mailq();
	ok(strstr(q, id) != NULL && strstr(q, "  from: <s@example.com>\n") != NULL &&
	    strstr(q, "  to:   <defer@example.net>\n") != NULL, "mailq: id, sender, recipient");
	ok(strstr(q, "14 attempts") != NULL && strstr(q, "next try in") != NULL &&
	    strstr(q, "  last: 451 4.3.0 try again later\n") != NULL,
	    "mailq: attempts, next try, last error");
	ok(strstr(q, " bytes  0s old") != NULL || strstr(q, " bytes  1s old") != NULL,
	    "mailq: size and age");
	ok(strstr(q, "\nFailed:\n") != NULL &&
	    strstr(q, "  to:   <fail@example.net>") != NULL &&
	    strstr(q, "550 5.1.1 <fail@example.net>: user unknown") != NULL,
	    "mailq: the failed area, with the reason");
	free(q);

	/* lifetime: five days later, the deferred recipient expires into the failed area */
	set_number("queue", id, "created", (long long)time(NULL) - 6 * 86400);
	ok(run(true, NULL, NULL, NULL) == EX_OK && !exists("queue", id), "expired: out of the queue");
	ok(has_line("failed", id, "rcpt <defer@example.net>") &&
	    has_line("failed", id, "rcpt <fail@example.net>"),
	    "into the failed area, beside the recipient refused earlier");
	ok(has_line("failed", id, "reply expired after 5 days: last reply 451 4.3.0 try again later"),
	    "with why: %s", logged.failed_reply);
	ok(has_line("failed", id, "reply 550 5.1.1 <fail@example.net>: user unknown"),
	    "the earlier reason is kept");
	ok(count("failed") == 1 && count("tmp") == 0, "one failed entry, no temporary file");

	/* requeue: back in the queue, due at once, a fresh start */
	{
		struct status st;

		status_clear(&st);
		ok(queue_requeue(&cfg, id, &st) == EX_OK, "requeued (%s)", st.text);
		ok(exists("queue", id) && !exists("failed", id), "from the failed area to the queue");
		ok(number("queue", id, "attempts") == 0 && number("queue", id, "next-attempt") == 0 &&
		    near_now(number("queue", id, "created")) > -5, "due at once, a full lifetime");
		ok(has_line("queue", id, "rcpt <defer@example.net>") &&
		    has_line("queue", id, "rcpt <fail@example.net>"), "with all its recipients");
		fake.calls = 0;
		ok(run(false, NULL, NULL, NULL) == EX_OK && fake.calls == 1, "the runner takes it");
		ok(exists("failed", id) && exists("queue", id), "and it splits again");

		/* requeue of a message that is queued: due at once */
		ok(queue_requeue(&cfg, id, &st) == EX_OK, "requeue with the id in both areas");
		ok(count("queue") == 2, "the failed part is queued beside, under a new id");

		ok(queue_delete(&cfg, id, &st) == EX_OK, "delete");
		ok(!exists("queue", id) && !exists("failed", id), "gone from both areas");
		ok(queue_delete(&cfg, id, &st) == EX_NOUSER, "delete again: no such message (%s)",
		    st.text);
		ok(queue_requeue(&cfg, id, &st) == EX_NOUSER, "requeue: no such message");
		ok(queue_delete(&cfg, "../queue", &st) == EX_USAGE &&
		    queue_delete(&cfg, "a/b", &st) == EX_USAGE && queue_delete(&cfg, "", &st) == EX_USAGE &&
		    queue_requeue(&cfg, "x.y", &st) == EX_USAGE &&
		    queue_requeue(&cfg, "0123456789012345678901234567890123456789", &st) == EX_USAGE,
		    "ids that are not letters and digits are refused: %s", st.text);
	}
}

static void
test_requeue_queued(void)
{
	char id[QUEUE_ID_MAX];
	struct status st;

	fresh("requeue-queued");
	store(id, "s@example.com", "defer@example.net", NULL);
	run(true, NULL, NULL, NULL);
	ok(number("queue", id, "next-attempt") > time(NULL), "deferred, with backoff");
	status_clear(&st);
	ok(queue_requeue(&cfg, id, &st) == EX_OK && number("queue", id, "next-attempt") == 0,
	    "--requeue of a queued message makes it due at once");
	ok(number("queue", id, "attempts") == 1, "its attempts stay");
}

static void
test_filters(void)
{
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX];

	fresh("filters");
	store(a, "web@example.com", "alice@example.net", NULL);
	store(b, "cron@example.com", "bob@example.org", NULL);
	store(c, "cron@example.com", "carol@example.org", "dave@example.net");
	ok(run(true, "ALICE@", NULL, NULL) == EX_OK && fake.calls == 1 && !exists("queue", a) &&
	    exists("queue", b), "-qR: only the message with that recipient (case-insensitive)");
	ok(run(true, NULL, NULL, c) == EX_OK && fake.calls == 2 && !exists("queue", c) &&
	    exists("queue", b), "-qI: only that id");
	ok(run(true, NULL, "nobody@", NULL) == EX_OK && fake.calls == 2, "-qS matching nothing");
	ok(run(true, NULL, "cron", NULL) == EX_OK && fake.calls == 3 && count("queue") == 0,
	    "-qS cron: the rest");
}

static void
test_unreachable(void)
{
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];

	fresh("unreachable");
	store(a, "s@example.com", "x@example.net", NULL);
	store(b, "s@example.com", "y@example.net", NULL);
	fake.down = 1;
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 1,
	    "relay unreachable: one attempt, not one per message");
	ok(number("queue", a, "attempts") == 1 && number("queue", b, "attempts") == 0,
	    "the first counts an attempt, the rest keep their schedule");
	ok(has_line("queue", a, "last-reply cannot connect to the relay: Connection refused"),
	    "the reason is kept");
	ok(strstr(logged.lines, "pass ended early, 1 message left") != NULL,
	    "and logged as a pass ended early");
	fake.down = 2;
	ok(run(true, NULL, NULL, NULL) == EX_OK && exists("queue", a) && count("failed") == 0,
	    "a session that cannot be opened for good is no verdict on the message");
	fake.down = 0;
	ok(run(true, NULL, NULL, NULL) == EX_OK && count("queue") == 0, "the relay is back: all sent");
}

static void
test_rate_budget(void)
{
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX];
	time_t at;

	fresh("budget");
	cfg.rate_per_minute = 2;
	store(a, "s@example.com", "x@example.net", NULL);
	store(b, "s@example.com", "y1@example.net", "y2@example.net");
	store(c, "s@example.com", "z@example.net", NULL);
	cfg.max_recipients = 1;
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 2,
	    "budget 2 a minute: the first message and half of the second");
	ok(!exists("queue", a), "the first is sent");
	ok(has_line("queue", b, "rcpt <y2@example.net>") && !has_line("queue", b, "rcpt <y1@example.net>"),
	    "the second keeps the recipient the budget held back");
	ok(number("queue", b, "attempts") == 0, "which is not counted as an attempt");
	at = ratelimit_next(&cfg);
	ok(at > 0 && number("queue", b, "next-attempt") == (long long)at,
	    "and waits until the budget reopens (%+ld)", near_now(at));
	ok(number("queue", c, "attempts") == 0 && has_line("queue", c, "next-attempt 0"),
	    "the pass stopped before the third: untouched");
	ok(strstr(logged.lines, "rate budget (or a throttle pause) holds sending until") != NULL,
	    "and says why");
	{
		char *q = mailq();

		ok(strstr(q, "-- sending is held until") != NULL, "mailq says sending is held");
		free(q);
	}
}

static void
test_throttle(void)
{
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];

	fresh("throttle");
	store(a, "s@example.com", "throttle@example.net", NULL);
	store(b, "s@example.com", "x@example.net", NULL);
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 1, "450 4.5.127: the pass stops");
	ok(number("queue", a, "attempts") == 0, "a throttle is not the message's failed attempt");
	ok(near_now(number("queue", a, "next-attempt")) >= 58 &&
	    near_now(number("queue", a, "next-attempt")) <= 60, "it waits for the pause (a minute)");
	ok(exists("queue", b) && number("queue", b, "attempts") == 0, "the next is not tried");
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 1,
	    "during the pause even -q sends nothing");
}

static void
test_lock_exclusion(void)
{
	char id[QUEUE_ID_MAX], c;
	int to_child[2], from_child[2], status;
	struct status st;
	pid_t pid;

	fresh("lock");
	store(id, "s@example.com", "x@example.net", NULL);
	if (pipe(to_child) != 0 || pipe(from_child) != 0)
		abort();
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		fake.block_out = from_child[1];
		fake.block_in = to_child[0];
		fake.calls = 0;
		run(true, NULL, NULL, NULL);
		_exit(fake.calls == 1 ? 0 : 1);
	}
	ok(read(from_child[0], &c, 1) == 1, "a runner in another process is delivering");
	fake.calls = 0;
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 0,
	    "a second runner skips the locked message");
	status_clear(&st);
	ok(queue_delete(&cfg, id, &st) == EX_TEMPFAIL && exists("queue", id),
	    "--delete refuses while it is being delivered: %s", st.text);
	ok(queue_requeue(&cfg, id, &st) == EX_TEMPFAIL, "--requeue too");
	ok(write(to_child[1], "g", 1) == 1, "let it finish");
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first runner delivered once");
	ok(!exists("queue", id), "removed before its lock went");
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 0, "nothing left to send");
	close(to_child[0]), close(to_child[1]), close(from_child[0]), close(from_child[1]);
}

/* Reads the shared delivery log: every line once? */
static void
check_log(const char *path, size_t expect, size_t allowed_dups, const char *what)
{
	char *text = slurp(path, NULL), *line, *save = NULL;
	struct strlist seen = {0};
	size_t dups = 0;

	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		if (!strlist_add_unique(&seen, line))
			dups++;
	ok(seen.n == expect, "%s: all %zu delivered (got %zu)", what, expect, seen.n);
	ok(dups <= allowed_dups, "%s: %zu sent twice (at most %zu)", what, dups, allowed_dups);
	strlist_free(&seen);
	free(text);
}

/* 8 senders storing while 2 runners deliver: nothing lost, nothing twice. */
static void
test_concurrent(void)
{
	char *logpath;
	pid_t senders[8], runners[2];
	int i, status, good = 1;

	fresh("concurrent");
	logpath = xasprintf("%s/delivered.log", top);
	fake.log_fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	store((char[QUEUE_ID_MAX]){0}, "s@example.com", "first@example.net", NULL);
	fflush(stdout);
	for (i = 0; i < 8; i++) {
		senders[i] = fork();
		if (senders[i] == 0) {
			char id[QUEUE_ID_MAX], r[64];
			int j;

			for (j = 0; j < 25; j++) {
				snprintf(r, sizeof(r), "s%d-%d@example.net", i, j);
				if (store(id, "s@example.com", r, NULL) != EX_OK)
					_exit(1);
			}
			_exit(0);
		}
	}
	for (i = 0; i < 2; i++) {
		runners[i] = fork();
		if (runners[i] == 0) {
			int k;

			/* passes until the senders are done and the queue is empty */
			for (k = 0; k < 2000; k++) {
				run(true, NULL, NULL, NULL);
				if (access(logpath, F_OK) == 0 && count("queue") == 0 &&
				    access(path_of("tmp", "done"), F_OK) == 0)
					break;
				usleep(1000);
			}
			_exit(0);
		}
	}
	for (i = 0; i < 8; i++) {
		waitpid(senders[i], &status, 0);
		good &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	ok(good, "8 senders stored 25 messages each");
	close(open(path_of("tmp", "done"), O_WRONLY | O_CREAT, 0600));
	for (i = 0; i < 2; i++)
		waitpid(runners[i], &status, 0);
	unlink(path_of("tmp", "done"));
	ok(count("queue") == 0 && count("tmp") == 0, "the two runners emptied the queue");
	check_log(logpath, 201, 0, "senders and runners at once");
	close(fake.log_fd);
	fake.log_fd = -1;
	free(logpath);
}

/* SIGKILL a sender while it spools, many times: each message is whole or absent. */
static void
test_kill_sender(void)
{
	static unsigned char big[1 << 20];
	struct timespec ts;
	struct timeval old;
	struct status st;
	size_t i, stored = 0;
	char *q;
	int k, status, whole = 1;

	fresh("kill-sender");
	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + i / 1000);
	srand((unsigned)getpid());
	for (k = 0; k < 40; k++) {
		pid_t pid;

		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			struct envelope env;
			char id[QUEUE_ID_MAX];
			FILE *f = message(big, sizeof(big));

			envelope(&env, "s@example.com", "k@example.net", (const char *)NULL);
			queue_new_id(id);
			status_clear(&st);
			_exit(queue_store(&cfg, id, &env, f, (off_t)sizeof(big), "", 0, &st));
		}
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(rand() % 8000) * 1000;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			stored++;
	}
	q = mailq();
	ok(strstr(q, "unreadable") == NULL, "no damaged file in the queue after 40 kills");
	free(q);
	ok(count("queue") >= stored, "every sender that was told \"stored\" is in the queue (%zu of 40; %zu in queue)",
	    stored, count("queue"));
	/* each queued copy is whole */
	fake.calls = 0;
	{
		uint64_t want = fnv(FNV_START, big, sizeof(big));
		size_t n = count("queue");
		struct deliver_ctx ctx = { .cfg = &cfg };
		struct queue_filter f = { .flush = true };
		char **ids = NULL;
		DIR *d;
		struct dirent *de;
		size_t m = 0;

		char *qdir = xasprintf("%s/queue", cfg.queue_dir);

		d = opendir(qdir);
		free(qdir);
		while (d != NULL && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			ids = xrealloc(ids, (m + 1) * sizeof(*ids));
			ids[m++] = xstrdup(de->d_name);
		}
		if (d != NULL)
			closedir(d);
		for (i = 0; i < m; i++) {
			f.id = ids[i];
			status_clear(&st);
			queue_run(&cfg, &ctx, &f, &st);
			whole &= fake.read == (off_t)sizeof(big) && fake.sum == want;
			free(ids[i]);
		}
		free(ids);
		ok(whole && (size_t)fake.calls == n, "each of the %zu queued copies is the whole message",
		    n);
	}
	/* the leftovers of the killed ones are cleaned once they are old */
	{
		char *dir = xasprintf("%s/tmp", cfg.queue_dir), *p;
		struct dirent *de;
		struct timeval tv[2];
		DIR *d = opendir(dir);
		size_t left = 0;

		gettimeofday(&old, NULL);
		tv[0] = tv[1] = old;
		tv[0].tv_sec -= 7200;
		tv[1].tv_sec -= 7200;
		while (d != NULL && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			utimes(p, tv);
			left++;
			free(p);
		}
		if (d != NULL)
			closedir(d);
		p = xasprintf("%s/fresh-one", dir);
		close(open(p, O_WRONLY | O_CREAT, 0600));
		run(false, NULL, NULL, NULL);
		ok(count("tmp") == 1 && access(p, F_OK) == 0,
		    "%zu stale temporary files removed by the next run, a fresh one kept", left);
		unlink(p);
		free(p);
		free(dir);
	}
}

/* SIGKILL runners while they deliver: nothing lost; a duplicate only for a
 * kill between the relay's acceptance and the removal. */
static void
test_kill_runner(void)
{
	char *logpath, id[QUEUE_ID_MAX], r[64];
	struct timespec ts;
	int i, k, status, kills = 0;

	fresh("kill-runner");
	logpath = xasprintf("%s/killed.log", top);
	fake.log_fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	for (i = 0; i < 60; i++) {
		snprintf(r, sizeof(r), "m%d@example.net", i);
		store(id, "s@example.com", r, NULL);
	}
	for (k = 0; k < 30 && count("queue") > 0; k++) {
		pid_t pid;

		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			run(true, NULL, NULL, NULL);
			_exit(0);
		}
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(rand() % 3000) * 1000;
		nanosleep(&ts, NULL);
		if (kill(pid, SIGKILL) == 0)
			kills++;
		waitpid(pid, &status, 0);
	}
	run(true, NULL, NULL, NULL);
	ok(count("queue") == 0, "after %d killed runners, one more empties the queue", kills);
	check_log(logpath, 60, (size_t)kills, "killed runners");
	close(fake.log_fd);
	fake.log_fd = -1;
	free(logpath);
}

static void
test_big_message(void)
{
	static unsigned char chunk[65536];
	struct envelope env;
	struct status st;
	struct rusage before, after;
	char id[QUEUE_ID_MAX];
	uint64_t want = FNV_START;
	size_t i;
	FILE *f = tmpfile();

	fresh("big");
	for (i = 0; i < 160; i++) {	/* 10 MB */
		memset(chunk, 'a' + (int)(i % 26), sizeof(chunk));
		chunk[sizeof(chunk) - 2] = '\r';
		chunk[sizeof(chunk) - 1] = '\n';
		fwrite(chunk, 1, sizeof(chunk), f);
		want = fnv(want, chunk, sizeof(chunk));
	}
	fflush(f);
	envelope(&env, "s@example.com", "big@example.net", (const char *)NULL);
	queue_new_id(id);
	status_clear(&st);
	getrusage(RUSAGE_SELF, &before);
	ok(queue_store(&cfg, id, &env, f, 160 * 65536, "", 0, &st) == EX_OK, "10 MB stored");
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.read == 160 * 65536 && fake.sum == want,
	    "and delivered whole");
	getrusage(RUSAGE_SELF, &after);
	ok(after.ru_maxrss - before.ru_maxrss < 4096,
	    "without reading it into memory (max RSS grew %ld KB)",
	    after.ru_maxrss - before.ru_maxrss);
	envelope_free(&env);
	fclose(f);
}

static void
test_mailq_and_damage(void)
{
	struct envelope env;
	struct status st;
	char id[QUEUE_ID_MAX], *q;
	FILE *f;

	fresh("mailq");
	q = mailq();
	is_str(q, "Mail queue is empty\n", "no queue_dir yet: empty");
	free(q);
	ok(access(cfg.queue_dir, F_OK) != 0, "and mailq did not create it");

	f = message(simple, sizeof(simple) - 1);
	envelope(&env, "root@example.com", (const char *)NULL);
	queue_new_id(id);
	status_clear(&st);
	ok(queue_store_failed(&cfg, id, &env, f, (off_t)(sizeof(simple) - 1),
	    "no alias and no local_recipient for root", &st) == EX_OK,
	    "a message without a single recipient is still kept in the failed area");
	q = mailq();
	ok(strncmp(q, "Mail queue is empty\n\nFailed:\n", 29) == 0, "mailq: empty queue, one failed");
	ok(strstr(q, "  why:  no alias and no local_recipient for root\n") != NULL, "with why");
	free(q);
	ok(queue_requeue(&cfg, id, &st) == EX_DATAERR && exists("failed", id),
	    "it cannot be requeued without recipients, and stays: %s", st.text);
	envelope_free(&env);
	fclose(f);

	/* a damaged file is shown and skipped, never fatal */
	f = fopen(path_of("queue", "DAMAGED1"), "w");
	fputs("acsmail-queue 1\nid DAMAGED1\ncreated x\n", f);
	fclose(f);
	f = fopen(path_of("queue", "FUTURE1"), "w");
	fputs("acsmail-queue 7\nid FUTURE1\n\nbody", f);
	fclose(f);
	store(id, "s@example.com", "x@example.net", NULL);
	fake.calls = 0;
	ok(run(true, NULL, NULL, NULL) == EX_OK && fake.calls == 1 && !exists("queue", id),
	    "the runner skips damaged files and delivers the rest");
	ok(strstr(logged.lines, "DAMAGED1 is damaged") != NULL, "and logs them");
	q = mailq();
	ok(strstr(q, "DAMAGED1  (unreadable: queue file DAMAGED1 is damaged: a number is not a number)") != NULL,
	    "mailq shows why");
	ok(strstr(q, "does not read") != NULL, "a later format is named as such");
	ok(strstr(q, "Mail queue is empty") == NULL && strstr(q, "2 unreadable") != NULL,
	    "a queue with only damaged files is not called empty");
	free(q);
}

int
main(void)
{
	char *cmd;

	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	umask(077);
	test_ids();
	test_backoff();
	test_big_message();	/* first: its memory measure needs a low high-water mark */
	test_store_and_read_back();
	test_refused_input();
	test_no_space();
	test_outcomes_and_backoff();
	test_requeue_queued();
	test_filters();
	test_unreachable();
	test_rate_budget();
	test_throttle();
	test_lock_exclusion();
	test_concurrent();
	test_kill_sender();
	test_kill_runner();
	test_mailq_and_damage();
	envelope_free(&fake.env);
	buf_free(&fake.body);
	free(cfg.queue_dir);
	cmd = xasprintf("rm -rf '%s'", top);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", top);
	free(cmd);
	return tap_done();
}
