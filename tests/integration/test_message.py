#!/usr/bin/python3
"""The message on the wire: line ends, dots, added headers, 8-bit bodies,
encoded words, headers never transmitted (SPEC §4)."""

import email.utils
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, each_transfer, FROM, ALLOWED  # noqa: E402

MSGID = r"^<[^<>@\s]+@mail\.example\.com>$"


def lf(*lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


def check_date(t, m):
    d = m.get("Date")
    t.require(d is not None, "a Date header")
    try:
        when = email.utils.parsedate_to_datetime(d)
    except (TypeError, ValueError):
        t.fail("Date %r does not parse as RFC 5322" % d)
    t.ok(abs(when.timestamp() - time.time()) < 600, "Date %r is now" % d)
    t.ok(when.tzinfo is not None, "Date %r has a zone" % d)


@each_transfer("PHP 8 shape: CRLF headers, LF body: exactly one CRLF per line on the wire")
def _(t):
    msg = (b"To: a@example.com\r\nSubject: php mail\r\nX-PHP-Originating-Script: 0:form.php\r\n"
           b"\r\nline one\nline two\n\nlast line\n")
    r = t.run(["-t", "-i"], msg)
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m)
    t.wire_line_ends(m)
    t.eq(m.body, b"line one\r\nline two\r\n\r\nlast line\r\n", "body")
    t.eq(m.get("Subject"), "php mail", "Subject")
    t.eq(m.get("X-PHP-Originating-Script"), "0:form.php", "extra header kept")


@each_transfer("mixed LF and CRLF line ends, and no final newline")
def _(t):
    msg = (b"To: a@example.com\nSubject: mixed\r\n\r\n"
           b"first\r\nsecond\nthird\r\nno newline at the end")
    r = t.run(["-t", "-i"], msg)
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m)
    t.wire_line_ends(m)
    t.eq(m.body, b"first\r\nsecond\r\nthird\r\nno newline at the end\r\n", "body")


@test("DATA: -t -i: body lines .hidden, ..two and . are all kept, dot-stuffed")
def _(t):
    t.transfer("DATA")
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: dots", "", ".hidden", "..two",
                               ".", "after the dot"))
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m)
    t.eq(m.body, b".hidden\r\n..two\r\n.\r\nafter the dot\r\n", "body after unstuffing")
    t.isin(b"\r\n..hidden\r\n...two\r\n..\r\nafter the dot\r\n", m.raw,
           "dots doubled on the wire")
    t.wire_line_ends(m)


@test("BDAT: -t -i: body lines .hidden, ..two and . go as they are, no dot-stuffing")
def _(t):
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: dots", "", ".hidden", "..two",
                               ".", "after the dot", "."))
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m, "BDAT")
    t.eq(m.body, b".hidden\r\n..two\r\n.\r\nafter the dot\r\n.\r\n", "body")
    t.eq(m.raw, m.data, "the octets on the wire are the message")
    t.ok(m.raw.endswith(b"\r\nafter the dot\r\n.\r\n"),
         "a last line '.' is data, no end marker after it: %r" % m.raw[-30:])
    t.wire_line_ends(m)


@test("the same input by BDAT and by DATA: the relay gets the same octets")
def _(t):
    body = (b"a\rb\nx\r\r\ny\r\n.\r\n..\n.x\n" + "caf\u00e9\n".encode("utf-8")
            + b"\t tab and blanks  \n\nend\r")
    msg = lf("To: a@example.com", "Subject: same", "Message-ID: <same@mail.example.com>",
             "Date: Tue, 1 Dec 2026 10:00:00 +0100", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit",
             "") + body
    for how in ("BDAT", "DATA"):
        t.transfer(how)
        t.exit(t.run(["-t", "-i"], msg), 0, "exit code (%s)" % how)
    msgs = t.messages()
    t.require(len(msgs) == 2, "two messages, got %d" % len(msgs))
    t.eq([m.transfer for m in msgs], ["BDAT", "DATA"], "transfers")
    t.eq(msgs[0].data, msgs[1].data, "content")
    for m in msgs:
        t.wire_line_ends(m, m.transfer)
    t.ok(msgs[0].raw != msgs[1].raw, "DATA dot-stuffed, BDAT not")


