/**
 * `workers` (docs/operations.md#workers): one coordinator as a primary and two worker processes
 * (node:cluster) on a shared PostgreSQL. Sagas submitted over HTTP and gRPC to the shared ports
 * all finish; /api/metrics sums the workers; a worker SIGKILLed mid-saga is restarted by the
 * primary and its sagas are finished (by its sibling's recovery loop or its own successor's);
 * SIGTERM stops every process with exit code 0; a worker that cannot start fails the start.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { DtmGrpcClient } from "../busi/grpc-busi.ts";
import { sagaBody } from "../helpers/client.ts";
import type { ChildCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator } from "../helpers/coordinator.ts";
import { freePort, processAlive } from "../helpers/processes.ts";
import { PgArea } from "../helpers/store-areas.ts";

let busi: Busi;
let dir = "";
const area = new PgArea("e2e_workers");
const children = new Set<ChildCoordinator>();

beforeAll(async () => {
  busi = await startBusi();
  dir = mkdtempSync(join(tmpdir(), "dtx-workers-"));
  await area.open();
});
afterAll(async () => {
  await busi?.close();
  await area.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all([...children].map((c) => c.kill("SIGKILL")));
  for (const c of children) for (const pid of workerPids(c)) killQuietly(pid);
  children.clear();
  busi.reset();
});

const uid = (): string => randomBytes(4).toString("hex");

/** A primary with two workers on the test schema, on ports of its own; resolves once both listen. */
async function startCluster(env: Record<string, string> = {}): Promise<ChildCoordinator & { grpcTarget: string }> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const child = await spawnCoordinator(join(dir, `${uid()}.db`), {
    DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: area.url, DTX_STORE_SCHEMA: area.schema,
    DTX_WORKERS: "2", DTX_TEST_CONTROL: "0", DTX_HTTP_PORT: String(httpPort), DTX_GRPC_PORT: String(grpcPort),
    // Recovery runs on its own in real time: a killed worker's claims lapse after 1 s + 1 s of margin.
    DTX_CRON_INTERVAL: "0.2",
    ...env,
  });
  children.add(child);
  await until(() => child.logs.some((l) => l["msg"] === "dtx started" && l["role"] === "primary"), 60_000, "the primary to report both workers listening");
  return Object.assign(child, { grpcTarget: `127.0.0.1:${grpcPort}` });
}

/** The pids of the workers the primary reported listening (latest first), from its log. */
function workerPids(child: ChildCoordinator): number[] {
  return child.logs.filter((l) => l["role"] === "primary" && l["msg"] === "worker listening").map((l) => Number(l["pid"])).reverse();
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Polls `condition` (an observable state) every 50 ms until it holds or `timeoutMs` passes. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The value of one series in Prometheus text, 0 when absent. */
function series(text: string, line: string): number {
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

describe("workers = 2 on PostgreSQL", { timeout: 120_000 }, () => {
  it("serves sagas over HTTP and gRPC on the shared ports and sums the workers' metrics", async () => {
    const c = await startCluster();
    // A new connection per request: node:cluster hands connections to the workers in turn.
    const http = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const gid = `w-http-${uid()}-${i}`;
      const r = await c.client.call("POST", "/api/dtmsvr/submit", sagaBody(gid, (n) => busi.url(n), { wait_result: true }), { connection: "close" });
      return { gid, status: r.status };
    }));
    expect(http.map((r) => r.status)).toEqual(http.map(() => 200));
    // gRPC: channels of their own (no shared subchannel), so they too land on both workers.
    const grpcGids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const client = new DtmGrpcClient(c.grpcTarget, { "grpc.use_local_subchannel_pool": 1 });
      const gid = `w-grpc-${uid()}-${i}`;
      const steps = [{ action: busi.url("TransOut"), compensate: busi.url("TransOutRevert") }, { action: busi.url("TransIn"), compensate: busi.url("TransInRevert") }];
      const r = await client.call("Submit", { Gid: gid, TransType: "saga", Steps: JSON.stringify(steps), BinPayloads: steps.map(() => Buffer.from("{}")), TransOptions: { WaitResult: true } });
      client.close();
      expect(r.ok).toBe(true);
      grpcGids.push(gid);
    }
    for (const gid of [...http.map((r) => r.gid), ...grpcGids]) expect(await c.client.status(gid)).toBe("succeed");
    expect(busi.calls({ name: "TransIn" })).toHaveLength(16);

    const metrics = await c.client.call("GET", "/api/metrics");
    expect(metrics.status).toBe(200);
    // Each worker saw about half; the scrape, whichever worker it hit, shows the sum.
    expect(series(metrics.text, 'dtm_server_process_total{type="http",api="submit",status="ok"}')).toBe(12);
    expect(series(metrics.text, 'dtm_server_process_total{type="grpc",api="submit",status="ok"}')).toBe(4);
    expect(series(metrics.text, 'dtm_branch_process_total{model="saga",branchtype="action",status="ok"}')).toBe(32);
    expect(series(metrics.text, 'dtm_server_info{version="v1.19.0-dtx.0.1.0"}')).toBe(1);
  });

  it("restarts a worker SIGKILLed mid-saga, and every acknowledged saga finishes", async () => {
    const c = await startCluster();
    const [victim, survivor] = workerPids(c);
    busi.setLatency({ name: "TransIn" }, 300);
    const gids = Array.from({ length: 10 }, (_, i) => `w-kill-${uid()}-${i}`);
    for (const gid of gids) {
      const r = await c.client.call("POST", "/api/dtmsvr/submit", sagaBody(gid, (n) => busi.url(n)), { connection: "close" });
      expect(r.status).toBe(200);
    }
    // Passes are in flight on both workers (the submits alternated between them, and TransIn answers only after 300 ms).
    await busi.waitForCalls({ name: "TransIn" }, 2);
    process.kill(victim!, "SIGKILL");
    await until(() => workerPids(c).length === 3, 60_000, "the primary to restart the killed worker");
    const restarted = workerPids(c)[0]!;
    expect(restarted).not.toBe(victim);
    expect(processAlive(survivor!)).toBe(true);
    expect(c.logs.some((l) => l["msg"] === "worker exited; restarting it" && l["pid"] === victim && l["signal"] === "SIGKILL")).toBe(true);
    await until(async () => (await Promise.all(gids.map((g) => c.client.status(g)))).every((s) => s === "succeed"), 60_000, "every saga to succeed");
    for (const gid of gids) expect(busi.calls({ gid, name: "TransOutRevert" })).toHaveLength(0);
  });

  it("SIGTERM stops the primary and both workers gracefully, exit code 0", async () => {
    const c = await startCluster();
    const pids = workerPids(c);
    expect(pids).toHaveLength(2);
    expect(await c.kill("SIGTERM")).toBe(0);
    expect(pids.filter(processAlive)).toEqual([]);
    const stopped = c.logs.filter((l) => l["msg"] === "worker stopped");
    expect(stopped.map((l) => l["code"])).toEqual([0, 0]);
  });

  it("a worker that cannot start fails the whole start (exit code 1)", async () => {
    const port = await freePort(); // nothing listens there
    await expect(startCluster({ DTX_STORE_URL: `postgres://postgres@127.0.0.1:${port}/dtx_test`, DTX_STORE_TIMEOUT: "1" })).rejects.toThrow(/exited \(1\) before listening/);
  });
});
