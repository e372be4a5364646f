/**
 * Crash one of the participants' databases that does not hold the coordinator store (kill -9, or
 * PostgreSQL's immediate shutdown) for 2–6 s: branches on it fail or hang mid-transaction, XA
 * branches may be left prepared, and the coordinators' retries must finish them once it is back.
 */
import type { AccountDb } from "../../contracts.ts";
import type { Fault } from "../fault.ts";
import { sleep } from "../../world/poll.ts";

const ACCOUNT_DBS: readonly AccountDb[] = ["postgres", "mysql", "redis"];

export const participantDbCrash: Fault = {
  name: "participant-db-crash",
  weight: (shape) => (shape.store === "sqlite" ? 0 : 1),
  plan(rng, shape) {
    return { target: rng.pick(ACCOUNT_DBS.filter((db) => db !== shape.store)), durationMs: Math.round(rng.between(2_000, 6_000)) };
  },
  async inject(plan, world) {
    const server = world.dbs.servers[plan.target as AccountDb];
    await server.crash();
    await sleep(plan.durationMs);
    await server.restart();
  },
};
