/**
 * The keys the coordinator signs branch calls with (docs/security.md#signed-branch-calls): a set of
 * `{ id, secret | secretFile }` and the id of the active one, given inline in the config or in a
 * JSON key file. Every file involved (the key file, each `secretFile`) is watched by modification
 * time and the whole set is read again when one changes, so a rotation needs no restart. A set that
 * fails to load keeps the previous one in use. Secrets never reach a log or an error message.
 */
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { z } from "zod";
import type { Logger } from "../logger.ts";

/** Key ids travel in a header, unescaped: letters, digits, `.`, `_`, `-`. */
export const SIGNING_KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** The shortest secret accepted, in characters (e.g. `openssl rand -hex 32` gives 64). */
export const MIN_SECRET_CHARS = 32;

const keyId = z.string().regex(SIGNING_KEY_ID, "must be 1 to 64 letters, digits, '.', '_' or '-'");

export const SigningKeySchema = z
  .object({
    id: keyId,
    secret: z.string().min(MIN_SECRET_CHARS, `must be at least ${MIN_SECRET_CHARS} characters`).optional(),
    secretFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((k) => (k.secret === undefined) !== (k.secretFile === undefined), { message: "give exactly one of secret and secretFile" });

export type SigningKeyInput = z.infer<typeof SigningKeySchema>;

/** The shape of a key file, and of the inline `branchSigning` keys. */
export const SigningKeySetSchema = z
  .object({ activeKeyId: keyId, keys: z.array(SigningKeySchema).min(1) })
  .strict()
  .superRefine((set, ctx) => {
    const ids = set.keys.map((k) => k.id);
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: "custom", path: ["keys", i, "id"], message: `duplicate key id ${JSON.stringify(id)}` });
    });
    if (!ids.includes(set.activeKeyId)) ctx.addIssue({ code: "custom", path: ["activeKeyId"], message: `names no key (keys: ${ids.join(", ")})` });
  });

/** The `branchSigning` section of the config. */
export interface BranchSigningConfig {
  readonly keys: readonly SigningKeyInput[];
  readonly activeKeyId: string;
  /** A JSON file holding `{ activeKeyId, keys }`; "" when the keys are inline. */
  readonly keysFile: string;
  /** Seconds between two checks of the watched files' modification times. */
  readonly watchInterval: number;
}

export function signingEnabled(config: BranchSigningConfig): boolean {
  return config.keysFile !== "" || config.keys.length > 0;
}

/** A key ready to sign with. */
export interface SigningKey {
  readonly id: string;
  readonly secret: Buffer;
}

interface LoadedKeys {
  readonly active: SigningKey;
  /** Every file read to build the set (watched for changes). */
  readonly files: readonly string[];
}

/** Reads the key set; throws an Error naming the file or key at fault (never a secret). */
export function loadSigningKeys(config: BranchSigningConfig): LoadedKeys {
  const files: string[] = [];
  let set: { activeKeyId: string; keys: readonly SigningKeyInput[] } = config;
  if (config.keysFile !== "") {
    files.push(config.keysFile);
    set = parseKeyFile(config.keysFile);
  }
  const active = set.keys.find((k) => k.id === set.activeKeyId);
  if (!active) throw new Error(`branchSigning.activeKeyId ${JSON.stringify(set.activeKeyId)} names no key`);
  if (active.secretFile !== undefined) files.push(active.secretFile);
  return { active: { id: active.id, secret: Buffer.from(active.secret ?? readSecretFile(active.id, active.secretFile ?? ""), "utf8") }, files };
}

function parseKeyFile(path: string): { activeKeyId: string; keys: SigningKeyInput[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    // A JSON syntax error quotes the text around it, which may be a secret: keep only its kind.
    const reason = error instanceof SyntaxError ? "it is not valid JSON" : (error as Error).message;
    throw new Error(`cannot read the branch signing key file ${path}: ${reason}`);
  }
  const result = SigningKeySetSchema.safeParse(parsed);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`the branch signing key file ${path} is invalid: ${lines.join("; ")}`);
  }
  return result.data;
}

function readSecretFile(id: string, path: string): string {
  let secret: string;
  try {
    secret = readFileSync(path, "utf8").trim();
  } catch (error) {
    throw new Error(`cannot read the secret of branch signing key ${JSON.stringify(id)} from ${path}: ${(error as Error).message}`);
  }
  if (secret.length < MIN_SECRET_CHARS) throw new Error(`the secret of branch signing key ${JSON.stringify(id)} in ${path} is shorter than ${MIN_SECRET_CHARS} characters`);
  return secret;
}

/**
 * The active signing key, kept current: the files it was read from are polled every
 * `watchInterval` seconds (`fs.watchFile`, which compares modification times) and the set is
 * loaded again when one changes. Throws at construction when the set cannot be loaded.
 */
export class SigningKeyRing {
  private loaded: LoadedKeys;
  private watched: readonly string[] = [];
  private closed = false;

  constructor(private readonly config: BranchSigningConfig, private readonly logger: Logger) {
    this.loaded = loadSigningKeys(config);
    this.watch(this.loaded.files);
  }

  get active(): SigningKey {
    return this.loaded.active;
  }

  /** Loads the set again now (also what a file change does). Returns whether the new set is in use. */
  reload(): boolean {
    if (this.closed) return false;
    try {
      const next = loadSigningKeys(this.config);
      const previous = this.loaded.active.id;
      this.loaded = next;
      this.watch(next.files);
      this.logger.info({ activeKeyId: next.active.id, previousKeyId: previous }, "branch signing keys reloaded");
      return true;
    } catch (error) {
      this.logger.error({ activeKeyId: this.loaded.active.id, error: (error as Error).message }, "branch signing keys not reloaded; still signing with the previous key");
      return false;
    }
  }

  close(): void {
    this.closed = true;
    this.watch([]);
  }

  private readonly onChange = (): void => {
    this.reload();
  };

  private watch(files: readonly string[]): void {
    for (const file of this.watched) if (!files.includes(file)) unwatchFile(file, this.onChange);
    // `persistent: false`: the watch never keeps the process alive on its own.
    for (const file of files) if (!this.watched.includes(file)) watchFile(file, { interval: Math.max(1, Math.round(this.config.watchInterval * 1000)), persistent: false }, this.onChange);
    this.watched = files;
  }
}
