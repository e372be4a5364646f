import { isIP } from "node:net";
import { Client, connectivityState, credentials, Metadata, status } from "@grpc/grpc-js";
import type { ChannelCredentials, ClientOptions, ServiceError, StatusObject } from "@grpc/grpc-js";
import type { Outcome } from "../core/types.ts";
import type { BranchSigner } from "./branch-signer.ts";
import { grpcSignatureMetadata } from "./branch-signer.ts";
import type { BranchTls } from "./branch-tls.ts";
import { grpcCredentials } from "./branch-tls.ts";
import type { BranchCall, BranchInvoker } from "./invoker.ts";
import type { BranchClientLimits } from "./origin-limiter.ts";
import { DEFAULT_BRANCH_CLIENT_LIMITS, OriginLimiter } from "./origin-limiter.ts";
import type { ConnectResolver } from "./pinned-lookup.ts";

/** dtm's default outgoing service config (docs/protocol.md#grpc-branch-calls, `GrpcServiceConfig`): round robin over every address. */
export const DEFAULT_GRPC_SERVICE_CONFIG = '{"loadBalancingConfig":[{"round_robin":{}}]}';
/** Beyond this many distinct targets the least recently used channel is closed. */
const MAX_CHANNELS = 1024;
/**
 * Keepalive pings while calls are in flight: every 5 minutes, the most often a grpc-go server
 * accepts by default (more often earns GOAWAY too_many_pings), and 20 s to answer before the
 * connection is dropped and the name resolved again.
 */
const KEEPALIVE_TIME_MS = 300_000;
const KEEPALIVE_TIMEOUT_MS = 20_000;

export interface GrpcInvokerOptions {
  /** The channels' service config; dtm's `GrpcServiceConfig` (round robin) by default. */
  serviceConfig?: string;
  maxChannels?: number;
  /** Calls in flight per target (running or waiting for a stream): `connections + queue` (docs/overload.md). */
  limits?: BranchClientLimits;
  /** TLS material; gRPC calls use it when `tls.grpc` is on (docs/security.md#tls-for-branch-calls). */
  tls?: BranchTls;
  /**
   * With the URL policy on: resolves a target's host to the addresses that passed the policy, and
   * the channel connects to those addresses only (docs/security.md#pinned-addresses).
   */
  resolve?: ConnectResolver;
  /** Signs each call with `x-dtx-signature` metadata (docs/security.md#signed-branch-calls). */
  signer?: BranchSigner;
}

/** A gRPC branch URL `host:port/package.Service/Method`, split at the first `/` (docs/protocol.md#grpc-branch-calls). */
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
 * wrapping the workflow's input (docs/protocol.md#workflow).
 */
export function requestMessage(call: BranchCall): Buffer {
  if (call.transType === "workflow" && call.branchId === "00") return encodeWorkflowData(call.body);
  return Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
}

/** dtm's `GrpcError2DtmError` (docs/protocol.md#grpc-branch-calls). */
export function classifyGrpcResult(error: Pick<ServiceError, "code" | "details"> | null): Outcome {
  if (error === null || error.code === status.OK) return { kind: "success" };
  if (error.code === status.ABORTED) {
    return error.details === "ONGOING" ? { kind: "ongoing" } : { kind: "failure", message: error.details || "FAILURE" };
  }
  if (error.code === status.FAILED_PRECONDITION) return { kind: "ongoing" };
  if (error.code === status.UNAUTHENTICATED) return { kind: "error", message: `grpc UNAUTHENTICATED: ${error.details}`, unauthenticated: true };
  return { kind: "error", message: `grpc ${status[error.code] ?? error.code}: ${error.details}` };
}

/** Headers grpc-js sets itself, and HTTP/2's connection-specific ones (RFC 9113 §8.2.2): a branch header of that name is not sent. */
const RESERVED = new Set([
  "content-type", "te", "user-agent", "grpc-accept-encoding", "accept-encoding", "grpc-timeout", "grpc-encoding",
  "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host",
]);
const noop = (): void => {};

/** One cached client: its channel, and when it last heard a status from the server. */
interface CachedClient {
  readonly client: Client;
  /** The addresses a pinned channel connects to ("" when grpc-js resolves the name itself). */
  readonly pinnedTo: string;
  /** performance.now() of the last status the server sent (not a local deadline or cancel). */
  lastHeard: number;
}

