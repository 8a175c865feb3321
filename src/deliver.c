/* deliver.c: one message to all its recipients, over a session shared by the messages of a run */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver.h"
#include "ratelimit.h"
#include "util.h"

static void
mark(struct rcpt_outcome *out, size_t n, enum rcpt_state state, const char *reply)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[i].state = state;
		out[i].own = false;
		str_copy(out[i].reply, sizeof(out[i].reply), reply);
	}
}

/* A recipient's state from the relay's code for it and the transaction's outcome. */
static enum rcpt_state
rcpt_state_of(int rc, int code)
{
	if (code >= 500)
		return RCPT_FAILED;
	if (code >= 400 || code == 0)
		return rc == EX_TEMPFAIL || rc == EX_OK ? RCPT_DEFERRED : RCPT_FAILED;
	/* accepted at RCPT: the transaction's outcome decides */
	switch (rc) {
	case EX_OK:
		return RCPT_SENT;
	case EX_TEMPFAIL:
		return RCPT_DEFERRED;
	default:
		return RCPT_FAILED;
	}
}

static bool
is_throttle(const char *reply)
{
	return strstr(reply, "4.5.127") != NULL;
}

static void
budget_reply(time_t retry_at, char *reply, size_t replysz)
{
	char why[128];
	struct tm tm;

	localtime_r(&retry_at, &tm);
	strftime(why, sizeof(why),
	    "rate budget used up (rate_per_minute/rate_per_hour): next try at %H:%M:%S", &tm);
	str_copy(reply, replysz, why);
}

static bool
session_ready(struct deliver_ctx *ctx, struct status *st)
{
	int rc;

	if (ctx->session != NULL && smtp_usable(ctx->session))
		return true;
	smtp_close(ctx->session);
	ctx->session = NULL;
	rc = smtp_open(ctx->cfg, ctx->secret, ctx->transcript, &ctx->session, st);
	if (rc == EX_OK)
		return true;
	ctx->session = NULL;
	ctx->open_failures++;
	ctx->open_status = *st;
	return false;
}

/* One transaction for out[0..n) = env->rcpts.v[first..first+n). */
static int
deliver_chunk(struct deliver_ctx *ctx, const struct envelope *env, size_t first, size_t n,
    FILE *msg, off_t start, off_t size, struct rcpt_outcome *out, char *reply, size_t replysz,
    struct status *st)
{
	struct envelope chunk = *env;
	struct rcpt_result *rr;
	struct smtp_result res;
	size_t i;
	int rc;

	chunk.rcpts.v = env->rcpts.v + first;
	chunk.rcpts.n = n;
	chunk.rcpts.cap = n;
	rr = xcalloc(n, sizeof(*rr));
	memset(&res, 0, sizeof(res));
	if (fseeko(msg, start, SEEK_SET) != 0) {
		free(rr);
		return status_set(st, EX_IOERR, "cannot rewind the prepared message");
	}
	rc = smtp_send(ctx->session, &chunk, msg, size, rr, &res, st);
	for (i = 0; i < n; i++) {
		out[i].state = rcpt_state_of(rc, rr[i].reply_code);
		/* when the transaction failed as a whole (the sender refused,
		 * DATA refused, a 4xx, the connection lost), that is the reason
		 * for every recipient, not what its RCPT got after it */
		out[i].own = (rc == EX_OK || rc == EX_NOUSER) && rr[i].reply_code >= 400 &&
		    rr[i].reply[0] != '\0';
		str_copy(out[i].reply, sizeof(out[i].reply), out[i].own ? rr[i].reply :
		    res.reply[0] != '\0' ? res.reply : st->text);
	}
	str_copy(reply, replysz, res.reply[0] != '\0' ? res.reply : st->text);
	if (is_throttle(res.reply) || is_throttle(st->text))
		ratelimit_throttled(ctx->cfg);
	else if (rc == EX_OK)
		ratelimit_ok(ctx->cfg);
	free(rr);
	return rc;
}

int
deliver_message(struct deliver_ctx *ctx, const struct envelope *env, FILE *msg, off_t size,
    struct rcpt_outcome *out, char *reply, size_t replysz, struct status *st)
{
	size_t n = env->rcpts.n, max, first, len, i;
	size_t sent = 0, deferred = 0, refused = 0;
	bool paused = false;
	time_t retry_at;
	struct status tx;
	off_t start;

	max = ctx->cfg->max_recipients > 0 ? (size_t)ctx->cfg->max_recipients : n;
	if (replysz > 0)
		reply[0] = '\0';
	mark(out, n, RCPT_PENDING, "");
	status_clear(st);
	start = ftello(msg);
	if (start < 0)
		start = 0;
	for (first = 0; first < n; first += len) {
		len = n - first < max ? n - first : max;
		/* the budget is asked before connecting, and charged only once
		 * the session is up, so an unreachable relay costs no budget */
		retry_at = paused ? 0 : ratelimit_next(ctx->cfg);
		status_clear(&tx);
		if (!paused && retry_at == 0 && !session_ready(ctx, &tx)) {
			mark(out + first, n - first,
			    tx.code == EX_TEMPFAIL ? RCPT_DEFERRED : RCPT_FAILED, tx.text);
			str_copy(reply, replysz, tx.text);
			*st = tx;
			break;
		}
		if (paused || retry_at != 0 || !ratelimit_take(ctx->cfg, &retry_at)) {
			if (!paused)
				budget_reply(retry_at, reply, replysz);
			paused = true;
			mark(out + first, len, RCPT_DEFERRED, reply);
			continue;
		}
		deliver_chunk(ctx, env, first, len, msg, start, size, out + first, reply, replysz,
		    &tx);
		if (tx.code != EX_OK)
			*st = tx;
		if (is_throttle(reply))
			paused = true;
	}
	for (i = 0; i < n; i++) {
		switch (out[i].state) {
		case RCPT_SENT:
			sent++;
			break;
		case RCPT_FAILED:
			refused++;
			break;
		default:
			deferred++;
			break;
		}
	}
	if (deferred > 0) {
		/* why they wait: the reply of the first that does (a 452 to its
		 * RCPT, say), not the 250 of a transaction that went */
		for (i = 0; i < n && st->code == EX_OK; i++)
			if (out[i].state == RCPT_DEFERRED)
				status_set(st, EX_TEMPFAIL, "%s", out[i].reply);
		return EX_TEMPFAIL;
	}
	if (refused == 0 || sent > 0) {
		if (refused == 0)
			status_clear(st);
		return EX_OK;
	}
	if (st->code == EX_OK || st->code == EX_TEMPFAIL)
		status_set(st, EX_UNAVAILABLE, "%s", reply);
	return st->code;
}

void
deliver_finish(struct deliver_ctx *ctx)
{
	smtp_close(ctx->session);
	ctx->session = NULL;
}
