/**
 * Summarises a V8 .cpuprofile (as written by `node --cpu-prof`): self time aggregated by
 * function (name + url:line) and by module (npm package, dtx source folder, node internals).
 *
 * Usage: tsx bench/top-functions.ts <file.cpuprofile> [--top N] [--inclusive] [--results FILE.json]
 *
 * --results: a saga-bench results file; only samples inside its measured phases are counted.
 *
 * Line numbers of .ts files: tsx compiles with esbuild's minifyWhitespace, so in the profile every
 * function of a .ts file sits on line 1 and only the column tells them apart. We re-run the same
 * esbuild transform on the file as it is now (same options as tsx 4) and map the position back
 * through the source map; if that fails, the key shows `:1:<column>` instead.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type * as Esbuild from "esbuild";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** A time range in the profile's clock (µs, CLOCK_MONOTONIC: the same as process.hrtime()). */
export interface TimeWindow {
  startUs: number;
  endUs: number;
}

export interface Row {
  key: string;
  ms: number;
  /** Share of all sampled time, idle included. */
  pct: number;
  /** Share of busy time (idle excluded). */
  busyPct: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  functions: Row[];
  modules: Row[];
  /** Inclusive (self + callees) time by function; a function is counted once per sample. */
  inclusive: Row[];
}

const REPO_MARKER = "/server/src/";

/** Short, stable label for a source url. */
export function shortUrl(url: string): string {
  if (!url) return "";
  let u = url.startsWith("file://") ? url.slice("file://".length) : url;
  const nm = u.lastIndexOf("/node_modules/");
  if (nm >= 0) return u.slice(nm + "/node_modules/".length);
  for (const marker of [REPO_MARKER, "/bench/", "/sdk/"]) {
    const i = u.indexOf(marker);
    if (i >= 0) return u.slice(i + 1);
  }
  u = u.replace(/\?.*$/, "");
  return u;
}

/** Which module a frame belongs to: npm package, dtx folder, node internal area, or a V8 pseudo-frame. */
export function moduleOf(frame: CallFrame): string {
  const url = frame.url;
  if (!url) {
    if (frame.functionName.startsWith("(")) return frame.functionName;
    return "(native / builtin)";
  }
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const parts = url.slice(nm + "/node_modules/".length).split("/");
    const first = parts[0] ?? "?";
    return first.startsWith("@") ? `${first}/${parts[1] ?? ""}` : first;
  }
  const src = url.indexOf(REPO_MARKER);
  if (src >= 0) {
    const rest = url.slice(src + REPO_MARKER.length).split("/");
    return rest.length > 1 ? `dtx server/src/${rest[0] ?? ""}` : "dtx server/src";
  }
  if (url.startsWith("node:")) {
    const parts = url.slice("node:".length).split("/");
    if (parts[0] === "internal" && parts.length > 2) return `node:internal/${parts[1] ?? ""}`;
    return `node:${parts.slice(0, 2).join("/")}`;
  }
  return shortUrl(url);
}

