#!/usr/bin/env bash
# Start a PostgreSQL hot standby (streaming read replica) of the local primary, on this machine.
#
#   bash scripts/start_replica.sh            # replica of 127.0.0.1:5432 on 127.0.0.1:5433
#   REPLICA_PORT=5434 bash scripts/start_replica.sh
#   bash scripts/stop_replica.sh             # stop it and delete its data directory
#
# What it does (each step printed):
#   1. checks the primary: it answers, wal_level is replica or logical, max_wal_senders > 0, and pg_hba.conf
#      lets the postgres user open a replication connection from 127.0.0.1 — if not, it appends ONE line
#      ("host replication postgres 127.0.0.1/32 trust") to the primary's pg_hba.conf and reloads it;
#   2. copies the whole cluster with `pg_basebackup -R -X stream` into a plain data directory
#      (default /var/lib/postgresql/<major>/btl-replica-<port>, owned by the postgres OS user): -R writes
#      standby.signal and primary_conninfo, so the copy starts as a standby streaming from the primary;
#   3. writes the standby's own postgresql.conf / pg_hba.conf (Debian keeps the primary's in /etc, outside
#      the data directory): its port, hot_standby = on, and the primary's max_connections & co (a standby
#      refuses to start with smaller values than its primary's);
#   4. starts it with pg_ctl as the postgres OS user and waits until it accepts connections and
#      pg_is_in_recovery() is true (and its WAL receiver streams).
#
# Idempotent: a standby already answering on the port is left as it is. A stopped one left behind is
# deleted and copied again (a fresh copy is cheap next to a standby that can no longer catch up).
# No replication slot is created: nothing on the primary keeps WAL for a replica that is gone.
# REPLICA_OWNER_PID (the test suite sets it): the replica belongs to that process; a later start deletes
# replicas whose owner process died without stopping them (a test run that was killed).
set -euo pipefail

PRIMARY_HOST="${PRIMARY_HOST:-127.0.0.1}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICA_PORT="${REPLICA_PORT:-5433}"
PGUSER_NAME="${REPLICATION_USER:-postgres}"
WAIT_SECONDS="${REPLICA_WAIT_SECONDS:-180}"
MARKER="btl-replica"   # file in the data directory: this script made it (only such directories are deleted)

say() { echo "[start_replica] $*"; }
die() { echo "[start_replica] ERROR: $*" >&2; exit 1; }

as_postgres() {
    if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"
    elif [ "$(id -un)" = "postgres" ]; then "$@"
    else sudo -u postgres "$@"; fi
}
as_root() { if [ "$(id -u)" = "0" ]; then "$@"; else sudo "$@"; fi; }
primary_sql() { psql -X -At -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PGUSER_NAME" -d postgres -c "$1"; }
replica_sql() { psql -X -At -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -c "$1" 2>/dev/null; }

command -v psql >/dev/null || die "psql is not installed (Debian: apt-get install postgresql)"
pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" || \
    die "the primary does not answer on $PRIMARY_HOST:$PRIMARY_PORT (start it: bash scripts/ensure_postgres.sh)"

MAJOR="$(( $(primary_sql 'SHOW server_version_num') / 10000 ))"
BIN="/usr/lib/postgresql/$MAJOR/bin"
[ -x "$BIN/pg_basebackup" ] || BIN="$(dirname "$(command -v pg_basebackup)")"
[ -x "$BIN/pg_ctl" ] || die "pg_ctl of PostgreSQL $MAJOR not found in $BIN"
DATA="${REPLICA_DATA:-/var/lib/postgresql/$MAJOR/btl-replica-$REPLICA_PORT}"

# One start/stop at a time per port (two test runs starting together).
LOCK="/tmp/buy-the-look-replica-$REPLICA_PORT.lock"
exec 9>"$LOCK"
flock -w 300 9 || die "another start/stop of the replica on port $REPLICA_PORT holds $LOCK"

# Replicas left by test runs that died without stopping them.
for other in /var/lib/postgresql/"$MAJOR"/btl-replica-*; do
    [ -f "$other/$MARKER" ] && [ -f "$other/btl-owner-pid" ] || continue
    owner="$(cat "$other/btl-owner-pid")"
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
        say "removing $other (left by process $owner, which is gone)"
        as_postgres "$BIN/pg_ctl" -D "$other" stop -m immediate -w >/dev/null 2>&1 || true
        as_root rm -rf "$other"
    fi
done

if [ "$(replica_sql 'SELECT pg_is_in_recovery()')" = "t" ]; then
    say "a standby already answers on 127.0.0.1:$REPLICA_PORT (pg_is_in_recovery() = true): nothing to do"
    exit 0
fi
if pg_isready -q -h 127.0.0.1 -p "$REPLICA_PORT"; then
    die "port $REPLICA_PORT is taken by a server that is not a standby; choose another with REPLICA_PORT=…"
fi

# 1. The primary must be able to feed a standby.
WAL_LEVEL="$(primary_sql 'SHOW wal_level')"
case "$WAL_LEVEL" in
    replica|logical) say "primary $PRIMARY_HOST:$PRIMARY_PORT: PostgreSQL $MAJOR, wal_level = $WAL_LEVEL" ;;
    *) die "the primary's wal_level is '$WAL_LEVEL': set wal_level = replica in its postgresql.conf and restart it" ;;
