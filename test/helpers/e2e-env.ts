/**
 * The usual set-up of an e2e test file: a coordinator (SQLite in a temp dir, test-control on) and
 * the in-process participant, started once per file, the participant's call log cleared before
 * each test.
 */
import { afterAll, beforeAll, beforeEach } from "vitest";
import type { ConfigInput } from "../../server/src/config.ts";
import type { Busi } from "../busi/index.ts";
import { describeCall, startBusi } from "../busi/index.ts";
import type { TestCoordinator } from "./coordinator.ts";
import { startCoordinator } from "./coordinator.ts";

export interface E2eEnv {
  readonly dtx: TestCoordinator;
  readonly busi: Busi;
}

/** Registers the hooks; read `dtx` and `busi` inside tests (they exist from beforeAll on). */
export function useCoordinatorWithBusi(overrides: Partial<ConfigInput> = {}): E2eEnv {
  let dtx: TestCoordinator | undefined;
  let busi: Busi | undefined;
  beforeAll(async () => {
    busi = await startBusi();
    dtx = await startCoordinator(overrides);
  });
  afterAll(async () => {
    // A call a test left hanging would hold the coordinator's stop (it drains its passes) for the
    // whole request timeout: name it, then close the participant first, which answers it.
    const hung = busi?.hungCalls() ?? [];
    if (hung.length > 0) process.stderr.write(`e2e-env: ${hung.length} participant call(s) still hanging at the end of the file:\n  ${hung.map(describeCall).join("\n  ")}\n`);
    await busi?.close();
    await dtx?.stop();
  });
  beforeEach(() => busi?.reset());
  const started = <T>(what: string, value: T | undefined): T => {
    if (value === undefined) throw new Error(`${what} is used before beforeAll started it`);
    return value;
  };
  return {
    get dtx() {
      return started("the coordinator", dtx);
    },
    get busi() {
      return started("the participant", busi);
    },
  };
}
