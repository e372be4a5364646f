#!/usr/bin/env bash
# Makes sure the services the test suite needs are up:
#   PostgreSQL  postgres://postgres@127.0.0.1:5432/dtx_test  (trust auth, max_prepared_transactions >= 64)
#   MariaDB     mysql://root@127.0.0.1:3306/dtx_test         (root, empty password)
#   Redis       redis://127.0.0.1:6379                       (appendonly yes, appendfsync always, noeviction)
#
# Idempotent and fast (well under 5 s) when everything is already up: each service is
# checked first and only what is missing is installed (Debian packages, as root),
# configured or started. Runs with no stdin; concurrent runs serialise on a lock file.
#
# To use servers of your own, set DTX_TEST_PG_URL / DTX_TEST_MYSQL_URL / DTX_TEST_REDIS_URL:
# a service whose variable is set is only checked to answer, never installed or started.
# shellcheck disable=SC2317  # the per-service functions are called indirectly ("${s}_ok" etc.)
set -euo pipefail

readonly PG_PORT=5432 MY_PORT=3306 REDIS_PORT=6379 HOST=127.0.0.1 DB=dtx_test
readonly PG_MAX_CONN=300 PG_MAX_PREPARED=128 MY_MAX_CONN=500
readonly LOCK_FILE="${DTX_SERVICES_LOCK:-/tmp/dtx-services.lock}"
readonly LOG_DIR="${DTX_SERVICES_LOG_DIR:-/tmp}"
readonly LOG="$LOG_DIR/dtx-services.log"
readonly MY_SOCKET=/run/mysqld/mysqld.sock

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ $(id -u) -eq 0 ]]; }
# Run a command, appending its output to the log; never reads stdin. Fd 9 (the lock) is
# closed so that daemons started from here do not hold the lock for ever.
logged() { "$@" </dev/null >>"$LOG" 2>&1 9>&-; }

# ---------------------------------------------------------------- checks (fast path)

my_client() {
  if have mariadb; then echo mariadb; elif have mysql; then echo mysql; else return 1; fi
}

# postgres: reachable over TCP with trust auth, dtx_test exists, XA-ready settings.
pg_ok() {
  have psql || return 1
  local out
  out=$(PGCONNECT_TIMEOUT=3 timeout 10 env -u PGPASSWORD -u PGSERVICE psql -X -w -qtA \
    -h "$HOST" -p "$PG_PORT" -U postgres -d "$DB" -c \
    "select (current_setting('max_prepared_transactions')::int >= 64
             and current_setting('max_connections')::int >= 200)::text" </dev/null 2>/dev/null) || return 1
  [[ $out == true ]]
}

# mariadb: root with an empty password over TCP, dtx_test exists, max_connections >= 300.
my_ok() {
  local client out
  client=$(my_client) || return 1
  out=$(timeout 10 env -u MYSQL_PWD -u MYSQL_HOST "$client" --no-defaults --connect-timeout=3 \
    --protocol=TCP -h "$HOST" -P "$MY_PORT" -u root -N -B \
    -e 'select @@max_connections >= 300' "$DB" </dev/null 2>/dev/null) || return 1
  [[ $out == 1 ]]
}

redis_ok() {
  have redis-cli || return 1
  local out
  out=$(timeout 5 env -u REDISCLI_AUTH redis-cli -h "$HOST" -p "$REDIS_PORT" ping </dev/null 2>/dev/null) || return 1
  [[ $out == PONG ]]
}

# The settings dtx's Redis store checks at start (docs/redis.md): without them it refuses to start,
# because Redis could lose transactions it acknowledged. Name/value pairs.
readonly REDIS_SAFE=(appendonly yes appendfsync always maxmemory-policy noeviction)

redis_cli() { timeout 5 env -u REDISCLI_AUTH redis-cli "$@" </dev/null 2>/dev/null; }

