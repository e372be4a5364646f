/**
 * The chaos harness's one source of randomness: a seeded xoroshiro128+ (pure-rand), so the same
 * seed gives the same nemesis schedule, workload and branch faults. Each part takes its own
 * stream (`forkRng(seed, "nemesis")`) so adding draws in one part never shifts another's.
 */
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";

export interface Rng {
  /** An integer in [min, max], both included. */
  int(min: number, max: number): number;
  /** A float in [0, 1). */
  float(): number;
  /** A float in [min, max). */
  between(min: number, max: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** A draw from the exponential distribution with this mean (inter-arrival times). */
  exponential(mean: number): number;
}

const FLOAT_STEPS = 2 ** 30;

/** A stable 32-bit hash of a stream name (FNV-1a), mixed into the seed. */
function streamSalt(stream: string): number {
  let h = 0x811c9dc5;
  for (const ch of stream) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function wrap(gen: RandomGenerator): Rng {
  const float = (): number => uniformInt(gen, 0, FLOAT_STEPS - 1) / FLOAT_STEPS;
  return {
    int: (min, max) => uniformInt(gen, min, max),
    float,
    between: (min, max) => min + float() * (max - min),
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new Error("pick from an empty list");
      return items[uniformInt(gen, 0, items.length - 1)]!;
    },
    exponential: (mean) => -mean * Math.log(1 - float()),
  };
}

/** murmur3's finaliser: nearby seeds (1, 2, 3...) become unrelated 32-bit states. */
function fmix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** xoroshiro128+ seeded from one 32-bit number starts weakly mixed: its first draws are skipped. */
const WARM_UP_DRAWS = 20;

/** The random stream `stream` of run `seed`: the same pair always yields the same draws. */
export function forkRng(seed: number, stream: string): Rng {
  const gen = xoroshiro128plus(fmix32(fmix32(seed) ^ streamSalt(stream)));
  for (let i = 0; i < WARM_UP_DRAWS; i++) gen.next();
  return wrap(gen);
}
