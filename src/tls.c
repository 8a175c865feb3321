/* tls.c: GnuTLS client sessions: verified chain, host name, TLS 1.2 or newer */

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "net.h"
#include "tls.h"
#include "util.h"

/* TLS 1.2 at least (SPEC §7); the rest is GnuTLS's own sane default */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct tls {
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
	int fd;
	char *host;		/* must outlive the session: GnuTLS keeps the pointer */
	bool broken;		/* an I/O error happened: no close_notify */
};

/* Our own transport functions: send() without SIGPIPE, errno handed over explicitly. */
static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const void *p, size_t n)
{
	struct tls *t = ptr;
	ssize_t w = send(t->fd, p, n, MSG_NOSIGNAL);

	if (w == -1)
		gnutls_transport_set_errno(t->session, errno);
	return w;
}

static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *p, size_t n)
{
	struct tls *t = ptr;
	ssize_t r = recv(t->fd, p, n, 0);

	if (r == -1)
		gnutls_transport_set_errno(t->session, errno);
	return r;
}

static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct tls *t = ptr;
	struct pollfd pfd;
	int n;

	pfd.fd = t->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	n = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)(ms > 600000 ? 600000 : ms));
	if (n == -1)
		gnutls_transport_set_errno(t->session, errno);
	return n;
}

static bool
is_address_literal(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* "signer unknown, expired": what the verification status says, in words */
static void
verify_reasons(unsigned int status, char *out, size_t outsz)
{
	static const struct {
		unsigned int bit;
		const char *text;
	} reasons[] = {
		{ GNUTLS_CERT_SIGNER_NOT_FOUND, "signer unknown" },
		{ GNUTLS_CERT_SIGNER_NOT_CA, "signer is not a CA" },
		{ GNUTLS_CERT_UNEXPECTED_OWNER, "issued for another name" },
		{ GNUTLS_CERT_EXPIRED, "expired" },
		{ GNUTLS_CERT_NOT_ACTIVATED, "not yet valid" },
		{ GNUTLS_CERT_REVOKED, "revoked" },
		{ GNUTLS_CERT_INSECURE_ALGORITHM, "insecure algorithm" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE, "bad signature" },
		{ GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "signer constraints violated" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH, "not for TLS servers" },
		{ GNUTLS_CERT_UNKNOWN_CRIT_EXTENSIONS, "unknown critical extension" },
	};
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if ((status & reasons[i].bit) == 0)
			continue;
		snprintf(out + len, outsz - len, "%s%s", len > 0 ? ", " : "", reasons[i].text);
		len = strlen(out);
	}
	if (len == 0)
		snprintf(out, outsz, "%s", status == (unsigned int)-1 ? "no certificate" : "invalid");
}

static int
handshake_failed(struct tls *t, int rc, struct status *st)
{
	char why[256];

	switch (rc) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		verify_reasons(gnutls_session_get_verify_cert_status(t->session), why, sizeof(why));
		return status_set(st, EX_TEMPFAIL, "certificate not trusted (%s) for %s", why, t->host);
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		return status_set(st, EX_TEMPFAIL, "TLS handshake with %s failed: the relay sent alert \"%s\"",
		    t->host, gnutls_alert_get_name(gnutls_alert_get(t->session)));
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		return status_set(st, EX_TEMPFAIL, "TLS handshake with %s failed: the connection broke",
		    t->host);
	default:
		return status_set(st, EX_TEMPFAIL, "TLS handshake with %s failed: %s", t->host,
		    gnutls_strerror(rc));
	}
}

static int
load_trust(struct tls *t, const char *ca_file, struct status *st)
{
	int rc;

	if (ca_file != NULL && *ca_file != '\0') {
		rc = gnutls_certificate_set_x509_trust_file(t->cred, ca_file, GNUTLS_X509_FMT_PEM);
		if (rc < 0)
			return status_set(st, EX_CONFIG, "tls_ca_file %s: %s", ca_file, gnutls_strerror(rc));
		if (rc == 0)
			return status_set(st, EX_CONFIG, "tls_ca_file %s holds no certificate", ca_file);
		return EX_OK;
	}
	rc = gnutls_certificate_set_x509_system_trust(t->cred);
	if (rc < 0)
		return status_set(st, EX_CONFIG, "the system trust store cannot be read: %s",
		    gnutls_strerror(rc));
	if (rc == 0)
		return status_set(st, EX_CONFIG,
		    "the system trust store is empty (install ca-certificates, or set tls_ca_file)");
	return EX_OK;
}

