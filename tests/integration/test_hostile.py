#!/usr/bin/python3
"""Hostile and unlucky input (SPEC §2-§8): header and SMTP injection through
argv, headers and encoded words; oversized and malformed messages; secrets
in every output; hostile config files; exit codes that never claim success
for a message that went nowhere; a relay that misbehaves (a scripted server
below, for what tests/relay/relay.py cannot do); damaged queue files and
queue ids that try to name a path; odd command lines.

Each test states the rule it guards; a message handed over is never lost
(SPEC §3): whenever acsmail exits non-zero after reading one, it is in the
failed area."""

import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True       # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, FROM, ALLOWED, PASSWORD, EX_USAGE, EX_DATAERR  # noqa: E402
from harness import EX_TEMPFAIL, EX_CONFIG  # noqa: E402

MSG = b"Subject: hostile\n\nbody\n"
EVIL = "evil@attacker.example"


# ---------------------------------------------------------------------------
# helpers

def area(t, name):
    try:
        return sorted(os.listdir(os.path.join(t.queue_dir, name)))
    except FileNotFoundError:
        return []


def kept_failed(t, r, what):
    """a refused message: nothing reached the relay, and it is in failed/"""
    t.nothing_sent(what)
    t.ok(area(t, "failed"), "%s: the message is kept in the failed area (SPEC §3)" % what)


def header_lines(m):
    return m.head.split(b"\r\n")[:-1] if m.head else []


def no_injected_field(t, m, name, what):
    """no line of the header transmitted starts the field NAME"""
    bad = [ln for ln in header_lines(m) if ln.lower().startswith(name.lower().encode() + b":")]
    t.eq(bad, [], "%s: no %s field reached the relay" % (what, name))


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def max_rss_kb(t, args, stdin):
    """runs acsmail under /usr/bin/time; (result, max RSS in kB)"""
    r = t.exec(["/usr/bin/time", "-f", "RSS=%M", harness.bin_path()] + args, stdin,
               t.env(), timeout=120)
    rss = None
    for line in r.stderr.splitlines():
        if line.startswith("RSS="):
            rss = int(line[4:])
    return r, rss


