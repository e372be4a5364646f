// The branch URL policy (docs/security.md#branch-url-policy) end to end, over real HTTP on loopback: refused at
// registration with 400 URL_NOT_ALLOWED and nothing stored, refused again before every call (a row
// stored before the policy changed becomes an error outcome, retried and alerted, and is never
// called), redirects never followed, odd host encodings refused.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

let busi: Busi;
let port: number;
const started: TestCoordinator[] = [];

async function coordinator(branchUrls: { allow?: string[]; denyPrivate?: boolean }, extra: Record<string, unknown> = {}): Promise<TestCoordinator> {
  const dtx = await startCoordinator({ branchUrls, ...extra });
  started.push(dtx);
  return dtx;
}

/** A plain HTTP server that records requests and answers with `respond`. */
async function recorder(respond: (req: IncomingMessage, body: string) => { status: number; headers?: Record<string, string>; body?: string }): Promise<{ url: string; seen: { url: string; body: string }[]; close(): Promise<void> }> {
  const seen: { url: string; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      seen.push({ url: req.url ?? "", body });
      const r = respond(req, body);
      res.writeHead(r.status, r.headers ?? {}).end(r.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port: p } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${p}`, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

beforeAll(async () => {
  busi = await startBusi();
  port = Number(new URL(busi.baseUrl).port);
});
afterAll(async () => {
  for (const dtx of started) await dtx.stop();
  await busi?.close();
});
beforeEach(() => busi.reset());

async function expectRefused(dtx: TestCoordinator, res: { status: number; body: unknown }, gid?: string): Promise<void> {
  expect(res.status).toBe(400);
  expect((res.body as { code?: string }).code).toBe("URL_NOT_ALLOWED");
  if (gid !== undefined) expect(await dtx.client.query(gid)).toEqual({ transaction: null, branches: [] });
}

describe("allowlist off (the default, as in dtm)", () => {
  it("calls any URL: a saga on loopback succeeds", async () => {
    const dtx = await coordinator({});
    const r = await dtx.client.submit(sagaBody("policy-off", (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(200);
    expect(await dtx.client.status("policy-off")).toBe("succeed");
    expect(busi.calls({ gid: "policy-off" })).toHaveLength(2);
  });

  it("never follows a redirect: a 302 is a branch error, and its target is not called", async () => {
    const dtx = await coordinator({});
    const redirector = await recorder(() => ({ status: 302, headers: { location: busi.url("Redirected") } }));
    try {
      const body = sagaBody("policy-redirect", (n) => `${redirector.url}/${n}`);
      const r = await dtx.client.submit(body);
      expect(r.status).toBe(200);
      await dtx.client.settle();
      expect(redirector.seen.length).toBeGreaterThanOrEqual(1);
      expect(busi.calls({ name: "Redirected" })).toHaveLength(0);
      expect(await dtx.client.status("policy-redirect")).toBe("submitted");
      expect(await dtx.client.branchStatuses("policy-redirect")).toEqual(["prepared", "prepared", "prepared", "prepared"]);
    } finally {
      await redirector.close();
    }
  });
});

describe("allowlist naming the busi host:port", () => {
  let dtx: TestCoordinator;
  let outside: string;
  beforeAll(async () => {
    dtx = await coordinator({ allow: [`http://127.0.0.1:${port}/api/busi`] });
    outside = `http://127.0.0.1:${port + 1 === 65536 ? 1 : port + 1}/api/busi`;
  });

  it("sagas on the allowed prefix succeed", async () => {
    const r = await dtx.client.submit(sagaBody("policy-on-ok", (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(200);
    expect(await dtx.client.status("policy-on-ok")).toBe("succeed");
  });

  it("a saga with a branch outside the list is refused with URL_NOT_ALLOWED and nothing stored", async () => {
    const body = sagaBody("policy-saga-out", (n) => (n === "TransInRevert" ? `${outside}/${n}` : busi.url(n)));
    await expectRefused(dtx, await dtx.client.submit(body), "policy-saga-out");
    await expectRefused(dtx, await dtx.client.submit(sagaBody("policy-path-out", (n) => `http://127.0.0.1:${port}/api/other/${n}`)), "policy-path-out");
    expect(busi.calls()).toHaveLength(0);
  });

  it("a gRPC target is refused: the list has no grpc:// pattern", async () => {
    const body = { ...sagaBody("policy-grpc", () => `127.0.0.1:${port}/busi.Busi/TransOut`), protocol: "grpc" };
    await expectRefused(dtx, await dtx.client.submit(body), "policy-grpc");
  });

  it("every registration entry point refuses", async () => {
    const c = dtx.client;
    // msg: a step, and query_prepared
    await expectRefused(dtx, await c.call("POST", "/api/dtmsvr/submit", { gid: "policy-msg", trans_type: "msg", steps: [{ action: `${outside}/TransIn` }], payloads: ["{}"] }), "policy-msg");
    await expectRefused(dtx, await c.call("POST", "/api/dtmsvr/prepare", {
      gid: "policy-msg-qp", trans_type: "msg", steps: [{ action: busi.url("TransIn") }], payloads: ["{}"], query_prepared: `${outside}/QueryPrepared`,
    }), "policy-msg-qp");
    // workflow resume URL
    await expectRefused(dtx, await c.call("POST", "/api/dtmsvr/prepareWorkflow", { gid: "policy-wf", trans_type: "workflow", query_prepared: `${outside}/Resume` }), "policy-wf");
    // tcc and xa registerBranch: the trans exists, the branch is refused and not written
    for (const [gid, type, fields] of [
      ["policy-tcc", "tcc", { confirm: busi.url("Confirm"), cancel: `${outside}/Cancel` }],
      ["policy-xa", "xa", { url: `${outside}/Xa` }],
    ] as const) {
      expect((await c.call("POST", "/api/dtmsvr/prepare", { gid, trans_type: type })).status).toBe(200);
      await expectRefused(dtx, await c.call("POST", "/api/dtmsvr/registerBranch", { gid, trans_type: type, branch_id: "01", data: "{}", ...fields }));
      expect((await c.query(gid)).branches).toEqual([]);
    }
    // topic subscription
    await expectRefused(dtx, await c.call("GET", `/api/dtmsvr/subscribe?topic=policy-topic&url=${encodeURIComponent(`${outside}/Sub`)}`));
    expect((await c.call("GET", "/api/dtmsvr/unsubscribe?topic=policy-topic&url=x")).status).toBe(404);
    // JSON-RPC carries the same code
    const rpc = await c.call<{ error?: { data?: { code?: string } } }>("POST", "/api/json-rpc", {
      jsonrpc: "2.0", id: "1", method: "submit", params: sagaBody("policy-rpc", (n) => `${outside}/${n}`),
    });
    expect(rpc.body.error?.data?.code).toBe("URL_NOT_ALLOWED");
    expect(await c.query("policy-rpc")).toEqual({ transaction: null, branches: [] });
    expect(busi.calls()).toHaveLength(0);
  });

  // Ways of writing the allowed 127.0.0.1 (or its neighbours) that parsers or resolvers turn into it.
  const ENCODINGS = [
    "2130706433", "0x7f.1", "127.1", "0x7f000001", "017700000001", "0177.0.0.1", "127.000.000.001", "127.0.1",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "[::127.0.0.1]", "%31%32%37.0.0.1", "127.0.0.1.",
    "①②⑦.0.0.1", "127。0。0。1", "0", "0.0.0.0", "[::1]", "localhost", "LOCALHOST",
  ];

  it.each(ENCODINGS)("refuses the host form %j at registration", async (host) => {
    const gid = `policy-enc-${ENCODINGS.indexOf(host)}`;
    const r = await dtx.client.submit(sagaBody(gid, (n) => `http://${host}:${port}/api/busi/${n}`));
    await expectRefused(dtx, r, gid);
    expect(busi.calls()).toHaveLength(0);
  });

  it("user information cannot smuggle another host past the list", async () => {
    const r = await dtx.client.submit(sagaBody("policy-userinfo", (n) => `http://127.0.0.1:${port}@localhost:${port}/api/busi/${n}`));
    await expectRefused(dtx, r, "policy-userinfo");
  });
});

describe("a trans stored before the allowlist was set", () => {
  it("is refused at call time: an error outcome, retried and alerted, never called", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dtx-policy-"));
    const path = join(dir, "dtx.db");
    const hook = await recorder(() => ({ status: 200 }));
    try {
      busi.programAlways({ gid: "policy-stored", name: "TransOut" }, "HANG");
      const before = await startCoordinator({ store: { path } });
      expect((await before.client.submit(sagaBody("policy-stored", (n) => busi.url(n)))).status).toBe(200);
      await busi.waitForCalls({ gid: "policy-stored" }, 1);
      await before.stop();
      busi.releaseHung();
      busi.reset();

      const after = await coordinator({ allow: ["http://busi.example:8081/api/busi"] }, {
        store: { path }, alertWebhook: `${hook.url}/alert`, alertRetryLimit: 0,
      });
      expect(await after.client.status("policy-stored")).toBe("submitted");
      await after.client.cron(60_000);
      await after.client.settle();
      expect(busi.calls({ gid: "policy-stored" })).toHaveLength(0);
      expect(await after.client.status("policy-stored")).toBe("submitted");
      expect(await after.client.branchStatuses("policy-stored")).toEqual(["prepared", "prepared", "prepared", "prepared"]);
      // The failing branch is reported like any other: the alert names it and says why.
      await expect.poll(() => hook.seen.length).toBeGreaterThanOrEqual(1);
      const alert = JSON.parse(hook.seen[0]?.body ?? "{}") as Record<string, unknown>;
      expect(alert["gid"]).toBe("policy-stored");
      expect(alert["branch"]).toBe(busi.url("TransOut"));
      expect(alert["error"]).toMatch(/URL_NOT_ALLOWED: call not made: .*matches no branchUrls.allow pattern/);
      // and it is retried: the next round refuses again, still without a call
      await after.client.cron(60_000);
      await after.client.settle();
      expect(busi.calls({ gid: "policy-stored" })).toHaveLength(0);
    } finally {
      await hook.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("denyPrivate", () => {
  it("refuses 127.0.0.1 at registration, and a name resolving to loopback at call time", async () => {
    const dtx = await coordinator({ denyPrivate: true });
    await expectRefused(dtx, await dtx.client.submit(sagaBody("policy-private", (n) => busi.url(n))), "policy-private");
    await expectRefused(dtx, await dtx.client.submit(sagaBody("policy-private-2", (n) => `http://2130706433:${port}/api/busi/${n}`)), "policy-private-2");
    const byName = await dtx.client.submit(sagaBody("policy-private-name", (n) => `http://localhost:${port}/api/busi/${n}`));
    expect(byName.status).toBe(200);
    await dtx.client.settle();
    expect(busi.calls()).toHaveLength(0);
    expect(await dtx.client.status("policy-private-name")).toBe("submitted");
  });

  it("allows 127.0.0.1 when the allowlist names it", async () => {
    const dtx = await coordinator({ denyPrivate: true, allow: [`http://127.0.0.1:${port}`] });
    const r = await dtx.client.submit(sagaBody("policy-private-named", (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(200);
    expect(await dtx.client.status("policy-private-named")).toBe("succeed");
  });
});
