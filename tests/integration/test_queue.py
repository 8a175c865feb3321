#!/usr/bin/python3
"""The durable queue (SPEC §3, §6, doc/queue.md): delivery modes, mailq, the
runner (-q, -q<time>, filters, one connection, backoff, lifetime), the failed
area (--requeue, --delete), the rate budget and throttle pauses, and
max_recipients.

The helpers at the top are shared with test_faults.py, which imports this
file without registering its tests (see the end of the file)."""

import itertools
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True       # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, FROM, ALLOWED  # noqa: E402

# ---------------------------------------------------------------------------
# helpers (also used by test_faults.py)

ID_RE = re.compile(r"[0-9A-Za-z]{1,31}")
_serial = itertools.count(1)


def tag(prefix="m"):
    """a unique Subject, to tell the messages apart at the relay"""
    return "%s-%d-%d" % (prefix, os.getpid(), next(_serial))


def letter(subject, to="a@example.com", body=None):
    """a message with LF line ends"""
    if body is None:
        body = ("body of %s\n" % subject).encode()
    return ("To: %s\nSubject: %s\n\n" % (to, subject)).encode() + body


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def relay_down(t):
    """point the config at a port where nothing listens"""
    t.config(port=closed_port())


def relay_up(t):
    t.config(port=t.relay.port)


def no_budget_limit(t):
    """rate limits far above what a test sends (0 is refused by the config)"""
    t.config(rate_per_minute=1000000, rate_per_hour=1000000)


def area_dir(t, area):
    return os.path.join(t.conf.get("queue_dir", t.queue_dir), area)


def ids(t, area="queue"):
    """the queue ids in an area, oldest first"""
    try:
        names = os.listdir(area_dir(t, area))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if ID_RE.fullmatch(n))


def tmp_files(t):
    try:
        return sorted(os.listdir(area_dir(t, "tmp")))
    except FileNotFoundError:
        return []


class Entry:
    """A queue file as doc/queue.md describes it."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        i = data.find(b"\n\n")
        if i < 0:
            raise harness.Failed("%s: no end of header" % path)
        head = data[:i].decode("utf-8", "surrogateescape").split("\n")
        self.body = data[i + 2:]              # the message as it will be sent
        self.first = head[0]
        self.keys = {}
        self.rcpts = []                       # [(addr, own reply or None)]
        for line in head[1:]:
            k, _, v = line.partition(" ")
            if k == "rcpt":
                self.rcpts.append([v.strip("<>"), None])
            elif k == "reply" and self.rcpts:
                self.rcpts[-1][1] = v
            else:
                self.keys[k] = v

    def __getitem__(self, k):
        return self.keys.get(k)

    def num(self, k):
        v = self.keys.get(k)
        return int(v) if v is not None and v.isdigit() else None

    def addrs(self):
        return [a for a, _ in self.rcpts]

    def reply_of(self, addr):
        for a, r in self.rcpts:
            if a == addr:
                return r
        return None

    def subject(self):
        m = re.search(rb"(?im)^Subject: *(.*?)\r?$", self.body.split(b"\r\n\r\n", 1)[0])
        return m.group(1).decode() if m else None


def entry(t, qid, area="queue"):
    return Entry(os.path.join(area_dir(t, area), qid))


def entries(t, area="queue"):
    out = []
    for qid in ids(t, area):
        try:
            out.append(entry(t, qid, area))
        except FileNotFoundError:
            pass
    return out


def only_entry(t, area="queue"):
    es = entries(t, area)
    if len(es) != 1:
        raise harness.Failed("expected exactly 1 file in %s/, got %d: %r"
                             % (area, len(es), [e.path for e in es]))
    return es[0]


def check_entry_format(t, e, what):
    """the header rules of doc/queue.md that every file must keep"""
    t.eq(e.first, "acsmail-queue 1", what + ": first line")
    t.eq(e["id"], os.path.basename(e.path), what + ": id matches the file name")
    for k in ("created", "attempts", "next-attempt"):
        t.ok(e.num(k) is not None, "%s: %s is a number (%r)" % (what, k, e[k]))
    t.match(r"^<.*>$", e["sender"], what + ": sender in <>")


def subjects(t):
    """{Subject: number of times the relay accepted it}"""
    out = {}
    for m in t.messages():
        s = m.get("Subject")
        out[s] = out.get(s, 0) + 1
    return out


def delivered_once(t, subs, what="delivered"):
    got = subjects(t)
    for s in subs:
        t.eq(got.get(s, 0), 1, "%s: %s reached the relay exactly once" % (what, s))
    extra = sorted(s for s in got if s not in subs)
    t.eq(extra, [], what + ": no other message reached the relay")


def queue_clean(t, what="afterwards"):
    t.eq(ids(t), [], what + ": the queue is empty")
    t.eq(ids(t, "failed"), [], what + ": the failed area is empty")
    t.eq(tmp_files(t), [], what + ": nothing left in tmp/")


def send(t, args, subject, to="a@example.com", body=None, code=0, **kw):
    """runs acsmail ARGS TO with a letter; checks the exit code"""
    r = t.run(list(args) + [to], letter(subject, to, body), **kw)
    t.exit(r, code, "exit code of %s" % subject)
    return r


def queue_new(t, before, what):
    """the one id that appeared in queue/ since `before`"""
    new = [q for q in ids(t) if q not in before]
    if len(new) != 1:
        raise harness.Failed("%s: expected 1 new queue file, got %r" % (what, new))
    return new[0]


def spooled(t, subject, to="a@example.com", args=("-odq",)):
    """queues a message with -odq; returns its id"""
    before = ids(t)
    send(t, args, subject, to)
    return queue_new(t, before, subject)


def flush(t, args=("-q",), code=0, timeout=60):
    r = t.run(list(args), timeout=timeout)
    t.exit(r, code)
    return r


def ratelimit_path(t):
    return os.path.join(t.conf.get("queue_dir", t.queue_dir), "ratelimit")


def end_pause(t):
    """makes a throttle pause (doc/queue.md: pause-until in queue_dir/ratelimit)
    lie in the past, as if its time had come"""
    path = ratelimit_path(t)
    with open(path) as f:
        text = f.read()
    new, n = re.subn(r"(?m)^pause-until \d+$", "pause-until %d" % (time.time() - 1), text)
    if n != 1:
        raise harness.Failed("no pause-until line in %s: %r" % (path, text))
    with open(path, "w") as f:
        f.write(new)


def replies(t, code):
    """the relay's reply lines starting with code"""
    return [e["line"] for e in t.relay.events("reply") if e["line"].startswith(code)]


