/** Which calls a rule or a wait applies to: every field that is set must match. */
export interface CallMatch {
  name?: string;
  gid?: string;
  branchId?: string;
  op?: string;
}

type Identity = { name: string; gid: string; branchId: string; op: string };

/** Whether `call` satisfies every field set in `match`. */
export function matches(call: Identity, match: CallMatch): boolean {
  return (
    (match.name === undefined || match.name === call.name) &&
    (match.gid === undefined || match.gid === call.gid) &&
    (match.branchId === undefined || match.branchId === call.branchId) &&
    (match.op === undefined || match.op === call.op)
  );
}

interface Rule<O> {
  match: CallMatch;
  /** Outcomes still to hand out, one per call; `undefined` for a sticky rule. */
  queue: O[] | undefined;
  sticky: O | undefined;
}

interface Waiter<C> {
  match: CallMatch;
  count: number;
  resolve: (calls: C[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The programmable half of a fake participant, shared by the HTTP and gRPC ones: outcome rules,
 * the record of calls, waits for calls and call listeners. The transport only turns the chosen
 * outcome into its own answer.
 *
 * Outcome precedence: rules are scanned from the most recently added to the oldest, and the first
 * that matches the call and still has an outcome to give wins (`program` rules give one queued
 * outcome per call until used up; `programAlways` rules never run out); otherwise the default.
 */
export class CallBook<O, C extends Identity & { seq: number; outcome: O }> {
  #rules: Rule<O>[] = [];
  #default: O;
  #calls: C[] = [];
  #seq = 0;
  #waiters = new Set<Waiter<C>>();
  #listeners = new Set<(call: C) => void>();

  constructor(
    private readonly initialDefault: O,
    private readonly label: string,
    private readonly describe: (call: C) => string,
  ) {
    this.#default = initialDefault;
  }

  program(match: CallMatch, outcomes: O[]): void {
    this.#rules.push({ match: { ...match }, queue: [...outcomes], sticky: undefined });
  }

  programAlways(match: CallMatch, outcome: O): void {
    this.#rules.push({ match: { ...match }, queue: undefined, sticky: outcome });
  }

  setDefault(outcome: O): void {
    this.#default = outcome;
  }

  reset(): void {
    this.#rules = [];
    this.#calls = [];
    this.#seq = 0;
    this.#default = this.initialDefault;
  }

  calls(match: CallMatch = {}): C[] {
    return this.#calls.filter((c) => matches(c, match));
  }

  waitForCalls(match: CallMatch, count: number, timeoutMs: number): Promise<C[]> {
    const now = this.calls(match);
    if (now.length >= count) return Promise.resolve(now);
    return new Promise<C[]>((resolve, reject) => {
      const waiter: Waiter<C> = {
        match,
        count,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(this.#waitError(waiter, `timed out after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  onCall(listener: (call: C) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Rejects every pending wait (the participant is closing). */
  rejectWaits(why: string): void {
    for (const w of [...this.#waiters]) {
      clearTimeout(w.timer);
      this.#waiters.delete(w);
      w.reject(this.#waitError(w, why));
    }
  }

  /** Records a call with its chosen outcome, then tells listeners and waiters. */
  record(call: Omit<C, "seq" | "outcome">): C {
    const recorded = { ...call, seq: ++this.#seq, outcome: this.#choose(call) } as C;
    this.#calls.push(recorded);
    for (const listener of [...this.#listeners]) {
      try {
        listener(recorded);
      } catch (err) {
        // A listener's error must not change the answer; rethrown so the test runner reports it.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    for (const w of [...this.#waiters]) {
      const got = this.calls(w.match);
      if (got.length >= w.count) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve(got);
      }
    }
    return recorded;
  }

  #choose(call: Identity): O {
    for (let i = this.#rules.length - 1; i >= 0; i--) {
      const rule = this.#rules[i];
      if (rule === undefined || !matches(call, rule.match)) continue;
      if (rule.sticky !== undefined) return rule.sticky;
      const next = rule.queue?.shift();
      if (next !== undefined) {
        if (rule.queue?.length === 0) this.#rules.splice(i, 1);
        return next;
      }
    }
    return this.#default;
  }

  #waitError(w: Waiter<C>, why: string): Error {
    const seen = this.#calls.map(this.describe);
    return new Error(
      `${this.label}.waitForCalls: ${why} waiting for ${w.count} call(s) matching ${JSON.stringify(w.match)}; ` +
        `${this.calls(w.match).length} matched, ${seen.length} seen:` +
        (seen.length > 0 ? `\n  ${seen.join("\n  ")}` : " (none)"),
    );
  }
}
