#!/usr/bin/python3
"""Hostile tests of the durable queue, the runner, the rate budget and the
delivery modes (SPEC §3, §6, doc/queue.md): never lose a message, never send
one twice except after the final dot, honest exit codes.

Some faults need the relay to misbehave in one transaction of several. Run
with "--state DIR ..." this file is that relay: tests/relay/relay.py with
these extra faults in control.json (the transactions are counted over the
relay's whole life, from 1):

    mail_nth    {"N": "reply"}   the N-th MAIL FROM gets this reply
    dot_nth     {"N": "reply"}   the N-th message content (end of DATA, BDAT
                                 LAST) gets this reply instead of 250 and is
                                 not kept; "drop": it is kept, then the
                                 connection is cut before the 250 goes out.
                                 "*" stands for every N."""

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True       # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# the relay with per-transaction faults (this file run with --state)

def relay_main():
    tests = os.environ.get("ACSMAIL_TESTS") or os.path.dirname(HERE)
    sys.path.insert(0, os.path.join(tests, "relay"))
    import relay as R

    state_init = R.State.__init__

    def init(self, *a, **kw):
        state_init(self, *a, **kw)
        self.mails = 0
        self.dots = 0
    R.State.__init__ = init

    def nth(faults, key, n):
        d = faults.get(key) or {}
        return d.get(str(n)) or d.get("*")

    smtp_mail = R.Relay.smtp_MAIL

    async def smtp_MAIL(self, arg):
        if self.session.authenticated and not self.envelope.mail_given:
            self.state.mails += 1
            reply = nth(self.faults, "mail_nth", self.state.mails)
            if reply:
                self.event("mail-nth", n=self.state.mails)
                await self.push(reply)
                return
        return await smtp_mail(self, arg)
    R.Relay.smtp_MAIL = smtp_MAIL

    finish = R.Relay._finish

    async def _finish(self, env, content, raw, transfer):
        self.state.dots += 1
        reply = nth(self.faults, "dot_nth", self.state.dots)
        if reply == "drop":
            self.drop_reply = True
        elif reply:
            self.event("data-refused", reason="dot_nth", n=self.state.dots)
            await self.push(reply)
            self._set_post_data_state()
            return
        return await finish(self, env, content, raw, transfer)
    R.Relay._finish = _finish

    push = R.Relay.push

    async def push_(self, status):
        if getattr(self, "drop_reply", False):
            self.drop_reply = False
            self.event("drop", after="dot")
            await self._hang_up()
        return await push(self, status)
    R.Relay.push = push_
    R.main()


if __name__ == "__main__" and "--state" in sys.argv:
    relay_main()
    sys.exit(0)


sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import test, FROM  # noqa: E402

# the helpers of test_queue.py, without its tests
_n = len(harness._registry)
import test_queue as q  # noqa: E402
del harness._registry[_n:]

from test_queue import (tag, letter, relay_down, relay_up, ids, tmp_files, entry,  # noqa: E402
                        entries, only_entry, check_entry_format, subjects, delivered_once,
                        queue_clean, send, flush, end_pause, spawn, wait_until,
                        no_budget_limit, mailq, area_dir, ratelimit_path)

harness.RELAY = os.path.abspath(__file__)

THROTTLED = "450 4.5.127 Message rejected. Excessive message rate from sender."


def rcpts(n, prefix="r"):
    return ["%s%03d@example.com" % (prefix, i) for i in range(n)]


def delivered_rcpts(t, subject=None):
    """every recipient the relay accepted a copy for (repeats kept)"""
    return [a for m in t.messages() if subject is None or m.get("Subject") == subject
            for a in m.rcpt_tos]


def no_sanitizer(t, r, what):
    t.notin("runtime error", r.stderr, what + ": no UBSan report")
    t.notin("Sanitizer", r.stderr, what + ": no ASan report")


def write_queue_file(t, qid, subject, to="a@example.com", created=None, attempts=0,
                     next_attempt=0, last="queued by a test", area="queue", body=None):
    """a queue file exactly as doc/queue.md describes it"""
    created = int(time.time()) if created is None else created
    msg = (b"From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\n"
           % (FROM.encode(), to.encode(), subject.encode(), qid.encode()))
    msg += body if body is not None else b"body of " + subject.encode() + b"\r\n"
    head = ("acsmail-queue 1\nid %s\ncreated %d\nattempts %d\nnext-attempt %d\n"
            "last-reply %s\nsender <%s>\nbody 7bit\nsmtputf8 no\nrcpt <%s>\n\n"
            % (qid, created, attempts, next_attempt, last, FROM, to))
    d = area_dir(t, area)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, qid)
    with open(path, "wb") as f:
        f.write(head.encode() + msg)
    return path