class Scripted:
    """A scripted SMTP server on 127.0.0.1 for relay misbehaviour: an
    ACS-like dialogue (STARTTLS, AUTH LOGIN, DATA) whose replies can be
    replaced per step with raw bytes. Steps: greeting, ehlo, starttls, ehlo2,
    auth, auth_user, auth_pass, mail, rcpt, data, dot, rset, quit, other. A
    reply is bytes, "CLOSE" (drop the connection), or a callable(sock) that
    acts itself. trickle=True sends every reply one byte per TCP segment.
    It serves a bounded number of connections for a bounded time."""

    EHLO1 = b"250-localhost\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
    EHLO2 = (b"250-localhost\r\n250-SIZE 10485760\r\n250-PIPELINING\r\n"
             b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-AUTH LOGIN\r\n250 SMTPUTF8\r\n")

    def __init__(self, t, replies=None, trickle=False, conns=4, life=30):
        self.replies = dict(replies or {})
        self.trickle = trickle
        self.lines = []           # command lines received (AUTH data masked)
        self.plain_lines = []     # those received before TLS
        self.messages = []        # DATA contents taken
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certs = harness.certs_dir()
        self.ctx.load_cert_chain(os.path.join(certs, "server.pem"),
                                 os.path.join(certs, "server.key"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop_at = time.time() + life
        self.conns = conns
        self.done = False
        self.th = threading.Thread(target=self._serve, daemon=True)
        self.th.start()
        t.config(port=self.port, timeout=3)

    def close(self):
        self.done = True
        self.th.join(3)
        self.sock.close()

    def verbs(self):
        return [ln.split(b" ", 1)[0].strip().upper() for ln in self.lines]

    def _serve(self):
        n = 0
        while not self.done and time.time() < self.stop_at and n < self.conns:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            n += 1
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _send(self, s, data):
        if self.trickle:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                time.sleep(0.001)
        else:
            s.sendall(data)

    def _reply(self, s, step, default):
        r = self.replies.get(step, default)
        if callable(r):
            r(s)
            return None
        if r == "CLOSE":
            return "CLOSE"
        self._send(s, r)
        return r

    @staticmethod
    def _readline(s, buf):
        while b"\n" not in buf[0]:
            d = s.recv(65536)
            if not d:
                return None
            buf[0] += d
        line, _, buf[0] = buf[0].partition(b"\n")
        return line + b"\n"

    def _conn(self, s):
        s.settimeout(10)
        buf = [b""]
        tls = False
        try:
            if self._reply(s, "greeting", b"220 localhost ESMTP scripted\r\n") == "CLOSE":
                return
            while True:
                line = self._readline(s, buf)
                if line is None:
                    return
                self.lines.append(line)
                if not tls:
                    self.plain_lines.append(line)
                verb = line.split(b" ", 1)[0].strip().upper().split(b":")[0]
                if verb in (b"EHLO", b"HELO"):
                    self._reply(s, "ehlo2" if tls else "ehlo", self.EHLO2 if tls else self.EHLO1)
                elif verb == b"STARTTLS":
                    r = self._reply(s, "starttls", b"220 2.0.0 SMTP server ready\r\n")
                    if r is None or r == "CLOSE":
                        return
                    if r.startswith(b"220"):
                        s = self.ctx.wrap_socket(s, server_side=True)
                        s.settimeout(10)
                        tls = True
                        buf = [b""]
                elif verb == b"AUTH":
                    self._reply(s, "auth", b"334 VXNlcm5hbWU6\r\n")
                    if self._readline(s, buf) is None:
                        return
                    self.lines.append(b"<auth data>\r\n")
                    self._reply(s, "auth_user", b"334 UGFzc3dvcmQ6\r\n")
                    if self._readline(s, buf) is None:
                        return
                    self.lines.append(b"<auth data>\r\n")
                    self._reply(s, "auth_pass", b"235 2.7.0 Authentication successful\r\n")
                elif verb == b"MAIL":
                    self._reply(s, "mail", b"250 2.1.0 Sender OK\r\n")
                elif verb == b"RCPT":
                    self._reply(s, "rcpt", b"250 2.1.5 Recipient OK\r\n")
                elif verb == b"DATA":
                    r = self._reply(s, "data", b"354 Start mail input\r\n")
                    if r and r[:3] == b"354":
                        data = b""
                        while True:
                            ln = self._readline(s, buf)
                            if ln is None:
                                return
                            if ln == b".\r\n":
                                break
                            data += ln
                        r = self._reply(s, "dot", b"250 2.6.0 <1@scripted> Queued mail for delivery\r\n")
                        if r == "CLOSE":
                            return
                        self.messages.append(data)
                elif verb == b"RSET":
                    self._reply(s, "rset", b"250 2.0.0 Resetting\r\n")
                elif verb == b"QUIT":
                    self._reply(s, "quit", b"221 2.0.0 Service closing transmission channel\r\n")
                    return
                else:
                    self._reply(s, "other", b"500 5.3.3 Unrecognized command\r\n")
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            try:
                s.close()
            except OSError:
                pass


def scripted(t, replies=None, **kw):
    """one run of acsmail against a Scripted server; (result, server)"""
    srv = Scripted(t, replies, **kw)
    try:
        r = t.run(["a@example.com"], MSG, timeout=40)
        time.sleep(0.1)
    finally:
        srv.close()
    return r, srv


def delivered_or_queued(t, r, srv, what):
    """a misbehaving relay: exit 0 and either the relay took the message or
    it waits in the queue; never exit 0 with the message nowhere"""
    t.exit(r, 0, what + ": exit code")
    t.ok(srv.messages or area(t, "queue"),
         what + ": the message was delivered or is in the queue (SPEC §6)")
    t.notin(b"ERROR: AddressSanitizer", r.err, what + ": no sanitizer report")


# ---------------------------------------------------------------------------
# header and SMTP injection (SPEC §4, §7)

@test("a bare CR in Subject cannot start a Bcc header on the wire", group="inject")
def _(t):
    r = t.run(["a@example.com"], b"Subject: hi\rBcc: " + EVIL.encode() + b"\n\nbody\n")
    if r.code != 0:
        kept_failed(t, r, "refused")
        return
    m = t.message()
    no_injected_field(t, m, "Bcc", "bare CR in Subject")
    t.wire_line_ends(m)


@test("a bare CR in a quoted display name under -t cannot inject a header", group="inject")
def _(t):
    r = t.run(["-t"], b'To: "x\rBcc: ' + EVIL.encode() + b'" <a@example.com>\nSubject: s\n\nhi\n')
    if r.code != 0:
        kept_failed(t, r, "refused")
        return
    m = t.message()
    t.eq(m.rcpt_tos, ["a@example.com"], "RCPT TO")
    no_injected_field(t, m, "Bcc", "bare CR in To")
    t.eq(len(m.raw_fields("To")), 1, "one To field")
    for ln in header_lines(m):
        t.ok(ln[:1] in (b" ", b"\t") or b":" in ln,
             "every header line is a field or a continuation: %r" % ln[:60])


@test("CR-only line ends: the headers acsmail adds stay in the header", group="inject")
def _(t):
    r = t.run(["a@example.com"], b"Subject: s\rX-Y: y\r\rbody\rline2\r")
    if r.code != 0:
        kept_failed(t, r, "refused")
        return
    m = t.message()
    for name in ("From", "Date", "Message-ID"):
        t.ok(m.has(name), "%s is in the header the relay got (SPEC §4)" % name)
    t.notin(b"\r\nFrom: ", b"\r\n" + m.body, "no From line in the body")
    t.wire_line_ends(m)


@test("CR, LF and DEL in argv recipients, -f and -F are refused; nothing is sent",
      group="inject")
def _(t):
    cases = [
        ["a@example.com\r\nRCPT TO:<%s>" % EVIL],
        ["a@example.com\nRCPT TO:<%s>" % EVIL],
        ["a\x7f@example.com"],
        ["-f", "%s>\r\nRCPT TO:<%s>" % (ALLOWED, EVIL), "a@example.com"],
        ["-F", "Cron\r\nBcc: %s" % EVIL, "a@example.com"],
        ["-F", "Cron\x7fX", "a@example.com"],
        ["-N", "success\r\nRCPT TO:<%s>" % EVIL, "a@example.com"],
        ["-V", "x\r\nRCPT TO:<%s>" % EVIL, "a@example.com"],
    ]
    for args in cases:
        r = t.run(args, MSG)
        t.ok(r.code in (EX_USAGE, EX_DATAERR), "%r: exit 64 or 65, got %d" % (args, r.code))
    t.nothing_sent("control characters")
    for e in t.relay.commands():
        t.notin(EVIL, e["arg"] or "", "no command carries the injected address")


@test("-f 'a@x> SIZE=1' and '<a@x> <b@y>' recipients are refused, not passed on",
      group="inject")
def _(t):
    r = t.run(["-f", ALLOWED + "> SIZE=1", "a@example.com"], MSG)
    t.exit(r, EX_DATAERR)
    r = t.run(["<a@example.com> <%s>" % EVIL], MSG)
    t.exit(r, EX_DATAERR)
    t.nothing_sent("angle brackets")
    t.ok(len(area(t, "failed")) == 2, "both messages are kept in the failed area")


@test("encoded words decoding to CRLF + Bcc never break a header line", group="inject")
def _(t):
    import base64
    enc = base64.b64encode(b"X\r\nBcc: " + EVIL.encode()).decode()
    r = t.run(["-t"], ("From: =?utf-8?b?%s?= <root>\n"
                       "To: =?utf-8?q?y=0D=0ABcc:_evil=40attacker.example?= <a@example.com>\n"
                       "Subject: =?utf-8?q?s=0D=0ABcc:_evil=40attacker.example?=\n\nhi\n"
                       % enc).encode())
    t.exit(r, 0)
    m = t.message()
    t.eq(m.rcpt_tos, ["a@example.com"], "RCPT TO")
    no_injected_field(t, m, "Bcc", "encoded CRLF")
    t.eq([a for _, a in m.addresses("From")], [FROM], "From holds the configured address only")
    t.wire_line_ends(m)


@test("a display name with quotes and <addr> cannot add a From address", group="inject")
def _(t):
    r = t.run(["-F", 'A" <%s>, "B' % EVIL, "a@example.com"], MSG)
    t.exit(r, 0)
    r = t.run(["-t"], b"From: =?utf-8?q?a=22_=3Cevil=40attacker.example=3E=2C_=22b?= <root>\n"
                      b"To: a@example.com\n\nhi\n")
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), 2, "both sent")
    for m in msgs:
        t.eq([a for _, a in m.addresses("From")], [FROM], "From: one address, the configured one")
        t.eq(m.mail_from, FROM, "MAIL FROM")


# ---------------------------------------------------------------------------
# sizes and shapes of the message (SPEC §3, §4)

@test("a 10 kB recipient address is refused with 65 and the message kept", group="size")
def _(t):
    # through -t, so that a failure's diagnostics do not print 10 kB of argv
    r = t.run(["-t"], b"To: " + b"x" * 10240 + b"@example.com\nSubject: s\n\nhi\n")
    t.exit(r, EX_DATAERR)
    kept_failed(t, r, "10 kB address")


@test("a 2 MB header line is refused with 65 and the message kept", group="size")
def _(t):
    r = t.run(["a@example.com"], b"Subject: " + b"x" * (2 * 1024 * 1024) + b"\n\nbody\n")
    t.exit(r, EX_DATAERR)
    kept_failed(t, r, "2 MB header line")


@test("a 40 MB stdin without a newline: 65, kept, memory stays flat", group="size")
def _(t):
    if not os.access("/usr/bin/time", os.X_OK):
        t.skip("no /usr/bin/time")
    r, rss = max_rss_kb(t, ["a@example.com"], b"x" * (40 * 1024 * 1024))
    t.exit(r, EX_DATAERR)
    kept_failed(t, r, "over max_size")
    t.ok(rss is not None and rss < 64 * 1024, "max RSS below 64 MB, got %s kB" % rss)


@test("a 3 MB line without a newline is sent whole (re-encoded, not truncated)", group="size")
def _(t):
    import email
    import email.policy
    body = (b"abc=" * (3 * 1024 * 256))
    r = t.run(["a@example.com"], b"Subject: long\n\n" + body, timeout=60)
    t.exit(r, 0)
    m = t.message()
    t.ok(m.longest_line <= 1000, "no line over 998 octets on the wire")
    part = email.message_from_bytes(m.data, policy=email.policy.default)
    got = part.get_payload(decode=True).rstrip(b"\r\n")
    t.eq(len(got), len(body), "decoded body length")
    t.ok(got == body, "decoded body is the input")


@test("a header of 10,000 fields arrives whole", group="size")
def _(t):
    head = b"".join(b"X-F%d: v%d\n" % (i, i) for i in range(10000))
    r = t.run(["a@example.com"], head + b"\nbody\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(sum(1 for n in m.names() if n.startswith("X-F")), 10000, "X-F fields")
    t.eq(m.get("X-F9999"), "v9999", "the last one")


@test("100,000 nested comments in To: no crash, the address is found", group="size")
def _(t):
    r = t.run(["-t"], b"To: " + b"(" * 100000 + b"c" + b")" * 100000 + b" a@example.com\n\nhi\n")
    t.exit(r, 0)
    t.eq(t.message().rcpt_tos, ["a@example.com"], "RCPT TO")


@test("unterminated quote or comment in To under -t: 65, kept", group="size")
def _(t):
    for head in (b"To: \"abc a@example.com\n", b"To: (abc a@example.com\n"):
        r = t.run(["-t"], head + b"\nhi\n")
        t.exit(r, EX_DATAERR)
    t.nothing_sent()
    t.eq(len(area(t, "failed")), 2, "both kept in the failed area")


@test("empty stdin, a lone '.', binary garbage: each sent with the added headers",
      group="size")
def _(t):
    for args, stdin in ((["a@example.com"], b""), (["a@example.com"], b".\n"),
                        (["-i", "a@example.com"], b".\n"),
                        (["a@example.com"], bytes(range(256)) * 16)):
        r = t.run(args, stdin)
        t.exit(r, 0, "exit of %r" % stdin[:8])
    msgs = t.messages()
    t.eq(len(msgs), 4, "four messages")
    for m in msgs:
        for name in ("From", "Date", "Message-ID"):
            t.ok(m.has(name), "%s added" % name)
        t.wire_line_ends(m)
    t.ok(msgs[3].mail_options and "BODY=8BITMIME" in msgs[3].mail_options or
         msgs[3].eight_bit is False, "8-bit garbage goes as 8BITMIME or re-encoded")


@test("1,000 recipients under -t: each once, at most 50 per transaction", group="size")
def _(t):
    t.config(rate_per_minute=1000000, rate_per_hour=1000000)
    rcpts = ["u%d@example.com" % i for i in range(1000)]
    r = t.run(["-t"], ("To: " + ",\n ".join(rcpts) + "\n\nhi\n").encode(), timeout=60)
    t.exit(r, 0)
    msgs = t.messages()
    t.ok(all(len(m.rcpt_tos) <= 50 for m in msgs), "at most 50 RCPT per transaction")
    got = [a for m in msgs for a in m.rcpt_tos]
    t.eq(sorted(got), sorted(rcpts), "every recipient exactly once")


# ---------------------------------------------------------------------------
# secrets (SPEC §7)

@test("the secret is in no output: -v, --check, failed AUTH, mailq, queue file, log",
      group="secret")
def _(t):
    r = t.run(["-v", "a@example.com"], MSG)
    t.exit(r, 0)
    t.no_secret_in(r.out + r.err, "-v")
    r = t.run(["-v", "--check"])
    t.exit(r, 0)
    t.no_secret_in(r.out + r.err, "--check")
    t.relay.control(password="not-the-configured-one")
    r = t.run(["-v", "a@example.com"], MSG)
    t.exit(r, 0)
    t.ok(area(t, "queue"), "a 535 queues the message")
    t.no_secret_in(r.out + r.err, "-v with 535")
    r = t.run(["-v", "--check"])
    t.no_secret_in(r.out + r.err, "--check with 535")
    r = t.run(["-bp"])
    t.no_secret_in(r.out + r.err, "mailq")
    r = t.run(["-v", "-q"])
    t.no_secret_in(r.out + r.err, "-v -q")
    for f in t.spooled():
        with open(f, "rb") as fp:
            t.no_secret_in(fp.read(), f)
    t.no_secret_in(t.log_text(), "the log")


@test("a config syntax error near the secret does not echo it", group="secret")
def _(t):
    base = t.config_text()
    quoted = harness.single_quote(PASSWORD)
    for bad in ("s3cret Pa55word", "'s3cret'Pa55word", "s3cret{Pa55word",
                "'s3cret-Pa55word' Pa55tail", '"s3cret-Pa55word'):
        t.write_config(base.replace(quoted, bad))
        r = t.run(["a@example.com"], MSG)
        t.exit(r, EX_CONFIG, "exit for %s" % bad[:3])
        for part in ("Pa55word", "Pa55tail"):
            t.notin(part, r.stderr + r.stdout, "the error does not show the secret")
    t.no_connection()


@test("background delivery: no secret in a child's argv or environment", group="secret")
def _(t):
    t.config(delivery="background")
    t.relay.fault("stall", "data")
    r = t.run(["a@example.com"], MSG)
    t.exit(r, 0)
    seen = 0
    end = time.time() + 3
    while time.time() < end and not seen:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read()
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if t.conf_path.encode() not in env:
                continue
            seen += 1
            t.no_secret_in(cmd, "child argv")
            t.no_secret_in(env, "child environment")
        time.sleep(0.1)
    if not seen:
        t.note("no background child seen")


# ---------------------------------------------------------------------------
# hostile config (SPEC §7, §8)

@test("a directory, /etc/shadow, a missing file, unsafe modes: 78, no connection",
      group="config")
def _(t):
    r = t.run(["a@example.com"], MSG, env={"ACSMAIL_CONFIG": t.dir})
    t.exit(r, EX_CONFIG, "a directory")
    if os.access("/etc/shadow", os.R_OK):
        r = t.run(["a@example.com"], MSG, env={"ACSMAIL_CONFIG": "/etc/shadow"})
        t.exit(r, EX_CONFIG, "/etc/shadow")
    r = t.run(["a@example.com"], MSG, env={"ACSMAIL_CONFIG": t.path("none.conf")})
    t.exit(r, EX_CONFIG, "missing")
    t.write_config(mode=0o644)
    r = t.run(["a@example.com"], MSG)
    t.exit(r, EX_CONFIG, "world-readable with password")
    t.write_config(mode=0o600)
    pw = t.path("pw")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw, 0o604)
    t.config(password=None, password_file=pw)
    r = t.run(["a@example.com"], MSG)
    t.exit(r, EX_CONFIG, "world-readable password_file")
    t.no_connection()


@test("port 0/65536, timeout 0, negative sizes, unknown keys: 78 with the line",
      group="config")
def _(t):
    base = t.config_text()
    for extra in ("port = 0", "port = 65536", "timeout = 0", "timeout = -1",
                  "timeout = 99999999999999999999", "max_size = -1", "max_recipients = 0",
                  "queue_lifetime = -1", "bogus_key = 1", 'from_name = "X\\r\\nBcc: e@x"',
                  'username = "u\\r\\nMAIL FROM:<x>"'):
        t.write_config(base + extra + "\n")
        r = t.run(["a@example.com"], MSG)
        t.exit(r, EX_CONFIG, extra)
        t.match(r"acsmail\.conf:\d+", r.stderr, "%s: names the file and line" % extra)
    t.no_connection()


# ---------------------------------------------------------------------------
# exit codes (SPEC §3)

@test("relay down and the queue cannot be made: 75, never another code", group="exit")
def _(t):
    t.config(port=closed_port(), queue_dir=t.path("missing", "queue"))
    r = t.run(["a@example.com"], MSG)
    t.exit(r, EX_TEMPFAIL)
    with open(t.path("afile"), "w") as f:
        f.write("x")
    t.config(queue_dir=t.path("afile"))
    r = t.run(["a@example.com"], MSG)
    t.exit(r, EX_TEMPFAIL, "queue_dir is a file")


@test("an invalid -B value: 64 (and no leak on that path)", group="exit")
def _(t):
    for args in (["-B", "BINARY", "a@example.com"], ["-Bfoo", "a@example.com"]):
        r = t.run(args, MSG)
        t.exit(r, EX_USAGE, " ".join(args))
        t.notin("LeakSanitizer", r.stderr, "no leak report")
    t.no_connection()


# ---------------------------------------------------------------------------
# a relay that misbehaves (SPEC §6: temporary, so queued; never lost)

@test("replies split into one-byte TCP segments are read right", group="relay")
def _(t):
    r, srv = scripted(t, trickle=True)
    t.exit(r, 0)
    t.eq(len(srv.messages), 1, "delivered")
    t.eq(area(t, "queue"), [], "nothing queued")


@test("a bare '250' with no text is a success", group="relay")
def _(t):
    r, srv = scripted(t, {"mail": b"250\r\n", "rcpt": b"250\r\n", "dot": b"250\r\n"})
    t.exit(r, 0)
    t.eq(len(srv.messages), 1, "delivered")
    t.eq(area(t, "queue"), [], "nothing queued")


@test("garbage, mismatched multi-line codes, 999, 354 at MAIL: queued, exit 0", group="relay")
def _(t):
    for name, replies in (
            ("garbage greeting", {"greeting": b"\x00\xff hello\r\n"}),
            ("garbage at MAIL", {"mail": b"hello there\r\n"}),
            ("mismatched EHLO", {"ehlo": b"250-localhost\r\n220-PIPELINING\r\n250 STARTTLS\r\n"}),
            ("code 999", {"mail": b"999 what\r\n"}),
            ("two digits", {"mail": b"25 x\r\n"}),
            ("354 at MAIL", {"mail": b"354 go ahead\r\n"}),
            ("334 after the password", {"auth_pass": b"334 more\r\n"}),
            ("100 kB reply line", {"mail": b"250 " + b"x" * 100000 + b"\r\n"})):
        for f in t.spooled():
            if "/queue/" in f:
                os.unlink(f)
        r, srv = scripted(t, replies)
        delivered_or_queued(t, r, srv, name)
        t.eq(srv.messages, [], name + ": no message taken")


@test("10,000-line EHLO: no crash, delivered or queued", group="relay")
def _(t):
    ehlo = b"".join(b"250-X-EXT%d\r\n" % i for i in range(10000)) + \
        b"250-AUTH LOGIN\r\n250 8BITMIME\r\n"
    r, srv = scripted(t, {"ehlo2": ehlo})
    delivered_or_queued(t, r, srv, "huge EHLO")


@test("a relay that closes right after STARTTLS: queued, no AUTH in the clear",
      group="relay")
def _(t):
    r, srv = scripted(t, {"starttls": "CLOSE"})
    delivered_or_queued(t, r, srv, "close after STARTTLS")
    t.ok(all(not ln.upper().startswith(b"AUTH") for ln in srv.plain_lines),
         "no AUTH before TLS")
    r, srv = scripted(t, {"starttls": b"454 4.7.0 TLS not available\r\n"})
    delivered_or_queued(t, r, srv, "454 at STARTTLS")
    t.ok(all(not ln.upper().startswith((b"AUTH", b"MAIL")) for ln in srv.plain_lines),
         "no AUTH or MAIL without TLS")


@test("no reply after the final dot: the message is kept in the queue", group="relay")
def _(t):
    r, srv = scripted(t, {"dot": "CLOSE"})
    t.exit(r, 0)
    t.ok(area(t, "queue"), "queued for another try")


@test("terminal escapes in a relay reply are not echoed raw", group="relay")
def _(t):
    r, srv = scripted(t, {"rcpt": b"550 5.1.1 \x1b[2J\x1b]0;pwned\x07 bad\r\n"})
    t.exit(r, harness.EX_NOUSER)
    t.notin(b"\x1b", r.err + r.out, "no ESC on stderr")
    t.notin(b"\x07", r.err + r.out, "no BEL on stderr")
    t.ok(area(t, "failed"), "kept in the failed area")


# ---------------------------------------------------------------------------
# the queue (SPEC §6, doc/queue.md)

def spool(t, n):
    t.config(delivery="queue")
    for i in range(n):
        t.exit(t.run(["a@example.com"], b"Subject: q%d\n\nhi\n" % i), 0)
    t.config(delivery="foreground")
    return area(t, "queue")


@test("damaged queue files neither crash the runner nor block the others", group="queue")
def _(t):
    ids = spool(t, 3)
    qd = os.path.join(t.queue_dir, "queue")
    with open(os.path.join(qd, ids[0]), "rb") as f:
        good = f.read()
    with open(os.path.join(qd, ids[0]), "wb") as f:
        f.write(good[:30])                       # a cut-off header
    with open(os.path.join(qd, ids[1]), "wb") as f:
        f.write(os.urandom(3000))                # junk
    # a recipient line smuggling an SMTP command
    fake = "6B11D6000000000000000A"
    evil = good.replace(b"rcpt <a@example.com>\n",
                        b"rcpt <a@example.com>\r\nRCPT TO:<%s>\n" % EVIL.encode())
    with open(os.path.join(qd, fake), "wb") as f:
        f.write(evil.replace(ids[0].encode(), fake.encode()))
    r = t.run(["-bp"])
    t.exit(r, 0, "mailq")
    r = t.run(["-q"])
    t.exit(r, 0, "-q")
    t.notin("Sanitizer", r.stderr, "no sanitizer report")
    msgs = t.messages()
    t.eq([m.get("Subject") for m in msgs], ["q2"], "the sound message went")
    for e in t.relay.commands():
        t.notin(EVIL, e["arg"] or "", "nothing from the damaged file reached the relay")


@test("queue ids that name paths are refused by --delete, --requeue and -qI", group="queue")
def _(t):
    ids = spool(t, 1)
    for bad in ("../../etc/passwd", "../queue/" + ids[0], "*", ids[0] + "/", "."):
        for args in (["--delete", bad], ["--requeue", bad], ["-qI" + bad]):
            r = t.run(args)
            t.exit(r, EX_USAGE, " ".join(args))
    t.eq(area(t, "queue"), ids, "the queue is untouched")
    t.nothing_sent()


@test("--delete while a runner holds the message: refused, the message kept", group="queue")
def _(t):
    ids = spool(t, 1)
    t.config(timeout=3)
    t.relay.fault("stall", "data")
    p = subprocess.Popen([harness.bin_path(), "-q"], env=t.env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.time() + 5
        while time.time() < end and not (t.relay.commands("DATA") or
                                         t.relay.commands("BDAT")):
            time.sleep(0.05)
        r = t.run(["--delete", ids[0]])
        t.exit(r, EX_TEMPFAIL, "--delete of a locked message")
    finally:
        p.communicate(timeout=20)
    t.eq(area(t, "queue"), ids, "the message is still queued")


# ---------------------------------------------------------------------------
# the command line (SPEC §2)

@test("odd command lines: -q intervals, -bX, --, 100,000 argv words", group="argv")
def _(t):
    for args in (["-q0"], ["-q-1"], ["-q99999999999h"], ["-q1x"], ["-bX"], ["-b"], ["-f"]):
        r = t.run(args, MSG)
        t.exit(r, EX_USAGE, " ".join(args))
    t.no_connection("usage errors")
    r = t.run(["-oi"] * 100000 + ["a@example.com"], MSG)
    t.exit(r, 0, "100,000 words")
    r = t.run(["--", "a@example.com"], MSG)
    t.exit(r, 0, "--")
    msgs = t.messages()
    t.eq([m.rcpt_tos for m in msgs], [["a@example.com"], ["a@example.com"]], "RCPT TO")



# ---------------------------------------------------------------------------
# header line ends, control characters, charsets, folding (SPEC §4, §5, §7)

ADDRESS_FIELDS = ("From", "To", "Cc", "Reply-To", "Sender", "Mail-Followup-To",
                  "Mail-Reply-To", "Disposition-Notification-To", "Return-Receipt-To",
                  "Errors-To")


def _address_registry():
    from email.headerregistry import AddressHeader, HeaderRegistry
    reg = HeaderRegistry()
    for name in ADDRESS_FIELDS:     # Python knows only some of them
        reg.map_to_type(name.lower(), AddressHeader)
    return reg


def address_headers(m, name):
    """the fields NAME parsed by Python's email package as address fields"""
    reg = _address_registry()
    return [reg(name, v) for v in m.get_all(name)]


def addresses_of(m, name):
    """[(display name, addr-spec)] of any address field, groups flattened"""
    return [(a.display_name, a.addr_spec) for h in address_headers(m, name)
            for a in h.addresses]


def address_defects(m):
    """{field: [defects]} of the address fields Python's email package finds"""
    out = {}
    for name in ADDRESS_FIELDS:
        for h in address_headers(m, name):
            d = list(h.defects)
            if d:
                out.setdefault(name, []).extend(repr(x) for x in d)
    return out


def head_is_ascii(t, m, what):
    """without SMTPUTF8 no raw 8-bit byte may stand in the header (SPEC §4)"""
    if "SMTPUTF8" in (m.mail_options or []):
        return
    bad = [ln for ln in header_lines(m) if any(b >= 0x80 for b in ln)]
    t.eq(bad, [], "%s: header lines with raw 8-bit bytes (no SMTPUTF8)" % what)


@test("PHP 8 CRLF header + LF body and CR CR LF: one CRLF per line, fields intact",
      group="lineends")
def _(t):
    for stdin in (b"Subject: php8\r\nX-A: 1\r\n\r\nline1\nline2\n",
                  b"Subject: php8\r\r\nX-A: 1\r\r\n\r\r\nline1\r\r\nline2\r\r\n",
                  b"Subject: php8\r\r\nX-A: 1\n\nline1\r\nline2\r\r\n"):
        r = t.run(["a@example.com"], stdin)
        t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), 3, "three messages")
    for m in msgs:
        t.wire_line_ends(m)
        t.eq(m.get("Subject"), "php8", "Subject")
        t.eq(m.get("X-A"), "1", "X-A")
        t.eq(m.body, b"line1\r\nline2\r\n", "body")


