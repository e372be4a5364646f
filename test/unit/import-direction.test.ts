import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

// The lint rule of eslint.config.js that keeps imports one way (docs/architecture.md "Layers"):
// an upward import fails `npm run lint`, a downward one passes.
const eslint = new ESLint({ cwd: process.cwd() });

async function restricted(file: string, source: string): Promise<boolean> {
  const [result] = await eslint.lintText(`import type { X } from "${source}";\nexport type Y = X;\n`, { filePath: file });
  return (result?.messages ?? []).some((m) => m.ruleId === "no-restricted-imports");
}

describe("import direction", () => {
  it.each([
    ["server/src/core/a.ts", "../service/executor.ts"],
    ["server/src/core/a.ts", "../logger.ts"],
    ["server/src/driver/a.ts", "../service/url.ts"],
    ["server/src/driver/h/a.ts", "../../cron/clock.ts"],
    ["server/src/service/a.ts", "../cron/clock.ts"],
    ["server/src/service/a.ts", "../api/auth.ts"],
    ["server/src/service/a.ts", "../config.ts"],
    ["server/src/store/sql/a.ts", "../../service/claim.ts"],
    ["server/src/cron/a.ts", "../api/http/app.ts"],
    ["server/src/api/http/a.ts", "../../server.ts"],
  ])("%s may not import %s", async (file, source) => {
    expect(await restricted(file, source)).toBe(true);
  });

  it.each([
    ["server/src/service/a.ts", "../core/clock.ts"],
    ["server/src/service/a.ts", "../driver/url-policy.ts"],
    ["server/src/service/a.ts", "../store/store.ts"],
    ["server/src/driver/a.ts", "../core/types.ts"],
    ["server/src/store/sql/a.ts", "../../core/types.ts"],
    ["server/src/store/sql/a.ts", "../rows.ts"],
    ["server/src/cron/a.ts", "../service/executor.ts"],
    ["server/src/api/http/a.ts", "../../service/trans-service.ts"],
    ["server/src/server.ts", "./service/executor.ts"],
  ])("%s may import %s", async (file, source) => {
    expect(await restricted(file, source)).toBe(false);
  });
});