def fake_id(n):
    """a valid, old-looking queue id"""
    return "60000000%05X%06X%03X" % (n & 0xFFFFF, 4242, n & 0xFFF)


# ---------------------------------------------------------------------------
# recipients and transactions

@test("the relay 452s recipients beyond its own limit: those retried, none failed or sent twice")
def _(t):
    t.config(max_recipients=50)
    t.relay.control(max_recipients=30)
    s = tag("452")
    rs = rcpts(40)
    send(t, [], s, ", ".join(rs))
    got = delivered_rcpts(t)
    t.eq(len(got), 30, "the relay took 30 in the one transaction")
    t.eq(ids(t, "failed"), [], "a 452 is no permanent failure")
    e = only_entry(t)
    t.eq(sorted(e.addrs()), sorted(set(rs) - set(got)), "exactly the 452'd ones queued")
    # SPEC §6: mailq shows "the last error"; a 250 is none
    t.match(r"^4\d\d", e["last-reply"] or "", "last-reply is the error that keeps them queued")
    t.notin("last: 250", mailq(t), "mailq does not show a 250 as the last error")
    t.relay.control(max_recipients=50)
    flush(t)
    got = delivered_rcpts(t)
    t.eq(sorted(got), sorted(rs), "in the end each recipient exactly once")
    queue_clean(t)


@test("120 recipients, max_recipients 50, 451 at the 2nd transaction's dot: only its 50 retried")
def _(t):
    t.relay.fault("dot_nth", {"2": "451 4.3.0 Temporary server error. Please try again later"})
    s = tag("451nth")
    rs = rcpts(120)
    send(t, [], s, ", ".join(rs))
    msgs = t.messages()
    t.eq([len(m.rcpt_tos) for m in msgs], [50, 20], "the 1st and the 3rd transaction went")
    e = only_entry(t)
    t.eq(sorted(e.addrs()), sorted(rs[50:100]), "exactly the 2nd transaction's 50 queued")
    t.eq(e.num("attempts"), 1, "one failed attempt")
    t.match(r"451 4\.3\.0", e["last-reply"] or "", "the reason")
    t.eq(ids(t, "failed"), [], "nothing failed")
    flush(t)
    got = delivered_rcpts(t)
    t.eq(sorted(got), sorted(rs), "each recipient exactly once")
    t.eq(len(got), len(set(got)), "no recipient twice (%d copies)" % len(got))
    t.eq([len(m.rcpt_tos) for m in t.messages()][len(msgs):], [50], "one retry transaction")
    queue_clean(t)


@test("450 4.5.127 at the 2nd of 3 transactions: the rest held (not an attempt), then sent once")
def _(t):
    t.config(max_recipients=3)
    t.relay.control(max_recipients=3)
    t.relay.fault("mail_nth", {"2": THROTTLED})
    s = tag("thr2")
    rs = rcpts(7)
    send(t, [], s, ", ".join(rs))
    t.eq([m.rcpt_tos for m in t.messages()], [rs[:3]], "only the 1st transaction went")
    t.eq(len(t.relay.commands("MAIL")), 2, "no 3rd MAIL into the throttle")
    e = only_entry(t)
    t.eq(sorted(e.addrs()), sorted(rs[3:]), "the other 4 queued")
    # doc/queue.md: held back by a throttle pause: attempts does not grow
    t.eq(e.num("attempts"), 0, "a throttle is no failed attempt")
    t.ok((e.num("next-attempt") or 0) > time.time() + 30, "due when the pause ends")
    t.match(r"held until", mailq(t), "mailq says sending is held")
    flush(t)
    t.eq(len(t.relay.commands("MAIL")), 2, "-q in the pause sends nothing")
    end_pause(t)
    flush(t)
    got = delivered_rcpts(t)
    t.eq(sorted(got), sorted(rs), "each recipient exactly once")
    queue_clean(t)


