/**
 * Pinned addresses (docs/security.md#pinned-addresses): with the branch URL policy on, the HTTP and
 * gRPC clients connect to the addresses the policy's resolver answered and checked, never to what
 * the system resolver says. The resolver is injected; the participants are real servers on
 * loopback, and the assertions are on the calls they received.
 */
import { ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BranchTls } from "../../server/src/driver/branch-tls.ts";
import { DispatchInvoker } from "../../server/src/driver/dispatch-invoker.ts";
import { GrpcInvoker } from "../../server/src/driver/grpc-invoker.ts";
import { HttpInvoker } from "../../server/src/driver/http-invoker.ts";
import type { BranchCall, BranchInvoker } from "../../server/src/driver/invoker.ts";
import { JsonRpcInvoker } from "../../server/src/driver/jsonrpc-invoker.ts";
import type { UrlPolicyConfig } from "../../server/src/driver/url-policy.ts";
import { UrlPolicy } from "../../server/src/driver/url-policy.ts";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import type { GrpcBusi } from "../busi/grpc-busi.ts";
import { startGrpcBusi } from "../busi/grpc-busi.ts";
import { startHttpsParticipant } from "../helpers/https-participant.ts";
import type { TestPki } from "../helpers/test-pki.ts";
import { makeTestPki } from "../helpers/test-pki.ts";

/** A documentation-free public address (not in any range branchUrls.denyPrivate refuses). */
const PUBLIC_ADDRESS = "93.184.216.34";

let busi: Busi;
let port = 0;
let gbusi: GrpcBusi;
let tlsGbusi: GrpcBusi;
let pki: TestPki;
const invokers: BranchInvoker[] = [];

beforeAll(async () => {
  pki = makeTestPki();
  const credentials = ServerCredentials.createSsl(null, [{ cert_chain: pki.read(pki.serverCert), private_key: pki.read(pki.serverKey) }], false);
  [busi, gbusi, tlsGbusi] = await Promise.all([startBusi(), startGrpcBusi(), startGrpcBusi({ credentials })]);
  port = Number(new URL(busi.baseUrl).port);
});
afterAll(async () => {
  for (const invoker of invokers) await invoker.close();
  await Promise.all([busi?.close(), gbusi?.close(), tlsGbusi?.close()]);
  pki?.remove();
});
beforeEach(() => {
  busi.reset();
  gbusi.reset();
  tlsGbusi.reset();
});

/** What the coordinator builds (server.ts): the policy, and clients that connect through its resolver. */
function coordinatorInvoker(config: UrlPolicyConfig, answers: (host: string, n: number) => string[], tls?: BranchTls): { invoker: BranchInvoker; asked: string[] } {
  const asked: string[] = [];
  const policy = new UrlPolicy(config, async (host) => {
    asked.push(host);
    return answers(host, asked.length);
  });
  const connect = { resolve: (host: string) => policy.connectAddresses(host), ...(tls ? { tls } : {}) };
  const invoker = new DispatchInvoker({
    http: new HttpInvoker(false, undefined, {}, connect),
    "json-rpc": new JsonRpcInvoker(false, undefined, {}, connect),
    grpc: new GrpcInvoker(connect),
  }, policy);
  invokers.push(invoker);
  return { invoker, asked };
}

function call(url: string, gid: string): BranchCall {
  return { gid, transType: "saga", protocol: url.startsWith("http") ? "http" : "grpc", branchId: "01", op: "action", url, body: Buffer.from("{}"), headers: {}, timeoutMs: 2000 };
}

/** A public address at the check, loopback when the client resolves again (DNS rebinding). */
const rebinding = (_host: string, n: number): string[] => (n === 1 ? [PUBLIC_ADDRESS] : ["127.0.0.1"]);

describe("a name that resolves to a public address for the check and to loopback afterwards", () => {
  // `localhost` is what the system resolver maps to the participant: a client that resolved the
  // name on its own after the check would reach it.
  it("HTTP: the call is not made and the loopback participant receives nothing", async () => {
    const { invoker, asked } = coordinatorInvoker({ allow: [], denyPrivate: true }, rebinding);
    const outcome = await invoker.invoke(call(`http://localhost:${port}/api/busi/TransOut`, "rebind-http"));
    expect(outcome.kind === "error" && outcome.message).toMatch(/non-public address 127\.0\.0\.1 when connecting/);
    expect(asked).toEqual(["localhost", "localhost"]);
    expect(busi.calls()).toEqual([]);
  });

  it("gRPC: the call is not made and the loopback participant receives nothing", async () => {
    const { invoker, asked } = coordinatorInvoker({ allow: [], denyPrivate: true }, rebinding);
    const outcome = await invoker.invoke(call(`localhost:${gbusi.port}/busi.Busi/TransOut`, "rebind-grpc"));
    expect(outcome.kind === "error" && outcome.message).toMatch(/call not made: .*non-public address 127\.0\.0\.1 when connecting/);
    expect(asked).toEqual(["localhost", "localhost"]);
    expect(gbusi.calls()).toEqual([]);
  });
});

