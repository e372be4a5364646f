import { branchTimeoutMs, requestBranch } from "./branch-call.ts";
import type { DtxClient } from "./client.ts";
import { invalidArgument, isFailure } from "./errors.ts";
import type { MsgBarrierDb } from "./msg-db.ts";
import { msgBarrierInfo } from "./msg-db.ts";
import { payloadBytes } from "./payload.ts";
import { TransBase } from "./trans-base.ts";
import type { Payload, TransOptions } from "./types.ts";

/** The prefix of a msg action that fans out to a topic's subscribers. */
export const TOPIC_PREFIX = "topic://";

/**
 * A two-phase message (docs/protocol.md#msg): once submitted, the coordinator calls every action until
 * it succeeds; it never rolls back. With {@link prepare} first, the coordinator calls the
 * check-back URL (`queryPrepared`) of a msg left prepared to learn whether the local transaction
 * committed. {@link doAndSubmit} is the usual pattern.
 *
 * ```ts
 * await new Msg(client, gid)
 *   .add(`${busi}/TransIn`, { amount: 30 })
 *   .doAndSubmit(`${busi}/QueryPrepared`, async () => { await debitLocally() });
 * ```
 */
export class Msg extends TransBase {
  /** Always `msg`. */
  readonly transType = "msg" as const;
  readonly #steps: Record<string, string>[] = [];
  readonly #payloads: Uint8Array[] = [];
  #delay = 0;
  #concurrent = false;
  #queryPrepared = "";

  /**
   * @param client the coordinator connection
   * @param gid the global id (default: a new local gid)
   * @param options transaction options
   */
  constructor(client: DtxClient, gid?: string, options: TransOptions = {}) {
    super(client, gid, options);
  }

  /** Adds an action: `http(s)://...`, a gRPC target, or `topic://<name>` (see {@link addTopic}). */
  add(action: string, payload?: Payload): this {
    this.#steps.push({ action });
    this.#payloads.push(payloadBytes(payload));
    return this;
  }

  /** Adds an action delivered to every subscriber of `topic` (`topic://<topic>`). */
  addTopic(topic: string, payload?: Payload): this {
    return this.add(`${TOPIC_PREFIX}${topic}`, payload);
  }

  /** Delays the first delivery by `seconds` after the msg was created (sent as `custom_data` `{"delay":N}` on submit). */
  setDelay(seconds: number): this {
    if (!Number.isFinite(seconds) || seconds < 0) throw invalidArgument(`delay must be a non-negative number of seconds; got ${seconds}`);
    this.#delay = seconds;
    return this;
  }

  /** Calls all actions in parallel instead of one after another (HTTP only). */
  enableConcurrent(): this {
    this.#concurrent = true;
    return this;
  }

  /**
   * Registers the msg as prepared, with its check-back URL. The coordinator calls `queryPrepared`
   * (GET with gid, trans_type=msg, branch_id=00, op=msg) if the msg is still prepared after its
   * timeout: SUCCESS submits it, FAILURE fails it.
   */
  async prepare(queryPrepared?: string): Promise<void> {
    if (queryPrepared) this.#queryPrepared = queryPrepared;
    await this.client.transport.prepare(this.#request(false));
  }

  /** Submits the msg (after {@link prepare}, or directly). */
  async submit(): Promise<void> {
    await this.client.transport.submit(this.#request(true));
  }

  /** Aborts a prepared msg: it becomes failed and no action is called. */
  async abort(): Promise<void> {
    await this.client.transport.abort(this.#request(false));
  }

  /**
   * dtm's DoAndSubmit: prepares the msg, runs `busi` (the local transaction), then
   * - `busi` succeeded: submits;
   * - `busi` threw FAILURE: aborts, and rethrows;
   * - `busi` threw anything else: calls the check-back URL itself to learn whether the local
   *   transaction committed: SUCCESS submits, FAILURE aborts, anything else leaves the msg
   *   prepared for the coordinator's own check-back; then rethrows `busi`'s error.
   */
  async doAndSubmit(queryPrepared: string, busi: () => Promise<void>): Promise<void> {
    if (!queryPrepared) throw invalidArgument("doAndSubmit needs the check-back URL (queryPrepared)");
    await this.prepare(queryPrepared);
    let busiError: unknown;
    let failed = false;
    try {
      await busi();
    } catch (err) {
      busiError = err;
      failed = true;
    }
    let checkError: unknown;
    let checkFailed = false;
    if (failed && !isFailure(busiError)) {
      try {
        await this.#checkBack(queryPrepared);
      } catch (err) {
        checkError = err;
        checkFailed = true;
      }
    }
    if ((failed && isFailure(busiError)) || (checkFailed && isFailure(checkError))) {
      await this.abort().catch(() => undefined);
    } else if (!checkFailed) {
      try {
        await this.submit();
      } catch (err) {
        if (!failed) throw err;
      }
    }
    if (failed) throw busiError;
  }

  /**
   * {@link doAndSubmit} with the local transaction guarded by the msg barrier: `db` runs `busi`
   * inside a transaction that first inserts the barrier row, so the check-back handler (the
   * barrier's query-prepared) can tell a committed local transaction from a rolled-back one.
   */
  doAndSubmitDB<Tx>(queryPrepared: string, db: MsgBarrierDb<Tx>, busi: (tx: Tx) => Promise<void>): Promise<void> {
    return this.doAndSubmit(queryPrepared, () => db.callMsgBarrier(msgBarrierInfo(this.gid), busi));
  }

  async #checkBack(queryPrepared: string): Promise<void> {
    await requestBranch(this.client, {
      url: queryPrepared,
      method: "GET",
      params: { dtm: this.client.server, gid: this.gid, branch_id: "00", trans_type: "msg", op: "msg" },
      headers: this.options.branchHeaders ?? {},
      timeoutMs: branchTimeoutMs(this.client, this.options.requestTimeout),
    });
  }

  #request(withCustomData: boolean) {
    const customData = withCustomData && this.#delay > 0 ? JSON.stringify({ delay: this.#delay }) : undefined;
    return this.request({
      steps: this.#steps,
      payloads: this.#payloads,
      concurrent: this.#concurrent,
      ...(this.#queryPrepared ? { queryPrepared: this.#queryPrepared } : {}),
      ...(customData !== undefined ? { customData } : {}),
    });
  }
}