@test("554 after the dot of one transaction of 3: those fail (kept, told), the others sent once")
def _(t):
    t.config(max_recipients=3)
    t.relay.control(max_recipients=3)
    t.relay.fault("dot_nth", {"2": "554 5.6.0 Message content rejected"})
    s = tag("554nth")
    rs = rcpts(7)
    r = send(t, [], s, ", ".join(rs))
    got = delivered_rcpts(t)
    t.eq(sorted(got), sorted(rs[:3] + rs[6:]), "the 1st and 3rd transactions went")
    t.eq(ids(t), [], "nothing deferred")
    f = entries(t, "failed")
    t.require(len(f) == 1, "the refused part is in the failed area")
    t.eq(sorted(f[0].addrs()), sorted(rs[3:6]), "exactly the refused transaction's recipients")
    why = (f[0]["last-reply"] or "") + " ".join(f[0].reply_of(a) or "" for a in rs[3:6])
    t.match(r"554 5\.6\.0", why, "with the relay's reply")
    t.match(r"554 5\.6\.0", r.stderr, "the caller is told that 3 recipients were refused")
    log = t.log_text().decode("utf-8", "replace")
    t.match(r"status=failed.*554 5\.6\.0|554 5\.6\.0.*status=failed", log,
            "the log has a failed line with the reply")
    flush(t)
    t.eq(sorted(delivered_rcpts(t)), sorted(got), "a runner sends nothing more")




@test("relay drops after the final dot (it has the message): queued, retried once, said so")
def _(t):
    t.relay.fault("dot_nth", {"1": "drop"})
    s = tag("afterdot")
    send(t, [], s)
    t.eq(len(t.messages()), 1, "the relay kept the first copy")
    e = only_entry(t)
    t.eq(e.num("attempts"), 1, "counted as a failed attempt")
    why = e["last-reply"] or ""
    t.match(r"(?i)after the (final )?dot|reply to the message|may have|duplicate", why,
            "last-reply says it broke after the message was sent")
    log = t.log_text().decode("utf-8", "replace")
    t.match(r"status=queued", log, "logged as queued")
    flush(t)
    t.eq(subjects(t).get(s), 2, "retried: the one documented duplicate (doc/queue.md)")
    queue_clean(t)


# ---------------------------------------------------------------------------
# clocks

@test("clock stepped back: next-attempt 30 days ahead (beyond any backoff) is not a 30-day wait")
def _(t):
    # SPEC §6: backoff capped at 1 h; a pause lasts at most 1 h (doc/queue.md).
    # A next-attempt further ahead than that was written by a clock that has
    # since been set back: waiting for it holds the mail for 30 days.
    now = int(time.time())
    s = tag("future")
    write_queue_file(t, fake_id(1), s, attempts=9, next_attempt=now + 30 * 86400,
                     created=now - 120)
    flush(t, ["-q1m"])
    delivered_once(t, [s], "-q1m")


@test("clock stepped back: a message created in the future still expires, mailq age sane")
def _(t):
    t.config(queue_lifetime=2)
    now = int(time.time())
    s = tag("created-future")
    qid = fake_id(2)
    write_queue_file(t, qid, s, attempts=3, created=now + 10 * 86400)
    t.relay.fault("data_451")
    flush(t)
    # a creation time that has not come is taken as now, and written so: its
    # lifetime counts from the first run that saw it, not from 10 days ahead
    t.eq(ids(t), [qid], "still queued after its first attempt")
    t.ok(entry(t, qid).num("created") <= int(time.time()), "its created time is not in the future")
    time.sleep(3)
    flush(t)
    t.eq(ids(t, "failed"), [qid], "expired queue_lifetime after it was first seen")


@test("clock jumped forward: an old message expires on its first failure, kept with why")
def _(t):
    t.config(queue_lifetime=3600)
    qid = fake_id(3)
    s = tag("old")
    write_queue_file(t, qid, s, created=int(time.time()) - 7200, attempts=2)
    relay_down(t)
    flush(t)
    t.eq(ids(t), [], "out of the queue")
    t.eq(ids(t, "failed"), [qid], "into the failed area")
    e = entry(t, qid, "failed")
    t.match(r"expired after 1 hour: last reply .*(connect|refused)",
            e.reply_of("a@example.com") or e["last-reply"] or "", "the reason")
    relay_up(t)
    t.exit(t.run(["--requeue", qid]), 0, "--requeue")
    flush(t, ["-q1m"])
    delivered_once(t, [s])


