import type { Server } from "node:http";

/**
 * Starts a bench helper's HTTP server on 127.0.0.1 the way the coordinator under test expects:
 * keep-alive longer than any run (never the side that closes a connection mid-run), no request
 * timeout; prints one JSON line `{msg, port, pid}` on stdout once listening, and closes on
 * SIGTERM / SIGINT (running `onStop` first). Returns that stop function, for other exits.
 */
export function serveForBench(server: Server, port: number, msg: string, onStop: () => void = () => undefined): () => void {
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.requestTimeout = 0;
  server.listen(port, "127.0.0.1", () => {
    const address = server.address();
    const bound = typeof address === "object" && address ? address.port : port;
    process.stdout.write(`${JSON.stringify({ msg, port: bound, pid: process.pid })}\n`);
  });
  const stop = (): void => {
    onStop();
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return stop;
}
