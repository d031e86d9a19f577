#!/usr/bin/env bash
# Checks the Debian package and the systemd units end to end:
#
#   packaging/check.sh BINARY
#
#  1. builds the .deb from BINARY with packaging/build-deb.sh;
#  2. checks what it holds: the exact list of files, owner root, modes, the control fields,
#     the conffiles, the maintainer scripts;
#  3. installs it into a scratch root with dpkg (the maintainer scripts run outside a chroot
#     with $DPKG_ROOT set): the `ratchet` account exists, every file landed; installs it
#     again (the upgrade path) and a changed conffile is kept;
#  4. checks that the units fit together (socket names, the service they activate, the binary
#     path) and runs `systemd-analyze verify` on them as installed: any message fails;
#  5. prints `systemd-analyze security`'s overall exposure for ratchet.service and fails
#     above EXPOSURE_MAX;
#  6. when BINARY has --dump-config: the unit's ExecStart command line is accepted with the
#     installed configuration, and the example configuration with every setting
#     uncommented gives exactly the defaults;
#  7. removes, then purges the package: both succeed and leave nothing of it behind.
#
# Needs dpkg, dpkg-deb and systemd-analyze (systemd 250 or later); runs as root (dpkg sets
# owners), no systemd needs to be running. Exits non-zero with a message on the first failure.
set -euo pipefail

# systemd-analyze security's scale is 0.0 to 10.0; --threshold takes tenths.
EXPOSURE_MAX=2.0

nl=$'\n'
fail() {
  echo "packaging/check.sh: FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

[ $# -eq 1 ] || {
  echo "usage: $0 BINARY" >&2
  exit 2
}
[ -f "$1" ] && [ -x "$1" ] || fail "$1 is not an executable file"
binary=$(realpath "$1")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in dpkg dpkg-deb dpkg-query systemd-analyze; do
  command -v "$tool" >/dev/null ||
    fail "$tool not found (Debian packages: dpkg for dpkg*, systemd for systemd-analyze)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ratchet-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- 1. Build ---------------------------------------------------------------------------------
step "build"
# No compression: the check does not need it and the binary is large.
deb=$(DEB_COMPRESSION=none "$here/build-deb.sh" "$binary" "$tmp/out" 2>"$tmp/build.log") ||
  fail "build-deb.sh failed:${nl}$(cat "$tmp/build.log")"
[ -f "$deb" ] || fail "build-deb.sh printed '$deb', which is not a file"
echo "built $(basename "$deb")"

# --- 2. Contents and control data -------------------------------------------------------------
step "contents"
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = ratchet ] || fail "Package is '$(field Package)', expected ratchet"
arch=$(dpkg --print-architecture)
[ "$(field Architecture)" = "$arch" ] ||
  fail "Architecture is '$(field Architecture)', expected $arch"
[[ "$(field Depends)" == *libc6* ]] || fail "Depends '$(field Depends)' does not name libc6"
for f in Version Maintainer Description Installed-Size; do
  [ -n "$(field "$f")" ] || fail "control field $f is empty"
done
echo "Package: ratchet $(field Version) $arch; Depends: $(field Depends)"

conffiles=$(dpkg-deb --info "$deb" conffiles) || fail "the package has no conffiles"
[ "$conffiles" = /etc/ratchet/config.toml ] ||
  fail "conffiles lists '$conffiles', expected exactly /etc/ratchet/config.toml"

# Control members: mode and name (the tar listing's first and last columns).
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -tvf - | awk '$1 !~ /^d/ { print $1, $NF }' |
  sort -k 2)
expected_control="-rw-r--r-- ./conffiles
-rw-r--r-- ./control
-rw-r--r-- ./md5sums
-rwxr-xr-x ./postinst
-rwxr-xr-x ./postrm
-rwxr-xr-x ./prerm"
[ "$control" = "$expected_control" ] ||
  fail "control members differ from the expected ones:${nl}$(diff <(echo "$expected_control") <(echo "$control") || true)"

# Data: every entry owned by root, directories 0755, exactly these files with these modes.
listing=$(dpkg-deb --contents "$deb")
if bad=$(echo "$listing" | awk '$2 != "root/root"' | grep .); then
  fail "entries not owned by root/root:${nl}$bad"
fi
if bad=$(echo "$listing" | awk '$1 ~ /^d/ && $1 != "drwxr-xr-x"' | grep .); then
  fail "directories not 0755:${nl}$bad"
