import type { ClientEvent, DatabaseState, FinalTrans, Intent, Kind, NemesisEvent } from "../contracts.ts";
import type { CallSpan } from "./calls.ts";
import { callSpans } from "./calls.ts";
import type { CheckData, CheckInput, StatusChange, Tolerances } from "./types.ts";
import { DEFAULT_TOLERANCES } from "./types.ts";

export const TERMINAL: ReadonlySet<string> = new Set(["succeed", "failed"]);

type Effect = DatabaseState["effects"][number];
type Barrier = DatabaseState["barriers"][number];

/** The run's data indexed by gid, built once and shared by every goal's rule. */
export interface RunIndex {
  input: CheckInput;
  tolerances: Tolerances;
  intents: Map<string, Intent>;
  /** Every client event of a gid, in time order. */
  history: Map<string, ClientEvent[]>;
  /** The invoke of each history id (a completion names only the id). */
  invokes: Map<number, Extract<ClientEvent, { type: "invoke" }>>;
  final: Map<string, FinalTrans>;
  calls: Map<string, CallSpan[]>;
  effects: Map<string, Effect[]>;
  barriers: Map<string, Barrier[]>;
  nemesis: NemesisEvent[];
  statusChanges?: StatusChange[];
  /** Every gid the run knows of: intents, history, final state. */
  gids: string[];
}

function groupBy<T>(items: Iterable<T>, key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

export function buildIndex(input: CheckInput, data: CheckData): RunIndex {
  const history = groupBy([...data.history].sort((a, b) => a.at - b.at), (e) => e.gid);
  const invokes = new Map<number, Extract<ClientEvent, { type: "invoke" }>>();
  for (const e of data.history) if (e.type === "invoke") invokes.set(e.id, e);
  const intents = new Map(data.intents.map((i) => [i.gid, i]));
  const final = new Map(input.final.map((f) => [f.gid, f]));
  const gids = [...new Set([...intents.keys(), ...history.keys(), ...final.keys()])].sort();
  const index: RunIndex = {
    input,
    tolerances: { ...DEFAULT_TOLERANCES, ...data.tolerances },
    intents,
    history,
    invokes,
    final,
    calls: groupBy(callSpans(data.calls, data.nemesis), (c) => c.gid),
    effects: groupBy(input.db.effects, (e) => e.gid),
    barriers: groupBy(input.db.barriers, (b) => b.gid),
    nemesis: [...data.nemesis].sort((a, b) => a.at - b.at),
    gids,
  };
  if (data.statusChanges) index.statusChanges = data.statusChanges;
  return index;
}

/** The kind of a gid: its intent's, else the coordinator's trans_type. */
export function kindOf(index: RunIndex, gid: string): Kind | undefined {
  const intent = index.intents.get(gid);
  if (intent) return intent.kind;
  const type = index.final.get(gid)?.transType;
  return type === "saga" || type === "tcc" || type === "msg" || type === "xa" || type === "workflow" ? type : undefined;
}

/** The final status of a gid, or undefined when no coordinator knows it. */
export function finalStatus(index: RunIndex, gid: string): string | undefined {
  return index.final.get(gid)?.status;
}

const AROUND_LIMIT = 12;
const NEMESIS_WINDOW_MS = 10_000;

/**
 * The lines a reader needs next to a violation: the gid's history and calls (the last ones up to
 * `at` and a few after), and the nemesis events within 10 s of `at` (or of the gid's first and
 * last event when no instant is given).
 */
export function eventsAround(index: RunIndex, gid: string | undefined, at?: number): unknown[] {
  const out: unknown[] = [];
  if (gid !== undefined) {
    out.push(...pick(index.history.get(gid) ?? [], (e) => e.at, at));
    out.push(...pick(index.calls.get(gid) ?? [], (c) => c.start, at).map((c) => ({ call: c })));
  }
  const times = out.map((e) => ("at" in (e as object) ? (e as { at: number }).at : (e as { call: CallSpan }).call.start));
  const from = at ?? (times.length > 0 ? Math.min(...times) : -Infinity);
  const to = at ?? (times.length > 0 ? Math.max(...times) : Infinity);
  const faults = index.nemesis.filter((n) => n.at >= from - NEMESIS_WINDOW_MS && n.at <= to + NEMESIS_WINDOW_MS);
  out.push(...faults.slice(0, AROUND_LIMIT).map((n) => ({ nemesis: n })));
  return out;
}

function pick<T>(items: T[], time: (item: T) => number, at: number | undefined): T[] {
  if (items.length <= AROUND_LIMIT) return items;
  if (at === undefined) return [...items.slice(0, AROUND_LIMIT / 2), ...items.slice(-AROUND_LIMIT / 2)];
  const pivot = items.findIndex((i) => time(i) > at);
  const cut = pivot === -1 ? items.length : pivot;
  return items.slice(Math.max(0, cut - AROUND_LIMIT + 4), cut + 4);
}

/** Whether a nemesis fault was active at some instant in [from, to] (a fault that never ended lasts forever). */
export function faultOverlaps(index: RunIndex, from: number, to: number, targetPrefix?: string): boolean {
  const open = new Map<string, number>();
  const matches = (n: NemesisEvent): boolean => targetPrefix === undefined || n.target.startsWith(targetPrefix);
  for (const n of index.nemesis) {
    if (!matches(n)) continue;
    const key = `${n.fault}@${n.target}`;
    if (n.phase === "start") {
      open.set(key, n.at);
    } else {
      const began = open.get(key) ?? n.at;
      open.delete(key);
      if (began <= to && n.at >= from) return true;
    }
  }
  for (const began of open.values()) if (began <= to) return true;
  return false;
}

/**
 * Whether a coordinator came back from a pause (SIGCONT) at most `withinMs` before `at`: a call
 * its pass had started just before the SIGSTOP reaches the participant only then, past the
 * deadline and lease it was started under (docs/fencing.md, "Limits").
 */
export function resumedShortlyBefore(index: RunIndex, at: number, withinMs: number): boolean {
  return index.nemesis.some((n) => n.fault === "coordinator-pause" && n.phase === "end" && n.at <= at && at - n.at <= withinMs);
}
