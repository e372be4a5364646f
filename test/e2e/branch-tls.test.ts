/**
 * TLS and mTLS of branch calls (docs/security.md#tls-for-branch-calls), with a CA, server and
 * client certificates made at test time by openssl (test/helpers/test-pki.ts): real HTTPS and TLS
 * gRPC participants on loopback, called by a real coordinator (HTTP) and by the invokers it uses.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../server/src/config.ts";
import type { BranchTls } from "../../server/src/driver/branch-tls.ts";
import { GrpcInvoker } from "../../server/src/driver/grpc-invoker.ts";
import { HttpInvoker } from "../../server/src/driver/http-invoker.ts";
import type { BranchCall } from "../../server/src/driver/invoker.ts";
import { createLogger } from "../../server/src/logger.ts";
import { createCoordinator } from "../../server/src/server.ts";
import type { GrpcBusi } from "../busi/grpc-busi.ts";
import { DtmGrpcClient, startGrpcBusi } from "../busi/grpc-busi.ts";
import { startCoordinator, TEST_TIMINGS } from "../helpers/coordinator.ts";
import type { HttpsParticipant } from "../helpers/https-participant.ts";
import { startHttpsParticipant } from "../helpers/https-participant.ts";
import type { TestPki } from "../helpers/test-pki.ts";
import { makeTestPki } from "../helpers/test-pki.ts";

let pki: TestPki;
const closers: (() => Promise<void>)[] = [];

beforeAll(() => {
  pki = makeTestPki();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  pki?.remove();
});

async function httpsParticipant(mtls: boolean): Promise<HttpsParticipant> {
  const participant = await startHttpsParticipant(pki, mtls);
  closers.push(participant.close);
  return participant;
}

/** A TLS gRPC participant with the test CA's server certificate; `mtls` requires a client certificate of that CA. */
async function tlsGrpcParticipant(mtls: boolean): Promise<GrpcBusi> {
  const credentials = ServerCredentials.createSsl(pki.read(pki.caCert), [{ cert_chain: pki.read(pki.serverCert), private_key: pki.read(pki.serverKey) }], mtls);
  const busi = await startGrpcBusi({ credentials });
  closers.push(() => busi.close());
  return busi;
}

function tls(overrides: Partial<BranchTls> = {}): BranchTls {
  return { ca: pki.read(pki.caCert), rejectUnauthorized: true, grpc: true, ...overrides };
}

const withClientCert = (): Partial<BranchTls> => ({ cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) });

function branchCall(url: string, gid: string): BranchCall {
  return { gid, transType: "saga", protocol: url.startsWith("https://") ? "http" : "grpc", branchId: "01", op: "action", url, body: Buffer.from('{"amount":30}'), headers: {}, timeoutMs: 3000 };
}

function sagaBody(gid: string, base: string): Record<string, unknown> {
  return {
    gid, trans_type: "saga", wait_result: true,
    steps: [{ action: `${base}/TransOut?api_key=K3Y-VALUE`, compensate: `${base}/TransOutRevert` }],
    payloads: ['{"amount":30}'],
  };
}

describe("HTTPS branch calls through the coordinator", () => {
  it("an HTTPS participant whose certificate the configured CA signs is called", async () => {
    const participant = await httpsParticipant(false);
    const dtx = await startCoordinator({ branchTls: { ca: pki.caCert } });
    closers.push(() => dtx.stop());
    const r = await dtx.client.submit(sagaBody("tls-ok", participant.url));
    expect(r.status).toBe(200);
    expect(await dtx.client.status("tls-ok")).toBe("succeed");
    expect(participant.seen.map((s) => s.path.split("?")[0])).toEqual(["/api/TransOut"]);
  });

  it("a participant the configured CA did not sign is refused: a retryable error, logged without secrets; the saga succeeds once the CA is right", async () => {
    const participant = await httpsParticipant(false);
    const dataDir = mkdtempSync(join(tmpdir(), "dtx-tls-"));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const store = { path: join(dataDir, "dtx.db") };
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
        done();
      },
    });
    const wrong = await startCoordinator({ store, branchTls: { ca: pki.otherCaCert } }, createLogger("warn", sink));
    const gid = "tls-wrong-ca";
    const r = await wrong.client.submit(sagaBody(gid, participant.url.replace("https://", "https://user:secret-pw@")));
    expect(r.status).not.toBe(200);
    await wrong.client.cron(60_000);
    expect(await wrong.client.status(gid)).toBe("submitted");
    expect(participant.seen).toEqual([]); // refused in the handshake: no request was sent
    const logged = lines.filter((l) => l.includes('"branch call failed; retrying later"'));
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) {
      expect(line).toContain(`"gid":"${gid}"`);
      expect(line).toMatch(/certificate/);
      for (const secret of ["secret-pw", "K3Y-VALUE", "user:"]) expect(line).not.toContain(secret);
    }
    await wrong.stop();

    // The operator fixes branchTls.ca and restarts: the stored saga finishes.
    const right = await startCoordinator({ store, branchTls: { ca: pki.caCert } });
    closers.push(() => right.stop());
    await right.client.cron(600_000); // past the retry time the first coordinator's advanced clock stored
    expect(await right.client.status(gid)).toBe("succeed");
    expect(participant.seen.map((s) => s.path.split("?")[0])).toEqual(["/api/TransOut"]);
  });
});

