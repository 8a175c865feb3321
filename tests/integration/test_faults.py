#!/usr/bin/python3
"""The fault matrix of the durable queue (SPEC §3, §6, doc/queue.md): each
fault of the relay or the host, the exit code, the queue's state, and that
once the fault clears one -q delivers each message exactly once. Then a full
spool filesystem, SIGKILL of senders and runners at random moments, and
concurrent senders and runners.

ACSMAIL_SEED sets the seed of the random moments (printed with each test)."""

import os
import random
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True       # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, PASSWORD  # noqa: E402

# the helpers of test_queue.py, without its tests
_n = len(harness._registry)
import test_queue as q  # noqa: E402
del harness._registry[_n:]

from test_queue import (tag, letter, relay_down, relay_up, ids, tmp_files,  # noqa: E402
                        entries, only_entry, check_entry_format, subjects, delivered_once,
                        queue_clean, send, flush, end_pause, spawn, wait_until,
                        no_budget_limit)

RCPT = "matrix@example.com"
# a line that starts with a dot, a long line, and 8-bit text: the relay must
# get the message back exactly as spooled
BODY = (b"first line\n..a line that starts with a dot\n" + b"x" * 900 + b"\n"
        + "caf\u00e9 \u00fcber\n".encode("utf-8") + b"last line\n")


def seed():
    s = os.environ.get("ACSMAIL_SEED")
    return int(s) if s else int(time.time() * 1000) % 1000000


def matrix(t, name, setup, clear, reply_re, check=None, paused=False):
    """One fault: the sender exits 0 with the message queued and nothing
    sent; a runner while the fault lasts keeps it (attempts + 1, or
    untouched during a throttle pause); once cleared one -q sends it exactly
    once, byte for byte as spooled, and a second -q sends nothing."""
    setup(t)
    s = tag(name)
    r = send(t, [], s, RCPT, BODY)
    t.eq(t.messages(), [], "nothing accepted while the fault lasts")
    e = only_entry(t)
    check_entry_format(t, e, "queue file")
    t.eq(e.addrs(), [RCPT], "the recipient is queued")
    t.eq(e.subject(), s, "the message is queued")
    t.match(reply_re, e["last-reply"], "last-reply says why")
    t.eq(q.ids(t, "failed"), [], "a temporary fault puts nothing in the failed area")
    t.match(r"status=queued", t.log_text().decode("utf-8", "replace"), "logged as queued")
    if check:
        check(t, r)
    spooled_body = e.body
    attempts = e.num("attempts") or 0

    conns = len(t.relay.connections())
    flush(t)
    e = only_entry(t)
    t.eq(t.messages(), [], "a runner during the fault sends nothing")
    if paused:
        t.eq(len(t.relay.connections()), conns, "a runner in the pause does not connect")
        t.eq(e.num("attempts"), attempts, "a pause is not a failed attempt")
    else:
        t.eq(e.num("attempts"), attempts + 1, "the runner's failed attempt is counted")
        t.match(reply_re, e["last-reply"], "last-reply after the runner")
    if check:
        check(t, None)

    clear(t)
    if paused:
        end_pause(t)
    flush(t)
    delivered_once(t, [s], "after the fault cleared")
    msgs = [m for m in t.messages() if m.get("Subject") == s]
    if msgs:
        t.eq(msgs[0].data, spooled_body, "the relay got the message exactly as spooled")
        t.eq(msgs[0].rcpt_tos, [RCPT], "to its recipient")
    queue_clean(t)
    conns = len(t.relay.connections())
    flush(t)
    delivered_once(t, [s], "after a second -q")
    t.eq(len(t.relay.connections()), conns, "a second -q does not even connect")


def no_auth(t, r):
    t.eq(t.relay.auths(), [], "no credentials sent")
    t.eq(t.relay.commands("AUTH"), [], "no AUTH")
    t.eq(t.relay.commands("MAIL"), [], "no MAIL")


def nothing_in_tls(t, r):
    no_auth(t, r)
    t.eq([c["cmd"] for c in t.relay.commands() if c["tls"]], [], "nothing said inside TLS")


def fault(name, value=True):
    return lambda t: t.relay.fault(name, value)