fi
files=$(echo "$listing" | awk '$1 !~ /^d/ { print $1, $NF }' | sort -k 2)
expected_files="-rw-r--r-- ./etc/ratchet/config.toml
-rw-r--r-- ./lib/systemd/system/ratchet-admin.socket
-rw-r--r-- ./lib/systemd/system/ratchet-ingress.socket
-rw-r--r-- ./lib/systemd/system/ratchet.service
-rwxr-xr-x ./usr/bin/ratchet
-rw-r--r-- ./usr/lib/sysusers.d/ratchet.conf
-rw-r--r-- ./usr/share/doc/ratchet/copyright"
[ "$files" = "$expected_files" ] ||
  fail "package files differ from the expected ones (< expected, > found):${nl}$(diff <(echo "$expected_files") <(echo "$files") || true)"
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/ratchet | cmp -s - "$binary" ||
  fail "the packaged /usr/bin/ratchet is not the binary given"
echo "$(echo "$files" | wc -l) files, modes and owners as expected; conffiles: $conffiles"

# --- 3. Install into a scratch root -----------------------------------------------------------
step "install into a scratch root"
root=$tmp/root
admindir=$root/var/lib/dpkg
mkdir -p "$admindir/updates" "$admindir/info"
: >"$admindir/status"
# --force-script-chrootless: run the maintainer scripts on this system with DPKG_ROOT=$root
# (the scratch root has no shell to chroot into). --ignore-depends: the scratch root's
# package database is empty, so the libraries of Depends are "missing" there.
depends=$(field Depends | sed 's/([^)]*)//g; s/[,|]/ /g' | xargs | tr ' ' ,)
dpkg_root() {
  dpkg --root="$root" --admindir="$admindir" --log=/dev/null --force-script-chrootless \
    --force-not-root --ignore-depends="$depends" "$@" </dev/null >"$tmp/dpkg.log" 2>&1 ||
    fail "dpkg $* failed (a maintainer script or dpkg itself):${nl}$(cat "$tmp/dpkg.log")"
}
status() { dpkg-query --admindir="$admindir" -W -f='${Status}' ratchet 2>/dev/null || true; }

dpkg_root --install "$deb"
sed 's/^/  | /' "$tmp/dpkg.log"
[ "$(status)" = "install ok installed" ] || fail "after install the status is '$(status)'"
account=$(grep '^ratchet:' "$root/etc/passwd") ||
  fail "postinst did not create the user ratchet in $root/etc/passwd"
