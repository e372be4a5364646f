/**
 * The branch client's HTTP exchange (server/src/driver/http-exchange.ts) against a real node:http
 * participant that holds requests until the test lets them go: a call cut off (its timeout, or its
 * pass's signal) answers at once even while it waits for a connection, is never sent, and keeps its
 * slot in the origin's bound until undici has let go of it.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BoundedHttpClient, CallNotMade } from "../../server/src/driver/bounded-http-client.ts";
import type { HttpExchangeRequest } from "../../server/src/driver/http-exchange.ts";

let server: Server;
let origin = "";
/** Requests the participant received, by path, in order. */
const received: string[] = [];
/** Answers held back: calling one answers its request. */
const held: (() => void)[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      received.push(req.url ?? "");
      const answer = (): void => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"dtm_result":"SUCCESS"}');
      };
      if (req.url?.startsWith("/hold")) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(() => {
  for (const answer of held.splice(0)) answer();
  received.length = 0;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function request(path: string, timeoutMs: number, signal?: AbortSignal): HttpExchangeRequest {
  return { origin, path, method: "POST", headers: { "content-type": "application/json" }, body: "{}", timeoutMs, signal };
}

/** Resolves once the participant holds `n` requests. */
async function heldCount(n: number): Promise<void> {
  while (held.length < n) await new Promise((resolve) => setImmediate(resolve));
}

describe("an HTTP exchange", () => {
  it("answers the status and body", async () => {
    const client = new BoundedHttpClient({ connections: 1, queue: 0 });
    await expect(client.send(request("/ok", 5_000))).resolves.toEqual({ statusCode: 200, text: '{"dtm_result":"SUCCESS"}' });
    await client.close();
  });

  it("a call that times out while queued for a connection rejects at once, is never sent, and holds its slot until undici drops it", async () => {
    const client = new BoundedHttpClient({ connections: 1, queue: 1 });
    const first = client.send(request("/hold/first", 60_000));
    await heldCount(1);
    const queued = client.send(request("/queued", 50));
    await expect(queued).rejects.toThrow("no answer within 50 ms");
    // The queued request still sits in undici's queue: the bound (1 + 1) counts it.
    await expect(client.send(request("/third", 5_000))).rejects.toBeInstanceOf(CallNotMade);
    (held.shift() as () => void)();
    await expect(first).resolves.toMatchObject({ statusCode: 200 });
    // Once undici reaches and drops it, the slot is free and the connection serves the next call.
    await expect(client.send(request("/after", 5_000))).resolves.toMatchObject({ statusCode: 200 });
    expect(received).toEqual(["/hold/first", "/after"]);
    await client.close();
  });

  it("the pass's signal cuts off a call in flight and one still queued; the queued one is never sent", async () => {
    const client = new BoundedHttpClient({ connections: 1, queue: 1 });
    const pass = new AbortController();
    const inFlight = client.send(request("/hold/in-flight", 60_000, pass.signal));
    await heldCount(1);
    const queued = client.send(request("/queued", 60_000, pass.signal));
    pass.abort(new Error("the pass lost its claim"));
    await expect(inFlight).rejects.toThrow("the pass lost its claim");
    await expect(queued).rejects.toThrow("the pass lost its claim");
    await expect(client.send(request("/after", 5_000))).resolves.toMatchObject({ statusCode: 200 });
    expect(received).toEqual(["/hold/in-flight", "/after"]);
    await client.close();
  });

  it("a call whose signal was aborted before it started is not sent", async () => {
    const client = new BoundedHttpClient({ connections: 1, queue: 0 });
    await expect(client.send(request("/never", 5_000, AbortSignal.abort(new Error("already over"))))).rejects.toThrow("already over");
    await expect(client.send(request("/after", 5_000))).resolves.toMatchObject({ statusCode: 200 });
    expect(received).toEqual(["/after"]);
    await client.close();
  });
});
