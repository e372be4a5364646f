import type { Violation } from "../contracts.ts";
import type { CallSpan } from "./calls.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, faultOverlaps } from "./context.ts";
import { drivenCallGroups } from "./driven-calls.ts";
import type { GoalResult } from "./types.ts";

/**
 * When the pass that made c1 was last seen working on the gid: the latest end (else start) of
 * the gid's calls that started from c1 up to `minGap` before c2. A concurrent saga's pass goes
 * on with other branches after one of them failed, so it can end well after c1 did. No call
 * of the next pass starts that early: the next pass starts at least `minGap` after the last
 * call of the previous one has ended (the storm rule below), so such calls belong to c1's pass.
 */
function previousPassSeenUntil(index: RunIndex, c1: CallSpan, c2: CallSpan, minGap: number): number {
  let until = c1.end ?? c1.start;
  for (const call of index.calls.get(c1.gid) ?? []) {
    if (call.start < c1.start || call.start > c2.start - minGap) continue;
    until = Math.max(until, call.end ?? call.start);
  }
  return Math.min(until, c2.start);
}

/**
 * **G8: retries keep their cadence, under the cap.**
 *
 * Definition: for consecutive coordinator-driven calls c1, c2 of one (gid, branch id, op)
 * (driven-calls.ts):
 *
 * - **no retry storm**: c2.start − c1.start ≥ retryInterval·(1 − retryJitter) − cadenceFloorMs.
 *   The coordinator retries a branch only from a new pass, scheduled at least one retry
 *   interval after the previous pass wrote (dtx's jitter only adds, so the factor is a floor
 *   that also holds for dtm-like jitter both ways). A client's repeated submit or abort does
 *   not hurry it either (docs/deviations.md D2), so no client request is exempt. Exempt: a gap
 *   in which a coordinator fault began or ended, or one that ended at most a request timeout
 *   before c1 (a paused or killed pass leaves its lease, and the next claim may come before the
 *   interval; a call a pass had started just before SIGSTOP only reaches the participant once
 *   the process runs again, after which that pass loses its claim and the next one calls at
 *   once: smoke, seed 20261206, sqlite, c20261206-259).
 * - **under the cap**: c2.start − (when c1's pass was last seen working on the gid, see
 *   {@link previousPassSeenUntil}) ≤ maxRetryInterval·(1 + retryJitter) + cronInterval +
 *   requestTimeout + cadenceCeilingMs: the next pass is due at most one capped (and jittered)
 *   interval after the previous one wrote, and the cron sees it within one cron interval; the
 *   request timeout covers a call the participant ended before the coordinator gave up on it
 *   (an answer dropped after commit). Exempt: a gap that any nemesis fault overlaps (a dead
 *   participant, store or coordinator legitimately delays).
 *
 * Tolerances: `cadenceFloorMs` (default 250 ms) absorbs the participant's event-loop lag in
 * stamping the two starts (a lagging first stamp shortens the gap); `cadenceCeilingMs` (default
 * 2 s) absorbs a 2-core machine running every process of the run: a store write that waits, a
 * cron batch that is full, a pass slot that is taken.
 */
export function checkCadence(index: RunIndex): GoalResult {
  const { retryIntervalMs, maxRetryIntervalMs, cronIntervalMs, requestTimeoutMs } = index.input.timings;
  const jitter = index.input.timings.retryJitter ?? 0;
  const { cadenceFloorMs, cadenceCeilingMs } = index.tolerances;
  const minGap = retryIntervalMs * (1 - jitter) - cadenceFloorMs;
  const maxWait = maxRetryIntervalMs * (1 + jitter) + cronIntervalMs + requestTimeoutMs + cadenceCeilingMs;
  const violations: Violation[] = [];
  let storms = 0;
  let stalls = 0;
  let gaps = 0;
  for (const spans of drivenCallGroups(index).values()) {
    for (let i = 1; i < spans.length; i++) {
      const c1 = spans[i - 1]!;
      const c2 = spans[i]!;
      const gap = c2.start - c1.start;
      const wait = c2.start - previousPassSeenUntil(index, c1, c2, minGap);
      gaps++;
      if (gap < minGap && !faultOverlaps(index, c1.start - requestTimeoutMs, c2.start, "coordinator")) {
        storms++;
        violations.push(cadenceViolation(index, c1, c2, `retried ${gap} ms after the previous call, below the floor of ${Math.round(minGap)} ms (retry storm)`));
      } else if (wait > maxWait && !faultOverlaps(index, c1.start, c2.start)) {
        stalls++;
        violations.push(cadenceViolation(index, c1, c2, `retried ${wait} ms after the previous pass was last seen (${gap} ms after the previous call), above the cap of ${Math.round(maxWait)} ms with no fault in between`));
      }
    }
  }
  return { goal: "G8", violations, detail: `${gaps} retry gaps: ${storms} too short, ${stalls} too long` };
}

function cadenceViolation(index: RunIndex, c1: CallSpan, c2: CallSpan, what: string): Violation {
  return { goal: "G8", gid: c1.gid, message: `branch ${c1.branchId} op ${c1.op}: ${what}`, events: [{ call: c1 }, { call: c2 }, ...eventsAround(index, c1.gid, c2.start)] };
}