/**
 * Calls participants over gRPC as dtm does (docs/protocol.md#grpc-branch-calls), on grpc-js: one
 * `Client` (so one channel) per target `host:port`, reused, resolved by grpc-js's DNS resolver
 * (re-resolved when a connection drops) and balanced round robin over every address; the raw
 * payload as the request message, byte for byte, metadata `dtm-gid`, `dtm-trans_type`, `dtm-branch_id`, `dtm-op`,
 * `dtm-dtm` plus the trans's branch_headers, and the call's timeout as the deadline. The answer's
 * bytes are ignored; only its status counts.
 *
 * A channel is dropped (the next call opens a fresh one, which connects at once) when it sits in
 * TRANSIENT_FAILURE after a failed call — grpc-js would otherwise wait out its reconnect backoff
 * while the coordinator retries on its own schedule — and when a call's whole deadline passed
 * without the server answering anything (a peer that accepts connections but never speaks).
 */
export class GrpcInvoker implements BranchInvoker {
  private readonly cache = new Map<string, CachedClient>();
  private readonly maxChannels: number;
  private readonly limiter: OriginLimiter;
  private readonly credentials: ChannelCredentials;
  private readonly baseOptions: ClientOptions;
  private readonly resolve: ConnectResolver | undefined;
  private readonly signer: BranchSigner | undefined;
  private closed = false;

  constructor(options: GrpcInvokerOptions = {}) {
    this.maxChannels = options.maxChannels ?? MAX_CHANNELS;
    this.limiter = new OriginLimiter(options.limits ?? DEFAULT_BRANCH_CLIENT_LIMITS);
    this.credentials = options.tls?.grpc ? grpcCredentials(options.tls) : credentials.createInsecure();
    this.resolve = options.resolve;
    this.signer = options.signer;
    this.baseOptions = {
      "grpc.service_config": options.serviceConfig ?? DEFAULT_GRPC_SERVICE_CONFIG,
      "grpc.primary_user_agent": "dtx-grpc/1",
      // Each channel owns its subchannels, so dropping a failing channel drops its connections too.
      "grpc.use_local_subchannel_pool": 1,
      "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
      "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5_000,
      // The coordinator retries on its own schedule; grpc-js's retries would only buffer every
      // request message in case of a transparent retry.
      "grpc.enable_retries": 0,
      // channelz (grpc's debug service) is not served by dtx: no per-call bookkeeping for it.
      "grpc.enable_channelz": 0,
    };
  }

  invoke(call: BranchCall): Promise<Outcome> {
    const parsed = parseGrpcUrl(call.url);
    if (!parsed) return Promise.resolve({ kind: "error", message: `invalid gRPC url ${JSON.stringify(call.url)}: expected host:port/package.Service/Method` });
    if (this.closed) return Promise.resolve({ kind: "error", message: "the gRPC invoker is closed" });
    const message = requestMessage(call);
    let metadata: Metadata;
    try {
      metadata = metadataOf(call, grpcSignatureMetadata(this.signer, parsed.method, message));
    } catch (error) {
      return Promise.resolve({ kind: "error", message: `cannot send branch_headers as gRPC metadata: ${(error as Error).message}` });
    }
    return this.limiter.run(parsed.target, async () => {
      let cached: CachedClient;
      try {
        cached = this.resolve ? await this.pinnedClient(parsed.target, this.resolve) : this.client(parsed.target, "");
      } catch (error) {
        return { kind: "error", message: `${call.url}: call not made: ${(error as Error).message}` };
      }
      return this.send(call, parsed.method, parsed.target, cached, metadata, message);
    });
  }

  private send(call: BranchCall, method: string, target: string, cached: CachedClient, metadata: Metadata, message: Buffer): Promise<Outcome> {
    const { signal } = call;
    return new Promise<Outcome>((resolve) => {
      const started = performance.now();
      let done = false;
      const error = (text: string, unauthenticated?: true): void => resolve({ kind: "error", message: `${call.url}: ${text}`, ...(unauthenticated ? { unauthenticated } : {}) });
      const cutOff = (): void => {
        if (done) return;
        done = true;
        error(`grpc CANCELLED: Cancelled: ${String((signal?.reason as Error | undefined)?.message ?? "the pass ended")}`);
        stream.cancelWithStatus(status.CANCELLED, "Cancelled on client");
      };
      // The unary call Client.makeUnaryRequest makes, straight on the client's channel: without the
      // interceptor layers and the per-call caller-stack Error (about a quarter less CPU per call
      // measured, docs/grpc.md#the-grpc-client). The request is the payload's bytes as they are.
      const stream = cached.client.getChannel().createCall(method, Date.now() + call.timeoutMs, undefined, null, undefined);
      stream.start(metadata, {
        onReceiveMetadata: noop,
        // The answer's bytes are ignored; keep reading so a server that sends more cannot stall the status.
        onReceiveMessage: () => stream.startRead(),
        onReceiveStatus: (result: StatusObject) => {
          signal?.removeEventListener("abort", cutOff);
          if (done) return;
          done = true;
          if (result.code !== status.DEADLINE_EXCEEDED && result.code !== status.CANCELLED) cached.lastHeard = performance.now();
          if (result.code !== status.OK) this.dropIfFailing(target, cached, result.code, started);
          const outcome = classifyGrpcResult(result);
          if (outcome.kind === "error") error(outcome.message, outcome.unauthenticated);
          else resolve(outcome);
        },
      });
      stream.sendMessageWithContext({}, message);
      stream.halfClose();
      stream.startRead();
      if (signal?.aborted) cutOff();
      else signal?.addEventListener("abort", cutOff, { once: true });
    });
  }

