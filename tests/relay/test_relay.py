#!/usr/bin/python3
"""Self-test of the test relay with Python's smtplib: it must behave as
ACS.md says before the integration tests can trust it. TAP output.

    /usr/bin/python3 tests/relay/test_relay.py
"""

import base64
import os
import socket
import ssl
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
os.environ.setdefault("ACSMAIL_BIN", "/bin/true")
import harness  # noqa: E402
from harness import test, FROM, USERNAME, PASSWORD  # noqa: E402


def client(t, tls=True, login=True, timeout=5):
    s = smtplib.SMTP("localhost", t.relay.port, timeout=timeout)
    s.ehlo("client.example")
    if tls:
        s.starttls(context=ssl.create_default_context(cafile=t.relay.ca))
        s.ehlo("client.example")
    if login:
        s.login(USERNAME, PASSWORD)
    return s


def ext_names(s):
    return sorted(k.upper() for k in s.esmtp_features)


@test("EHLO before TLS: SIZE PIPELINING DSN ENHANCEDSTATUSCODES STARTTLS 8BITMIME SMTPUTF8")
def _(t):
    s = client(t, tls=False, login=False)
    t.eq(ext_names(s), sorted(["SIZE", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS",
                               "8BITMIME", "SMTPUTF8"]), "extensions")
    t.eq(s.esmtp_features["size"], "10485760", "SIZE")
    s.quit()


@test("EHLO after TLS: AUTH LOGIN only, no STARTTLS, no CHUNKING")
def _(t):
    s = client(t, login=False)
    t.eq(s.esmtp_features.get("auth"), " LOGIN", "AUTH")
    t.ok("starttls" not in s.esmtp_features, "no STARTTLS inside TLS")
    t.ok("chunking" not in s.esmtp_features, "no CHUNKING")
    s.quit()


@test("AUTH before STARTTLS: 530 5.7.0; MAIL before AUTH: 530 5.7.57")
def _(t):
    s = client(t, tls=False, login=False)
    t.eq(s.docmd("AUTH", "LOGIN"), (530, b"5.7.0 Must issue a STARTTLS command first"), "AUTH")
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM),
         (530, b"5.7.57 Client not authenticated to send mail."), "MAIL")
    s.starttls(context=ssl.create_default_context(cafile=t.relay.ca))
    s.ehlo("c")
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM)[0], 530, "MAIL inside TLS before AUTH")
    s.quit()


@test("AUTH PLAIN: 504 5.7.4; wrong secret: 535 5.7.3; right one: 235")
def _(t):
    s = client(t, login=False)
    t.eq(s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0u\0p").decode()),
         (504, b"5.7.4 Unrecognized authentication type"), "PLAIN")
    try:
        s.login(USERNAME, "wrong")
        t.fail("wrong secret accepted")
    except smtplib.SMTPAuthenticationError as e:
        t.eq((e.smtp_code, e.smtp_error), (535, b"5.7.3 Authentication unsuccessful"), "reply")
    s.login(USERNAME, PASSWORD)
    s.quit()
    t.eq([(a["mechanism"], a["ok"]) for a in t.relay.auths()],
         [("PLAIN", False), ("LOGIN", False), ("LOGIN", True)], "auth log")


@test("MAIL FROM outside the MailFrom list: 550; the allowed ones in any case: 250")
def _(t):
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<someone@gmail.com>")[0], 550, "disallowed")
    t.eq(s.docmd("MAIL", "FROM:<>")[0], 550, "null sender")
    t.eq(s.docmd("MAIL", "FROM:<donotreply@MAIL.example.com>")[0], 250, "case-insensitive")
    s.quit()


@test("at most 50 RCPT: the 51st gets 452 4.5.3")
def _(t):
    s = client(t)
    s.docmd("MAIL", "FROM:<%s>" % FROM)
    codes = [s.docmd("RCPT", "TO:<r%d@example.com>" % i)[0] for i in range(51)]
    t.eq(codes, [250] * 50 + [452], "codes")
    s.quit()


