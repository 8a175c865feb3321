/* queue.c: the queue runner, mailq, --requeue and --delete, over the spool (spool.h) */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "ratelimit.h"
#include "spool.h"
#include "util.h"

/* What one pass of the runner has seen. */
struct pass {
	bool stop;			/* the relay is unreachable or the budget used up */
	bool held;			/* and the message that found it so was not tried */
	char why[600];
};

/* ---- the runner ---- */

static bool
has_substring(const char *hay, const char *needle)
{
	return needle == NULL || *needle == '\0' || strcasestr(hay, needle) != NULL;
}

static bool
filter_match(const struct queue_filter *f, const struct entry *e)
{
	size_t i;

	if (f == NULL)
		return true;
	if (!has_substring(e->id, f->id) || !has_substring(e->env.sender, f->sender))
		return false;
	if (f->recipient == NULL || *f->recipient == '\0')
		return true;
	for (i = 0; i < e->env.rcpts.n; i++)
		if (has_substring(e->env.rcpts.v[i], f->recipient))
			return true;
	return false;
}

/* The deferred recipients in keep that have outlived queue_lifetime go to fail. */
static void
expire(const struct config *cfg, struct entry *keep, struct entry *fail)
{
	char span[64], *why;
	size_t i;

	format_span(span, sizeof(span), cfg->queue_lifetime > 0 ? cfg->queue_lifetime : 0);
	for (i = 0; i < keep->env.rcpts.n; i++) {
		why = xasprintf("expired after %s: last reply %s", span,
		    keep->replies.v[i][0] != '\0' ? keep->replies.v[i] : "(none)");
		entry_add_rcpt(fail, keep->env.rcpts.v[i], why);
		free(why);
	}
	strlist_free(&keep->env.rcpts);
	strlist_free(&keep->replies);
}

/* Moves every recipient of from into to. */
static void
take_rcpts(struct entry *to, struct entry *from)
{
	size_t i;

	for (i = 0; i < from->env.rcpts.n; i++)
		entry_add_rcpt(to, from->env.rcpts.v[i], from->replies.v[i]);
	strlist_free(&from->env.rcpts);
	strlist_free(&from->replies);
}

/*
 * After a delivery attempt of e (locked): the sent recipients go, the refused
 * ones go to the failed area, the deferred ones stay with backoff (or until
 * the rate budget reopens, not counted as an attempt) unless the message has
 * outlived queue_lifetime. Both new files are written and fsync'd first and
 * renamed after, failed area first: a crash in between at worst retries.
 */
