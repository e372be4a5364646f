/**
 * What the benchmarks read from /proc: a process's (or process tree's) CPU time and memory, and
 * the machine's busy, total and steal time. Linux only; a reader answers undefined elsewhere or
 * once the process is gone.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let clkTck = 100;
try {
  clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  // keep 100, the Linux default
}

export function readRssMB(pid: number): number | undefined {
  return readStatusMB(pid).VmRSS;
}

/** VmRSS, RssAnon, RssFile, ... from /proc/<pid>/status, in MB. */
export function readStatusMB(pid: number): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  try {
    for (const m of readFileSync(`/proc/${pid}/status`, "utf8").matchAll(/^(\w+):\s+(\d+)\s+kB$/gm)) {
      if (m[1] && m[2]) out[m[1]] = Number(m[2]) / 1024;
    }
  } catch {
    // process gone or not Linux
  }
  return out;
}

/**
 * `pid` and its descendants (a dtx with workers is a primary and its node:cluster children), by
 * the parent pid in /proc/<pid>/stat.
 */
export function processTree(pid: number): number[] {
  if (pid <= 0) return [pid];
  const parentOf = new Map<number, number>();
  try {
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "utf8");
        parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    return [pid];
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  return tree;
}

/** utime and stime summed over a process tree (see processTree), in seconds. */
export function readTreeCpuTimes(pids: readonly number[]): { user: number; system: number } | undefined {
  const times = pids.map(readCpuTimes).filter((t): t is { user: number; system: number } => t !== undefined);
  if (times.length === 0) return undefined;
  return { user: times.reduce((a, t) => a + t.user, 0), system: times.reduce((a, t) => a + t.system, 0) };
}

/** readStatusMB summed over a process tree. */
export function readTreeStatusMB(pids: readonly number[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const pid of pids) for (const [k, v] of Object.entries(readStatusMB(pid))) if (v !== undefined) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** utime + stime of a process, in seconds. */
export function readCpuSeconds(pid: number): number | undefined {
  const t = readCpuTimes(pid);
  return t ? t.user + t.system : undefined;
}

/** utime and stime of a process (all its threads), in seconds. */
export function readCpuTimes(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return { user: utime / clkTck, system: stime / clkTck };
  } catch {
    return undefined;
  }
}

/** Machine-wide busy and total jiffies from /proc/stat. */
export function readMachineCpu(): { busy: number; total: number; steal: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const nums = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = nums.reduce((a, b) => a + b, 0);
    const idle = (nums[3] ?? 0) + (nums[4] ?? 0);
    return { busy: total - idle, total, steal: nums[7] ?? 0 };
  } catch {
    return undefined;
  }
}
