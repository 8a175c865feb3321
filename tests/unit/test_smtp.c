/* test_smtp.c: the SMTP client's pure parts, and sessions against a scripted relay */
/* the static functions are what is tested here, so the module is included whole */
#include "smtp.c"

#include <fcntl.h>
#include <time.h>

#include "tap.h"

/* ---- helpers ------------------------------------------------------------ */

static struct config cfg;

static void
init_config(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.server = "relay.test";
	cfg.port = 587;
	cfg.tls = TLS_STARTTLS;
	cfg.tls_ca_file = "";
	cfg.username = "user@example.com";
	cfg.timeout = 2;
}

/* A session over one end of a socketpair; the test plays the relay on the other. */
struct fake {
	struct smtp_session *s;
	int relay;		/* the relay's end */
	FILE *transcript;
};

static void
fake_open(struct fake *f, const char *script)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		perror("socketpair");
		exit(1);
	}
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	f->relay = sv[1];
	f->transcript = tmpfile();
	f->s = session_new(&cfg, f->transcript, sv[0]);
	if (script != NULL && write(f->relay, script, strlen(script)) != (ssize_t)strlen(script)) {
		perror("write");
		exit(1);
	}
}

/* what the client has written so far */
static char *
fake_wire(struct fake *f)
{
	struct buf b = {0};
	char tmp[4096];
	ssize_t n;

	while ((n = read(f->relay, tmp, sizeof(tmp))) > 0)
		buf_add(&b, tmp, (size_t)n);
	return buf_steal(&b);
}

static char *
fake_transcript(struct fake *f)
{
	struct buf b = {0};
	char tmp[4096];
	size_t n;

	rewind(f->transcript);
	while ((n = fread(tmp, 1, sizeof(tmp), f->transcript)) > 0)
		buf_add(&b, tmp, n);
	return buf_steal(&b);
}

/* closes without QUIT: the scripts hold no reply for it */
static void
fake_close(struct fake *f)
{
	if (f->s != NULL)
		f->s->usable = false;
	smtp_close(f->s);
	close(f->relay);
	fclose(f->transcript);
}

static FILE *
message(const char *text)
{
	FILE *fp = tmpfile();

	fputs(text, fp);
	rewind(fp);
	return fp;
}

static void
envelope_init(struct envelope *env, const char *sender, const char *r1, const char *r2,
    const char *r3)
{
	memset(env, 0, sizeof(*env));
	env->sender = xstrdup(sender);
	if (r1 != NULL)
		strlist_add(&env->rcpts, r1);
	if (r2 != NULL)
		strlist_add(&env->rcpts, r2);
	if (r3 != NULL)
		strlist_add(&env->rcpts, r3);
}

static bool
no_bare_cr_lf(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
			return false;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return false;
	}
	return true;
}

/* ---- replies ------------------------------------------------------------ */

static int
add(struct reply *r, const char *line)
{
	return reply_add_line(r, line, strlen(line));
}

static void
test_replies(void)
{
	struct reply r = {0};
	char many[16];
	int i, rc = REPLY_MORE;

	ok(add(&r, "250 OK") == REPLY_DONE && r.code == 250, "one-line reply");
	is_str(r.line, "250 OK", "its text");

	reply_reset(&r);
	ok(add(&r, "250-relay.test Hello") == REPLY_MORE, "continuation line");
	ok(add(&r, "250-SIZE 1000") == REPLY_MORE, "second continuation");
	ok(add(&r, "250 PIPELINING") == REPLY_DONE, "last line of a multi-line reply");
	ok(r.nlines == 3 && r.code == 250, "three lines, code 250");
	is_str(r.text.s, "relay.test Hello\nSIZE 1000\nPIPELINING\n", "the lines' text");

	reply_reset(&r);
	add(&r, "550-5.7.1 first part");
	add(&r, "550 5.7.1 second part");
	is_str(r.line, "550 5.7.1 first part 5.7.1 second part",
	    "a multi-line reply becomes one line, enhanced codes kept");

	reply_reset(&r);
	ok(add(&r, "250") == REPLY_DONE && r.code == 250, "a bare code is a final line");
	reply_reset(&r);
	ok(add(&r, "250-") == REPLY_MORE, "an empty continuation line");

	reply_reset(&r);
	ok(add(&r, "hello") == REPLY_BAD, "garbage is refused");
	reply_reset(&r);
	ok(add(&r, "25") == REPLY_BAD, "a short line is refused");
	reply_reset(&r);
	ok(add(&r, "2500 x") == REPLY_BAD, "four digits are refused");
	reply_reset(&r);
	ok(add(&r, "250x") == REPLY_BAD, "a code not followed by space or dash");
	reply_reset(&r);
	ok(add(&r, "199 x") == REPLY_BAD && (reply_reset(&r), add(&r, "650 x")) == REPLY_BAD,
	    "codes outside 2xx-5xx");
	reply_reset(&r);
	add(&r, "250-a");
	ok(add(&r, "251 b") == REPLY_BAD, "a continuation with another code");

	reply_reset(&r);
	add(&r, "250 a\x1b[31m\x01");
	is_str(r.line, "250 a?[31m?", "control characters in a reply are masked");

	reply_reset(&r);
	for (i = 0; i < 200 && rc == REPLY_MORE; i++) {
		snprintf(many, sizeof(many), "250-x%d", i);
		rc = add(&r, many);
	}
	ok(rc == REPLY_BAD && i <= REPLY_MAX_LINES + 1, "an endless reply is cut off (%d lines)", i);
	reply_free(&r);
}

/* ---- capabilities -------------------------------------------------------- */

