/**
 * Configuration of probe resistance on a listener: `probe_resistance = {
 * mask = "host:port", ... }` and, for TLS `tcp` listeners, `server_names`.
 * Optional, so configurations without it keep loading; every limit inside
 * has the probe modules' default.
 */
import { z } from "zod";
import { parseDuration } from "../../config/duration.js";
import { bool, duration, nonEmptyString, oneOf, parseHostPort, positiveInt, shown, size } from "../../config/leaves.js";
import { DRAIN_DEFAULTS } from "./drain.js";
import { MASK_DEFAULTS } from "./mask-relay.js";
import { DEFAULT_CLASSIFY_WINDOW_MS } from "./masked-tls-listener.js";
import { SHAPE_DEFAULTS } from "./shape-padding.js";
import { DEFAULT_REJECTION_CEILING_MS, DEFAULT_REJECTION_FLOOR_MS } from "./rejection-delay.js";

/** A duration that may be zero (a delay floor of 0 selects a uniform draw). */
const durationOrZero = z.unknown().transform((v, ctx): number => {
  const ms = typeof v === "string" ? parseDuration(v) : undefined;
  if (ms !== undefined && ms >= 0) return ms;
  ctx.addIssue({ code: "custom", message: `expected a duration such as "100ms" or "0s", got ${shown(v)}` });
  return z.NEVER;
});

/** A size that may be zero. */
const sizeOrZero = z.unknown().transform((v, ctx): number => {
  if (v === 0) return 0;
  const r = size.safeParse(v);
  if (r.success) return r.data;
  ctx.addIssue({ code: "custom", message: `expected 0 or a size such as "1KiB", got ${shown(v)}` });
  return z.NEVER;
});

/** Masked connections per address key open at once (what a prober that keeps coming back can hold). */
export const DEFAULT_MAX_MASKED_PER_ADDRESS = 8;

/** The mask host, kept as written (so the effective configuration prints it back) and checked here; false: no mask host (drain, then FIN). */
const maskTarget = z.unknown().transform((v, ctx): string | false => {
  if (v === false) return false;
  if (parseHostPort(v) !== undefined) return v as string;
  ctx.addIssue({ code: "custom", message: `expected the mask host as "host:port" such as "www.example.org:443", or false, got ${shown(v)}` });
  return z.NEVER;
});

/** A short duration up to `maxMs` (zero allowed), kept as written so the effective configuration prints it back; read with classifyWindowMs. */
const durationUpTo = (maxMs: number) =>
  z.unknown().transform((v, ctx): string => {
    const ms = typeof v === "string" ? parseDuration(v) : undefined;
    if (ms !== undefined && ms >= 0 && ms <= maxMs) return v as string;
    ctx.addIssue({ code: "custom", message: `expected a duration from "0ms" to "${maxMs}ms", got ${shown(v)}` });
    return z.NEVER;
  });

