/* spool.h: the queue files under queue_dir (doc/queue.md), for the runner and mailq */
#ifndef ACSMAIL_SPOOL_H
#define ACSMAIL_SPOOL_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "envelope.h"
#include "queue.h"
#include "status.h"
#include "util.h"

/* attempts counts no further (the backoff stopped growing long before) */
#define ATTEMPTS_MAX	1000000

enum area { AREA_TMP, AREA_QUEUE, AREA_FAILED, AREA_COUNT };

/* The open directories of one queue_dir. */
struct spool {
	const struct config *cfg;
	int dir[AREA_COUNT];		/* -1 for an area that does not exist (yet) */
};

/* A queue file's header, in memory; the message stays on disk. */
struct entry {
	char id[QUEUE_ID_MAX];
	time_t created;
	long attempts;
	time_t next_attempt;
	char *last_reply;
	struct envelope env;
	struct strlist replies;		/* one per env.rcpts: its own last reply, "" for none */
};

/* A file written and fsync'd in tmp/, waiting to be renamed into its area. */
struct pending {
	char name[QUEUE_ID_MAX + 32];
	bool ready;
	int lockfd;			/* the failed entry it replaces, locked until then; or -1 */
};

/* Removes temporary files a crash left in tmp/ (older than an hour). */
void clean_tmp(struct spool *sp, time_t now);
/* Appends a recipient and its own last reply ("" for none). */
void entry_add_rcpt(struct entry *e, const char *rcpt, const char *reply);
void entry_free(struct entry *e);
/* A new entry with e's id, times and envelope fields, but no recipients. */
void entry_init_like(struct entry *e, const struct entry *from);
/* Opens and locks a queue file (waiting or not); EX_NOINPUT when it is not there. */
int entry_lock(struct spool *sp, enum area a, const char *id, bool wait, int *fdp,
    struct status *st);
/* Reads a locked file's header; *body_off and *body_size locate the message. */
int entry_read(int fd, const char *id, struct entry *e, off_t *body_off, off_t *body_size,
    struct status *st);
int entry_remove(struct spool *sp, enum area a, const char *id, struct status *st);
void entry_set_reply(struct entry *e, const char *reply);
/* Writes e and the message to tmp/, fsync'd, ready for pending_commit. */
int entry_write_tmp(struct spool *sp, const struct entry *e, FILE *msg, off_t size,
    struct pending *p, struct status *st);
/* The same for the failed area, merged with a failed entry of the same id. */
int failed_prepare(struct spool *sp, struct entry *e, FILE *msg, off_t size,
    struct pending *p, struct status *st);
void format_age(char *dst, size_t size, long secs);
void format_clock(char *dst, size_t size, time_t t);
void format_span(char *dst, size_t size, long secs);
/* Letters and digits only: an id never names a path. */
bool id_valid(const char *id);
/* The ids in an area, sorted (oldest first). */
int list_area(struct spool *sp, enum area a, struct strlist *ids, struct status *st);
/* A read-only stream of the message part of a queue file. */
FILE *message_view(int fd, off_t base, off_t size);
/* Renames the written file into its area and fsyncs the directory. */
int pending_commit(struct spool *sp, struct pending *p, enum area a, const char *id,
    bool *moved, struct status *st);
void pending_discard(struct spool *sp, struct pending *p);
void spool_close(struct spool *sp);
/* Opens queue_dir's areas, creating them when create is set. */
int spool_open(const struct config *cfg, bool create, struct spool *sp, struct status *st);

#endif
