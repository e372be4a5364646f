/**
 * saga-bench --critical-path: where one saga's latency goes at C = 1. The coordinator stamps its
 * socket reads and writes (./critical-path-hook.mjs); here the stamps of a measured window are cut
 * into sagas at each arriving request, and for the most common sequence of events the median gap
 * between consecutive events is taken. A gap that starts with a write to the store (or to a
 * participant) and ends with the read of its answer is a round trip the coordinator waits for;
 * every other gap up to the answer is the coordinator's own work; from the answer to the next
 * request is the driver's turnaround. At C > 1 the sagas' events interleave and the cut means
 * nothing; saga-bench reports C = 1 levels only.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { median } from "./util.ts";

/** One coordinator process's stamps (kinds as the hook names them, CLOCK_MONOTONIC µs). */
export interface ProcessEvents {
  kinds: string[];
  timesUs: number[];
  truncated?: boolean;
}

export interface CriticalPathSegment {
  from: string;
  to: string;
  /** What the coordinator did between the two events. */
  waitingFor: "store" | "participant" | null;
  medianUs: number;
}

export interface CriticalPath {
  /** Sagas in the window, and how many of them had the most common sequence (the ones measured). */
  sagas: number;
  measured: number;
  sequence: string[];
  segments: CriticalPathSegment[];
  /** Sums of the segment medians: the coordinator's own work, and the round trips it waited for. */
  coordinatorUs: number;
  storeUs: number;
  participantUs: number;
  /** Median from the request's arrival to the answer's write, and from there to the next request. */
  requestToAnswerUs: number;
  turnaroundUs: number;
}

/** Every `<pid>.json` the hook wrote into `dir` (none if the coordinator did not exit cleanly). */
export function readCriticalPathEvents(dir: string): ProcessEvents[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(readFileSync(path.join(dir, f), "utf8")) as ProcessEvents);
}

function waitingFor(from: string, to: string): "store" | "participant" | null {
  if (from === "store>" && to === "store<") return "store";
  if (from === "call>" && to === "call<") return "participant";
  return null;
}

/** The critical path of the sagas whose request arrived within [startUs, endUs], or null if none. */
export function criticalPath(processes: readonly ProcessEvents[], window: { startUs: number; endUs: number }): CriticalPath | null {
  type Event = { kind: string; t: number };
  const sagas: Event[][] = [];
  const turnarounds: number[] = [];
  for (const p of processes) {
    let current: Event[] | null = null;
    for (let i = 0; i < p.kinds.length; i++) {
      const t = p.timesUs[i] ?? NaN;
      const kind = p.kinds[i] ?? "";
      if (kind === "req" && current?.[0]?.kind === "req" && current.length === 1) continue; // a request in two reads
      if (kind === "req") {
        const answered = current?.findLast((e) => e.kind === "res");
        if (current && answered) turnarounds.push(t - answered.t);
        current = t >= window.startUs && t <= window.endUs ? [{ kind, t }] : null;
        if (current) sagas.push(current);
      } else {
        current?.push({ kind, t });
      }
    }
  }
  // Up to the answer: what comes after it (a write the pass makes once it answered) is off the path.
  const paths = sagas.map((s) => s.slice(0, s.findIndex((e) => e.kind === "res") + 1)).filter((s) => s.length > 1);
  const bySequence = new Map<string, Event[][]>();
  for (const s of paths) {
    const key = s.map((e) => e.kind).join(" ");
    const same = bySequence.get(key);
    if (same) same.push(s);
    else bySequence.set(key, [s]);
  }
  const common = [...bySequence.values()].sort((a, b) => b.length - a.length)[0];
  if (!common?.[0]) return null;
  const sequence = common[0].map((e) => e.kind);
  const segments: CriticalPathSegment[] = sequence.slice(1).map((to, i) => {
    const from = sequence[i] ?? "";
    return { from, to, waitingFor: waitingFor(from, to), medianUs: Math.round(median(common.map((s) => (s[i + 1]?.t ?? NaN) - (s[i]?.t ?? NaN)))) };
  });
  const total = (pick: (s: CriticalPathSegment) => boolean): number => segments.filter(pick).reduce((a, s) => a + s.medianUs, 0);
  return {
    sagas: sagas.length,
    measured: common.length,
    sequence,
    segments,
    coordinatorUs: total((s) => s.waitingFor === null),
    storeUs: total((s) => s.waitingFor === "store"),
    participantUs: total((s) => s.waitingFor === "participant"),
    requestToAnswerUs: Math.round(median(common.map((s) => (s[s.length - 1]?.t ?? NaN) - (s[0]?.t ?? NaN)))),
    turnaroundUs: Math.round(median(turnarounds)),
  };
}

/** The critical path as a Markdown table with its sums. */
export function formatCriticalPath(c: number, cp: CriticalPath): string {
  const rows = cp.segments.map((s) => `| ${s.from} → ${s.to} | ${s.waitingFor ? `waiting for the ${s.waitingFor}` : "coordinator"} | ${s.medianUs} |`);
  return [
    `Critical path at C = ${c} (${cp.measured} of ${cp.sagas} sagas had this sequence; medians, µs):`,
    "| from → to | what | µs |",
    "|---|---|---:|",
    ...rows,
    `coordinator ${cp.coordinatorUs} µs, store round trips ${cp.storeUs} µs, participant round trips ${cp.participantUs} µs; request to answer ${cp.requestToAnswerUs} µs (median); answer to next request ${cp.turnaroundUs} µs (the driver)`,
  ].join("\n");
}