static void
test_caps(void)
{
	struct caps c = {0};

	caps_parse(&c, "relay.test Hello [127.0.0.1]\nSIZE 36700160\nPIPELINING\n"
	    "DSN\nENHANCEDSTATUSCODES\nauth login plain\n8BITMIME\nBINARYMIME\nCHUNKING\n"
	    "SMTPUTF8\nSTARTTLS\n");
	is_str(caps_get(&c, "SIZE"), "36700160", "SIZE and its parameter");
	ok(caps_size_limit(&c) == 36700160ULL, "SIZE limit as a number");
	is_str(caps_get(&c, "pipelining"), "", "keywords match without case");
	ok(caps_get(&c, "8BITMIME") && caps_get(&c, "CHUNKING") && caps_get(&c, "SMTPUTF8") &&
	    caps_get(&c, "DSN") && caps_get(&c, "STARTTLS"), "the other keywords");
	ok(caps_get(&c, "RELAY.TEST") == NULL && caps_get(&c, "HELLO") == NULL,
	    "the greeting line is not a capability");
	is_str(caps_get(&c, "AUTH"), "login plain", "AUTH mechanisms");
	ok(word_in(caps_get(&c, "AUTH"), "LOGIN") && word_in(caps_get(&c, "AUTH"), "PLAIN"),
	    "LOGIN and PLAIN found in the list");
	ok(!word_in(caps_get(&c, "AUTH"), "LOG") && !word_in(caps_get(&c, "AUTH"), "XOAUTH2"),
	    "no partial or absent mechanism");
	ok(caps_get(&c, "XOAUTH2") == NULL, "an absent keyword");

	caps_parse(&c, "relay.test\nAUTH LOGIN XOAUTH2\nSIZE\n");
	ok(caps_get(&c, "STARTTLS") == NULL, "a new EHLO replaces the old list");
	ok(word_in(caps_get(&c, "AUTH"), "LOGIN") && !word_in(caps_get(&c, "AUTH"), "PLAIN"),
	    "ACS-style AUTH LOGIN XOAUTH2");
	ok(caps_get(&c, "SIZE") != NULL && caps_size_limit(&c) == 0, "SIZE without a limit");

	caps_parse(&c, "relay.test\nAUTH=LOGIN\nSIZE abc\n  PIPELINING  \n-bad\n");
	is_str(caps_get(&c, "AUTH"), "LOGIN", "the old AUTH=LOGIN spelling");
	ok(caps_size_limit(&c) == 0, "a SIZE that is not a number means no limit");
	is_str(caps_get(&c, "PIPELINING"), "", "spaces around a keyword");
	ok(c.kw.n == 3, "a line that is not a keyword is skipped");
	caps_parse(&c, "relay.test\nSIZE 99999999999999999999999\n");
	ok(caps_size_limit(&c) == 0, "an overflowing SIZE means no limit");
	caps_free(&c);
}

/* ---- encodings ----------------------------------------------------------- */

static void
b64(const char *in, size_t n, const char *want)
{
	struct buf b = {0};

	base64_encode((const unsigned char *)in, n, &b);
	is_str(b.s, want, "base64 of %zu octets", n);
	buf_free(&b);
}

static void
xtext(const char *in, const char *want)
{
	struct buf b = {0};

	xtext_encode(in, &b);
	is_str(b.s, want, "xtext of \"%s\"", in);
	buf_free(&b);
}

static void
test_encodings(void)
{
	char *v;

	b64("", 0, "");
	b64("f", 1, "Zg==");
	b64("fo", 2, "Zm8=");
	b64("foo", 3, "Zm9v");
	b64("foob", 4, "Zm9vYg==");
	b64("fooba", 5, "Zm9vYmE=");
	b64("foobar", 6, "Zm9vYmFy");
	b64("\0user\0pass", 10, "AHVzZXIAcGFzcw==");
	b64("\xff\xfe\x80", 3, "//6A");

	xtext("abc123", "abc123");
	xtext("a+b=c d", "a+2Bb+3Dc+20d");
	xtext("\x01\xc3\xa9~!", "+01+C3+A9~!");

	is_str(v = dsn_notify_value("success,failure"), "SUCCESS,FAILURE", "NOTIFY list");
	free(v);
	is_str(v = dsn_notify_value("never"), "NEVER", "NOTIFY=NEVER");
	free(v);
	ok(dsn_notify_value("never,success") == NULL, "NEVER with others is invalid");
	ok(dsn_notify_value("bogus") == NULL && dsn_notify_value("") == NULL &&
	    dsn_notify_value(NULL) == NULL, "invalid NOTIFY values");
	ok(dsn_notify_value("delay\r\nRSET") == NULL, "NOTIFY with CR LF is invalid");
}

/* ---- dot-stuffing -------------------------------------------------------- */

static void
stuff(const char *in, const char *want, const char *what)
{
	struct dotstuff d;
	struct buf out = {0};

	dotstuff_init(&d);
	dotstuff_feed(&d, in, strlen(in), &out);
	dotstuff_end(&d, &out);
	is_str(out.s, want, "%s", what);
	ok(d.octets == out.len, "octets counted for: %s", what);
	buf_free(&out);
}

static void
test_dotstuff(void)
{
	struct dotstuff d;
	struct buf out = {0}, want = {0};
	char chunk[BODY_CHUNK];
	FILE *fp;
	size_t n, i;

	stuff("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n", "a leading dot is doubled");
	stuff(".\r\n", "..\r\n.\r\n", "a line holding only a dot");
	stuff("a.b\r\n", "a.b\r\n.\r\n", "a dot inside a line stays");
	stuff("a", "a\r\n.\r\n", "a last line without line end gets CRLF");
	stuff("", ".\r\n", "an empty message");
	stuff("a\nb\n", "a\r\nb\r\n.\r\n", "bare LF becomes CRLF");
	stuff("a\rb", "a\r\nb\r\n.\r\n", "bare CR becomes CRLF");
	stuff("a\r\r\n.x", "a\r\n\r\n..x\r\n.\r\n", "CR CR LF; dot after it");
	stuff("a\r", "a\r\n.\r\n", "a trailing CR");

	dotstuff_init(&d);
	dotstuff_feed(&d, "a\r", 2, &out);
	dotstuff_feed(&d, "\n.b", 3, &out);
	dotstuff_end(&d, &out);
	is_str(out.s, "a\r\n..b\r\n.\r\n", "CRLF split between two reads");
	buf_reset(&out);

	/* a file read in chunks, with dots at the chunk boundaries */
	fp = tmpfile();
	for (i = 0; i < 3000; i++) {
		const char *line = i % 3 == 0 ? ".dot line\r\n" : i % 3 == 1 ? "plain\n" : "..two\r\n";

		fputs(line, fp);
		buf_adds(&want, i % 3 == 0 ? "..dot line\r\n" : i % 3 == 1 ? "plain\r\n" : "...two\r\n");
	}
	buf_adds(&want, ".\r\n");
	rewind(fp);
	dotstuff_init(&d);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		dotstuff_feed(&d, chunk, n, &out);
	dotstuff_end(&d, &out);
	ok(out.len == want.len && memcmp(out.s, want.s, out.len) == 0,
	    "a %zu-octet file read in chunks is stuffed right", want.len);
	ok(no_bare_cr_lf(out.s, out.len), "no bare CR or LF in the output");
	fclose(fp);
	buf_free(&out);
	buf_free(&want);
}