@test("-t without -i: a lone . ends the input, what follows is not sent")
def _(t):
    r = t.run(["-t"], lf("To: a@example.com", "Subject: dot ends", "", "before", ".hidden",
                         "..", ". not alone", ".", "after", "more after"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.body, b"before\r\n.hidden\r\n..\r\n. not alone\r\n", "body up to the lone dot")
    t.notin(b"after", m.data, "nothing after the lone dot")


@test("without -i: a lone . on a CRLF line ends the input too")
def _(t):
    r = t.run(["a@example.com"], b"Subject: crlf dot\r\n\r\nbefore\r\n.\r\nafter\r\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.body, b"before\r\n", "body")


@test("a body and no header at all: Date, Message-ID, From and To are added")
def _(t):
    r = t.run(["-i", "u@example.com"], lf("This is a body without any header.", "Second line."))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["u@example.com"], "RCPT TO")
    check_date(t, m)
    t.match(MSGID, m.get("Message-ID"), "Message-ID")
    t.eq(m.addrs("From"), [FROM], "From")
    t.eq(m.get("To"), "undisclosed-recipients:;", "To")
    t.eq(m.body, b"This is a body without any header.\r\nSecond line.\r\n", "body kept whole")
    for name in ("Date", "Message-ID", "From", "To"):
        t.eq(len(m.raw_fields(name)), 1, "one %s field" % name)


@test("the header ends at a line that is neither a field nor a continuation")
def _(t):
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: no empty line",
                               "this line starts the body", "and this one follows"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("Subject"), "no empty line", "Subject")
    t.eq(m.body, b"this line starts the body\r\nand this one follows\r\n", "body")


@test("Message-ID: <unique@domain-of-from>, new for each message; a caller's own is kept")
def _(t):
    for i in range(2):
        t.exit(t.run(["-i", "a@example.com"], lf("Subject: id %d" % i, "", "body")), 0)
    r = t.run(["-i", "a@example.com"],
              lf("Subject: own id", "Message-ID: <own.123@caller.example>", "", "body"))
    t.exit(r, 0)
    msgs = t.messages()
    t.require(len(msgs) == 3, "three messages, got %d" % len(msgs))
    ids = [m.get("Message-ID") for m in msgs[:2]]
    for i in ids:
        t.match(MSGID, i, "added Message-ID")
    t.ok(ids[0] != ids[1], "two different Message-IDs: %r" % ids)
    t.eq(msgs[2].get_all("Message-ID"), ["<own.123@caller.example>"], "caller's Message-ID")


@test("Date: added when missing, a caller's own is kept as is")
def _(t):
    t.exit(t.run(["-i", "a@example.com"], lf("Subject: no date", "", "body")), 0)
    own = "Tue, 1 Dec 2026 10:00:00 +0100"
    t.exit(t.run(["-i", "a@example.com"], lf("Subject: date", "Date: " + own, "", "body")), 0)
    msgs = t.messages()
    t.require(len(msgs) == 2, "two messages, got %d" % len(msgs))
    check_date(t, msgs[0])
    t.eq(msgs[1].get_all("Date"), [own], "caller's Date")


@each_transfer("8-bit body with its MIME headers: BODY=8BITMIME, bytes intact")
def _(t):
    body = "Grüße aus München – 日本語のテキスト\nZeile zwei\n"
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: 8bit", "MIME-Version: 1.0",
                               "Content-Type: text/plain; charset=UTF-8",
                               "Content-Transfer-Encoding: 8bit", "") + body.encode())
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m)
    t.isin("BODY=8BITMIME", [o.upper() for o in m.mail_options], "MAIL FROM parameters")
    t.eq(m.body, body.replace("\n", "\r\n").encode(), "body bytes")
    t.ok(m.eight_bit, "8-bit octets on the wire")
    t.eq(m.get("Content-Transfer-Encoding"), "8bit", "CTE kept")


