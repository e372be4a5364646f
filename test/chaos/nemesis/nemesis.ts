/**
 * Runs a fault schedule against the live world, one fault at a time, writing a `start` and an
 * `end` NemesisEvent per fault to nemesis.jsonl. It stops between faults once `shouldStop` says
 * so; a fault in progress always runs to its heal.
 */
import { appendFileSync } from "node:fs";
import type { NemesisEvent } from "../contracts.ts";
import type { World } from "../world/world.ts";
import { sleep } from "../world/poll.ts";
import type { Fault } from "./fault.ts";
import type { ScheduledFault } from "./schedule.ts";

export interface NemesisResult {
  /** Faults injected, by name. */
  counts: Record<string, number>;
  /** When the last fault was healed (or the nemesis started, if none ran). */
  lastFaultEndedAt: number;
  /** Faults that failed to inject or heal (the run goes on; quiesce heals the world). */
  errors: string[];
}

const POLL_MS = 200;

export async function runNemesis(opts: {
  schedule: readonly ScheduledFault[];
  faults: readonly Fault[];
  world: World;
  eventsFile: string;
  startedAt: number;
  /** The least time between one fault's heal and the next fault's start (the profile's faultMinGapMs). */
  minGapMs: number;
  shouldStop: () => boolean;
  /** Progress lines for the console. */
  say?: (line: string) => void;
}): Promise<NemesisResult> {
  const byName = new Map(opts.faults.map((f) => [f.name, f]));
  const result: NemesisResult = { counts: {}, lastFaultEndedAt: opts.startedAt, errors: [] };
  const write = (event: NemesisEvent): void => appendFileSync(opts.eventsFile, `${JSON.stringify(event)}\n`);
  let healedAt = 0;
  for (const item of opts.schedule) {
    // The schedule's time, but never sooner than the minimum gap after the last heal: a restart
    // on a loaded machine can take far longer than planned, and faults must not run back to back.
    const due = Math.max(opts.startedAt + item.atMs, healedAt + opts.minGapMs);
    while (Date.now() < due && !opts.shouldStop()) await sleep(POLL_MS);
    if (opts.shouldStop()) break;
    const fault = byName.get(item.fault)!;
    const extra: Record<string, unknown> = {};
    write({ at: Date.now(), phase: "start", fault: item.fault, target: item.plan.target, detail: { durationMs: item.plan.durationMs, ...item.plan.detail, ...fault.startDetail?.(item.plan, opts.world) } });
    opts.say?.(`nemesis: ${item.fault} ${item.plan.target} for ${item.plan.durationMs} ms`);
    try {
      await fault.inject(item.plan, opts.world, (detail) => Object.assign(extra, detail));
    } catch (error) {
      const message = `${item.fault} on ${item.plan.target}: ${(error as Error).message}`;
      result.errors.push(message);
      extra["error"] = message;
      opts.say?.(`nemesis: ${message}`);
    }
    result.lastFaultEndedAt = Date.now();
    healedAt = result.lastFaultEndedAt;
    write({ at: result.lastFaultEndedAt, phase: "end", fault: item.fault, target: item.plan.target, detail: extra });
    result.counts[item.fault] = (result.counts[item.fault] ?? 0) + 1;
  }
  return result;
}
