#!/usr/bin/python3
"""A stand-in for ACS's SMTP endpoint (tests/relay/relay.py).

Behaves like /work/shared/ACS.md describes smtp.azurecomm.net:587: STARTTLS,
then AUTH LOGIN only, Exchange Online's reply codes, MailFrom addresses only,
at most 50 recipients, 10 MB, a rate limit, and switchable faults.

    relay.py --state DIR [--certs DIR] [--host 127.0.0.1] [--port 0] [--parent PID]

Prints "PORT <n>" on stdout once it listens (also written to DIR/port).

DIR/control.json is re-read on every new connection; any key may be left
out (see DEFAULTS below):

    username, password        the credentials AUTH accepts (compared byte for byte)
    allowed_senders           MAIL FROM addresses accepted (case-insensitive)
    extensions                {"SIZE": true, "PIPELINING": true, ...} each on/off;
                              all on by default: SIZE PIPELINING DSN
                              ENHANCEDSTATUSCODES STARTTLS 8BITMIME BINARYMIME
                              CHUNKING SMTPUTF8 (BINARYMIME only with CHUNKING)
    auth_mechanisms           advertised after STARTTLS, default ["LOGIN"]
    max_size, max_recipients  10485760, 50
    faults:
      no_starttls             STARTTLS neither offered nor accepted
      untrusted_cert          serve a certificate from an unrelated CA
      wrong_name_cert         serve a certificate of the right CA for another name
      expired_cert            serve an expired certificate of the right CA
      greeting_421            421 instead of the greeting, then close
      throttle                "mail" or "rcpt" (true = "mail"): 450 4.5.127
      data_451                451 after the DATA content (BDAT: to the LAST chunk)
      drop_in_data            close the connection after the first line of DATA content
                              (BDAT: after the first line of the first chunk's octets)
      stall                   "greeting", "ehlo", "starttls", "auth", "mail", "rcpt",
                              "data", "dot" or "quit": never answer at that step
                              (BDAT: "data" the first chunk, "dot" the LAST one,
                              each once its octets are read)
      refuse_rcpt             list of addresses refused with 550 5.1.1
      rate_limit              {"count": N, "window": seconds}: accepted messages
                              beyond N within the window get 450 4.5.127 at MAIL
      sender_reply            the reply for a refused MAIL FROM

BDAT (RFC 3030 CHUNKING): "BDAT <size> [LAST]" is followed by exactly size
octets, read raw and answered "250 2.0.0 <size> octets received"; the LAST
chunk gets the same reply and recording as the end of DATA. The octets are
read before any refusal (503 without MAIL or RCPT, 552 over max_size), so
the session stays in step. DATA after BDAT, or after BODY=BINARYMIME, in
the same transaction gets 503.

For each accepted message DIR holds msg-NNNN.json (envelope, auth, TLS,
line-end facts, "transfer": "DATA" or "BDAT", "chunks": the number of BDAT
chunks, "chunk_sizes"), msg-NNNN.eml (the content after dot-unstuffing,
line ends exactly as received; BDAT: the octets as received) and
msg-NNNN.raw (the DATA bytes as they came on the wire, dot-stuffed, without
the final ".CRLF"; BDAT: the chunks' octets, the same as .eml).
DIR/events.jsonl logs every connection, command (with "tls" and
"pipelined": sent before the reply to the previous command; BDAT also with
"size", "last" and "buffered": its octets already received when the
command was read), reply and AUTH attempt.
"""

import argparse
import asyncio
import base64
import binascii
import collections
import itertools
import json
import logging
import os
import re
import signal
import ssl
import sys
import time
import uuid

from aiosmtpd.smtp import SMTP, Envelope, MISSING

