/**
 * dtx's own HTTP/2 client connection (server/src/driver/h2) against real HTTP/2 servers on
 * loopback: node:http2 (nghttp2, which Huffman-codes and indexes what it sends) and raw TCP
 * servers that misbehave on purpose.
 */
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import type { Http2Server, ServerHttp2Stream } from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { H2Stream, StreamEnd } from "../../server/src/driver/h2/h2-connection.ts";
import { GrpcInvoker } from "../../server/src/driver/grpc-invoker.ts";
import { H2Connection } from "../../server/src/driver/h2/h2-connection.ts";
import type { HeaderField } from "../../server/src/driver/h2/hpack.ts";

interface Answer {
  blocks: { fields: HeaderField[]; endStream: boolean }[];
  end: StreamEnd;
}

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function listen(server: Http2Server | net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

async function h2Server(onStream: (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void, settings: http2.Settings = {}): Promise<number> {
  const server = http2.createServer({ settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {}); // a reset stream is part of some tests
    onStream(stream, headers);
  });
  const port = await listen(server);
  closers.push(() => new Promise<void>((resolve) => {
    for (const s of sessions) s.destroy();
    server.close(() => resolve());
  }));
  return port;
}

function connect(port: number, onGone: () => void = () => {}): H2Connection {
  const connection = new H2Connection("127.0.0.1", port, onGone);
  closers.push(() => connection.destroy("test over"));
  return connection;
}

function call(connection: H2Connection, body: Buffer, extra: HeaderField[] = []): { answer: Promise<Answer>; stream: H2Stream } {
  let stream!: H2Stream;
  const answer = new Promise<Answer>((resolve) => {
    const blocks: Answer["blocks"] = [];
    stream = connection.request([[":method", "POST"], [":scheme", "http"], [":path", "/test"], [":authority", "localhost"], ...extra], body, {
      onHeaders: (fields, endStream) => blocks.push({ fields, endStream }),
      onClose: (end) => resolve({ blocks, end }),
    });
  });
  return { answer, stream };
}

function readAll(stream: ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

const visible = (fields: HeaderField[]): HeaderField[] => fields.filter(([n]) => n !== "date");

describe("H2Connection against node:http2", () => {
  it("delivers request bytes exactly and decodes headers and trailers nghttp2 compresses with its dynamic table", async () => {
    const port = await h2Server((stream, headers) => {
      void readAll(stream).then((body) => {
        const n = Number(headers["x-n"]);
        stream.respond({ ":status": 200, "x-echo-len": String(body.length), "x-same": "constant-value", [`x-varied-${n % 7}`]: `v${n}`.repeat(n % 50) }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": String(n % 17), "grpc-message": `message ${n} ünï`.normalize() }));
        stream.end(body.subarray(0, 10));
      });
    });
    const connection = connect(port);
    const bodies = Array.from({ length: 200 }, (_, n) => randomBytes(n * 37));
    const answers = await Promise.all(bodies.map((body, n) => call(connection, body, [["x-n", String(n)]]).answer));
    answers.forEach((a, n) => {
      expect(a.end).toEqual({ kind: "ended" });
      expect(a.blocks).toHaveLength(2);
      expect(visible(a.blocks[0]!.fields)).toEqual([
        [":status", "200"], ["x-echo-len", String(n * 37)], ["x-same", "constant-value"], [`x-varied-${n % 7}`, `v${n}`.repeat(n % 50)],
      ]);
      expect(a.blocks[1]).toEqual({
        endStream: true,
        fields: [["grpc-status", String(n % 17)], ["grpc-message", Buffer.from(`message ${n} ünï`, "latin1").toString("latin1")]],
      });
    });
  });

  it("respects the server's flow-control windows: a 3 MiB body arrives intact through a 1 KiB window", async () => {
    const received: Buffer[] = [];
    const port = await h2Server((stream) => {
      void readAll(stream).then((body) => {
        received.push(body);
        stream.respond({ ":status": 200 }, { endStream: true });
      });
    }, { initialWindowSize: 1024 });
    const connection = connect(port);
    const bodies = [randomBytes(3 << 20), randomBytes(70_000), randomBytes(5)];
    const answers = await Promise.all(bodies.map((b) => call(connection, b).answer));
    for (const a of answers) expect(a.end).toEqual({ kind: "ended" });
    expect(received.map((b) => b.length).sort((x, y) => x - y)).toEqual(bodies.map((b) => b.length).sort((x, y) => x - y));
    for (const body of bodies) expect(received.some((r) => r.equals(body))).toBe(true);
  });

  it("never has more streams open than the server's MAX_CONCURRENT_STREAMS; the rest wait their turn", async () => {
    let open = 0;
    let maxOpen = 0;
    const port = await h2Server((stream) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      stream.on("close", () => open--);
      void readAll(stream).then(() => setImmediate(() => stream.respond({ ":status": 200 }, { endStream: true })));
    }, { maxConcurrentStreams: 3 });
    const connection = connect(port);
    const answers = await Promise.all(Array.from({ length: 40 }, () => call(connection, Buffer.from("x")).answer));
    for (const a of answers) expect(a.end).toEqual({ kind: "ended" });
    expect(maxOpen).toBe(3);
  });

  it("cancel() resets the stream at the server (RST_STREAM CANCEL)", async () => {
    let arrived!: () => void;
    const serverHasIt = new Promise<void>((resolve) => (arrived = resolve));
    let serverClosed!: (code: number) => void;
    const serverSaw = new Promise<number>((resolve) => (serverClosed = resolve));
    const port = await h2Server((stream) => {
      stream.on("close", () => serverClosed(stream.rstCode));
      arrived();
    });
    const { answer, stream } = call(connect(port), Buffer.from("hang"));
    await serverHasIt;
    stream.cancel();
    expect((await answer).end).toEqual({ kind: "reset", code: http2.constants.NGHTTP2_CANCEL });
    expect(await serverSaw).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it("GOAWAY: streams the server did not take end unavailable, the connection takes no new ones and reports itself gone", async () => {
    let gone = 0;
    const held: ServerHttp2Stream[] = [];
    let firstSession: http2.Http2Session | undefined;
    const port = await h2Server((stream) => {
      firstSession ??= stream.session;
      held.push(stream);
    });
    const connection = connect(port, () => gone++);
    const first = call(connection, Buffer.from("1"));
    await new Promise<void>((resolve) => {
      const poll = (): void => (held.length === 1 ? resolve() : void setImmediate(poll));
      poll();
    });
    const second = call(connection, Buffer.from("2")); // not yet seen by the server when it says GOAWAY
    firstSession!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    const refused = await second.answer;
    expect(refused.end.kind).toBe("unavailable");
    expect(connection.acceptsStreams).toBe(false);
    expect(gone).toBe(1);
    held[0]!.respond({ ":status": 200, "grpc-status": "0" }, { endStream: true }); // stream 1 still completes
    expect((await first.answer).end).toEqual({ kind: "ended" });
  });
});

describe("H2Connection against broken servers", () => {
  it("a refused connection ends every stream unavailable with the socket's error", async () => {
    const probe = net.createServer();
    const port = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    let gone = 0;
    const connection = connect(port, () => gone++);
    const answers = await Promise.all([call(connection, Buffer.from("a")).answer, call(connection, Buffer.from("b")).answer]);
    for (const a of answers) expect(a.end).toMatchObject({ kind: "unavailable", message: expect.stringMatching(/ECONNREFUSED/) as unknown });
    expect(gone).toBe(1);
    expect(connection.acceptsStreams).toBe(false);
  });

  it("a server that is not HTTP/2 (an HTTP/1.1 answer) is a protocol error: streams end unavailable", async () => {
    const server = net.createServer((socket) => {
      socket.once("data", () => socket.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
      socket.on("error", () => {});
    });
    const port = await listen(server);
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const a = await call(connect(port), Buffer.from("x")).answer;
    expect(a.end).toMatchObject({ kind: "unavailable", message: expect.stringMatching(/protocol error/) as unknown });
  });

  it("a server that drops the connection mid-call ends the call unavailable", async () => {
    const port = await h2Server((stream) => stream.session?.destroy());
    const a = await call(connect(port), Buffer.from("x")).answer;
    expect(a.end.kind).toBe("unavailable");
  });
});

describe("GrpcInvoker over H2Connection", () => {
  it("a connection silent through a whole deadline (a peer that accepts but never speaks) is dropped; the next call connects afresh", async () => {
    const sockets: net.Socket[] = [];
    const blackHole = net.createServer((socket) => {
      sockets.push(socket); // accepted, read, never answered
      socket.on("error", () => {});
    });
    const port = await listen(blackHole);
    closers.push(() => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      blackHole.close(() => resolve());
    }));
    const invoker = new GrpcInvoker();
    closers.push(() => invoker.close());
    const call = { gid: "g", transType: "saga" as const, protocol: "grpc" as const, branchId: "01", op: "action", url: `127.0.0.1:${port}/busi.Busi/TransOut`, body: Buffer.from("x"), headers: {}, timeoutMs: 150 };
    for (let i = 1; i <= 2; i++) {
      const outcome = await invoker.invoke(call);
      expect(outcome.kind === "error" && outcome.message).toMatch(/DEADLINE_EXCEEDED/);
      expect(sockets).toHaveLength(i); // each call had to open its own connection
    }
    expect(invoker.channels).toBe(0);
  });
});
