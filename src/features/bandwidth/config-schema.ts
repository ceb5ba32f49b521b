/**
 * The `[bandwidth]` section of the configuration file. Sizes are read with
 * the configuration's own size parser ("10MiB", 1_000_000) and stored as
 * byte counts, so the validated configuration is plain data (the effective
 * configuration prints it as written); the shaping module's
 * parseBandwidthConfig then turns it into buckets. Every key is optional and
 * an absent section means "no caps", so files written before it keep loading.
 */
import { z } from "zod";
import { InvalidArgumentError } from "../../core/errors.js";
import { parseSize } from "../../config/size.js";
import { cidrProblem, looksLikeCidr } from "../../net/cidr.js";
import { parseBandwidthConfig } from "./bandwidth-config.js";

type Path = Array<string | number>;

class SectionError extends Error {
  constructor(
    readonly path: Path,
    message: string,
  ) {
    super(message);
  }
}

const SIZE_HINT = 'a size > 0 such as "10MiB", "512KiB" or 1_000_000';

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function byteSize(path: Path, v: unknown): number {
  const n = parseSize(v);
  if (n === undefined || n <= 0) throw new SectionError(path, `expected ${SIZE_HINT}`);
  return n;
}

function spec(path: Path, v: unknown): { bytes_per_second: number; burst?: number } {
  if (!isTable(v)) throw new SectionError(path, 'expected { bytes_per_second = ..., burst = ... } or "unlimited"');
  for (const k of Object.keys(v)) if (k !== "bytes_per_second" && k !== "burst") throw new SectionError([...path, k], "unknown key (expected bytes_per_second, burst)");
  const out: { bytes_per_second: number; burst?: number } = { bytes_per_second: byteSize([...path, "bytes_per_second"], v.bytes_per_second) };
  if (v.burst !== undefined) out.burst = byteSize([...path, "burst"], v.burst);
  return out;
}

/** A rate: `{ bytes_per_second, burst }` for both directions, `{ upload, download }`, or "unlimited". */
function rate(path: Path, v: unknown): unknown {
  if (v === "unlimited") return v;
  if (isTable(v) && v.unlimited === true && Object.keys(v).length === 1) return "unlimited";
  if (isTable(v) && ("upload" in v || "download" in v)) {
    const out: Record<string, unknown> = {};
    for (const [k, side] of Object.entries(v)) {
      if (k !== "upload" && k !== "download") throw new SectionError([...path, k], "unknown key (expected upload, download)");
      out[k] = side === "unlimited" ? side : spec([...path, k], side);
    }
    return out;
  }
  return spec(path, v);
}

/** Validates the section and returns it with every size as a byte count. */
function normalize(v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isTable(v)) throw new SectionError([], "expected a table");
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === "per_identity" || k === "per_ip") out[k] = rate([k], x);
    else if (k === "overrides") {
      if (!isTable(x)) throw new SectionError([k], "expected a table of identity or CIDR = rate");
      const o: Record<string, unknown> = {};
      for (const [key, r] of Object.entries(x)) {
        if (key.length === 0 || key.length > 1024) throw new SectionError([k], "keys must be 1 to 1024 characters");
        // A key written like an address is a network and must parse; any other key is an identity.
        const problem = looksLikeCidr(key) ? cidrProblem(key) : undefined;
        if (problem !== undefined) throw new SectionError([k, key], problem);
        o[key] = rate([k, key], r);
      }
      out[k] = o;
    } else throw new SectionError([k], "unknown key (expected per_identity, per_ip, overrides)");
  }
  return out;
}

export const bandwidthSection = z.unknown().transform((v, ctx): Record<string, unknown> => {
  try {
    const out = normalize(v);
    // The shaping module has the last word (CIDR keys and the like); its message names the key path itself.
    parseBandwidthConfig(out);
    return out;
  } catch (e) {
    if (e instanceof SectionError) ctx.addIssue({ code: "custom", path: e.path, message: e.message });
    else if (e instanceof InvalidArgumentError) ctx.addIssue({ code: "custom", message: e.message });
    else throw e;
    return z.NEVER;
  }
});
