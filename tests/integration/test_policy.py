#!/usr/bin/python3
"""Sender policy, From rewriting, aliases and local recipients, refused
control characters (SPEC §5, §7)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, FROM, ALLOWED, ROOT_ALIAS, LOCAL_RECIPIENT  # noqa: E402

ADDRESS_FIELDS = ("From", "Sender", "Reply-To", "To", "Cc", "Resent-From", "Resent-To",
                  "Resent-Cc")


def lf(*lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


def no_bare_names(t, m):
    for name in ADDRESS_FIELDS:
        for a in m.addrs(name):
            t.ok("@" in a, "%s holds a bare name %r" % (name, a))
    t.ok(all("@" in x for x in m.rcpt_tos), "no bare name in RCPT TO %r" % (m.rcpt_tos,))


CRON_BODY = ("/etc/cron.daily/logrotate:\nerror: Ungültige Option – “--frobnicate”\n"
             "Zeile zwei ✓ and no final newline")


@test("Debian cron: -FCronDaemon -i -B8BITMIME -oem root")
def _(t):
    t.config(qualify_domain="host.example.net")
    msg = lf("From: root (Cron Daemon)", "To: root", "Subject: Cron <root@host> /usr/local/bin/job",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8",
             "Content-Transfer-Encoding: 8bit", "X-Cron-Env: <SHELL=/bin/sh>",
             "X-Cron-Env: <HOME=/root>", "X-Cron-Env: <PATH=/usr/bin:/bin>",
             "X-Cron-Env: <LOGNAME=root>", "") + CRON_BODY.encode()
    r = t.run(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], msg)
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "one RCPT, root's alias")
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.addresses("From"), [("Cron Daemon", FROM)], "From rewritten, display name kept")
    t.eq(m.addrs("To"), ["root@host.example.net"], "To qualified")
    t.ok(not m.has("Reply-To"), "no Reply-To for a From without a domain")
    no_bare_names(t, m)
    t.eq(m.get("Subject"), "Cron <root@host> /usr/local/bin/job", "Subject")
    t.eq(m.get_all("X-Cron-Env"), ["<SHELL=/bin/sh>", "<HOME=/root>", "<PATH=/usr/bin:/bin>",
                                   "<LOGNAME=root>"], "X-Cron-Env lines")
    t.isin("BODY=8BITMIME", [o.upper() for o in m.mail_options], "MAIL FROM parameters")
    t.eq(m.body, (CRON_BODY.replace("\n", "\r\n") + "\r\n").encode(), "job output intact")
    t.ok(m.has("Date"), "Date added")
    t.ok(m.has("Message-ID"), "Message-ID added")
    t.wire_line_ends(m)


@test("Debian cron without qualify_domain: To still gets a domain")
def _(t):
    r = t.run(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
              lf("From: root (Cron Daemon)", "To: root", "Subject: Cron <root@host> true", "",
                 "out"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")
    no_bare_names(t, m)


@test("-i root: the alias")
def _(t):
    r = t.run(["-i", "root"], lf("Subject: to root", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")


@test("-i root@localhost: localhost is a local domain, so the alias")
def _(t):
    r = t.run(["-i", "root@localhost"], lf("Subject: to root@localhost", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")


@test("-i someuser without an alias: local_recipient")
def _(t):
    r = t.run(["-i", "someuser"], lf("Subject: to someuser", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [LOCAL_RECIPIENT], "RCPT TO")
    no_bare_names(t, m)


@test("-i someuser with local_recipient empty: exit 67, nothing sent")
def _(t):
    t.config(local_recipient="")
    r = t.run(["-i", "someuser"], lf("Subject: to nobody", "", "body"))
    t.exit(r, harness.EX_NOUSER)
    t.nothing_sent()
    t.isin("someuser", r.stderr, "the name in the error")


@test("local_domains: user@a.local.domain goes through the aliases")
def _(t):
    t.config(local_domains=["intranet.example"])
    r = t.run(["-i", "root@intranet.example", "other@intranet.example"],
              lf("Subject: local domains", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), sorted([ROOT_ALIAS, LOCAL_RECIPIENT]), "RCPT TO")


@test("aliases: recursive, comments, continuation lines, case-insensitive")
def _(t):
    t.aliases("# comment line\n"
              "root:   ops\n"
              "ops:    first@example.org,\n"
              "        second@example.org\n"
              "\n"
              "Webmaster: root, third@example.org\n")
    r = t.run(["-i", "webmaster"], lf("Subject: alias chain", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["first@example.org", "second@example.org", "third@example.org"],
         "RCPT TO")


@test("aliases: |command, /file and :include: entries are skipped")
def _(t):
    t.aliases("root: |/usr/bin/procmail, /var/mail/root, :include:/etc/mail/list, "
              "real@example.org\n")
    r = t.run(["-i", "root"], lf("Subject: skipped entries", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["real@example.org"], "RCPT TO")


@test("aliases: an alias loop is cut, nothing hangs")
def _(t):
    t.aliases("a: b\nb: a, end@example.org\n")
    r = t.run(["-i", "a"], lf("Subject: loop", "", "body"), timeout=15)
    t.exit(r, 0)
    m = t.message()
    no_bare_names(t, m)
    t.isin("end@example.org", m.rcpt_tos, "the final target")


@test("a disallowed -f and From from a web form: MailFrom address, Reply-To keeps the form's")
def _(t):
    r = t.run(["-t", "-i", "-f", "visitor@gmail.com"],
              lf('From: "Web Visitor" <visitor@gmail.com>', "To: office@example.com",
                 "Subject: contact form", "", "Hello"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.addresses("From"), [("Web Visitor", FROM)], "From")
    t.eq(m.addrs("Reply-To"), ["visitor@gmail.com"], "Reply-To")
    t.eq(len(m.raw_fields("From")), 1, "one From")
    t.eq(m.rcpt_tos, ["office@example.com"], "RCPT TO")


@test("a disallowed From with a Reply-To of its own: that Reply-To is kept alone")
def _(t):
    r = t.run(["-t", "-i"], lf("From: visitor@gmail.com", "Reply-To: answers@example.net",
                               "To: office@example.com", "Subject: r", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addrs("From"), [FROM], "From")
    t.eq(m.get_all("Reply-To"), ["answers@example.net"], "Reply-To")


@test("an allowed From is kept as written and becomes the envelope sender")
def _(t):
    r = t.run(["-t", "-i"], lf('From: "Alerts" <alerts@mail.example.com>', "To: a@example.com",
                               "Subject: allowed", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, ALLOWED, "MAIL FROM")
    t.eq(m.raw_field("From"), b'From: "Alerts" <alerts@mail.example.com>\r\n', "From")
    t.ok(not m.has("Reply-To"), "no Reply-To")


@test("an allowed From in another case still matches allowed_from")
def _(t):
    r = t.run(["-t", "-i"], lf("From: ALERTS@Mail.Example.Com", "To: a@example.com",
                               "Subject: case", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from.lower(), ALLOWED.lower(), "MAIL FROM")
    t.ok(not m.has("Reply-To"), "no Reply-To")


@test("-f allowed: MAIL FROM is -f")
def _(t):
    r = t.run(["-i", "-f", ALLOWED, "a@example.com"], lf("Subject: f", "", "x"))
    t.exit(r, 0)
    t.eq(t.message().mail_from, ALLOWED, "MAIL FROM")


@test("-r allowed (glued): MAIL FROM is -r")
def _(t):
    r = t.run(["-i", "-r" + ALLOWED, "a@example.com"], lf("Subject: r", "", "x"))
    t.exit(r, 0)
    t.eq(t.message().mail_from, ALLOWED, "MAIL FROM")


# SPEC §5: -f is "subject to §5", and the null sender is neither `from` nor
# in allowed_from; ACS identifies the sender by a MailFrom address.
@test("-f '<>': ACS needs a MailFrom address, so MAIL FROM is `from`")
def _(t):
    r = t.run(["-i", "-f", "<>", "a@example.com"], lf("Subject: null sender", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.addrs("From"), [FROM], "From")


@test("rewrite_from = never: a disallowed From stays, the envelope is still `from`")
def _(t):
    t.config(rewrite_from="never")
    r = t.run(["-t", "-i"], lf("From: Visitor <visitor@gmail.com>", "To: a@example.com",
                               "Subject: never", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.raw_field("From"), b"From: Visitor <visitor@gmail.com>\r\n", "From")
    t.ok(not m.has("Reply-To"), "no Reply-To")


@test("-F sets the display name of the From acsmail writes")
def _(t):
    r = t.run(["-i", "-F", "Backup Job", "a@example.com"], lf("Subject: F", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addresses("From"), [("Backup Job", FROM)], "From")


@test("from_name is the display name when there is no From and no -F")
def _(t):
    t.config(from_name="Example Alerts")
    r = t.run(["-i", "a@example.com"], lf("Subject: from_name", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addresses("From"), [("Example Alerts", FROM)], "From")


@test("bare names in headers get qualify_domain; RCPT goes through aliases")
def _(t):
    t.config(qualify_domain="host.example.net")
    r = t.run(["-t", "-i"], lf("To: root, someone@example.com", "Cc: operator",
                               "Subject: bare", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addrs("To"), ["root@host.example.net", "someone@example.com"], "To")
    t.eq(m.addrs("Cc"), ["operator@host.example.net"], "Cc")
    t.eq(sorted(m.rcpt_tos), sorted([ROOT_ALIAS, "someone@example.com", LOCAL_RECIPIENT]),
         "RCPT TO")


@test("mdadm: From: mdadm monitoring <root> becomes the MailFrom address")
def _(t):
    r = t.run(["-t"], lf("From: mdadm monitoring <root>", "To: root",
                         "Subject: Fail event on /dev/md0:host", "", "A Fail event"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addresses("From"), [("mdadm monitoring", FROM)], "From")
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")
    t.ok(not m.has("Reply-To"), "no Reply-To")
    no_bare_names(t, m)


@test("logwatch: a From with no @ at all")
def _(t):
    r = t.run(["-t"], lf("From: Logwatch", "To: root", "Subject: Logwatch for host",
                         "MIME-Version: 1.0", "Content-Type: text/plain; charset=\"UTF-8\"", "",
                         "report"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addrs("From"), [FROM], "From address")
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")
    no_bare_names(t, m)


CONTROL = [
    ("-f with CR LF", ["-i", "-f", "evil@example.com\r\nRCPT TO:<x@example.net>", "a@example.com"]),
    ("-f with LF", ["-i", "-f", "evil@example.com\nX: y", "a@example.com"]),
    ("a recipient with CR LF", ["-i", "a@example.com\r\nRCPT TO:<x@example.net>"]),
    ("a recipient with a control character", ["-i", "a\x01b@example.com"]),
]

# SPEC §7 says "refused" without a code: a usage error (64) and a data
# error (65) both refuse; anything else does not.
for _desc, _args in CONTROL:
    def _make(args):
        def fn(t):
            r = t.run(args, lf("Subject: injection", "", "x"))
            t.isin(r.code, (harness.EX_USAGE, harness.EX_DATAERR), "exit code")
            t.nothing_sent()
            t.no_connection()
        return fn
    test("control characters refused: " + _desc)(_make(_args))


@test("control characters refused: a To header with NUL in an address (-t)")
def _(t):
    r = t.run(["-t"], b"To: a\x00b@example.com\nSubject: nul\n\nx\n")
    t.exit(r, harness.EX_DATAERR)
    t.nothing_sent()


@test("control characters refused: a From header with a bare CR before a second field")
def _(t):
    r = t.run(["-t"], b"To: a@example.com\nFrom: alerts@mail.example.com\rBcc: x@evil.example\n"
                      b"Subject: cr\n\nx\n")
    t.exit(r, harness.EX_DATAERR)
    t.nothing_sent()


harness.main()
