/**
 * How much of a participant's answer the HTTP invoker keeps (docs/overload.md: the answer read
 * from a participant is bounded): the first 64 KB, whether the answer declares its length or comes
 * chunked; the rest is read and dropped. Against a real node:http participant.
 */
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpInvoker } from "../../server/src/driver/http-invoker.ts";
import type { BranchCall } from "../../server/src/driver/invoker.ts";
import { classifyHttpResult } from "../../server/src/driver/outcome.ts";

const CAP = 64 * 1024;
let server: Server;
let base = "";
const invoker = new HttpInvoker(false);

/** 409 with `size` bytes: the FAILURE word first, so the outcome says whether the text was read. */
function failureBody(size: number): string {
  const head = '{"dtm_result":"FAILURE","message":"';
  return `${head}${"x".repeat(Math.max(0, size - head.length - 2))}"}`;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const size = Number(new URL(req.url ?? "/", "http://x").pathname.split("/")[2]);
    const body = failureBody(size);
    req.resume();
    req.on("end", () => {
      if (req.url?.startsWith("/chunked/")) {
        res.writeHead(409, { "content-type": "application/json" });
        // Several writes without a content-length: chunked transfer encoding.
        for (let i = 0; i < body.length; i += 10_000) res.write(body.slice(i, i + 10_000));
        res.end();
      } else {
        res.writeHead(409, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
        res.end(body);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await invoker.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function call(url: string): BranchCall {
  return { gid: "answers", transType: "saga", protocol: "http", branchId: "01", op: "action", url, body: new TextEncoder().encode("{}"), headers: {}, timeoutMs: 5_000 };
}

describe("the HTTP invoker reads a bounded answer", () => {
  it.each([
    { how: "declared", size: 100 },
    { how: "declared", size: CAP },
    { how: "declared", size: 5 * CAP },
    { how: "chunked", size: 100 },
    { how: "chunked", size: 5 * CAP },
  ])("$how, $size bytes: the same outcome as the answer's first 64 KB gives", async ({ how, size }) => {
    const outcome = await invoker.invoke(call(`${base}/${how}/${size}`));
    const expected = classifyHttpResult(409, failureBody(size).slice(0, CAP), { strict: false, echoBodies: false });
    expect(outcome).toEqual(expected);
    expect(outcome.kind).toBe("failure");
  });
});
