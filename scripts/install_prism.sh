#!/usr/bin/env bash
# Installs Stoplight Prism (the spec-driven mock many teams test against) from the npm registry for
# tests/test_root_served.py, once, into a cache outside the checkout; npm itself from Debian where missing.
# The test only runs the installed binary: nothing is downloaded while tests run.
set -euo pipefail
PRISM_VERSION=5.16.0
PREFIX="${XDG_CACHE_HOME:-$HOME/.cache}/airflow-provider-bloom/prism-$PRISM_VERSION"
if [ -x "$PREFIX/node_modules/.bin/prism" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "install_prism.sh: npm is missing; install Debian's 'npm' package as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends npm
fi
mkdir -p "$PREFIX"
npm install --no-audit --no-fund --silent --prefix "$PREFIX" "@stoplight/prism-cli@$PRISM_VERSION"
test -x "$PREFIX/node_modules/.bin/prism"
