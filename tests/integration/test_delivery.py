#!/usr/bin/python3
"""Recipients and transactions: -t, argv, Bcc, comma lists, the 50-recipient
limit, refused recipients, SIZE/PIPELINING/DSN, max_size (SPEC §2, §4-§6)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, each_transfer, FROM, ALLOWED, ROOT_ALIAS  # noqa: E402


def lf(*lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


@test("-t: a To folded over two lines with two display-named addresses reaches both")
def _(t):
    r = t.run(["-t"], lf('To: "Smith, John" <john@example.com>,',
                         " Jane Doe <jane@example.net>",
                         "Subject: folded To",
                         "",
                         "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["jane@example.net", "john@example.com"], "RCPT TO")
    t.eq(m.raw_field("To"), b'To: "Smith, John" <john@example.com>,\r\n'
                            b' Jane Doe <jane@example.net>\r\n', "To keeps its folding")
    t.eq(m.mail_from, FROM, "MAIL FROM")
    t.eq(m.body, b"body\r\n", "body")


@test("-oi -- a b: To and Bcc headers, both recipients, no Bcc on the wire")
def _(t):
    r = t.run(["-oi", "--", "a@example.com", "b@example.net"],
              lf("To: a@example.com", "Bcc: b@example.net", "Subject: bcc from argv", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "b@example.net"], "RCPT TO")
    t.ok(not m.has("Bcc"), "no Bcc header transmitted")
    t.notin(b"b@example.net", m.data, "the Bcc address nowhere in the message")
    t.eq(m.get("To"), "a@example.com", "To")
    t.eq(m.get("Subject"), "bcc from argv", "Subject")


@test("-t -i -f allowed -- hidden: recipients from To plus the command line")
def _(t):
    r = t.run(["-t", "-i", "-f", ALLOWED, "--", "hidden@example.net"],
              lf("To: a@example.com", "Subject: argv plus header", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "hidden@example.net"], "RCPT TO")
    t.eq(m.mail_from, ALLOWED, "MAIL FROM is the allowed -f")
    t.eq(m.get_all("To"), ["a@example.com"], "To unchanged")
    t.notin(b"hidden", m.head, "the command-line recipient is not added to the header")
    t.eq(m.addrs("From"), [ALLOWED], "From added from the allowed -f (as Postfix does)")


@test("-i a@x,b@y: one word with two addresses gives two RCPTs")
def _(t):
    r = t.run(["-i", "a@example.com,b@example.net"], lf("Subject: comma", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "b@example.net"], "RCPT TO")


@test("argv words in full RFC 5322 form: quoted comma, display names, a group")
def _(t):
    r = t.run(["-i", '"Doe, Jane" <jane@example.net>', "Bob <bob@example.com>, c@example.org",
               "team: d@example.com, e@example.com;"], lf("Subject: forms", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["bob@example.com", "c@example.org", "d@example.com",
                              "e@example.com", "jane@example.net"], "RCPT TO")


@test("-t: To, Cc, Bcc and a group; command-line duplicates counted once")
def _(t):
    r = t.run(["-t", "a@example.com"],
              lf("To: a@example.com, team: g1@example.com, g2@example.com;",
                 "Cc: Carol <c@example.org>",
                 "Bcc: secret@example.net",
                 "Subject: many", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["a@example.com", "c@example.org", "g1@example.com",
                              "g2@example.com", "secret@example.net"], "RCPT TO, each once")
    t.ok(not m.has("Bcc"), "no Bcc header")
    t.notin(b"secret@example.net", m.data, "Bcc address not in the message")
    t.eq(m.get("Cc"), "Carol <c@example.org>", "Cc kept")


@test("-t without -i: a To header with an upper-case TO: name and mixed case addresses")
def _(t):
    r = t.run(["-t"], lf("TO: Someone <Someone@Example.COM>", "Subject: case", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(len(m.rcpt_tos), 1, "one RCPT")
    t.eq([x.lower() for x in m.rcpt_tos], ["someone@example.com"], "RCPT TO (case aside)")


@test("-t with Resent- headers: recipients from Resent-To/Cc/Bcc only")
def _(t):
    r = t.run(["-t"], lf("From: alerts@mail.example.com",
                         "To: original@example.com",
                         "Subject: forwarded",
                         "Resent-From: alerts@mail.example.com",
                         "Resent-To: new@example.net",
                         "Resent-Cc: also@example.net",
                         "Resent-Bcc: quiet@example.org",
                         "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["also@example.net", "new@example.net", "quiet@example.org"],
         "RCPT TO: the Resent- recipients, not To")
    t.ok(not m.has("Resent-Bcc"), "no Resent-Bcc header transmitted")
    t.notin(b"quiet@example.org", m.data, "Resent-Bcc address not in the message")
    t.eq(m.get("To"), "original@example.com", "To kept")
    t.eq(m.get("Resent-To"), "new@example.net", "Resent-To kept")


@test("-t with no recipient anywhere fails and sends nothing")
def _(t):
    r = t.run(["-t"], lf("Subject: nobody", "", "body"))
    t.ok(r.code != 0, "non-zero exit (got %r)" % r.code)
    t.nothing_sent()


@test("120 recipients: transactions of at most 50, each recipient once, same message")
def _(t):
    rcpts = ["r%03d@example.com" % i for i in range(120)]
    r = t.run(["-i"] + rcpts, lf("Subject: many recipients", "", "body"))
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), 3, "transactions")
    for m in msgs:
        t.ok(len(m.rcpt_tos) <= 50, "%s has %d recipients" % (m.id, len(m.rcpt_tos)))
    got = [x for m in msgs for x in m.rcpt_tos]
    t.eq(sorted(got), rcpts, "every recipient exactly once")
    t.eq(len({m.data for m in msgs}), 1, "every transaction carries the same message")
    t.eq(len({m.get("Message-ID") for m in msgs}), 1, "one Message-ID")


@test("max_recipients = 10: 25 recipients in transactions of at most 10")
def _(t):
    t.config(max_recipients=10)
    rcpts = ["r%02d@example.com" % i for i in range(25)]
    r = t.run(["-i"] + rcpts, lf("Subject: ten", "", "body"))
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), 3, "transactions")
    for m in msgs:
        t.ok(len(m.rcpt_tos) <= 10, "%s has %d recipients" % (m.id, len(m.rcpt_tos)))
    t.eq(sorted(x for m in msgs for x in m.rcpt_tos), rcpts, "every recipient exactly once")


@test("exactly 50 recipients go in one transaction")
def _(t):
    rcpts = ["r%02d@example.com" % i for i in range(50)]
    r = t.run(["-i"] + rcpts, lf("Subject: fifty", "", "body"))
    t.exit(r, 0)
    msgs = t.messages()
    t.eq(len(msgs), 1, "transactions")
    t.eq(sorted(x for m in msgs for x in m.rcpt_tos), rcpts, "recipients")


@each_transfer("a recipient refused among good ones: the others get it, exit 0")
def _(t):
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    r = t.run(["-i", "good1@example.com", "bad@example.com", "good2@example.net"],
              lf("Subject: one bad", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m)
    t.eq(m.body, b"body\r\n", "body")
    t.eq(sorted(m.rcpt_tos), ["good1@example.com", "good2@example.net"], "RCPT TO accepted")
    t.eq(len(t.relay.commands("RCPT")), 3, "all three were tried")


@each_transfer("every recipient refused: exit 67, nothing accepted")
def _(t):
    t.relay.fault("refuse_rcpt", ["bad1@example.com", "bad2@example.com"])
    r = t.run(["-i", "bad1@example.com", "bad2@example.com"], lf("Subject: all bad", "", "body"))
    t.exit(r, harness.EX_NOUSER)
    t.eq(len(t.messages()), 0, "messages accepted")
    t.eq([c["cmd"] for c in t.relay.commands() if c["cmd"] in ("DATA", "BDAT")], [t.via],
         "the pipelined content command")
    t.eq([e["line"][:3] for e in t.relay.events("reply")
          if e["line"][:1] == "5" or e["line"][:3] == "354"],
         ["550", "550", "503"], "refused twice, then 503 to %s (no 354)" % t.via)


@test("SIZE offered: MAIL FROM carries SIZE= at least the message size")
def _(t):
    r = t.run(["-i", "a@example.com"], lf("Subject: size", "", "x" * 5000))
    t.exit(r, 0)
    m = t.message()
    sizes = [o for o in m.mail_options if o.upper().startswith("SIZE=")]
    t.eq(len(sizes), 1, "one SIZE parameter in %r" % (m.mail_options,))
    if sizes:
        t.ok(int(sizes[0].split("=", 1)[1]) >= m.size,
             "SIZE=%s >= %d" % (sizes[0].split("=", 1)[1], m.size))


@test("SIZE not offered: no SIZE parameter")
def _(t):
    t.relay.extensions(SIZE=False)
    r = t.run(["-i", "a@example.com"], lf("Subject: no size", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq([o for o in m.mail_options if o.upper().startswith("SIZE")], [], "SIZE parameters")


@test("DATA: PIPELINING offered: MAIL, RCPT and DATA are pipelined")
def _(t):
    t.transfer("DATA")
    r = t.run(["-i", "a@example.com", "b@example.com", "c@example.com"],
              lf("Subject: pipelining", "", "body"))
    t.exit(r, 0)
    t.sent_by(t.message())
    cmds = [c for c in t.relay.commands() if c["cmd"] in ("RCPT", "DATA")]
    t.ok(any(c["pipelined"] for c in cmds), "some RCPT/DATA sent before the previous reply")
    t.eq([c["pipelined"] for c in t.relay.commands("DATA")], [True], "DATA pipelined")


@test("BDAT: PIPELINING offered: MAIL, RCPTs and BDAT LAST with its octets in one write")
def _(t):
    data_lines = ["line %d" % i for i in range(20)]
    r = t.run(["-i", "a@example.com", "b@example.com", "c@example.com"],
              lf("Subject: pipelining", "", *data_lines))
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m, "BDAT")
    cmds = [(c["cmd"], c["pipelined"]) for c in t.relay.commands()
            if c["cmd"] in ("MAIL", "RCPT", "BDAT")]
    t.eq(cmds, [("MAIL", False)] + [("RCPT", True)] * 3 + [("BDAT", True)],
         "every RCPT and the BDAT sent before the reply to MAIL")
    b = t.relay.commands("BDAT")
    t.eq([(c["size"], c["last"]) for c in b], [(m.size, True)], "one chunk, LAST")
    t.eq([c["buffered"] for c in b], [m.size], "its octets came with the command")
    t.ok(m.pipelined, "the message is marked pipelined")


@each_transfer("PIPELINING not offered: every command waits for its reply")
def _(t):
    t.relay.extensions(PIPELINING=False)
    r = t.run(["-i", "a@example.com", "b@example.com", "c@example.com"],
              lf("Subject: no pipelining", "", "body"))
    t.exit(r, 0)
    t.sent_by(t.message())
    t.eq([c["cmd"] for c in t.relay.commands() if c["pipelined"]], [], "pipelined commands")


@test("DSN offered: -N, -R and -V become NOTIFY, RET and ENVID")
def _(t):
    r = t.run(["-i", "-N", "success,failure", "-R", "hdrs", "-V", "envid-42", "a@example.com"],
              lf("Subject: dsn", "", "body"))
    t.exit(r, 0)
    m = t.message()
    opts = [o.upper() for o in m.mail_options]
    t.isin("RET=HDRS", opts, "MAIL FROM parameters")
    t.isin("ENVID=ENVID-42", opts, "MAIL FROM parameters")
    t.eq([[o.upper() for o in x if o.upper().startswith("NOTIFY=")] for x in m.rcpt_options],
         [["NOTIFY=SUCCESS,FAILURE"]], "RCPT TO parameters")


@test("DSN not offered: -N/-R/-V are dropped and the message still goes")
def _(t):
    t.relay.extensions(DSN=False)
    r = t.run(["-i", "-N", "never", "-R", "full", "-V", "e1", "a@example.com"],
              lf("Subject: no dsn", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq([o for o in m.mail_options if o.upper().split("=")[0] in ("RET", "ENVID")], [],
         "DSN parameters on MAIL")
    t.eq(m.rcpt_options, [[]], "RCPT parameters")


@test("max_size exceeded: exit 65 before connecting")
def _(t):
    t.config(max_size=2000)
    r = t.run(["-i", "a@example.com"], lf("Subject: big", "", *(["y" * 70] * 100)))
    t.exit(r, harness.EX_DATAERR)
    t.no_connection("too large")


@each_transfer("a 6 MB message arrives intact")
def _(t):
    import base64
    blob = os.urandom(4500 * 1024)
    b64 = base64.encodebytes(blob).decode("ascii")
    msg = lf("To: a@example.com", "Subject: attachment", "MIME-Version: 1.0",
             "Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64",
             "", b64.rstrip("\n"))
    r = t.run(["-t", "-i"], msg, timeout=60)
    t.exit(r, 0)
    m = t.message()
    t.sent_by(m)
    t.eq(base64.b64decode(m.body), blob, "decoded attachment")
    t.wire_line_ends(m)
    if t.via == "BDAT":
        sizes = m.chunk_sizes
        t.ok(len(sizes) >= 6, "in several chunks: %r" % sizes)
        t.eq(len(set(sizes[:-1])), 1, "every chunk but the last of one size: %r" % sizes)
        t.ok(0 < sizes[-1] <= sizes[0], "the LAST chunk no larger: %r" % sizes)
        t.eq(sum(sizes), m.size, "the chunks add up to the message")


@test("alias root as a recipient on the command line of a multi-recipient word")
def _(t):
    r = t.run(["-i", "root,a@example.com"], lf("Subject: root and a", "", "body"))
    t.exit(r, 0)
    m = t.message()
    t.eq(sorted(m.rcpt_tos), sorted([ROOT_ALIAS, "a@example.com"]), "RCPT TO")
    t.ok(all(re.search("@", x) for x in m.rcpt_tos), "no bare name in RCPT TO")


@each_transfer("the relay drops the connection inside the content: queued, -q delivers once")
def _(t):
    t.relay.fault("drop_in_data")
    body = lf("Subject: dropped", "", ".a dot line", "x" * 900, "end")
    r = t.run(["-i", "a@example.com"], body)
    t.kept_safe(r, "dropped")
    t.eq(t.messages(), [], "nothing accepted")
    t.eq(len(t.relay.events("drop")), 1, "the relay dropped it")
    t.notin(b"status=sent", t.log_text(), "not logged as sent")
    t.relay.fault("drop_in_data", None)
    t.exit(t.run(["-q"]), 0, "-q")
    m = t.message()
    t.sent_by(m)
    t.eq(m.body, b".a dot line\r\n" + b"x" * 900 + b"\r\nend\r\n", "the body")
    t.eq([f for f in t.spooled() if os.path.basename(f) != "ratelimit"], [],
         "nothing left in the queue")


@each_transfer("451 to the end of the content: queued with the reply, -q delivers once")
def _(t):
    t.relay.fault("data_451")
    r = t.run(["-i", "a@example.com"], lf("Subject: 451", "", "body"))
    t.kept_safe(r, "451")
    t.eq(t.messages(), [], "nothing accepted")
    t.match(r"451 4\.3\.0", t.log_text().decode("utf-8", "replace"), "the reply logged")
    t.relay.fault("data_451", None)
    t.exit(t.run(["-q"]), 0, "-q")
    t.sent_by(t.message())


@each_transfer("the relay refuses the content as too large (SIZE not offered): exit 69, in step")
def _(t):
    t.relay.extensions(SIZE=False)
    t.relay.control(max_size=1200000)
    body = b"".join(b"%07d %s\n" % (i, b"q" * 62) for i in range(30000))
    r = t.run(["-i", "a@example.com"], lf("Subject: too big", "") + body, timeout=60)
    t.exit(r, harness.EX_UNAVAILABLE)
    t.match(r"552 5\.3\.4", r.stderr, "the reason")
    t.eq(t.messages(), [], "nothing accepted")
    t.eq(len(t.relay.events("data-refused")), 1, "refused once")
    known = {"EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "QUIT"}
    t.eq([v for v in t.relay.verbs() if v not in known], [], "only commands read as commands")
    if t.via == "BDAT":
        b = t.relay.commands("BDAT")
        t.ok(len(b) >= 2, "refused after a chunk: %r" % [c["size"] for c in b])


harness.main()
