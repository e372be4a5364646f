import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { CoordinatorError } from "../core/errors.ts";

/**
 * The branch URL policy (docs/security.md#branch-url-policy): which URLs the coordinator may call. Off by default,
 * as in dtm, which calls any URL a client names. Two independent controls:
 *
 * - `allow`: patterns `http(s)://host[:port][/path-prefix]` and `grpc://host:port[/path-prefix]`.
 *   When any is given, a URL is allowed only if it matches one: same scheme, the same host
 *   (case-insensitive, written in canonical form), the same port (80 / 443 by default) and a path
 *   under the prefix on a segment boundary. A host written in any other form (`2130706433`,
 *   `0x7f.1`, `127.1`, `%31...`, a trailing dot, ...) is refused.
 * - `denyPrivate`: a destination whose address (resolved at call time) is loopback, private,
 *   CGNAT, link-local, ULA, unspecified, multicast or reserved is refused, unless the URL's host
 *   is that address written literally and an allowlist pattern names it (`http://10.0.0.5:8080`);
 *   an allowlisted *name* does not exempt the addresses it resolves to (DNS rebinding).
 */
export interface UrlPolicyConfig {
  allow: readonly string[];
  denyPrivate: boolean;
}

export type UrlScheme = "http" | "https" | "grpc";

export interface UrlPattern {
  scheme: UrlScheme;
  /** Lower case; an IPv6 literal keeps its brackets. */
  host: string;
  port: number;
  /** "" (everything) or a prefix starting with "/" and not ending with "/". */
  path: string;
}

/** What a URL would call: scheme, host as the transport will see it, port and path. */
export interface UrlTarget {
  scheme: UrlScheme;
  host: string;
  port: number;
  path: string;
  /** false when the host was written in a form the parser rewrote (numeric, percent-encoded, ...). */
  canonical: boolean;
}

const DEFAULT_PORTS: Record<UrlScheme, number | undefined> = { http: 80, https: 443, grpc: undefined };

