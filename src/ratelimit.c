/* ratelimit.c: the host-wide rate budget, a small locked file in queue_dir (doc/queue.md) */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"
#include "util.h"

#define COUNT_MAX	1000000L	/* more sends in one slot than any budget allows */
#define STATE_FILE	"ratelimit"
#define STATE_FORMAT	"acsmail-ratelimit 1"
#define STATE_MAX	8192		/* the file holds at most ~125 short lines */
#define QUEUE_GROUP	"acsmail"
#define SLOTS		60
#define MINUTE		60
#define HOUR		3600
#define PAUSE_FIRST	60
#define PAUSE_MAX	3600

/* Sends counted in one second, or in one minute (t is then the minute's first second). */
struct slot {
	time_t t;
	long n;
};

struct budget {
	time_t pause_until;	/* no sending before this (450 4.5.127) */
	long throttles;		/* throttles in a row, for the doubling */
	struct slot sec[SLOTS];	/* the last minute, indexed by t % 60 */
	struct slot min[SLOTS];	/* the last hour, indexed by (t / 60) % 60 */
	bool clamped;		/* load cut a pause the clock made too long: save it so */
};

/*
 * A message counts against the minute while its second is newer than
 * now - 60, and against the hour while its minute starts after
 * now - 3660: the hour is kept in whole minutes, so it errs on the safe side
 * by at most a minute.
 */
#define SEC_SPAN	MINUTE
#define MIN_SPAN	(HOUR + MINUTE)

static size_t
slot_index(time_t t)
{
	return (size_t)(((t % SLOTS) + SLOTS) % SLOTS);
}

static time_t
minute_of(time_t t)
{
	return t - (((t % MINUTE) + MINUTE) % MINUTE);
}

/* queue_dir as the queue creates it: 0770, group acsmail when that group exists. */
static bool
make_queue_dir(const char *dir)
{
	struct group *gr;

	if (mkdir(dir, 0770) != 0)
		return errno == EEXIST;
	if (chmod(dir, 0770) != 0)
		return true;
	gr = getgrnam(QUEUE_GROUP);
	if (gr != NULL && chown(dir, (uid_t)-1, gr->gr_gid) != 0)
		return true;	/* not a member of the group: the directory stays ours */
	return true;
}

