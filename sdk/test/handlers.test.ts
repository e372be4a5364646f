import { Client, credentials, Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { ServiceDefinition, ServiceError, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { FastifyRequest } from "fastify";
import { createServer } from "node:http";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DtxHttpRequest } from "../src/index.ts";
import {
  DtxError, DtxFailure, DtxOngoing, Saga, branchInfoFromMetadata, branchInfoFromQuery, expressHandler, fastifyHandler, grpcHandler, nodeHandler, replyFor,
} from "../src/index.ts";
import type { App, SdkEnv } from "./helpers.ts";
import { gidFor, recordingResponse, startApp, startSdkEnv } from "./helpers.ts";

/** What each test route does, by name. */
function behave(name: string): unknown {
  switch (name) {
    case "ok":
      return undefined;
    case "value":
      return { balance: 70 };
    case "failure":
      throw new DtxFailure("insufficient balance");
    case "ongoing":
      throw new DtxOngoing("still working");
    case "barrier-failure":
      // Another module's error with dtm's FAILURE code (the barrier's BarrierError has this shape).
      throw Object.assign(new Error("barrier says FAILURE"), { code: "FAILURE" });
    case "error":
      throw new Error("db FAILURE while ONGOING");
    default:
      throw new DtxError("NOT_FOUND", `no route ${name}`);
  }
}

const EXPECTED: Record<string, { status: number; body: unknown }> = {
  ok: { status: 200, body: { dtm_result: "SUCCESS" } },
  value: { status: 200, body: { balance: 70 } },
  failure: { status: 409, body: { dtm_result: "FAILURE", message: "insufficient balance" } },
  ongoing: { status: 425, body: { dtm_result: "ONGOING", message: "still working" } },
  "barrier-failure": { status: 409, body: { dtm_result: "FAILURE", message: "barrier says FAILURE" } },
  error: { status: 500, body: { message: "db failure while ongoing" } },
};

async function get(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: '{"amount":1}' });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe("replyFor", () => {
  it("maps outcomes to dtm's status codes and bodies", () => {
    for (const [name, expected] of Object.entries(EXPECTED)) {
      let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
      try {
        outcome = { ok: true, value: behave(name) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      expect(replyFor(outcome), name).toEqual(expected);
    }
  });
});

describe("fastifyHandler", () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp((a) => {
      a.post("/r/:name", fastifyHandler(async (req: FastifyRequest) => behave((req.params as { name: string }).name)));
    });
  });
  afterAll(() => app?.close());

  it.each(Object.keys(EXPECTED))("%s", async (name) => {
    expect(await get(`${app.baseUrl}/r/${name}`)).toEqual(EXPECTED[name]);
  });
});