static void
settle(struct spool *sp, struct deliver_ctx *ctx, const struct entry *e, FILE *msg,
    off_t size, const struct rcpt_outcome *out, const char *reply, const struct status *st,
    bool unreachable)
{
	const struct config *cfg = sp->cfg;
	struct pending pk = { .lockfd = -1 }, pf = { .lockfd = -1 };
	struct entry keep, fail;
	struct status wst;
	bool moved;
	size_t i, nsent = 0;
	time_t now = time(NULL), reopens;
	double delay = difftime(now, e->created);
	const char *r;

	entry_init_like(&keep, e);
	entry_init_like(&fail, e);
	for (i = 0; i < e->env.rcpts.n; i++) {
		r = out[i].reply[0] != '\0' ? out[i].reply : st->text[0] != '\0' ? st->text :
		    "not tried";
		if (out[i].state == RCPT_SENT)
			nsent++;
		else if (out[i].state == RCPT_FAILED &&
		    !(unreachable && strncmp(r, ctx->open_status.text, strlen(r)) == 0))
			entry_add_rcpt(&fail, e->env.rcpts.v[i], r);
		else	/* deferred, not reached, or no session: no verdict on the message */
			entry_add_rcpt(&keep, e->env.rcpts.v[i], r);
	}
	if (nsent > 0)
		log_outcome(e->id, e->env.sender, nsent, size, "sent", reply, delay);
	if (keep.env.rcpts.n > 0 &&
	    now - e->created >= (cfg->queue_lifetime > 0 ? cfg->queue_lifetime : 0))
		expire(cfg, &keep, &fail);

	status_clear(&wst);
	if (fail.env.rcpts.n > 0) {
		fail.attempts = e->attempts < ATTEMPTS_MAX ? e->attempts + 1 : ATTEMPTS_MAX;
		fail.next_attempt = 0;
		entry_set_reply(&fail, fail.replies.v[0]);
		if (failed_prepare(sp, &fail, msg, size, &pf, &wst) != EX_OK) {
			log_line(LOG_ERR, "id=%s cannot be moved to the failed area (%s): "
			    "its refused recipients stay queued", e->id, wst.text);
			take_rcpts(&keep, &fail);
		}
	}
	if (keep.env.rcpts.n > 0) {
		reopens = ratelimit_next(cfg);
		entry_set_reply(&keep, keep.replies.v[0]);
		if (reopens > 0) {
			keep.next_attempt = reopens;	/* held back, not a failed attempt */
		} else {
			keep.attempts = e->attempts < ATTEMPTS_MAX ? e->attempts + 1 : ATTEMPTS_MAX;
			keep.next_attempt = now + queue_backoff(keep.attempts);
		}
		if (entry_write_tmp(sp, &keep, msg, size, &pk, &wst) != EX_OK) {
			log_line(LOG_ERR, "id=%s cannot be updated (%s): the recipients it was "
			    "sent to may get it again", e->id, wst.text);
			pending_discard(sp, &pf);
			goto out;
		}
	}

	if (pf.ready) {
		if (pending_commit(sp, &pf, AREA_FAILED, fail.id, &moved, &wst) == EX_OK) {
			log_outcome(e->id, e->env.sender, fail.env.rcpts.n, size, "failed",
			    fail.last_reply, delay);
		} else if (!moved) {
			/* the refused recipients must not be lost with the queue file */
			log_line(LOG_ERR, "id=%s: %s: left as it was; the recipients it was "
			    "sent to may get it again", e->id, wst.text);
			pending_discard(sp, &pk);
			goto out;
		}
	}
	if (pk.ready) {
		if (pending_commit(sp, &pk, AREA_QUEUE, e->id, &moved, &wst) == EX_OK)
			log_outcome(e->id, e->env.sender, keep.env.rcpts.n, size, "deferred",
			    keep.last_reply, delay);
		else
			log_line(LOG_ERR, "id=%s: %s", e->id, wst.text);
	} else if (entry_remove(sp, AREA_QUEUE, e->id, &wst) != EX_OK) {
		log_line(LOG_ERR, "id=%s: %s: it may be sent again", e->id, wst.text);
	}
out:
	entry_free(&keep);
	entry_free(&fail);
}

/* One queued message: lock, check, deliver, settle; the lock goes last. */
/* Times no run of ours can have written come from a clock that was set
 * back since: a retry further ahead than the longest backoff and a rate
 * window is due now, a message made in the future was made now (and is
 * written so at its next attempt, so it still expires). */
static void
clock_stepped(struct entry *e, time_t now)
{
	if (e->next_attempt > now + queue_backoff(ATTEMPTS_MAX) + 3600)
		e->next_attempt = now;
	if (e->created > now)
		e->created = now;
}

static void
run_one(struct spool *sp, struct deliver_ctx *ctx, const char *id,
    const struct queue_filter *f, struct pass *p)
{
	const struct config *cfg = sp->cfg;
	struct rcpt_outcome *out;
	struct entry e;
	struct status st;
	char reply[512] = "";
	off_t off, size;
	time_t reopens;
	FILE *msg;
	int fd, opens, rc;

	if (f != NULL && !has_substring(id, f->id))
		return;
	status_clear(&st);
	/* locked: another runner or a background delivery has it; gone: delivered */
	if (entry_lock(sp, AREA_QUEUE, id, false, &fd, &st) != EX_OK)
		return;
	if (entry_read(fd, id, &e, &off, &size, &st) != EX_OK || e.env.rcpts.n == 0) {
		log_line(LOG_ERR, "queue: %s", st.code != EX_OK ? st.text :
		    "a queue file without recipients");
		goto out;
	}
	clock_stepped(&e, time(NULL));
	if (((f == NULL || !f->flush) && e.next_attempt > time(NULL)) || !filter_match(f, &e))
		goto out;
	reopens = ratelimit_next(cfg);
	if (reopens > 0) {
		char at[32];

		format_clock(at, sizeof(at), reopens);
		p->stop = p->held = true;
		snprintf(p->why, sizeof(p->why),
		    "the rate budget (or a throttle pause) holds sending until %s", at);
		goto out;
	}
	msg = message_view(fd, off, size);
	if (msg == NULL) {
		log_line(LOG_ERR, "queue: %s: cannot read the message: %s", id, strerror(errno));
		goto out;
	}
	out = xcalloc(e.env.rcpts.n, sizeof(*out));
	opens = ctx->open_failures;
	rc = deliver_message(ctx, &e.env, msg, size, out, reply, sizeof(reply), &st);
	settle(sp, ctx, &e, msg, size, out, reply, &st, ctx->open_failures > opens);
	if (ctx->open_failures > opens) {
		p->stop = true;
		snprintf(p->why, sizeof(p->why), "the relay cannot be used: %s",
		    ctx->open_status.text);
	} else if (rc == EX_CONFIG) {
		p->stop = true;
		snprintf(p->why, sizeof(p->why), "%s", st.text);
	}
	free(out);
	fclose(msg);
out:
	entry_free(&e);
	close(fd);
}

