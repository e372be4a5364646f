/**
 * What a nemesis fault is. Each fault lives in its own file in ./faults/ and is listed once in
 * ./faults/index.ts; adding a fault touches nothing else. A fault is split in two so a seed
 * replays the same schedule: `plan` draws everything random up front (pure over the rng and the
 * world's shape), `inject` carries the plan out on the running world and heals before it resolves.
 */
import type { StoreKind } from "../contracts.ts";
import type { Rng } from "../rng.ts";
import type { World } from "../world/world.ts";

/** The shape of a world, known before it starts (enough to plan a schedule). */
export interface WorldShape {
  store: StoreKind;
  coordinators: number;
  participants: number;
}

/** One planned fault: its target and timings, drawn from the seed. */
export interface FaultPlan {
  /** e.g. "coordinator-1", "postgres", "participant-0", "store-links". */
  target: string;
  /** How long the fault lasts before it is healed (ms). */
  durationMs: number;
  /** Anything else the fault drew (printed in nemesis.jsonl). */
  detail?: Record<string, unknown>;
}

export interface Fault {
  /** Its name in nemesis.jsonl and the report (the file's name). */
  readonly name: string;
  /** How often it is picked relative to the others (0 = never). */
  weight(shape: WorldShape): number;
  plan(rng: Rng, shape: WorldShape): FaultPlan;
  /** What only the live world knows, added to the `start` event (e.g. the pid about to be killed). */
  startDetail?(plan: FaultPlan, world: World): Record<string, unknown>;
  /**
   * Injects the fault, waits `plan.durationMs`, heals it. `note` adds fields to the end event
   * (e.g. a restart's duration). Must leave the world healed when it resolves or rejects.
   */
  inject(plan: FaultPlan, world: World, note: (detail: Record<string, unknown>) => void): Promise<void>;
}
