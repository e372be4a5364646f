/**
 * A TCP proxy in front of a real server, for outage tests: `pass` forwards both ways;
 * `blackHole()` keeps every connection open but swallows what either side sends, and a new
 * connection is accepted and then never answered (a network that silently drops packets);
 * `heal()` passes again; `failover()` passes for new connections but leaves the existing ones
 * black-holed for good (a failover that leaves old connections open to nowhere).
 *
 * On heal, the connections that lost bytes in the black hole are cut (both sides destroyed):
 * TCP either delivers every byte or ends the connection, so a connection with a hole in its
 * stream cannot go on; a real network partition ends the same way once the peers' retransmission
 * gives up. Connections that were idle through the outage go on untouched.
 */
import net from "node:net";

export type ProxyMode = "pass" | "black-hole";

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Bytes of this connection were swallowed: it is cut on heal. */
  lost: boolean;
  /** Black-holed for good (failover()): never forwards again, never cut until close(). */
  stranded: boolean;
}

export class TcpProxy {
  private mode: ProxyMode = "pass";
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: net.Server,
    /** The port the proxy listens on (127.0.0.1). */
    readonly port: number,
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards to `target` (`host:port`). */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    // Half-open allowed: a FIN is forwarded (pass) or swallowed (black hole) like any other byte,
    // not answered by the proxy itself.
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (typeof address !== "object" || address === null) throw new Error("the proxy has no port");
    const proxy = new TcpProxy(server, address.port);
    server.on("connection", (client) => proxy.accept(client, target));
    return proxy;
  }

  /** `url` with its host and port replaced by the proxy's. */
  static through(url: string, proxy: TcpProxy): string {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(proxy.port);
    return u.toString();
  }

  get current(): ProxyMode {
    return this.mode;
  }

  /** Open connections (for diagnostics). */
  get connections(): number {
    return this.pairs.size;
  }

  blackHole(): void {
    this.mode = "black-hole";
  }

  heal(): void {
    this.mode = "pass";
    for (const pair of [...this.pairs]) {
      if (pair.lost && !pair.stranded) this.cut(pair);
    }
  }

  /**
   * New connections pass from now on; every connection open now swallows all it gets from
   * either side and is never cut, as if its peer had vanished without a word.
   */
  failover(): void {
    for (const pair of this.pairs) pair.stranded = true;
    this.mode = "pass";
  }

  async close(): Promise<void> {
    for (const pair of [...this.pairs]) this.cut(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket, target: { host: string; port: number }): void {
    const pair: Pair = { client, upstream: undefined, lost: false, stranded: false };
    this.pairs.add(pair);
    client.on("error", () => this.cut(pair));
    client.on("close", () => this.cut(pair));
    if (this.mode === "black-hole") {
      // Accepted, never connected upstream: whatever the client sends is swallowed.
      pair.lost = true;
      client.on("data", () => undefined);
      client.on("end", () => undefined);
      return;
    }
    const upstream = net.connect({ port: target.port, host: target.host, allowHalfOpen: true });
    pair.upstream = upstream;
    upstream.on("error", () => this.cut(pair));
    upstream.on("close", () => this.cut(pair));
    client.on("data", (chunk: Buffer) => this.forward(pair, upstream, chunk));
    upstream.on("data", (chunk: Buffer) => this.forward(pair, client, chunk));
    client.on("end", () => this.forwardEnd(pair, upstream));
    upstream.on("end", () => this.forwardEnd(pair, client));
  }

  /** A FIN from one side: passed on, unless the connection is black-holed (then it is lost too). */
  private forwardEnd(pair: Pair, to: net.Socket): void {
    if (this.mode === "black-hole" || pair.stranded) {
      pair.lost = true;
      return;
    }
    to.end();
  }

  private forward(pair: Pair, to: net.Socket, chunk: Buffer): void {
    if (this.mode === "black-hole" || pair.stranded) {
      pair.lost = true;
      return;
    }
    to.write(chunk);
  }

  private cut(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
