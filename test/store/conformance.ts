/**
 * The store contract (server/src/store/store.ts, docs/protocol.md#storage) as one suite that every store
 * runs against its real database: test/store/<driver>-store.test.ts each call
 * {@link describeStoreConformance} with a fixture that owns a private database area (a temp dir,
 * a Postgres schema, a MySQL database), so parallel test files never see each other's rows.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe } from "vitest";
import type { Store } from "../../server/src/store/store.ts";
import { appendSuite } from "./suites/append.ts";
import { cronSuite } from "./suites/cron.ts";
import { fencingSuite } from "./suites/fencing.ts";
import { lifecycleSuite } from "./suites/lifecycle.ts";
import { retentionSuite } from "./suites/retention.ts";
import { transSuite } from "./suites/trans.ts";

export interface StoreFixture {
  readonly name: string;
  /** Once per file: creates the private area (and must fail loudly if the server is unreachable). */
  setup(): Promise<void>;
  /** Empties the area before each test. */
  reset(): Promise<void>;
  /** A new, migrated store on the area; several may be open at once (two coordinators). */
  open(): Promise<Store>;
  /** Once per file: drops the area. */
  teardown(): Promise<void>;
}

/** What a suite sees: the test's store, and a way to open more on the same database. */
export interface ConformanceContext {
  readonly store: Store;
  open(): Promise<Store>;
}

export function describeStoreConformance(fixture: StoreFixture): void {
  let current: Store | undefined;
  const opened: Store[] = [];
  const open = async (): Promise<Store> => {
    const s = await fixture.open();
    opened.push(s);
    return s;
  };

  // A database that cannot be reached fails every test with the fixture's message (vitest would
  // report the tests of a failed beforeAll as skipped).
  let setupError: unknown;
  beforeAll(async () => {
    try {
      await fixture.setup();
    } catch (error) {
      setupError = error;
    }
  });
  afterAll(() => (setupError === undefined ? fixture.teardown() : undefined));
  beforeEach(async () => {
    if (setupError !== undefined) throw setupError;
    await fixture.reset();
    current = await open();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) {
      try {
        await s.close();
      } catch {
        // already closed by the test
      }
    }
  });

  const ctx: ConformanceContext = {
    get store(): Store {
      if (!current) throw new Error("the store is used before beforeEach opened it");
      return current;
    },
    open,
  };
  describe(`${fixture.name} store`, () => {
    transSuite(ctx);
    appendSuite(ctx);
    cronSuite(ctx);
    fencingSuite(ctx);
    lifecycleSuite(ctx);
    retentionSuite(ctx);
  });
}

/** A database area on a server (a Postgres schema, a MySQL database) that one test file owns. */
export interface SqlArea {
  open(): Promise<void>;
  truncate(): Promise<void>;
  close(): Promise<void>;
}

/** A new store from `make`, migrated; a failed migration closes it again. */
export async function openMigrated<S extends Store>(make: () => S): Promise<S> {
  const store = make();
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

/** The conformance suite on a SQL area: migrated once in setup, emptied before each test. */
export function describeSqlStoreConformance(name: string, area: SqlArea, open: () => Promise<Store>): void {
  describeStoreConformance({
    name,
    async setup() {
      await area.open();
      await (await open()).close();
    },
    reset: () => area.truncate(),
    open,
    teardown: () => area.close(),
  });
}
