import type { Payload } from "./types.ts";

const UTF8 = new TextEncoder();
const UTF8_DECODER = new TextDecoder();

/** The bytes of a {@link Payload}: strings as UTF-8, bytes as is, anything else as JSON (Go's `MustMarshalString`). */
export function payloadBytes(payload: Payload): Uint8Array {
  if (typeof payload === "string") return UTF8.encode(payload);
  if (payload instanceof Uint8Array) return payload;
  return UTF8.encode(JSON.stringify(payload ?? null));
}

/** The text of a {@link Payload}, as an HTTP body or a JSON `payloads` entry. */
export function payloadText(payload: Payload): string {
  if (typeof payload === "string") return payload;
  if (payload instanceof Uint8Array) return UTF8_DECODER.decode(payload);
  return JSON.stringify(payload ?? null);
}

/** UTF-8 text of bytes. */
export function bytesText(bytes: Uint8Array): string {
  return UTF8_DECODER.decode(bytes);
}

/** A Buffer view of bytes (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
