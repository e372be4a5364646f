/**
 * What a submitting client sees of a branch's answer (docs/security.md#what-clients-see-of-branch-answers):
 * by default only the branch's own `message` / `error` field of dtm's JSON shapes reaches a 409 /
 * 425 answer and `rollback_reason`; a raw body (an HTML error page, a stack trace) does not. With
 * `echoBranchBodies: true`, up to 512 characters of it do, as dtm does.
 */
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

const SECRET = "db-password=hunter2";
/** Path -> [status, body] the participant answers. */
const ANSWERS: Record<string, [number, string]> = {
  "/ok": [200, '{"dtm_result":"SUCCESS"}'],
  "/raw-failure": [409, `Traceback: connect(${SECRET}) failed`],
  "/dtm-message": [409, JSON.stringify({ dtm_result: "FAILURE", message: "insufficient balance", debug: SECRET })],
  "/dtm-error": [409, JSON.stringify({ error: "account frozen", debug: SECRET })],
  "/raw-error": [500, `<html><body>Internal error near ${SECRET}</body></html>`],
  "/message-error": [503, JSON.stringify({ message: "maintenance until 10:00", debug: SECRET })],
};

let participant: Server;
let base = "";
let quiet: TestCoordinator;
let echoing: TestCoordinator;

beforeAll(async () => {
  participant = createServer((req, res) => {
    req.resume();
    const [status, body] = ANSWERS[(req.url ?? "/").split("?")[0] ?? "/"] ?? [404, "no such path"];
    res.writeHead(status, { "content-type": "application/json" }).end(body);
  });
  await new Promise<void>((resolve) => participant.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(participant.address() as AddressInfo).port}`;
  [quiet, echoing] = await Promise.all([startCoordinator(), startCoordinator({ echoBranchBodies: true })]);
});

afterAll(async () => {
  await Promise.all([quiet?.stop(), echoing?.stop()]);
  await new Promise<void>((resolve) => (participant ? participant.close(() => resolve()) : resolve()));
});

/** Submits a one-step saga whose action is `path` and returns the answer plus the stored rollback reason. */
async function run(dtx: TestCoordinator, gid: string, path: string): Promise<{ status: number; message: string; reason: string }> {
  const r = await dtx.client.submit(sagaBody(gid, (name) => `${base}${name === "TransOut" ? path : "/ok"}`, { wait_result: true }, 1));
  const q = await dtx.client.query(gid);
  return { status: r.status, message: String((r.body as { message?: unknown }).message), reason: q.transaction?.rollback_reason ?? "" };
}

describe("by default (echoBranchBodies off)", () => {
  it("a raw FAILURE body is not echoed: the 409 and rollback_reason say the branch answered FAILURE", async () => {
    const r = await run(quiet, "echo-off-raw-failure", "/raw-failure");
    expect(r).toEqual({ status: 409, message: "HTTP 409: the branch answered FAILURE", reason: "HTTP 409: the branch answered FAILURE" });
  });

  it("the branch's own message field (dtm's envelope, or WrapHandler's error) is kept, nothing else of the body", async () => {
    const withMessage = await run(quiet, "echo-off-message", "/dtm-message");
    expect(withMessage).toEqual({ status: 409, message: "insufficient balance FAILURE", reason: "insufficient balance" });
    const withError = await run(quiet, "echo-off-error", "/dtm-error");
    expect(withError).toEqual({ status: 409, message: "account frozen FAILURE", reason: "account frozen" });
  });

  it("an error answer's raw body stays out of the 425 answer; its message field is kept", async () => {
    const raw = await run(quiet, "echo-off-raw-error", "/raw-error");
    expect(raw.status).toBe(425);
    expect(raw.message).toContain("http status 500 (body not shown)");
    expect(raw.message).not.toContain(SECRET);
    const withMessage = await run(quiet, "echo-off-message-error", "/message-error");
    expect(withMessage.status).toBe(425);
    expect(withMessage.message).toContain("http status 503: maintenance until 10:00");
    expect(withMessage.message).not.toContain(SECRET);
  });
});

describe("with echoBranchBodies: true", () => {
  it("a raw body reaches the client, as in dtm", async () => {
    const failure = await run(echoing, "echo-on-raw-failure", "/raw-failure");
    expect(failure).toMatchObject({ status: 409, reason: `Traceback: connect(${SECRET}) failed` });
    expect(failure.message).toContain(SECRET);
    const error = await run(echoing, "echo-on-raw-error", "/raw-error");
    expect(error.status).toBe(425);
    expect(error.message).toContain(SECRET);
  });

  it("a message field still wins over the body", async () => {
    expect(await run(echoing, "echo-on-message", "/dtm-message")).toMatchObject({ status: 409, reason: "insufficient balance" });
  });
});
