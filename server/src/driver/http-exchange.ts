import type { Dispatcher } from "undici";

/** The most of a participant's answer we keep; the rest is read and dropped (a hostile RM cannot bloat us). */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** One HTTP request to a participant. */
export interface HttpExchangeRequest {
  /** `http://host:port`, no credentials. */
  origin: string;
  /** Path and query. */
  path: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body: Buffer | string | undefined;
  /** The whole exchange, waiting for a connection included, ends within this. */
  timeoutMs: number;
  /** Aborting it cuts the exchange off at once (the pass lost its claim, docs/fencing.md). */
  signal?: AbortSignal | undefined;
}

/** A participant's answer: its status and the first {@link MAX_ANSWER_BYTES} of its body as text. */
export interface HttpAnswer {
  statusCode: number;
  text: string;
}

/**
 * Sends `request` through undici's dispatch API and collects the answer. This is what
 * `undici.request` does, without what a branch call does not need and pays for on every call
 * (bench/README.md, "Less per saga"): a Readable body stream, an AbortController of our
 * own plus the listeners undici hangs on its signal, an async-hooks resource.
 *
 * Rejects with the error when the call fails, times out or is cut off; then at once, even while
 * the request still waits in undici's queue for a connection (it is dropped, unsent, when it
 * reaches the head). `onDone` runs once undici has let go of the request, which can be after the
 * promise settled: the caller's bound on queued calls holds until then.
 */
export function exchange(dispatcher: Dispatcher, request: HttpExchangeRequest, onDone: () => void): Promise<HttpAnswer> {
  if (request.signal?.aborted) {
    onDone();
    return Promise.reject(reasonOf(request.signal));
  }
  return new Promise<HttpAnswer>((resolve, reject) => {
    const handler = new ExchangeHandler(request.timeoutMs, request.signal, resolve, reject, onDone);
    try {
      dispatcher.dispatch({
        origin: request.origin, path: request.path, method: request.method, headers: request.headers, body: request.body ?? null,
        headersTimeout: request.timeoutMs, bodyTimeout: request.timeoutMs,
      }, handler);
    } catch (error) {
      // Refused before it was queued (a closed agent, bad options): undici holds nothing.
      handler.onResponseError(null, error instanceof Error ? error : new Error(String(error)));
    }
  });
}

class ExchangeHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private statusCode = 0;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** Why the exchange was cut off (timeout or the pass's signal); the request must not go out. */
  private cutOff: Error | null = null;
  private settled = false;
  private released = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onAbort: (() => void) | null = null;

  constructor(
    timeoutMs: number,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (answer: HttpAnswer) => void,
    private readonly reject: (error: Error) => void,
    private readonly onDone: () => void,
  ) {
    this.timer = setTimeout(() => this.stop(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    if (signal) {
      this.onAbort = () => this.stop(reasonOf(signal));
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cutOff) controller.abort(this.cutOff);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    // 1xx answers come before the real one.
    if (statusCode >= 200) this.statusCode = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.size >= MAX_ANSWER_BYTES) return;
    const kept = chunk.length <= MAX_ANSWER_BYTES - this.size ? chunk : chunk.subarray(0, MAX_ANSWER_BYTES - this.size);
    this.chunks.push(kept);
    this.size += kept.length;
  }

  onResponseEnd(): void {
    const text = this.chunks.length === 1 ? (this.chunks[0] as Buffer).toString("utf8") : Buffer.concat(this.chunks, this.size).toString("utf8");
    this.settle(null, { statusCode: this.statusCode, text });
    this.release();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.settle(this.cutOff ?? error, null);
    this.release();
  }

  /** Cuts the exchange off: the caller hears `reason` now; undici drops or aborts the request. */
  private stop(reason: Error): void {
    if (this.settled) return;
    this.cutOff = reason;
    this.settle(reason, null);
    this.controller?.abort(reason);
  }

  private settle(error: Error | null, answer: HttpAnswer | null): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    if (this.onAbort) this.signal?.removeEventListener("abort", this.onAbort);
    if (answer) this.resolve(answer);
    else this.reject(error ?? new Error("the exchange ended without an answer"));
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.onDone();
  }
}

function reasonOf(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason ?? "aborted"));
}
