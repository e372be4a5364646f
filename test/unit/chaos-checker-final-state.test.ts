/**
 * readFinalTrans against a real coordinator on a Redis store reached through a TCP proxy: a
 * stored gid comes back with its status, type and branches, an unknown one without a status;
 * while the store is black-holed the query API answers 503 and readFinalTrans retries until
 * the heal instead of failing the check.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFinalTrans } from "../chaos/checker/final-state.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { sagaBody } from "../helpers/client.ts";
import type { OpenedOutageStore } from "../helpers/outage-stores.ts";
import { OUTAGE_STORES } from "../helpers/outage-stores.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const redis = OUTAGE_STORES.find((s) => s.name === "redis")!;
let area: OpenedOutageStore;
let proxy: TcpProxy;
let dtx: TestCoordinator;

beforeAll(async () => {
  area = await redis.open("chaos-final");
  proxy = await TcpProxy.start(redis.target());
  dtx = await startCoordinator({ store: { ...area.store((url) => TcpProxy.through(url, proxy)), timeout: 1 } });
});
afterAll(async () => {
  proxy?.heal();
  await dtx?.stop();
  await proxy?.close();
  await area?.close();
});

describe("readFinalTrans", () => {
  it("reads status, type and branches of every gid, in the order asked", async () => {
    const gids = Array.from({ length: 12 }, (_, i) => `chaos-final-${i}`);
    for (const gid of gids) {
      const r = await dtx.client.call("POST", "/api/dtmsvr/prepare", sagaBody(gid, () => "http://127.0.0.1:9/api/unused"));
      expect(r.status, r.text).toBe(200);
    }
    const final = await readFinalTrans(dtx.url, [...gids, "chaos-final-unknown"], { concurrency: 3 });
    expect(final.map((f) => f.gid)).toEqual([...gids, "chaos-final-unknown"]);
    expect(final[0]).toEqual({
      gid: "chaos-final-0",
      status: "prepared",
      transType: "saga",
      branches: [
        { branchId: "01", op: "compensate", status: "prepared" },
        { branchId: "01", op: "action", status: "prepared" },
        { branchId: "02", op: "compensate", status: "prepared" },
        { branchId: "02", op: "action", status: "prepared" },
      ],
    });
    expect(final.at(-1)).toEqual({ gid: "chaos-final-unknown", branches: [] });
  });

  it("retries through a store outage (503 with Retry-After) and answers once the store is back", { timeout: 30_000 }, async () => {
    const gid = "chaos-final-outage";
    expect((await dtx.client.call("POST", "/api/dtmsvr/prepare", { gid, trans_type: "tcc" })).status).toBe(200);
    proxy.blackHole();
    const retries: string[] = [];
    const final = await readFinalTrans(`${dtx.url}/api/dtmsvr`, [gid], {
      maxDelayMs: 300,
      onRetry: (_gid, reason) => {
        retries.push(reason);
        proxy.heal();
      },
    });
    expect(retries[0]).toBe("HTTP 503");
    expect(final).toEqual([{ gid, status: "prepared", transType: "tcc", branches: [] }]);
  });

  it("gives up after its attempts, naming the gid and the last error", async () => {
    proxy.blackHole();
    try {
      await expect(readFinalTrans(dtx.url, ["chaos-final-0"], { attempts: 2, maxDelayMs: 100 })).rejects.toThrow("query chaos-final-0: gave up after 2 attempts (HTTP 503)");
    } finally {
      proxy.heal();
    }
  });
});