def unfault(name):
    return lambda t: t.relay.fault(name, None)


@test("connection refused", group="fault")
def _(t):
    matrix(t, "refused", relay_down, relay_up, r"(?i)connect.*refused")


@test("421 greeting", group="fault")
def _(t):
    matrix(t, "421", fault("greeting_421"), unfault("greeting_421"), r"421 4\.3\.2")


@test("DNS failure (nonexistent.invalid)", group="fault")
def _(t):
    def bad(t):
        t.config(server="nonexistent.invalid")
    matrix(t, "dns", bad, lambda t: t.config(server="localhost"),
           r"(?i)nonexistent\.invalid", lambda t, r: t.no_connection("DNS failure"))


@test("no STARTTLS: no AUTH, nothing sent, the message queued", group="fault")
def _(t):
    matrix(t, "nostarttls", fault("no_starttls"), unfault("no_starttls"), r"(?i)starttls",
           nothing_in_tls)


@test("untrusted certificate: no AUTH, nothing sent, the message queued", group="fault")
def _(t):
    matrix(t, "untrusted", fault("untrusted_cert"), unfault("untrusted_cert"),
           r"(?i)certificate", nothing_in_tls)


@test("certificate for another name: queued", group="fault")
def _(t):
    matrix(t, "wrongname", fault("wrong_name_cert"), unfault("wrong_name_cert"),
           r"(?i)certificate|name", nothing_in_tls)


@test("expired certificate: queued", group="fault")
def _(t):
    matrix(t, "expired", fault("expired_cert"), unfault("expired_cert"),
           r"(?i)certificate|expired", nothing_in_tls)


@test("no tls_ca_file (the system store does not know the test CA): queued", group="fault")
def _(t):
    matrix(t, "noca", lambda t: t.config(tls_ca_file=None),
           lambda t: t.config(tls_ca_file=t.relay.ca), r"(?i)certificate|trust|verif",
           nothing_in_tls)


@test("tls = implicit against a STARTTLS relay: queued, no credentials", group="fault")
def _(t):
    matrix(t, "implicit", lambda t: t.config(tls="implicit"), lambda t: t.config(tls=None),
           r".", no_auth)


@test("535 (wrong password): queued, the secret nowhere in the queue or mailq", group="fault")
def _(t):
    def check(t, r):
        t.eq(t.relay.commands("MAIL"), [], "no MAIL after the 535")
        for e in entries(t):
            with open(e.path, "rb") as f:
                t.no_secret_in(f.read(), "the queue file", "wrong-" + PASSWORD)
        t.no_secret_in(t.run([], argv0="mailq").out, "mailq", "wrong-" + PASSWORD)
    matrix(t, "535", lambda t: t.config(password="wrong-" + PASSWORD),
           lambda t: t.config(password=PASSWORD), r"535 5\.7\.3", check)


@test("450 4.5.127 (throttle): queued, runners wait out the pause", group="fault")
def _(t):
    matrix(t, "throttle", fault("throttle"), unfault("throttle"), r"450 4\.5\.127",
           paused=True)


@test("451 at DATA", group="fault")
def _(t):
    matrix(t, "451", fault("data_451"), unfault("data_451"), r"451 4\.3\.0")


@test("connection dropped inside DATA", group="fault")
def _(t):
    matrix(t, "drop", fault("drop_in_data"), unfault("drop_in_data"),
           r"(?i)clos|connection|lost|reset|broken")


@test("stalled relay at MAIL (timeout = 2)", group="fault")
def _(t):
    t.config(timeout=2)

    def check(t, r):
        if r is not None:
            t.ok(r.elapsed < 10, "the sender gave up after the timeout (%.1fs)" % r.elapsed)
    matrix(t, "stallmail", fault("stall", "mail"), unfault("stall"), r"(?i)time", check)


@test("stalled relay after the final dot (timeout = 2)", group="fault")
def _(t):
    t.config(timeout=2)
    matrix(t, "stalldot", fault("stall", "dot"), unfault("stall"), r"(?i)time")