redis_durable() { # [redis-cli connection args...] -> 0 if every REDIS_SAFE setting holds
  local i got
  for ((i = 0; i < ${#REDIS_SAFE[@]}; i += 2)); do
    got=$(redis_cli "$@" config get "${REDIS_SAFE[i]}" | sed -n 2p) || return 1
    [[ $got == "${REDIS_SAFE[i + 1]}" ]] || return 1
  done
}

# Fast path too: a Redis that is already running (started by an older version of this script, or
# by the distribution) gets the settings with CONFIG SET, live; then they are read back.
redis_make_durable() {
  local -a at=(-h "$HOST" -p "$REDIS_PORT")
  redis_durable "${at[@]}" && return 0
  say "redis: CONFIG SET appendonly yes, appendfsync always, maxmemory-policy noeviction"
  local i
  for ((i = 0; i < ${#REDIS_SAFE[@]}; i += 2)); do
    redis_cli "${at[@]}" config set "${REDIS_SAFE[i]}" "${REDIS_SAFE[i + 1]}" >>"$LOG" || true
  done
  redis_durable "${at[@]}" && return 0
  warn "redis: could not set ${REDIS_SAFE[*]} with CONFIG SET (log: $LOG); dtx's Redis store refuses a server without them (docs/redis.md)"
  return 1
}

# ---------------------------------------------------------------- external servers (env vars)

# host and port of a URL like scheme://user:pass@host:port/db?x=y
url_host() { local r=${1#*://}; r=${r%%[/?]*}; r=${r##*@}; r=${r%:*}; r=${r#[}; echo "${r%]}"; }
url_port() {
  local r=${1#*://}; r=${r%%[/?]*}; r=${r##*@}
  if [[ $r =~ :([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; else echo "$2"; fi
}
# URL with the password replaced, for messages.
url_safe() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }
tcp_ok() { timeout 3 bash -c ">/dev/tcp/$1/$2" 2>/dev/null; }

check_external() { # name var default-port
  local name=$1 var=$2 url=${!2} host port
  host=$(url_host "$url"); port=$(url_port "$url" "$3")
  local ok=1
  case $name in
    postgres) if have pg_isready; then timeout 10 pg_isready -q -t 3 -d "$url" </dev/null || ok=0; else tcp_ok "$host" "$port" || ok=0; fi ;;
    redis)
      if have redis-cli; then
        [[ $(timeout 5 redis-cli -u "$url" --no-auth-warning ping </dev/null 2>/dev/null) == PONG ]] || ok=0
        if ((ok)) && ! redis_durable -u "$url" --no-auth-warning; then
          warn "redis: $(url_safe "$url") lacks ${REDIS_SAFE[*]} (or refuses CONFIG GET); dtx's Redis store will refuse it (docs/redis.md)"
        fi
      else tcp_ok "$host" "$port" || ok=0; fi ;;
    *) tcp_ok "$host" "$port" || ok=0 ;;
  esac
  if ((ok)); then
    say "$name: up ($var=$(url_safe "$url"))"
  else
    warn "$name: NOT answering at $(url_safe "$url") (from $var) - start that server, or unset $var to let scripts/services.sh run a local one"
    return 1
  fi
}

# ---------------------------------------------------------------- install

pg_bin_version() { # newest installed server version, e.g. 15
  local d v=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x $d ]] || continue
    d=${d#/usr/lib/postgresql/}; d=${d%%/*}
    if [[ -z $v ]] || ((d > v)); then v=$d; fi
  done
  [[ -n $v ]] && echo "$v"
}
pg_installed() { pg_bin_version >/dev/null && have psql && have pg_ctlcluster && have pg_lsclusters; }
my_installed() { [[ -x /usr/sbin/mariadbd ]] && my_client >/dev/null && have mariadb-install-db; }
redis_installed() { have redis-server && have redis-cli; }

apt_install() { # packages...
  have apt-get || { warn "services: apt-get not found; install $* yourself, or set DTX_TEST_*_URL"; return 1; }
  say "installing $* (apt-get; log: $LOG)"
  # Clusters and databases created by the packages get a UTF-8 locale.
  local -a env=(env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8)
  local -a opts=(-q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # A failed update is not fatal: the package lists already on the machine may do.
  logged "${env[@]}" apt-get "${opts[@]}" update || warn "services: 'apt-get update' failed (log: $LOG); trying the current package lists"
  if ! logged "${env[@]}" apt-get "${opts[@]}" install --no-install-recommends "$@"; then
    warn "services: 'apt-get install $*' failed:"; tail -n 25 "$LOG" >&2; return 1
  fi
}

# ---------------------------------------------------------------- postgres

write_if_changed() { # file content -> returns 0 if it wrote
  local file=$1 content=$2
  if [[ -f $file ]] && [[ $(<"$file") == "$content" ]]; then return 1; fi
  printf '%s\n' "$content" >"$file"
}

pg_admin() { # sql -> output; as the postgres OS user over the local socket (peer auth)
  (cd / && timeout 30 runuser -u postgres -- psql -X -qtA -p "$PG_PORT" -d postgres -c "$1" </dev/null)
}

pg_setup() {
  local ver cluster line status conf
  mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql && chmod 2775 /var/run/postgresql

  line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }')
  if [[ -z $line ]]; then
    ver=$(pg_bin_version)
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" { f = 1 } END { exit !f }'; then
      warn "postgres: cluster $ver/main exists but not on port $PG_PORT - set 'port = $PG_PORT' in /etc/postgresql/$ver/main/postgresql.conf, or set DTX_TEST_PG_URL"
      return 1
    fi
    say "postgres: creating cluster $ver/main on port $PG_PORT"
    logged env LANG=C.UTF-8 LC_ALL=C.UTF-8 pg_createcluster --port="$PG_PORT" --locale=C.UTF-8 --encoding=UTF8 "$ver" main ||
      { warn "postgres: pg_createcluster failed (log: $LOG)"; return 1; }
    line="$ver main"
  fi
  read -r ver cluster <<<"$line"
  conf=/etc/postgresql/$ver/$cluster

  # Settings: a conf.d drop-in (Debian's postgresql.conf includes conf.d).
  mkdir -p "$conf/conf.d"
  grep -qE "^\s*include_dir\s*=\s*'conf.d'" "$conf/postgresql.conf" || printf "\ninclude_dir = 'conf.d'\n" >>"$conf/postgresql.conf"
  write_if_changed "$conf/conf.d/90-dtx-test.conf" "# Written by dtx scripts/services.sh (test database settings).
listen_addresses = 'localhost'
max_connections = $PG_MAX_CONN
max_prepared_transactions = $PG_MAX_PREPARED" || true
  chown postgres:postgres "$conf/conf.d/90-dtx-test.conf"

  # Auth: trust for TCP connections from this machine, ahead of Debian's scram-sha-256 lines.
  if ! grep -q 'dtx-test: trust' "$conf/pg_hba.conf"; then
    local hba
    hba=$(printf '%s\n' \
      "# dtx-test: trust local TCP connections (written by dtx scripts/services.sh)" \
      "host    all             all             127.0.0.1/32            trust" \
      "host    all             all             ::1/128                 trust" \
      "host    replication     all             127.0.0.1/32            trust" \
      ""; cat "$conf/pg_hba.conf")
    printf '%s\n' "$hba" >"$conf/pg_hba.conf"
  fi

  status=0
  pg_ctlcluster "$ver" "$cluster" status >/dev/null 2>&1 || status=$?
  if ((status == 0)); then
    # Running: pick up hba/settings; restart only for settings that need it.
    logged pg_ctlcluster "$ver" "$cluster" reload || true
    sleep 0.3
    if [[ $(pg_admin "select count(*) from pg_settings where pending_restart") != 0 ]]; then
      say "postgres: restarting $ver/$cluster for new settings"
      logged setsid -w pg_ctlcluster "$ver" "$cluster" restart -- -w -t 60 || { pg_fail "$ver" "$cluster" restart; return 1; }
    fi
  else
    say "postgres: starting cluster $ver/$cluster"
    logged setsid -w pg_ctlcluster "$ver" "$cluster" start -- -w -t 60 || { pg_fail "$ver" "$cluster" start; return 1; }
  fi
  local i
  for ((i = 0; i < 60; i++)); do pg_isready -q -h "$HOST" -p "$PG_PORT" && break; sleep 0.5; done

  if [[ $(pg_admin "select count(*) from pg_database where datname = '$DB'") != 1 ]]; then
    # template0 + C collation: UTF-8 whatever the cluster's default encoding is.
    pg_admin "create database $DB encoding 'UTF8' lc_collate 'C' lc_ctype 'C' template template0" >/dev/null ||
      { warn "postgres: could not create database $DB"; return 1; }
  fi
}

pg_fail() {
  warn "postgres: pg_ctlcluster $1 $2 $3 failed; last lines of /var/log/postgresql/postgresql-$1-$2.log:"
  tail -n 15 "/var/log/postgresql/postgresql-$1-$2.log" >&2 2>/dev/null || true
}

# ---------------------------------------------------------------- mariadb

my_admin() { # runs SQL from stdin as root over the unix socket (unix_socket auth)
  timeout 60 env -u MYSQL_PWD "$(my_client)" --no-defaults -u root --socket="$MY_SOCKET" -N -B
}
my_socket_ok() { timeout 5 env -u MYSQL_PWD mysqladmin --no-defaults -u root --socket="$MY_SOCKET" ping </dev/null >/dev/null 2>&1; }

my_start() {
  say "mariadb: starting"
  # Detached, in its own session, with no inherited stdio (or callers piping our output would
  # hang) and without the lock fd.
  setsid /usr/sbin/mariadbd --user=mysql </dev/null >>/var/log/mysql/dtx-mariadbd.out 2>&1 9>&- &
  local i
  for ((i = 0; i < 120; i++)); do
    my_socket_ok && return 0
    sleep 0.5
  done
  warn "mariadb: did not come up in 60 s; last lines of /var/log/mysql/error.log:"
  tail -n 15 /var/log/mysql/error.log >&2 2>/dev/null || true
  return 1
}

my_stop() {
  say "mariadb: restarting for new settings"
  timeout 60 env -u MYSQL_PWD mysqladmin --no-defaults -u root --socket="$MY_SOCKET" shutdown </dev/null >>"$LOG" 2>&1 || true
}

my_setup() {
  local changed=0
  mkdir -p /run/mysqld /var/log/mysql
  chown mysql:mysql /run/mysqld
  chown mysql:adm /var/log/mysql 2>/dev/null || chown mysql /var/log/mysql
  if [[ -d /etc/mysql/mariadb.conf.d ]]; then
    write_if_changed /etc/mysql/mariadb.conf.d/90-dtx-test.cnf "# Written by dtx scripts/services.sh (test database settings).
[mysqld]
bind-address    = $HOST
port            = $MY_PORT
max_connections = $MY_MAX_CONN
log_error       = /var/log/mysql/error.log" && changed=1
  fi
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    say "mariadb: initialising /var/lib/mysql"
    logged mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db ||
      { warn "mariadb: mariadb-install-db failed (log: $LOG)"; return 1; }
  fi
  if my_socket_ok; then
    if ((changed)) && ! tcp_ok "$HOST" "$MY_PORT"; then my_stop; my_start || return 1; fi
  else
    my_start || return 1
  fi
  if ! my_admin >>"$LOG" 2>&1 <<SQL; then
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'root'@'::1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SET GLOBAL max_connections = GREATEST(@@GLOBAL.max_connections, $MY_MAX_CONN);
CREATE DATABASE IF NOT EXISTS $DB CHARACTER SET utf8mb4;
SQL
    warn "mariadb: could not set up root/$DB as root over $MY_SOCKET (log: $LOG)"
    return 1
  fi
}

# ---------------------------------------------------------------- redis

redis_setup() {
  mkdir -p /run/redis /var/log/redis /var/lib/redis
  chown redis:redis /run/redis /var/log/redis /var/lib/redis
  say "redis: starting"
  local conf=/etc/redis/redis.conf
  [[ -f $conf ]] || conf=""
  # daemonize: detaches and closes stdio.
  (cd / && runuser -u redis -- redis-server ${conf:+"$conf"} --daemonize yes --port "$REDIS_PORT" \
    --appendonly yes --appendfsync always --maxmemory-policy noeviction \
    --pidfile /run/redis/redis-server.pid --logfile /var/log/redis/redis-server.log </dev/null >>"$LOG" 2>&1 9>&-) ||
    { warn "redis: redis-server failed to start; see /var/log/redis/redis-server.log"; return 1; }
  local i
  for ((i = 0; i < 40; i++)); do redis_ok && return 0; sleep 0.25; done
  warn "redis: not answering after start; last lines of /var/log/redis/redis-server.log:"
  tail -n 15 /var/log/redis/redis-server.log >&2 2>/dev/null || true
  return 1
}

# ---------------------------------------------------------------- main

declare -A NAME=([pg]=postgres [my]=mariadb [redis]=redis)
declare -A VAR=([pg]=DTX_TEST_PG_URL [my]=DTX_TEST_MYSQL_URL [redis]=DTX_TEST_REDIS_URL)
declare -A PORT=([pg]=$PG_PORT [my]=$MY_PORT [redis]=$REDIS_PORT)
declare -A PKGS=([pg]="postgresql" [my]="mariadb-server mariadb-client" [redis]="redis-server")

failed=0
todo=()
for s in pg my redis; do
  if [[ -n ${!VAR[$s]:-} ]]; then
    check_external "${NAME[$s]}" "${VAR[$s]}" "${PORT[$s]}" || failed=1
  elif "${s}_ok"; then
    say "${NAME[$s]}: up ($HOST:${PORT[$s]})"
    if [[ $s == redis ]]; then redis_make_durable || failed=1; fi
  else
    todo+=("$s")
  fi
done

if ((${#todo[@]} == 0)); then exit "$failed"; fi

if ! is_root; then
  for s in "${todo[@]}"; do
    if "${s}_installed"; then what="not up, or not set up for the tests"; else what="not installed"; fi
    warn "${NAME[$s]}: $what ($HOST:${PORT[$s]})"
  done
  warn "fix: run 'sudo bash scripts/services.sh' (installs and starts them from Debian packages),"
  warn "     or point DTX_TEST_PG_URL / DTX_TEST_MYSQL_URL / DTX_TEST_REDIS_URL at servers of your own."
  exit 1
fi

mkdir -p "$LOG_DIR"
: >>"$LOG"
exec 9>>"$LOCK_FILE"
if ! flock -n 9; then
  say "services: waiting for another scripts/services.sh run ($LOCK_FILE)"
  flock -w 900 9 || { warn "services: timed out waiting for $LOCK_FILE"; exit 1; }
fi

# Another run may have done the work while we waited.
pending=()
for s in "${todo[@]}"; do
  if "${s}_ok"; then
    say "${NAME[$s]}: up ($HOST:${PORT[$s]})"
    if [[ $s == redis ]]; then redis_make_durable || failed=1; fi
  else
    pending+=("$s")
  fi
done

pkgs=()
for s in "${pending[@]}"; do
  if ! "${s}_installed"; then read -r -a p <<<"${PKGS[$s]}"; pkgs+=("${p[@]}"); fi
done
if ((${#pkgs[@]} > 0)); then
  apt_install "${pkgs[@]}" || { warn "fix: install ${pkgs[*]} (Debian packages), or set DTX_TEST_*_URL"; exit 1; }
fi

setup_fn() { case $1 in pg) echo pg_setup ;; my) echo my_setup ;; redis) echo redis_setup ;; esac; }
for s in "${pending[@]}"; do
  if ! "${s}_installed"; then
    warn "${NAME[$s]}: still not installed after apt-get (log: $LOG)"; failed=1; continue
  fi
  if "$(setup_fn "$s")" && "${s}_ok"; then
    say "${NAME[$s]}: up ($HOST:${PORT[$s]})"
    if [[ $s == redis ]]; then redis_make_durable || failed=1; fi
  else
    warn "${NAME[$s]}: FAILED to bring up at $HOST:${PORT[$s]} (log: $LOG) - fix the error above, or set ${VAR[$s]}"
    failed=1
  fi
done
exit "$failed"
