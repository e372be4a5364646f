import type { Violation } from "../contracts.ts";
import type { CallSpan } from "./calls.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, faultOverlaps } from "./context.ts";
import { drivenCallGroups } from "./driven-calls.ts";
import type { GoalResult } from "./types.ts";

/** Whether the client sent a submit or abort of this gid between two instants (such a request starts a pass at once, by design). */
function clientPoked(index: RunIndex, gid: string, from: number, to: number): boolean {
  return (index.history.get(gid) ?? []).some((e) => {
    if (e.type !== "invoke" || e.at < from || e.at > to) return false;
    return e.op === "submit" || e.op === "abort";
  });
}

/**
 * **G8: retries keep their cadence, under the cap.**
 *
 * Definition: for consecutive coordinator-driven calls c1, c2 of one (gid, branch id, op)
 * (driven-calls.ts), with gap = c2.start − c1.start:
 *
 * - **no retry storm**: gap ≥ retryInterval·(1 − retryJitter) − cadenceFloorMs. The coordinator
 *   retries a branch only from a new pass, scheduled at least one retry interval after the
 *   previous pass wrote (dtx's jitter only adds, so the factor is a floor that also holds for
 *   dtm-like jitter both ways). Exempt: a gap in which the client sent a submit/abort of the gid
 *   (a request runs a pass at once), or in which a coordinator fault began or ended (a paused or
 *   killed pass leaves its lease, and the next claim may come before the interval).
 * - **under the cap**: gap ≤ maxRetryInterval·(1 + retryJitter) + cronInterval + requestTimeout +
 *   cadenceCeilingMs: c1 may take up to requestTimeout, the next pass is due at most one capped (and
 *   jittered) interval later, and the cron sees it within one cron interval. Exempt: a gap that
 *   any nemesis fault overlaps (a dead participant, store or coordinator legitimately delays).
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
  const maxGap = maxRetryIntervalMs * (1 + jitter) + cronIntervalMs + requestTimeoutMs + cadenceCeilingMs;
  const violations: Violation[] = [];
  let storms = 0;
  let stalls = 0;
  let gaps = 0;
  for (const spans of drivenCallGroups(index).values()) {
    for (let i = 1; i < spans.length; i++) {
      const c1 = spans[i - 1]!;
      const c2 = spans[i]!;
      const gap = c2.start - c1.start;
      gaps++;
      if (gap < minGap && !clientPoked(index, c1.gid, c1.start, c2.start) && !faultOverlaps(index, c1.start, c2.start, "coordinator")) {
        storms++;
        violations.push(cadenceViolation(index, c1, c2, `retried ${gap} ms after the previous call, below the floor of ${Math.round(minGap)} ms (retry storm)`));
      } else if (gap > maxGap && !faultOverlaps(index, c1.start, c2.start)) {
        stalls++;
        violations.push(cadenceViolation(index, c1, c2, `retried ${gap} ms after the previous call, above the cap of ${Math.round(maxGap)} ms with no fault in between`));
      }
    }
  }
  return { goal: "G8", violations, detail: `${gaps} retry gaps: ${storms} too short, ${stalls} too long` };
}

function cadenceViolation(index: RunIndex, c1: CallSpan, c2: CallSpan, what: string): Violation {
  return { goal: "G8", gid: c1.gid, message: `branch ${c1.branchId} op ${c1.op}: ${what}`, events: [{ call: c1 }, { call: c2 }, ...eventsAround(index, c1.gid, c2.start)] };
}