@test("'Subject: x\\r\\r\\n' and a CR before LF at a header line's end: no CR kept",
      group="lineends")
def _(t):
    r = t.run(["a@example.com"], b"Subject: x\r\r\nX-B: y\r\r\nX-C: z\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("Subject"), "x", "Subject")
    t.eq(m.get("X-B"), "y", "X-B")
    t.eq(m.get("X-C"), "z", "X-C")
    t.wire_line_ends(m)


@test("old Mac CR-only input: the body stays the body, not part of the Subject",
      group="lineends")
def _(t):
    # with no LF anywhere, every CR is a line end (SPEC §4: the first empty
    # line ends the header); the text after it must not end up in Subject
    r = t.run(["a@example.com"], b"Subject: mac\rX-A: 1\r\rbody\rline2\r")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.decoded("Subject"), "mac", "Subject")
    t.eq(m.get("X-A"), "1", "X-A is a field of its own")
    t.eq(m.body, b"body\r\nline2\r\n", "body")
    t.wire_line_ends(m)


@test("bare CR or NUL in address fields (old and new ones): 65, kept, nothing sent",
      group="lineends")
def _(t):
    cases = [(["-t"], b"To: a@example.com\rBcc: " + EVIL.encode() + b"\nSubject: s\n\nhi\n"),
             (["a@example.com"], b"Cc: c@example.com\x00\nSubject: s\n\nhi\n"),
             (["a@example.com"], b"Reply-To: r@example.com\rx\nSubject: s\n\nhi\n"),
             (["a@example.com"], b"Errors-To: r@example.com\rx\nSubject: s\n\nhi\n"),
             (["a@example.com"], b"Mail-Followup-To: \"x\x00\" <r@example.com>\n\nhi\n"),
             (["a@example.com"], b"Disposition-Notification-To: r@example.com\r"
                                 b"Bcc: " + EVIL.encode() + b"\n\nhi\n"),
             (["-t"], b"To: a@example.com\nFrom: Joe\r <alerts@mail.example.com>\n\nhi\n")]
    for args, stdin in cases:
        r = t.run(args, stdin)
        t.exit(r, EX_DATAERR, "exit of %r" % stdin[:40])
    t.nothing_sent("control characters in address fields")
    t.eq(len(area(t, "failed")), len(cases), "each kept in the failed area")


