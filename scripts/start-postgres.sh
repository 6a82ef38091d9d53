#!/usr/bin/env bash
# Makes sure a PostgreSQL server is up on 127.0.0.1:5432 with the role the broker's
# tests use (keylease/keylease, allowed to create databases), and keylease_hostile, whose
# password holds every character a URL gives a meaning to (the e2e test
# compose_postgres logs in with it; it keeps the same password). Installs Debian's
# postgresql when it is missing (needs root, as on the project's machines). Idempotent.
set -euo pipefail

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
  if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    pg_createcluster "$version" main >/dev/null
    cluster="$version main"
  fi
  # The package's post-install may already have started it.
  # shellcheck disable=SC2086
  pg_up || pg_ctlcluster $cluster start
  for _ in $(seq 1 100); do pg_up && break; sleep 0.1; done
  pg_up || { echo "start-postgres: PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi

su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'keylease'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE keylease LOGIN CREATEDB PASSWORD 'keylease'\""
hostile_password='p@ss:w/rd?#%41 $HOME&y=z'
su postgres -c "psql -q -v ON_ERROR_STOP=1" >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keylease_hostile') THEN
    CREATE ROLE keylease_hostile LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE keylease_hostile PASSWORD '$hostile_password';
SQL
# Tests do not drop the databases they make (~8 MB each, ~40 a run of make test):
# drop those left by earlier runs once they are 3 hours old, which no run still
# uses. A database's PG_VERSION file is written once, when it is created.
stale=$(su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname ~ '^(broker_test|kill_broker|scale_out|compose_pg|keylease_bench)_[0-9a-f_]+\$' AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '3 hours'\"")
for database in $stale; do
  su postgres -c "psql -qc 'DROP DATABASE IF EXISTS $database WITH (FORCE)'" >/dev/null
done
echo "postgres://keylease:keylease@127.0.0.1:5432/postgres"
