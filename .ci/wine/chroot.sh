#!/usr/bin/env bash
# Makes sure a Debian trixie chroot with Wine 10 exists, and prints its path on
# stdout (everything else goes to stderr).
#
#   .ci/wine/chroot.sh
#
# The chroot is $PORTBROKER_WINE_ROOT, by default
# /var/cache/portbroker-ci/trixie. A valid one (its marker names the packages
# below and its wine says wine-10) is reused as it is; anything else there is
# rebuilt with debootstrap from $PORTBROKER_DEBIAN_MIRROR. Building needs root
# and debootstrap (apt-get install debootstrap). See README.md next to this
# file for why Wine 10 comes from trixie.
set -euo pipefail

root=${PORTBROKER_WINE_ROOT:-/var/cache/portbroker-ci/trixie}
mirror=${PORTBROKER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
# wine provides the wine command; wine64 the 64-bit loader Go binaries need.
packages=(wine wine64)
marker_text="portbroker wine chroot: $suite ${packages[*]}"
marker=.portbroker-wine-chroot

log() { printf 'wine-chroot: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# in_chroot runs a command inside root with /proc and /dev, in a private
# mount namespace, so nothing stays mounted when it ends.
in_chroot() {
	local dir=$1
	shift
	unshare --mount --propagation private -- /bin/sh -eu -c '
		dir=$1; shift
		mount -t proc proc "$dir/proc"
		mount --rbind /dev "$dir/dev"
		exec chroot "$dir" "$@"
	' sh "$dir" "$@"
}

valid() {
	[[ -f $1/$marker && $(<"$1/$marker") == "$marker_text" ]] || return 1
	local version
	version=$(in_chroot "$1" /usr/bin/wine --version 2>/dev/null) || return 1
	[[ $version == wine-10.* ]]
}

mkdir -p "$(dirname "$root")"
# One builder at a time; the others wait and then reuse its chroot.
exec 8>"$root.lock"
flock 8

if valid "$root"; then
	printf '%s\n' "$root"
	exit 0
fi

[[ $(id -u) -eq 0 ]] || die "$root is missing or invalid, and building it needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing; install it with: apt-get install debootstrap"

new="$root.new"
rm -rf --one-file-system "$new"
trap 'rm -rf --one-file-system "$new"' EXIT
log "building a $suite chroot in $new from $mirror"
debootstrap --variant=minbase "$suite" "$new" "$mirror" >&2 ||
	die "debootstrap $suite into $new failed"
install_ok=false
for attempt in 1 2 3; do
	if in_chroot "$new" /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/sh -c \
		'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
		sh "${packages[@]}" >&2; then
		install_ok=true
		break
	fi
	log "attempt $attempt of 3 to install ${packages[*]} failed"
	((attempt == 3)) || sleep $((attempt * 5))
done
$install_ok || die "installing ${packages[*]} into $new failed 3 times"
printf '%s\n' "$marker_text" >"$new/$marker"
valid "$new" || die "$new has no working wine-10 after the install"

rm -rf --one-file-system "$root"
mv "$new" "$root"
trap - EXIT
log "ready: $(in_chroot "$root" /usr/bin/wine --version)"
printf '%s\n' "$root"
