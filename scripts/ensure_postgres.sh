#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432: start the local cluster when it is
# installed but down, install it from Debian's packages when it is absent.
set -euo pipefail
HOST="${PGHOST:-127.0.0.1}"; PORT="${PGPORT:-5432}"
SUDO=""; if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

if command -v pg_isready >/dev/null && ready; then exit 0; fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "PostgreSQL is not installed: installing it from Debian's packages..."
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql >/dev/null
fi

VERSION="$(ls /etc/postgresql | sort -V | tail -n1)"
echo "Starting PostgreSQL $VERSION..."
$SUDO pg_ctlcluster --skip-systemctl-redirect "$VERSION" main start || true
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "PostgreSQL does not answer on $HOST:$PORT" >&2
exit 1
