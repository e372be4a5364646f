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

PG_URL=${DTX_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/dtx_test}
MY_URL=${DTX_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/dtx_test}
REDIS_URL=${DTX_TEST_REDIS_URL:-redis://127.0.0.1:6379}
PATTERN=${DTX_FRESH_DB_PATTERN:-dtx\\_%}
EXTRA=${DTX_FRESH_DB_EXTRA-dtm_barrier}

say() { printf 'fresh-test-dbs: %s\n' "$*"; }
die() { printf 'fresh-test-dbs: %s\n' "$*" >&2; exit 1; }
ident() { [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "not a plain database name: '$1'"; printf '%s' "$1"; }
[[ -z $EXTRA ]] || ident "$EXTRA" >/dev/null

# scheme://user:pass@host:port/db?x -> parts
url_db() { local r=${1#*://}; r=${r#*/}; [[ $r == "$1" || $r == "${1#*://}" ]] && r=""; r=${r%%\?*}; printf '%s' "$r"; }
url_userinfo() { local r=${1#*://}; r=${r%%/*}; [[ $r == *@* ]] && printf '%s' "${r%@*}"; true; }
url_hostport() { local r=${1#*://}; r=${r%%/*}; printf '%s' "${r##*@}"; }
url_port() { local hp; hp=$(url_hostport "$1"); [[ $hp =~ :([0-9]+)$ ]] && printf '%s' "${BASH_REMATCH[1]}" || printf '%s' "$2"; }
url_host() { local hp; hp=$(url_hostport "$1"); hp=${hp%:*}; hp=${hp#[}; printf '%s' "${hp%]}"; }

# ---------------------------------------------------------------- PostgreSQL
pg_db=$(ident "$(url_db "$PG_URL")")
pg_admin_url="${PG_URL%%\?*}"
pg_admin_url="${pg_admin_url%/*}/postgres"
pg() { PGCONNECT_TIMEOUT=5 psql -X -w -q -tA -v ON_ERROR_STOP=1 -d "$pg_admin_url" -c "$1" </dev/null; }
mapfile -t pg_dbs < <(pg "select datname from pg_database where datname = '$pg_db' or datname like '$PATTERN' or datname = '$EXTRA'")
pg_db_url() { local u="${PG_URL%%\?*}"; printf '%s/%s' "${u%/*}" "$1"; }
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
my_db=$(ident "$(url_db "$MY_URL")")
my_user=$(url_userinfo "$MY_URL"); my_pass=""
[[ $my_user == *:* ]] && { my_pass=${my_user#*:}; my_user=${my_user%%:*}; }
client=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client on PATH"
my() { MYSQL_PWD="$my_pass" "$client" --no-defaults --connect-timeout=5 --protocol=TCP -h "$(url_host "$MY_URL")" -P "$(url_port "$MY_URL" 3306)" -u "${my_user:-root}" -N -B -e "$1" </dev/null; }
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
[[ $(redis-cli -u "$REDIS_URL" --no-auth-warning flushdb </dev/null) == OK ]] || die "redis: FLUSHDB failed on $(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$REDIS_URL")"
say "redis: emptied the test database"