@test("SIZE: a declared size over 10 MB gets 552; content over it too")
def _(t):
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<%s> SIZE=10485761" % FROM)[0], 552, "declared")
    t.relay.control(max_size=1000)
    t.relay.extensions(SIZE=False)      # so that smtplib sends no SIZE=
    s.quit()
    s = client(t)
    try:
        s.sendmail(FROM, ["a@example.com"], b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n")
        t.fail("accepted")
    except smtplib.SMTPDataError as e:
        t.eq(e.smtp_code, 552, "content")
    s.quit()
    t.eq(len(t.messages()), 0, "nothing stored")


@test("an accepted message: 250 2.6.0 <id@relay>, envelope, raw and unstuffed data recorded")
def _(t):
    s = client(t)
    data = b"Subject: rec\r\n\r\n.leading dot\r\nbare\nlf\r\nlast\r\n"
    s.mail(FROM, ["BODY=8BITMIME", "SIZE=%d" % len(data)])
    s.rcpt("a@example.com", ["NOTIFY=SUCCESS,FAILURE"])
    s.rcpt("b@example.com")
    code, reply = s.data(data)
    s.quit()
    t.eq(code, 250, "DATA")
    t.match(r"^2\.6\.0 <[0-9A-F]+@relay\.example> \[InternalId=\d+\] Queued mail for delivery$",
            reply.decode(), "reply")
    m = t.message()
    t.eq(m.mail_from, FROM, "mail_from")
    t.eq(m.mail_options, ["BODY=8BITMIME", "SIZE=%d" % len(data)], "mail_options")
    t.eq(m.rcpt_tos, ["a@example.com", "b@example.com"], "rcpt_tos")
    t.eq(m.rcpt_options, [["NOTIFY=SUCCESS,FAILURE"], []], "rcpt_options")
    t.eq(m.data, data, "unstuffed content")
    t.eq(m.raw, data.replace(b"\r\n.leading", b"\r\n..leading"), "raw dot-stuffed")
    t.ok(m.bare_lf and not m.bare_cr, "bare LF seen, no bare CR")
    t.eq((m.auth_user, m.tls), (USERNAME, True), "auth user, TLS")
    t.eq(m.get("Subject"), "rec", "parsed header")
    t.isin(m.queue_id, reply.decode(), "queue_id")


@test("pipelined commands are marked, waited-for ones are not")
def _(t):
    s = client(t)
    s.sock.sendall(("MAIL FROM:<%s>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                    "DATA\r\n" % FROM).encode())
    for _ in range(4):
        s.getreply()
    s.sock.sendall(b"Subject: p\r\n\r\nx\r\n.\r\n")
    s.getreply()
    s.docmd("NOOP")
    s.quit()
    marks = [(c["cmd"], c["pipelined"]) for c in t.relay.commands()
             if c["cmd"] in ("MAIL", "RCPT", "DATA", "NOOP")]
    t.eq(marks, [("MAIL", False), ("RCPT", True), ("RCPT", True), ("DATA", True),
                 ("NOOP", False)], "marks")
    t.eq(len(t.messages()), 1, "message stored")


@test("extensions can be switched off; their parameters are then refused")
def _(t):
    t.relay.extensions(PIPELINING=False, DSN=False, EIGHTBITMIME=False, SMTPUTF8=False,
                       SIZE=False, ENHANCEDSTATUSCODES=False)
    s = client(t)
    t.eq(ext_names(s), ["AUTH"], "extensions")
    t.eq(s.docmd("MAIL", "FROM:<%s> BODY=8BITMIME" % FROM)[0], 555, "BODY")
    t.eq(s.docmd("MAIL", "FROM:<%s> RET=HDRS" % FROM)[0], 555, "RET")
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM)[0], 250, "plain MAIL")
    t.eq(s.docmd("RCPT", "TO:<a@example.com> NOTIFY=NEVER")[0], 555, "NOTIFY")
    t.eq(s.docmd("RCPT", "TO:<root>")[0], 501, "a bare name")
    s.quit()


@test("fault no_starttls: no STARTTLS offered, STARTTLS refused, AUTH impossible")
def _(t):
    t.relay.fault("no_starttls")
    s = client(t, tls=False, login=False)
    t.ok("starttls" not in s.esmtp_features, "not offered")
    t.eq(s.docmd("STARTTLS")[0], 500, "STARTTLS")
    t.eq(s.docmd("AUTH", "LOGIN")[0], 530, "AUTH")
    s.quit()


def tls_fails(t, fault, reason):
    t.relay.fault(fault)
    s = client(t, tls=False, login=False)
    try:
        s.starttls(context=ssl.create_default_context(cafile=t.relay.ca))
        t.fail("handshake verified")
    except ssl.SSLCertVerificationError as e:
        t.match(reason, str(e), "verification error")
    t.eq(t.relay.auths(), [], "no AUTH")


@test("fault untrusted_cert: verification against the CA fails")
def _(t):
    tls_fails(t, "untrusted_cert", "unable to get local issuer|self.signed|certificate verify")


@test("fault wrong_name_cert: host name mismatch")
def _(t):
    tls_fails(t, "wrong_name_cert", "(?i)hostname mismatch|doesn't match")


@test("fault expired_cert: expired")
def _(t):
    tls_fails(t, "expired_cert", "(?i)expired")


@test("fault greeting_421: 421 then close")
def _(t):
    t.relay.fault("greeting_421")
    try:
        smtplib.SMTP("localhost", t.relay.port, timeout=5)
        t.fail("connected")
    except smtplib.SMTPConnectError as e:
        t.eq(e.smtp_code, 421, "greeting")


@test("fault stall greeting: the connection opens, nothing is said")
def _(t):
    t.relay.fault("stall", "greeting")
    sk = socket.create_connection(("127.0.0.1", t.relay.port), timeout=1)
    try:
        sk.recv(100)
        t.fail("the relay spoke")
    except socket.timeout:
        pass
    sk.close()


@test("fault stall mail: no answer to MAIL")
def _(t):
    t.relay.fault("stall", "mail")
    s = client(t, timeout=1)
    try:
        s.docmd("MAIL", "FROM:<%s>" % FROM)
        t.fail("answered")
    except (socket.timeout, smtplib.SMTPServerDisconnected):
        pass
    s.close()


@test("fault stall dot: no answer after the data")
def _(t):
    t.relay.fault("stall", "dot")
    s = client(t, timeout=1)
    s.mail(FROM)
    s.rcpt("a@example.com")
    try:
        s.data(b"Subject: x\r\n\r\nx\r\n")
        t.fail("answered")
    except (socket.timeout, smtplib.SMTPServerDisconnected):
        pass
    s.close()
    t.eq(len(t.messages()), 0, "nothing stored")


@test("fault throttle: 450 4.5.127 at MAIL, or at RCPT")
def _(t):
    t.relay.fault("throttle", "mail")
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM),
         (450, b"4.5.127 Message rejected. Excessive message rate from sender."), "MAIL")
    s.quit()
    t.relay.fault("throttle", "rcpt")
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM)[0], 250, "MAIL")
    t.eq(s.docmd("RCPT", "TO:<a@example.com>")[0], 450, "RCPT")
    s.quit()


