#!/usr/bin/env bash
# Build and install the pgvector PostgreSQL extension (>= 0.8) from Debian trixie's source package.
# Does nothing when a suitable version is already available to the server.
set -euo pipefail

PG_CONFIG="${PG_CONFIG:-$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n1)}"
PSQL=(psql -h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}" -d postgres -tAX)

available_version() {
    "${PSQL[@]}" -c "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'" 2>/dev/null || true
}

version_ok() {
    local v="$1"
    [ -n "$v" ] && [ "$(printf '%s\n%s\n' "0.8.0" "$v" | sort -V | head -n1)" = "0.8.0" ]
}

current="$(available_version)"
if version_ok "$current"; then
    echo "pgvector $current already available"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
if [ -z "$PG_CONFIG" ] || [ ! -x "$PG_CONFIG" ]; then
    echo "pg_config not found: is PostgreSQL installed?" >&2
    exit 1
fi
PG_MAJOR="$("$PG_CONFIG" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"

WORK="$(mktemp -d /tmp/pgvector-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/sources"
echo "deb-src http://deb.debian.org/debian trixie main" > "$WORK/apt/sources/trixie-src.list"
APT_OPTS=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$WORK/apt/sources" -o Dir::State::Lists="$WORK/apt/lists")

echo "Installing build dependencies (postgresql-server-dev-$PG_MAJOR)..."
if ! dpkg -s "postgresql-server-dev-$PG_MAJOR" >/dev/null 2>&1; then
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "postgresql-server-dev-$PG_MAJOR" make gcc dpkg-dev >/dev/null
fi

echo "Fetching pgvector source from Debian trixie..."
$SUDO apt-get -o DPkg::Lock::Timeout=600 "${APT_OPTS[@]}" update -qq
( cd "$WORK" && apt-get "${APT_OPTS[@]}" source --download-only pgvector >/dev/null )
tarball="$(ls "$WORK"/pgvector_*.orig.tar.* | head -n1)"
mkdir -p "$WORK/src"
tar -xf "$tarball" -C "$WORK/src" --strip-components=1

echo "Building pgvector..."
make -s -C "$WORK/src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
$SUDO make -s -C "$WORK/src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install >/dev/null

current="$(available_version)"
if version_ok "$current"; then
    echo "pgvector $current installed"
else
    echo "pgvector installation failed (server reports '${current:-none}')" >&2
    exit 1
fi
