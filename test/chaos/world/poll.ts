/** Bounded polling for an observable condition (a server answering, a count reaching zero). */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `probe` every `everyMs` until it resolves true (or without throwing, for a void probe),
 * failing with the last error once `timeoutMs` has passed.
 */
export async function pollUntil(what: string, probe: () => Promise<boolean | void>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if ((await probe()) !== false) return;
      last = undefined;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`${what}: not within ${timeoutMs} ms${why}`);
    }
    await sleep(everyMs);
  }
}
