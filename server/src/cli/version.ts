import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * dtx's version, from the package.json beside the code: two levels above `server/src/cli` when run
 * from source, three when run from the build (`dist/server/src/cli`).
 */
export function dtxVersion(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  for (const candidate of [join(here, "../../../package.json"), join(here, "../../../../package.json")]) {
    if (!existsSync(candidate)) continue;
    const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: unknown; version?: unknown };
    if (pkg.name === "dtx" && typeof pkg.version === "string") return pkg.version;
  }
  return "unknown";
}
