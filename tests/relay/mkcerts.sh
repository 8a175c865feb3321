#!/bin/sh
# mkcerts.sh DIR: throwaway certificates for the test relay (certtool, gnutls-bin).
#
#   ca.pem                      the CA the client is told to trust (tls_ca_file)
#   server.pem server.key       "localhost", DNS:localhost and IP:127.0.0.1, signed by ca.pem
#   other-ca.pem                an unrelated CA
#   untrusted.pem untrusted.key "localhost" again, but signed by other-ca.pem
#   wrongname.pem wrongname.key signed by ca.pem, for "wrong.example" only
#   expired.pem expired.key     "localhost", signed by ca.pem, expired long ago
#
# Existing files are kept, so the script is cheap to call again.
set -eu

dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -s expired.pem ] && exit 0

umask 077
key() {
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
	    --outfile "$1" 2>/dev/null
}

# ca NAME CN
ca() {
	cat > "$1.tmpl" <<EOF
cn = "$2"
organization = "acsmail tests"
serial = $(date +%s)
expiration_days = 3650
ca
cert_signing_key
crl_signing_key
EOF
	key "$1.key"
	certtool --generate-self-signed --load-privkey "$1.key" \
	    --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
}

# leaf NAME CA CN DNS [IP] [expired]
leaf() {
	{
		echo "cn = \"$3\""
		echo "organization = \"acsmail tests\""
		echo "dns_name = \"$4\""
		[ -n "${5:-}" ] && echo "ip_address = \"$5\""
		if [ -n "${6:-}" ]; then
			echo 'activation_date = "2001-01-01 00:00:00"'
			echo 'expiration_date = "2002-01-01 00:00:00"'
		else
			echo "expiration_days = 3650"
		fi
		echo "tls_www_server"
		echo "signing_key"
		echo "encryption_key"
	} > "$1.tmpl"
	key "$1.key"
	certtool --generate-certificate --load-privkey "$1.key" \
	    --load-ca-certificate "$2.pem" --load-ca-privkey "$2.key" \
	    --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
}

ca ca "acsmail test CA"
ca other-ca "unrelated test CA"
leaf server ca localhost localhost 127.0.0.1
leaf untrusted other-ca localhost localhost 127.0.0.1
leaf wrongname ca wrong.example wrong.example
leaf expired ca localhost localhost 127.0.0.1 expired
rm -f ./*.tmpl
chmod 644 ./*.pem
