#!/usr/bin/env bash
# Throughput with 1 and with N coordinator processes (the `workers` setting, docs/operations.md#workers)
# on the network stores, in alternating order (1, N, N, 1, ... per store) so a change in the machine's
# load hits both alike. Prints, per store, sagas/s and coordinator CPU ms per saga (summed over the
# primary and its workers) for each run, the N/1 throughput ratio of each pair and their spread, and
# the load average before and after. See bench/README.md, "Workers".
#
#   bash bench/workers-compare.sh [--stores postgres,redis] [--workers 2] [--concurrency 64] [--seconds 8] [--rounds 2]
#                                 [--start-warmup 10]
#
# --start-warmup: unmeasured load before the measured phase. Each process compiles its own hot
# paths, and N workers share the load, so each sees 1/N of it: without this warm-up the N-worker
# run is measured further from steady state than the 1-worker run (bench/README.md, "Warm-up").
#
# Writes each run's JSON and a combined workers-compare-<stamp>.json to bench/results/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

STORES=postgres,redis
N=2
CONCURRENCY=64
SECONDS_PER_RUN=8
ROUNDS=2
START_WARMUP=10
# shellcheck source=lib/flags.sh
source "$REPO/bench/lib/flags.sh"
bench_flags workers-compare 2,15p "--stores=STORES --workers=N --concurrency=CONCURRENCY --seconds=SECONDS_PER_RUN --rounds=ROUNDS --start-warmup=START_WARMUP" "$@"

WORK="$(mktemp -d /tmp/workers-compare-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
STAMP="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
OUT="$REPO/bench/results"
mkdir -p "$OUT"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
SPECS=()

IFS=, read -r -a STORE_LIST <<<"$STORES"
for store in "${STORE_LIST[@]}"; do
  for ((round = 0; round < ROUNDS; round++)); do
    # 1, N in even rounds; N, 1 in odd ones.
    if (( round % 2 == 0 )); then order=(1 "$N"); else order=("$N" 1); fi
    for w in "${order[@]}"; do
      dir="$WORK/$store-r$round-w$w"
      mkdir -p "$dir"
      echo "workers-compare: $store round $((round + 1)) workers $w (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      npx tsx bench/saga-bench.ts --store "$store" --workers "$w" --build --node-flags "--max-semi-space-size=8 --max-old-space-size=160" \
        --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_RUN" --start-warmup "$START_WARMUP" --out "$dir" >"$dir/log.txt" 2>&1 || { tail -20 "$dir/log.txt" >&2; exit 1; }
      file="$(ls "$dir"/*.json | grep -v -- '-latest\.json$' | head -1)"
      cp "$file" "$OUT/"
      SPECS+=("$store:$round:$w:$OUT/$(basename "$file")")
    done
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

node - "$OUT/workers-compare-$STAMP.json" "$N" "$LOAD_BEFORE" "$LOAD_AFTER" "${SPECS[@]}" <<'NODE'
const fs = require("node:fs");
const os = require("node:os");
const [out, n, loadBefore, loadAfter, ...specs] = process.argv.slice(2);
const runs = specs.map((s) => {
  const [store, round, workers, ...rest] = s.split(":");
  const level = JSON.parse(fs.readFileSync(rest.join(":"), "utf8")).results[0];
  return { store, round: Number(round), workers: Number(workers), throughput: level.throughput, cpuMsPerSaga: level.coordinator.cpuMsPerSaga, processes: level.coordinator.processes, p50: level.latencyMs.p50, errors: level.errors, otherCpuPct: level.otherCpuPct, file: rest.join(":") };
});
const lines = [`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}; load average before ${loadBefore}, after ${loadAfter}`, ""];
const summary = [];
for (const store of [...new Set(runs.map((r) => r.store))]) {
  lines.push(`| ${store} | round | workers | processes | sagas/s | coord CPU ms/saga | p50 ms | errors | other CPU % |`, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  const mine = runs.filter((r) => r.store === store);
  for (const r of mine) lines.push(`| | ${r.round + 1} | ${r.workers} | ${r.processes} | ${r.throughput.toFixed(0)} | ${r.cpuMsPerSaga?.toFixed(3) ?? "n/a"} | ${r.p50?.toFixed(2)} | ${r.errors} | ${r.otherCpuPct ?? "n/a"} |`);
  const ratios = [...new Set(mine.map((r) => r.round))].map((round) => {
    const one = mine.find((r) => r.round === round && r.workers === 1);
    const many = mine.find((r) => r.round === round && r.workers === Number(n));
    return one && many && one.throughput > 0 ? many.throughput / one.throughput : null;
  }).filter((x) => x !== null);
  const text = ratios.length ? `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(", ")})` : "n/a";
  lines.push("", `${store}: throughput with ${n} workers / with 1, per round: ${text}`, "");
  summary.push({ store, ratios });
}
fs.writeFileSync(out, JSON.stringify({ benchmark: "workers-compare", timestamp: new Date().toISOString(), workers: Number(n), loadBefore, loadAfter, runs, summary }, null, 2) + "\n");
console.log(lines.join("\n"));
console.log(`combined: ${out}`);
NODE
