#!/usr/bin/env bash
# Empties the test databases, so that the suite starts from what a fresh machine has: whatever an
# earlier run left (a barrier table in another layout, a schema, a key) cannot make a run pass
# that would fail on a new machine. .ci/run calls it after scripts/services.sh.
#
#   PostgreSQL  drops the test database (dtx_test, with its schemas) and every database whose
#               name matches DTX_FRESH_DB_PATTERN, then creates the test database again
#   MariaDB     drops the test database and every database matching DTX_FRESH_DB_PATTERN (the
#               suite's own: dtx_* areas, and dtm_barrier, the name dtm's Python client
#               hard-codes), then creates the test database again
#   Redis       FLUSHDB on the test database (the URL's /N, default 0)
#
# The servers are scripts/services.sh's, or DTX_TEST_PG_URL / DTX_TEST_MYSQL_URL /
# DTX_TEST_REDIS_URL. Destructive, so it only runs with --yes. DTX_FRESH_DB_PATTERN is a SQL
# LIKE pattern (default 'dtx\_%'); DTX_FRESH_DB_EXTRA one more name (default dtm_barrier; empty
# for none).
set -euo pipefail

[[ ${1:-} == --yes ]] || { printf 'usage: %s --yes   (drops the test databases; see the header)\n' "$0" >&2; exit 2; }

SCRIPT=fresh-test-dbs
# shellcheck source=lib/test-dbs.sh
source "$(dirname "$0")/lib/test-dbs.sh"
say() { printf 'fresh-test-dbs: %s\n' "$*"; }

# ---------------------------------------------------------------- PostgreSQL
mapfile -t pg_dbs < <(pg "select datname from pg_database where datname = '$pg_db' or datname like '$PATTERN' or datname = '$EXTRA'")
for d in "${pg_dbs[@]}"; do
  [[ -n $d ]] || continue
  # A prepared transaction an interrupted test left behind blocks DROP DATABASE, even WITH (FORCE):
  # roll those of this database back first (they belong to the tests, like the database).
  mapfile -t xids < <(pg "select gid from pg_prepared_xacts where database = '$(ident "$d")'")
  for x in "${xids[@]}"; do
    [[ -n $x && $x =~ ^[A-Za-z0-9_.:-]+$ ]] || continue
    PGCONNECT_TIMEOUT=5 psql -X -w -q -v ON_ERROR_STOP=1 -d "$(pg_db_url "$d")" -c "rollback prepared '$x'" </dev/null >/dev/null
  done
  ((${#xids[@]} == 0 || ${#xids[0]} == 0)) || say "postgres: rolled back ${#xids[@]} prepared transaction(s) left in $d"
  pg "drop database if exists \"$(ident "$d")\" with (force)"
done
pg "create database $pg_db encoding 'UTF8' lc_collate 'C' lc_ctype 'C' template template0"
say "postgres: dropped ${#pg_dbs[@]} database(s) (${pg_dbs[*]:-none}), created $pg_db empty"

# ---------------------------------------------------------------- MariaDB / MySQL
# XA transactions left prepared by interrupted tests (XA RECOVER is server-wide and does not say
# which database they touched: on the test server they are all the tests'): they would hold row
# locks and show up in the XA checks of later tests.
mapfile -t my_xids < <(my "xa recover" | awk -F'\t' '{print $4}')
for x in "${my_xids[@]}"; do
  [[ -n $x && $x =~ ^[A-Za-z0-9_.:-]+$ ]] || continue
  my "xa rollback '$x'" || true
done
((${#my_xids[@]} == 0 || ${#my_xids[0]} == 0)) || say "mariadb: rolled back ${#my_xids[@]} prepared XA transaction(s)"
mapfile -t my_dbs < <(my "select schema_name from information_schema.schemata where schema_name = '$my_db' or schema_name like '$PATTERN' or schema_name = '$EXTRA'")
for d in "${my_dbs[@]}"; do
  [[ -n $d ]] || continue
  my "drop database if exists \`$(ident "$d")\`"
done
my "create database $my_db character set utf8mb4"
say "mariadb: dropped ${#my_dbs[@]} database(s), created $my_db empty"

# ---------------------------------------------------------------- Redis
[[ $(redis-cli -u "$REDIS_URL" --no-auth-warning flushdb </dev/null) == OK ]] || die "redis: FLUSHDB failed on $(redis_url_shown)"
say "redis: emptied the test database"
