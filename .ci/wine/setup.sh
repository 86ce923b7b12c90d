#!/usr/bin/env bash
# Prepares the headless Wine prefix $WINEPREFIX with the Wine 10 of the chroot
# $PORTBROKER_WINE_ROOT; prints the prefix on stdout (everything else goes to stderr). gotest runs
# it inside its mount namespace; running it again keeps an initialised prefix.
set -euo pipefail

log() { printf 'wine-setup: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

: "${PORTBROKER_WINE_ROOT:?run through .ci/wine/gotest}"
: "${WINEPREFIX:?run through .ci/wine/gotest}"
export WINEDEBUG=-all
unset XDG_RUNTIME_DIR
# Headless: never talk to an X server, even when the caller has one.
unset DISPLAY WAYLAND_DISPLAY

wine_in_root() { chroot "$PORTBROKER_WINE_ROOT" "$@"; }

mkdir -p "$WINEPREFIX"
exec 9>"$WINEPREFIX/.portbroker-setup.lock"
flock 9

if [[ ! -f $WINEPREFIX/system.reg ]]; then
	log "initialising $WINEPREFIX"
	# Skip the Mono and Gecko installers: they would ask through a dialog.
	WINEDLLOVERRIDES="mscoree,mshtml=" wine_in_root /usr/bin/wineboot --init >&2 ||
		die "wineboot --init failed for $WINEPREFIX"
	# The null display driver lets programs create windows with no X server,
	# so tests can exercise WM_CLOSE.
	wine_in_root /usr/bin/wine reg add 'HKCU\Software\Wine\Drivers' /v Graphics /d null /f >/dev/null 2>&1 ||
		die "could not select the null display driver in $WINEPREFIX"
	# Let the server write the registry out before anyone else uses it.
	wine_in_root /usr/bin/wineserver --wait
fi
[[ -d $WINEPREFIX/drive_c/windows/system32 ]] ||
	die "$WINEPREFIX is not a 64-bit Wine prefix; remove it and run again"

printf '%s\n' "$WINEPREFIX"
