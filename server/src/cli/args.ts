/**
 * The `dtx` command line: `dtx [start] [--config FILE]`, `dtx --help`, `dtx --version`. Pure:
 * parses argv into what to do (docs/cli.md).
 */

export type CliCommand =
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | { readonly kind: "start"; readonly configFile: string | undefined }
  | { readonly kind: "error"; readonly message: string };

export const USAGE = `Usage: dtx [command] [options]

A dtm-compatible distributed transaction coordinator.

Commands:
  start              start the coordinator (the default when no command is given)

Options:
  -c, --config FILE  read settings from a YAML or JSON file (also DTX_CONFIG);
                     DTX_* environment variables override the file
  -h, --help         show this help and exit
  -V, --version      print the version and exit

Settings, their environment variables and defaults: the README's configuration table.
Documentation: docs/cli.md.
`;

/** What `argv` (without node and the script) asks for; unknown words are an error, never ignored. */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  // Asking for help or the version wins wherever it is, so it never starts a server.
  if (argv.some((a) => a === "-h" || a === "--help" || a === "help")) return { kind: "help" };
  if (argv.some((a) => a === "-V" || a === "--version" || a === "version")) return { kind: "version" };
  let configFile: string | undefined;
  let sawCommand = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-c" || arg === "--config") {
      const file = argv[i + 1];
      if (file === undefined || file === "" || file.startsWith("-")) return { kind: "error", message: `${arg} needs a file name` };
      configFile = file;
      i++;
    } else if (arg.startsWith("--config=")) {
      configFile = arg.slice("--config=".length);
      if (configFile === "") return { kind: "error", message: "--config= needs a file name" };
    } else if (arg === "start" && !sawCommand) {
      sawCommand = true;
    } else {
      return { kind: "error", message: `unknown ${arg.startsWith("-") ? "option" : "command"} ${JSON.stringify(arg)}` };
    }
  }
  return { kind: "start", configFile };
}
