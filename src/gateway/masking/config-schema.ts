/**
 * Configuration of probe resistance on a listener: `probe_resistance = {
 * mask = "host:port", ... }` and, for TLS `tcp` listeners, `server_names`.
 * Optional, so configurations without it keep loading; every limit inside
 * has the probe modules' default.
 */
import { z } from "zod";
import { parseDuration } from "../../config/duration.js";
import { bool, duration, nonEmptyString, oneOf, parseHostPort, shown, size } from "../../config/leaves.js";
import { MASK_DEFAULTS } from "../../probe/mask-relay.js";
import { DEFAULT_REJECTION_CEILING_MS, DEFAULT_REJECTION_FLOOR_MS } from "../../probe/rejection-delay.js";

/** A duration that may be zero (a delay floor of 0 selects a uniform draw). */
const durationOrZero = z.unknown().transform((v, ctx): number => {
  const ms = typeof v === "string" ? parseDuration(v) : undefined;
  if (ms !== undefined && ms >= 0) return ms;
  ctx.addIssue({ code: "custom", message: `expected a duration such as "100ms" or "0s", got ${shown(v)}` });
  return z.NEVER;
});

/** The mask host, kept as written (so the effective configuration prints it back) and checked here. */
const maskTarget = z.unknown().transform((v, ctx): string => {
  if (parseHostPort(v) !== undefined) return v as string;
  ctx.addIssue({ code: "custom", message: `expected the mask host as "host:port" such as "www.example.org:443", got ${shown(v)}` });
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
    /** Inter-packet timing on the upstream -> client path of tunnels and terminated TLS connections (costs throughput; off by default). */
    ipt: z.strictObject({ enabled: bool.default(false) }).prefault({}),
    /** Every rejection completes no earlier than a delay drawn from [floor, ceiling] at accept time. */
    delay: z
      .strictObject({ floor: durationOrZero.default(DEFAULT_REJECTION_FLOOR_MS), ceiling: durationOrZero.default(DEFAULT_REJECTION_CEILING_MS) })
      .prefault({}),
    /** Caps so the gateway is no free relay to the mask site: bytes per direction, total and idle time. */
    max_bytes: size.default(MASK_DEFAULTS.maxBytesToMask),
    total_timeout: duration.default(MASK_DEFAULTS.totalTimeoutMs),
    idle_timeout: duration.default(MASK_DEFAULTS.idleTimeoutMs),
    throttle: z.strictObject({ after: size, rate: size }).optional(),
  })
  .optional();

export type ProbeResistanceConfig = NonNullable<z.output<typeof probeResistance>>;

/** Listener fields, spread into the listener schema. */
export const probeListenerFields = {
  probe_resistance: probeResistance,
  /** TLS tcp listener with probe resistance: the names it terminates (exact or "*.example.org"); others are masked. */
  server_names: z.array(nonEmptyString).optional(),
};

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
}
