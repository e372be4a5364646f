// Bounded branch-client queues (docs/overload.md): calls to one origin beyond its connections plus
// its queue fail at once as a retryable error, on each transport, against a real server that
// accepts connections and never answers.
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Outcome } from "../../server/src/core/types.ts";
import { GrpcInvoker } from "../../server/src/driver/grpc-invoker.ts";
import { HttpInvoker } from "../../server/src/driver/http-invoker.ts";
import type { BranchCall, BranchInvoker } from "../../server/src/driver/invoker.ts";
import { JsonRpcInvoker } from "../../server/src/driver/jsonrpc-invoker.ts";

let server: Server;
let port = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  // Reads everything, answers nothing: every call stays in flight until the test ends it.
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on("data", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const limits = { connections: 1, queue: 2 };

function call(url: string, protocol: BranchCall["protocol"]): BranchCall {
  return { gid: "limits", transType: "saga", protocol, branchId: "01", op: "action", url, body: new TextEncoder().encode("{}"), headers: {}, timeoutMs: 30_000 };
}

async function checkLimit(invoker: BranchInvoker, url: string, protocol: BranchCall["protocol"]): Promise<void> {
  const held: Promise<Outcome>[] = [];
  let settled = 0;
  for (let i = 0; i < limits.connections + limits.queue; i++) held.push(invoker.invoke(call(url, protocol)).finally(() => settled++));
  const started = performance.now();
  const refused = await invoker.invoke(call(url, protocol));
  expect(performance.now() - started).toBeLessThan(1000);
  expect(refused.kind).toBe("error");
  expect(refused.kind === "error" ? refused.message : "").toContain("call not made");
  expect(settled).toBe(0); // the earlier calls are still in flight or queued
  // Ending every connection (queued calls open new ones) ends the held calls; the origin has room again.
  const hangUp = setInterval(() => sockets.forEach((s) => s.destroy()), 20);
  try {
    const outcomes = await Promise.all(held);
    expect(outcomes.every((o) => o.kind === "error")).toBe(true);
    const after = await invoker.invoke(call(url, protocol));
    expect(after.kind === "error" ? after.message : "").not.toContain("call not made");
  } finally {
    clearInterval(hangUp);
  }
  await invoker.close();
}

describe("branch clients bound their queue per origin", () => {
  it("HTTP", async () => {
    await checkLimit(new HttpInvoker(false, limits), `http://127.0.0.1:${port}/api/busi/TransOut`, "http");
  });

  it("JSON-RPC", async () => {
    await checkLimit(new JsonRpcInvoker(false, limits), `http://127.0.0.1:${port}/api/json-rpc?method=TransOut`, "json-rpc");
  });

  it("gRPC", async () => {
    await checkLimit(new GrpcInvoker({ limits }), `127.0.0.1:${port}/busi.Busi/TransOut`, "grpc");
  });
});
