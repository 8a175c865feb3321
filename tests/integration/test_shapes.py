#!/usr/bin/python3
"""What real programs really send, in the shapes they really send it.

Each test runs a real caller from Debian where one is installed (php-cli,
GNU mailutils, bsd-mailx, s-nail, git send-email, Python's email package)
and otherwise replays the argv and stdin that caller was seen to produce,
byte for byte. Every message that arrives is checked the same way: exactly
one CRLF per line, no line of 998 octets or more, no Bcc, no bare name in an
address field, and every address field parseable by Python's email package.
test_callers.py and test_policy.py hold the basic caller shapes; these are
the harder ones."""

import email
import email.utils
import email.errors
import email.header
import email.policy
import os
import quopri
import re
import subprocess
import sys
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, FROM, ALLOWED, ROOT_ALIAS  # noqa: E402

ADDRESS_FIELDS = ("From", "To", "Cc", "Reply-To", "Sender", "Resent-From", "Resent-To",
                  "Resent-Cc", "Disposition-Notification-To", "Mail-Followup-To",
                  "Mail-Reply-To")


def lf(*lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


def caller_env(t, **extra):
    home = t.path("home")
    os.makedirs(home, exist_ok=True)
    e = {"HOME": home, "TERM": "dumb", "LC_ALL": "C.UTF-8", "MAILRC": "/dev/null",
         "GIT_CONFIG_NOSYSTEM": "1", "EDITOR": "true", "VISUAL": "true"}
    e.update(extra)
    return t.env(e)


def sound(t, m, what=None):
    """the checks every message passes, whoever sent it"""
    what = what or m.id
    t.wire_line_ends(m, what)
    lines = m.data.split(b"\r\n")
    longest = max(len(x) for x in lines)
    t.ok(longest < 998, "%s: every line below 998 octets (longest %d: %r)" % (
        what, longest, max(lines, key=len)[:60]))
    t.ok(not m.has("Bcc") and not m.has("Resent-Bcc"), "%s: no Bcc field" % what)
    t.ok(not m.has("Return-Path"), "%s: no Return-Path field" % what)
    for name in ("Date", "Message-ID", "From"):
        t.eq(len(m.raw_fields(name)), 1, "%s: exactly one %s field" % (what, name))
    for name in ADDRESS_FIELDS:
        for disp, addr in m.addresses(name):
            t.ok("@" in addr, "%s: %s holds an address with a domain, not %r" % (
                what, name, addr))
        for h in m.parsed().get_all(name) or []:
            defects = [d for d in getattr(h, "defects", ())
                       if not isinstance(d, email.errors.ObsoleteHeaderDefect)]
            t.eq(defects, [], "%s: %s parses without defects" % (what, name))
    # every encoded word decodes in the charset it names
    for name, raw in m.fields:
        for cs, enc, text in re.findall(rb"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=", raw):
            try:
                b = email.header.decode_header("=?%s?%s?%s?=" % (
                    cs.decode(), enc.decode(), text.decode()))[0][0]
                b.decode(cs.decode().split("*")[0])
            except (UnicodeDecodeError, LookupError, ValueError) as e:
                t.ok(False, "%s: %s: the encoded word %r does not decode as %s (%s)" % (
                    what, name, text[:40], cs.decode(), e))


# ---------------------------------------------------------------------------
# PHP mail()

def php(t, code, sendmail_args="-t -i", x_header=False):
    if not harness.have("php"):
        return None
    r = t.exec(["php", "-n", "-d", "sendmail_path=%s %s" % (harness.bin_path(), sendmail_args),
                "-d", "mail.add_x_header=%d" % (1 if x_header else 0), "-r", code], b"",
               env=caller_env(t))
    t.eq(r.stdout.strip(), "SENT", "mail() returned true")
    return r


@test("PHP mail() to 45 addresses on one To line: folded below 998 octets, all delivered")
def _(t):
    to = ", ".join("user%02d@example-customer-domain.com" % i for i in range(45))
    code = ('$ok = mail("%s", "Newsletter", "Hello\\n", ["From" => "Shop <shop@example.net>"]);'
            ' echo $ok ? "SENT" : "FAILED";' % to)
    if php(t, code) is None:
        # PHP 8's exact shape: CRLF after each header it writes
        t.run(["-t", "-i"], ("To: %s\r\nSubject: Newsletter\r\nFrom: Shop <shop@example.net>\r\n"
                             "\r\nHello\n" % to).encode())
    msgs = t.messages()
    t.require(len(msgs) == 1, "one message, got %d" % len(msgs))
    m = msgs[0]
    t.eq(sorted(m.rcpt_tos), sorted(a.strip() for a in to.split(",")), "RCPT TO")
    t.eq(sorted(m.addrs("To")), sorted(a.strip() for a in to.split(",")), "To holds all 45")
    sound(t, m)


@test("PHP mail() with X-PHP-Originating-Script, Reply-To, Cc and a PHPMailer-style Bcc")
def _(t):
    code = r'''
$h = "From: \"Shop, Inc.\" <orders@shop.example>\r\nReply-To: support@shop.example\r\n"
   . "Cc: \"Doe, Jane\" <jane@example.net>\r\nBcc: archive@example.org, audit@example.org\r\n"
   . "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
   . "Content-Transfer-Encoding: 8bit";
$ok = mail("Customer <c@example.com>", "Ihre Bestellung", "Danke für Ihre Bestellung.\n.\nEnde\n", $h);
echo $ok ? "SENT" : "FAILED";
'''
    if php(t, code, x_header=True) is None:
        t.run(["-t", "-i"], b"To: Customer <c@example.com>\r\nSubject: Ihre Bestellung\r\n"
              b"X-PHP-Originating-Script: 0:Command line code\r\n"
              b'From: "Shop, Inc." <orders@shop.example>\r\nReply-To: support@shop.example\r\n'
              b'Cc: "Doe, Jane" <jane@example.net>\r\nBcc: archive@example.org, '
              b"audit@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
              b"charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
              + "Danke für Ihre Bestellung.\n.\nEnde\n".encode() + b"\r\n")
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["archive@example.org", "audit@example.org", "c@example.com",
                              "jane@example.net"], "RCPT TO: To, Cc and Bcc")
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.addresses("From"), [("Shop, Inc.", FROM)], "From: the name with its comma kept")
    t.eq(m.addrs("Reply-To"), ["support@shop.example"], "the caller's Reply-To, alone")
    t.eq(m.addresses("Cc"), [("Doe, Jane", "jane@example.net")], "Cc intact")
    t.match(r"^0:", m.get("X-PHP-Originating-Script"), "X-PHP-Originating-Script kept")
    t.notin(b"archive@example.org", m.data, "Bcc addresses not in the message")
    t.eq(m.body, "Danke für Ihre Bestellung.\r\n.\r\nEnde\r\n\r\n".encode(), "body")
    sound(t, m)