@test("fault data_451: 451 after the content, nothing stored")
def _(t):
    t.relay.fault("data_451")
    s = client(t)
    try:
        s.sendmail(FROM, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
        t.fail("accepted")
    except smtplib.SMTPDataError as e:
        t.eq(e.smtp_code, 451, "code")
    s.quit()
    t.eq(len(t.messages()), 0, "nothing stored")


@test("fault drop_in_data: the connection closes mid-DATA")
def _(t):
    t.relay.fault("drop_in_data")
    s = client(t)
    try:
        s.sendmail(FROM, ["a@example.com"], b"Subject: x\r\n\r\n" + b"line\r\n" * 1000)
        t.fail("accepted")
    except (smtplib.SMTPServerDisconnected, ConnectionError, ssl.SSLError):
        pass
    t.eq(len(t.messages()), 0, "nothing stored")
    t.eq(len(t.relay.events("drop")), 1, "drop logged")


@test("fault refuse_rcpt: 550 5.1.1 for those, 250 for the others")
def _(t):
    t.relay.fault("refuse_rcpt", ["Bad@Example.com"])
    s = client(t)
    s.docmd("MAIL", "FROM:<%s>" % FROM)
    t.eq(s.docmd("RCPT", "TO:<bad@example.com>")[0], 550, "refused")
    t.eq(s.docmd("RCPT", "TO:<good@example.com>")[0], 250, "accepted")
    s.quit()


@test("fault rate_limit: the third message within the window gets 450 4.5.127")
def _(t):
    t.relay.fault("rate_limit", {"count": 2, "window": 60})
    s = client(t)
    for i in range(2):
        s.sendmail(FROM, ["a@example.com"], b"Subject: %d\r\n\r\nx\r\n" % i)
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM)[0], 450, "third MAIL")
    s.quit()
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM)[0], 450, "on a new connection too")
    s.quit()


@test("fault sender_reply: the refusal text can be changed")
def _(t):
    t.relay.fault("sender_reply", "550 5.7.60 SMTP; Client does not have permissions")
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<x@gmail.com>"),
         (550, b"5.7.60 SMTP; Client does not have permissions"), "reply")
    s.quit()


@test("a QUIT sent just before closing is still logged")
def _(t):
    s = client(t, tls=False, login=False)
    s.sock.sendall(b"QUIT\r\n")
    s.sock.close()
    time.sleep(0.3)
    t.eq(t.relay.verbs(), ["EHLO", "QUIT"], "commands")


@test("control changes apply from the next connection, without a restart")
def _(t):
    s = client(t)
    t.relay.control(password="changed")
    s.sendmail(FROM, ["a@example.com"], b"Subject: x\r\n\r\nx\r\n")
    s.quit()
    try:
        client(t)
        t.fail("old password still accepted")
    except smtplib.SMTPAuthenticationError:
        pass
    t.eq(len(t.messages()), 1, "the first connection still delivered")


harness.main()