static int
setup(struct tls *t, const char *ca_file, struct status *st)
{
	const char *errpos;
	int rc;

	if ((rc = gnutls_certificate_allocate_credentials(&t->cred)) < 0)
		return status_set(st, EX_TEMPFAIL, "TLS setup: %s", gnutls_strerror(rc));
	if ((rc = load_trust(t, ca_file, st)) != EX_OK)
		return rc;
	if ((rc = gnutls_init(&t->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK)) < 0) {
		t->session = NULL;
		return status_set(st, EX_TEMPFAIL, "TLS setup: %s", gnutls_strerror(rc));
	}
	if ((rc = gnutls_priority_set_direct(t->session, TLS_PRIORITY, &errpos)) < 0 ||
	    (rc = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0)
		return status_set(st, EX_TEMPFAIL, "TLS setup: %s", gnutls_strerror(rc));
	if (!is_address_literal(t->host) &&
	    (rc = gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, t->host, strlen(t->host))) < 0)
		return status_set(st, EX_TEMPFAIL, "TLS setup: %s", gnutls_strerror(rc));
	gnutls_session_set_verify_cert(t->session, t->host, 0);
	gnutls_transport_set_ptr(t->session, t);
	gnutls_transport_set_push_function(t->session, tls_push);
	gnutls_transport_set_pull_function(t->session, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->session, tls_pull_timeout);
	/* the caller's deadline bounds the handshake, not GnuTLS's own clock */
	gnutls_handshake_set_timeout(t->session, 0);
	return EX_OK;
}

static void
tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	if (t->session != NULL)
		gnutls_deinit(t->session);
	if (t->cred != NULL)
		gnutls_certificate_free_credentials(t->cred);
	free(t->host);
	free(t);
}

int
tls_connect(int fd, const char *host, const char *ca_file, const struct deadline *d,
    struct tls **out, struct status *st)
{
	struct tls *t;
	struct status wst;
	int rc;

	*out = NULL;
	t = xcalloc(1, sizeof(*t));
	t->fd = fd;
	t->host = xstrdup(host);
	if ((rc = setup(t, ca_file, st)) != EX_OK) {
		tls_free(t);
		return rc;
	}
	for (;;) {
		rc = gnutls_handshake(t->session);
		if (rc == GNUTLS_E_SUCCESS)
			break;
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			if (net_wait(fd, gnutls_record_get_direction(t->session), d, &wst) != EX_OK) {
				status_set(st, EX_TEMPFAIL, "TLS handshake with %s: %s", host, wst.text);
				tls_free(t);
				return EX_TEMPFAIL;
			}
			continue;
		}
		if (gnutls_error_is_fatal(rc) || deadline_passed(d)) {
			rc = handshake_failed(t, rc, st);
			tls_free(t);
			return rc;
		}
	}
	*out = t;
	return EX_OK;
}

void
tls_describe(const struct tls *t, char *out, size_t outsz)
{
	const char *proto = gnutls_protocol_get_name(gnutls_protocol_get_version(t->session));
	const char *cipher = gnutls_cipher_get_name(gnutls_cipher_get(t->session));

	snprintf(out, outsz, "%s %s", proto != NULL ? proto : "?", cipher != NULL ? cipher : "?");
}

ssize_t
tls_read(struct tls *t, void *p, size_t n, const struct deadline *d, struct status *st)
{
	ssize_t r;

	for (;;) {
		r = gnutls_record_recv(t->session, p, n);
		if (r >= 0)
			return r;	/* 0: close_notify */
		if (r == GNUTLS_E_PREMATURE_TERMINATION) {
			t->broken = true;
			return 0;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			if (net_wait(t->fd, gnutls_record_get_direction(t->session), d, st) != EX_OK) {
				t->broken = true;
				return -1;
			}
			continue;
		}
		/* a warning alert or a renegotiation request (left unanswered) */
		if (!gnutls_error_is_fatal((int)r) && !deadline_passed(d))
			continue;
		t->broken = true;
		status_set(st, EX_TEMPFAIL, "TLS: %s", gnutls_strerror((int)r));
		return -1;
	}
}

int
tls_write(struct tls *t, const void *p, size_t n, const struct deadline *d, struct status *st)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		w = gnutls_record_send(t->session, s, n);
		if (w >= 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		/* GnuTLS wants the same buffer again after GNUTLS_E_AGAIN */
		if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
			if (net_wait(t->fd, gnutls_record_get_direction(t->session), d, st) != EX_OK) {
				t->broken = true;
				return EX_TEMPFAIL;
			}
			continue;
		}
		t->broken = true;
		return status_set(st, EX_TEMPFAIL, "TLS: %s",
		    w == GNUTLS_E_PUSH_ERROR ? "connection closed by the relay" :
		    gnutls_strerror((int)w));
	}
	return EX_OK;
}

void
tls_close(struct tls *t, const struct deadline *d)
{
	struct status st;
	int rc;

	if (t == NULL)
		return;
	while (d != NULL && !t->broken) {
		rc = gnutls_bye(t->session, GNUTLS_SHUT_WR);
		if (rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED)
			break;
		if (net_wait(t->fd, gnutls_record_get_direction(t->session), d, &st) != EX_OK)
			break;
	}
	tls_free(t);
}
