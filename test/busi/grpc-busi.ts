/**
 * A programmable fake gRPC participant for end-to-end tests: the gRPC twin of {@link Busi}.
 *
 * It serves unary methods of `busi.Busi` (TransOut, TransOutRevert, TransIn, ... and any names
 * passed in {@link GrpcBusiOptions.methods}) and `workflow.Workflow/Execute`, all with identity
 * (de)serializers, so it records the exact request bytes the coordinator sent, plus the metadata.
 * Each call is answered with an {@link GrpcOutcome} chosen by the rules the test programmed, with
 * the same precedence as {@link Busi}. {@link GrpcBusi.stop} and {@link GrpcBusi.start} take the
 * server down (callers then see UNAVAILABLE) and bring it back on the same port.
 */
import type { CallOptions, ChannelOptions, Client, sendUnaryData, ServerUnaryCall, ServiceClientConstructor, ServiceDefinition, ServiceError } from "@grpc/grpc-js";
import { credentials, loadPackageDefinition, Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import { loadDtmProto } from "../../server/src/api/grpc/proto.ts";
import { CallBook } from "./call-book.ts";
import type { CallMatch } from "./call-book.ts";

/**
 * How the participant answers: SUCCESS is OK; FAILURE is ABORTED; ONGOING is FAILED_PRECONDITION;
 * LEGACY_ONGOING is ABORTED with the message "ONGOING" (dtm before 1.10); ERROR is INTERNAL;
 * HANG holds the call until {@link GrpcBusi.releaseHung}, stop or close, or the caller gives up.
 */
export type GrpcOutcome = "SUCCESS" | "FAILURE" | "ONGOING" | "LEGACY_ONGOING" | "ERROR" | "HANG";

export interface GrpcBusiCall {
  /** 1-based arrival number since the first start (or the last {@link GrpcBusi.reset}). */
  seq: number;
  /** The method name, e.g. `TransOut` or `Execute`. */
  name: string;
  /** The full path, e.g. `/busi.Busi/TransOut`. */
  path: string;
  /** Metadata `dtm-gid` ('' when absent). */
  gid: string;
  /** Metadata `dtm-trans_type`. */
  transType: string;
  /** Metadata `dtm-branch_id`. */
  branchId: string;
  /** Metadata `dtm-op`. */
  op: string;
  /** All metadata; for a repeated key, the first value (binary values as base64). */
  metadata: Record<string, string>;
  /** The raw request message bytes. */
  body: Buffer;
  outcome: GrpcOutcome;
}

export interface GrpcBusiOptions {
  /** Port to listen on; 0 (the default) picks a free one, which restarts keep. */
  port?: number;
  /** Extra `busi.Busi` method names to serve besides {@link DEFAULT_METHODS}. */
  methods?: string[];
  /** The server's credentials; plaintext by default (a TLS participant passes `ServerCredentials.createSsl`). */
  credentials?: ServerCredentials;
  /** The IPv4 loopback address to listen on; default `127.0.0.1` (any 127.x.y.z works on Linux). */
  host?: string;
}

export const BUSI_SERVICE = "busi.Busi";
export const WORKFLOW_PATH = "/workflow.Workflow/Execute";
export const DEFAULT_METHODS = [
  "TransOut", "TransOutRevert", "TransIn", "TransInRevert", "Step3", "Step3Revert", "Step4", "Step4Revert",
  "QueryPrepared", "Confirm1", "Cancel1", "Confirm2", "Cancel2", "Confirm3", "Cancel3", "XaCommit", "Noop",
];

const RESPONSES: Record<Exclude<GrpcOutcome, "HANG" | "SUCCESS">, { code: status; details: string }> = {
  FAILURE: { code: status.ABORTED, details: "busi failure FAILURE" },
  ONGOING: { code: status.FAILED_PRECONDITION, details: "busi ongoing" },
  LEGACY_ONGOING: { code: status.ABORTED, details: "ONGOING" },
  ERROR: { code: status.INTERNAL, details: "busi error" },
};



const identity = (b: Buffer): Buffer => b;

export function describeGrpcCall(c: GrpcBusiCall): string {
  return `#${c.seq} ${c.path} gid=${c.gid} branch_id=${c.branchId} op=${c.op} -> ${c.outcome}`;
}

export class GrpcBusi {
  #server: Server | undefined;
  #port: number;
  readonly #methods: string[];
  readonly #credentials: ServerCredentials;
  readonly #host: string;
  readonly #book = new CallBook<GrpcOutcome, GrpcBusiCall>("SUCCESS", "grpcBusi", describeGrpcCall);
  #hung = new Set<() => void>();
  #closed = false;

  private constructor(opts: GrpcBusiOptions) {
    this.#port = opts.port ?? 0;
    this.#methods = [...new Set([...DEFAULT_METHODS, ...(opts.methods ?? [])])];
    this.#credentials = opts.credentials ?? ServerCredentials.createInsecure();
    this.#host = opts.host ?? "127.0.0.1";
  }

  static async start(opts: GrpcBusiOptions = {}): Promise<GrpcBusi> {
    const busi = new GrpcBusi(opts);
    await busi.start();
    return busi;
  }

  /** `127.0.0.1:PORT` (the host it listens on) */
  get target(): string {
    return `${this.#host}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** The branch URL of a `busi.Busi` method: `127.0.0.1:PORT/busi.Busi/<name>`. */
  url(name: string): string {
    return `${this.target}/${BUSI_SERVICE}/${name}`;
  }

  /** The workflow callback URL: `127.0.0.1:PORT/workflow.Workflow/Execute`. */
  get workflowUrl(): string {
    return `${this.target}${WORKFLOW_PATH}`;
  }

  /** (Re)starts serving on the same port (the first start picks it when 0). */
  async start(): Promise<void> {
    if (this.#closed) throw new Error("grpc busi is closed");
    if (this.#server) return;
    const server = new Server();
    const definition: Record<string, unknown> = {};
    const implementation: Record<string, (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => void> = {};
    const add = (path: string, name: string): void => {
      definition[name] = {
        path, requestStream: false, responseStream: false, originalName: name,
        requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
      };
      implementation[name] = (call, cb) => this.#onCall(name, path, call, cb);
    };
    for (const name of this.#methods) add(`/${BUSI_SERVICE}/${name}`, name);
    server.addService(definition as ServiceDefinition, implementation);
    const wfDefinition: Record<string, unknown> = {};
    const wfImplementation: typeof implementation = {};
    wfDefinition["Execute"] = {
      path: WORKFLOW_PATH, requestStream: false, responseStream: false, originalName: "Execute",
      requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
    };
    wfImplementation["Execute"] = (call, cb) => this.#onCall("Execute", WORKFLOW_PATH, call, cb);
    server.addService(wfDefinition as ServiceDefinition, wfImplementation);
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${this.#host}:${this.#port}`, this.#credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.#server = server;
  }

  /** Takes the server down at once (hung calls are cancelled): callers see UNAVAILABLE until {@link start}. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.releaseHung();
    server.forceShutdown();
    // Let grpc-js finish closing the listener before a restart binds the port again.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  program(match: CallMatch, ...outcomes: GrpcOutcome[]): void {
    this.#book.program(match, outcomes);
  }

  programAlways(match: CallMatch, outcome: GrpcOutcome): void {
    this.#book.programAlways(match, outcome);
  }

  setDefault(outcome: GrpcOutcome): void {
    this.#book.setDefault(outcome);
  }

  reset(): void {
    this.#book.reset();
  }

  calls(match: CallMatch = {}): GrpcBusiCall[] {
    return this.#book.calls(match);
  }

  waitForCalls(match: CallMatch, count: number, timeoutMs = 10_000): Promise<GrpcBusiCall[]> {
    return this.#book.waitForCalls(match, count, timeoutMs);
  }

  /** Answers every call held by HANG with UNAVAILABLE ("released"). */
  releaseHung(): void {
    const hung = [...this.#hung];
    this.#hung.clear();
    for (const release of hung) release();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.stop();
    this.#closed = true;
    this.#book.rejectWaits("grpc busi closed");
  }

  #onCall(name: string, path: string, call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>): void {
    const metadata: Record<string, string> = {};
    for (const [key, values] of Object.entries(call.metadata.getMap())) {
      metadata[key] = typeof values === "string" ? values : Buffer.from(values).toString("base64");
    }
    const partial = {
      name, path,
      gid: metadata["dtm-gid"] ?? "",
      transType: metadata["dtm-trans_type"] ?? "",
      branchId: metadata["dtm-branch_id"] ?? "",
      op: metadata["dtm-op"] ?? "",
      metadata,
      body: Buffer.from(call.request),
    };
    const recorded = this.#book.record(partial);
    const outcome = recorded.outcome;
    if (outcome === "SUCCESS") return cb(null, Buffer.alloc(0));
    if (outcome !== "HANG") return cb({ ...RESPONSES[outcome] });
    const release = (): void => cb({ code: status.UNAVAILABLE, details: "busi hung call released" });
    this.#hung.add(release);
    call.on("cancelled", () => this.#hung.delete(release));
  }
}

/** Starts a fake gRPC participant on 127.0.0.1 and a free port (unless told otherwise). */
export function startGrpcBusi(opts: GrpcBusiOptions = {}): Promise<GrpcBusi> {
  return GrpcBusi.start(opts);
}

// ---------------------------------------------------------------------------------------------
// A dtm gRPC client for tests: dtmgimp.Dtm through @grpc/grpc-js and the repository's proto.

/** What a unary call ended with: the reply, or the status of the error. */
export type GrpcResult<T> =
  | { ok: true; reply: T }
  | { ok: false; code: status; details: string; dtxCode: string | undefined };

type UnaryMethod = (request: unknown, metadata: Metadata, options: CallOptions, callback: (error: ServiceError | null, reply?: unknown) => void) => void;

/** A real dtm gRPC client (the same proto and loader options as the coordinator) for tests. */
export class DtmGrpcClient {
  readonly #client: Client;

  /** `options`: grpc-js channel options, e.g. `{ "grpc.use_local_subchannel_pool": 1 }` for a connection of its own. */
  constructor(readonly target: string, options: ChannelOptions = {}) {
    const pkg = loadPackageDefinition(loadDtmProto()) as unknown as { dtmgimp: { Dtm: ServiceClientConstructor } };
    this.#client = new pkg.dtmgimp.Dtm(target, credentials.createInsecure(), options);
  }

  /** Calls `dtmgimp.Dtm/<method>`, resolving with the reply or the error status (never rejects). */
  call<T = Record<string, unknown>>(method: string, request: unknown, metadata = new Metadata()): Promise<GrpcResult<T>> {
    const fn = (this.#client as unknown as Record<string, UnaryMethod>)[method];
    if (typeof fn !== "function") return Promise.reject(new Error(`dtmgimp.Dtm has no method ${method}`));
    return new Promise((resolve) => {
      fn.call(this.#client, request, metadata, { deadline: Date.now() + 20_000 }, (error, reply) => {
        if (!error) return resolve({ ok: true, reply: reply as T });
        const dtxCode = error.metadata?.get("dtx-code")[0];
        resolve({ ok: false, code: error.code, details: error.details, dtxCode: typeof dtxCode === "string" ? dtxCode : undefined });
      });
    });
  }

  /** Like {@link call}, but rejects unless the call succeeded. */
  async ok<T = Record<string, unknown>>(method: string, request: unknown): Promise<T> {
    const r = await this.call<T>(method, request);
    if (!r.ok) throw new Error(`${method} failed: ${status[r.code]} ${r.details}`);
    return r.reply;
  }

  /** Sends raw bytes as the request message of `path` (for malformed-message tests). */
  raw(path: string, bytes: Buffer): Promise<GrpcResult<Buffer>> {
    return new Promise((resolve) => {
      this.#client.makeUnaryRequest(path, identity, identity, bytes, new Metadata(), { deadline: Date.now() + 20_000 }, (error, reply) => {
        if (!error) return resolve({ ok: true, reply: reply ?? Buffer.alloc(0) });
        const dtxCode = error.metadata?.get("dtx-code")[0];
        resolve({ ok: false, code: error.code, details: error.details, dtxCode: typeof dtxCode === "string" ? dtxCode : undefined });
      });
    });
  }

  close(): void {
    this.#client.close();
  }
}
