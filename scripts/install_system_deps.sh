#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Redis (the Celery broker) and PostgreSQL (the
# metadata database) for the CeleryExecutor end-to-end run (tests/e2e/test_celery_e2e.py).
# Installs Debian's packages where missing; does nothing when they are there. Services are not started
# here (and Debian's own clusters/services are not used): the test starts its own throwaway instances
# on free loopback ports in temporary folders and stops them at the end.
#
#   scripts/install_system_deps.sh          # as root (CI), or with sudo available
set -euo pipefail

have_redis() { command -v redis-server >/dev/null 2>&1; }
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; }

missing=()
have_redis || missing+=(redis-server)
have_postgres || missing+=(postgresql)
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install_system_deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi
echo "install_system_deps: installing ${missing[*]}" >&2
# Wait for another apt/dpkg run (e.g. another project script installing a browser) instead of failing.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
"${apt[@]}" update
# Should the packages start their own services (machines without a policy-rc.d), nothing uses them:
# the test's instances listen on other, free ports.
"${apt[@]}" -y install --no-install-recommends "${missing[@]}"
have_redis && have_postgres
