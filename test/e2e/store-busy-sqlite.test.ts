/**
 * A store fault as each API answers it (docs/store-outages.md), on the embedded store: a second
 * SQLite connection holds the write lock, so every write waits out the busy timeout
 * (`store.timeout`) and fails with SQLITE_BUSY. HTTP answers 503 STORE_UNAVAILABLE with
 * Retry-After, JSON-RPC an error with a stable code, gRPC UNAVAILABLE; reads still work (WAL), and
 * once the lock is gone the same requests succeed. Nothing is written while the lock is held.
 */
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import BetterSqlite3 from "better-sqlite3";
import type { Database } from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JSONRPC_STORE_UNAVAILABLE } from "../../server/src/api/http/route-json-rpc.ts";
import { DtmGrpcClient } from "../busi/grpc-busi.ts";
import { sagaBody } from "../helpers/client.ts";
import { useCoordinatorWithBusi } from "../helpers/e2e-env.ts";

const STORE_TIMEOUT_S = 0.5;
const env = useCoordinatorWithBusi({ store: { timeout: STORE_TIMEOUT_S } });
let locker: Database;
let grpc: DtmGrpcClient;

beforeAll(() => {
  locker = new BetterSqlite3(join(env.dtx.dataDir, "dtx.db"));
  grpc = new DtmGrpcClient(`127.0.0.1:${env.dtx.grpcPort}`);
});
afterAll(() => {
  if (locker.inTransaction) locker.exec("ROLLBACK");
  locker.close();
});

/** Runs `fn` and returns its result with how long it took (ms). */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

const grpcSaga = (gid: string) => ({
  Gid: gid,
  TransType: "saga",
  Steps: JSON.stringify([{ action: env.busi.url("TransOut"), compensate: env.busi.url("TransOutRevert") }]),
  BinPayloads: [Buffer.from("{}")],
});

describe("a store that holds its write lock past store.timeout", () => {
  it("answers 503 STORE_UNAVAILABLE (HTTP, with Retry-After), a stable JSON-RPC code and gRPC UNAVAILABLE within the timeout; nothing is written", async () => {
    const { client } = env.dtx;
    locker.exec("BEGIN IMMEDIATE");
    const limitMs = (STORE_TIMEOUT_S + 1) * 1000;

    const http = await timed(() => client.submit(sagaBody("busy-http", (n) => env.busi.url(n))));
    expect(http.value.status).toBe(503);
    expect(http.value.body).toMatchObject({ code: "STORE_UNAVAILABLE" });
    expect(http.ms).toBeLessThan(limitMs);
    const raw = await fetch(`${env.dtx.url}/api/dtmsvr/submit`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(sagaBody("busy-http-2", (n) => env.busi.url(n))),
    });
    expect(raw.status).toBe(503);
    expect(Number(raw.headers.get("retry-after"))).toBeGreaterThan(0);

    const rpc = await timed(() => client.call("POST", "/api/json-rpc", {
      jsonrpc: "2.0", id: "1", method: "submit", params: sagaBody("busy-rpc", (n) => env.busi.url(n)),
    }));
    expect(rpc.value.status).toBe(503);
    expect(rpc.value.body).toMatchObject({ error: { code: JSONRPC_STORE_UNAVAILABLE, data: { code: "STORE_UNAVAILABLE" } } });
    expect(rpc.ms).toBeLessThan(limitMs);

    const g = await timed(() => grpc.call("Submit", grpcSaga("busy-grpc")));
    expect(g.value).toMatchObject({ ok: false, code: status.UNAVAILABLE, dtxCode: "STORE_UNAVAILABLE" });
    expect(g.ms).toBeLessThan(limitMs);

    // Reads do not need the write lock (WAL): health and query still answer.
    expect((await client.call("GET", "/api/dtx/health")).status).toBe(200);
    expect((await client.call("GET", "/api/ping")).status).toBe(200);
    expect((await client.query("busy-http")).transaction).toBeNull();

    locker.exec("ROLLBACK");
    for (const gid of ["busy-http", "busy-rpc", "busy-grpc"]) expect((await client.query(gid)).transaction, gid).toBeNull();
    const after = await client.submit(sagaBody("busy-http", (n) => env.busi.url(n)));
    expect(after.status).toBe(200);
    expect((await grpc.call("Submit", grpcSaga("busy-grpc"))).ok).toBe(true);
  });
});
