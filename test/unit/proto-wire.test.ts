/**
 * proto/dtmgimp.proto and proto/wf.proto must stay wire-identical to dtm's (docs/protocol.md#grpc-api and docs/protocol.md#workflow):
 * every message's field numbers and types are compared with a table written from the spec, first
 * through @grpc/proto-loader's descriptors, then on the wire, by decoding what the loaded
 * serializers produce with a hand-written protobuf reader. The gRPC invoker's pure parts (URL
 * split, WorkflowData encoding, result classification) and the DtmRequest mapping are checked too.
 */
import { status } from "@grpc/grpc-js";
import type { MethodDefinition, PackageDefinition } from "@grpc/proto-loader";
import { describe, expect, it } from "vitest";
import { branchBody, transBody } from "../../server/src/api/grpc/convert.ts";
import type { DtmRequest } from "../../server/src/api/grpc/proto.ts";
import { loadDtmProto, loadWorkflowProto } from "../../server/src/api/grpc/proto.ts";
import { classifyGrpcResult, encodeWorkflowData, parseGrpcUrl, requestMessage } from "../../server/src/driver/grpc-invoker.ts";

type FieldType = "string" | "bool" | "int64" | "bytes" | "map<string,string>" | `message ${string}`;
interface Field {
  n: number;
  name: string;
  type: FieldType;
  repeated?: boolean;
}

/** docs/protocol.md#grpc-api and docs/protocol.md#workflow, field by field. */
const SPEC: Record<string, Field[]> = {
  "dtmgimp.DtmTransOptions": [
    { n: 1, name: "WaitResult", type: "bool" },
    { n: 2, name: "TimeoutToFail", type: "int64" },
    { n: 3, name: "RetryInterval", type: "int64" },
    { n: 5, name: "BranchHeaders", type: "map<string,string>" },
    { n: 6, name: "RequestTimeout", type: "int64" },
    { n: 7, name: "RetryLimit", type: "int64" },
  ],
  "dtmgimp.DtmRequest": [
    { n: 1, name: "Gid", type: "string" },
    { n: 2, name: "TransType", type: "string" },
    { n: 3, name: "TransOptions", type: "message DtmTransOptions" },
    { n: 4, name: "CustomedData", type: "string" },
    { n: 5, name: "BinPayloads", type: "bytes", repeated: true },
    { n: 6, name: "QueryPrepared", type: "string" },
    { n: 7, name: "Steps", type: "string" },
    { n: 8, name: "ReqExtra", type: "map<string,string>" },
    { n: 9, name: "RollbackReason", type: "string" },
  ],
  "dtmgimp.DtmGidReply": [{ n: 1, name: "Gid", type: "string" }],
  "dtmgimp.DtmBranchRequest": [
    { n: 1, name: "Gid", type: "string" },
    { n: 2, name: "TransType", type: "string" },
    { n: 3, name: "BranchID", type: "string" },
    { n: 4, name: "Op", type: "string" },
    { n: 5, name: "Data", type: "map<string,string>" },
    { n: 6, name: "BusiPayload", type: "bytes" },
  ],
  "dtmgimp.DtmProgressesReply": [
    { n: 1, name: "Transaction", type: "message DtmTransaction" },
    { n: 2, name: "Progresses", type: "message DtmProgress", repeated: true },
  ],
  "dtmgimp.DtmTransaction": [
    { n: 1, name: "Gid", type: "string" },
    { n: 2, name: "Status", type: "string" },
    { n: 3, name: "RollbackReason", type: "string" },
    { n: 4, name: "Result", type: "string" },
  ],
  "dtmgimp.DtmProgress": [
    { n: 1, name: "Status", type: "string" },
    { n: 2, name: "BinData", type: "bytes" },
    { n: 3, name: "BranchID", type: "string" },
    { n: 4, name: "Op", type: "string" },
  ],
  "dtmgimp.DtmTopicRequest": [
    { n: 1, name: "Topic", type: "string" },
    { n: 2, name: "URL", type: "string" },
    { n: 3, name: "Remark", type: "string" },
  ],
  "workflow.WorkflowData": [{ n: 1, name: "Data", type: "bytes" }],
};

const RPCS: Record<string, [string, string]> = {
  NewGid: ["Empty", "DtmGidReply"],
  Submit: ["DtmRequest", "Empty"],
  Prepare: ["DtmRequest", "Empty"],
  Abort: ["DtmRequest", "Empty"],
  RegisterBranch: ["DtmBranchRequest", "Empty"],
  PrepareWorkflow: ["DtmRequest", "DtmProgressesReply"],
  Subscribe: ["DtmTopicRequest", "Empty"],
  Unsubscribe: ["DtmTopicRequest", "Empty"],
  DeleteTopic: ["DtmTopicRequest", "Empty"],
};

