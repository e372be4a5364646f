import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { ClientEvent, ClientOp, Intent, Via } from "../contracts.ts";

/** What a completion says; the journal adds the id, time and gid. */
export type Completion = { type: "ok"; status?: string } | { type: "fail" | "info"; error: string };

/** One request being recorded: its invoke is written; {@link complete} writes its one completion. */
export interface OpenRequest {
  readonly id: number;
  complete(completion: Completion): void;
}

/**
 * The load generator's two JSON Lines files: intents and the client history (contracts Intent and
 * ClientEvent). Lines are written synchronously through one O_APPEND descriptor each, so an
 * intent is on disk before its first invoke, an invoke before its completion, and a crash of the
 * orchestrator leaves whole lines only (an invoke without completion counts as `info`).
 */
export class Journal {
  readonly #intents: number;
  readonly #history: number;
  #closed = false;
  #nextId = 1;
  #invoked = 0;
  #open = 0;
  readonly #gidsInvoked = new Set<string>();
  readonly #gidsAcknowledged = new Set<string>();
  readonly #gidsStored = new Set<string>();

  constructor(paths: { intents: string; history: string }) {
    mkdirSync(dirname(paths.intents), { recursive: true });
    mkdirSync(dirname(paths.history), { recursive: true });
    this.#intents = openSync(paths.intents, "a");
    this.#history = openSync(paths.history, "a");
  }

  /** Requests invoked so far. */
  get invoked(): number {
    return this.#invoked;
  }

  /** Gids with at least one request invoked. */
  get gidsInvoked(): number {
    return this.#gidsInvoked.size;
  }

  /** Gids whose submit the coordinator acknowledged (an `ok` of a submit), as the checker counts them. */
  get gidsAcknowledged(): number {
    return this.#gidsAcknowledged.size;
  }

  /** Gids the coordinator confirmed storing (an `ok` of any request but a query): each must end terminal. */
  get gidsStored(): number {
    return this.#gidsStored.size;
  }

  /** Requests invoked and not yet completed. */
  get pending(): number {
    return this.#open;
  }

  intent(intent: Intent): void {
    if (this.#closed) throw new Error("the journal is closed");
    writeSync(this.#intents, `${JSON.stringify(intent)}\n`);
  }

  /** Writes an invoke and returns the handle that writes its completion (only the first call counts). */
  invoke(gid: string, op: ClientOp, via: Via, coordinator: number, attempt: number): OpenRequest {
    const id = this.#nextId++;
    this.#write({ type: "invoke", id, at: Date.now(), gid, op, via, coordinator, attempt });
    this.#invoked++;
    this.#open++;
    this.#gidsInvoked.add(gid);
    let done = false;
    return {
      id,
      complete: (c) => {
        if (done) return;
        done = true;
        this.#open--;
        const at = Date.now();
        if (c.type === "ok" && op !== "query") this.#gidsStored.add(gid);
        if (c.type === "ok" && op === "submit") this.#gidsAcknowledged.add(gid);
        if (c.type === "ok") this.#write({ type: "ok", id, at, gid, ...(c.status !== undefined ? { status: c.status } : {}) });
        else this.#write({ type: c.type, id, at, gid, error: c.error });
      },
    };
  }

  /** Closes the files; a request still running after it (a straggler of a stopped run) is not recorded. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#intents);
    closeSync(this.#history);
  }

  #write(event: ClientEvent): void {
    if (!this.#closed) writeSync(this.#history, `${JSON.stringify(event)}\n`);
  }
}
