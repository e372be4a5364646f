import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";

/**
 * Registers one busi participant for a test file: started before all tests, reset before each,
 * its hung calls released after each, closed after all. Returns a getter: the busi exists only
 * once beforeAll has run. Register it before hooks that use it (vitest runs after-hooks in
 * reverse order, so the file's own after-hooks run before the release).
 */
export function useBusi(owner: string): () => Busi {
  let busi: Busi | undefined;
  beforeAll(async () => {
    busi = await startBusi();
  });
  afterAll(async () => {
    await busi?.close();
  });
  beforeEach(() => {
    busi?.reset();
  });
  afterEach(() => {
    busi?.releaseHung();
  });
  return () => {
    if (!busi) throw new Error(`the busi of ${owner} is used before beforeAll ran`);
    return busi;
  };
}
