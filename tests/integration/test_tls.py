#!/usr/bin/python3
"""STARTTLS, certificate checks, AUTH and the secret (SPEC §7, ACS.md)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, each_transfer, USERNAME  # noqa: E402

# every character the docs warn about, spaces included
SECRET = "a#b = c:d ~e $HOME ${USER} back\\slash \"dq\" 'sq' end "


def lf(*lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


MSG = lf("To: a@example.com", "Subject: tls", "", "body")


@each_transfer("the session: EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, BDAT or DATA, QUIT")
def _(t):
    r = t.run(["-t", "-i"], MSG)
    t.exit(r, 0)
    m = t.message()
    t.eq(t.relay.verbs(), ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", t.via, "QUIT"],
         "commands")
    t.sent_by(m)
    t.ok(m.tls, "the message came over TLS")
    t.isin(m.tls_version, ("TLSv1.2", "TLSv1.3"), "TLS version")
    auth = [c for c in t.relay.commands("AUTH")]
    t.ok(all(c["tls"] for c in auth), "AUTH only inside TLS")
    t.eq([c["arg"].split()[0].upper() for c in auth], ["LOGIN"], "AUTH LOGIN")
    t.eq(m.auth_user, USERNAME, "authenticated user")


def refused_tls(t, fault=None):
    if fault:
        t.relay.fault(fault)
    r = t.run(["-t", "-i"], MSG)
    t.kept_safe(r)
    t.eq(t.relay.commands("AUTH"), [], "no AUTH sent")
    t.eq(t.relay.auths(), [], "no credentials received")
    t.nothing_sent()
    t.eq([c["cmd"] for c in t.relay.commands() if c["tls"]], [], "nothing said inside TLS")
    return r


@test("relay offering no STARTTLS: no AUTH, nothing sent, temporary failure")
def _(t):
    r = refused_tls(t, "no_starttls")
    t.match(r"(?i)starttls", r.stderr + t.log_text().decode("utf-8", "replace"),
            "stderr or the log names STARTTLS")


@test("certificate from another CA: no AUTH, nothing sent, temporary failure")
def _(t):
    refused_tls(t, "untrusted_cert")


@test("certificate of the right CA for another host name: refused")
def _(t):
    refused_tls(t, "wrong_name_cert")


@test("expired certificate: refused")
def _(t):
    refused_tls(t, "expired_cert")


@test("no tls_ca_file: the system store does not know the test CA, refused")
def _(t):
    t.config(tls_ca_file=None)
    refused_tls(t)


@test("tls = implicit against a STARTTLS relay fails without sending anything")
def _(t):
    t.config(tls="implicit")
    r = t.run(["-t", "-i"], MSG)
    t.kept_safe(r)
    t.eq(t.relay.auths(), [], "no credentials received")
    t.nothing_sent()


@test("AUTH PLAIN is not used when LOGIN is offered")
def _(t):
    t.relay.control(auth_mechanisms=["LOGIN", "XOAUTH2"])
    r = t.run(["-t", "-i"], MSG)
    t.exit(r, 0)
    t.message()
    t.eq([a["mechanism"] for a in t.relay.auths()], ["LOGIN"], "mechanisms tried")


@test("a relay that offers only PLAIN gets PLAIN")
def _(t):
    t.relay.control(auth_mechanisms=["PLAIN"])
    r = t.run(["-t", "-i"], MSG)
    t.exit(r, 0)
    m = t.message()
    t.eq(m.auth_mechanism, "PLAIN", "mechanism")


@test("a secret with # = : ~ $ \\ \" ' and spaces reaches the relay byte for byte")
def _(t):
    t.relay.control(password=SECRET)
    t.config(password=SECRET)
    r = t.run(["-v", "-t", "-i"], MSG)
    t.exit(r, 0)
    t.message()
    auths = t.relay.auths()
    t.eq([a.get("password") for a in auths], [SECRET], "the secret the relay received")
    t.eq([a["ok"] for a in auths], [True], "AUTH accepted")


@test("the secret never appears in -v output or the log; -v shows ***")
def _(t):
    t.relay.control(password=SECRET)
    t.config(password=SECRET)
    r = t.run(["-v", "-t", "-i"], MSG)
    t.exit(r, 0)
    t.message()
    t.no_secret_in(r.out + r.err, "-v output", SECRET)
    t.no_secret_in(t.log_text(), "the log file", SECRET)
    t.match(r"(?i)auth login", r.stderr, "-v shows the AUTH dialogue")
    t.isin("***", r.stderr, "-v masks the secret")
    t.match(r"(?i)mail from:", r.stderr, "-v shows MAIL FROM")
    t.match(r"\b250\b", r.stderr, "-v shows the replies")


@test("the secret never appears in the output of a failed AUTH")
def _(t):
    t.relay.control(password="the-right-one")
    t.config(password=SECRET)
    r = t.run(["-v", "-t", "-i"], MSG)
    t.kept_safe(r)
    t.no_secret_in(r.out + r.err, "output", SECRET)
    t.no_secret_in(t.log_text(), "the log file", SECRET)
    t.isin("535", r.stderr + t.log_text().decode("utf-8", "replace"),
           "the relay's 535 on stderr or in the log")
    t.nothing_sent()


@test("password_file: its first line is the secret, taken raw")
def _(t):
    pw = t.path("secret.txt")
    with open(pw, "w") as f:
        f.write(SECRET + "\nsecond line is not part of it\n")
    os.chmod(pw, 0o600)
    t.relay.control(password=SECRET)
    t.config(password=None, password_file=pw)
    r = t.run(["-t", "-i"], MSG)
    t.exit(r, 0)
    t.message()
    t.eq([a.get("password") for a in t.relay.auths()], [SECRET], "the secret received")


@test("password_file readable by others: exit 78, nothing sent")
def _(t):
    pw = t.path("secret.txt")
    with open(pw, "w") as f:
        f.write("whatever\n")
    os.chmod(pw, 0o644)
    t.config(password=None, password_file=pw)
    r = t.run(["-t", "-i"], MSG)
    t.exit(r, harness.EX_CONFIG)
    t.isin(pw, r.stderr, "the error names the file")
    t.no_connection()


@test("acs_resource, entra_app_id and entra_tenant_id are joined into the username")
def _(t):
    t.relay.control(username="myacs.11111111-2222-3333-4444-555555555555."
                             "66666666-7777-8888-9999-000000000000")
    t.config(username=None, acs_resource="myacs",
             entra_app_id="11111111-2222-3333-4444-555555555555",
             entra_tenant_id="66666666-7777-8888-9999-000000000000")
    r = t.run(["-t", "-i"], MSG)
    t.exit(r, 0)
    t.message()


@test("wrong password (535): temporary failure, nothing sent, the reply reported")
def _(t):
    t.relay.control(password="another")
    r = t.run(["-t", "-i"], MSG)
    t.kept_safe(r)
    t.isin("535", r.stderr + t.log_text().decode("utf-8", "replace"),
           "the relay's reply on stderr or in the log")
    t.nothing_sent()


harness.main()
