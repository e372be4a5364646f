/**
 * Crash the coordinator store's database server (PostgreSQL: immediate shutdown; MariaDB and
 * Redis: kill -9), keep it down 2–8 s, start it again on the same data: every acknowledged
 * transaction must survive, and the coordinators must recover once it answers. With SQLite the
 * store lives in the coordinator (coordinator-kill crashes it), so this crashes one of the
 * participants' databases instead.
 */
import type { AccountDb } from "../../contracts.ts";
import type { Fault } from "../fault.ts";
import { sleep } from "../../world/poll.ts";

const ACCOUNT_DBS: readonly AccountDb[] = ["postgres", "mysql", "redis"];

export const storeCrash: Fault = {
  name: "store-crash",
  weight: () => 1,
  plan(rng, shape) {
    const target = shape.store === "sqlite" ? rng.pick(ACCOUNT_DBS) : shape.store;
    return { target, durationMs: Math.round(rng.between(2_000, 8_000)) };
  },
  async inject(plan, world, note) {
    const server = world.dbs.servers[plan.target as AccountDb];
    await server.crash();
    await sleep(plan.durationMs);
    const started = Date.now();
    await server.restart();
    note({ restartMs: Date.now() - started });
  },
};