esac
SENDERS="$(primary_sql 'SHOW max_wal_senders')"
[ "$SENDERS" -gt 0 ] || die "the primary's max_wal_senders is 0: set it to 10 and restart it"

can_replicate() {
    psql -X -At "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PGUSER_NAME dbname=replication replication=true" \
        -c "IDENTIFY_SYSTEM" >/dev/null 2>&1
}
if can_replicate; then
    say "pg_hba.conf already allows replication connections from $PRIMARY_HOST"
else
    HBA="$(primary_sql 'SHOW hba_file')"
    LINE="host    replication     $PGUSER_NAME        127.0.0.1/32            trust"
    say "pg_hba.conf refuses replication connections: adding to $HBA: $LINE"
    printf '\n# added by buy-the-look scripts/start_replica.sh: a local hot standby streams from 127.0.0.1\n%s\n' "$LINE" \
        | as_root tee -a "$HBA" >/dev/null
    primary_sql 'SELECT pg_reload_conf()' >/dev/null
    for _ in $(seq 1 10); do can_replicate && break; sleep 0.5; done
    can_replicate || die "still no replication connection to $PRIMARY_HOST:$PRIMARY_PORT after reloading $HBA"
    say "reloaded the primary's configuration: replication connections from 127.0.0.1 are allowed"
fi

# 2. A fresh copy of the cluster.
if [ -e "$DATA" ]; then
    [ -f "$DATA/$MARKER" ] || die "$DATA exists and was not made by this script; remove it or set REPLICA_DATA"
    say "removing the stopped standby left in $DATA"
    as_postgres "$BIN/pg_ctl" -D "$DATA" stop -m immediate -w >/dev/null 2>&1 || true
    as_root rm -rf "$DATA"
fi
as_root mkdir -p "$(dirname "$DATA")"
as_root chown postgres:postgres "$(dirname "$DATA")" 2>/dev/null || true
SIZE="$(primary_sql "SELECT pg_size_pretty(sum(pg_database_size(datname))::bigint) FROM pg_database")"
say "pg_basebackup of $PRIMARY_HOST:$PRIMARY_PORT ($SIZE) into $DATA …"
STARTED=$(date +%s)
as_postgres "$BIN/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PGUSER_NAME" -D "$DATA" \
    -R -X stream -c fast --no-password
as_postgres touch "$DATA/$MARKER"
[ -n "${REPLICA_OWNER_PID:-}" ] && echo "$REPLICA_OWNER_PID" | as_postgres tee "$DATA/btl-owner-pid" >/dev/null
say "copied in $(( $(date +%s) - STARTED )) s; standby.signal and primary_conninfo written (-R)"

# 3. The standby's own configuration (the primary's lives in /etc on Debian, outside the data directory).
setting() { primary_sql "SHOW $1"; }
PRELOAD="$(setting shared_preload_libraries)"
as_postgres tee "$DATA/postgresql.conf" >/dev/null <<EOF
# Hot standby of $PRIMARY_HOST:$PRIMARY_PORT made by scripts/start_replica.sh (buy-the-look).
port = $REPLICA_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '/var/run/postgresql'
cluster_name = 'btl-replica-$REPLICA_PORT'
hot_standby = on
# the primary keeps the rows a long look query on the standby still reads (no cancelled queries)
hot_standby_feedback = on
# a standby refuses to start with smaller values than its primary's
max_connections = $(setting max_connections)
max_worker_processes = $(setting max_worker_processes)
max_wal_senders = $(setting max_wal_senders)
max_prepared_transactions = $(setting max_prepared_transactions)
max_locks_per_transaction = $(setting max_locks_per_transaction)
shared_preload_libraries = '$PRELOAD'
shared_buffers = 128MB
dynamic_shared_memory_type = posix
timezone = 'UTC'
EOF
as_postgres tee "$DATA/pg_hba.conf" >/dev/null <<EOF
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
EOF
as_postgres touch "$DATA/pg_ident.conf"

# 4. Start and wait for a streaming standby.
say "starting the standby on 127.0.0.1:$REPLICA_PORT (log: $DATA/replica.log)"
# (9>&-: the server must not inherit the lock's file descriptor, or it would hold the lock while it runs)
as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/replica.log" -w -t "$WAIT_SECONDS" start >/dev/null 9>&- \
    || { tail -n 30 "$DATA/replica.log" >&2 || true; die "the standby did not start"; }
DEADLINE=$(( $(date +%s) + WAIT_SECONDS ))
until [ "$(replica_sql 'SELECT pg_is_in_recovery()')" = "t" ] \
      && [ "$(replica_sql "SELECT status FROM pg_stat_wal_receiver")" = "streaming" ]; do
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
        tail -n 30 "$DATA/replica.log" >&2 || true
        die "the standby on port $REPLICA_PORT is not streaming after $WAIT_SECONDS s"
    fi
    sleep 0.5
done
say "ready: 127.0.0.1:$REPLICA_PORT is a hot standby (pg_is_in_recovery() = true), streaming from $PRIMARY_HOST:$PRIMARY_PORT"
say "stop it with: REPLICA_PORT=$REPLICA_PORT bash scripts/stop_replica.sh"
