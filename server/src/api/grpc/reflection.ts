/**
 * What gRPC server reflection serves: dtm's service and grpc.health.v1, with descriptors that
 * protoc-based tools (grpcurl, grpcui, Postman) accept. The README's gRPC section has the grpcurl
 * commands that test/e2e/grpcurl.test.ts runs.
 */
import type { PackageDefinition } from "@grpc/proto-loader";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { protoPath as healthProtoPath } from "grpc-health-check";
import descriptor from "protobufjs/ext/descriptor/index.js";
import type { IDescriptorProto, IFileDescriptorProto } from "protobufjs/ext/descriptor/index.js";
import { PROTO_LOADER_OPTIONS } from "./proto.ts";

// A CommonJS module: its named exports are only reachable through the default import.
const { FileDescriptorProto } = descriptor;

/** protoc's name for the entry message of a map field: `branch_headers`/`BranchHeaders` -> `BranchHeadersEntry`. */
export function mapEntryName(fieldName: string): string {
  const camel = fieldName.replace(/_+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

/**
 * Renames map entry messages the way protoc does. protobufjs names the entry of map field `Foo`
 * `Foo` (it upper-cases the first letter and forgets the `Entry` suffix), which for dtm's
 * upper-case field names (`BranchHeaders`, `ReqExtra`, `Data`) is the field's own name: Go's
 * protobuf runtime then refuses the whole file ("descriptor ... already declared"), so every
 * grpcurl call through reflection failed.
 */
function fixMapEntries(message: IDescriptorProto): void {
  const nested = message.nestedType ?? [];
  for (const field of message.field ?? []) {
    const entry = nested.find((t) => t.options?.mapEntry === true && t.name === field.typeName);
    if (!entry || !field.name) continue;
    entry.name = mapEntryName(field.name);
    field.typeName = entry.name;
  }
  for (const child of nested) fixMapEntries(child);
}

/** Every message, enum and service a file declares, by full name (no leading dot). */
function declaredNames(file: IFileDescriptorProto): string[] {
  const names: string[] = [];
  const pkg = file.package ? `${file.package}.` : "";
  const walk = (message: IDescriptorProto, scope: string): void => {
    const name = `${scope}${message.name ?? ""}`;
    names.push(name);
    for (const e of message.enumType ?? []) names.push(`${name}.${e.name ?? ""}`);
    for (const child of message.nestedType ?? []) walk(child, `${name}.`);
  };
  for (const m of file.messageType ?? []) walk(m, pkg);
  for (const e of file.enumType ?? []) names.push(`${pkg}${e.name ?? ""}`);
  for (const s of file.service ?? []) names.push(`${pkg}${s.name ?? ""}`);
  return names;
}

/**
 * Makes every type reference fully qualified (`.pkg.Msg`, as protoc writes them) and lists the
 * files a file refers to in its `dependency` (protobufjs leaves it empty: Go's runtime then cannot
 * resolve `google.protobuf.Empty` in dtm's service).
 */
function qualifyReferences(file: IFileDescriptorProto, owner: Map<string, string>): void {
  const deps = new Set<string>();
  const resolve = (ref: string | null | undefined, scope: string): string | undefined => {
    if (!ref) return undefined;
    let found: string | undefined;
    if (ref.startsWith(".")) found = owner.has(ref.slice(1)) ? ref.slice(1) : undefined;
    else {
      // Protobuf scoping: the innermost enclosing scope first, then outwards.
      for (let s = scope; found === undefined; s = s.includes(".") ? s.slice(0, s.lastIndexOf(".")) : "") {
        const candidate = s ? `${s}.${ref}` : ref;
        if (owner.has(candidate)) found = candidate;
        if (!s) break;
      }
    }
    if (found === undefined) return ref;
    const from = owner.get(found);
    if (from && from !== file.name) deps.add(from);
    return `.${found}`;
  };
  const pkg = file.package ?? "";
  const walk = (message: IDescriptorProto, scope: string): void => {
    const name = scope ? `${scope}.${message.name ?? ""}` : (message.name ?? "");
    for (const field of message.field ?? []) field.typeName = resolve(field.typeName, name) ?? field.typeName;
    for (const child of message.nestedType ?? []) walk(child, name);
  };
  for (const m of file.messageType ?? []) walk(m, pkg);
  for (const service of file.service ?? []) {
    for (const method of service.method ?? []) {
      method.inputType = resolve(method.inputType, pkg) ?? method.inputType;
      method.outputType = resolve(method.outputType, pkg) ?? method.outputType;
    }
  }
  file.dependency = [...deps].sort();
}

/**
 * The definition with file descriptors as protoc would write them: map entries named `...Entry`,
 * references fully qualified, imports listed. Every entry gets the same fixed set of files.
 */
export function withProtocDescriptors(definition: PackageDefinition): PackageDefinition {
  const files = new Map<string, IFileDescriptorProto>();
  for (const entry of Object.values(definition)) {
    // Message and enum entries carry the files; a service entry is a map of methods.
    const protos: unknown = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    if (!Array.isArray(protos)) continue;
    for (const bytes of protos as Buffer[]) {
      const file = FileDescriptorProto.decode(bytes) as unknown as IFileDescriptorProto;
      if (file.name && !files.has(file.name)) files.set(file.name, file);
    }
  }
  const owner = new Map<string, string>();
  for (const file of files.values()) {
    for (const m of file.messageType ?? []) fixMapEntries(m);
    for (const name of declaredNames(file)) owner.set(name, file.name ?? "");
  }
  for (const file of files.values()) qualifyReferences(file, owner);
  const encoded = [...files.values()].map((f) => Buffer.from(FileDescriptorProto.encode(f).finish()));
  const result: PackageDefinition = {};
  for (const [name, entry] of Object.entries(definition)) {
    const protos: unknown = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    result[name] = Array.isArray(protos) ? ({ ...entry, fileDescriptorProtos: encoded } as typeof entry) : entry;
  }
  return result;
}

/**
 * Server reflection for `dtmgimp.Dtm` and `grpc.health.v1.Health` (so `grpcurl list` shows
 * both and `grpcurl ... grpc.health.v1.Health/Check` needs no .proto file).
 */
export function reflectionService(dtm: PackageDefinition): ReflectionService {
  const health = loadSync(healthProtoPath, PROTO_LOADER_OPTIONS);
  return new ReflectionService(withProtocDescriptors({ ...dtm, ...health }));
}
