// saga-bench --critical-path: loaded into the coordinator (and, through execArgv, into each of its
// workers) with `node --import`. It stamps every socket write and read the process makes, by
// kind, on the clock saga-bench measures its windows with (CLOCK_MONOTONIC, µs), and writes them to
// $DTX_BENCH_CRITICAL_PATH/<pid>.json when the process exits. At C = 1 one saga's events follow
// each other, so the gaps between them split its latency into the coordinator's own work and the
// round trips it waits for (bench/lib/critical-path.ts; bench/README.md, "Where C = 1 latency goes").
//
// Kinds: req (an HTTP request starts: diagnostics_channel "http.server.request.start", since the
// server's parser reads accepted sockets below the stream), res (a write to an accepted socket: the
// answer), store> / store< (a write to / read from the store server: the ports in
// $DTX_BENCH_STORE_PORTS), call> / call< (the same on any other socket the coordinator opened: a
// branch call). Writes are stamped around Socket#_writeGeneric, Node's internal funnel for every
// write and writev on a socket (stable from Node 18 to 22): the time the bytes leave, not the time
// a corked write was queued. A diagnostic for benchmarks only; nothing in the server depends on it.
import diagnostics from "node:diagnostics_channel";
import net from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

const dir = process.env.DTX_BENCH_CRITICAL_PATH;
const storePorts = new Set((process.env.DTX_BENCH_STORE_PORTS ?? "").split(",").filter(Boolean).map(Number));
// Typed arrays outside the V8 heap, so the stamps do not weigh on the coordinator's heap limit.
const MAX_EVENTS = 2_000_000;
const KINDS = ["req", "res", "store<", "store>", "call<", "call>"];
const kinds = new Uint8Array(MAX_EVENTS);
const times = new Float64Array(MAX_EVENTS);
let count = 0;

function stamp(kind) {
  if (count >= MAX_EVENTS) return;
  times[count] = Number(process.hrtime.bigint() / 1000n);
  kinds[count++] = kind;
}

/** The kind of a write to or read from `socket`; undefined for reads of accepted sockets (see req). */
function kindOf(socket, inbound) {
  if (socket.server) return inbound ? undefined : 1;
  return (storePorts.has(socket.remotePort) ? 2 : 4) + (inbound ? 0 : 1);
}

if (dir) {
  const writeGeneric = net.Socket.prototype._writeGeneric;
  if (typeof writeGeneric !== "function") throw new Error("critical-path hook: this Node has no Socket#_writeGeneric");
  net.Socket.prototype._writeGeneric = function (writev, data, encoding, cb) {
    stamp(kindOf(this, false));
    return writeGeneric.call(this, writev, data, encoding, cb);
  };
  const push = net.Socket.prototype.push;
  net.Socket.prototype.push = function (chunk, encoding) {
    const kind = chunk ? kindOf(this, true) : undefined;
    if (kind !== undefined) stamp(kind);
    return push.call(this, chunk, encoding);
  };
  diagnostics.subscribe("http.server.request.start", () => stamp(0));
  process.once("exit", () => {
    mkdirSync(dir, { recursive: true });
    const out = { kinds: Array.from(kinds.subarray(0, count), (k) => KINDS[k]), timesUs: Array.from(times.subarray(0, count)), truncated: count >= MAX_EVENTS };
    writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify(out));
  });
}
