/**
 * Configuration of the `udp` listener kind: the per-client caps and the flow
 * table a `[[listener]]` of kind "udp" takes, and the checks that tie them to
 * that kind (a "host:port" upstream, no TLS). Every field is optional: the
 * relay's defaults apply (src/features/udp/udp-listener.ts; no caps =
 * unlimited), so configurations without UDP keep loading.
 */
import type { z } from "zod";
import { duration, positiveInt, size, type HostPort } from "../../config/leaves.js";

/** Listener fields, spread into the listener schema. */
export const udpListenerFields = {
  bytes_per_second: size.optional(),
  packets_per_second: positiveInt.optional(),
  max_flows: positiveInt.optional(),
  flow_idle_timeout: duration.optional(),
  max_flows_per_ip: positiveInt.optional(),
};

const UDP_ONLY = Object.keys(udpListenerFields) as Array<keyof typeof udpListenerFields>;

/** The udp fields as the validated configuration holds them. */
export type UdpListenerSettings = { [K in keyof typeof udpListenerFields]?: z.output<(typeof udpListenerFields)[K]> };

/** What the udp listener reads of its `[[listener]]` (the gateway passes the whole validated listener). */
export type UdpListenerConfig = UdpListenerSettings & {
  name: string;
  kind: string;
  bind: HostPort;
  upstream?: HostPort | undefined;
};

/** Cross-field checks of a listener that concern the udp kind (call from the listener's superRefine). */
export function refineUdpListener(
  l: UdpListenerSettings & { kind: string; tls?: unknown; upstream?: HostPort & { url?: string } },
  ctx: z.RefinementCtx,
): void {
  // udp listeners: a host:port upstream, no TLS; the udp keys only there.
  if (l.kind === "udp" && (l.upstream === undefined || "url" in l.upstream)) ctx.addIssue({ code: "custom", path: ["upstream"], message: 'required for kind "udp" as "host:port", e.g. "127.0.0.1:53"' });
  if (l.kind === "udp" && l.tls !== undefined) ctx.addIssue({ code: "custom", path: ["tls"], message: 'not for kind "udp"' });
  for (const k of UDP_ONLY) {
    if (l.kind !== "udp" && l[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: 'only for kind "udp"' });
  }
}
