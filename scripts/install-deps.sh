#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian/Ubuntu machine, only what is
# missing: iproute2 (ip, tc), nftables (nft, for the NAT routers and the firewalls of the
# transport tests), iputils-ping, man-db, dpkg-dev and adduser (the package test), python3,
# procps, postgresql (the PostgreSQL store's tests), squid (the real HTTP proxy of netns-tests/121-proxy.sh) and openssl (its password
# file's hash), chromium, chromium-driver and python3-selenium (the console's browser test);
# and checks that a Rust toolchain is there to build mcvpn.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v ping >/dev/null || need+=(iputils-ping)
command -v python3 >/dev/null || need+=(python3)
command -v pgrep >/dev/null || need+=(procps)
command -v squid >/dev/null && [ -x /usr/lib/squid/basic_ncsa_auth ] || need+=(squid)
command -v openssl >/dev/null || need+=(openssl)
# scripts/package-test.sh: `man -w` for the installed pages, dpkg-shlibdeps for the .deb's
# library dependencies (cargo-deb's $auto), adduser for its maintainer scripts.
command -v man >/dev/null || need+=(man-db)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v adduser >/dev/null || need+=(adduser)
# netns-tests/67-metrics.sh: scrapes /metrics with curl and parses it with the reference
# Prometheus text parser (Debian's package, for the system python3).
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null || need+=(python3-prometheus-client)
# netns-tests/93-maintenance.sh: the hub on a simulated date (libfaketime).
command -v faketime >/dev/null || need+=(faketime)
# netns-tests/130-console.sh: the web console driven by a real browser (headless Chromium
# through chromium-driver and Debian's selenium, for the system python3).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
/usr/bin/python3 -c 'import selenium' 2>/dev/null || need+=(python3-selenium)
# A Japanese font, so the test's screenshots (docs/console-*.png) show the pages as read.
fc-list :lang=ja 2>/dev/null | grep -q . || need+=(fonts-ipafont-gothic)
# The PostgreSQL store's tests and the several-hubs tests (issue 15): a throw-away
# PostgreSQL 15 cluster (scripts/pg-throwaway.sh).
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    for c in "$HOME/.cargo/bin/cargo" /root/.cargo/bin/cargo /usr/local/cargo/bin/cargo; do
        [ -x "$c" ] && { echo "cargo found at $c: add $(dirname "$c") to PATH"; break; }
    done
    echo "mcvpn needs a Rust toolchain (cargo) to build: https://rustup.rs" >&2
    exit 1
fi
[ -e /dev/net/tun ] || { echo "/dev/net/tun is missing: load the tun module (modprobe tun)" >&2; exit 1; }
