// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";


// Imports go one way (docs/architecture.md "Layers"): main/server/config/cli at the top, then api and
// cron, then service, then driver and store, then core. A layer may import any layer below it (and the
// logger), never one above: the rule lists, for each layer, the folders and root files it must not reach.
const upward = (/** @type {string[]} */ dirs, /** @type {string[]} */ files) => ({
  "no-restricted-imports": [
    "error",
    {
      patterns: [
        {
          regex: `^(\\.\\./)+(${dirs.join("|")})/`,
          message: "Imports go one way (api/cron -> service -> driver/store -> core); see docs/architecture.md.",
        },
        ...(files.length
          ? [
              {
                regex: `^(\\.\\./)+(${files.join("|")})\\.ts$`,
                message: "Only the composition root (server.ts, main.ts) imports this; see docs/architecture.md.",
              },
            ]
          : []),
      ],
    },
  ],
});
const ROOT_FILES = ["server", "main", "config"];
const layerRules = [
  { files: ["server/src/core/**/*.ts"], rules: upward(["api", "cli", "cluster", "cron", "service", "driver", "store"], [...ROOT_FILES, "metrics", "logger"]) },
  { files: ["server/src/store/**/*.ts"], rules: upward(["api", "cli", "cluster", "cron", "service", "driver"], [...ROOT_FILES, "metrics"]) },
  { files: ["server/src/driver/**/*.ts"], rules: upward(["api", "cli", "cluster", "cron", "service", "store"], [...ROOT_FILES, "metrics"]) },
  { files: ["server/src/service/**/*.ts"], rules: upward(["api", "cli", "cluster", "cron"], [...ROOT_FILES, "metrics"]) },
  { files: ["server/src/cron/**/*.ts"], rules: upward(["api", "cli", "cluster"], ROOT_FILES) },
  { files: ["server/src/api/**/*.ts"], rules: upward(["cli", "cluster"], ["server", "main"]) },
];

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "sdk/dist/", "bench/results/", "test/compat/**/.venv/", "**/*.js", "**/*.cjs", "**/*.mjs"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "no-console": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  {
    files: ["bench/**", "scripts/**", "examples/**", "test/compat/**"],
    rules: { "no-console": "off" },
  },
  ...layerRules,
);
