/**
 * Which node runs a benchmark's coordinator. The image ships a newer Node than this machine's
 * (deploy/Dockerfile), and the coordinator's CPU per saga depends on it, so a benchmark can run
 * the coordinator alone on another binary (bench/lib/fetch-node.sh fetches one from the npm
 * registry) while the driver and participant stay on this one: only the system under test changes.
 */
import { execFileSync } from "node:child_process";

/** `bin --version`, e.g. "v24.22.3". */
export function nodeVersionOf(bin: string): string {
  return execFileSync(bin, ["--version"], { encoding: "utf8" }).trim();
}
