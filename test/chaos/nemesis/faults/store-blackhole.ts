/**
 * Black-hole the coordinators' links to the store (all of them, or one coordinator's) through
 * their TCP proxies for 2–8 s, then heal: store calls hang until their timeout, the API must
 * answer 503 rather than 500, and nothing acknowledged before may be lost. Not for SQLite (the
 * store is a local file).
 */
import type { Fault } from "../fault.ts";
import { sleep } from "../../world/poll.ts";

export const storeBlackhole: Fault = {
  name: "store-blackhole",
  weight: (shape) => (shape.store === "sqlite" ? 0 : 2),
  plan(rng, shape) {
    const all = rng.float() < 0.5;
    const index = rng.int(0, shape.coordinators - 1);
    return {
      target: all ? "store-links-all" : `store-link-${index}`,
      durationMs: Math.round(rng.between(2_000, 8_000)),
      detail: { indexes: all ? Array.from({ length: shape.coordinators }, (_, i) => i) : [index] },
    };
  },
  async inject(plan, world) {
    const { indexes } = plan.detail as { indexes: number[] };
    const proxies = indexes.map((i) => world.coordinators[i]!.storeProxy!);
    for (const proxy of proxies) proxy.blackHole();
    try {
      await sleep(plan.durationMs);
    } finally {
      for (const proxy of proxies) proxy.heal();
    }
  },
};
