// The scenario examples in examples/ run against an in-process coordinator and the test databases;
// each returns what happened (final statuses and balances), asserted exactly here.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DtxClient as SdkClient } from "../../sdk/src/index.ts";
import type { ChildCoordinator, TestCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator, startCoordinator } from "../helpers/coordinator.ts";
import { testServiceUrls } from "../helpers/services.ts";
import type { ExampleOptions } from "../../examples/lib/common.ts";
import { run as runBankTransferSaga } from "../../examples/bank-transfer-saga.ts";
import { run as runTccFrozenBalance } from "../../examples/tcc-frozen-balance-redis.ts";
import { MSG_TIMEOUT_TO_FAIL, run as runOrderInventoryMsg } from "../../examples/order-inventory-msg.ts";
import { run as runWorkflowMixed } from "../../examples/workflow-mixed.ts";
import { freePort } from "../helpers/processes.ts";

let dtx: TestCoordinator;
let opts: ExampleOptions;

beforeAll(async () => {
  dtx = await startCoordinator();
  const urls = testServiceUrls();
  opts = { dtxUrl: dtx.url, pgUrl: urls.pg, mysqlUrl: urls.mysql, redisUrl: urls.redis };
});

afterAll(async () => {
  await dtx?.stop();
});


describe("examples", () => {
  it("bank-transfer-saga: moves 30 from Postgres to MySQL, then compensates an overdraft", async () => {
    const r = await runBankTransferSaga(opts);
    expect(r.initial).toEqual({ pgAccount: 100, mysqlAccount: 100 });
    expect(r.transfer).toEqual({ gid: r.transfer.gid, status: "succeed", balances: { pgAccount: 70, mysqlAccount: 130 } });
    expect(r.overdraft.status).toBe("failed");
    expect(r.overdraft.error).toContain("insufficient balance");
    expect(r.overdraft.balances).toEqual({ pgAccount: 70, mysqlAccount: 130 });
    // the credit to MySQL ran and was compensated; the refused debit's compensation was a no-op
    const branches = (await dtx.client.query(r.overdraft.gid)).branches.map((b) => `${b.branch_id} ${b.op} ${b.status}`).sort();
    expect(branches).toEqual(["01 action succeed", "01 compensate succeed", "02 action failed", "02 compensate succeed"]);
  });

  it("tcc-frozen-balance-redis: confirms a group payment, then cancels the freeze when a Try finds too little", async () => {
    const r = await runTccFrozenBalance(opts);
    expect(r.initial).toEqual({ alice: { available: 100, frozen: 0 }, bob: { available: 50, frozen: 0 }, carol: { available: 0, frozen: 0 } });
    const after = { alice: { available: 70, frozen: 0 }, bob: { available: 20, frozen: 0 }, carol: { available: 60, frozen: 0 } };
    expect(r.payment).toEqual({ gid: r.payment.gid, status: "succeed", balances: after });
    expect(r.insufficientFunds.status).toBe("failed");
    expect(r.insufficientFunds.error).toContain("would make it negative");
    expect(r.insufficientFunds.balances).toEqual(after);
    // Alice's freeze was cancelled; Bob's refused Try left nothing to cancel; Carol was never reached
    const branches = (await dtx.client.query(r.insufficientFunds.gid)).branches.map((b) => `${b.branch_id} ${b.op} ${b.status}`).sort();
    expect(branches).toEqual(["01 cancel succeed", "01 confirm prepared", "02 cancel succeed", "02 confirm prepared"]);
  });

  it("order-inventory-msg: delivers the message, and after a crash before submit the check-back commits it", async () => {
    const client = dtx.client;
    const r = await runOrderInventoryMsg({
      ...opts,
      // the coordinator checks back once the prepared msg is past its timeout, then delivers
      awaitCheckBack: async (_sdk: SdkClient, gid: string) => {
        await client.cron((MSG_TIMEOUT_TO_FAIL + 1) * 1000);
        for (let i = 0; i < 5 && (await client.status(gid)) !== "succeed"; i++) await client.cron(60_000);
      },
    });
    expect(r.initialStock).toBe(10);
    expect(r.normal).toEqual({ gid: r.normal.gid, status: "succeed", orders: 1, stock: 7 });
    expect(r.crash.afterCrash).toEqual({ status: "prepared", orders: 1, stock: 7, error: "the order service crashed after its local commit, before submit" });
    expect(r.crash).toMatchObject({ status: "succeed", orders: 1, stock: 5 });
  });

  it("workflow-mixed: saga-, TCC- and XA-style branches commit together, or roll back in reverse", async () => {
    const r = await runWorkflowMixed(opts);
    expect(r.initial).toEqual({ wallet: 100, points: { available: 100, frozen: 0 }, stock: 10 });
    const after = { wallet: 70, points: { available: 80, frozen: 0 }, stock: 9 };
    expect(r.success).toEqual({
      gid: r.success.gid,
      status: "succeed",
      result: { paid: 30, points: 20, tracking: "T-home" },
      phase2: ["03 commit XA COMMIT", "02 commit confirm"],
      balances: after,
    });
    expect(r.failure).toEqual({
      gid: r.failure.gid,
      status: "failed",
      error: "cannot ship to nowhere",
      phase2: ["03 rollback XA ROLLBACK", "02 rollback cancel", "01 rollback refund"],
      balances: after,
    });
  });

  it("workflow-mixed: a workflow interrupted by SIGKILL of the coordinator is resumed by the restarted one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dtx-examples-"));
    const dbPath = join(dir, "dtx.db");
    const env = { DTX_HTTP_PORT: String(await freePort()) };
    let child: ChildCoordinator = await spawnCoordinator(dbPath, env);
    const killedWith: (NodeJS.Signals | number | null)[] = [];
    try {
      const r = await runWorkflowMixed({
        ...opts,
        dtxUrl: child.url,
        coordinatorCrash: {
          kill: async () => {
            killedWith.push(await child.kill("SIGKILL"));
          },
          restart: async (gid) => {
            child = await spawnCoordinator(dbPath, env);
            expect(await child.client.status(gid)).toBe("prepared");
            // past the retry interval: the coordinator calls the resume callback, the workflow runs to the end
            for (let i = 0; i < 5 && (await child.client.status(gid)) !== "succeed"; i++) await child.client.cron(60_000);
          },
        },
      });
      expect(killedWith).toEqual(["SIGKILL"]);
      expect(r.success.status).toBe("succeed");
      expect(r.failure.status).toBe("failed");
      expect(r.resumed?.errorAtCrash).not.toBe("");
      expect(r.resumed).toMatchObject({
        status: "succeed",
        phase2: ["03 commit XA COMMIT", "02 commit confirm"],
        balances: { wallet: 40, points: { available: 60, frozen: 0 }, stock: 8 },
      });
      const branches = (await child.client.query(r.resumed?.gid ?? "")).branches.map((b) => `${b.branch_id} ${b.op} ${b.status}`).sort();
      expect(branches).toEqual(["01 action succeed", "02 action succeed", "02 commit succeed", "03 action succeed", "03 commit succeed", "04 action succeed"]);
    } finally {
      await child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
