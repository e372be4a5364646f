/**
 * The `signature` option of the handler helpers and the barrier's signed constructors: a request
 * signed as the coordinator signs (docs/security.md#signed-branch-calls) reaches the handler; an
 * unsigned, stale or tampered one is answered 401 (fastify, on a real server with the SDK's JSON
 * parser keeping the raw body) before the handler runs. The end-to-end run against the coordinator
 * is test/e2e/branch-signing.test.ts.
 */
import type { FastifyRequest } from "fastify";
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BranchBarrier, BranchSignatureVerifier, canonicalBranchRequest, expressHandler, fastifyHandler } from "../src/index.ts";
import type { App } from "./helpers.ts";
import { recordingResponse, startApp } from "./helpers.ts";

const KEY = { id: "k1", secret: "0123456789abcdef0123456789abcdef-sdk" };
const NOW_S = 1_765_000_000;
let clockS = NOW_S;
const verifier = new BranchSignatureVerifier({ keys: [KEY], now: () => clockS * 1000 });

function sign(method: string, url: string, body: string | Uint8Array, t = NOW_S): string {
  const sig = createHmac("sha256", KEY.secret).update(canonicalBranchRequest(t, method, url, body)).digest("hex");
  return `v1,kid=${KEY.id},t=${t},sig=${sig}`;
}

const PATH = "/api/TransOut?gid=g1&trans_type=saga&branch_id=01&op=action";
const BODY = '{"amount":30}';

describe("fastifyHandler with a signature", () => {
  let app: App;
  const ran: unknown[] = [];
  beforeAll(async () => {
    app = await startApp((a) => {
      a.post("/api/TransOut", fastifyHandler(async (req: FastifyRequest) => void ran.push(req.body), { signature: verifier }));
      a.get("/api/TransOut", fastifyHandler(async () => void ran.push("get"), { signature: verifier }));
    });
  });
  afterAll(() => app?.close());

  const post = async (signature: string | undefined, body = BODY): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${app.baseUrl}${PATH}`, {
      method: "POST", body, headers: { "content-type": "application/json", ...(signature === undefined ? {} : { "x-dtx-signature": signature }) },
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  it("a signed POST and a signed bodyless GET reach the handler", async () => {
    ran.length = 0;
    expect(await post(sign("POST", PATH, BODY))).toEqual({ status: 200, body: { dtm_result: "SUCCESS" } });
    const get = await fetch(`${app.baseUrl}${PATH}`, { headers: { "x-dtx-signature": sign("GET", PATH, "") } });
    expect(get.status).toBe(200);
    expect(ran).toEqual([{ amount: 30 }, "get"]);
  });

  it("unsigned, tampered and stale requests get 401 and never reach the handler", async () => {
    ran.length = 0;
    expect(await post(undefined)).toEqual({ status: 401, body: { message: "branch signature refused: no x-dtx-signature" } });
    expect((await post(sign("POST", PATH, BODY), '{"amount":3000}')).status).toBe(401);
    clockS = NOW_S + 301;
    try {
      expect((await post(sign("POST", PATH, BODY))).status).toBe(401);
    } finally {
      clockS = NOW_S;
    }
    expect(ran).toEqual([]);
  });
});

describe("expressHandler with a signature", () => {
  const handler = expressHandler(() => undefined, { signature: verifier });
  const request = (signature: string, extra: Record<string, unknown>) => ({
    method: "POST", originalUrl: PATH, url: "/TransOut", query: {}, params: {}, headers: { "x-dtx-signature": signature, "content-length": "13" }, body: { amount: 30 }, ...extra,
  });

  it("verifies over originalUrl and the raw body kept by express.json({ verify })", async () => {
    const { res, sent } = recordingResponse();
    await handler(request(sign("POST", PATH, BODY), { rawBody: Buffer.from(BODY) }), res);
    expect(sent).toEqual({ status: 200, body: { dtm_result: "SUCCESS" } });
  });

  it("a wrong signature is 401; a parsed body without the raw one is a setup error (500), not a pass", async () => {
    const wrong = recordingResponse();
    await handler(request(sign("POST", PATH, "{}"), { rawBody: Buffer.from(BODY) }), wrong.res);
    expect(wrong.sent.status).toBe(401);
    const noRaw = recordingResponse();
    await handler(request(sign("POST", PATH, BODY), {}), noRaw.res);
    expect(noRaw.sent.status).toBe(500);
    expect(String((noRaw.sent.body as { message: string }).message)).toContain("raw request body");
  });
});

describe("BranchBarrier.fromSignedHttp / fromSignedGrpc", () => {
  it("builds the barrier from a verified request, and throws UNAUTHENTICATED otherwise", () => {
    const bb = BranchBarrier.fromSignedHttp({ method: "POST", url: PATH, headers: { "x-dtx-signature": sign("POST", PATH, BODY) }, body: BODY }, verifier);
    expect([bb.gid, bb.branchId, bb.op]).toEqual(["g1", "01", "action"]);
    expect(() => BranchBarrier.fromSignedHttp({ method: "POST", url: PATH, headers: {}, body: BODY }, verifier)).toThrow(expect.objectContaining({ code: "UNAUTHENTICATED" }));

    const message = Buffer.from([8, 30]);
    const values: Record<string, string> = {
      "dtm-gid": "g2", "dtm-trans_type": "tcc", "dtm-branch_id": "02", "dtm-op": "try", "x-dtx-signature": sign("POST", "/busi.Busi/TransOut", message),
    };
    const metadata = { get: (key: string) => (values[key] === undefined ? [] : [values[key]!]) };
    expect(BranchBarrier.fromSignedGrpc({ path: "/busi.Busi/TransOut", metadata, message }, verifier).gid).toBe("g2");
    expect(() => BranchBarrier.fromSignedGrpc({ path: "/busi.Busi/TransIn", metadata, message }, verifier)).toThrow(/does not match/);
  });
});