describe("TLS gRPC branch calls through the coordinator", () => {
  it("with branchTls.grpc on, a saga submitted over gRPC calls its TLS participant, byte for byte", async () => {
    const participant = await tlsGrpcParticipant(true);
    const dtx = await startCoordinator({ branchTls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, grpc: true } });
    const dtm = new DtmGrpcClient(`127.0.0.1:${dtx.grpcPort}`);
    closers.push(() => dtx.stop(), async () => dtm.close());
    const payload = Buffer.from([0x08, 0x1e, 0xff, 0x00]);
    const r = await dtm.call("Submit", {
      Gid: "grpc-tls-saga", TransType: "saga", TransOptions: { WaitResult: true },
      Steps: JSON.stringify([{ action: participant.url("TransOut"), compensate: participant.url("TransOutRevert") }]), BinPayloads: [payload],
    });
    expect(r.ok).toBe(true);
    expect(participant.calls().map((c) => [c.name, c.gid, c.body])).toEqual([["TransOut", "grpc-tls-saga", payload]]);
  });
});

describe("TLS and mTLS in the invokers", () => {
  it("HTTP: a participant that requires a client certificate accepts the configured one and refuses a coordinator without one", async () => {
    const participant = await httpsParticipant(true);
    const withCert = new HttpInvoker(false, undefined, {}, { tls: tls(withClientCert()) });
    const withoutCert = new HttpInvoker(false, undefined, {}, { tls: tls() });
    closers.push(() => withCert.close(), () => withoutCert.close());
    expect(await withCert.invoke(branchCall(`${participant.url}/TransOut`, "mtls-ok"))).toEqual({ kind: "success" });
    expect(participant.seen).toEqual([{ path: expect.stringContaining("gid=mtls-ok") as string, clientCn: "dtx-coordinator" }]);
    const refused = await withoutCert.invoke(branchCall(`${participant.url}/TransOut`, "mtls-refused"));
    expect(refused.kind).toBe("error");
    expect(participant.seen).toHaveLength(1);
  });

  it("HTTP: rejectUnauthorized false accepts a certificate no configured CA signed", async () => {
    const participant = await httpsParticipant(false);
    const lax = new HttpInvoker(false, undefined, {}, { tls: tls({ ca: pki.read(pki.otherCaCert), rejectUnauthorized: false }) });
    closers.push(() => lax.close());
    expect(await lax.invoke(branchCall(`${participant.url}/TransOut`, "lax"))).toEqual({ kind: "success" });
  });

  it("gRPC: a TLS participant is called with the configured CA; a wrong CA is an UNAVAILABLE error and nothing reaches it", async () => {
    const participant = await tlsGrpcParticipant(false);
    const right = new GrpcInvoker({ tls: tls() });
    const wrong = new GrpcInvoker({ tls: tls({ ca: pki.read(pki.otherCaCert) }) });
    closers.push(() => right.close(), () => wrong.close());
    expect(await right.invoke(branchCall(participant.url("TransOut"), "grpc-tls-ok"))).toEqual({ kind: "success" });
    const refused = await wrong.invoke(branchCall(participant.url("TransOut"), "grpc-tls-wrong"));
    expect(refused.kind === "error" && refused.message).toMatch(/UNAVAILABLE/);
    expect(participant.calls().map((c) => c.gid)).toEqual(["grpc-tls-ok"]);
  });

  it("gRPC: a participant that requires a client certificate accepts the configured one and refuses a coordinator without one", async () => {
    const participant = await tlsGrpcParticipant(true);
    const withCert = new GrpcInvoker({ tls: tls(withClientCert()) });
    const withoutCert = new GrpcInvoker({ tls: tls() });
    closers.push(() => withCert.close(), () => withoutCert.close());
    expect(await withCert.invoke(branchCall(participant.url("TransOut"), "grpc-mtls-ok"))).toEqual({ kind: "success" });
    expect((await withoutCert.invoke(branchCall(participant.url("TransOut"), "grpc-mtls-refused"))).kind).toBe("error");
    expect(participant.calls().map((c) => c.gid)).toEqual(["grpc-mtls-ok"]);
  });
});

describe("branchTls settings", () => {
  const base = { host: "127.0.0.1", httpPort: 0, grpcPort: 0, logLevel: "silent", env: "test", ...TEST_TIMINGS } as const;

  async function startError(branchTls: Record<string, unknown>): Promise<ConfigError> {
    const dataDir = mkdtempSync(join(tmpdir(), "dtx-tls-config-"));
    try {
      const config = parseConfig({ ...base, store: { path: join(dataDir, "dtx.db") }, branchTls });
      const error = await createCoordinator(config, createLogger("silent")).then(
        (c) => c.stop().then(() => new Error("the coordinator started")),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      return error as ConfigError;
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  it("a missing file, a file that is not PEM, and a key that does not match its certificate are ConfigErrors naming the setting", async () => {
    expect((await startError({ ca: join(pki.dir, "missing.pem") })).message).toMatch(/branchTls\.ca \(DTX_BRANCH_TLS_CA\): cannot read .*missing\.pem/);
    const garbage = join(pki.dir, "garbage.pem");
    writeFileSync(garbage, "not a certificate\n");
    expect((await startError({ ca: garbage })).message).toMatch(/branchTls\.ca .*holds no PEM certificate/);
    const mismatch = await startError({ cert: pki.clientCert, key: pki.serverKey });
    expect(mismatch.message).toMatch(/branchTls\.cert \/ branchTls\.key .*not a PEM certificate and its private key/);
    expect(mismatch.message).not.toContain("PRIVATE KEY-----");
  });

  it("cert without key (or the other way round) is refused by the config check", () => {
    expect(() => parseConfig({ branchTls: { cert: pki.clientCert } })).toThrow(/branchTls: cert and key go together/);
    expect(() => parseConfig({ branchTls: { key: pki.clientKey } })).toThrow(ConfigError);
  });
});