@test("a throttle pause-until 10 days ahead (clock set back) ends within the hour, not slides")
def _(t):
    s = tag("pause")
    qid = q.spooled(t, s)
    now = int(time.time())
    with open(ratelimit_path(t), "w") as f:
        f.write("acsmail-ratelimit 1\npause-until %d\nthrottles 1\nend\n" % (now + 864000))
    flush(t)
    t.eq(t.messages(), [], "held in the pause")
    out1 = mailq(t)
    t.match(r"held until", out1, "mailq says held")
    time.sleep(2.1)
    flush(t)
    out2 = mailq(t)
    held = [re.search(r"held until (\S+)", o) for o in (out1, out2)]
    t.require(all(held), "both listings say until when")
    # doc/queue.md: a pause is at most 1 hour; the cap must be a fixed end,
    # not "now + 1 hour" anew at every look (then it never ends)
    t.eq(held[1].group(1), held[0].group(1), "the end of the pause stays where it was")
    t.ok(entry(t, qid).num("next-attempt") <= now + 3600 + 5,
         "the message is due within the hour")


@test("attempts 9223372036854775807 in a queue file: no overflow, still retried")
def _(t):
    qid = fake_id(4)
    write_queue_file(t, qid, tag("huge"), attempts=9223372036854775807)
    t.relay.fault("data_451")
    r = flush(t)
    no_sanitizer(t, r, "-q")
    e = entry(t, qid)
    t.ok((e.num("attempts") or -1) >= 1, "attempts stays a positive number (%r)" % e["attempts"])
    t.ok(time.time() < (e.num("next-attempt") or 0) <= time.time() + 3601,
         "next-attempt within the 1 h backoff cap")
    r = t.run([], argv0="mailq")
    no_sanitizer(t, r, "mailq")


# ---------------------------------------------------------------------------
# the rate budget file

def budget_cases(t):
    now = int(time.time())
    big = 9223372036854775807
    return [
        ("garbage", b"\x00\xff" * 3000),
        ("empty", b""),
        ("truncated", b"acsmail-ratelimit 1\npause-until %d\nthrot" % (now + 30)),
        ("other version", b"acsmail-ratelimit 9\npause-until %d\nend\n" % (now + 3000)),
        ("100 kB", b"acsmail-ratelimit 1\n" + b"second 1 1\n" * 10000 + b"end\n"),
        ("huge counts", b"acsmail-ratelimit 1\nsecond %d %d\nsecond %d %d\nminute %d %d\n"
         b"minute %d %d\nend\n" % (now - 1, big, now - 2, big, now - now % 60, big,
                                   now - now % 60 - 60, big)),
        ("far future slots", b"acsmail-ratelimit 1\nsecond %d 99\nminute %d 999\nend\n"
         % (now + 10 ** 9, now + 10 ** 9)),
    ]


@test("ratelimit file corrupted, truncated, huge: no crash, mail goes, never into a throttle")
def _(t):
    t.config(rate_per_minute=5)
    for name, data in budget_cases(t):
        with open(ratelimit_path(t), "wb") as f:
            f.write(data)
        s = tag("rl")
        r = send(t, [], s)
        no_sanitizer(t, r, name)
        sent = subjects(t).get(s, 0)
        if name == "huge counts":
            # a full budget (however absurd the count) holds the message
            t.eq(sent, 0, "%s: the budget holds it (full windows are full)" % name)
        elif name != "truncated":
            t.eq(sent, 1, "%s: sent" % name)
        for e in entries(t):
            os.unlink(e.path)
        t.exit(t.run([], argv0="mailq"), 0, name + ": mailq")


@test("ratelimit is a directory, a symlink, a FIFO: mail still goes, nothing hangs")
def _(t):
    path = ratelimit_path(t)
    other = t.path("elsewhere")
    with open(other, "w") as f:
        f.write("acsmail-ratelimit 1\npause-until %d\nend\n" % (time.time() + 3000))

    def directory():
        os.mkdir(path)

    def symlink():
        os.symlink(other, path)

    def fifo():
        os.mkfifo(path)
    for name, make in (("directory", directory), ("symlink", symlink), ("FIFO", fifo)):
        make()
        s = tag("rl-" + name)
        try:
            r = t.run([s.lower() + "@example.com"], letter(s), timeout=4)
            t.exit(r, 0, name)
            t.eq(subjects(t).get(s, 0), 1, "%s: sent without a budget (doc/queue.md)" % name)
            r = t.run([], argv0="mailq", timeout=4)
            t.exit(r, 0, name + ": mailq")
        except harness.Failed as e:
            t._fail("%s: %s" % (name, e))
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    with open(other) as f:
        t.ok("pause-until" in f.read(), "the symlink's target was not rewritten")


# ---------------------------------------------------------------------------
# the spool's directories

