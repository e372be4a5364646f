import { createHash } from "node:crypto";

/**
 * Seeded draws for one transaction of the load: every value is a function of (seed, n, label),
 * so transaction n's plan does not depend on how many draws the others made, on the order in
 * which workers picked them up, or on the concurrency. Same seed → same plans.
 */
export class Dice {
  readonly #key: string;
  #counter = 0;

  constructor(seed: number, n: number, label: string) {
    this.#key = `${seed}:${n}:${label}`;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    const digest = createHash("sha256").update(`${this.#key}:${this.#counter++}`).digest();
    // 48 bits are plenty for a double in [0, 1).
    return digest.readUIntBE(0, 6) / 2 ** 48;
  }

  /** A uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error("Dice.pick of an empty list");
    return item;
  }

  /** A key of `weights` drawn in proportion to its weight (weights ≥ 0, not all 0). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = (Object.entries(weights) as [K, number][]).filter(([, w]) => w > 0);
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    if (total <= 0) throw new Error("Dice.weighted needs at least one positive weight");
    let x = this.float() * total;
    for (const [key, w] of entries) {
      x -= w;
      if (x < 0) return key;
    }
    return entries[entries.length - 1]![0];
  }
}
