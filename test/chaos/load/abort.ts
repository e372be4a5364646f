import { DtxError } from "../../../sdk/src/index.ts";

/** The error a request or pause ends with when the run stops. */
export function stopped(signal: AbortSignal | undefined): DtxError {
  return new DtxError("UNAVAILABLE", `the load run stopped${signal?.reason instanceof Error ? `: ${signal.reason.message}` : ""}`);
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(stopped(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(stopped(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `call()`, or a rejection as soon as `signal` aborts (the call itself runs on, bounded by its own timeout). */
export function untilAborted<T>(call: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return call();
  if (signal.aborted) return Promise.reject(stopped(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(stopped(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    call().then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
