/**
 * Key extraction: turns a KeySpec into a function from a request to the key
 * a limit counts by. Keys carry their kind as a prefix ("ip:", "cid:",
 * "user:" ...), so a client id that looks like an address is never counted
 * together with that address.
 */
import { InvalidArgumentError } from "../../core/errors.js";
import type { IdentitySource, KeyContext, KeyFunction, KeySpec } from "./types.js";

export interface CompiledKey {
  readonly kind: string;
  /** Returns the key, or undefined when the request has none. */
  readonly get: (ctx: KeyContext) => string | undefined;
  /** Whether the key may need a form body. */
  readonly needsBody: boolean;
}

/** Longest identity value used as a key; longer values are cut (bounded memory per key). */
const MAX_ID = 256;

/** OAuth's defaults: client_id as a query or form parameter, or the Basic auth user name. */
const CLIENT_ID_DEFAULT: IdentitySource = { queryParam: "client_id", formField: "client_id", basicAuth: true };
const USER_DEFAULT: IdentitySource = { formField: "username" };

export interface IpKeyer {
  /** Key of the client address at the limit's prefix. */
  key(ip: string, v4Prefix: number | undefined, v6Prefix: number | undefined): string;
}

export function compileKey(spec: KeySpec | undefined, ips: IpKeyer, param: string): CompiledKey {
  const s = spec ?? "ip";
  if (typeof s === "function") return { kind: "custom", get: prefixed("fn:", s), needsBody: false };
  const kind = typeof s === "string" ? s : s.kind;
  switch (kind) {
    case "ip":
      return { kind, get: (c) => ips.key(c.clientIp, undefined, undefined), needsBody: false };
    case "ip_prefix": {
      const o = typeof s === "object" && s.kind === "ip_prefix" ? s : { ipv4Prefix: undefined, ipv6Prefix: undefined };
      const v4 = o.ipv4Prefix ?? 24;
      const v6 = o.ipv6Prefix ?? 64;
      return { kind, get: (c) => ips.key(c.clientIp, v4, v6), needsBody: false };
    }
    case "route":
      return { kind, get: (c) => `route:${c.route}`, needsBody: false };
    case "global":
      return { kind, get: () => "global", needsBody: false };
    case "client_id":
    case "user": {
      const src = typeof s === "object" ? (s as IdentitySource) : kind === "client_id" ? CLIENT_ID_DEFAULT : USER_DEFAULT;
      const read = identityReader(src, `${param}.key`);
      const tag = kind === "client_id" ? "cid:" : "user:";
      return { kind, get: prefixed(tag, read), needsBody: src.formField !== undefined };
    }
    case "custom": {
      const fn = typeof s === "object" && s.kind === "custom" ? s.fn : undefined;
      if (typeof fn !== "function") throw new InvalidArgumentError(`${param}.key.fn`, "must be a function");
      return { kind, get: prefixed("fn:", fn), needsBody: false };
    }
    default:
      throw new InvalidArgumentError(`${param}.key`, `must be one of ip, ip_prefix, client_id, user, route, global, custom or a function; got ${JSON.stringify(kind)}`);
  }
}

function prefixed(tag: string, fn: KeyFunction): (c: KeyContext) => string | undefined {
  return (c) => {
    const v = fn(c);
    if (typeof v !== "string" || v.length === 0) return undefined;
    return tag + (v.length > MAX_ID ? v.slice(0, MAX_ID) : v);
  };
}

/** Reads an identity (client id, user name) from the first source that has one. */
export function identityReader(src: IdentitySource, param: string): KeyFunction {
  const header = src.header?.toLowerCase();
  if (src.header !== undefined && (typeof src.header !== "string" || src.header.length === 0)) {
    throw new InvalidArgumentError(`${param}.header`, "must be a header name");
  }
  const { formField, queryParam, basicAuth, from } = src;
  if (header === undefined && formField === undefined && queryParam === undefined && !basicAuth && from === undefined) {
    throw new InvalidArgumentError(param, "needs at least one of header, formField, queryParam, basicAuth, from");
  }
  return (c) => {
    if (header !== undefined) {
      const v = c.req.headers[header];
      const s = Array.isArray(v) ? v[0] : v;
      if (s) return s;
    }
    if (queryParam !== undefined) {
      const v = queryValue(c.req.url, queryParam);
      if (v) return v;
    }
    if (formField !== undefined) {
      const v = bodyField(c.req.body, formField);
      if (v) return v;
    }
    if (basicAuth) {
      const v = basicUser(c.req.headers.authorization);
      if (v) return v;
    }
    return from?.(c);
  };
}

function queryValue(url: string, name: string): string | undefined {
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined;
}

function bodyField(body: unknown, name: string): string | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const v = (body as Record<string, unknown>)[name];
  if (typeof v === "string") return v;
  if (Array.isArray(v) && typeof v[0] === "string") return v[0];
  return undefined;
}

/** The user name of a Basic Authorization header (RFC 7617), undefined if absent or malformed. */
export function basicUser(auth: string | undefined): string | undefined {
  if (typeof auth !== "string" || auth.length < 7 || auth.slice(0, 6).toLowerCase() !== "basic ") return undefined;
  const decoded = Buffer.from(auth.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return undefined;
  // OAuth (RFC 6749 §2.3.1) form-encodes the client id inside Basic auth.
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
  } catch {
    return decoded.slice(0, colon);
  }
}
