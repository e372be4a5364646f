/**
 * A repeated submit never hurries a transaction past its backoff (docs/deviations.md D2).
 *
 * Found by the chaos harness (`npm run chaos -- --store postgres --seed 1 --profile full`, gids
 * c1-1508 and c1-8780, G8 "too short"): the load's deliberate duplicate submit of a saga whose
 * first pass had just failed started a second pass at once, so the participant saw the retry
 * well before the retry interval. The duplicate must answer and leave the next pass to the cron.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

let dtx: TestCoordinator;
let busi: Busi;

beforeAll(async () => {
  busi = await startBusi();
  // The first failed pass backs off twice the 2 s interval, capped at 4 s, without jitter: a
  // clear window for "before it has run out".
  dtx = await startCoordinator({ retryInterval: 2, maxRetryInterval: 4, retryJitter: 0 });
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
});
beforeEach(() => busi.reset());

const calls = (gid: string): string[] => busi.calls({ gid }).map((c) => `${c.name}:${c.outcome}`);

describe("a repeated submit or abort during the backoff", () => {
  it("answers without calling the participant, and the pass runs once the backoff has run out", async () => {
    const gid = "resubmit-backoff";
    busi.program({ gid, name: "TransOut" }, "ERROR");
    const body = sagaBody(gid, (n) => busi.url(n));
    expect((await dtx.client.submit(body)).status).toBe(200);
    await dtx.client.settle();
    expect(calls(gid)).toEqual(["TransOut:ERROR"]);
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "submitted" });

    // 3 s into a 4 s backoff: the duplicate (with and without wait_result) calls nobody.
    await dtx.client.advance(3000);
    expect((await dtx.client.submit(body)).status).toBe(200);
    const waited = await dtx.client.submit({ ...body, wait_result: true });
    expect(waited.status).toBe(425);
    expect(waited.body).toMatchObject({ dtm_result: "ONGOING" });
    await dtx.client.settle();
    expect(calls(gid)).toEqual(["TransOut:ERROR"]);

    // Past the backoff a repeated submit runs the next pass at once, as dtm does.
    await dtx.client.advance(1500);
    const late = await dtx.client.submit({ ...body, wait_result: true });
    expect(late.status).toBe(200);
    expect(calls(gid)).toEqual(["TransOut:ERROR", "TransOut:SUCCESS", "TransIn:SUCCESS"]);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("a repeated abort of a TCC whose Cancel is in its backoff calls nobody until the backoff has run out", async () => {
    const gid = "reabort-backoff";
    const post = (route: string, body: unknown) => dtx.client.call("POST", `/api/dtmsvr/${route}`, body);
    expect((await post("prepare", { gid, trans_type: "tcc" })).status).toBe(200);
    const branch = { gid, trans_type: "tcc", branch_id: "01", data: "{}", confirm: busi.url("Confirm"), cancel: busi.url("Cancel") };
    expect((await post("registerBranch", branch)).status).toBe(200);
    busi.program({ gid, name: "Cancel" }, "ERROR");
    expect((await post("abort", { gid, trans_type: "tcc", wait_result: true })).status).toBe(425);
    expect(calls(gid)).toEqual(["Cancel:ERROR"]);

    await dtx.client.advance(3000);
    expect((await post("abort", { gid, trans_type: "tcc", wait_result: true })).status).toBe(425);
    await dtx.client.settle();
    expect(calls(gid)).toEqual(["Cancel:ERROR"]);

    await dtx.client.advance(1500);
    expect((await post("abort", { gid, trans_type: "tcc", wait_result: true })).status).toBe(200);
    expect(calls(gid)).toEqual(["Cancel:ERROR", "Cancel:SUCCESS"]);
    expect(await dtx.client.status(gid)).toBe("failed");
  });

  it("a resubmit of a prepared saga still runs at once", async () => {
    const gid = "resubmit-prepared";
    const body = sagaBody(gid, (n) => busi.url(n));
    expect((await dtx.client.call("POST", "/api/dtmsvr/prepare", body)).status).toBe(200);
    expect((await dtx.client.submit({ ...body, wait_result: true })).status).toBe(200);
    expect(calls(gid)).toEqual(["TransOut:SUCCESS", "TransIn:SUCCESS"]);
  });
});
