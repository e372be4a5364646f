/**
 * Re-checks a finished chaos run from its files:
 *
 *     npm run chaos:check -- --dir /tmp/dtx-chaos-postgres-42
 *
 * The run directory holds (contracts.ts `runPaths`):
 * - `history.jsonl` (ClientEvent), `intents.jsonl` (Intent), `calls.jsonl` (ParticipantCall),
 *   `nemesis.jsonl` (NemesisEvent): JSON Lines, a torn line is skipped and counted;
 * - `final.json`: FinalTrans[] of every gid, read from a coordinator after quiesce;
 * - `db.json`: the DatabaseState after quiesce;
 * - `run.json`: RunInfo `{ seed, store, profile, startedAt, endedAt, lastFaultEndedAt,
 *   settledAt, timings: { retryIntervalMs, maxRetryIntervalMs, cronIntervalMs, requestTimeoutMs,
 *   retryJitter? } }`;
 * - `coordinator-<i>.log`: each coordinator's pino log; its debug "status changed" lines feed G5.
 *
 * Writes `report.json` (the Report) next to them, prints the one-line summary, and exits 1 on any
 * violation or a failed coverage guard (2 on a usage or read error).
 */
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { check } from "./check.ts";
import { readRun } from "./read.ts";
import { summaryLine } from "./summary.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { dir: { type: "string" }, quiet: { type: "boolean", default: false } } });
  if (!values.dir) {
    process.stderr.write("usage: npm run chaos:check -- --dir <run dir> [--quiet]\n");
    return 2;
  }
  const input = await readRun(values.dir);
  const report = check(input);
  await writeFile(input.paths.report, `${JSON.stringify(report, null, 2)}\n`);
  if (!values.quiet) {
    for (const v of report.violations.slice(0, 20)) process.stderr.write(`${v.goal} ${v.gid ?? "-"}: ${v.message}\n`);
    if (report.violations.length > 20) process.stderr.write(`... ${report.violations.length - 20} more in ${input.paths.report}\n`);
  }
  process.stdout.write(`${summaryLine(report)}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chaos:check: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
