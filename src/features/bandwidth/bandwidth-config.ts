/** The bandwidth configuration: per-key upload and download rates, validated. */
import { InvalidArgumentError } from "../../core/errors.js";
import type { RateSpec } from "../../algorithms/byte-bucket.js";
import { parseByteSize } from "./byte-size.js";
import { cidrProblem, looksLikeCidr, parseCidr, type Cidr } from "../../net/cidr.js";

/** Rates of one key, per direction; `null` is unlimited. */
export interface DirectionalRate {
  readonly upload: RateSpec | null;
  readonly download: RateSpec | null;
}

export const UNLIMITED: DirectionalRate = Object.freeze({ upload: null, download: null });

/** An override by CIDR: the per-IP buckets of addresses in `cidr` get `rate`. */
export interface CidrOverride {
  readonly cidr: Cidr;
  readonly rate: DirectionalRate;
}

/** The [bandwidth] section, parsed. */
export interface BandwidthConfig {
  /** Each identity's buckets (absent: identities are not capped unless overridden). */
  readonly perIdentity: DirectionalRate;
  /** Each client IP's (or IP prefix's) buckets. */
  readonly perIp: DirectionalRate;
  /** Overrides of the per-identity rate, by exact identity. */
  readonly identityOverrides: ReadonlyMap<string, DirectionalRate>;
  /** Overrides of the per-IP rate, most specific prefix first. */
  readonly cidrOverrides: readonly CidrOverride[];
}

/** A rate as written in code: one spec for both directions, per direction, or unlimited. */
export type RateInput = RateSpec | { upload?: RateSpec | null; download?: RateSpec | null } | "unlimited" | null;

export interface BandwidthConfigInput {
  perIdentity?: RateInput;
  perIp?: RateInput;
  /** Keys written like an address or CIDR (see looksLikeCidr) override per-IP buckets and must parse; any other key is an identity. */
  overrides?: Record<string, RateInput>;
}

function isRateSpec(v: object): v is RateSpec {
  return "bytesPerSecond" in v;
}

export function directional(r: RateInput | undefined): DirectionalRate {
  if (r === undefined || r === null || r === "unlimited") return UNLIMITED;
  if (isRateSpec(r)) return { upload: r, download: r };
  return { upload: r.upload ?? null, download: r.download ?? null };
}

/** Builds a BandwidthConfig from options written in code. */
export function bandwidthConfig(o: BandwidthConfigInput = {}): BandwidthConfig {
  const identityOverrides = new Map<string, DirectionalRate>();
  const cidrOverrides: CidrOverride[] = [];
  for (const [key, rate] of Object.entries(o.overrides ?? {})) {
    const cidr = parseCidr(key);
    if (cidr) cidrOverrides.push({ cidr, rate: directional(rate) });
    else if (looksLikeCidr(key)) throw new InvalidArgumentError(`overrides.${key}`, cidrProblem(key)!);
    else identityOverrides.set(key, directional(rate));
  }
  cidrOverrides.sort((a, b) => b.cidr.prefix - a.cidr.prefix);
  return { perIdentity: directional(o.perIdentity), perIp: directional(o.perIp), identityOverrides, cidrOverrides };
}

function table(path: string, v: unknown): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new InvalidArgumentError(path, "must be a table");
  return v as Record<string, unknown>;
}

function rateSpec(path: string, v: unknown): RateSpec {
  const t = table(path, v);
  for (const k of Object.keys(t)) {
    if (k !== "bytes_per_second" && k !== "burst") throw new InvalidArgumentError(`${path}.${k}`, "unknown key (expected bytes_per_second, burst)");
  }
  const bytesPerSecond = parseByteSize(`${path}.bytes_per_second`, t.bytes_per_second);
  if (t.burst === undefined) return { bytesPerSecond };
  return { bytesPerSecond, burst: parseByteSize(`${path}.burst`, t.burst) };
}

function rateInput(path: string, v: unknown): RateInput {
  if (v === "unlimited") return "unlimited";
  const t = table(path, v);
  if (t.unlimited === true && Object.keys(t).length === 1) return "unlimited";
  if ("upload" in t || "download" in t) {
    for (const k of Object.keys(t)) {
      if (k !== "upload" && k !== "download") throw new InvalidArgumentError(`${path}.${k}`, "unknown key (expected upload, download)");
    }
    const side = (k: "upload" | "download"): RateSpec | null =>
      t[k] === undefined || t[k] === "unlimited" ? null : rateSpec(`${path}.${k}`, t[k]);
    return { upload: side("upload"), download: side("download") };
  }
  return rateSpec(path, t);
}

/**
 * Parses the [bandwidth] table of the configuration file (snake_case keys,
 * sizes as numbers or strings like "10MiB"):
 *
 *   per_identity = { bytes_per_second = "10MiB", burst = "1MiB" }
 *   per_ip = { upload = { bytes_per_second = "1MiB" }, download = { bytes_per_second = "4MiB" } }
 *   overrides = { "spiffe://enclave/agent-7" = { bytes_per_second = "100MiB" }, "10.0.0.0/8" = "unlimited" }
 *
 * Errors name the key path (for example `bandwidth.per_ip.burst`).
 */
export function parseBandwidthConfig(raw: unknown, path = "bandwidth"): BandwidthConfig {
  if (raw === undefined) return bandwidthConfig();
  const t = table(path, raw);
  const out: BandwidthConfigInput = { overrides: {} };
  for (const [k, v] of Object.entries(t)) {
    if (k === "per_identity") out.perIdentity = rateInput(`${path}.per_identity`, v);
    else if (k === "per_ip") out.perIp = rateInput(`${path}.per_ip`, v);
    else if (k === "overrides") {
      for (const [key, r] of Object.entries(table(`${path}.overrides`, v))) {
        if (key.length === 0 || key.length > 1024) throw new InvalidArgumentError(`${path}.overrides`, "keys must be 1 to 1024 characters");
        out.overrides![key] = rateInput(`${path}.overrides.${JSON.stringify(key)}`, r);
      }
    } else throw new InvalidArgumentError(`${path}.${k}`, "unknown key (expected per_identity, per_ip, overrides)");
  }
  return bandwidthConfig(out);
}
