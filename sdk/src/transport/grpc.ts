import type * as ProtoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { DtxError, invalidArgument } from "../errors.ts";
import type { TransOptions } from "../types.ts";
import { GrpcChannels } from "./grpc-runtime.ts";
import { authorizationHeader } from "./http.ts";
import type { BranchRegistration, GlobalRequest, Transport, WorkflowPrepareReply } from "./transport.ts";

/** Options of {@link GrpcTransport}. */
export interface GrpcTransportOptions {
  /** Deadline of each call to the coordinator, in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Channels to share (a {@link DtxClient} passes its own); a private set otherwise. */
  readonly channels?: GrpcChannels;
  /** A bearer token, sent as `authorization: Bearer <token>` metadata on every call (for a coordinator with auth on). */
  readonly token?: string;
}

interface Codec {
  serialize(message: unknown): Buffer;
  deserialize(bytes: Buffer): unknown;
}

type Codecs = Record<string, Codec>;

let codecs: Promise<Codecs> | undefined;

/**
 * Request serializers / response deserializers of `dtmgimp.Dtm`, from `sdk/proto/dtmgimp.proto`
 * through `@grpc/proto-loader` (loaded on first use), with dtm's field names kept as written.
 */
function loadCodecs(): Promise<Codecs> {
  codecs ??= (async () => {
    let loader: typeof ProtoLoader;
    try {
      loader = await import("@grpc/proto-loader");
    } catch (err) {
      throw new DtxError("UNSUPPORTED", "the gRPC transport needs the optional peer dependency @grpc/proto-loader (npm install @grpc/proto-loader)", { cause: err });
    }
    // src/transport/grpc.ts and dist/transport/grpc.js both sit two levels below the package root.
    const file = fileURLToPath(new URL("../../proto/dtmgimp.proto", import.meta.url));
    const definition = loader.loadSync(file, { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true, objects: true });
    const service = definition["dtmgimp.Dtm"] as Record<string, { requestSerialize(m: unknown): Buffer; responseDeserialize(b: Buffer): unknown }>;
    const out: Codecs = {};
    for (const [name, method] of Object.entries(service)) {
      out[name] = { serialize: (m) => method.requestSerialize(m), deserialize: (b) => method.responseDeserialize(b) };
    }
    return out;
  })().catch((err: unknown) => {
    codecs = undefined;
    throw err;
  });
  return codecs;
}

function wholeSeconds(name: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < 0) throw invalidArgument(`${name} must be a whole number of seconds over gRPC (int64 in dtmgimp.proto); got ${value}`);
  return value;
}

/** `DtmTransOptions` of a request (docs/protocol.md#grpc-api); seconds must be whole numbers. */
export function grpcTransOptions(o: TransOptions): Record<string, unknown> {
  return {
    WaitResult: o.waitResult ?? false,
    TimeoutToFail: wholeSeconds("timeoutToFail", o.timeoutToFail),
    RetryInterval: wholeSeconds("retryInterval", o.retryInterval),
    BranchHeaders: o.branchHeaders ?? {},
    RequestTimeout: wholeSeconds("requestTimeout", o.requestTimeout),
    RetryLimit: wholeSeconds("retryLimit", o.retryLimit),
  };
}

/** The `DtmRequest` dtm's Go SDK builds for a trans (`GetDtmRequest`). */
export function dtmRequest(req: GlobalRequest): Record<string, unknown> {
  const o = req.options ?? {};
  return {
    Gid: req.gid,
    TransType: req.transType,
    TransOptions: grpcTransOptions(o),
    CustomedData: req.customData ?? o.customData ?? "",
    BinPayloads: (req.payloads ?? []).map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)),
    QueryPrepared: req.queryPrepared ?? "",
    Steps: req.steps && req.steps.length > 0 ? JSON.stringify(req.steps) : "",
    ReqExtra: req.reqExtra ?? {},
    RollbackReason: req.rollbackReason ?? "",
  };
}

