import type { TransOptions, TransType } from "../types.ts";

/**
 * A global-transaction request as the builders produce it, independent of the wire: the HTTP
 * transport turns it into dtm's JSON body (docs/protocol.md#request-bodies), the gRPC one into `DtmRequest` (docs/protocol.md#grpc-api).
 */
export interface GlobalRequest {
  /** The global id. */
  readonly gid: string;
  /** The transaction type. */
  readonly transType: TransType;
  /** saga: `{action, compensate}` per step; msg: `{action}`. */
  readonly steps?: readonly Record<string, string>[];
  /** One payload per step (raw bytes; HTTP sends them as UTF-8 text). */
  readonly payloads?: readonly Uint8Array[];
  /** `custom_data` (overrides `options.customData`). */
  readonly customData?: string;
  /** msg: the check-back URL; workflow: the resume callback. */
  readonly queryPrepared?: string;
  /** abort: why (tcc/xa). */
  readonly rollbackReason?: string;
  /** Transaction options. */
  readonly options?: TransOptions;
  /** Top-level `concurrent` option (HTTP only; saga also sets it in custom_data). */
  readonly concurrent?: boolean;
  /** workflow submit: `status`, `rollback_reason`, `result`. */
  readonly reqExtra?: Record<string, string>;
  /** HTTP `protocol` field; dtm's Go SDK sends "" (the coordinator defaults to http), workflow sends "http". */
  readonly protocol?: string;
}

/** A registerBranch request (docs/protocol.md#http-routes / `DtmBranchRequest`). */
export interface BranchRegistration {
  /** The global id. */
  readonly gid: string;
  /** `tcc`, `xa` or `workflow`. */
  readonly transType: TransType;
  /** The branch id. */
  readonly branchId: string;
  /** Stored as the branch's `bin_data` (tcc: the Try payload; workflow: the recorded result). */
  readonly data: Uint8Array;
  /** tcc: `confirm`, `cancel`; xa: `url`; workflow: `op`, `status`. */
  readonly extra: Record<string, string>;
}

/** One recorded workflow step, as prepareWorkflow returns it. */
export interface WorkflowProgress {
  /** The branch id. */
  readonly branchId: string;
  /** `action`, `commit`, `rollback`, ... */
  readonly op: string;
  /** `succeed` or `failed` (`prepared` rows are ignored). */
  readonly status: string;
  /** The recorded result (succeed) or error message (failed). */
  readonly data: Uint8Array;
}

/** The reply of prepareWorkflow. */
export interface WorkflowPrepareReply {
  /** The stored workflow. */
  readonly transaction: {
    /** The global id. */
    readonly gid: string;
    /** `prepared`, `succeed` or `failed`. */
    readonly status: string;
    /** The rollback reason of a failed workflow. */
    readonly rollbackReason: string;
    /** base64 of the result bytes; "" over gRPC (dtm does not fill it there). */
    readonly result: string;
    /** The stored custom_data (HTTP only; "" over gRPC). */
    readonly customData: string;
  };
  /** The recorded steps. */
  readonly progresses: readonly WorkflowProgress[];
}

/** A global transaction as `query` reports it (dtm's JSON keys; extra keys kept). */
export interface TransactionInfo {
  /** The global id. */
  readonly gid: string;
  /** The transaction type. */
  readonly trans_type: string;
  /** `prepared`, `submitted`, `aborting`, `succeed` or `failed`. */
  readonly status: string;
  /** Why it rolled back, when it did. */
  readonly rollback_reason?: string;
  /** Every other key dtm reports (times, options, custom_data, result, ...). */
  readonly [key: string]: unknown;
}

/** A branch operation as `query` reports it (dtm's JSON keys; extra keys kept). */
export interface BranchOpInfo {
  /** The branch id. */
  readonly branch_id: string;
  /** The operation. */
  readonly op: string;
  /** `prepared`, `succeed` or `failed`. */
  readonly status: string;
  /** The URL the coordinator calls for it. */
  readonly url?: string;
  /** base64 of the body sent to it. */
  readonly bin_data?: string;
  /** Every other key dtm reports. */
  readonly [key: string]: unknown;
}

/** The reply of `query`: the transaction (null when unknown) and its branch operations in store order. */
export interface QueryReply {
  /** The transaction; null when no transaction has that gid. */
  readonly transaction: TransactionInfo | null;
  /** Its branch operations, in store order. */
  readonly branches: readonly BranchOpInfo[];
}

/**
 * How the SDK talks to the coordinator. {@link HttpTransport} and {@link GrpcTransport} implement
 * it; a custom one can be passed to {@link DtxClient}.
 */
export interface Transport {
  /** `http` or `grpc`: the protocol participants are told about and the coordinator records. */
  readonly protocol: "http" | "grpc";
  /** The coordinator address participants receive as `dtm` (HTTP: the API prefix URL; gRPC: `host:port`). */
  readonly server: string;
  /** Asks the coordinator for a new gid. */
  newGid(): Promise<string>;
  /** Creates a prepared transaction (msg, tcc, xa). */
  prepare(request: GlobalRequest): Promise<void>;
  /** Submits a transaction (saga, msg, tcc, xa; workflow with `reqExtra`). */
  submit(request: GlobalRequest): Promise<void>;
  /** Aborts a prepared transaction (msg, tcc, xa). */
  abort(request: GlobalRequest): Promise<void>;
  /** Registers a branch of a prepared tcc / xa / workflow. */
  registerBranch(request: BranchRegistration): Promise<void>;
  /** Creates a workflow, or returns the stored one with its recorded progress. */
  prepareWorkflow(request: GlobalRequest): Promise<WorkflowPrepareReply>;
  /** Reads a transaction and its branches. Absent over gRPC (dtm has no gRPC query). */
  query?(gid: string): Promise<QueryReply>;
  /** Releases connections. */
  close(): Promise<void>;
}
