import { randomBytes } from "node:crypto";

/** shortuuid's alphabet (base57: no 0, 1, I, O, l), as dtm's `newGid` uses. */
const ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const LENGTH = 22;

/**
 * A new globally unique transaction id generated locally: 22 characters of base57 from 128 random
 * bits, the shape of dtm's `shortuuid` gids (e.g. `3Zp9vUWCkdhQpGxhTXVm5E`). No coordinator round
 * trip; use {@link DtxClient.newGid} to ask the coordinator instead.
 */
export function newGid(): string {
  let n = BigInt(`0x${randomBytes(16).toString("hex")}`);
  const base = BigInt(ALPHABET.length);
  let out = "";
  for (let i = 0; i < LENGTH; i++) {
    out = ALPHABET[Number(n % base)] + out;
    n /= base;
  }
  return out;
}
