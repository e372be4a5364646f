import type { FastifyRequest } from "fastify";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../../test/busi/index.ts";
import { startBusi } from "../../test/busi/index.ts";
import type { ChildCoordinator } from "../../test/helpers/coordinator.ts";
import { spawnCoordinator } from "../../test/helpers/coordinator.ts";
import type { WorkflowContext } from "../src/index.ts";
import { DtxClient, DtxError, DtxFailure, DtxOngoing, Workflow, WorkflowRegistry, fastifyHandler } from "../src/index.ts";
import type { App, SdkEnv } from "./helpers.ts";
import { gidFor, startApp, startSdkEnv } from "./helpers.ts";

let env: SdkEnv;
let busi: Busi;
let app: App;
/** The registry the resume route dispatches to (swapped when a test needs another coordinator). */
let registry: WorkflowRegistry;
let resumes = 0;
const phase2: string[] = [];
let localRuns = 0;

/** transfer: TransOut then TransIn, each with a rollback and a commit recorded in `phase2`. */
async function transfer(wf: WorkflowContext): Promise<object> {
  const input = wf.json<{ amount: number }>();
  wf.newBranch()
    .onRollback((b) => void phase2.push(`rollback-out:${b.branchId}:${b.op}`))
    .onCommit(() => void phase2.push("commit-out"));
  const out = await wf.callHttp(busi.url("TransOut"), { body: input });
  wf.newBranch()
    .onRollback(() => void phase2.push("rollback-in"))
    .onCommit(() => void phase2.push("commit-in"));
  await wf.callHttp(busi.url("TransIn"), { body: input });
  return { transferred: input.amount, out: out.json<{ dtm_result: string }>().dtm_result };
}

function registerAll(r: WorkflowRegistry): void {
  r.register("transfer", transfer);
  r.register("transfer-compensate-all", transfer, { compensateErrorBranch: true });
  r.register("local-steps", async (wf) => {
    const a = await wf.do(() => {
      localRuns += 1;
      return "first";
    });
    const b = await wf.do(async () => ({ second: true }));
    await wf.callHttp(busi.url("Remote"), { body: "x" });
    return `${a.toString()}+${b.toString()}`;
  });
  r.register("fails-locally", async (wf) => {
    await wf.do(() => "ok");
    await wf.do(() => {
      throw new DtxFailure("business rule says no");
    });
  });
}

beforeAll(async () => {
  env = await startSdkEnv();
  busi = await startBusi();
  app = await startApp((a) => {
    a.route({
      method: ["GET", "POST"],
      url: "/workflow/resume",
      handler: fastifyHandler(async (req: FastifyRequest) => {
        resumes += 1;
        await registry.handleResume(req.query as Record<string, string>, req.body);
      }),
    });
  });
  registry = new WorkflowRegistry({ client: env.http, callbackUrl: `${app.baseUrl}/workflow/resume` });
  registerAll(registry);
});
afterAll(async () => {
  await app?.close();
  await env?.stop();
  await busi?.close();
});
beforeEach(() => {
  busi.reset();
  phase2.length = 0;
  resumes = 0;
  localRuns = 0;
});