describe("the allowed case: the clients connect where the policy's resolver points", () => {
  // `participant.test` resolves nowhere on this machine: only the policy's answer gets the call through.
  const toLoopback = (): string[] => ["127.0.0.1"];

  it("HTTP", async () => {
    const { invoker } = coordinatorInvoker({ allow: [`http://participant.test:${port}`], denyPrivate: false }, toLoopback);
    expect(await invoker.invoke(call(`http://participant.test:${port}/api/busi/TransOut`, "pinned-http"))).toEqual({ kind: "success" });
    expect(busi.calls().map((c) => c.gid)).toEqual(["pinned-http"]);
  });

  it("gRPC, plaintext and over TLS (the certificate is checked against the name, not the address)", async () => {
    const { invoker } = coordinatorInvoker(
      { allow: [`grpc://participant.test:${gbusi.port}`, `grpc://participant.test:${tlsGbusi.port}`], denyPrivate: false }, toLoopback,
    );
    expect(await invoker.invoke(call(`participant.test:${gbusi.port}/busi.Busi/TransOut`, "pinned-grpc"))).toEqual({ kind: "success" });
    expect(gbusi.calls().map((c) => c.gid)).toEqual(["pinned-grpc"]);

    const tls = coordinatorInvoker({ allow: [`grpc://participant.test:${tlsGbusi.port}`], denyPrivate: false }, toLoopback, {
      ca: pki.read(pki.caCert), rejectUnauthorized: true, grpc: true,
    });
    expect(await tls.invoker.invoke(call(`participant.test:${tlsGbusi.port}/busi.Busi/TransOut`, "pinned-grpc-tls"))).toEqual({ kind: "success" });
    expect(tlsGbusi.calls().map((c) => c.gid)).toEqual(["pinned-grpc-tls"]);
  });

  it("HTTPS: the certificate is checked against the name, the connection goes to the policy's address", async () => {
    const participant = await startHttpsParticipant(pki);
    try {
      const { invoker } = coordinatorInvoker({ allow: [`https://participant.test:${participant.port}`], denyPrivate: false }, toLoopback, {
        ca: pki.read(pki.caCert), rejectUnauthorized: true, grpc: false,
      });
      const url = `https://participant.test:${participant.port}/api/TransOut`;
      expect(await invoker.invoke(call(url, "pinned-https"))).toEqual({ kind: "success" });
      expect(participant.seen.map((s) => s.path)).toEqual([expect.stringContaining("gid=pinned-https") as string]);
    } finally {
      await participant.close();
    }
  });

  it("gRPC: a name with several addresses gets round robin over all of them (dtm's GrpcServiceConfig)", async () => {
    const second = await startGrpcBusi({ host: "127.0.0.2", port: gbusi.port });
    try {
      const { invoker } = coordinatorInvoker({ allow: [`grpc://participant.test:${gbusi.port}`], denyPrivate: false }, () => ["127.0.0.1", "127.0.0.2"]);
      // Until both connections are ready the first one may take every call; then they alternate.
      for (let i = 0; i < 200 && (gbusi.calls().length < 2 || second.calls().length < 2); i++) {
        expect(await invoker.invoke(call(`participant.test:${gbusi.port}/busi.Busi/TransOut`, `rr-${i}`))).toEqual({ kind: "success" });
      }
      expect(gbusi.calls().length).toBeGreaterThanOrEqual(2);
      expect(second.calls().length).toBeGreaterThanOrEqual(2);
    } finally {
      await second.close();
    }
  });

  it("an address literal the allowlist names passes denyPrivate and is called as written", async () => {
    const { invoker, asked } = coordinatorInvoker({ allow: [`http://127.0.0.1:${port}`], denyPrivate: true }, toLoopback);
    expect(await invoker.invoke(call(`http://127.0.0.1:${port}/api/busi/TransOut`, "literal"))).toEqual({ kind: "success" });
    expect(asked).toEqual([]);
    expect(busi.calls().map((c) => c.gid)).toEqual(["literal"]);
  });
});