grep -q '^ratchet:' "$root/etc/group" || fail "postinst did not create the group ratchet"
IFS=: read -r _ _ uid _ _ home shell <<<"$account"
[ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] || fail "ratchet's uid $uid is not a system uid"
[ "$home" = /var/lib/ratchet ] || fail "ratchet's home is $home, expected /var/lib/ratchet"
[ "$shell" = /usr/sbin/nologin ] || fail "ratchet's shell is $shell, expected /usr/sbin/nologin"
while read -r mode path; do
  path=${path#.}
  [ -f "$root$path" ] || fail "$path did not land in the scratch root"
  want=$([[ $mode == -rwx* ]] && echo 755 || echo 644)
  [ "$(stat -c %a "$root$path")" = "$want" ] ||
    fail "$path has mode $(stat -c %a "$root$path") after install, expected $want"
done <<<"$expected_files"
echo "installed; account: $account"

# The upgrade path (prerm upgrade, postinst configure OLD-VERSION), over a changed conffile.
echo "# changed by the administrator" >>"$root/etc/ratchet/config.toml"
dpkg_root --install "$deb"
[ "$(status)" = "install ok installed" ] || fail "after reinstall the status is '$(status)'"
grep -q '^# changed by the administrator' "$root/etc/ratchet/config.toml" ||
  fail "reinstalling replaced the administrator's /etc/ratchet/config.toml"
echo "reinstalled (upgrade path); the changed conffile was kept"

# --- 4. The units ---------------------------------------------------------------------------
step "units"
units=$root/lib/systemd/system
service=$units/ratchet.service
key() { sed -n "s/^$1=//p" "$2"; }
[ "$(key Sockets "$service")" = "ratchet-admin.socket ratchet-ingress.socket" ] ||
  fail "ratchet.service's Sockets= is '$(key Sockets "$service")'"
for name in admin ingress; do
  socket=$units/ratchet-$name.socket
  [ "$(key Service "$socket")" = ratchet.service ] ||
    fail "ratchet-$name.socket activates '$(key Service "$socket")', not ratchet.service"
  # The server maps LISTEN_FDNAMES entries named admin, ingress and fabric.
  [ "$(key FileDescriptorName "$socket")" = "$name" ] ||
    fail "ratchet-$name.socket's FileDescriptorName is '$(key FileDescriptorName "$socket")'"
done
read -r -a exec_start <<<"$(key ExecStart "$service")"
[ "${exec_start[0]}" = /usr/bin/ratchet ] ||
  fail "ExecStart runs ${exec_start[0]}, not the packaged /usr/bin/ratchet"

# --recursive-errors=no: judge these units, not the rest of a system the scratch root does
# not have (sysinit.target and the like). Every message counts: unknown keys are only
# warnings to systemd.
if ! verify=$(systemd-analyze verify --root="$root" --recursive-errors=no \
  "$units/ratchet.service" "$units/ratchet-admin.socket" "$units/ratchet-ingress.socket" 2>&1) ||
  [ -n "$verify" ]; then
  fail "systemd-analyze verify reports problems:${nl}$verify"
fi
echo "systemd-analyze verify: no problems"

# --- 5. Exposure ------------------------------------------------------------------------------
step "security"
threshold=$(awk -v m="$EXPOSURE_MAX" 'BEGIN { printf "%d", m * 10 }')
security_rc=0
security=$(systemd-analyze security --offline=true --root="$root" --threshold="$threshold" \
  --no-pager "$service" 2>&1) || security_rc=$?
score=$(echo "$security" | grep 'Overall exposure level for ratchet.service' || true)
[ -n "$score" ] || fail "systemd-analyze security printed no overall exposure:${nl}$security"
echo "$score"
[ "$security_rc" -eq 0 ] ||
  fail "ratchet.service's exposure is above $EXPOSURE_MAX:${nl}$security"

# --- 6. The configuration against the binary ----------------------------------------------------
step "configuration"
# Run from an empty directory with no RESTATE_* configuration in the environment, so nothing
# but the files under test and the defaults count.
run_binary() {
  (cd "$tmp" && env $(env | sed -n 's/^\(RESTATE_[A-Za-z0-9_]*\)=.*/-u \1/p') \
    timeout 60 "$@")
}
help=$(run_binary "$binary" server --help 2>/dev/null || true)
if ! grep -q -- '--dump-config' <<<"$help"; then
  echo "NOTE: $binary has no --dump-config: configuration not checked against it"
else
  # The service's own command line, pointed at the scratch root.
  args=()
  for a in "${exec_start[@]:1}"; do
    case $a in
      /etc/*) args+=("$root$a") ;;
      *) args+=("$a") ;;
    esac
  done
  effective=$(run_binary "$root/usr/bin/ratchet" "${args[@]}" --dump-config 2>"$tmp/err") ||
    fail "ratchet.service's command line fails (${exec_start[*]} --dump-config):${nl}$(cat "$tmp/err")"
  grep -qx 'base-dir = "/var/lib/ratchet"' <<<"$effective" ||
    fail "with the service's command line base-dir is not /var/lib/ratchet:${nl}$effective"

  # Every `#key = value` line of the example uncommented: still exactly the defaults.
  sed 's/^#\([a-z]\)/\1/' "$here/config.toml" >"$tmp/uncommented.toml"
  defaults=$(run_binary "$binary" server --dump-config 2>"$tmp/err") ||
    fail "ratchet server --dump-config failed:${nl}$(cat "$tmp/err")"
  documented=$(run_binary "$binary" server --config-file "$tmp/uncommented.toml" \
    --dump-config 2>"$tmp/err") ||
    fail "the example configuration, uncommented, is refused:${nl}$(cat "$tmp/err")"
  if grep -qiE 'unknown|deprecated' "$tmp/err"; then
    fail "the example configuration has keys the binary does not take:${nl}$(cat "$tmp/err")"
  fi
  [ "$defaults" = "$documented" ] ||
    fail "packaging/config.toml documents values that are not the defaults (< defaults, > documented):${nl}$(diff <(echo "$defaults") <(echo "$documented") || true)"
  echo "config.toml: every documented setting is at its default"
fi

# --- 7. Remove and purge ----------------------------------------------------------------------
step "remove and purge"
dpkg_root --remove ratchet
[ "$(status)" = "deinstall ok config-files" ] || fail "after remove the status is '$(status)'"
[ ! -e "$root/usr/bin/ratchet" ] || fail "remove left /usr/bin/ratchet behind"
[ -f "$root/etc/ratchet/config.toml" ] || fail "remove deleted the conffile (only purge may)"
dpkg_root --purge ratchet
[ -z "$(status)" ] || [ "$(status)" = "unknown ok not-installed" ] ||
  fail "after purge the status is '$(status)'"
# What may stay: dpkg's database and the account (Debian keeps system accounts).
left=$(cd "$root" && find . -path ./var/lib/dpkg -prune -o \( -type f -o -type l \) \
  ! -regex '\./etc/\(passwd\|group\|shadow\|gshadow\|\.pwd\.lock\)-?' -print)
[ -z "$left" ] || fail "purge left files behind:${nl}$left"
echo "removed and purged; the maintainer scripts exited 0"

echo "packaging/check.sh: OK"