const rows = async (gid: string) => (await env.http.query(gid)).branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`);

describe("Workflow over HTTP", () => {
  it("runs the steps, then the commits in reverse order, records everything and submits the result", async () => {
    const gid = gidFor("wf-ok");
    const result = await registry.execute("transfer", gid, { amount: 30 });
    expect(JSON.parse(result.toString())).toEqual({ transferred: 30, out: "SUCCESS" });
    expect(phase2).toEqual(["commit-in", "commit-out"]);
    const calls = busi.calls({ gid });
    expect(calls.map((c) => `${c.name}:${c.transType}:${c.branchId}:${c.op}:${c.body}`)).toEqual([
      'TransOut:workflow:01:action:{"amount":30}', 'TransIn:workflow:02:action:{"amount":30}',
    ]);
    expect(await rows(gid)).toEqual(["01-action:succeed", "02-action:succeed", "02-commit:succeed", "01-commit:succeed"]);
    const q = await env.http.query(gid);
    expect(q.transaction).toMatchObject({ status: "succeed", query_prepared: `${app.baseUrl}/workflow/resume` });

    // A finished workflow is not run again: its stored result comes back.
    const again = await registry.execute("transfer", gid, { amount: 30 });
    expect(again.equals(result)).toBe(true);
    expect(busi.calls({ gid })).toHaveLength(2);
  });

  it("rolls back on FAILURE: compensations in reverse order, except the failed branch's own", async () => {
    const gid = gidFor("wf-fail");
    busi.program({ gid, name: "TransIn" }, "FAILURE");
    const err = await registry.execute("transfer", gid, { amount: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxFailure);
    expect((err as Error).message).toBe("busi failure");
    expect(phase2).toEqual(["rollback-out:01:rollback"]);
    expect(await rows(gid)).toEqual(["01-action:succeed", "02-action:failed", "01-rollback:succeed"]);
    expect((await env.http.query(gid)).transaction).toMatchObject({ status: "failed", rollback_reason: "busi failure" });
    await expect(registry.execute("transfer", gid, { amount: 30 })).rejects.toMatchObject({ code: "FAILURE", message: "busi failure" });
  });

  it("compensateErrorBranch also compensates the branch that failed", async () => {
    const gid = gidFor("wf-fail-all");
    busi.program({ gid, name: "TransIn" }, "FAILURE");
    await expect(registry.execute("transfer-compensate-all", gid, { amount: 1 })).rejects.toBeInstanceOf(DtxFailure);
    expect(phase2).toEqual(["rollback-in", "rollback-out:01:rollback"]);
  });

  it("a FAILURE thrown by a local step rolls back too", async () => {
    const gid = gidFor("wf-local-fail");
    await expect(registry.execute("fails-locally", gid)).rejects.toMatchObject({ code: "FAILURE", message: "business rule says no" });
    expect(await rows(gid)).toEqual(["01-action:succeed", "02-action:failed"]);
    expect(await env.dtx.client.status(gid)).toBe("failed");
  });

  it("ONGOING stops the workflow unfinished; the coordinator's resume callback re-runs it, replaying recorded steps", async () => {
    const gid = gidFor("wf-resume");
    busi.program({ gid, name: "TransIn" }, "ONGOING");
    await expect(registry.execute("transfer", gid, { amount: 7 })).rejects.toBeInstanceOf(DtxOngoing);
    expect(await env.dtx.client.status(gid)).toBe("prepared");
    expect(await rows(gid)).toEqual(["01-action:succeed"]);
    expect(phase2).toEqual([]);

    await env.dtx.client.cron(60_000);
    expect(resumes).toBe(1);
    expect(await env.dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.body}`)).toEqual(['TransOut:{"amount":7}', 'TransIn:{"amount":7}', 'TransIn:{"amount":7}']);
    expect(phase2).toEqual(["commit-in", "commit-out"]);
  });

  it("wf.do runs a local step once: a resumed execution replays its recorded result", async () => {
    const gid = gidFor("wf-do");
    busi.program({ gid, name: "Remote" }, "ERROR");
    await expect(registry.execute("local-steps", gid)).rejects.toMatchObject({ code: "HTTP_ERROR", httpStatus: 500 });
    expect(localRuns).toBe(1);
    const result = await registry.execute("local-steps", gid);
    expect(result.toString()).toBe('first+{"second":true}');
    expect(localRuns).toBe(1);
    expect(await rows(gid)).toEqual(["01-action:succeed", "02-action:succeed", "03-action:succeed"]);
  });

  it("reports misuse with stable codes", async () => {
    await expect(registry.execute("no-such-workflow", gidFor("wf-x"))).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(registry.handleResume({ gid: "g" })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(() => registry.register("transfer", transfer)).toThrow(DtxError);
    const wf = new WorkflowRegistry({ client: env.http, callbackUrl: "http://127.0.0.1:1/cb" });
    wf.register("double-rollback", async (ctx) => {
      ctx.onRollback(() => undefined).onRollback(() => undefined);
    });
    await expect(wf.execute("double-rollback", gidFor("wf-dbl"))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("the static Workflow facade uses the process-wide registry", async () => {
    expect(() => Workflow.registry).toThrow(DtxError);
    Workflow.init({ client: env.http, callbackUrl: `${app.baseUrl}/workflow/resume` });
    Workflow.register("hello", async (wf) => `hello ${wf.text()}`);
    const gid = gidFor("wf-static");
    expect((await Workflow.execute("hello", gid, "world")).toString()).toBe("hello world");
    expect(Workflow.registry.has("hello")).toBe(true);
  });
});

describe("Workflow resume after the coordinator was killed", () => {
  let dir = "";
  const children: ChildCoordinator[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dtx-sdk-wf-"));
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill("SIGKILL")));
    registry = new WorkflowRegistry({ client: env.http, callbackUrl: `${app.baseUrl}/workflow/resume` });
    rmSync(dir, { recursive: true, force: true });
  });

  /** A coordinator process on the shared file; 30 s retries so nothing becomes due on its own during the test. */
  async function start(): Promise<{ child: ChildCoordinator; client: DtxClient }> {
    const child = await spawnCoordinator(join(dir, "dtx.db"), { DTX_RETRY_INTERVAL: "30", DTX_MAX_RETRY_INTERVAL: "30" });
    children.push(child);
    const client = new DtxClient({ server: child.url, branchTimeoutMs: 5_000 });
    registry = new WorkflowRegistry({ client, callbackUrl: `${app.baseUrl}/workflow/resume` });
    registerAll(registry);
    return { child, client };
  }

  it("the restarted coordinator calls the application back and the workflow finishes from its recorded progress", async () => {
    const gid = gidFor("wf-crash");
    busi.program({ gid, name: "TransIn" }, "ERROR");
    const first = await start();
    await expect(registry.execute("transfer", gid, { amount: 3 })).rejects.toMatchObject({ code: "HTTP_ERROR" });
    expect(await first.client.query(gid)).toMatchObject({ transaction: { status: "prepared" } });

    expect(await first.child.kill("SIGKILL")).toBe("SIGKILL");
    const second = await start();
    await second.child.client.cron(60_000);
    expect(resumes).toBe(1);
    const q = await second.client.query(gid);
    expect(q.transaction?.status).toBe("succeed");
    expect(JSON.parse(Buffer.from(String(q.transaction?.result), "base64").toString())).toEqual({ transferred: 3, out: "SUCCESS" });
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn", "TransIn"]);
    expect(phase2).toEqual(["commit-in", "commit-out"]);
  });
});