int
queue_run(const struct config *cfg, struct deliver_ctx *ctx, const struct queue_filter *f,
    struct status *st)
{
	struct strlist ids = {0};
	struct pass p = {0};
	struct spool sp;
	size_t i, left;
	int rc;

	rc = spool_open(cfg, true, &sp, st);
	if (rc != EX_OK)
		return rc;
	/* a message sent from a queue that cannot be changed stays in it, and
	 * every pass would send it again */
	for (i = AREA_TMP; i <= AREA_QUEUE; i++)
		if (sp.dir[i] < 0 || faccessat(sp.dir[i], ".", W_OK, AT_EACCESS) != 0) {
			rc = status_set(st, EX_TEMPFAIL, "the queue %s/%s cannot be written (%s): "
			    "nothing is sent from it until it can", cfg->queue_dir, i == AREA_TMP ?
			    "tmp" : "queue", sp.dir[i] < 0 ? "missing" : strerror(errno));
			spool_close(&sp);
			return rc;
		}
	clean_tmp(&sp, time(NULL));
	rc = list_area(&sp, AREA_QUEUE, &ids, st);
	for (i = 0; rc == EX_OK && i < ids.n; i++) {
		run_one(&sp, ctx, ids.v[i], f, &p);
		if (p.stop)
			break;
	}
	/* the rest keep their schedule: the next pass tries again, one attempt
	 * a pass instead of one a message while the relay is down */
	left = p.stop ? ids.n - i - (p.held ? 0 : 1) : 0;
	if (left > 0)
		log_line(LOG_INFO, "queue: pass ended early, %zu message%s left for the next "
		    "pass: %s", left, left == 1 ? "" : "s", p.why);
	strlist_free(&ids);
	spool_close(&sp);
	return rc;
}

/* ---- mailq ---- */

struct tally {
	size_t n, damaged;
	intmax_t bytes;
};

static void
show_entry(struct spool *sp, enum area a, const char *id, FILE *out, time_t now,
    struct tally *t)
{
	struct entry e = {0};
	struct status st;
	char age[32], next[48];
	struct stat sb;
	off_t off, size;
	size_t i;
	int fd;

