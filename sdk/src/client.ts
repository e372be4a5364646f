import { DtxError, invalidArgument } from "./errors.ts";
import { GrpcTransport } from "./transport/grpc.ts";
import { GrpcChannels, isHttpUrl } from "./transport/grpc-runtime.ts";
import { HttpTransport } from "./transport/http.ts";
import type { QueryReply, Transport } from "./transport/transport.ts";

/**
 * Where and how a {@link DtxClient} reaches the coordinator. Give exactly one of `server` (HTTP)
 * or `grpcServer` (gRPC), or a custom `transport`:
 *
 * ```ts
 * new DtxClient({ server: "http://127.0.0.1:36789/api/dtmsvr" }); // HTTP
 * new DtxClient({ grpcServer: "127.0.0.1:36790" });               // gRPC (dtmgimp.Dtm)
 * ```
 *
 * With `grpcServer`, a `server` given as well is used only by {@link DtxClient.query} (dtm has
 * no gRPC query).
 *
 * For a coordinator with authentication on, pass a `token` with the `client` role:
 *
 * ```ts
 * new DtxClient({ server: "http://127.0.0.1:36789", token: process.env.DTX_TOKEN });
 * ```
 */
export interface DtxClientOptions {
  /** The coordinator's HTTP API, e.g. `http://127.0.0.1:36789/api/dtmsvr` (a bare origin gets `/api/dtmsvr` appended). */
  readonly server?: string;
  /** The coordinator's gRPC address `host:port`; transactions then go over gRPC. */
  readonly grpcServer?: string;
  /** Timeout of each call to the coordinator, in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Timeout of the SDK's own calls to participants (TCC Try, XA action, check-back, workflow steps) when the transaction sets no `requestTimeout`, in ms (default 30 000). */
  readonly branchTimeoutMs?: number;
  /** A custom transport; overrides `server` / `grpcServer`. */
  readonly transport?: Transport;
  /**
   * A bearer token for a coordinator with authentication on, sent on every call to it (HTTP
   * `Authorization: Bearer <token>`, gRPC `authorization` metadata); it needs the `client` role.
   * Not sent to participants. Ignored with a custom `transport`.
   */
  readonly token?: string;
}

/**
 * A connection to a dtx (or dtm) coordinator, shared by the transaction builders. Cheap to keep
 * for the life of the process; {@link close} it on shutdown when using gRPC.
 */
export class DtxClient {
  /** The transport transactions use. */
  readonly transport: Transport;
  /** Default timeout, in ms, of the SDK's own calls to participants. */
  readonly branchTimeoutMs: number;
  /** gRPC channels for calls to gRPC participants (and the coordinator, over gRPC). */
  readonly grpcChannels: GrpcChannels = new GrpcChannels();
  readonly #queryTransport: Transport | undefined;

  /**
   * @param options where the coordinator is; a string is taken as `{ server }` (or `{ grpcServer }` when it is not an http(s) URL)
   */
  constructor(options: DtxClientOptions | string) {
    const o: DtxClientOptions = typeof options === "string" ? (isHttpUrl(options) ? { server: options } : { grpcServer: options }) : options;
    this.branchTimeoutMs = o.branchTimeoutMs ?? 30_000;
    const timeouts = { ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }), ...(o.token === undefined ? {} : { token: o.token }) };
    if (o.transport) {
      this.transport = o.transport;
      this.#queryTransport = o.transport.query ? o.transport : undefined;
    } else if (o.grpcServer !== undefined) {
      this.transport = new GrpcTransport(o.grpcServer, { ...timeouts, channels: this.grpcChannels });
      this.#queryTransport = o.server !== undefined ? new HttpTransport(o.server, timeouts) : undefined;
    } else if (o.server !== undefined) {
      this.transport = new HttpTransport(o.server, timeouts);
      this.#queryTransport = this.transport;
    } else {
      throw invalidArgument("DtxClient needs server (HTTP), grpcServer (gRPC) or transport");
    }
  }

  /** `http` or `grpc`. */
  get protocol(): "http" | "grpc" {
    return this.transport.protocol;
  }

  /** The coordinator address participants receive as `dtm`. */
  get server(): string {
    return this.transport.server;
  }

  /** Asks the coordinator for a new gid (see also the local {@link newGid}). */
  newGid(): Promise<string> {
    return this.transport.newGid();
  }

  /**
   * Reads a transaction and its branch operations (`GET query`). Over gRPC only when `server`
   * was given too; otherwise UNSUPPORTED.
   */
  query(gid: string): Promise<QueryReply> {
    const q = this.#queryTransport?.query;
    if (!q || !this.#queryTransport) return Promise.reject(new DtxError("UNSUPPORTED", "query needs the coordinator's HTTP API: pass server as well as grpcServer"));
    return q.call(this.#queryTransport, gid);
  }

  /** Closes gRPC channels. The client must not be used afterwards. */
  async close(): Promise<void> {
    await this.transport.close();
    if (this.#queryTransport && this.#queryTransport !== this.transport) await this.#queryTransport.close();
    this.grpcChannels.close();
  }
}

const forServerCache = new Map<string, DtxClient>();

/**
 * The client a participant uses to reach the coordinator named by a branch request's `dtm`
 * parameter (HTTP URL, or gRPC `host:port`), e.g. to register an XA branch or nest a TCC. One
 * client per address is cached for the life of the process.
 */
export function clientForServer(dtm: string): DtxClient {
  if (!dtm) throw invalidArgument("the branch request carries no dtm (coordinator) address; pass a DtxClient explicitly");
  let client = forServerCache.get(dtm);
  if (!client) {
    client = new DtxClient(dtm);
    forServerCache.set(dtm, client);
  }
  return client;
}
