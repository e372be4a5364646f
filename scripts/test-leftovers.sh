#!/usr/bin/env bash
# Checks that the test suite left the test servers as scripts/fresh-test-dbs.sh left them: each test
# owns what it creates (its schema, database, table, key prefix) and removes it at the end. .ci/run
# calls it right after the suite; it lists whatever is left and fails if anything is.
#
#   PostgreSQL  no database of the suite's besides the test database; in it, no schema besides
#               public, no table, and no prepared transaction on the server
#   MariaDB     no database of the suite's besides the test database and DTX_FRESH_DB_EXTRA (which
#               dtm's Python client creates and keeps; its barrier table must be empty); no table
#               in the test database; no prepared XA transaction
#   Redis       no key in the test database
#
# Servers and names as in scripts/fresh-test-dbs.sh (scripts/lib/test-dbs.sh).
set -euo pipefail

SCRIPT=test-leftovers
# shellcheck source=lib/test-dbs.sh
source "$(dirname "$0")/lib/test-dbs.sh"

left=()
found() { # what, then the names (one per line) found; empty: nothing
  local what="$1" names="$2"
  [[ -z $names ]] || left+=("$what: $(tr '\n' ' ' <<<"$names" | cut -c1-400)")
}

found "postgres databases" "$(pg "select datname from pg_database where datname <> '$pg_db' and (datname like '$PATTERN' or datname = '$EXTRA')")"
pg_in_db() { PGCONNECT_TIMEOUT=5 psql -X -w -q -tA -v ON_ERROR_STOP=1 -d "$(pg_db_url "$pg_db")" -c "$1" </dev/null; }
found "postgres schemas in $pg_db" "$(pg_in_db "select nspname from pg_namespace where nspname <> 'public' and nspname <> 'information_schema' and nspname not like 'pg\_%'")"
found "postgres tables in $pg_db.public" "$(pg_in_db "select tablename from pg_tables where schemaname = 'public'")"
found "postgres prepared transactions" "$(pg "select gid || ' (' || database || ')' from pg_prepared_xacts")"

found "mariadb databases" "$(my "select schema_name from information_schema.schemata where schema_name <> '$my_db' and schema_name <> '$EXTRA' and schema_name like '$PATTERN'")"
found "mariadb tables in $my_db" "$(my "select table_name from information_schema.tables where table_schema = '$my_db'")"
if [[ -n $EXTRA && -n $(my "select 1 from information_schema.tables where table_schema = '$EXTRA' and table_name = 'barrier'") ]]; then
  found "mariadb rows in $EXTRA.barrier" "$(my "select concat(gid, ' ', branch_id, ' ', op) from \`$EXTRA\`.barrier limit 10")"
fi
found "mariadb prepared XA transactions" "$(my "xa recover" | awk -F'\t' '{print $4}')"

keys=$(redis-cli -u "$REDIS_URL" --no-auth-warning dbsize </dev/null) || die "redis: DBSIZE failed on $(redis_url_shown)"
[[ $keys =~ ^[0-9]+$ ]] || die "redis: DBSIZE answered '$keys' on $(redis_url_shown)"
if ((keys > 0)); then
  sample=$(redis-cli -u "$REDIS_URL" --no-auth-warning --scan </dev/null | head -10 || true)
  found "redis keys ($keys)" "${sample:-(could not list them)}"
fi

if ((${#left[@]} > 0)); then
  printf 'test-leftovers: the suite left these behind (each test must remove what it creates):\n' >&2
  printf '  %s\n' "${left[@]}" >&2
  exit 1
fi
printf 'test-leftovers: nothing left on the test servers\n'
