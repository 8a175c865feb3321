#!/usr/bin/python3
"""Real callers pointed at the built binary (php-cli, mutt, git-email, s-nail
from Debian), and the argv/stdin shapes of the others (CALLERS.md)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, FROM, ALLOWED, ROOT_ALIAS  # noqa: E402


def lf(*lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


def need(t, program, package):
    if not harness.have(program):
        t.skip("%s not installed (Debian package %s)" % (program, package))


def caller_env(t, **extra):
    home = t.path("home")
    os.makedirs(home, exist_ok=True)
    e = {"HOME": home, "TERM": "dumb", "LC_ALL": "C.UTF-8", "MAILRC": "/dev/null",
         "GIT_CONFIG_NOSYSTEM": "1", "EDITOR": "true", "VISUAL": "true"}
    e.update(extra)
    return t.env(e)


# ---------------------------------------------------------------------------
# real programs

PHP = r'''
$ok = mail("rcpt@example.com", "Kontaktformular: Grüße",
    "Hello from PHP\nSecond line\n.\nAfter a lone dot\n",
    ["From" => "Web Visitor <visitor@gmail.com>", "X-Form" => "contact",
     "Cc" => "copy@example.net"],
    "-falerts@mail.example.com");
echo $ok ? "SENT" : "FAILED";
'''


@test("PHP mail() through sendmail_path, extra headers and -f")
def _(t):
    need(t, "php", "php-cli")
    bin_ = harness.bin_path()
    r = t.exec(["php", "-n", "-d", "sendmail_path=%s -t -i" % bin_, "-d", "mail.add_x_header=0",
                "-r", PHP], b"", env=caller_env(t))
    t.eq(r.stdout.strip(), "SENT", "mail() returned true")
    t.exit(r, 0, "php exit code")
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["copy@example.net", "rcpt@example.com"], "RCPT TO")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM: the allowed 5th argument")
    t.eq(m.addresses("From"), [("Web Visitor", FROM)], "From rewritten, name kept")
    t.eq(m.addrs("Reply-To"), ["visitor@gmail.com"], "Reply-To: the visitor")
    t.eq(m.get("X-Form"), "contact", "extra header")
    t.eq(m.decoded("Subject"), "Kontaktformular: Grüße", "Subject")
    t.ok(all(b < 0x80 for b in m.head), "header is ASCII")
    t.wire_line_ends(m)
    # PHP appends CRLF to the body it was given
    t.eq(m.body, b"Hello from PHP\r\nSecond line\r\n.\r\nAfter a lone dot\r\n\r\n", "body")
    t.ok(m.has("Date") and m.has("Message-ID"), "Date and Message-ID added")


@test("mutt in batch mode with sendmail=\"acsmail -oem -oi\", Cc and Bcc")
def _(t):
    need(t, "mutt", "mutt")
    home = t.path("home")
    os.makedirs(os.path.join(home, "Mail"), exist_ok=True)
    muttrc = t.path("muttrc")
    with open(muttrc, "w") as f:
        f.write('set sendmail="%s -oem -oi"\n' % harness.bin_path())
        f.write('set from="Alerts <%s>"\nset use_from=yes\n' % ALLOWED)
        f.write('set charset="utf-8"\nset send_charset="utf-8"\nset record=""\nset copy=no\n')
        f.write('set folder="%s/Mail"\nset spoolfile="%s/spool"\n' % (home, home))
        f.write('set mbox_type=mbox\nset header_cache=""\nset hostname="host.example.net"\n')
    body = "Body from mutt\nGrüße\n"
    r = t.exec(["mutt", "-n", "-F", muttrc, "-s", "mutt subject", "-c", "cc@example.org",
                "-b", "bcc@example.org", "rcpt@example.com"], body.encode(),
               env=caller_env(t))
    t.exit(r, 0, "mutt exit code")
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["bcc@example.org", "cc@example.org", "rcpt@example.com"],
         "RCPT TO")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM: mutt's allowed From")
    t.eq(m.addresses("From"), [("Alerts", ALLOWED)], "From kept")
    t.eq(m.get("Subject"), "mutt subject", "Subject")
    t.ok(not m.has("Bcc"), "no Bcc header")
    t.eq(m.content_lf(), body.encode(), "body")


@test("git send-email of a git format-patch, --smtp-server=acsmail")
def _(t):
    need(t, "git", "git")
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    if not os.path.exists(os.path.join(exec_path, "git-send-email")):
        t.skip("git send-email not installed (Debian package git-email)")
    env = caller_env(t, GIT_AUTHOR_NAME="A U Thor", GIT_AUTHOR_EMAIL="author@example.org",
                     GIT_COMMITTER_NAME="A U Thor", GIT_COMMITTER_EMAIL="author@example.org")
    repo = t.path("repo")
    os.makedirs(repo)

    def git(*args):
        r = t.exec(["git"] + list(args), b"", env=env, cwd=repo)
        t.require(r.code == 0, "git %s failed: %s" % (args[0], r.stderr))
        return r
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "init")
    with open(os.path.join(repo, "hello.c"), "w") as f:
        f.write('#include <stdio.h>\n\nint\nmain(void)\n{\n\tputs("hello");\n\treturn 0;\n}\n')
    git("add", "hello.c")
    git("commit", "-q", "-m", "Add hello.c", "-m", "A longer description.\n.\nWith a lone dot.")
    git("format-patch", "-q", "-1", "-o", t.path("patches"))
    patches = sorted(os.listdir(t.path("patches")))
    t.require(len(patches) == 1, "one patch, got %r" % patches)
    patch = os.path.join(t.path("patches"), patches[0])
    r = t.exec(["git", "send-email", "--smtp-server=" + harness.bin_path(),
                "--to=rcpt@example.com", "--suppress-cc=all", "--confirm=never", "--quiet",
                "--no-validate", patch], b"", env=env, cwd=repo)
    t.exit(r, 0, "git send-email exit code")
    m = t.message()
    t.eq(m.rcpt_tos, ["rcpt@example.com"], "RCPT TO")
    t.eq(m.mail_from, FROM, "MAIL FROM: the author is not a MailFrom address")
    t.eq(m.addresses("From"), [("A U Thor", FROM)], "From rewritten, name kept")
    t.eq(m.addrs("Reply-To"), ["author@example.org"], "Reply-To: the author")
    t.eq(m.get("Subject"), "[PATCH] Add hello.c", "Subject")
    with open(patch, "rb") as f:
        original = f.read()
    diff = original[original.index(b"\ndiff --git"):].replace(b"\n", b"\r\n")
    t.isin(diff[2:], m.body, "the patch arrives intact, tabs and '-- ' included")
    t.isin(b"\r\n.\r\nWith a lone dot.\r\n", m.body, "the lone dot of the message kept")


@test("s-nail with mta=acsmail, -r and a UTF-8 body")
def _(t):
    need(t, "s-nail", "s-nail")
    body = "Body from s-nail\nGrüße\n"
    r = t.exec(["s-nail", "-n", "-S", "mta=" + harness.bin_path(), "-S",
                "hostname=host.example.net", "-r", "Alerts <%s>" % ALLOWED,
                "-s", "s-nail subject", "rcpt@example.com"], body.encode(), env=caller_env(t))
    t.exit(r, 0, "s-nail exit code")
    m = t.message()
    t.eq(m.rcpt_tos, ["rcpt@example.com"], "RCPT TO")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM")
    t.eq(m.addrs("From"), [ALLOWED], "From")
    t.eq(m.get("Subject"), "s-nail subject", "Subject")
    t.eq(m.content_lf(), body.encode(), "body")


@test("s-nail without -r: the MailFrom address")
def _(t):
    need(t, "s-nail", "s-nail")
    r = t.exec(["s-nail", "-n", "-S", "mta=" + harness.bin_path(), "-S",
                "hostname=host.example.net", "-S", "from=someone@example.com",
                "-s", "plain", "rcpt@example.com"], b"hello\n", env=caller_env(t))
    t.exit(r, 0, "s-nail exit code")
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.addrs("From"), [FROM], "From")
    t.eq(m.addrs("Reply-To"), ["someone@example.com"], "Reply-To")


# ---------------------------------------------------------------------------
# the shapes of other callers, as CALLERS.md records them

@test("PHPMailer: -oi -f<sender> -t with a Bcc header it expects stripped")
def _(t):
    r = t.run(["-oi", "-f" + ALLOWED, "-t"],
              lf("Date: Thu, 3 Dec 2026 10:00:00 +0000", "To: Customer <c@example.com>",
                 "From: Shop <alerts@mail.example.com>", "Bcc: archive@example.org",
                 "Subject: Your order", "Message-ID: <abc@shop.example>", "MIME-Version: 1.0",
                 "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
                 "", "Danke für Ihre Bestellung."))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["archive@example.org", "c@example.com"], "RCPT TO")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM")
    t.ok(not m.has("Bcc"), "Bcc stripped")
    t.eq(m.get("Message-ID"), "<abc@shop.example>", "Message-ID kept")


@test("old PHPMailer: -t -i -oi -fX -t, flags repeated")
def _(t):
    r = t.run(["-t", "-i", "-oi", "-f" + ALLOWED, "-t"],
              lf("To: c@example.com", "Subject: repeated", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["c@example.com"], "RCPT TO, once")


@test("Symfony Mailer sendmail -t mode: -f'<s>' -- 'r1' 'r2'")
def _(t):
    r = t.run(["-f<%s>" % ALLOWED, "--", "r1@example.com", "r2@example.com"],
              lf("From: alerts@mail.example.com", "To: r1@example.com", "Cc: r2@example.com",
                 "Subject: symfony", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, ALLOWED, "MAIL FROM from -f<...>")
    t.eq(sorted(m.rcpt_tos), ["r1@example.com", "r2@example.com"], "RCPT TO")


@test("cronie: -FCronDaemon -i -odi -oem -oi -t -f root")
def _(t):
    r = t.run(["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"],
              lf("From: root (Cron Daemon)", "To: root,ops@example.com",
                 "Subject: Cron <root@host> run-parts /etc/cron.hourly",
                 "Auto-Submitted: auto-generated", "Precedence: bulk", "", "output"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM: a bare -f root is not a MailFrom address")
    t.eq(sorted(m.rcpt_tos), sorted([ROOT_ALIAS, "ops@example.com"]), "RCPT TO")
    t.eq(m.addresses("From"), [("Cron Daemon", FROM)], "From")
    t.eq(m.get("Auto-Submitted"), "auto-generated", "Auto-Submitted kept")
    for a in m.addrs("To"):
        t.ok("@" in a, "To holds a bare name %r" % a)


@test("systemd-cron: -i -B 8BITMIME root with a Date of its own")
def _(t):
    r = t.run(["-i", "-B", "8BITMIME", "root"],
              lf("Date: Thu, 03 Dec 2026 06:25:01 +0000", "From: root (systemd-cron)", "To: root",
                 "Subject: [host] job failed", "Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: 8bit", "", "Fehler: ü"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")
    t.eq(m.get_all("Date"), ["Thu, 03 Dec 2026 06:25:01 +0000"], "Date kept")
    t.eq(m.addresses("From"), [("systemd-cron", FROM)], "From")
    t.eq(m.body, "Fehler: ü\r\n".encode(), "body")


@test("unattended-upgrades: -oi -t, From root, quoted-printable UTF-8 body")
def _(t):
    r = t.run(["-oi", "-t"],
              lf("From: root", "To: root", "Auto-Submitted: auto-generated",
                 "Subject: [host] unattended-upgrades result", "MIME-Version: 1.0",
                 'Content-Type: text/plain; charset="utf-8"',
                 "Content-Transfer-Encoding: quoted-printable",
                 "", "Paket =C3=BCberpr=C3=BCft", ".", "Ende"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, [ROOT_ALIAS], "RCPT TO")
    t.eq(m.addrs("From"), [FROM], "From")
    t.eq(m.body, b"Paket =C3=BCberpr=C3=BCft\r\n.\r\nEnde\r\n", "body kept as written")


@test("bsd-mailx: -i rcpt with To, Cc and Bcc headers, Bcc stripped without -t")
def _(t):
    r = t.run(["-i", "to@example.com", "cc@example.com", "bcc@example.com"],
              lf("To: to@example.com", "Cc: cc@example.com", "Bcc: bcc@example.com",
                 "Subject: mailx", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["bcc@example.com", "cc@example.com", "to@example.com"], "RCPT TO")
    t.ok(not m.has("Bcc"), "no Bcc header")
    t.notin(b"bcc@example.com", m.data, "the Bcc address not in the message")


@test("fail2ban: -f \"<sender>\" \"dest1,dest2\"")
def _(t):
    r = t.run(["-f", "<fail2ban@host.example.net>", "ops@example.com,sec@example.com"],
              lf("Subject: [Fail2Ban] sshd: banned 192.0.2.1",
                 "From: Fail2Ban <fail2ban@host.example.net>",
                 "To: ops@example.com,sec@example.com", "", "banned"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(sorted(m.rcpt_tos), ["ops@example.com", "sec@example.com"], "RCPT TO")
    t.eq(m.addresses("From"), [("Fail2Ban", FROM)], "From")
    t.eq(m.addrs("Reply-To"), ["fail2ban@host.example.net"], "Reply-To")


@test("GNU mailutils mail: -oi -f from -t")
def _(t):
    r = t.run(["-oi", "-f", ALLOWED, "-t"],
              lf("To: r@example.com", "Subject: mailutils", "", "x"))
    t.exit(r, 0)
    m = t.message()
    t.eq(m.mail_from, ALLOWED, "MAIL FROM")
    t.eq(m.rcpt_tos, ["r@example.com"], "RCPT TO")


harness.main()
