"""Integration test harness: TAP output, a test registry, a fixture per test.

    import harness
    from harness import test, TEMPFAIL_EXIT

    @test("-t takes the recipients from the header")
    def _(t):
        r = t.run(["-t"], b"To: a@example.com\\n\\nhi\\n")
        t.exit(r, 0)
        m = t.message()                       # exactly one arrived
        t.eq(m.rcpt_tos, ["a@example.com"], "RCPT TO")

    harness.main()

Each test gets a fresh fixture `t` (class Case):
  t.dir            a temporary directory, removed afterwards (kept with ACSMAIL_KEEP=1)
  t.relay          the test relay (tests/relay/relay.py), started for this test
  t.conf_path      acsmail.conf in t.dir, mode 0600 (see Case.base_config)
  t.config({...})  change keys of the config (None removes one) and rewrite it
  t.run(args, stdin, env=..., timeout=..., argv0=...)  runs $ACSMAIL_BIN
  t.messages(), t.message()   what the relay accepted (class Msg)
  t.eq/ok/isin/notin/match    soft checks: a test reports every failed check
  t.exit(result, code)        the exit code, with stderr shown when it differs
  t.fail(text), t.skip(text)  end the test now
  t.exec(argv, stdin, env=t.env({...}), cwd=...)  runs another program (a caller)
  t.nothing_sent(), t.no_connection(), t.wire_line_ends(m), t.no_secret_in(blob, what)

The relay is driven through t.relay: control(...), extensions(PIPELINING=False)
and fault(name, value) change its behaviour from the next connection on (the
faults are listed in tests/relay/relay.py); events(), commands(), verbs(),
auths(), connections(), wait_messages(n) read what it saw. A Msg has the
envelope as attributes (mail_from, mail_options, rcpt_tos, rcpt_options,
auth_user, tls, bare_lf, bare_cr, eight_bit, longest_line, queue_id,
transfer "DATA" or "BDAT", chunks, chunk_sizes, ...), data (after
dot-unstuffing), raw (as on the wire), head, body, and field helpers: get,
get_all, raw_field, decoded, addresses, addrs, content_lf.

The relay offers CHUNKING by default (as ACS does), so acsmail sends the
content with BDAT unless a test says otherwise: t.transfer("DATA") switches
CHUNKING off, t.sent_by(m) checks which way a message came, and
@each_transfer("desc") registers a test twice, "desc (BDAT)" and
"desc (DATA)", with t.via set to the one in use.

A failing test prints the last command with its stdout/stderr and the relay's
transcript as TAP diagnostics. Environment: ACSMAIL_BIN (the binary),
ACSMAIL_TESTS (the tests directory, default: the parent of this file),
ACSMAIL_ONLY (a regex: run only the tests whose description matches),
ACSMAIL_KEEP=1 (keep the directory of a failed test).
"""

import atexit
import base64
import email
import email.header
import email.policy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

# What acsmail exits with when a message could not be delivered for a
# temporary reason (no STARTTLS, bad certificate, 4xx, relay down).
# SPEC §6: once the queue exists such a message is spooled and the exit is 0;
# until then it is EX_TEMPFAIL. Change this one line when the queue lands.
TEMPFAIL_EXIT = 0

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 0, 64, 65, 67, 69
EX_TEMPFAIL, EX_CONFIG = 75, 78

FROM = "DoNotReply@mail.example.com"
ALLOWED = "alerts@mail.example.com"
USERNAME = "acs-relay-app"
PASSWORD = "s3cret-Pa55word"
ROOT_ALIAS = "admin@example.org"
LOCAL_RECIPIENT = "sysadmin@example.org"

TESTS_DIR = os.environ.get("ACSMAIL_TESTS") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
RELAY = os.path.join(TESTS_DIR, "relay", "relay.py")
MKCERTS = os.path.join(TESTS_DIR, "relay", "mkcerts.sh")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class Failed(Exception):
    """a hard failure: the test stops here"""


class Skipped(Exception):
    pass


_registry = []

# the two ways the content goes: BDAT when the relay offers CHUNKING (its
# default, as ACS), DATA when it does not
TRANSFERS = ("BDAT", "DATA")


def test(desc, group=None):
    """Registers a test function taking the fixture."""
    def deco(fn):
        _registry.append((desc if not group else "%s: %s" % (group, desc), fn))
        return fn
    return deco


