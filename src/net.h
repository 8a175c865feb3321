/* net.h: resolve, connect, and socket I/O where every wait has a deadline */
#ifndef ACSMAIL_NET_H
#define ACSMAIL_NET_H

#include <stddef.h>
#include <sys/types.h>

#include "status.h"

/* When one step (a connect, a command and its reply, a write) gives up. */
struct deadline {
	long long at;		/* on the monotonic clock, in milliseconds */
	long seconds;		/* the step's length, for the messages */
};

/* Starts a step of the given length (seconds <= 0 means 60). */
void deadline_start(struct deadline *d, long seconds);
int deadline_passed(const struct deadline *d);

/* Resolves host (AF_UNSPEC) and tries every address in order, each with a
 * non-blocking connect bounded by timeout seconds. On success *fd is a
 * connected non-blocking socket (TCP_NODELAY: callers write whole units)
 * and peer names the address that answered
 * ("127.0.0.1", "2001:db8::1"). Returns EX_OK, or EX_TEMPFAIL with st->text
 * telling a DNS failure, a refused connection and a timeout apart. */
int net_connect(const char *host, long port, long timeout, int *fd,
    char *peer, size_t peersz, struct status *st);

/* Waits until fd is writable (want_write) or readable, at most until the
 * deadline. Returns EX_OK, or EX_TEMPFAIL ("timed out after N s"). */
int net_wait(int fd, int want_write, const struct deadline *d, struct status *st);

/* Reads what is there, waiting until the deadline: returns the number of
 * bytes (> 0), 0 at end of stream, -1 on an error or a timeout (st set). */
ssize_t net_read(int fd, void *p, size_t n, const struct deadline *d, struct status *st);

/* Writes all n bytes before the deadline. Never raises SIGPIPE. Returns
 * EX_OK or EX_TEMPFAIL (st set). */
int net_write(int fd, const void *p, size_t n, const struct deadline *d, struct status *st);

void net_close(int fd);
#endif