@test("a FIFO under a queue id in queue/ and failed/: -q, mailq, --delete do not hang")
def _(t):
    s = tag("beside-fifo")
    good = q.spooled(t, s)
    bad = fake_id(5)
    os.mkfifo(os.path.join(area_dir(t, "queue"), bad))
    os.mkfifo(os.path.join(area_dir(t, "failed"), fake_id(6)))
    for args, what in ((["-bp"], "mailq"), (["-q"], "-q"), (["--delete", bad], "--delete"),
                       (["--requeue", fake_id(6)], "--requeue")):
        try:
            r = t.run(args, timeout=3)
            t.ok(r.code in (0, harness.EX_TEMPFAIL, harness.EX_NOUSER, harness.EX_DATAERR),
                 "%s: exit %s" % (what, r.code))
        except harness.Failed as e:
            t._fail("%s hangs on a FIFO in the spool: %s" % (what, e))
    delivered_once(t, [s], "the sound message")
    t.ok(good not in ids(t), "and it left the queue")


@test("tmp/ full of junk (dirs, FIFOs, symlinks, 3000 files, a taken name): still works")
def _(t):
    tmp = area_dir(t, "tmp")
    q.spooled(t, tag("prime"))
    flush(t)
    os.mkdir(os.path.join(tmp, "a-dir"))
    os.mkfifo(os.path.join(tmp, "a-fifo"))
    os.symlink("/etc/passwd", os.path.join(tmp, "a-link"))
    for i in range(3000):
        open(os.path.join(tmp, "junk%04d" % i), "w").close()
    old = time.time() - 7200
    for n in os.listdir(tmp):
        os.utime(os.path.join(tmp, n), (old, old), follow_symlinks=False)
    subs = [tag("junk") for _ in range(3)]
    send(t, ["-odq"], subs[0])
    send(t, [], subs[1])
    relay_down(t)
    send(t, [], subs[2])
    relay_up(t)
    t0 = time.time()
    flush(t)
    t.ok(time.time() - t0 < 10, "the pass is not slowed down much (%.1fs)" % (time.time() - t0))
    delivered_once(t, subs + [s for s in subjects(t) if s.startswith("prime")])
    left = tmp_files(t)
    t.eq(sorted(left), ["a-dir", "a-fifo", "a-link"], "stale regular files removed, the rest left")
    t.ok(os.path.exists("/etc/passwd"), "the symlink's target untouched")


