/* test_ratelimit.c: the host-wide rate budget (src/ratelimit.c) */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"
#include "tap.h"
#include "util.h"

/* The log is not under test here: ratelimit.c only warns through it. */
void
log_line(int prio, const char *fmt, ...)
{
	(void)prio;
	(void)fmt;
}

void
log_outcome(const char *qid, const char *sender, size_t nrcpt, off_t size, const char *status,
    const char *reply, double elapsed)
{
	(void)qid, (void)sender, (void)nrcpt, (void)size, (void)status, (void)reply;
	(void)elapsed;
}

static char top[] = "/tmp/acsmail-test-rl-XXXXXX";
static struct config cfg;

/* a minute boundary, so the hour's minute buckets are easy to reason about */
#define T0 ((time_t)1800000000)

static void
fresh(const char *name, long per_minute, long per_hour)
{
	free(cfg.queue_dir);
	cfg.queue_dir = xasprintf("%s/%s", top, name);
	cfg.rate_per_minute = per_minute;
	cfg.rate_per_hour = per_hour;
}

static char *
state_text(void)
{
	char *path = xasprintf("%s/ratelimit", cfg.queue_dir);
	static char text[8192];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	free(path);
	text[0] = '\0';
	if (f != NULL) {
		n = fread(text, 1, sizeof(text) - 1, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

static void
write_state(const char *text)
{
	char *path = xasprintf("%s/ratelimit", cfg.queue_dir);
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	free(path);
}

static void
test_minute_window(void)
{
	time_t at = 0;
	struct stat sb;
	char *path;

	fresh("minute", 3, 0);
	ok(ratelimit_take_at(&cfg, T0, &at), "1st message of the minute goes");
	ok(ratelimit_take_at(&cfg, T0 + 10, &at), "2nd goes");
	ok(ratelimit_take_at(&cfg, T0 + 20, &at), "3rd goes");
	at = 0;
	ok(!ratelimit_take_at(&cfg, T0 + 30, &at), "4th within the minute waits");
	ok(at == T0 + 60, "it may go when the 1st leaves the window (got %+ld)", (long)(at - T0));
	ok(!ratelimit_take_at(&cfg, T0 + 59, &at), "still waits one second before");
	ok(ratelimit_next_at(&cfg, T0 + 59) == T0 + 60, "ratelimit_next agrees and took nothing");
	ok(ratelimit_next_at(&cfg, T0 + 60) == 0, "at T0+60 the budget has room");
	ok(ratelimit_take_at(&cfg, T0 + 60, &at), "and the message goes");
	ok(!ratelimit_take_at(&cfg, T0 + 61, &at) && at == T0 + 70,
	    "the next one waits for the 2nd to leave (got %+ld)", (long)(at - T0));

	path = xasprintf("%s/ratelimit", cfg.queue_dir);
	memset(&sb, 0, sizeof(sb));
	stat(path, &sb);
	ok((sb.st_mode & 0777) == 0660, "the state file is shared by group, whatever the umask (%o)",
	    (unsigned)(sb.st_mode & 0777));
	free(path);
	memset(&sb, 0, sizeof(sb));
	stat(cfg.queue_dir, &sb);
	ok(S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0770,
	    "a missing queue_dir is created 0770 (%o)", (unsigned)(sb.st_mode & 0777));
	ok(strncmp(state_text(), "acsmail-ratelimit 1\n", 20) == 0, "the state file names its format");
	ok(strstr(state_text(), "\nend\n") != NULL, "and ends with its end marker");
}

static void
test_hour_window(void)
{
	time_t at = 0;

	fresh("hour", 3, 5);
	ok(ratelimit_take_at(&cfg, T0, &at) && ratelimit_take_at(&cfg, T0 + 10, &at) &&
	    ratelimit_take_at(&cfg, T0 + 20, &at), "3 in the first minute");
	ok(ratelimit_take_at(&cfg, T0 + 60, &at) && ratelimit_take_at(&cfg, T0 + 70, &at),
	    "2 in the second");
	ok(ratelimit_next_at(&cfg, T0 + 130) != 0, "the minute has room but the hour is full");
	ok(!ratelimit_take_at(&cfg, T0 + 130, &at), "so the 6th waits");
	ok(at == T0 + 3660, "until the first minute leaves the hour (got %+ld)", (long)(at - T0));
	ok(!ratelimit_take_at(&cfg, T0 + 3659, &at), "not a second earlier");
	ok(ratelimit_take_at(&cfg, T0 + 3660, &at), "then it goes");
}

static void
test_throttle(void)
{
	time_t at = 0, until;

	fresh("throttle", 0, 0);
	ok(ratelimit_take_at(&cfg, T0, &at), "no budget set: a message goes");
	until = ratelimit_throttled_at(&cfg, T0);
	ok(until == T0 + 60, "the first throttle pauses a minute (got %+ld)", (long)(until - T0));
	ok(!ratelimit_take_at(&cfg, T0 + 30, &at) && at == T0 + 60,
	    "nothing goes during the pause, even without a budget");
	ok(ratelimit_throttled_at(&cfg, T0 + 30) == T0 + 60,
	    "a throttle during the pause (a send under way) does not double it");
	until = ratelimit_throttled_at(&cfg, T0 + 61);
	ok(until == T0 + 61 + 120, "the next one doubles it (got %+ld)", (long)(until - T0 - 61));
	until = ratelimit_throttled_at(&cfg, T0 + 200);
	ok(until == T0 + 200 + 240, "and again (got %+ld)", (long)(until - T0 - 200));
	ok(strstr(state_text(), "throttles 3\n") != NULL, "the state counts 3 throttles in a row");
	ratelimit_ok(&cfg);
	ok(strstr(state_text(), "throttles 0\n") != NULL, "a message that went through resets it");
	until = ratelimit_throttled_at(&cfg, T0 + 500);
	ok(until == T0 + 560, "so the next throttle pauses a minute again");

	fresh("throttle-cap", 0, 0);
	for (int i = 0, t = 0; i < 10; i++, t += 4000)
		until = ratelimit_throttled_at(&cfg, T0 + t);
	ok(until == T0 + 36000 + 60, "a throttle an hour after the last pause starts over");
	fresh("throttle-max", 0, 0);
	until = T0;
	for (int i = 0; i < 6; i++)
		until = ratelimit_throttled_at(&cfg, until);
	ok(until == T0 + 60 + 120 + 240 + 480 + 960 + 1920, "six in a row: 1, 2, 4, 8, 16, 32 minutes");
	ok(ratelimit_throttled_at(&cfg, until - 1) == until, "(one during the pause changes nothing)");
	at = ratelimit_throttled_at(&cfg, until);
	ok(at - until == 3600, "the seventh pauses an hour, not 64 minutes (got %ld)",
	    (long)(at - until));
	until = ratelimit_throttled_at(&cfg, at);
	ok(until - at == 3600, "and so do the next ones");
}

static void
test_no_budget(void)
{
	time_t at = 0;
	int i, all = 1;

	fresh("none", 0, 0);
	for (i = 0; i < 200; i++)
		all &= ratelimit_take_at(&cfg, T0, &at);
	ok(all, "rate_per_minute = rate_per_hour = 0: no limit");
	ok(ratelimit_next_at(&cfg, T0) == 0, "and the budget is always open");
}

static void
test_damaged_state(void)
{
	time_t at = 0;

	fresh("damaged", 2, 0);
	ok(ratelimit_take_at(&cfg, T0, &at), "a first message (creates the file)");
	write_state("garbage\nsecond 1800000000 99\n");
	ok(ratelimit_take_at(&cfg, T0 + 1, &at), "a file in no known format starts afresh");
	write_state("acsmail-ratelimit 1\npause-until 0\nthrottles 0\nsecond 1800000000 2\nend\n"
	    "second 1800000001 50\nminute 18000");
	ok(!ratelimit_take_at(&cfg, T0 + 1, &at) && at == T0 + 60,
	    "what follows \"end\" (a torn longer file) is ignored, what precedes it counts");
	write_state("acsmail-ratelimit 1\npause-until 999999999999\nthrottles 0\nend\n");
	ok(ratelimit_next_at(&cfg, T0) == T0 + 3600, "a pause far in the future is cut to an hour");
}

/* Several processes take from one budget: exactly the budget goes. */
static void
test_shared(void)
{
	int fds[2], i, status, total = 0;
	pid_t pids[4];
	char c;

	fresh("shared", 1000, 10);
	ok(pipe(fds) == 0, "pipe");
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			time_t at;
			int j;

			close(fds[0]);
			for (j = 0; j < 10; j++)
				if (ratelimit_take_at(&cfg, T0, &at))
					if (write(fds[1], "x", 1) != 1)
						_exit(2);
			_exit(0);
		}
	}
	close(fds[1]);
	while (read(fds[0], &c, 1) == 1)
		total++;
	close(fds[0]);
	for (i = 0; i < 4; i++) {
		waitpid(pids[i], &status, 0);
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "taker %d ran", i);
	}
	ok(total == 10, "4 processes x 10 tries against rate_per_hour = 10: %d went", total);
}

static void
test_unusable(void)
{
	time_t at = 0;

	free(cfg.queue_dir);
	cfg.queue_dir = xstrdup("/nonexistent-parent/acsmail/queue");
	cfg.rate_per_minute = 1;
	ok(ratelimit_take_at(&cfg, T0, &at) && ratelimit_take_at(&cfg, T0, &at),
	    "no state file can be had: sending goes on rather than stopping for good");
	ok(ratelimit_next_at(&cfg, T0) == 0, "and the budget counts as open");
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
	test_minute_window();
	test_hour_window();
	test_throttle();
	test_no_budget();
	test_damaged_state();
	test_shared();
	test_unusable();
	free(cfg.queue_dir);
	cmd = xasprintf("rm -rf '%s'", top);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", top);
	free(cmd);
	return tap_done();
}