/* A FIFO or a device in the state file's place would block or lie. */
static bool
is_regular(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The state file, locked (LOCK_EX or LOCK_SH); -1 when it cannot be had, and
 * then sending goes on without a budget rather than stopping for good. */
static int
state_open(const struct config *cfg, int how)
{
	char *path = xasprintf("%s/%s", cfg->queue_dir, STATE_FILE);
	int fd = -1, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
		if (fd >= 0) {
			/* shared by every user's acsmail, whatever its umask */
			if (fchmod(fd, 0660) != 0)
				log_line(LOG_WARNING, "rate budget: cannot chmod %s: %s", path,
				    strerror(errno));
			break;
		}
		if (errno == EEXIST) {
			fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
			break;
		}
		if (errno != ENOENT || !make_queue_dir(cfg->queue_dir))
			break;
	}
	if (fd < 0) {
		log_line(LOG_WARNING, "rate budget: cannot open %s: %s; sending without it", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	if (!is_regular(fd)) {
		log_line(LOG_WARNING, "rate budget: %s is not a regular file; sending without it",
		    path);
		close(fd);
		free(path);
		return -1;
	}
	if (flock(fd, how) != 0) {
		log_line(LOG_WARNING, "rate budget: cannot lock %s: %s; sending without it", path,
		    strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* A count from the file, bounded so that the sums over a window cannot
 * overflow: a damaged file closes the budget for its window, no more. */
static long
count_of(long n)
{
	return n < COUNT_MAX ? n : COUNT_MAX;
}

static void
budget_load(int fd, struct budget *b, time_t now)
{
	char text[STATE_MAX + 1], *line, *next;
	intmax_t t, v;
	long n;
	ssize_t len;
	size_t i;

	memset(b, 0, sizeof(*b));
	len = pread(fd, text, STATE_MAX, 0);
	if (len <= 0)
		return;
	text[len] = '\0';
	line = text;
	next = strchr(line, '\n');
	if (next == NULL || strncmp(line, STATE_FORMAT "\n", sizeof(STATE_FORMAT)) != 0) {
		log_line(LOG_WARNING, "rate budget: the state file is not in a known format; "
		    "starting afresh");
		return;
	}
	/* a line without its newline is a torn write: everything up to "end" counts */
	for (line = next + 1; (next = strchr(line, '\n')) != NULL; line = next + 1) {
		*next = '\0';
		if (strcmp(line, "end") == 0)
			break;
		if (sscanf(line, "pause-until %jd", &v) == 1)
			b->pause_until = (time_t)v;
		else if (sscanf(line, "throttles %jd", &v) == 1)
			b->throttles = v > 0 && v < 64 ? (long)v : 0;
		else if (sscanf(line, "second %jd %ld", &t, &n) == 2 && n > 0)
			b->sec[slot_index((time_t)t)] = (struct slot){ (time_t)t, count_of(n) };
		else if (sscanf(line, "minute %jd %ld", &t, &n) == 2 && n > 0)
			b->min[slot_index((time_t)t / MINUTE)] =
			    (struct slot){ (time_t)t, count_of(n) };
	}
	/* a clock stepped back must not close the budget for long */
	for (i = 0; i < SLOTS; i++) {
		if (b->sec[i].t > now + SEC_SPAN)
			b->sec[i].n = 0;
		if (b->min[i].t > now + MIN_SPAN)
			b->min[i].n = 0;
	}
	/* a pause longer than any we set: the clock went back since. It ends
	 * within PAUSE_MAX from now, and is saved so, or it would slide */
	if (b->pause_until > now + PAUSE_MAX) {
		b->pause_until = now + PAUSE_MAX;
		b->clamped = true;
	}
}

static void
budget_save(int fd, const struct budget *b, time_t now)
{
	struct buf out = {0};
	size_t i;

	buf_printf(&out, "%s\npause-until %jd\nthrottles %ld\n", STATE_FORMAT,
	    (intmax_t)b->pause_until, b->throttles);
	for (i = 0; i < SLOTS; i++)
		if (b->sec[i].n > 0 && b->sec[i].t > now - SEC_SPAN)
			buf_printf(&out, "second %jd %ld\n", (intmax_t)b->sec[i].t, b->sec[i].n);
	for (i = 0; i < SLOTS; i++)
		if (b->min[i].n > 0 && b->min[i].t > now - MIN_SPAN)
			buf_printf(&out, "minute %jd %ld\n", (intmax_t)b->min[i].t, b->min[i].n);
	buf_adds(&out, "end\n");
	/* one write at offset 0, then the old tail goes: a reader stops at "end" */
	if (pwrite(fd, out.s, out.len, 0) != (ssize_t)out.len || ftruncate(fd, (off_t)out.len) != 0)
		log_line(LOG_WARNING, "rate budget: cannot write the state file: %s",
		    strerror(errno));
	buf_free(&out);
}

/* When a window of span seconds (slots newer than now - span) holds fewer
 * than limit sends again: 0 when it does now. */
static time_t
window_reopens(const struct slot *slots, time_t now, time_t span, long limit)
{
	struct slot v[SLOTS], tmp;
	size_t k = 0, i, j;
	long total = 0;

	if (limit <= 0)
		return 0;
	for (i = 0; i < SLOTS; i++) {
		if (slots[i].n > 0 && slots[i].t > now - span) {
			v[k++] = slots[i];
			total += slots[i].n;
		}
	}
	if (total < limit)
		return 0;
	for (i = 1; i < k; i++)
		for (j = i; j > 0 && v[j - 1].t > v[j].t; j--) {
			tmp = v[j];
			v[j] = v[j - 1];
			v[j - 1] = tmp;
		}
	/* the oldest sends leave the window first */
	for (i = 0; i < k; i++) {
		total -= v[i].n;
		if (total < limit)
			return v[i].t + span;
	}
	return now + span;
}

static time_t
budget_reopens(const struct budget *b, const struct config *cfg, time_t now)
{
	time_t at = b->pause_until > now ? b->pause_until : 0, w;

	w = window_reopens(b->sec, now, SEC_SPAN, cfg->rate_per_minute);
	if (w > at)
		at = w;
	w = window_reopens(b->min, now, MIN_SPAN, cfg->rate_per_hour);
	if (w > at)
		at = w;
	return at;
}

static void
budget_count(struct budget *b, time_t now)
{
	struct slot *s = &b->sec[slot_index(now)];
	struct slot *m = &b->min[slot_index(now / MINUTE)];

	if (s->t != now)
		*s = (struct slot){ now, 0 };
	s->n++;
	if (m->t != minute_of(now))
		*m = (struct slot){ minute_of(now), 0 };
	m->n++;
}

bool
ratelimit_take_at(const struct config *cfg, time_t now, time_t *retry_at)
{
	struct budget b;
	time_t at;
	int fd;

	if (cfg->rate_per_minute <= 0 && cfg->rate_per_hour <= 0) {
		/* no budget, but a throttle pause still holds */
		at = ratelimit_next_at(cfg, now);
		if (at > 0 && retry_at != NULL)
			*retry_at = at;
		return at == 0;
	}
	fd = state_open(cfg, LOCK_EX);
	if (fd < 0)
		return true;
	budget_load(fd, &b, now);
	at = budget_reopens(&b, cfg, now);
	if (at == 0) {
		budget_count(&b, now);
		budget_save(fd, &b, now);
	} else {
		if (b.clamped)
			budget_save(fd, &b, now);
		if (retry_at != NULL)
			*retry_at = at;
	}
	close(fd);
	return at == 0;
}

time_t
ratelimit_throttled_at(const struct config *cfg, time_t now)
{
	struct budget b;
	time_t pause;
	int fd;

	fd = state_open(cfg, LOCK_EX);
	if (fd < 0)
		return now + PAUSE_FIRST;
	budget_load(fd, &b, now);
	/* a send that was under way when the pause began does not double it */
	if (b.pause_until <= now) {
		if (b.throttles > 0 && now >= b.pause_until + HOUR)
			b.throttles = 0;	/* an hour without a throttle */
		if (b.throttles < 16)
			b.throttles++;
		pause = PAUSE_FIRST << (b.throttles - 1 < 6 ? b.throttles - 1 : 6);
		if (pause > PAUSE_MAX)
			pause = PAUSE_MAX;
		b.pause_until = now + pause;
		budget_save(fd, &b, now);
		log_line(LOG_WARNING, "rate budget: the relay throttles (450 4.5.127): "
		    "no sending for %jd seconds", (intmax_t)pause);
	}
	close(fd);
	return b.pause_until;
}

time_t
ratelimit_next_at(const struct config *cfg, time_t now)
{
	struct budget b;
	char *path;
	time_t at;
	int fd;

	path = xasprintf("%s/%s", cfg->queue_dir, STATE_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	free(path);
	if (fd < 0)
		return 0;	/* no state yet: nothing sent, no pause */
	if (!is_regular(fd)) {
		close(fd);
		return 0;
	}
	if (flock(fd, LOCK_SH) != 0) {
		close(fd);
		return 0;
	}
	budget_load(fd, &b, now);
	close(fd);
	if (b.clamped && (fd = state_open(cfg, LOCK_EX)) >= 0) {
		budget_load(fd, &b, now);
		budget_save(fd, &b, now);
		close(fd);
	}
	at = budget_reopens(&b, cfg, now);
	return at;
}

void
ratelimit_ok(const struct config *cfg)
{
	struct budget b;
	time_t now = time(NULL);
	int fd;

	fd = state_open(cfg, LOCK_EX);
	if (fd < 0)
		return;
	budget_load(fd, &b, now);
	if (b.throttles != 0) {
		b.throttles = 0;
		budget_save(fd, &b, now);
	}
	close(fd);
}

bool
ratelimit_take(const struct config *cfg, time_t *retry_at)
{
	return ratelimit_take_at(cfg, time(NULL), retry_at);
}

time_t
ratelimit_throttled(const struct config *cfg)
{
	return ratelimit_throttled_at(cfg, time(NULL));
}

time_t
ratelimit_next(const struct config *cfg)
{
	return ratelimit_next_at(cfg, time(NULL));
}
