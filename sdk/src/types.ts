/**
 * Wire values and shared types (docs/protocol.md#data-model, docs/protocol.md#options and docs/protocol.md#what-clients-send).
 */

/** dtm's transaction types. */
export type TransType = "saga" | "msg" | "tcc" | "xa" | "workflow";

/** Global transaction statuses as the coordinator reports them. */
export type TransStatus = "prepared" | "submitted" | "aborting" | "succeed" | "failed";

/** Branch operations (`op` query parameter / `dtm-op` metadata). */
export const Op = {
  /** saga / msg forward step */
  action: "action",
  /** saga compensation */
  compensate: "compensate",
  /** TCC Try, called by the application (never stored) */
  try: "try",
  /** TCC Confirm */
  confirm: "confirm",
  /** TCC Cancel */
  cancel: "cancel",
  /** XA / workflow phase-2 commit */
  commit: "commit",
  /** XA / workflow phase-2 rollback */
  rollback: "rollback",
  /** msg check-back and DoAndSubmit barrier */
  msg: "msg",
} as const;

/** The result words dtm puts in `dtm_result`. */
export type DtmResult = "SUCCESS" | "FAILURE" | "ONGOING";

/**
 * Branch identity, as the coordinator (or the application) sends it to every branch call: query
 * parameters `trans_type`, `gid`, `branch_id`, `op` over HTTP, metadata `dtm-*` over gRPC
 * (docs/protocol.md#branch-calls and docs/protocol.md#what-clients-send). Structurally the same as the barrier module's `BranchInfo`.
 */
export interface BranchInfo {
  /** `saga`, `msg`, `tcc`, `xa` or `workflow`. */
  readonly transType: string;
  /** The global transaction id. */
  readonly gid: string;
  /** `01`, `02`, nested `0101`, msg topic `01-02`, special `00`. */
  readonly branchId: string;
  /** `action`, `compensate`, `try`, `confirm`, `cancel`, `commit`, `rollback`, `msg`, or a workflow name. */
  readonly op: string;
}

/** A {@link BranchInfo} plus what the application adds on its own calls (`dtm`, `phase2_url`). */
export interface BranchRequestInfo extends BranchInfo {
  /** The coordinator the application uses (query `dtm` / metadata `dtm-dtm`); "" when the coordinator itself calls. */
  readonly dtm: string;
  /** XA only: the URL the coordinator calls for phase 2 (query `phase2_url` / metadata `dtm-phase2_url`). */
  readonly phase2Url: string;
}

/**
 * A branch payload: a string is sent as is; a `Uint8Array` as raw bytes (over HTTP decoded as
 * UTF-8); anything else is `JSON.stringify`-ed (`undefined` becomes `null`, as Go's nil does).
 */
export type Payload = string | Uint8Array | object | number | boolean | null | undefined;

/**
 * Options of a global transaction (docs/protocol.md#options). Times are in **seconds**, as in dtm. dtx
 * accepts fractions of a second over HTTP (docs/deviations.md D7); over gRPC they must be whole numbers.
 */
export interface TransOptions {
  /**
   * Process the transaction once synchronously in submit/abort and report its outcome: success
   * once it ended as asked, {@link DtxFailure} once it ended the other way (a rolled-back saga),
   * {@link DtxOngoing} (HTTP 425) while it is still unfinished and may yet succeed.
   */
  waitResult?: boolean;
  /** Seconds after creation at which a TCC/XA/msg (prepared) or saga gives up and rolls back. */
  timeoutToFail?: number;
  /** Per-call timeout, in seconds, of the coordinator's branch calls (and of this SDK's own calls to participants). */
  requestTimeout?: number;
  /** Base retry interval, in seconds. */
  retryInterval?: number;
  /** Extra headers (gRPC metadata) sent on every branch call, by the coordinator and by this SDK. */
  branchHeaders?: Record<string, string>;
  /** Saga: immediate retries of an action that errors before the saga rolls back. */
  retryLimit?: number;
  /** Type-specific JSON text sent as `custom_data` (saga concurrency and msg delay set it themselves). */
  customData?: string;
}