describe("nodeHandler", () => {
  let server: HttpServer;
  let base = "";
  const seen: DtxHttpRequest[] = [];
  beforeAll(async () => {
    server = createServer(
      nodeHandler(async (req) => {
        seen.push(req);
        return behave(req.path.slice(3));
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each(Object.keys(EXPECTED))("%s", async (name) => {
    expect(await get(`${base}/r/${name}`)).toEqual(EXPECTED[name]);
  });

  it("hands the handler the body, query and branch info", async () => {
    seen.length = 0;
    await get(`${base}/r/ok?gid=g1&trans_type=saga&branch_id=01&op=action`);
    const req = seen[0];
    expect(req?.json()).toEqual({ amount: 1 });
    expect(req?.branchInfo()).toEqual({ transType: "saga", gid: "g1", branchId: "01", op: "action", dtm: "", phase2Url: "" });
  });
});

describe("expressHandler", () => {
  it.each(Object.keys(EXPECTED))("%s", async (name) => {
    const { res, sent } = recordingResponse();
    await expressHandler((req: { name: string }) => behave(req.name))({ name }, res);
    expect({ status: sent.status, body: sent.body }).toEqual(EXPECTED[name]);
  });
});

describe("grpcHandler", () => {
  let server: Server;
  let client: Client;
  beforeAll(async () => {
    server = new Server();
    const identity = (b: Buffer): Buffer => b;
    const definition: Record<string, unknown> = {};
    const implementation: UntypedServiceImplementation = {};
    for (const name of Object.keys(EXPECTED)) {
      const method = name.replace(/-/g, "_");
      definition[method] = {
        path: `/test.T/${method}`, requestStream: false, responseStream: false, originalName: method,
        requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
      };
      implementation[method] = grpcHandler<Buffer, Buffer>((call) => {
        const info = branchInfoFromMetadata(call.metadata);
        expect(info.gid).toBe("g1");
        const value = behave(name);
        return value === undefined ? undefined : Buffer.from(JSON.stringify(value));
      }, () => Buffer.alloc(0));
    }
    server.addService(definition as ServiceDefinition, implementation);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  const codes: Record<string, number> = {
    ok: status.OK, value: status.OK, failure: status.ABORTED, ongoing: status.FAILED_PRECONDITION, "barrier-failure": status.ABORTED, error: status.UNKNOWN,
  };
  it.each(Object.keys(codes))("%s", async (name) => {
    const md = new Metadata();
    for (const [k, v] of Object.entries({ "dtm-gid": "g1", "dtm-trans_type": "saga", "dtm-branch_id": "01", "dtm-op": "action" })) md.set(k, v);
    const method = name.replace(/-/g, "_");
    const result = await new Promise<{ code: number; details: string }>((resolve) => {
      client.makeUnaryRequest(`/test.T/${method}`, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md, (err: ServiceError | null) => {
        resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: "" });
      });
    });
    expect(result.code).toBe(codes[name]);
    if (name === "error") expect(result.details).toBe("db failure while ongoing");
  });
});

describe("branchInfoFromQuery / branchInfoFromMetadata", () => {
  it("reads URLSearchParams, framework query objects (first of repeated values) and URLs", () => {
    const expected = { transType: "xa", gid: "g1", branchId: "02", op: "action", dtm: "http://d/api/dtmsvr", phase2Url: "http://rm/xa" };
    const qs = "gid=g1&trans_type=xa&branch_id=02&op=action&dtm=http%3A%2F%2Fd%2Fapi%2Fdtmsvr&phase2_url=http%3A%2F%2Frm%2Fxa";
    expect(branchInfoFromQuery(new URLSearchParams(qs))).toEqual(expected);
    expect(branchInfoFromQuery(`/api/x?${qs}`)).toEqual(expected);
    expect(branchInfoFromQuery({ ...Object.fromEntries(new URLSearchParams(qs)), gid: ["g1", "g2"] })).toEqual(expected);
  });

  it("requires trans_type, gid, branch_id and op", () => {
    expect(() => branchInfoFromQuery({ gid: "g1", op: "action" })).toThrow(/trans_type|branch_id/);
    try {
      branchInfoFromQuery({});
    } catch (e) {
      expect(e).toMatchObject({ code: "INVALID_ARGUMENT" });
    }
  });

  it("reads grpc-js Metadata and plain objects", () => {
    const md = new Metadata();
    md.set("dtm-gid", "g1");
    md.set("dtm-trans_type", "tcc");
    md.set("dtm-branch_id", "01");
    md.set("dtm-op", "try");
    md.set("dtm-dtm", "127.0.0.1:36790");
    expect(branchInfoFromMetadata(md)).toEqual({ transType: "tcc", gid: "g1", branchId: "01", op: "try", dtm: "127.0.0.1:36790", phase2Url: "" });
    expect(branchInfoFromMetadata({ "dtm-gid": "g", "dtm-trans_type": "saga", "dtm-branch_id": "01", "dtm-op": "compensate" }).op).toBe("compensate");
  });
});

describe("the coordinator reads the helpers' answers as dtm does", () => {
  let env: SdkEnv;
  let app: App;
  const calls: string[] = [];
  beforeAll(async () => {
    env = await startSdkEnv();
    app = await startApp((a) => {
      a.post("/p/:name", fastifyHandler(async (req: FastifyRequest) => {
        const name = (req.params as { name: string }).name;
        const info = branchInfoFromQuery(req.query as Record<string, string>);
        calls.push(`${name}:${info.op}`);
        return behave(name.replace(/Revert$/, "") === name ? name : "ok");
      }));
    });
  });
  afterAll(async () => {
    await app?.close();
    await env?.stop();
  });

  it("409 rolls a saga back; 500 mentioning FAILURE does not; 425 keeps it going", async () => {
    const saga = (gid: string, second: string) =>
      new Saga(env.http, gid, { waitResult: true }).add(`${app.baseUrl}/p/ok`, `${app.baseUrl}/p/okRevert`, {}).add(`${app.baseUrl}/p/${second}`, `${app.baseUrl}/p/${second}Revert`, {});

    calls.length = 0;
    await expect(saga(gidFor("h-fail"), "failure").submit()).rejects.toBeInstanceOf(DtxFailure);
    expect(calls).toEqual(["ok:action", "failure:action", "failureRevert:compensate", "okRevert:compensate"]);

    const gidErr = gidFor("h-err");
    // wait_result on a saga that is not finished: ONGOING, not FAILURE (docs/deviations.md D11)
    await expect(saga(gidErr, "error").submit()).rejects.toBeInstanceOf(DtxOngoing);
    expect(await env.dtx.client.status(gidErr)).toBe("submitted");

    const gidOngoing = gidFor("h-ongoing");
    await expect(saga(gidOngoing, "ongoing").submit()).rejects.toBeInstanceOf(DtxOngoing);
    expect(await env.dtx.client.branchStatuses(gidOngoing)).toEqual(["prepared", "succeed", "prepared", "prepared"]);
  });
});
