/* log.c: the one syslog line per message and outcome (SPEC §9)
 *
 * Until log_open is called, and whenever the configured file cannot be
 * opened, lines go to syslog: an error met while reading the config must
 * still reach someone. Every line is one line: control characters in the
 * text (an address, a relay's reply) are blanked before it is written.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX	4096

enum log_target { TARGET_SYSLOG, TARGET_FILE, TARGET_NONE };

/* the log handle: where lines go */
static enum log_target target = TARGET_SYSLOG;
static int log_fd = -1;
static bool syslog_opened;

static void
syslog_open(void)
{
	if (!syslog_opened) {
		openlog("acsmail", LOG_PID, LOG_MAIL);
		syslog_opened = true;
	}
}

/* CR, LF and tabs become spaces; other control characters go. */
static void
blank_controls(char *s)
{
	char *w = s;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\r' || c == '\n' || c == '\t')
			*w++ = ' ';
		else if (c >= 0x20 && c != 0x7f)
			*w++ = (char)c;
	}
	*w = '\0';
}

static const char *
severity(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error: ";
	case LOG_WARNING:
		return "warning: ";
	default:
		return "";
	}
}

static void
file_write(const char *tag, const char *text)
{
	char stamp[64];
	struct tm tm;
	time_t now = time(NULL);
	struct buf b = {0};
	size_t off = 0;
	ssize_t n;

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "%lld", (long long)now);
	buf_printf(&b, "%s acsmail[%ld]: %s%s\n", stamp, (long)getpid(), tag, text);
	/* one write(2) on an O_APPEND descriptor: lines of concurrent
	 * processes do not interleave */
	while (off < b.len) {
		n = write(log_fd, b.s + off, b.len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_free(&b);
}

/* tagged: a file line says "error: " or "warning: " as syslog's
 * priority would; outcome lines are kept uniform instead */
static void
emit(int prio, bool tagged, char *text)
{
	blank_controls(text);
	switch (target) {
	case TARGET_NONE:
		break;
	case TARGET_FILE:
		file_write(tagged ? severity(prio) : "", text);
		break;
	case TARGET_SYSLOG:
		syslog_open();
		syslog(prio, "%s", text);
		break;
	}
}

void
log_open(const struct config *cfg)
{
	const char *where = cfg != NULL && cfg->log != NULL ? cfg->log : "syslog";
	int err;

	log_close();
	if (strcmp(where, "none") == 0) {
		target = TARGET_NONE;
		return;
	}
	if (strcmp(where, "syslog") == 0) {
		syslog_open();
		return;
	}
	log_fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (log_fd == -1) {
		err = errno;
		log_line(LOG_WARNING, "cannot open log file %s: %s; logging to syslog", where,
		    strerror(err));
		return;
	}
	target = TARGET_FILE;
}

void
log_close(void)
{
	if (log_fd != -1)
		close(log_fd);
	log_fd = -1;
	if (syslog_opened)
		closelog();
	syslog_opened = false;
	target = TARGET_SYSLOG;
}

void
log_line(int prio, const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	va_list ap;

	if (target == TARGET_NONE)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	emit(prio, true, text);
}


void
log_outcome(const char *qid, const char *sender, size_t nrcpt, off_t size,
    const char *status, const char *reply, double elapsed)
{
	struct buf b = {0};
	int prio = LOG_INFO;

	if (target == TARGET_NONE)
		return;
	if (status == NULL)
		status = "unknown";
	if (strcmp(status, "failed") == 0 || strcmp(status, "bounced") == 0)
		prio = LOG_ERR;
	else if (strcmp(status, "deferred") == 0)
		prio = LOG_WARNING;
	if (elapsed < 0)
		elapsed = 0;
	buf_printf(&b, "id=%s from=<%s> nrcpt=%zu size=%lld status=%s",
	    qid != NULL && *qid != '\0' ? qid : "-", sender != NULL ? sender : "",
	    nrcpt, (long long)size, status);
	if (reply != NULL) {
		buf_adds(&b, " reply=");
		buf_add_quoted(&b, reply);
	}
	buf_printf(&b, " delay=%.2fs", elapsed);
	emit(prio, false, b.s);
	buf_free(&b);
}