def spawn(t, args, stdin_path=None, env=None):
    """starts acsmail without waiting; stdin from a file"""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        return subprocess.Popen([harness.bin_path()] + list(args), stdin=stdin,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=t.env(env))
    finally:
        if stdin_path:
            stdin.close()


def wait_until(cond, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() >= end:
            return v
        time.sleep(step)


def mailq(t, **kw):
    r = t.run([], argv0="mailq", **kw)
    t.exit(r, 0, "exit code of mailq")
    return r.stdout


# ---------------------------------------------------------------------------
# delivery modes

@test("foreground, relay down: exit 0, spooled with the reason, logged; -v says so")
def _(t):
    relay_down(t)
    s = tag("fg")
    r = send(t, [], s, "x@example.com")
    e = only_entry(t)
    check_entry_format(t, e, "queue file")
    t.eq(e.addrs(), ["x@example.com"], "recipient queued")
    t.eq(e["sender"], "<%s>" % FROM, "sender queued")
    t.match(r"connect.*(refused|port)", e["last-reply"], "last-reply: why it was queued")
    t.eq(e.subject(), s, "the message itself is in the file")
    t.ok(e.body.endswith(b"\r\n\r\nbody of %s\r\n" % s.encode()), "body, CRLF, not dot-stuffed")
    t.eq(e.num("attempts"), 1, "attempts: the foreground attempt failed once "
         "(doc/queue.md: delivery attempts that failed temporarily)")
    na = e.num("next-attempt") or 0
    t.ok(time.time() + 50 < na <= time.time() + 61,
         "next-attempt about a minute ahead (%r)" % na)
    qid = e["id"]
    log = t.log_text().decode("utf-8", "replace")
    t.match(r"id=%s .*status=queued.*(refused|connect)" % qid, log, "log: id, queued, reason")
    t.eq(r.stdout, "", "nothing on stdout")

    s2 = tag("fgv")
    r = send(t, ["-v"], s2, "y@example.com")
    e2 = [x for x in entries(t) if x.subject() == s2]
    t.require(len(e2) == 1, "the -v message is queued")
    t.match(r"queued as %s: .*(refused|connect)" % e2[0]["id"], r.stderr,
            "-v: stderr says queued as ID and why")
    t.nothing_sent()


@test("-odq: spooled (next-attempt 0, due at once), nothing sent, exit 0; -q1m sends it")
def _(t):
    s = tag("odq")
    r = send(t, ["-odq"], s)
    t.eq(r.stderr, "", "quiet")
    t.no_connection("-odq")
    e = only_entry(t)
    check_entry_format(t, e, "queue file")
    t.eq(e.num("attempts"), 0, "attempts")
    t.eq(e.num("next-attempt"), 0, "next-attempt 0: due at once")
    t.isin("queue", e["last-reply"] or "", "last-reply says why it was queued")
    flush(t, ["-q1m"])
    delivered_once(t, [s])
    queue_clean(t)


@test("delivery = \"queue\" in the config spools; -odi overrides it and sends now")
def _(t):
    t.config(delivery="queue")
    s = tag("cfgq")
    send(t, [], s)
    t.no_connection("delivery = queue")
    t.eq([e.subject() for e in entries(t)], [s], "queued")
    s2 = tag("odi")
    send(t, ["-odi"], s2)
    delivered_once(t, [s2], "-odi")
    t.eq([e.subject() for e in entries(t)], [s], "only the first stays queued")


@test("-odb: returns at once, the message arrives shortly after, the queue empties")
def _(t):
    s = tag("odb")
    r = send(t, ["-odb"], s)
    t.ok(r.elapsed < 2.0, "returned quickly (%.2fs)" % r.elapsed)
    msgs = t.relay.wait_messages(1, timeout=8)
    t.eq(len(msgs), 1, "arrived")
    wait_until(lambda: not ids(t), 5)
    delivered_once(t, [s])
    queue_clean(t)


@test("-odb against a stalled relay: the caller does not wait; the child defers it")
def _(t):
    t.relay.fault("stall", "mail")
    t.config(timeout=4)
    s = tag("odbstall")
    r = send(t, ["-odb"], s)
    t.ok(r.elapsed < 2.5, "returned while the relay stalls (%.2fs)" % r.elapsed)
    t.ok(wait_until(lambda: t.relay.commands("MAIL"), 5), "the background child reached MAIL")
    t.eq(t.messages(), [], "nothing accepted yet")
    # the child times out after 4 s and writes the message back with an attempt
    t.ok(wait_until(lambda: ids(t) and entry(t, ids(t)[0]).num("attempts") == 1, 10),
         "the background child deferred it (attempts 1)")
    t.relay.fault("stall", None)
    flush(t)
    delivered_once(t, [s])
    queue_clean(t)


# ---------------------------------------------------------------------------
# mailq

def mailq_fixture(t):
    """a deferred message with two recipients, a -odq one, and a failed recipient"""
    t.relay.fault("data_451")
    a = spooled(t, tag("mq-a"), "one@example.com, two@example.net")
    flush(t)                                 # one failed attempt: 451
    t.relay.fault("data_451", None)
    b = spooled(t, tag("mq-b"), "three@example.org")
    t.relay.fault("refuse_rcpt", ["gone@example.com"])
    before = ids(t, "failed")
    send(t, [], tag("mq-c"), "gone@example.com", code=harness.EX_NOUSER)
    c = [x for x in ids(t, "failed") if x not in before]
    t.require(len(c) == 1, "the refused message is in the failed area")
    return a, b, c[0]


@test("mailq (argv[0]) and -bp: id, size, age, sender, recipients, attempts, last error, failed")
def _(t):
    a, b, c = mailq_fixture(t)
    out = mailq(t)
    r = t.run(["-bp"])
    t.exit(r, 0, "-bp")
    t.eq(r.stdout, out, "-bp prints what mailq prints")
    ea, eb, ec = entry(t, a), entry(t, b), entry(t, c, "failed")
    qpart, _, fpart = out.partition("\nFailed:\n")
    t.ok(fpart != "", "a Failed: section")

    for e, part, what in ((ea, qpart, "deferred"), (eb, qpart, "queued"),
                          (ec, fpart, "failed")):
        qid = e["id"]
        m = re.search(r"(?m)^%s +(\d+) bytes +(\d+)s old +(\d+) attempts?\b.*$" % qid, part)
        if not t.ok(m, "%s: a line with the id, size, age and attempts for %s:\n%s"
                    % (what, qid, out)):
            continue
        t.eq(int(m.group(1)), len(e.body), what + ": the size is the message as it will be sent")
        t.ok(int(m.group(2)) < 60, what + ": age in seconds")
        t.eq(int(m.group(3)), e.num("attempts"), what + ": attempts as in the file")
        block = part[m.start():].split("\n\n", 1)[0]
        t.isin("from: <%s>" % FROM, block, what + ": sender")
        for addr in e.addrs():
            t.match(r"to: +<%s>" % re.escape(addr), block, what + ": recipient " + addr)
        if what == "deferred":
            t.match(r"last: +451 4\.3\.0", block, "deferred: last error")
            t.match(r"next try in", m.group(0), "deferred: when it is tried next")
        if what == "failed":
            t.match(r"why: +.*550 5\.1\.1", block, "failed: why")
    t.eq(ea.num("attempts"), 1, "the deferred message has one attempt")
    t.match(r"-- 2 messages, \d+ bytes in the queue", qpart, "queue summary")
    t.match(r"-- 1 failed message", fpart, "failed summary")
    t.notin(harness.PASSWORD, out, "no secret in mailq")


@test("mailq: \"Mail queue is empty\", also before queue_dir exists")
def _(t):
    t.eq(mailq(t).strip(), "Mail queue is empty", "empty queue_dir")
    t.config(queue_dir=t.path("not", "there"))
    t.eq(mailq(t).strip(), "Mail queue is empty", "missing queue_dir")
    t.config(queue_dir=t.queue_dir)
    spooled(t, tag("e"))
    flush(t)
    t.eq(mailq(t).strip(), "Mail queue is empty", "after the queue was sent")


# ---------------------------------------------------------------------------
# the runner

@test("-q1m leaves a message that was just deferred; -q sends it at once")
def _(t):
    relay_down(t)
    s = tag("due")
    send(t, [], s)
    t.eq(len(ids(t)), 1, "queued")
    relay_up(t)
    flush(t, ["-q1m"])
    t.no_connection("-q1m with nothing due")
    t.eq(len(ids(t)), 1, "still queued")
    flush(t, ["-q"])
    delivered_once(t, [s])
    queue_clean(t)
    flush(t, ["-q"])
    t.eq(len(t.relay.connections()), 1, "-q with an empty queue does not connect")


@test("-qR, -qS, -qI: only the matching messages, case-insensitively")
def _(t):
    sa, sb, sc, sd = (tag(x) for x in "abcd")
    a = spooled(t, sa, "alpha@example.com")
    spooled(t, sb, "beta@example.net")
    spooled(t, sc, "gamma@example.org", args=("-odq", "-f", ALLOWED))
    d = spooled(t, sd, "delta@example.org")
    flush(t, ["-qRBETA@Example"])
    delivered_once(t, [sb], "-qR")
    flush(t, ["-qR", "nobody@nowhere"])
    delivered_once(t, [sb], "-qR without a match")
    flush(t, ["-qSAlerts@"])
    delivered_once(t, [sb, sc], "-qS")
    t.eq(t.messages()[-1].mail_from, ALLOWED, "-qS sent the one with that sender")
    flush(t, ["-qI" + d[-9:].lower()])
    delivered_once(t, [sb, sc, sd], "-qI")
    t.eq(ids(t), [a], "the unmatched one stays")
    flush(t)
    delivered_once(t, [sa, sb, sc, sd], "-q")
    queue_clean(t)


@test("five queued messages go over ONE connection, one transaction each")
def _(t):
    subs = [tag("one") for _ in range(5)]
    for i, s in enumerate(subs):
        spooled(t, s, "r%d@example.com" % i)
    flush(t)
    delivered_once(t, subs)
    t.eq(len(t.relay.connections()), 1, "connections")
    t.eq(len(t.relay.commands("MAIL")), 5, "MAIL commands")
    t.eq(len(t.relay.commands("DATA")) + len([c for c in t.relay.commands("BDAT")
                                               if "LAST" in (c.get("arg") or "").upper()]), 5,
         "DATA or BDAT LAST commands: one message each")
    t.eq(len(t.relay.commands("AUTH")), 1, "one AUTH")
    t.eq([m.rcpt_tos for m in t.messages()], [["r%d@example.com" % i] for i in range(5)],
         "each its own recipient, oldest first")
    queue_clean(t)


@test("backoff grows: attempts 1, 2, 3 and next-attempt +60, +120, +240 s; last-reply")
def _(t):
    s = tag("backoff")
    qid = spooled(t, s)
    t.relay.fault("data_451")
    for n, wait in ((1, 60), (2, 120), (3, 240)):
        flush(t)
        now = time.time()
        e = entry(t, qid)
        t.eq(e.num("attempts"), n, "attempts after %d failed runs" % n)
        na = e.num("next-attempt") or 0
        t.ok(now + wait - 3 <= na <= now + wait + 1,
             "next-attempt %d s ahead (got %+.1f)" % (wait, na - now))
        t.match(r"^451 4\.3\.0", e["last-reply"], "last-reply")
        t.eq(e.subject(), s, "the message is unchanged")
    t.match(r"next try in [34]m", mailq(t), "mailq shows the next try")
    t.eq(t.messages(), [], "nothing accepted")
    t.relay.fault("data_451", None)
    flush(t, ["-q1m"])
    t.eq(t.messages(), [], "-q1m respects the backoff")
    flush(t)
    delivered_once(t, [s])
    queue_clean(t)


@test("queue_lifetime exceeded: into the failed area with \"expired\", mailq shows it")
def _(t):
    t.config(queue_lifetime=1)
    s = tag("expire")
    qid = spooled(t, s, "late@example.com")
    time.sleep(1.2)
    t.relay.fault("data_451")
    flush(t)
    t.eq(ids(t), [], "no longer queued")
    t.eq(ids(t, "failed"), [qid], "in the failed area under its id")
    e = entry(t, qid, "failed")
    t.eq(e.addrs(), ["late@example.com"], "the recipient kept")
    why = e.reply_of("late@example.com") or e["last-reply"] or ""
    t.match(r"expired.*451 4\.3\.0", why, "the reason: expired, with the last reply")
    t.eq(e.subject(), s, "the message kept")
    out = mailq(t)
    t.match(r"(?s)Failed:.*%s.*expired" % qid, out, "mailq lists it as expired")
    t.eq(t.messages(), [], "nothing accepted")


@test("a 5xx for one recipient: the others delivered, that one kept in the failed area")
def _(t):
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    s = tag("mixed")
    before = ids(t, "failed")
    r = send(t, [], s, "good@example.com, bad@example.com, fine@example.net")
    m = t.message()
    t.eq(sorted(m.rcpt_tos), ["fine@example.net", "good@example.com"], "delivered to the others")
    t.isin("bad@example.com", r.stderr, "the refused recipient is reported")
    t.eq(ids(t), [], "nothing left in the queue")
    new = [x for x in ids(t, "failed") if x not in before]
    t.require(len(new) == 1, "one file in the failed area")
    e = entry(t, new[0], "failed")
    t.eq(e.addrs(), ["bad@example.com"], "only the refused recipient")
    t.match(r"550 5\.1\.1", (e.reply_of("bad@example.com") or "") + (e["last-reply"] or ""),
            "its reason")
    t.eq(e.subject(), s, "the message kept")
    t.match(r"(?s)Failed:.*bad@example\.com", mailq(t), "mailq shows it")


@test("the relay refuses the sender: exit 69 told once, not pinned on the recipients; kept")
def _(t):
    t.relay.control(allowed_senders=["someone-else@mail.example.com"])
    s = tag("sender")
    before = ids(t, "failed")
    r = send(t, [], s, "one@example.com, two@example.com", code=harness.EX_UNAVAILABLE)
    t.eq(t.messages(), [], "nothing accepted")
    t.match(r"sender refused", r.stderr, "the sender is named as the cause")
    t.notin("one@example.com: ", r.stderr, "the sender's refusal is not told as the recipient's")
    t.notin("two@example.com: ", r.stderr, "nor the other's")
    new = [x for x in ids(t, "failed") if x not in before]
    t.require(len(new) == 1, "the message is kept in the failed area")
    t.eq(sorted(entry(t, new[0], "failed").addrs()), ["one@example.com", "two@example.com"],
         "for both recipients")


@test("the runner: a 5xx for one queued recipient moves it to failed/, the rest is sent")
def _(t):
    s = tag("mixedq")
    qid = spooled(t, s, "good@example.com, bad@example.com")
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    flush(t)
    t.eq(t.message().rcpt_tos, ["good@example.com"], "delivered to the good one")
    t.eq(ids(t), [], "queue empty")
    t.eq(ids(t, "failed"), [qid], "failed under the same id")
    t.eq(entry(t, qid, "failed").addrs(), ["bad@example.com"], "the refused recipient")


@test("--requeue ID moves a failed message back (attempts 0, due); -q delivers it once")
def _(t):
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    s = tag("requeue")
    send(t, [], s, "bad@example.com", code=harness.EX_NOUSER)
    fid = ids(t, "failed")
    t.require(len(fid) == 1, "in the failed area")
    qid = fid[0]
    t.relay.fault("refuse_rcpt", None)
    r = t.run(["--requeue", qid])
    t.exit(r, 0, "--requeue")
    t.eq(ids(t, "failed"), [], "gone from the failed area")
    t.eq(ids(t), [qid], "back in the queue under its id")
    e = entry(t, qid)
    t.eq(e.num("attempts"), 0, "attempts reset")
    t.eq(e.num("next-attempt"), 0, "due at once")
    t.ok(abs((e.num("created") or 0) - time.time()) < 5, "created = now: a full lifetime")
    t.eq(e.addrs(), ["bad@example.com"], "the recipient")
    flush(t, ["-q1m"])
    delivered_once(t, [s])
    t.eq(t.message().rcpt_tos, ["bad@example.com"], "to the requeued recipient")
    queue_clean(t)


@test("--requeue of a queued id makes it due at once for -q1m")
def _(t):
    relay_down(t)
    s = tag("due-now")
    send(t, [], s)
    qid = only_entry(t)["id"]
    relay_up(t)
    r = t.run(["--requeue", qid])
    t.exit(r, 0, "--requeue")
    t.eq(entry(t, qid).num("next-attempt"), 0, "next-attempt 0")
    flush(t, ["-q1m"])
    delivered_once(t, [s])


@test("--delete ID removes a queued and a failed message; mailq is empty after")
def _(t):
    q = spooled(t, tag("del-q"))
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    send(t, [], tag("del-f"), "bad@example.com", code=harness.EX_NOUSER)
    f = ids(t, "failed")
    t.require(len(f) == 1, "one failed message")
    for qid in (q, f[0]):
        r = t.run(["--delete", qid])
        t.exit(r, 0, "--delete " + qid)
    queue_clean(t, "after --delete")
    t.eq(mailq(t).strip(), "Mail queue is empty", "mailq")
    flush(t)
    t.eq(t.messages(), [], "nothing sent")


@test("--requeue / --delete: unknown id exits 67, a non-id 64, nothing touched")
def _(t):
    q = spooled(t, tag("keep"))
    for args, code in ((["--requeue", "0123456789ABCDEF012345"], harness.EX_NOUSER),
                       (["--delete", "0123456789ABCDEF012345"], harness.EX_NOUSER),
                       (["--delete", "../queue/" + q], harness.EX_USAGE),
                       (["--requeue", q + "/x"], harness.EX_USAGE)):
        r = t.run(args)
        t.exit(r, code, " ".join(args))
        t.ok(r.stderr.strip() != "", "%s: an error message" % " ".join(args))
    t.eq(ids(t), [q], "the queued message untouched")


# ---------------------------------------------------------------------------
# the rate budget and throttles

@test("rate_per_minute = 3, five messages: 3 sent, 2 queued (exit 0), no 450 ever")
def _(t):
    t.config(rate_per_minute=3)
    t.relay.fault("rate_limit", {"count": 3, "window": 60})
    subs = [tag("rate") for _ in range(5)]
    for s in subs:
        send(t, [], s)
    got = subjects(t)
    t.eq(sorted(got), sorted(subs[:3]), "the first three sent")
    t.eq(len(t.relay.connections()), 3, "no connection for the held-back ones")
    qs = entries(t)
    t.eq(sorted(e.subject() for e in qs), sorted(subs[3:]), "the other two queued")
    for e in qs:
        t.match(r"(?i)rate", e["last-reply"], "queued because of the rate budget")
        na = e.num("next-attempt") or 0
        t.ok(na <= time.time() + 61, "next-attempt within the minute (%+.0f)" % (na - time.time()))
    flush(t)
    t.eq(len(t.messages()), 3, "-q sends nothing into a full budget")
    t.eq(len(t.relay.connections()), 3, "-q does not even connect")
    t.match(r"held until", mailq(t), "mailq says sending is held")
    t.eq(replies(t, "450"), [], "the relay never had to say 450")


@test("450 4.5.127: queued; sends in the pause are queued without connecting; then one -q")
def _(t):
    t.relay.fault("throttle")
    s1 = tag("thr")
    send(t, [], s1)
    t.eq(len(t.relay.connections()), 1, "one connection")
    e = only_entry(t)
    t.match(r"450 4\.5\.127", e["last-reply"], "the throttle reply kept")
    t.relay.fault("throttle", None)
    s2 = tag("thr")
    r = send(t, ["-v"], s2)
    t.eq(len(t.relay.connections()), 1, "no connection during the pause")
    t.match(r"queued as ", r.stderr, "-v: queued")
    t.eq(len(ids(t)), 2, "both queued")
    flush(t)
    t.eq(len(t.relay.connections()), 1, "-q in the pause does not connect")
    t.match(r"held until", mailq(t), "mailq says sending is held")
    t.eq(t.messages(), [], "nothing sent in the pause")
    end_pause(t)
    flush(t)
    delivered_once(t, [s1, s2])
    t.eq(len(t.relay.connections()), 2, "one more connection for both")
    queue_clean(t)


# ---------------------------------------------------------------------------
# max_recipients

def seven(t):
    return ["p%d@example.com" % i for i in range(7)]


@test("more than max_recipients (3): 7 recipients in 3 transactions over one connection")
def _(t):
    t.config(max_recipients=3)
    t.relay.control(max_recipients=3)
    s = tag("many")
    send(t, [], s, ", ".join(seven(t)))
    msgs = t.messages()
    t.eq([len(m.rcpt_tos) for m in msgs], [3, 3, 1], "recipients per transaction")
    t.eq(sorted(a for m in msgs for a in m.rcpt_tos), sorted(seven(t)), "each recipient once")
    t.eq(len({m.get("Message-ID") for m in msgs}), 1, "the same message each time")
    t.eq(len(t.relay.connections()), 1, "one connection")
    t.eq(replies(t, "452"), [], "the relay's limit was never hit")
    queue_clean(t)


@test("the runner splits a queued message with 7 recipients the same way")
def _(t):
    t.config(max_recipients=3)
    t.relay.control(max_recipients=3)
    s = tag("manyq")
    spooled(t, s, ", ".join(seven(t)))
    flush(t)
    msgs = t.messages()
    t.eq([len(m.rcpt_tos) for m in msgs], [3, 3, 1], "recipients per transaction")
    t.eq(sorted(a for m in msgs for a in m.rcpt_tos), sorted(seven(t)), "each recipient once")
    queue_clean(t)


@test("max_recipients, 450 4.5.127 at the second transaction: only its part stays queued")
def _(t):
    t.config(max_recipients=3)
    t.relay.control(max_recipients=3)
    s = tag("part")
    qid = spooled(t, s, ", ".join(seven(t)))
    # the relay throttles every transaction after the first one
    t.relay.fault("rate_limit", {"count": 1, "window": 600})
    flush(t)
    first = [a for m in t.messages() for a in m.rcpt_tos]
    t.eq(len(first), 3, "the first transaction went")
    left = entry(t, qid).addrs() if qid in ids(t) else []
    t.eq(sorted(left), sorted(a for a in seven(t) if a not in first),
         "the rest stays queued")
    t.relay.fault("rate_limit", None)
    if os.path.exists(ratelimit_path(t)):
        try:
            end_pause(t)
        except harness.Failed:
            pass
    flush(t)
    got = [a for m in t.messages() for a in m.rcpt_tos]
    t.eq(sorted(got), sorted(seven(t)), "in the end each recipient exactly once")
    queue_clean(t)


if __name__ == "__main__":
    harness.main()