@test("PHP mail() with a Subject already RFC 2047 encoded in ISO-8859-1: kept verbatim")
def _(t):
    subj = "=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?="
    code = ('$ok = mail("r@example.com", "%s", "x\\n", "From: web@example.net"); '
            'echo $ok ? "SENT" : "FAILED";' % subj)
    if php(t, code) is None:
        t.run(["-t", "-i"], ("To: r@example.com\r\nSubject: %s\r\nFrom: web@example.net\r\n"
                             "\r\nx\n" % subj).encode())
    m = t.message()
    t.eq(m.get("Subject"), subj, "Subject as written")
    t.eq(m.decoded("Subject"), "Grüße aus Köln", "Subject decodes")
    sound(t, m)


@test("PHP mail() with a From display name in raw UTF-8 holding quotes and parentheses")
def _(t):
    code = r'''
$ok = mail("r@example.com", "Anfrage", "x\n",
    "From: \"Jörg \\\"JM\\\" Müller (IT)\" <jm@example.org>\r\nTo: \"Zoë, A.\" <a@example.com>");
echo $ok ? "SENT" : "FAILED";
'''
    if php(t, code) is None:
        t.run(["-t", "-i"], 'To: r@example.com\r\nSubject: Anfrage\r\nFrom: "Jörg \\"JM\\" '
              'Müller (IT)" <jm@example.org>\r\nTo: "Zoë, A." <a@example.com>\r\n\r\nx\n'.encode())
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "r@example.com"], "RCPT TO: both To fields")
    t.eq(m.addresses("From"), [('Jörg "JM" Müller (IT)', FROM)], "From: name kept")
    t.eq(m.addresses("Reply-To"), [('Jörg "JM" Müller (IT)', "jm@example.org")], "Reply-To")
    t.isin(("Zoë, A.", "a@example.com"), m.addresses("To"), "the second To's name")
    t.ok(all(b < 0x80 for b in m.head), "header is ASCII")
    sound(t, m)


# ---------------------------------------------------------------------------
# raw 8-bit header bytes (Latin-1 from old scripts)

