import { CoordinatorError } from "../../core/errors.ts";
import type { WorkflowProgress } from "../../service/workflow-service.ts";
import type { DtmBranchRequest, DtmProgressesReply, DtmRequest } from "./proto.ts";

/**
 * Turns a `DtmRequest` into the JSON-shaped body the HTTP API hands to TransService (docs/protocol.md#grpc-api,
 * "Mapping of DtmRequest"): protocol `grpc`; options copied; `Steps` parsed from its JSON text;
 * `BinPayloads` passed as raw bytes (`bin_payloads`) so protobuf payloads are stored verbatim; gid
 * not escaped.
 */
export function transBody(req: DtmRequest): Record<string, unknown> {
  const body: Record<string, unknown> = {
    gid: req.Gid,
    trans_type: req.TransType,
    protocol: "grpc",
    custom_data: req.CustomedData,
    query_prepared: req.QueryPrepared,
    req_extra: req.ReqExtra,
    rollback_reason: req.RollbackReason,
  };
  if (req.Steps !== "") body["steps"] = parseSteps(req.Steps);
  if (req.BinPayloads.length > 0) body["bin_payloads"] = req.BinPayloads;
  const o = req.TransOptions;
  if (o) {
    body["wait_result"] = o.WaitResult;
    body["timeout_to_fail"] = o.TimeoutToFail;
    body["retry_interval"] = o.RetryInterval;
    body["request_timeout"] = o.RequestTimeout;
    body["retry_limit"] = o.RetryLimit;
    body["branch_headers"] = o.BranchHeaders;
  }
  return body;
}

function parseSteps(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CoordinatorError("INVALID_REQUEST", `Steps is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The flat map registerBranch takes (docs/protocol.md#http-routes): the `Data` map (tcc confirm/cancel, xa url,
 * workflow op/status/sync) plus gid, trans_type, branch_id, and `BusiPayload` as `data` — raw
 * bytes, stored exactly (serialized protobufs are often not valid UTF-8). `Op` is ignored, as in dtm.
 */
export function branchBody(req: DtmBranchRequest): Record<string, string | Uint8Array> {
  return { ...req.Data, gid: req.Gid, trans_type: req.TransType, branch_id: req.BranchID, data: req.BusiPayload };
}


/** PrepareWorkflow's reply: dtm fills Transaction.{Gid,Status,RollbackReason} (not Result) and Progresses[].{Status,BranchID,Op,BinData}. */
export function progressesReply(p: WorkflowProgress): DtmProgressesReply {
  return {
    Transaction: { Gid: p.transaction.gid, Status: p.transaction.status, RollbackReason: p.transaction.rollbackReason, Result: "" },
    Progresses: p.progresses.map((b) => ({
      Status: b.status,
      BinData: Buffer.from(b.binData.buffer, b.binData.byteOffset, b.binData.byteLength),
      BranchID: b.branchId,
      Op: b.op,
    })),
  };
}
