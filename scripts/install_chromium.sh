#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test (tests/browser/), unless it is already there.
# Playwright drives this system browser; it never downloads a browser build of its own.
set -euo pipefail
CHROMIUM="${BLOOM_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_chromium.sh: $CHROMIUM is missing; install Debian's 'chromium' package as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium fonts-liberation
