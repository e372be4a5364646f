/**
 * A no-op saga participant for the benchmark: answers every request with
 * 200 {"dtm_result":"SUCCESS"} after draining the body. Plain node:http (no framework) so that it
 * costs as little CPU as possible and does not distort the coordinator's figures.
 *
 * Usage: node --import tsx bench/noop-participant.ts [port]   (port 0 / omitted = any free port)
 * Prints one JSON line {"msg":"participant listening","port":N} on stdout when ready.
 * GET /__stats answers {"calls":N}: the number of branch calls served so far (not counting /__stats).
 */
import { createServer } from "node:http";
import { serveForBench } from "./lib/serve.ts";

const SUCCESS = Buffer.from('{"dtm_result":"SUCCESS"}');
const port = Number(process.argv[2] ?? process.env["PARTICIPANT_PORT"] ?? 0);
let calls = 0;

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/__stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ calls }));
    return;
  }
  calls++;
  // Drain the body without buffering it; answer when the request is complete.
  req.on("data", noop);
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": SUCCESS.length });
    res.end(SUCCESS);
  });
});

function noop(): void {}

const stop = serveForBench(server, port, "participant listening");
// If the bench driver dies without killing us, stdin (a pipe from the driver) closes: exit too.
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
