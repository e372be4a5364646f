#!/usr/bin/env bash
# dtm and dtx side by side: the same closed-loop driver (bench/saga-bench.ts) and the same no-op
# participant measure dtm (built from its Go module) and dtx, on each store both support here
# (MariaDB, Postgres, Redis; plus Redis with empty branch URLs, dtm's benchEmptyUrl). On the SQL
# stores dtm runs twice: with its default UpdateBranchSync 0 (branch results written in the
# background after answering) and with UpdateBranchSync 1 (written before, dtx's durability); on
# Redis dtm always writes them at once, so it runs once. Each pass runs every system once; pass 2
# runs them in the reverse order of pass 1, and so on, so a drift in the machine's load hits all
# alike. dtx runs twice too: as shipped (deferBranchResults on, docs/deviations.md D14, the
# counterpart of dtm's UpdateBranchSync 0) and with it off (dtx-sync, the counterpart of
# UpdateBranchSync 1). Prints dtx / dtm per store and C for each pass, with the spread (min-max), CPU ms per saga,
# and the machine and its load. See bench/README.md, "dtm side by side".
#
#   bash bench/dtm-compare.sh [--seconds 8] [--concurrency 1,20,64] [--passes 2]
#                             [--stores mysql,postgres,redis,redis-empty] [--start-warmup 10] [--warmup 5]
#                             [--interleave ROUNDS] [--dtx dtx=defer,dtx-sync=sync] [--dtx-node NAME=VERSION,...]
#
# --interleave ROUNDS: instead of passes of whole runs, start every system of a store at once and
# load them in turn in short slices (bench/dtm-interleave.ts; ROUNDS slices each per C, --seconds
# long after 2 s unmeasured), so the ratios compare coordinators seconds apart rather than a
# machine whose speed wandered between runs minutes apart. redis-empty is not run in this mode.
# --dtx (with --interleave): the dtx systems, NAME=defer|sync[/WORKERS] comma-separated, e.g.
# dtx=defer,dtx-2w=defer/2 for dtx as shipped and with two worker processes.
# --dtx-node (with --interleave): run the dtx system NAME on that Node release instead of this
# machine's node, fetched from the npm registry (bench/lib/fetch-node.sh), e.g. with
# --dtx dtx=defer,dtx-node24=defer --dtx-node dtx-node24=24.22.3 (the release the image ships).
#
# --start-warmup: seconds of unmeasured load before the first level, --warmup before each, for
# every system alike. dtx (V8) needs ~10 s of load after it starts before its hot paths are
# compiled, and a few seconds more at a new concurrency (other paths get hot, some code is
# compiled again); measured earlier, it shows the JIT's tier-up, not the coordinator. dtm (Go)
# needs none. The script counts Redis's background saves and AOF rewrites during the run (each a
# fork that writes the whole dataset) and warns when Redis held many keys: then they disturb.
#
# env: DTM_BIN      a dtm binary to use (default: build DTM_VERSION into /tmp/dtm-bench)
#      DTM_VERSION  dtm module version to build (default v1.19.0)
#      MYSQL_HOST/MYSQL_PORT, PG_HOST/PG_PORT/PG_DB, REDIS_HOST/REDIS_PORT (test services by default)
#
# Needs go (to build dtm), mysql, psql and redis-cli clients, and the services of scripts/services.sh.
# Writes each run's JSON plus a combined dtm-compare-<stamp>.json to bench/results/ (with --interleave:
# dtm-interleave-<store>-<stamp>.json per store).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SECONDS_PER_LEVEL=8
CONCURRENCY=1,20,64
START_WARMUP=10
WARMUP=5
PASSES=2
STORES=mysql,postgres,redis,redis-empty
INTERLEAVE=0
DTX_SYSTEMS=dtx=defer,dtx-sync=sync
DTX_NODES=""
# shellcheck source=lib/flags.sh
source "$REPO/bench/lib/flags.sh"
bench_flags dtm-compare 2,38p "--seconds=SECONDS_PER_LEVEL --concurrency=CONCURRENCY --stores=STORES --passes=PASSES --start-warmup=START_WARMUP --warmup=WARMUP --interleave=INTERLEAVE --dtx=DTX_SYSTEMS --dtx-node=DTX_NODES" "$@"
[[ "$INTERLEAVE" =~ ^[0-9]+$ ]] || { echo "dtm-compare: --interleave needs a number of rounds, got $INTERLEAVE" >&2; exit 2; }
if [ -n "$DTX_NODES" ] && (( INTERLEAVE == 0 )); then echo "dtm-compare: --dtx-node needs --interleave" >&2; exit 2; fi

