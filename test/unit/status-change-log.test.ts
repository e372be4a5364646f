/**
 * Every global status write that takes effect is logged at debug level as "status changed"
 * `{gid, transType, from, to, cause}` (server/src/service/status-log.ts): the chaos checker's G5
 * judges the transitions from these lines. A real coordinator (SQLite) and the busi participant.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { sagaBody } from "../helpers/client.ts";

interface Line {
  level: number;
  msg: string;
  gid?: string;
  transType?: string;
  from?: string | null;
  to?: string;
  cause?: string;
}

let busi: Busi;
let dtx: TestCoordinator;
const lines: Line[] = [];

beforeAll(async () => {
  busi = await startBusi();
  dtx = await startCoordinator({}, pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line) as Line) }));
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
});

function changesOf(gid: string): Array<Pick<Line, "transType" | "from" | "to" | "cause">> {
  return lines.filter((l) => l.msg === "status changed" && l.gid === gid).map((l) => {
    expect(l.level).toBe(20);
    return { transType: l.transType, from: l.from, to: l.to, cause: l.cause };
  });
}

async function post(path: string, body: Record<string, unknown>): Promise<void> {
  const r = await dtx.client.call("POST", `/api/dtmsvr/${path}`, body);
  expect(r.status, r.text).toBe(200);
}

describe("status changed log lines", () => {
  it("a saga: created submitted, then succeed by its pass", async () => {
    await post("submit", sagaBody("scl-saga-ok", (n) => busi.url(n)));
    await dtx.client.settle();
    expect(changesOf("scl-saga-ok")).toEqual([
      { transType: "saga", from: null, to: "submitted", cause: "create" },
      { transType: "saga", from: "submitted", to: "succeed", cause: "pass" },
    ]);
  });

  it("a saga whose action fails: submitted, aborting, failed", async () => {
    busi.programAlways({ gid: "scl-saga-fail", name: "TransIn" }, "FAILURE");
    await post("submit", sagaBody("scl-saga-fail", (n) => busi.url(n)));
    await dtx.client.settle();
    expect(changesOf("scl-saga-fail").map((c) => `${c.from ?? "none"}>${c.to} (${c.cause})`)).toEqual([
      "none>submitted (create)",
      "submitted>aborting (pass)",
      "aborting>failed (pass)",
    ]);
  });

  it("a TCC aborted by its client, a msg aborted, a saga force-stopped", async () => {
    await post("prepare", { gid: "scl-tcc", trans_type: "tcc" });
    await post("abort", { gid: "scl-tcc", trans_type: "tcc" });
    await dtx.client.settle();
    await post("prepare", { gid: "scl-msg", trans_type: "msg", query_prepared: busi.url("QueryPrepared") });
    await post("abort", { gid: "scl-msg", trans_type: "msg" });
    await post("prepare", { gid: "scl-stop", trans_type: "saga" });
    await post("forceStop", { gid: "scl-stop" });
    expect(changesOf("scl-tcc").map((c) => `${c.from ?? "none"}>${c.to} (${c.cause})`)).toEqual(["none>prepared (create)", "prepared>aborting (abort)", "aborting>failed (pass)"]);
    expect(changesOf("scl-msg").map((c) => `${c.from ?? "none"}>${c.to} (${c.cause})`)).toEqual(["none>prepared (create)", "prepared>failed (abort)"]);
    expect(changesOf("scl-stop").map((c) => `${c.from ?? "none"}>${c.to} (${c.cause})`)).toEqual(["none>prepared (create)", "prepared>failed (force-stop)"]);
  });

  it("a workflow: prepared by prepareWorkflow, succeed by its submit; a second submit logs nothing", async () => {
    await post("prepareWorkflow", { gid: "scl-wf", trans_type: "workflow", query_prepared: busi.url("Workflow") });
    await post("submit", { gid: "scl-wf", trans_type: "workflow", req_extra: { status: "succeed" } });
    await post("submit", { gid: "scl-wf", trans_type: "workflow", req_extra: { status: "succeed" } });
    expect(changesOf("scl-wf")).toEqual([
      { transType: "workflow", from: null, to: "prepared", cause: "create" },
      { transType: "workflow", from: "prepared", to: "succeed", cause: "workflow-submit" },
    ]);
  });

  it("a prepared saga submitted: prepared → submitted by the request, then succeed", async () => {
    const body = sagaBody("scl-prep", (n) => busi.url(n));
    await post("prepare", body);
    await post("submit", body);
    await dtx.client.settle();
    expect(changesOf("scl-prep").map((c) => `${c.from ?? "none"}>${c.to} (${c.cause})`)).toEqual(["none>prepared (create)", "prepared>submitted (submit)", "submitted>succeed (pass)"]);
  });
});
