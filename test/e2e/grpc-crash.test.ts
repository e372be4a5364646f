/**
 * Crash recovery with gRPC on both sides: sagas are submitted over dtmgimp.Dtm to the real
 * coordinator running as a child process, their branches are gRPC calls to a GrpcBusi, and the
 * coordinator is SIGKILLed in the middle of those calls, restarted on the same SQLite file, and the
 * cron (driven through the test-control API) finishes every saga. No sleeps: waits are on events.
 *
 * As in crash-recovery.test.ts, both coordinators run with a 30 s retry interval so nothing becomes
 * due in real time; recovery is driven only by `cron(60_000)`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GrpcBusi, GrpcResult } from "../busi/grpc-busi.ts";
import { DtmGrpcClient, startGrpcBusi } from "../busi/grpc-busi.ts";
import type { ChildCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator } from "../helpers/coordinator.ts";

const ENV = { DTX_RETRY_INTERVAL: "30", DTX_MAX_RETRY_INTERVAL: "30" } as const;

let gbusi: GrpcBusi;
let dir = "";
let dbPath = "";
const children = new Set<ChildCoordinator>();
const clients = new Set<DtmGrpcClient>();

beforeAll(async () => {
  gbusi = await startGrpcBusi();
});
afterAll(async () => {
  await gbusi?.close();
});
beforeEach(() => {
  gbusi.reset();
  dir = mkdtempSync(join(tmpdir(), "dtx-grpc-crash-"));
  dbPath = join(dir, "dtx.db");
});
afterEach(async () => {
  for (const c of clients) c.close();
  clients.clear();
  await Promise.all([...children].map((c) => c.kill("SIGKILL")));
  children.clear();
  gbusi.releaseHung();
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<{ child: ChildCoordinator; dtm: DtmGrpcClient }> {
  const child = await spawnCoordinator(dbPath, ENV);
  children.add(child);
  expect(child.grpcPort).toBeGreaterThan(0);
  const dtm = new DtmGrpcClient(`127.0.0.1:${child.grpcPort}`);
  clients.add(dtm);
  return { child, dtm };
}

async function restart(previous: ChildCoordinator): Promise<{ child: ChildCoordinator; dtm: DtmGrpcClient }> {
  expect(await previous.exited).toBe("SIGKILL");
  children.delete(previous);
  return start();
}

function sagaRequest(gid: string, steps: number, requestTimeoutSeconds = 30) {
  const names = [["TransOut", "TransOutRevert"], ["TransIn", "TransInRevert"], ["Step3", "Step3Revert"]].slice(0, steps);
  return {
    Gid: gid,
    TransType: "saga",
    Steps: JSON.stringify(names.map(([a, c]) => ({ action: gbusi.url(a!), compensate: gbusi.url(c!) }))),
    BinPayloads: names.map((_, i) => Buffer.from([0x08, i + 1])),
    TransOptions: { WaitResult: true, RequestTimeout: requestTimeoutSeconds },
  };
}

const names = (gid: string): string[] => gbusi.calls({ gid }).map((c) => `${c.name}:${c.outcome}`);

describe("gRPC saga crash recovery (coordinator SIGKILLed during gRPC branch calls)", () => {
  it("killed while a gRPC branch call hangs: the call is made again after the restart and the saga succeeds", async () => {
    const gid = "grpc-crash-during-call";
    gbusi.program({ gid, name: "TransIn" }, "HANG");
    const { child: first, dtm } = await start();
    const submitting: Promise<GrpcResult<unknown>> = dtm.call("Submit", sagaRequest(gid, 2));
    await gbusi.waitForCalls({ gid, name: "TransIn" }, 1);
    expect(await first.kill()).toBe("SIGKILL");
    const answer = await submitting;
    expect(answer.ok).toBe(false); // the connection broke: UNAVAILABLE for the client

    const { child: second } = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await second.client.cron(60_000);
    await second.client.settle();

    expect(await second.client.status(gid)).toBe("succeed");
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    expect(names(gid).filter((n) => n.startsWith("TransIn:"))).toEqual(["TransIn:HANG", "TransIn:SUCCESS"]);
    expect(gbusi.calls({ gid, op: "compensate" })).toEqual([]);
    // The retried call carries the same bytes and metadata.
    const [hung, retried] = gbusi.calls({ gid, name: "TransIn" });
    expect(retried?.body.equals(hung!.body)).toBe(true);
    expect(retried?.metadata).toMatchObject({ "dtm-gid": gid, "dtm-branch_id": "02", "dtm-op": "action" });
  });

  it("many gRPC sagas killed with calls in flight: every acknowledged one finishes after the restart", async () => {
    const gids = Array.from({ length: 12 }, (_, i) => `grpc-crash-many-${String(i).padStart(2, "0")}`);
    for (const gid of gids.slice(0, 4)) gbusi.program({ gid, name: "TransOut" }, "HANG");
    for (const gid of gids.slice(4, 8)) gbusi.program({ gid, name: "TransIn" }, "HANG");
    // the last 4 roll back: their third step fails
    for (const gid of gids.slice(8)) gbusi.programAlways({ gid, name: "Step3" }, "FAILURE");
    const { child: first, dtm } = await start();
    const answers = gids.map((gid) => dtm.call("Submit", { ...sagaRequest(gid, 3), TransOptions: { WaitResult: false, RequestTimeout: 30 } }));
    for (const r of await Promise.all(answers)) expect(r.ok).toBe(true);
    await Promise.all([
      ...gids.slice(0, 4).map((gid) => gbusi.waitForCalls({ gid, name: "TransOut" }, 1)),
      ...gids.slice(4, 8).map((gid) => gbusi.waitForCalls({ gid, name: "TransIn" }, 1)),
    ]);
    expect(await first.kill()).toBe("SIGKILL");

    const { child: second } = await restart(first);
    await second.client.cron(60_000);
    await second.client.settle();
    for (const gid of gids.slice(0, 8)) {
      expect(await second.client.status(gid), gid).toBe("succeed");
      expect(gbusi.calls({ gid, op: "compensate" }), gid).toEqual([]);
    }
    for (const gid of gids.slice(8)) {
      const q = await second.client.query(gid);
      expect(q.transaction?.status, gid).toBe("failed");
      expect(q.branches.map((b) => b.status), gid).toEqual(["succeed", "succeed", "succeed", "succeed", "succeed", "failed"]);
    }
  });

  it("killed before the second gRPC branch call (crash point): resumes without compensating", async () => {
    const gid = "grpc-crash-before-call";
    const { child: first, dtm } = await start();
    await first.client.armCrash("beforeBranchCall", gid, 2);
    const answer = await dtm.call("Submit", sagaRequest(gid, 2));
    expect(answer.ok).toBe(false);
    expect(names(gid)).toEqual(["TransOut:SUCCESS"]);

    const { child: second, dtm: dtm2 } = await restart(first);
    await second.client.cron(60_000);
    await second.client.settle();
    expect(await second.client.status(gid)).toBe("succeed");
    expect(gbusi.calls({ gid, name: "TransIn" })).toHaveLength(1);
    // The restarted coordinator answers over gRPC as well.
    expect((await dtm2.call("NewGid", {})).ok).toBe(true);
  });
});
