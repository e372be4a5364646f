/**
 * Signed branch calls end to end (docs/security.md#signed-branch-calls): a coordinator with
 * `branchSigning` (a watched key file) calls real participants on loopback, an HTTP one built with
 * the SDK's `nodeHandler` and a gRPC one with `grpcHandler`, both verifying with the SDK's
 * `BranchSignatureVerifier` on the coordinator's clock (so moving that clock is the injected time).
 * Signed calls pass; a participant holding the wrong secret answers 401 / UNAUTHENTICATED, which the
 * coordinator logs and retries until the participant gets the right key; a captured request
 * replayed after the allowed skew is refused; a new active key in the key file is used without a
 * restart while the participant still accepts the old one.
 */
import { Client, credentials, Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { Metadata, ServiceError, UntypedServiceImplementation } from "@grpc/grpc-js";
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingHttpHeaders, Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { request } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../server/src/config.ts";
import { createLogger } from "../../server/src/logger.ts";
import { createCoordinator } from "../../server/src/server.ts";
import { BranchSignatureVerifier, DtxFailure, grpcHandler, nodeHandler } from "../../sdk/src/index.ts";
import type { BranchSigningKey } from "../../sdk/src/index.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { sagaBody } from "../helpers/client.ts";

const K1: BranchSigningKey = { id: "k1", secret: "k1-secret-0123456789abcdef0123456789abcdef" };
const K2: BranchSigningKey = { id: "k2", secret: "k2-secret-fedcba9876543210fedcba9876543210" };
const K1_WRONG: BranchSigningKey = { id: "k1", secret: "not-the-coordinators-secret-0123456789abcdef" };
const SKEW_S = 300;
const METHODS = ["TransOut", "TransOutRevert", "TransIn", "TransInRevert"];

let dir = "";
let keysFile = "";
let dtx: TestCoordinator;
const logLines: Record<string, unknown>[] = [];
/** What each participant accepts; tests swap it. */
let accepted: BranchSigningKey[] = [K1];
let verifier: BranchSignatureVerifier;

interface SeenHttp {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}
const httpSeen: SeenHttp[] = [];
let httpServer: HttpServer;
let httpBase = "";

interface SeenGrpc {
  path: string;
  metadata: Metadata;
  message: Buffer;
}
const grpcSeen: SeenGrpc[] = [];
let rpcServer: HttpServer;
let rpcBase = "";
const rpcSeen: string[] = [];
let grpcServer: Server;
let grpcTarget = "";

function writeKeys(activeKeyId: string, keys: BranchSigningKey[]): void {
  // Written beside and renamed over: the coordinator never reads half a file.
  const tmp = `${keysFile}.tmp`;
  writeFileSync(tmp, JSON.stringify({ activeKeyId, keys }));
  renameSync(tmp, keysFile);
}

/** Bounded poll for a log line: the key file is watched by modification time. */
async function logged(test: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines.find(test);
    if (line) return line;
    if (Date.now() > deadline) throw new Error("no such log line within the time limit");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function kidOf(signature: unknown): string | undefined {
  return /kid=([^,]+)/.exec(String(signature))?.[1];
}

const rawService = Object.fromEntries(METHODS.map((name) => [name, {
  path: `/busi.Busi/${name}`, requestStream: false, responseStream: false, originalName: name,
  requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
}]));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dtx-signing-"));
  keysFile = join(dir, "signing-keys.json");
  writeKeys("k1", [K1]);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line !== "") logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  dtx = await startCoordinator({ branchSigning: { keysFile, watchInterval: 0.02 } }, createLogger("info", sink));
  verifier = new BranchSignatureVerifier({ keys: () => accepted, maxSkewSeconds: SKEW_S, now: () => dtx.coordinator.clock.now() });

  httpServer = createServer(nodeHandler((req) => {
    httpSeen.push({ method: req.method, url: req.url, headers: req.headers, body: req.body });
    if (req.query.get("fail") === "1") throw new DtxFailure("insufficient balance");
  }, { signature: verifier }));
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  httpBase = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/api`;

  // JSON-RPC has no SDK handler helper: the participant calls the verifier itself.
  rpcServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      try {
        verifier.verifyHttp({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      } catch (error) {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ message: (error as Error).message }));
        return;
      }
      const call = JSON.parse(body.toString("utf8")) as { id: string; method: string; params: { gid: string } };
      rpcSeen.push(`${call.params.gid} ${call.method}`);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: call.id, result: null, error: null }));
    });
  });
  await new Promise<void>((resolve) => rpcServer.listen(0, "127.0.0.1", resolve));
  rpcBase = `http://127.0.0.1:${(rpcServer.address() as AddressInfo).port}/api/json-rpc`;

  grpcServer = new Server();
  const implementation: UntypedServiceImplementation = {};
  for (const name of METHODS) {
    implementation[name] = grpcHandler<Buffer, Buffer>((call) => {
      grpcSeen.push({ path: call.getPath?.() ?? "", metadata: call.metadata as Metadata, message: call.request });
    }, { empty: () => Buffer.alloc(0), signature: verifier });
  }
  grpcServer.addService(rawService, implementation);
  const port = await new Promise<number>((resolve, reject) => grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  grpcTarget = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await dtx?.stop();
  for (const server of [httpServer, rpcServer]) await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  grpcServer?.forceShutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  accepted = [K1];
});

