import type { Report } from "../contracts.ts";
import { GOALS } from "./check.ts";

/**
 * The run in ONE line, e.g.
 * `chaos seed=42 store=postgres profile=smoke tx=600 ack=571 succeed=402 failed=190 faults=9 G1 ok G2 ok G3 ✗(2) ... settle=4.2s coverage=0.67 FAIL`.
 */
export function summaryLine(report: Report): string {
  const status = report.transactions.byFinalStatus;
  const faults = Object.entries(report.faults).filter(([name]) => !name.startsWith("branch:")).reduce((sum, [, n]) => sum + n, 0);
  const branchFaults = Object.entries(report.faults).filter(([name]) => name.startsWith("branch:")).reduce((sum, [, n]) => sum + n, 0);
  const goals = GOALS.map((g) => {
    const r = report.goals[g];
    return r.ok ? `${g} ok` : `${g} ✗(${r.violations})`;
  }).join(" ");
  const settle = report.settleMs === null ? "never" : `${(report.settleMs / 1000).toFixed(1)}s`;
  const coverage = `coverage=${report.coverage.succeededShare}${report.coverage.ok ? "" : `<${report.coverage.minShare}`}`;
  return [
    `chaos seed=${report.seed} store=${report.store} profile=${report.profile}`,
    `tx=${report.transactions.invoked} ack=${report.transactions.acknowledged} succeed=${status["succeed"] ?? 0} failed=${status["failed"] ?? 0} absent=${status["absent"] ?? 0}`,
    `faults=${faults} branch-faults=${branchFaults}`,
    goals,
    `settle=${settle} ${coverage}`,
    report.ok ? "PASS" : "FAIL",
  ].join(" ");
}