/* ---- hints --------------------------------------------------------------- */

static bool
hint_has(const char *reply, const char *word)
{
	const char *h = smtp_hint(reply);

	return h != NULL && strstr(h, word) != NULL;
}

static void
test_hints(void)
{
	ok(hint_has("530 5.7.57 Client not authenticated to send mail.", "AUTH"),
	    "530 5.7.57: authenticate first");
	ok(hint_has("sender refused: MAIL FROM:<a@b>: 530 5.7.57 Client not authenticated", "AUTH"),
	    "530 on MAIL FROM is about AUTH, not the sender");
	ok(hint_has("AUTH LOGIN refused by x: 535 5.7.3 Authentication unsuccessful",
	    "Communication and Email Service Owner"), "535 5.7.3: the role");
	ok(hint_has("535 5.7.3 Authentication unsuccessful", "secret"), "535: the secret");
	ok(hint_has("535 5.7.3 Authentication unsuccessful", "username form"), "535: the username");
	ok(hint_has("MAIL FROM:<a@b> deferred: 450 4.5.127 Message rejected. Excessive message rate "
	    "from sender.", "rate_per_minute"), "450 4.5.127: the rate limit");
	ok(hint_has("sender refused: MAIL FROM:<root@host>: 550 5.7.1 Not allowed", "MailFrom"),
	    "refused sender");
	ok(hint_has("550 5.7.60 SMTP; Client does not have permissions to send as this sender",
	    "allowed_from"), "Exchange's send-as refusal");
	ok(hint_has("certificate not trusted (signer unknown) for localhost", "tls_ca_file"),
	    "untrusted certificate");
	ok(hint_has("relay.test does not offer STARTTLS; nothing was sent", "STARTTLS"),
	    "missing STARTTLS");
	ok(hint_has("STARTTLS refused: 454 4.7.0 TLS not available", "STARTTLS"), "refused STARTTLS");
	ok(smtp_hint("250 2.0.0 OK") == NULL && smtp_hint(NULL) == NULL && smtp_hint("") == NULL,
	    "no hint for success or nothing");
	ok(smtp_hint("550 5.1.1 <x@y>: Recipient address rejected: User unknown") == NULL,
	    "no sender hint for a refused recipient");
	ok(smtp_hint("250 id 5350 queued") == NULL, "535 must be a code, not part of a number");
}

/* ---- opening a session --------------------------------------------------- */