const httpSaga = (gid: string, extra: Record<string, unknown> = {}): Record<string, unknown> => sagaBody(gid, (name) => `${httpBase}/${name}`, extra);
const grpcSaga = (gid: string, extra: Record<string, unknown> = {}): Record<string, unknown> => sagaBody(gid, (name) => `${grpcTarget}/busi.Busi/${name}`, { protocol: "grpc", ...extra });

describe("signed branch calls over HTTP", () => {
  it("a signed saga passes; every call carries v1,kid=k1 over its own path, query and body", async () => {
    const gid = "sign-http-ok";
    const r = await dtx.client.submit(httpSaga(gid, { wait_result: true }));
    expect(r.status, r.text).toBe(200);
    const calls = httpSeen.filter((c) => c.url.includes(`gid=${gid}`));
    expect(calls.map((c) => c.url.split("?")[0])).toEqual(["/api/TransOut", "/api/TransIn"]);
    for (const c of calls) expect(c.headers["x-dtx-signature"]).toMatch(/^v1,kid=k1,t=\d+,sig=[0-9a-f]{64}$/);
  });

  it("a participant holding the wrong secret answers 401: the coordinator logs it and retries, and succeeds once the participant has the right key", async () => {
    const gid = "sign-http-wrong-key";
    accepted = [K1_WRONG];
    const r = await dtx.client.submit(httpSaga(gid, { wait_result: true }));
    expect(r.status).toBe(425);
    expect(await dtx.client.status(gid)).toBe("submitted");
    expect(httpSeen.filter((c) => c.url.includes(`gid=${gid}`))).toEqual([]); // the business code never ran
    const warn = await logged((l) => l["gid"] === gid && String(l["msg"]).includes("unauthenticated"));
    expect(warn).toMatchObject({ level: 40, branchId: "01", op: "action" });
    expect(JSON.stringify(logLines)).not.toContain(K1.secret);

    // Still the wrong key: the next attempt is refused again and the trans stays unfinished.
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("submitted");
    accepted = [K1];
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(httpSeen.filter((c) => c.url.includes(`gid=${gid}`)).map((c) => c.url.split("?")[0])).toEqual(["/api/TransOut", "/api/TransIn"]);
  });

  it("a captured request replayed within the skew is accepted (the barrier makes it harmless); after the skew it is refused, and a changed body never verifies", async () => {
    const gid = "sign-http-replay";
    expect((await dtx.client.submit(httpSaga(gid, { wait_result: true }))).status).toBe(200);
    const captured = httpSeen.find((c) => c.url.includes(`gid=${gid}`))!;
    const replay = async (body: Buffer): Promise<number> => {
      const { statusCode, body: text } = await request(`${httpBase.replace(/\/api$/, "")}${captured.url}`, {
        method: "POST", headers: { "content-type": "application/json", "x-dtx-signature": String(captured.headers["x-dtx-signature"]) }, body,
      });
      await text.text();
      return statusCode;
    };
    expect(await replay(captured.body)).toBe(200);
    expect(await replay(Buffer.from('{"amount":3000,"step":0}'))).toBe(401);
    const before = httpSeen.length;
    await dtx.client.advance((SKEW_S + 1) * 1000);
    expect(await replay(captured.body)).toBe(401);
    expect(httpSeen.length).toBe(before); // refused before the business code
  });

  it("a msg check-back is signed too: refused with the wrong key (logged for branch 00), then the msg goes through", async () => {
    const gid = "sign-msg-check-back";
    accepted = [K1_WRONG];
    const prepared = await dtx.client.call("POST", "/api/dtmsvr/prepare", {
      gid, trans_type: "msg", steps: [{ action: `${httpBase}/TransIn` }], payloads: ['{"amount":30}'], query_prepared: `${httpBase}/QueryPrepared`,
    });
    expect(prepared.status, prepared.text).toBe(200);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("prepared");
    expect(await logged((l) => l["gid"] === gid && String(l["msg"]).includes("unauthenticated"))).toMatchObject({ branchId: "00", url: `${httpBase}/QueryPrepared` });
    accepted = [K1];
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(httpSeen.filter((c) => c.url.includes(`gid=${gid}`)).map((c) => c.url.split("?")[0])).toEqual(["/api/QueryPrepared", "/api/TransIn"]);
  });

  it("without the header the participant answers 401", async () => {
    const { statusCode, body } = await request(`${httpBase}/TransOut?gid=forged&trans_type=saga&branch_id=01&op=action`, { method: "POST", body: "{}" });
    expect(statusCode).toBe(401);
    expect(await body.json()).toEqual({ message: "branch signature refused: no x-dtx-signature" });
  });
});