/**
 * Talks to the coordinator's gRPC API, service `dtmgimp.Dtm` (docs/protocol.md#grpc-api). Needs the optional
 * peer dependencies `@grpc/grpc-js` and `@grpc/proto-loader`, loaded on first use.
 *
 * Over gRPC the coordinator records the transaction with protocol `grpc`; it still calls branch
 * URLs that start with `http://` over HTTP. dtm has no gRPC `query`, and its PrepareWorkflow reply
 * carries no result (so a finished workflow re-executed over gRPC returns an empty result).
 */
export class GrpcTransport implements Transport {
  /** Always `grpc`. */
  readonly protocol = "grpc" as const;
  readonly #timeoutMs: number;
  readonly #channels: GrpcChannels;
  readonly #ownsChannels: boolean;
  readonly #metadata: Record<string, string>;

  /**
   * @param server the coordinator's gRPC address `host:port`, e.g. `127.0.0.1:36790`
   * @param options deadline, shared channels and the bearer token
   */
  constructor(readonly server: string, options: GrpcTransportOptions = {}) {
    if (server.includes("/") || !/:\d+$/.test(server)) throw invalidArgument(`grpcServer must be host:port, e.g. 127.0.0.1:36790; got ${JSON.stringify(server)}`);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#channels = options.channels ?? new GrpcChannels();
    this.#ownsChannels = options.channels === undefined;
    this.#metadata = authorizationHeader(options.token);
  }

  /** `NewGid`. */
  async newGid(): Promise<string> {
    const reply = (await this.#call("NewGid", {})) as { Gid?: string };
    if (!reply.Gid) throw new DtxError("PROTOCOL_ERROR", "NewGid: the answer has no Gid");
    return reply.Gid;
  }

  /** `Prepare`. */
  async prepare(request: GlobalRequest): Promise<void> {
    await this.#call("Prepare", dtmRequest(request));
  }

  /** `Submit`. */
  async submit(request: GlobalRequest): Promise<void> {
    await this.#call("Submit", dtmRequest(request));
  }

  /** `Abort`. */
  async abort(request: GlobalRequest): Promise<void> {
    await this.#call("Abort", dtmRequest(request));
  }

  /** `RegisterBranch`: the extra keys go in `Data`, the data in `BusiPayload`. */
  async registerBranch(request: BranchRegistration): Promise<void> {
    await this.#call("RegisterBranch", {
      Gid: request.gid,
      TransType: request.transType,
      BranchID: request.branchId,
      Op: request.extra["op"] ?? "",
      Data: request.extra,
      BusiPayload: Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength),
    });
  }

  /** `PrepareWorkflow`. */
  async prepareWorkflow(request: GlobalRequest): Promise<WorkflowPrepareReply> {
    const reply = (await this.#call("PrepareWorkflow", dtmRequest(request))) as {
      Transaction?: { Gid?: string; Status?: string; RollbackReason?: string; Result?: string } | null;
      Progresses?: { Status?: string; BinData?: Buffer; BranchID?: string; Op?: string }[];
    };
    const t = reply.Transaction;
    if (!t) throw new DtxError("PROTOCOL_ERROR", "PrepareWorkflow: the answer has no Transaction");
    return {
      transaction: { gid: t.Gid ?? "", status: t.Status ?? "", rollbackReason: t.RollbackReason ?? "", result: t.Result ?? "", customData: "" },
      progresses: (reply.Progresses ?? []).map((p) => ({
        branchId: p.BranchID ?? "",
        op: p.Op ?? "",
        status: p.Status ?? "",
        data: p.BinData ?? Buffer.alloc(0),
      })),
    };
  }

  /** Closes the channels this transport created (shared ones are closed by their owner). */
  async close(): Promise<void> {
    if (this.#ownsChannels) this.#channels.close();
  }

  async #call(method: string, message: unknown): Promise<unknown> {
    const codec = (await loadCodecs())[method];
    if (!codec) throw new DtxError("UNSUPPORTED", `dtmgimp.Dtm has no method ${method}`);
    const reply = await this.#channels.unary({
      target: this.server,
      path: `/dtmgimp.Dtm/${method}`,
      request: codec.serialize(message),
      metadata: this.#metadata,
      timeoutMs: this.#timeoutMs,
    });
    return codec.deserialize(reply);
  }
}
