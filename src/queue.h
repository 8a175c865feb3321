/* queue.h: the durable spool under queue_dir (SPEC §6) and its runner */
#ifndef ACSMAIL_QUEUE_H
#define ACSMAIL_QUEUE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "deliver.h"
#include "envelope.h"
#include "status.h"

#define QUEUE_ID_MAX 32

/* A new queue id: unique on this host, sortable by time, [0-9A-Za-z] only. */
void queue_new_id(char id[QUEUE_ID_MAX]);

/* The wait after the attempts-th failed attempt: 1 minute, doubling, at most 1 hour. */
time_t queue_backoff(long attempts);

/* Stores a prepared message (msg from its start, size octets) for
 * env->rcpts, durably: temporary name, fsync, rename, directory fsync.
 * reason is the last reply or why it was queued; next_attempt is when a
 * runner may try it (0: at once). Returns EX_OK only once the message is
 * safe on disk; EX_TEMPFAIL (or EX_CANTCREAT) otherwise, with nothing left
 * behind. */
int queue_store(const struct config *cfg, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, time_t next_attempt, struct status *st);

/* The same after a first attempt that failed for a temporary reason: one
 * attempt counted, the next one due after queue_backoff(1). */
int queue_store_deferred(const struct config *cfg, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, struct status *st);

/* The same into the failed area, for recipients that failed permanently. */
int queue_store_failed(const struct config *cfg, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, struct status *st);

struct queue_filter {
	bool flush;		/* ignore backoff */
	const char *recipient;	/* -qR: substring of a recipient, or NULL */
	const char *sender;	/* -qS: substring of the sender, or NULL */
	const char *id;		/* -qI: the id (or a substring of it, as sendmail), or NULL */
};

/* One pass over the queue: each message that is due (or matches, with
 * flush) is locked, delivered over the shared ctx session, and removed,
 * rescheduled with backoff, or moved to the failed area. The pass ends
 * early while the relay cannot be reached or the rate budget is used up.
 * Returns EX_OK, or EX_TEMPFAIL (EX_CANTCREAT) when the queue could not be read. */
int queue_run(const struct config *cfg, struct deliver_ctx *ctx, const struct queue_filter *f,
    struct status *st);

/* mailq: the queue and the failed area. */
int queue_list(const struct config *cfg, FILE *out, struct status *st);

/* Moves a failed message back into the queue, due at once (a queued one
 * becomes due at once) / removes one from the queue and the failed area.
 * EX_USAGE for a malformed id, EX_NOUSER when there is no such message,
 * EX_TEMPFAIL while it is being delivered. */
int queue_requeue(const struct config *cfg, const char *id, struct status *st);
int queue_delete(const struct config *cfg, const char *id, struct status *st);
#endif
