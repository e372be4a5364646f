import net from "node:net";
import type { Socket } from "node:net";
import {
  CONNECTION_PREFACE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, ErrorCode, Flag, FRAME_HEADER_BYTES, FrameType,
  H2ProtocolError, MAX_STREAM_ID, MAX_WINDOW, Setting, frame, goawayFrame, rstStreamFrame, settingsFrame,
  windowUpdateFrame, writeFrameHeader,
} from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import { encodeHeaderBlock, HpackDecoder, HpackError } from "./hpack.ts";

/** How a stream ended, as its handler learns it (exactly once, after every header block). */
export type StreamEnd =
  | { kind: "ended" }
  | { kind: "reset"; code: number }
  | { kind: "unavailable"; message: string };

export interface StreamHandler {
  /** A header block: the response headers first; a later block (with `endStream`) is the trailers. */
  onHeaders(fields: HeaderField[], endStream: boolean): void;
  onClose(end: StreamEnd): void;
}

export interface H2Stream {
  /** Abandons the stream (RST_STREAM CANCEL); the handler's onClose sees `reset` with CANCEL. */
  cancel(): void;
}

/** Our receive windows: large, so a peer never waits on us for the small answers gRPC sends. */
const STREAM_RECEIVE_WINDOW = 1 << 20;
const CONNECTION_RECEIVE_WINDOW = 16 << 20;
/** The biggest header block (before decoding) accepted from the peer. */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;
const MAX_DECODED_HEADER_LIST = 64 * 1024;
const EMPTY = Buffer.alloc(0);
const MAX_REFUSALS = 3;

interface StreamState {
  id: number;
  readonly handler: StreamHandler;
  readonly headerBlock: Buffer;
  readonly body: Buffer;
  /** Times the server refused the stream before processing it (REFUSED_STREAM); retried a few times. */
  refusals: number;
  /** Request body bytes not yet sent (waiting on flow control). */
  pending: Buffer;
  sendWindow: number;
  receivedSinceUpdate: number;
  closed: boolean;
}

interface PartialHeaderBlock {
  streamId: number;
  endStream: boolean;
  chunks: Buffer[];
  bytes: number;
}

/**
 * A minimal HTTP/2 client connection (RFC 9113) over plain TCP ("h2c" with prior knowledge, as
 * gRPC uses), for unary requests whose answer is read for its headers and trailers only.
 *
 * Why not node:http2: its sessions send queued frames from a native setImmediate, so a request
 * made after a store commit (which itself runs in setImmediate) waits for the next turn of the
 * event loop, after all the I/O that turn brings. With every branch call of a busy coordinator
 * paying that wait, gRPC sagas ran ~20% slower than HTTP ones while the CPU sat partly idle.
 * Here a request is written to the socket at once (corked until the current tick ends, so the
 * requests of one burst share a write). It also costs less CPU per call.
 *
 * Scope: request headers are never added to the HPACK dynamic table (the decoder handles the
 * peer's); server push is refused; response bodies are read only for flow control.
 */
export class H2Connection {
  private readonly socket: Socket;
  private readonly decoder = new HpackDecoder(4096, MAX_DECODED_HEADER_LIST);
  private readonly streams = new Map<number, StreamState>();
  /** Streams over the peer's MAX_CONCURRENT_STREAMS, opened as others close. */
  private readonly waiting: StreamState[] = [];
  /** Open streams with body bytes held back by flow control. */
  private readonly blocked = new Set<StreamState>();
  private nextStreamId = 1;
  private connectionSendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /** Until the server's SETTINGS say otherwise: node:http2's assumption too (RFC 9113 §6.5.2 suggests >= 100). */
  private peerMaxStreams = 100;
  private receivedSinceUpdate = 0;
  private inbox: Buffer = EMPTY;
  private partialHeaders: PartialHeaderBlock | undefined;
  private corked = false;
  private state: "open" | "draining" | "closed" = "open";
  private failure: string | undefined;
  /** performance.now() of the last bytes from the peer. */
  private lastHeard = Number.NEGATIVE_INFINITY;

