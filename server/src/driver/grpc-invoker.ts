import { Channel, connectivityState, credentials, Metadata, status } from "@grpc/grpc-js";
import type { ChannelOptions, InterceptingListener, ServiceError, StatusObject } from "@grpc/grpc-js";
import type { Outcome } from "../core/types.ts";
import type { BranchCall, BranchInvoker } from "./invoker.ts";

/** dtm's default outgoing service config (PROTOCOL §6.2, `GrpcServiceConfig`). */
export const DEFAULT_GRPC_SERVICE_CONFIG = '{"loadBalancingConfig":[{"round_robin":{}}]}';
/** Beyond this many distinct targets the least recently used channel is closed. */
const MAX_CHANNELS = 1024;

export interface GrpcInvokerOptions {
  serviceConfig?: string;
  maxChannels?: number;
}

/** A gRPC branch URL `host:port/package.Service/Method`, split at the first `/` (PROTOCOL §6.2). */
export function parseGrpcUrl(url: string): { target: string; method: string } | undefined {
  if (url.includes("://")) return undefined;
  const slash = url.indexOf("/");
  if (slash <= 0 || slash === url.length - 1) return undefined;
  return { target: url.slice(0, slash), method: url.slice(slash) };
}

/** Protobuf encoding of `workflow.WorkflowData{bytes Data = 1}` (proto/wf.proto): tag 0x0a, length, bytes. */
export function encodeWorkflowData(data: Uint8Array): Buffer {
  if (data.byteLength === 0) return Buffer.alloc(0); // proto3 leaves a default field out
  const length: number[] = [];
  let n = data.byteLength;
  while (n > 0x7f) {
    length.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  length.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...length]), data]);
}

/**
 * The request message of a call. The stored `bin_data` is already a serialized protobuf written
 * by the client, so it is sent verbatim; the one exception is the workflow resume (branch `00`,
 * op = workflow name), whose callback `workflow.Workflow/Execute` takes `WorkflowData{Data}`
 * wrapping the workflow's input (PROTOCOL §7.5).
 */
export function requestMessage(call: BranchCall): Buffer {
  if (call.transType === "workflow" && call.branchId === "00") return encodeWorkflowData(call.body);
  return Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
}

/** dtm's `GrpcError2DtmError` (PROTOCOL §6.2). */
export function classifyGrpcResult(error: Pick<ServiceError, "code" | "details"> | null): Outcome {
  if (error === null || error.code === status.OK) return { kind: "success" };
  if (error.code === status.ABORTED) {
    return error.details === "ONGOING" ? { kind: "ongoing" } : { kind: "failure", message: error.details || "FAILURE" };
  }
  if (error.code === status.FAILED_PRECONDITION) return { kind: "ongoing" };
  return { kind: "error", message: `grpc ${status[error.code] ?? error.code}: ${error.details}` };
}

const noop = (): void => {};

/**
 * Calls participants over gRPC as dtm does (PROTOCOL §6.2): one insecure channel per `host:port`,
 * the raw payload as the request, metadata `dtm-gid`, `dtm-trans_type`, `dtm-branch_id`, `dtm-op`,
 * `dtm-dtm` plus the trans's branch_headers, and the call's timeout as the deadline. The answer's
 * bytes are ignored; only its status counts.
 *
 * Each channel has its own subchannels (no global pool), and a channel that is in
 * TRANSIENT_FAILURE after a failed call is closed and dropped: grpc-js would otherwise wait out
 * its reconnect backoff before trying a participant that has come back, failing every retry fast
 * in the meantime. The next call to that target opens a fresh channel, which connects at once.
 */
export class GrpcInvoker implements BranchInvoker {
  private readonly cache = new Map<string, Channel>();
  private readonly channelOptions: ChannelOptions;
  private readonly maxChannels: number;
  private closed = false;