describe("signed branch calls over JSON-RPC", () => {
  it("the envelope as sent is signed: the participant verifies it, and refuses it with the wrong key until it gets the right one", async () => {
    const rpcSaga = (gid: string): Record<string, unknown> => sagaBody(gid, (name) => `${rpcBase}?method=${name}`, { protocol: "json-rpc", wait_result: true });
    expect((await dtx.client.submit(rpcSaga("sign-rpc-ok"))).status).toBe(200);
    expect(rpcSeen.filter((c) => c.startsWith("sign-rpc-ok "))).toEqual(["sign-rpc-ok TransOut", "sign-rpc-ok TransIn"]);
    accepted = [K1_WRONG];
    expect((await dtx.client.submit(rpcSaga("sign-rpc-wrong-key"))).status).toBe(425);
    await logged((l) => l["gid"] === "sign-rpc-wrong-key" && String(l["msg"]).includes("unauthenticated"));
    accepted = [K1];
    await dtx.client.cron(60_000);
    expect(await dtx.client.status("sign-rpc-wrong-key")).toBe("succeed");
  });
});

describe("signed branch calls over gRPC", () => {
  it("a signed saga passes; the metadata carries the signature over the method path and message bytes", async () => {
    const gid = "sign-grpc-ok";
    const r = await dtx.client.submit(grpcSaga(gid, { wait_result: true }));
    expect(r.status, r.text).toBe(200);
    const calls = grpcSeen.filter((c) => c.metadata.get("dtm-gid")[0] === gid);
    expect(calls.map((c) => c.path)).toEqual(["/busi.Busi/TransOut", "/busi.Busi/TransIn"]);
    for (const c of calls) expect(String(c.metadata.get("x-dtx-signature")[0])).toMatch(/^v1,kid=k1,t=\d+,sig=[0-9a-f]{64}$/);
  });

  it("the wrong key gives UNAUTHENTICATED, logged and retried; the right key lets it finish", async () => {
    const gid = "sign-grpc-wrong-key";
    accepted = [K1_WRONG];
    expect((await dtx.client.submit(grpcSaga(gid, { wait_result: true }))).status).toBe(425);
    expect(await dtx.client.status(gid)).toBe("submitted");
    const warn = await logged((l) => l["gid"] === gid && String(l["msg"]).includes("unauthenticated"));
    expect(String(warn["error"])).toContain("UNAUTHENTICATED");
    accepted = [K1];
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("a captured call replayed after the skew is refused with UNAUTHENTICATED", async () => {
    const gid = "sign-grpc-replay";
    expect((await dtx.client.submit(grpcSaga(gid, { wait_result: true }))).status).toBe(200);
    const captured = grpcSeen.find((c) => c.metadata.get("dtm-gid")[0] === gid)!;
    const client = new Client(grpcTarget, credentials.createInsecure());
    const replay = (): Promise<ServiceError | null> => new Promise((resolve) => {
      client.makeUnaryRequest(captured.path, (b: Buffer) => b, (b: Buffer) => b, captured.message, captured.metadata.clone(), (error) => resolve(error));
    });
    try {
      expect(await replay()).toBeNull();
      const before = grpcSeen.length;
      await dtx.client.advance((SKEW_S + 1) * 1000);
      expect(await replay()).toMatchObject({ code: status.UNAUTHENTICATED });
      expect(grpcSeen.length).toBe(before);
    } finally {
      client.close();
    }
  });
});

describe("key rotation without a restart", () => {
  it("a new active key in the key file is used at once; the participant accepting both keys sees no refusal; a broken key file keeps the last good key", async () => {
    accepted = [K1, K2];
    writeKeys("k2", [K1, K2]);
    await logged((l) => l["msg"] === "branch signing keys reloaded" && l["activeKeyId"] === "k2");
    expect((await dtx.client.submit(httpSaga("sign-rotated-http", { wait_result: true }))).status).toBe(200);
    expect(kidOf(httpSeen.find((c) => c.url.includes("gid=sign-rotated-http"))?.headers["x-dtx-signature"])).toBe("k2");

    // The old key retired at the participant: calls keep passing.
    accepted = [K2];
    expect((await dtx.client.submit(grpcSaga("sign-rotated-grpc", { wait_result: true }))).status).toBe(200);
    expect(kidOf(grpcSeen.find((c) => c.metadata.get("dtm-gid")[0] === "sign-rotated-grpc")?.metadata.get("x-dtx-signature")[0])).toBe("k2");

    writeFileSync(keysFile, `{"activeKeyId": "k3", "keys": [{"id": "k3", "secret": "${"s".repeat(40)}"`);
    const refused = await logged((l) => String(l["msg"]).startsWith("branch signing keys not reloaded"));
    expect(refused).toMatchObject({ level: 50, activeKeyId: "k2" });
    expect(JSON.stringify(refused)).not.toContain("s".repeat(40));
    expect((await dtx.client.submit(httpSaga("sign-after-bad-file", { wait_result: true }))).status).toBe(200);
    accepted = [K1];
    writeKeys("k1", [K1]);
    await logged((l) => l["msg"] === "branch signing keys reloaded" && l["activeKeyId"] === "k1" && l["previousKeyId"] === "k2");
  });
});

describe("a key set that cannot be read", () => {
  it("fails the start with a message naming the file, before the store is opened", async () => {
    const missing = join(dir, "no-such-keys.json");
    const config = parseConfig({ host: "127.0.0.1", httpPort: 0, grpcPort: 0, store: { path: join(dir, "never-created.db") }, branchSigning: { keysFile: missing } });
    await expect(createCoordinator(config, createLogger("silent"))).rejects.toThrow(`cannot load the branch signing keys (branchSigning): cannot read the branch signing key file ${missing}: ENOENT`);
    expect(existsSync(join(dir, "never-created.db"))).toBe(false);
  });
});
