/* ratelimit.h: ACS's rate budget, shared by every acsmail process on the host */
#ifndef ACSMAIL_RATELIMIT_H
#define ACSMAIL_RATELIMIT_H

#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "status.h"

/* Takes one message from the budget (rate_per_minute, rate_per_hour, and a
 * pause set by ratelimit_throttled) kept in a small locked state file in
 * queue_dir. Returns true when the message may go now; false with *retry_at
 * set to when it may, having taken nothing. */
bool ratelimit_take(const struct config *cfg, time_t *retry_at);

/* The relay said 450 4.5.127: stop all sending for a while, doubling the
 * pause on repeated throttles (1 minute up to 1 hour). Returns the end of the pause. */
time_t ratelimit_throttled(const struct config *cfg);

/* A message went through: the throttle backoff starts over. */
void ratelimit_ok(const struct config *cfg);

/* When the budget has room for a message again: 0 when it has room now.
 * Takes nothing. */
time_t ratelimit_next(const struct config *cfg);

/* The same at a given time: the windows slide with `now` (the tests use these). */
bool ratelimit_take_at(const struct config *cfg, time_t now, time_t *retry_at);
time_t ratelimit_throttled_at(const struct config *cfg, time_t now);
time_t ratelimit_next_at(const struct config *cfg, time_t now);
#endif