  /** @param onGone called once, when the connection stops taking new streams (GOAWAY, close, error) */
  constructor(host: string, port: number, private readonly onGone: () => void) {
    this.socket = net.connect({ host, port, noDelay: true });
    // An idle connection does not hold the process open; a call in flight has its deadline timer.
    this.socket.unref();
    this.socket.on("data", (chunk: Buffer) => this.receive(chunk));
    this.socket.on("error", (error) => {
      this.failure ??= error.message;
    });
    this.socket.on("close", () => this.closed());
    this.write(CONNECTION_PREFACE);
    this.write(settingsFrame([
      [Setting.ENABLE_PUSH, 0],
      [Setting.INITIAL_WINDOW_SIZE, STREAM_RECEIVE_WINDOW],
      [Setting.MAX_HEADER_LIST_SIZE, MAX_DECODED_HEADER_LIST],
    ]));
    this.write(windowUpdateFrame(0, CONNECTION_RECEIVE_WINDOW - DEFAULT_WINDOW));
  }

  /** Whether a new stream may start here (else the caller should open another connection). */
  get acceptsStreams(): boolean {
    return this.state === "open" && this.nextStreamId <= MAX_STREAM_ID;
  }

  /**
   * Whether the peer sent anything since `since` (a performance.now() time). A connection that
   * stayed silent through a whole call deadline is likely dead (a black-holed connect, a peer
   * gone without FIN), and TCP alone may take many minutes to notice.
   */
  heardSince(since: number): boolean {
    return this.lastHeard >= since;
  }

  /** Starts a request: `fields` (pseudo-headers first), then `body` as DATA ending the stream. */
  request(fields: readonly HeaderField[], body: Buffer, handler: StreamHandler): H2Stream {
    const stream: StreamState = {
      id: 0, handler, headerBlock: encodeHeaderBlock(fields), body, refusals: 0, pending: body,
      sendWindow: 0, receivedSinceUpdate: 0, closed: false,
    };
    if (!this.acceptsStreams) {
      const message = this.failure ?? "the connection is closing";
      queueMicrotask(() => this.closeStream(stream, { kind: "unavailable", message }));
    } else if (this.streams.size < this.peerMaxStreams) {
      this.open(stream);
    } else {
      this.waiting.push(stream);
    }
    return { cancel: () => this.cancel(stream) };
  }

  /** Takes no new streams; ends the connection once the running ones are done. */
  close(): void {
    if (this.state !== "open") return;
    this.state = "draining";
    this.onGone();
    this.endIfIdle();
  }

  /** Ends the connection now; running streams end `unavailable` with `message`. */
  destroy(message: string): void {
    this.failure ??= message;
    this.socket.destroy();
    this.closed(); // now, not on the socket's later 'close': no new call may pick this connection
  }

  private open(stream: StreamState): void {
    stream.id = this.nextStreamId;
    this.nextStreamId += 2;
    stream.sendWindow = this.peerInitialWindow;
    this.streams.set(stream.id, stream);
    const block = stream.headerBlock;
    const endStream = stream.pending.byteLength === 0 ? Flag.END_STREAM : 0;
    let offset = Math.min(block.byteLength, this.peerMaxFrameSize);
    this.write(frame(FrameType.HEADERS, endStream | (offset === block.byteLength ? Flag.END_HEADERS : 0), stream.id, block.subarray(0, offset)));
    while (offset < block.byteLength) {
      const end = Math.min(block.byteLength, offset + this.peerMaxFrameSize);
      this.write(frame(FrameType.CONTINUATION, end === block.byteLength ? Flag.END_HEADERS : 0, stream.id, block.subarray(offset, end)));
      offset = end;
    }
    this.sendData(stream);
  }

  /** Sends as much of the stream's body as the flow-control windows allow. */
  private sendData(stream: StreamState): void {
    while (stream.pending.byteLength > 0) {
      const n = Math.min(stream.pending.byteLength, stream.sendWindow, this.connectionSendWindow, this.peerMaxFrameSize);
      if (n <= 0) {
        this.blocked.add(stream);
        return;
      }
      const last = n === stream.pending.byteLength;
      const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
      writeFrameHeader(out, 0, n, FrameType.DATA, last ? Flag.END_STREAM : 0, stream.id);
      stream.pending.copy(out, FRAME_HEADER_BYTES, 0, n);
      stream.pending = last ? EMPTY : stream.pending.subarray(n);
      stream.sendWindow -= n;
      this.connectionSendWindow -= n;
      this.write(out);
    }
    this.blocked.delete(stream);
  }

