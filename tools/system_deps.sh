#!/usr/bin/env bash
# The Debian/Ubuntu packages that socket-edge's set-up and extras need beyond python3 and make:
#   python3-venv   `make install` creates .venv (Debian's python3 has no ensurepip without it)
#   libusb-1.0-0   pyrealsense2 (the realsense extra) loads libusb-1.0.so.0 when it is imported
#   libudev1       … and libudev.so.1 (present on most systems, not on every minimal image)
# As root: installs the missing ones (one quiet apt-get update first). Otherwise: prints the one
# `sudo apt-get install` line and exits 0, so that the set-up goes on (the demo then streams a
# video instead of a RealSense recording, and the RealSense tests skip, each saying why).
# PYTHON (default python3) is the interpreter whose venv module is checked.
set -euo pipefail

PYTHON=${PYTHON:-python3}
missing=()

installed() {  # a Debian package is installed
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
for package in libusb-1.0-0 libudev1; do
    installed "$package" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "tools/system_deps.sh: not a Debian/Ubuntu system; install your system's packages for: ${missing[*]}" >&2
elif [ "$(id -u)" -ne 0 ]; then
    echo "tools/system_deps.sh: missing system packages; install them with: sudo apt-get install -y ${missing[*]}" >&2
else
    echo "tools/system_deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
