/* net.c: name resolution, connecting with a timeout, reads and writes with deadlines */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
deadline_start(struct deadline *d, long seconds)
{
	if (seconds <= 0)
		seconds = 60;
	d->seconds = seconds;
	d->at = now_ms() + (long long)seconds * 1000;
}

/* milliseconds left, 0 when the deadline has passed */
static int
remaining(const struct deadline *d)
{
	long long left = d->at - now_ms();

	if (left <= 0)
		return 0;
	if (left > INT_MAX)
		return INT_MAX;
	return (int)left;
}

int
deadline_passed(const struct deadline *d)
{
	return remaining(d) == 0;
}

static const char *
errno_text(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return "connection refused";
	case ECONNRESET:
		return "connection reset by the relay";
	case EPIPE:
		return "connection closed by the relay";
	case ETIMEDOUT:
		return "connection timed out";
	default:
		return strerror(err);
	}
}

int
net_wait(int fd, int want_write, const struct deadline *d, struct status *st)
{
	struct pollfd pfd;
	int left, n;

	for (;;) {
		left = remaining(d);
		if (left == 0)
			return status_set(st, EX_TEMPFAIL, "timed out after %ld s", d->seconds);
		pfd.fd = fd;
		pfd.events = want_write ? POLLOUT : POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		/* POLLERR and POLLHUP count as ready: the next read or write says what happened */
		if (n > 0)
			return EX_OK;
		if (n < 0 && errno != EINTR)
			return status_set(st, EX_TEMPFAIL, "poll: %s", strerror(errno));
	}
}

static int
set_nonblocking(int fd)
{
	int fl;

	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return -1;
	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Every write is a whole unit already (a command group, a chunk, a TLS
 * record): Nagle's algorithm could only hold a small one back until the
 * relay's ACK of the one before, a round trip or a delayed ACK lost. */
static void
no_delay(int fd)
{
	int on = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* One address: returns the connected socket, or -1 with the reason in why. */
static int
connect_one(const struct addrinfo *ai, long timeout, char *why, size_t whysz)
{
	struct deadline d;
	struct status st;
	socklen_t len;
	int fd, err;

	if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) == -1) {
		snprintf(why, whysz, "%s", errno_text(errno));
		return -1;
	}
	if (set_nonblocking(fd) == -1) {
		err = errno;
		goto fail;
	}
	no_delay(fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		err = errno;
		goto fail;
	}
	deadline_start(&d, timeout);
	if (net_wait(fd, 1, &d, &st) != EX_OK) {
		snprintf(why, whysz, "%.100s", st.text);
		close(fd);
		return -1;
	}
	len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0)
		return fd;
fail:
	snprintf(why, whysz, "%s", errno_text(err));
	close(fd);
	return -1;
}

int
net_connect(const char *host, long port, long timeout, int *fdp, char *peer, size_t peersz,
    struct status *st)
{
	struct addrinfo hints, *res, *ai;
	struct buf errs = {0};
	char service[16], addr[NI_MAXHOST], why[128];
	int fd = -1, rc;

	*fdp = -1;
	if (host == NULL || *host == '\0')
		return status_set(st, EX_CONFIG, "no server is set");
	if (port < 1 || port > 65535)
		return status_set(st, EX_CONFIG, "port %ld is not a TCP port", port);
	snprintf(service, sizeof(service), "%ld", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		return status_set(st, EX_TEMPFAIL, "cannot resolve %s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
		    NI_NUMERICHOST) != 0)
			snprintf(addr, sizeof(addr), "?");
		if ((fd = connect_one(ai, timeout, why, sizeof(why))) != -1)
			break;
		buf_printf(&errs, "%s%s %s", errs.len > 0 ? "; " : "", addr, why);
	}
	freeaddrinfo(res);
	if (fd == -1) {
		status_set(st, EX_TEMPFAIL, "cannot connect to %s port %ld: %s", host, port,
		    errs.len > 0 ? errs.s : "no address");
		buf_free(&errs);
		return EX_TEMPFAIL;
	}
	buf_free(&errs);
	snprintf(peer, peersz, "%s", addr);
	*fdp = fd;
	return EX_OK;
}

ssize_t
net_read(int fd, void *p, size_t n, const struct deadline *d, struct status *st)
{
	ssize_t r;

	for (;;) {
		if ((r = recv(fd, p, n, 0)) >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			status_set(st, EX_TEMPFAIL, "%s", errno_text(errno));
			return -1;
		}
		if (net_wait(fd, 0, d, st) != EX_OK)
			return -1;
	}
}

int
net_write(int fd, const void *p, size_t n, const struct deadline *d, struct status *st)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		if ((w = send(fd, s, n, MSG_NOSIGNAL)) >= 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return status_set(st, EX_TEMPFAIL, "%s", errno_text(errno));
		if (net_wait(fd, 1, d, st) != EX_OK)
			return EX_TEMPFAIL;
	}
	return EX_OK;
}

void
net_close(int fd)
{
	if (fd >= 0)
		close(fd);
}
