/**
 * Seeded branch faults (contracts `BranchFault`, plus duplicate delivery), chosen per call from
 * the participant's seed and index, the branch op and how many times this process has seen it. The
 * same seed and the same order of calls give the same faults; a retried call draws again, and from
 * its {@link MAX_FAULTY_ATTEMPT}th attempt on it gets none, so every branch eventually goes through.
 */
import { createHash } from "node:crypto";
import type { BranchFault } from "../contracts.ts";

/** Per-call probabilities, each in [0, 1]; their sum at most 1. `duplicate` is drawn on its own. */
export type FaultRates = Partial<Record<BranchFault | "duplicate", number>>;

export const BRANCH_FAULTS: readonly BranchFault[] = ["error-before", "error-after", "drop-after", "late", "ongoing", "failure"];

/** Attempts of one branch op that may get a fault; later ones get none (a retry cap). */
export const MAX_FAULTY_ATTEMPT = 4;
/** Branch ops remembered for the attempt count (oldest forgotten first). */
const ATTEMPTS_BOUND = 200_000;

/** What may be injected on one call. */
export interface FaultScope {
  /** FAILURE (409) is allowed: action / try steps only, never compensate, confirm, cancel, msg. */
  failureAllowed: boolean;
  /** Running the handler twice at once is realistic here (every call but an XA action). */
  duplicateAllowed: boolean;
}

export interface FaultDraw {
  fault?: BranchFault;
  duplicate: boolean;
}

/** Parses `--fault-rates` (JSON object of rates); refuses unknown names and bad numbers. */
export function parseFaultRates(json: string): FaultRates {
  const value: unknown = JSON.parse(json);
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("--fault-rates must be a JSON object");
  const rates: FaultRates = {};
  let sum = 0;
  for (const [name, rate] of Object.entries(value as Record<string, unknown>)) {
    if (name !== "duplicate" && !BRANCH_FAULTS.includes(name as BranchFault)) throw new Error(`--fault-rates: unknown fault ${name}`);
    if (typeof rate !== "number" || !(rate >= 0 && rate <= 1)) throw new Error(`--fault-rates: ${name} must be a number in [0, 1]`);
    rates[name as BranchFault | "duplicate"] = rate;
    if (name !== "duplicate") sum += rate;
  }
  if (sum > 1) throw new Error("--fault-rates: the branch faults add up to more than 1");
  return rates;
}

/** Two uniform numbers in [0, 1) from a hash of `text`. */
function uniforms(text: string): [number, number] {
  const h = createHash("sha256").update(text).digest();
  return [h.readUInt32BE(0) / 2 ** 32, h.readUInt32BE(4) / 2 ** 32];
}

/** The faults of one participant process: `seed` and `index` make them its own; `rates` come from the profile. */
export class FaultPlan {
  readonly #attempts = new Map<string, number>();

  constructor(
    readonly seed: number,
    readonly index: number,
    readonly rates: FaultRates,
  ) {}

  /** The fault for this call of `gid/branchId/op` at `path`. */
  draw(key: { gid: string; branchId: string; op: string; path: string }, scope: FaultScope): FaultDraw {
    const id = `${key.gid}/${key.branchId}/${key.op}/${key.path}`;
    const attempt = (this.#attempts.get(id) ?? 0) + 1;
    this.#attempts.delete(id);
    this.#attempts.set(id, attempt);
    if (this.#attempts.size > ATTEMPTS_BOUND) this.#attempts.delete(this.#attempts.keys().next().value as string);
    if (attempt > MAX_FAULTY_ATTEMPT) return { duplicate: false };
    const [u, v] = uniforms(`${this.seed}:${this.index}:${id}:${attempt}`);
    const duplicate = scope.duplicateAllowed && v < (this.rates.duplicate ?? 0);
    let acc = 0;
    for (const fault of BRANCH_FAULTS) {
      const rate = fault === "failure" && !scope.failureAllowed ? 0 : (this.rates[fault] ?? 0);
      acc += rate;
      if (u < acc) return { fault, duplicate };
    }
    return { duplicate };
  }
}
