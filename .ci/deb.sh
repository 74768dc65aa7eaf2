#!/usr/bin/env bash
# Builds the Debian package of synscope from a built binary:
#
#   cargo build --release --locked
#   .ci/deb.sh target/release/synscope [OUTDIR]     -> OUTDIR/synscope_VERSION_ARCH.deb
#
# or with cargo-deb, from the same files (Cargo.toml's [package.metadata.deb]
# lists them; this script writes them to target/deb-assets first):
#   .ci/deb.sh --assets target/release/synscope && cargo deb --no-build
#
# It holds /usr/bin/synscope, the man pages (synscope(1) and one per
# command, from `synscope man`), the bash, zsh and fish completions (from
# `synscope completions`), the licences and the changelog. No capabilities
# are set on install: scan and diagnose need root, or, as a documented
# post-install step (README.Debian in the package):
#   sudo setcap cap_net_raw,cap_net_admin+eip /usr/bin/synscope
# Only dpkg-deb and gzip are needed (no cargo-deb). tests/package.rs builds
# and installs it in CI.
set -euo pipefail

assets_only=false
if [ "${1:-}" = --assets ]; then
    assets_only=true
    shift
fi
bin=${1:?usage: .ci/deb.sh [--assets] BINARY [OUTDIR]}
out=${2:-.}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$bin" "$stage/usr/bin/synscope"
man="$stage/usr/share/man/man1"
mkdir -p "$man"
"$bin" man | gzip -9n >"$man/synscope.1.gz"
for c in analyze scan diagnose watch completions man; do
    "$bin" man "$c" | gzip -9n >"$man/synscope-$c.1.gz"
done
install -d "$stage/usr/share/bash-completion/completions" \
    "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$stage/usr/share/bash-completion/completions/synscope"
"$bin" completions zsh >"$stage/usr/share/zsh/vendor-completions/_synscope"
"$bin" completions fish >"$stage/usr/share/fish/vendor_completions.d/synscope.fish"
doc="$stage/usr/share/doc/synscope"
install -d "$doc"
gzip -9nc "$root/CHANGELOG.md" >"$doc/changelog.gz"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: synscope"
    echo
    echo "Files: *"
    echo "Copyright: 2026 the synscope developers"
    echo "License: MIT or Apache-2.0"
    echo " The MIT licence:"
    sed 's/^/ /; s/^ $/ ./' "$root/LICENSE-MIT"
    echo " ."
    echo " The Apache licence, version 2.0: /usr/share/common-licenses/Apache-2.0"
} >"$doc/copyright"
cat >"$doc/README.Debian" <<'EOF'
synscope for Debian
-------------------

scan and diagnose send raw SYN probes and capture the answers: run them
with sudo, or give the binary the two capabilities it needs once:

    sudo setcap cap_net_raw,cap_net_admin+eip /usr/bin/synscope

(any user can then scan; `sudo setcap -r /usr/bin/synscope` takes them
back). Without either, `--unprivileged` uses connect() probes. analyze
reads capture files and needs neither.
EOF
if $assets_only; then
    # The generated files, where [package.metadata.deb] finds them.
    assets="$root/target/deb-assets"
    rm -rf "$assets"
    mkdir -p "$assets"
    cp -r "$stage/usr/share" "$assets/"
    echo "$assets"
    exit 0
fi
size=$(du -sk "$stage/usr" | cut -f1)
install -d "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<EOF
Package: synscope
Version: $version
Architecture: $arch
Maintainer: the synscope developers <synscope@localhost>
Installed-Size: $size
Depends: libpcap0.8 (>= 1.10), libc6
Section: net
Priority: optional
Description: which part is at fault when a TCP connection is refused or hangs
 synscope sends TCP SYN probes (or reads pcap/pcapng captures of any client)
 and gives every (target, port) a verdict from the packets: open, refused,
 filtered or unreachable, with the reason, the responder and its distance.
 diagnose explains a failing HOST:PORT in plain language, with the evidence.
EOF
mkdir -p "$out"
deb="$out/synscope_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