interface DescriptorField {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface Descriptor {
  name: string;
  field: DescriptorField[];
  nestedType: (Descriptor & { options: { mapEntry?: boolean } | null })[];
}

const dtm = loadDtmProto();
const wf = loadWorkflowProto();
const all: PackageDefinition = { ...dtm, ...wf };

function describeField(d: Descriptor, f: DescriptorField): Field {
  const out: Field = { n: f.number, name: f.name, type: "string" };
  const scalar: Record<string, FieldType> = { TYPE_STRING: "string", TYPE_BOOL: "bool", TYPE_INT64: "int64", TYPE_BYTES: "bytes" };
  if (f.type === "TYPE_MESSAGE") {
    const entry = d.nestedType.find((t) => t.name === f.typeName && t.options?.mapEntry);
    if (entry) {
      const kv = entry.field.map((x) => `${x.number}:${x.type}`).join(",");
      out.type = kv === "1:TYPE_STRING,2:TYPE_STRING" ? "map<string,string>" : (`map ${kv}` as FieldType);
      return out;
    }
    out.type = `message ${f.typeName.replace(/^\.?dtmgimp\./, "")}`;
  } else {
    out.type = scalar[f.type] ?? (f.type as FieldType);
  }
  if (f.label === "LABEL_REPEATED") out.repeated = true;
  return out;
}

// ---------------------------------------------------------------------------------------------
// A minimal protobuf reader: (field number, wire type, value) triples.

interface WireField {
  n: number;
  wire: number;
  value: bigint | Buffer;
}

function readVarint(buf: Buffer, at: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = at; i < buf.length; i++) {
    const byte = buf[i]!;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, i + 1];
    shift += 7n;
  }
  throw new Error("truncated varint");
}

function readWire(buf: Buffer): WireField[] {
  const out: WireField[] = [];
  let at = 0;
  while (at < buf.length) {
    const [tag, next] = readVarint(buf, at);
    const n = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, after] = readVarint(buf, next);
      out.push({ n, wire, value: v });
      at = after;
    } else if (wire === 2) {
      const [len, after] = readVarint(buf, next);
      const end = after + Number(len);
      out.push({ n, wire, value: buf.subarray(after, end) });
      at = end;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return out;
}

function serializerOf(message: string): (value: unknown) => Buffer {
  for (const service of [dtm["dtmgimp.Dtm"], wf["workflow.Workflow"]] as Record<string, MethodDefinition<unknown, unknown>>[]) {
    for (const m of Object.values(service)) {
      if ((m.requestType as unknown as { type: Descriptor }).type.name === message) return m.requestSerialize;
      if ((m.responseType as unknown as { type: Descriptor }).type.name === message) return m.responseSerialize;
    }
  }
  throw new Error(`no RPC carries ${message}`);
}

const WIRE_TYPE: Record<string, number> = { string: 2, bytes: 2, bool: 0, int64: 0 };
function expectedWire(t: FieldType): number {
  return WIRE_TYPE[t] ?? 2;
}