DTM_VERSION="${DTM_VERSION:-v1.19.0}"
MYSQL_HOST="${MYSQL_HOST:-127.0.0.1}"; MYSQL_PORT="${MYSQL_PORT:-3306}"
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_DB="${PG_DB:-dtx_test}"
# psql: no NOTICE lines for every table a DROP SCHEMA ... CASCADE takes with it.
export PGOPTIONS="${PGOPTIONS:---client-min-messages=warning}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"; REDIS_PORT="${REDIS_PORT:-6379}"
DTX_NODE_FLAGS="--max-semi-space-size=8 --max-old-space-size=160"

WORK="$(mktemp -d /tmp/dtm-compare-XXXXXX)"
TAG="dtmbench_$$"
STAMP="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
OUT="$REPO/bench/results"
mkdir -p "$OUT"
DTM_PIDS=()
# The sequential passes use $TAG; --interleave runs dtm-async and dtm-sync at once, on ${TAG}_a and ${TAG}_s.
TAGS=("$TAG" "${TAG}_a" "${TAG}_s")

cleanup() {
  for pid in "${DTM_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  for tag in "${TAGS[@]}"; do
    mysql -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE IF EXISTS $tag" 2>/dev/null || true
    psql -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" -c "DROP SCHEMA IF EXISTS $tag CASCADE" >/dev/null 2>&1 || true
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "{$tag}*" 2>/dev/null | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- dtm binary ------------------------------------------------------------------------------
# `go install github.com/dtm-labs/dtm@VERSION` fails here: the module proxy serves the version but
# refuses the module's version list, which go install reads for deprecation notices. So the
# module is downloaded by exact version and built from a copy of its source.
DTM_BUILD_SECONDS="prebuilt"
if [ -z "${DTM_BIN:-}" ]; then
  DTM_BIN="/tmp/dtm-bench/dtm-$DTM_VERSION"
  if [ ! -x "$DTM_BIN" ]; then
    echo "dtm-compare: building dtm $DTM_VERSION ..."
    mkdir -p /tmp/dtm-bench
    dir="$(cd /tmp && go mod download -json "github.com/dtm-labs/dtm@$DTM_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    rm -rf "/tmp/dtm-bench/src-$DTM_VERSION"
    cp -r "$dir" "/tmp/dtm-bench/src-$DTM_VERSION"
    chmod -R u+w "/tmp/dtm-bench/src-$DTM_VERSION"
    t0=$(date +%s)
    (cd "/tmp/dtm-bench/src-$DTM_VERSION" && go build -ldflags "-X main.Version=$DTM_VERSION" -o "$DTM_BIN" .)
    DTM_BUILD_SECONDS=$(( $(date +%s) - t0 ))
  fi
fi
DTM_SRC="$(cd /tmp && go mod download -json "github.com/dtm-labs/dtm@$DTM_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
echo "dtm-compare: dtm $DTM_VERSION at $DTM_BIN (build seconds: $DTM_BUILD_SECONDS); go $(go env GOVERSION)"

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# --- dtm per store -----------------------------------------------------------------------------
prepare_store() { # store [tag] -> writes the Store: section of conf.yml to stdout
  local TAG="${2:-$TAG}"
  case "$1" in
    mysql)
      sed -e "s/CREATE DATABASE IF NOT EXISTS dtm\$/CREATE DATABASE IF NOT EXISTS $TAG/" -e "s/\bdtm\./$TAG./g" \
        "$DTM_SRC/sqls/dtmsvr.storage.mysql.sql" | mysql -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root
      printf "Store:\n  Driver: 'mysql'\n  Host: '%s'\n  Port: %s\n  User: 'root'\n  Password: ''\n  Db: '%s'\n" "$MYSQL_HOST" "$MYSQL_PORT" "$TAG" ;;
    postgres)
      { echo "CREATE SCHEMA $TAG; SET search_path TO $TAG;"; cat "$DTM_SRC/sqls/dtmsvr.storage.postgres.sql"; } \
        | psql -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" >/dev/null 2>&1
      # dtm builds a key=value DSN "password=%s dbname='%s' ...": an empty password swallows the
      # dbname (dtm then connects to database "postgres"), so pass a dummy one (trust auth ignores it).
      printf "Store:\n  Driver: 'postgres'\n  Host: '%s'\n  Port: %s\n  User: 'postgres'\n  Password: 'unused-with-trust-auth'\n  Db: '%s'\n  Schema: '%s'\n" "$PG_HOST" "$PG_PORT" "$PG_DB" "$TAG" ;;
    redis)
      printf "Store:\n  Driver: 'redis'\n  Host: '%s'\n  Port: %s\n  User: ''\n  Password: ''\n  RedisPrefix: '{%s}'\n" "$REDIS_HOST" "$REDIS_PORT" "$TAG" ;;
  esac
}

