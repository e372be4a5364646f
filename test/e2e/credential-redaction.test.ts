import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../server/src/config.ts";
import { createLogger } from "../../server/src/logger.ts";
import type { Coordinator } from "../../server/src/server.ts";
import { createCoordinator } from "../../server/src/server.ts";
import { TEST_TIMINGS } from "../helpers/coordinator.ts";

/**
 * A branch URL that carries credentials (`user:secret@`, `?api_key=`) never reaches a log line or
 * the alert webhook (docs/input-limits.md, "Credentials"): not in the `branch` field, and not in
 * the `error` text, which undici's and Node's messages build from the raw URL. The log is the
 * coordinator's real pino output; the webhook is a real HTTP receiver.
 */

const SECRETS = ["secret-pw", "K3Y-VALUE", "api_key", "user:"];

let coordinator: Coordinator;
let httpUrl = "";
let dataDir = "";
let receiver: Server;
let deadPort = 0;
const logLines: string[] = [];
const webhookBodies: string[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      webhookBodies.push(Buffer.concat(chunks).toString("utf8"));
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const receiverPort = (receiver.address() as { port: number }).port;
  // A port nothing listens on: bound, then released.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  deadPort = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  dataDir = mkdtempSync(join(tmpdir(), "dtx-redact-"));
  const config = parseConfig({
    host: "127.0.0.1", httpPort: 0, grpcPort: 0, logLevel: "debug", testControl: true, env: "test", ...TEST_TIMINGS,
    alertWebhook: `http://127.0.0.1:${receiverPort}/alert`, alertRetryLimit: 0,
    store: { path: join(dataDir, "dtx.db") },
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      done();
    },
  });
  coordinator = await createCoordinator(config, createLogger(config.logLevel, sink));
  const { httpPort } = await coordinator.start();
  httpUrl = `http://127.0.0.1:${httpPort}`;
});

afterAll(async () => {
  await coordinator?.stop();
  await new Promise<void>((resolve) => receiver?.close(() => resolve()));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("credentials in a branch URL", () => {
  it("are redacted from the backoff warn line and from the alert webhook, in both fields", async () => {
    const url = `http://someuser:secret-pw@127.0.0.1:${deadPort}/api/busi/TransOut?api_key=K3Y-VALUE`;
    const gid = "redact-creds";
    const res = await request(`${httpUrl}/api/dtmsvr/submit`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ gid, trans_type: "saga", steps: [{ action: url, compensate: url }], payloads: ["{}"] }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();

    const warn = await until("the backoff warn line", () =>
      logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e["gid"] === gid && e["msg"] === "branch call failed; retrying later"));
    const webhook = await until("the alert webhook", () => webhookBodies.find((b) => b.includes(gid)));

    // The useful part survives: where the call went, and why it failed.
    expect(warn["branch"]).toBe(`http://127.0.0.1:${deadPort}/api/busi/TransOut`);
    expect(String(warn["error"])).toContain(`127.0.0.1:${deadPort}/api/busi/TransOut`);
    const alert = JSON.parse(webhook) as Record<string, unknown>;
    expect(alert["branch"]).toBe(`http://127.0.0.1:${deadPort}/api/busi/TransOut`);
    expect(String(alert["error"])).toContain(`127.0.0.1:${deadPort}/api/busi/TransOut`);

    const everything = [...logLines.filter((l) => l.includes(gid)), webhook].join("\n");
    for (const secret of SECRETS) expect(everything, `${secret} leaked`).not.toContain(secret);
  });
});
