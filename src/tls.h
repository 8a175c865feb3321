/* tls.h: a verified GnuTLS client session over a non-blocking socket */
#ifndef ACSMAIL_TLS_H
#define ACSMAIL_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "net.h"
#include "status.h"

struct tls;

/* Handshakes on the connected non-blocking socket fd as a client of host:
 * TLS 1.2 or newer, SNI = host (unless it is an address literal), the chain
 * verified against ca_file (a PEM bundle) or the system trust store when
 * ca_file is NULL or "", and the certificate checked to be host's. The
 * whole handshake is bounded by d. Returns EX_OK; EX_TEMPFAIL for a failed
 * handshake or verification (st->text names the reason, e.g. "certificate
 * not trusted (signer unknown) for localhost"); EX_CONFIG when ca_file
 * cannot be used. fd stays the caller's to close. */
int tls_connect(int fd, const char *host, const char *ca_file, const struct deadline *d,
    struct tls **out, struct status *st);

/* "TLS1.3 AES-256-GCM": for the transcript */
void tls_describe(const struct tls *t, char *out, size_t outsz);

/* As net_read and net_write, through the TLS session. */
ssize_t tls_read(struct tls *t, void *p, size_t n, const struct deadline *d, struct status *st);
int tls_write(struct tls *t, const void *p, size_t n, const struct deadline *d,
    struct status *st);

/* Sends close_notify when the connection still works (bounded by d, which
 * may be NULL to skip it) and frees the session. NULL is fine. */
void tls_close(struct tls *t, const struct deadline *d);
#endif
