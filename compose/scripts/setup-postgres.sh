#!/bin/sh
# Creates Temporal's databases in PostgreSQL and brings their schemas up to date (idempotent).
set -eu
nc -z -w 10 "$POSTGRES_SEEDS" "$DB_PORT"
# create and setup-schema fail when a previous start already did them (the data is in a
# named volume); update-schema then reports any real problem.
for db in temporal temporal_visibility; do
  case $db in temporal) dir=temporal ;; *) dir=visibility ;; esac
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$DB_PORT" --db "$db" create || true
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$DB_PORT" --db "$db" setup-schema -v 0.0 || true
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$DB_PORT" --db "$db" \
    update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
done
# The broker's own database; the broker applies its schema itself.
temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$DB_PORT" --db keylease create || true
echo "Temporal schema and the broker's database ready"
