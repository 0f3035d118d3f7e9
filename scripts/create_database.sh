#!/usr/bin/env bash
# Create the shop's database (name from DATABASE_URL, default "shop") if it does not exist.
set -euo pipefail
URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shop}"
DB="${URL##*/}"; DB="${DB%%\?*}"
ADMIN_URL="${URL%/*}/postgres"
if ! psql "$ADMIN_URL" -tAX -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    echo "Creating database $DB"
    psql "$ADMIN_URL" -q -c "CREATE DATABASE \"$DB\""
fi