def each_transfer(desc, group=None):
    """Registers the test once for BDAT and once for DATA (t.via)."""
    def deco(fn):
        for how in TRANSFERS:
            def run(t, fn=fn, how=how):
                t.transfer(how)
                fn(t)
            test("%s (%s)" % (desc, how), group)(run)
        return fn
    return deco


# ---------------------------------------------------------------------------
# certificates, once per process

_certs = None


def certs_dir():
    global _certs
    if _certs is None:
        d = tempfile.mkdtemp(prefix="acsmail-certs-")
        subprocess.run(["/bin/sh", MKCERTS, d], check=True)
        _certs = d
    return _certs


# ---------------------------------------------------------------------------
# the relay

class Relay:
    def __init__(self, state_dir):
        self.dir = state_dir
        self.dirty = False      # a client ran since the log was last read
        os.makedirs(state_dir, exist_ok=True)
        self.certs = certs_dir()
        self.ca = os.path.join(self.certs, "ca.pem")
        self._control = {"username": USERNAME, "password": PASSWORD,
                         "allowed_senders": [FROM, ALLOWED], "faults": {}}
        self._write_control()
        self.stderr = open(os.path.join(state_dir, "relay.stderr"), "wb")
        self.proc = subprocess.Popen(
            [PYTHON, RELAY, "--state", state_dir, "--certs", self.certs,
             "--parent", str(os.getpid())],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL)
        try:
            line = self._readline(10)
        except BaseException:
            self.stop()
            raise
        m = re.match(rb"PORT (\d+)", line or b"")
        if not m:
            self.stop()
            raise Failed("relay did not start: %r; stderr: %s" % (line, self.stderr_text()))
        self.port = int(m.group(1))

    def _readline(self, timeout):
        import select
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if r else None

    def _write_control(self):
        tmp = os.path.join(self.dir, "control.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self._control, f, indent=1)
        os.rename(tmp, os.path.join(self.dir, "control.json"))

    def control(self, **kw):
        """Top-level control keys (username, password, allowed_senders,
        extensions, auth_mechanisms, max_size, max_recipients); effective
        from the next connection."""
        for k, v in kw.items():
            if k == "extensions":
                self._control.setdefault("extensions", {}).update(v)
            else:
                self._control[k] = v
        self._write_control()

    def fault(self, name, value=True):
        """Turns a fault on (value) or off (None/False), see relay.py."""
        if value is None or value is False:
            self._control["faults"].pop(name, None)
        else:
            self._control["faults"][name] = value
        self._write_control()

    def extensions(self, **kw):
        """extensions(PIPELINING=False, ...); 8BITMIME as EIGHTBITMIME."""
        self.control(extensions={k.replace("EIGHTBITMIME", "8BITMIME"): v
                                 for k, v in kw.items()})

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()

    def stderr_text(self):
        try:
            with open(os.path.join(self.dir, "relay.stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # what the relay saw --------------------------------------------------

    def settle(self, timeout=2.0):
        """After a run: wait (a little) until every connection the relay
        accepted is closed, so that a QUIT sent just before the client
        exited is in the log before anyone reads it."""
        self.dirty = False
        end = time.time() + timeout
        while time.time() < end:
            ev = self._read_events()
            opened = sum(1 for e in ev if e["kind"] == "connect")
            closed = sum(1 for e in ev if e["kind"] == "close")
            if closed >= opened:
                return
            time.sleep(0.02)

    def events(self, kind=None):
        if self.dirty:
            self.settle()
        return [e for e in self._read_events() if kind is None or e["kind"] == kind]

    def _read_events(self):
        out = []
        try:
            with open(os.path.join(self.dir, "events.jsonl"), encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def commands(self, cmd=None):
        """cmd events: {"conn", "cmd", "arg", "tls", "pipelined"}"""
        return [e for e in self.events("cmd") if cmd is None or e["cmd"] == cmd.upper()]

    def verbs(self, conn=None):
        """the command verbs in order, e.g. ["EHLO", "STARTTLS", ...]"""
        return [e["cmd"] for e in self.events("cmd") if conn is None or e["conn"] == conn]

    def connections(self):
        return [e["conn"] for e in self.events("connect")]

    def auths(self):
        return self.events("auth")

    def messages(self):
        if self.dirty:
            self.settle()
        out = []
        for name in sorted(os.listdir(self.dir)):
            if re.fullmatch(r"msg-\d+\.json", name):
                out.append(Msg(os.path.join(self.dir, name)))
        return out

    def wait_messages(self, n, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.05)
        return self.messages()

    def transcript(self, limit=80):
        """The dialogue as C:/S: lines, for diagnostics."""
        lines = []
        for e in self.events():
            k = e["kind"]
            if k == "cmd":
                arg = e["arg"]
                if e["cmd"] == "AUTH" and arg and " " in arg:
                    arg = arg.split()[0] + " ..."
                lines.append("%d C: %s%s%s" % (e["conn"], e["cmd"], " " + arg if arg else "",
                                                " [pipelined]" if e.get("pipelined") else ""))
            elif k == "reply":
                # an EHLO reply on one line: "250-localhost Hello | SIZE ... | SMTPUTF8"
                prev = lines[-1] if lines else ""
                cont = "%d S: " % e["conn"]
                if prev.startswith(cont) and prev[len(cont) + 3:len(cont) + 4] == "-" \
                        and e["line"][:3] == prev[len(cont):len(cont) + 3]:
                    lines[-1] = prev + " | " + e["line"][4:]
                    if e["line"][3:4] == " ":
                        lines[-1] = cont + prev[len(cont):len(cont) + 3] + " " + \
                            lines[-1][len(cont) + 4:]
                else:
                    lines.append("%d S: %s" % (e["conn"], e["line"]))
            elif k == "listen":
                continue
            else:
                extra = {x: y for x, y in e.items() if x not in ("t", "conn", "kind", "password")}
                lines.append("%d -- %s %s" % (e["conn"], k, json.dumps(extra) if extra else ""))
        if len(lines) > limit:
            lines = lines[:limit // 2] + ["..."] + lines[-limit // 2:]
        return lines


# ---------------------------------------------------------------------------
# a message as the relay received it

class Msg:
    def __init__(self, json_path):
        with open(json_path, encoding="utf-8") as f:
            self.info = json.load(f)
        base = json_path[:-len(".json")]
        with open(base + ".eml", "rb") as f:
            self.data = f.read()            # after dot-unstuffing, line ends as received
        with open(base + ".raw", "rb") as f:
            self.raw = f.read()             # as on the wire: DATA dot-stuffed, BDAT as is
        i = self.data.find(b"\r\n\r\n")
        if self.data.startswith(b"\r\n"):
            self.head, self.body = b"", self.data[2:]
        elif i < 0:
            self.head, self.body = self.data, b""
        else:
            self.head, self.body = self.data[:i + 2], self.data[i + 4:]
        self.fields = []                    # [(name, raw bytes with folding and CRLFs)]
        for line in self.head.split(b"\r\n")[:-1] if self.head else []:
            if line[:1] in (b" ", b"\t") and self.fields:
                name, raw = self.fields[-1]
                self.fields[-1] = (name, raw + line + b"\r\n")
            else:
                self.fields.append((line.split(b":", 1)[0].decode("ascii", "replace").strip(),
                                    line + b"\r\n"))
        self._parsed = None

    def __getattr__(self, k):
        # mail_from, mail_options, rcpt_tos, rcpt_options, auth_user, tls, ...
        try:
            return self.__dict__["info"][k]
        except KeyError:
            raise AttributeError(k)

    def names(self):
        return [n for n, _ in self.fields]

    def has(self, name):
        return any(n.lower() == name.lower() for n, _ in self.fields)

    def raw_fields(self, name):
        return [r for n, r in self.fields if n.lower() == name.lower()]

    def raw_field(self, name):
        r = self.raw_fields(name)
        return r[0] if r else None

    def get_all(self, name):
        """unfolded field bodies, leading blanks trimmed"""
        out = []
        for r in self.raw_fields(name):
            v = r.split(b":", 1)[1] if b":" in r else b""
            v = re.sub(rb"\r\n(?=[ \t])", b"", v).rstrip(b"\r\n").lstrip(b" \t")
            out.append(v.decode("utf-8", "surrogateescape"))
        return out

    def get(self, name):
        v = self.get_all(name)
        return v[0] if v else None

    def decoded(self, name):
        """the field with RFC 2047 encoded words decoded"""
        v = self.get(name)
        if v is None:
            return None
        return str(email.header.make_header(email.header.decode_header(v)))

    def parsed(self):
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        return self._parsed

    def addresses(self, name):
        """[(display name, addr-spec)] of an address field, groups flattened"""
        out = []
        for h in self.parsed().get_all(name) or []:
            for a in getattr(h, "addresses", ()):
                out.append((a.display_name, a.addr_spec))
        return out

    def addrs(self, name):
        return [a for _, a in self.addresses(name)]

    def body_text(self):
        return self.body.decode("utf-8", "surrogateescape")

    def content(self):
        """the decoded body of a single-part message (bytes)"""
        return self.parsed().get_payload(decode=True)

    def content_lf(self):
        """content() with CRLF line ends turned into LF"""
        c = self.content()
        return c.replace(b"\r\n", b"\n") if c is not None else None

    def __repr__(self):
        return "<Msg %s from=%r to=%r>" % (self.info.get("id"), self.mail_from, self.rcpt_tos)


# ---------------------------------------------------------------------------
# running the binary

class Result:
    def __init__(self, argv, code, out, err, elapsed, timed_out):
        self.argv, self.code, self.out, self.err = argv, code, out, err
        self.elapsed, self.timed_out = elapsed, timed_out

    @property
    def stdout(self):
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self):
        return self.err.decode("utf-8", "replace")

    @property
    def output(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return "<Result %r code=%s>" % (self.argv, self.code)


def config_quote(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(config_quote(x) for x in v) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def single_quote(v):
    """a libconfuse single-quoted string: taken as is but for \\\\ and \\'"""
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def secret_forms(secret, user=USERNAME):
    """the ways a secret could leak: raw, base64, and inside AUTH PLAIN"""
    s = secret.encode("utf-8")
    return [s, base64.b64encode(s),
            base64.b64encode(b"\0" + user.encode() + b"\0" + s),
            base64.b64encode(user.encode() + b"\0" + user.encode() + b"\0" + s)]


class Case:
    def __init__(self, desc):
        self.desc = desc
        self.dir = tempfile.mkdtemp(prefix="acsmail-test-")
        self.failures = []
        self.notes = []
        self.last = None
        self.relay = None
        self.via = "BDAT"       # the relay's default: CHUNKING offered
        try:
            self.relay = Relay(os.path.join(self.dir, "relay"))
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.aliases_path = os.path.join(self.dir, "aliases")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.log_path = os.path.join(self.dir, "acsmail.log")
        os.makedirs(self.queue_dir, mode=0o700)
        with open(self.aliases_path, "w") as f:
            f.write("# test aliases\nroot: %s\n" % ROOT_ALIAS)
        self.conf_path = os.path.join(self.dir, "acsmail.conf")
        self.conf = self.base_config()
        self.write_config()

    def base_config(self):
        return {
            "server": "localhost",
            "port": self.relay.port,
            "tls_ca_file": self.relay.ca,
            "username": USERNAME,
            "password": PASSWORD,
            "from": FROM,
            "allowed_from": [ALLOWED],
            "aliases": self.aliases_path,
            "local_recipient": LOCAL_RECIPIENT,
            "queue_dir": self.queue_dir,
            "log": self.log_path,
            "timeout": 5,
        }

    # config ---------------------------------------------------------------

    def config_text(self):
        lines = ["# acsmail.conf written by the integration tests"]
        for k, v in self.conf.items():
            if v is None:
                continue
            if k == "password":
                lines.append("%-15s = %s" % (k, single_quote(v)))
            else:
                lines.append("%-15s = %s" % (k, config_quote(v)))
        return "\n".join(lines) + "\n"

    def config(self, changes=None, **kw):
        """config({"from": ...}, timeout=3): None removes a key"""
        d = dict(changes or {})
        d.update(kw)
        for k, v in d.items():
            if v is None:
                self.conf.pop(k, None)
            else:
                self.conf[k] = v
        self.write_config()

    def write_config(self, text=None, mode=0o600, path=None):
        path = path or self.conf_path
        with open(path, "w") as f:
            f.write(self.config_text() if text is None else text)
        os.chmod(path, mode)
        return path

    def aliases(self, text):
        with open(self.aliases_path, "w") as f:
            f.write(text)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # running --------------------------------------------------------------

    def env(self, extra=None):
        e = dict(os.environ)
        e["ACSMAIL_CONFIG"] = self.conf_path
        e.setdefault("LC_ALL", "C.UTF-8")
        for k, v in (extra or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def run(self, args, stdin=b"", env=None, timeout=30, argv0=None, config=True):
        """Runs $ACSMAIL_BIN args with stdin; argv0 runs it through a symlink
        of that name; config=False leaves ACSMAIL_CONFIG unset."""
        binary = bin_path()
        if argv0:
            link = os.path.join(self.dir, "bin", argv0)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(binary, link)
            binary = link
        if isinstance(stdin, str):
            stdin = stdin.encode("utf-8")
        e = self.env(env)
        if not config:
            e.pop("ACSMAIL_CONFIG", None)
        return self.exec([binary] + list(args), stdin, e, timeout)

    def exec(self, argv, stdin=b"", env=None, timeout=30, cwd=None):
        """Runs any command (a caller such as php or mutt) the same way."""
        t0 = time.time()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env or self.env(), cwd=cwd,
                             start_new_session=True)
        timed_out = False
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        r = Result(argv, p.returncode, out, err, time.time() - t0, timed_out)
        self.last = r
        if self.relay:
            self.relay.dirty = True
        if timed_out:
            raise Failed("%s did not finish within %ss" % (argv[0], timeout))
        return r

    # what arrived -----------------------------------------------------------

    def messages(self):
        return self.relay.messages()

    def message(self):
        """the one message the relay accepted (a hard failure otherwise)"""
        msgs = self.messages()
        if len(msgs) != 1:
            raise Failed("expected exactly 1 message at the relay, got %d" % len(msgs))
        return msgs[0]

    def nothing_sent(self, why="nothing sent"):
        self.eq(len(self.messages()), 0, why + ": messages accepted by the relay")
        self.eq(self.relay.commands("MAIL"), [], why + ": MAIL commands")

    def no_connection(self, why="no connection"):
        self.eq(self.relay.connections(), [], why + ": connections to the relay")

    def wire_line_ends(self, m, what="wire"):
        """exactly one CRLF per line: no bare CR or LF, no CR CR LF"""
        how = m.info.get("transfer", "DATA")
        self.ok(not m.bare_lf, "%s: no bare LF in %s" % (what, how))
        self.ok(not m.bare_cr, "%s: no bare CR in %s" % (what, how))
        self.ok(b"\r\r\n" not in m.raw, "%s: no CR CR LF in %s" % (what, how))
        self.ok(m.ends_with_crlf, "%s: %s ends with CRLF" % (what, how))

    def transfer(self, how):
        """"BDAT": the relay offers CHUNKING (its default); "DATA": it does
        not. From the next connection on."""
        if how not in TRANSFERS:
            raise ValueError(how)
        self.relay.extensions(CHUNKING=how == "BDAT")
        self.via = how

    def sent_by(self, m, how=None):
        """the message m came by `how` (default t.via), and no command of
        the other way was used"""
        how = how or self.via
        self.eq(m.transfer, how, "%s: the content came by" % m.id)
        other = "DATA" if how == "BDAT" else "BDAT"
        self.eq(self.relay.commands(other), [], "no %s command" % other)

    def no_secret_in(self, blob, what, secret=None):
        for form in secret_forms(secret or self.conf.get("password") or PASSWORD,
                                 self.conf.get("username") or USERNAME):
            if isinstance(blob, str):
                blob = blob.encode("utf-8", "surrogateescape")
            self.ok(form not in blob, "%s does not hold the secret (%r)" % (what, form[:12]))

    def spooled(self):
        """files under queue_dir (whatever its layout)"""
        out = []
        for root, _, files in os.walk(self.queue_dir):
            out.extend(os.path.join(root, f) for f in files)
        return out

    def kept_safe(self, r, what="temporary failure"):
        """a temporary failure either exits TEMPFAIL_EXIT with the message
        spooled (exit 0: SPEC §6) or tells the caller (75)"""
        self.exit(r, TEMPFAIL_EXIT, what + ": exit code")
        if TEMPFAIL_EXIT == 0:
            self.ok(self.spooled(), what + ": the message is in the queue")

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    # checks ---------------------------------------------------------------

    def _fail(self, text):
        self.failures.append(text)
        return False

    def ok(self, cond, what):
        return True if cond else self._fail(what)

    def eq(self, got, want, what):
        if got == want:
            return True
        return self._fail("%s:\n     got: %r\n    want: %r" % (what, got, want))

    def isin(self, item, container, what):
        if item in container:
            return True
        return self._fail("%s: %r not in %r" % (what, item, _short(container)))

    def notin(self, item, container, what):
        if item not in container:
            return True
        return self._fail("%s: %r unexpectedly in %r" % (what, item, _short(container)))

    def match(self, regex, s, what):
        if s is not None and re.search(regex, s):
            return True
        return self._fail("%s: %r does not match /%s/" % (what, s, regex))

    def exit(self, r, code, what="exit code"):
        if r.code == code:
            return True
        return self._fail("%s of %s:\n     got: %r\n    want: %r" % (
            what, " ".join(_q(a) for a in r.argv[1:]) or r.argv[0], r.code, code))

    def require(self, cond, what):
        if not cond:
            raise Failed(what)

    def fail(self, what):
        raise Failed(what)

    def skip(self, why):
        raise Skipped(why)

    def note(self, text):
        self.notes.append(text)

    def diagnostics(self):
        out = []
        if self.last is not None:
            r = self.last
            out.append("last command: %s -> %s" % (" ".join(_q(a) for a in r.argv), r.code))
            for name, data in (("stdout", r.out), ("stderr", r.err)):
                text = data.decode("utf-8", "replace").rstrip()
                if text:
                    lines = text.splitlines()
                    if len(lines) > 30:
                        lines = lines[:15] + ["..."] + lines[-15:]
                    out.append("%s:" % name)
                    out.extend("  " + x for x in lines)
        tr = self.relay.transcript()
        if tr:
            out.append("relay:")
            out.extend("  " + x for x in tr)
        if not self.relay.alive():
            out.append("relay died: " + self.relay.stderr_text()[-2000:])
        return out

    def close(self, keep):
        if self.relay:
            self.relay.stop()
        if keep:
            return
        shutil.rmtree(self.dir, ignore_errors=True)


def _short(c):
    s = repr(c)
    return c if len(s) < 400 else s[:400] + "..."


def _q(a):
    a = a if isinstance(a, str) else repr(a)
    return a if re.fullmatch(r"[\w@%+=:,./-]+", a) else "'" + a.replace("'", "'\\''") + "'"


_bin = None


def bin_path():
    global _bin
    if _bin is None:
        b = os.environ.get("ACSMAIL_BIN")
        if not b:
            raise Failed("ACSMAIL_BIN is not set")
        _bin = os.path.abspath(b)
    if not os.access(_bin, os.X_OK):
        raise Failed("ACSMAIL_BIN=%s is not an executable" % _bin)
    return _bin


def have(program):
    return shutil.which(program) is not None


# ---------------------------------------------------------------------------

def _diag(text):
    for line in str(text).rstrip("\n").split("\n"):
        print("# " + line)


def _cleanup_certs():
    if _certs:
        shutil.rmtree(_certs, ignore_errors=True)


def _terminated(signum, frame):
    # run the finally blocks: the current test's relay and directory go away
    raise SystemExit(128 + signum)


def _run_one(desc, fn):
    t = None
    try:
        t = Case(desc)
        fn(t)
        if t.failures:
            return t, "not ok", t.failures
        return t, "ok", []
    except Skipped as e:
        return t, "skip", [str(e)]
    except Failed as e:
        return t, "not ok", (t.failures if t else []) + [str(e)]
    except Exception:
        return t, "not ok", (t.failures if t else []) + [traceback.format_exc()]
    except BaseException:
        if t is not None:
            t.close(False)
        raise


def _report(n, desc, t, status, extra):
    if status == "skip":
        print("ok %d - %s # SKIP %s" % (n, desc, extra[0]))
    elif status == "ok":
        print("ok %d - %s" % (n, desc))
    else:
        print("not ok %d - %s" % (n, desc))
        for x in extra:
            _diag(x)
        if t is not None:
            try:
                _diag("\n".join(t.diagnostics()))
            except Exception:
                _diag(traceback.format_exc())
    if t is not None:
        for x in t.notes:
            _diag(x)


def main():
    atexit.register(_cleanup_certs)
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGHUP, _terminated)
    only = os.environ.get("ACSMAIL_ONLY")
    keep = os.environ.get("ACSMAIL_KEEP") == "1"
    tests = [(d, f) for d, f in _registry if not only or re.search(only, d)]
    failed = 0
    for n, (desc, fn) in enumerate(tests, 1):
        t = None
        try:
            t, status, extra = _run_one(desc, fn)
            _report(n, desc, t, status, extra)
        finally:
            if t is not None:
                kept = keep and status == "not ok"
                try:
                    t.close(kept)
                    if kept:
                        _diag("kept " + t.dir)
                except Exception:
                    _diag(traceback.format_exc())
            sys.stdout.flush()
        if status == "not ok":
            failed += 1
    print("1..%d" % len(tests))
    sys.exit(1 if failed else 0)
