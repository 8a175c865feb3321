#!/bin/sh
# demo.sh: build acsmail on a fresh Debian 12 and send one message through it
# to a local stand-in for ACS (tests/relay/relay.py: STARTTLS on a throwaway
# CA, AUTH LOGIN), then show what the relay received. Run as root:
#
#     sh tests/demo.sh
#
# Knobs for running it elsewhere: SKIP_APT=1 (dependencies already there),
# SKIP_AUTORECONF=1 (configure already generated), BUILD_DIR=/path (default
# build/ in the source tree). Exits non-zero when any step fails.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
py=/usr/bin/python3

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [ "${SKIP_APT:-0}" != 1 ]; then
	[ "$(id -u)" = 0 ] || die "run as root (apt-get), or set SKIP_APT=1"
	step "installing the build dependencies"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q build-essential autoconf automake pkg-config \
	    libgnutls28-dev libconfuse-dev python3-aiosmtpd gnutls-bin
fi

if [ "${SKIP_AUTORECONF:-0}" != 1 ]; then
	step "autoreconf -fi"
	(cd "$top" && autoreconf -fi)
fi

step "configure and make in $build"
mkdir -p "$build"
(cd "$build" && "$top/configure" --prefix=/usr --sysconfdir=/etc --localstatedir=/var &&
    make -j"$(nproc 2>/dev/null || echo 2)")
[ -x "$build/src/acsmail" ] || die "no binary at $build/src/acsmail"

work=$(mktemp -d /tmp/acsmail-demo.XXXXXX)
relay_pid=
cleanup() {
	if [ -n "$relay_pid" ]; then
		kill "$relay_pid" 2>/dev/null || :
		wait "$relay_pid" 2>/dev/null || :
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step "starting the test relay on 127.0.0.1 (throwaway CA in $work/certs)"
sh "$top/tests/relay/mkcerts.sh" "$work/certs"
mkdir -p "$work/relay"
cat > "$work/relay/control.json" <<'EOF'
{"username": "demo-smtp-user", "password": "demo secret #1 'quoted'",
 "allowed_senders": ["DoNotReply@mail.example.com"]}
EOF
"$py" "$top/tests/relay/relay.py" --state "$work/relay" --certs "$work/certs" \
    > "$work/relay.out" 2> "$work/relay.err" &
relay_pid=$!
port=
i=0
while [ $i -lt 50 ]; do
	port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$work/relay.out")
	[ -n "$port" ] && break
	kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay.err" >&2; die "the relay died"; }
	sleep 0.1
	i=$((i + 1))
done
[ -n "$port" ] || die "the relay did not start"
echo "relay listening on 127.0.0.1:$port"

step "writing a config ($work/acsmail.conf)"
umask 077
cat > "$work/acsmail.conf" <<EOF
server          = "localhost"
port            = $port
tls_ca_file     = "$work/certs/ca.pem"
username        = "demo-smtp-user"
password        = 'demo secret #1 \\'quoted\\''
from            = "DoNotReply@mail.example.com"
aliases         = "$work/aliases"
queue_dir       = "$work/queue"
log             = "$work/acsmail.log"
timeout         = 10
EOF
mkdir -p "$work/queue"
: > "$work/aliases"
umask 022
ln -s "$build/src/acsmail" "$work/sendmail"

step "sendmail -t"
printf '%s\n' \
    'To: recipient@example.com' \
    'Subject: WSLからのテストメール' \
    'Content-Type: text/plain; charset=UTF-8' \
    '' \
    '🐶🐶🐶🐶 これは テストメールです 🐶🐶🐶🐶' |
    ACSMAIL_CONFIG="$work/acsmail.conf" "$work/sendmail" -t ||
    die "sendmail exited with $?"

step "what the relay received"
"$py" - "$work/relay" <<'EOF'
import email, email.header, email.policy, glob, json, os, sys
msgs = sorted(glob.glob(os.path.join(sys.argv[1], "msg-*.json")))
if len(msgs) != 1:
    sys.exit("demo: expected one message at the relay, found %d" % len(msgs))
info = json.load(open(msgs[0]))
print("envelope:")
print("  MAIL FROM:<%s> %s" % (info["mail_from"], " ".join(info["mail_options"])))
for r, o in zip(info["rcpt_tos"], info["rcpt_options"]):
    print("  RCPT TO:<%s> %s" % (r, " ".join(o)))
print("  AUTH %s as %s, TLS %s" % (info["auth_mechanism"], info["auth_user"], info["tls_version"]))
print("  relay: %s" % info["reply"])
data = open(msgs[0][:-len(".json")] + ".eml", "rb").read()
print("\nmessage (%d octets):" % len(data))
sys.stdout.write(data.decode("utf-8", "replace").replace("\r\n", "\n"))
m = email.message_from_bytes(data, policy=email.policy.default)
subject = str(email.header.make_header(email.header.decode_header(m.get("Subject", ""))))
body = m.get_payload(decode=True).decode(m.get_content_charset() or "utf-8")
print("\nSubject, decoded: %s" % subject)
print("Body, decoded:    %s" % body.strip())
ok = (subject == "WSLからのテストメール"
      and body.strip() == "🐶🐶🐶🐶 これは テストメールです 🐶🐶🐶🐶"
      and info["rcpt_tos"] == ["recipient@example.com"])
if not ok:
    sys.exit("demo: the message did not arrive as sent")
print("\ndemo: OK")
EOF
