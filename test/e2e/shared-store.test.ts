/**
 * Scale-out: two coordinators on one PostgreSQL database (and one MySQL database, and one
 * Redis), the way dtx runs several stateless instances. Sagas are submitted to either; half of
 * them need a retry, which whichever coordinator's cron claims first performs, both crons running
 * at once (driven through the test-control API, each on its coordinator's own clock). Every saga
 * must succeed with each participant call made exactly as often as its outcomes require: no saga
 * is processed twice, none is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { MysqlArea, PgArea, RedisArea } from "../helpers/store-areas.ts";

const SAGAS = 40;

let busi: Busi;
beforeAll(async () => {
  busi = await startBusi();
});
afterAll(async () => {
  await busi.close();
});

const areas = [
  { name: "postgres", area: new PgArea("e2e_shared"), driver: "postgres" as const },
  { name: "mysql", area: new MysqlArea("e2e_shared"), driver: "mysql" as const },
  { name: "redis", area: new RedisArea("e2e_shared"), driver: "redis" as const },
];

describe.each(areas)("two coordinators sharing one $name database", ({ area, driver }) => {
  let a: TestCoordinator;
  let b: TestCoordinator;

  beforeAll(async () => {
    await area.open();
    const store = {
      driver, url: area.url, poolSize: 4,
      ...(area instanceof PgArea ? { schema: area.schema } : {}),
      ...(area instanceof RedisArea ? { prefix: area.prefix } : {}),
    };
    // Started together: both migrate the empty database at once.
    // Lease and retry 1 s (no backoff growth). The crons do not poll on their own (an hour): the
    // test runs their rounds through the test-control API, 4 transactions a round, so that both
    // coordinators claim some of the retries.
    const options = { store, cronInterval: 3600, cronBatchSize: 4, retryInterval: 1, maxRetryInterval: 1 };
    [a, b] = await Promise.all([startCoordinator(options), startCoordinator(options)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await area.close();
  });

  it("a saga submitted to one is visible at the other", async () => {
    const gid = `shared-visible-${driver}`;
    expect((await a.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }))).status).toBe(200);
    expect(await b.client.status(gid)).toBe("succeed");
    expect(await b.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
  });

  it(`${SAGAS} sagas submitted to either, half retried by whichever cron claims them: each finishes exactly once`, async () => {
    const gids = Array.from({ length: SAGAS }, (_, i) => `shared-${driver}-${String(i).padStart(2, "0")}`);
    const retried = new Set(gids.filter((_, i) => i % 2 === 1));
    for (const gid of retried) busi.program({ gid, name: "TransIn" }, gids.indexOf(gid) % 4 === 1 ? "ONGOING" : "ERROR");

    const acks = await Promise.all(gids.map((gid, i) => (i % 2 === 0 ? a : b).client.submit(sagaBody(gid, (n) => busi.url(n)))));
    expect(acks.map((r) => r.status)).toEqual(gids.map(() => 200));
    await Promise.all([a.client.settle(), b.client.settle()]);
    // Both crons at once, 2 s later on their clocks (past retry + jitter): each claims 4 at a time
    // until nothing is due, so the two take the retries between them; a round answers when its
    // passes have ended. A second pair of rounds finds nothing left.
    const claimed = await Promise.all([a.client.cron(2000), b.client.cron(2000)]);
    expect(claimed[0] + claimed[1]).toBe(retried.size);
    expect(await Promise.all([a.client.cron(2000), b.client.cron(2000)])).toEqual([0, 0]);
    for (const [i, gid] of gids.entries()) expect(await (i % 3 === 0 ? a : b).client.status(gid), gid).toBe("succeed");

    // The retries were claimed by both crons, and every pass gave its claim up when it ended
    // (docs/fencing.md: a finished pass leaves no owner behind).
    expect(claimed[0]).toBeGreaterThan(0);
    expect(claimed[1]).toBeGreaterThan(0);
    const owners = await area.owners();
    expect(gids.map((gid) => owners.get(gid))).toEqual(gids.map(() => ""));
    for (const gid of gids) {
      expect(busi.calls({ gid, name: "TransOut" }), gid).toHaveLength(1);
      expect(busi.calls({ gid, name: "TransIn" }).map((c) => c.outcome), gid).toEqual(
        retried.has(gid) ? [gids.indexOf(gid) % 4 === 1 ? "ONGOING" : "ERROR", "SUCCESS"] : ["SUCCESS"],
      );
      expect(busi.calls({ gid, op: "compensate" }), gid).toEqual([]);
      expect(await a.client.branchStatuses(gid), gid).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    }
  });
});