describe("proto/dtmgimp.proto and proto/wf.proto match dtm's (docs/protocol.md#grpc-api and docs/protocol.md#workflow)", () => {
  it("declares exactly the spec's messages", () => {
    const messages = Object.keys(all).filter((k) => !k.startsWith("google.") && !(all[k] as { format?: string }).format?.startsWith("Protocol Buffer 3 Enum") && k !== "dtmgimp.Dtm" && k !== "workflow.Workflow");
    expect(messages.sort()).toEqual(Object.keys(SPEC).sort());
  });

  it.each(Object.keys(SPEC))("%s: field numbers, names and types (descriptor)", (message) => {
    const d = (all[message] as unknown as { type: Descriptor }).type;
    const fields = d.field.map((f) => describeField(d, f)).sort((a, b) => a.n - b.n);
    expect(fields).toEqual(SPEC[message]);
  });

  it("service dtmgimp.Dtm has every RPC with dtm's request and response types, all unary", () => {
    const service = dtm["dtmgimp.Dtm"] as Record<string, MethodDefinition<unknown, unknown>>;
    const seen = Object.fromEntries(Object.entries(service).map(([name, m]) => [name, [(m.requestType as unknown as { type: Descriptor }).type.name, (m.responseType as unknown as { type: Descriptor }).type.name]]));
    expect(seen).toEqual(RPCS);
    for (const [name, m] of Object.entries(service)) {
      expect(m.path).toBe(`/dtmgimp.Dtm/${name}`);
      expect(m.requestStream || m.responseStream).toBe(false);
    }
  });

  it("service workflow.Workflow has Execute(WorkflowData) returns (Empty)", () => {
    const execute = (wf["workflow.Workflow"] as Record<string, MethodDefinition<unknown, unknown>>)["Execute"];
    expect(execute?.path).toBe("/workflow.Workflow/Execute");
    expect((execute?.requestType as unknown as { type: Descriptor }).type.name).toBe("WorkflowData");
    expect((execute?.responseType as unknown as { type: Descriptor }).type.name).toBe("Empty");
  });

  it("encodes DtmRequest (with nested DtmTransOptions and both maps) with the spec's tags on the wire", () => {
    const bytes = serializerOf("DtmRequest")({
      Gid: "g", TransType: "saga", CustomedData: "c", BinPayloads: [Buffer.from([0xff]), Buffer.from([0x00])], QueryPrepared: "q", Steps: "[]",
      ReqExtra: { k: "v" }, RollbackReason: "r",
      TransOptions: { WaitResult: true, TimeoutToFail: 2, RetryInterval: 3, BranchHeaders: { h: "x" }, RequestTimeout: 6, RetryLimit: 7 },
    });
    const fields = readWire(bytes);
    expect(fields.map((f) => [f.n, f.wire])).toEqual(
      expect.arrayContaining(SPEC["dtmgimp.DtmRequest"]!.map((f) => [f.n, expectedWire(f.type)])),
    );
    expect(fields.filter((f) => f.n === 5).map((f) => [...(f.value as Buffer)])).toEqual([[0xff], [0x00]]);
    const mapEntry = readWire(fields.find((f) => f.n === 8)!.value as Buffer);
    expect(mapEntry.map((f) => [f.n, (f.value as Buffer).toString()])).toEqual([[1, "k"], [2, "v"]]);
    const options = readWire(fields.find((f) => f.n === 3)!.value as Buffer);
    expect(options.map((f) => [f.n, f.wire])).toEqual(SPEC["dtmgimp.DtmTransOptions"]!.map((f) => [f.n, expectedWire(f.type)]));
    expect(options.filter((f) => f.wire === 0).map((f) => [f.n, f.value])).toEqual([[1, 1n], [2, 2n], [3, 3n], [6, 6n], [7, 7n]]);
  });

  it.each([
    ["DtmBranchRequest", { Gid: "g", TransType: "tcc", BranchID: "01", Op: "try", Data: { confirm: "c" }, BusiPayload: Buffer.from([1]) }],
    ["DtmGidReply", { Gid: "g" }],
    ["DtmTopicRequest", { Topic: "t", URL: "u", Remark: "r" }],
    ["WorkflowData", { Data: Buffer.from([1, 2]) }],
  ] as const)("encodes %s with the spec's tags on the wire", (message, value) => {
    const spec = SPEC[message === "WorkflowData" ? "workflow.WorkflowData" : `dtmgimp.${message}`]!;
    expect(readWire(serializerOf(message)(value)).map((f) => [f.n, f.wire])).toEqual(spec.map((f) => [f.n, expectedWire(f.type)]));
  });

  it("encodes DtmProgressesReply with nested DtmTransaction and repeated DtmProgress", () => {
    const bytes = serializerOf("DtmProgressesReply")({
      Transaction: { Gid: "g", Status: "prepared", RollbackReason: "r", Result: "x" },
      Progresses: [{ Status: "succeed", BinData: Buffer.from([9]), BranchID: "01", Op: "action" }, { Status: "failed", BinData: Buffer.from([8]), BranchID: "02", Op: "action" }],
    });
    const top = readWire(bytes);
    expect(top.map((f) => f.n)).toEqual([1, 2, 2]);
    const tx = readWire(top[0]!.value as Buffer);
    expect(tx.map((f) => [f.n, (f.value as Buffer).toString()])).toEqual([[1, "g"], [2, "prepared"], [3, "r"], [4, "x"]]);
    const p = readWire(top[1]!.value as Buffer);
    expect(p.map((f) => [f.n, [...(f.value as Buffer)]])).toEqual([[1, [...Buffer.from("succeed")]], [2, [9]], [3, [...Buffer.from("01")]], [4, [...Buffer.from("action")]]]);
  });
});

