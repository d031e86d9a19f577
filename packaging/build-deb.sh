#!/usr/bin/env bash
# Builds the Debian package of Ratchet with plain dpkg-deb (no cargo-deb, no debhelper, so it
# works offline on any Debian or Ubuntu machine):
#
#   packaging/build-deb.sh BINARY OUTDIR [VERSION]
#
# BINARY is a built `ratchet` (e.g. target/release/ratchet), packaged unchanged. VERSION
# defaults to the version in Cargo.toml (a `-pre` suffix becomes `~pre`, which Debian sorts
# before the release). Prints the path of the .deb on stdout.
#
# The package installs:
#   /usr/bin/ratchet
#   /lib/systemd/system/ratchet.service, ratchet-admin.socket, ratchet-ingress.socket
#   /etc/ratchet/config.toml              (a conffile: every setting at its default)
#   /usr/lib/sysusers.d/ratchet.conf      (the `ratchet` account, created by postinst)
#   /usr/share/doc/ratchet/copyright
#
# Environment: DEB_COMPRESSION (dpkg-deb -Z: xz, gzip, zstd or none; default xz),
# DEB_COMPRESSION_LEVEL (dpkg-deb -z), DEB_MAINTAINER (the Maintainer field).
set -euo pipefail

die() {
  echo "build-deb: $*" >&2
  exit 1
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 BINARY OUTDIR [VERSION]" >&2
  exit 2
fi
binary=$1
outdir=$2
version=${3:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

[ -f "$binary" ] && [ -x "$binary" ] || die "$binary is not an executable file"
for tool in dpkg-deb dpkg; do
  command -v "$tool" >/dev/null || die "$tool not found (it comes with the dpkg package)"
done

if [ -z "$version" ]; then
  version=$(sed -n '/^\[package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' "$repo/Cargo.toml" |
    head -n 1)
  [ -n "$version" ] || die "no version in $repo/Cargo.toml; pass VERSION"
  version=${version/-/\~}
fi
[[ $version =~ ^[0-9][A-Za-z0-9.+~:-]*$ ]] || die "'$version' is not a Debian version"
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps wants the debian/<package>/ layout of a source tree.
pkg=$work/debian/ratchet

install -d -m 0755 "$pkg" "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
  "$pkg/etc/ratchet" "$pkg/usr/lib/sysusers.d" "$pkg/usr/share/doc/ratchet"
install -m 0755 "$binary" "$pkg/usr/bin/ratchet"
for unit in ratchet.service ratchet-admin.socket ratchet-ingress.socket; do
  install -m 0644 "$repo/systemd/$unit" "$pkg/lib/systemd/system/$unit"
done
install -m 0644 "$here/config.toml" "$pkg/etc/ratchet/config.toml"
install -m 0644 "$here/sysusers.conf" "$pkg/usr/lib/sysusers.d/ratchet.conf"
install -m 0644 "$here/copyright" "$pkg/usr/share/doc/ratchet/copyright"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$pkg/DEBIAN/$script"
done
printf '/etc/ratchet/config.toml\n' >"$pkg/DEBIAN/conffiles"

# Shared libraries the binary needs, with the versions its symbols require.
depends=
if command -v dpkg-shlibdeps >/dev/null; then
  printf 'Source: ratchet\n\nPackage: ratchet\nArchitecture: any\n' >"$work/debian/control"
  depends=$(cd "$work" && dpkg-shlibdeps -O -e debian/ratchet/usr/bin/ratchet 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p') || depends=
  rm "$work/debian/control"
fi
if [ -z "$depends" ]; then
  # Without dpkg-dev: the libraries a Rust binary links on glibc, unversioned.
  depends=libc6
  if command -v readelf >/dev/null && readelf -d "$binary" | grep -q 'libgcc_s\.so'; then
    depends="$depends, libgcc-s1"
  fi
fi

installed_kib=$(du -k -s --apparent-size --exclude=DEBIAN "$pkg" | cut -f 1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: ratchet
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-Ratchet maintainers <ratchet@localhost>}
Installed-Size: $installed_kib
Depends: $depends
Section: net
Priority: optional
Description: durable execution server for Restate SDK services
 Ratchet runs durable invocations of services written with the Restate SDKs
 (TypeScript, Rust, Python) and serves the admin API the restate CLI uses. One
 binary, one data directory, a write-ahead log that holds every step before
 anyone is told it happened.
 .
 This package runs it as the systemd service ratchet.service under its own
 account, with its state in /var/lib/ratchet, its configuration in
 /etc/ratchet/config.toml, and the admin (9070) and ingress (8080) ports held by
 socket units so that restarts refuse no connection.
CONTROL
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles"

# Checksums for dpkg --verify: every file outside /etc (only the conffile lives there, and
# dpkg tracks conffiles' checksums itself).
(cd "$pkg" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print0 |
  LC_ALL=C sort -z | xargs -0 md5sum | sed 's|  \./|  |') >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"

mkdir -p "$outdir"
deb="$outdir/ratchet_${version}_${arch}.deb"
compression=(-Z"${DEB_COMPRESSION:-xz}")
if [ -n "${DEB_COMPRESSION_LEVEL:-}" ]; then
  compression+=(-z"$DEB_COMPRESSION_LEVEL")
fi
# --root-owner-group: every file root:root whoever builds (no fakeroot needed).
dpkg-deb --root-owner-group "${compression[@]}" --build "$pkg" "$deb" >&2
echo "$deb"
