#!/usr/bin/python3
"""acsmail against Debian's msmtp, in one run, through a 40 ms round trip.

    bench/run [RUNS]        (builds an optimised acsmail in bench/build first)
    BENCH_NO_CHUNKING=1 bench/run     the same against a relay without CHUNKING

Starts the test relay (tests/relay/relay.py) behind bench/delayproxy.py, and
measures both programs the same way, alternating them run by run so that the
machine's noise falls on both alike. Prints the median of RUNS runs (default
7) and the ratio acsmail/msmtp for:
  (a) one message in foreground
  (b) what the caller waits for with -odb (acsmail) against msmtp's send
  (c) draining 100 queued messages with one `acsmail -q` against 100 msmtp runs
  (d) instructions per message under valgrind --tool=callgrind (no proxy)
  (e) peak resident memory for an 8 MB message
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
ACSMAIL = os.environ.get("ACSMAIL_BIN", os.path.join(HERE, "build", "src", "acsmail"))
MSMTP = shutil.which("msmtp") or "/usr/bin/msmtp"
PY = "/usr/bin/python3"
USER, SECRET, FROM = "acs-relay-app", "bench-secret", "DoNotReply@mail.example.com"
TARGETS = {"a": 0.8, "b": 0.05, "c": 0.25, "d": 1.0, "e": 1.0}


def message(body_octets=2000):
    line = b"The quick brown fox jumps over the lazy dog, 0123456789 times.\n"
    body = line * (body_octets // len(line) + 1)
    return (b"To: recipient@example.com\nFrom: " + FROM.encode() +
            b"\nSubject: bench\n\n" + body[:body_octets])


class Stand:
    """The relay, the delay proxy, and a config for each client."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="acsmail-bench.")
        self.certs = os.path.join(self.dir, "certs")
        subprocess.run(["sh", os.path.join(TOP, "tests", "relay", "mkcerts.sh"), self.certs],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.state = os.path.join(self.dir, "state")
        os.mkdir(self.state)
        control = {"username": USER, "password": SECRET, "allowed_senders": [FROM]}
        if os.environ.get("BENCH_NO_CHUNKING"):
            control["extensions"] = {"CHUNKING": False, "BINARYMIME": False}
        with open(os.path.join(self.state, "control.json"), "w") as f:
            json.dump(control, f)
        self.relay = subprocess.Popen(
            [PY, os.path.join(TOP, "tests", "relay", "relay.py"), "--state", self.state,
             "--certs", self.certs], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.relay_port = int(self.relay.stdout.readline().split()[1])
        self.proxy_port = free_port()
        self.proxy = subprocess.Popen(
            [PY, os.path.join(HERE, "delayproxy.py"), str(self.proxy_port),
             str(self.relay_port), "20"], stdout=subprocess.PIPE, text=True)
        self.proxy.stdout.readline()
        self.queue = os.path.join(self.dir, "queue")
        os.mkdir(self.queue)

    def configs(self, port):
        conf = os.path.join(self.dir, "acsmail-%d.conf" % port)
        with open(conf, "w") as f:
            f.write('server = "localhost"\nport = %d\ntls_ca_file = "%s/ca.pem"\n'
                    'username = "%s"\npassword = \'%s\'\nfrom = "%s"\nqueue_dir = "%s"\n'
                    'log = "none"\nrate_per_minute = 100000\nrate_per_hour = 1000000\n'
                    % (port, self.certs, USER, SECRET, FROM, self.queue))
        os.chmod(conf, 0o600)
        rc = os.path.join(self.dir, "msmtprc-%d" % port)
        with open(rc, "w") as f:
            f.write("defaults\nsyslog off\naccount default\nhost localhost\nport %d\n"
                    "tls on\ntls_starttls on\ntls_trust_file %s/ca.pem\nauth login\n"
                    "user %s\npassword %s\nfrom %s\n"
                    % (port, self.certs, USER, SECRET, FROM))
        os.chmod(rc, 0o600)
        return ([ACSMAIL], {"ACSMAIL_CONFIG": conf}), ([MSMTP, "-C", rc], {})

    def close(self):
        for p in (self.proxy, self.relay):
            p.send_signal(signal.SIGTERM)
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, env, args, data):
    """Runs once; returns the seconds the caller waited."""
    e = dict(os.environ, **env)
    start = time.monotonic()
    p = subprocess.Popen(cmd + args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=e)
    _, err = p.communicate(data)
    elapsed = time.monotonic() - start
    if p.returncode != 0:
        sys.exit("%s exited %d: %s" % (cmd[0], p.returncode, err.decode(errors="replace")))
    return elapsed


def peak_rss(cmd, env, args, data):
    """Peak resident memory in KiB, as GNU time reports it: a child forked
    from this Python would start with Python's own pages counted."""
    e = dict(os.environ, **env)
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd + args, input=data, env=e,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("%s failed for the 8 MB message: %s" % (cmd[0], p.stderr.decode(errors="replace")))
    return int(p.stderr.decode().strip().splitlines()[-1])


def callgrind(cmd, env, args, data, dir):
    out = os.path.join(dir, "callgrind.%s.out" % os.path.basename(cmd[0]))
    e = dict(os.environ, **env)
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
                       + cmd + args, input=data, env=e, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if p.returncode != 0:
        sys.exit("callgrind run of %s failed" % cmd[0])
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit("no callgrind total for %s" % cmd[0])



def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    stand = Stand()
    rows = []
    try:
        acs, ms = stand.configs(stand.proxy_port)
        msg = message()
        rcpt = ["-t", "-i"]

        a_acs, a_ms, b_acs = [], [], []
        for _ in range(runs):
            a_acs.append(run(acs[0], acs[1], rcpt, msg))
            a_ms.append(run(ms[0], ms[1], rcpt, msg))
            b_acs.append(run(acs[0], acs[1], ["-odb"] + rcpt, msg))
        time.sleep(2)       # let the background children finish
        rows.append(("a", "one message, foreground (s)", a_acs, a_ms))
        rows.append(("b", "caller's wait with -odb vs msmtp (s)", b_acs, a_ms))

        c_acs, c_ms = [], []
        for _ in range(max(1, runs // 3)):
            for _ in range(100):
                run(acs[0], acs[1], ["-odq"] + rcpt, msg)
            start = time.monotonic()
            run(acs[0], acs[1], ["-q"], b"")
            c_acs.append(time.monotonic() - start)
            start = time.monotonic()
            for _ in range(100):
                run(ms[0], ms[1], rcpt, msg)
            c_ms.append(time.monotonic() - start)
        rows.append(("c", "100 queued messages: acsmail -q vs 100 msmtp (s)", c_acs, c_ms))

        direct_acs, direct_ms = stand.configs(stand.relay_port)
        d_acs = [callgrind(direct_acs[0], direct_acs[1], rcpt, msg, stand.dir)]
        d_ms = [callgrind(direct_ms[0], direct_ms[1], rcpt, msg, stand.dir)]
        rows.append(("d", "instructions per message (callgrind)", d_acs, d_ms))

        big = message(8 * 1024 * 1024)
        e_acs, e_ms = [], []
        for _ in range(3):
            e_acs.append(peak_rss(direct_acs[0], direct_acs[1], rcpt, big))
            e_ms.append(peak_rss(direct_ms[0], direct_ms[1], rcpt, big))
        rows.append(("e", "peak RSS, 8 MB message (KiB)", e_acs, e_ms))
    finally:
        stand.close()

    print("%-3s %-50s %12s %12s %7s %7s  %s" % ("", "measure (median)", "acsmail", "msmtp",
                                                "ratio", "target", "runs"))
    failed = 0
    for key, what, acs_v, ms_v in rows:
        x, y = statistics.median(acs_v), statistics.median(ms_v)
        ratio = x / y
        ok = ratio <= TARGETS[key]
        failed += not ok
        fmt = "%12.0f" if key in "de" else "%12.3f"
        print(("%-3s %-50s " + fmt + " " + fmt + " %7.3f %7.2f  %d %s")
              % (key + ")", what, x, y, ratio, TARGETS[key], len(acs_v),
                 "ok" if ok else "MISSED"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
