import type { DtxClient } from "./client.ts";
import { invalidArgument } from "./errors.ts";
import { payloadBytes } from "./payload.ts";
import { TransBase } from "./trans-base.ts";
import type { Payload, TransOptions } from "./types.ts";

/**
 * A saga (docs/protocol.md#saga): steps of `action` + `compensate`. The coordinator runs the actions in
 * order (or by {@link addBranchOrder} dependencies when {@link enableConcurrent}); when an action
 * answers FAILURE, it runs the compensations of the started steps in reverse.
 *
 * ```ts
 * await new Saga(client, gid)
 *   .add(`${busi}/TransOut`, `${busi}/TransOutRevert`, { amount: 30 })
 *   .add(`${busi}/TransIn`, `${busi}/TransInRevert`, { amount: 30 })
 *   .submit();
 * ```
 */
export class Saga extends TransBase {
  /** Always `saga`. */
  readonly transType = "saga" as const;
  readonly #steps: Record<string, string>[] = [];
  readonly #payloads: Uint8Array[] = [];
  readonly #orders = new Map<number, number[]>();
  #concurrent = false;

  /**
   * @param client the coordinator connection
   * @param gid the global id (default: a new local gid)
   * @param options transaction options
   */
  constructor(client: DtxClient, gid?: string, options: TransOptions = {}) {
    super(client, gid, options);
  }

  /**
   * Adds a step. URLs are `http(s)://...` or gRPC `host:port/package.Service/Method`; "" is a
   * no-op. The payload is sent to both (a string as is, bytes raw, anything else as JSON).
   */
  add(action: string, compensate: string, payload?: Payload): this {
    this.#steps.push({ action, compensate });
    this.#payloads.push(payloadBytes(payload));
    return this;
  }

  /** Makes step `step` (0-based) run only after the actions of `preSteps` succeeded (concurrent sagas). */
  addBranchOrder(step: number, preSteps: number[]): this {
    this.#orders.set(step, [...preSteps]);
    return this;
  }

  /** Runs independent steps concurrently, respecting {@link addBranchOrder}. */
  enableConcurrent(): this {
    this.#concurrent = true;
    return this;
  }

  /** Number of steps added so far. */
  get stepCount(): number {
    return this.#steps.length;
  }

  /**
   * Submits the saga. With `waitResult` it resolves only when the saga succeeded in its first
   * pass, throws {@link DtxFailure} only when it rolled back (ended `failed`), and throws
   * {@link DtxOngoing} while it is unfinished (a branch is being retried, compensation is still
   * running): the saga may then still succeed, so do not report it as failed.
   */
  async submit(): Promise<void> {
    this.#checkOrders();
    const customData = this.#concurrent ? this.#customData() : undefined;
    await this.client.transport.submit(
      this.request({
        steps: this.#steps,
        payloads: this.#payloads,
        concurrent: this.#concurrent,
        ...(customData !== undefined ? { customData } : {}),
      }),
    );
  }

  /** `{"concurrent":true,"orders":{"1":[0]}}`, as Go's `AddConcurrentContext` writes it. */
  #customData(): string {
    const orders: Record<string, number[]> = {};
    for (const step of [...this.#orders.keys()].sort((a, b) => a - b)) orders[String(step)] = this.#orders.get(step) ?? [];
    return JSON.stringify({ concurrent: true, orders });
  }

  #checkOrders(): void {
    const n = this.#steps.length;
    const ok = (i: number): boolean => Number.isInteger(i) && i >= 0 && i < n;
    for (const [step, pre] of this.#orders) {
      if (!ok(step) || !pre.every(ok)) throw invalidArgument(`addBranchOrder(${step}, [${pre.join(", ")}]): steps are 0-based indexes below ${n}`);
    }
  }
}
