/**
 * Requests and fencing (docs/fencing.md): two coordinators on one PostgreSQL schema. A request
 * that would drive a transaction (resubmit, abort) takes the claim with a status CAS, but never
 * away from a pass that holds it: a resubmit sent to the other coordinator while a pass runs does
 * not start a second pass (which would call the same branch at once).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { PgArea } from "../helpers/store-areas.ts";

const area = new PgArea("e2e_fencing_req");
let busi: Busi;
let a: TestCoordinator;
let b: TestCoordinator;

beforeAll(async () => {
  busi = await startBusi();
  await area.open();
  const options = { store: { driver: "postgres" as const, url: area.url, schema: area.schema, poolSize: 4 }, cronInterval: 3600, retryInterval: 1, maxRetryInterval: 1 };
  [a, b] = await Promise.all([startCoordinator(options), startCoordinator(options)]);
});
afterAll(async () => {
  busi?.releaseHung();
  await Promise.all([a?.stop(), b?.stop()]);
  await area.close();
  await busi?.close();
});

describe("requests under fencing", () => {
  it("a resubmit to the other coordinator leaves a trans whose pass is running alone", async () => {
    const gid = "fenced-resubmit";
    // Only the first TransOut call hangs; any second one would answer at once.
    busi.program({ gid, name: "TransOut" }, "HANG");
    const body = sagaBody(gid, (n) => busi.url(n), { request_timeout: 30 });
    expect((await a.client.submit(body)).status).toBe(200);
    await busi.waitForCalls({ gid, name: "TransOut" }, 1);

    // docs/deviations.md D2: a resubmit of a submitted saga continues it, but here A's pass holds it.
    expect((await b.client.submit(body)).status).toBe(200);
    await b.client.settle();
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut"]);
    expect((await b.client.query(gid)).transaction?.owner).toBeTruthy();

    // Once A's pass has ended (and given its claim up) and its backoff has run out, a resubmit
    // runs the next pass at once (before that it leaves the trans to the cron: resubmit-backoff.test.ts).
    busi.releaseHung();
    await a.client.settle();
    expect((await b.client.query(gid)).transaction).toMatchObject({ status: "submitted" });
    expect((await b.client.query(gid)).transaction?.owner).toBeUndefined();
    await b.client.advance(2000);
    expect((await b.client.submit({ ...body, wait_result: true })).status).toBe(200);
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.outcome}`)).toEqual(["TransOut:HANG", "TransOut:SUCCESS", "TransIn:SUCCESS"]);
    expect(await a.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
  });
});
