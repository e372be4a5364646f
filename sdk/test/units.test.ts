import { describe, expect, it } from "vitest";
import { BranchIdGen, DTX_ERROR_CODES, DtxClient, DtxError, DtxFailure, DtxOngoing, dtxErrorCode, isFailure, isOngoing, newGid, xaId } from "../src/index.ts";
import { payloadBytes, payloadText } from "../src/payload.ts";
import { dtmRequest } from "../src/transport/grpc.ts";
import { normalizeServerUrl, transBody } from "../src/transport/http.ts";

describe("errors", () => {
  it("carry a stable code; FAILURE and ONGOING have their own classes", () => {
    const f = new DtxFailure("no money");
    expect(f).toBeInstanceOf(DtxError);
    expect([f.code, f.name, f.message, f.retryable]).toEqual(["FAILURE", "DtxFailure", "no money", false]);
    const o = new DtxOngoing();
    expect([o.code, o.retryable]).toEqual(["ONGOING", true]);
    expect(new DtxError("TIMEOUT", "t").retryable).toBe(true);
    expect(new DtxError("INVALID_ARGUMENT", "x").retryable).toBe(false);
    expect(dtxErrorCode(new DtxError("NOT_FOUND", "x"))).toBe("NOT_FOUND");
    expect(dtxErrorCode(new Error("x"))).toBeUndefined();
    expect(DTX_ERROR_CODES).toContain("DUPLICATED");
  });

  it("isFailure / isOngoing also recognise other modules' errors by code", () => {
    expect(isFailure(Object.assign(new Error("b"), { code: "FAILURE" }))).toBe(true);
    expect(isFailure({ dtmResult: "FAILURE" })).toBe(true);
    expect(isOngoing(new DtxOngoing())).toBe(true);
    expect(isFailure(new Error("FAILURE"))).toBe(false);
  });
});

describe("gids and branch ids", () => {
  it("newGid is 22 characters of shortuuid's base57", () => {
    const gids = new Set(Array.from({ length: 1000 }, () => newGid()));
    expect(gids.size).toBe(1000);
    for (const g of gids) expect(g).toMatch(/^[23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz]{22}$/);
  });

  it("BranchIdGen counts 01..99 under its parent and refuses more", () => {
    const top = new BranchIdGen();
    expect([top.next(), top.next(), top.current]).toEqual(["01", "02", "02"]);
    expect(new BranchIdGen("02").next()).toBe("0201");
    const full = new BranchIdGen();
    for (let i = 0; i < 99; i++) full.next();
    expect(() => full.next()).toThrow(DtxError);
    expect(() => new BranchIdGen("x".repeat(20)).next()).toThrow(/too long/);
  });

  it("xaId is gid-branch_id, validated against SQL injection and length limits", () => {
    expect(xaId("g1", "01", "mysql")).toBe("g1-01");
    expect(() => xaId("g'; drop", "01", "mysql")).toThrow(DtxError);
    expect(() => xaId("g".repeat(62), "01", "mysql")).toThrow(/64/);
    expect(xaId("g".repeat(62), "01", "postgres")).toHaveLength(65);
  });
});

describe("payloads", () => {
  it("strings go as is, bytes raw, everything else as JSON (undefined as null)", () => {
    expect(payloadText("a b")).toBe("a b");
    expect(payloadText({ a: 1 })).toBe('{"a":1}');
    expect(payloadText(undefined)).toBe("null");
    expect(payloadText(42)).toBe("42");
    expect([...payloadBytes(Uint8Array.from([1, 2]))]).toEqual([1, 2]);
    expect(Buffer.from(payloadBytes("é")).toString("hex")).toBe("c3a9");
  });
});

describe("wire bodies", () => {
  it("HTTP: dtm's TransBase JSON in Go's key order, empty options left out, concurrent always present", () => {
    const body = transBody({ gid: "g", transType: "tcc", options: { timeoutToFail: 5, requestTimeout: 0 }, rollbackReason: "why" });
    expect(JSON.stringify(body)).toBe('{"gid":"g","trans_type":"tcc","protocol":"","rollback_reason":"why","timeout_to_fail":5,"concurrent":false}');
    expect(JSON.stringify(transBody({ gid: "w", transType: "workflow", reqExtra: { status: "succeed" }, protocol: "http" }))).toBe(
      '{"gid":"w","trans_type":"workflow","protocol":"http","concurrent":false,"req_extra":{"status":"succeed"}}',
    );
  });

  it("gRPC: DtmRequest as dtm's GetDtmRequest fills it; fractional seconds are refused", () => {
    const req = dtmRequest({
      gid: "g", transType: "saga", steps: [{ action: "a", compensate: "c" }], payloads: [Uint8Array.from([1])],
      options: { waitResult: true, retryInterval: 3, branchHeaders: { h: "v" } }, customData: "{}",
    });
    expect(req).toEqual({
      Gid: "g", TransType: "saga",
      TransOptions: { WaitResult: true, TimeoutToFail: 0, RetryInterval: 3, BranchHeaders: { h: "v" }, RequestTimeout: 0, RetryLimit: 0 },
      CustomedData: "{}", BinPayloads: [Buffer.from([1])], QueryPrepared: "", Steps: '[{"action":"a","compensate":"c"}]', ReqExtra: {}, RollbackReason: "",
    });
    expect(() => dtmRequest({ gid: "g", transType: "saga", options: { timeoutToFail: 1.5 } })).toThrow(/whole number/);
  });

  it("server URLs: a bare origin gets /api/dtmsvr; a string client picks HTTP or gRPC by its form", () => {
    expect(normalizeServerUrl("http://h:36789")).toBe("http://h:36789/api/dtmsvr");
    expect(normalizeServerUrl("http://h:36789/")).toBe("http://h:36789/api/dtmsvr");
    expect(normalizeServerUrl("https://h/dtm/api/dtmsvr/")).toBe("https://h/dtm/api/dtmsvr");
    expect(() => normalizeServerUrl("h:36789")).toThrow(DtxError);
    expect(new DtxClient("http://h:1").protocol).toBe("http");
    expect(new DtxClient("h:36790").protocol).toBe("grpc");
    expect(() => new DtxClient({})).toThrow(/server/);
    expect(() => new DtxClient({ grpcServer: "http://h:1" })).toThrow(DtxError);
  });
});
