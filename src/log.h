/* log.h: the one syslog line per message and outcome (SPEC §9) */
#ifndef ACSMAIL_LOG_H
#define ACSMAIL_LOG_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* log = "syslog" (facility mail, ident acsmail), a file path, or "none". */
void log_open(const struct config *cfg);
void log_close(void);
/* A free-form line at a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO). */
void log_line(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* id=... from=<...> nrcpt=N size=N status=sent|queued|deferred|failed|bounced reply="..." delay=1.23s */
void log_outcome(const char *qid, const char *sender, size_t nrcpt, off_t size,
    const char *status, const char *reply, double elapsed);
#endif