EXTENSIONS = ["SIZE", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS",
              "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]

DEFAULTS = {
    "username": "acs-relay-app",
    "password": "secret",
    "allowed_senders": ["DoNotReply@mail.example.com", "alerts@mail.example.com"],
    "extensions": {e: True for e in EXTENSIONS},
    "auth_mechanisms": ["LOGIN"],
    "max_size": 10485760,
    "max_recipients": 50,
    "faults": {},
}

SENDER_REFUSED = "550 5.7.1 Client does not have permissions to send as this sender"
THROTTLED = "450 4.5.127 Message rejected. Excessive message rate from sender."
NOT_AUTHENTICATED = "530 5.7.57 Client not authenticated to send mail."
AUTH_FAILED = "535 5.7.3 Authentication unsuccessful"

log = logging.getLogger("relay")


class State:
    """What outlives a connection: counters, the rate window, the files."""

    def __init__(self, state_dir, certs_dir):
        self.dir = state_dir
        self.certs = certs_dir
        self.conn_ids = itertools.count(1)
        self.msg_ids = itertools.count(1)
        self.accepted = []      # times of accepted messages, for rate_limit
        self.events = open(os.path.join(state_dir, "events.jsonl"), "a",
                           encoding="utf-8", errors="surrogateescape")
        self.contexts = {}

    def control(self):
        c = json.loads(json.dumps(DEFAULTS))
        path = os.path.join(self.dir, "control.json")
        try:
            with open(path, encoding="utf-8") as f:
                user = json.load(f)
        except FileNotFoundError:
            user = {}
        except ValueError as e:
            log.error("control.json: %s", e)
            user = {}
        for k, v in user.items():
            if k == "extensions":
                c[k].update({x.upper(): bool(y) for x, y in v.items()})
            else:
                c[k] = v
        return c

    def event(self, **kw):
        kw["t"] = round(time.time(), 6)
        self.events.write(json.dumps(kw, ensure_ascii=True) + "\n")
        self.events.flush()

    def tls_context(self, name):
        if name not in self.contexts:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(os.path.join(self.certs, name + ".pem"),
                                os.path.join(self.certs, name + ".key"))
            self.contexts[name] = ctx
        return self.contexts[name]

    def store(self, n, record, content, raw):
        base = os.path.join(self.dir, "msg-%04d" % n)
        record["id"] = "msg-%04d" % n
        with open(base + ".eml", "wb") as f:
            f.write(content)
        with open(base + ".raw", "wb") as f:
            f.write(raw)
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, ensure_ascii=True)
        os.rename(base + ".json.tmp", base + ".json")
        return record["id"]


class RelayEnvelope(Envelope):
    def __init__(self):
        super().__init__()
        self.mail_given = False
        self.rcpt_params = []
        self.pipelined = False
        self.binarymime = False
        self.chunks = []            # sizes of the BDAT chunks taken
        self.bdat_data = bytearray()


BDAT_ARG = re.compile(r"(\d{1,18})(?: +(LAST))?", re.I)


def bdat_arg(arg):
    """'123 LAST' -> (123, True), or None on bad syntax"""
    m = BDAT_ARG.fullmatch((arg or "").strip())
    return (int(m.group(1)), m.group(2) is not None) if m else None


def decode_arg(b):
    return b.decode("utf-8", errors="surrogateescape")


def parse_path(arg, keyword):
    """'FROM:<a@b> SIZE=1' -> ('a@b', ['SIZE=1']), or None on bad syntax."""
    if arg is None or arg[:len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword):].lstrip(" ")
    if not rest.startswith("<"):
        # some clients omit the brackets; accept a bare address
        parts = rest.split()
        if not parts:
            return None
        return parts[0], parts[1:]
    end = rest.find(">")
    if end < 0:
        return None
    addr = rest[1:end]
    if addr.startswith("@") and ":" in addr:    # source route
        addr = addr.split(":", 1)[1]
    return addr, rest[end + 1:].split()


