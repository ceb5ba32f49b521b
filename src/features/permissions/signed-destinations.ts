/**
 * A connect listener's destination check when its permissions are signed
 * rows in PostgreSQL. The destination is resolved once and its address must
 * pass the special-address check (private, loopback, ... only within
 * `allow_special`); then the signed policy decides for that address. Tunnels
 * are tracked by the row that admitted them, so revoking the row can close
 * them.
 */
import { type Clock } from "../../core/clock.js";
import { Keyring } from "./signing-keys.js";
import { PgPermissionPolicy } from "./pg-policy.js";
import { type DestinationDecision, DestinationPolicy } from "./destination-policy.js";
import type { ListenerPolicyConfig } from "./config-schema.js";
import type { PermissionContext, PermissionLogger, TunnelConnection } from "./gateway-view.js";

export interface SignedDestinationsOptions {
  listener: string;
  revokeClosesTunnels: boolean;
  clock: Clock;
  logger: PermissionLogger;
  auditDestinations: boolean;
  /** The PostgreSQL URL when the configuration names none (from the url_env variable). */
  env?: NodeJS.ProcessEnv;
  resolve?: (host: string) => Promise<string[]>;
}

/** Signed-policy reasons that say the table could not answer, not that it said no. */
const UNAVAILABLE = new Set(["policy_unavailable", "policy_overloaded", "policy_error", "closed"]);

export interface SignedDecision extends DestinationDecision {
  /** The row that granted, when allowed. */
  rowId?: string;
}

export class SignedDestinations {
  readonly policy: PgPermissionPolicy;
  private readonly addresses: DestinationPolicy;
  /** Open tunnels by granting row; each entry leaves when its connection closes, so the map is bounded by open connections. */
  private readonly tunnels = new Map<string, Set<TunnelConnection>>();
  private readonly unsubscribe: () => void;
  private readonly revokeCloses: boolean;

  /** Throws on a configuration that cannot work (no URL, unreadable key file); PostgreSQL being down is not one. */
  constructor(
    readonly config: ListenerPolicyConfig,
    o: SignedDestinationsOptions,
  ) {
    const url = config.url ?? (o.env ?? process.env)[config.url_env];
    if (url === undefined || url === "") throw new Error(`listener ${o.listener}: policy.url is not set (nor ${config.url_env})`);
    this.revokeCloses = o.revokeClosesTunnels;
    // Any host, any port: this policy only resolves once and refuses special addresses outside allow_special.
    this.addresses = new DestinationPolicy([{ identities: ["*"], hosts: ["*"], ports: [], cidrs: config.allow_special }], {
      clock: o.clock,
      ...(o.resolve ? { resolve: o.resolve } : {}),
    });
    this.policy = new PgPermissionPolicy({
      url,
      schema: config.schema,
      keyring: Keyring.fromFiles(config.public_key),
      cacheTtlMs: config.cache_ttl,
      clock: o.clock,
      auditDestinations: o.auditDestinations,
      logger: { info: (msg, f) => o.logger.info(msg, { listener: o.listener, ...f }), warn: (msg, f) => o.logger.warn(msg, { listener: o.listener, ...f }) },
    });
    this.unsubscribe = this.policy.onRevoke((_identity, rowId) => this.revoked(rowId));
    // The first attempt runs in the background: until PostgreSQL answers, every decision is a denial.
    void this.policy.start().catch((err: unknown) => o.logger.warn("permission policy start failed", { listener: o.listener, error: err instanceof Error ? err.message : String(err) }));
  }

  ready(): boolean {
    return this.policy.ready();
  }

  async decide(identity: string, host: string, port: number): Promise<SignedDecision> {
    const checked = await this.addresses.decide(identity, host, port);
    if (!checked.allowed) return checked;
    const d = await this.policy.decide(identity, host, port, checked.address);
    if (!d.allowed) return { allowed: false, code: UNAVAILABLE.has(d.reason) ? "policy_unavailable" : "policy", reason: `permission: ${d.reason}` };
    return { allowed: true, reason: "permission: granted", address: checked.address, rowId: d.rowId };
  }

  /** Remembers an open tunnel under the row that admitted it, until it closes. */
  track(rowId: string, conn: TunnelConnection): void {
    let set = this.tunnels.get(rowId);
    if (set === undefined) this.tunnels.set(rowId, (set = new Set()));
    set.add(conn);
    conn.raw.once("close", () => {
      const s = this.tunnels.get(rowId);
      s?.delete(conn);
      if (s?.size === 0) this.tunnels.delete(rowId);
    });
  }

  /** Open tunnels admitted by signed rows. */
  get openTunnels(): number {
    let n = 0;
    for (const s of this.tunnels.values()) n += s.size;
    return n;
  }

  private revoked(rowId: string): void {
    if (!this.revokeCloses) return;
    const set = this.tunnels.get(rowId);
    if (set === undefined) return;
    this.tunnels.delete(rowId);
    for (const c of set) c.close("revoked");
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.policy.close();
  }
}

/** The destination decision of a connect listener: its signed policy when it has one, else the configured rules. */
export function decideDestination(ctx: Pick<PermissionContext, "policy">, signed: SignedDestinations | undefined, identity: string, host: string, port: number): Promise<SignedDecision> {
  return signed === undefined ? ctx.policy.decide(identity, host, port) : signed.decide(identity, host, port);
}
