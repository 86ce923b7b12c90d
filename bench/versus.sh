#!/usr/bin/env bash
# Side by side in one run: portbrokerd's AcquireLease, an empty gRPC call on
# the same connections, and Google's portserver (python_portpicker's
# src/portserver.py) handing a port to the same live PID.
#
#   bench/versus.sh [PATH/TO/portserver.py] [brokerbench flags...]
#   PORTSERVER=PATH PYTHON=/usr/bin/python3 bench/versus.sh --state-dir /var/tmp
#
# Without a portserver.py (argument or $PORTSERVER), or without a python
# that has psutil, it says so and measures the broker against empty calls
# only. portserver's code is not part of this repository: clone it yourself.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
portserver=${PORTSERVER:-}
if [[ $# -gt 0 && $1 != -* ]]; then
	portserver=$1
	shift
fi
python=${PYTHON:-python3}

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$repo" && go build -o "$bin/portbrokerd" ./cmd/portbrokerd && go build -o "$bin/brokerbench" ./cmd/brokerbench)

args=(--versus --clients 1,8,16)
if [[ -z $portserver ]]; then
	echo "versus: no portserver.py given (argument or PORTSERVER); skipping portserver" >&2
elif [[ ! -f $portserver ]]; then
	echo "versus: $portserver does not exist; skipping portserver" >&2
elif ! "$python" -c 'import psutil' 2>/dev/null; then
	echo "versus: $python cannot import psutil, which portserver.py needs (Debian: apt-get install python3-psutil, then PYTHON=/usr/bin/python3); skipping portserver" >&2
else
	args+=(--portserver "$portserver" --python "$python")
fi
"$bin/brokerbench" "${args[@]}" "$@"
