import { createReadStream } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { basename, join } from "node:path";
import type { ClientEvent, DatabaseState, FinalTrans, Intent, NemesisEvent, ParticipantCall, RunInfo } from "../contracts.ts";
import { runPaths } from "../contracts.ts";
import type { CheckData, CheckInput, StatusChange } from "./types.ts";

export interface JsonlLines<T> {
  items: T[];
  /** Lines that were not a JSON object (a process killed mid-write tears its last line). */
  skipped: number;
}

async function readText(path: string, optional: boolean): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (optional && (error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  }
}

/**
 * Reads a JSON Lines file. A line that does not parse to an object is skipped and counted, not
 * fatal: a process killed by SIGKILL mid-append leaves a torn line (usually the last; with several
 * writers on one O_APPEND file, possibly one in the middle). `accept` filters out objects of the
 * wrong shape (counted as skipped too). A missing file is an error unless `optional`.
 */
export async function readJsonl<T>(path: string, accept: (o: Record<string, unknown>) => boolean, optional = false): Promise<JsonlLines<T>> {
  const text = await readText(path, optional);
  const items: T[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) && accept(parsed as Record<string, unknown>)) items.push(parsed as T);
    else skipped++;
  }
  return { items, skipped };
}

const hasGid = (o: Record<string, unknown>): boolean => typeof o["gid"] === "string";
const isHistory = (o: Record<string, unknown>): boolean => hasGid(o) && typeof o["id"] === "number" && typeof o["at"] === "number" && typeof o["type"] === "string";
const isIntent = (o: Record<string, unknown>): boolean => hasGid(o) && typeof o["kind"] === "string" && Array.isArray(o["transfers"]);
const isCall = (o: Record<string, unknown>): boolean => typeof o["callId"] === "string" && typeof o["at"] === "number" && (o["type"] === "end" || hasGid(o));
const isNemesis = (o: Record<string, unknown>): boolean => typeof o["at"] === "number" && typeof o["fault"] === "string" && typeof o["target"] === "string";

/**
 * One line of a coordinator's pino log: the StatusChange when it is a "status changed" line (see
 * server/src/service/status-log.ts), "torn" when it looks like one but does not parse, else undefined.
 */
export function parseStatusLine(line: string, coordinator: number): StatusChange | "torn" | undefined {
  if (!line.includes('"status changed"')) return undefined;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return "torn";
  }
  const at = typeof o["time"] === "number" ? o["time"] : Date.parse(String(o["time"]));
  if (o["msg"] !== "status changed" || typeof o["gid"] !== "string" || typeof o["to"] !== "string" || Number.isNaN(at)) return "torn";
  const change: StatusChange = { at, coordinator, gid: o["gid"], from: typeof o["from"] === "string" ? o["from"] : null, to: o["to"] };
  if (typeof o["transType"] === "string") change.transType = o["transType"];
  if (typeof o["cause"] === "string") change.cause = o["cause"];
  return change;
}

/**
 * Every `coordinator-<i>.log` in the directory, parsed line by line (streamed: a debug-level log
 * of a full run is large); undefined when there is none.
 */
export async function readStatusChanges(logDir: string): Promise<{ changes: StatusChange[]; skipped: number } | undefined> {
  const names = (await readdir(logDir)).filter((n) => /^coordinator-\d+\.log$/.test(n)).sort();
  if (names.length === 0) return undefined;
  const changes: StatusChange[] = [];
  let skipped = 0;
  for (const name of names) {
    const coordinator = Number(/\d+/.exec(basename(name))![0]);
    for await (const line of createInterface({ input: createReadStream(join(logDir, name)), crlfDelay: Infinity })) {
      const parsed = parseStatusLine(line, coordinator);
      if (parsed === "torn") skipped++;
      else if (parsed) changes.push(parsed);
    }
  }
  return { changes, skipped };
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, "utf8")) as T;
}

/**
 * Everything a finished run left in its directory, ready for check(): the JSONL files, final.json,
 * db.json, run.json (contracts RunInfo) and the coordinators' logs.
 */
export async function readRun(dir: string): Promise<CheckInput & CheckData> {
  const paths = runPaths(dir);
  const [history, intents, calls, nemesis] = await Promise.all([
    readJsonl<ClientEvent>(paths.history, isHistory),
    readJsonl<Intent>(paths.intents, isIntent),
    readJsonl<ParticipantCall>(paths.calls, isCall, true),
    readJsonl<NemesisEvent>(paths.nemesis, isNemesis, true),
  ]);
  const [final, db, run, logs] = await Promise.all([
    readJson<FinalTrans[]>(paths.final),
    readJson<DatabaseState>(paths.db),
    readJson<RunInfo>(paths.run),
    readStatusChanges(paths.logDir),
  ]);
  const data: CheckInput & CheckData = {
    seed: run.seed,
    store: run.store,
    profile: run.profile,
    paths,
    final,
    db,
    lastFaultEndedAt: run.lastFaultEndedAt,
    settledAt: run.settledAt,
    ...(run.finalReadAt !== undefined ? { finalReadAt: run.finalReadAt } : {}),
    timings: run.timings,
    startedAt: run.startedAt,
    endedAt: run.endedAt,
    history: history.items,
    intents: intents.items,
    calls: calls.items,
    nemesis: nemesis.items,
    skippedLines: { history: history.skipped, intents: intents.skipped, calls: calls.skipped, nemesis: nemesis.skipped, ...(logs ? { coordinatorLogs: logs.skipped } : {}) },
  };
  if (logs) data.statusChanges = logs.changes;
  return data;
}