# the relay offers CHUNKING by default, so the faults above hit BDAT; the
# content faults once more over DATA
def by_data(t, r):
    t.ok(t.relay.commands("DATA") and not t.relay.commands("BDAT"), "the content went by DATA")


@test("451 at the end of DATA (relay without CHUNKING)", group="fault")
def _(t):
    t.transfer("DATA")
    matrix(t, "451data", fault("data_451"), unfault("data_451"), r"451 4\.3\.0", by_data)


@test("connection dropped inside DATA (relay without CHUNKING)", group="fault")
def _(t):
    t.transfer("DATA")
    matrix(t, "dropdata", fault("drop_in_data"), unfault("drop_in_data"),
           r"(?i)clos|connection|lost|reset|broken", by_data)


@test("stalled relay after the final dot of DATA (timeout = 2)", group="fault")
def _(t):
    t.transfer("DATA")
    t.config(timeout=2)
    matrix(t, "stalldotdata", fault("stall", "dot"), unfault("stall"), r"(?i)time", by_data)


# ---------------------------------------------------------------------------
# the spool's filesystem full

@test("the spool's filesystem full (256k tmpfs): exit 75, a clear message, nothing left")
def _(t):
    qd = t.path("small")
    os.makedirs(qd)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", qd],
                       capture_output=True)
    if p.returncode != 0:
        t.skip("cannot mount a tmpfs: %s" % p.stderr.decode("utf-8", "replace").strip())
    try:
        t.config(queue_dir=qd)
        relay_down(t)
        fits = tag("fits")
        send(t, [], fits)
        t.eq(len(ids(t)), 1, "a small message is queued")
        queued = ids(t)
        # 100 kB fits while being read but not once more as a queue file;
        # 1 MB does not even fit while being read
        for args, size in (([], 100000), (["-odq"], 100000), ([], 1000000),
                           (["-odq"], 1000000)):
            what = "%s %d octets" % (" ".join(args) or "foreground", size)
            body = b"".join(b"%07d %s\n" % (i, b"y" * 62) for i in range(size // 71))
            r = send(t, args, tag("full"), body=body, code=harness.EX_TEMPFAIL)
            t.match(r"No space left on device", r.stderr, what + ": the message says why")
            t.eq(ids(t), queued, what + ": nothing new in the queue")
            t.eq(tmp_files(t), [], what + ": no partial file in tmp/")
            t.eq(ids(t, "failed"), [], what + ": nothing in the failed area")
            st = os.statvfs(qd)
            t.ok(st.f_bfree * st.f_frsize > 200 * 1024, what + ": the space is given back")
        relay_up(t)
        flush(t)
        delivered_once(t, [fits], "after the relay came back")
        queue_clean(t)
    finally:
        if subprocess.run(["umount", qd], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", qd], capture_output=True)


# ---------------------------------------------------------------------------
# SIGKILL

def big_body(subject, lines):
    """a few MB, every line naming its message, one line with a leading dot"""
    s = subject.encode()
    return (b".dot line of " + s + b"\n" +
            b"".join(b"%s %07d abcdefghijklmnopqrstuvwxyz0123456789\n" % (s, i)
                     for i in range(lines)))


def crlf(b):
    return b.replace(b"\n", b"\r\n")


def age_tmp(t, secs=7200):
    """makes whatever is in tmp/ look as old as a crashed writer's leftovers"""
    old = time.time() - secs
    names = tmp_files(t)
    for n in names:
        try:
            os.utime(os.path.join(q.area_dir(t, "tmp"), n), (old, old))
        except FileNotFoundError:
            pass
    return names


@test("leftovers of killed writers in tmp/: removed by a run once an hour old, not before")
def _(t):
    tmp = q.area_dir(t, "tmp")
    spooled_id = q.spooled(t, tag("left"))
    # what a writer killed at some moment leaves: a queue file being written
    # (doc/queue.md step 1), the prepared message and the body spill file
    names = [spooled_id + ".4242.0", ".acsmail-Ab12Cd", "acsmail-body.Xy34Zw"]
    for n in names + ["young-" + n for n in names]:
        with open(os.path.join(tmp, n), "wb") as f:
            f.write(b"partial")
    old = time.time() - 3700
    for n in names:
        os.utime(os.path.join(tmp, n), (old, old))
    flush(t)
    t.eq(tmp_files(t), sorted("young-" + n for n in names),
         "the old ones are gone, the young ones stay (a writer may be at work)")
    t.eq(len(t.messages()), 1, "the queued message went as usual")
    t.eq(ids(t), [], "queue empty")


@test("SIGKILL of the sender at random moments while spooling: whole or absent, sent once")
def _(t):
    sd = seed()
    rnd = random.Random(sd)
    t.note("seed %d (ACSMAIL_SEED=%d to repeat)" % (sd, sd))
    no_budget_limit(t)
    relay_down(t)
    bodies = {}                 # subject -> body as sent
    exited_ok = []              # subjects whose sender exited 0 before the kill

    def start(args, s, lines):
        body = big_body(s, lines)
        bodies[s] = body
        path = t.path("in.eml")
        with open(path, "wb") as f:
            f.write(letter(s, "kill@example.com", body))
        return spawn(t, args + ["kill@example.com"], path)

    # how long a 2 MB message takes to spool, unkilled (the median of three)
    spans = []
    for _ in range(3):
        t0 = time.time()
        s = tag("calib")
        p = start(["-odq"], s, 40000)
        p.wait()
        spans.append(time.time() - t0)
        t.eq(p.returncode, 0, "the unkilled sender")
        exited_ok.append(s)
    span = sorted(spans)[1]

    kills = 0
    for i in range(32):
        args = ["-odq"] if i % 2 == 0 else []
        s = tag("kill")
        p = start(args, s, rnd.choice((20000, 40000, 60000)))
        time.sleep(rnd.uniform(0, span * 1.1))
        p.kill()
        p.wait()
        if p.returncode == 0:
            exited_ok.append(s)
        else:
            kills += 1
    t.note("%d senders killed, %d finished first; spooling took %.3fs"
           % (kills, len(exited_ok) - 3, span))
    t.ok(kills >= 5, "enough kills hit a running sender (%d)" % kills)

    queued = {}
    for e in entries(t):
        check_entry_format(t, e, "queue file %s" % e["id"])
        sub = e.subject()
        if not t.ok(sub in bodies, "queue file %s is one of ours (%r)" % (e["id"], sub)):
            continue
        t.ok(sub not in queued, "%s queued once" % sub)
        t.ok(e.body.endswith(b"\r\n\r\n" + crlf(bodies[sub])), "%s queued whole" % sub)
        t.eq(e.addrs(), ["kill@example.com"], "%s: its recipient" % sub)
        queued[sub] = e.body
    for sub in exited_ok:
        t.ok(sub in queued, "%s: exit 0 means it is in the queue" % sub)

    left = age_tmp(t)
    t.note("%d files in tmp/ after the kills, aged by 2 hours" % len(left))
    relay_up(t)
    flush(t, timeout=120)
    got = {}
    for m in t.messages():
        got.setdefault(m.get("Subject"), []).append(m)
    t.eq(sorted(got), sorted(queued), "the relay got exactly the queued messages")
    for sub, ms in got.items():
        t.eq(len(ms), 1, "%s delivered once" % sub)
        if sub in queued:
            t.ok(ms[0].data == queued[sub], "%s arrived whole, as spooled" % sub)
    queue_clean(t, "after the run")


@test("SIGKILL of the runner at random moments: every message arrives, duplicates <= kills")
def _(t):
    sd = seed()
    rnd = random.Random(sd)
    t.note("seed %d (ACSMAIL_SEED=%d to repeat)" % (sd, sd))
    no_budget_limit(t)
    bodies = {}

    def queue_two():
        for _ in range(2):
            s = tag("run")
            bodies[s] = big_body(s, rnd.choice((8000, 16000)))
            r = t.run(["-odq", "runner@example.com"], letter(s, "runner@example.com",
                                                             bodies[s]))
            t.exit(r, 0, "queueing " + s)

    # how long an unkilled run takes: the fastest of three, so that a slow
    # first run on a loaded machine does not push the kills past the end
    spans = []
    for n in range(3):
        queue_two()
        t0 = time.time()
        flush(t)
        spans.append(time.time() - t0)
        t.eq(len(t.messages()), 2 * (n + 1), "an unkilled run sends both")
    span = min(spans)

    kills = 0
    for i in range(18):
        queue_two()
        p = spawn(t, ["-q"])
        time.sleep(rnd.uniform(0, span * 1.2))
        p.kill()
        p.wait()
        if p.returncode != 0:
            kills += 1
        for e in entries(t):
            if not t.ok(e.first == "acsmail-queue 1" and e.subject() in bodies,
                        "after kill %d: queue file %s is readable" % (i, e.path)):
                continue
            t.ok(e.body.endswith(crlf(bodies[e.subject()])),
                 "after kill %d: %s is whole" % (i, e["id"]))
    t.ok(kills >= 5, "enough kills hit a running runner (%d)" % kills)

    age_tmp(t)
    flush(t, timeout=120)
    got = subjects(t)
    dups = 0
    for s, body in bodies.items():
        n = got.get(s, 0)
        t.ok(n >= 1, "%s arrived" % s)
        dups += max(0, n - 1)
    t.eq(sorted(x for x in got if x not in bodies), [], "nothing else arrived")
    for m in t.messages():
        s = m.get("Subject")
        if s in bodies:
            t.ok(m.data.endswith(b"\r\n\r\n" + crlf(bodies[s])), "%s arrived whole" % s)
    # a copy that was sent again must have been cut off by a kill: it is the
    # last message of a connection that ended without QUIT
    quits = {c["conn"] for c in t.relay.commands("QUIT")}
    last = {}
    for m in t.messages():
        last[m.conn] = m.id
    seen = {}
    for m in t.messages():
        seen.setdefault(m.get("Subject"), []).append(m)
    for s, ms in seen.items():
        for m in ms[:-1]:
            t.ok(m.conn not in quits and last[m.conn] == m.id,
                 "%s was sent again only after a kill cut off its connection %d after "
                 "the final dot" % (s, m.conn))
    t.note("%d runners killed, %d messages, %d sent twice (a kill after the final dot)"
           % (kills, len(bodies), dups))
    t.ok(dups <= kills, "duplicates (%d) only from kills after the final dot (%d kills)"
         % (dups, kills))
    queue_clean(t, "after the final -q")


# ---------------------------------------------------------------------------
# concurrency

@test("20 concurrent senders (-odq, foreground, -odb) and 2 concurrent runners: exactly once")
def _(t):
    no_budget_limit(t)
    modes = (["-odq"], [], ["-odb"])
    subs = []
    codes = []
    lock = threading.Lock()
    done = threading.Event()

    def sender(n):
        for k in range(3):
            s = tag("c%02d" % n)
            with lock:
                subs.append(s)
            to = "c%02d@example.com" % n
            p = subprocess.run([harness.bin_path()] + modes[(n + k) % 3] + [to],
                               input=letter(s, to), capture_output=True, env=t.env(),
                               timeout=60)
            with lock:
                codes.append((s, p.returncode, p.stderr.decode("utf-8", "replace")))

    runs = []

    def runner():
        while True:
            last = done.is_set()
            p = subprocess.run([harness.bin_path(), "-q"], capture_output=True, env=t.env(),
                               timeout=60)
            with lock:
                runs.append((p.returncode, p.stderr.decode("utf-8", "replace")))
            if last:
                return

    senders = [threading.Thread(target=sender, args=(n,)) for n in range(20)]
    runners = [threading.Thread(target=runner) for _ in range(2)]
    for th in runners + senders:
        th.start()
    for th in senders:
        th.join()
    done.set()
    for th in runners:
        th.join()
    # background children may still be at work
    wait_until(lambda: not ids(t) and len(t.messages()) >= len(subs), 20)
    flush(t)
    bad = [(s, c, e) for s, c, e in codes if c != 0]
    t.eq(bad, [], "every sender exits 0")
    t.eq([r for r in runs if r[0] != 0], [], "every runner exits 0")
    t.eq(len(subs), 60, "60 messages handed over")
    delivered_once(t, subs, "concurrent")
    t.note("%d runner passes" % len(runs))
    queue_clean(t)


harness.main()
