/**
 * The load generator's recording transport against a real coordinator behind a TCP proxy: what it
 * records and re-sends when the link black-holes requests.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DtxClient, HttpTransport, tccGlobalTransaction } from "../../sdk/src/index.ts";
import type { ClientEvent } from "../chaos/contracts.ts";
import { Journal } from "../chaos/load/journal.ts";
import { DEFAULT_MIX, RATES, planTransaction } from "../chaos/load/plan.ts";
import type { TxPlan } from "../chaos/load/plan.ts";
import { MAX_RESENDS, RecordingTransport } from "../chaos/load/recording-transport.ts";
import { runSaga } from "../chaos/load/sagas.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const TIMEOUT_MS = 300;

let coordinator: TestCoordinator;
let proxy: TcpProxy;
let dir: string;
let journal: Journal;
let historyFile: string;

beforeAll(async () => {
  coordinator = await startCoordinator();
  proxy = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(coordinator.url).port) });
  dir = mkdtempSync(join(tmpdir(), "dtx-chaos-load-transport-"));
  historyFile = join(dir, "history.jsonl");
  journal = new Journal({ intents: join(dir, "intents.jsonl"), history: historyFile });
});

afterAll(async () => {
  journal.close();
  await proxy.close();
  await coordinator.stop();
  rmSync(dir, { recursive: true, force: true });
});

function historyOf(gid: string): ClientEvent[] {
  return readFileSync(historyFile, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as ClientEvent)
    .filter((e) => e.gid === gid);
}

function client(signal?: AbortSignal): DtxClient {
  const inner = new HttpTransport(TcpProxy.through(coordinator.url, proxy), { timeoutMs: TIMEOUT_MS });
  return new DtxClient({ transport: new RecordingTransport([{ coordinator: 0, transport: inner }], { journal, via: "http", ...(signal ? { signal } : {}) }) });
}

/** Polls the history until `gid` has `n` completions of type info (bounded). */
async function untilInfos(gid: string, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (historyOf(gid).filter((e) => e.type === "info").length < n) {
    if (Date.now() > deadline) throw new Error(`no ${n} info completions for ${gid}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("chaos load: the recording transport", () => {
  it("records an unanswered request as info and re-sends it by gid until the coordinator acknowledges it", async () => {
    const gid = "transport-resend";
    proxy.blackHole();
    const prepared = client().transport.prepare({ gid, transType: "tcc" });
    await untilInfos(gid, 2);
    proxy.heal();
    await prepared;
    const events = historyOf(gid);
    const invokes = events.filter((e) => e.type === "invoke");
    expect(invokes.map((e) => (e.type === "invoke" ? [e.op, e.attempt] : []))).toEqual(invokes.map((_, i) => ["prepare", i + 1]));
    expect(invokes.length).toBeGreaterThanOrEqual(3);
    const completions = events.filter((e) => e.type !== "invoke").map((e) => e.type);
    expect(completions).toEqual([...completions.slice(0, -1).map(() => "info"), "ok"]);
    expect(events.find((e) => e.type === "info")).toMatchObject({ error: expect.stringMatching(/^TIMEOUT/) as unknown });
    expect(await coordinator.client.status(gid)).toBe("prepared");
  });

  it("re-sends to the next coordinator: the first send to the transaction's own, the re-send to another sharing the store", async () => {
    const gid = "transport-failover";
    proxy.blackHole();
    try {
      const behindProxy = new HttpTransport(TcpProxy.through(coordinator.url, proxy), { timeoutMs: TIMEOUT_MS });
      const direct = new HttpTransport(coordinator.url, { timeoutMs: TIMEOUT_MS });
      const routes = [
        { coordinator: 0, transport: behindProxy },
        { coordinator: 1, transport: direct },
      ];
      await new RecordingTransport(routes, { journal, via: "http" }).prepare({ gid, transType: "tcc" });
    } finally {
      proxy.heal();
    }
    const events = historyOf(gid);
    expect(events.map((e) => (e.type === "invoke" ? `invoke ${e.coordinator} ${e.attempt}` : e.type))).toEqual(["invoke 0 1", "info", "invoke 1 2", "ok"]);
    expect(await coordinator.client.status(gid)).toBe("prepared");
  });

  it("gives up after 3 re-sends, every one recorded as info, and hands the error to the SDK", async () => {
    const gid = "transport-give-up";
    proxy.blackHole();
    try {
      await expect(tccGlobalTransaction(client(), gid, async () => undefined)).rejects.toMatchObject({ code: "TIMEOUT" });
    } finally {
      proxy.heal();
    }
    const events = historyOf(gid);
    expect(events.filter((e) => e.type === "invoke")).toHaveLength(1 + MAX_RESENDS);
    expect(events.filter((e) => e.type === "info")).toHaveLength(1 + MAX_RESENDS);
  });

  it("ends a pending request as info at once when the run stops, and does not re-send it", async () => {
    const gid = "transport-stopped";
    const stop = new AbortController();
    proxy.blackHole();
    try {
      const pending = client(stop.signal).transport.prepare({ gid, transType: "xa" });
      await new Promise((r) => setImmediate(r));
      stop.abort(new Error("test over"));
      await expect(pending).rejects.toMatchObject({ code: "UNAVAILABLE" });
    } finally {
      proxy.heal();
    }
    const events = historyOf(gid);
    expect(events.map((e) => e.type)).toEqual(["invoke", "info"]);
    expect(events[1]).toMatchObject({ error: expect.stringContaining("stopped") as unknown });
  });

  it("a definite refusal is a fail and is not re-sent", async () => {
    const gid = "transport-refused";
    const c = client();
    await c.transport.submit({ gid, transType: "saga", steps: [{ action: "", compensate: "" }], payloads: [new Uint8Array(0)], options: { waitResult: true } });
    await expect(c.transport.prepare({ gid, transType: "tcc" })).rejects.toMatchObject({ code: "FAILURE" });
    expect(historyOf(gid).map((e) => e.type)).toEqual(["invoke", "ok", "invoke", "fail"]);
  });
});

describe("chaos load: a saga's conflicting resubmit", () => {
  // A participant nobody listens on: the saga is stored and retried, which is all these tests need.
  const participant = "http://127.0.0.1:9";
  const conflictPlan = (seed: number): TxPlan => {
    const ctx = { seed, mix: { ...DEFAULT_MIX, "saga-dag": 0, tcc: 0, msg: 0, xa: 0, workflow: 0 }, coordinators: 1, participants: 1, rates: { ...RATES, conflict: 1 } };
    const plan = planTransaction(ctx, 0);
    expect(plan.intent).toMatchObject({ kind: "saga", conflict: true });
    return plan;
  };
  const submitsOf = (gid: string): number => historyOf(gid).filter((e) => e.type === "invoke" && e.op === "submit").length;

  it("is not sent when the saga was never stored (seed 1, c1-285: it became a new saga with other amounts)", async () => {
    const plan = conflictPlan(901);
    proxy.blackHole();
    try {
      await expect(runSaga({ plan, client: client(), participant, options: { waitResult: true } })).rejects.toMatchObject({ code: "TIMEOUT" });
    } finally {
      proxy.heal();
    }
    expect(submitsOf(plan.intent.gid)).toBe(1 + MAX_RESENDS);
    expect(await coordinator.client.status(plan.intent.gid)).toBeUndefined();
  });

  it("is sent once the saga is stored, and changes nothing", async () => {
    const plan = conflictPlan(902);
    await runSaga({ plan, client: client(), participant, options: { waitResult: true } }).catch(() => undefined);
    const { gid } = plan.intent;
    expect(submitsOf(gid)).toBe(2);
    const stored = await coordinator.client.query(gid);
    const amounts = stored.branches.filter((b) => b.op === "action").map((b) => (JSON.parse(Buffer.from(b.bin_data ?? "", "base64").toString()) as { amount: number }).amount);
    expect(amounts).toEqual(plan.intent.transfers.flatMap((t) => [t.amount, t.amount]));
  });
});