// ---- .ts positions -> source lines -------------------------------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Decodes a source map's `mappings` into, per generated line, [generatedColumn, sourceLine] pairs. */
export function decodeMappings(mappings: string): [number, number][][] {
  const lines: [number, number][][] = [];
  let srcLine = 0;
  for (const lineText of mappings.split(";")) {
    const segs: [number, number][] = [];
    let genCol = 0;
    for (const seg of lineText.split(",")) {
      if (!seg) continue;
      const values: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of seg) {
        const digit = B64.indexOf(ch);
        if (digit < 0) break;
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          values.push(value & 1 ? -(value >> 1) : value >> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += values[0] ?? 0;
      if (values.length >= 4) {
        srcLine += values[2] ?? 0;
        segs.push([genCol, srcLine]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

const requireCjs = createRequire(import.meta.url);
let esbuild: typeof Esbuild | null | undefined;
const tsMaps = new Map<string, [number, number][][] | null>();

function tsMapFor(file: string): [number, number][][] | null {
  let map = tsMaps.get(file);
  if (map !== undefined) return map;
  map = null;
  try {
    if (esbuild === undefined) esbuild = requireCjs("esbuild") as typeof Esbuild;
    if (esbuild && existsSync(file)) {
      // The options tsx 4 uses (dist/index-*.mjs): keep them in sync or columns will not match.
      const out = esbuild.transformSync(readFileSync(file, "utf8"), {
        target: `node${process.versions.node}`, loader: file.endsWith("x") ? "tsx" : "ts", format: "esm",
        sourcemap: true, minifyWhitespace: true, keepNames: true, sourcefile: file,
      });
      map = decodeMappings((JSON.parse(out.map) as { mappings: string }).mappings);
    }
  } catch {
    esbuild ??= null;
    map = null;
  }
  tsMaps.set(file, map);
  return map;
}

/** 1-based source line of a 0-based position in a tsx-compiled .ts file, if it can be resolved. */
function tsSourceLine(url: string, line0: number, col0: number): number | undefined {
  if (!url.startsWith("file://") || url.includes("/node_modules/") || !/\.[cm]?tsx?$/.test(url)) return undefined;
  const map = tsMapFor(fileURLToPath(url));
  const segs = map?.[line0];
  if (!segs || segs.length === 0) return undefined;
  let lo = 0;
  let hi = segs.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const seg = segs[mid];
    if (seg && seg[0] <= col0) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  const hit = segs[best];
  return hit ? hit[1] + 1 : undefined;
}

const keyCache = new Map<CallFrame, string>();

function frameKey(frame: CallFrame): string {
  const cached = keyCache.get(frame);
  if (cached !== undefined) return cached;
  const name = frame.functionName || "(anonymous)";
  let key = name;
  if (frame.url) {
    const tsLine = tsSourceLine(frame.url, frame.lineNumber, frame.columnNumber);
    const where = tsLine !== undefined ? `${tsLine}`
      : /\.[cm]?tsx?$/.test(frame.url) && frame.lineNumber === 0 ? `1:${frame.columnNumber + 1}` : `${frame.lineNumber + 1}`;
    key = `${name} ${shortUrl(frame.url)}:${where}`;
  }
  keyCache.set(frame, key);
  return key;
}

function toRows(map: Map<string, number>, totalMs: number, busyMs: number): Row[] {
  return [...map.entries()]
    .map(([key, us]) => ({ key, ms: us / 1000, pct: (100 * us) / 1000 / totalMs, busyPct: busyMs > 0 ? (100 * us) / 1000 / busyMs : 0 }))
    .sort((a, b) => b.ms - a.ms);
}

/**
 * Aggregates sampled time (µs) by function, module and inclusive function time. With `windows`,
 * only samples taken inside one of them count (e.g. the measured phases, without start-up).
 */
export function summarize(profile: CpuProfile, windows?: readonly TimeWindow[]): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the gap before sample i; sample i lasts until sample i+1.
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  let t = profile.startTime;
  const inWindow = (at: number): boolean => !windows || windows.some((w) => at >= w.startUs && at < w.endUs);
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    const next = deltas[i + 1];
    const dur = next !== undefined && next >= 0 ? next : 0;
    const id = samples[i];
    if (id === undefined || !inWindow(t)) continue;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dur);
    totalUs += dur;
  }
  if (samples.length === 0) {
    // Old-style profile without samples: fall back to hit counts and the average interval.
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    const per = hits > 0 ? (profile.endTime - profile.startTime) / hits : 0;
    for (const n of profile.nodes) {
      const us = (n.hitCount ?? 0) * per;
      selfUs.set(n.id, us);
      totalUs += us;
    }
  }

  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  const incl = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || us === 0) continue;
    const key = frameKey(node.callFrame);
    fn.set(key, (fn.get(key) ?? 0) + us);
    const m = moduleOf(node.callFrame);
    mod.set(m, (mod.get(m) ?? 0) + us);
    if (node.callFrame.functionName === "(idle)") idleUs += us;
    // Inclusive: every distinct function on this node's stack gets the time once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame || frame.functionName === "(root)") continue;
      const k = frameKey(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  const totalMs = totalUs / 1000;
  const idleMs = idleUs / 1000;
  const busyMs = totalMs - idleMs;
  return { totalMs, idleMs, busyMs, functions: toRows(fn, totalMs, busyMs), modules: toRows(mod, totalMs, busyMs), inclusive: toRows(incl, totalMs, busyMs) };
}

export function loadProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
}

function table(title: string, rows: Row[], top: number): string {
  const lines = [`${title}`, "| # | self ms | % busy | % all | function / module |", "|---:|---:|---:|---:|---|"];
  rows.slice(0, top).forEach((r, i) => {
    lines.push(`| ${i + 1} | ${r.ms.toFixed(0)} | ${r.busyPct.toFixed(1)} | ${r.pct.toFixed(1)} | ${r.key.replace(/\|/g, "\\|")} |`);
  });
  return lines.join("\n");
}

/** Human-readable report: top functions by self time, then self time by module. */
export function formatSummary(s: ProfileSummary, top = 25, inclusive = false): string {
  const parts = [
    `profiled ${(s.totalMs / 1000).toFixed(1)} s: busy ${(s.busyMs / 1000).toFixed(1)} s, idle ${(s.idleMs / 1000).toFixed(1)} s`,
    "",
    table(`Top ${top} functions by self time`, s.functions, top),
    "",
    table("Self time by module", s.modules, 20),
  ];
  if (inclusive) {
    parts.push("", table(`Top ${top} functions by inclusive time (self + callees; the "self ms" column is inclusive here)`, s.inclusive, top));
  }
  return parts.join("\n");
}

function main(argv: string[]): void {
  let file: string | undefined;
  let top = 25;
  let inclusive = false;
  let windows: TimeWindow[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--top") top = Number(argv[++i] ?? 25);
    else if (a === "--inclusive") inclusive = true;
    else if (a === "--results") {
      const results = JSON.parse(readFileSync(argv[++i] ?? "", "utf8")) as { results?: { monotonicWindowUs?: TimeWindow }[] };
      windows = (results.results ?? []).flatMap((r) => (r.monotonicWindowUs ? [r.monotonicWindowUs] : []));
    } else if (a !== undefined && !a.startsWith("--")) file = a;
  }
  if (!file || !Number.isFinite(top)) {
    console.error("usage: tsx bench/top-functions.ts <file.cpuprofile> [--top N] [--inclusive] [--results saga-bench-results.json]");
    process.exit(2);
  }
  if (windows) console.log(`counting only the ${windows.length} measured phase(s) of the results file`);
  console.log(formatSummary(summarize(loadProfile(file), windows), top, inclusive));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv.slice(2));