/** Parses an allowlist pattern; throws an Error whose message says what is wrong. */
export function parseUrlPattern(text: string): UrlPattern {
  const m = /^(https?|grpc):\/\/([^/?#]+)(\/[^?#]*)?$/.exec(text.trim());
  if (!m) throw new Error(`${JSON.stringify(text)} is not a pattern scheme://host[:port][/path-prefix] with scheme http, https or grpc`);
  const scheme = m[1] as UrlScheme;
  const hostPort = splitHostPort(m[2] ?? "");
  if (!hostPort || hostPort.host === "") throw new Error(`${JSON.stringify(text)} has no valid host`);
  if (hostPort.host.includes("@")) throw new Error(`${JSON.stringify(text)} may not hold user information`);
  if (canonicalHost(hostPort.host) !== hostPort.host) {
    throw new Error(`${JSON.stringify(text)}: write the host in canonical form (${canonicalHost(hostPort.host) ?? "a valid host name or IP address"})`);
  }
  const port = hostPort.port ?? DEFAULT_PORTS[scheme];
  if (port === undefined) throw new Error(`${JSON.stringify(text)}: a grpc pattern needs a port (grpc://host:port)`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${JSON.stringify(text)} has an invalid port`);
  const path = (m[3] ?? "").replace(/\/+$/, "");
  return { scheme, host: hostPort.host, port, path };
}

/** `host[:port]` with an optional bracketed IPv6 host; the host in lower case. */
function splitHostPort(authority: string): { host: string; port: number | undefined } | undefined {
  let host: string;
  let rest: string;
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0) return undefined;
    host = authority.slice(0, end + 1);
    rest = authority.slice(end + 1);
  } else {
    const colon = authority.indexOf(":");
    host = colon < 0 ? authority : authority.slice(0, colon);
    rest = colon < 0 ? "" : authority.slice(colon);
  }
  if (rest === "") return { host: host.toLowerCase(), port: undefined };
  if (!/^:\d{1,5}$/.test(rest)) return undefined;
  return { host: host.toLowerCase(), port: Number(rest.slice(1)) };
}

/** The WHATWG form of a host (what an HTTP client connects to), or undefined if it is not one. */
function canonicalHost(host: string): string | undefined {
  try {
    const u = new URL(`http://${host}/`);
    return u.username || u.password || u.port ? undefined : u.hostname;
  } catch {
    return undefined;
  }
}

/**
 * What a branch URL calls: an http(s) URL, or a gRPC target `host:port/package.Service/Method`.
 * Undefined when it is neither.
 */
export function parseCallUrl(url: string): UrlTarget | undefined {
  if (url.startsWith("http://") || url.startsWith("https://")) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    const scheme = parsed.protocol === "https:" ? "https" : "http";
    // The host exactly as written: after "//", before the path, query or fragment, after any user info.
    const authority = url.slice(scheme.length + 3).split(/[/\\?#]/, 1)[0] ?? "";
    const written = splitHostPort(authority.slice(authority.lastIndexOf("@") + 1));
    const port = parsed.port === "" ? (DEFAULT_PORTS[scheme] ?? 0) : Number(parsed.port);
    return { scheme, host: parsed.hostname, port, path: parsed.pathname, canonical: written?.host === parsed.hostname };
  }
  const slash = url.indexOf("/");
  if (slash <= 0 || url.includes("://")) return undefined;
  const hostPort = splitHostPort(url.slice(0, slash));
  if (!hostPort || hostPort.port === undefined || hostPort.host === "") return undefined;
  return { scheme: "grpc", host: hostPort.host, port: hostPort.port, path: url.slice(slash), canonical: canonicalHost(hostPort.host) === hostPort.host };
}

/** Does the target match the pattern: scheme, host, port, and the path on a segment boundary. */
export function matchesPattern(pattern: UrlPattern, target: UrlTarget): boolean {
  if (!target.canonical || pattern.scheme !== target.scheme || pattern.host !== target.host || pattern.port !== target.port) return false;
  if (pattern.path === "") return true;
  if (!target.path.startsWith(pattern.path)) return false;
  const next = target.path.charAt(pattern.path.length);
  return next === "" || next === "/";
}

/** The pure allowlist check: no patterns allows everything. */
export function isAllowedUrl(patterns: readonly UrlPattern[], url: string): boolean {
  if (patterns.length === 0) return true;
  const target = parseCallUrl(url);
  return target !== undefined && patterns.some((p) => matchesPattern(p, target));
}

const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["198.51.100.0", 24], ["203.0.113.0", 24],
  ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) NON_PUBLIC.addSubnet(net, prefix, "ipv4");
// ::/96 covers :: and ::1 and the deprecated IPv4-compatible form; IPv4-mapped (::ffff:a.b.c.d)
// is matched against the IPv4 rules by BlockList itself. NAT64 and 6to4 embed an IPv4 address
// we cannot vouch for, so they are refused whole.
for (const [net, prefix] of [
  ["::", 96], ["64:ff9b::", 96], ["64:ff9b:1::", 48], ["100::", 64], ["2001:db8::", 32], ["2002::", 16],
  ["fc00::", 7], ["fe80::", 10], ["fec0::", 10], ["ff00::", 8],
] as const) NON_PUBLIC.addSubnet(net, prefix, "ipv6");

/** Loopback, private, CGNAT, link-local (169.254.169.254 included), ULA, unspecified, multicast, reserved. */
export function isPrivateAddress(address: string): boolean {
  const ip = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(ip);
  if (family === 0) return true;
  return NON_PUBLIC.check(ip, family === 4 ? "ipv4" : "ipv6");
}

export type Resolver = (host: string) => Promise<string[]>;

const resolveAll: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export class UrlPolicy {
  private readonly patterns: UrlPattern[];

  constructor(private readonly config: UrlPolicyConfig, private readonly resolve: Resolver = resolveAll) {
    this.patterns = config.allow.map(parseUrlPattern);
  }

  /** Whether any check is on (off by default: every URL is allowed, as in dtm). */
  get active(): boolean {
    return this.patterns.length > 0 || this.config.denyPrivate;
  }

  /** Why the URL is refused without resolving names (allowlist, private IP literal), or undefined. */
  refusal(url: string): string | undefined {
    if (!this.active || url === "") return undefined;
    const target = parseCallUrl(url);
    if (!target) return `${url} is neither an http(s) URL nor a gRPC target`;
    if (this.patterns.length > 0) {
      if (!target.canonical) return `${url}: the host must be written in canonical form when branchUrls.allow is set`;
      if (!this.patterns.some((p) => matchesPattern(p, target))) return `${url} matches no branchUrls.allow pattern`;
    }
    // An address literal that matched an allowlist pattern was named by the operator: exempt.
    if (this.config.denyPrivate && isIP(bare(target.host)) !== 0 && this.patterns.length === 0) return this.addressRefusal(url, [target.host]);
    return undefined;
  }

  /** Registration-time check: throws URL_NOT_ALLOWED (400) before anything is written. */
  check(url: string, field: string): void {
    const reason = this.refusal(url);
    if (reason !== undefined) throw new CoordinatorError("URL_NOT_ALLOWED", `${field}: ${reason}`);
  }

  /** Call-time check, names resolved: why the call must not be made, or undefined. */
  async callRefusal(url: string): Promise<string | undefined> {
    if (!this.active || url === "") return undefined;
    const early = this.refusal(url);
    if (early !== undefined || !this.config.denyPrivate) return early;
    const host = bare(parseCallUrl(url)?.host ?? "");
    if (isIP(host) !== 0) return undefined;
    let addresses: string[];
    try {
      addresses = await this.resolve(host);
    } catch (error) {
      return `${url}: cannot resolve ${host} to check it against branchUrls.denyPrivate (${(error as Error).message})`;
    }
    if (addresses.length === 0) return `${url}: ${host} resolves to no address`;
    return this.addressRefusal(url, addresses);
  }

  /**
   * The addresses a transport may connect to for `host` (docs/security.md#pinned-addresses): what
   * the policy's resolver answers now, every one of them public when `denyPrivate` is on. Rejects
   * with the reason otherwise. An address literal is answered as it is (the URL check ruled on it).
   */
  async connectAddresses(host: string): Promise<string[]> {
    const name = bare(host);
    if (isIP(name) !== 0) return [name];
    let addresses: string[];
    try {
      addresses = (await this.resolve(name)).map(bare);
    } catch (error) {
      throw new Error(`cannot resolve ${name} (${(error as Error).message})`, { cause: error });
    }
    if (addresses.length === 0) throw new Error(`${name} resolves to no address`);
    const bad = this.config.denyPrivate ? addresses.find((a) => isPrivateAddress(a)) : undefined;
    if (bad !== undefined) throw new Error(`${name} resolved to the non-public address ${bad} when connecting (branchUrls.denyPrivate): not connected`);
    return addresses;
  }

  private addressRefusal(url: string, addresses: readonly string[]): string | undefined {
    const bad = addresses.map(bare).find((a) => isPrivateAddress(a));
    return bad === undefined ? undefined : `${url} reaches the non-public address ${bad} (branchUrls.denyPrivate)`;
  }
}

function bare(host: string): string {
  return host.replace(/^\[|\]$/g, "");
}
