/**
 * SIGKILL a coordinator (sometimes both, within a second of each other) and start it again after
 * 0–3 s on the same port and store: nothing acknowledged may be lost, and the survivors (or the
 * restarted one) must pick up its unfinished transactions once their leases run out.
 */
import type { Fault } from "../fault.ts";
import { sleep } from "../../world/poll.ts";

export const coordinatorKill: Fault = {
  name: "coordinator-kill",
  weight: () => 3,
  plan(rng, shape) {
    const both = shape.coordinators > 1 && rng.float() < 0.15;
    const index = rng.int(0, shape.coordinators - 1);
    return {
      target: both ? "coordinators-all" : `coordinator-${index}`,
      durationMs: Math.round(rng.between(0, 3_000)),
      detail: { indexes: both ? Array.from({ length: shape.coordinators }, (_, i) => i) : [index], gapMs: Math.round(rng.between(0, 1_000)) },
    };
  },
  startDetail: (plan, world) => ({ pids: (plan.detail as { indexes: number[] }).indexes.map((i) => world.coordinators[i]!.child.pid) }),
  async inject(plan, world, note) {
    const { indexes, gapMs } = plan.detail as { indexes: number[]; gapMs: number };
    const victims = indexes.map((i) => world.coordinators[i]!);
    for (const [n, c] of victims.entries()) {
      if (n > 0) await sleep(gapMs);
      await c.child.kill("SIGKILL");
    }
    await sleep(plan.durationMs);
    const started = Date.now();
    for (const c of victims) await c.child.startSupervised();
    note({ restartMs: Date.now() - started });
  },
};