  private cancel(stream: StreamState): void {
    if (stream.closed) return;
    if (stream.id === 0) {
      const i = this.waiting.indexOf(stream);
      if (i >= 0) this.waiting.splice(i, 1);
    } else if (this.state !== "closed") {
      this.write(rstStreamFrame(stream.id, ErrorCode.CANCEL));
    }
    this.closeStream(stream, { kind: "reset", code: ErrorCode.CANCEL });
  }

  private closeStream(stream: StreamState, end: StreamEnd): void {
    if (stream.closed) return;
    stream.closed = true;
    if (stream.id !== 0) this.streams.delete(stream.id);
    this.blocked.delete(stream);
    stream.pending = EMPTY;
    stream.handler.onClose(end);
    this.openWaiting();
    this.endIfIdle();
  }

  private endIfIdle(): void {
    if (this.state !== "draining" || this.streams.size > 0 || this.waiting.length > 0) return;
    this.write(goawayFrame(0, ErrorCode.NO_ERROR));
    this.socket.destroySoon();
  }

  /**
   * Writes are corked until the current tick ends: the requests a burst of callbacks makes go out
   * in one writev, yet none waits for a later turn of the event loop.
   */
  private write(data: Buffer): void {
    if (this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(data);
  }

  private closed(): void {
    const wasOpen = this.state === "open";
    this.state = "closed";
    if (wasOpen) this.onGone();
    const message = this.failure ?? "Connection dropped";
    const all = [...this.waiting, ...this.streams.values()];
    this.waiting.length = 0;
    for (const stream of all) this.closeStream(stream, { kind: "unavailable", message });
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  private receive(chunk: Buffer): void {
    this.lastHeard = performance.now();
    const inbox = this.inbox.byteLength > 0 ? Buffer.concat([this.inbox, chunk]) : chunk;
    let offset = 0;
    try {
      while (inbox.byteLength - offset >= FRAME_HEADER_BYTES && this.state !== "closed") {
        const length = inbox.readUIntBE(offset, 3);
        if (length > DEFAULT_MAX_FRAME_SIZE) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds our SETTINGS_MAX_FRAME_SIZE`);
        if (inbox.byteLength - offset < FRAME_HEADER_BYTES + length) break;
        const type = inbox[offset + 3] as number;
        const flags = inbox[offset + 4] as number;
        const streamId = inbox.readUInt32BE(offset + 5) & MAX_STREAM_ID;
        const payload = inbox.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
        offset += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
      }
    } catch (error) {
      this.protocolError(error);
      return;
    }
    this.inbox = offset === inbox.byteLength ? EMPTY : inbox.subarray(offset);
  }

  private protocolError(error: unknown): void {
    const code = error instanceof H2ProtocolError ? error.code : error instanceof HpackError ? ErrorCode.COMPRESSION_ERROR : ErrorCode.INTERNAL_ERROR;
    const message = error instanceof Error ? error.message : String(error);
    this.write(goawayFrame(0, code));
    this.failure ??= `HTTP/2 protocol error from the server: ${message}`;
    this.socket.destroySoon();
    this.closed();
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.partialHeaders && (type !== FrameType.CONTINUATION || streamId !== this.partialHeaders.streamId)) {
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION");
    }
    switch (type) {
      case FrameType.DATA:
        return this.onData(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FrameType.RST_STREAM: {
        if (payload.byteLength !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM must be 4 bytes");
        const stream = this.streams.get(streamId);
        if (!stream) return;
        const code = payload.readUInt32BE(0);
        if (code === ErrorCode.REFUSED_STREAM && stream.refusals < MAX_REFUSALS) return this.retryRefused(stream);
        this.closeStream(stream, { kind: "reset", code });
        return;
      }
      case FrameType.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled");
      case FrameType.PING:
        if (payload.byteLength !== 8 || streamId !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "bad PING");
        if ((flags & Flag.ACK) === 0) this.write(frame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        if (payload.byteLength < 8) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY too short");
        return this.onGoaway(payload.readUInt32BE(0) & MAX_STREAM_ID, payload.readUInt32BE(4));
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        return; // PRIORITY and unknown frame types are ignored (RFC 9113 §5.5)
    }
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    if (flags & Flag.PADDED && (payload.byteLength === 0 || (payload[0] as number) >= payload.byteLength)) {
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "bad DATA padding");
    }
    // Flow control counts the whole payload, padding included; the bytes themselves are unused.
    this.receivedSinceUpdate += payload.byteLength;
    if (this.receivedSinceUpdate >= CONNECTION_RECEIVE_WINDOW / 2) {
      this.write(windowUpdateFrame(0, this.receivedSinceUpdate));
      this.receivedSinceUpdate = 0;
    }
    const stream = this.streams.get(streamId);
    if (!stream) return;
    if (flags & Flag.END_STREAM) {
      this.closeStream(stream, { kind: "ended" });
      return;
    }
    stream.receivedSinceUpdate += payload.byteLength;
    if (stream.receivedSinceUpdate >= STREAM_RECEIVE_WINDOW / 2) {
      this.write(windowUpdateFrame(stream.id, stream.receivedSinceUpdate));
      stream.receivedSinceUpdate = 0;
    }
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    let start = 0;
    let end = payload.byteLength;
    if (flags & Flag.PADDED) {
      const padding = payload[0] ?? 0;
      start = 1;
      end -= padding;
    }
    if (flags & Flag.PRIORITY) start += 5;
    if (start > end) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "bad HEADERS padding");
    const fragment = payload.subarray(start, end);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (flags & Flag.END_HEADERS) this.onHeaderBlock(streamId, endStream, fragment);
    else this.partialHeaders = { streamId, endStream, chunks: [fragment], bytes: fragment.byteLength };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const partial = this.partialHeaders;
    if (!partial) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS");
    partial.chunks.push(payload);
    partial.bytes += payload.byteLength;
    if (partial.bytes > MAX_HEADER_BLOCK_BYTES) throw new H2ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large");
    if ((flags & Flag.END_HEADERS) === 0) return;
    this.partialHeaders = undefined;
    this.onHeaderBlock(streamId, partial.endStream, Buffer.concat(partial.chunks));
  }

  private onHeaderBlock(streamId: number, endStream: boolean, block: Buffer): void {
    // Decoded even for a stream we dropped: the peer's encoder state moves on regardless.
    const fields = this.decoder.decode(block);
    const stream = this.streams.get(streamId);
    if (!stream) return;
    stream.handler.onHeaders(fields, endStream);
    if (!endStream || stream.closed) return;
    if (stream.pending.byteLength > 0) this.write(rstStreamFrame(stream.id, ErrorCode.NO_ERROR)); // answered before it read all we had
    this.closeStream(stream, { kind: "ended" });
  }

  /**
   * REFUSED_STREAM means the server did not process the stream (RFC 9113 §8.7), typically one
   * opened before its SETTINGS lowered MAX_CONCURRENT_STREAMS: it is sent again, first in line.
   */
  private retryRefused(stream: StreamState): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    stream.id = 0;
    stream.refusals++;
    stream.pending = stream.body;
    this.waiting.unshift(stream);
    this.openWaiting();
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) return;
    if (payload.byteLength % 6 !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length");
    for (let i = 0; i < payload.byteLength; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === Setting.MAX_CONCURRENT_STREAMS) {
        this.peerMaxStreams = value;
      } else if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) stream.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME_SIZE || value > 0xffffff) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. Others do not apply to a client.
    }
    this.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
    this.resumeBlocked();
    this.openWaiting();
  }

  /** Opens waiting streams while the peer's MAX_CONCURRENT_STREAMS allows (also while draining after our own close()). */
  private openWaiting(): void {
    while (this.state !== "closed" && this.waiting.length > 0 && this.streams.size < this.peerMaxStreams && this.nextStreamId <= MAX_STREAM_ID) {
      this.open(this.waiting.shift() as StreamState);
    }
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.byteLength !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes");
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (streamId === 0) {
      this.connectionSendWindow += increment;
      this.resumeBlocked();
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) return;
    stream.sendWindow += increment;
    if (stream.pending.byteLength > 0) this.sendData(stream);
  }

  private resumeBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.connectionSendWindow <= 0) return;
      this.sendData(stream);
    }
  }

  private onGoaway(lastStreamId: number, code: number): void {
    if (this.state === "open") {
      this.state = "draining";
      this.onGone();
    }
    // Streams above lastStreamId were never processed by the server: safe to retry elsewhere.
    const refused = [...this.waiting, ...[...this.streams.values()].filter((s) => s.id > lastStreamId)];
    this.waiting.length = 0;
    for (const stream of refused) this.closeStream(stream, { kind: "unavailable", message: `the server sent GOAWAY (code ${code})` });
    this.endIfIdle();
  }
}
