/**
 * SIGSTOP a coordinator for longer than its lease (3–8 s with the test timings), then SIGCONT:
 * the other coordinator takes its transactions over, and when the paused one wakes up its
 * stale writes must lose on the fence and its calls must not overlap the new owner's (G7).
 */
import type { Fault } from "../fault.ts";
import { sleep } from "../../world/poll.ts";

export const coordinatorPause: Fault = {
  name: "coordinator-pause",
  weight: () => 2,
  plan(rng, shape) {
    const index = rng.int(0, shape.coordinators - 1);
    return { target: `coordinator-${index}`, durationMs: Math.round(rng.between(3_000, 8_000)), detail: { index } };
  },
  startDetail: (plan, world) => ({ pid: world.coordinators[(plan.detail as { index: number }).index]!.child.pid }),
  async inject(plan, world) {
    const { index } = plan.detail as { index: number };
    const child = world.coordinators[index]!.child;
    child.pause();
    try {
      await sleep(plan.durationMs);
    } finally {
      child.resume();
    }
  },
};