class Relay(SMTP):
    """One connection. aiosmtpd does the line reading and the TLS switch;
    the commands are answered here, the way ACS (Exchange Online) does."""

    line_length_limit = 64 << 20     # DATA lines are checked below, not here

    def __init__(self, state, **kw):
        self.state = state
        self.ctl = state.control()
        self.faults = self.ctl.get("faults") or {}
        self.ext = self.ctl["extensions"]
        self.conn = next(state.conn_ids)
        ctx = None
        if not self.faults.get("no_starttls") and self.ext.get("STARTTLS", True):
            cert = "server"
            for fault, name in (("untrusted_cert", "untrusted"),
                                ("wrong_name_cert", "wrongname"),
                                ("expired_cert", "expired")):
                if self.faults.get(fault):
                    cert = name
            ctx = state.tls_context(cert)
        super().__init__(None, data_size_limit=None, enable_SMTPUTF8=True,
                         hostname="localhost", ident="ESMTP acsmail test relay ready",
                         tls_context=ctx, require_starttls=False,
                         auth_require_tls=True, timeout=120, **kw)
        # aiosmtpd shares this dict between instances; keep ours apart
        self.command_size_limits = collections.defaultdict(lambda: 4096)
        self.command_size_limit = 4096
        self.replies_sent = 0
        self.fed = 0
        self.chunks = []         # (end offset, replies sent when it arrived)
        self.prev_dispatch_replies = None
        self.unread_logged = False
        self.in_data = False
        self.stream = self._stream_reader
        feed = self.stream.feed_data

        def feed_data(data, feed=feed):
            self.fed += len(data)
            self.chunks.append((self.fed, self.replies_sent))
            feed(data)
        self.stream.feed_data = feed_data
        for name, method in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._logged(name, method)

    # bookkeeping ---------------------------------------------------------

    def _create_envelope(self):
        return RelayEnvelope()

    def event(self, kind, **kw):
        self.state.event(conn=self.conn, kind=kind, **kw)

    @property
    def tls_active(self):
        return self._tls_protocol is not None

    def _arrival(self):
        """replies sent when the line just read had arrived"""
        end = self.fed - len(self._reader._buffer)
        while self.chunks and self.chunks[0][0] < end:
            self.chunks.pop(0)
        return self.chunks[0][1] if self.chunks else self.replies_sent

    def _logged(self, name, method):
        async def run(arg):
            arrived = self._arrival()
            pipelined = (self.prev_dispatch_replies is not None
                         and arrived <= self.prev_dispatch_replies)
            self.prev_dispatch_replies = self.replies_sent
            extra = {}
            if name == "BDAT" and bdat_arg(arg):
                size, last = bdat_arg(arg)
                extra = {"size": size, "last": last,
                         "buffered": min(size, len(self._reader._buffer))}
            self.event("cmd", cmd=name, arg=arg, tls=self.tls_active,
                       pipelined=pipelined, **extra)
            if pipelined and self.envelope is not None:
                self.envelope.pipelined = True
            if self.faults.get("stall") == name.lower() or (
                    self.faults.get("stall") == "ehlo" and name == "HELO"):
                self.event("stall", step=name.lower())
                await asyncio.Event().wait()
            return await method(arg)
        return run

    async def push(self, status):
        line = status if isinstance(status, str) else decode_arg(status)
        if len(line) < 4 or line[3] != "-":
            self.replies_sent += 1
        self.event("reply", line=line)
        await super().push(status)

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            peer = transport.get_extra_info("peername")
            self.event("connect", peer=list(peer) if peer else None)
        else:
            ssl_obj = transport.get_extra_info("ssl_object")
            self.event("tls", version=ssl_obj.version() if ssl_obj else None,
                       cipher=ssl_obj.cipher()[0] if ssl_obj else None)

    def _log_unread(self):
        """Commands that came right before the client closed are still in
        the buffer when aiosmtpd cancels the handler (a QUIT, typically):
        log them, marked unanswered."""
        if self.unread_logged or self.in_data:
            return
        self.unread_logged = True
        buf = bytes(self._reader._buffer)
        i = 0
        while i < len(buf):
            j = buf.find(b"\n", i)
            j = len(buf) if j < 0 else j
            line = buf[i:j].rstrip(b"\r")
            i = j + 1
            if not line:
                continue
            verb, _, arg = decode_arg(line).partition(" ")
            self.event("cmd", cmd=verb.upper(), arg=arg.strip() or None,
                       tls=self.tls_active, pipelined=False, unanswered=True)
            if verb.upper() == "BDAT" and bdat_arg(arg):
                i += bdat_arg(arg)[0]       # its octets are no command

    def eof_received(self):
        self._log_unread()
        return super().eof_received()

    def connection_lost(self, error):
        self._log_unread()
        self.event("close", error=str(error) if error else None)
        super().connection_lost(error)

    async def handle_exception(self, error):
        self.event("exception", error="%s: %s" % (type(error).__name__, error),
                   cause=repr(error.__cause__))
        return "421 4.3.2 Internal error, closing"

    async def _handle_client(self):
        if self.faults.get("greeting_421"):
            await self.push("421 4.3.2 Service not available, closing transmission channel")
            self.transport.close()
            return
        if self.faults.get("stall") == "greeting":
            self.event("stall", step="greeting")
            await asyncio.Event().wait()
        await super()._handle_client()

    # checks shared by the commands ----------------------------------------

    async def need(self, helo=True, auth=True):
        if helo and not self.session.host_name:
            await self.push("503 5.5.1 Send hello first")
            return False
        if auth and not self.session.authenticated:
            await self.push(NOT_AUTHENTICATED)
            return False
        return True

    def throttled(self, step):
        t = self.faults.get("throttle")
        if t is True:
            t = "mail"
        if t == step:
            return True
        rl = self.faults.get("rate_limit")
        if step == "mail" and rl:
            now = time.time()
            window = float(rl.get("window", 60))
            recent = [x for x in self.state.accepted if now - x < window]
            return len(recent) >= int(rl.get("count", 30))
        return False

    # commands ---------------------------------------------------------------

    async def smtp_EHLO(self, hostname):
        if not hostname:
            await self.push("501 5.5.4 Invalid domain name")
            return
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        peer = self.session.peer[0] if self.session.peer else "127.0.0.1"
        lines = ["localhost Hello [%s]" % peer]
        e = self.ext
        if e.get("SIZE"):
            lines.append("SIZE %d" % self.ctl["max_size"])
        for k in ("PIPELINING", "DSN", "ENHANCEDSTATUSCODES"):
            if e.get(k):
                lines.append(k)
        if self.tls_context and not self.tls_active:
            lines.append("STARTTLS")
        if self.tls_active and self.ctl["auth_mechanisms"]:
            lines.append("AUTH " + " ".join(self.ctl["auth_mechanisms"]))
        if e.get("8BITMIME"):
            lines.append("8BITMIME")
        if e.get("BINARYMIME") and e.get("CHUNKING"):
            lines.append("BINARYMIME")
        if e.get("CHUNKING"):
            lines.append("CHUNKING")
        if e.get("SMTPUTF8"):
            lines.append("SMTPUTF8")
        for i, text in enumerate(lines):
            await self.push(("250 " if i == len(lines) - 1 else "250-") + text)

    async def smtp_STARTTLS(self, arg):
        if not self.tls_context:
            await self.push("500 5.3.3 Unrecognized command 'STARTTLS'")
            return
        if self.tls_active:
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        if not await self.need(auth=False):
            return
        if not self.tls_active:
            await self.push("530 5.7.0 Must issue a STARTTLS command first")
            return
        if self.session.authenticated:
            await self.push("503 5.5.2 Already authenticated")
            return
        args = (arg or "").split()
        if not args:
            await self.push("501 5.5.4 Syntax: AUTH mechanism")
            return
        mech = args[0].upper()
        offered = [m.upper() for m in self.ctl["auth_mechanisms"]]
        if mech not in offered or mech not in ("LOGIN", "PLAIN"):
            self.event("auth", mechanism=mech, ok=False, refused="not offered")
            await self.push("504 5.7.4 Unrecognized authentication type")
            return
        if mech == "LOGIN":
            if len(args) > 1:
                user = self.b64(args[1])
            else:
                user = await self.challenge_auth("Username:")
            if user is None:
                await self.push("501 5.5.2 Cannot Base64-decode Client responses")
                return
            if user is MISSING:
                return
            password = await self.challenge_auth("Password:")
            if password is MISSING:
                return
        else:
            blob = self.b64(args[1]) if len(args) > 1 else await self.challenge_auth("")
            if blob is None:
                await self.push("501 5.5.2 Cannot Base64-decode Client responses")
                return
            if blob is MISSING:
                return
            parts = blob.split(b"\0")
            if len(parts) != 3:
                await self.push("501 5.5.2 Cannot split PLAIN response")
                return
            user, password = parts[1], parts[2]
        ok = (user == self.ctl["username"].encode("utf-8")
              and password == self.ctl["password"].encode("utf-8"))
        self.event("auth", mechanism=mech, user=decode_arg(user),
                   password=decode_arg(password), ok=ok)
        if ok:
            self.session.authenticated = True
            self.session.auth_user = decode_arg(user)
            self.session.auth_mechanism = mech
            await self.push("235 2.7.0 Authentication successful")
        else:
            await self.push(AUTH_FAILED)

    @staticmethod
    def duplicate(params):
        keys = [p.partition("=")[0].upper() for p in params]
        return len(keys) != len(set(keys))

    async def smtp_QUIT(self, arg):
        await self.push("221 2.0.0 Service closing transmission channel")
        self._handler_coroutine.cancel()
        self.transport.close()

    @staticmethod
    def b64(s):
        try:
            return base64.b64decode(s.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return None

    async def smtp_MAIL(self, arg):
        if not await self.need():
            return
        if self.envelope.mail_given:
            await self.push("503 5.5.2 Sender already specified")
            return
        parsed = parse_path(arg, "FROM:")
        if parsed is None:
            await self.push("501 5.5.4 Invalid arguments")
            return
        addr, params = parsed
        e = self.ext
        smtputf8 = False
        binarymime = False
        bodies = ["7BIT"]
        if e.get("8BITMIME"):
            bodies.append("8BITMIME")
        if e.get("BINARYMIME") and e.get("CHUNKING"):
            bodies.append("BINARYMIME")
        if self.duplicate(params):
            await self.push("501 5.5.4 Duplicate parameter")
            return
        for p in params:
            k, _, v = p.partition("=")
            k = k.upper()
            if k == "SIZE" and e.get("SIZE"):
                if not v.isdigit():
                    await self.push("501 5.5.4 Invalid SIZE parameter")
                    return
                if int(v) > self.ctl["max_size"]:
                    await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
                    return
            elif k == "BODY" and len(bodies) > 1:
                if v.upper() not in bodies:
                    await self.push("501 5.5.4 Invalid BODY parameter")
                    return
                binarymime = v.upper() == "BINARYMIME"
            elif k == "SMTPUTF8" and e.get("SMTPUTF8") and not v:
                smtputf8 = True
            elif k in ("RET", "ENVID") and e.get("DSN"):
                if k == "RET" and v.upper() not in ("FULL", "HDRS"):
                    await self.push("501 5.5.4 Invalid RET parameter")
                    return
            elif k == "AUTH":
                pass
            else:
                await self.push("555 5.5.4 Unsupported parameter %s" % k)
                return
        if not smtputf8 and any(ord(c) > 127 for c in addr):
            await self.push("553 5.6.7 Non-ASCII address needs SMTPUTF8")
            return
        if self.throttled("mail"):
            await self.push(THROTTLED)
            return
        allowed = [a.lower() for a in self.ctl["allowed_senders"]]
        if addr.lower() not in allowed:
            await self.push(self.faults.get("sender_reply") or SENDER_REFUSED)
            return
        self.envelope.mail_given = True
        self.envelope.mail_from = addr
        self.envelope.mail_options = params
        self.envelope.smtp_utf8 = smtputf8
        self.envelope.binarymime = binarymime
        await self.push("250 2.1.0 Sender OK")

    async def smtp_RCPT(self, arg):
        if not await self.need():
            return
        if not self.envelope.mail_given:
            await self.push("503 5.5.1 Need mail command")
            return
        parsed = parse_path(arg, "TO:")
        if parsed is None:
            await self.push("501 5.5.4 Invalid arguments")
            return
        addr, params = parsed
        if self.duplicate(params):
            await self.push("501 5.5.4 Duplicate parameter")
            return
        for p in params:
            k, _, v = p.partition("=")
            k = k.upper()
            if k in ("NOTIFY", "ORCPT") and self.ext.get("DSN"):
                if k == "NOTIFY":
                    vals = v.upper().split(",")
                    if not vals or not (vals == ["NEVER"] or all(
                            x in ("SUCCESS", "FAILURE", "DELAY") for x in vals)):
                        await self.push("501 5.5.4 Invalid NOTIFY parameter")
                        return
            else:
                await self.push("555 5.5.4 Unsupported parameter %s" % k)
                return
        if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
            await self.push("501 5.1.3 Invalid address")
            return
        if not self.envelope.smtp_utf8 and any(ord(c) > 127 for c in addr):
            await self.push("553 5.6.7 Non-ASCII address needs SMTPUTF8")
            return
        if self.throttled("rcpt"):
            await self.push(THROTTLED)
            return
        if len(self.envelope.rcpt_tos) >= int(self.ctl["max_recipients"]):
            await self.push("452 4.5.3 Too many recipients")
            return
        refused = [a.lower() for a in self.faults.get("refuse_rcpt") or []]
        if addr.lower() in refused:
            await self.push("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found")
            return
        self.envelope.rcpt_tos.append(addr)
        self.envelope.rcpt_params.append(params)
        await self.push("250 2.1.5 Recipient OK")

    async def smtp_DATA(self, arg):
        if not await self.need():
            return
        env = self.envelope
        if not env.mail_given:
            await self.push("503 5.5.1 Need mail command")
            return
        if not env.rcpt_tos:
            await self.push("503 5.5.1 Need rcpt command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        if env.chunks:
            await self.push("503 5.5.1 DATA not allowed after BDAT")
            return
        if env.binarymime:
            await self.push("503 5.5.1 BODY=BINARYMIME requires BDAT")
            return
        await self.push("354 Start mail input; end with <CRLF>.<CRLF>")
        self.in_data = True
        try:
            await self._read_data(env)
        finally:
            self.in_data = False

    async def _read_data(self, env):
        raw = bytearray()
        too_big = False
        nlines = 0
        limit = int(self.ctl["max_size"])
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError:
                self.unread_logged = True
                self.event("data-aborted", received=len(raw))
                await self._hang_up(abort=False)
            except asyncio.CancelledError:
                self.unread_logged = True
                self.event("data-aborted", received=len(raw))
                raise
            if line == b".\r\n":
                break
            nlines += 1
            if self.faults.get("drop_in_data"):
                self.unread_logged = True
                self.event("drop", received=len(raw) + len(line))
                await self._hang_up()
            if too_big or len(raw) + len(line) > limit + limit // 20 + 1024:
                too_big = True
                continue
            raw += line
        # dot-unstuffing on CRLF lines, every other byte kept as it came
        lines = bytes(raw).split(b"\r\n")
        content = b"\r\n".join(x[1:] if x.startswith(b".") else x for x in lines)
        if too_big or len(content) > limit:
            self.event("data-refused", reason="size")
            await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
            self._set_post_data_state()
            return
        await self._finish(env, content, bytes(raw), "DATA")

    # BDAT (RFC 3030) --------------------------------------------------------

    async def _read_octets(self, n, keep=True):
        """The n octets after a BDAT line, in pieces (a chunk may be larger
        than the reader's buffer); None when the client went away."""
        parts = []
        got = 0
        self.in_data = True
        try:
            while got < n:
                piece = await self._reader.readexactly(min(n - got, 1 << 20))
                got += len(piece)
                if keep:
                    parts.append(piece)
        except asyncio.IncompleteReadError as e:
            self.unread_logged = True
            self.event("data-aborted", received=got + len(e.partial), expected=n)
            await self._hang_up(abort=False)
        except asyncio.CancelledError:
            self.unread_logged = True
            self.event("data-aborted", received=got, expected=n)
            raise
        finally:
            self.in_data = False
        return b"".join(parts)

    async def _drop_in_chunk(self, size):
        """drop_in_data: take the chunk's first line (or part of it), then
        close the connection."""
        self.unread_logged = True
        self.in_data = True
        got = bytearray()
        try:
            while len(got) < min(size, 4096):
                got += await self._reader.readexactly(1)
                if got.endswith(b"\n"):
                    break
        except asyncio.IncompleteReadError:
            pass
        self.event("drop", received=len(got))
        await self._hang_up()

    async def _hang_up(self, abort=True):
        """Closes the connection; what the client sent beyond this point is
        neither answered nor taken for commands. Never returns: closing
        cancels the handler."""
        self._reader._buffer.clear()
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
        await asyncio.Event().wait()

    async def _stall(self, step):
        self.event("stall", step=step)
        await asyncio.Event().wait()

    async def smtp_BDAT(self, arg):
        if not self.ext.get("CHUNKING"):
            await self.push("500 5.3.3 Unrecognized command 'BDAT'")
            return
        parsed = bdat_arg(arg)
        if parsed is None:
            # the chunk's end is unknown: what follows is read as commands
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        size, last = parsed
        env = self.envelope
        valid = (self.session.host_name and self.session.authenticated
                 and env.mail_given and env.rcpt_tos)
        if valid and not env.chunks and self.faults.get("drop_in_data"):
            await self._drop_in_chunk(size)
            return
        limit = int(self.ctl["max_size"])
        too_big = valid and len(env.bdat_data) + size > limit
        data = await self._read_octets(size, keep=valid and not too_big)
        if data is None:
            return
        # refusals only now: the octets are consumed whatever the answer
        if not await self.need():
            return
        if not env.mail_given:
            await self.push("503 5.5.1 Need mail command")
            return
        if not env.rcpt_tos:
            await self.push("503 5.5.1 Need rcpt command")
            return
        env.chunks.append(size)
        if too_big:
            self.event("data-refused", reason="size", chunks=len(env.chunks))
            await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
            self._set_post_data_state()
            return
        env.bdat_data += data
        if len(env.chunks) == 1 and self.faults.get("stall") == "data":
            await self._stall("data")
        if not last:
            await self.push("250 2.0.0 %d octets received" % size)
            return
        content = bytes(env.bdat_data)
        await self._finish(env, content, content, "BDAT")

    # the end of a message, DATA or BDAT LAST ---------------------------------

    async def _finish(self, env, content, raw, transfer):
        if self.faults.get("stall") == "dot":
            await self._stall("dot")
        if self.faults.get("data_451"):
            self.event("data-refused", reason="data_451")
            await self.push("451 4.3.0 Temporary server error. Please try again later")
            self._set_post_data_state()
            return
        lines = raw.split(b"\r\n")
        body_lines = content.split(b"\r\n")
        n = next(self.state.msg_ids)
        qid = "<%s@relay.example>" % uuid.uuid4().hex.upper()
        reply = "250 2.6.0 %s [InternalId=%d] Queued mail for delivery" % (qid, n)
        ssl_obj = self.transport.get_extra_info("ssl_object") if self.tls_active else None
        record = {
            "conn": self.conn,
            "time": time.time(),
            "helo": self.session.host_name,
            "mail_from": env.mail_from,
            "mail_options": env.mail_options,
            "rcpt_tos": env.rcpt_tos,
            "rcpt_options": env.rcpt_params,
            "auth_user": getattr(self.session, "auth_user", None),
            "auth_mechanism": getattr(self.session, "auth_mechanism", None),
            "tls": self.tls_active,
            "tls_version": ssl_obj.version() if ssl_obj else None,
            "transfer": transfer,
            "chunks": len(env.chunks),
            "chunk_sizes": list(env.chunks),
            "size": len(content),
            "raw_size": len(raw),
            "bare_lf": any(b"\n" in x for x in lines),
            "bare_cr": any(b"\r" in x for x in lines),
            "eight_bit": re.search(rb"[\x80-\xff]", content) is not None,
            "longest_line": max(len(x) for x in body_lines) if body_lines else 0,
            "ends_with_crlf": raw.endswith(b"\r\n"),
            "pipelined": env.pipelined,
            "queue_id": qid,
            "reply": reply,
        }
        mid = self.state.store(n, record, content, raw)
        self.state.accepted.append(time.time())
        self.event("message", id=mid, mail_from=env.mail_from, rcpt_tos=env.rcpt_tos,
                   transfer=transfer)
        self._set_post_data_state()
        await self.push(reply)


async def serve(args):
    state = State(args.state, args.certs)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Relay(state, loop=loop),
                                      host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    with open(os.path.join(args.state, "port.tmp"), "w") as f:
        f.write("%d\n" % port)
    os.rename(os.path.join(args.state, "port.tmp"), os.path.join(args.state, "port"))
    state.event(conn=0, kind="listen", port=port, pid=os.getpid())
    print("PORT %d" % port, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.parent:
        async def watch():
            # a test killed mid-run must not leave its relay behind
            while os.getppid() == args.parent:
                await asyncio.sleep(0.5)
            stop.set()
        loop.create_task(watch())
    await stop.wait()
    server.close()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description="ACS-like SMTP relay for tests")
    p.add_argument("--state", required=True, help="directory for control, messages, events")
    p.add_argument("--certs", help="certificates (made with mkcerts.sh when missing)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parent", type=int, help="exit when this process is no longer the parent")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    os.makedirs(args.state, exist_ok=True)
    if not args.certs:
        args.certs = os.path.join(args.state, "certs")
    if not os.path.exists(os.path.join(args.certs, "expired.pem")):
        import subprocess
        subprocess.run([os.path.join(here, "mkcerts.sh"), args.certs], check=True)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        stream=sys.stderr, format="%(name)s: %(message)s")
    if not args.debug:
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