@test("CR and NUL in unstructured fields are encoded, in structured ones a blank",
      group="lineends")
def _(t):
    r = t.run(["a@example.com"],
              "Subject: caf\u00e9\rbar\nX-N: c\x00d\nX-F: first\n second\rthird\n"
              "Content-Type: text/plain;\r charset=us-ascii\n"
              "Date: Mon, 1 Jan\r2024 00:00:00 +0000\n\nbody\rmore\n".encode())
    t.exit(r, 0)
    m = t.message()
    t.wire_line_ends(m)
    for ln in header_lines(m):
        t.ok(not any(b < 0x20 and b != 0x09 or b == 0x7f for b in ln),
             "no control character on a header line: %r" % ln[:60])
    t.eq(m.decoded("Subject"), "caf\u00e9\rbar", "Subject carries the CR encoded")
    t.eq(m.decoded("X-N"), "c\x7fd", "the NUL as DEL, encoded")
    t.eq(m.get("Date"), "Mon, 1 Jan 2024 00:00:00 +0000", "Date: the CR is a blank")
    t.eq(m.parsed().get_content_type(), "text/plain", "Content-Type still parses")
    t.eq(m.body, b"body\r\nmore\r\n", "in the body a bare CR is a line end")


@test("valid headers no rewrite touches go out byte for byte, folding kept",
      group="charset")
