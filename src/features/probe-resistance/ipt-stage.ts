/**
 * Chooses the inter-packet timing stage of a gateway connection's relay
 * (`probe_resistance.ipt.enabled` on its listener): with it, what the
 * upstream sends toward the client goes through an IptWriter (IptStage in
 * src/features/probe-resistance/ipt.ts), so a tunnel (after CONNECT authentication) or a
 * terminated TLS connection does not forward each chunk the instant it
 * arrives. Masked connections get the same stage inside the mask relay.
 */
import type { Clock } from "../../core/clock.js";
import type { Rng } from "../../core/random.js";
import { IptStage } from "./ipt.js";

/** What this stage reads of a listener's configuration. */
export interface IptListener {
  readonly probe_resistance?: { readonly ipt: { readonly enabled: boolean } } | undefined;
}

/** The gateway's time and randomness, which pace the writes. */
export interface IptEnvironment {
  readonly clock: Clock;
  readonly rng?: Rng | undefined;
}

/** The IPT stage for one connection on `listener`, or undefined when the listener does not enable IPT. */
export function iptStageFor(listener: IptListener | undefined, env: IptEnvironment): IptStage | undefined {
  if (listener?.probe_resistance?.ipt.enabled !== true) return undefined;
  return new IptStage({ clock: env.clock, rng: env.rng });
}