static void
test_open_steps(void)
{
	struct fake f;
	struct status st;
	char *wire, *tr;
	int rc;

	status_clear(&st);
	fake_open(&f, "220 relay.test ESMTP\r\n250-relay.test\r\n250-AUTH LOGIN\r\n250 SIZE 100\r\n");
	rc = session_start(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	ok(rc == EX_TEMPFAIL, "no STARTTLS offered: temporary failure");
	ok(strstr(st.text, "does not offer STARTTLS") != NULL, "and says so: %s", st.text);
	is_str(wire, "EHLO localhost\r\n", "nothing but EHLO was sent, certainly not AUTH");
	ok(!smtp_usable(f.s), "the session is not usable");
	free(wire);
	fake_close(&f);

	fake_open(&f, "220 relay.test\r\n250-relay.test\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n");
	rc = session_start(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	ok(rc == EX_TEMPFAIL && strstr(st.text, "STARTTLS refused: 454 4.7.0") != NULL,
	    "STARTTLS refused: temporary failure (%s)", st.text);
	is_str(wire, "EHLO localhost\r\nSTARTTLS\r\n", "nothing sent after the refusal");
	free(wire);
	fake_close(&f);

	fake_open(&f, "220 relay.test\r\n250-relay.test\r\n250 STARTTLS\r\n220 go ahead\r\n250 AUTH PLAIN\r\n");
	rc = session_start(f.s, "s3cret", &st);
	ok(rc == EX_TEMPFAIL && strstr(st.text, "after its STARTTLS reply") != NULL,
	    "plaintext sent after the STARTTLS reply is refused (%s)", st.text);
	fake_close(&f);

	fake_open(&f, "554 5.3.2 go away\r\n");
	rc = session_start(f.s, "s3cret", &st);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "554 5.3.2 go away") != NULL,
	    "554 greeting: permanent (%s)", st.text);
	fake_close(&f);

	fake_open(&f, "421 4.3.2 busy\r\n");
	rc = session_start(f.s, "s3cret", &st);
	ok(rc == EX_TEMPFAIL, "421 greeting: temporary");
	fake_close(&f);

	fake_open(&f, "220 old relay\r\n500 what\r\n250 old relay\r\n");
	rc = session_start(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	is_str(wire, "EHLO localhost\r\nHELO localhost\r\n", "EHLO refused: HELO");
	ok(rc == EX_TEMPFAIL && strstr(st.text, "STARTTLS") != NULL,
	    "and without STARTTLS it stops there");
	free(wire);
	fake_close(&f);

	/* a relay that stops talking: the step ends at the timeout */
	{
		time_t t0 = time(NULL);

		cfg.timeout = 1;
		fake_open(&f, "220 relay.test wait");
		rc = session_start(f.s, "s3cret", &st);
		ok(rc == EX_TEMPFAIL && strstr(st.text, "timed out after 1 s") != NULL,
		    "a silent relay times out (%s)", st.text);
		ok(time(NULL) - t0 <= 3, "within the timeout");
		fake_close(&f);
		cfg.timeout = 2;
	}

	{
		char longline[3100];

		memset(longline, 'x', sizeof(longline));
		memcpy(longline, "220 ", 4);
		memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
		fake_open(&f, longline);
		rc = session_start(f.s, "s3cret", &st);
		ok(rc == EX_TEMPFAIL && strstr(st.text, "longer than") != NULL,
		    "an overlong reply line (%s)", st.text);
		fake_close(&f);
	}

	fake_open(&f, "220 relay.test\r\n250-relay.test\r\n250 STARTTLS\r\n");
	shutdown(f.relay, SHUT_WR);
	rc = session_start(f.s, "s3cret", &st);
	ok(rc == EX_TEMPFAIL && strstr(st.text, "connection closed") != NULL,
	    "a relay hanging up (%s)", st.text);
	fake_close(&f);

	/* the transcript */
	fake_open(&f, "220 relay.test\r\n250-relay.test\r\n250 SIZE\r\n");
	session_start(f.s, "s3cret", &st);
	tr = fake_transcript(&f);
	ok(strstr(tr, "<- 220 relay.test\n") != NULL && strstr(tr, "-> EHLO localhost\n") != NULL &&
	    strstr(tr, "<- 250-relay.test\n") != NULL && strstr(tr, "<- 250 SIZE\n") != NULL,
	    "the transcript shows both directions");
	free(tr);
	fake_close(&f);
}

static void
test_auth(void)
{
	struct fake f;
	struct status st;
	char *wire, *tr;
	int rc;

	/* base64: user@example.com = dXNlckBleGFtcGxlLmNvbQ==, s3cret = czNjcmV0 */
	fake_open(&f, "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH LOGIN PLAIN\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	tr = fake_transcript(&f);
	ok(rc == EX_OK, "AUTH LOGIN with the username as initial response accepted");
	is_str(wire, "AUTH LOGIN dXNlckBleGFtcGxlLmNvbQ==\r\nczNjcmV0\r\n",
	    "LOGIN preferred to PLAIN; username and secret in base64, two round trips");
	ok(strstr(tr, "s3cret") == NULL && strstr(tr, "czNjcmV0") == NULL,
	    "the secret is not in the transcript, not even in base64");
	ok(strstr(tr, "dXNl") == NULL && strstr(tr, "user@example.com") == NULL,
	    "nor the username");
	ok(strstr(tr, "-> AUTH LOGIN ***\n") != NULL && strstr(tr, "-> ***\n") != NULL,
	    "the transcript shows *** instead");
	ok(strstr((char *)f.s->wbuf.s, "czNj") == NULL && strstr((char *)f.s->wbuf.s, "dXNl") == NULL,
	    "the write buffer was wiped");
	free(wire);
	free(tr);
	fake_close(&f);

	/* a relay that does not take the initial response: the classic three steps */
	fake_open(&f, "504 5.7.4 Unrecognized authentication type\r\n334 VXNlcm5hbWU6\r\n"
	    "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH LOGIN\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	tr = fake_transcript(&f);
	ok(rc == EX_OK, "504 to the initial response: AUTH LOGIN again without it");
	is_str(wire, "AUTH LOGIN dXNlckBleGFtcGxlLmNvbQ==\r\nAUTH LOGIN\r\n"
	    "dXNlckBleGFtcGxlLmNvbQ==\r\nczNjcmV0\r\n", "then username and secret, one each");
	ok(strstr(tr, "-> AUTH LOGIN\n") != NULL && strstr(tr, "s3cret") == NULL &&
	    strstr(tr, "czNj") == NULL && strstr(tr, "dXNl") == NULL, "the fallback's transcript");
	free(wire);
	free(tr);
	fake_close(&f);

	fake_open(&f, "501 5.5.2 Cannot Base64-decode\r\n334 VXNlcm5hbWU6\r\n"
	    "334 UGFzc3dvcmQ6\r\n235 2.7.0 ok\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH LOGIN\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK && strstr(wire, "\r\nAUTH LOGIN\r\n") != NULL, "the same after a 501");
	free(wire);
	fake_close(&f);

	/* a relay that ignores the initial response and asks for the username */
	fake_open(&f, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.3 Authentication unsuccessful\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH LOGIN\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	is_str(wire, "AUTH LOGIN dXNlckBleGFtcGxlLmNvbQ==\r\ndXNlckBleGFtcGxlLmNvbQ==\r\n"
	    "czNjcmV0\r\n", "asked for the username again: the username, not the secret");
	ok(rc == EX_TEMPFAIL && strstr(st.text, "535 5.7.3 Authentication unsuccessful") != NULL,
	    "535: temporary, with the relay's text (%s)", st.text);
	ok(strstr(st.text, "s3cret") == NULL, "no secret in the status");
	free(wire);
	fake_close(&f);

	fake_open(&f, "334 UGFzc3dvcmQ6\r\n535 5.7.3 Authentication unsuccessful\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH LOGIN\n");
	rc = authenticate(f.s, "s3cret", &st);
	ok(rc == EX_TEMPFAIL && strstr(st.text, "535") != NULL, "535 after the initial response");
	fake_close(&f);

	fake_open(&f, "504 5.7.4 Unrecognized authentication type\r\n"
	    "504 5.7.4 Unrecognized authentication type\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH LOGIN\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "504 5.7.4") != NULL,
	    "504 to both forms of AUTH LOGIN: permanent (%s)", st.text);
	is_str(wire, "AUTH LOGIN dXNlckBleGFtcGxlLmNvbQ==\r\nAUTH LOGIN\r\n",
	    "and no secret was sent");
	free(wire);
	fake_close(&f);

	fake_open(&f, "235 2.7.0 ok\r\n");
	caps_parse(&f.s->caps, "relay.test\nAUTH PLAIN CRAM-MD5\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	tr = fake_transcript(&f);
	ok(rc == EX_OK, "AUTH PLAIN where LOGIN is not offered");
	is_str(wire, "AUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20AczNjcmV0\r\n", "PLAIN's initial response");
	ok(strstr(tr, "-> AUTH PLAIN ***") != NULL && strstr(tr, "AHVz") == NULL,
	    "PLAIN's response is hidden");
	free(wire);
	free(tr);
	fake_close(&f);

	fake_open(&f, NULL);
	caps_parse(&f.s->caps, "relay.test\nAUTH XOAUTH2 CRAM-MD5\n");
	rc = authenticate(f.s, "s3cret", &st);
	wire = fake_wire(&f);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "XOAUTH2") != NULL,
	    "no usable mechanism: says which were offered (%s)", st.text);
	is_str(wire, "", "and sends nothing");
	free(wire);
	caps_parse(&f.s->caps, "relay.test\nSIZE\n");
	ok(authenticate(f.s, "s3cret", &st) == EX_UNAVAILABLE, "no AUTH at all");
	ok(authenticate(f.s, "", &st) == EX_CONFIG, "no secret: a config problem");
	fake_close(&f);
}

/* ---- transactions -------------------------------------------------------- */

static void
test_send_pipelined(void)
{
	struct rcpt_result rr[3];
	struct smtp_result res;
	struct envelope env;
	struct status st;
	struct fake f;
	char *wire;
	FILE *msg;
	int rc;

	fake_open(&f, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n"
	    "354 go ahead\r\n250 2.0.0 OK <id@relay>\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nSIZE 1000000\nDSN\n8BITMIME\n");
	envelope_init(&env, "DoNotReply@example.com", "a@x.test", "b@x.test", "c@x.test");
	env.dsn_notify = xstrdup("failure,delay");
	env.dsn_ret = xstrdup("hdrs");
	env.dsn_envid = xstrdup("id+1");
	msg = message("Subject: x\r\n\r\n.hidden\r\nbody");
	rc = smtp_send(f.s, &env, msg, 31, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK, "accepted for two of three recipients (%s)", st.text);
	is_str(wire,
	    "MAIL FROM:<DoNotReply@example.com> SIZE=31 RET=HDRS ENVID=id+2B1\r\n"
	    "RCPT TO:<a@x.test> NOTIFY=FAILURE,DELAY\r\n"
	    "RCPT TO:<b@x.test> NOTIFY=FAILURE,DELAY\r\n"
	    "RCPT TO:<c@x.test> NOTIFY=FAILURE,DELAY\r\n"
	    "DATA\r\n"
	    "Subject: x\r\n\r\n..hidden\r\nbody\r\n.\r\n",
	    "pipelined envelope, DSN parameters, dot-stuffed body");
	ok(rr[0].reply_code == 250 && strcmp(rr[0].reply, "250 2.0.0 OK <id@relay>") == 0,
	    "an accepted recipient gets the final reply");
	ok(rr[1].reply_code == 550 && strcmp(rr[1].reply, "550 5.1.1 no such user") == 0,
	    "the refused recipient keeps its RCPT reply");
	ok(res.reply_code == 250 && strcmp(res.reply, "250 2.0.0 OK <id@relay>") == 0 &&
	    !res.after_dot, "the transaction's final reply");
	ok(smtp_usable(f.s), "the session stays usable");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* MAIL refused under pipelining: the RCPT replies are read, nothing recorded, RSET */
	fake_open(&f, "550 5.7.1 sender not allowed\r\n503 5.5.1 need MAIL\r\n554 5.5.1 no valid "
	    "recipients\r\n250 2.0.0 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\n");
	envelope_init(&env, "root@host.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "sender refused") != NULL,
	    "refused sender: permanent (%s)", st.text);
	ok(rr[0].reply_code == 0, "the recipient was not reached");
	ok(strstr(wire, "RSET\r\n") != NULL && smtp_usable(f.s), "RSET, and the session is usable");
	ok(hint_has(st.text, "MailFrom"), "with the sender hint");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);
}

static void
test_send_stepwise(void)
{
	struct rcpt_result rr[3];
	struct smtp_result res;
	struct envelope env;
	struct status st;
	struct fake f;
	char *wire;
	FILE *msg;
	int rc;

	/* every recipient refused with 5xx: EX_NOUSER, no DATA, RSET */
	fake_open(&f, "250 ok\r\n550 5.1.1 no\r\n553 5.1.3 bad\r\n250 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\n8BITMIME\n");
	envelope_init(&env, "", "a@x.test", "b@x.test", NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_NOUSER, "every recipient refused: EX_NOUSER (%s)", st.text);
	is_str(wire, "MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRSET\r\n",
	    "one by one without PIPELINING; null sender; RSET instead of DATA");
	ok(rr[0].reply_code == 550 && rr[1].reply_code == 553, "each recipient's code");
	ok(smtp_usable(f.s), "usable after RSET");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* one 4xx among the refusals: worth retrying */
	fake_open(&f, "250 ok\r\n450 4.2.1 later\r\n550 5.1.1 no\r\n250 reset\r\n");
	envelope_init(&env, "s@x.test", "a@x.test", "b@x.test", NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_TEMPFAIL, "a 4xx refusal makes it temporary");
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* 8-bit message, 8BITMIME offered */
	fake_open(&f, "250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 OK\r\n");
	caps_parse(&f.s->caps, "relay.test\n8BITMIME\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	env.eightbit = true;
	msg = message("Subject: x\r\n\r\nh\xc3\xa9\r\n");
	rc = smtp_send(f.s, &env, msg, 21, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK && strstr(wire, "MAIL FROM:<s@x.test> BODY=8BITMIME\r\n") != NULL,
	    "BODY=8BITMIME when offered");
	ok(strstr(wire, "h\xc3\xa9\r\n") != NULL, "and the body goes as it is");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* 8-bit message, no 8BITMIME: the quoted-printable copy goes */
	fake_open(&f, "250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 OK\r\n");
	caps_parse(&f.s->caps, "relay.test\nSIZE 100000\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	env.eightbit = true;
	msg = message("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\nSubject: x\r\n\r\nh\xc3\xa9\r\n");
	rc = smtp_send(f.s, &env, msg, 120, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK, "downgraded message sent (%s)", st.text);
	ok(strstr(wire, "BODY=8BITMIME") == NULL && str_is_ascii(wire),
	    "no BODY=8BITMIME and no 8-bit octet on the wire");
	ok(strstr(wire, "=C3=A9") != NULL, "the body is quoted-printable");
	ok(no_bare_cr_lf(wire, strlen(wire)), "no bare CR or LF");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);
}

static void
test_send_refusals(void)
{
	struct rcpt_result rr[3];
	struct smtp_result res;
	struct envelope env;
	struct status st;
	struct fake f;
	char *wire;
	FILE *msg;
	int rc;

	fake_open(&f, NULL);
	caps_parse(&f.s->caps, "relay.test\nSIZE 1000\nPIPELINING\n");
	msg = message("x\r\n");

	envelope_init(&env, "s@x.test", "a@x.test\r\nRCPT TO:<evil@x.test>", NULL, NULL);
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_DATAERR, "CR LF in a recipient: refused (%s)", st.text);
	envelope_free(&env);

	envelope_init(&env, "s@x.test> SIZE=1", "a@x.test", NULL, NULL);
	ok(smtp_send(f.s, &env, msg, 3, rr, &res, &st) == EX_DATAERR, "'>' in the sender: refused");
	envelope_free(&env);

	envelope_init(&env, "s\x01@x.test", "a@x.test", NULL, NULL);
	ok(smtp_send(f.s, &env, msg, 3, rr, &res, &st) == EX_DATAERR, "a control character: refused");
	envelope_free(&env);

	envelope_init(&env, "s@x.test", "", NULL, NULL);
	ok(smtp_send(f.s, &env, msg, 3, rr, &res, &st) == EX_DATAERR, "an empty recipient");
	envelope_free(&env);

	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	rc = smtp_send(f.s, &env, msg, 5000, rr, &res, &st);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "message size 5000 exceeds the relay's limit 1000"),
	    "over the SIZE limit: refused before sending (%s)", st.text);
	envelope_free(&env);

	envelope_init(&env, "s@x.test", "j\xc3\xbcrgen@x.test", NULL, NULL);
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "SMTPUTF8") != NULL,
	    "non-ASCII address without SMTPUTF8 (%s)", st.text);
	envelope_free(&env);

	wire = fake_wire(&f);
	is_str(wire, "", "none of them sent anything");
	ok(smtp_usable(f.s), "and the session is still usable");
	free(wire);

	/* SMTPUTF8 offered: the parameter goes out */
	if (write(f.relay, "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n", 32) != 32)
		exit(1);
	caps_parse(&f.s->caps, "relay.test\nSMTPUTF8\nPIPELINING\n");
	envelope_init(&env, "s@x.test", "j\xc3\xbcrgen@x.test", NULL, NULL);
	env.smtputf8 = true;
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK && strstr(wire, "MAIL FROM:<s@x.test> SMTPUTF8\r\n") != NULL,
	    "SMTPUTF8 when needed and offered (%s)", st.text);
	free(wire);
	envelope_free(&env);
	fclose(msg);
	fake_close(&f);

	/* the connection breaks after the final dot */
	fake_open(&f, "250 ok\r\n250 ok\r\n354 go\r\n");
	shutdown(f.relay, SHUT_WR);
	caps_parse(&f.s->caps, "relay.test\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_TEMPFAIL && res.after_dot && !smtp_usable(f.s),
	    "lost after the dot: temporary, after_dot, unusable (%s)", st.text);
	ok(smtp_send(f.s, &env, msg, 3, rr, &res, &st) == EX_TEMPFAIL, "a broken session refuses more");
	envelope_free(&env);
	fclose(msg);
	fake_close(&f);

	/* the connection breaks before the dot */
	fake_open(&f, "250 ok\r\n");
	shutdown(f.relay, SHUT_WR);
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_TEMPFAIL && !res.after_dot && !smtp_usable(f.s),
	    "lost during the envelope: not after_dot (%s)", st.text);
	envelope_free(&env);
	fclose(msg);
	fake_close(&f);

	/* the message itself refused after the dot */
	fake_open(&f, "250 ok\r\n250 ok\r\n354 go\r\n554 5.6.0 message refused\r\n250 2.0.0 bye\r\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_UNAVAILABLE && res.reply_code == 554 && rr[0].reply_code == 554,
	    "554 after the dot: permanent, recorded for the recipient");
	ok(smtp_usable(f.s), "and the session stays usable");
	envelope_free(&env);
	fclose(msg);
	smtp_close(f.s);
	wire = fake_wire(&f);
	ok(strstr(wire, "QUIT\r\n") != NULL, "smtp_close says QUIT");
	free(wire);
	f.s = NULL;
	fake_close(&f);

	/* 450 4.5.127 on MAIL FROM: temporary, with the rate-limit hint */
	fake_open(&f, "450 4.5.127 Message rejected. Excessive message rate from sender.\r\n"
	    "250 reset\r\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_TEMPFAIL && hint_has(st.text, "rate_per_minute"),
	    "throttled: temporary, rate hint (%s)", st.text);
	envelope_free(&env);
	fclose(msg);
	fake_close(&f);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
