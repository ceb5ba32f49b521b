/**
 * The gateway's relay through bandwidth shaping. A connection that some cap
 * applies to carries its shaping on the upstream socket (set when the
 * upstream is assigned to the connection); the relay finds it there and
 * paces both directions with relayShaped instead of plain pipes. Idle
 * connections are closed like in the plain relay.
 */
import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import type { ConnectionShaping } from "../../shaping/bandwidth-registry.js";
import { relayShaped } from "../../shaping/relay.js";

/** What a shaped connection needs at relay time. */
export interface ShapingPlan {
  readonly shaping: ConnectionShaping;
  /** Called once when the relay has ended (cleanly or not). */
  readonly ended: () => void;
}

/** A symbol, not a string key: nothing else can collide with it or see it in the socket's own fields. */
const PLAN = Symbol("portcullis.shaping-plan");

interface Planned {
  [PLAN]?: ShapingPlan;
}

export function setShapingPlan(upstream: Socket, plan: ShapingPlan): void {
  (upstream as Planned)[PLAN] = plan;
}

/** The plan put on `upstream`, taken off it (a plan is used by one relay only). */
export function takeShapingPlan(upstream: Duplex): ShapingPlan | undefined {
  const p = upstream as Planned;
  const plan = p[PLAN];
  if (plan !== undefined) delete p[PLAN];
  return plan;
}

/** Idle checks per idle period, as in the plain relay. */
const CHECKS_PER_PERIOD = 4;

export interface ShapedRelayOptions {
  idleTimeoutMs: number;
  onClosed?: () => void;
  /** Where upstream's bytes go after the download gate: the client (default) or a stage in front of it, such as an IptWriter. */
  toClient?: Writable;
}

/**
 * Relays `client` and `upstream` through `plan`'s gates (then, toward the
 * client, through `o.toClient` when given). Both sockets must
 * allow half-open (every gateway socket does). No bytes moving either way for
 * idleTimeoutMs destroys both.
 */
export function relayWithShaping(client: Duplex, upstream: Socket, plan: ShapingPlan, o: ShapedRelayOptions): void {
  const r = relayShaped(client as Socket, upstream, plan.shaping, o.toClient ?? client);
  const step = Math.max(25, o.idleTimeoutMs / CHECKS_PER_PERIOD);
  let lastSeen = -1;
  let quietMs = 0;
  const idle = setInterval(() => {
    const seen = r.uploaded + r.downloaded + upstream.bytesRead + ((client as Partial<Socket>).bytesRead ?? 0);
    if (seen !== lastSeen) {
      lastSeen = seen;
      quietMs = 0;
      return;
    }
    quietMs += step;
    if (quietMs >= o.idleTimeoutMs) r.destroy();
  }, step);
  idle.unref();
  let open = 2;
  const closed = (): void => {
    if (--open > 0) return;
    clearInterval(idle);
    plan.shaping.close();
    plan.ended();
    o.onClosed?.();
  };
  client.once("close", closed);
  upstream.once("close", closed);
  // A failure has already destroyed both sockets (their 'close' finishes the bookkeeping).
  r.done.catch(() => {});
}
