#!/usr/bin/env bash
# Builds target/debian/mcvpn_<version>_amd64.deb: the binary, man pages and shell
# completions generated from its own command line (`mcvpn debug gen-docs`), the hub and
# target units, the sysctl file, an example hub.toml. Installs cargo-deb (pinned) when
# it is missing. MCVPN_NO_BUILD=1 packages the existing target/release/mcvpn.
# Prints the .deb's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
CARGO_DEB_VERSION=3.6.2

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi
[ "${MCVPN_NO_BUILD:-}" = 1 ] || cargo build --release -p mcvpn >&2

assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/units"
# The release profile keeps line tables for backtraces; the package ships it stripped.
strip --strip-unneeded -o "$assets/mcvpn" target/release/mcvpn
target/release/mcvpn debug gen-docs --out "$assets" >&2
# Debian policy: man pages compressed, without a timestamp (reproducible).
gzip -9n "$assets"/man1/*.1
# The units in systemd/ name /usr/local/bin (a binary installed by hand, see README);
# the package's binary is /usr/bin/mcvpn and its documents under /usr/share.
for unit in mcvpn-hub.service mcvpn-target.service mcvpn-monitor.service; do
    sed 's#/usr/local/#/usr/#g' "systemd/$unit" >"$assets/units/$unit"
done

cargo deb -p mcvpn --no-build >&2
deb=$(ls -t target/debian/mcvpn_*_amd64.deb | head -1)
[ -s "$deb" ] || { echo "package.sh: cargo deb made no package" >&2; exit 1; }
echo "$deb"
