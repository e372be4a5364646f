import type { BranchFault, NemesisEvent, ParticipantCall } from "../contracts.ts";

/** One branch call as the participant saw it: its `start` and `end` lines joined by (pid, callId). */
export interface CallSpan {
  callId: string;
  pid: number;
  gid: string;
  branchId: string;
  op: string;
  path: string;
  start: number;
  /** When the answer was sent, or when the participant was killed; undefined: neither is known. */
  end?: number;
  /** True when `end` is the participant's kill, not an answer. */
  endedByKill?: boolean;
  result?: string;
  fault?: BranchFault;
}

/** The participant's pid from a nemesis event, if its detail names one. */
function pidOf(event: NemesisEvent): number | undefined {
  const pid = event.detail?.["pid"];
  return typeof pid === "number" ? pid : undefined;
}

/**
 * Joins start and end lines into spans. A start without an end belongs to a participant that was
 * killed mid-call: it ends at the first participant kill (a nemesis `start` whose target starts
 * with "participant", and whose detail.pid is this pid when the event names one) after the last
 * line that process wrote (a killed process writes nothing more; the nemesis names the
 * participant by index, not by pid).
 */
export function callSpans(calls: ParticipantCall[], nemesis: NemesisEvent[]): CallSpan[] {
  const ends = new Map<string, Extract<ParticipantCall, { type: "end" }>>();
  for (const c of calls) if (c.type === "end") ends.set(`${c.pid}:${c.callId}`, c);
  const kills = nemesis
    .filter((e) => e.phase === "start" && e.target.startsWith("participant"))
    .sort((a, b) => a.at - b.at);
  const lastLineAt = new Map<number, number>();
  for (const c of calls) lastLineAt.set(c.pid, Math.max(lastLineAt.get(c.pid) ?? -Infinity, c.at));
  const spans: CallSpan[] = [];
  for (const c of calls) {
    if (c.type !== "start") continue;
    const span: CallSpan = { callId: c.callId, pid: c.pid, gid: c.gid, branchId: c.branchId, op: c.op, path: c.path, start: c.at };
    const end = ends.get(`${c.pid}:${c.callId}`);
    if (end) {
      span.end = end.at;
      span.result = end.result;
      if (end.fault !== undefined) span.fault = end.fault;
    } else {
      const silentFrom = Math.max(c.at, lastLineAt.get(c.pid) ?? c.at);
      const kill = kills.find((k) => (pidOf(k) === undefined ? k.at >= silentFrom : pidOf(k) === c.pid && k.at >= c.at));
      if (kill) {
        span.end = kill.at;
        span.endedByKill = true;
      }
    }
    spans.push(span);
  }
  return spans.sort((a, b) => a.start - b.start);
}
