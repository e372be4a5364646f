import { randomBytes } from "node:crypto";

const ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** A 22-character base57 id, the shape of dtm's shortuuid gids. */
export function newGid(): string {
  let n = BigInt(`0x${randomBytes(16).toString("hex")}`);
  const base = BigInt(ALPHABET.length);
  let out = "";
  for (let i = 0; i < 22; i++) {
    out += ALPHABET[Number(n % base)];
    n /= base;
  }
  return out;
}

export const GID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