describe("gRPC branch-call helpers (docs/protocol.md#grpc-branch-calls)", () => {
  it("splits a URL at the first slash", () => {
    expect(parseGrpcUrl("localhost:58081/busi.Busi/TransOut")).toEqual({ target: "localhost:58081", method: "/busi.Busi/TransOut" });
    expect(parseGrpcUrl("127.0.0.1:1/a.b.C/D/E")).toEqual({ target: "127.0.0.1:1", method: "/a.b.C/D/E" });
    expect(parseGrpcUrl("etcd://h/x")).toBeUndefined();
    expect(parseGrpcUrl("no-slash")).toBeUndefined();
    expect(parseGrpcUrl("/only/path")).toBeUndefined();
  });

  it("encodes WorkflowData exactly as the loaded proto does", () => {
    const serialize = serializerOf("WorkflowData");
    for (const size of [1, 127, 128, 300, 70_000]) {
      const data = Buffer.alloc(size, 0xab);
      expect(encodeWorkflowData(data).equals(serialize({ Data: data })), `size ${size}`).toBe(true);
    }
    // Empty input: proto3 (and Go's proto.Marshal) leave the default field out; protobufjs writes
    // an explicit empty field. Both decode to Data = empty.
    expect(encodeWorkflowData(Buffer.alloc(0)).length).toBe(0);
    expect(readWire(serialize({ Data: Buffer.alloc(0) })).map((f) => [f.n, (f.value as Buffer).length])).toEqual([[1, 0]]);
  });

  it("wraps only the workflow resume in WorkflowData; other bodies go out verbatim", () => {
    const base = { gid: "g", protocol: "grpc" as const, url: "h:1/a.B/C", headers: {}, timeoutMs: 1000, body: Buffer.from([1, 2]) };
    expect([...requestMessage({ ...base, transType: "workflow", branchId: "00", op: "wf" })]).toEqual([0x0a, 2, 1, 2]);
    expect([...requestMessage({ ...base, transType: "saga", branchId: "01", op: "action" })]).toEqual([1, 2]);
    expect([...requestMessage({ ...base, transType: "msg", branchId: "00", op: "msg", body: Buffer.alloc(0) })]).toEqual([]);
  });

  it("classifies results as dtm's GrpcError2DtmError", () => {
    expect(classifyGrpcResult(null)).toEqual({ kind: "success" });
    expect(classifyGrpcResult({ code: status.ABORTED, details: "no money" })).toEqual({ kind: "failure", message: "no money" });
    expect(classifyGrpcResult({ code: status.ABORTED, details: "ONGOING" })).toEqual({ kind: "ongoing" });
    expect(classifyGrpcResult({ code: status.FAILED_PRECONDITION, details: "wait" })).toEqual({ kind: "ongoing" });
    for (const code of [status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.UNKNOWN, status.INTERNAL, status.CANCELLED, status.UNIMPLEMENTED]) {
      expect(classifyGrpcResult({ code, details: "x" }).kind).toBe("error");
    }
  });
});

describe("DtmRequest -> the service's JSON-shaped body (docs/protocol.md#grpc-api mapping)", () => {
  const req: DtmRequest = {
    Gid: "g;1", TransType: "saga", CustomedData: "{}", BinPayloads: [Buffer.from([0xff])], QueryPrepared: "", Steps: '[{"action":"a","compensate":"c"}]',
    ReqExtra: { k: "v" }, RollbackReason: "why",
    TransOptions: { WaitResult: true, TimeoutToFail: 10, RetryInterval: 2, BranchHeaders: { h: "x" }, RequestTimeout: 3, RetryLimit: 4 },
  };

  it("copies every field under dtm's JSON names, with protocol grpc and the raw payload bytes", () => {
    expect(transBody(req)).toEqual({
      gid: "g;1", trans_type: "saga", protocol: "grpc", custom_data: "{}", query_prepared: "", req_extra: { k: "v" }, rollback_reason: "why",
      steps: [{ action: "a", compensate: "c" }], bin_payloads: [Buffer.from([0xff])],
      wait_result: true, timeout_to_fail: 10, retry_interval: 2, request_timeout: 3, retry_limit: 4, branch_headers: { h: "x" },
    });
  });

  it("leaves options out when TransOptions is absent, and steps out when Steps is empty", () => {
    const body = transBody({ ...req, TransOptions: null, Steps: "", BinPayloads: [] });
    expect(body).not.toHaveProperty("wait_result");
    expect(body).not.toHaveProperty("steps");
    expect(body).not.toHaveProperty("bin_payloads");
  });

  it("registerBranch gets the Data map plus gid, trans_type, branch_id and the payload bytes as data", () => {
    expect(branchBody({ Gid: "g", TransType: "tcc", BranchID: "01", Op: "ignored", Data: { confirm: "c", cancel: "x", gid: "spoof" }, BusiPayload: Buffer.from([0xff, 0x00]) }))
      .toEqual({ confirm: "c", cancel: "x", gid: "g", trans_type: "tcc", branch_id: "01", data: Buffer.from([0xff, 0x00]) });
  });
});