test_quit(void)
{
	struct fake f;
	char *wire, *tr;
	double t0;

	/* a relay that never answers QUIT: smtp_close does not wait for it */
	fake_open(&f, NULL);
	t0 = now();
	smtp_close(f.s);
	f.s = NULL;
	ok(now() - t0 < 0.5, "smtp_close returns at once (%.3f s, timeout %ld s)", now() - t0,
	    cfg.timeout);
	wire = fake_wire(&f);
	tr = fake_transcript(&f);
	is_str(wire, "QUIT\r\n", "QUIT was sent");
	ok(strstr(tr, "-> QUIT\n") != NULL && strstr(tr, "<-") == NULL,
	    "the transcript shows QUIT and no reply");
	{
		char c;

		ok(read(f.relay, &c, 1) == 0, "and the connection is closed");
	}
	free(wire);
	free(tr);
	fake_close(&f);

	/* an unusable session sends nothing */
	fake_open(&f, NULL);
	f.s->usable = false;
	smtp_close(f.s);
	f.s = NULL;
	wire = fake_wire(&f);
	is_str(wire, "", "no QUIT on a broken session");
	free(wire);
	fake_close(&f);
}

/* ---- BDAT ---------------------------------------------------------------- */

static void
test_chunker(void)
{
	struct chunker c;
	struct buf all = {0}, want = {0};
	size_t i, chunks = 0, sizes_ok = 0;
	FILE *fp;

	fp = message("ab\r\ncd");
	chunker_init(&c, fp, 3);
	ok(chunker_next(&c) == 0 && c.len == 3 && !c.last && memcmp(c.buf.s, "ab\r", 3) == 0,
	    "a chunk may end between CR and LF");
	ok(chunker_next(&c) == 0 && c.len == 5 && c.last && memcmp(c.buf.s, "\ncd\r\n", 5) == 0,
	    "the last chunk ends the open line");
	chunker_free(&c);
	fclose(fp);

	fp = message("");
	chunker_init(&c, fp, 3);
	ok(chunker_next(&c) == 0 && c.len == 0 && c.last, "an empty message: one empty LAST chunk");
	chunker_free(&c);
	fclose(fp);

	fp = message("abc\r\n");
	chunker_init(&c, fp, 5);
	ok(chunker_next(&c) == 0 && c.len == 5 && c.last,
	    "a message of exactly one chunk is one LAST chunk, no empty one after it");
	chunker_free(&c);
	fclose(fp);

	/* bare LF and CR, leading dots (not doubled), chunks across reads */
	fp = tmpfile();
	for (i = 0; i < 3000; i++) {
		fputs(i % 3 == 0 ? ".dot\n" : i % 3 == 1 ? "plain\r" : "crlf\r\n", fp);
		buf_adds(&want, i % 3 == 0 ? ".dot\r\n" : i % 3 == 1 ? "plain\r\n" : "crlf\r\n");
	}
	fputs("tail", fp);
	buf_adds(&want, "tail\r\n");
	rewind(fp);
	chunker_init(&c, fp, 1000);
	do {
		if (chunker_next(&c) != 0)
			break;
		chunks++;
		sizes_ok += c.last || c.len == 1000;
		buf_add(&all, c.buf.s, c.len);
	} while (!c.last);
	ok(all.len == want.len && memcmp(all.s, want.s, want.len) == 0,
	    "the chunks make up the message with CRLF line ends, dots as they are (%zu octets)",
	    all.len);
	ok(chunks == (want.len + 999) / 1000 && sizes_ok == chunks,
	    "%zu chunks of 1000 octets but the last", chunks);
	chunker_free(&c);
	fclose(fp);
	buf_free(&all);
	buf_free(&want);
}