@test("queue_dir on a read-only mount: -odq and relay-down exit 75; sent mail not re-sent")
def _(t):
    qd = t.path("ro")
    os.makedirs(qd)
    s0 = tag("ro")
    t.config(queue_dir=qd)
    q.spooled(t, s0)
    p = subprocess.run(["mount", "--bind", qd, qd], capture_output=True)
    if p.returncode != 0:
        t.skip("cannot bind-mount: %s" % p.stderr.decode("utf-8", "replace").strip())
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", qd], check=True, capture_output=True)
        r = send(t, ["-odq"], tag("ro-odq"), code=harness.EX_TEMPFAIL)
        t.ok(r.stderr.strip(), "-odq says why")
        relay_down(t)
        r = send(t, [], tag("ro-down"), code=harness.EX_TEMPFAIL)
        relay_up(t)
        s1 = tag("ro-up")
        send(t, [], s1)
        delivered_once(t, [s1], "foreground with the relay up needs no spool")
        for n in range(3):
            # a queue it cannot change is a temporary failure of the runner
            r = flush(t, code=harness.EX_TEMPFAIL)
            t.match(r"(?i)cannot be written", r.stderr, "-q says why")
        # the runner cannot write down that s0 was sent: doc/queue.md allows
        # one more copy ("may then get it again"), not one a pass
        got = subjects(t).get(s0, 0)
        t.ok(got <= 1, "the queued message is not sent again at every pass (%d copies)" % got)
    finally:
        if subprocess.run(["umount", qd], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", qd], capture_output=True)


@test("queue_dir missing, a file, a dangling symlink: senders exit 0 (sent) or 75, runner honest")
def _(t):
    for name, make in (("missing parent", lambda p: None),
                       ("a file", lambda p: open(p, "w").close()),
                       ("dangling symlink", lambda p: os.symlink(t.path("nowhere", "x"), p))):
        qd = t.path("qd-" + name.replace(" ", "-"), "q") if name == "missing parent" else \
            t.path("qd-" + name.replace(" ", "-"))
        make(qd)
        t.config(queue_dir=qd)
        s = tag("qd")
        send(t, [], s)
        t.eq(subjects(t).get(s), 1, name + ": sent without the spool")
        r = t.run(["-odq", "a@example.com"], letter(tag("qd")))
        t.ok(r.code in (0, harness.EX_TEMPFAIL), "%s: -odq exits 0 or 75 (%s)" % (name, r.code))
        if r.code == 0:
            t.ok(os.path.isdir(qd), name + ": exit 0 means it was queued")
        r = t.run(["-q"])
        t.ok(r.code in (0, harness.EX_TEMPFAIL, 73), "%s: -q exits 0/73/75 (%s)" % (name, r.code))
        no_sanitizer(t, r, name)
    t.config(queue_dir=t.queue_dir)


# ---------------------------------------------------------------------------
# the delivery modes

@test("-odb with the relay down: parent exits 0 at once, the child leaves it queued (1 attempt)")
def _(t):
    relay_down(t)
    s = tag("odb-down")
    r = send(t, ["-odb"], s)
    t.ok(r.elapsed < 2, "returned at once (%.2fs)" % r.elapsed)
    t.ok(wait_until(lambda: ids(t) and entry(t, ids(t)[0]).num("attempts") == 1, 8),
         "the child tried once and wrote it back")
    e = only_entry(t)
    t.match(r"(?i)connect|refused", e["last-reply"] or "", "with the reason")
    relay_up(t)
    flush(t)
    delivered_once(t, [s])


@test("-odb: the parent killed right after, the child still delivers exactly once")
def _(t):
    t.relay.fault("stall", "mail")
    t.config(timeout=3)
    subs = []
    for i in range(3):
        s = tag("odb-kill")
        subs.append(s)
        path = t.path("m%d" % i)
        with open(path, "wb") as f:
            f.write(letter(s))
        p = spawn(t, ["-odb", "a@example.com"], path)
        p.wait()
        t.eq(p.returncode, 0, "parent exit")
    # the children are stalled at MAIL; kill everything in the parents' groups
    t.relay.fault("stall", None)
    wait_until(lambda: not ids(t) or all(entry(t, x).num("attempts") for x in ids(t)), 10)
    flush(t)
    delivered_once(t, subs)
    queue_clean(t)


@test("foreground against a relay that stalls at each step (timeout 2): exit 0 queued, not hung")
def _(t):
    t.config(timeout=2)
    for step in ("greeting", "ehlo", "starttls", "auth", "rcpt", "data", "dot"):
        t.relay.fault("stall", step)
        s = tag("stall-" + step)
        before = ids(t)
        r = t.run(["a@example.com"], letter(s), timeout=20)
        t.exit(r, 0, step)
        t.ok(r.elapsed < 2 * 2 + 3, "%s: gave up after about the timeout (%.1fs)"
             % (step, r.elapsed))
        new = [x for x in ids(t) if x not in before]
        t.eq(len(new), 1, step + ": queued")
    t.relay.fault("stall", None)
    flush(t)
    t.eq(len(t.messages()), 7, "each arrived once after")



def closed_run(t, args, stdin=subprocess.DEVNULL):
    """acsmail with file descriptors 1 and 2 closed (`>&- 2>&-`)"""
    def close12():
        os.close(1)
        os.close(2)
    p = subprocess.Popen([harness.bin_path()] + args, stdin=stdin, env=t.env(),
                         preexec_fn=close12)
    p.wait(30)
    return p


@test("a runner or sender with stdout and stderr closed: nothing written into spool or socket")
def _(t):
    # fds 1 and 2 closed: the first files acsmail opens get them, and then
    # whatever it prints "to stderr" lands in those files
    t.aliases("root: %s\npipe: |/bin/true, pipe-dest@example.com\n" % harness.ROOT_ALIAS)
    relay_down(t)
    s = tag("closed")
    with open(t.path("in"), "wb") as f:
        f.write(letter(s, "pipe"))
    with open(t.path("in"), "rb") as f:
        p = closed_run(t, ["-v", "pipe"], f)
    t.eq(p.returncode, 0, "the sender exits 0 (queued)")
    e = only_entry(t)
    check_entry_format(t, e, "queue file")
    t.notin(b"acsmail:", e.body, "no diagnostics inside the queued message")
    t.eq(e.subject(), s, "the message is intact")
    relay_up(t)
    t.relay.fault("data_451")
    p = closed_run(t, ["-v", "-q"])
    t.eq(p.returncode, 0, "the runner exits 0")
    e = only_entry(t)
    check_entry_format(t, e, "queue file after the runner")
    t.notin(b"acsmail:", e.body, "no diagnostics in the rewritten file")
    t.relay.fault("data_451", None)
    p = closed_run(t, ["-v", "-q"])
    t.eq(p.returncode, 0, "the runner exits 0")
    msgs = t.messages()
    t.eq(len(msgs), 1, "delivered once")
    for m in msgs:
        t.notin(b"acsmail:", m.data, "no diagnostics in what the relay got")
    for c in t.relay.commands():
        t.ok(c["cmd"] in ("EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "QUIT",
                          "RSET", "NOOP") or c.get("unanswered"),
             "only SMTP commands on the wire (%r)" % c["cmd"])


@test("log = a path in a missing or unwritable place: mail still goes, exit 0")
def _(t):
    for where in ("/nonexistent/dir/acsmail.log", "/proc/acsmail.log", t.path()):
        t.config(log=where)
        s = tag("log")
        send(t, [], s)
        t.eq(subjects(t).get(s), 1, "%s: sent" % where)
        relay_down(t)
        send(t, [], tag("log-q"))
        relay_up(t)
        flush(t)
    t.eq(ids(t), [], "and the runner sent the queued ones")


@test("mailq with 1,000 queued messages: under 2 s, every one listed once")
def _(t):
    now = int(time.time())
    want = []
    for i in range(1000):
        qid = fake_id(100 + i)
        write_queue_file(t, qid, "mq%04d" % i, to="m%04d@example.com" % i, created=now - 60,
                         attempts=i % 7, next_attempt=now + 600, last="451 4.3.0 later")
        want.append(qid)
    t0 = time.time()
    r = t.run([], argv0="mailq")
    took = time.time() - t0
    t.exit(r, 0, "mailq")
    t.ok(took < 2.0, "mailq took %.2fs" % took)
    listed = re.findall(r"(?m)^([0-9A-F]{22})  \d+ bytes", r.stdout)
    t.eq(listed, want, "every id once, oldest first")
    t.match(r"-- 1000 messages, \d+ bytes in the queue", r.stdout, "the summary")
    t0 = time.time()
    flush(t, ["-q1m"])
    t.ok(time.time() - t0 < 5, "-q1m over 1,000 messages not due is quick (%.2fs)"
         % (time.time() - t0))
    t.no_connection("nothing due")


def peak_rss_kb(argv, env, stdin=None):
    """the peak RSS of a child, from GNU time when there is one"""
    if os.path.exists("/usr/bin/time"):
        p = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + argv, env=env, stdin=stdin,
                           capture_output=True, timeout=120)
        m = re.search(rb"RSS (\d+)", p.stderr)
        return p.returncode, int(m.group(1)) if m else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    p = subprocess.run(argv, env=env, stdin=stdin, capture_output=True, timeout=120)
    return p.returncode, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)