  constructor(options: GrpcInvokerOptions = {}) {
    this.maxChannels = options.maxChannels ?? MAX_CHANNELS;
    this.channelOptions = {
      "grpc.service_config": options.serviceConfig ?? DEFAULT_GRPC_SERVICE_CONFIG,
      "grpc.use_local_subchannel_pool": 1,
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5_000,
      // The coordinator retries on its own schedule; grpc-js's retry layer would only buffer
      // every request message in case of a transparent retry (measurable on the hot path).
      "grpc.enable_retries": 0,
      // channelz (per-call bookkeeping for grpc's debug service) is not served by dtx.
      "grpc.enable_channelz": 0,
      // No client keepalive pings: grpc-go servers refuse pings more often than every 5 minutes
      // by default (GOAWAY too_many_pings), and idle connections are closed by grpc-js anyway.
    };
  }

  invoke(call: BranchCall): Promise<Outcome> {
    const parsed = parseGrpcUrl(call.url);
    if (!parsed) return Promise.resolve({ kind: "error", message: `invalid gRPC url ${JSON.stringify(call.url)}: expected host:port/package.Service/Method` });
    if (this.closed) return Promise.resolve({ kind: "error", message: "the gRPC invoker is closed" });
    let metadata: Metadata;
    try {
      metadata = metadataOf(call);
    } catch (error) {
      return Promise.resolve({ kind: "error", message: `cannot send branch_headers as gRPC metadata: ${(error as Error).message}` });
    }
    const channel = this.channel(parsed.target);
    return new Promise<Outcome>((resolve) => {
      // A unary call straight on the channel (what grpc-js's Client does underneath, minus the
      // interceptor layers and the caller-stack capture: this is the coordinator's hot path).
      const stream = channel.createCall(parsed.method, Date.now() + call.timeoutMs, undefined, null, undefined);
      const listener: InterceptingListener = {
        onReceiveMetadata: noop,
        // The answer's bytes are ignored; keep reading so a misbehaving server cannot stall the status.
        onReceiveMessage: () => stream.startRead(),
        onReceiveStatus: (result: StatusObject) => {
          if (result.code !== status.OK) this.dropIfFailing(parsed.target, channel);
          const outcome = classifyGrpcResult(result);
          resolve(outcome.kind === "error" ? { kind: "error", message: `${call.url}: ${outcome.message}` } : outcome);
        },
      };
      stream.start(metadata, listener);
      stream.sendMessageWithContext({}, requestMessage(call));
      stream.halfClose();
      stream.startRead();
    }).catch((error: unknown) => ({ kind: "error", message: `${call.url}: ${(error as Error).message}` }));
  }

  /** Number of cached channels (for tests). */
  get channels(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const channel of this.cache.values()) channel.close();
    this.cache.clear();
  }

  private channel(target: string): Channel {
    const cached = this.cache.get(target);
    if (cached) {
      // Map order doubles as the LRU order.
      this.cache.delete(target);
      this.cache.set(target, cached);
      return cached;
    }
    const channel = new Channel(target, credentials.createInsecure(), this.channelOptions);
    this.cache.set(target, channel);
    if (this.cache.size > this.maxChannels) {
      const [oldestTarget, oldest] = this.cache.entries().next().value as [string, Channel];
      this.cache.delete(oldestTarget);
      oldest.close();
    }
    return channel;
  }

  private dropIfFailing(target: string, channel: Channel): void {
    if (channel.getConnectivityState(false) !== connectivityState.TRANSIENT_FAILURE) return;
    if (this.cache.get(target) === channel) this.cache.delete(target);
    channel.close();
  }
}

function metadataOf(call: BranchCall): Metadata {
  const m = new Metadata();
  m.set("dtm-gid", call.gid);
  m.set("dtm-trans_type", call.transType);
  m.set("dtm-branch_id", call.branchId);
  m.set("dtm-op", call.op);
  m.set("dtm-dtm", "");
  for (const [name, value] of Object.entries(call.headers)) {
    const key = name.toLowerCase();
    if (key.endsWith("-bin")) m.set(key, Buffer.from(value, "latin1"));
    else m.set(key, value);
  }
  return m;
}