@test("raw Latin-1 bytes in From and To display names: encoded words that decode")
def _(t):
    r = t.run(["-t", "-i"], b"From: J\xf6rg M\xfcller <jm@example.org>\n"
              b"To: Ren\xe9 Fran\xe7ois <r@example.com>\nSubject: caf\xe9\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["r@example.com"], "RCPT TO")
    t.eq(m.decoded("Subject"), "café", "Subject: Latin-1 taken as Latin-1")
    t.eq(m.addresses("From"), [("Jörg Müller", FROM)], "From: the name, as Latin-1 read it")
    t.eq(m.addresses("Reply-To"), [("Jörg Müller", "jm@example.org")], "Reply-To name")
    t.eq(m.addresses("To"), [("René François", "r@example.com")], "To name")
    t.ok(all(b < 0x80 for b in m.head), "header is ASCII")
    sound(t, m)


@test("encoded words in windows-1252, ISO-2022-JP, KOI8-R in a rewritten From: names survive")
def _(t):
    cases = [("€uro Team", "windows-1252"), ("山田太郎", "iso-2022-jp"), ("Привет", "koi8-r")]
    for i, (name, cs) in enumerate(cases):
        ew = email.header.Header(name, cs).encode()
        r = t.run(["-t", "-i"], lf("From: %s <n%d@example.org>" % (ew, i), "To: r@example.com",
                                   "Subject: cs%d" % i, "", "x"))
        t.exit(r, 0, "exit for %s" % cs)
    by = {m.get("Subject"): m for m in t.messages()}
    for i, (name, cs) in enumerate(cases):
        m = by.get("cs%d" % i)
        if m is None:
            t.ok(False, "cs%d arrived" % i)
            continue
        t.eq(m.addresses("From"), [(name, FROM)], "From name from %s" % cs)
        t.eq(m.addresses("Reply-To"), [(name, "n%d@example.org" % i)], "Reply-To from %s" % cs)
        t.notin(b'"=?', m.raw_field("From"), "%s: no encoded word inside quotes" % cs)
        sound(t, m, cs)


@test("a To with an ISO-2022-JP name beside a bare name: qualified, the name intact")
def _(t):
    ew = email.header.Header("山田太郎", "iso-2022-jp").encode()
    r = t.run(["-t", "-i"], lf("From: alerts@mail.example.com",
                               "To: %s <y@example.org>, root" % ew, "Subject: jp", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), sorted(["y@example.org", ROOT_ALIAS]), "RCPT TO")
    t.isin(("山田太郎", "y@example.org"), m.addresses("To"), "the Japanese name")
    t.notin(b'"=?', m.raw_field("To"), "no encoded word inside quotes")
    sound(t, m)


@test("Debian cron with a 990-character command: its Subject line folded below 998")
def _(t):
    cmd = "cd /srv/app && " + " && ".join("/usr/local/bin/task-%03d --quiet" % i
                                           for i in range(33))
    cmd = cmd[:990]
    r = t.run(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "ops@example.com"], lf(
        "From: root (Cron Daemon)", "To: ops@example.com",
        "Subject: Cron <root@host> " + cmd, "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit",
        "X-Cron-Env: <SHELL=/bin/sh>", "X-Cron-Env: <HOME=/root>",
        "X-Cron-Env: <PATH=/usr/bin:/bin>", "X-Cron-Env: <LOGNAME=root>", "", "done"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["ops@example.com"], "RCPT TO")
    t.eq(str(m.parsed()["Subject"]), "Cron <root@host> " + cmd, "Subject, unfolded, the same")
    t.eq(m.get_all("X-Cron-Env"), ["<SHELL=/bin/sh>", "<HOME=/root>", "<PATH=/usr/bin:/bin>",
                                   "<LOGNAME=root>"], "X-Cron-Env lines kept in order")
    sound(t, m)


# ---------------------------------------------------------------------------
# address fields acsmail does not route but must not break

@test("Disposition-Notification-To and Mail-Followup-To with UTF-8 names stay addresses")
def _(t):
    r = t.run(["-t", "-i"], lf(
        "From: Alerts <alerts@mail.example.com>", "To: list@example.org",
        "Subject: Protokoll", "Disposition-Notification-To: Jörg Müller <jm@example.org>",
        "Mail-Followup-To: Jörg Müller <jm@example.org>, list@example.org",
        "Content-Type: text/plain; charset=utf-8", "", "x"))
    t.exit(r, 0)
    m = t.message()
    # Python's header registry knows neither field: decode it as text, then
    # read its addresses
    def addresses(name):
        return email.utils.getaddresses([str(v) for v in m.parsed().get_all(name) or []])
    t.eq(addresses("Disposition-Notification-To"), [("Jörg Müller", "jm@example.org")],
         "Disposition-Notification-To")
    t.eq(addresses("Mail-Followup-To"), [("Jörg Müller", "jm@example.org"),
                                         ("", "list@example.org")], "Mail-Followup-To")
    sound(t, m)


# ---------------------------------------------------------------------------
# long lines and folding

@test("an unfolded References of 60 ids (1750 octets): folded, ids intact")
def _(t):
    ids = ["<msg%04d.abcdef@example.org>" % i for i in range(60)]
    r = t.run(["-t", "-i"], lf("From: alerts@mail.example.com", "To: r@example.com",
                               "Subject: Re: thread", "In-Reply-To: " + ids[-1],
                               "References: " + " ".join(ids), "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("References").split(), ids, "References: the same ids in the same order")
    sound(t, m)


@test("a 300-character ASCII Subject: kept, the same text once unfolded")
def _(t):
    subj = " ".join("word%03d" % i for i in range(38))
    r = t.run(["-t", "-i"], lf("To: r@example.com", "Subject: " + subj, "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(str(m.parsed()["Subject"]), subj, "Subject")
    sound(t, m)


@test("a 300-character UTF-8 Subject: encoded words below 78 columns, decoding back")
def _(t):
    subj = ("Überwachung: Festplatte /dev/sda meldet Fehler — " * 6).strip()
    r = t.run(["-t", "-i"], lf("To: r@example.com", "Subject: " + subj, "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(str(m.parsed()["Subject"]), subj, "Subject decodes to the same text")
    t.ok(all(len(x) < 78 for x in m.raw_field("Subject").split(b"\r\n")),
         "Subject lines below 78 columns")
    sound(t, m)


@test("-t with 60 addresses in a To folded with tabs: two transactions, all 60")
def _(t):
    addrs = ["User %02d <user%02d@example.com>" % (i, i) for i in range(60)]
    r = t.run(["-t", "-i"], lf("From: alerts@mail.example.com", "To: " + ",\n\t".join(addrs),
                               "Subject: many", "", "x"))
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), 2, "two transactions (max_recipients 50)")
    got = sorted(a for m in msgs for a in m.rcpt_tos)
    t.eq(got, sorted("user%02d@example.com" % i for i in range(60)), "RCPT TO")
    for m in msgs:
        t.eq(len(m.addrs("To")), 60, "%s: To holds all 60" % m.id)
        t.isin(b",\r\n\tUser 01 <user01@example.com>", m.raw_field("To"), "tab folding kept")
        sound(t, m)
    t.eq(msgs[0].data, msgs[1].data, "the same content twice")


# ---------------------------------------------------------------------------
# odd header shapes

@test("lower-case field names (to:, cc:, bcc:, subject:): routed, bcc dropped, no duplicates")
def _(t):
    r = t.run(["-t", "-i"], lf("to: a@example.com", "cc: b@example.com", "bcc: c@example.com",
                               "subject: lower", "from: alerts@mail.example.com", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "b@example.com", "c@example.com"], "RCPT TO")
    t.eq([n.lower() for n in m.names()].count("to"), 1, "no To added")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM: the allowed from:")
    t.notin(b"c@example.com", m.data, "the bcc address is not in the message")
    sound(t, m)


@test("obsolete 'Name :' fields: To : routed, Bcc : dropped, Subject : kept")
def _(t):
    r = t.run(["-t", "-i"], lf("To : a@example.com", "Bcc : b@example.com", "Subject : obs",
                               "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "b@example.com"], "RCPT TO")
    t.notin(b"b@example.com", m.data, "the Bcc address is not in the message")
    t.isin(b"Subject : obs\r\n", m.head, "Subject : kept")
    t.eq(sum(1 for n in m.names() if n.lower() == "to"), 1, "no second To")
    sound(t, m)


@test("odd-case Message-Id, DATE, reply-to, return-path: kept or dropped, none added twice")
def _(t):
    r = t.run(["-t", "-i"], lf("return-path: <bounce@example.org>", "Message-Id: <odd@example.org>",
                               "DATE: Wed, 2 Dec 2026 10:00:00 +0000", "reply-to: rt@example.org",
                               "From: web@example.org", "To: a@example.com", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("Message-ID"), "<odd@example.org>", "Message-Id kept")
    t.eq(m.get("Date"), "Wed, 2 Dec 2026 10:00:00 +0000", "DATE kept")
    t.eq(len(m.raw_fields("Reply-To")), 1, "one Reply-To")
    t.eq(m.addrs("Reply-To"), ["rt@example.org"], "the caller's reply-to")
    t.notin(b"bounce@example.org", m.data, "Return-Path dropped")
    sound(t, m)


@test("duplicate To fields, a Cc only, and an empty To: every address routed")
def _(t):
    r = t.run(["-t", "-i"], lf("To: a@example.com", "To: b@example.com", "", "x"))
    t.exit(r, 0)
    t.eq(sorted(t.message().rcpt_tos), ["a@example.com", "b@example.com"], "duplicate To")
    sound(t, t.message())
    before = len(t.messages())
    r = t.run(["-t", "-i"], lf("To:", "Cc: c@example.com", "Subject: empty to", "", "x"))
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), before + 1, "empty To with a Cc: one more message")
    m = msgs[-1]
    t.eq(m.rcpt_tos, ["c@example.com"], "RCPT TO: the Cc")
    t.notin("undisclosed-recipients:;", m.get_all("To"), "no undisclosed-recipients beside a Cc")
    sound(t, m)


@test("group syntax in To and an empty group: members routed, the field kept")
def _(t):
    r = t.run(["-t", "-i"], lf('To: team: a@example.com, "B, b" <b@example.com>;, c@example.com',
                               "Cc: undisclosed-recipients:;", "Subject: g", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "b@example.com", "c@example.com"], "RCPT TO")
    t.eq(m.get("To"), 'team: a@example.com, "B, b" <b@example.com>;, c@example.com', "To kept")
    sound(t, m)


@test("comments, quoted local parts and routes in To: one RCPT each, the field kept")
def _(t):
    to = ('user@example.com (Doe, John), "john doe"@example.com, '
          '<@relay.example:routed@example.com>, Name (c) <n@example.com>')
    r = t.run(["-t", "-i"], lf("To: " + to, "Subject: c", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), sorted(['user@example.com', '"john doe"@example.com',
                                     "routed@example.com", "n@example.com"]), "RCPT TO")
    t.eq(m.get("To"), to, "To kept as written")


@test("display names with comma, quotes, backslash, parentheses, encoded words: kept in From")
def _(t):
    cases = [
        ('root (Cron, Daemon)', "Cron, Daemon", None),
        ('"Smith, John \\"JJ\\" \\\\ x" <john@example.org>', 'Smith, John "JJ" \\ x',
         "john@example.org"),
        ('John Doe (work) <jd@example.org>', "John Doe", "jd@example.org"),
        ('"ACME (Support)" <s@example.org>', "ACME (Support)", "s@example.org"),
        ('=?ISO-8859-1?Q?J=F6rg_M=FCller?= <jm@example.org>', "Jörg Müller", "jm@example.org"),
        ('=?UTF-8?Q?M=C3=BCller=2C_J=C3=B6rg?= <jm@example.org>', "Müller, Jörg",
         "jm@example.org"),
        ('=?UTF-8?B?5bGx55Sw?= "(IT)" <y@example.org>', "山田 (IT)", "y@example.org"),
    ]
    for i, (frm, name, reply) in enumerate(cases):
        r = t.run(["-t", "-i"], lf("From: " + frm, "To: r@example.com", "Subject: n%d" % i,
                                   "", "x"))
        t.exit(r, 0, "exit for From: %s" % frm)
    msgs = t.messages()
    t.require(len(msgs) == len(cases), "%d messages, got %d" % (len(cases), len(msgs)))
    by = {m.get("Subject"): m for m in msgs}
    for i, (frm, name, reply) in enumerate(cases):
        m = by.get("n%d" % i)
        if m is None:
            t.ok(False, "n%d arrived" % i)
            continue
        t.eq(m.addresses("From"), [(name, FROM)], "From: %s" % frm)
        t.eq(m.addrs("Reply-To"), [reply] if reply else [], "Reply-To for From: %s" % frm)
        sound(t, m, "From: %s" % frm)


@test("a body whose first line looks like a header: the body, not a recipient")
def _(t):
    body = b"To: evil@example.net\nBcc: evil2@example.net\nSubject: not a header\n\nrest\n"
    r = t.run(["-t", "-i"], b"To: r@example.com\nSubject: s\n\n" + body)
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["r@example.com"], "RCPT TO")
    t.eq(m.body, body.replace(b"\n", b"\r\n"), "body byte-identical")
    sound(t, m)


@test("Resent- headers of a forward (-t): only Resent-To/Cc/Bcc routed, both Bcc dropped")
def _(t):
    r = t.run(["-t", "-i"], lf(
        "Resent-From: alerts@mail.example.com", "Resent-To: new@example.com",
        "Resent-Cc: newcc@example.com", "Resent-Bcc: hidden@example.com",
        "Resent-Date: Thu, 3 Dec 2026 10:00:00 +0000", "Resent-Message-ID: <r1@example.org>",
        "From: Original <orig@example.net>", "To: old@example.com", "Bcc: oldbcc@example.com",
        "Subject: fwd", "Date: Wed, 2 Dec 2026 10:00:00 +0000",
        "Message-ID: <o1@example.net>", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["hidden@example.com", "new@example.com", "newcc@example.com"],
         "RCPT TO")
    t.notin(b"hidden@example.com", m.data, "Resent-Bcc not transmitted")
    t.notin(b"oldbcc@example.com", m.data, "the old Bcc not transmitted")
    t.eq(m.get("Message-ID"), "<o1@example.net>", "Message-ID kept")
    t.eq(m.get("Resent-Message-ID"), "<r1@example.org>", "Resent-Message-ID kept")
    sound(t, m)


@test("a 'From:' with an allowed address and a comment; an allowed Sender stays")
def _(t):
    r = t.run(["-t", "-i"], lf("From: alerts@mail.example.com (Alert System)",
                               "Sender: alerts@mail.example.com", "To: r@example.com",
                               "Subject: s", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, ALLOWED, "MAIL FROM")
    t.eq(m.get("From"), "alerts@mail.example.com (Alert System)", "From kept as written")
    t.eq(m.get("Sender"), "alerts@mail.example.com", "Sender kept")
    t.ok(not m.has("Reply-To"), "no Reply-To")
    sound(t, m)


# ---------------------------------------------------------------------------
# bodies

@test("binary attachment, base64 in 76-character lines: the body byte-identical")
def _(t):
    msg = MIMEMultipart()
    msg["From"] = "Backup <alerts@mail.example.com>"
    msg["To"] = "r@example.com"
    msg["Subject"] = "backup"
    msg.attach(MIMEText("see attachment\n", "plain", "utf-8"))
    blob = bytes(range(1, 256)) * 40
    msg.attach(MIMEApplication(blob, Name="dump.bin"))
    data = msg.as_bytes()
    r = t.run(["-t", "-i"], data)
    t.exit(r, 0)
    m = t.message()
    sent_body = data[data.index(b"\n\n") + 2:].replace(b"\n", b"\r\n")
    t.eq(m.body, sent_body, "body byte-identical")
    parts = [p for p in m.parsed().walk() if p.get_content_type() == "application/octet-stream"]
    t.eq(len(parts), 1, "one attachment")
    if parts:
        t.eq(parts[0].get_payload(decode=True), blob, "attachment decodes to the same bytes")
    sound(t, m)


@test("a multipart body with no final newline after the closing boundary (mailutils -A)")
def _(t):
    body = (b"--b1\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n"
            + "Grüße\n".encode() + b"\n--b1\nContent-Type: application/octet-stream; "
            b'name="hostname"\nContent-Transfer-Encoding: base64\n\ndm0K\n--b1--')
    r = t.run(["-oi", "-f", "root@vm", "-t"],
              b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\nSubject: plain\n'
              b"To: <to@example.com>\nUser-Agent: mail (GNU Mailutils 3.15)\n"
              b"Date: Thu,  3 Dec 2026 21:16:16 +0000\n\n" + body)
    t.exit(r, 0)
    m = t.message()
    t.eq(m.body, body.replace(b"\n", b"\r\n") + b"\r\n", "body, with one CRLF added at the end")
    t.eq(m.get("Date"), "Thu,  3 Dec 2026 21:16:16 +0000", "Date kept")
    sound(t, m)


# ---------------------------------------------------------------------------
# Python's email package, as scripts pipe it to `sendmail -t -i`

@test("Python email (policy default): UTF-8 names, folded To, Bcc, attachment, -t -i")
def _(t):
    msg = EmailMessage()
    msg["From"] = formataddr(("Jörg Müller, Jr.", "jm@example.org"))
    msg["To"] = ", ".join(formataddr(("Empfänger %d, Abteilung Qualitätssicherung" % i,
                                      "q%d@example.com" % i)) for i in range(6))
    msg["Cc"] = formataddr(('Zoë "Z" Ünal', "z@example.com"))
    msg["Bcc"] = "hidden@example.com"
    msg["Subject"] = "Tägliche Übersicht über 300 Zeichen: " + "Ärger " * 40
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content("Hallo,\n\nanbei die Übersicht.\n.\n-- \nJörg\n")
    msg.add_attachment(bytes(range(256)) * 8, maintype="application", subtype="octet-stream",
                       filename="Übersicht März.bin")
    data = msg.as_bytes()
    r = t.run(["-t", "-i"], data)
    t.exit(r, 0)
    m = t.message()
    want = sorted(["q%d@example.com" % i for i in range(6)] + ["z@example.com",
                                                               "hidden@example.com"])
    t.eq(sorted(m.rcpt_tos), want, "RCPT TO")
    t.eq(m.addresses("From"), [("Jörg Müller, Jr.", FROM)], "From: name kept")
    t.eq(m.addresses("Reply-To"), [("Jörg Müller, Jr.", "jm@example.org")], "Reply-To")
    orig = email.message_from_bytes(data, policy=email.policy.default)
    t.eq(m.addresses("To"), [(a.display_name, a.addr_spec) for a in orig["To"].addresses], "To")
    t.eq(m.addresses("Cc"), [('Zoë "Z" Ünal', "z@example.com")], "Cc")
    t.eq(str(m.parsed()["Subject"]), str(orig["Subject"]), "Subject")
    t.eq(m.get("Message-ID"), orig["Message-ID"], "Message-ID kept")
    t.eq(m.body, data[data.index(b"\n\n") + 2:].replace(b"\n", b"\r\n"), "body byte-identical")
    sound(t, m)


@test("unattended-upgrades shape: Python MIMEMultipart, UTF-8 QP text, -oi -t")
def _(t):
    msg = MIMEMultipart()
    msg["Subject"] = "[reboot required] unattended-upgrades result for host.example.net: True"
    msg["From"] = "root"
    msg["To"] = "root"
    msg["Auto-Submitted"] = "auto-generated"
    text = MIMEText("", "plain", "utf-8")
    text.replace_header("Content-Transfer-Encoding", "quoted-printable")
    body = ("Unattended upgrade result: All upgrades installed\n\nPakete, die aktualisiert "
            "wurden:\n libssl3 openssl — sicherheitsrelevant, Überprüfung nötig " * 3 +
            "\n.\nEnde\n")
    text.set_payload(quopri.encodestring(body.encode("utf-8")).decode("ascii"))
    msg.attach(text)
    data = msg.as_bytes()
    r = t.run(["-oi", "-t"], data)
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO: root's alias")
    t.eq(m.addrs("From"), [FROM], "From")
    t.eq(m.body, data[data.index(b"\n\n") + 2:].replace(b"\n", b"\r\n"), "body byte-identical")
    parts = [p for p in m.parsed().walk() if p.get_content_type() == "text/plain"]
    t.eq(parts[0].get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")
         if parts else None, body,
         "the text decodes back")
    sound(t, m)


# ---------------------------------------------------------------------------
# mail(1) programs: GNU mailutils, bsd-mailx, s-nail

@test("GNU mailutils mail -s UTF-8 -a Cc -a Bcc -r: recipients, no Bcc, Subject decodes")
def _(t):
    subj = "Bericht für Köln: Festplatte /dev/sda — SMART-Fehler erkannt"
    body = "***** Nagios *****\n\nNotification Type: PROBLEM\nState: CRITICAL\n.\nEnde\n"
    mu = harness.shutil.which("mail.mailutils")
    if mu:
        r = t.exec([mu, "-E", "set sendmail=sendmail://" + harness.bin_path(), "-s", subj,
                    "-a", 'Cc: "Doe, Jane" <cc@example.org>', "-a", "Bcc: bcc@example.org",
                    "-r", "alerts@mail.example.com", "to@example.com"], body.encode(),
                   env=caller_env(t))
        t.exit(r, 0, "mail.mailutils exit code")
    else:
        r = t.run(["-oi", "-f", "alerts@mail.example.com", "-t"],
                  ("To: <to@example.com>\nSubject: %s\nCc: \"Doe, Jane\" <cc@example.org>\n"
                   "Bcc: <bcc@example.org>\nUser-Agent: mail (GNU Mailutils 3.15)\n"
                   "Date: Thu,  3 Dec 2026 21:16:24 +0000\n\n%s" % (subj, body)).encode())
        t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["bcc@example.org", "cc@example.org", "to@example.com"], "RCPT TO")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM: -r")
    t.eq(str(m.parsed()["Subject"]), subj, "Subject decodes")
    t.notin(b"bcc@example.org", m.data, "the Bcc address is not in the message")
    t.eq(m.content_lf().decode("utf-8"), body, "body, the lone dot kept (-oi)")
    sound(t, m)


@test("GNU mailutils mail -r 'Name <addr>': its -f is a bare word, the envelope is `from`")
def _(t):
    mu = harness.shutil.which("mail.mailutils")
    if mu:
        r = t.exec([mu, "-E", "set sendmail=sendmail://" + harness.bin_path(), "-s", "smartd",
                    "-r", "Ops Team <ops@example.org>", "to@example.com"], b"x\n",
                   env=caller_env(t))
        t.exit(r, 0, "mail.mailutils exit code")
    else:
        r = t.run(["-oi", "-f", "Ops", "-t"], b"To: <to@example.com>\nSubject: smartd\n"
                  b"User-Agent: mail (GNU Mailutils 3.15)\n"
                  b"Date: Thu,  3 Dec 2026 21:16:24 +0000\n\nx\n")
        t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.rcpt_tos, ["to@example.com"], "RCPT TO")
    sound(t, m)


def bsd_mailx(t, args, stdin):
    p = harness.shutil.which("bsd-mailx")
    if not p:
        return None
    rc = t.path("mailrc")
    with open(rc, "w") as f:
        f.write("set sendmail=%s\n" % harness.bin_path())
    return t.exec([p] + args, stdin, env=caller_env(t, MAILRC=rc))


@test("bsd-mailx -s UTF-8 -c -b with several recipients: -i -t, Bcc header stripped")
def _(t):
    subj = "Grüße aus Köln — smartd meldet Fehler"
    r = bsd_mailx(t, ["-s", subj, "-c", "cc@example.org", "-b", "bcc@example.org",
                      "-a", "X-Foo: bar", "to@example.com,to2@example.com",
                      "Full Name <fn@example.com>"], "Körper\n".encode())
    if r is None:
        r = t.run(["-i", "-t"], ("To: Full Name <fn@example.com>, to@example.com,to2@example.com"
                                 "\nSubject: %s\nCc: cc@example.org\nBcc: bcc@example.org\n"
                                 "X-Foo: bar\nMIME-Version: 1.0\nContent-Type: text/plain; "
                                 'charset="UTF-8"\nContent-Transfer-Encoding: 8bit\n\nKörper\n'
                                 % subj).encode())
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["bcc@example.org", "cc@example.org", "fn@example.com",
                              "to2@example.com", "to@example.com"], "RCPT TO")
    t.eq(m.decoded("Subject"), subj, "Subject")
    t.eq(m.get("X-Foo"), "bar", "extra header")
    t.eq(m.body, "Körper\r\n".encode(), "body")
    sound(t, m)


@test("s-nail -s UTF-8 -c -b to a display name with a comma: its encoded words, delivered")
def _(t):
    if not harness.have("s-nail"):
        t.skip("s-nail not installed")
    r = t.exec(["s-nail", "-n", "-S", "mta=" + harness.bin_path(), "-S",
                "hostname=host.example.net", "-S", "from=Jörg Müller <jm@example.org>",
                "-s", "Überwachung: Fehler", "-c", "cc@example.org",
                "-b", "bcc@example.org", '"Müller, Jörg" <m@example.com>'],
               "Körper\n".encode(), env=caller_env(t))
    t.exit(r, 0, "s-nail exit code")
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["bcc@example.org", "cc@example.org", "m@example.com"], "RCPT TO")
    t.eq(m.addresses("From"), [("Jörg Müller", FROM)], "From")
    t.eq(m.addrs("To"), ["m@example.com"], "To (s-nail writes no names by default)")
    t.eq(m.decoded("Subject"), "Überwachung: Fehler", "Subject")
    sound(t, m)


# ---------------------------------------------------------------------------
# git send-email: cover letter, --cc, --bcc, UTF-8 names

@test("git send-email: cover letter and a patch, --to/--cc/--bcc, UTF-8 author with a comma")
def _(t):
    if not harness.have("git"):
        t.skip("git not installed")
    execdir = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout
    if not os.path.exists(os.path.join(execdir.strip(), "git-send-email")):
        t.skip("git send-email not installed (Debian package git-email)")
    name = "Jörg Müller, Jr"
    env = caller_env(t, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL="jm@example.org",
                     GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL="jm@example.org")
    repo = t.path("repo")
    os.makedirs(repo)

    def git(*args):
        r = t.exec(["git"] + list(args), b"", env=env, cwd=repo)
        t.require(r.code == 0, "git %s failed: %s" % (args[0], r.stderr))
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "init")
    with open(os.path.join(repo, "f.c"), "w") as f:
        f.write("int\nmain(void)\n{\n\treturn 0;\n}\n")
    git("add", "f.c")
    git("commit", "-q", "-m", "Ändere f.c: ein sehr langer Betreff, der über die Grenze von "
        "achtundsiebzig Zeichen hinausgeht", "-m", "Begründung.\n.\nMit einem Punkt.")
    git("format-patch", "-q", "--cover-letter", "-1", "-o", t.path("patches"))
    patches = sorted(os.path.join(t.path("patches"), p) for p in os.listdir(t.path("patches")))
    with open(patches[0], "r+", encoding="utf-8") as f:
        text = f.read().replace("*** SUBJECT HERE ***", "Zwei Änderungen").replace(
            "*** BLURB HERE ***", "Übersicht.")
        f.seek(0)
        f.write(text)
        f.truncate()
    r = t.exec(["git", "send-email", "--smtp-server=" + harness.bin_path(),
                "--to=Zoë <to@example.com>", '--cc="Doe, Jane" <cc@example.com>',
                "--bcc=bcc@example.com", "--suppress-cc=all", "--confirm=never", "--quiet",
                "--no-validate"] + patches, b"", env=env, cwd=repo)
    t.exit(r, 0, "git send-email exit code")
    msgs = t.messages()
    t.require(len(msgs) == 2, "two messages, got %d" % len(msgs))
    by = {("0/1" in (str(m.parsed()["Subject"]))): m for m in msgs}
    cover, patch = by.get(True), by.get(False)
    t.require(cover is not None and patch is not None, "a cover letter and a patch")
    for m in msgs:
        t.eq(sorted(m.rcpt_tos), ["bcc@example.com", "cc@example.com", "to@example.com"],
             "%s: RCPT TO" % m.id)
        t.eq(m.addresses("From"), [(name, FROM)], "%s: From name kept" % m.id)
        t.eq(m.addresses("Reply-To"), [(name, "jm@example.org")], "%s: Reply-To" % m.id)
        t.eq(m.addresses("Cc"), [("Doe, Jane", "cc@example.com")], "%s: Cc" % m.id)
        t.eq(m.addresses("To"), [("Zoë", "to@example.com")], "%s: To" % m.id)
        t.notin(b"bcc@example.com", m.data, "%s: the Bcc address is not in it" % m.id)
        sound(t, m)
    t.eq(str(cover.parsed()["Subject"]), "[PATCH 0/1] Zwei Änderungen", "cover Subject")
    t.eq(patch.get("In-Reply-To"), cover.get("Message-ID"), "the patch answers the cover")
    t.eq(str(patch.parsed()["Subject"]), "[PATCH 1/1] Ändere f.c: ein sehr langer Betreff, "
         "der über die Grenze von achtundsiebzig Zeichen hinausgeht", "patch Subject")
    with open(patches[1], "rb") as f:
        original = f.read()
    diff = original[original.index(b"\n---\n") + 1:].replace(b"\n", b"\r\n")
    t.isin(diff, patch.body, "the patch arrives intact")
    t.isin(b"\r\n.\r\nMit einem Punkt.\r\n", patch.body, "the lone dot kept (-i)")


harness.main()