@test("a 9.9 MB message queued and flushed: arrives whole, the runner's memory stays flat")
def _(t):
    no_budget_limit(t)
    # ASan keeps freed blocks in quarantine: without it, RSS is the program's
    env = t.env({"ASAN_OPTIONS": "quarantine_size_mb=0:" + os.environ.get("ASAN_OPTIONS", "")})
    small = tag("small")
    q.spooled(t, small)
    rc, base = peak_rss_kb([harness.bin_path(), "-q"], env)
    t.eq(rc, 0, "small run")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01\n"
    s = tag("big")
    body = line * (9900000 // len(line))
    path = t.path("big.eml")
    with open(path, "wb") as f:
        f.write(letter(s, body=body))
    with open(path, "rb") as f:
        rc, _ = peak_rss_kb([harness.bin_path(), "-odq", "a@example.com"], t.env(), f)
    t.eq(rc, 0, "queued")
    rc, peak = peak_rss_kb([harness.bin_path(), "-q"], env)
    t.eq(rc, 0, "flushed")
    if base and peak:
        t.ok(peak - base < 6 * 1024, "peak RSS %d kB vs %d kB for a small message" % (peak, base))
    msgs = [m for m in t.messages() if m.get("Subject") == s]
    t.eq(len(msgs), 1, "arrived once")
    if msgs:
        t.ok(msgs[0].body == body.replace(b"\n", b"\r\n"), "whole")
    queue_clean(t)


@test("SIGTERM / SIGINT of a runner mid-delivery: nothing lost, each sent once after")
def _(t):
    t.config(timeout=10)
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = tag("sig%d" % sig)
        qid = q.spooled(t, s)
        t.relay.fault("stall", "dot")
        p = spawn(t, ["-q"])
        wait_until(lambda: [e for e in t.relay.events("stall")], 8)
        p.send_signal(sig)
        p.wait(10)
        t.ok(p.returncode != 0, "the runner stopped (%s)" % p.returncode)
        t.relay.fault("stall", None)
        t.eq(ids(t), [qid], "still queued after signal %d" % sig)
        e = entry(t, qid)
        check_entry_format(t, e, "queue file")
        flush(t)
        t.eq(subjects(t).get(s), 1, "sent once after signal %d" % sig)
    queue_clean(t)


@test("two runners and 3 senders while the relay flaps every 200 ms: each message once")
def _(t):
    no_budget_limit(t)
    t.config(timeout=3)
    stop = threading.Event()
    faults = [("data_451", True), ("greeting_421", True), ("drop_in_data", True),
              ("refuse_rcpt", None), ("stall", None)]

    def flapper():
        i = 0
        while not stop.is_set():
            name, value = faults[i % len(faults)]
            for n, _ in faults:
                t.relay._control["faults"].pop(n, None)
            if value is not None and i % 2 == 0:
                t.relay._control["faults"][name] = value
            t.relay._write_control()
            i += 1
            time.sleep(0.2)
    subs, codes = [], []
    lock = threading.Lock()

    def sender(n):
        for k in range(6):
            s = tag("flap%d" % n)
            with lock:
                subs.append(s)
            mode = (["-odq"], [], ["-odb"])[(n + k) % 3]
            p = subprocess.run([harness.bin_path()] + mode + ["f@example.com"],
                               input=letter(s, "f@example.com"), capture_output=True,
                               env=t.env(), timeout=60)
            with lock:
                codes.append((s, p.returncode))

    def runner():
        while not stop.is_set():
            p = subprocess.run([harness.bin_path(), "-q"], capture_output=True, env=t.env(),
                               timeout=60)
            with lock:
                codes.append(("runner", p.returncode))
    th = [threading.Thread(target=flapper)] + \
        [threading.Thread(target=runner) for _ in range(2)]
    ss = [threading.Thread(target=sender, args=(n,)) for n in range(3)]
    for x in th + ss:
        x.start()
    for x in ss:
        x.join()
    time.sleep(1)
    stop.set()
    for x in th:
        x.join()
    for n, _ in faults:
        t.relay.fault(n, None)
    time.sleep(0.5)
    wait_until(lambda: not [x for x in ids(t)
                            if entry(t, x).num("attempts") == 0 and "background"
                            in (entry(t, x)["last-reply"] or "")], 8)
    flush(t)
    t.eq([c for c in codes if c[1] != 0], [], "every process exits 0")
    delivered_once(t, subs, "flapping")
    queue_clean(t)


@test("--requeue and --delete racing a runner: refused while it delivers, never lost or doubled")
def _(t):
    t.config(timeout=5)
    t.relay.fault("refuse_rcpt", ["bad@example.com"])
    s = tag("race")
    r = send(t, [], s, "bad@example.com, slow@example.com", code=0)
    # one recipient failed; the other was delivered at once: queue the
    # failed part's twin in the queue under the same id, via a relay-down run
    fid = ids(t, "failed")
    t.require(len(fid) == 1, "a failed part")
    t.relay.fault("refuse_rcpt", None)
    s2 = tag("race-q")
    qid = q.spooled(t, s2)
    t.relay.fault("stall", "dot")
    p = spawn(t, ["-q"])
    try:
        wait_until(lambda: t.relay.events("stall"), 8)
        r = t.run(["--requeue", qid])
        t.exit(r, harness.EX_TEMPFAIL, "--requeue of the message being delivered")
        r = t.run(["--delete", qid])
        t.exit(r, harness.EX_TEMPFAIL, "--delete of the message being delivered")
        r = t.run(["--requeue", fid[0]])
        t.exit(r, 0, "--requeue of the failed one meanwhile")
    finally:
        p.wait(20)
    t.relay.fault("stall", None)
    flush(t)
    got = subjects(t)
    t.eq(got.get(s2), 1, "the raced message sent once")
    t.eq(got.get(s), 2, "the requeued failed recipient got its copy (the other got it first)")
    queue_clean(t)


if __name__ == "__main__":
    harness.main()
