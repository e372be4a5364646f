/**
 * SIGKILL a participant process mid-call and start it again after 0.5–3 s on the same port: calls
 * in flight are lost or half done (its local transactions roll back, or committed without an
 * answer), and the coordinators' retries plus the barrier must apply each effect exactly once.
 */
import type { Fault } from "../fault.ts";
import { sleep } from "../../world/poll.ts";

export const participantKill: Fault = {
  name: "participant-kill",
  weight: () => 2,
  plan(rng, shape) {
    const index = rng.int(0, shape.participants - 1);
    return { target: `participant-${index}`, durationMs: Math.round(rng.between(500, 3_000)), detail: { index } };
  },
  // The checker ends the killed process's unanswered calls at the kill: it needs the pid.
  startDetail: (plan, world) => ({ pid: world.participants[(plan.detail as { index: number }).index]!.child.pid }),
  async inject(plan, world) {
    const { index } = plan.detail as { index: number };
    const child = world.participants[index]!.child;
    await child.kill("SIGKILL");
    await sleep(plan.durationMs);
    await child.startSupervised();
  },
};
