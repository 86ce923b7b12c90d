#!/usr/bin/env bash
# Prepares a headless Wine prefix in which Go Windows binaries run, and prints
# its path on stdout (everything else goes to stderr).
#
#   .ci/wine/setup.sh             use the installed wine64 and mingw-w64
#   .ci/wine/setup.sh --install   apt-get install them first when missing (root)
#
# The prefix is $WINEPREFIX, or .wine/ at the top of the repository. Running it
# again is cheap: an initialised prefix is kept and only the shim is refreshed.
# See README.md next to this file for why the shim exists.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# wine64 recommends the wine package, which provides the wine command.
packages=(wine64 gcc-mingw-w64-x86-64-win32)

log() { printf 'wine-setup: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install=false
case "${1:-}" in
"") ;;
--install) install=true ;;
*) die "unknown argument ${1}; usage: $0 [--install]" ;;
esac

have_tools() {
	command -v wine >/dev/null && command -v wineserver >/dev/null &&
		command -v x86_64-w64-mingw32-gcc >/dev/null
}

# The first install on a fresh image sometimes fails (a mirror hiccup or a
# dpkg trigger) and succeeds when repeated, so each apt step is retried.
apt_retry() {
	local attempt
	for attempt in 1 2 3; do
		if "$@" >&2; then
			return 0
		fi
		log "attempt $attempt of 3 failed: $*"
		# An interrupted install leaves dpkg asking for this before the next.
		dpkg --configure -a >&2 || true
		((attempt == 3)) || sleep $((attempt * 5))
	done
	return 1
}

if ! have_tools; then
	if ! $install; then
		die "wine or mingw-w64 is missing; install them with: apt-get install ${packages[*]} (or run $0 --install as root)"
	fi
	[[ $(id -u) -eq 0 ]] || die "--install needs root to run apt-get"
	export DEBIAN_FRONTEND=noninteractive
	log "installing ${packages[*]}"
	apt_retry apt-get update -q || die "apt-get update failed 3 times"
	apt_retry apt-get install -y -q "${packages[@]}" ||
		die "apt-get install ${packages[*]} failed 3 times"
	have_tools || die "installed ${packages[*]} but wine or x86_64-w64-mingw32-gcc is still not on PATH"
fi

export WINEPREFIX=${WINEPREFIX:-$repo/.wine}
export WINEDEBUG=-all
# Headless: never talk to an X server, even when the caller has one.
unset DISPLAY WAYLAND_DISPLAY

mkdir -p "$WINEPREFIX"
WINEPREFIX=$(cd "$WINEPREFIX" && pwd)
# go test runs package binaries in parallel and each may call this through
# the exec wrapper; one initialisation at a time.
exec 9>"$WINEPREFIX/.portbroker-setup.lock"
flock 9

if [[ ! -f $WINEPREFIX/system.reg ]]; then
	log "initialising $WINEPREFIX"
	# Skip the Mono and Gecko installers: they would ask through a dialog.
	WINEDLLOVERRIDES="mscoree,mshtml=" wineboot --init >&2 ||
		die "wineboot --init failed for $WINEPREFIX"
	# The null display driver lets programs create windows with no X server,
	# so tests can exercise WM_CLOSE.
	wine reg add 'HKCU\Software\Wine\Drivers' /v Graphics /d null /f >/dev/null 2>&1 ||
		die "could not select the null display driver in $WINEPREFIX"
	# Let the server write the registry out before anyone else uses it.
	wineserver --wait
fi

# Go 1.22+ needs bcryptprimitives.dll!ProcessPrng; Wine 8.0 has no such DLL.
system32=$WINEPREFIX/drive_c/windows/system32
[[ -d $system32 ]] || die "$system32 is missing: $WINEPREFIX is not a 64-bit Wine prefix; remove it and run again"
tmp=$(mktemp "$WINEPREFIX/.bcryptprimitives.XXXXXX")
trap 'rm -f "$tmp"' EXIT
x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -shared -s -nostdlib \
	-Wl,--no-insert-timestamp -Wl,--disable-auto-image-base -Wl,-e,DllMain \
	-o "$tmp" "$here/processprng.c" "$here/bcryptprimitives.def" -lkernel32 -ladvapi32 ||
	die "building the ProcessPrng shim failed"
if ! cmp -s "$tmp" "$system32/bcryptprimitives.dll"; then
	mv "$tmp" "$system32/bcryptprimitives.dll"
	log "installed bcryptprimitives.dll shim in $system32"
fi

# Go 1.26 removes files (os.RemoveAll, hence every t.TempDir cleanup)
# with NtSetInformationFile(FileDispositionInformationEx), falling back to
# the older call only on the statuses Windows returns when it lacks that
# class. Wine 8.0 returns STATUS_NOT_IMPLEMENTED instead. A go build overlay
# adds that status to the fallback in the Windows test builds, leaving the Go
# installation untouched; gotest passes it to go test.
command -v go >/dev/null || die "go is not on PATH"
overlay=$WINEPREFIX/go-overlay
mkdir -p "$overlay"
src=$(go env GOROOT)/src/internal/syscall/windows/at_windows.go
fallback='^([[:space:]]*)case STATUS_INVALID_INFO_CLASS, (// the operating system)'
if [[ -f $src ]] && grep -q 'NOT_IMPLEMENTED' "$src"; then
	printf '{"Replace":{}}\n' >"$overlay/overlay.json" # this Go falls back already
elif [[ -f $src ]] && grep -qE "$fallback" "$src"; then
	sed -E "s|$fallback|\\1case NTStatus(0xC0000002), // STATUS_NOT_IMPLEMENTED, from Wine 8.0\\n\\1\\tSTATUS_INVALID_INFO_CLASS, \\2|" \
		"$src" >"$overlay/at_windows.go"
	printf '{"Replace":{"%s":"%s"}}\n' "$src" "$overlay/at_windows.go" >"$overlay/overlay.json"
else
	log "warning: $src has no FileDispositionInformationEx fallback to extend; os.RemoveAll may fail under Wine"
	printf '{"Replace":{}}\n' >"$overlay/overlay.json"
fi

printf '%s\n' "$WINEPREFIX"
