/**
 * A programmable fake participant ("busi") for end-to-end tests, modelled on dtm's test/busi.
 *
 * It serves `GET|POST /api/busi/:name`, records every call and answers with an {@link Outcome}
 * chosen by the rules the test programmed.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { CallBook, matches } from "./call-book.ts";
import type { CallMatch } from "./call-book.ts";

/** How the fake participant answers a call. */
export type Outcome =
  | "SUCCESS"
  | "FAILURE"
  | "ONGOING"
  | "ERROR"
  | "HANG"
  | "LEGACY_FAILURE"
  | "LEGACY_ONGOING";

export type { CallMatch } from "./call-book.ts";
export { matches } from "./call-book.ts";

/** One recorded call to the fake participant. */
export interface BusiCall {
  /** 1-based arrival number since start (or the last {@link Busi.reset}). */
  seq: number;
  /** The `:name` path segment, e.g. `TransOut`. */
  name: string;
  /** HTTP method, `GET` or `POST`. */
  method: string;
  /** Query param `gid` ('' when absent). */
  gid: string;
  /** Query param `trans_type` ('' when absent). */
  transType: string;
  /** Query param `branch_id` ('' when absent). */
  branchId: string;
  /** Query param `op` ('' when absent). */
  op: string;
  /** All query params; for a repeated key, the first value. */
  query: Record<string, string>;
  /** Request headers, names lower-cased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Raw request body text, '' when none. */
  body: string;
  /** The outcome chosen for this call. */
  outcome: Outcome;
  /** When the call arrived (Date.now()). */
  receivedAt: number;
  /** When its answer was sent or its connection closed (Date.now()); undefined while it runs. */
  answeredAt?: number;
}

/** Options for {@link startBusi}. */
export interface BusiOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Host to listen on; default `127.0.0.1`. */
  host?: string;
}

const BODY_LIMIT = 8 * 1024 * 1024;

const RESPONSES: Record<Exclude<Outcome, "HANG">, { status: number; body: string }> = {
  SUCCESS: { status: 200, body: '{"dtm_result":"SUCCESS"}' },
  FAILURE: { status: 409, body: '{"dtm_result":"FAILURE","message":"busi failure"}' },
  ONGOING: { status: 425, body: '{"dtm_result":"ONGOING"}' },
  ERROR: { status: 500, body: '{"message":"busi error"}' },
  LEGACY_FAILURE: { status: 200, body: '{"dtm_result":"FAILURE"}' },
  LEGACY_ONGOING: { status: 200, body: '{"dtm_result":"ONGOING"}' },
};
const RELEASED_HANG = { status: 500, body: '{"message":"busi hung request released"}' };




/** One-line summary of a call, for error messages. */
export function describeCall(c: BusiCall): string {
  return `#${c.seq} ${c.method} ${c.name} gid=${c.gid} branch_id=${c.branchId} op=${c.op} -> ${c.outcome}`;
}

/**
 * A running fake participant. Create it with {@link startBusi}; always {@link Busi.close} it.
 *
 * Outcome precedence: for each call, the rules are scanned from the most recently added to the
 * oldest, and the first rule that matches the call and still has an outcome to give wins
 * ({@link Busi.program} rules give one queued outcome per call until used up;
 * {@link Busi.programAlways} rules never run out). When no rule applies, the default
 * ({@link Busi.setDefault}, initially SUCCESS) is used.
 */
export class Busi {
  readonly #app: FastifyInstance;
  #baseUrl = "";
  readonly #book = new CallBook<Outcome, BusiCall>("SUCCESS", "busi", describeCall);
  /** Hung requests still waiting for {@link Busi.releaseHung}: their release, and the call. */
  #hung = new Map<() => void, BusiCall>();
  #latencies: { match: CallMatch; ms: number }[] = [];
  #closed = false;

