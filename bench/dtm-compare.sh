#!/usr/bin/env bash
# dtm and dtx side by side: the same closed-loop driver (bench/saga-bench.ts) and the same no-op
# participant measure dtm (built from its Go module) and then dtx, on each store both support here
# (MariaDB, Postgres, Redis; plus Redis with empty branch URLs, dtm's benchEmptyUrl).
# See bench/README.md, "dtm side by side".
#
#   bash bench/dtm-compare.sh [--seconds 8] [--concurrency 1,64] [--stores mysql,postgres,redis,redis-empty]
#
# env: DTM_BIN      a dtm binary to use (default: build DTM_VERSION into /tmp/dtm-bench)
#      DTM_VERSION  dtm module version to build (default v1.19.0)
#      MYSQL_HOST/MYSQL_PORT, PG_HOST/PG_PORT/PG_DB, REDIS_HOST/REDIS_PORT (test services by default)
#
# Needs go (to build dtm), mysql, psql and redis-cli clients, and the services of scripts/services.sh.
# Writes each run's JSON plus a combined dtm-compare-<stamp>.json to bench/results/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SECONDS_PER_LEVEL=8
CONCURRENCY=1,64
STORES=mysql,postgres,redis,redis-empty
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_LEVEL="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --stores) STORES="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "dtm-compare: unknown argument $1" >&2; exit 2 ;;
  esac
done

DTM_VERSION="${DTM_VERSION:-v1.19.0}"
MYSQL_HOST="${MYSQL_HOST:-127.0.0.1}"; MYSQL_PORT="${MYSQL_PORT:-3306}"
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_DB="${PG_DB:-dtx_test}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"; REDIS_PORT="${REDIS_PORT:-6379}"
DTX_NODE_FLAGS="--max-semi-space-size=8 --max-old-space-size=160"

WORK="$(mktemp -d /tmp/dtm-compare-XXXXXX)"
TAG="dtmbench_$$"
STAMP="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
OUT="$REPO/bench/results"
mkdir -p "$OUT"
DTM_PID=""

cleanup() {
  if [ -n "$DTM_PID" ] && kill -0 "$DTM_PID" 2>/dev/null; then
    kill "$DTM_PID" 2>/dev/null || true
    wait "$DTM_PID" 2>/dev/null || true
  fi
  mysql -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE IF EXISTS $TAG" 2>/dev/null || true
  psql -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" -c "DROP SCHEMA IF EXISTS $TAG CASCADE" >/dev/null 2>&1 || true
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "{$TAG}*" 2>/dev/null | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null 2>&1 || true
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
prepare_store() { # store -> writes the Store: section of conf.yml to stdout
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

drop_store() {
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
IFS=, read -r -a STORE_LIST <<<"$STORES"
for entry in "${STORE_LIST[@]}"; do
  store="${entry%-empty}"
  extra=()
  [ "$entry" != "$store" ] && extra=(--empty-urls)
  case "$store" in mysql|postgres|redis) ;; *) echo "dtm-compare: unknown store $entry" >&2; exit 2 ;; esac

  # dtm
  conf="$WORK/conf-$entry.yml"
  http_port="$(free_port)"; grpc_port="$(free_port)"; jsonrpc_port="$(free_port)"
  {
    prepare_store "$store"
    printf "LogLevel: 'warn'\nHttpPort: %s\nGrpcPort: %s\nJsonRpcPort: %s\n" "$http_port" "$grpc_port" "$jsonrpc_port"
  } >"$conf"
  LOG_LEVEL=warn "$DTM_BIN" -c "$conf" >"$WORK/dtm-$entry.log" 2>&1 &
  DTM_PID=$!
  echo "dtm-compare: dtm pid $DTM_PID on :$http_port, store $entry" >&2
  f="$(run_bench "dtm-$entry" --target "http://127.0.0.1:$http_port/api/dtmsvr" --target-pid "$DTM_PID" --target-name dtm \
        --store "$store" "${extra[@]}" --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_LEVEL")"
  FILES+=("dtm:$entry:$f")
  kill "$DTM_PID"; wait "$DTM_PID" 2>/dev/null || true; DTM_PID=""
  if grep -qiE '"level":"(error|fatal)"|panic' "$WORK/dtm-$entry.log"; then
    echo "dtm-compare: dtm logged errors on $entry (first lines):" >&2; grep -iE 'error|panic' "$WORK/dtm-$entry.log" | head -5 | cut -c1-300 >&2 || true
  fi
  drop_store "$store"

  # dtx, same store, same driver
  f="$(run_bench "dtx-$entry" --store "$store" "${extra[@]}" --build --node-flags "$DTX_NODE_FLAGS" \
        --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_LEVEL")"
  FILES+=("dtx:$entry:$f")
