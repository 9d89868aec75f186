#!/bin/sh
#
# Installs the Debian packages the build, the tests and the demo need.
# As root on Debian or Ubuntu, missing packages are installed with
# apt-get; otherwise the exact command to run is printed.
#
# usage: tools/deps.sh [build|test|bench|fuzz|valgrind|deb]

set -e

what=${1:-build}

pkgs="nginx nginx-dev liblmdb-dev libsodium-dev zlib1g-dev libjansson-dev
      libcsv-dev libpq-dev pkg-config make gcc"

case "$what" in
test)
    # make test and make test-matrix also build nginx from its release
    # tarballs (../shared/nginx): PCRE2, OpenSSL and zlib for its modules
    pkgs="$pkgs lmdb-utils libcmocka-dev perl curl cppcheck
          libpcre2-dev libssl-dev tar gzip python3
          python3-prometheus-client"
    # the follower's tests start PostgreSQL servers of their own
    pkgs="$pkgs postgresql"
    # t/install/packages.t builds, lints and installs the packages
    pkgs="$pkgs dpkg-dev debhelper fakeroot lintian apt"
    ;;
deb)
    # make deb: dpkg-buildpackage, debhelper (dh-sequence-nginx is in
    # nginx-dev); make test-install also runs lintian
    pkgs="$pkgs dpkg-dev debhelper fakeroot lintian apt"
    ;;
bench)
    pkgs="$pkgs lmdb-utils curl wrk valgrind gnuplot-nox apache2-utils perl
          time postgresql"
    ;;
fuzz)
    # make fuzz: clang and its libFuzzer runtime (-fsanitize=fuzzer)
    pkgs="$pkgs clang libclang-rt-dev"
    ;;
valgrind)
    pkgs="$pkgs valgrind"
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "apikey: not a Debian system; install the equivalents of:" >&2
    echo "  $pkgs" | tr -s ' \n' ' ' >&2
    echo >&2
    exit 0
fi

missing=
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"
    then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "apikey: missing Debian packages:$missing" >&2
    echo "apikey: run as root: apt-get install$missing" >&2
    exit 1
fi

echo "apikey: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive

# the packages must not start services (the distribution's nginx would
# take port 80): policy-rc.d says no to invoke-rc.d during the install

# it is removed on every way out: the end, an error (set -e), or make
# killed by INT, TERM or HUP; the traps are set before the file is made

if [ ! -e /usr/sbin/policy-rc.d ]; then
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
fi

apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2