drop_store() { # store [tag]
  local TAG="${2:-$TAG}"
  case "$1" in
    mysql) mysql -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE IF EXISTS $TAG" ;;
    postgres) psql -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" -c "DROP SCHEMA IF EXISTS $TAG CASCADE" >/dev/null ;;
    redis) redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "{$TAG}*" | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null ;;
  esac
}

# Runs saga-bench with its own --out dir and copies the stamped JSON to bench/results; prints its path.
run_bench() { # label args...
  local label="$1"; shift
  local dir="$WORK/out-$label"
  mkdir -p "$dir"
  echo "dtm-compare: [$label] npx tsx bench/saga-bench.ts $* --out <tmp>" >&2
  npx tsx bench/saga-bench.ts "$@" --out "$dir" >&2
  local file
  file="$(ls "$dir"/*.json | grep -v -- '-latest\.json$' | head -1)"
  cp "$file" "$OUT/"
  echo "$OUT/$(basename "$file")"
}

FILES=()
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# Background saves and AOF rewrites Redis has done since it started (0 when Redis is not in the run).
redis_background_writes() {
  case ",$STORES," in *,redis*) ;; *) echo 0; return ;; esac
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info persistence | tr -d '\r' | awk -F: '/^(rdb_saves|aof_rewrites):/ { n += $2 } END { print n + 0 }'
}
REDIS_BG_BEFORE="$(redis_background_writes)"
REDIS_KEYS_BEFORE=0
case ",$STORES," in
  *,redis*)
    REDIS_KEYS_BEFORE="$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" dbsize)"
    echo "dtm-compare: Redis holds $REDIS_KEYS_BEFORE keys before the run" ;;
esac

# Starts dtm (dtm-async: UpdateBranchSync 0, dtm-sync: 1) on a prepared store under `tag`; sets
# DTM_PID and DTM_HTTP_PORT.
start_dtm() { # system store tag
  local system="$1" store="$2" tag="$3" conf grpc_port jsonrpc_port
  conf="$WORK/conf-$system-$store.yml"
  DTM_HTTP_PORT="$(free_port)"; grpc_port="$(free_port)"; jsonrpc_port="$(free_port)"
  {
    prepare_store "$store" "$tag"
    printf "LogLevel: 'warn'\nHttpPort: %s\nGrpcPort: %s\nJsonRpcPort: %s\n" "$DTM_HTTP_PORT" "$grpc_port" "$jsonrpc_port"
    if [ "$system" = dtm-sync ]; then printf "UpdateBranchSync: 1\n"; fi
  } >"$conf"
  LOG_LEVEL=warn "$DTM_BIN" -c "$conf" >"$WORK/$system-$store.log" 2>&1 &
  DTM_PID=$!
  DTM_PIDS+=("$DTM_PID")
}

stop_dtm() { # system store pid: stops it and shows the first errors it logged
  local system="$1" store="$2" pid="$3"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if grep -qiE '"level":"(error|fatal)"|panic' "$WORK/$system-$store.log"; then
    echo "dtm-compare: dtm logged errors on $store (first lines):" >&2; grep -iE 'error|panic' "$WORK/$system-$store.log" | head -5 | cut -c1-300 >&2 || true
  fi
}

# One run: dtm (async|sync) or dtx on a store entry; appends "system:entry:pass:file" to FILES.
run_system() { # system entry pass
  local system="$1" entry="$2" pass="$3"
  local store="${entry%-empty}" extra=() f
  [ "$entry" != "$store" ] && extra=(--empty-urls)
  if [ "$system" = dtx ] || [ "$system" = dtx-sync ]; then
    # As shipped (deferBranchResults on), and with every branch result written before the call it
    # unlocks (dtx-sync, the counterpart of dtm's UpdateBranchSync 1).
    local defer=1
    [ "$system" = dtx-sync ] && defer=0
    f="$(DTX_DEFER_BRANCH_RESULTS=$defer run_bench "$system-$entry-p$pass" --store "$store" "${extra[@]}" --build --node-flags "$DTX_NODE_FLAGS" \
          --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_LEVEL" --start-warmup "$START_WARMUP" --warmup "$WARMUP")"
    FILES+=("$system:$entry:$pass:$f")
    return
  fi
  start_dtm "$system" "$store" "$TAG"
  echo "dtm-compare: $system pid $DTM_PID on :$DTM_HTTP_PORT, store $entry, pass $pass" >&2
  f="$(run_bench "$system-$entry-p$pass" --target "http://127.0.0.1:$DTM_HTTP_PORT/api/dtmsvr" --target-pid "$DTM_PID" --target-name "$system" \
        --store "$store" "${extra[@]}" --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_LEVEL" --start-warmup "$START_WARMUP" --warmup "$WARMUP")"
  FILES+=("$system:$entry:$pass:$f")
  stop_dtm "$system" "$store" "$DTM_PID"
  drop_store "$store"
}