@test("8-bit body without MIME headers: MIME-Version, Content-Type, CTE added")
def _(t):
    body = "Température: 21 °C\n"
    r = t.run(["-i", "a@example.com"], lf("Subject: raw 8bit", "") + body.encode())
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("MIME-Version"), "1.0", "MIME-Version")
    t.match(r"(?i)^text/plain;\s*charset=\"?utf-8\"?$", m.get("Content-Type"), "Content-Type")
    t.match(r"(?i)^(8bit|quoted-printable|base64)$", m.get("Content-Transfer-Encoding"), "CTE")
    t.eq(m.content_lf(), body.encode(), "decoded body")
    if (m.get("Content-Transfer-Encoding") or "").lower() == "8bit":
        t.isin("BODY=8BITMIME", [o.upper() for o in m.mail_options], "BODY=8BITMIME")


@test("7-bit body: no BODY=8BITMIME")
def _(t):
    r = t.run(["-i", "a@example.com"], lf("Subject: ascii", "", "plain ascii"))
    t.exit(r, 0)
    m = t.message()
    t.eq([o for o in m.mail_options if o.upper() == "BODY=8BITMIME"], [], "BODY=8BITMIME")


@test("-B8BITMIME on a 7-bit body is harmless")
def _(t):
    r = t.run(["-i", "-B8BITMIME", "a@example.com"], lf("Subject: b8", "", "ascii"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.body, b"ascii\r\n", "body")


@test("relay without 8BITMIME: the 8-bit body is sent as quoted-printable")
def _(t):
    t.relay.extensions(EIGHTBITMIME=False)
    body = "Grüße aus München\nnoch eine Zeile mit ü\n"
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: downgrade", "MIME-Version: 1.0",
                               "Content-Type: text/plain; charset=UTF-8",
                               "Content-Transfer-Encoding: 8bit", "") + body.encode())
    t.exit(r, 0)
    m = t.message()
    t.ok(not m.eight_bit, "no 8-bit byte on the wire")
    t.eq([o for o in m.mail_options if o.upper().startswith("BODY=")], [], "no BODY= parameter")
    t.eq((m.get("Content-Transfer-Encoding") or "").lower(), "quoted-printable", "CTE")
    t.eq(m.content_lf(), body.encode(), "decoded body")
    t.ok(m.longest_line <= 78, "QP lines are short (longest %d)" % m.longest_line)


@test("a line over 998 octets is re-encoded, nothing truncated")
def _(t):
    long_line = "word " * 700
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: long line", "", "short",
                               long_line, "end"))
    t.exit(r, 0)
    m = t.message()
    t.ok(m.longest_line <= 998, "longest line on the wire %d <= 998" % m.longest_line)
    cte = (m.get("Content-Transfer-Encoding") or "").lower()
    t.isin(cte, ("quoted-printable", "base64"), "re-encoded")
    t.eq(m.content_lf(), ("short\n%s\nend\n" % long_line).encode(),
         "decoded body")


@test("Japanese Subject: encoded words, folded below 78 columns, decoding back")
def _(t):
    subject = "日本語の件名テスト – 長めの件名でも正しく折り返されるか確認します 🐶"
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: " + subject, "", "body"))
    t.exit(r, 0)
    m = t.message()
    raw = m.raw_field("Subject")
    t.require(raw is not None, "a Subject field")
    t.ok(all(b < 0x80 for b in raw), "Subject is ASCII on the wire: %r" % raw)
    t.match(r"(?i)=\?utf-8\?[bq]\?", m.get("Subject"), "encoded words")
    for line in raw.split(b"\r\n")[:-1]:
        t.ok(len(line) < 78, "line of %d columns: %r" % (len(line), line))
    t.eq(m.decoded("Subject"), subject, "decoded Subject")


