# The test servers and the helpers that reach them, shared by scripts/fresh-test-dbs.sh (empties
# them before a run) and scripts/test-leftovers.sh (checks a run left them empty). Sourced, not run.
#
# The servers are scripts/services.sh's, or DTX_TEST_PG_URL / DTX_TEST_MYSQL_URL / DTX_TEST_REDIS_URL.
# DTX_FRESH_DB_PATTERN is a SQL LIKE pattern for the suite's own databases (default 'dtx\_%');
# DTX_FRESH_DB_EXTRA one more name (default dtm_barrier, the name dtm's Python client hard-codes;
# empty for none).

PG_URL=${DTX_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/dtx_test}
MY_URL=${DTX_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/dtx_test}
REDIS_URL=${DTX_TEST_REDIS_URL:-redis://127.0.0.1:6379}
PATTERN=${DTX_FRESH_DB_PATTERN:-dtx\\_%}
EXTRA=${DTX_FRESH_DB_EXTRA-dtm_barrier}

die() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; exit 1; }
ident() { [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "not a plain database name: '$1'"; printf '%s' "$1"; }
[[ -z $EXTRA ]] || ident "$EXTRA" >/dev/null

# scheme://user:pass@host:port/db?x -> parts
url_db() { local r=${1#*://}; r=${r#*/}; [[ $r == "$1" || $r == "${1#*://}" ]] && r=""; r=${r%%\?*}; printf '%s' "$r"; }
url_userinfo() { local r=${1#*://}; r=${r%%/*}; [[ $r == *@* ]] && printf '%s' "${r%@*}"; true; }
url_hostport() { local r=${1#*://}; r=${r%%/*}; printf '%s' "${r##*@}"; }
url_port() { local hp; hp=$(url_hostport "$1"); [[ $hp =~ :([0-9]+)$ ]] && printf '%s' "${BASH_REMATCH[1]}" || printf '%s' "$2"; }
url_host() { local hp; hp=$(url_hostport "$1"); hp=${hp%:*}; hp=${hp#[}; printf '%s' "${hp%]}"; }

# PostgreSQL: `pg SQL` runs on the server's postgres database; `pg_db_url NAME` is a database's URL.
pg_db=$(ident "$(url_db "$PG_URL")")
pg_admin_url="${PG_URL%%\?*}"
pg_admin_url="${pg_admin_url%/*}/postgres"
pg() { PGCONNECT_TIMEOUT=5 psql -X -w -q -tA -v ON_ERROR_STOP=1 -d "$pg_admin_url" -c "$1" </dev/null; }
pg_db_url() { local u="${PG_URL%%\?*}"; printf '%s/%s' "${u%/*}" "$1"; }

# MariaDB / MySQL: `my SQL` runs on the server, tab-separated, no column names.
my_db=$(ident "$(url_db "$MY_URL")")
my_user=$(url_userinfo "$MY_URL"); my_pass=""
[[ $my_user == *:* ]] && { my_pass=${my_user#*:}; my_user=${my_user%%:*}; }
my_client=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client on PATH"
my() { MYSQL_PWD="$my_pass" "$my_client" --no-defaults --connect-timeout=5 --protocol=TCP -h "$(url_host "$MY_URL")" -P "$(url_port "$MY_URL" 3306)" -u "${my_user:-root}" -N -B -e "$1" </dev/null; }

# Redis: the URL without its password, for messages.
redis_url_shown() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$REDIS_URL"; }