  private constructor() {
    this.#app = Fastify({ logger: false, bodyLimit: BODY_LIMIT });
    this.#app.removeAllContentTypeParsers();
    this.#app.addContentTypeParser("*", { parseAs: "string", bodyLimit: BODY_LIMIT }, (_req, body, done) => {
      done(null, body);
    });
    this.#app.route<{ Params: { name: string } }>({
      method: ["GET", "POST"],
      url: "/api/busi/:name",
      handler: (request, reply) => this.#onRequest(request, reply),
    });
  }

  /** Start a fake participant; same as {@link startBusi}. */
  static async start(opts: BusiOptions = {}): Promise<Busi> {
    const busi = new Busi();
    const host = opts.host ?? "127.0.0.1";
    await busi.#app.listen({ port: opts.port ?? 0, host });
    const { port } = busi.#app.server.address() as AddressInfo;
    busi.#baseUrl = `http://${host.includes(":") ? `[${host}]` : host}:${port}/api/busi`;
    return busi;
  }

  /** e.g. `http://127.0.0.1:PORT/api/busi` */
  get baseUrl(): string {
    return this.#baseUrl;
  }

  /** URL of the named endpoint: `${baseUrl}/${name}`. */
  url(name: string): string {
    return `${this.baseUrl}/${name}`;
  }

  /** Queue `outcomes` for matching calls, consumed one per call in order. */
  program(match: CallMatch, ...outcomes: Outcome[]): void {
    this.#book.program(match, outcomes);
  }

  /** Answer every matching call with `outcome` (until overridden by a later rule or reset). */
  programAlways(match: CallMatch, outcome: Outcome): void {
    this.#book.programAlways(match, outcome);
  }

  /**
   * Answer matching calls only `ms` after they arrive (a slow participant); the latest matching
   * rule wins. HANG outcomes still hang.
   */
  setLatency(match: CallMatch, ms: number): void {
    this.#latencies.push({ match: { ...match }, ms });
  }

  /** Outcome for calls no rule applies to (initially SUCCESS). */
  setDefault(outcome: Outcome): void {
    this.#book.setDefault(outcome);
  }

  /** Clear all rules and recorded calls, restore the SUCCESS default and restart `seq` at 1. */
  reset(): void {
    this.#book.reset();
    this.#latencies = [];
  }

  /** Recorded calls matching `match` (all when omitted), in arrival order. */
  calls(match: CallMatch = {}): BusiCall[] {
    return this.#book.calls(match);
  }

  /**
   * Resolve with the matching calls as soon as at least `count` of them have arrived; reject when
   * `timeoutMs` passes first (or the busi is closed), listing the calls seen so far.
   */
  waitForCalls(match: CallMatch, count: number, timeoutMs = 10_000): Promise<BusiCall[]> {
    return this.#book.waitForCalls(match, count, timeoutMs);
  }

  /**
   * Call `listener` synchronously for every call, after it is recorded and before it is answered.
   * A listener that throws does not change the response; the error is rethrown asynchronously so
   * the test runner reports it. Returns an unsubscribe function.
   */
  onCall(listener: (call: BusiCall) => void): () => void {
    return this.#book.onCall(listener);
  }

  /** Answer every request currently held by a HANG outcome with 500. */
  releaseHung(): void {
    const hung = [...this.#hung.keys()];
    this.#hung.clear();
    for (const release of hung) release();
  }

  /** The calls hanging now (a HANG outcome not yet released, whose caller still waits). */
  hungCalls(): BusiCall[] {
    return [...this.#hung.values()];
  }

  /** Release hung requests, reject pending waiters and close the server. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.releaseHung();
    this.#book.rejectWaits("busi closed");
    // Let the released responses flush before the server drops idle connections.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.#app.close();
  }

  async #onRequest(
    request: FastifyRequest<{ Params: { name: string } }>,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const query = firstValues(new URL(request.url, "http://busi").searchParams);
    const call = this.#book.record({
      name: request.params.name,
      method: request.method,
      gid: query["gid"] ?? "",
      transType: query["trans_type"] ?? "",
      branchId: query["branch_id"] ?? "",
      op: query["op"] ?? "",
      query,
      headers: flatHeaders(request.headers),
      body: typeof request.body === "string" ? request.body : "",
      receivedAt: Date.now(),
    });
    // Sent, or cut off by the caller: either way the call is over for the participant.
    reply.raw.once("close", () => {
      call.answeredAt ??= Date.now();
    });
    const latency = this.#latencies.findLast((l) => matches(call, l.match))?.ms ?? 0;
    if (latency > 0 && call.outcome !== "HANG") await sleep(latency);
    if (call.outcome !== "HANG") return send(reply, RESPONSES[call.outcome]);
    if (this.#closed) return send(reply, RELEASED_HANG);
    await new Promise<void>((resolve) => {
      this.#hung.set(resolve, call);
      // The caller gave up (e.g. its timeout fired): nothing is left to answer.
      reply.raw.on("close", () => this.#hung.delete(resolve));
    });
    return send(reply, RELEASED_HANG);
  }
}

function send(reply: FastifyReply, r: { status: number; body: string }): FastifyReply {
  return reply.code(r.status).header("content-type", "application/json").send(r.body);
}

function firstValues(params: URLSearchParams): Record<string, string> {
  const first = new Map<string, string>();
  for (const [k, v] of params) if (!first.has(k)) first.set(k, v);
  return Object.fromEntries(first);
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/** Start a fake participant on `127.0.0.1` and a random free port (unless told otherwise). */
export function startBusi(opts: BusiOptions = {}): Promise<Busi> {
  return Busi.start(opts);
}
