import { integerAtLeast, nonNegative } from "../../core/validate.js";

/** What the table needs of a flow. */
export interface TrackedFlow {
  readonly ip: string;
  lastSeen: number;
}

export type AdmitResult<F> = { flow: F; created: boolean } | { refused: "max_flows" | "max_flows_per_ip" };

/**
 * Client flows of a datagram relay, bounded: at most `maxFlows` in all and
 * `maxFlowsPerIp` per client address. The Map is kept in order of last
 * activity, so expiry looks only at the oldest entries: a few per admission
 * and all due ones on `sweep` (one timer for the whole table, never one per
 * flow). A full table refuses new flows rather than evicting live ones, so
 * a flood of new source ports cannot push out established clients.
 */
export class FlowTable<F extends TrackedFlow> {
  private readonly flows = new Map<string, F>();
  private readonly perIp = new Map<string, number>();
  readonly maxFlows: number;
  readonly maxFlowsPerIp: number;
  readonly idleMs: number;

  constructor(
    o: { maxFlows: number; maxFlowsPerIp: number; idleMs: number },
    private readonly onExpire: (flow: F) => void,
  ) {
    this.maxFlows = integerAtLeast("maxFlows", o.maxFlows, 1);
    this.maxFlowsPerIp = integerAtLeast("maxFlowsPerIp", o.maxFlowsPerIp, 1);
    this.idleMs = nonNegative("flowIdleMs", o.idleMs);
  }

  get size(): number {
    return this.flows.size;
  }

  /** Flows of one address now. */
  flowsOf(ip: string): number {
    return this.perIp.get(ip) ?? 0;
  }

  /** The flow of `key`, marked active at `now`; created by `make` if there is room. */
  admit(key: string, ip: string, now: number, make: () => F): AdmitResult<F> {
    const found = this.flows.get(key);
    if (found) {
      found.lastSeen = now;
      this.flows.delete(key);
      this.flows.set(key, found);
      return { flow: found, created: false };
    }
    this.sweep(now, 2);
    if (this.flows.size >= this.maxFlows) return { refused: "max_flows" };
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.maxFlowsPerIp) return { refused: "max_flows_per_ip" };
    const flow = make();
    flow.lastSeen = now;
    this.flows.set(key, flow);
    this.perIp.set(ip, n + 1);
    return { flow, created: true };
  }

  /** Marks an existing flow active (traffic from upstream counts as activity too). */
  touch(key: string, now: number): void {
    const f = this.flows.get(key);
    if (!f) return;
    f.lastSeen = now;
    this.flows.delete(key);
    this.flows.set(key, f);
  }

  /** Expires up to `limit` flows idle for `idleMs` or more, oldest first; returns how many. */
  sweep(now: number, limit = Infinity): number {
    let n = 0;
    for (const [key, f] of this.flows) {
      if (n >= limit || now - f.lastSeen < this.idleMs) break;
      this.remove(key, f);
      this.onExpire(f);
      n++;
    }
    return n;
  }

  /** Removes every flow (calling onExpire for each). */
  clear(): void {
    for (const [key, f] of this.flows) {
      this.remove(key, f);
      this.onExpire(f);
    }
  }

  private remove(key: string, f: F): void {
    this.flows.delete(key);
    const n = (this.perIp.get(f.ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(f.ip);
    else this.perIp.set(f.ip, n);
  }
}
