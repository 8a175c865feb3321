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


@test("EHLO before TLS: SIZE PIPELINING DSN ENHANCEDSTATUSCODES STARTTLS 8BITMIME BINARYMIME "
      "CHUNKING SMTPUTF8")
def _(t):
    s = client(t, tls=False, login=False)
    t.eq(ext_names(s), sorted(["SIZE", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS",
                               "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]), "extensions")
    t.eq(s.esmtp_features["size"], "10485760", "SIZE")
    s.quit()


@test("EHLO after TLS: AUTH LOGIN only, no STARTTLS, CHUNKING still there")
def _(t):
    s = client(t, login=False)
    t.eq(s.esmtp_features.get("auth"), " LOGIN", "AUTH")
    t.ok("starttls" not in s.esmtp_features, "no STARTTLS inside TLS")
    t.ok("chunking" in s.esmtp_features, "CHUNKING")
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
                       SIZE=False, ENHANCEDSTATUSCODES=False, CHUNKING=False,
                       BINARYMIME=False)
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


# ---------------------------------------------------------------------------
# BDAT (RFC 3030)

def bdat(s, data, last=True, size=None):
    """sends "BDAT n [LAST]" and the octets in one write; the reply"""
    n = len(data) if size is None else size
    s.send(b"BDAT %d%s\r\n" % (n, b" LAST" if last else b"") + data)
    return s.getreply()


def in_step(t, s, what):
    """the session still reads commands where they start"""
    t.eq(s.docmd("NOOP")[0], 250, what + ": NOOP after it")


def envelope(s, *rcpts):
    s.docmd("MAIL", "FROM:<%s>" % FROM)
    for r in rcpts or ("a@example.com",):
        s.docmd("RCPT", "TO:<%s>" % r)


@test("BDAT one chunk LAST: the message as sent, no dot-unstuffing, 250 2.6.0 with the id")
def _(t):
    s = client(t)
    data = b"Subject: bdat\r\n\r\n.leading dot\r\n..two\r\n.\r\nbare\nlf\r\nlast\r\n"
    envelope(s, "a@example.com", "b@example.com")
    code, reply = bdat(s, data)
    s.quit()
    t.eq(code, 250, "BDAT LAST")
    t.match(r"^2\.6\.0 <[0-9A-F]+@relay\.example> \[InternalId=\d+\] Queued mail for delivery$",
            reply.decode(), "reply")
    m = t.message()
    t.eq(m.data, data, "content as sent")
    t.eq(m.raw, data, "raw as sent")
    t.eq((m.transfer, m.chunks, m.chunk_sizes), ("BDAT", 1, [len(data)]), "transfer, chunks")
    t.eq(m.rcpt_tos, ["a@example.com", "b@example.com"], "rcpt_tos")
    t.ok(m.bare_lf and not m.bare_cr and m.ends_with_crlf, "line-end facts")
    t.eq(m.get("Subject"), "bdat", "parsed header")
    t.isin(m.queue_id, reply.decode(), "queue_id")
    t.eq([(c["size"], c["last"]) for c in t.relay.commands("BDAT")], [(len(data), True)],
         "BDAT logged with size and LAST")


@test("BDAT in several chunks (one empty, one of 3 MB): 250 2.0.0 <n> octets each, joined")
def _(t):
    s = client(t)
    envelope(s)
    parts = [b"Subject: chunks\r\n\r\nfirst part, no line end", b"", b" - ",
             b"".join(b"%07d %s\r\n" % (i, b"z" * 62) for i in range((3 << 20) // 64)),
             b"end\r\n"]
    replies = [bdat(s, p, last=False) for p in parts[:-1]]
    code, reply = bdat(s, parts[-1])
    s.quit()
    t.eq(replies, [(250, b"2.0.0 %d octets received" % len(p)) for p in parts[:-1]],
         "chunk replies")
    t.eq(code, 250, "LAST")
    m = t.message()
    t.eq(m.data, b"".join(parts), "content joined")
    t.eq((m.chunks, m.chunk_sizes), (5, [len(p) for p in parts]), "chunks")
    t.eq([c["last"] for c in t.relay.commands("BDAT")], [False] * 4 + [True], "LAST marks")


@test("BDAT 0 LAST alone: an empty message is accepted")
def _(t):
    s = client(t)
    envelope(s)
    t.eq(bdat(s, b"")[0], 250, "BDAT 0 LAST")
    s.quit()
    t.eq(t.message().data, b"", "empty")


@test("MAIL, RCPT, RCPT and BDAT LAST with its octets in one write: marked pipelined")
def _(t):
    s = client(t)
    data = b"Subject: p\r\n\r\nx\r\n"
    s.send(("MAIL FROM:<%s>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
            % FROM).encode() + b"BDAT %d LAST\r\n" % len(data) + data)
    codes = [s.getreply()[0] for _ in range(4)]
    s.docmd("NOOP")
    s.quit()
    t.eq(codes, [250, 250, 250, 250], "replies")
    marks = [(c["cmd"], c["pipelined"]) for c in t.relay.commands()
             if c["cmd"] in ("MAIL", "RCPT", "BDAT", "NOOP")]
    t.eq(marks, [("MAIL", False), ("RCPT", True), ("RCPT", True), ("BDAT", True),
                 ("NOOP", False)], "marks")
    t.eq(t.relay.commands("BDAT")[0]["buffered"], len(data), "its octets came with it")
    t.ok(t.message().pipelined, "the message is marked pipelined")


@test("BDAT after a refused RCPT: 503, the octets consumed, nothing stored")
def _(t):
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    s = client(t)
    envelope(s, "bad@example.com")
    t.eq(bdat(s, b"NOOP\r\nQUIT\r\n" * 10)[0], 503, "BDAT without a recipient")
    in_step(t, s, "octets consumed")
    s.quit()
    t.eq(t.messages(), [], "nothing stored")
    t.notin("QUIT", t.relay.verbs()[:-1], "the octets were not taken as commands")


@test("BDAT before MAIL: 503; before AUTH: 530; before EHLO: 503; octets consumed")
def _(t):
    s = client(t)
    t.eq(bdat(s, b"RSET\r\n" * 5)[0], 503, "before MAIL")
    in_step(t, s, "before MAIL")
    s.quit()
    s = client(t, login=False)
    t.eq(bdat(s, b"x" * 100, last=False), (530, b"5.7.57 Client not authenticated to send mail."),
         "before AUTH")
    in_step(t, s, "before AUTH")
    s.quit()
    sk = socket.create_connection(("127.0.0.1", t.relay.port), timeout=5)
    f = sk.makefile("rb")
    f.readline()
    sk.sendall(b"BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n")
    t.eq(f.readline()[:4], b"503 ", "before EHLO")
    t.eq(f.readline()[:4], b"250 ", "the NOOP after the octets")
    sk.close()
    t.eq(t.messages(), [], "nothing stored")


@test("DATA after BDAT in the same transaction: 503; BDAT after LAST: 503")
def _(t):
    s = client(t)
    envelope(s)
    t.eq(bdat(s, b"Subject: x\r\n", last=False)[0], 250, "first chunk")
    t.eq(s.docmd("DATA")[0], 503, "DATA")
    t.eq(bdat(s, b"\r\nbody\r\n")[0], 250, "LAST")
    t.eq(bdat(s, b"more\r\n")[0], 503, "BDAT after LAST")
    in_step(t, s, "after LAST")
    s.quit()
    t.eq(t.message().data, b"Subject: x\r\n\r\nbody\r\n", "the message")


@test("BDAT over max_size: 552 5.3.4 after the octets; the transaction is over")
def _(t):
    t.relay.control(max_size=1000)
    s = client(t)
    envelope(s)
    t.eq(bdat(s, b"a" * 600, last=False)[0], 250, "600 octets")
    t.eq(bdat(s, b"b" * 600, last=False),
         (552, b"5.3.4 Message size exceeds fixed maximum message size"), "1200 octets")
    t.eq(bdat(s, b"c\r\n")[0], 503, "the next chunk: no transaction")
    in_step(t, s, "after 552")
    envelope(s)
    t.eq(bdat(s, b"x" * 5000)[0], 552, "one big LAST chunk")
    envelope(s)
    t.eq(bdat(s, b"y" * 1000)[0], 250, "exactly max_size")
    s.quit()
    t.eq([m.size for m in t.messages()], [1000], "only the one that fits")


@test("BDAT with bad arguments: 501; CHUNKING off: not offered, BDAT 500")
def _(t):
    s = client(t)
    envelope(s)
    for arg in ("", "x", "-1", "10 LAST x", "10 FIRST"):
        t.eq(s.docmd("BDAT", arg)[0], 501, "BDAT %r" % arg)
    s.quit()
    t.relay.extensions(CHUNKING=False)
    s = client(t)
    t.ok("chunking" not in s.esmtp_features, "CHUNKING not offered")
    t.ok("binarymime" not in s.esmtp_features, "nor BINARYMIME without it")
    envelope(s)
    t.eq(s.docmd("BDAT", "0 LAST")[0], 500, "BDAT")
    s.docmd("RSET")
    t.eq(s.docmd("MAIL", "FROM:<%s> BODY=BINARYMIME" % FROM)[0], 501, "BODY=BINARYMIME")
    s.quit()


@test("BODY=BINARYMIME: accepted, the octets kept as sent, DATA refused with 503")
def _(t):
    s = client(t)
    t.eq(s.docmd("MAIL", "FROM:<%s> BODY=BINARYMIME" % FROM)[0], 250, "MAIL")
    s.docmd("RCPT", "TO:<a@example.com>")
    t.eq(s.docmd("DATA")[0], 503, "DATA with BINARYMIME")
    data = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\xff\r\rraw\n"
    t.eq(bdat(s, data)[0], 250, "BDAT")
    s.quit()
    m = t.message()
    t.eq((m.data, m.mail_options), (data, ["BODY=BINARYMIME"]), "content, MAIL parameters")
    t.ok(m.bare_cr and m.bare_lf and m.eight_bit, "line-end and 8-bit facts")
    t.relay.extensions(BINARYMIME=False)
    s = client(t)
    t.ok("binarymime" not in s.esmtp_features, "switched off")
    t.eq(s.docmd("MAIL", "FROM:<%s> BODY=BINARYMIME" % FROM)[0], 501, "then refused")
    s.quit()


@test("fault data_451 with BDAT: chunks 250, the LAST one 451, nothing stored")
def _(t):
    t.relay.fault("data_451")
    s = client(t)
    envelope(s)
    t.eq(bdat(s, b"Subject: x\r\n", last=False)[0], 250, "first chunk")
    t.eq(bdat(s, b"\r\nx\r\n")[0], 451, "LAST")
    in_step(t, s, "after 451")
    s.quit()
    t.eq(t.messages(), [], "nothing stored")


@test("fault drop_in_data with BDAT: closed within the first chunk")
def _(t):
    t.relay.fault("drop_in_data")
    s = client(t)
    envelope(s)
    try:
        bdat(s, b"Subject: x\r\n\r\n" + b"line\r\n" * 100000)
        t.fail("answered")
    except (smtplib.SMTPServerDisconnected, ConnectionError, ssl.SSLError):
        pass
    s.close()
    t.eq(t.messages(), [], "nothing stored")
    drops = t.relay.events("drop")
    t.eq([d["received"] for d in drops], [len(b"Subject: x\r\n")], "dropped after one line")


@test("fault stall data / dot with BDAT: no answer to the first chunk / the LAST one")
def _(t):
    t.relay.fault("stall", "data")
    s = client(t, timeout=1)
    envelope(s)
    try:
        bdat(s, b"Subject: x\r\n", last=False)
        t.fail("first chunk answered")
    except (socket.timeout, smtplib.SMTPServerDisconnected):
        pass
    s.close()
    t.relay.fault("stall", "dot")
    s = client(t, timeout=1)
    envelope(s)
    t.eq(bdat(s, b"Subject: x\r\n", last=False)[0], 250, "stall dot: first chunk")
    try:
        bdat(s, b"\r\nx\r\n")
        t.fail("LAST answered")
    except (socket.timeout, smtplib.SMTPServerDisconnected):
        pass
    s.close()
    t.eq(t.messages(), [], "nothing stored")
    t.eq([e["step"] for e in t.relay.events("stall")], ["data", "dot"], "stalls logged")


@test("fault rate_limit counts messages sent by BDAT; throttle at RCPT precedes BDAT")
def _(t):
    t.relay.fault("rate_limit", {"count": 2, "window": 60})
    s = client(t)
    for i in range(2):
        envelope(s)
        t.eq(bdat(s, b"Subject: %d\r\n\r\nx\r\n" % i)[0], 250, "message %d" % i)
    t.eq(s.docmd("MAIL", "FROM:<%s>" % FROM)[0], 450, "third MAIL")
    s.quit()
    t.relay.fault("rate_limit", None)
    t.relay.fault("throttle", "rcpt")
    s = client(t)
    envelope(s)
    t.eq(bdat(s, b"Subject: x\r\n\r\nx\r\n")[0], 503, "BDAT after the throttled RCPT")
    in_step(t, s, "throttled")
    s.quit()
    t.eq(len(t.messages()), 2, "two stored")


@test("the octets of a BDAT left unread at close are not logged as commands")
def _(t):
    t.relay.fault("stall", "mail")
    s = client(t)
    s.send(("MAIL FROM:<%s>\r\nRCPT TO:<a@example.com>\r\n" % FROM).encode()
           + b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n")
    time.sleep(0.3)
    s.sock.shutdown(socket.SHUT_WR)
    time.sleep(0.3)
    s.close()
    t.eq(t.relay.verbs()[-4:], ["MAIL", "RCPT", "BDAT", "NOOP"], "commands")


harness.main()
