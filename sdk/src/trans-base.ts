import type { DtxClient } from "./client.ts";
import { invalidArgument } from "./errors.ts";
import { newGid } from "./gid.ts";
import type { GlobalRequest } from "./transport/transport.ts";
import type { TransOptions, TransType } from "./types.ts";

/** What every global transaction builder shares: the client, the gid and the options. */
export abstract class TransBase {
  /** The global transaction id. */
  readonly gid: string;
  /** The transaction type. */
  abstract readonly transType: TransType;
  /** The options sent with the transaction; change them with {@link setOptions}. */
  protected options: TransOptions;

  /**
   * @param client the coordinator connection
   * @param gid the global id (default: a new local {@link newGid})
   * @param options transaction options
   */
  constructor(readonly client: DtxClient, gid?: string, options: TransOptions = {}) {
    if (gid !== undefined && (typeof gid !== "string" || gid === "")) throw invalidArgument("gid must be a non-empty string");
    this.gid = gid ?? newGid();
    this.options = { ...options };
  }

  /** Merges `options` into the transaction's options. Returns `this` for chaining. */
  setOptions(options: TransOptions): this {
    this.options = { ...this.options, ...options };
    return this;
  }

  /** A copy of the current options. */
  getOptions(): TransOptions {
    return { ...this.options, ...(this.options.branchHeaders ? { branchHeaders: { ...this.options.branchHeaders } } : {}) };
  }

  /** The request for the coordinator, with this transaction's gid, type and options. */
  protected request(extra: Omit<GlobalRequest, "gid" | "transType" | "options"> = {}): GlobalRequest {
    return { gid: this.gid, transType: this.transType, options: this.options, ...extra };
  }
}