done

# --- table + combined JSON ---------------------------------------------------------------------
COMBINED="$OUT/dtm-compare-$STAMP.json"
DTM_VERSION="$DTM_VERSION" DTM_BUILD_SECONDS="$DTM_BUILD_SECONDS" GO_VERSION="$(go env GOVERSION)" \
node - "$COMBINED" "${FILES[@]}" <<'EOF'
const fs = require("node:fs");
const path = require("node:path");
const [out, ...specs] = process.argv.slice(2);
const runs = specs.map((s) => {
  const [coordinator, store, ...rest] = s.split(":");
  const file = rest.join(":");
  return { coordinator, store, file: path.relative(process.cwd(), file), report: JSON.parse(fs.readFileSync(file, "utf8")) };
});
const f = (n, d = 0) => (n === null || n === undefined ? "n/a" : Number(n).toFixed(d));
const rows = [];
const byKey = new Map();
for (const r of runs) for (const l of r.report.results) byKey.set(`${r.coordinator}|${r.store}|${l.concurrency}`, l);
const stores = [...new Set(runs.map((r) => r.store))];
const levels = [...new Set(runs.flatMap((r) => r.report.results.map((l) => l.concurrency)))];
const lines = [
  "| store | C | dtm sagas/s | dtx sagas/s | dtx / dtm | dtm p50 / p99 ms | dtx p50 / p99 ms | dtm CPU % | dtx CPU % | dtm RSS MB | dtx RSS MB | errors dtm / dtx | other CPU % dtm / dtx |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
for (const s of stores) for (const c of levels) {
  const d = byKey.get(`dtm|${s}|${c}`);
  const x = byKey.get(`dtx|${s}|${c}`);
  if (!d && !x) continue;
  const ratio = d && x && d.throughput > 0 ? x.throughput / d.throughput : null;
  rows.push({ store: s, concurrency: c, dtm: d ?? null, dtx: x ?? null, ratio });
  lines.push(`| ${s} | ${c} | ${f(d?.throughput)} | ${f(x?.throughput)} | ${ratio === null ? "n/a" : ratio.toFixed(2) + "x"} | ${f(d?.latencyMs.p50, 2)} / ${f(d?.latencyMs.p99, 2)} | ${f(x?.latencyMs.p50, 2)} / ${f(x?.latencyMs.p99, 2)} | ${f(d?.coordinator.cpuPct)} | ${f(x?.coordinator.cpuPct)} | ${f(d?.coordinator.rssMaxMB)} | ${f(x?.coordinator.rssMaxMB)} | ${d?.errors ?? "n/a"} / ${x?.errors ?? "n/a"} | ${f(d?.otherCpuPct)} / ${f(x?.otherCpuPct)} |`);
}
const table = lines.join("\n");
const combined = {
  benchmark: "dtm-compare",
  timestamp: new Date().toISOString(),
  dtm: { version: process.env.DTM_VERSION, buildSeconds: process.env.DTM_BUILD_SECONDS, go: process.env.GO_VERSION, config: "dtm defaults (UpdateBranchSync 0, i.e. branch status written asynchronously on SQL stores), LogLevel warn" },
  dtx: { runtime: "tsc-compiled, plain node", nodeFlags: "--max-semi-space-size=8 --max-old-space-size=160" },
  machine: runs[0]?.report.machine,
  runs: runs.map((r) => ({ coordinator: r.coordinator, store: r.store, file: r.file, command: r.report.command })),
  rows,
  table,
};
fs.writeFileSync(out, JSON.stringify(combined, null, 2) + "\n");
console.log("");
console.log(table);
console.log("");
console.log(`combined: ${path.relative(process.cwd(), out)}`);
EOF
