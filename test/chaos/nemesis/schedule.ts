/**
 * The nemesis schedule of a run, drawn up front from the seed: which fault, when, on what and
 * for how long. Pure over (seed, profile, world shape, fault list), so a seed replays the same
 * schedule (test/unit/chaos-world-schedule.test.ts).
 */
import type { Profile } from "../profile.ts";
import { forkRng } from "../rng.ts";
import type { Rng } from "../rng.ts";
import type { Fault, FaultPlan, WorldShape } from "./fault.ts";

export interface ScheduledFault {
  /** When it starts, from the start of the load (ms). */
  atMs: number;
  fault: string;
  plan: FaultPlan;
}

/** Faults never overlap: the next one starts at least this long after the previous one healed. */
const HEALED_GAP_MS = 2_000;

function pickWeighted(rng: Rng, faults: readonly Fault[], shape: WorldShape): Fault {
  const weights = faults.map((f) => f.weight(shape));
  const total = weights.reduce((a, b) => a + b, 0);
  if (total <= 0) throw new Error(`no fault applies to store ${shape.store}`);
  let draw = rng.float() * total;
  for (const [i, fault] of faults.entries()) {
    draw -= weights[i]!;
    if (draw < 0) return fault;
  }
  return faults[faults.length - 1]!;
}

/** Every fault that could run within `profile.maxRunMs`; the nemesis stops early when the run ends. */
export function faultSchedule(seed: number, profile: Profile, shape: WorldShape, faults: readonly Fault[]): ScheduledFault[] {
  const rng = forkRng(seed, "nemesis");
  const schedule: ScheduledFault[] = [];
  let at = profile.firstFaultAfterMs;
  while (at < profile.maxRunMs) {
    const fault = pickWeighted(rng, faults, shape);
    const plan = fault.plan(rng, shape);
    schedule.push({ atMs: Math.round(at), fault: fault.name, plan });
    const gap = Math.max(profile.faultMinGapMs, rng.exponential(profile.faultMeanGapMs));
    at += Math.max(gap, plan.durationMs + HEALED_GAP_MS);
  }
  return schedule;
}
