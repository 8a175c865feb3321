#!/bin/sh
# Installs what the tests need, builds (with AddressSanitizer and UBSan), runs
# every test, checks the distribution tarball, and ends with "N passed, M failed".
# Run as root on Debian 12 (for apt-get); as another user it skips the install.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

packages="build-essential autoconf automake pkg-config libgnutls28-dev libconfuse-dev
	python3-aiosmtpd gnutls-bin valgrind php-cli mutt git git-email s-nail msmtp"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "== installing: $(echo $packages)"
	apt-get update -q >/dev/null &&
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		$packages >/dev/null || { echo "apt-get install failed"; exit 1; }
fi

failed_steps=0
step() {
	echo "== $*"
	"$@" || { echo "== FAILED: $*"; failed_steps=$((failed_steps + 1)); return 1; }
}

step autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
build="$top/build/check"
rm -rf "$build" && mkdir -p "$build"
(cd "$build" && step "$top/configure" -q --enable-sanitizers && step make -s -j2) &&
	(cd "$build" && make -j2 -k check >/dev/null 2>&1)

# the same program without sanitizers, under valgrind, for the delivery paths
plain="$top/build/plain"
valgrind_tests="tests/integration/test_delivery.py tests/integration/test_message.py
	tests/integration/test_policy.py"
rm -rf "$plain" && mkdir -p "$plain"
(cd "$plain" && step "$top/configure" -q && step make -s -j2) &&
	(cd "$plain" && make -j2 -k check TESTS="$(echo $valgrind_tests)" \
		ACSMAIL_TEST_BIN="$top/tests/valgrind-acsmail" \
		ACSMAIL_REAL_BIN="$plain/src/acsmail" >/dev/null 2>&1)

passed=0 failed=0 skipped=0
for trs in $(find "$build/tests" "$plain/tests" -name '*.trs' 2>/dev/null | sort); do
	skipped=$((skipped + $(grep -c '^:test-result: SKIP' "$trs")))
	p=$(grep -c '^:test-result: \(PASS\|XFAIL\)' "$trs")
	f=$(grep -c '^:test-result: \(FAIL\|XPASS\|ERROR\)' "$trs")
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -gt 0 ]; then
		log=${trs%.trs}.log
		echo "-- $(basename "$log"): $f failed"
		grep -A8 '^not ok' "$log" | head -60
	fi
done
[ -n "$(find "$build/tests" -name '*.trs' 2>/dev/null)" ] || failed=$((failed + 1))

# the release tarball builds and passes its own checks (SPEC §1)
if (cd "$build" && make -j2 distcheck >"$build/distcheck.out" 2>&1); then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
	echo "-- make distcheck failed:"; tail -30 "$build/distcheck.out"
fi
failed=$((failed + failed_steps))
if [ "$skipped" -gt 0 ]; then
	echo "-- $skipped skipped (a program or permission this machine lacks):"
	grep -h '# SKIP' $(find "$build/tests" "$plain/tests" -name '*.log' 2>/dev/null) | grep -v '^ok' | sort -u
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
