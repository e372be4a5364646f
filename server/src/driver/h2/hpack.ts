import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from "./huffman-table.ts";

/** One header field, name and value as latin1 strings (one char per octet, lossless). */
export type HeaderField = readonly [name: string, value: string];

/** A header block that cannot be decoded: the connection must end (COMPRESSION_ERROR). */
export class HpackError extends Error {
  override readonly name = "HpackError";
}

/** RFC 7541 Appendix A. Index 1 is the first entry. */
const STATIC_TABLE: readonly HeaderField[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"],
  [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"],
  [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""],
  ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""],
  ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""],
  ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""],
  ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""],
  ["www-authenticate", ""],
];

/** RFC 7541 §4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;
const EOS = 256;

/**
 * The Huffman code as a binary tree in a flat array: node n's children are at 2n (bit 0) and
 * 2n + 1 (bit 1); a child value > 0 is the next node, < 0 is a leaf holding symbol -(value + 1),
 * 0 is "no such code".
 */
const HUFFMAN_TREE: Int32Array = (() => {
  const tree = new Int32Array(2 * 512);
  let nodes = 1;
  const insert = (code: number, length: number, symbol: number): void => {
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (bit === 0) {
        tree[slot] = -(symbol + 1);
        return;
      }
      if (tree[slot] === 0) tree[slot] = nodes++;
      node = tree[slot] as number;
    }
  };
  HUFFMAN_CODES.forEach((code, symbol) => insert(code, HUFFMAN_LENGTHS[symbol] as number, symbol));
  insert(0x3fffffff, 30, EOS);
  return tree;
})();

/** Decodes a Huffman-coded string (RFC 7541 §5.2) to latin1. */
export function huffmanDecode(bytes: Uint8Array): string {
  let out = "";
  let node = 0;
  let pendingBits = 0; // bits read since the last symbol
  let pendingAllOnes = true;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >>> bit) & 1;
      const next = HUFFMAN_TREE[2 * node + b] as number;
      pendingBits++;
      pendingAllOnes &&= b === 1;
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) throw new HpackError("EOS inside a Huffman-coded string");
        out += String.fromCharCode(symbol);
        node = 0;
        pendingBits = 0;
        pendingAllOnes = true;
      } else if (next === 0) {
        throw new HpackError("invalid Huffman code");
      } else {
        node = next;
      }
    }
  }
  if (pendingBits > 7 || !pendingAllOnes) throw new HpackError("invalid Huffman padding");
  return out;
}

/**
 * Decodes header blocks (RFC 7541) with a dynamic table, as the receiving half of one HTTP/2
 * connection: blocks must be decoded in the order they arrive, including blocks of streams the
 * caller no longer cares about, or the table goes out of step with the peer's encoder.
 */
export class HpackDecoder {
  /** Newest first. */
  private readonly dynamic: HeaderField[] = [];
  private size = 0;
  private maxSize: number;

  /**
   * @param settingsMaxSize the SETTINGS_HEADER_TABLE_SIZE we announced (the ceiling for the peer's size updates)
   * @param maxListSize the largest decoded header list accepted (RFC 7541 size rule), against header bombs
   */
  constructor(private readonly settingsMaxSize = 4096, private readonly maxListSize = 64 * 1024) {
    this.maxSize = settingsMaxSize;
  }

  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let listSize = 0;
    const reader = { bytes: block, pos: 0 };
    let fieldSeen = false;
    while (reader.pos < block.length) {
      const first = block[reader.pos] as number;
      let field: HeaderField;
      if (first & 0x80) {
        field = this.entry(readInteger(reader, 7));
      } else if (first & 0x40) {
        field = this.literal(reader, 6);
        this.add(field);
      } else if (first & 0x20) {
        // A table size update is only allowed before the first field of a block (§4.2).
        if (fieldSeen) throw new HpackError("dynamic table size update after a header field");
        const size = readInteger(reader, 5);
        if (size > this.settingsMaxSize) throw new HpackError(`dynamic table size ${size} exceeds the announced ${this.settingsMaxSize}`);
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        field = this.literal(reader, 4); // without indexing / never indexed
      }
      fieldSeen = true;
      listSize += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listSize > this.maxListSize) throw new HpackError(`header list larger than ${this.maxListSize} octets`);
      fields.push(field);
    }
    return fields;
  }

  private entry(index: number): HeaderField {
    if (index === 0) throw new HpackError("header index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as HeaderField;
    const entry = this.dynamic[index - STATIC_TABLE.length - 1];
    if (!entry) throw new HpackError(`header index ${index} is not in the table`);
    return entry;
  }

  private literal(reader: Reader, prefixBits: number): HeaderField {
    const index = readInteger(reader, prefixBits);
    const name = index === 0 ? readString(reader) : this.entry(index)[0];
    return [name, readString(reader)];
  }

  private add(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (§4.4).
    this.evict(Math.min(size, this.maxSize + 1));
    if (size <= this.maxSize) {
      this.dynamic.unshift(field);
      this.size += size;
    }
  }

  /** Evicts the oldest entries until `incoming` more octets fit. */
  private evict(incoming: number): void {
    while (this.dynamic.length > 0 && this.size + incoming > this.maxSize) {
      const old = this.dynamic.pop() as HeaderField;
      this.size -= old[0].length + old[1].length + ENTRY_OVERHEAD;
    }
  }
}

interface Reader {
  bytes: Uint8Array;
  pos: number;
}

/** RFC 7541 §5.1, capped at 2^31 (nothing this client accepts is larger). */
function readInteger(reader: Reader, prefixBits: number): number {
  const mask = (1 << prefixBits) - 1;
  let value = (reader.bytes[reader.pos++] as number) & mask;
  if (value < mask) return value;
  let shift = 0;
  for (;;) {
    if (reader.pos >= reader.bytes.length) throw new HpackError("truncated integer");
    const byte = reader.bytes[reader.pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (value > 0x7fffffff) throw new HpackError("integer too large");
    if ((byte & 0x80) === 0) return value;
  }
}

function readString(reader: Reader): string {
  if (reader.pos >= reader.bytes.length) throw new HpackError("truncated string");
  const huffman = ((reader.bytes[reader.pos] as number) & 0x80) !== 0;
  const length = readInteger(reader, 7);
  const end = reader.pos + length;
  if (end > reader.bytes.length) throw new HpackError("truncated string");
  const raw = reader.bytes.subarray(reader.pos, end);
  reader.pos = end;
  return huffman ? huffmanDecode(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("latin1");
}

const STATIC_NAME_INDEX = new Map<string, number>();
const STATIC_FIELD_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
  STATIC_FIELD_INDEX.set(`${name}\0${value}`, i + 1);
});

/**
 * Encodes a request's header block without touching the dynamic table (so the encoder keeps no
 * state and the peer's table size setting does not matter): a static-table match is indexed,
 * anything else is a literal without indexing, not Huffman-coded.
 */
export function encodeHeaderBlock(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const exact = STATIC_FIELD_INDEX.get(`${name}\0${value}`);
    if (exact !== undefined) {
      writeInteger(out, exact, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex !== undefined) {
      writeInteger(out, nameIndex, 4, 0x00);
    } else {
      out.push(0x00);
      writeString(out, name);
    }
    writeString(out, value);
  }
  return Buffer.from(out);
}

function writeInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function writeString(out: number[], value: string): void {
  writeInteger(out, value.length, 7, 0x00);
  for (let i = 0; i < value.length; i++) out.push(value.charCodeAt(i) & 0xff);
}