/* Parses "BDAT n [LAST]\r\n" + n octets from *p; the chunk's octets go to body. */
static bool
parse_bdat(const char **p, const char *end, struct buf *body, bool *last)
{
	unsigned long n;
	char *e;

	if (end - *p < 6 || strncmp(*p, "BDAT ", 5) != 0)
		return false;
	n = strtoul(*p + 5, &e, 10);
	*last = strncmp(e, " LAST\r\n", 7) == 0;
	if (*last)
		e += 7;
	else if (strncmp(e, "\r\n", 2) == 0)
		e += 2;
	else
		return false;
	if ((unsigned long)(end - e) < n)
		return false;
	buf_add(body, e, n);
	*p = e + n;
	return true;
}

static void
test_send_bdat(void)
{
	struct rcpt_result rr[3];
	struct smtp_result res;
	struct envelope env;
	struct status st;
	struct fake f;
	char *wire, *tr;
	FILE *msg;
	int rc;

	/* one chunk, pipelined with the envelope: no dot-stuffing, CRLF only */
	fake_open(&f, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 OK <id@relay>\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nSIZE 1000000\n8BITMIME\nCHUNKING\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	env.eightbit = true;
	msg = message("Subject: x\r\n\r\n.hidden\nh\xc3\xa9\r\n.\r\nbody");
	rc = smtp_send(f.s, &env, msg, 34, rr, &res, &st);
	wire = fake_wire(&f);
	tr = fake_transcript(&f);
	ok(rc == EX_OK, "BDAT: accepted (%s)", st.text);
	is_str(wire,
	    "MAIL FROM:<s@x.test> SIZE=34 BODY=8BITMIME\r\n"
	    "RCPT TO:<a@x.test>\r\n"
	    "BDAT 37 LAST\r\n"
	    "Subject: x\r\n\r\n.hidden\r\nh\xc3\xa9\r\n.\r\nbody\r\n",
	    "envelope and BDAT n LAST in one go; the count is what went out");
	ok(strstr(wire, "DATA") == NULL, "no DATA");
	ok(rr[0].reply_code == 250 && strcmp(rr[0].reply, "250 2.0.0 OK <id@relay>") == 0,
	    "the recipient gets the final reply");
	ok(res.reply_code == 250 && !res.after_dot && smtp_usable(f.s), "the final reply; usable");
	ok(strstr(tr, "-> BDAT 37 LAST\n-> (37 octets of message)\n") != NULL,
	    "the transcript shows the chunk, not its octets");
	free(wire);
	free(tr);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* several chunks: exact counts, exact octets */
	fake_open(&f, "250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 chunk 1\r\n250 2.0.0 chunk 2\r\n"
	    "250 2.0.0 chunk 3\r\n250 2.0.0 OK <id@relay>\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	f.s->chunk_size = 16;
	envelope_init(&env, "s@x.test", "a@x.test", "b@x.test", NULL);
	msg = message("line one\n.line two\r\nline three\rline four\r\n.\r\nend");
	rc = smtp_send(f.s, &env, msg, 53, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK && res.reply_code == 250 && strcmp(res.reply, "250 2.0.0 OK <id@relay>") == 0,
	    "multi-chunk: accepted with the LAST chunk's reply (%s)", st.text);
	is_str(wire,
	    "MAIL FROM:<s@x.test>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
	    "BDAT 16\r\nline one\r\n.line "
	    "BDAT 16\r\ntwo\r\nline three\r"
	    "BDAT 16\r\n\nline four\r\n.\r\ne"
	    "BDAT 4 LAST\r\nnd\r\n",
	    "chunks of 16 octets, the rest LAST; nothing stuffed");
	ok(strcmp(rr[0].reply, "250 2.0.0 OK <id@relay>") == 0 &&
	    strcmp(rr[1].reply, "250 2.0.0 OK <id@relay>") == 0, "both recipients get the final reply");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* a bigger message: every chunk parses back, counts exact */
	{
		struct buf want = {0}, got = {0};
		const char *p, *end;
		size_t i, chunks = 0;
		bool last = false, good = true;

		/* MAIL, RCPT and two chunks of the 19746 octets */
		fake_open(&f, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n");
		caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
		f.s->chunk_size = 10000;
		envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
		msg = tmpfile();
		for (i = 0; i < 2000; i++) {
			fprintf(msg, "%s%zu\n", i % 7 == 0 ? "." : "line ", i);
			buf_printf(&want, "%s%zu\r\n", i % 7 == 0 ? "." : "line ", i);
		}
		rewind(msg);
		rc = smtp_send(f.s, &env, msg, 1000, rr, &res, &st);
		wire = fake_wire(&f);
		p = strstr(wire, "BDAT");
		end = wire + strlen(wire);
		while (good && !last && p != NULL && p < end) {
			good = parse_bdat(&p, end, &got, &last);
			chunks++;
		}
		ok(rc == EX_OK && good && last && p == end, "%zu chunks parse back, nothing after LAST",
		    chunks);
		ok(chunks == 2 && want.len == 19746, "as many chunks as 10000-octet pieces");
		ok(got.len == want.len && memcmp(got.s, want.s, want.len) == 0,
		    "their octets are the message with CRLF line ends (%zu octets)", got.len);
		free(wire);
		fclose(msg);
		envelope_free(&env);
		fake_close(&f);
		buf_free(&want);
		buf_free(&got);
	}

	/* one recipient refused: the chunk still goes for the other */
	fake_open(&f, "250 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n250 2.0.0 OK <id>\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	envelope_init(&env, "s@x.test", "a@x.test", "b@x.test", NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK, "BDAT with one refused recipient: accepted for the other (%s)", st.text);
	ok(rr[0].reply_code == 550 && strcmp(rr[0].reply, "550 5.1.1 no such user") == 0 &&
	    rr[1].reply_code == 250 && strcmp(rr[1].reply, "250 2.0.0 OK <id>") == 0,
	    "the refused one keeps its RCPT reply, the other gets the final one");
	ok(strstr(wire, "BDAT 3 LAST\r\nx\r\n") != NULL && strstr(wire, "RSET") == NULL,
	    "the chunk went, no RSET");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* every recipient refused: the relay refuses the chunk, RSET */
	fake_open(&f, "250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no either\r\n554 5.5.1 no valid "
	    "recipients\r\n250 2.0.0 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	envelope_init(&env, "s@x.test", "a@x.test", "b@x.test", NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_NOUSER && strstr(st.text, "every recipient was refused") != NULL,
	    "BDAT with every recipient refused: EX_NOUSER (%s)", st.text);
	ok(rr[0].reply_code == 550 && rr[1].reply_code == 550 && res.reply_code == 550,
	    "the RCPT replies are kept, not the chunk's 554");
	ok(strstr(wire, "BDAT 3 LAST\r\nx\r\nRSET\r\n") != NULL && smtp_usable(f.s),
	    "RSET after the refused chunk; usable");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* MAIL refused: the chunk's 503 is read, the sender's refusal told */
	fake_open(&f, "550 5.7.1 sender not allowed\r\n503 5.5.1 need MAIL\r\n503 5.5.1 no "
	    "transaction\r\n250 2.0.0 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	envelope_init(&env, "root@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_UNAVAILABLE && strstr(st.text, "sender refused") != NULL && rr[0].reply_code == 0,
	    "BDAT with MAIL refused: permanent, recipient not reached (%s)", st.text);
	ok(strstr(wire, "RSET\r\n") != NULL && smtp_usable(f.s), "RSET; usable");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* 451 to the LAST chunk: temporary */
	fake_open(&f, "250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n250 2.0.0 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_TEMPFAIL && strstr(st.text, "451 4.3.0 try later") != NULL,
	    "451 to BDAT LAST: EX_TEMPFAIL (%s)", st.text);
	ok(rr[0].reply_code == 451 && res.reply_code == 451 && !res.after_dot,
	    "recorded for the recipient; not after_dot");
	ok(strstr(wire, "RSET\r\n") != NULL && smtp_usable(f.s), "RSET; usable");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* 451 to a chunk before the last: no more chunks, the one in flight is read, RSET */
	fake_open(&f, "250 ok\r\n250 ok\r\n451 4.3.0 chunk refused\r\n503 5.5.1 no transaction\r\n"
	    "250 2.0.0 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	f.s->chunk_size = 4;
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("0123456789abcdefghij\r\n");
	rc = smtp_send(f.s, &env, msg, 22, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_TEMPFAIL && res.reply_code == 451 && rr[0].reply_code == 451,
	    "451 to a chunk that is not the last: EX_TEMPFAIL (%s)", st.text);
	is_str(wire, "MAIL FROM:<s@x.test>\r\nRCPT TO:<a@x.test>\r\nBDAT 4\r\n0123BDAT 4\r\n4567"
	    "RSET\r\n", "one chunk ahead of its reply, then RSET; no LAST");
	ok(smtp_usable(f.s), "usable after RSET");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* connection dropped after the LAST chunk went out: after_dot */
	fake_open(&f, "250 ok\r\n250 ok\r\n");
	shutdown(f.relay, SHUT_WR);
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	ok(rc == EX_TEMPFAIL && res.after_dot && !smtp_usable(f.s),
	    "lost after BDAT LAST: temporary, after_dot, unusable (%s)", st.text);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* dropped before the LAST chunk: not after_dot */
	fake_open(&f, "250 ok\r\n250 ok\r\n");
	shutdown(f.relay, SHUT_WR);
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nCHUNKING\n");
	f.s->chunk_size = 1;
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("xyz\r\n");
	rc = smtp_send(f.s, &env, msg, 5, rr, &res, &st);
	ok(rc == EX_TEMPFAIL && !res.after_dot && !smtp_usable(f.s),
	    "lost before BDAT LAST: temporary, not after_dot (%s)", st.text);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* CHUNKING without PIPELINING: every command waits for its reply */
	fake_open(&f, "250 ok\r\n250 ok\r\n451 4.3.0 chunk refused\r\n250 2.0.0 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nCHUNKING\n");
	f.s->chunk_size = 4;
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("0123456789\r\n");
	rc = smtp_send(f.s, &env, msg, 12, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_TEMPFAIL, "stepwise BDAT: 451 to the first chunk (%s)", st.text);
	is_str(wire, "MAIL FROM:<s@x.test>\r\nRCPT TO:<a@x.test>\r\nBDAT 4\r\n0123RSET\r\n",
	    "no chunk before the previous one's reply");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	fake_open(&f, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 OK\r\n");
	caps_parse(&f.s->caps, "relay.test\nCHUNKING\n");
	f.s->chunk_size = 4;
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("0123456789\r\n");
	rc = smtp_send(f.s, &env, msg, 12, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK && res.reply_code == 250, "stepwise BDAT accepted (%s)", st.text);
	is_str(wire, "MAIL FROM:<s@x.test>\r\nRCPT TO:<a@x.test>\r\nBDAT 4\r\n0123BDAT 4\r\n"
	    "4567BDAT 4 LAST\r\n89\r\n", "three chunks");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* every recipient refused without PIPELINING: no chunk at all */
	fake_open(&f, "250 ok\r\n550 5.1.1 no\r\n250 reset\r\n");
	caps_parse(&f.s->caps, "relay.test\nCHUNKING\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message("x\r\n");
	rc = smtp_send(f.s, &env, msg, 3, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_NOUSER && strstr(wire, "BDAT") == NULL && strstr(wire, "RSET\r\n") != NULL,
	    "stepwise: every recipient refused, no BDAT, RSET");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);

	/* without CHUNKING it is DATA */
	fake_open(&f, "250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 OK\r\n");
	caps_parse(&f.s->caps, "relay.test\nPIPELINING\nBINARYMIME\n");
	envelope_init(&env, "s@x.test", "a@x.test", NULL, NULL);
	msg = message(".x\r\n");
	rc = smtp_send(f.s, &env, msg, 4, rr, &res, &st);
	wire = fake_wire(&f);
	ok(rc == EX_OK && strstr(wire, "DATA\r\n..x\r\n.\r\n") != NULL &&
	    strstr(wire, "BDAT") == NULL, "no CHUNKING offered: DATA, dot-stuffed");
	free(wire);
	fclose(msg);
	envelope_free(&env);
	fake_close(&f);
}

int
main(void)
{
	init_config();
	test_replies();
	test_caps();
	test_encodings();
	test_dotstuff();
	test_hints();
	test_open_steps();
	test_auth();
	test_send_pipelined();
	test_send_stepwise();
	test_send_refusals();
	test_quit();
	test_chunker();
	test_send_bdat();
	return tap_done();
}