IFS=, read -r -a STORE_LIST <<<"$STORES"
if (( INTERLEAVE > 0 )); then
  # Every system of a store at once, loaded in turn (bench/dtm-interleave.ts prints the tables).
  for entry in "${STORE_LIST[@]}"; do
    case "$entry" in mysql|postgres|redis) ;; redis-empty) echo "dtm-compare: --interleave skips redis-empty" >&2; continue ;; *) echo "dtm-compare: unknown store $entry" >&2; exit 2 ;; esac
    targets=()
    start_dtm dtm-async "$entry" "${TAG}_a"; async_pid="$DTM_PID"
    targets+=(--target "dtm-async=http://127.0.0.1:$DTM_HTTP_PORT/api/dtmsvr@$async_pid")
    # dtm's Redis store writes branch results at once whatever UpdateBranchSync says (trans_status.go).
    sync_pid=""
    if [ "$entry" != redis ]; then
      start_dtm dtm-sync "$entry" "${TAG}_s"; sync_pid="$DTM_PID"
      targets+=(--target "dtm-sync=http://127.0.0.1:$DTM_HTTP_PORT/api/dtmsvr@$sync_pid")
    fi
    echo "dtm-compare: [$entry] npx tsx bench/dtm-interleave.ts --store $entry ${targets[*]} ..." >&2
    dtx_args=()
    IFS=, read -r -a dtx_list <<<"$DTX_SYSTEMS"
    for d in "${dtx_list[@]}"; do dtx_args+=(--dtx "$d"); done
    if [ -n "$DTX_NODES" ]; then
      IFS=, read -r -a node_list <<<"$DTX_NODES"
      for n in "${node_list[@]}"; do dtx_args+=(--coordinator-node "${n%%=*}=$(bash bench/lib/fetch-node.sh "${n#*=}")"); done
    fi
    npx tsx bench/dtm-interleave.ts --store "$entry" "${dtx_args[@]}" "${targets[@]}" --concurrency "$CONCURRENCY" \
      --rounds "$INTERLEAVE" --slice "$SECONDS_PER_LEVEL" --slice-warmup 2 --start-warmup "$START_WARMUP" --level-warmup "$WARMUP" --out "$OUT"
    stop_dtm dtm-async "$entry" "$async_pid"; drop_store "$entry" "${TAG}_a"
    if [ -n "$sync_pid" ]; then stop_dtm dtm-sync "$entry" "$sync_pid"; drop_store "$entry" "${TAG}_s"; fi
  done
  echo "dtm-compare: load $LOAD_BEFORE -> $(cut -d' ' -f1-3 /proc/loadavg); Redis background saves and AOF rewrites during the run: $(( $(redis_background_writes) - REDIS_BG_BEFORE ))"
  exit 0
fi
for entry in "${STORE_LIST[@]}"; do
  store="${entry%-empty}"
  case "$store" in mysql|postgres|redis) ;; *) echo "dtm-compare: unknown store $entry" >&2; exit 2 ;; esac
  # dtm's Redis store writes branch results at once whatever UpdateBranchSync says (trans_status.go).
  if [ "$store" = redis ]; then systems=(dtm-async dtx dtx-sync); else systems=(dtm-async dtm-sync dtx dtx-sync); fi
  for ((pass = 1; pass <= PASSES; pass++)); do
    order=("${systems[@]}")
    if (( pass % 2 == 0 )); then order=(); for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[$i]}"); done; fi
    for system in "${order[@]}"; do run_system "$system" "$entry" "$pass"; done
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
REDIS_BG_WRITES=$(( $(redis_background_writes) - REDIS_BG_BEFORE ))

# --- table + combined JSON ---------------------------------------------------------------------
COMBINED="$OUT/dtm-compare-$STAMP.json"
DTM_VERSION="$DTM_VERSION" DTM_BUILD_SECONDS="$DTM_BUILD_SECONDS" GO_VERSION="$(go env GOVERSION)" \
LOAD_BEFORE="$LOAD_BEFORE" LOAD_AFTER="$LOAD_AFTER" REDIS_BG_WRITES="$REDIS_BG_WRITES" REDIS_KEYS_BEFORE="$REDIS_KEYS_BEFORE" \
npx tsx bench/lib/dtm-compare-table.ts "$COMBINED" "${FILES[@]}"