@test("non-ASCII display name in From: encoded words, address kept")
def _(t):
    r = t.run(["-t", "-i"], lf("From: 山田 太郎 <alerts@mail.example.com>", "To: Jörg <j@example.com>",
                               "Subject: names", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.ok(all(b < 0x80 for b in m.head), "header is ASCII on the wire")
    t.eq(m.addresses("From"), [("山田 太郎", ALLOWED)], "From")
    t.eq(m.addresses("To"), [("Jörg", "j@example.com")], "To")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM")


@test("Bcc, Return-Path and Content-Length are never transmitted")
def _(t):
    head = ["To: a@example.com", "Bcc: b@example.com", "Return-Path: <bounce@example.net>",
            "Content-Length: 5", "Subject: strip"]
    t.exit(t.run(["-t", "-i"], lf(*head, "", "body")), 0)
    t.exit(t.run(["-i", "c@example.com"], lf(*head, "", "body")), 0)
    msgs = t.messages()
    t.require(len(msgs) == 2, "two messages, got %d" % len(msgs))
    for m, mode in zip(msgs, ("-t", "argv")):
        for name in ("Bcc", "Return-Path", "Content-Length"):
            t.ok(not m.has(name), "%s: no %s" % (mode, name))
        t.eq(m.get("To"), "a@example.com", "%s: To" % mode)
    t.eq(sorted(msgs[0].rcpt_tos), ["a@example.com", "b@example.com"], "-t recipients")
    t.eq(msgs[1].rcpt_tos, ["c@example.com"], "argv recipients")


@test("mbox 'From ' first line is dropped")
def _(t):
    r = t.run(["-t", "-i"], lf("From someone@example.com Sat Jan  3 01:05:34 1996",
                               "To: a@example.com", "Subject: mbox", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.notin(b"From someone", m.data, "the mbox line")
    t.eq(m.get("Subject"), "mbox", "Subject")
    t.eq(m.rcpt_tos, ["a@example.com"], "RCPT TO")
    t.eq(m.body, b"body\r\n", "body")


@test("folded fields keep their folding; field order kept")
def _(t):
    r = t.run(["-t", "-i"], lf("To: a@example.com", "Subject: fold",
                               "References: <one@example.com>", "\t<two@example.com>",
                               "  <three@example.com>", "X-First: 1", "X-Second: 2", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.raw_field("References"),
         b"References: <one@example.com>\r\n\t<two@example.com>\r\n  <three@example.com>\r\n",
         "References")
    names = [n for n in m.names() if n in ("To", "Subject", "References", "X-First", "X-Second")]
    t.eq(names, ["To", "Subject", "References", "X-First", "X-Second"], "order")


@test("a signature line '-- ' and trailing blanks are kept")
def _(t):
    r = t.run(["-i", "a@example.com"], lf("Subject: sig", "", "text  ", "-- ", "sig"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.body, b"text  \r\n-- \r\nsig\r\n", "body")


@test("an empty body still makes a message")
def _(t):
    r = t.run(["-i", "a@example.com"], b"Subject: empty\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("Subject"), "empty", "Subject")
    t.eq(m.body.strip(b"\r\n"), b"", "body")


@test("only a Cc header: no To is added")
def _(t):
    r = t.run(["-i", "c@example.com"], lf("Cc: c@example.com", "Subject: cc only", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.ok(not m.has("To"), "no To added")
    t.eq(m.get("Cc"), "c@example.com", "Cc")


@test("a non-ASCII recipient with SMTPUTF8 offered: SMTPUTF8 on MAIL FROM")
def _(t):
    r = t.run(["-i", "jörg@example.com"], lf("Subject: utf8 address", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["jörg@example.com"], "RCPT TO")
    t.isin("SMTPUTF8", [o.upper() for o in m.mail_options], "MAIL FROM parameters")


@test("a non-ASCII recipient without SMTPUTF8: a permanent error that says so")
def _(t):
    t.relay.extensions(SMTPUTF8=False)
    r = t.run(["-i", "jörg@example.com"], lf("Subject: utf8 address", "", "x"))
    t.exit(r, harness.EX_UNAVAILABLE)
    t.isin("SMTPUTF8", r.stderr, "the error names SMTPUTF8")
    t.nothing_sent()


@test("the log line names the outcome and carries the relay's 250 reply")
def _(t):
    r = t.run(["-i", "a@example.com"], b"Subject: logged\n\nno final newline")
    t.exit(r, 0)
    m = t.message()
    t.ok(m.raw.endswith(b"no final newline\r\n"), "the content ends with the last line and CRLF")
    log = t.log_text().decode("utf-8", "replace")
    t.isin(m.queue_id, log, "the relay's id in the log")
    t.match(r"status=sent", log, "status in the log")
    t.match(r"nrcpt=1\b", log, "recipient count in the log")


harness.main()
