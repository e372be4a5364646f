import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from "../../server/src/driver/h2/huffman-table.ts";
import type { HeaderField } from "../../server/src/driver/h2/hpack.ts";
import { encodeHeaderBlock, HpackDecoder, HpackError, huffmanDecode } from "../../server/src/driver/h2/hpack.ts";

const hex = (s: string): Buffer => Buffer.from(s, "hex");

/** A reference Huffman encoder (RFC 7541 §5.2), written separately from the decoder under test. */
function huffmanEncode(text: string): Buffer {
  const bits: number[] = [];
  for (const ch of Buffer.from(text, "latin1")) {
    const code = HUFFMAN_CODES[ch] as number;
    const length = HUFFMAN_LENGTHS[ch] as number;
    for (let b = length - 1; b >= 0; b--) bits.push((code >>> b) & 1);
  }
  while (bits.length % 8 !== 0) bits.push(1); // EOS prefix as padding
  const out = Buffer.alloc(bits.length / 8);
  bits.forEach((bit, i) => {
    out[i >> 3] = (out[i >> 3] as number) | (bit << (7 - (i & 7)));
  });
  return out;
}

describe("HPACK decoding: RFC 7541 Appendix C test vectors", () => {
  it("C.4: requests with Huffman coding, sharing one dynamic table", () => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))).toEqual([
      [":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"],
    ]);
    expect(decoder.decode(hex("828684be5886a8eb10649cbf"))).toEqual([
      [":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], ["cache-control", "no-cache"],
    ]);
    expect(decoder.decode(hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))).toEqual([
      [":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"],
    ]);
  });

  it("C.6: responses with Huffman coding and evictions from a 256-octet table", () => {
    const decoder = new HpackDecoder(256);
    const first: HeaderField[] = [
      [":status", "302"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:21 GMT"], ["location", "https://www.example.com"],
    ];
    expect(decoder.decode(hex("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3"))).toEqual(first);
    expect(decoder.decode(hex("4883640effc1c0bf"))).toEqual([[":status", "307"], ...first.slice(1)]);
    expect(decoder.decode(hex(
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    ))).toEqual([
      [":status", "200"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:22 GMT"], ["location", "https://www.example.com"],
      ["content-encoding", "gzip"], ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
    ]);
  });
});

describe("HPACK decoding: malformed blocks are errors, never garbage", () => {
  const cases: [string, string][] = [
    ["index 0", "80"],
    ["an index past the end of the tables", "be"],
    ["a truncated integer", "ff"],
    ["a string longer than the block", "400a61"],
    ["a table size update above the announced size", "3fe21f"],
    ["a table size update after a field", "8220"],
    ["Huffman padding that is not all ones", "408100"],
  ];
  for (const [what, block] of cases) {
    it(what, () => {
      expect(() => new HpackDecoder().decode(hex(block))).toThrow(HpackError);
    });
  }

  it("a header list over the size limit", () => {
    const big = encodeHeaderBlock([["x-big", "a".repeat(2000)]]);
    expect(() => new HpackDecoder(4096, 1000).decode(big)).toThrow(/larger than 1000/);
  });

  it("EOS inside a string and over-long padding", () => {
    expect(() => huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(HpackError);
    expect(() => huffmanDecode(Buffer.from([0x1f, 0xff]))).toThrow(/padding/); // "a" then 11 one-bits
  });
});

describe("HPACK properties", () => {
  const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 300 });
  const name = fc.stringMatching(/^[a-z0-9_.-]{1,40}$/);

  it("Huffman decoding inverts the reference encoder for any latin1 string", () => {
    fc.assert(fc.property(latin1, (text) => {
      expect(huffmanDecode(huffmanEncode(text))).toBe(text);
    }), { numRuns: 500 });
  });

  it("decode(encodeHeaderBlock(fields)) returns the fields, in order", () => {
    const field = fc.oneof(
      fc.tuple(name, latin1),
      fc.constantFrom<[string, string]>([":method", "POST"], [":scheme", "http"], ["content-type", "application/grpc"], [":path", "/"]),
      fc.tuple(fc.constantFrom("user-agent", "content-type", ":authority"), latin1),
    );
    fc.assert(fc.property(fc.array(field, { maxLength: 30 }), (fields) => {
      const decoder = new HpackDecoder();
      expect(decoder.decode(encodeHeaderBlock(fields))).toEqual(fields);
    }), { numRuns: 300 });
  });

  it("a decoder never throws anything but HpackError on random bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        new HpackDecoder().decode(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(HpackError);
      }
    }), { numRuns: 2000 });
  });
});