def _(t):
    head = (b"Received: from a.example.com (a.example.com [192.0.2.1])\n"
            b"\tby b.example.com with ESMTP id 123\n"
            b"\tfor <a@example.com>; Mon, 1 Jan 2024 00:00:00 +0000\n"
            b"From: Alerts Team <" + ALLOWED.encode() + b">\n"
            b"To: Alice <a@example.com>,\n  Bob <b@example.com>\n"
            b"Subject: =?UTF-8?Q?caf=C3=A9?=\n  =?UTF-8?Q?_cr=C3=A8me?=\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
            b"Message-ID: <abc@mail.example.com>\n"
            b"References: <a@x>\n <b@x>\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain;\n charset=utf-8\n"
            b"Content-Transfer-Encoding: 8bit\n"
            b"X-Mailer: foo\n    bar\n"
            b"X-Latin: caf\xe9\n")
    r = t.run(["-t"], head + b"\ncaf\xc3\xa9 body\n")
    t.exit(r, 0)
    m = t.message()
    want = head.replace(b"\n", b"\r\n")
    for name in ("Received", "From", "To", "Subject", "Date", "Message-ID", "References",
                 "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "X-Mailer"):
        i = want.find(name.encode() + b":")
        j = i
        while True:
            j = want.index(b"\r\n", j) + 2
            if want[j:j + 1] not in (b" ", b"\t"):
                break
        t.eq(m.raw_field(name), want[i:j], "%s unchanged" % name)
    t.eq(m.decoded("X-Latin"), "caf\u00e9", "the Latin-1 field is converted to UTF-8")


@test("Latin-1 in Subject and in the From display name under -t: UTF-8 encoded words",
      group="charset")
def _(t):
    r = t.run(["-t"], b"From: Jos\xe9 M\xfcller <root>\nTo: \"M\xfcller, A\" <a@example.com>\n"
                      b"Subject: Caf\xe9 cr\xe8me\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    head_is_ascii(t, m, "Latin-1")
    t.eq(m.decoded("Subject"), "Caf\u00e9 cr\u00e8me", "Subject")
    t.eq(m.addresses("From"), [("Jos\u00e9 M\u00fcller", FROM)], "From")
    t.eq(m.addresses("To"), [("M\u00fcller, A", "a@example.com")], "To")
    t.eq(address_defects(m), {}, "address fields parse without defects")


@test("iso-2022-jp encoded words in To beside bare names: kept, names qualified",
      group="charset")
def _(t):
    r = t.run(["-t"], b"To: =?iso-2022-jp?b?GyRCJUYlOSVIGyhC?= <a@example.com>, bob,\n"
                      b" =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <c@example.com>\nSubject: jp\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    to = m.addresses("To")
    t.eq([n for n, _ in to], ["\u30c6\u30b9\u30c8", "", "\u5c71\u7530"], "display names decode")
    t.eq([a for _, a in to][0::2], ["a@example.com", "c@example.com"], "addresses")
    t.ok("@" in to[1][1], "the bare name is qualified: %r" % to[1][1])
    t.eq(address_defects(m), {}, "address fields parse without defects")


@test("an encoded word in an undecoded charset beside raw UTF-8 is not encoded twice",
      group="charset")
def _(t):
    # =?koi8-r?b?8NLJ18XU?= is a valid encoded word; wrapping it in a UTF-8
    # one shows the reader its source text instead of the name
    r = t.run(["a@example.com"], "To: caf\u00e9 =?koi8-r?b?8NLJ18XU?= <b@example.com>\n"
                                 "Subject: caf\u00e9 =?koi8-r?b?8NLJ18XU?=\n\nbody\n".encode())
    t.exit(r, 0)
    m = t.message()
    word = "\u041f\u0440\u0438\u0432\u0435\u0442"
    t.eq(m.decoded("Subject"), "caf\u00e9 " + word, "Subject decodes to the text")
    t.eq(m.addresses("To"), [("caf\u00e9 " + word, "b@example.com")], "To display name")
    t.notin("=?koi8-r?", m.decoded("Subject") or "", "no encoded word inside an encoded word")


@test("a rewritten From keeps an undecoded encoded word outside quotes", group="charset")
def _(t):
    r = t.run(["-t"], b"From: =?iso-2022-jp?b?GyRCJUYlOSVIGyhC?= \"Sales, Tokyo\" <root>\n"
                      b"To: a@example.com\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.addrs("From"), [FROM], "From address")
    t.eq(address_defects(m), {}, "From parses without defects (no encoded word in quotes)")
    t.eq([n for n, _ in m.addresses("From")], ["\u30c6\u30b9\u30c8 Sales, Tokyo"],
         "the display name decodes")


@test("Mail-Followup-To, Disposition-Notification-To, Errors-To...: qualified, encoded",
      group="charset")
def _(t):
    r = t.run(["a@example.com"],
              b"Disposition-Notification-To: root\nReturn-Receipt-To: bob\n"
              b"Mail-Followup-To: list, J\xc3\xb6rg <j@example.com>\n"
              b"Mail-Reply-To: Ren\xe9 <r@example.com>\nErrors-To: postmaster\n"
              b"Subject: s\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    head_is_ascii(t, m, "new address fields")
    for name in ("Disposition-Notification-To", "Return-Receipt-To", "Errors-To",
                 "Mail-Followup-To"):
        t.ok(addresses_of(m, name), "%s holds an address" % name)
        for _, a in addresses_of(m, name):
            t.ok("@" in a, "%s: no bare name (SPEC §5): %r" % (name, a))
    t.eq(addresses_of(m, "Mail-Reply-To"), [("Ren\u00e9", "r@example.com")], "Mail-Reply-To")
    t.eq(addresses_of(m, "Mail-Followup-To")[1:], [("J\u00f6rg", "j@example.com")],
         "Mail-Followup-To")
    t.eq(address_defects(m), {}, "address fields parse without defects")


@test("Errors-To: garbage does not fail the message", group="charset")
def _(t):
    r = t.run(["a@example.com"], b"Errors-To: garbage <<<\nSubject: s\n\nbody\n")
    t.exit(r, 0)
    t.eq(len(t.messages()), 1, "sent")


@test("an unparseable new address field never carries raw 8-bit bytes", group="charset")
def _(t):
    # left as it was, it still falls under SPEC §4: no raw non-ASCII header
    # text without SMTPUTF8 (before it was an address field it was encoded)
    r = t.run(["a@example.com"], b"Disposition-Notification-To: J\xc3\xb6rg <<j@example.com>\n"
                                 b"Errors-To: J\xf6rg <<j@example.com>\nSubject: s\n\nbody\n")
    if r.code != 0:
        kept_failed(t, r, "refused")
        return
    head_is_ascii(t, t.message(), "unparseable address fields")


@test("an unparseable Disposition-Notification-To never carries a bare name",
      group="charset")
def _(t):
    # SPEC §5: a bare name never reaches the relay, neither in RCPT TO nor
    # in a header; dropped, repaired or refused, but not sent as is
    r = t.run(["a@example.com"], b"Disposition-Notification-To: root <<\nSubject: s\n\nbody\n")
    if r.code != 0:
        kept_failed(t, r, "refused")
        return
    m = t.message()
    v = m.get("Disposition-Notification-To")
    t.ok(v is None or "root <<" not in v, "the bare name went out: %r" % v)


@test("header lines over 998 octets are refolded below 78 columns", group="fold")
def _(t):
    refs = b" ".join(b"<%d.abcdefghij@example.com>" % i for i in range(200))
    subj = b" ".join(b"word%d" % i for i in range(300))
    to = b", ".join(b"user%d@example.com" % i for i in range(100))
    r = t.run(["a@example.com"], b"Subject: " + subj + b"\nReferences: " + refs +
              b"\nTo: " + to + b"\n\nbody\n")
    t.exit(r, 0)
    m = t.message()
    t.eq(m.get("References").encode(), refs, "References unchanged when unfolded")
    t.eq(m.get("Subject").encode(), subj, "Subject unchanged when unfolded")
    t.eq(len(m.addrs("To")), 100, "To: 100 addresses")
    for name in ("Subject", "References", "To"):
        lens = [len(ln) for ln in m.raw_field(name).split(b"\r\n")[:-1]]
        t.ok(max(lens) <= 78, "%s: every line at most 78 octets, got %r" % (name, lens[:12]))


@test("a 2000-octet one-word Subject is delivered whole, never cut", group="fold")
def _(t):
    r = t.run(["a@example.com"], b"Subject: " + b"x" * 2000 + b"\n\nbody\n")
    if r.code != 0:
        t.exit(r, EX_DATAERR)
        kept_failed(t, r, "refused")
        return
    m = t.message()
    t.eq(m.decoded("Subject"), "x" * 2000, "Subject whole")
    t.eq(m.body, b"body\r\n", "body")
    t.wire_line_ends(m)


@test("a folded To of 200 addresses under -t: all reached, folding kept", group="fold")
def _(t):
    to = b"To: " + b",\n ".join(b"user%d@example.com" % i for i in range(200))
    r = t.run(["-t"], to + b"\nSubject: s\n\nbody\n")
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(sorted(a for m in msgs for a in m.rcpt_tos),
         sorted("user%d@example.com" % i for i in range(200)), "RCPT TO")
    for m in msgs:
        t.eq(m.raw_field("To"), to.replace(b"\n", b"\r\n") + b"\r\n", "To byte for byte")
        t.eq(address_defects(m), {}, "address fields parse without defects")


@test("a header over 1 MB: 65, kept with its recipients and its whole text", group="size")
def _(t):
    big = b"X-Big: " + b"q" * (1024 * 1024 + 10)
    stdin = b"Subject: s\n" + big + b"\nX-After: 1\n\nbody line\n"
    r = t.run(["rcpt1@example.com", "rcpt2@example.com"], stdin)
    t.exit(r, EX_DATAERR)
    kept_failed(t, r, "1 MB header")
    blob = b""
    for name in area(t, "failed"):
        with open(os.path.join(t.queue_dir, "failed", name), "rb") as f:
            blob += f.read()
    for part in (b"Subject: s", big, b"X-After: 1", b"body line"):
        t.ok(part in blob, "the failed area holds %r" % part[:20])
    r = t.run(["-bp"])
    for rcpt in ("rcpt1@example.com", "rcpt2@example.com"):
        t.isin(rcpt, r.stdout, "mailq lists the recipient of the failed message")


if __name__ == "__main__":
    harness.main()
