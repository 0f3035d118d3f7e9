#!/usr/bin/env bash
# Stop the hot standby started by scripts/start_replica.sh and delete its data directory (it is a copy of
# the primary; start_replica.sh makes a fresh one). The primary is not touched.
#
#   bash scripts/stop_replica.sh                 # the standby on port 5433
#   REPLICA_PORT=5434 bash scripts/stop_replica.sh
#   bash scripts/stop_replica.sh --keep          # stop it, keep its data directory
set -euo pipefail

REPLICA_PORT="${REPLICA_PORT:-5433}"
PRIMARY_HOST="${PRIMARY_HOST:-127.0.0.1}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1

say() { echo "[stop_replica] $*"; }
as_postgres() {
    if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"
    elif [ "$(id -un)" = "postgres" ]; then "$@"
    else sudo -u postgres "$@"; fi
}
as_root() { if [ "$(id -u)" = "0" ]; then "$@"; else sudo "$@"; fi; }

MAJOR="$(psql -X -At -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -d postgres -c 'SHOW server_version_num' 2>/dev/null || true)"
if [ -n "$MAJOR" ]; then MAJOR=$(( MAJOR / 10000 )); else MAJOR="$(ls /usr/lib/postgresql | sort -V | tail -n1)"; fi
BIN="/usr/lib/postgresql/$MAJOR/bin"
DATA="${REPLICA_DATA:-/var/lib/postgresql/$MAJOR/btl-replica-$REPLICA_PORT}"

exec 9>"/tmp/buy-the-look-replica-$REPLICA_PORT.lock"
flock -w 300 9 || { echo "[stop_replica] ERROR: the lock of port $REPLICA_PORT is held" >&2; exit 1; }

if [ ! -d "$DATA" ]; then
    say "no standby data directory $DATA: nothing to stop"
    exit 0
fi
if [ ! -f "$DATA/btl-replica" ]; then
    echo "[stop_replica] ERROR: $DATA was not made by scripts/start_replica.sh; not touching it" >&2
    exit 1
fi
if as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_postgres "$BIN/pg_ctl" -D "$DATA" stop -m fast -w -t 60 >/dev/null
    say "stopped the standby on port $REPLICA_PORT"
else
    say "the standby on port $REPLICA_PORT was not running"
fi
if [ "$KEEP" = 1 ]; then
    say "kept $DATA (start_replica.sh will replace it with a fresh copy)"
else
    as_root rm -rf "$DATA"
    say "deleted $DATA"
fi