export const probeResistance = z
  .strictObject({
    /** The real site probers are shown: everything not served is relayed there verbatim. */
    mask: maskTarget,
    /** TLS listeners: a well-formed ClientHello for another (or no) name is masked or gets an unrecognized_name alert. */
    unknown_sni_action: oneOf(["mask", "reject_handshake"] as const).default("mask"),
    /** Dynamic record sizing on connections this listener terminates. */
    drs: bool.default(true),
    /** Inter-packet timing toward the client: tunnels, terminated TLS connections and masked connections (costs throughput; off by default). */
    ipt: z.strictObject({ enabled: bool.default(false) }).prefault({}),
    /**
     * The first byte a rejected client receives comes no earlier than a delay drawn from [floor, ceiling] at accept
     * time. Default 0: the mask relay already carries the mask host's own timing, and an added delay is a fingerprint.
     */
    delay: z
      .strictObject({ floor: durationOrZero.default(DEFAULT_REJECTION_FLOOR_MS), ceiling: durationOrZero.default(DEFAULT_REJECTION_CEILING_MS) })
      .prefault({}),
    /** A connection not classified within this window is given its mask connection (the mask host's timeouts start then). */
    classify_window: durationUpTo(1000).default(`${DEFAULT_CLASSIFY_WINDOW_MS}ms`),
    /** Caps so the gateway is no free relay to the mask site: bytes per direction, total and idle time (never shorter than the mask site's own). */
    max_bytes: size.default(MASK_DEFAULTS.maxBytesToMask),
    total_timeout: duration.default(MASK_DEFAULTS.totalTimeoutMs),
    idle_timeout: duration.default(MASK_DEFAULTS.idleTimeoutMs),
    throttle: z.strictObject({ after: size, rate: size }).optional(),
    /** Masked connections open at once per address key, counting those of banned or throttled addresses (which are masked, not refused). */
    max_masked_per_address: positiveInt.default(DEFAULT_MAX_MASKED_PER_ADDRESS),
    /** Shape padding of the gateway -> mask host stream when the prober finishes sending (off by default). */
    shape_padding: z
      .strictObject({
        enabled: bool.default(false),
        bucket_floor: size.default(SHAPE_DEFAULTS.floor),
        bucket_cap: size.default(SHAPE_DEFAULTS.cap),
        blur_max: sizeOrZero.default(SHAPE_DEFAULTS.blurMax),
        aggressive: bool.default(false),
      })
      .prefault({}),
    /** With mask = false: how a client that is not served is drained before its FIN. */
    drain: z
      .strictObject({
        max_bytes: size.default(DRAIN_DEFAULTS.maxBytes),
        total_timeout: duration.default(DRAIN_DEFAULTS.totalTimeoutMs),
        idle_timeout: duration.default(DRAIN_DEFAULTS.idleTimeoutMs),
      })
      .prefault({}),
  })
  .optional();

export type ProbeResistanceConfig = NonNullable<z.output<typeof probeResistance>>;

/** The classify window in milliseconds (validated when the configuration loaded). */
export function classifyWindowMs(p: ProbeResistanceConfig): number {
  return parseDuration(p.classify_window) ?? DEFAULT_CLASSIFY_WINDOW_MS;
}

/** Listener fields, spread into the listener schema. */
export const probeListenerFields = {
  probe_resistance: probeResistance,
  /** TLS tcp listener with probe resistance: the names it terminates (exact or "*.example.org"); others are masked. */
  server_names: z.array(nonEmptyString).optional(),
};

/** What probe resistance reads of a `[[listener]]` (the gateway passes the whole validated listener). */
export interface MaskingListenerConfig {
  name: string;
  kind: string;
  tls?: { handshake_timeout: number } | undefined;
  probe_resistance?: ProbeResistanceConfig | undefined;
  server_names?: string[] | undefined;
}

/** Cross-field checks, called from the listener's superRefine. */
export function refineProbeListener(
  l: { kind: string; tls?: unknown; probe_resistance?: ProbeResistanceConfig; server_names?: string[] },
  ctx: z.RefinementCtx,
): void {
  const p = l.probe_resistance;
  if (p === undefined) {
    if (l.server_names !== undefined) ctx.addIssue({ code: "custom", path: ["server_names"], message: "only with probe_resistance (names not listed are masked)" });
    return;
  }
  if (l.kind === "http") ctx.addIssue({ code: "custom", path: ["probe_resistance"], message: 'only for kind "connect" or a TLS "tcp" listener' });
  if (l.kind === "tcp" && (l.tls === undefined || l.server_names === undefined || l.server_names.length === 0)) {
    ctx.addIssue({ code: "custom", path: ["server_names"], message: 'a "tcp" listener with probe_resistance needs tls and server_names (the names it serves)' });
  }
  if (l.kind === "connect" && l.server_names !== undefined) {
    ctx.addIssue({ code: "custom", path: ["server_names"], message: 'only for a TLS "tcp" listener' });
  }
  if (l.kind === "tcp" && (l.tls as { client_ca?: string } | undefined)?.client_ca !== undefined) {
    ctx.addIssue({ code: "custom", path: ["tls", "client_ca"], message: 'not with probe_resistance on a "tcp" listener (client certificates are not checked after the ClientHello peek)' });
  }
  if (p.delay.floor > p.delay.ceiling) ctx.addIssue({ code: "custom", path: ["probe_resistance", "delay"], message: "floor must not exceed ceiling" });
  const sp = p.shape_padding;
  if (sp.bucket_cap < sp.bucket_floor) ctx.addIssue({ code: "custom", path: ["probe_resistance", "shape_padding", "bucket_cap"], message: "must not be below bucket_floor" });
}