  /** Number of cached channels (for tests). */
  get channels(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const clients = [...this.cache.values()];
    this.cache.clear();
    for (const cached of clients) cached.client.close();
  }

  /** The channel for a target whose host must be reached at the addresses the URL policy checked. */
  private async pinnedClient(target: string, resolve: ConnectResolver): Promise<CachedClient> {
    const { host, port } = hostPort(target);
    if (isIP(host) !== 0) return this.client(target, ""); // a literal: nothing to resolve
    const addresses = await resolve(host);
    // One family per channel (grpc-js's ipv4: / ipv6: targets); sorted so the key is stable.
    const family = isIP(addresses[0] ?? "") === 6 ? 6 : 4;
    const picked = addresses.filter((a) => isIP(a) === family).sort();
    const list = picked.map((a) => (family === 6 ? `[${a}]:${port}` : `${a}:${port}`)).join(",");
    return this.client(target, `ipv${family}:${list}`, host);
  }

  /**
   * The cached client for `target`; a new one when there is none or its pinned addresses changed
   * (the old one is closed: calls still running on it finish).
   */
  private client(target: string, pinnedTo: string, serverName?: string): CachedClient {
    const cached = this.cache.get(target);
    // Map order doubles as the LRU order.
    if (cached) this.cache.delete(target);
    if (cached?.pinnedTo === pinnedTo) {
      this.cache.set(target, cached);
      return cached;
    }
    cached?.client.close();
    const options: ClientOptions = pinnedTo === ""
      ? this.baseOptions
      : { ...this.baseOptions, "grpc.default_authority": target, ...(serverName ? { "grpc.ssl_target_name_override": serverName } : {}) };
    const fresh: CachedClient = { client: new Client(pinnedTo || target, this.credentials, options), pinnedTo, lastHeard: Number.NEGATIVE_INFINITY };
    this.cache.set(target, fresh);
    if (this.cache.size > this.maxChannels) {
      const [oldestTarget, oldest] = this.cache.entries().next().value as [string, CachedClient];
      this.cache.delete(oldestTarget);
      oldest.client.close();
    }
    return fresh;
  }

  /**
   * Drops a channel that cannot serve the next call soon: in TRANSIENT_FAILURE (grpc-js would wait
   * out its reconnect backoff), or silent through a whole deadline.
   */
  private dropIfFailing(target: string, cached: CachedClient, code: status, started: number): void {
    const state = cached.client.getChannel().getConnectivityState(false);
    const silent = code === status.DEADLINE_EXCEEDED && cached.lastHeard < started;
    if (state !== connectivityState.TRANSIENT_FAILURE && !silent) return;
    if (this.cache.get(target) === cached) this.cache.delete(target);
    cached.client.close();
  }
}

/** `host:port` → host (brackets removed) and port; gRPC's default port is 443, as grpc-js assumes. */
function hostPort(target: string): { host: string; port: number } {
  const url = new URL(`http://${target}`);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port !== "" ? Number(url.port) : /:80$/.test(target) ? 80 : 443;
  return { host, port };
}

/**
 * The call's metadata with grpc-js's rules: keys lower-cased and limited to `[0-9a-z_.-]` (a `:`
 * key, a header grpc-js sets itself or an HTTP/2 connection-specific one is not sent), `-bin`
 * values are the header's latin1 bytes, other values printable ASCII; a later key replaces an
 * earlier one; the signature (when signing is on) last. Throws on an illegal key or value.
 */
function metadataOf(call: BranchCall, signature: [string, string][]): Metadata {
  const m = new Metadata();
  m.set("dtm-gid", call.gid);
  m.set("dtm-trans_type", call.transType);
  m.set("dtm-branch_id", call.branchId);
  m.set("dtm-op", call.op);
  m.set("dtm-dtm", "");
  for (const [name, value] of Object.entries(call.headers)) {
    const key = name.toLowerCase();
    if (key.startsWith(":") || RESERVED.has(key)) {
      if (!/^:?[0-9a-z_.-]+$/.test(key)) throw new Error(`Metadata key "${key}" contains illegal characters`);
      continue;
    }
    m.set(key, key.endsWith("-bin") ? Buffer.from(value, "latin1") : value);
  }
  for (const [key, value] of signature) m.set(key, value);
  return m;
}
