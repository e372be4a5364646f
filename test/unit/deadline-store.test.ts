/**
 * withDeadline (server/src/store/deadline-store.ts): every store call settles within the store
 * timeout, and driver faults come out as StoreUnavailableError while other errors pass unchanged.
 * Time is vitest's fake clock; the store is a stand-in whose calls never answer or fail as told.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { withDeadline } from "../../server/src/store/deadline-store.ts";
import { StoreUnavailableError } from "../../server/src/store/store-errors.ts";
import { isStoreFault } from "../../server/src/store/store-faults.ts";
import type { Store } from "../../server/src/store/store.ts";

const CALLS = ["migrate", "ping", "findTrans", "findBranches", "scanTrans", "saveNewTrans", "appendBranches", "updateTrans", "renewLease", "claimDue",
  "resetCronTime", "resetNextCronTime", "findKV", "scanKV", "createKV", "updateKV", "deleteKV", "deleteFinished", "close"] as const;

/** A store whose every call runs `answer`. */
function standIn(answer: () => Promise<unknown>): Store & { extra(): string } {
  const store = Object.fromEntries(CALLS.map((name) => [name, answer])) as unknown as Store;
  return Object.assign(store, { extra: () => "kept" });
}

describe("withDeadline", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fails a call the store never answers with StoreUnavailableError when the timeout passes, not before", async () => {
    const store = withDeadline(standIn(() => new Promise(() => undefined)), 1_500);
    const outcome = store.findTrans("g").then(() => "answered", (error: unknown) => error);
    await vi.advanceTimersByTimeAsync(1_499);
    const early = await Promise.race([outcome, Promise.resolve("pending")]);
    expect(early).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    const error = await outcome;
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error).toMatchObject({ code: "STORE_UNAVAILABLE", httpStatus: 503, grpcCode: 14 });
  });

  it("bounds every call but migrate and close; other members pass through", async () => {
    const store = withDeadline(standIn(() => new Promise(() => undefined)), 100);
    const bounded = CALLS.filter((c) => c !== "migrate" && c !== "close");
    const outcomes = bounded.map((name) => (store[name] as () => Promise<unknown>)().then(() => "answered", (e: unknown) => e));
    await vi.advanceTimersByTimeAsync(100);
    for (const o of await Promise.all(outcomes)) expect(o).toBeInstanceOf(StoreUnavailableError);
    expect(store.extra()).toBe("kept");
  });

  it("turns driver faults into StoreUnavailableError and leaves other errors (bugs) alone", async () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    await expect(withDeadline(standIn(() => Promise.reject(refused)), 100).findTrans("g")).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(withDeadline(standIn(() => Promise.reject(refused)), 100).migrate()).rejects.toBeInstanceOf(StoreUnavailableError);
    const bug = new TypeError("x is undefined");
    await expect(withDeadline(standIn(() => Promise.reject(bug)), 100).findTrans("g")).rejects.toBe(bug);
  });
});

describe("isStoreFault", () => {
  const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
  it.each([
    ["pg's client-side query timeout", new Error("Query read timeout")],
    ["pg-pool's wait for a client", new Error("timeout exceeded when trying to connect")],
    ["a connection pg lost", new Error("Connection terminated unexpectedly")],
    ["Postgres statement_timeout (57014)", withCode("canceling statement due to statement timeout", "57014")],
    ["Postgres too many connections (53300)", withCode("sorry, too many clients already", "53300")],
    ["mysql2's query timeout", withCode("Query inactivity timeout", "PROTOCOL_SEQUENCE_TIMEOUT")],
    ["a lost MySQL connection", Object.assign(new Error("Connection lost"), { fatal: true })],
    ["InnoDB lock wait timeout", withCode("Lock wait timeout exceeded", "ER_LOCK_WAIT_TIMEOUT")],
    ["ioredis' command timeout", new Error("Command timed out")],
    ["SQLite busy", withCode("database is locked", "SQLITE_BUSY")],
    ["refused on every address", new AggregateError([withCode("connect ECONNREFUSED ::1", "ECONNREFUSED")])],
  ])("%s is a store fault", (_name, error) => {
    expect(isStoreFault(error)).toBe(true);
  });

  it.each([
    ["a unique violation", withCode("duplicate key value", "23505")],
    ["a syntax error", withCode("syntax error", "42601")],
    ["a MySQL duplicate entry", Object.assign(withCode("Duplicate entry", "ER_DUP_ENTRY"), { sqlState: "23000" })],
    ["a TypeError", new TypeError("x is undefined")],
    ["not an Error", "text"],
  ])("%s is not", (_name, error) => {
    expect(isStoreFault(error)).toBe(false);
  });
});
