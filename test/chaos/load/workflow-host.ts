import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { WorkflowRegistry } from "../../../sdk/src/index.ts";
import { DtxError, nodeHandler } from "../../../sdk/src/index.ts";

/**
 * The generator's HTTP endpoint through which coordinators resume workflows that stopped
 * unfinished (the SDK's `handleResume`): one path per registry, `/workflow/<name>`. It must
 * outlive the load itself: during quiesce a coordinator may still resume a workflow.
 */
export class WorkflowHost {
  readonly #registries = new Map<string, WorkflowRegistry>();
  readonly #server = createServer(
    nodeHandler(async (req) => {
      const registry = this.#registries.get(req.path);
      if (!registry) throw new DtxError("NOT_FOUND", `no workflow registry at ${req.path}`);
      await registry.handleResume(req.query, req.body);
    }),
  );
  #base = "";

  /** Listens on a free loopback port. The server does not keep the process alive by itself. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, "127.0.0.1", () => resolve());
    });
    this.#server.unref();
    this.#base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The callback URL of the registry called `name` (add it with {@link add} once built). */
  callbackUrl(name: string): string {
    if (!this.#base) throw new Error("WorkflowHost.start() first");
    return `${this.#base}/workflow/${name}`;
  }

  add(name: string, registry: WorkflowRegistry): void {
    this.#registries.set(`/workflow/${name}`, registry);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