	/* files are only ever replaced whole: reading needs no lock */
	fd = openat(sp->dir[a], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;		/* delivered or moved while we looked */
	status_clear(&st);
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
		status_set(&st, EX_DATAERR, "not a regular file");
	if (st.code != EX_OK || entry_read(fd, id, &e, &off, &size, &st) != EX_OK) {
		fprintf(out, "%s  (unreadable: %s)\n\n", id, st.text);
		t->damaged++;
		entry_free(&e);
		close(fd);
		return;
	}
	close(fd);
	t->n++;
	t->bytes += size;
	format_age(age, sizeof(age), (long)(now - e.created));
	next[0] = '\0';
	if (a == AREA_QUEUE && e.next_attempt > now) {
		char wait[32];

		format_age(wait, sizeof(wait), (long)(e.next_attempt - now));
		snprintf(next, sizeof(next), "  next try in %s", wait);
	} else if (a == AREA_QUEUE) {
		snprintf(next, sizeof(next), "  due now");
	}
	fprintf(out, "%s  %jd bytes  %s old  %ld attempt%s%s\n", e.id, (intmax_t)size, age,
	    e.attempts, e.attempts == 1 ? "" : "s", next);
	fprintf(out, "  from: <%s>\n", e.env.sender);
	for (i = 0; i < e.env.rcpts.n; i++) {
		if (e.replies.v[i][0] != '\0' && strcmp(e.replies.v[i], e.last_reply) != 0)
			fprintf(out, "  to:   <%s>  (%s)\n", e.env.rcpts.v[i], e.replies.v[i]);
		else
			fprintf(out, "  to:   <%s>\n", e.env.rcpts.v[i]);
	}
	if (e.last_reply[0] != '\0')
		fprintf(out, "  %-5s %s\n", a == AREA_FAILED ? "why:" : "last:", e.last_reply);
	fputc('\n', out);
	entry_free(&e);
}

int
queue_list(const struct config *cfg, FILE *out, struct status *st)
{
	struct strlist q = {0}, failed = {0};
	struct tally tq = {0}, tf = {0};
	struct spool sp;
	time_t now = time(NULL), held;
	size_t i;
	int rc;

	rc = spool_open(cfg, false, &sp, st);
	if (rc == EX_NOINPUT) {
		status_clear(st);
		fputs("Mail queue is empty\n", out);
		return EX_OK;
	}
	if (rc != EX_OK)
		return rc;
	rc = list_area(&sp, AREA_QUEUE, &q, st);
	if (rc == EX_OK)
		rc = list_area(&sp, AREA_FAILED, &failed, st);
	if (rc == EX_OK) {
		for (i = 0; i < q.n; i++)
			show_entry(&sp, AREA_QUEUE, q.v[i], out, now, &tq);
		if (tq.n + tq.damaged == 0)
			fputs("Mail queue is empty\n", out);
		else
			fprintf(out, "-- %zu message%s, %jd bytes in the queue\n", tq.n,
			    tq.n == 1 ? "" : "s", tq.bytes);
		if (tq.damaged > 0)
			fprintf(out, "-- %zu unreadable (see the reasons above)\n", tq.damaged);
		if (tq.n > 0 && (held = ratelimit_next(cfg)) > now) {
			char at[32];

			format_clock(at, sizeof(at), held);
			fprintf(out, "-- sending is held until %s by the rate budget or a throttle "
			    "pause\n", at);
		}
		if (failed.n > 0) {
			fputs("\nFailed:\n", out);
			for (i = 0; i < failed.n; i++)
				show_entry(&sp, AREA_FAILED, failed.v[i], out, now, &tf);
			fprintf(out, "-- %zu failed message%s, %jd bytes (acsmail --requeue ID, "
			    "--delete ID)\n", tf.n, tf.n == 1 ? "" : "s", tf.bytes);
		}
		if (fflush(out) != 0)
			rc = status_set(st, EX_IOERR, "cannot write the listing: %s", strerror(errno));
	}
	strlist_free(&q);
	strlist_free(&failed);
	spool_close(&sp);
	return rc;
}

/* ---- requeue and delete ---- */

/* failed/id (locked on fd) back into the queue as a new message, due at once. */
static int
requeue_failed(struct spool *sp, const char *id, int fd, struct status *st)
{
	struct pending p = { .lockfd = -1 };
	struct entry e;
	off_t off, size;
	size_t i;
	FILE *msg = NULL;
	int rc, tries;

	rc = entry_read(fd, id, &e, &off, &size, st);
	if (rc == EX_OK && e.env.rcpts.n == 0)
		rc = status_set(st, EX_DATAERR, "message %s has no recipients to deliver to", id);
	if (rc == EX_OK && (msg = message_view(fd, off, size)) == NULL)
		rc = status_set(st, EX_TEMPFAIL, "cannot read message %s: %s", id, strerror(errno));
	if (rc != EX_OK)
		goto out;
	/* a fresh start: a full lifetime, no backoff */
	e.created = time(NULL);
	e.attempts = 0;
	e.next_attempt = 0;
	for (i = 0; i < e.replies.n; i++)
		e.replies.v[i][0] = '\0';
	rc = entry_write_tmp(sp, &e, msg, size, &p, st);
	if (rc != EX_OK)
		goto out;
	/* never over a queued entry of the same id (its other recipients): link, not rename */
	for (tries = 0; linkat(sp->dir[AREA_TMP], p.name, sp->dir[AREA_QUEUE], e.id, 0) != 0;
	    tries++) {
		if (errno != EEXIST || tries >= 5) {
			rc = status_set(st, EX_TEMPFAIL, "cannot requeue %s: %s", id, strerror(errno));
			break;
		}
		queue_new_id(e.id);
	}
	unlinkat(sp->dir[AREA_TMP], p.name, 0);
	if (rc == EX_OK && fsync(sp->dir[AREA_QUEUE]) != 0)
		rc = status_set(st, EX_TEMPFAIL, "cannot fsync %s/queue: %s", sp->cfg->queue_dir,
		    strerror(errno));
	if (rc == EX_OK) {
		if (entry_remove(sp, AREA_FAILED, id, st) != EX_OK)
			log_line(LOG_ERR, "id=%s requeued, but %s", id, st->text);
		status_clear(st);
		if (strcmp(e.id, id) == 0)
			log_line(LOG_INFO, "id=%s requeued from the failed area", id);
		else
			log_line(LOG_INFO, "id=%s requeued from the failed area as id=%s", id, e.id);
	}
out:
	if (msg != NULL)
		fclose(msg);
	entry_free(&e);
	return rc;
}

/* A queued message becomes due at once. */
static int
requeue_queued(struct spool *sp, const char *id, struct status *st)
{
	struct pending p = { .lockfd = -1 };
	struct entry e;
	off_t off, size;
	FILE *msg = NULL;
	bool moved;
	int fd, rc;

	rc = entry_lock(sp, AREA_QUEUE, id, false, &fd, st);
	if (rc == EX_NOINPUT)
		return status_set(st, EX_NOUSER, "no message %s in the queue or the failed area", id);
	if (rc != EX_OK)
		return rc;
	rc = entry_read(fd, id, &e, &off, &size, st);
	if (rc == EX_OK && (msg = message_view(fd, off, size)) == NULL)
		rc = status_set(st, EX_TEMPFAIL, "cannot read message %s: %s", id, strerror(errno));
	if (rc == EX_OK) {
		e.next_attempt = 0;
		rc = entry_write_tmp(sp, &e, msg, size, &p, st);
	}
	if (rc == EX_OK)
		rc = pending_commit(sp, &p, AREA_QUEUE, id, &moved, st);
	if (rc == EX_OK)
		log_line(LOG_INFO, "id=%s made due at once", id);
	if (msg != NULL)
		fclose(msg);
	entry_free(&e);
	close(fd);
	return rc;
}

/* The spool, for --requeue and --delete of the message id. */
static int
spool_open_for(const struct config *cfg, const char *id, struct spool *sp, struct status *st)
{
	int rc;

	if (!id_valid(id))
		return status_set(st, EX_USAGE, "\"%.40s\" is not a queue id (letters and digits)", id);
	rc = spool_open(cfg, false, sp, st);
	if (rc == EX_NOINPUT)
		return status_set(st, EX_NOUSER, "no message %s: the queue is empty", id);
	return rc;
}

int
queue_requeue(const struct config *cfg, const char *id, struct status *st)
{
	struct spool sp;
	int fd, rc;

	if ((rc = spool_open_for(cfg, id, &sp, st)) != EX_OK)
		return rc;
	if (sp.dir[AREA_TMP] < 0 || sp.dir[AREA_QUEUE] < 0) {
		spool_close(&sp);
		rc = spool_open(cfg, true, &sp, st);
		if (rc != EX_OK)
			return rc;
	}
	rc = entry_lock(&sp, AREA_FAILED, id, false, &fd, st);
	if (rc == EX_OK) {
		rc = requeue_failed(&sp, id, fd, st);
		close(fd);
	} else if (rc == EX_NOINPUT) {
		rc = requeue_queued(&sp, id, st);
	}
	spool_close(&sp);
	return rc;
}

int
queue_delete(const struct config *cfg, const char *id, struct status *st)
{
	static const enum area areas[] = { AREA_FAILED, AREA_QUEUE };
	struct spool sp;
	size_t i, found = 0;
	int fd, rc = EX_OK;

	if ((rc = spool_open_for(cfg, id, &sp, st)) != EX_OK)
		return rc;
	for (i = 0; i < sizeof(areas) / sizeof(areas[0]) && rc == EX_OK; i++) {
		rc = entry_lock(&sp, areas[i], id, false, &fd, st);
		if (rc == EX_NOINPUT) {
			rc = EX_OK;
			continue;
		}
		if (rc == EX_OK) {
			rc = entry_remove(&sp, areas[i], id, st);
			close(fd);
			if (rc == EX_OK)
				found++;
		}
	}
	spool_close(&sp);
	if (rc != EX_OK)
		return rc;
	if (found == 0)
		return status_set(st, EX_NOUSER, "no message %s in the queue or the failed area", id);
	status_clear(st);
	log_line(LOG_INFO, "id=%s deleted by uid %ld", id, (long)getuid());
	return EX_OK;
}
